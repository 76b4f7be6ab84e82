//! Model-based property tests: random operation sequences checked against a reference model.
//!
//! The sequential test applies each operation to the store and to the model and compares every
//! answer. The concurrent test runs random operations from several tasks at once and then checks
//! that one history explains everything: the watch stream from before the first operation, replayed
//! into the model, must contain exactly the acknowledged writes at their revisions, and every read
//! must equal the model's state at the revision it reports.
//!
//! Case counts default to values sized for a 2-core CI machine; `PROPTEST_CASES` overrides them.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use storage_api::{
    Error, Interface, KeyValue, Precondition, RangeRequest, Revision, WatchEvent, WatchRequest,
};

use crate::kv::Store;
use crate::runner::Case;
use crate::support::{next_events, summary};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            "kv::model::sequential_operations_match_the_model",
            [Compaction],
            sequential
        ),
        case!(
            "kv::model::concurrent_operations_are_explained_by_one_history",
            [],
            concurrent
        ),
    ]
}

const KEYS: [&str; 4] = ["a", "b", "a/x", "c"];

/// How a write chooses its precondition.
#[derive(Clone, Copy, Debug)]
enum Expect {
    None,
    Current,
    Stale,
}

/// Which revision a read or a compaction targets, relative to the model's latest revision.
#[derive(Clone, Copy, Debug)]
enum At {
    Latest,
    Back(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Create(usize, u8),
    Update(usize, u8, Expect),
    Delete(usize, Expect),
    Get(usize, At),
    Range {
        start: Option<usize>,
        limit: u64,
        at: At,
    },
    Compact(At),
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        Just(Expect::None),
        Just(Expect::Current),
        Just(Expect::Stale)
    ]
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![2 => Just(At::Latest), 3 => (0usize..6).prop_map(At::Back)]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        4 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Create(k, v)),
        4 => (key.clone(), any::<u8>(), expect()).prop_map(|(k, v, e)| Op::Update(k, v, e)),
        2 => (key.clone(), expect()).prop_map(|(k, e)| Op::Delete(k, e)),
        3 => (key.clone(), at()).prop_map(|(k, a)| Op::Get(k, a)),
        3 => (proptest::option::of(key), 0u64..4, at())
            .prop_map(|(start, limit, at)| Op::Range { start, limit, at }),
        1 => at().prop_map(Op::Compact),
    ]
}

/// The reference: the state after every write of this test, by revision.
#[derive(Debug, Default)]
struct Model {
    prefix: String,
    /// `(revision, state)` after each write, ascending.
    history: Vec<(Revision, BTreeMap<String, KeyValue>)>,
    /// The events the watch must show, in order.
    events: Vec<String>,
}

impl Model {
    fn new(prefix: String, start: Revision) -> Self {
        Model {
            prefix,
            history: vec![(start, BTreeMap::new())],
            events: Vec::new(),
        }
    }

    fn latest_revision(&self) -> Revision {
        self.history.last().map_or(0, |(revision, _)| *revision)
    }

    fn state_at(&self, revision: Revision) -> &BTreeMap<String, KeyValue> {
        let index = self.history.partition_point(|(r, _)| *r <= revision);
        &self.history[index.saturating_sub(1)].1
    }

    fn current(&self, key: &str) -> Option<&KeyValue> {
        self.state_at(Revision::MAX).get(key)
    }

    fn revision_for(&self, at: At) -> Option<Revision> {
        match at {
            At::Latest => None,
            At::Back(n) => {
                let index = self.history.len().saturating_sub(1 + n);
                Some(self.history[index].0)
            }
        }
    }

    fn apply(&mut self, event: WatchEvent) {
        let mut state = self.state_at(Revision::MAX).clone();
        match &event {
            WatchEvent::Put { kv, .. } => {
                state.insert(kv.key.clone(), kv.clone());
            }
            WatchEvent::Delete { key, .. } => {
                state.remove(key);
            }
            WatchEvent::Progress { .. } => return,
        }
        self.events.push(summary(&event));
        self.history.push((event.revision(), state));
    }

    fn key(&self, index: usize) -> String {
        format!("{}{}", self.prefix, KEYS[index])
    }
}

pub(crate) fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs a proptest whose body is async, from inside the case's runtime.
pub(crate) async fn run_proptest<S, F, Fut>(cases: u32, strategy: S, body: F) -> anyhow::Result<()>
where
    S: Strategy + Send + 'static,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value, u32) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let iteration = std::sync::atomic::AtomicU32::new(0);
        runner
            .run(&strategy, |value| {
                let iteration = iteration.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                handle
                    .block_on(body(value, iteration))
                    .map_err(|error| TestCaseError::fail(format!("{error:#}")))
            })
            .map_err(|error| anyhow::anyhow!("{error}"))
    })
    .await?
}

async fn sequential(store: Store) -> anyhow::Result<()> {
    let strategy = proptest::collection::vec(op(), 1..40);
    run_proptest(proptest_cases(24), strategy, move |ops, iteration| {
        let store = store.clone();
        async move { run_sequential(store, ops, iteration).await }
    })
    .await
}

async fn run_sequential(store: Store, ops: Vec<Op>, iteration: u32) -> anyhow::Result<()> {
    let start = store.current_revision().await?;
    let mut model = Model::new(format!("/model/{iteration}/"), start);
    for (step, op) in ops.iter().enumerate() {
        check_op(store.as_ref(), &mut model, op)
            .await
            .with_context(|| format!("step {step}: {op:?}"))?;
    }
    // The watch from the test's start replays exactly the model's events, unless compacted.
    match store
        .watch(WatchRequest::prefix(model.prefix.clone()).after(start))
        .await
    {
        Err(Error::Compacted { .. }) => Ok(()),
        Err(other) => Err(other.into()),
        Ok(mut watch) => {
            let events = next_events(&mut watch, model.events.len()).await?;
            let seen: Vec<String> = events.iter().map(summary).collect();
            ensure!(
                seen == model.events,
                "watch replay {seen:#?}\nmodel {:#?}",
                model.events
            );
            Ok(())
        }
    }
}

fn precondition(model: &Model, key: &str, expect: Expect) -> Precondition {
    let current = model.current(key).map_or(1, |kv| kv.mod_revision);
    match expect {
        Expect::None => Precondition::None,
        Expect::Current => Precondition::ModRevision(current),
        Expect::Stale => Precondition::ModRevision(current.saturating_sub(1).max(1)),
    }
}

fn value(v: u8) -> Bytes {
    Bytes::from(vec![v; usize::from(v % 7)])
}

async fn check_op(store: &dyn Interface, model: &mut Model, op: &Op) -> anyhow::Result<()> {
    let compacted = COMPACTED.with(|c| *c.borrow());
    match *op {
        Op::Create(k, v) => {
            let key = model.key(k);
            let result = store.create(&key, value(v), None).await;
            match (model.current(&key), result) {
                (Some(_), Err(Error::AlreadyExists { .. })) => {}
                (None, Ok(revision)) => {
                    ensure!(
                        revision > model.latest_revision(),
                        "revision {revision} not increasing"
                    );
                    let kv = KeyValue {
                        key,
                        value: value(v),
                        create_revision: revision,
                        mod_revision: revision,
                    };
                    model.apply(WatchEvent::Put { kv, prev: None });
                }
                (current, result) => bail!("create with current {current:?} gave {result:?}"),
            }
        }
        Op::Update(k, v, expect) => {
            let key = model.key(k);
            let precondition = precondition(model, &key, expect);
            let result = store.update(&key, value(v), precondition, None).await;
            match (model.current(&key).cloned(), result) {
                (None, Err(Error::NotFound { .. })) => {}
                (Some(current), Err(Error::Conflict { current: live, .. })) => {
                    ensure!(
                        *live == current,
                        "conflict carries {live:?}, model has {current:?}"
                    );
                    ensure!(precondition != Precondition::ModRevision(current.mod_revision));
                }
                (Some(current), Ok(revision)) => {
                    ensure!(
                        revision > model.latest_revision(),
                        "revision {revision} not increasing"
                    );
                    if let Precondition::ModRevision(expected) = precondition {
                        ensure!(
                            expected == current.mod_revision,
                            "stale CAS {expected} succeeded"
                        );
                    }
                    let kv = KeyValue {
                        key,
                        value: value(v),
                        create_revision: current.create_revision,
                        mod_revision: revision,
                    };
                    model.apply(WatchEvent::Put {
                        kv,
                        prev: Some(current),
                    });
                }
                (current, result) => bail!("update with current {current:?} gave {result:?}"),
            }
        }
        Op::Delete(k, expect) => {
            let key = model.key(k);
            let precondition = precondition(model, &key, expect);
            let result = store.delete(&key, precondition).await;
            match (model.current(&key).cloned(), result) {
                (None, Err(Error::NotFound { .. })) => {}
                (Some(current), Err(Error::Conflict { current: live, .. })) => {
                    ensure!(
                        *live == current,
                        "conflict carries {live:?}, model has {current:?}"
                    );
                }
                (Some(current), Ok(deleted)) => {
                    ensure!(
                        deleted.prev == current,
                        "deleted {:?}, model {current:?}",
                        deleted.prev
                    );
                    ensure!(
                        deleted.revision > model.latest_revision(),
                        "revision not increasing"
                    );
                    model.apply(WatchEvent::Delete {
                        key,
                        revision: deleted.revision,
                        prev: current,
                    });
                }
                (current, result) => bail!("delete with current {current:?} gave {result:?}"),
            }
        }
        Op::Get(k, at) => {
            let key = model.key(k);
            let revision = model.revision_for(at);
            match (store.get(&key, revision).await, revision) {
                (Err(Error::Compacted { .. }), Some(r)) if r < compacted => {}
                (Ok(got), _) => {
                    ensure!(
                        revision.is_none_or(|r| r == got.revision),
                        "served at {}",
                        got.revision
                    );
                    let expected = model.state_at(got.revision).get(&key);
                    ensure!(
                        got.kv.as_ref() == expected,
                        "get {:?}, model {expected:?}",
                        got.kv
                    );
                }
                (other, _) => bail!("get at {revision:?} (compacted {compacted}) gave {other:?}"),
            }
        }
        Op::Range { start, limit, at } => {
            let revision = model.revision_for(at);
            let mut request = RangeRequest::prefix(model.prefix.clone()).limit(limit);
            if let Some(start) = start {
                request = request.start(model.key(start));
            }
            request.revision = revision;
            match (store.range(request.clone()).await, revision) {
                (Err(Error::Compacted { .. }), Some(r)) if r < compacted => {}
                (Ok(got), _) => {
                    let from = request.start.clone().unwrap_or_default();
                    let expected: Vec<&KeyValue> = model
                        .state_at(got.revision)
                        .values()
                        .filter(|kv| kv.key >= from)
                        .collect();
                    let take = if limit == 0 {
                        expected.len()
                    } else {
                        limit as usize
                    };
                    let page: Vec<&KeyValue> = expected.iter().take(take).copied().collect();
                    let kvs: Vec<&KeyValue> = got.kvs.iter().collect();
                    ensure!(kvs == page, "range {kvs:?}, model {page:?}");
                    ensure!(got.count == expected.len() as u64, "count {}", got.count);
                    ensure!(
                        got.more == (expected.len() > page.len()),
                        "more {}",
                        got.more
                    );
                }
                (other, _) => bail!("range at {revision:?} (compacted {compacted}) gave {other:?}"),
            }
        }
        Op::Compact(at) => {
            let target = model.revision_for(at).unwrap_or(model.latest_revision());
            match store.compact(target).await {
                Ok(()) => {
                    ensure!(
                        target > compacted,
                        "compaction to {target} <= {compacted} succeeded"
                    );
                    COMPACTED.with(|c| *c.borrow_mut() = target);
                }
                Err(Error::Compacted { .. }) if target <= compacted => {}
                // Another store sharing the backend (etcd prefixes) may have compacted further.
                Err(Error::Compacted {
                    compacted: theirs, ..
                }) if theirs >= target => {
                    COMPACTED.with(|c| *c.borrow_mut() = theirs);
                }
                other => bail!("compact to {target} (compacted {compacted}) gave {other:?}"),
            }
        }
    }
    Ok(())
}

thread_local! {
    /// The compaction revision the sequential test has reached (one test runs on one thread).
    static COMPACTED: std::cell::RefCell<Revision> = const { std::cell::RefCell::new(0) };
}

/// One task's operation in the concurrent test.
#[derive(Clone, Debug)]
enum ConcurrentOp {
    Create(usize, u8),
    /// Read, then CAS on the revision read.
    Cas(usize, u8),
    Delete(usize),
    Get(usize),
}

/// What a task observed.
#[derive(Debug)]
enum Observation {
    Wrote(WatchEvent),
    Read {
        key: String,
        revision: Revision,
        kv: Option<KeyValue>,
    },
    Conflict(KeyValue),
}

fn concurrent_op() -> impl Strategy<Value = ConcurrentOp> {
    let key = 0..3usize;
    prop_oneof![
        1 => (key.clone(), any::<u8>()).prop_map(|(k, v)| ConcurrentOp::Create(k, v)),
        2 => (key.clone(), any::<u8>()).prop_map(|(k, v)| ConcurrentOp::Cas(k, v)),
        1 => key.clone().prop_map(ConcurrentOp::Delete),
        1 => key.prop_map(ConcurrentOp::Get),
    ]
}

async fn concurrent(store: Store) -> anyhow::Result<()> {
    let strategy = proptest::collection::vec(proptest::collection::vec(concurrent_op(), 1..25), 4);
    run_proptest(proptest_cases(8), strategy, move |tasks, iteration| {
        let store = store.clone();
        async move { run_concurrent(store, tasks, iteration).await }
    })
    .await
}

async fn run_concurrent(
    store: Store,
    tasks: Vec<Vec<ConcurrentOp>>,
    iteration: u32,
) -> anyhow::Result<()> {
    let prefix = format!("/concurrent/{iteration}/");
    let start = store.current_revision().await?;
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|ops| {
            let store = store.clone();
            let prefix = prefix.clone();
            tokio::spawn(async move { run_task(store, &prefix, ops).await })
        })
        .collect();
    let mut observations = Vec::new();
    for handle in handles {
        observations.extend(handle.await??);
    }
    let mut writes: BTreeMap<Revision, String> = BTreeMap::new();
    for observation in &observations {
        if let Observation::Wrote(event) = observation {
            let summary = summary(event);
            let revision = event.revision();
            ensure!(
                writes.insert(revision, summary).is_none(),
                "revision {revision} acked twice"
            );
        }
    }
    // One history: the watch from the start, which must hold exactly the acknowledged writes.
    let mut watch = store
        .watch(WatchRequest::prefix(prefix.clone()).after(start))
        .await?;
    let events = next_events(&mut watch, writes.len()).await?;
    let mut model = Model::new(prefix, start);
    for event in events {
        let revision = event.revision();
        let seen = summary(&event);
        let acked = writes
            .get(&revision)
            .with_context(|| format!("unacknowledged {seen}"))?;
        // Previous values are part of the summary, so this also checks each write saw the
        // state the history says it replaced.
        ensure!(
            &seen == acked,
            "watch shows {seen}, the writer was told {acked}"
        );
        model.apply(event);
    }
    for observation in &observations {
        match observation {
            Observation::Wrote(_) => {}
            Observation::Read { key, revision, kv } => {
                let expected = model.state_at(*revision).get(key);
                ensure!(
                    kv.as_ref() == expected,
                    "read of {key} at {revision}: {kv:?} vs {expected:?}"
                );
            }
            Observation::Conflict(current) => {
                let existed = model
                    .history
                    .iter()
                    .any(|(_, state)| state.get(&current.key) == Some(current));
                ensure!(
                    existed,
                    "a conflict reported {current:?}, which never existed"
                );
            }
        }
    }
    Ok(())
}

async fn run_task(
    store: Arc<dyn Interface>,
    prefix: &str,
    ops: Vec<ConcurrentOp>,
) -> anyhow::Result<Vec<Observation>> {
    let mut seen = Vec::new();
    for op in ops {
        match op {
            ConcurrentOp::Create(k, v) => {
                let key = format!("{prefix}{}", KEYS[k]);
                match store.create(&key, value(v), None).await {
                    Ok(revision) => {
                        let kv = KeyValue {
                            key,
                            value: value(v),
                            create_revision: revision,
                            mod_revision: revision,
                        };
                        seen.push(Observation::Wrote(WatchEvent::Put { kv, prev: None }));
                    }
                    Err(Error::AlreadyExists { .. }) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            ConcurrentOp::Cas(k, v) => {
                let key = format!("{prefix}{}", KEYS[k]);
                let got = store.get(&key, None).await?;
                seen.push(Observation::Read {
                    key: key.clone(),
                    revision: got.revision,
                    kv: got.kv.clone(),
                });
                let Some(current) = got.kv else { continue };
                let expected = Precondition::ModRevision(current.mod_revision);
                match store.update(&key, value(v), expected, None).await {
                    Ok(revision) => {
                        let kv = KeyValue {
                            key,
                            value: value(v),
                            create_revision: current.create_revision,
                            mod_revision: revision,
                        };
                        let event = WatchEvent::Put {
                            kv,
                            prev: Some(current),
                        };
                        seen.push(Observation::Wrote(event));
                    }
                    Err(Error::Conflict { current, .. }) => {
                        seen.push(Observation::Conflict(*current))
                    }
                    Err(Error::NotFound { .. }) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            ConcurrentOp::Delete(k) => {
                let key = format!("{prefix}{}", KEYS[k]);
                match store.delete(&key, Precondition::None).await {
                    Ok(deleted) => seen.push(Observation::Wrote(WatchEvent::Delete {
                        key,
                        revision: deleted.revision,
                        prev: deleted.prev,
                    })),
                    Err(Error::NotFound { .. }) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            ConcurrentOp::Get(k) => {
                let key = format!("{prefix}{}", KEYS[k]);
                let got = store.get(&key, None).await?;
                seen.push(Observation::Read {
                    key,
                    revision: got.revision,
                    kv: got.kv,
                });
            }
        }
    }
    Ok(seen)
}
