//! Runs the shared conformance suite against a real etcd started from PATH: one server for the
//! whole run, a fresh random key prefix per trial.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use backend_etcd::testing::EtcdCluster;
use backend_etcd::{EtcdOptions, EtcdStore};
use conformance::Harness;
use storage_api::Interface;

struct Etcd {
    server: EtcdCluster,
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
        let store = EtcdStore::connect(EtcdOptions::new(self.server.endpoints(), prefix)).await?;
        Ok(Arc::new(store))
    }
}

fn main() -> std::process::ExitCode {
    let server = match EtcdCluster::start_single() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot run the etcd conformance suite: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    conformance::run(Etcd {
        server,
        next: AtomicU64::new(0),
        run_id,
    })
}
