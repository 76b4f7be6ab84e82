//! `fieldValidation` over HTTP against the binary: unknown and duplicate fields in create,
//! update, merge / strategic / JSON patch and apply bodies, as kube-apiserver reports them
//! (Strict: 400 `strict decoding error: ...`; Warn: `Warning` headers; Ignore: silent), and
//! managedFields that never own a field the kind dropped.

mod common;

use axum::http::{Method, StatusCode};
use common::{Answer, send_raw, start_memory as start};
use kube::Client;
use serde_json::json;

async fn send(
    client: &Client,
    method: Method,
    uri: &str,
    content_type: &str,
    body: &str,
) -> Answer {
    send_raw(client, method, uri, content_type, body.as_bytes()).await
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JSON: &str = "application/json";

#[tokio::test]
async fn create_and_update_bodies() {
    let (_server, client, _dir) = start().await;
    // Strict: unknown and duplicate fields in document order, nothing written.
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"a"},"spec":{"x":1},"data":{"k":"v"}}"#;
    let strict = send(
        &client,
        Method::POST,
        &format!("{CMS}?fieldValidation=Strict"),
        JSON,
        body,
    )
    .await;
    assert_eq!(strict.status, StatusCode::BAD_REQUEST, "{:?}", strict.body);
    assert_eq!(
        Answer::message(&strict),
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "metadata.name", unknown field "spec""#
    );
    let missing = send(&client, Method::GET, &format!("{CMS}/a"), JSON, "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Warn (the default): created, one Warning header per problem.
    let warn = send(&client, Method::POST, CMS, JSON, body).await;
    assert_eq!(warn.status, StatusCode::CREATED, "{:?}", warn.body);
    assert_eq!(
        warn.warnings,
        vec![
            r#"299 - "duplicate field \"metadata.name\"""#,
            r#"299 - "unknown field \"spec\"""#
        ]
    );
    // The dropped field is nobody's: managedFields own only what was kept.
    let managed = warn.body["metadata"]["managedFields"][0]["fieldsV1"].to_string();
    assert!(
        managed.contains("f:data") && !managed.contains("f:spec"),
        "{managed}"
    );

    // Update with Ignore: no warnings; with Strict: 400.
    let mut object = warn.body.clone();
    object["bogus"] = json!(true);
    let text = object.to_string();
    let ignore = send(
        &client,
        Method::PUT,
        &format!("{CMS}/a?fieldValidation=Ignore"),
        JSON,
        &text,
    )
    .await;
    assert_eq!(ignore.status, StatusCode::OK, "{:?}", ignore.body);
    assert!(ignore.warnings.is_empty());
    object["metadata"] = ignore.body["metadata"].clone();
    let strict = send(
        &client,
        Method::PUT,
        &format!("{CMS}/a?fieldValidation=Strict"),
        JSON,
        &object.to_string(),
    )
    .await;
    assert_eq!(strict.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        Answer::message(&strict),
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus""#
    );
}

/// A Strict patch failure is kube-apiserver's 422 on the field `patch` (holding the patched
/// document), unlike create and update bodies (400).
fn assert_strict_patch(answer: &Answer, strict_error: &str) {
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        answer.body
    );
    assert_eq!(answer.body["reason"], "Invalid");
    let message = answer.message();
    assert!(
        message.starts_with(r#" "" is invalid: patch: Invalid value: ""#)
            && message.ends_with(strict_error),
        "{message}"
    );
    let cause = &answer.body["details"]["causes"][0];
    assert_eq!(cause["field"], "patch");
    assert!(
        cause["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(strict_error)),
        "{cause}"
    );
}

#[tokio::test]
async fn patch_bodies() {
    let (_server, client, _dir) = start().await;
    let created = send(
        &client,
        Method::POST,
        CMS,
        JSON,
        r#"{"metadata":{"name":"p"},"data":{"k":"v"}}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let uri = format!("{CMS}/p");

    // Merge patch: the patched document is checked; duplicates of the patch body come first.
    let strict = send(
        &client,
        Method::PATCH,
        &format!("{uri}?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"data":{"k":"1","k":"2"},"spec":{"foo":"x"}}"#,
    )
    .await;
    assert_strict_patch(
        &strict,
        r#"strict decoding error: duplicate field "data.k", unknown field "spec""#,
    );
    let unchanged = send(&client, Method::GET, &uri, JSON, "").await;
    assert_eq!(unchanged.body["data"]["k"], "v");

    // Strategic merge and JSON patches too.
    let strategic = send(
        &client,
        Method::PATCH,
        &format!("{uri}?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        r#"{"metadata":{"labels":{"a":"b"},"bogus":1}}"#,
    )
    .await;
    assert_strict_patch(
        &strategic,
        r#"strict decoding error: unknown field "metadata.bogus""#,
    );
    let json_patch = send(
        &client,
        Method::PATCH,
        &format!("{uri}?fieldValidation=Strict"),
        "application/json-patch+json",
        r#"[{"op":"add","path":"/extra","value":1}]"#,
    )
    .await;
    assert_strict_patch(
        &json_patch,
        r#"strict decoding error: unknown field "extra""#,
    );

    // Warn: patched, warned, and the dropped field is not owned by the patch's manager.
    let warn = send(
        &client,
        Method::PATCH,
        &format!("{uri}?fieldManager=patcher"),
        "application/merge-patch+json",
        r#"{"data":{"m":"1"},"spec":{"foo":"x"}}"#,
    )
    .await;
    assert_eq!(warn.status, StatusCode::OK, "{:?}", warn.body);
    assert_eq!(warn.warnings, vec![r#"299 - "unknown field \"spec\"""#]);
    assert_eq!(warn.body["data"]["m"], "1");
    let patcher = warn.body["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .find(|m| m["manager"] == "patcher")
        .expect("patcher entry")["fieldsV1"]
        .to_string();
    assert!(
        patcher.contains("f:m") && !patcher.contains("f:spec"),
        "{patcher}"
    );
}

#[tokio::test]
async fn apply_with_undeclared_fields_fails_whatever_the_directive() {
    let (_server, client, _dir) = start().await;
    for directive in ["Ignore", "Warn", "Strict"] {
        let answer = send(
            &client,
            Method::PATCH,
            &format!("{CMS}/ssa?fieldManager=m&fieldValidation={directive}"),
            "application/apply-patch+yaml",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"spec":{"foo":"x"},"data":{"k":"v"}}"#,
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{directive}");
        assert_eq!(
            Answer::message(&answer),
            "failed to create typed patch object (default/ssa; /v1, Kind=ConfigMap): .spec: field not declared in schema",
            "{directive}"
        );
    }
    // A clean apply creates; a duplicate key under Warn is a warning.
    let answer = send(
        &client,
        Method::PATCH,
        &format!("{CMS}/ssa?fieldManager=m"),
        "application/apply-patch+yaml",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"data":{"k":"v","k":"w"}}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    assert_eq!(
        answer.warnings,
        vec![r#"299 - "duplicate field \"data.k\"""#]
    );
}

#[tokio::test]
async fn delete_codes_and_media_types() {
    let (_server, client, _dir) = start().await;
    let created = send(
        &client,
        Method::POST,
        CMS,
        JSON,
        r#"{"metadata":{"name":"f","finalizers":["example.com/hold"]}}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    // Kept by a finalizer: 200 with the object, as kube-apiserver answers...
    let deleted = send(&client, Method::DELETE, &format!("{CMS}/f"), JSON, "").await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(deleted.body["metadata"]["deletionTimestamp"].is_string());
    // ...and 202 only when the client asked for cascading deletion with orphanDependents=false.
    let cascading = send(
        &client,
        Method::DELETE,
        &format!("{CMS}/f"),
        JSON,
        r#"{"orphanDependents":false}"#,
    )
    .await;
    assert_eq!(
        cascading.status,
        StatusCode::ACCEPTED,
        "{:?}",
        cascading.body
    );

    let text = send(&client, Method::POST, CMS, "text/plain", "hello").await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        Answer::message(&text),
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );

    let selector = send(
        &client,
        Method::GET,
        &format!("{CMS}?fieldSelector=spec.foo%3Dbar"),
        JSON,
        "",
    )
    .await;
    assert_eq!(selector.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        Answer::message(&selector),
        r#""spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace""#
    );
}
