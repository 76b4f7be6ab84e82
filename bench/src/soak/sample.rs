//! What the soak samples every interval: the server's resident memory and open descriptors
//! from `/proc`, and the bytes its store occupies on disk.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The store's files, by the backend that owns them.
#[derive(Clone, Debug)]
pub enum StoreFiles {
    /// A SQLite database: the main file and its `-wal` (the `-shm` index counts as WAL).
    Sqlite(PathBuf),
    /// A sled directory: every file under it.
    Sled(PathBuf),
}

/// Bytes on disk: the database and its write-ahead log.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskBytes {
    /// The database proper (SQLite's main file; all of sled's directory).
    pub database: u64,
    /// SQLite's write-ahead log and its index; 0 for sled.
    pub wal: u64,
}

impl StoreFiles {
    /// The bytes the store's files occupy now (allocated blocks, as `du` counts them).
    ///
    /// # Errors
    ///
    /// When a file or directory cannot be read (a missing WAL is 0).
    pub fn measure(&self) -> Result<DiskBytes> {
        match self {
            StoreFiles::Sqlite(path) => {
                let with_suffix = |suffix: &str| {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    allocated(Path::new(&name))
                };
                Ok(DiskBytes {
                    database: allocated(path)?,
                    wal: with_suffix("-wal")? + with_suffix("-shm")?,
                })
            }
            StoreFiles::Sled(dir) => {
                // A rewrite copies the store into `DIR.sled-rewrite` and swaps it in through
                // `DIR.sled-old`; those count while they exist, and `DIR` itself is missing for
                // the moment between the two renames.
                let mut database = 0;
                for suffix in ["", ".sled-rewrite", ".sled-old", ".sled-space-probe"] {
                    let mut name = dir.as_os_str().to_owned();
                    name.push(suffix);
                    database += tree_bytes(Path::new(&name))?;
                }
                Ok(DiskBytes { database, wal: 0 })
            }
        }
    }
}

/// A file's allocated bytes; 0 when it does not exist.
fn allocated(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.blocks() * 512),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// The allocated bytes of `path`: a file's, or every file's under a directory; 0 when it does
/// not exist (also when it vanishes while being listed).
fn tree_bytes(path: &Path) -> Result<u64> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => return allocated(path),
        Err(error) => return Err(error).with_context(|| format!("listing {}", path.display())),
    };
    let mut total = 0;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error).with_context(|| format!("listing {}", path.display())),
        };
        total += tree_bytes(&entry.path())?;
    }
    Ok(total)
}

/// The process's resident set size in bytes (`VmRSS` of `/proc/PID/status`).
///
/// # Errors
///
/// When the process is gone or the file has no `VmRSS` line.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .context("no VmRSS in /proc/PID/status")
}

/// How many descriptors the process has open (entries of `/proc/PID/fd`).
///
/// # Errors
///
/// When the process is gone.
pub fn open_fds(pid: u32) -> Result<u64> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("listing /proc/{pid}/fd"))?;
    Ok(entries.count() as u64)
}
