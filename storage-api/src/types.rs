//! Plain data types of the contract: stored values, requests, responses and watch events.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::error::{Error, Result};
use crate::key::{validate_key, validate_prefix};

/// A store revision. Strictly increasing, global to the store, never 0 for a real write.
pub type Revision = u64;

/// One version of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key.
    pub key: String,
    /// The stored bytes, exactly as written.
    pub value: Bytes,
    /// The revision that created this incarnation of the key.
    pub create_revision: Revision,
    /// The revision of the last write to the key (equal to `create_revision` right after create).
    pub mod_revision: Revision,
}

/// The condition a write places on the key's current `mod_revision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Write whatever the current revision is (the key must still exist).
    None,
    /// Write only if the key's `mod_revision` is exactly this.
    ModRevision(Revision),
}

/// The answer to a `get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResponse {
    /// The store revision the read was served at: the requested one, or the current one for a
    /// latest read.
    pub revision: Revision,
    /// The key's value at that revision, if it existed then.
    pub kv: Option<KeyValue>,
}

/// The answer to a successful `delete`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteResponse {
    /// The revision of the delete itself.
    pub revision: Revision,
    /// The value the key had just before it was deleted.
    pub prev: KeyValue,
}

/// An ordered read of the keys under a prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// Only keys starting with these bytes are returned. A caller listing a directory passes the
    /// trailing `/` itself (`/pods/ns/`), so `/pods/ns-2/x` is not included.
    pub prefix: String,
    /// Where to start, inclusive: a position in key order rather than a key, so it is not
    /// validated like one (pagers pass `last_key + "\0"`). Must start with `prefix`: a start
    /// outside the prefix, the empty string included (unless the prefix is empty too), is
    /// [`Error::InvalidArgument`] (see [`RangeRequest::validate`]).
    pub start: Option<String>,
    /// Read at this exact revision; `None` reads at the latest one.
    pub revision: Option<Revision>,
    /// Return at most this many keys; `None` or `Some(0)` returns all of them.
    pub limit: Option<u64>,
    /// Skip the values and return only the count (`kvs` is empty).
    pub count_only: bool,
}

impl RangeRequest {
    /// A range over every key under `prefix`, at the latest revision.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        RangeRequest {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// This request, starting at `start` (inclusive).
    pub fn start(mut self, start: impl Into<String>) -> Self {
        self.start = Some(start.into());
        self
    }

    /// This request, read at the exact revision `revision`.
    pub fn at(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }

    /// This request, returning at most `limit` keys.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// This request, returning only the count.
    pub fn count_only(mut self) -> Self {
        self.count_only = true;
        self
    }

    /// Checks the request as every backend must before reading: the prefix passes
    /// [`validate_prefix`], and a start position lies inside the prefix. The empty start is
    /// outside any non-empty prefix: it would silently mean "from the beginning of the whole
    /// keyspace", which no pager asks for.
    pub fn validate(&self) -> Result<()> {
        validate_prefix(&self.prefix)?;
        match &self.start {
            Some(start) if !start.starts_with(self.prefix.as_str()) => {
                Err(Error::InvalidArgument(format!(
                    "range start {start:?} is outside the prefix {:?}",
                    self.prefix
                )))
            }
            _ => Ok(()),
        }
    }

    /// The first position the range reads: `start` when given, else `prefix` (after
    /// [`RangeRequest::validate`], `start` is never before `prefix`).
    pub fn first_key(&self) -> &str {
        self.start.as_deref().unwrap_or(&self.prefix)
    }
}

/// The answer to a range read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The revision of the snapshot that was read (the requested one, or the current one).
    pub revision: Revision,
    /// The keys found, in ascending byte order of key, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// Whether keys after the last returned one remain in the range.
    pub more: bool,
    /// How many keys the range holds from `start` to its end at that revision, including the
    /// ones returned (etcd's `count`). `count - kvs.len()` keys remain.
    pub count: u64,
}

/// What to watch, and from when.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchRequest {
    /// The exact key, or the prefix when `prefix` is set.
    pub key: String,
    /// Watch every key starting with `key` instead of `key` alone.
    pub prefix: bool,
    /// Deliver every event with a revision strictly greater than this. `None` means "from now":
    /// the events of writes that commit after the watch is established.
    pub start_revision: Option<Revision>,
    /// Also deliver [`WatchEvent::Progress`] events from time to time, so an idle watcher learns
    /// the store's revision has moved on.
    pub progress_notify: bool,
}

impl WatchRequest {
    /// A watch of every key under `prefix`, from now.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        WatchRequest {
            key: prefix.into(),
            prefix: true,
            ..Self::default()
        }
    }

    /// A watch of the single key `key`, from now.
    pub fn key(key: impl Into<String>) -> Self {
        WatchRequest {
            key: key.into(),
            prefix: false,
            ..Self::default()
        }
    }

    /// This watch, delivering events after `revision` (exclusive).
    pub fn after(mut self, revision: Revision) -> Self {
        self.start_revision = Some(revision);
        self
    }

    /// This watch, with progress events.
    pub fn with_progress(mut self) -> Self {
        self.progress_notify = true;
        self
    }

    /// Checks the watched key ([`validate_key`]) or prefix ([`validate_prefix`]).
    pub fn validate(&self) -> Result<()> {
        if self.prefix {
            validate_prefix(&self.key)
        } else {
            validate_key(&self.key)
        }
    }

    /// Which keys this watch wants.
    pub fn filter(&self) -> KeyFilter {
        KeyFilter {
            key: self.key.clone(),
            prefix: self.prefix,
        }
    }
}

/// The keys one watch wants: one exact key, or every key under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFilter {
    /// The exact key, or the prefix when `prefix` is set.
    pub key: String,
    /// Match every key starting with `key`.
    pub prefix: bool,
}

impl KeyFilter {
    /// Whether `key` is one this filter wants.
    pub fn matches(&self, key: &str) -> bool {
        if self.prefix {
            key.starts_with(self.key.as_str())
        } else {
            key == self.key
        }
    }
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created (`prev` is `None`) or updated (`prev` is the value it replaced).
    Put {
        /// The new value; `kv.mod_revision` is the event's revision.
        kv: KeyValue,
        /// The value before this write, for updates.
        prev: Option<KeyValue>,
    },
    /// A key was deleted, by a caller or by TTL expiry.
    Delete {
        /// The deleted key.
        key: String,
        /// The revision of the delete.
        revision: Revision,
        /// The value the key had just before the delete.
        prev: KeyValue,
    },
    /// No event up to `revision` is still to come on this watch.
    Progress {
        /// The store revision at the time of the notification.
        revision: Revision,
    },
}

impl WatchEvent {
    /// The revision this event happened at (for progress events, the revision reported).
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } | WatchEvent::Progress { revision } => *revision,
        }
    }

    /// The key the event is about; `None` for progress events.
    pub fn key(&self) -> Option<&str> {
        match self {
            WatchEvent::Put { kv, .. } => Some(&kv.key),
            WatchEvent::Delete { key, .. } => Some(key),
            WatchEvent::Progress { .. } => None,
        }
    }
}

/// A stream of watch events. An `Err` item is terminal: the stream yields nothing after it.
/// Dropping the stream cancels the watch and frees its resources in the backend.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// Time-to-live of a written key; `None` means the key never expires.
pub type Ttl = Option<Duration>;
