//! The version a request is written in: how a stored object is shown to a client's document
//! (create and update bodies, patches, `managedFields`) and how such a document becomes a
//! stored object again.
//!
//! Without a view the Store uses the stored type's own JSON (`K`'s serialization, the storage
//! version). [`SchemeView`] shows objects in a served version through the [`Scheme`] (stored
//! version -> hub -> request version, and back with defaulting), as Kubernetes works on the
//! versioned object of the request.

use std::sync::Arc;

use serde_json::Value;

use apimachinery::object::Object;
use apimachinery::status::{ApiError, FieldError};
use scheme::{ResourceInfo, Scheme};

/// The version a request is written in: how a stored object is shown as a document of that
/// version and how such a document becomes a stored object again.
pub trait VersionView<K>: Send + Sync {
    /// The `apiVersion` of documents in this view, which apply bodies must name (`""`: not
    /// checked).
    fn api_version(&self) -> String;

    /// The kind of documents in this view, which apply bodies must name (`""`: not checked).
    fn kind(&self) -> String;

    /// The stored object as a document of this view.
    fn encode(&self, object: &K) -> Result<Value, ApiError>;

    /// A patched document of this view as the stored type.
    fn decode(&self, document: Value) -> Result<K, ApiError>;
}

/// The stored type's own JSON: the view of a request that names none.
pub(crate) struct StoredView {
    /// The `apiVersion` an empty object of the type serializes with.
    api_version: String,
    /// The kind an empty object of the type serializes with, else the Store's kind.
    kind: String,
}

impl StoredView {
    /// The view of `K`'s JSON, with the `apiVersion` and `kind` `empty` (a new object of the
    /// type) serializes with: typed kinds always do, dynamic ones when their constructor sets
    /// them. `kind` stands in for a kind the type leaves out.
    pub(crate) fn of<K: Object>(empty: K, kind: &str) -> Self {
        let probe = serde_json::to_value(empty).unwrap_or_default();
        let field = |name: &str| {
            probe
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let own_kind = field("kind");
        StoredView {
            api_version: field("apiVersion"),
            kind: if own_kind.is_empty() {
                kind.to_owned()
            } else {
                own_kind
            },
        }
    }
}

impl<K: Object> VersionView<K> for StoredView {
    fn api_version(&self) -> String {
        self.api_version.clone()
    }

    fn kind(&self) -> String {
        self.kind.clone()
    }

    fn encode(&self, object: &K) -> Result<Value, ApiError> {
        serde_json::to_value(object)
            .map_err(|e| ApiError::internal(format!("encoding object: {e}")))
    }

    fn decode(&self, document: Value) -> Result<K, ApiError> {
        serde_json::from_value(document.clone()).map_err(|e| {
            ApiError::invalid(
                "",
                "",
                "",
                &[FieldError::invalid(
                    "patch",
                    document.to_string(),
                    e.to_string(),
                )],
            )
        })
    }
}

/// A served version of a kind registered in a [`Scheme`]: patches see the stored object
/// converted to `version` (through the hub) and their result is defaulted in `version` and
/// converted to the storage version, as a request body would be
/// ([`Scheme::decode_to_storage`]).
#[derive(Clone)]
pub struct SchemeView {
    scheme: Arc<Scheme>,
    info: ResourceInfo,
    version: String,
}

impl SchemeView {
    /// The view of the kind `info` describes at `version`.
    pub fn new(scheme: Arc<Scheme>, info: ResourceInfo, version: impl Into<String>) -> Self {
        SchemeView {
            scheme,
            info,
            version: version.into(),
        }
    }
}

impl std::fmt::Debug for SchemeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemeView")
            .field("kind", &self.info.gvk(&self.version))
            .finish()
    }
}

impl<K: Object> VersionView<K> for SchemeView {
    fn api_version(&self) -> String {
        self.info.gvk(&self.version).api_version()
    }

    fn kind(&self) -> String {
        self.info.kind.clone()
    }

    fn encode(&self, object: &K) -> Result<Value, ApiError> {
        encode_versioned(&self.scheme, &self.info, object, &self.version)
    }

    fn decode(&self, document: Value) -> Result<K, ApiError> {
        self.scheme
            .decode_typed(&self.info.gvk(&self.version), document)
    }
}

/// A stored object of the kind `info` describes as a document in `version`: its own JSON
/// (given the storage version's `apiVersion` and `kind` when the type leaves them out),
/// converted through the hub by `scheme`.
///
/// # Errors
///
/// 500 when the object does not serialize or the conversion fails.
pub fn encode_versioned<K: serde::Serialize>(
    scheme: &Scheme,
    info: &ResourceInfo,
    object: &K,
    version: &str,
) -> Result<Value, ApiError> {
    let mut value = serde_json::to_value(object)
        .map_err(|e| ApiError::internal(format!("encoding object: {e}")))?;
    if let Some(map) = value.as_object_mut() {
        if !map.contains_key("apiVersion") || !map.contains_key("kind") {
            let gvk = info.storage_gvk();
            map.entry("apiVersion")
                .or_insert_with(|| Value::from(gvk.api_version()));
            map.entry("kind").or_insert_with(|| Value::from(gvk.kind));
        }
    }
    scheme.convert(value, version)
}
