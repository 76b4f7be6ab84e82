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
        // Reads stderr to the end (whatever its bytes) so the binary never blocks on a full
        // pipe; the lines before the serving line are kept for a failure's message.
        std::thread::spawn(move || {
            let mut found = Some(found);
            let mut before = String::new();
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                match serving_port(&text) {
                    Some(port) => {
                        if let Some(found) = found.take() {
                            let _ = found.send(Ok(port));
                        }
                    }
                    None if found.is_some() => before.push_str(&text),
                    None => {}
                }
                line.clear();
            }
            if let Some(found) = found.take() {
                let _ = found.send(Err(before));
            }
        });
        match port.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(port)) => FrontProcess { child, port },
            failed => {
                let _ = child.kill();
                let status = child.wait().ok();
                let output = match failed {
                    Ok(Err(output)) => output,
                    _ => "(no serving line within 30 s)".to_owned(),
                };
                panic!("etcd-front did not start listening (exit status {status:?}):\n{output}")
            }
        }
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
