//! The watchers of one cache and how events find them (upstream's `indexedWatchers` and
//! `dispatchEvent`, `pkg/storage/cacher/cacher.go`).
//!
//! Watchers that watch the same key or directory with the same selectors form a group: the
//! events of a batch are filtered once per group, into one shared list every member receives.
//! Groups are indexed by the key or directory they watch and by the trigger value their
//! selector requires, so an event is tested only against groups that can want it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apimachinery::object::Object;
use apimachinery::selector::{Fields, Labels, SelectionPredicate};
use tokio::sync::mpsc;

use super::shared::Shared;
use super::state::{CachedEvent, Change, Entry};
use crate::options::WatchEvent;

/// One event a cache watcher receives: its object is shared with every other watcher.
pub(crate) type Delivery<K> = WatchEvent<Shared<K>>;

/// What a watcher's buffer holds: the events of one dispatched batch for its group (shared by
/// every member), or one bookmark.
pub(crate) type Parcel<K> = Arc<[Delivery<K>]>;

/// The attribute a kind declares for indexed dispatch (upstream's `TriggerPublisherFunc` and
/// `IndexerFuncs`): watchers whose selector requires one value of it are only tested against
/// events whose object had or has that value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A selectable field, such as `spec.nodeName`.
    Field(String),
    /// A label key.
    Label(String),
}

impl Trigger {
    /// The object's value of the trigger attribute.
    fn value_of<'a>(&self, labels: &'a Labels, fields: &'a Fields) -> Option<&'a str> {
        match self {
            Trigger::Field(name) => fields.get(name).map(String::as_str),
            Trigger::Label(name) => labels.get(name).map(String::as_str),
        }
    }

    /// The single value `predicate` requires of the trigger attribute, if it requires one.
    fn required_by(&self, predicate: &SelectionPredicate) -> Option<String> {
        match self {
            Trigger::Field(name) => predicate.field.requires_exact_match(name),
            Trigger::Label(name) => predicate.label.requires_exact_match(name),
        }
        .map(str::to_owned)
    }
}

/// What makes watchers members of one group: the key or directory and the selectors.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    /// The full key watched, or the directory (ending in `/`) for a recursive watch.
    scope: String,
    label: String,
    field: String,
}

/// Watchers that see the same events.
struct Group<K> {
    key: GroupKey,
    predicate: SelectionPredicate,
    /// The trigger value the predicate requires (the index entry the group is filed under).
    trigger: Option<String>,
    members: HashMap<u64, Member<K>>,
}

/// One registered watcher.
struct Member<K> {
    sender: mpsc::Sender<Parcel<K>>,
    /// When the next bookmark is due; `None` for watchers that did not ask for them, and after
    /// the last one before the watch's deadline.
    next_bookmark: Option<Instant>,
    /// When the caller ends the watch, if it said.
    deadline: Option<Instant>,
}

/// How long before a watch's deadline its last bookmark is due (upstream: 2 s).
const PRE_TIMEOUT_BOOKMARK: Duration = Duration::from_secs(2);

/// When a watcher's next bookmark is due, as upstream's `cacheWatcher.nextBookmarkTime`: `every`
/// after `now`, but no later than [`PRE_TIMEOUT_BOOKMARK`] before the watch's `deadline`, so the
/// client learns a recent revision just before the server ends the watch; none once that moment
/// has passed.
pub(crate) fn next_bookmark_time(
    now: Instant,
    every: Duration,
    deadline: Option<Instant>,
) -> Option<Instant> {
    let periodic = now + every;
    let Some(deadline) = deadline else {
        return Some(periodic);
    };
    let due = periodic.min(deadline.checked_sub(PRE_TIMEOUT_BOOKMARK)?);
    (due >= now).then_some(due)
}

/// The groups filed under one scope.
#[derive(Default)]
struct ScopeIndex {
    /// Groups without a trigger value: tested against every event in the scope.
    any: HashSet<u64>,
    /// Groups by the trigger value their selector requires.
    by_trigger: HashMap<String, HashSet<u64>>,
}

/// A parcel due to one watcher.
pub(crate) struct Due<K> {
    pub(crate) id: u64,
    pub(crate) sender: mpsc::Sender<Parcel<K>>,
    pub(crate) parcel: Parcel<K>,
}

/// Every watcher of one cache.
pub(crate) struct Watchers<K> {
    next_id: u64,
    groups: HashMap<u64, Group<K>>,
    group_of_key: HashMap<GroupKey, u64>,
    /// The group of each watcher.
    member_of: HashMap<u64, u64>,
    scopes: HashMap<String, ScopeIndex>,
    trigger: Option<Trigger>,
    /// The cache's own directory: scopes below it are looked up for each event.
    root: String,
}

impl<K: Object> Watchers<K> {
    pub(crate) fn new(root: String, trigger: Option<Trigger>) -> Self {
        Watchers {
            next_id: 0,
            groups: HashMap::new(),
            group_of_key: HashMap::new(),
            member_of: HashMap::new(),
            scopes: HashMap::new(),
            trigger,
            root,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.member_of.len()
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Files a watcher of `scope` (a key, or a directory ending in `/`) and returns its id.
    /// With `bookmarks`, it gets one that often and one just before its `deadline`.
    pub(crate) fn add(
        &mut self,
        scope: String,
        predicate: &SelectionPredicate,
        sender: mpsc::Sender<Parcel<K>>,
        bookmarks: Option<Duration>,
        deadline: Option<Instant>,
        now: Instant,
    ) -> u64 {
        let key = GroupKey {
            scope,
            label: predicate.label.to_string(),
            field: predicate.field.to_string(),
        };
        let group = match self.group_of_key.get(&key) {
            Some(group) => *group,
            None => self.add_group(key, predicate),
        };
        let id = self.fresh_id();
        if let Some(group) = self.groups.get_mut(&group) {
            group.members.insert(
                id,
                Member {
                    sender,
                    next_bookmark: bookmarks
                        .and_then(|every| next_bookmark_time(now, every, deadline)),
                    deadline,
                },
            );
        }
        self.member_of.insert(id, group);
        id
    }

    fn add_group(&mut self, key: GroupKey, predicate: &SelectionPredicate) -> u64 {
        let id = self.fresh_id();
        let trigger = self
            .trigger
            .as_ref()
            .and_then(|trigger| trigger.required_by(predicate));
        let index = self.scopes.entry(key.scope.clone()).or_default();
        match &trigger {
            Some(value) => {
                index
                    .by_trigger
                    .entry(value.clone())
                    .or_default()
                    .insert(id);
            }
            None => {
                index.any.insert(id);
            }
        }
        self.group_of_key.insert(key.clone(), id);
        self.groups.insert(
            id,
            Group {
                key,
                predicate: SelectionPredicate {
                    label: predicate.label.clone(),
                    field: predicate.field.clone(),
                    ..SelectionPredicate::default()
                },
                trigger,
                members: HashMap::new(),
            },
        );
        id
    }

    /// Unfiles a watcher (its sender is dropped: its stream ends after what it holds).
    pub(crate) fn remove(&mut self, id: u64) {
        let Some(group_id) = self.member_of.remove(&id) else {
            return;
        };
        let Some(group) = self.groups.get_mut(&group_id) else {
            return;
        };
        group.members.remove(&id);
        if !group.members.is_empty() {
            return;
        }
        let Some(group) = self.groups.remove(&group_id) else {
            return;
        };
        self.group_of_key.remove(&group.key);
        if let Some(index) = self.scopes.get_mut(&group.key.scope) {
            match &group.trigger {
                Some(value) => {
                    if let Some(ids) = index.by_trigger.get_mut(value) {
                        ids.remove(&group_id);
                        if ids.is_empty() {
                            index.by_trigger.remove(value);
                        }
                    }
                }
                None => {
                    index.any.remove(&group_id);
                }
            }
            if index.any.is_empty() && index.by_trigger.is_empty() {
                self.scopes.remove(&group.key.scope);
            }
        }
    }

    /// Ends every watcher (the cache re-listed: they resume from their last revision).
    pub(crate) fn clear(&mut self) {
        self.groups.clear();
        self.group_of_key.clear();
        self.member_of.clear();
        self.scopes.clear();
    }

    /// The parcels a batch of events makes: each group that wants any of them gets one list,
    /// shared by its members.
    pub(crate) fn deliveries(&self, events: &[Arc<CachedEvent<K>>]) -> Vec<Due<K>> {
        let mut lists: HashMap<u64, Vec<Delivery<K>>> = HashMap::new();
        for event in events {
            for group_id in self.groups_for(event) {
                let Some(group) = self.groups.get(&group_id) else {
                    continue;
                };
                if let Some(delivery) = transition(&group.predicate, event) {
                    lists.entry(group_id).or_default().push(delivery);
                }
            }
        }
        let mut due = Vec::new();
        for (group_id, list) in lists {
            let Some(group) = self.groups.get(&group_id) else {
                continue;
            };
            let parcel: Parcel<K> = list.into();
            for (id, member) in &group.members {
                due.push(Due {
                    id: *id,
                    sender: member.sender.clone(),
                    parcel: parcel.clone(),
                });
            }
        }
        due
    }

    /// The groups that may want `event`: filed under its key or a directory above it, without
    /// a trigger value or with one the object had or has.
    fn groups_for(&self, event: &CachedEvent<K>) -> HashSet<u64> {
        let mut values: Vec<&str> = Vec::with_capacity(2);
        if let Some(trigger) = &self.trigger {
            for entry in std::iter::once(&event.current).chain(event.prior.as_ref()) {
                if let Some(value) = trigger.value_of(&entry.labels, &entry.fields) {
                    if !values.contains(&value) {
                        values.push(value);
                    }
                }
            }
        }
        let mut groups = HashSet::new();
        for scope in scopes_of(&event.current.key, &self.root) {
            let Some(index) = self.scopes.get(scope) else {
                continue;
            };
            groups.extend(index.any.iter().copied());
            for value in &values {
                if let Some(ids) = index.by_trigger.get(*value) {
                    groups.extend(ids.iter().copied());
                }
            }
        }
        groups
    }

    /// The watchers whose bookmark is due at `now`, rescheduled per [`next_bookmark_time`].
    pub(crate) fn due_bookmarks(
        &mut self,
        now: Instant,
        every: Duration,
    ) -> Vec<mpsc::Sender<Parcel<K>>> {
        let mut due = Vec::new();
        for group in self.groups.values_mut() {
            for member in group.members.values_mut() {
                if member.next_bookmark.is_some_and(|at| at <= now) {
                    member.next_bookmark = next_bookmark_time(now, every, member.deadline);
                    due.push(member.sender.clone());
                }
            }
        }
        due
    }
}

/// The scopes an event on `key` concerns: the key itself, and every directory from `root`
/// down to the key's parent.
fn scopes_of<'a>(key: &'a str, root: &str) -> impl Iterator<Item = &'a str> {
    let from = root.len().saturating_sub(1);
    let directories = key
        .char_indices()
        .skip_while(move |(index, _)| *index < from)
        .filter(|(_, c)| *c == '/')
        .map(move |(index, _)| &key[..=index]);
    std::iter::once(key).chain(directories)
}

/// The event a watcher with `predicate` gets for `event`, if any: objects entering the
/// selection are ADDED, leaving it DELETED (with the previous state at the event's revision).
pub(crate) fn transition<K: Object>(
    predicate: &SelectionPredicate,
    event: &CachedEvent<K>,
) -> Option<Delivery<K>> {
    let matches = |entry: &Entry<K>| predicate.matches(&entry.labels, &entry.fields);
    match event.change {
        Change::Added => {
            matches(&event.current).then(|| WatchEvent::Added(event.current.object.clone()))
        }
        Change::Deleted => {
            matches(&event.current).then(|| WatchEvent::Deleted(event.current.object.clone()))
        }
        Change::Modified => {
            if predicate.is_empty() {
                return Some(WatchEvent::Modified(event.current.object.clone()));
            }
            let was = event.prior.as_deref().is_some_and(matches);
            match (was, matches(&event.current)) {
                (true, true) => Some(WatchEvent::Modified(event.current.object.clone())),
                (false, true) => Some(WatchEvent::Added(event.current.object.clone())),
                (true, false) => event.prior_at_revision().map(WatchEvent::Deleted),
                (false, false) => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PRE_TIMEOUT_BOOKMARK, next_bookmark_time, scopes_of};
    use std::time::{Duration, Instant};

    #[test]
    fn the_last_bookmark_comes_just_before_the_deadline() {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        // No deadline: every minute.
        assert_eq!(next_bookmark_time(now, minute, None), Some(now + minute));
        // A far deadline does not move the periodic one.
        let far = now + Duration::from_secs(600);
        assert_eq!(
            next_bookmark_time(now, minute, Some(far)),
            Some(now + minute)
        );
        // A deadline within the period: 2 s before it.
        let near = now + Duration::from_secs(10);
        assert_eq!(
            next_bookmark_time(now, minute, Some(near)),
            Some(near - PRE_TIMEOUT_BOOKMARK)
        );
        // Once that moment has passed (the bookmark was sent), no more.
        let later = near - Duration::from_secs(1);
        assert_eq!(next_bookmark_time(later, minute, Some(near)), None);
        // A watch shorter than 2 s gets none.
        let short = now + Duration::from_secs(1);
        assert_eq!(next_bookmark_time(now, minute, Some(short)), None);
    }

    #[test]
    fn an_event_concerns_its_key_and_the_directories_above_it() {
        let scopes: Vec<&str> = scopes_of("/registry/pods/ns/a", "/registry/pods/").collect();
        assert_eq!(
            scopes,
            [
                "/registry/pods/ns/a",
                "/registry/pods/",
                "/registry/pods/ns/"
            ]
        );
    }
}
