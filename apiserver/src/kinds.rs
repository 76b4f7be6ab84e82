//! The kinds the `apiserver` binary serves: core `v1` namespaces, configmaps, secrets,
//! events and serviceaccounts, `coordination.k8s.io/v1` leases, the RBAC kinds and the
//! authorization and authentication reviews, `apiextensions.k8s.io/v1`
//! customresourcedefinitions (and the kinds they define), and the example group's `widgets`
//! (with the `example-widgets` crate's [`example_widgets::WidgetStrategy`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use builtin_kinds::{
    ConfigMapStrategy, EventStrategy, LeaseStrategy, NamespaceFinalizeStrategy,
    NamespaceStatusStrategy, NamespaceStrategy, SecretStrategy,
};
use example_widgets::v1::Widget;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};
use object_storage::transformer::ValueTransformer;
use scheme::{ResourceInfo, TypedConverter, builtin};
use serde_json::Value;

use crate::openapi;
use crate::server::{KindSpec, ServerBuilder, ServerError};

/// The `leases` resource info (coordination.k8s.io/v1).
pub fn leases_info() -> ResourceInfo {
    ResourceInfo::for_type::<Lease>()
}

/// Registers every kind the binary serves. `secrets` are encrypted at rest with
/// `secret_transformer` when given; events live an hour ([`builtin_kinds::EVENT_TTL_SECONDS`]).
pub fn register_all(
    builder: &mut ServerBuilder,
    secret_transformer: Option<Arc<dyn ValueTransformer>>,
) -> Result<(), ServerError> {
    register_all_with(builder, secret_transformer, EventStrategy::default())
}

/// [`register_all`] with the events' strategy given, such as
/// [`EventStrategy::with_ttl`] for `--event-ttl`.
pub fn register_all_with(
    builder: &mut ServerBuilder,
    secret_transformer: Option<Arc<dyn ValueTransformer>>,
    events: EventStrategy,
) -> Result<(), ServerError> {
    let schemas: BTreeMap<&str, fn() -> Value> = openapi::builtin_schemas();
    let schema_for = |kind: &'static str| -> crate::handler::SchemaFn {
        let f = schemas.get(kind).copied();
        Arc::new(move |_version: &str| f.map(|f| f()))
    };
    builder.register_namespaces(
        KindSpec::<Namespace>::new(
            builtin::namespaces(),
            Arc::new(TypedConverter::<Namespace>::new()),
            Arc::new(NamespaceStrategy),
            &patch::NAMESPACE,
        )
        .with_status_strategy(Arc::new(NamespaceStatusStrategy))
        .with_subresource_strategy("finalize", Arc::new(NamespaceFinalizeStrategy))
        .with_return_deleted_object()
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
            Arc::new(events),
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
    crate::service_accounts::register(builder, schema_for("ServiceAccount"))?;
    builder.register_rbac()?;
    builder.register_reviews()?;
    builder.register_crds()?;
    builder.register_kind(
        KindSpec::<Widget>::new(
            example_widgets::widget_resource_info(),
            Arc::new(example_widgets::WidgetConverter),
            Arc::new(example_widgets::WidgetStrategy),
            &patch::WIDGET,
        )
        .with_status_strategy(Arc::new(example_widgets::widget_status_strategy()))
        .with_openapi(Arc::new(example_widgets::openapi_schema)),
    )?;
    Ok(())
}
