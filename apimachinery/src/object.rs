//! The object model: one trait that typed structs and dynamic objects share.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
pub use kube_core::{DynamicObject, Resource, TypeMeta};

/// Anything [`crate::Storage`] can store: a Kubernetes object with standard metadata that
/// round-trips through JSON.
///
/// Implemented for every [`kube_core::Resource`] that is also serde-serializable, so
/// `k8s_openapi` types (`Pod`, `ConfigMap`, ...), `#[derive(CustomResource)]` types and
/// [`DynamicObject`] (typed metadata, the rest JSON) all qualify with no extra code.
pub trait Object:
    Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}

impl<T> Object for T where
    T: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}

/// Builds an empty object of the stored type, used for the bookmark events that carry only a
/// resourceVersion, and as the starting state of a create-on-update.
pub type NewFunc<K> = std::sync::Arc<dyn Fn() -> K + Send + Sync>;
