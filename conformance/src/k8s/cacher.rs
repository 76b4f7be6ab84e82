//! Cases from upstream's cacher tests (`pkg/storage/cacher/cacher_whitebox_test.go`), which
//! run against the watch cache only. Upstream feeds its `watchCache` directly; here the writes
//! go through the store, and the cache learns them from its one backend watch, as it does in
//! a server.
//!
//! - `TestCachingDeleteEvents`: watchers with label selectors see an object leave their
//!   selection as DELETED, carrying the object as it was before, at the revision of the
//!   write that took it out.
//! - `TestCachingObjects`: every watcher of an event gets the same object, one shared value
//!   (upstream's `CacheableObject`) whose encodings are made once for all of them.
//! - `TestDispatchEventWillNotBeBlockedByTimedOutWatcher`: a watcher that never reads does
//!   not hold back one that does.

use anyhow::{bail, ensure};
use apimachinery::selector::{LabelSelector, SelectionPredicate};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use object_storage::{ListOptions, Shared, WatchCacheConfig, WatchEvent};

use super::watch::{EVENT_WAIT, describe, expect_event, next_event, put, rv_of};
use super::{Pods, Store, pod, pod_key, pods};
use crate::runner::Case;

/// Why these cases skip `Storage`: upstream runs them against its cacher only.
const CACHER_ONLY: &str = "a test of upstream's cacher (cacher_whitebox_test.go)";

pub(super) fn cases() -> Vec<Case> {
    let mut cases = vec![
        case!(
            "k8s::cacher::caching_delete_events",
            [],
            caching_delete_events
        )
        .only_for_watch_cache(CACHER_ONLY),
        case!(
            "k8s::cacher::dispatch_not_blocked_by_a_watcher_that_never_reads",
            [],
            dispatch_not_blocked
        )
        .only_for_watch_cache(CACHER_ONLY),
    ];
    for watchers in [1, 3] {
        cases.push(
            Case::new(
                format!("k8s::cacher::caching_objects::watchers_{watchers}"),
                &[],
                move |store| caching_objects(store, watchers),
            )
            .only_for_watch_cache(CACHER_ONLY),
        );
    }
    cases
}

/// The resourceVersion of a consistent list of every pod.
async fn current_rv(storage: &Pods) -> anyhow::Result<String> {
    let list = storage.get_list("/pods", &super::recursive("")).await?;
    Ok(list.resource_version.to_string())
}

/// Watch options from `resource_version` under a label selector (`""`: everything).
fn selected(resource_version: &str, selector: &str) -> anyhow::Result<ListOptions> {
    let label = if selector.is_empty() {
        LabelSelector::everything()
    } else {
        LabelSelector::parse(selector)?
    };
    Ok(ListOptions {
        resource_version: resource_version.to_owned(),
        predicate: SelectionPredicate {
            label,
            ..SelectionPredicate::default()
        },
        recursive: true,
        ..ListOptions::default()
    })
}

fn labelled(labels: &[&str]) -> Pod {
    let mut object = pod("ns", "pod");
    object.metadata.labels = Some(
        labels
            .iter()
            .map(|label| ((*label).to_owned(), "true".to_owned()))
            .collect(),
    );
    object
}

/// `pod` as an earlier event carried it, at `resource_version`.
fn at(pod: &Pod, resource_version: &str) -> Pod {
    let mut pod = pod.clone();
    pod.metadata.resource_version = Some(resource_version.to_owned());
    pod
}

/// `TestCachingDeleteEvents`: the pod goes from labels foo and bar, to foo, to none, and is
/// deleted, under three watchers (everything, `foo=true`, `bar=true`).
async fn caching_delete_events(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let start = current_rv(&storage).await?;
    let mut all = storage.watch("/pods/ns", &selected(&start, "")?).await?;
    let mut foo_watch = storage
        .watch("/pods/ns", &selected(&start, "foo=true")?)
        .await?;
    let mut bar_watch = storage
        .watch("/pods/ns", &selected(&start, "bar=true")?)
        .await?;
    let key = pod_key(&labelled(&[]));
    let pod1 = storage.create(&key, &labelled(&["foo", "bar"]), 0).await?;
    let pod2 = put(&storage, &key, &labelled(&["foo"])).await?;
    let pod3 = put(&storage, &key, &labelled(&[])).await?;
    let deleted = storage.delete(&key, None, |_| Ok(()), None).await?;
    // The DELETED event of a delete carries the last state at the delete's revision.
    let pod4 = at(&pod3, &rv_of(&deleted));
    ensure!(
        pod4 == deleted,
        "the delete returned {deleted:?}, not the last state {pod4:?}"
    );

    for (watch, expected, name) in [
        (
            &mut all,
            vec![
                WatchEvent::Added(pod1.clone()),
                WatchEvent::Modified(pod2.clone()),
                WatchEvent::Modified(pod3.clone()),
                WatchEvent::Deleted(pod4.clone()),
            ],
            "everything",
        ),
        (
            &mut foo_watch,
            vec![
                WatchEvent::Added(pod1.clone()),
                WatchEvent::Modified(pod2.clone()),
                WatchEvent::Deleted(at(&pod2, &rv_of(&pod3))),
            ],
            "foo=true",
        ),
        (
            &mut bar_watch,
            vec![
                WatchEvent::Added(pod1.clone()),
                WatchEvent::Deleted(at(&pod1, &rv_of(&pod2))),
            ],
            "bar=true",
        ),
    ] {
        for (index, event) in expected.iter().enumerate() {
            expect_event(watch, event, &format!("the {name} watcher, event {index}")).await?;
        }
    }
    Ok(())
}

/// `TestCachingObjects`: `watchers` watchers of a create, an update and a delete get equal
/// events, and each event's object is one shared value (so its encodings are made once).
async fn caching_objects(store: Store, watchers: usize) -> anyhow::Result<()> {
    let storage = pods(&store);
    let start = current_rv(&storage).await?;
    let mut watches = Vec::new();
    for _ in 0..watchers {
        watches.push(
            storage
                .watch_shared("/pods/ns", &selected(&start, "")?)
                .await?,
        );
    }
    let key = pod_key(&labelled(&[]));
    let created = storage.create(&key, &labelled(&[]), 0).await?;
    let updated = put(&storage, &key, &labelled(&["foo"])).await?;
    let deleted = storage.delete(&key, None, |_| Ok(()), None).await?;
    let expected = [
        WatchEvent::Added(created),
        WatchEvent::Modified(updated),
        WatchEvent::Deleted(deleted),
    ];
    let mut first: Vec<Shared<Pod>> = Vec::new();
    for (watcher, watch) in watches.iter_mut().enumerate() {
        for (index, expected) in expected.iter().enumerate() {
            let what = format!("watcher {watcher}, event {index}");
            let event = match tokio::time::timeout(EVENT_WAIT, watch.next()).await {
                Err(_) => bail!("{what}: no event within {EVENT_WAIT:?}"),
                Ok(None) => bail!("{what}: the watch ended"),
                Ok(Some(event)) => event,
            };
            let actual = event.clone().map(|object| (*object).clone());
            ensure!(
                &actual == expected,
                "{what}: expected {}, got {}",
                describe(expected),
                describe(&actual)
            );
            let (WatchEvent::Added(object)
            | WatchEvent::Modified(object)
            | WatchEvent::Deleted(object)) = event
            else {
                bail!("{what}: not an object event");
            };
            match first.get(index) {
                None => first.push(object),
                Some(shared) => ensure!(
                    Shared::ptr_eq(shared, &object),
                    "{what}: an equal object, but not the one the first watcher got"
                ),
            }
        }
    }
    Ok(())
}

/// `TestDispatchEventWillNotBeBlockedByTimedOutWatcher`: with one watcher that never reads,
/// another gets each of 50 creates. The cache here buffers 4 batches per watcher, so the one
/// that never reads fills its buffer, is closed once the dispatch budget is spent on it, and
/// its watch ends instead of holding back the other (upstream checks the reader only).
async fn dispatch_not_blocked(store: Store) -> anyhow::Result<()> {
    const PODS: usize = 50;
    let config = WatchCacheConfig {
        watcher_buffer: 4,
        ..Pods::cache_config()
    };
    let storage = Pods::with_cache_config(pods(&store).storage().clone(), store.layer, config);
    let options = ListOptions {
        resource_version: current_rv(&storage).await?,
        recursive: true,
        ..ListOptions::default()
    };
    let mut stuck = storage.watch("/pods/ns", &options).await?;
    let mut reader = storage.watch("/pods/ns", &options).await?;
    // In lockstep, so that every event is a batch of its own and the stuck watcher's buffer
    // fills after 4 of them.
    for i in 0..PODS {
        let object = pod("ns", &format!("pod-{}", 1000 + i));
        storage.create(&pod_key(&object), &object, 0).await?;
        match next_event(&mut reader, "the reading watcher").await? {
            WatchEvent::Added(added) if added.metadata.name == object.metadata.name => {}
            other => bail!("the reader got {} after {i} events", describe(&other)),
        }
    }
    // The one that never read was closed: what it had buffered, then the end.
    let mut buffered = 0;
    loop {
        match tokio::time::timeout(EVENT_WAIT, stuck.next()).await {
            Err(_) => bail!("the watcher that never read is still open after {EVENT_WAIT:?}"),
            Ok(None) => break,
            Ok(Some(WatchEvent::Added(_))) => buffered += 1,
            Ok(Some(other)) => bail!("the stuck watcher got {}", describe(&other)),
        }
    }
    ensure!(
        buffered < PODS,
        "the watcher that never read got all {PODS} events: it was never behind"
    );
    ensure!(
        storage.watchers_closed_slow() == Some(1),
        "closed for slowness: {:?}",
        storage.watchers_closed_slow()
    );
    Ok(())
}
