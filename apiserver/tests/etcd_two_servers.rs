//! Two API servers on one three-member etcd cluster, as kube-apiserver runs when highly
//! available. A write through one is seen by a watch through the other; both run the
//! periodic compactor, whose compare-and-swap on `compact_rev_key` lets one compaction
//! through per interval (measured over four intervals with both alive); and when one API server and one etcd member are killed (SIGKILL)
//! under load, clients of the surviving server lose no acknowledged write and their watch
//! (resumed from its last resourceVersion whenever its stream ends) misses no event.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_etcd::testing::EtcdCluster;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, VersionMatch, WatchEvent, WatchParams};

use common::ServerProcess;

const INTERVAL_SECONDS: u64 = 2;

fn client(server: &ServerProcess) -> Api<ConfigMap> {
    let config = kube::Config::new(server.url.parse().unwrap());
    Api::namespaced(kube::Client::try_from(config).unwrap(), "default")
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "data": {"written": "yes"},
    }))
    .unwrap()
}

fn revision(object: &ConfigMap) -> u64 {
    object
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// The version of the compactor's key: one more per compaction that won its round.
fn compact_key_version(endpoints: &str) -> i64 {
    let output = Command::new("etcdctl")
        .args([
            "--endpoints",
            endpoints,
            "get",
            "compact_rev_key",
            "-w",
            "json",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("running etcdctl (Debian: apt-get install etcd-client)");
    assert!(
        output.status.success(),
        "etcdctl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    answer["kvs"][0]["version"].as_i64().unwrap_or(0)
}

/// Follows the configmaps through `api` from `from`, recording each ADDED object's name and
/// revision, and resuming from the last revision whenever the stream ends, as clients do.
async fn follow(api: Api<ConfigMap>, from: String, seen: Arc<Mutex<Vec<(String, u64)>>>) {
    let mut last = from;
    loop {
        let params = WatchParams::default().timeout(30);
        let mut stream = match api.watch(&params, &last).await {
            Ok(stream) => stream.boxed(),
            Err(error) => {
                eprintln!("watch through the survivor: {error}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(object)) => {
                    last = object.metadata.resource_version.clone().unwrap();
                    let name = object.metadata.name.clone().unwrap();
                    seen.lock().unwrap().push((name, revision(&object)));
                }
                Ok(WatchEvent::Modified(object) | WatchEvent::Deleted(object)) => {
                    last = object.metadata.resource_version.clone().unwrap();
                }
                Ok(WatchEvent::Bookmark(bookmark)) => last = bookmark.metadata.resource_version,
                // 410 means events were lost to compaction before the watch resumed: a gap.
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    panic!("the survivor's watch from {last} expired: {status:?} (a gap)")
                }
                Ok(WatchEvent::Error(status)) => {
                    eprintln!("the survivor's watch failed: {status:?}; resuming");
                    break;
                }
                Err(error) => {
                    eprintln!("watch stream through the survivor broke: {error}; resuming");
                    break;
                }
            }
        }
    }
}

/// Lists through `api`, retrying while it answers ServerTimeout (a request that met the
/// dead member).
async fn list_retrying(api: &Api<ConfigMap>) -> kube::core::ObjectList<ConfigMap> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => return list,
            Err(kube::Error::Api(status))
                if status.reason == "ServerTimeout" && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("listing through the survivor: {error}"),
        }
    }
}

/// Creates configmaps named `prefix-N` through `api` until `stop`, recording each one
/// acknowledged with its revision; failures (the server or a member going away) are retried
/// with the next name.
async fn write(
    api: Api<ConfigMap>,
    prefix: String,
    acked: Arc<Mutex<BTreeMap<String, u64>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let name = format!("{prefix}-{i}");
        i += 1;
        match api.create(&PostParams::default(), &config_map(&name)).await {
            Ok(created) => {
                acked.lock().unwrap().insert(name, revision(&created));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_etcd_cluster_through_failures() {
    let mut cluster = EtcdCluster::start(3).unwrap_or_else(|e| panic!("starting etcd: {e}"));
    let url = format!(
        "{}?compaction-interval={INTERVAL_SECONDS}s",
        cluster.url("/registry")
    );
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server_a = ServerProcess::start(dir_a.path(), &["--storage", &url]);
    let server_b = ServerProcess::start(dir_b.path(), &["--storage", &url]);
    let (on_a, on_b) = (client(&server_a), client(&server_b));

    // A write through one server is seen by a watch through the other.
    let from = on_b
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watcher = tokio::spawn(follow(on_b.clone(), from.clone(), seen.clone()));
    let first = on_a
        .create(&PostParams::default(), &config_map("first"))
        .await
        .unwrap();
    let acked = Arc::new(Mutex::new(BTreeMap::from([(
        "first".to_owned(),
        revision(&first),
    )])));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.lock().unwrap().iter().any(|(name, _)| name == "first") {
        assert!(
            Instant::now() < deadline,
            "a write through A never reached a watch through B"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Load through both; then SIGKILL server A and one etcd member while it goes on.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (api, prefix) in [(&on_a, "a0"), (&on_a, "a1"), (&on_b, "b0"), (&on_b, "b1")] {
        writers.push(tokio::spawn(write(
            api.clone(),
            prefix.to_owned(),
            acked.clone(),
            stop.clone(),
        )));
    }
    // While both servers run their compactors, the compactor's key moves at most once per
    // interval: the compare-and-swap lets one of them through each time.
    let endpoints = cluster.endpoints().join(",");
    let (version_before, measured_from) = (compact_key_version(&endpoints), Instant::now());
    tokio::time::sleep(Duration::from_secs(4 * INTERVAL_SECONDS)).await;
    let moved = compact_key_version(&endpoints) - version_before;
    let intervals = measured_from.elapsed().as_secs() / INTERVAL_SECONDS;
    eprintln!("compact_rev_key moved {moved} times in {intervals} intervals, two compactors");
    assert!(
        moved >= 1 && moved as u64 <= intervals + 1,
        "compact_rev_key moved {moved} times in {intervals} intervals with two servers"
    );

    drop(server_a);
    cluster.members_mut()[0].kill();
    let through_b_before_kills = acked
        .lock()
        .unwrap()
        .keys()
        .filter(|name| name.starts_with('b'))
        .count();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let through_b = acked.keys().filter(|name| name.starts_with('b')).count();
    let through_b_after_kills = through_b - through_b_before_kills;
    assert!(
        through_b_after_kills > 10,
        "the survivor acknowledged only {through_b_after_kills} writes after the kills"
    );

    // The survivor's clients see every acknowledged write: in a list, and in the watch.
    let listed: Vec<String> = list_retrying(&on_b)
        .await
        .items
        .iter()
        .map(|object| object.metadata.name.clone().unwrap())
        .collect();
    for name in acked.keys() {
        assert!(
            listed.contains(name),
            "acknowledged {name} is missing from a list through B"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = seen.lock().unwrap().clone();
        let missing: Vec<&String> = acked
            .keys()
            .filter(|name| !seen.iter().any(|(s, _)| s == *name))
            .collect();
        if missing.is_empty() {
            let revisions: Vec<u64> = seen.iter().map(|(_, revision)| *revision).collect();
            assert!(
                revisions.windows(2).all(|pair| pair[0] < pair[1]),
                "the watch went back or repeated"
            );
            for (name, revision) in &seen {
                if let Some(acknowledged) = acked.get(name) {
                    assert_eq!(
                        revision, acknowledged,
                        "{name} in the watch and in its answer"
                    );
                }
            }
            eprintln!(
                "{} acknowledged writes ({through_b_after_kills} through B after the kills), all in B's list and watch",
                acked.len()
            );
            break;
        }
        assert!(Instant::now() < deadline, "B's watch never saw {missing:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if watcher.is_finished() {
        // It only ends by panicking: surface why.
        watcher.await.unwrap();
    } else {
        watcher.abort();
    }

    // The compactions happened: history before the test's start is gone (a list there answers
    // 410 once a compaction passed it; the survivor may answer ServerTimeout while a request
    // meets the dead member).
    let old = ListParams::default()
        .at(&from)
        .matching(VersionMatch::Exact);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match on_b.list(&old).await {
            Err(kube::Error::Api(status)) if status.code == 410 => break,
            Err(kube::Error::Api(status)) if status.reason == "ServerTimeout" => {}
            Ok(_) => {}
            other => panic!("a list at {from} answered {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "revision {from} was never compacted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(server_b);
}
