//! Unit tests of the scheme, the mapper and discovery, with the core kinds and Widgets.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::{Value, json};

use apimachinery::status::GroupResource;
use scheme::*;

fn scheme() -> Scheme {
    let mut scheme = Scheme::new();
    builtin::register_core(&mut scheme).unwrap();
    example_widgets::register(&mut scheme).unwrap();
    scheme
}

fn gvr(group: &str, version: &str, resource: &str) -> GroupVersionResource {
    GroupVersionResource::new(group, version, resource)
}

#[test]
fn identifiers_print_like_kubernetes() {
    let gvk = GroupVersionKind::new("apps.example.io", "v1", "Widget");
    assert_eq!(gvk.to_string(), "apps.example.io/v1, Kind=Widget");
    assert_eq!(
        GroupVersionKind::new("", "v1", "ConfigMap").to_string(),
        "/v1, Kind=ConfigMap"
    );
    assert_eq!(
        gvr("apps.example.io", "v1", "widgets").to_string(),
        "apps.example.io/v1, Resource=widgets"
    );
    assert_eq!(gvk.group_kind().to_string(), "Widget.apps.example.io");
    assert_eq!(GroupKind::new("", "ConfigMap").to_string(), "ConfigMap");
    assert_eq!(gvk.api_version(), "apps.example.io/v1");
    assert_eq!(GroupVersion::new("", "v1").to_string(), "v1");
    assert_eq!(
        GroupVersion::parse("apps.example.io/v1beta1").unwrap(),
        GroupVersion::new("apps.example.io", "v1beta1")
    );
    assert_eq!(
        GroupVersion::parse("v1").unwrap(),
        GroupVersion::new("", "v1")
    );
    assert_eq!(GroupVersion::parse("").unwrap(), GroupVersion::default());
    let error = GroupVersion::parse("a/b/c").unwrap_err();
    assert_eq!((error.code, error.reason.as_str()), (400, "BadRequest"));
}

#[test]
fn registration_rejects_duplicates_and_bad_info() {
    let mut scheme = scheme();
    assert!(example_widgets::register(&mut scheme).is_err());
    assert!(builtin::register_core(&mut scheme).is_err());
    let mut fresh = Scheme::new();
    let bad = example_widgets::widget_resource_info().with_versions(&["v1beta1"], "v1");
    assert!(
        fresh
            .register(bad, Arc::new(example_widgets::WidgetConverter))
            .unwrap_err()
            .0
            .contains("storage version")
    );
    // The info of a typed kind must match the type.
    let wrong = builtin::configmaps().with_namespaced(false);
    assert!(
        fresh
            .register_typed::<k8s_openapi::api::core::v1::ConfigMap>(wrong)
            .is_err()
    );
    // A multi-version kind cannot use a served version as its hub.
    let typed = TypedConverter::<k8s_openapi::api::core::v1::ConfigMap>::new();
    let multi = builtin::configmaps().with_versions(&["v1", "v2"], "v1");
    assert!(fresh.register(multi, Arc::new(typed)).is_err());
}

#[test]
fn scheme_lookups() {
    let scheme = scheme();
    let widget = scheme
        .info(&GroupKind::new("apps.example.io", "Widget"))
        .unwrap();
    assert_eq!(widget.storage_version, "v1");
    assert_eq!(widget.preferred_version(), "v1");
    assert_eq!(widget.versions, ["v1", "v1beta1"]);
    assert_eq!(widget.list_kind, "WidgetList");
    assert!(widget.has_subresource("status"));
    let cm = scheme
        .info_for_resource(&GroupResource::new("", "configmaps"))
        .unwrap();
    assert_eq!(
        (cm.kind.as_str(), cm.list_kind.as_str()),
        ("ConfigMap", "ConfigMapList")
    );
    assert!(cm.namespaced);
    let ns = scheme
        .info_for_resource(&GroupResource::new("", "namespaces"))
        .unwrap();
    assert!(!ns.namespaced);
    assert!(scheme.recognizes(&GroupVersionKind::new(
        "apps.example.io",
        "v1beta1",
        "Widget"
    )));
    assert!(!scheme.recognizes(&GroupVersionKind::new("apps.example.io", "v2", "Widget")));
    assert_eq!(
        scheme.hub_version(&GroupKind::new("apps.example.io", "Widget")),
        Some(INTERNAL_VERSION)
    );
    assert_eq!(
        scheme.hub_version(&GroupKind::new("", "ConfigMap")),
        Some("v1")
    );
    let schema = scheme
        .openapi_schema(&GroupVersionKind::new(
            "apps.example.io",
            "v1beta1",
            "Widget",
        ))
        .unwrap();
    assert_eq!(
        schema["x-kubernetes-group-version-kind"][0]["version"],
        json!("v1beta1")
    );
    assert!(schema["properties"]["spec"]["properties"]["title"].is_object());
    assert!(
        scheme
            .openapi_schema(&GroupVersionKind::new("apps.example.io", "v2", "Widget"))
            .is_none()
    );
}

// ---- mapper ----

#[test]
fn mapper_resolves_plural_singular_short_and_kind() {
    let mapper = scheme().rest_mapper();
    let widgets = gvr("apps.example.io", "v1", "widgets");
    for name in ["widgets", "widget", "wd", "WIDGETS", "Widget", "WD"] {
        assert_eq!(
            mapper
                .resource_for(&GroupVersionResource::from_resource(name))
                .unwrap(),
            widgets,
            "{name}"
        );
    }
    assert_eq!(
        mapper
            .kind_for(&GroupVersionResource::from_resource("wd"))
            .unwrap(),
        GroupVersionKind::new("apps.example.io", "v1", "Widget")
    );
    // A requested version is kept; an unserved one matches nothing.
    assert_eq!(
        mapper
            .resource_for(&gvr("apps.example.io", "v1beta1", "widget"))
            .unwrap(),
        gvr("apps.example.io", "v1beta1", "widgets")
    );
    let error = mapper
        .resource_for(&gvr("apps.example.io", "v2", "widgets"))
        .unwrap_err();
    assert_eq!((error.code, error.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        mapper
            .resource_for(&GroupVersionResource::from_resource("cm"))
            .unwrap(),
        gvr("", "v1", "configmaps")
    );
    assert_eq!(mapper.resource_singularizer("ns").unwrap(), "namespace");
    assert_eq!(
        mapper.resources_for(&GroupVersionResource::from_resource("ev")),
        vec![gvr("", "v1", "events")]
    );

    let mapping = mapper
        .rest_mapping(&GroupKind::new("apps.example.io", "Widget"), &[])
        .unwrap();
    assert_eq!(mapping.resource, widgets);
    assert!(mapping.namespaced());
    let mapping = mapper
        .rest_mapping(&GroupKind::new("", "widget"), &["v1beta1"])
        .unwrap();
    assert_eq!(
        mapping.gvk,
        GroupVersionKind::new("apps.example.io", "v1beta1", "Widget")
    );
    let mapping = mapper
        .rest_mapping(&GroupKind::new("", "Namespace"), &[])
        .unwrap();
    assert!(!mapping.namespaced());
    let error = mapper
        .rest_mapping(&GroupKind::new("apps.example.io", "Widget"), &["v3"])
        .unwrap_err();
    assert_eq!(error.code, 404);
    assert_eq!(
        error.message,
        "no matches for kind \"Widget\" in version \"apps.example.io/v3\""
    );
}

#[test]
fn mapper_lookup_parses_kubectl_arguments() {
    let mapper = scheme().rest_mapper();
    for (arg, version) in [
        ("wd", "v1"),
        ("widgets.apps.example.io", "v1"),
        ("widgets.v1beta1.apps.example.io", "v1beta1"),
        ("Widget", "v1"),
        ("Widget.apps.example.io", "v1"),
        ("Widget.v1beta1.apps.example.io", "v1beta1"),
        ("WD", "v1"),
    ] {
        let mapping = mapper.lookup(arg).unwrap();
        assert_eq!(
            mapping.resource,
            gvr("apps.example.io", version, "widgets"),
            "{arg}"
        );
    }
    assert_eq!(mapper.lookup("cm").unwrap().gvk.kind, "ConfigMap");
    let error = mapper.lookup("foos").unwrap_err();
    assert_eq!((error.code, error.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        error.message,
        "the server doesn't have a resource type \"foos\""
    );
    assert_eq!(mapper.lookup("widgets.other.io").unwrap_err().code, 404);
}

#[test]
fn mapper_reports_ambiguous_short_names_and_prefers_full_names() {
    let mut infos: Vec<ResourceInfo> = scheme().resources().cloned().collect();
    infos.push(
        ResourceInfo::new("tools.example.io", "v1", "Wand", "wands").with_short_names(&["wd"]),
    );
    // A resource whose plural is another's short name.
    infos.push(ResourceInfo::new("misc.example.io", "v1", "Cm", "cm"));
    let mapper = RestMapper::new(infos);
    let error = mapper
        .resource_for(&GroupVersionResource::from_resource("wd"))
        .unwrap_err();
    assert_eq!((error.code, error.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        error.message,
        "wd matches multiple resources [apps.example.io/v1, Resource=widgets tools.example.io/v1, Resource=wands]"
    );
    assert_eq!(mapper.lookup("wd").unwrap_err().code, 400);
    assert_eq!(
        mapper
            .resources_for(&GroupVersionResource::from_resource("wd"))
            .len(),
        2
    );
    // Qualifying with the group resolves it.
    assert_eq!(
        mapper.lookup("wd.tools.example.io").unwrap().gvk.kind,
        "Wand"
    );
    assert_eq!(
        mapper
            .resource_for(&gvr("apps.example.io", "", "wd"))
            .unwrap()
            .resource,
        "widgets"
    );
    // `cm` is misc.example.io's plural, which wins over configmaps' short name.
    assert_eq!(
        mapper
            .resource_for(&GroupVersionResource::from_resource("cm"))
            .unwrap(),
        gvr("misc.example.io", "v1", "cm")
    );
    // Kinds of two groups are ambiguous too.
    let mut infos: Vec<ResourceInfo> = scheme().resources().cloned().collect();
    infos.push(ResourceInfo::new(
        "other.example.io",
        "v1",
        "Widget",
        "widgets",
    ));
    let mapper = RestMapper::new(infos);
    let error = mapper
        .rest_mapping(&GroupKind::new("", "Widget"), &[])
        .unwrap_err();
    assert_eq!(error.code, 400);
    assert!(error.message.starts_with("Widget matches multiple kinds"));
}

#[test]
fn categories_expand() {
    let mapper = scheme().rest_mapper();
    assert_eq!(
        mapper.expand_category("all"),
        vec![GroupResource::new("apps.example.io", "widgets")]
    );
    assert!(mapper.expand_category("nothing").is_empty());
    assert_eq!(mapper.categories().into_iter().collect::<Vec<_>>(), ["all"]);
}

#[test]
fn discovery_documents() {
    let mapper = scheme().rest_mapper();
    let groups = mapper.groups();
    assert_eq!(groups[0].name, "");
    assert_eq!(groups[1].name, "apps.example.io");
    assert_eq!(groups[1].versions, ["v1", "v1beta1"]);
    assert_eq!(groups[1].preferred_version, "v1");
    assert_eq!(mapper.core_versions(), ["v1"]);

    let list = serde_json::to_value(mapper.api_group_list()).unwrap();
    assert_eq!(
        list,
        json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{
                "kind": "APIGroup", "apiVersion": "v1",
                "name": "apps.example.io",
                "versions": [
                    {"groupVersion": "apps.example.io/v1", "version": "v1"},
                    {"groupVersion": "apps.example.io/v1beta1", "version": "v1beta1"}
                ],
                "preferredVersion": {"groupVersion": "apps.example.io/v1", "version": "v1"}
            }]
        })
    );
    assert!(mapper.api_group("apps.example.io").is_some());

    let resources = mapper
        .api_resource_list(&GroupVersion::new("apps.example.io", "v1beta1"))
        .unwrap();
    let resources = serde_json::to_value(resources).unwrap();
    assert_eq!(resources["groupVersion"], json!("apps.example.io/v1beta1"));
    assert_eq!(
        resources["resources"][0],
        json!({
            "name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget",
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": ["wd"], "categories": ["all"]
        })
    );
    assert_eq!(
        resources["resources"][1],
        json!({
            "name": "widgets/status", "singularName": "", "namespaced": true, "kind": "Widget",
            "verbs": ["get", "patch", "update"]
        })
    );
    let core = mapper
        .api_resource_list(&GroupVersion::new("", "v1"))
        .unwrap();
    let names: Vec<&str> = core.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "configmaps",
            "secrets",
            "namespaces",
            "namespaces/finalize",
            "namespaces/status",
            "events"
        ]
    );
    let finalize = core
        .resources
        .iter()
        .find(|r| r.name == "namespaces/finalize")
        .unwrap();
    assert_eq!(
        (finalize.kind.as_str(), finalize.namespaced, &finalize.verbs),
        ("Namespace", false, &vec!["update".to_owned()])
    );
    assert!(
        mapper
            .api_resource_list(&GroupVersion::new("apps.example.io", "v2"))
            .is_none()
    );

    let aggregated = mapper.aggregated_discovery(false);
    let item = &aggregated["items"][0];
    assert_eq!(item["metadata"]["name"], json!("apps.example.io"));
    let widgets = &item["versions"][0]["resources"][0];
    assert_eq!(widgets["resource"], json!("widgets"));
    assert_eq!(widgets["scope"], json!("Namespaced"));
    assert_eq!(widgets["shortNames"], json!(["wd"]));
    assert_eq!(widgets["subresources"][0]["subresource"], json!("status"));
    let core = mapper.aggregated_discovery(true);
    assert_eq!(core["items"][0]["metadata"]["name"], json!(""));
    assert_eq!(
        core["items"][0]["versions"][0]["resources"][2]["scope"],
        json!("Cluster")
    );
}

// ---- conversion ----

fn v1beta1_widget() -> Value {
    json!({
        "apiVersion": "apps.example.io/v1beta1",
        "kind": "Widget",
        "metadata": {
            "name": "w1", "namespace": "default",
            "annotations": {
                "widgets.apps.example.io/description": "a widget",
                "team": "blue"
            }
        },
        "spec": { "title": "Widget One" },
        "status": {
            "ready": true,
            "observedGeneration": 3,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Started", "message": "",
                "lastTransitionTime": "2024-01-02T03:04:05Z"
            }]
        }
    })
}

fn v1_widget() -> Value {
    json!({
        "apiVersion": "apps.example.io/v1",
        "kind": "Widget",
        "metadata": {
            "name": "w1", "namespace": "default",
            "annotations": { "team": "blue" }
        },
        "spec": { "displayName": "Widget One", "description": "a widget" },
        "status": {
            "phase": "Running",
            "observedGeneration": 3,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Started", "message": "",
                "lastTransitionTime": "2024-01-02T03:04:05Z"
            }]
        }
    })
}

#[test]
fn v1beta1_converts_to_v1_through_the_hub_and_back() {
    let scheme = scheme();
    let hub = scheme.convert_to_hub(v1beta1_widget()).unwrap();
    assert_eq!(hub["apiVersion"], json!("apps.example.io/__internal"));
    assert_eq!(hub["spec"]["displayName"], json!("Widget One"));
    assert_eq!(hub["spec"]["description"], json!("a widget"));
    assert_eq!(hub["status"]["phase"], json!("Running"));
    assert_eq!(hub["metadata"]["annotations"], json!({"team": "blue"}));
    let v1 = scheme.convert_from_hub(hub, "v1").unwrap();
    assert_eq!(v1, v1_widget());
    assert_eq!(
        scheme.convert(v1_widget(), "v1beta1").unwrap(),
        v1beta1_widget()
    );
    assert_eq!(scheme.convert(v1beta1_widget(), "v1").unwrap(), v1_widget());
    // Same version: returned as it is.
    assert_eq!(scheme.convert(v1_widget(), "v1").unwrap(), v1_widget());
    // To the hub.
    assert_eq!(
        scheme.convert(v1_widget(), INTERNAL_VERSION).unwrap()["apiVersion"],
        json!("apps.example.io/__internal")
    );
}

#[test]
fn pending_phase_and_lone_description_annotation() {
    let scheme = scheme();
    let v1beta1 = json!({
        "apiVersion": "apps.example.io/v1beta1", "kind": "Widget",
        "metadata": {"name": "w", "annotations": {"widgets.apps.example.io/description": "d"}},
        "spec": {"title": "T"},
        "status": {"ready": false}
    });
    let v1 = scheme.convert(v1beta1.clone(), "v1").unwrap();
    assert_eq!(
        v1,
        json!({
            "apiVersion": "apps.example.io/v1", "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"displayName": "T", "description": "d"},
            "status": {"phase": "Pending"}
        })
    );
    assert_eq!(scheme.convert(v1, "v1beta1").unwrap(), v1beta1);
}

#[test]
fn decode_defaults_then_converts_to_hub_and_storage() {
    let scheme = scheme();
    let endpoint = GroupVersionKind::new("apps.example.io", "v1beta1", "Widget");
    // apiVersion and kind may be left out; they come from the endpoint.
    let body = json!({
        "metadata": {"name": "w", "annotations": {"widgets.apps.example.io/description": ""}},
        "spec": {"title": "T", "unknownField": 1},
        "status": {"conditions": []}
    });
    let hub = scheme.decode(&endpoint, body.clone()).unwrap();
    assert_eq!(
        hub,
        json!({
            "apiVersion": "apps.example.io/__internal", "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"displayName": "T"},
            "status": {}
        })
    );
    let stored = scheme.decode_to_storage(&endpoint, body).unwrap();
    assert_eq!(stored["apiVersion"], json!("apps.example.io/v1"));
    assert_eq!(stored["spec"], json!({"displayName": "T"}));

    let endpoint = GroupVersionKind::new("apps.example.io", "v1", "Widget");
    let body = json!({
        "apiVersion": "apps.example.io/v1", "kind": "Widget",
        "metadata": {"name": "w", "annotations": {}},
        "spec": {"displayName": "T", "description": ""}
    });
    let stored = scheme.decode_to_storage(&endpoint, body).unwrap();
    assert_eq!(
        stored,
        json!({
            "apiVersion": "apps.example.io/v1", "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"displayName": "T"},
            "status": {}
        })
    );
    let mut doc =
        json!({"apiVersion": "apps.example.io/v1", "kind": "Widget", "spec": {"description": ""}});
    scheme.default_object(&endpoint, &mut doc).unwrap();
    assert_eq!(doc["spec"], json!({}));
}

#[test]
fn decode_errors_are_bad_requests() {
    let scheme = scheme();
    let v1 = GroupVersionKind::new("apps.example.io", "v1", "Widget");
    let check = |body: Value, message: &str| {
        let error = scheme.decode(&v1, body).unwrap_err();
        assert_eq!((error.code, error.reason.as_str()), (400, "BadRequest"));
        assert_eq!(error.message, message);
    };
    check(
        json!({"apiVersion": "apps.example.io/v1beta1", "kind": "Widget", "spec": {"title": "T"}}),
        "the API version in the data (apps.example.io/v1beta1) does not match the expected API version (apps.example.io/v1)",
    );
    check(
        json!({"apiVersion": "apps.example.io/v2", "kind": "Widget"}),
        "no kind \"Widget\" is registered for version \"apps.example.io/v2\"",
    );
    check(
        json!({"apiVersion": "apps.example.io/v1", "kind": "Gadget"}),
        "no kind \"Gadget\" is registered for version \"apps.example.io/v1\"",
    );
    check(
        json!({"apiVersion": "v1", "kind": "ConfigMap"}),
        "the API version in the data (v1) does not match the expected API version (apps.example.io/v1)",
    );
    let error = scheme
        .decode(&v1, json!({"spec": {"displayName": 5}}))
        .unwrap_err();
    assert_eq!(error.code, 400);
    assert!(
        error
            .message
            .starts_with("Widget in version \"v1\" cannot be handled as a Widget: invalid type"),
        "{}",
        error.message
    );
    assert_eq!(scheme.decode(&v1, json!([1])).unwrap_err().code, 400);
    assert_eq!(
        scheme
            .decode(&v1, json!({"apiVersion": 3}))
            .unwrap_err()
            .code,
        400
    );
}

#[test]
fn read_path_errors() {
    let scheme = scheme();
    // Unserved target version: 404.
    let error = scheme.convert(v1_widget(), "v2").unwrap_err();
    assert_eq!((error.code, error.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        error.message,
        "the server could not find the requested resource"
    );
    // A stored object v1beta1 cannot express: 500.
    let mut bogus = v1_widget();
    bogus["status"]["phase"] = json!("Exploded");
    let error = scheme.convert(bogus, "v1beta1").unwrap_err();
    assert_eq!((error.code, error.reason.as_str()), (500, "InternalError"));
    assert!(
        error.message.contains("status.phase \"Exploded\""),
        "{}",
        error.message
    );
    // Corrupt stored data: 500.
    let error = scheme
        .convert(
            json!({"apiVersion": "apps.example.io/v1", "kind": "Widget", "spec": "x"}),
            "v1beta1",
        )
        .unwrap_err();
    assert_eq!(error.code, 500);
    // An unknown kind: 400.
    let error = scheme
        .convert(json!({"apiVersion": "x.io/v1", "kind": "Thing"}), "v1")
        .unwrap_err();
    assert_eq!(error.code, 400);
    // convert_from_hub wants a hub document.
    assert_eq!(
        scheme
            .convert_from_hub(v1_widget(), "v1beta1")
            .unwrap_err()
            .code,
        400
    );
}

#[test]
fn lists_convert_item_by_item() {
    let scheme = scheme();
    let mut item = v1_widget();
    item.as_object_mut().unwrap().remove("apiVersion");
    item.as_object_mut().unwrap().remove("kind");
    let list = json!({
        "apiVersion": "apps.example.io/v1", "kind": "WidgetList",
        "metadata": {"resourceVersion": "7"},
        "items": [v1_widget(), item]
    });
    let converted = scheme
        .convert_list(
            &GroupKind::new("apps.example.io", "Widget"),
            list,
            "v1beta1",
        )
        .unwrap();
    assert_eq!(converted["apiVersion"], json!("apps.example.io/v1beta1"));
    assert_eq!(converted["kind"], json!("WidgetList"));
    assert_eq!(converted["metadata"]["resourceVersion"], json!("7"));
    assert_eq!(converted["items"][0], v1beta1_widget());
    assert_eq!(converted["items"][1], v1beta1_widget());
    let error = scheme
        .convert_list(
            &GroupKind::new("apps.example.io", "Widget"),
            json!({}),
            "v9",
        )
        .unwrap_err();
    assert_eq!(error.code, 404);
}

#[test]
fn builtin_kinds_do_not_convert() {
    let scheme = scheme();
    let endpoint = GroupVersionKind::new("", "v1", "ConfigMap");
    let body = json!({"metadata": {"name": "c"}, "data": {"a": "b"}, "extra": true});
    let stored = scheme.decode_to_storage(&endpoint, body).unwrap();
    // Unknown fields are dropped, apiVersion and kind filled.
    assert_eq!(
        stored,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}})
    );
    assert_eq!(scheme.convert(stored.clone(), "v1").unwrap(), stored);
    assert_eq!(scheme.convert_to_hub(stored.clone()).unwrap(), stored);
    let error = scheme
        .decode(&endpoint, json!({"data": {"a": 1}}))
        .unwrap_err();
    assert_eq!(error.code, 400);
    assert!(
        error
            .message
            .starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap")
    );
    assert_eq!(scheme.convert(stored, "v2").unwrap_err().code, 404);
}
