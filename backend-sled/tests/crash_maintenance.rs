//! SIGKILL inside the store's maintenance. A child process (this test binary, re-executed
//! with `MAINTENANCE_CHILD_DIR` set) writes 4 KiB values over a few keys with `sync=fsync`
//! and compacts every 100 ms, printing the store's own markers. The parent kills it the
//! moment a flush (sled writing its buffers and syncing them, once per group commit), a
//! compaction step or a rewrite of the directory (copy, then swap) starts. It then reopens
//! the store (sled checks its log's checksums on recovery; the open finishes or undoes an
//! interrupted swap), checks that every acknowledged write is there, that a watch from the
//! compaction point replays every revision since, and that the store takes writes
//! (`conformance::crash`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use backend_sled::{SledOptions, SledStore};
use conformance::crash::{MaintenanceTest, Phase, run_maintenance_test};

const PHASES: [Phase; 3] = [
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
    Phase {
        name: "rewrite",
        start: "sled rewrite starting",
        end: "sled rewrite done",
        spacing: 3,
    },
];

fn open(path: &Path) -> anyhow::Result<SledStore> {
    let mut options = SledOptions::default();
    options.cache_bytes = 16 * 1024 * 1024;
    // The child compacts by itself, often.
    options.compact_interval = Duration::ZERO;
    // And rewrites its directory at every space check: sled's directory is always larger
    // than the bytes it holds.
    options.rewrite_percent = 100;
    options.rewrite_min_bytes = 0;
    options.space_check_interval = Duration::from_millis(300);
    Ok(SledStore::open(path, options)?)
}

fn main() -> ExitCode {
    run_maintenance_test(MaintenanceTest {
        child_env: "MAINTENANCE_CHILD_DIR",
        log_filter: "backend_sled=debug",
        store_name: "store",
        phases: &PHASES,
        kills: 4,
        open,
        // sled verifies its log when the store reopens.
        check_files: |_| Ok(()),
    })
}
