//! The SQLite backend of the storage [`Interface`]: embedded, durable, and the default store of
//! the API server.
//!
//! Open a store with [`SqliteStore::open`] and share it as `Arc<dyn Interface>`:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use backend_sqlite::{SqliteOptions, SqliteStore};
//! use storage_api::Interface;
//!
//! let options = SqliteOptions::from_query("synchronous=normal&compaction_window=10m")?;
//! let store: Arc<dyn Interface> = Arc::new(SqliteStore::open("/var/lib/kube/state.db", options)?);
//! # Ok(()) }
//! ```
//!
//! # URL options
//!
//! The storage facade maps `sqlite://PATH?OPTIONS` onto [`SqliteStore::open_url`], which is
//! `SqliteStore::open(PATH, SqliteOptions::from_query(OPTIONS)?)` ([`parse_url`] does the
//! split). `sqlite:///abs/path.db` is an absolute path, `sqlite://state.db` a relative one.
//! Every option is optional; unknown or malformed ones are an error.
//!
//! | option | values | default | meaning |
//! | --- | --- | --- | --- |
//! | `synchronous` | `full`, `normal` | `full` | `full`: an acknowledged write survives power loss; `normal`: it survives a process crash, the last commits may be lost on power loss |
//! | `auto_compaction` | `true`, `false` | `true` | compact history in the background |
//! | `compaction_window` | duration (`500ms`, `10s`, `5m`, `1h`) | `5m` | history kept by background compaction |
//! | `compaction_min_revisions` | integer | `1000` | revisions always kept, whatever the window |
//! | `compaction_interval` | duration | `10s` | how often background compaction runs |
//! | `compaction_batch` | integer | `256` | revisions compacted per transaction |
//! | `max_batch` | integer | `1024` | most writes in one group-commit transaction |
//! | `readers` | integer | `4` | reader connections |
//! | `watch_buffer` | integer | `1024` | events buffered per watcher before a slow one is ended with `Unavailable` |
//! | `progress_interval` | duration | `1s` | period of progress events for watches that ask for them |
//! | `delta_fold_rows` | integer | `1024` | rows (keys) `current_delta` holds before it is folded into `current` |
//!
//! # How it works
//!
//! - **Files**: the database `PATH`, SQLite's `PATH-wal` and `PATH-shm`, and `PATH-lock`, which
//!   the store holds an exclusive lock on while open: a second opener (in this or another
//!   process) fails with [`OpenError::Locked`].
//! - **Schema** (version in `PRAGMA user_version`; a newer one fails with
//!   [`OpenError::UnsupportedSchema`]): an append-only revision log keyed by revision, each row
//!   naming its key's previous row (reads at a past revision walk back from the newest), and
//!   each key's newest state in key order for latest reads and ordered ranges: in `current`, or
//!   in the small `current_delta` that writes go to and that the writer folds into `current`
//!   once it holds [`SqliteOptions::delta_fold_rows`] keys. Every read is an index scan; none
//!   sorts.
//! - **Writes** go to one writer thread that owns the write connection and commits every
//!   request that queued up meanwhile in one transaction (group commit), each request with its
//!   own precondition check and its own revision. WAL mode, `synchronous=FULL` by default.
//! - **Reads** use a small pool of separate connections on Tokio's blocking pool, so they run on
//!   a WAL snapshot and never wait for the writer.
//! - **Watches** go through the shared [`storage_api::WatchHub`]: the writer publishes each
//!   commit to per-watcher bounded buffers; a watch from a past revision replays the log and
//!   registers for live events once close to the newest revision, with no gap and no duplicate.
//! - **Compaction**: [`Interface::compact`] moves the compaction revision; the writer then
//!   deletes superseded versions and tombstones in small transactions, checkpoints the WAL and
//!   returns free pages to the file system (`auto_vacuum=INCREMENTAL`). Background compaction
//!   does the same on a time window. [`SqliteStore::stats`] exposes counters.
//! - **TTL**: the expiry time (wall clock) is stored with the key, so it survives restarts;
//!   expiry is an ordinary delete with its own revision.

mod options;
mod past_counts;
mod reader;
mod schema;
mod watch;
mod writer;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use storage_api::{
    BatchWrite, Capabilities, DeleteResponse, Error, GetResponse, Interface, Precondition,
    RangeRequest, RangeResponse, Result, Revision, Ttl, WatchRequest, WatchStream, validate_batch,
    validate_key,
};
use tokio::sync::oneshot;

pub use options::{SqliteOptions, Synchronous, parse_url};
pub use schema::SCHEMA_VERSION;

use past_counts::PastCounts;
use reader::ReaderPool;
use storage_api::{WatchHub, WatchSettings};
use watch::LogHistory;
use writer::{Command, Counters, WriteOp, Writer, Written};

/// Why [`SqliteStore::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another store (in this or another process) has the database open.
    #[error(
        "database {path} is already open by another process or store (lock file {lock} is held)"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// The lock file that is held.
        lock: PathBuf,
    },
    /// The file was written by a newer version of this backend.
    #[error(
        "database schema version {found} is newer than this build supports (up to {supported}); \
         use a newer build"
    )]
    UnsupportedSchema {
        /// The version recorded in the file.
        found: i64,
        /// The newest version this build understands.
        supported: i64,
    },
    /// The file is an SQLite database with tables, but not one written by this backend.
    #[error("the file is an SQLite database that was not created by backend-sqlite")]
    NotOurs,
    /// SQLite refused WAL mode (for example on a file system without shared memory).
    #[error("could not switch the database to WAL journal mode (journal mode is {0:?})")]
    NoWal(String),
    /// A file-system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite reported an error (for example: not a database, corrupt file).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl From<OpenError> for Error {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Locked { .. } => Error::unavailable_from("cannot open the store", error),
            other => Error::internal_from("cannot open the store", other),
        }
    }
}

/// Converts a SQLite error: busy and locked databases are retryable, the rest is internal.
pub(crate) fn sql_error(error: rusqlite::Error) -> Error {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Error::unavailable_from("sqlite is busy", error)
        }
        // A full disk is named, as etcd names its full backend ("database space exceeded").
        // Every error but BUSY and LOCKED is internal: retrying will not help.
        Some(rusqlite::ErrorCode::DiskFull) => {
            Error::internal_from("sqlite: no space left on the database's disk", error)
        }
        _ => Error::internal_from("sqlite", error),
    }
}

/// Counters of a [`SqliteStore`], from [`SqliteStore::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteStats {
    /// Write transactions committed (one per group commit).
    pub transactions: u64,
    /// Writes committed (each took a revision), including TTL expiries.
    pub writes: u64,
    /// Writes refused by their precondition (AlreadyExists, NotFound, Conflict).
    pub rejected_writes: u64,
    /// Requests failed because their transaction failed.
    pub failed_writes: u64,
    /// Keys deleted by TTL expiry.
    pub expired_keys: u64,
    /// The compaction revision: the oldest revision still readable.
    pub compact_revision: Revision,
    /// Physical compaction has deleted superseded history up to this revision.
    pub compacted_through: Revision,
    /// Compaction transactions run.
    pub compaction_batches: u64,
    /// Log rows (superseded versions and tombstones) deleted by compaction.
    pub compacted_rows: u64,
    /// WAL checkpoints run after compaction.
    pub checkpoints: u64,
    /// Incremental vacuums run.
    pub vacuums: u64,
    /// Pages returned to the file system by incremental vacuum.
    pub vacuumed_pages: u64,
    /// Live watchers registered now.
    pub watchers: u64,
}

/// A store in one SQLite file. Implements [`Interface`]; share it as `Arc<dyn Interface>`.
///
/// Dropping it stops the writer thread (after the transaction in progress), ends open watches
/// with [`Error::Unavailable`] and releases the lock file.
pub struct SqliteStore {
    path: PathBuf,
    commands: Option<std::sync::mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<ReaderPool>,
    past_counts: PastCounts,
    hub: Arc<WatchHub>,
    counters: Arc<Counters>,
    options: SqliteOptions,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The lock file next to a database: `PATH-lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}

/// Moves the revision of the closed store at `path` to `revision` and marks every earlier
/// revision compacted, without writing a key: the store then answers at `revision`, and reads
/// and watches from any earlier revision fail as compacted. A restore does this so that clients
/// of the server it replaces list again instead of resuming into another history (etcd's
/// `snapshot restore --bump-revision --mark-compacted`). The deletion of superseded versions
/// below `revision` is left to the store's background compaction.
///
/// Fails with [`OpenError::Locked`] while a store has the database open, and with
/// [`Error::InvalidArgument`] when `revision` is below the store's current revision.
pub fn bump_revision(path: &Path, revision: Revision) -> Result<()> {
    let _lock = acquire_lock(path)?;
    let mut conn = schema::open_writer(path, &SqliteOptions::default())?;
    let current = writer::load(&conn).map_err(sql_error)?.current;
    if revision < current {
        return Err(Error::InvalidArgument(format!(
            "cannot move the store at {} back from revision {current} to {revision}",
            path.display()
        )));
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE name = 'compact_rev'",
        [revision],
    )
    .map_err(sql_error)?;
    tx.commit().map_err(sql_error)?;
    tracing::info!(path = %path.display(), revision, "moved the store's revision");
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path`.
    ///
    /// Fails with [`OpenError::Locked`] when another store holds it, with
    /// [`OpenError::UnsupportedSchema`] when a newer build wrote it, and with
    /// [`OpenError::NotOurs`] for other SQLite databases. Opening needs no async runtime; the
    /// [`Interface`] methods must run inside a Tokio runtime (reads use its blocking pool).
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let span = tracing::info_span!("sqlite_open", path = %path.display());
        let _enter = span.enter();
        let lock = acquire_lock(&path)?;
        let conn = schema::open_writer(&path, &options)?;
        let state = writer::load(&conn)?;
        tracing::info!(
            revision = state.current,
            compacted = state.compact_rev,
            "opened sqlite store"
        );
        let hub = Arc::new(WatchHub::new(state.current));
        let counters = Arc::new(Counters::default());
        let (commands, rx) = std::sync::mpsc::channel();
        let writer = Writer::new(
            conn,
            lock,
            rx,
            Arc::clone(&hub),
            Arc::clone(&counters),
            options.clone(),
            state,
        );
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| OpenError::Io {
                what: "cannot start the writer thread for",
                path: path.clone(),
                source,
            })?;
        Ok(SqliteStore {
            readers: Arc::new(ReaderPool::new(path.clone(), options.readers)),
            past_counts: PastCounts::new(1024),
            path,
            commands: Some(commands),
            writer: Some(handle),
            hub,
            counters,
            options,
        })
    }

    /// Opens the store a storage URL names: `sqlite://PATH?OPTIONS` (see the crate docs for
    /// the options). Errors are the contract's: [`Error::InvalidArgument`] for a bad URL or
    /// option, [`Error::Unavailable`] when another store holds the file, [`Error::Internal`]
    /// for the rest of [`OpenError`].
    pub fn open_url(url: &str) -> Result<Self> {
        let (path, options) = parse_url(url)?;
        Ok(SqliteStore::open(path, options)?)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.options
    }

    /// A snapshot of the store's counters.
    pub fn stats(&self) -> SqliteStats {
        let c = &self.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        SqliteStats {
            transactions: load(&c.transactions),
            writes: load(&c.writes),
            rejected_writes: load(&c.rejected),
            failed_writes: load(&c.failed),
            expired_keys: load(&c.expired),
            compact_revision: load(&c.compact_revision),
            compacted_through: load(&c.compacted_through),
            compaction_batches: load(&c.compaction_batches),
            compacted_rows: load(&c.compacted_rows),
            checkpoints: load(&c.checkpoints),
            vacuums: load(&c.vacuums),
            vacuumed_pages: load(&c.vacuumed_pages),
            watchers: self.hub.watchers() as u64,
        }
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands
            .as_ref()
            .ok_or_else(|| Error::unavailable("the store is closed"))?
            .send(command)
            .map_err(|_| Error::unavailable("the sqlite writer has stopped"))
    }

    async fn write(&self, op: WriteOp) -> Result<Written> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Write { op, reply })?;
        answer
            .await
            .map_err(|_| Error::unavailable("the sqlite writer has stopped"))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel stops the writer after its current transaction.
        self.commands = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the sqlite writer thread panicked");
            }
        }
    }
}

fn acquire_lock(path: &Path) -> Result<File, OpenError> {
    let lock = lock_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(|source| OpenError::Io {
            what: "cannot open the lock file",
            path: lock.clone(),
            source,
        })?;
    // Fully qualified: `File` has an inherent `try_lock` on newer toolchains.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(OpenError::Locked {
            path: path.to_path_buf(),
            lock,
        }),
        Err(fs4::TryLockError::Error(source)) => Err(OpenError::Io {
            what: "cannot lock",
            path: lock,
            source,
        }),
    }
}

#[async_trait]
impl Interface for SqliteStore {
    #[tracing::instrument(level = "debug", skip(self, value), fields(len = value.len()))]
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        validate_key(key)?;
        match self
            .write(WriteOp::Create {
                key: key.to_owned(),
                value,
                ttl,
            })
            .await?
        {
            Written::Revision(revision) => Ok(revision),
            Written::Deleted(_) => Err(Error::internal("create answered as a delete")),
        }
    }

    #[tracing::instrument(level = "debug", skip(self, value), fields(len = value.len()))]
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision> {
        validate_key(key)?;
        match self
            .write(WriteOp::Update {
                key: key.to_owned(),
                value,
                precondition,
                ttl,
            })
            .await?
        {
            Written::Revision(revision) => Ok(revision),
            Written::Deleted(_) => Err(Error::internal("update answered as a delete")),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse> {
        validate_key(key)?;
        match self
            .write(WriteOp::Delete {
                key: key.to_owned(),
                precondition,
            })
            .await?
        {
            Written::Deleted(response) => Ok(response),
            Written::Revision(_) => Err(Error::internal("delete answered as a put")),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        validate_key(key)?;
        let key = key.to_owned();
        self.readers
            .read(move |tx| reader::get(tx, &key, revision))
            .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        request.validate()?;
        let prefix = request.prefix.clone();
        let start = request.start.clone().unwrap_or_else(|| prefix.clone());
        let known = request
            .revision
            .and_then(|revision| self.past_counts.get(&prefix, revision, &start));
        let (response, from_history) = self
            .readers
            .read(move |tx| reader::range(tx, &request, known))
            .await?;
        if let (true, true, Some(last)) = (from_history, response.more, response.kvs.last()) {
            let remaining = response.count.saturating_sub(response.kvs.len() as u64);
            let next = format!("{}\0", last.key);
            self.past_counts
                .insert(&prefix, response.revision, next, remaining);
        }
        Ok(response)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        request.validate()?;
        if let Some(start) = request.start_revision {
            let snapshot = self.readers.read(reader::snapshot).await?;
            if start < snapshot.compacted {
                return Err(Error::Compacted {
                    requested: start,
                    compacted: snapshot.compacted,
                });
            }
            // A start in the future is allowed: the watch waits for it (Kubernetes relies on
            // this for watches from a resourceVersion newer than the store's).
        }
        let history = Arc::new(LogHistory {
            readers: Arc::clone(&self.readers),
        });
        let settings = WatchSettings {
            buffer: self.options.watch_buffer,
            progress_interval: self.options.progress_interval,
        };
        Ok(self.hub.watch(&request, history, settings))
    }

    /// One request to the writer: the batch commits in the next group commit, its rows at
    /// consecutive positions of the log, all reporting the revision of the last (see
    /// `schema`).
    #[tracing::instrument(level = "debug", skip_all, fields(writes = writes.len()))]
    async fn write_batch(&self, writes: Vec<BatchWrite>) -> Result<Revision> {
        validate_batch(&writes, usize::MAX)?;
        match self.write(WriteOp::Batch { writes }).await? {
            Written::Revision(revision) => Ok(revision),
            Written::Deleted(_) => Err(Error::internal("batch answered as a delete")),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Compact { revision, reply })?;
        answer
            .await
            .map_err(|_| Error::unavailable("the sqlite writer has stopped"))?
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.readers.read(reader::snapshot).await?.current)
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.readers.read(reader::snapshot).await?.compacted)
    }

    async fn request_progress(&self) -> Result<()> {
        self.hub.request_progress();
        Ok(())
    }

    async fn ready(&self) -> Result<()> {
        if self
            .writer
            .as_ref()
            .is_none_or(|writer| writer.is_finished())
        {
            return Err(Error::unavailable("the sqlite writer has stopped"));
        }
        self.readers.read(reader::snapshot).await.map(|_| ())
    }

    /// TTLs (stored expiry times, expiring as deletes), progress events (every
    /// `progress_interval` and on request) and compaction (history is dropped below the
    /// compaction revision), atomic batches (rows sharing one revision): every optional
    /// capability.
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
}
