//! Raw-engine baselines that do not go through the storage `Interface`: a rusqlite insert loop
//! and the fsync rate of the data directory. (The raw etcd-client loop is a
//! [`crate::client::Client`] so that it runs the very same workload code as the backend.)

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rusqlite::{Connection, params};
use storage_api::Interface;

use crate::client::stamped_value;
use crate::stats::{Recorder, now_stamp};
use crate::workloads::Measured;

/// Which keys a raw insert batch writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawKeys {
    /// One ascending sequence: a batch appends to one end of every key-ordered b-tree.
    Sequential,
    /// One ascending sequence per slot of the batch, as the create workload's clients write
    /// them (`c<client>-<seq>`): a batch writes as many places of the key order as it has
    /// inserts, the physical cost of that workload.
    Interleaved,
}

/// Opens a fresh raw SQLite file in `dir` with the SQLite backend's durability (WAL,
/// `synchronous=FULL`) and the two tables every backend write touches: a log row appended
/// in revision order, and a current-state row in key order.
fn open_raw(dir: &Path) -> Result<Connection> {
    let path = dir.join("raw.sqlite");
    let conn = Connection::open(&path).context("opening the raw SQLite file")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE log (rev INTEGER PRIMARY KEY, key BLOB NOT NULL, value BLOB);
         CREATE TABLE current (key BLOB PRIMARY KEY, rev INTEGER NOT NULL) WITHOUT ROWID;",
    )?;
    Ok(conn)
}

/// Commits one transaction of `batch` inserts, revisions `rev + 1 ..= rev + batch`.
fn insert_txn(
    conn: &mut Connection,
    rev: i64,
    batch: usize,
    keys: RawKeys,
    value_size: usize,
) -> Result<()> {
    let tx = conn.transaction()?;
    {
        let mut log = tx.prepare_cached("INSERT INTO log (rev, key, value) VALUES (?1, ?2, ?3)")?;
        let mut current = tx.prepare_cached("INSERT INTO current (key, rev) VALUES (?1, ?2)")?;
        for slot in 0..batch {
            let rev = rev + 1 + slot as i64;
            let key = match keys {
                RawKeys::Sequential => format!("/b/c-{rev:09}"),
                RawKeys::Interleaved => format!("/b/c{slot:03}-{:09}", rev / batch as i64),
            };
            let value = stamped_value(now_stamp(), value_size);
            log.execute(params![rev, key.as_bytes(), value.as_ref()])?;
            current.execute(params![key.as_bytes(), rev])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Inserts into a fresh SQLite file in `dir` for `duration` with the SQLite backend's durability
/// (WAL, `synchronous=FULL`), `batch` inserts per transaction. Each insert appends a log row and
/// inserts a current-state row in key order, the tables of the backend's schema. (The backend
/// writes each state row to its small `current_delta` table first and moves it into `current`
/// in a later fold: less work when many clients append to their own stretches of the key
/// order, more when the keys form one ascending sequence, so the sequential rows here stay the
/// stricter baseline.) Every insert of a batch is recorded with the latency of its
/// transaction.
pub fn sqlite_inserts(
    dir: &Path,
    batch: usize,
    keys: RawKeys,
    value_size: usize,
    duration: Duration,
) -> Result<Measured> {
    let mut conn = open_raw(dir)?;
    let batch = batch.max(1);
    let mut recorder = Recorder::new();
    let mut rev: i64 = 0;
    let start = Instant::now();
    let deadline = start + duration;
    while Instant::now() < deadline {
        let began = Instant::now();
        insert_txn(&mut conn, rev, batch, keys, value_size)?;
        rev += batch as i64;
        recorder.record_n(began.elapsed(), batch as u64);
    }
    let mut measured = Measured {
        recorder,
        elapsed: start.elapsed(),
        ..Measured::default()
    };
    let human = match keys {
        RawKeys::Sequential => format!("WAL, synchronous=FULL, {batch} insert(s)/txn"),
        RawKeys::Interleaved => {
            format!("WAL, synchronous=FULL, {batch} insert(s)/txn, keys of {batch} clients")
        }
    };
    measured.note("batch", batch, human);
    Ok(measured)
}

/// The one-insert transactions of [`sqlite_inserts`], committed by a dedicated thread that owns
/// the connection, for one tokio task that sends each request through a channel and awaits its
/// answer on a `oneshot`: the backend's two thread hand-offs per write (to its writer thread
/// and back to the caller's task) around raw SQLite and nothing else of the backend. Next to
/// `sqlite-raw` it measures what those hand-offs cost on this machine; the backend's
/// single-writer creates measured against it show the backend's own work beyond them.
///
/// # Panics
///
/// When called outside a tokio runtime (it spawns the client task).
pub async fn sqlite_inserts_on_thread(
    dir: &Path,
    value_size: usize,
    duration: Duration,
) -> Result<Measured> {
    let dir = dir.to_owned();
    let mut conn = tokio::task::spawn_blocking(move || open_raw(&dir)).await??;
    let (requests, inbox) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Result<()>>>();
    let committer = std::thread::Builder::new()
        .name("raw-sqlite-writer".to_owned())
        .spawn(move || {
            for (rev, answer) in (0i64..).zip(inbox) {
                let result = insert_txn(&mut conn, rev, 1, RawKeys::Sequential, value_size);
                let _ = answer.send(result);
            }
        })
        .context("starting the raw SQLite writer thread")?;
    let start = Instant::now();
    let deadline = start + duration;
    // A spawned task, as the create workload's clients are: its answers wake a runtime worker,
    // not a thread blocked in `block_on`.
    let client = tokio::spawn(async move {
        let mut recorder = Recorder::new();
        while Instant::now() < deadline {
            let began = Instant::now();
            let (answer, answered) = tokio::sync::oneshot::channel();
            requests
                .send(answer)
                .map_err(|_| anyhow::anyhow!("the raw SQLite writer thread stopped"))?;
            answered
                .await
                .context("the raw SQLite writer thread dropped a request")??;
            recorder.record_since(began);
        }
        anyhow::Ok(recorder)
    });
    let outcome = client.await;
    let elapsed = start.elapsed();
    // The task has ended and dropped the sender, so the writer thread is ending too (closing
    // the connection checkpoints the WAL, hence the blocking pool).
    if tokio::task::spawn_blocking(move || committer.join())
        .await?
        .is_err()
    {
        anyhow::bail!("the raw SQLite writer thread panicked");
    }
    let recorder = outcome.context("the raw SQLite client task panicked")??;
    let mut measured = Measured {
        recorder,
        elapsed,
        ..Measured::default()
    };
    measured.note(
        "driver",
        "writer thread",
        "1 insert/txn on a writer thread, fed by a tokio task".to_owned(),
    );
    Ok(measured)
}

/// Creates through the SQLite backend's own `Interface`, driven from the calling thread alone
/// with `futures`' executor: no tokio, no task scheduling, `concurrency` creates in flight
/// (each slot sends its next create as soon as its last is answered, the same keys as the
/// create workload's clients). Next to the `sqlite` kv row (the same workload from tokio
/// tasks) and the raw rusqlite rows, it separates the backend's own cost (channel hand-off,
/// precondition read, statements, event publication, answers) from the benchmark's client
/// side.
pub fn sqlite_direct(
    store: Arc<dyn Interface>,
    prefix: &str,
    concurrency: usize,
    value_size: usize,
    duration: Duration,
) -> Result<Measured> {
    let concurrency = concurrency.max(1);
    let mut recorder = Recorder::new();
    let start = Instant::now();
    let deadline = start + duration;
    let create = |slot: usize, seq: u64| {
        let store = store.clone();
        let key = format!("{prefix}c{slot:03}-{seq:09}");
        let value = stamped_value(now_stamp(), value_size);
        async move {
            let began = Instant::now();
            let result = store.create(&key, value, None).await;
            (slot, began, result)
        }
    };
    futures::executor::block_on(async {
        let mut next_seq = vec![0u64; concurrency];
        let mut in_flight = FuturesUnordered::new();
        for (slot, seq) in next_seq.iter_mut().enumerate() {
            in_flight.push(create(slot, *seq));
            *seq += 1;
        }
        while let Some((slot, began, result)) = in_flight.next().await {
            match result {
                Ok(_) => recorder.record_since(began),
                Err(error) => recorder.error(error),
            }
            if Instant::now() < deadline {
                in_flight.push(create(slot, next_seq[slot]));
                next_seq[slot] += 1;
            }
        }
    });
    let mut measured = Measured {
        recorder,
        elapsed: start.elapsed(),
        ..Measured::default()
    };
    measured.note(
        "driver",
        "one thread",
        "one thread, futures executor, no tokio".to_owned(),
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
        let single = sqlite_inserts(
            dir.path(),
            1,
            RawKeys::Sequential,
            64,
            Duration::from_millis(50),
        )
        .unwrap();
        assert!(single.recorder.count() > 0);
        for keys in [RawKeys::Sequential, RawKeys::Interleaved] {
            let dir = tempfile::tempdir().unwrap();
            let batched =
                sqlite_inserts(dir.path(), 8, keys, 64, Duration::from_millis(50)).unwrap();
            assert_eq!(batched.recorder.count() % 8, 0, "{keys:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let fsync = fsync_rate(dir.path(), Duration::from_millis(50)).unwrap();
        assert!(fsync.recorder.count() > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn raw_inserts_on_a_writer_thread_commit_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let measured = sqlite_inserts_on_thread(dir.path(), 64, Duration::from_millis(50))
            .await
            .unwrap();
        let answered = measured.recorder.count();
        assert!(answered > 0);
        // Every answered request is a committed row: the file holds exactly that many.
        let conn = Connection::open(dir.path().join("raw.sqlite")).unwrap();
        let rows: u64 = conn
            .query_row("SELECT count(*) FROM log", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, answered);
    }
}
