//! The HTTP level: every workload through a real `apiserver` over loopback HTTP/1.1.
//!
//! For each measurement the fresh store gets its own in-process server ([`server`]) and a new
//! namespace; the workloads then run unchanged over [`client::HttpClient`], which reads and
//! writes ConfigMaps in that namespace. Client and server share the process, the runtime and
//! the machine's cores.

pub mod client;
pub mod server;
pub mod wire;

use std::sync::Arc;

use anyhow::{Result, bail};
use storage_api::Interface;

use crate::cli::Workload;
use crate::workloads::{self, Measured, Params, Progress};

/// How a measurement's server and client are set up.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The namespace the measurement creates and works in.
    pub namespace: String,
    /// Bytes of the ConfigMaps' `pad` data entry.
    pub value_size: usize,
    /// Set `TCP_NODELAY` on the server's accepted connections (`--http-nodelay`, default on).
    pub server_nodelay: bool,
    /// Serve through the API server's watch cache (level `http-cache`).
    pub watch_cache: bool,
    /// A running API server to drive instead of one started here (`--http-server`).
    pub external: Option<String>,
}

/// Serves `store` on a loopback port and runs `workload` against it over HTTP with
/// `concurrency` clients, in the setup's namespace (created first).
///
/// # Errors
///
/// When the server cannot start, the namespace cannot be created, or the workload cannot run
/// at all (`churn` needs compaction, which the HTTP API does not expose). Failed requests are
/// counted in the result, not returned.
pub async fn measure(
    store: Arc<dyn Interface>,
    setup: &Setup,
    workload: Workload,
    concurrency: usize,
    params: &Params,
    progress: Progress,
) -> Result<Measured> {
    if workload == Workload::Churn {
        bail!(
            "churn compacts the store, which the HTTP API does not expose; use --levels kv,object"
        );
    }
    let server = match &setup.external {
        Some(_) => None,
        None => {
            Some(server::LocalServer::start(store, setup.server_nodelay, setup.watch_cache).await?)
        }
    };
    let base = match (&setup.external, &server) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(server)) => server.base_url(),
        (None, None) => bail!("no API server to drive"),
    };
    let client = Arc::new(
        client::HttpClient::connect(base, setup.namespace.clone(), setup.value_size).await?,
    );
    let measured = workloads::run(client.clone(), workload, concurrency, params, progress).await;
    // Close the pooled connections before the server goes away.
    drop(client);
    drop(server);
    let mut measured = measured?;
    measured.note(
        "server_nodelay",
        setup.server_nodelay,
        if setup.server_nodelay {
            String::new()
        } else {
            "server without TCP_NODELAY".to_owned()
        },
    );
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tiny() -> Params {
        Params {
            duration: Duration::from_millis(100),
            keys: 20,
            page_size: 7,
            list_total: 30,
            watchers: 3,
            watch_rate: 500,
            mixed_write_percent: 50,
            churn_updates: 100,
            churn_keys: 10,
            churn_compact_every: 50,
            churn_keep: 10,
        }
    }

    /// Every workload but churn, over HTTP against a memory store: real requests, no errors.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_runs_over_http() {
        let progress: Progress = Arc::new(|_| {});
        for workload in [
            Workload::Create,
            Workload::Update,
            Workload::Get,
            Workload::List,
            Workload::ListPast,
            Workload::Mixed,
            Workload::Watch,
        ] {
            for concurrency in [1, 4] {
                let store: Arc<dyn Interface> = Arc::new(backend_memory::MemoryStore::default());
                let mut params = tiny();
                if workload == Workload::List && concurrency == 4 {
                    // The unpaginated collection GET of the results file.
                    params.page_size = 0;
                }
                let setup = Setup {
                    namespace: format!("bench-{concurrency}"),
                    value_size: 64,
                    server_nodelay: concurrency == 4,
                    watch_cache: concurrency == 4,
                    external: None,
                };
                let measured = measure(
                    store,
                    &setup,
                    workload,
                    concurrency,
                    &params,
                    progress.clone(),
                )
                .await
                .unwrap();
                assert_eq!(
                    measured.recorder.errors, 0,
                    "{workload:?} c{concurrency}: {:?}",
                    measured.recorder.first_error
                );
                assert!(measured.recorder.count() > 0, "{workload:?} c{concurrency}");
                if workload == Workload::Watch {
                    let note = |name: &str| {
                        measured
                            .notes
                            .iter()
                            .find(|(n, _, _)| n == name)
                            .and_then(|(_, value, _)| value.as_u64())
                    };
                    assert_eq!(note("watchers_complete"), Some(3), "{:?}", measured.notes);
                    let writes = note("writes").unwrap();
                    assert!(writes > 0);
                    assert_eq!(note("events_delivered"), Some(3 * writes));
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_are_counted_not_hidden() {
        let store: Arc<dyn Interface> = Arc::new(backend_memory::MemoryStore::default());
        let server = server::LocalServer::start(store, false, true)
            .await
            .unwrap();
        let client = client::HttpClient::connect(server.base_url(), "errs".to_owned(), 8)
            .await
            .unwrap();
        use crate::client::Client as _;
        let version = client.create("a", 1).await.unwrap();
        let error = client.create("a", 2).await.unwrap_err();
        assert!(format!("{error:#}").contains("HTTP 409"), "{error:#}");
        client.update("a", &version, 3).await.unwrap();
        let stale = client.update("a", &version, 4).await.unwrap_err();
        assert!(format!("{stale:#}").contains("HTTP 409"), "{stale:#}");
        let missing = client.get("nope").await.unwrap_err();
        assert!(format!("{missing:#}").contains("HTTP 404"), "{missing:#}");
        assert!(client.compact(1).await.is_err());
        // A namespace that exists already cannot be the measurement's namespace.
        let again = client::HttpClient::connect(server.base_url(), "errs".to_owned(), 8).await;
        assert!(again.is_err());
    }
}
