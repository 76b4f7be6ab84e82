//! A data directory written by an earlier schema opens and is migrated in place.
//!
//! `fixtures/schema-v1.sqlite` was written by this backend at schema version 1 (commit
//! e6591d7), `fixtures/schema-v2.sqlite` at schema version 2 (commit 8019a84),
//! `fixtures/schema-v3.sqlite` at schema version 3 (commit f7485d1), each with automatic
//! compaction off and the WAL checkpointed into the file, by the same writes:
//!
//! | rev | write |
//! |---|---|
//! | 1, 2, 3 | create `/r/a` = a1, `/r/b` = b1, `/r/c` = c1 |
//! | 4 | update `/r/a` = a2 |
//! | 5 | delete `/r/b` |
//! | 6 | create `/r/b` = b2 (a re-create after a delete) |
//! | 7 | update `/r/a` = a3 |
//! | 8 | delete `/r/c` |

#![allow(clippy::unwrap_used)]

use std::path::Path;

use backend_sqlite::{SqliteOptions, SqliteStore};
use bytes::Bytes;
use futures::StreamExt;
use storage_api::{
    BatchWrite, Expect, Interface, KeyValue, Precondition, RangeRequest, WatchEvent, WatchRequest,
};

fn open_copy(dir: &Path, fixture: &str) -> SqliteStore {
    // Cargo sets the variable when it runs the test too; the run-time value names this
    // checkout even when the binary was built from another one sharing the target directory.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(),
        Into::into,
    );
    let fixture = manifest_dir.join("tests/fixtures").join(fixture);
    let path = dir.join("db.sqlite");
    std::fs::copy(&fixture, &path).unwrap();
    let mut options = SqliteOptions::default();
    options.auto_compaction = false;
    SqliteStore::open(&path, options).unwrap()
}

fn value(kv: &Option<KeyValue>) -> Option<(&[u8], u64, u64)> {
    kv.as_ref()
        .map(|kv| (kv.value.as_ref(), kv.mod_revision, kv.create_revision))
}

#[tokio::test]
async fn a_schema_1_file_opens_migrated_with_its_whole_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copy(dir.path(), "schema-v1.sqlite");
    whole_history_survives(store).await;
    let index = query_number(
        dir.path(),
        "SELECT count(*) FROM sqlite_schema WHERE name = 'log_key_rev'",
    );
    assert_eq!(index, 0, "schema 1's key-ordered log index is gone");
    assert_schema_version(dir.path());
}

#[tokio::test]
async fn a_schema_2_file_opens_migrated_with_its_whole_history_and_takes_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copy(dir.path(), "schema-v2.sqlite");
    whole_history_survives(store).await;
    let store = {
        let mut options = backend_sqlite::SqliteOptions::default();
        options.auto_compaction = false;
        SqliteStore::open(dir.path().join("db.sqlite"), options).unwrap()
    };
    let live = store.get("/r/a", None).await.unwrap().kv.unwrap();
    let rev = store
        .write_batch(vec![
            BatchWrite::Put {
                key: "/r/a".into(),
                value: Bytes::from_static(b"a5"),
                expect: Expect::ModRevision(live.mod_revision),
            },
            BatchWrite::Put {
                key: "/r/new".into(),
                value: Bytes::from_static(b"n"),
                expect: Expect::Absent,
            },
        ])
        .await
        .unwrap();
    let a = store.get("/r/a", None).await.unwrap().kv.unwrap();
    let new = store.get("/r/new", None).await.unwrap().kv.unwrap();
    assert_eq!((a.mod_revision, new.mod_revision), (rev, rev));
    // The number between the batch's two rows reads as the revision before the batch.
    let between = store.get("/r/a", Some(rev - 1)).await.unwrap();
    assert_eq!(between.kv.unwrap().value, Bytes::from_static(b"a4"));
    assert!(
        store
            .get("/r/new", Some(rev - 1))
            .await
            .unwrap()
            .kv
            .is_none()
    );
    drop(store);
    assert_schema_version(dir.path());
}

#[tokio::test]
async fn a_schema_3_file_opens_migrated_with_its_whole_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copy(dir.path(), "schema-v3.sqlite");
    whole_history_survives(store).await;
    // The writes after the migration went to the new table and stay there until a fold.
    let delta = query_number(dir.path(), "SELECT count(*) FROM current_delta");
    assert_eq!(delta, 2, "the update of /r/a and the re-create of /r/c");
    assert_schema_version(dir.path());
}

fn assert_schema_version(dir: &Path) {
    let version = query_number(dir, "PRAGMA user_version");
    assert_eq!(version, backend_sqlite::SCHEMA_VERSION);
}

/// The one number `sql` reads from the migrated copy in `dir` (the store closed).
fn query_number(dir: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// Checks every version of the fixture's writes, then writes and compacts.
async fn whole_history_survives(store: SqliteStore) {
    assert_eq!(store.current_revision().await.unwrap(), 8);

    // Latest state.
    let (_, live) = storage_api::InterfaceExt::list_all(&store, "/r/")
        .await
        .unwrap();
    let live: Vec<_> = live
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_ref()))
        .collect();
    assert_eq!(live, [("/r/a", &b"a3"[..]), ("/r/b", &b"b2"[..])]);

    // Every version at every revision, across updates, a delete and a re-create.
    let at = |key: &'static str, rev: u64| {
        let store = &store;
        async move { store.get(key, Some(rev)).await.unwrap().kv }
    };
    assert_eq!(value(&at("/r/a", 3).await), Some((&b"a1"[..], 1, 1)));
    assert_eq!(value(&at("/r/a", 6).await), Some((&b"a2"[..], 4, 1)));
    assert_eq!(value(&at("/r/a", 8).await), Some((&b"a3"[..], 7, 1)));
    assert_eq!(value(&at("/r/b", 4).await), Some((&b"b1"[..], 2, 2)));
    assert_eq!(value(&at("/r/b", 5).await), None);
    assert_eq!(value(&at("/r/b", 6).await), Some((&b"b2"[..], 6, 6)));
    assert_eq!(value(&at("/r/c", 7).await), Some((&b"c1"[..], 3, 3)));
    assert_eq!(value(&at("/r/c", 8).await), None);
    let past = store
        .range(RangeRequest::prefix("/r/").at(5))
        .await
        .unwrap();
    let past: Vec<_> = past.kvs.iter().map(|kv| kv.value.as_ref()).collect();
    assert_eq!(past, [&b"a2"[..], &b"c1"[..]]);

    // Watch history keeps previous values; a re-create has none.
    let mut watch = store
        .watch(WatchRequest::prefix("/r/").after(4))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match watch.next().await.unwrap().unwrap() {
            WatchEvent::Put { kv, prev } => {
                seen.push((kv.mod_revision, prev.map(|p| p.mod_revision)));
            }
            WatchEvent::Delete { revision, prev, .. } => {
                seen.push((revision, Some(prev.mod_revision)));
            }
            _ => {}
        }
    }
    assert_eq!(seen, [(5, Some(2)), (6, None), (7, Some(4)), (8, Some(3))]);
    drop(watch);

    // New writes continue the history; compaction removes what they supersede.
    let a3 = at("/r/a", 8).await.unwrap().mod_revision;
    let rev = store
        .update(
            "/r/a",
            Bytes::from_static(b"a4"),
            Precondition::ModRevision(a3),
            None,
        )
        .await
        .unwrap();
    assert_eq!(rev, 9);
    store
        .create("/r/c", Bytes::from_static(b"c2"), None)
        .await
        .unwrap();
    assert_eq!(value(&at("/r/a", 8).await), Some((&b"a3"[..], 7, 1)));
    assert_eq!(value(&at("/r/c", 9).await), None);
    store.compact(9).await.unwrap();
    assert_eq!(value(&at("/r/a", 9).await), Some((&b"a4"[..], 9, 1)));
    assert_eq!(value(&at("/r/c", 10).await), Some((&b"c2"[..], 10, 10)));
    drop(store);
}
