//! Field selectors: Kubernetes' `fields.ParseSelector` grammar with backslash escaping,
//! matching, per-kind transformation and canonical rendering.
//!
//! A field selector is a comma-separated AND of terms `field=value`, `field==value` or
//! `field!=value`. The field name is taken literally up to the first operator; in the value,
//! `\\`, `\,` and `\=` stand for `\`, `,` and `=` (an unescaped `,` ends the term, an unescaped
//! `=` or any other escape is an error), exactly as upstream `UnescapeValue`.

use std::collections::BTreeMap;
use std::fmt;

use super::SelectorError;
use super::quote::go_quote;

/// The selectable fields of an object (`metadata.name`, `metadata.namespace`, kind-specific
/// fields such as `spec.nodeName`). A field absent from the map reads as the empty string.
pub type Fields = BTreeMap<String, String>;

/// The operator of one field-selector term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`: the field equals the value.
    Equals,
    /// `field!=value`: the field differs from the value.
    NotEquals,
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path, e.g. `metadata.name`.
    pub field: String,
    /// `=` / `==` or `!=`.
    pub operator: FieldOperator,
    /// The unescaped value.
    pub value: String,
}

impl FieldRequirement {
    /// Whether `fields` satisfy this term. Like Kubernetes' `Fields.Get`, a missing field reads
    /// as `""`: it fails `f=x` and passes `f!=x` for any non-empty `x`, and `f=` matches it.
    pub fn matches(&self, fields: &Fields) -> bool {
        let have = fields.get(&self.field).map_or("", String::as_str);
        match self.operator {
            FieldOperator::Equals => have == self.value,
            FieldOperator::NotEquals => have != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    /// `field=escaped-value` or `field!=escaped-value` (`==` renders as `=`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A parsed field selector: the AND of its terms. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

/// Escapes a literal value for use in a field selector (upstream `fields.EscapeValue`):
/// `\` becomes `\\`, `,` becomes `\,` and `=` becomes `\=`.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reverses [`escape_value`] (upstream `fields.UnescapeValue`).
///
/// Errors: `invalid field selector: invalid escape sequence: \x` for an escape other than
/// `\\`, `\,`, `\=` (or a trailing lone `\`), and `invalid field selector: unescaped character
/// in value: 44` for a bare `,` (44) or `=` (61) — upstream prints the Go rune as a number.
pub fn unescape_value(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(SelectorError::new(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    )));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(SelectorError::new(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(SelectorError::new(
            "invalid field selector: invalid escape sequence: \\",
        ));
    }
    Ok(out)
}

/// Splits on commas not preceded by an escaping backslash; escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator occurrence, trying `!=`, `==`, `=` at each position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, rhs));
            }
        }
    }
    None
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector with the single term `field=value` (upstream `OneTermEqualSelector`).
    pub fn one_term_equal(field: impl Into<String>, value: impl Into<String>) -> Self {
        FieldSelector {
            terms: vec![FieldRequirement {
                field: field.into(),
                operator: FieldOperator::Equals,
                value: value.into(),
            }],
        }
    }

    /// Builds a selector from terms, kept in the given order.
    pub fn from_requirements(terms: Vec<FieldRequirement>) -> Self {
        FieldSelector { terms }
    }

    /// Parses a field selector (upstream `fields.ParseSelector`).
    ///
    /// Terms are split on unescaped commas, sorted as raw strings, empty terms skipped; each
    /// must contain `!=`, `==` or `=` (else `invalid selector: '<input>'; can't understand
    /// '<term>'`), and its value is unescaped with [`unescape_value`]. Field names are not
    /// validated here; use [`FieldSelector::transform`] for per-kind checks.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, operator, rhs)) = split_term(part) else {
                return Err(SelectorError::new(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            terms.push(FieldRequirement {
                field: lhs.to_owned(),
                operator,
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Parses and then applies [`FieldSelector::transform`] (upstream `ParseAndTransformSelector`).
    pub fn parse_and_transform<F>(s: &str, f: F) -> Result<Self, SelectorError>
    where
        F: FnMut(&str, &str) -> Result<(String, String), SelectorError>,
    {
        Self::parse(s)?.transform(f)
    }

    /// Whether the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms in order (sorted by their raw text when parsed).
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// Whether every term matches `fields` (see [`FieldRequirement::matches`]).
    pub fn matches(&self, fields: &Fields) -> bool {
        self.terms.iter().all(|t| t.matches(fields))
    }

    /// The value of the first `field=value` term on `field`, if any (`!=` terms never count).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.operator == FieldOperator::Equals && t.field == field)
            .map(|t| t.value.as_str())
    }

    /// Returns a copy with `f(field, value) -> (new_field, new_value)` applied to every term, or
    /// the first error `f` returns. Used to validate and rename fields per kind, e.g. rejecting
    /// unknown fields with [`SelectorError::unsupported_field`].
    pub fn transform<F>(&self, mut f: F) -> Result<Self, SelectorError>
    where
        F: FnMut(&str, &str) -> Result<(String, String), SelectorError>,
    {
        let mut terms = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            let (field, value) = f(&t.field, &t.value)?;
            terms.push(FieldRequirement {
                field,
                operator: t.operator,
                value,
            });
        }
        Ok(FieldSelector { terms })
    }
}

impl fmt::Display for FieldSelector {
    /// Terms joined with `,`, values escaped with [`escape_value`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = SelectorError;

    /// Same as [`FieldSelector::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The field conversion every kind supports (upstream `DefaultMetaV1FieldSelectorConversion`):
/// `metadata.name` and `metadata.namespace` pass through unchanged; anything else is rejected
/// with `"<field>" is not a known field selector: only "metadata.name", "metadata.namespace"`.
pub fn default_field_conversion(
    field: &str,
    value: &str,
) -> Result<(String, String), SelectorError> {
    match field {
        "metadata.name" | "metadata.namespace" => Ok((field.to_owned(), value.to_owned())),
        other => Err(SelectorError::new(format!(
            "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            go_quote(other)
        ))),
    }
}

/// A kind-specific field conversion over a fixed list of `known` labels (the shape of
/// upstream's `AddFieldLabelConversionFunc` switches): a known label passes through
/// unchanged, anything else is rejected with `field label not supported: <label>`.
pub fn known_field_conversion(
    known: &[&str],
    field: &str,
    value: &str,
) -> Result<(String, String), SelectorError> {
    if known.contains(&field) {
        Ok((field.to_owned(), value.to_owned()))
    } else {
        Err(SelectorError::unsupported_field(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_renders_like_upstream() {
        // Upstream TestSelectorParse (fields): input -> String().
        let cases = [
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a!=b", "a!=b"),
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("z=c,y=b,x=a", "x=a,y=b,z=c"),
            ("x!=a,y=b", "x!=a,y=b"),
            ("x=,z= ", "x=,z= "),
            (",a=b,", "a=b"),
            (r"x=a\,b", r"x=a\,b"),
            (r"x=a\=b", r"x=a\=b"),
            (r"x=a\\b", r"x=a\\b"),
            (r"x=\\\,\=", r"x=\\\,\="),
            ("x=a!b", "x=a!b"),
            ("x==!b", "x=!b"),
        ];
        for (input, want) in cases {
            let s = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.to_string(), want, "{input:?}");
        }
        let s = FieldSelector::parse(r"x=a\,b\=c\\d").unwrap();
        assert_eq!(s.requirements()[0].value, r"a,b=c\d");
        // `a=b=c`: splits at the first `=`; the remaining `=` must be escaped.
        let s = FieldSelector::parse("a==b").unwrap();
        assert_eq!(s.requirements()[0].value, "b");
        let s = FieldSelector::parse("a!==b");
        assert!(s.is_err());
    }

    #[test]
    fn rejects_like_upstream() {
        let cases = [
            ("x", "invalid selector: 'x'; can't understand 'x'"),
            ("a=b,x", "invalid selector: 'a=b,x'; can't understand 'x'"),
            (
                "x=a=b",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "x=a,b=c,d",
                "invalid selector: 'x=a,b=c,d'; can't understand 'd'",
            ),
            (
                r"x=a\b",
                r"invalid field selector: invalid escape sequence: \b",
            ),
            (
                r"x=a\!",
                r"invalid field selector: invalid escape sequence: \!",
            ),
            (
                r"x=a\",
                r"invalid field selector: invalid escape sequence: \",
            ),
            (
                "a!==b",
                "invalid field selector: unescaped character in value: 61",
            ),
        ];
        for (input, want) in cases {
            let e = FieldSelector::parse(input).expect_err(input);
            assert_eq!(e.message(), want, "{input:?}");
        }
        // An escaped comma does not split terms, so the term keeps its comma.
        assert_eq!(
            FieldSelector::parse(r"x\,y").unwrap_err().message(),
            r"invalid selector: 'x\,y'; can't understand 'x\,y'"
        );
    }

    #[test]
    fn matching() {
        let f = fields(&[("metadata.name", "foo"), ("status.phase", "Running")]);
        let cases = [
            ("", true),
            ("metadata.name=foo", true),
            ("metadata.name==foo", true),
            ("metadata.name=bar", false),
            ("metadata.name!=bar", true),
            ("metadata.name!=foo", false),
            ("spec.nodeName=x", false),
            ("spec.nodeName!=x", true),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("metadata.name=foo,status.phase=Running", true),
            ("metadata.name=foo,status.phase!=Running", false),
        ];
        for (sel, want) in cases {
            assert_eq!(
                FieldSelector::parse(sel).unwrap().matches(&f),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn exact_match_and_transform() {
        let s = FieldSelector::parse("metadata.namespace!=a,metadata.name=n,metadata.namespace=ns")
            .unwrap();
        assert_eq!(s.requires_exact_match("metadata.name"), Some("n"));
        assert_eq!(s.requires_exact_match("metadata.namespace"), Some("ns"));
        assert_eq!(s.requires_exact_match("spec.x"), None);
        let only_ne = FieldSelector::parse("metadata.name!=n").unwrap();
        assert_eq!(only_ne.requires_exact_match("metadata.name"), None);

        let renamed = FieldSelector::parse("name=a,spec.x!=b")
            .unwrap()
            .transform(|f, v| match f {
                "name" => Ok(("metadata.name".into(), v.into())),
                "spec.x" => Ok((f.into(), v.to_uppercase())),
                other => Err(SelectorError::unsupported_field(other)),
            })
            .unwrap();
        assert_eq!(renamed.to_string(), "metadata.name=a,spec.x!=B");

        let e = FieldSelector::parse_and_transform("spec.bogus=1", |f, _| {
            Err(SelectorError::unsupported_field(f))
        })
        .unwrap_err();
        assert_eq!(e.message(), "field label not supported: spec.bogus");

        let e = FieldSelector::parse_and_transform("spec.bogus=1", default_field_conversion)
            .unwrap_err();
        assert_eq!(
            e.message(),
            r#""spec.bogus" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        let e = known_field_conversion(&["type"], "spec.x", "1").unwrap_err();
        assert_eq!(e.message(), "field label not supported: spec.x");
        assert_eq!(
            known_field_conversion(&["type"], "type", "Opaque").unwrap(),
            ("type".to_owned(), "Opaque".to_owned())
        );
        let ok = FieldSelector::parse_and_transform("metadata.name=x", default_field_conversion)
            .unwrap();
        assert_eq!(ok, FieldSelector::one_term_equal("metadata.name", "x"));
    }

    #[test]
    fn escape_round_trip() {
        for v in ["", "plain", r"a\b", "a,b", "a=b", r"\,=\\", "ünï"] {
            assert_eq!(unescape_value(&escape_value(v)).unwrap(), v);
            let sel = FieldSelector::one_term_equal("f", v);
            assert_eq!(FieldSelector::parse(&sel.to_string()).unwrap(), sel);
        }
    }
}
