//! The watch cache: [`WatchCache<K>`] stands in front of a [`Storage<K>`] and serves its
//! watches and most of its reads from memory, fed by one backend watch per resource
//! (upstream's `cacher`, `staging/src/k8s.io/apiserver/pkg/storage/cacher/`).
//!
//! - **One backend watch.** A background task lists the resource, then watches it from the
//!   list's revision with progress events, applying every event to [`state::CacheState`]: the
//!   current objects keyed like the backend, and a ring of recent events bounded by count and
//!   age ([`RingLimits`]). A watch that fails resumes from the last revision; one that finds its
//!   revision compacted re-lists, and every client watcher then ends (they resume from their
//!   last revision, or re-list on 410), as upstream's reflector and cacher do.
//! - **Shared objects.** Each object is decoded once, when its event arrives, and handed to
//!   every watcher and list as a [`Shared`] that remembers its encodings.
//! - **Indexed dispatch** by watched key or directory and by a declared [`Trigger`], with
//!   predicate transitions; delivery never blocks the cache for long: a watcher whose buffer
//!   stays full beyond the time budget is ended cleanly (never a silent gap).
//! - **Bookmarks**: every `bookmark_interval` to watchers that allow them, and one about 2 s
//!   before a watch's deadline ([`ListOptions::deadline`]), as upstream's
//!   `cacheWatcher.nextBookmarkTime`.
//! - **Reads from memory**: gets and lists (of a directory, or of one key) at resourceVersion
//!   `0` or not-older-than a revision, exact revisions inside the ring's window (continue
//!   tokens included), and consistent reads once the cache has caught up with the backend's
//!   current revision (bounded wait, then the backend). Writes go to the backend, with the
//!   cached object as the suggestion.

mod shared;
mod state;
mod watchers;

pub use shared::Shared;
pub use state::RingLimits;
pub use watchers::Trigger;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apimachinery::continue_token::encode_continue;
use apimachinery::object::Object;
use apimachinery::resource_version::parse_resource_version;
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use parking_lot::RwLock;
use tokio::sync::{mpsc, watch};

use crate::codec_helpers::bookmark;
use crate::error::{Result, StorageError};
use crate::interface::{ObjectStorage, SharedWatch, UpdateFn, ValidateFn};
use crate::list::{ListPlan, plan, to_i64};
use crate::options::{GetOptions, ListOptions, ObjectList, Preconditions, WatchEvent};
use crate::{ObjectWatch, Storage, UpdateOutcome, directory};
use state::{CacheState, Entry, Window};
use watchers::{Delivery, Due, Parcel, Watchers};

/// How a [`WatchCache`] sizes its ring, feeds its watchers and waits for freshness.
#[derive(Clone, Debug)]
pub struct WatchCacheConfig {
    /// Events kept for watches that resume and exact reads.
    pub ring: RingLimits,
    /// Parcels buffered per watcher beyond its initial events (a parcel is the watcher's
    /// events of one dispatched batch: one event when the cache keeps up, more under load).
    pub watcher_buffer: usize,
    /// How often a watcher that allows bookmarks gets one (upstream: every minute).
    pub bookmark_interval: Duration,
    /// How long a read or watch at a revision the cache has not reached yet waits for it
    /// before failing with "Too large resource version" (upstream: 3 s).
    pub freshness_timeout: Duration,
    /// How long a consistent read waits for the cache to reach the backend's current
    /// revision before it reads from the backend instead.
    pub consistent_read_timeout: Duration,
    /// The most time one event may spend waiting for watchers whose buffers are full; the
    /// budget refills at `dispatch_refill` per second (upstream: 100 ms, 50 ms/s).
    pub dispatch_budget: Duration,
    /// See `dispatch_budget`.
    pub dispatch_refill: Duration,
    /// The attribute watchers are indexed by, besides key and namespace.
    pub trigger: Option<Trigger>,
    /// How long the cache waits before listing or watching again after a backend failure.
    pub retry_delay: Duration,
    /// Where the cache reports what it does.
    pub stats: Arc<CacheStats>,
}

impl Default for WatchCacheConfig {
    fn default() -> Self {
        WatchCacheConfig {
            ring: RingLimits::default(),
            // Upstream's largest watcher buffer (for indexed watchers): a second of events at
            // 1,000 writes/s while batches are single events, more once load makes them grow.
            watcher_buffer: 1000,
            bookmark_interval: Duration::from_secs(60),
            freshness_timeout: Duration::from_secs(3),
            consistent_read_timeout: Duration::from_secs(3),
            dispatch_budget: Duration::from_millis(100),
            dispatch_refill: Duration::from_millis(50),
            trigger: None,
            retry_delay: Duration::from_secs(1),
            stats: Arc::new(CacheStats::default()),
        }
    }
}

/// Counters and gauges of one watch cache, for metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Objects held (gauge).
    pub objects: AtomicU64,
    /// Events held in the ring (gauge).
    pub events: AtomicU64,
    /// Registered watchers (gauge).
    pub watchers: AtomicU64,
    /// Events received from the backend.
    pub events_received: AtomicU64,
    /// Events handed to watchers (one per watcher per event).
    pub events_dispatched: AtomicU64,
    /// Watchers ended because their buffer stayed full beyond the time budget.
    pub watchers_closed_slow: AtomicU64,
    /// Gets and lists answered from the cache.
    pub reads_from_cache: AtomicU64,
    /// Gets and lists passed to the backend.
    pub reads_from_backend: AtomicU64,
    /// Times the cache listed the backend (1 at start, one more per re-list).
    pub initializations: AtomicU64,
}

impl CacheStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The state and the watchers, behind one lock: an event is applied and its deliveries
/// computed in one step, and a watcher registers in one step with the state it starts from,
/// so no watcher misses or repeats an event.
struct Core<K> {
    state: CacheState<K>,
    watchers: Watchers<K>,
}

struct Cache<K> {
    core: RwLock<Core<K>>,
    /// The cache's revision, for waiters; `None` while not ready.
    revision: watch::Sender<Option<u64>>,
    config: WatchCacheConfig,
    /// When the cache last asked the backend for progress: reads waiting together share one
    /// request per period (upstream's progress requester is one per resource too).
    progress_requested: parking_lot::Mutex<Option<Instant>>,
}

/// A watch cache over one resource of a [`Storage<K>`]: an [`ObjectStorage<K>`] that serves
/// reads and watches from memory and writes through to the storage. See the module docs.
pub struct WatchCache<K: Object> {
    storage: Storage<K>,
    /// The full directory the cache holds (`/registry/pods/`).
    root: String,
    inner: Arc<Cache<K>>,
    reflector: tokio::task::JoinHandle<()>,
}

impl<K: Object> Drop for WatchCache<K> {
    fn drop(&mut self) {
        self.reflector.abort();
    }
}

impl<K: Object> std::fmt::Debug for WatchCache<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("root", &self.root)
            .finish()
    }
}

/// How often a consistent read that waits asks the backend for progress again.
const PROGRESS_REQUEST_PERIOD: Duration = Duration::from_millis(100);

/// Why a read is not answered from the cache.
enum Miss {
    /// Hand the request to the backend.
    Delegate,
    /// Fail with this error.
    Fail(StorageError),
}

impl<K: Object> WatchCache<K> {
    /// A cache of everything under `resource_key` (such as `/pods`) of `storage`, filled and kept
    /// current by a task spawned on the current Tokio runtime. Until its first list completes,
    /// reads go to the storage and watches wait for it.
    ///
    /// Fails with [`StorageError::BadRequest`] for an invalid key, and with
    /// [`StorageError::Internal`] outside a Tokio runtime.
    pub fn new(storage: Storage<K>, resource_key: &str, config: WatchCacheConfig) -> Result<Self> {
        let root = directory(storage.prepare_key(resource_key)?);
        let runtime = tokio::runtime::Handle::try_current().map_err(|error| {
            StorageError::Internal(format!("the watch cache needs a Tokio runtime: {error}"))
        })?;
        let (revision, _) = watch::channel(None);
        let inner = Arc::new(Cache {
            core: RwLock::new(Core {
                state: CacheState::new(config.ring),
                watchers: Watchers::new(root.clone(), config.trigger.clone()),
            }),
            revision,
            config,
            progress_requested: parking_lot::Mutex::new(None),
        });
        let reflector = runtime.spawn(reflect(
            storage.clone(),
            resource_key.to_owned(),
            Arc::clone(&inner),
        ));
        Ok(WatchCache {
            storage,
            root,
            inner,
            reflector,
        })
    }

    /// The storage the cache reads from and writes to.
    pub fn storage(&self) -> &Storage<K> {
        &self.storage
    }

    /// The counters of this cache.
    pub fn stats(&self) -> &Arc<CacheStats> {
        &self.inner.config.stats
    }

    /// Waits until the cache has listed its resource (after a start or a re-list) and returns
    /// its revision, or fails with [`StorageError::TooManyRequests`] when that takes longer
    /// than `timeout`.
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<u64> {
        self.wait_for(0, timeout).await.map_err(|_| initializing())
    }

    /// Waits until the cache reflects `revision` (every event of its resource up to it, learnt
    /// from events or progress) and returns its revision, or fails with
    /// [`StorageError::TooLargeResourceVersion`] after `timeout`.
    pub async fn wait_until_fresh(&self, revision: u64, timeout: Duration) -> Result<u64> {
        self.wait_for(revision, timeout).await.map_err(|current| {
            StorageError::TooLargeResourceVersion {
                requested: revision,
                current,
                retry_after_seconds: 1,
            }
        })
    }

    /// The revision the cache reflects; `None` until its first list completes.
    pub fn revision(&self) -> Option<u64> {
        *self.inner.revision.borrow()
    }

    /// The full key for `key`, if it lies inside the cached resource.
    fn cached_key(&self, key: &str) -> Result<Option<String>> {
        let full = self.storage.prepare_key(key)?;
        Ok((full.starts_with(&self.root) || directory(full.clone()) == self.root).then_some(full))
    }

    /// Waits until the cache is ready and has reached `revision`; `Err` with the cache's
    /// revision (0 when not ready) when it does not within `timeout`.
    async fn wait_for(&self, revision: u64, timeout: Duration) -> std::result::Result<u64, u64> {
        let mut receiver = self.inner.revision.subscribe();
        let reached = tokio::time::timeout(
            timeout,
            receiver.wait_for(|current| current.is_some_and(|current| current >= revision)),
        )
        .await
        .ok()
        .and_then(|waited| waited.ok().map(|current| current.unwrap_or(revision)));
        match reached {
            Some(current) => Ok(current),
            None => Err(receiver.borrow().unwrap_or(0)),
        }
    }

    /// Waits for a not-older-than bound: the cache's revision once it is at least `minimum`,
    /// else "Too large resource version" (retry after 1 s, as upstream).
    async fn fresh(&self, minimum: u64) -> std::result::Result<u64, Miss> {
        match self
            .catch_up_to(minimum, self.inner.config.freshness_timeout)
            .await
        {
            Ok(current) => Ok(current),
            Err(0) => Err(Miss::Delegate),
            Err(current) => Err(Miss::Fail(StorageError::TooLargeResourceVersion {
                requested: minimum,
                current,
                retry_after_seconds: 1,
            })),
        }
    }

    /// Whether it is time to ask the backend for progress again (at most once a period,
    /// however many reads wait), and if so, notes the request as made.
    fn progress_due(&self) -> bool {
        let now = Instant::now();
        let mut last = self.inner.progress_requested.lock();
        match *last {
            Some(at) if now.saturating_duration_since(at) < PROGRESS_REQUEST_PERIOD => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// Whether the backend answers progress requests (see [`Self::catch_up_to`]).
    fn progress_on_request(&self) -> bool {
        self.storage.interface().capabilities().progress_requests
    }

    /// Waits up to `timeout` for the cache to reach `revision`; `Err` with the cache's revision
    /// (0 while not ready) when it does not. Where the backend answers progress requests they
    /// are made every 100 ms meanwhile, as upstream's progress requester does, so a quiet
    /// resource catches up at once rather than at the next periodic progress event; a request
    /// can race the (re)start of the cache's own backend watch, hence the repeats.
    async fn catch_up_to(&self, revision: u64, timeout: Duration) -> std::result::Result<u64, u64> {
        if let Some(current) = self.revision().filter(|current| *current >= revision) {
            return Ok(current);
        }
        let deadline = Instant::now() + timeout;
        if self.progress_on_request() {
            loop {
                if self.progress_due() {
                    if let Err(error) = self.storage.interface().request_progress().await {
                        tracing::debug!(%error, "progress request refused");
                        break;
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match self
                    .wait_for(revision, left.min(PROGRESS_REQUEST_PERIOD))
                    .await
                {
                    Ok(current) => return Ok(current),
                    Err(current) if Instant::now() >= deadline => return Err(current),
                    Err(_) => {}
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.wait_for(revision, left).await
    }

    /// Waits until the cache has caught up with the backend's current revision (a consistent
    /// read, KEP-2340); `None` when it does not in time, or cannot learn it promptly, and the
    /// backend must answer (upstream delegates then too).
    async fn consistent(&self) -> Result<Option<u64>> {
        let current = self.backend_revision().await?;
        if let Some(revision) = self.revision().filter(|revision| *revision >= current) {
            return Ok(Some(revision));
        }
        if !self.progress_on_request() {
            return Ok(None);
        }
        Ok(self
            .catch_up_to(current, self.inner.config.consistent_read_timeout)
            .await
            .ok())
    }

    /// Follows the backend's compaction before a read of past history: upstream's cacher drops
    /// its snapshots below the compaction revision (its `compactor`), so an exact read or a
    /// watch below it gets the backend's 410 rather than history the backend no longer has.
    async fn sync_compaction(&self) -> Result<()> {
        let compacted = self.storage.compact_revision().await?;
        if compacted > 0 {
            self.inner.core.write().state.compacted(compacted);
        }
        Ok(())
    }

    /// The backend's current revision (0 for a store never written to).
    async fn backend_revision(&self) -> Result<u64> {
        self.storage
            .interface()
            .current_revision()
            .await
            .map_err(|e| StorageError::from_backend(&self.root, e))
    }

    fn count_read(&self, from_cache: bool) {
        let stats = &self.inner.config.stats;
        CacheStats::add(
            if from_cache {
                &stats.reads_from_cache
            } else {
                &stats.reads_from_backend
            },
            1,
        );
    }

    /// [`Self::cached_key`] for a read: a key outside the resource goes to the backend.
    fn cached_key_or_miss(&self, key: &str) -> std::result::Result<String, Miss> {
        match self.cached_key(key) {
            Ok(Some(full)) => Ok(full),
            Ok(None) => Err(Miss::Delegate),
            Err(error) => Err(Miss::Fail(error)),
        }
    }

    /// The cached object at `key`, as a suggestion for a write.
    fn suggestion(&self, key: &str) -> Option<K> {
        let full = self.cached_key(key).ok()??;
        let core = self.inner.core.read();
        if !core.state.is_ready() {
            return None;
        }
        core.state.get(&full).map(|entry| K::clone(&entry.object))
    }

    async fn get_cached(
        &self,
        key: &str,
        options: &GetOptions,
    ) -> std::result::Result<Option<K>, Miss> {
        // Upstream serves a get without resourceVersion from the backend: it must be current.
        if options.resource_version.is_empty() {
            return Err(Miss::Delegate);
        }
        let full = self.cached_key_or_miss(key)?;
        let minimum = parse_resource_version(&options.resource_version)
            .map_err(|e| Miss::Fail(StorageError::BadRequest(e.to_string())))?;
        let revision = self.fresh(minimum).await?;
        let core = self.inner.core.read();
        if !core.state.is_ready() {
            return Err(Miss::Delegate);
        }
        match core.state.get(&full) {
            Some(entry) => Ok(Some(K::clone(&entry.object))),
            None if options.ignore_not_found => Ok(None),
            None => Err(Miss::Fail(StorageError::KeyNotFound {
                key: full,
                resource_version: revision.max(core.state.revision()),
            })),
        }
    }

    async fn list_cached(
        &self,
        key: &str,
        options: &ListOptions,
    ) -> std::result::Result<ObjectList<Shared<K>>, Miss> {
        // A non-recursive list is of the one object at `key` (upstream's `Store.List` asks for
        // one when a field selector names it); upstream's cacher serves it from its store too.
        let cached = self.cached_key_or_miss(key)?;
        let scope = if options.recursive {
            directory(cached)
        } else {
            cached
        };
        let full = scope.as_str();
        let limit = match options.predicate.limit {
            Some(limit) if limit < 0 => {
                return Err(Miss::Fail(StorageError::BadRequest(
                    "list limit must not be negative".to_owned(),
                )));
            }
            Some(limit) => limit.unsigned_abs(),
            None => 0,
        };
        let plan: ListPlan = plan(full, options, limit).map_err(Miss::Fail)?;
        match plan.revision {
            // An exact revision (a continue token's, or resourceVersionMatch=Exact): from the
            // ring when it is inside the window, else the backend decides (it may still have
            // it, or answers 410).
            Some(exact) => {
                // Ahead of the cache, without progress on request to catch up promptly: the
                // backend reads it (a continue token of a page it answered, for one).
                if self.revision().is_some_and(|current| current < exact)
                    && !self.progress_on_request()
                {
                    return Err(Miss::Delegate);
                }
                self.fresh(exact).await?;
                self.sync_compaction().await.map_err(Miss::Fail)?;
            }
            // No revision asked, or a continue token of an inconsistent continuation (which
            // carries none, whatever resourceVersion "0" says beside it): a consistent read,
            // as upstream's ShouldDelegateContinue decides.
            None if options.resource_version.is_empty() || plan.continue_key.is_some() => {
                if self.consistent().await.map_err(Miss::Fail)?.is_none() {
                    return Err(Miss::Delegate);
                }
            }
            None => {
                self.fresh(plan.minimum).await?;
            }
        }
        let core = self.inner.core.read();
        // A cache at revision 0 has seen nothing yet (not even a first write to an empty
        // store), and a list must not answer with the unset resourceVersion "0".
        if !core.state.is_ready() || (plan.revision.is_none() && core.state.revision() == 0) {
            return Err(Miss::Delegate);
        }
        let start = plan.continue_key.as_deref().unwrap_or(full);
        // Served at the cache's revision when no exact one was asked for.
        let (revision, snapshot) = match plan.revision {
            None => (core.state.revision(), core.state.range_now(full, start)),
            Some(exact) => match core.state.range_at(full, start, exact) {
                Ok(snapshot) => (exact, snapshot),
                Err(Window::TooOld { .. } | Window::TooNew { .. }) => return Err(Miss::Delegate),
            },
        };
        // The range is by prefix: a single key's excludes the keys it is a prefix of.
        let snapshot = snapshot.filter(|entry| options.recursive || entry.key == full);
        let predicate = &options.predicate;
        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0_u64;
        let mut full_page = false;
        for entry in snapshot {
            if full_page {
                remaining += 1;
                // The count of what remains is only reported for unfiltered lists; otherwise
                // one more key is all the continue token needs.
                if !predicate.is_empty() {
                    break;
                }
                continue;
            }
            if predicate.matches(&entry.labels, &entry.fields) {
                items.push(entry.object.clone());
            }
            last_key = Some(entry.key.clone());
            full_page = limit > 0 && items.len() as u64 == limit;
        }
        let (continue_token, remaining_item_count) = match last_key {
            Some(last) if remaining > 0 => {
                let token = encode_continue(&format!("{last}\0"), full, to_i64(revision))
                    .map_err(|e| Miss::Fail(StorageError::Internal(e.to_string())))?;
                (Some(token), predicate.is_empty().then(|| to_i64(remaining)))
            }
            _ => (None, None),
        };
        Ok(ObjectList {
            items,
            resource_version: revision,
            continue_token,
            remaining_item_count,
        })
    }
}

/// Where a cache watch starts.
enum Start {
    /// The current objects as ADDED events (at the cache's revision once it is at least this),
    /// then what follows.
    State { minimum: u64 },
    /// The events after this revision.
    After(u64),
    /// The events after the cache's revision.
    Now,
}

/// Ends a watcher's registration when its stream is dropped.
struct Registration<K: Object> {
    cache: std::sync::Weak<Cache<K>>,
    id: u64,
}

impl<K: Object> Drop for Registration<K> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.upgrade() {
            let mut core = cache.core.write();
            core.watchers.remove(self.id);
            gauge(&cache.config.stats.watchers, core.watchers.len());
        }
    }
}

/// The 429 of a request the cache cannot take while it (re)lists, worded as upstream's.
fn initializing() -> StorageError {
    StorageError::TooManyRequests {
        message: "storage is (re)initializing".to_owned(),
        retry_after_seconds: 1,
    }
}

/// Records how many objects and events the cache holds.
fn record_sizes<K: Object>(stats: &CacheStats, state: &CacheState<K>) {
    let (objects, events) = state.sizes();
    gauge(&stats.objects, objects);
    gauge(&stats.events, events);
}

fn gauge(target: &AtomicU64, value: usize) {
    target.store(u64::try_from(value).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// A stream that yields one error event and ends.
fn failed<K: Object>(error: apimachinery::status::ApiError) -> SharedWatch<K> {
    Box::pin(futures::stream::iter([WatchEvent::Error(error)]))
}

impl<K: Object> WatchCache<K> {
    /// The upstream message of a watch from a revision the ring no longer covers.
    fn too_old(&self, requested: u64, oldest: u64) -> SharedWatch<K> {
        failed(crate::watch::in_stream(
            StorageError::Expired {
                message: format!("too old resource version: {requested} ({oldest})"),
                continue_token: None,
            },
            &self.storage.resource,
        ))
    }

    /// The cache's watch; `Ok(None)` when the storage must serve it.
    async fn watch_cached(
        &self,
        key: &str,
        options: &ListOptions,
    ) -> Result<Option<SharedWatch<K>>> {
        let Some(full) = self.cached_key(key)? else {
            return Ok(None);
        };
        let scope = if options.recursive {
            directory(full)
        } else {
            full
        };
        let requested = crate::watch::watch_resource_version(options)?;
        // The start as upstream's getWatchCacheResourceVersion and getAllEventsSinceLocked
        // decide it: only sendInitialEvents=true waits for a revision; other watches from a
        // revision the cache has not reached see the events after it as they come.
        let start = match (
            options.send_initial_events,
            options.resource_version.as_str(),
        ) {
            (Some(true), "") => Start::State {
                minimum: self.backend_revision().await?,
            },
            (Some(true), _) => Start::State { minimum: requested },
            (None, _) if requested == 0 => Start::State { minimum: 0 },
            (Some(false), "") => Start::After(self.backend_revision().await?),
            (Some(false), _) if requested == 0 => Start::Now,
            (_, _) => Start::After(requested),
        };
        // Watches are never handed to the backend: while the cache (re)initialises they wait a
        // little, then get 429 and retry, as upstream answers them.
        let wait = match start {
            Start::State { minimum } => minimum,
            Start::After(_) | Start::Now => 0,
        };
        match self
            .catch_up_to(wait, self.inner.config.freshness_timeout)
            .await
        {
            Ok(_) => {}
            Err(0) => {
                return Err(initializing());
            }
            Err(current) => {
                return Ok(Some(failed(crate::watch::in_stream(
                    StorageError::TooLargeResourceVersion {
                        requested: wait,
                        current,
                        retry_after_seconds: 1,
                    },
                    &self.storage.resource,
                ))));
            }
        }
        if let Start::After(_) = start {
            self.sync_compaction().await?;
        }
        let config = &self.inner.config;
        let (sender, receiver) = mpsc::channel(config.watcher_buffer.max(1));
        let predicate = &options.predicate;
        // Progress notifications (internal callers) are the cache's periodic bookmarks.
        let bookmarks = (predicate.allow_watch_bookmarks || options.progress_notify)
            .then_some(config.bookmark_interval);
        let mut core = self.inner.core.write();
        if !core.state.is_ready() {
            // Re-listing began after the wait above: registering now would follow a state the
            // next list replaces without a word to this watcher.
            return Err(initializing());
        }
        let current = core.state.revision();
        let mut initial: Vec<Delivery<K>> = Vec::new();
        let after = match start {
            Start::State { .. } => {
                let snapshot = core.state.range_now(&scope, &scope);
                initial.extend(
                    snapshot
                        .filter(|entry| options.recursive || entry.key == scope)
                        .filter(|entry| predicate.matches(&entry.labels, &entry.fields))
                        .map(|entry| WatchEvent::Added(entry.object.clone())),
                );
                if options.send_initial_events == Some(true) && predicate.allow_watch_bookmarks {
                    initial.push(WatchEvent::Bookmark(Shared::new(bookmark(
                        self.storage.codec(),
                        current,
                        true,
                    ))));
                }
                current
            }
            Start::Now => current,
            Start::After(revision) => match core.state.events_after(revision, &scope) {
                Ok(events) => {
                    initial.extend(
                        events
                            .iter()
                            .filter(|event| options.recursive || event.current.key == scope)
                            .filter_map(|event| watchers::transition(predicate, event)),
                    );
                    current
                }
                Err(Window::TooOld { oldest }) => return Ok(Some(self.too_old(revision, oldest))),
                // Ahead of the cache: the events after it are still to come.
                Err(Window::TooNew { .. }) => revision,
            },
        };
        let id = core.watchers.add(
            scope,
            predicate,
            sender,
            bookmarks,
            options.deadline,
            Instant::now(),
        );
        gauge(&config.stats.watchers, core.watchers.len());
        drop(core);
        let registration = Registration {
            cache: Arc::downgrade(&self.inner),
            id,
        };
        let live = Live {
            receiver,
            _registration: registration,
            parcel: None,
            next: 0,
            // A watcher that starts after a revision the cache has not reached skips what its
            // group's parcels hold before it.
            skip_through: (after > current).then_some(after),
        };
        let live = futures::stream::unfold(live, |mut live| async move {
            let event = live.next().await?;
            Some((event, live))
        });
        Ok(Some(Box::pin(futures::stream::iter(initial).chain(live))))
    }
}

/// The live part of a cache watch: the events of the parcels its group receives, one by one.
struct Live<K: Object> {
    receiver: mpsc::Receiver<Parcel<K>>,
    /// Ends the registration when the watch is dropped.
    _registration: Registration<K>,
    parcel: Option<Parcel<K>>,
    next: usize,
    skip_through: Option<u64>,
}

impl<K: Object> Live<K> {
    async fn next(&mut self) -> Option<Delivery<K>> {
        loop {
            if let Some(parcel) = &self.parcel {
                if let Some(event) = parcel.get(self.next) {
                    self.next += 1;
                    if self
                        .skip_through
                        .is_some_and(|after| revision_of(event) <= after)
                    {
                        continue;
                    }
                    return Some(event.clone());
                }
            }
            self.parcel = Some(self.receiver.recv().await?);
            self.next = 0;
        }
    }
}

/// The resourceVersion an event carries (0 for an error).
fn revision_of<K: Object>(event: &Delivery<K>) -> u64 {
    let object = match event {
        WatchEvent::Added(o)
        | WatchEvent::Modified(o)
        | WatchEvent::Deleted(o)
        | WatchEvent::Bookmark(o) => o,
        WatchEvent::Error(_) => return 0,
    };
    object
        .meta()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// Hands `due` parcels out: at once to watchers with room, then, within the time budget, to
/// those without; a watcher still full when the budget runs out is ended (its stream closes
/// after what it holds; the client resumes from its last revision).
async fn dispatch<K: Object>(cache: &Cache<K>, due: Vec<Due<K>>, budget: &mut TimeBudget) {
    let stats = &cache.config.stats;
    let mut delivered = 0_u64;
    let mut blocked = Vec::new();
    let mut gone = Vec::new();
    for Due { id, sender, parcel } in due {
        let events = parcel.len() as u64;
        match sender.try_send(parcel) {
            Ok(()) => delivered += events,
            Err(mpsc::error::TrySendError::Full(parcel)) => blocked.push((id, sender, parcel)),
            Err(mpsc::error::TrySendError::Closed(_)) => gone.push(id),
        }
    }
    let mut slow = 0_u64;
    if !blocked.is_empty() {
        let available = budget.take();
        let started = tokio::time::Instant::now();
        let deadline = started + available;
        for (id, sender, parcel) in blocked {
            let events = parcel.len() as u64;
            match tokio::time::timeout_at(deadline, sender.send(parcel)).await {
                Ok(Ok(())) => delivered += events,
                Ok(Err(_)) => gone.push(id),
                Err(_) => {
                    tracing::debug!(watcher = id, "ending a watcher too slow for its buffer");
                    slow += 1;
                    gone.push(id);
                }
            }
        }
        budget.give_back(available.saturating_sub(started.elapsed()));
    }
    CacheStats::add(&stats.events_dispatched, delivered);
    CacheStats::add(&stats.watchers_closed_slow, slow);
    if !gone.is_empty() {
        let mut core = cache.core.write();
        for id in gone {
            core.watchers.remove(id);
        }
        gauge(&stats.watchers, core.watchers.len());
    }
}

/// Upstream's `timeBudget`: time for blocked watchers, refilled at a steady rate up to a cap.
struct TimeBudget {
    available: Duration,
    refilled: Instant,
    max: Duration,
    per_second: Duration,
}

impl TimeBudget {
    fn new(max: Duration, per_second: Duration) -> Self {
        TimeBudget {
            available: Duration::ZERO,
            refilled: Instant::now(),
            max,
            per_second,
        }
    }

    /// Everything available now; the budget is empty until refilled or given back.
    fn take(&mut self) -> Duration {
        let now = Instant::now();
        let earned = self
            .per_second
            .mul_f64(now.saturating_duration_since(self.refilled).as_secs_f64());
        self.refilled = now;
        let available = (self.available + earned).min(self.max);
        self.available = Duration::ZERO;
        available
    }

    fn give_back(&mut self, unused: Duration) {
        self.available = (self.available + unused).min(self.max);
    }
}

/// The cache's one backend watch: lists, then applies every event after the list, resuming
/// after failures and re-listing when its revision is compacted (upstream's reflector and
/// `startCaching`).
async fn reflect<K: Object>(storage: Storage<K>, resource_key: String, cache: Arc<Cache<K>>) {
    let config = &cache.config;
    let mut budget = TimeBudget::new(config.dispatch_budget, config.dispatch_refill);
    let mut ticks = tokio::time::interval(BOOKMARK_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let root = match storage.prepare_key(&resource_key) {
        Ok(full) => directory(full),
        Err(error) => {
            tracing::error!(%error, key = resource_key, "watch cache cannot start");
            return;
        }
    };
    loop {
        let revision = match list(&storage, &root, &cache).await {
            Ok(revision) => revision,
            Err(error) => {
                tracing::warn!(%error, prefix = root, "watch cache list failed; retrying");
                tokio::time::sleep(config.retry_delay).await;
                continue;
            }
        };
        match follow(&storage, &root, &cache, revision, &mut budget, &mut ticks).await {
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(%error, prefix = root, "watch cache re-lists");
            }
        }
        // Every watcher ends (they resume from their last revision, or re-list on 410) and
        // requests wait until the next list is in, as upstream's cacher re-initialises.
        {
            let mut core = cache.core.write();
            core.state.set_unready();
            core.watchers.clear();
            gauge(&config.stats.watchers, 0);
        }
        cache.revision.send_replace(None);
    }
}

/// How often periodic bookmarks are considered (upstream: about every second).
const BOOKMARK_TICK: Duration = Duration::from_secs(1);

/// Page size of the cache's lists (upstream's `storageWatchListPageSize`).
const LIST_PAGE: u64 = 10_000;

/// Lists everything under `root` at one revision into the cache; returns the revision.
async fn list<K: Object>(storage: &Storage<K>, root: &str, cache: &Cache<K>) -> Result<u64> {
    let store = storage.interface();
    let mut start = root.to_owned();
    let mut pinned = None;
    let mut entries = Vec::new();
    loop {
        let request = storage_api::RangeRequest {
            prefix: root.to_owned(),
            start: Some(start.clone()),
            revision: pinned,
            limit: Some(LIST_PAGE),
            count_only: false,
        };
        let response = store
            .range(request)
            .await
            .map_err(|e| StorageError::from_backend(root, e))?;
        pinned.get_or_insert(response.revision);
        for kv in &response.kvs {
            let (object, _, _) = storage.codec().decode(kv)?;
            entries.push(entry(storage, kv.key.clone(), object));
        }
        match (response.more, response.kvs.last()) {
            (true, Some(last)) => start = format!("{}\0", last.key),
            _ => break,
        }
    }
    let revision = pinned.unwrap_or_default();
    let stats = &cache.config.stats;
    {
        let mut core = cache.core.write();
        core.state.replace(entries, revision);
        record_sizes(stats, &core.state);
    }
    CacheStats::add(&stats.initializations, 1);
    cache.revision.send_replace(Some(revision));
    Ok(revision)
}

fn entry<K: Object>(storage: &Storage<K>, key: String, object: K) -> Entry<K> {
    let (labels, fields) = storage.attributes(&object);
    Entry {
        key,
        object: Shared::new(object),
        labels,
        fields,
    }
}

/// Applies the events after `revision` until the cache must re-list (`Err`: why). A watch that
/// ends or fails for any other reason is opened again from the last revision applied.
async fn follow<K: Object>(
    storage: &Storage<K>,
    root: &str,
    cache: &Cache<K>,
    mut revision: u64,
    budget: &mut TimeBudget,
    ticks: &mut tokio::time::Interval,
) -> Result<()> {
    let config = &cache.config;
    loop {
        let request = storage_api::WatchRequest {
            key: root.to_owned(),
            prefix: true,
            start_revision: Some(revision),
            progress_notify: true,
        };
        let mut events = match storage.interface().watch(request).await {
            Ok(events) => events,
            Err(storage_api::Error::Compacted { .. }) => {
                return Err(StorageError::Expired {
                    message: format!("the cache's watch from revision {revision} was compacted"),
                    continue_token: None,
                });
            }
            Err(error) => {
                tracing::warn!(%error, prefix = root, "watch cache watch failed; retrying");
                tokio::time::sleep(config.retry_delay).await;
                continue;
            }
        };
        loop {
            let first = tokio::select! {
                item = events.next() => item,
                _ = ticks.tick() => {
                    send_bookmarks(storage, cache).await;
                    continue;
                }
            };
            // What is ready behind the first event joins its batch: under load one dispatch
            // (and one parcel per watcher group) serves many events.
            let mut batch = Vec::new();
            let mut end = None;
            match first {
                Some(Ok(event)) => batch.push(event),
                other => end = Some(other),
            }
            while end.is_none() && batch.len() < MAX_BATCH {
                match events.next().now_or_never() {
                    Some(Some(Ok(event))) => batch.push(event),
                    Some(other) => end = Some(other),
                    None => break,
                }
            }
            if !batch.is_empty() {
                revision = apply(storage, cache, batch, budget).await?;
            }
            match end {
                None => {}
                Some(Some(Err(storage_api::Error::Compacted { .. }))) => {
                    return Err(StorageError::Expired {
                        message: format!(
                            "the cache's watch after revision {revision} was compacted"
                        ),
                        continue_token: None,
                    });
                }
                Some(Some(Err(error))) => {
                    // A watch the backend ended (the cache fell behind, a lost connection):
                    // resume where it stopped; nothing is lost. A backend that fails at once
                    // again is not hammered.
                    tracing::debug!(%error, prefix = root, "watch cache resumes its watch");
                    if !matches!(error, storage_api::Error::Unavailable { .. }) {
                        tokio::time::sleep(config.retry_delay).await;
                    }
                    break;
                }
                Some(_) => break,
            }
        }
    }
}

/// The most backend events applied and dispatched as one batch.
const MAX_BATCH: usize = 1024;

/// One backend event, decoded.
struct Decoded<K> {
    key: String,
    revision: u64,
    /// The new state; `None` for a delete.
    current: Option<Entry<K>>,
    /// A delete's last state, carrying the delete's revision.
    deleted: Option<Entry<K>>,
}

/// Applies a batch of backend events and hands them to the watchers; returns the cache's
/// revision.
async fn apply<K: Object>(
    storage: &Storage<K>,
    cache: &Cache<K>,
    batch: Vec<storage_api::WatchEvent>,
    budget: &mut TimeBudget,
) -> Result<u64> {
    let stats = &cache.config.stats;
    let mut decoded = Vec::with_capacity(batch.len());
    let mut progress = 0;
    for event in batch {
        match event {
            storage_api::WatchEvent::Progress { revision } => progress = progress.max(revision),
            storage_api::WatchEvent::Put { kv, .. } => {
                let (object, _, _) = storage.codec().decode(&kv)?;
                decoded.push(Decoded {
                    key: kv.key.clone(),
                    revision: kv.mod_revision,
                    current: Some(entry(storage, kv.key, object)),
                    deleted: None,
                });
            }
            storage_api::WatchEvent::Delete { revision, prev, .. } => {
                let (object, _, _) = storage
                    .codec()
                    .decode_at(&prev.key, &prev.value, revision)?;
                decoded.push(Decoded {
                    key: prev.key.clone(),
                    revision,
                    current: None,
                    deleted: Some(entry(storage, prev.key, object)),
                });
            }
        }
    }
    CacheStats::add(&stats.events_received, decoded.len() as u64);
    let now = Instant::now();
    let (due, revision) = {
        let mut core = cache.core.write();
        let recorded: Vec<_> = decoded
            .into_iter()
            .filter_map(|event| {
                core.state
                    .apply(event.key, event.revision, event.current, event.deleted, now)
            })
            .collect();
        // A progress event follows every event it covers.
        core.state.progress(progress);
        let due = core.watchers.deliveries(&recorded);
        record_sizes(stats, &core.state);
        (due, core.state.revision())
    };
    cache.revision.send_replace(Some(revision));
    if !due.is_empty() {
        dispatch(cache, due, budget).await;
    }
    Ok(revision)
}

/// Sends a bookmark at the cache's revision to every watcher whose periodic bookmark is due.
/// A watcher without room skips this one (bookmarks never end a watcher).
async fn send_bookmarks<K: Object>(storage: &Storage<K>, cache: &Cache<K>) {
    let (due, revision) = {
        let mut core = cache.core.write();
        if !core.state.is_ready() {
            return;
        }
        let due = core
            .watchers
            .due_bookmarks(Instant::now(), cache.config.bookmark_interval);
        (due, core.state.revision())
    };
    if due.is_empty() {
        return;
    }
    let mark: Parcel<K> = Arc::from([WatchEvent::Bookmark(Shared::new(bookmark(
        storage.codec(),
        revision,
        false,
    )))]);
    for sender in due {
        let _ = sender.try_send(mark.clone());
    }
}

#[async_trait]
impl<K: Object> ObjectStorage<K> for WatchCache<K> {
    fn new_object(&self) -> K {
        self.storage.codec().new_object()
    }

    async fn get(&self, key: &str, options: &GetOptions) -> Result<Option<K>> {
        match self.get_cached(key, options).await {
            Ok(found) => {
                self.count_read(true);
                Ok(found)
            }
            Err(Miss::Fail(error)) => Err(error),
            Err(Miss::Delegate) => {
                self.count_read(false);
                self.storage.get(key, options).await
            }
        }
    }

    async fn get_list(&self, key: &str, options: &ListOptions) -> Result<ObjectList<K>> {
        let list = self.get_list_shared(key, options).await?;
        Ok(list.map(Shared::into_owned))
    }

    async fn get_list_shared(
        &self,
        key: &str,
        options: &ListOptions,
    ) -> Result<ObjectList<Shared<K>>> {
        match self.list_cached(key, options).await {
            Ok(list) => {
                self.count_read(true);
                Ok(list)
            }
            Err(Miss::Fail(error)) => Err(error),
            Err(Miss::Delegate) => {
                self.count_read(false);
                let list = self.storage.get_list(key, options).await?;
                Ok(list.map(Shared::new))
            }
        }
    }

    async fn watch(&self, key: &str, options: &ListOptions) -> Result<ObjectWatch<K>> {
        let events = self.watch_shared(key, options).await?;
        Ok(Box::pin(events.map(|event| event.map(Shared::into_owned))))
    }

    async fn watch_shared(&self, key: &str, options: &ListOptions) -> Result<SharedWatch<K>> {
        match self.watch_cached(key, options).await? {
            Some(events) => Ok(events),
            None => {
                let events = self.storage.watch(key, options).await?;
                Ok(Box::pin(events.map(|event| event.map(Shared::new))))
            }
        }
    }

    async fn create(&self, key: &str, object: &K, ttl: u64) -> Result<K> {
        self.storage.create(key, object, ttl).await
    }

    async fn delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate: &ValidateFn<'_, K>,
        cached: Option<K>,
    ) -> Result<K> {
        let cached = cached.or_else(|| self.suggestion(key));
        self.storage
            .delete(key, preconditions, validate, cached)
            .await
    }

    async fn guaranteed_update_with(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        update: &mut UpdateFn<'_, K>,
        cached: Option<K>,
    ) -> Result<UpdateOutcome<K, ()>> {
        let cached = cached.or_else(|| self.suggestion(key));
        self.storage
            .guaranteed_update_with(key, ignore_not_found, preconditions, update, cached)
            .await
    }

    async fn count(&self, key: &str) -> Result<i64> {
        self.storage.count(key).await
    }
}
