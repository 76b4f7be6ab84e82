//! What the watch cache holds for one resource: the current objects keyed like the backend,
//! and a ring of recent events from which a past state, or the events a watch missed, are
//! rebuilt (upstream's `watchCache`, `pkg/storage/cacher/watch_cache.go`).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use apimachinery::object::Object;
use apimachinery::selector::{Fields, Labels};

use super::shared::Shared;
use crate::Codec;

/// One object as the cache holds it: shared, with the attributes selectors test computed once.
#[derive(Debug)]
pub(crate) struct Entry<K> {
    /// The full backend key.
    pub(crate) key: String,
    /// The object, carrying its resourceVersion.
    pub(crate) object: Shared<K>,
    pub(crate) labels: Labels,
    pub(crate) fields: Fields,
}

/// What an event did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

/// One backend event as the cache keeps it.
#[derive(Debug)]
pub(crate) struct CachedEvent<K> {
    pub(crate) revision: u64,
    pub(crate) change: Change,
    /// The object after the event; for a delete, its last state carrying the delete's revision.
    pub(crate) current: Arc<Entry<K>>,
    /// The object before the event, as it was stored (with its own revision); `None` for a
    /// create.
    pub(crate) prior: Option<Arc<Entry<K>>>,
    /// `prior` carrying this event's revision: what a watcher the object leaves gets in its
    /// DELETED event (upstream sets the previous object's resourceVersion to the event's).
    /// Made on first use, once for every watcher.
    prior_now: OnceLock<Shared<K>>,
    /// When the cache received the event (the ring keeps events by age).
    pub(crate) at: Instant,
}

impl<K: Object> CachedEvent<K> {
    /// The object a watcher that stops matching gets in its DELETED event.
    pub(crate) fn prior_at_revision(&self) -> Option<Shared<K>> {
        if self.change == Change::Deleted {
            return Some(self.current.object.clone());
        }
        let prior = self.prior.as_ref()?;
        Some(
            self.prior_now
                .get_or_init(|| {
                    let mut object = K::clone(&prior.object);
                    Codec::<K>::set_resource_version(&mut object, self.revision);
                    Shared::new(object)
                })
                .clone(),
        )
    }
}

/// How many events the ring keeps: at least `min`, at most `max`, and between the two only
/// those younger than `fresh` (upstream keeps about 75 s of events within 100..=102,400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLimits {
    /// Events always kept, whatever their age.
    pub min: usize,
    /// Events never exceeded.
    pub max: usize,
    /// Age beyond which events above `min` are dropped.
    pub fresh: Duration,
}

impl Default for RingLimits {
    fn default() -> Self {
        RingLimits {
            min: 100,
            max: 100 * 1024,
            fresh: Duration::from_secs(75),
        }
    }
}

/// Why a past revision cannot be served from the ring.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Window {
    /// Older than the oldest event kept: the events after it are gone.
    TooOld { oldest: u64 },
    /// Newer than what the cache has seen.
    TooNew { current: u64 },
}

/// The objects and recent events of one resource.
#[derive(Debug)]
pub(crate) struct CacheState<K> {
    objects: BTreeMap<String, Arc<Entry<K>>>,
    events: VecDeque<Arc<CachedEvent<K>>>,
    limits: RingLimits,
    /// Every event after this revision is in `events`: the oldest revision a watch or an
    /// exact read may start from.
    oldest: u64,
    /// Every event up to this revision has been applied.
    revision: u64,
    /// The backend's compaction revision, as last seen: no past revision below it is served.
    compacted: u64,
    /// A list has filled the cache and its watch has not failed since.
    ready: bool,
}

impl<K: Object> CacheState<K> {
    pub(crate) fn new(limits: RingLimits) -> Self {
        CacheState {
            objects: BTreeMap::new(),
            events: VecDeque::new(),
            limits,
            oldest: 0,
            revision: 0,
            compacted: 0,
            ready: false,
        }
    }

    /// The revision the cache reflects.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    pub(crate) fn set_unready(&mut self) {
        self.ready = false;
    }

    /// How many objects and events are held.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.objects.len(), self.events.len())
    }

    /// The oldest revision a watch may start after.
    #[cfg(test)]
    pub(crate) fn oldest(&self) -> u64 {
        self.oldest
    }

    /// Replaces everything with a fresh list taken at `revision`; the ring starts empty there.
    pub(crate) fn replace(&mut self, entries: Vec<Entry<K>>, revision: u64) {
        self.objects = entries
            .into_iter()
            .map(|entry| (entry.key.clone(), Arc::new(entry)))
            .collect();
        self.events.clear();
        self.oldest = revision;
        self.revision = revision;
        self.ready = true;
    }

    /// Records progress: nothing under the resource changed up to `revision`.
    pub(crate) fn progress(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    /// Applies one event at `revision`: `object` is the new state (`None` for a delete, whose
    /// last state is `deleted`). Returns the event as recorded, or `None` for an event below
    /// the cache's revision (already applied) or a delete of a key the cache lacks. Events may
    /// share a revision (keys whose TTL lease expires together are deleted in one write).
    pub(crate) fn apply(
        &mut self,
        key: String,
        revision: u64,
        change: Option<Entry<K>>,
        deleted: Option<Entry<K>>,
        now: Instant,
    ) -> Option<Arc<CachedEvent<K>>> {
        if revision < self.revision {
            return None;
        }
        let prior = self.objects.get(&key).cloned();
        let (kind, current) = match (change, deleted) {
            (Some(entry), _) => {
                let entry = Arc::new(entry);
                self.objects.insert(key, entry.clone());
                let kind = if prior.is_some() {
                    Change::Modified
                } else {
                    Change::Added
                };
                (kind, entry)
            }
            (None, Some(last)) => {
                if self.objects.remove(&key).is_none() {
                    // Nothing to delete (never listed, or deleted twice): only progress.
                    self.revision = revision;
                    return None;
                }
                (Change::Deleted, Arc::new(last))
            }
            (None, None) => return None,
        };
        let event = Arc::new(CachedEvent {
            revision,
            change: kind,
            current,
            prior,
            prior_now: OnceLock::new(),
            at: now,
        });
        self.revision = revision;
        self.events.push_back(event.clone());
        self.trim(now);
        Some(event)
    }

    /// Drops the events the limits no longer keep.
    fn trim(&mut self, now: Instant) {
        while let Some(front) = self.events.front() {
            let over_max = self.events.len() > self.limits.max;
            let stale = self.events.len() > self.limits.min
                && now.saturating_duration_since(front.at) > self.limits.fresh;
            if !(over_max || stale) {
                break;
            }
            self.oldest = front.revision;
            self.events.pop_front();
        }
    }

    /// Forgets the history the backend compacted: revisions up to `compacted` can no longer be
    /// started from or read exactly, as with the backend itself.
    pub(crate) fn compacted(&mut self, compacted: u64) {
        self.compacted = self.compacted.max(compacted);
        // The events themselves go only up to the cache's own revision: the state at that
        // revision stays readable, whatever the backend compacted beyond it.
        let through = compacted.min(self.revision);
        if through <= self.oldest {
            return;
        }
        let gone = self
            .events
            .partition_point(|event| event.revision <= through);
        self.events.drain(..gone);
        self.oldest = through;
    }

    /// Checks that the state at `revision` can be rebuilt.
    pub(crate) fn check_window(&self, revision: u64) -> Result<(), Window> {
        let oldest = self.oldest.max(self.compacted);
        if revision < oldest {
            return Err(Window::TooOld { oldest });
        }
        if revision > self.revision {
            return Err(Window::TooNew {
                current: self.revision,
            });
        }
        Ok(())
    }

    /// The events after `revision` whose key starts with `prefix`, oldest first.
    pub(crate) fn events_after(
        &self,
        revision: u64,
        prefix: &str,
    ) -> Result<Vec<Arc<CachedEvent<K>>>, Window> {
        self.check_window(revision)?;
        let newer = self
            .events
            .partition_point(|event| event.revision <= revision);
        Ok(self
            .events
            .range(newer..)
            .filter(|event| event.current.key.starts_with(prefix))
            .cloned()
            .collect())
    }

    /// The object at `key` now.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Entry<K>>> {
        self.objects.get(key).cloned()
    }

    /// The objects whose key starts with `prefix` and is at least `start`, in key order, now.
    pub(crate) fn range_now<'a>(&'a self, prefix: &'a str, start: &'a str) -> Snapshot<'a, K> {
        self.snapshot(prefix, start, self.revision)
    }

    /// [`Self::range_now`] as it was at `revision`, if the window still holds it (checked with
    /// [`Self::check_window`]).
    pub(crate) fn range_at<'a>(
        &'a self,
        prefix: &'a str,
        start: &'a str,
        revision: u64,
    ) -> Result<Snapshot<'a, K>, Window> {
        self.check_window(revision)?;
        Ok(self.snapshot(prefix, start, revision))
    }

    fn snapshot<'a>(&'a self, prefix: &'a str, start: &'a str, revision: u64) -> Snapshot<'a, K> {
        // State at `revision` = now, with every key touched since restored to what the first
        // later event found there.
        let mut restored: BTreeMap<&str, Option<Arc<Entry<K>>>> = BTreeMap::new();
        for event in self.events.iter().rev() {
            if event.revision <= revision {
                break;
            }
            let key = event.current.key.as_str();
            if key.starts_with(prefix) && key >= start {
                restored.insert(key, event.prior.clone());
            }
        }
        let current = self
            .objects
            .range::<str, _>((Bound::Included(start), Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix));
        Snapshot {
            current: Box::new(current),
            restored: restored.into_iter().peekable(),
            next_current: None,
        }
    }
}

type CurrentIter<'a, K> = Box<dyn Iterator<Item = (&'a String, &'a Arc<Entry<K>>)> + 'a>;

/// The objects of a key range at one revision, in key order: the current objects merged with
/// the states the newer events replaced.
pub(crate) struct Snapshot<'a, K> {
    current: CurrentIter<'a, K>,
    restored:
        std::iter::Peekable<std::collections::btree_map::IntoIter<&'a str, Option<Arc<Entry<K>>>>>,
    next_current: Option<(&'a String, &'a Arc<Entry<K>>)>,
}

impl<K> Iterator for Snapshot<'_, K> {
    type Item = Arc<Entry<K>>;

    fn next(&mut self) -> Option<Arc<Entry<K>>> {
        loop {
            if self.next_current.is_none() {
                self.next_current = self.current.next();
            }
            let restored_key = self.restored.peek().map(|(key, _)| *key);
            let current_key = self.next_current.map(|(key, _)| key.as_str());
            match (current_key, restored_key) {
                (None, None) => return None,
                (Some(_), None) => return self.next_current.take().map(|(_, e)| e.clone()),
                (Some(c), Some(r)) if c < r => {
                    return self.next_current.take().map(|(_, e)| e.clone());
                }
                (current, Some(r)) => {
                    if current == Some(r) {
                        // The restored state replaces the current one.
                        self.next_current = None;
                    }
                    if let Some((_, Some(entry))) = self.restored.next() {
                        return Some(entry);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn entry(name: &str, revision: u64) -> Entry<ConfigMap> {
        let mut object = ConfigMap::default();
        object.metadata.name = Some(name.to_owned());
        object.metadata.resource_version = Some(revision.to_string());
        Entry {
            key: format!("/cm/{name}"),
            object: Shared::new(object),
            labels: Labels::new(),
            fields: Fields::new(),
        }
    }

    fn names(snapshot: Snapshot<'_, ConfigMap>) -> Vec<String> {
        snapshot
            .map(|e| {
                format!(
                    "{}@{}",
                    e.object.metadata.name.as_deref().unwrap_or_default(),
                    e.object
                        .metadata
                        .resource_version
                        .as_deref()
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn past_states_are_rebuilt_from_the_ring() {
        let now = Instant::now();
        let mut state = CacheState::new(RingLimits::default());
        state.replace(vec![entry("a", 1), entry("c", 2)], 2);
        state.apply("/cm/b".into(), 3, Some(entry("b", 3)), None, now);
        state.apply("/cm/a".into(), 4, Some(entry("a", 4)), None, now);
        state.apply("/cm/c".into(), 5, None, Some(entry("c", 5)), now);
        let at = |rev| names(state.range_at("/cm/", "/cm/", rev).expect("in window"));
        assert_eq!(at(5), ["a@4", "b@3"]);
        assert_eq!(at(4), ["a@4", "b@3", "c@2"]);
        assert_eq!(at(3), ["a@1", "b@3", "c@2"]);
        assert_eq!(at(2), ["a@1", "c@2"]);
        assert_eq!(
            names(state.range_at("/cm/", "/cm/b", 2).expect("in window")),
            ["c@2"]
        );
        assert_eq!(
            state.range_at("/cm/", "/cm/", 1).err(),
            Some(Window::TooOld { oldest: 2 })
        );
        assert_eq!(
            state.range_at("/cm/", "/cm/", 6).err(),
            Some(Window::TooNew { current: 5 })
        );
        let after: Vec<u64> = state
            .events_after(3, "/cm/")
            .expect("in window")
            .iter()
            .map(|e| e.revision)
            .collect();
        assert_eq!(after, [4, 5]);
    }

    #[test]
    fn events_sharing_a_revision_are_all_applied() {
        let now = Instant::now();
        let mut state = CacheState::new(RingLimits::default());
        state.replace(vec![entry("a", 1), entry("b", 2)], 2);
        // Two keys of one expired lease, deleted in one write.
        assert!(
            state
                .apply("/cm/a".into(), 3, None, Some(entry("a", 3)), now)
                .is_some()
        );
        assert!(
            state
                .apply("/cm/b".into(), 3, None, Some(entry("b", 3)), now)
                .is_some()
        );
        assert_eq!(
            names(state.range_at("/cm/", "/cm/", 3).expect("in window")),
            Vec::<String>::new()
        );
        assert_eq!(
            names(state.range_at("/cm/", "/cm/", 2).expect("in window")),
            ["a@1", "b@2"]
        );
        // An event older than the cache's revision was applied before.
        assert!(
            state
                .apply("/cm/c".into(), 2, Some(entry("c", 2)), None, now)
                .is_none()
        );
    }

    #[test]
    fn the_ring_keeps_min_events_and_drops_old_ones_beyond() {
        let limits = RingLimits {
            min: 2,
            max: 3,
            fresh: Duration::from_secs(10),
        };
        let start = Instant::now();
        let mut state = CacheState::new(limits);
        state.replace(Vec::new(), 1);
        for revision in 2..=5 {
            state.apply(
                format!("/cm/{revision}"),
                revision,
                Some(entry("x", revision)),
                None,
                start,
            );
        }
        // max 3: the event at 2 is gone, so a watch must start at 2 or later.
        assert_eq!(state.oldest(), 2);
        assert_eq!(state.sizes().1, 3);
        let later = start + Duration::from_secs(11);
        state.apply("/cm/6".into(), 6, Some(entry("x", 6)), None, later);
        // Old events beyond min are dropped by age; the fresh one stays.
        assert_eq!(state.sizes().1, 2);
        assert_eq!(state.oldest(), 4);
    }
}
