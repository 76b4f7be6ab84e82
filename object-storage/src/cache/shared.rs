//! [`Shared`]: one object handed to many readers, with the serialisations made of it, so that
//! each form is encoded once however many watchers or lists send it (upstream's
//! `cachingObject`, `pkg/storage/cacher/caching_object.go`).

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

/// An immutable object shared by reference, with a memo of its encodings.
///
/// Cloning is a reference-count increment. [`Shared::encoded`] runs an encoder at most once per
/// format name for the life of the object; every later caller gets the same bytes.
pub struct Shared<K> {
    inner: Arc<Inner<K>>,
}

struct Inner<K> {
    object: K,
    /// (format name, bytes), in the order the formats were first asked for: an object is sent
    /// in few forms (a version, JSON or protobuf, Table or not), so a list beats a map.
    encodings: Mutex<Vec<(Box<str>, Bytes)>>,
}

impl<K> Shared<K> {
    /// Wraps `object`; nothing is encoded yet.
    pub fn new(object: K) -> Self {
        Shared {
            inner: Arc::new(Inner {
                object,
                encodings: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The bytes of this object in `format`: encoded by `encode` the first time the format is
    /// asked for, remembered afterwards. `format` must name everything the bytes depend on
    /// (group-version, media type, Table or not). An encoder error is returned and nothing is
    /// remembered.
    pub fn encoded<E>(
        &self,
        format: &str,
        encode: impl FnOnce(&K) -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        // Held while encoding, so concurrent readers of one format wait for the first instead
        // of encoding it again.
        let mut encodings = self.inner.encodings.lock();
        if let Some((_, bytes)) = encodings.iter().find(|(name, _)| &**name == format) {
            return Ok(bytes.clone());
        }
        let bytes = encode(&self.inner.object)?;
        encodings.push((format.into(), bytes.clone()));
        Ok(bytes)
    }

    /// How many formats have been encoded so far.
    pub fn encoding_count(&self) -> usize {
        self.inner.encodings.lock().len()
    }

    /// The object by value: moved out when this is the last reference, else cloned.
    pub fn into_owned(self) -> K
    where
        K: Clone,
    {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner.object,
            Err(shared) => shared.object.clone(),
        }
    }

    /// Whether both handles refer to the same object (not merely equal ones).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

impl<K> Clone for Shared<K> {
    fn clone(&self) -> Self {
        Shared {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K> Deref for Shared<K> {
    type Target = K;

    fn deref(&self) -> &K {
        &self.inner.object
    }
}

impl<K: std::fmt::Debug> std::fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.object.fmt(f)
    }
}

impl<K: PartialEq> PartialEq for Shared<K> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.object == other.inner.object
    }
}

impl<K> From<K> for Shared<K> {
    fn from(object: K) -> Self {
        Shared::new(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_is_encoded_once() {
        let shared = Shared::new(7_u32);
        let mut calls = 0;
        for _ in 0..3 {
            let bytes = shared
                .encoded::<()>("json", |n| {
                    calls += 1;
                    Ok(Bytes::from(n.to_string()))
                })
                .expect("encodes");
            assert_eq!(bytes, Bytes::from_static(b"7"));
        }
        assert_eq!(calls, 1);
        let clone = shared.clone();
        let table = clone
            .encoded::<()>("table", |_| Ok(Bytes::from_static(b"row")))
            .expect("encodes");
        assert_eq!(table, Bytes::from_static(b"row"));
        assert_eq!(shared.encoding_count(), 2);
    }

    #[test]
    fn a_failed_encoding_is_not_remembered() {
        let shared = Shared::new("x");
        assert_eq!(shared.encoded("f", |_| Err("boom")), Err("boom"));
        assert_eq!(shared.encoding_count(), 0);
        assert_eq!(
            shared.encoded::<&str>("f", |_| Ok(Bytes::from_static(b"ok"))),
            Ok(Bytes::from_static(b"ok"))
        );
    }
}
