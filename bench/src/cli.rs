//! Command-line flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What one measurement does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Workload {
    /// Creates of new keys (one key per operation).
    Create,
    /// Compare-and-swap updates on the current revision of `--keys` existing keys.
    Update,
    /// Reads at the latest revision of random keys among `--keys`.
    Get,
    /// Full paginated lists (`--page-size`) of `--list-total` keys at the latest revision.
    List,
    /// Full paginated lists of `--list-total` keys at an exact past revision (every key was
    /// updated once after it).
    ListPast,
    /// Reads and CAS updates mixed (`--mixed-write-percent` writes).
    Mixed,
    /// Creates while `--watchers` watchers follow the prefix: delivery latency and a check that
    /// every watcher saw every event in order.
    Watch,
    /// `--churn-updates` CAS updates spread over `--churn-keys` keys with periodic compaction;
    /// reports resident memory and the data directory's size afterwards.
    Churn,
    /// Writers create, update and delete while compaction runs and `--watchers` watchers
    /// restart at random (listing again on 410); every watcher's events are checked against
    /// the committed history: no gap, duplicate or reordering (fails the run otherwise).
    WatchCheck,
}

impl Workload {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Update => "update",
            Workload::Get => "get",
            Workload::List => "list",
            Workload::ListPast => "list-past",
            Workload::Mixed => "mixed",
            Workload::Watch => "watch",
            Workload::Churn => "churn",
            Workload::WatchCheck => "watch-check",
        }
    }
}

/// Which layer of the stack is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Level {
    /// The byte-level `storage_api::Interface`.
    Kv,
    /// The object-level `object_storage::Storage<Pod>` over the same backend (feature `object`).
    Object,
    /// The object level with `object_storage::WatchCache` in front (feature `object`).
    ObjectCache,
    /// ConfigMaps through an in-process `apiserver` over the same backend, driven over loopback
    /// HTTP/1.1, with its watch cache off (feature `http`).
    Http,
    /// The HTTP level with the API server's watch cache on, as it runs by default (feature
    /// `http`).
    HttpCache,
    /// `http-cache` with authentication and `--authorization-mode=RBAC` and 1,000
    /// RoleBindings in the namespace, driven as a user one of them binds to `edit`, and side
    /// by side, on the same server at the same time with as many clients, as a
    /// `system:masters` member (its row's level is `http-masters`).
    HttpRbac,
    /// `http-cache` with a CustomResourceDefinition's objects of the same shape as the
    /// ConfigMaps (`data.pad`), installed by the client: the cost of a custom kind.
    HttpCrd,
}

impl Level {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Level::Kv => "kv",
            Level::Object => "object",
            Level::ObjectCache => "object-cache",
            Level::Http => "http",
            Level::HttpCache => "http-cache",
            Level::HttpRbac => "http-rbac",
            Level::HttpCrd => "http-crd",
        }
    }

    /// Whether the level goes through a watch cache.
    pub fn cached(self) -> bool {
        matches!(
            self,
            Level::ObjectCache | Level::HttpCache | Level::HttpRbac | Level::HttpCrd
        )
    }
}

/// The raw-engine measurements that run next to the backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Baseline {
    /// A raw `etcd-client` transaction loop doing the etcd backend's create and update
    /// transactions against the same etcd.
    EtcdRaw,
    /// A raw `rusqlite` insert loop (WAL, `synchronous=FULL`): one transaction per insert, and
    /// batches of the largest `--concurrency` inserts per transaction (`sqlite-raw-batch`).
    SqliteRaw,
    /// 4 KiB write + fsync loop on a file in the data directory: the floor for a durable commit.
    Fsync,
    /// No baseline measurement.
    None,
}

fn default_backends() -> Vec<String> {
    storage::supported_schemes()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Measures the storage backends, the object layer above them and the raw engines beneath
/// them, side by side in one run. Every number is meant to be read as a ratio to another row of
/// the same run.
#[derive(Parser, Debug, Clone)]
#[command(name = "storage-bench", version)]
pub struct Args {
    /// Backends to measure, each on fresh storage (a new temporary directory, or a new etcd key
    /// prefix). Default: every backend compiled in.
    #[arg(long, value_delimiter = ',', default_values_t = default_backends())]
    pub backends: Vec<String>,

    /// Also measure this storage URL as is (repeatable). Its measurements are isolated by key
    /// prefix only; the row is named `url1`, `url2`, ...
    #[arg(long = "url")]
    pub urls: Vec<String>,

    /// Workloads to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create,update,get,list,mixed,watch"
    )]
    pub workloads: Vec<Workload>,

    /// Levels to measure: the byte-level Interface (`kv`), the object-level Storage<Pod>
    /// (`object`, needs feature `object`) and ConfigMaps through an in-process API server over
    /// loopback HTTP (`http`, needs feature `http`; not in the default).
    #[arg(long, value_delimiter = ',', default_values_t = default_levels())]
    pub levels: Vec<LevelArg>,

    /// Concurrent clients (tokio tasks) per measurement; each value is its own row.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub concurrency: Vec<usize>,

    /// Size of each value in bytes (the padding annotation at the object level).
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,

    /// Keys preloaded for update, get and mixed.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,

    /// How long each timed measurement runs (`500ms`, `5s`, `1m`).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub duration: Duration,

    /// Page size of list workloads (0: one unpaginated range).
    #[arg(long, default_value_t = 500)]
    pub page_size: u64,

    /// Keys preloaded for list workloads (one operation lists all of them).
    #[arg(long, default_value_t = 1000)]
    pub list_total: usize,

    /// Watchers of the watch workload.
    #[arg(long, default_value_t = 16)]
    pub watchers: usize,

    /// Total writes per second during the watch workload, spread over the writers (0: as fast
    /// as the store goes; watchers that cannot keep up are then ended by the store).
    #[arg(long, default_value_t = 2000)]
    pub watch_rate: u64,

    /// How the writers of the watch workloads place their writes: `aligned` (all writers at
    /// once, in bursts as large as `--concurrency`) or `interleaved` (one every 1/rate).
    #[arg(long, value_enum, default_value_t = crate::pacing::Pacing::Aligned)]
    pub pacing: crate::pacing::Pacing,

    /// Percentage of writes in the mixed workload.
    #[arg(long, default_value_t = 20)]
    pub mixed_write_percent: u32,

    /// Updates the churn workload makes in total.
    #[arg(long, default_value_t = 1_000_000)]
    pub churn_updates: u64,

    /// Keys the churn workload spreads its updates over.
    #[arg(long, default_value_t = 10_000)]
    pub churn_keys: usize,

    /// The churn workload compacts every this many writes ...
    #[arg(long, default_value_t = 10_000)]
    pub churn_compact_every: u64,

    /// ... keeping this many revisions of history.
    #[arg(long, default_value_t = 1000)]
    pub churn_keep: u64,

    /// Raw-engine baselines to measure in the same run.
    #[arg(
        long = "baselines",
        value_delimiter = ',',
        default_value = "etcd-raw,sqlite-raw,fsync"
    )]
    pub baselines: Vec<Baseline>,

    /// Measure each raw etcd baseline right after the backend rows it is compared with instead
    /// of right before, to see whether running second on a growing etcd biases the ratio.
    #[arg(long)]
    pub raw_after: bool,

    /// The row every ratio is computed against: a backend or baseline name (`etcd-raw`,
    /// `sqlite-raw`, `sqlite-raw-batch`, `fsync`, `memory`, `sqlite`, `etcd`, `sled`), or `kv` for
    /// "the same backend at the byte level" (shows the object layer's cost). The matching row has
    /// the same workload and concurrency, else the same workload, else is the baseline's only row.
    #[arg(long, default_value = "etcd-raw")]
    pub baseline: String,

    /// Use this etcd (`HOST:PORT[,HOST:PORT...]`) instead of starting a local one. Every
    /// measurement writes under its own `/storage-bench-...` prefix, which is left behind.
    #[arg(long)]
    pub etcd_endpoints: Option<String>,

    /// Where fresh stores, the raw SQLite baseline and the fsync file live (default: the system
    /// temporary directory). Pick the disk you want to measure.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// URL options for every fresh SQLite store (`synchronous=normal&max_batch=256`).
    #[arg(long, default_value = "")]
    pub sqlite_options: String,

    /// URL options for every fresh sled store.
    #[arg(long, default_value = "")]
    pub sled_options: String,

    /// Set TCP_NODELAY on the connections the in-process API server accepts (`--levels http`):
    /// on by default, as the `apiserver` binary serves; `--http-nodelay false` measures without
    /// it. The client always sets it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub http_nodelay: bool,

    /// Drive `apiserver`s already running instead of one started in process over the fresh
    /// store (which is then unused): `http=URL` for level `http` (start it with
    /// `--watch-cache=false`) and `http-cache=URL` for level `http-cache`, comma separated, or
    /// one URL for both. The client and each server get a process and a descriptor limit of
    /// their own, as 10,000 watch connections need.
    #[arg(long, value_delimiter = ',')]
    pub http_server: Vec<String>,

    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also write the JSON results to this file.
    #[arg(long)]
    pub json_file: Option<PathBuf>,

    /// Worker threads of the tokio runtime (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Args {
    /// The running API server `--http-server` names for `level`, if any.
    pub fn http_server_for(&self, level: Level) -> Option<String> {
        self.http_server
            .iter()
            .find_map(|entry| match entry.split_once('=') {
                Some((name, url)) if name == level.name() => Some(url.to_owned()),
                Some(_) => None,
                None => Some(entry.clone()),
            })
    }
}

/// `--levels` values (a wrapper so the default can be printed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelArg(pub Level);

impl std::fmt::Display for LevelArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl std::str::FromStr for LevelArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::from_str(s, true).map(LevelArg)
    }
}

fn default_levels() -> Vec<LevelArg> {
    if cfg!(feature = "object") {
        vec![LevelArg(Level::Kv), LevelArg(Level::Object)]
    } else {
        vec![LevelArg(Level::Kv)]
    }
}

/// Parses `500ms`, `5s`, `2m` or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("{value:?} is not a duration (like 500ms, 5s, 2m)");
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('m') {
        (n, 60.0)
    } else {
        (value, 1.0)
    };
    let number: f64 = number.trim().parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(number * scale).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn defaults_parse() {
        let args = Args::try_parse_from(["storage-bench"]).unwrap();
        assert_eq!(args.concurrency, vec![1, 64]);
        assert_eq!(args.workloads.len(), 6);
        let args = Args::try_parse_from([
            "storage-bench",
            "--workloads",
            "list-past,churn",
            "--levels",
            "kv",
        ])
        .unwrap();
        assert_eq!(args.workloads, vec![Workload::ListPast, Workload::Churn]);
        assert_eq!(args.levels, vec![LevelArg(Level::Kv)]);
        let args = Args::try_parse_from(["storage-bench", "--levels", "kv,http"]).unwrap();
        assert_eq!(
            args.levels,
            vec![LevelArg(Level::Kv), LevelArg(Level::Http)]
        );
    }
}
