//! The built-in core kinds as kube-apiserver describes them in discovery, registered as typed
//! `k8s_openapi` kinds served and stored at `v1` with no conversion.

use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};

use super::convert::{RegistrationError, Scheme};
use super::info::{ResourceInfo, SubresourceInfo};

/// `configmaps` (`cm`).
pub fn configmaps() -> ResourceInfo {
    ResourceInfo::for_type::<ConfigMap>().with_short_names(&["cm"])
}

/// `secrets`.
pub fn secrets() -> ResourceInfo {
    ResourceInfo::for_type::<Secret>()
}

/// `namespaces` (`ns`), cluster-scoped, with `finalize` (update only) and `status`; no
/// `deletecollection`, as in kube-apiserver.
pub fn namespaces() -> ResourceInfo {
    ResourceInfo::for_type::<Namespace>()
        .with_short_names(&["ns"])
        .with_verbs(&[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ])
        .with_subresource(SubresourceInfo::new("finalize", "Namespace", &["update"]))
        .with_status_subresource()
}

/// `events` (`ev`), core `v1`.
pub fn events() -> ResourceInfo {
    ResourceInfo::for_type::<Event>().with_short_names(&["ev"])
}

/// Registers configmaps, secrets, namespaces and events.
///
/// # Errors
///
/// [`RegistrationError`] when one of them is already registered.
pub fn register_core(scheme: &mut Scheme) -> Result<(), RegistrationError> {
    scheme.register_typed::<ConfigMap>(configmaps())?;
    scheme.register_typed::<Secret>(secrets())?;
    scheme.register_typed::<Namespace>(namespaces())?;
    scheme.register_typed::<Event>(events())?;
    Ok(())
}
