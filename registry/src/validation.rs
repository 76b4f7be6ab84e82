//! Generic `ObjectMeta` validation (Kubernetes' `apimachinery/pkg/api/validation/objectmeta.go`)
//! and the name rules kinds choose from (`NameIsDNSSubdomain`, `NameIsDNSLabel`,
//! `ValidatePathSegmentName`), with Kubernetes' messages.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use apimachinery::selector::validation::{
    dns1123_subdomain_errors, label_key_errors, label_value_errors,
};
use apimachinery::status::{FieldError, FieldErrorType};

/// Kubernetes' `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE: &str = "field is immutable";
/// Total size limit of an object's annotations (keys plus values), 256 KiB.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// The finalizer that makes the garbage collector orphan dependents.
pub const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";
/// The finalizer that makes the garbage collector delete dependents first (foreground).
pub const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

/// A name rule: the problems of `name` (a `generateName` prefix when `prefix` is true).
pub type NameValidator = fn(name: &str, prefix: bool) -> Vec<String>;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

/// Kubernetes' `RegexError` rendering (`msg (e.g. 'a',  or 'b', regex used for validation is 're')`).
pub fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    let mut out = String::from(msg);
    if examples.is_empty() {
        out.push_str(" (regex used for validation is '");
    } else {
        out.push_str(" (e.g. ");
        for (i, example) in examples.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            out.push('\'');
            out.push_str(example);
            out.push_str("', ");
        }
        out.push_str("regex used for validation is '");
    }
    out.push_str(re);
    out.push_str("')");
    out
}

/// `generateName` prefixes may end in `-`: mask it before validating (`maskTrailingDash`).
fn mask_trailing_dash(name: &str, prefix: bool) -> String {
    if prefix && name.len() > 1 && name.ends_with('-') {
        format!("{}a", &name[..name.len() - 1])
    } else {
        name.to_owned()
    }
}

/// Problems of `value` as an RFC 1123 label (`IsDNS1123Label`).
pub fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    let bytes = value.as_bytes();
    let end_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            end_ok(first) && end_ok(last) && bytes.iter().all(|&c| end_ok(c) || c == b'-')
        }
        _ => false,
    };
    if !ok {
        errors.push(regex_error(
            DNS1123_LABEL_ERR,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errors
}

/// `NameIsDNSSubdomain`: most kinds' name rule.
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    dns1123_subdomain_errors(&mask_trailing_dash(name, prefix))
}

/// `NameIsDNSLabel`: the name rule of namespaces.
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    dns1123_label_errors(&mask_trailing_dash(name, prefix))
}

/// `ValidatePathSegmentName`: a name usable as one path segment (the generic rule).
pub fn path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    let mut errors = Vec::new();
    if !prefix && (name == "." || name == "..") {
        errors.push(format!("may not be '{name}'"));
    }
    if name.contains('/') {
        errors.push("may not contain '/'".to_owned());
    }
    if name.contains('%') {
        errors.push("may not contain '%'".to_owned());
    }
    errors
}

/// `IsQualifiedName` (label keys, annotation keys, finalizer names).
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    label_key_errors(value)
}

/// `IsConfigMapKey`: keys of configmap and secret data.
pub fn config_map_key_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 253 {
        errors.push("must be no more than 253 characters".to_owned());
    }
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errors.push(regex_error(
            CONFIG_MAP_KEY_ERR,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if value == "." {
        errors.push("must not be '.'".to_owned());
    } else if value == ".." {
        errors.push("must not be '..'".to_owned());
    } else if value.starts_with("..") {
        errors.push("must not start with '..'".to_owned());
    }
    errors
}

/// `ValidateLabels`: label keys and values.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in labels.into_iter().flatten() {
        for message in label_key_errors(key) {
            errors.push(FieldError::invalid(path, key.as_str(), message));
        }
        for message in label_value_errors(value) {
            errors.push(FieldError::invalid(path, value.as_str(), message));
        }
    }
    errors
}

/// `ValidateAnnotations`: keys are case-insensitive qualified names; total size at most 256 KiB.
pub fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &str,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut total = 0usize;
    for (key, value) in annotations.into_iter().flatten() {
        for message in qualified_name_errors(&key.to_lowercase()) {
            errors.push(FieldError::invalid(path, key.as_str(), message));
        }
        total += key.len() + value.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errors.push(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errors
}

/// `field.TooLong(path, "", max)`: `Too long: may not be more than <max> bytes`.
pub fn too_long(path: &str, max: usize) -> FieldError {
    FieldError {
        kind: FieldErrorType::TooLong,
        field: path.to_owned(),
        value: None,
        detail: format!("may not be more than {max} bytes"),
    }
}

fn validate_finalizers(finalizers: Option<&Vec<String>>, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let finalizers = finalizers.map(Vec::as_slice).unwrap_or_default();
    for finalizer in finalizers {
        for message in qualified_name_errors(finalizer) {
            errors.push(FieldError::invalid(path, finalizer.as_str(), message));
        }
    }
    let has = |name: &str| finalizers.iter().any(|f| f == name);
    if has(FINALIZER_ORPHAN_DEPENDENTS) && has(FINALIZER_DELETE_DEPENDENTS) {
        errors.push(FieldError::invalid(
            path,
            Value::from(finalizers.to_vec()),
            format!(
                "finalizer {FINALIZER_ORPHAN_DEPENDENTS} and {FINALIZER_DELETE_DEPENDENTS} cannot be both set"
            ),
        ));
    }
    errors
}

fn validate_owner_references(meta: &ObjectMeta, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut controller: Option<String> = None;
    for reference in meta.owner_references.iter().flatten() {
        let version = reference.api_version.rsplit('/').next().unwrap_or_default();
        if version.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.apiVersion"),
                reference.api_version.as_str(),
                "version must not be empty",
            ));
        }
        if reference.kind.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.kind"),
                "",
                "kind must not be empty",
            ));
        }
        if reference.name.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.name"),
                "",
                "name must not be empty",
            ));
        }
        if reference.uid.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.uid"),
                "",
                "uid must not be empty",
            ));
        }
        if reference.controller == Some(true) {
            let current = format!("{}/{}", reference.kind, reference.name);
            match &controller {
                Some(first) => errors.push(FieldError {
                    kind: FieldErrorType::Invalid,
                    field: path.to_owned(),
                    value: None,
                    detail: format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                }),
                None => controller = Some(current),
            }
        }
    }
    errors
}

/// `ValidateObjectMetaAccessor`: metadata of an object being created (name generation already
/// done). `name_fn` is the kind's name rule; `namespaced` decides whether a namespace is
/// required or forbidden. Field paths start with `metadata.`.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_fn: NameValidator,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or_default();
    if !generate_name.is_empty() {
        for message in name_fn(generate_name, true) {
            errors.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                message,
            ));
        }
    }
    let name = meta.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for message in name_fn(name, false) {
            errors.push(FieldError::invalid("metadata.name", name, message));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    if namespaced {
        if namespace.is_empty() {
            errors.push(FieldError::required("metadata.namespace", ""));
        } else {
            for message in name_is_dns_label(namespace, false) {
                errors.push(FieldError::invalid(
                    "metadata.namespace",
                    namespace,
                    message,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errors.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(generation) = meta.generation.filter(|g| *g < 0) {
        errors.push(FieldError::invalid(
            "metadata.generation",
            generation,
            "must be greater than or equal to 0",
        ));
    }
    errors.extend(validate_labels(meta.labels.as_ref(), "metadata.labels"));
    errors.extend(validate_annotations(
        meta.annotations.as_ref(),
        "metadata.annotations",
    ));
    errors.extend(validate_owner_references(meta, "metadata.ownerReferences"));
    errors.extend(validate_finalizers(
        meta.finalizers.as_ref(),
        "metadata.finalizers",
    ));
    errors
}

fn immutable<T: PartialEq + serde::Serialize>(
    new: &T,
    old: &T,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if new != old {
        let value = serde_json::to_value(new).unwrap_or(Value::Null);
        errors.push(FieldError::invalid(path, value, FIELD_IMMUTABLE));
    }
}

/// `ValidateObjectMetaAccessorUpdate`: what an update may not change in metadata.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if old.deletion_timestamp.is_some() {
        let old_set: BTreeSet<&String> = old.finalizers.iter().flatten().collect();
        let extra: BTreeSet<&String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_set.contains(f))
            .collect();
        if !extra.is_empty() {
            let listed: Vec<String> = extra.iter().map(|f| format!("{f:?}")).collect();
            errors.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    listed.join(", ")
                ),
            ));
        }
    }
    if new
        .resource_version
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        errors.push(FieldError::invalid(
            "metadata.resourceVersion",
            "",
            "must be specified for an update",
        ));
    }
    let (new_generation, old_generation) =
        (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if new_generation < old_generation {
        errors.push(FieldError::invalid(
            "metadata.generation",
            new_generation,
            "must not be decremented",
        ));
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    immutable(
        &text(&new.name),
        &text(&old.name),
        "metadata.name",
        &mut errors,
    );
    immutable(
        &text(&new.namespace),
        &text(&old.namespace),
        "metadata.namespace",
        &mut errors,
    );
    immutable(
        &text(&new.uid),
        &text(&old.uid),
        "metadata.uid",
        &mut errors,
    );
    immutable(
        &new.creation_timestamp,
        &old.creation_timestamp,
        "metadata.creationTimestamp",
        &mut errors,
    );
    immutable(
        &new.deletion_timestamp,
        &old.deletion_timestamp,
        "metadata.deletionTimestamp",
        &mut errors,
    );
    immutable(
        &new.deletion_grace_period_seconds,
        &old.deletion_grace_period_seconds,
        "metadata.deletionGracePeriodSeconds",
        &mut errors,
    );
    errors.extend(validate_labels(new.labels.as_ref(), "metadata.labels"));
    errors.extend(validate_annotations(
        new.annotations.as_ref(),
        "metadata.annotations",
    ));
    errors.extend(validate_owner_references(new, "metadata.ownerReferences"));
    errors
}

/// `field.Path.Key(key)` rendering: `data[key]`.
pub fn key_path(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_is_dns_subdomain("a.b-c", false).is_empty());
        assert!(name_is_dns_subdomain("abc-", true).is_empty());
        assert_eq!(name_is_dns_subdomain("A_B", false).len(), 1);
        assert!(name_is_dns_label("ns-1", false).is_empty());
        assert_eq!(name_is_dns_label("a.b", false).len(), 1);
        assert_eq!(
            name_is_dns_label(&"a".repeat(64), false),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(path_segment_name("..", false), vec!["may not be '..'"]);
        assert_eq!(path_segment_name("a/b%", false).len(), 2);
        assert!(config_map_key_errors("key.name_A-1").is_empty());
        assert_eq!(
            config_map_key_errors("..x"),
            vec!["must not start with '..'"]
        );
        assert_eq!(config_map_key_errors("a b").len(), 1);
    }

    #[test]
    fn object_meta() {
        let meta = ObjectMeta::default();
        let errors = validate_object_meta(&meta, true, name_is_dns_subdomain);
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "metadata.name: Required value: name or generateName is required",
                "metadata.namespace: Required value",
            ]
        );
        let meta = ObjectMeta {
            name: Some("x".into()),
            namespace: Some("ns".into()),
            ..ObjectMeta::default()
        };
        let errors = validate_object_meta(&meta, false, name_is_dns_subdomain);
        assert_eq!(
            errors[0].to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
    }
}
