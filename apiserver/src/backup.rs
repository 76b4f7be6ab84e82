//! Backup and restore while serving: the `/storage/backup` endpoint, and the `apiserver backup`
//! and `apiserver restore` commands.
//!
//! `GET /storage/backup` streams every key of the server's store at one revision, in the
//! format of `storage::backup`, while the server goes on serving writes. It is a non-resource
//! URL, so under RBAC only users granted `get` on it (cluster-admin, `system:masters`) may call
//! it. Values are backed up as stored: with `--encryption-key-file` they stay encrypted, and
//! the restored server needs the same key.
//!
//! `apiserver backup` fetches it with the credentials of a kubeconfig or flags, writes it to
//! `FILE.part`, checks it whole and renames it to `FILE`. `apiserver restore` makes a new
//! SQLite or sled store from it that `apiserver --data-dir DIR` (or `--storage URL`) serves;
//! the restored store starts far past the backup's revision with everything before compacted,
//! so clients of the old server get 410 Gone and list again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use apimachinery::status::ApiError;
use axum::body::Body;
use axum::http::{HeaderValue, Response, header};
use futures::{AsyncReadExt, StreamExt};
use storage_api::{Interface, Ttl};

/// The path of the backup endpoint.
pub const BACKUP_PATH: &str = "/storage/backup";

/// Keys of events (object storage keeps objects under `/registry`, see
/// `object_storage::Storage::new`): they expire, and a backup records no TTL, so a restore
/// gives them a fresh one (Kubernetes' default `--event-ttl`).
const EVENTS_PREFIX: &str = "/registry/events/";

/// One backup at a time: each reads the whole store.
static BACKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `apiserver backup` and `apiserver restore`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Takes a backup of a running server's storage (every key at one revision) while it
    /// serves writes, through its /storage/backup endpoint.
    Backup(BackupArgs),
    /// Makes a new store from a backup, which `apiserver` with the same --data-dir or
    /// --storage then serves.
    Restore(RestoreArgs),
}

/// `apiserver backup`.
#[derive(Clone, Debug, clap::Args)]
pub struct BackupArgs {
    /// The server, such as https://127.0.0.1:6443; default: the kubeconfig's cluster.
    #[arg(long)]
    pub server: Option<String>,
    /// The backup file to write (through FILE.part, renamed once complete and checked).
    #[arg(long)]
    pub to: PathBuf,
    /// A kubeconfig whose current context gives the credentials and CA (such as the
    /// server's `<data-dir>/kubeconfig`); default: $KUBECONFIG or ~/.kube/config, unless
    /// --server is given.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// A bearer token to send.
    #[arg(long)]
    pub token: Option<String>,
    /// PEM bundle of the CA that signed the server's certificate.
    #[arg(long)]
    pub certificate_authority: Option<PathBuf>,
    /// Do not verify the server's certificate.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
}

/// `apiserver restore`.
#[derive(Clone, Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    pub from: PathBuf,
    /// The data directory of the new store (the default SQLite database goes there).
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// The new store's URL (sqlite:// or sled://, empty); default:
    /// sqlite://<data-dir>/registry.db.
    #[arg(long)]
    pub storage: Option<String>,
}

/// Runs a subcommand.
///
/// # Errors
///
/// Whatever stopped the backup or the restore, with its cause.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Backup(args) => backup(&args).await,
        Command::Restore(args) => restore(&args).await,
    }
}

/// The response of `GET /storage/backup`: 429 while another backup runs.
pub(crate) fn serve(store: Arc<dyn Interface>) -> Result<Response<Body>, ApiError> {
    let permit = BACKUPS
        .try_acquire()
        .map_err(|_| ApiError::too_many_requests("another backup of this server is running", 10))?;
    // The permit goes with the stream and is released when the body ends or is dropped.
    let stream = storage::backup::backup(store, String::new()).map(move |piece| {
        let _held = &permit;
        piece
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

async fn client(args: &BackupArgs) -> anyhow::Result<kube::Client> {
    let mut config = match (&args.kubeconfig, &args.server) {
        (Some(path), _) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("using the kubeconfig {}", path.display()))?
        }
        (None, Some(server)) => kube::Config::new(
            server
                .parse()
                .with_context(|| format!("--server {server:?} is not a URL"))?,
        ),
        (None, None) => kube::Config::infer()
            .await
            .context("no --server or --kubeconfig, and no kubeconfig to infer one from")?,
    };
    if let Some(server) = &args.server {
        config.cluster_url = server
            .parse()
            .with_context(|| format!("--server {server:?} is not a URL"))?;
    }
    if let Some(token) = &args.token {
        config.auth_info.token = Some(token.clone().into());
    }
    if let Some(ca) = &args.certificate_authority {
        config.root_cert_file = Some(ca.clone());
    }
    if args.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    // A backup streams for as long as the store takes to read.
    config.read_timeout = None;
    kube::Client::try_from(config).context("building the HTTP client")
}

async fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    let partial = part_path(&args.to);
    let result = fetch(args, &partial).await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Writes the server's backup to `partial`, checks it and renames it to `--to`.
async fn fetch(args: &BackupArgs, partial: &Path) -> anyhow::Result<()> {
    let client = client(args).await?;
    let request = axum::http::Request::get(BACKUP_PATH)
        .body(Vec::new())
        .context("building the request")?;
    let mut body = client
        .request_stream(request)
        .await
        .with_context(|| format!("GET {BACKUP_PATH}"))?;
    let mut file = tokio::fs::File::create(partial)
        .await
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let read = body
            .read(&mut buffer)
            .await
            .context("reading the backup from the server")?;
        if read == 0 {
            break;
        }
        tokio::io::AsyncWriteExt::write_all(&mut file, &buffer[..read])
            .await
            .with_context(|| format!("writing {}", partial.display()))?;
    }
    file.sync_all()
        .await
        .with_context(|| format!("syncing {}", partial.display()))?;
    drop(file);
    let checked = partial.to_owned();
    let summary = tokio::task::spawn_blocking(move || storage::backup::verify(&checked))
        .await
        .context("the backup check stopped")?
        .context(
            "the server's backup is incomplete or damaged (its log says why; a backup that \
             outlasts the store's history window fails: retry it)",
        )?;
    std::fs::rename(partial, &args.to)
        .with_context(|| format!("renaming {} to {}", partial.display(), args.to.display()))?;
    println!(
        "backed up {} keys at revision {} to {}",
        summary.keys,
        summary.revision,
        args.to.display()
    );
    Ok(())
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

async fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let url = crate::cli::storage_url(&args.data_dir, args.storage.as_deref());
    let restored = storage::backup::restore(&url, &args.from, event_ttl)
        .await
        .with_context(|| format!("restoring {} into {url}", args.from.display()))?;
    println!(
        "restored {} keys ({} with a TTL) of revision {} from {} into {url}; it serves from \
         revision {}, and clients of the old server list again",
        restored.keys,
        restored.with_ttl,
        restored.backup_revision,
        args.from.display(),
        restored.revision
    );
    Ok(())
}

fn event_ttl(key: &str) -> Ttl {
    key.starts_with(EVENTS_PREFIX)
        .then(|| std::time::Duration::from_secs(builtin_kinds::EVENT_TTL_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_get_a_ttl_and_nothing_else_does() {
        assert!(event_ttl("/registry/events/default/pod-1.17a").is_some());
        assert!(event_ttl("/registry/configmaps/default/events").is_none());
        assert!(event_ttl("/registry/apps.example.io/widgets/default/w").is_none());
    }
}
