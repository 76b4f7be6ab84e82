//! Raw-engine baselines that do not go through the storage `Interface`: a rusqlite insert loop
//! and the fsync rate of the data directory. (The raw etcd-client loop is a
//! [`crate::client::Client`] so that it runs the very same workload code as the backend.)

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{Connection, params};

use crate::client::stamped_value;
use crate::stats::{Recorder, now_stamp};
use crate::workloads::Measured;

/// Inserts into a fresh SQLite file in `dir` for `duration` with the SQLite backend's durability
/// (WAL, `synchronous=FULL`), `batch` inserts per transaction. Each insert appends a log row and
/// inserts a current-state row, as the backend's create does with its schema (a log in revision
/// order, the current state in key order). Every insert of a batch is recorded
/// with the latency of its transaction.
pub fn sqlite_inserts(
    dir: &Path,
    batch: usize,
    value_size: usize,
    duration: Duration,
) -> Result<Measured> {
    let path = dir.join("raw.sqlite");
    let mut conn = Connection::open(&path).context("opening the raw SQLite file")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE log (rev INTEGER PRIMARY KEY, key BLOB NOT NULL, value BLOB);
         CREATE TABLE current (key BLOB PRIMARY KEY, rev INTEGER NOT NULL) WITHOUT ROWID;",
    )?;
    let batch = batch.max(1);
    let mut recorder = Recorder::new();
    let mut rev: i64 = 0;
    let start = Instant::now();
    let deadline = start + duration;
    while Instant::now() < deadline {
        let began = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut log =
                tx.prepare_cached("INSERT INTO log (rev, key, value) VALUES (?1, ?2, ?3)")?;
            let mut current =
                tx.prepare_cached("INSERT INTO current (key, rev) VALUES (?1, ?2)")?;
            for _ in 0..batch {
                rev += 1;
                let key = format!("/b/c-{rev:09}");
                let value = stamped_value(now_stamp(), value_size);
                log.execute(params![rev, key.as_bytes(), value.as_ref()])?;
                current.execute(params![key.as_bytes(), rev])?;
            }
        }
        tx.commit()?;
        recorder.record_n(began.elapsed(), batch as u64);
    }
    let mut measured = Measured {
        recorder,
        elapsed: start.elapsed(),
        ..Measured::default()
    };
    measured.note(
        "batch",
        batch,
        format!("WAL, synchronous=FULL, {batch} insert(s)/txn"),
    );
    Ok(measured)
}

/// Blocks the fsync probe cycles over (1 MiB).
const PROBE_BLOCKS: u64 = 256;

/// Overwrites 4 KiB in place and fsyncs, in a loop, on a preallocated file in `dir` for
/// `duration`: how many durable commits per second the disk allows at best. (Overwriting, like
/// a WAL that is reused after checkpoints, keeps file-size changes out of the measurement.)
pub fn fsync_rate(dir: &Path, duration: Duration) -> Result<Measured> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync.probe");
    let file = std::fs::File::create(&path).context("creating the fsync probe file")?;
    let block = vec![0xA5u8; 4096];
    for i in 0..PROBE_BLOCKS {
        file.write_all_at(&block, i * 4096)?;
    }
    file.sync_all()?;
    let mut recorder = Recorder::new();
    let start = Instant::now();
    let deadline = start + duration;
    let mut i = 0u64;
    while Instant::now() < deadline {
        let began = Instant::now();
        file.write_all_at(&block, (i % PROBE_BLOCKS) * 4096)?;
        file.sync_all()?;
        recorder.record_since(began);
        i += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    let mut measured = Measured {
        recorder,
        elapsed,
        ..Measured::default()
    };
    measured.note(
        "dir",
        dir.display().to_string(),
        format!("4 KiB overwrite + fsync in {}", dir.display()),
    );
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_baselines_run() {
        let dir = tempfile::tempdir().unwrap();
        let single = sqlite_inserts(dir.path(), 1, 64, Duration::from_millis(50)).unwrap();
        assert!(single.recorder.count() > 0);
        let dir = tempfile::tempdir().unwrap();
        let batched = sqlite_inserts(dir.path(), 8, 64, Duration::from_millis(50)).unwrap();
        assert_eq!(batched.recorder.count() % 8, 0);
        let fsync = fsync_rate(dir.path(), Duration::from_millis(50)).unwrap();
        assert!(fsync.recorder.count() > 0);
    }
}
