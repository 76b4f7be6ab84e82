//! Delete, graceful deletion, finalizers and DeleteCollection.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Status};

use super::strategy::GcPolicy;
use super::validation::{FINALIZER_DELETE_DEPENDENTS, FINALIZER_ORPHAN_DEPENDENTS};
use super::{Store, system};
use apimachinery::object::Object;
use apimachinery::status::{ApiError, FieldError, GroupResource, Operation};
use object_storage::{GetOptions, ListOptions, ObjectList, Preconditions, ResourceVersionMatch};
use object_storage::{StorageError, UpdateDecision, UpdateOutcome};

/// What a delete answers with, as Kubernetes does.
#[derive(Clone, Debug, PartialEq)]
pub enum DeleteResponse<K> {
    /// The object: still present (being deleted, waiting for finalizers or its grace period),
    /// or the deleted object when the store returns deleted objects.
    Object(K),
    /// `Status{status: Success, details: {name, group, kind: <resource>, uid}}` of a completed
    /// delete (boxed, so the response is no larger than the object variant needs).
    Status(Box<Status>),
}

/// The result of [`Store::delete`].
#[derive(Clone, Debug, PartialEq)]
pub struct DeleteResult<K> {
    /// The response body.
    pub response: DeleteResponse<K>,
    /// Whether the object is gone (200) rather than marked for deletion (202).
    pub deleted: bool,
}

/// Why the graceful / finalizer update of a delete stopped without writing.
#[derive(Debug)]
enum MarkStop {
    /// Another delete is already in progress.
    AlreadyDeleting,
    /// No finalizer and no grace period: the object is deleted at once.
    DeleteNow,
}

/// What the attempts of the graceful / finalizer update found (upstream's
/// `pendingFinalizers`, `lastGraceful` and `lastExisting`).
struct Marking<K> {
    pending_finalizers: bool,
    last_graceful: i64,
    last_existing: Option<K>,
    /// Why the last attempt stopped without writing, if it did.
    stop: Option<MarkStop>,
}

impl<K> Default for Marking<K> {
    fn default() -> Self {
        Marking {
            pending_finalizers: false,
            last_graceful: 0,
            last_existing: None,
            stop: None,
        }
    }
}

/// How the graceful / finalizer update of a delete ended.
enum Marked<K> {
    /// The object stays (finalizers pending or grace period running).
    Kept(K),
    /// Another delete is already in progress: answer with the object as read.
    AlreadyDeleting,
    /// Proceed with the storage delete.
    DeleteNow {
        out: Option<K>,
        last_existing: Option<K>,
        ignore_not_found: bool,
    },
}

fn is_dry_run(options: &DeleteOptions) -> bool {
    options.dry_run.as_ref().is_some_and(|d| !d.is_empty())
}

/// Upstream's `ValidateDeleteOptions` as the Status it answers: 422 Invalid on
/// `DeleteOptions.meta.k8s.io` naming every problem.
///
/// # Errors
///
/// `orphanDependents` with `propagationPolicy`, an unknown policy, a `dryRun` other than `All`.
pub fn check_delete_options(options: &DeleteOptions) -> Result<(), ApiError> {
    let errors = validate_delete_options(options);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "DeleteOptions",
            "meta.k8s.io",
            "",
            &errors,
        ))
    }
}

/// The problems `ValidateDeleteOptions` finds.
fn validate_delete_options(options: &DeleteOptions) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if options.orphan_dependents.is_some() && options.propagation_policy.is_some() {
        errors.push(FieldError::invalid(
            "propagationPolicy",
            options.propagation_policy.clone().unwrap_or_default(),
            "orphanDependents and deletionPropagation cannot be both set",
        ));
    }
    if let Some(policy) = &options.propagation_policy {
        if !matches!(policy.as_str(), "Foreground" | "Background" | "Orphan") {
            errors.push(FieldError::not_supported(
                "propagationPolicy",
                policy.as_str(),
                &["Foreground", "Background", "Orphan", "nil"],
            ));
        }
    }
    let dry_run = options.dry_run.as_deref().unwrap_or_default();
    if dry_run.iter().any(|value| value != "All") {
        errors.push(FieldError::not_supported(
            "dryRun",
            serde_json::json!(dry_run),
            &["All"],
        ));
    }
    errors
}

impl<K: Object> Store<K> {
    fn kind_resource(&self) -> GroupResource {
        GroupResource::new(self.resource.group.clone(), self.kind.clone())
    }

    /// `rest.BeforeDelete`: validates the options, checks preconditions early (409), and decides
    /// whether the delete is graceful and whether a graceful delete is already pending.
    fn before_delete(
        &self,
        object: &mut K,
        options: &mut DeleteOptions,
    ) -> Result<(bool, bool), ApiError> {
        check_delete_options(options)?;
        let name = object.meta().name.clone().unwrap_or_default();
        if let Some(preconditions) = &options.preconditions {
            let meta = object.meta();
            if let Some(uid) = &preconditions.uid {
                let actual = meta.uid.clone().unwrap_or_default();
                if *uid != actual {
                    return Err(ApiError::conflict(
                        &self.kind_resource(),
                        &name,
                        format!(
                            "the UID in the precondition ({uid}) does not match the UID in record ({actual}). The object might have been deleted and then recreated"
                        ),
                    ));
                }
            }
            if let Some(rv) = &preconditions.resource_version {
                let actual = meta.resource_version.clone().unwrap_or_default();
                if *rv != actual {
                    return Err(ApiError::conflict(
                        &self.kind_resource(),
                        &name,
                        format!(
                            "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({actual}). The object might have been modified"
                        ),
                    ));
                }
            }
        }
        if options.grace_period_seconds.is_some_and(|g| g < 0) {
            options.grace_period_seconds = Some(1);
        }
        {
            let meta = object.meta_mut();
            if meta.deletion_grace_period_seconds.is_some_and(|g| g < 0) {
                meta.deletion_grace_period_seconds = Some(1);
            }
        }
        if self.strategy.default_grace_period_seconds(object).is_none() {
            return Ok((false, false));
        }
        if let Some(timestamp) = object.meta().deletion_timestamp.clone() {
            let current = object.meta().deletion_grace_period_seconds.unwrap_or(0);
            if current == 0 {
                return Ok((false, false));
            }
            if let Some(period) = options.grace_period_seconds {
                if period >= current {
                    return Ok((false, true));
                }
                let moved = system::add_seconds(&timestamp, period - current);
                let meta = object.meta_mut();
                meta.deletion_timestamp = Some(moved);
                meta.deletion_grace_period_seconds = Some(period);
                return Ok((true, false));
            }
            options.grace_period_seconds = Some(current);
            return Ok((false, true));
        }
        if !self.strategy.check_graceful_delete(object, options) {
            return Ok((false, false));
        }
        let Some(period) = options.grace_period_seconds else {
            return Err(ApiError::internal(
                "options.GracePeriodSeconds should not be nil",
            ));
        };
        let meta = object.meta_mut();
        meta.deletion_timestamp = Some(system::add_seconds(&system::now(), period));
        meta.deletion_grace_period_seconds = Some(period);
        if let Some(generation) = meta.generation.filter(|g| *g > 0) {
            meta.generation = Some(generation + 1);
        }
        Ok((true, false))
    }

    /// `deletionFinalizersForGarbageCollection`: whether the GC finalizers must change, and the
    /// new finalizer list.
    fn gc_finalizers(&self, object: &K, options: &DeleteOptions) -> (bool, Vec<String>) {
        let current = object.meta().finalizers.clone().unwrap_or_default();
        if !self.enable_gc {
            return (false, current);
        }
        let policy = self.strategy.default_gc_policy();
        let (orphan, foreground) = if policy == GcPolicy::Unsupported {
            (false, false)
        } else {
            let explicit = match (
                options.orphan_dependents,
                options.propagation_policy.as_deref(),
            ) {
                (Some(orphan), _) => Some((orphan, false)),
                (None, Some("Orphan")) => Some((true, false)),
                (None, Some("Foreground")) => Some((false, true)),
                (None, Some("Background")) => Some((false, false)),
                _ => None,
            };
            explicit
                .or_else(|| {
                    current.iter().find_map(|f| match f.as_str() {
                        FINALIZER_ORPHAN_DEPENDENTS => Some((true, false)),
                        FINALIZER_DELETE_DEPENDENTS => Some((false, true)),
                        _ => None,
                    })
                })
                .unwrap_or((policy == GcPolicy::OrphanDependents, false))
        };
        let mut finalizers: Vec<String> = current
            .iter()
            .filter(|f| *f != FINALIZER_ORPHAN_DEPENDENTS && *f != FINALIZER_DELETE_DEPENDENTS)
            .cloned()
            .collect();
        if orphan {
            finalizers.push(FINALIZER_ORPHAN_DEPENDENTS.to_owned());
        }
        if foreground {
            finalizers.push(FINALIZER_DELETE_DEPENDENTS.to_owned());
        }
        let old: std::collections::BTreeSet<&String> = current.iter().collect();
        let new: std::collections::BTreeSet<&String> = finalizers.iter().collect();
        if old == new {
            (false, current)
        } else {
            (true, finalizers)
        }
    }

    /// `markAsDeleting`: deletionTimestamp now (unless earlier), grace 0, generation bumped on
    /// the first deletion.
    fn mark_as_deleting(&self, object: &mut K) {
        let now = system::now();
        let meta = object.meta_mut();
        if meta.deletion_timestamp.is_none() {
            if let Some(generation) = meta.generation.filter(|g| *g > 0) {
                meta.generation = Some(generation + 1);
            }
        }
        if meta.deletion_timestamp.as_ref().is_none_or(|t| t.0 > now.0) {
            meta.deletion_timestamp = Some(now);
        }
        meta.deletion_grace_period_seconds = Some(0);
    }

    /// Adds the kind's [`finalizers_on_delete`](super::Strategy::finalizers_on_delete) to an
    /// object not yet being deleted.
    fn add_delete_finalizers(&self, object: &mut K) {
        if object.meta().deletion_timestamp.is_some() {
            return;
        }
        let extra = self.strategy.finalizers_on_delete(object);
        if extra.is_empty() {
            return;
        }
        let finalizers = object.meta_mut().finalizers.get_or_insert_with(Vec::new);
        for finalizer in extra {
            if !finalizers.contains(&finalizer) {
                finalizers.push(finalizer);
            }
        }
    }

    /// One attempt of the graceful / finalizer update of a delete: the object to write
    /// (marked for deletion), or a stop when the object is already being deleted or must be
    /// deleted at once. What the attempts learn goes into `marking`.
    fn mark_step(
        &self,
        mut existing: K,
        options: &DeleteOptions,
        marking: &mut Marking<K>,
    ) -> Result<UpdateDecision<K, ()>, ApiError> {
        marking.stop = None;
        let mut options = options.clone();
        let (graceful, pending) = self.before_delete(&mut existing, &mut options)?;
        if pending {
            marking.stop = Some(MarkStop::AlreadyDeleting);
            return Ok(UpdateDecision::Stop(()));
        }
        self.add_delete_finalizers(&mut existing);
        let (changed, finalizers) = self.gc_finalizers(&existing, &options);
        if changed {
            existing.meta_mut().finalizers = (!finalizers.is_empty()).then_some(finalizers);
        }
        marking.pending_finalizers = existing
            .meta()
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.is_empty());
        let ttl = self.strategy.ttl_seconds(&existing, 0, true);
        let ttl = (ttl > 0).then_some(ttl);
        if !graceful {
            if marking.pending_finalizers {
                self.mark_as_deleting(&mut existing);
                self.strategy.on_deletion_marked(&mut existing);
                return Ok(UpdateDecision::Write(existing, ttl));
            }
            marking.stop = Some(MarkStop::DeleteNow);
            return Ok(UpdateDecision::Stop(()));
        }
        marking.last_graceful = options.grace_period_seconds.unwrap_or(0);
        self.strategy.on_deletion_marked(&mut existing);
        marking.last_existing = Some(existing.clone());
        Ok(UpdateDecision::Write(existing, ttl))
    }

    /// `updateForGracefulDeletionAndFinalizers`.
    async fn mark_for_deletion(
        &self,
        key: &str,
        name: &str,
        options: &DeleteOptions,
        preconditions: &Preconditions,
    ) -> Result<Marked<K>, ApiError> {
        let mut marking = Marking::default();
        let outcome = self
            .storage_for(is_dry_run(options))
            .guaranteed_update_with(
                key,
                false,
                Some(preconditions),
                &mut |existing, _| {
                    // As upstream, what an earlier attempt found (lastGraceful,
                    // lastExisting) is kept across retries.
                    self.mark_step(existing, options, &mut marking)
                        .map_err(StorageError::from)
                },
                None,
            )
            .await
            .map_err(|error| self.storage_error(error, Operation::Update, name))?;
        let Marking {
            pending_finalizers,
            last_graceful,
            last_existing,
            stop,
        } = marking;
        Ok(match outcome {
            UpdateOutcome::Written(out) if pending_finalizers || last_graceful > 0 => {
                Marked::Kept(out)
            }
            UpdateOutcome::Written(out) => Marked::DeleteNow {
                out: Some(out),
                last_existing,
                ignore_not_found: true,
            },
            UpdateOutcome::Stopped(()) => match stop {
                Some(MarkStop::AlreadyDeleting) => Marked::AlreadyDeleting,
                Some(MarkStop::DeleteNow) => Marked::DeleteNow {
                    out: None,
                    last_existing,
                    ignore_not_found: false,
                },
                None => {
                    return Err(ApiError::internal(
                        "the deletion marking stopped without a reason",
                    ));
                }
            },
            // mark_step never decides to delete; the storage delete follows the marking.
            UpdateOutcome::Deleted(_) => {
                return Err(ApiError::internal(
                    "the deletion marking deleted the object",
                ));
            }
        })
    }

    /// Deletes the object `name` as Kubernetes does: preconditions (409), graceful deletion,
    /// finalizers (the object stays with a deletionTimestamp until they are removed), the
    /// `orphan` / `foregroundDeletion` finalizers from `propagationPolicy`, dry run. Returns the
    /// object while it stays, a `Status` once it is gone.
    #[tracing::instrument(level = "debug", skip(self, options), fields(resource = %self.resource))]
    pub async fn delete(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteResult<K>, ApiError> {
        let key = self.key(namespace, name)?;
        let mut options = options.clone();
        let dry_run = is_dry_run(&options);
        let read = self
            .storage
            .get(&key, &GetOptions::default())
            .await
            .map_err(|e| self.storage_error(e, Operation::Delete, name))?
            .ok_or_else(|| ApiError::not_found(&self.resource, name))?;
        if let Some(pending) = self.strategy.spec_finalizers_pending(&read) {
            if let Some(result) = self
                .delete_in_two_phases(&key, name, &read, pending, &options)
                .await?
            {
                return Ok(result);
            }
        }
        let mut preconditions = Preconditions {
            uid: options.preconditions.as_ref().and_then(|p| p.uid.clone()),
            resource_version: options
                .preconditions
                .as_ref()
                .and_then(|p| p.resource_version.clone()),
        };
        let mut current = read.clone();
        let (graceful, pending) = self.before_delete(&mut current, &mut options)?;
        if pending {
            return Ok(DeleteResult {
                response: self.finalize_delete(current),
                deleted: false,
            });
        }
        self.add_delete_finalizers(&mut current);
        let pending_finalizers = current
            .meta()
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.is_empty());
        let (update_finalizers, _) = self.gc_finalizers(&current, &options);
        let mut ignore_not_found = false;
        let mut last_existing = None;
        if graceful || pending_finalizers || update_finalizers {
            match self
                .mark_for_deletion(&key, name, &options, &preconditions)
                .await?
            {
                Marked::Kept(object) => {
                    return Ok(DeleteResult {
                        response: DeleteResponse::Object(object),
                        deleted: false,
                    });
                }
                Marked::AlreadyDeleting => {
                    return Ok(DeleteResult {
                        response: self.finalize_delete(read),
                        deleted: false,
                    });
                }
                Marked::DeleteNow {
                    out,
                    last_existing: last,
                    ignore_not_found: ignore,
                } => {
                    ignore_not_found = ignore;
                    last_existing = last;
                    if let Some(out) = out {
                        if preconditions.resource_version.is_some() {
                            preconditions.resource_version = out.meta().resource_version.clone();
                        }
                        if dry_run {
                            return Ok(DeleteResult {
                                response: DeleteResponse::Object(out),
                                deleted: true,
                            });
                        }
                    }
                }
            }
        }
        let deleted = self
            .storage_for(dry_run)
            .delete(&key, Some(&preconditions), &|_| Ok(()), None)
            .await;
        match deleted {
            Ok(object) => Ok(DeleteResult {
                response: self.finalize_delete(object),
                deleted: true,
            }),
            Err(error) if error.is_not_found() && ignore_not_found && last_existing.is_some() => {
                let last = last_existing.unwrap_or_else(|| read.clone());
                Ok(DeleteResult {
                    response: self.finalize_delete(last),
                    deleted: true,
                })
            }
            Err(error) => Err(self.storage_error(error, Operation::Delete, name)),
        }
    }

    /// The delete of a kind with finalizers of its own ([`Strategy::spec_finalizers_pending`],
    /// `pending` for `read`; upstream's namespace `REST.Delete`): the options are validated and
    /// the preconditions checked against the object read, with upstream's messages. The first
    /// delete then marks the object (deletionTimestamp now, no grace period,
    /// [`Strategy::on_deletion_marked`], GC finalizers; the write is conditional on the uid) and
    /// later ones change nothing while `pending`; either way the object is answered and stays.
    /// `None`: the object is being deleted and nothing is pending, so the generic delete runs.
    ///
    /// [`Strategy::spec_finalizers_pending`]: super::Strategy::spec_finalizers_pending
    /// [`Strategy::on_deletion_marked`]: super::Strategy::on_deletion_marked
    async fn delete_in_two_phases(
        &self,
        key: &str,
        name: &str,
        read: &K,
        pending: bool,
        options: &DeleteOptions,
    ) -> Result<Option<DeleteResult<K>>, ApiError> {
        check_delete_options(options)?;
        let meta = read.meta();
        let uid = meta.uid.clone().unwrap_or_default();
        let wanted = options.preconditions.as_ref();
        if let Some(expected) = wanted.and_then(|p| p.uid.as_ref()) {
            if *expected != uid {
                return Err(ApiError::conflict(
                    &self.resource,
                    name,
                    format!(
                        "Precondition failed: UID in precondition: {expected}, UID in object meta: {uid}"
                    ),
                ));
            }
        }
        let resource_version = wanted.and_then(|p| p.resource_version.clone());
        if let Some(expected) = &resource_version {
            let actual = meta.resource_version.clone().unwrap_or_default();
            if *expected != actual {
                return Err(ApiError::conflict(
                    &self.resource,
                    name,
                    format!(
                        "Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        if meta.deletion_timestamp.is_some() {
            // Deleting already: wait for the kind's finalizers, then delete for real.
            return Ok(pending.then(|| DeleteResult {
                response: DeleteResponse::Object(read.clone()),
                deleted: false,
            }));
        }
        let preconditions = Preconditions {
            uid: Some(uid),
            resource_version,
        };
        let mark = |mut existing: K| -> Result<K, ApiError> {
            if existing.meta().deletion_timestamp.is_none() {
                existing.meta_mut().deletion_timestamp = Some(system::now());
            }
            self.strategy.on_deletion_marked(&mut existing);
            let (changed, finalizers) = self.gc_finalizers(&existing, options);
            if changed {
                existing.meta_mut().finalizers = (!finalizers.is_empty()).then_some(finalizers);
            }
            Ok(existing)
        };
        let outcome = self
            .storage_for(is_dry_run(options))
            .guaranteed_update_with(
                key,
                false,
                Some(&preconditions),
                &mut |existing, _| {
                    let ttl = self.strategy.ttl_seconds(&existing, 0, true);
                    let marked = mark(existing).map_err(StorageError::from)?;
                    Ok(UpdateDecision::Write(marked, (ttl > 0).then_some(ttl)))
                },
                None,
            )
            .await
            .map_err(|e| self.storage_error(e, Operation::Update, name))?;
        let marked = match outcome {
            UpdateOutcome::Written(object) | UpdateOutcome::Deleted(object) => object,
            UpdateOutcome::Stopped(()) => {
                return Err(ApiError::internal("marking for deletion stopped"));
            }
        };
        Ok(Some(DeleteResult {
            response: DeleteResponse::Object(marked),
            deleted: false,
        }))
    }

    /// Deletes every object `list_options` selects in `namespace`, one by one with
    /// `delete_options` (objects already gone are skipped), and returns the objects it deleted
    /// or marked, as listed. Not atomic. With a `limit` only that page is processed.
    #[tracing::instrument(level = "debug", skip(self, delete_options, list_options), fields(resource = %self.resource))]
    pub async fn delete_collection(
        &self,
        namespace: &str,
        delete_options: &DeleteOptions,
        list_options: &ListOptions,
    ) -> Result<ObjectList<K>, ApiError> {
        let mut list_options = list_options.clone();
        let single_page = list_options.predicate.limit.is_some_and(|l| l > 0);
        if !single_page {
            list_options.predicate.limit = Some(10_000);
        }
        let mut items = Vec::new();
        let mut resource_version = 0;
        loop {
            let page = self.list(namespace, &list_options).await?;
            for item in &page.items {
                let meta = item.meta();
                let item_namespace = meta.namespace.clone().unwrap_or_default();
                let item_name = meta.name.clone().unwrap_or_default();
                match self
                    .delete(&item_namespace, &item_name, delete_options)
                    .await
                {
                    Ok(_) => {}
                    Err(error) if error.code == 404 => {}
                    Err(error) => return Err(error),
                }
            }
            if resource_version == 0 {
                resource_version = page.resource_version;
            }
            items.extend(page.items);
            match page.continue_token {
                Some(token) if !single_page && !token.is_empty() => {
                    list_options.predicate.continue_token = Some(token);
                    list_options.resource_version = String::new();
                    list_options.resource_version_match = ResourceVersionMatch::Unset;
                }
                _ => break,
            }
        }
        Ok(ObjectList {
            items,
            resource_version,
            continue_token: None,
            remaining_item_count: None,
        })
    }
}
