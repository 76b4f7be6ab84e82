//! Kinds added and removed while the server runs: REST paths, discovery and OpenAPI follow at
//! once (what custom resources need).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use builtin_kinds::LeaseStrategy;
use k8s_openapi::api::coordination::v1::Lease;
use scheme::{ResourceInfo, TypedConverter};
use serde_json::json;

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

async fn start() -> (apiserver::ApiServer, kube::Client) {
    let storage = storage::open("memory://").await.expect("storage");
    let mut builder = apiserver::ServerBuilder::new(storage).expect("builder");
    apiserver::kinds::register_all(&mut builder, None).expect("register");
    let server = builder.build().expect("build");
    server.bootstrap().await.expect("bootstrap");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = server.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let config = kube::Config::new(format!("http://{address}").parse().unwrap());
    (server, kube::Client::try_from(config).unwrap())
}

async fn get(client: &kube::Client, uri: &str) -> common::Answer {
    common::send_raw(client, Method::GET, uri, "application/json", b"").await
}

fn lease_spec() -> apiserver::KindSpec<Lease> {
    apiserver::KindSpec::<Lease>::new(
        ResourceInfo::for_type::<Lease>(),
        Arc::new(TypedConverter::<Lease>::new()),
        Arc::new(LeaseStrategy),
        &patch::LEASE,
    )
}

#[tokio::test]
async fn a_kind_removed_and_added_while_serving() {
    let (server, client) = start().await;
    assert_eq!(get(&client, LEASES).await.status, StatusCode::OK);
    let before = get(&client, "/openapi/v3").await.body;
    let leases_doc = before["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"]
        .as_str()
        .expect("the coordination group's OpenAPI document")
        .to_owned();

    assert!(server.remove_kind("coordination.k8s.io", "leases"));
    assert!(
        !server.remove_kind("coordination.k8s.io", "leases"),
        "already gone"
    );
    assert_eq!(get(&client, LEASES).await.status, StatusCode::NOT_FOUND);
    let groups = get(&client, "/apis").await.body;
    assert!(
        !groups.to_string().contains("coordination.k8s.io"),
        "discovery still lists the group: {groups}"
    );

    server.add_kind(lease_spec()).expect("add leases");
    let error = server.add_kind(lease_spec()).expect_err("added twice");
    assert!(error.to_string().contains("leases"), "{error}");
    let created = common::send_raw(
        &client,
        Method::POST,
        LEASES,
        "application/json",
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "l1"}, "spec": {"holderIdentity": "me"}})
        .to_string()
        .as_bytes(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let read = get(&client, &format!("{LEASES}/l1")).await;
    assert_eq!(read.body["spec"]["holderIdentity"], "me");
    let resources = get(&client, "/apis/coordination.k8s.io/v1").await.body;
    assert!(resources.to_string().contains("\"leases\""), "{resources}");
    let openapi = get(&client, "/openapi/v3").await.body;
    assert!(
        openapi.to_string().contains("apis/coordination.k8s.io/v1"),
        "{openapi}"
    );
    // Documents change while serving: only the current hash is served (as immutable);
    // another one is redirected to it.
    let current = openapi["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    // The leases added back carry no OpenAPI schema, so the group's document changed.
    assert_ne!(current, leases_doc);
    assert_eq!(get(&client, &current).await.status, StatusCode::OK);
    let stale = get(&client, &leases_doc).await;
    assert_eq!(stale.status, StatusCode::MOVED_PERMANENTLY, "{leases_doc}");
}

#[tokio::test]
async fn namespaces_cannot_come_or_go_while_serving() {
    let (server, client) = start().await;
    assert!(!server.remove_kind("", "namespaces"));
    assert_eq!(
        get(&client, "/api/v1/namespaces/default").await.status,
        StatusCode::OK
    );
}
