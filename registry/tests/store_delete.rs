//! Store delete: Status responses, preconditions, finalizers, ShouldDeleteDuringUpdate,
//! propagation policies, graceful deletion, namespaces, DeleteCollection, dry run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_support;

use std::sync::Arc;

use apimachinery::selector::{LabelSelector, SelectionPredicate};
use builtin_kinds::GenericStrategy;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Preconditions};
use object_storage::ListOptions;
use registry::{CreateOptions, DeleteResponse, UpdateOptions};
use serde_json::json;
use store_support::*;

async fn delete_returns_status(b: Backend) {
    let store = configmaps(&b);
    let created = store
        .create("ns", configmap("ns", "c", &[]), &CreateOptions::default())
        .await
        .unwrap();
    let result = store
        .delete("ns", "c", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(result.deleted);
    let DeleteResponse::Status(status) = result.response else {
        panic!("expected a Status")
    };
    assert_eq!(status.status.as_deref(), Some("Success"));
    let details = status.details.unwrap();
    assert_eq!(details.name.as_deref(), Some("c"));
    assert_eq!(details.kind.as_deref(), Some("configmaps"));
    assert_eq!(details.uid, created.metadata.uid);
    assert_error(
        store.get("ns", "c", "").await,
        404,
        "NotFound",
        &["configmaps \"c\" not found"],
    );
    assert_error(
        store.delete("ns", "c", &DeleteOptions::default()).await,
        404,
        "NotFound",
        &["configmaps \"c\" not found"],
    );
    // Stores that return the deleted object.
    let returning = configmaps(&b).with_return_deleted_object(true);
    returning
        .create("ns", configmap("ns", "d", &[]), &CreateOptions::default())
        .await
        .unwrap();
    let result = returning
        .delete("ns", "d", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(result.response, DeleteResponse::Object(ref o) if o.metadata.name.as_deref() == Some("d"))
    );
}

async fn delete_preconditions(b: Backend) {
    let store = configmaps(&b);
    let created = store
        .create("ns", configmap("ns", "c", &[]), &CreateOptions::default())
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let wrong_uid = DeleteOptions {
        preconditions: Some(Preconditions {
            uid: Some("x".into()),
            resource_version: None,
        }),
        ..DeleteOptions::default()
    };
    let error = assert_error(
        store.delete("ns", "c", &wrong_uid).await,
        409,
        "Conflict",
        &[],
    );
    assert_eq!(
        error.message,
        format!(
            "Operation cannot be fulfilled on ConfigMap \"c\": the UID in the precondition (x) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        )
    );
    let wrong_rv = DeleteOptions {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: Some("999".into()),
        }),
        ..DeleteOptions::default()
    };
    assert_error(
        store.delete("ns", "c", &wrong_rv).await,
        409,
        "Conflict",
        &[&format!(
            "the ResourceVersion in the precondition (999) does not match the ResourceVersion in record ({rv}). The object might have been modified"
        )],
    );
    let right = DeleteOptions {
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: Some(rv),
        }),
        ..DeleteOptions::default()
    };
    assert!(store.delete("ns", "c", &right).await.unwrap().deleted);
    // Invalid options: 422 on DeleteOptions.
    store
        .create("ns", configmap("ns", "c", &[]), &CreateOptions::default())
        .await
        .unwrap();
    let bad = DeleteOptions {
        propagation_policy: Some("Sideways".into()),
        ..DeleteOptions::default()
    };
    let error = assert_error(
        store.delete("ns", "c", &bad).await,
        422,
        "Invalid",
        &[
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\"",
        ],
    );
    assert_eq!(
        causes(&error),
        vec![("FieldValueNotSupported".into(), "propagationPolicy".into())]
    );
    let both = DeleteOptions {
        propagation_policy: Some("Orphan".into()),
        orphan_dependents: Some(true),
        ..DeleteOptions::default()
    };
    assert_error(
        store.delete("ns", "c", &both).await,
        422,
        "Invalid",
        &["orphanDependents and deletionPropagation cannot be both set"],
    );
    let bad_dry = DeleteOptions {
        dry_run: Some(vec!["Some".into()]),
        ..DeleteOptions::default()
    };
    assert_error(
        store.delete("ns", "c", &bad_dry).await,
        422,
        "Invalid",
        &["dryRun: Unsupported value: []string{\"Some\"}: supported values: \"All\""],
    );
}

async fn delete_with_finalizers(b: Backend) {
    let store = gadgets(&b);
    let mut g = gadget("ns", "g", json!({"size": 1}), None);
    g.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let created = store
        .create("ns", g, &CreateOptions::default())
        .await
        .unwrap();
    let result = store
        .delete("ns", "g", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(!result.deleted);
    let DeleteResponse::Object(marked) = result.response else {
        panic!("expected the object")
    };
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(
        marked.metadata.generation,
        Some(2),
        "first deletion bumps the generation"
    );
    let stored = store.get("ns", "g", "").await.unwrap();
    assert_eq!(
        stored.metadata.deletion_timestamp,
        marked.metadata.deletion_timestamp
    );
    // Deleting again changes nothing.
    let again = store
        .delete("ns", "g", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(!again.deleted);
    // No new finalizers while being deleted.
    let mut more = stored.clone();
    more.metadata.finalizers = Some(vec!["example.com/hold".into(), "example.com/more".into()]);
    assert_error(
        store
            .update("ns", "g", "", more, &UpdateOptions::default())
            .await,
        422,
        "Invalid",
        &[
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
        ],
    );
    // deletionTimestamp cannot be removed by an update.
    let mut undelete = store.get("ns", "g", "").await.unwrap();
    undelete.metadata.deletion_timestamp = None;
    let kept = store
        .update("ns", "g", "", undelete, &UpdateOptions::default())
        .await
        .unwrap();
    assert!(kept.object.metadata.deletion_timestamp.is_some());
    // Removing the last finalizer deletes the object (ShouldDeleteDuringUpdate).
    let mut release = store.get("ns", "g", "").await.unwrap();
    release.metadata.finalizers = None;
    let out = store
        .update("ns", "g", "", release, &UpdateOptions::default())
        .await
        .unwrap();
    assert!(!out.created);
    assert_eq!(out.object.metadata.uid, created.metadata.uid);
    assert_error(
        store.get("ns", "g", "").await,
        404,
        "NotFound",
        &["gadgets.test.example.io \"g\" not found"],
    );
}

async fn delete_propagation_policies(b: Backend) {
    let store = configmaps(&b);
    store
        .create("ns", configmap("ns", "o", &[]), &CreateOptions::default())
        .await
        .unwrap();
    let orphan = DeleteOptions {
        propagation_policy: Some("Orphan".into()),
        ..DeleteOptions::default()
    };
    let result = store.delete("ns", "o", &orphan).await.unwrap();
    assert!(!result.deleted);
    let stored = store.get("ns", "o", "").await.unwrap();
    assert_eq!(stored.metadata.finalizers, Some(vec!["orphan".to_owned()]));
    assert!(stored.metadata.deletion_timestamp.is_some());

    store
        .create("ns", configmap("ns", "f", &[]), &CreateOptions::default())
        .await
        .unwrap();
    let foreground = DeleteOptions {
        propagation_policy: Some("Foreground".into()),
        ..DeleteOptions::default()
    };
    store.delete("ns", "f", &foreground).await.unwrap();
    let stored = store.get("ns", "f", "").await.unwrap();
    assert_eq!(
        stored.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_owned()])
    );

    // Background deletes at once.
    store
        .create("ns", configmap("ns", "bg", &[]), &CreateOptions::default())
        .await
        .unwrap();
    let background = DeleteOptions {
        propagation_policy: Some("Background".into()),
        ..DeleteOptions::default()
    };
    assert!(store.delete("ns", "bg", &background).await.unwrap().deleted);

    // Without garbage collection no finalizers are added.
    let no_gc = configmaps(&b).with_garbage_collection(false);
    no_gc
        .create("ns", configmap("ns", "n", &[]), &CreateOptions::default())
        .await
        .unwrap();
    assert!(no_gc.delete("ns", "n", &orphan).await.unwrap().deleted);
}

async fn delete_graceful(b: Backend) {
    let store = gadgets_with(&b, Arc::new(Graceful(GenericStrategy::new(true))));
    store
        .create(
            "ns",
            gadget("ns", "g", json!({}), None),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let result = store
        .delete("ns", "g", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(!result.deleted);
    let stored = store.get("ns", "g", "").await.unwrap();
    assert_eq!(stored.metadata.deletion_grace_period_seconds, Some(30));
    let first = stored.metadata.deletion_timestamp.clone().unwrap();
    // A longer or equal grace period is pending: nothing changes.
    let longer = DeleteOptions {
        grace_period_seconds: Some(60),
        ..DeleteOptions::default()
    };
    let pending = store.delete("ns", "g", &longer).await.unwrap();
    assert!(!pending.deleted);
    assert_eq!(
        store
            .get("ns", "g", "")
            .await
            .unwrap()
            .metadata
            .deletion_grace_period_seconds,
        Some(30)
    );
    // A shorter one moves the deletion timestamp earlier.
    let shorter = DeleteOptions {
        grace_period_seconds: Some(10),
        ..DeleteOptions::default()
    };
    store.delete("ns", "g", &shorter).await.unwrap();
    let moved = store.get("ns", "g", "").await.unwrap();
    assert_eq!(moved.metadata.deletion_grace_period_seconds, Some(10));
    assert_eq!(
        moved.metadata.deletion_timestamp.unwrap().0.as_second(),
        first.0.as_second() - 20
    );
    // Grace 0 deletes now.
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    let gone = store.delete("ns", "g", &now).await.unwrap();
    assert!(gone.deleted);
    assert_error(store.get("ns", "g", "").await, 404, "NotFound", &[]);
}

async fn delete_namespace_terminating(b: Backend) {
    let store = namespaces(&b);
    let mut ns = Namespace {
        metadata: meta("", "team"),
        ..Namespace::default()
    };
    ns.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
    store
        .create("", ns, &CreateOptions::default())
        .await
        .unwrap();
    let result = store
        .delete("", "team", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(!result.deleted);
    let stored = store.get("", "team", "").await.unwrap();
    assert_eq!(
        stored.status.as_ref().unwrap().phase.as_deref(),
        Some("Terminating")
    );
    // Namespaces take no part in GC: no orphan finalizer even when asked.
    assert_eq!(
        stored.metadata.finalizers,
        Some(vec!["example.com/cleanup".to_owned()])
    );
    // Removing the metadata finalizer is not enough: `spec.finalizers` still holds it.
    let mut done = stored.clone();
    done.metadata.finalizers = None;
    store
        .update("", "team", "", done, &UpdateOptions::default())
        .await
        .unwrap();
    let stored = store.get("", "team", "").await.unwrap();
    assert_eq!(
        stored.spec.as_ref().unwrap().finalizers,
        Some(vec!["kubernetes".to_owned()])
    );
    // Emptying it through `finalize` deletes the namespace.
    let mut finalized = stored.clone();
    finalized.spec.as_mut().unwrap().finalizers = Some(Vec::new());
    store
        .update("", "team", "finalize", finalized, &UpdateOptions::default())
        .await
        .unwrap();
    assert_error(
        store.get("", "team", "").await,
        404,
        "NotFound",
        &["namespaces \"team\" not found"],
    );
}

async fn delete_dry_run(b: Backend) {
    let store = configmaps(&b);
    store
        .create("ns", configmap("ns", "c", &[]), &CreateOptions::default())
        .await
        .unwrap();
    let dry = DeleteOptions {
        dry_run: dry_run_all(),
        ..DeleteOptions::default()
    };
    let result = store.delete("ns", "c", &dry).await.unwrap();
    assert!(result.deleted);
    assert!(store.get("ns", "c", "").await.is_ok());
    // Preconditions are still checked.
    let stale = DeleteOptions {
        dry_run: dry_run_all(),
        preconditions: Some(Preconditions {
            uid: Some("x".into()),
            resource_version: None,
        }),
        ..DeleteOptions::default()
    };
    assert_error(
        store.delete("ns", "c", &stale).await,
        409,
        "Conflict",
        &["the UID in the precondition (x)"],
    );
    // Dry-run with finalizers computes the marked object but writes nothing.
    let mut held = configmap("ns", "held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    store
        .create("ns", held, &CreateOptions::default())
        .await
        .unwrap();
    let result = store.delete("ns", "held", &dry).await.unwrap();
    let DeleteResponse::Object(marked) = result.response else {
        panic!("expected the object")
    };
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(
        store
            .get("ns", "held", "")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    // Dry-run update that would remove the last finalizer of a deleting object keeps it.
    store
        .delete("ns", "held", &DeleteOptions::default())
        .await
        .unwrap();
    let mut release = store.get("ns", "held", "").await.unwrap();
    release.metadata.finalizers = None;
    let dry_update = UpdateOptions {
        dry_run: true,
        ..UpdateOptions::default()
    };
    store
        .update("ns", "held", "", release, &dry_update)
        .await
        .unwrap();
    assert!(store.get("ns", "held", "").await.is_ok());
}

async fn delete_collection(b: Backend) {
    let store = configmaps(&b);
    for (ns, name, tier) in [
        ("a", "one", "web"),
        ("a", "two", "db"),
        ("b", "three", "web"),
        ("a", "four", "web"),
    ] {
        let mut cm = configmap(ns, name, &[]);
        cm.metadata.labels = Some([("tier".to_owned(), tier.to_owned())].into());
        store
            .create(ns, cm, &CreateOptions::default())
            .await
            .unwrap();
    }
    let options = ListOptions {
        predicate: SelectionPredicate {
            label: LabelSelector::parse("tier=web").unwrap(),
            ..SelectionPredicate::default()
        },
        ..ListOptions::default()
    };
    let deleted = store
        .delete_collection("a", &DeleteOptions::default(), &options)
        .await
        .unwrap();
    let mut names: Vec<_> = deleted
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["four", "one"]);
    let left: Vec<_> = store
        .list("", &ListOptions::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, vec!["two", "three"]);
    // Dry run deletes nothing.
    let dry = DeleteOptions {
        dry_run: dry_run_all(),
        ..DeleteOptions::default()
    };
    let listed = store
        .delete_collection("", &dry, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(
        store
            .list("", &ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // Everything across namespaces.
    store
        .delete_collection("", &DeleteOptions::default(), &ListOptions::default())
        .await
        .unwrap();
    assert!(
        store
            .list("", &ListOptions::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

both_backends!(
    delete_returns_status,
    delete_preconditions,
    delete_with_finalizers,
    delete_propagation_policies,
    delete_graceful,
    delete_namespace_terminating,
    delete_dry_run,
    delete_collection,
);
