//! SIGKILL inside the store's maintenance. A child process (this test binary, re-executed
//! with `MAINTENANCE_CHILD_DB` set) writes 4 KiB values over a few keys and compacts every
//! 100 ms, printing the store's own maintenance markers. The parent kills it the moment a
//! compaction step, an incremental vacuum or a WAL checkpoint starts, then checks that the
//! file passes `PRAGMA integrity_check`, that every acknowledged write is there, that a watch
//! from the compaction point replays every revision since, and that the store takes writes
//! (`conformance::crash`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::ensure;
use backend_sqlite::{SqliteOptions, SqliteStore};
use conformance::crash::{MaintenanceTest, Phase, run_maintenance_test};

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

fn open(path: &Path) -> anyhow::Result<SqliteStore> {
    let mut options = SqliteOptions::default();
    // The child compacts by itself, often; small batches make many compaction steps.
    options.auto_compaction = false;
    options.compaction_batch = 32;
    Ok(SqliteStore::open(path, options)?)
}

fn integrity_check(path: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    let result: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    ensure!(result == "ok", "integrity_check: {result}");
    Ok(())
}

fn main() -> ExitCode {
    run_maintenance_test(MaintenanceTest {
        child_env: "MAINTENANCE_CHILD_DB",
        log_filter: "backend_sqlite=debug",
        store_name: "maintenance.db",
        phases: &PHASES,
        kills: 4,
        open,
        check_files: integrity_check,
    })
}
