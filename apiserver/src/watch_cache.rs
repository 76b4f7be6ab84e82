//! Which resources are served through a watch cache ([`object_storage::WatchCache`]) and how
//! big its ring is: kube-apiserver's `--watch-cache` and `--watch-cache-sizes`, and the
//! caches' metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use apimachinery::Object;
use apimachinery::status::GroupResource;
use object_storage::WatchCacheConfig;
use object_storage::cache::{CacheStats, RingLimits};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use registry::Store;

use crate::server::ServerError;

/// Which resources get a watch cache and how many events each keeps.
#[derive(Clone, Debug)]
pub struct WatchCacheSettings {
    enabled: bool,
    /// Ring sizes by `resource[.group]`; 0 turns the cache off for that resource.
    sizes: BTreeMap<String, usize>,
}

impl Default for WatchCacheSettings {
    /// Every resource cached with upstream's default ring (100 to 102,400 events, 75 s).
    fn default() -> Self {
        WatchCacheSettings {
            enabled: true,
            sizes: BTreeMap::new(),
        }
    }
}

impl WatchCacheSettings {
    /// No resource cached: every read and watch goes to storage.
    pub fn disabled() -> Self {
        WatchCacheSettings {
            enabled: false,
            sizes: BTreeMap::new(),
        }
    }

    /// `--watch-cache` and the entries of `--watch-cache-sizes`, each `resource[.group]#size`
    /// (`configmaps#1000`, `leases.coordination.k8s.io#0`). A size of 0 turns the cache off
    /// for the resource; any other size bounds its ring of events (at least 100 kept, or
    /// the size if smaller).
    ///
    /// # Errors
    ///
    /// An entry that is not `resource[.group]#size` with a non-negative integer size, naming
    /// the entry.
    pub fn parse(enabled: bool, sizes: &[String]) -> Result<Self, String> {
        let mut parsed = BTreeMap::new();
        for entry in sizes.iter().flat_map(|s| s.split(',')).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let Some((resource, size)) = entry.split_once('#') else {
                return Err(format!(
                    "invalid value of watch cache size: {entry:?}: expected resource[.group]#size"
                ));
            };
            let size: usize = size.parse().map_err(|_| {
                format!("invalid size of watch cache size: {entry:?}: not a number")
            })?;
            if resource.is_empty() {
                return Err(format!(
                    "invalid value of watch cache size: {entry:?}: no resource"
                ));
            }
            parsed.insert(resource.to_ascii_lowercase(), size);
        }
        Ok(WatchCacheSettings {
            enabled,
            sizes: parsed,
        })
    }

    /// The cache configuration of `resource`, or `None` when it is not cached.
    pub fn config_for(&self, resource: &GroupResource) -> Option<WatchCacheConfig> {
        if !self.enabled {
            return None;
        }
        let name = if resource.group.is_empty() {
            resource.resource.clone()
        } else {
            format!("{}.{}", resource.resource, resource.group)
        };
        let mut config = WatchCacheConfig::default();
        match self.sizes.get(&name) {
            Some(0) => return None,
            Some(size) => {
                config.ring = RingLimits {
                    min: config.ring.min.min(*size),
                    max: *size,
                    ..config.ring
                };
            }
            None => {}
        }
        Some(config)
    }
}

/// Puts a watch cache in front of stores as the settings say, and reports the caches in the
/// server's metrics.
#[derive(Debug)]
pub(crate) struct WatchCaching {
    settings: WatchCacheSettings,
    metrics: Arc<CacheMetrics>,
}

impl WatchCaching {
    pub(crate) fn new(settings: WatchCacheSettings, metrics: Arc<CacheMetrics>) -> Self {
        WatchCaching { settings, metrics }
    }

    /// `store` behind a watch cache, unless its resource is not cached.
    pub(crate) fn wrap<K: Object>(&self, store: Store<K>) -> Result<Store<K>, ServerError> {
        let resource = store.resource().clone();
        let Some(mut config) = self.settings.config_for(&resource) else {
            return Ok(store);
        };
        let stats = Arc::new(CacheStats::default());
        config.stats = stats.clone();
        let store = store
            .with_watch_cache(config)
            .map_err(|source| ServerError::WatchCache {
                resource: resource.to_string(),
                source,
            })?;
        self.metrics.track(resource, stats);
        Ok(store)
    }
}

/// The watch caches' counters and gauges, labelled by group and resource, refreshed from each
/// cache's [`CacheStats`] when the metrics are rendered.
#[derive(Debug)]
pub struct CacheMetrics {
    caches: Mutex<Vec<(GroupResource, Arc<CacheStats>)>>,
    counters: Vec<(IntCounterVec, Reading)>,
    gauges: Vec<(IntGaugeVec, Reading)>,
}

/// Reads one number of a cache's [`CacheStats`].
type Reading = fn(&CacheStats) -> u64;

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}

impl CacheMetrics {
    /// The metrics, registered in `registry`.
    ///
    /// # Errors
    ///
    /// When a metric cannot be registered (a programming error).
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let labels = ["group", "resource"];
        let counter = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &labels);
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &labels);
        let counters: Vec<(IntCounterVec, Reading)> = vec![
            (
                counter(
                    "apiserver_watch_cache_events_received_total",
                    "Events the watch cache received from storage.",
                )?,
                |s| load(&s.events_received),
            ),
            (
                counter(
                    "apiserver_watch_cache_events_dispatched_total",
                    "Events the watch cache handed to watchers (one per watcher per event).",
                )?,
                |s| load(&s.events_dispatched),
            ),
            (
                counter(
                    "apiserver_terminated_watchers_total",
                    "Watchers the watch cache closed because they did not keep up.",
                )?,
                |s| load(&s.watchers_closed_slow),
            ),
            (
                counter(
                    "apiserver_watch_cache_initializations_total",
                    "Times the watch cache listed storage (start and re-lists).",
                )?,
                |s| load(&s.initializations),
            ),
            (
                counter(
                    "apiserver_watch_cache_reads_from_cache_total",
                    "Gets and lists answered from the watch cache.",
                )?,
                |s| load(&s.reads_from_cache),
            ),
            (
                counter(
                    "apiserver_watch_cache_reads_from_storage_total",
                    "Gets and lists the watch cache passed to storage.",
                )?,
                |s| load(&s.reads_from_backend),
            ),
        ];
        let gauges: Vec<(IntGaugeVec, Reading)> = vec![
            (
                gauge(
                    "apiserver_watch_cache_objects",
                    "Objects the watch cache holds.",
                )?,
                |s| load(&s.objects),
            ),
            (
                gauge(
                    "apiserver_watch_cache_events",
                    "Events held in the watch cache's ring.",
                )?,
                |s| load(&s.events),
            ),
            (
                gauge(
                    "apiserver_watch_cache_watchers",
                    "Watchers registered with the watch cache.",
                )?,
                |s| load(&s.watchers),
            ),
        ];
        for (metric, _) in &counters {
            registry.register(Box::new(metric.clone()))?;
        }
        for (metric, _) in &gauges {
            registry.register(Box::new(metric.clone()))?;
        }
        Ok(CacheMetrics {
            caches: Mutex::new(Vec::new()),
            counters,
            gauges,
        })
    }

    fn track(&self, resource: GroupResource, stats: Arc<CacheStats>) {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        // A kind served again gets a new cache: the old one's numbers end with it.
        caches.retain(|(known, _)| known != &resource);
        caches.push((resource, stats));
    }

    /// Copies every cache's numbers into the metrics.
    pub fn refresh(&self) {
        let caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        for (resource, stats) in caches.iter() {
            let labels = [resource.group.as_str(), resource.resource.as_str()];
            for (metric, read) in &self.counters {
                let counter = metric.with_label_values(&labels);
                let delta = read(stats).saturating_sub(counter.get());
                counter.inc_by(delta);
            }
            for (metric, read) in &self.gauges {
                let value = i64::try_from(read(stats)).unwrap_or(i64::MAX);
                metric.with_label_values(&labels).set(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_kube_apiserver_spells_them() {
        let settings = WatchCacheSettings::parse(
            true,
            &["configmaps#1000,leases.coordination.k8s.io#0".to_owned()],
        )
        .expect("valid");
        let configmaps = settings
            .config_for(&GroupResource::new("", "configmaps"))
            .expect("cached");
        assert_eq!((configmaps.ring.min, configmaps.ring.max), (100, 1000));
        assert!(
            settings
                .config_for(&GroupResource::new("coordination.k8s.io", "leases"))
                .is_none()
        );
        assert!(
            settings
                .config_for(&GroupResource::new("", "secrets"))
                .is_some()
        );
        assert!(
            WatchCacheSettings::parse(false, &[])
                .expect("valid")
                .config_for(&GroupResource::new("", "secrets"))
                .is_none()
        );
        for bad in ["configmaps", "configmaps#x", "#3"] {
            assert!(
                WatchCacheSettings::parse(true, &[bad.to_owned()]).is_err(),
                "{bad}"
            );
        }
    }
}
