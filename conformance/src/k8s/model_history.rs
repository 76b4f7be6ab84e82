//! A model-based property test of watches and exact lists against one history: random writes
//! by one writer (whose acknowledged results are the history), watches started at random
//! revisions of that history with random selectors, and paged lists at random exact revisions.
//!
//! Checked: every watch delivers exactly the events the history implies after its start
//! revision, for its selector (ADDED and DELETED as objects enter and leave it), in order,
//! with no gap and no duplicate; every page of every list is the state at the exact revision
//! asked for. Run through both layers, this holds the watch cache (its ring, its past states
//! and its dispatch) to what `Storage` does over the backend.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use apimachinery::selector::{LabelSelector, SelectionPredicate};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use object_storage::{ListOptions, ResourceVersionMatch, WatchEvent};
use proptest::prelude::*;

use super::watch::PodWatch;
use super::{Pods, Store, increase_rv, pod, pods, rv};
use crate::model::{proptest_cases, run_proptest};
use crate::runner::Case;

pub(super) fn cases() -> Vec<Case> {
    vec![case!(
        "k8s::model::watches_and_lists_from_random_revisions_match_one_history",
        [],
        random_revisions
    )]
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
const DIRECTORY: &str = "/pods/history";
/// How long a watch may take to deliver an expected event.
const EVENT_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
enum Op {
    /// Create, update or delete (whichever the name's state allows, `delete` chooses between
    /// the last two) with the label `flag`.
    Write {
        name: usize,
        flag: bool,
        delete: bool,
    },
    /// Start a watch after the `at`-th revision of the history so far (modulo its length).
    Watch { at: usize, selector: Option<bool> },
    /// List at the `at`-th revision of the history so far, in pages of `limit` (0: one page).
    List {
        at: usize,
        limit: i64,
        selector: Option<bool>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..NAMES.len(), any::<bool>(), any::<bool>())
            .prop_map(|(name, flag, delete)| Op::Write { name, flag, delete }),
        2 => (any::<usize>(), proptest::option::of(any::<bool>()))
            .prop_map(|(at, selector)| Op::Watch { at, selector }),
        2 => (any::<usize>(), 0i64..4, proptest::option::of(any::<bool>()))
            .prop_map(|(at, limit, selector)| Op::List { at, limit, selector }),
    ]
}

/// One acknowledged write: its revision, the name, and the object after it (`None`: deleted).
struct Written {
    revision: u64,
    name: String,
    after: Option<Pod>,
}

fn flag_of(object: &Pod) -> Option<bool> {
    object.metadata.labels.as_ref()?.get("flag")?.parse().ok()
}

fn matches(selector: Option<bool>, object: &Pod) -> bool {
    selector.is_none_or(|want| flag_of(object) == Some(want))
}

fn summary(kind: &str, object: &Pod) -> String {
    format!(
        "{kind} {} rv={} flag={:?}",
        object.metadata.name.as_deref().unwrap_or_default(),
        rv(object),
        flag_of(object)
    )
}

fn predicate(selector: Option<bool>) -> anyhow::Result<SelectionPredicate> {
    let label = match selector {
        Some(want) => LabelSelector::parse(&format!("flag={want}"))?,
        None => LabelSelector::everything(),
    };
    Ok(SelectionPredicate {
        label,
        ..SelectionPredicate::everything()
    })
}

/// The state after every write up to `revision`.
fn state_at(history: &[Written], revision: u64) -> BTreeMap<String, Pod> {
    let mut state = BTreeMap::new();
    for write in history.iter().take_while(|w| w.revision <= revision) {
        match &write.after {
            Some(object) => state.insert(write.name.clone(), object.clone()),
            None => state.remove(&write.name),
        };
    }
    state
}

/// The events a watch after `start` with `selector` must deliver.
fn expected_events(history: &[Written], start: u64, selector: Option<bool>) -> Vec<String> {
    let mut state = BTreeMap::new();
    let mut events = Vec::new();
    for write in history {
        let before: Option<Pod> = state.get(&write.name).cloned();
        match &write.after {
            Some(object) => state.insert(write.name.clone(), object.clone()),
            None => state.remove(&write.name),
        };
        if write.revision <= start {
            continue;
        }
        let was = before.as_ref().filter(|o| matches(selector, o));
        let is = write.after.as_ref().filter(|o| matches(selector, o));
        match (was, is) {
            (None, Some(now)) => events.push(summary("ADDED", now)),
            (Some(_), Some(now)) => events.push(summary("MODIFIED", now)),
            (Some(old), None) => {
                let mut last = old.clone();
                last.metadata.resource_version = Some(write.revision.to_string());
                events.push(summary("DELETED", &last));
            }
            (None, None) => {}
        }
    }
    events
}

async fn random_revisions(store: Store) -> anyhow::Result<()> {
    let strategy = proptest::collection::vec(op(), 10..40);
    run_proptest(proptest_cases(8), strategy, move |ops, _| {
        let store = store.clone();
        async move { run(store, ops).await }
    })
    .await
}

async fn run(store: Store, ops: Vec<Op>) -> anyhow::Result<()> {
    let storage = pods(&store);
    // Clear what earlier iterations left, so the history can start empty.
    for name in NAMES {
        let _ = storage
            .delete(&format!("{DIRECTORY}/{name}"), None, |_| Ok(()), None)
            .await;
    }
    let start = increase_rv(&store).await?;
    let mut revisions = vec![start];
    let mut history: Vec<Written> = Vec::new();
    let mut watches: Vec<(u64, Option<bool>, PodWatch)> = Vec::new();
    for op in ops {
        match op {
            Op::Write { name, flag, delete } => {
                if let Some(written) = write(&storage, &history, NAMES[name], flag, delete).await? {
                    revisions.push(written.revision);
                    history.push(written);
                }
            }
            Op::Watch { at, selector } => {
                let from = revisions[at % revisions.len()];
                let options = ListOptions {
                    resource_version: from.to_string(),
                    recursive: true,
                    predicate: predicate(selector)?,
                    ..ListOptions::default()
                };
                watches.push((from, selector, storage.watch(DIRECTORY, &options).await?));
            }
            Op::List {
                at,
                limit,
                selector,
            } => {
                let revision = revisions[at % revisions.len()];
                let items = list_at(&storage, revision, limit, selector).await?;
                let expected: Vec<String> = state_at(&history, revision)
                    .values()
                    .filter(|o| matches(selector, o))
                    .map(|o| summary("ITEM", o))
                    .collect();
                ensure!(
                    items == expected,
                    "list at exactly {revision} (selector {selector:?}, pages of {limit}): \
                     {items:?}, history says {expected:?}"
                );
            }
        }
    }
    for (from, selector, mut watch) in watches {
        let expected = expected_events(&history, from, selector);
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let event = tokio::time::timeout(EVENT_WAIT, watch.next())
                .await
                .with_context(|| {
                    format!(
                        "watch after {from} (selector {selector:?}) went silent after {got:?}; \
                         history says {expected:?}"
                    )
                })?
                .with_context(|| format!("watch after {from} ended after {got:?}"))?;
            match event {
                WatchEvent::Added(o) => got.push(summary("ADDED", &o)),
                WatchEvent::Modified(o) => got.push(summary("MODIFIED", &o)),
                WatchEvent::Deleted(o) => got.push(summary("DELETED", &o)),
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(error) => bail!("watch after {from} failed: {error}"),
            }
        }
        ensure!(
            got == expected,
            "watch after {from} (selector {selector:?}): {got:?}, history says {expected:?}"
        );
    }
    Ok(())
}

/// One write of `name`, chosen by what the history says it is now; `None` for an update that
/// changes nothing (storage writes nothing for it).
async fn write(
    storage: &Pods,
    history: &[Written],
    name: &str,
    flag: bool,
    delete: bool,
) -> anyhow::Result<Option<Written>> {
    let key = format!("{DIRECTORY}/{name}");
    let current = history
        .iter()
        .rev()
        .find(|w| w.name == name)
        .and_then(|w| w.after.as_ref());
    let exists = current.is_some();
    let unchanged = current.is_some_and(|c| flag_of(c) == Some(flag));
    let mut object = pod("history", name);
    object.metadata.labels = Some(BTreeMap::from([("flag".to_owned(), flag.to_string())]));
    let (revision, after) = if !exists {
        let created = storage.create(&key, &object, 0).await?;
        (rv(&created), Some(created))
    } else if delete {
        let deleted = storage.delete(&key, None, |_| Ok(()), None).await?;
        (rv(&deleted), None)
    } else if unchanged {
        return Ok(None);
    } else {
        let updated = storage
            .guaranteed_update(&key, false, None, |_, _| Ok((object.clone(), None)), None)
            .await?;
        (rv(&updated), Some(updated))
    };
    Ok(Some(Written {
        revision,
        name: name.to_owned(),
        after,
    }))
}

/// Every page of a list at exactly `revision`, as item summaries.
async fn list_at(
    storage: &Pods,
    revision: u64,
    limit: i64,
    selector: Option<bool>,
) -> anyhow::Result<Vec<String>> {
    let mut predicate = predicate(selector)?;
    predicate.limit = (limit > 0).then_some(limit);
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let options = ListOptions {
            // A continue token carries the revision; the first page names it.
            resource_version: if first {
                revision.to_string()
            } else {
                String::new()
            },
            resource_version_match: if first {
                ResourceVersionMatch::Exact
            } else {
                ResourceVersionMatch::Unset
            },
            recursive: true,
            predicate: predicate.clone(),
            ..ListOptions::default()
        };
        first = false;
        let page = storage.get_list(DIRECTORY, &options).await?;
        ensure!(
            page.resource_version == revision,
            "a page of the list at exactly {revision} is at {}",
            page.resource_version
        );
        items.extend(page.items.iter().map(|o| summary("ITEM", o)));
        match page.continue_token {
            Some(token) => predicate.continue_token = Some(token),
            None => return Ok(items),
        }
    }
}
