//! The capabilities a store reports decide which cases run: a store that does not claim TTLs has
//! its TTL cases ignored with the reason, and the others still run.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use conformance::{CaseOutcome, Harness};
use storage_api::{
    Capabilities, DeleteResponse, GetResponse, Interface, Precondition, RangeRequest,
    RangeResponse, Result, Revision, Ttl, WatchRequest, WatchStream,
};

/// The correct in-memory backend, reporting every capability but TTLs.
#[derive(Debug, Default)]
struct WithoutTtl(backend_memory::MemoryStore);

#[async_trait]
impl Interface for WithoutTtl {
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        self.0.create(key, value, ttl).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision> {
        self.0.update(key, value, precondition, ttl).await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse> {
        self.0.delete(key, precondition).await
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        self.0.get(key, revision).await
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.0.range(request).await
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        self.0.watch(request).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.0.compact(revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.0.current_revision().await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.0.compacted_revision().await
    }

    async fn ready(&self) -> Result<()> {
        self.0.ready().await
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities().with_ttl(false)
    }
}

struct NoTtlHarness;

#[async_trait]
impl Harness for NoTtlHarness {
    fn name(&self) -> &str {
        "no-ttl"
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        Ok(Arc::new(WithoutTtl::default()))
    }
}

#[test]
fn cases_needing_a_capability_the_store_lacks_are_ignored_with_the_reason() {
    let outcomes = conformance::check(&NoTtlHarness, "kv::ttl::");
    assert!(!outcomes.is_empty(), "no kv::ttl:: case");
    for (name, outcome) in outcomes {
        assert_eq!(
            outcome,
            CaseOutcome::Ignored("backend no-ttl lacks the ttl capability".to_owned()),
            "{name}"
        );
    }
}

#[test]
fn cases_needing_only_reported_capabilities_still_run() {
    let outcomes = conformance::check(&NoTtlHarness, "kv::compaction::");
    assert!(!outcomes.is_empty(), "no kv::compaction:: case");
    for (name, outcome) in outcomes {
        assert_eq!(outcome, CaseOutcome::Passed, "{name}");
    }
}

struct Unopenable;

#[async_trait]
impl Harness for Unopenable {
    fn name(&self) -> &str {
        "unopenable"
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        anyhow::bail!("no server")
    }
}

#[test]
fn a_store_that_cannot_be_opened_fails_every_case() {
    let outcomes = conformance::check(&Unopenable, "kv::create::");
    assert!(!outcomes.is_empty(), "no kv::create:: case");
    for (name, outcome) in outcomes {
        match outcome {
            CaseOutcome::Failed(message) => assert!(message.contains("no server"), "{message}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}
