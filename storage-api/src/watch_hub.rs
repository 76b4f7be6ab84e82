//! One watch fan-out for backends that commit writes themselves (memory, SQLite, sled, yours):
//! the backend's writer publishes each committed batch of events to a [`WatchHub`], and every
//! watch reads what was committed before it joined from the backend's [`WatchHistory`], then
//! follows live events.
//!
//! Hand-over without gap or duplicate: [`WatchHub::publish`] hands a batch to every registered
//! watcher and only then raises [`WatchHub::published`], both under the hub's lock. A watch
//! registers under that lock and reads `published` there: every event up to that revision was
//! committed before (so the history has it), every later one arrives on the watch's channel.
//! A watch reads history first and registers only once it is within one page of `published`,
//! so a long replay does not fill its live buffer; live events at or below the last revision
//! it covered are skipped.
//!
//! A watcher whose buffer is full is dropped from the hub and flagged: its stream yields the
//! events already buffered and then a terminal [`Error::Unavailable`], never a silent gap. So
//! does every watcher of a hub that is [closed](WatchHub::close).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::progress::{ProgressRequests, ProgressSubscription};
use crate::types::{KeyFilter, Revision, WatchEvent, WatchRequest, WatchStream};

/// Log entries one history read scans at most, and the distance from `published` within
/// which a catching-up watch registers for live events.
pub const HISTORY_PAGE: usize = 512;

/// Where a watch reads the events committed before it registered: the backend's log.
#[async_trait]
pub trait WatchHistory: Send + Sync + 'static {
    /// The events `read.filter` matches with revisions in `(read.after, read.until]`, in
    /// revision order, scanning at most about `read.budget` log entries. Every revision up to
    /// `until` is committed when this is called. A page ends between revisions: when several
    /// events share one revision, all of them or none are in it. Fails with
    /// [`Error::Compacted`] when `after` is below the compaction revision.
    async fn read(&self, read: HistoryRead<'_>) -> Result<HistoryPage>;
}

/// One page to read from a [`WatchHistory`].
#[derive(Clone, Copy, Debug)]
pub struct HistoryRead<'a> {
    /// The keys the watch wants.
    pub filter: &'a KeyFilter,
    /// Events after this revision (exclusive).
    pub after: Revision,
    /// Events up to this revision (inclusive).
    pub until: Revision,
    /// About how many log entries to scan at most.
    pub budget: usize,
}

/// One page of history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// The matching events, in revision order.
    pub events: Vec<WatchEvent>,
    /// The revision the read covered up to: `until` when it reached the end of the range,
    /// else the revision of the last log entry it scanned (greater than `after`).
    pub scanned_to: Revision,
}

/// How the watches of one hub behave.
#[derive(Clone, Copy, Debug)]
pub struct WatchSettings {
    /// Live events buffered per watcher before a watcher that does not read is ended.
    pub buffer: usize,
    /// How often an idle watch that asked for progress events gets one.
    pub progress_interval: Duration,
}

/// The registered watchers of one store, and the newest revision handed to them.
#[derive(Debug)]
pub struct WatchHub {
    registry: Mutex<Registry>,
    published: AtomicU64,
    /// Announces [`WatchHub::request_progress`] to the watches that want progress.
    progress_requests: ProgressRequests,
}

#[derive(Debug, Default)]
struct Registry {
    watchers: Vec<Slot>,
    closed: bool,
}

/// One registered watcher.
#[derive(Debug)]
struct Slot {
    filter: KeyFilter,
    sender: mpsc::Sender<WatchEvent>,
    overflowed: Arc<AtomicBool>,
}

/// The receiving side of a registered watcher.
struct Live {
    receiver: mpsc::Receiver<WatchEvent>,
    overflowed: Arc<AtomicBool>,
}

impl WatchHub {
    /// A hub whose history is complete up to `published` (the store's current revision when
    /// it opens).
    pub fn new(published: Revision) -> Self {
        WatchHub {
            registry: Mutex::new(Registry::default()),
            published: AtomicU64::new(published),
            progress_requests: ProgressRequests::default(),
        }
    }

    /// Makes every live watch that asked for progress events report its progress as soon as
    /// it has delivered what is already handed to it ([`crate::Interface::request_progress`]
    /// for backends built on the hub).
    pub fn request_progress(&self) {
        self.progress_requests.request();
    }

    /// The newest revision whose events have been handed to the watchers: every write up to
    /// it is committed. Backends that publish every commit can serve their current revision
    /// from it.
    pub fn published(&self) -> Revision {
        self.published.load(Ordering::SeqCst)
    }

    /// Hands committed `events` (in revision order) to every watcher that wants them, then
    /// raises [`WatchHub::published`] to `revision`. Call it once per committed batch, in
    /// commit order, after the commit is durable; `events` may be empty (a batch of failed
    /// writes). Never blocks on a watcher: a full one is ended instead.
    pub fn publish(&self, events: &[WatchEvent], revision: Revision) {
        let mut registry = self.registry.lock();
        if !events.is_empty() {
            registry.watchers.retain(|slot| slot.send(events));
        }
        self.published.fetch_max(revision, Ordering::SeqCst);
    }

    /// Ends every watch (their streams end with [`Error::Unavailable`]) and refuses new ones:
    /// the store is shutting down.
    pub fn close(&self) {
        let mut registry = self.registry.lock();
        registry.closed = true;
        registry.watchers.clear();
    }

    /// Ends every current watch as [`WatchHub::close`] does, but keeps taking new ones: for a
    /// store that lost history its watchers already saw (they resume from their last revision,
    /// and a store that marked it compacted answers `Compacted`, so they list again).
    pub fn end_watches(&self) {
        self.registry.lock().watchers.clear();
    }

    /// How many watchers are registered for live events (a dropped stream is counted until
    /// the next batch with events is published).
    pub fn watchers(&self) -> usize {
        self.registry.lock().watchers.len()
    }

    /// A watch stream for `request` (validated by the caller, including its start revision
    /// against compaction, so those errors are returned up front), reading earlier events from
    /// `history`. History is read as the stream is polled, so a compaction that overtakes a
    /// slow replay ends the stream with [`Error::Compacted`] as its terminal item.
    pub fn watch(
        self: &Arc<Self>,
        request: &WatchRequest,
        history: Arc<dyn WatchHistory>,
        settings: WatchSettings,
    ) -> WatchStream {
        let mut cursor = Cursor {
            hub: Arc::clone(self),
            history,
            filter: request.filter(),
            start: request.start_revision,
            pos: 0,
            limit: 0,
            live: None,
            pending: VecDeque::new(),
            // tokio's channels hold at most this many messages.
            buffer: settings
                .buffer
                .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            progress: request.progress_notify.then(|| {
                let every = settings.progress_interval;
                (every, after(every))
            }),
            progress_requests: self.progress_requests.subscribe(request.progress_notify),
            progress_owed: false,
            delivered: 0,
            skip_through: request.start_revision.unwrap_or(0),
            closed_at_start: false,
            done: false,
        };
        match request.start_revision {
            // "From now": register at once; everything after this revision is live.
            None => match cursor.register() {
                Some(live_from) => cursor.pos = live_from,
                // A closed hub: the stream's first item is the terminal error.
                None => cursor.closed_at_start = true,
            },
            Some(start) => cursor.pos = start,
        }
        Box::pin(futures::stream::unfold(cursor, |mut cursor| async move {
            cursor.next().await.map(|item| (item, cursor))
        }))
    }

    /// Registers a watcher; `None` when the hub is closed. Returns the receiver and the
    /// revision from which on events arrive live.
    fn register(&self, filter: KeyFilter, buffer: usize) -> Option<(Live, Revision)> {
        let mut registry = self.registry.lock();
        if registry.closed {
            return None;
        }
        let (sender, receiver) = mpsc::channel(buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        registry.watchers.push(Slot {
            filter,
            sender,
            overflowed: Arc::clone(&overflowed),
        });
        // Read under the lock: no batch can be half handed out now.
        let live_from = self.published();
        Some((
            Live {
                receiver,
                overflowed,
            },
            live_from,
        ))
    }
}

impl Slot {
    /// Sends the events this watcher wants; `false` when it must leave the hub (gone, or full
    /// and flagged).
    fn send(&self, events: &[WatchEvent]) -> bool {
        if self.sender.is_closed() {
            return false;
        }
        for event in events {
            if !event.key().is_some_and(|key| self.filter.matches(key)) {
                continue;
            }
            match self.sender.try_send(event.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.overflowed.store(true, Ordering::SeqCst);
                    tracing::debug!(
                        key = %self.filter.key,
                        revision = event.revision(),
                        "ending a watcher whose buffer is full"
                    );
                    return false;
                }
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        true
    }
}

/// The state of one watch stream.
struct Cursor {
    hub: Arc<WatchHub>,
    history: Arc<dyn WatchHistory>,
    filter: KeyFilter,
    /// The start revision the client asked for (for the compaction error it may get).
    start: Option<Revision>,
    /// Every event up to this revision has been delivered or is queued in `pending`.
    pos: Revision,
    /// Once registered: history is read up to this revision, later events arrive live.
    limit: Revision,
    live: Option<Live>,
    pending: VecDeque<WatchEvent>,
    buffer: usize,
    /// The progress period and when the next progress event is due.
    progress: Option<(Duration, Instant)>,
    /// Progress requests, for watches that want progress events.
    progress_requests: ProgressSubscription,
    /// A progress event is due (period over, or requested) once the buffer is drained.
    progress_owed: bool,
    /// The revision of the last event returned (a progress event never reports less).
    delivered: Revision,
    /// Live events at or below this revision were read from history or come before the
    /// start: fixed at registration (`max(start, live_from)`), so several events sharing one
    /// revision all pass.
    skip_through: Revision,
    /// The hub was closed before a "from now" watch could register.
    closed_at_start: bool,
    done: bool,
}

impl Cursor {
    /// Registers for live events; returns the revision from which on they arrive live.
    fn register(&mut self) -> Option<Revision> {
        let (live, live_from) = self.hub.register(self.filter.clone(), self.buffer)?;
        self.live = Some(live);
        self.limit = live_from;
        self.skip_through = self.skip_through.max(live_from);
        Some(live_from)
    }

    fn fail(&mut self, error: Error) -> Option<Result<WatchEvent>> {
        self.done = true;
        self.pending.clear();
        self.live = None;
        Some(Err(error))
    }

    fn closed() -> Error {
        Error::unavailable("the store ended this watch; resume from its last revision")
    }

    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if self.done {
                return None;
            }
            if self.closed_at_start {
                return self.fail(Self::closed());
            }
            if let Some(event) = self.pending.pop_front() {
                self.delivered = event.revision();
                return Some(Ok(event));
            }
            if self.live.is_none() {
                // Catch up without a live buffer while far behind; register once close.
                let published = self.hub.published();
                if published.saturating_sub(self.pos) > HISTORY_PAGE as u64 {
                    if let Err(error) = self.read_history(published).await {
                        return self.fail(error);
                    }
                } else if self.register().is_none() {
                    return self.fail(Self::closed());
                }
                continue;
            }
            if self.pos < self.limit {
                if let Err(error) = self.read_history(self.limit).await {
                    return self.fail(error);
                }
                continue;
            }
            return self.next_live().await;
        }
    }

    /// Reads the next page of history in `(pos, until]` into `pending`.
    async fn read_history(&mut self, until: Revision) -> Result<()> {
        let after = self.pos;
        let read = HistoryRead {
            filter: &self.filter,
            after,
            until,
            budget: HISTORY_PAGE,
        };
        let page = match self.history.read(read).await {
            Ok(page) => page,
            Err(Error::Compacted { compacted, .. }) => {
                return Err(Error::Compacted {
                    requested: self.start.unwrap_or(after),
                    compacted,
                });
            }
            Err(other) => return Err(other),
        };
        if page.scanned_to <= after {
            // A history that does not advance would spin this watch forever.
            return Err(Error::internal(format!(
                "watch history read of ({after}, {until}] made no progress"
            )));
        }
        self.pos = page.scanned_to.min(until);
        self.pending.extend(page.events);
        Ok(())
    }

    /// The next live event, or a progress event when one is due and nothing is waiting.
    async fn next_live(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            let received = if self.progress_owed {
                // Everything published up to `published` is already in the channel: drain it
                // first, so the progress event never overtakes an event.
                let published = self.hub.published();
                match self.drain_one() {
                    Drained::Event(event) => Some(event),
                    Drained::Empty => {
                        self.progress_owed = false;
                        return Some(Ok(WatchEvent::Progress {
                            revision: published.max(self.delivered),
                        }));
                    }
                    Drained::Disconnected => None,
                }
            } else {
                let due = self.progress.map(|(_, at)| at);
                let Some(live) = self.live.as_mut() else {
                    return self.fail(Self::closed());
                };
                let woke = match due {
                    Some(at) => tokio::select! {
                        received = live.receiver.recv() => Some(received),
                        () = tokio::time::sleep_until(at) => None,
                        () = self.progress_requests.requested() => None,
                    },
                    None => Some(live.receiver.recv().await),
                };
                match woke {
                    Some(received) => received,
                    None => {
                        // A period ended or progress was requested: owed until nothing
                        // published is waiting.
                        if let Some((every, at)) = self.progress.as_mut() {
                            *at = after(*every);
                        }
                        self.progress_owed = true;
                        continue;
                    }
                }
            };
            match received {
                Some(event) => {
                    let revision = event.revision();
                    if revision <= self.skip_through {
                        continue;
                    }
                    self.pos = revision;
                    self.delivered = revision;
                    return Some(Ok(event));
                }
                None => {
                    let error = match &self.live {
                        Some(live) if live.overflowed.load(Ordering::SeqCst) => {
                            Error::unavailable(format!(
                                "watch on {:?} fell more than {} events behind; resume from \
                                 revision {}",
                                self.filter.key, self.buffer, self.pos
                            ))
                        }
                        _ => Self::closed(),
                    };
                    return self.fail(error);
                }
            }
        }
    }

    /// The first buffered live event newer than what was delivered, without waiting.
    fn drain_one(&mut self) -> Drained {
        let Some(live) = self.live.as_mut() else {
            return Drained::Disconnected;
        };
        loop {
            match live.receiver.try_recv() {
                Ok(event) if event.revision() <= self.skip_through => continue,
                Ok(event) => return Drained::Event(event),
                Err(TryRecvError::Empty) => return Drained::Empty,
                Err(TryRecvError::Disconnected) => return Drained::Disconnected,
            }
        }
    }
}

/// `period` from now, or a year from now when that overflows (an absurd configured period).
fn after(period: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(period)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// What [`Cursor::drain_one`] found.
enum Drained {
    Event(WatchEvent),
    Empty,
    Disconnected,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::StreamExt;
    use parking_lot::Mutex;

    use super::*;
    use crate::types::KeyValue;

    /// A log the test writes to and publishes from, like a backend's writer.
    #[derive(Default)]
    struct Log {
        events: Mutex<Vec<WatchEvent>>,
    }

    impl Log {
        fn put(&self, hub: &WatchHub, key: &str) -> Revision {
            let mut events = self.events.lock();
            let revision = events.len() as Revision + 1;
            let event = WatchEvent::Put {
                kv: KeyValue {
                    key: key.to_owned(),
                    value: bytes::Bytes::new(),
                    create_revision: revision,
                    mod_revision: revision,
                },
                prev: None,
            };
            events.push(event.clone());
            hub.publish(&[event], revision);
            revision
        }
    }

    #[async_trait]
    impl WatchHistory for Log {
        async fn read(&self, read: HistoryRead<'_>) -> Result<HistoryPage> {
            let HistoryRead {
                filter,
                after,
                until,
                budget,
            } = read;
            let events = self.events.lock();
            let scanned: Vec<&WatchEvent> = events
                .iter()
                .filter(|e| e.revision() > after && e.revision() <= until)
                .take(budget)
                .collect();
            let scanned_to = if scanned.len() < budget {
                until
            } else {
                scanned.last().map_or(until, |e| e.revision())
            };
            Ok(HistoryPage {
                events: scanned
                    .into_iter()
                    .filter(|e| e.key().is_some_and(|k| filter.matches(k)))
                    .cloned()
                    .collect(),
                scanned_to,
            })
        }
    }

    fn settings(buffer: usize) -> WatchSettings {
        WatchSettings {
            buffer,
            progress_interval: Duration::from_millis(50),
        }
    }

    async fn revisions(stream: &mut WatchStream, count: usize) -> Vec<Revision> {
        let mut seen = Vec::new();
        while seen.len() < count {
            match stream.next().await {
                Some(Ok(WatchEvent::Progress { .. })) => {}
                Some(Ok(event)) => seen.push(event.revision()),
                other => panic!("stream ended early: {other:?}"),
            }
        }
        seen
    }

    /// A watch from an old revision replays more than a page of history while writes go on,
    /// then follows live events: every revision once, in order, only matching keys.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replay_hands_over_to_live_without_gap_or_duplicate() {
        let hub = Arc::new(WatchHub::new(0));
        let log = Arc::new(Log::default());
        for i in 0..2000 {
            log.put(&hub, if i % 2 == 0 { "/a/x" } else { "/b/x" });
        }
        let mut stream = hub.watch(
            &WatchRequest::prefix("/a/").after(10),
            log.clone(),
            // Room for every live write: this test is about the hand-over, not overflow.
            settings(256),
        );
        let writer = {
            let (hub, log) = (Arc::clone(&hub), Arc::clone(&log));
            tokio::spawn(async move {
                for _ in 0..200 {
                    log.put(&hub, "/a/x");
                    tokio::task::yield_now().await;
                }
            })
        };
        // Revisions 11..=2000 hold 995 of /a/, then 200 more come live: 1,195 in all.
        let seen = revisions(&mut stream, 1195).await;
        writer.await.unwrap();
        let expected: Vec<Revision> = (11..=2000)
            .filter(|r| r % 2 == 1)
            .chain(2001..=2200)
            .collect();
        assert_eq!(seen, expected);
    }

    /// A watcher that does not read gets the events it buffered, then a terminal Unavailable.
    #[tokio::test]
    async fn a_full_buffer_ends_the_watch_after_the_buffered_events() {
        let hub = Arc::new(WatchHub::new(0));
        let log = Arc::new(Log::default());
        let mut stream = hub.watch(&WatchRequest::prefix("/"), log.clone(), settings(3));
        for _ in 0..5 {
            log.put(&hub, "/k");
        }
        assert_eq!(hub.watchers(), 0, "the full watcher left the hub");
        assert_eq!(revisions(&mut stream, 3).await, [1, 2, 3]);
        match stream.next().await {
            Some(Err(Error::Unavailable { message, .. })) => {
                assert!(
                    message.contains("fell more than 3 events behind"),
                    "{message}"
                )
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(
            stream.next().await.is_none(),
            "nothing after the terminal error"
        );
    }

    /// A progress request is answered at once, not at the next period, and never before the
    /// events already handed to the watch.
    #[tokio::test]
    async fn progress_requests_are_answered_at_once_and_in_order() {
        let hub = Arc::new(WatchHub::new(0));
        let log = Arc::new(Log::default());
        let mut watch = hub.watch(
            &WatchRequest::prefix("/a/").with_progress(),
            log.clone(),
            WatchSettings {
                buffer: 16,
                progress_interval: Duration::from_secs(3600),
            },
        );
        let first = log.put(&hub, "/a/1");
        hub.request_progress();
        let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("an answer long before the hour-long period");
        assert!(
            matches!(event, Some(Ok(WatchEvent::Put { ref kv, .. })) if kv.mod_revision == first)
        );
        match tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
            Ok(Some(Ok(WatchEvent::Progress { revision }))) => assert_eq!(revision, first),
            other => panic!("expected progress at {first}, got {other:?}"),
        }
    }

    /// Progress events report the published revision once nothing older is waiting.
    #[tokio::test]
    async fn progress_never_overtakes_an_event() {
        let hub = Arc::new(WatchHub::new(0));
        let log = Arc::new(Log::default());
        let mut stream = hub.watch(
            &WatchRequest::prefix("/a/").with_progress(),
            log.clone(),
            settings(16),
        );
        log.put(&hub, "/a/1");
        log.put(&hub, "/b/2");
        match stream.next().await {
            Some(Ok(WatchEvent::Put { kv, .. })) => assert_eq!(kv.mod_revision, 1),
            other => panic!("expected the put first, got {other:?}"),
        }
        match stream.next().await {
            Some(Ok(WatchEvent::Progress { revision })) => assert_eq!(revision, 2),
            other => panic!("expected progress at 2, got {other:?}"),
        }
    }

    /// A closed hub ends its watches with Unavailable and refuses new ones the same way.
    #[tokio::test]
    async fn closing_ends_every_watch() {
        let hub = Arc::new(WatchHub::new(0));
        let log = Arc::new(Log::default());
        let mut before = hub.watch(&WatchRequest::key("/k"), log.clone(), settings(8));
        hub.close();
        let mut after = hub.watch(&WatchRequest::key("/k"), log, settings(8));
        for stream in [&mut before, &mut after] {
            assert!(matches!(
                stream.next().await,
                Some(Err(Error::Unavailable { .. }))
            ));
        }
    }

    /// A watch from a future revision delivers only what comes after it.
    #[tokio::test]
    async fn a_future_start_skips_what_comes_before_it() {
        let hub = Arc::new(WatchHub::new(0));
        let log = Arc::new(Log::default());
        let mut stream = hub.watch(
            &WatchRequest::prefix("/").after(3),
            log.clone(),
            settings(8),
        );
        for _ in 0..5 {
            log.put(&hub, "/k");
        }
        assert_eq!(revisions(&mut stream, 2).await, [4, 5]);
    }

    /// Keys that expire together may share one revision: a watch delivers every event of it.
    #[tokio::test]
    async fn events_sharing_a_revision_all_arrive() {
        let hub = Arc::new(WatchHub::new(0));
        let log = Arc::new(Log::default());
        let mut stream = hub.watch(&WatchRequest::prefix("/"), log, settings(8));
        let expire = |key: &str| WatchEvent::Delete {
            key: key.to_owned(),
            revision: 1,
            prev: KeyValue {
                key: key.to_owned(),
                value: bytes::Bytes::new(),
                create_revision: 0,
                mod_revision: 0,
            },
        };
        hub.publish(&[expire("/a"), expire("/b")], 1);
        let mut keys = Vec::new();
        for _ in 0..2 {
            let event = stream.next().await.unwrap().unwrap();
            keys.push(event.key().unwrap().to_owned());
        }
        assert_eq!(keys, ["/a", "/b"]);
    }

    /// A "from now" watch on a closed hub ends at once instead of replaying history.
    #[tokio::test]
    async fn a_watch_on_a_closed_hub_fails_at_once() {
        let hub = Arc::new(WatchHub::new(0));
        let log = Arc::new(Log::default());
        for _ in 0..(HISTORY_PAGE + 10) {
            log.put(&hub, "/k");
        }
        hub.close();
        let mut stream = hub.watch(&WatchRequest::prefix("/"), log, settings(8));
        assert!(matches!(
            stream.next().await,
            Some(Err(Error::Unavailable { .. }))
        ));
        assert!(stream.next().await.is_none());
    }
}
