//! The conformance suite every storage backend runs.
//!
//! A backend adds one test file with `harness = false` that implements [`Harness`] and calls
//! [`run`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use conformance::Harness;
//! use storage_api::Interface;
//!
//! struct Memory;
//!
//! #[async_trait::async_trait]
//! impl Harness for Memory {
//!     fn name(&self) -> &str { "memory" }
//!     async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
//!         Ok(Arc::new(backend_memory::MemoryStore::default()))
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode { conformance::run(Memory) }
//! ```
//!
//! Every case runs as its own trial named `<backend>::<group>::<case>` (for example
//! `memory::kv::watch::replay_from_revision`) on a fresh store. The usual test flags work:
//! a name filter, `--exact`, `--list`, `--ignored`, `--test-threads`. Cases that need a
//! [`Capability`] the store does not report in [`storage_api::Interface::capabilities`] are
//! reported as ignored with the reason: before any trial runs, the runner opens one store to read
//! them, then drops it.
//!
//! Cases never assume that revisions are consecutive or start at 0: a backend may share one
//! revision counter among many isolated stores (etcd with a key prefix per trial).

/// Builds a [`Case`] from a name, the capabilities it needs and an `async fn(Store)`.
macro_rules! case {
    ($name:literal, [$($capability:ident),*], $body:path) => {
        $crate::runner::Case::new(
            $name,
            &[$($crate::harness::Capability::$capability),*],
            $body,
        )
    };
}

pub mod crash;
pub mod harness;
mod k8s;
mod keep_alive;
mod kv;
mod model;
mod runner;
mod support;

pub use harness::{Capability, Harness};
pub use keep_alive::KeepAlive;
pub use runner::{Case, CaseInput, CaseOutcome, Layer, cases, check, run, run_all};
