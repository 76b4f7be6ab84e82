//! The facade turns storage URLs into stores, and bad URLs into clear errors.

use storage::{Error, InterfaceExt};

fn message(result: storage::Result<std::sync::Arc<dyn storage::Interface>>) -> String {
    match result {
        Ok(store) => panic!("expected an error, got {store:?}"),
        Err(Error::InvalidArgument(message)) => message,
        Err(other) => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[tokio::test]
async fn memory_url_opens_a_working_store() {
    let store = storage::open("memory://").await.unwrap();
    let revision = store.put("/a", "x".into(), None).await.unwrap();
    assert_eq!(
        store.get_latest("/a").await.unwrap().unwrap().mod_revision,
        revision
    );
}

#[tokio::test]
async fn unknown_scheme_lists_supported_ones() {
    let message = message(storage::open("postgres://localhost/db").await);
    assert!(message.contains("unknown scheme \"postgres\""), "{message}");
    for scheme in storage::supported_schemes() {
        assert!(
            message.contains(&format!("{scheme}://")),
            "{message} should list {scheme}"
        );
    }
}

#[tokio::test]
async fn missing_scheme_is_explained() {
    let message = message(storage::open("data/db.sqlite").await);
    assert!(message.contains("has no scheme"), "{message}");
}

#[tokio::test]
async fn memory_rejects_a_path() {
    let message = message(storage::open("memory://somewhere").await);
    assert!(message.contains("takes no path"), "{message}");
}

#[cfg(not(feature = "etcd"))]
#[tokio::test]
async fn disabled_backend_names_its_feature() {
    let message = message(storage::open("etcd://127.0.0.1:2379/registry").await);
    assert!(
        message.contains("built without feature `etcd`"),
        "{message}"
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_url_opens_a_durable_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/store.db", dir.path().display());
    let store = storage::open(&url).await.unwrap();
    let revision = store.put("/a", "x".into(), None).await.unwrap();
    drop(store);
    let reopened = storage::open(&url).await.unwrap();
    assert_eq!(
        reopened
            .get_latest("/a")
            .await
            .unwrap()
            .unwrap()
            .mod_revision,
        revision
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_url_needs_a_path() {
    let message = message(storage::open("sqlite://").await);
    assert!(message.contains("needs a path"), "{message}");
}
