//! The store handle, its shared state and the [`Interface`] implementation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::{MappedRwLockReadGuard, Mutex, RwLock, RwLockReadGuard};
use storage_api::{
    BatchWrite, Capabilities, DeleteResponse, Error, GetResponse, Interface, Precondition,
    RangeRequest, RangeResponse, Result, Revision, Ttl, WatchRequest, WatchStream, validate_batch,
    validate_key,
};
use tracing::Instrument;

use crate::database::{Database, StoreLock, Trees};
use crate::keys;
use crate::options::{Durability, SledOptions};
use crate::read;
use crate::watch::LogHistory;
use crate::writer::{self, Command, Outcome, Request};
use storage_api::{WatchHub, WatchSettings};

/// State shared by the store handle, the writer thread, readers and watches.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The open database. Reads wait while the writer swaps it (to reopen it after a failed
    /// flush, or to swap in a rewrite); it is `None`, and reads fail with `Unavailable`, only
    /// after a reopen that failed, until one succeeds.
    pub database: RwLock<Option<Database>>,
    pub path: PathBuf,
    pub options: SledOptions,
    /// The compaction revision: the oldest revision still readable.
    pub compacted: AtomicU64,
    /// The registered watchers, and the newest revision that is durable (per the durability
    /// mode) and published to them: the revision every "latest" read is served at.
    pub hub: Arc<WatchHub>,
    /// Set while the store cannot accept writes: from a failed flush until the writer has
    /// reopened the database from disk.
    pub failure: Mutex<Option<Failure>>,
    /// Counters, see [`SledStats`].
    pub counters: Counters,
    /// The store's lock file, held until the database above is closed (fields drop in order).
    pub lock: StoreLock,
}

/// Why a store refuses writes: the error of its failed flush, kept to answer every refused
/// write with the same kind of error (a full disk is `Internal` and says so, other I/O
/// failures `Unavailable`).
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    message: String,
    unavailable: bool,
}

impl Failure {
    pub fn of(error: &Error) -> Failure {
        Failure {
            message: error.to_string(),
            unavailable: matches!(error, Error::Unavailable { .. }),
        }
    }

    /// The error to answer with: `context`, then the failure.
    pub fn error(&self, context: std::fmt::Arguments<'_>) -> Error {
        let message = format!("{context}: {}", self.message);
        if self.unavailable {
            Error::unavailable(message)
        } else {
            Error::internal(message)
        }
    }
}

/// The live counters behind [`SledStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub writes: AtomicU64,
    pub flushes: AtomicU64,
    pub expired: AtomicU64,
    pub compacted_entries: AtomicU64,
    pub rewrites: AtomicU64,
}

/// Counters of a [`SledStore`] since it was opened (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SledStats {
    /// Writes committed (creates, updates, deletes, TTL expiries).
    pub writes: u64,
    /// Group commits made durable: one flush each. Fewer than `writes` when concurrent writes
    /// were batched.
    pub flushes: u64,
    /// Keys deleted by TTL expiry.
    pub expired: u64,
    /// Log entries whose history compaction has deleted.
    pub compacted_entries: u64,
    /// Times the directory was rewritten to give back space (see
    /// [`SledOptions::rewrite_percent`]).
    pub rewrites: u64,
    /// The current (published) revision.
    pub revision: Revision,
    /// The compaction revision.
    pub compacted: Revision,
}

impl Shared {
    /// The error to return once the store failed, if it did.
    pub fn check_failed(&self) -> Result<()> {
        match self.failure.lock().as_ref() {
            Some(failure) => Err(failure.error(format_args!(
                "the sled store at {} refuses writes until it is reopened from disk",
                self.path.display()
            ))),
            None => Ok(()),
        }
    }

    /// Opens the store's directory again (after [`Database::open`]'s layout recovery), for the
    /// writer to swap in; the caller has dropped the database it replaces.
    pub fn open_database(&self) -> Result<Database> {
        Database::open(
            &sled_config(&self.path, &self.options),
            &self.path,
            &self.lock,
            self.options.durability == Durability::Fsync,
        )
    }

    /// The open database, for one read or write. Hold the guard for the whole operation and
    /// never take a second one on the same thread: the writer waits for every guard before it
    /// swaps the database.
    pub fn database(&self) -> Result<MappedRwLockReadGuard<'_, Database>> {
        RwLockReadGuard::try_map(self.database.read(), Option::as_ref).map_err(|_| {
            Error::unavailable(format!(
                "the sled store at {} is being reopened",
                self.path.display()
            ))
        })
    }
}

/// Converts a sled error: I/O failures are retryable (`Unavailable`), everything else
/// (corruption, bugs, unsupported configuration) is `Internal`.
pub(crate) fn sled_error(context: &str, error: sled::Error) -> Error {
    match error {
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            Error::internal_from(
                format!("{context}: no space left on the sled store's disk"),
                io,
            )
        }
        sled::Error::Io(io) => Error::unavailable_from(context.to_owned(), io),
        other => Error::internal_from(context.to_owned(), other),
    }
}

/// A storage [`Interface`] on a sled database directory.
///
/// One writer thread assigns revisions and commits each write as one sled transaction over the
/// log, versions, state, TTL and meta trees; writes that arrive while a flush is running are
/// committed together and made durable by the next flush (group commit). Reads run on Tokio's
/// blocking pool and are served from the version index at one revision, so a range is a
/// consistent snapshot even while writes commit. See the crate documentation for the layout and
/// the durability guarantee.
///
/// Dropping the store stops the writer thread, ends live watch streams with `Unavailable` and
/// closes the database (releasing sled's directory lock) once in-flight reads finish.
#[derive(Debug)]
pub struct SledStore {
    shared: Arc<Shared>,
    writer: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl SledStore {
    /// Opens (creating if needed) the store in the directory `path`.
    ///
    /// This is what the `storage` facade calls for `sled://PATH?QUERY`, with
    /// [`SledOptions::from_query`]`(QUERY)`. Blocking (sled replays its log); call it from
    /// `spawn_blocking` inside a runtime if the directory may be large. Needs no Tokio runtime
    /// itself; the store's methods must be called from one.
    ///
    /// The store locks the file `PATH.sled-lock` beside the directory while open, and may
    /// create `PATH.sled-rewrite` and `PATH.sled-old` there (see [`SledOptions::rewrite_percent`]).
    ///
    /// Errors: [`Error::Unavailable`] if the directory is already open (a second opener, in
    /// this process or another, is refused) or cannot be read;
    /// [`Error::Internal`] for a corrupt store or one written by a newer version of this crate.
    pub fn open(path: impl AsRef<Path>, options: SledOptions) -> Result<SledStore> {
        let path = absolute(path.as_ref())?;
        let _span = tracing::info_span!("sled_open", path = %path.display()).entered();
        let lock = StoreLock::acquire(&path)?;
        let config = sled_config(&path, &options);
        let database = Database::open(
            &config,
            &path,
            &lock,
            options.durability == Durability::Fsync,
        )?;
        let start = check_schema(&path, &database.trees)?;
        let shared = Arc::new(Shared {
            database: RwLock::new(Some(database)),
            path,
            options,
            compacted: AtomicU64::new(start.compacted),
            hub: Arc::new(WatchHub::new(start.revision)),
            failure: Mutex::new(None),
            counters: Counters::default(),
            lock,
        });
        let (sender, thread) = writer::spawn(Arc::clone(&shared), start)?;
        tracing::info!(
            revision = start.revision,
            compacted = start.compacted,
            "opened sled store"
        );
        Ok(SledStore {
            shared,
            writer: Some(sender),
            thread: Some(thread),
        })
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The store's counters.
    pub fn stats(&self) -> SledStats {
        let counters = &self.shared.counters;
        SledStats {
            writes: counters.writes.load(Ordering::Relaxed),
            flushes: counters.flushes.load(Ordering::Relaxed),
            expired: counters.expired.load(Ordering::Relaxed),
            compacted_entries: counters.compacted_entries.load(Ordering::Relaxed),
            rewrites: counters.rewrites.load(Ordering::Relaxed),
            revision: self.shared.hub.published(),
            compacted: self.shared.compacted.load(Ordering::SeqCst),
        }
    }

    async fn submit(&self, command: Command) -> Result<Outcome> {
        self.shared.check_failed()?;
        let sender = self
            .writer
            .as_ref()
            .ok_or_else(|| Error::unavailable("the sled store is closed"))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        sender
            .send(Request {
                command,
                reply,
                span: tracing::Span::current(),
            })
            .map_err(|_| Error::unavailable("the sled writer thread has stopped"))?;
        answer
            .await
            .map_err(|_| Error::unavailable("the sled writer thread stopped before answering"))?
    }

    async fn blocking<T, F>(&self, what: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&shared)))
            .await
            .map_err(|e| Error::internal_from(format!("sled {what} task failed"), e))?
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer after its current batch; joining it means the
        // database is released when `drop` returns (unless reads are still in flight).
        drop(self.writer.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the sled writer thread panicked");
            }
        }
        self.shared.hub.close();
    }
}

/// What the writer starts from, read from the `meta` tree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StartState {
    pub revision: Revision,
    pub compacted: Revision,
    pub compact_done: Revision,
}

/// `path` made absolute, so that `sled://.` has a name to put its lock and rewrite beside.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path)
        .map_err(|e| Error::InvalidArgument(format!("the sled store path {}: {e}", path.display())))
}

/// The sled configuration of a store at `path`.
pub(crate) fn sled_config(path: &Path, options: &SledOptions) -> sled::Config {
    let flush_every = match options.durability {
        Durability::None => {
            Some(u64::try_from(options.flush_every.as_millis()).unwrap_or(u64::MAX))
        }
        Durability::Fsync | Durability::Flush => None,
    };
    sled::Config::new()
        .path(path)
        .cache_capacity(options.cache_bytes)
        // sled's space amplification is its weak spot; writes wait for the flush anyway.
        .mode(sled::Mode::LowSpace)
        .flush_every_ms(flush_every)
}

/// Moves the revision of the closed store in the directory `path` to `revision` and marks
/// every earlier revision compacted, without writing a key: the store then answers at
/// `revision`, and reads and watches from any earlier revision fail as compacted. A restore
/// does this so that clients of the server it replaces list again instead of resuming into
/// another history (etcd's `snapshot restore --bump-revision --mark-compacted`). The deletion
/// of superseded versions below `revision` is left to the store's compaction.
///
/// Fails with [`Error::Unavailable`] while a store keeps the directory open, and with
/// [`Error::InvalidArgument`] when `revision` is below the store's current revision.
pub fn bump_revision(path: impl AsRef<Path>, revision: Revision) -> Result<()> {
    let path = &absolute(path.as_ref())?;
    let lock = StoreLock::acquire(path)?;
    let database = Database::open(
        &sled::Config::new().path(path).flush_every_ms(None),
        path,
        &lock,
        false,
    )?;
    let Database { db, trees, .. } = database;
    let start = check_schema(path, &trees)?;
    if revision < start.revision {
        return Err(Error::InvalidArgument(format!(
            "cannot move the store at {} back from revision {} to {revision}",
            path.display(),
            start.revision
        )));
    }
    let mut batch = sled::Batch::default();
    batch.insert(keys::META_REVISION, &keys::revision_key(revision)[..]);
    batch.insert(keys::META_COMPACTED, &keys::revision_key(revision)[..]);
    trees
        .meta
        .apply_batch(batch)
        .map_err(|e| sled_error("writing sled meta", e))?;
    db.flush()
        .map_err(|e| sled_error("flushing the sled store", e))?;
    tracing::info!(path = %path.display(), revision, "moved the store's revision");
    Ok(())
}

fn read_meta(trees: &Trees, name: &[u8]) -> Result<Option<u64>> {
    let value = trees
        .meta
        .get(name)
        .map_err(|e| sled_error("reading sled meta", e))?;
    value
        .map(|v| keys::parse_u64(&String::from_utf8_lossy(name), &v))
        .transpose()
}

/// Records [`keys::SCHEMA_VERSION`] as the store's layout, durably.
fn write_schema_version(trees: &Trees) -> Result<()> {
    trees
        .meta
        .insert(
            keys::META_SCHEMA,
            &keys::revision_key(keys::SCHEMA_VERSION)[..],
        )
        .map_err(|e| sled_error("writing the sled schema version", e))?;
    trees
        .meta
        .flush()
        .map_err(|e| sled_error("flushing the sled schema version", e))?;
    Ok(())
}

pub(crate) fn check_schema(path: &Path, trees: &Trees) -> Result<StartState> {
    match read_meta(trees, keys::META_SCHEMA)? {
        Some(keys::SCHEMA_VERSION) => {}
        Some(old) if keys::UPGRADABLE_SCHEMAS.contains(&old) => {
            tracing::info!(
                from = old,
                to = keys::SCHEMA_VERSION,
                "upgrading the sled schema"
            );
            write_schema_version(trees)?;
        }
        Some(other) => {
            return Err(Error::internal(format!(
                "the sled store at {} has schema version {other}; this build understands \
                 version {} only (written by a newer backend-sled?)",
                path.display(),
                keys::SCHEMA_VERSION
            )));
        }
        None => {
            let empty = trees.log.is_empty()
                && trees.versions.is_empty()
                && trees.state.is_empty()
                && trees.meta.is_empty();
            if !empty {
                return Err(Error::internal(format!(
                    "the sled database at {} is not a backend-sled store (no schema version)",
                    path.display()
                )));
            }
            write_schema_version(trees)?;
        }
    }
    let revision = read_meta(trees, keys::META_REVISION)?.unwrap_or(0);
    let compacted = read_meta(trees, keys::META_COMPACTED)?.unwrap_or(0);
    let compact_done = read_meta(trees, keys::META_COMPACT_DONE)?.unwrap_or(0);
    if compacted > revision || compact_done > compacted {
        return Err(Error::internal(format!(
            "the sled store at {} is inconsistent: revision {revision}, compacted {compacted}, \
             compaction done to {compact_done}",
            path.display()
        )));
    }
    Ok(StartState {
        revision,
        compacted,
        compact_done,
    })
}

fn check_ttl(ttl: Ttl) -> Result<()> {
    match ttl {
        Some(ttl) if ttl.as_millis() > u128::from(u32::MAX) * 1000 => {
            Err(Error::InvalidArgument(format!("ttl {ttl:?} is too long")))
        }
        _ => Ok(()),
    }
}

fn unexpected(outcome: Outcome) -> Error {
    Error::internal(format!("sled writer answered with {outcome:?}"))
}

#[async_trait]
impl Interface for SledStore {
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        let span = tracing::debug_span!("sled_create", key, len = value.len());
        async {
            validate_key(key)?;
            check_ttl(ttl)?;
            match self
                .submit(Command::Create {
                    key: key.to_owned(),
                    value,
                    ttl,
                })
                .await?
            {
                Outcome::Revision(revision) => Ok(revision),
                other => Err(unexpected(other)),
            }
        }
        .instrument(span)
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision> {
        let span = tracing::debug_span!("sled_update", key, len = value.len());
        async {
            validate_key(key)?;
            check_ttl(ttl)?;
            match self
                .submit(Command::Update {
                    key: key.to_owned(),
                    value,
                    precondition,
                    ttl,
                })
                .await?
            {
                Outcome::Revision(revision) => Ok(revision),
                other => Err(unexpected(other)),
            }
        }
        .instrument(span)
        .await
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse> {
        let span = tracing::debug_span!("sled_delete", key);
        async {
            validate_key(key)?;
            match self
                .submit(Command::Delete {
                    key: key.to_owned(),
                    precondition,
                })
                .await?
            {
                Outcome::Deleted(response) => Ok(response),
                other => Err(unexpected(other)),
            }
        }
        .instrument(span)
        .await
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        let span = tracing::debug_span!("sled_get", key, revision);
        async {
            validate_key(key)?;
            let key = key.to_owned();
            self.blocking("get", move |shared| read::get(shared, &key, revision))
                .await
        }
        .instrument(span)
        .await
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let span = tracing::debug_span!(
            "sled_range",
            prefix = %request.prefix,
            revision = request.revision,
            limit = request.limit
        );
        async {
            request.validate()?;
            self.blocking("range", move |shared| read::range(shared, &request))
                .await
        }
        .instrument(span)
        .await
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        let span = tracing::debug_span!(
            "sled_watch",
            key = %request.key,
            prefix = request.prefix,
            start = request.start_revision
        );
        async {
            request.validate()?;
            // A store that refuses writes (until it is reopened) still serves watches.
            if let Some(start) = request.start_revision {
                let compacted = self.shared.compacted.load(Ordering::SeqCst);
                if start < compacted {
                    return Err(Error::Compacted {
                        requested: start,
                        compacted,
                    });
                }
                // A start above the current revision is allowed: the watch waits for it.
            }
            let history = Arc::new(LogHistory {
                shared: Arc::downgrade(&self.shared),
            });
            let settings = WatchSettings {
                buffer: self.shared.options.watch_buffer,
                progress_interval: self.shared.options.progress_interval,
            };
            Ok(self.shared.hub.watch(&request, history, settings))
        }
        .instrument(span)
        .await
    }

    async fn write_batch(&self, writes: Vec<BatchWrite>) -> Result<Revision> {
        let span = tracing::debug_span!("sled_write_batch", writes = writes.len());
        async {
            validate_batch(&writes, usize::MAX)?;
            match self.submit(Command::Batch { writes }).await? {
                Outcome::Revision(revision) => Ok(revision),
                other => Err(unexpected(other)),
            }
        }
        .instrument(span)
        .await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let span = tracing::debug_span!("sled_compact", revision);
        async {
            match self.submit(Command::Compact { revision }).await? {
                Outcome::Compacted => Ok(()),
                other => Err(unexpected(other)),
            }
        }
        .instrument(span)
        .await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.hub.published())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.compacted.load(Ordering::SeqCst))
    }

    async fn request_progress(&self) -> Result<()> {
        self.shared.hub.request_progress();
        Ok(())
    }

    async fn ready(&self) -> Result<()> {
        self.shared.check_failed()?;
        match &self.thread {
            Some(thread) if !thread.is_finished() => Ok(()),
            _ => Err(Error::unavailable("the sled writer thread has stopped")),
        }
    }

    /// TTLs (expiring as deletes), progress events (every `progress_interval` and on request)
    /// and compaction (history is dropped below the compaction revision): every optional
    /// capability, atomic batches included (one log entry holds a batch's records).
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
}
