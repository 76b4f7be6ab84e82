//! Small helpers shared by the cases.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use storage_api::{WatchEvent, WatchStream};

/// How long a case waits for an event that must arrive.
pub(crate) const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Bytes of a string.
pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next non-progress event, failing if the stream errors, ends or stays silent.
pub(crate) async fn next_event(stream: &mut WatchStream) -> anyhow::Result<WatchEvent> {
    loop {
        let item = tokio::time::timeout(EVENT_TIMEOUT, stream.next())
            .await
            .with_context(|| format!("no watch event within {EVENT_TIMEOUT:?}"))?;
        match item {
            None => bail!("watch stream ended while an event was expected"),
            Some(Err(error)) => bail!("watch stream failed: {error}"),
            Some(Ok(WatchEvent::Progress { .. })) => continue,
            Some(Ok(event)) => return Ok(event),
        }
    }
}

/// The next `n` non-progress events.
pub(crate) async fn next_events(
    stream: &mut WatchStream,
    n: usize,
) -> anyhow::Result<Vec<WatchEvent>> {
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        events.push(
            next_event(stream)
                .await
                .with_context(|| format!("event {} of {n}", i + 1))?,
        );
    }
    Ok(events)
}

/// Fails if a non-progress event arrives within `wait`.
pub(crate) async fn expect_silence(stream: &mut WatchStream, wait: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Ok(()),
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => continue,
            Ok(other) => bail!("expected no event, got {other:?}"),
        }
    }
}

/// A short description of an event for comparisons: kind, key, value, revision.
pub(crate) fn summary(event: &WatchEvent) -> String {
    match event {
        WatchEvent::Put { kv, prev } => format!(
            "PUT {} = {:?} @{} (prev {:?})",
            kv.key,
            kv.value,
            kv.mod_revision,
            prev.as_ref().map(|p| (p.value.clone(), p.mod_revision))
        ),
        WatchEvent::Delete {
            key,
            revision,
            prev,
        } => {
            format!(
                "DELETE {key} @{revision} (prev {:?} @{})",
                prev.value, prev.mod_revision
            )
        }
        WatchEvent::Progress { revision } => format!("PROGRESS @{revision}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `within`.
pub(crate) async fn eventually<T, F, Fut>(
    within: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{what} did not happen within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
