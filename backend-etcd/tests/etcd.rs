//! etcd-specific behaviour against real etcd processes: unreachable clusters, lease reuse, the
//! multi-server compactor, the URL, and member failures in a three-member cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backend_etcd::testing::EtcdCluster;
use backend_etcd::{EtcdOptions, EtcdStore, compaction_round};
use bytes::Bytes;
use futures::StreamExt;
use storage_api::{
    Error, Interface, InterfaceExt, Precondition, RangeRequest, WatchEvent, WatchRequest,
};

fn cluster(size: usize) -> EtcdCluster {
    match EtcdCluster::start(size) {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_cluster_is_unavailable_not_a_hang() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = EtcdOptions::new(vec![format!("127.0.0.1:{port}")], "/x");
    options.request_timeout = Duration::from_secs(1);
    options.connect_timeout = Duration::from_millis(300);
    let store = EtcdStore::connect(options).await.unwrap();
    // The bound under test is the request timeout; 20 s only keeps a regression from hanging.
    let bound = Duration::from_secs(20);
    let create = tokio::time::timeout(bound, store.create("/a", b("1"), None)).await;
    assert!(
        matches!(create, Ok(Err(Error::Unavailable { .. }))),
        "{create:?}"
    );
    let ready = tokio::time::timeout(bound, store.ready()).await;
    assert!(
        matches!(ready, Ok(Err(Error::Unavailable { .. }))),
        "{ready:?}"
    );
    let get = tokio::time::timeout(bound, store.get("/a", None)).await;
    assert!(matches!(get, Ok(Err(Error::Unavailable { .. }))), "{get:?}");
    let watch = tokio::time::timeout(bound, store.watch(WatchRequest::prefix("/"))).await;
    assert!(
        matches!(watch, Ok(Err(Error::Unavailable { .. }))),
        "watch: {:?}",
        watch.map(|w| w.map(|_| ()))
    );
    let error = store.ready().await.unwrap_err();
    assert!(
        error.is_retryable() && matches!(error, Error::Unavailable { .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ttl_writes_shares_few_leases() {
    let server = cluster(1);
    let store = EtcdStore::connect(EtcdOptions::new(server.endpoints(), "/leases"))
        .await
        .unwrap();
    let ttl = Some(Duration::from_secs(120));
    let writes = (0..200).map(|i| {
        let store = store.clone();
        async move { store.create(&format!("/k/{i}"), b("v"), ttl).await }
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    let mut client = store.client();
    let leases = client.leases().await.unwrap();
    assert_eq!(
        leases.leases().len(),
        1,
        "200 writes with one TTL should share one lease"
    );
    let id = leases.leases()[0].id();
    let live = client
        .lease_time_to_live(
            id,
            Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
        )
        .await
        .unwrap();
    assert_eq!(live.keys().len(), 200);
    // The key lives at least its TTL and at most the reuse window (5% of it) longer.
    assert!(
        live.granted_ttl() >= 120 && live.granted_ttl() <= 127,
        "{}",
        live.granted_ttl()
    );
    // A very different TTL does not fit that lease.
    store
        .create("/short", b("v"), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(client.leases().await.unwrap().leases().len(), 2);
    // A lease holds at most 1000 keys: 1001 more writes need two more leases for the long TTL.
    let writes = (200..1201).map(|i| {
        let store = store.clone();
        async move { store.create(&format!("/k/{i}"), b("v"), ttl).await }
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    assert_eq!(client.leases().await.unwrap().leases().len(), 4);
    // Revoking the lease the store reuses makes the next write grant a new one, not fail.
    for lease in client.leases().await.unwrap().leases() {
        client.lease_revoke(lease.id()).await.unwrap();
    }
    store.create("/after-revoke", b("v"), ttl).await.unwrap();
    assert_eq!(store.count("/k/").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactor_rounds_coordinate_through_the_compact_key() {
    let server = cluster(1);
    let a = EtcdStore::connect(EtcdOptions::new(server.endpoints(), "/a"))
        .await
        .unwrap();
    let other = EtcdStore::connect(EtcdOptions::new(server.endpoints(), "/b"))
        .await
        .unwrap();
    let key = "compact_rev_key";
    let r1 = a.create("/x", b("1"), None).await.unwrap();
    // First round of server A: records the revision, compacts nothing.
    let (version, recorded) = compaction_round(&a, key, 0, 0).await.unwrap();
    assert_eq!(version, 1);
    // The compare-and-swap write itself takes a revision.
    assert_eq!(recorded, r1 + 1);
    assert_eq!(
        a.get("/x", Some(r1)).await.unwrap().kv.unwrap().value,
        b("1")
    );
    // Server B starts late with a stale view: it loses the round and adopts A's.
    let (b_version, b_recorded) = compaction_round(&other, key, 0, 0).await.unwrap();
    assert_eq!(b_version, 1);
    let r2 = a
        .update("/x", b("2"), Precondition::None, None)
        .await
        .unwrap();
    // A's next round wins and compacts to what it recorded one round earlier.
    let (version, _) = compaction_round(&a, key, version, recorded).await.unwrap();
    assert_eq!(version, 2);
    assert!(matches!(
        a.get("/x", Some(r1)).await,
        Err(Error::Compacted { compacted, .. }) if compacted == recorded
    ));
    assert_eq!(
        a.get("/x", Some(recorded)).await.unwrap().kv.unwrap().value,
        b("1")
    );
    assert_eq!(
        a.get("/x", Some(r2)).await.unwrap().kv.unwrap().value,
        b("2")
    );
    // B's round in the same interval, with A's old version, loses: no second compaction.
    let (b_version, _) = compaction_round(&other, key, b_version, b_recorded)
        .await
        .unwrap();
    assert_eq!(b_version, 2);
    assert!(a.get("/x", Some(recorded)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_compactor_from_the_url_compacts_old_history() {
    let server = cluster(1);
    let store = EtcdStore::connect_url(&format!(
        "{}?compaction-interval=300ms&timeout=2s",
        server.url("/registry")
    ))
    .await
    .unwrap();
    assert_eq!(store.options().prefix, "/registry");
    store.ready().await.unwrap();
    let r1 = store.create("/x", b("1"), None).await.unwrap();
    store
        .update("/x", b("2"), Precondition::None, None)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.get("/x", Some(r1)).await {
            Err(Error::Compacted { compacted, .. }) => {
                assert!(compacted > r1);
                break;
            }
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("history was never compacted: {other:?}"),
        }
    }
    // The key itself lives on, outside the store's prefix.
    assert_eq!(store.get_latest("/x").await.unwrap().unwrap().value, b("2"));
    let mut client = store.client();
    let recorded = client.get("compact_rev_key", None).await.unwrap();
    assert_eq!(recorded.kvs().len(), 1);
    assert_eq!(store.count("/").await.unwrap(), 1);
}

/// What one writer was told.
#[derive(Debug, Default)]
struct Written {
    /// Acknowledged writes per key: (revision, value).
    acked: BTreeMap<String, Vec<(u64, Bytes)>>,
    /// Keys with a write whose outcome is unknown (it failed) after their last acknowledged one.
    uncertain: std::collections::BTreeSet<String>,
    failures: usize,
}

async fn writer(store: EtcdStore, id: usize, stop: Arc<AtomicBool>) -> Written {
    let mut written = Written::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("/w{id}/{n}");
        n += 1;
        let value = b(&format!("{key}=created"));
        match store.create(&key, value.clone(), None).await {
            Ok(revision) => {
                written
                    .acked
                    .entry(key.clone())
                    .or_default()
                    .push((revision, value));
                let value = b(&format!("{key}=updated"));
                match store
                    .update(
                        &key,
                        value.clone(),
                        Precondition::ModRevision(revision),
                        None,
                    )
                    .await
                {
                    Ok(revision) => written
                        .acked
                        .entry(key)
                        .or_default()
                        .push((revision, value)),
                    Err(_) => {
                        written.failures += 1;
                        written.uncertain.insert(key);
                    }
                }
            }
            Err(e) => {
                if std::env::var_os("ETCD_TEST_DEBUG").is_some() {
                    eprintln!("{:?} create failed: {e}", std::time::SystemTime::now());
                }
                written.failures += 1;
                written.uncertain.insert(key);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    written
}

/// Collects every event under `/` after `start` until `stop` holds and an event or progress at
/// `until` or later arrived; resumes from the last revision seen when the stream ends with an
/// error. Returns the events and how many times it had to resume.
async fn watcher(
    store: EtcdStore,
    start: u64,
    until: tokio::sync::watch::Receiver<u64>,
) -> (Vec<WatchEvent>, usize) {
    let mut events: Vec<WatchEvent> = Vec::new();
    let mut seen = start;
    let mut resumes = 0;
    loop {
        let stream = store
            .watch(WatchRequest::prefix("/").after(seen).with_progress())
            .await;
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                assert!(e.is_retryable(), "watch failed for good: {e}");
                resumes += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            let target = *until.borrow();
            if target > 0 && seen >= target {
                return (events, resumes);
            }
            match tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
                Err(_) => continue,
                Ok(None) => panic!("watch ended without an error"),
                Ok(Some(Ok(event))) => {
                    assert!(event.revision() >= seen, "event {event:?} before {seen}");
                    seen = event.revision();
                    if !matches!(event, WatchEvent::Progress { .. }) {
                        events.push(event);
                    }
                }
                Ok(Some(Err(e))) => {
                    assert!(
                        matches!(e, Error::Unavailable { .. }),
                        "a watch may only end with a resumable error, got {e}"
                    );
                    resumes += 1;
                    break;
                }
            }
        }
    }
}

async fn leader_index(endpoints: &[String]) -> usize {
    for (i, endpoint) in endpoints.iter().enumerate() {
        let Ok(mut client) = etcd_client::Client::connect([endpoint], None).await else {
            continue;
        };
        if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(2), client.status()).await
        {
            if status.header().map(|h| h.member_id()) == Some(status.leader()) {
                return i;
            }
        }
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_member_cluster_survives_a_member_failure() {
    let mut cluster = cluster(3);
    let mut options = EtcdOptions::new(cluster.endpoints(), "/cluster");
    options.request_timeout = Duration::from_secs(2);
    let store = EtcdStore::connect(options).await.unwrap();
    let start = store.current_revision().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (until_tx, until_rx) = tokio::sync::watch::channel(0u64);
    let mut watchers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(watcher(store.clone(), start, until_rx.clone())))
        .collect();
    // One more watcher talks only to the member crashed first, so its watch must resume on
    // that member after the restart, from where it was.
    let first_victim = leader_index(&cluster.endpoints()).await;
    let pinned = EtcdStore::connect(EtcdOptions::new(
        vec![cluster.endpoints()[first_victim].clone()],
        "/cluster",
    ))
    .await
    .unwrap();
    watchers.push(tokio::spawn(watcher(pinned, start, until_rx.clone())));
    let writers: Vec<_> = (0..3)
        .map(|id| tokio::spawn(writer(store.clone(), id, stop.clone())))
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    // First the leader crashes (SIGKILL), later another member is stopped cleanly (SIGTERM);
    // each comes back after a while.
    for graceful in [false, true] {
        let victim = if graceful {
            (leader_index(&cluster.endpoints()).await + 1) % 3
        } else {
            first_victim
        };
        tokio::task::block_in_place(|| {
            let members = cluster.members_mut();
            if graceful {
                members[victim].terminate();
            } else {
                members[victim].kill();
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        // The store keeps serving on the remaining quorum.
        let probe = format!("/probe/{victim}/{graceful}");
        let mut written = None;
        for _ in 0..20 {
            if let Ok(revision) = store.create(&probe, b("p"), None).await {
                written = Some(revision);
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            written.is_some(),
            "no write succeeded on the remaining two members"
        );
        tokio::task::block_in_place(|| cluster.members_mut()[victim].restart()).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.unwrap());
    }
    let last = store.create("/last", b("end"), None).await.unwrap();
    until_tx.send(last).unwrap();
    let mut streams = Vec::new();
    for w in watchers {
        streams.push(
            tokio::time::timeout(Duration::from_secs(60), w)
                .await
                .unwrap()
                .unwrap(),
        );
    }

    // No acknowledged write is lost, and history holds each at its revision.
    let mut acked_revisions = std::collections::BTreeSet::new();
    let mut total = 0;
    for w in &written {
        for (key, writes) in &w.acked {
            total += writes.len();
            for (revision, value) in writes {
                acked_revisions.insert(*revision);
                let at = store.get(key, Some(*revision)).await.unwrap();
                assert_eq!(
                    at.kv.map(|kv| kv.value),
                    Some(value.clone()),
                    "{key}@{revision}"
                );
            }
            let latest = store
                .get(key, None)
                .await
                .unwrap()
                .kv
                .expect("acked key lost");
            let (revision, value) = writes.last().unwrap();
            if w.uncertain.contains(key) {
                assert!(latest.mod_revision >= *revision);
            } else {
                assert_eq!((latest.mod_revision, &latest.value), (*revision, value));
            }
        }
    }
    assert!(total > 50, "the writers barely wrote: {total}");

    // Every watcher saw one gap-free history: strictly increasing revisions, every acknowledged
    // write, and replaying it gives exactly the store's state at the last revision.
    let state = store
        .range(RangeRequest::prefix("/").at(last))
        .await
        .unwrap();
    for (events, resumes) in &streams {
        let revisions: Vec<u64> = events.iter().map(WatchEvent::revision).collect();
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "out of order or duplicated"
        );
        for revision in &acked_revisions {
            assert!(
                revisions.binary_search(revision).is_ok(),
                "watch missed {revision}"
            );
        }
        let mut replay = BTreeMap::new();
        for event in events {
            match event {
                WatchEvent::Put { kv, .. } => {
                    replay.insert(kv.key.clone(), kv.clone());
                }
                WatchEvent::Delete { key, .. } => {
                    replay.remove(key);
                }
                WatchEvent::Progress { .. } => {}
            }
        }
        let replayed: Vec<_> = replay.into_values().collect();
        assert_eq!(replayed, state.kvs, "replayed watch differs from the store");
        eprintln!(
            "watcher: {} events, {resumes} caller-side resumes",
            events.len()
        );
    }

    // The restarted members caught up: each serves the latest write on its own.
    for member in cluster.members() {
        let alone = EtcdStore::connect(EtcdOptions::new(vec![member.endpoint()], "/cluster"))
            .await
            .unwrap();
        let mut caught_up = false;
        for _ in 0..50 {
            if alone.get("/last", None).await.is_ok_and(|r| r.kv.is_some()) {
                caught_up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(caught_up, "member {} did not catch up", member.endpoint());
    }
    let failures: usize = written.iter().map(|w| w.failures).sum();
    eprintln!("{total} acknowledged writes, {failures} failed attempts during member failures");
}
