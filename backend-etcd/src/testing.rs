//! Throw-away etcd servers and clusters for tests and benchmarks (feature `testing`).
//!
//! Each member runs the `etcd` binary from `PATH` on free loopback ports with a temporary data
//! directory, with progress notifications every second and short election timeouts. It is killed
//! when its handle is dropped, and a small watchdog process kills it too if the test process
//! dies without dropping it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The message of the error raised when `etcd` is not installed.
pub const ETCD_MISSING: &str =
    "etcd not found on PATH: install it with `apt-get install etcd-server`";

/// Why a test server could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestServerError {
    /// The `etcd` binary is not on `PATH`.
    #[error("{ETCD_MISSING}")]
    EtcdMissing,
    /// Starting or talking to a process failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `etcdctl snapshot restore` could not make a data directory of a snapshot.
    #[error(
        "etcdctl snapshot restore failed (install etcdctl with `apt-get install etcd-client`): {output}"
    )]
    SnapshotRestore {
        /// What etcdctl printed, or why it could not run.
        output: String,
    },
    /// etcd did not become healthy in time.
    #[error("etcd did not become healthy within {timeout:?}; its log:\n{log}")]
    NotHealthy {
        /// How long we waited.
        timeout: Duration,
        /// The tail of etcd's output.
        log: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestServerError {
    let context = context.into();
    move |source| TestServerError::Io { context, source }
}

/// How long to wait for a member or cluster to become healthy.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

/// One free loopback port (the OS picks it; a race with another process is possible but rare,
/// and shows as a start failure).
fn free_port() -> Result<u16, TestServerError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("reading a bound port"))?
        .port())
}

/// Whether `etcd` can be run.
fn etcd_on_path() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One etcd member: its ports, data directory and process.
#[derive(Debug)]
pub struct EtcdMember {
    name: String,
    client_port: u16,
    peer_port: u16,
    initial_cluster: String,
    cluster_token: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    process: Option<Child>,
    watchdog: Option<Child>,
}

impl EtcdMember {
    /// The client endpoint, `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Whether the process is running (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    fn spawn(&mut self, state: &str) -> Result<(), TestServerError> {
        let log = std::fs::File::create(&self.log_path).map_err(io("creating the etcd log"))?;
        let log_err = log.try_clone().map_err(io("cloning the etcd log handle"))?;
        let client_url = format!("http://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg(&self.cluster_token)
            .arg("--experimental-watch-progress-notify-interval=1s")
            .arg("--heartbeat-interval=50")
            .arg("--election-timeout=500")
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    TestServerError::EtcdMissing
                } else {
                    io("starting etcd")(e)
                }
            })?;
        // Kills etcd if this process dies without dropping the handle.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {parent} 2>/dev/null && kill -0 {etcd} 2>/dev/null; do sleep 1; done; kill -9 {etcd} 2>/dev/null",
                parent = std::process::id(),
                etcd = child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        self.process = Some(child);
        self.watchdog = watchdog;
        Ok(())
    }

    /// Makes the member's data directory from a snapshot with `etcdctl snapshot restore`.
    fn restore(&self, snapshot: &Path) -> Result<(), TestServerError> {
        let output = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("snapshot")
            .arg("restore")
            .arg(snapshot)
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-token")
            .arg(&self.cluster_token)
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{}", self.peer_port))
            .output()
            .map_err(|e| TestServerError::SnapshotRestore {
                output: format!("cannot run etcdctl: {e}"),
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(TestServerError::SnapshotRestore {
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }

    /// Kills the member at once (SIGKILL), as a crash would. Its data directory is kept.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
        self.stop_watchdog();
    }

    /// Stops the member gracefully (SIGTERM), waiting up to 10 s before killing it.
    pub fn terminate(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(process.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = process.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = process.kill();
            let _ = process.wait();
        }
        self.stop_watchdog();
    }

    fn stop_watchdog(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    /// Starts a stopped member again on the same ports and data directory, and waits until it
    /// is healthy.
    pub fn restart(&mut self) -> Result<(), TestServerError> {
        if self.process.is_none() {
            self.spawn("existing")?;
        }
        self.wait_healthy(HEALTHY_TIMEOUT)
    }

    /// Asks the member's `/health` endpoint until it reports healthy.
    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), TestServerError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(process) = self.process.as_mut() {
                if let Ok(Some(status)) = process.try_wait() {
                    self.process = None;
                    self.stop_watchdog();
                    return Err(TestServerError::NotHealthy {
                        timeout,
                        log: format!("(etcd exited with {status})\n{}", self.log_tail()),
                    });
                }
            }
            if self.healthy() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(TestServerError::NotHealthy {
            timeout,
            log: self.log_tail(),
        })
    }

    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /health HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.client_port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.contains("\"health\":\"true\"")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of etcd members on loopback (one member for a plain test server). Dropping it
/// kills every member and removes the data directories.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<EtcdMember>,
    // Dropped after the members (field order), so etcd never sees its directory vanish.
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts a single-member etcd and waits until it is healthy.
    pub fn start_single() -> Result<Self, TestServerError> {
        Self::start(1)
    }

    /// Starts a cluster of `size` members on free loopback ports and waits until every member
    /// is healthy. Fails with [`TestServerError::EtcdMissing`] when `etcd` is not on `PATH`.
    pub fn start(size: usize) -> Result<Self, TestServerError> {
        Self::start_with(size, None)
    }

    /// Starts a single-member etcd on a data directory that `etcdctl snapshot restore` made
    /// from `snapshot` (a file of `etcdctl snapshot save`), and waits until it is healthy.
    /// Needs `etcdctl` as well as `etcd` on `PATH`.
    pub fn from_snapshot(snapshot: &Path) -> Result<Self, TestServerError> {
        Self::start_with(1, Some(snapshot))
    }

    fn start_with(size: usize, snapshot: Option<&Path>) -> Result<Self, TestServerError> {
        if !etcd_on_path() {
            return Err(TestServerError::EtcdMissing);
        }
        // A port picked here may be taken by another process before etcd binds it: try again.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::try_start(size.max(1), snapshot) {
                Ok(cluster) => return Ok(cluster),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(TestServerError::EtcdMissing))
    }

    fn try_start(size: usize, snapshot: Option<&Path>) -> Result<Self, TestServerError> {
        let dir = tempfile::Builder::new()
            .prefix("etcd-test-")
            .tempdir()
            .map_err(io("creating a temporary directory"))?;
        let mut ports = Vec::new();
        while ports.len() < size * 2 {
            let port = free_port()?;
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let names: Vec<String> = (0..size).map(|i| format!("member{i}")).collect();
        let initial_cluster = names
            .iter()
            .zip(ports.chunks(2))
            .map(|(name, p)| format!("{name}=http://127.0.0.1:{}", p[1]))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("test-{}-{}", std::process::id(), ports[0]);
        let mut members: Vec<EtcdMember> = names
            .into_iter()
            .zip(ports.chunks(2))
            .map(|(name, p)| EtcdMember {
                data_dir: dir.path().join(format!("{name}.data")),
                log_path: dir.path().join(format!("{name}.log")),
                name,
                client_port: p[0],
                peer_port: p[1],
                initial_cluster: initial_cluster.clone(),
                cluster_token: token.clone(),
                process: None,
                watchdog: None,
            })
            .collect();
        if let Some(snapshot) = snapshot {
            for member in &members {
                member.restore(snapshot)?;
            }
        }
        for member in &mut members {
            member.spawn("new")?;
        }
        for member in &mut members {
            member.wait_healthy(HEALTHY_TIMEOUT)?;
        }
        Ok(EtcdCluster { members, _dir: dir })
    }

    /// Every member's client endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }

    /// An `etcd://` URL naming every member and `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}{prefix}", self.endpoints().join(","))
    }

    /// The members, to stop and restart them.
    pub fn members_mut(&mut self) -> &mut [EtcdMember] {
        &mut self.members
    }

    /// The members.
    pub fn members(&self) -> &[EtcdMember] {
        &self.members
    }
}
