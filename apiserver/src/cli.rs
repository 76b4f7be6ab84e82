//! The `apiserver` command line and its startup sequence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use object_storage::transformer::{AesGcmTransformer, ValueTransformer};

use crate::auth::TokenAuth;
use crate::server::ServerBuilder;
use crate::watch_cache::WatchCacheSettings;

/// A Kubernetes-style API server that kubectl and client libraries talk to as to
/// kube-apiserver: core v1 namespaces, configmaps, secrets and events,
/// coordination.k8s.io/v1 leases and the example group apps.example.io (widgets, v1beta1
/// and v1), stored in SQLite (default), memory, etcd or sled.
///
/// With no arguments it serves plain HTTP on 127.0.0.1:6443 with data in ./data, and writes
/// ./data/kubeconfig for kubectl.
#[derive(Clone, Debug, Parser)]
#[command(name = "apiserver", version)]
pub struct Args {
    /// Address to listen on. Binding a non-loopback address needs --tls-cert/--tls-key and
    /// --token-auth-file, or --allow-insecure-non-loopback. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub bind: SocketAddr,

    /// Directory for the default SQLite database and the generated kubeconfig.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,

    /// Storage backend URL: memory://, sqlite://PATH, etcd://HOST:PORT[,...], sled://PATH
    /// (etcd and sled need the matching Cargo features). Default: sqlite://<data-dir>/registry.db.
    #[arg(long)]
    pub storage: Option<String>,

    /// PEM certificate chain to serve HTTPS with (rustls); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Static bearer tokens, Kubernetes' CSV format: token,user,uid[,"group1,group2"] per
    /// line. When set, requests without a listed token get 401 (health checks and /version
    /// excepted), and the kubeconfig carries the first token.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,

    /// Encrypt secrets at rest with AES-GCM, keys read from this file (see
    /// object_storage::transformer::AesGcmTransformer::from_key_file).
    #[arg(long)]
    pub encryption_key_file: Option<PathBuf>,

    /// Allow binding a non-loopback address without TLS and token authentication.
    #[arg(long)]
    pub allow_insecure_non_loopback: bool,

    /// Where to write the kubeconfig (default: <data-dir>/kubeconfig).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// The most read requests (GET, HEAD) served at once; more get 429 with Retry-After.
    /// Watches, health checks and /version are exempt. 0: no limit.
    #[arg(long, default_value_t = crate::inflight::DEFAULT_MAX_REQUESTS_INFLIGHT)]
    pub max_requests_inflight: usize,

    /// The most mutating requests (POST, PUT, PATCH, DELETE) served at once; more get 429
    /// with Retry-After. 0: no limit.
    #[arg(long, default_value_t = crate::inflight::DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT)]
    pub max_mutating_requests_inflight: usize,

    /// Serve watches and most reads of every resource from a watch cache fed by one storage
    /// watch per resource (--watch-cache=false: every request goes to storage).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub watch_cache: bool,

    /// Per-resource watch cache sizes, comma separated: resource[.group]#size, such as
    /// configmaps#1000 or leases.coordination.k8s.io#0. A size of 0 turns the cache off for
    /// that resource; other sizes bound the events its ring keeps (default 100 to 102400).
    #[arg(long, value_delimiter = ',')]
    pub watch_cache_sizes: Vec<String>,
}

impl Args {
    /// The storage URL to open.
    pub fn storage_url(&self) -> String {
        match &self.storage {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("registry.db").display()),
        }
    }

    /// Checks the flag combination: non-loopback needs TLS and auth unless forced.
    ///
    /// # Errors
    ///
    /// When the bind address would expose an unauthenticated or plain-text server.
    pub fn check(&self) -> anyhow::Result<()> {
        let secure = self.tls_cert.is_some() && self.token_auth_file.is_some();
        if !self.bind.ip().is_loopback() && !secure && !self.allow_insecure_non_loopback {
            anyhow::bail!(
                "refusing to serve {} without TLS (--tls-cert/--tls-key) and authentication \
                 (--token-auth-file): the address is not loopback; pass \
                 --allow-insecure-non-loopback to do it anyway",
                self.bind
            );
        }
        Ok(())
    }
}

/// Writes a kubeconfig for `server` (with `token` when given).
///
/// # Errors
///
/// When the file cannot be written.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    token: Option<&str>,
    ca: Option<&Path>,
) -> anyhow::Result<()> {
    let mut cluster = format!("    server: {server}\n");
    if let Some(ca) = ca {
        let ca = std::fs::canonicalize(ca).unwrap_or_else(|_| ca.to_path_buf());
        cluster.push_str(&format!("    certificate-authority: {}\n", ca.display()));
    }
    let user = match token {
        Some(token) => format!("    token: {token}\n"),
        None => "    {}\n".to_owned(),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: apiserver\n  cluster:\n{cluster}\
         users:\n- name: apiserver\n  user:\n{user}\
         contexts:\n- name: apiserver\n  context:\n    cluster: apiserver\n    user: apiserver\n    namespace: default\n\
         current-context: apiserver\n"
    );
    let user_line_fix = text.replace("  user:\n    {}\n", "  user: {}\n");
    std::fs::write(path, user_line_fix)
        .with_context(|| format!("writing kubeconfig {}", path.display()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// Runs the server until SIGTERM/SIGINT.
///
/// # Errors
///
/// Bad flags, storage that cannot be opened, an address that cannot be bound.
pub async fn run(args: Args) -> anyhow::Result<()> {
    args.check()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let auth = args
        .token_auth_file
        .as_deref()
        .map(TokenAuth::from_file)
        .transpose()?;
    let transformer: Option<Arc<dyn ValueTransformer>> = match &args.encryption_key_file {
        Some(path) => Some(Arc::new(AesGcmTransformer::from_key_file(path).map_err(
            |e| anyhow::anyhow!("encryption key file {}: {e}", path.display()),
        )?)),
        None => None,
    };
    let url = args.storage_url();
    if let Some(feature) = storage::missing_feature(&url) {
        anyhow::bail!(
            "--storage {url}: this apiserver was built without the `{feature}` backend; \
             build and run it with that backend included:\n  \
             cargo run --release -p apiserver --features {feature} -- --storage {url}"
        );
    }
    let storage = storage::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("opening storage {url}: {e}"))?;
    let watch_cache = WatchCacheSettings::parse(args.watch_cache, &args.watch_cache_sizes)
        .map_err(|e| anyhow::anyhow!("--watch-cache-sizes: {e}"))?;
    let mut builder = ServerBuilder::new(storage)?
        .with_server_address(args.bind.to_string())
        .with_inflight_limits(crate::inflight::InFlightLimits::new(
            args.max_requests_inflight,
            args.max_mutating_requests_inflight,
        ))
        .with_watch_cache(watch_cache);
    if let Some(auth) = auth.clone() {
        builder = builder.with_auth(auth);
    }
    crate::kinds::register_all(&mut builder, transformer)?;
    let server = builder.build()?;
    server.bootstrap().await?;
    let controllers = server.controllers();
    let app = server.router();

    let handle = axum_server::Handle::new();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .context("loading TLS certificate and key")?,
            )
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let serve_handle = handle.clone();
    let bind = args.bind;
    let serving = tokio::spawn(async move {
        let service = app.into_make_service();
        // TCP_NODELAY: watch events and small responses go out at once instead of waiting
        // for Nagle's algorithm (up to ~40 ms behind a delayed ACK).
        let plain = axum_server::accept::NoDelayAcceptor::new();
        match tls {
            Some(config) => {
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(plain);
                axum_server::bind(bind)
                    .acceptor(acceptor)
                    .handle(serve_handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::bind(bind)
                    .acceptor(plain)
                    .handle(serve_handle)
                    .serve(service)
                    .await
            }
        }
    });
    let Some(address) = handle.listening().await else {
        let result = serving.await.context("server task")?;
        result.with_context(|| format!("binding {bind}"))?;
        anyhow::bail!("server stopped before listening on {bind}");
    };
    let host = if address.ip().is_unspecified() {
        format!("127.0.0.1:{}", address.port())
    } else {
        address.to_string()
    };
    let server_url = format!("{scheme}://{host}");
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| args.data_dir.join("kubeconfig"));
    write_kubeconfig(
        &kubeconfig,
        &server_url,
        auth.as_ref().and_then(TokenAuth::first_token),
        args.tls_cert.as_deref(),
    )?;
    tracing::info!(%server_url, storage = %url, "serving");
    println!("apiserver listening on {server_url} (storage {url})");
    println!(
        "Try: kubectl --kubeconfig {} get namespaces",
        kubeconfig.display()
    );

    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
        }
        result = serving => {
            server.shutdown();
            return result.context("server task")?.context("serving");
        }
    }
    server.shutdown();
    handle.graceful_shutdown(Some(Duration::from_secs(10)));
    let _ = controllers.await;
    // The serve task ends once connections drain (watches end on shutdown).
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
