//! Reader connections and every read query. Reads run on Tokio's blocking pool, each in its own
//! read transaction (one consistent WAL snapshot), so they never wait for the writer.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use storage_api::{
    Error, GetResponse, HistoryPage, KeyFilter, KeyValue, RangeRequest, RangeResponse, Result,
    Revision, WatchEvent, prefix_range_end,
};
use tokio::sync::Semaphore;

use crate::schema;
use crate::sql_error;

/// A small pool of reader connections, opened on first use.
#[derive(Debug)]
pub(crate) struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    pub(crate) fn new(path: PathBuf, readers: usize) -> Self {
        ReaderPool {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(readers.max(1))),
        }
    }

    /// Runs `read` inside a read transaction on a pooled connection, on the blocking pool.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::unavailable("the store is closed"))?;
        let pool = Arc::clone(self);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => schema::open_reader(&pool.path).map_err(sql_error)?,
            };
            let result = {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Deferred)
                    .map_err(sql_error)?;
                let result = read(&tx);
                // A read transaction has nothing to commit; ending it releases the snapshot.
                tx.rollback().map_err(sql_error)?;
                result
            };
            pool.idle.lock().push(conn);
            result
        });
        task.await
            .map_err(|e| Error::internal(format!("read task failed: {e}")))?
    }
}

/// The state every read checks its revision against, from the read's own snapshot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    /// The revision of the newest write in the snapshot.
    pub(crate) current: Revision,
    /// The oldest revision still readable.
    pub(crate) compacted: Revision,
}

pub(crate) fn snapshot(tx: &Transaction<'_>) -> Result<Snapshot> {
    let compacted: Revision = tx
        .query_row(
            "SELECT value FROM meta WHERE name = 'compact_rev'",
            [],
            |row| row.get(0),
        )
        .map_err(sql_error)?;
    let newest: Option<Revision> = tx
        .query_row("SELECT max(rev) FROM log", [], |row| row.get(0))
        .map_err(sql_error)?;
    // Compaction may have deleted the newest row (a tombstone at the compaction revision); the
    // compaction revision is never above the current revision, so it bounds it from below.
    Ok(Snapshot {
        current: newest.unwrap_or(0).max(compacted),
        compacted,
    })
}

impl Snapshot {
    /// Resolves the revision a read is served at, failing for compacted or future ones. A
    /// revision inside an atomic batch (see [`settle`]) reads as the revision before it.
    pub(crate) fn read_at(
        &self,
        tx: &Transaction<'_>,
        revision: Option<Revision>,
    ) -> Result<Revision> {
        let at = revision.unwrap_or(self.current);
        if at < self.compacted {
            return Err(Error::Compacted {
                requested: at,
                compacted: self.compacted,
            });
        }
        if at > self.current {
            return Err(Error::FutureRevision {
                requested: at,
                current: self.current,
            });
        }
        settle(tx, at)
    }
}

/// `revision` itself, or, when it falls inside an atomic batch, the revision just before the
/// batch. A batch of `n` writes takes the log rows `s ..= e` (`e = s + n - 1`), each with
/// `batch_start = s` and `batch_end = e`, and every one of them reports revision `e`; the
/// numbers in between are never reported, so only a caller guessing one gets here, and it
/// must see the batch whole or not at all.
pub(crate) fn settle(tx: &Transaction<'_>, revision: Revision) -> Result<Revision> {
    let batch: Option<(Option<Revision>, Option<Revision>)> = tx
        .prepare_cached(BATCH_OF_SQL)
        .and_then(|mut stmt| {
            stmt.query_row([revision], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(sql_error)?;
    match batch {
        Some((Some(start), Some(end))) if end > revision => Ok(start.saturating_sub(1)),
        _ => Ok(revision),
    }
}

/// The batch of log row `?1`: its first and last rows.
const BATCH_OF_SQL: &str = "SELECT batch_start, batch_end FROM log WHERE rev = ?1";

/// The revision a log row reports: its own, or its batch's.
fn reported(row: Revision, batch_end: Option<Revision>) -> Revision {
    batch_end.unwrap_or(row)
}

fn key_string(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| Error::internal_from("stored key is not UTF-8", e))
}

/// `key` at the latest revision or an exact past one.
pub(crate) fn get(
    tx: &Transaction<'_>,
    key: &str,
    revision: Option<Revision>,
) -> Result<GetResponse> {
    let snap = snapshot(tx)?;
    let at = snap.read_at(tx, revision)?;
    let kv = if revision.is_none() {
        latest(tx, key)?
    } else {
        version_at(tx, key, at)?
    };
    Ok(GetResponse { revision: at, kv })
}

/// The live value of `key`, if any.
pub(crate) fn latest(tx: &Transaction<'_>, key: &str) -> Result<Option<KeyValue>> {
    Ok(latest_row(tx, key)?.map(|(kv, _)| kv))
}

/// The live value of `key` with the log row that holds it.
pub(crate) fn latest_row(tx: &Transaction<'_>, key: &str) -> Result<Option<(KeyValue, Revision)>> {
    match newest(tx, key)? {
        Some((rev, false)) => Ok(Some((live_value(tx, key.to_owned(), rev)?, rev))),
        Some((_, true)) | None => Ok(None),
    }
}

/// The value of `key` that log row `rev` holds (a put row).
fn live_value(tx: &Transaction<'_>, key: String, rev: Revision) -> Result<KeyValue> {
    let (create_rev, value, batch_end) = tx
        .prepare_cached(LIVE_ROW_SQL)
        .and_then(|mut stmt| {
            stmt.query_row([rev], |row| {
                Ok((
                    row.get::<_, Revision>(0)?,
                    row.get::<_, Option<Vec<u8>>>(1)?,
                    row.get::<_, Option<Revision>>(2)?,
                ))
            })
        })
        .map_err(sql_error)?;
    Ok(KeyValue {
        key,
        value: Bytes::from(value.unwrap_or_default()),
        create_revision: create_rev,
        mod_revision: reported(rev, batch_end),
    })
}

/// The value `key` had at revision `at`, if it was live then.
fn version_at(tx: &Transaction<'_>, key: &str, at: Revision) -> Result<Option<KeyValue>> {
    let Some((newest, _)) = newest(tx, key)? else {
        return Ok(None);
    };
    match visible_at(tx, newest, at)? {
        Some(visible) => Ok(Some(KeyValue {
            key: key.to_owned(),
            value: value_of(tx, visible.row)?,
            create_revision: visible.create_revision,
            mod_revision: visible.mod_revision,
        })),
        None => Ok(None),
    }
}

/// The newest row of `key`: its revision and whether it is a tombstone. The key's
/// `current_delta` row, when it has one, is newer than its `current` row (see the schema).
pub(crate) fn newest(tx: &Transaction<'_>, key: &str) -> Result<Option<(Revision, bool)>> {
    for sql in [NEWEST_DELTA_SQL, NEWEST_SQL] {
        let row = tx
            .prepare_cached(sql)
            .and_then(|mut stmt| {
                stmt.query_row([key.as_bytes()], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(sql_error)?;
        if row.is_some() {
            return Ok(row);
        }
    }
    Ok(None)
}

/// A key's newest state as `current_delta` holds it.
struct DeltaRow {
    /// The key, as stored.
    key: Vec<u8>,
    /// The log row of the key's newest write.
    rev: Revision,
    /// Whether that write was a delete.
    deleted: bool,
}

/// The `current_delta` rows of keys in `[start, end)`, in key order. They are few: the writer
/// folds them into `current` once they number [`crate::SqliteOptions::delta_fold_rows`].
fn range_delta_rows(
    tx: &Transaction<'_>,
    start: &str,
    end: Option<&[u8]>,
) -> Result<Vec<DeltaRow>> {
    let mut stmt = tx
        .prepare_cached(&delta_sql(end.is_some()))
        .map_err(sql_error)?;
    let rows = stmt
        .query_map(rusqlite::params![start.as_bytes(), end], |row| {
            Ok(DeltaRow {
                key: row.get(0)?,
                rev: row.get(1)?,
                deleted: row.get(2)?,
            })
        })
        .map_err(sql_error)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql_error)
}

/// A key's newest state during an ordered walk: from `current_delta`, or a `current` row
/// (of type `C`) that no delta row replaces.
enum Newest<'d, C> {
    /// The key's `current_delta` row.
    Delta(&'d DeltaRow),
    /// The key's `current` row, which no delta row replaces.
    Current(C),
}

/// Walks the keys of `current` (its rows in key order from `next_current`) and of the
/// `current_delta` rows `delta` (in key order) together, giving `visit` each key's newest
/// state in key order until it returns `false`: a key's delta row replaces its `current` row.
fn merge_newest<C>(
    delta: &[DeltaRow],
    mut next_current: impl FnMut() -> Result<Option<C>>,
    key_of: impl Fn(&C) -> &[u8],
    mut visit: impl FnMut(Newest<'_, C>) -> Result<bool>,
) -> Result<()> {
    let mut delta = delta.iter().peekable();
    while let Some(row) = next_current()? {
        let key = key_of(&row);
        while let Some(newer) = delta.next_if(|d| d.key.as_slice() < key) {
            if !visit(Newest::Delta(newer))? {
                return Ok(());
            }
        }
        let replaced = delta.next_if(|d| d.key.as_slice() == key);
        let next = match replaced {
            Some(newer) => Newest::Delta(newer),
            None => Newest::Current(row),
        };
        if !visit(next)? {
            return Ok(());
        }
    }
    for newer in delta {
        if !visit(Newest::Delta(newer))? {
            return Ok(());
        }
    }
    Ok(())
}

/// The version of a key visible at some revision.
struct Visible {
    /// Its log row.
    row: Revision,
    mod_revision: Revision,
    create_revision: Revision,
}

/// The live version of a key at revision `at` (a settled revision, see [`settle`]): found by
/// walking back from the key's newest log row (`newest`, as [`newest`] finds it) through
/// `older_rev` to the first row at or below `at`. `None` when that row is a tombstone or the
/// key had no row yet. Rows on the way are newer than `at`, which is at or above the
/// compaction revision, so compaction has not removed them.
fn visible_at(tx: &Transaction<'_>, newest: Revision, at: Revision) -> Result<Option<Visible>> {
    let mut stmt = tx.prepare_cached(CHAIN_SQL).map_err(sql_error)?;
    let mut rev = newest;
    loop {
        let row: Option<(bool, Revision, Option<Revision>, Option<Revision>)> = stmt
            .query_row([rev], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()
            .map_err(sql_error)?;
        let Some((deleted, create_rev, older, batch_end)) = row else {
            return Ok(None);
        };
        if rev <= at {
            return Ok((!deleted).then_some(Visible {
                row: rev,
                mod_revision: reported(rev, batch_end),
                create_revision: create_rev,
            }));
        }
        match older {
            Some(older) => rev = older,
            None => return Ok(None),
        }
    }
}

/// The value stored at log row `rev`.
fn value_of(tx: &Transaction<'_>, rev: Revision) -> Result<Bytes> {
    let value: Option<Vec<u8>> = tx
        .prepare_cached(VALUE_SQL)
        .and_then(|mut stmt| stmt.query_row([rev], |row| row.get(0)))
        .map_err(sql_error)?;
    Ok(Bytes::from(value.unwrap_or_default()))
}

/// The keys of one range read: `[start, end)` (`end` `None`: to the end of the keyspace), at
/// most `limit` of them, or only their count.
#[derive(Clone, Copy)]
struct Page<'a> {
    start: &'a str,
    end: Option<&'a [u8]>,
    limit: u64,
    count_only: bool,
}

/// An ordered range read, and whether it was served from history (a past revision).
/// `known_count`, when given, is the number of live keys from the start at that past revision,
/// remembered from the previous page, and spares the count.
pub(crate) fn range(
    tx: &Transaction<'_>,
    request: &RangeRequest,
    known_count: Option<u64>,
) -> Result<(RangeResponse, bool)> {
    let snap = snapshot(tx)?;
    let at = snap.read_at(tx, request.revision)?;
    let end = prefix_range_end(request.prefix.as_bytes());
    let page = Page {
        start: request.first_key(),
        end: end.as_deref(),
        limit: match request.limit {
            Some(0) | None => u64::MAX,
            Some(limit) => limit,
        },
        count_only: request.count_only,
    };
    let mut response = RangeResponse {
        revision: at,
        ..RangeResponse::default()
    };
    let from_history = request.revision.is_some() && at != snap.current;
    if from_history {
        range_at(tx, &page, at, known_count, &mut response)?;
    } else {
        range_latest(tx, &page, &mut response)?;
    }
    Ok((response, from_history))
}

/// Keys of table alias `table` in `[?1, ?2)` (`?2` NULL: to the end of the keyspace).
fn bounds_sql(table: &str, bounded: bool) -> String {
    if bounded {
        format!("{table}.key >= ?1 AND {table}.key < ?2")
    } else {
        format!("{table}.key >= ?1 AND ?2 IS NULL")
    }
}

/// Count of live keys in `[?1, ?2)` at latest: the live `current` rows, corrected by each
/// delta row for the `current` row it replaces.
fn count_sql(bounded: bool) -> String {
    format!(
        "SELECT (SELECT count(*) FROM current c WHERE {} AND c.deleted = 0) + \
         (SELECT coalesce(sum((d.deleted = 0) - \
            coalesce((SELECT c.deleted = 0 FROM current c WHERE c.key = d.key), 0)), 0) \
          FROM current_delta d WHERE {})",
        bounds_sql("c", bounded),
        bounds_sql("d", bounded)
    )
}

/// Live `current` rows in `[?1, ?2)` with their values, in key order, at most `?3`.
fn latest_sql(bounded: bool) -> String {
    format!(
        "SELECT c.key, c.rev, l.create_rev, l.value, l.batch_end FROM current c \
         CROSS JOIN log l ON l.rev = c.rev \
         WHERE {} AND c.deleted = 0 ORDER BY c.key LIMIT ?3",
        bounds_sql("c", bounded)
    )
}

/// Every `current` row in `[?1, ?2)`, with its revision, in key order.
fn keys_sql(bounded: bool) -> String {
    format!(
        "SELECT c.key, c.rev FROM current c WHERE {} ORDER BY c.key",
        bounds_sql("c", bounded)
    )
}

/// Every `current_delta` row in `[?1, ?2)`, in key order.
fn delta_sql(bounded: bool) -> String {
    format!(
        "SELECT d.key, d.rev, d.deleted FROM current_delta d WHERE {} ORDER BY d.key",
        bounds_sql("d", bounded)
    )
}

/// The revision of key `?1` in `current` and whether it is a tombstone.
const NEWEST_SQL: &str = "SELECT rev, deleted FROM current WHERE key = ?1";

/// The revision of key `?1` in `current_delta` and whether it is a tombstone.
const NEWEST_DELTA_SQL: &str = "SELECT rev, deleted FROM current_delta WHERE key = ?1";

/// What a reader needs of put row `?1` besides its key.
const LIVE_ROW_SQL: &str = "SELECT create_rev, value, batch_end FROM log WHERE rev = ?1";

/// One step of a key's chain of versions: the log row `?1`.
const CHAIN_SQL: &str = "SELECT deleted, create_rev, older_rev, batch_end FROM log WHERE rev = ?1";

/// The value of log row `?1`.
const VALUE_SQL: &str = "SELECT value FROM log WHERE rev = ?1";

/// Range at the latest revision: one scan of the live `current` rows in key order, joined to
/// `log` by primary key, merged with the range's few `current_delta` rows (each replaces its
/// key's `current` row; their values are read one by one).
fn range_latest(tx: &Transaction<'_>, page: &Page<'_>, response: &mut RangeResponse) -> Result<()> {
    let Page {
        start,
        end,
        limit,
        count_only,
    } = *page;
    let count_sql = count_sql(end.is_some());
    if count_only {
        response.count = tx
            .prepare_cached(&count_sql)
            .and_then(|mut stmt| {
                stmt.query_row(rusqlite::params![start.as_bytes(), end], |r| r.get(0))
            })
            .map_err(sql_error)?;
        return Ok(());
    }
    let delta = range_delta_rows(tx, start, end)?;
    let sql = latest_sql(end.is_some());
    // One row more than asked tells whether more remain; each delta row may replace one.
    let fetch = limit.saturating_add(1).saturating_add(delta.len() as u64);
    let fetch = i64::try_from(fetch).unwrap_or(-1);
    let mut stmt = tx.prepare_cached(&sql).map_err(sql_error)?;
    let mut rows = stmt
        .query(rusqlite::params![start.as_bytes(), end, fetch])
        .map_err(sql_error)?;
    let next_current = || -> Result<Option<(Vec<u8>, KeyValue)>> {
        let Some(row) = rows.next().map_err(sql_error)? else {
            return Ok(None);
        };
        let key: Vec<u8> = row.get(0).map_err(sql_error)?;
        let kv = KeyValue {
            key: String::new(),
            mod_revision: reported(
                row.get(1).map_err(sql_error)?,
                row.get(4).map_err(sql_error)?,
            ),
            create_revision: row.get(2).map_err(sql_error)?,
            value: Bytes::from(
                row.get::<_, Option<Vec<u8>>>(3)
                    .map_err(sql_error)?
                    .unwrap_or_default(),
            ),
        };
        Ok(Some((key, kv)))
    };
    merge_newest(
        &delta,
        next_current,
        |(key, _)| key.as_slice(),
        |newest| {
            if matches!(newest, Newest::Delta(row) if row.deleted) {
                return Ok(true);
            }
            if response.kvs.len() as u64 >= limit {
                response.more = true;
                return Ok(false);
            }
            response.kvs.push(match newest {
                Newest::Delta(row) => live_value(tx, key_string(row.key.clone())?, row.rev)?,
                Newest::Current((key, kv)) => KeyValue {
                    key: key_string(key)?,
                    ..kv
                },
            });
            Ok(true)
        },
    )?;
    drop(rows);
    response.count = if response.more {
        tx.prepare_cached(&count_sql)
            .and_then(|mut stmt| {
                stmt.query_row(rusqlite::params![start.as_bytes(), end], |r| r.get(0))
            })
            .map_err(sql_error)?
    } else {
        response.kvs.len() as u64
    };
    Ok(())
}

/// Range at a past revision: every key's newest row (`current` merged with `current_delta`)
/// in key order, each key's version at `at` found by walking its chain of versions back from
/// the newest ([`visible_at`]; keys unchanged since `at` take one step). Keys compaction
/// removed from both tables were deleted at every readable revision, so they cannot be
/// missing from the answer. The page stops after `limit + 1` live rows; the count, only when
/// more remain and the caller does not know it, is one statement that walks every key's
/// chain inside SQLite ([`past_count_sql`]).
fn range_at(
    tx: &Transaction<'_>,
    page: &Page<'_>,
    at: Revision,
    known_count: Option<u64>,
    response: &mut RangeResponse,
) -> Result<()> {
    let Page {
        start,
        end,
        limit,
        count_only,
    } = *page;
    let count = |tx: &Transaction<'_>| -> Result<u64> {
        if let Some(known) = known_count {
            return Ok(known);
        }
        tx.prepare_cached(&past_count_sql(end.is_some()))
            .and_then(|mut stmt| {
                stmt.query_row(rusqlite::params![start.as_bytes(), end, at], |r| r.get(0))
            })
            .map_err(sql_error)
    };
    if count_only {
        response.count = count(tx)?;
        return Ok(());
    }
    let delta = range_delta_rows(tx, start, end)?;
    let sql = keys_sql(end.is_some());
    let mut stmt = tx.prepare_cached(&sql).map_err(sql_error)?;
    let mut rows = stmt
        .query(rusqlite::params![start.as_bytes(), end])
        .map_err(sql_error)?;
    let next_current = || -> Result<Option<(Vec<u8>, Revision)>> {
        let Some(row) = rows.next().map_err(sql_error)? else {
            return Ok(None);
        };
        Ok(Some((
            row.get(0).map_err(sql_error)?,
            row.get(1).map_err(sql_error)?,
        )))
    };
    merge_newest(
        &delta,
        next_current,
        |(key, _)| key.as_slice(),
        |newest| {
            let (key, newest_rev) = match newest {
                Newest::Delta(row) => (row.key.clone(), row.rev),
                Newest::Current(row) => row,
            };
            let Some(visible) = visible_at(tx, newest_rev, at)? else {
                return Ok(true);
            };
            if response.kvs.len() as u64 >= limit {
                response.more = true;
                return Ok(false);
            }
            response.kvs.push(KeyValue {
                key: key_string(key)?,
                mod_revision: visible.mod_revision,
                create_revision: visible.create_revision,
                value: value_of(tx, visible.row)?,
            });
            Ok(true)
        },
    )?;
    drop(rows);
    response.count = if response.more {
        count(tx)?
    } else {
        response.kvs.len() as u64
    };
    Ok(())
}

/// How many keys in `[?1, ?2)` were live at revision `?3`: every key's chain of versions
/// walked back from its newest row (in `current_delta`, else in `current`) to the first at or
/// below `?3`, inside SQLite.
fn past_count_sql(bounded: bool) -> String {
    format!(
        "WITH RECURSIVE newest(rev) AS ( \
           SELECT d.rev FROM current_delta d WHERE {} \
           UNION ALL \
           SELECT c.rev FROM current c WHERE {} \
           AND NOT EXISTS (SELECT 1 FROM current_delta d WHERE d.key = c.key)), \
         chain(rev, deleted, older) AS ( \
           SELECT l.rev, l.deleted, l.older_rev FROM newest n \
           CROSS JOIN log l ON l.rev = n.rev \
           UNION ALL \
           SELECT l.rev, l.deleted, l.older_rev FROM chain \
           CROSS JOIN log l ON l.rev = chain.older WHERE chain.rev > ?3) \
         SELECT count(*) FROM chain WHERE rev <= ?3 AND deleted = 0",
        bounds_sql("d", bounded),
        bounds_sql("c", bounded)
    )
}

/// One page of the log for watch catch-up.
const HISTORY_SQL: &str = "SELECT rev, key, deleted, create_rev, value, prev_rev, batch_end FROM log \
     WHERE rev > ?1 AND rev <= ?2 ORDER BY rev LIMIT ?3";

/// The previous version a log row names.
const PREV_SQL: &str =
    "SELECT create_rev, value, batch_end FROM log WHERE rev = ?1 AND deleted = 0";

/// The events matching `filter` with revisions in `(after, until]`, scanning at most `budget`
/// log rows, and more only to finish an atomic batch: a page never ends inside one.
pub(crate) fn history(
    tx: &Transaction<'_>,
    filter: &KeyFilter,
    after: Revision,
    until: Revision,
    budget: u64,
) -> Result<HistoryPage> {
    let snap = snapshot(tx)?;
    if after < snap.compacted {
        return Err(Error::Compacted {
            requested: after,
            compacted: snap.compacted,
        });
    }
    let after = settle(tx, after)?;
    let mut page = HistoryRows {
        filter,
        events: Vec::new(),
        scanned: 0,
        last: after,
        batch_end: None,
    };
    page.read(tx, after, until, budget)?;
    let full = page.scanned >= budget;
    if let Some(end) = page.batch_end.filter(|end| *end > page.last) {
        let from = page.last;
        // The rows left in the batch: `(from, end]`.
        page.read(tx, from, end.min(until), end - from)?;
    }
    let scanned_to = if full { page.last } else { until };
    Ok(HistoryPage {
        events: page.events,
        scanned_to,
    })
}

/// Log rows turned into watch events.
struct HistoryRows<'f> {
    filter: &'f KeyFilter,
    events: Vec<WatchEvent>,
    scanned: u64,
    /// The last row read.
    last: Revision,
    /// The batch the last row belongs to, if any.
    batch_end: Option<Revision>,
}

impl HistoryRows<'_> {
    fn read(
        &mut self,
        tx: &Transaction<'_>,
        after: Revision,
        until: Revision,
        limit: u64,
    ) -> Result<()> {
        let mut stmt = tx.prepare_cached(HISTORY_SQL).map_err(sql_error)?;
        let mut prev_stmt = tx.prepare_cached(PREV_SQL).map_err(sql_error)?;
        let mut rows = stmt
            .query(rusqlite::params![after, until, limit])
            .map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            self.scanned += 1;
            let rev: Revision = row.get(0).map_err(sql_error)?;
            let batch_end: Option<Revision> = row.get(6).map_err(sql_error)?;
            self.last = rev;
            self.batch_end = batch_end;
            let key = key_string(row.get(1).map_err(sql_error)?)?;
            if !self.filter.matches(&key) {
                continue;
            }
            let revision = reported(rev, batch_end);
            let deleted: bool = row.get(2).map_err(sql_error)?;
            let create_rev: Revision = row.get(3).map_err(sql_error)?;
            let value: Option<Vec<u8>> = row.get(4).map_err(sql_error)?;
            let prev_rev: Option<Revision> = row.get(5).map_err(sql_error)?;
            let prev = match prev_rev {
                None => None,
                Some(prev_rev) => {
                    let (prev_create, prev_value, prev_batch) = prev_stmt
                        .query_row([prev_rev], |r| {
                            Ok((
                                r.get::<_, Revision>(0)?,
                                r.get::<_, Option<Vec<u8>>>(1)?,
                                r.get::<_, Option<Revision>>(2)?,
                            ))
                        })
                        .optional()
                        .map_err(sql_error)?
                        .ok_or_else(|| {
                            Error::internal(format!(
                                "log row {rev} refers to previous version {prev_rev}, which is \
                                 missing"
                            ))
                        })?;
                    Some(KeyValue {
                        key: key.clone(),
                        value: Bytes::from(prev_value.unwrap_or_default()),
                        create_revision: prev_create,
                        mod_revision: reported(prev_rev, prev_batch),
                    })
                }
            };
            self.events.push(if deleted {
                let prev = prev.ok_or_else(|| {
                    Error::internal(format!("delete at log row {rev} has no previous version"))
                })?;
                WatchEvent::Delete {
                    key,
                    revision,
                    prev,
                }
            } else {
                WatchEvent::Put {
                    kv: KeyValue {
                        key,
                        value: Bytes::from(value.unwrap_or_default()),
                        create_revision: create_rev,
                        mod_revision: revision,
                    },
                    prev,
                }
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rusqlite::types::Value;

    /// Every read query is an index search: no full scan of the log, no temporary sort.
    #[test]
    fn reads_are_index_scans_without_sorts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = schema::open_writer(&path, &crate::SqliteOptions::default()).unwrap();
        let mut queries = vec![
            NEWEST_SQL.to_owned(),
            NEWEST_DELTA_SQL.to_owned(),
            LIVE_ROW_SQL.to_owned(),
            CHAIN_SQL.to_owned(),
            VALUE_SQL.to_owned(),
            HISTORY_SQL.to_owned(),
            PREV_SQL.to_owned(),
            BATCH_OF_SQL.to_owned(),
        ];
        for bounded in [true, false] {
            queries.extend([
                count_sql(bounded),
                latest_sql(bounded),
                keys_sql(bounded),
                delta_sql(bounded),
                past_count_sql(bounded),
            ]);
        }
        for sql in queries {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let values = [
                Value::Blob(b"/a/".to_vec()),
                Value::Blob(b"/a0".to_vec()),
                Value::Integer(10),
                Value::Integer(10),
            ];
            let count = stmt.parameter_count();
            let details: Vec<String> = stmt
                .query_map(
                    rusqlite::params_from_iter(values.iter().take(count)),
                    |row| row.get(3),
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let plan = details.join("; ");
            eprintln!("{sql}\n    -> {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}\n sorts: {plan}");
            assert!(!plan.contains("SCAN l"), "{sql}\n scans the log: {plan}");
            assert!(
                plan.contains("SEARCH") || plan.contains("COVERING"),
                "{sql}\n {plan}"
            );
        }
    }

    /// A history page that reaches its budget inside an atomic batch reads on to the batch's
    /// last row, so a watch never sees part of a revision, and a start inside the batch
    /// replays the whole batch.
    #[tokio::test]
    async fn history_pages_never_split_a_batch() {
        use storage_api::{BatchWrite, Expect, Interface};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = crate::SqliteStore::open(&path, crate::SqliteOptions::default()).unwrap();
        store
            .create("/a", Bytes::from_static(b"x"), None)
            .await
            .unwrap();
        let writes = (0..5)
            .map(|i| BatchWrite::Put {
                key: format!("/b/{i}"),
                value: Bytes::from_static(b"v"),
                expect: Expect::Absent,
            })
            .collect();
        let end = store.write_batch(writes).await.unwrap();
        assert_eq!(end, 6);
        let mut conn = schema::open_reader(&path).unwrap();
        let tx = conn.transaction().unwrap();
        let all = KeyFilter {
            key: String::new(),
            prefix: true,
        };
        let page = history(&tx, &all, 0, end, 3).unwrap();
        assert_eq!(page.events.len(), 6, "the page reads on to the batch's end");
        assert!(page.events[1..].iter().all(|e| e.revision() == end));
        assert_eq!(page.scanned_to, end);
        let inside = history(&tx, &all, 3, end, 100).unwrap();
        assert_eq!(
            inside.events.len(),
            5,
            "a start inside the batch replays all of it"
        );
        assert_eq!(settle(&tx, 4).unwrap(), 1);
        assert_eq!(settle(&tx, end).unwrap(), end);
    }
}
