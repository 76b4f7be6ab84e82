//! The suite must catch broken backends: each planted fault below wraps the correct in-memory
//! backend and breaks one rule of the contract, and the suite must fail on it.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use conformance::{CaseOutcome, Harness};
use futures::StreamExt;
use storage_api::{
    Capabilities, DeleteResponse, GetResponse, Interface, Precondition, RangeRequest,
    RangeResponse, Result, Revision, Ttl, WatchEvent, WatchRequest, WatchStream,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Latest reads are served one revision behind (a lagging replica).
    StaleReads,
    /// Every watch silently drops its third event.
    SkippedWatchEvent,
    /// Updates ignore their expected revision (no compare-and-swap).
    IgnoredPrecondition,
    /// Range never says more keys remain.
    MissingMoreFlag,
    /// Delete events lose their previous value's revision.
    WrongPreviousValue,
}

#[derive(Debug)]
struct Faulty {
    inner: backend_memory::MemoryStore,
    fault: Fault,
}

#[async_trait]
impl Interface for Faulty {
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        self.inner.create(key, value, ttl).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision> {
        let precondition = match self.fault {
            Fault::IgnoredPrecondition => Precondition::None,
            _ => precondition,
        };
        // Yield as a backend doing I/O would: without an await point the in-memory store runs
        // each racing task to completion and a missing CAS never loses an update.
        tokio::task::yield_now().await;
        self.inner.update(key, value, precondition, ttl).await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse> {
        self.inner.delete(key, precondition).await
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        tokio::task::yield_now().await;
        if self.fault == Fault::StaleReads && revision.is_none() {
            let current = self.inner.current_revision().await?;
            if current > 1 {
                let mut response = self.inner.get(key, Some(current - 1)).await?;
                response.revision = current;
                return Ok(response);
            }
        }
        self.inner.get(key, revision).await
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let mut response = self.inner.range(request).await?;
        if self.fault == Fault::MissingMoreFlag {
            response.more = false;
        }
        Ok(response)
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        let stream = self.inner.watch(request).await?;
        let fault = self.fault;
        let mut seen = 0;
        Ok(Box::pin(stream.filter_map(move |item| {
            let keep = match (&item, fault) {
                (Ok(WatchEvent::Progress { .. }), _) => Some(item),
                (Ok(_), Fault::SkippedWatchEvent) => {
                    seen += 1;
                    (seen != 3).then_some(item)
                }
                (
                    Ok(WatchEvent::Delete {
                        key,
                        revision,
                        prev,
                    }),
                    Fault::WrongPreviousValue,
                ) => {
                    let mut prev = prev.clone();
                    prev.mod_revision = prev.create_revision;
                    Some(Ok(WatchEvent::Delete {
                        key: key.clone(),
                        revision: *revision,
                        prev,
                    }))
                }
                _ => Some(item),
            };
            futures::future::ready(keep)
        })))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.compacted_revision().await
    }

    async fn ready(&self) -> Result<()> {
        self.inner.ready().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

struct FaultyHarness(Fault);

#[async_trait]
impl Harness for FaultyHarness {
    fn name(&self) -> &str {
        "faulty"
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        Ok(Arc::new(Faulty {
            inner: backend_memory::MemoryStore::default(),
            fault: self.0,
        }))
    }
}

/// Runs the cases matching `filter` against the fault and returns the names of those that failed.
fn failures(fault: Fault, filter: &str) -> Vec<String> {
    conformance::check(&FaultyHarness(fault), filter)
        .into_iter()
        .filter(|(_, outcome)| matches!(outcome, CaseOutcome::Failed(_)))
        .map(|(name, _)| name)
        .collect()
}

fn assert_caught(fault: Fault, filter: &str, must_fail: &[&str]) {
    let failed = failures(fault, filter);
    for name in must_fail {
        assert!(
            failed.iter().any(|f| f == name),
            "{fault:?}: case {name} should fail but only {failed:?} did"
        );
    }
}

#[test]
fn stale_reads_are_caught() {
    assert_caught(
        Fault::StaleReads,
        "kv::update",
        &[
            "kv::update::with_current_revision",
            "kv::update::unconditional",
        ],
    );
    assert_caught(
        Fault::StaleReads,
        "kv::model::sequential",
        &["kv::model::sequential_operations_match_the_model"],
    );
}

#[test]
fn a_skipped_watch_event_is_caught() {
    assert_caught(
        Fault::SkippedWatchEvent,
        "kv::watch",
        &[
            "kv::watch::from_now",
            "kv::watch::replay_from_revision",
            "kv::watch::replay_hands_over_to_live_without_gap",
            "kv::watch::slow_consumer_never_sees_a_gap",
        ],
    );
}

#[test]
fn a_missing_compare_and_swap_is_caught() {
    assert_caught(
        Fault::IgnoredPrecondition,
        "kv::",
        &[
            "kv::update::stale_revision_conflicts",
            "kv::concurrency::cas_race_has_no_lost_update",
            "kv::model::sequential_operations_match_the_model",
        ],
    );
}

#[test]
fn a_missing_more_flag_is_caught() {
    assert_caught(
        Fault::MissingMoreFlag,
        "kv::range",
        &[
            "kv::range::limit_more_and_count",
            "kv::range::page_through_at_one_revision",
        ],
    );
}

#[test]
fn a_wrong_previous_value_is_caught() {
    assert_caught(
        Fault::WrongPreviousValue,
        "kv::watch",
        &["kv::watch::update_and_delete_carry_previous_value"],
    );
}

#[test]
fn the_correct_backend_passes_the_same_groups() {
    let outcomes = conformance::check(&CorrectHarness, "kv::");
    assert!(
        outcomes.len() > 40,
        "suite shrank to {} cases",
        outcomes.len()
    );
    for (name, outcome) in outcomes {
        assert_eq!(outcome, CaseOutcome::Passed, "{name}");
    }
}

struct CorrectHarness;

#[async_trait]
impl Harness for CorrectHarness {
    fn name(&self) -> &str {
        "memory"
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        let options = backend_memory::MemoryOptions {
            progress_interval: std::time::Duration::from_millis(200),
            ..Default::default()
        };
        Ok(Arc::new(backend_memory::MemoryStore::new(options)))
    }
}
