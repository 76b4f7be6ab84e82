//! Killing a writer process at a chosen moment, for backends' crash tests.
//!
//! A backend's test re-executes itself as a child that opens the store, prints `ready`, then
//! writes and prints one acknowledgement line per write that returned. The child also prints
//! the store's maintenance markers (its `tracing` events, such as "wal checkpoint starting"),
//! so the parent can SIGKILL it the moment a phase begins and tell afterwards whether the
//! phase had finished before the kill landed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// What a child printed before it was killed.
#[derive(Debug)]
pub struct Killed {
    /// Every complete line after `ready` except the marker lines: acknowledgements, the
    /// `begin` lines before each write, and whatever else the child logged.
    pub lines: Vec<String>,
    /// Whether a line containing the start marker appeared (the kill was aimed at it).
    pub phase_started: bool,
    /// Whether the end marker appeared after that start marker: the phase finished before
    /// the kill landed.
    pub phase_finished: bool,
}

impl Killed {
    /// Whether the kill landed inside the phase: it started and never said it finished.
    pub fn landed_inside(&self) -> bool {
        self.phase_started && !self.phase_finished
    }
}

/// The complete lines `reader` yields (without their newlines), up to its end, an error, or a
/// last line a kill cut short: a line is acknowledged only once its newline is written.
pub fn complete_lines(reader: impl std::io::Read) -> impl Iterator<Item = String> {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    std::iter::from_fn(move || {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) if line.last() != Some(&b'\n') => None,
            Ok(_) => Some(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned()),
        }
    })
}

fn kill(child: &Mutex<Child>) {
    let mut child = child.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = child.kill();
}

/// Starts `command` with its stdout piped, waits for its `ready` line, and SIGKILLs it as soon
/// as the `occurrence`-th line (counting from 1) containing `start` appears, or after `limit`
/// if none does. Lines containing `start` or `end` are markers; other lines (a line cut off by
/// the kill excepted) are returned as acknowledgements.
///
/// # Errors
///
/// When the child cannot start, or exits before it is killed.
pub fn kill_at_marker(
    mut command: Command,
    start: &str,
    end: &str,
    occurrence: usize,
    limit: Duration,
) -> Result<Killed> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning the child")?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let child = Arc::new(Mutex::new(child));
    let watchdog = {
        let child = Arc::clone(&child);
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            kill(&child);
        })
    };
    let mut killed = Killed {
        lines: Vec::new(),
        phase_started: false,
        phase_finished: false,
    };
    let mut ready = false;
    let mut aimed = false;
    let mut seen = 0;
    for text in complete_lines(stdout) {
        if !ready {
            ready = text == "ready";
            continue;
        }
        if text.contains(start) {
            seen += 1;
            if !aimed && seen >= occurrence {
                aimed = true;
                killed.phase_started = true;
                kill(&child);
            }
        } else if text.contains(end) {
            killed.phase_finished |= aimed;
        } else {
            killed.lines.push(text);
        }
    }
    let status = {
        let mut child = child.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        child.wait().context("reaping the child")?
    };
    // The watchdog may still sleep; it only kills a reaped child, which does nothing.
    drop(watchdog);
    if !ready {
        bail!("the child exited ({status}) before it was ready");
    }
    // Only our SIGKILL may end it: a child that failed by itself would pass for killed.
    if std::os::unix::process::ExitStatusExt::signal(&status) != Some(9) {
        bail!("the child exited by itself ({status}) instead of being killed");
    }
    Ok(killed)
}

/// The child's workload, the same for every backend.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The run's number, written into every value so runs are told apart.
    pub generation: u64,
    /// Concurrent writers.
    pub writers: usize,
    /// Keys per writer, cycled through.
    pub keys: usize,
    /// Bytes of each value (large values make compaction, vacuum and checkpoints work).
    pub value_size: usize,
    /// How often the store is compacted.
    pub compact_every: Duration,
    /// Revisions kept behind the newest at each compaction.
    pub keep: u64,
}

/// The prefix every key of [`write_and_compact`] lives under.
pub const PREFIX: &str = "/crash/";

fn print_line(line: &str) {
    use std::io::Write;
    // One write per line, so a kill never leaves half an acknowledgement.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

/// Prints `ready`, then runs `workload` on `store` until the process is killed: each writer
/// puts values over its keys (every seventh write deletes instead), printing `begin put KEY`
/// or `begin del KEY` before each write and `put KEY REVISION ID` or `del KEY REVISION` once
/// it returns, while one task
/// compacts to [`Workload::keep`] revisions behind the newest every
/// [`Workload::compact_every`].
///
/// # Errors
///
/// The first write or compaction that fails.
pub async fn write_and_compact(
    store: Arc<dyn storage_api::Interface>,
    workload: Workload,
) -> Result<()> {
    use storage_api::{Error, InterfaceExt, Precondition};
    print_line("ready");
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..workload.writers {
        let store = Arc::clone(&store);
        let workload = workload.clone();
        tasks.spawn(async move {
            for i in 0u64.. {
                let key = format!("{PREFIX}{writer}/{}", i % workload.keys as u64);
                if i % 7 == 6 {
                    print_line(&format!("begin del {key}"));
                    match store.delete(&key, Precondition::None).await {
                        Ok(deleted) => print_line(&format!("del {key} {}", deleted.revision)),
                        Err(Error::NotFound { .. }) => {}
                        Err(error) => return Err(anyhow::Error::new(error).context("delete")),
                    }
                } else {
                    print_line(&format!("begin put {key}"));
                    let id = format!("g{}-w{writer}-i{i}", workload.generation);
                    let mut value = format!("{id}|").into_bytes();
                    value.resize(workload.value_size.max(value.len()), b'x');
                    let revision = store.put(&key, value.into(), None).await.context("put")?;
                    print_line(&format!("put {key} {revision} {id}"));
                }
            }
            Ok(())
        });
    }
    tasks.spawn(async move {
        loop {
            tokio::time::sleep(workload.compact_every).await;
            let current = store.current_revision().await?;
            let target = current.saturating_sub(workload.keep);
            if target > store.compacted_revision().await? {
                store.compact(target).await.context("compact")?;
            }
        }
    });
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(error)) => bail!("a writer task failed: {error}"),
        None => bail!("no writer ran"),
    }
}

/// An acknowledged write, as a child printed it.
#[derive(Clone, Debug)]
pub enum Ack {
    /// `put KEY REVISION ID`: the value starts with `ID|`.
    Put {
        /// The key written.
        key: String,
        /// The write's revision.
        revision: u64,
        /// The value's prefix before `|`.
        id: String,
    },
    /// `del KEY REVISION`.
    Delete {
        /// The key deleted.
        key: String,
        /// The delete's revision.
        revision: u64,
    },
}

impl Ack {
    /// The write's revision.
    pub fn revision(&self) -> u64 {
        match self {
            Ack::Put { revision, .. } | Ack::Delete { revision, .. } => *revision,
        }
    }
}

/// What a store must show for one key after a kill: its last acknowledged write, and the
/// write that was in flight (begun, never acknowledged) when the child died, which may or may
/// not have committed.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// The last acknowledged write.
    pub acked: Option<Ack>,
    /// `Some(true)` for a delete in flight, `Some(false)` for a put.
    pub in_flight_delete: Option<bool>,
}

/// Records `ack` as `key`'s last acknowledged write, with nothing in flight after it.
fn acknowledge(
    expected: &mut std::collections::HashMap<String, Expected>,
    key: &str,
    ack: Ack,
) -> usize {
    let state = Expected {
        acked: Some(ack),
        in_flight_delete: None,
    };
    expected.insert(key.to_owned(), state);
    1
}

/// Folds a killed child's lines into `expected`, key by key.
///
/// # Errors
///
/// An acknowledgement line that does not parse.
pub fn record(
    expected: &mut std::collections::HashMap<String, Expected>,
    lines: &[String],
) -> Result<usize> {
    let mut acks = 0;
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        let revision = |text: &str| {
            text.parse::<u64>()
                .with_context(|| format!("revision in {line:?}"))
        };
        match parts[..] {
            ["begin", op @ ("put" | "del"), key] => {
                expected.entry(key.to_owned()).or_default().in_flight_delete = Some(op == "del");
            }
            ["put", key, rev, id] => {
                let ack = Ack::Put {
                    key: key.to_owned(),
                    revision: revision(rev)?,
                    id: id.to_owned(),
                };
                acks += acknowledge(expected, key, ack);
            }
            ["del", key, rev] => {
                let ack = Ack::Delete {
                    key: key.to_owned(),
                    revision: revision(rev)?,
                };
                acks += acknowledge(expected, key, ack);
            }
            ["begin" | "put" | "del", ..] => bail!("unparsable acknowledgement {line:?}"),
            // Log output.
            _ => {}
        }
    }
    Ok(acks)
}

/// Checks one key's state after a kill against what was acknowledged and in flight.
fn check_key(key: &str, expected: &Expected, found: Option<&storage_api::KeyValue>) -> Result<()> {
    let acked_revision = expected.acked.as_ref().map_or(0, Ack::revision);
    let newer = found.is_some_and(|kv| kv.mod_revision > acked_revision);
    let fine = match (&expected.acked, found) {
        // The acknowledged put itself.
        (Some(Ack::Put { revision, id, .. }), Some(kv)) if kv.mod_revision == *revision => {
            kv.value.starts_with(format!("{id}|").as_bytes())
        }
        // Overwritten by the put in flight.
        (_, Some(_)) => newer && expected.in_flight_delete == Some(false),
        // Deleted by the delete in flight.
        (Some(Ack::Put { .. }), None) => expected.in_flight_delete == Some(true),
        // Still deleted, or never written before a put that did not commit.
        (Some(Ack::Delete { .. }) | None, None) => true,
    };
    anyhow::ensure!(
        fine,
        "{key}: found {:?} after acknowledged {:?} with {} in flight: an acknowledged write was lost",
        found.map(|kv| kv.mod_revision),
        expected.acked,
        match expected.in_flight_delete {
            Some(true) => "a delete",
            Some(false) => "a put",
            None => "nothing",
        }
    );
    Ok(())
}

/// Checks a store reopened after a kill: `expected` holds each key's state over every run so
/// far (see [`record`]), and `before` is the newest revision of the previous check. Every
/// acknowledged write is there (or was overwritten by the write in flight), revisions went on
/// from `before`, a watch from the compaction point replays every revision since exactly once
/// and in order, and the store takes a new write at the next revision. Returns that revision.
///
/// # Errors
///
/// The first thing that does not hold.
pub async fn verify_after_kill(
    store: &dyn storage_api::Interface,
    expected: &std::collections::HashMap<String, Expected>,
    before: u64,
) -> Result<u64> {
    use futures::StreamExt;
    use storage_api::{InterfaceExt, WatchRequest};
    let current = store.current_revision().await?;
    anyhow::ensure!(
        current >= before,
        "the revision went back from {before} to {current}"
    );
    for (key, state) in expected {
        if let Some(ack) = &state.acked {
            anyhow::ensure!(
                ack.revision() <= current,
                "{ack:?} is above the current revision {current}: acknowledged write lost"
            );
        }
        check_key(key, state, store.get_latest(key).await?.as_ref())?;
    }
    // Every revision since the compaction point is a write under the prefix.
    let compacted = store.compacted_revision().await?;
    let mut watch = store
        .watch(WatchRequest::prefix(PREFIX).after(compacted))
        .await?;
    let mut next = compacted + 1;
    while next <= current {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .with_context(|| format!("replay from {compacted} stalled before revision {next}"))?
            .context("the replay ended")??;
        anyhow::ensure!(
            event.revision() == next,
            "replay from {compacted}: expected revision {next}, got {}",
            event.revision()
        );
        next += 1;
    }
    drop(watch);
    let probe = store
        .put(&format!("{PREFIX}probe"), "after the kill".into(), None)
        .await?;
    anyhow::ensure!(
        probe == current + 1,
        "a write after reopening got revision {probe}, not {}",
        current + 1
    );
    Ok(probe)
}

/// A maintenance phase of a store: its name and the log messages that mark its start and end.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    /// A short name, used in trial names and messages.
    pub name: &'static str,
    /// The message logged as the phase starts.
    pub start: &'static str,
    /// The message logged as it ends.
    pub end: &'static str,
    /// Round `n` kills at occurrence `2 + n * spacing` of the start message, so later rounds
    /// find more data behind the phase.
    pub spacing: usize,
}

/// The child side: logs `log_filter` (an `EnvFilter` directive such as
/// `backend_sqlite=debug`) to stdout for the markers, opens the store with `open` and runs
/// [`write_and_compact`] until killed.
pub fn run_child<S, F>(log_filter: &str, open: F, workload: Workload) -> std::process::ExitCode
where
    S: storage_api::Interface + 'static,
    F: FnOnce() -> Result<S>,
{
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter))
        .without_time()
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                let store: Arc<dyn storage_api::Interface> = Arc::new(open()?);
                write_and_compact(store, workload).await
            })
        });
    if let Err(error) = result {
        eprintln!("child: {error:#}");
    }
    std::process::ExitCode::FAILURE
}

/// The parent side: `kills` times, starts `child(round)` and kills it inside `phase` (at a
/// later occurrence each round, per [`Phase::spacing`]), then runs `check` with every
/// key's [`Expected`] state so far and the revision the previous check returned; `check`
/// reopens the store, verifies it (with [`verify_after_kill`] and the backend's own integrity
/// check) and returns the newest revision. Fails unless at least one kill landed inside the
/// phase.
///
/// # Errors
///
/// The first failed check, or a phase that never started or was never hit.
pub fn kill_during(
    phase: Phase,
    kills: usize,
    mut child: impl FnMut(usize) -> Command,
    mut check: impl FnMut(&std::collections::HashMap<String, Expected>, u64) -> Result<u64>,
) -> Result<()> {
    let mut latest = std::collections::HashMap::new();
    let mut before = 0;
    let mut inside = 0;
    for round in 0..kills {
        let killed = kill_at_marker(
            child(round),
            phase.start,
            phase.end,
            2 + phase.spacing * round,
            Duration::from_secs(60),
        )?;
        anyhow::ensure!(
            killed.phase_started,
            "round {round}: no {} started within a minute",
            phase.name
        );
        inside += usize::from(killed.landed_inside());
        let count = record(&mut latest, &killed.lines)?;
        before = check(&latest, before)
            .with_context(|| format!("after kill {round} ({})", phase.name))?;
        eprintln!(
            "{}: kill {round}: {count} acknowledged writes, killed {} the phase",
            phase.name,
            if killed.landed_inside() {
                "inside"
            } else {
                "after"
            }
        );
    }
    anyhow::ensure!(
        inside > 0,
        "none of {kills} kills landed inside a {}: the test proved little",
        phase.name
    );
    Ok(())
}

/// A backend's maintenance crash test: what differs between backends.
pub struct MaintenanceTest<S> {
    /// The environment variable that names the store's path in the child.
    pub child_env: &'static str,
    /// The `EnvFilter` directive that logs the backend's markers, such as
    /// `backend_sqlite=debug`.
    pub log_filter: &'static str,
    /// The store's file or directory name inside the test's temporary directory.
    pub store_name: &'static str,
    /// The phases to kill inside, one trial each.
    pub phases: &'static [Phase],
    /// Kills per phase.
    pub kills: usize,
    /// Opens the store at a path, with the options the child writes with.
    pub open: fn(&std::path::Path) -> Result<S>,
    /// The backend's own check of its files after the store reopened, recovered and closed
    /// (such as SQLite's `PRAGMA integrity_check`).
    pub check_files: fn(&std::path::Path) -> Result<()>,
}

/// The `main` of a maintenance crash test (`harness = false`): in the child (`child_env` set)
/// runs [`write_and_compact`] with 4 writers of 4 KiB values over 8 keys each, compacting to
/// 32 revisions behind every 100 ms; in the parent runs one `crash::sigkill_during_PHASE`
/// trial per phase through [`kill_during`], checking files and store after every kill.
pub fn run_maintenance_test<S: storage_api::Interface + 'static>(
    test: MaintenanceTest<S>,
) -> std::process::ExitCode {
    if let Ok(path) = std::env::var(test.child_env) {
        let generation = std::env::var("CRASH_GENERATION")
            .ok()
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
        let workload = Workload {
            generation,
            writers: 4,
            keys: 8,
            value_size: 4096,
            compact_every: Duration::from_millis(100),
            keep: 32,
        };
        let open = test.open;
        return run_child(
            test.log_filter,
            || open(std::path::Path::new(&path)),
            workload,
        );
    }
    let arguments = libtest_mimic::Arguments::from_args();
    let test = Arc::new(test);
    let trials = test
        .phases
        .iter()
        .map(|&phase| {
            let test = Arc::clone(&test);
            libtest_mimic::Trial::test(format!("crash::sigkill_during_{}", phase.name), move || {
                sigkill_during(&test, phase).map_err(|e| format!("{e:#}").into())
            })
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit_code()
}

fn sigkill_during<S: storage_api::Interface + 'static>(
    test: &MaintenanceTest<S>,
    phase: Phase,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(test.store_name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let exe = std::env::current_exe()?;
    let child = |round: usize| {
        let mut command = Command::new(&exe);
        command
            .env(test.child_env, &path)
            .env("CRASH_GENERATION", round.to_string());
        command
    };
    kill_during(phase, test.kills, child, |latest, before| {
        // The store recovers what the kill left (a WAL, a log tail) itself; the files are
        // checked once it has, and closed.
        let next = runtime.block_on(async {
            let store = (test.open)(&path)?;
            verify_after_kill(&store, latest, before).await
        })?;
        (test.check_files)(&path)?;
        Ok(next)
    })
}
