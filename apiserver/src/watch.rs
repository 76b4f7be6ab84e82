//! Watch responses: a stream of `{"type": ..., "object": ...}` lines (`metav1.WatchEvent`)
//! until the client goes, the timeout passes, the server shuts down or an ERROR event ends it.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::status::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_storage::{ListOptions, WatchEvent};
use serde_json::{Value, json};

use crate::handler::{RequestContext, ResourceHandler};
use crate::server::ServerState;
use crate::table::TableRequest;

/// Counts an open watch while alive.
struct WatchGuard(prometheus::IntGauge);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Opens the watch and streams its events; `as_table` renders each object as a one-row
/// Table (column definitions in the first only, as kube-apiserver sends them).
pub(crate) async fn serve(
    state: &Arc<ServerState>,
    handler: Arc<dyn ResourceHandler>,
    ctx: RequestContext,
    options: ListOptions,
    timeout: Duration,
    as_table: bool,
) -> Result<Response, ApiError> {
    let lines: BoxStream<'static, Vec<u8>> = if as_table {
        let events = handler.watch(&ctx, &options).await?;
        let mut first = true;
        until_error(events)
            .map(move |event| {
                let event = match event {
                    WatchEvent::Added(object) => {
                        WatchEvent::Added(table_row(handler.as_ref(), &ctx, object, &mut first))
                    }
                    WatchEvent::Modified(object) => {
                        WatchEvent::Modified(table_row(handler.as_ref(), &ctx, object, &mut first))
                    }
                    WatchEvent::Deleted(object) => {
                        WatchEvent::Deleted(table_row(handler.as_ref(), &ctx, object, &mut first))
                    }
                    other => other,
                };
                encode_event(event)
            })
            .boxed()
    } else {
        // Objects arrive encoded (once per event and version, from a watch cache): each line
        // is written around their bytes.
        let events = handler.watch_encoded(&ctx, &options).await?;
        until_error(events).map(encoded_line).boxed()
    };
    state.metrics.open_watches.inc();
    let guard = WatchGuard(state.metrics.open_watches.clone());
    let mut shutdown = state.shutdown_rx.clone();
    let stop = async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::select! {
            _ = deadline => {}
            _ = shutdown.wait_for(|v| *v) => {}
        }
    };
    let stream = lines.take_until(stop).map(move |mut line| {
        let _alive = &guard;
        line.push(b'\n');
        Ok::<Bytes, std::convert::Infallible>(Bytes::from(line))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// `events` up to and including the first ERROR event: nothing follows it.
fn until_error<T: Send + 'static>(
    events: BoxStream<'static, WatchEvent<T>>,
) -> impl futures::Stream<Item = WatchEvent<T>> + Send {
    events.scan(false, |ended, event| {
        if *ended {
            return futures::future::ready(None);
        }
        *ended = matches!(event, WatchEvent::Error(_));
        futures::future::ready(Some(event))
    })
}

/// One watch event whose object is already JSON text, as a line (without the newline).
fn encoded_line(event: WatchEvent<Bytes>) -> Vec<u8> {
    let (kind, object) = match event {
        WatchEvent::Added(object) => ("ADDED", object),
        WatchEvent::Modified(object) => ("MODIFIED", object),
        WatchEvent::Deleted(object) => ("DELETED", object),
        WatchEvent::Bookmark(object) => ("BOOKMARK", object),
        WatchEvent::Error(error) => return encode_event(WatchEvent::Error(error)),
    };
    let mut line = Vec::with_capacity(object.len() + 40);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(&object);
    line.push(b'}');
    line
}

/// One watch event as a JSON line (without the newline). kube-core's `WatchEvent` has this
/// shape too, but not our contents: its bookmark is a slimmer type and its error a Status
/// without `kind`/`apiVersion`, where we send the bookmark document and the full
/// `metav1.Status` kube-apiserver sends.
fn encode_event(event: WatchEvent<Value>) -> Vec<u8> {
    let (kind, object) = match event {
        WatchEvent::Added(object) => ("ADDED", object),
        WatchEvent::Modified(object) => ("MODIFIED", object),
        WatchEvent::Deleted(object) => ("DELETED", object),
        WatchEvent::Bookmark(object) => ("BOOKMARK", object),
        WatchEvent::Error(error) => (
            "ERROR",
            serde_json::to_value(error.to_status()).unwrap_or(Value::Null),
        ),
    };
    serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default()
}

/// `object` as a one-row Table; column definitions only in the first event's.
fn table_row(
    handler: &dyn ResourceHandler,
    ctx: &RequestContext,
    object: Value,
    first: &mut bool,
) -> Value {
    let mut table =
        TableRequest::for_watch().render(handler, ctx, std::slice::from_ref(&object), None, None);
    if !std::mem::take(first) {
        if let Some(map) = table.as_object_mut() {
            map.insert("columnDefinitions".into(), json!([]));
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_objects_are_written_as_they_are() {
        let line = encoded_line(WatchEvent::Modified(Bytes::from_static(
            br#"{"kind":"ConfigMap","data":{"a":"b"}}"#,
        )));
        assert_eq!(
            serde_json::from_slice::<Value>(&line).unwrap(),
            json!({"type": "MODIFIED", "object": {"kind": "ConfigMap", "data": {"a": "b"}}})
        );
        let error = encoded_line(WatchEvent::Error(ApiError::gone("too old")));
        assert_eq!(
            serde_json::from_slice::<Value>(&error).unwrap()["object"]["code"],
            410
        );
    }

    #[test]
    fn events_in_wire_form() {
        let added = encode_event(WatchEvent::Added(json!({"kind": "ConfigMap"})));
        assert_eq!(
            serde_json::from_slice::<Value>(&added).unwrap(),
            json!({"type": "ADDED", "object": {"kind": "ConfigMap"}})
        );
        let error = encode_event(WatchEvent::Error(ApiError::gone("too old")));
        let error: Value = serde_json::from_slice(&error).unwrap();
        assert_eq!(error["type"], "ERROR");
        assert_eq!(error["object"]["code"], 410);
    }
}
