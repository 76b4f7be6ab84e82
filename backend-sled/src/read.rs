//! Reads at one revision, served from the `versions` index (blocking; run on the blocking pool).
//!
//! Every read picks a revision `R` (the requested one, or the published one for "latest") and
//! looks only at versions with a revision `<= R`, so writes committing meanwhile are invisible
//! and a range is a consistent snapshot. Compaction only removes versions no read at or after
//! the compaction revision needs; a read re-checks the compaction revision after it finished
//! and reports `Compacted` if compaction overtook it.

use std::sync::atomic::Ordering;

use storage_api::{
    Error, GetResponse, KeyFilter, KeyValue, RangeRequest, RangeResponse, Result, Revision,
    WatchEvent, prefix_range_end,
};

use crate::codec::{self, Op};
use crate::database::Trees;
use crate::keys;
use crate::store::{Shared, sled_error};

/// How often a latest read restarts at a newer revision when compaction overtakes it.
const LATEST_RETRIES: usize = 3;

/// Resolves the revision a read is served at, checking it against the store's bounds.
fn read_revision(shared: &Shared, requested: Option<Revision>) -> Result<Revision> {
    let current = shared.hub.published();
    let compacted = shared.compacted.load(Ordering::SeqCst);
    match requested {
        None => Ok(current),
        Some(requested) if requested > current => Err(Error::FutureRevision { requested, current }),
        Some(requested) if requested < compacted => Err(Error::Compacted {
            requested,
            compacted,
        }),
        Some(requested) => Ok(requested),
    }
}

/// Fails with `Compacted` if compaction moved past `at` (so the read may have missed data).
pub(crate) fn recheck_compacted(shared: &Shared, at: Revision) -> Result<()> {
    let compacted = shared.compacted.load(Ordering::SeqCst);
    if at < compacted {
        return Err(Error::Compacted {
            requested: at,
            compacted,
        });
    }
    Ok(())
}

/// Runs `read` at the requested revision (or the latest one), retrying a latest read that
/// compaction overtook at a newer revision.
fn at_revision<T>(
    shared: &Shared,
    requested: Option<Revision>,
    read: impl Fn(Revision) -> Result<T>,
) -> Result<(Revision, T)> {
    let mut attempt = 0;
    loop {
        let revision = read_revision(shared, requested)?;
        let result = read(revision);
        match recheck_compacted(shared, revision) {
            Ok(()) => return result.map(|value| (revision, value)),
            Err(error) if requested.is_some() || attempt >= LATEST_RETRIES => return Err(error),
            Err(_) => attempt += 1,
        }
    }
}

/// The version of `key` visible at `revision`, as stored (put or tombstone).
pub(crate) fn version_at(
    trees: &Trees,
    key: &str,
    revision: Revision,
) -> Result<Option<(Revision, codec::Version)>> {
    let low = keys::version_key(key, 0);
    let high = keys::version_key(key, revision);
    match trees.versions.range(low..=high).next_back() {
        None => Ok(None),
        Some(entry) => {
            let (raw_key, raw_value) = entry.map_err(|e| sled_error("reading sled versions", e))?;
            let (_, version_revision) = keys::parse_version_key(&raw_key)?;
            Ok(Some((version_revision, codec::decode_version(&raw_value)?)))
        }
    }
}

/// The exact version `key@revision`, which must exist and be a put (a `prev` of an event).
pub(crate) fn put_version(trees: &Trees, key: &str, revision: Revision) -> Result<KeyValue> {
    let raw = trees
        .versions
        .get(keys::version_key(key, revision))
        .map_err(|e| sled_error("reading sled versions", e))?
        .ok_or_else(|| {
            Error::internal(format!(
                "sled store lacks version {revision} of {key:?} that the log refers to"
            ))
        })?;
    let version = codec::decode_version(&raw)?;
    into_kv(key, revision, version).ok_or_else(|| {
        Error::internal(format!(
            "sled store has a tombstone where the log expects a value ({key:?}@{revision})"
        ))
    })
}

fn into_kv(key: &str, revision: Revision, version: codec::Version) -> Option<KeyValue> {
    match version.op {
        Op::Put => Some(KeyValue {
            key: key.to_owned(),
            value: version.value,
            create_revision: version.create_revision,
            mod_revision: revision,
        }),
        Op::Delete => None,
    }
}

/// `get`, at the requested revision or the latest one.
pub(crate) fn get(shared: &Shared, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
    let database = shared.database()?;
    let (revision, kv) = at_revision(shared, revision, |at| {
        Ok(version_at(&database.trees, key, at)?
            .and_then(|(rev, version)| into_kv(key, rev, version)))
    })?;
    Ok(GetResponse { revision, kv })
}

/// `range`, at the requested revision or the latest one. The request is already validated.
pub(crate) fn range(shared: &Shared, request: &RangeRequest) -> Result<RangeResponse> {
    let database = shared.database()?;
    let (revision, (kvs, count)) = at_revision(shared, request.revision, |at| {
        range_at(&database.trees, request, at)
    })?;
    let more = !request.count_only && (kvs.len() as u64) < count;
    Ok(RangeResponse {
        revision,
        kvs,
        more,
        count,
    })
}

/// One scan of the versions index over the range, keeping per key the newest version
/// `<= revision`. Returns the key-values within the limit and the count of live keys.
fn range_at(
    trees: &Trees,
    request: &RangeRequest,
    revision: Revision,
) -> Result<(Vec<KeyValue>, u64)> {
    let lower: Vec<u8> = request.first_key().as_bytes().to_vec();
    let iter = match prefix_range_end(request.prefix.as_bytes()) {
        Some(upper) => trees.versions.range(lower.clone()..upper),
        None => trees.versions.range(lower.clone()..),
    };
    let limit = match request.limit {
        Some(0) | None => usize::MAX,
        Some(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
    };
    let mut kvs = Vec::new();
    let mut count = 0_u64;
    // The key being scanned and its newest version <= revision so far.
    let mut current: Option<(String, Option<(Revision, sled::IVec)>)> = None;
    let mut finish = |entry: Option<(String, Option<(Revision, sled::IVec)>)>| -> Result<()> {
        if let Some((key, Some((rev, raw)))) = entry {
            if codec::decode_version_op(&raw)? == Op::Put {
                count += 1;
                if !request.count_only && kvs.len() < limit {
                    if let Some(kv) = into_kv(&key, rev, codec::decode_version(&raw)?) {
                        kvs.push(kv);
                    }
                }
            }
        }
        Ok(())
    };
    for entry in iter {
        let (raw_key, raw_value) = entry.map_err(|e| sled_error("scanning sled versions", e))?;
        let (key, rev) = keys::parse_version_key(&raw_key)?;
        if key.as_bytes() < lower.as_slice() {
            // Only possible when the start position contains a NUL (`last_key\0`): the
            // versions of `last_key` itself sort after it.
            continue;
        }
        let same_key = matches!(&current, Some((k, _)) if k == key);
        if !same_key {
            finish(current.take())?;
            current = Some((key.to_owned(), None));
        }
        if rev <= revision {
            if let Some((_, newest)) = current.as_mut() {
                *newest = Some((rev, raw_value));
            }
        }
    }
    finish(current.take())?;
    Ok((kvs, count))
}

/// The events in `(after, upto]` that `filter` wants, reading at most `max` log entries.
/// Returns them with the last revision covered (`upto` when the log had no more entries).
pub(crate) fn events(
    shared: &Shared,
    filter: &KeyFilter,
    after: Revision,
    upto: Revision,
    max: usize,
) -> Result<(Vec<WatchEvent>, Revision)> {
    let result = events_unchecked(&shared.database()?.trees, filter, after, upto, max);
    // A compaction past `after` may have removed entries we needed: report that, not the
    // missing-record error it may have caused.
    recheck_compacted(shared, after)?;
    result
}

pub(crate) fn events_unchecked(
    trees: &Trees,
    filter: &KeyFilter,
    after: Revision,
    upto: Revision,
    max: usize,
) -> Result<(Vec<WatchEvent>, Revision)> {
    let mut events = Vec::new();
    if after >= upto {
        return Ok((events, after));
    }
    let mut last = after;
    let low = keys::revision_key(after.saturating_add(1));
    let high = keys::revision_key(upto);
    for (scanned, entry) in trees.log.range(low..=high).enumerate() {
        if scanned == max {
            return Ok((events, last));
        }
        let (raw_revision, raw_record) = entry.map_err(|e| sled_error("scanning sled log", e))?;
        let revision = keys::parse_u64("log key", &raw_revision)?;
        last = revision;
        for record in codec::decode_log_entry(&raw_record)? {
            if !filter.matches(&record.key) {
                continue;
            }
            let prev = match record.prev {
                0 => None,
                prev => Some(put_version(trees, &record.key, prev)?),
            };
            let event = match record.op {
                Op::Put => WatchEvent::Put {
                    kv: put_version(trees, &record.key, revision)?,
                    prev,
                },
                Op::Delete => WatchEvent::Delete {
                    prev: prev.ok_or_else(|| {
                        Error::internal(format!(
                            "sled log entry {revision} deletes {:?} without a previous value",
                            record.key
                        ))
                    })?,
                    key: record.key,
                    revision,
                },
            };
            events.push(event);
        }
    }
    Ok((events, upto))
}
