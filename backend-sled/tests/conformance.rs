//! The shared conformance suite on the sled backend: one fresh store in its own temporary
//! directory per trial.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backend_sled::{SledOptions, SledStore};
use bytes::Bytes;
use conformance::Harness;
use storage_api::{
    DeleteResponse, GetResponse, Interface, Precondition, RangeRequest, RangeResponse, Result,
    Revision, Ttl, WatchRequest, WatchStream,
};

/// A store that owns its temporary directory (dropped after the store).
#[derive(Debug)]
struct TempStore {
    store: SledStore,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Interface for TempStore {
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        self.store.create(key, value, ttl).await
    }
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision> {
        self.store.update(key, value, precondition, ttl).await
    }
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse> {
        self.store.delete(key, precondition).await
    }
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        self.store.get(key, revision).await
    }
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.store.range(request).await
    }
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        self.store.watch(request).await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.store.compact(revision).await
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.store.current_revision().await
    }
    async fn compacted_revision(&self) -> Result<Revision> {
        self.store.compacted_revision().await
    }
    async fn ready(&self) -> Result<()> {
        self.store.ready().await
    }
}

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
        Ok(Arc::new(TempStore { store, _dir: dir }))
    }
}

fn main() -> std::process::ExitCode {
    conformance::run(Sled)
}
