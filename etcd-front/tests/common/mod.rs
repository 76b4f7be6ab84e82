//! What the tests of the `etcd-front` binary share: the binary on a free port, and etcdctl.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// Starts the binary over `storage`, listening on `scheme://127.0.0.1:<free port>`, with
    /// `extra` flags, and waits until it accepts connections.
    pub fn start(storage: &str, scheme: &str, extra: &[String]) -> FrontProcess {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_etcd-front"))
            .arg(format!("--storage={storage}"))
            .arg(format!("--listen-client-urls={scheme}://127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "etcd-front did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
