//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) for
//! the built-in kinds kubectl's typed commands send (`kubectl create configmap|secret|namespace`
//! from kubectl 1.32 on): the `k8s\0` envelope holding a `runtime.Unknown` with the object.
//!
//! Only the fields those kinds carry are declared (with their upstream field numbers); prost
//! skips the others. Decoded objects become JSON documents and go through the normal path.

use std::collections::BTreeMap;

use base64::Engine;
use prost::Message;
use registry::status::ApiError;
use serde_json::{Map, Value, json};

/// The protobuf media type.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The magic prefix of Kubernetes protobuf bodies.
const MAGIC: &[u8; 4] = b"k8s\0";

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    type_: Option<String>,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<NamespaceSpec>,
}

fn bad(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {detail}"))
}

fn meta_json(meta: Option<ObjectMeta>) -> Value {
    let meta = meta.unwrap_or_default();
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.insert(key.to_owned(), Value::from(v));
        }
    };
    put("name", meta.name);
    put("generateName", meta.generate_name);
    put("namespace", meta.namespace);
    if !meta.labels.is_empty() {
        out.insert("labels".to_owned(), json!(meta.labels));
    }
    if !meta.annotations.is_empty() {
        out.insert("annotations".to_owned(), json!(meta.annotations));
    }
    if !meta.finalizers.is_empty() {
        out.insert("finalizers".to_owned(), json!(meta.finalizers));
    }
    Value::Object(out)
}

fn bytes_map(map: BTreeMap<String, Vec<u8>>) -> Value {
    let engine = base64::engine::general_purpose::STANDARD;
    Value::Object(
        map.into_iter()
            .map(|(k, v)| (k, Value::from(engine.encode(v))))
            .collect(),
    )
}

/// Decodes a protobuf body into the JSON document of the object it holds.
///
/// # Errors
///
/// 400 BadRequest when the envelope or the object does not decode; 415 for kinds other than
/// ConfigMap, Secret and Namespace of core `v1`.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let Some(rest) = body.strip_prefix(MAGIC.as_slice()) else {
        return Err(bad("missing the k8s protobuf envelope prefix"));
    };
    let unknown = Unknown::decode(rest).map_err(bad)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut object = Map::new();
    object.insert("apiVersion".to_owned(), Value::from(api_version.clone()));
    object.insert("kind".to_owned(), Value::from(kind.clone()));
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => {
            let cm = ConfigMap::decode(raw.as_slice()).map_err(bad)?;
            object.insert("metadata".to_owned(), meta_json(cm.metadata));
            if !cm.data.is_empty() {
                object.insert("data".to_owned(), json!(cm.data));
            }
            if !cm.binary_data.is_empty() {
                object.insert("binaryData".to_owned(), bytes_map(cm.binary_data));
            }
            if let Some(immutable) = cm.immutable {
                object.insert("immutable".to_owned(), Value::from(immutable));
            }
        }
        ("v1", "Secret") => {
            let secret = Secret::decode(raw.as_slice()).map_err(bad)?;
            object.insert("metadata".to_owned(), meta_json(secret.metadata));
            if !secret.data.is_empty() {
                object.insert("data".to_owned(), bytes_map(secret.data));
            }
            if !secret.string_data.is_empty() {
                object.insert("stringData".to_owned(), json!(secret.string_data));
            }
            if let Some(t) = secret.type_.filter(|t| !t.is_empty()) {
                object.insert("type".to_owned(), Value::from(t));
            }
            if let Some(immutable) = secret.immutable {
                object.insert("immutable".to_owned(), Value::from(immutable));
            }
        }
        ("v1", "Namespace") => {
            let ns = Namespace::decode(raw.as_slice()).map_err(bad)?;
            object.insert("metadata".to_owned(), meta_json(ns.metadata));
            if let Some(spec) = ns.spec.filter(|s| !s.finalizers.is_empty()) {
                object.insert("spec".to_owned(), json!({ "finalizers": spec.finalizers }));
            }
        }
        _ => {
            return Err(ApiError::unsupported_media_type(&format!(
                "protobuf bodies are supported for v1 ConfigMap, Secret and Namespace only, not {api_version}/{kind}; send application/json"
            )));
        }
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_configmap_envelope() {
        let cm = ConfigMap {
            metadata: Some(ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            }),
            data: [("a".to_owned(), "b".to_owned())].into_iter().collect(),
            ..Default::default()
        };
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
            }),
            raw: Some(cm.encode_to_vec()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        let value = decode(&body).unwrap();
        assert_eq!(
            value,
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"b"}})
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
    }
}
