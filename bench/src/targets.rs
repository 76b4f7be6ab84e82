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
                other => bail!(
                    "unknown backend {other:?}; this build has: {}",
                    supported.join(", ")
                ),
            };
            if !supported.contains(&name) {
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
        })
    }
}
