//! The sled database behind a store, as one replaceable value: opened at start, reopened from
//! disk after a failed flush, and rewritten into a fresh directory to give back the space sled
//! 0.34 does not reclaim by itself.
//!
//! # Files beside the store
//!
//! A store at `PATH` holds an exclusive lock on `PATH.sled-lock` while open, taken before
//! anything else is touched, so a second opener cannot disturb a rewrite in progress.
//!
//! # Rewriting a directory
//!
//! sled 0.34 frees a log segment only once at most half of it is live, so a store that updates
//! and compacts steadily occupies several times its live bytes. [`copy_for_rewrite`] copies
//! every tree into a sibling directory `PATH.sled-rewrite` and makes it durable;
//! [`swap_in_rewrite`] then renames `PATH` to `PATH.sled-old` and the copy to `PATH`, and removes
//! `PATH.sled-old`. [`recover_layout`], run under the lock before every open, finishes or undoes
//! an interrupted swap, so a crash at any step leaves one complete store at `PATH`:
//!
//! - `PATH` exists: it is the store; a leftover `PATH.sled-rewrite` (an unfinished copy) and
//!   `PATH.sled-old` (the store before a finished swap) are removed;
//! - `PATH` is missing and `PATH.sled-rewrite` exists: the crash came between the two renames,
//!   and the copy, durable before the first rename, becomes `PATH`;
//! - only `PATH.sled-old` exists: it goes back to `PATH`.

use std::fs::File;
use std::path::{Path, PathBuf};

use storage_api::{Error, Result};

use crate::store::sled_error;

/// The sled trees of one store (see [`crate::keys`] for their key layouts).
#[derive(Clone, Debug)]
pub(crate) struct Trees {
    /// Revision -> log record (key, put or delete, previous revision of the key).
    pub log: sled::Tree,
    /// `key\0revision` -> version (put with its value, or tombstone).
    pub versions: sled::Tree,
    /// Key -> live state (create and mod revisions, expiry).
    pub state: sled::Tree,
    /// `expiry key` -> empty: keys with a TTL in expiry order.
    pub ttl: sled::Tree,
    /// Store-wide values: schema, revision, compaction.
    pub meta: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> Result<Trees> {
        let open_tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| sled_error(&format!("opening sled tree {name}"), e))
        };
        Ok(Trees {
            log: open_tree("log")?,
            versions: open_tree("versions")?,
            state: open_tree("state")?,
            ttl: open_tree("ttl")?,
            meta: open_tree("meta")?,
        })
    }

    fn all(&self) -> [(&'static str, &sled::Tree); 5] {
        [
            ("log", &self.log),
            ("versions", &self.versions),
            ("state", &self.state),
            ("ttl", &self.ttl),
            ("meta", &self.meta),
        ]
    }

    /// The bytes of every key and value in the trees: what the store holds, whatever sled
    /// occupies on disk for it.
    pub fn logical_bytes(&self) -> Result<u64> {
        let mut total = 0_u64;
        for (name, tree) in self.all() {
            for entry in tree.iter() {
                let (key, value) =
                    entry.map_err(|e| sled_error(&format!("scanning sled tree {name}"), e))?;
                total += (key.len() + value.len()) as u64;
            }
        }
        Ok(total)
    }
}

/// The exclusive lock on `PATH.sled-lock`, held while a store at `PATH` is open.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock, waiting up to [`LOCK_WAIT`] for a store just closed; a store still open
    /// (in this process or another) is [`Error::Unavailable`].
    pub fn acquire(path: &Path) -> Result<StoreLock> {
        let lock = sibling(path, ".sled-lock").ok_or_else(|| no_name(path))?;
        if let Some(parent) = lock.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_error(format!("creating {}", parent.display())))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(io_error(format!("opening {}", lock.display())))?;
        if !lock_within(&file, &lock)? {
            return Err(Error::unavailable(format!(
                "the sled store at {} is already open (one opener per directory, in this \
                 process or another)",
                path.display()
            )));
        }
        Ok(StoreLock { _file: file })
    }
}

/// Takes an exclusive lock on `file` (at `path`), retrying for up to [`LOCK_WAIT`]; `false`
/// when it is still held by someone else then.
fn lock_within(file: &File, path: &Path) -> Result<bool> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // Fully qualified: `File` has an inherent `try_lock` on newer toolchains.
        match fs4::FileExt::try_lock(file) {
            Ok(()) => return Ok(true),
            Err(fs4::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(fs4::TryLockError::WouldBlock) => return Ok(false),
            Err(fs4::TryLockError::Error(error)) => {
                return Err(io_error(format!("locking {}", path.display()))(error));
            }
        }
    }
}

fn no_name(path: &Path) -> Error {
    Error::InvalidArgument(format!(
        "the sled store path {} has no directory name",
        path.display()
    ))
}

/// An open sled database and its trees.
#[derive(Debug)]
pub(crate) struct Database {
    pub db: sled::Db,
    pub trees: Trees,
    /// The database file, fsynced after sled's flush with `sync=fsync`.
    pub db_file: Option<File>,
}

/// How long an open waits for a directory lock that a store closed just before may still
/// hold: sled releases it a moment after the close returns (spacejam/sled#1289).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Database {
    /// Opens the database at `config`'s path (after [`recover_layout`]); the caller holds the
    /// [`StoreLock`]. Waits up to [`LOCK_WAIT`] for sled's own lock, which a database closed
    /// just before may still hold. With `fsync`, the database file is opened too, for fsyncing
    /// after each flush.
    pub fn open(
        config: &sled::Config,
        path: &Path,
        _lock: &StoreLock,
        fsync: bool,
    ) -> Result<Database> {
        recover_layout(path)?;
        let db = open_db(config, path)?;
        let trees = Trees::open(&db)?;
        let db_file = if fsync {
            let file = path.join("db");
            Some(File::open(&file).map_err(|e| {
                Error::unavailable_from(format!("opening {} for fsync", file.display()), e)
            })?)
        } else {
            None
        };
        Ok(Database { db, trees, db_file })
    }
}

fn open_db(config: &sled::Config, path: &Path) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(error) if is_lock_error(&error) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(error) => return Err(open_error(path, error)),
        }
    }
}

fn is_lock_error(error: &sled::Error) -> bool {
    error.to_string().contains("could not acquire lock")
}

fn open_error(path: &Path, error: sled::Error) -> Error {
    if is_lock_error(&error) {
        return Error::unavailable_from(
            format!(
                "the sled store at {} is already open (sled allows a single opener per \
                 directory, in this process or another)",
                path.display()
            ),
            error,
        );
    }
    sled_error(
        &format!("opening the sled store at {}", path.display()),
        error,
    )
}

/// `PATH` with `suffix` appended to its last component, or `None` for a path without one
/// (`/`), which cannot be rewritten.
fn sibling(path: &Path, suffix: &str) -> Option<PathBuf> {
    let name = path.file_name()?;
    let mut sibling = name.to_owned();
    sibling.push(suffix);
    Some(path.with_file_name(sibling))
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |error| {
        if error.kind() == std::io::ErrorKind::StorageFull {
            Error::internal_from(
                format!("{context}: no space left on the sled store's disk"),
                error,
            )
        } else {
            Error::unavailable_from(context, error)
        }
    }
}

fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(format!("removing {}", path.display()))(error)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(io_error(format!(
        "renaming {} to {}",
        from.display(),
        to.display()
    )))
}

/// Finishes or undoes a directory swap that a crash interrupted (see the module
/// documentation). Does nothing for a store that was never rewritten.
fn recover_layout(path: &Path) -> Result<()> {
    let (Some(copy), Some(old)) = (sibling(path, ".sled-rewrite"), sibling(path, ".sled-old"))
    else {
        return Ok(());
    };
    if !path.exists() {
        if copy.exists() {
            tracing::warn!(path = %path.display(), "finishing an interrupted sled rewrite");
            rename(&copy, path)?;
        } else if old.exists() {
            tracing::warn!(path = %path.display(), "undoing an interrupted sled rewrite");
            rename(&old, path)?;
        } else {
            return Ok(());
        }
        sync_parent(path)?;
    }
    remove_dir(&copy)?;
    remove_dir(&old)
}

/// Fsyncs `path`'s parent directory, so that a rename in it is durable.
fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(format!("fsyncing {}", parent.display())))
}

/// Fsyncs every file and directory under `dir` (sled 0.34 never fsyncs its blob files).
fn sync_tree(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(io_error(format!("listing {}", dir.display())))?;
    for entry in entries {
        let path = entry
            .map_err(io_error(format!("listing {}", dir.display())))?
            .path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|file| file.sync_all())
                .map_err(io_error(format!("fsyncing {}", path.display())))?;
        }
    }
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(io_error(format!("fsyncing {}", dir.display())))
}

/// The bytes the files under `dir` occupy on disk (allocated blocks, as `du` counts them).
pub(crate) fn disk_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(io_error(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_error(format!("listing {}", dir.display())))?;
        let meta = entry
            .metadata()
            .map_err(io_error(format!("reading {}", entry.path().display())))?;
        total += if meta.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            allocated(&meta)
        };
    }
    Ok(total)
}

#[cfg(unix)]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

/// Fails unless `bytes` can be written beside the store at `path` now: a probe file of that
/// size is written, synced and removed.
pub(crate) fn ensure_free_space(path: &Path, bytes: u64) -> Result<()> {
    use std::io::Write;
    let probe = sibling(path, ".sled-space-probe").ok_or_else(|| no_name(path))?;
    let context = format!("reserving {bytes} bytes beside {}", path.display());
    let result = (|| {
        let mut file = File::create(&probe)?;
        let chunk = vec![0_u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_data()
    })();
    let removed = std::fs::remove_file(&probe);
    result.map_err(io_error(context))?;
    match removed {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(format!("removing {}", probe.display()))(error)),
    }
}

/// Entries, and bytes, copied per sled batch during a rewrite.
const COPY_BATCH: usize = 1024;
const COPY_BATCH_BYTES: usize = 4 << 20;

/// Copies every tree of `from` into a new database at `PATH.rewrite` and makes it durable,
/// ready for [`swap_in_rewrite`]. `from` stays open and unchanged; the caller must keep
/// writes away from it meanwhile (the writer thread does the rewrite itself). On failure the
/// partial copy is removed. Returns the copy's path.
pub(crate) fn copy_for_rewrite(from: &Database, path: &Path) -> Result<PathBuf> {
    let copy = sibling(path, ".sled-rewrite").ok_or_else(|| no_name(path))?;
    remove_dir(&copy)?;
    let result = (|| {
        let db = open_db(
            &sled::Config::new()
                .path(&copy)
                .mode(sled::Mode::LowSpace)
                .flush_every_ms(None),
            &copy,
        )?;
        for (name, tree) in from.trees.all() {
            let target = db
                .open_tree(name)
                .map_err(|e| sled_error(&format!("creating sled tree {name} in the copy"), e))?;
            let mut batch = sled::Batch::default();
            let (mut pending, mut pending_bytes) = (0, 0);
            for entry in tree.iter() {
                let (key, value) =
                    entry.map_err(|e| sled_error(&format!("reading sled tree {name}"), e))?;
                pending_bytes += key.len() + value.len();
                batch.insert(key, value);
                pending += 1;
                if pending == COPY_BATCH || pending_bytes >= COPY_BATCH_BYTES {
                    target
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(|e| sled_error(&format!("copying sled tree {name}"), e))?;
                    (pending, pending_bytes) = (0, 0);
                }
            }
            target
                .apply_batch(batch)
                .map_err(|e| sled_error(&format!("copying sled tree {name}"), e))?;
        }
        db.flush()
            .map_err(|e| sled_error("flushing the sled copy", e))?;
        drop(db);
        // sled finishes closing a moment after the drop (spacejam/sled#1289); sync what it
        // wrote only once it let go of its file.
        wait_until_closed(&copy)?;
        sync_tree(&copy)?;
        sync_parent(&copy)
    })();
    match result {
        Ok(()) => Ok(copy),
        Err(error) => {
            if let Err(cleanup) = remove_dir(&copy) {
                tracing::warn!(%cleanup, "removing the partial sled copy failed");
            }
            Err(error)
        }
    }
}

/// Waits up to [`LOCK_WAIT`] until no sled database holds the directory `dir` open.
pub(crate) fn wait_until_closed(dir: &Path) -> Result<()> {
    let file = dir.join("db");
    let db = File::open(&file).map_err(io_error(format!("opening {}", file.display())))?;
    if !lock_within(&db, &file)? {
        return Err(Error::unavailable(format!(
            "sled did not close {} in time",
            dir.display()
        )));
    }
    fs4::FileExt::unlock(&db).map_err(io_error(format!("unlocking {}", file.display())))
}

/// Replaces the (closed) store at `path` with the durable copy at `copy`, by the renames the
/// module documentation describes. On failure, [`recover_layout`] (run by the next open)
/// leaves one complete store at `path`.
pub(crate) fn swap_in_rewrite(path: &Path, copy: &Path) -> Result<()> {
    let old = sibling(path, ".sled-old").ok_or_else(|| no_name(path))?;
    rename(path, &old)?;
    rename(copy, path)?;
    sync_parent(path)?;
    remove_dir(&old)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mkdir(path: &Path) {
        std::fs::create_dir_all(path).unwrap();
        std::fs::write(path.join("marker"), path.to_string_lossy().as_bytes()).unwrap();
    }

    fn marker(path: &Path) -> String {
        std::fs::read_to_string(path.join("marker")).unwrap()
    }

    #[test]
    fn recovery_keeps_exactly_one_complete_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let copy = dir.path().join("store.sled-rewrite");
        let old = dir.path().join("store.sled-old");

        // An unfinished copy beside the store: the store stays, the copy goes.
        mkdir(&path);
        mkdir(&copy);
        recover_layout(&path).unwrap();
        assert_eq!(marker(&path), path.to_string_lossy());
        assert!(!copy.exists());

        // A crash between the two renames: the durable copy becomes the store.
        std::fs::rename(&path, &old).unwrap();
        mkdir(&copy);
        recover_layout(&path).unwrap();
        assert_eq!(marker(&path), copy.to_string_lossy());
        assert!(!copy.exists() && !old.exists());

        // Only the old store: it goes back.
        std::fs::rename(&path, &old).unwrap();
        recover_layout(&path).unwrap();
        assert_eq!(marker(&path), copy.to_string_lossy());

        // A crash after the swap, before the old store was removed.
        mkdir(&old);
        recover_layout(&path).unwrap();
        assert!(path.exists() && !old.exists());

        // A store never rewritten is left alone.
        recover_layout(&dir.path().join("fresh")).unwrap();
        assert!(!dir.path().join("fresh").exists());
    }

    #[test]
    fn sibling_names_append_to_the_last_component() {
        assert_eq!(
            sibling(Path::new("/data/sled"), ".old"),
            Some(PathBuf::from("/data/sled.old"))
        );
        assert_eq!(sibling(Path::new("/"), ".old"), None);
    }
}
