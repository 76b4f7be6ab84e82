//! The on-disk schema, its version, its migration, and opening connections.
//!
//! Tables:
//!
//! - `log`: the append-only revision log, one row per write, `rev` as the primary key (the
//!   rowid). A put row holds the value; a delete row (`deleted = 1`) is a tombstone. `prev_rev`
//!   names the live version the write replaced (NULL for a create), which gives watch events
//!   their previous value. `older_rev` names the key's previous row of any kind (the tombstone
//!   a re-create follows, too; NULL for the key's first write): walking it back from the
//!   newest row finds "the version of a key at revision R" without a second index ordered by
//!   key, so a write touches one key-ordered b-tree (the key's state row) instead of two.
//!   `batch_start` and `batch_end` are set on the rows of an atomic batch of several writes:
//!   the rows `s ..= e` of a batch all name its first and last row and all report revision
//!   `e` (their `mod_revision`, their events), so the batch shares one revision; reads at the
//!   numbers in between are served at the revision before the batch (`reader::settle`).
//! - `current` and `current_delta`: each key's state, in key order (`WITHOUT ROWID`, key as
//!   primary key): the revision of its newest write, whether that write is a delete, and its
//!   expiry time. Every write sets its key's row in the small `current_delta`; once it holds
//!   [`SqliteOptions::delta_fold_rows`] rows (keys), the writer folds it into `current`
//!   inside the transaction of the write that added the last one. A key's state is its
//!   `current_delta` row if it has one (always the newer), else its `current` row. Latest get looks in both; ordered range at
//!   latest scans `current` joined to `log` by primary key and merges the range's delta rows
//!   in; range at a past revision walks both in key order and each key's `older_rev` chain
//!   from there. Partial index `current_expiry` finds keys in `current` whose TTL has run out.
//!   Why two tables: writers that each append to their own stretch of the key order
//!   (`pod-a-1`, `pod-b-1`, `pod-a-2`, ...) dirty one `current` leaf page per write, and each
//!   transaction writes every page it dirtied to the WAL again. The delta is a few pages that
//!   every transaction shares; a fold writes each `current` leaf once for many writes.
//! - `meta`: named integers: `compact_rev` (oldest readable revision) and `compacted_through`
//!   (how far physical deletion of superseded versions has got).
//!
//! The schema version is `PRAGMA user_version`; a file with a newer version than
//! [`SCHEMA_VERSION`] is refused, an older one is migrated in place when the writer opens it.
//!
//! Versions: 1 had an index `log_key_rev (key, rev)` for past versions and no `older_rev`;
//! 2 replaces the index with `older_rev` (every write inserted into two key-ordered b-trees,
//! and at many writers per commit those random pages were most of the WAL's bytes); 3 adds
//! `batch_start` and `batch_end` for atomic batches (NULL in every row written before); 4 adds
//! `current_delta` (empty in a migrated file: every key's state is still in `current`).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::OpenError;
use crate::options::SqliteOptions;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE log (
    rev        INTEGER PRIMARY KEY,
    key        BLOB    NOT NULL,
    deleted    INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev   INTEGER,
    value      BLOB,
    older_rev  INTEGER,
    batch_start INTEGER,
    batch_end  INTEGER
);
CREATE TABLE current (
    key        BLOB    PRIMARY KEY,
    rev        INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX current_expiry ON current (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('compact_rev', 0), ('compacted_through', 0);
";

/// The table schema 4 added (created with the rest in a new file).
const CURRENT_DELTA: &str = "
CREATE TABLE current_delta (
    key        BLOB    PRIMARY KEY,
    rev        INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;
";

/// Opens the writer connection, creating or checking the schema.
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, OpenError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::UnsupportedSchema {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let objects: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
        if objects != 0 {
            return Err(OpenError::NotOurs);
        }
        // auto_vacuum must be chosen before the first table exists.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA} {CURRENT_DELTA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    }
    if version == 1 {
        migrate_v1_to_v2(&conn)?;
    }
    if version <= 2 && version != 0 {
        migrate_v2_to_v3(&conn)?;
    }
    if version <= 3 && version != 0 {
        migrate_v3_to_v4(&conn)?;
    }
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NoWal(mode));
    }
    conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())?;
    // Keep the WAL file from staying large after a burst once it has been checkpointed.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    // Sanity: the tables this version expects are there.
    let log_exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'log'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if log_exists.is_none() {
        return Err(OpenError::NotOurs);
    }
    Ok(conn)
}

/// Schema 1 to 2, in one transaction: every log row learns the key's previous row
/// (`older_rev`, found with the old index while it still exists), then the index goes.
fn migrate_v1_to_v2(conn: &Connection) -> rusqlite::Result<()> {
    tracing::info!("migrating the SQLite schema from version 1 to 2");
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         ALTER TABLE log ADD COLUMN older_rev INTEGER;
         UPDATE log SET older_rev = \
           (SELECT max(h.rev) FROM log h WHERE h.key = log.key AND h.rev < log.rev);
         DROP INDEX log_key_rev;
         PRAGMA user_version = 2;
         COMMIT;",
    )
}

/// Schema 2 to 3: the `batch_start` and `batch_end` columns, NULL in every existing row (none
/// was in a batch).
fn migrate_v2_to_v3(conn: &Connection) -> rusqlite::Result<()> {
    tracing::info!("migrating the SQLite schema from version 2 to 3");
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         ALTER TABLE log ADD COLUMN batch_start INTEGER;
         ALTER TABLE log ADD COLUMN batch_end INTEGER;
         PRAGMA user_version = 3;
         COMMIT;",
    )
}

/// Schema 3 to 4: the empty `current_delta` table (every key's state stays in `current`).
fn migrate_v3_to_v4(conn: &Connection) -> rusqlite::Result<()> {
    tracing::info!("migrating the SQLite schema from version 3 to 4");
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {CURRENT_DELTA} PRAGMA user_version = 4; COMMIT;"
    ))
}

/// Opens one reader connection. It never writes (`query_only`).
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}
