//! Watch fan-out: the registry the writer publishes into, and the per-watch cursor that
//! replays history from the log and then hands over to live events.
//!
//! Hand-over without gap or duplicate: the writer sends a batch's events to every registered
//! watcher and only then raises `published`, both under the registry lock. A watch registers
//! under that lock and reads `published` there: every event up to that revision was published
//! before (so it is in the log, and the cursor reads it from there), every later one is sent to
//! its channel. Live events at or below the last revision the cursor covered are skipped.
//!
//! A watcher whose channel is full is dropped from the registry and flagged; its stream yields
//! the buffered events and then a terminal `Unavailable`, never a silent gap.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use storage_api::{Error, Result, Revision, WatchEvent, WatchRequest, WatchStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::read::{self, Filter};
use crate::store::Shared;

/// Log entries read per catch-up step.
const CATCH_UP_CHUNK: usize = 512;

/// One registered watcher.
#[derive(Debug)]
struct Slot {
    filter: Filter,
    sender: mpsc::Sender<WatchEvent>,
    overflowed: Arc<AtomicBool>,
}

/// The registered watchers.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    slots: Vec<Slot>,
}

impl Hub {
    /// Sends `events` (in revision order) to every watcher that wants them. Watchers that are
    /// gone are removed; watchers that are full are flagged and removed.
    pub fn send(&mut self, events: &[WatchEvent]) {
        self.slots.retain(|slot| {
            if slot.sender.is_closed() {
                return false;
            }
            for event in events {
                let wanted = event.key().is_some_and(|key| slot.filter.matches(key));
                if !wanted {
                    continue;
                }
                match slot.sender.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        slot.overflowed.store(true, Ordering::SeqCst);
                        tracing::warn!(key = %slot.filter.key, "sled watcher too slow, ending it");
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }

    /// Drops every watcher (the store is closing): their streams end with `Unavailable`.
    pub fn close_all(&mut self) {
        self.slots.clear();
    }
}

/// Validates the start revision and builds the stream.
pub(crate) fn start(shared: &Arc<Shared>, request: WatchRequest) -> Result<WatchStream> {
    let filter = Filter {
        key: request.key,
        prefix: request.prefix,
    };
    let progress = request
        .progress_notify
        .then_some(shared.options.progress_interval);
    let mut cursor = Cursor {
        shared: Arc::downgrade(shared),
        filter,
        pos: 0,
        limit: 0,
        live: None,
        pending: VecDeque::new(),
        progress: progress.map(|every| (every, Instant::now() + every)),
        delivered: 0,
        done: false,
    };
    match request.start_revision {
        None => cursor.pos = cursor.register(shared),
        Some(start) => {
            let current = shared.published.load(Ordering::SeqCst);
            let compacted = shared.compacted.load(Ordering::SeqCst);
            if start < compacted {
                return Err(Error::Compacted {
                    requested: start,
                    compacted,
                });
            }
            // A start above the current revision is allowed: the cursor registers at once and
            // skips live events up to `start`.
            cursor.pos = start;
            cursor.limit = current.min(start);
        }
    }
    Ok(Box::pin(futures::stream::unfold(
        cursor,
        |mut cursor| async move { cursor.next().await.map(|item| (item, cursor)) },
    )))
}

/// The live part of a watch, once registered.
struct Live {
    receiver: mpsc::Receiver<WatchEvent>,
    overflowed: Arc<AtomicBool>,
}

/// The state of one watch stream.
struct Cursor {
    /// Weak, so that a forgotten stream does not keep the database (and its lock) open.
    shared: Weak<Shared>,
    filter: Filter,
    /// Every event up to this revision has been delivered or queued in `pending`.
    pos: Revision,
    /// History is read from the log up to this revision.
    limit: Revision,
    live: Option<Live>,
    pending: VecDeque<WatchEvent>,
    progress: Option<(Duration, Instant)>,
    /// The revision of the last event returned (progress never reports less).
    delivered: Revision,
    done: bool,
}

impl Cursor {
    /// Registers with the hub; history up to the returned (published) revision must be read
    /// from the log, everything after arrives on the channel.
    fn register(&mut self, shared: &Shared) -> Revision {
        let (sender, receiver) = mpsc::channel(shared.options.watch_buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut hub = shared.hub();
        hub.slots.push(Slot {
            filter: self.filter.clone(),
            sender,
            overflowed: Arc::clone(&overflowed),
        });
        let published = shared.published.load(Ordering::SeqCst);
        drop(hub);
        self.limit = published;
        self.live = Some(Live {
            receiver,
            overflowed,
        });
        published
    }

    fn closed() -> Error {
        Error::unavailable("the sled store was closed")
    }

    fn fail(&mut self, error: Error) -> Option<Result<WatchEvent>> {
        self.done = true;
        self.pending.clear();
        self.live = None;
        Some(Err(error))
    }

    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                self.delivered = event.revision();
                return Some(Ok(event));
            }
            if self.pos < self.limit {
                if let Err(error) = self.catch_up().await {
                    return self.fail(error);
                }
                continue;
            }
            if self.live.is_none() {
                let Some(shared) = self.shared.upgrade() else {
                    return self.fail(Self::closed());
                };
                self.register(&shared);
                continue;
            }
            return self.next_live().await;
        }
    }

    /// Reads the next chunk of history `(pos, limit]` from the log.
    async fn catch_up(&mut self) -> Result<()> {
        let shared = self.shared.upgrade().ok_or_else(Self::closed)?;
        let filter = self.filter.clone();
        let (after, upto) = (self.pos, self.limit);
        let (events, last) = tokio::task::spawn_blocking(move || {
            read::events(&shared, &filter, after, upto, CATCH_UP_CHUNK)
        })
        .await
        .map_err(|e| Error::internal_from("sled watch catch-up task failed", e))??;
        self.pending.extend(events);
        self.pos = last;
        if self.live.is_none() && self.pos >= self.limit {
            // Caught up with what was published when this step began; history may have grown
            // meanwhile, so continue until registered (`register` moves `limit` forward).
            if let Some(shared) = self.shared.upgrade() {
                let published = shared.published.load(Ordering::SeqCst);
                if published.saturating_sub(self.pos) > CATCH_UP_CHUNK as u64 {
                    self.limit = published;
                } else {
                    self.register(&shared);
                }
            }
        }
        Ok(())
    }

    async fn next_live(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            let progress_at = self.progress.map(|(_, at)| at);
            let Some(live) = self.live.as_mut() else {
                return self.fail(Self::closed());
            };
            let received = match progress_at {
                Some(at) => {
                    tokio::select! {
                        received = live.receiver.recv() => Some(received),
                        () = tokio::time::sleep_until(at) => None,
                    }
                }
                None => Some(live.receiver.recv().await),
            };
            let received = match received {
                Some(received) => received,
                None => {
                    // Progress is due: report the published revision if nothing published up to
                    // it is still waiting in the channel.
                    let published = self
                        .shared
                        .upgrade()
                        .map(|shared| shared.published.load(Ordering::SeqCst));
                    if let Some((every, at)) = self.progress.as_mut() {
                        *at = Instant::now() + *every;
                    }
                    match live.receiver.try_recv() {
                        Ok(event) => Some(event),
                        Err(mpsc::error::TryRecvError::Empty) => match published {
                            Some(published) => {
                                return Some(Ok(WatchEvent::Progress {
                                    revision: published.max(self.delivered),
                                }));
                            }
                            None => None,
                        },
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    }
                }
            };
            match received {
                Some(event) => {
                    let revision = event.revision();
                    if revision <= self.pos {
                        continue;
                    }
                    self.pos = revision;
                    self.delivered = revision;
                    return Some(Ok(event));
                }
                None => {
                    let error = if live.overflowed.load(Ordering::SeqCst) {
                        Error::unavailable(format!(
                            "watch on {:?} fell more than {} events behind; resume from \
                             revision {}",
                            self.filter.key,
                            live.receiver.max_capacity(),
                            self.pos
                        ))
                    } else {
                        Self::closed()
                    };
                    return self.fail(error);
                }
            }
        }
    }
}
