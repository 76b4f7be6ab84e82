//! PATCH through the Store: every patch type on a ConfigMap, 415 for strategic merge on custom
//! kinds, server-side apply (create, idempotent re-apply, field removal, conflicts between
//! managers, force, client-side update then apply, reset fields), versions, dry run, retries
//! on conflict, patch options and malformed bodies, on the memory and SQLite backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use apimachinery::object::ObjectMeta;
use apimachinery::status::ApiError;
use example_widgets::{v1, widget_resource_info, widget_store};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use object_storage::Storage;
use patch::PatchType;
use registry::{CreateOptions, PatchBody, PatchOptions, SchemeView, Store, UpdateOptions};
use scheme::Scheme;
use serde_json::{Value, json};
use store_support::*;

fn widgets(b: &Backend) -> Store<v1::Widget> {
    widget_store(Storage::new(b.store.clone(), Arc::new(v1::Widget::default)))
}

fn widget(name: &str, display: &str) -> v1::Widget {
    v1::Widget {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("ns".to_owned()),
            ..ObjectMeta::default()
        },
        spec: v1::WidgetSpec {
            display_name: Some(display.to_owned()),
            description: None,
        },
        status: v1::WidgetStatus::default(),
    }
}

fn none<K>() -> PatchOptions<K> {
    PatchOptions::default()
}

fn by<K>(manager: &str) -> PatchOptions<K> {
    PatchOptions::with_manager(manager)
}

fn forced<K>(manager: &str) -> PatchOptions<K> {
    PatchOptions {
        force: Some(true),
        ..PatchOptions::with_manager(manager)
    }
}

fn data(cm: &ConfigMap) -> Value {
    serde_json::to_value(cm.data.clone().unwrap_or_default()).unwrap()
}

fn rv<K: apimachinery::Object>(object: &K) -> String {
    object.meta().resource_version.clone().unwrap()
}

/// (manager, operation) of every managedFields entry.
fn managers<K: apimachinery::Object>(object: &K) -> Vec<(String, String)> {
    object
        .meta()
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The fieldsV1 of `manager`'s entry (Null when it has none).
fn owned<K: apimachinery::Object>(object: &K, manager: &str) -> Value {
    object
        .meta()
        .managed_fields
        .iter()
        .flatten()
        .find(|e| e.manager.as_deref() == Some(manager))
        .and_then(|e| e.fields_v1.as_ref())
        .map_or(Value::Null, |f| f.0.clone())
}

async fn seed(store: &Store<ConfigMap>, name: &str, pairs: &[(&str, &str)]) -> ConfigMap {
    store
        .create(
            "ns",
            configmap("ns", name, pairs),
            &CreateOptions::default(),
        )
        .await
        .unwrap()
}

fn cm_apply(name: &str, pairs: &[(&str, &str)]) -> Vec<u8> {
    let data: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let mut yaml =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: ns\n");
    if !data.is_empty() {
        yaml.push_str("data:\n");
        for (k, v) in data {
            yaml.push_str(&format!("  {k}: {v}\n"));
        }
    }
    yaml.into_bytes()
}

async fn patch_types_on_a_configmap(b: Backend) {
    let store = configmaps(&b);
    let created = seed(&store, "c", &[("a", "1"), ("b", "2")]).await;

    // JSON patch (RFC 6902).
    let out = store
        .patch("ns", "c", "", PatchBody::new(PatchType::Json, br#"[{"op":"replace","path":"/data/a","value":"10"},{"op":"add","path":"/data/c","value":"3"}]"#), &none())
        .await
        .unwrap();
    assert!(!out.created);
    assert_eq!(data(&out.object), json!({"a": "10", "b": "2", "c": "3"}));
    assert_ne!(rv(&out.object), rv(&created));
    assert_eq!(out.object.metadata.uid, created.metadata.uid);

    // JSON merge patch (RFC 7386): null deletes.
    let out = store
        .patch(
            "ns",
            "c",
            "",
            PatchBody::new(
                PatchType::Merge,
                br#"{"data":{"b":null,"d":"4"},"metadata":{"labels":{"app":"x"}}}"#,
            ),
            &none(),
        )
        .await
        .unwrap();
    assert_eq!(data(&out.object), json!({"a": "10", "c": "3", "d": "4"}));
    assert_eq!(out.object.metadata.labels.as_ref().unwrap()["app"], "x");

    // Strategic merge patch: maps merge, null deletes.
    let out = store
        .patch(
            "ns",
            "c",
            "",
            PatchBody::new(
                PatchType::StrategicMerge,
                br#"{"data":{"c":null,"e":"5"},"metadata":{"labels":{"tier":"gold"}}}"#,
            ),
            &none(),
        )
        .await
        .unwrap();
    assert_eq!(data(&out.object), json!({"a": "10", "d": "4", "e": "5"}));
    let labels = out.object.metadata.labels.clone().unwrap();
    assert_eq!(
        (labels["app"].as_str(), labels["tier"].as_str()),
        ("x", "gold")
    );

    // `$patch: replace` on a map, `$patch: delete` on a map.
    let out = store
        .patch("ns", "c", "", PatchBody::new(PatchType::StrategicMerge, br#"{"data":{"$patch":"replace","only":"1"},"metadata":{"labels":{"$patch":"delete"}}}"#), &none())
        .await
        .unwrap();
    assert_eq!(data(&out.object), json!({"only": "1"}));
    assert!(
        out.object
            .metadata
            .labels
            .as_ref()
            .is_none_or(|l| l.is_empty())
    );

    // Merge-key lists (ownerReferences by uid): items merge, `$patch: delete` removes one;
    // `$deleteFromPrimitiveList` on finalizers (a set).
    let owner = |uid: &str| OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        name: format!("pod-{uid}"),
        uid: uid.to_owned(),
        ..OwnerReference::default()
    };
    let mut with_owners = out.object.clone();
    with_owners.metadata.owner_references = Some(vec![owner("u1"), owner("u2")]);
    with_owners.metadata.finalizers = Some(vec!["a.io/x".to_owned(), "a.io/y".to_owned()]);
    store
        .update("ns", "c", "", with_owners, &UpdateOptions::default())
        .await
        .unwrap();
    let out = store
        .patch(
            "ns",
            "c",
            "",
            PatchBody::new(
                PatchType::StrategicMerge,
                br#"{"metadata":{
                "ownerReferences":[{"$patch":"delete","uid":"u1"},{"uid":"u2","name":"renamed"}],
                "$deleteFromPrimitiveList/finalizers":["a.io/x"],
                "finalizers":["a.io/z"]}}"#,
            ),
            &none(),
        )
        .await
        .unwrap();
    let refs = out.object.metadata.owner_references.clone().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(
        (refs[0].uid.as_str(), refs[0].name.as_str()),
        ("u2", "renamed")
    );
    let mut finalizers = out.object.metadata.finalizers.clone().unwrap();
    finalizers.sort();
    assert_eq!(finalizers, ["a.io/y", "a.io/z"]);

    // A patch that changes nothing keeps the resourceVersion.
    let same = store
        .patch(
            "ns",
            "c",
            "",
            PatchBody::new(PatchType::Merge, br#"{"data":{"only":"1"}}"#),
            &none(),
        )
        .await
        .unwrap();
    assert_eq!(same.object, out.object);
    // The patched object goes through validation (422) ...
    let error = assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(PatchType::Merge, br#"{"data":{"bad key":"x"}}"#),
                &none(),
            )
            .await,
        422,
        "Invalid",
        &["ConfigMap \"c\" is invalid: data[bad key]"],
    );
    assert_eq!(
        causes(&error),
        vec![("FieldValueInvalid".to_owned(), "data[bad key]".to_owned())]
    );
    // ... and admission.
    let deny = PatchOptions {
        update_validation: Some(Arc::new(|_: &ConfigMap, _: Option<&ConfigMap>| {
            Err(ApiError::forbidden(
                &apimachinery::status::GroupResource::new("", "configmaps"),
                "c",
                "denied by admission",
            ))
        })),
        ..PatchOptions::default()
    };
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(PatchType::Merge, br#"{"data":{"z":"1"}}"#),
                &deny,
            )
            .await,
        403,
        "Forbidden",
        &["denied by admission"],
    );
    // A resourceVersion in the patch is a precondition.
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(
                    PatchType::Merge,
                    format!(
                        r#"{{"metadata":{{"resourceVersion":"{}"}},"data":{{"z":"1"}}}}"#,
                        rv(&created)
                    )
                    .as_bytes(),
                ),
                &none(),
            )
            .await,
        409,
        "Conflict",
        &[
            "the object has been modified; please apply your changes to the latest version and try again",
        ],
    );
    // Patches of a missing object: 404 (only apply creates).
    for patch_type in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
        let body: &[u8] = if patch_type == PatchType::Json {
            b"[]"
        } else {
            b"{}"
        };
        assert_error(
            store
                .patch(
                    "ns",
                    "missing",
                    "",
                    PatchBody::new(patch_type, body),
                    &none(),
                )
                .await,
            404,
            "NotFound",
            &["configmaps \"missing\" not found"],
        );
    }
    // A patch may not rename the object.
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(
                    PatchType::Json,
                    br#"[{"op":"replace","path":"/metadata/name","value":"other"}]"#,
                ),
                &none(),
            )
            .await,
        400,
        "BadRequest",
        &["the name of the object (other) does not match the name on the URL (c)"],
    );
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(
                    PatchType::Merge,
                    br#"{"metadata":{"namespace":"elsewhere"}}"#,
                ),
                &none(),
            )
            .await,
        400,
        "BadRequest",
        &["the namespace of the object (elsewhere) does not match the namespace on the URL (ns)"],
    );
}

async fn strategic_merge_needs_a_builtin_kind(b: Backend) {
    let store = widgets(&b);
    store
        .create("ns", widget("w", "One"), &CreateOptions::default())
        .await
        .unwrap();
    for name in ["w", "missing"] {
        let error = assert_error(
            store
                .patch(
                    "ns",
                    name,
                    "",
                    PatchBody::new(
                        PatchType::StrategicMerge,
                        br#"{"spec":{"displayName":"Two"}}"#,
                    ),
                    &none(),
                )
                .await,
            415,
            "UnsupportedMediaType",
            &[
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ],
        );
        assert!(!error.message.contains("strategic"));
    }
    // The content type is checked before the options (force is forbidden here, but 415 wins).
    assert_error(
        store
            .patch(
                "ns",
                "w",
                "",
                PatchBody::new(PatchType::StrategicMerge, b"{}"),
                &PatchOptions {
                    force: Some(true),
                    ..PatchOptions::default()
                },
            )
            .await,
        415,
        "UnsupportedMediaType",
        &[],
    );
    // Custom (dynamic) kinds too.
    let gadgets = gadgets(&b);
    gadgets
        .create(
            "ns",
            gadget("ns", "g", json!({"size": 1}), None),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert_error(
        gadgets
            .patch(
                "ns",
                "g",
                "",
                PatchBody::new(PatchType::StrategicMerge, b"{}"),
                &none(),
            )
            .await,
        415,
        "UnsupportedMediaType",
        &[],
    );
    // The other types work on both.
    let out = store
        .patch(
            "ns",
            "w",
            "",
            PatchBody::new(PatchType::Merge, br#"{"spec":{"displayName":"Two"}}"#),
            &none(),
        )
        .await
        .unwrap();
    assert_eq!(out.object.spec.display_name.as_deref(), Some("Two"));
    assert_eq!(out.object.metadata.generation, Some(2));
    let out = gadgets
        .patch(
            "ns",
            "g",
            "",
            PatchBody::new(
                PatchType::Json,
                br#"[{"op":"replace","path":"/spec/size","value":2}]"#,
            ),
            &none(),
        )
        .await
        .unwrap();
    assert_eq!(out.object.data["spec"]["size"], 2);
    assert_eq!(out.object.metadata.generation, Some(2));
}

async fn server_side_apply_lifecycle(b: Backend) {
    let store = configmaps(&b);
    // Apply creates.
    let body = cm_apply("ac", &[("a", "1"), ("b", "2")]);
    let created = store
        .patch(
            "ns",
            "ac",
            "",
            PatchBody::new(PatchType::Apply, &body),
            &by("alice"),
        )
        .await
        .unwrap();
    assert!(created.created);
    let object = created.object;
    assert_eq!(data(&object), json!({"a": "1", "b": "2"}));
    assert!(object.metadata.uid.is_some() && object.metadata.creation_timestamp.is_some());
    assert_eq!(
        managers(&object),
        [("alice".to_owned(), "Apply".to_owned())]
    );
    let fields = owned(&object, "alice");
    assert!(fields["f:data"].get("f:a").is_some() && fields["f:data"].get("f:b").is_some());
    assert_eq!(store.get("ns", "ac", "").await.unwrap(), object);

    // Re-applying the same configuration is a no-op: same resourceVersion, same timestamps.
    let again = store
        .patch(
            "ns",
            "ac",
            "",
            PatchBody::new(PatchType::Apply, &body),
            &by("alice"),
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.object, object);
    assert_eq!(rv(&again.object), rv(&object));

    // A field the applier stops applying is removed.
    let out = store
        .patch(
            "ns",
            "ac",
            "",
            PatchBody::new(PatchType::Apply, &cm_apply("ac", &[("a", "1")])),
            &by("alice"),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(data(&out), json!({"a": "1"}));
    assert!(owned(&out, "alice")["f:data"].get("f:b").is_none());

    // Another manager changing alice's field: 409 with FieldManagerConflict causes.
    let error = assert_error(
        store
            .patch(
                "ns",
                "ac",
                "",
                PatchBody::new(PatchType::Apply, &cm_apply("ac", &[("a", "bob")])),
                &by("bob"),
            )
            .await,
        409,
        "Conflict",
        &[
            "Apply failed with 1 conflict: conflict with \"alice\"",
            ".data.a",
        ],
    );
    let details = error.details.clone().unwrap();
    let causes = details.causes.unwrap();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason.as_deref(), Some("FieldManagerConflict"));
    assert_eq!(
        causes[0].message.as_deref(),
        Some("conflict with \"alice\"")
    );
    assert_eq!(causes[0].field.as_deref(), Some(".data.a"));
    assert_eq!(
        data(&store.get("ns", "ac", "").await.unwrap()),
        json!({"a": "1"})
    );

    // Same value: shared ownership, no conflict.
    let shared = store
        .patch(
            "ns",
            "ac",
            "",
            PatchBody::new(PatchType::Apply, &cm_apply("ac", &[("a", "1"), ("c", "3")])),
            &by("carol"),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(data(&shared), json!({"a": "1", "c": "3"}));
    assert!(owned(&shared, "carol")["f:data"].get("f:a").is_some());
    assert!(owned(&shared, "alice")["f:data"].get("f:a").is_some());

    // force takes the field from everyone who owned it.
    let taken = store
        .patch(
            "ns",
            "ac",
            "",
            PatchBody::new(PatchType::Apply, &cm_apply("ac", &[("a", "bob")])),
            &forced("bob"),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(data(&taken), json!({"a": "bob", "c": "3"}));
    assert!(owned(&taken, "bob")["f:data"].get("f:a").is_some());
    assert!(
        owned(&taken, "alice")
            .get("f:data")
            .and_then(|d| d.get("f:a"))
            .is_none()
    );
    assert!(owned(&taken, "carol")["f:data"].get("f:a").is_none());
    // Alice now gets the conflict.
    assert_error(
        store
            .patch(
                "ns",
                "ac",
                "",
                PatchBody::new(PatchType::Apply, &cm_apply("ac", &[("a", "1")])),
                &by("alice"),
            )
            .await,
        409,
        "Conflict",
        &["conflict with \"bob\""],
    );
}

async fn client_side_update_then_apply_conflicts(b: Backend) {
    let store = configmaps(&b);
    // A create and an update by a manager record Update entries.
    let created = store
        .create(
            "ns",
            configmap("ns", "cs", &[("k", "v1")]),
            &CreateOptions {
                field_manager: Some("editor".to_owned()),
                ..CreateOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        managers(&created),
        [("editor".to_owned(), "Update".to_owned())]
    );
    assert!(owned(&created, "editor")["f:data"].get("f:k").is_some());
    let mut next = created.clone();
    next.data = Some(
        [
            ("k".to_owned(), "v2".to_owned()),
            ("m".to_owned(), "1".to_owned()),
        ]
        .into(),
    );
    let updated = store
        .update(
            "ns",
            "cs",
            "",
            next,
            &UpdateOptions {
                field_manager: Some("kubectl-edit".to_owned()),
                ..UpdateOptions::default()
            },
        )
        .await
        .unwrap()
        .object;
    let mut seen = managers(&updated);
    seen.sort();
    assert_eq!(
        seen,
        [
            ("editor".to_owned(), "Update".to_owned()),
            ("kubectl-edit".to_owned(), "Update".to_owned())
        ]
    );
    assert!(
        owned(&updated, "kubectl-edit")["f:data"]
            .get("f:k")
            .is_some()
    );
    assert!(
        owned(&updated, "editor")
            .get("f:data")
            .and_then(|d| d.get("f:k"))
            .is_none()
    );
    // An apply changing a field the update set conflicts with the Update manager.
    let error = assert_error(
        store
            .patch(
                "ns",
                "cs",
                "",
                PatchBody::new(PatchType::Apply, &cm_apply("cs", &[("k", "applied")])),
                &by("applier"),
            )
            .await,
        409,
        "Conflict",
        &["conflict with \"kubectl-edit\" using v1", ".data.k"],
    );
    let causes = error.details.unwrap().causes.unwrap();
    assert_eq!(causes[0].reason.as_deref(), Some("FieldManagerConflict"));
    // force wins.
    let out = store
        .patch(
            "ns",
            "cs",
            "",
            PatchBody::new(PatchType::Apply, &cm_apply("cs", &[("k", "applied")])),
            &forced("applier"),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(data(&out)["k"], "applied");
    // A merge patch with a manager takes the field back as an Update.
    let out = store
        .patch(
            "ns",
            "cs",
            "",
            PatchBody::new(PatchType::Merge, br#"{"data":{"k":"merged"}}"#),
            &by("patcher"),
        )
        .await
        .unwrap()
        .object;
    assert!(owned(&out, "patcher")["f:data"].get("f:k").is_some());
    assert!(managers(&out).contains(&("patcher".to_owned(), "Update".to_owned())));
    assert!(
        owned(&out, "applier")
            .get("f:data")
            .and_then(|d| d.get("f:k"))
            .is_none()
    );
    // An object first applied to without managed fields: its fields belong to
    // before-first-apply.
    seed(&store, "plain", &[("p", "1")]).await;
    assert_error(
        store
            .patch(
                "ns",
                "plain",
                "",
                PatchBody::new(PatchType::Apply, &cm_apply("plain", &[("p", "2")])),
                &by("applier"),
            )
            .await,
        409,
        "Conflict",
        &["conflict with \"before-first-apply\" using v1"],
    );
}

async fn apply_type_and_option_checks(b: Backend) {
    let store = configmaps(&b);
    seed(&store, "c", &[("a", "1")]).await;
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(
                    PatchType::Apply,
                    b"apiVersion: v2\nkind: ConfigMap\nmetadata: {name: c}\n",
                ),
                &by("a"),
            )
            .await,
        400,
        "BadRequest",
        &["Incorrect version specified in apply patch. Specified patch version: v2, expected: v1"],
    );
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(PatchType::Apply, b"kind: ConfigMap\nmetadata: {name: c}\n"),
                &by("a"),
            )
            .await,
        400,
        "BadRequest",
        &["Specified patch version: , expected: v1"],
    );
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(
                    PatchType::Apply,
                    b"apiVersion: v1\nkind: Secret\nmetadata: {name: c}\n",
                ),
                &by("a"),
            )
            .await,
        400,
        "BadRequest",
        &["the kind in the data (Secret) does not match the expected kind (ConfigMap)"],
    );
    assert_error(
        store
            .patch("ns", "c", "", PatchBody::new(PatchType::Apply, b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  managedFields: [{manager: x}]\n"), &by("a"))
            .await,
        400,
        "BadRequest",
        &["metadata.managedFields must be nil"],
    );
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(PatchType::Apply, &cm_apply("other", &[])),
                &by("a"),
            )
            .await,
        400,
        "BadRequest",
        &["the name of the object (other) does not match the name on the URL (c)"],
    );
    // PatchOptions validation: 422 on PatchOptions.
    let error = assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(PatchType::Apply, &cm_apply("c", &[])),
                &none(),
            )
            .await,
        422,
        "Invalid",
        &[
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ],
    );
    assert_eq!(
        causes(&error),
        vec![("FieldValueRequired".to_owned(), "fieldManager".to_owned())]
    );
    let force_on_merge = PatchOptions {
        force: Some(false),
        ..PatchOptions::default()
    };
    let error = assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(PatchType::Merge, b"{}"),
                &force_on_merge,
            )
            .await,
        422,
        "Invalid",
        &["force: Forbidden: may not be specified for non-apply patch"],
    );
    assert_eq!(
        causes(&error),
        vec![("FieldValueForbidden".to_owned(), "force".to_owned())]
    );
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(PatchType::Merge, b"{}"),
                &by(&"m".repeat(129)),
            )
            .await,
        422,
        "Invalid",
        &["fieldManager: Too long"],
    );
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(PatchType::Merge, b"{}"),
                &by("bad\u{7}manager"),
            )
            .await,
        422,
        "Invalid",
        &["fieldManager: Invalid value"],
    );
    // Field managers of creates and updates are validated too.
    assert_error(
        store
            .create(
                "ns",
                configmap("ns", "x", &[]),
                &CreateOptions {
                    field_manager: Some("m".repeat(129)),
                    ..CreateOptions::default()
                },
            )
            .await,
        422,
        "Invalid",
        &["CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long"],
    );
    assert_error(
        store
            .update(
                "ns",
                "c",
                "",
                configmap("ns", "c", &[]),
                &UpdateOptions {
                    field_manager: Some("m\n".to_owned()),
                    ..UpdateOptions::default()
                },
            )
            .await,
        422,
        "Invalid",
        &["UpdateOptions.meta.k8s.io \"\" is invalid: fieldManager: Invalid value"],
    );
}

async fn apply_on_a_widget_with_status(b: Backend) {
    let store = widgets(&b);
    let body = b"apiVersion: apps.example.io/v1
kind: Widget
metadata: {name: w, namespace: ns}
spec: {displayName: One}
status: {phase: Running}
";
    let created = store
        .patch(
            "ns",
            "w",
            "",
            PatchBody::new(PatchType::Apply, body),
            &by("alice"),
        )
        .await
        .unwrap();
    assert!(created.created);
    let object = created.object;
    // Status is reset on the main resource and not owned by the applier.
    assert_eq!(object.status, v1::WidgetStatus::default());
    assert_eq!(object.metadata.generation, Some(1));
    let fields = owned(&object, "alice");
    assert!(fields.get("f:status").is_none(), "{fields}");
    assert!(fields["f:spec"].get("f:displayName").is_some());
    // A controller applies status through the subresource.
    let status = store
        .patch("ns", "w", "status", PatchBody::new(PatchType::Apply, b"apiVersion: apps.example.io/v1\nkind: Widget\nmetadata: {name: w}\nspec: {displayName: Hijack}\nstatus: {phase: Running, observedGeneration: 1}\n"), &by("controller"))
        .await
        .unwrap()
        .object;
    assert_eq!(status.status.phase.as_deref(), Some("Running"));
    assert_eq!(status.spec.display_name.as_deref(), Some("One"));
    assert_eq!(status.metadata.generation, Some(1));
    let fields = owned(&status, "controller");
    assert!(fields.get("f:spec").is_none(), "{fields}");
    assert!(fields["f:status"].get("f:phase").is_some());
    let entry = status
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|e| e.manager.as_deref() == Some("controller"))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    // The main applier re-applies a new spec (with a stale status): no conflict with the
    // controller, the status stays, the generation moves.
    let out = store
        .patch("ns", "w", "", PatchBody::new(PatchType::Apply, b"apiVersion: apps.example.io/v1\nkind: Widget\nmetadata: {name: w}\nspec: {displayName: Two}\nstatus: {phase: Pending}\n"), &by("alice"))
        .await
        .unwrap()
        .object;
    assert_eq!(out.spec.display_name.as_deref(), Some("Two"));
    assert_eq!(out.status.phase.as_deref(), Some("Running"));
    assert_eq!(out.metadata.generation, Some(2));
    // Merge patches of status through the subresource; spec changes there are ignored.
    let out = store
        .patch(
            "ns",
            "w",
            "status",
            PatchBody::new(
                PatchType::Merge,
                br#"{"spec":{"displayName":"Nope"},"status":{"observedGeneration":2}}"#,
            ),
            &by("controller"),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(out.status.observed_generation, Some(2));
    assert_eq!(out.spec.display_name.as_deref(), Some("Two"));
    assert_eq!(out.metadata.generation, Some(2));
    // Apply through status never creates.
    assert_error(
        store
            .patch("ns", "ghost", "status", PatchBody::new(PatchType::Apply, b"apiVersion: apps.example.io/v1\nkind: Widget\nmetadata: {name: ghost}\nstatus: {phase: Running}\n"), &by("controller"))
            .await,
        404,
        "NotFound",
        &["widgets.apps.example.io \"ghost\" not found"],
    );
    // Validation of the applied object: 422 with causes (and nothing created).
    let error = assert_error(
        store
            .patch("ns", "bad", "", PatchBody::new(PatchType::Apply, b"apiVersion: apps.example.io/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {description: no name}\n"), &by("alice"))
            .await,
        422,
        "Invalid",
        &["Widget.apps.example.io \"bad\" is invalid: spec.displayName: Required value"],
    );
    assert_eq!(
        causes(&error),
        vec![(
            "FieldValueRequired".to_owned(),
            "spec.displayName".to_owned()
        )]
    );
    assert_error(store.get("ns", "bad", "").await, 404, "NotFound", &[]);
    // Status patches of a kind without the subresource: 405.
    assert_error(
        configmaps(&b)
            .patch(
                "ns",
                "c",
                "status",
                PatchBody::new(PatchType::Merge, b"{}"),
                &none(),
            )
            .await,
        405,
        "MethodNotAllowed",
        &[],
    );
}

async fn patches_in_a_served_version(b: Backend) {
    let store = widgets(&b);
    let mut scheme = Scheme::new();
    example_widgets::register(&mut scheme).unwrap();
    let scheme = Arc::new(scheme);
    let in_v1beta1 = |manager: &str| PatchOptions::<v1::Widget> {
        view: Some(Arc::new(SchemeView::new(
            scheme.clone(),
            widget_resource_info(),
            "v1beta1",
        ))),
        ..PatchOptions::with_manager(manager)
    };
    // Apply in v1beta1: creates a v1 object.
    let out = store
        .patch("ns", "old", "", PatchBody::new(PatchType::Apply, b"apiVersion: apps.example.io/v1beta1\nkind: Widget\nmetadata:\n  name: old\n  annotations: {widgets.apps.example.io/description: described}\nspec: {title: Old Title}\n"), &in_v1beta1("old-client"))
        .await
        .unwrap();
    assert!(out.created);
    assert_eq!(out.object.spec.display_name.as_deref(), Some("Old Title"));
    assert_eq!(out.object.spec.description.as_deref(), Some("described"));
    assert!(out.object.metadata.annotations.is_none());
    let entry = out.object.metadata.managed_fields.clone().unwrap();
    assert_eq!(
        entry[0].api_version.as_deref(),
        Some("apps.example.io/v1beta1")
    );
    // A merge patch in v1beta1 names v1beta1 fields.
    let out = store
        .patch(
            "ns",
            "old",
            "",
            PatchBody::new(PatchType::Merge, br#"{"spec":{"title":"New Title"}}"#),
            &in_v1beta1("old-client"),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(out.spec.display_name.as_deref(), Some("New Title"));
    assert_eq!(out.spec.description.as_deref(), Some("described"));
    assert_eq!(out.metadata.generation, Some(2));
    // A v1 apply body against the v1beta1 endpoint, and the reverse.
    assert_error(
        store
            .patch("ns", "old", "", PatchBody::new(PatchType::Apply, b"apiVersion: apps.example.io/v1\nkind: Widget\nmetadata: {name: old}\nspec: {displayName: X}\n"), &in_v1beta1("old-client"))
            .await,
        400,
        "BadRequest",
        &["Incorrect version specified in apply patch. Specified patch version: apps.example.io/v1, expected: apps.example.io/v1beta1"],
    );
    assert_error(
        store
            .patch("ns", "old", "", PatchBody::new(PatchType::Apply, b"apiVersion: apps.example.io/v1beta1\nkind: Widget\nmetadata: {name: old}\nspec: {title: X}\n"), &by("new-client"))
            .await,
        400,
        "BadRequest",
        &["expected: apps.example.io/v1"],
    );
}

async fn dry_run_patches_persist_nothing(b: Backend) {
    let store = configmaps(&b);
    let created = seed(&store, "c", &[("a", "1")]).await;
    let dry = PatchOptions {
        dry_run: true,
        ..PatchOptions::default()
    };
    let out = store
        .patch(
            "ns",
            "c",
            "",
            PatchBody::new(PatchType::Merge, br#"{"data":{"a":"2"}}"#),
            &dry,
        )
        .await
        .unwrap();
    assert_eq!(data(&out.object), json!({"a": "2"}));
    assert_eq!(store.get("ns", "c", "").await.unwrap(), created);
    // Validation still runs.
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(PatchType::Merge, br#"{"data":{"bad key":"1"}}"#),
                &dry,
            )
            .await,
        422,
        "Invalid",
        &["data[bad key]"],
    );
    // A dry-run apply that would create.
    let dry_apply = PatchOptions {
        dry_run: true,
        ..PatchOptions::with_manager("alice")
    };
    let out = store
        .patch(
            "ns",
            "new",
            "",
            PatchBody::new(PatchType::Apply, &cm_apply("new", &[("x", "1")])),
            &dry_apply,
        )
        .await
        .unwrap();
    assert!(out.created);
    assert_eq!(data(&out.object), json!({"x": "1"}));
    assert_error(store.get("ns", "new", "").await, 404, "NotFound", &[]);
    // A dry-run apply of an existing object, with a conflict check.
    let owned_cm = store
        .patch(
            "ns",
            "owned",
            "",
            PatchBody::new(PatchType::Apply, &cm_apply("owned", &[("x", "1")])),
            &by("alice"),
        )
        .await
        .unwrap()
        .object;
    let dry_bob = PatchOptions {
        dry_run: true,
        ..PatchOptions::with_manager("bob")
    };
    assert_error(
        store
            .patch(
                "ns",
                "owned",
                "",
                PatchBody::new(PatchType::Apply, &cm_apply("owned", &[("x", "2")])),
                &dry_bob,
            )
            .await,
        409,
        "Conflict",
        &["conflict with \"alice\""],
    );
    let dry_force = PatchOptions {
        force: Some(true),
        ..dry_bob.clone()
    };
    let out = store
        .patch(
            "ns",
            "owned",
            "",
            PatchBody::new(PatchType::Apply, &cm_apply("owned", &[("x", "2")])),
            &dry_force,
        )
        .await
        .unwrap();
    assert_eq!(data(&out.object), json!({"x": "2"}));
    assert_eq!(store.get("ns", "owned", "").await.unwrap(), owned_cm);
}

async fn patch_retries_when_racing_an_update(b: Backend) {
    let store = Arc::new(configmaps(&b));
    seed(&store, "race", &[("base", "0")]).await;
    // Admission of the patch runs inside the compare-and-swap loop: its first call lets a
    // concurrent update land between the patch's read and its write.
    let calls = Arc::new(AtomicUsize::new(0));
    let racer = store.clone();
    let counter = calls.clone();
    let options = PatchOptions {
        update_validation: Some(Arc::new(move |_: &ConfigMap, _: Option<&ConfigMap>| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                let racer = racer.clone();
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(async move {
                        racer
                            .update_with(
                                "ns",
                                "race",
                                "",
                                |current: Option<&ConfigMap>| {
                                    let mut next = current.cloned().unwrap();
                                    next.data
                                        .get_or_insert_with(Default::default)
                                        .insert("racer".into(), "1".into());
                                    Ok(next)
                                },
                                &UpdateOptions::default(),
                            )
                            .await
                            .unwrap();
                    });
                });
            }
            Ok(())
        })),
        ..PatchOptions::with_manager("patcher")
    };
    let out = store
        .patch(
            "ns",
            "race",
            "",
            PatchBody::new(PatchType::Merge, br#"{"data":{"patched":"1"}}"#),
            &options,
        )
        .await
        .unwrap();
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "the patch was not retried"
    );
    assert_eq!(
        data(&out.object),
        json!({"base": "0", "patched": "1", "racer": "1"})
    );
    assert_eq!(store.get("ns", "race", "").await.unwrap(), out.object);

    // Many concurrent patches of one object: none is lost.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!(r#"[{{"op":"add","path":"/data/k{i}","value":"{i}"}}]"#);
            store
                .patch(
                    "ns",
                    "race",
                    "",
                    PatchBody::new(PatchType::Json, body.as_bytes()),
                    &none(),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let out = store.get("ns", "race", "").await.unwrap();
    let keys = out.data.unwrap();
    for i in 0..8 {
        assert_eq!(keys[&format!("k{i}")], i.to_string());
    }
}

async fn malformed_patch_bodies(b: Backend) {
    let store = configmaps(&b);
    let created = seed(&store, "c", &[("a", "1")]).await;
    let cases: Vec<(PatchType, Vec<u8>, u16, &str, &str)> = vec![
        (
            PatchType::Json,
            b"not json".to_vec(),
            400,
            "BadRequest",
            "error decoding patch",
        ),
        (
            PatchType::Json,
            b"{}".to_vec(),
            400,
            "BadRequest",
            "error decoding patch",
        ),
        (
            PatchType::Json,
            br#"[{"op":"test","path":"/data/a","value":"2"}]"#.to_vec(),
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        ),
        (
            PatchType::Json,
            br#"[{"op":"remove","path":"/data/missing"}]"#.to_vec(),
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        ),
        (
            PatchType::Json,
            br#"[{"op":"frobnicate","path":"/data/a"}]"#.to_vec(),
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        ),
        (
            PatchType::Merge,
            b"{".to_vec(),
            400,
            "BadRequest",
            "error decoding patch",
        ),
        (
            PatchType::Merge,
            b"[1,2]".to_vec(),
            422,
            "Invalid",
            "cannot unmarshal array into an object",
        ),
        (
            PatchType::Merge,
            br#"{"data":"not a map"}"#.to_vec(),
            422,
            "Invalid",
            "patch: Invalid value",
        ),
        (
            PatchType::StrategicMerge,
            b"nope".to_vec(),
            400,
            "BadRequest",
            "",
        ),
        (
            PatchType::StrategicMerge,
            b"[]".to_vec(),
            400,
            "BadRequest",
            "cannot unmarshal array",
        ),
        (
            PatchType::StrategicMerge,
            br#"{"data":{"$patch":"bogus"}}"#.to_vec(),
            400,
            "BadRequest",
            "unknown patch type: bogus",
        ),
        (
            PatchType::StrategicMerge,
            br#"{"metadata":{"ownerReferences":[{"name":"no-uid"}]}}"#.to_vec(),
            400,
            "BadRequest",
            "does not contain declared merge key: uid",
        ),
        (
            PatchType::Apply,
            b"data: [unclosed".to_vec(),
            400,
            "BadRequest",
            "error decoding YAML",
        ),
        (
            PatchType::Apply,
            b"- a\n- b\n".to_vec(),
            400,
            "BadRequest",
            "error decoding YAML: cannot unmarshal array into an object",
        ),
    ];
    for (patch_type, body, code, reason, part) in cases {
        let options = if patch_type == PatchType::Apply {
            by("alice")
        } else {
            none()
        };
        let result = store
            .patch("ns", "c", "", PatchBody::new(patch_type, &body), &options)
            .await;
        let error = result.expect_err("malformed patch accepted");
        assert_eq!(
            (error.code, error.reason.as_str()),
            (code, reason),
            "{patch_type:?} {}: {error:?}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            error.message.contains(part),
            "{patch_type:?}: {:?} lacks {part:?}",
            error.message
        );
    }
    // Too many JSON patch operations: 413.
    let ops: Vec<Value> = (0..=patch::MAX_JSON_PATCH_OPERATIONS)
        .map(|_| json!({"op": "test", "path": "/data/a", "value": "1"}))
        .collect();
    assert_error(
        store
            .patch(
                "ns",
                "c",
                "",
                PatchBody::new(
                    PatchType::Json,
                    serde_json::to_vec(&ops).unwrap().as_slice(),
                ),
                &none(),
            )
            .await,
        413,
        "RequestEntityTooLarge",
        &["The allowed maximum operations in a JSON patch is 10000, got 10001"],
    );
    // None of it changed the object.
    assert_eq!(store.get("ns", "c", "").await.unwrap(), created);
}

both_backends!(
    patch_types_on_a_configmap,
    strategic_merge_needs_a_builtin_kind,
    server_side_apply_lifecycle,
    client_side_update_then_apply_conflicts,
    apply_type_and_option_checks,
    apply_on_a_widget_with_status,
    patches_in_a_served_version,
    dry_run_patches_persist_nothing,
    patch_retries_when_racing_an_update,
    malformed_patch_bodies,
);
