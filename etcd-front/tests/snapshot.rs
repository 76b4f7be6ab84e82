//! Snapshots between the front and etcd, with real clients: `etcdctl snapshot save` from the
//! front over SQLite, `etcdctl snapshot status`, `etcdctl snapshot restore` into a real etcd
//! that then serves the same keys, revisions, versions and leases; and back, a real etcd's
//! snapshot written into a new store by `etcd-front snapshot restore` and served by the front.
//! A snapshot taken under concurrent writes holds exactly the keys of its revision.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backend_etcd::testing::EtcdCluster;
use etcd_client::{Client, GetOptions, LeaseTimeToLiveOptions, PutOptions, Txn, TxnOp};
use regex::Regex;

mod common;

use common::{ETCDCTL_MISSING, FrontProcess, require_etcdctl};

/// One key as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    key: Vec<u8>,
    value: Vec<u8>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
}

impl Row {
    /// What survives a restore into our stores, where revisions are the store's.
    fn without_revisions(&self) -> (Vec<u8>, Vec<u8>, i64, i64) {
        (
            self.key.clone(),
            self.value.clone(),
            self.version,
            self.lease,
        )
    }
}

/// Every key (at `revision`, or the latest) and the revision read.
async fn dump(client: &mut Client, revision: Option<i64>) -> (i64, Vec<Row>) {
    let mut options = GetOptions::new().with_all_keys();
    if let Some(revision) = revision {
        options = options.with_revision(revision);
    }
    let response = client.get(vec![0_u8], Some(options)).await.unwrap();
    let rows = response
        .kvs()
        .iter()
        .map(|kv| Row {
            key: kv.key().to_vec(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        })
        .collect();
    (response.header().unwrap().revision(), rows)
}

/// Every lease with its TTL and sorted keys.
async fn leases(client: &mut Client) -> Vec<(i64, i64, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for lease in client.leases().await.unwrap().leases() {
        let status = client
            .lease_time_to_live(lease.id(), Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .unwrap();
        let mut keys = status.keys().to_vec();
        keys.sort();
        out.push((lease.id(), status.granted_ttl(), keys));
    }
    out.sort();
    out
}

/// Runs etcdctl and returns its stdout; fails the test with its stderr.
fn etcdctl(endpoint: &str, args: &[&str]) -> String {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!(
            "--endpoints={}",
            endpoint.trim_start_matches("http://")
        ))
        .args(args)
        .output()
        .expect(ETCDCTL_MISSING);
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `etcd-front snapshot restore FILE --storage URL`: success and what it printed.
fn front_restore(snapshot: &Path, storage: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_etcd-front"))
        .args(["snapshot", "restore"])
        .arg(snapshot)
        .arg(format!("--storage={storage}"))
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// Keys of every shape: binary ones, a value spanning several pages, keys written together by
/// one transaction, updated and deleted keys, keys on a lease.
async fn fill(client: &mut Client) {
    for i in 0..2_000 {
        client
            .put(format!("plain/{i:05}"), format!("value {i}"), None)
            .await
            .unwrap();
    }
    for key in [
        vec![0_u8],
        vec![0, 1, 0],
        vec![0xff, 0xfe],
        b"a\x00b".to_vec(),
    ] {
        client.put(key, "binary", None).await.unwrap();
    }
    client
        .put("large", vec![b'x'; 100_000], None)
        .await
        .unwrap();
    let together = Txn::new().and_then(vec![
        TxnOp::put("txn/c", "3", None),
        TxnOp::put("txn/a", "1", None),
        TxnOp::put("txn/b", "2", None),
    ]);
    client.txn(together).await.unwrap();
    for round in 0..3 {
        client
            .put("updated", format!("round {round}"), None)
            .await
            .unwrap();
    }
    client.delete("plain/00007", None).await.unwrap();
    client.put("deleted", "soon", None).await.unwrap();
    client.delete("deleted", None).await.unwrap();
    let lease = client.lease_grant(600, None).await.unwrap().id();
    for key in ["leased/1", "leased/2"] {
        client
            .put(key, "on a lease", Some(PutOptions::new().with_lease(lease)))
            .await
            .unwrap();
    }
    client.lease_grant(300, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_move_data_from_the_front_to_etcd_and_back() {
    require_etcdctl();
    let dir = tempfile::tempdir().unwrap();
    let front = FrontProcess::start(
        &format!("sqlite://{}", dir.path().join("front.sqlite").display()),
        "http",
        &[],
    );
    let mut client = Client::connect([front.endpoint()], None).await.unwrap();
    fill(&mut client).await;
    let (revision, rows) = dump(&mut client, None).await;
    let front_leases = leases(&mut client).await;

    // etcdctl saves the front's snapshot and reads it.
    let snapshot = dir.path().join("front.db");
    let snapshot_arg = snapshot.display().to_string();
    etcdctl(&front.endpoint(), &["snapshot", "save", &snapshot_arg]);
    let status = etcdctl(
        &front.endpoint(),
        &["snapshot", "status", &snapshot_arg, "-w", "json"],
    );
    let number = |name: &str| -> i64 {
        Regex::new(&format!(r#""{name}":(\d+)"#))
            .unwrap()
            .captures(&status)
            .unwrap_or_else(|| panic!("no {name} in {status}"))[1]
            .parse()
            .unwrap()
    };
    let newest = rows.iter().map(|row| row.mod_revision).max().unwrap();
    assert_eq!(number("revision"), newest, "{status}");
    // Every key, two leases and three meta entries.
    assert_eq!(number("totalKey"), rows.len() as i64 + 2 + 3, "{status}");

    // etcdctl restores it into a real etcd, which serves the same data at the same revision.
    let mut etcd = EtcdCluster::from_snapshot(&snapshot).unwrap();
    let mut etcd_client = Client::connect(etcd.endpoints(), None).await.unwrap();
    let (etcd_revision, etcd_rows) = dump(&mut etcd_client, None).await;
    assert_eq!(etcd_revision, revision);
    assert!(
        etcd_rows == rows,
        "etcd restored other keys than the front's"
    );
    assert_eq!(leases(&mut etcd_client).await, front_leases);
    // It goes on from there: new revisions, older ones compacted.
    let put = etcd_client.put("written-in-etcd", "v", None).await.unwrap();
    assert_eq!(put.header().unwrap().revision(), revision + 1);
    let old = etcd_client
        .get(
            "updated",
            Some(GetOptions::new().with_revision(revision - 1)),
        )
        .await
        .unwrap_err();
    assert!(old.to_string().contains("compacted"), "{old}");
    // etcd keeps writing into the file it restored (pages split, merged, freed), compacts,
    // defragments and restarts; its own snapshot then still passes bbolt's check.
    for i in 0..3_000 {
        let key = format!("plain/{:05}", i % 2_500);
        if i % 5 == 4 {
            etcd_client.delete(key, None).await.unwrap();
        } else {
            etcd_client
                .put(key, vec![b'e'; i % 300], None)
                .await
                .unwrap();
        }
    }
    let (now, _) = dump(&mut etcd_client, None).await;
    etcd_client.compact(now - 100, None).await.unwrap();
    etcdctl(&etcd.endpoints()[0], &["defrag"]);
    etcd.members_mut()[0].terminate();
    etcd.members_mut()[0].restart().unwrap();
    let mut etcd_client = Client::connect(etcd.endpoints(), None).await.unwrap();
    let rewritten = dir.path().join("rewritten.db");
    let rewritten_arg = rewritten.display().to_string();
    etcdctl(&etcd.endpoints()[0], &["snapshot", "save", &rewritten_arg]);
    etcdctl(
        &etcd.endpoints()[0],
        &["snapshot", "status", &rewritten_arg],
    );

    // Back: a real etcd's snapshot (with its own buckets and history) into a new SQLite store.
    let (_, etcd_rows) = dump(&mut etcd_client, None).await;
    let etcd_leases = leases(&mut etcd_client).await;
    let from_etcd = dir.path().join("etcd.db");
    etcdctl(
        &etcd.endpoints()[0],
        &["snapshot", "save", &from_etcd.display().to_string()],
    );
    let back_storage = format!("sqlite://{}", dir.path().join("back.sqlite").display());
    let (restored, printed) = front_restore(&from_etcd, &back_storage);
    assert!(restored, "{printed}");
    assert!(
        printed.contains(&format!("restored {} keys and 2 leases", etcd_rows.len())),
        "{printed}"
    );
    let (back, mut back_client, back_rows) = serve_restored(&back_storage, &etcd_rows).await;
    assert_eq!(leases(&mut back_client).await, etcd_leases);
    // Keys are written in the order of their etcd revisions: taken in that order, their new
    // revisions never go down.
    let mut by_etcd_revision = etcd_rows.clone();
    by_etcd_revision.sort_by_key(|row| row.mod_revision);
    let restored_revisions: Vec<i64> = by_etcd_revision
        .iter()
        .map(|row| {
            back_rows
                .iter()
                .find(|back| back.key == row.key)
                .unwrap()
                .mod_revision
        })
        .collect();
    assert!(
        restored_revisions.windows(2).all(|pair| pair[0] <= pair[1]),
        "keys were restored out of order"
    );
    assert!(
        restored_revisions.first() < restored_revisions.last(),
        "every key was restored at one revision"
    );
    drop(back_client);
    drop(back);

    // A store that already holds keys is left alone.
    let (restored, printed) = front_restore(&from_etcd, &back_storage);
    assert!(!restored && printed.contains("already holds"), "{printed}");
    // A damaged snapshot is refused by its hash.
    let mut bytes = std::fs::read(&from_etcd).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, bytes).unwrap();
    let empty = format!("sqlite://{}", dir.path().join("empty.sqlite").display());
    let (restored, printed) = front_restore(&damaged, &empty);
    assert!(!restored && printed.contains("SHA-256"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_under_writes_holds_exactly_its_revision() {
    let dir = tempfile::tempdir().unwrap();
    let front = FrontProcess::start(
        &format!("sqlite://{}", dir.path().join("front.sqlite").display()),
        "http",
        &[],
    );
    let client = Client::connect([front.endpoint()], None).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let mut client = client.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{writer}/{:03}", i % 300);
                if i % 7 == 3 {
                    client.delete(key, None).await.unwrap();
                } else {
                    client.put(key, format!("{i}"), None).await.unwrap();
                }
                i += 1;
            }
        }));
    }
    // Until the writers have made enough keys.
    let mut counting = client.clone();
    loop {
        let count = counting
            .get(
                vec![0_u8],
                Some(GetOptions::new().with_all_keys().with_count_only()),
            )
            .await
            .unwrap()
            .count();
        if count >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut maintenance = client.maintenance_client();
    let mut stream = maintenance.snapshot().await.unwrap();
    let mut blobs = Vec::new();
    let mut revision = None;
    while let Some(message) = stream.message().await.unwrap() {
        if revision.is_none() {
            revision = Some(message.header().unwrap().revision());
        }
        blobs.push((message.remaining_bytes(), message.blob().to_vec()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let revision = revision.unwrap();

    // As etcd sends it: the database in pieces counting down, then its SHA-256 alone.
    let (hash, database) = blobs.split_last().unwrap();
    assert_eq!(hash.0, 0);
    assert_eq!(hash.1.len(), 32);
    let mut file = Vec::new();
    for (remaining, blob) in database {
        file.extend_from_slice(blob);
        assert_eq!(
            *remaining as usize + file.len(),
            database.iter().map(|(_, b)| b.len()).sum::<usize>()
        );
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &file);
    assert_eq!(digest.as_ref(), hash.1.as_slice());
    file.extend_from_slice(&hash.1);
    let snapshot = dir.path().join("under-writes.db");
    std::fs::write(&snapshot, file).unwrap();

    let mut client = client;
    let (latest, _) = dump(&mut client, None).await;
    assert!(latest > revision, "no write happened after the snapshot");
    let (_, expected) = dump(&mut client, Some(revision)).await;
    assert!(expected.len() > 100, "too few keys: {}", expected.len());
    let storage = format!("sqlite://{}", dir.path().join("restored.sqlite").display());
    let (restored, printed) = front_restore(&snapshot, &storage);
    assert!(restored, "{printed}");
    assert!(
        printed.contains(&format!("(etcd revision {revision})")),
        "{printed}"
    );
    serve_restored(&storage, &expected).await;
}

/// Serves a restored store with the front and checks that it holds `expected` (values,
/// versions and leases; revisions are the store's). Returns the front, a client and its keys.
async fn serve_restored(storage: &str, expected: &[Row]) -> (FrontProcess, Client, Vec<Row>) {
    let front = FrontProcess::start(storage, "http", &[]);
    let mut client = Client::connect([front.endpoint()], None).await.unwrap();
    let (_, rows) = dump(&mut client, None).await;
    let strip = |rows: &[Row]| rows.iter().map(Row::without_revisions).collect::<Vec<_>>();
    assert!(
        strip(&rows) == strip(expected),
        "the restored store holds other keys than the snapshot's"
    );
    (front, client, rows)
}
