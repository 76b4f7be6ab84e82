//! Keeps a guard alive for as long as a store is in use.

use std::fmt::Debug;
use std::sync::Arc;

use storage_api::{Interface, Observed, Observer, Operation};

/// Holds a guard for as long as a store: a harness returns [`KeepAlive::wrap`] from
/// [`crate::Harness::open`] to tie a temporary directory, a semaphore permit or a server handle
/// to the trial's store.
///
/// It is the [`Observer`] of a [`storage_api::Observed`] store that observes nothing: every call
/// goes straight to the store, and the store is dropped (and closes its files) before the guard.
#[derive(Debug)]
pub struct KeepAlive<G> {
    guard: G,
}

impl<G: Debug + Send + Sync + 'static> KeepAlive<G> {
    /// Wraps `store`, keeping `guard` alive until the returned store is dropped.
    pub fn wrap(store: impl Interface + 'static, guard: G) -> Arc<dyn Interface> {
        Arc::new(Observed::new(store, KeepAlive::new(guard)))
    }
}

impl<G> KeepAlive<G> {
    /// An observer holding `guard`, for building the [`storage_api::Observed`] store by hand
    /// (to keep its concrete type, or reach the guard through [`Observed::observer`]).
    pub fn new(guard: G) -> Self {
        KeepAlive { guard }
    }

    /// The guard.
    pub fn guard(&self) -> &G {
        &self.guard
    }
}

/// Observes nothing: the guard only has to live as long as the store.
impl<G: Debug + Send + Sync> Observer for KeepAlive<G> {
    type Span = ();

    fn start(&self, _operation: Operation, _key: Option<&str>) -> Self::Span {}
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use storage_api::{Capabilities, Interface, InterfaceExt, Observed, Observer, Operation};

    use super::KeepAlive;

    /// Records its name when dropped; as an observer, observes nothing.
    #[derive(Debug)]
    struct Logs(&'static str, Arc<Mutex<Vec<&'static str>>>);

    impl Drop for Logs {
        fn drop(&mut self) {
            if let Ok(mut log) = self.1.lock() {
                log.push(self.0);
            }
        }
    }

    impl Observer for Logs {
        type Span = ();

        fn start(&self, _operation: Operation, _key: Option<&str>) -> Self::Span {}
    }

    #[tokio::test]
    async fn calls_reach_the_store_and_the_guard_outlives_it() {
        let log = Arc::new(Mutex::new(Vec::new()));
        // The store logs its own drop through an inner layer.
        let store = Observed::new(
            backend_memory::MemoryStore::default(),
            Logs("store", log.clone()),
        );
        let store = KeepAlive::wrap(store, Logs("guard", log.clone()));
        let revision = store
            .put("/a", Bytes::from_static(b"1"), None)
            .await
            .unwrap();
        assert_eq!(store.current_revision().await.unwrap(), revision);
        assert_eq!(store.capabilities(), Capabilities::all());
        assert!(log.lock().unwrap().is_empty());
        drop(store);
        assert_eq!(*log.lock().unwrap(), ["store", "guard"]);
    }

    #[test]
    fn the_guard_is_reachable_through_the_layer() {
        let store = Observed::new(backend_memory::MemoryStore::default(), KeepAlive::new(7));
        assert_eq!(*store.observer().guard(), 7);
    }
}
