//! The example kind `Widget` through the generic Store: create, get, update, the `status`
//! subresource, generation rules, validation failures (code, reason, causes), table columns,
//! and the versions (a v1beta1 view of a stored v1 object, a v1beta1 create) via the Scheme.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_support;

use std::sync::Arc;

use apimachinery::object::ObjectMeta;
use example_widgets::{
    self, DESCRIPTION_ANNOTATION, WidgetStrategy, v1, v1beta1, widget_resource_info, widget_store,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use object_storage::Storage;
use registry::{CreateOptions, Store, Strategy, UpdateOptions};
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
            description: Some("a widget".to_owned()),
        },
        status: v1::WidgetStatus::default(),
    }
}

fn running() -> v1::WidgetStatus {
    v1::WidgetStatus {
        phase: Some(example_widgets::PHASE_RUNNING.to_owned()),
        observed_generation: Some(1),
        conditions: Some(vec![Condition {
            type_: "Ready".to_owned(),
            status: "True".to_owned(),
            reason: "Started".to_owned(),
            message: String::new(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: Some(1),
        }]),
    }
}

fn scheme() -> Arc<Scheme> {
    let mut scheme = Scheme::new();
    example_widgets::register(&mut scheme).unwrap();
    Arc::new(scheme)
}

async fn widget_create_and_get(b: Backend) {
    let store = widgets(&b);
    assert!(store.namespace_scoped());
    assert!(store.has_status());
    let mut body = widget("w1", "Widget One");
    // Status is the controllers': a create drops it.
    body.status = running();
    let created = store
        .create("ns", body, &CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(created.status, v1::WidgetStatus::default());
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created
            .metadata
            .uid
            .as_deref()
            .is_some_and(|u| !u.is_empty())
    );
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert_eq!(created.spec.display_name.as_deref(), Some("Widget One"));
    let got = store.get("ns", "w1", "").await.unwrap();
    assert_eq!(got, created);
    // The body's namespace must be the request's.
    assert_error(
        store
            .create("other", widget("w2", "x"), &CreateOptions::default())
            .await,
        400,
        "BadRequest",
        &["the namespace of the provided object does not match the namespace sent on the request"],
    );
    // A second create of the same name.
    assert_error(
        store
            .create("ns", widget("w1", "again"), &CreateOptions::default())
            .await,
        409,
        "AlreadyExists",
        &["widgets.apps.example.io \"w1\" already exists"],
    );
    assert_error(
        store.get("ns", "missing", "").await,
        404,
        "NotFound",
        &["widgets.apps.example.io \"missing\" not found"],
    );
    // generateName works for widgets too.
    let mut generated = widget("", "Generated");
    generated.metadata.generate_name = Some("gen-".to_owned());
    let out = store
        .create("ns", generated, &CreateOptions::default())
        .await
        .unwrap();
    assert!(out.metadata.name.unwrap().starts_with("gen-"));
}

async fn widget_update_generation_rules(b: Backend) {
    let store = widgets(&b);
    let created = store
        .create("ns", widget("w", "One"), &CreateOptions::default())
        .await
        .unwrap();
    // A spec change bumps the generation.
    let mut next = created.clone();
    next.spec.display_name = Some("Two".to_owned());
    let updated = store
        .update("ns", "w", "", next, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(updated.metadata.generation, Some(2));
    assert_eq!(updated.spec.display_name.as_deref(), Some("Two"));
    // A metadata-only change does not; a client cannot set the generation.
    let mut labelled = updated.clone();
    labelled.metadata.labels = Some([("tier".to_owned(), "gold".to_owned())].into());
    labelled.metadata.generation = Some(42);
    let labelled = store
        .update("ns", "w", "", labelled, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(labelled.metadata.generation, Some(2));
    assert_ne!(
        labelled.metadata.resource_version,
        updated.metadata.resource_version
    );
    // Status written through the main resource is ignored: a no-op that keeps the
    // resourceVersion and the generation.
    let mut status_only = labelled.clone();
    status_only.status = running();
    let out = store
        .update("ns", "w", "", status_only, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(out, labelled);
    // Widgets need a resourceVersion on update (no unconditional updates) ...
    let mut unconditional = labelled.clone();
    unconditional.metadata.resource_version = None;
    assert_error(
        store
            .update("ns", "w", "", unconditional, &UpdateOptions::default())
            .await,
        422,
        "Invalid",
        &["metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"],
    );
    // ... and a current one.
    assert_error(
        store
            .update("ns", "w", "", updated.clone(), &UpdateOptions::default())
            .await,
        409,
        "Conflict",
        &[
            "Operation cannot be fulfilled on widgets.apps.example.io \"w\": the object has been modified",
        ],
    );
    // No create-on-update.
    assert_error(
        store
            .update(
                "ns",
                "nope",
                "",
                widget("nope", "x"),
                &UpdateOptions::default(),
            )
            .await,
        404,
        "NotFound",
        &["widgets.apps.example.io \"nope\" not found"],
    );
    // The uid and creationTimestamp are immutable.
    let mut moved = labelled.clone();
    moved.metadata.uid = Some("another-uid".to_owned());
    assert_error(
        store
            .update("ns", "w", "", moved, &UpdateOptions::default())
            .await,
        409,
        "Conflict",
        &["Precondition failed: UID in precondition: another-uid"],
    );
}

async fn widget_status_subresource(b: Backend) {
    let store = widgets(&b);
    let created = store
        .create("ns", widget("w", "One"), &CreateOptions::default())
        .await
        .unwrap();
    // A status write changes status only: the spec in the body is reset to the stored one.
    let mut body = created.clone();
    body.status = running();
    body.spec.display_name = Some("Sneaky".to_owned());
    let out = store
        .update("ns", "w", "status", body, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(out.status, running());
    assert_eq!(out.spec.display_name.as_deref(), Some("One"));
    assert_eq!(out.metadata.generation, Some(1));
    // The main resource keeps the status the subresource wrote.
    let mut next = out.clone();
    next.spec.description = Some("changed".to_owned());
    next.status = v1::WidgetStatus::default();
    let main = store
        .update("ns", "w", "", next, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(main.status, running());
    assert_eq!(main.metadata.generation, Some(2));
    // Status validation applies to status writes.
    let mut bad = main.clone();
    bad.status.phase = Some("Exploding".to_owned());
    bad.status.observed_generation = Some(-1);
    let error = assert_error(
        store
            .update("ns", "w", "status", bad, &UpdateOptions::default())
            .await,
        422,
        "Invalid",
        &[
            "Widget.apps.example.io \"w\" is invalid",
            "status.phase: Unsupported value: \"Exploding\"",
        ],
    );
    let found = causes(&error);
    assert!(found.contains(&(
        "FieldValueNotSupported".to_owned(),
        "status.phase".to_owned()
    )));
    assert!(found.contains(&(
        "FieldValueInvalid".to_owned(),
        "status.observedGeneration".to_owned()
    )));
    // The status subresource of a missing widget.
    assert_error(
        store
            .update(
                "ns",
                "ghost",
                "status",
                widget("ghost", "x"),
                &UpdateOptions::default(),
            )
            .await,
        404,
        "NotFound",
        &[],
    );
}

async fn widget_validation_failures(b: Backend) {
    let store = widgets(&b);
    // Required display name.
    let mut missing = widget("w", "");
    missing.spec.display_name = None;
    let error = assert_error(
        store.create("ns", missing, &CreateOptions::default()).await,
        422,
        "Invalid",
        &["Widget.apps.example.io \"w\" is invalid: spec.displayName: Required value"],
    );
    assert_eq!(
        causes(&error),
        vec![(
            "FieldValueRequired".to_owned(),
            "spec.displayName".to_owned()
        )]
    );
    let details = error.details.clone().unwrap();
    assert_eq!(details.kind.as_deref(), Some("Widget"));
    assert_eq!(details.group.as_deref(), Some("apps.example.io"));
    assert_eq!(details.name.as_deref(), Some("w"));
    // Too long, the reserved annotation, and a bad name at once.
    let mut many = widget(
        "Bad_Name",
        &"x".repeat(example_widgets::MAX_DISPLAY_NAME_LENGTH + 1),
    );
    many.metadata.annotations = Some([(DESCRIPTION_ANNOTATION.to_owned(), "d".to_owned())].into());
    let error = assert_error(
        store.create("ns", many, &CreateOptions::default()).await,
        422,
        "Invalid",
        &["Widget.apps.example.io \"Bad_Name\" is invalid: ["],
    );
    let found = causes(&error);
    for expected in [
        ("FieldValueInvalid", "metadata.name"),
        ("FieldValueTooLong", "spec.displayName"),
        (
            "FieldValueForbidden",
            "metadata.annotations[widgets.apps.example.io/description]",
        ),
    ] {
        assert!(
            found.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not in {found:?}"
        );
    }
    // Update validation.
    let created = store
        .create("ns", widget("ok", "fine"), &CreateOptions::default())
        .await
        .unwrap();
    let mut bad = created.clone();
    bad.spec.description = Some("d".repeat(example_widgets::MAX_DESCRIPTION_LENGTH + 1));
    let error = assert_error(
        store
            .update("ns", "ok", "", bad, &UpdateOptions::default())
            .await,
        422,
        "Invalid",
        &["spec.description: Too long"],
    );
    assert_eq!(
        causes(&error),
        vec![(
            "FieldValueTooLong".to_owned(),
            "spec.description".to_owned()
        )]
    );
    // Nothing was written by the failures.
    assert_eq!(store.get("ns", "ok", "").await.unwrap(), created);
    assert_error(store.get("ns", "w", "").await, 404, "NotFound", &[]);
}

async fn widget_versions_through_the_scheme(b: Backend) {
    let store = widgets(&b);
    let scheme = scheme();
    let info = widget_resource_info();
    // A v1 object, read as v1beta1.
    let created = store
        .create("ns", widget("w", "Widget One"), &CreateOptions::default())
        .await
        .unwrap();
    let as_v1beta1 = scheme
        .convert(serde_json::to_value(&created).unwrap(), "v1beta1")
        .unwrap();
    assert_eq!(as_v1beta1["apiVersion"], "apps.example.io/v1beta1");
    assert_eq!(as_v1beta1["spec"], json!({"title": "Widget One"}));
    assert_eq!(
        as_v1beta1["metadata"]["annotations"][DESCRIPTION_ANNOTATION],
        "a widget"
    );
    assert_eq!(
        as_v1beta1["metadata"]["resourceVersion"],
        Value::from(created.metadata.resource_version.clone().unwrap())
    );
    let typed: v1beta1::Widget = serde_json::from_value(as_v1beta1.clone()).unwrap();
    assert_eq!(typed.spec.title.as_deref(), Some("Widget One"));
    // And back: the v1beta1 view converts to the stored object exactly.
    let back = scheme.convert(as_v1beta1, "v1").unwrap();
    assert_eq!(serde_json::from_value::<v1::Widget>(back).unwrap(), created);

    // A v1beta1 create: decoded (defaulted, converted through the hub) to v1, then stored.
    let body = json!({
        "apiVersion": "apps.example.io/v1beta1",
        "kind": "Widget",
        "metadata": {
            "name": "old",
            "namespace": "ns",
            "annotations": {DESCRIPTION_ANNOTATION: "from the annotation"},
        },
        "spec": {"title": "Old Client"},
    });
    let storage = scheme
        .decode_to_storage(&info.gvk("v1beta1"), body)
        .unwrap();
    assert_eq!(storage["apiVersion"], "apps.example.io/v1");
    let object: v1::Widget = serde_json::from_value(storage).unwrap();
    let stored = store
        .create("ns", object, &CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(stored.spec.display_name.as_deref(), Some("Old Client"));
    assert_eq!(
        stored.spec.description.as_deref(),
        Some("from the annotation")
    );
    assert!(stored.metadata.annotations.is_none());
    assert_eq!(stored.metadata.generation, Some(1));
    let read = store.get("ns", "old", "").await.unwrap();
    let view = scheme
        .convert(serde_json::to_value(&read).unwrap(), "v1beta1")
        .unwrap();
    assert_eq!(view["spec"]["title"], "Old Client");
    assert_eq!(
        view["metadata"]["annotations"][DESCRIPTION_ANNOTATION],
        "from the annotation"
    );
    // A v1beta1 body that fails validation once converted: 422 on the v1 field.
    let invalid = json!({
        "apiVersion": "apps.example.io/v1beta1",
        "kind": "Widget",
        "metadata": {"name": "untitled", "namespace": "ns"},
        "spec": {},
    });
    let object: v1::Widget = serde_json::from_value(
        scheme
            .decode_to_storage(&info.gvk("v1beta1"), invalid)
            .unwrap(),
    )
    .unwrap();
    let error = assert_error(
        store.create("ns", object, &CreateOptions::default()).await,
        422,
        "Invalid",
        &["spec.displayName: Required value"],
    );
    assert_eq!(
        causes(&error),
        vec![(
            "FieldValueRequired".to_owned(),
            "spec.displayName".to_owned()
        )]
    );
    // A body in a version that is not served.
    assert_error(
        scheme.decode_to_storage(
            &info.gvk("v1beta1"),
            json!({"apiVersion": "apps.example.io/v2", "kind": "Widget", "metadata": {"name": "x"}}),
        ),
        400,
        "BadRequest",
        &["no kind \"Widget\" is registered for version \"apps.example.io/v2\""],
    );
}

async fn widget_table(b: Backend) {
    let store = widgets(&b);
    let created = store
        .create("ns", widget("w", "Shown"), &CreateOptions::default())
        .await
        .unwrap();
    let mut status = created.clone();
    status.status = running();
    let out = store
        .update("ns", "w", "status", status, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    let columns: Vec<String> = store.table_columns().into_iter().map(|c| c.name).collect();
    assert_eq!(columns, ["Name", "Display Name", "Phase", "Age"]);
    let cells = store.strategy().table_cells(&out);
    assert_eq!(cells[0], "w");
    assert_eq!(cells[1], "Shown");
    assert_eq!(cells[2], "Running");
    assert!(cells[3].as_str().unwrap().ends_with('s'));
    assert_eq!(WidgetStrategy.table_cells(&out)[2], Value::from("Running"));
}

both_backends!(
    widget_create_and_get,
    widget_update_generation_rules,
    widget_status_subresource,
    widget_validation_failures,
    widget_versions_through_the_scheme,
    widget_table,
);
