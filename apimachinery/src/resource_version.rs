//! Resource-version strings (Kubernetes' `APIObjectVersioner.ParseResourceVersion` and the
//! formatting rule of `UpdateObject`).
//!
//! Resource versions are opaque strings to clients; storage renders revisions in decimal and
//! the revision 0 as the empty string.

use std::fmt;

use crate::selector::go_quote;

/// Why a resource-version string was rejected (mirrors Go's `strconv.ParseUint` error kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidResourceVersionKind {
    /// Not a plain base-10 unsigned number (`abc`, `-1`, `+1`, ` 1`, `1_000`, ...).
    Syntax,
    /// A base-10 number that does not fit in a `u64`.
    Range,
}

/// A resource-version string that does not parse.
///
/// `Display` renders the message the Kubernetes storage layer returns as HTTP 400 for list and
/// watch requests: `invalid resource version: resourceVersion: Invalid value: "abc":
/// strconv.ParseUint: parsing "abc": invalid syntax`. [`Self::field_error`] gives the inner
/// field-error text alone (what `storage.InvalidError` prints, used by Get).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidResourceVersion {
    /// The rejected input, verbatim.
    pub value: String,
    /// Syntax or range failure.
    pub kind: InvalidResourceVersionKind,
}

impl InvalidResourceVersion {
    /// The `strconv.ParseUint` error text, e.g. `strconv.ParseUint: parsing "abc": invalid syntax`.
    pub fn parse_error(&self) -> String {
        let why = match self.kind {
            InvalidResourceVersionKind::Syntax => "invalid syntax",
            InvalidResourceVersionKind::Range => "value out of range",
        };
        format!(
            "strconv.ParseUint: parsing {}: {why}",
            go_quote(&self.value)
        )
    }

    /// The field-error text of the `storage.InvalidError` upstream returns:
    /// `resourceVersion: Invalid value: "<value>": <parse error>`.
    pub fn field_error(&self) -> String {
        format!(
            "resourceVersion: Invalid value: {}: {}",
            go_quote(&self.value),
            self.parse_error()
        )
    }
}

impl fmt::Display for InvalidResourceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid resource version: {}", self.field_error())
    }
}

impl std::error::Error for InvalidResourceVersion {}

/// Parses a client-supplied resource version.
///
/// `""` and `"0"` mean "any" and yield 0. Anything else must be a base-10 `u64` made only of
/// ASCII digits (no sign, no whitespace, no underscores), exactly like Go's
/// `strconv.ParseUint(s, 10, 64)`; leading zeros are accepted (`"007"` is 7).
pub fn parse_resource_version(s: &str) -> Result<u64, InvalidResourceVersion> {
    if s.is_empty() || s == "0" {
        return Ok(0);
    }
    let err = |kind| InvalidResourceVersion {
        value: s.to_owned(),
        kind,
    };
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(InvalidResourceVersionKind::Syntax));
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| err(InvalidResourceVersionKind::Range))?;
    }
    Ok(v)
}

/// Formats a revision as a resource-version string: decimal, with 0 rendered as `""`.
pub fn format_resource_version(rv: u64) -> String {
    if rv == 0 {
        String::new()
    } else {
        rv.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_versions() {
        assert_eq!(parse_resource_version("").unwrap(), 0);
        assert_eq!(parse_resource_version("0").unwrap(), 0);
        assert_eq!(parse_resource_version("1").unwrap(), 1);
        assert_eq!(parse_resource_version("007").unwrap(), 7);
        assert_eq!(parse_resource_version("00").unwrap(), 0);
        assert_eq!(
            parse_resource_version("18446744073709551615").unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn rejects_invalid_versions() {
        for s in ["abc", "-1", "+1", " 1", "1 ", "1_000", "0x10", "1.0", "١"] {
            let e = parse_resource_version(s).unwrap_err();
            assert_eq!(e.kind, InvalidResourceVersionKind::Syntax, "{s}");
            assert_eq!(e.value, s);
        }
        let e = parse_resource_version("18446744073709551616").unwrap_err();
        assert_eq!(e.kind, InvalidResourceVersionKind::Range);
    }

    #[test]
    fn messages_match_kubernetes() {
        let e = parse_resource_version("abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid resource version: resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax"#
        );
        assert_eq!(
            e.field_error(),
            r#"resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax"#
        );
        let e = parse_resource_version("99999999999999999999").unwrap_err();
        assert_eq!(
            e.parse_error(),
            r#"strconv.ParseUint: parsing "99999999999999999999": value out of range"#
        );
    }

    #[test]
    fn formats_versions() {
        assert_eq!(format_resource_version(0), "");
        assert_eq!(format_resource_version(42), "42");
        assert_eq!(format_resource_version(u64::MAX), "18446744073709551615");
        for rv in [0, 1, 10, u64::MAX] {
            assert_eq!(
                parse_resource_version(&format_resource_version(rv)).unwrap(),
                rv
            );
        }
    }
}
