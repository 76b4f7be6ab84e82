//! The watch consistency check: writers create, update and delete across a key space while
//! compaction runs, and watchers restart at random from the last revision they saw (listing
//! again when that revision was compacted, as a Kubernetes reflector does on 410). Every
//! watcher's events are then checked against the committed history: no gap, no duplicate, no
//! reordering.
//!
//! The committed history is the set of acknowledged writes: each writer owns its keys, so its
//! every write succeeds and answers with its revision. Over HTTP a ConfigMap's DELETE answers
//! a Status without the revision (as upstream's does), so there the history is read from the
//! server's store by a byte-level watch (which the byte-level check holds to the acknowledged
//! writes), and every acknowledged create and update must be in it. A watch segment starts after a revision
//! `s` and ends at the last revision `e` it delivered; it must have delivered exactly the
//! committed revisions in `(s, e]`, in order. A restart continues from `e`, so a watcher's
//! segments cover its whole life but for the stretches a re-list skips on purpose.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use storage_api::{Interface, Revision, WatchEvent, WatchRequest};

use crate::client::{Client, is_expired};
use crate::pacing::Pacer;
use crate::stats::{Recorder, Rng, now_stamp};
use crate::workloads::{Measured, Params, RevisionLog};

/// Compaction keeps this many revisions when the workload's `churn_keep` is 0.
const DEFAULT_KEEP: u64 = 200;
/// How often the compactor runs.
const COMPACT_EVERY: Duration = Duration::from_millis(100);
/// A watch segment ends after at most this many events (a random count below it).
const MAX_SEGMENT: usize = 3_000;
/// How long watchers may take to reach the last write once writes stop.
const DRAIN: Duration = Duration::from_secs(30);
/// One watch in this many is followed by a pause of up to [`MAX_PAUSE`] before the next, as a
/// slow consumer's would be: long enough for compaction to pass it, so that it gets 410.
const PAUSE_ONE_IN: usize = 4;
const MAX_PAUSE: Duration = Duration::from_millis(400);

/// Where the committed history is read when the level does not report every write's
/// revision: the store under the server, and the prefix of the workload's keys in it.
pub struct Reference {
    /// The server's store.
    pub store: Arc<dyn Interface>,
    /// The prefix of the keys the workload writes.
    pub prefix: String,
}

/// One watch, from just after `start`.
struct Segment {
    start: Revision,
    log: RevisionLog,
    /// The last revision it delivered (`start` if none).
    last: Revision,
    events: usize,
}

/// What one watcher did.
#[derive(Default)]
struct WatcherRun {
    segments: Vec<Segment>,
    relists: u64,
    /// Watches the store ended (for example after the watcher fell behind its buffer).
    ended: u64,
    /// The revision it had caught up with when it stopped.
    reached: Revision,
}

/// The faults of every watcher.
#[derive(Debug, Default)]
struct Faults {
    missing: usize,
    duplicates: usize,
    reorderings: usize,
    short: usize,
    first: Option<String>,
}

/// Runs the check with `concurrency` writers for `params.duration` and `params.watchers`
/// watchers (at least 1). Fails when any watcher saw a gap, a duplicate or a reordering.
pub async fn watch_check<C: Client>(
    client: Arc<C>,
    concurrency: usize,
    params: &Params,
    reference: Option<Reference>,
) -> Result<Measured> {
    let keys = params.keys.max(concurrency);
    let keep = if params.churn_keep == 0 {
        DEFAULT_KEEP
    } else {
        params.churn_keep
    };
    // A write of its own: watches start after the revision of a write.
    let marker = client
        .create(&format!("wc-start-{}", now_stamp()), now_stamp())
        .await?;
    let start = C::revision(&marker);
    let compacts = client.compact(start.saturating_sub(keep)).await.is_ok();
    let stop_writing = Arc::new(AtomicBool::new(false));
    let final_revision = Arc::new(AtomicU64::new(Revision::MAX));
    let committed = match reference {
        Some(reference) => {
            let mut events = reference
                .store
                .watch(WatchRequest::prefix(reference.prefix).after(start))
                .await
                .context("watching the server's store for the committed history")?;
            let final_revision = final_revision.clone();
            Some(tokio::spawn(async move {
                let mut revisions = Vec::new();
                let mut drain: Option<Instant> = None;
                loop {
                    let target = final_revision.load(Ordering::Relaxed);
                    if revisions.last().is_some_and(|&last| last >= target) {
                        return Ok(revisions);
                    }
                    if target != Revision::MAX
                        && Instant::now() > *drain.get_or_insert_with(|| Instant::now() + DRAIN)
                    {
                        bail!("the store's own watch stopped short of revision {target}");
                    }
                    match tokio::time::timeout(Duration::from_millis(200), events.next()).await {
                        Err(_) => {}
                        Ok(Some(Ok(WatchEvent::Put { kv, .. }))) => revisions.push(kv.mod_revision),
                        Ok(Some(Ok(WatchEvent::Delete { revision, .. }))) => {
                            revisions.push(revision);
                        }
                        Ok(Some(Ok(WatchEvent::Progress { .. }))) => {}
                        Ok(Some(Err(error))) => return Err(anyhow::Error::from(error)),
                        Ok(None) => bail!("the store's own watch ended"),
                    }
                }
            }))
        }
        None => None,
    };

    let mut watchers = Vec::new();
    for watcher in 0..params.watchers.max(1) {
        let client = client.clone();
        let final_revision = final_revision.clone();
        watchers.push(tokio::spawn(async move {
            watch_until(client, watcher as u64, start, final_revision).await
        }));
    }
    let compactor = compacts.then(|| {
        let client = client.clone();
        let stop = stop_writing.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(COMPACT_EVERY).await;
                let current = client.current_revision().await?;
                client.compact(current.saturating_sub(keep)).await?;
            }
            anyhow::Ok(())
        })
    });

    let started = Instant::now();
    let deadline = started + params.duration;
    let mut writers = Vec::new();
    for writer in 0..concurrency {
        let client = client.clone();
        let owned: Vec<usize> = (writer..keys).step_by(concurrency).collect();
        // `watch_rate` writes per second in all, placed by `params.pacing` (0: as fast as
        // the store goes).
        let pacer = Pacer::new(params.watch_rate, params.pacing, writer, concurrency);
        writers.push(tokio::spawn(async move {
            write_until(client, writer as u64, owned, deadline, pacer).await
        }));
    }
    let mut acknowledged = Vec::new();
    let mut unreported = 0_usize;
    let mut recorder = Recorder::default();
    for writer in writers {
        let written = writer.await.context("a writer stopped")??;
        acknowledged.extend(written.revisions);
        unreported += written.unreported;
        recorder.merge(written.latencies);
    }
    let elapsed = started.elapsed();
    stop_writing.store(true, Ordering::Relaxed);
    acknowledged.sort_unstable();
    // Once the writers are done, the store's current revision is the last write's.
    let last_write = client.current_revision().await?;
    final_revision.store(last_write, Ordering::Relaxed);
    if let Some(compactor) = compactor {
        compactor.await.context("the compactor stopped")??;
    }
    let history = match committed {
        Some(reader) => {
            let committed = reader.await.context("the history reader stopped")??;
            let increasing = committed.windows(2).all(|pair| pair[0] < pair[1]);
            let missing = acknowledged
                .iter()
                .filter(|revision| committed.binary_search(revision).is_err())
                .count();
            if !increasing || missing > 0 || committed.len() != acknowledged.len() + unreported {
                bail!(
                    "watch check FAILED: the store's history ({} revisions, increasing: \
                     {increasing}) lacks {missing} of {} acknowledged writes, or holds other \
                     than {unreported} unreported deletes",
                    committed.len(),
                    acknowledged.len()
                );
            }
            committed
        }
        None if unreported > 0 => bail!(
            "this level does not report the revisions of deletes, and no store to read the \
             history from was given"
        ),
        None => acknowledged,
    };
    let last_write = history.last().copied().unwrap_or(start).max(last_write);

    let mut faults = Faults::default();
    let (mut events, mut segments, mut relists, mut ended) = (0_u64, 0_u64, 0_u64, 0_u64);
    for (watcher, run) in watchers.into_iter().enumerate() {
        let run = run.await.context("a watcher stopped")??;
        relists += run.relists;
        ended += run.ended;
        segments += run.segments.len() as u64;
        let reached = run.reached;
        if reached < last_write {
            faults.short += 1;
            faults.first.get_or_insert_with(|| {
                format!("watcher {watcher} stopped at revision {reached} of {last_write}")
            });
        }
        for segment in &run.segments {
            events += segment.events as u64;
            check(&history, watcher, segment, &mut faults);
        }
    }
    let mut measured = Measured {
        recorder,
        elapsed,
        ops: Some(history.len() as u64),
        notes: Vec::new(),
    };
    let rate = events as f64 / elapsed.as_secs_f64().max(1e-9);
    measured.note(
        "events_checked",
        events,
        format!("{events} events checked ({rate:.0}/s)"),
    );
    measured.note(
        "watch_segments",
        segments,
        format!(
            "{segments} watches ({relists} after 410 and a re-list, {ended} resumed after the \
             store ended them)"
        ),
    );
    measured.note("relists", relists, String::new());
    measured.note("watches_ended_by_store", ended, String::new());
    measured.note(
        "compaction",
        compacts,
        if compacts {
            format!("compacting to {keep} revisions every {COMPACT_EVERY:?}")
        } else {
            "the level does not compact: the server's own compaction runs".to_owned()
        },
    );
    measured.note("gaps", faults.missing, String::new());
    measured.note("duplicates", faults.duplicates, String::new());
    measured.note("reorderings", faults.reorderings, String::new());
    if faults.missing + faults.duplicates + faults.reorderings + faults.short > 0 {
        bail!(
            "watch check FAILED: {} gaps, {} duplicates, {} reorderings, {} watchers short of \
             the last write; first: {}",
            faults.missing,
            faults.duplicates,
            faults.reorderings,
            faults.short,
            faults.first.unwrap_or_default()
        );
    }
    measured.note(
        "verdict",
        "ok",
        "0 gaps, 0 duplicates, 0 reorderings".to_owned(),
    );
    Ok(measured)
}

/// Checks one segment against the committed revisions in `(start, last]`.
fn check(history: &[Revision], watcher: usize, segment: &Segment, faults: &mut Faults) {
    let from = history.partition_point(|&r| r <= segment.start);
    let to = history.partition_point(|&r| r <= segment.last);
    let expected = &history[from..to];
    let order = segment.log.faults();
    let missing = expected
        .iter()
        .filter(|&&revision| !segment.log.contains(revision))
        .count();
    // Delivered revisions that no acknowledged write has.
    let distinct = segment.events.saturating_sub(order.duplicates);
    let unknown = distinct.saturating_sub(expected.len() - missing);
    faults.missing += missing + unknown;
    faults.duplicates += order.duplicates;
    faults.reorderings += order.reorderings;
    if missing + unknown + order.duplicates + order.reorderings > 0 && faults.first.is_none() {
        faults.first = Some(format!(
            "watcher {watcher}, watch after {}: {missing} committed revisions missing, \
             {unknown} not committed, {} duplicates, {} reorderings (up to {})",
            segment.start, order.duplicates, order.reorderings, segment.last
        ));
    }
}

/// What one writer did.
struct Written {
    /// The revisions of its acknowledged writes.
    revisions: Vec<Revision>,
    /// Acknowledged deletes whose revision the level did not report.
    unreported: usize,
    latencies: Recorder,
}

/// One writer: creates, updates and deletes its own keys until `deadline`, in the slots of
/// `pacer` when given.
async fn write_until<C: Client>(
    client: Arc<C>,
    seed: u64,
    owned: Vec<usize>,
    deadline: Instant,
    mut pacer: Option<Pacer>,
) -> Result<Written> {
    let mut rng = Rng::new(seed);
    let mut live: HashMap<usize, C::Version> = HashMap::new();
    let mut revisions = Vec::new();
    let mut unreported = 0;
    let mut recorder = Recorder::default();
    while Instant::now() < deadline {
        if let Some(pacer) = &mut pacer {
            if !pacer.wait_before(deadline).await {
                break;
            }
        }
        let key = owned[rng.below(owned.len())];
        let name = format!("wc{key:06}");
        let began = Instant::now();
        let revision = match live.remove(&key) {
            None => {
                let version = client.create(&name, now_stamp()).await?;
                let revision = C::revision(&version);
                live.insert(key, version);
                Some(revision)
            }
            Some(version) if rng.below(4) == 0 => client.delete(&name, &version).await?,
            Some(version) => {
                let updated = client.update(&name, &version, now_stamp()).await?;
                let revision = C::revision(&updated);
                live.insert(key, updated);
                Some(revision)
            }
        };
        recorder.record(began.elapsed());
        match revision {
            Some(revision) => revisions.push(revision),
            None => unreported += 1,
        }
    }
    Ok(Written {
        revisions,
        unreported,
        latencies: recorder,
    })
}

/// One watcher: watches from `start`, ends each watch after a random number of events and
/// starts again from the last revision it saw, lists again on 410, until it has seen the last
/// write (`final_revision`, once known) or [`DRAIN`] passed since it became known.
async fn watch_until<C: Client>(
    client: Arc<C>,
    seed: u64,
    start: Revision,
    final_revision: Arc<AtomicU64>,
) -> Result<WatcherRun> {
    let mut rng = Rng::new(seed.wrapping_add(1_000));
    let mut run = WatcherRun::default();
    let mut after = start;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        run.reached = after;
        let target = final_revision.load(Ordering::Relaxed);
        if after >= target {
            return Ok(run);
        }
        if target != Revision::MAX {
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN);
            if Instant::now() > deadline {
                return Ok(run);
            }
        }
        let mut stream = match client.watch(after).await {
            Ok(stream) => stream,
            Err(error) if is_expired(&error) => {
                after = relist(&*client).await?;
                run.relists += 1;
                continue;
            }
            Err(error) => return Err(error.context(format!("watching after {after}"))),
        };
        let budget = 1 + rng.below(MAX_SEGMENT);
        let mut segment = Segment {
            start: after,
            log: RevisionLog::new(after),
            last: after,
            events: 0,
        };
        let mut expired = false;
        while segment.events < budget {
            let target = final_revision.load(Ordering::Relaxed);
            if segment.last >= target {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
                Err(_) => {
                    if target != Revision::MAX {
                        let deadline =
                            *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN);
                        if Instant::now() > deadline {
                            break;
                        }
                    }
                }
                Ok(Some(Ok(seen))) => {
                    segment.log.push(seen.revision);
                    segment.last = segment.last.max(seen.revision);
                    segment.events += 1;
                }
                Ok(Some(Err(error))) if is_expired(&error) => {
                    expired = true;
                    break;
                }
                Ok(Some(Err(error))) => {
                    // The store ended the watch (a watcher that fell behind its buffer, say):
                    // a reflector resumes from the last revision it saw, and so does this.
                    tracing::debug!(error = %format!("{error:#}"), "a watch ended");
                    run.ended += 1;
                    break;
                }
                Ok(None) => {
                    run.ended += 1;
                    break;
                }
            }
        }
        after = segment.last;
        run.segments.push(segment);
        if expired {
            after = relist(&*client).await?;
            run.relists += 1;
        } else if rng.below(PAUSE_ONE_IN) == 0
            && final_revision.load(Ordering::Relaxed) == Revision::MAX
        {
            let pause = rng.below(MAX_PAUSE.as_millis() as usize);
            tokio::time::sleep(Duration::from_millis(pause as u64)).await;
        }
    }
}

/// Lists every key (as a reflector does after 410) and returns the revision to watch from.
async fn relist<C: Client>(client: &C) -> Result<Revision> {
    client
        .list(500, None)
        .await
        .context("listing again after 410")?;
    client.current_revision().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::KvClient;

    fn params() -> Params {
        Params {
            duration: Duration::from_millis(1500),
            keys: 64,
            page_size: 50,
            list_total: 0,
            watchers: 4,
            watch_rate: 2_000,
            pacing: crate::pacing::Pacing::Interleaved,
            mixed_write_percent: 0,
            churn_updates: 0,
            churn_keys: 0,
            churn_compact_every: 0,
            churn_keep: 200,
        }
    }

    fn note(measured: &Measured, name: &str) -> u64 {
        measured
            .noted(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", measured.notes))
    }

    /// The check passes on a correct store, and its watchers did restart and re-list.
    async fn passes<C: Client>(client: Arc<C>) {
        let measured = watch_check(client, 4, &params(), None).await.unwrap();
        assert!(
            note(&measured, "events_checked") > 1_000,
            "{:?}",
            measured.notes
        );
        assert!(
            note(&measured, "watch_segments") > 8,
            "{:?}",
            measured.notes
        );
        assert!(note(&measured, "relists") > 0, "{:?}", measured.notes);
        assert_eq!(note(&measured, "gaps"), 0);
    }

    async fn stores() -> Vec<(
        &'static str,
        Arc<dyn storage_api::Interface>,
        tempfile::TempDir,
    )> {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = vec![(
            "memory",
            storage::open("memory://").await.unwrap(),
            tempfile::tempdir().unwrap(),
        )];
        let sqlite = format!(
            "sqlite://{}/db.sqlite?synchronous=normal",
            dir.path().display()
        );
        stores.push(("sqlite", storage::open(&sqlite).await.unwrap(), dir));
        let dir = tempfile::tempdir().unwrap();
        let sled = format!("sled://{}/sled", dir.path().display());
        stores.push(("sled", storage::open(&sled).await.unwrap(), dir));
        stores
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn byte_level_watches_match_the_history() {
        for (name, store, _dir) in stores().await {
            println!("{name}");
            passes(Arc::new(KvClient::new(store, "/wc/".to_owned(), 32))).await;
        }
    }

    #[cfg(feature = "object")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn object_level_watches_match_the_history() {
        for (name, store, _dir) in stores().await {
            for cached in [false, true] {
                println!("{name}, watch cache {cached}");
                let client = crate::object::ObjectClient::new(
                    store.clone(),
                    &format!("/wc-{cached}/"),
                    32,
                    cached,
                );
                passes(Arc::new(client.unwrap())).await;
            }
        }
    }

    /// A watcher that misses a revision is caught.
    #[test]
    fn a_missing_revision_is_a_gap() {
        let mut log = RevisionLog::new(10);
        for revision in [11, 13] {
            log.push(revision);
        }
        let segment = Segment {
            start: 10,
            log,
            last: 13,
            events: 2,
        };
        let mut faults = Faults::default();
        check(&[11, 12, 13, 14], 0, &segment, &mut faults);
        assert_eq!(faults.missing, 1);
        let mut reordered = RevisionLog::new(10);
        for revision in [12, 11, 13, 13] {
            reordered.push(revision);
        }
        let segment = Segment {
            start: 10,
            log: reordered,
            last: 13,
            events: 4,
        };
        let mut faults = Faults::default();
        check(&[11, 12, 13], 0, &segment, &mut faults);
        assert_eq!(
            (faults.missing, faults.duplicates, faults.reorderings),
            (0, 1, 1)
        );
    }
}
