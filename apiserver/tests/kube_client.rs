//! End to end with the kube-rs client against an in-process server: pagination, watcher with
//! bookmarks surviving a 410 (relist), optimistic-concurrency conflicts, merge and strategic
//! patches (JSON patch is covered by the kubectl test) and server-side apply.
//!
//! Every case runs on each backend compiled in: `memory::`, `sqlite::` (feature `sqlite`, on
//! by default) and, with the `etcd` feature, `etcd::` (each etcd case starts its own
//! single-member etcd and fails with the install command when `etcd` is not on `PATH`).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde_json::json;

/// Which backend a test server stores into.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    #[cfg(feature = "sqlite")]
    Sqlite,
    #[cfg(feature = "etcd")]
    Etcd,
}

struct TestServer {
    server: apiserver::ApiServer,
    client: Client,
    _data: tempfile::TempDir,
    #[cfg(feature = "etcd")]
    _etcd: Option<backend_etcd::testing::EtcdCluster>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.shutdown();
    }
}

async fn start(backend: Backend) -> TestServer {
    let data = tempfile::tempdir().expect("tempdir");
    #[cfg(feature = "etcd")]
    let mut etcd = None;
    let url = match backend {
        Backend::Memory => "memory://".to_owned(),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => format!("sqlite://{}", data.path().join("db").display()),
        #[cfg(feature = "etcd")]
        Backend::Etcd => {
            let cluster = backend_etcd::testing::EtcdCluster::start_single()
                .unwrap_or_else(|e| panic!("starting etcd for the kube-rs tests: {e}"));
            let url = cluster.url("/registry");
            etcd = Some(cluster);
            url
        }
    };
    let storage = storage::open(&url).await.expect("open storage");
    let mut builder = apiserver::ServerBuilder::new(storage).expect("builder");
    apiserver::kinds::register_all(&mut builder, None).expect("register");
    let server = builder.build().expect("build");
    server.bootstrap().await.expect("bootstrap");
    server.controllers();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = server.router();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let config = Config::new(format!("http://{address}").parse().expect("server url"));
    let client = Client::try_from(config).expect("client");
    TestServer {
        server,
        client,
        _data: data,
        #[cfg(feature = "etcd")]
        _etcd: etcd,
    }
}

/// One `#[tokio::test]` per case in a module per backend, so a failure names both.
macro_rules! on_backends {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::start(super::Backend::Memory).await).await;
            })*
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::start(super::Backend::Sqlite).await).await;
            })*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::start(super::Backend::Etcd).await).await;
            })*
        }
    };
}

on_backends!(
    list_with_pagination,
    conflict_on_stale_update,
    patch_and_server_side_apply,
    watcher_with_bookmarks_survives_compaction,
    bookmark_before_the_watch_times_out,
);

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"suite": "kube"}},
        "data": {"v": value},
    }))
    .expect("configmap")
}

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

async fn list_with_pagination(t: TestServer) {
    namespace(&t.client, "paging").await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "paging");
    for i in 0..7 {
        api.create(&PostParams::default(), &configmap(&format!("cm-{i}"), "x"))
            .await
            .expect("create");
    }
    let mut names = Vec::new();
    let mut pages = 0;
    let mut params = ListParams::default().limit(3);
    loop {
        let page = api.list(&params).await.expect("list page");
        pages += 1;
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 7);
    names.dedup();
    assert_eq!(names.len(), 7);
    let selected = api
        .list(
            &ListParams::default()
                .labels("suite=kube")
                .fields("metadata.name=cm-3"),
        )
        .await
        .expect("selected list");
    assert_eq!(selected.items.len(), 1);
    match api.list(&ListParams::default().fields("data.v=x")).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 400);
            assert_eq!(
                status.message,
                "\"data.v\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            );
        }
        other => panic!("expected 400 for an unsupported field selector, got {other:?}"),
    }
}

async fn conflict_on_stale_update(t: TestServer) {
    let api: Api<ConfigMap> = Api::default_namespaced(t.client.clone());
    let created = api
        .create(&PostParams::default(), &configmap("occ", "1"))
        .await
        .expect("create");
    let mut fresh = created.clone();
    fresh.data = Some([("v".to_owned(), "2".to_owned())].into_iter().collect());
    api.replace("occ", &PostParams::default(), &fresh)
        .await
        .expect("first update");
    let mut stale = created;
    stale.data = Some([("v".to_owned(), "3".to_owned())].into_iter().collect());
    match api.replace("occ", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let current = api.get("occ").await.expect("get");
    assert_eq!(current.data.expect("data")["v"], "2");
}

async fn patch_and_server_side_apply(t: TestServer) {
    let api: Api<ConfigMap> = Api::default_namespaced(t.client.clone());
    api.create(&PostParams::default(), &configmap("p", "1"))
        .await
        .expect("create");
    let pp = PatchParams::default();
    api.patch("p", &pp, &Patch::Merge(json!({"data": {"m": "merge"}})))
        .await
        .expect("merge patch");
    api.patch(
        "p",
        &pp,
        &Patch::Strategic(json!({"data": {"s": "smp", "v": null}})),
    )
    .await
    .expect("strategic patch");
    let data = api.get("p").await.expect("get").data.expect("data");
    assert_eq!(data.get("m").map(String::as_str), Some("merge"));
    assert_eq!(data.get("s").map(String::as_str), Some("smp"));
    assert!(!data.contains_key("v"));

    // Server-side apply: create, update, conflict, force.
    let apply = |value: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"owned": value}});
    let created = api
        .patch(
            "ssa",
            &PatchParams::apply("alice"),
            &Patch::Apply(apply("a1")),
        )
        .await
        .expect("apply creates");
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["alice".to_owned()]);
    api.patch(
        "ssa",
        &PatchParams::apply("alice"),
        &Patch::Apply(apply("a2")),
    )
    .await
    .expect("apply updates");
    match api
        .patch(
            "ssa",
            &PatchParams::apply("bob"),
            &Patch::Apply(apply("b1")),
        )
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409),
        other => panic!("expected an apply conflict, got {other:?}"),
    }
    let forced = api
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(apply("b1")),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.data.expect("data")["owned"], "b1");
}

async fn watcher_with_bookmarks_survives_compaction(t: TestServer) {
    namespace(&t.client, "watched").await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "watched");
    api.create(&PostParams::default(), &configmap("before", "x"))
        .await
        .expect("create");

    // A watch from a compacted resourceVersion ends with a 410 ERROR event.
    let secrets: Api<Secret> = Api::namespaced(t.client.clone(), "watched");
    let old = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    for i in 0..3 {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}})).expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }
    let storage = t.server.state().storage.clone();
    let revision = storage.current_revision().await.expect("revision");
    storage.compact(revision).await.expect("compact");
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &old)
        .await
        .expect("watch")
        .boxed();
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(WatchEvent::Error(status)))) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // The watcher (bookmarks on, short server timeouts so it re-watches) sees every change,
    // relisting after compactions.
    let config = watcher::Config::default().timeout(1);
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let watch_api = api.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(watch_api, config).boxed();
        while let Some(event) = events.next().await {
            if sender.send(event.map_err(|e| e.to_string())).is_err() {
                break;
            }
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    let mut init_done = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut created_after = false;
    let mut compacted_again = false;
    while tokio::time::Instant::now() < deadline {
        let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(200), receiver.recv()).await
        else {
            if init_done >= 1 && !compacted_again {
                // Move the store on with writes the watch does not see, then compact past
                // everything: the next re-watch from the watcher's resourceVersion may get 410.
                for i in 10..13 {
                    let secret: Secret =
                        serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}}))
                            .expect("secret");
                    secrets
                        .create(&PostParams::default(), &secret)
                        .await
                        .expect("secret");
                }
                let revision = storage.current_revision().await.expect("revision");
                let _ = storage.compact(revision).await;
                compacted_again = true;
                tokio::time::sleep(Duration::from_millis(1500)).await;
            } else if compacted_again && !created_after {
                api.create(&PostParams::default(), &configmap("after", "y"))
                    .await
                    .expect("create after");
                created_after = true;
            }
            continue;
        };
        match event {
            Ok(watcher::Event::InitDone) => init_done += 1,
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                if let Some(name) = cm.metadata.name {
                    seen.insert(name);
                }
            }
            Ok(_) => {}
            Err(error) => eprintln!("watcher error (retried): {error}"),
        }
        if seen.contains("after") && seen.contains("before") {
            break;
        }
    }
    task.abort();
    assert!(init_done >= 1, "watcher never finished its initial list");
    assert!(
        seen.contains("before") && seen.contains("after"),
        "{seen:?}"
    );
}

/// A watch that allows bookmarks gets one shortly before its `timeoutSeconds` ends it, at a
/// revision at least that of what it has seen, even on a quiet resource: upstream's cacher
/// sends it 2 s before the deadline, so a client resumes from a recent revision (the periodic
/// bookmark comes only every minute).
async fn bookmark_before_the_watch_times_out(t: TestServer) {
    namespace(&t.client, "quiet").await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "quiet");
    let created = api
        .create(&PostParams::default(), &configmap("only", "x"))
        .await
        .expect("create");
    let rv: u64 = created
        .metadata
        .resource_version
        .expect("rv")
        .parse()
        .expect("numeric rv");
    let started = std::time::Instant::now();
    let mut stream = api
        .watch(&WatchParams::default().timeout(4), &rv.to_string())
        .await
        .expect("watch")
        .boxed();
    let mut bookmark = None;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        match event.expect("a watch event") {
            WatchEvent::Bookmark(mark) => {
                bookmark = Some((started.elapsed(), mark.metadata.resource_version));
            }
            other => panic!("a quiet watch got {other:?}"),
        }
    }
    let ended = started.elapsed();
    let (at, mark_rv) = bookmark.expect("a bookmark before the watch timed out");
    assert!(
        at >= Duration::from_millis(1500) && at < ended,
        "the bookmark came at {at:?}; the watch ended at {ended:?}"
    );
    assert!(mark_rv.parse::<u64>().expect("numeric rv") >= rv);
}
