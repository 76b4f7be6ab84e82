//! The rest of the list family of `store_tests.go`: `RunTestConsistentList` (16),
//! `RunTestGetListNonRecursive` (17), `RunTestGetListRecursivePrefix` (18),
//! `RunTestListContinuation` (19), `RunTestListPaginationRareObject` (20),
//! `RunTestListContinuationWithFilter` (21), `RunTestListInconsistentContinuation` (22),
//! `RunTestListResourceVersionMatch` (23), `RunTestStats` (30), `RunTestListPaging` (31),
//! `RunTestNamespaceScopedList` (32) and `RunTestCompactRevision` (33).
//!
//! Upstream's `CallsValidation` hooks (etcd3 counts its backend range calls and transformer
//! reads per page) are not ported: how many backend calls a list makes is not part of our
//! contract. What those tests observe through the interface (pages, tokens, revisions) is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail, ensure};
use apimachinery::selector::{FieldSelector, LabelSelector, SelectionPredicate};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use object_storage::transformer::{PrefixTransformer, TransformError, ValueTransformer};
use object_storage::{ListOptions, ObjectList, ResourceVersionMatch, Stats, StorageError};

use super::list::{describe, expect_items, show_token, token};
use super::{Pods, Store};
use super::{compaction, increase_rv, pod, pod_key, pod_on, pods, propagate, recursive, rv};
use crate::runner::{Case, Layer};

pub(super) fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for row in ConsistentRow::ALL {
        cases.push(Case::new(
            format!("k8s::consistent_list::{}", row.name()),
            &[],
            move |store| consistent_list(store, row),
        ));
    }
    for row in NON_RECURSIVE_ROWS {
        let row = *row;
        cases.push(Case::new(
            format!("k8s::get_list_non_recursive::{}", row.name),
            &[],
            move |store| get_list_non_recursive(store, row),
        ));
    }
    for row in RECURSIVE_PREFIX_ROWS {
        for mode in PrefixMode::ALL {
            let row = *row;
            cases.push(Case::new(
                format!(
                    "k8s::get_list_recursive_prefix::{}::{}",
                    row.name,
                    mode.name()
                ),
                &[],
                move |store| get_list_recursive_prefix(store, row, mode),
            ));
        }
    }
    cases.extend([
        case!("k8s::list_continuation", [], list_continuation),
        case!(
            "k8s::list_pagination_rare_object",
            [],
            list_pagination_rare_object
        ),
        case!(
            "k8s::list_continuation_with_filter",
            [],
            list_continuation_with_filter
        ),
        case!(
            "k8s::list_inconsistent_continuation",
            [Compaction],
            list_inconsistent_continuation
        ),
        case!(
            "k8s::list_resource_version_match",
            [],
            list_resource_version_match
        ),
        case!("k8s::stats", [], stats),
        case!("k8s::list_paging", [], list_paging),
        case!("k8s::compact_revision", [Compaction], compact_revision),
    ]);
    for (index, row) in NAMESPACE_ROWS.iter().enumerate() {
        let row = *row;
        cases.push(Case::new(
            format!("k8s::namespace_scoped_list::{}", row.name),
            &[],
            move |store| namespace_scoped_list(store, index, row),
        ));
    }
    cases
}

fn list_options(rv: &str, rv_match: ResourceVersionMatch, recursive: bool) -> ListOptions {
    ListOptions {
        resource_version: rv.to_owned(),
        resource_version_match: rv_match,
        recursive,
        ..ListOptions::default()
    }
}

fn paged(limit: i64, continue_token: Option<String>) -> ListOptions {
    ListOptions {
        predicate: SelectionPredicate {
            limit: (limit > 0).then_some(limit),
            continue_token,
            ..SelectionPredicate::default()
        },
        recursive: true,
        ..ListOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// RunTestConsistentList

#[derive(Clone, Copy, Debug)]
enum ConsistentRow {
    NonConsistentBeforeConsistentRead,
    ConsistentList,
    NegativeContinueRv,
    NonConsistentAfterConsistentRead,
}

impl ConsistentRow {
    const ALL: [ConsistentRow; 4] = [
        ConsistentRow::NonConsistentBeforeConsistentRead,
        ConsistentRow::ConsistentList,
        ConsistentRow::NegativeContinueRv,
        ConsistentRow::NonConsistentAfterConsistentRead,
    ];

    fn name(self) -> &'static str {
        match self {
            ConsistentRow::NonConsistentBeforeConsistentRead => {
                "non_consistent_list_before_consistent_read"
            }
            ConsistentRow::ConsistentList => "list_without_rv_returns_consistent_rv",
            ConsistentRow::NegativeContinueRv => "negative_continue_rv_returns_consistent_rv",
            ConsistentRow::NonConsistentAfterConsistentRead => {
                "non_consistent_list_after_consistent_read"
            }
        }
    }

    fn position(self) -> u64 {
        match self {
            ConsistentRow::NonConsistentBeforeConsistentRead => 0,
            ConsistentRow::ConsistentList => 1,
            ConsistentRow::NegativeContinueRv => 2,
            ConsistentRow::NonConsistentAfterConsistentRead => 3,
        }
    }
}

/// `RunTestConsistentList` (etcd3 expectations: every read, even RV "0", is at the newest
/// revision). Upstream runs the four reads in sequence with one unrelated write after each;
/// each row here replays the writes before it and then makes its read.
async fn consistent_list(store: Store, row: ConsistentRow) -> anyhow::Result<()> {
    let storage = pods(&store);
    let created = storage
        .create("/pods/default/foo", &pod("default", "foo"), 0)
        .await?;
    increase_rv(&store).await?;
    let mut consistent_rv = rv(&created) + 1;
    for _ in 0..row.position() {
        // The earlier rows' reads do not change the store; their trailing writes do.
        increase_rv(&store).await?;
        consistent_rv += 1;
    }
    let mut options = recursive("");
    match row {
        ConsistentRow::NonConsistentBeforeConsistentRead
        | ConsistentRow::NonConsistentAfterConsistentRead => options.resource_version = "0".into(),
        ConsistentRow::ConsistentList => {}
        ConsistentRow::NegativeContinueRv => {
            options.predicate.continue_token = Some(token("/pods/a", -1)?);
        }
    }
    if store.layer == Layer::WatchCache {
        return consistent_list_from_cache(&store, &storage, row, options, consistent_rv).await;
    }
    let list = storage.get_list("/pods/empty", &options).await?;
    ensure!(
        list.resource_version == consistent_rv,
        "{}: expected resourceVersion {consistent_rv} (the newest revision), got {}",
        row.name(),
        list.resource_version
    );
    Ok(())
}

/// `RunTestConsistentList` with `cacheEnabled` (upstream's cacher expectations): a read at
/// resourceVersion "0" is served from the cache and may be older than the newest revision
/// until a consistent read has synced it; consistent reads are exactly at the newest revision.
/// Upstream runs the rows in one sequence, so the last row's consistent read happens before
/// the last write here too.
async fn consistent_list_from_cache(
    store: &Store,
    storage: &Pods,
    row: ConsistentRow,
    options: ListOptions,
    consistent_rv: u64,
) -> anyhow::Result<()> {
    let name = row.name();
    match row {
        ConsistentRow::NonConsistentBeforeConsistentRead => {
            let list = storage.get_list("/pods/empty", &options).await?;
            ensure!(
                list.resource_version <= consistent_rv,
                "{name}: a read at 0 from the cache is at {}, newer than the store's {consistent_rv}",
                list.resource_version
            );
        }
        ConsistentRow::ConsistentList | ConsistentRow::NegativeContinueRv => {
            let list = storage.get_list("/pods/empty", &options).await?;
            ensure!(
                list.resource_version == consistent_rv,
                "{name}: expected resourceVersion {consistent_rv} (the newest revision), got {}",
                list.resource_version
            );
        }
        ConsistentRow::NonConsistentAfterConsistentRead => {
            // The replayed writes include the one after this row's read: take it back out by
            // syncing before it, as upstream's sequence does.
            let synced = storage
                .get_list("/pods/empty", &recursive(""))
                .await?
                .resource_version;
            increase_rv(store).await?;
            let list = storage.get_list("/pods/empty", &options).await?;
            // A consistent read syncs the cache only where the store answers progress
            // requests (upstream's `consistentReadsSupported`); elsewhere the backend answers
            // it and the cache keeps its own pace.
            let oldest = if store.capabilities().progress_requests {
                synced
            } else {
                0
            };
            ensure!(
                (oldest..=consistent_rv + 1).contains(&list.resource_version),
                "{name}: a read at 0 after a consistent read at {synced} is at {}",
                list.resource_version
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// RunTestGetListNonRecursive

/// The objects `RunTestGetListNonRecursive` sets up.
struct NonRecursiveSeed {
    key: String,
    prev: Pod,
    stored: Pod,
}

#[derive(Clone, Copy)]
enum Expect {
    Items(fn(&NonRecursiveSeed) -> Vec<Pod>),
    OneOf(fn(&NonRecursiveSeed) -> Vec<Vec<Pod>>),
    TooLarge,
}

#[derive(Clone, Copy)]
struct NonRecursiveRow {
    name: &'static str,
    missing_key: bool,
    /// Field selector `metadata.name!=<stored name>`.
    exclude_by_name: bool,
    rv: fn(&NonRecursiveSeed) -> String,
    rv_match: fn() -> ResourceVersionMatch,
    expect: Expect,
}

fn no_rv(_: &NonRecursiveSeed) -> String {
    String::new()
}

fn rv_0(_: &NonRecursiveSeed) -> String {
    "0".to_owned()
}

fn rv_current(s: &NonRecursiveSeed) -> String {
    rv(&s.stored).to_string()
}

fn rv_previous(s: &NonRecursiveSeed) -> String {
    rv(&s.prev).to_string()
}

fn unset() -> ResourceVersionMatch {
    ResourceVersionMatch::Unset
}

fn not_older_than() -> ResourceVersionMatch {
    ResourceVersionMatch::NotOlderThan
}

fn exact() -> ResourceVersionMatch {
    ResourceVersionMatch::Exact
}

const fn non_recursive(
    name: &'static str,
    rv: fn(&NonRecursiveSeed) -> String,
    rv_match: fn() -> ResourceVersionMatch,
    expect: Expect,
) -> NonRecursiveRow {
    NonRecursiveRow {
        name,
        missing_key: false,
        exclude_by_name: false,
        rv,
        rv_match,
        expect,
    }
}

const NON_RECURSIVE_ROWS: &[NonRecursiveRow] = &[
    non_recursive(
        "existing_key",
        no_rv,
        unset,
        Expect::Items(|s| vec![s.stored.clone()]),
    ),
    non_recursive(
        "existing_key_rv_0",
        rv_0,
        unset,
        Expect::OneOf(|s| vec![vec![], vec![s.prev.clone()], vec![s.stored.clone()]]),
    ),
    non_recursive(
        "existing_key_rv_0_not_older_than",
        rv_0,
        not_older_than,
        Expect::OneOf(|s| vec![vec![], vec![s.prev.clone()], vec![s.stored.clone()]]),
    ),
    non_recursive(
        "existing_key_rv_current",
        rv_current,
        unset,
        Expect::Items(|s| vec![s.stored.clone()]),
    ),
    non_recursive(
        "existing_key_rv_current_not_older_than",
        rv_current,
        not_older_than,
        Expect::Items(|s| vec![s.stored.clone()]),
    ),
    non_recursive(
        "existing_key_rv_previous_not_older_than",
        rv_previous,
        not_older_than,
        Expect::OneOf(|s| vec![vec![s.prev.clone()], vec![s.stored.clone()]]),
    ),
    non_recursive(
        "existing_key_rv_current_exact",
        rv_current,
        exact,
        Expect::Items(|s| vec![s.stored.clone()]),
    ),
    non_recursive(
        "existing_key_rv_previous_exact",
        rv_previous,
        exact,
        Expect::Items(|s| vec![s.prev.clone()]),
    ),
    non_recursive(
        "existing_key_rv_too_high",
        |_| i64::MAX.to_string(),
        unset,
        Expect::TooLarge,
    ),
    NonRecursiveRow {
        missing_key: true,
        ..non_recursive("non_existing_key", no_rv, unset, Expect::Items(|_| vec![]))
    },
    NonRecursiveRow {
        missing_key: true,
        exclude_by_name: true,
        ..non_recursive(
            "non_existing_key_with_pod_name_selector",
            no_rv,
            unset,
            Expect::Items(|_| vec![]),
        )
    },
    NonRecursiveRow {
        exclude_by_name: true,
        ..non_recursive(
            "existing_key_rv_current_not_matching_pod_name",
            rv_current,
            unset,
            Expect::Items(|_| vec![]),
        )
    },
];

async fn get_list_non_recursive(store: Store, row: NonRecursiveRow) -> anyhow::Result<()> {
    let storage = pods(&store);
    let (key, prev) = propagate(&storage, &pod("test-ns", "foo")).await?;
    let stored = storage
        .guaranteed_update(
            &key,
            false,
            None,
            |_, _| {
                let mut next = prev.clone();
                next.metadata.annotations = Some(BTreeMap::from([(
                    "version".to_owned(),
                    "second".to_owned(),
                )]));
                Ok((next, None))
            },
            None,
        )
        .await?;
    // Raise the revision past the object's, to test consistent lists.
    increase_rv(&store).await?;
    let seed = NonRecursiveSeed { key, prev, stored };

    let mut options = list_options(&(row.rv)(&seed), (row.rv_match)(), false);
    if row.exclude_by_name {
        let name = seed.stored.metadata.name.clone().unwrap_or_default();
        options.predicate.field = FieldSelector::parse(&format!("metadata.name!={name}"))?;
    }
    let key = if row.missing_key {
        "/pods/non-existing"
    } else {
        seed.key.as_str()
    };
    let result = storage.get_list(key, &options).await;
    // Our addition: once caught up, a watch cache answers a single-key list at resourceVersion
    // 0 from memory, as upstream's cacher does (`listItems`), rather than passing it on.
    if options.resource_version == "0" {
        storage.catch_up().await?;
        if let Some(before) = storage.reads_from_cache() {
            let again = storage.get_list(key, &options).await?;
            ensure!(
                storage.reads_from_cache() == Some(before + 1),
                "the watch cache passed a single-key list at resourceVersion 0 to the store"
            );
            ensure!(again.resource_version != 0, "unset resourceVersion");
        }
    }
    let list = match (row.expect, result) {
        (Expect::TooLarge, Err(error)) if error.is_too_large_resource_version() => return Ok(()),
        (Expect::TooLarge, other) => bail!(
            "expecting resource version too high error, got {}",
            describe(&other)
        ),
        (_, result) => result.context("GetList failed")?,
    };
    ensure!(list.resource_version != 0, "unset resourceVersion");
    match row.expect {
        Expect::Items(items) => expect_items("incorrect list pods", &items(&seed), &list.items),
        Expect::OneOf(alternatives) => {
            let alternatives = alternatives(&seed);
            ensure!(
                alternatives.contains(&list.items),
                "incorrect list pods: got {:?}, expected one of {:?}",
                super::names(&list.items),
                alternatives
                    .iter()
                    .map(|a| super::names(a))
                    .collect::<Vec<_>>()
            );
            Ok(())
        }
        Expect::TooLarge => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// RunTestGetListRecursivePrefix

#[derive(Clone, Copy, Debug)]
enum PrefixMode {
    Exact,
    Consistent,
    NotOlderThan,
}

impl PrefixMode {
    const ALL: [PrefixMode; 3] = [
        PrefixMode::Exact,
        PrefixMode::Consistent,
        PrefixMode::NotOlderThan,
    ];

    fn name(self) -> &'static str {
        match self {
            PrefixMode::Exact => "exact",
            PrefixMode::Consistent => "consistent",
            PrefixMode::NotOlderThan => "not_older_than",
        }
    }
}

#[derive(Clone, Copy)]
struct PrefixRow {
    name: &'static str,
    key: &'static str,
    recursive: bool,
    /// Indices into [foo, foobar, baz].
    expected: &'static [usize],
}

const RECURSIVE_PREFIX_ROWS: &[PrefixRow] = &[
    PrefixRow {
        name: "non_recursive_on_resource_prefix_returns_nothing",
        key: "/pods/",
        recursive: false,
        expected: &[],
    },
    PrefixRow {
        name: "recursive_on_resource_prefix_returns_all",
        key: "/pods/",
        recursive: true,
        expected: &[0, 1, 2],
    },
    PrefixRow {
        name: "non_recursive_on_namespace_prefix_returns_nothing",
        key: "/pods/test-ns/",
        recursive: false,
        expected: &[],
    },
    PrefixRow {
        name: "recursive_on_namespace_prefix_returns_namespace",
        key: "/pods/test-ns/",
        recursive: true,
        expected: &[0, 1],
    },
    PrefixRow {
        name: "non_recursive_on_object_key_prefix_returns_only_object",
        key: "/pods/test-ns/foo",
        recursive: false,
        expected: &[0],
    },
    PrefixRow {
        name: "recursive_on_object_key_prefix_returns_nothing",
        key: "/pods/test-ns/foo",
        recursive: true,
        expected: &[],
    },
    PrefixRow {
        name: "non_recursive_on_object_key_no_prefix_returns_object",
        key: "/pods/test-ns/foobar",
        recursive: false,
        expected: &[1],
    },
    PrefixRow {
        name: "recursive_on_object_key_no_prefix_returns_nothing",
        key: "/pods/test-ns/foobar",
        recursive: true,
        expected: &[],
    },
];

async fn get_list_recursive_prefix(
    store: Store,
    row: PrefixRow,
    mode: PrefixMode,
) -> anyhow::Result<()> {
    let storage = pods(&store);
    let mut objects = Vec::new();
    for (namespace, name) in [
        ("test-ns", "foo"),
        ("test-ns", "foobar"),
        ("test-ns2", "baz"),
    ] {
        objects.push(propagate(&storage, &pod(namespace, name)).await?.1);
    }
    let last_rev = objects.last().map(rv).unwrap_or_default();
    let options = match mode {
        PrefixMode::Exact => list_options(&last_rev.to_string(), exact(), row.recursive),
        PrefixMode::Consistent => list_options("", unset(), row.recursive),
        PrefixMode::NotOlderThan => {
            // Upstream reads at "0" after its Exact and Consistent subtests, which leave a
            // watch cache current.
            storage.catch_up().await?;
            list_options("0", not_older_than(), row.recursive)
        }
    };
    let list = storage
        .get_list(row.key, &options)
        .await
        .context("GetList failed")?;
    let expected: Vec<Pod> = row
        .expected
        .iter()
        .filter_map(|i| objects.get(*i).cloned())
        .collect();
    expect_items("incorrect list pods", &expected, &list.items)
}

// ---------------------------------------------------------------------------------------------
// RunTestListContinuation, RunTestListPaginationRareObject, RunTestListContinuationWithFilter

async fn create_all(storage: &Pods, objects: &[Pod]) -> anyhow::Result<Vec<Pod>> {
    let mut stored = Vec::new();
    for object in objects {
        stored.push(
            storage
                .create(&pod_key(object), object, 0)
                .await
                .with_context(|| format!("create {}", pod_key(object)))?,
        );
    }
    Ok(stored)
}

fn expect_page(
    what: &str,
    list: &ObjectList<Pod>,
    items: &[Pod],
    has_continue: bool,
    resource_version: u64,
) -> anyhow::Result<()> {
    expect_items(what, items, &list.items)?;
    let token = list.continue_token.as_deref().filter(|t| !t.is_empty());
    ensure!(
        token.is_some() == has_continue,
        "{what}: continuation token expected: {has_continue}, got {:?}",
        token.map(show_token)
    );
    ensure!(
        list.resource_version == resource_version,
        "{what}: expected resourceVersion {resource_version}, got {}",
        list.resource_version
    );
    Ok(())
}

/// `RunTestListContinuation`: consistent paging with and without a limit on the later pages.
async fn list_continuation(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let stored = create_all(
        &storage,
        &[
            pod("first", "bar"),
            pod("second", "bar"),
            pod("second", "foo"),
        ],
    )
    .await?;
    let current_rv = stored.last().map(rv).unwrap_or_default();
    let [first, second, third] = <[Pod; 3]>::try_from(stored).map_err(|_| anyhow::anyhow!("3"))?;

    // Limit is ignored when ResourceVersion is "0" in the watch cache: list consistently.
    let out = storage.get_list("/pods/", &paged(1, None)).await?;
    expect_page(
        "first page",
        &out,
        std::slice::from_ref(&first),
        true,
        current_rv,
    )?;
    let continue_from_second = out.continue_token.clone();

    let out = storage
        .get_list("/pods/", &paged(0, continue_from_second.clone()))
        .await?;
    expect_page(
        "second page without a limit",
        &out,
        &[second.clone(), third.clone()],
        false,
        current_rv,
    )?;

    let out = storage
        .get_list("/pods/", &paged(1, continue_from_second))
        .await?;
    expect_page(
        "second page",
        &out,
        std::slice::from_ref(&second),
        true,
        current_rv,
    )?;
    let continue_from_third = out.continue_token.clone();

    let out = storage
        .get_list("/pods/", &paged(1, continue_from_third))
        .await?;
    expect_page("third page", &out, &[third], false, current_rv)
}

/// `RunTestListPaginationRareObject`: 1000 pods, limit 1, a selector matching only the last
/// key; the list must keep fetching until it finds it and then report no continuation.
async fn list_pagination_rare_object(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    // Created concurrently to keep the case fast on durable backends; the keys, not the
    // creation order, decide the listing order.
    let mut stored: Vec<Pod> = futures::stream::iter(0..1000)
        .map(|i| {
            let storage = storage.clone();
            async move {
                let object = pod("", &format!("pod-{i}"));
                storage.create(&pod_key(&object), &object, 0).await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    stored.retain(|p| p.metadata.name.as_deref() == Some("pod-999"));
    let mut options = paged(1, None);
    options.predicate.field = FieldSelector::one_term_equal("metadata.name", "pod-999");
    let out = storage.get_list("/pods/", &options).await?;
    ensure!(
        out.continue_token.as_deref().is_none_or(str::is_empty),
        "unexpected continuation token set: {:?}",
        out.continue_token.as_deref().map(show_token)
    );
    expect_items("unexpected first page", &stored, &out.items)
}

/// `RunTestListContinuationWithFilter`: a filtered page that needs a second backend fetch to
/// fill, then the last page.
async fn list_continuation_with_filter(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let stored = create_all(
        &storage,
        &[
            pod("1", "foo"),
            pod("2", "bar"), // does not match
            pod("3", "foo"),
            pod("4", "foo"),
        ],
    )
    .await?;
    let current_rv = stored.last().map(rv).unwrap_or_default();
    let [foo1, _, foo3, foo4] = <[Pod; 4]>::try_from(stored).map_err(|_| anyhow::anyhow!("4"))?;
    let options = |continue_token: Option<String>| -> anyhow::Result<ListOptions> {
        let mut options = paged(2, continue_token);
        options.predicate.field = FieldSelector::parse("metadata.name!=bar")?;
        Ok(options)
    };
    let out = storage.get_list("/pods/", &options(None)?).await?;
    expect_page("first page", &out, &[foo1, foo3], true, current_rv)?;
    let out = storage
        .get_list("/pods/", &options(out.continue_token.clone())?)
        .await?;
    expect_page("second page", &out, &[foo4], false, current_rv)
}

// ---------------------------------------------------------------------------------------------
// RunTestListInconsistentContinuation

async fn list_inconsistent_continuation(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let stored = create_all(
        &storage,
        &[
            pod("first", "bar"),
            pod("second", "bar"),
            pod("second", "foo"),
        ],
    )
    .await?;
    let [first, second, _] = <[Pod; 3]>::try_from(stored).map_err(|_| anyhow::anyhow!("3"))?;
    let at_zero = |limit: i64, continue_token: Option<String>| {
        let mut options = paged(limit, continue_token);
        options.resource_version = "0".to_owned();
        options
    };

    // A read at "0" from a watch cache sees the creates once it has caught up with them.
    storage.catch_up().await?;
    let out = storage.get_list("/pods/", &at_zero(1, None)).await?;
    ensure!(
        out.continue_token.is_some(),
        "no continuation token set on the first page"
    );
    expect_items(
        "incorrect first page",
        std::slice::from_ref(&first),
        &out.items,
    )?;
    let continue_from_second = out.continue_token.clone();

    // Update second/foo (to an object without a namespace, as upstream does), passing the new
    // object as a stale suggestion.
    let mut new_pod = pod("", "foo");
    new_pod.metadata.labels = Some(BTreeMap::from([("state".to_owned(), "new".to_owned())]));
    let updated = storage
        .guaranteed_update(
            "/pods/second/foo",
            false,
            None,
            |_, _| Ok((new_pod.clone(), None)),
            Some(new_pod.clone()),
        )
        .await
        .context("update second/foo")?;

    // Compact to the latest revision: the old token's snapshot is gone.
    let last_rv = rv(&updated);
    compaction(&store, last_rv).await?;
    let inconsistent = match storage
        .get_list("/pods/", &at_zero(0, continue_from_second))
        .await
    {
        Err(StorageError::Expired {
            message,
            continue_token,
        }) if message.contains("The provided continue parameter is too old ") => continue_token
            .filter(|t| !t.is_empty())
            .context("the 410 for a compacted continue token must carry a continue token")?,
        other => bail!(
            "expected 410 \"The provided continue parameter is too old ...\", got {}",
            describe(&other)
        ),
    };

    let out = storage
        .get_list("/pods/", &at_zero(1, Some(inconsistent)))
        .await?;
    ensure!(
        out.continue_token.is_some(),
        "no continuation token set on the second page"
    );
    expect_items("incorrect second page", &[second], &out.items)?;
    ensure!(
        out.resource_version >= last_rv,
        "expected a resourceVersion no smaller than {last_rv}, but got {}",
        out.resource_version
    );
    let resolved = out.resource_version;

    let out = storage
        .get_list("/pods/", &at_zero(1, out.continue_token.clone()))
        .await?;
    ensure!(
        out.continue_token.is_none(),
        "unexpected continuation token set on the last page: {:?}",
        out.continue_token.as_deref().map(show_token)
    );
    expect_items("incorrect third page", &[updated], &out.items)?;
    ensure!(
        out.resource_version == resolved,
        "expected list resource version to be {resolved}, got {}",
        out.resource_version
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// RunTestListResourceVersionMatch

/// Upstream's `reproducingTransformer`: every read from storage first creates the next pod,
/// so objects are written while a list is reading (the list must stay on one revision).
#[derive(Debug)]
struct ReproducingTransformer {
    wrapped: Arc<PrefixTransformer>,
    /// Writes through the wrapped transformer (the same bytes a write through this one makes).
    writer: Pods,
    runtime: tokio::runtime::Handle,
    index: AtomicU32,
    errors: Mutex<Vec<String>>,
}

fn next_pod(index: u32) -> Pod {
    let mut object = pod("", &format!("pod-{index}"));
    object.metadata.labels = Some(BTreeMap::from([(
        "even".to_owned(),
        (index % 2 == 0).to_string(),
    )]));
    object
}

impl ReproducingTransformer {
    async fn create_object(&self) -> object_storage::Result<()> {
        let object = next_pod(self.index.fetch_add(1, Ordering::SeqCst) + 1);
        self.writer
            .create(&pod_key(&object), &object, 0)
            .await
            .map(|_| ())
    }
}

impl ValueTransformer for ReproducingTransformer {
    fn transform_to_storage(&self, plain: &[u8], key: &str) -> Result<Vec<u8>, TransformError> {
        self.wrapped.transform_to_storage(plain, key)
    }

    fn transform_from_storage(
        &self,
        stored: &[u8],
        key: &str,
    ) -> Result<(Vec<u8>, bool), TransformError> {
        // The hook is synchronous; the write is not. Reads happen on the case's runtime.
        let created = tokio::task::block_in_place(|| self.runtime.block_on(self.create_object()));
        if let Err(error) = created {
            if let Ok(mut errors) = self.errors.lock() {
                errors.push(error.to_string());
            }
        }
        self.wrapped.transform_from_storage(stored, key)
    }
}

async fn list_resource_version_match(store: Store) -> anyhow::Result<()> {
    let wrapped = Arc::new(PrefixTransformer::new("test!"));
    let transformer = Arc::new(ReproducingTransformer {
        wrapped: wrapped.clone(),
        writer: pods(&store).with_transformer(wrapped),
        runtime: tokio::runtime::Handle::current(),
        index: AtomicU32::new(0),
        errors: Mutex::new(Vec::new()),
    });
    let storage = pods(&store).with_transformer(transformer.clone());
    for _ in 0..5 {
        transformer
            .create_object()
            .await
            .context("failed to create object")?;
    }
    let predicate = SelectionPredicate {
        label: LabelSelector::parse("even=true")?,
        limit: Some(4),
        ..SelectionPredicate::default()
    };
    let options = |rv: String, rv_match: ResourceVersionMatch| ListOptions {
        resource_version: rv,
        resource_version_match: rv_match,
        predicate: predicate.clone(),
        recursive: true,
        ..ListOptions::default()
    };

    let result1 = storage
        .get_list(
            "/pods/",
            &options(String::new(), ResourceVersionMatch::Unset),
        )
        .await
        .context("failed to list objects")?;
    let result2 = storage
        .get_list(
            "/pods/",
            &options(result1.resource_version.to_string(), exact()),
        )
        .await
        .context("failed to list objects")?;
    expect_lists(
        "list at \"\" then Exact at its resourceVersion",
        &result1,
        &result2,
    )?;

    let result3 = storage
        .get_list(
            "/pods/",
            &options(result1.resource_version.to_string(), not_older_than()),
        )
        .await
        .context("failed to list objects")?;
    let result4 = storage
        .get_list(
            "/pods/",
            &options(result3.resource_version.to_string(), exact()),
        )
        .await
        .context("failed to list objects")?;
    expect_lists(
        "list NotOlderThan then Exact at its resourceVersion",
        &result3,
        &result4,
    )?;

    let errors = transformer
        .errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    ensure!(
        errors.is_empty(),
        "creating objects during reads failed: {errors:?}"
    );
    Ok(())
}

fn expect_lists(
    what: &str,
    expected: &ObjectList<Pod>,
    actual: &ObjectList<Pod>,
) -> anyhow::Result<()> {
    expect_items(what, &expected.items, &actual.items)?;
    ensure!(
        expected == actual,
        "{what}: lists differ in metadata: expected rv {} continue {:?} remaining {:?}, got rv {} continue {:?} remaining {:?}",
        expected.resource_version,
        expected.continue_token.as_deref().map(show_token),
        expected.remaining_item_count,
        actual.resource_version,
        actual.continue_token.as_deref().map(show_token),
        actual.remaining_item_count
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// RunTestStats

/// `RunTestStats` with size estimation on, over the etcd3 test's prefix transformer: the
/// average size is of the encoded and transformed value (the resourceVersion is not stored).
async fn stats(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store).with_transformer(Arc::new(PrefixTransformer::new("test!")));
    let size = |object: &Pod| -> anyhow::Result<i64> {
        let mut object = object.clone();
        object.metadata.resource_version = None;
        let full = storage.prepare_key(&pod_key(&object))?;
        let plain = storage.codec().encode(&object)?;
        let stored = storage.codec().to_storage(&full, &plain)?;
        Ok(i64::try_from(stored.len())?)
    };
    let assert_stats = |step: &'static str, object_count: i64, average: i64| {
        let storage = storage.clone();
        async move {
            // A consistent list first, as upstream does to refresh a cache.
            storage.get_list("/pods/", &recursive("")).await?;
            let got = storage.stats("/pods").await?;
            let want = Stats {
                object_count,
                estimated_average_object_size_bytes: average,
            };
            ensure!(got == want, "{step}: expected {want:?} but got {got:?}");
            anyhow::Ok(())
        }
    };
    let accept = |_: &Pod| Ok(());

    assert_stats("empty", 0, 0).await?;
    let first = pod("", "foo");
    storage.create(&pod_key(&first), &first, 0).await?;
    let first_size = size(&first)?;
    assert_stats("after creating foo", 1, first_size).await?;

    let bar = pod("", "bar");
    storage.create(&pod_key(&bar), &bar, 0).await?;
    let bar_size = size(&bar)?;
    assert_stats("after creating bar", 2, (first_size + bar_size) / 2).await?;

    let bar = storage
        .guaranteed_update(
            &pod_key(&bar),
            false,
            None,
            |mut object: Pod, _| {
                object.metadata.labels =
                    Some(BTreeMap::from([("foo".to_owned(), "bar".to_owned())]));
                Ok((object, None))
            },
            None,
        )
        .await?;
    let bar_size = size(&bar)?;
    assert_stats("after updating bar", 2, (first_size + bar_size) / 2).await?;

    storage.delete(&pod_key(&first), None, accept, None).await?;
    assert_stats("after deleting foo", 1, bar_size).await?;

    ensure!(
        storage
            .delete(&pod_key(&first), None, accept, None)
            .await
            .is_err(),
        "deleting foo again must fail"
    );
    assert_stats("after deleting foo again", 1, bar_size).await?;

    storage.delete(&pod_key(&bar), None, accept, None).await?;
    assert_stats("after deleting bar", 0, 0).await
}

// ---------------------------------------------------------------------------------------------
// RunTestListPaging

/// `RunTestListPaging`: pages of one pinned to the first page's snapshot; a pod created
/// mid-way is not seen.
async fn list_paging(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    for i in 0..4 {
        let object = pod("paging", &format!("test-{i}"));
        storage.create(&pod_key(&object), &object, 0).await?;
    }
    let mut names = Vec::new();
    let mut options = paged(1, None);
    let mut calls = 0;
    loop {
        calls += 1;
        ensure!(calls <= 10, "paging does not end: names so far {names:?}");
        let out = storage.get_list("/pods/", &options).await?;
        names.extend(out.items.iter().filter_map(|p| p.metadata.name.clone()));
        let Some(next) = out.continue_token.filter(|t| !t.is_empty()) else {
            break;
        };
        if calls == 2 {
            let object = pod("paging", "test-5");
            storage.create(&pod_key(&object), &object, 0).await?;
        }
        options.predicate.continue_token = Some(next);
    }
    ensure!(calls == 4, "unexpected list invocations: {calls}");
    ensure!(
        names == ["test-0", "test-1", "test-2", "test-3"],
        "unexpected items: {names:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// RunTestNamespaceScopedList

/// `baseNamespacedPodUpdated`.
fn pod_updated(namespace: &str, name: &str) -> Pod {
    let mut object = pod(namespace, name);
    object.status = Some(PodStatus {
        phase: Some("Running".to_owned()),
        ..PodStatus::default()
    });
    object
}

#[derive(Clone, Copy)]
struct NamespaceRow {
    name: &'static str,
    /// Appended to the test's namespace prefix to form the listed path; `""` lists `/pods/`.
    requested_namespace: &'static str,
    /// The field selector, given the test's namespace prefix.
    field: fn(&str) -> String,
    input: fn(&str) -> Vec<Pod>,
    expect: fn(&str) -> Vec<Pod>,
}

fn ns(prefix: &str, suffix: &str) -> String {
    format!("{prefix}{suffix}")
}

const NAMESPACE_ROWS: &[NamespaceRow] = &[
    NamespaceRow {
        name: "without_namespace_without_field_selector",
        requested_namespace: "",
        field: |_| String::new(),
        input: |_| vec![pod("ns1", "foo1"), pod("ns2", "foo2")],
        expect: |_| vec![pod("ns1", "foo1"), pod("ns2", "foo2")],
    },
    NamespaceRow {
        name: "without_namespace_field_selector_metadata_namespace",
        requested_namespace: "",
        field: |n| format!("metadata.namespace={n}ns1"),
        input: |n| vec![pod(&ns(n, "ns1"), "foo1"), pod(&ns(n, "ns2"), "foo1")],
        expect: |n| vec![pod(&ns(n, "ns1"), "foo1")],
    },
    NamespaceRow {
        name: "without_namespace_field_selector_spec_node_name",
        requested_namespace: "",
        field: |_| "spec.nodeName=bar1".to_owned(),
        input: |n| {
            vec![
                pod_on(&ns(n, "ns1"), "foo1", "bar1"),
                pod_on(&ns(n, "ns2"), "foo2", "bar2"),
            ]
        },
        expect: |n| vec![pod_on(&ns(n, "ns1"), "foo1", "bar1")],
    },
    NamespaceRow {
        name: "without_namespace_field_selector_spec_node_name_filter_out",
        requested_namespace: "",
        field: |_| "spec.nodeName!=bar1".to_owned(),
        input: |n| {
            vec![
                pod_on(&ns(n, "ns1"), "foo1", "bar1"),
                pod_on(&ns(n, "ns2"), "foo2", "bar2"),
            ]
        },
        expect: |n| vec![pod_on(&ns(n, "ns2"), "foo2", "bar2")],
    },
    NamespaceRow {
        name: "with_namespace_without_field_selector",
        requested_namespace: "ns1",
        field: |_| String::new(),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns2"), "foo1"),
                pod(&ns(n, "ns1"), "foo2"),
            ]
        },
        expect: |n| vec![pod(&ns(n, "ns1"), "foo1"), pod(&ns(n, "ns1"), "foo2")],
    },
    NamespaceRow {
        name: "with_namespace_field_selector_matched_metadata_namespace",
        requested_namespace: "ns1",
        field: |n| format!("metadata.namespace={n}ns1"),
        input: |n| vec![pod(&ns(n, "ns1"), "foo1"), pod(&ns(n, "ns2"), "foo1")],
        expect: |n| vec![pod(&ns(n, "ns1"), "foo1")],
    },
    NamespaceRow {
        name: "with_namespace_field_selector_non_matched_metadata_namespace",
        requested_namespace: "ns1",
        field: |n| format!("metadata.namespace={n}ns2"),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns2"), "foo1"),
                pod_updated(&ns(n, "ns1"), "foo2"),
                pod_updated(&ns(n, "ns2"), "foo2"),
            ]
        },
        expect: |_| vec![],
    },
    NamespaceRow {
        name: "with_namespace_field_selector_spec_node_name",
        requested_namespace: "ns1",
        field: |_| "spec.nodeName=bar2".to_owned(),
        input: |n| {
            vec![
                pod_on(&ns(n, "ns1"), "foo1", "bar1"),
                pod_on(&ns(n, "ns2"), "foo1", "bar2"),
                pod_on(&ns(n, "ns1"), "foo2", "bar2"),
            ]
        },
        expect: |n| vec![pod_on(&ns(n, "ns1"), "foo2", "bar2")],
    },
    NamespaceRow {
        name: "with_namespace_field_selector_spec_node_name_filter_out",
        requested_namespace: "ns2",
        field: |_| "spec.nodeName!=bar1".to_owned(),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns2"), "foo1"),
                pod_on(&ns(n, "ns2"), "foo3", "bar1"),
                pod_on(&ns(n, "ns2"), "foo2", "bar2"),
            ]
        },
        expect: |n| {
            vec![
                pod(&ns(n, "ns2"), "foo1"),
                pod_on(&ns(n, "ns2"), "foo2", "bar2"),
            ]
        },
    },
    NamespaceRow {
        name: "without_namespace_field_selector_metadata_name",
        requested_namespace: "",
        field: |_| "metadata.name=foo1".to_owned(),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns2"), "foo1"),
                pod(&ns(n, "ns1"), "foo2"),
            ]
        },
        expect: |n| vec![pod(&ns(n, "ns1"), "foo1"), pod(&ns(n, "ns2"), "foo1")],
    },
    NamespaceRow {
        name: "without_namespace_field_selector_metadata_name_and_namespace",
        requested_namespace: "",
        field: |n| format!("metadata.name=foo1,metadata.namespace={n}ns1"),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns1"), "foo2"),
                pod(&ns(n, "ns2"), "foo1"),
            ]
        },
        expect: |n| vec![pod(&ns(n, "ns1"), "foo1")],
    },
    NamespaceRow {
        name: "without_namespace_field_selector_metadata_name_and_spec_node_name",
        requested_namespace: "",
        field: |_| "metadata.name=foo1,spec.nodeName=bar1".to_owned(),
        input: |n| vec![pod_on(&ns(n, "ns1"), "foo1", "bar1")],
        expect: |n| vec![pod_on(&ns(n, "ns1"), "foo1", "bar1")],
    },
    NamespaceRow {
        name: "without_namespace_field_selector_metadata_name_spec_node_name_filter_out",
        requested_namespace: "",
        field: |_| "spec.nodeName!=bar1,metadata.name=foo1".to_owned(),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns1"), "foo2"),
                pod_on(&ns(n, "ns2"), "foo1", "bar1"),
                pod_on(&ns(n, "ns2"), "foo2", "bar1"),
                pod_on(&ns(n, "ns3"), "foo1", "bar2"),
                pod_on(&ns(n, "ns3"), "foo2", "bar2"),
            ]
        },
        expect: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod_on(&ns(n, "ns3"), "foo1", "bar2"),
            ]
        },
    },
    NamespaceRow {
        name: "with_namespace_field_selector_metadata_name",
        requested_namespace: "ns1",
        field: |_| "metadata.name=foo1".to_owned(),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns1"), "foo2"),
                pod(&ns(n, "ns2"), "foo1"),
                pod(&ns(n, "ns2"), "foo2"),
            ]
        },
        expect: |n| vec![pod(&ns(n, "ns1"), "foo1")],
    },
    NamespaceRow {
        name: "with_namespace_field_selector_metadata_name_and_namespace",
        requested_namespace: "ns1",
        field: |n| format!("metadata.name=foo1,metadata.namespace={n}ns1"),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns1"), "foo2"),
                pod(&ns(n, "ns2"), "foo1"),
                pod(&ns(n, "ns2"), "foo2"),
            ]
        },
        expect: |n| vec![pod(&ns(n, "ns1"), "foo1")],
    },
    NamespaceRow {
        name: "with_namespace_field_selector_metadata_name_namespace_spec_node_name",
        requested_namespace: "ns2",
        field: |n| format!("metadata.name=foo2,metadata.namespace={n}ns2,spec.nodeName=bar1"),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns1"), "foo2"),
                pod(&ns(n, "ns2"), "foo1"),
                pod_on(&ns(n, "ns2"), "foo2", "bar1"),
                pod_on(&ns(n, "ns3"), "foo1", "bar1"),
                pod_on(&ns(n, "ns3"), "foo2", "bar1"),
            ]
        },
        expect: |n| vec![pod_on(&ns(n, "ns2"), "foo2", "bar1")],
    },
    NamespaceRow {
        name: "with_namespace_field_selector_metadata_name_namespace_spec_node_name_filter_out",
        requested_namespace: "ns2",
        field: |n| format!("spec.nodeName!=bar2,metadata.name=foo1,metadata.namespace={n}ns2"),
        input: |n| {
            vec![
                pod(&ns(n, "ns1"), "foo1"),
                pod(&ns(n, "ns1"), "foo2"),
                pod_on(&ns(n, "ns2"), "foo1", "bar1"),
                pod_on(&ns(n, "ns2"), "foo2", "bar2"),
                pod_on(&ns(n, "ns3"), "foo1", "bar2"),
            ]
        },
        expect: |n| vec![pod_on(&ns(n, "ns2"), "foo1", "bar1")],
    },
];

/// `RunTestNamespaceScopedList`: a consistent recursive list with a namespaced predicate over
/// the test's own pods (namespaces prefixed `t<row>-`), compared with resourceVersions blanked.
async fn namespace_scoped_list(
    store: Store,
    index: usize,
    row: NamespaceRow,
) -> anyhow::Result<()> {
    let storage = pods(&store);
    let prefix = format!("t{index}-");
    let mut keys = BTreeSet::new();
    for object in (row.input)(&prefix) {
        let key = pod_key(&object);
        storage
            .create(&key, &object, 0)
            .await
            .with_context(|| format!("create {key}"))?;
        keys.insert(key);
    }
    let mut options = recursive("");
    options.predicate.field = FieldSelector::parse(&(row.field)(&prefix))?;
    let path = if row.requested_namespace.is_empty() {
        "/pods/".to_owned()
    } else {
        format!("/pods/{prefix}{}", row.requested_namespace)
    };
    let list = storage.get_list(&path, &options).await?;
    let items: Vec<Pod> = list
        .items
        .into_iter()
        .filter(|p| keys.contains(&pod_key(p)))
        .map(|mut p| {
            p.metadata.resource_version = None;
            p
        })
        .collect();
    expect_items("incorrect list pods", &(row.expect)(&prefix), &items)
}

// ---------------------------------------------------------------------------------------------
// RunTestCompactRevision

async fn compact_revision(store: Store) -> anyhow::Result<()> {
    let storage = pods(&store);
    let list_rv = storage
        .get_list("/pods/", &recursive(""))
        .await?
        .resource_version;
    if list_rv == 0 || storage.compact_revision().await? >= list_rv {
        // Upstream runs on a fresh etcd: at revision 1, nothing compacted. A store that starts
        // at 0, or a shared server another trial compacted to its current revision, gets there
        // with one unrelated write.
        increase_rv(&store).await?;
    }
    let current_rv = storage
        .get_list("/pods/", &recursive(""))
        .await?
        .resource_version;
    let compacted = storage.compact_revision().await?;
    ensure!(
        compacted < current_rv,
        "expected current RV not be compacted, current: {current_rv}, compacted: {compacted}"
    );
    let exact_at = |revision: u64| list_options(&revision.to_string(), exact(), true);
    storage
        .get_list("/pods/", &exact_at(current_rv))
        .await
        .context("Exact list at the current revision")?;
    increase_rv(&store).await?;
    let expect_compacted = current_rv + 1;
    compaction(&store, expect_compacted).await?;
    match storage.get_list("/pods/", &exact_at(current_rv)).await {
        Err(error)
            if error
                .to_string()
                .contains("The resourceVersion for the provided list is too old") => {}
        other => bail!(
            "expected \"The resourceVersion for the provided list is too old\", but got {}",
            describe(&other)
        ),
    }
    let compacted = storage.compact_revision().await?;
    ensure!(
        compacted == expect_compacted,
        "CompactRevision()={compacted}, expected: {expect_compacted}"
    );
    Ok(())
}
