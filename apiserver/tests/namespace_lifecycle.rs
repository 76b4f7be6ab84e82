//! The namespace lifecycle over HTTP against the binary, as kube-apiserver answers: immortal
//! namespaces, `NamespaceLifecycle` admission of creates (POST and PUT) into missing and
//! terminating namespaces, two-phase namespace deletion, the `finalize` subresource and its
//! discovery entry, the controller's status conditions, and the watch of a namespace going.

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{Answer, send_raw, start_memory as start};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, WatchEvent, WatchParams};
use serde_json::{Value, json};

async fn send(client: &Client, method: Method, uri: &str, body: &Value) -> Answer {
    send_typed(client, method, uri, "application/json", body).await
}

async fn send_typed(
    client: &Client,
    method: Method,
    uri: &str,
    content_type: &str,
    body: &Value,
) -> Answer {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    send_raw(client, method, uri, content_type, &bytes).await
}

const NS: &str = "/api/v1/namespaces";

fn configmap(name: &str, finalizers: &[&str]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "finalizers": finalizers},
    })
}

fn event(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace},
        "reason": "Test",
        "message": "hello",
        "type": "Normal",
    })
}

/// Polls namespace `name` until `done` holds for it (or it is gone, when `done` gets `None`).
async fn wait_for(client: &Client, name: &str, done: impl Fn(Option<&Value>) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = send(client, Method::GET, &format!("{NS}/{name}"), &Value::Null).await;
        let found = (answer.status == StatusCode::OK).then_some(&answer.body);
        if done(found) {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "namespace {name} never got there: {:?}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition<'a>(namespace: &'a Value, type_: &str) -> Option<&'a Value> {
    namespace["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[tokio::test]
async fn immortal_namespaces_and_discovery() {
    let (_server, client, _dir) = start().await;
    for name in ["default", "kube-system", "kube-public"] {
        let answer = send(
            &client,
            Method::DELETE,
            &format!("{NS}/{name}"),
            &Value::Null,
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{:?}", answer.body);
        assert_eq!(
            Answer::message(&answer),
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")
        );
        assert_eq!(answer.body["reason"], "Forbidden");
        assert_eq!(
            answer.body["details"],
            json!({"name": name, "kind": "namespaces"})
        );
    }
    // `default` is untouched: spec finalizer, label, no metadata finalizer.
    let default = send(&client, Method::GET, &format!("{NS}/default"), &Value::Null).await;
    assert_eq!(default.status, StatusCode::OK);
    assert_eq!(default.body["status"]["phase"], "Active");
    assert_eq!(default.body["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        default.body["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "default"
    );
    assert!(default.body["metadata"].get("finalizers").is_none());
    assert!(default.body["metadata"].get("deletionTimestamp").is_none());
    // The system namespaces kube-apiserver creates at start exist too.
    for name in ["kube-system", "kube-public", "kube-node-lease"] {
        let ns = send(&client, Method::GET, &format!("{NS}/{name}"), &Value::Null).await;
        assert_eq!(ns.status, StatusCode::OK, "{name}: {:?}", ns.body);
        assert_eq!(ns.body["status"]["phase"], "Active");
    }

    // Discovery lists namespaces/finalize, update only.
    let resources = send(&client, Method::GET, "/api/v1", &Value::Null).await;
    let finalize = resources.body["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["name"] == "namespaces/finalize")
        .cloned()
        .expect("namespaces/finalize in discovery");
    assert_eq!(finalize["verbs"], json!(["update"]));
    assert_eq!(finalize["kind"], "Namespace");
    assert_eq!(finalize["namespaced"], false);
    // Only PUT is served on it.
    let patch = send_typed(
        &client,
        Method::PATCH,
        &format!("{NS}/default/finalize"),
        "application/merge-patch+json",
        &json!({"spec": {"finalizers": []}}),
    )
    .await;
    assert_eq!(patch.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn creates_into_missing_and_terminating_namespaces() {
    let (_server, client, _dir) = start().await;
    // PUT that would create (events allow it) into a missing namespace: 404, nothing created.
    let put = send(
        &client,
        Method::PUT,
        &format!("{NS}/nope/events/e1"),
        &event("nope", "e1"),
    )
    .await;
    assert_eq!(put.status, StatusCode::NOT_FOUND, "{:?}", put.body);
    assert_eq!(Answer::message(&put), "namespaces \"nope\" not found");
    let post = send(
        &client,
        Method::POST,
        &format!("{NS}/nope/configmaps"),
        &configmap("c", &[]),
    )
    .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    assert_eq!(Answer::message(&post), "namespaces \"nope\" not found");

    // ns1 holds a configmap with a finalizer, so it stays Terminating.
    let created = send(
        &client,
        Method::POST,
        NS,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let held = send(
        &client,
        Method::POST,
        &format!("{NS}/ns1/configmaps"),
        &configmap("held", &["example.com/hold"]),
    )
    .await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    let events = send(
        &client,
        Method::PUT,
        &format!("{NS}/ns1/events/e1"),
        &event("ns1", "e1"),
    )
    .await;
    assert_eq!(events.status, StatusCode::CREATED, "{:?}", events.body);

    // Watch ns1 from its creation on.
    let api: Api<Namespace> = Api::all(client.clone());
    let since = created.body["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_owned();
    let watch = api
        .watch(
            &WatchParams::default()
                .fields("metadata.name=ns1")
                .timeout(30),
            &since,
        )
        .await
        .expect("watch namespaces")
        .boxed();

    // First DELETE: 200 with the namespace, Terminating, deletionTimestamp, no grace period.
    let deleted = send(&client, Method::DELETE, &format!("{NS}/ns1"), &Value::Null).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.body["kind"], "Namespace");
    assert_eq!(deleted.body["status"]["phase"], "Terminating");
    assert!(deleted.body["metadata"]["deletionTimestamp"].is_string());
    assert!(
        deleted.body["metadata"]
            .get("deletionGracePeriodSeconds")
            .is_none()
    );
    assert_eq!(deleted.body["spec"]["finalizers"], json!(["kubernetes"]));
    // Later DELETEs answer with it unchanged.
    let again = send(&client, Method::DELETE, &format!("{NS}/ns1"), &Value::Null).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["kind"], "Namespace");
    assert_eq!(
        again.body["metadata"]["deletionTimestamp"],
        deleted.body["metadata"]["deletionTimestamp"]
    );

    // Creates are refused, naming the object; updates of existing objects are fine.
    let refused = send(
        &client,
        Method::POST,
        &format!("{NS}/ns1/configmaps"),
        &configmap("new", &[]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    assert_eq!(
        Answer::message(&refused),
        "configmaps \"new\" is forbidden: unable to create new content in namespace ns1 because it is being terminated"
    );
    assert_eq!(
        refused.body["details"],
        json!({
            "name": "new",
            "kind": "configmaps",
            "causes": [{
                "reason": "NamespaceTerminating",
                "message": "namespace ns1 is being terminated",
                "field": "metadata.namespace",
            }],
        })
    );
    let put = send(
        &client,
        Method::PUT,
        &format!("{NS}/ns1/events/e2"),
        &event("ns1", "e2"),
    )
    .await;
    assert_eq!(put.status, StatusCode::FORBIDDEN, "{:?}", put.body);
    assert_eq!(
        Answer::message(&put),
        "events \"e2\" is forbidden: unable to create new content in namespace ns1 because it is being terminated"
    );
    let apply = send_typed(
        &client,
        Method::PATCH,
        &format!("{NS}/ns1/configmaps/applied?fieldManager=test"),
        "application/apply-patch+yaml",
        &configmap("applied", &[]),
    )
    .await;
    assert_eq!(apply.status, StatusCode::FORBIDDEN, "{:?}", apply.body);
    let mut held = send(
        &client,
        Method::GET,
        &format!("{NS}/ns1/configmaps/held"),
        &Value::Null,
    )
    .await
    .body;
    held["data"] = json!({"k": "v"});
    // The namespace controller may be marking it deleted meanwhile: write unconditionally.
    if let Some(meta) = held["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    let update = send(
        &client,
        Method::PUT,
        &format!("{NS}/ns1/configmaps/held"),
        &held,
    )
    .await;
    assert_eq!(update.status, StatusCode::OK, "{:?}", update.body);

    // The controller deletes what it can and reports what holds the namespace.
    let stuck = wait_for(&client, "ns1", |ns| {
        ns.and_then(|ns| condition(ns, "NamespaceFinalizersRemaining"))
            .is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(
        condition(&stuck, "NamespaceContentRemaining").expect("condition")["message"],
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    assert_eq!(
        condition(&stuck, "NamespaceFinalizersRemaining").expect("condition")["message"],
        "Some finalizers are remaining: example.com/hold in 1 resource instances"
    );
    assert_eq!(
        condition(&stuck, "NamespaceDeletionContentFailure").expect("condition")["status"],
        "False"
    );
    let gone = send(
        &client,
        Method::GET,
        &format!("{NS}/ns1/events/e1"),
        &Value::Null,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // Releasing the configmap lets the controller finish: the namespace goes.
    let released = send_typed(
        &client,
        Method::PATCH,
        &format!("{NS}/ns1/configmaps/held"),
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": null}}),
    )
    .await;
    assert_eq!(released.status, StatusCode::OK, "{:?}", released.body);
    wait_for(&client, "ns1", |ns| ns.is_none()).await;

    // The watch saw it go Terminating (MODIFIED), then DELETED.
    let mut watch = watch;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, watch.next()).await {
        match event.expect("watch event") {
            WatchEvent::Modified(ns) => seen.push(format!(
                "MODIFIED {}",
                ns.status.and_then(|s| s.phase).unwrap_or_default()
            )),
            WatchEvent::Deleted(_) => {
                seen.push("DELETED".to_owned());
                break;
            }
            WatchEvent::Bookmark(_) => {}
            other => seen.push(format!("{other:?}")),
        }
    }
    assert_eq!(
        seen.first().map(String::as_str),
        Some("MODIFIED Terminating")
    );
    assert_eq!(seen.last().map(String::as_str), Some("DELETED"), "{seen:?}");
}

#[tokio::test]
async fn finalize_subresource() {
    let (_server, client, _dir) = start().await;
    let created = send(
        &client,
        Method::POST,
        NS,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stuck"}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let held = send(
        &client,
        Method::POST,
        &format!("{NS}/stuck/configmaps"),
        &configmap("held", &["example.com/hold"]),
    )
    .await;
    assert_eq!(held.status, StatusCode::CREATED);

    // Validation: finalizer names per index; the body must name the namespace of the URL.
    let mut body = created.body.clone();
    body["spec"]["finalizers"] = json!(["kubernetes", "bogus"]);
    let invalid = send(&client, Method::PUT, &format!("{NS}/stuck/finalize"), &body).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        Answer::message(&invalid),
        "Namespace \"stuck\" is invalid: spec.finalizers[1]: Invalid value: \"bogus\": name is neither a standard finalizer name nor is it fully qualified"
    );
    // finalize is update-only: no GET or PATCH.
    let get = send(
        &client,
        Method::GET,
        &format!("{NS}/stuck/finalize"),
        &Value::Null,
    )
    .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED, "{:?}", get.body);
    let other = send(&client, Method::PUT, &format!("{NS}/other/finalize"), &body).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST, "{:?}", other.body);

    // Stuck: the configmap's finalizer keeps it Terminating.
    let deleted = send(
        &client,
        Method::DELETE,
        &format!("{NS}/stuck"),
        &Value::Null,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK);
    let stuck = wait_for(&client, "stuck", |ns| {
        ns.and_then(|ns| condition(ns, "NamespaceFinalizersRemaining"))
            .is_some_and(|c| c["status"] == "True")
    })
    .await;

    // The user recipe: PUT the namespace with empty spec.finalizers to /finalize. The status
    // in the body is ignored (kept from the stored namespace); the namespace is deleted.
    let mut body = stuck.clone();
    body["spec"]["finalizers"] = json!([]);
    body["status"] = json!({"phase": "Active"});
    let finalized = send(&client, Method::PUT, &format!("{NS}/stuck/finalize"), &body).await;
    assert_eq!(finalized.status, StatusCode::OK, "{:?}", finalized.body);
    assert_eq!(finalized.body["kind"], "Namespace");
    assert_eq!(finalized.body["apiVersion"], "v1");
    assert_eq!(finalized.body["spec"]["finalizers"], json!([]));
    assert_eq!(finalized.body["status"]["phase"], "Terminating");
    let gone = send(&client, Method::GET, &format!("{NS}/stuck"), &Value::Null).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // As in Kubernetes, what held it is left behind.
    let left = send(
        &client,
        Method::GET,
        &format!("{NS}/stuck/configmaps/held"),
        &Value::Null,
    )
    .await;
    assert_eq!(left.status, StatusCode::OK);
}

#[tokio::test]
async fn legacy_metadata_finalizer_is_released() {
    // Earlier versions of this server stored namespaces with `metadata.finalizers:
    // [kubernetes]`; the controller removes it with its spec finalizer, so they still go.
    let (_server, client, _dir) = start().await;
    let created = send(
        &client,
        Method::POST,
        NS,
        &json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "old", "finalizers": ["kubernetes"]},
        }),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let deleted = send(&client, Method::DELETE, &format!("{NS}/old"), &Value::Null).await;
    assert_eq!(deleted.status, StatusCode::OK);
    wait_for(&client, "old", |ns| ns.is_none()).await;
}
