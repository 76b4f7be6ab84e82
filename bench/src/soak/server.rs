//! The API server under soak: this binary re-executed as `storage-soak serve ARGS`, which runs
//! `apiserver::cli::run` exactly as the `apiserver` binary does, so its memory, descriptors
//! and files are the server's alone.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

/// How long a server may take to start listening.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A running server process; dropping it kills the process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ServerProcess {
    /// Starts the server on a free loopback port over `storage_url`, with its kubeconfig and
    /// default files in `data_dir`, and waits until it says where it listens.
    ///
    /// # Errors
    ///
    /// When the process cannot start or exits before listening.
    pub fn start(data_dir: &Path, storage_url: &str, extra: &[String]) -> Result<Self> {
        let exe = std::env::current_exe().context("locating storage-soak itself")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--bind=127.0.0.1:0")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--storage={storage_url}"))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the server process")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        // A thread reads stdout (and keeps draining it, so the server never blocks on a full
        // pipe) and hands over the address, so a server that never listens cannot hang us.
        let (address, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("apiserver listening on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = address.send(url.to_owned());
                }
            }
        });
        let mut server = ServerProcess {
            child,
            base: String::new(),
        };
        match listening.recv_timeout(START_TIMEOUT) {
            Ok(base) => server.base = base,
            Err(_) if !server.running() => bail!("the server exited before listening"),
            Err(_) => bail!("the server did not listen within {START_TIMEOUT:?}"),
        }
        Ok(server)
    }

    /// The process id, for reading `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
