//! Object watches: initial events, resourceVersion rules and predicate transitions over a
//! backend watch.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use storage_api::{RangeRequest, Revision, WatchEvent as KvEvent, WatchRequest};
use tokio::sync::mpsc;

use crate::codec_helpers::bookmark;
use crate::error::{Result, StorageError};
use crate::options::{ListOptions, WatchEvent};
use crate::{Storage, directory};
use apimachinery::object::Object;
use apimachinery::resource_version::parse_resource_version;
use apimachinery::status::{ApiError, GroupResource, Operation};

use crate::api_error::FromStorageError;

/// A stream of object watch events. After an [`WatchEvent::Error`] the stream ends. Dropping it
/// stops the watch.
pub type ObjectWatch<K> = Pin<Box<dyn Stream<Item = WatchEvent<K>> + Send>>;

/// Events buffered between the backend and a slow consumer (Kubernetes' etcd3 uses 100).
const WATCH_BUFFER: usize = 100;

/// Page size of the initial-events list.
const INITIAL_PAGE: u64 = 10_000;

const WATCH_TOO_OLD: &str = "The resourceVersion for the provided watch is too old.";

impl<K: Object> Storage<K> {
    /// Kubernetes' `Watch` on `key` (recursive: everything under `key + "/"`), following the
    /// resourceVersion / sendInitialEvents rules of upstream's etcd3 store
    /// (`pkg/storage/etcd3/store.go` `Watch`, `pkg/storage/etcd3/watcher.go`). Errors known
    /// up front (bad key, unparsable resourceVersion) are returned; later ones, including a
    /// compacted or too large resourceVersion, arrive as one final [`WatchEvent::Error`].
    #[tracing::instrument(level = "debug", skip(self, options), fields(rv = %options.resource_version))]
    pub async fn watch(&self, key: &str, options: &ListOptions) -> Result<ObjectWatch<K>> {
        let full = self.prepare_key(key)?;
        let watch_key = if options.recursive {
            directory(full)
        } else {
            full
        };
        let requested = watch_resource_version(options)?;
        // Kubernetes' etcd3 watcher resolves "most recent" (resourceVersion "" or "0" with
        // sendInitialEvents=false) before Watch returns (getStartWatchResourceVersion), so
        // every write that completes after the call is delivered. Resolving it later, in the
        // background task, would silently drop writes made right after the call returned.
        let send_initial = options.send_initial_events.unwrap_or(requested == 0);
        let live_after = match (send_initial, requested) {
            (true, _) => None,
            (false, 0) => Some(
                self.store
                    .current_revision()
                    .await
                    .map_err(|e| StorageError::from_backend(&watch_key, e))?,
            ),
            (false, requested) => Some(requested),
        };
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let storage = self.clone();
        let options = options.clone();
        let resource = self.resource.clone();
        tokio::spawn(async move {
            // A consumer that drops the stream is Kubernetes' cancelled context / Stop: the
            // backend watch must end now, not at the next event (a quiet key may never have
            // one), so the task also waits for the receiver to go away.
            let outcome = tokio::select! {
                outcome = storage.run_watch(&watch_key, &options, requested, live_after, &sender) => outcome,
                () = sender.closed() => Ok(()),
            };
            if let Err(error) = outcome {
                let _ = sender
                    .send(WatchEvent::Error(in_stream(error, &resource)))
                    .await;
            }
        });
        Ok(Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|event| (event, receiver)) },
        )))
    }

    /// Feeds one watch until it ends or its consumer goes away. `live_after` is the revision
    /// to stream events after when no initial events are sent (resolved by [`Self::watch`]).
    async fn run_watch(
        &self,
        watch_key: &str,
        options: &ListOptions,
        requested: Revision,
        live_after: Option<Revision>,
        sender: &mpsc::Sender<WatchEvent<K>>,
    ) -> Result<()> {
        let start_after = if let Some(revision) = live_after {
            revision
        } else {
            if options.send_initial_events == Some(true) && requested > 0 {
                let current = self.current_resource_version().await?;
                if requested > current {
                    return Err(StorageError::TooLargeResourceVersion {
                        requested,
                        current,
                        retry_after_seconds: 1,
                    });
                }
            }
            let revision = self.send_initial_events(watch_key, options, sender).await?;
            if options.send_initial_events == Some(true) && options.predicate.allow_watch_bookmarks
            {
                let end = bookmark(&self.codec, revision, true);
                if sender.send(WatchEvent::Bookmark(end)).await.is_err() {
                    return Ok(());
                }
            }
            revision
        };
        let request = WatchRequest {
            key: watch_key.to_owned(),
            prefix: options.recursive,
            start_revision: Some(start_after),
            progress_notify: options.progress_notify,
        };
        let mut events = match self.store.watch(request).await {
            Ok(events) => events,
            Err(storage_api::Error::Compacted { .. }) => {
                return Err(StorageError::Expired {
                    message: WATCH_TOO_OLD.to_owned(),
                    continue_token: None,
                });
            }
            Err(other) => return Err(StorageError::from_backend(watch_key, other)),
        };
        while let Some(item) = events.next().await {
            let event = match item {
                Ok(event) => event,
                Err(storage_api::Error::Compacted { .. }) => {
                    return Err(StorageError::Expired {
                        message: WATCH_TOO_OLD.to_owned(),
                        continue_token: None,
                    });
                }
                Err(storage_api::Error::Unavailable { message, .. }) => {
                    // A running watch the backend gave up on (a consumer that fell behind, a
                    // lost connection) ends cleanly, as kube-apiserver's watch cache ends the
                    // watches it terminates: the client re-watches from its last
                    // resourceVersion, where an ERROR event would read as a server fault.
                    tracing::warn!(key = watch_key, %message, "backend ended a running watch");
                    return Ok(());
                }
                Err(other) => return Err(StorageError::from_backend(watch_key, other)),
            };
            let Some(event) = self.transition(options, event)? else {
                continue;
            };
            if sender.send(event).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sends the current state as ADDED events and returns the snapshot revision.
    async fn send_initial_events(
        &self,
        watch_key: &str,
        options: &ListOptions,
        sender: &mpsc::Sender<WatchEvent<K>>,
    ) -> Result<Revision> {
        let backend = |e| StorageError::from_backend(watch_key, e);
        if !options.recursive {
            let response = self.store.get(watch_key, None).await.map_err(backend)?;
            if let Some(kv) = response.kv {
                let (object, _, _) = self.codec.decode(&kv)?;
                if self.matches_predicate(options, &object) {
                    let _ = sender.send(WatchEvent::Added(object)).await;
                }
            }
            return Ok(response.revision);
        }
        let mut start = watch_key.to_owned();
        let mut revision = None;
        loop {
            let request = RangeRequest {
                prefix: watch_key.to_owned(),
                start: Some(start.clone()),
                revision,
                limit: Some(INITIAL_PAGE),
                count_only: false,
            };
            let response = self.store.range(request).await.map_err(backend)?;
            let pinned = *revision.get_or_insert(response.revision);
            for kv in &response.kvs {
                let (object, _, _) = self.codec.decode(kv)?;
                if self.matches_predicate(options, &object)
                    && sender.send(WatchEvent::Added(object)).await.is_err()
                {
                    return Ok(pinned);
                }
            }
            match (response.more, response.kvs.last()) {
                (true, Some(last)) => start = format!("{}\0", last.key),
                _ => return Ok(pinned),
            }
        }
    }

    fn matches_predicate(&self, options: &ListOptions, object: &K) -> bool {
        if options.predicate.is_empty() {
            return true;
        }
        let (labels, fields) = self.attributes(object);
        options.predicate.matches(&labels, &fields)
    }

    /// Turns a backend event into the object event the predicate sees, if any.
    fn transition(&self, options: &ListOptions, event: KvEvent) -> Result<Option<WatchEvent<K>>> {
        let filtered = !options.predicate.is_empty();
        Ok(match event {
            KvEvent::Progress { revision } => options
                .progress_notify
                .then(|| WatchEvent::Bookmark(bookmark(&self.codec, revision, false))),
            KvEvent::Put { kv, prev: None } => {
                let (object, _, _) = self.codec.decode(&kv)?;
                self.matches_predicate(options, &object)
                    .then_some(WatchEvent::Added(object))
            }
            KvEvent::Put {
                kv,
                prev: Some(prev),
            } => {
                let (current, _, _) = self.codec.decode(&kv)?;
                if !filtered {
                    return Ok(Some(WatchEvent::Modified(current)));
                }
                let (old, _, _) = self
                    .codec
                    .decode_at(&prev.key, &prev.value, kv.mod_revision)?;
                match (
                    self.matches_predicate(options, &old),
                    self.matches_predicate(options, &current),
                ) {
                    (true, true) => Some(WatchEvent::Modified(current)),
                    (false, true) => Some(WatchEvent::Added(current)),
                    (true, false) => Some(WatchEvent::Deleted(old)),
                    (false, false) => None,
                }
            }
            KvEvent::Delete { revision, prev, .. } => {
                let (old, _, _) = self.codec.decode_at(&prev.key, &prev.value, revision)?;
                self.matches_predicate(options, &old)
                    .then_some(WatchEvent::Deleted(old))
            }
        })
    }
}

/// A watch's resourceVersion as a revision, or the field error Kubernetes answers for it.
pub(crate) fn watch_resource_version(options: &ListOptions) -> Result<Revision> {
    parse_resource_version(&options.resource_version).map_err(|e| StorageError::Invalid {
        field: "resourceVersion".to_owned(),
        value: options.resource_version.clone(),
        message: e.to_string(),
    })
}

/// The Status of an error that ends a running watch. Expired, too large and invalid
/// resourceVersions map as for REST requests (with their details); anything else is an
/// internal error, as upstream's etcd3 watcher sends it, which clients answer by watching
/// again from their last resourceVersion rather than re-listing.
pub(crate) fn in_stream(error: StorageError, resource: &GroupResource) -> ApiError {
    match error {
        error @ (StorageError::Expired { .. }
        | StorageError::TooLargeResourceVersion { .. }
        | StorageError::Invalid { .. }
        | StorageError::BadRequest(_)
        | StorageError::Callback(_)) => {
            ApiError::from_storage(error, Operation::Watch, resource, "")
        }
        StorageError::Internal(message) => ApiError::internal(message),
        other => ApiError::internal(other.to_string()),
    }
}
