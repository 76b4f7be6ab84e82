//! API errors: the `metav1.Status` every failed request returns, with Kubernetes' codes,
//! reasons and messages, and the per-operation mapping of storage errors onto them.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ListMeta, Status, StatusCause, StatusDetails,
};
use serde_json::Value;

/// A group and resource, such as `apps.example.io` / `widgets` (`""` group for core).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupResource {
    /// API group, empty for the core group.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl GroupResource {
    /// A group and resource.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        GroupResource {
            group: group.into(),
            resource: resource.into(),
        }
    }
}

impl fmt::Display for GroupResource {
    /// `widgets.apps.example.io`, or `configmaps` for the core group (Kubernetes' `String()`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// The kind of a field validation failure (`field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldErrorType {
    /// `FieldValueNotFound`.
    NotFound,
    /// `FieldValueRequired`.
    Required,
    /// `FieldValueDuplicate`.
    Duplicate,
    /// `FieldValueInvalid`.
    Invalid,
    /// `FieldValueNotSupported`.
    NotSupported,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueTooLong`.
    TooLong,
    /// `FieldValueTooMany`.
    TooMany,
    /// `InternalError`.
    Internal,
    /// `FieldValueTypeInvalid`.
    TypeInvalid,
}

impl FieldErrorType {
    /// The `StatusCause.reason` (`FieldValueInvalid`, ...).
    pub fn cause_reason(self) -> &'static str {
        match self {
            FieldErrorType::NotFound => "FieldValueNotFound",
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::Duplicate => "FieldValueDuplicate",
            FieldErrorType::Invalid => "FieldValueInvalid",
            FieldErrorType::NotSupported => "FieldValueNotSupported",
            FieldErrorType::Forbidden => "FieldValueForbidden",
            FieldErrorType::TooLong => "FieldValueTooLong",
            FieldErrorType::TooMany => "FieldValueTooMany",
            FieldErrorType::Internal => "InternalError",
            FieldErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The words Kubernetes prints for it (`Invalid value`, `Required value`, ...).
    pub fn words(self) -> &'static str {
        match self {
            FieldErrorType::NotFound => "Not found",
            FieldErrorType::Required => "Required value",
            FieldErrorType::Duplicate => "Duplicate value",
            FieldErrorType::Invalid => "Invalid value",
            FieldErrorType::NotSupported => "Unsupported value",
            FieldErrorType::Forbidden => "Forbidden",
            FieldErrorType::TooLong => "Too long",
            FieldErrorType::TooMany => "Too many",
            FieldErrorType::Internal => "Internal error",
            FieldErrorType::TypeInvalid => "Invalid value",
        }
    }
}

/// One field validation failure (`field.Error`).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: FieldErrorType,
    /// The field path, such as `metadata.name` or `spec.containers[0].image`.
    pub field: String,
    /// The offending value, when there is one to show.
    pub value: Option<Value>,
    /// Why it is wrong.
    pub detail: String,
}

impl FieldError {
    /// `field.Invalid(path, value, detail)`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            kind: FieldErrorType::Invalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// `field.Required(path, detail)`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorType::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// `field.Forbidden(path, detail)`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorType::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// `field.NotSupported(path, value, valid values)`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        valid: &[&str],
    ) -> Self {
        let quoted: Vec<String> = valid.iter().map(|v| format!("{v:?}")).collect();
        FieldError {
            kind: FieldErrorType::NotSupported,
            field: field.into(),
            value: Some(value.into()),
            detail: format!("supported values: {}", quoted.join(", ")),
        }
    }
}

impl FieldError {
    /// Kubernetes' `ErrorBody()`: the message without the field path, as in `StatusCause`.
    pub fn body(&self) -> String {
        let mut body = self.kind.words().to_owned();
        let shows_value = matches!(
            self.kind,
            FieldErrorType::Invalid
                | FieldErrorType::NotSupported
                | FieldErrorType::Duplicate
                | FieldErrorType::NotFound
                | FieldErrorType::TypeInvalid
                | FieldErrorType::TooMany
        );
        if let (Some(value), true) = (&self.value, shows_value) {
            let shown = match value {
                Value::String(s) => format!("{s:?}"),
                // Go's `%#v` of a string slice, as apimachinery prints one.
                Value::Array(items) if items.iter().all(Value::is_string) => {
                    let quoted: Vec<String> = items
                        .iter()
                        .map(|i| format!("{:?}", i.as_str().unwrap_or_default()))
                        .collect();
                    format!("[]string{{{}}}", quoted.join(", "))
                }
                other => other.to_string(),
            };
            body.push_str(": ");
            body.push_str(&shown);
        }
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }
}

impl fmt::Display for FieldError {
    /// Kubernetes' `field.Error.Error()`: `spec.x: Invalid value: "v": detail`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A failed API request, as the `metav1.Status` Kubernetes returns.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `Status.details`, when Kubernetes sets them (boxed: errors stay small on the happy path).
    pub details: Option<Box<StatusDetails>>,
    /// `Status.metadata.continue` (the inconsistent token of a compacted continue).
    pub continue_token: Option<String>,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_owned(),
            message: message.into(),
            details: None,
            continue_token: None,
        }
    }

    fn with_details(mut self, resource: &GroupResource, name: &str) -> Self {
        self.details = Some(Box::new(StatusDetails {
            name: (!name.is_empty()).then(|| name.to_owned()),
            group: (!resource.group.is_empty()).then(|| resource.group.clone()),
            kind: (!resource.resource.is_empty()).then(|| resource.resource.clone()),
            ..StatusDetails::default()
        }));
        self
    }

    /// 404 NotFound: `<resource> "<name>" not found`.
    pub fn not_found(resource: &GroupResource, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
            .with_details(resource, name)
    }

    /// 409 AlreadyExists: `<resource> "<name>" already exists`.
    pub fn already_exists(resource: &GroupResource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
        )
        .with_details(resource, name)
    }

    /// 409 Conflict: `Operation cannot be fulfilled on <resource> "<name>": <detail>`.
    pub fn conflict(resource: &GroupResource, name: &str, detail: impl fmt::Display) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {detail}"),
        )
        .with_details(resource, name)
    }

    /// 422 Invalid: `<Kind>[.group] "<name>" is invalid: <errors>`, one cause per field error.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let listed = match errors {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut error = Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {listed}"),
        );
        error.details = Some(Box::new(StatusDetails {
            name: (!name.is_empty()).then(|| name.to_owned()),
            group: (!group.is_empty()).then(|| group.to_owned()),
            kind: Some(kind.to_owned()),
            causes: Some(
                errors
                    .iter()
                    .map(|e| StatusCause {
                        reason: Some(e.kind.cause_reason().to_owned()),
                        message: Some(e.body()),
                        field: Some(e.field.clone()),
                    })
                    .collect(),
            ),
            ..StatusDetails::default()
        }));
        error
    }

    /// 400 BadRequest with the message as given.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "Unauthorized", message)
    }

    /// 403 Forbidden.
    /// With no resource (a non-resource path), the message is `forbidden: <detail>`, as
    /// upstream's `NewForbidden`.
    pub fn forbidden(resource: &GroupResource, name: &str, detail: impl fmt::Display) -> Self {
        if resource.resource.is_empty() && resource.group.is_empty() {
            return Self::new(403, "Forbidden", format!("forbidden: {detail}"));
        }
        let what = if name.is_empty() {
            resource.to_string()
        } else {
            format!("{resource} \"{name}\"")
        };
        Self::new(403, "Forbidden", format!("{what} is forbidden: {detail}"))
            .with_details(resource, name)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_supported(resource: &GroupResource, action: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{action} is not supported on resources of kind \"{resource}\""),
        )
        .with_details(resource, "")
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 410 Gone.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Gone", message)
    }

    /// 410 Expired (too old resourceVersion or continue token).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn request_entity_too_large(message: impl Into<String>) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: {}", message.into()),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {content_type}"
            ),
        )
    }

    /// 429 TooManyRequests with a retry hint.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: i32) -> Self {
        let mut error = Self::new(429, "TooManyRequests", message);
        error.details = Some(Box::new(StatusDetails {
            retry_after_seconds: Some(retry_after_seconds),
            ..StatusDetails::default()
        }));
        error
    }

    /// 500 InternalError: `Internal error occurred: <detail>`.
    pub fn internal(detail: impl fmt::Display) -> Self {
        let mut error = Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {detail}"),
        );
        error.details = Some(Box::new(StatusDetails {
            causes: Some(vec![StatusCause {
                message: Some(detail.to_string()),
                ..StatusCause::default()
            }]),
            ..StatusDetails::default()
        }));
        error
    }

    /// 500 ServerTimeout: the operation could not be completed now.
    pub fn server_timeout(
        resource: &GroupResource,
        operation: &str,
        retry_after_seconds: i32,
    ) -> Self {
        let mut error = Self::new(
            500,
            "ServerTimeout",
            format!("The {operation} operation against {resource} could not be completed at this time, please try again."),
        )
        .with_details(resource, operation);
        if let Some(details) = &mut error.details {
            details.retry_after_seconds = Some(retry_after_seconds);
        }
        error
    }

    /// 503 ServiceUnavailable.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 504 Timeout: `Timeout: <message>`.
    pub fn timeout(message: impl fmt::Display, retry_after_seconds: i32) -> Self {
        let mut error = Self::new(504, "Timeout", format!("Timeout: {message}"));
        error.details = Some(Box::new(StatusDetails {
            retry_after_seconds: Some(retry_after_seconds),
            ..StatusDetails::default()
        }));
        error
    }

    /// The `metav1.Status` object for the wire.
    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code)),
            details: self.details.as_deref().cloned(),
            message: Some(self.message.clone()),
            metadata: ListMeta {
                continue_: self.continue_token.clone(),
                ..ListMeta::default()
            },
            reason: Some(self.reason.clone()),
            status: Some("Failure".to_owned()),
        }
    }
}

/// The operation a storage error happened in; decides its API mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Get.
    Get,
    /// List.
    List,
    /// Create.
    Create,
    /// Update or patch.
    Update,
    /// Delete.
    Delete,
    /// Watch.
    Watch,
}

impl Operation {
    /// The verb used in ServerTimeout messages.
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Watch => "watch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_kubernetes() {
        let widgets = GroupResource::new("apps.example.io", "widgets");
        assert_eq!(
            ApiError::not_found(&widgets, "w1").message,
            "widgets.apps.example.io \"w1\" not found"
        );
        let configmaps = GroupResource::new("", "configmaps");
        assert_eq!(
            ApiError::already_exists(&configmaps, "c").message,
            "configmaps \"c\" already exists"
        );
        let invalid = ApiError::invalid(
            "ConfigMap",
            "",
            "c",
            &[FieldError::invalid(
                "metadata.name",
                "A_B",
                "a lowercase RFC 1123 subdomain must consist of ...",
            )],
        );
        assert_eq!(invalid.code, 422);
        assert_eq!(
            invalid.message,
            "ConfigMap \"c\" is invalid: metadata.name: Invalid value: \"A_B\": a lowercase RFC 1123 subdomain must consist of ..."
        );
        let cause = &invalid.details.as_ref().unwrap().causes.as_ref().unwrap()[0];
        assert_eq!(cause.reason.as_deref(), Some("FieldValueInvalid"));
        assert_eq!(cause.field.as_deref(), Some("metadata.name"));
        let required = FieldError::required(
            "metadata.resourceVersion",
            "must be specified for an update",
        );
        assert_eq!(
            required.to_string(),
            "metadata.resourceVersion: Required value: must be specified for an update"
        );
    }
}
