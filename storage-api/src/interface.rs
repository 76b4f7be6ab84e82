//! The object-safe storage trait and its conveniences.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::batch::BatchWrite;
use crate::capabilities::Capabilities;
use crate::error::{Error, Result};
use crate::types::{
    DeleteResponse, GetResponse, KeyValue, Precondition, RangeRequest, RangeResponse, Revision,
    Ttl, WatchRequest, WatchStream,
};

/// A revisioned key-value store with compare-and-swap writes and watches.
///
/// Object-safe and meant to be shared as `Arc<dyn Interface>`; `Arc<S>` and `Box<S>` of a store
/// (`S` sized or `dyn Interface`) implement it too, forwarding every method, so a shared store can
/// be the inner store of a generic layer. Every method validates its key
/// with [`crate::validate_key`] (or [`crate::validate_prefix`]) and fails with
/// [`Error::InvalidArgument`] before touching storage. Implementations must be safe to call from
/// many tasks at once; the conformance suite checks every rule stated here.
#[async_trait]
pub trait Interface: Send + Sync + std::fmt::Debug {
    /// Creates `key` with `value` if it does not exist (or was deleted), returning the revision
    /// of the write. A live key fails with [`Error::AlreadyExists`]. With a TTL the key is deleted
    /// by the store once it expires, as an ordinary delete event with a revision of its own
    /// (keys that expire together may share that revision, as with etcd leases).
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision>;

    /// Replaces the value of an existing `key`, returning the revision of the write.
    ///
    /// A missing key fails with [`Error::NotFound`]; a [`Precondition::ModRevision`] that does not
    /// match fails with [`Error::Conflict`] carrying the live value. The TTL replaces the key's
    /// previous TTL: `None` makes the key permanent (as Kubernetes does when an update carries no
    /// TTL). `create_revision` is kept.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision>;

    /// Deletes `key`, returning the revision of the delete and the value it had.
    ///
    /// A missing key fails with [`Error::NotFound`]; a precondition that does not match fails with
    /// [`Error::Conflict`] carrying the live value.
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse>;

    /// Reads `key` at the latest revision (`None`) or at an exact past revision.
    ///
    /// A missing key is `Ok` with `kv: None`. A revision below the compaction revision fails with
    /// [`Error::Compacted`]; one above the current revision with [`Error::FutureRevision`].
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse>;

    /// Reads the keys under a prefix in ascending byte order, at the latest or an exact revision,
    /// from an inclusive start key, up to a limit. Revision errors as for [`Interface::get`].
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse>;

    /// Starts a watch. Errors that are known when the watch starts (a compacted start revision,
    /// a bad key) are returned here; later failures arrive as one terminal `Err` item. A start
    /// revision above the current one is allowed: the watch waits and delivers only events
    /// after it.
    ///
    /// Events come in revision order, each exactly once, with no gap: a watcher that cannot keep
    /// up gets [`Error::Unavailable`] as its last item instead of a silent skip, and can resume
    /// from the revision of the last event it saw.
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream>;

    /// Discards history older than `revision`: reads and watches at `revision` itself keep
    /// working, older ones fail with [`Error::Compacted`]. Compacting to a revision at or below
    /// the current compaction revision fails with [`Error::Compacted`]; above the current
    /// revision with [`Error::FutureRevision`]. Compaction does not consume a revision.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The store's current revision: the revision of the last committed write (0 when nothing
    /// was ever written).
    async fn current_revision(&self) -> Result<Revision>;

    /// The compaction revision: the oldest revision still readable (0 when never compacted).
    /// Compactions made by anyone sharing the store count (Kubernetes' `CompactRevision`).
    async fn compacted_revision(&self) -> Result<Revision>;

    /// Succeeds when the store can serve requests (for `/readyz`).
    async fn ready(&self) -> Result<()>;

    /// Asks every watch that wants progress events ([`crate::WatchRequest::progress_notify`])
    /// to report its progress now, once it has delivered every event committed before the call
    /// that it wants (etcd's `RequestProgress`). Returns once requested, not once reported.
    ///
    /// Stores with [`Capabilities::progress_requests`] implement it; the default does nothing
    /// and succeeds, so a caller relies on it only where the capability says so.
    async fn request_progress(&self) -> Result<()> {
        Ok(())
    }

    /// Applies every write of `writes` or none, all at one new revision, which it returns.
    ///
    /// Each write's [`crate::Expect`] is checked against the key's state just before the batch;
    /// the first that does not hold fails the batch with the error the single-key method would
    /// give ([`Error::AlreadyExists`], [`Error::NotFound`], [`Error::Conflict`]) and nothing is
    /// written. A batch is checked with [`crate::validate_batch`] first (no key twice, at least
    /// one write). Watches see one event per write, all with the batch's revision, in batch
    /// order; reads at any revision see all of the batch or none of it.
    ///
    /// Stores with [`Capabilities::atomic_batches`] implement it; the default fails with
    /// [`Error::Unsupported`].
    async fn write_batch(&self, writes: Vec<BatchWrite>) -> Result<Revision> {
        let _ = writes;
        Err(Error::Unsupported(
            "atomic write batches (several keys at one revision)".into(),
        ))
    }

    /// The optional parts of the contract this store implements. Cheap, and constant for the
    /// life of the store.
    ///
    /// The default reports none ([`Capabilities::none`]), so a store is never assumed to have a
    /// capability it did not claim: backends override this with what they really support, and
    /// wrappers forward their inner store's answer.
    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
    }
}

/// Forwards every method of [`Interface`] through a smart pointer to the store it points to.
///
/// The methods are written out as `async_trait` expands them and return the pointee's boxed
/// future as is: once `Arc<dyn Interface>` implements the trait, every method call on one
/// resolves to this impl, and an `async fn` here would box a second future per call.
macro_rules! forward_through_pointer {
    ($pointer:ident) => {
        /// Forwards every method, `capabilities` included, to the pointed-to store, so a shared
        /// store can be passed wherever an `impl Interface` is expected (as the inner store of
        /// a layer, for example).
        impl<T: Interface + ?Sized> Interface for $pointer<T> {
            fn create<'s, 'k, 'f>(
                &'s self,
                key: &'k str,
                value: Bytes,
                ttl: Ttl,
            ) -> BoxFuture<'f, Result<Revision>>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).create(key, value, ttl)
            }

            fn update<'s, 'k, 'f>(
                &'s self,
                key: &'k str,
                value: Bytes,
                precondition: Precondition,
                ttl: Ttl,
            ) -> BoxFuture<'f, Result<Revision>>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).update(key, value, precondition, ttl)
            }

            fn delete<'s, 'k, 'f>(
                &'s self,
                key: &'k str,
                precondition: Precondition,
            ) -> BoxFuture<'f, Result<DeleteResponse>>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).delete(key, precondition)
            }

            fn get<'s, 'k, 'f>(
                &'s self,
                key: &'k str,
                revision: Option<Revision>,
            ) -> BoxFuture<'f, Result<GetResponse>>
            where
                's: 'f,
                'k: 'f,
                Self: 'f,
            {
                (**self).get(key, revision)
            }

            fn range<'s, 'f>(
                &'s self,
                request: RangeRequest,
            ) -> BoxFuture<'f, Result<RangeResponse>>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).range(request)
            }

            fn watch<'s, 'f>(&'s self, request: WatchRequest) -> BoxFuture<'f, Result<WatchStream>>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).watch(request)
            }

            fn compact<'s, 'f>(&'s self, revision: Revision) -> BoxFuture<'f, Result<()>>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).compact(revision)
            }

            fn current_revision<'s, 'f>(&'s self) -> BoxFuture<'f, Result<Revision>>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).current_revision()
            }

            fn compacted_revision<'s, 'f>(&'s self) -> BoxFuture<'f, Result<Revision>>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).compacted_revision()
            }

            fn ready<'s, 'f>(&'s self) -> BoxFuture<'f, Result<()>>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).ready()
            }

            fn request_progress<'s, 'f>(&'s self) -> BoxFuture<'f, Result<()>>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).request_progress()
            }

            fn write_batch<'s, 'f>(
                &'s self,
                writes: Vec<BatchWrite>,
            ) -> BoxFuture<'f, Result<Revision>>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).write_batch(writes)
            }

            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
        }
    };
}

forward_through_pointer!(Arc);
forward_through_pointer!(Box);

/// Conveniences built only from [`Interface`] methods, available on every store.
#[async_trait]
pub trait InterfaceExt: Interface {
    /// The latest value of `key`, if it exists.
    async fn get_latest(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.get(key, None).await?.kv)
    }

    /// Every key under `prefix` at the latest revision, with the snapshot revision.
    async fn list_all(&self, prefix: &str) -> Result<(Revision, Vec<KeyValue>)> {
        let response = self.range(RangeRequest::prefix(prefix)).await?;
        Ok((response.revision, response.kvs))
    }

    /// How many keys live under `prefix` at the latest revision.
    async fn count(&self, prefix: &str) -> Result<u64> {
        Ok(self
            .range(RangeRequest::prefix(prefix).count_only())
            .await?
            .count)
    }

    /// Writes `value` whether or not `key` exists (create, or unconditional update), returning
    /// the revision of the write. Retries when a concurrent writer creates or deletes the key in
    /// between.
    async fn put(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        loop {
            match self.create(key, value.clone(), ttl).await {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match self
                .update(key, value.clone(), Precondition::None, ttl)
                .await
            {
                Err(Error::NotFound { .. }) => {}
                other => return other,
            }
        }
    }
}

impl<T: Interface + ?Sized> InterfaceExt for T {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::StreamExt;

    use super::Interface;
    use crate::error::Error;
    use crate::fake::{FAKE_CAPABILITIES, Fake};
    use crate::types::{Precondition, RangeRequest, WatchRequest};

    /// Calls every method through `store` and checks it reached [`Fake`].
    async fn reaches_the_fake(store: impl Interface) {
        assert_eq!(store.create("/a", Bytes::new(), None).await.ok(), Some(1));
        assert_eq!(
            store
                .update("/a", Bytes::new(), Precondition::None, None)
                .await
                .ok(),
            Some(2)
        );
        assert!(matches!(
            store.delete("/a", Precondition::None).await,
            Err(Error::NotFound { .. })
        ));
        assert_eq!(
            store.get("/a", None).await.map(|r| r.revision).ok(),
            Some(3)
        );
        assert_eq!(
            store
                .range(RangeRequest::prefix("/"))
                .await
                .map(|r| r.revision)
                .ok(),
            Some(4)
        );
        let watch = store.watch(WatchRequest::prefix("/")).await;
        assert!(watch.expect("watch").next().await.is_none());
        assert!(store.compact(1).await.is_ok());
        assert_eq!(store.current_revision().await.ok(), Some(5));
        assert_eq!(store.compacted_revision().await.ok(), Some(6));
        assert!(store.ready().await.is_ok());
        assert_eq!(store.capabilities(), FAKE_CAPABILITIES);
    }

    #[tokio::test]
    async fn arc_and_box_forward_every_method() {
        reaches_the_fake(Arc::new(Fake)).await;
        reaches_the_fake(Box::new(Fake)).await;
        let shared: Arc<dyn Interface> = Arc::new(Fake);
        reaches_the_fake(shared.clone()).await;
        let boxed: Box<dyn Interface> = Box::new(Fake);
        reaches_the_fake(boxed).await;
        // A pointer to a pointer still reaches the store.
        reaches_the_fake(Arc::new(shared)).await;
    }
}
