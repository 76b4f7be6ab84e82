//! Watch fan-out: a bounded buffer per watcher, filled by the writer while it holds the store
//! lock, so every watcher sees events in commit order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use storage_api::{Error, Revision, WatchEvent, WatchStream};
use tokio::sync::mpsc;

/// What one watcher wants.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) key: String,
    pub(crate) prefix: bool,
    /// Events at or below this revision were already replayed from the log.
    pub(crate) after: Revision,
    pub(crate) progress: bool,
}

impl Filter {
    pub(crate) fn matches(&self, key: &str) -> bool {
        if self.prefix {
            key.starts_with(self.key.as_str())
        } else {
            key == self.key
        }
    }
}

#[derive(Debug)]
struct Watcher {
    filter: Filter,
    sender: mpsc::Sender<WatchEvent>,
    overflowed: Arc<AtomicBool>,
}

/// Every live watcher of one store.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    next_id: u64,
    watchers: HashMap<u64, Watcher>,
}

impl Watchers {
    /// Registers a watcher and returns its stream, which first yields `replay` and then live
    /// events. Must be called under the same lock as [`Watchers::publish`], right after `replay`
    /// was read from the log, so nothing falls between the two.
    pub(crate) fn register(
        &mut self,
        filter: Filter,
        replay: Vec<WatchEvent>,
        buffer: usize,
    ) -> WatchStream {
        let (sender, receiver) = mpsc::channel(buffer.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        self.next_id += 1;
        self.watchers.insert(
            self.next_id,
            Watcher {
                filter,
                sender,
                overflowed: overflowed.clone(),
            },
        );
        let live = futures::stream::unfold(
            (receiver, overflowed, false),
            |(mut receiver, overflowed, finished)| async move {
                if finished {
                    return None;
                }
                match receiver.recv().await {
                    Some(event) => Some((Ok(event), (receiver, overflowed, false))),
                    None if overflowed.load(Ordering::Acquire) => Some((
                        Err(Error::unavailable(
                            "watch closed: the consumer fell behind and its buffer filled up; \
                             resume from the revision of the last event received",
                        )),
                        (receiver, overflowed, true),
                    )),
                    None => None,
                }
            },
        );
        Box::pin(futures::stream::iter(replay.into_iter().map(Ok)).chain(live))
    }

    /// Hands `event` to every watcher it matches. A watcher whose buffer is full is dropped and
    /// its stream ends with an error; a watcher whose stream was dropped is removed.
    pub(crate) fn publish(&mut self, event: &WatchEvent) {
        let Some(key) = event.key() else { return };
        let revision = event.revision();
        self.watchers.retain(|_, watcher| {
            if revision <= watcher.filter.after || !watcher.filter.matches(key) {
                return !watcher.sender.is_closed();
            }
            match watcher.sender.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    watcher.overflowed.store(true, Ordering::Release);
                    tracing::debug!(revision, "dropping a watcher whose buffer is full");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Sends a progress event at `revision` to every watcher that asked for them. A full buffer
    /// skips the notification: the watcher has events to read, so it is not idle.
    pub(crate) fn notify_progress(&mut self, revision: Revision) {
        self.watchers.retain(|_, watcher| {
            if watcher.filter.progress && revision >= watcher.filter.after {
                let progress = WatchEvent::Progress { revision };
                if let Err(mpsc::error::TrySendError::Closed(_)) = watcher.sender.try_send(progress)
                {
                    return false;
                }
            }
            !watcher.sender.is_closed()
        });
    }

    /// Whether any watcher asked for progress events.
    pub(crate) fn wants_progress(&self) -> bool {
        self.watchers
            .values()
            .any(|watcher| watcher.filter.progress)
    }
}
