//! OpenAPI v3: the `/openapi/v3` root listing every served group-version, and one document per
//! group-version with the paths kubectl's validation check looks for (a `patch` operation with
//! `x-kubernetes-group-version-kind` and a `fieldValidation` parameter) and
//! `components.schemas` for `kubectl explain`.
//!
//! The PATCH operations list JSON, merge and apply patches but never strategic merge patch, so
//! kubectl computes SMP for built-in kinds from its compiled-in types and uses merge patch for
//! custom kinds (kubectl's `staging/src/k8s.io/kubectl/pkg/cmd/apply/patcher.go`,
//! `Patcher.patchSimple`).

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use apimachinery::status::ApiError;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use scheme::RestMapper;
use serde_json::{Map, Value, json};

use crate::handler::ResourceHandler;

/// `paths` of one group-version document.
type Paths = Map<String, Value>;
/// `components.schemas` of one group-version document.
type Schemas = Map<String, Value>;

pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The prebuilt OpenAPI v3 documents.
#[derive(Clone, Debug, Default)]
pub struct OpenApi {
    root: Value,
    documents: HashMap<String, (Vec<u8>, String)>,
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The `components.schemas` key of a kind.
pub(crate) fn schema_name(group: &str, version: &str, kind: &str) -> String {
    match group {
        "" => format!("io.k8s.api.core.{version}.{kind}"),
        g if g.ends_with(".k8s.io") => {
            format!(
                "io.k8s.api.{}.{version}.{kind}",
                g.trim_end_matches(".k8s.io")
            )
        }
        g => {
            let reversed: Vec<&str> = g.split('.').rev().collect();
            format!("{}.{version}.{kind}", reversed.join("."))
        }
    }
}

fn param(name: &str, location: &str) -> Value {
    json!({"name": name, "in": location, "schema": {"type": "string"}, "uniqueItems": true})
}

impl OpenApi {
    /// Builds the documents of every handler's group-versions.
    pub fn build(mapper: &RestMapper, handlers: &[Arc<dyn ResourceHandler>]) -> Self {
        let _ = mapper;
        let mut per_gv: BTreeMap<String, (Paths, Schemas)> = BTreeMap::new();
        for handler in handlers {
            let info = handler.info();
            for version in &info.versions {
                let key = gv_path(&info.group, version);
                let (paths, schemas) = per_gv.entry(key.clone()).or_default();
                let gvk = json!({"group": info.group, "version": version, "kind": info.kind});
                let name = schema_name(&info.group, version, &info.kind);
                let reference = json!({"$ref": format!("#/components/schemas/{name}")});
                let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
                let patch_body = json!({"content": {
                    "application/json-patch+json": {"schema": {"type": "object"}},
                    "application/merge-patch+json": {"schema": {"type": "object"}},
                    "application/apply-patch+yaml": {"schema": {"type": "object"}},
                }});
                let write_params = vec![
                    param("dryRun", "query"),
                    param("fieldManager", "query"),
                    param("fieldValidation", "query"),
                ];
                let mut patch_params = write_params.clone();
                patch_params.push(param("force", "query"));
                let base = if info.namespaced {
                    format!("/{key}/namespaces/{{namespace}}/{}", info.plural)
                } else {
                    format!("/{key}/{}", info.plural)
                };
                paths.insert(
                    base.clone(),
                    json!({
                        "get": {"operationId": format!("list{}", info.kind), "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}},
                        "post": {"operationId": format!("create{}", info.kind), "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk, "parameters": write_params, "requestBody": {"content": {"application/json": {"schema": reference}}}, "responses": ok},
                    }),
                );
                paths.insert(
                    format!("{base}/{{name}}"),
                    json!({
                        "get": {"operationId": format!("read{}", info.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
                        "put": {"operationId": format!("replace{}", info.kind), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk, "parameters": write_params, "requestBody": {"content": {"application/json": {"schema": reference}}}, "responses": ok},
                        "patch": {"operationId": format!("patch{}", info.kind), "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk, "parameters": patch_params, "requestBody": patch_body, "responses": ok},
                        "delete": {"operationId": format!("delete{}", info.kind), "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}},
                    }),
                );
                if info.has_subresource("status") {
                    paths.insert(
                        format!("{base}/{{name}}/status"),
                        json!({
                            "get": {"operationId": format!("read{}Status", info.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
                            "put": {"operationId": format!("replace{}Status", info.kind), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk, "parameters": write_params, "responses": ok},
                            "patch": {"operationId": format!("patch{}Status", info.kind), "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk, "parameters": patch_params, "requestBody": patch_body, "responses": ok},
                        }),
                    );
                }
                schemas.insert(name, kind_schema(handler.as_ref(), version));
                schemas.insert(OBJECT_META.to_owned(), object_meta_schema());
            }
        }
        let mut root_paths = Map::new();
        let mut documents = HashMap::new();
        for (key, (paths, schemas)) in per_gv {
            let document = json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::dispatch::KUBERNETES_VERSION.0, crate::dispatch::KUBERNETES_VERSION.1)},
                "paths": paths,
                "components": {"schemas": schemas},
            });
            let body = serde_json::to_vec(&document).unwrap_or_default();
            let mut hasher = DefaultHasher::new();
            body.hash(&mut hasher);
            let hash = format!("{:016X}", hasher.finish());
            root_paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
            documents.insert(key, (body, hash));
        }
        OpenApi {
            root: json!({"paths": root_paths}),
            documents,
        }
    }

    /// Serves `/openapi/v3` + `rest`; `hash` is the request's `?hash=`, if any. As upstream's
    /// kube-openapi handler: a hash that is not the document's current one is redirected
    /// (301) to the current one, and only a matching hash is cacheable forever, since kinds
    /// added or removed while serving change the documents.
    ///
    /// # Errors
    ///
    /// 404 for unknown documents.
    pub fn serve(&self, rest: &str, hash: Option<&str>) -> Result<Response, ApiError> {
        let key = rest.trim_matches('/');
        if key.is_empty() {
            return Ok(crate::http::json_response(StatusCode::OK, &self.root));
        }
        let (body, current) = self.documents.get(key).ok_or_else(crate::http::not_found)?;
        if hash.is_some_and(|asked| asked != current.as_str()) {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
            let location = format!("/openapi/v3/{key}?hash={current}");
            if let Ok(location) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return Ok(response);
        }
        let hashed = hash.is_some();
        let mut response = Response::new(Body::from(body.clone()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{current}\"")) {
            headers.insert(header::ETAG, etag);
        }
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if hashed {
                "public, immutable"
            } else {
                "no-cache, private"
            }),
        );
        Ok(response)
    }
}

/// The schema of a handler's kind at `version` (its own, or one naming only the envelope
/// and metadata), with its `x-kubernetes-group-version-kind`; references point into
/// `#/components/schemas/`.
pub(crate) fn kind_schema(handler: &dyn ResourceHandler, version: &str) -> Value {
    let info = handler.info();
    let gvk = json!({"group": info.group, "version": version, "kind": info.kind});
    let mut schema = handler.openapi_schema(version).unwrap_or_else(|| {
        json!({
            "description": format!("{} of {}.", info.kind, if info.group.is_empty() { "core" } else { &info.group }),
            "type": "object",
            "properties": {
                "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
                "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
                "metadata": {"description": "Standard object's metadata.", "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}]},
            }
        })
    });
    if let Some(map) = schema.as_object_mut() {
        map.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
    }
    schema
}

fn string(description: &str) -> Value {
    json!({"description": description, "type": "string"})
}

fn string_map(description: &str) -> Value {
    json!({"description": description, "type": "object", "additionalProperties": {"type": "string"}})
}

fn envelope(description: &str, fields: Value) -> Value {
    let mut properties = json!({
        "apiVersion": string("APIVersion defines the versioned schema of this representation of an object."),
        "kind": string("Kind is a string value representing the REST resource this object represents."),
        "metadata": {"description": "Standard object's metadata.", "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}]},
    });
    if let (Some(map), Some(extra)) = (properties.as_object_mut(), fields.as_object()) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    json!({"description": description, "type": "object", "properties": properties})
}

pub(crate) fn object_meta_schema() -> Value {
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "type": "object",
        "properties": {
            "name": string("Name must be unique within a namespace."),
            "generateName": string("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            "namespace": string("Namespace defines the space within which each name must be unique."),
            "uid": string("UID is the unique in time and space value for this object."),
            "resourceVersion": string("An opaque value that represents the internal version of this object."),
            "generation": {"description": "A sequence number representing a specific generation of the desired state.", "type": "integer", "format": "int64"},
            "creationTimestamp": {"description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "type": "string", "format": "date-time"},
            "deletionTimestamp": {"description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.", "type": "string", "format": "date-time"},
            "labels": string_map("Map of string keys and values that can be used to organize and categorize objects."),
            "annotations": string_map("Annotations is an unstructured key value map stored with a resource."),
            "finalizers": {"description": "Must be empty before the object is deleted from the registry.", "type": "array", "items": {"type": "string"}},
            "managedFields": {"description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.", "type": "array", "items": {"type": "object"}},
            "ownerReferences": {"description": "List of objects depended by this object.", "type": "array", "items": {"type": "object"}},
        }
    })
}

fn config_map() -> Value {
    envelope(
        "ConfigMap holds configuration data for pods to consume.",
        json!({
            "data": string_map("Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'."),
            "binaryData": {"description": "BinaryData contains the binary data.", "type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
            "immutable": {"description": "Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated.", "type": "boolean"},
        }),
    )
}

fn secret() -> Value {
    envelope(
        "Secret holds secret data of a certain type. The total bytes of the values in the Data field must be less than MaxSecretSize bytes.",
        json!({
            "data": {"description": "Data contains the secret data, base64 encoded.", "type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
            "stringData": string_map("stringData allows specifying non-binary secret data in string form. It is merged into data on write."),
            "type": string("Used to facilitate programmatic handling of secret data."),
            "immutable": {"description": "Immutable, if set to true, ensures that data stored in the Secret cannot be updated.", "type": "boolean"},
        }),
    )
}

fn namespace() -> Value {
    envelope(
        "Namespace provides a scope for Names. Use of multiple namespaces is optional.",
        json!({
            "spec": {"description": "Spec defines the behavior of the Namespace.", "type": "object", "properties": {
                "finalizers": {"description": "Finalizers is an opaque list of values that must be empty to permanently remove object from storage.", "type": "array", "items": {"type": "string"}}
            }},
            "status": {"description": "Status describes the current status of a Namespace.", "type": "object", "properties": {
                "phase": string("Phase is the current lifecycle phase of the namespace: Active or Terminating.")
            }},
        }),
    )
}

fn event() -> Value {
    envelope(
        "Event is a report of an event somewhere in the cluster.",
        json!({
            "involvedObject": {"description": "The object that this event is about.", "type": "object"},
            "reason": string("This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            "message": string("A human-readable description of the status of this operation."),
            "type": string("Type of this event (Normal, Warning)."),
            "count": {"description": "The number of times this event has occurred.", "type": "integer", "format": "int32"},
            "firstTimestamp": {"description": "The time at which the event was first recorded.", "type": "string", "format": "date-time"},
            "lastTimestamp": {"description": "The time at which the most recent occurrence of this event was recorded.", "type": "string", "format": "date-time"},
            "source": {"description": "The component reporting this event.", "type": "object"},
        }),
    )
}

fn lease() -> Value {
    envelope(
        "Lease defines a lease concept.",
        json!({
            "spec": {"description": "spec contains the specification of the Lease.", "type": "object", "properties": {
                "holderIdentity": string("holderIdentity contains the identity of the holder of a current lease."),
                "leaseDurationSeconds": {"description": "leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it.", "type": "integer", "format": "int32"},
                "acquireTime": {"description": "acquireTime is a time when the current lease was acquired.", "type": "string", "format": "date-time"},
                "renewTime": {"description": "renewTime is a time when the current holder of a lease has last updated the lease.", "type": "string", "format": "date-time"},
                "leaseTransitions": {"description": "leaseTransitions is the number of transitions of a lease between holders.", "type": "integer", "format": "int32"},
            }},
        }),
    )
}

fn string_list(description: &str) -> Value {
    json!({"description": description, "type": "array", "items": {"type": "string"}})
}

fn policy_rules() -> Value {
    json!({"description": "Rules holds all the PolicyRules for this Role", "type": "array", "items": {
        "description": "PolicyRule holds information that describes a policy rule, but does not contain information about who the rule applies to or which namespace the rule applies to.",
        "type": "object",
        "required": ["verbs"],
        "properties": {
            "apiGroups": string_list("APIGroups is the name of the APIGroup that contains the resources. If multiple API groups are specified, any action requested against one of the enumerated resources in any API group will be allowed. \"\" represents the core API group and \"*\" represents all API groups."),
            "resources": string_list("Resources is a list of resources this rule applies to. '*' represents all resources."),
            "resourceNames": string_list("ResourceNames is an optional white list of names that the rule applies to. An empty set means that everything is allowed."),
            "nonResourceURLs": string_list("NonResourceURLs is a set of partial urls that a user should have access to. *s are allowed, but only as the full, final step in the path."),
            "verbs": string_list("Verbs is a list of Verbs that apply to ALL the ResourceKinds contained in this rule. '*' represents all verbs."),
        }
    }})
}

fn role() -> Value {
    envelope(
        "Role is a namespaced, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding.",
        json!({"rules": policy_rules()}),
    )
}

fn cluster_role() -> Value {
    envelope(
        "ClusterRole is a cluster level, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding or ClusterRoleBinding.",
        json!({
            "rules": policy_rules(),
            "aggregationRule": {"description": "AggregationRule is an optional field that describes how to build the Rules for this ClusterRole. If AggregationRule is set, then the Rules are controller managed and direct changes to Rules will be stomped by the controller.", "type": "object", "properties": {
                "clusterRoleSelectors": {"description": "ClusterRoleSelectors holds a list of selectors which will be used to find ClusterRoles and create the rules.", "type": "array", "items": {"type": "object"}}
            }},
        }),
    )
}

fn binding(description: &str) -> Value {
    envelope(
        description,
        json!({
            "roleRef": {"description": "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. This field is immutable.", "type": "object", "required": ["apiGroup", "kind", "name"], "properties": {
                "apiGroup": string("APIGroup is the group for the resource being referenced"),
                "kind": string("Kind is the type of resource being referenced"),
                "name": string("Name is the name of resource being referenced"),
            }},
            "subjects": {"description": "Subjects holds references to the objects the role applies to.", "type": "array", "items": {"type": "object", "required": ["kind", "name"], "properties": {
                "apiGroup": string("APIGroup holds the API group of the referenced subject. Defaults to \"\" for ServiceAccount subjects. Defaults to \"rbac.authorization.k8s.io\" for User and Group subjects."),
                "kind": string("Kind of object being referenced. Values defined by this API group are \"User\", \"Group\", and \"ServiceAccount\"."),
                "name": string("Name of the object being referenced."),
                "namespace": string("Namespace of the referenced object."),
            }}},
        }),
    )
}

fn role_binding() -> Value {
    binding(
        "RoleBinding references a role, but does not contain it. It can reference a Role in the same namespace or a ClusterRole in the global namespace.",
    )
}

fn cluster_role_binding() -> Value {
    binding(
        "ClusterRoleBinding references a ClusterRole, but not contain it. It can reference a ClusterRole in the global namespace, and adds who information via Subject.",
    )
}

fn service_account() -> Value {
    envelope(
        "ServiceAccount binds together: * a name, understood by users, and perhaps by peripheral systems, for an identity * a principal that can be authenticated and authorized * a set of secrets",
        json!({
            "secrets": {"description": "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.", "type": "array", "items": {"type": "object"}},
            "imagePullSecrets": {"description": "ImagePullSecrets is a list of references to secrets in the same namespace to use for pulling any images in pods that reference this ServiceAccount.", "type": "array", "items": {"type": "object"}},
            "automountServiceAccountToken": {"description": "AutomountServiceAccountToken indicates whether pods running as this service account should have an API token automatically mounted.", "type": "boolean"},
        }),
    )
}

/// Hand-written schemas of the built-in kinds served, by kind.
pub fn builtin_schemas() -> BTreeMap<&'static str, fn() -> Value> {
    let mut map: BTreeMap<&'static str, fn() -> Value> = BTreeMap::new();
    map.insert("ConfigMap", config_map);
    map.insert("Secret", secret);
    map.insert("Namespace", namespace);
    map.insert("Event", event);
    map.insert("Lease", lease);
    map.insert("Role", role);
    map.insert("ClusterRole", cluster_role);
    map.insert("RoleBinding", role_binding);
    map.insert("ClusterRoleBinding", cluster_role_binding);
    map.insert("ServiceAccount", service_account);
    map
}
