//! Runs the shared conformance suite against a real etcd started from PATH: one server for the
//! whole run, a fresh random key prefix per trial.
//!
//! With `ETCD_ENDPOINTS` set (comma-separated URLs), it runs against that server instead: any
//! server of etcd's v3 API (another etcd version, kine, this project's `etcd-front`) is held to
//! the same suite: `ETCD_ENDPOINTS=http://127.0.0.1:2379 cargo test -p backend-etcd --test
//! conformance`. Such a server must report progress notifications at least every two seconds
//! for the progress cases.
//!
//! Compaction is global to an etcd cluster: a case that compacts would discard the history a case
//! running at the same time on another prefix still reads or watches. So trials take turns: a
//! store opened for a trial holds a permit until the trial drops it.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use backend_etcd::testing::EtcdCluster;
use backend_etcd::{EtcdOptions, EtcdStore};
use conformance::{Harness, KeepAlive};
use storage_api::Interface;
use tokio::sync::Semaphore;

/// One trial at a time on the shared server (see the module doc).
fn turn() -> Arc<Semaphore> {
    static TURN: OnceLock<Arc<Semaphore>> = OnceLock::new();
    TURN.get_or_init(|| Arc::new(Semaphore::new(1))).clone()
}

struct Etcd {
    /// The server the run started, if it started one (kept alive for the run).
    _server: Option<EtcdCluster>,
    endpoints: Vec<String>,
    next: AtomicU64,
    run_id: u128,
}

#[async_trait::async_trait]
impl Harness for Etcd {
    fn name(&self) -> &str {
        "etcd"
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        let trial = self.next.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("/conformance-{:x}-{trial}", self.run_id);
        let turn = turn().acquire_owned().await?;
        let store = EtcdStore::connect(EtcdOptions::new(self.endpoints.clone(), prefix)).await?;
        // The turn passes to the next trial only once this trial has dropped its store.
        Ok(KeepAlive::wrap(store, turn))
    }
}

fn main() -> std::process::ExitCode {
    let (server, endpoints) = match std::env::var("ETCD_ENDPOINTS") {
        Ok(endpoints) => (
            None,
            endpoints.split(',').map(str::to_owned).collect::<Vec<_>>(),
        ),
        Err(_) => match EtcdCluster::start_single() {
            Ok(server) => {
                let endpoints = server.endpoints();
                (Some(server), endpoints)
            }
            Err(e) => {
                eprintln!("cannot run the etcd conformance suite: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    conformance::run(Etcd {
        _server: server,
        endpoints,
        next: AtomicU64::new(0),
        run_id,
    })
}
