//! `storage-soak`: mixed HTTP load against an API server process on SQLite or sled with
//! compaction on, sampling the server's resident memory, open descriptors and database and
//! WAL sizes every interval; it plots them (SVG), writes the samples (CSV, JSON) and checks
//! that they stay bounded. See `bench/README.md`, "Soak".

mod load;
mod plot;
mod sample;
mod server;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::load::{Counters, Http, LoadShape, Tracker};
use crate::sample::StoreFiles;
use crate::server::ServerProcess;

/// Soak an API server process under mixed HTTP load and check its resources stay bounded.
#[derive(Debug, Parser)]
#[command(name = "storage-soak", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the soak against each backend (side by side, each with its own server process).
    Run(RunArgs),
    /// Run the API server itself (`apiserver` flags follow); the soak starts its servers so.
    #[command(hide = true)]
    Serve {
        /// The `apiserver` flags.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// A backend the soak runs on: the durable ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Sled,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Sled => "sled",
        }
    }
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Backends to soak, comma separated; they run at the same time.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,sled")]
    backends: Vec<Backend>,
    /// How long the load runs.
    #[arg(long, default_value = "30m", value_parser = apiserver::cli::parse_duration)]
    duration: Duration,
    /// How often resources are sampled.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    sample_every: Duration,
    /// Samples before this are warm-up, outside the bounds checked (default: a third of
    /// --duration, so 10 of 30 minutes).
    #[arg(long, value_parser = apiserver::cli::parse_duration)]
    warmup: Option<Duration>,
    /// Requests started per second per backend: 35% updates, 15% creates, 15% deletes of
    /// ConfigMaps, 10% lists, 25% Event creates.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    rate: u64,
    /// ConfigMap names the writers cycle through.
    #[arg(long, default_value_t = 2000)]
    objects: usize,
    /// Bytes of each ConfigMap's data value.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Watchers of the namespace's ConfigMaps, each resuming when its watch times out.
    #[arg(long, default_value_t = 8)]
    watchers: usize,
    /// The server's --event-ttl: events expire this long after they are written.
    #[arg(long, default_value = "60s", value_parser = apiserver::cli::parse_duration)]
    event_ttl: Duration,
    /// History the store keeps before compacting it (SQLite's compaction_window, sled's
    /// history).
    #[arg(long, default_value = "5m", value_parser = apiserver::cli::parse_duration)]
    history: Duration,
    /// Where the plots, CSV and JSON go.
    #[arg(long, default_value = "soak-results")]
    out: PathBuf,
    /// Where the stores live (default: a temporary directory, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// A duration flag that must not be zero.
fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = apiserver::cli::parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(duration)
}

/// One sample of one backend.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub seconds: f64,
    /// The server's resident set size.
    pub rss_bytes: u64,
    /// The server's open file descriptors (files, sockets, pipes).
    pub open_fds: u64,
    /// The database file (all of sled's directory).
    pub database_bytes: u64,
    /// SQLite's WAL and its index.
    pub wal_bytes: u64,
    /// Bytes of the objects that exist now, as the tracker saw them written.
    pub live_bytes: u64,
    /// Bytes of superseded versions and tombstones newer than the compaction point.
    pub history_bytes: u64,
    /// Objects that exist now (ConfigMaps and Events).
    pub live_objects: u64,
    /// The oldest revision still readable.
    pub compaction_point: u64,
    /// The newest revision written.
    pub latest_revision: u64,
    /// Requests answered 2xx so far.
    pub requests_ok: u64,
    /// Requests answered 404/409 as the key space makes them.
    pub requests_refused: u64,
    /// Requests answered 429.
    pub requests_throttled: u64,
    /// Requests, and the watchers' and tracker's lists and watches, that failed otherwise.
    pub requests_failed: u64,
    /// Requests the load did not start because 64 were still in flight (the server fell
    /// behind the rate).
    pub requests_skipped: u64,
    /// Events the load's watchers received so far.
    pub watch_events: u64,
    /// Events that expired through their TTL so far.
    pub expired_events: u64,
    /// Times the tracker had to list again after its watch expired (history it missed is then
    /// unaccounted); its first lists do not count.
    pub tracker_resets: u64,
}

impl Sample {
    /// Database plus WAL.
    pub fn disk_bytes(&self) -> u64 {
        self.database_bytes + self.wal_bytes
    }

    /// The most disk the bound allows: twice the live data plus the retained history.
    pub fn disk_bound(&self) -> u64 {
        2 * (self.live_bytes + self.history_bytes)
    }
}

/// The bounds, judged over the samples after warm-up.
#[derive(Clone, Debug, Serialize)]
struct Verdict {
    /// Resident memory's growth over the window (see [`growth`]).
    rss_growth: f64,
    /// Open descriptors likewise.
    fd_growth: f64,
    /// The largest (database + WAL) / (live + history) of any sample in the window.
    worst_disk_ratio: f64,
    /// Times the compaction point moved within the window.
    compactions_seen: u64,
    problems: Vec<String>,
}

/// How much `value` grew over `window`: the lowest value of its second half over the lowest of
/// its first half, less one. A leak raises the floor; connections, watches and buffers that
/// come and go only make peaks, which the soak's own clients cause.
fn growth(window: &[Sample], value: impl Fn(&Sample) -> u64) -> f64 {
    let values: Vec<u64> = window.iter().map(value).collect();
    let (first, second) = values.split_at(values.len() / 2);
    match (first.iter().min(), second.iter().min()) {
        (Some(&start), Some(&end)) if start > 0 => end as f64 / start as f64 - 1.0,
        _ => 0.0,
    }
}

fn judge(samples: &[Sample], warmup: Duration, first_failures: &[String]) -> Verdict {
    let window: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.seconds >= warmup.as_secs_f64())
        .collect();
    let mut problems = Vec::new();
    if window.len() < 3 {
        problems.push(format!(
            "only {} samples after warm-up; run longer",
            window.len()
        ));
    }
    let rss_growth = growth(&window, |s| s.rss_bytes);
    let fd_growth = growth(&window, |s| s.open_fds);
    let worst_disk_ratio = window
        .iter()
        .map(|s| s.disk_bytes() as f64 / (s.live_bytes + s.history_bytes).max(1) as f64)
        .fold(0.0, f64::max);
    let compactions_seen = window
        .windows(2)
        .filter(|pair| pair[1].compaction_point > pair[0].compaction_point)
        .count() as u64;
    if rss_growth >= 0.10 {
        problems.push(format!(
            "resident memory grew {:.1}% after warm-up (bound: under 10%)",
            rss_growth * 100.0
        ));
    }
    if fd_growth >= 0.10 {
        problems.push(format!(
            "open descriptors grew {:.1}% after warm-up (bound: under 10%)",
            fd_growth * 100.0
        ));
    }
    if worst_disk_ratio > 2.0 {
        problems.push(format!("database plus WAL reached {worst_disk_ratio:.2}x live data plus retained history (bound: 2x)"));
    }
    if compactions_seen == 0 {
        problems.push("the compaction point never moved after warm-up".to_owned());
    }
    let last = samples.last().copied().unwrap_or_default();
    if last.expired_events == 0 {
        problems.push("no event expired through its TTL".to_owned());
    }
    let answered = last.requests_ok + last.requests_refused + last.requests_throttled;
    if last.requests_skipped * 100 > answered {
        problems.push(format!(
            "the server fell behind the load: {} requests not started for 64 in flight",
            last.requests_skipped
        ));
    }
    // Failures as of the last sample: requests still in flight when the server is stopped
    // at the end fail, and are not the server's doing.
    if last.requests_failed > 0 {
        problems.push(format!(
            "{} requests failed; the first: {}",
            last.requests_failed,
            first_failures.join("; ")
        ));
    }
    Verdict {
        rss_growth,
        fd_growth,
        worst_disk_ratio,
        compactions_seen,
        problems,
    }
}

/// Everything one backend's soak reports.
#[derive(Debug, Serialize)]
struct Report {
    backend: &'static str,
    duration_seconds: f64,
    warmup_seconds: f64,
    rate: u64,
    verdict: Verdict,
    samples: Vec<Sample>,
}

fn storage_url(backend: Backend, dir: &Path, history: Duration) -> String {
    let history = history.as_secs().max(1);
    match backend {
        Backend::Sqlite => format!(
            "sqlite://{}?compaction_window={history}s",
            dir.join("registry.db").display()
        ),
        // sled's compactor runs every minute by default; a short history wants it sooner.
        Backend::Sled => format!(
            "sled://{}?history={history}s&compact_interval={}s",
            dir.join("sled").display(),
            (history / 5).clamp(1, 60)
        ),
    }
}

fn store_files(backend: Backend, dir: &Path) -> StoreFiles {
    match backend {
        Backend::Sqlite => StoreFiles::Sqlite(dir.join("registry.db")),
        Backend::Sled => StoreFiles::Sled(dir.join("sled")),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn soak(backend: Backend, args: &RunArgs, dir: PathBuf) -> Result<Report> {
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let extra = vec![format!("--event-ttl={}s", args.event_ttl.as_secs().max(1))];
    let mut server = ServerProcess::start(&dir, &storage_url(backend, &dir, args.history), &extra)?;
    let pid = server.pid();
    let files = store_files(backend, &dir);
    let http = Http::new(server.base.clone());
    load::create_namespace(&http).await?;

    let counters = Arc::new(Counters::default());
    let tracker = Tracker::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for resource in ["configmaps", "events"] {
        tasks.spawn(
            tracker
                .clone()
                .run(http.clone(), resource, counters.clone(), stopped.clone()),
        );
    }
    for _ in 0..args.watchers {
        tasks.spawn(load::run_watcher(
            http.clone(),
            counters.clone(),
            stopped.clone(),
        ));
    }
    let shape = LoadShape {
        rate: args.rate,
        objects: args.objects,
        value_size: args.value_size,
    };
    tasks.spawn(load::run_requests(
        http.clone(),
        shape,
        counters.clone(),
        stopped.clone(),
    ));

    let started = Instant::now();
    let mut samples = Vec::new();
    // Revision 0 means "any"; the oldest revision a store can hold is 1.
    let mut point = 1;
    let mut ticker = tokio::time::interval(args.sample_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < args.duration {
        ticker.tick().await;
        if !server.running() {
            bail!("{}: the server process exited", backend.name());
        }
        let latest = tracker.account(point).latest;
        // A probe that fails keeps the last point (counted as a failure) rather than ending
        // the run.
        match load::compaction_point(&http, point, latest.max(point)).await {
            Ok(found) => point = found,
            Err(error) => counters.failure(format!("compaction probe: {error:#}")),
        }
        let accounting = tracker.account(point);
        let disk = files.measure()?;
        let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let sample = Sample {
            seconds: started.elapsed().as_secs_f64(),
            rss_bytes: sample::rss_bytes(pid)?,
            open_fds: sample::open_fds(pid)?,
            database_bytes: disk.database,
            wal_bytes: disk.wal,
            live_bytes: accounting.live_bytes,
            history_bytes: accounting.history_bytes,
            live_objects: accounting.live_objects,
            compaction_point: point,
            latest_revision: accounting.latest,
            requests_ok: count(&counters.ok),
            requests_refused: count(&counters.refused),
            requests_throttled: count(&counters.throttled),
            requests_failed: count(&counters.failed),
            requests_skipped: count(&counters.skipped),
            watch_events: count(&counters.watch_events),
            expired_events: accounting.expired_events,
            tracker_resets: accounting.resets,
        };
        println!(
            "[{:>6} {:>5.0}s] rss {:>6.1} MiB  fds {:>4}  db {:>7.1} MiB  wal {:>6.1} MiB  live {:>6.1} MiB  history {:>7.1} MiB  revisions {}..{}  ok {}  failed {}",
            backend.name(),
            sample.seconds,
            mib(sample.rss_bytes),
            sample.open_fds,
            mib(sample.database_bytes),
            mib(sample.wal_bytes),
            mib(sample.live_bytes),
            mib(sample.history_bytes),
            sample.compaction_point,
            sample.latest_revision,
            sample.requests_ok,
            sample.requests_failed,
        );
        samples.push(sample);
    }
    let first_failures = counters
        .failures
        .lock()
        .map(|failures| failures.clone())
        .unwrap_or_default();
    let _ = stop.send(true);
    tasks.abort_all();
    server.stop();
    let warmup = args.warmup.unwrap_or(args.duration / 3);
    let verdict = judge(&samples, warmup, &first_failures);
    Ok(Report {
        backend: backend.name(),
        duration_seconds: args.duration.as_secs_f64(),
        warmup_seconds: warmup.as_secs_f64(),
        rate: args.rate,
        verdict,
        samples,
    })
}

fn write_csv(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut text = String::from(
        "seconds,rss_bytes,open_fds,database_bytes,wal_bytes,live_bytes,history_bytes,live_objects,compaction_point,latest_revision,requests_ok,requests_refused,requests_throttled,requests_failed,requests_skipped,watch_events,expired_events,tracker_resets\n",
    );
    for s in samples {
        text.push_str(&format!(
            "{:.1},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            s.seconds,
            s.rss_bytes,
            s.open_fds,
            s.database_bytes,
            s.wal_bytes,
            s.live_bytes,
            s.history_bytes,
            s.live_objects,
            s.compaction_point,
            s.latest_revision,
            s.requests_ok,
            s.requests_refused,
            s.requests_throttled,
            s.requests_failed,
            s.requests_skipped,
            s.watch_events,
            s.expired_events,
            s.tracker_resets,
        ));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn write_outputs(out: &Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stem = out.join(format!("soak-{}", report.backend));
    write_csv(&stem.with_extension("csv"), &report.samples)?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(stem.with_extension("json"), json).context("writing the JSON report")?;
    plot::draw(
        &stem.with_extension("svg"),
        report.backend,
        &report.samples,
        report.warmup_seconds,
    )
}

async fn run(args: RunArgs) -> Result<bool> {
    let temporary;
    let root = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::tempdir().context("creating a temporary data directory")?;
            temporary.path().to_owned()
        }
    };
    let mut backends = args.backends.clone();
    backends.sort_by_key(|backend| backend.name());
    backends.dedup();
    let runs = backends
        .iter()
        .map(|&backend| soak(backend, &args, root.join(backend.name())));
    let reports = futures::future::join_all(runs).await;
    let mut passed = true;
    let mut errors = Vec::new();
    for report in reports {
        // A backend whose run broke off does not keep the others' results from being written.
        let report = match report {
            Ok(report) => report,
            Err(error) => {
                errors.push(format!("{error:#}"));
                continue;
            }
        };
        write_outputs(&args.out, &report)?;
        let v = &report.verdict;
        let last = report.samples.last().copied().unwrap_or_default();
        println!(
            "{}: {} requests ok, {} refused as expected, {} throttled, {} failed; {} watch events; {} events expired; \
             rss growth {:+.1}%, fd growth {:+.1}%, worst disk/(live+history) {:.2}x, {} compactions after warm-up",
            report.backend,
            last.requests_ok,
            last.requests_refused,
            last.requests_throttled,
            last.requests_failed,
            last.watch_events,
            last.expired_events,
            v.rss_growth * 100.0,
            v.fd_growth * 100.0,
            v.worst_disk_ratio,
            v.compactions_seen,
        );
        for problem in &v.problems {
            println!("{}: UNBOUNDED: {problem}", report.backend);
        }
        passed &= v.problems.is_empty();
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    println!(
        "{} (plots and samples in {})",
        if passed { "PASS" } else { "FAIL" },
        args.out.display()
    );
    Ok(passed)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { args } => {
            apiserver::cli::main(std::iter::once("apiserver".to_owned()).chain(args))
        }
        Command::Run(args) => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: starting the runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(args)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
