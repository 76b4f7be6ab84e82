//! A self-signed certificate authority and serving certificate for servers that authenticate
//! but were given no certificate (as k3s does): kubectl sends bearer tokens only over HTTPS, so
//! authentication without TLS would lock every kubectl out.
//!
//! The CA lives in `<data-dir>/tls/` and is kept across restarts, so kubeconfigs written once
//! keep working; the serving certificate is issued again at every start for the hosts of the
//! bind address.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use axum::Extension;
use axum::middleware::AddExtension;
use axum_server::accept::{Accept, NoDelayAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::net::TcpStream;
use tower_layer::Layer;

use crate::access::PeerCertificates;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// The common name of the generated CA: what `openssl x509 -subject` shows of it.
const CA_COMMON_NAME: &str = "kube-storage-apiserver-ca";

/// The files of a generated CA and serving certificate.
#[derive(Clone, Debug)]
pub struct GeneratedTls {
    /// The CA certificate (PEM), which kubeconfigs embed.
    pub ca_cert: PathBuf,
    /// The serving certificate chain (PEM).
    pub serving_cert: PathBuf,
    /// The serving key (PEM).
    pub serving_key: PathBuf,
}

fn this_year() -> i32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days since the epoch over the mean Gregorian year: right but for a day at New Year,
    // which the one-year margin before `not_before` absorbs.
    1970 + i32::try_from(seconds / 31_556_952).unwrap_or(0)
}

/// The CA's parameters: always the same name, so a CA key loaded from disk signs as the CA
/// certificate written with it.
fn ca_params(year: i32) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + 10, 1, 1);
    Ok(params)
}

/// Writes `contents` to `path`, readable by the owner only when `secret`.
fn write(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// The CA of `dir` (created on first use) and a fresh serving certificate for `hosts` (IP
/// addresses and DNS names) signed by it.
///
/// # Errors
///
/// When the files cannot be read or written, or a stored CA key is not a key.
pub fn ensure(dir: &Path, hosts: &[String]) -> anyhow::Result<GeneratedTls> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_cert = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let year = this_year();
    let ca_key = if ca_key_path.exists() && ca_cert.exists() {
        let pem = std::fs::read_to_string(&ca_key_path)
            .with_context(|| format!("reading {}", ca_key_path.display()))?;
        KeyPair::from_pem(&pem).with_context(|| format!("parsing {}", ca_key_path.display()))?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params(year)?.self_signed(&key)?;
        write(&ca_key_path, &key.serialize_pem(), true)?;
        write(&ca_cert, &cert.pem(), false)?;
        tracing::info!(path = %ca_cert.display(), "generated a certificate authority");
        key
    };
    let issuer = Issuer::new(ca_params(year)?, ca_key);
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-storage-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + 1, 12, 31);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let serving_cert = dir.join("serving.crt");
    let serving_key = dir.join("serving.key");
    write(&serving_key, &key.serialize_pem(), true)?;
    write(&serving_cert, &cert.pem(), false)?;
    Ok(GeneratedTls {
        ca_cert,
        serving_cert,
        serving_key,
    })
}

/// The PEM of the service account signing key in `dir` (an ECDSA P-256 key generated at first
/// use, owner-only).
///
/// # Errors
///
/// When the file cannot be read or written.
pub fn service_account_key(dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("service-account.key");
    if path.exists() {
        return std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()));
    }
    let pem = KeyPair::generate()?.serialize_pem();
    write(&path, &pem, true)?;
    Ok(pem)
}

/// The names a serving certificate for `bind` should hold: loopback names, the bind address
/// when it is a specific one, and the machine's host name.
pub fn serving_hosts(bind: IpAddr) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !bind.is_unspecified() && !bind.is_loopback() {
        hosts.push(bind.to_string());
    }
    if let Ok(name) = std::fs::read_to_string("/etc/hostname") {
        let name = name.trim();
        if !name.is_empty() && !hosts.iter().any(|h| h == name) {
            hosts.push(name.to_owned());
        }
    }
    hosts
}

/// The TLS configuration of the server: its certificate and key, and with `client_ca` the
/// CAs whose client certificates authenticate users (optional for clients: a request without
/// one authenticates otherwise).
///
/// # Errors
///
/// Files that cannot be read or hold no certificate or key.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", cert.display()))?;
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("reading --client-ca-file {}: {e}", path.display()))?;
            if cas.is_empty() {
                anyhow::bail!("--client-ca-file {} holds no certificate", path.display());
            }
            for ca in cas {
                roots
                    .add(ca)
                    .with_context(|| format!("adding a CA of {}", path.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, private)
        .context("loading the TLS certificate and key")?;
    // kubectl and client-go speak HTTP/1.1 (and HTTP/2, which this server does not serve).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TLS connections and puts the client's verified certificate chain on each of
/// their requests ([`PeerCertificates`]).
#[derive(Clone)]
pub struct ClientCertAcceptor {
    inner: RustlsAcceptor<NoDelayAcceptor>,
}

impl ClientCertAcceptor {
    /// TLS with `config` over TCP without Nagle's delay.
    pub fn new(config: RustlsConfig) -> Self {
        ClientCertAcceptor {
            inner: RustlsAcceptor::new(config).acceptor(NoDelayAcceptor::new()),
        }
    }
}

impl<S: Send + 'static> Accept<TcpStream, S> for ClientCertAcceptor {
    type Stream = <RustlsAcceptor<NoDelayAcceptor> as Accept<TcpStream, S>>::Stream;
    type Service = AddExtension<S, PeerCertificates>;
    type Future =
        Pin<Box<dyn Future<Output = std::io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let handshake = self.inner.accept(stream, service);
        Box::pin(async move {
            let (tls, service) = handshake.await?;
            let chain = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|certs| Arc::new(certs.iter().map(|c| c.to_vec()).collect::<Vec<_>>()));
            Ok((tls, Extension(PeerCertificates(chain)).layer(service)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_kept_and_the_serving_certificate_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), &serving_hosts("127.0.0.1".parse().unwrap())).unwrap();
        let ca = std::fs::read_to_string(&first.ca_cert).unwrap();
        let serving = std::fs::read_to_string(&first.serving_cert).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let second = ensure(dir.path(), &["localhost".to_owned()]).unwrap();
        assert_eq!(std::fs::read_to_string(&second.ca_cert).unwrap(), ca);
        assert_ne!(
            std::fs::read_to_string(&second.serving_cert).unwrap(),
            serving
        );
    }
}
