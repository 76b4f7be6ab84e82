//! Create, Get and Delete (`store_tests.go` functions 1-14).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use object_storage::{GetOptions, ListOptions, Preconditions, StorageError, WatchEvent};

use super::{Pods, Store};
use super::{expect_equal, key_validation, pod, pods, propagate, rv};
use crate::runner::Case;

pub(super) fn cases() -> Vec<Case> {
    let mut cases = vec![
        case!("k8s::create::successful", [], create_successful),
        case!(
            "k8s::create::with_resource_version_set",
            [],
            create_with_rv_set
        ),
        case!("k8s::create::with_ttl", [Ttl], create_with_ttl),
        case!("k8s::create::key_exists", [], create_key_exists),
        case!(
            "k8s::delete::unconditional_existing",
            [],
            unconditional_delete_existing
        ),
        case!(
            "k8s::delete::unconditional_missing",
            [],
            unconditional_delete_missing
        ),
        case!(
            "k8s::delete::conditional_uid_match",
            [],
            conditional_delete_match
        ),
        case!(
            "k8s::delete::conditional_uid_mismatch",
            [],
            conditional_delete_mismatch
        ),
        case!("k8s::delete::with_suggestion", [], delete_with_suggestion),
        case!(
            "k8s::delete::with_suggestion_and_conflict",
            [],
            delete_suggestion_conflict
        ),
        case!("k8s::delete::with_conflict", [], delete_with_conflict),
        case!(
            "k8s::delete::with_suggestion_of_deleted_object",
            [],
            delete_suggestion_deleted
        ),
        case!(
            "k8s::delete::validate_deletion_with_suggestion",
            [],
            validate_with_suggestion
        ),
        case!(
            "k8s::delete::validate_deletion_with_only_suggestion_valid",
            [],
            only_suggestion_valid
        ),
        case!(
            "k8s::delete::preconditional_with_suggestion",
            [],
            precondition_with_suggestion
        ),
        case!(
            "k8s::delete::preconditional_with_only_suggestion_pass",
            [],
            only_suggestion_passes
        ),
    ];
    for scenario in GetScenario::ALL {
        cases.push(Case::new(
            format!("k8s::get::{}", scenario.name()),
            &[],
            move |store| get_case(store, scenario),
        ));
    }
    cases
}

/// A deletion validator that accepts everything.
fn accept(_: &Pod) -> object_storage::Result<()> {
    Ok(())
}

async fn create_successful(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let key = "/pods/test-ns/foo";
    let object = pod("test-ns", "foo");
    match storage.get(key, &GetOptions::default()).await {
        Err(error) if error.is_not_found() => {}
        other => bail!("get before create must be NotFound, got {other:?}"),
    }
    let out = storage.create(key, &object, 0).await?;
    ensure!(
        out.metadata.name.as_deref() == Some("foo"),
        "created {:?}",
        out.metadata.name
    );
    ensure!(rv(&out) != 0, "created object has no resourceVersion");
    key_validation(&storage, key).await
}

async fn create_with_rv_set(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let mut object = pod("test-ns", "foo");
    object.metadata.resource_version = Some("1".to_owned());
    match storage.create("/pods/test-ns/foo", &object, 0).await {
        Err(StorageError::ResourceVersionSetOnCreate) => Ok(()),
        other => bail!("create with a resourceVersion must fail, got {other:?}"),
    }
}

async fn create_with_ttl(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let key = "/pods/test-ns/foo";
    let out = storage.create(key, &pod("test-ns", "foo"), 1).await?;
    let options = ListOptions {
        resource_version: out.metadata.resource_version.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut watch = storage.watch(key, &options).await?;
    let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .context("no DELETED event within 30s of a 1s TTL")?;
    match event {
        Some(WatchEvent::Deleted(_)) => Ok(()),
        other => bail!("expected DELETED after TTL expiry, got {other:?}"),
    }
}

async fn create_key_exists(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, _) = propagate(&storage, &pod("test-ns", "foo")).await?;
    match storage.create(&key, &pod("test-ns", "foo"), 0).await {
        Err(error) if error.is_exist() => Ok(()),
        other => bail!("second create must be KeyExists, got {other:?}"),
    }
}

#[derive(Clone, Copy, Debug)]
enum GetScenario {
    Existing,
    ResourceVersionZeroIgnoreNotFound,
    CreationResourceVersion,
    CurrentObjectResourceVersion,
    LatestGlobalResourceVersion,
    TooLargeResourceVersion,
    Missing,
    MissingIgnoreNotFound,
}

impl GetScenario {
    const ALL: [GetScenario; 8] = [
        GetScenario::Existing,
        GetScenario::ResourceVersionZeroIgnoreNotFound,
        GetScenario::CreationResourceVersion,
        GetScenario::CurrentObjectResourceVersion,
        GetScenario::LatestGlobalResourceVersion,
        GetScenario::TooLargeResourceVersion,
        GetScenario::Missing,
        GetScenario::MissingIgnoreNotFound,
    ];

    fn name(self) -> &'static str {
        match self {
            GetScenario::Existing => "existing",
            GetScenario::ResourceVersionZeroIgnoreNotFound => "rv_0_ignore_not_found",
            GetScenario::CreationResourceVersion => "rv_of_creation",
            GetScenario::CurrentObjectResourceVersion => "rv_of_current_object",
            GetScenario::LatestGlobalResourceVersion => "rv_latest_global",
            GetScenario::TooLargeResourceVersion => "rv_too_large",
            GetScenario::Missing => "missing_key",
            GetScenario::MissingIgnoreNotFound => "missing_key_ignore_not_found",
        }
    }
}

/// `RunTestGet`: foo is created, then updated with an annotation and a 1s TTL; bar is created
/// to move the global revision on. Each row then reads.
async fn get_case(store: Store, scenario: GetScenario) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, created) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let updated = storage
        .guaranteed_update(
            &key,
            false,
            None,
            |mut object: Pod, _| {
                object
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert("test-annotation".to_owned(), "1".to_owned());
                Ok((object, Some(1)))
            },
            None,
        )
        .await?;
    let (_, last) = propagate(&storage, &pod("test-ns", "bar")).await?;
    let get = |rv: String, ignore_not_found: bool, key: &'static str| {
        let storage = storage.clone();
        async move {
            storage
                .get(
                    key,
                    &GetOptions {
                        ignore_not_found,
                        resource_version: rv,
                    },
                )
                .await
        }
    };
    let rv_of = |pod: &Pod| pod.metadata.resource_version.clone().unwrap_or_default();
    let foo_key = "/pods/test-ns/foo";
    let expect_one_of = |got: Option<Pod>, allowed: &[Option<&Pod>]| -> anyhow::Result<()> {
        ensure!(
            allowed.iter().any(|a| a.cloned() == got),
            "{} got {got:?}, allowed {allowed:?}",
            scenario.name()
        );
        Ok(())
    };
    match scenario {
        GetScenario::Existing => {
            let got = get(String::new(), false, foo_key).await?.context("foo")?;
            expect_equal("get", &updated, &got)
        }
        GetScenario::ResourceVersionZeroIgnoreNotFound => {
            let got = get("0".to_owned(), true, foo_key).await?;
            expect_one_of(got, &[None, Some(&created), Some(&updated)])
        }
        GetScenario::CreationResourceVersion => {
            let got = get(rv_of(&created), false, foo_key).await?;
            expect_one_of(got, &[Some(&created), Some(&updated)])
        }
        GetScenario::CurrentObjectResourceVersion => {
            let got = get(rv_of(&updated), false, foo_key).await?.context("foo")?;
            expect_equal("get at the object's resourceVersion", &updated, &got)
        }
        GetScenario::LatestGlobalResourceVersion => {
            let got = get(rv_of(&last), false, foo_key).await?.context("foo")?;
            expect_equal("get at the latest resourceVersion", &updated, &got)
        }
        GetScenario::TooLargeResourceVersion => {
            match get(i64::MAX.to_string(), false, foo_key).await {
                Err(error) if error.is_too_large_resource_version() => Ok(()),
                other => bail!("get at i64::MAX must be TooLargeResourceVersion, got {other:?}"),
            }
        }
        GetScenario::Missing => match get(String::new(), false, "/pods/test-ns/non-existing").await
        {
            Err(error) if error.is_not_found() => Ok(()),
            other => bail!("get of a missing key must be NotFound, got {other:?}"),
        },
        GetScenario::MissingIgnoreNotFound => {
            let got = get(String::new(), true, "/pods/test-ns/non-existing").await?;
            ensure!(
                got.is_none(),
                "missing key with ignoreNotFound returned {got:?}"
            );
            Ok(())
        }
    }
}

fn without_rv(pod: &Pod) -> Pod {
    let mut pod = pod.clone();
    pod.metadata.resource_version = None;
    pod
}

async fn unconditional_delete_existing(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, stored) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let out = storage.delete(&key, None, accept, None).await?;
    expect_equal("deleted object", &without_rv(&stored), &without_rv(&out))?;
    ensure!(
        rv(&out) != rv(&stored),
        "deleted object must carry the deletion resourceVersion"
    );
    Ok(())
}

async fn unconditional_delete_missing(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    match storage
        .delete("/pods/test-ns/non-existing", None, accept, None)
        .await
    {
        Err(error) if error.is_not_found() => Ok(()),
        other => bail!("delete of a missing key must be NotFound, got {other:?}"),
    }
}

fn pod_with_uid(uid: &str) -> Pod {
    let mut object = pod("test-ns", "foo");
    object.metadata.uid = Some(uid.to_owned());
    object
}

async fn conditional_delete_match(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, stored) = propagate(&storage, &pod_with_uid("A")).await?;
    let out = storage
        .delete(&key, Some(&Preconditions::uid("A")), accept, None)
        .await?;
    expect_equal("deleted object", &without_rv(&stored), &without_rv(&out))?;
    ensure!(
        rv(&out) != rv(&stored),
        "deleted object must carry the deletion resourceVersion"
    );
    Ok(())
}

async fn conditional_delete_mismatch(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, _) = propagate(&storage, &pod_with_uid("A")).await?;
    match storage
        .delete(&key, Some(&Preconditions::uid("B")), accept, None)
        .await
    {
        Err(error) if error.is_invalid_obj() => Ok(()),
        other => bail!("UID precondition mismatch must be InvalidObj, got {other:?}"),
    }
}

async fn delete_with_suggestion(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, stored) = propagate(&storage, &pod("test-ns", "foo")).await?;
    storage.delete(&key, None, accept, Some(stored)).await?;
    match storage.get(&key, &GetOptions::default()).await {
        Err(error) if error.is_not_found() => Ok(()),
        other => bail!("deleted object still readable: {other:?}"),
    }
}

async fn update_label(storage: &Pods, key: &str, value: &str) -> anyhow::Result<Pod> {
    let value = value.to_owned();
    Ok(storage
        .guaranteed_update(
            key,
            false,
            None,
            move |mut object: Pod, _| {
                object
                    .metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert("foo".to_owned(), value.clone());
                Ok((object, None))
            },
            None,
        )
        .await?)
}

async fn delete_suggestion_conflict(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, original) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let updated = update_label(&storage, &key, "bar").await?;
    let out = storage.delete(&key, None, accept, Some(original)).await?;
    expect_equal("deleted object", &without_rv(&updated), &without_rv(&out))?;
    match storage.get(&key, &GetOptions::default()).await {
        Err(error) if error.is_not_found() => Ok(()),
        other => bail!("deleted object still readable: {other:?}"),
    }
}

/// The validator updates the object on its first call, so the delete must lose its CAS and
/// retry: two validations, one update, and the updated object returned.
async fn delete_with_conflict(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, _) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let validations = AtomicUsize::new(0);
    let updates = AtomicUsize::new(0);
    let out = storage
        .delete(
            &key,
            None,
            |_: &Pod| {
                if validations.fetch_add(1, Ordering::SeqCst) == 0 {
                    updates.fetch_add(1, Ordering::SeqCst);
                    // The validator is synchronous; run the concurrent update to completion.
                    tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current()
                            .block_on(update_label(&storage, &key, "bar"))
                    })
                    .map_err(|e| StorageError::Internal(format!("concurrent update: {e:#}")))?;
                }
                Ok(())
            },
            None,
        )
        .await?;
    let validations = validations.load(Ordering::SeqCst);
    ensure!(
        validations == 2,
        "validation ran {validations} times, expected 2"
    );
    ensure!(
        updates.load(Ordering::SeqCst) == 1,
        "the concurrent update ran more than once"
    );
    let labels = out.metadata.labels.clone().unwrap_or_default();
    ensure!(
        labels.get("foo").map(String::as_str) == Some("bar"),
        "deleted object is not the updated one: {out:?}"
    );
    Ok(())
}

async fn delete_suggestion_deleted(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, original) = propagate(&storage, &pod("test-ns", "foo")).await?;
    storage.delete(&key, None, accept, None).await?;
    match storage.delete(&key, None, accept, Some(original)).await {
        Err(error) if error.is_not_found() => Ok(()),
        other => {
            bail!("delete with a suggestion of a deleted object must be NotFound, got {other:?}")
        }
    }
}

async fn validate_with_suggestion(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, original) = propagate(&storage, &pod("test-ns", "foo")).await?;
    // An always-failing validator runs once and its error comes back.
    let calls = AtomicUsize::new(0);
    let result = storage
        .delete(
            &key,
            None,
            |_: &Pod| {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StorageError::BadRequest("validation failed".to_owned()))
            },
            Some(original.clone()),
        )
        .await;
    ensure!(
        matches!(&result, Err(StorageError::BadRequest(m)) if m == "validation failed"),
        "expected the validator's error, got {result:?}"
    );
    ensure!(
        calls.load(Ordering::SeqCst) == 1,
        "validator ran {} times",
        calls.load(Ordering::SeqCst)
    );
    // A stale suggestion with a validator that only accepts the fresh state.
    let updated = update_label(&storage, &key, "bar").await?;
    let calls = AtomicUsize::new(0);
    let fresh_rv = updated.metadata.resource_version.clone();
    storage
        .delete(
            &key,
            None,
            |object: &Pod| {
                calls.fetch_add(1, Ordering::SeqCst);
                if object.metadata.resource_version == fresh_rv {
                    Ok(())
                } else {
                    Err(StorageError::BadRequest("stale object".to_owned()))
                }
            },
            Some(original),
        )
        .await?;
    ensure!(
        calls.load(Ordering::SeqCst) <= 2,
        "validator ran {} times",
        calls.load(Ordering::SeqCst)
    );
    Ok(())
}

async fn only_suggestion_valid(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, original) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let updated = update_label(&storage, &key, "bar").await?;
    let calls = AtomicUsize::new(0);
    let suggested_rv = original.metadata.resource_version.clone();
    let result = storage
        .delete(
            &key,
            None,
            |object: &Pod| {
                calls.fetch_add(1, Ordering::SeqCst);
                if object.metadata.resource_version == suggested_rv {
                    Ok(())
                } else {
                    Err(StorageError::BadRequest("stale object".to_owned()))
                }
            },
            Some(original),
        )
        .await;
    ensure!(
        matches!(&result, Err(StorageError::BadRequest(m)) if m == "stale object"),
        "expected the 'stale object' error, got {result:?}"
    );
    ensure!(
        calls.load(Ordering::SeqCst) <= 2,
        "validator ran {} times",
        calls.load(Ordering::SeqCst)
    );
    let current = storage
        .get(&key, &GetOptions::default())
        .await?
        .context("object")?;
    expect_equal("object after refused delete", &updated, &current)
}

fn with_uid(mut object: Pod, uid: &str) -> (Pod, String) {
    object.metadata.uid = Some(uid.to_owned());
    (object, uid.to_owned())
}

async fn precondition_with_suggestion(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, original) = propagate(&storage, &pod_with_uid("A")).await?;
    // The object is recreated with another UID after the suggestion was taken.
    let (replacement, uid) = with_uid(pod("test-ns", "foo"), "B");
    propagate(&storage, &replacement).await?;
    storage
        .delete(&key, Some(&Preconditions::uid(uid)), accept, Some(original))
        .await?;
    match storage.get(&key, &GetOptions::default()).await {
        Err(error) if error.is_not_found() => Ok(()),
        other => bail!("object still there after delete: {other:?}"),
    }
}

async fn only_suggestion_passes(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, original) = propagate(&storage, &pod_with_uid("A")).await?;
    let (replacement, _) = with_uid(pod("test-ns", "foo"), "B");
    let (_, live) = propagate(&storage, &replacement).await?;
    match storage
        .delete(&key, Some(&Preconditions::uid("A")), accept, Some(original))
        .await
    {
        Err(error) if error.is_invalid_obj() => {}
        other => {
            bail!("precondition passing only on the suggestion must be InvalidObj, got {other:?}")
        }
    }
    let current = storage
        .get(&key, &GetOptions::default())
        .await?
        .context("object")?;
    expect_equal("object after refused delete", &live, &current)
}
