//! The soak's load over HTTP and its bookkeeping: writers and readers at a steady rate,
//! watchers that resume where they stopped, a tracker that follows every write to know the
//! bytes of live data and of retained history, and a probe for the compaction point.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::sync::{Semaphore, watch};

/// The namespace the soak writes in.
pub const NAMESPACE: &str = "soak";

/// Plain HTTP/1.1 to one server, over a keep-alive pool.
#[derive(Clone, Debug)]
pub struct Http {
    pool: Pool<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    /// A client of `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: String) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // The server closes a keep-alive connection that waited 90 s for its next request (see
        // the README's Limits); a pool keeping idle connections longer would now and then send
        // a request into one being closed. Clients should keep idle connections for less time
        // than the server does. 20 s also keeps the connections the load's bursts opened from
        // lingering, so the server's descriptor count settles within the warm-up.
        let pool = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(20))
            .build(connector);
        Http { pool, base }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Request<Full<Bytes>>> {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .context("building a request")
    }

    /// Sends a request and reads the whole answer.
    ///
    /// # Errors
    ///
    /// Transport errors (a status is not an error here).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes)> {
        let response = self.pool.request(self.request(method, path, body)?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Opens a streaming GET (a watch) and returns its status and body stream.
    async fn stream(
        &self,
        path: &str,
    ) -> Result<(StatusCode, BodyDataStream<hyper::body::Incoming>)> {
        let response = self
            .pool
            .request(self.request(Method::GET, path, None)?)
            .await?;
        Ok((response.status(), BodyDataStream::new(response.into_body())))
    }
}

/// Outcomes of the load's requests, counted.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests answered 2xx.
    pub ok: AtomicU64,
    /// Writes refused as the key space makes them (404 on update or delete of a missing
    /// object, 409 on creating one that exists): the server's normal answers.
    pub refused: AtomicU64,
    /// 429 TooManyRequests.
    pub throttled: AtomicU64,
    /// Anything else: 5xx, other 4xx, transport errors, and the watchers' and tracker's
    /// failed lists and watches. The soak fails if any occur.
    pub failed: AtomicU64,
    /// Ticks dropped because too many requests were still in flight.
    pub skipped: AtomicU64,
    /// Events the load's watchers received.
    pub watch_events: AtomicU64,
    /// The first failures' descriptions (at most 20).
    pub failures: std::sync::Mutex<Vec<String>>,
}

impl Counters {
    /// Counts a failure and keeps its description if it is among the first 20.
    pub fn failure(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut failures) = self.failures.lock()
            && failures.len() < 20
        {
            failures.push(what);
        }
    }

    fn answer(&self, what: &str, status: StatusCode, body: &[u8], expected_refusal: bool) {
        if status.is_success() {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        } else if expected_refusal
            && (status == StatusCode::NOT_FOUND || status == StatusCode::CONFLICT)
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            self.failure(format!("{what}: {status}: {text}"));
        }
    }
}

/// The shape of the load.
#[derive(Clone, Debug)]
pub struct LoadShape {
    /// Requests started per second (creates, updates, deletes, lists and events).
    pub rate: u64,
    /// ConfigMap names the writers cycle through.
    pub objects: usize,
    /// Bytes of each ConfigMap's data value.
    pub value_size: usize,
}

fn random_below(bound: u64) -> u64 {
    getrandom::u64().unwrap_or_default() % bound.max(1)
}

fn config_map(name: &str, value_size: usize) -> String {
    let fill = char::from(b'a' + (random_below(26) as u8));
    let value: String = std::iter::repeat_n(fill, value_size).collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"value": value},
    })
    .to_string()
}

fn event(name: &str, about: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "involvedObject": {"kind": "ConfigMap", "namespace": NAMESPACE, "name": about},
        "reason": "Soaked",
        "message": format!("configmap {about} was written by the soak"),
        "type": "Normal",
        "source": {"component": "storage-soak"},
    })
    .to_string()
}

/// Creates the soak's namespace.
///
/// # Errors
///
/// When the server refuses or cannot be reached.
pub async fn create_namespace(http: &Http) -> Result<()> {
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    let (status, answer) = http
        .send(Method::POST, "/api/v1/namespaces", Some(body.to_string()))
        .await?;
    if !status.is_success() && status != StatusCode::CONFLICT {
        bail!(
            "creating namespace {NAMESPACE}: {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(())
}

/// Runs the writers and readers until `stop` turns true: one request started every
/// `1/rate` seconds, at most 64 in flight (ticks past that are counted as skipped).
pub async fn run_requests(
    http: Http,
    shape: LoadShape,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(Semaphore::new(64));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / shape.rate.max(1) as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_event = 0u64;
    let configmaps = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let name = format!("cm-{}", random_below(shape.objects as u64));
        let roll = random_below(100);
        let (what, method, path, body, refusal_expected) = match roll {
            0..35 => (
                "update",
                Method::PUT,
                format!("{configmaps}/{name}"),
                Some(config_map(&name, shape.value_size)),
                true,
            ),
            35..50 => (
                "create",
                Method::POST,
                configmaps.clone(),
                Some(config_map(&name, shape.value_size)),
                true,
            ),
            50..65 => (
                "delete",
                Method::DELETE,
                format!("{configmaps}/{name}"),
                None,
                true,
            ),
            65..75 => (
                "list",
                Method::GET,
                format!("{configmaps}?limit=100"),
                None,
                false,
            ),
            _ => {
                next_event += 1;
                let event_name = format!("ev-{next_event}-{}", random_below(1 << 30));
                (
                    "event",
                    Method::POST,
                    format!("/api/v1/namespaces/{NAMESPACE}/events"),
                    Some(event(&event_name, &name)),
                    false,
                )
            }
        };
        let http = http.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match http.send(method, &path, body).await {
                Ok((status, answer)) => counters.answer(what, status, &answer, refusal_expected),
                Err(error) => counters.failure(format!("{what}: {error:#}")),
            }
        });
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    object: LineObject,
}

#[derive(Deserialize)]
struct LineObject {
    #[serde(default)]
    metadata: LineMeta,
    /// A Status's code, on ERROR lines.
    #[serde(default)]
    code: u16,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    resource_version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    #[serde(default)]
    metadata: ListPageMeta,
    #[serde(default)]
    items: Vec<serde_json::Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPageMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// One event of a watch stream, as the soak reads it.
enum Seen {
    /// ADDED, MODIFIED or DELETED of `name` at `revision`; `bytes` is the object's encoded
    /// size (the line's length, near enough to the stored value's).
    Change {
        deleted: bool,
        name: String,
        revision: u64,
        bytes: u64,
    },
    /// A bookmark at `revision`.
    Bookmark { revision: u64 },
    /// 410 Gone: the watch must re-list.
    Expired,
}

fn parse_line(line: &[u8]) -> Result<Seen> {
    let parsed: Line = serde_json::from_slice(line).context("a watch line that is not an event")?;
    let revision = || {
        parsed
            .object
            .metadata
            .resource_version
            .parse::<u64>()
            .context("a resourceVersion that is not a number")
    };
    Ok(match parsed.kind.as_str() {
        "BOOKMARK" => Seen::Bookmark {
            revision: revision()?,
        },
        "ERROR" if parsed.object.code == 410 => Seen::Expired,
        "ERROR" => bail!("a watch error: {}", String::from_utf8_lossy(line)),
        kind => Seen::Change {
            deleted: kind == "DELETED",
            name: parsed.object.metadata.name.clone(),
            revision: revision()?,
            bytes: line.len() as u64,
        },
    })
}

/// Lists `path` whole (pages of 500) and returns its revision and items.
async fn list_all(http: &Http, path: &str) -> Result<(u64, Vec<serde_json::Value>)> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut revision = 0;
    loop {
        let page_path = match &token {
            Some(token) => format!("{path}?limit=500&continue={token}"),
            None => format!("{path}?limit=500"),
        };
        let (status, body) = http.send(Method::GET, &page_path, None).await?;
        if !status.is_success() {
            bail!(
                "listing {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let page: ListPage =
            serde_json::from_slice(&body).context("a list that does not decode")?;
        if token.is_none() {
            revision = page
                .metadata
                .resource_version
                .parse()
                .context("a list resourceVersion that is not a number")?;
        }
        items.extend(page.items);
        match page.metadata.continue_token.filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok((revision, items)),
        }
    }
}

/// Follows a watch of `path` from `revision` until it ends, passing every event to `seen`;
/// returns the last revision seen, or `None` when the watch expired (410).
async fn follow(
    http: &Http,
    path: &str,
    mut revision: u64,
    stop: &watch::Receiver<bool>,
    mut seen: impl FnMut(&Seen),
) -> Result<Option<u64>> {
    let timeout = 30 + random_below(60);
    let url = format!(
        "{path}?watch=1&allowWatchBookmarks=true&resourceVersion={revision}&timeoutSeconds={timeout}"
    );
    let (status, mut body) = http.stream(&url).await?;
    if status == StatusCode::GONE {
        return Ok(None);
    }
    if !status.is_success() {
        bail!("watching {path}: {status}");
    }
    let mut pending = Vec::new();
    while let Some(chunk) = body.next().await {
        if *stop.borrow() {
            break;
        }
        pending.extend_from_slice(&chunk.context("reading a watch")?);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let event = parse_line(&line[..line.len() - 1])?;
            match &event {
                Seen::Expired => return Ok(None),
                Seen::Bookmark { revision: at } | Seen::Change { revision: at, .. } => {
                    revision = *at
                }
            }
            seen(&event);
        }
    }
    Ok(Some(revision))
}

/// A watcher of the namespace's ConfigMaps that resumes from the last revision it saw when
/// its watch times out and lists again on 410, until `stop`.
pub async fn run_watcher(http: Http, counters: Arc<Counters>, stop: watch::Receiver<bool>) {
    let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
    let mut revision = None;
    while !*stop.borrow() {
        let from = match revision {
            Some(revision) => revision,
            None => match list_all(&http, &path).await {
                Ok((revision, _)) => revision,
                Err(error) => {
                    counters.failure(format!("watcher list: {error:#}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let events = &counters.watch_events;
        match follow(&http, &path, from, &stop, |seen| {
            if matches!(seen, Seen::Change { .. }) {
                events.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await
        {
            Ok(next) => revision = next,
            Err(error) => {
                counters.failure(format!("watcher: {error:#}"));
                revision = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The bytes the store must keep, as the tracker knows them from every write it watched.
#[derive(Debug, Default)]
struct Ledger {
    /// Each live object's bytes, by `resource/name`.
    live: HashMap<String, u64>,
    live_bytes: u64,
    /// Superseded versions and tombstones, by the revision that superseded them: the store
    /// may drop them once its compaction point passes that revision.
    history: BTreeMap<u64, u64>,
    history_bytes: u64,
    latest: u64,
    /// Times a tracker listed again after its watch expired (its history since is unknown).
    resets: u64,
    /// Events deleted: the load never deletes one, so these are TTL expiries.
    expired_events: u64,
}

impl Ledger {
    fn record(&mut self, resource: &str, seen: &Seen) {
        let Seen::Change {
            deleted,
            name,
            revision,
            bytes,
        } = seen
        else {
            return;
        };
        let key = format!("{resource}/{name}");
        let superseded = if *deleted {
            self.live.remove(&key)
        } else {
            self.live.insert(key.clone(), *bytes)
        };
        self.live_bytes =
            self.live_bytes - superseded.unwrap_or(0) + if *deleted { 0 } else { *bytes };
        if *deleted && resource == "events" {
            self.expired_events += 1;
        }
        // A delete keeps a tombstone of about the key's size beside the version it ends.
        let retained = superseded.unwrap_or(0) + if *deleted { key.len() as u64 } else { 0 };
        if retained > 0 {
            *self.history.entry(*revision).or_default() += retained;
            self.history_bytes += retained;
        }
        self.latest = self.latest.max(*revision);
    }

    fn compacted_to(&mut self, point: u64) {
        let kept = self.history.split_off(&(point + 1));
        let dropped: u64 = self.history.values().sum();
        self.history = kept;
        self.history_bytes -= dropped;
    }

    /// Replaces `resource`'s live objects with a list's `items`; `again` when the tracker lists
    /// after its watch expired (not its first list).
    fn reset(&mut self, resource: &str, items: &[serde_json::Value], again: bool) {
        let prefix = format!("{resource}/");
        let gone: u64 = self
            .live
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, b)| *b)
            .sum();
        self.live.retain(|k, _| !k.starts_with(&prefix));
        self.live_bytes -= gone;
        for item in items {
            let name = item
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .unwrap_or_default();
            // An event line carries the object plus about 30 bytes of framing.
            let bytes = item.to_string().len() as u64 + 30;
            self.live.insert(format!("{prefix}{name}"), bytes);
            self.live_bytes += bytes;
        }
        self.resets += u64::from(again);
    }
}

/// What the tracker reports at a sample.
#[derive(Clone, Copy, Debug, Default)]
pub struct Accounting {
    /// Bytes of the objects that exist now.
    pub live_bytes: u64,
    /// Bytes of superseded versions and tombstones newer than the compaction point.
    pub history_bytes: u64,
    /// Live objects.
    pub live_objects: u64,
    /// The newest revision the tracker saw.
    pub latest: u64,
    /// Lists the trackers needed after their watches expired.
    pub resets: u64,
    /// Events that expired through their TTL.
    pub expired_events: u64,
}

/// Follows every write in the namespace (ConfigMaps and Events) to account live and
/// retained bytes.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    // A std mutex: every critical section is a few map operations with no await inside.
    ledger: Arc<std::sync::Mutex<Ledger>>,
}

impl Tracker {
    /// Follows `resource` in the soak's namespace until `stop`, from a first list.
    pub async fn run(
        self,
        http: Http,
        resource: &'static str,
        counters: Arc<Counters>,
        stop: watch::Receiver<bool>,
    ) {
        let path = format!("/api/v1/namespaces/{NAMESPACE}/{resource}");
        let mut revision = None;
        let mut listed = false;
        while !*stop.borrow() {
            let from = match revision {
                Some(revision) => revision,
                None => match list_all(&http, &path).await {
                    Ok((revision, items)) => {
                        self.ledger().reset(resource, &items, listed);
                        listed = true;
                        revision
                    }
                    Err(error) => {
                        counters.failure(format!("tracker list: {error:#}"));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            let result = follow(&http, &path, from, &stop, |seen| {
                self.ledger().record(resource, seen)
            })
            .await;
            match result {
                Ok(next) => revision = next,
                Err(error) => {
                    counters.failure(format!("tracker: {error:#}"));
                    revision = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A panic while holding the lock leaves plain numbers behind; keep using them.
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops history the store may have compacted away at `point`, and reports.
    pub fn account(&self, point: u64) -> Accounting {
        let mut ledger = self.ledger();
        ledger.compacted_to(point);
        Accounting {
            live_bytes: ledger.live_bytes,
            history_bytes: ledger.history_bytes,
            live_objects: ledger.live.len() as u64,
            latest: ledger.latest,
            resets: ledger.resets,
            expired_events: ledger.expired_events,
        }
    }
}

/// The store's compaction point: the oldest revision in `[low, high]` an exact list can
/// still read (410 below it), found by bisection. `low` is a point found before.
///
/// # Errors
///
/// When a probe gets neither 200 nor 410.
pub async fn compaction_point(http: &Http, mut low: u64, mut high: u64) -> Result<u64> {
    let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
    while low < high {
        let middle = low + (high - low) / 2;
        let probe = format!("{path}?limit=1&resourceVersion={middle}&resourceVersionMatch=Exact");
        let (status, body) = http.send(Method::GET, &probe, None).await?;
        match status {
            StatusCode::GONE => low = middle + 1,
            status if status.is_success() => high = middle,
            status => bail!(
                "probing revision {middle}: {status}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }
    Ok(low)
}
