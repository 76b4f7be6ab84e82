//! The shared conformance suite on the sled backend: one fresh store in its own temporary
//! directory per trial.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backend_sled::{SledOptions, SledStore};
use conformance::{Harness, KeepAlive};
use storage_api::Interface;

struct Sled;

#[async_trait]
impl Harness for Sled {
    fn name(&self) -> &str {
        "sled"
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        let dir = tempfile::tempdir()?;
        let mut options = SledOptions::default();
        options.progress_interval = Duration::from_millis(500);
        // Small caches: many stores live at once on a small machine.
        options.cache_bytes = 8 * 1024 * 1024;
        let path = dir.path().join("db");
        let store = tokio::task::spawn_blocking(move || SledStore::open(path, options)).await??;
        // The directory goes only after the store has closed its files.
        Ok(KeepAlive::wrap(store, dir))
    }
}

fn main() -> std::process::ExitCode {
    conformance::run(Sled)
}
