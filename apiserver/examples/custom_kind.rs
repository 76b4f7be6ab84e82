//! Build your own API server on these crates: one kind of your own (`Gadget` in
//! `toys.example.com/v1`, with a validating strategy and table columns), the built-in
//! namespaces, a storage backend of your choice, served with axum.
//!
//! ```text
//! cargo run -p apiserver --example custom_kind -- [STORAGE_URL] [BIND]
//! # defaults: memory:// 127.0.0.1:6444
//! kubectl --server http://127.0.0.1:6444 get gadgets
//! kubectl --server http://127.0.0.1:6444 apply -f - <<EOF
//! apiVersion: toys.example.com/v1
//! kind: Gadget
//! metadata: {name: g1, namespace: default}
//! spec: {size: 3}
//! EOF
//! ```

use std::sync::Arc;

use apimachinery::object::ObjectMeta;
use apimachinery::status::FieldError;
use apiserver::{KindSpec, ServerBuilder};
use builtin_kinds::GenericStrategy;
use k8s_openapi::api::core::v1::Namespace;
use registry::strategy::{age, age_column, name_column};
use registry::{Strategy, TableColumn};
use scheme::{ResourceInfo, TypedConverter, builtin};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kind: ordinary serde structs plus the `k8s_openapi` resource traits.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Gadget {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: GadgetSpec,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct GadgetSpec {
    #[serde(default)]
    size: i64,
}

impl k8s_openapi::Resource for Gadget {
    const API_VERSION: &'static str = "toys.example.com/v1";
    const GROUP: &'static str = "toys.example.com";
    const KIND: &'static str = "Gadget";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "gadgets";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::ListableResource for Gadget {
    const LIST_KIND: &'static str = "GadgetList";
}

impl k8s_openapi::Metadata for Gadget {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The strategy: the generic custom-resource behaviour, plus validation and columns.
struct GadgetStrategy(GenericStrategy);

impl Strategy<Gadget> for GadgetStrategy {
    fn namespace_scoped(&self) -> bool {
        true
    }
    fn prepare_for_create(&self, object: &mut Gadget) {
        self.0.prepare_for_create(object);
    }
    fn prepare_for_update(&self, new: &mut Gadget, old: &Gadget) {
        self.0.prepare_for_update(new, old);
    }
    fn validate(&self, object: &Gadget) -> Vec<FieldError> {
        if (1..=10).contains(&object.spec.size) {
            Vec::new()
        } else {
            vec![FieldError::invalid(
                "spec.size",
                object.spec.size,
                "must be between 1 and 10",
            )]
        }
    }
    fn validate_update(&self, new: &Gadget, _old: &Gadget) -> Vec<FieldError> {
        self.validate(new)
    }
    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            name_column(),
            TableColumn::new("Size", "integer", "", "spec.size"),
            age_column(),
        ]
    }
    fn table_cells(&self, object: &Gadget) -> Vec<Value> {
        vec![
            Value::from(object.metadata.name.clone().unwrap_or_default()),
            Value::from(object.spec.size),
            Value::from(age(object)),
        ]
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "memory://".to_owned());
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:6444".to_owned());

    // 1. Choose a backend.
    let storage = storage::open(&url).await?;
    let mut builder = ServerBuilder::new(storage)?;

    // 2. Register kinds: the built-in namespaces (with their lifecycle) and ours.
    builder.register_namespaces(
        KindSpec::<Namespace>::new(
            builtin::namespaces(),
            Arc::new(TypedConverter::<Namespace>::new()),
            Arc::new(builtin_kinds::NamespaceStrategy),
            &patch::NAMESPACE,
        )
        .with_status_strategy(Arc::new(builtin_kinds::NamespaceStatusStrategy))
        .with_subresource_strategy(
            "finalize",
            Arc::new(builtin_kinds::NamespaceFinalizeStrategy),
        )
        .with_return_deleted_object(),
    )?;
    builder.register_kind(KindSpec::<Gadget>::new(
        ResourceInfo::for_type::<Gadget>()
            .with_short_names(&["gd"])
            .with_categories(&["all"]),
        Arc::new(TypedConverter::<Gadget>::new()),
        Arc::new(GadgetStrategy(
            GenericStrategy::new(true).with_status_subresource(false),
        )),
        &patch::CUSTOM_RESOURCE,
    ))?;

    // 3. Serve.
    let server = builder.build()?;
    server.bootstrap().await?;
    server.controllers();
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!(
        "serving gadgets on http://{} (storage {url}); try: kubectl --server http://{} get gadgets",
        listener.local_addr()?,
        listener.local_addr()?
    );
    let shutdown = server.clone();
    // TCP_NODELAY, as the apiserver binary serves: watch events leave at once.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, server.router())
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.shutdown();
        })
        .await?;
    Ok(())
}
