//! The workloads, written once over any [`Client`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use storage_api::Revision;

use crate::cli::Workload;
use crate::client::Client;
use crate::pacing::{Pacer, Pacing};
use crate::stats::{Recorder, Rng, now_stamp};

/// Preloads and other set-up writes run this many at a time.
const SETUP_CONCURRENCY: usize = 64;

/// The stamp of the watch workload's end marker.
const END_STAMP: u64 = u64::MAX;

/// The stamp of the watch workload's start marker (never delivered: watchers start after it).
const START_STAMP: u64 = 0;

/// How long watchers may lag behind the last write before the check gives up on them.
const WATCH_DRAIN: Duration = Duration::from_secs(15);

/// The knobs of every workload (from the command line).
#[derive(Clone, Debug)]
pub struct Params {
    /// How long a timed workload runs.
    pub duration: Duration,
    /// Keys for update, get and mixed.
    pub keys: usize,
    /// List page size (0: unpaginated).
    pub page_size: u64,
    /// Keys listed by the list workloads.
    pub list_total: usize,
    /// Watchers of the watch workload.
    pub watchers: usize,
    /// Total writes per second of the watch workload (0: as fast as the store goes).
    pub watch_rate: u64,
    /// How the watch workloads' writers place their writes in time.
    pub pacing: Pacing,
    /// Percentage of writes in the mixed workload.
    pub mixed_write_percent: u32,
    /// Updates of the churn workload.
    pub churn_updates: u64,
    /// Keys of the churn workload.
    pub churn_keys: usize,
    /// Churn compacts every this many writes...
    pub churn_compact_every: u64,
    /// ...keeping this many revisions.
    pub churn_keep: u64,
}

/// Reports progress of long workloads (the progress bar's message).
pub type Progress = Arc<dyn Fn(String) + Send + Sync>;

/// What a workload measured.
#[derive(Debug, Default)]
pub struct Measured {
    /// Latencies of the measured operations (delivery latencies for watch).
    pub recorder: Recorder,
    /// Wall-clock time of the measured phase.
    pub elapsed: Duration,
    /// Operations to report when not the recorder's count (watch: writes, not deliveries).
    pub ops: Option<u64>,
    /// Extra facts: machine name, JSON value, human note.
    pub notes: Vec<(String, serde_json::Value, String)>,
}

impl Measured {
    /// Adds a fact to the row.
    pub fn note(&mut self, name: &str, value: impl Into<serde_json::Value>, human: String) {
        self.notes.push((name.to_owned(), value.into(), human));
    }

    /// The number noted as `name`, if there is one.
    #[cfg(test)]
    pub fn noted(&self, name: &str) -> Option<u64> {
        self.notes
            .iter()
            .find(|(noted, _, _)| noted == name)
            .and_then(|(_, value, _)| value.as_u64())
    }
}

/// The name of key `i`.
pub fn key_name(i: usize) -> String {
    format!("k{i:08}")
}

/// Runs `workload` with `concurrency` clients.
pub async fn run<C: Client>(
    client: Arc<C>,
    workload: Workload,
    concurrency: usize,
    params: &Params,
    progress: Progress,
) -> Result<Measured> {
    let concurrency = concurrency.max(1);
    match workload {
        Workload::Create => create(client, concurrency, params).await,
        Workload::Update => update(client, concurrency, params).await,
        Workload::Get => get(client, concurrency, params).await,
        Workload::List => list(client, concurrency, params, false, progress).await,
        Workload::ListPast => list(client, concurrency, params, true, progress).await,
        Workload::Mixed => mixed(client, concurrency, params).await,
        Workload::Watch => watch(client, concurrency, params).await,
        Workload::Churn => churn(client, concurrency, params, progress).await,
        Workload::WatchCheck => {
            crate::watch_check::watch_check(client, concurrency, params, None).await
        }
    }
}

/// Spawns `concurrency` tasks built by `task` (given their index), waits for all of them and
/// merges their recorders; the elapsed time runs from the spawn to the last task's end.
async fn timed<F, Fut>(concurrency: usize, task: F) -> Result<(Recorder, Duration)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Recorder> + Send + 'static,
{
    let start = Instant::now();
    let handles: Vec<_> = (0..concurrency).map(|t| tokio::spawn(task(t))).collect();
    let mut merged = Recorder::new();
    for handle in handles {
        merged.merge(handle.await.context("a benchmark task panicked")?);
    }
    Ok((merged, start.elapsed()))
}

/// Creates `count` keys (`key_name(0..count)`), returning their versions in order.
pub async fn preload<C: Client>(client: &Arc<C>, count: usize) -> Result<Vec<C::Version>> {
    futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                client
                    .create(&key_name(i), now_stamp())
                    .await
                    .with_context(|| format!("preloading key {i}"))
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// Updates every key once, in place.
async fn update_all<C: Client>(client: &Arc<C>, versions: &mut [C::Version]) -> Result<()> {
    let updated: Vec<C::Version> = futures::stream::iter(versions.iter().cloned().enumerate())
        .map(|(i, version)| {
            let client = client.clone();
            async move {
                client
                    .update(&key_name(i), &version, now_stamp())
                    .await
                    .with_context(|| format!("updating key {i}"))
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    versions.clone_from_slice(&updated);
    Ok(())
}

/// The keys task `t` of `concurrency` owns (for CAS writes without conflicts).
fn owned<V: Clone>(versions: &[V], t: usize, concurrency: usize) -> Vec<(String, V)> {
    versions
        .iter()
        .enumerate()
        .filter(|(i, _)| i % concurrency == t)
        .map(|(i, v)| (key_name(i), v.clone()))
        .collect()
}

async fn create<C: Client>(
    client: Arc<C>,
    concurrency: usize,
    params: &Params,
) -> Result<Measured> {
    let deadline = Instant::now() + params.duration;
    let (recorder, elapsed) = timed(concurrency, |t| {
        let client = client.clone();
        async move {
            let mut recorder = Recorder::new();
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let name = format!("c{t:03}-{seq:09}");
                seq += 1;
                let start = Instant::now();
                match client.create(&name, now_stamp()).await {
                    Ok(_) => recorder.record_since(start),
                    Err(error) => recorder.error(error),
                }
            }
            recorder
        }
    })
    .await?;
    Ok(Measured {
        recorder,
        elapsed,
        ..Measured::default()
    })
}

async fn update<C: Client>(
    client: Arc<C>,
    concurrency: usize,
    params: &Params,
) -> Result<Measured> {
    let keys = params.keys.max(concurrency);
    let versions = Arc::new(preload(&client, keys).await?);
    let deadline = Instant::now() + params.duration;
    let (recorder, elapsed) = timed(concurrency, |t| {
        let client = client.clone();
        let mine = owned(&versions, t, concurrency);
        async move { update_loop(client, mine, deadline).await }
    })
    .await?;
    let mut measured = Measured {
        recorder,
        elapsed,
        ..Measured::default()
    };
    measured.note("keys", keys, format!("{keys} keys"));
    Ok(measured)
}

/// CAS-updates `mine` round-robin until `deadline`.
async fn update_loop<C: Client>(
    client: Arc<C>,
    mut mine: Vec<(String, C::Version)>,
    deadline: Instant,
) -> Recorder {
    let mut recorder = Recorder::new();
    if mine.is_empty() {
        return recorder;
    }
    let mut next = 0;
    while Instant::now() < deadline {
        let len = mine.len();
        let (name, version) = &mut mine[next];
        next = (next + 1) % len;
        let start = Instant::now();
        match client.update(name, version, now_stamp()).await {
            Ok(new_version) => {
                recorder.record_since(start);
                *version = new_version;
            }
            Err(error) => recorder.error(error),
        }
    }
    recorder
}

async fn get<C: Client>(client: Arc<C>, concurrency: usize, params: &Params) -> Result<Measured> {
    let keys = params.keys.max(1);
    preload(&client, keys).await?;
    let deadline = Instant::now() + params.duration;
    let (recorder, elapsed) = timed(concurrency, |t| {
        let client = client.clone();
        async move {
            let mut recorder = Recorder::new();
            let mut rng = Rng::new(t as u64);
            while Instant::now() < deadline {
                let name = key_name(rng.below(keys));
                let start = Instant::now();
                match client.get(&name).await {
                    Ok(()) => recorder.record_since(start),
                    Err(error) => recorder.error(error),
                }
            }
            recorder
        }
    })
    .await?;
    let mut measured = Measured {
        recorder,
        elapsed,
        ..Measured::default()
    };
    measured.note("keys", keys, format!("{keys} keys"));
    Ok(measured)
}

async fn list<C: Client>(
    client: Arc<C>,
    concurrency: usize,
    params: &Params,
    past: bool,
    progress: Progress,
) -> Result<Measured> {
    let total = params.list_total.max(1);
    progress(format!("preloading {total} keys"));
    let mut versions = preload(&client, total).await?;
    let revision = if past {
        let revision = client.current_revision().await?;
        progress(format!("updating {total} keys after revision {revision}"));
        update_all(&client, &mut versions).await?;
        Some(revision)
    } else {
        None
    };
    progress(String::new());
    let page_size = params.page_size;
    let deadline = Instant::now() + params.duration;
    let (recorder, elapsed) = timed(concurrency, |_| {
        let client = client.clone();
        async move {
            let mut recorder = Recorder::new();
            // At least one list, however long it takes.
            loop {
                let start = Instant::now();
                match client.list(page_size, revision).await {
                    Ok(seen) if seen == total => recorder.record_since(start),
                    Ok(seen) => recorder.error(format!("listed {seen} keys, expected {total}")),
                    Err(error) => recorder.error(error),
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
            recorder
        }
    })
    .await?;
    let objects_per_sec = recorder.count() as f64 * total as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut measured = Measured {
        recorder,
        elapsed,
        ..Measured::default()
    };
    let pages = if page_size == 0 {
        "unpaginated".to_owned()
    } else {
        format!("pages of {page_size}")
    };
    measured.note("list_total", total, format!("{total} keys, {pages}"));
    measured.note("page_size", page_size, String::new());
    if let Some(revision) = revision {
        measured.note("revision", revision, "at an exact past revision".to_owned());
    }
    measured.note(
        "objects_per_sec",
        objects_per_sec,
        format!("{objects_per_sec:.0} keys/s"),
    );
    Ok(measured)
}

async fn mixed<C: Client>(client: Arc<C>, concurrency: usize, params: &Params) -> Result<Measured> {
    let keys = params.keys.max(concurrency);
    let versions = Arc::new(preload(&client, keys).await?);
    let percent = u64::from(params.mixed_write_percent.min(100));
    let deadline = Instant::now() + params.duration;
    let (recorder, elapsed) = timed(concurrency, |t| {
        let client = client.clone();
        let mut mine = owned(&versions, t, concurrency);
        async move {
            let mut recorder = Recorder::new();
            let mut rng = Rng::new(1000 + t as u64);
            let mut next = 0;
            while Instant::now() < deadline {
                let write = !mine.is_empty() && rng.next_u64() % 100 < percent;
                let start = Instant::now();
                let result = if write {
                    let len = mine.len();
                    let (name, version) = &mut mine[next];
                    next = (next + 1) % len;
                    client
                        .update(name, version, now_stamp())
                        .await
                        .map(|new_version| *version = new_version)
                } else {
                    client.get(&key_name(rng.below(keys))).await
                };
                match result {
                    Ok(()) => recorder.record_since(start),
                    Err(error) => recorder.error(error),
                }
            }
            recorder
        }
    })
    .await?;
    let mut measured = Measured {
        recorder,
        elapsed,
        ..Measured::default()
    };
    measured.note(
        "write_percent",
        percent,
        format!("{percent}% CAS writes over {keys} keys"),
    );
    Ok(measured)
}

/// How a watcher's sequence of revisions breaks strict order, if it does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OrderFaults {
    /// Events whose revision the watcher had already received.
    pub(crate) duplicates: usize,
    /// Events older than one already received, seen for the first time (delivered late).
    pub(crate) reorderings: usize,
    /// The first offending event: its position and revision, and the revision before it.
    pub(crate) first: Option<FirstFault>,
}

/// The first event that was not greater than the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FirstFault {
    /// Its position in the watcher's stream (0-based).
    pub(crate) index: usize,
    /// The revision received just before it.
    pub(crate) previous: Revision,
    /// Its revision.
    pub(crate) revision: Revision,
    /// Whether its revision had been received before (else it came late).
    pub(crate) duplicate: bool,
}

impl OrderFaults {
    /// Classifies every event whose revision is not greater than the one before it.
    #[cfg(test)]
    pub(crate) fn of(revisions: &[Revision]) -> Self {
        let mut log = RevisionLog::new(0);
        for &revision in revisions {
            log.push(revision);
        }
        log.faults
    }

    /// Whether every revision was greater than the one before it.
    pub(crate) fn in_order(&self) -> bool {
        self.first.is_none()
    }
}

/// The revisions one watcher received, in little memory: a bitset from the watch's start (a
/// few KiB for a run's writes, where a list of them costs 8 bytes each, times every watcher),
/// with its order faults counted as they come.
pub(crate) struct RevisionLog {
    base: Revision,
    bits: Vec<u64>,
    count: usize,
    previous: Option<Revision>,
    highest: Option<Revision>,
    faults: OrderFaults,
}

impl RevisionLog {
    /// An empty log of a watch that starts after `base`.
    pub(crate) fn new(base: Revision) -> Self {
        RevisionLog {
            base,
            bits: Vec::new(),
            count: 0,
            previous: None,
            highest: None,
            faults: OrderFaults::default(),
        }
    }

    /// The bit of `revision`: its word and mask (revisions at or below the base share bit 0).
    fn slot(&self, revision: Revision) -> (usize, u64) {
        let offset = usize::try_from(revision.saturating_sub(self.base)).unwrap_or(usize::MAX);
        (offset / 64, 1 << (offset % 64))
    }

    /// How the received revisions break strict order.
    pub(crate) fn faults(&self) -> &OrderFaults {
        &self.faults
    }

    /// Whether `revision` was received.
    pub(crate) fn contains(&self, revision: Revision) -> bool {
        let (word, mask) = self.slot(revision);
        self.bits.get(word).is_some_and(|bits| bits & mask != 0)
    }

    /// Records one received event.
    pub(crate) fn push(&mut self, revision: Revision) {
        let (word, mask) = self.slot(revision);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & mask == 0;
        self.bits[word] |= mask;
        if self.highest.is_some_and(|highest| revision <= highest) {
            let duplicate = !fresh;
            if duplicate {
                self.faults.duplicates += 1;
            } else {
                self.faults.reorderings += 1;
            }
            if self.faults.first.is_none() {
                self.faults.first = Some(FirstFault {
                    index: self.count,
                    previous: self.previous.unwrap_or_default(),
                    revision,
                    duplicate,
                });
            }
        }
        self.highest = self.highest.max(Some(revision));
        self.previous = Some(revision);
        self.count += 1;
    }

    /// Whether the log is exactly `expected` (sorted), received in order.
    fn is_exactly(&self, expected: &[Revision]) -> bool {
        self.faults.in_order()
            && self.count == expected.len()
            && expected.iter().all(|revision| self.contains(*revision))
    }
}

/// A watcher that did not see every acknowledged write in order.
struct WatcherProblem {
    watcher: usize,
    events: usize,
    missing: usize,
    order: OrderFaults,
    ended: Option<String>,
}

/// The words for out-of-order deliveries: `OUT OF ORDER` followed by the counts that are not
/// zero, such as `OUT OF ORDER (2 duplicates)`.
fn order_words(duplicates: usize, reorderings: usize) -> String {
    let mut kinds = Vec::new();
    if duplicates > 0 {
        kinds.push(format!("{duplicates} duplicates"));
    }
    if reorderings > 0 {
        kinds.push(format!("{reorderings} reorderings"));
    }
    format!("OUT OF ORDER ({})", kinds.join(", "))
}

/// One watcher's first offending pair, such as `watcher 7 got revision 12 after 15 (event 4,
/// late)`.
fn first_fault_words(watcher: usize, first: &FirstFault) -> String {
    format!(
        "watcher {watcher} got revision {} after {} (event {}, {})",
        first.revision,
        first.previous,
        first.index,
        if first.duplicate {
            "a duplicate"
        } else {
            "late"
        }
    )
}

/// The incomplete watchers, one by one when there are a few, else in aggregate (with 50
/// watchers a line per watcher would bury the table). Out-of-order watchers always name the
/// first offending pair of the first such watcher.
fn describe_problems(problems: &[WatcherProblem], acked: u64) -> String {
    let one = |p: &WatcherProblem| {
        let order = match &p.order.first {
            Some(first) => format!(
                ", {}: first {}",
                order_words(p.order.duplicates, p.order.reorderings),
                first_fault_words(p.watcher, first)
            ),
            None => String::new(),
        };
        format!(
            "watcher {}: {} events, {} of {acked} missing{order}{}",
            p.watcher,
            p.events,
            p.missing,
            p.ended
                .as_deref()
                .map(|e| format!(", ended: {e}"))
                .unwrap_or_default()
        )
    };
    if problems.len() <= 3 {
        return problems.iter().map(one).collect::<Vec<_>>().join("; ");
    }
    let missing = problems.iter().map(|p| p.missing);
    let (least, most) = (missing.clone().min(), missing.max());
    let disordered: Vec<&WatcherProblem> =
        problems.iter().filter(|p| !p.order.in_order()).collect();
    let ended: Vec<&str> = problems.iter().filter_map(|p| p.ended.as_deref()).collect();
    let mut text = format!(
        "{} incomplete, missing {}-{} of {acked} events each",
        problems.len(),
        least.unwrap_or(0),
        most.unwrap_or(0)
    );
    if let Some(example) = disordered.first() {
        let duplicates = disordered.iter().map(|p| p.order.duplicates).sum();
        let reorderings = disordered.iter().map(|p| p.order.reorderings).sum();
        text.push_str(&format!(
            ", {} watchers {}",
            disordered.len(),
            order_words(duplicates, reorderings)
        ));
        if let Some(first) = &example.order.first {
            text.push_str(&format!(
                ", first: {}",
                first_fault_words(example.watcher, first)
            ));
        }
    }
    if let Some(first) = ended.first() {
        let same = ended.iter().filter(|e| *e == first).count();
        text.push_str(&format!(
            ", {} ended early ({same} with: {first})",
            ended.len()
        ));
    }
    text
}

/// What one watcher saw.
struct WatcherReport {
    revisions: RevisionLog,
    ended: Option<String>,
}

/// Delivery latencies are recorded in this many shared recorders (by watcher): one per watcher
/// would cost each its own histogram, hundreds of KiB times thousands of watchers.
const LATENCY_SHARDS: usize = 64;

/// Of more than this many watchers, every [`LATENCY_SAMPLE`]th records delivery latencies (all
/// are checked for order and completeness): reading the clock and recording every event of
/// thousands of watchers costs the shared cores more than delivering it.
const LATENCY_ALL_UP_TO: usize = 1000;
/// See [`LATENCY_ALL_UP_TO`].
const LATENCY_SAMPLE: usize = 16;

async fn watch<C: Client>(client: Arc<C>, concurrency: usize, params: &Params) -> Result<Measured> {
    let watchers = params.watchers.max(1);
    // The watchers start after the revision of a marker this workload writes, never after the
    // store's current revision: on a fresh store that is 0, and a watch from resourceVersion
    // "0" means "the current state as ADDED events, then changes" at the object and HTTP
    // levels (Kubernetes' semantics), not "every event after revision 0". A watcher whose
    // initial list ran after the writers had started then got those objects in key order,
    // whose revisions are not increasing, and was counted OUT OF ORDER.
    let start_revision = C::revision(
        &client
            .create("aa-start", START_STAMP)
            .await
            .context("writing the start marker of the watch workload")?,
    );
    let shards: Arc<Vec<std::sync::Mutex<Recorder>>> = Arc::new(
        (0..LATENCY_SHARDS.min(watchers))
            .map(|_| std::sync::Mutex::new(Recorder::new()))
            .collect(),
    );
    let rss_before = crate::stats::rss_bytes().map(|(rss, _)| rss);
    let mut watcher_handles = Vec::new();
    for index in 0..watchers {
        let mut stream = client.watch(start_revision).await?;
        let report = Arc::new(std::sync::Mutex::new(WatcherReport {
            revisions: RevisionLog::new(start_revision),
            ended: None,
        }));
        let shared = report.clone();
        let shards = shards.clone();
        let timed = watchers <= LATENCY_ALL_UP_TO || index % LATENCY_SAMPLE == 0;
        let handle = tokio::spawn(async move {
            loop {
                let next = stream.next().await;
                let now = if timed { now_stamp() } else { 0 };
                let Ok(mut report) = shared.lock() else {
                    return;
                };
                match next {
                    None => {
                        report.ended = Some("stream ended".to_owned());
                        return;
                    }
                    Some(Err(error)) => {
                        report.ended = Some(format!("{error:#}"));
                        return;
                    }
                    Some(Ok(seen)) if seen.stamp == END_STAMP => return,
                    Some(Ok(seen)) => {
                        if timed {
                            if let Ok(mut latencies) = shards[index % shards.len()].lock() {
                                latencies
                                    .record(Duration::from_nanos(now.saturating_sub(seen.stamp)));
                            }
                        }
                        report.revisions.push(seen.revision);
                    }
                }
            }
        });
        watcher_handles.push((handle, report));
    }

    // Every watch is established (its start returned); none has had an event yet.
    let rss_idle = crate::stats::rss_bytes().map(|(rss, _)| rss);
    let deadline = Instant::now() + params.duration;
    let written = Arc::new(std::sync::Mutex::new(Vec::<Revision>::new()));
    // Each writer takes its slots of the rate, placed by `params.pacing`.
    let (writes, elapsed) = timed(concurrency, |t| {
        let client = client.clone();
        let written = written.clone();
        let mut pacer = Pacer::new(params.watch_rate, params.pacing, t, concurrency);
        async move {
            let mut recorder = Recorder::new();
            let mut mine = Vec::new();
            let mut seq = 0u64;
            while Instant::now() < deadline {
                if let Some(pacer) = &mut pacer {
                    if !pacer.wait_before(deadline).await {
                        break;
                    }
                }
                let name = format!("w{t:03}-{seq:09}");
                seq += 1;
                let start = Instant::now();
                match client.create(&name, now_stamp()).await {
                    Ok(version) => {
                        recorder.record_since(start);
                        mine.push(C::revision(&version));
                    }
                    Err(error) => recorder.error(error),
                }
            }
            if let Ok(mut all) = written.lock() {
                all.extend(mine);
            }
            recorder
        }
    })
    .await?;
    // The rate is over the whole writing window: paced writers make their last write before
    // the deadline and stop, and aligned ones sit idle between bursts, so their own end
    // would overstate it.
    let elapsed = elapsed.max(params.duration);
    let mut expected = written.lock().map(|all| all.clone()).unwrap_or_default();
    expected.sort_unstable();
    // The end marker: every watcher stops when it sees it.
    client
        .create("zz-end", END_STAMP)
        .await
        .context("writing the end marker of the watch workload")?;
    let drain_deadline = tokio::time::Instant::now() + WATCH_DRAIN;
    let mut reports = Vec::new();
    for (mut handle, report) in watcher_handles {
        if tokio::time::timeout_at(drain_deadline, &mut handle)
            .await
            .is_err()
        {
            handle.abort();
            if let Ok(mut report) = report.lock() {
                report.ended = Some(format!(
                    "still missing events {}s after the last write",
                    WATCH_DRAIN.as_secs()
                ));
            }
        }
        let report = std::mem::replace(
            &mut *report
                .lock()
                .map_err(|_| anyhow::anyhow!("a watcher panicked"))?,
            WatcherReport {
                revisions: RevisionLog::new(start_revision),
                ended: None,
            },
        );
        reports.push(report);
    }
    let acked = writes.count();
    let mut latencies = Recorder::new();
    for shard in shards.iter() {
        if let Ok(mut shard) = shard.lock() {
            latencies.merge(std::mem::take(&mut *shard));
        }
    }
    let mut complete = 0;
    let mut delivered = 0;
    let mut problems = Vec::new();
    for (i, report) in reports.into_iter().enumerate() {
        delivered += report.revisions.count;
        if report.revisions.is_exactly(&expected) && report.ended.is_none() {
            complete += 1;
        } else {
            let log = &report.revisions;
            problems.push(WatcherProblem {
                watcher: i,
                events: log.count,
                missing: expected.iter().filter(|r| !log.contains(**r)).count(),
                order: log.faults.clone(),
                ended: report.ended,
            });
        }
    }
    let (write_p50, write_p99, _) = writes.summary_us();
    let (p50, p99, max) = latencies.summary_us();
    let mut measured = Measured {
        // The latency columns show delivery latency; ops/s stays the rate of acknowledged writes.
        ops: Some(acked),
        elapsed,
        notes: Vec::new(),
        recorder: Recorder::new(),
    };
    measured.recorder.errors = writes.errors;
    measured.recorder.first_error = writes.first_error.clone();
    let rate = if params.watch_rate > 0 {
        format!(
            " at <= {} writes/s ({} pacing)",
            params.watch_rate,
            params.pacing.name()
        )
    } else {
        String::new()
    };
    measured.note("watchers", watchers, format!("{watchers} watchers{rate}"));
    measured.note("watch_rate", params.watch_rate, String::new());
    measured.note(
        "watchers_complete",
        complete,
        if complete == watchers {
            "every watcher saw every event in order".to_owned()
        } else {
            format!(
                "ONLY {complete}/{watchers} watchers complete: {}",
                describe_problems(&problems, acked)
            )
        },
    );
    measured.note("writes", acked, String::new());
    if let (Some(before), Some(idle)) = (rss_before, rss_idle) {
        let per_watcher = idle.saturating_sub(before) / watchers as u64;
        measured.note(
            "idle_watcher_bytes",
            per_watcher,
            format!(
                "{} RSS per idle watcher",
                crate::stats::human_bytes(per_watcher)
            ),
        );
    }
    if watchers > LATENCY_ALL_UP_TO {
        measured.note(
            "latency_sampled_every",
            LATENCY_SAMPLE,
            format!("latency of every {LATENCY_SAMPLE}th watcher"),
        );
    }
    let delivered_per_sec = delivered as f64 / elapsed.as_secs_f64().max(1e-9);
    measured.note(
        "events_delivered",
        delivered,
        format!("{delivered_per_sec:.0} events/s delivered"),
    );
    measured.note("events_delivered_per_sec", delivered_per_sec, String::new());
    measured.note(
        "write_p50_us",
        write_p50,
        format!("write p50 {}", crate::report::latency(write_p50)),
    );
    measured.note("write_p99_us", write_p99, String::new());
    measured.note("delivery_p50_us", p50, String::new());
    measured.note("delivery_p99_us", p99, String::new());
    measured.note("delivery_max_us", max, String::new());
    measured.recorder.merge(latencies);
    Ok(measured)
}

async fn churn<C: Client>(
    client: Arc<C>,
    concurrency: usize,
    params: &Params,
    progress: Progress,
) -> Result<Measured> {
    let keys = params.churn_keys.max(concurrency);
    progress(format!("preloading {keys} keys"));
    let versions = Arc::new(preload(&client, keys).await?);
    let total = params.churn_updates;
    let every = params.churn_compact_every.max(1);
    let keep = params.churn_keep;
    let issued = Arc::new(AtomicU64::new(0));
    let compactions = Arc::new(AtomicU64::new(0));

    // Compaction as an API server's compactor does it, but every `churn_compact_every` writes
    // instead of every five minutes, keeping `churn_keep` revisions. The writer whose update is
    // a multiple of the interval compacts (a separate compactor task could starve behind
    // writers that never yield on a CPU-bound backend).
    let (recorder, elapsed) = timed(concurrency, |t| {
        let client = client.clone();
        let issued = issued.clone();
        let compactions = compactions.clone();
        let progress = progress.clone();
        let mut mine = owned(&versions, t, concurrency);
        async move {
            let mut recorder = Recorder::new();
            let mut next = 0;
            while !mine.is_empty() {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let len = mine.len();
                let (name, version) = &mut mine[next];
                next = (next + 1) % len;
                let start = Instant::now();
                match client.update(name, version, now_stamp()).await {
                    Ok(new_version) => {
                        recorder.record_since(start);
                        *version = new_version;
                    }
                    Err(error) => recorder.error(error),
                }
                if n > 0 && n % every == 0 {
                    progress(format!("churn {n}/{total} updates"));
                    let compacted = async {
                        let current = client.current_revision().await?;
                        if current > keep {
                            client.compact(current - keep).await?;
                        }
                        anyhow::Ok(())
                    }
                    .await;
                    match compacted {
                        Ok(()) => {
                            compactions.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => recorder.error(format!("compaction: {error:#}")),
                    }
                }
            }
            recorder
        }
    })
    .await?;
    let mut measured = Measured {
        recorder,
        elapsed,
        ..Measured::default()
    };
    let compactions = compactions.load(Ordering::Relaxed);
    measured.note(
        "churn_keys",
        keys,
        format!("{total} updates over {keys} keys"),
    );
    measured.note(
        "compactions",
        compactions,
        format!("{compactions} compactions keeping {}", params.churn_keep),
    );
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::KvClient;

    fn tiny() -> Params {
        Params {
            duration: Duration::from_millis(30),
            keys: 20,
            page_size: 7,
            list_total: 30,
            watchers: 3,
            watch_rate: 1000,
            pacing: crate::pacing::Pacing::Interleaved,
            mixed_write_percent: 50,
            churn_updates: 500,
            churn_keys: 20,
            churn_compact_every: 100,
            churn_keep: 10,
        }
    }

    async fn every_workload<C: Client>(make: impl Fn() -> Arc<C>) {
        let progress: Progress = Arc::new(|_| {});
        for workload in [
            Workload::Create,
            Workload::Update,
            Workload::Get,
            Workload::List,
            Workload::ListPast,
            Workload::Mixed,
            Workload::Watch,
            Workload::Churn,
        ] {
            for concurrency in [1, 4] {
                let measured = run(make(), workload, concurrency, &tiny(), progress.clone())
                    .await
                    .unwrap();
                assert_eq!(
                    measured.recorder.errors, 0,
                    "{workload:?} c{concurrency}: {:?}",
                    measured.recorder.first_error
                );
                assert!(measured.recorder.count() > 0, "{workload:?} c{concurrency}");
                if workload == Workload::Watch {
                    let complete = measured
                        .notes
                        .iter()
                        .find(|(name, _, _)| name == "watchers_complete")
                        .map(|(_, value, _)| value.as_u64());
                    assert_eq!(complete, Some(Some(3)), "{:?}", measured.notes);
                }
                if workload == Workload::Churn {
                    assert_eq!(measured.recorder.count(), 500);
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_runs_on_the_byte_level() {
        every_workload(|| {
            let store: Arc<dyn storage_api::Interface> = Arc::new(backend_memory_store());
            Arc::new(KvClient::new(store, "/t/".to_owned(), 32))
        })
        .await;
    }

    #[cfg(feature = "object")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_runs_on_the_object_level() {
        every_workload(|| {
            let store: Arc<dyn storage_api::Interface> = Arc::new(backend_memory_store());
            Arc::new(crate::object::ObjectClient::new(store, "/t/", 32, false).unwrap())
        })
        .await;
    }

    #[cfg(feature = "object")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_runs_on_the_object_level_with_a_watch_cache() {
        every_workload(|| {
            let store: Arc<dyn storage_api::Interface> = Arc::new(backend_memory_store());
            Arc::new(crate::object::ObjectClient::new(store, "/t/", 32, true).unwrap())
        })
        .await;
    }

    /// A client whose first watch is raced by two writes that land after the workload chose
    /// where to start but before the watch starts, in descending key order (so key order and
    /// revision order disagree).
    #[cfg(feature = "object")]
    struct RacedWatchStart<C> {
        inner: Arc<C>,
        raced: std::sync::atomic::AtomicBool,
    }

    #[cfg(feature = "object")]
    #[async_trait::async_trait]
    impl<C: Client> Client for RacedWatchStart<C> {
        type Version = C::Version;

        fn revision(version: &Self::Version) -> Revision {
            C::revision(version)
        }

        async fn create(&self, name: &str, stamp: u64) -> Result<Self::Version> {
            self.inner.create(name, stamp).await
        }

        async fn update(&self, name: &str, version: &C::Version, stamp: u64) -> Result<C::Version> {
            self.inner.update(name, version, stamp).await
        }

        async fn delete(&self, name: &str, version: &C::Version) -> Result<Option<Revision>> {
            self.inner.delete(name, version).await
        }

        async fn get(&self, name: &str) -> Result<()> {
            self.inner.get(name).await
        }

        async fn list(&self, page_size: u64, revision: Option<Revision>) -> Result<usize> {
            self.inner.list(page_size, revision).await
        }

        async fn watch(&self, after: Revision) -> Result<crate::client::SeenStream> {
            if !self.raced.swap(true, Ordering::SeqCst) {
                self.inner.create("racer-b", now_stamp()).await?;
                self.inner.create("racer-a", now_stamp()).await?;
            }
            self.inner.watch(after).await
        }

        async fn current_revision(&self) -> Result<Revision> {
            self.inner.current_revision().await
        }

        async fn compact(&self, revision: Revision) -> Result<()> {
            self.inner.compact(revision).await
        }
    }

    /// Issue 21: on a fresh store the watch workload started its object watches from
    /// resourceVersion 0, which Kubernetes reads as "the current state, then changes"; writes
    /// that landed before a watch's initial list came as ADDED events in key order and the
    /// watcher was counted OUT OF ORDER. Watches must start after a real revision, so such
    /// writes arrive as ordinary events in revision order.
    #[cfg(feature = "object")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_racing_the_watch_start_arrive_in_revision_order() {
        let store: Arc<dyn storage_api::Interface> = Arc::new(backend_memory_store());
        let client = Arc::new(RacedWatchStart {
            inner: Arc::new(crate::object::ObjectClient::new(store, "/t/", 32, false).unwrap()),
            raced: std::sync::atomic::AtomicBool::new(false),
        });
        let progress: Progress = Arc::new(|_| {});
        // Four watchers, so the report aggregates them.
        let params = Params {
            watchers: 4,
            ..tiny()
        };
        let measured = run(client, Workload::Watch, 2, &params, progress)
            .await
            .unwrap();
        let (_, _, text) = measured
            .notes
            .iter()
            .find(|(name, _, _)| name == "watchers_complete")
            .expect("the watch workload reports its watchers");
        assert!(!text.contains("OUT OF ORDER"), "{text}");
        // The two racing writes are extra events, not in the workload's own list of writes;
        // every watcher still received all of the workload's writes, none missing.
        assert!(text.contains("missing 0-0 of"), "{text}");
    }

    #[test]
    fn many_incomplete_watchers_are_summarised() {
        let problem = |watcher, missing, ended: Option<&str>| WatcherProblem {
            watcher,
            events: 10 - missing,
            missing,
            order: OrderFaults::default(),
            ended: ended.map(str::to_owned),
        };
        let few = describe_problems(&[problem(2, 3, Some("slow"))], 10);
        assert_eq!(few, "watcher 2: 7 events, 3 of 10 missing, ended: slow");
        let many: Vec<_> = (0..5)
            .map(|i| problem(i, i + 1, (i % 2 == 0).then_some("slow")))
            .collect();
        assert_eq!(
            describe_problems(&many, 10),
            "5 incomplete, missing 1-5 of 10 events each, 3 ended early (3 with: slow)"
        );
    }

    #[test]
    fn order_faults_tell_duplicates_from_reorderings() {
        assert!(OrderFaults::of(&[]).in_order());
        assert!(OrderFaults::of(&[3, 4, 9]).in_order());
        let duplicate = OrderFaults::of(&[3, 4, 4, 5]);
        assert_eq!((duplicate.duplicates, duplicate.reorderings), (1, 0));
        assert_eq!(
            duplicate.first,
            Some(FirstFault {
                index: 2,
                previous: 4,
                revision: 4,
                duplicate: true
            })
        );
        // 5 arrives after 6: late, not a duplicate; the replayed 3 is a duplicate.
        let mixed = OrderFaults::of(&[3, 4, 6, 5, 3, 7]);
        assert_eq!((mixed.duplicates, mixed.reorderings), (1, 1));
        assert_eq!(
            mixed
                .first
                .map(|f| (f.index, f.previous, f.revision, f.duplicate)),
            Some((3, 6, 5, false))
        );
    }

    #[test]
    fn out_of_order_watchers_name_counts_and_the_first_pair() {
        let problem = |watcher, revisions: &[Revision]| WatcherProblem {
            watcher,
            events: revisions.len(),
            missing: 0,
            order: OrderFaults::of(revisions),
            ended: None,
        };
        assert_eq!(
            describe_problems(&[problem(4, &[1, 2, 2, 3])], 3),
            "watcher 4: 4 events, 0 of 3 missing, OUT OF ORDER (1 duplicates): first watcher 4 \
             got revision 2 after 2 (event 2, a duplicate)"
        );
        let many = [
            problem(0, &[1, 2, 3]),
            problem(1, &[1, 3, 2]),
            problem(2, &[1, 2, 2, 3]),
            problem(3, &[1, 2, 3]),
        ];
        assert_eq!(
            describe_problems(&many, 3),
            "4 incomplete, missing 0-0 of 3 events each, 2 watchers OUT OF ORDER (1 duplicates, \
             1 reorderings), first: watcher 1 got revision 2 after 3 (event 2, late)"
        );
    }

    fn backend_memory_store() -> impl storage_api::Interface {
        backend_memory::MemoryStore::default()
    }
}
