//! The watchers of one cache and how an event finds them: indexed by the key or directory they
//! watch and by the trigger value their selector requires, so an event is tested only against
//! watchers that can want it (upstream's `indexedWatchers` and `dispatchEvent`,
//! `pkg/storage/cacher/cacher.go`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use apimachinery::object::Object;
use apimachinery::selector::{Fields, Labels, SelectionPredicate};
use tokio::sync::mpsc;

use super::shared::Shared;
use super::state::{CachedEvent, Change, Entry};
use crate::options::WatchEvent;

/// What a cache watcher receives: events whose objects are shared with every other watcher.
pub(crate) type Delivery<K> = WatchEvent<Shared<K>>;

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

/// One registered watcher.
struct Watcher<K> {
    /// The full key watched, or the directory (ending in `/`) for a recursive watch.
    scope: String,
    predicate: SelectionPredicate,
    /// The trigger value the predicate requires (the index entry it is filed under).
    trigger: Option<String>,
    sender: mpsc::Sender<Delivery<K>>,
    /// When the next periodic bookmark is due; `None` for watchers that did not ask for them.
    next_bookmark: Option<Instant>,
    /// Events at or below this revision are not for this watcher (it starts after it).
    after: u64,
}

/// The watchers filed under one scope.
#[derive(Default)]
struct ScopeIndex {
    /// Watchers without a trigger value: tested against every event in the scope.
    any: HashSet<u64>,
    /// Watchers by the trigger value their selector requires.
    by_trigger: HashMap<String, HashSet<u64>>,
}

impl ScopeIndex {
    fn is_empty(&self) -> bool {
        self.any.is_empty() && self.by_trigger.is_empty()
    }
}

/// A delivery due to one watcher.
pub(crate) struct Due<K> {
    pub(crate) id: u64,
    pub(crate) sender: mpsc::Sender<Delivery<K>>,
    pub(crate) event: Delivery<K>,
}

/// Every watcher of one cache.
pub(crate) struct Watchers<K> {
    next_id: u64,
    watchers: HashMap<u64, Watcher<K>>,
    scopes: HashMap<String, ScopeIndex>,
    trigger: Option<Trigger>,
    /// The cache's own directory: scopes below it are looked up for each event.
    root: String,
}

impl<K: Object> Watchers<K> {
    pub(crate) fn new(root: String, trigger: Option<Trigger>) -> Self {
        Watchers {
            next_id: 0,
            watchers: HashMap::new(),
            scopes: HashMap::new(),
            trigger,
            root,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.watchers.len()
    }

    /// Files a watcher of `scope` (a key, or a directory ending in `/`) that wants the events
    /// after revision `after`, and returns its id.
    pub(crate) fn add(
        &mut self,
        scope: String,
        predicate: SelectionPredicate,
        after: u64,
        sender: mpsc::Sender<Delivery<K>>,
        bookmarks: Option<Duration>,
        now: Instant,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let trigger = self
            .trigger
            .as_ref()
            .and_then(|trigger| trigger.required_by(&predicate));
        let index = self.scopes.entry(scope.clone()).or_default();
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
        self.watchers.insert(
            id,
            Watcher {
                scope,
                predicate,
                trigger,
                sender,
                next_bookmark: bookmarks.map(|every| now + every),
                after,
            },
        );
        id
    }

    /// Unfiles a watcher (its sender is dropped: its stream ends after what it holds).
    pub(crate) fn remove(&mut self, id: u64) {
        let Some(watcher) = self.watchers.remove(&id) else {
            return;
        };
        if let Some(index) = self.scopes.get_mut(&watcher.scope) {
            match &watcher.trigger {
                Some(value) => {
                    if let Some(ids) = index.by_trigger.get_mut(value) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            index.by_trigger.remove(value);
                        }
                    }
                }
                None => {
                    index.any.remove(&id);
                }
            }
            if index.is_empty() {
                self.scopes.remove(&watcher.scope);
            }
        }
    }

    /// Ends every watcher (the cache re-listed: they resume from their last revision).
    pub(crate) fn clear(&mut self) {
        self.watchers.clear();
        self.scopes.clear();
    }

    /// What each watcher that wants `event` must receive.
    pub(crate) fn deliveries(&self, event: &CachedEvent<K>) -> Vec<Due<K>> {
        let key = event.current.key.as_str();
        let values: Vec<&str> = match &self.trigger {
            Some(trigger) => {
                let mut values = Vec::with_capacity(2);
                let entries = std::iter::once(&event.current).chain(event.prior.as_ref());
                for entry in entries {
                    if let Some(value) = trigger.value_of(&entry.labels, &entry.fields) {
                        if !values.contains(&value) {
                            values.push(value);
                        }
                    }
                }
                values
            }
            None => Vec::new(),
        };
        let mut due = Vec::new();
        for scope in scopes_of(key, &self.root) {
            let Some(index) = self.scopes.get(scope) else {
                continue;
            };
            let triggered = values
                .iter()
                .filter_map(|value| index.by_trigger.get(*value))
                .flatten();
            for id in index.any.iter().chain(triggered) {
                let Some(watcher) = self.watchers.get(id) else {
                    continue;
                };
                if event.revision <= watcher.after {
                    continue;
                }
                if let Some(delivery) = transition(&watcher.predicate, event) {
                    due.push(Due {
                        id: *id,
                        sender: watcher.sender.clone(),
                        event: delivery,
                    });
                }
            }
        }
        due
    }

    /// The watchers whose periodic bookmark is due at `now`, rescheduled `every` later.
    pub(crate) fn due_bookmarks(
        &mut self,
        now: Instant,
        every: Duration,
    ) -> Vec<(u64, mpsc::Sender<Delivery<K>>)> {
        let mut due = Vec::new();
        for (id, watcher) in &mut self.watchers {
            if let Some(at) = watcher.next_bookmark.as_mut() {
                if *at <= now {
                    *at = now + every;
                    due.push((*id, watcher.sender.clone()));
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
    use super::scopes_of;

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
