//! Scheme and RESTMapper: which kinds the server serves, under which names, at which
//! versions, and how objects convert between those versions.
//!
//! Kubernetes keeps this knowledge in `runtime.Scheme` (group/version/kind <-> Go type,
//! conversion and defaulting functions) and `meta.RESTMapper` (resource names <-> kinds).
//! Here:
//!
//! - [`GroupVersion`], [`GroupKind`], [`GroupVersionKind`], [`GroupVersionResource`] print as
//!   Kubernetes prints them (`apps.example.io/v1, Kind=Widget`);
//!   [`GroupResource`](apimachinery::status::GroupResource) lives in [`apimachinery::status`].
//! - [`ResourceInfo`] describes one served resource: group, served versions in preference
//!   order, storage version, kind and list kind, plural/singular/short names, categories,
//!   scope, subresources and discovery verbs.
//! - [`Scheme`] maps kinds to their info and holds one [`Converter`] per kind. Versioned API
//!   objects are converted to a hub (internal) version and stored in the storage version:
//!   a request body in version X is defaulted in X, converted to the hub, then to the storage
//!   version ([`Scheme::decode_to_storage`]); a read converts the stored version to the hub and
//!   on to the requested version ([`Scheme::convert`]). Conversion works on
//!   `serde_json::Value` documents at this boundary; a converter may decode into typed structs
//!   underneath (the example group's `Widget` does).
//! - Built-in kinds register with [`Scheme::register_typed`] and a [`TypedConverter`]: one
//!   version, served and stored, which is also their hub; no conversion. See [`builtin`].
//! - Multi-version kinds register with [`Scheme::register`] and their own [`Converter`] whose
//!   hub version is [`INTERNAL_VERSION`] (see `crate::example`).
//! - [`RestMapper`] resolves what users type (`wd`, `widgets`, `Widget`,
//!   `widgets.apps.example.io`) case-insensitively, reports ambiguity, expands categories, and
//!   produces the discovery documents.
//!
//! Errors are [`ApiError`](apimachinery::status::ApiError)s: a body naming an unknown kind or version
//! is 400 BadRequest (`no kind "X" is registered for version "g/v"`), a body that does not fit
//! its version's schema is 400 (`X in version "v" cannot be handled as a X: ...`), a path
//! naming an unserved version is 404 NotFound, and a conversion that fails on server-side data
//! is 500 InternalError.

// Scheme operations fail with the ApiError a request returns; it is large, and boxing it would
// only move an allocation to every caller.

pub mod builtin;
mod convert;
mod discovery;
mod gvk;
mod info;
mod mapper;

pub use convert::{ConversionError, Converter, RegistrationError, Scheme, TypedConverter};
pub use discovery::AGGREGATED_DISCOVERY_CONTENT_TYPE;
pub use gvk::{GroupKind, GroupVersion, GroupVersionKind, GroupVersionResource, INTERNAL_VERSION};
pub use info::{ResourceInfo, STANDARD_VERBS, SUBRESOURCE_VERBS, ScopeKind, SubresourceInfo};
pub use mapper::{ApiGroupInfo, RestMapper, RestMapping};
