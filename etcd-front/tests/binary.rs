//! The `etcd-front` binary: TLS with client certificates, as kube-apiserver connects to etcd,
//! and durability when it is killed with SIGKILL under concurrent writers.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tokio::sync::Mutex;

mod common;

use common::{FrontProcess as Front, require_etcdctl};

fn write_pem(dir: &Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path.display().to_string()
}

/// With `--client-cert-auth`, a client with a certificate signed by `--trusted-ca-file` is
/// served over TLS; one without a certificate, or one signed by another CA, is refused.
#[test]
fn tls_with_client_certificates() {
    require_etcdctl();
    let dir = tempfile::tempdir().unwrap();
    let ca_params = {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
    };
    let ca = CertifiedIssuer::self_signed(ca_params.clone(), KeyPair::generate().unwrap()).unwrap();
    let other_ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_cert = |issuer: &CertifiedIssuer<'_, KeyPair>| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (client_pem, client_key) = client_cert(&ca);
    let (stranger_pem, stranger_key) = client_cert(&other_ca);
    let ca_file = write_pem(dir.path(), "ca.pem", &ca.pem());
    let args = vec![
        format!(
            "--cert-file={}",
            write_pem(dir.path(), "server.pem", &server.pem())
        ),
        format!(
            "--key-file={}",
            write_pem(dir.path(), "server-key.pem", &server_key.serialize_pem())
        ),
        format!("--trusted-ca-file={ca_file}"),
        "--client-cert-auth".to_owned(),
    ];
    let front = Front::start("memory://", "https", &args);
    let etcdctl = |cert: Option<(&str, &str)>, command: &[&str]| {
        let mut run = Command::new("etcdctl");
        run.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=127.0.0.1:{}", front.port))
            .arg(format!("--cacert={ca_file}"))
            .arg("--command-timeout=5s")
            .arg("--dial-timeout=3s");
        if let Some((cert, key)) = cert {
            run.arg(format!("--cert={cert}"))
                .arg(format!("--key={key}"));
        }
        run.args(command).output().unwrap()
    };
    let client = (
        write_pem(dir.path(), "client.pem", &client_pem),
        write_pem(dir.path(), "client-key.pem", &client_key),
    );
    let stranger = (
        write_pem(dir.path(), "stranger.pem", &stranger_pem),
        write_pem(dir.path(), "stranger-key.pem", &stranger_key),
    );
    let put = etcdctl(Some((&client.0, &client.1)), &["put", "tls", "works"]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = etcdctl(
        Some((&client.0, &client.1)),
        &["get", "tls", "--print-value-only"],
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "works");
    let anonymous = etcdctl(None, &["get", "tls"]);
    assert!(
        !anonymous.status.success(),
        "a client without a certificate was served"
    );
    let strange = etcdctl(Some((&stranger.0, &stranger.1)), &["get", "tls"]);
    assert!(
        !strange.status.success(),
        "a client certificate from another CA was accepted"
    );
}

/// Writers on several connections put unique keys while the front over SQLite is killed with
/// SIGKILL, again and again: every acknowledged put is there after each restart, revisions
/// keep increasing, and a watch resumed from the last revision it saw misses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_concurrent_writers_loses_no_acknowledged_write() {
    const KILLS: usize = 8;
    const WRITERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let acked: Arc<Mutex<BTreeMap<String, (String, i64)>>> = Arc::default();
    let mut watched: BTreeMap<String, i64> = BTreeMap::new();
    let mut last_seen: i64 = 0;
    let mut highest_acked: i64 = 0;
    for round in 0..KILLS {
        let front = Front::start(&storage, "http", &[]);
        let endpoint = format!("http://127.0.0.1:{}", front.port);
        let client = Client::connect([endpoint.as_str()], None).await.unwrap();

        // Everything acknowledged so far survived, and new revisions are above them.
        let all = client
            .kv_client()
            .get("/crash/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        let present: BTreeMap<String, String> = all
            .kvs()
            .iter()
            .map(|kv| {
                (
                    kv.key_str().unwrap().to_owned(),
                    kv.value_str().unwrap().to_owned(),
                )
            })
            .collect();
        for (key, (value, _)) in acked.lock().await.iter() {
            assert_eq!(
                present.get(key),
                Some(value),
                "round {round}: acknowledged {key} lost"
            );
        }
        let revision = all.header().unwrap().revision();
        assert!(
            revision >= highest_acked,
            "round {round}: revision went back"
        );

        // The watch resumes from the last revision it saw, replaying what it missed.
        let mut stream = watch_crash_keys_after(&client, last_seen).await;

        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let acked = Arc::clone(&acked);
                let endpoint = endpoint.clone();
                tokio::spawn(async move {
                    let Ok(client) = Client::connect([endpoint.as_str()], None).await else {
                        return;
                    };
                    let mut kv = client.kv_client();
                    for i in 0.. {
                        let key = format!("/crash/{round}/{w}/{i}");
                        let value = format!("v{round}-{w}-{i}");
                        match kv.put(key.clone(), value.clone(), None).await {
                            Ok(response) => {
                                let revision = response.header().unwrap().revision();
                                acked.lock().await.insert(key, (value, revision));
                            }
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        // Let the writers run, reading the watch meanwhile, then kill the front.
        let until = tokio::time::Instant::now() + Duration::from_millis(700 + 150 * round as u64);
        while let Ok(Ok(Some(response))) = tokio::time::timeout_at(until, stream.message()).await {
            record(&response, &mut last_seen, &mut watched);
        }
        front.kill();
        for writer in writers {
            writer.await.unwrap();
        }
        highest_acked = acked
            .lock()
            .await
            .values()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(0);
    }

    // A last start: the resumed watch delivers every acknowledged key it had not seen.
    let front = Front::start(&storage, "http", &[]);
    let client = Client::connect([format!("http://127.0.0.1:{}", front.port)], None)
        .await
        .unwrap();
    let current = client
        .kv_client()
        .get(
            "/crash/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut stream = watch_crash_keys_after(&client, last_seen).await;
    while last_seen < current {
        let response = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the resumed watch went silent")
            .unwrap()
            .expect("the resumed watch ended");
        record(&response, &mut last_seen, &mut watched);
    }
    let acked = acked.lock().await;
    assert!(
        acked.len() > KILLS * WRITERS,
        "too few writes to mean anything"
    );
    for (key, (_, revision)) in acked.iter() {
        assert_eq!(
            watched.get(key),
            Some(revision),
            "the watch missed acknowledged {key}"
        );
    }
    println!(
        "{} acknowledged puts across {KILLS} SIGKILLs, all present and all watched",
        acked.len()
    );
}

/// A watch of the crash test's keys that resumes after `last_seen`.
async fn watch_crash_keys_after(client: &Client, last_seen: i64) -> etcd_client::WatchStream {
    client
        .watch_client()
        .watch(
            "/crash/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(last_seen + 1),
            ),
        )
        .await
        .unwrap()
}

/// Notes the puts of a watch response, checking that revisions only go up.
fn record(
    response: &etcd_client::WatchResponse,
    last_seen: &mut i64,
    watched: &mut BTreeMap<String, i64>,
) {
    for event in response.events() {
        let kv = event.kv().unwrap();
        assert!(
            kv.mod_revision() > *last_seen,
            "watch went back or repeated"
        );
        *last_seen = kv.mod_revision();
        if event.event_type() == EventType::Put {
            watched.insert(kv.key_str().unwrap().to_owned(), kv.mod_revision());
        }
    }
}

/// A lease and the keys attached to it survive a SIGKILL of the front over SQLite: after the
/// restart the lease is there again with its full TTL and its keys, and revoking it deletes
/// them at one revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let front = Front::start(&storage, "http", &[]);
    let mut client = Client::connect([format!("http://127.0.0.1:{}", front.port)], None)
        .await
        .unwrap();
    let lease = client.lease_grant(60, None).await.unwrap().id();
    for key in ["/leased/a", "/leased/b"] {
        client
            .put(
                key,
                "v",
                Some(etcd_client::PutOptions::new().with_lease(lease)),
            )
            .await
            .unwrap();
    }
    client.put("/leased/free", "v", None).await.unwrap();
    front.kill();

    let front = Front::start(&storage, "http", &[]);
    let mut client = Client::connect([format!("http://127.0.0.1:{}", front.port)], None)
        .await
        .unwrap();
    let status = client
        .lease_time_to_live(
            lease,
            Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
        )
        .await
        .unwrap();
    assert_eq!(status.granted_ttl(), 60);
    assert!(
        status.ttl() > 55,
        "renewed to its full TTL, not {}",
        status.ttl()
    );
    let mut keys: Vec<&[u8]> = status.keys().iter().map(Vec::as_slice).collect();
    keys.sort_unstable();
    assert_eq!(keys, [&b"/leased/a"[..], &b"/leased/b"[..]]);
    let leases = client.leases().await.unwrap();
    assert_eq!(
        leases.leases().iter().map(|l| l.id()).collect::<Vec<_>>(),
        [lease]
    );
    let mut watch = client
        .watch("/leased/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    client.lease_revoke(lease).await.unwrap();
    let mut deleted: Vec<(Vec<u8>, i64)> = Vec::new();
    while deleted.len() < 2 {
        let response = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("both deletes within 10 s")
            .unwrap()
            .unwrap();
        for event in response.events() {
            assert_eq!(event.event_type(), EventType::Delete);
            let kv = event.kv().unwrap();
            deleted.push((kv.key().to_vec(), kv.mod_revision()));
        }
    }
    assert_eq!(deleted.len(), 2, "both attached keys deleted: {deleted:?}");
    assert_eq!(deleted[0].1, deleted[1].1, "at one revision");
    let left = client
        .get(
            "/leased/",
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .unwrap();
    let left: Vec<&[u8]> = left.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(left, [&b"/leased/free"[..]]);
}

/// A revision whose events exceed etcd's request limit (1.5 MiB) reaches a watch that asked
/// for `fragment` in several responses, and one that did not in one response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_watches_get_large_revisions_in_pieces() {
    let front = Front::start("memory://", "http", &[]);
    let mut client = Client::connect([format!("http://127.0.0.1:{}", front.port)], None)
        .await
        .unwrap();
    let mut last = 0;
    for i in 0..8 {
        last = client
            .put(format!("/big/{i}"), vec![b'x'; 400_000], None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
    }
    // One revision deleting eight keys of 400 KB, each event carrying its previous value.
    let deleted = client
        .delete(
            "/big/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(deleted.deleted(), 8);
    let responses_with = |fragment: bool| {
        let mut client = client.clone();
        async move {
            let mut options = WatchOptions::new()
                .with_prefix()
                .with_prev_key()
                .with_start_revision(last + 1);
            if fragment {
                options = options.with_fragment();
            }
            let mut stream = client.watch("/big/", Some(options)).await.unwrap();
            let mut sizes = Vec::new();
            while sizes.iter().sum::<usize>() < 8 {
                let response = tokio::time::timeout(Duration::from_secs(10), stream.message())
                    .await
                    .expect("the watch went quiet")
                    .unwrap()
                    .unwrap();
                for event in response.events() {
                    assert_eq!(event.event_type(), EventType::Delete);
                    assert_eq!(event.prev_kv().unwrap().value().len(), 400_000);
                }
                if !response.events().is_empty() {
                    sizes.push(response.events().len());
                }
            }
            sizes
        }
    };
    assert_eq!(responses_with(false).await, vec![8]);
    let pieces = responses_with(true).await;
    assert!(pieces.len() >= 2, "not fragmented: {pieces:?}");
    assert!(
        pieces.iter().all(|&n| n <= 4),
        "a piece over 1.5 MiB: {pieces:?}"
    );
}
