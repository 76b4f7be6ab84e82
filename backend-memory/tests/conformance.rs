//! Runs the shared conformance suite against the in-memory backend.

use std::sync::Arc;
use std::time::Duration;

use backend_memory::{MemoryOptions, MemoryStore};
use conformance::Harness;
use storage_api::Interface;

struct Memory;

#[async_trait::async_trait]
impl Harness for Memory {
    fn name(&self) -> &str {
        "memory"
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        let options = MemoryOptions {
            progress_interval: Duration::from_millis(200),
            ..MemoryOptions::default()
        };
        Ok(Arc::new(MemoryStore::new(options)))
    }
}

fn main() -> std::process::ExitCode {
    conformance::run(Memory)
}
