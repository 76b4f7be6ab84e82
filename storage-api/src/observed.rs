//! A layer that reports every operation of the store it wraps to an [`Observer`].
//!
//! Metrics, logging of slow calls, or just keeping something alive as long as the store: each
//! is an [`Observer`] over [`Observed`], instead of one more wrapper that forwards every method
//! of [`Interface`] by hand.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use crate::batch::BatchWrite;
use crate::capabilities::Capabilities;
use crate::error::{Error, Result};
use crate::interface::Interface;
use crate::types::{
    DeleteResponse, GetResponse, Precondition, RangeRequest, RangeResponse, Revision, Ttl,
    WatchRequest, WatchStream,
};

/// One method of [`Interface`], as an [`Observer`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// [`Interface::create`].
    Create,
    /// [`Interface::update`].
    Update,
    /// [`Interface::delete`].
    Delete,
    /// [`Interface::get`].
    Get,
    /// [`Interface::range`].
    Range,
    /// [`Interface::watch`]: it ends when the stream is returned (the watch is established),
    /// not when the stream ends; events are not observed.
    Watch,
    /// [`Interface::compact`].
    Compact,
    /// [`Interface::current_revision`].
    CurrentRevision,
    /// [`Interface::compacted_revision`].
    CompactedRevision,
    /// [`Interface::ready`].
    Ready,
    /// [`Interface::request_progress`].
    RequestProgress,
    /// [`Interface::write_batch`].
    WriteBatch,
}

impl Operation {
    /// Every operation, in the order of the [`Interface`] methods.
    pub const ALL: [Operation; 12] = [
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::Get,
        Operation::Range,
        Operation::Watch,
        Operation::Compact,
        Operation::CurrentRevision,
        Operation::CompactedRevision,
        Operation::Ready,
        Operation::RequestProgress,
        Operation::WriteBatch,
    ];

    /// The method's name, lowercase and stable (fit for a metric label or a log field):
    /// `create`, `update`, `delete`, `get`, `range`, `watch`, `compact`, `current_revision`,
    /// `compacted_revision`, `ready`, `request_progress`, `write_batch`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Get => "get",
            Operation::Range => "range",
            Operation::Watch => "watch",
            Operation::Compact => "compact",
            Operation::CurrentRevision => "current_revision",
            Operation::CompactedRevision => "compacted_revision",
            Operation::Ready => "ready",
            Operation::RequestProgress => "request_progress",
            Operation::WriteBatch => "write_batch",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an observed operation ended.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// The store returned `Ok`.
    Succeeded,
    /// The store returned this error.
    Failed(&'a Error),
    /// The caller dropped the operation before it finished (a timeout, a client that went
    /// away), or the store panicked: no result exists.
    Cancelled,
}

/// What an [`Observer`] learns when an operation ends.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Finished<'a> {
    /// The operation that ended.
    pub operation: Operation,
    /// Time from just after [`Observer::start`] returned until the operation ended.
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: Outcome<'a>,
}

/// Hooks that [`Observed`] calls around every operation of the store it wraps.
///
/// Both hooks run synchronously on the caller's task, so they must be quick and must not
/// block or panic.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use storage_api::{Finished, Observer, Operation, Outcome};
///
/// /// Counts failed writes.
/// #[derive(Debug, Default)]
/// struct FailedWrites(AtomicU64);
///
/// impl Observer for FailedWrites {
///     type Span = bool; // whether the operation is a write
///
///     fn start(&self, operation: Operation, _key: Option<&str>) -> bool {
///         matches!(operation, Operation::Create | Operation::Update | Operation::Delete)
///     }
///
///     fn finish(&self, write: bool, finished: Finished<'_>) {
///         if write && matches!(finished.outcome, Outcome::Failed(_)) {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// # fn wrap(store: std::sync::Arc<dyn storage_api::Interface>) {
/// let store = storage_api::Observed::new(store, FailedWrites::default());
/// # }
/// ```
pub trait Observer: Send + Sync + fmt::Debug {
    /// What the observer keeps about one operation from its start to its end: a metric handle,
    /// a label, a timer, or `()`. Dropped when the operation ends.
    type Span: Send;

    /// Called when an operation starts, before the store is called. `key` is the key (`create`,
    /// `update`, `delete`, `get`), the prefix (`range`) or the watched key or prefix (`watch`);
    /// `None` for operations on the whole store.
    fn start(&self, operation: Operation, key: Option<&str>) -> Self::Span;

    /// Called exactly once for every [`Observer::start`], when that operation ends, with its
    /// span (dropped afterwards unless kept), how long it took and how it ended. The default
    /// does nothing.
    fn finish(&self, span: Self::Span, finished: Finished<'_>) {
        let _ = (span, finished);
    }
}

/// Observes nothing.
impl Observer for () {
    type Span = ();

    fn start(&self, _operation: Operation, _key: Option<&str>) -> Self::Span {}
}

/// Wraps a store and reports each of its operations to an [`Observer`]; the results are
/// passed through untouched.
///
/// [`Interface::capabilities`] is forwarded without being observed (it is not a storage
/// operation). The store is dropped before the observer, so an observer that is a guard (a
/// temporary directory, a permit, a server handle) outlives the store it was made for.
#[derive(Clone, Debug)]
pub struct Observed<S, O> {
    // Field order matters: fields drop in declaration order, the store first.
    inner: S,
    observer: O,
}

impl<S, O> Observed<S, O> {
    /// Wraps `inner`, reporting its operations to `observer`.
    pub const fn new(inner: S, observer: O) -> Self {
        Observed { inner, observer }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }
}

impl<S, O: Observer> Observed<S, O> {
    fn start(&self, operation: Operation, key: Option<&str>) -> Pending<'_, O> {
        let span = self.observer.start(operation, key);
        Pending {
            observer: &self.observer,
            operation,
            started: Instant::now(),
            span: Some(span),
        }
    }
}

/// One operation under way. Ends it as [`Outcome::Cancelled`] if dropped before
/// [`Pending::end`], which is how a dropped future shows up.
struct Pending<'a, O: Observer> {
    observer: &'a O,
    operation: Operation,
    started: Instant,
    span: Option<O::Span>,
}

impl<O: Observer> Pending<'_, O> {
    /// Ends the operation with the store's `result`, and hands the result back.
    fn end<T>(mut self, result: Result<T>) -> Result<T> {
        let outcome = match &result {
            Ok(_) => Outcome::Succeeded,
            Err(error) => Outcome::Failed(error),
        };
        self.finish(outcome);
        result
    }

    fn finish(&mut self, outcome: Outcome<'_>) {
        if let Some(span) = self.span.take() {
            self.observer.finish(
                span,
                Finished {
                    operation: self.operation,
                    elapsed: self.started.elapsed(),
                    outcome,
                },
            );
        }
    }
}

impl<O: Observer> Drop for Pending<'_, O> {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

#[async_trait]
impl<S: Interface, O: Observer> Interface for Observed<S, O> {
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        let pending = self.start(Operation::Create, Some(key));
        pending.end(self.inner.create(key, value, ttl).await)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision> {
        let pending = self.start(Operation::Update, Some(key));
        pending.end(self.inner.update(key, value, precondition, ttl).await)
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse> {
        let pending = self.start(Operation::Delete, Some(key));
        pending.end(self.inner.delete(key, precondition).await)
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        let pending = self.start(Operation::Get, Some(key));
        pending.end(self.inner.get(key, revision).await)
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let pending = self.start(Operation::Range, Some(&request.prefix));
        pending.end(self.inner.range(request).await)
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        let pending = self.start(Operation::Watch, Some(&request.key));
        pending.end(self.inner.watch(request).await)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let pending = self.start(Operation::Compact, None);
        pending.end(self.inner.compact(revision).await)
    }

    async fn current_revision(&self) -> Result<Revision> {
        let pending = self.start(Operation::CurrentRevision, None);
        pending.end(self.inner.current_revision().await)
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let pending = self.start(Operation::CompactedRevision, None);
        pending.end(self.inner.compacted_revision().await)
    }

    async fn ready(&self) -> Result<()> {
        let pending = self.start(Operation::Ready, None);
        pending.end(self.inner.ready().await)
    }

    async fn request_progress(&self) -> Result<()> {
        let pending = self.start(Operation::RequestProgress, None);
        pending.end(self.inner.request_progress().await)
    }

    async fn write_batch(&self, writes: Vec<BatchWrite>) -> Result<Revision> {
        // The first key names the batch in the observer's log fields.
        let first = writes.first().map(|write| write.key().to_owned());
        let pending = self.start(Operation::WriteBatch, first.as_deref());
        pending.end(self.inner.write_batch(writes).await)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use futures::FutureExt;

    use super::{Finished, Observed, Observer, Operation, Outcome};
    use crate::fake::{FAKE_CAPABILITIES, Fake};
    use crate::interface::Interface;
    use crate::types::{Precondition, RangeRequest, WatchRequest};

    /// One ended operation: what it was, on which key, how it ended.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Seen {
        operation: Operation,
        key: Option<String>,
        outcome: &'static str,
    }

    /// Counts operations and failures, and keeps what each span carried to its end.
    #[derive(Debug, Default)]
    struct Counter {
        started: Mutex<u32>,
        seen: Mutex<Vec<(Seen, Duration)>>,
    }

    impl Counter {
        fn seen(&self) -> Vec<Seen> {
            let seen = self.seen.lock().unwrap();
            seen.iter().map(|(seen, _)| seen.clone()).collect()
        }

        fn failures(&self) -> usize {
            self.seen()
                .iter()
                .filter(|seen| seen.outcome == "failed")
                .count()
        }
    }

    impl Observer for Counter {
        type Span = Option<String>;

        fn start(&self, _operation: Operation, key: Option<&str>) -> Self::Span {
            *self.started.lock().unwrap() += 1;
            key.map(str::to_owned)
        }

        fn finish(&self, key: Self::Span, finished: Finished<'_>) {
            let outcome = match finished.outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed(_) => "failed",
                Outcome::Cancelled => "cancelled",
            };
            let seen = Seen {
                operation: finished.operation,
                key,
                outcome,
            };
            self.seen.lock().unwrap().push((seen, finished.elapsed));
        }
    }

    fn seen(operation: Operation, key: Option<&str>, outcome: &'static str) -> Seen {
        Seen {
            operation,
            key: key.map(str::to_owned),
            outcome,
        }
    }

    #[tokio::test]
    async fn every_operation_is_reported_once_with_its_key_and_outcome() {
        let store = Observed::new(Fake, Counter::default());
        store.create("/a", Bytes::new(), None).await.unwrap();
        store.create("/fail", Bytes::new(), None).await.unwrap_err();
        store
            .update("/a", Bytes::new(), Precondition::None, None)
            .await
            .unwrap();
        store.delete("/a", Precondition::None).await.unwrap_err();
        store.get("/a", Some(1)).await.unwrap();
        store
            .range(RangeRequest::prefix("/p/").limit(1))
            .await
            .unwrap();
        drop(store.watch(WatchRequest::prefix("/w/")).await.unwrap());
        store.compact(1).await.unwrap();
        store.current_revision().await.unwrap();
        store.compacted_revision().await.unwrap();
        store.ready().await.unwrap();

        use Operation::*;
        assert_eq!(
            store.observer().seen(),
            vec![
                seen(Create, Some("/a"), "succeeded"),
                seen(Create, Some("/fail"), "failed"),
                seen(Update, Some("/a"), "succeeded"),
                seen(Delete, Some("/a"), "failed"),
                seen(Get, Some("/a"), "succeeded"),
                seen(Range, Some("/p/"), "succeeded"),
                seen(Watch, Some("/w/"), "succeeded"),
                seen(Compact, None, "succeeded"),
                seen(CurrentRevision, None, "succeeded"),
                seen(CompactedRevision, None, "succeeded"),
                seen(Ready, None, "succeeded"),
            ]
        );
        assert_eq!(*store.observer().started.lock().unwrap(), 11);
        assert_eq!(store.observer().failures(), 2);
    }

    #[tokio::test]
    async fn results_pass_through_untouched() {
        let store = Observed::new(Fake, ());
        assert_eq!(store.create("/a", Bytes::new(), None).await.unwrap(), 1);
        assert!(matches!(
            store.create("/fail", Bytes::new(), None).await,
            Err(crate::Error::AlreadyExists { key }) if key == "/fail"
        ));
        assert_eq!(store.get("/a", None).await.unwrap().revision, 3);
        assert_eq!(store.current_revision().await.unwrap(), 5);
    }

    #[tokio::test]
    async fn the_elapsed_time_covers_the_operation() {
        let store = Observed::new(Fake, Counter::default());
        store.get("/slow", None).await.unwrap();
        let seen = store.observer().seen.lock().unwrap();
        assert!(seen[0].1 >= Duration::from_millis(20), "{:?}", seen[0]);
    }

    #[tokio::test]
    async fn a_dropped_operation_ends_as_cancelled() {
        let store = Observed::new(Fake, Counter::default());
        assert!(store.get("/hang", None).now_or_never().is_none());
        assert_eq!(
            store.observer().seen(),
            vec![seen(Operation::Get, Some("/hang"), "cancelled")]
        );
    }

    #[test]
    fn capabilities_are_forwarded_unobserved() {
        let store = Observed::new(Fake, Counter::default());
        assert_eq!(store.capabilities(), FAKE_CAPABILITIES);
        let shared: Arc<dyn Interface> = Arc::new(Fake);
        let store = Observed::new(shared, Counter::default());
        assert_eq!(store.capabilities(), FAKE_CAPABILITIES);
        assert!(store.observer().seen().is_empty());
        assert_eq!(*store.observer().started.lock().unwrap(), 0);
    }

    #[test]
    fn the_store_is_dropped_before_the_observer() {
        #[derive(Debug)]
        struct Logs(&'static str, Arc<Mutex<Vec<&'static str>>>);
        impl Drop for Logs {
            fn drop(&mut self) {
                self.1.lock().unwrap().push(self.0);
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        drop(Observed::new(
            Logs("store", log.clone()),
            Logs("observer", log.clone()),
        ));
        assert_eq!(*log.lock().unwrap(), ["store", "observer"]);
    }

    #[test]
    fn operation_names_are_stable_and_distinct() {
        let names: Vec<_> = Operation::ALL.iter().map(|op| op.as_str()).collect();
        assert_eq!(
            names,
            [
                "create",
                "update",
                "delete",
                "get",
                "range",
                "watch",
                "compact",
                "current_revision",
                "compacted_revision",
                "ready",
                "request_progress",
                "write_batch"
            ]
        );
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), names.len());
        assert_eq!(Operation::CurrentRevision.to_string(), "current_revision");
    }
}
