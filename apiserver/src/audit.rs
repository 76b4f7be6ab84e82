//! The audit log (`--audit-log-path`): one JSON line per request in upstream's
//! `audit.k8s.io/v1` Event format at the Metadata level (who, what verb on which object, the
//! answer's code, the authorization decision), written by a thread of its own so requests
//! never wait on the disk (when its queue is full, events wait on blocking threads; none is
//! dropped, as with upstream's blocking log backend).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use anyhow::Context;
use auth::{Attributes, UserInfo, Verdict};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

/// How many events wait for the writer before requests wait for it.
const QUEUE: usize = 10_000;

/// An open audit log.
#[derive(Clone, Debug)]
pub struct AuditLog {
    events: SyncSender<String>,
}

impl AuditLog {
    /// Appends to the file at `path` (created if missing), or writes to standard output for
    /// `-`, as upstream's `--audit-log-path`.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let sink: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening the audit log {}", path.display()))?,
            )
        };
        let (events, queue) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("audit-log".to_owned())
            .spawn(move || write_events(queue, sink))
            .context("starting the audit log writer")?;
        Ok(AuditLog { events })
    }

    /// Queues one event. When the queue is full, the event waits for room on a blocking
    /// thread rather than on the async worker answering requests: no event is dropped, and a
    /// slow disk delays only the events, not every request.
    pub(crate) fn record(&self, event: &AuditEvent<'_>) {
        match self.events.try_send(event.line()) {
            Ok(()) => {}
            Err(TrySendError::Full(line)) => {
                let events = self.events.clone();
                let wait = move || {
                    if events.send(line).is_err() {
                        tracing::warn!("the audit log writer stopped; an event is lost");
                    }
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => drop(runtime.spawn_blocking(wait)),
                    Err(_) => wait(),
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("the audit log writer stopped; an event is lost");
            }
        }
    }
}

/// Writes queued lines, flushing whenever the queue runs dry.
fn write_events(queue: Receiver<String>, sink: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(sink);
    while let Ok(line) = queue.recv() {
        let mut next = Some(line);
        while let Some(line) = next {
            if let Err(error) = out
                .write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
            {
                tracing::error!(%error, "writing the audit log");
            }
            next = queue.try_recv().ok();
        }
        if let Err(error) = out.flush() {
            tracing::error!(%error, "flushing the audit log");
        }
    }
}

/// What the audit log records of one request.
pub(crate) struct AuditEvent<'a> {
    /// When the request arrived.
    pub(crate) received: Timestamp,
    /// Method, path and query as sent.
    pub(crate) uri: &'a str,
    /// The verb: the authorization attributes', else the lowercase method.
    pub(crate) method: &'a str,
    /// Who sent it (`None`: authentication failed).
    pub(crate) user: Option<&'a Arc<UserInfo>>,
    /// What it asked, once authenticated.
    pub(crate) attributes: Option<&'a Attributes>,
    /// The authorization decision, once asked.
    pub(crate) verdict: Option<&'a Verdict>,
    /// The client's address, when the server knows it.
    pub(crate) source: Option<SocketAddr>,
    /// The `User-Agent` header.
    pub(crate) user_agent: &'a str,
    /// The status code of the answer.
    pub(crate) code: u16,
    /// Whether the answer streams on (watches: `ResponseStarted`, else `ResponseComplete`).
    pub(crate) streaming: bool,
}

fn micro_time(time: Timestamp) -> String {
    format!("{time:.6}")
}

impl AuditEvent<'_> {
    /// The event as one line of JSON.
    fn line(&self) -> String {
        let mut event = Map::new();
        event.insert("kind".into(), json!("Event"));
        event.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
        event.insert("level".into(), json!("Metadata"));
        event.insert("auditID".into(), json!(registry::system::new_uid()));
        let stage = if self.streaming {
            "ResponseStarted"
        } else {
            "ResponseComplete"
        };
        event.insert("stage".into(), json!(stage));
        event.insert("requestURI".into(), json!(self.uri));
        let verb = self
            .attributes
            .map_or_else(|| self.method.to_ascii_lowercase(), |a| a.verb.clone());
        event.insert("verb".into(), json!(verb));
        let user = match self.user {
            Some(user) => {
                let mut info = Map::new();
                info.insert("username".into(), json!(user.name));
                if !user.uid.is_empty() {
                    info.insert("uid".into(), json!(user.uid));
                }
                info.insert("groups".into(), json!(user.groups));
                if !user.extra.is_empty() {
                    info.insert("extra".into(), json!(user.extra));
                }
                Value::Object(info)
            }
            None => json!({}),
        };
        event.insert("user".into(), user);
        if let Some(source) = self.source {
            event.insert("sourceIPs".into(), json!([source.ip().to_string()]));
        }
        if !self.user_agent.is_empty() {
            event.insert("userAgent".into(), json!(self.user_agent));
        }
        if let Some(a) = self.attributes.filter(|a| a.resource_request) {
            let mut object = Map::new();
            for (key, value) in [
                ("resource", &a.resource),
                ("namespace", &a.namespace),
                ("name", &a.name),
                ("apiGroup", &a.api_group),
                ("apiVersion", &a.api_version),
                ("subresource", &a.subresource),
            ] {
                if !value.is_empty() {
                    object.insert(key.into(), json!(value));
                }
            }
            event.insert("objectRef".into(), Value::Object(object));
        }
        let mut status = json!({"metadata": {}, "code": self.code});
        if self.code >= 400 {
            status["status"] = json!("Failure");
        }
        event.insert("responseStatus".into(), status);
        event.insert(
            "requestReceivedTimestamp".into(),
            json!(micro_time(self.received)),
        );
        event.insert("stageTimestamp".into(), json!(micro_time(Timestamp::now())));
        if let Some(verdict) = self.verdict {
            let decision = if verdict.allowed() { "allow" } else { "forbid" };
            let mut annotations = json!({"authorization.k8s.io/decision": decision});
            annotations["authorization.k8s.io/reason"] = json!(verdict.reason);
            event.insert("annotations".into(), annotations);
        }
        Value::Object(event).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_upstream_shaped_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let user = Arc::new(UserInfo::authenticated("alice", "1", vec!["devs".into()]));
        let attributes =
            Attributes::resource(user.clone(), "list", "team", "", "configmaps", "", "");
        let verdict = Verdict::allow("RBAC: allowed by RoleBinding \"team/x\"");
        log.record(&AuditEvent {
            received: Timestamp::now(),
            uri: "/api/v1/namespaces/team/configmaps?limit=500",
            method: "GET",
            user: Some(&user),
            attributes: Some(&attributes),
            verdict: Some(&verdict),
            source: Some("127.0.0.1:5555".parse().unwrap()),
            user_agent: "kubectl/v1.32.0",
            code: 200,
            streaming: false,
        });
        drop(log);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let text = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.ends_with('\n') || std::time::Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let event: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(event["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(event["verb"], "list");
        assert_eq!(event["user"]["username"], "alice");
        assert_eq!(
            event["objectRef"],
            json!({"resource": "configmaps", "namespace": "team"})
        );
        assert_eq!(event["responseStatus"]["code"], 200);
        assert_eq!(event["sourceIPs"], json!(["127.0.0.1"]));
        assert_eq!(
            event["annotations"]["authorization.k8s.io/decision"],
            "allow"
        );
        let received = event["requestReceivedTimestamp"].as_str().unwrap();
        assert_eq!(
            received.len(),
            "2026-01-02T03:04:05.123456Z".len(),
            "{received}"
        );
    }
}
