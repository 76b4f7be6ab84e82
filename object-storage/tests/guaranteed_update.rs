//! `Storage::guaranteed_update_with`: the typed decisions of its callback.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use object_storage::{GetOptions, Storage, UpdateDecision, UpdateOutcome};

fn config_map(name: &str, value: &str) -> ConfigMap {
    let mut object = ConfigMap::default();
    object.metadata.name = Some(name.to_owned());
    object.metadata.namespace = Some("ns".to_owned());
    object.data = Some([("k".to_owned(), value.to_owned())].into());
    object
}

fn storage() -> Storage<ConfigMap> {
    Storage::new(
        Arc::new(backend_memory::MemoryStore::default()),
        Arc::new(ConfigMap::default),
    )
}

/// A delete decided on a stale object is retried on the current one, then done.
#[tokio::test]
async fn a_delete_on_a_stale_object_runs_the_callback_again() {
    let storage = storage();
    let key = "/configmaps/ns/a";
    let stale = storage.create(key, &config_map("a", "1"), 0).await.unwrap();
    let current = storage
        .guaranteed_update(
            key,
            false,
            None,
            |_, _| Ok((config_map("a", "2"), None)),
            None,
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let outcome = storage
        .guaranteed_update_with::<_, ()>(
            key,
            false,
            None,
            |object, meta| {
                seen.push(meta.resource_version);
                Ok(UpdateDecision::Delete(object))
            },
            Some(stale.clone()),
        )
        .await
        .unwrap();
    let revision = |o: &ConfigMap| o.metadata.resource_version.clone().unwrap();
    assert_eq!(
        seen.iter().map(u64::to_string).collect::<Vec<_>>(),
        [revision(&stale), revision(&current)],
        "the callback ran on the suggestion, then on the live object"
    );
    assert!(matches!(outcome, UpdateOutcome::Deleted(_)));
    let gone = storage
        .get(
            key,
            &GetOptions {
                ignore_not_found: true,
                ..GetOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(gone.is_none());
}

/// A stop ends the update without writing and hands its value back.
#[tokio::test]
async fn a_stop_writes_nothing() {
    let storage = storage();
    let key = "/configmaps/ns/b";
    let created = storage.create(key, &config_map("b", "1"), 0).await.unwrap();
    let outcome = storage
        .guaranteed_update_with(
            key,
            false,
            None,
            |_, _| Ok(UpdateDecision::<ConfigMap, &str>::Stop("already deleting")),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        UpdateOutcome::Stopped("already deleting")
    ));
    let read = storage.get(key, &GetOptions::default()).await.unwrap();
    assert_eq!(read, Some(created));
}
