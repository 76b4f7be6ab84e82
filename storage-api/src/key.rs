//! Key validation shared by every backend, so that all of them reject the same keys the same way.

use crate::error::{Error, Result};

/// Checks a key before any backend touches it.
///
/// Keys are slash-separated paths as Kubernetes builds them (`/registry/pods/ns/name`). Rejected,
/// with [`Error::InvalidArgument`]: the empty key and `/` (`empty key: "..."`); any `.` or `..`
/// path segment (`invalid key: "..."`), which would let a name escape its directory; and keys
/// containing a NUL byte, which no Kubernetes name can contain and which some engines truncate.
/// A `..` inside a segment (`/a/b..c`) is fine.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key == "/" {
        return Err(Error::InvalidArgument(format!("empty key: {key:?}")));
    }
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(Error::InvalidArgument(format!("invalid key: {key:?}")));
    }
    if key.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "invalid key: {key:?} contains a NUL byte"
        )));
    }
    Ok(())
}

/// Checks a range or watch prefix: like [`validate_key`], except that the empty prefix (the
/// whole keyspace) is allowed and a trailing `/` is expected rather than tolerated.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(Error::InvalidArgument(format!(
            "invalid key prefix: {prefix:?}"
        )));
    }
    Ok(())
}

/// The smallest byte string greater than every string that starts with `prefix` (etcd's
/// "range end" for a prefix), or `None` when the prefix is empty or all `0xff` (no upper bound).
pub fn prefix_range_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in [
            "", "/", "..", ".", "../a", "./a", "/a/..", "/a/.", "/a/../b", "/a/./b",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            "/a",
            "a",
            "/registry/pods/ns/name",
            "/foo/bar..baz/",
            "/a/...",
            "/a/.b",
        ] {
            assert!(validate_key(good).is_ok(), "{good:?} should be accepted");
        }
        let err = validate_key("").unwrap_err().to_string();
        assert!(err.contains("empty key"), "{err}");
        let err = validate_key("/a/../b").unwrap_err().to_string();
        assert!(err.contains("invalid key"), "{err}");
    }

    #[test]
    fn range_end_of_prefix() {
        assert_eq!(prefix_range_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_range_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_range_end(b"\xff\xff"), None);
        assert_eq!(prefix_range_end(b""), None);
    }
}
