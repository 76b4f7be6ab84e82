//! The generic registry [`Store<K>`]: the REST semantics of Kubernetes' generic registry Store
//! (upstream `staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go`) over
//! [`Storage<K>`], driven by a per-kind [`Strategy`].
//!
//! - [`validation`]: generic `ObjectMeta` validation and name rules.
//! - [`strategy`]: the [`Strategy`] trait, table columns and the status-subresource wrapper.
//! - [`patch_pipeline`]: PATCH through the Store ([`Store::patch`]): JSON, merge, strategic
//!   merge and server-side apply inside the update pipeline, and the one `managedFields`
//!   tracker of ordinary writes.
//! - [`view`]: the version a request is written in ([`VersionView`], [`SchemeView`]).
//!
//! The built-in kinds' strategies live in the `builtin-kinds` crate, the example group in
//! `example-widgets`.
//! - [`lifecycle`]: the namespace checks of namespaced creates and updates
//!   ([`Store::with_namespace_lifecycle`]).

// `ApiError` (a full `metav1.Status`) is the crate-wide API error; every fallible step returns it.

mod delete;
pub mod lifecycle;
pub mod patch_pipeline;
pub mod strategy;
pub mod system;
pub mod validation;
pub mod view;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

use apimachinery::object::Object;
use apimachinery::resource_version::parse_resource_version;
use apimachinery::selector::SelectionPredicate;
use apimachinery::status::{ApiError, FieldError, FieldErrorType, GroupResource, Operation};
use object_storage::StorageError;
use object_storage::{
    DryRun, FromStorageError, ObjectStorage, ObjectWatch, Shared, SharedWatch, Storage,
    UpdateDecision, UpdateOutcome, WatchCache, WatchCacheConfig,
};
use object_storage::{GetOptions, ListOptions, ObjectList, Preconditions};
use patch::PatchSchema;

pub use delete::{DeleteResponse, DeleteResult, check_delete_options};
pub use lifecycle::{NamespaceLifecycle, NamespacePhase};
pub use patch_pipeline::{PatchBody, PatchOptions};
pub use strategy::{GcPolicy, StatusStrategy, Strategy, TableColumn};
pub use view::{SchemeView, VersionView};

/// How many names a create with `generateName` tries before giving up (`RetryGenerateName`).
pub const GENERATE_NAME_ATTEMPTS: usize = 8;

/// Kubernetes' `OptimisticLockErrorMsg`.
pub const OPTIMISTIC_LOCK_ERROR: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// Admission-style validation run after the strategy: the new object, and the old one on
/// updates. An error fails the request as returned.
pub type AdmissionFn<K> = Arc<dyn Fn(&K, Option<&K>) -> Result<(), ApiError> + Send + Sync>;

/// Builds a name from a `generateName` prefix.
pub type NameGenerator = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Options of [`Store::create`].
// The derive asks `K: Clone`, which every stored kind (`Object`) is.
#[derive(Clone)]
pub struct CreateOptions<K> {
    /// Validate fully but persist nothing (`dryRun=All`).
    pub dry_run: bool,
    /// Admission validation of the prepared object.
    pub validation: Option<AdmissionFn<K>>,
    /// The field manager of the write: when set, `metadata.managedFields` records it as the
    /// owner of every field the object sets (operation `Update`), as a Kubernetes create with
    /// `fieldManager` does. Longer than 128 bytes or holding control characters: 422 Invalid
    /// on `CreateOptions`. `None` leaves managed fields as the object carries them.
    pub field_manager: Option<String>,
    /// The version the request is written in, which `managedFields` entries name; `None`:
    /// the stored type's own JSON.
    pub view: Option<Arc<dyn VersionView<K>>>,
}

impl<K> Default for CreateOptions<K> {
    fn default() -> Self {
        CreateOptions {
            dry_run: false,
            validation: None,
            field_manager: None,
            view: None,
        }
    }
}

/// Options of [`Store::update`] and [`Store::update_with`].
// The derive asks `K: Clone`, which every stored kind (`Object`) is.
#[derive(Clone)]
pub struct UpdateOptions<K> {
    /// Validate fully but persist nothing (`dryRun=All`).
    pub dry_run: bool,
    /// Create a missing object even if the strategy does not allow create-on-update (apply).
    pub force_allow_create: bool,
    /// Conditions on the stored object (uid, resourceVersion); failures are 409 Conflict.
    pub preconditions: Option<Preconditions>,
    /// Admission validation when the update creates the object.
    pub create_validation: Option<AdmissionFn<K>>,
    /// Admission validation of an update (new object, old object).
    pub update_validation: Option<AdmissionFn<K>>,
    /// The field manager of the write: when set, `metadata.managedFields` records the fields
    /// the update adds or changes as owned by this manager (operation `Update`), as
    /// [`update_managed_fields`](patch::update_managed_fields) does. Longer than 128 bytes
    /// or holding control characters: 422 Invalid on `UpdateOptions`. `None` leaves managed
    /// fields as the new object carries them.
    pub field_manager: Option<String>,
    /// The version the request is written in, which `managedFields` entries name; `None`:
    /// the stored type's own JSON.
    pub view: Option<Arc<dyn VersionView<K>>>,
}

impl<K> Default for UpdateOptions<K> {
    fn default() -> Self {
        UpdateOptions {
            dry_run: false,
            force_allow_create: false,
            preconditions: None,
            create_validation: None,
            update_validation: None,
            field_manager: None,
            view: None,
        }
    }
}

/// The result of an update: the object as stored and whether the update created it.
#[derive(Clone, Debug, PartialEq)]
pub struct Updated<K> {
    /// The object as stored (or as it would be, for a dry run).
    pub object: K,
    /// The update created the object (create-on-update); the API answers 201.
    pub created: bool,
}

/// The REST semantics of one resource over object storage ([`ObjectStorage`], by default a
/// [`Storage<K>`]).
pub struct Store<K: Object> {
    /// The storage the store was built over (with the kind's attributes), which layers such
    /// as the watch cache wrap.
    base: Storage<K>,
    storage: Arc<dyn ObjectStorage<K>>,
    /// `storage` for dry-run requests: checks everything, writes nothing.
    dry_run_storage: Arc<dyn ObjectStorage<K>>,
    resource: GroupResource,
    kind: String,
    strategy: Arc<dyn Strategy<K>>,
    status_strategy: Option<Arc<dyn Strategy<K>>>,
    subresource_strategies: Vec<(String, Arc<dyn Strategy<K>>)>,
    namespace_lifecycle: Option<Arc<dyn NamespaceLifecycle>>,
    key_root: String,
    enable_gc: bool,
    return_deleted_object: bool,
    name_generator: NameGenerator,
    patch_schema: Arc<dyn PatchSchema>,
    /// The stored type's own JSON: the version of requests that name none.
    stored_view: Arc<dyn VersionView<K>>,
}

impl<K: Object> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            base: self.base.clone(),
            storage: self.storage.clone(),
            dry_run_storage: self.dry_run_storage.clone(),
            resource: self.resource.clone(),
            kind: self.kind.clone(),
            strategy: self.strategy.clone(),
            status_strategy: self.status_strategy.clone(),
            subresource_strategies: self.subresource_strategies.clone(),
            namespace_lifecycle: self.namespace_lifecycle.clone(),
            key_root: self.key_root.clone(),
            enable_gc: self.enable_gc,
            return_deleted_object: self.return_deleted_object,
            name_generator: self.name_generator.clone(),
            patch_schema: self.patch_schema.clone(),
            stored_view: self.stored_view.clone(),
        }
    }
}

impl<K: Object> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource", &self.resource)
            .field("kind", &self.kind)
            .field("key_root", &self.key_root)
            .finish()
    }
}

/// What every attempt of one update request shares.
struct UpdateRequest<'a, K> {
    strategy: &'a dyn Strategy<K>,
    subresource: &'a str,
    namespace: &'a str,
    name: &'a str,
    allow_create: bool,
    /// The namespace of the write is terminating: an update that would create is refused.
    namespace_terminating: bool,
    options: &'a UpdateOptions<K>,
}

impl<K: Object> Store<K> {
    /// A store for `resource` (plural resource and group) of kind `kind` (as named in 422
    /// messages), keeping objects under `/<resource>` in `storage` (whose path prefix, by default
    /// `/registry`, goes in front). Field and label selectors see what the strategy exposes.
    /// Garbage-collection finalizers are on; deletes return a `Status`.
    pub fn new(
        storage: Storage<K>,
        resource: GroupResource,
        kind: impl Into<String>,
        strategy: Arc<dyn Strategy<K>>,
    ) -> Self {
        let attrs = strategy.clone();
        let storage =
            storage
                .with_resource(resource.clone())
                .with_attrs(Arc::new(move |object: &K| {
                    (
                        attrs.selectable_labels(object),
                        attrs.selectable_fields(object),
                    )
                }));
        let key_root = format!("/{}", resource.resource);
        let kind = kind.into();
        let patch_schema: Arc<dyn PatchSchema> = match patch::builtin_schema(&resource.group, &kind)
        {
            Some(schema) => Arc::new(*schema),
            None => Arc::new(patch::CUSTOM_RESOURCE),
        };
        let base = storage.clone();
        let storage: Arc<dyn ObjectStorage<K>> = Arc::new(storage);
        let stored_view = view::StoredView::of(storage.new_object(), &kind);
        Store {
            base,
            dry_run_storage: Arc::new(DryRun::new(storage.clone())),
            storage,
            resource,
            kind,
            strategy,
            status_strategy: None,
            subresource_strategies: Vec::new(),
            namespace_lifecycle: None,
            key_root,
            enable_gc: true,
            return_deleted_object: false,
            name_generator: Arc::new(system::generate_name),
            patch_schema,
            stored_view: Arc::new(stored_view),
        }
    }

    /// This store with another patch schema: how lists merge in strategic merge patches and
    /// server-side apply, and whether strategic merge patches are accepted. By default the
    /// schema of a built-in kind ([`builtin_schema`](patch::builtin_schema)) by group
    /// and kind, else [`CUSTOM_RESOURCE`](patch::CUSTOM_RESOURCE) (no strategic merge).
    pub fn with_patch_schema(mut self, schema: Arc<dyn PatchSchema>) -> Self {
        self.patch_schema = schema;
        self
    }

    /// The patch schema of the kind.
    pub fn patch_schema(&self) -> &Arc<dyn PatchSchema> {
        &self.patch_schema
    }

    /// This store with a `status` subresource written through `strategy`.
    pub fn with_status_strategy(mut self, strategy: Arc<dyn Strategy<K>>) -> Self {
        self.status_strategy = Some(strategy);
        self
    }

    /// This store with another update-only subresource (such as `namespaces/finalize`) written
    /// through `strategy` by [`Store::update`] and [`Store::update_with`]. `status` is
    /// [`Store::with_status_strategy`]'s; registering a name again replaces its strategy.
    pub fn with_subresource_strategy(
        mut self,
        subresource: &str,
        strategy: Arc<dyn Strategy<K>>,
    ) -> Self {
        self.subresource_strategies
            .retain(|(name, _)| name != subresource);
        self.subresource_strategies
            .push((subresource.to_owned(), strategy));
        self
    }

    /// This store checking the namespace of every namespaced create and update with
    /// `lifecycle` (upstream's `NamespaceLifecycle` admission; see [`lifecycle`]). Without it
    /// writes go to any namespace. Cluster-scoped stores never check.
    pub fn with_namespace_lifecycle(mut self, lifecycle: Arc<dyn NamespaceLifecycle>) -> Self {
        self.namespace_lifecycle = Some(lifecycle);
        self
    }

    /// This store with another key root (default `/<resource>`), relative to the storage prefix.
    pub fn with_key_root(mut self, root: &str) -> Self {
        self.key_root = format!("/{}", root.trim_matches('/'));
        self
    }

    /// Whether deletes maintain the `orphan` / `foregroundDeletion` finalizers.
    pub fn with_garbage_collection(mut self, enabled: bool) -> Self {
        self.enable_gc = enabled;
        self
    }

    /// Whether a completed delete returns the deleted object instead of a `Status`.
    pub fn with_return_deleted_object(mut self, enabled: bool) -> Self {
        self.return_deleted_object = enabled;
        self
    }

    /// This store with another `generateName` generator (tests force conflicts with it).
    pub fn with_name_generator(mut self, generator: NameGenerator) -> Self {
        self.name_generator = generator;
        self
    }

    /// This store with a [`WatchCache`] in front of its storage: watches and most reads are
    /// served from memory, fed by one backend watch of the store's key root. Call it last (after
    /// [`Store::with_key_root`]), on a Tokio runtime, which the cache's task runs on.
    ///
    /// # Errors
    ///
    /// Outside a Tokio runtime ([`StorageError::Internal`]).
    pub fn with_watch_cache(mut self, config: WatchCacheConfig) -> Result<Self, StorageError> {
        let cache = WatchCache::new(self.base.clone(), &self.key_root, config)?;
        self.storage = Arc::new(cache);
        self.dry_run_storage = Arc::new(DryRun::new(self.storage.clone()));
        Ok(self)
    }

    /// The object storage underneath.
    pub fn storage(&self) -> &Arc<dyn ObjectStorage<K>> {
        &self.storage
    }

    /// The object storage a request uses: writes nothing for a dry run.
    fn storage_for(&self, dry_run: bool) -> &dyn ObjectStorage<K> {
        if dry_run {
            self.dry_run_storage.as_ref()
        } else {
            self.storage.as_ref()
        }
    }

    /// The resource served.
    pub fn resource(&self) -> &GroupResource {
        &self.resource
    }

    /// The kind served (as named in 422 messages).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The main strategy.
    pub fn strategy(&self) -> &Arc<dyn Strategy<K>> {
        &self.strategy
    }

    /// Whether objects live in namespaces.
    pub fn namespace_scoped(&self) -> bool {
        self.strategy.namespace_scoped()
    }

    /// Whether a `status` subresource is served.
    pub fn has_status(&self) -> bool {
        self.status_strategy.is_some()
    }

    /// Whether `subresource` can be written: `status` with a status strategy, or one added
    /// with [`Store::with_subresource_strategy`].
    pub fn has_subresource(&self, subresource: &str) -> bool {
        self.subresource_strategy(subresource).is_some()
    }

    /// The strategy writes to `subresource` go through: `status`'s or one registered with
    /// [`Store::with_subresource_strategy`].
    fn subresource_strategy(&self, subresource: &str) -> Option<Arc<dyn Strategy<K>>> {
        if subresource == "status" {
            return self.status_strategy.clone();
        }
        self.subresource_strategies
            .iter()
            .find(|(name, _)| name == subresource)
            .map(|(_, strategy)| strategy.clone())
    }

    /// Where the namespace of a write into `namespace` stands; `None` when nothing is checked
    /// (no [`NamespaceLifecycle`], a cluster-scoped kind, or no namespace, which the key
    /// rejects later). A missing namespace is 404.
    async fn admit_namespace(&self, namespace: &str) -> Result<Option<NamespacePhase>, ApiError> {
        let Some(lifecycle) = &self.namespace_lifecycle else {
            return Ok(None);
        };
        if !self.namespace_scoped() || namespace.is_empty() {
            return Ok(None);
        }
        match lifecycle.phase(namespace).await? {
            NamespacePhase::Missing => Err(lifecycle::namespace_not_found(namespace)),
            phase => Ok(Some(phase)),
        }
    }

    /// The key root of a list or watch in `namespace` (`""`: all namespaces).
    pub fn key_root_for(&self, namespace: &str) -> String {
        if self.namespace_scoped() && !namespace.is_empty() {
            format!("{}/{namespace}", self.key_root)
        } else {
            self.key_root.clone()
        }
    }

    /// The key of one object: `/<resource>/<namespace>/<name>` or `/<resource>/<name>`. A
    /// namespaced kind needs a namespace (400 "Namespace parameter required."); the name must be
    /// present and a valid path segment (400).
    pub fn key(&self, namespace: &str, name: &str) -> Result<String, ApiError> {
        if self.namespace_scoped() && namespace.is_empty() {
            return Err(ApiError::bad_request("Namespace parameter required."));
        }
        if name.is_empty() {
            return Err(ApiError::bad_request("Name parameter required."));
        }
        let problems = validation::path_segment_name(name, false);
        if !problems.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Name parameter invalid: {name:?}: {}",
                problems.join(";")
            )));
        }
        Ok(if self.namespace_scoped() {
            format!("{}/{namespace}/{name}", self.key_root)
        } else {
            format!("{}/{name}", self.key_root)
        })
    }

    fn invalid(&self, name: &str, errors: &[FieldError]) -> ApiError {
        ApiError::invalid(&self.kind, &self.resource.group, name, errors)
    }

    fn storage_error(&self, error: StorageError, operation: Operation, name: &str) -> ApiError {
        ApiError::from_storage(error, operation, &self.resource, name)
    }

    /// Reads one object; `resource_version` is a not-older-than bound (`""` for the latest).
    #[tracing::instrument(level = "debug", skip(self), fields(resource = %self.resource))]
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
        resource_version: &str,
    ) -> Result<K, ApiError> {
        let key = self.key(namespace, name)?;
        let options = GetOptions {
            ignore_not_found: false,
            resource_version: resource_version.to_owned(),
        };
        match self.storage.get(&key, &options).await {
            Ok(Some(object)) => Ok(object),
            Ok(None) => Err(ApiError::not_found(&self.resource, name)),
            Err(error) => Err(self.storage_error(error, Operation::Get, name)),
        }
    }

    /// `options` with its field selector checked and converted by the strategy
    /// ([`Strategy::convert_field_label`]); an unsupported field is a 400 BadRequest.
    fn with_converted_fields(&self, options: &ListOptions) -> Result<ListOptions, ApiError> {
        let mut options = options.clone();
        if !options.predicate.field.is_empty() {
            options.predicate.field = options
                .predicate
                .field
                .transform(|label, value| self.strategy.convert_field_label(label, value))
                .map_err(|error| ApiError::bad_request(error.message()))?;
        }
        Ok(options)
    }

    /// Where a list or watch reads: a single key when the field selector pins `metadata.name`
    /// (non-recursive), else the key root of the namespace (from the request, or pinned by a
    /// `metadata.namespace` field selector).
    fn list_target(&self, namespace: &str, predicate: &SelectionPredicate) -> (String, bool) {
        let mut namespace = namespace.to_owned();
        if self.namespace_scoped() && namespace.is_empty() {
            if let Some(pinned) = predicate.matches_single_namespace() {
                if validation::name_is_dns_label(pinned, false).is_empty() {
                    namespace = pinned.to_owned();
                }
            }
        }
        if let Some(name) = predicate.matches_single() {
            if let Ok(key) = self.key(&namespace, name) {
                return (key, false);
            }
        }
        (self.key_root_for(&namespace), true)
    }

    /// Lists objects in `namespace` (`""`: all namespaces, or cluster scope) with the
    /// selectors, limit, continue token and resourceVersion rules of `options` (its
    /// `recursive` flag is decided here).
    #[tracing::instrument(level = "debug", skip(self, options), fields(resource = %self.resource))]
    pub async fn list(
        &self,
        namespace: &str,
        options: &ListOptions,
    ) -> Result<ObjectList<K>, ApiError> {
        let list = self.list_shared(namespace, options).await?;
        Ok(list.map(Shared::into_owned))
    }

    /// Watches objects in `namespace`, narrowed like [`Store::list`]; events pass through.
    #[tracing::instrument(level = "debug", skip(self, options), fields(resource = %self.resource))]
    pub async fn watch(
        &self,
        namespace: &str,
        options: &ListOptions,
    ) -> Result<ObjectWatch<K>, ApiError> {
        let events = self.watch_shared(namespace, options).await?;
        Ok(Box::pin(futures::StreamExt::map(events, |event| {
            event.map(Shared::into_owned)
        })))
    }

    /// [`Store::list`] with [`Shared`] objects, whose encodings are made once (and, from a watch
    /// cache, shared with every other reader).
    #[tracing::instrument(level = "debug", skip(self, options), fields(resource = %self.resource))]
    pub async fn list_shared(
        &self,
        namespace: &str,
        options: &ListOptions,
    ) -> Result<ObjectList<Shared<K>>, ApiError> {
        let mut options = self.with_converted_fields(options)?;
        let (key, recursive) = self.list_target(namespace, &options.predicate);
        options.recursive = recursive;
        self.storage
            .get_list_shared(&key, &options)
            .await
            .map_err(|error| self.storage_error(error, Operation::List, ""))
    }

    /// [`Store::watch`] with [`Shared`] objects: a server encodes each event once for all
    /// the watchers that share it.
    #[tracing::instrument(level = "debug", skip(self, options), fields(resource = %self.resource))]
    pub async fn watch_shared(
        &self,
        namespace: &str,
        options: &ListOptions,
    ) -> Result<SharedWatch<K>, ApiError> {
        let mut options = self.with_converted_fields(options)?;
        let (key, recursive) = self.list_target(namespace, &options.predicate);
        options.recursive = recursive;
        self.storage
            .watch_shared(&key, &options)
            .await
            .map_err(|error| self.storage_error(error, Operation::Watch, ""))
    }

    /// `EnsureObjectNamespaceMatchesRequestNamespace` for this kind's scope.
    fn reconcile_namespace(&self, request: &str, object: &mut K) -> Result<(), ApiError> {
        let expected = if self.namespace_scoped() { request } else { "" };
        let actual = object.meta().namespace.clone().unwrap_or_default();
        if actual == expected {
            return Ok(());
        }
        if actual.is_empty() || expected.is_empty() {
            object.meta_mut().namespace = (!expected.is_empty()).then(|| expected.to_owned());
            return Ok(());
        }
        Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ))
    }

    /// `FillObjectMetaSystemFields` plus name generation.
    fn fill_system_fields(&self, object: &mut K) {
        let meta = object.meta_mut();
        meta.creation_timestamp = Some(system::now());
        meta.uid = Some(system::new_uid());
        meta.self_link = None;
        let generate = meta.generate_name.clone().unwrap_or_default();
        if meta.name.as_deref().unwrap_or_default().is_empty() && !generate.is_empty() {
            meta.name = Some((self.name_generator)(&generate));
        }
    }

    /// `rest.BeforeCreate`: namespace, strategy preparation and validation, generic metadata
    /// validation, canonicalisation.
    fn before_create(
        &self,
        strategy: &dyn Strategy<K>,
        namespace: &str,
        object: &mut K,
    ) -> Result<(), ApiError> {
        self.reconcile_namespace(namespace, object)?;
        {
            let meta = object.meta_mut();
            meta.deletion_timestamp = None;
            meta.deletion_grace_period_seconds = None;
            meta.generation = strategy.tracks_generation().then_some(1);
        }
        strategy.prepare_for_create(object);
        let name = object.meta().name.clone().unwrap_or_default();
        let errors = dedup(strategy.validate(object));
        if !errors.is_empty() {
            return Err(self.invalid(&name, &errors));
        }
        let errors = validation::validate_object_meta(
            object.meta(),
            strategy.namespace_scoped(),
            validation::path_segment_name,
        );
        if !errors.is_empty() {
            return Err(self.invalid(&name, &errors));
        }
        system::omit_empty_meta(object.meta_mut());
        strategy.canonicalize(object);
        Ok(())
    }

    /// `rest.BeforeUpdate`: namespace, generation and system fields carried over, strategy
    /// preparation, generic and kind validation, canonicalisation.
    fn before_update(
        &self,
        strategy: &dyn Strategy<K>,
        namespace: &str,
        object: &mut K,
        old: &K,
    ) -> Result<(), ApiError> {
        self.reconcile_namespace(namespace, object)?;
        let old_meta = old.meta();
        object.meta_mut().generation = old_meta.generation;
        strategy.prepare_for_update(object, old);
        if strategy.tracks_generation() && strategy::spec_changed(object, old) {
            object.meta_mut().generation = Some(old_meta.generation.unwrap_or(0) + 1);
        }
        {
            let meta = object.meta_mut();
            if meta.uid.as_deref().unwrap_or_default().is_empty() {
                meta.uid = old_meta.uid.clone();
            }
            if old_meta.creation_timestamp.is_some() {
                meta.creation_timestamp = old_meta.creation_timestamp.clone();
            }
            if old_meta.deletion_timestamp.is_some() {
                meta.deletion_timestamp = old_meta.deletion_timestamp.clone();
            }
            if old_meta.deletion_grace_period_seconds.is_some()
                && meta.deletion_grace_period_seconds.is_none()
            {
                meta.deletion_grace_period_seconds = old_meta.deletion_grace_period_seconds;
            }
        }
        let mut errors = validation::validate_object_meta(
            object.meta(),
            strategy.namespace_scoped(),
            validation::path_segment_name,
        );
        errors.extend(validation::validate_object_meta_update(
            object.meta(),
            old_meta,
        ));
        errors.extend(strategy.validate_update(object, old));
        let errors = dedup(errors);
        if !errors.is_empty() {
            let name = object.meta().name.clone().unwrap_or_default();
            return Err(self.invalid(&name, &errors));
        }
        system::omit_empty_meta(object.meta_mut());
        strategy.canonicalize(object);
        Ok(())
    }

    fn already_exists(&self, name: &str, generated: bool, existing: Option<&K>) -> ApiError {
        let mut error = ApiError::already_exists(&self.resource, name);
        if generated {
            error.message = format!(
                "{} {name:?} already exists, the server was not able to generate a unique name for the object",
                self.resource
            );
            if let Some(details) = &mut error.details {
                details.retry_after_seconds = Some(1);
            }
        }
        if existing.is_some_and(|o| o.meta().deletion_timestamp.is_some()) {
            error.message = format!("object is being deleted: {}", error.message);
        }
        error
    }

    /// Creates `object` in `namespace` (`""` for cluster-scoped kinds): system metadata (uid,
    /// creationTimestamp, generation, a name from `generateName`), strategy preparation and
    /// validation (422), admission, then the write (409 AlreadyExists, also in its
    /// "object is being deleted" and generated-name variants). A `generateName` create retries
    /// on name conflicts up to [`GENERATE_NAME_ATTEMPTS`] times. With
    /// [`CreateOptions::field_manager`], `metadata.managedFields` records the write.
    #[tracing::instrument(level = "debug", skip(self, object, options), fields(resource = %self.resource))]
    pub async fn create(
        &self,
        namespace: &str,
        object: K,
        options: &CreateOptions<K>,
    ) -> Result<K, ApiError> {
        let object = match &options.field_manager {
            Some(manager) => {
                patch_pipeline::check_field_manager("CreateOptions", manager)?;
                let view = self.view_or_stored(options.view.as_ref());
                self.track_update(None, object, manager, "", view.as_ref())?
            }
            None => object,
        };
        let meta = object.meta();
        let generated = meta.name.as_deref().unwrap_or_default().is_empty()
            && !meta.generate_name.as_deref().unwrap_or_default().is_empty();
        if self.admit_namespace(namespace).await? == Some(NamespacePhase::Terminating) {
            // Admission runs before names are generated: it names the prefix.
            let name = [&meta.name, &meta.generate_name]
                .into_iter()
                .flatten()
                .find(|n| !n.is_empty())
                .map_or("Unknown", String::as_str);
            return Err(lifecycle::namespace_terminating(
                &self.resource,
                name,
                namespace,
            ));
        }
        if !generated {
            return self.create_once(namespace, object, options, false).await;
        }
        let mut last = None;
        for attempt in 0..GENERATE_NAME_ATTEMPTS {
            match self
                .create_once(namespace, object.clone(), options, true)
                .await
            {
                Err(error) if error.reason == "AlreadyExists" => {
                    tracing::debug!(attempt, "generated name conflicted; retrying");
                    last = Some(error);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| ApiError::internal("no name generation attempt was made")))
    }

    async fn create_once(
        &self,
        namespace: &str,
        mut object: K,
        options: &CreateOptions<K>,
        generated: bool,
    ) -> Result<K, ApiError> {
        self.fill_system_fields(&mut object);
        self.before_create(self.strategy.as_ref(), namespace, &mut object)?;
        if let Some(admit) = &options.validation {
            admit(&object, None)?;
        }
        let name = object.meta().name.clone().unwrap_or_default();
        let key = self.key(namespace, &name)?;
        let ttl = self.strategy.ttl_seconds(&object, 0, false);
        let storage = self.storage_for(options.dry_run);
        match storage.create(&key, &object, ttl).await {
            Ok(created) => Ok(created),
            Err(error) if error.is_exist() => {
                let probe = GetOptions {
                    ignore_not_found: true,
                    resource_version: String::new(),
                };
                let existing = self.storage.get(&key, &probe).await.ok().flatten();
                Err(self.already_exists(&name, generated, existing.as_ref()))
            }
            Err(error) => Err(self.storage_error(error, Operation::Create, &name)),
        }
    }

    /// Replaces the object `name` with `object` (PUT), or writes its `subresource` (`status`,
    /// or one registered with [`Store::with_subresource_strategy`] such as
    /// `namespaces/finalize`) through that subresource's strategy; `""` is the object itself.
    /// The body's name must equal `name` (400) and a non-empty `metadata.uid` becomes a
    /// precondition (409 on mismatch). A subresource the kind lacks is 405; subresources
    /// never create. See [`Store::update_with`] for the rest.
    #[tracing::instrument(level = "debug", skip(self, object, options), fields(resource = %self.resource))]
    pub async fn update(
        &self,
        namespace: &str,
        name: &str,
        subresource: &str,
        object: K,
        options: &UpdateOptions<K>,
    ) -> Result<Updated<K>, ApiError> {
        self.write_strategy(subresource)?;
        let body_name = object.meta().name.clone().unwrap_or_default();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut options = options.clone();
        if let Some(uid) = object.meta().uid.clone().filter(|u| !u.is_empty()) {
            options
                .preconditions
                .get_or_insert_with(Preconditions::default)
                .uid = Some(uid);
        }
        self.update_with(
            namespace,
            name,
            subresource,
            |_| Ok(object.clone()),
            &options,
        )
        .await
    }

    /// The update pipeline for read-modify-write callers (controllers, custom verbs): `update`
    /// gets the stored object (`None` when it does not exist and creation is allowed) and
    /// returns the desired object; the result goes through the resourceVersion rules,
    /// strategy preparation, validation (422), admission, `ShouldDeleteDuringUpdate`, no-op
    /// detection and `managedFields` tracking, inside the storage's compare-and-swap loop,
    /// which calls `update` again on conflicts. `subresource` as in [`Store::update`]: a
    /// custom subresource's strategy prepares the desired object before ownership is
    /// tracked, so its manager owns only what the subresource writes.
    pub async fn update_with<F>(
        &self,
        namespace: &str,
        name: &str,
        subresource: &str,
        mut update: F,
        options: &UpdateOptions<K>,
    ) -> Result<Updated<K>, ApiError>
    where
        F: FnMut(Option<&K>) -> Result<K, ApiError> + Send,
    {
        let strategy = self.write_strategy(subresource)?;
        if subresource.is_empty() || subresource == "status" {
            return self
                .update_pipeline(strategy, subresource, namespace, name, update, options)
                .await;
        }
        let mut options = options.clone();
        options.force_allow_create = false;
        let prepare = strategy.clone();
        let prepared = move |existing: Option<&K>| {
            let mut object = update(existing)?;
            if let Some(old) = existing {
                prepare.prepare_for_update(&mut object, old);
            }
            Ok(object)
        };
        self.update_pipeline(strategy, subresource, namespace, name, prepared, &options)
            .await
    }

    /// The strategy writes to `subresource` go through (`""`: the kind's own); 405 for a
    /// subresource the kind lacks.
    fn write_strategy(&self, subresource: &str) -> Result<Arc<dyn Strategy<K>>, ApiError> {
        if subresource.is_empty() {
            return Ok(self.strategy.clone());
        }
        self.subresource_strategy(subresource).ok_or_else(|| {
            ApiError::method_not_supported(&self.resource, &format!("update {subresource}"))
        })
    }

    /// `view`, or the stored type's own JSON.
    pub(crate) fn view_or_stored(
        &self,
        view: Option<&Arc<dyn VersionView<K>>>,
    ) -> Arc<dyn VersionView<K>> {
        view.unwrap_or(&self.stored_view).clone()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(resource = %self.resource, namespace, name))]
    pub(crate) async fn update_pipeline<F>(
        &self,
        strategy: Arc<dyn Strategy<K>>,
        subresource: &str,
        namespace: &str,
        name: &str,
        mut update: F,
        options: &UpdateOptions<K>,
    ) -> Result<Updated<K>, ApiError>
    where
        F: FnMut(Option<&K>) -> Result<K, ApiError> + Send,
    {
        let key = self.key(namespace, name)?;
        if let Some(manager) = &options.field_manager {
            patch_pipeline::check_field_manager("UpdateOptions", manager)?;
        }
        let allow_create = strategy.allow_create_on_update() || options.force_allow_create;
        let namespace_terminating =
            self.admit_namespace(namespace).await? == Some(NamespacePhase::Terminating);
        let request = UpdateRequest {
            strategy: strategy.as_ref(),
            subresource,
            namespace,
            name,
            allow_create,
            namespace_terminating,
            options,
        };
        // Whether the last attempt created the object (it found none).
        let mut created = false;
        let result = self
            .storage_for(options.dry_run)
            // Always from the empty object when nothing is stored, as upstream's Update: the
            // preconditions are checked first (a uid names an object that is gone: 409), then
            // update_step answers 404 unless the update may create.
            .guaranteed_update_with(
                &key,
                true,
                options.preconditions.as_ref(),
                &mut |existing, meta| {
                    self.update_step(
                        &request,
                        &mut update,
                        existing,
                        meta.resource_version,
                        &mut created,
                    )
                    .map_err(StorageError::from)
                },
                None,
            )
            .await;
        match result {
            Ok(UpdateOutcome::Written(object)) => Ok(Updated { object, created }),
            // The update removed the last finalizer of an object being deleted.
            Ok(UpdateOutcome::Deleted(object)) => Ok(Updated {
                object,
                created: false,
            }),
            // update_step never stops.
            Ok(UpdateOutcome::Stopped(())) => Err(ApiError::internal(
                "the update callback stopped without a decision",
            )),
            Err(error) => {
                let operation = if created {
                    Operation::Create
                } else {
                    Operation::Update
                };
                Err(self.storage_error(error, operation, name))
            }
        }
    }

    /// One attempt of the update callback inside `GuaranteedUpdate`: the object to write, or
    /// the object to delete when the update removed the last finalizer of an object being
    /// deleted (upstream's `ShouldDeleteDuringUpdate`).
    fn update_step<F>(
        &self,
        request: &UpdateRequest<'_, K>,
        update: &mut F,
        existing: K,
        revision: u64,
        created: &mut bool,
    ) -> Result<UpdateDecision<K, ()>, ApiError>
    where
        F: FnMut(Option<&K>) -> Result<K, ApiError> + Send,
    {
        let UpdateRequest {
            strategy,
            subresource,
            namespace,
            name,
            allow_create,
            namespace_terminating,
            options,
        } = *request;
        *created = false;
        if revision == 0 {
            if !allow_create {
                return Err(ApiError::not_found(&self.resource, name));
            }
            if namespace_terminating {
                // An update that creates is admitted as a create.
                return Err(lifecycle::namespace_terminating(
                    &self.resource,
                    name,
                    namespace,
                ));
            }
            let mut object = update(None)?;
            if let Some(manager) = &options.field_manager {
                let view = self.view_or_stored(options.view.as_ref());
                object = self.track_update(None, object, manager, subresource, view.as_ref())?;
            }
            *created = true;
            object.meta_mut().resource_version = None;
            if object.meta().name.as_deref().unwrap_or_default().is_empty() {
                object.meta_mut().name = Some(name.to_owned());
            }
            self.fill_system_fields(&mut object);
            self.before_create(strategy, namespace, &mut object)?;
            if let Some(admit) = &options.create_validation {
                admit(&object, None)?;
            }
            let ttl = strategy.ttl_seconds(&object, 0, false);
            return Ok(UpdateDecision::Write(object, (ttl > 0).then_some(ttl)));
        }
        let mut object = update(Some(&existing))?;
        if let Some(manager) = &options.field_manager {
            let view = self.view_or_stored(options.view.as_ref());
            let old = view.encode(&existing)?;
            object = self.track_update(Some(&old), object, manager, subresource, view.as_ref())?;
        }
        let requested = object.meta().resource_version.clone().unwrap_or_default();
        let requested =
            parse_resource_version(&requested).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if requested == 0 {
            if !strategy.allow_unconditional_update() {
                // Kubernetes names the resource where the kind goes, and prints the uint64 0
                // with `%#v`.
                return Err(ApiError::invalid(
                    &self.resource.resource,
                    &self.resource.group,
                    name,
                    &[FieldError {
                        kind: FieldErrorType::Invalid,
                        field: "metadata.resourceVersion".to_owned(),
                        value: None,
                        detail: "0x0: must be specified for an update".to_owned(),
                    }],
                ));
            }
            object.meta_mut().resource_version = Some(revision.to_string());
        } else if requested != revision {
            return Err(ApiError::conflict(
                &self.resource,
                name,
                OPTIMISTIC_LOCK_ERROR,
            ));
        }
        self.before_update(strategy, namespace, &mut object, &existing)?;
        if should_delete_during_update(&object, &existing)
            && strategy.should_delete_during_update(&object, &existing)
        {
            return Ok(UpdateDecision::Delete(object));
        }
        if let Some(admit) = &options.update_validation {
            admit(&object, Some(&existing))?;
        }
        let ttl = strategy.ttl_seconds(&object, 0, true);
        Ok(UpdateDecision::Write(object, (ttl > 0).then_some(ttl)))
    }

    /// The column definitions of `as=Table`.
    pub fn table_columns(&self) -> Vec<TableColumn> {
        self.strategy.table_columns()
    }

    /// A `Status` of a completed delete, or the object when the store returns deleted objects.
    fn finalize_delete(&self, object: K) -> DeleteResponse<K> {
        if self.return_deleted_object {
            return DeleteResponse::Object(object);
        }
        let meta = object.meta();
        DeleteResponse::Status(Box::new(Status {
            status: Some("Success".to_owned()),
            details: Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                    name: meta.name.clone(),
                    group: Some(self.resource.group.clone()),
                    kind: Some(self.resource.resource.clone()),
                    uid: meta.uid.clone(),
                    ..Default::default()
                },
            ),
            ..Status::default()
        }))
    }
}

/// `ShouldDeleteDuringUpdate`: the update leaves no finalizers on an object being deleted
/// without a pending grace period.
fn should_delete_during_update<K: Object>(new: &K, old: &K) -> bool {
    let old_meta = old.meta();
    new.meta().finalizers.as_ref().is_none_or(Vec::is_empty)
        && old_meta.deletion_timestamp.is_some()
        && old_meta.deletion_grace_period_seconds.unwrap_or(0) == 0
}

fn dedup(errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut unique: Vec<FieldError> = Vec::with_capacity(errors.len());
    for error in errors {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    unique
}
