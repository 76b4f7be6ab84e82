//! Initial events and bookmarks (`watcher_tests.go`): `RunTestWatchDispatchBookmarkEvents`
//! (2 rows), `RunSendInitialEventsBackwardCompatibility`, `RunWatchSemantics` (18 rows),
//! `RunWatchSemanticInitialEventsExtended` and `RunWatchListMatchSingle`.
//!
//! Not ported: `RunTestOptionalWatchBookmarksWithCorrectResourceVersion`, which upstream runs
//! only against the watch cache: it needs periodic bookmarks to watchers that allow them, and
//! `Storage`, like etcd3, sends no bookmark apart from the initial-events-end one (and progress
//! notifications, which `RunOptionalTestProgressNotify` covers).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure};
use apimachinery::selector::{FieldSelector, SelectionPredicate};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use object_storage::{
    INITIAL_EVENTS_END_ANNOTATION, ListOptions, ResourceVersionMatch, WatchEvent,
};

use super::watch::{
    PodWatch, QUIET, QUIET_IGNORING_BOOKMARKS, describe, expect_event, expect_silence, from_rv,
    next_event, rv_of,
};
use super::{Pods, Store};
use super::{increase_rv, pod, pod_key, pods, propagate, recursive, rv};
use crate::runner::Case;

pub(super) fn cases() -> Vec<Case> {
    let mut cases = vec![
        case!(
            "k8s::watch::send_initial_events_backward_compatibility",
            [],
            send_initial_events_backward_compatibility
        ),
        case!(
            "k8s::watch::semantic_initial_events_extended",
            [],
            initial_events_extended
        ),
        case!("k8s::watch::list_match_single", [], watch_list_match_single),
        case!(
            "k8s::watch::optional_bookmarks_with_correct_resource_version",
            [],
            bookmarks_with_correct_resource_version
        )
        .only_for_watch_cache(
            "periodic bookmarks are the watch cache's (upstream runs it against its cacher \
             only: RunTestOptionalWatchBookmarksWithCorrectResourceVersion)",
        ),
    ];
    for (index, allow) in [false, true].into_iter().enumerate() {
        cases.push(Case::new(
            format!("k8s::watch::dispatch_bookmark_events::allow_watch_bookmarks_{allow}"),
            &[],
            move |store| dispatch_bookmark_events(store, index, allow),
        ));
    }
    for (index, row) in SEMANTICS.into_iter().enumerate() {
        cases.push(Case::new(
            format!("k8s::watch::semantics::{}", row.name),
            &[],
            move |store| watch_semantics(store, index, row),
        ));
    }
    cases
}

/// `makePod`: a pod named `pod-<suffix>` in `namespace`.
fn make_pod(namespace: &str, suffix: &str) -> Pod {
    pod(namespace, &format!("pod-{suffix}"))
}

/// The initial-events-end bookmark: an empty Pod with the annotation and `resource_version`.
fn end_bookmark(resource_version: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            resource_version: Some(resource_version.to_owned()),
            annotations: Some(BTreeMap::from([(
                INITIAL_EVENTS_END_ANNOTATION.to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

/// `testCheckResultWithIgnoreFunc` ignoring bookmarks: the next non-bookmark event is
/// `expected`.
async fn expect_event_ignoring_bookmarks(
    watch: &mut PodWatch,
    expected: &WatchEvent<Pod>,
    what: &str,
) -> anyhow::Result<()> {
    loop {
        let actual = next_event(watch, what).await?;
        if matches!(actual, WatchEvent::Bookmark(_)) {
            continue;
        }
        ensure!(
            &actual == expected,
            "{what}: unexpected event\nexpected: {}\nactual:   {}",
            describe(expected),
            describe(&actual)
        );
        return Ok(());
    }
}

/// `RunTestWatchDispatchBookmarkEvents` with `expectedWatchBookmarks = false`, as etcd3 runs
/// it: `Storage` sends no periodic bookmarks. A write elsewhere must not reach the watch of
/// `foo`: without bookmarks nothing at all arrives within upstream's 3 s; with bookmarks
/// allowed, anything that arrives must be a BOOKMARK.
async fn dispatch_bookmark_events(store: Store, index: usize, allow: bool) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, stored) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let mut options = from_rv(&rv_of(&stored));
    options.predicate.allow_watch_bookmarks = allow;
    let mut watch = storage.watch(&key, &options).await?;

    let other = pod(&format!("other-ns-{index}"), "foo");
    storage.create(&pod_key(&other), &other, 0).await?;

    match tokio::time::timeout(Duration::from_secs(3), watch.next()).await {
        Err(_) => Ok(()),
        Ok(Some(WatchEvent::Bookmark(_))) if allow => Ok(()),
        Ok(Some(event)) => bail!(
            "allowWatchBookmarks={allow}: unexpected event on the watch of {key}: {}",
            describe(&event)
        ),
        Ok(None) => bail!("the watch of {key} ended"),
    }
}

/// `RunTestOptionalWatchBookmarksWithCorrectResourceVersion`: while 100 pods are created 10 ms
/// apart, a watch that allows bookmarks gets at least one within 3 s (upstream's context
/// timeout); a bookmark is never older than the event before it, and an event is always
/// newer than the bookmark before it.
async fn bookmarks_with_correct_resource_version(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let start = storage
        .get_list("/pods", &recursive(""))
        .await?
        .resource_version;
    let mut options = recursive(&start.to_string());
    options.predicate.allow_watch_bookmarks = true;
    let mut watch = storage.watch("/pods/test-ns", &options).await?;
    let writer = {
        let storage = storage.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                let object = pod("test-ns", &format!("foo-{i}"));
                storage.create(&pod_key(&object), &object, 0).await?;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            anyhow::Ok(())
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut bookmarks = 0;
    let mut last = 0;
    while let Ok(next) = tokio::time::timeout_at(deadline, watch.next()).await {
        let Some(event) = next else {
            bail!("the watch ended before its 3 s were over");
        };
        let (bookmark, object) = match &event {
            WatchEvent::Bookmark(object) => (true, object),
            WatchEvent::Added(object)
            | WatchEvent::Modified(object)
            | WatchEvent::Deleted(object) => (false, object),
            WatchEvent::Error(error) => bail!("watch failed: {error}"),
        };
        let revision = rv(object);
        if bookmark {
            bookmarks += 1;
            ensure!(
                revision >= last,
                "bookmark at {revision} after an event at {last}"
            );
        } else {
            ensure!(
                revision > last,
                "event at {revision} not newer than the {last} before it"
            );
        }
        last = revision;
    }
    writer.await??;
    ensure!(bookmarks > 0, "no bookmark within 3 s");
    Ok(())
}

/// `RunSendInitialEventsBackwardCompatibility`: sendInitialEvents=true with no
/// resourceVersion and no bookmarks establishes a watch (no error, no ERROR event).
async fn send_initial_events_backward_compatibility(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let options = ListOptions {
        send_initial_events: Some(true),
        ..ListOptions::default()
    };
    let mut watch = storage.watch("/pods", &options).await?;
    expect_silence(
        &mut watch,
        QUIET,
        false,
        "watch with sendInitialEvents=true",
    )
    .await
}

/// How a `RunWatchSemantics` row picks its resourceVersion.
#[derive(Clone, Copy, Debug)]
enum Rv {
    Unset,
    Zero,
    /// Upstream's `"1"`: older than every pod of the row (see [`oldest_rv`]).
    One,
    /// `GetCurrentResourceVersion` after the initial pods.
    Current,
}

#[derive(Clone, Copy, Debug)]
struct SemanticsRow {
    name: &'static str,
    allow_watch_bookmarks: bool,
    send_initial_events: Option<bool>,
    resource_version: Rv,
    /// The 3 initial pods arrive as ADDED first.
    initial_events: bool,
    /// Then the initial-events-end bookmark.
    end_bookmark: bool,
}

const fn semantics(
    name: &'static str,
    allow_watch_bookmarks: bool,
    send_initial_events: Option<bool>,
    resource_version: Rv,
    initial_events: bool,
    end_bookmark: bool,
) -> SemanticsRow {
    SemanticsRow {
        name,
        allow_watch_bookmarks,
        send_initial_events,
        resource_version,
        initial_events,
        end_bookmark,
    }
}

/// `RunWatchSemantics`' 18 scenarios: (bookmarks, sendInitialEvents, RV) -> expectations.
const SEMANTICS: [SemanticsRow; 18] = [
    semantics(
        "rv_unset_bookmarks_initial_events",
        true,
        Some(true),
        Rv::Unset,
        true,
        true,
    ),
    semantics(
        "rv_unset_bookmarks_no_initial_events",
        true,
        Some(false),
        Rv::Unset,
        false,
        false,
    ),
    semantics(
        "rv_unset_no_bookmarks_no_initial_events",
        false,
        Some(false),
        Rv::Unset,
        false,
        false,
    ),
    semantics(
        "rv_unset_no_bookmarks_initial_events",
        false,
        Some(true),
        Rv::Unset,
        true,
        false,
    ),
    semantics(
        "rv_0_bookmarks_initial_events",
        true,
        Some(true),
        Rv::Zero,
        true,
        true,
    ),
    semantics(
        "rv_0_bookmarks_no_initial_events",
        true,
        Some(false),
        Rv::Zero,
        false,
        false,
    ),
    semantics(
        "rv_0_no_bookmarks_no_initial_events",
        false,
        Some(false),
        Rv::Zero,
        false,
        false,
    ),
    semantics(
        "rv_0_no_bookmarks_initial_events",
        false,
        Some(true),
        Rv::Zero,
        true,
        false,
    ),
    semantics(
        "rv_1_bookmarks_initial_events",
        true,
        Some(true),
        Rv::One,
        true,
        true,
    ),
    semantics(
        "rv_1_bookmarks_no_initial_events",
        true,
        Some(false),
        Rv::One,
        true,
        false,
    ),
    semantics(
        "rv_1_no_bookmarks_no_initial_events",
        false,
        Some(false),
        Rv::One,
        true,
        false,
    ),
    semantics(
        "rv_1_no_bookmarks_initial_events",
        false,
        Some(true),
        Rv::One,
        true,
        false,
    ),
    semantics(
        "rv_current_bookmarks_initial_events",
        true,
        Some(true),
        Rv::Current,
        true,
        true,
    ),
    semantics(
        "rv_current_bookmarks_no_initial_events",
        true,
        Some(false),
        Rv::Current,
        false,
        false,
    ),
    semantics(
        "rv_current_no_bookmarks_no_initial_events",
        false,
        Some(false),
        Rv::Current,
        false,
        false,
    ),
    semantics(
        "rv_current_no_bookmarks_initial_events",
        false,
        Some(true),
        Rv::Current,
        true,
        false,
    ),
    semantics("legacy_rv_0", false, None, Rv::Zero, true, false),
    semantics("legacy_rv_unset", false, None, Rv::Unset, true, false),
];

/// Upstream's resourceVersion `"1"` on a fresh etcd, where revision 1 is the empty cluster:
/// a revision older than everything the case writes, whose history is still there. Our stores
/// may start at revision 0 (then one unrelated write makes revision 1 the empty state, as on
/// etcd) or, when shared, already have compacted history (then the oldest revision still
/// readable stands in for 1; nothing under the row's namespace is older). A watch cache
/// serves history from the revision of its first list on, as upstream's cacher, which on a
/// fresh etcd lists at revision 1.
async fn oldest_rv(store: &Store, storage: &Pods) -> anyhow::Result<String> {
    if store.current_revision().await? == 0 {
        increase_rv(store).await?;
    }
    let compacted = store.compacted_revision().await?;
    let cached_from = storage.cache_listed_at().unwrap_or(0);
    Ok(compacted.max(cached_from).max(1).to_string())
}

/// `RunWatchSemantics`: one scenario, in namespace `ns-<index>`.
async fn watch_semantics(store: Store, index: usize, row: SemanticsRow) -> anyhow::Result<()> {
    let storage = pods(&store);
    let namespace = format!("ns-{index}");
    let oldest = match row.resource_version {
        Rv::One => Some(oldest_rv(&store, &storage).await?),
        _ => None,
    };

    let mut created = Vec::new();
    for suffix in ["1", "2", "3"] {
        let object = make_pod(&namespace, suffix);
        created.push(storage.create(&pod_key(&object), &object, 0).await?);
    }
    let last_initial = created.last().map(rv_of).unwrap_or_default();
    let listed = storage
        .get_list(
            &format!("/pods/{namespace}"),
            &ListOptions {
                resource_version: last_initial.clone(),
                resource_version_match: ResourceVersionMatch::NotOlderThan,
                recursive: true,
                ..ListOptions::default()
            },
        )
        .await?;
    ensure!(
        listed.items.len() == created.len(),
        "the sync list returned {} pods, expected {}",
        listed.items.len(),
        created.len()
    );

    let resource_version = match row.resource_version {
        Rv::Unset => String::new(),
        Rv::Zero => "0".to_owned(),
        Rv::One => oldest.unwrap_or_else(|| "1".to_owned()),
        Rv::Current => storage.current_resource_version().await?.to_string(),
    };
    let mut options = ListOptions {
        resource_version: resource_version.clone(),
        recursive: true,
        send_initial_events: row.send_initial_events,
        ..ListOptions::default()
    };
    options.predicate.allow_watch_bookmarks = row.allow_watch_bookmarks;
    let mut watch = storage
        .watch(&format!("/pods/{namespace}"), &options)
        .await?;

    if row.initial_events {
        for (i, object) in created.iter().enumerate() {
            expect_event(
                &mut watch,
                &WatchEvent::Added(object.clone()),
                &format!("initial event {i} (resourceVersion {resource_version:?})"),
            )
            .await?;
        }
    }
    if row.end_bookmark {
        let event = next_event(&mut watch, "the initial-events-end bookmark").await?;
        let WatchEvent::Bookmark(bookmark) = &event else {
            bail!(
                "expected the initial-events-end BOOKMARK, got {}",
                describe(&event)
            );
        };
        ensure!(
            rv(bookmark) >= rv(&created[created.len() - 1]),
            "the initial-events-end bookmark's resourceVersion {} is older than the last \
             initial pod's {last_initial}",
            rv(bookmark)
        );
        let expected = end_bookmark(&rv_of(bookmark));
        ensure!(
            bookmark == &expected,
            "incorrect initial-events-end bookmark\nexpected: {}\nactual:   {}",
            describe(&WatchEvent::Bookmark(expected.clone())),
            describe(&event)
        );
    }

    for suffix in ["4", "5"] {
        let object = make_pod(&namespace, suffix);
        let out = storage.create(&pod_key(&object), &object, 0).await?;
        expect_event_ignoring_bookmarks(
            &mut watch,
            &WatchEvent::Added(out),
            &format!("event for pod-{suffix} created after the watch"),
        )
        .await?;
    }
    expect_silence(
        &mut watch,
        QUIET_IGNORING_BOOKMARKS,
        true,
        "after the last expected event",
    )
    .await
}

/// `RunWatchSemanticInitialEventsExtended`: the initial-events-end bookmark carries the
/// global revision, advanced by a pod in another namespace, not the last listed pod's.
async fn initial_events_extended(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let mut initial = Vec::new();
    for suffix in ["1", "2", "3", "4", "5"] {
        let object = make_pod("ns-foo", suffix);
        initial.push(storage.create(&pod_key(&object), &object, 0).await?);
    }
    let other = make_pod("other-ns-foo", "1");
    let other = storage.create(&pod_key(&other), &other, 0).await?;

    let mut options = ListOptions {
        recursive: true,
        send_initial_events: Some(true),
        ..ListOptions::default()
    };
    options.predicate.allow_watch_bookmarks = true;
    let mut watch = storage.watch("/pods/ns-foo", &options).await?;
    for (i, object) in initial.into_iter().enumerate() {
        expect_event(
            &mut watch,
            &WatchEvent::Added(object),
            &format!("initial event {i}"),
        )
        .await?;
    }
    expect_event(
        &mut watch,
        &WatchEvent::Bookmark(end_bookmark(&rv_of(&other))),
        "the initial-events-end bookmark must carry the global revision",
    )
    .await?;
    expect_silence(&mut watch, QUIET, false, "after the bookmark").await
}

/// `RunWatchListMatchSingle`: a watch-list with `metadata.name=pod-1` over all pods sends
/// that pod, then the end bookmark at the global revision.
async fn watch_list_match_single(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let first = make_pod("ns-foo", "1");
    let expected = storage.create(&pod_key(&first), &first, 0).await?;
    let mut last = expected.clone();
    for suffix in ["2", "3", "4", "5"] {
        let object = make_pod("ns-foo", suffix);
        last = storage.create(&pod_key(&object), &object, 0).await?;
    }
    let options = ListOptions {
        recursive: true,
        send_initial_events: Some(true),
        predicate: SelectionPredicate {
            field: FieldSelector::parse("metadata.name=pod-1")?,
            allow_watch_bookmarks: true,
            ..SelectionPredicate::default()
        },
        ..ListOptions::default()
    };
    let mut watch = storage.watch("/pods", &options).await?;
    expect_event(&mut watch, &WatchEvent::Added(expected), "the matching pod").await?;
    expect_event(
        &mut watch,
        &WatchEvent::Bookmark(end_bookmark(&rv_of(&last))),
        "the initial-events-end bookmark at the global revision",
    )
    .await?;
    expect_silence(&mut watch, QUIET, false, "after the bookmark").await
}
