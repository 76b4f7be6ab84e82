//! An in-memory MVCC implementation of [`storage_api::Interface`].
//!
//! Not a hash map: it keeps every version of every key since the last compaction, so reads at an
//! exact past revision, paged ranges pinned to one revision and watch replay from an old revision
//! all work exactly as on the durable backends. Use it for tests, for embedding where durability
//! does not matter, and as the reference the conformance suite is developed against.
//!
//! History grows until compacted: call [`storage_api::Interface::compact`], or set
//! [`MemoryOptions::retain_revisions`] to compact automatically.

mod expiry;
mod mvcc;

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use storage_api::{
    BatchWrite, Capabilities, DeleteResponse, Error, GetResponse, HistoryPage, HistoryRead,
    Interface, Precondition, RangeRequest, RangeResponse, Result, Revision, Ttl, WatchEvent,
    WatchHistory, WatchHub, WatchRequest, WatchSettings, WatchStream, validate_batch, validate_key,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::expiry::Expiry;
use crate::mvcc::Mvcc;

/// Settings of a [`MemoryStore`].
#[derive(Clone, Debug)]
pub struct MemoryOptions {
    /// Events buffered per watcher before a watcher that does not read is closed with an error.
    pub watch_buffer: usize,
    /// How often idle watchers that asked for it get a progress event.
    pub progress_interval: Duration,
    /// Keep about this many revisions of history and compact older ones automatically
    /// (compaction runs when twice as many have accumulated). `None` keeps everything until
    /// [`Interface::compact`] is called.
    pub retain_revisions: Option<u64>,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            watch_buffer: 1024,
            progress_interval: Duration::from_secs(5),
            retain_revisions: Some(10_000),
        }
    }
}

/// The in-memory store. Cheap to clone: clones share the same data.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    options: MemoryOptions,
    state: Mutex<State>,
    /// Wakes the background task when a new TTL deadline appears.
    wakeup: Arc<Notify>,
    background: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    /// The last handle to the store is gone: its watches end with `Unavailable` instead of
    /// waiting forever for writes that cannot come (each stream holds the hub, not the store).
    fn drop(&mut self) {
        self.state.get_mut().hub.close();
    }
}

#[derive(Debug)]
struct State {
    mvcc: Mvcc,
    /// The watchers. Published to under the state lock, so they see writes in commit order.
    hub: Arc<WatchHub>,
    expiry: Expiry,
}

impl State {
    /// Applies the bookkeeping every committed write shares: TTL, fan-out, auto-compaction.
    /// `events` share one revision (one write, or one batch); `ttl` applies to their puts.
    fn committed(&mut self, events: &[WatchEvent], ttl: Ttl, retain: Option<u64>) {
        let now = Instant::now();
        for event in events {
            if let Some(key) = event.key() {
                match event {
                    WatchEvent::Delete { .. } => self.expiry.remove(key),
                    _ => self.expiry.set(key, ttl, now),
                }
            }
        }
        self.hub.publish(events, self.mvcc.revision());
        if let Some(retain) = retain {
            let revision = self.mvcc.revision();
            if revision.saturating_sub(self.mvcc.compacted()) > retain.saturating_mul(2) {
                // Cannot fail: the target is above the compaction revision and not in the future.
                let _ = self.mvcc.compact(revision - retain);
            }
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(MemoryOptions::default())
    }
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new(options: MemoryOptions) -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                options,
                state: Mutex::new(State {
                    mvcc: Mvcc::default(),
                    hub: Arc::new(WatchHub::new(0)),
                    expiry: Expiry::default(),
                }),
                wakeup: Arc::new(Notify::new()),
                background: Mutex::new(None),
            }),
        }
    }

    /// Makes sure the task that expires TTLs runs on the current runtime. Called from async methods, so a runtime is always there.
    fn ensure_background(&self) {
        let mut background = self.shared.background.lock();
        if background.as_ref().is_some_and(|task| !task.is_finished()) {
            self.shared.wakeup.notify_one();
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        *background = Some(tokio::spawn(run_background(weak)));
    }

    fn write(
        &self,
        ttl: Ttl,
        apply: impl FnOnce(&mut Mvcc) -> Result<WatchEvent>,
    ) -> Result<WatchEvent> {
        let event = {
            let mut state = self.shared.state.lock();
            let event = apply(&mut state.mvcc)?;
            let events = std::slice::from_ref(&event);
            state.committed(events, ttl, self.shared.options.retain_revisions);
            event
        };
        if ttl.is_some() {
            self.ensure_background();
        }
        Ok(event)
    }
}

/// Expires TTLs until the store is dropped.
async fn run_background(shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let deadline = {
            let mut state = strong.state.lock();
            for key in state.expiry.take_due(now) {
                match state.mvcc.delete(&key, Precondition::None) {
                    Ok(event) => {
                        tracing::debug!(key, revision = event.revision(), "TTL expired");
                        let events = std::slice::from_ref(&event);
                        state.committed(events, None, strong.options.retain_revisions);
                    }
                    Err(error) => tracing::warn!(key, %error, "could not expire key"),
                }
            }
            let idle = now + Duration::from_secs(3600);
            state.expiry.next().map_or(idle, |expiry| expiry.min(idle))
        };
        let wakeup = strong.wakeup.clone();
        drop(strong);
        // `notify_one` stores a permit when nobody waits, so a wake-up sent since the state was
        // read is not lost.
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = wakeup.notified() => {}
        }
    }
}

/// The store's event log as a watch history. Weak, so a forgotten stream does not keep the
/// store's data alive.
struct LogHistory {
    shared: Weak<Shared>,
}

#[async_trait]
impl WatchHistory for LogHistory {
    async fn read(&self, read: HistoryRead<'_>) -> Result<HistoryPage> {
        let shared = self
            .shared
            .upgrade()
            .ok_or_else(|| Error::unavailable("the memory store was dropped"))?;
        let state = shared.state.lock();
        state
            .mvcc
            .events_between(read.after, read.until, read.budget, |key| {
                read.filter.matches(key)
            })
    }
}

#[async_trait]
impl Interface for MemoryStore {
    #[tracing::instrument(level = "debug", skip(self, value), fields(len = value.len()))]
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        validate_key(key)?;
        Ok(self.write(ttl, |mvcc| mvcc.create(key, value))?.revision())
    }

    #[tracing::instrument(level = "debug", skip(self, value), fields(len = value.len()))]
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision> {
        validate_key(key)?;
        Ok(self
            .write(ttl, |mvcc| mvcc.update(key, value, precondition))?
            .revision())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse> {
        validate_key(key)?;
        match self.write(None, |mvcc| mvcc.delete(key, precondition))? {
            WatchEvent::Delete { revision, prev, .. } => Ok(DeleteResponse { revision, prev }),
            other => Err(Error::internal(format!(
                "delete produced a non-delete event {other:?}"
            ))),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        validate_key(key)?;
        let (revision, kv) = self.shared.state.lock().mvcc.get(key, revision)?;
        Ok(GetResponse { revision, kv })
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        request.validate()?;
        self.shared.state.lock().mvcc.range(&request)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        request.validate()?;
        let hub = {
            let state = self.shared.state.lock();
            let compacted = state.mvcc.compacted();
            if let Some(start) = request.start_revision {
                if start < compacted {
                    return Err(Error::Compacted {
                        requested: start,
                        compacted,
                    });
                }
            }
            Arc::clone(&state.hub)
        };
        let history = Arc::new(LogHistory {
            shared: Arc::downgrade(&self.shared),
        });
        let settings = WatchSettings {
            buffer: self.shared.options.watch_buffer,
            progress_interval: self.shared.options.progress_interval,
        };
        Ok(hub.watch(&request, history, settings))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    #[tracing::instrument(level = "debug", skip_all, fields(writes = writes.len()))]
    async fn write_batch(&self, writes: Vec<BatchWrite>) -> Result<Revision> {
        validate_batch(&writes, usize::MAX)?;
        let mut state = self.shared.state.lock();
        let events = state.mvcc.apply_batch(writes)?;
        state.committed(&events, None, self.shared.options.retain_revisions);
        Ok(state.mvcc.revision())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.shared.state.lock().mvcc.compact(revision)
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.state.lock().mvcc.revision())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.state.lock().mvcc.compacted())
    }

    async fn ready(&self) -> Result<()> {
        Ok(())
    }

    async fn request_progress(&self) -> Result<()> {
        self.shared.state.lock().hub.request_progress();
        Ok(())
    }

    /// TTLs (expiry task), progress events (every `progress_interval` and on request) and
    /// compaction (history is dropped below the compaction revision): every optional capability.
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::StreamExt;

    use super::*;

    /// Dropping the last handle ends the store's watches instead of leaving them waiting.
    #[tokio::test]
    async fn dropping_the_store_ends_its_watches() {
        let store = MemoryStore::default();
        store
            .create("/a/1", Bytes::from_static(b"x"), None)
            .await
            .unwrap();
        let mut live = store.watch(WatchRequest::prefix("/a/")).await.unwrap();
        let mut replay = store
            .watch(WatchRequest::prefix("/a/").after(0))
            .await
            .unwrap();
        drop(store);
        assert!(matches!(
            live.next().await,
            Some(Err(Error::Unavailable { .. }))
        ));
        // A watch that had not registered yet finds the history gone.
        assert!(matches!(
            replay.next().await,
            Some(Err(Error::Unavailable { .. }))
        ));
        assert!(live.next().await.is_none());
    }
}
