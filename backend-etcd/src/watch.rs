//! Watches: etcd watch streams mapped onto the contract's events, resumed on another member
//! when the one serving them goes away.
//!
//! Revision arithmetic: the contract's start revision is exclusive, etcd's inclusive, so a watch
//! "after R" asks etcd for events from R + 1. The stream remembers the highest revision it has
//! delivered (events or progress) and resumes from the one after it, so a member failure causes
//! neither a gap nor a duplicate. If no member can resume it within
//! [`crate::EtcdOptions::watch_resume_timeout`], the stream ends with [`Error::Unavailable`] and
//! the caller can resume from the revision of the last event it saw.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    EventType, GetOptions, WatchOptions, WatchRequestSender, WatchResponse, WatchResponseStream,
};
use storage_api::{Error, Result, Revision, WatchEvent, WatchRequest, WatchStream};
use tokio::time::Instant;

use crate::errors::{classify, timed_out};
use crate::store::{Inner, header_revision, resolve_plain, revision_from};

/// Delay before the first resume attempt; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

struct State {
    inner: Arc<Inner>,
    key: Vec<u8>,
    range_end: Option<Vec<u8>>,
    progress: bool,
    /// Progress requests ([`storage_api::Interface::request_progress`]), for watches that want
    /// progress.
    requests: storage_api::ProgressSubscription,
    stream: Option<(WatchRequestSender, WatchResponseStream)>,
    /// Every event up to this revision has been delivered (or precedes the watch).
    delivered: Revision,
    pending: VecDeque<WatchEvent>,
    /// The error that ends the stream once `pending` is drained.
    terminal: Option<Error>,
    done: bool,
}

/// Starts a watch; checks the start revision first so that a compacted one is
/// reported by `watch` itself.
pub(crate) async fn start(inner: Arc<Inner>, request: WatchRequest) -> Result<WatchStream> {
    let key = inner.full_key(&request.key);
    let range_end = if request.prefix {
        Some(storage_api::prefix_range_end(&key).unwrap_or_else(|| vec![0]))
    } else {
        None
    };
    let key = if key.is_empty() { vec![0] } else { key };
    let requests = inner.progress_requests.subscribe(request.progress_notify);
    let mut state = State {
        inner,
        key,
        range_end,
        progress: request.progress_notify,
        requests,
        stream: None,
        delivered: 0,
        pending: VecDeque::new(),
        terminal: None,
        done: false,
    };
    match request.start_revision {
        Some(after) => {
            check_start(&state.inner, after).await?;
            state.delivered = after;
            let stream = state.open(Some(after)).await?;
            state.stream = Some(stream.split());
        }
        None => {
            let stream = state.open(None).await?;
            state.stream = Some(stream.split());
        }
    }
    Ok(Box::pin(futures::stream::unfold(
        state,
        |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        },
    )))
}

/// Fails with `Compacted` unless history after `after` can be watched: `after` itself must
/// still be readable (a read at revision 0 fails exactly when anything was compacted). A start
/// above the current revision is fine: etcd waits for it, as the contract requires.
async fn check_start(inner: &Inner, after: Revision) -> Result<()> {
    let options = GetOptions::new().with_count_only();
    match inner
        .read_range("watch start check", inner.probe_key(), options, Some(after))
        .await
    {
        Ok(_) | Err(Error::FutureRevision { .. }) => Ok(()),
        Err(other) => Err(other),
    }
}

/// What a response means for the stream.
enum Outcome {
    /// Events (possibly none) were queued.
    Continue,
    /// The member stopped serving the watch; resume elsewhere.
    Resume(String),
    /// The watch is over with this error.
    End(Error),
}

impl State {
    /// Opens an etcd watch delivering events after `after` (from now when `None`) and waits
    /// until etcd has created it.
    async fn open(&mut self, after: Option<Revision>) -> Result<etcd_client::WatchStream> {
        let mut options = WatchOptions::new().with_prev_key();
        if let Some(end) = &self.range_end {
            options = options.with_range(end.clone());
        }
        if self.progress {
            options = options.with_progress_notify();
        }
        if let Some(after) = after {
            let start = after
                .checked_add(1)
                .and_then(|start| i64::try_from(start).ok())
                .ok_or_else(|| Error::InvalidArgument(format!("watch start {after} too large")))?;
            options = options.with_start_revision(start);
        }
        let timeout = self.inner.options.request_timeout;
        let mut client = self.inner.client.watch_client();
        let key = self.key.clone();
        let created = async move {
            let mut stream = client.watch(key, Some(options)).await?;
            let first = stream.message().await?;
            Ok::<_, etcd_client::Error>((stream, first))
        };
        let (stream, first) = match tokio::time::timeout(timeout, created).await {
            Err(_) => return Err(timed_out("watch", timeout)),
            Ok(Err(e)) => return Err(resolve_plain(classify("watch", e))),
            Ok(Ok((_, None))) => {
                return Err(Error::unavailable(
                    "etcd closed the watch stream before creating the watch",
                ));
            }
            Ok(Ok((stream, Some(first)))) => (stream, first),
        };
        if first.canceled() {
            return Err(match self.cancelled(&first) {
                Outcome::End(e) => e,
                Outcome::Resume(reason) => Error::unavailable(reason),
                Outcome::Continue => Error::unavailable("etcd cancelled the watch"),
            });
        }
        if !first.created() {
            return Err(Error::internal("etcd did not confirm the watch creation"));
        }
        if after.is_none() {
            self.delivered = header_revision(first.header())?;
        }
        tracing::debug!(after = self.delivered, "etcd watch established");
        Ok(stream)
    }

    fn cancelled(&self, response: &WatchResponse) -> Outcome {
        if response.compact_revision() > 0 {
            return Outcome::End(Error::Compacted {
                requested: self.delivered,
                compacted: revision_from(response.compact_revision()),
            });
        }
        let reason = response.cancel_reason();
        if reason.contains("no leader") {
            return Outcome::Resume(format!("etcd cancelled the watch: {reason}"));
        }
        Outcome::End(Error::unavailable(format!(
            "etcd cancelled the watch after revision {}: {reason}",
            self.delivered
        )))
    }

    fn handle(&mut self, response: WatchResponse) -> Outcome {
        if response.canceled() || response.compact_revision() > 0 {
            return self.cancelled(&response);
        }
        if response.created() {
            return Outcome::Continue;
        }
        if response.events().is_empty() {
            let revision = match header_revision(response.header()) {
                Ok(revision) => revision,
                Err(e) => return Outcome::End(e),
            };
            if self.progress && revision >= self.delivered {
                self.delivered = revision;
                self.pending.push_back(WatchEvent::Progress { revision });
            }
            return Outcome::Continue;
        }
        for event in response.events() {
            match self.event(event) {
                Ok(event) => {
                    self.delivered = self.delivered.max(event.revision());
                    self.pending.push_back(event);
                }
                Err(e) => return Outcome::End(e),
            }
        }
        Outcome::Continue
    }

    fn event(&self, event: &etcd_client::Event) -> Result<WatchEvent> {
        let kv = event
            .kv()
            .ok_or_else(|| Error::internal("etcd watch event without a key-value"))?;
        let prev = event.prev_kv().map(|kv| self.inner.kv(kv)).transpose()?;
        match event.event_type() {
            EventType::Put => {
                let kv = self.inner.kv(kv)?;
                let created = kv.create_revision == kv.mod_revision;
                if !created && prev.is_none() {
                    return Err(Error::internal(format!(
                        "etcd sent the update of {:?} at revision {} without its previous value",
                        kv.key, kv.mod_revision
                    )));
                }
                Ok(WatchEvent::Put {
                    kv,
                    prev: if created { None } else { prev },
                })
            }
            EventType::Delete => {
                let revision = revision_from(kv.mod_revision());
                let prev = prev.ok_or_else(|| {
                    Error::internal(format!(
                        "etcd sent a delete at revision {revision} without the deleted value"
                    ))
                })?;
                Ok(WatchEvent::Delete {
                    key: prev.key.clone(),
                    revision,
                    prev,
                })
            }
        }
    }

    /// Re-establishes the watch after the last delivered revision, on whichever member answers.
    async fn resume(&mut self, reason: &str) -> Result<etcd_client::WatchStream> {
        let timeout = self.inner.options.watch_resume_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = FIRST_BACKOFF;
        tracing::info!(after = self.delivered, reason, "resuming etcd watch");
        loop {
            match self.open(Some(self.delivered)).await {
                Ok(stream) => return Ok(stream),
                Err(Error::Unavailable { message, .. }) => {
                    if Instant::now() + backoff > deadline {
                        return Err(Error::unavailable(format!(
                            "etcd watch could not be resumed after revision {} within {timeout:?} \
                             ({reason}; last attempt: {message}); resume from the last event seen",
                            self.delivered
                        )));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(e) = self.terminal.take() {
                self.done = true;
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            let message = match self.stream.as_mut() {
                Some((sender, responses)) => tokio::select! {
                    message = responses.message() => Some(message),
                    () = self.requests.requested() => {
                        // etcd answers on this stream with a progress response (no events,
                        // the header's revision) once its watch has caught up.
                        match sender.request_progress().await {
                            Ok(()) => None,
                            Err(e) => Some(Err(e)),
                        }
                    }
                },
                None => Some(Ok(None)),
            };
            let outcome = match message {
                None => Outcome::Continue,
                Some(Ok(Some(response))) => self.handle(response),
                Some(Ok(None)) => Outcome::Resume("etcd closed the watch stream".to_owned()),
                Some(Err(e)) => match resolve_plain(classify("watch", e)) {
                    Error::Unavailable { message, .. } => Outcome::Resume(message),
                    other => Outcome::End(other),
                },
            };
            match outcome {
                Outcome::Continue => {}
                Outcome::Resume(reason) => {
                    self.stream = None;
                    match self.resume(&reason).await {
                        Ok(stream) => self.stream = Some(stream.split()),
                        Err(e) => self.terminal = Some(e),
                    }
                }
                Outcome::End(e) => {
                    // Events queued before the error are delivered first.
                    self.stream = None;
                    self.terminal = Some(e);
                }
            }
        }
    }
}
