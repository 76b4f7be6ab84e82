//! The `CustomResourceDefinition` kind itself: defaulting, validation with upstream's messages
//! (`apiextensions-apiserver/pkg/apis/apiextensions/validation/validation.go`), status
//! conditions, and its registry strategy.

use std::collections::BTreeSet;

use apimachinery::selector::validation::dns1123_subdomain_errors;
use apimachinery::status::FieldError;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, CustomResourceDefinitionCondition,
    CustomResourceDefinitionNames, CustomResourceDefinitionStatus,
};
use registry::strategy::{Strategy, TableColumn, name_column};
use registry::validation::{FIELD_IMMUTABLE, name_is_dns_subdomain, validate_object_meta};
use serde_json::Value;

use crate::columns::JsonPath;
use crate::schema::structural_errors;

/// The finalizer every CRD gets on its first delete: its objects are deleted before it goes
/// (`apiextensions.CustomResourceCleanupFinalizer`).
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Condition types a CRD's status carries.
pub mod condition {
    /// The names are accepted: no other served kind uses them.
    pub const NAMES_ACCEPTED: &str = "NamesAccepted";
    /// The kind is served.
    pub const ESTABLISHED: &str = "Established";
    /// The CRD is being deleted: its objects are being removed.
    pub const TERMINATING: &str = "Terminating";
}

/// The types a printer column may have (upstream `printerColumnDatatypes`).
const COLUMN_TYPES: [&str; 5] = ["integer", "number", "string", "boolean", "date"];

/// The storage version of a CRD: the one version marked `storage` (the first, if the CRD is
/// invalid and marks several).
pub fn storage_version(crd: &CustomResourceDefinition) -> Option<&str> {
    crd.spec
        .versions
        .iter()
        .find(|v| v.storage)
        .map(|v| v.name.as_str())
}

/// Fills what upstream's v1 defaulting fills: `singular`, `listKind`, the `None` conversion.
pub fn apply_defaults(crd: &mut CustomResourceDefinition) {
    let names = &mut crd.spec.names;
    if names.singular.as_deref().is_none_or(str::is_empty) {
        names.singular = Some(names.kind.to_ascii_lowercase());
    }
    if names.list_kind.as_deref().is_none_or(str::is_empty) && !names.kind.is_empty() {
        names.list_kind = Some(format!("{}List", names.kind));
    }
    if crd.spec.conversion.is_none() {
        crd.spec.conversion = Some(CustomResourceConversion {
            strategy: "None".to_owned(),
            webhook: None,
        });
    }
}

/// Problems of `value` as an RFC 1035 label (`IsDNS1035Label`), upstream's wording.
fn dns1035_label_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    let bytes = value.as_bytes();
    let ok = match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_lowercase()
                && (last.is_ascii_lowercase() || last.is_ascii_digit())
                && bytes
                    .iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        }
        _ => false,
    };
    if !ok {
        errors.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        );
    }
    errors
}

fn label_errors(path: &str, value: &str, out: &mut Vec<FieldError>) {
    let errors = dns1035_label_errors(value);
    if !errors.is_empty() {
        out.push(FieldError::invalid(path, value, errors.join(",")));
    }
}

fn names_errors(names: &CustomResourceDefinitionNames, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if names.plural.is_empty() {
        errors.push(FieldError::required(format!("{path}.plural"), ""));
    } else {
        label_errors(&format!("{path}.plural"), &names.plural, &mut errors);
    }
    match names.singular.as_deref() {
        None | Some("") => errors.push(FieldError::required(format!("{path}.singular"), "")),
        Some(singular) => label_errors(&format!("{path}.singular"), singular, &mut errors),
    }
    if names.kind.is_empty() {
        errors.push(FieldError::required(format!("{path}.kind"), ""));
    } else {
        let lower = names.kind.to_ascii_lowercase();
        let problems = dns1035_label_errors(&lower);
        if !problems.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.kind"),
                names.kind.as_str(),
                problems.join(","),
            ));
        }
    }
    match names.list_kind.as_deref() {
        None | Some("") => errors.push(FieldError::required(format!("{path}.listKind"), "")),
        Some(list_kind) => {
            let problems = dns1035_label_errors(&list_kind.to_ascii_lowercase());
            if !problems.is_empty() {
                errors.push(FieldError::invalid(
                    format!("{path}.listKind"),
                    list_kind,
                    problems.join(","),
                ));
            }
            if list_kind == names.kind {
                errors.push(FieldError::invalid(
                    format!("{path}.listKind"),
                    list_kind,
                    "kind and listKind may not be the same or parsing errors will occur",
                ));
            }
        }
    }
    for (i, short) in names.short_names.iter().flatten().enumerate() {
        label_errors(&format!("{path}.shortNames[{i}]"), short, &mut errors);
    }
    for (i, category) in names.categories.iter().flatten().enumerate() {
        label_errors(&format!("{path}.categories[{i}]"), category, &mut errors);
    }
    errors
}

/// Upstream's `ValidateCustomResourceDefinition` (after defaulting): metadata, group, names,
/// scope, versions (exactly one storage version, unique DNS-1035 names, a structural schema
/// each), printer columns, selectable fields and conversion.
pub fn validate(crd: &CustomResourceDefinition) -> Vec<FieldError> {
    let mut errors = validate_object_meta(&crd.metadata, false, name_is_dns_subdomain);
    let spec = &crd.spec;
    let expected_name = format!("{}.{}", spec.names.plural, spec.group);
    if let Some(name) = crd.metadata.name.as_deref() {
        if name != expected_name {
            errors.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
    }
    if spec.group.is_empty() {
        errors.push(FieldError::required("spec.group", ""));
    } else {
        let problems = dns1123_subdomain_errors(&spec.group);
        if !problems.is_empty() {
            errors.push(FieldError::invalid(
                "spec.group",
                spec.group.as_str(),
                problems.join(","),
            ));
        }
        if !spec.group.contains('.') {
            errors.push(FieldError::invalid(
                "spec.group",
                spec.group.as_str(),
                "should be a domain with at least one dot",
            ));
        }
    }
    match spec.scope.as_str() {
        "Cluster" | "Namespaced" => {}
        "" => errors.push(FieldError::required("spec.scope", "")),
        other => errors.push(FieldError::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    errors.extend(names_errors(&spec.names, "spec.names"));
    if spec.preserve_unknown_fields == Some(true) {
        errors.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            true,
            "must be false in order to use defaults in the schema",
        ));
    }
    errors.extend(versions_errors(crd));
    if let Some(conversion) = &spec.conversion {
        match conversion.strategy.as_str() {
            "None" => {
                if conversion.webhook.is_some() {
                    errors.push(FieldError::forbidden(
                        "spec.conversion.webhook",
                        "should not be set when strategy is not set to Webhook",
                    ));
                }
            }
            "Webhook" => match &conversion.webhook {
                None => errors.push(FieldError::required(
                    "spec.conversion.webhook",
                    "required when strategy is set to Webhook",
                )),
                Some(webhook) => {
                    let config = &webhook.client_config;
                    let has_url = config.as_ref().is_some_and(|c| c.url.is_some());
                    let has_service = config.as_ref().is_some_and(|c| c.service.is_some());
                    if has_url == has_service {
                        errors.push(FieldError::required(
                            "spec.conversion.webhook.clientConfig",
                            "exactly one of url or service is required",
                        ));
                    }
                    if let Some(url) = config.as_ref().and_then(|c| c.url.as_deref()) {
                        if !url.starts_with("https://") {
                            errors.push(FieldError::invalid(
                                "spec.conversion.webhook.clientConfig.url",
                                url,
                                "'https' is the only allowed URL scheme",
                            ));
                        }
                    }
                    let versions = &webhook.conversion_review_versions;
                    if !versions.iter().any(|v| v == "v1" || v == "v1beta1") {
                        errors.push(FieldError::invalid(
                            "spec.conversion.webhook.conversionReviewVersions",
                            Value::from(versions.clone()),
                            "must include at least one of v1, v1beta1",
                        ));
                    }
                }
            },
            other => errors.push(FieldError::not_supported(
                "spec.conversion.strategy",
                other,
                &["None", "Webhook"],
            )),
        }
    }
    errors
}

fn versions_errors(crd: &CustomResourceDefinition) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let versions = &crd.spec.versions;
    let names: Vec<&str> = versions.iter().map(|v| v.name.as_str()).collect();
    let storage_count = versions.iter().filter(|v| v.storage).count();
    if storage_count != 1 {
        errors.push(FieldError::invalid(
            "spec.versions",
            Value::from(names.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    if unique.len() != names.len() {
        errors.push(FieldError::invalid(
            "spec.versions",
            Value::from(names.clone()),
            "must contain unique version names",
        ));
    }
    if !versions.is_empty() && !versions.iter().any(|v| v.served) {
        errors.push(FieldError::invalid(
            "spec.versions",
            Value::from(names.clone()),
            "must have at least one version served",
        ));
    }
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        label_errors(&format!("{path}.name"), &version.name, &mut errors);
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        match schema {
            None => errors.push(FieldError::required(
                format!("{path}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(schema) => match serde_json::to_value(schema) {
                Ok(schema) => errors.extend(structural_errors(
                    &schema,
                    &format!("{path}.schema.openAPIV3Schema"),
                )),
                Err(e) => errors.push(FieldError::invalid(
                    format!("{path}.schema.openAPIV3Schema"),
                    Value::Null,
                    e.to_string(),
                )),
            },
        }
        for (j, column) in version
            .additional_printer_columns
            .iter()
            .flatten()
            .enumerate()
        {
            let column_path = format!("{path}.additionalPrinterColumns[{j}]");
            if column.name.is_empty() {
                errors.push(FieldError::required(format!("{column_path}.name"), ""));
            }
            if !COLUMN_TYPES.contains(&column.type_.as_str()) {
                errors.push(FieldError::not_supported(
                    format!("{column_path}.type"),
                    column.type_.as_str(),
                    &COLUMN_TYPES,
                ));
            }
            if column.json_path.is_empty() {
                errors.push(FieldError::required(format!("{column_path}.jsonPath"), ""));
            } else if let Err(problem) = JsonPath::parse(&column.json_path) {
                errors.push(FieldError::invalid(
                    format!("{column_path}.jsonPath"),
                    column.json_path.as_str(),
                    problem,
                ));
            }
        }
        if let Some(scale) = version.subresources.as_ref().and_then(|s| s.scale.as_ref()) {
            let scale_path = format!("{path}.subresources.scale");
            let under = |p: &str, roots: &[&str]| {
                crate::kind::field_path(p)
                    .is_some_and(|f| f.len() > 1 && roots.contains(&f[0].as_str()))
            };
            if !under(&scale.spec_replicas_path, &["spec"]) {
                errors.push(FieldError::invalid(
                    format!("{scale_path}.specReplicasPath"),
                    scale.spec_replicas_path.as_str(),
                    "should be a json path under .spec",
                ));
            }
            if !under(&scale.status_replicas_path, &["status"]) {
                errors.push(FieldError::invalid(
                    format!("{scale_path}.statusReplicasPath"),
                    scale.status_replicas_path.as_str(),
                    "should be a json path under .status",
                ));
            }
            if let Some(selector) = &scale.label_selector_path {
                if !under(selector, &["spec", "status"]) {
                    errors.push(FieldError::invalid(
                        format!("{scale_path}.labelSelectorPath"),
                        selector.as_str(),
                        "should be a json path under either .spec or .status",
                    ));
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (j, field) in version.selectable_fields.iter().flatten().enumerate() {
            let field_path = format!("{path}.selectableFields[{j}].jsonPath");
            if let Err(problem) = JsonPath::parse(&field.json_path) {
                errors.push(FieldError::invalid(
                    field_path.as_str(),
                    field.json_path.as_str(),
                    problem,
                ));
            }
            if !seen.insert(field.json_path.as_str()) {
                errors.push(FieldError {
                    kind: apimachinery::status::FieldErrorType::Duplicate,
                    field: field_path,
                    value: Some(Value::from(field.json_path.as_str())),
                    detail: String::new(),
                });
            }
        }
    }
    errors
}

/// Upstream's `ValidateCustomResourceDefinitionUpdate`: everything [`validate`] checks, with the
/// group and scope immutable.
pub fn validate_update(
    new: &CustomResourceDefinition,
    old: &CustomResourceDefinition,
) -> Vec<FieldError> {
    // An update that leaves the spec as stored (metadata, finalizers) is not held to rules
    // the stored spec may predate, as upstream ratchets its CRD validation: otherwise a CRD
    // stored under older rules could never lose its finalizers.
    if new.spec == old.spec {
        let mut errors = validate_object_meta(&new.metadata, false, name_is_dns_subdomain);
        errors.extend(stored_versions_errors(new));
        return errors;
    }
    let mut errors = validate(new);
    if new.spec.group != old.spec.group {
        errors.push(FieldError::invalid(
            "spec.group",
            new.spec.group.as_str(),
            FIELD_IMMUTABLE,
        ));
    }
    if new.spec.scope != old.spec.scope {
        errors.push(FieldError::invalid(
            "spec.scope",
            new.spec.scope.as_str(),
            FIELD_IMMUTABLE,
        ));
    }
    errors.extend(stored_versions_errors(new));
    errors
}

/// Upstream's `ValidateCustomResourceDefinitionStoredVersions`: every stored version must
/// still be in `spec.versions` (objects may still be stored in it).
fn stored_versions_errors(crd: &CustomResourceDefinition) -> Vec<FieldError> {
    let listed: BTreeSet<&str> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
    let stored = crd.status.as_ref().and_then(|s| s.stored_versions.as_ref());
    stored
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, version)| !listed.contains(version.as_str()))
        .map(|(i, version)| {
            FieldError::invalid(
                format!("status.storedVersions[{i}]"),
                version.as_str(),
                "must appear in spec.versions",
            )
        })
        .collect()
}

/// The condition of `type_`, if set.
pub fn find_condition<'a>(
    crd: &'a CustomResourceDefinition,
    type_: &str,
) -> Option<&'a CustomResourceDefinitionCondition> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is `True`.
pub fn condition_is_true(crd: &CustomResourceDefinition, type_: &str) -> bool {
    find_condition(crd, type_).is_some_and(|c| c.status == "True")
}

/// Sets the condition `type_` on `status`; the transition time changes only with the status,
/// as upstream's `SetCRDCondition`. Returns whether anything changed.
pub fn set_condition(
    status: &mut CustomResourceDefinitionStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) -> bool {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let now = || {
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ))
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status == value
                && existing.reason.as_deref() == Some(reason)
                && existing.message.as_deref() == Some(message)
            {
                return false;
            }
            if existing.status != value {
                existing.last_transition_time = now();
            }
            existing.status = value.to_owned();
            existing.reason = Some(reason.to_owned());
            existing.message = Some(message.to_owned());
            true
        }
        None => {
            conditions.push(CustomResourceDefinitionCondition {
                last_transition_time: now(),
                message: Some(message.to_owned()),
                reason: Some(reason.to_owned()),
                status: value.to_owned(),
                type_: type_.to_owned(),
            });
            true
        }
    }
}

/// Adds the storage version to `status.storedVersions` (upstream's `PrepareForCreate` and
/// `PrepareForUpdate`).
fn record_storage_version(crd: &mut CustomResourceDefinition) {
    let Some(storage) = storage_version(crd).map(str::to_owned) else {
        return;
    };
    let status = crd.status.get_or_insert_with(Default::default);
    let stored = status.stored_versions.get_or_insert_with(Vec::new);
    if !stored.contains(&storage) {
        stored.push(storage);
    }
}

/// The registry strategy of `customresourcedefinitions` (cluster-scoped, status subresource,
/// the cleanup finalizer on delete).
#[derive(Clone, Copy, Debug, Default)]
pub struct CrdStrategy;

impl Strategy<CustomResourceDefinition> for CrdStrategy {
    fn namespace_scoped(&self) -> bool {
        false
    }

    fn prepare_for_create(&self, crd: &mut CustomResourceDefinition) {
        apply_defaults(crd);
        crd.status = None;
        record_storage_version(crd);
    }

    fn prepare_for_update(
        &self,
        new: &mut CustomResourceDefinition,
        old: &CustomResourceDefinition,
    ) {
        apply_defaults(new);
        new.status.clone_from(&old.status);
        record_storage_version(new);
    }

    fn validate(&self, crd: &CustomResourceDefinition) -> Vec<FieldError> {
        validate(crd)
    }

    fn validate_update(
        &self,
        new: &CustomResourceDefinition,
        old: &CustomResourceDefinition,
    ) -> Vec<FieldError> {
        validate_update(new, old)
    }

    fn finalizers_on_delete(&self, _crd: &CustomResourceDefinition) -> Vec<String> {
        vec![CLEANUP_FINALIZER.to_owned()]
    }

    fn on_deletion_marked(&self, crd: &mut CustomResourceDefinition) {
        let status = crd.status.get_or_insert_with(Default::default);
        set_condition(
            status,
            condition::TERMINATING,
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            name_column(),
            TableColumn::new(
                "Created At",
                "date",
                "",
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            ),
        ]
    }

    fn table_cells(&self, crd: &CustomResourceDefinition) -> Vec<Value> {
        let created = crd
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(Value::Null);
        vec![
            Value::from(crd.metadata.name.clone().unwrap_or_default()),
            created,
        ]
    }
}

/// Upstream's status strategy of CRDs: writes to `/status` keep the spec.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrdStatusStrategy;

impl Strategy<CustomResourceDefinition> for CrdStatusStrategy {
    fn namespace_scoped(&self) -> bool {
        false
    }

    fn prepare_for_update(
        &self,
        new: &mut CustomResourceDefinition,
        old: &CustomResourceDefinition,
    ) {
        new.spec.clone_from(&old.spec);
        new.metadata.labels.clone_from(&old.metadata.labels);
        new.metadata
            .annotations
            .clone_from(&old.metadata.annotations);
        new.metadata.finalizers.clone_from(&old.metadata.finalizers);
        new.metadata
            .owner_references
            .clone_from(&old.metadata.owner_references);
    }

    fn validate(&self, crd: &CustomResourceDefinition) -> Vec<FieldError> {
        validate(crd)
    }

    /// Upstream's `ValidateUpdateCustomResourceDefinitionStatus`: the status only (the spec
    /// is the stored one).
    fn validate_update(
        &self,
        new: &CustomResourceDefinition,
        _old: &CustomResourceDefinition,
    ) -> Vec<FieldError> {
        let mut errors = validate_object_meta(&new.metadata, false, name_is_dns_subdomain);
        errors.extend(stored_versions_errors(new));
        errors
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        CrdStrategy.table_columns()
    }

    fn table_cells(&self, crd: &CustomResourceDefinition) -> Vec<Value> {
        CrdStrategy.table_cells(crd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(document: Value) -> CustomResourceDefinition {
        let mut crd: CustomResourceDefinition = serde_json::from_value(document).unwrap();
        apply_defaults(&mut crd);
        crd
    }

    fn crontabs() -> Value {
        json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com",
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"cronSpec": {"type": "string"}}}}}},
                    "additionalPrinterColumns": [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}]}]
            }
        })
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_valid_crd_is_defaulted_and_passes() {
        let crd = crd(crontabs());
        assert_eq!(crd.spec.names.singular.as_deref(), Some("crontab"));
        assert_eq!(crd.spec.names.list_kind.as_deref(), Some("CronTabList"));
        assert_eq!(messages(&validate(&crd)), Vec::<String>::new());
    }

    #[test]
    fn invalid_crds_get_upstream_messages() {
        let mut document = crontabs();
        document["metadata"]["name"] = json!("crontabs.other.com");
        document["spec"]["scope"] = json!("Galaxy");
        document["spec"]["versions"][0]["storage"] = json!(false);
        document["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = json!("list");
        document["spec"]["names"]["kind"] = json!("Cron_Tab");
        document["spec"]["names"]["singular"] = json!("crontab");
        document["spec"]["names"]["listKind"] = json!("CronTabList");
        let errors = messages(&validate(&crd(document)));
        assert_eq!(
            errors,
            [
                "metadata.name: Invalid value: \"crontabs.other.com\": must be spec.names.plural+\".\"+spec.group",
                "spec.scope: Unsupported value: \"Galaxy\": supported values: \"Cluster\", \"Namespaced\"",
                "spec.names.kind: Invalid value: \"Cron_Tab\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                "spec.versions: Invalid value: []string{\"v1\"}: must have exactly one version marked as storage version",
                "spec.versions[0].additionalPrinterColumns[0].type: Unsupported value: \"list\": supported values: \"integer\", \"number\", \"string\", \"boolean\", \"date\"",
            ]
        );
    }

    #[test]
    fn conditions_keep_their_transition_time_until_the_status_changes() {
        let mut status = CustomResourceDefinitionStatus::default();
        assert!(set_condition(&mut status, "Established", "True", "R", "m"));
        let first = status.conditions.as_ref().unwrap()[0]
            .last_transition_time
            .clone();
        assert!(!set_condition(&mut status, "Established", "True", "R", "m"));
        assert!(set_condition(&mut status, "Established", "True", "R2", "m"));
        let conditions = status.conditions.as_ref().unwrap();
        assert_eq!(conditions[0].last_transition_time, first);
        assert_eq!(conditions[0].reason.as_deref(), Some("R2"));
    }
}
