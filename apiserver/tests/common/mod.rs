//! Starting the `apiserver` binary for end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `apiserver` process, killed on drop.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl ServerProcess {
    /// Starts the binary on a free loopback port with `data_dir` and extra flags, and waits
    /// until it prints its address.
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_apiserver"))
            .arg("--bind")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start apiserver");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut url = None;
        while Instant::now() < deadline {
            line.clear();
            if reader.read_line(&mut line).expect("read stdout") == 0 {
                break;
            }
            if let Some(rest) = line.trim().strip_prefix("apiserver listening on ") {
                url = rest.split_whitespace().next().map(str::to_owned);
                break;
            }
        }
        let Some(url) = url else {
            let _ = child.kill();
            panic!("apiserver did not start");
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        ServerProcess {
            child,
            url,
            kubeconfig: data_dir.join("kubeconfig"),
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Sends SIGTERM and waits for the exit status (None if it had to be killed).
    pub fn terminate(mut self) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An answer of the server to one raw request.
pub struct Answer {
    /// The status code.
    pub status: axum::http::StatusCode,
    /// The `Warning` headers, in order.
    pub warnings: Vec<String>,
    /// The body as JSON (`null` when it is not JSON).
    pub body: serde_json::Value,
}

impl Answer {
    /// The `message` of a Status body (empty when there is none).
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// Sends one request with `body` as `content_type` through `client` and reads the answer.
pub async fn send_raw(
    client: &kube::Client,
    method: axum::http::Method,
    uri: &str,
    content_type: &str,
    body: &[u8],
) -> Answer {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.to_vec()))
        .expect("request");
    let response = client.send(request).await.expect("send");
    let status = response.status();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let bytes = response
        .into_body()
        .collect_bytes()
        .await
        .expect("response body");
    Answer {
        status,
        warnings,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}

/// Starts the binary on the memory backend in a fresh directory, with a kube client for it.
pub async fn start_memory() -> (ServerProcess, kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(dir.path(), &["--storage", "memory://"]);
    let config = kube::Config::new(server.url.parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    (server, client, dir)
}

/// One raw HTTP/1.1 request over TLS to a server that generated its CA (trusting only that
/// CA), with exactly these headers and body: (status code, body).
pub fn https(
    server: &ServerProcess,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = tls_connect(&server.url, &server.data_dir.join("tls/ca.crt"));
    let host = server.url.trim_start_matches("https://");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (code, body)
}

/// A blocking HTTPS connection to `url` (`https://host:port`) trusting only the CA in
/// `ca_pem` (for the raw requests of tests that need exact bytes on the wire).
pub fn tls_connect(
    url: &str,
    ca_pem: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_pem).expect("read CA") {
        roots.add(cert.expect("CA certificate")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = url.trim_start_matches("https://");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let connection =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("TLS client");
    let tcp = std::net::TcpStream::connect(host).expect("connect");
    rustls::StreamOwned::new(connection, tcp)
}

/// The kubectl to drive: `$KUBECTL`, else the pinned `kubectl.1.32` next to the `kubectl` on
/// PATH (gcloud installs ship pinned binaries), else `kubectl` on PATH.
pub fn kubectl_binary() -> PathBuf {
    if let Ok(path) = std::env::var("KUBECTL") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("kubectl"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    let Some(kubectl) = on_path else {
        panic!(
            "kubectl not found: install it with `apt-get install kubectl` (Kubernetes apt \
             repository) or download it from https://dl.k8s.io/release/v1.32.0/bin/linux/amd64/kubectl \
             and put it on PATH (or set KUBECTL=/path/to/kubectl)"
        );
    };
    let real = std::fs::canonicalize(&kubectl).unwrap_or(kubectl.clone());
    if let Some(dir) = real.parent() {
        let pinned = dir.join("kubectl.1.32");
        if pinned.is_file() {
            return pinned;
        }
    }
    kubectl
}

/// The kubectls to drive: `$KUBECTL` alone when set, else every pinned `kubectl.1.27` to
/// `kubectl.1.33` next to the `kubectl` on PATH (gcloud installs ship them), else that
/// `kubectl` alone.
pub fn kubectl_binaries() -> Vec<PathBuf> {
    if std::env::var_os("KUBECTL").is_some() {
        return vec![kubectl_binary()];
    }
    let chosen = kubectl_binary();
    let pinned: Vec<PathBuf> = chosen
        .parent()
        .map(|dir| {
            (27..=33)
                .map(|minor| dir.join(format!("kubectl.1.{minor}")))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    if pinned.is_empty() {
        vec![chosen]
    } else {
        pinned
    }
}

/// An in-process server on the storage `url` with every built-in kind and its controllers,
/// serving on a loopback port: the server, its `http://` address and a kube-rs client.
pub async fn start_in_process(url: &str) -> (apiserver::ApiServer, String, kube::Client) {
    let storage = storage::open(url).await.expect("storage");
    let mut builder = apiserver::ServerBuilder::new(storage).expect("builder");
    apiserver::kinds::register_all(&mut builder, None).expect("register");
    let server = builder.build().expect("build");
    server.bootstrap().await.expect("bootstrap");
    server.controllers();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let router = server.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let config = kube::Config::new(address.parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    (server, address, client)
}

/// A GET of `path` as a Table (200 required), parsed.
pub async fn get_table(address: &str, path: &str) -> Value {
    let (code, body) = raw_request(
        address,
        "GET",
        path,
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("a JSON Table")
}

/// One HTTP/1.1 request over a fresh connection; the status code and the body.
pub async fn raw_request(
    address: &str,
    method: &str,
    path: &str,
    accept: &str,
    body: Option<Value>,
) -> (u16, String) {
    let (code, _, body) = raw_exchange(address, method, path, accept, "", body).await;
    (code, body)
}

/// One HTTP/1.1 request over a fresh connection, with `extra` header lines; the status code,
/// the response head and the body.
pub async fn raw_exchange(
    address: &str,
    method: &str,
    path: &str,
    accept: &str,
    extra: &str,
    body: Option<Value>,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("loopback I/O");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("loopback I/O");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("loopback I/O");
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (code, head.to_owned(), body)
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}
