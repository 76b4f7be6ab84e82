//! Atomic batches: several conditional writes committed together at one revision.
//!
//! The single-key methods of [`crate::Interface`] are all Kubernetes needs. An etcd `Txn` or
//! `DeleteRange` over several keys, or the revocation of a lease with several keys attached,
//! needs more: every write applied or none, all at one revision, so no read at any revision
//! sees part of it. Stores that can do this report [`crate::Capabilities::atomic_batches`] and
//! implement [`crate::Interface::write_batch`].

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::key::validate_key;
use crate::types::{KeyValue, Revision};

/// What a batch write requires of its key's state just before the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key does not exist (never written, or deleted).
    Absent,
    /// The key exists with exactly this `mod_revision`.
    ModRevision(Revision),
}

/// One write of an atomic batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchWrite {
    /// Writes `value`: a create when `expect` is [`Expect::Absent`], else an update that keeps
    /// the key's `create_revision`. Batch writes never carry a TTL.
    Put {
        /// The key written.
        key: String,
        /// The new value.
        value: Bytes,
        /// The state the key must be in.
        expect: Expect,
    },
    /// Deletes a key that exists with exactly this `mod_revision`.
    Delete {
        /// The key deleted.
        key: String,
        /// The `mod_revision` the key must have.
        mod_revision: Revision,
    },
}

/// Gathers writes into atomic batches for a bulk load: each batch holds at most `max_writes`
/// writes and stops before its keys and values pass `max_bytes` (a single larger write goes
/// alone), so it stays under a store's request limits (etcd's `--max-txn-ops` and request
/// size). Writes keep their order across batches.
#[derive(Debug)]
pub struct BatchBuffer {
    writes: Vec<BatchWrite>,
    bytes: usize,
    max_writes: usize,
    max_bytes: usize,
}

impl BatchBuffer {
    /// An empty buffer with these limits (`max_writes` at least 1).
    pub fn new(max_writes: usize, max_bytes: usize) -> Self {
        BatchBuffer {
            writes: Vec::new(),
            bytes: 0,
            max_writes: max_writes.max(1),
            max_bytes,
        }
    }

    /// Adds `write`, first writing what is gathered to `store` when `write` would not fit;
    /// returns the revision of that batch, if one was written.
    pub async fn push(
        &mut self,
        store: &dyn crate::Interface,
        write: BatchWrite,
    ) -> Result<Option<Revision>> {
        let size = match &write {
            BatchWrite::Put { key, value, .. } => key.len() + value.len(),
            BatchWrite::Delete { key, .. } => key.len(),
        };
        let full = self.writes.len() == self.max_writes || self.bytes + size > self.max_bytes;
        let written = if full { self.flush(store).await? } else { None };
        self.bytes += size;
        self.writes.push(write);
        Ok(written)
    }

    /// Writes what is gathered, if anything, as one batch; returns its revision.
    pub async fn flush(&mut self, store: &dyn crate::Interface) -> Result<Option<Revision>> {
        if self.writes.is_empty() {
            return Ok(None);
        }
        self.bytes = 0;
        let batch = std::mem::take(&mut self.writes);
        store.write_batch(batch).await.map(Some)
    }
}

impl BatchWrite {
    /// The key this write touches.
    pub fn key(&self) -> &str {
        match self {
            BatchWrite::Put { key, .. } | BatchWrite::Delete { key, .. } => key,
        }
    }

    /// What this write requires of its key.
    pub fn expect(&self) -> Expect {
        match self {
            BatchWrite::Put { expect, .. } => *expect,
            BatchWrite::Delete { mod_revision, .. } => Expect::ModRevision(*mod_revision),
        }
    }

    /// Checks `live`, the key's value just before the batch, against [`BatchWrite::expect`]:
    /// the error is the one the single-key method would return ([`Error::AlreadyExists`],
    /// [`Error::NotFound`] or [`Error::Conflict`] carrying the live value).
    pub fn check(&self, live: Option<&KeyValue>) -> Result<()> {
        let key = self.key();
        match (self.expect(), live) {
            (Expect::Absent, None) => Ok(()),
            (Expect::Absent, Some(_)) => Err(Error::AlreadyExists {
                key: key.to_owned(),
            }),
            (Expect::ModRevision(_), None) => Err(Error::NotFound {
                key: key.to_owned(),
            }),
            (Expect::ModRevision(expected), Some(live)) if live.mod_revision != expected => {
                Err(Error::Conflict {
                    key: key.to_owned(),
                    expected,
                    current: Box::new(live.clone()),
                })
            }
            (Expect::ModRevision(_), Some(_)) => Ok(()),
        }
    }
}

/// Checks a batch as every store must before applying it: at least one write, every key valid
/// ([`validate_key`]), no key twice (etcd refuses the same: "duplicate key given in txn
/// request"), and at most `max_writes` writes.
pub fn validate_batch(writes: &[BatchWrite], max_writes: usize) -> Result<()> {
    if writes.is_empty() {
        return Err(Error::InvalidArgument("empty write batch".into()));
    }
    if writes.len() > max_writes {
        return Err(Error::InvalidArgument(format!(
            "write batch of {} writes is larger than this store's limit of {max_writes}",
            writes.len()
        )));
    }
    let mut keys: Vec<&str> = writes.iter().map(BatchWrite::key).collect();
    for key in &keys {
        validate_key(key)?;
    }
    keys.sort_unstable();
    if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(Error::InvalidArgument(format!(
            "key {:?} is written twice in one batch",
            pair[0]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, expect: Expect) -> BatchWrite {
        BatchWrite::Put {
            key: key.into(),
            value: Bytes::new(),
            expect,
        }
    }

    #[test]
    fn batches_are_checked_before_they_are_applied() {
        assert!(validate_batch(&[], 10).is_err());
        assert!(validate_batch(&[put("/a", Expect::Absent)], 10).is_ok());
        let twice = [
            put("/a", Expect::Absent),
            BatchWrite::Delete {
                key: "/a".into(),
                mod_revision: 3,
            },
        ];
        let error = validate_batch(&twice, 10).unwrap_err().to_string();
        assert!(error.contains("written twice"), "{error}");
        assert!(validate_batch(&[put("", Expect::Absent)], 10).is_err());
        let many: Vec<_> = (0..3)
            .map(|i| put(&format!("/{i}"), Expect::Absent))
            .collect();
        assert!(validate_batch(&many, 2).is_err());
    }

    #[test]
    fn expectations_fail_as_the_single_key_methods_do() {
        let live = KeyValue {
            key: "/a".into(),
            value: Bytes::new(),
            create_revision: 2,
            mod_revision: 5,
        };
        assert!(put("/a", Expect::Absent).check(None).is_ok());
        assert!(matches!(
            put("/a", Expect::Absent).check(Some(&live)),
            Err(Error::AlreadyExists { .. })
        ));
        assert!(matches!(
            put("/a", Expect::ModRevision(5)).check(None),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            put("/a", Expect::ModRevision(4)).check(Some(&live)),
            Err(Error::Conflict { expected: 4, .. })
        ));
        assert!(put("/a", Expect::ModRevision(5)).check(Some(&live)).is_ok());
    }
}
