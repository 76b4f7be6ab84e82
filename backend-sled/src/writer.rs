//! The single writer: assigns revisions, commits each write as one sled transaction, makes a
//! batch durable with one flush (group commit), publishes the batch's events, then answers.
//! It also expires TTLs and deletes compacted history in small steps between batches.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionResult, TransactionError};
use storage_api::{
    BatchWrite, DeleteResponse, Error, KeyFilter, KeyValue, Precondition, Result, Revision, Ttl,
    WatchEvent,
};
use tokio::sync::oneshot;

use crate::codec::{self, LogRecord, Op, StateRecord};
use crate::database;
use crate::keys;
use crate::options::Durability;
use crate::read;
use crate::store::{Failure, Shared, StartState, check_schema, sled_error};

/// Log entries whose compacted history is deleted per step (one small transaction each).
const COMPACT_CHUNK: usize = 256;
/// Most TTL expiries handled per batch.
const EXPIRE_CHUNK: usize = 256;
/// Longest idle wait, so clock jumps and background work are noticed.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Pause after a failed background step (TTL expiry, compaction) before trying again.
const BACKOFF: Duration = Duration::from_secs(5);
/// Pause between attempts to reopen a store whose flush failed.
const REOPEN_RETRY: Duration = Duration::from_secs(1);
/// Free bytes a reopen waits for: sled writes while it recovers its log.
const REOPEN_SPACE: u64 = 8 * 1024 * 1024;
/// The space check counts the contents at least every this many checks.
const RECOUNT_EVERY: u32 = 30;

/// A write, as sent to the writer. Keys are validated by the caller.
#[derive(Debug)]
pub(crate) enum Command {
    Create {
        key: String,
        value: Bytes,
        ttl: Ttl,
    },
    Update {
        key: String,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    },
    Delete {
        key: String,
        precondition: Precondition,
    },
    Compact {
        revision: Revision,
    },
    /// An atomic batch (validated by the caller): one revision, one log entry, one sled
    /// transaction.
    Batch {
        writes: Vec<BatchWrite>,
    },
}

/// A successful write.
#[derive(Debug)]
pub(crate) enum Outcome {
    Revision(Revision),
    Deleted(DeleteResponse),
    Compacted,
}

/// A write and where to send its answer.
#[derive(Debug)]
pub(crate) struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Outcome>>,
    /// The caller's span, entered while the write is applied.
    pub span: tracing::Span,
}

/// Starts the writer thread.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    start: StartState,
) -> Result<(mpsc::Sender<Request>, JoinHandle<()>)> {
    let (sender, receiver) = mpsc::channel();
    let compact_interval = shared.options.compact_interval;
    let space_check_interval = shared.options.space_check_interval;
    let writer = Writer {
        shared,
        receiver,
        revision: start.revision,
        compact_done: start.compact_done,
        compact_target: start.compacted,
        samples: VecDeque::new(),
        next_compact_tick: (!compact_interval.is_zero()).then(|| Instant::now() + compact_interval),
        ttl_paused_until: None,
        compact_paused_until: None,
        next_reopen: None,
        next_space_check: Instant::now() + space_check_interval,
        space: SpaceCheck::default(),
    };
    let thread = std::thread::Builder::new()
        .name("sled-writer".into())
        .spawn(move || writer.run())
        .map_err(|e| Error::internal_from("starting the sled writer thread", e))?;
    Ok((sender, thread))
}

/// One write ready to commit: everything the transaction puts into the trees.
struct Commit<'a> {
    key: &'a str,
    revision: Revision,
    log: Vec<u8>,
    version: Vec<u8>,
    state: Option<Vec<u8>>,
    old_expiry: Option<u64>,
    new_expiry: Option<u64>,
}

struct Writer {
    shared: Arc<Shared>,
    receiver: mpsc::Receiver<Request>,
    /// The revision of the last committed write.
    revision: Revision,
    /// Compacted history has been deleted for log entries up to this revision.
    compact_done: Revision,
    /// ... and is to be deleted up to this one (the compaction revision).
    compact_target: Revision,
    /// (time, revision) samples for the background compactor's history window.
    samples: VecDeque<(Instant, Revision)>,
    next_compact_tick: Option<Instant>,
    ttl_paused_until: Option<Instant>,
    compact_paused_until: Option<Instant>,
    /// Set while the store refuses writes after a failed flush: when to try reopening it.
    next_reopen: Option<Instant>,
    /// When to compare the directory's size with its contents next (see [`Writer::rewrite`]).
    next_space_check: Instant,
    space: SpaceCheck,
}

/// What the space check remembers between checks.
#[derive(Default)]
struct SpaceCheck {
    /// The contents' bytes at the last count.
    logical: u64,
    /// Checks since then.
    checks_since_count: u32,
    /// The directory's size right after the last rewrite, in percent of its contents.
    rewritten_percent: u32,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn expiry(ttl: Ttl) -> Option<u64> {
    ttl.map(|ttl| {
        let millis = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        now_ms().saturating_add(millis)
    })
}

fn transaction_error(error: TransactionError<()>) -> Error {
    match error {
        TransactionError::Storage(e) => sled_error("committing a sled transaction", e),
        TransactionError::Abort(()) => Error::internal("sled transaction aborted"),
    }
}

impl Writer {
    fn run(mut self) {
        let _span =
            tracing::info_span!("sled_writer", path = %self.shared.path.display()).entered();
        loop {
            let wait = self.idle_wait();
            let first = if wait.is_zero() {
                match self.receiver.try_recv() {
                    Ok(request) => Some(request),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            } else {
                match self.receiver.recv_timeout(wait) {
                    Ok(request) => Some(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut batch = Vec::new();
            if let Some(first) = first {
                batch.push(first);
                while batch.len() < self.shared.options.max_batch {
                    match self.receiver.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
            }
            self.step(batch);
            self.background();
        }
        if self.shared.failure.lock().is_none() {
            if let Err(error) = self.sync() {
                tracing::error!(%error, "final sled flush failed");
            }
        }
        tracing::debug!("sled writer stopped");
    }

    /// How long to wait for a request before doing background work.
    fn idle_wait(&self) -> Duration {
        let now = Instant::now();
        let mut wait = MAX_IDLE;
        if let Some(at) = self.next_reopen {
            return at.saturating_duration_since(now).min(MAX_IDLE);
        }
        if self.compact_done < self.compact_target
            && self.compact_paused_until.is_none_or(|until| until <= now)
        {
            return Duration::ZERO;
        }
        if let Some(tick) = self.next_compact_tick {
            wait = wait.min(tick.saturating_duration_since(now));
        }
        wait = wait.min(self.next_space_check.saturating_duration_since(now));
        if self.ttl_paused_until.is_none_or(|until| until <= now) {
            let first = self
                .shared
                .database()
                .ok()
                .and_then(|database| database.trees.ttl.first().transpose());
            if let Some(Ok((raw, _))) = first {
                if let Ok((at, _)) = keys::parse_ttl_key(&raw) {
                    wait = wait.min(Duration::from_millis(at.saturating_sub(now_ms())));
                } else {
                    return Duration::ZERO;
                }
            }
        }
        wait
    }

    /// Applies a batch and its due TTL expiries, makes it durable, publishes, answers.
    fn step(&mut self, batch: Vec<Request>) {
        if let Err(error) = self.shared.check_failed() {
            for request in batch {
                let _ = request.reply.send(Err(clone_error(&error)));
            }
            return;
        }
        let _span = tracing::debug_span!("sled_batch", writes = batch.len()).entered();
        let mut events = Vec::new();
        let mut dirty = false;
        let mut answers = Vec::with_capacity(batch.len());
        for request in batch {
            let result = request
                .span
                .in_scope(|| self.apply(request.command, &mut events, &mut dirty));
            answers.push((request.reply, result));
        }
        if self
            .ttl_paused_until
            .is_none_or(|until| until <= Instant::now())
        {
            match self.expire(&mut events, &mut dirty) {
                Ok(()) => self.ttl_paused_until = None,
                Err(error) => {
                    tracing::error!(%error, "expiring sled TTLs failed; retrying later");
                    self.ttl_paused_until = Some(Instant::now() + BACKOFF);
                }
            }
        }
        // A write that failed inside sled (not a failed precondition) may have left sled
        // unable to write: a flush tells.
        let sled_failed = answers.iter().any(|(_, result)| {
            matches!(
                result,
                Err(Error::Unavailable { .. } | Error::Internal { .. })
            )
        });
        let flushed = match (dirty, sled_failed) {
            (_, true) => self.flush(),
            (true, false) => self.sync(),
            (false, false) => Ok(()),
        };
        if let Err(error) = flushed {
            let failure = self.fail(&error);
            // Every answer of the batch, a failed precondition's too, was decided on state that
            // may not survive: its outcome is unknown.
            for (reply, _) in answers {
                let _ = reply.send(Err(failure.error(format_args!(
                    "flushing this write's batch failed, so whether it took effect is unknown \
                     until the store is reopened"
                ))));
            }
            return;
        }
        self.shared.hub.publish(&events, self.revision);
        for (reply, result) in answers {
            // The caller may have gone away; the write stands.
            let _ = reply.send(result);
        }
    }

    /// Makes everything committed so far durable, per the durability mode.
    fn sync(&self) -> Result<()> {
        match self.shared.options.durability {
            Durability::None => Ok(()),
            Durability::Flush | Durability::Fsync => self.flush(),
        }
    }

    /// Writes sled's buffers (and fsyncs with `sync=fsync`) whatever the durability mode.
    fn flush(&self) -> Result<()> {
        // The markers let crash tests kill the process inside a flush.
        tracing::debug!("sled flush starting");
        let database = self.shared.database()?;
        database
            .db
            .flush()
            .map_err(|e| sled_error("flushing the sled store", e))?;
        if let Some(file) = &database.db_file {
            file.sync_data()
                .map_err(|e| Error::unavailable_from("fsyncing the sled database file", e))?;
        }
        self.shared.counters.flushes.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("sled flush done");
        Ok(())
    }

    fn apply(
        &mut self,
        command: Command,
        events: &mut Vec<WatchEvent>,
        dirty: &mut bool,
    ) -> Result<Outcome> {
        match command {
            Command::Create { key, value, ttl } => {
                let revision = self.create(&key, value, ttl, events)?;
                *dirty = true;
                Ok(Outcome::Revision(revision))
            }
            Command::Update {
                key,
                value,
                precondition,
                ttl,
            } => {
                let revision = self.update(&key, value, precondition, ttl, events)?;
                *dirty = true;
                Ok(Outcome::Revision(revision))
            }
            Command::Delete { key, precondition } => {
                let response = self.delete(&key, precondition, events)?;
                *dirty = true;
                Ok(Outcome::Deleted(response))
            }
            Command::Batch { writes } => {
                let revision = self.batch(writes, events)?;
                *dirty = true;
                Ok(Outcome::Revision(revision))
            }
            Command::Compact { revision } => {
                self.start_compaction(revision)?;
                *dirty = true;
                Ok(Outcome::Compacted)
            }
        }
    }

    fn next_revision(&self) -> Result<Revision> {
        self.revision
            .checked_add(1)
            .ok_or_else(|| Error::internal("sled store revision overflow"))
    }

    fn state(&self, key: &str) -> Result<Option<StateRecord>> {
        self.shared
            .database()?
            .trees
            .state
            .get(key.as_bytes())
            .map_err(|e| sled_error("reading sled state", e))?
            .map(|raw| codec::decode_state(&raw))
            .transpose()
    }

    /// The live value of `key` described by `state`.
    fn live(&self, key: &str, state: &StateRecord) -> Result<KeyValue> {
        let kv = read::put_version(&self.shared.database()?.trees, key, state.mod_revision)?;
        if kv.create_revision != state.create_revision {
            return Err(Error::internal(format!(
                "sled store is inconsistent for {key:?}: state says created at {}, version \
                 says {}",
                state.create_revision, kv.create_revision
            )));
        }
        Ok(kv)
    }

    fn check(key: &str, precondition: Precondition, live: &KeyValue) -> Result<()> {
        match precondition {
            Precondition::ModRevision(expected) if expected != live.mod_revision => {
                Err(Error::Conflict {
                    key: key.to_owned(),
                    expected,
                    current: Box::new(live.clone()),
                })
            }
            _ => Ok(()),
        }
    }

    fn create(
        &mut self,
        key: &str,
        value: Bytes,
        ttl: Ttl,
        events: &mut Vec<WatchEvent>,
    ) -> Result<Revision> {
        if self.state(key)?.is_some() {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let revision = self.next_revision()?;
        let expires_at_ms = expiry(ttl);
        self.commit(Commit {
            key,
            revision,
            log: codec::encode_log(&LogRecord {
                key: key.to_owned(),
                op: Op::Put,
                prev: 0,
            })?,
            version: codec::encode_put(revision, &value)?,
            state: Some(codec::encode_state(&StateRecord {
                create_revision: revision,
                mod_revision: revision,
                expires_at_ms,
            })?),
            old_expiry: None,
            new_expiry: expires_at_ms,
        })?;
        events.push(WatchEvent::Put {
            kv: KeyValue {
                key: key.to_owned(),
                value,
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        });
        Ok(revision)
    }

    fn update(
        &mut self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
        events: &mut Vec<WatchEvent>,
    ) -> Result<Revision> {
        let state = self.state(key)?.ok_or_else(|| Error::NotFound {
            key: key.to_owned(),
        })?;
        let live = self.live(key, &state)?;
        Self::check(key, precondition, &live)?;
        let revision = self.next_revision()?;
        let expires_at_ms = expiry(ttl);
        self.commit(Commit {
            key,
            revision,
            log: codec::encode_log(&LogRecord {
                key: key.to_owned(),
                op: Op::Put,
                prev: state.mod_revision,
            })?,
            version: codec::encode_put(state.create_revision, &value)?,
            state: Some(codec::encode_state(&StateRecord {
                create_revision: state.create_revision,
                mod_revision: revision,
                expires_at_ms,
            })?),
            old_expiry: state.expires_at_ms,
            new_expiry: expires_at_ms,
        })?;
        events.push(WatchEvent::Put {
            kv: KeyValue {
                key: key.to_owned(),
                value,
                create_revision: state.create_revision,
                mod_revision: revision,
            },
            prev: Some(live),
        });
        Ok(revision)
    }

    fn delete(
        &mut self,
        key: &str,
        precondition: Precondition,
        events: &mut Vec<WatchEvent>,
    ) -> Result<DeleteResponse> {
        let state = self.state(key)?.ok_or_else(|| Error::NotFound {
            key: key.to_owned(),
        })?;
        let live = self.live(key, &state)?;
        Self::check(key, precondition, &live)?;
        let revision = self.next_revision()?;
        self.commit(Commit {
            key,
            revision,
            log: codec::encode_log(&LogRecord {
                key: key.to_owned(),
                op: Op::Delete,
                prev: state.mod_revision,
            })?,
            version: codec::encode_tombstone()?,
            state: None,
            old_expiry: state.expires_at_ms,
            new_expiry: None,
        })?;
        events.push(WatchEvent::Delete {
            key: key.to_owned(),
            revision,
            prev: live.clone(),
        });
        Ok(DeleteResponse {
            revision,
            prev: live,
        })
    }

    /// An atomic batch: every expectation checked first, then every write at one revision in
    /// one sled transaction with one log entry holding all their records.
    fn batch(&mut self, writes: Vec<BatchWrite>, events: &mut Vec<WatchEvent>) -> Result<Revision> {
        let mut checked = Vec::with_capacity(writes.len());
        for write in writes {
            let state = self.state(write.key())?;
            let live = match &state {
                Some(state) => Some(self.live(write.key(), state)?),
                None => None,
            };
            write.check(live.as_ref())?;
            checked.push((write, state, live));
        }
        let revision = self.next_revision()?;
        let mut records = Vec::with_capacity(checked.len());
        let mut rows = Vec::with_capacity(checked.len());
        for (write, state, _) in &checked {
            let key = write.key();
            let prev = state.map_or(0, |s| s.mod_revision);
            let (op, version, record) = match write {
                BatchWrite::Put { value, .. } => {
                    let create_revision = state.map_or(revision, |s| s.create_revision);
                    let record = StateRecord {
                        create_revision,
                        mod_revision: revision,
                        expires_at_ms: None,
                    };
                    (
                        Op::Put,
                        codec::encode_put(create_revision, value)?,
                        Some(codec::encode_state(&record)?),
                    )
                }
                BatchWrite::Delete { .. } => (Op::Delete, codec::encode_tombstone()?, None),
            };
            records.push(LogRecord {
                key: key.to_owned(),
                op,
                prev,
            });
            let old_ttl = state
                .and_then(|s| s.expires_at_ms)
                .map(|at| keys::ttl_key(at, key));
            rows.push((keys::version_key(key, revision), version, record, old_ttl));
        }
        let log_key = keys::revision_key(revision);
        let log = codec::encode_log_batch(&records)?;
        let database = self.shared.database()?;
        let trees = &database.trees;
        (
            &trees.log,
            &trees.versions,
            &trees.state,
            &trees.ttl,
            &trees.meta,
        )
            .transaction(
                |(log_tree, versions, state, ttl, meta)| -> ConflictableTransactionResult<(), ()> {
                    log_tree.insert(&log_key[..], log.as_slice())?;
                    for ((write, _, _), (version_key, version, record, old_ttl)) in
                        checked.iter().zip(&rows)
                    {
                        versions.insert(version_key.as_slice(), version.as_slice())?;
                        match record {
                            Some(record) => {
                                state.insert(write.key().as_bytes(), record.as_slice())?;
                            }
                            None => {
                                state.remove(write.key().as_bytes())?;
                            }
                        }
                        if let Some(old) = old_ttl {
                            ttl.remove(old.as_slice())?;
                        }
                    }
                    meta.insert(keys::META_REVISION, &log_key[..])?;
                    Ok(())
                },
            )
            .map_err(transaction_error)?;
        self.revision = revision;
        self.shared
            .counters
            .writes
            .fetch_add(checked.len() as u64, Ordering::Relaxed);
        for (write, state, live) in checked {
            let key = write.key().to_owned();
            events.push(match (write, live) {
                (BatchWrite::Put { value, .. }, prev) => WatchEvent::Put {
                    kv: KeyValue {
                        key,
                        value,
                        create_revision: state.map_or(revision, |s| s.create_revision),
                        mod_revision: revision,
                    },
                    prev,
                },
                (BatchWrite::Delete { .. }, Some(prev)) => WatchEvent::Delete {
                    key,
                    revision,
                    prev,
                },
                (BatchWrite::Delete { .. }, None) => {
                    return Err(Error::internal(format!(
                        "batch delete of {key:?} found no live value after its check"
                    )));
                }
            });
        }
        Ok(revision)
    }

    /// Commits one write atomically across the trees and advances the revision.
    fn commit(&mut self, commit: Commit<'_>) -> Result<()> {
        let database = self.shared.database()?;
        let trees = &database.trees;
        let log_key = keys::revision_key(commit.revision);
        let version_key = keys::version_key(commit.key, commit.revision);
        let old_ttl = commit.old_expiry.map(|at| keys::ttl_key(at, commit.key));
        let new_ttl = commit.new_expiry.map(|at| keys::ttl_key(at, commit.key));
        (
            &trees.log,
            &trees.versions,
            &trees.state,
            &trees.ttl,
            &trees.meta,
        )
            .transaction(
                |(log, versions, state, ttl, meta)| -> ConflictableTransactionResult<(), ()> {
                    log.insert(&log_key[..], commit.log.as_slice())?;
                    versions.insert(version_key.as_slice(), commit.version.as_slice())?;
                    match &commit.state {
                        Some(record) => {
                            state.insert(commit.key.as_bytes(), record.as_slice())?;
                        }
                        None => {
                            state.remove(commit.key.as_bytes())?;
                        }
                    }
                    if let Some(old) = &old_ttl {
                        ttl.remove(old.as_slice())?;
                    }
                    if let Some(new) = &new_ttl {
                        ttl.insert(new.as_slice(), &[][..])?;
                    }
                    meta.insert(keys::META_REVISION, &log_key[..])?;
                    Ok(())
                },
            )
            .map_err(transaction_error)?;
        self.revision = commit.revision;
        self.shared.counters.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes keys whose TTL is due, each as an ordinary delete with its own revision.
    fn expire(&mut self, events: &mut Vec<WatchEvent>, dirty: &mut bool) -> Result<()> {
        let now = now_ms();
        for _ in 0..EXPIRE_CHUNK {
            let Some((raw, _)) = self
                .shared
                .database()?
                .trees
                .ttl
                .first()
                .map_err(|e| sled_error("reading sled ttl", e))?
            else {
                return Ok(());
            };
            let (at, key) = match keys::parse_ttl_key(&raw) {
                Ok((at, key)) => (at, key.to_owned()),
                Err(error) => {
                    tracing::error!(%error, "removing a corrupt sled ttl entry");
                    self.remove_ttl_entry(&raw)?;
                    continue;
                }
            };
            if at > now {
                return Ok(());
            }
            match self.state(&key)? {
                Some(state) if state.expires_at_ms == Some(at) => {
                    let _span = tracing::debug_span!("sled_expire", key = %key).entered();
                    self.delete(&key, Precondition::None, events)?;
                    self.shared.counters.expired.fetch_add(1, Ordering::Relaxed);
                    *dirty = true;
                }
                _ => self.remove_ttl_entry(&raw)?,
            }
        }
        Ok(())
    }

    fn remove_ttl_entry(&self, raw: &[u8]) -> Result<()> {
        self.shared
            .database()?
            .trees
            .ttl
            .remove(raw)
            .map_err(|e| sled_error("removing a sled ttl entry", e))?;
        Ok(())
    }

    /// Moves the compaction revision to `revision` (durably, with the batch); the history below
    /// it is deleted in steps afterwards.
    fn start_compaction(&mut self, revision: Revision) -> Result<()> {
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if revision <= compacted {
            return Err(Error::Compacted {
                requested: revision,
                compacted,
            });
        }
        if revision > self.revision {
            return Err(Error::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        self.shared
            .database()?
            .trees
            .meta
            .insert(keys::META_COMPACTED, &keys::revision_key(revision)[..])
            .map_err(|e| sled_error("writing the sled compaction revision", e))?;
        // Readers learn of the new floor before any history is deleted.
        self.shared.compacted.store(revision, Ordering::SeqCst);
        self.compact_target = revision;
        tracing::info!(revision, "sled compaction started");
        Ok(())
    }

    /// Stops taking writes after a failed flush, until [`Writer::try_reopen`] succeeds. Watches
    /// stay open: they have seen only durable writes, and resume after the reopen.
    fn fail(&mut self, error: &Error) -> Failure {
        tracing::error!(%error, "sled flush failed; refusing writes until the store is reopened from disk");
        let failure = Failure::of(error);
        *self.shared.failure.lock() = Some(failure.clone());
        self.next_reopen = Some(Instant::now() + REOPEN_RETRY);
        failure
    }

    /// One attempt to leave the failed state by reopening the database from disk.
    fn try_reopen(&mut self) {
        let _span = tracing::info_span!("sled_reopen").entered();
        match self.reopen() {
            Ok(()) => {
                self.next_reopen = None;
                *self.shared.failure.lock() = None;
                tracing::info!(
                    revision = self.revision,
                    "reopened the sled store; taking writes again"
                );
            }
            Err(error) => {
                tracing::warn!(%error, "the sled store cannot be reopened yet; retrying");
                self.next_reopen = Some(Instant::now() + REOPEN_RETRY);
            }
        }
    }

    /// Closes sled (which refuses every write once a flush failed) and opens the directory
    /// again, recovering what reached the disk. Writes that were durable but not yet published
    /// (a flush may fail after writing some of its batch) are published from the log, so
    /// watchers see them in order.
    fn reopen(&mut self) -> Result<()> {
        let path = &self.shared.path;
        // sled writes as it recovers, and reads need a database meanwhile: only close the old
        // one once there is room to open it again.
        database::ensure_free_space(path, REOPEN_SPACE)?;
        let mut start = {
            let mut slot = self.shared.database.write();
            drop(slot.take());
            let database = self.shared.open_database()?;
            let start = check_schema(path, &database.trees)?;
            *slot = Some(database);
            start
        };
        let durable = start;
        let published = self.shared.hub.published();
        // Readers were told of compaction up to here: it never moves back, even if the flush
        // that failed held its record.
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if start.revision < published {
            if self.shared.options.durability != Durability::None {
                return Err(Error::internal(format!(
                    "the reopened sled store is at revision {}, behind the published revision \
                     {published}",
                    start.revision
                )));
            }
            // `sync=none` published writes the failed flush lost. Their revisions were seen, so
            // they are never reused: the store moves on from `published`, with the lost ones
            // compacted (a watch from before them gets 410 and re-lists).
            tracing::warn!(
                durable = start.revision,
                published,
                "sync=none: writes acknowledged before the failed flush are lost"
            );
            start.revision = published;
            start.compacted = published;
            // Watchers (a watch cache among them) hold what was lost: they resume, get
            // `Compacted` and list again.
            self.shared.hub.end_watches();
        }
        // Never past the durable revision either: a compaction in the failed batch may have
        // named a write that did not survive.
        start.compacted = start.compacted.max(compacted).min(start.revision);
        let mut events = Vec::new();
        {
            let database = self.shared.database()?;
            if start.compacted > durable.compacted || start.revision > durable.revision {
                let mut batch = sled::Batch::default();
                batch.insert(keys::META_REVISION, &keys::revision_key(start.revision)[..]);
                batch.insert(
                    keys::META_COMPACTED,
                    &keys::revision_key(start.compacted)[..],
                );
                database
                    .trees
                    .meta
                    .apply_batch(batch)
                    .map_err(|e| sled_error("writing sled meta after a reopen", e))?;
            }
            let everything = KeyFilter {
                key: String::new(),
                prefix: true,
            };
            let mut after = published;
            while after < start.revision {
                let (page, upto) = read::events_unchecked(
                    &database.trees,
                    &everything,
                    after,
                    start.revision,
                    COMPACT_CHUNK,
                )?;
                events.extend(page);
                after = upto;
            }
        }
        self.flush()?;
        self.revision = start.revision;
        self.compact_done = start.compact_done;
        self.compact_target = start.compacted;
        self.shared
            .compacted
            .store(start.compacted, Ordering::SeqCst);
        self.shared.hub.publish(&events, start.revision);
        Ok(())
    }

    /// Compares the directory's size with the bytes it holds and, past
    /// [`SledOptions::rewrite_percent`](crate::SledOptions::rewrite_percent), rewrites it.
    fn check_space(&mut self, now: Instant) {
        let interval = self.shared.options.space_check_interval;
        self.next_space_check = now + interval;
        if self.shared.options.rewrite_percent == 0 {
            return;
        }
        let outcome = match self.rewrite_due() {
            Ok(true) => self.rewrite(),
            Ok(false) => Ok(()),
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            tracing::error!(%error, "sled space check or rewrite failed; retrying later");
            self.next_space_check = now + BACKOFF.max(interval * 10);
        }
    }

    /// Whether the directory occupies more than `rewrite_percent` of its contents, and more
    /// than half again the share a fresh copy took at the last rewrite (a fresh copy already
    /// occupies 2-2.7x its contents: rewriting below that would only hold writes back).
    fn rewrite_due(&mut self) -> Result<bool> {
        let shared = Arc::clone(&self.shared);
        let options = &shared.options;
        let disk = database::disk_bytes(&shared.path)?;
        if disk < options.rewrite_min_bytes {
            return Ok(false);
        }
        let percent = u128::from(options.rewrite_percent)
            .max(u128::from(self.space.rewritten_percent) * 3 / 2);
        let over = |logical: u64| u128::from(disk) * 100 > u128::from(logical) * percent;
        // Counting the contents scans every tree while writes wait: only when the last count
        // says a rewrite may be due, or every few checks, since deletes shrink the contents.
        if !over(self.space.logical) && self.space.checks_since_count < RECOUNT_EVERY {
            self.space.checks_since_count += 1;
            return Ok(false);
        }
        let logical = shared.database()?.trees.logical_bytes()?;
        self.space.logical = logical;
        self.space.checks_since_count = 0;
        if !over(logical) {
            return Ok(false);
        }
        tracing::info!(
            disk,
            logical,
            "the sled directory outgrew its contents; rewriting it"
        );
        Ok(true)
    }

    /// Gives back the space sled does not reclaim: copies the trees into a fresh directory
    /// and swaps it in (see [`crate::database`]). Writes wait meanwhile, in the channel; reads
    /// go on, except while the directories are swapped.
    fn rewrite(&mut self) -> Result<()> {
        // The markers let crash tests kill the process inside a rewrite.
        tracing::debug!("sled rewrite starting");
        let started = Instant::now();
        // Compaction steps are committed without a flush: make them durable before copying.
        if let Err(error) = self.flush() {
            self.fail(&error);
            return Err(error);
        }
        let path = &self.shared.path;
        let copy = database::copy_for_rewrite(&*self.shared.database()?, path)?;
        let mut slot = self.shared.database.write();
        drop(slot.take());
        // As for the copy: sled lets go of its files a moment after the drop.
        let swapped =
            database::wait_until_closed(path).and_then(|()| database::swap_in_rewrite(path, &copy));
        // The open finishes or undoes a swap that failed half-way (`recover_layout`).
        match self.shared.open_database() {
            Ok(database) => *slot = Some(database),
            Err(error) => {
                drop(slot);
                if let Err(swap) = &swapped {
                    tracing::error!(error = %swap, "swapping in the sled rewrite failed");
                }
                self.fail(&error);
                return Err(error);
            }
        }
        drop(slot);
        swapped?;
        self.shared
            .counters
            .rewrites
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!("sled rewrite done");
        // The copy holds what the last count found (writes waited since).
        let disk = database::disk_bytes(&self.shared.path).unwrap_or(0);
        self.space.rewritten_percent =
            u32::try_from(u128::from(disk) * 100 / u128::from(self.space.logical.max(1)))
                .unwrap_or(u32::MAX);
        tracing::info!(
            disk,
            millis = started.elapsed().as_millis(),
            "rewrote the sled directory; writes waited meanwhile"
        );
        Ok(())
    }

    /// Background work between batches: reopening after a failure, one compaction step, the
    /// compactor's tick and the space check.
    fn background(&mut self) {
        let now = Instant::now();
        if let Some(at) = self.next_reopen {
            if at <= now {
                self.try_reopen();
            }
            return;
        }
        if now >= self.next_space_check {
            self.check_space(now);
        }
        if let Some(tick) = self.next_compact_tick {
            if tick <= now {
                self.compact_tick(now);
                self.next_compact_tick = Some(now + self.shared.options.compact_interval);
            }
        }
        if self.compact_done < self.compact_target
            && self.compact_paused_until.is_none_or(|until| until <= now)
        {
            match self.compact_step() {
                Ok(()) => self.compact_paused_until = None,
                Err(error) => {
                    tracing::error!(%error, "sled compaction step failed; retrying later");
                    self.compact_paused_until = Some(now + BACKOFF);
                }
            }
        }
    }

    /// The background compactor: compact to the newest revision that is both older than the
    /// history window and at least `min_history` revisions old.
    fn compact_tick(&mut self, now: Instant) {
        let options = &self.shared.options;
        self.samples.push_back((now, self.revision));
        let horizon = now.checked_sub(options.history);
        let mut target = None;
        while let Some(&(at, revision)) = self.samples.front() {
            if horizon.is_some_and(|horizon| at <= horizon) {
                target = Some(revision);
                self.samples.pop_front();
            } else {
                break;
            }
        }
        let Some(target) = target else { return };
        let target = target.min(self.revision.saturating_sub(options.min_history));
        if target <= self.shared.compacted.load(Ordering::SeqCst) {
            return;
        }
        if self.shared.check_failed().is_err() {
            return;
        }
        if let Err(error) = self.start_compaction(target) {
            tracing::error!(%error, "background sled compaction failed");
        } else if let Err(error) = self.sync() {
            // sled refuses writes after a failed flush; so must the store, until reopened.
            self.fail(&error);
        }
    }

    /// Deletes the history of up to [`COMPACT_CHUNK`] log entries below the compaction
    /// revision: for each entry, the version it superseded, and the entry itself; tombstones
    /// too. What remains is exactly what reads and watches at or after the compaction revision
    /// can reach.
    fn compact_step(&mut self) -> Result<()> {
        tracing::debug!("sled compaction step starting");
        let database = self.shared.database()?;
        let trees = &database.trees;
        let start = self.compact_done.saturating_add(1);
        let end = self.compact_target;
        let mut log_keys = Vec::new();
        let mut version_keys = Vec::new();
        let mut last = self.compact_done;
        if start <= end {
            for entry in trees
                .log
                .range(keys::revision_key(start)..=keys::revision_key(end))
                .take(COMPACT_CHUNK)
            {
                let (raw_revision, raw_record) =
                    entry.map_err(|e| sled_error("scanning the sled log", e))?;
                let revision = keys::parse_u64("log key", &raw_revision)?;
                for record in codec::decode_log_entry(&raw_record)? {
                    if record.prev != 0 {
                        version_keys.push(keys::version_key(&record.key, record.prev));
                    }
                    if record.op == Op::Delete {
                        version_keys.push(keys::version_key(&record.key, revision));
                    }
                }
                log_keys.push(raw_revision);
                last = revision;
            }
        }
        let done = if log_keys.len() < COMPACT_CHUNK {
            end
        } else {
            last
        };
        (&trees.log, &trees.versions, &trees.meta)
            .transaction(
                |(log, versions, meta)| -> ConflictableTransactionResult<(), ()> {
                    for key in &log_keys {
                        log.remove(key)?;
                    }
                    for key in &version_keys {
                        versions.remove(key.as_slice())?;
                    }
                    meta.insert(keys::META_COMPACT_DONE, &keys::revision_key(done)[..])?;
                    Ok(())
                },
            )
            .map_err(transaction_error)?;
        self.compact_done = done;
        self.shared
            .counters
            .compacted_entries
            .fetch_add(log_keys.len() as u64, Ordering::Relaxed);
        tracing::debug!(entries = log_keys.len(), "sled compaction step done");
        if done == end {
            tracing::info!(revision = end, "sled compaction finished");
        }
        Ok(())
    }
}

/// A copy of an error for several waiters (the kinds that can occur here carry no source
/// worth cloning).
fn clone_error(error: &Error) -> Error {
    match error {
        Error::Unavailable { message, .. } => Error::unavailable(message.clone()),
        other => Error::internal(other.to_string()),
    }
}
