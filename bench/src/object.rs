//! The object level: `object_storage::Storage<Pod>` over a backend, doing what the byte-level client
//! does with Pods (JSON encoding, resourceVersion injection, GuaranteedUpdate, continue tokens,
//! object watches); at level `object-cache`, through an `object_storage::WatchCache` in front.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use object_storage::{
    GetOptions, ListOptions, ObjectStorage, Preconditions, ResourceVersionMatch, Storage,
    UpdateDecision, UpdateOutcome, WatchCache, WatchCacheConfig, WatchEvent,
};
use storage_api::{Interface, Revision};

use crate::client::{Client, Expired, Seen, SeenStream};

/// The annotation carrying the writer's stamp.
const STAMP: &str = "bench.storage/stamp";
/// The annotation padding the object to `--value-size`.
const PAD: &str = "bench.storage/pad";
/// The namespace every object lives in.
const NAMESPACE: &str = "bench";

/// Pods in one namespace of a `Storage<Pod>`, directly or through a watch cache.
pub struct ObjectClient {
    storage: Storage<Pod>,
    /// What reads, writes and watches go through: `storage`, or a watch cache in front of it.
    objects: Arc<dyn ObjectStorage<Pod>>,
    pad: String,
}

impl std::fmt::Debug for ObjectClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectClient")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl ObjectClient {
    /// Pods stored under `{key_prefix}registry/pods/bench/`, padded with `value_size` bytes;
    /// through a watch cache of `/pods` when `cached` (started on the current runtime).
    ///
    /// # Errors
    ///
    /// When the watch cache cannot start (outside a Tokio runtime).
    pub fn new(
        store: Arc<dyn Interface>,
        key_prefix: &str,
        value_size: usize,
        cached: bool,
    ) -> Result<Self> {
        let storage = Storage::new(store, Arc::new(Pod::default))
            .with_prefix(&format!("{key_prefix}registry"));
        let objects: Arc<dyn ObjectStorage<Pod>> = if cached {
            Arc::new(
                WatchCache::new(storage.clone(), "/pods", WatchCacheConfig::default())
                    .context("starting the watch cache")?,
            )
        } else {
            Arc::new(storage.clone())
        };
        Ok(ObjectClient {
            storage,
            objects,
            pad: "x".repeat(value_size),
        })
    }

    fn key(name: &str) -> String {
        format!("/pods/{NAMESPACE}/{name}")
    }

    fn collection() -> String {
        format!("/pods/{NAMESPACE}")
    }

    fn pod(&self, name: &str, stamp: u64) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.to_owned());
        pod.metadata.namespace = Some(NAMESPACE.to_owned());
        pod.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "bench".to_owned())]));
        pod.metadata.annotations = Some(BTreeMap::from([
            (STAMP.to_owned(), stamp.to_string()),
            (PAD.to_owned(), self.pad.clone()),
        ]));
        pod
    }
}

fn revision_of(pod: &Pod) -> Revision {
    pod.metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn stamp_of(pod: &Pod) -> u64 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STAMP))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl Client for ObjectClient {
    type Version = Pod;

    fn revision(version: &Pod) -> Revision {
        revision_of(version)
    }

    async fn create(&self, name: &str, stamp: u64) -> Result<Pod> {
        Ok(self
            .objects
            .create(&Self::key(name), &self.pod(name, stamp), 0)
            .await?)
    }

    async fn update(&self, name: &str, version: &Pod, stamp: u64) -> Result<Pod> {
        let mut stamped = move |mut pod: Pod, _meta| {
            pod.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(STAMP.to_owned(), stamp.to_string());
            Ok(UpdateDecision::Write(pod, None))
        };
        let outcome = self
            .objects
            .guaranteed_update_with(
                &Self::key(name),
                false,
                None,
                &mut stamped,
                // The last object this client wrote: the suggestion an API server takes from
                // its watch cache, so an uncontended update is one write.
                Some(version.clone()),
            )
            .await?;
        match outcome {
            UpdateOutcome::Written(pod) | UpdateOutcome::Deleted(pod) => Ok(pod),
            UpdateOutcome::Stopped(()) => bail!("an update that only writes stopped"),
        }
    }

    async fn get(&self, name: &str) -> Result<()> {
        let pod = self
            .objects
            .get(&Self::key(name), &GetOptions::default())
            .await?;
        if pod.is_none() {
            bail!("pod {name} not found");
        }
        Ok(())
    }

    async fn delete(&self, name: &str, version: &Pod) -> Result<Option<Revision>> {
        let preconditions = Preconditions {
            uid: None,
            resource_version: version.metadata.resource_version.clone(),
        };
        let deleted = self
            .objects
            .delete(&Self::key(name), Some(&preconditions), &|_| Ok(()), None)
            .await?;
        // As upstream's store, the deleted object carries the revision of the delete.
        Ok(Some(revision_of(&deleted)))
    }

    async fn list(&self, page_size: u64, revision: Option<Revision>) -> Result<usize> {
        let mut options = ListOptions {
            recursive: true,
            ..ListOptions::default()
        };
        if page_size > 0 {
            options.predicate.limit = Some(i64::try_from(page_size).unwrap_or(i64::MAX));
        }
        if let Some(revision) = revision {
            options.resource_version = revision.to_string();
            options.resource_version_match = ResourceVersionMatch::Exact;
        }
        let mut seen = 0;
        loop {
            let list = self.objects.get_list(&Self::collection(), &options).await?;
            seen += list.items.len();
            match list.continue_token {
                Some(token) if !token.is_empty() => {
                    // A continue token carries the snapshot revision itself.
                    options.predicate.continue_token = Some(token);
                    options.resource_version = String::new();
                    options.resource_version_match = ResourceVersionMatch::Unset;
                }
                _ => return Ok(seen),
            }
        }
    }

    async fn watch(&self, after: Revision) -> Result<SeenStream> {
        let options = ListOptions {
            recursive: true,
            resource_version: after.to_string(),
            ..ListOptions::default()
        };
        // Shared objects, as a server's watch handler takes them: every watcher of a cached
        // event gets the same object, not a copy.
        let stream = match self
            .objects
            .watch_shared(&Self::collection(), &options)
            .await
        {
            Ok(stream) => stream,
            Err(error) if error.is_expired() => {
                return Err(anyhow::Error::new(Expired(error.to_string())));
            }
            Err(error) => return Err(anyhow::Error::new(error).context("starting an object watch")),
        };
        Ok(stream
            .filter_map(|event| async move {
                match event {
                    WatchEvent::Added(pod)
                    | WatchEvent::Modified(pod)
                    | WatchEvent::Deleted(pod) => Some(Ok(Seen {
                        revision: revision_of(&pod),
                        stamp: stamp_of(&pod),
                    })),
                    WatchEvent::Bookmark(_) => None,
                    WatchEvent::Error(error) if error.code == 410 => {
                        Some(Err(anyhow::Error::new(Expired(format!(
                            "watch failed: 410 {}: {}",
                            error.reason, error.message
                        )))))
                    }
                    WatchEvent::Error(error) => Some(Err(anyhow::anyhow!(
                        "watch failed: {} {}: {}",
                        error.code,
                        error.reason,
                        error.message
                    ))),
                }
            })
            .boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.storage.interface().current_revision().await?)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.storage.interface().compact(revision).await {
            Ok(()) | Err(storage_api::Error::Compacted { .. }) => Ok(()),
            Err(error) => Err(error).context("compact"),
        }
    }
}
