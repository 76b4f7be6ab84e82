//! Options and results of the object-level storage operations.

use crate::error::{Result, StorageError};
use apimachinery::object::Object;
use apimachinery::selector::SelectionPredicate;
use apimachinery::status::ApiError;

/// Options of [`crate::Storage::get`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// Return `Ok(None)` instead of `KeyNotFound` for a missing key.
    pub ignore_not_found: bool,
    /// A not-older-than bound: `""` or `"0"` for none, otherwise a decimal revision; a bound above
    /// the store's revision fails with `TooLargeResourceVersion`.
    pub resource_version: String,
}

/// How a list or watch interprets its resourceVersion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ResourceVersionMatch {
    /// Not given: the legacy rules of the resourceVersion tables.
    #[default]
    Unset,
    /// The result must be at least as new as the resourceVersion.
    NotOlderThan,
    /// The result must be exactly at the resourceVersion.
    Exact,
    /// Anything else a client sent; rejected.
    Other(String),
}

impl ResourceVersionMatch {
    /// Parses the `resourceVersionMatch` query parameter (`""` is [`ResourceVersionMatch::Unset`]).
    pub fn parse(value: &str) -> Self {
        match value {
            "" => ResourceVersionMatch::Unset,
            "NotOlderThan" => ResourceVersionMatch::NotOlderThan,
            "Exact" => ResourceVersionMatch::Exact,
            other => ResourceVersionMatch::Other(other.to_owned()),
        }
    }
}

/// Options of [`crate::Storage::get_list`] and [`crate::Storage::watch`].
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// The resourceVersion parameter, as interpreted by [`crate::Storage::get_list`] and
    /// [`crate::Storage::watch`].
    pub resource_version: String,
    /// The resourceVersionMatch parameter.
    pub resource_version_match: ResourceVersionMatch,
    /// Selectors, limit, continue token and whether bookmarks are allowed.
    pub predicate: SelectionPredicate,
    /// List or watch everything under `key + "/"` rather than the single key.
    pub recursive: bool,
    /// Watch only: deliver progress bookmarks from the backend (internal use).
    pub progress_notify: bool,
    /// Watch only: send the current state as ADDED events first (`sendInitialEvents`).
    pub send_initial_events: Option<bool>,
    /// Watch only: when the caller will end the watch (its `timeoutSeconds`). The watch cache
    /// sends a watcher that allows bookmarks one about 2 s before it, so the client resumes from
    /// a recent revision (upstream's `cacheWatcher.nextBookmarkTime`).
    pub deadline: Option<std::time::Instant>,
}

/// The metadata of the current stored object passed to an update function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// Remaining TTL in seconds; always 0, as with Kubernetes' etcd3 store.
    pub ttl: i64,
    /// The object's current resourceVersion (0 when it does not exist yet).
    pub resource_version: u64,
}

/// Conditions an update or delete places on the current object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The object's `metadata.uid` must equal this.
    pub uid: Option<String>,
    /// The object's `metadata.resourceVersion` must equal this.
    pub resource_version: Option<String>,
}

impl Preconditions {
    /// Preconditions on the UID only.
    pub fn uid(uid: impl Into<String>) -> Self {
        Preconditions {
            uid: Some(uid.into()),
            resource_version: None,
        }
    }

    /// Checks `object` (stored under `key`), failing with `InvalidObj` as Kubernetes does.
    pub fn check<K: Object>(&self, key: &str, object: &K) -> Result<()> {
        let meta = object.meta();
        let revision = meta.resource_version.as_deref().unwrap_or_default();
        let resource_version = revision.parse().unwrap_or(0);
        if let Some(uid) = &self.uid {
            let actual = meta.uid.as_deref().unwrap_or_default();
            if uid != actual {
                return Err(StorageError::InvalidObj {
                    key: key.to_owned(),
                    resource_version,
                    message: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                    ),
                });
            }
        }
        if let Some(expected) = &self.resource_version {
            if expected != revision {
                return Err(StorageError::InvalidObj {
                    key: key.to_owned(),
                    resource_version,
                    message: format!(
                        "Precondition failed: ResourceVersion in precondition: {expected}, \
                         ResourceVersion in object meta: {revision}"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The result of [`crate::Storage::get_list`].
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectList<K> {
    /// The matching objects in key order; empty, never absent.
    pub items: Vec<K>,
    /// The revision of the snapshot the list was read at.
    pub resource_version: u64,
    /// A token to fetch the next page, when more keys remain.
    pub continue_token: Option<String>,
    /// How many more objects the list holds after this page; only for unfiltered lists.
    pub remaining_item_count: Option<i64>,
}

impl<K> ObjectList<K> {
    /// This list with each item turned into another form by `f` (the metadata unchanged).
    pub fn map<T>(self, f: impl FnMut(K) -> T) -> ObjectList<T> {
        ObjectList {
            items: self.items.into_iter().map(f).collect(),
            resource_version: self.resource_version,
            continue_token: self.continue_token,
            remaining_item_count: self.remaining_item_count,
        }
    }
}

/// Object count and average size for one resource ([`crate::Storage::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// How many objects are stored under the key.
    pub object_count: i64,
    /// Mean size in bytes of the stored (encoded and transformed) values, integer division.
    pub estimated_average_object_size_bytes: i64,
}

/// One event of an object watch.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent<K> {
    /// An object started matching: created, or updated into the selection.
    Added(K),
    /// A matching object changed and still matches.
    Modified(K),
    /// An object stopped matching: deleted (carrying the deletion revision), or updated out of
    /// the selection (carrying the old object with the new revision).
    Deleted(K),
    /// Progress: an empty object whose only content is a resourceVersion (and, for the end of
    /// initial events, the `k8s.io/initial-events-end` annotation).
    Bookmark(K),
    /// The watch failed; nothing follows. The Status the API sends as the ERROR event, mapped
    /// from the storage error as a REST request's would be (with its details).
    Error(ApiError),
}

impl<K> WatchEvent<K> {
    /// This event with its object (if any) turned into another form by `f`.
    pub fn map<T>(self, f: impl FnOnce(K) -> T) -> WatchEvent<T> {
        match self {
            WatchEvent::Added(object) => WatchEvent::Added(f(object)),
            WatchEvent::Modified(object) => WatchEvent::Modified(f(object)),
            WatchEvent::Deleted(object) => WatchEvent::Deleted(f(object)),
            WatchEvent::Bookmark(object) => WatchEvent::Bookmark(f(object)),
            WatchEvent::Error(error) => WatchEvent::Error(error),
        }
    }
}

/// The annotation on the bookmark that ends the initial events of a watch.
pub const INITIAL_EVENTS_END_ANNOTATION: &str = "k8s.io/initial-events-end";
