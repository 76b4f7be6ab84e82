//! The port of Kubernetes' shared storage test suite (`pkg/storage/testing`, v0.34.10) to
//! `object_storage::Storage<K>`, run over every backend's byte-level store, and run a second
//! time (`watch_cache::k8s::...`) with `object_storage::WatchCache` in front, as upstream runs
//! its suite against the cacher (`pkg/storage/cacher/cacher_test.go`).
//!
//! Every upstream function becomes one or more cases named `k8s::<area>::<scenario>`; table
//! rows become one case each. The backend-specific hooks of the upstream suite are written
//! once here over the byte-level `Interface`, so every backend behaves the same:
//! `compaction` writes one unrelated key and then compacts (as etcd3's helper does, which the
//! suite's revision arithmetic depends on), `increase_rv` writes one unrelated key, key
//! validation reads the raw stored bytes, and the transformer hooks swap a
//! `object_storage::transformer::PrefixTransformer`.

mod cacher;
mod list;
mod list_more;
mod model;
mod model_history;
mod store;
mod update;
mod watch;
mod watch_scoped;
mod watch_semantics;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use object_storage::{AttrFunc, ListOptions, Storage};
use storage_api::InterfaceExt;

use crate::runner::{Case, CaseInput, Layer};

mod pods;
pub(crate) use pods::Pods;

pub(crate) fn cases() -> Vec<Case> {
    let mut all = Vec::new();
    all.extend(store::cases());
    all.extend(model::cases());
    all.extend(model_history::cases());
    all.extend(update::cases());
    all.extend(list::cases());
    all.extend(list_more::cases());
    all.extend(watch::cases());
    all.extend(cacher::cases());
    let cached: Vec<Case> = all
        .iter()
        .map(|case| case.clone().through(Layer::WatchCache, "watch_cache"))
        .collect();
    all.extend(cached);
    all
}

/// What a case of this port gets: a fresh byte-level store (it dereferences to it, for the
/// hooks that write to it directly) and the layer its pods go through.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    kv: crate::kv::Store,
    layer: Layer,
}

impl CaseInput for Store {
    fn from_store(kv: crate::kv::Store, layer: Layer) -> Self {
        Store { kv, layer }
    }
}

impl std::ops::Deref for Store {
    type Target = crate::kv::Store;

    fn deref(&self) -> &crate::kv::Store {
        &self.kv
    }
}

/// The path prefix objects are stored under, as in the upstream etcd3 tests' `/registry`.
pub(crate) const PREFIX: &str = "/registry";

/// Pod attributes as the upstream suite's `getPodAttrs`: labels, `metadata.name`,
/// `metadata.namespace` (namespaced only) and `spec.nodeName`.
pub(crate) fn pod_attrs(namespaced: bool) -> AttrFunc<Pod> {
    Arc::new(move |pod: &Pod| {
        let mut fields = BTreeMap::new();
        fields.insert(
            "metadata.name".to_owned(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        if namespaced {
            fields.insert(
                "metadata.namespace".to_owned(),
                pod.metadata.namespace.clone().unwrap_or_default(),
            );
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        fields.insert("spec.nodeName".to_owned(), node);
        (pod.metadata.labels.clone().unwrap_or_default(), fields)
    })
}

/// Pods under `/registry` with namespaced pod attributes, through the case's layer.
pub(crate) fn pods(store: &Store) -> Pods {
    Pods::new(
        Storage::new(store.kv.clone(), Arc::new(Pod::default))
            .with_prefix(PREFIX)
            .with_attrs(pod_attrs(true)),
        store.layer,
    )
}

/// A pod with a namespace and a name.
pub(crate) fn pod(namespace: &str, name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

/// A pod with a node name.
pub(crate) fn pod_on(namespace: &str, name: &str, node: &str) -> Pod {
    let mut pod = pod(namespace, name);
    pod.spec = Some(PodSpec {
        node_name: Some(node.to_owned()),
        ..PodSpec::default()
    });
    pod
}

/// `computePodKey`: `/pods/<ns>/<name>`.
pub(crate) fn pod_key(pod: &Pod) -> String {
    format!(
        "/pods/{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `testPropagateStore`: deletes whatever is at the pod's key, creates the pod, and returns
/// the key and the stored object.
pub(crate) async fn propagate(storage: &Pods, pod: &Pod) -> anyhow::Result<(String, Pod)> {
    let key = pod_key(pod);
    match storage.delete(&key, None, |_| Ok(()), None).await {
        Ok(_) => {}
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(error).context("clearing the key before create"),
    }
    let stored = storage.create(&key, pod, 0).await.context("create")?;
    Ok((key, stored))
}

/// The `Compaction` hook: one unrelated write, then compaction to `revision` (etcd3's helper
/// writes `compact_rev_key` the same way).
pub(crate) async fn compaction(store: &Store, revision: u64) -> anyhow::Result<()> {
    store
        .put(
            "/compact_rev_key",
            bytes::Bytes::from(revision.to_string()),
            None,
        )
        .await?;
    store.compact(revision).await.context("compaction hook")?;
    Ok(())
}

/// The `IncreaseRVFunc` hook: one unrelated write.
pub(crate) async fn increase_rv(store: &Store) -> anyhow::Result<u64> {
    Ok(store
        .put("/increaseRV", bytes::Bytes::from_static(b"x"), None)
        .await?)
}

/// The `KeyValidation` hook: the raw stored value has no resourceVersion and no selfLink.
pub(crate) async fn key_validation(storage: &Pods, key: &str) -> anyhow::Result<()> {
    let full = storage.prepare_key(key)?;
    let kv = storage
        .interface()
        .get_latest(&full)
        .await?
        .context("stored value")?;
    let (_, plain, _) = storage.codec().decode(&kv)?;
    let raw: serde_json::Value = serde_json::from_slice(&plain)?;
    let meta = &raw["metadata"];
    ensure!(
        meta.get("resourceVersion").is_none(),
        "stored data has a resourceVersion: {raw}"
    );
    ensure!(
        meta.get("selfLink").is_none(),
        "stored data has a selfLink: {raw}"
    );
    Ok(())
}

/// The resourceVersion of an object as a number.
pub(crate) fn rv(pod: &Pod) -> u64 {
    pod.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// List options for a recursive list.
pub(crate) fn recursive(resource_version: &str) -> ListOptions {
    ListOptions {
        resource_version: resource_version.to_owned(),
        recursive: true,
        ..Default::default()
    }
}

/// Upstream's `expectNoDiff` for objects: equal, or a readable failure.
pub(crate) fn expect_equal(what: &str, expected: &Pod, actual: &Pod) -> anyhow::Result<()> {
    ensure!(
        expected == actual,
        "{what}: objects differ\nexpected: {}\nactual:   {}",
        serde_json::to_string(expected).unwrap_or_default(),
        serde_json::to_string(actual).unwrap_or_default()
    );
    Ok(())
}

/// Names of pods, in order, for compact comparisons.
pub(crate) fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect()
}
