//! The lease table: granted leases, their deadlines and the keys attached to each.
//!
//! A lease is a record in the store under [`keys::LEASE_SPACE`] holding its granted TTL, so
//! leases survive a restart of the front on a durable backend. Deadlines live in memory only:
//! after a restart every lease starts again with its full TTL, as etcd renews every lease when
//! a new leader takes over. Which keys a lease holds is read back from the keys' records at
//! start and kept here as writes commit.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use storage_api::{Error, Interface, KeyValue, RangeRequest, Result, Revision};

use crate::keys;
use crate::record::EtcdKv;

/// etcd's `MaxLeaseTTL`: 9,000,000,000 seconds.
pub(crate) const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Keys read per page by [`scan`].
const SCAN_PAGE: u64 = 1000;

/// One granted lease.
#[derive(Debug)]
struct Lease {
    /// The TTL it was granted with, in seconds.
    granted_ttl: i64,
    /// When it expires unless kept alive.
    deadline: Instant,
    /// Storage keys attached to it.
    keys: BTreeSet<String>,
}

/// A lease as [`Leases::time_to_live`] reports it.
#[derive(Debug)]
pub(crate) struct LeaseStatus {
    /// Seconds left, rounded down.
    pub(crate) remaining: i64,
    /// The TTL it was granted with.
    pub(crate) granted_ttl: i64,
    /// Storage keys attached to it.
    pub(crate) keys: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    leases: HashMap<i64, Lease>,
    /// The lease of every key attached to one, with the revision that attached it: a write's
    /// change is applied only if no later write of the key was applied first.
    attached: HashMap<String, (i64, Revision)>,
}

/// Every lease of the front.
#[derive(Debug)]
pub(crate) struct Leases {
    state: Mutex<State>,
    min_ttl: i64,
}

impl Leases {
    /// Reads the leases and the keys attached to them from `store`.
    pub(crate) async fn load(store: &dyn Interface, min_ttl: i64) -> Result<Leases> {
        let now = Instant::now();
        let mut state = State::default();
        let revision = scan(store, keys::LEASE_SPACE, None, |kv| {
            let (id, granted_ttl) = parse_record(kv)?;
            state.leases.insert(
                id,
                Lease {
                    granted_ttl,
                    deadline: now + seconds(granted_ttl),
                    keys: BTreeSet::new(),
                },
            );
            Ok(())
        })
        .await?;
        scan(store, keys::KV_SPACE, Some(revision), |kv| {
            let etcd = EtcdKv::from_stored(kv)?;
            if etcd.record.lease != 0 {
                state.attach(&kv.key, etcd.record.lease, kv.mod_revision);
            }
            Ok(())
        })
        .await?;
        Ok(Leases {
            state: Mutex::new(state),
            min_ttl,
        })
    }

    /// The TTL a grant of `ttl` seconds gets: at least the minimum, as etcd raises short TTLs
    /// to what its election timeout allows.
    pub(crate) fn effective_ttl(&self, ttl: i64) -> i64 {
        ttl.max(self.min_ttl)
    }

    /// Whether `id` is a live lease.
    pub(crate) fn exists(&self, id: i64) -> bool {
        self.state.lock().leases.contains_key(&id)
    }

    /// Records a granted lease.
    pub(crate) fn insert(&self, id: i64, granted_ttl: i64) {
        self.state.lock().leases.insert(
            id,
            Lease {
                granted_ttl,
                deadline: Instant::now() + seconds(granted_ttl),
                keys: BTreeSet::new(),
            },
        );
    }

    /// Renews `id` to its full TTL, returning the TTL; `None` when there is no such lease.
    pub(crate) fn keep_alive(&self, id: i64) -> Option<i64> {
        let mut state = self.state.lock();
        let lease = state.leases.get_mut(&id)?;
        lease.deadline = Instant::now() + seconds(lease.granted_ttl);
        Some(lease.granted_ttl)
    }

    /// What etcd's `LeaseTimeToLive` reports of `id`.
    pub(crate) fn time_to_live(&self, id: i64) -> Option<LeaseStatus> {
        let state = self.state.lock();
        let lease = state.leases.get(&id)?;
        let left = lease.deadline.saturating_duration_since(Instant::now());
        Some(LeaseStatus {
            remaining: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            granted_ttl: lease.granted_ttl,
            keys: lease.keys.iter().cloned().collect(),
        })
    }

    /// The ids of every live lease.
    pub(crate) fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.state.lock().leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The storage keys attached to `id`, if it exists.
    pub(crate) fn keys_of(&self, id: i64) -> Option<Vec<String>> {
        let state = self.state.lock();
        Some(state.leases.get(&id)?.keys.iter().cloned().collect())
    }

    /// The leases whose deadline has passed.
    pub(crate) fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        let state = self.state.lock();
        state
            .leases
            .iter()
            .filter(|(_, lease)| lease.deadline <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Forgets a revoked lease and its attachments.
    pub(crate) fn remove(&self, id: i64) {
        let mut state = self.state.lock();
        if let Some(lease) = state.leases.remove(&id) {
            for key in lease.keys {
                state.attached.remove(&key);
            }
        }
    }

    /// Applies committed writes: `lease` is the key's lease after the write (0 for none, or
    /// for a delete), `revision` the write's revision.
    pub(crate) fn committed(&self, changes: impl IntoIterator<Item = (String, i64, Revision)>) {
        let mut state = self.state.lock();
        for (key, lease, revision) in changes {
            state.attach(&key, lease, revision);
        }
    }
}

impl State {
    fn attach(&mut self, key: &str, lease: i64, revision: Revision) {
        if let Some(&(old, at)) = self.attached.get(key) {
            if at > revision {
                return;
            }
            if let Some(previous) = self.leases.get_mut(&old) {
                previous.keys.remove(key);
            }
        }
        if lease == 0 {
            self.attached.remove(key);
            return;
        }
        self.attached.insert(key.to_owned(), (lease, revision));
        if let Some(current) = self.leases.get_mut(&lease) {
            current.keys.insert(key.to_owned());
        }
    }
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

/// The stored form of a lease record: the granted TTL.
pub(crate) fn encode_ttl(ttl: i64) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&ttl.to_be_bytes())
}

fn decode_ttl(stored: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(stored.try_into().ok()?))
}

/// A stored lease record as its ID and granted TTL.
pub(crate) fn parse_record(kv: &KeyValue) -> Result<(i64, i64)> {
    let id = kv
        .key
        .strip_prefix(keys::LEASE_SPACE)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .map(|id| id as i64)
        .ok_or_else(|| Error::internal(format!("corrupt lease key {:?}", kv.key)))?;
    let granted_ttl = decode_ttl(&kv.value)
        .ok_or_else(|| Error::internal(format!("corrupt lease record {:?}", kv.key)))?;
    Ok((id, granted_ttl))
}

/// Calls `visit` with every key under `prefix` at one revision (`at`, or the latest), reading
/// [`SCAN_PAGE`] keys at a time; returns that revision.
pub(crate) async fn scan(
    store: &dyn Interface,
    prefix: &str,
    at: Option<Revision>,
    mut visit: impl FnMut(&KeyValue) -> Result<()>,
) -> Result<Revision> {
    let mut request = RangeRequest::prefix(prefix).limit(SCAN_PAGE);
    if let Some(revision) = at {
        request = request.at(revision);
    }
    loop {
        let page = store.range(request.clone()).await?;
        for kv in &page.kvs {
            visit(kv)?;
        }
        match page.kvs.last() {
            Some(last) if page.more => {
                request = request.start(format!("{}\0", last.key)).at(page.revision);
            }
            _ => return Ok(page.revision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_write_wins_whatever_order_changes_arrive_in() {
        let leases = Leases {
            state: Mutex::new(State::default()),
            min_ttl: 2,
        };
        leases.insert(1, 10);
        leases.insert(2, 10);
        leases.committed([("/kva".to_owned(), 2, 8)]);
        leases.committed([("/kva".to_owned(), 1, 7)]);
        assert_eq!(leases.keys_of(2), Some(vec!["/kva".to_owned()]));
        assert_eq!(leases.keys_of(1), Some(Vec::new()));
        leases.committed([("/kva".to_owned(), 0, 9)]);
        assert_eq!(leases.keys_of(2), Some(Vec::new()));
        assert_eq!(leases.effective_ttl(1), 2);
        assert_eq!(leases.keep_alive(1), Some(10));
        assert_eq!(leases.keep_alive(3), None);
        leases.remove(1);
        assert!(!leases.exists(1));
    }
}
