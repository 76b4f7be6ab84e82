//! The storage [`Interface`](storage_api::Interface) on etcd v3: the backend users scale out
//! on, over a real, replicated etcd cluster.
//!
//! ```no_run
//! # async fn demo() -> storage_api::Result<()> {
//! use backend_etcd::EtcdStore;
//! let store = EtcdStore::connect_url("etcd://127.0.0.1:2379,127.0.0.1:22379/registry").await?;
//! # Ok(()) }
//! ```
//!
//! How the contract maps onto etcd:
//!
//! - every key is stored under a prefix ([`EtcdOptions::prefix`]), hidden from results;
//! - create is the transaction "`create_revision == 0` then put"; update and delete are
//!   "the key exists (and `mod_revision == expected`) then put/delete, else get", so a conflict
//!   returns the live value in the same round trip;
//! - reads at a revision, limits and counts are etcd's; the revision errors of etcd are mapped onto
//!   `Compacted` and `FutureRevision` with the real compaction and current revisions;
//! - watches ask etcd for previous values and progress notifications, start one revision after
//!   the contract's exclusive start, and resume on another member when theirs fails;
//! - TTLs are leases, one lease shared by a burst of writes with similar TTLs;
//! - the optional periodic compactor is kube-apiserver's, safe for several servers sharing etcd;
//! - requests are balanced over every endpoint, and bounded by a timeout past which they fail
//!   with `Unavailable`.

mod compactor;
mod errors;
mod lease;
mod options;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod watch;

pub use options::{DEFAULT_COMPACT_REV_KEY, EtcdOptions};
pub use store::EtcdStore;

/// Runs one round of the periodic compactor by hand on `store`'s cluster: the
/// compare-and-swap on `compact_key` against the key `version` this server saw last, and a
/// compaction to `revision` (recorded on the previous round) if it won. Returns the version and
/// revision to pass to the next round. Useful for tests and tools; servers set
/// [`EtcdOptions::compaction_interval`] instead.
pub async fn compaction_round(
    store: &EtcdStore,
    compact_key: &str,
    version: i64,
    revision: storage_api::Revision,
) -> storage_api::Result<(i64, storage_api::Revision)> {
    let revision = i64::try_from(revision).map_err(|_| {
        storage_api::Error::InvalidArgument(format!("revision {revision} is too large for etcd"))
    })?;
    let (version, revision) = compactor::round(&store.inner.client, compact_key, version, revision)
        .await
        .map_err(|e| store::resolve_plain(errors::classify("compaction round", e)))?;
    Ok((version, store::revision_from(revision)))
}
