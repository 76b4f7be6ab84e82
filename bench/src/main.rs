//! `storage-bench`: measures every storage backend, the object layer above them and the raw
//! engines beneath them, side by side in one run, so that results can be read as ratios that
//! hold on a noisy machine. See `bench/README.md`.

mod baseline;
mod cli;
mod client;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "object")]
mod object;
mod pacing;
mod report;
mod stats;
mod targets;
mod watch_check;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::baseline::RawKeys;
use crate::cli::{Args, Baseline, Level, Workload};
use crate::client::KvClient;
use crate::report::KeyRatio;
use crate::stats::{Row, cpu_seconds, dir_size, human_bytes, rss_bytes};
use crate::targets::{Env, Kind, Target};
use crate::workloads::{Measured, Params, Progress};

/// One measurement of the run, in the order they run.
#[derive(Clone, Debug)]
enum Plan {
    /// The fsync floor of the data directory.
    Fsync,
    /// Raw rusqlite inserts, `batch` per transaction.
    SqliteRaw { batch: usize, keys: RawKeys },
    /// Raw rusqlite one-insert transactions on a writer thread fed by one tokio task.
    SqliteRawThread,
    /// The SQLite backend's creates driven from one thread without tokio.
    SqliteDirect { concurrency: usize },
    /// The raw etcd-client transaction loop.
    EtcdRaw {
        workload: Workload,
        concurrency: usize,
    },
    /// A backend at a level.
    Backend {
        target: usize,
        level: Level,
        workload: Workload,
        concurrency: usize,
    },
}

impl Plan {
    fn label(&self, targets: &[Target]) -> String {
        match self {
            Plan::Fsync => "fsync floor".to_owned(),
            Plan::SqliteRaw { batch, keys } => {
                format!("sqlite-raw, {batch} insert(s)/txn, {keys:?}")
            }
            Plan::SqliteRawThread => "sqlite-raw-thread, 1 insert(s)/txn".to_owned(),
            Plan::SqliteDirect { concurrency } => format!("sqlite-direct create c{concurrency}"),
            Plan::EtcdRaw {
                workload,
                concurrency,
            } => format!("etcd-raw {} c{concurrency}", workload.name()),
            Plan::Backend {
                target,
                level,
                workload,
                concurrency,
            } => format!(
                "{} {} {} c{concurrency}",
                targets.get(*target).map(|t| t.name.as_str()).unwrap_or("?"),
                level.name(),
                workload.name()
            ),
        }
    }
}

/// The measurements in order: each raw baseline right next to the backend rows it is compared
/// with, so that both see the same machine conditions.
fn plans(args: &Args, targets: &[Target], etcd_available: bool) -> Vec<Plan> {
    let mut levels: Vec<Level> = args.levels.iter().map(|l| l.0).collect();
    levels.dedup();
    let mut workloads = args.workloads.clone();
    workloads.dedup();
    let mut concurrency: Vec<usize> = args.concurrency.iter().map(|c| (*c).max(1)).collect();
    concurrency.dedup();
    let max_c = concurrency.iter().copied().max().unwrap_or(1);
    let wants = |b: Baseline| args.baselines.contains(&b);
    let has_create = workloads.contains(&Workload::Create);
    let raw_etcd_workloads: Vec<Workload> = workloads
        .iter()
        .copied()
        .filter(|w| matches!(w, Workload::Create | Workload::Update))
        .collect();
    let sqlite_target = targets.iter().position(|t| t.kind == Kind::Sqlite);
    let etcd_target = targets.iter().position(|t| t.kind == Kind::Etcd);

    let mut plans = Vec::new();
    if wants(Baseline::Fsync) {
        plans.push(Plan::Fsync);
    }
    let sqlite_raw = |plans: &mut Vec<Plan>| {
        plans.push(Plan::SqliteRaw {
            batch: 1,
            keys: RawKeys::Sequential,
        });
        plans.push(Plan::SqliteRawThread);
        if max_c > 1 {
            for keys in [RawKeys::Sequential, RawKeys::Interleaved] {
                plans.push(Plan::SqliteRaw { batch: max_c, keys });
            }
        }
    };
    let sqlite_raw_wanted = wants(Baseline::SqliteRaw) && has_create && levels.contains(&Level::Kv);
    if sqlite_raw_wanted && sqlite_target.is_none() {
        sqlite_raw(&mut plans);
    }
    let etcd_raw_wanted = wants(Baseline::EtcdRaw) && etcd_available;
    if etcd_raw_wanted && (etcd_target.is_none() || !levels.contains(&Level::Kv)) {
        for &workload in &raw_etcd_workloads {
            for &c in &concurrency {
                plans.push(Plan::EtcdRaw {
                    workload,
                    concurrency: c,
                });
            }
        }
    }
    for t in 0..targets.len() {
        for &level in &levels {
            for &workload in &workloads {
                if sqlite_raw_wanted
                    && Some(t) == sqlite_target
                    && level == Level::Kv
                    && workload == Workload::Create
                {
                    sqlite_raw(&mut plans);
                    plans.push(Plan::SqliteDirect { concurrency: 1 });
                    if max_c > 1 {
                        plans.push(Plan::SqliteDirect { concurrency: max_c });
                    }
                }
                for &c in &concurrency {
                    let raw = (etcd_raw_wanted
                        && Some(t) == etcd_target
                        && level == Level::Kv
                        && raw_etcd_workloads.contains(&workload))
                    .then_some(Plan::EtcdRaw {
                        workload,
                        concurrency: c,
                    });
                    let backend = Plan::Backend {
                        target: t,
                        level,
                        workload,
                        concurrency: c,
                    };
                    if args.raw_after {
                        plans.push(backend);
                        plans.extend(raw);
                    } else {
                        plans.extend(raw);
                        plans.push(backend);
                    }
                }
            }
        }
    }
    plans
}

/// The JSON document of a run.
#[derive(Serialize)]
struct Output<'a> {
    tool: &'static str,
    version: &'static str,
    started_unix: u64,
    seconds: f64,
    command: Vec<String>,
    machine: Machine,
    settings: Settings,
    baseline: &'a str,
    rows: &'a [Row],
    key_ratios: &'a [KeyRatio],
}

#[derive(Serialize)]
struct Machine {
    cores: usize,
    cpu: String,
    kernel: String,
    data_dir: String,
    etcd: String,
}

#[derive(Serialize)]
struct Settings {
    duration_s: f64,
    value_size: usize,
    keys: usize,
    page_size: u64,
    list_total: usize,
    watchers: usize,
    watch_rate: u64,
    pacing: pacing::Pacing,
    mixed_write_percent: u32,
    churn_updates: u64,
    churn_keys: usize,
    churn_compact_every: u64,
    churn_keep: u64,
    sqlite_options: String,
    sled_options: String,
    http_nodelay: bool,
}

fn machine(data_dir: &std::path::Path, etcd: String) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        cpu,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        data_dir: data_dir.display().to_string(),
        etcd,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("storage-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A running (or borrowed) etcd for the run.
#[derive(Default)]
struct EtcdSetup {
    endpoints: Vec<String>,
    description: String,
    #[cfg(feature = "etcd")]
    _local: Option<backend_etcd::testing::EtcdCluster>,
}

fn etcd_setup(args: &Args, needed: bool) -> Result<EtcdSetup> {
    if let Some(endpoints) = &args.etcd_endpoints {
        let endpoints: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        return Ok(EtcdSetup {
            description: format!("existing etcd at {}", endpoints.join(",")),
            endpoints,
            ..EtcdSetup::default()
        });
    }
    if !needed {
        return Ok(EtcdSetup::default());
    }
    #[cfg(feature = "etcd")]
    {
        eprintln!("starting a local etcd (etcd from PATH, temporary data dir, loopback ports)...");
        let cluster = backend_etcd::testing::EtcdCluster::start_single()
            .context("starting a local etcd (or pass --etcd-endpoints HOST:PORT)")?;
        let version = std::process::Command::new("etcd")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_default();
        let endpoints = cluster.endpoints();
        Ok(EtcdSetup {
            description: format!(
                "local single-member etcd started by the tool at {} ({version})",
                endpoints.join(",")
            ),
            endpoints,
            _local: Some(cluster),
        })
    }
    #[cfg(not(feature = "etcd"))]
    {
        bail!("etcd was requested but the bench was built without feature `etcd`")
    }
}

fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let wants = |levels: &[Level]| args.levels.iter().any(|l| levels.contains(&l.0));
    if wants(&[Level::Object, Level::ObjectCache]) && !cfg!(feature = "object") {
        bail!("--levels object and object-cache need the bench built with feature `object`");
    }
    if wants(&[
        Level::Http,
        Level::HttpCache,
        Level::HttpRbac,
        Level::HttpCrd,
    ]) && !cfg!(feature = "http")
    {
        bail!(
            "--levels http, http-cache, http-rbac and http-crd need the bench built with feature `http`"
        );
    }
    if args.concurrency.is_empty() {
        bail!("--concurrency needs at least one value");
    }
    let targets = Target::from_args(&args.backends, &args.urls)?;
    let needs_etcd = targets.iter().any(|t| t.kind == Kind::Etcd);
    let etcd = etcd_setup(&args, needs_etcd)?;
    let plans = plans(&args, &targets, !etcd.endpoints.is_empty());
    let data_dir = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let env = Env {
        data_dir: data_dir.clone(),
        run_id: format!("{started_unix:x}-{:x}", std::process::id()),
        etcd_endpoints: etcd.endpoints.clone(),
        sqlite_options: args.sqlite_options.clone(),
        sled_options: args.sled_options.clone(),
    };
    let params = Params {
        duration: args.duration,
        keys: args.keys,
        page_size: args.page_size,
        list_total: args.list_total,
        watchers: args.watchers,
        watch_rate: args.watch_rate,
        pacing: args.pacing,
        mixed_write_percent: args.mixed_write_percent,
        churn_updates: args.churn_updates,
        churn_keys: args.churn_keys,
        churn_compact_every: args.churn_compact_every,
        churn_keep: args.churn_keep,
    };

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build().context("starting the tokio runtime")?;

    let bar = ProgressBar::new(plans.len() as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {prefix} {wide_msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut rows = Vec::new();
    for (n, plan) in plans.iter().enumerate() {
        let label = plan.label(&targets);
        bar.set_prefix(label.clone());
        bar.set_message("");
        let progress: Progress = {
            let bar = bar.clone();
            Arc::new(move |message: String| bar.set_message(message))
        };
        let measured = runtime
            .block_on(execute(plan, &targets, &env, &args, &params, n, progress))
            .unwrap_or_else(|error| {
                tracing::warn!(%label, error = %format!("{error:#}"), "measurement failed");
                (failed_row(plan, &targets, &error), None)
            });
        // A side-by-side measurement reports its companion row too (`http-rbac`).
        for row in std::iter::once(measured.0).chain(measured.1) {
            bar.println(format!(
                "{label}: {:.0} ops/s, p50 {}, p99 {}{}",
                row.ops_per_sec,
                report::latency(row.p50_us),
                report::latency(row.p99_us),
                if row.errors > 0 {
                    format!(
                        ", {} errors: {}",
                        row.errors,
                        row.first_error.as_deref().unwrap_or("")
                    )
                } else {
                    String::new()
                }
            ));
            rows.push(row);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    runtime.shutdown_timeout(Duration::from_secs(5));
    // Stops the local etcd, if the tool started one.
    let etcd_description = etcd.description.clone();
    drop(etcd);

    report::compute_ratios(&mut rows, &args.baseline);
    let ratios = report::key_ratios(&rows);
    let output = Output {
        tool: "storage-bench",
        version: env!("CARGO_PKG_VERSION"),
        started_unix,
        seconds: started.elapsed().as_secs_f64(),
        command: std::env::args().collect(),
        machine: machine(&data_dir, etcd_description),
        settings: Settings {
            duration_s: args.duration.as_secs_f64(),
            value_size: args.value_size,
            keys: args.keys,
            page_size: args.page_size,
            list_total: args.list_total,
            watchers: args.watchers,
            watch_rate: args.watch_rate,
            pacing: args.pacing,
            mixed_write_percent: args.mixed_write_percent,
            churn_updates: args.churn_updates,
            churn_keys: args.churn_keys,
            churn_compact_every: args.churn_compact_every,
            churn_keep: args.churn_keep,
            sqlite_options: args.sqlite_options.clone(),
            sled_options: args.sled_options.clone(),
            http_nodelay: args.http_nodelay,
        },
        baseline: &args.baseline,
        rows: &rows,
        key_ratios: &ratios,
    };
    let json = serde_json::to_string_pretty(&output)?;
    if let Some(path) = &args.json_file {
        write_file(path, &json)?;
    }
    if args.json {
        println!("{json}");
    } else {
        println!(
            "storage-bench: {} measurements in {:.0}s on {} cores ({}); data dir {}; etcd: {}",
            rows.len(),
            output.seconds,
            output.machine.cores,
            output.machine.cpu,
            output.machine.data_dir,
            if output.machine.etcd.is_empty() {
                "not used"
            } else {
                &output.machine.etcd
            }
        );
        print!("{}", report::table(&rows, &args.baseline, &ratios));
    }
    Ok(())
}

fn write_file(path: &PathBuf, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// A row for a measurement that could not run at all.
fn failed_row(plan: &Plan, targets: &[Target], error: &anyhow::Error) -> Row {
    let (backend, level, workload, concurrency) = match plan {
        Plan::Fsync => ("fsync".to_owned(), "raw", "fsync", 1),
        Plan::SqliteRaw { batch, keys } => (
            raw_sqlite_name(*batch, *keys).to_owned(),
            "raw",
            "create",
            *batch,
        ),
        Plan::SqliteRawThread => ("sqlite-raw-thread".to_owned(), "raw", "create", 1),
        Plan::SqliteDirect { concurrency } => {
            ("sqlite-direct".to_owned(), "kv", "create", *concurrency)
        }
        Plan::EtcdRaw {
            workload,
            concurrency,
        } => ("etcd-raw".to_owned(), "raw", workload.name(), *concurrency),
        Plan::Backend {
            target,
            level,
            workload,
            concurrency,
        } => (
            targets
                .get(*target)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            level.name(),
            workload.name(),
            *concurrency,
        ),
    };
    let mut recorder = stats::Recorder::new();
    recorder.error(format!("{error:#}"));
    Row::new(
        &backend,
        level,
        workload,
        concurrency,
        &recorder,
        Duration::ZERO,
    )
}

fn raw_sqlite_name(batch: usize, keys: RawKeys) -> &'static str {
    match keys {
        _ if batch <= 1 => "sqlite-raw",
        RawKeys::Sequential => "sqlite-raw-batch",
        RawKeys::Interleaved => "sqlite-raw-interleaved",
    }
}

fn row_from(
    backend: &str,
    level: &str,
    workload: &str,
    concurrency: usize,
    measured: Measured,
) -> Row {
    let mut row = Row::new(
        backend,
        level,
        workload,
        concurrency,
        &measured.recorder,
        measured.elapsed,
    );
    if let Some(ops) = measured.ops {
        row.ops = ops;
        row.ops_per_sec = if row.seconds > 0.0 {
            ops as f64 / row.seconds
        } else {
            0.0
        };
    }
    for (name, value, note) in measured.notes {
        row.add(&name, value, note);
    }
    row
}

async fn execute(
    plan: &Plan,
    targets: &[Target],
    env: &Env,
    args: &Args,
    params: &Params,
    n: usize,
    progress: Progress,
) -> Result<(Row, Option<Row>)> {
    let single = |row: Row| (row, None);
    match plan {
        Plan::Fsync => {
            let dir = env.data_dir.clone();
            let duration = params.duration;
            let measured =
                tokio::task::spawn_blocking(move || baseline::fsync_rate(&dir, duration)).await??;
            Ok(single(row_from("fsync", "raw", "fsync", 1, measured)))
        }
        Plan::SqliteRaw { batch, keys } => {
            let dir = tempfile::Builder::new()
                .prefix("storage-bench-sqlite-raw-")
                .tempdir_in(&env.data_dir)?;
            let path = dir.path().to_owned();
            let (batch, keys, value_size, duration) =
                (*batch, *keys, args.value_size, params.duration);
            let measured = tokio::task::spawn_blocking(move || {
                baseline::sqlite_inserts(&path, batch, keys, value_size, duration)
            })
            .await??;
            drop(dir);
            Ok(single(row_from(
                raw_sqlite_name(batch, keys),
                "raw",
                "create",
                batch,
                measured,
            )))
        }
        Plan::SqliteRawThread => {
            let dir = tempfile::Builder::new()
                .prefix("storage-bench-sqlite-raw-thread-")
                .tempdir_in(&env.data_dir)?;
            let measured =
                baseline::sqlite_inserts_on_thread(dir.path(), args.value_size, params.duration)
                    .await?;
            drop(dir);
            Ok(single(row_from(
                "sqlite-raw-thread",
                "raw",
                "create",
                1,
                measured,
            )))
        }
        Plan::SqliteDirect { concurrency } => {
            let dir = tempfile::Builder::new()
                .prefix("storage-bench-sqlite-direct-")
                .tempdir_in(&env.data_dir)?;
            let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
            let store = storage::open(&url)
                .await
                .with_context(|| format!("opening {url}"))?;
            let (concurrency, value_size, duration) =
                (*concurrency, args.value_size, params.duration);
            let measured = tokio::task::spawn_blocking(move || {
                baseline::sqlite_direct(store, "/bench/", concurrency, value_size, duration)
            })
            .await??;
            drop(dir);
            Ok(single(row_from(
                "sqlite-direct",
                "kv",
                "create",
                concurrency,
                measured,
            )))
        }
        Plan::EtcdRaw {
            workload,
            concurrency,
        } => etcd_raw(env, args, params, *workload, *concurrency, n, progress)
            .await
            .map(single),
        Plan::Backend {
            target,
            level,
            workload,
            concurrency,
        } => {
            let target = targets.get(*target).context("unknown target")?;
            let fresh = target.fresh(env, n).await?;
            let store = fresh.store.clone();
            let cpu_before = cpu_seconds();
            let mut companion = None;
            let measured = match level {
                Level::Kv => {
                    let client = Arc::new(KvClient::new(
                        store,
                        fresh.key_prefix.clone(),
                        args.value_size,
                    ));
                    workloads::run(client, *workload, *concurrency, params, progress).await?
                }
                Level::Object | Level::ObjectCache => {
                    #[cfg(feature = "object")]
                    {
                        let client = Arc::new(object::ObjectClient::new(
                            store,
                            &fresh.key_prefix,
                            args.value_size,
                            level.cached(),
                        )?);
                        workloads::run(client, *workload, *concurrency, params, progress).await?
                    }
                    #[cfg(not(feature = "object"))]
                    {
                        bail!("the object level needs feature `object`")
                    }
                }
                Level::HttpRbac => {
                    #[cfg(feature = "http")]
                    {
                        let setup = http::Setup {
                            namespace: format!("storage-bench-{}-{n}", env.run_id),
                            value_size: args.value_size,
                            server_nodelay: args.http_nodelay,
                            watch_cache: true,
                            kind: http::Kind::ConfigMap,
                            external: None,
                        };
                        let (user, masters) = http::measure_rbac(
                            store,
                            &setup,
                            *workload,
                            *concurrency,
                            params,
                            progress,
                        )
                        .await?;
                        companion = Some(row_from(
                            &target.name,
                            http::MASTERS_LEVEL,
                            workload.name(),
                            *concurrency,
                            masters,
                        ));
                        user
                    }
                    #[cfg(not(feature = "http"))]
                    {
                        bail!("the http-rbac level needs feature `http`")
                    }
                }
                Level::Http | Level::HttpCache | Level::HttpCrd => {
                    #[cfg(feature = "http")]
                    {
                        // A namespace no earlier run used, for `--url` stores that are not fresh.
                        let setup = http::Setup {
                            namespace: format!("storage-bench-{}-{n}", env.run_id),
                            value_size: args.value_size,
                            server_nodelay: args.http_nodelay,
                            watch_cache: level.cached(),
                            kind: if *level == Level::HttpCrd {
                                http::Kind::Custom
                            } else {
                                http::Kind::ConfigMap
                            },
                            external: args.http_server_for(*level),
                        };
                        http::measure(store, &setup, *workload, *concurrency, params, progress)
                            .await?
                    }
                    #[cfg(not(feature = "http"))]
                    {
                        bail!("the http level needs feature `http`")
                    }
                }
            };
            let mut row = row_from(
                &target.name,
                level.name(),
                workload.name(),
                *concurrency,
                measured,
            );
            if *workload == Workload::Watch {
                // The clients, and the server unless it runs on its own (`--http-server`),
                // share this process; all of them share the machine's cores.
                let whose = if args.http_server_for(*level).is_some() {
                    "clients"
                } else {
                    "server and clients"
                };
                if let (Some(before), Some(after)) = (cpu_before, cpu_seconds()) {
                    let used = after - before;
                    let cores = used / row.seconds.max(1e-9);
                    row.add(
                        "cpu_seconds",
                        used,
                        format!("process CPU {used:.1}s ({cores:.2} cores, {whose})"),
                    );
                }
            }
            if matches!(*workload, Workload::Churn | Workload::Watch) {
                if let Some((rss, peak)) = rss_bytes() {
                    row.add(
                        "rss_bytes",
                        rss,
                        format!("RSS {} (peak {})", human_bytes(rss), human_bytes(peak)),
                    );
                    row.add("peak_rss_bytes", peak, String::new());
                }
                if let Some(dir) = &fresh.dir {
                    let size = dir_size(dir.path());
                    row.add(
                        "data_bytes",
                        size,
                        format!("data dir {}", human_bytes(size)),
                    );
                }
            }
            drop(fresh);
            Ok((row, companion))
        }
    }
}

#[cfg(feature = "etcd")]
async fn etcd_raw(
    env: &Env,
    args: &Args,
    params: &Params,
    workload: Workload,
    concurrency: usize,
    n: usize,
    progress: Progress,
) -> Result<Row> {
    // The key layout of the etcd backend: store prefix, then the measurement's key prefix.
    let prefix = format!("{}/b{n}/", env.etcd_prefix(n));
    let client = Arc::new(
        client::EtcdRawClient::connect(&env.etcd_endpoints, prefix, args.value_size).await?,
    );
    let measured = workloads::run(client, workload, concurrency, params, progress).await?;
    Ok(row_from(
        "etcd-raw",
        "raw",
        workload.name(),
        concurrency,
        measured,
    ))
}

#[cfg(not(feature = "etcd"))]
async fn etcd_raw(
    _env: &Env,
    _args: &Args,
    _params: &Params,
    _workload: Workload,
    _concurrency: usize,
    _n: usize,
    _progress: Progress,
) -> Result<Row> {
    bail!("the raw etcd baseline needs feature `etcd`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_run_next_to_their_backend_rows() {
        let args = Args::try_parse_from([
            "storage-bench",
            "--backends",
            "memory,sqlite",
            "--workloads",
            "create,get",
        ])
        .unwrap();
        let targets = Target::from_args(&args.backends, &args.urls).unwrap();
        let plans = plans(&args, &targets, false);
        let labels: Vec<String> = plans.iter().map(|p| p.label(&targets)).collect();
        let sqlite_raw = labels
            .iter()
            .position(|l| l.starts_with("sqlite-raw, 1"))
            .unwrap();
        let sqlite_create = labels
            .iter()
            .position(|l| l == "sqlite kv create c1")
            .unwrap();
        assert!(sqlite_raw < sqlite_create);
        // The writer-thread baseline sits right after the raw loop it is compared with.
        assert_eq!(labels[sqlite_raw + 1], "sqlite-raw-thread, 1 insert(s)/txn");
        assert_eq!(labels[0], "fsync floor");
        assert!(!labels.iter().any(|l| l.starts_with("etcd-raw")));
    }
}
