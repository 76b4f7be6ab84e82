//! Watch fan-out: the writer publishes committed events to registered watchers under one lock;
//! each watch runs a task that first replays history from the log and then forwards live events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use storage_api::{Error, Result, Revision, WatchEvent};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

use crate::reader::{self, Filter, ReaderPool};

/// Log rows one catch-up read scans at most.
const HISTORY_PAGE: u64 = 512;
/// Events buffered between a watch task and its stream, on top of the per-watcher buffer.
const OUTPUT_BUFFER: usize = 64;

/// Registered live watchers and the revision published to them so far.
#[derive(Debug)]
pub(crate) struct Hub {
    inner: Mutex<HubInner>,
    published: AtomicU64,
}

#[derive(Debug)]
struct HubInner {
    watchers: Vec<Live>,
    closed: bool,
}

#[derive(Debug)]
struct Live {
    filter: Filter,
    tx: mpsc::Sender<WatchEvent>,
    overflowed: Arc<AtomicBool>,
}

/// What a new watcher gets from [`Hub::register`].
pub(crate) struct Registration {
    /// Every event above this revision will be pushed live; older ones come from the log.
    pub(crate) live_from: Revision,
    pub(crate) rx: mpsc::Receiver<WatchEvent>,
    pub(crate) overflowed: Arc<AtomicBool>,
}

impl Hub {
    pub(crate) fn new(published: Revision) -> Self {
        Hub {
            inner: Mutex::new(HubInner {
                watchers: Vec::new(),
                closed: false,
            }),
            published: AtomicU64::new(published),
        }
    }

    /// The newest revision whose events have been handed to watchers.
    pub(crate) fn published(&self) -> Revision {
        self.published.load(Ordering::SeqCst)
    }

    /// Hands committed events (in revision order) to every matching watcher. A watcher whose
    /// buffer is full is dropped and marked overflowed, so its stream ends with an error.
    pub(crate) fn publish(&self, events: &[WatchEvent], revision: Revision) {
        let mut inner = self.inner.lock();
        inner.watchers.retain(|watcher| {
            if watcher.tx.is_closed() {
                return false;
            }
            for event in events {
                let Some(key) = event.key() else { continue };
                if !watcher.filter.matches(key) {
                    continue;
                }
                match watcher.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        watcher.overflowed.store(true, Ordering::SeqCst);
                        return false;
                    }
                    Err(TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
        self.published.fetch_max(revision, Ordering::SeqCst);
    }

    /// Registers a live watcher, or `None` when the store is shut down.
    pub(crate) fn register(&self, filter: Filter, buffer: usize) -> Option<Registration> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return None;
        }
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        inner.watchers.push(Live {
            filter,
            tx,
            overflowed: Arc::clone(&overflowed),
        });
        Some(Registration {
            live_from: self.published(),
            rx,
            overflowed,
        })
    }

    /// Ends every watcher (their streams end with [`Error::Unavailable`]).
    pub(crate) fn close(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        inner.watchers.clear();
    }

    /// How many live watchers are registered.
    pub(crate) fn watchers(&self) -> usize {
        self.inner.lock().watchers.len()
    }
}

/// Everything one watch task needs.
pub(crate) struct WatchTask {
    pub(crate) readers: Arc<ReaderPool>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) filter: Filter,
    /// Deliver events strictly after this revision.
    pub(crate) start: Revision,
    pub(crate) registration: Registration,
    pub(crate) progress: Option<Duration>,
    pub(crate) buffer: usize,
}

impl WatchTask {
    /// Spawns the task and returns the receiving end of its stream.
    pub(crate) fn spawn(self) -> mpsc::Receiver<Result<WatchEvent>> {
        let (out, rx) = mpsc::channel(OUTPUT_BUFFER);
        tokio::spawn(self.run(out));
        rx
    }

    async fn run(self, out: mpsc::Sender<Result<WatchEvent>>) {
        let WatchTask {
            readers,
            hub,
            filter,
            start,
            registration,
            progress,
            buffer,
        } = self;
        let Registration {
            live_from,
            rx: mut live,
            overflowed,
        } = registration;
        let mut last = start;
        // Catch-up: (start, live_from] comes from the log, page by page.
        while last < live_from {
            let page_filter = filter.clone();
            let after = last;
            let page = readers
                .read(move |tx| {
                    reader::history(tx, &page_filter, after, live_from, HISTORY_PAGE, start)
                })
                .await;
            match page {
                Ok(page) => {
                    for event in page.events {
                        if out.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    last = page.scanned_to;
                }
                Err(error) => {
                    let _ = out.send(Err(error)).await;
                    return;
                }
            }
        }
        let mut ticker = progress.map(|period| {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let ended = |overflowed: &AtomicBool| {
            if overflowed.load(Ordering::SeqCst) {
                Error::unavailable(format!(
                    "watcher fell behind: more than {buffer} events were waiting to be read; \
                     resume from the revision of the last event seen"
                ))
            } else {
                Error::unavailable("the store was closed")
            }
        };
        loop {
            tokio::select! {
                event = live.recv() => match event {
                    Some(event) => {
                        if event.revision() <= last {
                            continue;
                        }
                        last = event.revision();
                        if out.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        let _ = out.send(Err(ended(&overflowed))).await;
                        return;
                    }
                },
                () = tick(&mut ticker) => {
                    // Everything published up to `published` is already in `live`: drain it
                    // first so the progress event never overtakes an event.
                    let published = hub.published();
                    loop {
                        match live.try_recv() {
                            Ok(event) => {
                                if event.revision() <= last {
                                    continue;
                                }
                                last = event.revision();
                                if out.send(Ok(event)).await.is_err() {
                                    return;
                                }
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                let _ = out.send(Err(ended(&overflowed))).await;
                                return;
                            }
                        }
                    }
                    let revision = published.max(last);
                    if out.send(Ok(WatchEvent::Progress { revision })).await.is_err() {
                        return;
                    }
                }
                () = out.closed() => return,
            }
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
