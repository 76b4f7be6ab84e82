//! The etcd backend's whole conformance suite (the KV contract, the model-based tests and the
//! port of Kubernetes' storage tests) pointed at the front, once over each store: the etcd
//! backend talks gRPC to the front exactly as it talks to a real etcd, so every trial that
//! passes against etcd must pass here too.
//!
//! Each front runs in this process on a runtime of its own, on a free loopback port; each
//! trial connects with a fresh key prefix. Compaction is global to a front, so the trials of
//! one front take turns, as the etcd backend's own suite does against a shared etcd.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use backend_etcd::{EtcdOptions, EtcdStore};
use conformance::{Harness, KeepAlive};
use etcd_front::{EtcdFront, FrontOptions};
use storage_api::Interface;
use tokio::sync::Semaphore;

struct Front {
    name: String,
    endpoint: String,
    next: AtomicU64,
    turn: Arc<Semaphore>,
    _dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl Harness for Front {
    fn name(&self) -> &str {
        &self.name
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Interface>> {
        let trial = self.next.fetch_add(1, Ordering::Relaxed);
        let turn = Arc::clone(&self.turn).acquire_owned().await?;
        let options = EtcdOptions::new(vec![self.endpoint.clone()], format!("/trial-{trial}"));
        let store = EtcdStore::connect(options).await?;
        Ok(KeepAlive::wrap(store, turn))
    }
}

/// Starts a front over `url` on a thread of its own and returns its endpoint.
fn start(url: String) -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = tx.send(Err(anyhow::anyhow!("runtime: {error}")));
                return;
            }
        };
        runtime.block_on(async move {
            let started = async {
                let store = storage::open(&url).await?;
                let front = EtcdFront::new(store, FrontOptions::default()).await?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let endpoint = format!("http://{}", listener.local_addr()?);
                anyhow::Ok((endpoint, front, listener))
            };
            match started.await {
                Ok((endpoint, front, listener)) => {
                    let _ = tx.send(Ok(endpoint));
                    let server = tonic::transport::Server::builder();
                    let forever = std::future::pending();
                    if let Err(error) = front.serve(server, listener, forever).await {
                        eprintln!("the front over {url} stopped: {error}");
                    }
                }
                Err(error) => {
                    let _ = tx.send(Err(error.context(format!("starting a front over {url}"))));
                }
            }
        });
    });
    rx.recv()?
}

fn fronts() -> anyhow::Result<Vec<Arc<dyn Harness>>> {
    let mut harnesses: Vec<Arc<dyn Harness>> = Vec::new();
    for backend in ["memory", "sqlite", "sled"] {
        let dir = tempfile::tempdir()?;
        let url = match backend {
            "memory" => "memory://".to_owned(),
            other => format!("{other}://{}", dir.path().join("store").display()),
        };
        let endpoint = start(url)?;
        harnesses.push(Arc::new(Front {
            name: format!("front-{backend}"),
            endpoint,
            next: AtomicU64::new(0),
            turn: Arc::new(Semaphore::new(1)),
            _dir: dir,
        }));
    }
    Ok(harnesses)
}

fn main() -> std::process::ExitCode {
    match fronts() {
        Ok(harnesses) => conformance::run_all(harnesses),
        Err(error) => {
            eprintln!("cannot start the fronts under test: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
