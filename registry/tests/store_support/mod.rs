//! Shared fixtures of the Store integration tests: both backends, stores of the built-in kinds
//! and of a dynamic test kind, and assertions on API errors.
#![allow(dead_code)]

use std::sync::Arc;

use apimachinery::object::DynamicObject;
use apimachinery::status::{ApiError, GroupResource};
use builtin_kinds::{
    ConfigMapStrategy, EventStrategy, GenericStrategy, LeaseStrategy, NamespaceFinalizeStrategy,
    NamespaceStatusStrategy, NamespaceStrategy, SecretStrategy,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use object_storage::Storage;
use registry::{StatusStrategy, Store, Strategy};
use serde_json::{Value, json};
use storage_api::Interface;

/// A backend under test; keeps its temporary directory alive.
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<dyn Interface>,
    pub _dir: Option<tempfile::TempDir>,
}

pub fn memory() -> Backend {
    Backend {
        name: "memory",
        store: Arc::new(backend_memory::MemoryStore::default()),
        _dir: None,
    }
}

pub fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = backend_sqlite::SqliteStore::open(dir.path().join("store.db"), Default::default())
        .expect("open sqlite");
    Backend {
        name: "sqlite",
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

/// Generates one `#[tokio::test]` per backend for each `async fn(Backend)` named.
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::store_support::memory()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::store_support::sqlite()).await;
                }
            )*
        }
    };
}

pub fn configmaps(b: &Backend) -> Store<ConfigMap> {
    Store::new(
        Storage::new(b.store.clone(), Arc::new(ConfigMap::default)),
        GroupResource::new("", "configmaps"),
        "ConfigMap",
        Arc::new(ConfigMapStrategy),
    )
}

pub fn secrets(b: &Backend) -> Store<Secret> {
    Store::new(
        Storage::new(b.store.clone(), Arc::new(Secret::default)),
        GroupResource::new("", "secrets"),
        "Secret",
        Arc::new(SecretStrategy),
    )
}

pub fn events(b: &Backend) -> Store<Event> {
    Store::new(
        Storage::new(b.store.clone(), Arc::new(Event::default)),
        GroupResource::new("", "events"),
        "Event",
        Arc::new(EventStrategy::default()),
    )
}

pub fn leases(b: &Backend) -> Store<Lease> {
    Store::new(
        Storage::new(b.store.clone(), Arc::new(Lease::default)),
        GroupResource::new("coordination.k8s.io", "leases"),
        "Lease",
        Arc::new(LeaseStrategy),
    )
}

/// Namespaces as kube-apiserver serves them: `status` and `finalize` subresources, deleted
/// objects returned.
pub fn namespaces(b: &Backend) -> Store<Namespace> {
    Store::new(
        Storage::new(b.store.clone(), Arc::new(Namespace::default)),
        GroupResource::new("", "namespaces"),
        "Namespace",
        Arc::new(NamespaceStrategy),
    )
    .with_status_strategy(Arc::new(NamespaceStatusStrategy))
    .with_subresource_strategy("finalize", Arc::new(NamespaceFinalizeStrategy))
    .with_return_deleted_object(true)
}

pub fn new_gadget() -> DynamicObject {
    serde_json::from_value(
        json!({"apiVersion": "test.example.io/v1", "kind": "Gadget", "metadata": {}}),
    )
    .expect("empty gadget")
}

/// A custom kind with a status subresource and generation tracking (as a CRD).
pub fn gadgets_with(
    b: &Backend,
    strategy: Arc<dyn Strategy<DynamicObject>>,
) -> Store<DynamicObject> {
    Store::new(
        Storage::new(b.store.clone(), Arc::new(new_gadget)),
        GroupResource::new("test.example.io", "gadgets"),
        "Gadget",
        strategy,
    )
    .with_status_strategy(Arc::new(StatusStrategy::new(GenericStrategy::new(true))))
}

pub fn gadgets(b: &Backend) -> Store<DynamicObject> {
    gadgets_with(b, Arc::new(GenericStrategy::new(true)))
}

/// A gadget: `spec` and optional `status` as given.
pub fn gadget(namespace: &str, name: &str, spec: Value, status: Option<Value>) -> DynamicObject {
    let mut body = json!({
        "apiVersion": "test.example.io/v1",
        "kind": "Gadget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    });
    if let Some(status) = status {
        body["status"] = status;
    }
    serde_json::from_value(body).expect("gadget")
}

/// A graceful-delete strategy (default grace period 30 s) over the generic one.
pub struct Graceful(pub GenericStrategy);

impl Strategy<DynamicObject> for Graceful {
    fn namespace_scoped(&self) -> bool {
        true
    }
    fn default_grace_period_seconds(&self, _object: &DynamicObject) -> Option<i64> {
        Some(30)
    }
    fn prepare_for_update(&self, new: &mut DynamicObject, old: &DynamicObject) {
        Strategy::<DynamicObject>::prepare_for_update(&self.0, new, old)
    }
}

pub fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: (!name.is_empty()).then(|| name.to_owned()),
        namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
        ..ObjectMeta::default()
    }
}

pub fn configmap(namespace: &str, name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(namespace, name),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

/// Asserts code, reason and message parts of an error.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, ApiError>,
    code: u16,
    reason: &str,
    parts: &[&str],
) -> ApiError {
    let error = result.expect_err("expected an error");
    assert_eq!(
        (error.code, error.reason.as_str()),
        (code, reason),
        "unexpected error: {error:?}"
    );
    for part in parts {
        assert!(
            error.message.contains(part),
            "message {:?} lacks {part:?}",
            error.message
        );
    }
    error
}

/// The (reason, field) pairs of a 422's causes.
pub fn causes(error: &ApiError) -> Vec<(String, String)> {
    error
        .details
        .as_ref()
        .and_then(|d| d.causes.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.reason.unwrap_or_default(), c.field.unwrap_or_default()))
        .collect()
}

pub fn delete_options() -> DeleteOptions {
    DeleteOptions::default()
}

pub fn dry_run_all() -> Option<Vec<String>> {
    Some(vec!["All".to_owned()])
}
