//! The garbage collector of `metadata.ownerReferences`, as kube-controller-manager runs it
//! (`pkg/controller/garbagecollector`):
//!
//! - a dependent whose owners are all gone is deleted (background cascading deletion); a
//!   dependent that still has an owner loses its references to the owners that are gone;
//! - an owner deleted with `propagationPolicy=Orphan` carries the `orphan` finalizer: its
//!   dependents lose their references to it, then the finalizer is removed;
//! - an owner deleted with `propagationPolicy=Foreground` carries the `foregroundDeletion`
//!   finalizer: its dependents are deleted (foreground themselves when they have dependents),
//!   and the finalizer is removed once no dependent with `blockOwnerDeletion` is left.
//!
//! As upstream's graph builder does, it follows every served kind that can be listed and
//! watched (list, then watch from the list's revision, list again when the watch ends) and
//! keeps in memory only what its decisions need: the objects that have owners or a GC
//! finalizer, and the dependents of each owner uid. Like upstream's `attemptToDeleteItem`,
//! a decision reads the live dependent and looks its owners up by name with a consistent read
//! before acting, and every delete and update carries the uid and resourceVersion it was
//! decided on. The graph mostly tells what to look at: orphaning an owner's dependents and
//! releasing a foreground deletion confirm the dependents with consistent lists of the live
//! objects, so a graph that lags behind (a kind not listed yet after a restart, an event still
//! on its way) delays them but does not orphan too few dependents or release an owner early.
//!
//! Owners are resolved by API group and kind among the served kinds. A dependent with an owner
//! of a kind not served, or with a namespaced owner while it is cluster-scoped, is left alone
//! (upstream cannot map those references either).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apimachinery::status::ApiError;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Preconditions};
use object_storage::{ListOptions, WatchEvent};
use patch::PatchType;
use registry::validation::{FINALIZER_DELETE_DEPENDENTS, FINALIZER_ORPHAN_DEPENDENTS};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::handler::{RequestContext, ResourceHandler};
use crate::server::ServerState;

/// How often the collector looks for kinds added or removed while serving.
const KIND_REFRESH: Duration = Duration::from_secs(1);

/// How long a follower whose list or watch failed waits to list again, and a failed decision
/// (doubled for each failure in a row, up to [`MAX_RETRY`]) to be made again.
const RETRY: Duration = Duration::from_secs(1);

/// The longest wait before a decision that keeps failing is made again.
const MAX_RETRY: Duration = Duration::from_secs(64);

/// The user the collector's writes are made as (upstream's controller service account).
const USER: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// The field manager of the collector's updates.
const FIELD_MANAGER: &str = "generic-garbage-collector";

/// A served resource, as a follower names what it saw.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Resource {
    group: String,
    plural: String,
    kind: String,
}

impl Resource {
    fn of(handler: &dyn ResourceHandler) -> Self {
        let info = handler.info();
        Resource {
            group: info.group.clone(),
            plural: info.plural.clone(),
            kind: info.kind.clone(),
        }
    }
}

/// What a follower saw.
enum Observed {
    /// Every object of a resource, from a fresh list.
    Listed(Resource, Vec<Value>),
    /// An object was added or changed.
    Upserted(Resource, Value),
    /// An object was deleted.
    Deleted(Resource, Value),
}

impl Observed {
    fn resource(&self) -> &Resource {
        match self {
            Observed::Listed(resource, _)
            | Observed::Upserted(resource, _)
            | Observed::Deleted(resource, _) => resource,
        }
    }
}

/// One entry of `metadata.ownerReferences`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnerRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
    /// `blockOwnerDeletion`: a foreground deletion of the owner waits for this dependent.
    block: bool,
}

impl OwnerRef {
    fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }
}

/// What the collector knows of one object.
#[derive(Clone, Debug)]
struct Node {
    resource: Resource,
    namespace: String,
    name: String,
    owners: Vec<OwnerRef>,
    /// `metadata.deletionTimestamp` is set.
    deleting: bool,
    /// Being deleted with the `orphan` finalizer.
    orphan: bool,
    /// Being deleted with the `foregroundDeletion` finalizer.
    foreground: bool,
}

impl Node {
    /// The uid and what the collector needs of `object`; `None` without a uid.
    fn of(resource: &Resource, object: &Value) -> Option<(String, Node)> {
        let metadata = object.get("metadata")?;
        let text = |field: &str| {
            metadata
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let uid = text("uid");
        if uid.is_empty() {
            return None;
        }
        let owners = owner_references(object)
            .filter_map(|reference| {
                let field = |name: &str| reference.get(name).and_then(Value::as_str);
                Some(OwnerRef {
                    api_version: field("apiVersion")?.to_owned(),
                    kind: field("kind")?.to_owned(),
                    name: field("name")?.to_owned(),
                    uid: field("uid")?.to_owned(),
                    block: reference
                        .get("blockOwnerDeletion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
            })
            .collect();
        let deleting = metadata
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        let has = |finalizer: &str| deleting && finalizers(object).any(|f| f == finalizer);
        let node = Node {
            resource: resource.clone(),
            namespace: text("namespace"),
            name: text("name"),
            orphan: has(FINALIZER_ORPHAN_DEPENDENTS),
            foreground: has(FINALIZER_DELETE_DEPENDENTS),
            owners,
            deleting,
        };
        Some((uid, node))
    }

    /// Whether the collector has anything to decide about this object.
    fn relevant(&self) -> bool {
        !self.owners.is_empty() || self.orphan || self.foreground
    }
}

/// The entries of `metadata.ownerReferences` of a document.
fn owner_references(object: &Value) -> impl Iterator<Item = &Value> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The uid an owner reference names (`""` when it names none).
fn reference_uid(reference: &Value) -> &str {
    reference
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn finalizers(object: &Value) -> impl Iterator<Item = &str> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// The objects that have owners or GC finalizers, and the dependents of each owner uid.
#[derive(Debug, Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Records `node` under `uid` (or forgets it when it is not relevant); returns what it
    /// replaces.
    fn put(&mut self, uid: &str, node: Node) -> Option<Node> {
        let old = self.remove(uid);
        if node.relevant() {
            for owner in &node.owners {
                self.dependents
                    .entry(owner.uid.clone())
                    .or_default()
                    .insert(uid.to_owned());
            }
            self.nodes.insert(uid.to_owned(), node);
        }
        old
    }

    /// Forgets the object `uid`; returns what was known of it.
    fn remove(&mut self, uid: &str) -> Option<Node> {
        let node = self.nodes.remove(uid)?;
        for owner in &node.owners {
            if let Some(dependents) = self.dependents.get_mut(&owner.uid) {
                dependents.remove(uid);
                if dependents.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
        Some(node)
    }

    fn dependents_of(&self, owner: &str) -> Vec<String> {
        self.dependents
            .get(owner)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The uids of the objects of `resource` it holds.
    fn uids_of(&self, resource: &Resource) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.resource == *resource)
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    fn is_foreground(&self, uid: &str) -> bool {
        self.nodes.get(uid).is_some_and(|node| node.foreground)
    }
}

/// One decision to make, about the object with this uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Work {
    /// Delete the dependent, or drop its references to owners that are gone
    /// (`attemptToDeleteItem`).
    Dependent(String),
    /// Drop every dependent's reference to this owner, then its `orphan` finalizer
    /// (`orphanDependents`).
    Orphan(String),
    /// Remove this owner's `foregroundDeletion` finalizer once no blocking dependent is left
    /// (`processDeletingDependentsItem`).
    Foreground(String),
}

/// Work to do now, each item once, and work to retry later.
#[derive(Debug, Default)]
struct Queue {
    ready: VecDeque<Work>,
    queued: HashSet<Work>,
    later: Vec<(Instant, Work)>,
    /// Failures in a row, by work: the retry delay doubles with each, up to [`MAX_RETRY`].
    failures: HashMap<Work, u32>,
}

impl Queue {
    fn push(&mut self, work: Work) {
        if self.queued.insert(work.clone()) {
            self.ready.push_back(work);
        }
    }

    fn pop(&mut self) -> Option<Work> {
        let work = self.ready.pop_front()?;
        self.queued.remove(&work);
        Some(work)
    }

    /// Queues `work` again after `delay`.
    fn later(&mut self, work: Work, delay: Duration) {
        self.later.push((Instant::now() + delay, work));
    }

    /// Queues failed `work` again, later each time it fails in a row.
    fn failed(&mut self, work: Work) {
        let failures = self.failures.entry(work.clone()).or_default();
        let delay = RETRY.saturating_mul(1 << (*failures).min(6)).min(MAX_RETRY);
        *failures += 1;
        self.later(work, delay);
    }

    fn succeeded(&mut self, work: &Work) {
        self.failures.remove(work);
    }

    /// Moves the retries that are due to the ready work.
    fn promote(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.later)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.later = later;
        due.into_iter().for_each(|(_, work)| self.push(work));
    }

    fn next_retry(&self) -> Option<Instant> {
        self.later.iter().map(|(at, _)| *at).min()
    }
}

/// A live object that names an owner, with what it takes to write it.
struct LiveDependent {
    handler: Arc<dyn ResourceHandler>,
    ctx: RequestContext,
    object: Value,
    /// Its reference to the owner has `blockOwnerDeletion`.
    blocking: bool,
}

/// What an owner reference points at.
#[derive(Debug, PartialEq, Eq)]
enum OwnerState {
    /// The owner exists and is not waiting for its dependents.
    Present,
    /// No object with that name and uid exists.
    Absent,
    /// The owner is being deleted in the foreground.
    WaitingForDependents,
    /// The reference cannot be resolved (kind not served, or a namespaced owner of a
    /// cluster-scoped dependent).
    Unresolvable,
}

/// The graph and the work it calls for, kept from what the followers see.
#[derive(Debug, Default)]
struct Tracker {
    graph: Graph,
    queue: Queue,
}

impl Tracker {
    fn observe(&mut self, observed: Observed) {
        match observed {
            Observed::Upserted(resource, object) => {
                self.upserted(&resource, &object);
            }
            Observed::Deleted(resource, object) => {
                if let Some((uid, _)) = Node::of(&resource, &object) {
                    self.deleted(&uid);
                }
            }
            Observed::Listed(resource, objects) => {
                let seen: HashSet<String> = objects
                    .iter()
                    .filter_map(|object| self.upserted(&resource, object))
                    .collect();
                // What went while no watch was open.
                for uid in self.graph.uids_of(&resource) {
                    if !seen.contains(&uid) {
                        self.deleted(&uid);
                    }
                }
                // An owner of this kind with no owners of its own left no node when it went
                // while no watch was open: the dependents naming an owner of this kind that
                // the list does not hold are checked again.
                let named: Vec<String> = self
                    .graph
                    .nodes
                    .iter()
                    .filter(|(_, node)| {
                        node.owners.iter().any(|owner| {
                            owner.group() == resource.group
                                && owner.kind == resource.kind
                                && !seen.contains(&owner.uid)
                        })
                    })
                    .map(|(uid, _)| uid.clone())
                    .collect();
                named
                    .into_iter()
                    .for_each(|uid| self.queue.push(Work::Dependent(uid)));
            }
        }
    }

    /// Records an added or changed object and queues what it calls for; returns its uid.
    fn upserted(&mut self, resource: &Resource, object: &Value) -> Option<String> {
        let (uid, node) = Node::of(resource, object)?;
        let old = self.graph.put(&uid, node.clone());
        let owners_changed = old.as_ref().is_none_or(|old| old.owners != node.owners);
        if !node.owners.is_empty() && owners_changed && !node.deleting {
            self.queue.push(Work::Dependent(uid.clone()));
        }
        if node.orphan {
            self.queue.push(Work::Orphan(uid.clone()));
        }
        if node.foreground {
            self.queue.push(Work::Foreground(uid.clone()));
            if old.as_ref().is_none_or(|old| !old.foreground) {
                // Upstream's graph builder, as an owner starts waiting for its dependents.
                for dependent in self.graph.dependents_of(&uid) {
                    self.queue.push(Work::Dependent(dependent));
                }
            }
        }
        // A dependent that changed (deleted, or no longer blocking) may release an owner
        // waiting for it.
        let owners = old.iter().flat_map(|old| &old.owners).chain(&node.owners);
        let waiting: Vec<String> = owners
            .filter(|owner| self.graph.is_foreground(&owner.uid))
            .map(|owner| owner.uid.clone())
            .collect();
        waiting
            .into_iter()
            .for_each(|owner| self.queue.push(Work::Foreground(owner)));
        Some(uid)
    }

    /// Forgets the objects of a resource no longer served (they are listed again if it comes
    /// back). Owners waiting for them are checked again, and so are their dependents (whose
    /// owner no longer resolves, so they are left alone).
    fn forget(&mut self, resource: &Resource) {
        for uid in self.graph.uids_of(resource) {
            self.deleted(&uid);
        }
    }

    /// Forgets a deleted object and queues its dependents and the owners waiting for it.
    fn deleted(&mut self, uid: &str) {
        if let Some(node) = self.graph.remove(uid) {
            for owner in &node.owners {
                if self.graph.is_foreground(&owner.uid) {
                    self.queue.push(Work::Foreground(owner.uid.clone()));
                }
            }
        }
        for dependent in self.graph.dependents_of(uid) {
            self.queue.push(Work::Dependent(dependent));
        }
    }
}

/// Runs until shutdown: follows every served kind and collects garbage.
pub async fn run_controller(state: Arc<ServerState>) {
    let (tx, mut rx) = mpsc::channel(4096);
    let mut collector = Collector {
        state: state.clone(),
        user: Arc::new(auth::UserInfo {
            name: USER.to_owned(),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                "system:serviceaccounts:kube-system".to_owned(),
                "system:authenticated".to_owned(),
            ],
            ..auth::UserInfo::default()
        }),
        tracker: Tracker::default(),
        followers: HashMap::new(),
    };
    let mut shutdown = state.shutdown_rx.clone();
    let mut refresh = tokio::time::interval(KIND_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let retry = collector.tracker.queue.next_retry();
        let ready = !collector.tracker.queue.ready.is_empty();
        let mut decide = false;
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|v| *v) => break,
            _ = refresh.tick() => collector.follow_kinds(&tx),
            _ = sleep_until(retry), if retry.is_some() => {
                collector.tracker.queue.promote(Instant::now());
            }
            () = std::future::ready(()), if ready => decide = true,
            observed = rx.recv() => match observed {
                Some(observed) => collector.observe(observed),
                None => break,
            },
        }
        if decide {
            // What the followers saw first, so that the decision reads the newest graph.
            while let Ok(observed) = rx.try_recv() {
                collector.observe(observed);
            }
            if let Some(work) = collector.tracker.queue.pop() {
                collector.process(work).await;
            }
        }
    }
    for (_, follower) in collector.followers.drain() {
        follower.task.abort();
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

struct Collector {
    state: Arc<ServerState>,
    user: Arc<auth::UserInfo>,
    tracker: Tracker,
    followers: HashMap<Resource, Follower>,
}

/// The task following one resource, and the handler it follows.
struct Follower {
    handler: Arc<dyn ResourceHandler>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Starts a follower for every served kind that can be listed and watched and has none,
    /// and stops those of kinds no longer served.
    fn follow_kinds(&mut self, tx: &mpsc::Sender<Observed>) {
        let kinds = self.state.kinds();
        let mut served = HashSet::new();
        for handler in &kinds.ordered {
            let info = handler.info();
            let can = |verb: &str| info.verbs.iter().any(|v| v == verb);
            if !can("list") || !can("watch") {
                continue;
            }
            let resource = Resource::of(handler.as_ref());
            served.insert(resource.clone());
            match self.followers.get(&resource) {
                Some(follower)
                    if std::ptr::addr_eq(Arc::as_ptr(&follower.handler), Arc::as_ptr(handler)) =>
                {
                    continue;
                }
                // The kind was removed and served again: follow the new handler.
                Some(_) => {
                    if let Some(old) = self.followers.remove(&resource) {
                        old.task.abort();
                    }
                    self.tracker.forget(&resource);
                }
                None => {}
            }
            let task = tokio::spawn(follow(
                handler.clone(),
                resource.clone(),
                tx.clone(),
                self.state.shutdown_rx.clone(),
            ));
            let handler = handler.clone();
            self.followers.insert(resource, Follower { handler, task });
        }
        let tracker = &mut self.tracker;
        self.followers.retain(|resource, follower| {
            let keep = served.contains(resource);
            if !keep {
                follower.task.abort();
                tracker.forget(resource);
            }
            keep
        });
    }

    /// Takes in what a follower saw, unless its resource is no longer followed (events a
    /// stopped follower had already sent).
    fn observe(&mut self, observed: Observed) {
        if self.followers.contains_key(observed.resource()) {
            self.tracker.observe(observed);
        }
    }

    async fn process(&mut self, work: Work) {
        let span = tracing::debug_span!("garbage_collect", ?work);
        let result = async {
            match &work {
                Work::Dependent(uid) => self.attempt_to_delete(uid).await,
                Work::Orphan(uid) => self.orphan_dependents(uid).await,
                Work::Foreground(uid) => self.release_foreground(uid).await,
            }
        }
        .instrument(span)
        .await;
        match result {
            Ok(()) => self.tracker.queue.succeeded(&work),
            Err(error) => {
                tracing::warn!(%error, ?work, "garbage collector: retrying");
                self.tracker.queue.failed(work);
            }
        }
    }

    /// Deletes a dependent whose owners are all gone or waiting for their dependents, or
    /// drops its references to those when another owner is present.
    async fn attempt_to_delete(&mut self, uid: &str) -> Result<(), ApiError> {
        let Some(node) = self.tracker.graph.nodes.get(uid).cloned() else {
            return Ok(());
        };
        let Some((handler, ctx)) = self.target(&node.resource, &node.namespace) else {
            return Ok(());
        };
        let Some(latest) = live(handler.as_ref(), &ctx, &node.name, uid).await? else {
            return Ok(());
        };
        let Some((_, latest_node)) = Node::of(&node.resource, &latest) else {
            return Ok(());
        };
        if latest_node.deleting {
            // Its own deletion is under way (a foreground one is released by its owner's
            // work).
            return Ok(());
        }
        let mut present = false;
        let mut gone = HashSet::new();
        let mut waiting = false;
        for owner in &latest_node.owners {
            match self.owner_state(&latest_node, owner).await? {
                OwnerState::Present => present = true,
                OwnerState::Absent => {
                    gone.insert(owner.uid.clone());
                }
                OwnerState::WaitingForDependents => {
                    waiting = true;
                    gone.insert(owner.uid.clone());
                }
                // Upstream does not touch an object whose owners it cannot map either.
                OwnerState::Unresolvable => return Ok(()),
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        if present {
            return remove_owner_references(handler.as_ref(), &ctx, &latest, &gone).await;
        }
        // From the graph, as upstream decides it (`dependentsLength`): a live list per
        // dependent of a large foreground deletion would cost a list of the namespace each.
        // A dependent the graph has not seen yet makes this one go in the background; its own
        // dependents are then collected after it.
        let has_dependents = waiting && self.tracker.graph.dependents.contains_key(uid);
        let policy = if has_dependents {
            // An owner waits for this dependent, which has dependents of its own: it is
            // deleted in the foreground, so that the owner waits for the whole subtree. As
            // upstream, when one of those dependents is itself waiting for its dependents,
            // this object's references stop blocking first, which breaks a cycle.
            let dependents = self.tracker.graph.dependents_of(uid);
            let blocking = latest_node.owners.iter().any(|owner| owner.block);
            if blocking
                && dependents
                    .iter()
                    .any(|d| self.tracker.graph.is_foreground(d))
            {
                return unblock_owner_references(handler.as_ref(), &ctx, &latest).await;
            }
            "Foreground"
        } else if finalizers(&latest).any(|f| f == FINALIZER_ORPHAN_DEPENDENTS) {
            "Orphan"
        } else if finalizers(&latest).any(|f| f == FINALIZER_DELETE_DEPENDENTS) {
            "Foreground"
        } else {
            "Background"
        };
        tracing::debug!(
            resource = %node.resource.plural,
            namespace = %node.namespace,
            name = %node.name,
            policy,
            "deleting a dependent whose owners are gone"
        );
        // The uid and resourceVersion the decision read: if the object changed since (a new
        // owner, say), the delete is refused with 409 and the decision is made again.
        let options = DeleteOptions {
            propagation_policy: Some(policy.to_owned()),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: latest
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }),
            ..DeleteOptions::default()
        };
        match handler.delete(&ctx, &node.name, &options).await {
            Err(e) if e.code != 404 => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether the owner `owner` of `dependent` exists, by a consistent read.
    async fn owner_state(
        &self,
        dependent: &Node,
        owner: &OwnerRef,
    ) -> Result<OwnerState, ApiError> {
        let kinds = self.state.kinds();
        let handler = kinds.ordered.iter().find(|handler| {
            let info = handler.info();
            info.group == owner.group() && info.kind == owner.kind
        });
        let Some(handler) = handler else {
            return Ok(OwnerState::Unresolvable);
        };
        let namespace = match (handler.info().namespaced, dependent.namespace.is_empty()) {
            (true, true) => return Ok(OwnerState::Unresolvable),
            (true, false) => dependent.namespace.as_str(),
            (false, _) => "",
        };
        let ctx = self.context(handler.as_ref(), namespace);
        let resource = Resource::of(handler.as_ref());
        Ok(
            match live(handler.as_ref(), &ctx, &owner.name, &owner.uid).await? {
                None => OwnerState::Absent,
                Some(object) => match Node::of(&resource, &object) {
                    Some((_, node)) if node.foreground => OwnerState::WaitingForDependents,
                    _ => OwnerState::Present,
                },
            },
        )
    }

    /// Drops every dependent's reference to the owner `uid`, then its `orphan` finalizer. The
    /// dependents are found by listing the live objects, not from the graph: a dependent whose
    /// event has not arrived yet would otherwise lose its owner with the reference still in
    /// place, and be collected.
    async fn orphan_dependents(&mut self, uid: &str) -> Result<(), ApiError> {
        let Some(owner) = self.tracker.graph.nodes.get(uid).cloned() else {
            return Ok(());
        };
        if !owner.orphan {
            return Ok(());
        }
        let owner_uid = HashSet::from([uid.to_owned()]);
        for dependent in self.live_dependents(&owner.namespace, uid).await? {
            remove_owner_references(
                dependent.handler.as_ref(),
                &dependent.ctx,
                &dependent.object,
                &owner_uid,
            )
            .await?;
        }
        self.remove_finalizer(&owner, uid, FINALIZER_ORPHAN_DEPENDENTS)
            .await
    }

    /// Removes the owner's `foregroundDeletion` finalizer once no dependent that blocks it is
    /// left; until then its dependents are being deleted, and their deletion brings this
    /// work back.
    async fn release_foreground(&mut self, uid: &str) -> Result<(), ApiError> {
        let Some(owner) = self.tracker.graph.nodes.get(uid).cloned() else {
            return Ok(());
        };
        if !owner.foreground {
            return Ok(());
        }
        let blocking: Vec<String> = self
            .tracker
            .graph
            .dependents_of(uid)
            .into_iter()
            .filter(|dependent| {
                self.tracker.graph.nodes.get(dependent).is_some_and(|node| {
                    node.owners
                        .iter()
                        .any(|reference| reference.uid == uid && reference.block)
                })
            })
            .collect();
        if !blocking.is_empty() {
            for dependent in blocking {
                self.tracker.queue.push(Work::Dependent(dependent));
            }
            return Ok(());
        }
        // The graph may lag behind: the owner is released only when no live object blocks it.
        // One the graph has not seen yet is deleted when its event arrives.
        let live = self.live_dependents(&owner.namespace, uid).await?;
        if live.iter().any(|dependent| dependent.blocking) {
            self.tracker
                .queue
                .later(Work::Foreground(uid.to_owned()), RETRY);
            return Ok(());
        }
        self.remove_finalizer(&owner, uid, FINALIZER_DELETE_DEPENDENTS)
            .await
    }

    /// Every live object that names the owner `uid` (in `namespace`, `""` when the owner is
    /// cluster-scoped) among its owners, by consistent lists of the served kinds that can hold
    /// one: those of the owner's namespace for a namespaced owner, all for a cluster-scoped
    /// one. Used before the decisions that would go wrong on a graph that lags behind.
    async fn live_dependents(
        &self,
        namespace: &str,
        uid: &str,
    ) -> Result<Vec<LiveDependent>, ApiError> {
        let kinds = self.state.kinds();
        let mut found = Vec::new();
        for handler in &kinds.ordered {
            let info = handler.info();
            if !info.verbs.iter().any(|verb| verb == "list")
                || (!namespace.is_empty() && !info.namespaced)
            {
                continue;
            }
            let ctx = self.context(handler.as_ref(), namespace);
            for object in handler.list(&ctx, &ListOptions::default()).await?.items {
                let reference =
                    owner_references(&object).find(|reference| reference_uid(reference) == uid);
                let Some(reference) = reference else {
                    continue;
                };
                let blocking = reference
                    .get("blockOwnerDeletion")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let object_namespace = object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                found.push(LiveDependent {
                    handler: handler.clone(),
                    ctx: self.context(handler.as_ref(), object_namespace),
                    blocking,
                    object,
                });
            }
        }
        Ok(found)
    }

    /// Removes `finalizer` from the live object `uid` (the Store deletes it when it was the
    /// last one).
    async fn remove_finalizer(
        &self,
        node: &Node,
        uid: &str,
        finalizer: &str,
    ) -> Result<(), ApiError> {
        let Some((handler, ctx)) = self.target(&node.resource, &node.namespace) else {
            return Ok(());
        };
        let Some(latest) = live(handler.as_ref(), &ctx, &node.name, uid).await? else {
            return Ok(());
        };
        let kept: Vec<&str> = finalizers(&latest).filter(|f| *f != finalizer).collect();
        if kept.len() == finalizers(&latest).count() {
            return Ok(());
        }
        let finalizers = if kept.is_empty() {
            Value::Null
        } else {
            json!(kept)
        };
        patch_metadata(handler.as_ref(), &ctx, &latest, "finalizers", finalizers).await
    }

    /// The handler of `resource` and a context for objects in `namespace`, while served.
    fn target(
        &self,
        resource: &Resource,
        namespace: &str,
    ) -> Option<(Arc<dyn ResourceHandler>, RequestContext)> {
        let kinds = self.state.kinds();
        let handler = kinds
            .ordered
            .iter()
            .find(|handler| Resource::of(handler.as_ref()) == *resource)?
            .clone();
        let ctx = self.context(handler.as_ref(), namespace);
        Some((handler, ctx))
    }

    fn context(&self, handler: &dyn ResourceHandler, namespace: &str) -> RequestContext {
        RequestContext {
            namespace: namespace.to_owned(),
            version: handler.info().storage_version.clone(),
            field_manager: FIELD_MANAGER.to_owned(),
            user: self.user.clone(),
            ..RequestContext::default()
        }
    }
}

/// The object `name` if it exists with `uid`, by a consistent read.
async fn live(
    handler: &dyn ResourceHandler,
    ctx: &RequestContext,
    name: &str,
    uid: &str,
) -> Result<Option<Value>, ApiError> {
    match handler.get(ctx, name, "").await {
        Ok(object) if object.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid) => {
            Ok(Some(object))
        }
        Ok(_) => Ok(None),
        Err(e) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Drops the references to the owners `gone` from the live object `latest`.
async fn remove_owner_references(
    handler: &dyn ResourceHandler,
    ctx: &RequestContext,
    latest: &Value,
    gone: &HashSet<String>,
) -> Result<(), ApiError> {
    let kept: Vec<Value> = owner_references(latest)
        .filter(|reference| !gone.contains(reference_uid(reference)))
        .cloned()
        .collect();
    if kept.len() == owner_references(latest).count() {
        return Ok(());
    }
    let kept = if kept.is_empty() {
        Value::Null
    } else {
        Value::Array(kept)
    };
    patch_metadata(handler, ctx, latest, "ownerReferences", kept).await
}

/// Makes every owner reference of the live object `latest` non-blocking
/// (`unblockOwnerReferencesStrategicMergePatch`). Its update brings the decision back.
async fn unblock_owner_references(
    handler: &dyn ResourceHandler,
    ctx: &RequestContext,
    latest: &Value,
) -> Result<(), ApiError> {
    let references: Vec<Value> = owner_references(latest)
        .map(|reference| {
            let mut reference = reference.clone();
            if let Some(fields) = reference.as_object_mut() {
                fields.insert("blockOwnerDeletion".to_owned(), Value::Bool(false));
            }
            reference
        })
        .collect();
    patch_metadata(
        handler,
        ctx,
        latest,
        "ownerReferences",
        Value::Array(references),
    )
    .await
}

/// Sets `metadata.<field>` of `latest` with a merge patch that carries the object's uid and
/// resourceVersion, so it applies only to the object it was decided on (409 otherwise, and the
/// work is retried on what is there then). A 404 means there is nothing left to do.
async fn patch_metadata(
    handler: &dyn ResourceHandler,
    ctx: &RequestContext,
    latest: &Value,
    field: &str,
    value: Value,
) -> Result<(), ApiError> {
    let metadata = latest.get("metadata").cloned().unwrap_or(Value::Null);
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = json!({"metadata": {
        field: value,
        "uid": metadata.get("uid"),
        "resourceVersion": metadata.get("resourceVersion"),
    }});
    let body = serde_json::to_vec(&body)
        .map_err(|e| ApiError::internal(format!("encoding a garbage collector patch: {e}")))?;
    match handler.patch(ctx, name, PatchType::Merge, &body).await {
        Err(e) if e.code != 404 => Err(e),
        _ => Ok(()),
    }
}

/// Lists `resource`, sends the list, then sends every event of a watch from the list's
/// revision; lists again when the watch ends or fails. Runs until shutdown.
async fn follow(
    handler: Arc<dyn ResourceHandler>,
    resource: Resource,
    tx: mpsc::Sender<Observed>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let ctx = RequestContext {
        version: handler.info().storage_version.clone(),
        ..RequestContext::default()
    };
    loop {
        let session = async {
            let list = handler.list(&ctx, &ListOptions::default()).await?;
            if tx
                .send(Observed::Listed(resource.clone(), list.items))
                .await
                .is_err()
            {
                return Ok(());
            }
            let options = ListOptions {
                resource_version: list.resource_version.to_string(),
                ..ListOptions::default()
            };
            let mut events = handler.watch(&ctx, &options).await?;
            while let Some(event) = events.next().await {
                let observed = match event {
                    WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                        Observed::Upserted(resource.clone(), object)
                    }
                    WatchEvent::Deleted(object) => Observed::Deleted(resource.clone(), object),
                    WatchEvent::Bookmark(_) => continue,
                    WatchEvent::Error(error) => return Err(error),
                };
                if tx.send(observed).await.is_err() {
                    return Ok(());
                }
            }
            Ok::<(), ApiError>(())
        };
        tokio::select! {
            result = session => {
                if let Err(error) = result {
                    tracing::debug!(%error, resource = %resource.plural, "garbage collector: listing again");
                }
            }
            _ = shutdown.wait_for(|v| *v) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmaps() -> Resource {
        Resource {
            group: String::new(),
            plural: "configmaps".to_owned(),
            kind: "ConfigMap".to_owned(),
        }
    }

    fn object(uid: &str, owners: &[(&str, bool)], finalizers: &[&str], deleting: bool) -> Value {
        let owners: Vec<Value> = owners
            .iter()
            .map(|(uid, block)| {
                json!({"apiVersion": "v1", "kind": "ConfigMap", "name": format!("owner-{uid}"),
                       "uid": uid, "blockOwnerDeletion": block})
            })
            .collect();
        json!({"metadata": {
            "name": format!("cm-{uid}"), "namespace": "default", "uid": uid,
            "ownerReferences": owners, "finalizers": finalizers,
            "deletionTimestamp": if deleting { json!("2026-01-01T00:00:00Z") } else { Value::Null },
        }})
    }

    fn drain(queue: &mut Queue) -> Vec<Work> {
        std::iter::from_fn(|| queue.pop()).collect()
    }

    #[test]
    fn nodes_read_owners_and_gc_finalizers() {
        let (uid, node) = Node::of(
            &configmaps(),
            &object("d", &[("o", true)], &["orphan", "other"], true),
        )
        .unwrap();
        assert_eq!(uid, "d");
        assert_eq!(node.owners.len(), 1);
        assert!(node.owners[0].block);
        assert_eq!(node.owners[0].group(), "");
        assert!(node.deleting && node.orphan && !node.foreground);
        // GC finalizers count only while the object is being deleted.
        let (_, node) = Node::of(
            &configmaps(),
            &object("d", &[], &["foregroundDeletion"], false),
        )
        .unwrap();
        assert!(!node.foreground && !node.relevant());
        assert!(Node::of(&configmaps(), &json!({"metadata": {"name": "x"}})).is_none());
        let reference = OwnerRef {
            api_version: "apps/v1".to_owned(),
            kind: "ReplicaSet".to_owned(),
            name: "r".to_owned(),
            uid: "u".to_owned(),
            block: false,
        };
        assert_eq!(reference.group(), "apps");
    }

    #[test]
    fn the_graph_indexes_dependents_by_owner() {
        let mut graph = Graph::default();
        let (uid, node) = Node::of(
            &configmaps(),
            &object("d1", &[("o1", false), ("o2", true)], &[], false),
        )
        .unwrap();
        graph.put(&uid, node);
        let (uid, node) =
            Node::of(&configmaps(), &object("d2", &[("o1", false)], &[], false)).unwrap();
        graph.put(&uid, node);
        assert_eq!(graph.dependents_of("o1"), vec!["d1", "d2"]);
        assert_eq!(graph.dependents_of("o2"), vec!["d1"]);
        // A change of owners moves the links; an object without owners is forgotten.
        let (uid, node) =
            Node::of(&configmaps(), &object("d1", &[("o2", true)], &[], false)).unwrap();
        assert!(graph.put(&uid, node).is_some());
        assert_eq!(graph.dependents_of("o1"), vec!["d2"]);
        let (uid, node) = Node::of(&configmaps(), &object("d2", &[], &[], false)).unwrap();
        graph.put(&uid, node);
        assert!(graph.dependents_of("o1").is_empty());
        assert!(!graph.nodes.contains_key("d2"));
        assert!(graph.remove("d1").is_some());
        assert!(graph.dependents.is_empty() && graph.nodes.is_empty());
    }

    #[test]
    fn the_queue_holds_each_work_once_and_retries_later() {
        let mut queue = Queue::default();
        let queue = &mut queue;
        queue.push(Work::Dependent("a".to_owned()));
        queue.push(Work::Dependent("a".to_owned()));
        queue.push(Work::Orphan("a".to_owned()));
        assert_eq!(
            drain(queue),
            vec![
                Work::Dependent("a".to_owned()),
                Work::Orphan("a".to_owned())
            ]
        );
        let b = Work::Foreground("b".to_owned());
        queue.failed(b.clone());
        let due = queue.next_retry().unwrap();
        queue.promote(due - Duration::from_millis(1));
        assert!(drain(queue).is_empty());
        queue.promote(due);
        assert_eq!(drain(queue), vec![b.clone()]);
        // Each failure in a row waits twice as long; a success starts again at RETRY.
        let before = Instant::now();
        queue.failed(b.clone());
        let second = queue.next_retry().unwrap() - before;
        assert!(second >= RETRY * 2 && second < RETRY * 3, "{second:?}");
        queue.promote(Instant::now() + MAX_RETRY);
        drain(queue);
        queue.succeeded(&b);
        queue.failed(b.clone());
        assert!(queue.next_retry().unwrap() - before < RETRY * 2);
        queue.promote(Instant::now() + MAX_RETRY);
        drain(queue);
        assert!(queue.next_retry().is_none());
    }

    #[test]
    fn what_the_followers_see_queues_the_decisions() {
        let mut tracker = Tracker::default();
        let cms = configmaps();
        // A new dependent is checked; an owner without owners is not tracked.
        tracker.upserted(&cms, &object("o", &[], &[], false));
        tracker.upserted(&cms, &object("d", &[("o", true)], &[], false));
        assert_eq!(
            drain(&mut tracker.queue),
            vec![Work::Dependent("d".to_owned())]
        );
        // An unchanged dependent is not checked again.
        tracker.upserted(&cms, &object("d", &[("o", true)], &[], false));
        assert!(drain(&mut tracker.queue).is_empty());
        // The owner starts a foreground deletion: it waits, its dependents are deleted.
        tracker.upserted(&cms, &object("o", &[], &["foregroundDeletion"], true));
        assert_eq!(
            drain(&mut tracker.queue),
            vec![
                Work::Foreground("o".to_owned()),
                Work::Dependent("d".to_owned())
            ]
        );
        // The dependent going releases the owner.
        tracker.deleted("d");
        assert_eq!(
            drain(&mut tracker.queue),
            vec![Work::Foreground("o".to_owned())]
        );
        // An orphaning owner; its dependent's owner going makes it checked.
        tracker.upserted(&cms, &object("p", &[], &["orphan"], true));
        tracker.upserted(&cms, &object("e", &[("p", false)], &[], false));
        assert_eq!(
            drain(&mut tracker.queue),
            vec![
                Work::Orphan("p".to_owned()),
                Work::Dependent("e".to_owned())
            ]
        );
        tracker.deleted("p");
        assert_eq!(
            drain(&mut tracker.queue),
            vec![Work::Dependent("e".to_owned())]
        );
    }

    #[test]
    fn a_list_catches_up_with_what_no_watch_saw() {
        let mut tracker = Tracker::default();
        let cms = configmaps();
        tracker.upserted(&cms, &object("waiting", &[], &["foregroundDeletion"], true));
        tracker.upserted(&cms, &object("d1", &[("waiting", true)], &[], false));
        tracker.upserted(&cms, &object("d2", &[("gone", false)], &[], false));
        tracker.upserted(&cms, &object("d3", &[("listed", false)], &[], false));
        drain(&mut tracker.queue);
        // d1 went while no watch was open; d2's owner "gone" (which has no node) too.
        tracker.observe(Observed::Listed(
            cms.clone(),
            vec![
                object("waiting", &[], &["foregroundDeletion"], true),
                object("d2", &[("gone", false)], &[], false),
                object("d3", &[("listed", false)], &[], false),
                object("listed", &[], &[], false),
            ],
        ));
        let work = drain(&mut tracker.queue);
        // d3's owner is in the list: nothing to check again.
        assert!(
            !work.contains(&Work::Dependent("d3".to_owned())),
            "{work:?}"
        );
        assert!(!tracker.graph.nodes.contains_key("d1"));
        assert!(
            work.contains(&Work::Foreground("waiting".to_owned())),
            "{work:?}"
        );
        assert!(work.contains(&Work::Dependent("d2".to_owned())), "{work:?}");
    }

    #[test]
    fn a_kind_no_longer_served_is_forgotten() {
        let mut tracker = Tracker::default();
        let secrets = Resource {
            group: String::new(),
            plural: "secrets".to_owned(),
            kind: "Secret".to_owned(),
        };
        tracker.upserted(&configmaps(), &object("c", &[("o", false)], &[], false));
        tracker.upserted(&secrets, &object("s", &[("o", false)], &[], false));
        tracker.forget(&secrets);
        assert!(tracker.graph.nodes.contains_key("c") && !tracker.graph.nodes.contains_key("s"));
        assert_eq!(tracker.graph.dependents_of("o"), vec!["c"]);
    }
}
