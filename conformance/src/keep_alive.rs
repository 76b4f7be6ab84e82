//! A store wrapper that keeps a guard alive for as long as the store is in use.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use storage_api::{
    Capabilities, DeleteResponse, GetResponse, Interface, Precondition, RangeRequest,
    RangeResponse, Result, Revision, Ttl, WatchRequest, WatchStream,
};

/// Delegates every call to `store` and drops `guard` only after the store: a harness returns
/// one from [`crate::Harness::open`] to tie a temporary directory, a semaphore permit or a
/// server handle to the trial's store.
#[derive(Debug)]
pub struct KeepAlive<G> {
    // Field order matters: the store is dropped (and closes its files) before the guard.
    store: Arc<dyn Interface>,
    guard: G,
}

impl<G: Debug + Send + Sync + 'static> KeepAlive<G> {
    /// Wraps `store`, keeping `guard` alive until the wrapper is dropped.
    pub fn wrap(store: impl Interface + 'static, guard: G) -> Arc<dyn Interface> {
        Arc::new(KeepAlive {
            store: Arc::new(store),
            guard,
        })
    }

    /// The guard.
    pub fn guard(&self) -> &G {
        &self.guard
    }
}

#[async_trait]
impl<G: Debug + Send + Sync + 'static> Interface for KeepAlive<G> {
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

    fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }
}
