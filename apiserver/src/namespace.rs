//! The namespace lifecycle: the `default` namespace, admission of creates into missing or
//! terminating namespaces, and the controller that empties and removes deleted namespaces.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use registry::ListOptions;
use registry::status::{ApiError, GroupResource};
use registry::store::{CreateOptions, UpdateOptions};

use crate::handler::RequestContext;
use crate::kinds::NAMESPACE_FINALIZER;
use crate::server::ServerState;

/// How often the controller looks for terminating namespaces.
pub const RESYNC: Duration = Duration::from_millis(500);

/// Creates namespace `name` if namespaces are served and it does not exist.
///
/// # Errors
///
/// When the storage fails.
pub async fn ensure_namespace(state: &ServerState, name: &str) -> anyhow::Result<()> {
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
        Err(e) => Err(anyhow::anyhow!("creating namespace {name}: {e}")),
    }
}

/// `NamespaceLifecycle` admission for creates: the namespace must exist (404) and not be
/// terminating (403).
///
/// # Errors
///
/// As described.
pub async fn admit_create(state: &ServerState, namespace: &str) -> Result<(), ApiError> {
    let Some(store) = &state.namespaces else {
        return Ok(());
    };
    if namespace.is_empty() {
        return Ok(());
    }
    let resource = GroupResource::new("", "namespaces");
    match store.get("", namespace, "").await {
        Ok(ns) if ns.metadata.deletion_timestamp.is_some() => Err(ApiError::forbidden(
            &resource,
            namespace,
            format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Err(ApiError::not_found(&resource, namespace)),
        Err(e) => Err(e),
    }
}

/// Runs until shutdown: every [`RESYNC`], deletes the contents of terminating namespaces and
/// then removes their finalizer, which lets the Store delete them.
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
        if empty_namespace(state, &name).await? {
            remove_finalizer(store, &name).await?;
        }
    }
    Ok(())
}

/// Deletes everything in `namespace`; true when nothing is left.
async fn empty_namespace(state: &ServerState, namespace: &str) -> Result<bool, ApiError> {
    let mut empty = true;
    for handler in &state.ordered {
        let info = handler.info();
        if !info.namespaced {
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
        handler
            .delete_collection(&ctx, &options, &ListOptions::default())
            .await?;
        let mut probe = ListOptions::default();
        probe.predicate.limit = Some(1);
        if !handler.list(&ctx, &probe).await?.items.is_empty() {
            empty = false;
        }
    }
    Ok(empty)
}

async fn remove_finalizer(store: &registry::Store<Namespace>, name: &str) -> Result<(), ApiError> {
    let result = store
        .update_with(
            "",
            name,
            |current: Option<&Namespace>| {
                let mut ns = current.cloned().ok_or_else(|| {
                    ApiError::not_found(&GroupResource::new("", "namespaces"), name)
                })?;
                if let Some(f) = ns.metadata.finalizers.as_mut() {
                    f.retain(|f| f != NAMESPACE_FINALIZER);
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
