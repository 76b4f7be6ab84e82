//! A model-based property test of `Storage<K>` itself: random concurrent creates, updates,
//! deletes, paged and filtered lists, and one watch, all explained by one sequential history.
//!
//! The watch from before the test is the history. Checked: its events have strictly increasing
//! resourceVersions and are exactly the acknowledged writes (no gap, no duplicate, nothing
//! unacknowledged), each event carries the object the writer got back, every update
//! incremented the counter it read (no lost update), and every list - including every page of
//! a paged list - equals the model's state at the one revision the list reports.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use apimachinery::selector::{LabelSelector, SelectionPredicate};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use object_storage::{ListOptions, WatchEvent};
use proptest::prelude::*;

use super::{Pods, Store};
use super::{increase_rv, pod, pods, rv};
use crate::model::{proptest_cases, run_proptest};
use crate::runner::Case;

pub(super) fn cases() -> Vec<Case> {
    vec![case!(
        "k8s::model::concurrent_storage_operations_match_one_history",
        [],
        concurrent_storage
    )]
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];
const COUNTER: &str = "counter";

#[derive(Clone, Debug)]
enum Op {
    Create(usize, bool),
    Update(usize, bool),
    Delete(usize),
    List { limit: i64, selector: Option<bool> },
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    prop_oneof![
        2 => (name.clone(), any::<bool>()).prop_map(|(n, l)| Op::Create(n, l)),
        3 => (name.clone(), any::<bool>()).prop_map(|(n, l)| Op::Update(n, l)),
        1 => name.prop_map(Op::Delete),
        2 => (0i64..3, proptest::option::of(any::<bool>()))
            .prop_map(|(limit, selector)| Op::List { limit, selector }),
    ]
}

/// What a task saw.
#[derive(Debug)]
enum Seen {
    /// A write and the object it returned: kind (`ADDED`, `MODIFIED`, `DELETED`) and object.
    Wrote(&'static str, Box<Pod>),
    /// A list: the revision, the selector, and the items of all its pages.
    Listed {
        revision: u64,
        selector: Option<bool>,
        items: Vec<Pod>,
    },
}

fn labelled(name: &str, flag: bool) -> Pod {
    let mut object = pod("model", name);
    object.metadata.labels = Some(BTreeMap::from([("flag".to_owned(), flag.to_string())]));
    object.metadata.annotations = Some(BTreeMap::from([(COUNTER.to_owned(), "0".to_owned())]));
    object
}

fn counter(object: &Pod) -> u64 {
    object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(COUNTER))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn flag(object: &Pod) -> Option<bool> {
    object.metadata.labels.as_ref()?.get("flag")?.parse().ok()
}

fn summary(kind: &str, object: &Pod) -> String {
    format!(
        "{kind} {} rv={} counter={} flag={:?}",
        object.metadata.name.as_deref().unwrap_or_default(),
        rv(object),
        counter(object),
        flag(object)
    )
}

async fn concurrent_storage(store: Store) -> anyhow::Result<()> {
    let strategy = proptest::collection::vec(proptest::collection::vec(op(), 1..12), 3);
    run_proptest(proptest_cases(8), strategy, move |tasks, _| {
        let store = store.clone();
        async move { run(store, tasks).await }
    })
    .await
}

async fn run(store: Store, tasks: Vec<Vec<Op>>) -> anyhow::Result<()> {
    let storage = pods(&store);
    // Clear what earlier iterations left, so the model can start empty.
    for name in NAMES {
        let _ = storage
            .delete(&format!("/pods/model/{name}"), None, |_| Ok(()), None)
            .await;
    }
    let start = increase_rv(&store).await?;
    let options = ListOptions {
        resource_version: start.to_string(),
        recursive: true,
        ..ListOptions::default()
    };
    let mut watch = storage.watch("/pods/model", &options).await?;
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|ops| {
            let storage = storage.clone();
            tokio::spawn(async move { run_task(&storage, ops).await })
        })
        .collect();
    let mut seen = Vec::new();
    for handle in handles {
        seen.extend(handle.await??);
    }
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    for entry in &seen {
        if let Seen::Wrote(kind, object) = entry {
            let previous = acknowledged.insert(rv(object), summary(kind, object));
            ensure!(
                previous.is_none(),
                "two writes acknowledged at resourceVersion {}",
                rv(object)
            );
        }
    }
    // Replay the watch into the model.
    let mut history: Vec<(u64, BTreeMap<String, Pod>)> = vec![(start, BTreeMap::new())];
    let mut last = start;
    for _ in 0..acknowledged.len() {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .context("watch went silent before every acknowledged write arrived")?
            .context("watch ended early")?;
        let (kind, object) = match event {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            other => bail!("unexpected watch event {other:?}"),
        };
        let revision = rv(&object);
        ensure!(
            revision > last,
            "watch went from {last} to {revision}: not strictly increasing"
        );
        last = revision;
        let shown = summary(kind, &object);
        let acked = acknowledged
            .get(&revision)
            .with_context(|| format!("unacknowledged {shown}"))?;
        ensure!(
            &shown == acked,
            "watch shows {shown}, the writer got {acked}"
        );
        let name = object.metadata.name.clone().unwrap_or_default();
        let mut state = history.last().map(|(_, s)| s.clone()).unwrap_or_default();
        match kind {
            "ADDED" => {
                ensure!(!state.contains_key(&name), "{name} added twice");
                state.insert(name, object);
            }
            "MODIFIED" => {
                let before = state
                    .get(&name)
                    .with_context(|| format!("{name} modified while absent"))?;
                ensure!(
                    counter(&object) == counter(before) + 1,
                    "lost update on {name}: counter {} after {}",
                    counter(&object),
                    counter(before)
                );
                state.insert(name, object);
            }
            _ => {
                ensure!(state.remove(&name).is_some(), "{name} deleted while absent");
            }
        }
        history.push((revision, state));
    }
    for entry in &seen {
        let Seen::Listed {
            revision,
            selector,
            items,
        } = entry
        else {
            continue;
        };
        let index = history.partition_point(|(r, _)| r <= revision);
        let state = &history[index.saturating_sub(1)].1;
        let expected: Vec<String> = state
            .values()
            .filter(|o| selector.is_none_or(|want| flag(o) == Some(want)))
            .map(|o| summary("ITEM", o))
            .collect();
        let got: Vec<String> = items.iter().map(|o| summary("ITEM", o)).collect();
        ensure!(
            got == expected,
            "list at {revision} (selector {selector:?}): {got:?}, model {expected:?}"
        );
    }
    Ok(())
}

async fn run_task(storage: &Pods, ops: Vec<Op>) -> anyhow::Result<Vec<Seen>> {
    let mut seen = Vec::new();
    for op in ops {
        match op {
            Op::Create(n, f) => {
                let key = format!("/pods/model/{}", NAMES[n]);
                match storage.create(&key, &labelled(NAMES[n], f), 0).await {
                    Ok(object) => seen.push(Seen::Wrote("ADDED", Box::new(object))),
                    Err(error) if error.is_exist() => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Op::Update(n, f) => {
                let key = format!("/pods/model/{}", NAMES[n]);
                let result = storage
                    .guaranteed_update(
                        &key,
                        false,
                        None,
                        |mut current: Pod, _| {
                            let next = counter(&current) + 1;
                            current
                                .metadata
                                .annotations
                                .get_or_insert_with(BTreeMap::new)
                                .insert(COUNTER.to_owned(), next.to_string());
                            current
                                .metadata
                                .labels
                                .get_or_insert_with(BTreeMap::new)
                                .insert("flag".to_owned(), f.to_string());
                            Ok((current, None))
                        },
                        None,
                    )
                    .await;
                match result {
                    Ok(object) => seen.push(Seen::Wrote("MODIFIED", Box::new(object))),
                    Err(error) if error.is_not_found() => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Op::Delete(n) => {
                let key = format!("/pods/model/{}", NAMES[n]);
                match storage.delete(&key, None, |_| Ok(()), None).await {
                    Ok(object) => seen.push(Seen::Wrote("DELETED", Box::new(object))),
                    Err(error) if error.is_not_found() => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Op::List { limit, selector } => seen.push(list_all(storage, limit, selector).await?),
        }
    }
    Ok(seen)
}

/// Reads every page of a list; all pages must report the first page's revision.
async fn list_all(storage: &Pods, limit: i64, selector: Option<bool>) -> anyhow::Result<Seen> {
    let label = match selector {
        Some(want) => LabelSelector::parse(&format!("flag={want}"))?,
        None => LabelSelector::everything(),
    };
    let mut predicate = SelectionPredicate {
        label,
        ..SelectionPredicate::everything()
    };
    predicate.limit = (limit > 0).then_some(limit);
    let mut items = Vec::new();
    let mut revision = None;
    loop {
        let options = ListOptions {
            recursive: true,
            predicate: predicate.clone(),
            ..ListOptions::default()
        };
        let page = storage.get_list("/pods/model", &options).await?;
        let pinned = *revision.get_or_insert(page.resource_version);
        ensure!(
            page.resource_version == pinned,
            "page at {} after a first page at {pinned}",
            page.resource_version
        );
        items.extend(page.items);
        match page.continue_token {
            Some(token) => predicate.continue_token = Some(token),
            None => break,
        }
    }
    Ok(Seen::Listed {
        revision: revision.unwrap_or_default(),
        selector,
        items,
    })
}
