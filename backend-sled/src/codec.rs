//! The encoding of every record the backend stores as a sled *value*.
//!
//! This is the only module that knows the byte format of records (currently `bincode` 2 through
//! serde, with the standard configuration). Swapping the encoding means changing this file and
//! bumping [`crate::keys::SCHEMA_VERSION`]; nothing else in the crate looks inside a value.
//!
//! Keys are not encoded here: their layout (big-endian revisions, `key\0revision`) must sort in
//! a fixed order and lives in [`crate::keys`].
//!
//! Decoding never panics: a record that does not parse (a corrupted or foreign store) is an
//! [`storage_api::Error::Internal`] naming the record.

use bincode::config::{Configuration, standard};
use serde::{Deserialize, Serialize};
use storage_api::{Error, Result, Revision};

fn config() -> Configuration {
    standard()
}

/// What a revision did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Op {
    /// A create or an update.
    Put,
    /// A delete (by a caller or by TTL expiry).
    Delete,
}

/// One entry of the revision log (`log` tree, keyed by the big-endian revision).
///
/// The value written lives once, in the version record of the `versions` tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogRecord {
    /// The key written.
    pub key: String,
    /// What the write did.
    pub op: Op,
    /// The key's `mod_revision` before this write; 0 when the key did not exist.
    pub prev: Revision,
}

/// The fixed part of a version record (`versions` tree, keyed by `key\0<revision>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct VersionHeader {
    op: Op,
    create_revision: Revision,
}

/// One version of one key, as stored in the `versions` tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    /// Put or tombstone.
    pub op: Op,
    /// The create revision of the incarnation (0 for tombstones).
    pub create_revision: Revision,
    /// The stored bytes (empty for tombstones).
    pub value: bytes::Bytes,
}

/// The live state of a key (`state` tree, keyed by the key itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateRecord {
    /// The revision that created this incarnation.
    pub create_revision: Revision,
    /// The revision of the last write.
    pub mod_revision: Revision,
    /// When the key expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<u64>,
}

fn encode<T: Serialize>(what: &str, record: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(record, config())
        .map_err(|e| Error::internal_from(format!("encoding a {what} record"), e))
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<(T, usize)> {
    bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| Error::internal_from(format!("corrupt {what} record in the sled store"), e))
}

fn decode_exact<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T> {
    let (record, used) = decode(what, bytes)?;
    if used != bytes.len() {
        return Err(Error::internal(format!(
            "corrupt {what} record in the sled store: {} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(record)
}

/// Encodes a log record.
pub(crate) fn encode_log(record: &LogRecord) -> Result<Vec<u8>> {
    encode("log", record)
}

/// Decodes a log record.
pub(crate) fn decode_log(bytes: &[u8]) -> Result<LogRecord> {
    decode_exact("log", bytes)
}

/// The first byte of a log entry holding the records of an atomic batch. A single record
/// never starts with it: a record starts with its key's length as a bincode varint, whose
/// first byte is at most 254.
const BATCH_MARK: u8 = 0xff;

/// Encodes the log entry of an atomic batch: every record at one revision.
pub(crate) fn encode_log_batch(records: &[LogRecord]) -> Result<Vec<u8>> {
    let mut out = vec![BATCH_MARK];
    out.extend(encode("log batch", &records)?);
    Ok(out)
}

/// Decodes a log entry: one record, or the records of an atomic batch.
pub(crate) fn decode_log_entry(bytes: &[u8]) -> Result<Vec<LogRecord>> {
    match bytes.split_first() {
        Some((&BATCH_MARK, rest)) => decode_exact("log batch", rest),
        _ => Ok(vec![decode_log(bytes)?]),
    }
}

/// Encodes a put version: a small header followed by the raw value bytes, so values are
/// neither re-encoded nor length-prefixed.
pub(crate) fn encode_put(create_revision: Revision, value: &[u8]) -> Result<Vec<u8>> {
    let mut out = encode(
        "version",
        &VersionHeader {
            op: Op::Put,
            create_revision,
        },
    )?;
    out.extend_from_slice(value);
    Ok(out)
}

/// Encodes a tombstone version.
pub(crate) fn encode_tombstone() -> Result<Vec<u8>> {
    encode(
        "version",
        &VersionHeader {
            op: Op::Delete,
            create_revision: 0,
        },
    )
}

/// Decodes only whether a version is a put or a tombstone (cheap: no value copy).
pub(crate) fn decode_version_op(bytes: &[u8]) -> Result<Op> {
    let (header, _): (VersionHeader, usize) = decode("version", bytes)?;
    Ok(header.op)
}

/// Decodes a whole version record, copying the value out.
pub(crate) fn decode_version(bytes: &[u8]) -> Result<Version> {
    let (header, used): (VersionHeader, usize) = decode("version", bytes)?;
    let value = bytes.get(used..).unwrap_or_default();
    if header.op == Op::Delete && !value.is_empty() {
        return Err(Error::internal(
            "corrupt version record in the sled store: a tombstone carries a value",
        ));
    }
    Ok(Version {
        op: header.op,
        create_revision: header.create_revision,
        value: bytes::Bytes::copy_from_slice(value),
    })
}

/// Encodes a state record.
pub(crate) fn encode_state(record: &StateRecord) -> Result<Vec<u8>> {
    encode("state", record)
}

/// Decodes a state record.
pub(crate) fn decode_state(bytes: &[u8]) -> Result<StateRecord> {
    decode_exact("state", bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let log = LogRecord {
            key: "/a/b".into(),
            op: Op::Delete,
            prev: 42,
        };
        assert_eq!(decode_log(&encode_log(&log).unwrap()).unwrap(), log);
        assert_eq!(
            decode_log_entry(&encode_log(&log).unwrap()).unwrap(),
            vec![log.clone()]
        );
        let batch = vec![log.clone(), log.clone()];
        assert_eq!(
            decode_log_entry(&encode_log_batch(&batch).unwrap()).unwrap(),
            batch
        );

        let state = StateRecord {
            create_revision: 3,
            mod_revision: u64::MAX,
            expires_at_ms: Some(17),
        };
        assert_eq!(decode_state(&encode_state(&state).unwrap()).unwrap(), state);

        let put = decode_version(&encode_put(7, b"hello").unwrap()).unwrap();
        assert_eq!(put.op, Op::Put);
        assert_eq!(put.create_revision, 7);
        assert_eq!(&put.value[..], b"hello");
        let empty = decode_version(&encode_put(8, b"").unwrap()).unwrap();
        assert!(empty.value.is_empty());
        assert_eq!(
            decode_version_op(&encode_tombstone().unwrap()).unwrap(),
            Op::Delete
        );
    }

    #[test]
    fn garbage_is_an_internal_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x07"] {
            assert!(matches!(decode_log(bytes), Err(Error::Internal { .. })));
            assert!(matches!(decode_state(bytes), Err(Error::Internal { .. })));
            assert!(matches!(decode_version(bytes), Err(Error::Internal { .. })));
        }
        let mut state = encode_state(&StateRecord {
            create_revision: 1,
            mod_revision: 1,
            expires_at_ms: None,
        })
        .unwrap();
        state.push(0);
        assert!(matches!(decode_state(&state), Err(Error::Internal { .. })));
    }
}
