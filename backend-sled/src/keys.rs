//! The byte layout of sled *keys*: fixed, order-preserving, independent of the record codec.
//!
//! - `log`: the revision as 8 big-endian bytes, so the tree iterates in revision order.
//! - `versions`: `key \0 revision(8, big-endian)`. Keys never contain NUL
//!   ([`storage_api::validate_key`] rejects it), so this sorts by key bytes first, then by
//!   revision, and every version of one key is contiguous.
//! - `state`: the key itself.
//! - `ttl`: `expiry-ms(8, big-endian) key`, so the tree iterates in expiry order.
//! - `meta`: the names below.

use storage_api::{Error, Result, Revision};

/// The on-disk layout version this build writes and understands. Version 2 adds log entries
/// holding an atomic batch (`codec::encode_log_batch`); a version 1 store is a valid
/// version 2 store and is upgraded by rewriting this number.
pub(crate) const SCHEMA_VERSION: u64 = 2;

/// The layout versions this build opens, upgrading them to [`SCHEMA_VERSION`].
pub(crate) const UPGRADABLE_SCHEMAS: [u64; 1] = [1];

/// `meta` entry: the layout version.
pub(crate) const META_SCHEMA: &[u8] = b"schema";
/// `meta` entry: the revision of the last committed write.
pub(crate) const META_REVISION: &[u8] = b"revision";
/// `meta` entry: the compaction revision (oldest readable revision).
pub(crate) const META_COMPACTED: &[u8] = b"compacted";
/// `meta` entry: how far the deletion of compacted history has got.
pub(crate) const META_COMPACT_DONE: &[u8] = b"compact-done";

/// A big-endian revision (log key, meta value).
pub(crate) fn revision_key(revision: Revision) -> [u8; 8] {
    revision.to_be_bytes()
}

/// Parses an 8-byte big-endian number read from disk.
pub(crate) fn parse_u64(what: &str, bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        Error::internal(format!(
            "corrupt {what} in the sled store: {} bytes instead of 8",
            bytes.len()
        ))
    })?;
    Ok(u64::from_be_bytes(array))
}

/// `key \0 revision`.
pub(crate) fn version_key(key: &str, revision: Revision) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 9);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(&revision.to_be_bytes());
    out
}

/// Splits a `versions` key into the user key and the revision.
pub(crate) fn parse_version_key(bytes: &[u8]) -> Result<(&str, Revision)> {
    let corrupt = || Error::internal("corrupt version key in the sled store");
    let split = bytes.len().checked_sub(9).ok_or_else(corrupt)?;
    let (key, rest) = bytes.split_at(split);
    let (nul, revision) = rest.split_first().ok_or_else(corrupt)?;
    if *nul != 0 {
        return Err(corrupt());
    }
    let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
    Ok((key, parse_u64("version key revision", revision)?))
}

/// `expiry-ms key`.
pub(crate) fn ttl_key(expires_at_ms: u64, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 8);
    out.extend_from_slice(&expires_at_ms.to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// Splits a `ttl` key into the expiry and the user key.
pub(crate) fn parse_ttl_key(bytes: &[u8]) -> Result<(u64, &str)> {
    if bytes.len() < 8 {
        return Err(Error::internal("corrupt ttl key in the sled store"));
    }
    let (at, key) = bytes.split_at(8);
    let key = std::str::from_utf8(key)
        .map_err(|_| Error::internal("corrupt ttl key in the sled store"))?;
    Ok((parse_u64("ttl key", at)?, key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_by_key_then_revision() {
        let mut keys = [
            version_key("/a/b", 1),
            version_key("/a", 300),
            version_key("/a", 2),
            version_key("/a/", 1),
            version_key("/ab", 1),
        ];
        keys.sort();
        let parsed: Vec<_> = keys.iter().map(|k| parse_version_key(k).unwrap()).collect();
        assert_eq!(
            parsed,
            vec![("/a", 2), ("/a", 300), ("/a/", 1), ("/a/b", 1), ("/ab", 1)]
        );
        assert!(version_key("/a", u64::MAX) < version_key("/a/", 0));
    }

    #[test]
    fn corrupt_keys_are_errors() {
        assert!(parse_version_key(b"short").is_err());
        assert!(parse_version_key(b"/a\x01\0\0\0\0\0\0\0\x01").is_err());
        assert!(parse_version_key(b"\xff\0\0\0\0\0\0\0\0\x01").is_err());
        assert!(parse_ttl_key(b"1234").is_err());
        assert_eq!(parse_ttl_key(&ttl_key(9, "/k")).unwrap(), (9, "/k"));
        assert!(parse_u64("x", b"123").is_err());
    }
}
