//! Runs the shared conformance suite against the SQLite backend, one fresh database file per
//! trial, with the default (durable) options except for a short progress interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backend_sqlite::{SqliteOptions, SqliteStore};
use conformance::Harness;
use storage_api::Interface;

struct Sqlite {
    dir: tempfile::TempDir,
    next: AtomicU64,
}

#[async_trait::async_trait]
impl Harness for Sqlite {
    fn name(&self) -> &str {
        "sqlite"
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("trial-{n}.db"));
        let mut options = SqliteOptions::default();
        options.progress_interval = Duration::from_millis(500);
        Ok(Arc::new(SqliteStore::open(path, options)?))
    }
}

fn main() -> std::process::ExitCode {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("cannot create a temporary directory: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    conformance::run(Sqlite {
        dir,
        next: AtomicU64::new(0),
    })
}
