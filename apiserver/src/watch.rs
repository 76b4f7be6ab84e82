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

use crate::handler::{EncodedWatch, RequestContext, ResourceHandler, try_map};
use crate::server::ServerState;
use crate::table::{TableRequest, watch_event_table, with_columns};

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
        let columns = serde_json::to_vec(&handler.table_columns())
            .map_err(|e| ApiError::internal(format!("encoding table columns: {e}")))?;
        let tables = match handler.watch_tables(&ctx, &options).await? {
            // Rendered once per event for all watchers (from a watch cache).
            Some(tables) => tables,
            None => tables_per_watcher(handler, ctx, &options).await?,
        };
        let mut first = true;
        until_error(tables)
            .map(move |event| table_line(event, &columns, &mut first))
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

/// Watch event Tables rendered by this watcher alone, for handlers that cannot share them.
async fn tables_per_watcher(
    handler: Arc<dyn ResourceHandler>,
    ctx: RequestContext,
    options: &ListOptions,
) -> Result<EncodedWatch, ApiError> {
    let events = handler.watch(&ctx, options).await?;
    let failed = |e: serde_json::Error| ApiError::internal(format!("encoding a watch event: {e}"));
    Ok(events
        .map(move |event| match event {
            WatchEvent::Bookmark(object) => try_map(WatchEvent::Bookmark(object), |o| {
                serde_json::to_vec(&o).map(Bytes::from).map_err(failed)
            }),
            other => try_map(other, |object| {
                let row =
                    TableRequest::for_watch().row(handler.table_cells(&ctx, &object), &object);
                let rv = object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str);
                watch_event_table(rv, &row).map(Bytes::from).map_err(failed)
            }),
        })
        .boxed())
}

/// One Table watch event as a line (without the newline): the event's one-row Table, with
/// `columns` (JSON text) filled in only in the watch's first event, as upstream's
/// `serveWatch` sets `NoHeaders` after it. Bookmarks and errors are written as in plain
/// watches.
fn table_line(event: WatchEvent<Bytes>, columns: &[u8], first: &mut bool) -> Vec<u8> {
    let carries_object = matches!(
        event,
        WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Deleted(_)
    );
    if carries_object && std::mem::take(first) {
        return encoded_line(try_map(event, |table| {
            Ok(Bytes::from(with_columns(&table, columns)))
        }));
    }
    encoded_line(event)
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
    fn table_events_carry_columns_in_the_first_only() {
        let table = || Bytes::from(watch_event_table(Some("3"), &json!({"cells": ["a"]})).unwrap());
        let columns = br#"[{"name":"Name"}]"#;
        let mut first = true;
        let line = |event, first: &mut bool| {
            serde_json::from_slice::<Value>(&table_line(event, columns, first)).unwrap()
        };
        // A bookmark is not the first event with an object.
        let bookmark = line(
            WatchEvent::Bookmark(Bytes::from_static(br#"{"kind":"ConfigMap"}"#)),
            &mut first,
        );
        assert_eq!(bookmark["type"], "BOOKMARK");
        assert_eq!(bookmark["object"], json!({"kind": "ConfigMap"}));
        let added = line(WatchEvent::Added(table()), &mut first);
        assert_eq!(added["type"], "ADDED");
        assert_eq!(
            added["object"]["columnDefinitions"],
            json!([{"name": "Name"}])
        );
        assert_eq!(added["object"]["metadata"]["resourceVersion"], "3");
        let deleted = line(WatchEvent::Deleted(table()), &mut first);
        assert_eq!(deleted["type"], "DELETED");
        assert_eq!(deleted["object"]["columnDefinitions"], json!([]));
        assert_eq!(deleted["object"]["rows"][0]["cells"], json!(["a"]));
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
