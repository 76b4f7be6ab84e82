//! [`Pods`]: the object storage a case of the port tests, `Storage<Pod>` itself or the watch
//! cache in front of it, with the methods of `Storage` the cases call.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use object_storage::transformer::ValueTransformer;
use object_storage::{
    Codec, GetOptions, ListOptions, ObjectList, ObjectStorage, ObjectWatch, Preconditions,
    ResponseMeta, Stats, Storage, StorageError, UpdateDecision, UpdateOutcome, WatchCache,
    WatchCacheConfig,
};

use crate::runner::Layer;

/// The resource the watch cache holds: every pod key of the port (`/pods/...`).
const CACHED_RESOURCE: &str = "/pods";

/// How often the cache sends bookmarks in the suite: upstream's cacher tests lower the one
/// minute so that bookmark tests see them within their waits.
const BOOKMARKS_EVERY: Duration = Duration::from_millis(500);

/// How long a cache may take to catch up with the store (progress events come every second or
/// less in the backends' suites).
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

/// How long a new cache may take to list.
const READY_WAIT: Duration = Duration::from_secs(30);

/// Pods stored through a [`Storage<Pod>`], optionally behind a [`WatchCache`].
#[derive(Clone, Debug)]
pub(crate) struct Pods {
    storage: Storage<Pod>,
    cache: Option<Arc<WatchCache<Pod>>>,
    /// The revision the cache's first list was taken at.
    listed_at: Option<u64>,
}

impl Pods {
    /// `storage` itself, or (for [`Layer::WatchCache`]) a new cache in front of it.
    pub(crate) fn new(storage: Storage<Pod>, layer: Layer) -> Self {
        Pods::with_cache_config(storage, layer, Pods::cache_config())
    }

    /// The cache settings of the suite: upstream's defaults, bookmarks more often.
    pub(crate) fn cache_config() -> WatchCacheConfig {
        WatchCacheConfig {
            bookmark_interval: BOOKMARKS_EVERY,
            ..WatchCacheConfig::default()
        }
    }

    /// [`Pods::new`] with a cache built with `config` (ignored for [`Layer::Storage`]).
    pub(crate) fn with_cache_config(
        storage: Storage<Pod>,
        layer: Layer,
        config: WatchCacheConfig,
    ) -> Self {
        let (cache, listed_at) = match layer {
            Layer::Storage => (None, None),
            Layer::WatchCache => {
                // The suite runs inside a multi-threaded Tokio runtime; without one the cache
                // cannot start and the case fails loudly rather than testing `Storage`.
                let started =
                    WatchCache::new(storage.clone(), CACHED_RESOURCE, config).and_then(|cache| {
                        // As upstream's cacher tests wait for the cacher before using it: a
                        // watch from a revision before the cache's first list is 410.
                        let listed_at = tokio::task::block_in_place(|| {
                            tokio::runtime::Handle::current()
                                .block_on(cache.wait_until_ready(READY_WAIT))
                        })?;
                        Ok((cache, listed_at))
                    });
                match started {
                    Ok((cache, listed_at)) => (Some(Arc::new(cache)), Some(listed_at)),
                    Err(error) => panic!("cannot start the watch cache: {error}"),
                }
            }
        };
        Pods {
            storage,
            cache,
            listed_at,
        }
    }

    /// With a watch cache: how many gets and lists it has answered from memory.
    pub(crate) fn reads_from_cache(&self) -> Option<u64> {
        self.cache.as_ref().map(|cache| {
            cache
                .stats()
                .reads_from_cache
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// With a watch cache: how many watchers it closed because they fell behind.
    pub(crate) fn watchers_closed_slow(&self) -> Option<u64> {
        self.cache.as_ref().map(|cache| {
            cache
                .stats()
                .watchers_closed_slow
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// The `Storage` under the cache (or the case's storage itself).
    pub(crate) fn storage(&self) -> &Storage<Pod> {
        &self.storage
    }

    /// With a watch cache: the revision of its first list, the oldest it serves history from.
    pub(crate) fn cache_listed_at(&self) -> Option<u64> {
        self.listed_at
    }

    /// The object storage the case exercises.
    fn objects(&self) -> &dyn ObjectStorage<Pod> {
        match &self.cache {
            Some(cache) => cache.as_ref(),
            None => &self.storage,
        }
    }

    /// The same pods with a value transformer; a cache is rebuilt over the new storage.
    pub(crate) fn with_transformer(self, transformer: Arc<dyn ValueTransformer>) -> Self {
        let layer = if self.cache.is_some() {
            Layer::WatchCache
        } else {
            Layer::Storage
        };
        Pods::new(self.storage.with_transformer(transformer), layer)
    }

    /// Returns once a watch cache has caught up with every write made so far (from its events
    /// or the backend's progress events); nothing to wait for without a cache.
    pub(crate) async fn catch_up(&self) -> anyhow::Result<()> {
        if let Some(cache) = &self.cache {
            let current = self.storage.interface().current_revision().await?;
            cache.wait_until_fresh(current, CATCH_UP_WAIT).await?;
        }
        Ok(())
    }

    pub(crate) async fn create(
        &self,
        key: &str,
        object: &Pod,
        ttl: u64,
    ) -> object_storage::Result<Pod> {
        self.objects().create(key, object, ttl).await
    }

    pub(crate) async fn get(
        &self,
        key: &str,
        options: &GetOptions,
    ) -> object_storage::Result<Option<Pod>> {
        self.objects().get(key, options).await
    }

    pub(crate) async fn get_list(
        &self,
        key: &str,
        options: &ListOptions,
    ) -> object_storage::Result<ObjectList<Pod>> {
        self.objects().get_list(key, options).await
    }

    pub(crate) async fn watch(
        &self,
        key: &str,
        options: &ListOptions,
    ) -> object_storage::Result<ObjectWatch<Pod>> {
        self.objects().watch(key, options).await
    }

    pub(crate) async fn watch_shared(
        &self,
        key: &str,
        options: &ListOptions,
    ) -> object_storage::Result<object_storage::SharedWatch<Pod>> {
        self.objects().watch_shared(key, options).await
    }

    pub(crate) async fn delete<V>(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate: V,
        cached: Option<Pod>,
    ) -> object_storage::Result<Pod>
    where
        V: Fn(&Pod) -> object_storage::Result<()> + Send + Sync,
    {
        self.objects()
            .delete(key, preconditions, &validate, cached)
            .await
    }

    pub(crate) async fn guaranteed_update<U>(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        mut update: U,
        cached: Option<Pod>,
    ) -> object_storage::Result<Pod>
    where
        U: FnMut(Pod, ResponseMeta) -> object_storage::Result<(Pod, Option<u64>)> + Send,
    {
        let mut decide = |object, meta| {
            let (object, ttl) = update(object, meta)?;
            Ok(UpdateDecision::Write(object, ttl))
        };
        match self
            .objects()
            .guaranteed_update_with(key, ignore_not_found, preconditions, &mut decide, cached)
            .await?
        {
            UpdateOutcome::Written(object) | UpdateOutcome::Deleted(object) => Ok(object),
            UpdateOutcome::Stopped(()) => Err(StorageError::Internal(
                "an update that only writes stopped".to_owned(),
            )),
        }
    }

    pub(crate) async fn count(&self, key: &str) -> object_storage::Result<i64> {
        self.objects().count(key).await
    }

    pub(crate) async fn stats(&self, key: &str) -> object_storage::Result<Stats> {
        self.storage.stats(key).await
    }

    pub(crate) async fn current_resource_version(&self) -> object_storage::Result<u64> {
        self.storage.current_resource_version().await
    }

    pub(crate) async fn compact_revision(&self) -> object_storage::Result<u64> {
        self.storage.compact_revision().await
    }

    pub(crate) fn codec(&self) -> &Codec<Pod> {
        self.storage.codec()
    }

    pub(crate) fn prepare_key(&self, key: &str) -> object_storage::Result<String> {
        self.storage.prepare_key(key)
    }

    pub(crate) fn interface(&self) -> &Arc<dyn storage_api::Interface> {
        self.storage.interface()
    }
}
