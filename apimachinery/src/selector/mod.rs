//! Label and field selectors and the selection predicate of list/watch requests.
//!
//! - [`LabelSelector`]: Kubernetes' label selector grammar (`=`, `==`, `!=`, `in`, `notin`,
//!   `key`, `!key`, `>`, `<`), matching, canonical `Display`, conversion from
//!   `metav1.LabelSelector`.
//! - [`FieldSelector`]: `field=value`, `field==value`, `field!=value` with backslash escaping,
//!   per-kind [`FieldSelector::transform`].
//! - [`SelectionPredicate`]: both selectors plus paging (`limit`, continue token) and the
//!   watch-bookmark flag, as storage consumes them.
//!
//! Every parse error is a [`SelectorError`] whose message is the text Kubernetes returns; the
//! API layer reports it as HTTP 400 Bad Request.

mod field;
mod label;
mod quote;
pub mod validation;

use std::fmt;

pub use field::{
    FieldOperator, FieldRequirement, FieldSelector, Fields, default_field_conversion, escape_value,
    known_field_conversion, unescape_value,
};
pub use label::{LabelSelector, Labels, Operator, Requirement};
pub use quote::go_quote;

/// A malformed selector (or a selector using a field the kind does not support).
///
/// `Display` is the message alone, matching upstream's error text; the API layer returns it
/// as a 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    message: String,
}

impl SelectorError {
    /// An error with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        SelectorError {
            message: message.into(),
        }
    }

    /// The error for a field a kind does not support in field selectors, with Kubernetes'
    /// per-kind conversion message: `field label not supported: <field>`.
    pub fn unsupported_field(field: &str) -> Self {
        SelectorError::new(format!("field label not supported: {field}"))
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SelectorError {}

/// The field holding an object's name in field selectors.
pub const FIELD_METADATA_NAME: &str = "metadata.name";
/// The field holding an object's namespace in field selectors.
pub const FIELD_METADATA_NAMESPACE: &str = "metadata.namespace";

/// What a list or watch selects (Kubernetes' `storage.SelectionPredicate`, minus the attribute
/// function: callers pass an object's labels and fields to [`SelectionPredicate::matches`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectionPredicate {
    /// Label selector; empty selects everything.
    pub label: LabelSelector,
    /// Field selector; empty selects everything.
    pub field: FieldSelector,
    /// Page size for lists; `None` (or a non-positive value, as callers decide) means no limit.
    pub limit: Option<i64>,
    /// Continue token of the page to fetch; `None` or `Some("")` means the first page.
    pub continue_token: Option<String>,
    /// Whether the watch client accepts BOOKMARK events.
    pub allow_watch_bookmarks: bool,
}

impl SelectionPredicate {
    /// The predicate that selects everything (`storage.Everything`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether both selectors are empty. Paging (`limit`, continue) does not count: an empty
    /// predicate may still page.
    pub fn is_empty(&self) -> bool {
        self.label.is_empty() && self.field.is_empty()
    }

    /// Whether an object with these labels and fields is selected: an empty predicate selects
    /// everything; otherwise the label selector must match, and the field selector too when
    /// it is non-empty.
    pub fn matches(&self, labels: &Labels, fields: &Fields) -> bool {
        if self.is_empty() {
            return true;
        }
        self.label.matches(labels) && (self.field.is_empty() || self.field.matches(fields))
    }

    fn has_continue(&self) -> bool {
        self.continue_token
            .as_deref()
            .is_some_and(|c| !c.is_empty())
    }

    /// The single object name this predicate can select (`metadata.name=<name>` in the field
    /// selector and no continue token), letting storage read one key instead of listing.
    pub fn matches_single(&self) -> Option<&str> {
        if self.has_continue() {
            return None;
        }
        self.field.requires_exact_match(FIELD_METADATA_NAME)
    }

    /// The single namespace this predicate can select (`metadata.namespace=<ns>` in the field
    /// selector and no continue token).
    pub fn matches_single_namespace(&self) -> Option<&str> {
        if self.has_continue() {
            return None;
        }
        self.field.requires_exact_match(FIELD_METADATA_NAMESPACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn predicate_matching() {
        let labels = map(&[("app", "web")]);
        let fields = map(&[("metadata.name", "a"), ("metadata.namespace", "ns")]);
        let every = SelectionPredicate {
            limit: Some(5),
            continue_token: Some("tok".into()),
            ..Default::default()
        };
        assert!(every.is_empty());
        assert!(every.matches(&Labels::new(), &Fields::new()));

        let p = SelectionPredicate {
            label: LabelSelector::parse("app=web").unwrap(),
            ..Default::default()
        };
        assert!(!p.is_empty());
        assert!(p.matches(&labels, &fields));
        assert!(!p.matches(&Labels::new(), &fields));

        let p = SelectionPredicate {
            field: FieldSelector::parse("metadata.name=a").unwrap(),
            ..Default::default()
        };
        assert!(p.matches(&Labels::new(), &fields));
        assert!(!p.matches(&labels, &map(&[("metadata.name", "b")])));
    }

    #[test]
    fn predicate_single() {
        let mut p = SelectionPredicate {
            field: FieldSelector::parse("metadata.name=a,metadata.namespace=ns").unwrap(),
            ..Default::default()
        };
        assert_eq!(p.matches_single(), Some("a"));
        assert_eq!(p.matches_single_namespace(), Some("ns"));
        p.continue_token = Some(String::new());
        assert_eq!(p.matches_single(), Some("a"));
        p.continue_token = Some("x".into());
        assert_eq!(p.matches_single(), None);
        assert_eq!(p.matches_single_namespace(), None);
        assert_eq!(SelectionPredicate::everything().matches_single(), None);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            SelectorError::unsupported_field("spec.x").to_string(),
            "field label not supported: spec.x"
        );
    }
}
