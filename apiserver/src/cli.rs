//! The `apiserver` command line and its startup sequence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Parser;
use object_storage::transformer::{AesGcmTransformer, ValueTransformer};

use auth::TokenAuthenticators;
use auth::token_file::TokenFile;

use crate::access::{Authentication, AuthorizationMode};
use crate::connection_deadlines::{ConnectionTimeouts, DeadlineAcceptor};
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
#[command(name = "apiserver", version, args_conflicts_with_subcommands = true)]
pub struct Args {
    /// `backup` or `restore`; without one, the server runs.
    #[command(subcommand)]
    pub command: Option<crate::backup::Command>,

    /// Address to listen on. Binding a non-loopback address needs --tls-cert/--tls-key,
    /// --token-auth-file and --authorization-mode with RBAC (without AlwaysAllow), or
    /// --allow-insecure-non-loopback. Port 0 picks a free port.
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

    /// Ordered list of authorizers, comma separated: AlwaysAllow, AlwaysDeny, RBAC. Members
    /// of system:masters are always allowed.
    #[arg(long, default_value = "AlwaysAllow")]
    pub authorization_mode: String,

    /// Treat requests without credentials as system:anonymous (group
    /// system:unauthenticated) instead of refusing them with 401. As upstream, it is turned
    /// off when AlwaysAllow is in --authorization-mode and an authenticator is configured;
    /// health checks and /version always accept anonymous requests.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,

    /// PEM bundle of the CAs whose client certificates authenticate users: the common name
    /// is the user, each organization a group. Needs TLS (given or generated).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,

    /// The issuer (`iss`) of service account tokens, and the audience they are for unless a
    /// TokenRequest names others.
    #[arg(long, default_value = "https://kubernetes.default.svc.cluster.local")]
    pub service_account_issuer: String,

    /// PKCS#8 PEM private key (ECDSA P-256/P-384, RSA or Ed25519) service account tokens are
    /// signed with. Default, when the server authenticates: generated in
    /// <data-dir>/tls/service-account.key at first start.
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,

    /// PEM public keys that also verify service account tokens (besides the signing key's
    /// own); repeatable.
    #[arg(long)]
    pub service_account_key_file: Vec<PathBuf>,

    /// How long a client may take to send a request's headers, from the connection's start
    /// (after its TLS handshake) or from the request's first bytes, before the connection is
    /// closed (kube-apiserver's read-header timeout is 32s), such as 32s or 500ms; 0 turns it
    /// off.
    #[arg(long, default_value = "32s", value_parser = parse_duration)]
    pub request_header_timeout: Duration,

    /// How long a keep-alive HTTP/1 connection may wait for its next request, from the end of
    /// the last response written, before it is closed (kube-apiserver's idle timeout is 90s,
    /// the time Go clients keep idle connections); 0 turns it off.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    pub idle_connection_timeout: Duration,

    /// Write an audit event (audit.k8s.io/v1, Metadata level) for every request to this
    /// file, one JSON line each; `-` writes to standard output.
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,

    /// Encrypt secrets at rest with AES-GCM, keys read from this file (see
    /// object_storage::transformer::AesGcmTransformer::from_key_file).
    #[arg(long)]
    pub encryption_key_file: Option<PathBuf>,

    /// Allow binding a non-loopback address without TLS, token authentication and RBAC.
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

    /// How long events live after their last write, such as 1h, 90s or 3600 (kube-apiserver's
    /// --event-ttl).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub event_ttl: Duration,
}

/// `--storage`, or the default SQLite database in the data directory.
pub fn storage_url(data_dir: &Path, storage: Option<&str>) -> String {
    match storage {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", data_dir.join("registry.db").display()),
    }
}

impl Args {
    /// The storage URL to open.
    pub fn storage_url(&self) -> String {
        storage_url(&self.data_dir, self.storage.as_deref())
    }

    /// Checks the flag combination: non-loopback needs TLS and auth unless forced.
    ///
    /// # Errors
    ///
    /// When the bind address would expose an unauthenticated or plain-text server.
    pub fn check(&self) -> anyhow::Result<()> {
        let modes = self.authorization_modes()?;
        let rbac = modes.contains(&AuthorizationMode::Rbac)
            && !modes.contains(&AuthorizationMode::AlwaysAllow);
        // TLS comes with authentication: given, or generated (see `crate::tls`).
        let secure = self.token_auth_file.is_some() && rbac;
        if !self.bind.ip().is_loopback() && !secure && !self.allow_insecure_non_loopback {
            anyhow::bail!(
                "refusing to serve {} without authentication (--token-auth-file, served over \
                 TLS) and authorization (--authorization-mode=RBAC): the address is not \
                 loopback; pass --allow-insecure-non-loopback to do it anyway",
                self.bind
            );
        }
        // Storage TTLs are deadlines from now: a year is far beyond any use and far from
        // overflowing a clock.
        let year = Duration::from_secs(366 * 24 * 3600);
        if self.event_ttl.is_zero() || self.event_ttl > year {
            anyhow::bail!(
                "--event-ttl {:?} must be more than zero and at most a year (8784h)",
                self.event_ttl
            );
        }
        Ok(())
    }

    /// The parsed `--authorization-mode`.
    ///
    /// # Errors
    ///
    /// An unknown, repeated or missing mode.
    pub fn authorization_modes(&self) -> anyhow::Result<Vec<AuthorizationMode>> {
        AuthorizationMode::parse_list(&self.authorization_mode)
            .map_err(|e| anyhow::anyhow!("--authorization-mode: {e}"))
    }

    /// Whether the server authenticates: a token file or client CA is given, or RBAC is in
    /// the chain (which needs someone to be an administrator).
    pub fn authenticates(&self) -> anyhow::Result<bool> {
        Ok(self.token_auth_file.is_some()
            || self.client_ca_file.is_some()
            || self.service_account_signing_key_file.is_some()
            || self
                .authorization_modes()?
                .contains(&AuthorizationMode::Rbac))
    }

    /// The issuer of service account tokens, when the server authenticates: the signing key
    /// given, or one generated in `<data-dir>/tls/` at first start.
    ///
    /// # Errors
    ///
    /// Keys that cannot be read, written or used.
    pub fn token_issuer(&self) -> anyhow::Result<Option<auth::service_account::TokenIssuer>> {
        if !self.authenticates()? {
            return Ok(None);
        }
        let signing_pem = match &self.service_account_signing_key_file {
            Some(path) => std::fs::read_to_string(path).with_context(|| {
                format!(
                    "reading --service-account-signing-key-file {}",
                    path.display()
                )
            })?,
            None => crate::tls::service_account_key(&self.data_dir.join("tls"))?,
        };
        let public = self
            .service_account_key_file
            .iter()
            .map(|path| {
                std::fs::read_to_string(path).with_context(|| {
                    format!("reading --service-account-key-file {}", path.display())
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        auth::service_account::TokenIssuer::new(
            self.service_account_issuer.clone(),
            vec![self.service_account_issuer.clone()],
            &signing_pem,
            &public,
        )
        .map(Some)
        .context("service account token keys")
    }

    /// The authentication the flags ask for, and the token the generated kubeconfig carries:
    /// a `system:masters` token of the token file, else the generated administrator's (see
    /// [`admin_token`]), else the file's first token.
    ///
    /// # Errors
    ///
    /// A token file that cannot be read or parsed, or an administrator token that cannot be
    /// written.
    pub fn authentication(&self) -> anyhow::Result<(Authentication, Option<String>)> {
        let mut tokens = TokenAuthenticators::new();
        let token_file = self
            .token_auth_file
            .as_deref()
            .map(TokenFile::from_file)
            .transpose()?;
        let mut kubeconfig_token = token_file
            .as_ref()
            .and_then(TokenFile::superuser_token)
            .map(str::to_owned);
        if let Some(file) = &token_file {
            tokens.push(Arc::new(file.clone()));
        }
        if self.authenticates()? {
            let admin = admin_token(&self.data_dir)?;
            tokens.push(Arc::new(TokenFile::single(
                &admin,
                auth::UserInfo::authenticated(
                    ADMIN_USER,
                    ADMIN_USER,
                    vec![auth::user::SYSTEM_MASTERS.to_owned()],
                ),
            )));
            kubeconfig_token.get_or_insert(admin);
        }
        if kubeconfig_token.is_none() {
            kubeconfig_token = token_file
                .as_ref()
                .and_then(TokenFile::first_token)
                .map(str::to_owned);
        }
        let configured = !tokens.is_empty();
        let always_allow = self
            .authorization_modes()?
            .contains(&AuthorizationMode::AlwaysAllow);
        // Upstream's `ApplyAuthorization`: anonymous requests and AlwaysAllow do not go
        // together. With no authenticator at all, every request is anonymous (the
        // zero-configuration single-user mode).
        let anonymous = if !configured {
            true
        } else if self.anonymous_auth && always_allow {
            tracing::warn!(
                "anonymous requests are not allowed with the AlwaysAllow authorizer: \
                 requests without credentials get 401; use another authorizer"
            );
            false
        } else {
            self.anonymous_auth
        };
        Ok((Authentication::new(tokens, anonymous), kubeconfig_token))
    }
}

/// The `apiserver` binary's whole `main`: logs to stderr (`RUST_LOG`, `info` by default),
/// parses `args` (the program name first) as its command line, runs it on a multi-threaded
/// runtime, and turns the outcome into an exit code, printing the error if there is one. Tools
/// that run the server as a child process of their own (as `storage-soak` does) call it too.
pub fn main<I, T>(args: I) -> std::process::ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse_from(args);
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(run(args)));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Parses `500ms`, `32s`, `5m`, `1h` or a number of seconds, as the duration flags take them.
///
/// # Errors
///
/// Text that is none of those, named in the message.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration such as 32s, 500ms, 5m or 1h");
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().map(Duration::from_millis).map_err(|_| invalid());
    }
    let (number, unit) = match text.char_indices().last() {
        Some((at, 'h')) => (&text[..at], 3600),
        Some((at, 'm')) => (&text[..at], 60),
        Some((at, 's')) => (&text[..at], 1),
        _ => (text, 1),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .map(Duration::from_secs)
        .ok_or_else(invalid)
}

/// The user of the generated administrator token.
pub const ADMIN_USER: &str = "system:admin";

/// The administrator token of a server that authenticates, in `<data-dir>/admin-token`
/// (owner-only), created at first start: it authenticates `system:admin` in
/// `system:masters`, and the generated kubeconfig carries it.
///
/// # Errors
///
/// When the file cannot be read or written.
pub fn admin_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim();
        if !token.is_empty() {
            return Ok(token.to_owned());
        }
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("generating a token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options
        .open(&path)
        .and_then(|mut f| f.write_all(token.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
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
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let data = base64::engine::general_purpose::STANDARD.encode(pem);
        cluster.push_str(&format!("    certificate-authority-data: {data}\n"));
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
    if let Some(command) = args.command {
        return crate::backup::run(command).await;
    }
    args.check()?;
    // Every connection and watch holds a descriptor. Raise the soft limit to the hard one, as
    // the Go runtime does for kube-apiserver, so the server admits as many clients as the
    // system allows (often 1,024 soft against 500,000 or more hard).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let (authentication, kubeconfig_token) = args.authentication()?;
    // kubectl sends tokens only over HTTPS: a server that authenticates without a certificate
    // of its own serves one from a CA it generates.
    let generated_tls = if args.tls_cert.is_none() && args.authenticates()? {
        Some(crate::tls::ensure(
            &args.data_dir.join("tls"),
            &crate::tls::serving_hosts(args.bind.ip()),
        )?)
    } else {
        None
    };
    let (tls_cert, tls_key) = match (&generated_tls, &args.tls_cert, &args.tls_key) {
        (Some(generated), _, _) => (
            Some(generated.serving_cert.clone()),
            Some(generated.serving_key.clone()),
        ),
        (None, cert, key) => (cert.clone(), key.clone()),
    };
    let kubeconfig_ca = generated_tls
        .as_ref()
        .map(|g| g.ca_cert.clone())
        .or_else(|| args.tls_cert.clone());
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
        .with_watch_cache(watch_cache)
        .with_authentication(authentication)
        .with_authorization(args.authorization_modes()?);
    if let Some(issuer) = args.token_issuer()? {
        builder = builder.with_token_issuer(Arc::new(issuer));
    }
    if let Some(path) = &args.audit_log_path {
        builder = builder.with_audit_log(crate::audit::AuditLog::open(path)?);
    }
    crate::kinds::register_all_with(
        &mut builder,
        transformer,
        builtin_kinds::EventStrategy::with_ttl(args.event_ttl),
    )?;
    let server = builder.build()?;
    server.bootstrap().await?;
    let controllers = server.controllers();
    let app = server.router();

    let handle = axum_server::Handle::new();
    let tls = match (&tls_cert, &tls_key) {
        (Some(cert), Some(key)) => Some(axum_server::tls_rustls::RustlsConfig::from_config(
            crate::tls::server_config(cert, key, args.client_ca_file.as_deref())?,
        )),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let serve_handle = handle.clone();
    let bind = args.bind;
    // A client that never finishes its request headers (slow loris) is cut off, and an idle
    // keep-alive connection closed, as kube-apiserver's ReadHeaderTimeout and IdleTimeout do.
    let timeouts = ConnectionTimeouts {
        header: args.request_header_timeout,
        idle: args.idle_connection_timeout,
    };
    let serving = tokio::spawn(async move {
        // The client's address reaches the audit log.
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        // TCP_NODELAY: watch events and small responses go out at once instead of waiting
        // for Nagle's algorithm (up to ~40 ms behind a delayed ACK).
        let plain = DeadlineAcceptor::new(axum_server::accept::NoDelayAcceptor::new(), timeouts);
        let server = axum_server::bind(bind);
        match tls {
            Some(config) => {
                server
                    .acceptor(DeadlineAcceptor::new(
                        crate::tls::ClientCertAcceptor::new(config),
                        timeouts,
                    ))
                    .handle(serve_handle)
                    .serve(service)
                    .await
            }
            None => {
                server
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
        kubeconfig_token.as_deref(),
        kubeconfig_ca.as_deref(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_units_kube_apiserver_flags_take() {
        let ok = |text: &str| parse_duration(text).unwrap();
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("32s"), Duration::from_secs(32));
        assert_eq!(ok("32"), Duration::from_secs(32));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        for bad in ["", "h", "1.5h", "-1s", "1d", "99999999999999999999h"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains("is not a duration"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn event_ttl_defaults_to_an_hour_and_takes_a_flag() {
        let args = Args::parse_from(["apiserver"]);
        assert_eq!(args.event_ttl, Duration::from_secs(3600));
        let args = Args::parse_from(["apiserver", "--event-ttl", "90s"]);
        assert_eq!(
            builtin_kinds::EventStrategy::with_ttl(args.event_ttl).ttl(),
            Duration::from_secs(90)
        );
    }
}
