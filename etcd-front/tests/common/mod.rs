//! What the tests of the `etcd-front` binary share: the binary on a free port, and etcdctl.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The message when etcdctl is missing.
pub const ETCDCTL_MISSING: &str =
    "etcdctl not found on PATH: install it with `apt-get install etcd-client`";

/// Fails the test, naming the package to install, when etcdctl cannot run.
pub fn require_etcdctl() {
    let available = Command::new("etcdctl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(available, "{ETCDCTL_MISSING}");
}

/// The `etcd-front` binary serving on a free loopback port; killed when dropped.
pub struct FrontProcess {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl FrontProcess {
    /// Starts the binary over `storage`, listening on `scheme://127.0.0.1:0`, with `extra`
    /// flags, and waits until it has bound: the port is the one the binary names on its
    /// "serving" line. (Picking a free port here and handing it over would race with the other
    /// tests of the binary, which may be handed the same port between its release and the bind.)
    pub fn start(storage: &str, scheme: &str, extra: &[String]) -> FrontProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etcd-front"))
            .arg(format!("--storage={storage}"))
            .arg(format!("--listen-client-urls={scheme}://127.0.0.1:0"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (found, port) = std::sync::mpsc::channel();
        // Reads stderr to the end so the binary never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = serving_port(&line) {
                    if let Some(found) = found.take() {
                        let _ = found.send(port);
                    }
                }
            }
        });
        let port = port
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let status = child.try_wait().ok().flatten();
                panic!("etcd-front did not start listening (exit status: {status:?})")
            });
        FrontProcess { child, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for FrontProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port of the first URL on the binary's "serving the etcd v3 API on URL,... over" line.
fn serving_port(line: &str) -> Option<u16> {
    let urls = line.split(" serving the etcd v3 API on ").nth(1)?;
    let first = urls.split([',', ' ']).next()?;
    first.rsplit(':').next()?.parse().ok()
}
