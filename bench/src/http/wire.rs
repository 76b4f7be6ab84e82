//! What goes over the wire at the HTTP level: the ConfigMap bodies the client sends, the parts
//! of responses it reads, `Status` errors, query encoding and the watch stream's line framing.

use std::collections::VecDeque;

use anyhow::{Context, Result, bail};
use bytes::{Buf, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use storage_api::Revision;

use crate::client::{Expired, Seen};

/// The ConfigMap the client creates and updates (or a CRD's object of the same shape): a
/// name, a label, the stamp annotation and a `pad` data entry of `--value-size` bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapBody<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: MetaBody<'a>,
    data: DataBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetaBody<'a> {
    name: &'a str,
    namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_version: Option<String>,
    labels: LabelsBody,
    annotations: AnnotationsBody,
}

#[derive(Serialize)]
struct LabelsBody {
    app: &'static str,
}

/// The stamp annotation, `bench.storage/stamp`: the writer's [`crate::stats::now_stamp`].
#[derive(Serialize)]
struct AnnotationsBody {
    #[serde(rename = "bench.storage/stamp")]
    stamp: String,
}

#[derive(Serialize)]
struct DataBody<'a> {
    pad: &'a str,
}

impl<'a> ConfigMapBody<'a> {
    /// ConfigMap `name` in `namespace` stamped with `stamp`; with `resource_version` it is an
    /// update that only succeeds on that version (optimistic concurrency).
    /// Object `name` of `(apiVersion, kind)` in `namespace` stamped with `stamp`; with
    /// `resource_version` it is an update that only succeeds on that version (optimistic
    /// concurrency).
    pub fn of_kind(
        (api_version, kind): (&'static str, &'static str),
        namespace: &'a str,
        name: &'a str,
        stamp: u64,
        pad: &'a str,
        resource_version: Option<Revision>,
    ) -> Self {
        ConfigMapBody {
            api_version,
            kind,
            metadata: MetaBody {
                name,
                namespace,
                resource_version: resource_version.map(|rv| rv.to_string()),
                labels: LabelsBody { app: "bench" },
                annotations: AnnotationsBody {
                    stamp: stamp.to_string(),
                },
            },
            data: DataBody { pad },
        }
    }
}

/// The body that creates namespace `name`.
pub fn namespace_body(name: &str) -> Result<Bytes> {
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name},
    });
    Ok(Bytes::from(serde_json::to_vec(&body)?))
}

/// The parts of an object's metadata the client reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// `metadata.name`.
    #[serde(default)]
    pub name: String,
    /// `metadata.resourceVersion`.
    #[serde(default)]
    pub resource_version: String,
    /// `metadata.annotations`, only the stamp.
    #[serde(default)]
    pub annotations: Option<Annotations>,
}

/// The stamp annotation, if present.
#[derive(Debug, Default, Deserialize)]
pub struct Annotations {
    /// The writer's stamp.
    #[serde(rename = "bench.storage/stamp", default)]
    pub stamp: Option<String>,
}

impl Meta {
    /// `metadata.resourceVersion` as a revision.
    pub fn revision(&self) -> Result<Revision> {
        self.resource_version.parse().with_context(|| {
            format!(
                "resourceVersion {:?} of {:?} is not a revision",
                self.resource_version, self.name
            )
        })
    }

    /// The writer's stamp (0 when absent: not written by this tool).
    pub fn stamp(&self) -> u64 {
        self.annotations
            .as_ref()
            .and_then(|a| a.stamp.as_deref())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// An object response: only its metadata is decoded (the rest is skipped, not kept).
#[derive(Debug, Deserialize)]
pub struct Object {
    /// `metadata`.
    #[serde(default)]
    pub metadata: Meta,
}

/// A list response: items are counted (and syntax-checked), not kept.
#[derive(Debug, Deserialize)]
pub struct List {
    /// `metadata` of the list.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The items.
    #[serde(default)]
    pub items: Vec<serde::de::IgnoredAny>,
}

/// `ListMeta`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// The list's snapshot revision.
    #[serde(default)]
    pub resource_version: String,
    /// The continue token of the next page (empty on the last page).
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
}

/// A `metav1.Status` error body (its code is the response's status).
#[derive(Debug, Default, Deserialize)]
pub struct Status {
    /// Machine-readable reason (`Conflict`, `NotFound`, ...).
    #[serde(default)]
    pub reason: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
}

/// A response body that is not a success: the Status message when it is one, else its start.
pub fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<Status>(body) {
        Ok(status) if !status.message.is_empty() || !status.reason.is_empty() => {
            format!("{}: {}", status.reason, status.message)
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            text.chars().take(200).collect()
        }
    }
}

/// One line of a watch stream: `{"type": ..., "object": ...}`.
#[derive(Debug, Deserialize)]
struct EventLine {
    #[serde(rename = "type")]
    kind: String,
    object: EventObject,
}

/// The object of a watch event, or the Status of an ERROR event.
#[derive(Debug, Deserialize)]
struct EventObject {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    code: u16,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// Decodes one watch line: `Some(seen)` for ADDED/MODIFIED/DELETED, `None` for BOOKMARK, an
/// error for an ERROR event or a line that is not an event.
pub fn decode_event(line: &[u8]) -> Result<Option<Seen>> {
    let event: EventLine = serde_json::from_slice(line).with_context(|| {
        format!(
            "watch line is not an event: {}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        )
    })?;
    match event.kind.as_str() {
        "ADDED" | "MODIFIED" | "DELETED" => Ok(Some(Seen {
            revision: event.object.metadata.revision()?,
            stamp: event.object.metadata.stamp(),
        })),
        "BOOKMARK" => Ok(None),
        "ERROR" if event.object.code == 410 => Err(anyhow::Error::new(Expired(format!(
            "watch ERROR event: 410 {}: {}",
            event.object.reason, event.object.message
        )))),
        "ERROR" => bail!(
            "watch ERROR event: {} {}: {}",
            event.object.code,
            event.object.reason,
            event.object.message
        ),
        other => bail!("unknown watch event type {other:?}"),
    }
}

/// Splits a byte stream into `\n`-terminated lines, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct Lines {
    buffer: BytesMut,
    ready: VecDeque<Bytes>,
}

impl Lines {
    /// Adds a chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line = self.buffer.split_to(end).freeze();
            self.buffer.advance(1);
            if !line.iter().all(u8::is_ascii_whitespace) {
                self.ready.push_back(line);
            }
        }
    }

    /// The next complete line, if any.
    pub fn next_line(&mut self) -> Option<Bytes> {
        self.ready.pop_front()
    }

    /// Bytes received after the last complete line.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
pub fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_survive_any_chunking() {
        let stream = b"{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}\n";
        for cut in 1..stream.len() {
            let mut lines = Lines::default();
            let mut seen = Vec::new();
            for chunk in stream.chunks(cut) {
                lines.push(chunk);
                while let Some(line) = lines.next_line() {
                    seen.push(line);
                }
            }
            assert_eq!(seen, vec![&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"]);
            assert_eq!(lines.pending(), 0);
        }
    }

    #[test]
    fn events_decode() {
        let added = br#"{"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"42","annotations":{"bench.storage/stamp":"7","x":"y"}},"data":{"pad":"xx"}}}"#;
        assert_eq!(
            decode_event(added).unwrap(),
            Some(Seen {
                revision: 42,
                stamp: 7
            })
        );
        let bookmark =
            br#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"resourceVersion":"50"}}}"#;
        assert_eq!(decode_event(bookmark).unwrap(), None);
        let error = br#"{"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old","reason":"Expired","code":410}}"#;
        let message = format!("{:#}", decode_event(error).unwrap_err());
        assert!(
            message.contains("410") && message.contains("too old"),
            "{message}"
        );
        assert!(crate::client::is_expired(&decode_event(error).unwrap_err()));
        assert!(decode_event(b"nope").is_err());
    }

    #[test]
    fn bodies_and_errors() {
        let body = ConfigMapBody::of_kind(("v1", "ConfigMap"), "ns", "cm", 9, "pp", Some(12));
        let value = serde_json::to_value(&body).unwrap();
        assert_eq!(value["metadata"]["resourceVersion"], "12");
        assert_eq!(value["metadata"]["annotations"]["bench.storage/stamp"], "9");
        assert_eq!(value["data"]["pad"], "pp");
        let created = ConfigMapBody::of_kind(("v1", "ConfigMap"), "ns", "cm", 9, "pp", None);
        let value = serde_json::to_value(&created).unwrap();
        assert!(value["metadata"].get("resourceVersion").is_none());
        assert_eq!(
            error_text(br#"{"kind":"Status","code":409,"reason":"Conflict","message":"stale"}"#),
            "Conflict: stale"
        );
        assert_eq!(error_text(b"plain"), "plain");
        assert_eq!(query_value("a+b/c=="), "a%2Bb%2Fc%3D%3D");
    }
}
