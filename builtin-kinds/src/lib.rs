//! Strategies of the built-in kinds the API server serves, with Kubernetes' validation of the
//! fields that matter, and [`GenericStrategy`] for custom (dynamic) kinds. The RBAC kinds and
//! service accounts are in [`rbac`].

pub mod rbac;

pub use rbac::{
    ClusterRoleBindingStrategy, ClusterRoleStrategy, RoleBindingStrategy, RoleStrategy,
    ServiceAccountStrategy,
};

use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, NamespaceStatus, Secret};
use serde_json::Value;

use apimachinery::object::Object;
use apimachinery::selector::validation::dns1123_subdomain_errors;
use apimachinery::selector::{Fields, SelectorError, known_field_conversion};
use apimachinery::status::FieldError;
use registry::strategy::{
    GcPolicy, Strategy, TableColumn, age, age_column, copy_spec, copy_status, name_column,
};
use registry::validation::{
    FIELD_IMMUTABLE, FINALIZER_DELETE_DEPENDENTS, FINALIZER_ORPHAN_DEPENDENTS, NameValidator,
    config_map_key_errors, key_path, name_is_dns_label, name_is_dns_subdomain,
    qualified_name_errors, too_long, validate_object_meta,
};

/// Largest total size of a configmap's or secret's data (`MaxSecretSize`, 1 MiB).
pub const MAX_DATA_SIZE: usize = 1024 * 1024;
/// Events expire an hour after their last write, as Kubernetes' default `--event-ttl`.
pub const EVENT_TTL_SECONDS: u64 = 3600;

/// The field selector labels `events` accept (upstream core/v1 `AddFieldLabelConversionsForEvent`).
pub const EVENT_FIELD_LABELS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];

const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";

fn forbidden_immutable(path: &str) -> FieldError {
    FieldError::forbidden(path, IMMUTABLE_WHEN_SET)
}

// ---------------------------------------------------------------------------------------------
// Namespaces

/// The finalizer the namespace controller owns in `spec.finalizers` (`FinalizerKubernetes`):
/// every new namespace gets it, and the controller removes it through `namespaces/finalize`
/// once the namespace is empty.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// The label every namespace carries with its own name (`v1.LabelMetadataName`).
pub const LABEL_METADATA_NAME: &str = "kubernetes.io/metadata.name";

/// The finalizer names a namespace's `spec.finalizers` may hold without a `/`
/// (`IsStandardFinalizerName`).
const STANDARD_FINALIZERS: [&str; 3] = [
    NAMESPACE_FINALIZER,
    FINALIZER_ORPHAN_DEPENDENTS,
    FINALIZER_DELETE_DEPENDENTS,
];

/// `namespaces` (core/v1, cluster-scoped), as upstream's `namespaceStrategy`: DNS-label names,
/// phase `Active` and the [`NAMESPACE_FINALIZER`] in `spec.finalizers` on create, the
/// [`LABEL_METADATA_NAME`] label on every write, `spec.finalizers` and `status` kept on
/// main-resource updates. Deletion is two-phase
/// ([`Strategy::spec_finalizers_pending`]): the first delete marks the namespace `Terminating`,
/// and it goes away once `spec.finalizers` is empty (emptied through
/// [`NamespaceFinalizeStrategy`]) and no metadata finalizer is left.
#[derive(Clone, Copy, Debug, Default)]
pub struct NamespaceStrategy;

/// The `namespaces/status` strategy: only `status` changes; the phase must be `Active` without
/// a deletionTimestamp and `Terminating` with one (`ValidateNamespaceStatusUpdate`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NamespaceStatusStrategy;

/// The `namespaces/finalize` strategy (an update-only subresource): metadata and
/// `spec.finalizers` change, `status` is kept (`ValidateNamespaceFinalizeUpdate`). An update
/// that leaves a namespace being deleted without spec and metadata finalizers deletes it
/// (`ShouldDeleteNamespaceDuringUpdate`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NamespaceFinalizeStrategy;

fn spec_finalizers(namespace: &Namespace) -> &[String] {
    namespace
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_deref())
        .unwrap_or_default()
}

/// `validateFinalizerName`: a qualified name, and a standard name unless it has a `/`.
fn namespace_finalizer_errors(finalizer: &str, path: &str) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = qualified_name_errors(finalizer)
        .into_iter()
        .map(|message| FieldError::invalid(path, finalizer, message))
        .collect();
    if !finalizer.contains('/') && !STANDARD_FINALIZERS.contains(&finalizer) {
        errors.push(FieldError::invalid(
            path,
            finalizer,
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
    errors
}

/// `ValidateNamespace`.
fn validate_namespace(namespace: &Namespace) -> Vec<FieldError> {
    let mut errors = validate_object_meta(&namespace.metadata, false, name_is_dns_label);
    for finalizer in spec_finalizers(namespace) {
        errors.extend(namespace_finalizer_errors(finalizer, "spec.finalizers"));
    }
    errors
}

/// The namespace `Canonicalize`: the [`LABEL_METADATA_NAME`] label holds the name (set after
/// name generation, so `generateName` namespaces get it too).
fn label_with_name(namespace: &mut Namespace) {
    let name = namespace.metadata.name.clone().unwrap_or_default();
    namespace
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(LABEL_METADATA_NAME.to_owned(), name);
}

/// `ShouldDeleteNamespaceDuringUpdate`'s addition to the generic rule: no spec finalizer left.
fn namespace_finalized(namespace: &Namespace) -> bool {
    spec_finalizers(namespace).is_empty()
}

impl Strategy<Namespace> for NamespaceStrategy {
    fn namespace_scoped(&self) -> bool {
        false
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn prepare_for_create(&self, object: &mut Namespace) {
        object.status = Some(NamespaceStatus {
            phase: Some("Active".to_owned()),
            conditions: None,
        });
        let spec = object.spec.get_or_insert_with(Default::default);
        let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == NAMESPACE_FINALIZER) {
            finalizers.push(NAMESPACE_FINALIZER.to_owned());
        }
    }

    fn prepare_for_update(&self, new: &mut Namespace, old: &Namespace) {
        new.status = old.status.clone();
        let finalizers = old.spec.as_ref().and_then(|s| s.finalizers.clone());
        match (&mut new.spec, finalizers) {
            (Some(spec), finalizers) => spec.finalizers = finalizers,
            (None, Some(finalizers)) => {
                new.spec = Some(k8s_openapi::api::core::v1::NamespaceSpec {
                    finalizers: Some(finalizers),
                });
            }
            (None, None) => {}
        }
    }

    fn validate(&self, object: &Namespace) -> Vec<FieldError> {
        validate_namespace(object)
    }

    fn validate_update(&self, new: &Namespace, _old: &Namespace) -> Vec<FieldError> {
        validate_namespace(new)
    }

    fn canonicalize(&self, object: &mut Namespace) {
        label_with_name(object);
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    /// Namespaces get no `orphan` / `foregroundDeletion` finalizers: there is no garbage
    /// collector here to remove them, so they would keep the namespace forever.
    fn default_gc_policy(&self) -> GcPolicy {
        GcPolicy::Unsupported
    }

    fn on_deletion_marked(&self, object: &mut Namespace) {
        object.status.get_or_insert_with(Default::default).phase = Some("Terminating".to_owned());
    }

    fn should_delete_during_update(&self, new: &Namespace, _old: &Namespace) -> bool {
        namespace_finalized(new)
    }

    fn spec_finalizers_pending(&self, object: &Namespace) -> Option<bool> {
        Some(!namespace_finalized(object))
    }

    fn selectable_fields(&self, object: &Namespace) -> Fields {
        let mut fields = Fields::new();
        fields.insert(
            "metadata.name".to_owned(),
            object.metadata.name.clone().unwrap_or_default(),
        );
        fields.insert(
            "status.phase".to_owned(),
            object
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
        );
        fields
    }

    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        known_field_conversion(&["metadata.name", "status.phase"], label, value)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            name_column(),
            TableColumn::new("Status", "string", "", "The status of the namespace"),
            age_column(),
        ]
    }

    fn table_cells(&self, object: &Namespace) -> Vec<Value> {
        vec![
            Value::from(object.metadata.name.clone().unwrap_or_default()),
            Value::from(
                object
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default(),
            ),
            Value::from(age(object)),
        ]
    }
}

impl Strategy<Namespace> for NamespaceStatusStrategy {
    fn namespace_scoped(&self) -> bool {
        false
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    /// The spec is the stored one; an empty phase defaults to `Active`, as upstream's
    /// `SetDefaults_NamespaceStatus` does when the request is decoded.
    fn prepare_for_update(&self, new: &mut Namespace, old: &Namespace) {
        copy_spec(old, new);
        let status = new.status.get_or_insert_with(Default::default);
        if status.phase.as_deref().unwrap_or_default().is_empty() {
            status.phase = Some("Active".to_owned());
        }
    }

    fn validate_update(&self, new: &Namespace, _old: &Namespace) -> Vec<FieldError> {
        let phase = new
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let (expected, detail) = if new.metadata.deletion_timestamp.is_none() {
            (
                "Active",
                "may only be 'Active' if `deletionTimestamp` is empty",
            )
        } else {
            (
                "Terminating",
                "may only be 'Terminating' if `deletionTimestamp` is not empty",
            )
        };
        if phase == expected {
            Vec::new()
        } else {
            vec![FieldError::invalid("status.Phase", phase, detail)]
        }
    }

    fn canonicalize(&self, object: &mut Namespace) {
        label_with_name(object);
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    fn should_delete_during_update(&self, new: &Namespace, _old: &Namespace) -> bool {
        namespace_finalized(new)
    }

    fn spec_finalizers_pending(&self, object: &Namespace) -> Option<bool> {
        Some(!namespace_finalized(object))
    }
}

impl Strategy<Namespace> for NamespaceFinalizeStrategy {
    fn namespace_scoped(&self) -> bool {
        false
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn prepare_for_update(&self, new: &mut Namespace, old: &Namespace) {
        new.status = old.status.clone();
    }

    fn validate_update(&self, new: &Namespace, _old: &Namespace) -> Vec<FieldError> {
        spec_finalizers(new)
            .iter()
            .enumerate()
            .flat_map(|(i, finalizer)| {
                namespace_finalizer_errors(finalizer, &format!("spec.finalizers[{i}]"))
            })
            .collect()
    }

    fn canonicalize(&self, object: &mut Namespace) {
        label_with_name(object);
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    fn should_delete_during_update(&self, new: &Namespace, _old: &Namespace) -> bool {
        namespace_finalized(new)
    }

    fn spec_finalizers_pending(&self, object: &Namespace) -> Option<bool> {
        Some(!namespace_finalized(object))
    }
}

// ---------------------------------------------------------------------------------------------
// ConfigMaps

/// `configmaps` (core/v1): DNS-subdomain names, data keys `[-._a-zA-Z0-9]+`, at most 1 MiB of
/// data, no key in both `data` and `binaryData`, `immutable` configmaps keep their data.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigMapStrategy;

fn validate_config_map(object: &ConfigMap) -> Vec<FieldError> {
    let mut errors = validate_object_meta(&object.metadata, true, name_is_dns_subdomain);
    let mut total = 0usize;
    let binary = object.binary_data.as_ref();
    for (key, value) in object.data.iter().flatten() {
        let path = key_path("data", key);
        for message in config_map_key_errors(key) {
            errors.push(FieldError::invalid(&path, key.as_str(), message));
        }
        if binary.is_some_and(|b| b.contains_key(key)) {
            errors.push(FieldError::invalid(
                &path,
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.len();
    }
    for (key, value) in binary.into_iter().flatten() {
        let path = key_path("binaryData", key);
        for message in config_map_key_errors(key) {
            errors.push(FieldError::invalid(&path, key.as_str(), message));
        }
        total += value.0.len();
    }
    if total > MAX_DATA_SIZE {
        errors.push(too_long("", MAX_DATA_SIZE));
    }
    errors
}

impl Strategy<ConfigMap> for ConfigMapStrategy {
    fn namespace_scoped(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn validate(&self, object: &ConfigMap) -> Vec<FieldError> {
        validate_config_map(object)
    }

    /// Empty `data` and `binaryData` are omitted, as Kubernetes stores them.
    fn canonicalize(&self, object: &mut ConfigMap) {
        if object.data.as_ref().is_some_and(|d| d.is_empty()) {
            object.data = None;
        }
        if object.binary_data.as_ref().is_some_and(|d| d.is_empty()) {
            object.binary_data = None;
        }
    }

    fn validate_update(&self, new: &ConfigMap, old: &ConfigMap) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if old.immutable == Some(true) {
            if new.immutable != Some(true) {
                errors.push(forbidden_immutable("immutable"));
            }
            if new.data != old.data {
                errors.push(forbidden_immutable("data"));
            }
            if new.binary_data != old.binary_data {
                errors.push(forbidden_immutable("binaryData"));
            }
        }
        errors.extend(validate_config_map(new));
        errors
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            name_column(),
            TableColumn::new("Data", "string", "", "Number of keys in the configmap"),
            age_column(),
        ]
    }

    fn table_cells(&self, object: &ConfigMap) -> Vec<Value> {
        let keys = object.data.as_ref().map_or(0, |d| d.len())
            + object.binary_data.as_ref().map_or(0, |d| d.len());
        vec![
            Value::from(object.metadata.name.clone().unwrap_or_default()),
            Value::from(keys),
            Value::from(age(object)),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// `secrets` (core/v1): `stringData` merged into `data`, type `Opaque` by default and
/// immutable, data keys and 1 MiB limit as configmaps, the required keys of the well-known
/// types, `immutable` secrets keep their data.
#[derive(Clone, Copy, Debug, Default)]
pub struct SecretStrategy;

fn merge_string_data(secret: &mut Secret) {
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in strings {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    if secret.type_.as_deref().unwrap_or_default().is_empty() {
        secret.type_ = Some("Opaque".to_owned());
    }
}

fn validate_secret(secret: &Secret) -> Vec<FieldError> {
    let mut errors = validate_object_meta(&secret.metadata, true, name_is_dns_subdomain);
    let data = secret.data.clone().unwrap_or_default();
    let mut total = 0usize;
    for (key, value) in &data {
        for message in config_map_key_errors(key) {
            errors.push(FieldError::invalid(
                key_path("data", key),
                key.as_str(),
                message,
            ));
        }
        total += value.0.len();
    }
    if total > MAX_DATA_SIZE {
        errors.push(too_long("data", MAX_DATA_SIZE));
    }
    let required = |key: &str| FieldError::required(key_path("data", key), "");
    match secret.type_.as_deref().unwrap_or("Opaque") {
        "kubernetes.io/service-account-token" => {
            let named = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some_and(|v| !v.is_empty());
            if !named {
                errors.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => match data.get(".dockercfg") {
            None => errors.push(required(".dockercfg")),
            Some(bytes) => {
                if let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes.0) {
                    errors.push(FieldError::invalid(
                        key_path("data", ".dockercfg"),
                        "<secret contents redacted>",
                        e.to_string(),
                    ));
                }
            }
        },
        "kubernetes.io/dockerconfigjson" => match data.get(".dockerconfigjson") {
            None => errors.push(required(".dockerconfigjson")),
            Some(bytes) => {
                if let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes.0) {
                    errors.push(FieldError::invalid(
                        key_path("data", ".dockerconfigjson"),
                        "<secret contents redacted>",
                        e.to_string(),
                    ));
                }
            }
        },
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errors.push(required("username"));
            errors.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errors.push(required("ssh-privatekey"));
        }
        "kubernetes.io/tls" => {
            if !data.contains_key("tls.crt") {
                errors.push(required("tls.crt"));
            }
            if !data.contains_key("tls.key") {
                errors.push(required("tls.key"));
            }
        }
        _ => {}
    }
    errors
}

impl Strategy<Secret> for SecretStrategy {
    fn namespace_scoped(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn prepare_for_create(&self, object: &mut Secret) {
        merge_string_data(object);
    }

    /// Empty `data` is omitted, as Kubernetes stores it.
    fn canonicalize(&self, object: &mut Secret) {
        if object.data.as_ref().is_some_and(|d| d.is_empty()) {
            object.data = None;
        }
    }

    fn prepare_for_update(&self, new: &mut Secret, _old: &Secret) {
        merge_string_data(new);
    }

    fn validate(&self, object: &Secret) -> Vec<FieldError> {
        validate_secret(object)
    }

    fn validate_update(&self, new: &Secret, old: &Secret) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if new.type_ != old.type_ {
            errors.push(FieldError::invalid(
                "type",
                new.type_.clone().unwrap_or_default(),
                FIELD_IMMUTABLE,
            ));
        }
        if old.immutable == Some(true) {
            if new.immutable != Some(true) {
                errors.push(forbidden_immutable("immutable"));
            }
            if new.data != old.data {
                errors.push(forbidden_immutable("data"));
            }
        }
        errors.extend(validate_secret(new));
        errors
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    fn selectable_fields(&self, object: &Secret) -> Fields {
        let mut fields = Fields::new();
        fields.insert(
            "metadata.name".to_owned(),
            object.metadata.name.clone().unwrap_or_default(),
        );
        fields.insert(
            "metadata.namespace".to_owned(),
            object.metadata.namespace.clone().unwrap_or_default(),
        );
        fields.insert("type".to_owned(), object.type_.clone().unwrap_or_default());
        fields
    }

    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        known_field_conversion(
            &["metadata.name", "metadata.namespace", "type"],
            label,
            value,
        )
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            name_column(),
            TableColumn::new("Type", "string", "", "The type of the secret"),
            TableColumn::new("Data", "string", "", "Number of keys in the secret"),
            age_column(),
        ]
    }

    fn table_cells(&self, object: &Secret) -> Vec<Value> {
        vec![
            Value::from(object.metadata.name.clone().unwrap_or_default()),
            Value::from(object.type_.clone().unwrap_or_default()),
            Value::from(object.data.as_ref().map_or(0, |d| d.len())),
            Value::from(age(object)),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Events

/// `events` (core/v1): expire a fixed time after their last write ([`EVENT_TTL_SECONDS`]
/// unless built [`EventStrategy::with_ttl`]); the involved object's namespace must match the
/// event's; new-style events (with `eventTime`) need `reportingController`,
/// `reportingInstance`, `action` and `reason`; `type` is `Normal` or `Warning`. Field selectors
/// see `involvedObject.*`, `reason`, `source`, `type`.
#[derive(Clone, Copy, Debug)]
pub struct EventStrategy {
    ttl_seconds: u64,
}

impl Default for EventStrategy {
    fn default() -> Self {
        EventStrategy {
            ttl_seconds: EVENT_TTL_SECONDS,
        }
    }
}

impl EventStrategy {
    /// Events that expire `ttl` after their last write (kube-apiserver's `--event-ttl`),
    /// rounded up to whole seconds and at least one second, as storage TTLs are.
    pub fn with_ttl(ttl: std::time::Duration) -> Self {
        let whole = ttl
            .as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0));
        EventStrategy {
            ttl_seconds: whole.max(1),
        }
    }

    /// How long an event lives after its last write.
    pub fn ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ttl_seconds)
    }
}

fn validate_event(event: &Event) -> Vec<FieldError> {
    let mut errors = validate_object_meta(&event.metadata, true, name_is_dns_subdomain);
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    let involved = event.involved_object.namespace.clone().unwrap_or_default();
    if event.event_time.is_none() {
        let mismatch = if involved.is_empty() {
            !namespace.is_empty() && namespace != "default"
        } else {
            namespace != involved
        };
        if mismatch {
            errors.push(FieldError::invalid(
                "involvedObject.namespace",
                involved.as_str(),
                "does not match event.namespace",
            ));
        }
    } else {
        let empty = |v: &Option<String>| v.as_deref().unwrap_or_default().is_empty();
        if empty(&event.reporting_component) {
            errors.push(FieldError::required("reportingController", ""));
        }
        if empty(&event.reporting_instance) {
            errors.push(FieldError::required("reportingInstance", ""));
        }
        if empty(&event.action) {
            errors.push(FieldError::required("action", ""));
        }
        if empty(&event.reason) {
            errors.push(FieldError::required("reason", ""));
        }
        if !involved.is_empty() && namespace != involved {
            errors.push(FieldError::invalid(
                "involvedObject.namespace",
                involved.as_str(),
                "does not match event.namespace",
            ));
        }
        match event.type_.as_deref() {
            Some("Normal" | "Warning") => {}
            other => errors.push(FieldError::not_supported(
                "type",
                other.unwrap_or_default(),
                &["Normal", "Warning"],
            )),
        }
    }
    for message in dns1123_subdomain_errors(&namespace) {
        errors.push(FieldError::invalid(
            "namespace",
            namespace.as_str(),
            message,
        ));
    }
    errors
}

impl Strategy<Event> for EventStrategy {
    fn namespace_scoped(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn validate(&self, object: &Event) -> Vec<FieldError> {
        validate_event(object)
    }

    fn validate_update(&self, new: &Event, _old: &Event) -> Vec<FieldError> {
        validate_event(new)
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    fn ttl_seconds(&self, _object: &Event, _existing: u64, _update: bool) -> u64 {
        self.ttl_seconds
    }

    fn selectable_fields(&self, event: &Event) -> Fields {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let involved = &event.involved_object;
        let mut fields = Fields::new();
        fields.insert("metadata.name".to_owned(), text(&event.metadata.name));
        fields.insert(
            "metadata.namespace".to_owned(),
            text(&event.metadata.namespace),
        );
        fields.insert("involvedObject.kind".to_owned(), text(&involved.kind));
        fields.insert(
            "involvedObject.namespace".to_owned(),
            text(&involved.namespace),
        );
        fields.insert("involvedObject.name".to_owned(), text(&involved.name));
        fields.insert("involvedObject.uid".to_owned(), text(&involved.uid));
        fields.insert(
            "involvedObject.apiVersion".to_owned(),
            text(&involved.api_version),
        );
        fields.insert(
            "involvedObject.resourceVersion".to_owned(),
            text(&involved.resource_version),
        );
        fields.insert(
            "involvedObject.fieldPath".to_owned(),
            text(&involved.field_path),
        );
        fields.insert("reason".to_owned(), text(&event.reason));
        fields.insert(
            "reportingComponent".to_owned(),
            text(&event.reporting_component),
        );
        fields.insert(
            "source".to_owned(),
            event
                .source
                .as_ref()
                .and_then(|s| s.component.clone())
                .unwrap_or_default(),
        );
        fields.insert("type".to_owned(), text(&event.type_));
        fields
    }

    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        known_field_conversion(EVENT_FIELD_LABELS, label, value)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            TableColumn::new(
                "Last Seen",
                "string",
                "",
                "Time when last this event was observed",
            ),
            TableColumn::new("Type", "string", "", "Type of this event"),
            TableColumn::new(
                "Reason",
                "string",
                "",
                "Short, machine understandable string that gives the reason for this event being generated",
            ),
            TableColumn::new("Object", "string", "", "The object this event is about"),
            TableColumn::new(
                "Subobject",
                "string",
                "",
                "The subobject (fieldPath) of the involved object",
            )
            .with_priority(1),
            TableColumn::new("Source", "string", "", "The component reporting this event")
                .with_priority(1),
            TableColumn::new(
                "Message",
                "string",
                "",
                "A human-readable description of the status of this operation",
            ),
            TableColumn::new(
                "First Seen",
                "string",
                "",
                "The time at which the event was first recorded",
            )
            .with_priority(1),
            TableColumn::new(
                "Count",
                "string",
                "",
                "The number of times this event has occurred",
            )
            .with_priority(1),
            TableColumn::new("Name", "string", "name", "The name of the event").with_priority(1),
        ]
    }

    /// Upstream's `printEvent` with `Wide` (the server always prints every column; kubectl
    /// hides priority-1 ones without `-o wide`).
    fn table_cells(&self, event: &Event) -> Vec<Value> {
        let since = |seconds: Option<i64>| match seconds {
            Some(seconds) => registry::strategy::human_duration(
                k8s_openapi::jiff::Timestamp::now().as_second() - seconds,
            ),
            None => "<unknown>".to_owned(),
        };
        let first = event
            .first_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .or_else(|| event.event_time.as_ref().map(|t| t.0.as_second()));
        let first_seen = since(first);
        let mut last_seen = match &event.last_timestamp {
            Some(t) => since(Some(t.0.as_second())),
            None => first_seen.clone(),
        };
        let mut count = i64::from(event.count.unwrap_or(0));
        if let Some(series) = &event.series {
            last_seen = since(series.last_observed_time.as_ref().map(|t| t.0.as_second()));
            count = i64::from(series.count.unwrap_or(0));
        } else if count == 0 {
            // Singleton events of the events.k8s.io API carry no count.
            count = 1;
        }
        let involved = &event.involved_object;
        let kind = involved.kind.clone().unwrap_or_default().to_lowercase();
        let target = match involved.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => format!("{kind}/{name}"),
            None => kind,
        };
        let first_non_empty = |a: Option<&String>, b: Option<&String>| {
            a.filter(|s| !s.is_empty())
                .or(b)
                .cloned()
                .unwrap_or_default()
        };
        let source = event.source.as_ref();
        let component = first_non_empty(
            source.and_then(|s| s.component.as_ref()),
            event.reporting_component.as_ref(),
        );
        let instance = first_non_empty(
            source.and_then(|s| s.host.as_ref()),
            event.reporting_instance.as_ref(),
        );
        let source = if instance.is_empty() {
            component
        } else {
            format!("{component}, {instance}")
        };
        vec![
            Value::from(last_seen),
            Value::from(event.type_.clone().unwrap_or_default()),
            Value::from(event.reason.clone().unwrap_or_default()),
            Value::from(target),
            Value::from(involved.field_path.clone().unwrap_or_default()),
            Value::from(source),
            Value::from(event.message.clone().unwrap_or_default().trim().to_owned()),
            Value::from(first_seen),
            Value::from(count),
            Value::from(event.metadata.name.clone().unwrap_or_default()),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Leases

/// `leases` (coordination.k8s.io/v1): DNS-subdomain names, `spec.leaseDurationSeconds` > 0,
/// `spec.leaseTransitions` >= 0, `spec.preferredHolder` only with `spec.strategy`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeaseStrategy;

fn validate_lease(lease: &Lease) -> Vec<FieldError> {
    let mut errors = validate_object_meta(&lease.metadata, true, name_is_dns_subdomain);
    if let Some(spec) = &lease.spec {
        if let Some(duration) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
            errors.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                duration,
                "must be greater than 0",
            ));
        }
        if let Some(transitions) = spec.lease_transitions.filter(|t| *t < 0) {
            errors.push(FieldError::invalid(
                "spec.leaseTransitions",
                transitions,
                "must be greater than or equal to 0",
            ));
        }
        if spec.preferred_holder.is_some() && spec.strategy.is_none() {
            errors.push(FieldError::forbidden(
                "spec.preferredHolder",
                "may only be specified if `strategy` is defined",
            ));
        }
        if let Some(strategy) = &spec.strategy {
            if strategy != "OldestEmulationVersion" {
                errors.push(FieldError::not_supported(
                    "spec.strategy",
                    strategy.as_str(),
                    &["OldestEmulationVersion"],
                ));
            }
        }
    }
    errors
}

impl Strategy<Lease> for LeaseStrategy {
    fn namespace_scoped(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn validate(&self, object: &Lease) -> Vec<FieldError> {
        validate_lease(object)
    }

    fn validate_update(&self, new: &Lease, _old: &Lease) -> Vec<FieldError> {
        validate_lease(new)
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            name_column(),
            TableColumn::new("Holder", "string", "", "The holder of the lease"),
            age_column(),
        ]
    }

    fn table_cells(&self, lease: &Lease) -> Vec<Value> {
        vec![
            Value::from(lease.metadata.name.clone().unwrap_or_default()),
            Value::from(
                lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default(),
            ),
            Value::from(age(lease)),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Generic (custom resources)

/// A strategy for custom and dynamic kinds (what Kubernetes does for custom resources):
/// generation tracking, `status` reset on main-resource writes when the kind has a status
/// subresource, name rule, scope and unconditional updates configurable.
#[derive(Clone, Debug)]
pub struct GenericStrategy {
    namespaced: bool,
    status_subresource: bool,
    allow_unconditional_update: bool,
    allow_create_on_update: bool,
    name_rule: NameValidator,
}

impl GenericStrategy {
    /// A strategy of the given scope with a status subresource, DNS-subdomain names, and
    /// neither unconditional updates nor create-on-update (as custom resources).
    pub fn new(namespaced: bool) -> Self {
        GenericStrategy {
            namespaced,
            status_subresource: true,
            allow_unconditional_update: false,
            allow_create_on_update: false,
            name_rule: name_is_dns_subdomain,
        }
    }

    /// Whether main-resource writes keep the stored status (the kind has `/status`).
    pub fn with_status_subresource(mut self, enabled: bool) -> Self {
        self.status_subresource = enabled;
        self
    }

    /// Whether updates without a resourceVersion are allowed.
    pub fn with_unconditional_update(mut self, enabled: bool) -> Self {
        self.allow_unconditional_update = enabled;
        self
    }

    /// Whether updates of missing objects create them.
    pub fn with_create_on_update(mut self, enabled: bool) -> Self {
        self.allow_create_on_update = enabled;
        self
    }

    /// Another name rule (for example [`name_is_dns_label`]).
    pub fn with_name_rule(mut self, rule: NameValidator) -> Self {
        self.name_rule = rule;
        self
    }
}

impl<K: Object> Strategy<K> for GenericStrategy {
    fn namespace_scoped(&self) -> bool {
        self.namespaced
    }

    /// As Kubernetes' custom resource converter: `metadata.name`, and `metadata.namespace` for
    /// namespaced kinds; anything else is `field label not supported`.
    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        let known: &[&str] = if self.namespaced {
            &["metadata.name", "metadata.namespace"]
        } else {
            &["metadata.name"]
        };
        known_field_conversion(known, label, value)
    }

    fn prepare_for_create(&self, object: &mut K) {
        if self.status_subresource {
            let empty: K = match serde_json::to_value(&*object) {
                Ok(Value::Object(mut map)) => {
                    map.remove("status");
                    match serde_json::from_value(Value::Object(map)) {
                        Ok(o) => o,
                        Err(_) => return,
                    }
                }
                _ => return,
            };
            *object = empty;
        }
    }

    fn prepare_for_update(&self, new: &mut K, old: &K) {
        if self.status_subresource {
            copy_status(old, new);
        }
    }

    fn validate(&self, object: &K) -> Vec<FieldError> {
        validate_object_meta(object.meta(), self.namespaced, self.name_rule)
    }

    fn validate_update(&self, new: &K, _old: &K) -> Vec<FieldError> {
        validate_object_meta(new.meta(), self.namespaced, self.name_rule)
    }

    fn allow_create_on_update(&self) -> bool {
        self.allow_create_on_update
    }

    fn allow_unconditional_update(&self) -> bool {
        self.allow_unconditional_update
    }
}

/// The status strategy of a [`GenericStrategy`] kind.
pub fn generic_status_strategy(main: GenericStrategy) -> registry::StatusStrategy<GenericStrategy> {
    registry::StatusStrategy::new(main)
}

#[cfg(test)]
mod event_table_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_rows_have_every_wide_column() {
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "ConfigMap", "name": "c", "fieldPath": "data.x"},
            "reason": "Tested", "message": "  hello \n", "type": "Normal",
            "source": {"host": "node-1"}, "reportingComponent": "unit",
        }))
        .unwrap();
        let columns = EventStrategy::default().table_columns();
        let cells = EventStrategy::default().table_cells(&event);
        assert_eq!(columns.len(), cells.len());
        let wide: Vec<&str> = columns
            .iter()
            .filter(|c| c.priority == 1)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(wide, ["Subobject", "Source", "First Seen", "Count", "Name"]);
        assert_eq!(
            cells,
            vec![
                json!("<unknown>"),
                json!("Normal"),
                json!("Tested"),
                json!("configmap/c"),
                json!("data.x"),
                json!("unit, node-1"),
                json!("hello"),
                json!("<unknown>"),
                json!(1),
                json!("e1"),
            ]
        );
    }
}
