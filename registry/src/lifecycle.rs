//! The namespace checks of namespaced writes: upstream's `NamespaceLifecycle` admission plugin
//! for creates and updates, run by the [`Store`] itself so that an update that creates (PUT of
//! a missing event, server-side apply) is admitted as a create, inside the same request.
//!
//! A store given a [`NamespaceLifecycle`] ([`Store::with_namespace_lifecycle`]) refuses every
//! create and update into a namespace that does not exist (404 `namespaces "<ns>" not found`)
//! and every create into a namespace being terminated (403, naming the object, with a
//! `NamespaceTerminating` cause). Updates of existing objects in a terminating namespace and
//! deletes are always allowed, so the namespace controller and finalizer owners can finish.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;

use super::Store;
use apimachinery::status::{ApiError, GroupResource};

/// `v1.NamespaceTerminatingCause`: the cause reason of a create refused because its namespace
/// is being terminated.
pub const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// Where a namespace stands, for the admission of writes into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespacePhase {
    /// The namespace does not exist.
    Missing,
    /// The namespace exists and takes new content.
    Active,
    /// The namespace is being terminated (`status.phase` is `Terminating`): no new content.
    Terminating,
}

/// Tells a [`Store`] of a namespaced kind where the namespace of a write stands.
#[async_trait]
pub trait NamespaceLifecycle: Send + Sync {
    /// The phase of `namespace`.
    ///
    /// # Errors
    ///
    /// When the namespace cannot be read (the write fails with this error).
    async fn phase(&self, namespace: &str) -> Result<NamespacePhase, ApiError>;
}

/// The namespaces store itself answers: a namespace is terminating when its `status.phase`
/// says so (as the admission plugin reads it).
#[async_trait]
impl NamespaceLifecycle for Store<Namespace> {
    async fn phase(&self, namespace: &str) -> Result<NamespacePhase, ApiError> {
        match self.get("", namespace, "").await {
            Ok(ns) => {
                let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
                Ok(if phase == Some("Terminating") {
                    NamespacePhase::Terminating
                } else {
                    NamespacePhase::Active
                })
            }
            Err(error) if error.code == 404 => Ok(NamespacePhase::Missing),
            Err(error) => Err(error),
        }
    }
}

/// 404 `namespaces "<namespace>" not found`: a write into a missing namespace.
pub fn namespace_not_found(namespace: &str) -> ApiError {
    ApiError::not_found(&GroupResource::new("", "namespaces"), namespace)
}

/// 403 for a create into a terminating namespace, as the admission plugin words it:
/// `<resource> "<name>" is forbidden: unable to create new content in namespace <namespace>
/// because it is being terminated`, with details naming the object and one
/// [`NAMESPACE_TERMINATING_CAUSE`] cause on `metadata.namespace`. `name` is the object's name,
/// else its `generateName` (names are generated later), else `Unknown`.
pub fn namespace_terminating(resource: &GroupResource, name: &str, namespace: &str) -> ApiError {
    let mut error = ApiError::forbidden(
        resource,
        name,
        format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        ),
    );
    if let Some(details) = error.details.as_mut() {
        details
            .causes
            .get_or_insert_with(Vec::new)
            .push(StatusCause {
                reason: Some(NAMESPACE_TERMINATING_CAUSE.to_owned()),
                message: Some(format!("namespace {namespace} is being terminated")),
                field: Some("metadata.namespace".to_owned()),
            });
    }
    error
}
