//! Latency recording, result rows and process/disk measurements.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies of one task (or of a whole measurement once merged), in nanoseconds.
#[derive(Debug)]
pub struct Recorder {
    histogram: Histogram<u64>,
    /// Operations that failed.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder (1 ns to 10 min, 3 significant digits).
    pub fn new() -> Self {
        // Constant, valid bounds: construction cannot fail.
        let histogram = match Histogram::new_with_bounds(1, 600_000_000_000, 3) {
            Ok(histogram) => histogram,
            Err(error) => unreachable!("constant histogram bounds rejected: {error}"),
        };
        Recorder {
            histogram,
            errors: 0,
            first_error: None,
        }
    }

    /// Records one successful operation that started at `start`.
    pub fn record_since(&mut self, start: Instant) {
        self.record(start.elapsed());
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.histogram.saturating_record(nanos);
    }

    /// Records `count` operations that all took `latency` (a batch).
    pub fn record_n(&mut self, latency: Duration, count: u64) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self.histogram.record_n(nanos, count);
    }

    /// Records one failed operation.
    pub fn error(&mut self, error: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            let message = error.to_string();
            tracing::warn!(%message, "operation failed");
            self.first_error = Some(message);
        }
    }

    /// Adds another recorder's operations to this one.
    pub fn merge(&mut self, other: Recorder) {
        let _ = self.histogram.add(&other.histogram);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Successful operations recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    fn quantile_us(&self, q: f64) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        self.histogram.value_at_quantile(q) as f64 / 1000.0
    }

    /// p50, p99 and max latency in microseconds.
    pub fn summary_us(&self) -> (f64, f64, f64) {
        let max = if self.histogram.is_empty() {
            0.0
        } else {
            self.histogram.max() as f64 / 1000.0
        };
        (self.quantile_us(0.5), self.quantile_us(0.99), max)
    }
}

/// One line of the results.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Backend or baseline name (`sqlite`, `etcd-raw`, `fsync`, ...).
    pub backend: String,
    /// `kv`, `object` or `raw`.
    pub level: String,
    /// Workload name.
    pub workload: String,
    /// Concurrent clients (for the batched SQLite baseline: inserts per transaction).
    pub concurrency: usize,
    /// Successful operations.
    pub ops: u64,
    /// Wall-clock seconds the operations took.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Largest latency, microseconds.
    pub max_us: f64,
    /// Failed operations.
    pub errors: u64,
    /// The first failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Ratio of `ops_per_sec` to the baseline row's.
    pub ratio: Option<f64>,
    /// The row the ratio was computed against (`backend/level/workload/concurrency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to: Option<String>,
    /// What else the workload found (watch checks, memory and file sizes, list sizes).
    pub note: String,
    /// The same facts as numbers, for machines.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Row {
    /// A row from a merged recorder over `elapsed`.
    pub fn new(
        backend: &str,
        level: &str,
        workload: &str,
        concurrency: usize,
        recorder: &Recorder,
        elapsed: Duration,
    ) -> Self {
        let seconds = elapsed.as_secs_f64();
        let ops = recorder.count();
        let (p50_us, p99_us, max_us) = recorder.summary_us();
        Row {
            backend: backend.to_owned(),
            level: level.to_owned(),
            workload: workload.to_owned(),
            concurrency,
            ops,
            seconds,
            ops_per_sec: if seconds > 0.0 {
                ops as f64 / seconds
            } else {
                0.0
            },
            p50_us,
            p99_us,
            max_us,
            errors: recorder.errors,
            first_error: recorder.first_error.clone(),
            ratio: None,
            ratio_to: None,
            note: String::new(),
            extra: serde_json::Map::new(),
        }
    }

    /// `backend/level/workload/cN`, how rows refer to each other.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/c{}",
            self.backend, self.level, self.workload, self.concurrency
        )
    }

    /// Adds a note (comma-separated) and its machine-readable value.
    pub fn add(&mut self, name: &str, value: impl Into<serde_json::Value>, note: String) {
        self.extra.insert(name.to_owned(), value.into());
        if !note.is_empty() {
            if !self.note.is_empty() {
                self.note.push_str(", ");
            }
            self.note.push_str(&note);
        }
    }
}

/// Nanoseconds since the first call in this process: the clock of watch-delivery stamps.
pub fn now_stamp() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// This process's resident set size and its peak (`VmRSS`, `VmHWM`), in bytes.
pub fn rss_bytes() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time this process has used so far, user plus system, in seconds (`/proc/self/stat`,
/// in Linux's fixed `USER_HZ` of 100 ticks per second).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis,
    // where field 3 (state) comes first; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// Total size of the files under `path` (apparent sizes, recursively).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `bytes` as `12.3 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// A small, fast pseudo-random generator (splitmix64) so tasks need no shared RNG.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `bound` (which must be positive).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_quantiles() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for i in 1..=100u64 {
            a.record(Duration::from_micros(i));
        }
        b.record(Duration::from_millis(10));
        b.error("boom");
        a.merge(b);
        assert_eq!(a.count(), 101);
        assert_eq!(a.errors, 1);
        let (p50, p99, max) = a.summary_us();
        assert!((49.0..=52.0).contains(&p50), "{p50}");
        assert!((99.0..=101.0).contains(&p99), "{p99}");
        assert!((9990.0..=10010.0).contains(&max), "{max}");
    }

    #[test]
    fn rss_is_readable() {
        let (rss, peak) = rss_bytes().unwrap();
        assert!(rss > 0 && peak >= rss);
    }

    #[test]
    fn rng_below_bound() {
        let mut rng = Rng::new(7);
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }
}
