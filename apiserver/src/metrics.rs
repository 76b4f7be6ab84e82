//! Prometheus metrics: requests per verb/resource/code with latency, storage operation
//! latency (through [`InstrumentedStore`], with [`Metrics`] as the storage layer's observer),
//! and open watches.

use std::sync::Arc;
use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use storage_api::{Finished, Interface, Observed, Observer, Operation, Outcome};

/// The server's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// `apiserver_request_total{verb,resource,code}`.
    pub requests: IntCounterVec,
    /// `apiserver_request_duration_seconds{verb,resource}`.
    pub request_duration: HistogramVec,
    /// `apiserver_storage_operation_duration_seconds{operation,resource}`.
    pub storage_duration: HistogramVec,
    /// `apiserver_open_watches`.
    pub open_watches: IntGauge,
    /// The watch caches' metrics (`apiserver_watch_cache_*`).
    pub watch_cache: Arc<crate::watch_cache::CacheMetrics>,
}

impl Metrics {
    /// Fresh metrics in their own registry.
    ///
    /// # Errors
    ///
    /// When a metric cannot be registered (a programming error).
    pub fn new() -> std::result::Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "apiserver_request_total",
                "Requests by verb, resource and HTTP code.",
            ),
            &["verb", "resource", "code"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "apiserver_request_duration_seconds",
                "Request latency by verb and resource (watches: until established).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["verb", "resource"],
        )?;
        let storage_duration = HistogramVec::new(
            HistogramOpts::new(
                "apiserver_storage_operation_duration_seconds",
                "Storage backend operation latency by operation and resource.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["operation", "resource"],
        )?;
        let open_watches = IntGauge::new("apiserver_open_watches", "Watches being served.")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(storage_duration.clone()))?;
        registry.register(Box::new(open_watches.clone()))?;
        let watch_cache = Arc::new(crate::watch_cache::CacheMetrics::new(&registry)?);
        Ok(Metrics {
            watch_cache,
            registry,
            requests,
            request_duration,
            storage_duration,
            open_watches,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.watch_cache.refresh();
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Records one finished request.
    pub fn observe_request(&self, verb: &str, resource: &str, code: u16, started: Instant) {
        self.requests
            .with_label_values(&[verb, resource, &code.to_string()])
            .inc();
        self.request_duration
            .with_label_values(&[verb, resource])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// A store whose operations are timed into [`Metrics::storage_duration`]: `Metrics` is its
/// [`Observer`]. Build one with `InstrumentedStore::new(inner, metrics)`.
pub type InstrumentedStore = Observed<Arc<dyn Interface>, Metrics>;

/// Times the key-addressed storage operations into
/// `apiserver_storage_operation_duration_seconds{operation,resource}`, failed ones included.
///
/// `operation` is `create`, `update`, `delete`, `get`, `list` (a range) or `watch` (until
/// established); `resource` comes from the key. Operations on the whole store (revisions,
/// compaction, readiness) and operations cancelled before they ended are not recorded.
impl Observer for Metrics {
    /// The `operation` and `resource` label values, or `None` when the operation is not
    /// recorded. The series is looked up only when the operation ends, so a cancelled one
    /// creates no series.
    type Span = Option<(&'static str, String)>;

    fn start(&self, operation: Operation, key: Option<&str>) -> Self::Span {
        let label = match operation {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Get => "get",
            Operation::Range => "list",
            Operation::Watch => "watch",
            _ => return None,
        };
        Some((label, resource_of(key?).to_owned()))
    }

    fn finish(&self, labels: Self::Span, finished: Finished<'_>) {
        if let Some((operation, resource)) = labels {
            if !matches!(finished.outcome, Outcome::Cancelled) {
                self.storage_duration
                    .with_label_values(&[operation, &resource])
                    .observe(finished.elapsed.as_secs_f64());
            }
        }
    }
}

/// The resource a storage key belongs to. Keys look like `/registry/<resource>/...` or
/// `/registry/<group>/<resource>/...` (a group has a dot, a resource has none).
fn resource_of(key: &str) -> &str {
    let mut parts = key.trim_start_matches('/').split('/').skip(1);
    let first = parts.next().unwrap_or_default();
    if first.contains('.') {
        parts.next().unwrap_or(first)
    } else {
        first
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use bytes::Bytes;
    use storage_api::{Interface, Precondition, RangeRequest, WatchRequest};

    use super::{InstrumentedStore, Metrics};

    fn count(text: &str, operation: &str, resource: &str) -> Option<u64> {
        let series = format!(
            "apiserver_storage_operation_duration_seconds_count{{operation=\"{operation}\",resource=\"{resource}\"}} "
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|n| n.parse().ok())
    }

    #[tokio::test]
    async fn storage_operations_are_timed_by_operation_and_resource() {
        let metrics = Metrics::new().unwrap();
        let store =
            InstrumentedStore::new(storage::open("memory://").await.unwrap(), metrics.clone());
        let key = "/registry/configmaps/default/a";
        let revision = store
            .create(key, Bytes::from_static(b"1"), None)
            .await
            .unwrap();
        // Failures are timed too.
        store
            .create(key, Bytes::from_static(b"1"), None)
            .await
            .unwrap_err();
        store
            .update(
                key,
                Bytes::from_static(b"2"),
                Precondition::ModRevision(revision),
                None,
            )
            .await
            .unwrap();
        store
            .get("/registry/apps.example.io/widgets/default/w", None)
            .await
            .unwrap();
        store
            .range(RangeRequest::prefix("/registry/configmaps/"))
            .await
            .unwrap();
        drop(
            store
                .watch(WatchRequest::prefix("/registry/configmaps/"))
                .await
                .unwrap(),
        );
        store.delete(key, Precondition::None).await.unwrap();
        // Operations on the whole store are not timed.
        store.current_revision().await.unwrap();
        store.compacted_revision().await.unwrap();
        store.ready().await.unwrap();
        assert_eq!(store.capabilities(), storage_api::Capabilities::all());

        let text = metrics.render();
        assert_eq!(count(&text, "create", "configmaps"), Some(2), "{text}");
        assert_eq!(count(&text, "update", "configmaps"), Some(1), "{text}");
        assert_eq!(count(&text, "delete", "configmaps"), Some(1), "{text}");
        assert_eq!(count(&text, "get", "widgets"), Some(1), "{text}");
        assert_eq!(count(&text, "list", "configmaps"), Some(1), "{text}");
        assert_eq!(count(&text, "watch", "configmaps"), Some(1), "{text}");
        let series = text
            .lines()
            .filter(|line| line.starts_with("apiserver_storage_operation_duration_seconds_count"))
            .count();
        assert_eq!(series, 6, "{text}");
    }
}
