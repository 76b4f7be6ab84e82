//! The watch family of `watcher_tests.go` (catalog functions 34-54): the single-scenario
//! functions live here with the helpers every watch case shares; the table-driven predicate
//! tests are in `watch_scoped.rs`, the initial-events and bookmark tests in
//! `watch_semantics.rs`.
//!
//! Upstream's helpers map as follows: `testCheckResult` is [`expect_event`] (30 s per event),
//! `testCheckEventType` is [`expect_kind`], `testCheckNoMoreResults*` is [`expect_silence`]
//! (100 ms, 150 ms when bookmarks are ignored) and `w.Stop(); testCheckStop(w)` is [`stop`]:
//! Go's `Stop` closes a channel that must not hold further events; dropping our stream is the
//! stop, so what can be checked is that nothing else is pending.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use apimachinery::status::ApiError;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use object_storage::transformer::PrefixTransformer;
use object_storage::{ListOptions, ObjectWatch, Preconditions, Storage, WatchEvent};
use storage_api::{
    DeleteResponse, GetResponse, Interface, Precondition, RangeRequest, RangeResponse, Revision,
    Ttl, WatchRequest, WatchStream,
};

use super::{
    PREFIX, compaction, expect_equal, increase_rv, pod, pod_attrs, pod_key, pods, propagate,
    recursive, rv,
};
use super::{Pods, Store};
use crate::runner::Case;
use crate::runner::Layer;

/// `wait.ForeverTestTimeout`: how long an expected event may take.
pub(super) const EVENT_WAIT: Duration = Duration::from_secs(30);
/// How long "no more events" is watched for.
pub(super) const QUIET: Duration = Duration::from_millis(100);
/// How long "no more events" is watched for when bookmarks are ignored.
pub(super) const QUIET_IGNORING_BOOKMARKS: Duration = Duration::from_millis(150);

/// A watch of pods.
pub(super) type PodWatch = ObjectWatch<Pod>;

/// Why the cases that plant data the transformer cannot read do not run through the watch
/// cache: the cache's own watch cannot read it either, so the cache re-lists, and its watchers
/// end and get 429 until the data is readable; upstream leaves these out of its cacher tests
/// (`pkg/storage/cacher/cacher_test.go`: `WatchError` is empty, `WatchWithUnsafeDelete` and
/// `WatchErrorIsBlockingFurtherEvents` are not run).
const UNREADABLE_DATA: &str = "a value the transformer cannot read stops the cache's own \
watch (upstream does not run it against the cacher either)";

pub(super) fn cases() -> Vec<Case> {
    let mut cases = vec![
        case!("k8s::watch::from_zero", [Compaction], watch_from_zero),
        case!("k8s::watch::delete_trigger_watch", [], delete_trigger_watch),
        case!("k8s::watch::from_non_zero", [], watch_from_non_zero),
        case!("k8s::watch::delayed_delivery", [], delayed_watch_delivery),
        case!("k8s::watch::error", [], watch_error).not_for_watch_cache(UNREADABLE_DATA),
        case!(
            "k8s::watch::with_unsafe_delete",
            [],
            watch_with_unsafe_delete
        )
        .not_for_watch_cache(UNREADABLE_DATA),
        case!("k8s::watch::context_cancel", [], watch_context_cancel),
        case!("k8s::watch::watcher_timeout", [], watcher_timeout),
        case!(
            "k8s::watch::delete_event_object_has_latest_rv",
            [],
            delete_event_has_latest_rv
        ),
        case!(
            "k8s::watch::initialization_signal",
            [],
            initialization_signal
        ),
        case!(
            "k8s::watch::progress_notify",
            [ProgressNotify],
            progress_notify
        ),
        case!(
            "k8s::watch::error_is_blocking_further_events",
            [],
            error_blocks_further_events
        )
        .not_for_watch_cache(UNREADABLE_DATA),
    ];
    cases.extend(super::watch_scoped::cases());
    cases.extend(super::watch_semantics::cases());
    cases
}

/// The event type's name, as in `watch.EventType`.
pub(super) fn kind(event: &WatchEvent<Pod>) -> &'static str {
    match event {
        WatchEvent::Added(_) => "ADDED",
        WatchEvent::Modified(_) => "MODIFIED",
        WatchEvent::Deleted(_) => "DELETED",
        WatchEvent::Bookmark(_) => "BOOKMARK",
        WatchEvent::Error(_) => "ERROR",
    }
}

/// One line describing an event, for failure messages.
pub(super) fn describe(event: &WatchEvent<Pod>) -> String {
    match event {
        WatchEvent::Added(pod)
        | WatchEvent::Modified(pod)
        | WatchEvent::Deleted(pod)
        | WatchEvent::Bookmark(pod) => format!(
            "{} {}",
            kind(event),
            serde_json::to_string(pod).unwrap_or_default()
        ),
        WatchEvent::Error(error) => {
            format!("ERROR {} {}: {}", error.code, error.reason, error.message)
        }
    }
}

/// The next event, waiting up to [`EVENT_WAIT`]; the end of the stream is a failure.
pub(super) async fn next_event(
    watch: &mut PodWatch,
    what: &str,
) -> anyhow::Result<WatchEvent<Pod>> {
    match tokio::time::timeout(EVENT_WAIT, watch.next()).await {
        Err(_) => bail!("{what}: no event within {EVENT_WAIT:?}"),
        Ok(None) => bail!("{what}: the watch ended without an event"),
        Ok(Some(event)) => Ok(event),
    }
}

/// `testCheckResult`: the next event is exactly `expected`.
pub(super) async fn expect_event(
    watch: &mut PodWatch,
    expected: &WatchEvent<Pod>,
    what: &str,
) -> anyhow::Result<()> {
    let actual = next_event(watch, what).await?;
    ensure!(
        &actual == expected,
        "{what}: unexpected event\nexpected: {}\nactual:   {}",
        describe(expected),
        describe(&actual)
    );
    Ok(())
}

/// `testCheckEventType`: the next event has type `expected` (`"ADDED"`, `"ERROR"`, ...).
pub(super) async fn expect_kind(
    watch: &mut PodWatch,
    expected: &str,
    what: &str,
) -> anyhow::Result<WatchEvent<Pod>> {
    let actual = next_event(watch, what).await?;
    ensure!(
        kind(&actual) == expected,
        "{what}: expected a {expected} event, got {}",
        describe(&actual)
    );
    Ok(actual)
}

/// `TestCheckNoMoreResultsWithIgnoreFunc`: no event (bookmarks aside when `ignore_bookmarks`)
/// arrives within `wait`, and the watch does not end.
pub(super) async fn expect_silence(
    watch: &mut PodWatch,
    wait: Duration,
    ignore_bookmarks: bool,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Err(_) => return Ok(()),
            Ok(None) => bail!("{what}: expected no more events, but the watch ended"),
            Ok(Some(WatchEvent::Bookmark(_))) if ignore_bookmarks => {}
            Ok(Some(event)) => bail!("{what}: expected no more events, got {}", describe(&event)),
        }
    }
}

/// `w.Stop(); testCheckStop(w)`: nothing else is pending, then the watch is dropped.
pub(super) async fn stop(mut watch: PodWatch, what: &str) -> anyhow::Result<()> {
    expect_silence(&mut watch, QUIET, false, what).await?;
    drop(watch);
    Ok(())
}

/// `GuaranteedUpdate(key, ignoreNotFound=true, SimpleUpdate(obj))`: writes `object` at `key`,
/// creating it if missing, and returns it as stored.
pub(super) async fn put(storage: &Pods, key: &str, object: &Pod) -> anyhow::Result<Pod> {
    let object = object.clone();
    storage
        .guaranteed_update(
            key,
            true,
            None,
            move |_, _| Ok((object.clone(), None)),
            None,
        )
        .await
        .with_context(|| format!("GuaranteedUpdate of {key}"))
}

/// Watch options from a resourceVersion (everything, non-recursive).
pub(super) fn from_rv(resource_version: &str) -> ListOptions {
    ListOptions {
        resource_version: resource_version.to_owned(),
        ..Default::default()
    }
}

/// The resourceVersion string of a pod.
pub(super) fn rv_of(pod: &Pod) -> String {
    pod.metadata.resource_version.clone().unwrap_or_default()
}

/// A pod storage whose values pass through `transformer` (`InterfaceWithPrefixTransformer`).
pub(super) fn pods_with_transformer(store: &Store, transformer: &Arc<PrefixTransformer>) -> Pods {
    pods(store).with_transformer(transformer.clone())
}

/// Checks a watch ERROR status.
fn error_of(event: &WatchEvent<Pod>) -> Option<&ApiError> {
    match event {
        WatchEvent::Error(error) => Some(error),
        _ => None,
    }
}

/// `RunTestWatchFromZero`: a watch from "0" starts with the current object as ADDED, also
/// after the history before it was compacted; a watch from a compacted revision fails with
/// 410 Expired.
async fn watch_from_zero(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, stored) = propagate(&storage, &pod("test-ns", "foo")).await?;

    let mut watch = storage.watch(&key, &from_rv("0")).await?;
    expect_event(
        &mut watch,
        &WatchEvent::Added(stored),
        "watch from 0 on the created key",
    )
    .await?;

    let mut annotated = pod("test-ns", "foo");
    annotated.metadata.annotations = Some([("a".to_owned(), "1".to_owned())].into());
    let out = put(&storage, &key, &annotated).await?;
    expect_event(
        &mut watch,
        &WatchEvent::Modified(out.clone()),
        "the first watch after the update",
    )
    .await?;
    drop(watch);

    let mut watch = storage.watch(&key, &from_rv("0")).await?;
    expect_event(
        &mut watch,
        &WatchEvent::Added(out.clone()),
        "a new watch from 0 after the update",
    )
    .await?;
    drop(watch);

    let new_out = put(&storage, &key, &pod("test-ns", "foo")).await?;
    // Upstream's cacher variant of the hook (`compactWatch`) first waits for the cache to
    // reach the revision it compacts to.
    storage.catch_up().await?;
    compaction(&store, rv(&new_out)).await?;

    let mut watch = storage.watch(&key, &from_rv("0")).await?;
    expect_event(
        &mut watch,
        &WatchEvent::Added(new_out),
        "a watch from 0 after compaction",
    )
    .await?;

    // Upstream also tolerates a 500 "PrevKv=nil" here (an etcd quirk, spec 7.12); a clean
    // port reports 410 Expired.
    let mut too_old = storage.watch(&key, &from_rv(&rv_of(&out))).await?;
    let event = next_event(&mut too_old, "a watch from a compacted resourceVersion").await?;
    match error_of(&event) {
        Some(error) if error.code == 410 && error.reason == "Expired" => Ok(()),
        _ => bail!(
            "a watch from compacted resourceVersion {} must fail with 410 Expired, got {}",
            rv(&out),
            describe(&event)
        ),
    }
}

/// `RunTestDeleteTriggerWatch`: deleting the watched key produces DELETED.
async fn delete_trigger_watch(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, stored) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let mut watch = storage.watch(&key, &from_rv(&rv_of(&stored))).await?;
    storage.delete(&key, None, |_| Ok(()), None).await?;
    expect_kind(&mut watch, "DELETED", "watch of a deleted key").await?;
    Ok(())
}

/// `RunTestWatchFromNonZero`: a watch from the stored resourceVersion sees the update.
async fn watch_from_non_zero(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, stored) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let mut watch = storage.watch(&key, &from_rv(&rv_of(&stored))).await?;
    let mut updated = stored.clone();
    updated.metadata.annotations = Some([("version".to_owned(), "2".to_owned())].into());
    let out = put(&storage, &key, &updated).await?;
    expect_event(
        &mut watch,
        &WatchEvent::Modified(out),
        "watch from the stored resourceVersion",
    )
    .await
}

/// `RunTestDelayedWatchDelivery`: 21 creates happen while the consumer reads nothing; the
/// events then arrive in order. Upstream stops the watcher before draining and accepts any
/// prefix of at least 10 events (the cacher closes slow watchers); a dropped stream cannot be
/// drained here, so the consumer drains instead of stopping, and an early end is accepted only
/// as an ERROR after at least 10 events in order.
async fn delayed_watch_delivery(store: Store) -> anyhow::Result<()> {
    const TOTAL: usize = 21;
    let storage = pods(&store);
    let (_, stored) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let mut watch = storage
        .watch("/pods/test-ns", &recursive(&rv_of(&stored)))
        .await?;
    for i in 0..TOTAL {
        let object = pod("test-ns", &format!("foo-{i}"));
        put(&storage, &pod_key(&object), &object).await?;
    }
    let mut watched = 0;
    while watched < TOTAL {
        let event = next_event(&mut watch, &format!("event {watched} of {TOTAL}")).await?;
        match event {
            WatchEvent::Added(object) => {
                let expected = format!("foo-{watched}");
                ensure!(
                    object.metadata.name.as_deref() == Some(expected.as_str()),
                    "unexpected object watched: {:?}, expected {expected}",
                    object.metadata.name
                );
                watched += 1;
            }
            WatchEvent::Error(_) if watched >= 10 => break,
            other => bail!(
                "expected ADDED foo-{watched}, got {} (after {watched} events)",
                describe(&other)
            ),
        }
    }
    Ok(())
}

/// `RunTestWatchError`: when stored data cannot be transformed, the watch's first event is
/// ERROR.
async fn watch_error(store: Store) -> anyhow::Result<()> {
    let transformer = Arc::new(PrefixTransformer::new(b"test!".to_vec()));
    let storage = pods_with_transformer(&store, &transformer);
    let list = storage.get_list("/pods", &recursive("0")).await?;
    let object = pod("test-ns", "foo");
    let key = pod_key(&object);
    put(&storage, &key, &object).await?;

    // Upstream swaps in a transformer that fails every call; a prefix nothing was written
    // with makes every read of existing data fail the same way.
    transformer.set_prefix(b"failing-transformer!".to_vec());
    let mut watch = storage
        .watch(&key, &from_rv(&list.resource_version.to_string()))
        .await?;
    expect_kind(
        &mut watch,
        "ERROR",
        "watch over data the transformer cannot read",
    )
    .await?;
    Ok(())
}

/// `RunTestWatchWithUnsafeDelete`, the part that holds without unsafe deletion.
///
/// Upstream deletes a corrupt object with `IgnoreStoreReadError` (the alpha
/// `AllowUnsafeMalformedObjectDeletion` gate, off by default) and expects the watch to report
/// a `StorageReadError` ERROR "saw a DELETED event, but object data is corrupt". `Storage` has
/// no unsafe deletion, so what is checked is the default: a normal delete of an object whose
/// data cannot be read fails with an internal error, writes nothing, and the watch stays
/// silent.
async fn watch_with_unsafe_delete(store: Store) -> anyhow::Result<()> {
    let transformer = Arc::new(PrefixTransformer::new(b"test!".to_vec()));
    let storage = pods_with_transformer(&store, &transformer);
    let object = pod("test-ns", "foo");
    let key = pod_key(&object);
    storage.create(&key, &object, 0).await?;
    let list = storage.get_list("/pods", &recursive("0")).await?;

    transformer.set_prefix(b"corrupt!".to_vec());
    let mut watch = storage
        .watch(&key, &from_rv(&list.resource_version.to_string()))
        .await?;
    match storage.delete(&key, None, |_| Ok(()), None).await {
        Err(error) if error.is_internal() => {}
        other => bail!("a normal delete of a corrupt object must fail as internal, got {other:?}"),
    }
    expect_silence(
        &mut watch,
        QUIET,
        false,
        "watch after the failed delete of a corrupt object",
    )
    .await
}

/// Counts the backend watches a store has open (streams not yet dropped).
#[derive(Debug)]
struct CountingWatches {
    inner: crate::kv::Store,
    /// Backend watch streams alive now.
    open: Arc<AtomicUsize>,
    /// Backend watch streams ever started.
    started: Arc<AtomicUsize>,
}

/// Decrements the open-watch count when the backend stream is dropped.
struct OpenWatch(Arc<AtomicUsize>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Interface for CountingWatches {
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> storage_api::Result<Revision> {
        self.inner.create(key, value, ttl).await
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> storage_api::Result<Revision> {
        self.inner.update(key, value, precondition, ttl).await
    }
    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
    ) -> storage_api::Result<DeleteResponse> {
        self.inner.delete(key, precondition).await
    }
    async fn get(&self, key: &str, revision: Option<Revision>) -> storage_api::Result<GetResponse> {
        self.inner.get(key, revision).await
    }
    async fn range(&self, request: RangeRequest) -> storage_api::Result<RangeResponse> {
        self.inner.range(request).await
    }
    async fn watch(&self, request: WatchRequest) -> storage_api::Result<WatchStream> {
        let stream = self.inner.watch(request).await?;
        self.open.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        let guard = OpenWatch(self.open.clone());
        Ok(Box::pin(stream.map(move |item| {
            let _alive = &guard;
            item
        })))
    }
    async fn compact(&self, revision: Revision) -> storage_api::Result<()> {
        self.inner.compact(revision).await
    }
    async fn current_revision(&self) -> storage_api::Result<Revision> {
        self.inner.current_revision().await
    }
    async fn compacted_revision(&self) -> storage_api::Result<Revision> {
        self.inner.compacted_revision().await
    }
    async fn ready(&self) -> storage_api::Result<()> {
        self.inner.ready().await
    }

    fn capabilities(&self) -> storage_api::Capabilities {
        self.inner.capabilities()
    }
}

/// `RunTestWatchContextCancel`: a watch whose caller has gone away closes without events.
///
/// Go passes an already-cancelled context; here the caller going away is the watch call being
/// abandoned before it completes, or the stream being dropped. Either way the watch must end
/// without an ERROR and release the backend watch behind it (checked by counting the backend's
/// open watch streams), so a client that disconnects from a quiet key leaks nothing.
async fn watch_context_cancel(store: Store) -> anyhow::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let counting = Store {
        kv: Arc::new(CountingWatches {
            inner: store.kv.clone(),
            open: open.clone(),
            started: started.clone(),
        }),
        layer: store.layer,
    };
    let storage = pods(&counting);
    // A watch cache keeps one backend watch of its own for as long as it lives; what must be
    // released is every watch opened for a client.
    let own = match store.layer {
        Layer::Storage => 0,
        Layer::WatchCache => 1,
    };

    // The call abandoned at its first suspension point (a cancelled context).
    let abandoned = storage
        .watch("/pods/not-existing", &from_rv("0"))
        .now_or_never();
    drop(abandoned);

    // A watch established and then dropped by its consumer.
    let watch = storage.watch("/pods/not-existing", &from_rv("0")).await?;
    drop(watch);

    // Backend watches may be started in the background: give them a moment to appear (the
    // abandoned call may legitimately never start one), then all must be released.
    let settle = Instant::now() + Duration::from_secs(1);
    while started.load(Ordering::SeqCst) < 2 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let still_open = open.load(Ordering::SeqCst);
        if still_open == own {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{still_open} of {} backend watch(es) still open 5s after their consumers went \
             away (expected {own}: the layer's own)",
            started.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The store is unaffected: a new watch from 0 on the missing key is quiet.
    let mut watch = storage.watch("/pods/not-existing", &from_rv("0")).await?;
    expect_silence(&mut watch, QUIET, false, "a watch of a missing key from 0").await?;
    Ok(())
}

/// `RunTestWatcherTimeout`: 50 watchers that never read must not hold up one that does.
async fn watcher_timeout(store: Store) -> anyhow::Result<()> {
    const NON_READING: u32 = 50;
    let storage = pods(&store);
    let list = storage.get_list("/pods", &recursive("")).await?;
    let options = recursive(&list.resource_version.to_string());
    let mut idle = Vec::new();
    for _ in 0..NON_READING {
        idle.push(storage.watch("/pods/test-ns", &options).await?);
    }
    let mut reading = storage.watch("/pods/test-ns", &options).await?;
    let started = Instant::now();
    for i in 0..22 {
        let object = pod("test-ns", &format!("foo-{i}"));
        let out = storage.create(&pod_key(&object), &object, 0).await?;
        expect_event(
            &mut reading,
            &WatchEvent::Added(out),
            &format!("the reading watcher, create {i}"),
        )
        .await?;
    }
    let took = started.elapsed();
    let limit = Duration::from_millis(250) * NON_READING;
    ensure!(
        took <= limit,
        "waiting for events took too long: {took:?} (limit {limit:?})"
    );
    drop(idle);
    Ok(())
}

/// `RunTestWatchDeleteEventObjectHaveLatestRV`: the DELETED event carries exactly what Delete
/// returned, with the deletion's resourceVersion.
async fn delete_event_has_latest_rv(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, stored) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let mut watch = storage.watch(&key, &from_rv(&rv_of(&stored))).await?;
    let deleted = storage
        .delete(&key, Some(&Preconditions::default()), |_| Ok(()), None)
        .await?;
    ensure!(
        rv(&deleted) != rv(&stored),
        "resourceVersion didn't change on deletion: {}",
        rv(&deleted)
    );
    expect_event(
        &mut watch,
        &WatchEvent::Deleted(deleted),
        "DELETED must carry the delete result",
    )
    .await
}

/// `RunTestWatchInitializationSignal`. The API-priority-and-fairness "watch initialized"
/// signal has no equivalent here (no flow control in ctx); what it stands for is that the
/// watch is established promptly. So: within upstream's 5 s, the watch call returns and the
/// first event after it is delivered.
async fn initialization_signal(store: Store) -> anyhow::Result<()> {
    let budget = Duration::from_secs(5);
    tokio::time::timeout(budget, async {
        let storage = pods(&store);
        let (key, stored) = propagate(&storage, &pod("test-ns", "foo")).await?;
        let mut watch = storage.watch(&key, &from_rv(&rv_of(&stored))).await?;
        let mut updated = stored.clone();
        updated.metadata.labels = Some([("initialized".to_owned(), "true".to_owned())].into());
        let out = put(&storage, &key, &updated).await?;
        expect_event(
            &mut watch,
            &WatchEvent::Modified(out),
            "first event after the watch",
        )
        .await
    })
    .await
    .context("the watch was not established within 5s")?
}

/// `RunOptionalTestProgressNotify`: with progress notifications the first event is a
/// BOOKMARK: an empty Pod whose only field is a resourceVersion not older than the create's.
async fn progress_notify(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let input = pod("test-ns", "name");
    let key = pod_key(&input);
    let out = storage.create(&key, &input, 0).await?;
    // etcd (since v3.6.2) sends no progress notification for a watch on a future revision.
    increase_rv(&store).await?;
    let options = ListOptions {
        progress_notify: true,
        ..from_rv(&rv_of(&out))
    };
    let mut watch = storage.watch(&key, &options).await?;
    let event = expect_kind(&mut watch, "BOOKMARK", "watch with progressNotify").await?;
    let WatchEvent::Bookmark(mut bookmark) = event else {
        bail!("expected a BOOKMARK");
    };
    ensure!(
        rv(&bookmark) >= rv(&out),
        "bookmark resourceVersion {} is older than the create's {}",
        rv(&bookmark),
        rv(&out)
    );
    bookmark.metadata.resource_version = None;
    expect_equal(
        "bookmark event should contain an object with no fields set other than resourceVersion",
        &Pod::default(),
        &bookmark,
    )
}

/// `RunWatchErrorIsBlockingFurtherEvents`: once a watch hits unreadable data it emits ERROR
/// and ends; a readable object written afterwards (baz) must never be delivered.
async fn error_blocks_further_events(store: Store) -> anyhow::Result<()> {
    let transformer = Arc::new(PrefixTransformer::new(b"test!".to_vec()));
    let storage = pods_with_transformer(&store, &transformer);
    let foo_created = storage
        .create("/pods/test/foo", &pod("test", "foo"), 0)
        .await?;
    storage
        .create("/pods/test/bar", &pod("test", "bar"), 0)
        .await?;
    transformer.set_prefix(b"other-prefix".to_vec());
    storage
        .create("/pods/test/baz", &pod("test", "baz"), 0)
        .await?;

    let options = recursive(&rv_of(&foo_created));
    let mut watchers = Vec::new();
    for i in 0..10 {
        let storage = storage.clone();
        let options = options.clone();
        watchers.push(tokio::spawn(async move {
            let mut watch = storage.watch("/pods", &options).await?;
            let mut errors = 0;
            loop {
                match tokio::time::timeout(EVENT_WAIT, watch.next()).await {
                    Err(_) => bail!("watch {i}: did not end within {EVENT_WAIT:?} after its error"),
                    Ok(None) => break,
                    Ok(Some(WatchEvent::Error(_))) => errors += 1,
                    Ok(Some(other)) => bail!("watch {i}: unexpected event {}", describe(&other)),
                }
            }
            ensure!(errors > 0, "watch {i}: ended without an ERROR event");
            Ok(())
        }));
    }
    for watcher in watchers {
        watcher.await.context("watcher task")??;
    }
    Ok(())
}

/// Kept for the scoped tables: a `Pods` for cluster-scoped pods (keys `/pods/<name>`).
pub(super) fn cluster_pods(store: &Store) -> Pods {
    Pods::new(
        Storage::new(store.kv.clone(), Arc::new(Pod::default))
            .with_prefix(PREFIX)
            .with_attrs(pod_attrs(false)),
        store.layer,
    )
}
