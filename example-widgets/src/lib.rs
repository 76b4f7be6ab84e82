//! The example group `apps.example.io`: kind `Widget`, served at `v1beta1` and `v1`, stored
//! as `v1`, converted through a hub (internal) version.
//!
//! `Widget` is the example resource `XXX` of the design notes the project started from: a
//! namespaced object with `spec.displayName`, `spec.description`, `status.phase`
//! (`Pending`/`Running`), `status.observedGeneration` and `status.conditions` (standard
//! `metav1.Condition`s, a map-list keyed by `type`). Resource `widgets`, singular `widget`,
//! short name `wd`, category `all`, `status` subresource.
//!
//! # Versions
//!
//! | v1beta1 (the first release)      | v1 (storage version)         | hub (`__internal`)      |
//! |----------------------------------|------------------------------|-------------------------|
//! | `spec.title`                     | `spec.displayName`           | `spec.displayName`      |
//! | annotation [`DESCRIPTION_ANNOTATION`] | `spec.description`      | `spec.description`      |
//! | `status.ready` (bool)            | `status.phase` (`Pending`/`Running`) | `status.phase`  |
//! | `status.observedGeneration`      | `status.observedGeneration`  | same                    |
//! | `status.conditions`              | `status.conditions`          | same                    |
//!
//! Conversion rules (lossless both ways for every valid object):
//!
//! - `spec.title` <-> `spec.displayName`: a rename.
//! - `spec.description` was added in v1. A v1beta1 object carries it in the annotation
//!   [`DESCRIPTION_ANNOTATION`], as Kubernetes carries fields a version lacks (for example
//!   `autoscaling/v1` HorizontalPodAutoscalers carrying `v2` metrics in annotations).
//!   v1beta1 -> hub moves the annotation's value into `spec.description` and removes the
//!   annotation (dropping the annotations map if that empties it); hub -> v1beta1 writes
//!   `spec.description` into the annotation. Objects in v1 (and the hub) may not carry the
//!   annotation themselves: validation forbids it, so it never shadows the field.
//! - `status.ready: true` <-> `status.phase: Running`, `ready: false` <-> `phase: Pending`,
//!   absent <-> absent. A phase outside the enum (which validation rejects) has no v1beta1
//!   form: converting it to v1beta1 fails (500 on a read, which only corrupt data can cause).
//! - Everything else (metadata, observedGeneration, conditions) is copied.
//!
//! As in Go (`omitempty`), an empty map or list and an absent one mean the same: defaulting
//! writes them as absent, and so do conversions, so "lossless" is about objects in that
//! canonical form, which is every object the server stores.
//!
//! # Defaulting (applied on decode, per version)
//!
//! v1: an empty `spec.description` is removed. v1beta1: an empty description annotation is
//! removed. Both: empty `metadata.annotations` and empty `status.conditions` are removed.
//! Status is never defaulted; controllers set it.
//!
//! # Validation
//!
//! [`validate`] (the Store strategy calls it) returns `FieldError`s for: `spec.displayName`
//! required and at most [`MAX_DISPLAY_NAME_LENGTH`] bytes; `spec.description` at most
//! [`MAX_DESCRIPTION_LENGTH`] bytes; `status.phase` in the enum; `status.observedGeneration`
//! not negative; conditions with a unique, non-empty `type`, `status` in
//! `True`/`False`/`Unknown`, a `reason` in CamelCase form, bounded `message`; no
//! [`DESCRIPTION_ANNOTATION`].
//!
//! # Store
//!
//! [`WidgetStrategy`] and [`WidgetStatusStrategy`] (module [`strategy`]) drive the generic
//! [`Store`](crate::Store); [`widget_store`] builds it.
//!
//! See also `registry/src/example/README.md`.

mod conversion;
pub mod internal;
mod openapi;
pub mod strategy;
pub mod v1;
pub mod v1beta1;
mod validation;

use std::sync::Arc;

use scheme::{RegistrationError, ResourceInfo, Scheme};

pub use conversion::{
    WidgetConverter, default_v1, default_v1beta1, hub_to_v1, hub_to_v1beta1, v1_to_hub,
    v1beta1_to_hub,
};
pub use openapi::openapi_schema;
pub use strategy::{WidgetStatusStrategy, WidgetStrategy, widget_status_strategy, widget_store};
pub use validation::{
    MAX_CONDITION_MESSAGE_LENGTH, MAX_CONDITION_REASON_LENGTH, MAX_CONDITION_TYPE_LENGTH,
    MAX_DESCRIPTION_LENGTH, MAX_DISPLAY_NAME_LENGTH, validate, validate_internal, validate_spec,
    validate_status,
};

/// The API group.
pub const GROUP: &str = "apps.example.io";
/// The kind.
pub const KIND: &str = "Widget";
/// The kind of lists.
pub const LIST_KIND: &str = "WidgetList";
/// The plural resource name.
pub const PLURAL: &str = "widgets";
/// The singular resource name.
pub const SINGULAR: &str = "widget";
/// The short name (`kubectl get wd`).
pub const SHORT_NAME: &str = "wd";
/// The storage version.
pub const STORAGE_VERSION: &str = "v1";
/// Served versions, most preferred first.
pub const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// The annotation that carries v1's `spec.description` on v1beta1 objects.
pub const DESCRIPTION_ANNOTATION: &str = "widgets.apps.example.io/description";

/// `status.phase` value: the widget is not running yet.
pub const PHASE_PENDING: &str = "Pending";
/// `status.phase` value: the widget is running.
pub const PHASE_RUNNING: &str = "Running";

/// The resource info of `widgets`.
pub fn widget_resource_info() -> ResourceInfo {
    ResourceInfo::new(GROUP, STORAGE_VERSION, KIND, PLURAL)
        .with_versions(&VERSIONS, STORAGE_VERSION)
        .with_singular(SINGULAR)
        .with_short_names(&[SHORT_NAME])
        .with_categories(&["all"])
        .with_status_subresource()
}

/// Registers the example group in `scheme`.
///
/// # Errors
///
/// [`RegistrationError`] when `widgets.apps.example.io` is already registered.
pub fn register(scheme: &mut Scheme) -> Result<(), RegistrationError> {
    scheme.register(widget_resource_info(), Arc::new(WidgetConverter))
}

/// Deserializes `null` as the default value (Go decodes `"spec": null` into an empty struct).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Serde for a top-level object with `apiVersion`, `kind`, `metadata`, `spec` and `status`:
/// serialization always writes `apiVersion` and `kind`; deserialization accepts them absent
/// and rejects other values.
macro_rules! object_serde {
    ($ty:ident, $spec:ty, $status:ty, $api_version:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let mut state = serializer.serialize_struct(stringify!($ty), 5)?;
                state.serialize_field("apiVersion", $api_version)?;
                state.serialize_field("kind", $crate::KIND)?;
                state.serialize_field("metadata", &self.metadata)?;
                state.serialize_field("spec", &self.spec)?;
                state.serialize_field("status", &self.status)?;
                state.end()
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Wire {
                    #[serde(default)]
                    api_version: Option<String>,
                    #[serde(default)]
                    kind: Option<String>,
                    #[serde(default, deserialize_with = "crate::null_as_default")]
                    metadata: ::apimachinery::object::ObjectMeta,
                    #[serde(default, deserialize_with = "crate::null_as_default")]
                    spec: $spec,
                    #[serde(default, deserialize_with = "crate::null_as_default")]
                    status: $status,
                }
                let wire = Wire::deserialize(deserializer)?;
                if let Some(api_version) = wire.api_version.filter(|v| !v.is_empty()) {
                    if api_version != $api_version {
                        return Err(serde::de::Error::custom(format!(
                            "expected apiVersion {:?}, got {api_version:?}",
                            $api_version
                        )));
                    }
                }
                if let Some(kind) = wire.kind.filter(|k| !k.is_empty()) {
                    if kind != $crate::KIND {
                        return Err(serde::de::Error::custom(format!(
                            "expected kind {:?}, got {kind:?}",
                            $crate::KIND
                        )));
                    }
                }
                Ok($ty {
                    metadata: wire.metadata,
                    spec: wire.spec,
                    status: wire.status,
                })
            }
        }
    };
}

/// `k8s_openapi` resource traits (hence `kube_core::Resource` and [`apimachinery::Object`]) for a
/// served version's `Widget`.
macro_rules! widget_resource {
    ($ty:ident, $version:expr, $api_version:expr) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = $api_version;
            const GROUP: &'static str = $crate::GROUP;
            const KIND: &'static str = $crate::KIND;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $crate::PLURAL;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::ListableResource for $ty {
            const LIST_KIND: &'static str = $crate::LIST_KIND;
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = ::apimachinery::object::ObjectMeta;

            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }
    };
}

pub(crate) use {object_serde, widget_resource};
