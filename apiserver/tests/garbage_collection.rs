//! The garbage collector of `ownerReferences` over HTTP, through kube-rs: background, orphan
//! and foreground cascading deletion, dependents of owners that never existed, and owners of
//! another kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Client, Config};

/// A server on memory storage with every built-in kind and its controllers, and a client.
async fn start() -> (apiserver::ApiServer, Client) {
    start_on("memory://", true).await
}

/// A server on the storage `url` with every built-in kind, its controllers when
/// `controllers`, and a client.
async fn start_on(url: &str, controllers: bool) -> (apiserver::ApiServer, Client) {
    let storage = storage::open(url).await.expect("storage");
    let mut builder = apiserver::ServerBuilder::new(storage).expect("builder");
    apiserver::kinds::register_all(&mut builder, None).expect("register");
    let server = builder.build().expect("build");
    server.bootstrap().await.expect("bootstrap");
    if controllers {
        server.controllers();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = server.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let config = Config::new(format!("http://{address}").parse().unwrap());
    (server, Client::try_from(config).unwrap())
}

fn owned_by(owners: &[(&ConfigMap, bool)]) -> Option<Vec<OwnerReference>> {
    Some(
        owners
            .iter()
            .map(|(owner, block)| OwnerReference {
                api_version: "v1".to_owned(),
                kind: "ConfigMap".to_owned(),
                name: owner.metadata.name.clone().unwrap(),
                uid: owner.metadata.uid.clone().unwrap(),
                block_owner_deletion: Some(*block),
                controller: None,
            })
            .collect(),
    )
}

async fn create_secret(api: &Api<Secret>, name: &str, meta: ObjectMeta) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..meta
        },
        ..Secret::default()
    };
    api.create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
}

/// Metadata naming `owners` (with `blockOwnerDeletion`) and nothing else.
fn owned(owners: &[(&ConfigMap, bool)]) -> ObjectMeta {
    ObjectMeta {
        owner_references: owned_by(owners),
        ..ObjectMeta::default()
    }
}

/// `propagationPolicy=Orphan`.
fn orphan() -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    }
}

/// Removes the finalizers that hold the ConfigMap `name`.
async fn release(api: &Api<ConfigMap>, name: &str) {
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
}

async fn create(api: &Api<ConfigMap>, name: &str, meta: ObjectMeta) -> ConfigMap {
    let object = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..meta
        },
        ..ConfigMap::default()
    };
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"))
}

/// Waits up to 15 s for `check` to hold of the ConfigMap `name` (`None`: absent).
async fn eventually(
    api: &Api<ConfigMap>,
    name: &str,
    what: &str,
    check: impl Fn(Option<&ConfigMap>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let current = api.get_opt(name).await.expect("get");
        if check(current.as_ref()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {what} did not happen; it is {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn background_deletion_removes_dependents_whose_owners_are_gone() {
    let (_server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner = create(&api, "owner", ObjectMeta::default()).await;
    let other = create(&api, "other", ObjectMeta::default()).await;
    let only_child = owned(&[(&owner, false)]);
    create(&api, "only-child", only_child).await;
    let shared = owned(&[(&owner, false), (&other, false)]);
    create(&api, "shared-child", shared).await;
    // A dependent of another kind.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    create_secret(&secrets, "owned-secret", owned(&[(&owner, false)])).await;
    // Nothing happens while the owner is there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(api.get_opt("only-child").await.unwrap().is_some());

    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(&api, "only-child", "deletion", |cm| cm.is_none()).await;
    eventually(
        &api,
        "shared-child",
        "losing the reference to the owner",
        |cm| {
            let owners = cm.and_then(|cm| cm.metadata.owner_references.clone());
            owners.is_some_and(|owners| owners.len() == 1 && owners[0].name == "other")
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while secrets.get_opt("owned-secret").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the owned Secret was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(api.get_opt("other").await.unwrap().is_some());
}

#[tokio::test]
async fn a_dependent_of_an_owner_that_never_existed_is_deleted() {
    let (_server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let phantom = ConfigMap {
        metadata: ObjectMeta {
            name: Some("phantom".to_owned()),
            uid: Some("00000000-0000-0000-0000-000000000001".to_owned()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    let meta = owned(&[(&phantom, false)]);
    create(&api, "orphaned-at-birth", meta).await;
    eventually(&api, "orphaned-at-birth", "deletion", |cm| cm.is_none()).await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let (_server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = create(&api, "owner", ObjectMeta::default()).await;
    let meta = owned(&[(&owner, true)]);
    create(&api, "child", meta).await;
    api.delete("owner", &orphan()).await.unwrap();
    eventually(&api, "owner", "deletion", |cm| cm.is_none()).await;
    eventually(&api, "child", "losing its owner reference", |cm| {
        cm.is_some_and(|cm| {
            cm.metadata
                .owner_references
                .as_ref()
                .is_none_or(Vec::is_empty)
        })
    })
    .await;
    // And it stays.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(api.get_opt("child").await.unwrap().is_some());
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let (_server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = create(&api, "owner", ObjectMeta::default()).await;
    // The blocking dependent holds its own deletion with a finalizer of ours.
    let held = ObjectMeta {
        owner_references: owned_by(&[(&owner, true)]),
        finalizers: Some(vec!["example.com/hold".to_owned()]),
        ..ObjectMeta::default()
    };
    create(&api, "held", held).await;
    let loose = owned(&[(&owner, false)]);
    create(&api, "loose", loose).await;
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();

    eventually(&api, "held", "the start of its deletion", |cm| {
        cm.is_some_and(|cm| cm.metadata.deletion_timestamp.is_some())
    })
    .await;
    eventually(&api, "loose", "deletion", |cm| cm.is_none()).await;
    // The owner waits for the held dependent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = api.get("owner").await.expect("the owner waits");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(
        waiting.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_owned()])
    );

    release(&api, "held").await;
    eventually(&api, "held", "deletion", |cm| cm.is_none()).await;
    eventually(&api, "owner", "deletion", |cm| cm.is_none()).await;
}

#[tokio::test]
async fn foreground_deletion_waits_for_the_whole_subtree() {
    let (_server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = create(&api, "owner", ObjectMeta::default()).await;
    let middle = owned(&[(&owner, true)]);
    let middle = create(&api, "middle", middle).await;
    let leaf = ObjectMeta {
        owner_references: owned_by(&[(&middle, true)]),
        finalizers: Some(vec!["example.com/hold".to_owned()]),
        ..ObjectMeta::default()
    };
    create(&api, "leaf", leaf).await;
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();

    // The middle dependent is deleted in the foreground too: it waits for the held leaf,
    // and the owner waits for it.
    eventually(&api, "leaf", "the start of its deletion", |cm| {
        cm.is_some_and(|cm| cm.metadata.deletion_timestamp.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let middle = api.get("middle").await.expect("the middle waits");
    assert_eq!(
        middle.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_owned()])
    );
    assert!(
        api.get_opt("owner").await.unwrap().is_some(),
        "the owner waits"
    );

    release(&api, "leaf").await;
    for name in ["leaf", "middle", "owner"] {
        eventually(&api, name, "deletion", |cm| cm.is_none()).await;
    }
}

#[tokio::test]
async fn an_owner_recreated_under_its_name_is_another_owner() {
    let (_server, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = create(&api, "owner", ObjectMeta::default()).await;
    // Deleted with the dependent's reference kept (orphan would drop it): the collector is
    // raced by recreating the owner at once.
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    create(&api, "owner", ObjectMeta::default()).await;
    let meta = owned(&[(&first, false)]);
    create(&api, "child-of-the-first", meta).await;
    eventually(&api, "child-of-the-first", "deletion", |cm| cm.is_none()).await;
    assert!(api.get_opt("owner").await.unwrap().is_some());
}

#[tokio::test]
async fn a_cluster_scoped_owner_of_namespaced_dependents() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let (_server, client) = start().await;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some("gc-owner".to_owned()),
            ..ObjectMeta::default()
        },
        ..ClusterRole::default()
    };
    let role = roles.create(&PostParams::default(), &role).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let reference = OwnerReference {
        api_version: "rbac.authorization.k8s.io/v1".to_owned(),
        kind: "ClusterRole".to_owned(),
        name: "gc-owner".to_owned(),
        uid: role.metadata.uid.clone().unwrap(),
        ..OwnerReference::default()
    };
    let meta = ObjectMeta {
        owner_references: Some(vec![reference.clone()]),
        ..ObjectMeta::default()
    };
    create(&api, "role-child", meta).await;
    // An owner of a kind this server does not serve cannot be resolved: left alone.
    let unserved = OwnerReference {
        api_version: "example.com/v1".to_owned(),
        kind: "Unserved".to_owned(),
        name: "x".to_owned(),
        uid: "00000000-0000-0000-0000-000000000002".to_owned(),
        ..OwnerReference::default()
    };
    let meta = ObjectMeta {
        owner_references: Some(vec![reference, unserved]),
        ..ObjectMeta::default()
    };
    create(&api, "unresolvable-child", meta).await;

    roles
        .delete("gc-owner", &DeleteParams::default())
        .await
        .unwrap();
    eventually(&api, "role-child", "deletion", |cm| cm.is_none()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = api.get("unresolvable-child").await.expect("left alone");
    assert_eq!(kept.metadata.owner_references.map(|o| o.len()), Some(2));
}

/// An orphan deletion left pending by a server without a collector: a server started later on
/// the same data lists every kind before it decides, so the dependents of another kind survive
/// whatever order the kinds are listed in.
#[cfg(feature = "sqlite")]
#[test]
fn a_pending_orphan_deletion_is_finished_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db").display());
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    first.block_on(async {
        let (_server, client) = start_on(&url, false).await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let owner = create(&api, "owner", ObjectMeta::default()).await;
        let secrets: Api<Secret> = Api::namespaced(client, "default");
        for name in ["dependent-1", "dependent-2"] {
            create_secret(&secrets, name, owned(&[(&owner, true)])).await;
        }
        api.delete("owner", &orphan()).await.unwrap();
        let pending = api.get("owner").await.unwrap();
        assert_eq!(pending.metadata.finalizers, Some(vec!["orphan".to_owned()]));
    });
    // Every task of the first server ends with its runtime, and the store closes.
    first.shutdown_timeout(Duration::from_secs(10));

    runtime().block_on(async {
        let (_server, client) = start_on(&url, true).await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        eventually(&api, "owner", "deletion", |cm| cm.is_none()).await;
        let secrets: Api<Secret> = Api::namespaced(client, "default");
        tokio::time::sleep(Duration::from_millis(500)).await;
        for name in ["dependent-1", "dependent-2"] {
            let secret = secrets.get(name).await.expect("an orphan survives");
            assert!(
                secret
                    .metadata
                    .owner_references
                    .is_none_or(|o| o.is_empty()),
                "{name} still names its owner"
            );
        }
    });
}
