//! Many connections at once, against the `apiserver` binary: 10,000 idle connections,
//! slow-loris clients that trickle their request headers, and watchers that never read do
//! not stop a probe client from being served (its GET p99 stays under 100 ms meanwhile), and
//! the server admits 12,000 concurrent connections, every one of them served.
//!
//! The server runs with `--request-header-timeout=120s`: at the default 32 s it would rightly
//! close connections that sent no complete request before this test is done with them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::ServerProcess;

const IDLE: usize = 10_000;
const ADMITTED: usize = 12_000;
const SLOW_LORIS: usize = 200;
const STALLED_WATCHERS: usize = 100;
const PROBES: usize = 300;
const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// Opens `count` connections to `address`, at most 256 connecting at once.
async fn connect_many(address: &str, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..count {
        if pending.len() >= 256 {
            let stream = pending.join_next().await.unwrap().unwrap();
            streams.push(stream);
        }
        let address = address.to_owned();
        pending.spawn(async move { TcpStream::connect(address).await.expect("connect") });
    }
    while let Some(stream) = pending.join_next().await {
        streams.push(stream.unwrap());
    }
    streams
}

/// Reads one HTTP/1.1 response (head and a `content-length` body) from `stream` and returns
/// its status code.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.expect("read a response");
        assert!(
            read > 0,
            "the server closed a connection that sent a request"
        );
        buffer.extend_from_slice(&chunk[..read]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |n| n.trim().parse().expect("a content-length"));
        while buffer.len() < end + 4 + length {
            let read = stream.read(&mut chunk).await.expect("read a body");
            assert!(read > 0, "the server closed a connection mid-body");
            buffer.extend_from_slice(&chunk[..read]);
        }
        return head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line");
    }
}

async fn request(stream: &mut TcpStream, method: &str, path: &str, body: &str) -> u16 {
    let message = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(message.as_bytes()).await.expect("send");
    read_response(stream).await
}

fn config_map(name: &str, size: usize) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"v":"{}"}}}}"#,
        "x".repeat(size)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_stalled_clients_do_not_starve_others() {
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("read the open-file limit");
    assert!(
        limit >= (ADMITTED + 1_000) as u64,
        "this test holds {ADMITTED} connections but may open only {limit} files; raise the \
         limit (`ulimit -n 20000`, or LimitNOFILE in a systemd unit) and run it again"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &["--request-header-timeout=120s"]);
    let address = server.url.trim_start_matches("http://").to_owned();

    let mut probe = TcpStream::connect(&address).await.unwrap();
    probe.set_nodelay(true).unwrap();
    assert_eq!(
        request(&mut probe, "POST", CMS, &config_map("probe", 16)).await,
        201
    );

    // A writer keeps events flowing to the watchers that never read.
    let writer_address = address.clone();
    let writer = tokio::spawn(async move {
        let mut stream = TcpStream::connect(writer_address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        for i in 0u64.. {
            let name = format!("flow-{}", i % 50);
            let path = format!("{CMS}/{name}");
            let status = request(&mut stream, "PUT", &path, &config_map(&name, 4096)).await;
            if status == 404 {
                assert_eq!(
                    request(&mut stream, "POST", CMS, &config_map(&name, 4096)).await,
                    201
                );
            } else {
                assert_eq!(status, 200, "an update of {name}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let started = Instant::now();
    let mut idle = connect_many(&address, IDLE).await;
    let connected = started.elapsed();

    let mut slow = connect_many(&address, SLOW_LORIS).await;
    for stream in &mut slow {
        stream
            .write_all(b"GET /version HTTP/1.1\r\nx-slow: ")
            .await
            .unwrap();
    }
    let trickle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for stream in &mut slow {
                // A header that never ends, one byte a second.
                if stream.write_all(b"z").await.is_err() {
                    return slow;
                }
            }
        }
    });

    let mut stalled = connect_many(&address, STALLED_WATCHERS).await;
    for stream in &mut stalled {
        let watch = format!("GET {CMS}?watch=1 HTTP/1.1\r\nhost: test\r\n\r\n");
        stream.write_all(watch.as_bytes()).await.unwrap();
    }
    // Long enough for the never-read sockets to fill with events.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let mut latencies = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        let sent = Instant::now();
        let status = request(&mut probe, "GET", &format!("{CMS}/probe"), "").await;
        latencies.push(sent.elapsed());
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies.sort();
    let p50 = latencies[PROBES / 2];
    let p99 = latencies[PROBES * 99 / 100];
    eprintln!(
        "{IDLE} idle connections in {connected:?}, {SLOW_LORIS} slow-loris clients, \
         {STALLED_WATCHERS} watchers that never read: probe GET p50 {p50:?}, p99 {p99:?}, \
         max {:?}",
        latencies[PROBES - 1]
    );
    assert!(
        p99 < Duration::from_millis(100),
        "the probe's GET p99 was {p99:?} (bound: 100 ms)"
    );

    // Admission: top the idle connections up to 12,000 and have every one served while all
    // stay open.
    let open_before = idle.len();
    idle.extend(connect_many(&address, ADMITTED - open_before).await);
    let mut served = 0;
    for chunk in idle.chunks_mut(500) {
        let answers = futures::future::join_all(
            chunk
                .iter_mut()
                .map(|stream| request(stream, "GET", "/healthz", "")),
        )
        .await;
        served += answers.iter().filter(|&&status| status == 200).count();
    }
    eprintln!(
        "{} connections open at once beside the others; {served} answered /healthz",
        idle.len()
    );
    assert_eq!(served, ADMITTED, "every admitted connection is served");

    // The writer only ends by failing: surface why.
    if writer.is_finished() {
        writer.await.unwrap();
    } else {
        writer.abort();
    }
    trickle.abort();
    drop(stalled);
    drop(server);
}
