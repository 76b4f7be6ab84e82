//! Continue tokens, byte-compatible with Kubernetes (`k8s.io/apiserver/pkg/storage/continue.go`).
//!
//! A token is the unpadded base64url encoding of the JSON object
//! `{"v":"meta.k8s.io/v1","rv":<int64>,"start":"<key relative to the list prefix>"}`, written
//! with Go's `encoding/json` string escaping so that tokens equal Go's byte for byte.
//! Decoding applies every upstream check, including the `path.Clean` traversal defence.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// The only token version Kubernetes understands.
pub const CONTINUE_TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// Why a continue token could not be encoded or decoded. `Display` is upstream's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContinueError {
    /// The token is not valid base64url (`ErrGenericInvalidKey` wrapping the decoder error):
    /// `continue key is not valid: illegal base64 data at input byte N`.
    InvalidBase64 {
        /// Byte offset Go's decoder reports.
        offset: usize,
    },
    /// The decoded bytes are not a JSON token object (`ErrGenericInvalidKey` + detail).
    InvalidJson {
        /// The decoder's explanation.
        detail: String,
    },
    /// `v` is not `meta.k8s.io/v1` (`ErrUnrecognizedEncodedVersion`, followed by the version).
    UnrecognizedVersion {
        /// The version found (possibly empty).
        version: String,
    },
    /// `rv` is 0 (`ErrInvalidStartRV`).
    InvalidStartRv,
    /// `start` is empty (`ErrEmptyStartKey`).
    EmptyStartKey,
    /// `start` is not a clean path (traversal, `.`/`..`, doubled or trailing slash):
    /// `ErrGenericInvalidKey` followed by the start key.
    InvalidStartKey {
        /// The start key as found in the token.
        start: String,
    },
    /// Encoding: the key does not start with the list prefix.
    KeyPrefixMismatch {
        /// The key to encode.
        key: String,
        /// The list's key prefix.
        key_prefix: String,
    },
}

impl ContinueError {
    /// Whether this is one of the decode errors upstream reports through
    /// `ErrGenericInvalidKey` (base64, JSON or path problems).
    pub fn is_generic_invalid_key(&self) -> bool {
        matches!(
            self,
            ContinueError::InvalidBase64 { .. }
                | ContinueError::InvalidJson { .. }
                | ContinueError::InvalidStartKey { .. }
        )
    }
}

impl fmt::Display for ContinueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const P: &str = "continue key is not valid";
        match self {
            ContinueError::InvalidBase64 { offset } => {
                write!(f, "{P}: illegal base64 data at input byte {offset}")
            }
            ContinueError::InvalidJson { detail } => write!(f, "{P}: {detail}"),
            ContinueError::UnrecognizedVersion { version } => write!(
                f,
                "{P}: server does not recognize this encoded version {version}"
            ),
            ContinueError::InvalidStartRv => write!(
                f,
                "{P}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
            ),
            ContinueError::EmptyStartKey => {
                write!(f, "{P}: encoded start key empty (version meta.k8s.io/v1)")
            }
            ContinueError::InvalidStartKey { start } => write!(f, "{P}: {start}"),
            ContinueError::KeyPrefixMismatch { key, key_prefix } => write!(
                f,
                "unable to encode next field: the key and key prefix do not match {key_prefix} {key}"
            ),
        }
    }
}

impl std::error::Error for ContinueError {}

/// Appends `s` as a JSON string the way Go's `json.Marshal` writes it: `\"`, `\\`, `\n`, `\r`,
/// `\t`, `\b`, `\f` (Go >= 1.22), other control characters as `\u00XX` (lowercase hex), the
/// HTML-sensitive `<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`, and U+2028/U+2029 as
/// `\u2028`/`\u2029`; everything else verbatim.
pub fn write_go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Encodes a continue token for the next page (upstream `EncodeContinue`).
///
/// `key` is the full key to resume from (usually the last returned key plus `"\0"`, see
/// [`next_continue_token`]); `key_prefix` is the listed prefix (e.g. `/registry/pods/ns/`).
/// Errors with [`ContinueError::KeyPrefixMismatch`] unless `key` starts with a non-empty
/// `key_prefix` (Go's `TrimPrefix` check also rejects the empty prefix).
pub fn encode_continue(key: &str, key_prefix: &str, rv: i64) -> Result<String, ContinueError> {
    let start = match key.strip_prefix(key_prefix) {
        Some(rest) if !key_prefix.is_empty() => rest,
        _ => {
            return Err(ContinueError::KeyPrefixMismatch {
                key: key.to_owned(),
                key_prefix: key_prefix.to_owned(),
            });
        }
    };
    let mut json = String::with_capacity(start.len() + 48);
    json.push_str("{\"v\":\"meta.k8s.io/v1\",\"rv\":");
    json.push_str(&rv.to_string());
    json.push_str(",\"start\":");
    write_go_json_string(&mut json, start);
    json.push('}');
    Ok(URL_SAFE_NO_PAD.encode(json.as_bytes()))
}

/// The token for the page after `last_key`: resumes at `last_key + "\0"`, the smallest key
/// strictly after it, at snapshot revision `rv` (upstream `PrepareContinueToken`'s key rule).
pub fn next_continue_token(
    last_key: &str,
    key_prefix: &str,
    rv: i64,
) -> Result<String, ContinueError> {
    encode_continue(&format!("{last_key}\u{0}"), key_prefix, rv)
}

/// Decodes a continue token against the list prefix (upstream `DecodeContinue`), returning the
/// full key to resume from (`key_prefix` + cleaned start without its leading `/`) and the
/// revision. A negative revision is allowed (it means "latest", used after compaction).
///
/// Checks, in order: base64url without padding (CR/LF ignored as Go does), a JSON object whose
/// fields `v`, `rv`, `start` match case-insensitively like Go's decoder, version
/// `meta.k8s.io/v1`, `rv != 0`, non-empty `start`, and `start` (with a `/` prepended when
/// missing) unchanged by [`clean`].
pub fn decode_continue(token: &str, key_prefix: &str) -> Result<(String, i64), ContinueError> {
    let data = decode_base64url_like_go(token)?;
    let parsed = parse_token_json(&data)?;
    if parsed.version != CONTINUE_TOKEN_VERSION {
        return Err(ContinueError::UnrecognizedVersion {
            version: parsed.version,
        });
    }
    if parsed.rv == 0 {
        return Err(ContinueError::InvalidStartRv);
    }
    if parsed.start.is_empty() {
        return Err(ContinueError::EmptyStartKey);
    }
    let key = if parsed.start.starts_with('/') {
        parsed.start.clone()
    } else {
        format!("/{}", parsed.start)
    };
    let cleaned = clean(&key);
    if cleaned != key {
        return Err(ContinueError::InvalidStartKey {
            start: parsed.start,
        });
    }
    Ok((format!("{key_prefix}{}", &cleaned[1..]), parsed.rv))
}

/// Go's `base64.RawURLEncoding.DecodeString`, including its error offsets: `\r` and `\n` are
/// skipped, `=` and other bytes outside the alphabet are illegal, and a lone trailing
/// character is reported at `len - 1`. Non-zero trailing bits are accepted (Go is not strict).
fn decode_base64url_like_go(token: &str) -> Result<Vec<u8>, ContinueError> {
    fn val(b: u8) -> Option<u32> {
        Some(u32::from(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        }))
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let mut quantum: u32 = 0;
    let mut n = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\r' || b == b'\n' {
            continue;
        }
        let v = val(b).ok_or(ContinueError::InvalidBase64 { offset: i })?;
        quantum = (quantum << 6) | v;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(quantum >> 16) as u8, (quantum >> 8) as u8, quantum as u8]);
            quantum = 0;
            n = 0;
        }
    }
    match n {
        0 => {}
        1 => {
            return Err(ContinueError::InvalidBase64 {
                offset: bytes.len().saturating_sub(1),
            });
        }
        2 => out.push((quantum >> 4) as u8),
        _ => {
            out.push((quantum >> 10) as u8);
            out.push((quantum >> 2) as u8);
        }
    }
    Ok(out)
}

#[derive(Default)]
struct RawToken {
    version: String,
    rv: i64,
    start: String,
}

/// Go's `encoding/json` field matching: exact, else Unicode simple case folding. For the
/// names here that is ASCII case-insensitivity plus `ſ` (U+017F) folding to `s`.
fn fold_field(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '\u{17f}' => 's',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn json_kind(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(_) => "bool".into(),
        serde_json::Value::Number(n) => format!("number {n}"),
        serde_json::Value::String(_) => "string".into(),
        serde_json::Value::Array(_) => "array".into(),
        serde_json::Value::Object(_) => "object".into(),
    }
}

struct TokenVisitor;

impl<'de> Visitor<'de> for TokenVisitor {
    type Value = Result<RawToken, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a continue token object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        // Top-level `null` leaves every field at its zero value in Go.
        Ok(Ok(RawToken::default()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut tok = RawToken::default();
        let mut first_type_error: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            let value: serde_json::Value = map.next_value()?;
            let field = fold_field(&key);
            let mismatch = |field: &str, go_type: &str, v: &serde_json::Value| {
                let kind = match v {
                    serde_json::Value::Number(_) if go_type == "string" => "number".to_owned(),
                    other => json_kind(other),
                };
                format!(
                    "json: cannot unmarshal {kind} into Go struct field continueToken.{field} of type {go_type}"
                )
            };
            let err = match (field.as_str(), &value) {
                (_, serde_json::Value::Null) => None,
                ("v", serde_json::Value::String(s)) => {
                    tok.version = s.clone();
                    None
                }
                ("start", serde_json::Value::String(s)) => {
                    tok.start = s.clone();
                    None
                }
                ("rv", serde_json::Value::Number(n)) => match n.as_i64() {
                    Some(rv) if !n.is_f64() => {
                        tok.rv = rv;
                        None
                    }
                    _ => Some(mismatch("rv", "int64", &value)),
                },
                ("v", v) => Some(mismatch("v", "string", v)),
                ("start", v) => Some(mismatch("start", "string", v)),
                ("rv", v) => Some(mismatch("rv", "int64", v)),
                _ => None,
            };
            if first_type_error.is_none() {
                first_type_error = err;
            }
        }
        Ok(match first_type_error {
            Some(e) => Err(e),
            None => Ok(tok),
        })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(top_level_mismatch("bool")))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(top_level_mismatch("number")))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(top_level_mismatch("number")))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(top_level_mismatch("number")))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(top_level_mismatch("string")))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Err(top_level_mismatch("array")))
    }
}

fn top_level_mismatch(kind: &str) -> String {
    format!("json: cannot unmarshal {kind} into Go value of type storage.continueToken")
}

fn parse_token_json(data: &[u8]) -> Result<RawToken, ContinueError> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let res = (&mut de)
        .deserialize_any(TokenVisitor)
        .and_then(|r| de.end().map(|()| r));
    match res {
        Ok(Ok(tok)) => Ok(tok),
        Ok(Err(detail)) => Err(ContinueError::InvalidJson { detail }),
        Err(e) => Err(ContinueError::InvalidJson {
            detail: e.to_string(),
        }),
    }
}

/// Go's `path.Clean`: the shortest path equivalent to `p` by purely lexical processing —
/// repeated slashes collapse, `.` elements go, `..` removes the preceding element (and is
/// dropped at the root of a rooted path), trailing slashes go; the empty result is `.`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let path = p.as_bytes();
    let n = path.len();
    let rooted = path[0] == b'/';
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0usize, 0usize);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    let at = |i: usize| path.get(i).copied();
    while r < n {
        let c = path[r];
        if c == b'/' || (c == b'.' && matches!(at(r + 1), None | Some(b'/'))) {
            // Empty element or `.`: skip it.
            r += 1;
        } else if c == b'.' && at(r + 1) == Some(b'.') && matches!(at(r + 2), None | Some(b'/')) {
            r += 2;
            if out.len() > dotdot {
                out.pop();
                while out.len() > dotdot && out.last() != Some(&b'/') {
                    out.pop();
                }
                // Drop the separating slash too (Go keeps `w` at the slash position).
                if out.len() > dotdot {
                    out.pop();
                }
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".to_owned();
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token built like upstream's `encodeContinueOrDie` (any version / rv / start).
    fn token(v: &str, rv: i64, start: &str) -> String {
        let mut json = String::from("{\"v\":");
        write_go_json_string(&mut json, v);
        json.push_str(&format!(",\"rv\":{rv},\"start\":"));
        write_go_json_string(&mut json, start);
        json.push('}');
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn upstream_decode_table() {
        // Port of Test_decodeContinue (continue_test.go).
        type Want = Result<(&'static str, i64), fn(&ContinueError) -> bool>;
        let cases: Vec<(&str, String, Want)> = vec![
            (
                "valid",
                token("meta.k8s.io/v1", 1, "key"),
                Ok(("/test/key", 1)),
            ),
            (
                "root path",
                token("meta.k8s.io/v1", 1, "/"),
                Ok(("/test/", 1)),
            ),
            (
                "empty version",
                token("", 1, "key"),
                Err(|e| matches!(e, ContinueError::UnrecognizedVersion { .. })),
            ),
            (
                "invalid version",
                token("v1", 1, "key"),
                Err(|e| matches!(e, ContinueError::UnrecognizedVersion { .. })),
            ),
            (
                "invalid RV",
                token("meta.k8s.io/v1", 0, "key"),
                Err(|e| *e == ContinueError::InvalidStartRv),
            ),
            (
                "no start Key",
                token("meta.k8s.io/v1", 1, ""),
                Err(|e| *e == ContinueError::EmptyStartKey),
            ),
            (
                "path traversal - parent",
                token("meta.k8s.io/v1", 1, "../key"),
                Err(ContinueError::is_generic_invalid_key),
            ),
            (
                "path traversal - local",
                token("meta.k8s.io/v1", 1, "./key"),
                Err(ContinueError::is_generic_invalid_key),
            ),
            (
                "path traversal - double parent",
                token("meta.k8s.io/v1", 1, "./../key"),
                Err(ContinueError::is_generic_invalid_key),
            ),
            (
                "path traversal - after parent",
                token("meta.k8s.io/v1", 1, "key/../.."),
                Err(ContinueError::is_generic_invalid_key),
            ),
        ];
        for (name, tok, want) in cases {
            let got = decode_continue(&tok, "/test/");
            match (got, want) {
                (Ok((k, rv)), Ok((wk, wrv))) => {
                    assert_eq!((k.as_str(), rv), (wk, wrv), "{name}");
                }
                (Err(e), Err(check)) => assert!(check(&e), "{name}: {e:?}"),
                (got, _) => panic!("{name}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn known_tokens_are_byte_exact() {
        // base64url("{\"v\":\"meta.k8s.io/v1\",\"rv\":1,\"start\":\"key\"}")
        assert_eq!(
            encode_continue("/test/key", "/test/", 1).unwrap(),
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJrZXkifQ"
        );
        // The usual next-page token: last key + "\0", escaped as \u0000 like Go.
        assert_eq!(
            next_continue_token("/registry/pods/ns/foo", "/registry/pods/ns/", 12).unwrap(),
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIsInN0YXJ0IjoiZm9vXHUwMDAwIn0"
        );
        // HTML-sensitive characters, U+2028 and a negative rv.
        assert_eq!(
            encode_continue("/p/a<b>&c\u{2028}\"\\\u{1}\u{8}", "/p/", -1).unwrap(),
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0IjoiYVx1MDAzY2JcdTAwM2VcdTAwMjZjXHUyMDI4XCJcXFx1MDAwMVxiIn0"
        );
    }

    #[test]
    fn go_json_escaping() {
        let mut s = String::new();
        write_go_json_string(
            &mut s,
            "a\u{0}\u{1f}\n\r\t\u{8}\u{c}<>&\u{2028}\u{2029}\u{7f}é\"\\",
        );
        assert_eq!(
            s,
            r#""a\u0000\u001f\n\r\t\b\f\u003c\u003e\u0026\u2028\u2029"#.to_owned()
                + "\u{7f}é\\\"\\\\\""
        );
    }

    #[test]
    fn round_trips() {
        for (key, prefix, rv) in [
            ("/registry/pods/ns/a\u{0}", "/registry/pods/ns/", 5),
            ("/x/\u{fc}/\u{f6}", "/x/", i64::MAX),
            ("/x/y", "/x/", -1),
            ("/x/a<b>&c", "/x/", 3),
        ] {
            let tok = encode_continue(key, prefix, rv).unwrap();
            assert_eq!(decode_continue(&tok, prefix).unwrap(), (key.to_owned(), rv));
        }
        // A key equal to the prefix encodes an empty start, which decoding rejects (as upstream).
        let tok = encode_continue("/test/", "/test/", 7).unwrap();
        assert_eq!(
            decode_continue(&tok, "/test/").unwrap_err(),
            ContinueError::EmptyStartKey
        );
    }

    #[test]
    fn encode_requires_the_prefix() {
        let e = encode_continue("/other/key", "/test/", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to encode next field: the key and key prefix do not match /test/ /other/key"
        );
        assert!(encode_continue("/test/key", "", 1).is_err());
    }

    #[test]
    fn decode_error_messages() {
        assert_eq!(
            decode_continue("a", "/p/").unwrap_err().to_string(),
            "continue key is not valid: illegal base64 data at input byte 0"
        );
        assert_eq!(
            decode_continue("abc=", "/p/").unwrap_err().to_string(),
            "continue key is not valid: illegal base64 data at input byte 3"
        );
        assert_eq!(
            decode_continue("ab+c", "/p/").unwrap_err(),
            ContinueError::InvalidBase64 { offset: 2 }
        );
        assert_eq!(
            decode_continue(&token("v1", 1, "key"), "/p/")
                .unwrap_err()
                .to_string(),
            "continue key is not valid: server does not recognize this encoded version v1"
        );
        assert_eq!(
            decode_continue(&token("", 1, "key"), "/p/")
                .unwrap_err()
                .to_string(),
            "continue key is not valid: server does not recognize this encoded version "
        );
        assert_eq!(
            decode_continue(&token(CONTINUE_TOKEN_VERSION, 0, "key"), "/p/")
                .unwrap_err()
                .to_string(),
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        );
        assert_eq!(
            decode_continue(&token(CONTINUE_TOKEN_VERSION, 1, ""), "/p/")
                .unwrap_err()
                .to_string(),
            "continue key is not valid: encoded start key empty (version meta.k8s.io/v1)"
        );
        assert_eq!(
            decode_continue(&token(CONTINUE_TOKEN_VERSION, 1, "../key"), "/p/")
                .unwrap_err()
                .to_string(),
            "continue key is not valid: ../key"
        );
        let not_json = URL_SAFE_NO_PAD.encode("nope");
        assert!(
            decode_continue(&not_json, "/p/")
                .unwrap_err()
                .to_string()
                .starts_with("continue key is not valid: ")
        );
        let wrong_type = URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":"1","start":"k"}"#);
        assert_eq!(
            decode_continue(&wrong_type, "/p/").unwrap_err().to_string(),
            "continue key is not valid: json: cannot unmarshal string into Go struct field continueToken.rv of type int64"
        );
        let array = URL_SAFE_NO_PAD.encode("[1]");
        assert_eq!(
            decode_continue(&array, "/p/").unwrap_err().to_string(),
            "continue key is not valid: json: cannot unmarshal array into Go value of type storage.continueToken"
        );
        let float = URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":1.5,"start":"k"}"#);
        assert!(decode_continue(&float, "/p/").is_err());
    }

    #[test]
    fn decode_accepts_go_leniencies() {
        // Case-insensitive field names, unknown fields, nulls, key order, CR/LF in base64,
        // whitespace in the JSON.
        let json = r#" { "V":"meta.k8s.io/v1", "x":[1,{}], "Rv":3, "ſtart":"k", "start":null } "#;
        let tok = URL_SAFE_NO_PAD.encode(json);
        let with_newlines = format!("{}\r\n{}", &tok[..10], &tok[10..]);
        assert_eq!(
            decode_continue(&with_newlines, "/p/").unwrap(),
            ("/p/k".to_owned(), 3)
        );
        // Duplicate keys: the last one wins.
        let dup = URL_SAFE_NO_PAD
            .encode(r#"{"v":"meta.k8s.io/v1","rv":1,"rv":9,"start":"a","start":"b"}"#);
        assert_eq!(
            decode_continue(&dup, "/p/").unwrap(),
            ("/p/b".to_owned(), 9)
        );
        // Top-level null: every field zero, so the version is unrecognised.
        let null = URL_SAFE_NO_PAD.encode("null");
        assert!(matches!(
            decode_continue(&null, "/p/").unwrap_err(),
            ContinueError::UnrecognizedVersion { .. }
        ));
        // Padding-free decoding also ignores non-zero trailing bits like Go's non-strict mode.
        assert!(decode_base64url_like_go("QR").is_ok());
    }

    #[test]
    fn traversal_defence() {
        let ok = ["key", "/key", "a/b", "a..b", "..a", "a/.b", "/"];
        for s in ok {
            assert!(
                decode_continue(&token(CONTINUE_TOKEN_VERSION, 1, s), "/p/").is_ok(),
                "{s}"
            );
        }
        let bad = [
            "..", ".", "../key", "./key", "a//b", "a/", "/a/", "a/./b", "a/..", "//", "a/../b",
        ];
        for s in bad {
            let e = decode_continue(&token(CONTINUE_TOKEN_VERSION, 5, s), "/p/").unwrap_err();
            assert_eq!(
                e,
                ContinueError::InvalidStartKey {
                    start: s.to_owned()
                },
                "{s}"
            );
        }
        assert_eq!(
            decode_continue(&token(CONTINUE_TOKEN_VERSION, -1, "a"), "/p/").unwrap(),
            ("/p/a".to_owned(), -1)
        );
    }

    #[test]
    fn clean_matches_go_documented_cases() {
        // Go's path_test.go cleantests.
        let cases = [
            ("", "."),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/", "a/b/c"),
            ("./", "."),
            ("../", ".."),
            ("../../", "../.."),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("//abc//", "/abc"),
            ("abc//", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "clean({input:?})");
            // Clean is idempotent.
            assert_eq!(clean(want), want);
        }
    }
}
