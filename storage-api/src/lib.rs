//! The byte-level storage contract of the stack.
//!
//! Backends (memory, SQLite, etcd, sled, or your own) implement [`Interface`]: a revisioned,
//! etcd-shaped key-value store with compare-and-swap writes, reads at an exact past revision and
//! watch streams. Everything Kubernetes-specific (objects, resourceVersion strings, selectors,
//! continue tokens) is written once above this contract, in the `registry` crate.
//!
//! The contract in one paragraph: the store has one global revision counter. Every write
//! (create, update, delete, TTL expiry) takes the next revision; a key's `mod_revision` is the
//! revision of its last write and `create_revision` the revision that created it. Reads are served
//! at the latest revision or at an exact past one; revisions below the compaction point fail with
//! [`Error::Compacted`], revisions above the current one with [`Error::FutureRevision`]. Watches
//! deliver every change after an exclusive start revision, in order, exactly once, each with the
//! previous value, and end with a terminal error rather than skip an event.
//!
//! The conformance suite (`conformance` crate) is the executable version of this contract.

mod batch;
mod capabilities;
mod error;
#[cfg(test)]
mod fake;
mod interface;
mod key;
mod observed;
mod prefixed;
mod progress;
mod types;
mod watch_hub;

pub use batch::{BatchBuffer, BatchWrite, Expect, validate_batch};
pub use capabilities::Capabilities;
pub use error::{Error, Result};
pub use interface::{Interface, InterfaceExt};
pub use key::{prefix_range_end, validate_key, validate_prefix};
pub use observed::{Finished, Observed, Observer, Operation, Outcome};
pub use prefixed::Prefixed;
pub use progress::{ProgressRequests, ProgressSubscription};
pub use types::{
    DeleteResponse, GetResponse, KeyFilter, KeyValue, Precondition, RangeRequest, RangeResponse,
    Revision, Ttl, WatchEvent, WatchRequest, WatchStream,
};
pub use watch_hub::{
    HISTORY_PAGE, HistoryPage, HistoryRead, WatchHistory, WatchHub, WatchSettings,
};
