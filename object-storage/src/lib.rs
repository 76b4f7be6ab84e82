//! Kubernetes object-level storage semantics, written once over any [`storage_api::Interface`].
//!
//! [`Storage<K>`] gives objects of one type the behaviour of Kubernetes' `storage.Interface`:
//! resourceVersion rules for get, list and watch; continue tokens byte-compatible with
//! Kubernetes; label and field selectors; `GuaranteedUpdate` with preconditions, suggestions
//! and no-op detection; filtered watches with initial events and bookmarks; value transformers
//! for encryption at rest ([`transformer`]). `K` is any [`Object`]: a typed `k8s_openapi`
//! struct or a [`DynamicObject`](apimachinery::object::DynamicObject). [`FromStorageError`]
//! turns a [`StorageError`] into the `metav1.Status` the API answers for it.
//!
//! [`ObjectStorage`] is that contract as a trait: [`Storage<K>`] implements it over bytes,
//! [`WatchCache<K>`] stands in front of a `Storage<K>` and serves watches and most reads from
//! memory ([`cache`]), and [`DryRun`] wraps any of them.

mod api_error;
pub mod cache;
mod codec;
mod codec_helpers;
mod dry_run;
mod error;
mod interface;
mod list;
mod options;
pub mod transformer;
mod watch;

pub use api_error::FromStorageError;
pub use cache::{Shared, WatchCache, WatchCacheConfig};
pub use dry_run::DryRun;
pub use error::{Result, StorageError};
pub use interface::{ObjectStorage, SharedWatch, UpdateFn, ValidateFn};
pub use options::{
    GetOptions, INITIAL_EVENTS_END_ANNOTATION, ListOptions, ObjectList, Preconditions,
    ResourceVersionMatch, ResponseMeta, Stats, WatchEvent,
};

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::status::GroupResource;
use bytes::Bytes;
use storage_api::{Interface, KeyValue, Precondition, RangeRequest, Revision};

use crate::transformer::{IdentityTransformer, ValueTransformer};
use apimachinery::object::{NewFunc, Object};
use apimachinery::resource_version::parse_resource_version;
use apimachinery::selector::Fields;

pub use codec::{Codec, ReadDefaults};
pub use watch::ObjectWatch;

/// A create must not carry a resourceVersion (Kubernetes' `ResourceVersionSetOnCreate`);
/// shared by [`Storage::create`] and [`DryRun`]'s create.
pub(crate) fn check_create_has_no_resource_version<K: Object>(object: &K) -> Result<()> {
    let revision = object
        .meta()
        .resource_version
        .as_deref()
        .unwrap_or_default();
    if parse_resource_version(revision).is_ok_and(|rv| rv != 0) {
        return Err(StorageError::ResourceVersionSetOnCreate);
    }
    Ok(())
}

/// What a [`Storage::guaranteed_update_with`] callback decides for the object it is given.
#[derive(Debug)]
pub enum UpdateDecision<K, S> {
    /// Write this object, with a TTL in seconds (`None`: none). An object that encodes to the
    /// stored bytes is not written.
    Write(K, Option<u64>),
    /// Delete the object now, on condition that it is still at the revision the callback saw;
    /// the given object is reported as its last state (for example with its last finalizer
    /// removed).
    Delete(K),
    /// Write nothing and end, handing this value to the caller.
    Stop(S),
}

/// How a [`Storage::guaranteed_update_with`] ended.
#[derive(Debug)]
pub enum UpdateOutcome<K, S> {
    /// The object as stored: written, or unchanged because nothing changed.
    Written(K),
    /// The object was deleted (or was already gone); the callback's last state of it.
    Deleted(K),
    /// The callback stopped with this value.
    Stopped(S),
}

/// Labels and fields of an object, as selectors see them.
pub type AttrFunc<K> = Arc<dyn Fn(&K) -> (BTreeMap<String, String>, Fields) + Send + Sync>;

/// The attributes Kubernetes uses by default: the object's labels, and the fields
/// `metadata.name` and (for namespaced kinds) `metadata.namespace`.
pub fn default_attrs<K: Object>(namespaced: bool) -> AttrFunc<K> {
    Arc::new(move |object: &K| {
        let meta = object.meta();
        let mut fields = Fields::new();
        fields.insert(
            "metadata.name".to_owned(),
            meta.name.clone().unwrap_or_default(),
        );
        if namespaced {
            fields.insert(
                "metadata.namespace".to_owned(),
                meta.namespace.clone().unwrap_or_default(),
            );
        }
        (meta.labels.clone().unwrap_or_default(), fields)
    })
}

/// Objects of type `K` stored as JSON under a path prefix of a byte-level store.
///
/// Keys passed to every method are Kubernetes keys such as `/pods/ns/name`: the leading `/` is
/// dropped and the path prefix prepended (`/registry/pods/ns/name`). Stored bytes never contain
/// `resourceVersion` or `selfLink`; every object read carries the revision it was last written
/// at as its resourceVersion.
pub struct Storage<K: Object> {
    store: Arc<dyn Interface>,
    /// Normalised: starts and ends with `/`.
    prefix: String,
    codec: Codec<K>,
    attrs: AttrFunc<K>,
    /// The resource the objects are, for the Status of errors inside watch streams.
    resource: GroupResource,
}

impl<K: Object> Clone for Storage<K> {
    fn clone(&self) -> Self {
        Storage {
            store: self.store.clone(),
            prefix: self.prefix.clone(),
            codec: self.codec.clone(),
            attrs: self.attrs.clone(),
            resource: self.resource.clone(),
        }
    }
}

impl<K: Object> std::fmt::Debug for Storage<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("prefix", &self.prefix)
            .field("store", &self.store)
            .finish()
    }
}

/// What a read found: the object, its revision and the plain bytes it decoded from.
#[derive(Clone, Debug)]
pub(crate) struct State<K> {
    pub(crate) object: K,
    /// The key's mod revision; 0 when the key does not exist.
    pub(crate) revision: Revision,
    /// The stored bytes after transform-from-storage (what no-op detection compares).
    pub(crate) data: Vec<u8>,
    /// The transformer asked for a rewrite (for example, an old encryption key).
    pub(crate) stale: bool,
    /// Read from the store now rather than taken from a caller's cached object.
    pub(crate) live: bool,
}

impl<K: Object> Storage<K> {
    /// Stores objects under the path prefix `/registry` of `store`; `new` builds an empty object
    /// of the type (for bookmarks and create-on-update). Attributes default to labels plus
    /// `metadata.name` and `metadata.namespace`.
    pub fn new(store: Arc<dyn Interface>, new: NewFunc<K>) -> Self {
        Storage {
            store,
            prefix: "/registry/".to_owned(),
            codec: Codec::new(new, Arc::new(IdentityTransformer)),
            attrs: default_attrs(true),
            resource: GroupResource::default(),
        }
    }

    /// This storage, naming `resource` in the Status of errors its watch streams end with
    /// (upstream's watch errors name the resource, as REST errors do).
    pub fn with_resource(mut self, resource: GroupResource) -> Self {
        self.resource = resource;
        self
    }

    /// This storage with another path prefix (normalised to start and end with `/`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        let trimmed = prefix.trim_matches('/');
        self.prefix = if trimmed.is_empty() {
            "/".to_owned()
        } else {
            format!("/{trimmed}/")
        };
        self
    }

    /// This storage with a value transformer (encryption at rest) applied to every value.
    pub fn with_transformer(mut self, transformer: Arc<dyn ValueTransformer>) -> Self {
        self.codec = self.codec.with_transformer(transformer);
        self
    }

    /// This storage applying `defaults` to every object it decodes from the store (reads,
    /// lists, watch events, the current object of an update), as upstream does for CRDs.
    pub fn with_read_defaults(mut self, defaults: ReadDefaults<K>) -> Self {
        self.codec = self.codec.with_read_defaults(defaults);
        self
    }

    /// This storage with another attribute function for selectors.
    pub fn with_attrs(mut self, attrs: AttrFunc<K>) -> Self {
        self.attrs = attrs;
        self
    }

    /// The byte-level store underneath.
    pub fn interface(&self) -> &Arc<dyn Interface> {
        &self.store
    }

    /// The normalised path prefix (starts and ends with `/`).
    pub fn path_prefix(&self) -> &str {
        &self.prefix
    }

    /// The codec in use (for tests and tools that inspect raw stored data).
    pub fn codec(&self) -> &Codec<K> {
        &self.codec
    }

    /// Validates a caller's key and maps it into the store: rejects `""` and `/` (`empty key`)
    /// and `.`/`..` segments (`invalid key`).
    pub fn prepare_key(&self, key: &str) -> Result<String> {
        if key.is_empty() || key == "/" {
            return Err(StorageError::BadRequest(format!("empty key: {key:?}")));
        }
        if key
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return Err(StorageError::BadRequest(format!("invalid key: {key:?}")));
        }
        Ok(format!("{}{}", self.prefix, key.trim_start_matches('/')))
    }

    pub(crate) fn attributes(&self, object: &K) -> (BTreeMap<String, String>, Fields) {
        (self.attrs)(object)
    }

    /// Creates the object at `key` if nothing lives there, with a TTL in seconds when `ttl > 0`,
    /// and returns it as written, with its resourceVersion (see [`Codec::encode_for_write`]
    /// for the one way that can differ from reading it back).
    #[tracing::instrument(level = "debug", skip(self, object))]
    pub async fn create(&self, key: &str, object: &K, ttl: u64) -> Result<K> {
        check_create_has_no_resource_version(object)?;
        let full = self.prepare_key(key)?;
        let (plain, mut written) = self.codec.encode_for_write(object.clone())?;
        let stored = self.codec.to_storage(&full, &plain)?;
        let revision = self
            .store
            .create(&full, stored, ttl_duration(ttl))
            .await
            .map_err(|e| StorageError::from_backend(&full, e))?;
        Codec::<K>::set_resource_version(&mut written, revision);
        Ok(written)
    }

    /// Reads the object at `key` (always the latest state), enforcing a not-older-than bound.
    /// A missing key is `KeyNotFound`, or `Ok(None)` with `ignore_not_found`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get(&self, key: &str, options: &GetOptions) -> Result<Option<K>> {
        let full = self.prepare_key(key)?;
        let minimum = parse_resource_version(&options.resource_version)
            .map_err(|e| StorageError::BadRequest(e.to_string()))?;
        let response = self
            .store
            .get(&full, None)
            .await
            .map_err(|e| StorageError::from_backend(&full, e))?;
        if minimum > response.revision {
            return Err(StorageError::TooLargeResourceVersion {
                requested: minimum,
                current: response.revision,
                retry_after_seconds: 0,
            });
        }
        match response.kv {
            Some(kv) => Ok(Some(self.codec.decode(&kv)?.0)),
            None if options.ignore_not_found => Ok(None),
            None => Err(StorageError::KeyNotFound {
                key: full,
                resource_version: response.revision,
            }),
        }
    }

    async fn live_state(&self, full: &str, ignore_not_found: bool) -> Result<State<K>> {
        let response = self
            .store
            .get(full, None)
            .await
            .map_err(|e| StorageError::from_backend(full, e))?;
        match response.kv {
            Some(kv) => self.state_from_kv(&kv),
            None if ignore_not_found => Ok(State {
                object: self.codec.new_object(),
                revision: 0,
                data: Vec::new(),
                stale: false,
                live: true,
            }),
            None => Err(StorageError::KeyNotFound {
                key: full.to_owned(),
                resource_version: response.revision,
            }),
        }
    }

    fn state_from_kv(&self, kv: &KeyValue) -> Result<State<K>> {
        let (object, data, stale) = self.codec.decode(kv)?;
        Ok(State {
            object,
            revision: kv.mod_revision,
            data,
            stale,
            live: true,
        })
    }

    fn state_from_suggestion(&self, object: K) -> Result<State<K>> {
        let revision = object
            .meta()
            .resource_version
            .as_deref()
            .unwrap_or_default();
        let revision = parse_resource_version(revision)
            .map_err(|e| StorageError::Internal(format!("cached object: {e}")))?;
        let data = self.codec.encode(&object)?;
        Ok(State {
            object,
            revision,
            data,
            stale: false,
            live: false,
        })
    }

    /// Deletes the object at `key` and returns its last state with the deletion revision as its
    /// resourceVersion.
    ///
    /// `preconditions` and `validate` are checked against the state about to be deleted. A
    /// failure seen on `cached` (a possibly stale suggestion of the current object) is re-checked
    /// against the live object and only returned if the live revision is the same; a delete
    /// that loses a race re-reads and re-checks.
    #[tracing::instrument(level = "debug", skip(self, validate, cached))]
    pub async fn delete<V>(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        mut validate: V,
        cached: Option<K>,
    ) -> Result<K>
    where
        V: FnMut(&K) -> Result<()> + Send,
    {
        let full = self.prepare_key(key)?;
        let mut state = match cached {
            Some(object) => self.state_from_suggestion(object)?,
            None => self.live_state(&full, false).await?,
        };
        loop {
            let checked = match preconditions {
                Some(p) => p.check(&full, &state.object),
                None => Ok(()),
            }
            .and_then(|()| validate(&state.object));
            if let Err(error) = checked {
                if state.live {
                    return Err(error);
                }
                let live = self.live_state(&full, false).await?;
                if live.revision == state.revision {
                    return Err(error);
                }
                state = live;
                continue;
            }
            match self
                .store
                .delete(&full, Precondition::ModRevision(state.revision))
                .await
            {
                Ok(deleted) => {
                    let (mut object, _, _) = self.codec.decode(&deleted.prev)?;
                    Codec::<K>::set_resource_version(&mut object, deleted.revision);
                    return Ok(object);
                }
                Err(storage_api::Error::Conflict { current, .. }) => {
                    state = self.state_from_kv(&current)?;
                }
                Err(storage_api::Error::NotFound { .. }) => {
                    state = self.live_state(&full, false).await?;
                }
                Err(other) => return Err(StorageError::from_backend(&full, other)),
            }
        }
    }

    /// Kubernetes' `GuaranteedUpdate`: reads `key` (or starts from `cached`, a suggestion),
    /// applies `update`, and writes the result if the object did not change in between,
    /// retrying on conflict. Returns the object as stored.
    ///
    /// `update` gets the current object and its metadata and returns the new object and an
    /// optional TTL in seconds (`None` writes without TTL). With `ignore_not_found` a missing key
    /// starts from an empty object and the write creates it. A result whose encoding equals the
    /// stored bytes is not written (the resourceVersion stays), unless the transformer reported
    /// the stored data stale. [`Storage::guaranteed_update_with`] lets the callback also delete
    /// the object or stop without writing.
    #[tracing::instrument(level = "debug", skip(self, update, cached))]
    pub async fn guaranteed_update<U>(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        mut update: U,
        cached: Option<K>,
    ) -> Result<K>
    where
        U: FnMut(K, ResponseMeta) -> Result<(K, Option<u64>)> + Send,
    {
        let outcome = self
            .guaranteed_update_with::<_, std::convert::Infallible>(
                key,
                ignore_not_found,
                preconditions,
                |object, meta| {
                    let (object, ttl) = update(object, meta)?;
                    Ok(UpdateDecision::Write(object, ttl))
                },
                cached,
            )
            .await?;
        match outcome {
            UpdateOutcome::Written(object) | UpdateOutcome::Deleted(object) => Ok(object),
            UpdateOutcome::Stopped(never) => match never {},
        }
    }

    /// [`Storage::guaranteed_update`] whose callback decides, for each object it is given,
    /// whether to write a new version, delete the object, or stop without writing (an error
    /// aborts, as always). A delete is conditional on the revision the callback saw: if the
    /// object changed meanwhile, the callback runs again on the newer one; if it is already
    /// gone, the delete counts as done.
    #[tracing::instrument(level = "debug", skip(self, update, cached))]
    pub async fn guaranteed_update_with<U, S>(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        mut update: U,
        cached: Option<K>,
    ) -> Result<UpdateOutcome<K, S>>
    where
        U: FnMut(K, ResponseMeta) -> Result<UpdateDecision<K, S>> + Send,
    {
        let full = self.prepare_key(key)?;
        let mut state = match cached {
            Some(object) => self.state_from_suggestion(object)?,
            None => self.live_state(&full, ignore_not_found).await?,
        };
        loop {
            let meta = ResponseMeta {
                ttl: 0,
                resource_version: state.revision,
            };
            // A missing object is checked too, as the empty object upstream's GuaranteedUpdate
            // holds for it: a uid or resourceVersion precondition fails (409), so a PUT naming
            // the uid of an object since deleted does not create a new one.
            let attempt = match preconditions {
                Some(p) => p.check(&full, &state.object),
                None => Ok(()),
            }
            .and_then(|()| update(state.object.clone(), meta));
            let decision = match attempt {
                Ok(decision) => decision,
                Err(error) => {
                    if state.live {
                        return Err(error);
                    }
                    let live = self.live_state(&full, ignore_not_found).await?;
                    if live.revision == state.revision {
                        return Err(error);
                    }
                    state = live;
                    continue;
                }
            };
            // A stop or delete decided on a suggestion (a cached object) is only trusted once
            // the suggestion is confirmed current, as upstream retries its 'already deleting'
            // and 'delete now' errors on a state that is not.
            if !state.live && !matches!(decision, UpdateDecision::Write(..)) {
                let live = self.live_state(&full, ignore_not_found).await?;
                if live.revision != state.revision || live.data != state.data {
                    state = live;
                    continue;
                }
                state.live = true;
            }
            let (updated, ttl) = match decision {
                UpdateDecision::Write(object, ttl) => (object, ttl),
                UpdateDecision::Stop(stop) => return Ok(UpdateOutcome::Stopped(stop)),
                UpdateDecision::Delete(last) => {
                    if state.revision == 0 {
                        // Nothing stored (an ignore_not_found start): nothing to delete.
                        return Ok(UpdateOutcome::Deleted(last));
                    }
                    let deleted = self
                        .store
                        .delete(&full, Precondition::ModRevision(state.revision))
                        .await;
                    match deleted {
                        Ok(_) | Err(storage_api::Error::NotFound { .. }) => {
                            return Ok(UpdateOutcome::Deleted(last));
                        }
                        Err(storage_api::Error::Conflict { current, .. }) => {
                            state = self.state_from_kv(&current)?;
                            continue;
                        }
                        Err(other) => return Err(StorageError::from_backend(&full, other)),
                    }
                }
            };
            let (plain, mut prepared) = self.codec.encode_for_write(updated)?;
            if state.revision != 0 && !state.stale && plain == state.data {
                if !state.live {
                    // Confirm the suggestion is current before skipping the write.
                    let live = self.live_state(&full, ignore_not_found).await?;
                    if live.revision != state.revision || live.data != state.data || live.stale {
                        state = live;
                        continue;
                    }
                }
                let mut object = state.object;
                Codec::<K>::set_resource_version(&mut object, state.revision);
                return Ok(UpdateOutcome::Written(object));
            }
            let stored = self.codec.to_storage(&full, &plain)?;
            let ttl = ttl_duration(ttl.unwrap_or(0));
            let written = if state.revision == 0 {
                self.store.create(&full, stored, ttl).await
            } else {
                self.store
                    .update(
                        &full,
                        stored,
                        Precondition::ModRevision(state.revision),
                        ttl,
                    )
                    .await
            };
            match written {
                Ok(revision) => {
                    Codec::<K>::set_resource_version(&mut prepared, revision);
                    return Ok(UpdateOutcome::Written(prepared));
                }
                Err(storage_api::Error::Conflict { current, .. }) => {
                    state = self.state_from_kv(&current)?;
                }
                Err(
                    storage_api::Error::AlreadyExists { .. } | storage_api::Error::NotFound { .. },
                ) => {
                    state = self.live_state(&full, ignore_not_found).await?;
                }
                Err(other) => return Err(StorageError::from_backend(&full, other)),
            }
        }
    }

    /// How many objects live under `key` (a directory such as `/pods` or `/pods/ns`).
    pub async fn count(&self, key: &str) -> Result<i64> {
        let full = directory(self.prepare_key(key)?);
        let response = self
            .store
            .range(RangeRequest::prefix(full.clone()).count_only())
            .await
            .map_err(|e| StorageError::from_backend(&full, e))?;
        Ok(i64::try_from(response.count).unwrap_or(i64::MAX))
    }

    /// Object count and average stored size under `key`.
    pub async fn stats(&self, key: &str) -> Result<Stats> {
        let full = directory(self.prepare_key(key)?);
        let response = self
            .store
            .range(RangeRequest::prefix(full.clone()))
            .await
            .map_err(|e| StorageError::from_backend(&full, e))?;
        let count = i64::try_from(response.kvs.len()).unwrap_or(i64::MAX);
        let total: usize = response.kvs.iter().map(|kv| kv.value.len()).sum();
        let total = i64::try_from(total).unwrap_or(i64::MAX);
        Ok(Stats {
            object_count: count,
            estimated_average_object_size_bytes: if count == 0 { 0 } else { total / count },
        })
    }

    /// The store's current global revision, including writes to unrelated keys.
    pub async fn current_resource_version(&self) -> Result<u64> {
        let revision = self
            .store
            .current_revision()
            .await
            .map_err(|e| StorageError::from_backend(&self.prefix, e))?;
        if revision == 0 {
            return Err(StorageError::Internal(
                "the current resource version must be greater than 0".to_owned(),
            ));
        }
        Ok(revision)
    }

    /// The latest compaction revision of the store (Kubernetes' `CompactRevision`), 0 if none.
    pub async fn compact_revision(&self) -> Result<u64> {
        self.store
            .compacted_revision()
            .await
            .map_err(|e| StorageError::from_backend(&self.prefix, e))
    }

    /// Succeeds when the store underneath can serve requests.
    pub async fn readiness_check(&self) -> Result<()> {
        self.store
            .ready()
            .await
            .map_err(|e| StorageError::from_backend(&self.prefix, e))
    }

    /// Stores raw bytes at `key` bypassing the codec (tests of corrupt or foreign data).
    pub async fn put_raw(&self, key: &str, value: Bytes) -> Result<Revision> {
        use storage_api::InterfaceExt;
        let full = self.prepare_key(key)?;
        self.store
            .put(&full, value, None)
            .await
            .map_err(|e| StorageError::from_backend(&full, e))
    }
}

/// `key` as a directory prefix: with exactly one trailing `/`.
pub(crate) fn directory(mut key: String) -> String {
    if !key.ends_with('/') {
        key.push('/');
    }
    key
}

fn ttl_duration(seconds: u64) -> Option<std::time::Duration> {
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}
