//! etcd keys (any bytes) as keys of the storage contract, and etcd ranges as reads of it.
//!
//! The contract's keys are UTF-8 strings without NUL bytes and without `.` or `..` path
//! segments (`storage_api::validate_key`); etcd's are arbitrary bytes (`etcdctl check perf`
//! writes random binary keys). Every etcd key is stored as [`KV_SPACE`] followed by its
//! encoding, one codeword per byte:
//!
//! | byte | codeword |
//! |---|---|
//! | `0x00` | `0x01 0x01` |
//! | `0x01` | `0x01 0x02` |
//! | `.` (`0x2e`) | `.~` |
//! | any other byte below `0x80` | itself |
//! | `0x80`–`0xff` | the character U+0080–U+00FF (two bytes of UTF-8) |
//!
//! No codeword is the prefix of another, and codewords sort as their bytes do, so encoded keys
//! sort exactly as etcd sorts the raw keys, and the keys starting with a prefix are exactly the
//! encoded keys starting with the encoded prefix. ASCII keys such as kube-apiserver's
//! `/registry/...` stay readable in the database; no encoded key holds a NUL byte or a `.`
//! segment, since every `.` is followed by `~`.

use storage_api::Revision;

/// Every etcd key is stored under this prefix; the front's own records (leases) live outside
/// it, where no etcd key can reach.
pub(crate) const KV_SPACE: &str = "/kv";

/// The storage key of an etcd key.
pub(crate) fn encode(key: &[u8]) -> String {
    let mut out = String::with_capacity(KV_SPACE.len() + key.len() + 4);
    out.push_str(KV_SPACE);
    push_encoded(&mut out, key);
    out
}

fn push_encoded(out: &mut String, key: &[u8]) {
    for &byte in key {
        match byte {
            0x00 => out.push_str("\u{1}\u{1}"),
            0x01 => out.push_str("\u{1}\u{2}"),
            b'.' => out.push_str(".~"),
            0x02..=0x7f => out.push(char::from(byte)),
            // Latin-1 code points: U+0080..U+00FF, encoded by UTF-8 as two bytes.
            0x80..=0xff => out.push(char::from(byte)),
        }
    }
}

/// The etcd key of a storage key written by [`encode`]; `None` for a key that is not one.
pub(crate) fn decode(stored: &str) -> Option<Vec<u8>> {
    let encoded = stored.strip_prefix(KV_SPACE)?;
    let mut out = Vec::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        let byte = match c {
            '\u{1}' => match chars.next()? {
                '\u{1}' => 0x00,
                '\u{2}' => 0x01,
                _ => return None,
            },
            '.' => match chars.next()? {
                '~' => b'.',
                _ => return None,
            },
            '\u{0}' => return None,
            c => u8::try_from(u32::from(c)).ok()?,
        };
        out.push(byte);
    }
    Some(out)
}

/// The longest common prefix of two strings, on a character boundary.
fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let mut end = 0;
    for ((i, x), y) in a.char_indices().zip(b.chars()) {
        if x != y {
            break;
        }
        end = i + x.len_utf8();
    }
    &a[..end]
}

/// How an etcd `[key, range_end)` is read from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Span {
    /// One key (`range_end` empty).
    Single(String),
    /// Every stored key under `prefix`, from `start` (inclusive) to the prefix's end: a prefix
    /// range, a from-key range (`range_end` is `\0`) or a page of either.
    Prefix {
        /// The storage prefix.
        prefix: String,
        /// The first storage key, inclusive; starts with `prefix`.
        start: String,
    },
    /// Every stored key in `[start, end)`, both under `prefix`: any other range.
    Bounded {
        /// The longest common prefix of `start` and `end`.
        prefix: String,
        /// The first storage key, inclusive.
        start: String,
        /// The first storage key past the range.
        end: String,
    },
    /// A range that holds no key (`range_end` at or before `key`).
    Empty,
}

impl Span {
    /// The span of etcd's `[key, range_end)`, with etcd's conventions: an empty `range_end` is
    /// the single key, `range_end = "\0"` means every key from `key` on.
    pub(crate) fn of(key: &[u8], range_end: &[u8]) -> Span {
        if range_end.is_empty() {
            return Span::Single(encode(key));
        }
        let start = encode(key);
        if range_end == [0] {
            return Span::Prefix {
                prefix: KV_SPACE.to_owned(),
                start,
            };
        }
        if range_end <= key {
            return Span::Empty;
        }
        // `[p, range_end)` is exactly "keys starting with p" when p is `range_end` with its
        // last byte lowered by one (see `prefix_range_end`); a range starting at or after p is
        // a page of that prefix.
        if let Some((&last, head)) = range_end.split_last() {
            if last > 0 {
                let mut prefix = head.to_vec();
                prefix.push(last - 1);
                if key >= prefix.as_slice() {
                    return Span::Prefix {
                        prefix: encode(&prefix),
                        start,
                    };
                }
            }
        }
        let end = encode(range_end);
        Span::Bounded {
            prefix: common_prefix(&start, &end).to_owned(),
            start,
            end,
        }
    }

    /// Whether the storage key `stored` lies in this span.
    pub(crate) fn contains(&self, stored: &str) -> bool {
        match self {
            Span::Single(key) => stored == key,
            Span::Prefix { prefix, start } => {
                stored.starts_with(prefix.as_str()) && stored >= start.as_str()
            }
            Span::Bounded { start, end, .. } => stored >= start.as_str() && stored < end.as_str(),
            Span::Empty => false,
        }
    }

    /// The single key of a [`Span::Single`].
    pub(crate) fn single(&self) -> Option<&str> {
        match self {
            Span::Single(key) => Some(key),
            _ => None,
        }
    }

    /// The prefix a watch of this span opens in the store (and whether it is a prefix watch);
    /// events outside the span are filtered with [`Span::contains`].
    pub(crate) fn watch_scope(&self) -> (String, bool) {
        match self {
            Span::Single(key) => (key.clone(), false),
            Span::Prefix { prefix, .. } | Span::Bounded { prefix, .. } => (prefix.clone(), true),
            Span::Empty => (KV_SPACE.to_owned(), true),
        }
    }
}

/// The storage key of a lease's record.
pub(crate) fn lease_key(id: i64) -> String {
    format!("{LEASE_SPACE}{id:016x}")
}

/// Lease records live under this prefix, outside [`KV_SPACE`].
pub(crate) const LEASE_SPACE: &str = "/leases/";

/// A sentinel revision for values written by a transaction that has not committed yet; replaced
/// by the commit revision before any response leaves the front.
pub(crate) const PENDING: Revision = Revision::MAX;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ascii_keys_stay_readable() {
        assert_eq!(encode(b"/registry/pods/a"), "/kv/registry/pods/a");
        assert_eq!(encode(b"/a/../b"), "/kv/a/.~.~/b");
        assert!(storage_api::validate_key(&encode(b"/a/../b")).is_ok());
        assert!(storage_api::validate_key(&encode(b"\0\x01\xff.")).is_ok());
        assert_eq!(
            decode(&encode(b"\0\x01\xff.x")),
            Some(b"\0\x01\xff.x".to_vec())
        );
        assert_eq!(decode("/kv\u{1}"), None);
        assert_eq!(decode("/other"), None);
    }

    #[test]
    fn spans_follow_etcd_conventions() {
        assert_eq!(Span::of(b"a", b""), Span::Single("/kva".into()));
        assert_eq!(
            Span::of(b"a", b"\0"),
            Span::Prefix {
                prefix: "/kv".into(),
                start: "/kva".into()
            }
        );
        assert_eq!(
            Span::of(b"/p/", b"/p0"),
            Span::Prefix {
                prefix: "/kv/p/".into(),
                start: "/kv/p/".into()
            }
        );
        // kube-apiserver's next page: from the continue key to the prefix's end.
        assert_eq!(
            Span::of(b"/p/x\0", b"/p0"),
            Span::Prefix {
                prefix: "/kv/p/".into(),
                start: "/kv/p/x\u{1}\u{1}".into()
            }
        );
        assert_eq!(Span::of(b"b", b"a"), Span::Empty);
        assert_eq!(Span::of(b"b", b"b"), Span::Empty);
        let bounded = Span::of(b"ab", b"ad");
        assert!(matches!(&bounded, Span::Bounded { prefix, .. } if prefix == "/kva"));
        assert!(bounded.contains("/kvac") && !bounded.contains("/kvad"));
    }

    proptest! {
        #[test]
        fn encoding_keeps_order_and_prefixes(a in proptest::collection::vec(any::<u8>(), 1..8),
                                             b in proptest::collection::vec(any::<u8>(), 1..8)) {
            let (ea, eb) = (encode(&a), encode(&b));
            prop_assert_eq!(a.cmp(&b), ea.as_bytes().cmp(eb.as_bytes()));
            prop_assert_eq!(a.starts_with(&b), ea.starts_with(eb.as_str()));
            prop_assert_eq!(decode(&ea), Some(a.clone()));
            prop_assert!(storage_api::validate_key(&ea).is_ok());
        }

        #[test]
        fn spans_hold_exactly_the_keys_of_the_range(key in proptest::collection::vec(0u8..4, 1..4),
                                                   end in proptest::collection::vec(0u8..4, 0..4),
                                                   probe in proptest::collection::vec(0u8..4, 1..5)) {
            let span = Span::of(&key, &end);
            let inside = if end.is_empty() {
                probe == key
            } else if end == [0] {
                probe >= key
            } else {
                probe >= key && probe < end
            };
            prop_assert_eq!(span.contains(&encode(&probe)), inside, "{:?}", span);
        }
    }
}
