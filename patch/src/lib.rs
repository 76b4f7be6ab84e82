//! The patch engine and server-side apply: what `PATCH` does to an object, without IO.
//!
//! The generic Store reads the current object, calls [`apply_patch`] (JSON patch, merge patch,
//! strategic merge patch) or [`server_side_apply`] (apply patches), records field ownership of
//! ordinary writes with [`update_managed_fields`], and writes the result. Everything here works
//! on `serde_json::Value` in the version the client used, as Kubernetes patches the versioned
//! object.
//!
//! # Patch types ([`PatchType`])
//!
//! | Content-Type | engine | errors |
//! |---|---|---|
//! | `application/json-patch+json` | RFC 6902 (`json-patch` crate) | 400 undecodable, 413 over 10000 operations, 422 (Kubernetes' generic "the server rejected our request due to an error in our request", empty details) when an operation fails |
//! | `application/merge-patch+json` | RFC 7386 (`json-patch` crate's `merge`) | 400 undecodable, 422 when the result is not an object |
//! | `application/strategic-merge-patch+json` | [`strategic`] | 415 for kinds without it, 400 for malformed directives, 422 for `$retainKeys` mismatches |
//! | `application/apply-patch+yaml` | [`server_side_apply`] | 400 undecodable YAML/JSON, 409 field manager conflicts |
//!
//! # Strategic merge patch
//!
//! Maps merge per key and `null` deletes a key. Lists follow the kind's [`PatchSchema`]: atomic
//! lists are replaced, [`ListKind::Set`] lists of scalars are unioned, [`ListKind::Map`] lists
//! merge items by their merge key. Directives: `$patch: replace` and `$patch: delete` in maps,
//! `{"$patch": "replace"}`, `{"$patch": "delete", <key>: ...}` items in merge lists,
//! `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>` and `$retainKeys`. Limits:
//! `$setElementOrder` reorders the items it names within the positions they already occupy
//! (Kubernetes interleaves server-only items by a finer rule); a merge key is always a single
//! field.
//!
//! # Server-side apply and `managedFields`
//!
//! Field sets use structured-merge-diff's model and `fieldsV1` encoding (`f:<field>`,
//! `k:{<keys>}` for map-list items, `v:<value>` for set items, `i:<index>`, and `.` when a
//! node is itself owned); see [`fieldpath`] and [`managed`]. The rules are the ones of
//! `merge.Updater`: apply merges the configuration into the live object, the applier owns
//! exactly the fields of its configuration, fields it applied before and no longer applies are
//! removed unless another applier owns them, changing a field another manager owns is a conflict
//! (409 with `FieldManagerConflict` causes, upstream's message) unless `force`, which moves the
//! ownership. Ordinary writes give their manager the fields they add or change, keyed by
//! manager, operation `Update`, `apiVersion` and subresource; an apply to an object without
//! managed fields first gives every existing field to `before-first-apply`. Limits: lists and
//! maps the schema does not name are atomic or granular as Kubernetes' defaults (lists atomic,
//! objects per field) and every object field is treated as a struct field (a map entry holding
//! an object is not itself owned); Update managers are not capped at 10; the strategy's reset
//! fields (status on the main resource) are the caller's to remove; the
//! `last-applied-configuration` bridge between client-side and server-side apply is not done,
//! so an apply after a client-side apply conflicts on every changed field, as in Kubernetes
//! without that bridge.

// `ApiError` is the `metav1.Status` of a failed request: returned once per request, so boxing it
// would buy nothing.

pub mod fieldpath;
pub mod managed;
pub mod merge;
mod schema;
pub mod strategic;

use serde_json::Value;

use apimachinery::status::{ApiError, FieldError};

pub use managed::{ManagerInfo, adopt_managed_fields, server_side_apply, update_managed_fields};
pub use schema::{
    CONFIG_MAP, CUSTOM_RESOURCE, EVENT, KindSchema, LEASE, ListKind, ListRule, METADATA_ONLY,
    NAMESPACE, PatchSchema, RBAC, SECRET, SERVICE_ACCOUNT, WIDGET, builtin_schema,
};

/// The most operations one JSON patch may hold, as in Kubernetes.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The longest field manager name Kubernetes accepts.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// A patch's format, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json`: RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386 merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes' strategic merge patch.
    StrategicMerge,
    /// `application/apply-patch+yaml`: server-side apply (the body is YAML or JSON).
    Apply,
}

impl PatchType {
    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }

    /// The patch types a kind accepts, in Kubernetes' order.
    pub fn accepted(strategic_merge: bool) -> &'static [PatchType] {
        if strategic_merge {
            &[
                PatchType::Json,
                PatchType::Merge,
                PatchType::StrategicMerge,
                PatchType::Apply,
            ]
        } else {
            &[PatchType::Json, PatchType::Merge, PatchType::Apply]
        }
    }

    /// The patch type of a `Content-Type` header (parameters such as `; charset=utf-8` are
    /// ignored), or 415 listing the types the kind accepts.
    pub fn from_content_type(content_type: &str, strategic_merge: bool) -> Result<Self, ApiError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        Self::accepted(strategic_merge)
            .iter()
            .copied()
            .find(|t| t.content_type() == media)
            .ok_or_else(|| unsupported(strategic_merge))
    }
}

fn unsupported(strategic_merge: bool) -> ApiError {
    let list: Vec<&str> = PatchType::accepted(strategic_merge)
        .iter()
        .map(|t| t.content_type())
        .collect();
    ApiError::unsupported_media_type(&list.join(", "))
}

/// Kubernetes' `ValidatePatchOptions`: apply needs a field manager, `force` is only for apply,
/// and a field manager is at most 128 printable characters (422 on `PatchOptions`).
pub fn validate_patch_options(
    patch_type: PatchType,
    field_manager: Option<&str>,
    force: Option<bool>,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let manager = field_manager.unwrap_or_default();
    if patch_type == PatchType::Apply {
        if manager.is_empty() {
            errors.push(FieldError::required(
                "fieldManager",
                "is required for apply patch",
            ));
        }
    } else if force.is_some() {
        errors.push(FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    errors.extend(validate_field_manager(manager));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            &errors,
        ))
    }
}

/// Kubernetes' `ValidateFieldManager`: at most 128 bytes, printable characters only.
pub fn validate_field_manager(manager: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        errors.push(FieldError {
            kind: apimachinery::status::FieldErrorType::TooLong,
            field: "fieldManager".to_owned(),
            value: None,
            detail: format!("must have at most {FIELD_MANAGER_MAX_LENGTH} bytes"),
        });
    }
    for (i, c) in manager.chars().enumerate() {
        if c.is_control() {
            errors.push(FieldError::invalid(
                "fieldManager",
                manager,
                format!("invalid character U+{:04X} (at position {i})", u32::from(c)),
            ));
        }
    }
    errors
}

/// The manager name of a write that named none: the user agent up to its first `/`
/// (`kubectl/v1.32.4 (linux/amd64)` gives `kubectl`), at most 128 bytes, as Kubernetes does.
pub fn manager_or_user_agent(field_manager: Option<&str>, user_agent: &str) -> String {
    match field_manager {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => {
            let prefix = user_agent.split('/').next().unwrap_or_default();
            let mut end = prefix.len().min(FIELD_MANAGER_MAX_LENGTH);
            while !prefix.is_char_boundary(end) {
                end -= 1;
            }
            prefix[..end].to_owned()
        }
    }
}

/// Applies a JSON, merge or strategic merge patch to `current` and returns the patched object.
///
/// Apply patches need a field manager; use [`server_side_apply`] for them (this returns 500 if
/// given one). Strategic merge patches for kinds whose schema does not support them get 415.
pub fn apply_patch(
    current: &Value,
    patch: &[u8],
    patch_type: PatchType,
    schema: &dyn PatchSchema,
) -> Result<Value, ApiError> {
    match patch_type {
        PatchType::Json => apply_json_patch(current, patch),
        PatchType::Merge => merge::apply_merge_patch(current, patch),
        PatchType::StrategicMerge => {
            if !schema.supports_strategic_merge() {
                return Err(unsupported(false));
            }
            strategic::apply_strategic_merge_patch(current, patch, schema)
        }
        PatchType::Apply => Err(ApiError::internal(
            "apply patches need a field manager: use server_side_apply",
        )),
    }
}

/// Kubernetes' answer when a JSON patch cannot be applied (or a strategic merge patch does not
/// match its `$retainKeys`): 422 `Invalid` with the generic
/// message and empty details (`NewGenericServerResponse(422, ...)`), which clients recognise.
pub fn unprocessable_entity() -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid".to_owned(),
        message: "the server rejected our request due to an error in our request".to_owned(),
        details: Some(Box::default()),
        continue_token: None,
    }
}

fn apply_json_patch(current: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let operations: Vec<Value> = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::request_entity_too_large(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            operations.len()
        )));
    }
    // Operations that do not decode (unknown `op`, missing `path`) fail when applied in
    // Kubernetes, so they are 422 like any other failed operation.
    let parsed: json_patch::Patch =
        serde_json::from_value(Value::Array(operations)).map_err(|e| {
            tracing::debug!(error = %e, "json patch operation does not decode");
            unprocessable_entity()
        })?;
    let mut doc = current.clone();
    json_patch::patch(&mut doc, &parsed).map_err(|e| {
        tracing::debug!(error = %e, "json patch not applied");
        unprocessable_entity()
    })?;
    patched_object(doc)
}

/// A patch result must still be an object, or decoding it fails as in Kubernetes (422 on
/// `patch`).
pub(crate) fn patched_object(doc: Value) -> Result<Value, ApiError> {
    if doc.is_object() {
        return Ok(doc);
    }
    let kind = match &doc {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        _ => "null",
    };
    Err(ApiError::invalid(
        "",
        "",
        "",
        &[FieldError::invalid(
            "patch",
            doc.to_string(),
            format!("cannot unmarshal {kind} into an object"),
        )],
    ))
}

/// Decodes an apply patch body (YAML or JSON, since JSON is YAML) into a JSON object; 400
/// `error decoding YAML: ...` otherwise.
pub fn decode_apply_patch(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_yaml_ng::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(serde_json::Map::new())),
        other => Err(ApiError::bad_request(format!(
            "error decoding YAML: cannot unmarshal {} into an object",
            if other.is_array() { "array" } else { "scalar" }
        ))),
    }
}

/// The current time as Kubernetes writes it in `managedFields` (`2006-01-02T15:04:05Z`, whole
/// seconds, UTC).
pub fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

#[cfg(test)]
mod tests;
