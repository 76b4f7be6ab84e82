//! Store list and watch: selectors, paging, name / namespace narrowing, watch pass-through,
//! tables.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_support;

use std::time::Duration;

use apimachinery::selector::{FieldSelector, LabelSelector, SelectionPredicate};
use futures::StreamExt;
use object_storage::{ListOptions, WatchEvent};
use registry::{CreateOptions, UpdateOptions};
use store_support::*;

fn with_predicate(predicate: SelectionPredicate) -> ListOptions {
    ListOptions {
        predicate,
        ..ListOptions::default()
    }
}

fn names<K: apimachinery::Object>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

async fn seed(store: &registry::Store<k8s_openapi::api::core::v1::ConfigMap>) {
    for (ns, name, tier) in [
        ("a", "x", "web"),
        ("a", "y", "db"),
        ("b", "x", "web"),
        ("b", "z", "db"),
    ] {
        let mut cm = configmap(ns, name, &[]);
        cm.metadata.labels = Some([("tier".to_owned(), tier.to_owned())].into());
        store
            .create(ns, cm, &CreateOptions::default())
            .await
            .unwrap();
    }
}

async fn list_selectors_and_paging(b: Backend) {
    let store = configmaps(&b);
    seed(&store).await;
    assert_eq!(
        names(
            &store
                .list("a", &ListOptions::default())
                .await
                .unwrap()
                .items
        ),
        vec!["x", "y"]
    );
    assert_eq!(
        store
            .list("", &ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    let web = with_predicate(SelectionPredicate {
        label: LabelSelector::parse("tier=web").unwrap(),
        ..SelectionPredicate::default()
    });
    let items = store.list("", &web).await.unwrap().items;
    assert_eq!(
        items
            .iter()
            .map(|c| c.metadata.namespace.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    // Paging with limit and continue.
    let page = store
        .list(
            "",
            &with_predicate(SelectionPredicate {
                limit: Some(3),
                ..SelectionPredicate::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    let token = page.continue_token.clone().expect("continue token");
    let rest = store
        .list(
            "",
            &with_predicate(SelectionPredicate {
                limit: Some(3),
                continue_token: Some(token),
                ..SelectionPredicate::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(names(&rest.items), vec!["z"]);
    assert!(rest.continue_token.is_none());
    // Bad continue token and too-large resourceVersion.
    assert_error(
        store
            .list(
                "",
                &with_predicate(SelectionPredicate {
                    continue_token: Some("garbage".into()),
                    ..SelectionPredicate::default()
                }),
            )
            .await,
        400,
        "BadRequest",
        &["continue"],
    );
    let future = ListOptions {
        resource_version: "999999".into(),
        ..ListOptions::default()
    };
    assert_error(
        store.list("", &future).await,
        504,
        "Timeout",
        &["Too large resource version"],
    );
}

async fn list_narrowing(b: Backend) {
    let store = configmaps(&b);
    seed(&store).await;
    // metadata.name narrows to one key in the request namespace.
    let by_name = with_predicate(SelectionPredicate {
        field: FieldSelector::parse("metadata.name=x").unwrap(),
        ..SelectionPredicate::default()
    });
    let list = store.list("b", &by_name).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.namespace.as_deref(), Some("b"));
    // Across namespaces the name selector filters the whole range.
    assert_eq!(store.list("", &by_name).await.unwrap().items.len(), 2);
    // metadata.namespace narrows the key range.
    let by_namespace = with_predicate(SelectionPredicate {
        field: FieldSelector::parse("metadata.namespace=b").unwrap(),
        ..SelectionPredicate::default()
    });
    assert_eq!(
        names(&store.list("", &by_namespace).await.unwrap().items),
        vec!["x", "z"]
    );
    // Both: a single key read.
    let both = with_predicate(SelectionPredicate {
        field: FieldSelector::parse("metadata.namespace=a,metadata.name=y").unwrap(),
        ..SelectionPredicate::default()
    });
    assert_eq!(
        names(&store.list("", &both).await.unwrap().items),
        vec!["y"]
    );
    // A missing name is an empty list, not 404.
    let none = with_predicate(SelectionPredicate {
        field: FieldSelector::parse("metadata.name=nothing").unwrap(),
        ..SelectionPredicate::default()
    });
    assert!(store.list("a", &none).await.unwrap().items.is_empty());
    // Secret type is a selectable field.
    let secrets = secrets(&b);
    secrets
        .create(
            "a",
            k8s_openapi::api::core::v1::Secret {
                metadata: meta("a", "s"),
                ..Default::default()
            },
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let opaque = with_predicate(SelectionPredicate {
        field: FieldSelector::parse("type=Opaque").unwrap(),
        ..SelectionPredicate::default()
    });
    assert_eq!(secrets.list("", &opaque).await.unwrap().items.len(), 1);
}

async fn unsupported_field_selectors(b: Backend) {
    let store = configmaps(&b);
    seed(&store).await;
    let select = |s: &str| {
        with_predicate(SelectionPredicate {
            field: FieldSelector::parse(s).unwrap(),
            ..SelectionPredicate::default()
        })
    };
    // ConfigMaps know only metadata fields (upstream's default conversion message).
    let error = store.list("a", &select("spec.foo=bar")).await.unwrap_err();
    assert_eq!(error.code, 400);
    assert_eq!(
        error.message,
        "\"spec.foo\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    let watch_error = store.watch("a", &select("data.x=1")).await.err().unwrap();
    assert_eq!(watch_error.code, 400);
    // A secret's `type` is known; another secret field is not (kind-specific message).
    let secrets = secrets(&b);
    assert!(secrets.list("a", &select("type=Opaque")).await.is_ok());
    let error = secrets.list("a", &select("data.x=1")).await.unwrap_err();
    assert_eq!(error.code, 400);
    assert_eq!(error.message, "field label not supported: data.x");
    // Deletecollection validates before deleting anything.
    let error = store
        .delete_collection(
            "a",
            &Default::default(),
            &select("metadata.name=x,spec.foo=bar"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, 400);
    assert_eq!(
        store
            .list("a", &ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

async fn next_event<K: std::fmt::Debug>(
    watch: &mut object_storage::ObjectWatch<K>,
) -> WatchEvent<K> {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("watch event in time")
        .expect("watch open")
}

async fn watch_narrowing(b: Backend) {
    let store = configmaps(&b);
    let start = store
        .list("", &ListOptions::default())
        .await
        .unwrap()
        .resource_version;
    let by_name = ListOptions {
        resource_version: start.to_string(),
        predicate: SelectionPredicate {
            field: FieldSelector::parse("metadata.name=x").unwrap(),
            ..SelectionPredicate::default()
        },
        ..ListOptions::default()
    };
    let mut named = store.watch("a", &by_name).await.unwrap();
    let mut all_b = store
        .watch(
            "b",
            &ListOptions {
                resource_version: start.to_string(),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    seed(&store).await;
    match next_event(&mut named).await {
        WatchEvent::Added(cm) => {
            assert_eq!(
                (
                    cm.metadata.namespace.as_deref(),
                    cm.metadata.name.as_deref()
                ),
                (Some("a"), Some("x"))
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    for expected in ["x", "z"] {
        match next_event(&mut all_b).await {
            WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some(expected)),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Updates and deletes pass through.
    let mut x = store.get("a", "x", "").await.unwrap();
    x.data = Some([("k".to_owned(), "v".to_owned())].into());
    store
        .update("a", "x", "", x, &UpdateOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut named).await,
        WatchEvent::Modified(_)
    ));
    store.delete("a", "x", &Default::default()).await.unwrap();
    assert!(matches!(
        next_event(&mut named).await,
        WatchEvent::Deleted(_)
    ));
    // Errors map onto API errors.
    let future = ListOptions {
        resource_version: "abc".into(),
        ..ListOptions::default()
    };
    assert_error(
        store.watch("", &future).await.map(|_| ()),
        400,
        "BadRequest",
        &["invalid resource version"],
    );
}

async fn table_rendering(b: Backend) {
    let store = configmaps(&b);
    seed(&store).await;
    let list = store.list("a", &ListOptions::default()).await.unwrap();
    let columns: Vec<_> = store.table_columns().into_iter().map(|c| c.name).collect();
    assert_eq!(columns, vec!["Name", "Data", "Age"]);
    let cells = store.strategy().table_cells(&list.items[0]);
    assert_eq!(cells[0], "x");
    assert_eq!(cells[1], 0);
    assert!(cells[2].as_str().unwrap().ends_with('s'));
    let namespaces = namespaces(&b);
    namespaces
        .create(
            "",
            k8s_openapi::api::core::v1::Namespace {
                metadata: meta("", "n"),
                ..Default::default()
            },
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let list = namespaces.list("", &ListOptions::default()).await.unwrap();
    let cells = namespaces.strategy().table_cells(&list.items[0]);
    assert_eq!(cells[0], "n");
    assert_eq!(cells[1], "Active");
}

/// A watcher too slow for the backend's buffer is ended by the backend; the Store's stream
/// then ends cleanly (as kube-apiserver's watch cache closes terminated watches), so clients
/// re-watch instead of reporting a server fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_the_backend_drops_ends_without_an_error() {
    let backend = Backend {
        name: "memory-small-buffer",
        store: std::sync::Arc::new(backend_memory::MemoryStore::new(
            backend_memory::MemoryOptions {
                watch_buffer: 4,
                ..Default::default()
            },
        )),
        _dir: None,
    };
    let store = configmaps(&backend);
    let start = store
        .list("", &ListOptions::default())
        .await
        .unwrap()
        .resource_version;
    let options = ListOptions {
        resource_version: start.to_string(),
        ..ListOptions::default()
    };
    let mut watch = store.watch("ns", &options).await.unwrap();
    // One event read: the backend watch is live (not replaying a log).
    store
        .create(
            "ns",
            configmap("ns", "first", &[]),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert!(matches!(next_event(&mut watch).await, WatchEvent::Added(_)));
    // Far more events than the Store's and the backend's buffers hold, none read meanwhile.
    for i in 0..400 {
        store
            .create(
                "ns",
                configmap("ns", &format!("c{i}"), &[]),
                &CreateOptions::default(),
            )
            .await
            .unwrap();
    }
    let mut seen = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
            Ok(Some(WatchEvent::Added(_))) => seen += 1,
            Ok(Some(WatchEvent::Error(error))) => panic!("unexpected ERROR event: {error:?}"),
            Ok(Some(other)) => panic!("unexpected event: {other:?}"),
            Ok(None) => break,
            Err(_) => panic!("the dropped watch never ended (saw {seen} events)"),
        }
    }
    assert!(seen < 400, "the backend was expected to drop this watcher");
}

both_backends!(
    list_selectors_and_paging,
    list_narrowing,
    watch_narrowing,
    unsupported_field_selectors,
    table_rendering
);
