//! etcd's Watch service: many watches per gRPC stream, each fed by one watch of the store.
//!
//! A stream task reads the client's requests (create, cancel, progress). Each watch runs a
//! task that reads its store watch, keeps the events in its etcd range, and sends them in
//! responses: everything the store has delivered by then goes in one response, and a response
//! that reaches the batch limit still takes the rest of its last revision, so the events of
//! one write (a transaction, a lease revocation) normally arrive together. Responses of all
//! watches of a stream go through one
//! channel, so a progress response sent after a watch reached a revision follows every event
//! of that watch up to it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::proto::{PbEvent, PbWatchRequest, PbWatchRequestUnion, PbWatchResponse};
use futures::{FutureExt, Stream, StreamExt};
use prost::Message;
use storage_api::{Error, Interface, Revision, WatchEvent, WatchRequest};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::{Status, Streaming};

use crate::keys::Span;
use crate::record::{EtcdKv, to_i64};
use crate::txn::Identity;

/// The stream of responses of one Watch call.
pub(crate) type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

/// The watch ID of a progress response for the whole stream (etcd's `InvalidWatchID`).
const STREAM_PROGRESS_ID: i64 = -1;
/// etcd's `NOPUT` and `NODELETE` filters.
const FILTER_NOPUT: i32 = 0;
const FILTER_NODELETE: i32 = 1;
/// Event types of `mvccpb.Event`.
const EVENT_PUT: i32 = 0;
const EVENT_DELETE: i32 = 1;
/// Events gathered into one response before it is sent (more only to finish a revision).
const MAX_BATCH_EVENTS: usize = 1000;
/// Fragments of a fragmented response stay under this size: etcd's default request limit.
const MAX_FRAGMENT_BYTES: usize = 1536 * 1024;
/// Responses queued per stream before watches wait for the client to read.
const RESPONSE_BUFFER: usize = 256;

/// What one client watch asked for (the fields of etcd's `WatchCreateRequest`).
#[derive(Clone, Debug)]
struct Spec {
    span: Span,
    start_revision: i64,
    progress_notify: bool,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    fragment: bool,
}

/// One running watch of a stream.
struct Running {
    task: JoinHandle<()>,
    /// The revision up to which the watch has sent everything (events or progress).
    synced: Arc<AtomicU64>,
}

/// Serves one Watch call.
pub(crate) fn serve(
    store: Arc<dyn Interface>,
    identity: Identity,
    requests: Streaming<PbWatchRequest>,
) -> ResponseStream {
    let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
    tokio::spawn(run_stream(store, identity, requests, tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

type Sender = mpsc::Sender<Result<PbWatchResponse, Status>>;

async fn run_stream(
    store: Arc<dyn Interface>,
    identity: Identity,
    mut requests: Streaming<PbWatchRequest>,
    tx: Sender,
) {
    let mut watches: HashMap<i64, Running> = HashMap::new();
    let mut next_id: i64 = 0;
    let mut progress: Option<JoinHandle<()>> = None;
    loop {
        let request = tokio::select! {
            request = requests.next() => request,
            () = tx.closed() => None,
        };
        let request = match request {
            Some(Ok(request)) => request,
            Some(Err(status)) => {
                tracing::debug!(%status, "watch stream ended by the client");
                break;
            }
            None => break,
        };
        watches.retain(|_, running| !running.task.is_finished());
        match request.request_union {
            Some(PbWatchRequestUnion::CreateRequest(create)) => {
                let spec = Spec {
                    span: Span::of(&create.key, &create.range_end),
                    start_revision: create.start_revision,
                    progress_notify: create.progress_notify,
                    no_put: create.filters.contains(&FILTER_NOPUT),
                    no_delete: create.filters.contains(&FILTER_NODELETE),
                    prev_kv: create.prev_kv,
                    fragment: create.fragment,
                };
                let requested_id = create.watch_id;
                let empty_range = !create.range_end.is_empty()
                    && create.range_end != [0]
                    && create.key >= create.range_end;
                let id = if requested_id != 0 {
                    requested_id
                } else {
                    while watches.contains_key(&next_id) {
                        next_id += 1;
                    }
                    next_id += 1;
                    next_id - 1
                };
                let refusal = if empty_range {
                    Some("mvcc: watcher range is empty")
                } else if requested_id != 0 && watches.contains_key(&requested_id) {
                    Some("mvcc: duplicate watch ID provided on the WatchStream")
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    let revision = store.current_revision().await.unwrap_or_default();
                    let refused = PbWatchResponse {
                        header: identity.header(revision),
                        watch_id: if empty_range { STREAM_PROGRESS_ID } else { id },
                        created: true,
                        canceled: true,
                        cancel_reason: reason.to_owned(),
                        ..PbWatchResponse::default()
                    };
                    if tx.send(Ok(refused)).await.is_err() {
                        break;
                    }
                    continue;
                }
                match start(&store, identity, id, spec, &tx).await {
                    Ok(Some(running)) => {
                        watches.insert(id, running);
                    }
                    Ok(None) => {}
                    Err(()) => break,
                }
            }
            Some(PbWatchRequestUnion::CancelRequest(cancel)) => {
                if let Some(running) = watches.remove(&cancel.watch_id) {
                    running.task.abort();
                    let revision = store.current_revision().await.unwrap_or_default();
                    let canceled = PbWatchResponse {
                        header: identity.header(revision),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..PbWatchResponse::default()
                    };
                    if tx.send(Ok(canceled)).await.is_err() {
                        break;
                    }
                }
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                let synced: Vec<Arc<AtomicU64>> =
                    watches.values().map(|w| Arc::clone(&w.synced)).collect();
                if let Some(previous) = progress.take() {
                    previous.abort();
                }
                progress = Some(tokio::spawn(report_progress(
                    Arc::clone(&store),
                    identity,
                    synced,
                    tx.clone(),
                )));
            }
            None => {}
        }
    }
    for (_, running) in watches {
        running.task.abort();
    }
    if let Some(progress) = progress {
        progress.abort();
    }
}

/// etcd's `RequestProgress`: once every watch of the stream has sent everything up to the
/// store's current revision, one response with watch ID -1 at that revision. A stream with no
/// watch gets none, as from etcd.
async fn report_progress(
    store: Arc<dyn Interface>,
    identity: Identity,
    synced: Vec<Arc<AtomicU64>>,
    tx: Sender,
) {
    if synced.is_empty() {
        return;
    }
    let Ok(revision) = store.current_revision().await else {
        return;
    };
    if let Err(error) = store.request_progress().await {
        tracing::warn!(%error, "the store refused a progress request");
    }
    let mut asked = tokio::time::Instant::now();
    while synced.iter().any(|s| s.load(Ordering::Acquire) < revision) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        // A watch that was still replaying when asked reports once it caught up; ask again.
        if asked.elapsed() > Duration::from_millis(100) {
            let _ = store.request_progress().await;
            asked = tokio::time::Instant::now();
        }
    }
    let response = PbWatchResponse {
        header: identity.header(revision),
        watch_id: STREAM_PROGRESS_ID,
        ..PbWatchResponse::default()
    };
    let _ = tx.send(Ok(response)).await;
}

/// Opens the store watch of a new client watch and sends the `created` response; `Ok(None)`
/// when the watch ended at once (compacted start), `Err` when the client is gone.
async fn start(
    store: &Arc<dyn Interface>,
    identity: Identity,
    id: i64,
    spec: Spec,
    tx: &Sender,
) -> Result<Option<Running>, ()> {
    let current = match store.current_revision().await {
        Ok(current) => current,
        Err(error) => {
            let _ = tx.send(Err(crate::errors::from_storage(error))).await;
            return Err(());
        }
    };
    let after = if spec.start_revision > 0 {
        spec.start_revision as Revision - 1
    } else {
        current
    };
    let created = PbWatchResponse {
        header: identity.header(current),
        watch_id: id,
        created: true,
        ..PbWatchResponse::default()
    };
    tx.send(Ok(created)).await.map_err(|_| ())?;
    let stream = match open(store, &spec, after).await {
        Ok(stream) => stream,
        Err(error) => {
            let _ = tx.send(Ok(ended(identity, id, current, &error))).await;
            return Ok(None);
        }
    };
    let synced = Arc::new(AtomicU64::new(after));
    let task = tokio::spawn(run_watch(
        Arc::clone(store),
        identity,
        id,
        spec,
        stream,
        Arc::clone(&synced),
        tx.clone(),
    ));
    Ok(Some(Running { task, synced }))
}

async fn open(
    store: &Arc<dyn Interface>,
    spec: &Spec,
    after: Revision,
) -> storage_api::Result<storage_api::WatchStream> {
    let (key, prefix) = spec.span.watch_scope();
    let request = WatchRequest {
        key,
        prefix,
        start_revision: Some(after),
        // Always: progress tells the stream when this watch is in sync.
        progress_notify: true,
    };
    store.watch(request).await
}

/// The response that ends a watch the store ended with `error`.
fn ended(identity: Identity, id: i64, current: Revision, error: &Error) -> PbWatchResponse {
    match error {
        Error::Compacted { compacted, .. } => PbWatchResponse {
            header: identity.header(current),
            watch_id: id,
            canceled: true,
            compact_revision: to_i64(*compacted),
            ..PbWatchResponse::default()
        },
        other => PbWatchResponse {
            header: identity.header(current),
            watch_id: id,
            canceled: true,
            cancel_reason: other.to_string(),
            ..PbWatchResponse::default()
        },
    }
}

/// Forwards one store watch to the client until the store ends it for good.
async fn run_watch(
    store: Arc<dyn Interface>,
    identity: Identity,
    id: i64,
    spec: Spec,
    stream: storage_api::WatchStream,
    synced: Arc<AtomicU64>,
    tx: Sender,
) {
    // However the watch ends (canceled, failed, the client gone), it has nothing more to send:
    // progress requests of its stream stop waiting for it.
    let _ended = Ended(Arc::clone(&synced));
    // Fused: a store stream that ended is never polled again.
    let mut stream = stream.fuse();
    let mut pending: Option<storage_api::Result<WatchEvent>> = None;
    loop {
        let first = match pending.take() {
            Some(item) => Some(item),
            None => stream.next().await,
        };
        let mut items = Vec::new();
        match first {
            Some(item) => items.push(item),
            None => {
                let error = Error::unavailable("the store ended the watch");
                let current = synced.load(Ordering::Acquire);
                let _ = tx.send(Ok(ended(identity, id, current, &error))).await;
                return;
            }
        }
        // Take what is already there, finishing the last revision past the batch limit. One
        // yield lets events published together but not yet handed over (Tokio's cooperative
        // budget) join the batch.
        let mut yielded = false;
        loop {
            let item = match stream.next().now_or_never() {
                Some(Some(item)) => item,
                // Ended: the next read reports it.
                Some(None) => break,
                None if yielded => break,
                None => {
                    yielded = true;
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let same_revision = matches!((&item, items.last()),
                (Ok(next), Some(Ok(last))) if next.revision() == last.revision());
            if items.len() >= MAX_BATCH_EVENTS && !same_revision {
                pending = Some(item);
                break;
            }
            items.push(item);
        }
        let mut events = Vec::new();
        let mut last_revision = synced.load(Ordering::Acquire);
        let mut failure = None;
        let mut progress = None;
        for item in items {
            match item {
                Ok(WatchEvent::Progress { revision }) => progress = Some(revision),
                Ok(event) => {
                    last_revision = event.revision();
                    match to_pb(&spec, event) {
                        Ok(Some(event)) => events.push(event),
                        Ok(None) => {}
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if !events.is_empty() {
            let response = PbWatchResponse {
                header: identity.header(last_revision),
                watch_id: id,
                events,
                ..PbWatchResponse::default()
            };
            if send(&tx, response, spec.fragment).await.is_err() {
                return;
            }
        }
        synced.fetch_max(last_revision, Ordering::AcqRel);
        if let Some(revision) = progress {
            if failure.is_none() && revision >= last_revision {
                if spec.progress_notify {
                    let response = PbWatchResponse {
                        header: identity.header(revision),
                        watch_id: id,
                        ..PbWatchResponse::default()
                    };
                    if tx.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
                synced.fetch_max(revision, Ordering::AcqRel);
            }
        }
        match failure {
            None => {}
            // A watch too slow for the store's buffer resumes where it was: the store replays
            // what it missed.
            Some(Error::Unavailable { .. }) => {
                let resume = synced.load(Ordering::Acquire);
                match open(&store, &spec, resume).await {
                    Ok(resumed) => {
                        stream = resumed.fuse();
                        pending = None;
                    }
                    Err(error) => {
                        let _ = tx.send(Ok(ended(identity, id, resume, &error))).await;
                        return;
                    }
                }
            }
            Some(error) => {
                let current = synced.load(Ordering::Acquire);
                let _ = tx.send(Ok(ended(identity, id, current, &error))).await;
                return;
            }
        }
    }
}

/// Marks a watch as in sync with every revision once its task ends.
struct Ended(Arc<AtomicU64>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.store(u64::MAX, Ordering::Release);
    }
}

/// One store event as etcd reports it, or `None` when the watch does not want it.
fn to_pb(spec: &Spec, event: WatchEvent) -> storage_api::Result<Option<PbEvent>> {
    let Some(key) = event.key() else {
        return Ok(None);
    };
    if !spec.span.contains(key) {
        return Ok(None);
    }
    match event {
        WatchEvent::Put { kv, prev } => {
            if spec.no_put {
                return Ok(None);
            }
            let kv = EtcdKv::from_stored(&kv)?;
            let prev_kv = match prev {
                Some(prev) if spec.prev_kv => Some(EtcdKv::from_stored(&prev)?.to_pb(0, false)),
                _ => None,
            };
            Ok(Some(PbEvent {
                r#type: EVENT_PUT,
                kv: Some(kv.to_pb(0, false)),
                prev_kv,
            }))
        }
        WatchEvent::Delete { revision, prev, .. } => {
            if spec.no_delete {
                return Ok(None);
            }
            let prev = EtcdKv::from_stored(&prev)?;
            // etcd's delete event carries the key and the delete's revision only.
            let kv = etcd_client::proto::PbKeyValue {
                key: prev.key.clone(),
                mod_revision: to_i64(revision),
                ..Default::default()
            };
            Ok(Some(PbEvent {
                r#type: EVENT_DELETE,
                kv: Some(kv),
                prev_kv: spec.prev_kv.then(|| prev.to_pb(0, false)),
            }))
        }
        WatchEvent::Progress { .. } => Ok(None),
    }
}

/// Sends `response`, split into fragments when the watch asked for them and it is large.
async fn send(tx: &Sender, response: PbWatchResponse, fragment: bool) -> Result<(), ()> {
    if !fragment || response.encoded_len() <= MAX_FRAGMENT_BYTES {
        return tx.send(Ok(response)).await.map_err(|_| ());
    }
    let PbWatchResponse {
        header,
        watch_id,
        events,
        ..
    } = response;
    let mut chunks: Vec<Vec<PbEvent>> = Vec::new();
    let mut size = 0;
    for event in events {
        let len = event.encoded_len();
        match chunks.last_mut() {
            Some(chunk) if size + len <= MAX_FRAGMENT_BYTES => {
                size += len;
                chunk.push(event);
            }
            _ => {
                size = len;
                chunks.push(vec![event]);
            }
        }
    }
    let last = chunks.len().saturating_sub(1);
    for (i, events) in chunks.into_iter().enumerate() {
        let part = PbWatchResponse {
            header,
            watch_id,
            events,
            fragment: i != last,
            ..PbWatchResponse::default()
        };
        tx.send(Ok(part)).await.map_err(|_| ())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use etcd_client::proto::PbKeyValue;

    use super::*;

    fn event(key: &str, value_len: usize) -> PbEvent {
        PbEvent {
            kv: Some(PbKeyValue {
                key: key.as_bytes().to_vec(),
                value: vec![b'v'; value_len],
                ..PbKeyValue::default()
            }),
            ..PbEvent::default()
        }
    }

    async fn sent(response: PbWatchResponse, fragment: bool) -> Vec<PbWatchResponse> {
        let (tx, mut rx) = mpsc::channel(64);
        send(&tx, response, fragment).await.unwrap();
        drop(tx);
        let mut parts = Vec::new();
        while let Some(part) = rx.recv().await {
            parts.push(part.unwrap());
        }
        parts
    }

    #[tokio::test]
    async fn large_responses_are_fragmented_only_when_asked() {
        let events: Vec<PbEvent> = (0..10).map(|i| event(&format!("k{i}"), 400_000)).collect();
        let response = PbWatchResponse {
            watch_id: 7,
            events: events.clone(),
            ..PbWatchResponse::default()
        };
        let whole = sent(response.clone(), false).await;
        assert_eq!(whole.len(), 1);
        assert!(!whole[0].fragment);

        let parts = sent(response, true).await;
        assert!(parts.len() >= 3, "{} parts", parts.len());
        for (i, part) in parts.iter().enumerate() {
            // Every part but the last says more follow; each stays under the request limit.
            assert_eq!(part.fragment, i + 1 < parts.len());
            assert_eq!(part.watch_id, 7);
            assert!(part.encoded_len() <= MAX_FRAGMENT_BYTES + 64);
        }
        let joined: Vec<PbEvent> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);

        // One event larger than the limit cannot be split: it goes alone, unfragmented.
        let huge = PbWatchResponse {
            events: vec![event("huge", 2 * MAX_FRAGMENT_BYTES)],
            ..PbWatchResponse::default()
        };
        let parts = sent(huge, true).await;
        assert_eq!(parts.len(), 1);
        assert!(!parts[0].fragment);
    }
}
