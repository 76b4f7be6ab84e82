//! SIGKILL inside the store's maintenance. A child process (this test binary, re-executed
//! with `MAINTENANCE_CHILD_DB` set) writes 4 KiB values over a few keys and compacts every
//! 100 ms, printing the store's own maintenance markers. The parent kills it the moment a
//! compaction step, an incremental vacuum or a WAL checkpoint starts, then checks that the
//! file passes `PRAGMA integrity_check`, that every acknowledged write is there, that a watch
//! from the compaction point replays every revision since, and that the store takes writes
//! (`conformance::crash`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::ensure;
use backend_sqlite::{SqliteOptions, SqliteStore};
use conformance::crash::{Phase, Workload, kill_during, run_child, verify_after_kill};
use libtest_mimic::{Arguments, Trial};

const CHILD_ENV: &str = "MAINTENANCE_CHILD_DB";
const KILLS_PER_PHASE: usize = 4;

const PHASES: [Phase; 3] = [
    Phase {
        name: "compaction",
        start: "sqlite compaction step starting",
        end: "sqlite compaction step done",
        spacing: 3,
    },
    Phase {
        name: "vacuum",
        start: "sqlite incremental vacuum starting",
        end: "sqlite incremental vacuum done",
        spacing: 3,
    },
    Phase {
        name: "checkpoint",
        start: "sqlite wal checkpoint starting",
        end: "sqlite wal checkpoint done",
        spacing: 3,
    },
];

fn main() -> ExitCode {
    if let Ok(path) = std::env::var(CHILD_ENV) {
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
        let open = || Ok(SqliteStore::open(Path::new(&path), options())?);
        return run_child("backend_sqlite=debug", open, workload);
    }
    let arguments = Arguments::from_args();
    let trials = PHASES
        .iter()
        .map(|&phase| {
            Trial::test(format!("crash::sigkill_during_{}", phase.name), move || {
                sigkill_during(phase).map_err(|e| format!("{e:#}").into())
            })
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit_code()
}

fn options() -> SqliteOptions {
    let mut options = SqliteOptions::default();
    // The child compacts by itself, often; small batches make many compaction steps.
    options.auto_compaction = false;
    options.compaction_batch = 32;
    options
}

fn integrity_check(path: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    let result: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    ensure!(result == "ok", "integrity_check: {result}");
    Ok(())
}

fn sigkill_during(phase: Phase) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path: PathBuf = dir.path().join("maintenance.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let exe = std::env::current_exe()?;
    let child = |round: usize| {
        let mut command = Command::new(&exe);
        command
            .env(CHILD_ENV, &path)
            .env("CRASH_GENERATION", round.to_string());
        command
    };
    kill_during(phase, KILLS_PER_PHASE, child, |latest, before| {
        integrity_check(&path)?;
        runtime.block_on(async {
            let store = SqliteStore::open(&path, options())?;
            verify_after_kill(&store, latest, before).await
        })
    })
}
