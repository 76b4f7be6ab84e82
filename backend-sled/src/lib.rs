//! The storage [`Interface`](storage_api::Interface) on [sled](https://docs.rs/sled/0.34), an
//! embedded pure-Rust key-value store: `sled://PATH?OPTIONS` in the `storage` facade.
//!
//! Open a store with [`SledStore::open`] and [`SledOptions`] (or [`SledOptions::from_query`]
//! for the URL's query string), then share it as `Arc<dyn Interface>`.
//!
//! # Layout
//!
//! One sled database directory holds five trees:
//!
//! - `log`: big-endian revision -> (key, put or delete, the key's previous revision). The
//!   revision-ordered history that watches replay.
//! - `versions`: `key \0 big-endian revision` -> a put (create revision and value) or a
//!   tombstone. Every value is stored once, here. Reads at any revision seek or scan this
//!   index for the newest version at or below the revision.
//! - `state`: key -> the live key's create and mod revisions and expiry.
//! - `ttl`: big-endian expiry (ms since the Unix epoch) + key, for keys with a TTL.
//! - `meta`: schema version, current revision, compaction revision and progress.
//!
//! Records are encoded with `bincode` behind one module (`codec`), keys by a fixed
//! order-preserving layout (`keys`).
//!
//! # Writes, durability and revisions
//!
//! One writer thread owns all writes. Each write is checked against the live state (create
//! needs an absent key, update and delete a present one and a matching mod revision), takes the
//! next revision and is committed as one sled transaction over every tree it touches, so a
//! crash never leaves a half-applied write. Writes that arrive while the writer is busy are
//! committed one by one (each with its own check and revision) and then made durable together
//! by one flush: group commit.
//!
//! A write is acknowledged, shown to readers and sent to watchers only after that flush (see
//! [`Durability`] for exactly what each mode guarantees; the default, `sync=fsync`, survives a
//! process crash and, for values below sled's blob threshold, power loss). Readers are served at
//! the published revision, so nobody observes a write that a crash could still take back, and a
//! revision once observed is never reused.
//!
//! # Watches
//!
//! A watch from a past revision first replays the log (in steps, on the blocking pool), then
//! registers for live events and hands over without gap or duplicate. Each watcher has a bounded
//! buffer ([`SledOptions::watch_buffer`]); a watcher that falls behind by more ends with
//! `Unavailable` after its buffered events and resumes from the last revision it saw.
//!
//! # Compaction and TTL
//!
//! `compact(rev)` moves the compaction revision durably, then the writer deletes, in small
//! transactions between batches, every version that no read at or after `rev` can see, plus the
//! log entries below `rev`. A background compactor does the same periodically, keeping at least
//! [`SledOptions::history`] and [`SledOptions::min_history`] revisions. Keys with a TTL store
//! their expiry (wall-clock time) durably; the writer deletes them when due, also after a
//! restart, each as an ordinary delete event with its own revision.
//!
//! # Space and failures
//!
//! sled 0.34 frees a log segment only once at most half of it is live, so the writer checks the
//! directory's size against its contents and, past [`SledOptions::rewrite_percent`], rewrites
//! it into a fresh directory and swaps it in, crash-safely (`database`). A failed flush (a full
//! disk) makes sled refuse every later write: the store then refuses writes with that error,
//! keeps serving reads and watches at the last durable revision, and reopens the directory once
//! there is room, publishing what reached the disk.

mod codec;
mod database;
mod keys;
mod options;
mod read;
mod store;
mod watch;
mod writer;

pub use options::{Durability, SledOptions};
pub use store::{SledStats, SledStore, bump_revision};
