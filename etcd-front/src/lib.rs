//! etcd's v3 gRPC API served over any store of the storage contract.
//!
//! kube-apiserver, k3s, `etcdctl` and etcd client libraries talk to [`EtcdFront`] as they talk
//! to a one-member etcd cluster, while the data lives in whatever `storage_api::Interface` it
//! is given: SQLite, sled, memory, or etcd itself. Revisions are the store's. See the crate's
//! README for what is served, how keys and leases are stored, and the shapes of requests
//! kube-apiserver sends.

mod errors;
mod keys;
mod leases;
mod record;
mod services;
mod snapshot;
mod txn;
mod watch;

use std::sync::{Arc, Weak};
use std::time::Duration;

use storage_api::Interface;

pub use services::DbSize;
pub use snapshot::{RestoreError, Restored, restore_snapshot};

use crate::leases::Leases;
use crate::txn::{Engine, Identity};

/// The etcd version [`EtcdFront`] reports in `Status`: 3.5.13 and later answer progress
/// requests only once every earlier event was sent, which kube-apiserver checks before it
/// serves consistent reads from its watch cache.
pub const REPORTED_VERSION: &str = "3.5.16";

/// How often expired leases are looked for.
const EXPIRY_TICK: Duration = Duration::from_millis(500);

/// How an [`EtcdFront`] presents itself.
#[derive(Clone)]
pub struct FrontOptions {
    /// The member name (`--name`); the member and cluster IDs are derived from it.
    pub name: String,
    /// The client URLs `MemberList` reports (`--advertise-client-urls`).
    pub advertise_client_urls: Vec<String>,
    /// Shortest lease TTL in seconds; shorter grants are raised to it, as etcd raises them to
    /// what its election timeout allows (2 s with etcd's defaults).
    pub min_lease_ttl: i64,
    /// The database size `Status` reports, if the store has one to measure.
    pub db_size: Option<DbSize>,
}

impl std::fmt::Debug for FrontOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontOptions")
            .field("name", &self.name)
            .field("advertise_client_urls", &self.advertise_client_urls)
            .field("min_lease_ttl", &self.min_lease_ttl)
            .field("db_size", &self.db_size.is_some())
            .finish()
    }
}

impl Default for FrontOptions {
    fn default() -> Self {
        FrontOptions {
            name: "default".into(),
            advertise_client_urls: vec!["http://127.0.0.1:2379".into()],
            min_lease_ttl: 2,
            db_size: None,
        }
    }
}

/// The etcd v3 API over one store: KV, Watch, Lease, Maintenance and Cluster services.
///
/// The front must be the only writer of its store: it keeps each key's etcd version and lease
/// in the stored value and the lease table in memory. Create it inside the Tokio runtime that
/// will serve it (it spawns the lease expiry task there), then add [`EtcdFront::services`] to
/// a tonic server or call [`EtcdFront::serve`].
#[derive(Clone, Debug)]
pub struct EtcdFront {
    engine: Arc<Engine>,
    options: Arc<FrontOptions>,
}

impl EtcdFront {
    /// A front over `store`, with the leases recorded in it loaded and renewed.
    pub async fn new(
        store: Arc<dyn Interface>,
        options: FrontOptions,
    ) -> storage_api::Result<EtcdFront> {
        let leases = Arc::new(Leases::load(&*store, options.min_lease_ttl.max(1)).await?);
        let identity = Identity {
            cluster_id: stable_id(&format!("cluster/{}", options.name)),
            member_id: stable_id(&format!("member/{}", options.name)),
        };
        let engine = Arc::new(Engine {
            store,
            leases,
            identity,
            gate: tokio::sync::RwLock::new(()),
        });
        tokio::spawn(expire_leases(Arc::downgrade(&engine)));
        Ok(EtcdFront {
            engine,
            options: Arc::new(options),
        })
    }

    /// The member ID in every response header.
    pub fn member_id(&self) -> u64 {
        self.engine.identity.member_id
    }
}

/// A non-zero ID from a name, the same on every start (FNV-1a).
fn stable_id(name: &str) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    // Positive as a signed number too, and never 0.
    (hash >> 1).max(1)
}

/// Revokes leases whose deadline passed, until the front is dropped.
async fn expire_leases(engine: Weak<Engine>) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        for id in engine.leases.expired() {
            match engine.revoke(id).await {
                Ok(revision) => tracing::debug!(id, revision, "lease expired"),
                Err(status) => tracing::warn!(id, %status, "could not revoke an expired lease"),
            }
        }
    }
}
