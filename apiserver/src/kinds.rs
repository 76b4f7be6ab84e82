//! The kinds the `apiserver` binary serves: core `v1` namespaces, configmaps, secrets and
//! events, `coordination.k8s.io/v1` leases, and the example group's `widgets` (with the
//! registry's own [`example::WidgetStrategy`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use registry::example::{self, v1::Widget};
use registry::patch;
use registry::scheme::{ResourceInfo, TypedConverter, builtin};
use registry::selector::{Fields, SelectorError};
use registry::status::FieldError;
use registry::store::builtin::{
    ConfigMapStrategy, EventStrategy, LeaseStrategy, NamespaceStatusStrategy, NamespaceStrategy,
    SecretStrategy,
};
use registry::store::{GcPolicy, Strategy, TableColumn};
use registry::transformer::ValueTransformer;
use serde_json::Value;

use crate::openapi;
use crate::server::{KindSpec, ServerBuilder};

/// The finalizer the namespace controller removes once a namespace is empty.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// [`NamespaceStrategy`] plus the namespace lifecycle: new namespaces carry the
/// [`NAMESPACE_FINALIZER`] (in `spec.finalizers`, as in Kubernetes, and in
/// `metadata.finalizers`, which the generic Store honours), so a delete marks them
/// `Terminating` and the namespace controller deletes their contents before removing it.
#[derive(Clone, Copy, Debug, Default)]
pub struct LifecycleNamespaceStrategy;

impl Strategy<Namespace> for LifecycleNamespaceStrategy {
    fn namespace_scoped(&self) -> bool {
        false
    }
    fn tracks_generation(&self) -> bool {
        false
    }
    fn prepare_for_create(&self, object: &mut Namespace) {
        NamespaceStrategy.prepare_for_create(object);
        let finalizers = object.metadata.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == NAMESPACE_FINALIZER) {
            finalizers.push(NAMESPACE_FINALIZER.to_owned());
        }
        let spec = object.spec.get_or_insert_with(Default::default);
        let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == NAMESPACE_FINALIZER) {
            finalizers.push(NAMESPACE_FINALIZER.to_owned());
        }
    }
    fn prepare_for_update(&self, new: &mut Namespace, old: &Namespace) {
        NamespaceStrategy.prepare_for_update(new, old);
    }
    fn validate(&self, object: &Namespace) -> Vec<FieldError> {
        NamespaceStrategy.validate(object)
    }
    fn validate_update(&self, new: &Namespace, old: &Namespace) -> Vec<FieldError> {
        NamespaceStrategy.validate_update(new, old)
    }
    fn allow_unconditional_update(&self) -> bool {
        true
    }
    fn default_gc_policy(&self) -> GcPolicy {
        NamespaceStrategy.default_gc_policy()
    }
    fn check_graceful_delete(&self, object: &Namespace, options: &mut DeleteOptions) -> bool {
        NamespaceStrategy.check_graceful_delete(object, options)
    }
    fn on_deletion_marked(&self, object: &mut Namespace) {
        NamespaceStrategy.on_deletion_marked(object);
    }
    fn selectable_fields(&self, object: &Namespace) -> Fields {
        NamespaceStrategy.selectable_fields(object)
    }
    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        NamespaceStrategy.convert_field_label(label, value)
    }
    fn table_columns(&self) -> Vec<TableColumn> {
        NamespaceStrategy.table_columns()
    }
    fn table_cells(&self, object: &Namespace) -> Vec<Value> {
        NamespaceStrategy.table_cells(object)
    }
}

/// The `leases` resource info (coordination.k8s.io/v1).
pub fn leases_info() -> ResourceInfo {
    ResourceInfo::for_type::<Lease>()
}

/// Registers every kind the binary serves. `secrets` are encrypted at rest with
/// `secret_transformer` when given.
pub fn register_all(
    builder: &mut ServerBuilder,
    secret_transformer: Option<Arc<dyn ValueTransformer>>,
) -> anyhow::Result<()> {
    let schemas: BTreeMap<&str, fn() -> Value> = openapi::builtin_schemas();
    let schema_for = |kind: &'static str| -> crate::handler::SchemaFn {
        let f = schemas.get(kind).copied();
        Arc::new(move |_version: &str| f.map(|f| f()))
    };
    builder.register_kind(
        KindSpec::<Namespace>::new(
            builtin::namespaces(),
            Arc::new(TypedConverter::<Namespace>::new()),
            Arc::new(LifecycleNamespaceStrategy),
            &patch::NAMESPACE,
        )
        .with_status_strategy(Arc::new(NamespaceStatusStrategy))
        .with_openapi(schema_for("Namespace")),
    )?;
    builder.register_kind(
        KindSpec::<ConfigMap>::new(
            builtin::configmaps(),
            Arc::new(TypedConverter::<ConfigMap>::new()),
            Arc::new(ConfigMapStrategy),
            &patch::CONFIG_MAP,
        )
        .with_openapi(schema_for("ConfigMap")),
    )?;
    let mut secrets = KindSpec::<Secret>::new(
        builtin::secrets(),
        Arc::new(TypedConverter::<Secret>::new()),
        Arc::new(SecretStrategy),
        &patch::SECRET,
    )
    .with_openapi(schema_for("Secret"));
    if let Some(transformer) = secret_transformer {
        secrets = secrets.with_transformer(transformer);
    }
    builder.register_kind(secrets)?;
    builder.register_kind(
        KindSpec::<Event>::new(
            builtin::events(),
            Arc::new(TypedConverter::<Event>::new()),
            Arc::new(EventStrategy),
            &patch::EVENT,
        )
        .with_openapi(schema_for("Event")),
    )?;
    builder.register_kind(
        KindSpec::<Lease>::new(
            leases_info(),
            Arc::new(TypedConverter::<Lease>::new()),
            Arc::new(LeaseStrategy),
            &patch::LEASE,
        )
        .with_openapi(schema_for("Lease")),
    )?;
    builder.register_kind(
        KindSpec::<Widget>::new(
            example::widget_resource_info(),
            Arc::new(example::WidgetConverter),
            Arc::new(example::WidgetStrategy),
            &patch::WIDGET,
        )
        .with_status_strategy(Arc::new(example::widget_status_strategy()))
        .with_openapi(Arc::new(example::openapi_schema)),
    )?;
    Ok(())
}
