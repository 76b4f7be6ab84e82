//! What the front stores for each etcd key: the value with etcd's `version` and `lease`.
//!
//! The storage contract keeps a key's value, `create_revision` and `mod_revision`; etcd also
//! reports how many times a key was written since its creation (`version`) and the lease it is
//! attached to. The front stores both in a fixed 17-byte header in front of the value:
//! a format byte, `version` and `lease` as big-endian 64-bit integers.

use bytes::{BufMut, Bytes, BytesMut};
use etcd_client::proto::PbKeyValue;
use storage_api::{Error, KeyValue, Result};

use crate::keys;

/// The format byte of this layout.
const FORMAT: u8 = 1;
/// Bytes before the value.
const HEADER: usize = 17;

/// One stored etcd key: its value and the two numbers the contract does not keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// Writes since the key was created, 1 for the creating write.
    pub(crate) version: i64,
    /// The attached lease, 0 for none.
    pub(crate) lease: i64,
    /// The etcd value.
    pub(crate) value: Bytes,
}

impl Record {
    /// The stored bytes.
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER + self.value.len());
        out.put_u8(FORMAT);
        out.put_i64(self.version);
        out.put_i64(self.lease);
        out.extend_from_slice(&self.value);
        out.freeze()
    }

    /// Parses stored bytes written by [`Record::encode`].
    pub(crate) fn decode(key: &str, stored: &Bytes) -> Result<Record> {
        let corrupt = || {
            Error::internal(format!(
                "stored value of {key:?} is not an etcd front record ({} bytes)",
                stored.len()
            ))
        };
        if stored.len() < HEADER || stored[0] != FORMAT {
            return Err(corrupt());
        }
        let number = |at: usize| -> Result<i64> {
            let bytes: [u8; 8] = stored[at..at + 8].try_into().map_err(|_| corrupt())?;
            Ok(i64::from_be_bytes(bytes))
        };
        Ok(Record {
            version: number(1)?,
            lease: number(9)?,
            value: stored.slice(HEADER..),
        })
    }
}

/// A stored key as etcd reports it; revisions are the store's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EtcdKv {
    /// The etcd key.
    pub(crate) key: Vec<u8>,
    /// The storage key.
    pub(crate) stored_key: String,
    /// Value, version and lease.
    pub(crate) record: Record,
    /// The revision that created the key ([`keys::PENDING`] inside an uncommitted txn).
    pub(crate) create_revision: u64,
    /// The revision of its last write ([`keys::PENDING`] inside an uncommitted txn).
    pub(crate) mod_revision: u64,
}

impl EtcdKv {
    /// Decodes a key-value of the store.
    pub(crate) fn from_stored(kv: &KeyValue) -> Result<EtcdKv> {
        let key = keys::decode(&kv.key).ok_or_else(|| {
            Error::internal(format!("stored key {:?} is not an etcd front key", kv.key))
        })?;
        Ok(EtcdKv {
            key,
            stored_key: kv.key.clone(),
            record: Record::decode(&kv.key, &kv.value)?,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
        })
    }

    /// The protobuf form, with `revision` in place of a pending revision and without the value
    /// when `keys_only`.
    pub(crate) fn to_pb(&self, revision: u64, keys_only: bool) -> PbKeyValue {
        let resolve = |r: u64| if r == keys::PENDING { revision } else { r };
        PbKeyValue {
            key: self.key.clone(),
            create_revision: to_i64(resolve(self.create_revision)),
            mod_revision: to_i64(resolve(self.mod_revision)),
            version: self.record.version,
            value: if keys_only {
                Vec::new()
            } else {
                self.record.value.to_vec()
            },
            lease: self.record.lease,
        }
    }
}

/// A store revision as etcd's signed 64-bit integer.
pub(crate) fn to_i64(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_foreign_bytes() {
        let record = Record {
            version: 3,
            lease: -7,
            value: Bytes::from_static(b"v"),
        };
        let stored = record.encode();
        assert_eq!(stored.len(), 18);
        assert_eq!(Record::decode("/kvk", &stored).unwrap(), record);
        assert!(Record::decode("/kvk", &Bytes::from_static(b"plain")).is_err());
    }
}
