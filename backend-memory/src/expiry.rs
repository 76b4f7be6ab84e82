//! Deadlines of keys written with a TTL.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// When each key with a TTL expires.
#[derive(Debug, Default)]
pub(crate) struct Expiry {
    by_time: BTreeSet<(Instant, String)>,
    by_key: HashMap<String, Instant>,
}

impl Expiry {
    /// Records the TTL of a write to `key`: `None` makes the key permanent.
    pub(crate) fn set(&mut self, key: &str, ttl: Option<Duration>, now: Instant) {
        self.remove(key);
        if let Some(ttl) = ttl {
            let deadline = now + ttl;
            self.by_time.insert((deadline, key.to_owned()));
            self.by_key.insert(key.to_owned(), deadline);
        }
    }

    /// Forgets the TTL of a deleted key.
    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(deadline) = self.by_key.remove(key) {
            self.by_time.remove(&(deadline, key.to_owned()));
        }
    }

    /// The next deadline, if any key has one.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns every key whose deadline is at or before `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        while let Some((deadline, _)) = self.by_time.first() {
            if *deadline > now {
                break;
            }
            if let Some((_, key)) = self.by_time.pop_first() {
                self.by_key.remove(&key);
                due.push(key);
            }
        }
        due
    }
}
