//! How many times one request decodes an object into its Rust type: the body of a create is
//! decoded once; an update decodes its body once and the stored object it replaces once (the
//! compare-and-swap needs it). A counting type stands in for `ConfigMap` to count them, and
//! its strategy counts the Table rows it renders: through the watch cache, each event of an
//! `as=Table` watch is rendered once for all its watchers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{Method, StatusCode};
use builtin_kinds::ConfigMapStrategy;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use registry::{Strategy, TableColumn};
use scheme::{ResourceInfo, TypedConverter};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// Typed decodes of [`Counted`] so far.
static DECODES: AtomicUsize = AtomicUsize::new(0);

/// Table rows [`CountedStrategy`] rendered so far.
static ROWS: AtomicUsize = AtomicUsize::new(0);

/// Held by each test while it counts: the counters are the process's, and the other test's
/// requests (and its watch cache's decodes) would land in them.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `ConfigMap` that counts its decodes.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
struct Counted(ConfigMap);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        ConfigMap::deserialize(deserializer).map(Counted)
    }
}

impl k8s_openapi::Resource for Counted {
    const API_VERSION: &'static str = ConfigMap::API_VERSION;
    const GROUP: &'static str = ConfigMap::GROUP;
    const KIND: &'static str = ConfigMap::KIND;
    const VERSION: &'static str = ConfigMap::VERSION;
    const URL_PATH_SEGMENT: &'static str = ConfigMap::URL_PATH_SEGMENT;
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for Counted {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

/// `ConfigMap`'s strategy, for the counting type.
struct CountedStrategy;

impl Strategy<Counted> for CountedStrategy {
    fn namespace_scoped(&self) -> bool {
        true
    }

    fn validate(&self, object: &Counted) -> Vec<apimachinery::status::FieldError> {
        ConfigMapStrategy.validate(&object.0)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        ConfigMapStrategy.table_columns()
    }

    fn table_cells(&self, object: &Counted) -> Vec<Value> {
        ROWS.fetch_add(1, Ordering::SeqCst);
        ConfigMapStrategy.table_cells(&object.0)
    }
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// A server on memory storage serving [`Counted`] as ConfigMaps, with `cache`, and a client.
async fn serve_counted(cache: Option<apiserver::watch_cache::WatchCacheSettings>) -> kube::Client {
    let storage = storage::open("memory://").await.expect("storage");
    let mut builder = apiserver::ServerBuilder::new(storage).expect("builder");
    if let Some(cache) = cache {
        builder = builder.with_watch_cache(cache);
    }
    builder
        .register_kind(apiserver::KindSpec::<Counted>::new(
            ResourceInfo::for_type::<ConfigMap>(),
            Arc::new(TypedConverter::<Counted>::new()),
            Arc::new(CountedStrategy),
            &patch::CONFIG_MAP,
        ))
        .expect("register");
    let server = builder.build().expect("build");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, server.router()).into_future());
    let config = kube::Config::new(format!("http://{address}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn typed_decodes_per_request() {
    let _counting = COUNTING.lock().await;
    // Counted is the request path: a watch cache decodes each event once more in the
    // background, at its own moment, whatever the requests.
    let client = serve_counted(Some(apiserver::watch_cache::WatchCacheSettings::disabled())).await;
    let send = |method: Method, uri: String, body: Value| {
        let client = client.clone();
        async move {
            let body = body.to_string();
            common::send_raw(&client, method, &uri, "application/json", body.as_bytes()).await
        }
    };

    let before = DECODES.load(Ordering::SeqCst);
    let created = send(
        Method::POST,
        CMS.to_owned(),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c"}, "data": {"a": "1"}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let create_decodes = DECODES.load(Ordering::SeqCst) - before;

    let mut object = created.body.clone();
    object["data"]["a"] = json!("2");
    let before = DECODES.load(Ordering::SeqCst);
    let updated = send(Method::PUT, format!("{CMS}/c"), object).await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(updated.body["data"]["a"], "2");
    let update_decodes = DECODES.load(Ordering::SeqCst) - before;

    println!("typed decodes: POST {create_decodes}, PUT {update_decodes}");
    assert_eq!(create_decodes, 1, "the body, once");
    assert_eq!(
        update_decodes, 2,
        "the body and the stored object, once each"
    );
}

#[tokio::test]
async fn table_watch_events_are_rendered_once_for_all_watchers() {
    let _counting = COUNTING.lock().await;
    // The default settings: the watch cache is on.
    let client = serve_counted(None).await;
    let mut watches = Vec::new();
    for _ in 0..3 {
        let request = axum::http::Request::builder()
            .uri(format!("{CMS}?watch=true"))
            .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
            .body(Vec::new())
            .unwrap();
        // The answer's head arrives once the watch is registered.
        let lines = client.request_stream(request).await.expect("watch").lines();
        watches.push(Box::pin(lines));
    }
    let rows_before = ROWS.load(Ordering::SeqCst);
    let mut versions = Vec::new();
    for name in ["a", "b"] {
        let created = common::send_raw(
            &client,
            Method::POST,
            CMS,
            "application/json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
                .to_string()
                .as_bytes(),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        versions.push(created.body["metadata"]["resourceVersion"].clone());
    }
    let mut bodies = Vec::new();
    for lines in &mut watches {
        let mut body = String::new();
        for _ in 0..2 {
            let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next())
                .await
                .expect("an event within 30 s")
                .expect("the watch goes on")
                .expect("a line");
            body.push_str(&line);
            body.push('\n');
        }
        bodies.push(body);
    }
    let rendered = ROWS.load(Ordering::SeqCst) - rows_before;

    for body in &bodies {
        assert_eq!(body, &bodies[0], "every watcher writes the same events");
    }
    let events: Vec<Value> = bodies[0]
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(events.len(), 2, "{}", bodies[0]);
    let columns = serde_json::to_value(ConfigMapStrategy.table_columns()).unwrap();
    for (i, (event, name)) in events.iter().zip(["a", "b"]).enumerate() {
        assert_eq!(event["type"], "ADDED");
        let table = &event["object"];
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"]["resourceVersion"], versions[i]);
        let expected_columns = if i == 0 { columns.clone() } else { json!([]) };
        assert_eq!(table["columnDefinitions"], expected_columns, "event {i}");
        let rows = table["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["cells"][0], name);
        assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(rows[0]["object"]["metadata"]["name"], name);
    }
    assert_eq!(
        rendered, 2,
        "one row per event, not one per watcher and event"
    );
}
