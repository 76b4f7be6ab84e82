//! CustomResourceDefinitions over HTTP: the `customresourcedefinitions` kind, and the CRD
//! controller that serves the kind of every established CRD.
//!
//! The controller does, in one loop, what upstream's apiextensions-apiserver splits among its
//! naming, establishing and finalizing controllers and its `crdHandler`
//! (`staging/src/k8s.io/apiextensions-apiserver/pkg/controller/{status,establish,finalizer}`):
//!
//! - **Names**: a CRD's names are accepted unless another served kind of its group (a
//!   built-in one, or a CRD that holds them already or is older) uses them; the outcome is
//!   the `NamesAccepted` condition with upstream's reasons (`PluralConflict`, ...) and
//!   `status.acceptedNames`.
//! - **Serving**: a CRD whose names are accepted is served at once, through the same Store,
//!   Storage and watch cache as built-in kinds; then it is marked `Established`. A changed CRD
//!   (new generation) replaces its kind in one step.
//! - **Deletion**: the first delete adds `customresourcecleanup.apiextensions.k8s.io`
//!   ([`apiextensions::CrdStrategy`]); the controller marks the CRD `Terminating`, deletes
//!   every object of its kind, stops serving it and removes the finalizer, and the CRD goes.
//!
//! Every pass reads all CRDs with a consistent list, so a missed or stale event only delays
//! work; a pass that could not finish is retried after a second.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use apiextensions::definition::{CLEANUP_FINALIZER, condition, condition_is_true, set_condition};
use apiextensions::{
    CrdStatusStrategy, CrdStrategy, CustomResourceDefinition, CustomResourceKind, ScalePaths,
    Unstructured,
};
use apimachinery::status::{ApiError, GroupResource};
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinitionNames, CustomResourceDefinitionStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use object_storage::{ListOptions, WatchEvent};
use registry::{Store, UpdateOptions};
use scheme::{ResourceInfo, TypedConverter};
use serde_json::{Value, json};

use crate::conversion_webhook::{WebhookConverter, WebhookTarget};
use crate::handler::{Admission, RequestContext, ResourceHandler, SchemaFn};
use crate::scale::ScaleSubresource;
use crate::server::{KindSpec, ServerBuilder, ServerError, ServerState};

/// How long a pass that could not finish waits before the next.
const RETRY: Duration = Duration::from_secs(1);

/// The `customresourcedefinitions` resource info (`apiextensions.k8s.io/v1`).
pub fn crd_info() -> ResourceInfo {
    ResourceInfo::for_type::<CustomResourceDefinition>()
        .with_short_names(&["crd", "crds"])
        .with_categories(&["api-extensions"])
        .with_status_subresource()
}

/// Registers the CRD kind and returns its store for the controller.
pub(crate) fn register(
    builder: &mut ServerBuilder,
) -> Result<Store<CustomResourceDefinition>, ServerError> {
    let schema: SchemaFn = Arc::new(|_version: &str| Some(crd_schema()));
    builder.register_kind_store(
        KindSpec::<CustomResourceDefinition>::new(
            crd_info(),
            Arc::new(TypedConverter::<CustomResourceDefinition>::new()),
            Arc::new(CrdStrategy),
            &patch::CUSTOM_RESOURCE,
        )
        .with_status_strategy(Arc::new(CrdStatusStrategy))
        .with_openapi(schema),
    )
}

/// Serves the kind of every established CRD in storage, before the server takes requests
/// (upstream's `crd-informer-synced` readiness), so custom objects are served as soon as
/// the server is.
pub(crate) async fn serve_established(state: &Arc<ServerState>) -> Result<(), ApiError> {
    let Some(store) = state.crds.clone() else {
        return Ok(());
    };
    let list = store.list("", &ListOptions::default()).await?;
    let mut controller = Controller::new(state.clone(), store);
    for crd in &list.items {
        // A CRD still being deleted is served for its cleanup only: `serve` refuses creates
        // of a CRD with a deletionTimestamp.
        if condition_is_true(crd, condition::ESTABLISHED) {
            if let Err(error) = controller.serve(crd) {
                tracing::warn!(crd = ?crd.metadata.name, %error, "cannot serve stored CRD");
            }
        }
    }
    Ok(())
}

/// Runs the CRD controller until shutdown.
pub(crate) async fn run_controller(state: Arc<ServerState>) {
    let Some(store) = state.crds.clone() else {
        return;
    };
    let mut shutdown = state.shutdown_rx.clone();
    // What `serve_established` served is in the shared registry already.
    let mut controller = Controller::new(state, store.clone());
    loop {
        let list = match store.list("", &ListOptions::default()).await {
            Ok(list) => list,
            Err(error) => {
                tracing::warn!(%error, "CRD list");
                if wait(RETRY, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        let mut pending = !controller.pass().await;
        let options = ListOptions {
            resource_version: list.resource_version.to_string(),
            ..ListOptions::default()
        };
        let mut events = match store.watch("", &options).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "CRD watch");
                if wait(RETRY, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let retry = async {
                if pending {
                    tokio::time::sleep(RETRY).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                event = events.next() => match event {
                    Some(WatchEvent::Bookmark(_)) => continue,
                    Some(WatchEvent::Error(error)) => {
                        tracing::debug!(%error, "CRD watch ended; listing again");
                        break;
                    }
                    None => break,
                    Some(_) => {}
                },
                () = retry => {}
                _ = shutdown.wait_for(|v| *v) => return,
            }
            pending = !controller.pass().await;
        }
    }
}

/// Waits `delay`; true when the server shuts down meanwhile.
async fn wait(delay: Duration, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        _ = shutdown.wait_for(|v| *v) => true,
    }
}

/// A kind served for a CRD: which CRD (uid) at which generation, the handler that serves it,
/// and whether the CRD is terminating (its kind then refuses creates).
#[derive(Clone)]
pub(crate) struct ServedCrd {
    uid: String,
    generation: i64,
    group: String,
    plural: String,
    handler: Arc<dyn ResourceHandler>,
    terminating: Arc<AtomicBool>,
}

impl ServedCrd {
    /// Whether this serves `crd` as it is now.
    fn serves(&self, crd: &CustomResourceDefinition) -> bool {
        Some(&self.uid) == crd.metadata.uid.as_ref()
            && Some(self.generation) == crd.metadata.generation
    }

    /// Whether `handler` is the one serving this CRD's kind (not a built-in kind, nor a kind
    /// registered later in its place).
    fn is(&self, handler: &Arc<dyn ResourceHandler>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.handler), Arc::as_ptr(handler))
    }
}

/// The names a group's kinds use; a name is held by one kind.
#[derive(Default)]
struct TakenNames {
    plurals: HashSet<String>,
    singulars: HashSet<String>,
    short_names: HashSet<String>,
    kinds: HashSet<String>,
    list_kinds: HashSet<String>,
}

impl TakenNames {
    fn take_info(&mut self, info: &ResourceInfo) {
        self.plurals.insert(info.plural.clone());
        self.singulars.insert(info.singular.clone());
        self.short_names.extend(info.short_names.iter().cloned());
        self.kinds.insert(info.kind.clone());
        self.list_kinds.insert(info.list_kind.clone());
    }

    fn take(&mut self, names: &CustomResourceDefinitionNames) {
        self.plurals.insert(names.plural.clone());
        self.singulars.extend(names.singular.iter().cloned());
        self.short_names
            .extend(names.short_names.iter().flatten().cloned());
        self.kinds.insert(names.kind.clone());
        self.list_kinds.extend(names.list_kind.iter().cloned());
    }

    /// The first conflict of `names`, as upstream's naming controller reports it (reason,
    /// message).
    fn conflict(&self, names: &CustomResourceDefinitionNames) -> Option<(&'static str, String)> {
        let used = |name: &str| format!("{name:?} is already in use");
        if self.plurals.contains(&names.plural) {
            return Some(("PluralConflict", used(&names.plural)));
        }
        if let Some(singular) = names
            .singular
            .as_ref()
            .filter(|s| self.singulars.contains(*s))
        {
            return Some(("SingularConflict", used(singular)));
        }
        if let Some(short) = names
            .short_names
            .iter()
            .flatten()
            .find(|s| self.short_names.contains(*s))
        {
            return Some(("ShortNamesConflict", used(short)));
        }
        if self.kinds.contains(&names.kind) {
            return Some(("KindConflict", used(&names.kind)));
        }
        if let Some(list_kind) = names
            .list_kind
            .as_ref()
            .filter(|l| self.list_kinds.contains(*l))
        {
            return Some(("ListKindConflict", used(list_kind)));
        }
        None
    }
}

/// The `scale` subresource of a CRD's kind, at the paths its CRD declares.
struct CrdScale(ScalePaths);

impl ScaleSubresource<Unstructured> for CrdScale {
    fn spec_replicas(&self, object: &Unstructured) -> i64 {
        self.0.spec_replicas(object)
    }

    fn status_replicas(&self, object: &Unstructured) -> i64 {
        self.0.status_replicas(object)
    }

    fn selector(&self, object: &Unstructured) -> Option<String> {
        self.0.selector(object)
    }

    fn set_replicas(&self, object: &mut Unstructured, replicas: i64) -> Result<(), ApiError> {
        self.0
            .set_replicas(object, replicas)
            .map_err(|problem| ApiError::bad_request(format!("cannot scale: {problem}")))
    }
}

/// Refuses creates of a CRD's objects once the CRD terminates, as upstream's `crdHandler`
/// does (405, `create not allowed while custom resource definition is terminating`), so its
/// cleanup finishes.
struct TerminatingGuard {
    terminating: Arc<AtomicBool>,
    resource: GroupResource,
}

impl Admission<Unstructured> for TerminatingGuard {
    fn admit(
        &self,
        _ctx: &RequestContext,
        _new: &Unstructured,
        old: Option<&Unstructured>,
    ) -> Result<(), ApiError> {
        if old.is_none() && self.terminating.load(Ordering::Acquire) {
            let mut error = ApiError::method_not_supported(&self.resource, "create");
            error.message =
                "create not allowed while custom resource definition is terminating".to_owned();
            return Err(error);
        }
        Ok(())
    }
}

struct Controller {
    state: Arc<ServerState>,
    store: Store<CustomResourceDefinition>,
}

impl Controller {
    fn new(state: Arc<ServerState>, store: Store<CustomResourceDefinition>) -> Self {
        Controller { state, store }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, ServedCrd>> {
        self.state
            .crd_kinds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The kind served for the CRD `name`, if any.
    fn served(&self, name: &str) -> Option<ServedCrd> {
        self.registry().get(name).cloned()
    }

    /// The handler serving `group`/`plural` now, if any.
    fn current_handler(&self, group: &str, plural: &str) -> Option<Arc<dyn ResourceHandler>> {
        let kinds = self.state.kinds();
        kinds
            .ordered
            .iter()
            .find(|h| {
                let info = h.info();
                info.group == group && info.plural == plural
            })
            .cloned()
    }

    /// Serves `crd`'s kind (replacing an older generation's).
    fn serve(&mut self, crd: &CustomResourceDefinition) -> Result<(), String> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let previous = self.served(&name);
        if previous.as_ref().is_some_and(|p| p.serves(crd)) {
            return Ok(());
        }
        let kind = CustomResourceKind::from_crd(crd)?;
        let converter = kind.converter.clone();
        let openapi: SchemaFn = Arc::new(move |version: &str| converter.openapi(version));
        let mut converter: Arc<dyn scheme::Converter> = kind.converter.clone();
        if let Some(url) = kind.webhook.as_ref().and_then(|w| w.url.clone()) {
            let target = WebhookTarget {
                url,
                ca_bundle: kind
                    .webhook
                    .as_ref()
                    .map(|w| w.ca_bundle.clone())
                    .unwrap_or_default(),
            };
            converter = Arc::new(WebhookConverter::new(
                kind.converter.clone(),
                &kind.info.group,
                &kind.info.kind,
                &kind.info.storage_version,
                &target,
            ));
        }
        let mut spec = KindSpec::<Unstructured>::new(
            kind.info.clone(),
            converter,
            kind.strategy.clone(),
            &patch::CUSTOM_RESOURCE,
        )
        .with_patch_schema(kind.patch_schema.clone())
        .with_openapi(openapi);
        if kind.status_subresource {
            spec = spec.with_status_strategy(Arc::new(kind.strategy.status_strategy()));
        }
        if let Some(paths) = kind.scale.clone() {
            spec = spec.with_scale(Arc::new(CrdScale(paths)));
        }
        if let Some(schema) = kind.read_defaults.clone() {
            spec = spec.with_read_defaults(Arc::new(move |object: &mut Unstructured| {
                schema.apply_defaults_to_content(&mut object.content);
            }));
        }
        let terminating = Arc::new(AtomicBool::new(crd.metadata.deletion_timestamp.is_some()));
        spec = spec.with_admission(Arc::new(TerminatingGuard {
            terminating: terminating.clone(),
            resource: kind.info.group_resource(),
        }));
        // Replace only the kind this registry says is this CRD's, and only while it still
        // is: anything else of the same names is not ours to swap.
        let replace = previous.as_ref().is_some_and(|p| {
            self.current_handler(&p.group, &p.plural)
                .is_some_and(|h| p.is(&h))
        });
        self.state
            .serve_kind(spec, replace)
            .map_err(|e| e.to_string())?;
        let handler = self
            .current_handler(&kind.info.group, &kind.info.plural)
            .ok_or("the kind vanished as it was served")?;
        let generation = crd.metadata.generation.unwrap_or(0);
        tracing::info!(crd = %name, generation, "serving custom resource");
        self.registry().insert(
            name,
            ServedCrd {
                uid: crd.metadata.uid.clone().unwrap_or_default(),
                generation,
                group: kind.info.group.clone(),
                plural: kind.info.plural.clone(),
                handler,
                terminating,
            },
        );
        Ok(())
    }

    /// Marks the CRD `name`'s kind terminating: creates are refused from now on.
    fn refuse_creates(&self, name: &str) {
        if let Some(served) = self.registry().get(name) {
            served.terminating.store(true, Ordering::Release);
        }
    }

    /// Stops serving the CRD `name`'s kind, if the server still serves it for that CRD.
    fn unserve(&mut self, name: &str) {
        let Some(served) = self.registry().remove(name) else {
            return;
        };
        if self
            .current_handler(&served.group, &served.plural)
            .is_some_and(|h| served.is(&h))
        {
            self.state.remove_kind(&served.group, &served.plural);
            tracing::info!(crd = %name, "no longer serving custom resource");
        }
    }

    /// One pass over every CRD; false when something must be tried again.
    async fn pass(&mut self) -> bool {
        let list = match self.store.list("", &ListOptions::default()).await {
            Ok(list) => list.items,
            Err(error) => {
                tracing::warn!(%error, "CRD list");
                return false;
            }
        };
        let mut done = true;
        // Kinds that are not CRDs of this controller hold their names first.
        let mut taken: HashMap<String, TakenNames> = HashMap::new();
        let ours: Vec<ServedCrd> = self.registry().values().cloned().collect();
        for handler in &self.state.kinds().ordered {
            let info = handler.info();
            if !ours.iter().any(|served| served.is(handler)) {
                taken.entry(info.group.clone()).or_default().take_info(info);
            }
        }
        // CRDs holding accepted names keep them; then the oldest wins.
        let mut order: Vec<&CustomResourceDefinition> = list.iter().collect();
        order.sort_by_key(|crd| {
            (
                !condition_is_true(crd, condition::NAMES_ACCEPTED),
                crd.metadata.creation_timestamp.as_ref().map(|t| t.0),
                crd.metadata.name.clone(),
            )
        });
        let mut present = HashSet::new();
        for crd in order {
            let name = crd.metadata.name.clone().unwrap_or_default();
            present.insert(name.clone());
            let group = taken.entry(crd.spec.group.clone()).or_default();
            let conflict = group.conflict(&crd.spec.names);
            if conflict.is_none() {
                group.take(&crd.spec.names);
            }
            let ok = if crd.metadata.deletion_timestamp.is_some() {
                self.finalize(crd, conflict).await
            } else {
                self.establish(crd, conflict).await
            };
            done &= ok;
        }
        let gone: Vec<String> = self
            .registry()
            .keys()
            .filter(|name| !present.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            self.unserve(&name);
        }
        done
    }

    /// Names, serving and conditions of a CRD that is not being deleted.
    async fn establish(
        &mut self,
        crd: &CustomResourceDefinition,
        conflict: Option<(&'static str, String)>,
    ) -> bool {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut served_ok = true;
        let mut status = crd.status.clone().unwrap_or_default();
        match &conflict {
            Some((reason, message)) => {
                set_condition(
                    &mut status,
                    condition::NAMES_ACCEPTED,
                    "False",
                    reason,
                    message,
                );
                if !condition_is_true(crd, condition::ESTABLISHED) {
                    set_condition(
                        &mut status,
                        condition::ESTABLISHED,
                        "False",
                        "NotAccepted",
                        "not all names are accepted",
                    );
                }
            }
            None => {
                set_condition(
                    &mut status,
                    condition::NAMES_ACCEPTED,
                    "True",
                    "NoConflicts",
                    "no conflicts found",
                );
                status.accepted_names = Some(crd.spec.names.clone());
                match self.serve(crd) {
                    Ok(()) => {
                        set_condition(
                            &mut status,
                            condition::ESTABLISHED,
                            "True",
                            "InitialNamesAccepted",
                            "the initial names have been accepted",
                        );
                    }
                    Err(error) => {
                        served_ok = false;
                        tracing::warn!(crd = %name, %error, "cannot serve CRD");
                        set_condition(
                            &mut status,
                            condition::ESTABLISHED,
                            "False",
                            "Installing",
                            &format!("the kind cannot be served: {error}"),
                        );
                    }
                }
            }
        }
        served_ok & self.write_status(crd, status).await.is_some()
    }

    /// Deletes a terminating CRD's objects, stops serving its kind and removes the cleanup
    /// finalizer (upstream's `CRDFinalizer.sync`).
    async fn finalize(
        &mut self,
        crd: &CustomResourceDefinition,
        conflict: Option<(&'static str, String)>,
    ) -> bool {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let has_finalizer = crd
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == CLEANUP_FINALIZER);
        if !has_finalizer {
            self.unserve(&name);
            return true;
        }
        let mut status = crd.status.clone().unwrap_or_default();
        // A condition already saying why deletion waits stays until the outcome changes, so
        // passes that change nothing write nothing (and wake no one).
        let reported = apiextensions::definition::find_condition(crd, condition::TERMINATING)
            .is_some_and(|c| c.reason.as_deref() == Some("InstanceDeletionCheck"));
        if !reported {
            set_condition(
                &mut status,
                condition::TERMINATING,
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            );
        }
        // A status that cannot be written (a stored CRD that newer validation rejects, a
        // conflict) must not hold up the cleanup; it is reported on the next pass.
        let current = self
            .write_status(crd, status.clone())
            .await
            .unwrap_or_else(|| crd.clone());
        self.refuse_creates(&name);
        // Objects exist only where the kind was served for this CRD. One served now is
        // cleaned up whatever its names became; one established but not served here (deleted
        // before a restart) is served again, creates refused, to find its objects; one never
        // established, or whose names another kind holds, has none.
        let served_here = self
            .served(&name)
            .is_some_and(|s| Some(&s.uid) == crd.metadata.uid.as_ref());
        let cleanup = if served_here
            || (conflict.is_none() && condition_is_true(crd, condition::ESTABLISHED))
        {
            match self.serve(crd) {
                Ok(()) => self.delete_objects(crd).await,
                Err(error) => Err(format!(
                    "cannot serve the kind to delete its objects: {error}"
                )),
            }
        } else {
            Ok(())
        };
        if let Err(message) = cleanup {
            set_condition(
                &mut status,
                condition::TERMINATING,
                "True",
                "InstanceDeletionCheck",
                &message,
            );
            self.write_status(&current, status).await;
            return false;
        }
        self.unserve(&name);
        let result = self
            .update_crd(crd, "", |next| {
                if let Some(finalizers) = &mut next.metadata.finalizers {
                    finalizers.retain(|f| f != CLEANUP_FINALIZER);
                }
            })
            .await;
        match result {
            Ok(_) => true,
            Err(error) if error.code == 404 => true,
            Err(error) => {
                tracing::warn!(crd = %name, %error, "removing the CRD cleanup finalizer");
                false
            }
        }
    }

    /// Deletes every object of the CRD's kind and confirms none is left; the error says what
    /// is left or what failed.
    async fn delete_objects(&mut self, crd: &CustomResourceDefinition) -> Result<(), String> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        // Only the handler registered for this very CRD: a built-in kind of the same names
        // must never be reached.
        let handler = self
            .served(&name)
            .filter(|s| Some(&s.uid) == crd.metadata.uid.as_ref())
            .map(|s| s.handler)
            .filter(|h| {
                self.current_handler(&crd.spec.group, &crd.spec.names.plural)
                    .is_some_and(|current| std::ptr::addr_eq(Arc::as_ptr(&current), Arc::as_ptr(h)))
            })
            .ok_or("the kind is not served for this CRD")?;
        let ctx = RequestContext {
            version: handler.info().storage_version.clone(),
            ..RequestContext::default()
        };
        let options = DeleteOptions {
            propagation_policy: Some("Background".to_owned()),
            ..DeleteOptions::default()
        };
        handler
            .delete_collection(&ctx, &options, &ListOptions::default())
            .await
            .map_err(|e| format!("could not issue all deletes: {}", e.message))?;
        let left = handler
            .list(&ctx, &ListOptions::default())
            .await
            .map_err(|e| {
                format!(
                    "could not confirm zero CustomResources remaining: {}",
                    e.message
                )
            })?;
        if left.items.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "could not confirm zero CustomResources remaining: {} objects left",
                left.items.len()
            ))
        }
    }

    /// Changes the stored CRD `crd` names with `change` (through `subresource`), retrying on
    /// conflicts with the latest object; 409 if the CRD was deleted and created again.
    async fn update_crd(
        &self,
        crd: &CustomResourceDefinition,
        subresource: &str,
        change: impl Fn(&mut CustomResourceDefinition) + Send + Sync,
    ) -> Result<registry::Updated<CustomResourceDefinition>, ApiError> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let uid = crd.metadata.uid.clone();
        let resource = self.store.resource();
        self.store
            .update_with(
                "",
                &name,
                subresource,
                |existing| {
                    let mut next = existing
                        .cloned()
                        .ok_or_else(|| ApiError::not_found(resource, &name))?;
                    if next.metadata.uid != uid {
                        return Err(ApiError::conflict(resource, &name, "the CRD was replaced"));
                    }
                    change(&mut next);
                    Ok(next)
                },
                &UpdateOptions::default(),
            )
            .await
    }

    /// Writes `status` to the CRD through `/status` when it differs from `crd`'s; the CRD as
    /// stored afterwards, `None` on failure.
    async fn write_status(
        &self,
        crd: &CustomResourceDefinition,
        status: CustomResourceDefinitionStatus,
    ) -> Option<CustomResourceDefinition> {
        if crd.status.as_ref() == Some(&status) {
            return Some(crd.clone());
        }
        let name = crd.metadata.name.clone().unwrap_or_default();
        let result = self
            .update_crd(crd, "status", |next| {
                let mut merged = status.clone();
                // storedVersions belong to the strategy; keep what is stored.
                merged.stored_versions =
                    next.status.as_ref().and_then(|s| s.stored_versions.clone());
                next.status = Some(merged);
            })
            .await;
        match result {
            Ok(updated) => Some(updated.object),
            Err(error) => {
                tracing::debug!(crd = %name, %error, "CRD status");
                None
            }
        }
    }
}

/// The OpenAPI schema of `CustomResourceDefinition` (enough for `kubectl explain` and for
/// kubectl to find the kind).
fn crd_schema() -> Value {
    let preserve = |description: &str| json!({"description": description, "type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let string = |description: &str| json!({"description": description, "type": "string"});
    json!({
        "description": "CustomResourceDefinition represents a resource that should be exposed on the API server.  Its name MUST be in the format <.spec.name>.<.spec.group>.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": string("APIVersion defines the versioned schema of this representation of an object."),
            "kind": string("Kind is a string value representing the REST resource this object represents."),
            "metadata": {"description": "Standard object's metadata.", "allOf": [{"$ref": format!("#/components/schemas/{}", crate::openapi::OBJECT_META)}]},
            "spec": {
                "description": "spec describes how the user wants the resources to appear",
                "type": "object",
                "required": ["group", "names", "scope", "versions"],
                "properties": {
                    "group": string("group is the API group of the defined custom resource."),
                    "names": {
                        "description": "names specify the resource and kind names for the custom resource.",
                        "type": "object",
                        "required": ["plural", "kind"],
                        "properties": {
                            "plural": string("plural is the plural name of the resource to serve."),
                            "singular": string("singular is the singular name of the resource."),
                            "kind": string("kind is the serialized kind of the resource."),
                            "listKind": string("listKind is the serialized kind of the list for this resource."),
                            "shortNames": {"description": "shortNames are short names for the resource.", "type": "array", "items": {"type": "string"}},
                            "categories": {"description": "categories is a list of grouped resources this custom resource belongs to (e.g. 'all').", "type": "array", "items": {"type": "string"}},
                        }
                    },
                    "scope": string("scope indicates whether the defined custom resource is cluster- or namespace-scoped. Allowed values are `Cluster` and `Namespaced`."),
                    "versions": {
                        "description": "versions is the list of all API versions of the defined custom resource.",
                        "type": "array",
                        "items": preserve("CustomResourceDefinitionVersion describes a version for CRD."),
                    },
                    "conversion": preserve("conversion defines conversion settings for the CRD."),
                    "preserveUnknownFields": {"description": "preserveUnknownFields indicates that object fields which are not specified in the OpenAPI schema should be preserved when persisting to storage.", "type": "boolean"},
                }
            },
            "status": preserve("status indicates the actual state of the CustomResourceDefinition"),
        }
    })
}
