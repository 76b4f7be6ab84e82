//! JSON encoding of objects, the value transformer, and resourceVersion handling.

use std::sync::Arc;

use bytes::Bytes;
use storage_api::{KeyValue, Revision};

use crate::error::{Result, StorageError};
use crate::transformer::ValueTransformer;
use apimachinery::object::{NewFunc, Object};
use apimachinery::resource_version::format_resource_version;

/// Turns objects into stored bytes and back.
///
/// Stored bytes are the object's JSON without `metadata.resourceVersion` and
/// `metadata.selfLink`, passed through the value transformer. Decoding sets the resourceVersion
/// from the revision.
pub struct Codec<K> {
    new: NewFunc<K>,
    transformer: Arc<dyn ValueTransformer>,
    read_defaults: Option<ReadDefaults<K>>,
}

/// Fills defaults into every object decoded from storage, as upstream's CRD storage codec
/// applies a CRD's structural defaults on read (objects written before a default existed
/// read with it).
pub type ReadDefaults<K> = Arc<dyn Fn(&mut K) + Send + Sync>;

impl<K> Clone for Codec<K> {
    fn clone(&self) -> Self {
        Codec {
            new: self.new.clone(),
            transformer: self.transformer.clone(),
            read_defaults: self.read_defaults.clone(),
        }
    }
}

impl<K: Object> Codec<K> {
    pub(crate) fn new(new: NewFunc<K>, transformer: Arc<dyn ValueTransformer>) -> Self {
        Codec {
            new,
            transformer,
            read_defaults: None,
        }
    }

    pub(crate) fn with_read_defaults(mut self, defaults: ReadDefaults<K>) -> Self {
        self.read_defaults = Some(defaults);
        self
    }

    pub(crate) fn with_transformer(mut self, transformer: Arc<dyn ValueTransformer>) -> Self {
        self.transformer = transformer;
        self
    }

    /// An empty object of the type.
    pub fn new_object(&self) -> K {
        (self.new)()
    }

    /// Sets `metadata.resourceVersion` from a revision (0 clears it).
    pub fn set_resource_version(object: &mut K, revision: Revision) {
        let formatted = format_resource_version(revision);
        object.meta_mut().resource_version = if formatted.is_empty() {
            None
        } else {
            Some(formatted)
        };
    }

    /// The plain JSON stored for `object`: without resourceVersion and selfLink.
    pub fn encode(&self, object: &K) -> Result<Vec<u8>> {
        self.encode_for_write(object.clone())
            .map(|(plain, _)| plain)
    }

    /// `object` prepared for writing (resourceVersion and selfLink cleared) and its plain
    /// JSON. After the write, callers answer with this object and the new revision
    /// ([`Codec::set_resource_version`]) instead of decoding what they just encoded. It is
    /// what the bytes decode to, except where a field's JSON is coarser than its Rust value:
    /// a `metav1.Time` holding fractions of a second (JSON keeps whole seconds) or a
    /// `MicroTime` holding nanoseconds keeps them in the returned object; a read returns the
    /// stored precision. Objects decoded from JSON and the Store's own timestamps never
    /// carry the finer part.
    pub fn encode_for_write(&self, mut object: K) -> Result<(Vec<u8>, K)> {
        object.meta_mut().resource_version = None;
        object.meta_mut().self_link = None;
        let plain = serde_json::to_vec(&object)
            .map_err(|e| StorageError::Internal(format!("cannot encode object: {e}")))?;
        Ok((plain, object))
    }

    /// Applies the value transformer for writing under `key`.
    pub fn to_storage(&self, key: &str, plain: &[u8]) -> Result<Bytes> {
        self.transformer
            .transform_to_storage(plain, key)
            .map(Bytes::from)
            .map_err(|e| {
                StorageError::Internal(format!("failed to transform value for {key}: {e}"))
            })
    }

    /// Decodes plain JSON read from `key` and sets its resourceVersion.
    pub fn decode_plain(&self, key: &str, plain: &[u8], revision: Revision) -> Result<K> {
        let mut object: K =
            serde_json::from_slice(plain).map_err(|e| StorageError::CorruptObj {
                key: key.to_owned(),
                message: format!("cannot decode stored object: {e}"),
            })?;
        if let Some(defaults) = &self.read_defaults {
            defaults(&mut object);
        }
        Self::set_resource_version(&mut object, revision);
        Ok(object)
    }

    /// Transforms and decodes a stored value: the object (resourceVersion = the key's mod
    /// revision), the plain bytes and the transformer's `stale` flag.
    pub fn decode(&self, kv: &KeyValue) -> Result<(K, Vec<u8>, bool)> {
        self.decode_at(&kv.key, &kv.value, kv.mod_revision)
    }

    /// As [`Codec::decode`] for bytes stored under `key`, with an explicit resourceVersion.
    pub fn decode_at(
        &self,
        key: &str,
        stored: &[u8],
        revision: Revision,
    ) -> Result<(K, Vec<u8>, bool)> {
        let (plain, stale) = self
            .transformer
            .transform_from_storage(stored, key)
            .map_err(|e| {
                StorageError::Internal(format!("failed to transform value read from {key}: {e}"))
            })?;
        let object = self.decode_plain(key, &plain, revision)?;
        Ok((object, plain, stale))
    }
}
