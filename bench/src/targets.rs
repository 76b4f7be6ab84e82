//! The stores under test, each opened fresh for every measurement.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use storage_api::Interface;

/// How a target's stores are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `memory://`, a new store each time.
    Memory,
    /// `sqlite://` in a new temporary directory.
    Sqlite,
    /// `sled://` in a new temporary directory.
    Sled,
    /// `etcd://` on the run's etcd, under a new key prefix.
    Etcd,
    /// The etcd backend talking to an `etcd-front` over SQLite in a new temporary directory,
    /// served from this process on a free loopback port.
    EtcdFront,
    /// A URL given with `--url`, opened as is; measurements are isolated by key prefix.
    Url(String),
}

/// A backend (or explicit URL) to measure.
#[derive(Clone, Debug)]
pub struct Target {
    /// The name in result rows.
    pub name: String,
    /// How to open it.
    pub kind: Kind,
}

/// What every fresh store needs to know about the run.
#[derive(Clone, Debug)]
pub struct Env {
    /// Where temporary directories go.
    pub data_dir: PathBuf,
    /// Distinguishes this run's etcd prefixes from earlier runs'.
    pub run_id: String,
    /// The etcd endpoints of the run, when etcd is measured.
    pub etcd_endpoints: Vec<String>,
    /// Extra `sqlite://` URL options.
    pub sqlite_options: String,
    /// Extra `sled://` URL options.
    pub sled_options: String,
}

impl Env {
    /// The etcd key prefix (no trailing `/`) of measurement `n`.
    pub fn etcd_prefix(&self, n: usize) -> String {
        format!("/storage-bench-{}-{n}", self.run_id)
    }
}

/// A store opened for one measurement. Dropping it removes its temporary directory.
#[derive(Debug)]
pub struct Fresh {
    /// The store.
    pub store: Arc<dyn Interface>,
    /// Every key of the measurement goes under this prefix (ends with `/`).
    pub key_prefix: String,
    /// The store's temporary directory, if it has one.
    pub dir: Option<tempfile::TempDir>,
    /// The server the store talks to, when the measurement runs one; stopped when dropped.
    #[expect(
        dead_code,
        reason = "held only so that dropping the store stops its server"
    )]
    pub server: Option<ServerGuard>,
}

/// Stops an in-process server when dropped.
#[derive(Debug)]
pub struct ServerGuard {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts an `etcd-front` over `sqlite_url` on a free loopback port; returns its endpoint.
#[cfg(feature = "etcd")]
async fn start_front(sqlite_url: &str) -> Result<(String, ServerGuard)> {
    let store = storage::open(sqlite_url)
        .await
        .with_context(|| format!("opening {sqlite_url}"))?;
    let front = etcd_front::EtcdFront::new(store, etcd_front::FrontOptions::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("127.0.0.1:{}", listener.local_addr()?.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(error) = front
            .serve(tonic::transport::Server::builder(), listener, shutdown)
            .await
        {
            tracing::warn!(%error, "the etcd front stopped");
        }
    });
    Ok((endpoint, ServerGuard { stop: Some(stop) }))
}

#[cfg(not(feature = "etcd"))]
async fn start_front(_sqlite_url: &str) -> Result<(String, ServerGuard)> {
    bail!("the etcd-front target needs the bench crate's `etcd` feature")
}

impl Target {
    /// The targets for `--backends` and `--url`.
    pub fn from_args(backends: &[String], urls: &[String]) -> Result<Vec<Target>> {
        let supported = storage::supported_schemes();
        let mut targets = Vec::new();
        for name in backends {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let kind = match name {
                "memory" => Kind::Memory,
                "sqlite" => Kind::Sqlite,
                "sled" => Kind::Sled,
                "etcd" => Kind::Etcd,
                "etcd-front" => Kind::EtcdFront,
                other => bail!(
                    "unknown backend {other:?}; this build has: {}",
                    supported.join(", ")
                ),
            };
            // The front is measured through the etcd backend.
            let scheme = if name == "etcd-front" { "etcd" } else { name };
            if !supported.contains(&scheme) {
                bail!(
                    "backend {name:?} was not compiled in (enable feature `{name}` of the bench \
                     crate); this build has: {}",
                    supported.join(", ")
                );
            }
            targets.push(Target {
                name: name.to_owned(),
                kind,
            });
        }
        for (i, url) in urls.iter().enumerate() {
            targets.push(Target {
                name: format!("url{}", i + 1),
                kind: Kind::Url(url.clone()),
            });
        }
        Ok(targets)
    }

    /// Opens a fresh store for measurement `n`.
    pub async fn fresh(&self, env: &Env, n: usize) -> Result<Fresh> {
        let key_prefix = format!("/b{n}/");
        let temp = || {
            tempfile::Builder::new()
                .prefix(&format!("storage-bench-{}-", self.name))
                .tempdir_in(&env.data_dir)
                .with_context(|| format!("creating a directory in {}", env.data_dir.display()))
        };
        let with_query = |base: String, query: &str| {
            if query.is_empty() {
                base
            } else {
                format!("{base}?{}", query.trim_start_matches('?'))
            }
        };
        let mut server = None;
        let (url, dir) = match &self.kind {
            Kind::Memory => ("memory://".to_owned(), None),
            Kind::Sqlite => {
                let dir = temp()?;
                let base = format!("sqlite://{}", dir.path().join("store.sqlite").display());
                (with_query(base, &env.sqlite_options), Some(dir))
            }
            Kind::Sled => {
                let dir = temp()?;
                let base = format!("sled://{}", dir.path().join("store.sled").display());
                (with_query(base, &env.sled_options), Some(dir))
            }
            Kind::Etcd => {
                if env.etcd_endpoints.is_empty() {
                    bail!("no etcd endpoints (internal error: etcd was not started)");
                }
                (
                    format!(
                        "etcd://{}{}",
                        env.etcd_endpoints.join(","),
                        env.etcd_prefix(n)
                    ),
                    None,
                )
            }
            Kind::EtcdFront => {
                let dir = temp()?;
                let base = format!("sqlite://{}", dir.path().join("store.sqlite").display());
                let (endpoint, guard) = start_front(&with_query(base, &env.sqlite_options)).await?;
                server = Some(guard);
                (
                    format!("etcd://{endpoint}{}", env.etcd_prefix(n)),
                    Some(dir),
                )
            }
            Kind::Url(url) => (url.clone(), None),
        };
        tracing::debug!(%url, "opening a fresh store");
        let store = storage::open(&url)
            .await
            .with_context(|| format!("opening {url}"))?;
        store
            .ready()
            .await
            .with_context(|| format!("{url} is not ready"))?;
        Ok(Fresh {
            store,
            key_prefix,
            dir,
            server,
        })
    }
}
