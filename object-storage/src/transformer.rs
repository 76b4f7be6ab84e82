//! Value transformers: the encryption-at-rest hook between object bytes and stored bytes
//! (Kubernetes' `value.Transformer`).
//!
//! Every stored value passes through [`ValueTransformer::transform_to_storage`] on write and
//! [`ValueTransformer::transform_from_storage`] on read, with the storage key as authenticated
//! data. A read may report `stale = true`: the data is readable but should be rewritten (for
//! example it was encrypted with a key that is no longer the primary one), so updates
//! re-encrypt even when the object is otherwise unchanged.
//!
//! Implementations: [`IdentityTransformer`] (no-op), [`PrefixTransformer`] (test helper) and
//! [`AesGcmTransformer`] (AES-256-GCM with named, rotatable keys, stored in Kubernetes'
//! `k8s:enc:aesgcm:v1:<name>:` format).

use std::fmt;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A transformation failure. On read the storage layer reports it as an internal error
/// (HTTP 500), never as "not found".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// Stored data does not carry any prefix this transformer can read.
    #[error("no matching prefix found")]
    NoMatchingPrefix,
    /// Stored data is too short to hold a nonce and an authentication tag.
    #[error("the stored data was shorter than the required size")]
    TooShort,
    /// Authentication failed: tampered data, wrong key or different authenticated data.
    #[error("message authentication failed")]
    Authentication,
    /// Encryption failed (input too long for the cipher).
    #[error("encryption failed")]
    Encryption,
    /// The operating system's random number generator failed.
    #[error("unable to generate nonce: {0}")]
    Randomness(String),
}

/// The value-transformer hook.
///
/// `key` is the full storage key of the value and is used as additional authenticated data,
/// so a ciphertext cannot be moved to another key. Implementations must be deterministic in
/// what they accept: [`Self::transform_from_storage`] must accept everything
/// [`Self::transform_to_storage`] produced with the same key.
pub trait ValueTransformer: Send + Sync + fmt::Debug {
    /// Turns object bytes into the bytes to store under `key`.
    fn transform_to_storage(&self, plain: &[u8], key: &str) -> Result<Vec<u8>, TransformError>;

    /// Turns stored bytes back into object bytes. The flag is `true` when the data should be
    /// rewritten (it was written under an older configuration).
    fn transform_from_storage(
        &self,
        stored: &[u8],
        key: &str,
    ) -> Result<(Vec<u8>, bool), TransformError>;
}

/// The transformer that stores bytes unchanged and never reports stale data.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityTransformer;

impl ValueTransformer for IdentityTransformer {
    fn transform_to_storage(&self, plain: &[u8], _key: &str) -> Result<Vec<u8>, TransformError> {
        Ok(plain.to_vec())
    }

    fn transform_from_storage(
        &self,
        stored: &[u8],
        _key: &str,
    ) -> Result<(Vec<u8>, bool), TransformError> {
        Ok((stored.to_vec(), false))
    }
}

/// A test transformer: prepends a prefix on write; on read requires the current prefix and
/// strips it ([`TransformError::NoMatchingPrefix`] otherwise). Both the prefix and the
/// reported `stale` flag can be changed at runtime, as the Kubernetes storage suite does
/// ("transformer swap").
#[derive(Debug)]
pub struct PrefixTransformer {
    prefix: RwLock<Vec<u8>>,
    stale: AtomicBool,
}

impl PrefixTransformer {
    /// A transformer using `prefix`, reporting reads as not stale.
    pub fn new(prefix: impl Into<Vec<u8>>) -> Self {
        PrefixTransformer {
            prefix: RwLock::new(prefix.into()),
            stale: AtomicBool::new(false),
        }
    }

    /// The current prefix.
    pub fn prefix(&self) -> Vec<u8> {
        self.prefix
            .read()
            .map_or_else(|p| p.into_inner().clone(), |p| p.clone())
    }

    /// Replaces the prefix used for subsequent writes and required on subsequent reads.
    pub fn set_prefix(&self, prefix: impl Into<Vec<u8>>) {
        let prefix = prefix.into();
        match self.prefix.write() {
            Ok(mut p) => *p = prefix,
            Err(poisoned) => *poisoned.into_inner() = prefix,
        }
    }

    /// Sets the `stale` flag reported by subsequent successful reads.
    pub fn set_stale(&self, stale: bool) {
        self.stale.store(stale, Ordering::SeqCst);
    }

    /// The `stale` flag reads currently report.
    pub fn stale(&self) -> bool {
        self.stale.load(Ordering::SeqCst)
    }
}

impl ValueTransformer for PrefixTransformer {
    fn transform_to_storage(&self, plain: &[u8], _key: &str) -> Result<Vec<u8>, TransformError> {
        let prefix = self.prefix();
        let mut out = Vec::with_capacity(prefix.len() + plain.len());
        out.extend_from_slice(&prefix);
        out.extend_from_slice(plain);
        Ok(out)
    }

    fn transform_from_storage(
        &self,
        stored: &[u8],
        _key: &str,
    ) -> Result<(Vec<u8>, bool), TransformError> {
        let prefix = self.prefix();
        match stored.strip_prefix(prefix.as_slice()) {
            Some(rest) => Ok((rest.to_vec(), self.stale())),
            None => Err(TransformError::NoMatchingPrefix),
        }
    }
}

/// Size in bytes of an AES-256 key.
pub const AES_256_KEY_LEN: usize = 32;
/// Size in bytes of the random GCM nonce stored in front of each ciphertext.
pub const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;
/// The prefix shared by every encrypted value (Kubernetes' envelope marker).
pub const ENCRYPTED_PREFIX: &str = "k8s:enc:";
const AESGCM_PREFIX: &str = "k8s:enc:aesgcm:v1:";

/// A problem with the key configuration of an [`AesGcmTransformer`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyConfigError {
    /// No keys were given.
    #[error("at least one encryption key is required")]
    NoKeys,
    /// A key name is empty or contains `:`, `=` or whitespace.
    #[error(
        "invalid key name {0:?}: must be non-empty and must not contain ':', '=' or whitespace"
    )]
    InvalidName(String),
    /// Two keys share a name.
    #[error("duplicate key name {0:?}")]
    DuplicateName(String),
    /// A key does not have 32 bytes.
    #[error("key {name:?} has {len} bytes; AES-256-GCM needs exactly 32")]
    BadLength {
        /// The key's name.
        name: String,
        /// Its decoded length.
        len: usize,
    },
    /// A key is not valid standard base64.
    #[error("key {name:?} is not valid base64: {detail}")]
    BadBase64 {
        /// The key's name.
        name: String,
        /// The decoder's explanation.
        detail: String,
    },
    /// A key-file line is not `name=base64key`.
    #[error("line {line}: expected `name=base64key`")]
    Syntax {
        /// 1-based line number.
        line: usize,
    },
    /// The key file could not be read.
    #[error("unable to read key file {path}: {detail}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        detail: String,
    },
}

struct NamedKey {
    name: String,
    prefix: Vec<u8>,
    cipher: Aes256Gcm,
}

/// Encryption at rest with AES-256-GCM and named keys (Kubernetes' `aesgcm` provider).
///
/// Stored format: `k8s:enc:aesgcm:v1:<key name>:` + 12-byte random nonce + ciphertext + 16-byte
/// tag, with the storage key as additional authenticated data. The first key encrypts; every
/// key decrypts; data read with a non-primary key is reported stale so the next update
/// re-encrypts it with the primary key (rotation: add the new key first, rewrite, then drop
/// the old one). Data without an encryption prefix (plain JSON written before encryption was
/// enabled) is an error unless [`AesGcmTransformer::allow_plaintext`] is set, in which case it
/// is returned as is and reported stale.
pub struct AesGcmTransformer {
    keys: Vec<NamedKey>,
    allow_plaintext: bool,
}

impl fmt::Debug for AesGcmTransformer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("AesGcmTransformer")
            .field(
                "keys",
                &self.keys.iter().map(|k| &k.name).collect::<Vec<_>>(),
            )
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

impl AesGcmTransformer {
    /// Builds a transformer from `(name, key bytes)` pairs; the first is the primary
    /// (encrypting) key. Names must be unique, non-empty and free of `:`, `=` and whitespace;
    /// keys must be exactly 32 bytes.
    pub fn new<N, K>(keys: impl IntoIterator<Item = (N, K)>) -> Result<Self, KeyConfigError>
    where
        N: Into<String>,
        K: AsRef<[u8]>,
    {
        let mut out: Vec<NamedKey> = Vec::new();
        for (name, key) in keys {
            let name = name.into();
            if name.is_empty() || name.contains([':', '=']) || name.chars().any(char::is_whitespace)
            {
                return Err(KeyConfigError::InvalidName(name));
            }
            if out.iter().any(|k| k.name == name) {
                return Err(KeyConfigError::DuplicateName(name));
            }
            let key = key.as_ref();
            let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| KeyConfigError::BadLength {
                name: name.clone(),
                len: key.len(),
            })?;
            if key.len() != AES_256_KEY_LEN {
                return Err(KeyConfigError::BadLength {
                    name,
                    len: key.len(),
                });
            }
            let prefix = format!("{AESGCM_PREFIX}{name}:").into_bytes();
            out.push(NamedKey {
                name,
                prefix,
                cipher,
            });
        }
        if out.is_empty() {
            return Err(KeyConfigError::NoKeys);
        }
        Ok(AesGcmTransformer {
            keys: out,
            allow_plaintext: false,
        })
    }

    /// Parses a key file and builds the transformer.
    ///
    /// Format: one key per line, `name=base64key` (standard base64 with padding, decoding to
    /// 32 bytes); the first key is the primary. Blank lines and lines starting with `#` are
    /// ignored; whitespace around names and keys is trimmed. Example:
    ///
    /// ```text
    /// # newest first
    /// key2=c2VjcmV0IGlzIHNlY3VyZSwgSSB0aGluayBzbyB0b28hIQ==
    /// key1=dGhpcyBpcyBwYXNzd29yZCB0aGF0IGlzIDMyIGJ5dGVz
    /// ```
    pub fn from_key_config(text: &str) -> Result<Self, KeyConfigError> {
        let mut keys = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, b64)) = line.split_once('=') else {
                return Err(KeyConfigError::Syntax { line: i + 1 });
            };
            let (name, b64) = (name.trim(), b64.trim());
            let bytes = STANDARD
                .decode(b64)
                .map_err(|e| KeyConfigError::BadBase64 {
                    name: name.to_owned(),
                    detail: e.to_string(),
                })?;
            keys.push((name.to_owned(), bytes));
        }
        Self::new(keys)
    }

    /// Reads a key file (format of [`AesGcmTransformer::from_key_config`]).
    pub fn from_key_file(path: impl AsRef<Path>) -> Result<Self, KeyConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| KeyConfigError::Io {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::from_key_config(&text)
    }

    /// Accept (as stale) stored data that carries no encryption prefix, for migrating data
    /// written before encryption was enabled.
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// The key names, primary first.
    pub fn key_names(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.name.as_str()).collect()
    }
}

impl ValueTransformer for AesGcmTransformer {
    fn transform_to_storage(&self, plain: &[u8], key: &str) -> Result<Vec<u8>, TransformError> {
        let primary = self.keys.first().ok_or(TransformError::Encryption)?;
        let mut nonce = [0u8; GCM_NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| TransformError::Randomness(e.to_string()))?;
        let sealed = primary
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: key.as_bytes(),
                },
            )
            .map_err(|_| TransformError::Encryption)?;
        let mut out = Vec::with_capacity(primary.prefix.len() + GCM_NONCE_LEN + sealed.len());
        out.extend_from_slice(&primary.prefix);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn transform_from_storage(
        &self,
        stored: &[u8],
        key: &str,
    ) -> Result<(Vec<u8>, bool), TransformError> {
        for (i, k) in self.keys.iter().enumerate() {
            let Some(rest) = stored.strip_prefix(k.prefix.as_slice()) else {
                continue;
            };
            if rest.len() < GCM_NONCE_LEN + GCM_TAG_LEN {
                return Err(TransformError::TooShort);
            }
            let (nonce, sealed) = rest.split_at(GCM_NONCE_LEN);
            let mut nonce_arr = [0u8; GCM_NONCE_LEN];
            nonce_arr.copy_from_slice(nonce);
            let plain = k
                .cipher
                .decrypt(
                    &Nonce::from(nonce_arr),
                    Payload {
                        msg: sealed,
                        aad: key.as_bytes(),
                    },
                )
                .map_err(|_| TransformError::Authentication)?;
            return Ok((plain, i != 0));
        }
        if self.allow_plaintext && !stored.starts_with(ENCRYPTED_PREFIX.as_bytes()) {
            return Ok((stored.to_vec(), true));
        }
        Err(TransformError::NoMatchingPrefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];

    #[test]
    fn identity() {
        let t = IdentityTransformer;
        let s = t.transform_to_storage(b"abc", "/k").unwrap();
        assert_eq!(s, b"abc");
        assert_eq!(
            t.transform_from_storage(&s, "/k").unwrap(),
            (b"abc".to_vec(), false)
        );
    }

    #[test]
    fn prefix_transformer() {
        let t = PrefixTransformer::new("p1:");
        let s = t.transform_to_storage(b"{}", "/k").unwrap();
        assert_eq!(s, b"p1:{}");
        assert_eq!(
            t.transform_from_storage(&s, "/k").unwrap(),
            (b"{}".to_vec(), false)
        );
        t.set_stale(true);
        assert!(t.stale());
        assert_eq!(
            t.transform_from_storage(&s, "/k").unwrap(),
            (b"{}".to_vec(), true)
        );
        t.set_prefix("p2:");
        assert_eq!(t.prefix(), b"p2:");
        assert_eq!(
            t.transform_from_storage(&s, "/k").unwrap_err(),
            TransformError::NoMatchingPrefix
        );
        assert_eq!(t.transform_to_storage(b"x", "/k").unwrap(), b"p2:x");
    }

    #[test]
    fn aes_round_trip_and_format() {
        let t = AesGcmTransformer::new([("k1", K1)]).unwrap();
        let plain = br#"{"kind":"Pod"}"#;
        let a = t
            .transform_to_storage(plain, "/registry/pods/ns/a")
            .unwrap();
        let b = t
            .transform_to_storage(plain, "/registry/pods/ns/a")
            .unwrap();
        assert!(a.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
        assert_eq!(
            a.len(),
            "k8s:enc:aesgcm:v1:k1:".len() + 12 + plain.len() + 16
        );
        assert_ne!(a, b, "nonces must differ");
        assert!(!a.windows(plain.len()).any(|w| w == plain));
        assert_eq!(
            t.transform_from_storage(&a, "/registry/pods/ns/a").unwrap(),
            (plain.to_vec(), false)
        );
    }

    #[test]
    fn aes_detects_tampering_wrong_key_and_wrong_aad() {
        let t = AesGcmTransformer::new([("k1", K1)]).unwrap();
        let good = t.transform_to_storage(b"secret", "/a").unwrap();
        let prefix_len = "k8s:enc:aesgcm:v1:k1:".len();
        for i in prefix_len..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                t.transform_from_storage(&bad, "/a").unwrap_err(),
                TransformError::Authentication,
                "flip at {i}"
            );
        }
        assert_eq!(
            t.transform_from_storage(&good, "/b").unwrap_err(),
            TransformError::Authentication
        );
        let other = AesGcmTransformer::new([("k1", K2)]).unwrap();
        assert_eq!(
            other.transform_from_storage(&good, "/a").unwrap_err(),
            TransformError::Authentication
        );
        let unknown = AesGcmTransformer::new([("k9", K1)]).unwrap();
        assert_eq!(
            unknown.transform_from_storage(&good, "/a").unwrap_err(),
            TransformError::NoMatchingPrefix
        );
        assert_eq!(
            t.transform_from_storage(&good[..prefix_len + 20], "/a")
                .unwrap_err(),
            TransformError::TooShort
        );
    }

    #[test]
    fn aes_rotation_reports_stale() {
        let old = AesGcmTransformer::new([("k1", K1)]).unwrap();
        let stored = old.transform_to_storage(b"v", "/k").unwrap();
        let rotated = AesGcmTransformer::new([("k2", K2), ("k1", K1)]).unwrap();
        assert_eq!(rotated.key_names(), ["k2", "k1"]);
        assert_eq!(
            rotated.transform_from_storage(&stored, "/k").unwrap(),
            (b"v".to_vec(), true)
        );
        let rewritten = rotated.transform_to_storage(b"v", "/k").unwrap();
        assert!(rewritten.starts_with(b"k8s:enc:aesgcm:v1:k2:"));
        assert_eq!(
            rotated.transform_from_storage(&rewritten, "/k").unwrap(),
            (b"v".to_vec(), false)
        );
        assert!(old.transform_from_storage(&rewritten, "/k").is_err());
    }

    #[test]
    fn aes_plaintext_policy() {
        let strict = AesGcmTransformer::new([("k1", K1)]).unwrap();
        assert_eq!(
            strict.transform_from_storage(b"{}", "/k").unwrap_err(),
            TransformError::NoMatchingPrefix
        );
        let lenient = AesGcmTransformer::new([("k1", K1)])
            .unwrap()
            .allow_plaintext(true);
        assert_eq!(
            lenient.transform_from_storage(b"{}", "/k").unwrap(),
            (b"{}".to_vec(), true)
        );
        // Data encrypted under an unknown key is never passed through as plaintext.
        assert!(
            lenient
                .transform_from_storage(
                    b"k8s:enc:aesgcm:v1:zz:0123456789abcdefghijklmnopqrstuvwxyz",
                    "/k"
                )
                .is_err()
        );
    }

    #[test]
    fn key_config() {
        let k1 = STANDARD.encode(K1);
        let k2 = STANDARD.encode(K2);
        let text = format!("# comment\n\n key2 = {k2}\nkey1={k1}\n");
        let t = AesGcmTransformer::from_key_config(&text).unwrap();
        assert_eq!(t.key_names(), ["key2", "key1"]);
        assert!(!format!("{t:?}").contains(&k1));

        assert_eq!(
            AesGcmTransformer::from_key_config("# none\n").unwrap_err(),
            KeyConfigError::NoKeys
        );
        assert_eq!(
            AesGcmTransformer::from_key_config("justname\n").unwrap_err(),
            KeyConfigError::Syntax { line: 1 }
        );
        let short = STANDARD.encode([0u8; 16]);
        let e = AesGcmTransformer::from_key_config(&format!("a={short}")).unwrap_err();
        assert_eq!(
            e,
            KeyConfigError::BadLength {
                name: "a".into(),
                len: 16
            }
        );
        assert_eq!(
            e.to_string(),
            "key \"a\" has 16 bytes; AES-256-GCM needs exactly 32"
        );
        assert!(matches!(
            AesGcmTransformer::from_key_config("a=!!notbase64").unwrap_err(),
            KeyConfigError::BadBase64 { .. }
        ));
        assert_eq!(
            AesGcmTransformer::from_key_config(&format!("a={k1}\na={k2}")).unwrap_err(),
            KeyConfigError::DuplicateName("a".into())
        );
        assert_eq!(
            AesGcmTransformer::new([("a:b", K1)]).unwrap_err(),
            KeyConfigError::InvalidName("a:b".into())
        );
        assert!(matches!(
            AesGcmTransformer::from_key_file("/nonexistent/keys").unwrap_err(),
            KeyConfigError::Io { .. }
        ));
    }
}
