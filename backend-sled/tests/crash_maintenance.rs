//! SIGKILL inside the store's maintenance. A child process (this test binary, re-executed
//! with `MAINTENANCE_CHILD_DIR` set) writes 4 KiB values over a few keys with `sync=fsync`
//! and compacts every 100 ms, printing the store's own markers. The parent kills it the
//! moment a flush (sled writing its buffers and syncing them, once per group commit) or a
//! compaction step starts, then reopens the store (sled checks its log's checksums on
//! recovery), checks that every acknowledged write is there, that a watch from the compaction
//! point replays every revision since, and that the store takes writes
//! (`conformance::crash`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use backend_sled::{SledOptions, SledStore};
use conformance::crash::{Phase, Workload, kill_during, run_child, verify_after_kill};
use libtest_mimic::{Arguments, Trial};

const CHILD_ENV: &str = "MAINTENANCE_CHILD_DIR";
const KILLS_PER_PHASE: usize = 4;

const PHASES: [Phase; 2] = [
    Phase {
        name: "flush",
        start: "sled flush starting",
        end: "sled flush done",
        spacing: 200,
    },
    Phase {
        name: "compaction",
        start: "sled compaction step starting",
        end: "sled compaction step done",
        spacing: 3,
    },
];

fn main() -> ExitCode {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
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
        let open = || Ok(SledStore::open(Path::new(&dir), options())?);
        return run_child("backend_sled=debug", open, workload);
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

fn options() -> SledOptions {
    let mut options = SledOptions::default();
    options.cache_bytes = 16 * 1024 * 1024;
    // The child compacts by itself, often.
    options.compact_interval = Duration::ZERO;
    options
}

fn sigkill_during(phase: Phase) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path: PathBuf = dir.path().join("store");
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
        runtime.block_on(async {
            let store = SledStore::open(&path, options())?;
            verify_after_kill(&store, latest, before).await
        })
    })
}
