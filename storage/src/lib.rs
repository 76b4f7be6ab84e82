//! One entry point to every storage backend: a storage URL in, an `Arc<dyn Interface>` out.
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `memory://` | in-memory MVCC (lost on exit) | `memory` (default) |
//! | `sqlite://PATH[?options]` | embedded SQLite file, durable | `sqlite` (default) |
//! | `etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?options]` | etcd v3 cluster | `etcd` |
//! | `sled://PATH[?options]` | embedded sled tree | `sled` |
//!
//! `PATH` is everything between `://` and `?`: `sqlite://data/db.sqlite` is relative to the
//! working directory, `sqlite:///var/lib/kube/db.sqlite` absolute. Options are documented by each
//! backend crate (`backend_sqlite::SqliteOptions::from_query`, and so on).
//!
//! A known scheme whose feature is off fails with "built without feature `NAME`"; an unknown
//! scheme fails with the list of schemes this build supports.

use std::sync::Arc;

pub mod backup;

pub use storage_api::{Error, Interface, InterfaceExt, Result};

/// Every scheme the facade knows, with the Cargo feature that enables it.
pub const SCHEMES: [(&str, &str); 4] = [
    ("memory", "memory"),
    ("sqlite", "sqlite"),
    ("etcd", "etcd"),
    ("sled", "sled"),
];

/// The schemes compiled into this build.
pub fn supported_schemes() -> Vec<&'static str> {
    let mut schemes = Vec::new();
    if cfg!(feature = "memory") {
        schemes.push("memory");
    }
    if cfg!(feature = "sqlite") {
        schemes.push("sqlite");
    }
    if cfg!(feature = "etcd") {
        schemes.push("etcd");
    }
    if cfg!(feature = "sled") {
        schemes.push("sled");
    }
    schemes
}

/// A storage URL split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUrl<'a> {
    /// The scheme, such as `sqlite`.
    pub scheme: &'a str,
    /// Everything between `://` and `?`.
    pub location: &'a str,
    /// Everything after `?`, without it (empty when there is none).
    pub query: &'a str,
}

impl<'a> StorageUrl<'a> {
    /// Splits `url` into scheme, location and query; fails when there is no `scheme://`.
    pub fn parse(url: &'a str) -> Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            Error::InvalidArgument(format!(
                "storage URL {url:?} has no scheme: expected SCHEME://..., one of {}",
                scheme_list()
            ))
        })?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        Ok(StorageUrl {
            scheme,
            location,
            query,
        })
    }
}

/// The Cargo feature a URL's backend needs when this build lacks it: `Some("etcd")` for an
/// `etcd://` URL in a build without the `etcd` feature, `None` when the backend is compiled in
/// or the scheme is unknown (or the URL has none). Programs use it to tell their users how to
/// rebuild; [`open`] fails with a generic message in that case.
pub fn missing_feature(url: &str) -> Option<&'static str> {
    missing_from(url, &supported_schemes())
}

/// [`missing_feature`] against an explicit list of compiled-in schemes (testable in any build).
fn missing_from(url: &str, compiled: &[&str]) -> Option<&'static str> {
    let scheme = StorageUrl::parse(url).ok()?.scheme;
    let (_, feature) = SCHEMES.iter().find(|(known, _)| *known == scheme)?;
    (!compiled.contains(&scheme)).then_some(*feature)
}

fn scheme_list() -> String {
    supported_schemes()
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens the store a storage URL names.
///
/// Must be called inside a Tokio runtime (backends start background tasks).
#[tracing::instrument]
pub async fn open(url: &str) -> Result<Arc<dyn Interface>> {
    let parsed = StorageUrl::parse(url)?;
    match parsed.scheme {
        #[cfg(feature = "memory")]
        "memory" => open_memory(&parsed),
        #[cfg(feature = "sqlite")]
        "sqlite" => open_sqlite(&parsed).await,
        #[cfg(feature = "etcd")]
        "etcd" => {
            let store = backend_etcd::EtcdStore::connect_url(url).await?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "sled")]
        "sled" => open_sled(&parsed).await,
        scheme => match SCHEMES.iter().find(|(known, _)| *known == scheme) {
            Some((_, feature)) => Err(Error::InvalidArgument(format!(
                "storage URL {url:?} needs a backend this program was built without: \
                 built without feature `{feature}`"
            ))),
            None => Err(Error::InvalidArgument(format!(
                "storage URL {url:?} has unknown scheme {scheme:?}; supported: {}",
                scheme_list()
            ))),
        },
    }
}

#[cfg(feature = "memory")]
fn open_memory(url: &StorageUrl<'_>) -> Result<Arc<dyn Interface>> {
    if !url.location.is_empty() || !url.query.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "memory:// takes no path or options, got {:?}",
            format!("{}?{}", url.location, url.query)
        )));
    }
    Ok(Arc::new(backend_memory::MemoryStore::default()))
}

#[cfg(any(feature = "sqlite", feature = "sled"))]
fn require_path(url: &StorageUrl<'_>) -> Result<std::path::PathBuf> {
    if url.location.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}:// needs a path, as in {}://data/store",
            url.scheme, url.scheme
        )));
    }
    Ok(std::path::PathBuf::from(url.location))
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &StorageUrl<'_>) -> Result<Arc<dyn Interface>> {
    let path = require_path(url)?;
    let options = backend_sqlite::SqliteOptions::from_query(url.query)?;
    let store =
        blocking(move || backend_sqlite::SqliteStore::open(&path, options).map_err(Error::from))
            .await?;
    Ok(Arc::new(store))
}

#[cfg(feature = "sled")]
async fn open_sled(url: &StorageUrl<'_>) -> Result<Arc<dyn Interface>> {
    let path = require_path(url)?;
    let options = backend_sled::SledOptions::from_query(url.query)?;
    let store = blocking(move || backend_sled::SledStore::open(&path, options)).await?;
    Ok(Arc::new(store))
}

/// Runs file-opening work off the async worker threads.
#[cfg(any(feature = "sqlite", feature = "sled"))]
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal_from("opening the store panicked or was cancelled", e))?
}

#[cfg(test)]
mod tests {
    use super::missing_from;

    #[test]
    fn missing_feature_names_the_backend_a_build_lacks() {
        let url = "etcd://127.0.0.1:2379/registry";
        assert_eq!(missing_from(url, &["memory", "sqlite"]), Some("etcd"));
        assert_eq!(missing_from(url, &["memory", "sqlite", "etcd"]), None);
        assert_eq!(missing_from("sled://data/db", &["memory"]), Some("sled"));
        assert_eq!(missing_from("nosuch://x", &["memory"]), None);
        assert_eq!(missing_from("no-scheme", &["memory"]), None);
    }
}
