//! `etcd-front`: serves etcd's v3 API over a storage URL, started with etcd's own flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use etcd_front::{EtcdFront, FrontOptions};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// Serve the etcd v3 API (KV, Watch, Lease, Maintenance, Cluster, gRPC health) over a store of
/// this project: SQLite by default, or any `--storage` URL. Flags named as etcd names them mean
/// what they mean for etcd.
#[derive(Debug, Parser)]
#[command(name = "etcd-front", version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    store: StoreArgs,
    /// Comma-separated URLs to serve clients on, `http://` or `https://` with an IP address.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    listen_client_urls: Vec<String>,
    /// Comma-separated client URLs reported by `MemberList`; default: the URLs the listen
    /// URLs bound (a listen URL with port 0 gets a free port).
    #[arg(long, value_delimiter = ',')]
    advertise_client_urls: Vec<String>,
    /// Serving certificate (PEM) for `https://` listen URLs.
    #[arg(long)]
    cert_file: Option<PathBuf>,
    /// Key of the serving certificate (PEM).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// CA bundle (PEM) that client certificates must chain to.
    #[arg(long)]
    trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate signed by `--trusted-ca-file` on `https://` URLs.
    #[arg(long)]
    client_cert_auth: bool,
    /// Election timeout in milliseconds; as in etcd, lease TTLs shorter than 1.5 times it are
    /// raised to it (rounded up to whole seconds).
    #[arg(long, default_value_t = 1000)]
    election_timeout: u64,
}

/// Where the store is: the same flags for serving and for restoring a snapshot.
#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// Human-readable name of this member (etcd's `--name`); member and cluster IDs derive
    /// from it.
    #[arg(long, default_value = "default")]
    name: String,
    /// Directory of the default SQLite store (etcd's `--data-dir`); default `<name>.etcd`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The store: `sqlite://PATH`, `sled://PATH`, `memory://` or `etcd://HOST:PORT` (as Cargo
    /// features allow). Default: `sqlite://<data-dir>/front.sqlite`.
    #[arg(long)]
    storage: Option<String>,
}

impl StoreArgs {
    /// The `--storage` URL, or SQLite in the data directory (created if missing).
    fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.storage {
            return Ok(url.clone());
        }
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        Ok(format!("sqlite://{}", dir.join("front.sqlite").display()))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// etcd snapshot files (`etcdctl snapshot save` takes them from this front or from etcd).
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Writes the keys and leases of an etcd snapshot into a new store, which `etcd-front`
    /// with the same `--data-dir` or `--storage` then serves. Keys keep their values, versions
    /// and leases; revisions are the new store's.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// The store to write, as for serving; it must hold no etcd keys yet.
        #[command(flatten)]
        store: StoreArgs,
        /// Accept a file without the SHA-256 that ends a snapshot (a copy of an etcd member's
        /// `member/snap/db`).
        #[arg(long)]
        skip_hash_check: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Command::Snapshot {
        command:
            SnapshotCommand::Restore {
                file,
                store,
                skip_hash_check,
            },
    }) = &args.command
    {
        return restore(file, &store.url()?, *skip_hash_check).await;
    }
    let storage = args.store.url()?;
    let store = storage::open(&storage)
        .await
        .with_context(|| format!("cannot open the store {storage}"))?;
    // Bind first: a listen URL with port 0 gets a free port, and the URLs really bound are
    // what `MemberList` advertises by default and what the line printed below names (tests
    // and scripts read the port from it).
    let mut listeners = Vec::new();
    for url in &args.listen_client_urls {
        let (secure, addr) = parse_listen_url(url)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {url}"))?;
        let local = listener
            .local_addr()
            .with_context(|| format!("cannot read the address bound for {url}"))?;
        let scheme = if secure { "https" } else { "http" };
        listeners.push((secure, format!("{scheme}://{local}"), listener));
    }
    let bound: Vec<String> = listeners.iter().map(|(_, url, _)| url.clone()).collect();
    let advertise = if args.advertise_client_urls.is_empty() {
        bound.clone()
    } else {
        args.advertise_client_urls.clone()
    };
    let min_lease_ttl = i64::try_from(args.election_timeout.saturating_mul(3).div_ceil(2000))
        .unwrap_or(i64::MAX)
        .max(1);
    let options = FrontOptions {
        name: args.store.name.clone(),
        advertise_client_urls: advertise,
        min_lease_ttl,
        db_size: sqlite_size(&storage),
    };
    let front = EtcdFront::new(store, options)
        .await
        .context("cannot load the front's leases from the store")?;
    let tls = tls_config(&args)?;
    let mut servers = Vec::new();
    for (secure, url, listener) in listeners {
        let mut builder = Server::builder().http2_keepalive_interval(Some(Duration::from_secs(30)));
        if secure {
            let tls = tls
                .clone()
                .with_context(|| format!("{url} needs --cert-file and --key-file"))?;
            builder = builder
                .tls_config(tls)
                .context("invalid TLS configuration")?;
        }
        tracing::info!(%url, storage, "serving the etcd v3 API");
        let front = front.clone();
        servers.push(tokio::spawn(async move {
            front.serve(builder, listener, shutdown()).await
        }));
    }
    eprintln!(
        "etcd-front {} serving the etcd v3 API on {} over {storage}",
        etcd_front::REPORTED_VERSION,
        bound.join(",")
    );
    for server in servers {
        server.await.context("a listener task failed")??;
    }
    Ok(())
}

/// `etcd-front snapshot restore`.
async fn restore(
    file: &std::path::Path,
    storage: &str,
    skip_hash_check: bool,
) -> anyhow::Result<()> {
    let store = storage::open(storage)
        .await
        .with_context(|| format!("cannot open the store {storage}"))?;
    let restored = etcd_front::restore_snapshot(&*store, file, skip_hash_check).await?;
    println!(
        "restored {} keys and {} leases of the snapshot {} (etcd revision {}) into {storage}, \
         now at revision {}",
        restored.keys,
        restored.leases,
        file.display(),
        restored.snapshot_revision,
        restored.revision
    );
    Ok(())
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// `http://IP:PORT` or `https://IP:PORT`.
fn parse_listen_url(url: &str) -> anyhow::Result<(bool, SocketAddr)> {
    let (secure, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        bail!("listen URL {url:?} must start with http:// or https://");
    };
    let addr = rest
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("listen URL {url:?} must name an IP address and a port"))?;
    Ok((secure, addr))
}

fn tls_config(args: &Args) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&args.cert_file, &args.key_file) else {
        if args.client_cert_auth {
            bail!("--client-cert-auth needs --cert-file and --key-file");
        }
        return Ok(None);
    };
    let read = |path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    match (&args.trusted_ca_file, args.client_cert_auth) {
        (Some(ca), required) => {
            config = config
                .client_ca_root(Certificate::from_pem(read(ca)?))
                .client_auth_optional(!required);
        }
        (None, true) => bail!("--client-cert-auth needs --trusted-ca-file"),
        (None, false) => {}
    }
    Ok(Some(config))
}

/// For a SQLite store, the size of its file and WAL, which `Status` reports as `dbSize`.
fn sqlite_size(storage: &str) -> Option<etcd_front::DbSize> {
    let path = storage.strip_prefix("sqlite://")?;
    let path = PathBuf::from(path.split('?').next().unwrap_or(path));
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    Some(Arc::new(move || {
        let size = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
        i64::try_from(size(&path) + size(&wal)).unwrap_or(i64::MAX)
    }))
}
