//! Namespaces through the Store, as kube-apiserver's namespace registry and the
//! `NamespaceLifecycle` admission treat them: `spec.finalizers` and the
//! `kubernetes.io/metadata.name` label on create, two-phase deletion, the `finalize`
//! subresource (`ShouldDeleteNamespaceDuringUpdate`), status phase rules, and the namespace
//! checks of namespaced creates and updates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_support;

use std::sync::Arc;
use std::time::Duration;

use builtin_kinds::LABEL_METADATA_NAME;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Namespace, NamespaceSpec, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Preconditions};
use object_storage::{ListOptions, WatchEvent};
use registry::lifecycle::NAMESPACE_TERMINATING_CAUSE;
use registry::{CreateOptions, DeleteResponse, Store, UpdateOptions};
use store_support::*;

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: meta("", name),
        ..Namespace::default()
    }
}

async fn create(store: &Store<Namespace>, ns: Namespace) -> Namespace {
    store
        .create("", ns, &CreateOptions::default())
        .await
        .unwrap()
}

fn spec_finalizers(ns: &Namespace) -> Vec<String> {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
}

fn phase(ns: &Namespace) -> String {
    ns.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn label(ns: &Namespace) -> Option<String> {
    ns.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_METADATA_NAME).cloned())
}

fn with_spec_finalizers(mut ns: Namespace, finalizers: &[&str]) -> Namespace {
    ns.spec = Some(NamespaceSpec {
        finalizers: Some(finalizers.iter().map(|f| (*f).to_owned()).collect()),
    });
    ns
}

async fn create_sets_spec_finalizer_and_label(b: Backend) {
    let store = namespaces(&b);
    let team = create(&store, namespace("team")).await;
    assert_eq!(spec_finalizers(&team), ["kubernetes"]);
    assert_eq!(team.metadata.finalizers, None);
    assert_eq!(label(&team).as_deref(), Some("team"));
    assert_eq!(phase(&team), "Active");

    // Finalizers of the request are kept; the kubernetes one is appended once.
    let own = create(
        &store,
        with_spec_finalizers(namespace("own"), &["example.com/cleanup"]),
    )
    .await;
    assert_eq!(spec_finalizers(&own), ["example.com/cleanup", "kubernetes"]);

    // A generated name is labelled too (the label is set after name generation).
    let mut generated = namespace("");
    generated.metadata.generate_name = Some("gen-".to_owned());
    let generated = create(&store, generated).await;
    let name = generated.metadata.name.clone().unwrap();
    assert!(name.starts_with("gen-"), "{name}");
    assert_eq!(label(&generated), Some(name));

    // Updates restore the label and keep spec.finalizers and status.
    let mut changed = team.clone();
    changed.metadata.labels = None;
    changed.spec = Some(NamespaceSpec {
        finalizers: Some(Vec::new()),
    });
    let updated = store
        .update("", "team", "", changed, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(label(&updated).as_deref(), Some("team"));
    assert_eq!(spec_finalizers(&updated), ["kubernetes"]);
    let mut relabelled = updated.clone();
    relabelled
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(LABEL_METADATA_NAME.to_owned(), "other".to_owned());
    let updated = store
        .update("", "team", "", relabelled, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(label(&updated).as_deref(), Some("team"));

    // Finalizer names must be standard or qualified.
    assert_error(
        store
            .create(
                "",
                with_spec_finalizers(namespace("bad"), &["bogus"]),
                &CreateOptions::default(),
            )
            .await,
        422,
        "Invalid",
        &[
            "Namespace \"bad\" is invalid: spec.finalizers: Invalid value: \"bogus\": name is neither a standard finalizer name nor is it fully qualified",
        ],
    );
}

async fn next_event(watch: &mut object_storage::ObjectWatch<Namespace>) -> WatchEvent<Namespace> {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("watch event in time")
        .expect("watch open")
}

async fn delete_is_two_phase(b: Backend) {
    let store = namespaces(&b);
    let created = create(&store, namespace("team")).await;
    let mut watch = store
        .watch(
            "",
            &ListOptions {
                resource_version: created.metadata.resource_version.clone().unwrap(),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();

    // The first delete marks the namespace and answers with it.
    let first = store
        .delete("", "team", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(!first.deleted);
    let DeleteResponse::Object(marked) = first.response else {
        panic!("expected the namespace, got {:?}", first.response);
    };
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, None);
    assert_eq!(marked.metadata.finalizers, None);
    assert_eq!(phase(&marked), "Terminating");
    assert_eq!(spec_finalizers(&marked), ["kubernetes"]);
    assert_eq!(store.get("", "team", "").await.unwrap(), marked);
    match next_event(&mut watch).await {
        WatchEvent::Modified(ns) => assert_eq!(phase(&ns), "Terminating"),
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    // Later deletes change nothing while spec.finalizers holds it.
    let again = store
        .delete("", "team", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(!again.deleted);
    assert_eq!(again.response, DeleteResponse::Object(marked.clone()));

    // Ordinary updates of a terminating namespace do not delete it.
    let mut labelled = marked.clone();
    labelled
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("x".to_owned(), "y".to_owned());
    let labelled = store
        .update("", "team", "", labelled, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(spec_finalizers(&labelled), ["kubernetes"]);
    assert!(store.get("", "team", "").await.is_ok());
    assert!(matches!(
        next_event(&mut watch).await,
        WatchEvent::Modified(_)
    ));

    // Emptying spec.finalizers through `finalize` deletes it.
    let finalized = store
        .update(
            "",
            "team",
            "finalize",
            with_spec_finalizers(labelled, &[]),
            &UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert!(!finalized.created);
    assert_error(
        store.get("", "team", "").await,
        404,
        "NotFound",
        &["namespaces \"team\" not found"],
    );
    match next_event(&mut watch).await {
        WatchEvent::Deleted(ns) => assert_eq!(ns.metadata.name.as_deref(), Some("team")),
        other => panic!("expected DELETED, got {other:?}"),
    }
}

async fn delete_checks_preconditions(b: Backend) {
    let store = namespaces(&b);
    let created = create(&store, namespace("team")).await;
    let uid = created.metadata.uid.clone().unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let wrong_uid = DeleteOptions {
        preconditions: Some(Preconditions {
            uid: Some("other".to_owned()),
            resource_version: None,
        }),
        ..DeleteOptions::default()
    };
    assert_error(
        store.delete("", "team", &wrong_uid).await,
        409,
        "Conflict",
        &[&format!(
            "Operation cannot be fulfilled on namespaces \"team\": Precondition failed: UID in precondition: other, UID in object meta: {uid}"
        )],
    );
    let wrong_rv = DeleteOptions {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: Some("12345".to_owned()),
        }),
        ..DeleteOptions::default()
    };
    assert_error(
        store.delete("", "team", &wrong_rv).await,
        409,
        "Conflict",
        &[&format!(
            "Precondition failed: ResourceVersion in precondition: 12345, ResourceVersion in object meta: {rv}"
        )],
    );
    // Bad options are 422 as for any delete.
    let bad = DeleteOptions {
        propagation_policy: Some("Sideways".to_owned()),
        ..DeleteOptions::default()
    };
    assert_error(
        store.delete("", "team", &bad).await,
        422,
        "Invalid",
        &["propagationPolicy"],
    );
    // Dry run marks nothing.
    let dry = DeleteOptions {
        dry_run: Some(vec!["All".to_owned()]),
        ..DeleteOptions::default()
    };
    let result = store.delete("", "team", &dry).await.unwrap();
    let DeleteResponse::Object(would) = result.response else {
        panic!("expected the namespace");
    };
    assert_eq!(phase(&would), "Terminating");
    let stored = store.get("", "team", "").await.unwrap();
    assert_eq!(stored.metadata.deletion_timestamp, None);
    assert_eq!(phase(&stored), "Active");
    // The right preconditions mark it.
    let right = DeleteOptions {
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: Some(rv),
        }),
        ..DeleteOptions::default()
    };
    assert!(!store.delete("", "team", &right).await.unwrap().deleted);
    assert_eq!(
        phase(&store.get("", "team", "").await.unwrap()),
        "Terminating"
    );
}

async fn finalize_subresource(b: Backend) {
    let store = namespaces(&b);
    let created = create(&store, namespace("team")).await;

    // On an active namespace: only metadata and spec.finalizers change; status is kept.
    let mut body = with_spec_finalizers(created.clone(), &[]);
    body.status.as_mut().unwrap().phase = Some("Terminating".to_owned());
    let updated = store
        .update("", "team", "finalize", body, &UpdateOptions::default())
        .await
        .unwrap()
        .object;
    assert_eq!(spec_finalizers(&updated), Vec::<String>::new());
    assert_eq!(phase(&updated), "Active");
    assert_eq!(label(&updated).as_deref(), Some("team"));
    assert!(store.get("", "team", "").await.is_ok());

    // Finalizer names are validated per index.
    assert_error(
        store
            .update(
                "",
                "team",
                "finalize",
                with_spec_finalizers(updated.clone(), &["kubernetes", "bogus"]),
                &UpdateOptions::default(),
            )
            .await,
        422,
        "Invalid",
        &[
            "Namespace \"team\" is invalid: spec.finalizers[1]: Invalid value: \"bogus\": name is neither a standard finalizer name nor is it fully qualified",
        ],
    );
    // Subresources never create; unknown ones are 405.
    assert_error(
        store
            .update(
                "",
                "ghost",
                "finalize",
                namespace("ghost"),
                &UpdateOptions::default(),
            )
            .await,
        404,
        "NotFound",
        &["namespaces \"ghost\" not found"],
    );
    assert_error(
        store
            .update(
                "",
                "team",
                "scale",
                updated.clone(),
                &UpdateOptions::default(),
            )
            .await,
        405,
        "MethodNotAllowed",
        &[],
    );

    // Finalized already: the first delete still only marks, the second deletes for real and
    // answers with the deleted namespace.
    assert!(
        !store
            .delete("", "team", &DeleteOptions::default())
            .await
            .unwrap()
            .deleted
    );
    let second = store
        .delete("", "team", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(second.deleted);
    assert!(
        matches!(second.response, DeleteResponse::Object(ns) if ns.metadata.name.as_deref() == Some("team"))
    );
    assert_error(store.get("", "team", "").await, 404, "NotFound", &[]);
}

async fn metadata_finalizers_still_hold(b: Backend) {
    let store = namespaces(&b);
    let mut held = namespace("held");
    held.metadata.finalizers = Some(vec!["example.com/hold".to_owned()]);
    create(&store, held).await;
    store
        .delete("", "held", &DeleteOptions::default())
        .await
        .unwrap();
    let marked = store.get("", "held", "").await.unwrap();
    // Finalize empties spec.finalizers; the metadata finalizer keeps the namespace.
    let finalized = store
        .update(
            "",
            "held",
            "finalize",
            with_spec_finalizers(marked, &[]),
            &UpdateOptions::default(),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(
        finalized.metadata.finalizers,
        Some(vec!["example.com/hold".to_owned()])
    );
    let stored = store.get("", "held", "").await.unwrap();
    assert_eq!(spec_finalizers(&stored), Vec::<String>::new());
    // Removing it (an ordinary update) deletes the namespace.
    let mut released = stored.clone();
    released.metadata.finalizers = None;
    store
        .update("", "held", "", released, &UpdateOptions::default())
        .await
        .unwrap();
    assert_error(store.get("", "held", "").await, 404, "NotFound", &[]);
}

async fn status_phase_follows_deletion(b: Backend) {
    let store = namespaces(&b);
    let created = create(&store, namespace("team")).await;
    // An empty phase defaults to Active (upstream's SetDefaults_NamespaceStatus).
    let mut no_status = created.clone();
    no_status.status = None;
    let updated = store
        .update("", "team", "status", no_status, &UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(
        updated.object.status.unwrap().phase.as_deref(),
        Some("Active")
    );
    let created = store.get("", "team", "").await.unwrap();
    let mut terminating = created.clone();
    terminating.status.as_mut().unwrap().phase = Some("Terminating".to_owned());
    assert_error(
        store
            .update("", "team", "status", terminating, &UpdateOptions::default())
            .await,
        422,
        "Invalid",
        &[
            "status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty",
        ],
    );
    store
        .delete("", "team", &DeleteOptions::default())
        .await
        .unwrap();
    let marked = store.get("", "team", "").await.unwrap();
    let mut active = marked.clone();
    active.status.as_mut().unwrap().phase = Some("Active".to_owned());
    assert_error(
        store
            .update("", "team", "status", active, &UpdateOptions::default())
            .await,
        422,
        "Invalid",
        &["may only be 'Terminating' if `deletionTimestamp` is not empty"],
    );
    // A status write never deletes: spec.finalizers still holds the namespace.
    store
        .update("", "team", "status", marked, &UpdateOptions::default())
        .await
        .unwrap();
    assert!(store.get("", "team", "").await.is_ok());
}

fn event(namespace: &str, name: &str) -> Event {
    Event {
        metadata: meta(namespace, name),
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some("p".into()),
            namespace: Some(namespace.into()),
            ..ObjectReference::default()
        },
        reason: Some("Test".into()),
        message: Some("hello".into()),
        type_: Some("Normal".into()),
        ..Event::default()
    }
}

async fn namespaced_writes_check_their_namespace(b: Backend) {
    let namespaces = namespaces(&b);
    let lifecycle = Arc::new(namespaces.clone());
    let configmaps = configmaps(&b).with_namespace_lifecycle(lifecycle.clone());
    let events = events(&b).with_namespace_lifecycle(lifecycle);

    // A missing namespace: 404 for creates, updates that create, and updates.
    assert_error(
        configmaps
            .create(
                "nope",
                configmap("nope", "c", &[]),
                &CreateOptions::default(),
            )
            .await,
        404,
        "NotFound",
        &["namespaces \"nope\" not found"],
    );
    let error = assert_error(
        events
            .update(
                "nope",
                "e1",
                "",
                event("nope", "e1"),
                &UpdateOptions::default(),
            )
            .await,
        404,
        "NotFound",
        &["namespaces \"nope\" not found"],
    );
    let details = error.details.unwrap();
    assert_eq!(
        (details.name.as_deref(), details.kind.as_deref()),
        (Some("nope"), Some("namespaces"))
    );

    // An active namespace takes content.
    create(&namespaces, namespace("ns1")).await;
    configmaps
        .create(
            "ns1",
            configmap("ns1", "old", &[]),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let created = events
        .update(
            "ns1",
            "e1",
            "",
            event("ns1", "e1"),
            &UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert!(created.created);

    // A terminating one refuses new content, naming the object.
    namespaces
        .delete("", "ns1", &DeleteOptions::default())
        .await
        .unwrap();
    let error = assert_error(
        configmaps
            .create(
                "ns1",
                configmap("ns1", "new", &[]),
                &CreateOptions::default(),
            )
            .await,
        403,
        "Forbidden",
        &[],
    );
    assert_eq!(
        error.message,
        "configmaps \"new\" is forbidden: unable to create new content in namespace ns1 because it is being terminated"
    );
    let details = error.details.unwrap();
    assert_eq!(
        (details.name.as_deref(), details.kind.as_deref()),
        (Some("new"), Some("configmaps"))
    );
    let cause = &details.causes.unwrap()[0];
    assert_eq!(
        (
            cause.reason.as_deref(),
            cause.message.as_deref(),
            cause.field.as_deref()
        ),
        (
            Some(NAMESPACE_TERMINATING_CAUSE),
            Some("namespace ns1 is being terminated"),
            Some("metadata.namespace")
        )
    );
    // Generated names are not known yet: the prefix is named. Dry runs are refused too.
    let mut generated = configmap("ns1", "", &[]);
    generated.metadata.generate_name = Some("gen-".to_owned());
    assert_error(
        configmaps
            .create("ns1", generated, &CreateOptions::default())
            .await,
        403,
        "Forbidden",
        &["configmaps \"gen-\" is forbidden"],
    );
    let dry = CreateOptions {
        dry_run: true,
        ..CreateOptions::default()
    };
    assert_error(
        configmaps
            .create("ns1", configmap("ns1", "dry", &[]), &dry)
            .await,
        403,
        "Forbidden",
        &[],
    );
    // An update that would create is admitted as a create.
    assert_error(
        events
            .update(
                "ns1",
                "e2",
                "",
                event("ns1", "e2"),
                &UpdateOptions::default(),
            )
            .await,
        403,
        "Forbidden",
        &[
            "events \"e2\" is forbidden: unable to create new content in namespace ns1 because it is being terminated",
        ],
    );
    // Existing objects may still be updated (and deleted).
    let updated = events
        .update(
            "ns1",
            "e1",
            "",
            event("ns1", "e1"),
            &UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert!(!updated.created);
    let old = configmaps.get("ns1", "old", "").await.unwrap();
    configmaps
        .update("ns1", "old", "", old, &UpdateOptions::default())
        .await
        .unwrap();
    assert!(
        configmaps
            .delete("ns1", "old", &DeleteOptions::default())
            .await
            .unwrap()
            .deleted
    );

    // Stores without a lifecycle (and cluster-scoped ones) write anywhere.
    store_support::configmaps(&b)
        .create(
            "nope",
            configmap("nope", "free", &[]),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
}

both_backends!(
    create_sets_spec_finalizer_and_label,
    delete_is_two_phase,
    delete_checks_preconditions,
    finalize_subresource,
    metadata_finalizers_still_hold,
    status_phase_follows_deletion,
    namespaced_writes_check_their_namespace,
);
