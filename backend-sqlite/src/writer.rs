//! The single writer: one thread owning the write connection, fed through a channel.
//!
//! Group commit: the thread takes every request waiting in the channel (up to
//! [`SqliteOptions::max_batch`]) and applies them in one `BEGIN IMMEDIATE` transaction, each
//! checked against its own precondition and given its own revision; a rejected request changes
//! nothing and fails alone. Requests arriving while that transaction commits (the fsync) wait in
//! the channel and form the next batch. After the commit the events are published to watchers
//! and only then are the callers answered.
//!
//! Between batches the thread expires TTLs (as ordinary deletes inside the next transaction),
//! decides background compaction, and deletes superseded history in small transactions.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use storage_api::{
    BatchWrite, DeleteResponse, Error, KeyValue, Precondition, Result, Revision, Ttl, WatchEvent,
};
use tokio::sync::oneshot;

use crate::options::SqliteOptions;
use crate::reader;
use crate::sql_error;
use storage_api::WatchHub;

/// Expired keys deleted per transaction.
const EXPIRY_BATCH: usize = 256;

/// A write request.
#[derive(Debug)]
pub(crate) enum WriteOp {
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
    /// An atomic batch (validated by the caller): one log row per write, all reporting the
    /// revision of the last row.
    Batch {
        writes: Vec<BatchWrite>,
    },
}

impl WriteOp {
    /// The TTL the write sets, if any.
    fn ttl(&self) -> Ttl {
        match self {
            WriteOp::Create { ttl, .. } | WriteOp::Update { ttl, .. } => *ttl,
            WriteOp::Delete { .. } | WriteOp::Batch { .. } => None,
        }
    }
}

/// What a successful write returns.
#[derive(Debug)]
pub(crate) enum Written {
    Revision(Revision),
    Deleted(DeleteResponse),
}

/// A message to the writer thread.
#[derive(Debug)]
pub(crate) enum Command {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<Written>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// Counters shared with [`crate::SqliteStore::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) compact_revision: AtomicU64,
    pub(crate) compacted_through: AtomicU64,
    pub(crate) compaction_batches: AtomicU64,
    pub(crate) compacted_rows: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) vacuums: AtomicU64,
    pub(crate) vacuumed_pages: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// The state the writer loads at open.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) current: Revision,
    pub(crate) compact_rev: Revision,
    pub(crate) compacted_through: Revision,
    pub(crate) next_expiry: Option<i64>,
    /// The rows `current_delta` holds: one per key written since the last fold, less the
    /// tombstone rows compaction removed.
    pub(crate) delta_rows: u64,
}

pub(crate) fn load(conn: &Connection) -> rusqlite::Result<Loaded> {
    let meta = |name: &str| -> rusqlite::Result<Revision> {
        conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| {
            row.get(0)
        })
    };
    let compact_rev = meta("compact_rev")?;
    let compacted_through = meta("compacted_through")?;
    let newest: Option<Revision> =
        conn.query_row("SELECT max(rev) FROM log", [], |row| row.get(0))?;
    Ok(Loaded {
        current: newest.unwrap_or(0).max(compact_rev),
        compact_rev,
        compacted_through: compacted_through.min(compact_rev),
        next_expiry: next_expiry(conn)?,
        delta_rows: conn.query_row("SELECT count(*) FROM current_delta", [], |row| row.get(0))?,
    })
}

/// The earliest TTL deadline of a key's newest state.
fn next_expiry(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(NEXT_EXPIRY_SQL, [], |row| row.get(0))
}

/// The earliest deadline in `current_delta` and the earliest in `current` (through its expiry
/// index) of a row no delta row replaces: a replaced row's deadline is no longer its key's.
const NEXT_EXPIRY_SQL: &str = "SELECT min(deadline) FROM ( \
       SELECT min(expires_at) AS deadline FROM current_delta WHERE expires_at IS NOT NULL \
       UNION ALL \
       SELECT * FROM (SELECT c.expires_at FROM current c WHERE c.expires_at IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM current_delta d WHERE d.key = c.key) \
         ORDER BY c.expires_at LIMIT 1))";

/// Keys whose newest state's TTL ran out by `?1`, earliest first, at most `?2`, each with the
/// revision its value reports. Each table gives its earliest `?2` first (`current` through
/// its expiry index), so a backlog of expired keys is never sorted whole.
const DUE_SQL: &str = "SELECT s.key, coalesce(l.batch_end, s.rev) FROM ( \
       SELECT * FROM (SELECT key, rev, expires_at FROM current_delta \
         WHERE expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2) \
       UNION ALL \
       SELECT * FROM (SELECT c.key, c.rev, c.expires_at FROM current c \
         WHERE c.expires_at IS NOT NULL AND c.expires_at <= ?1 \
         AND NOT EXISTS (SELECT 1 FROM current_delta d WHERE d.key = c.key) \
         ORDER BY c.expires_at LIMIT ?2)) s \
     CROSS JOIN log l ON l.rev = s.rev ORDER BY s.expires_at LIMIT ?2";

/// Moves every `current_delta` row into `current` (replacing the key's row there) and empties
/// the delta, inside the caller's transaction. Row by row, in key order: SQLite runs a
/// single-row upsert without a statement journal, where one `INSERT ... SELECT` of every row
/// copies each page it touches into one first.
fn fold_delta(tx: &Transaction<'_>) -> Result<()> {
    let rows: Vec<(Vec<u8>, Revision, bool, Option<i64>)> = {
        let mut stmt = tx
            .prepare_cached("SELECT key, rev, deleted, expires_at FROM current_delta ORDER BY key")
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .map_err(sql_error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql_error)?
    };
    let mut upsert = tx.prepare_cached(UPSERT_CURRENT_SQL).map_err(sql_error)?;
    for (key, rev, deleted, expires_at) in rows {
        upsert
            .execute(rusqlite::params![key, rev, deleted, expires_at])
            .map_err(sql_error)?;
    }
    tx.execute("DELETE FROM current_delta", [])
        .map_err(sql_error)?;
    Ok(())
}

/// Sets key `?1`'s row in `current`.
const UPSERT_CURRENT_SQL: &str = "INSERT INTO current (key, rev, deleted, expires_at) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE SET rev = excluded.rev, \
     deleted = excluded.deleted, expires_at = excluded.expires_at";

/// Milliseconds since the Unix epoch: TTL deadlines are wall-clock times so they survive
/// restarts.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn expires_at(now: i64, ttl: Ttl) -> Option<i64> {
    ttl.map(|ttl| now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)))
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    /// Held for as long as the writer runs: the single-opener lock.
    pub(crate) lock: File,
    pub(crate) rx: Receiver<Command>,
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) options: SqliteOptions,
    pub(crate) state: Loaded,
    /// `(when, current revision)` samples that map the time window onto revisions.
    samples: VecDeque<(Instant, Revision)>,
    next_tick: Instant,
    /// After a failed background step, wait before retrying.
    backoff_until: Option<Instant>,
}

/// The result of applying one accepted write inside a transaction.
struct Applied {
    written: Written,
    events: Vec<WatchEvent>,
    /// Log rows written (and revisions consumed).
    rows: u64,
    /// Rows added to `current_delta`: the written keys that had none there.
    delta_rows: u64,
}

/// A write's outcome inside a transaction: `Err` of the outer result is a database failure that
/// aborts the whole transaction; `Err` of the inner one rejects this request alone.
type Apply = Result<Result<Applied>>;

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        lock: File,
        rx: Receiver<Command>,
        hub: Arc<WatchHub>,
        counters: Arc<Counters>,
        options: SqliteOptions,
        state: Loaded,
    ) -> Self {
        let now = Instant::now();
        counters
            .compact_revision
            .store(state.compact_rev, Ordering::Relaxed);
        counters
            .compacted_through
            .store(state.compacted_through, Ordering::Relaxed);
        let mut samples = VecDeque::new();
        samples.push_back((now, state.current));
        Writer {
            conn,
            lock,
            rx,
            hub,
            counters,
            next_tick: now + options.compaction_interval,
            options,
            state,
            samples,
            backoff_until: None,
        }
    }

    /// Runs until every sender is dropped, then ends all watches.
    pub(crate) fn run(mut self) {
        loop {
            let now = Instant::now();
            let background_ready = self.backoff_until.is_none_or(|until| now >= until);
            let compaction_pending =
                background_ready && self.state.compacted_through < self.state.compact_rev;
            let first = if compaction_pending {
                match self.rx.try_recv() {
                    Ok(command) => Some(command),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match self.rx.recv_timeout(self.sleep_for(now)) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut batch = Vec::new();
            if let Some(command) = first {
                batch.push(command);
                while batch.len() < self.options.max_batch {
                    match self.rx.try_recv() {
                        Ok(command) => batch.push(command),
                        Err(_) => break,
                    }
                }
            }
            let expire = self
                .state
                .next_expiry
                .is_some_and(|deadline| deadline <= now_millis());
            if !batch.is_empty() || expire {
                self.commit(batch, expire);
            }
            let now = Instant::now();
            if self.options.auto_compaction && now >= self.next_tick {
                self.next_tick = now + self.options.compaction_interval;
                self.auto_compact(now);
            }
            if self.backoff_until.is_none_or(|until| now >= until)
                && self.state.compacted_through < self.state.compact_rev
            {
                if let Err(error) = self.compact_step() {
                    tracing::warn!(%error, "compaction step failed; retrying in 1s");
                    self.backoff_until = Some(now + Duration::from_secs(1));
                }
            }
        }
        self.hub.close();
        tracing::debug!("sqlite writer stopped");
        drop(self.lock);
    }

    /// How long the loop may sleep waiting for requests.
    fn sleep_for(&self, now: Instant) -> Duration {
        let mut sleep = Duration::from_secs(3600);
        if self.options.auto_compaction {
            sleep = sleep.min(self.next_tick.saturating_duration_since(now));
        }
        if let Some(until) = self.backoff_until {
            sleep = sleep.min(until.saturating_duration_since(now));
        }
        if let Some(deadline) = self.state.next_expiry {
            let wait = u64::try_from(deadline.saturating_sub(now_millis())).unwrap_or(0);
            sleep = sleep.min(Duration::from_millis(wait));
        }
        sleep.max(Duration::from_millis(1))
    }

    /// Applies one group of requests (and due TTL expiries) in one transaction.
    fn commit(&mut self, batch: Vec<Command>, expire: bool) {
        let span = tracing::debug_span!("sqlite_commit", requests = batch.len(), expire);
        let _enter = span.enter();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
        let mut events: Vec<WatchEvent> = Vec::new();
        let mut rev = self.state.current;
        let mut compact_to = self.state.compact_rev;
        let mut expired = 0u64;
        let mut delta_rows = self.state.delta_rows;
        let result = (|| -> Result<Option<i64>> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            if expire {
                let now = now_millis();
                let due: Vec<(String, Revision)> = {
                    let mut stmt = tx.prepare_cached(DUE_SQL).map_err(sql_error)?;
                    let rows = stmt
                        .query_map(rusqlite::params![now, EXPIRY_BATCH], |row| {
                            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Revision>(1)?))
                        })
                        .map_err(sql_error)?;
                    let mut due = Vec::new();
                    for row in rows {
                        let (key, rev) = row.map_err(sql_error)?;
                        let key = String::from_utf8(key)
                            .map_err(|e| Error::internal_from("stored key is not UTF-8", e))?;
                        due.push((key, rev));
                    }
                    due
                };
                for (key, mod_rev) in due {
                    let op = WriteOp::Delete {
                        key,
                        precondition: Precondition::ModRevision(mod_rev),
                    };
                    if let Ok(applied) = apply(&tx, &op, rev + 1, now)? {
                        rev += applied.rows;
                        delta_rows += applied.delta_rows;
                        expired += 1;
                        events.extend(applied.events);
                    }
                }
            }
            let now = now_millis();
            // The next TTL deadline, kept without a query per transaction: new deadlines can
            // only move it earlier; expiries, and updates or deletes while any deadline is
            // pending (they may remove the earliest), make it read again.
            let mut deadline = self.state.next_expiry;
            let mut rescan = expire;
            for command in &batch {
                match command {
                    Command::Write { op, .. } => match apply(&tx, op, rev + 1, now)? {
                        Ok(applied) => {
                            rev += applied.rows;
                            delta_rows += applied.delta_rows;
                            events.extend(applied.events);
                            outcomes.push(Outcome::Write(Ok(applied.written)));
                            rescan |= deadline.is_some() && !matches!(op, WriteOp::Create { .. });
                            if let Some(at) = op.ttl().and_then(|ttl| expires_at(now, Some(ttl))) {
                                deadline = Some(deadline.map_or(at, |d| d.min(at)));
                            }
                        }
                        Err(error) => outcomes.push(Outcome::Write(Err(error))),
                    },
                    Command::Compact { revision, .. } => {
                        let revision = *revision;
                        let outcome = if revision <= compact_to {
                            Err(Error::Compacted {
                                requested: revision,
                                compacted: compact_to,
                            })
                        } else if revision > rev {
                            Err(Error::FutureRevision {
                                requested: revision,
                                current: rev,
                            })
                        } else {
                            // A revision inside an atomic batch compacts up to the batch.
                            let revision = reader::settle(&tx, revision)?;
                            set_meta(&tx, "compact_rev", revision)?;
                            compact_to = revision;
                            Ok(())
                        };
                        outcomes.push(Outcome::Compact(outcome));
                    }
                }
            }
            // Counting rows rather than writes lets updates of a working set smaller than the
            // limit rewrite their delta rows without ever folding.
            if delta_rows >= self.options.delta_fold_rows {
                fold_delta(&tx)?;
                delta_rows = 0;
            }
            let next = if rescan {
                next_expiry(&tx).map_err(sql_error)?
            } else {
                deadline
            };
            tx.commit().map_err(sql_error)?;
            Ok(next)
        })();
        match result {
            Ok(next) => {
                self.state.current = rev;
                self.state.next_expiry = next;
                self.state.delta_rows = delta_rows;
                if compact_to != self.state.compact_rev {
                    self.state.compact_rev = compact_to;
                    self.counters
                        .compact_revision
                        .store(compact_to, Ordering::Relaxed);
                }
                bump(&self.counters.transactions, 1);
                bump(&self.counters.writes, events.len() as u64);
                bump(&self.counters.expired, expired);
                if !events.is_empty() {
                    self.hub.publish(&events, rev);
                }
                for (command, outcome) in batch.into_iter().zip(outcomes) {
                    match (command, outcome) {
                        (Command::Write { reply, .. }, Outcome::Write(result)) => {
                            if result.is_err() {
                                bump(&self.counters.rejected, 1);
                            }
                            let _ = reply.send(result);
                        }
                        (Command::Compact { reply, .. }, Outcome::Compact(result)) => {
                            let _ = reply.send(result);
                        }
                        // Outcomes are pushed in command order with the matching kind.
                        (Command::Write { reply, .. }, Outcome::Compact(_)) => {
                            let _ = reply.send(Err(Error::internal("writer outcome mismatch")));
                        }
                        (Command::Compact { reply, .. }, Outcome::Write(_)) => {
                            let _ = reply.send(Err(Error::internal("writer outcome mismatch")));
                        }
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "write transaction failed; every request in it fails");
                bump(&self.counters.failed, batch.len() as u64);
                // An internal failure (a full disk, an I/O error, corruption) stays one; only
                // a busy database is worth retrying.
                let failure = || match &error {
                    Error::Internal { message, .. } => {
                        Error::internal(format!("write transaction failed: {message}"))
                    }
                    other => Error::unavailable(format!("write transaction failed: {other}")),
                };
                for command in batch {
                    match command {
                        Command::Write { reply, .. } => {
                            let _ = reply.send(Err(failure()));
                        }
                        Command::Compact { reply, .. } => {
                            let _ = reply.send(Err(failure()));
                        }
                    }
                }
                if expire {
                    // Do not spin on a failing expiry; try again shortly.
                    self.state.next_expiry = Some(now_millis().saturating_add(1000));
                }
            }
        }
    }

    /// Moves the compaction revision forward to what the window allows.
    fn auto_compact(&mut self, now: Instant) {
        self.samples.push_back((now, self.state.current));
        let cutoff = now.checked_sub(self.options.compaction_window);
        // The newest sample at or before the cutoff is the revision the window allows.
        let mut target = None;
        if let Some(cutoff) = cutoff {
            while let Some(&(when, revision)) = self.samples.front() {
                if when > cutoff {
                    break;
                }
                target = Some(revision);
                self.samples.pop_front();
            }
            if let Some(revision) = target {
                // Keep it: later cutoffs may still need it until a newer sample qualifies.
                self.samples.push_front((cutoff, revision));
            }
        }
        let Some(target) = target else { return };
        let target = target.min(
            self.state
                .current
                .saturating_sub(self.options.compaction_min_revisions),
        );
        if target <= self.state.compact_rev {
            return;
        }
        let result = (|| -> rusqlite::Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE name = 'compact_rev'",
                [target],
            )?;
            tx.commit()
        })();
        match result {
            Ok(()) => {
                tracing::debug!(revision = target, "background compaction");
                self.state.compact_rev = target;
                self.counters
                    .compact_revision
                    .store(target, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "could not advance the compaction revision"),
        }
    }

    /// Deletes superseded versions and tombstones for the next batch of log rows at or below
    /// the compaction revision. For every row `r` in the batch, the older versions of its key are
    /// superseded (`r` is visible at the compaction revision instead); a tombstone is dropped
    /// too, and with it the key's state rows if the key is still deleted.
    fn compact_step(&mut self) -> rusqlite::Result<()> {
        let from = self.state.compacted_through;
        let target = self.state.compact_rev;
        let batch = self.options.compaction_batch.max(1);
        let span = tracing::debug_span!("sqlite_compact_step", from, target);
        let _enter = span.enter();
        // The maintenance markers (here and in `checkpoint_and_vacuum`) let crash tests kill
        // the process inside each phase.
        tracing::debug!("sqlite compaction step starting");
        let mut removed = 0u64;
        let mut removed_delta_rows = 0u64;
        let upto;
        {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // The next `batch` rows, not the next `batch` revision numbers: revisions without
            // rows (a store whose revision was moved forward by `bump_revision`) cost nothing.
            let rows: Vec<(Revision, Vec<u8>, bool, Option<Revision>)> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT rev, key, deleted, older_rev FROM log \
                     WHERE rev > ?1 AND rev <= ?2 ORDER BY rev LIMIT ?3",
                )?;
                let rows = stmt.query_map([from, target, batch], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            upto = match rows.last() {
                Some((last, ..)) if rows.len() as u64 == batch => *last,
                _ => target,
            };
            {
                // Each row supersedes the key's previous row; rows superseded earlier went
                // with the batch of their successor.
                let mut by_rev = tx.prepare_cached("DELETE FROM log WHERE rev = ?1")?;
                // The key's state rows go if the tombstone is still its newest row: in
                // `current_delta`, or in `current`. A `current` row at or below the tombstone
                // is either the tombstone or older than the key's delta row, so it goes
                // either way.
                let mut delta =
                    tx.prepare_cached("DELETE FROM current_delta WHERE key = ?1 AND rev = ?2")?;
                let mut current =
                    tx.prepare_cached("DELETE FROM current WHERE key = ?1 AND rev <= ?2")?;
                for (rev, key, deleted, older) in &rows {
                    if let Some(older) = older {
                        removed += by_rev.execute([older])? as u64;
                    }
                    if *deleted {
                        removed += by_rev.execute([rev])? as u64;
                        removed_delta_rows += delta.execute(rusqlite::params![key, rev])? as u64;
                        current.execute(rusqlite::params![key, rev])?;
                    }
                }
            }
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE name = 'compacted_through'",
                [upto],
            )?;
            tx.commit()?;
        }
        tracing::debug!(removed, "sqlite compaction step done");
        self.state.compacted_through = upto;
        self.state.delta_rows = self.state.delta_rows.saturating_sub(removed_delta_rows);
        bump(&self.counters.compaction_batches, 1);
        bump(&self.counters.compacted_rows, removed);
        self.counters
            .compacted_through
            .store(upto, Ordering::Relaxed);
        if upto == self.state.compact_rev {
            self.checkpoint_and_vacuum()?;
        }
        Ok(())
    }

    /// Returns freed pages to the file system and checkpoints the WAL.
    fn checkpoint_and_vacuum(&mut self) -> rusqlite::Result<()> {
        let free_before: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
        if free_before > 0 {
            tracing::debug!(
                free_pages = free_before,
                "sqlite incremental vacuum starting"
            );
            self.conn.execute_batch("PRAGMA incremental_vacuum")?;
            tracing::debug!("sqlite incremental vacuum done");
            let free_after: i64 = self
                .conn
                .query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
            bump(&self.counters.vacuums, 1);
            bump(
                &self.counters.vacuumed_pages,
                u64::try_from(free_before - free_after).unwrap_or(0),
            );
        }
        // PASSIVE never waits for readers; pages still in use are checkpointed next time.
        tracing::debug!("sqlite wal checkpoint starting");
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .optional()?;
        tracing::debug!("sqlite wal checkpoint done");
        bump(&self.counters.checkpoints, 1);
        Ok(())
    }
}

enum Outcome {
    Write(Result<Written>),
    Compact(Result<()>),
}

fn set_meta(tx: &Transaction<'_>, name: &str, value: Revision) -> Result<()> {
    tx.execute(
        "UPDATE meta SET value = ?2 WHERE name = ?1",
        rusqlite::params![name, value],
    )
    .map_err(sql_error)?;
    Ok(())
}

/// Checks one write against the state inside the transaction and applies it, its first (or
/// only) log row being `rev`.
fn apply(tx: &Transaction<'_>, op: &WriteOp, rev: Revision, now: i64) -> Apply {
    match op {
        WriteOp::Create { key, value, ttl } => {
            // Only the key's state row is read: whether the key lives, and the tombstone a
            // re-create follows in the key's chain of versions.
            let older = match reader::newest(tx, key)? {
                Some((_, false)) => return Ok(Err(Error::AlreadyExists { key: key.clone() })),
                Some((tombstone, true)) => Some(tombstone),
                None => None,
            };
            let row = LogRow {
                rev,
                deleted: false,
                create_rev: rev,
                prev_rev: None,
                older_rev: older,
                batch: None,
            };
            insert_log(tx, &row, key, Some(value))?;
            let added_delta_row = set_state_row(tx, key, rev, false, expires_at(now, *ttl))?;
            Ok(Ok(Applied {
                written: Written::Revision(rev),
                events: vec![WatchEvent::Put {
                    kv: KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: rev,
                        mod_revision: rev,
                    },
                    prev: None,
                }],
                rows: 1,
                delta_rows: u64::from(added_delta_row),
            }))
        }
        WriteOp::Update {
            key,
            value,
            precondition,
            ttl,
        } => {
            let (current, current_row) = match checked(tx, key, *precondition)? {
                Ok(current) => current,
                Err(error) => return Ok(Err(error)),
            };
            let row = LogRow {
                rev,
                deleted: false,
                create_rev: current.create_revision,
                prev_rev: Some(current_row),
                older_rev: Some(current_row),
                batch: None,
            };
            insert_log(tx, &row, key, Some(value))?;
            let added_delta_row = set_state_row(tx, key, rev, false, expires_at(now, *ttl))?;
            Ok(Ok(Applied {
                written: Written::Revision(rev),
                events: vec![WatchEvent::Put {
                    kv: KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: current.create_revision,
                        mod_revision: rev,
                    },
                    prev: Some(current),
                }],
                rows: 1,
                delta_rows: u64::from(added_delta_row),
            }))
        }
        WriteOp::Delete { key, precondition } => {
            let (current, current_row) = match checked(tx, key, *precondition)? {
                Ok(current) => current,
                Err(error) => return Ok(Err(error)),
            };
            let row = LogRow {
                rev,
                deleted: true,
                create_rev: current.create_revision,
                prev_rev: Some(current_row),
                older_rev: Some(current_row),
                batch: None,
            };
            insert_log(tx, &row, key, None)?;
            let added_delta_row = set_state_row(tx, key, rev, true, None)?;
            Ok(Ok(Applied {
                written: Written::Deleted(DeleteResponse {
                    revision: rev,
                    prev: current.clone(),
                }),
                events: vec![WatchEvent::Delete {
                    key: key.clone(),
                    revision: rev,
                    prev: current,
                }],
                rows: 1,
                delta_rows: u64::from(added_delta_row),
            }))
        }
        WriteOp::Batch { writes } => apply_batch(tx, writes, rev),
    }
}

/// An atomic batch: every expectation checked before anything is written, then one log row
/// per write from `first` on, all reporting the revision of the last row.
fn apply_batch(tx: &Transaction<'_>, writes: &[BatchWrite], first: Revision) -> Apply {
    let mut live = Vec::with_capacity(writes.len());
    for write in writes {
        let current = reader::latest_row(tx, write.key())?;
        if let Err(error) = write.check(current.as_ref().map(|(kv, _)| kv)) {
            return Ok(Err(error));
        }
        live.push(current);
    }
    let rows = writes.len() as u64;
    let end = first + rows - 1;
    let batch = (rows > 1).then_some((first, end));
    let mut events = Vec::with_capacity(writes.len());
    let mut delta_rows = 0u64;
    for ((write, current), rev) in writes.iter().zip(live).zip(first..) {
        let current_row = current.as_ref().map(|(_, row)| *row);
        let (current, deleted, value) = match write {
            BatchWrite::Put { value, .. } => (current.map(|(kv, _)| kv), false, Some(value)),
            BatchWrite::Delete { .. } => (current.map(|(kv, _)| kv), true, None),
        };
        let key = write.key();
        let older = match current_row {
            Some(row) => Some(row),
            // An absent key's tombstone, if it has one, is its previous row.
            None => reader::newest(tx, key)?.map(|(row, _)| row),
        };
        let create_rev = current.as_ref().map_or(end, |kv| kv.create_revision);
        let row = LogRow {
            rev,
            deleted,
            create_rev,
            prev_rev: current_row,
            older_rev: older,
            batch,
        };
        insert_log(tx, &row, key, value)?;
        delta_rows += u64::from(set_state_row(tx, key, rev, deleted, None)?);
        events.push(match (value, current) {
            (Some(value), prev) => WatchEvent::Put {
                kv: KeyValue {
                    key: key.to_owned(),
                    value: value.clone(),
                    create_revision: create_rev,
                    mod_revision: end,
                },
                prev,
            },
            (None, Some(prev)) => WatchEvent::Delete {
                key: key.to_owned(),
                revision: end,
                prev,
            },
            // `check` refused deletes of missing keys before anything was written; rows are
            // written by now, so fail the whole transaction rather than this request.
            (None, None) => {
                return Err(Error::internal(format!(
                    "batch delete of {key:?} found no live value after its check"
                )));
            }
        });
    }
    Ok(Ok(Applied {
        written: Written::Revision(end),
        events,
        rows,
        delta_rows,
    }))
}

/// The live value of `key` and its log row if `precondition` holds; `Ok(Err(..))` rejects
/// the request.
fn checked(
    tx: &Transaction<'_>,
    key: &str,
    precondition: Precondition,
) -> Result<Result<(KeyValue, Revision)>> {
    let Some((current, row)) = reader::latest_row(tx, key)? else {
        return Ok(Err(Error::NotFound {
            key: key.to_owned(),
        }));
    };
    if let Precondition::ModRevision(expected) = precondition {
        if expected != current.mod_revision {
            return Ok(Err(Error::Conflict {
                key: key.to_owned(),
                expected,
                current: Box::new(current),
            }));
        }
    }
    Ok(Ok((current, row)))
}

/// The columns of one log row besides its key and value.
struct LogRow {
    rev: Revision,
    deleted: bool,
    create_rev: Revision,
    /// The live version this write replaced (the watch event's previous value).
    prev_rev: Option<Revision>,
    /// The key's previous row of any kind (see the schema).
    older_rev: Option<Revision>,
    /// The first and last row of the atomic batch this row belongs to (see the schema).
    batch: Option<(Revision, Revision)>,
}

fn insert_log(tx: &Transaction<'_>, row: &LogRow, key: &str, value: Option<&Bytes>) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO log (rev, key, deleted, create_rev, prev_rev, value, older_rev, \
         batch_start, batch_end) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut stmt| {
        stmt.execute(rusqlite::params![
            row.rev,
            key.as_bytes(),
            row.deleted,
            row.create_rev,
            row.prev_rev,
            value.map(|v| v.as_ref()),
            row.older_rev,
            row.batch.map(|(start, _)| start),
            row.batch.map(|(_, end)| end),
        ])
    })
    .map_err(sql_error)?;
    Ok(())
}

/// Sets the key's newest state: its row in `current_delta` (see the schema). Returns whether
/// the key had no row there yet, so that the writer knows how many rows the delta holds.
fn set_state_row(
    tx: &Transaction<'_>,
    key: &str,
    rev: Revision,
    deleted: bool,
    expires_at: Option<i64>,
) -> Result<bool> {
    // Two statements rather than one upsert, because an upsert does not say which it did: the
    // insert adds the row of a key new to the delta (a create, unless the key's tombstone is
    // still there), the update rewrites an existing one.
    let params = rusqlite::params![key.as_bytes(), rev, deleted, expires_at];
    let added = tx
        .prepare_cached(
            "INSERT INTO current_delta (key, rev, deleted, expires_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (key) DO NOTHING",
        )
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(sql_error)?;
    if added == 0 {
        let updated = tx
            .prepare_cached(
                "UPDATE current_delta SET rev = ?2, deleted = ?3, expires_at = ?4 WHERE key = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params))
            .map_err(sql_error)?;
        if updated != 1 {
            return Err(Error::internal(format!(
                "current_delta: the row of {key:?} neither inserted nor updated"
            )));
        }
    }
    Ok(added == 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A watch from now never reads history.
    struct NoHistory;

    #[async_trait::async_trait]
    impl storage_api::WatchHistory for NoHistory {
        async fn read(
            &self,
            read: storage_api::HistoryRead<'_>,
        ) -> Result<storage_api::HistoryPage> {
            panic!(
                "a watch from now read history ({}, {}]",
                read.after, read.until
            )
        }
    }

    fn write(op: WriteOp) -> (Command, oneshot::Receiver<Result<Written>>) {
        let (reply, answer) = oneshot::channel();
        (Command::Write { op, reply }, answer)
    }

    fn create(key: &str, value: &'static str) -> WriteOp {
        WriteOp::Create {
            key: key.to_owned(),
            value: Bytes::from_static(value.as_bytes()),
            ttl: None,
        }
    }

    /// The expiry queries read `current` through its expiry index, never scanning it whole
    /// (only the small `current_delta` is scanned), whatever the backlog of expired keys.
    #[test]
    fn expiry_queries_search_the_expiry_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn =
            crate::schema::open_writer(&dir.path().join("db"), &SqliteOptions::default()).unwrap();
        for sql in [DUE_SQL, NEXT_EXPIRY_SQL] {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let count = stmt.parameter_count();
            let details: Vec<String> = stmt
                .query_map(
                    rusqlite::params_from_iter([10i64, 256].into_iter().take(count)),
                    |row| row.get(3),
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let plan = details.join("; ");
            assert!(
                plan.contains("SEARCH c USING") && plan.contains("INDEX current_expiry"),
                "{sql}\n {plan}"
            );
            assert!(
                !details
                    .iter()
                    .any(|d| d == "SCAN c" || d.starts_with("SCAN c ")),
                "{sql}\n scans current: {plan}"
            );
            assert!(!plan.contains("SCAN l"), "{sql}\n scans the log: {plan}");
        }
    }

    /// One group commit: each request is checked against the state left by the ones before it,
    /// rejected ones change nothing, accepted ones get consecutive revisions.
    #[test]
    fn group_commit_checks_each_request_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let options = SqliteOptions::default();
        let conn = crate::schema::open_writer(&path, &options).unwrap();
        let state = load(&conn).unwrap();
        let lock = File::create(dir.path().join("lock")).unwrap();
        let (_commands, rx) = std::sync::mpsc::channel();
        let hub = Arc::new(WatchHub::new(0));
        let mut watch = hub.watch(
            &storage_api::WatchRequest::prefix("/"),
            Arc::new(NoHistory),
            storage_api::WatchSettings {
                buffer: 100,
                progress_interval: std::time::Duration::from_secs(1),
            },
        );
        let counters = Arc::new(Counters::default());
        let mut writer = Writer::new(
            conn,
            lock,
            rx,
            Arc::clone(&hub),
            Arc::clone(&counters),
            options,
            state,
        );
        let (batch, mut answers): (Vec<_>, Vec<_>) = [
            create("/a", "v1"),
            create("/a", "again"),
            WriteOp::Update {
                key: "/a".to_owned(),
                value: Bytes::from_static(b"v2"),
                precondition: Precondition::ModRevision(1),
                ttl: None,
            },
            WriteOp::Update {
                key: "/a".to_owned(),
                value: Bytes::from_static(b"stale"),
                precondition: Precondition::ModRevision(1),
                ttl: None,
            },
            WriteOp::Delete {
                key: "/b".to_owned(),
                precondition: Precondition::None,
            },
            create("/b", "b1"),
            WriteOp::Delete {
                key: "/a".to_owned(),
                precondition: Precondition::ModRevision(2),
            },
        ]
        .into_iter()
        .map(write)
        .unzip();
        writer.commit(batch, false);
        let mut results: Vec<Result<Written>> = answers
            .iter_mut()
            .map(|answer| answer.try_recv().unwrap())
            .collect();
        assert!(matches!(results[0], Ok(Written::Revision(1))));
        assert!(matches!(results[1], Err(Error::AlreadyExists { .. })));
        assert!(matches!(results[2], Ok(Written::Revision(2))));
        match &results[3] {
            Err(Error::Conflict {
                expected, current, ..
            }) => {
                assert_eq!(*expected, 1);
                assert_eq!(current.mod_revision, 2);
                assert_eq!(current.value, Bytes::from_static(b"v2"));
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
        assert!(matches!(results[4], Err(Error::NotFound { .. })));
        assert!(matches!(results[5], Ok(Written::Revision(3))));
        match results.pop() {
            Some(Ok(Written::Deleted(deleted))) => {
                assert_eq!(deleted.revision, 4);
                assert_eq!(deleted.prev.value, Bytes::from_static(b"v2"));
                assert_eq!(deleted.prev.create_revision, 1);
            }
            other => panic!("expected the delete, got {other:?}"),
        }
        assert_eq!(counters.transactions.load(Ordering::Relaxed), 1);
        assert_eq!(counters.writes.load(Ordering::Relaxed), 4);
        assert_eq!(counters.rejected.load(Ordering::Relaxed), 3);
        assert_eq!(hub.published(), 4);
        let revisions: Vec<Revision> = (0..4)
            .map(|_| {
                futures::executor::block_on(futures::StreamExt::next(&mut watch))
                    .unwrap()
                    .unwrap()
                    .revision()
            })
            .collect();
        assert_eq!(
            revisions,
            [1, 2, 3, 4],
            "watchers get the accepted writes in order"
        );
    }
}
