//! RBAC in the server: the four `rbac.authorization.k8s.io/v1` kinds served through the
//! Store, their escalation checks as admission, the bootstrap policy written at startup, and
//! the controller that feeds every Role and binding to the RBAC authorizer and keeps
//! aggregated ClusterRoles filled in (upstream's `clusterroleaggregation` controller).

use std::sync::Arc;
use std::time::Duration;

use apimachinery::status::{ApiError, GroupResource};
use auth::rbac::bootstrap::{self, autoupdate};
use auth::rbac::{EscalationCheck, PolicyKind, PolicyObject, RBAC_GROUP, RbacPolicy};
use builtin_kinds::{
    ClusterRoleBindingStrategy, ClusterRoleStrategy, RoleBindingStrategy, RoleStrategy,
};
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use object_storage::{ListOptions, WatchEvent};
use registry::{CreateOptions, Store, UpdateOptions};
use scheme::{ResourceInfo, TypedConverter};
use tokio::sync::mpsc;

use crate::access::Access;
use crate::handler::{Admission, RequestContext};
use crate::server::{KindSpec, ServerBuilder, ServerError, ServerState};

/// The stores of the RBAC kinds, for the controller and the bootstrap policy.
#[derive(Clone)]
pub struct RbacStores {
    roles: Store<Role>,
    cluster_roles: Store<ClusterRole>,
    role_bindings: Store<RoleBinding>,
    cluster_role_bindings: Store<ClusterRoleBinding>,
}

/// Registers roles, clusterroles, rolebindings and clusterrolebindings on `builder`, with
/// the escalation checks of `access`.
///
/// # Errors
///
/// When one of the kinds is already registered.
pub fn register(builder: &mut ServerBuilder) -> Result<RbacStores, ServerError> {
    let access = builder.access().clone();
    let escalation = Arc::new(Escalation { access });
    let schemas = crate::openapi::builtin_schemas();
    let schema = |kind: &str| -> crate::handler::SchemaFn {
        let f = schemas.get(kind).copied();
        Arc::new(move |_version: &str| f.map(|f| f()))
    };
    let roles = builder.register_kind_store(
        KindSpec::<Role>::new(
            ResourceInfo::for_type::<Role>(),
            Arc::new(TypedConverter::<Role>::new()),
            Arc::new(RoleStrategy::default()),
            &patch::RBAC,
        )
        .with_openapi(schema("Role"))
        .with_admission(escalation.clone()),
    )?;
    let cluster_roles = builder.register_kind_store(
        KindSpec::<ClusterRole>::new(
            ResourceInfo::for_type::<ClusterRole>(),
            Arc::new(TypedConverter::<ClusterRole>::new()),
            Arc::new(ClusterRoleStrategy::default()),
            &patch::RBAC,
        )
        .with_openapi(schema("ClusterRole"))
        .with_admission(escalation.clone()),
    )?;
    let role_bindings = builder.register_kind_store(
        KindSpec::<RoleBinding>::new(
            ResourceInfo::for_type::<RoleBinding>(),
            Arc::new(TypedConverter::<RoleBinding>::new()),
            Arc::new(RoleBindingStrategy::default()),
            &patch::RBAC,
        )
        .with_openapi(schema("RoleBinding"))
        .with_admission(escalation.clone()),
    )?;
    let cluster_role_bindings = builder.register_kind_store(
        KindSpec::<ClusterRoleBinding>::new(
            ResourceInfo::for_type::<ClusterRoleBinding>(),
            Arc::new(TypedConverter::<ClusterRoleBinding>::new()),
            Arc::new(ClusterRoleBindingStrategy::default()),
            &patch::RBAC,
        )
        .with_openapi(schema("ClusterRoleBinding"))
        .with_admission(escalation),
    )?;
    Ok(RbacStores {
        roles,
        cluster_roles,
        role_bindings,
        cluster_role_bindings,
    })
}

/// The escalation checks of upstream's policy-based RBAC storage
/// (`pkg/registry/rbac/*/policybased/storage.go`), run as admission of every create, update
/// and patch.
struct Escalation {
    access: Arc<Access>,
}

impl Escalation {
    /// The Status of a refusal: 404 for a binding to a missing role (upstream's
    /// `GetRoleReferenceRules` error), else 403 on the object written.
    fn refusal(resource: &str, name: &str, denied: auth::rbac::EscalationDenied) -> ApiError {
        if let Some(role) = &denied.missing_role {
            // Listers name resources in the singular: `clusterrole.rbac.authorization.k8s.io`.
            let singular = if role.kind == "ClusterRole" {
                "clusterrole"
            } else {
                "role"
            };
            return ApiError::not_found(&GroupResource::new(RBAC_GROUP, singular), &role.name);
        }
        ApiError::forbidden(&GroupResource::new(RBAC_GROUP, resource), name, denied)
    }

    /// Runs `check` as the author of the request; a refusal is 403 on `resource` `name`.
    fn run(
        &self,
        ctx: &RequestContext,
        resource: &str,
        name: &str,
        check: impl FnOnce(&EscalationCheck<'_>) -> Result<(), auth::rbac::EscalationDenied>,
    ) -> Result<(), ApiError> {
        let index = self.access.rbac().index();
        let checker = EscalationCheck {
            authorizer: self.access.chain(),
            index: &index,
            user: &ctx.user,
        };
        check(&checker).map_err(|denied| Self::refusal(resource, name, denied))
    }
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// Whether an update leaves everything that grants anything as it was: the rules, aggregation
/// rule, labels (which aggregation selects on) and annotations of roles, or the roleRef and
/// subjects of bindings, as the callers strip them. Such an update grants nothing new, so it
/// needs no escalation check; upstream skips the check in a narrower case, when only the
/// fields garbage collection writes change (`IsOnlyMutatingGCFields`).
fn same_grants<T: PartialEq>(new: &T, old: Option<&T>) -> bool {
    old.is_some_and(|old| old == new)
}

impl Admission<Role> for Escalation {
    fn admit(&self, ctx: &RequestContext, new: &Role, old: Option<&Role>) -> Result<(), ApiError> {
        let strip = |r: &Role| {
            (
                r.rules.clone(),
                r.metadata.labels.clone(),
                r.metadata.annotations.clone(),
            )
        };
        if same_grants(&strip(new), old.map(strip).as_ref()) {
            return Ok(());
        }
        let name = name(&new.metadata);
        self.run(ctx, "roles", &name, |check| {
            check.check_role(
                "roles",
                &ctx.namespace,
                &name,
                new.rules.as_deref().unwrap_or_default(),
                false,
            )
        })
    }
}

impl Admission<ClusterRole> for Escalation {
    fn admit(
        &self,
        ctx: &RequestContext,
        new: &ClusterRole,
        old: Option<&ClusterRole>,
    ) -> Result<(), ApiError> {
        let strip = |r: &ClusterRole| {
            (
                r.rules.clone(),
                r.aggregation_rule.clone(),
                r.metadata.labels.clone(),
                r.metadata.annotations.clone(),
            )
        };
        if same_grants(&strip(new), old.map(strip).as_ref()) {
            return Ok(());
        }
        let has_rule = |r: &ClusterRole| {
            r.aggregation_rule.as_ref().is_some_and(|a| {
                a.cluster_role_selectors
                    .as_ref()
                    .is_some_and(|s| !s.is_empty())
            })
        };
        let aggregated = has_rule(new) || old.is_some_and(has_rule);
        let name = name(&new.metadata);
        // An aggregated role's rules are the controller's to fill in; the author needs every
        // permission to set the rule, and its own rules are not checked again.
        let rules = if aggregated {
            &[][..]
        } else {
            new.rules.as_deref().unwrap_or_default()
        };
        self.run(ctx, "clusterroles", &name, |check| {
            check.check_role("clusterroles", "", &name, rules, aggregated)
        })
    }
}

impl Admission<RoleBinding> for Escalation {
    fn admit(
        &self,
        ctx: &RequestContext,
        new: &RoleBinding,
        old: Option<&RoleBinding>,
    ) -> Result<(), ApiError> {
        let strip = |b: &RoleBinding| (b.role_ref.clone(), b.subjects.clone());
        if same_grants(&strip(new), old.map(strip).as_ref()) {
            return Ok(());
        }
        let name = name(&new.metadata);
        self.run(ctx, "rolebindings", &name, |check| {
            check.check_binding(&ctx.namespace, &new.role_ref)
        })
    }
}

impl Admission<ClusterRoleBinding> for Escalation {
    fn admit(
        &self,
        ctx: &RequestContext,
        new: &ClusterRoleBinding,
        old: Option<&ClusterRoleBinding>,
    ) -> Result<(), ApiError> {
        let strip = |b: &ClusterRoleBinding| (b.role_ref.clone(), b.subjects.clone());
        if same_grants(&strip(new), old.map(strip).as_ref()) {
            return Ok(());
        }
        let name = name(&new.metadata);
        self.run(ctx, "clusterrolebindings", &name, |check| {
            check.check_binding("", &new.role_ref)
        })
    }
}

/// Writes the bootstrap ClusterRoles and ClusterRoleBindings: missing ones are created;
/// existing ones marked for auto-update get the rules, subjects, labels and annotations they
/// lack (upstream's `reconcile` keeps them a superset, never removing what an administrator
/// added). Aggregated roles get only their aggregation rule; the controller fills in rules.
///
/// # Errors
///
/// When the storage fails or the policy data cannot be read.
pub async fn bootstrap(stores: &RbacStores) -> Result<(), ApiError> {
    let internal = |e: anyhow::Error| ApiError::internal(e.to_string());
    for role in bootstrap::cluster_roles().map_err(internal)? {
        let name = name(&role.metadata);
        let wanted = role.clone();
        reconcile(
            &stores.cluster_roles,
            &name,
            role,
            move |current: &mut ClusterRole| {
                let mut changed = merge_meta(&mut current.metadata, &wanted.metadata);
                if wanted.aggregation_rule.is_some() {
                    if current.aggregation_rule != wanted.aggregation_rule {
                        current
                            .aggregation_rule
                            .clone_from(&wanted.aggregation_rule);
                        changed = true;
                    }
                } else {
                    let rules = current.rules.get_or_insert_with(Vec::new);
                    for rule in wanted.rules.iter().flatten() {
                        if !rules.contains(rule) {
                            rules.push(rule.clone());
                            changed = true;
                        }
                    }
                }
                changed
            },
        )
        .await?;
    }
    for binding in bootstrap::cluster_role_bindings().map_err(internal)? {
        let name = name(&binding.metadata);
        let wanted = binding.clone();
        reconcile(
            &stores.cluster_role_bindings,
            &name,
            binding,
            move |current: &mut ClusterRoleBinding| {
                let mut changed = merge_meta(&mut current.metadata, &wanted.metadata);
                let subjects = current.subjects.get_or_insert_with(Vec::new);
                for subject in wanted.subjects.iter().flatten() {
                    if !subjects.contains(subject) {
                        subjects.push(subject.clone());
                        changed = true;
                    }
                }
                changed
            },
        )
        .await?;
    }
    Ok(())
}

/// Adds the labels and annotations of `wanted` that `current` lacks.
fn merge_meta(
    current: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    wanted: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    let mut changed = false;
    for (target, source) in [
        (&mut current.labels, &wanted.labels),
        (&mut current.annotations, &wanted.annotations),
    ] {
        let target = target.get_or_insert_with(Default::default);
        for (k, v) in source.iter().flatten() {
            if !target.contains_key(k) {
                target.insert(k.clone(), v.clone());
                changed = true;
            }
        }
    }
    changed
}

/// Creates `object` if `name` is missing, else updates it with `merge` when it may be
/// auto-updated and `merge` changes it.
async fn reconcile<K, F>(store: &Store<K>, name: &str, object: K, merge: F) -> Result<(), ApiError>
where
    K: apimachinery::object::Object + Default,
    F: Fn(&mut K) -> bool + Send + Sync,
{
    match store.get("", name, "").await {
        Err(e) if e.code == 404 => {
            match store.create("", object, &CreateOptions::default()).await {
                Ok(_) => Ok(()),
                // Another server of the same storage created it first.
                Err(e) if e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
        Ok(current) => {
            if !autoupdate(current.meta().annotations.as_ref()) {
                return Ok(());
            }
            let mut updated = current.clone();
            if !merge(&mut updated) {
                return Ok(());
            }
            store
                .update_with(
                    "",
                    name,
                    "",
                    |_| Ok(updated.clone()),
                    &UpdateOptions::default(),
                )
                .await
                .map(|_| ())
        }
    }
}

/// A change of the RBAC objects, from one kind's list or watch.
enum Change {
    /// Every object of the kind, after a (re)list.
    Listed(PolicyKind, Vec<PolicyObject>),
    /// Added or modified.
    Put(PolicyObject),
    /// Deleted.
    Removed(PolicyObject),
}

/// The most changes folded into one published index.
const BATCH: usize = 1024;

/// How long a failed list or watch waits before listing again.
const RETRY: Duration = Duration::from_millis(500);

/// Lists and then watches every object of one kind, sending the changes; lists again after
/// a watch ends (compaction, storage errors), until shutdown.
async fn follow<K>(
    store: Store<K>,
    kind: PolicyKind,
    wrap: fn(K) -> PolicyObject,
    changes: mpsc::Sender<Change>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    K: apimachinery::object::Object + Default,
{
    loop {
        match store.list("", &ListOptions::default()).await {
            Ok(list) => {
                let items = list.items.into_iter().map(wrap).collect();
                if changes.send(Change::Listed(kind, items)).await.is_err() {
                    return;
                }
                let options = ListOptions {
                    resource_version: list.resource_version.to_string(),
                    ..ListOptions::default()
                };
                match store.watch("", &options).await {
                    Ok(mut events) => loop {
                        let event = tokio::select! {
                            event = events.next() => event,
                            _ = shutdown.wait_for(|v| *v) => return,
                        };
                        let change = match event {
                            Some(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                                Change::Put(wrap(o))
                            }
                            Some(WatchEvent::Deleted(o)) => Change::Removed(wrap(o)),
                            Some(WatchEvent::Bookmark(_)) => continue,
                            Some(WatchEvent::Error(error)) => {
                                tracing::debug!(%error, ?kind, "RBAC watch ended; listing again");
                                break;
                            }
                            None => break,
                        };
                        if changes.send(change).await.is_err() {
                            return;
                        }
                    },
                    Err(error) => tracing::warn!(%error, ?kind, "RBAC watch"),
                }
            }
            Err(error) => tracing::warn!(%error, ?kind, "RBAC list"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// Feeds every RBAC object to the RBAC authorizer, publishing a new index after each batch of
/// changes, and fills in the rules of aggregated ClusterRoles. Runs until shutdown.
pub async fn run_controller(state: Arc<ServerState>) {
    let Some(stores) = state.rbac.clone() else {
        return;
    };
    let (tx, mut rx) = mpsc::channel(1024);
    let shutdown = state.shutdown_rx.clone();
    tokio::spawn(follow(
        stores.roles.clone(),
        PolicyKind::Role,
        PolicyObject::Role,
        tx.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(follow(
        stores.cluster_roles.clone(),
        PolicyKind::ClusterRole,
        PolicyObject::ClusterRole,
        tx.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(follow(
        stores.role_bindings.clone(),
        PolicyKind::RoleBinding,
        PolicyObject::RoleBinding,
        tx.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(follow(
        stores.cluster_role_bindings.clone(),
        PolicyKind::ClusterRoleBinding,
        PolicyObject::ClusterRoleBinding,
        tx,
        shutdown.clone(),
    ));
    let mut policy = RbacPolicy::new();
    let mut listed = std::collections::HashSet::new();
    let mut shutdown = shutdown;
    loop {
        let first = tokio::select! {
            change = rx.recv() => change,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        let Some(first) = first else {
            return;
        };
        // What is queued goes into one index, up to a batch, so a flood of changes still
        // publishes at least every BATCH of them.
        let mut next = Some(first);
        let mut taken = 0;
        let mut cluster_roles_changed = false;
        while let Some(change) = next {
            let kind = match &change {
                Change::Listed(kind, _) => *kind,
                Change::Put(object) | Change::Removed(object) => object.kind(),
            };
            cluster_roles_changed |= kind == PolicyKind::ClusterRole;
            match change {
                Change::Listed(kind, objects) => {
                    listed.insert(kind);
                    policy.clear(kind);
                    objects.into_iter().for_each(|o| policy.put(o));
                }
                Change::Put(object) => policy.put(object),
                Change::Removed(object) => policy.remove(&object),
            }
            taken += 1;
            next = if taken < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        state.access.rbac().publish(policy.index());
        if listed.len() == 4 {
            state.access.mark_rbac_synced();
        }
        // Aggregation follows ClusterRole changes, once every ClusterRole has been listed.
        if cluster_roles_changed && listed.contains(&PolicyKind::ClusterRole) {
            aggregate(&policy, &stores.cluster_roles).await;
        }
    }
}

/// Writes the rules aggregated ClusterRoles should have; their watch events bring the
/// result back into the policy.
async fn aggregate(policy: &RbacPolicy, cluster_roles: &Store<ClusterRole>) {
    for (name, rules) in policy.aggregation_updates() {
        let result = cluster_roles
            .update_with(
                "",
                &name,
                "",
                |current: Option<&ClusterRole>| {
                    let mut role = current.cloned().ok_or_else(|| {
                        ApiError::not_found(&GroupResource::new(RBAC_GROUP, "clusterroles"), &name)
                    })?;
                    role.rules = Some(rules.clone());
                    Ok(role)
                },
                &UpdateOptions::default(),
            )
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, role = %name, "aggregating ClusterRole rules");
        }
    }
}
