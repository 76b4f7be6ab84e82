//! What a backend provides to run the suite.

use std::sync::Arc;

use async_trait::async_trait;
use storage_api::{Capabilities, Interface};

/// An optional ability a case needs, one of the [`Capabilities`] a store reports. A case that
/// needs one the store lacks is reported as *ignored* with the reason, never as passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Keys written with a TTL expire and produce delete events.
    Ttl,
    /// Watches asked for progress notifications get [`storage_api::WatchEvent::Progress`]
    /// events at least every two seconds while idle.
    ProgressNotify,
    /// `compact` discards history.
    Compaction,
    /// `request_progress` makes idle watches that asked for progress report it.
    ProgressRequests,
    /// `write_batch` applies several conditional writes atomically at one revision.
    AtomicBatches,
}

impl Capability {
    /// Every capability, in a stable order.
    pub const ALL: [Capability; 5] = [
        Capability::Ttl,
        Capability::ProgressNotify,
        Capability::Compaction,
        Capability::ProgressRequests,
        Capability::AtomicBatches,
    ];

    /// Whether `capabilities`, as reported by a store, include this one.
    pub fn is_in(self, capabilities: Capabilities) -> bool {
        match self {
            Capability::Ttl => capabilities.ttl,
            Capability::ProgressNotify => capabilities.progress_notify,
            Capability::Compaction => capabilities.compaction,
            Capability::ProgressRequests => capabilities.progress_requests,
            Capability::AtomicBatches => capabilities.atomic_batches,
        }
    }

    /// The lowercase name used in ignore reasons.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Ttl => "ttl",
            Capability::ProgressNotify => "progress-notify",
            Capability::Compaction => "compaction",
            Capability::ProgressRequests => "progress-requests",
            Capability::AtomicBatches => "atomic-batches",
        }
    }
}

/// A backend under test.
///
/// The runner calls [`Harness::open`] once per trial, inside that trial's own Tokio runtime
/// (multi-threaded), so every trial gets a fresh, empty, isolated store: a new in-memory store,
/// a new temporary file, or a new random prefix on a shared server. Background tasks the store
/// spawns end with the trial's runtime. Before any trial, the runner opens one more store the
/// same way, only to read [`Interface::capabilities`], and drops it: the capabilities the store
/// reports decide which cases are ignored.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// Short backend name; the first segment of every trial name (`memory::kv::...`).
    fn name(&self) -> &str;

    /// A fresh, empty store whose current revision is 0 or whatever the backend starts at; cases
    /// only compare revisions relative to ones they observe. Progress notifications, where
    /// supported, must be configured to arrive at least every two seconds.
    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>>;
}
