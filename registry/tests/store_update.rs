//! Store update: resourceVersion rules, generation, immutable metadata, create-on-update,
//! no-op updates, status subresource, update_with retries, dry run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_support;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Event, ObjectReference};
use object_storage::Preconditions;
use registry::{CreateOptions, UpdateOptions};
use serde_json::json;
use store_support::*;

async fn update_resource_version_rules(b: Backend) {
    let store = configmaps(&b);
    let created = store
        .create(
            "ns",
            configmap("ns", "c", &[("a", "1")]),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    let mut next = created.clone();
    next.data = Some([("a".to_owned(), "2".to_owned())].into());
    let updated = store
        .update("ns", "c", "", next.clone(), &UpdateOptions::default())
        .await
        .unwrap();
    assert!(!updated.created);
    assert_ne!(
        updated.object.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    // Stale resourceVersion: 409.
    let error = assert_error(
        store
            .update("ns", "c", "", next.clone(), &UpdateOptions::default())
            .await,
        409,
        "Conflict",
        &[],
    );
    assert_eq!(
        error.message,
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // Configmaps allow unconditional updates.
    let mut unconditional = next.clone();
    unconditional.metadata.resource_version = None;
    unconditional.data = Some([("a".to_owned(), "3".to_owned())].into());
    let out = store
        .update("ns", "c", "", unconditional, &UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(out.object.data.unwrap()["a"], "3");

    // Custom kinds do not: 422 on metadata.resourceVersion.
    let gadgets = gadgets(&b);
    gadgets
        .create(
            "ns",
            gadget("ns", "g", json!({"size": 1}), None),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let error = assert_error(
        gadgets
            .update(
                "ns",
                "g",
                "",
                gadget("ns", "g", json!({"size": 2}), None),
                &UpdateOptions::default(),
            )
            .await,
        422,
        "Invalid",
        &[],
    );
    assert_eq!(
        error.message,
        "gadgets.test.example.io \"g\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );
    assert_eq!(
        causes(&error),
        vec![(
            "FieldValueInvalid".into(),
            "metadata.resourceVersion".into()
        )]
    );
    // Name mismatch between body and URL: 400.
    assert_error(
        store
            .update("ns", "other", "", next.clone(), &UpdateOptions::default())
            .await,
        400,
        "BadRequest",
        &["the name of the object (c) does not match the name on the URL (other)"],
    );
    // Namespace mismatch: 400.
    let mut wrong_ns = store.get("ns", "c", "").await.unwrap();
    wrong_ns.metadata.namespace = Some("elsewhere".into());
    assert_error(
        store
            .update("ns", "c", "", wrong_ns, &UpdateOptions::default())
            .await,
        400,
        "BadRequest",
        &["the namespace of the provided object does not match the namespace sent on the request"],
    );
    // A uid in the body is a precondition: 409.
    let mut wrong_uid = store.get("ns", "c", "").await.unwrap();
    wrong_uid.metadata.uid = Some("00000000-0000-4000-8000-000000000000".into());
    assert_error(
        store
            .update("ns", "c", "", wrong_uid, &UpdateOptions::default())
            .await,
        409,
        "Conflict",
        &[
            "Operation cannot be fulfilled on configmaps \"c\": Precondition failed: UID in precondition: 00000000-0000-4000-8000-000000000000",
        ],
    );
    // Missing object: 404 (no create-on-update for configmaps).
    assert_error(
        store
            .update(
                "ns",
                "missing",
                "",
                configmap("ns", "missing", &[]),
                &UpdateOptions::default(),
            )
            .await,
        404,
        "NotFound",
        &["configmaps \"missing\" not found"],
    );
}

async fn update_generation_and_noop(b: Backend) {
    let gadgets = gadgets(&b);
    let g = gadgets
        .create(
            "ns",
            gadget("ns", "g", json!({"size": 1}), None),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(g.metadata.generation, Some(1));
    // A metadata-only change keeps the generation.
    let mut labelled = g.clone();
    labelled.metadata.labels = Some([("app".to_owned(), "x".to_owned())].into());
    let out = gadgets
        .update("ns", "g", "", labelled, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(out.metadata.generation, Some(1));
    // A spec change bumps it; clients cannot set it.
    let mut spec = out.clone();
    spec.data["spec"] = json!({"size": 2});
    spec.metadata.generation = Some(42);
    let out = gadgets
        .update("ns", "g", "", spec, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(out.metadata.generation, Some(2));
    // A no-op update keeps the resourceVersion.
    let again = gadgets
        .update("ns", "g", "", out.clone(), &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(
        again.metadata.resource_version,
        out.metadata.resource_version
    );
    assert_eq!(again, out);
    // Status is reset on main-resource writes.
    let mut with_status = out.clone();
    with_status.data["status"] = json!({"phase": "Running"});
    let main = gadgets
        .update(
            "ns",
            "g",
            "",
            with_status.clone(),
            &UpdateOptions::default(),
        )
        .await
        .unwrap()
        .object;
    assert!(main.data.get("status").is_none());
    assert_eq!(
        main.metadata.resource_version, out.metadata.resource_version,
        "a status-only change on the main resource is a no-op"
    );
    // The status subresource writes status only (spec changes are dropped; generation kept).
    let mut status_write = with_status.clone();
    status_write.data["spec"] = json!({"size": 99});
    let status = gadgets
        .update("ns", "g", "status", status_write, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(status.data["status"], json!({"phase": "Running"}));
    assert_eq!(status.data["spec"], json!({"size": 2}));
    assert_eq!(status.metadata.generation, Some(2));
    // Configmaps have no status subresource.
    let configmaps = configmaps(&b);
    assert_error(
        configmaps
            .update(
                "ns",
                "x",
                "status",
                configmap("ns", "x", &[]),
                &UpdateOptions::default(),
            )
            .await,
        405,
        "MethodNotAllowed",
        &[],
    );
}

async fn update_immutable_metadata(b: Backend) {
    let store = configmaps(&b);
    let created = store
        .create("ns", configmap("ns", "c", &[]), &CreateOptions::default())
        .await
        .unwrap();
    // creationTimestamp is forced to the stored one; an empty uid takes the stored one.
    let mut body = created.clone();
    body.metadata.creation_timestamp = None;
    body.metadata.uid = None;
    body.data = Some([("k".to_owned(), "v".to_owned())].into());
    let out = store
        .update("ns", "c", "", body, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(
        out.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );
    assert_eq!(out.metadata.uid, created.metadata.uid);
    // Changing the uid through update_with (no uid precondition): 422 immutable.
    let error = assert_error(
        store
            .update_with(
                "ns",
                "c",
                "",
                |current| {
                    let mut next = current.cloned().unwrap();
                    next.metadata.uid = Some("changed".into());
                    Ok(next)
                },
                &UpdateOptions::default(),
            )
            .await,
        422,
        "Invalid",
        &[
            "ConfigMap \"c\" is invalid: metadata.uid: Invalid value: \"changed\": field is immutable",
        ],
    );
    assert_eq!(
        causes(&error),
        vec![("FieldValueInvalid".into(), "metadata.uid".into())]
    );
    // Immutable configmaps keep their data.
    let mut frozen = out.clone();
    frozen.immutable = Some(true);
    let frozen = store
        .update("ns", "c", "", frozen, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    let mut thaw = frozen.clone();
    thaw.data = Some([("k".to_owned(), "changed".to_owned())].into());
    let error = assert_error(
        store
            .update("ns", "c", "", thaw, &UpdateOptions::default())
            .await,
        422,
        "Invalid",
        &["data: Forbidden: field is immutable when `immutable` is set"],
    );
    assert_eq!(
        causes(&error),
        vec![("FieldValueForbidden".into(), "data".into())]
    );
    // Secret type is immutable.
    let secrets = secrets(&b);
    let s = secrets
        .create(
            "ns",
            k8s_openapi::api::core::v1::Secret {
                metadata: meta("ns", "s"),
                ..Default::default()
            },
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let mut retyped = s.clone();
    retyped.type_ = Some("kubernetes.io/basic-auth".into());
    retyped.data = Some(
        [(
            "username".to_owned(),
            k8s_openapi::ByteString(b"u".to_vec()),
        )]
        .into(),
    );
    assert_error(
        secrets
            .update("ns", "s", "", retyped, &UpdateOptions::default())
            .await,
        422,
        "Invalid",
        &["type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"],
    );
}

fn event(namespace: &str, name: &str, reason: &str) -> Event {
    Event {
        metadata: meta(namespace, name),
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some("p".into()),
            namespace: Some(namespace.into()),
            ..ObjectReference::default()
        },
        reason: Some(reason.into()),
        message: Some("hello".into()),
        type_: Some("Normal".into()),
        ..Event::default()
    }
}

async fn update_create_on_update(b: Backend) {
    let events = events(&b);
    let out = events
        .update(
            "ns",
            "e",
            "",
            event("ns", "e", "Started"),
            &UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert!(out.created);
    assert!(out.object.metadata.uid.is_some());
    let again = events
        .update(
            "ns",
            "e",
            "",
            event("ns", "e", "Pulled"),
            &UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.object.reason.as_deref(), Some("Pulled"));
    assert_eq!(again.object.metadata.uid, out.object.metadata.uid);
    // A body naming a uid is a precondition, also when nothing is stored (the uid of an
    // object since deleted): 409, as upstream's GuaranteedUpdate checks the empty object, and
    // nothing is created.
    let mut stale = event("ns", "gone", "Started");
    stale.metadata.uid = Some("0e7e3ad2-uid-of-a-deleted-event".into());
    assert_error(
        events
            .update("ns", "gone", "", stale.clone(), &UpdateOptions::default())
            .await,
        409,
        "Conflict",
        &[
            "Precondition failed: UID in precondition: 0e7e3ad2-uid-of-a-deleted-event, UID in object meta: ",
        ],
    );
    let dry = UpdateOptions {
        dry_run: true,
        ..UpdateOptions::default()
    };
    assert_error(
        events.update("ns", "gone", "", stale, &dry).await,
        409,
        "Conflict",
        &["Precondition failed: UID in precondition"],
    );
    assert_error(
        events.get("ns", "gone", "").await,
        404,
        "NotFound",
        &["\"gone\" not found"],
    );
    // Event validation: involved object namespace must match.
    let mut wrong = event("ns", "w", "x");
    wrong.involved_object.namespace = Some("other".into());
    assert_error(
        events.create("ns", wrong, &CreateOptions::default()).await,
        422,
        "Invalid",
        &["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"],
    );
    // force_allow_create creates through update for kinds that do not allow it by default.
    let store = configmaps(&b);
    // A kind that never creates on update: a missing object is 404, unless a uid
    // precondition fails first (409), in upstream's order.
    assert_error(
        store
            .update(
                "ns",
                "none",
                "",
                configmap("ns", "none", &[]),
                &UpdateOptions::default(),
            )
            .await,
        404,
        "NotFound",
        &["configmaps \"none\" not found"],
    );
    let mut with_uid = configmap("ns", "none", &[]);
    with_uid.metadata.uid = Some("uid-of-a-deleted-configmap".into());
    assert_error(
        store
            .update("ns", "none", "", with_uid, &UpdateOptions::default())
            .await,
        409,
        "Conflict",
        &["Precondition failed: UID in precondition: uid-of-a-deleted-configmap"],
    );
    let forced = UpdateOptions {
        force_allow_create: true,
        ..UpdateOptions::default()
    };
    let out = store
        .update("ns", "new", "", configmap("ns", "new", &[]), &forced)
        .await
        .unwrap();
    assert!(out.created);
    // Create-on-update runs create validation.
    assert_error(
        store
            .update("ns", "Bad", "", configmap("ns", "Bad", &[]), &forced)
            .await,
        422,
        "Invalid",
        &["metadata.name"],
    );
}

async fn update_with_retries_on_conflict(b: Backend) {
    let store = Arc::new(configmaps(&b));
    store
        .create(
            "ns",
            configmap("ns", "counter", &[("n", "0")]),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .update_with(
                    "ns",
                    "counter",
                    "",
                    |current: Option<&ConfigMap>| {
                        let mut next = current.cloned().unwrap();
                        let data = next.data.get_or_insert_with(Default::default);
                        let n: u32 = data["n"].parse().unwrap();
                        data.insert("n".into(), (n + 1).to_string());
                        Ok(next)
                    },
                    &UpdateOptions::default(),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let out = store.get("ns", "counter", "").await.unwrap();
    assert_eq!(out.data.unwrap()["n"], "8");
    // A resourceVersion precondition that no longer holds: 409.
    let stale = UpdateOptions {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        }),
        ..UpdateOptions::default()
    };
    assert_error(
        store
            .update_with("ns", "counter", "", |c| Ok(c.cloned().unwrap()), &stale)
            .await,
        409,
        "Conflict",
        &["Precondition failed: ResourceVersion in precondition: 1"],
    );
    // Errors of the update function come back unchanged.
    assert_error(
        store
            .update_with(
                "ns",
                "counter",
                "",
                |_| {
                    Err(apimachinery::status::ApiError::bad_request(
                        "patch does not apply",
                    ))
                },
                &UpdateOptions::default(),
            )
            .await,
        400,
        "BadRequest",
        &["patch does not apply"],
    );
}

async fn update_dry_run(b: Backend) {
    let store = configmaps(&b);
    let created = store
        .create(
            "ns",
            configmap("ns", "c", &[("a", "1")]),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let mut next = created.clone();
    next.data = Some([("a".to_owned(), "2".to_owned())].into());
    let dry = UpdateOptions {
        dry_run: true,
        ..UpdateOptions::default()
    };
    let out = store
        .update("ns", "c", "", next.clone(), &dry)
        .await
        .unwrap();
    assert_eq!(out.object.data.as_ref().unwrap()["a"], "2");
    let stored = store.get("ns", "c", "").await.unwrap();
    assert_eq!(stored, created);
    // Validation and conflicts still apply.
    let mut stale = next.clone();
    stale.metadata.resource_version = Some("999".into());
    assert_error(
        store.update("ns", "c", "", stale, &dry).await,
        409,
        "Conflict",
        &["the object has been modified"],
    );
    let mut bad = next.clone();
    bad.data = Some([("bad key".to_owned(), "x".to_owned())].into());
    assert_error(
        store.update("ns", "c", "", bad, &dry).await,
        422,
        "Invalid",
        &["data[bad key]"],
    );
    // Dry-run create-on-update persists nothing.
    let events = events(&b);
    let out = events
        .update(
            "ns",
            "e",
            "",
            event("ns", "e", "x"),
            &UpdateOptions {
                dry_run: true,
                ..UpdateOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(out.created);
    assert_error(events.get("ns", "e", "").await, 404, "NotFound", &[]);
}

both_backends!(
    update_resource_version_rules,
    update_generation_and_noop,
    update_immutable_metadata,
    update_create_on_update,
    update_with_retries_on_conflict,
    update_dry_run,
);
