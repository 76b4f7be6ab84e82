//! `DryRun`: every check runs against the live object, nothing is written.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use object_storage::{
    DryRun, GetOptions, ObjectStorage, Preconditions, Storage, UpdateDecision, UpdateOutcome,
};

fn config_map(name: &str, value: &str) -> ConfigMap {
    let mut object = ConfigMap::default();
    object.metadata.name = Some(name.to_owned());
    object.metadata.namespace = Some("ns".to_owned());
    object.data = Some([("k".to_owned(), value.to_owned())].into());
    object
}

fn stores() -> (Arc<dyn ObjectStorage<ConfigMap>>, DryRun<ConfigMap>) {
    let storage: Arc<dyn ObjectStorage<ConfigMap>> = Arc::new(Storage::new(
        Arc::new(backend_memory::MemoryStore::default()),
        Arc::new(ConfigMap::default),
    ));
    let dry = DryRun::new(storage.clone());
    (storage, dry)
}

async fn read(storage: &Arc<dyn ObjectStorage<ConfigMap>>, key: &str) -> Option<ConfigMap> {
    let options = GetOptions {
        ignore_not_found: true,
        ..GetOptions::default()
    };
    storage.get(key, &options).await.unwrap()
}

#[tokio::test]
async fn create_checks_existence_and_writes_nothing() {
    let (storage, dry) = stores();
    let answered = dry
        .create("/configmaps/ns/a", &config_map("a", "1"), 0)
        .await
        .unwrap();
    assert_eq!(answered, config_map("a", "1"));
    assert!(read(&storage, "/configmaps/ns/a").await.is_none());
    storage
        .create("/configmaps/ns/a", &config_map("a", "1"), 0)
        .await
        .unwrap();
    let error = dry
        .create("/configmaps/ns/a", &config_map("a", "2"), 0)
        .await
        .unwrap_err();
    assert!(error.is_exist(), "{error}");
    // A resourceVersion on a create is refused, as by a real create.
    let mut versioned = config_map("c", "1");
    versioned.metadata.resource_version = Some("7".to_owned());
    assert!(dry.create("/configmaps/ns/c", &versioned, 0).await.is_err());
}

#[tokio::test]
async fn update_and_delete_check_the_live_object_and_write_nothing() {
    let (storage, dry) = stores();
    let key = "/configmaps/ns/b";
    let live = storage.create(key, &config_map("b", "1"), 0).await.unwrap();
    let outcome = dry
        .guaranteed_update_with(
            key,
            false,
            None,
            &mut |_, _| Ok(UpdateDecision::Write(config_map("b", "2"), None)),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, UpdateOutcome::Written(ref o) if o == &config_map("b", "2")));
    let deleted = dry.delete(key, None, &|_| Ok(()), None).await.unwrap();
    assert_eq!(deleted, live);
    assert_eq!(read(&storage, key).await, Some(live));
    // A failed precondition fails the dry run as it would the write.
    let wrong_uid = Preconditions {
        uid: Some("not-the-uid".to_owned()),
        resource_version: None,
    };
    assert!(
        dry.delete(key, Some(&wrong_uid), &|_| Ok(()), None)
            .await
            .is_err()
    );
    // A missing object is not found unless the update may create it.
    let missing = dry
        .guaranteed_update_with(
            "/configmaps/ns/none",
            false,
            None,
            &mut |o, _| Ok(UpdateDecision::Write(o, None)),
            None,
        )
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}
