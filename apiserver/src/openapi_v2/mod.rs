//! OpenAPI v2 (`/openapi/v2`): one Swagger 2.0 document of every served kind, in JSON and in
//! the protobuf form kubectl asks for (`application/com.github.proto-openapi.spec.v2@v1.0
//! +protobuf`, gnostic's `openapi_v2.Document`).
//!
//! kubectl 1.27 and 1.28 read it before `create -f`, `apply`, `patch`, `replace`, `label` and
//! `annotate`: their field validation check (`resource.QueryParamVerifier`,
//! `supportsQueryParamV2` in `staging/src/k8s.io/cli-runtime/pkg/resource/query_param_verifier.go`)
//! looks for the PATCH operation whose `x-kubernetes-group-version-kind` names the kind and a
//! `fieldValidation` query parameter on it, and fails the command when the document is
//! missing. `explain` and strategic merge patches read the definitions. The schemas are the
//! OpenAPI v3 ones ([`crate::openapi`]) with their references moved to `#/definitions/`.

mod encode;
mod messages;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::handler::ResourceHandler;
use crate::openapi::{OBJECT_META, kind_schema, object_meta_schema, schema_name};

/// The protobuf media type of the document (and the older spelling client-go also sends).
const PROTOBUF_TYPES: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// The prebuilt document in both forms.
#[derive(Clone, Debug, Default)]
pub struct OpenApiV2 {
    json: Vec<u8>,
    protobuf: Vec<u8>,
    etag: String,
}

/// `#/components/schemas/X` references become `#/definitions/X`, everywhere in `value`.
fn to_definitions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "$ref" {
                    if let Some(reference) = inner.as_str() {
                        *inner = Value::from(
                            reference.replace("#/components/schemas/", "#/definitions/"),
                        );
                    }
                } else {
                    to_definitions(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_definitions),
        _ => {}
    }
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "type": "string", "uniqueItems": true, "description": description})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": description})
}

fn body(reference: &Value) -> Value {
    json!({"name": "body", "in": "body", "required": true, "schema": reference})
}

/// The query parameters of writes, as upstream's operations list them.
fn write_parameters() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        query(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn (default) or Strict.",
        ),
    ]
}

impl OpenApiV2 {
    /// Builds the document of every handler's kinds, at every served version.
    pub fn build(handlers: &[Arc<dyn ResourceHandler>]) -> Self {
        let mut paths = Map::new();
        let mut definitions = Map::new();
        let mut meta = object_meta_schema();
        to_definitions(&mut meta);
        definitions.insert(OBJECT_META.to_owned(), meta);
        for handler in handlers {
            let info = handler.info();
            let can = |verb: &str| info.verbs.iter().any(|v| v == verb);
            for version in &info.versions {
                let name = schema_name(&info.group, version, &info.kind);
                let mut schema = kind_schema(handler.as_ref(), version);
                to_definitions(&mut schema);
                definitions.insert(name.clone(), schema);
                let gvk = json!({"group": info.group, "version": version, "kind": info.kind});
                let reference = json!({"$ref": format!("#/definitions/{name}")});
                let ok = json!({"200": {"description": "OK", "schema": reference}});
                let operation = |action: &str, id: &str| {
                    json!({
                        "operationId": format!("{id}{}", info.kind),
                        "x-kubernetes-action": action,
                        "x-kubernetes-group-version-kind": gvk,
                        "consumes": ["*/*"],
                        "produces": ["application/json", "application/yaml"],
                        "schemes": ["https"],
                        "responses": ok,
                    })
                };
                let with_parameters = |mut op: Value, parameters: Vec<Value>| {
                    op["parameters"] = Value::Array(parameters);
                    op
                };
                let group_path = if info.group.is_empty() {
                    format!("/api/{version}")
                } else {
                    format!("/apis/{}/{version}", info.group)
                };
                let (collection, mut scope_parameters) = if info.namespaced {
                    (
                        format!("{group_path}/namespaces/{{namespace}}/{}", info.plural),
                        vec![path_param(
                            "namespace",
                            "object name and auth scope, such as for teams and projects",
                        )],
                    )
                } else {
                    (format!("{group_path}/{}", info.plural), Vec::new())
                };
                let mut collection_item = Map::new();
                if can("list") {
                    collection_item.insert("get".into(), operation("list", "list"));
                }
                if can("create") {
                    let mut parameters = vec![body(&reference)];
                    parameters.extend(write_parameters());
                    collection_item.insert(
                        "post".into(),
                        with_parameters(operation("post", "create"), parameters),
                    );
                }
                if can("deletecollection") {
                    collection_item.insert(
                        "delete".into(),
                        operation("deletecollection", "deleteCollection"),
                    );
                }
                if !collection_item.is_empty() {
                    collection_item
                        .insert("parameters".into(), Value::Array(scope_parameters.clone()));
                    paths.insert(collection.clone(), Value::Object(collection_item));
                }
                scope_parameters
                    .insert(0, path_param("name", &format!("name of the {}", info.kind)));
                let mut object_item = Map::new();
                if can("get") {
                    object_item.insert("get".into(), operation("get", "read"));
                }
                if can("update") {
                    let mut parameters = vec![body(&reference)];
                    parameters.extend(write_parameters());
                    object_item.insert(
                        "put".into(),
                        with_parameters(operation("put", "replace"), parameters),
                    );
                }
                if can("patch") {
                    let mut parameters = vec![body(
                        &json!({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}),
                    )];
                    parameters.extend(write_parameters());
                    parameters.push(query(
                        "force",
                        "Force is going to \"force\" Apply requests.",
                    ));
                    let mut patch = with_parameters(operation("patch", "patch"), parameters);
                    // No strategic merge patch, as in the v3 documents: kubectl then builds
                    // strategic patches for built-in kinds from its compiled-in types (with
                    // their merge keys) and merge patches for the others
                    // (`Patcher.getPatchTypeFromOpenAPI` in kubectl's apply/patcher.go).
                    patch["consumes"] = json!([
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                    ]);
                    object_item.insert("patch".into(), patch);
                }
                if can("delete") {
                    object_item.insert("delete".into(), operation("delete", "delete"));
                }
                if !object_item.is_empty() {
                    object_item.insert("parameters".into(), Value::Array(scope_parameters.clone()));
                    paths.insert(format!("{collection}/{{name}}"), Value::Object(object_item));
                }
            }
        }
        definitions.insert(
            "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".to_owned(),
            json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
        );
        let (major, minor) = crate::dispatch::KUBERNETES_VERSION;
        let document = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": format!("v{major}.{minor}.0")},
            "paths": paths,
            "definitions": definitions,
        });
        let json = serde_json::to_vec(&document).unwrap_or_default();
        let protobuf = encode::encode_document(&document);
        let mut hasher = DefaultHasher::new();
        json.hash(&mut hasher);
        OpenApiV2 {
            json,
            protobuf,
            etag: format!("\"{:016X}\"", hasher.finish()),
        }
    }

    /// Serves the document in the form `accept` asks for: protobuf when it names the
    /// protobuf type, else JSON; 304 when `if_none_match` is the current ETag.
    pub fn serve(&self, accept: &str, if_none_match: &str) -> Response {
        let protobuf = PROTOBUF_TYPES.iter().any(|t| accept.contains(t));
        let etag = if protobuf {
            format!("{}-pb\"", self.etag.trim_end_matches('"'))
        } else {
            self.etag.clone()
        };
        let mut response = if if_none_match == etag {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            let (body, content_type) = if protobuf {
                // The ".v1.0" spelling: Go's mime parser refuses the "@" of the other.
                (self.protobuf.clone(), PROTOBUF_TYPES[1])
            } else {
                (self.json.clone(), "application/json")
            };
            let mut response = Response::new(Body::from(body));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        };
        let headers = response.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, etag);
        }
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        response
    }
}
