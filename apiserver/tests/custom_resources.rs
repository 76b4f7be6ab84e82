//! CustomResourceDefinitions over HTTP, through kube-rs: a CRD is validated, established and
//! served at once; its objects are validated, pruned and defaulted by the schema, shown with
//! the CRD's printer columns, selected by its selectable fields, written through `status`;
//! name conflicts are reported in conditions; deleting a CRD deletes its objects; stored CRDs
//! are served again after a restart; and a kube-rs `CustomResource` type is installed from its
//! generated CRD and driven by a kube-rs `Controller`; and conversion through a CRD's HTTPS
//! webhook.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![recursion_limit = "256"]

mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::{Client, CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A server on `url` with every built-in kind and its controllers, its address and a client.
async fn start_on(url: &str) -> (apiserver::ApiServer, String, Client) {
    common::start_in_process(url).await
}

/// The upstream documentation's CronTab CRD, with a status subresource, printer columns, a
/// selectable field, a default and bounds.
fn crontab_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
                "selectableFields": [{"jsonPath": ".spec.color"}],
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["cronSpec"],
                      "x-kubernetes-validations": [{"rule": "!has(self.image) || !self.image.startsWith('forbidden/')",
                        "messageExpression": "'image ' + self.image + ' comes from a forbidden registry'"}],
                      "properties": {
                        "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                        "image": {"type": "string", "maxLength": 256},
                        "color": {"type": "string", "enum": ["red", "blue"],
                          "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "color is immutable"}]},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"], "maxItems": 16,
                          "items": {"type": "object", "required": ["name"], "properties": {
                            "name": {"type": "string", "maxLength": 63},
                            "port": {"type": "integer"}}}},
                    }},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"},
                        "replicas": {"type": "integer"}, "selector": {"type": "string"}}},
                }}},
            }],
        }
    }))
    .unwrap()
}

fn crontab_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("stable.example.com", "v1", "CronTab"),
        "crontabs",
    )
}

/// The CronTabs of namespace `default`, as v1.
fn crontabs_of(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "default", &crontab_resource())
}

fn crontab(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// Waits until `check` holds for the CRD `name`, or panics after 10 s with the last state.
async fn wait_for_crd(
    crds: &Api<CustomResourceDefinition>,
    name: &str,
    check: impl Fn(&CustomResourceDefinition) -> bool,
) -> CustomResourceDefinition {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let crd = crds.get(name).await.unwrap();
        if check(&crd) {
            return crd;
        }
        assert!(
            Instant::now() < deadline,
            "CRD {name} never got there: {:?}",
            crd.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the CRD `name` is gone, or panics after 10 s.
async fn wait_until_gone(crds: &Api<CustomResourceDefinition>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while crds.get_opt(name).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the CRD {name} stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn condition(crd: &CustomResourceDefinition, type_: &str) -> Option<(String, String)> {
    let conditions = crd.status.as_ref()?.conditions.as_ref()?;
    let found = conditions.iter().find(|c| c.type_ == type_)?;
    Some((
        found.status.clone(),
        found.reason.clone().unwrap_or_default(),
    ))
}

fn established(crd: &CustomResourceDefinition) -> bool {
    condition(crd, "Established").is_some_and(|(status, _)| status == "True")
}

async fn install(client: &Client, crd: &CustomResourceDefinition) -> CustomResourceDefinition {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), crd).await.unwrap();
    let name = crd.metadata.name.clone().unwrap();
    wait_for_crd(&crds, &name, established).await
}

fn api_error(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn a_crd_is_established_and_its_objects_follow_the_schema() {
    let (_server, address, client) = start_on("memory://").await;
    let crd = install(&client, &crontab_crd()).await;
    assert_eq!(
        condition(&crd, "NamesAccepted"),
        Some(("True".to_owned(), "NoConflicts".to_owned()))
    );
    let status = crd.status.as_ref().unwrap();
    assert_eq!(
        status.stored_versions.as_deref(),
        Some(&["v1".to_owned()][..])
    );
    assert_eq!(status.accepted_names.as_ref().unwrap().kind, "CronTab");

    // Discovery lists the new kind.
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (found, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(
            "stable.example.com",
            "v1",
            "CronTab",
        ))
        .expect("CronTab in discovery");
    assert_eq!(found.plural, "crontabs");

    let crontabs = crontabs_of(&client);
    // Defaulting, and pruning of a field the schema does not know.
    let created = crontabs
        .create(
            &PostParams::default(),
            &crontab(
                "c1",
                json!({"cronSpec": "* * * * */5", "color": "red", "bogus": 1}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["replicas"], 1);
    assert!(created.data["spec"].get("bogus").is_none());
    assert_eq!(created.metadata.generation, Some(1));

    // Validation with upstream's messages.
    let error = api_error(
        crontabs
            .create(
                &PostParams::default(),
                &crontab("c2", json!({"cronSpec": "often", "replicas": 20})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 422);
    assert!(
        error.message.contains("spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains(
            "spec.cronSpec: Invalid value: \"often\": spec.cronSpec in body should match"
        ),
        "{}",
        error.message
    );

    // CEL rules, with messageExpression, and a transition rule.
    let error = api_error(
        crontabs
            .create(
                &PostParams::default(),
                &crontab(
                    "c2",
                    json!({"cronSpec": "* * * * *", "image": "forbidden/x"}),
                ),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 422);
    assert!(
        error.message.contains(
            "spec: Invalid value: \"object\": image forbidden/x comes from a forbidden registry"
        ),
        "{}",
        error.message
    );
    let error = api_error(
        crontabs
            .patch(
                "c1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"color": "blue"}})),
            )
            .await
            .unwrap_err(),
    );
    assert!(
        error
            .message
            .contains("spec.color: Invalid value: \"string\": color is immutable"),
        "{}",
        error.message
    );

    // Strict field validation reports the pruned field as upstream does.
    let strict = post_json(
        &address,
        "/apis/stable.example.com/v1/namespaces/default/crontabs?fieldValidation=Strict",
        json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "c3"},
               "spec": {"cronSpec": "* * * * *", "bogus": 1}}),
    )
    .await;
    // As upstream: a strict decoding error is a 400 on create.
    assert_eq!(strict.0, 400, "{}", strict.1);
    assert!(
        strict.1.contains("unknown field \\\"spec.bogus\\\""),
        "{}",
        strict.1
    );

    // Merge, JSON and apply patches; the generation moves with the spec only.
    let patched = crontabs
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["replicas"], 3);
    assert_eq!(patched.metadata.generation, Some(2));
    let patched = crontabs
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/spec/image", "value": "busybox"}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["image"], "busybox");
    let applied = crontabs
        .patch(
            "c4",
            &PatchParams::apply("test").force(),
            &Patch::Apply(
                json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
                "metadata": {"name": "c4"}, "spec": {"cronSpec": "0 * * * *", "color": "blue"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["spec"]["replicas"], 1);

    // The status subresource: main writes keep the status, status writes keep the spec.
    let with_status = crontabs
        .patch_status(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["ready"], true);
    assert_eq!(with_status.data["spec"]["replicas"], 3);
    assert_eq!(with_status.metadata.generation, Some(3));
    let main = crontabs
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": false}})),
        )
        .await
        .unwrap();
    assert_eq!(main.data["status"]["ready"], true);
    assert_eq!(main.metadata.generation, Some(3));

    // The scale subresource: an autoscaling/v1 Scale, read, replaced and patched.
    let scale = crontabs.get_scale("c1").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(3));
    crontabs
        .patch_status(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "selector": "app=c1"}})),
        )
        .await
        .unwrap();
    let scale = crontabs.get_scale("c1").await.unwrap();
    assert_eq!(scale.status.as_ref().unwrap().replicas, 2);
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=c1")
    );
    let replaced = crontabs
        .replace_scale(
            "c1",
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "c1"}, "spec": {"replicas": 4}}))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(replaced.spec.unwrap().replicas, Some(4));
    let patched = crontabs
        .patch_scale(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(5));
    assert_eq!(
        crontabs.get("c1").await.unwrap().data["spec"]["replicas"],
        5
    );
    let error = api_error(
        crontabs
            .patch_scale(
                "c1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": -1}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 422, "{}", error.message);
    let error = api_error(
        crontabs
            .patch_scale(
                "c1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 3_000_000_000_i64}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 400, "{}", error.message);
    let error = api_error(
        crontabs
            .patch_scale(
                "c1",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 2}}),
                ),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 409, "{}", error.message);
    // Writes through the scale keep the object valid by its schema (maximum 10).
    let error = api_error(
        crontabs
            .patch_scale(
                "c1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 11}})),
            )
            .await
            .unwrap_err(),
    );
    assert!(
        error
            .message
            .contains("spec.replicas in body should be less than or equal to 10"),
        "{}",
        error.message
    );
    crontabs
        .patch_scale(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();

    // Selectable fields.
    let red = crontabs
        .list(&ListParams::default().fields("spec.color=red"))
        .await
        .unwrap();
    let names: Vec<String> = red
        .items
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["c1"]);
    let error = api_error(
        crontabs
            .list(&ListParams::default().fields("spec.image=busybox"))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 400, "{}", error.message);

    // Printer columns.
    let table = common::get_table(
        &address,
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
    )
    .await;
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Spec", "Replicas", "Age"]);
    let first = &table["rows"][0]["cells"];
    assert_eq!(first[0], "c1");
    assert_eq!(first[1], "* * * * */5");
    assert_eq!(first[2], 3);

    // A watch sees writes.
    let mut events = crontabs
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    crontabs
        .create(
            &PostParams::default(),
            &crontab("c5", json!({"cronSpec": "1 * * * *"})),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(Ok(kube::api::WatchEvent::Added(o)))) => seen.push(o.metadata.name.unwrap()),
            Ok(Some(Ok(_))) => {}
            other => panic!("watch: {other:?}"),
        }
    }
    assert!(seen.contains(&"c5".to_owned()), "{seen:?}");

    // Deleting the CRD deletes its objects first, then the kind is no longer served.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("crontabs.stable.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match crds.get_opt("crontabs.stable.example.com").await.unwrap() {
            None => break,
            Some(crd) => assert!(
                Instant::now() < deadline,
                "CRD not deleted: {:?}",
                crd.status
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = api_error(crontabs.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(error.code, 404);

    // The same CRD again: none of the old objects is back.
    install(&client, &crontab_crd()).await;
    assert!(
        crontabs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn post_json(address: &str, path: &str, body: Value) -> (u16, String) {
    common::raw_request(address, "POST", path, "application/json", Some(body)).await
}

#[tokio::test]
async fn conflicting_names_are_reported_and_not_served() {
    let (_server, _address, client) = start_on("memory://").await;
    install(&client, &crontab_crd()).await;
    let mut other = crontab_crd();
    other.metadata.name = Some("crontabs2.stable.example.com".to_owned());
    other.spec.names.plural = "crontabs2".to_owned();
    other.spec.names.singular = Some("crontab2".to_owned());
    other.spec.names.short_names = None;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &other).await.unwrap();
    let crd = wait_for_crd(&crds, "crontabs2.stable.example.com", |crd| {
        condition(crd, "NamesAccepted").is_some()
    })
    .await;
    assert_eq!(
        condition(&crd, "NamesAccepted"),
        Some(("False".to_owned(), "KindConflict".to_owned()))
    );
    assert_eq!(
        condition(&crd, "Established"),
        Some(("False".to_owned(), "NotAccepted".to_owned()))
    );
    // A CRD may not take the names of a built-in kind either.
    let mut widgets = crontab_crd();
    widgets.metadata.name = Some("widgets.apps.example.io".to_owned());
    widgets.spec.group = "apps.example.io".to_owned();
    widgets.spec.names.plural = "widgets".to_owned();
    widgets.spec.names.singular = Some("gizmo".to_owned());
    widgets.spec.names.kind = "Gizmo".to_owned();
    widgets.spec.names.short_names = None;
    crds.create(&PostParams::default(), &widgets).await.unwrap();
    let crd = wait_for_crd(&crds, "widgets.apps.example.io", |crd| {
        condition(crd, "NamesAccepted").is_some()
    })
    .await;
    assert_eq!(
        condition(&crd, "NamesAccepted"),
        Some(("False".to_owned(), "PluralConflict".to_owned()))
    );
    // The loser is not served; deleting the CRD that clashed with the built-in widgets leaves
    // the widgets alone.
    let losers = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("stable.example.com", "v1", "CronTab"),
        "crontabs2",
    );
    let losers: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &losers);
    assert_eq!(
        api_error(losers.list(&ListParams::default()).await.unwrap_err()).code,
        404
    );
    let widgets = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apps.example.io", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &widgets);
    let widget: DynamicObject = serde_json::from_value(json!({"apiVersion": "apps.example.io/v1",
        "kind": "Widget", "metadata": {"name": "kept"}, "spec": {"displayName": "Kept"}}))
    .unwrap();
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();
    crds.delete("widgets.apps.example.io", &DeleteParams::default())
        .await
        .unwrap();
    wait_until_gone(&crds, "widgets.apps.example.io").await;
    assert!(
        widgets.get_opt("kept").await.unwrap().is_some(),
        "a built-in object was deleted"
    );
}

#[tokio::test]
async fn invalid_crds_are_rejected_with_upstream_messages() {
    let (_server, _address, client) = start_on("memory://").await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd = crontab_crd();
    crd.spec.versions[0].storage = false;
    crd.metadata.name = Some("crontab.stable.example.com".to_owned());
    let error = api_error(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    assert_eq!(error.code, 422);
    assert!(error.message.starts_with("CustomResourceDefinition.apiextensions.k8s.io \"crontab.stable.example.com\" is invalid: "), "{}", error.message);
    assert!(error.message.contains("metadata.name: Invalid value: \"crontab.stable.example.com\": must be spec.names.plural+\".\"+spec.group"), "{}", error.message);
    assert!(
        error
            .message
            .contains("must have exactly one version marked as storage version"),
        "{}",
        error.message
    );
    let mut crd = crontab_crd();
    crd.spec.versions[0].schema = None;
    let error = api_error(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    assert!(
        error.message.contains(
            "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"
        ),
        "{}",
        error.message
    );
}

/// A runtime of its own per server, so every task of the first ends and the store closes.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[cfg(feature = "sqlite")]
#[test]
fn stored_crds_are_served_again_after_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("db.sqlite").display());
    let first = runtime();
    first.block_on(async {
        let (_server, _address, client) = start_on(&url).await;
        install(&client, &crontab_crd()).await;
        let crontabs = crontabs_of(&client);
        crontabs
            .create(
                &PostParams::default(),
                &crontab("kept", json!({"cronSpec": "* * * * *"})),
            )
            .await
            .unwrap();
    });
    first.shutdown_timeout(Duration::from_secs(10));
    runtime().block_on(async {
        let (_server, _address, client) = start_on(&url).await;
        // No waiting: bootstrap serves established CRDs before requests are taken.
        let crontabs = crontabs_of(&client);
        let kept = crontabs.get("kept").await.unwrap();
        assert_eq!(kept.data["spec"]["replicas"], 1);
    });
}

/// A kube-rs custom resource, as a controller author writes one.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "docs.example.org",
    version = "v1",
    kind = "Document",
    namespaced,
    status = "DocumentStatus",
    shortname = "doc",
    printcolumn = r#"{"name":"Title","type":"string","jsonPath":".spec.title"}"#
)]
struct DocumentSpec {
    title: String,
    #[serde(default)]
    pages: u32,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
struct DocumentStatus {
    published: bool,
}

#[tokio::test]
async fn a_kube_rs_custom_resource_runs_under_a_controller() {
    use kube::runtime::Controller;
    use kube::runtime::controller::Action;
    use std::sync::Arc;
    let (_server, _address, client) = start_on("memory://").await;
    install(&client, &Document::crd()).await;
    let documents: Api<Document> = Api::namespaced(client.clone(), "default");

    // A kube-rs Controller: reconciling a document marks it published.
    async fn reconcile(
        document: Arc<Document>,
        api: Arc<Api<Document>>,
    ) -> Result<Action, kube::Error> {
        if !document.status.as_ref().is_some_and(|s| s.published) {
            let name = document.metadata.name.clone().unwrap_or_default();
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"published": true}})),
            )
            .await?;
        }
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<Document>, _: &kube::Error, _: Arc<Api<Document>>) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let controller = tokio::spawn(
        Controller::new(documents.clone(), kube::runtime::watcher::Config::default())
            .run(reconcile, error_policy, Arc::new(documents.clone()))
            .for_each(|_| async {}),
    );
    for i in 0..3 {
        let document = Document::new(
            &format!("d{i}"),
            DocumentSpec {
                title: format!("Title {i}"),
                pages: i,
            },
        );
        documents
            .create(&PostParams::default(), &document)
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = documents.list(&ListParams::default()).await.unwrap();
        let published = list
            .items
            .iter()
            .filter(|d| d.status.as_ref().is_some_and(|s| s.published))
            .count();
        if published == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "published {published} of 3");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    controller.abort();
}

#[tokio::test]
async fn a_terminating_crd_waits_for_its_objects_and_refuses_creates() {
    let (_server, _address, client) = start_on("memory://").await;
    install(&client, &crontab_crd()).await;
    let crontabs = crontabs_of(&client);
    let mut held = crontab("held", json!({"cronSpec": "* * * * *"}));
    held.metadata.finalizers = Some(vec!["example.com/hold".to_owned()]);
    crontabs
        .create(&PostParams::default(), &held)
        .await
        .unwrap();

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("crontabs.stable.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let crd = wait_for_crd(&crds, "crontabs.stable.example.com", |crd| {
        condition(crd, "Terminating")
            .is_some_and(|(status, reason)| status == "True" && reason == "InstanceDeletionCheck")
    })
    .await;
    assert!(
        crd.metadata
            .finalizers
            .unwrap()
            .contains(&"customresourcecleanup.apiextensions.k8s.io".to_owned())
    );
    let error = api_error(
        crontabs
            .create(
                &PostParams::default(),
                &crontab("late", json!({"cronSpec": "* * * * *"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 405);
    assert_eq!(
        error.message,
        "create not allowed while custom resource definition is terminating"
    );

    // Once the object's own finalizer goes, so do the object and the CRD.
    crontabs
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    wait_until_gone(&crds, "crontabs.stable.example.com").await;
}

#[tokio::test]
async fn server_side_apply_merges_map_lists_by_their_keys() {
    let (_server, _address, client) = start_on("memory://").await;
    install(&client, &crontab_crd()).await;
    let crontabs = crontabs_of(&client);
    let apply = |manager: &'static str, port: Value| {
        let crontabs = crontabs.clone();
        async move {
            crontabs
                .patch(
                    "shared",
                    &PatchParams::apply(manager),
                    &Patch::Apply(
                        json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
                        "metadata": {"name": "shared"},
                        "spec": {"cronSpec": "* * * * *", "ports": [port]}}),
                    ),
                )
                .await
        }
    };
    apply("first", json!({"name": "http", "port": 80}))
        .await
        .unwrap();
    // Another manager's item of the same map list sits beside the first one's; the shared
    // scalar it sets to the same value is co-owned, not a conflict.
    let merged = apply("second", json!({"name": "metrics", "port": 9090}))
        .await
        .unwrap();
    let names: Vec<&str> = merged.data["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http", "metrics"]);
    // The same item from two managers with different values conflicts.
    let error = api_error(
        apply("second", json!({"name": "http", "port": 8080}))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 409, "{}", error.message);
}

#[tokio::test]
async fn defaults_added_to_a_crd_apply_to_stored_objects_on_read() {
    let (_server, _address, client) = start_on("memory://").await;
    install(&client, &crontab_crd()).await;
    let crontabs = crontabs_of(&client);
    crontabs
        .create(
            &PostParams::default(),
            &crontab("old", json!({"cronSpec": "* * * * *"})),
        )
        .await
        .unwrap();
    // The CRD gains a default for spec.image; the stored object does not have it.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd = crds.get("crontabs.stable.example.com").await.unwrap();
    let schema = crd.spec.versions[0].schema.as_mut().unwrap();
    let mut root = serde_json::to_value(schema.open_api_v3_schema.as_ref().unwrap()).unwrap();
    root["properties"]["spec"]["properties"]["image"]["default"] = json!("busybox:1.36");
    schema.open_api_v3_schema = Some(serde_json::from_value(root).unwrap());
    crds.replace("crontabs.stable.example.com", &PostParams::default(), &crd)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = crontabs.get("old").await.unwrap();
        if read.data["spec"]["image"] == "busybox:1.36" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no default on read: {}",
            read.data
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = crontabs.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].data["spec"]["image"], "busybox:1.36");
}

/// A conversion webhook over HTTPS on a thread and runtime of its own (the server's converter
/// calls it synchronously): CronTab v1 `spec.cronSpec` is v2 `spec.schedule`. Returns its URL
/// and the PEM of the CA that signed its certificate.
fn start_conversion_webhook(dir: &std::path::Path) -> (String, String) {
    use axum::routing::post;
    let tls = apiserver::tls::ensure(dir, &["127.0.0.1".to_owned()]).unwrap();
    let config = apiserver::tls::server_config(&tls.serving_cert, &tls.serving_key, None).unwrap();
    let ca = std::fs::read_to_string(&tls.ca_cert).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("https://{}/convert", listener.local_addr().unwrap());
    let convert = |body: axum::body::Bytes| async move {
        let review: Value = serde_json::from_slice(&body).unwrap();
        let request = &review["request"];
        let desired = request["desiredAPIVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let converted: Vec<Value> = request["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|object| {
                let mut object = object.clone();
                let spec = object["spec"].as_object_mut().unwrap();
                if desired.ends_with("/v2") {
                    if let Some(cron) = spec.remove("cronSpec") {
                        spec.insert("schedule".to_owned(), cron);
                    }
                } else if let Some(schedule) = spec.remove("schedule") {
                    spec.insert("cronSpec".to_owned(), schedule);
                }
                object["apiVersion"] = json!(desired);
                object
            })
            .collect();
        let answer = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": request["uid"], "result": {"status": "Success"},
                "convertedObjects": converted}});
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            answer.to_string(),
        )
    };
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let router = axum::Router::new().route("/convert", post(convert));
            let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
            axum_server::from_tcp_rustls(listener, config)
                .unwrap()
                .serve(router.into_make_service())
                .await
                .unwrap();
        });
    });
    (url, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_convert_through_the_crds_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let (url, ca) = start_conversion_webhook(dir.path());
    let (_server, _address, client) = start_on("memory://").await;
    let spec_schema = |field: &str| {
        json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
            "properties": {field: {"type": "string"}}}}}})
    };
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab"},
            "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                "clientConfig": {"url": url, "caBundle": base64_encode(ca.as_bytes())}}},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": spec_schema("cronSpec")},
                {"name": "v2", "served": true, "storage": false, "schema": spec_schema("schedule")},
            ],
        }
    }))
    .unwrap();
    install(&client, &crd).await;
    let v1 = crontabs_of(&client);
    let v2_resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("stable.example.com", "v2", "CronTab"),
        "crontabs",
    );
    let v2: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &v2_resource);
    v1.create(
        &PostParams::default(),
        &crontab("old", json!({"cronSpec": "* * * * *"})),
    )
    .await
    .unwrap();
    let seen = v2.get("old").await.unwrap();
    assert_eq!(seen.data["spec"], json!({"schedule": "* * * * *"}));
    let created: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "stable.example.com/v2",
        "kind": "CronTab", "metadata": {"name": "new", "labels": {"made": "in-v2"}},
        "spec": {"schedule": "0 * * * *"}}))
        .unwrap();
    let answered = v2.create(&PostParams::default(), &created).await.unwrap();
    assert_eq!(answered.data["spec"], json!({"schedule": "0 * * * *"}));
    let stored = v1.get("new").await.unwrap();
    assert_eq!(stored.data["spec"], json!({"cronSpec": "0 * * * *"}));
    assert_eq!(stored.metadata.labels.unwrap()["made"], "in-v2");
    let listed = v2.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(
        listed
            .items
            .iter()
            .all(|o| o.data["spec"].get("schedule").is_some())
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn discovery_etags_and_openapi_follow_new_crds() {
    const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let (_server, address, client) = start_on("memory://").await;
    let etag_of = |head: &str| {
        head.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("etag:")
                    .then(|| l[5..].trim().to_owned())
            })
            .expect("an ETag")
    };
    let (code, head, _) =
        common::raw_exchange(&address, "GET", "/apis", AGGREGATED, "", None).await;
    assert_eq!(code, 200);
    let before = etag_of(&head);
    let if_none_match = format!("If-None-Match: {before}\r\n");
    let (code, _, _) =
        common::raw_exchange(&address, "GET", "/apis", AGGREGATED, &if_none_match, None).await;
    assert_eq!(code, 304);

    install(&client, &crontab_crd()).await;
    let (code, head, body) =
        common::raw_exchange(&address, "GET", "/apis", AGGREGATED, &if_none_match, None).await;
    assert_eq!(
        code, 200,
        "the old ETag must not match once a CRD is served"
    );
    assert_ne!(etag_of(&head), before);
    assert!(body.contains("\"crontabs\""), "{body}");

    // OpenAPI v3 (per group-version) and v2 carry the CRD's schema.
    let (code, root) =
        common::raw_request(&address, "GET", "/openapi/v3", "application/json", None).await;
    assert_eq!(code, 200);
    let root: Value = serde_json::from_str(&root).unwrap();
    let document = root["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"]
        .as_str()
        .expect("a document for the CRD's group-version")
        .to_owned();
    let (code, v3) =
        common::raw_request(&address, "GET", &document, "application/json", None).await;
    assert_eq!(code, 200);
    let v3: Value = serde_json::from_str(&v3).unwrap();
    let schema = &v3["components"]["schemas"]["com.example.stable.v1.CronTab"];
    assert_eq!(
        schema["properties"]["spec"]["properties"]["cronSpec"]["type"], "string",
        "{v3}"
    );
    let (code, v2) =
        common::raw_request(&address, "GET", "/openapi/v2", "application/json", None).await;
    assert_eq!(code, 200);
    let v2: Value = serde_json::from_str(&v2).unwrap();
    assert!(
        v2["definitions"]["com.example.stable.v1.CronTab"]["properties"]["spec"].is_object(),
        "no CronTab in /openapi/v2"
    );
}

/// A CRD still terminating when the server stops (its objects held by finalizers) is served
/// again after the restart for its cleanup only: creates are refused, and once the objects
/// go, so does the CRD, leaving no object behind for a CRD of the same name.
#[cfg(feature = "sqlite")]
#[test]
fn a_terminating_crd_finishes_its_cleanup_after_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", directory.path().join("db.sqlite").display());
    let first = runtime();
    first.block_on(async {
        let (_server, _address, client) = start_on(&url).await;
        install(&client, &crontab_crd()).await;
        let mut held = crontab("held", json!({"cronSpec": "* * * * *"}));
        held.metadata.finalizers = Some(vec!["example.com/hold".to_owned()]);
        crontabs_of(&client)
            .create(&PostParams::default(), &held)
            .await
            .unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.delete("crontabs.stable.example.com", &DeleteParams::default())
            .await
            .unwrap();
        wait_for_crd(&crds, "crontabs.stable.example.com", |crd| {
            condition(crd, "Terminating")
                .is_some_and(|(_, reason)| reason == "InstanceDeletionCheck")
        })
        .await;
    });
    first.shutdown_timeout(Duration::from_secs(10));
    runtime().block_on(async {
        let (_server, _address, client) = start_on(&url).await;
        let crontabs = crontabs_of(&client);
        let error = api_error(
            crontabs
                .create(
                    &PostParams::default(),
                    &crontab("late", json!({"cronSpec": "* * * * *"})),
                )
                .await
                .unwrap_err(),
        );
        assert_eq!(error.code, 405, "{}", error.message);
        crontabs
            .patch(
                "held",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        wait_until_gone(&crds, "crontabs.stable.example.com").await;
        install(&client, &crontab_crd()).await;
        assert!(
            crontabs
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
    });
}
