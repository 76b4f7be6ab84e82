//! Remaining-key counts of paged ranges at past revisions.
//!
//! A paged list at a fixed past revision asks, on every page, how many keys remain from the
//! page's start. Counting them in SQLite takes one index seek per remaining key, so a full
//! paged list would cost O(keys²/page). But the count after a page is exactly the page's count
//! minus the keys it returned, and a past revision never changes, so the store remembers it
//! under the key where the next page starts (`last_key + "\0"`, what every pager sends).

use std::collections::HashMap;
use std::sync::Mutex;

use storage_api::Revision;

/// Where a range starts: its prefix, its revision and its start position.
type Position = (String, Revision, String);

/// A bounded map from the start of a past-revision page to the keys remaining from there.
#[derive(Debug)]
pub(crate) struct PastCounts {
    counts: Mutex<HashMap<Position, u64>>,
    capacity: usize,
}

impl PastCounts {
    /// A cache of at most `capacity` positions.
    pub(crate) fn new(capacity: usize) -> Self {
        PastCounts {
            counts: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The remembered count of live keys from `start` to the end of `prefix` at `revision`.
    pub(crate) fn get(&self, prefix: &str, revision: Revision, start: &str) -> Option<u64> {
        let counts = self.counts.lock().ok()?;
        counts
            .get(&(prefix.to_owned(), revision, start.to_owned()))
            .copied()
    }

    /// Remembers the count from `start`. When full, forgets everything: pagers that are still
    /// going recount once and carry on.
    pub(crate) fn insert(&self, prefix: &str, revision: Revision, start: String, remaining: u64) {
        if let Ok(mut counts) = self.counts.lock() {
            if counts.len() >= self.capacity {
                counts.clear();
            }
            counts.insert((prefix.to_owned(), revision, start), remaining);
        }
    }
}
