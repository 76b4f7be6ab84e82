//! Crash test: a child process (this test binary, re-executed with `CRASH_CHILD_DB` set) writes
//! concurrently with durable settings and prints an acknowledgement after each write returns;
//! the parent kills it with SIGKILL at a random moment, many times over. After every kill the
//! parent checks the file: integrity, every acknowledged write present with its revision,
//! revisions strictly increasing across restarts, and a watch from the revision before the
//! child started replays exactly the history since.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use backend_sqlite::{SqliteOptions, SqliteStore};
use futures::StreamExt;
use libtest_mimic::{Arguments, Trial};
use storage_api::{Error, Interface, InterfaceExt, Precondition, WatchEvent, WatchRequest};

const CHILD_ENV: &str = "CRASH_CHILD_DB";
const KILLS: usize = 22;
const WRITERS: usize = 8;
const KEYS_PER_WRITER: usize = 4;

fn main() -> ExitCode {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        return child(Path::new(&path));
    }
    let arguments = Arguments::from_args();
    let trials = vec![
        Trial::test("crash::sigkill_loses_no_acknowledged_write", || {
            crash_test().map_err(|e| format!("{e:#}").into())
        }),
        Trial::test("crash::second_process_cannot_open", || {
            second_process().map_err(|e| format!("{e:#}").into())
        }),
    ];
    libtest_mimic::run(&arguments, trials).exit_code()
}

fn options() -> SqliteOptions {
    let mut options = SqliteOptions::default();
    // Keep all history so every acknowledged revision can be read back exactly.
    options.auto_compaction = false;
    options
}

/// The child: writes until killed, acknowledging each completed write on stdout.
fn child(path: &Path) -> ExitCode {
    let generation: u64 = std::env::var("CRASH_GENERATION")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("child: no runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let store = match SqliteStore::open(path, options()) {
            Ok(store) => Arc::new(store),
            Err(error) => {
                eprintln!("child: cannot open: {error}");
                return ExitCode::FAILURE;
            }
        };
        ack("ready");
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let key = format!("/crash/{writer}/{}", i as usize % KEYS_PER_WRITER);
                    if i % 5 == 4 {
                        match store.delete(&key, Precondition::None).await {
                            Ok(deleted) => ack(&format!("del {key} {}", deleted.revision)),
                            Err(Error::NotFound { .. }) => {}
                            Err(error) => {
                                eprintln!("child: delete failed: {error}");
                                return;
                            }
                        }
                    } else {
                        let value = format!("g{generation}-w{writer}-i{i}");
                        match store.put(&key, value.clone().into(), None).await {
                            Ok(revision) => ack(&format!("put {key} {revision} {value}")),
                            Err(error) => {
                                eprintln!("child: put failed: {error}");
                                return;
                            }
                        }
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        ExitCode::FAILURE
    })
}

/// One line, written and flushed in one call so a kill never leaves half of it acknowledged.
fn ack(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

#[derive(Debug, Clone)]
enum Ack {
    Put {
        key: String,
        revision: u64,
        value: String,
    },
    Delete {
        key: String,
        revision: u64,
    },
}

impl Ack {
    fn revision(&self) -> u64 {
        match self {
            Ack::Put { revision, .. } | Ack::Delete { revision, .. } => *revision,
        }
    }
}

fn parse_ack(line: &str) -> anyhow::Result<Ack> {
    let parts: Vec<&str> = line.split(' ').collect();
    match parts[..] {
        ["put", key, revision, value] => Ok(Ack::Put {
            key: key.to_owned(),
            revision: revision.parse()?,
            value: value.to_owned(),
        }),
        ["del", key, revision] => Ok(Ack::Delete {
            key: key.to_owned(),
            revision: revision.parse()?,
        }),
        _ => bail!("unparsable acknowledgement {line:?}"),
    }
}

/// A small deterministic generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn crash_test() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("crash.db");
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("crash test seed {seed} (set CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let exe = std::env::current_exe()?;
    let mut before = 0u64;
    let mut total_acks = 0usize;
    for generation in 0..KILLS {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, &path)
            .env("CRASH_GENERATION", generation.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning the child")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || -> Vec<String> {
            let mut lines = Vec::new();
            for text in conformance::crash::complete_lines(stdout) {
                if text == "ready" {
                    let _ = ready_tx.send(());
                } else {
                    lines.push(text);
                }
            }
            lines
        });
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("child {generation} did not become ready");
        }
        let delay = Duration::from_millis(20 + rng.next() % 400);
        std::thread::sleep(delay);
        child.kill().context("SIGKILL")?;
        let status = child.wait()?;
        let lines = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
        let acks = lines
            .iter()
            .map(|line| parse_ack(line))
            .collect::<anyhow::Result<Vec<_>>>()?;
        total_acks += acks.len();
        eprintln!(
            "kill {}: after {delay:?}, {} acknowledged writes, child {status}",
            generation + 1,
            acks.len()
        );
        integrity_check(&path)?;
        before = runtime
            .block_on(verify(&path, &acks, before))
            .with_context(|| format!("after kill {}", generation + 1))?;
    }
    ensure!(
        total_acks >= KILLS * 5,
        "only {total_acks} writes were acknowledged in {KILLS} runs: the test proved little"
    );
    Ok(())
}

/// While this process has the store open, a child process opening it fails with the lock
/// error and writes nothing.
fn second_process() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("held.db");
    let store = SqliteStore::open(&path, options())?;
    let output = Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, &path)
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success(), "the second process ran: {stderr}");
    ensure!(
        output.stdout.is_empty(),
        "the second process wrote: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    ensure!(
        stderr.contains("already open by another process"),
        "unclear error from the second process: {stderr}"
    );
    drop(store);
    Ok(())
}

fn integrity_check(path: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    let result: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    ensure!(result == "ok", "integrity_check: {result}");
    Ok(())
}

/// Checks the store after a kill; returns its current revision for the next round.
async fn verify(path: &Path, acks: &[Ack], before: u64) -> anyhow::Result<u64> {
    let store = SqliteStore::open(path, options())?;
    let current = store.current_revision().await?;
    let mut last_per_writer: HashMap<String, u64> = HashMap::new();
    for ack in acks {
        let revision = ack.revision();
        ensure!(
            revision > before,
            "{ack:?} is not above the revision {before} before the run"
        );
        ensure!(
            revision <= current,
            "{ack:?} is above the current revision {current}: acknowledged write lost"
        );
        let (Ack::Put { key, .. } | Ack::Delete { key, .. }) = ack;
        let writer = key
            .rsplit_once('/')
            .map(|(w, _)| w.to_owned())
            .unwrap_or_default();
        let last = last_per_writer.entry(writer).or_insert(0);
        ensure!(
            revision > *last,
            "{ack:?}: revisions of one writer went backwards"
        );
        *last = revision;
        let at = store.get(key, Some(revision)).await?.kv;
        match ack {
            Ack::Put { value, .. } => {
                let kv = at.with_context(|| format!("{ack:?}: acknowledged put is missing"))?;
                ensure!(
                    kv.mod_revision == revision && kv.value == value.as_bytes(),
                    "{ack:?}: found {kv:?}"
                );
            }
            Ack::Delete { .. } => {
                ensure!(at.is_none(), "{ack:?}: acknowledged delete is not visible");
                let prev = store.get(key, Some(revision - 1)).await?.kv;
                ensure!(prev.is_some(), "{ack:?}: nothing was there to delete");
            }
        }
    }
    // Every revision since `before` is a write under /crash/: the watch must replay all of
    // them, in order, once, and agree with the acknowledgements.
    let by_revision: HashMap<u64, &Ack> = acks.iter().map(|a| (a.revision(), a)).collect();
    let mut watch = store
        .watch(WatchRequest::prefix("/crash/").after(before))
        .await?;
    let mut expected = before + 1;
    while expected <= current {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .with_context(|| format!("replay stalled before revision {expected}"))?
            .context("replay ended")??;
        ensure!(
            event.revision() == expected,
            "replay from {before}: expected revision {expected}, got {event:?}"
        );
        match (by_revision.get(&expected), &event) {
            (Some(Ack::Put { key, value, .. }), WatchEvent::Put { kv, .. }) => ensure!(
                &kv.key == key && kv.value == value.as_bytes(),
                "replayed {event:?} differs from {key} = {value}"
            ),
            (Some(Ack::Delete { key, .. }), WatchEvent::Delete { key: deleted, .. }) => {
                ensure!(
                    deleted == key,
                    "replayed {event:?} differs from delete of {key}"
                )
            }
            (Some(ack), _) => bail!("replayed {event:?} for {ack:?}"),
            (None, _) => {}
        }
        expected += 1;
    }
    // Writing goes on above everything from before the crash.
    let probe = store.put("/probe", "x".into(), None).await?;
    ensure!(
        probe == current + 1,
        "write after restart got {probe}, current was {current}"
    );
    // The probe is outside /crash/: the watch stays silent.
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(50), watch.next()).await {
        bail!("watch of /crash/ yielded {item:?} after the replay");
    }
    drop(watch);
    drop(store);
    Ok(probe)
}
