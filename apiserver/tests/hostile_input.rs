//! Hostile input: property-generated raw HTTP requests (methods, path segments, query
//! parameters, headers, bodies in JSON, YAML and protobuf, patch documents of each type,
//! selectors, continue tokens) against an in-process server. Every answer must come without a
//! panic, below 500 (the memory backend is never down; the one exception is upstream's 504
//! for a resourceVersion the store has not reached, which waits 3 s first), and every error
//! must be a `metav1.Status`; afterwards the server still serves.
//!
//! `HOSTILE_CASES` sets how many requests (default 200,000: about a minute and a half in a
//! debug build, most of it the 3 s waits of those 504s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tower::ServiceExt;

/// Path segments: real ones, near misses and junk.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "api", "apis", "v1", "v2", "namespaces", "default", "kube-system", "configmaps",
            "secrets", "events", "leases", "serviceaccounts", "roles", "rolebindings",
            "clusterroles", "clusterrolebindings", "widgets", "status", "finalize", "token",
            "watch", "coordination.k8s.io", "rbac.authorization.k8s.io", "apps.example.io",
            "authorization.k8s.io", "selfsubjectaccessreviews", "authentication.k8s.io",
            "tokenreviews", "v1beta1", "openapi", "version", "healthz", "cm", "x", "",
        ]).prop_map(str::to_owned),
        1 => "[a-z0-9.%-]{1,20}",
        1 => "\\PC{0,12}".prop_map(|s| s.replace(['/', '?', '#', ' '], "")),
    ]
}

/// Percent-encodes everything but unreserved characters, as a client would.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Resource paths as clients build them (group-version, namespace, resource, name,
/// subresource, each sometimes wrong), and free-form ones.
fn path() -> impl Strategy<Value = String> {
    // Served resources with their group-version, and near misses.
    let served = prop_oneof![
        5 => prop::sample::select(vec![
            ("/api/v1", "configmaps"), ("/api/v1", "secrets"), ("/api/v1", "events"),
            ("/api/v1", "serviceaccounts"), ("/api/v1", "namespaces"),
            ("/apis/coordination.k8s.io/v1", "leases"),
            ("/apis/rbac.authorization.k8s.io/v1", "roles"),
            ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
            ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
            ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"),
            ("/apis/apps.example.io/v1", "widgets"), ("/apis/apps.example.io/v1beta1", "widgets"),
            ("/apis/authorization.k8s.io/v1", "selfsubjectaccessreviews"),
            ("/apis/authorization.k8s.io/v1", "subjectaccessreviews"),
            ("/apis/authorization.k8s.io/v1", "localsubjectaccessreviews"),
            ("/apis/authorization.k8s.io/v1", "selfsubjectrulesreviews"),
            ("/apis/authentication.k8s.io/v1", "tokenreviews"),
            ("/apis/authentication.k8s.io/v1", "selfsubjectreviews"),
        ]).prop_map(|(gv, r)| (gv.to_owned(), r.to_owned())),
        1 => (
            prop::sample::select(vec!["/api/v1", "/api/v2", "/apis/nope.io/v1", "/api/v1/watch"]),
            segment(),
        ).prop_map(|(gv, r)| (gv.to_owned(), r)),
    ];
    let name = prop_oneof![4 => "[a-z0-9][a-z0-9.-]{0,10}", 1 => segment()];
    let subresource = prop_oneof![
        3 => prop::sample::select(vec!["status", "token", "finalize"]).prop_map(str::to_owned),
        1 => segment(),
    ];
    let namespace = prop::sample::select(vec!["default", "kube-system", "nope", "default"]);
    let structured = (
        served,
        prop::option::weighted(0.6, namespace.prop_map(str::to_owned)),
        prop::option::weighted(0.6, name),
        prop::option::weighted(0.15, subresource),
    )
        .prop_map(|((gv, resource), namespace, name, sub)| {
            let mut path = gv;
            if let Some(namespace) = namespace {
                path.push_str(&format!("/namespaces/{}", escape(&namespace)));
            }
            for part in std::iter::once(Some(resource)).chain([name, sub]).flatten() {
                path.push('/');
                path.push_str(&escape(&part));
            }
            path
        });
    let free = prop::collection::vec(segment(), 0..8).prop_map(|segments| {
        let joined: Vec<String> = segments.iter().map(|s| escape(s)).collect();
        format!("/{}", joined.join("/"))
    });
    prop_oneof![4 => structured, 1 => free]
}

/// A query parameter: the options requests read, with good and bad values.
fn parameter() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
        "watch",
        "timeoutSeconds",
        "allowWatchBookmarks",
        "sendInitialEvents",
        "dryRun",
        "fieldManager",
        "fieldValidation",
        "force",
        "propagationPolicy",
        "gracePeriodSeconds",
        "orphanDependents",
        "pretty",
        "as",
        "hash",
        "x",
    ]);
    let values = prop_oneof![
        prop::sample::select(vec![
            "",
            "0",
            "1",
            "-1",
            "10",
            "true",
            "false",
            "All",
            "Strict",
            "Warn",
            "Ignore",
            "Exact",
            "NotOlderThan",
            "Background",
            "Foreground",
            "Orphan",
            "a=b",
            "a in (b,c)",
            "!a",
            "metadata.name=x",
            "metadata.namespace!=y",
            "status.phase=Running",
            "a%20in%20(",
            "99999999999999999999",
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJ4In0",
            "%ZZ",
            "%00",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,16}".prop_map(|s| escape(&s)),
    ];
    (keys, values).prop_map(|(k, v)| format!("{k}={}", escape(&v)))
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let object = (
        prop::sample::select(vec!["v1", "apps.example.io/v1", "rbac.authorization.k8s.io/v1", "x/y/z", ""]),
        prop::sample::select(vec!["ConfigMap", "Secret", "Widget", "Role", "RoleBinding", "Namespace", "Nope", ""]),
        "[a-z0-9.-]{0,12}",
        prop_oneof![
            Just(serde_json::json!({"data": {"a": "b"}})),
            Just(serde_json::json!({"spec": {"title": 3}, "status": "x"})),
            Just(serde_json::json!({"rules": [{"verbs": [], "apiGroups": [""], "resources": ["*"]}]})),
            Just(serde_json::json!({"roleRef": {"kind": "ClusterRole", "name": "cluster-admin", "apiGroup": "rbac.authorization.k8s.io"}, "subjects": [{"kind": "User", "name": "x"}]})),
            Just(serde_json::json!({"metadata": {"finalizers": ["a/b"], "labels": {"-": "?"}, "resourceVersion": "abc", "uid": 1}})),
            Just(serde_json::json!({"spec": {"resourceAttributes": {"verb": "get"}}})),
            Just(serde_json::json!([{"op": "add", "path": "/data/x", "value": 1}, {"op": "test", "path": "/nope"}])),
            Just(serde_json::json!(null)),
        ],
    )
        .prop_map(|(api_version, kind, name, extra)| {
            let mut doc = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
            if let (Some(map), Some(more)) = (doc.as_object_mut(), extra.as_object()) {
                for (k, v) in more {
                    map.insert(k.clone(), v.clone());
                }
            } else if extra.is_array() {
                doc = extra;
            }
            serde_json::to_vec(&doc).unwrap()
        });
    prop_oneof![
        4 => object,
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|tail| [b"k8s\0".to_vec(), tail].concat()),
        1 => Just(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\ndata: {a: 1}\nx: &a [*a]\n".to_vec()),
        1 => Just(Vec::new()),
    ]
}

#[derive(Debug, Clone)]
struct Hostile {
    method: Method,
    uri: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn request() -> impl Strategy<Value = Hostile> {
    let method = prop::sample::select(vec![
        Method::GET,
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ]);
    let content_type = prop::sample::select(vec![
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
        "text/plain",
        "application/json; charset=latin1",
        "",
    ]);
    let accept = prop::sample::select(vec![
        "application/json",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        "*/*",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        "application/yaml",
        "",
    ]);
    let extra = prop::sample::select(vec![
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        Some(("authorization", "Bearer nope")),
        Some(("impersonate-user", "bob")),
        Some(("impersonate-group", "devs")),
        Some(("user-agent", "fuzz/0")),
    ]);
    (
        method,
        path(),
        prop::collection::vec(parameter(), 0..5),
        content_type,
        accept,
        extra,
        body(),
    )
        .prop_map(|(method, path, query, content_type, accept, extra, body)| {
            let mut uri = path;
            if !query.is_empty() {
                uri.push('?');
                uri.push_str(&query.join("&"));
            }
            let mut headers = vec![
                ("content-type", content_type.to_owned()),
                ("accept", accept.to_owned()),
            ];
            if let Some((k, v)) = extra {
                headers.push((k, v.to_owned()));
            }
            Hostile {
                method,
                uri,
                headers,
                body,
            }
        })
}

#[test]
fn hostile_requests_get_a_status_and_the_server_keeps_serving() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, router) = runtime.block_on(async {
        let storage = storage::open("memory://").await.unwrap();
        let mut builder = apiserver::ServerBuilder::new(storage).unwrap();
        apiserver::kinds::register_all(&mut builder, None).unwrap();
        let server = builder.build().unwrap();
        server.bootstrap().await.unwrap();
        drop(server.controllers());
        let router = server.router();
        (server, router)
    });
    let cases = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    // How many answers of each status code, to see that the requests reach the handlers.
    let codes = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u64>::new());
    let result = runner.run(&request(), |hostile| {
        let router = router.clone();
        let sent = hostile.clone();
        let (status, body) = runtime.block_on(async move {
            let hostile = sent;
            let mut builder = Request::builder()
                .method(hostile.method.clone())
                .uri(&hostile.uri);
            for (k, v) in &hostile.headers {
                builder = builder.header(*k, v);
            }
            let Ok(request) = builder.body(Body::from(hostile.body.clone())) else {
                // Not a request hyper would hand over (an unparsable URI).
                return (StatusCode::IM_A_TEAPOT, Vec::new());
            };
            let watching = hostile.uri.contains("watch");
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            if hostile.method == Method::HEAD && status == StatusCode::GATEWAY_TIMEOUT {
                // A HEAD answer has no body to name its reason: the same GET tells it.
                let get = Request::get(&hostile.uri).body(Body::empty()).unwrap();
                let response = router.oneshot(get).await.unwrap();
                let body = axum::body::to_bytes(response.into_body(), 64 << 20)
                    .await
                    .unwrap();
                return (status, body.to_vec());
            }
            if watching && status.is_success() {
                // A watch streams until it times out; its head is the answer here.
                return (status, Vec::new());
            }
            let body = axum::body::to_bytes(response.into_body(), 64 << 20)
                .await
                .unwrap();
            (status, body.to_vec())
        });
        *codes.lock().unwrap().entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::IM_A_TEAPOT {
            return Ok(());
        }
        // The one 5xx upstream defines for a healthy server: a read at a resourceVersion
        // the store has not reached yet times out with 504 ResourceVersionTooLarge
        // (apimachinery's `NewTooLargeResourceVersionError`).
        let too_large = status == StatusCode::GATEWAY_TIMEOUT
            && String::from_utf8_lossy(&body).contains("\"reason\":\"ResourceVersionTooLarge\"");
        prop_assert!(
            status.as_u16() < 500 || too_large,
            "{} {}: {status} {}",
            hostile.method,
            hostile.uri,
            String::from_utf8_lossy(&body)
        );
        if status.as_u16() >= 400 && hostile.method != Method::HEAD {
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            prop_assert_eq!(
                &parsed["kind"],
                "Status",
                "{} {}: {} {}",
                hostile.method,
                hostile.uri,
                status,
                String::from_utf8_lossy(&body)
            );
            prop_assert_eq!(parsed["code"].as_u64(), Some(u64::from(status.as_u16())));
        }
        Ok(())
    });
    eprintln!(
        "{cases} hostile requests in {:.1}s; answers by status (418: not a valid request): {:?}",
        started.elapsed().as_secs_f64(),
        codes.lock().unwrap()
    );
    result.unwrap();
    // Still serving.
    runtime.block_on(async {
        for uri in [
            "/readyz",
            "/api/v1/namespaces",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        ] {
            let request = Request::get(uri).body(Body::empty()).unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
        }
    });
    server.shutdown();
}

/// Request options are refused as upstream's `ValidateCreateOptions`, `ValidateUpdateOptions`,
/// `ValidatePatchOptions`, `ValidateDeleteOptions` and list-option validation refuse them:
/// code, reason, message and the options kind in the details.
#[tokio::test]
async fn options_are_validated_as_upstream() {
    let storage = storage::open("memory://").await.unwrap();
    let mut builder = apiserver::ServerBuilder::new(storage).unwrap();
    apiserver::kinds::register_all(&mut builder, None).unwrap();
    let server = builder.build().unwrap();
    server.bootstrap().await.unwrap();
    let router = server.router();
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#;
    let base = "/api/v1/namespaces/default/configmaps";
    let long_manager = "m".repeat(129);
    let cases: Vec<(Method, String, &str, &str, u16, &str, &str)> = vec![
        (
            Method::POST,
            format!("{base}?dryRun=Some"),
            "application/json",
            cm,
            422,
            "CreateOptions",
            r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: supported values: "All""#,
        ),
        (
            Method::POST,
            format!("{base}?fieldManager={long_manager}"),
            "application/json",
            cm,
            422,
            "CreateOptions",
            r#"CreateOptions.meta.k8s.io "" is invalid: fieldManager: Too long: must have at most 128 bytes"#,
        ),
        (
            Method::PUT,
            format!("{base}/x?dryRun=Some"),
            "application/json",
            cm,
            422,
            "UpdateOptions",
            r#"UpdateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: supported values: "All""#,
        ),
        (
            Method::PATCH,
            format!("{base}/x?dryRun=Some"),
            "application/merge-patch+json",
            "{}",
            422,
            "PatchOptions",
            r#"PatchOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: supported values: "All""#,
        ),
        (
            Method::PATCH,
            format!("{base}/x?force=true"),
            "application/merge-patch+json",
            "{}",
            422,
            "PatchOptions",
            r#"PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch"#,
        ),
        (
            Method::DELETE,
            format!("{base}/missing?propagationPolicy=Sideways"),
            "application/json",
            "",
            422,
            "DeleteOptions",
            r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": supported values: "Foreground", "Background", "Orphan", "nil""#,
        ),
        (
            Method::DELETE,
            format!("{base}/missing?dryRun=Some"),
            "application/json",
            "",
            422,
            "DeleteOptions",
            r#"DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: supported values: "All""#,
        ),
        (
            Method::GET,
            format!("{base}?resourceVersionMatch=Exact"),
            "",
            "",
            422,
            "ListOptions",
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"#,
        ),
    ];
    for (method, uri, content_type, body, code, kind, message) in cases {
        let request = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, code, "{method} {uri}: {answer}");
        assert_eq!(answer["reason"], "Invalid", "{method} {uri}");
        assert_eq!(answer["details"]["kind"], kind, "{method} {uri}");
        assert_eq!(answer["details"]["group"], "meta.k8s.io", "{method} {uri}");
        assert_eq!(answer["message"], message, "{method} {uri}");
    }
    server.shutdown();
}
