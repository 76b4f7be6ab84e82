//! How many times one request decodes an object into its Rust type: the body of a create is
//! decoded once; an update decodes its body once and the stored object it replaces once (the
//! compare-and-swap needs it). A counting type stands in for `ConfigMap` to count them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{Method, StatusCode};
use builtin_kinds::ConfigMapStrategy;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use registry::{Strategy, TableColumn};
use scheme::{ResourceInfo, TypedConverter};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

/// Typed decodes of [`Counted`] so far.
static DECODES: AtomicUsize = AtomicUsize::new(0);

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
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn typed_decodes_per_request() {
    let storage = storage::open("memory://").await.expect("storage");
    // Counted is the request path: a watch cache decodes each event once more in the
    // background, at its own moment, whatever the requests.
    let mut builder = apiserver::ServerBuilder::new(storage)
        .expect("builder")
        .with_watch_cache(apiserver::watch_cache::WatchCacheSettings::disabled());
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
    let client = kube::Client::try_from(config).unwrap();
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
