//! The namespace lifecycle, as kube-apiserver runs it:
//!
//! - the [`BOOTSTRAP_NAMESPACES`] at startup ([`ensure_namespace`]);
//! - the `NamespaceLifecycle` admission plugin: the immortal namespaces cannot be deleted
//!   ([`admit_delete`]), and namespaced creates and updates are checked against their
//!   namespace by the registry Store itself, through the [`NamespaceBinding`] every namespaced
//!   store of a [`ServerBuilder`](crate::ServerBuilder) gets (missing: 404; terminating: 403
//!   for anything that creates, PUT and apply included);
//! - the `namespaces/finalize` subresource: served by the namespaces' [`crate::StoreHandler`]
//!   like any update-only subresource with a strategy of its own
//!   (`builtin_kinds::NamespaceFinalizeStrategy`);
//! - the namespace controller ([`run_controller`]): it deletes the contents of terminating
//!   namespaces, reports progress in `status.conditions`, and then removes the `kubernetes`
//!   finalizer through `finalize`, which deletes the namespace (`ShouldDeleteNamespaceDuringUpdate`).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use apimachinery::status::{ApiError, GroupResource};
use async_trait::async_trait;
use builtin_kinds::NAMESPACE_FINALIZER;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use object_storage::ListOptions;
use registry::{CreateOptions, NamespaceLifecycle, NamespacePhase, Store, UpdateOptions};
use scheme::ResourceInfo;
use serde_json::Value;

use crate::handler::RequestContext;
use crate::server::ServerState;

/// How often the controller looks for terminating namespaces.
pub const RESYNC: Duration = Duration::from_millis(500);

/// The namespaces the server creates when it starts: `default` (upstream's bootstrap
/// controller) and the system namespaces of upstream's `systemnamespaces` controller
/// (`pkg/controlplane/controller/systemnamespaces`).
pub const BOOTSTRAP_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The namespaces that can never be deleted (the admission plugin's default immortal set).
pub const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// The namespace store the namespaced stores of a server check their writes against
/// ([`registry::lifecycle`]). It is bound once the `namespaces` kind is registered, so
/// kinds may be registered in any order; unbound (namespaces not served), every namespace is
/// taken to be active.
#[derive(Debug, Default)]
pub struct NamespaceBinding {
    store: OnceLock<Store<Namespace>>,
}

impl NamespaceBinding {
    /// Binds the namespaces store; later binds are ignored (one namespaces kind per server).
    pub fn bind(&self, store: &Store<Namespace>) {
        if self.store.set(store.clone()).is_err() {
            tracing::warn!("namespaces registered twice: keeping the first store");
        }
    }
}

#[async_trait]
impl NamespaceLifecycle for NamespaceBinding {
    async fn phase(&self, namespace: &str) -> Result<NamespacePhase, ApiError> {
        match self.store.get() {
            Some(store) => store.phase(namespace).await,
            None => Ok(NamespacePhase::Active),
        }
    }
}

/// Creates namespace `name` if namespaces are served and it does not exist.
///
/// # Errors
///
/// When the storage fails.
pub async fn ensure_namespace(state: &ServerState, name: &str) -> Result<(), ApiError> {
    let Some(store) = &state.namespaces else {
        return Ok(());
    };
    if store.get("", name, "").await.is_ok() {
        return Ok(());
    }
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match store.create("", namespace, &CreateOptions::default()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// `NamespaceLifecycle` admission of a delete: the [`IMMORTAL_NAMESPACES`] may not be deleted
/// (403 `namespaces "default" is forbidden: this namespace may not be deleted`), whether or not
/// they exist. Other deletes pass.
///
/// # Errors
///
/// As described.
pub fn admit_delete(info: &ResourceInfo, name: &str) -> Result<(), ApiError> {
    if info.group.is_empty() && info.kind == "Namespace" && IMMORTAL_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            &info.group_resource(),
            name,
            "this namespace may not be deleted",
        ));
    }
    Ok(())
}

/// Runs until shutdown: every [`RESYNC`], finishes the deletion of terminating namespaces
/// (`namespacedResourcesDeleter.Delete`).
pub async fn run_controller(state: Arc<ServerState>) {
    let mut shutdown = state.shutdown_rx.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RESYNC) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        if let Err(error) = sync(&state).await {
            tracing::warn!(%error, "namespace controller");
        }
    }
}

async fn sync(state: &ServerState) -> Result<(), ApiError> {
    let Some(store) = &state.namespaces else {
        return Ok(());
    };
    let list = store.list("", &ListOptions::default()).await?;
    for namespace in list.items {
        if namespace.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let span = tracing::info_span!("namespace_finalize", namespace = %name);
        let _enter = span.enter();
        if let Err(error) = sync_namespace(state, store, namespace).await {
            tracing::warn!(%error, namespace = %name, "deleting namespace content");
        }
    }
    Ok(())
}

fn phase_of(namespace: &Namespace) -> Option<&str> {
    namespace.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn spec_finalizers(namespace: &Namespace) -> &[String] {
    namespace
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_deref())
        .unwrap_or_default()
}

/// One pass over a namespace being deleted: phase `Terminating`, then (unless finalized
/// already) delete its content, record the conditions, and remove the `kubernetes` finalizer
/// once nothing is left.
async fn sync_namespace(
    state: &ServerState,
    store: &Store<Namespace>,
    namespace: Namespace,
) -> Result<(), ApiError> {
    let name = namespace.metadata.name.clone().unwrap_or_default();
    if phase_of(&namespace) != Some("Terminating") {
        let result = update_status(store, &name, |status| {
            status.phase = Some("Terminating".to_owned());
        })
        .await;
        match result {
            Err(e) if e.code == 404 => return Ok(()),
            other => other?,
        }
    }
    if spec_finalizers(&namespace).is_empty() {
        // Finalized: nothing of ours to do (upstream returns too).
        return Ok(());
    }
    let content = delete_content(state, &name).await;
    let conditions = content.conditions();
    let mut current = namespace.status.clone().unwrap_or_default();
    let before = current.clone();
    merge_conditions(&mut current, &conditions);
    if current != before {
        let result = update_status(store, &name, |status| {
            merge_conditions(status, &conditions);
        })
        .await;
        match result {
            Err(e) if e.code == 404 => return Ok(()),
            other => other?,
        }
    }
    if !content.errors.is_empty() {
        return Err(ApiError::internal(content.failure_message()));
    }
    if !content.remaining.is_empty() {
        tracing::debug!(namespace = %name, remaining = ?content.remaining, "content remains");
        return Ok(());
    }
    remove_finalizer(store, &name).await
}

/// What deleting a namespace's content left (`allGVRDeletionMetadata` and the errors).
#[derive(Debug, Default)]
struct Content {
    /// Objects left per resource, as `<resource>.<group>`.
    remaining: BTreeMap<String, usize>,
    /// Objects left per finalizer they carry.
    finalizers: BTreeMap<String, usize>,
    /// Failures, one per resource.
    errors: Vec<String>,
}

impl Content {
    /// `Failed to delete all resource types, N remaining: ...`.
    fn failure_message(&self) -> String {
        let mut errors = self.errors.clone();
        errors.sort();
        format!(
            "Failed to delete all resource types, {} remaining: {}",
            errors.len(),
            errors.join(", ")
        )
    }

    /// The deletion conditions upstream's `namespaceConditionUpdater` reports, failures or
    /// their "ok" variants.
    fn conditions(&self) -> Vec<(&'static str, bool, &'static str, String)> {
        let remaining: Vec<String> = self
            .remaining
            .iter()
            .map(|(resource, n)| format!("{resource} has {n} resource instances"))
            .collect();
        let finalizers: Vec<String> = self
            .finalizers
            .iter()
            .map(|(finalizer, n)| format!("{finalizer} in {n} resource instances"))
            .collect();
        vec![
            (
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".to_owned(),
            ),
            (
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed".to_owned(),
            ),
            if self.errors.is_empty() {
                (
                    "NamespaceDeletionContentFailure",
                    false,
                    "ContentDeleted",
                    "All content successfully deleted, may be waiting on finalization".to_owned(),
                )
            } else {
                (
                    "NamespaceDeletionContentFailure",
                    true,
                    "ContentDeletionFailed",
                    self.failure_message(),
                )
            },
            if remaining.is_empty() {
                (
                    "NamespaceContentRemaining",
                    false,
                    "ContentRemoved",
                    "All content successfully removed".to_owned(),
                )
            } else {
                (
                    "NamespaceContentRemaining",
                    true,
                    "SomeResourcesRemain",
                    format!("Some resources are remaining: {}", remaining.join(", ")),
                )
            },
            if finalizers.is_empty() {
                (
                    "NamespaceFinalizersRemaining",
                    false,
                    "ContentRemoved",
                    "All content successfully removed".to_owned(),
                )
            } else {
                (
                    "NamespaceFinalizersRemaining",
                    true,
                    "SomeFinalizerRemain",
                    format!("Some finalizers are remaining: {}", finalizers.join(", ")),
                )
            },
        ]
    }
}

/// `updateConditions`: sets each condition, keeping `lastTransitionTime` while its status is
/// unchanged.
fn merge_conditions(
    status: &mut NamespaceStatus,
    conditions: &[(&'static str, bool, &'static str, String)],
) {
    let list = status.conditions.get_or_insert_with(Vec::new);
    for (type_, failing, reason, message) in conditions {
        let value = if *failing { "True" } else { "False" };
        match list.iter_mut().find(|c| c.type_ == *type_) {
            Some(old) => {
                if old.status != value {
                    old.last_transition_time = Some(registry::system::now());
                }
                old.status = value.to_owned();
                old.reason = Some((*reason).to_owned());
                old.message = Some(message.clone());
            }
            None => list.push(NamespaceCondition {
                type_: (*type_).to_owned(),
                status: value.to_owned(),
                last_transition_time: Some(registry::system::now()),
                reason: Some((*reason).to_owned()),
                message: Some(message.clone()),
            }),
        }
    }
}

/// Deletes everything in `namespace` (`deleteAllContent`): every namespaced resource that can
/// be deleted, by deletecollection or one by one, with background propagation; then lists
/// what is left. Failures are collected per resource, the other resources still proceed.
async fn delete_content(state: &ServerState, namespace: &str) -> Content {
    let mut content = Content::default();
    let kinds = state.kinds();
    for handler in &kinds.ordered {
        let info = handler.info();
        let can = |verb: &str| info.verbs.iter().any(|v| v == verb);
        if !info.namespaced || !can("delete") || !can("list") {
            continue;
        }
        let ctx = RequestContext {
            namespace: namespace.to_owned(),
            version: info.storage_version.clone(),
            ..RequestContext::default()
        };
        let options = DeleteOptions {
            propagation_policy: Some("Background".to_owned()),
            ..DeleteOptions::default()
        };
        let deleted = if can("deletecollection") {
            handler
                .delete_collection(&ctx, &options, &ListOptions::default())
                .await
                .map(|_| ())
        } else {
            delete_each(handler.as_ref(), &ctx, &options).await
        };
        let resource = format!("{}.{}", info.plural, info.group);
        let gvr = format!(
            "{}/{}, Resource={}",
            info.group, info.storage_version, info.plural
        );
        if let Err(error) = deleted {
            content.errors.push(error.message);
            continue;
        }
        let left = match handler.list(&ctx, &ListOptions::default()).await {
            Ok(list) => list.items,
            Err(error) => {
                content.errors.push(error.message);
                continue;
            }
        };
        if left.is_empty() {
            continue;
        }
        content.remaining.insert(resource, left.len());
        let mut with_finalizers = false;
        for item in &left {
            let finalizers = item
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            for finalizer in finalizers {
                with_finalizers = true;
                *content.finalizers.entry(finalizer.to_owned()).or_default() += 1;
            }
        }
        if !with_finalizers {
            // Nothing holds them: they should have gone.
            content.errors.push(format!(
                "unexpected items still remain in namespace: {namespace} for gvr: {gvr}"
            ));
        }
    }
    content
}

/// `deleteEachItem`: lists and deletes one by one (404 and 405 are fine).
async fn delete_each(
    handler: &dyn crate::handler::ResourceHandler,
    ctx: &RequestContext,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let list = handler.list(ctx, &ListOptions::default()).await?;
    for item in list.items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match handler.delete(ctx, name, options).await {
            Ok(_) => {}
            Err(e) if e.code == 404 || e.code == 405 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `change` to the namespace's status through the status strategy.
async fn update_status(
    store: &Store<Namespace>,
    name: &str,
    change: impl Fn(&mut NamespaceStatus) + Send + Sync,
) -> Result<(), ApiError> {
    store
        .update_with(
            "",
            name,
            "status",
            |current: Option<&Namespace>| {
                let mut ns = current.cloned().ok_or_else(|| {
                    ApiError::not_found(&GroupResource::new("", "namespaces"), name)
                })?;
                change(ns.status.get_or_insert_with(Default::default));
                Ok(ns)
            },
            &UpdateOptions::default(),
        )
        .await
        .map(|_| ())
}

/// `finalizeNamespace`: removes [`NAMESPACE_FINALIZER`] from `spec.finalizers` through the
/// `finalize` subresource (the others stay, sorted). With none left, the Store deletes the
/// namespace, unless metadata finalizers still hold it. A `kubernetes` metadata finalizer,
/// which earlier versions of this server put on every namespace, goes too, so namespaces
/// stored by them do not stay forever.
async fn remove_finalizer(store: &Store<Namespace>, name: &str) -> Result<(), ApiError> {
    let result = store
        .update_with(
            "",
            name,
            "finalize",
            |current: Option<&Namespace>| {
                let mut ns = current.cloned().ok_or_else(|| {
                    ApiError::not_found(&GroupResource::new("", "namespaces"), name)
                })?;
                let spec = ns.spec.get_or_insert_with(Default::default);
                let mut kept: Vec<String> = spec
                    .finalizers
                    .iter()
                    .flatten()
                    .filter(|f| *f != NAMESPACE_FINALIZER)
                    .cloned()
                    .collect();
                kept.sort();
                kept.dedup();
                spec.finalizers = Some(kept);
                if let Some(finalizers) = ns.metadata.finalizers.as_mut() {
                    finalizers.retain(|f| f != NAMESPACE_FINALIZER);
                }
                Ok(ns)
            },
            &UpdateOptions::default(),
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immortal_namespaces_cannot_be_deleted() {
        let info = scheme::builtin::namespaces();
        let error = admit_delete(&info, "kube-system").unwrap_err();
        assert_eq!(error.code, 403);
        assert_eq!(
            error.message,
            "namespaces \"kube-system\" is forbidden: this namespace may not be deleted"
        );
        assert!(admit_delete(&info, "team").is_ok());
        // Only namespaces are immortal: a configmap called "default" may go.
        let configmaps = scheme::builtin::configmaps();
        assert!(admit_delete(&configmaps, "default").is_ok());
    }

    #[test]
    fn conditions_report_what_remains() {
        let mut content = Content::default();
        content.remaining.insert("configmaps.".to_owned(), 2);
        content.finalizers.insert("example.com/hold".to_owned(), 2);
        let mut status = NamespaceStatus::default();
        merge_conditions(&mut status, &content.conditions());
        let conditions = status.conditions.clone().unwrap_or_default();
        assert_eq!(conditions.len(), 5);
        let remaining = conditions
            .iter()
            .find(|c| c.type_ == "NamespaceContentRemaining")
            .unwrap();
        assert_eq!(remaining.status, "True");
        assert_eq!(
            remaining.message.as_deref(),
            Some("Some resources are remaining: configmaps. has 2 resource instances")
        );
        let finalizers = conditions
            .iter()
            .find(|c| c.type_ == "NamespaceFinalizersRemaining")
            .unwrap();
        assert_eq!(
            finalizers.message.as_deref(),
            Some("Some finalizers are remaining: example.com/hold in 2 resource instances")
        );
        // Once empty, the same conditions turn to their "ok" variants in place.
        merge_conditions(&mut status, &Content::default().conditions());
        let conditions = status.conditions.unwrap_or_default();
        assert_eq!(conditions.len(), 5);
        assert!(conditions.iter().all(|c| c.status == "False"));
    }
}
