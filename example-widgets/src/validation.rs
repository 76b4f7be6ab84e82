//! Widget validation: the field errors the Store's strategy turns into 422 Invalid.

use std::collections::HashSet;

use super::{DESCRIPTION_ANNOTATION, PHASE_PENDING, PHASE_RUNNING, internal, v1, v1_to_hub};
use apimachinery::object::ObjectMeta;
use apimachinery::status::{FieldError, FieldErrorType};

/// Longest `spec.displayName`, in bytes.
pub const MAX_DISPLAY_NAME_LENGTH: usize = 256;
/// Longest `spec.description`, in bytes.
pub const MAX_DESCRIPTION_LENGTH: usize = 4096;
/// Longest condition `type` (a qualified name), in bytes.
pub const MAX_CONDITION_TYPE_LENGTH: usize = 316;
/// Longest condition `reason`, in bytes.
pub const MAX_CONDITION_REASON_LENGTH: usize = 1024;
/// Longest condition `message`, in bytes.
pub const MAX_CONDITION_MESSAGE_LENGTH: usize = 32768;

const CONDITION_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

fn too_long(field: String, max: usize) -> FieldError {
    FieldError {
        kind: FieldErrorType::TooLong,
        field,
        value: None,
        detail: format!("may not be more than {max} bytes"),
    }
}

/// Validates a v1 (storage version) Widget: spec, status and the reserved annotation.
pub fn validate(widget: &v1::Widget) -> Vec<FieldError> {
    validate_internal(&v1_to_hub(widget.clone()))
}

/// Validates a hub Widget (what [`validate`] checks, on the hub representation).
pub fn validate_internal(widget: &internal::Widget) -> Vec<FieldError> {
    let mut errors = validate_metadata(&widget.metadata);
    errors.extend(validate_spec(&widget.spec));
    errors.extend(validate_status(&widget.status));
    errors
}

fn validate_metadata(metadata: &ObjectMeta) -> Vec<FieldError> {
    let reserved = metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(DESCRIPTION_ANNOTATION));
    if reserved {
        vec![FieldError::forbidden(
            format!("metadata.annotations[{DESCRIPTION_ANNOTATION}]"),
            "this annotation carries spec.description in apps.example.io/v1beta1; set spec.description instead",
        )]
    } else {
        Vec::new()
    }
}

/// Validates a spec: `displayName` required, non-empty and bounded; `description` bounded.
pub fn validate_spec(spec: &internal::WidgetSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match spec.display_name.as_deref() {
        None | Some("") => errors.push(FieldError::required("spec.displayName", "")),
        Some(name) if name.len() > MAX_DISPLAY_NAME_LENGTH => errors.push(too_long(
            "spec.displayName".to_owned(),
            MAX_DISPLAY_NAME_LENGTH,
        )),
        Some(_) => {}
    }
    if let Some(description) = &spec.description {
        if description.len() > MAX_DESCRIPTION_LENGTH {
            errors.push(too_long(
                "spec.description".to_owned(),
                MAX_DESCRIPTION_LENGTH,
            ));
        }
    }
    errors
}

/// Validates a status: `phase` in the enum, `observedGeneration` not negative, conditions
/// well-formed with unique types.
pub fn validate_status(status: &internal::WidgetStatus) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(phase) = &status.phase {
        if phase != PHASE_PENDING && phase != PHASE_RUNNING {
            errors.push(FieldError::not_supported(
                "status.phase",
                phase.as_str(),
                &[PHASE_PENDING, PHASE_RUNNING],
            ));
        }
    }
    if let Some(generation) = status.observed_generation {
        if generation < 0 {
            errors.push(FieldError::invalid(
                "status.observedGeneration",
                generation,
                "must be greater than or equal to 0",
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, condition) in status.conditions.iter().flatten().enumerate() {
        let path = |field: &str| format!("status.conditions[{i}].{field}");
        if condition.type_.is_empty() {
            errors.push(FieldError::required(path("type"), ""));
        } else if condition.type_.len() > MAX_CONDITION_TYPE_LENGTH {
            errors.push(too_long(path("type"), MAX_CONDITION_TYPE_LENGTH));
        } else if !seen.insert(condition.type_.as_str()) {
            errors.push(FieldError {
                kind: FieldErrorType::Duplicate,
                field: path("type"),
                value: Some(condition.type_.clone().into()),
                detail: String::new(),
            });
        }
        if !CONDITION_STATUSES.contains(&condition.status.as_str()) {
            errors.push(FieldError::not_supported(
                path("status"),
                condition.status.as_str(),
                &CONDITION_STATUSES,
            ));
        }
        if condition.reason.is_empty() {
            errors.push(FieldError::required(path("reason"), ""));
        } else if condition.reason.len() > MAX_CONDITION_REASON_LENGTH {
            errors.push(too_long(path("reason"), MAX_CONDITION_REASON_LENGTH));
        } else if !is_condition_reason(&condition.reason) {
            errors.push(FieldError::invalid(
                path("reason"),
                condition.reason.as_str(),
                "a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (regex used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')",
            ));
        }
        if condition.message.len() > MAX_CONDITION_MESSAGE_LENGTH {
            errors.push(too_long(path("message"), MAX_CONDITION_MESSAGE_LENGTH));
        }
        if let Some(generation) = condition.observed_generation {
            if generation < 0 {
                errors.push(FieldError::invalid(
                    path("observedGeneration"),
                    generation,
                    "must be greater than or equal to zero",
                ));
            }
        }
    }
    errors
}

/// `[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?`, the metav1.Condition reason format.
fn is_condition_reason(reason: &str) -> bool {
    let bytes = reason.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphabetic()
        && (last.is_ascii_alphanumeric() || *last == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b',' | b':'))
}
