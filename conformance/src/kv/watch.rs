//! Watch streams: ordering, replay, isolation, previous values, progress, failure modes.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use storage_api::{Error, Precondition, WatchEvent, WatchRequest, WatchStream};

use super::Store;
use crate::runner::Case;
use crate::support::{EVENT_TIMEOUT, b, expect_silence, next_event, next_events, summary};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!("kv::watch::from_now", [], from_now),
        case!("kv::watch::replay_from_revision", [], replay_from_revision),
        case!(
            "kv::watch::replay_hands_over_to_live_without_gap",
            [],
            replay_hand_over
        ),
        case!("kv::watch::prefix_isolation", [], prefix_isolation),
        case!("kv::watch::single_key", [], single_key),
        case!(
            "kv::watch::update_and_delete_carry_previous_value",
            [],
            previous_values
        ),
        case!(
            "kv::watch::start_at_latest_revision",
            [],
            start_at_latest_revision
        ),
        case!(
            "kv::watch::future_start_revision_waits",
            [],
            future_start_revision_waits
        ),
        case!(
            "kv::watch::progress_events",
            [ProgressNotify],
            progress_events
        ),
        case!(
            "kv::watch::progress_on_request",
            [ProgressRequests],
            progress_on_request
        ),
        case!(
            "kv::watch::compacted_start_revision",
            [Compaction],
            compacted_start
        ),
        case!("kv::watch::cancel_on_drop", [], cancel_on_drop),
        case!(
            "kv::watch::slow_consumer_never_sees_a_gap",
            [],
            slow_consumer
        ),
        case!(
            "kv::watch::twenty_watchers_see_identical_sequences",
            [],
            many_watchers
        ),
    ]
}

async fn from_now(store: Store) -> anyhow::Result<()> {
    store.create("/p/before", b("x"), None).await?;
    let mut watch = store.watch(WatchRequest::prefix("/p/")).await?;
    let created = store.create("/p/a", b("1"), None).await?;
    let updated = store
        .update("/p/a", b("2"), Precondition::None, None)
        .await?;
    let deleted = store.delete("/p/a", Precondition::None).await?.revision;
    let events = next_events(&mut watch, 3).await?;
    match &events[..] {
        [
            WatchEvent::Put { kv: c, prev: None },
            WatchEvent::Put {
                kv: u,
                prev: Some(_),
            },
            WatchEvent::Delete { key, revision, .. },
        ] => {
            ensure!(
                c.mod_revision == created && c.value == b("1"),
                "create event {c:?}"
            );
            ensure!(
                u.mod_revision == updated && u.value == b("2"),
                "update event {u:?}"
            );
            ensure!(
                key == "/p/a" && *revision == deleted,
                "delete event {key} @{revision}"
            );
        }
        other => bail!(
            "expected create, update, delete; got {:?}",
            summarize(other)
        ),
    }
    expect_silence(&mut watch, Duration::from_millis(300)).await
}

fn summarize(events: &[WatchEvent]) -> Vec<String> {
    events.iter().map(summary).collect()
}

async fn replay_from_revision(store: Store) -> anyhow::Result<()> {
    let r1 = store.create("/p/a", b("1"), None).await?;
    let r2 = store.create("/p/b", b("1"), None).await?;
    let r3 = store
        .update("/p/a", b("2"), Precondition::None, None)
        .await?;
    let r4 = store.delete("/p/b", Precondition::None).await?.revision;
    let mut watch = store.watch(WatchRequest::prefix("/p/").after(r1)).await?;
    let events = next_events(&mut watch, 3).await?;
    let revisions: Vec<_> = events.iter().map(WatchEvent::revision).collect();
    ensure!(
        revisions == [r2, r3, r4],
        "replay after {r1}: {:?}",
        summarize(&events)
    );
    let r5 = store.create("/p/c", b("live"), None).await?;
    let live = next_event(&mut watch).await?;
    ensure!(
        live.revision() == r5,
        "live event after replay: {}",
        summary(&live)
    );
    let mut all = store
        .watch(WatchRequest::prefix("/p/").after(r1 - 1))
        .await?;
    let first = next_event(&mut all).await?;
    ensure!(
        first.revision() == r1,
        "replay after {} starts with {}",
        r1 - 1,
        summary(&first)
    );
    Ok(())
}

/// A writer keeps writing one key while a watch starts in the past: the watch must see every
/// value in order, once, across the switch from history to live events.
async fn replay_hand_over(store: Store) -> anyhow::Result<()> {
    const WRITES: usize = 300;
    let start = store.create("/p/counter", b("0"), None).await?;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 1..=WRITES {
                store
                    .update("/p/counter", b(&i.to_string()), Precondition::None, None)
                    .await?;
            }
            anyhow::Ok(())
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut watch = store
        .watch(WatchRequest::prefix("/p/").after(start))
        .await?;
    let mut last_revision = start;
    for i in 1..=WRITES {
        let event = next_event(&mut watch)
            .await
            .with_context(|| format!("value {i}"))?;
        let WatchEvent::Put {
            kv,
            prev: Some(prev),
        } = &event
        else {
            bail!("expected an update for value {i}, got {}", summary(&event));
        };
        ensure!(
            kv.value == b(&i.to_string()),
            "expected value {i}, got {}",
            summary(&event)
        );
        ensure!(
            prev.value == b(&(i - 1).to_string()),
            "wrong prev: {}",
            summary(&event)
        );
        ensure!(
            kv.mod_revision > last_revision,
            "revision went backwards at value {i}"
        );
        last_revision = kv.mod_revision;
    }
    writer.await??;
    expect_silence(&mut watch, Duration::from_millis(200)).await
}

async fn prefix_isolation(store: Store) -> anyhow::Result<()> {
    let mut watch = store.watch(WatchRequest::prefix("/a/")).await?;
    for key in ["/ab", "/ab/1", "/a", "/b/1", "/a0"] {
        store.create(key, b("noise"), None).await?;
    }
    let inside = store.create("/a/1", b("signal"), None).await?;
    let event = next_event(&mut watch).await?;
    ensure!(
        event.revision() == inside && event.key() == Some("/a/1"),
        "{}",
        summary(&event)
    );
    expect_silence(&mut watch, Duration::from_millis(200)).await
}

async fn single_key(store: Store) -> anyhow::Result<()> {
    let mut watch = store.watch(WatchRequest::key("/a")).await?;
    for key in ["/a/1", "/ab", "/a0", "/"] {
        if key != "/" {
            store.create(key, b("noise"), None).await?;
        }
    }
    let rev = store.create("/a", b("signal"), None).await?;
    let event = next_event(&mut watch).await?;
    ensure!(
        event.revision() == rev && event.key() == Some("/a"),
        "{}",
        summary(&event)
    );
    expect_silence(&mut watch, Duration::from_millis(200)).await
}

async fn previous_values(store: Store) -> anyhow::Result<()> {
    let created = store.create("/p/a", b("v1"), None).await?;
    let mut watch = store.watch(WatchRequest::prefix("/p/")).await?;
    let updated = store
        .update("/p/a", b("v2"), Precondition::ModRevision(created), None)
        .await?;
    let deleted = store
        .delete("/p/a", Precondition::ModRevision(updated))
        .await?
        .revision;
    match next_event(&mut watch).await? {
        WatchEvent::Put {
            kv,
            prev: Some(prev),
        } => {
            ensure!(
                kv.value == b("v2") && kv.create_revision == created,
                "{kv:?}"
            );
            ensure!(
                prev.value == b("v1") && prev.mod_revision == created,
                "{prev:?}"
            );
        }
        other => bail!("expected an update with prev, got {}", summary(&other)),
    }
    match next_event(&mut watch).await? {
        WatchEvent::Delete {
            key,
            revision,
            prev,
        } => {
            ensure!(
                key == "/p/a" && revision == deleted,
                "delete {key} @{revision}"
            );
            ensure!(
                prev.value == b("v2") && prev.mod_revision == updated,
                "{prev:?}"
            );
            ensure!(prev.key == "/p/a", "prev key {:?}", prev.key);
        }
        other => bail!("expected a delete with prev, got {}", summary(&other)),
    }
    Ok(())
}

async fn start_at_latest_revision(store: Store) -> anyhow::Result<()> {
    let now = store.create("/p/a", b("0"), None).await?;
    let start = store
        .update("/p/a", b("1"), Precondition::None, None)
        .await?;
    let mut watch = store
        .watch(WatchRequest::prefix("/p/").after(start))
        .await?;
    let next = store
        .update("/p/a", b("2"), Precondition::None, None)
        .await?;
    let event = next_event(&mut watch).await?;
    ensure!(
        event.revision() == next,
        "after {start} (created {now}): {}",
        summary(&event)
    );
    Ok(())
}

/// A watch may start after a revision the store has not reached; it then delivers only the
/// events above it (Kubernetes watches from a too-new resourceVersion this way).
async fn future_start_revision_waits(store: Store) -> anyhow::Result<()> {
    let current = store.create("/p/a", b("0"), None).await?;
    let start = current + 2;
    let mut watch = store
        .watch(WatchRequest::prefix("/p/").after(start))
        .await?;
    let mut revisions = Vec::new();
    for i in 1..=4 {
        revisions.push(
            store
                .update("/p/a", b(&i.to_string()), Precondition::None, None)
                .await?,
        );
    }
    let expected: Vec<_> = revisions.iter().copied().filter(|r| *r > start).collect();
    let events = next_events(&mut watch, expected.len()).await?;
    let seen: Vec<_> = events.iter().map(WatchEvent::revision).collect();
    ensure!(
        seen == expected,
        "watch after {start}: {:?} (writes at {revisions:?})",
        summarize(&events)
    );
    expect_silence(&mut watch, Duration::from_millis(200)).await
}

async fn progress_events(store: Store) -> anyhow::Result<()> {
    let rev = store.create("/p/a", b("x"), None).await?;
    let mut watch = store
        .watch(WatchRequest::prefix("/p/").with_progress())
        .await?;
    // A write elsewhere moves the store revision; progress must report at least it.
    let elsewhere = store.create("/q/a", b("x"), None).await?;
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let item = tokio::time::timeout_at(deadline, watch.next())
            .await
            .context("no progress event while idle")?;
        match item {
            Some(Ok(WatchEvent::Progress { revision })) if revision >= elsewhere => break,
            Some(Ok(WatchEvent::Progress { revision })) => {
                ensure!(
                    revision >= rev,
                    "progress {revision} below the watch start {rev}"
                )
            }
            other => bail!("idle watch yielded {other:?}"),
        }
    }
    let next = store.create("/p/b", b("x"), None).await?;
    let event = next_event(&mut watch).await?;
    ensure!(
        event.revision() == next,
        "event after progress: {}",
        summary(&event)
    );
    Ok(())
}

/// `request_progress`: a watch that asked for progress reports at least the revision of every
/// write made before the request, and only after delivering every event it wants up to it.
async fn progress_on_request(store: Store) -> anyhow::Result<()> {
    let mut watch = store
        .watch(WatchRequest::prefix("/p/").with_progress())
        .await?;
    let mut written = Vec::new();
    for i in 0..20 {
        written.push(store.create(&format!("/p/{i}"), b("x"), None).await?);
    }
    let elsewhere = store.create("/q/a", b("x"), None).await?;
    store.request_progress().await?;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let item = tokio::time::timeout_at(deadline, watch.next())
            .await
            .context("no progress after a progress request")?;
        match item {
            Some(Ok(WatchEvent::Progress { revision })) => {
                let missing: Vec<_> = written
                    .iter()
                    .filter(|r| **r <= revision && !seen.contains(*r))
                    .collect();
                ensure!(
                    missing.is_empty(),
                    "progress {revision} came before the events at {missing:?}"
                );
                if revision >= elsewhere {
                    return Ok(());
                }
            }
            Some(Ok(event)) => seen.push(event.revision()),
            other => bail!("watch yielded {other:?}"),
        }
    }
}

async fn compacted_start(store: Store) -> anyhow::Result<()> {
    let r1 = store.create("/p/a", b("1"), None).await?;
    store
        .update("/p/a", b("2"), Precondition::None, None)
        .await?;
    let r3 = store
        .update("/p/a", b("3"), Precondition::None, None)
        .await?;
    store.compact(r3).await?;
    let result: Result<(), Error> = match store.watch(WatchRequest::prefix("/p/").after(r1)).await {
        Err(error) => Err(error),
        Ok(mut stream) => match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Err(error))) => Err(error),
            other => bail!("watch from compacted {r1} must fail, got {other:?}"),
        },
    };
    ensure!(
        matches!(result, Err(Error::Compacted { .. })),
        "expected Compacted, got {result:?}"
    );
    // Exactly at the compaction revision still works.
    let mut watch = store.watch(WatchRequest::prefix("/p/").after(r3)).await?;
    let r4 = store
        .update("/p/a", b("4"), Precondition::None, None)
        .await?;
    let event = next_event(&mut watch).await?;
    ensure!(
        event.revision() == r4,
        "watch from the compaction revision: {}",
        summary(&event)
    );
    Ok(())
}

async fn cancel_on_drop(store: Store) -> anyhow::Result<()> {
    for _ in 0..50 {
        let watch = store.watch(WatchRequest::prefix("/p/")).await?;
        drop(watch);
    }
    // Dropped watchers must neither block writers nor fill up: many writes still go through.
    for i in 0..2000 {
        put_value(&store, &format!("/p/{}", i % 10), &i.to_string()).await?;
    }
    let mut watch = store.watch(WatchRequest::prefix("/p/")).await?;
    let rev = put_value(&store, "/p/x", "x").await?;
    let event = next_event(&mut watch).await?;
    ensure!(
        event.revision() == rev,
        "fresh watch after drops: {}",
        summary(&event)
    );
    Ok(())
}

/// A watcher that reads nothing while many events commit must, when it reads, see a gapless,
/// in-order prefix of them, possibly ending with one terminal error; never a skipped event.
async fn slow_consumer(store: Store) -> anyhow::Result<()> {
    const WRITES: usize = 5000;
    let start = store.create("/p/k", b("0"), None).await?;
    let mut watch = store
        .watch(WatchRequest::prefix("/p/").after(start))
        .await?;
    for i in 1..=WRITES {
        store
            .update("/p/k", b(&i.to_string()), Precondition::None, None)
            .await?;
    }
    let mut expected = 1;
    loop {
        let item = tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await;
        match item {
            Err(_) if expected > WRITES => return Ok(()),
            Err(_) => bail!("watch went silent after value {} of {WRITES}", expected - 1),
            Ok(None) => bail!("watch ended without an error after value {}", expected - 1),
            Ok(Some(Err(Error::Unavailable { .. }))) => return Ok(()),
            Ok(Some(Err(other))) => bail!("a slow watcher must end with Unavailable: {other}"),
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => {}
            Ok(Some(Ok(event))) => {
                let WatchEvent::Put { kv, .. } = &event else {
                    bail!("unexpected {}", summary(&event));
                };
                ensure!(
                    kv.value == b(&expected.to_string()),
                    "gap: expected value {expected}, got {}",
                    summary(&event)
                );
                expected += 1;
            }
        }
    }
}

async fn many_watchers(store: Store) -> anyhow::Result<()> {
    const WATCHERS: usize = 20;
    const WRITES: usize = 200;
    let mut watches: Vec<WatchStream> = Vec::new();
    for _ in 0..WATCHERS {
        watches.push(store.watch(WatchRequest::prefix("/p/")).await?);
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..WRITES / 4 {
                    put_value(&store, &format!("/p/{w}/{}", i % 5), &format!("{w}-{i}")).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let readers: Vec<_> = watches
        .into_iter()
        .map(|mut watch| {
            tokio::spawn(async move {
                let events = next_events(&mut watch, WRITES).await?;
                anyhow::Ok(events.iter().map(summary).collect::<Vec<_>>())
            })
        })
        .collect();
    let mut sequences = Vec::new();
    for reader in readers {
        sequences.push(reader.await??);
    }
    for (i, sequence) in sequences.iter().enumerate().skip(1) {
        ensure!(
            sequence == &sequences[0],
            "watcher {i} saw a different sequence than watcher 0"
        );
    }
    Ok(())
}

/// Create-or-update, for cases that only need "some write".
pub(crate) async fn put_value(store: &Store, key: &str, value: &str) -> storage_api::Result<u64> {
    use storage_api::InterfaceExt;
    store.put(key, b(value), None).await
}
