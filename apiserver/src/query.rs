//! The query string of a request, parsed once, and the typed options each verb reads from it
//! (upstream decodes them into `metav1.ListOptions`, `CreateOptions`, `UpdateOptions`,
//! `PatchOptions` and `DeleteOptions` with its parameter codec, in
//! `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/*.go`). A parameter a verb does not
//! read is ignored, as upstream ignores it.

use std::collections::HashMap;
use std::time::Duration;

use apimachinery::selector::{FieldSelector, LabelSelector, SelectionPredicate};
use apimachinery::status::{ApiError, FieldError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use object_storage::{ListOptions, ResourceVersionMatch};

use crate::handler::FieldValidation;

/// The default lifetime of a watch without `timeoutSeconds`.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(3600);

/// The query parameters of one request (the last value of a repeated parameter wins).
#[derive(Clone, Debug, Default)]
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    /// Parses the query string of `uri`; an undecodable one is empty, as Go's `ParseQuery`
    /// keeps what it can.
    pub(crate) fn parse(uri: &axum::http::Uri) -> Self {
        match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri) {
            Ok(query) => Query(query.0.into_iter().collect()),
            Err(_) => Query::default(),
        }
    }

    /// The value of `key`, `""` when absent.
    pub(crate) fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or_default()
    }

    /// The value of `key` when present, even empty.
    pub(crate) fn optional(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key` when present and not empty.
    pub(crate) fn non_empty(&self, key: &str) -> Option<&str> {
        Some(self.get(key)).filter(|value| !value.is_empty())
    }

    /// A boolean parameter: `true`/`1`, `false`/`0`, absent; anything else is 400.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            "" => Ok(None),
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            other => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for {key}: must be true or false"
            ))),
        }
    }

    /// An integer parameter; not an integer is 400.
    pub(crate) fn i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            "" => Ok(None),
            other => other.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value {other:?} for {key}: not an integer"))
            }),
        }
    }

    /// `dryRun` of a write whose options are `options_kind` (`CreateOptions`, ...): absent,
    /// or `All`; anything else is upstream's `ValidateDryRun` error, 422 Invalid on the
    /// options kind.
    pub(crate) fn dry_run(&self, options_kind: &str) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            "" => Ok(false),
            "All" => Ok(true),
            other => Err(ApiError::invalid(
                options_kind,
                "meta.k8s.io",
                "",
                &[FieldError::not_supported(
                    "dryRun",
                    serde_json::json!([other]),
                    &["All"],
                )],
            )),
        }
    }

    /// `fieldValidation` (400 for an unknown value).
    pub(crate) fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        FieldValidation::parse(self.get("fieldValidation"))
    }

    /// The lifetime of a watch: a positive `timeoutSeconds`, else [`DEFAULT_WATCH_TIMEOUT`].
    pub(crate) fn watch_timeout(&self) -> Result<Duration, ApiError> {
        Ok(self
            .i64("timeoutSeconds")?
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t.unsigned_abs()))
            .unwrap_or(DEFAULT_WATCH_TIMEOUT))
    }

    /// List or watch options, validated as apimachinery's `ValidateListOptions` does (422
    /// Invalid on `ListOptions`; selectors that do not parse are 400 with the selector's own
    /// message, such as `unable to parse requirement: ...`).
    pub(crate) fn list_options(&self, watch: bool) -> Result<ListOptions, ApiError> {
        let label = LabelSelector::parse(self.get("labelSelector"))
            .map_err(|e| ApiError::bad_request(e.message()))?;
        let field = FieldSelector::parse(self.get("fieldSelector"))
            .map_err(|e| ApiError::bad_request(e.message()))?;
        let limit = self.i64("limit")?;
        let continue_token = self.non_empty("continue").map(str::to_owned);
        let resource_version = self.get("resourceVersion").to_owned();
        let match_raw = self.get("resourceVersionMatch");
        let resource_version_match = ResourceVersionMatch::parse(match_raw);
        let send_initial_events = self.bool("sendInitialEvents")?;
        let allow_watch_bookmarks = self.bool("allowWatchBookmarks")?.unwrap_or(false);
        let given = GivenListOptions {
            resource_version: &resource_version,
            match_raw,
            resource_version_match: &resource_version_match,
            continue_token: continue_token.is_some(),
            send_initial_events: send_initial_events.is_some(),
        };
        let errors = if watch {
            given.watch_errors()
        } else {
            given.list_errors()
        };
        if !errors.is_empty() {
            return Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", &errors));
        }
        Ok(ListOptions {
            resource_version,
            resource_version_match,
            predicate: SelectionPredicate {
                label,
                field,
                limit,
                continue_token,
                allow_watch_bookmarks,
            },
            recursive: true,
            // Backend progress notifications become BOOKMARK events for clients that allow
            // them.
            progress_notify: watch && allow_watch_bookmarks,
            send_initial_events,
            // The watch handler sets it from `timeoutSeconds`.
            deadline: None,
        })
    }

    /// The options of a delete: the body's `DeleteOptions` (empty body: defaults), overridden
    /// by `gracePeriodSeconds`, `propagationPolicy`, `orphanDependents` and `dryRun` from the
    /// query, as kube-apiserver's delete handler merges them.
    pub(crate) fn delete_options(&self, body: &[u8]) -> Result<DeleteOptions, ApiError> {
        let mut options: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
            DeleteOptions::default()
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        if let Some(grace) = self.i64("gracePeriodSeconds")? {
            options.grace_period_seconds = Some(grace);
        }
        if let Some(policy) = self.non_empty("propagationPolicy") {
            options.propagation_policy = Some(policy.to_owned());
        }
        if let Some(orphan) = self.bool("orphanDependents")? {
            options.orphan_dependents = Some(orphan);
        }
        if self.dry_run("DeleteOptions")? {
            options.dry_run = Some(vec!["All".to_owned()]);
        }
        // As upstream's delete handler: the options are validated before the object is
        // looked up, so a bad option is 422 even for a missing object.
        registry::check_delete_options(&options)?;
        Ok(options)
    }

    /// The field manager of a create or update: `fieldManager`, validated (422 Invalid on
    /// `options_kind`), else derived from the user agent as kube-apiserver does.
    pub(crate) fn write_manager(
        &self,
        options_kind: &str,
        user_agent: &str,
    ) -> Result<String, ApiError> {
        let manager = self.non_empty("fieldManager");
        let errors = patch::validate_field_manager(manager.unwrap_or_default());
        if !errors.is_empty() {
            return Err(ApiError::invalid(options_kind, "meta.k8s.io", "", &errors));
        }
        Ok(patch::manager_or_user_agent(manager, user_agent))
    }
}

/// What a list or watch request set, for `ValidateListOptions`.
struct GivenListOptions<'a> {
    resource_version: &'a str,
    match_raw: &'a str,
    resource_version_match: &'a ResourceVersionMatch,
    continue_token: bool,
    send_initial_events: bool,
}

impl GivenListOptions<'_> {
    /// The rules for a watch: `sendInitialEvents` needs `resourceVersionMatch=NotOlderThan`
    /// and no continue token; otherwise `resourceVersionMatch` is forbidden.
    fn watch_errors(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.send_initial_events {
            if *self.resource_version_match != ResourceVersionMatch::NotOlderThan {
                errors.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if self.continue_token {
                errors.push(FieldError::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for continue",
                ));
            }
        } else if !self.match_raw.is_empty() {
            errors.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        errors
    }

    /// The rules for a list: no `sendInitialEvents`; `resourceVersionMatch` needs a
    /// resourceVersion, no continue token, a known value, and not `Exact` with `"0"`.
    fn list_errors(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.send_initial_events {
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        if self.match_raw.is_empty() {
            return errors;
        }
        if self.resource_version.is_empty() {
            errors.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if self.continue_token {
            errors.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        match self.resource_version_match {
            ResourceVersionMatch::Other(other) => errors.push(FieldError::not_supported(
                "resourceVersionMatch",
                other.as_str(),
                &["Exact", "NotOlderThan", ""],
            )),
            ResourceVersionMatch::Exact if self.resource_version == "0" => {
                errors.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
            _ => {}
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(key: &str, value: &str) -> Query {
        Query([(key.to_owned(), value.to_owned())].into_iter().collect())
    }

    #[test]
    fn list_option_validation() {
        let exact = query("resourceVersionMatch", "Exact");
        assert_eq!(exact.list_options(false).unwrap_err().code, 422);
        let bad_selector = query("labelSelector", "a in (");
        assert_eq!(bad_selector.list_options(false).unwrap_err().code, 400);
        let initial = query("sendInitialEvents", "true");
        assert_eq!(initial.list_options(true).unwrap_err().code, 422);
        assert_eq!(initial.list_options(false).unwrap_err().code, 422);
    }

    #[test]
    fn typed_parameters() {
        assert_eq!(query("limit", "x").i64("limit").unwrap_err().code, 400);
        assert_eq!(query("watch", "1").bool("watch").unwrap(), Some(true));
        let refused = query("dryRun", "Some")
            .dry_run("CreateOptions")
            .unwrap_err();
        assert_eq!(refused.code, 422);
        assert_eq!(
            refused.message,
            r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: supported values: "All""#
        );
        assert_eq!(
            query("timeoutSeconds", "0").watch_timeout().unwrap(),
            DEFAULT_WATCH_TIMEOUT
        );
        let options = query("propagationPolicy", "Orphan")
            .delete_options(b"  ")
            .unwrap();
        assert_eq!(options.propagation_policy.as_deref(), Some("Orphan"));
    }
}
