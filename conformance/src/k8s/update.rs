//! GuaranteedUpdate, transformation failures and Count (`store_tests.go` functions 24-29).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use object_storage::transformer::PrefixTransformer;
use object_storage::{GetOptions, ListOptions, Preconditions, StorageError, WatchEvent};

use super::{Pods, Store};
use super::{key_validation, pod, pod_key, pods, propagate, recursive};
use crate::runner::Case;

/// The prefix the upstream suite's transformer writes.
const TEST_PREFIX: &[u8] = b"test!";

pub(super) fn cases() -> Vec<Case> {
    let mut cases = vec![
        case!("k8s::guaranteed_update::with_ttl", [Ttl], with_ttl),
        case!(
            "k8s::guaranteed_update::checks_stored_data",
            [],
            checks_stored_data
        ),
        case!("k8s::guaranteed_update::with_conflict", [], with_conflict),
        case!(
            "k8s::guaranteed_update::with_suggestion_and_conflict",
            [],
            suggestion_and_conflict
        ),
        case!("k8s::transformation_failure", [], transformation_failure).not_for_watch_cache(
            "it swaps the transformer around one write, which the cache's own watch decodes at \
             an unknown moment (upstream does not run it against the cacher either)",
        ),
        case!("k8s::count::prefix_of_another_resource", [], count),
    ];
    for row in UpdateRow::ALL {
        cases.push(Case::new(
            format!("k8s::guaranteed_update::{}", row.name),
            &[],
            move |store| guaranteed_update(store, row),
        ));
    }
    cases
}

/// Pods stored through a prefix transformer, with the transformer kept for swapping.
fn transformed(store: &Store) -> (Pods, Arc<PrefixTransformer>) {
    let transformer = Arc::new(PrefixTransformer::new(TEST_PREFIX.to_vec()));
    (
        pods(store).with_transformer(transformer.clone()),
        transformer,
    )
}

/// One row of upstream's `RunTestGuaranteedUpdate` table.
#[derive(Clone, Copy, Debug)]
struct UpdateRow {
    name: &'static str,
    missing_key: bool,
    ignore_not_found: bool,
    precondition_uid: Option<&'static str>,
    expect_not_found: bool,
    expect_invalid_obj: bool,
    expect_no_update: bool,
    transform_stale: bool,
    self_link: bool,
}

impl UpdateRow {
    const BASE: UpdateRow = UpdateRow {
        name: "",
        missing_key: false,
        ignore_not_found: false,
        precondition_uid: None,
        expect_not_found: false,
        expect_invalid_obj: false,
        expect_no_update: false,
        transform_stale: false,
        self_link: false,
    };

    const ALL: [UpdateRow; 8] = [
        UpdateRow {
            name: "non_existing_key_ignore_not_found_false",
            missing_key: true,
            expect_not_found: true,
            ..Self::BASE
        },
        UpdateRow {
            name: "non_existing_key_ignore_not_found_true",
            missing_key: true,
            ignore_not_found: true,
            ..Self::BASE
        },
        UpdateRow {
            name: "existing_key",
            ..Self::BASE
        },
        UpdateRow {
            name: "same_data",
            expect_no_update: true,
            ..Self::BASE
        },
        UpdateRow {
            name: "same_data_a_self_link",
            expect_no_update: true,
            self_link: true,
            ..Self::BASE
        },
        UpdateRow {
            name: "same_data_stale",
            transform_stale: true,
            ..Self::BASE
        },
        UpdateRow {
            name: "uid_match",
            precondition_uid: Some("A"),
            expect_no_update: true,
            ..Self::BASE
        },
        UpdateRow {
            name: "uid_mismatch",
            precondition_uid: Some("B"),
            expect_invalid_obj: true,
            expect_no_update: true,
            ..Self::BASE
        },
    ];
}

async fn guaranteed_update(store: Store, row: UpdateRow) -> anyhow::Result<()> {
    let (storage, transformer) = transformed(&store);
    let mut input = pod("test-ns", "foo");
    input.metadata.uid = Some("A".to_owned());
    let (key, stored) = propagate(&storage, &input).await?;
    let target = if row.missing_key {
        "/non-existing".to_owned()
    } else {
        key.clone()
    };
    let annotations = (!row.expect_no_update)
        .then(|| BTreeMap::from([("version".to_owned(), row.name.to_owned())]));
    if row.transform_stale {
        transformer.set_stale(true);
    }
    let preconditions = row.precondition_uid.map(Preconditions::uid);
    let zero_seen = Arc::new(AtomicUsize::new(0));
    let result = storage
        .guaranteed_update(
            &target,
            row.ignore_not_found,
            preconditions.as_ref(),
            |current: Pod, _| {
                if row.missing_key && current.metadata.name.is_none() {
                    zero_seen.fetch_add(1, Ordering::SeqCst);
                }
                let mut next = stored.clone();
                if row.self_link {
                    next.metadata.self_link = Some("testlink".to_owned());
                }
                next.metadata.annotations = annotations.clone();
                Ok((next, None))
            },
            None,
        )
        .await;
    transformer.set_stale(false);
    if row.expect_not_found {
        return match result {
            Err(error) if error.is_not_found() => Ok(()),
            other => bail!("expected NotFound, got {other:?}"),
        };
    }
    if row.expect_invalid_obj {
        return match result {
            Err(error) if error.is_invalid_obj() => Ok(()),
            other => bail!("expected InvalidObj, got {other:?}"),
        };
    }
    let out = result.context("GuaranteedUpdate")?;
    if row.missing_key && row.ignore_not_found {
        ensure!(
            zero_seen.load(Ordering::SeqCst) > 0,
            "update of a missing key must see an empty object"
        );
    }
    ensure!(
        out.metadata.annotations == annotations,
        "annotations {:?}",
        out.metadata.annotations
    );
    ensure!(
        out.metadata.self_link.is_none(),
        "selfLink must not be set on the result"
    );
    key_validation(&storage, &target).await?;
    let (before, after) = (
        &stored.metadata.resource_version,
        &out.metadata.resource_version,
    );
    if row.expect_no_update {
        ensure!(
            before == after,
            "expected no write: resourceVersion {before:?} -> {after:?}"
        );
    } else {
        ensure!(
            before != after,
            "expected a write, resourceVersion stayed {before:?}"
        );
    }
    Ok(())
}

async fn with_ttl(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let input = pod("test-ns", "foo");
    let key = pod_key(&input);
    let out = storage
        .guaranteed_update(
            &key,
            true,
            None,
            |_: Pod, _| Ok((input.clone(), Some(1))),
            None,
        )
        .await?;
    let options = ListOptions {
        resource_version: out.metadata.resource_version.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut watch = storage.watch(&key, &options).await?;
    match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
        Ok(Some(WatchEvent::Deleted(_))) => Ok(()),
        other => bail!("expected DELETED after the TTL, got {other:?}"),
    }
}

/// A value stored with a non-canonical serialization (an extra space after the transformer
/// prefix) is rewritten by an update that changes nothing; the next identical update is a no-op;
/// a stale transformer forces a rewrite again.
async fn checks_stored_data(store: Store) -> anyhow::Result<()> {
    let (storage, transformer) = transformed(&store);
    let mut input = pod("test-ns", "foo");
    let key = pod_key(&input);
    transformer.set_prefix(b"test! ".to_vec());
    let (_, initial) = propagate(&storage, &input).await?;
    transformer.set_prefix(TEST_PREFIX.to_vec());

    input.metadata.resource_version = initial.metadata.resource_version.clone();
    let same = input.clone();
    let out = storage
        .guaranteed_update(
            &key,
            true,
            None,
            |_: Pod, _| Ok((same.clone(), None)),
            Some(input.clone()),
        )
        .await?;
    ensure!(
        out.metadata.resource_version != initial.metadata.resource_version,
        "an update must rewrite data stored in a non-canonical form"
    );
    let last = out.metadata.resource_version.clone();

    let input = out.clone();
    let same = input.clone();
    let out = storage
        .guaranteed_update(
            &key,
            true,
            None,
            |_: Pod, _| Ok((same.clone(), None)),
            Some(input.clone()),
        )
        .await?;
    ensure!(
        out.metadata.resource_version == last,
        "an identical update must not write"
    );

    transformer.set_stale(true);
    let same = input.clone();
    let out = storage
        .guaranteed_update(
            &key,
            true,
            None,
            |_: Pod, _| Ok((same.clone(), None)),
            Some(input),
        )
        .await;
    transformer.set_stale(false);
    ensure!(
        out?.metadata.resource_version != last,
        "a stale transformer must force a rewrite"
    );
    Ok(())
}

/// Blocks the current worker (politely) until `receiver` yields.
fn wait_for(receiver: &std::sync::Mutex<std::sync::mpsc::Receiver<()>>) {
    tokio::task::block_in_place(|| {
        if let Ok(receiver) = receiver.lock() {
            let _ = receiver.recv_timeout(Duration::from_secs(30));
        }
    });
}

/// Two concurrent updates: the second one's update function runs while the first is pending
/// and only returns after the first committed, so its write conflicts and it runs again.
async fn with_conflict(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, _) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let (second_entered_tx, second_entered_rx) = std::sync::mpsc::channel::<()>();
    let (first_done_tx, first_done_rx) = std::sync::mpsc::channel::<()>();
    let second_entered_rx = std::sync::Mutex::new(second_entered_rx);
    let first_done_rx = std::sync::Mutex::new(first_done_rx);
    let first = {
        let storage = storage.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let result = storage
                .guaranteed_update(
                    &key,
                    false,
                    None,
                    move |mut current: Pod, _| {
                        current.metadata.name = Some("foo-1".to_owned());
                        wait_for(&second_entered_rx);
                        Ok((current, None))
                    },
                    None,
                )
                .await;
            let _ = first_done_tx.send(());
            result
        })
    };
    let calls = AtomicUsize::new(0);
    storage
        .guaranteed_update(
            &key,
            false,
            None,
            |mut current: Pod, _| {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = second_entered_tx.send(());
                    wait_for(&first_done_rx);
                }
                current.metadata.name = Some("foo-2".to_owned());
                Ok((current, None))
            },
            None,
        )
        .await
        .context("second update")?;
    first.await?.context("first update")?;
    let calls = calls.load(Ordering::SeqCst);
    ensure!(
        calls == 2,
        "the conflicting update function ran {calls} times, expected 2"
    );
    Ok(())
}

fn set_generation(pod: &mut Pod, generation: i64) {
    pod.metadata.generation = Some(generation);
}

async fn suggestion_and_conflict(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, original) = propagate(&storage, &pod("test-ns", "foo")).await?;
    storage
        .guaranteed_update(
            &key,
            false,
            None,
            |mut current: Pod, _| {
                set_generation(&mut current, 2);
                Ok((current, None))
            },
            None,
        )
        .await?;
    // A stale suggestion whose update reports a conflict must be retried on live data.
    let conflicts = AtomicUsize::new(0);
    let updated = storage
        .guaranteed_update(
            &key,
            false,
            None,
            |mut current: Pod, _| {
                if current.metadata.generation != Some(2) {
                    if conflicts.fetch_add(1, Ordering::SeqCst) > 0 {
                        return Err(StorageError::Internal(
                            "unexpected second conflict".to_owned(),
                        ));
                    }
                    return Err(StorageError::ResourceVersionConflicts {
                        key: "name".to_owned(),
                        resource_version: 0,
                        message: "foo".to_owned(),
                    });
                }
                set_generation(&mut current, 3);
                Ok((current, None))
            },
            Some(original),
        )
        .await?;
    ensure!(
        updated.metadata.generation == Some(3),
        "generation {:?}",
        updated.metadata.generation
    );
    // A current suggestion and a failing update: at most two attempts, then the error.
    let attempts = AtomicUsize::new(0);
    let result = storage
        .guaranteed_update(
            &key,
            false,
            None,
            |_: Pod, _| {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err(StorageError::BadRequest(
                    "validation or admission error".to_owned(),
                ))
            },
            Some(updated),
        )
        .await;
    ensure!(result.is_err(), "expected the update function's error");
    let attempts = attempts.load(Ordering::SeqCst);
    ensure!(
        attempts <= 2,
        "update function called {attempts} times, at most 2 allowed"
    );
    Ok(())
}

async fn transformation_failure(store: Store) -> anyhow::Result<()> {
    let (storage, transformer) = transformed(&store);
    let bar = pod("first", "bar");
    let unreadable = pod("second", "baz");
    storage.create(&pod_key(&bar), &bar, 0).await?;
    transformer.set_prefix(b"otherprefix!".to_vec());
    storage
        .create(&pod_key(&unreadable), &unreadable, 0)
        .await?;
    transformer.set_prefix(TEST_PREFIX.to_vec());
    let baz_key = pod_key(&unreadable);
    let internal = |what: &str, error: Option<StorageError>| -> anyhow::Result<()> {
        match error {
            Some(error) if error.is_internal() => Ok(()),
            other => bail!("{what} must fail with an internal error, got {other:?}"),
        }
    };
    internal(
        "list",
        storage.get_list("/pods", &recursive("")).await.err(),
    )?;
    internal(
        "get",
        storage.get(&baz_key, &GetOptions::default()).await.err(),
    )?;
    let unchanged = |current: Pod, _| Ok((current, None));
    internal(
        "update without a suggestion",
        storage
            .guaranteed_update(&baz_key, false, None, unchanged, None)
            .await
            .err(),
    )?;
    let with_suggestion = storage
        .guaranteed_update(&baz_key, false, None, unchanged, Some(unreadable.clone()))
        .await;
    ensure!(
        with_suggestion.is_err(),
        "update with a suggestion of unreadable data must fail"
    );
    internal(
        "delete",
        storage.delete(&baz_key, None, |_| Ok(()), None).await.err(),
    )?;
    internal(
        "get after delete",
        storage.get(&baz_key, &GetOptions::default()).await.err(),
    )
}

/// `RunTestCount`: a resource whose name is a prefix of another's counts only its own objects.
async fn count(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let resource_a = "/foo.bar.io/abc";
    let resource_b = format!("{resource_a}def");
    for i in 1..=5 {
        storage
            .create(
                &format!("{resource_a}/{i}"),
                &pod("", &format!("foo-{i}")),
                0,
            )
            .await?;
    }
    for i in 1..=4 {
        storage
            .create(
                &format!("{resource_b}/{i}"),
                &pod("", &format!("foo-{i}")),
                0,
            )
            .await?;
    }
    let count = storage.count(resource_a).await?;
    ensure!(count == 5, "count of {resource_a} is {count}, expected 5");
    Ok(())
}
