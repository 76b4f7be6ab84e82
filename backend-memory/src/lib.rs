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
mod watch;

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use storage_api::{
    Capabilities, DeleteResponse, Error, GetResponse, Interface, Precondition, RangeRequest,
    RangeResponse, Result, Revision, Ttl, WatchEvent, WatchRequest, WatchStream, validate_key,
    validate_prefix,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::expiry::Expiry;
use crate::mvcc::Mvcc;
use crate::watch::{Filter, Watchers};

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
    /// Wakes the background task when a new deadline or progress watcher appears.
    wakeup: Arc<Notify>,
    background: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct State {
    mvcc: Mvcc,
    watchers: Watchers,
    expiry: Expiry,
}

impl State {
    /// Applies the bookkeeping every committed write shares: TTL, fan-out, auto-compaction.
    fn committed(&mut self, event: &WatchEvent, ttl: Ttl, retain: Option<u64>) {
        if let Some(key) = event.key() {
            match event {
                WatchEvent::Delete { .. } => self.expiry.remove(key),
                _ => self.expiry.set(key, ttl, Instant::now()),
            }
        }
        self.watchers.publish(event);
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
                state: Mutex::new(State::default()),
                wakeup: Arc::new(Notify::new()),
                background: Mutex::new(None),
            }),
        }
    }

    /// Makes sure the task that expires TTLs and sends progress events runs on the current
    /// runtime. Called from async methods, so a runtime is always there.
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
            state.committed(&event, ttl, self.shared.options.retain_revisions);
            event
        };
        if ttl.is_some() {
            self.ensure_background();
        }
        Ok(event)
    }
}

/// Expires TTLs and sends progress events until the store is dropped.
async fn run_background(shared: Weak<Shared>) {
    let mut next_progress = Instant::now();
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let (deadline, wants_progress) = {
            let mut state = strong.state.lock();
            for key in state.expiry.take_due(now) {
                match state.mvcc.delete(&key, Precondition::None) {
                    Ok(event) => {
                        tracing::debug!(key, revision = event.revision(), "TTL expired");
                        state.committed(&event, None, strong.options.retain_revisions);
                    }
                    Err(error) => tracing::warn!(key, %error, "could not expire key"),
                }
            }
            let wants_progress = state.watchers.wants_progress();
            if wants_progress && now >= next_progress {
                let revision = state.mvcc.revision();
                state.watchers.notify_progress(revision);
                next_progress = now + strong.options.progress_interval;
            }
            let mut deadline = now + Duration::from_secs(3600);
            if let Some(expiry) = state.expiry.next() {
                deadline = deadline.min(expiry);
            }
            if wants_progress {
                deadline = deadline.min(next_progress);
            }
            (deadline, wants_progress)
        };
        if !wants_progress {
            // A progress watcher registered later should get its first event one interval on.
            next_progress = now + strong.options.progress_interval;
        }
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
        validate_prefix(&request.prefix)?;
        if let Some(start) = &request.start {
            if !start.starts_with(request.prefix.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "range start {start:?} is outside the prefix {:?}",
                    request.prefix
                )));
            }
        }
        self.shared.state.lock().mvcc.range(&request)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        if request.prefix {
            validate_prefix(&request.key)?;
        } else {
            validate_key(&request.key)?;
        }
        let stream = {
            let mut state = self.shared.state.lock();
            let current = state.mvcc.revision();
            let after = request.start_revision.unwrap_or(current);
            // The replay covers (after, current]; live delivery everything above both.
            let filter = Filter {
                key: request.key,
                prefix: request.prefix,
                after: after.max(current),
                progress: request.progress_notify,
            };
            let replay = if after < current {
                state.mvcc.events_after(after, |key| filter.matches(key))?
            } else {
                Vec::new()
            };
            state
                .watchers
                .register(filter, replay, self.shared.options.watch_buffer)
        };
        if request.progress_notify {
            self.ensure_background();
        }
        Ok(stream)
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

    /// TTLs (expiry task), progress events (`progress_interval`) and compaction (history is
    /// dropped below the compaction revision): every optional capability.
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
}
