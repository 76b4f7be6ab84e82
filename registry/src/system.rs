//! System metadata: UIDs, timestamps and generated names.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Random characters of generated name suffixes (no vowels, no confusable digits), as
/// Kubernetes' `utilrand.String`.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Length of the random suffix appended to `generateName`.
pub const GENERATED_SUFFIX_LENGTH: usize = 5;
/// Longest `generateName` prefix kept before the suffix (63 - 5).
pub const MAX_GENERATED_PREFIX_LENGTH: usize = 63 - GENERATED_SUFFIX_LENGTH;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS source failed: fall back on the clock so names and UIDs still differ.
        let nanos = Timestamp::now().as_nanosecond().to_le_bytes();
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = nanos[i % nanos.len()] ^ (i as u8).wrapping_mul(151);
        }
    }
    bytes
}

/// A random (version 4) UUID in its canonical text form, as `metadata.uid`.
pub fn new_uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `names.SimpleNameGenerator`: the prefix (cut to 58 bytes) plus 5 random characters.
pub fn generate_name(prefix: &str) -> String {
    let mut base = prefix.to_owned();
    if base.len() > MAX_GENERATED_PREFIX_LENGTH {
        let mut cut = MAX_GENERATED_PREFIX_LENGTH;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base.truncate(cut);
    }
    let random = random_bytes::<GENERATED_SUFFIX_LENGTH>();
    for byte in random {
        base.push(char::from(
            SUFFIX_ALPHABET[usize::from(byte) % SUFFIX_ALPHABET.len()],
        ));
    }
    base
}

/// Now, truncated to whole seconds (Kubernetes' `metav1.Time` precision).
pub fn now() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// `time` moved by `seconds` (saturating at the representable range).
pub fn add_seconds(time: &Time, seconds: i64) -> Time {
    Time(
        time.0
            .checked_add(SignedDuration::from_secs(seconds))
            .unwrap_or(time.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_names() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
        assert_eq!(generate_name(&"a".repeat(80)).len(), 63);
    }
}

/// Drops empty `ObjectMeta` maps and lists, which Kubernetes never stores or returns (its Go
/// types mark them `omitempty`): a client sending `labels: {}` or removing the last
/// finalizer reads back no field, not an empty one.
pub fn omit_empty_meta(meta: &mut ObjectMeta) {
    if meta.labels.as_ref().is_some_and(|m| m.is_empty()) {
        meta.labels = None;
    }
    if meta.annotations.as_ref().is_some_and(|m| m.is_empty()) {
        meta.annotations = None;
    }
    if meta.finalizers.as_ref().is_some_and(Vec::is_empty) {
        meta.finalizers = None;
    }
    if meta.owner_references.as_ref().is_some_and(Vec::is_empty) {
        meta.owner_references = None;
    }
    if meta.managed_fields.as_ref().is_some_and(Vec::is_empty) {
        meta.managed_fields = None;
    }
}

#[cfg(test)]
mod omit_empty_tests {
    use super::*;

    #[test]
    fn empty_meta_collections_are_dropped_and_others_kept() {
        let mut meta = ObjectMeta {
            labels: Some(Default::default()),
            annotations: Some([("a".to_owned(), "b".to_owned())].into()),
            finalizers: Some(Vec::new()),
            owner_references: Some(Vec::new()),
            managed_fields: Some(Vec::new()),
            ..ObjectMeta::default()
        };
        omit_empty_meta(&mut meta);
        assert_eq!(meta.labels, None);
        assert_eq!(meta.annotations.map(|a| a.len()), Some(1));
        assert_eq!(meta.finalizers, None);
        assert_eq!(meta.owner_references, None);
        assert_eq!(meta.managed_fields, None);
    }
}
