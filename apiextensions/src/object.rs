//! [`Unstructured`]: an object of a kind known only at run time, as a custom resource is.

use std::fmt;

use apimachinery::object::ObjectMeta;
use kube_core::discovery::ApiResource;
use kube_core::{DynamicResourceScope, Resource};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A Kubernetes object whose kind is known only at run time (`unstructured.Unstructured`):
/// typed `apiVersion`, `kind` and `metadata`, every other top-level field as JSON.
///
/// Unlike [`kube_core::DynamicObject`] it has a [`Default`] (the empty object the storage
/// layer starts from) and decodes without serde's buffering of flattened fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unstructured {
    /// `apiVersion`; empty when absent.
    pub api_version: String,
    /// `kind`; empty when absent.
    pub kind: String,
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// Every other top-level field (`spec`, `status`, `data`, ...), in key order.
    pub content: Map<String, Value>,
}

impl Unstructured {
    /// The top-level field `key` (`spec`, `status`, ...), if present.
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.content.get(key)
    }

    /// The whole object as one JSON document.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Resource for Unstructured {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Serialize for Unstructured {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let typed = usize::from(!self.api_version.is_empty()) + usize::from(!self.kind.is_empty());
        let mut map = serializer.serialize_map(Some(typed + 1 + self.content.len()))?;
        if !self.api_version.is_empty() {
            map.serialize_entry("apiVersion", &self.api_version)?;
        }
        if !self.kind.is_empty() {
            map.serialize_entry("kind", &self.kind)?;
        }
        map.serialize_entry("metadata", &self.metadata)?;
        for (key, value) in &self.content {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Unstructured {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UnstructuredVisitor)
    }
}

struct UnstructuredVisitor;

impl<'de> Visitor<'de> for UnstructuredVisitor {
    type Value = Unstructured;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Unstructured, A::Error> {
        let mut object = Unstructured::default();
        while let Some(key) = access.next_key::<String>()? {
            match key.as_str() {
                "apiVersion" => {
                    object.api_version = access.next_value::<Option<String>>()?.unwrap_or_default();
                }
                "kind" => object.kind = access.next_value::<Option<String>>()?.unwrap_or_default(),
                "metadata" => {
                    object.metadata = access
                        .next_value::<Option<ObjectMeta>>()
                        .map_err(|e| de::Error::custom(format!("metadata: {e}")))?
                        .unwrap_or_default();
                }
                _ => {
                    let value: Value = access.next_value()?;
                    object.content.insert(key, value);
                }
            }
        }
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_typed_fields_and_content() {
        let document = json!({
            "apiVersion": "stable.example.com/v1",
            "kind": "CronTab",
            "metadata": {"name": "c1", "namespace": "default", "labels": {"a": "b"}},
            "spec": {"cronSpec": "* * * * */5", "replicas": 3},
            "status": {"ready": true},
        });
        let object: Unstructured = serde_json::from_value(document.clone()).unwrap();
        assert_eq!(object.kind, "CronTab");
        assert_eq!(object.metadata.name.as_deref(), Some("c1"));
        assert_eq!(object.field("spec").unwrap()["replicas"], 3);
        assert_eq!(serde_json::to_value(&object).unwrap(), document);
    }

    #[test]
    fn bad_metadata_is_an_error_naming_it() {
        let error = serde_json::from_value::<Unstructured>(json!({"metadata": {"name": 3}}))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("metadata: "), "{error}");
    }
}
