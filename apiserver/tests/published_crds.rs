//! Published CRDs of widely used projects (`tests/crds/`, sources and licences in its README):
//! the Gateway API's GatewayClass, Gateway and HTTPRoute (large, two versions, dozens of CEL
//! rules, defaults, map lists) and cert-manager's Certificate (printer columns with filter
//! paths). Each is installed unchanged and established; objects get the CRDs' defaults, their
//! CEL rules reject what the projects reject, and their printer columns render.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

async fn start() -> (apiserver::ApiServer, String, Client) {
    common::start_in_process("memory://").await
}

fn published(file: &str) -> CustomResourceDefinition {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/crds")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Installs the CRD in `file` and waits until it is established.
async fn install(client: &Client, file: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = published(file);
    let name = crd.metadata.name.clone().unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .unwrap_or_else(|e| panic!("installing {file}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let crd = crds.get(&name).await.unwrap();
        let established = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} not established: {:?}",
            crd.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn api(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
) -> Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    if namespaced {
        Api::namespaced_with(client.clone(), "default", &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    }
}

fn object(api_version: &str, kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

async fn refused(api: &Api<DynamicObject>, object: &DynamicObject) -> String {
    match api.create(&PostParams::default(), object).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{}", status.message);
            status.message
        }
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test]
async fn gateway_api_crds_are_served_and_enforced() {
    let (_server, _address, client) = start().await;
    for file in [
        "gateway.networking.k8s.io_gatewayclasses.yaml",
        "gateway.networking.k8s.io_gateways.yaml",
        "gateway.networking.k8s.io_httproutes.yaml",
    ] {
        install(&client, file).await;
    }
    let group = "gateway.networking.k8s.io";
    let classes = api(
        &client,
        group,
        "v1",
        "GatewayClass",
        "gatewayclasses",
        false,
    );
    classes
        .create(
            &PostParams::default(),
            &object(
                "gateway.networking.k8s.io/v1",
                "GatewayClass",
                "example",
                json!({"controllerName": "example.com/gateway-controller"}),
            ),
        )
        .await
        .unwrap();

    let gateways = api(&client, group, "v1", "Gateway", "gateways", true);
    let gateway = gateways
        .create(
            &PostParams::default(),
            &object(
                "gateway.networking.k8s.io/v1",
                "Gateway",
                "web",
                json!({
                    "gatewayClassName": "example",
                    "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
                }),
            ),
        )
        .await
        .unwrap();
    // The CRD's default: routes from the Gateway's own namespace.
    assert_eq!(
        gateway.data["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["from"], "Same",
        "{}",
        gateway.data
    );
    // The CRD's CEL rules.
    let message = refused(
        &gateways,
        &object(
            "gateway.networking.k8s.io/v1",
            "Gateway",
            "twice",
            json!({
                "gatewayClassName": "example",
                "listeners": [
                    {"name": "http", "protocol": "HTTP", "port": 80},
                    {"name": "http", "protocol": "HTTP", "port": 8080},
                ],
            }),
        ),
    )
    .await;
    // The map list's own check and the CRD's CEL rule both report the repeated name.
    assert!(
        message.contains("spec.listeners[1]: Duplicate value"),
        "{message}"
    );
    assert!(
        message.contains("spec.listeners: Invalid value: \"array\": Listener name must be unique within the Gateway"),
        "{message}"
    );
    let message = refused(
        &gateways,
        &object("gateway.networking.k8s.io/v1", "Gateway", "tls", json!({
            "gatewayClassName": "example",
            "listeners": [{"name": "plain", "protocol": "HTTP", "port": 80, "tls": {"mode": "Terminate"}}],
        })),
    )
    .await;
    assert!(
        message.contains("tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"),
        "{message}"
    );

    let routes = api(&client, group, "v1", "HTTPRoute", "httproutes", true);
    let route = routes
        .create(
            &PostParams::default(),
            &object(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                "app",
                json!({
                    "parentRefs": [{"name": "web"}],
                    "hostnames": ["app.example.com"],
                    "rules": [{"backendRefs": [{"name": "app", "port": 8080}]}],
                }),
            ),
        )
        .await
        .unwrap();
    // Defaults from the schema: a PathPrefix "/" match, and the parent's group and kind.
    assert_eq!(
        route.data["spec"]["rules"][0]["matches"][0]["path"],
        json!({"type": "PathPrefix", "value": "/"}),
        "{}",
        route.data
    );
    assert_eq!(route.data["spec"]["parentRefs"][0]["kind"], "Gateway");
    let message = refused(
        &routes,
        &object(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "relative",
            json!({
                "parentRefs": [{"name": "web"}],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "api"}}]}],
            }),
        ),
    )
    .await;
    assert!(message.contains("value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"), "{message}");

    // The second version, converted by apiVersion alone (strategy None).
    let beta = api(&client, group, "v1beta1", "HTTPRoute", "httproutes", true);
    let seen = beta.get("app").await.unwrap();
    assert_eq!(
        seen.types.unwrap().api_version,
        "gateway.networking.k8s.io/v1beta1"
    );
    assert_eq!(seen.data["spec"]["hostnames"][0], "app.example.com");
}

#[tokio::test]
async fn cert_manager_certificates_render_their_printer_columns() {
    let (_server, address, client) = start().await;
    install(&client, "cert-manager.io_certificates.yaml").await;
    let certificates = api(
        &client,
        "cert-manager.io",
        "v1",
        "Certificate",
        "certificates",
        true,
    );
    certificates
        .create(
            &PostParams::default(),
            &object(
                "cert-manager.io/v1",
                "Certificate",
                "site",
                json!({
                    "secretName": "site-tls",
                    "issuerRef": {"name": "ca", "kind": "ClusterIssuer"},
                    "dnsNames": ["site.example.com"],
                }),
            ),
        )
        .await
        .unwrap();
    certificates
        .patch_status(
            "site",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "Issued", "message": "Certificate is up to date and has not expired"}]}})),
        )
        .await
        .unwrap();
    let table = common::get_table(
        &address,
        "/apis/cert-manager.io/v1/namespaces/default/certificates",
    )
    .await;
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "Ready",
            "Secret",
            "Issuer",
            "Status",
            "Expiration",
            "Age"
        ]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "site");
    assert_eq!(cells[1], "True");
    assert_eq!(cells[2], "site-tls");
    assert_eq!(cells[3], "ca");
    assert_eq!(cells[4], "Certificate is up to date and has not expired");
    assert_eq!(cells[5], Value::Null);
}
