//! The kind a CRD defines, ready to serve: its resource info, the converter between its
//! versions (with pruning and defaulting on decode), and the registry strategies of its
//! objects (schema validation, status subresource, printer columns, selectable fields).

use std::collections::HashMap;
use std::sync::Arc;

use apimachinery::selector::{Fields, SelectorError, known_field_conversion};
use apimachinery::status::{FieldError, FieldErrorType};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use kube_core::Resource;
use registry::strategy::{Strategy, TableColumn, name_column};
use registry::validation::{name_is_dns_subdomain, validate_object_meta};
use scheme::{ConversionError, Converter, INTERNAL_VERSION, ResourceInfo, SubresourceInfo};
use serde_json::{Map, Value, json};

use crate::Unstructured;
use crate::columns::{JsonPath, PrinterColumn};
use crate::definition::storage_version;
use crate::patching::CustomResourcePatchSchema;
use crate::schema::StructuralSchema;

/// Everything needed to serve one CRD's kind.
#[derive(Clone)]
pub struct CustomResourceKind {
    /// Names, served versions (in the CRD's order), storage version, scope, subresources.
    pub info: ResourceInfo,
    /// Converts between the served versions through the storage version.
    pub converter: Arc<CustomResourceConverter>,
    /// The main-resource strategy.
    pub strategy: Arc<CustomResourceStrategy>,
    /// Whether the storage version has a `status` subresource.
    pub status_subresource: bool,
    /// How lists merge under patches and server-side apply (the storage version's list types).
    pub patch_schema: Arc<CustomResourcePatchSchema>,
    /// The storage version's `scale` subresource, if it declares one.
    pub scale: Option<ScalePaths>,
    /// The storage version's schema when it has defaults, to apply to objects read from
    /// storage.
    pub read_defaults: Option<StructuralSchema>,
    /// The conversion webhook of a `Webhook` CRD.
    pub webhook: Option<ConversionWebhook>,
}

/// Where a `Webhook` CRD's conversion webhook is (`spec.conversion.webhook.clientConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversionWebhook {
    /// `url`, when given.
    pub url: Option<String>,
    /// `service` as `namespace/name:port/path`, when given instead of a URL.
    pub service: Option<String>,
    /// `caBundle`: PEM certificates to trust for the webhook.
    pub ca_bundle: Vec<u8>,
}

/// Where a CRD's objects keep what the `scale` subresource shows: the field paths of
/// `specReplicasPath`, `statusReplicasPath` and `labelSelectorPath`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    spec_replicas: Vec<String>,
    status_replicas: Vec<String>,
    label_selector: Option<Vec<String>>,
}

/// The field names of a simple path (`.spec.replicas`); `None` for anything else.
pub fn field_path(path: &str) -> Option<Vec<String>> {
    let fields: Vec<String> = path
        .strip_prefix('.')?
        .split('.')
        .map(str::to_owned)
        .collect();
    let simple = fields.iter().all(|f| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    simple.then_some(fields)
}

impl ScalePaths {
    fn read<'a>(object: &'a Unstructured, path: &[String]) -> Option<&'a Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(object.content.get(first)?, |value, field| value.get(field))
    }

    /// `spec.replicas` of the Scale: the integer at `specReplicasPath`, else 0.
    pub fn spec_replicas(&self, object: &Unstructured) -> i64 {
        Self::read(object, &self.spec_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// `status.replicas` of the Scale: the integer at `statusReplicasPath`, else 0.
    pub fn status_replicas(&self, object: &Unstructured) -> i64 {
        Self::read(object, &self.status_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// `status.selector` of the Scale: the string at `labelSelectorPath`, if any.
    pub fn selector(&self, object: &Unstructured) -> Option<String> {
        let path = self.label_selector.as_ref()?;
        Self::read(object, path)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Writes `replicas` at `specReplicasPath`, creating the objects on the way.
    ///
    /// # Errors
    ///
    /// When a field on the way holds something other than an object.
    pub fn set_replicas(&self, object: &mut Unstructured, replicas: i64) -> Result<(), String> {
        let Some((first, rest)) = self.spec_replicas.split_first() else {
            return Err("empty specReplicasPath".to_owned());
        };
        let Some((last, middle)) = rest.split_last() else {
            object.content.insert(first.clone(), Value::from(replicas));
            return Ok(());
        };
        let mut at = object
            .content
            .entry(first.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        for field in middle {
            let Value::Object(map) = at else {
                return Err(format!("{field} is not inside an object"));
            };
            at = map
                .entry(field.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        match at {
            Value::Object(map) => {
                map.insert(last.clone(), Value::from(replicas));
                Ok(())
            }
            _ => Err(format!("{last} is not inside an object")),
        }
    }
}

impl std::fmt::Debug for CustomResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomResourceKind")
            .field("group", &self.info.group)
            .field("plural", &self.info.plural)
            .finish_non_exhaustive()
    }
}

/// One served version's schema, columns and fields.
#[derive(Clone, Debug)]
struct VersionRules {
    schema: Option<StructuralSchema>,
    columns: Vec<PrinterColumn>,
    selectable: Vec<(String, JsonPath)>,
    status_subresource: bool,
    scale: Option<ScalePaths>,
}

impl VersionRules {
    fn new(version: &CustomResourceDefinitionVersion) -> Result<Self, String> {
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .map(|s| serde_json::to_value(s).map(StructuralSchema::new))
            .transpose()
            .map_err(|e| e.to_string())?;
        let mut columns = Vec::new();
        for column in version.additional_printer_columns.iter().flatten() {
            columns.push(PrinterColumn::new(
                &column.name,
                &column.type_,
                column.format.as_deref().unwrap_or(""),
                column.description.as_deref().unwrap_or(""),
                column.priority.unwrap_or(0),
                &column.json_path,
            )?);
        }
        // Upstream's `serveDefaultColumnsIfEmpty`: an Age column when none is given.
        if columns.is_empty() {
            columns.push(PrinterColumn::new(
                "Age",
                "date",
                "",
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
                0,
                ".metadata.creationTimestamp",
            )?);
        }
        let mut selectable = Vec::new();
        for field in version.selectable_fields.iter().flatten() {
            let label = field.json_path.trim_start_matches('.').to_owned();
            selectable.push((label, JsonPath::parse(&field.json_path)?));
        }
        let scale = match version.subresources.as_ref().and_then(|s| s.scale.as_ref()) {
            None => None,
            Some(scale) => {
                let path = |p: &str| {
                    field_path(p).ok_or_else(|| format!("{p:?} is not a simple field path"))
                };
                Some(ScalePaths {
                    spec_replicas: path(&scale.spec_replicas_path)?,
                    status_replicas: path(&scale.status_replicas_path)?,
                    label_selector: scale.label_selector_path.as_deref().map(path).transpose()?,
                })
            }
        };
        Ok(VersionRules {
            schema,
            columns,
            selectable,
            status_subresource: version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            scale,
        })
    }
}

fn conversion_webhook(crd: &CustomResourceDefinition) -> ConversionWebhook {
    let config = crd
        .spec
        .conversion
        .as_ref()
        .and_then(|c| c.webhook.as_ref())
        .and_then(|w| w.client_config.as_ref());
    ConversionWebhook {
        url: config.and_then(|c| c.url.clone()),
        service: config.and_then(|c| c.service.as_ref()).map(|s| {
            format!(
                "{}/{}:{}{}",
                s.namespace,
                s.name,
                s.port.unwrap_or(443),
                s.path.as_deref().unwrap_or("")
            )
        }),
        ca_bundle: config
            .and_then(|c| c.ca_bundle.as_ref())
            .map(|b| b.0.clone())
            .unwrap_or_default(),
    }
}

impl CustomResourceKind {
    /// The kind of a valid CRD, serving its `served` versions.
    ///
    /// # Errors
    ///
    /// What makes the CRD unservable (no served or storage version, a bad column path).
    pub fn from_crd(crd: &CustomResourceDefinition) -> Result<Self, String> {
        let spec = &crd.spec;
        let storage = storage_version(crd).ok_or("no storage version")?.to_owned();
        let served: Vec<&CustomResourceDefinitionVersion> =
            spec.versions.iter().filter(|v| v.served).collect();
        if served.is_empty() {
            return Err("no served version".to_owned());
        }
        let mut rules = HashMap::new();
        for version in &spec.versions {
            rules.insert(version.name.clone(), VersionRules::new(version)?);
        }
        let storage_rules = rules
            .get(&storage)
            .cloned()
            .ok_or("storage version without rules")?;
        let namespaced = spec.scope == "Namespaced";
        let names = &spec.names;
        let versions: Vec<&str> = served.iter().map(|v| v.name.as_str()).collect();
        // The storage version need not be served; the scheme needs it registered, so it is
        // listed last when not served.
        let mut all_versions = versions.clone();
        if !all_versions.contains(&storage.as_str()) {
            all_versions.push(&storage);
        }
        let mut info = ResourceInfo::new(&spec.group, storage.as_str(), &names.kind, &names.plural)
            .with_versions(&all_versions, &storage)
            .with_namespaced(namespaced)
            .with_singular(
                names
                    .singular
                    .clone()
                    .unwrap_or_else(|| names.kind.to_ascii_lowercase()),
            );
        info.list_kind = names
            .list_kind
            .clone()
            .unwrap_or_else(|| format!("{}List", names.kind));
        let short: Vec<&str> = names
            .short_names
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let categories: Vec<&str> = names
            .categories
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        info = info.with_short_names(&short).with_categories(&categories);
        if storage_rules.status_subresource {
            info = info.with_status_subresource();
        }
        if storage_rules.scale.is_some() {
            info = info.with_subresource(SubresourceInfo::scale());
        }
        let webhook = spec
            .conversion
            .as_ref()
            .is_some_and(|c| c.strategy == "Webhook");
        // The scheme converts a kind of several versions through a hub no one is served at;
        // a kind of one version is its own hub, so its requests skip conversion.
        let hub = if all_versions.len() > 1 {
            INTERNAL_VERSION.to_owned()
        } else {
            storage.clone()
        };
        let converter = CustomResourceConverter {
            group: spec.group.clone(),
            hub,
            storage_version: storage.clone(),
            schemas: rules
                .iter()
                .map(|(v, r)| (v.clone(), r.schema.clone()))
                .collect(),
            webhook,
        };
        let patch_schema = Arc::new(CustomResourcePatchSchema::new(
            storage_rules.schema.as_ref().map(StructuralSchema::root),
        ));
        let strategy = CustomResourceStrategy {
            namespaced,
            rules: storage_rules.clone(),
        };
        Ok(CustomResourceKind {
            info,
            converter: Arc::new(converter),
            strategy: Arc::new(strategy),
            status_subresource: storage_rules.status_subresource,
            patch_schema,
            scale: storage_rules.scale.clone(),
            read_defaults: storage_rules
                .schema
                .clone()
                .filter(StructuralSchema::has_defaults),
            webhook: webhook.then(|| conversion_webhook(crd)),
        })
    }
}

/// Converts a CRD's objects between versions through a hub (the one version of a
/// single-version CRD, else [`INTERNAL_VERSION`]), and prunes and defaults request bodies by
/// the schema of their version.
#[derive(Clone, Debug)]
pub struct CustomResourceConverter {
    group: String,
    hub: String,
    storage_version: String,
    schemas: HashMap<String, Option<StructuralSchema>>,
    webhook: bool,
}

impl CustomResourceConverter {
    fn schema(&self, version: &str) -> Result<Option<&StructuralSchema>, ConversionError> {
        self.schemas
            .get(version)
            .map(Option::as_ref)
            .ok_or_else(|| ConversionError::UnsupportedVersion(version.to_owned()))
    }

    /// Conversion strategy `None`: only `apiVersion` changes. For a `Webhook` CRD this only
    /// moves objects between its storage version and the hub (the same fields); the server
    /// calls the webhook for the other versions (`apiserver`'s `WebhookConverter`).
    fn rewrite(&self, version: &str, mut object: Value) -> Result<Value, ConversionError> {
        if self.webhook && version != self.storage_version && version != self.hub {
            return Err(ConversionError::Failed(format!(
                "cannot convert {} objects to or from {version} without the CRD's conversion webhook, which this server calls only at a clientConfig.url; only {} is served",
                self.group, self.storage_version
            )));
        }
        if let Value::Object(map) = &mut object {
            map.insert(
                "apiVersion".to_owned(),
                Value::from(format!("{}/{version}", self.group)),
            );
        }
        Ok(object)
    }

    /// `convert_to_hub` for a `Webhook` CRD: only from the storage version.
    fn check_webhook_source(&self, version: &str) -> Result<(), ConversionError> {
        if self.webhook && version != self.storage_version {
            return Err(ConversionError::Failed(format!(
                "cannot convert {} objects from {version} without the CRD's conversion webhook, which this server calls only at a clientConfig.url; only {} is served",
                self.group, self.storage_version
            )));
        }
        Ok(())
    }

    /// The OpenAPI v3 schema of the kind at `version`: the CRD's schema with the standard
    /// `apiVersion`, `kind` and `metadata` properties.
    pub fn openapi(&self, version: &str) -> Option<Value> {
        let schema = self.schemas.get(version)?.as_ref()?;
        let mut root = schema.root().clone();
        let map = root.as_object_mut()?;
        let properties = map
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(properties) = properties {
            properties.insert("apiVersion".to_owned(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            properties.insert("kind".to_owned(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            properties.insert("metadata".to_owned(), json!({"description": "Standard object's metadata.", "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]}));
        }
        Some(root)
    }
}

impl Converter for CustomResourceConverter {
    fn hub_version(&self) -> &str {
        &self.hub
    }

    /// Prunes unknown fields (unless the schema preserves them) and applies defaults.
    fn default(&self, version: &str, object: &mut Value) -> Result<(), ConversionError> {
        if let Some(schema) = self.schema(version)? {
            if !schema.preserves_unknown_fields() || schema.root().get("properties").is_some() {
                schema.prune(object);
            }
            schema.apply_defaults(object);
        }
        Ok(())
    }

    fn convert_to_hub(&self, version: &str, object: Value) -> Result<Value, ConversionError> {
        self.schema(version)?;
        self.check_webhook_source(version)?;
        self.rewrite(&self.hub, object)
    }

    fn convert_from_hub(&self, version: &str, hub: Value) -> Result<Value, ConversionError> {
        self.schema(version)?;
        self.rewrite(version, hub)
    }

    fn openapi_schema(&self, version: &str) -> Option<Value> {
        self.openapi(version)
    }
}

/// The registry strategy of a CRD's objects, as upstream's `customresource.customResourceStrategy`:
/// DNS-subdomain names, schema validation, `status` kept on main-resource writes when the
/// kind has the subresource, generation bumped on spec changes.
#[derive(Clone, Debug)]
pub struct CustomResourceStrategy {
    namespaced: bool,
    rules: VersionRules,
}

impl CustomResourceStrategy {
    /// Metadata, the structural schema and, when those leave no type errors, the CEL rules
    /// (upstream's `customResourceStrategy.Validate`); `old` on updates.
    fn schema_errors(&self, object: &Unstructured, old: Option<&Unstructured>) -> Vec<FieldError> {
        let mut errors =
            validate_object_meta(&object.metadata, self.namespaced, name_is_dns_subdomain);
        let Some(schema) = &self.rules.schema else {
            return errors;
        };
        errors.extend(schema.validate_content(&object.content));
        if !schema.has_rules() {
            return errors;
        }
        if errors.iter().any(|e| e.kind == FieldErrorType::TypeInvalid) {
            errors.push(FieldError::invalid(
                "<nil>",
                "null",
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
            return errors;
        }
        errors.extend(schema.validate_rules(object, old));
        errors
    }

    /// The strategy of `/status` writes: everything but `status` (and metadata) is kept.
    pub fn status_strategy(self: &Arc<Self>) -> CustomResourceStatusStrategy {
        CustomResourceStatusStrategy { main: self.clone() }
    }
}

impl Strategy<Unstructured> for CustomResourceStrategy {
    fn namespace_scoped(&self) -> bool {
        self.namespaced
    }

    fn prepare_for_create(&self, object: &mut Unstructured) {
        if self.rules.status_subresource {
            object.content.remove("status");
        }
    }

    fn prepare_for_update(&self, new: &mut Unstructured, old: &Unstructured) {
        if self.rules.status_subresource {
            match old.content.get("status") {
                Some(status) => {
                    new.content.insert("status".to_owned(), status.clone());
                }
                None => {
                    new.content.remove("status");
                }
            }
        }
    }

    fn validate(&self, object: &Unstructured) -> Vec<FieldError> {
        self.schema_errors(object, None)
    }

    fn validate_update(&self, new: &Unstructured, old: &Unstructured) -> Vec<FieldError> {
        self.schema_errors(new, Some(old))
    }

    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        if self.rules.selectable.iter().any(|(name, _)| name == label) {
            return Ok((label.to_owned(), value.to_owned()));
        }
        let known: &[&str] = if self.namespaced {
            &["metadata.name", "metadata.namespace"]
        } else {
            &["metadata.name"]
        };
        known_field_conversion(known, label, value)
    }

    fn selectable_fields(&self, object: &Unstructured) -> Fields {
        let mut fields = Fields::new();
        let meta = object.meta();
        fields.insert(
            "metadata.name".to_owned(),
            meta.name.clone().unwrap_or_default(),
        );
        if self.namespaced {
            fields.insert(
                "metadata.namespace".to_owned(),
                meta.namespace.clone().unwrap_or_default(),
            );
        }
        if !self.rules.selectable.is_empty() {
            for (label, path) in &self.rules.selectable {
                let text = match path.first_in(&object.content) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                fields.insert(label.clone(), text);
            }
        }
        fields
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        let mut columns = vec![name_column()];
        columns.extend(self.rules.columns.iter().map(|c| c.definition.clone()));
        columns
    }

    fn table_cells(&self, object: &Unstructured) -> Vec<Value> {
        let document = object.to_value();
        let mut cells = vec![Value::from(
            object.metadata.name.clone().unwrap_or_default(),
        )];
        cells.extend(self.rules.columns.iter().map(|c| c.cell(&document)));
        cells
    }
}

/// The `/status` strategy of a CRD's objects: only `status` (and metadata) may change.
#[derive(Clone, Debug)]
pub struct CustomResourceStatusStrategy {
    main: Arc<CustomResourceStrategy>,
}

impl Strategy<Unstructured> for CustomResourceStatusStrategy {
    fn namespace_scoped(&self) -> bool {
        self.main.namespaced
    }

    /// As upstream's `statusStrategy.PrepareForUpdate`: the old object with the new status
    /// (and the new managedFields, which record the status write).
    fn prepare_for_update(&self, new: &mut Unstructured, old: &Unstructured) {
        let status = new.content.remove("status");
        let managed_fields = new.metadata.managed_fields.take();
        new.metadata = old.metadata.clone();
        new.metadata.managed_fields = managed_fields;
        new.content = old.content.clone();
        match status {
            Some(status) => {
                new.content.insert("status".to_owned(), status);
            }
            None => {
                new.content.remove("status");
            }
        }
    }

    fn validate(&self, object: &Unstructured) -> Vec<FieldError> {
        self.main.validate(object)
    }

    fn validate_update(&self, new: &Unstructured, old: &Unstructured) -> Vec<FieldError> {
        self.main.validate_update(new, old)
    }

    fn selectable_fields(&self, object: &Unstructured) -> Fields {
        self.main.selectable_fields(object)
    }

    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        self.main.convert_field_label(label, value)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        self.main.table_columns()
    }

    fn table_cells(&self, object: &Unstructured) -> Vec<Value> {
        self.main.table_cells(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::apply_defaults;
    use serde_json::json;

    fn kind() -> CustomResourceKind {
        let mut crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab"},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}},
                     "selectableFields": [{"jsonPath": ".spec.color"}],
                     "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}],
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "replicas": {"type": "integer", "default": 1, "maximum": 5},
                            "color": {"type": "string"}}},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}},
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                ]
            }
        }))
        .unwrap();
        apply_defaults(&mut crd);
        CustomResourceKind::from_crd(&crd).unwrap()
    }

    #[test]
    fn info_names_versions_and_subresources() {
        let kind = kind();
        assert_eq!(kind.info.versions, ["v1", "v1beta1"]);
        assert_eq!(kind.info.storage_version, "v1");
        assert_eq!(kind.info.list_kind, "CronTabList");
        assert!(kind.info.has_subresource("status"));
        assert!(kind.info.check().is_ok());
    }

    #[test]
    fn decode_prunes_and_defaults_by_the_version_schema() {
        let kind = kind();
        let mut body = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "a"}, "spec": {"color": "red", "junk": 1}});
        kind.converter.default("v1", &mut body).unwrap();
        assert_eq!(body["spec"], json!({"color": "red", "replicas": 1}));
        let mut loose = json!({"apiVersion": "stable.example.com/v1beta1", "kind": "CronTab",
            "spec": {"junk": 1}});
        kind.converter.default("v1beta1", &mut loose).unwrap();
        assert_eq!(loose["spec"]["junk"], 1);
        let hub = kind.converter.convert_to_hub("v1beta1", loose).unwrap();
        assert_eq!(hub["apiVersion"], "stable.example.com/__internal");
        let v1 = kind.converter.convert_from_hub("v1", hub).unwrap();
        assert_eq!(v1["apiVersion"], "stable.example.com/v1");
    }

    #[test]
    fn webhook_crds_convert_only_their_storage_version() {
        let mut crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab"},
                "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                    "clientConfig": {"url": "https://127.0.0.1:1/convert"}}},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                    {"name": "v2", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                ]
            }
        }))
        .unwrap();
        apply_defaults(&mut crd);
        let kind = CustomResourceKind::from_crd(&crd).unwrap();
        let object = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab"});
        let hub = kind.converter.convert_to_hub("v1", object.clone()).unwrap();
        assert_eq!(
            kind.converter.convert_from_hub("v1", hub.clone()).unwrap(),
            object
        );
        let error = kind
            .converter
            .convert_from_hub("v2", hub)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("without the CRD's conversion webhook"),
            "{error}"
        );
        assert!(kind.converter.convert_to_hub("v2", object).is_err());
    }

    #[test]
    fn strategy_validates_keeps_status_and_renders_rows() {
        let kind = kind();
        let object: Unstructured = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "default"},
            "spec": {"replicas": 9, "color": "blue"}, "status": {"x": 1}}))
        .unwrap();
        let errors: Vec<String> = kind
            .strategy
            .validate(&object)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5"
            ]
        );
        let mut created = object.clone();
        kind.strategy.prepare_for_create(&mut created);
        assert!(created.field("status").is_none());
        assert_eq!(kind.strategy.table_cells(&object), [json!("a"), json!(9)]);
        assert_eq!(
            kind.strategy.selectable_fields(&object)["spec.color"],
            "blue"
        );
        assert!(
            kind.strategy
                .convert_field_label("spec.color", "blue")
                .is_ok()
        );
        assert!(
            kind.strategy
                .convert_field_label("spec.other", "x")
                .is_err()
        );
        let status = kind.strategy.status_strategy();
        let mut new = object.clone();
        new.content.insert("spec".into(), json!({"replicas": 1}));
        new.content.insert("status".into(), json!({"y": 2}));
        status.prepare_for_update(&mut new, &object);
        assert_eq!(new.content["spec"]["replicas"], 9);
        assert_eq!(new.content["status"], json!({"y": 2}));
    }
}
