//! Behaviour specific to the sled backend, beyond the shared conformance suite.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use anyhow::{Context, ensure};
use backend_sled::{SledOptions, SledStore};
use bytes::Bytes;
use storage_api::{Error, Interface, InterfaceExt};

fn open(dir: &tempfile::TempDir, options: SledOptions) -> anyhow::Result<SledStore> {
    Ok(SledStore::open(dir.path().join("db"), options)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_flushes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(open(&dir, SledOptions::default())?);
    let before = store.stats();
    let writers = 64;
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(&format!("/gc/{i}"), Bytes::from_static(b"v"), None)
                    .await
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.push(task.await??);
    }
    revisions.sort_unstable();
    revisions.dedup();
    ensure!(revisions.len() == writers, "revisions were shared");
    let after = store.stats();
    let writes = after.writes - before.writes;
    let flushes = after.flushes - before.flushes;
    ensure!(writes == writers as u64, "{writes} writes counted");
    // 64 writes submitted at once cannot all arrive one flush apart: group commit batches them.
    ensure!(
        flushes < writes,
        "{flushes} flushes for {writes} concurrent writes: no group commit"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compaction_keeps_min_history() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut options = SledOptions::default();
    options.history = Duration::ZERO;
    options.min_history = 5;
    options.compact_interval = Duration::from_millis(50);
    let store = open(&dir, options)?;
    let mut last = 0;
    for i in 0..20 {
        last = store
            .create(&format!("/bg/{i}"), Bytes::from_static(b"v"), None)
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().compacted < last - 5 {
        ensure!(
            Instant::now() < deadline,
            "background compaction did not run: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = store.stats();
    ensure!(
        stats.compacted == last - 5,
        "compacted to {} with min_history 5 at revision {last}",
        stats.compacted
    );
    match store.get("/bg/0", Some(stats.compacted - 1)).await {
        Err(Error::Compacted { .. }) => {}
        other => anyhow::bail!("read below the compaction revision: {other:?}"),
    }
    let kv = store
        .get("/bg/0", Some(stats.compacted))
        .await?
        .kv
        .context("a live key vanished")?;
    ensure!(kv.value == "v");
    ensure!(store.count("/bg/").await? == 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_store_ends_watches_and_releases_the_directory() -> anyhow::Result<()> {
    use futures::StreamExt;
    let dir = tempfile::tempdir()?;
    let store = open(&dir, SledOptions::default())?;
    let mut watch = store
        .watch(storage_api::WatchRequest::prefix("/w/"))
        .await?;
    drop(store);
    match tokio::time::timeout(Duration::from_secs(5), watch.next()).await? {
        Some(Err(Error::Unavailable { .. })) => {}
        other => anyhow::bail!("a watch of a closed store gave {other:?}"),
    }
    ensure!(
        watch.next().await.is_none(),
        "the watch went on after its error"
    );
    // The forgotten-but-not-dropped stream does not hold the directory lock.
    let reopened = open(&dir, SledOptions::default())?;
    reopened.ready().await?;
    Ok(())
}

/// A store written at layout version 1 (before atomic batches) opens, keeps its data and takes
/// batches: version 1 entries are valid version 2 entries, so the upgrade rewrites the number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_store_is_upgraded_in_place() -> anyhow::Result<()> {
    use storage_api::{BatchWrite, Expect};
    let dir = tempfile::tempdir()?;
    {
        let store = open(&dir, SledOptions::default())?;
        store.create("/u/a", Bytes::from_static(b"a"), None).await?;
    }
    {
        let db = common::open_raw(&dir.path().join("db"))?;
        db.open_tree("meta")?
            .insert(b"schema", &1u64.to_be_bytes()[..])?;
        db.flush()?;
    }
    let store = open(&dir, SledOptions::default())?;
    let a = store
        .get_latest("/u/a")
        .await?
        .context("data written at layout 1")?;
    let rev = store
        .write_batch(vec![
            BatchWrite::Put {
                key: "/u/a".into(),
                value: Bytes::from_static(b"a2"),
                expect: Expect::ModRevision(a.mod_revision),
            },
            BatchWrite::Put {
                key: "/u/b".into(),
                value: Bytes::from_static(b"b"),
                expect: Expect::Absent,
            },
        ])
        .await?;
    let b = store.get_latest("/u/b").await?.context("batch write")?;
    ensure!(
        b.mod_revision == rev,
        "batch revision {rev}, b at {}",
        b.mod_revision
    );
    drop(store);
    let db = common::open_raw(&dir.path().join("db"))?;
    let schema = db
        .open_tree("meta")?
        .get(b"schema")?
        .context("schema version")?;
    ensure!(
        schema.as_ref() == 2u64.to_be_bytes(),
        "schema now {schema:?}"
    );
    Ok(())
}

/// The bytes sled's directory occupies (allocated blocks).
fn disk_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
                    Ok(meta) => meta.blocks() * 512,
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Updating and compacting leaves sled's directory several times larger than its contents;
/// the space check rewrites it into a fresh directory while a watch stays open, and the
/// rewritten store keeps every value, its revision, its compaction point and its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outgrown_directory_is_rewritten_while_serving() -> anyhow::Result<()> {
    use futures::StreamExt;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let mut options = SledOptions::default();
    options.compact_interval = Duration::ZERO;
    options.rewrite_percent = 0;
    let store = open(&dir, options)?;
    let value = Bytes::from(vec![7_u8; 8 * 1024]);
    for i in 0..200 {
        store
            .create(&format!("/rw/{i}"), value.clone(), None)
            .await?;
    }
    let mut last = 0;
    for round in 0..10 {
        for i in 0..200 {
            let value = Bytes::from(vec![round; 8 * 1024]);
            last = store
                .update(
                    &format!("/rw/{i}"),
                    value,
                    storage_api::Precondition::None,
                    None,
                )
                .await?;
        }
    }
    let keep_from = last - 100;
    store.compact(keep_from).await?;
    // Let the compaction steps delete the history, then measure what sled kept.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(store);
    let before = disk_bytes(&path);

    let mut options = SledOptions::default();
    options.compact_interval = Duration::ZERO;
    options.rewrite_percent = 150;
    // One rewrite: the rewritten directory is below this, so no second one races the checks.
    options.rewrite_min_bytes = before / 2;
    options.space_check_interval = Duration::from_millis(100);
    let store = open(&dir, options)?;
    let mut watch = store
        .watch(storage_api::WatchRequest::prefix("/rw/").after(last))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.stats().rewrites == 0 {
        ensure!(Instant::now() < deadline, "no rewrite: {:?}", store.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = disk_bytes(&path);
    ensure!(
        after * 2 < before,
        "the rewrite did not give back space: {before} bytes before, {after} after"
    );
    ensure!(
        !dir.path().join("db.sled-rewrite").exists() && !dir.path().join("db.sled-old").exists()
    );
    let stats = store.stats();
    ensure!(
        stats.revision == last && stats.compacted == keep_from,
        "{stats:?}"
    );
    ensure!(store.count("/rw/").await? == 200);
    let kv = store
        .get("/rw/5", None)
        .await?
        .kv
        .context("a key vanished")?;
    // 200 creates at revisions 1-200, then round r updates /rw/i at 201 + 200r + i.
    ensure!(kv.value == vec![9_u8; 8 * 1024] && kv.mod_revision == 201 + 1800 + 5);
    let old = store
        .get("/rw/199", Some(keep_from))
        .await?
        .kv
        .context("history vanished")?;
    ensure!(old.value == vec![8_u8; 8 * 1024] && old.mod_revision == 201 + 1600 + 199);
    // The retained history replays from the compaction point, in order.
    let mut replay = store
        .watch(storage_api::WatchRequest::prefix("/rw/").after(keep_from))
        .await?;
    for expected in keep_from + 1..=last {
        match tokio::time::timeout(Duration::from_secs(5), replay.next()).await? {
            Some(Ok(event)) => ensure!(event.revision() == expected, "{event:?}"),
            other => anyhow::bail!("the replay gave {other:?} for {expected}"),
        }
    }
    // The watch opened before the rewrite sees a write made after it.
    let revision = store
        .create("/rw/new", Bytes::from_static(b"n"), None)
        .await?;
    match tokio::time::timeout(Duration::from_secs(5), watch.next()).await? {
        Some(Ok(event)) => ensure!(event.revision() == revision, "{event:?}"),
        other => anyhow::bail!("the watch gave {other:?}"),
    }
    // And the rewritten directory reopens.
    drop(store);
    let store = open(&dir, SledOptions::default())?;
    ensure!(store.stats().revision == revision);
    ensure!(store.count("/rw/").await? == 201);
    Ok(())
}
