//! Backend-specific behaviour the shared conformance suite cannot see: files, locks, schema
//! versions, restarts, compaction of the file and group commit.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backend_sqlite::{OpenError, SqliteOptions, SqliteStore, Synchronous, lock_path};
use futures::StreamExt;
use storage_api::{
    Error, Interface, InterfaceExt, Precondition, RangeRequest, WatchEvent, WatchRequest,
};

fn quick() -> SqliteOptions {
    let mut options = SqliteOptions::default();
    options.synchronous = Synchronous::Normal;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_opener_gets_a_clear_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let store = SqliteStore::open(&path, quick())?;
    store.create("/a", "1".into(), None).await?;
    match SqliteStore::open(&path, quick()) {
        Err(OpenError::Locked { path: locked, lock }) => {
            assert_eq!(locked, path);
            assert_eq!(lock, lock_path(&path));
        }
        other => panic!("second open must fail with Locked, got {other:?}"),
    }
    let message = SqliteStore::open(&path, quick()).unwrap_err().to_string();
    assert!(message.contains("already open"), "{message}");
    // Converted for the facade: retryable Unavailable.
    let converted: Error = SqliteStore::open(&path, quick()).unwrap_err().into();
    assert!(
        matches!(converted, Error::Unavailable { .. }),
        "{converted:?}"
    );
    // The first store is unaffected, and the lock goes with it.
    assert_eq!(
        store.get_latest("/a").await?.map(|kv| kv.value),
        Some("1".into())
    );
    drop(store);
    let again = SqliteStore::open(&path, quick())?;
    assert_eq!(
        again.get_latest("/a").await?.map(|kv| kv.value),
        Some("1".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    drop(SqliteStore::open(&path, quick())?);
    {
        let conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "user_version", 99)?;
    }
    match SqliteStore::open(&path, quick()) {
        Err(
            error @ OpenError::UnsupportedSchema {
                found: 99,
                supported,
            },
        ) => {
            assert_eq!(supported, backend_sqlite::SCHEMA_VERSION);
            let message = error.to_string();
            assert!(
                message.contains("99") && message.contains("newer"),
                "{message}"
            );
        }
        other => panic!("expected UnsupportedSchema, got {other:?}"),
    }
    // A foreign SQLite database is refused rather than written into.
    let foreign = dir.path().join("foreign");
    {
        let conn = rusqlite::Connection::open(&foreign)?;
        conn.execute_batch("CREATE TABLE t (x)")?;
    }
    assert!(matches!(
        SqliteStore::open(&foreign, quick()),
        Err(OpenError::NotOurs)
    ));
    // And so is a file that is not a database at all.
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, vec![0x42; 8192])?;
    assert!(matches!(
        SqliteStore::open(&garbage, quick()),
        Err(OpenError::Sqlite(_))
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_survives_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let (created, other) = {
        let store = SqliteStore::open(&path, quick())?;
        let created = store
            .create("/t/short", "x".into(), Some(Duration::from_millis(1500)))
            .await?;
        let other = store
            .create("/t/long", "y".into(), Some(Duration::from_secs(3600)))
            .await?;
        (created, other)
    };
    // Closed while the TTL runs out; the expiry time is in the file.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let store = SqliteStore::open(&path, quick())?;
    let mut watch = store
        .watch(WatchRequest::prefix("/t/").after(other))
        .await?;
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await?
        .expect("watch ended")?;
    match event {
        WatchEvent::Delete {
            key,
            revision,
            prev,
        } => {
            assert_eq!(key, "/t/short");
            assert_eq!(revision, other + 1, "expiry takes the next revision");
            assert_eq!(prev.mod_revision, created);
        }
        other => panic!("expected the expiry delete, got {other:?}"),
    }
    assert!(store.get_latest("/t/short").await?.is_none());
    assert!(store.get_latest("/t/long").await?.is_some());
    assert_eq!(store.stats().expired_keys, 1);
    Ok(())
}

fn file_size(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0)
}

async fn churn(store: &Arc<SqliteStore>, round: usize, updates: usize) -> anyhow::Result<()> {
    let value = bytes::Bytes::from(vec![b'v'; 1024]);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(store);
            let value = value.clone();
            tokio::spawn(async move {
                for i in 0..updates / 8 {
                    let key = format!("/churn/{}", (t * 1000 + i) % 100);
                    store.put(&key, value.clone(), None).await?;
                    // Deletes make tombstones for compaction to remove too.
                    if i % 10 == round % 10 {
                        let _ = store.delete(&key, Precondition::None).await;
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Waits until physical compaction has reached `revision`.
async fn compacted_through(store: &SqliteStore, revision: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.stats().compacted_through < revision {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "compaction did not reach {revision}: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn compaction_caught_up(store: &SqliteStore, min_revisions: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let current = store.current_revision().await?;
        let stats = store.stats();
        if stats.compact_revision + min_revisions * 2 >= current
            && stats.compacted_through == stats.compact_revision
        {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "compaction did not catch up: {stats:?}, current {current}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_file_bounded_under_churn() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let mut options = SqliteOptions::from_query(
        "synchronous=normal&compaction_window=0s&compaction_min_revisions=200&\
         compaction_interval=100ms&compaction_batch=64",
    )?;
    options.readers = 2;
    let store = Arc::new(SqliteStore::open(&path, options)?);
    const UPDATES: usize = 4000;
    churn(&store, 0, UPDATES).await?;
    compaction_caught_up(&store, 200).await?;
    let settled = file_size(&path);
    for round in 1..=4 {
        churn(&store, round, UPDATES).await?;
        compaction_caught_up(&store, 200).await?;
    }
    let after = file_size(&path);
    let stats = store.stats();
    let current = store.current_revision().await?;
    // Without compaction 16,000 more 1 KiB versions would add over 16 MiB.
    assert!(
        after <= settled * 2,
        "file grew from {settled} to {after} bytes under churn ({stats:?})"
    );
    eprintln!("file size after the first round {settled}, after four more {after}; {stats:?}");
    assert!(
        after <= settled * 2,
        "file grew from {settled} to {after} bytes under churn ({stats:?})"
    );
    assert!(stats.compacted_rows > 10_000, "{stats:?}");
    assert!(
        stats.compaction_batches > 0 && stats.checkpoints > 0,
        "{stats:?}"
    );
    assert!(
        current - stats.compact_revision >= 200,
        "kept too little: {stats:?}"
    );
    // History below the compaction revision is gone, at and above it readable.
    let old = store
        .get("/churn/1", Some(stats.compact_revision - 1))
        .await;
    assert!(matches!(old, Err(Error::Compacted { .. })), "{old:?}");
    let at = store
        .range(RangeRequest::prefix("/churn/").at(stats.compact_revision))
        .await?;
    let latest = store.range(RangeRequest::prefix("/churn/")).await?;
    assert!(at.count > 0 && latest.count > 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_get_distinct_revisions_in_fewer_transactions() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(
        dir.path().join("db"),
        SqliteOptions::default(),
    )?);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for j in 0..5 {
                    revisions.push(
                        store
                            .create(&format!("/g/{i}/{j}"), "x".into(), None)
                            .await?,
                    );
                }
                anyhow::Ok(revisions)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=320).collect();
    assert_eq!(
        all, expected,
        "every write gets its own revision, none lost"
    );
    let stats = store.stats();
    assert_eq!(stats.writes, 320);
    assert!(stats.transactions <= stats.writes, "{stats:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let (r1, r2, r3) = {
        let store = SqliteStore::open(&path, quick())?;
        let r1 = store.create("/h/a", "1".into(), None).await?;
        let r2 = store
            .update("/h/a", "2".into(), Precondition::ModRevision(r1), None)
            .await?;
        let r3 = store.delete("/h/a", Precondition::None).await?.revision;
        store.compact(r3).await?;
        (r1, r2, r3)
    };
    let store = SqliteStore::open(&path, quick())?;
    // Compaction to the newest revision (a tombstone) must not move the revision backwards.
    assert_eq!(store.current_revision().await?, r3);
    assert!(matches!(
        store.get("/h/a", Some(r2)).await,
        Err(Error::Compacted { .. })
    ));
    assert!(store.get("/h/a", Some(r3)).await?.kv.is_none());
    let r4 = store.create("/h/a", "again".into(), None).await?;
    assert!(r4 > r3 && r3 > r2 && r2 > r1);
    Ok(())
}

/// Paging through a past revision reports the right remaining counts on every page (the counts
/// after the first page come from what the previous page left) and never mixes revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_ranges_at_a_past_revision_count_what_remains() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path().join("db"), quick())?;
    for i in 0..10 {
        store
            .create(&format!("/p/{i:02}"), bytes::Bytes::from("old"), None)
            .await?;
    }
    store
        .create("/q/outside", bytes::Bytes::from("x"), None)
        .await?;
    let past = store.current_revision().await?;
    for i in 0..10 {
        if i % 3 == 0 {
            store
                .delete(&format!("/p/{i:02}"), Precondition::None)
                .await?;
        } else {
            store
                .update(
                    &format!("/p/{i:02}"),
                    bytes::Bytes::from("new"),
                    Precondition::None,
                    None,
                )
                .await?;
        }
    }
    for round in 0..2 {
        let mut start: Option<String> = None;
        let mut counts = Vec::new();
        let mut seen = Vec::new();
        loop {
            let mut request = RangeRequest::prefix("/p/").limit(3).at(past);
            request.start = start.clone();
            let page = store.range(request).await?;
            assert_eq!(page.revision, past);
            counts.push(page.count);
            for kv in &page.kvs {
                assert_eq!(
                    kv.value,
                    bytes::Bytes::from("old"),
                    "round {round}: {} is not from the past",
                    kv.key
                );
                seen.push(kv.key.clone());
            }
            match (page.more, page.kvs.last()) {
                (true, Some(last)) => start = Some(format!("{}\0", last.key)),
                _ => break,
            }
        }
        assert_eq!(counts, [10, 7, 4, 1], "round {round}");
        assert_eq!(seen.len(), 10, "round {round}: {seen:?}");
    }
    Ok(())
}

/// A batch as large as an etcd ranged delete of a whole prefix commits at one revision, and a
/// watch from before it, reading history in pages, gets every event of it at that revision
/// after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_commit_at_one_revision() -> anyhow::Result<()> {
    use storage_api::{BatchWrite, Expect};
    const KEYS: usize = 5000;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let before = {
        let store = SqliteStore::open(&path, quick())?;
        let writes: Vec<BatchWrite> = (0..KEYS)
            .map(|i| BatchWrite::Put {
                key: format!("/big/{i:05}"),
                value: "v".into(),
                expect: Expect::Absent,
            })
            .collect();
        let created = store.write_batch(writes).await?;
        let live = store.range(RangeRequest::prefix("/big/")).await?;
        assert_eq!(live.count, KEYS as u64);
        assert!(live.kvs.iter().all(|kv| kv.mod_revision == created));
        let deletes = live
            .kvs
            .iter()
            .map(|kv| BatchWrite::Delete {
                key: kv.key.clone(),
                mod_revision: kv.mod_revision,
            })
            .collect();
        let deleted = store.write_batch(deletes).await?;
        assert_eq!(store.count("/big/").await?, 0);
        assert_eq!(store.current_revision().await?, deleted);
        created
    };
    let store = SqliteStore::open(&path, quick())?;
    let mut watch = store
        .watch(WatchRequest::prefix("/big/").after(before))
        .await?;
    let mut revisions = std::collections::BTreeSet::new();
    for _ in 0..KEYS {
        match watch.next().await.unwrap()? {
            WatchEvent::Delete { revision, .. } => {
                revisions.insert(revision);
            }
            other => panic!("expected only deletes, got {other:?}"),
        }
    }
    assert_eq!(revisions.len(), 1, "every delete at the batch's revision");
    Ok(())
}

/// `bump_revision` moves a closed store's revision a billion ahead: the store answers there,
/// older revisions are compacted, the next write follows it, and the compaction of the gap
/// takes a few transactions (it steps by rows, not by revision numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bumped_store_answers_at_its_new_revision_and_compacts_the_gap_at_once()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let store = SqliteStore::open(&path, quick())?;
    for i in 0..50 {
        store.create(&format!("/k/{i}"), "1".into(), None).await?;
        store
            .update(&format!("/k/{i}"), "2".into(), Precondition::None, None)
            .await?;
    }
    let before = store.current_revision().await?;
    // While the store is open, its lock keeps the bump out.
    assert!(backend_sqlite::bump_revision(&path, before + 10).is_err());
    drop(store);
    assert!(backend_sqlite::bump_revision(&path, before - 1).is_err());
    let bumped = before + 1_000_000_000;
    backend_sqlite::bump_revision(&path, bumped)?;

    let store = SqliteStore::open(&path, quick())?;
    assert_eq!(store.current_revision().await?, bumped);
    assert_eq!(store.compacted_revision().await?, bumped);
    assert!(matches!(
        store.get("/k/1", Some(before)).await,
        Err(Error::Compacted { .. })
    ));
    let (_, kvs) = store.list_all("/k/").await?;
    assert_eq!(kvs.len(), 50);
    assert!(kvs.iter().all(|kv| kv.value == "2"));
    assert_eq!(store.create("/next", "n".into(), None).await?, bumped + 1);
    compacted_through(&store, bumped).await?;
    let stats = store.stats();
    assert!(stats.compaction_batches <= 3, "{stats:?}");
    // The 50 superseded first versions are gone.
    assert_eq!(stats.compacted_rows, 50, "{stats:?}");
    Ok(())
}

/// Compaction drops a deleted key's tombstone. When that tombstone is the key's
/// `current_delta` row, the key's older row in `current` goes with it: otherwise the key would
/// come back with a version compaction already removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacting_a_tombstone_in_the_delta_removes_the_key_from_current_too() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let mut options = quick();
    options.auto_compaction = false;
    // The second write folds `/k` (and `/x`) into `current`; the delete stays in the delta.
    options.delta_fold_rows = 2;
    let store = SqliteStore::open(dir.path().join("db"), options)?;
    let k = store.create("/r/k", "k1".into(), None).await?;
    store.create("/r/x", "x1".into(), None).await?;
    let deleted = store
        .delete("/r/k", Precondition::ModRevision(k))
        .await?
        .revision;
    store.compact(deleted).await?;
    compacted_through(&store, deleted).await?;
    assert!(store.get("/r/k", None).await?.kv.is_none());
    assert!(store.get("/r/k", Some(deleted)).await?.kv.is_none());
    for revision in [None, Some(deleted)] {
        let mut request = RangeRequest::prefix("/r/");
        request.revision = revision;
        let listed = store.range(request).await?;
        let keys: Vec<_> = listed.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!((keys, listed.count), (vec!["/r/x"], 1), "at {revision:?}");
    }
    // The key can be created again, as a new key.
    let again = store.create("/r/k", "k2".into(), None).await?;
    let kv = store.get("/r/k", None).await?.kv.unwrap();
    assert_eq!((kv.create_revision, kv.value.as_ref()), (again, &b"k2"[..]));
    Ok(())
}

/// The rows `table` of the store's file holds, read beside the store (WAL lets a second
/// connection read).
fn table_rows(path: &Path, table: &str) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open(path)?;
    Ok(
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })?,
    )
}

/// Compaction that removes a tombstone's `current_delta` row takes it off the writer's count
/// of delta rows, so the next fold comes when the delta really holds `delta_fold_rows` keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_takes_removed_tombstones_off_the_delta_count() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let mut options = quick();
    options.auto_compaction = false;
    options.delta_fold_rows = 3;
    let rows = |table: &str| table_rows(&path, table);
    let store = SqliteStore::open(&path, options)?;
    let a = store.create("/t/a", "a".into(), None).await?;
    store.create("/t/b", "b".into(), None).await?;
    let deleted = store
        .delete("/t/a", Precondition::ModRevision(a))
        .await?
        .revision;
    assert_eq!(rows("current_delta")?, 2);
    store.compact(deleted).await?;
    compacted_through(&store, deleted).await?;
    // The tombstone of `/t/a` is gone from the delta: only `/t/b` is left.
    assert_eq!(rows("current_delta")?, 1);
    // A second key does not fill it; a third does.
    store.create("/t/c", "c".into(), None).await?;
    assert_eq!((rows("current_delta")?, rows("current")?), (2, 0));
    store.create("/t/d", "d".into(), None).await?;
    assert_eq!((rows("current_delta")?, rows("current")?), (0, 3));
    Ok(())
}

/// The delta folds when it holds `delta_fold_rows` keys, not after that many writes: updates
/// of fewer keys rewrite their delta rows and never fold, and the first new key past the limit
/// folds them all. Each key reads its newest value throughout, and after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_folds_by_keys_not_by_writes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let mut options = quick();
    options.delta_fold_rows = 4;
    let rows = |table: &str| table_rows(&path, table);
    let store = SqliteStore::open(&path, options.clone())?;
    let mut revisions = Vec::new();
    for key in ["/w/a", "/w/b", "/w/c"] {
        revisions.push(store.create(key, "0".into(), None).await?);
    }
    // Twenty rewrites of three keys: three delta rows, no fold.
    for round in 1..=20 {
        for (i, key) in ["/w/a", "/w/b", "/w/c"].into_iter().enumerate() {
            revisions[i] = store
                .update(
                    key,
                    round.to_string().into(),
                    Precondition::ModRevision(revisions[i]),
                    None,
                )
                .await?;
        }
    }
    assert_eq!((rows("current_delta")?, rows("current")?), (3, 0));
    // A fourth key fills the delta, which folds in the same transaction.
    store.create("/w/d", "0".into(), None).await?;
    assert_eq!((rows("current_delta")?, rows("current")?), (0, 4));
    // A rewrite after the fold starts the delta again.
    store
        .update(
            "/w/a",
            "21".into(),
            Precondition::ModRevision(revisions[0]),
            None,
        )
        .await?;
    assert_eq!((rows("current_delta")?, rows("current")?), (1, 4));
    async fn newest(store: &SqliteStore) -> anyhow::Result<Vec<(String, String)>> {
        let listed = store.range(RangeRequest::prefix("/w/")).await?;
        Ok(listed
            .kvs
            .into_iter()
            .map(|kv| (kv.key, String::from_utf8_lossy(&kv.value).into_owned()))
            .collect())
    }
    let expected: Vec<(String, String)> = [
        ("/w/a", "21"),
        ("/w/b", "20"),
        ("/w/c", "20"),
        ("/w/d", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(newest(&store).await?, expected);
    drop(store);
    // The count is taken again at open: three more keys fold together with the one there.
    let store = SqliteStore::open(&path, options)?;
    assert_eq!(newest(&store).await?, expected);
    for key in ["/w/e", "/w/f"] {
        store.create(key, "0".into(), None).await?;
    }
    assert_eq!(rows("current_delta")?, 3);
    store.create("/w/g", "0".into(), None).await?;
    assert_eq!((rows("current_delta")?, rows("current")?), (0, 7));
    Ok(())
}
