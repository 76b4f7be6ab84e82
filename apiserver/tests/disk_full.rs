//! A full disk. The server's data directory is a small tmpfs this test mounts (as root, or
//! through passwordless sudo), filled to the last byte by a filler file. Writes then fail
//! with a Status that names the problem (no panic, no hang), reads and an open watch keep
//! working, nothing acknowledged is lost (also across a SIGKILL and restart), and once the
//! filler is deleted writes succeed again and the open watch sees them. On SQLite, the
//! default store, and on sled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use common::ServerProcess;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// A size-limited tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

fn as_root(program: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    let direct = Command::new(program).args(args).output();
    match direct {
        Ok(output) if output.status.success() => Ok(output),
        _ => Command::new("sudo")
            .arg("-n")
            .arg(program)
            .args(args)
            .output(),
    }
}

impl Tmpfs {
    fn mount(megabytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().to_str().unwrap().to_owned();
        let size = format!("size={megabytes}m");
        let output = as_root("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", &target]);
        let mounted = output.as_ref().is_ok_and(|o| o.status.success());
        assert!(
            mounted,
            "this test mounts a {megabytes} MiB tmpfs to fill it, which needs root or \
             passwordless sudo (`sudo -n mount`); run the tests as root. mount said: {:?}",
            output.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = self.dir.path().to_str().unwrap_or_default().to_owned();
        let _ = as_root("umount", &["-l", &target]);
    }
}

/// Fills the file system holding `path` to the last byte with the file `path`.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let mut written = 0u64;
    for chunk in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
        let bytes = vec![0u8; chunk];
        while file.write_all(&bytes).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    written
}

/// One request on a new connection: (status code, body).
async fn send(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let message = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(message.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer),
    )
    .await;
    assert!(read.is_ok(), "{method} {path} hung for 20 s");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

fn config_map(name: &str, size: usize) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"v":"{}"}}}}"#,
        "x".repeat(size)
    )
}

/// Opens a watch of the configmaps and forwards each event's type and name.
async fn watch(address: &str) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {CMS}?watch=1 HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            // Chunked framing: the events are the lines that are JSON objects with a type (a
            // chunk's size line may parse as a JSON number).
            let event = serde_json::from_str::<serde_json::Value>(&line).ok();
            if let Some(event) = event.filter(|event| event.get("type").is_some()) {
                let name = event["object"]["metadata"]["name"].as_str().unwrap_or("");
                let kind = event["type"].as_str().unwrap_or("");
                if sender.send(format!("{kind} {name}")).is_err() {
                    return;
                }
            }
        }
    });
    receiver
}

/// Every event up to and including `last`.
async fn events_until(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    last: &str,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(event)) => {
                let done = event == last;
                seen.push(event);
                if done {
                    return seen;
                }
            }
            Ok(None) => panic!("the watch ended before {last}: {seen:?}"),
            Err(_) => panic!("no {last} within 20 s: {seen:?}"),
        }
    }
}

async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<String>, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(event)) if event == wanted => return,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the watch ended before {wanted}"),
            Err(_) => panic!("no {wanted} within 20 s"),
        }
    }
}

#[tokio::test]
async fn sqlite_on_a_full_disk() {
    full_disk(None).await;
}

/// sled refuses every write once a flush failed; the store reopens its directory once there
/// is room again.
#[tokio::test]
async fn sled_on_a_full_disk() {
    full_disk(Some("sled")).await;
}

/// The scenario on the default store, or on `backend` (a directory under the data directory).
async fn full_disk(backend: Option<&str>) {
    let tmpfs = Tmpfs::mount(48);
    let data_dir: PathBuf = tmpfs.path().join("data");
    let storage =
        backend.map(|scheme| format!("--storage={scheme}://{}", data_dir.join(scheme).display()));
    let args: Vec<&str> = storage.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&data_dir, &args);
    let address = server.url.trim_start_matches("http://").to_owned();

    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let name = format!("before-{i}");
        let (code, body) = send(&address, "POST", CMS, &config_map(&name, 1024)).await;
        assert_eq!(code, 201, "{body}");
        acknowledged.push(name);
    }
    let mut events = watch(&address).await;
    let filler = tmpfs.path().join("filler");
    let filled = fill(&filler);

    // Writes until one fails: the store may still have room inside its files at first.
    let mut refusal = None;
    for i in 0..400 {
        let name = format!("full-{i}");
        let (code, body) = send(&address, "POST", CMS, &config_map(&name, 64 * 1024)).await;
        match code {
            201 => acknowledged.push(name),
            _ => {
                refusal = Some((name, code, body));
                break;
            }
        }
    }
    let (refused, code, body) = refusal.expect("a write failed once the disk was full");
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status body");
    eprintln!(
        "disk full after a {filled}-byte filler; {} writes acknowledged; refused with {code}: {}",
        acknowledged.len(),
        status["message"]
    );
    assert!(
        (500..600).contains(&code),
        "a server-side failure, not {code}: {body}"
    );
    assert_eq!(status["kind"], "Status", "{body}");
    assert_eq!(status["code"], code, "{body}");
    let message = status["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        message.contains("full") || message.contains("space"),
        "the Status names the full disk: {body}"
    );

    // Reads and the open watch keep working while the disk is full.
    for name in &acknowledged {
        let (code, body) = send(&address, "GET", &format!("{CMS}/{name}"), "").await;
        assert_eq!(code, 200, "reading {name} on a full disk: {body}");
    }
    let (code, _) = send(&address, "GET", CMS, "").await;
    assert_eq!(code, 200, "a list on a full disk");
    // A watch opened now works too.
    let mut opened_while_full = watch(&address).await;

    // Free the space: writes succeed again, and the watch opened before sees them.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = send(&address, "POST", CMS, &config_map("after", 1024)).await;
        // 409: an attempt whose answer was lost to the outage did create it.
        if code == 201 || code == 409 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume after freeing space: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    acknowledged.push("after".to_owned());
    // The watch opened before the disk filled saw every acknowledged write once, in order; the
    // refused write, whose outcome was unknown, at most once (if it reached the disk).
    let seen = events_until(&mut events, "ADDED after").await;
    let refused = format!("ADDED {refused}");
    assert!(
        seen.iter().filter(|event| **event == refused).count() <= 1,
        "{seen:?}"
    );
    let seen: Vec<&String> = seen
        .iter()
        .filter(|event| **event != refused && !event.starts_with("ADDED before-"))
        .collect();
    let expected: Vec<String> = acknowledged
        .iter()
        .filter(|name| !name.starts_with("before-"))
        .map(|name| format!("ADDED {name}"))
        .collect();
    assert_eq!(
        seen,
        expected.iter().collect::<Vec<_>>(),
        "the watch's events across the outage"
    );
    next_event(&mut opened_while_full, "ADDED after").await;

    // Nothing acknowledged is lost, across a SIGKILL and a restart either.
    drop(server);
    let server = ServerProcess::start(&data_dir, &args);
    let address = server.url.trim_start_matches("http://").to_owned();
    for name in &acknowledged {
        let (code, body) = send(&address, "GET", &format!("{CMS}/{name}"), "").await;
        assert_eq!(code, 200, "{name} after the restart: {body}");
    }
    drop(server);
}
