//! Lease reuse for TTL writes, as kube-apiserver's `leaseManager` does it.
//!
//! Granting one lease per TTL write would make a burst of writes cost a lease each (and etcd
//! keeps every lease in memory and checks each for expiry). Instead the last lease granted is
//! reused by later writes whose TTL ends within a short window of that lease's expiry: the window
//! is `min(lease_reuse_duration, 5% of the TTL)`, the lease is granted for `TTL + window` so a key
//! lives at least its TTL and at most a window longer, and at most `max_objects` writes share one
//! lease.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// The percentage of a TTL by which a reused lease may outlive it.
const REUSE_PERCENT: f64 = 0.05;

#[derive(Debug)]
struct Current {
    id: i64,
    expires: Instant,
    attached: u64,
}

/// Hands out lease ids for TTL writes, reusing the last one when it fits.
#[derive(Debug)]
pub(crate) struct LeaseManager {
    reuse_duration: Duration,
    max_objects: u64,
    current: Mutex<Option<Current>>,
}

impl LeaseManager {
    pub(crate) fn new(reuse_duration: Duration, max_objects: u64) -> Self {
        LeaseManager {
            reuse_duration,
            max_objects: max_objects.max(1),
            current: Mutex::new(None),
        }
    }

    fn window(&self, ttl: Duration) -> Duration {
        self.reuse_duration.min(ttl.mul_f64(REUSE_PERCENT))
    }

    /// Gets a lease for a write with `ttl`, granting one through `grant` (called with the TTL in
    /// seconds) when the current lease does not fit. Grants are serialized so a burst of writes
    /// ends up sharing one lease.
    pub(crate) async fn lease_for<F, Fut, E>(&self, ttl: Duration, grant: F) -> Result<i64, E>
    where
        F: FnOnce(i64) -> Fut,
        Fut: Future<Output = Result<i64, E>>,
    {
        let mut current = self.current.lock().await;
        let now = Instant::now();
        let window = self.window(ttl);
        if let Some(lease) = current.as_mut() {
            let valid = now + ttl <= lease.expires;
            let sufficient = now + ttl + window >= lease.expires;
            if valid && sufficient && lease.attached < self.max_objects {
                lease.attached += 1;
                return Ok(lease.id);
            }
        }
        let lease_ttl = ttl + window;
        // etcd leases have whole seconds: round up so the key lives at least its TTL.
        let seconds = lease_ttl.as_secs() + u64::from(lease_ttl.subsec_nanos() > 0);
        let seconds = i64::try_from(seconds.max(1)).unwrap_or(i64::MAX);
        let id = grant(seconds).await?;
        *current = Some(Current {
            id,
            // Measured from before the grant: the lease cannot expire earlier than this.
            expires: now + Duration::from_secs(seconds.unsigned_abs()),
            attached: 1,
        });
        Ok(id)
    }

    /// Forgets `id` (etcd reported it gone), so the next write grants a new lease.
    pub(crate) async fn forget(&self, id: i64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| c.id == id) {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[tokio::test]
    async fn reuses_within_window_and_caps_attachments() {
        let manager = LeaseManager::new(Duration::from_secs(60), 3);
        let next = AtomicI64::new(1);
        let grant = |_s: i64| async { Ok::<_, ()>(next.fetch_add(1, Ordering::SeqCst)) };
        let ttl = Duration::from_secs(100);
        let ids: Vec<i64> =
            futures::future::join_all((0..7).map(|_| manager.lease_for(ttl, grant)))
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(ids, vec![1, 1, 1, 2, 2, 2, 3]);
        // A much shorter TTL does not fit in a 100 s lease.
        let short = manager
            .lease_for(Duration::from_secs(10), grant)
            .await
            .unwrap();
        assert_eq!(short, 4);
        manager.forget(4).await;
        let again = manager
            .lease_for(Duration::from_secs(10), grant)
            .await
            .unwrap();
        assert_eq!(again, 5);
    }
}
