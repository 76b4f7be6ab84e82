//! etcd v3 snapshots: the front's keys and leases as the file etcd's `Maintenance.Snapshot`
//! streams, and the way back from such a file (the front's or a real etcd's) into a store.
//!
//! A snapshot is a bbolt database in etcd's layout followed by the SHA-256 of the database
//! (etcd `server/etcdserver/api/v3rpc/maintenance.go`, `Snapshot`). The layout, from etcd's
//! `mvcc/kvstore.go`, `mvcc/revision.go` and `lease/lessor.go`:
//! - bucket `key`: one entry per key revision, keyed by the revision (8-byte big-endian main
//!   revision, `_`, 8-byte big-endian sub-revision, the write's index in its transaction), with
//!   a `t` appended for a deletion; the value is the `mvccpb.KeyValue` protobuf;
//! - bucket `lease`: the lease ID as 8 big-endian bytes, and the `leasepb.Lease` protobuf;
//! - bucket `meta`: `consistent_index`, `finishedCompactRev` and `scheduledCompactRev`.
//!
//! A snapshot of the front holds every live key once, as of one revision R, and records R as
//! the compaction revision. `etcdctl snapshot restore` turns it into the data directory of an
//! etcd member that answers from revision R on with the same keys, values, revisions, versions
//! and leases; reads of revisions before R are compacted there, as after an etcd compaction
//! at R. [`restore_snapshot`] goes the other way into an empty store of this project.
//!
//! Taking a snapshot holds the live keys in memory while they are sorted by revision, and
//! writes the database to an unnamed temporary file that is streamed and then removed.

pub(crate) mod bolt;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use etcd_client::proto::{PbKeyValue, PbResponseHeader, PbSnapshotResponse};
use futures::Stream;
use prost::Message;
use storage_api::{BatchBuffer, BatchWrite, Error, Expect, Interface, RangeRequest, Revision};
use tokio::io::AsyncReadExt;
use tonic::Status;

use crate::keys;
use crate::leases;
use crate::record::{EtcdKv, Record};
use crate::txn::MAX_TXN_OPS;
use bolt::{BoltReader, BoltWriter};

/// Bytes per `SnapshotResponse`, as etcd sends them.
const CHUNK: usize = 32 * 1024;
/// Length of the SHA-256 that ends a snapshot.
const HASH_LEN: usize = 32;
/// A restore's write batches stop growing at this many bytes (or [`MAX_TXN_OPS`] writes), under
/// etcd's default request limit for a store that is itself an etcd.
const RESTORE_BATCH_BYTES: usize = 1024 * 1024;
/// How often a snapshot is read again when a compaction overtook its revision.
const ATTEMPTS: usize = 3;

/// `leasepb.Lease`, as etcd stores a lease in its `lease` bucket.
#[derive(Clone, PartialEq, Message)]
struct LeaseRecord {
    #[prost(int64, tag = "1")]
    id: i64,
    /// The granted TTL in seconds.
    #[prost(int64, tag = "2")]
    ttl: i64,
    /// Seconds left when the lease was last checkpointed (0: never).
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

/// A snapshot database written to an unnamed temporary file (removed when dropped).
#[derive(Debug)]
pub(crate) struct Snapshot {
    file: File,
    len: u64,
    /// The revision the snapshot was taken at.
    pub(crate) revision: Revision,
}

/// The front's keys and leases at the latest revision, read consistently at one revision.
struct State {
    revision: Revision,
    /// `mod_revision`, the etcd key, and the `mvccpb.KeyValue` bytes.
    keys: Vec<(Revision, Vec<u8>, Vec<u8>)>,
    /// Lease ID and granted TTL.
    leases: Vec<(i64, i64)>,
}

/// Takes a snapshot of `store` at its latest revision.
#[tracing::instrument(level = "info", skip_all)]
pub(crate) async fn take(store: &dyn Interface) -> storage_api::Result<Snapshot> {
    let mut attempt = 1;
    let state = loop {
        match read_state(store).await {
            Err(Error::Compacted { .. }) if attempt < ATTEMPTS => attempt += 1,
            result => break result?,
        }
    };
    let revision = state.revision;
    let (file, len) = tokio::task::spawn_blocking(move || write_database(state))
        .await
        .map_err(|e| Error::internal(format!("the snapshot writer stopped: {e}")))?
        .map_err(|e| Error::internal(format!("cannot write the snapshot file: {e}")))?;
    tracing::info!(revision, bytes = len, "snapshot taken");
    Ok(Snapshot {
        file,
        len,
        revision,
    })
}

async fn read_state(store: &dyn Interface) -> storage_api::Result<State> {
    let mut keys = Vec::new();
    let revision = leases::scan(store, keys::KV_SPACE, None, |kv| {
        let etcd = EtcdKv::from_stored(kv)?;
        let pb = etcd.to_pb(0, false);
        keys.push((kv.mod_revision, etcd.key, pb.encode_to_vec()));
        Ok(())
    })
    .await?;
    let mut leases = Vec::new();
    leases::scan(store, keys::LEASE_SPACE, Some(revision), |kv| {
        leases.push(leases::parse_record(kv)?);
        Ok(())
    })
    .await?;
    Ok(State {
        revision,
        keys,
        leases,
    })
}

/// etcd's revision key: main revision, `_`, sub-revision.
fn revision_key(main: Revision, sub: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.extend_from_slice(&main.to_be_bytes());
    key.push(b'_');
    key.extend_from_slice(&sub.to_be_bytes());
    key
}

fn write_database(mut state: State) -> io::Result<(File, u64)> {
    let mut writer = BoltWriter::new(tempfile::tempfile()?)?;
    // Writes of one revision (one transaction) get sub-revisions in key order.
    state
        .keys
        .sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut previous = None;
    let mut sub = 0;
    let key_entries = state.keys.into_iter().map(|(revision, _, kv)| {
        sub = if previous == Some(revision) {
            sub + 1
        } else {
            0
        };
        previous = Some(revision);
        (revision_key(revision, sub), kv)
    });
    writer.bucket(b"key", key_entries)?;
    let mut lease_entries: Vec<(Vec<u8>, Vec<u8>)> = state
        .leases
        .into_iter()
        .map(|(id, ttl)| {
            let record = LeaseRecord {
                id,
                ttl,
                remaining_ttl: 0,
            };
            (id.to_be_bytes().to_vec(), record.encode_to_vec())
        })
        .collect();
    lease_entries.sort_unstable();
    writer.bucket(b"lease", lease_entries)?;
    let compacted = revision_key(state.revision, 0);
    writer.bucket(
        b"meta",
        [
            (
                b"consistent_index".to_vec(),
                state.revision.to_be_bytes().to_vec(),
            ),
            (b"finishedCompactRev".to_vec(), compacted.clone()),
            (b"scheduledCompactRev".to_vec(), compacted),
        ],
    )?;
    let (mut file, len) = writer.finish()?;
    file.seek(SeekFrom::Start(0))?;
    Ok((file, len))
}

/// The `SnapshotResponse` stream of `snapshot`: the database in [`CHUNK`]-byte pieces, each
/// with the bytes still to come, then its SHA-256 alone, as etcd sends them.
pub(crate) fn stream(
    snapshot: Snapshot,
    header: Option<PbResponseHeader>,
    version: &'static str,
) -> impl Stream<Item = Result<PbSnapshotResponse, Status>> + Send {
    struct Sending {
        file: Option<tokio::fs::File>,
        remaining: u64,
        digest: ring::digest::Context,
        header: Option<PbResponseHeader>,
    }
    let start = Sending {
        file: Some(tokio::fs::File::from_std(snapshot.file)),
        remaining: snapshot.len,
        digest: ring::digest::Context::new(&ring::digest::SHA256),
        header,
    };
    futures::stream::unfold(start, move |mut sending| async move {
        let mut file = sending.file.take()?;
        let blob = if sending.remaining == 0 {
            // The file is sent: the hash ends the stream.
            sending.digest.clone().finish().as_ref().to_vec()
        } else {
            let len = usize::try_from(sending.remaining).map_or(CHUNK, |left| left.min(CHUNK));
            let mut blob = vec![0; len];
            if let Err(error) = file.read_exact(&mut blob).await {
                let status = Status::internal(format!("cannot read the snapshot file: {error}"));
                return Some((Err(status), sending));
            }
            sending.digest.update(&blob);
            sending.remaining -= len as u64;
            sending.file = Some(file);
            blob
        };
        let response = PbSnapshotResponse {
            header: sending.header.take(),
            remaining_bytes: sending.remaining,
            blob,
            version: version.to_owned(),
        };
        Some((Ok(response), sending))
    })
}

/// What [`restore_snapshot`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// Live keys written.
    pub keys: usize,
    /// Leases written.
    pub leases: usize,
    /// The etcd revision the snapshot was taken at.
    pub snapshot_revision: i64,
    /// The store's revision after the restore.
    pub revision: Revision,
}

/// Why [`restore_snapshot`] failed. Nothing was written unless the error is
/// [`RestoreError::Store`], after which the store holds part of the snapshot and must be
/// removed before the restore is tried again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The file could not be read.
    #[error("cannot read the snapshot {path}: {source}")]
    Read {
        /// The snapshot file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The file is not a bbolt database in etcd's layout.
    #[error("{path} is not an etcd snapshot: {reason}")]
    NotSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The database does not match the SHA-256 at the end of the file.
    #[error("the snapshot {path} does not match the SHA-256 at its end: it is damaged")]
    HashMismatch {
        /// The snapshot file.
        path: PathBuf,
    },
    /// The file carries no SHA-256, as a database copied out of an etcd data directory.
    #[error(
        "{path} ends without the SHA-256 of a snapshot (a copy of an etcd member's \
         `member/snap/db`?); restore it with --skip-hash-check"
    )]
    MissingHash {
        /// The snapshot file.
        path: PathBuf,
    },
    /// The store already holds keys or leases of an etcd front.
    #[error("the store already holds etcd keys or leases; restore into an empty store")]
    NotEmpty,
    /// Writing to the store failed part-way.
    #[error("writing the restored keys to the store failed: {0}")]
    Store(#[from] Error),
}

/// What a snapshot file holds: the live keys, the leases and the revision.
struct Parsed {
    keys: Vec<PbKeyValue>,
    leases: Vec<LeaseRecord>,
    revision: i64,
}

/// Writes the keys and leases of an etcd snapshot (taken from this front or from a real etcd
/// with `etcdctl snapshot save`) into `store`, which must hold no etcd front data yet.
///
/// Keys keep their values, versions and leases, and are written in the order of their etcd
/// revisions; the revisions themselves are the store's, as every revision in this front is.
/// Leases start again with their full TTL when a front serves the store. The SHA-256 at the
/// end of the file is checked unless `skip_hash_check`, which a bare bbolt file (an etcd
/// member's `member/snap/db`) needs.
pub async fn restore_snapshot(
    store: &dyn Interface,
    path: &Path,
    skip_hash_check: bool,
) -> Result<Restored, RestoreError> {
    let owned = path.to_owned();
    let parsed = tokio::task::spawn_blocking(move || parse(&owned, skip_hash_check))
        .await
        .map_err(|e| RestoreError::Read {
            path: path.to_owned(),
            source: io::Error::other(e),
        })??;
    for prefix in [keys::KV_SPACE, keys::LEASE_SPACE] {
        if !store
            .range(RangeRequest::prefix(prefix).limit(1))
            .await?
            .kvs
            .is_empty()
        {
            return Err(RestoreError::NotEmpty);
        }
    }
    for lease in &parsed.leases {
        store
            .create(
                &keys::lease_key(lease.id),
                leases::encode_ttl(lease.ttl),
                None,
            )
            .await?;
    }
    let encoded = |kv: &PbKeyValue| {
        let record = Record {
            version: kv.version,
            lease: kv.lease,
            value: Bytes::copy_from_slice(&kv.value),
        };
        (keys::encode(&kv.key), record.encode())
    };
    let mut revision = store.current_revision().await?;
    if store.capabilities().atomic_batches {
        let mut batches = BatchBuffer::new(MAX_TXN_OPS, RESTORE_BATCH_BYTES);
        for kv in &parsed.keys {
            let (key, value) = encoded(kv);
            let write = BatchWrite::Put {
                key,
                value,
                expect: Expect::Absent,
            };
            if let Some(written) = batches.push(store, write).await? {
                revision = written;
            }
        }
        if let Some(written) = batches.flush(store).await? {
            revision = written;
        }
    } else {
        for kv in &parsed.keys {
            let (key, value) = encoded(kv);
            revision = store.create(&key, value, None).await?;
        }
    }
    Ok(Restored {
        keys: parsed.keys.len(),
        leases: parsed.leases.len(),
        snapshot_revision: parsed.revision,
        revision,
    })
}

fn parse(path: &Path, skip_hash_check: bool) -> Result<Parsed, RestoreError> {
    let read = |source: io::Error| {
        if source.kind() == io::ErrorKind::InvalidData {
            RestoreError::NotSnapshot {
                path: path.to_owned(),
                reason: source.to_string(),
            }
        } else {
            RestoreError::Read {
                path: path.to_owned(),
                source,
            }
        }
    };
    let not_snapshot = |reason: String| RestoreError::NotSnapshot {
        path: path.to_owned(),
        reason,
    };
    let mut file = File::open(path).map_err(read)?;
    let len = file.metadata().map_err(read)?.len();
    // etcd's test for a trailing hash: bbolt files are whole pages (multiples of 512 bytes).
    let has_hash = len % 512 == HASH_LEN as u64;
    if !skip_hash_check {
        if !has_hash {
            return Err(RestoreError::MissingHash {
                path: path.to_owned(),
            });
        }
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut left = len - HASH_LEN as u64;
        let mut buffer = vec![0; CHUNK];
        while left > 0 {
            let take = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            file.read_exact(&mut buffer[..take]).map_err(read)?;
            digest.update(&buffer[..take]);
            left -= take as u64;
        }
        let mut expected = [0; HASH_LEN];
        file.read_exact(&mut expected).map_err(read)?;
        if digest.finish().as_ref() != expected {
            return Err(RestoreError::HashMismatch {
                path: path.to_owned(),
            });
        }
    }
    let reader = BoltReader::open(&file).map_err(read)?;
    let key_bucket = reader
        .bucket(b"key")
        .map_err(read)?
        .ok_or_else(|| not_snapshot("it has no `key` bucket".into()))?;
    let mut live: HashMap<Vec<u8>, PbKeyValue> = HashMap::new();
    let mut revision = 0_i64;
    reader
        .for_each(&key_bucket, |at, value, _| {
            let tombstone = match at.len() {
                17 => false,
                18 if at[17] == b't' => true,
                _ => return Err(bad_entry("key", at)),
            };
            let mut main = [0; 8];
            main.copy_from_slice(&at[..8]);
            revision = revision.max(i64::from_be_bytes(main));
            let kv = PbKeyValue::decode(value).map_err(|_| bad_entry("key", at))?;
            if tombstone {
                live.remove(&kv.key);
            } else {
                live.insert(kv.key.clone(), kv);
            }
            Ok(())
        })
        .map_err(read)?;
    let mut leases = Vec::new();
    if let Some(bucket) = reader.bucket(b"lease").map_err(read)? {
        reader
            .for_each(&bucket, |id, value, _| {
                let lease = LeaseRecord::decode(value).map_err(|_| bad_entry("lease", id))?;
                leases.push(lease);
                Ok(())
            })
            .map_err(read)?;
    }
    if let Some(bucket) = reader.bucket(b"meta").map_err(read)? {
        reader
            .for_each(&bucket, |name, value, _| {
                if name == b"finishedCompactRev" && value.len() >= 8 {
                    let mut main = [0; 8];
                    main.copy_from_slice(&value[..8]);
                    revision = revision.max(i64::from_be_bytes(main));
                }
                Ok(())
            })
            .map_err(read)?;
    }
    let mut keys: Vec<PbKeyValue> = live.into_values().collect();
    keys.sort_unstable_by(|a, b| (a.mod_revision, &a.key).cmp(&(b.mod_revision, &b.key)));
    Ok(Parsed {
        keys,
        leases,
        revision,
    })
}

fn bad_entry(bucket: &str, key: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("entry {key:02x?} of its `{bucket}` bucket is not in etcd's format"),
    )
}
