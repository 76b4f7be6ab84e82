//! Runs the shared conformance suite against the SQLite backend, one fresh database file per
//! trial, with the default (durable) options except for a short progress interval; then again
//! with the writer folding `current_delta` into `current` whenever it holds 3 keys
//! (`sqlite-fold3::...`) and whenever a write adds a key to it (`sqlite-fold1::...`), so that
//! the cases read keys whose newest state is in either table.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backend_sqlite::{SqliteOptions, SqliteStore};
use conformance::Harness;
use storage_api::Interface;

struct Sqlite {
    name: &'static str,
    dir: Arc<tempfile::TempDir>,
    next: Arc<AtomicU64>,
    delta_fold_rows: u64,
}

#[async_trait::async_trait]
impl Harness for Sqlite {
    fn name(&self) -> &str {
        self.name
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("trial-{n}.db"));
        let mut options = SqliteOptions::default();
        options.progress_interval = Duration::from_millis(500);
        options.delta_fold_rows = self.delta_fold_rows;
        Ok(Arc::new(SqliteStore::open(path, options)?))
    }
}

fn main() -> std::process::ExitCode {
    let dir = match tempfile::tempdir() {
        Ok(dir) => Arc::new(dir),
        Err(error) => {
            eprintln!("cannot create a temporary directory: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let next = Arc::new(AtomicU64::new(0));
    let harness = |name, delta_fold_rows| -> Arc<dyn Harness> {
        Arc::new(Sqlite {
            name,
            dir: dir.clone(),
            next: next.clone(),
            delta_fold_rows,
        })
    };
    conformance::run_all(vec![
        harness("sqlite", SqliteOptions::default().delta_fold_rows),
        harness("sqlite-fold3", 3),
        harness("sqlite-fold1", 1),
    ])
}
