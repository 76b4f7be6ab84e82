//! Starting the `apiserver` binary for end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
