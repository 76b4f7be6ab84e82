//! Label key / value validation with Kubernetes' (apimachinery v0.34) messages.
//!
//! Mirrors `validation.IsQualifiedName`, `validation.IsValidLabelValue` and
//! `validation.IsDNS1123Subdomain`, and the `field.Error` / aggregate rendering that the label
//! selector parser wraps around them.

use super::quote::go_quote;

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// Maximum length of a label value and of the name part of a label key.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Maximum length of the DNS-subdomain prefix of a label key.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    let mut out = String::from(msg);
    if examples.is_empty() {
        out.push_str(" (regex used for validation is '");
    } else {
        out.push_str(" (e.g. ");
        for (i, ex) in examples.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            out.push('\'');
            out.push_str(ex);
            out.push_str("', ");
        }
        out.push_str("regex used for validation is '");
    }
    out.push_str(re);
    out.push_str("')");
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn matches_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            is_alnum(f)
                && is_alnum(l)
                && b.iter()
                    .all(|&c| is_alnum(c) || c == b'-' || c == b'_' || c == b'.')
        }
        _ => false,
    }
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok_end = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => ok_end(f) && ok_end(l) && b.iter().all(|&c| ok_end(c) || c == b'-'),
        _ => false,
    }
}

fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// Problems with `s` as a DNS-1123 subdomain (empty list when valid).
pub fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(s) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Problems with `key` as a label key / qualified name `[prefix/]name` (empty list when valid).
pub fn label_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(LABEL_VALUE_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Problems with `value` as a label value (empty list when valid).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// A bad value as Kubernetes' `field.Error` prints it.
#[derive(Debug, Clone)]
pub(crate) enum BadValue<'a> {
    Str(&'a str),
    /// A Go `[]string`; `nil` selects the `[]string(nil)` rendering of a nil slice.
    StrList {
        values: &'a [String],
        nil: bool,
    },
}

impl BadValue<'_> {
    fn render(&self) -> String {
        match self {
            BadValue::Str(s) => go_quote(s),
            BadValue::StrList { nil: true, .. } => "[]string(nil)".to_owned(),
            BadValue::StrList { values, .. } => format!(
                "[]string{{{}}}",
                values
                    .iter()
                    .map(|v| go_quote(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// `field.Invalid(path, value, detail).Error()`: `<path>: Invalid value: <value>: <detail>`.
pub(crate) fn field_invalid(path: &str, value: BadValue<'_>, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", value.render())
}

/// `utilerrors.NewAggregate(...).Error()` over already-rendered messages: duplicates removed,
/// a single message as is, several as `[a, b]`.
pub(crate) fn aggregate(msgs: Vec<String>) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for m in msgs {
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        for ok in [
            "a",
            "A9",
            "a.b-c_d",
            "example.com/name",
            "a/b",
            &"x".repeat(63),
        ] {
            assert!(label_key_errors(ok).is_empty(), "{ok}");
        }
        assert_eq!(
            label_key_errors("/a"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(
            label_key_errors("a/"),
            vec![
                "name part must be non-empty".to_owned(),
                format!(
                    "name part {}",
                    regex_error(
                        QUALIFIED_NAME_ERR,
                        QUALIFIED_NAME_FMT,
                        &["MyName", "my.name", "123-abc"]
                    )
                )
            ]
        );
        assert_eq!(
            label_key_errors(&"x".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(label_key_errors("a/b/c").len(), 1);
        assert!(label_key_errors("a/b/c")[0].starts_with("a qualified name must consist of"));
        assert_eq!(label_key_errors("Upper.com/x").len(), 1);
        assert!(
            label_key_errors("Upper.com/x")[0]
                .starts_with("prefix part a lowercase RFC 1123 subdomain")
        );
        let long_prefix = format!("{}/x", "a".repeat(254));
        assert_eq!(
            label_key_errors(&long_prefix),
            vec!["prefix part must be no more than 253 characters"]
        );
        assert_eq!(label_key_errors("-a").len(), 1);
        assert_eq!(label_key_errors("a..b/c").len(), 1);
    }

    #[test]
    fn label_values() {
        for ok in ["", "a", "a-b_c.d", &"v".repeat(63)] {
            assert!(label_value_errors(ok).is_empty(), "{ok}");
        }
        assert_eq!(
            label_value_errors("-a"),
            vec![
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ]
        );
        assert_eq!(
            label_value_errors(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn field_errors_render_like_go() {
        assert_eq!(
            field_invalid(
                "values",
                BadValue::StrList {
                    values: &[],
                    nil: true
                },
                "d"
            ),
            "values: Invalid value: []string(nil): d"
        );
        assert_eq!(
            field_invalid(
                "values",
                BadValue::StrList {
                    values: &["a".into(), "b".into()],
                    nil: false
                },
                "d"
            ),
            r#"values: Invalid value: []string{"a", "b"}: d"#
        );
        assert_eq!(aggregate(vec![]), None);
        assert_eq!(aggregate(vec!["a".into(), "a".into()]), Some("a".into()));
        assert_eq!(
            aggregate(vec!["a".into(), "b".into(), "a".into()]),
            Some("[a, b]".into())
        );
    }
}
