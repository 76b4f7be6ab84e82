//! `--max-requests-inflight` and `--max-mutating-requests-inflight`: a client that holds a
//! mutating request open (a body that never finishes) fills a pool of one; the next write is
//! refused with 429, `Retry-After` and a Status, while reads, watches and probes go on; once
//! the slow client goes, writes are served again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use apiserver::inflight::InFlightLimits;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// Sends `request` (without the final blank line's body) on a new connection and reads the
/// whole answer: status code, headers (lower-cased names) and body.
async fn exchange(address: SocketAddr, request: String) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|status| status.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (code, headers, body.to_owned())
}

fn post(name: &str) -> String {
    let body =
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#);
    format!(
        "POST {CMS} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
}

#[tokio::test]
async fn a_full_pool_answers_429_and_others_go_on() {
    let storage = storage::open("memory://").await.unwrap();
    let mut builder = apiserver::ServerBuilder::new(storage)
        .unwrap()
        .with_inflight_limits(InFlightLimits::new(1, 1));
    apiserver::kinds::register_all(&mut builder, None).unwrap();
    let server = builder.build().unwrap();
    server.bootstrap().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, server.router()).into_future());

    // A slow client: headers promise a body it never finishes, so its create holds the only
    // mutating slot while the handler waits for the body.
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(
        format!(
            "POST {CMS} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
             content-length: 1000\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (code, headers, body) = exchange(address, post("refused")).await;
    assert_eq!(code, 429, "{body}");
    assert!(
        headers.contains(&("retry-after".to_owned(), "1".to_owned())),
        "{headers:?}"
    );
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Too many requests, please try again later."
    );
    assert_eq!(status["details"]["retryAfterSeconds"], 1);

    // Reads have their own pool; probes and watches need no slot.
    assert_eq!(exchange(address, get(CMS)).await.0, 200);
    assert_eq!(exchange(address, get("/readyz")).await.0, 200);
    let mut watch = TcpStream::connect(address).await.unwrap();
    watch
        .write_all(get(&format!("{CMS}?watch=true&timeoutSeconds=1")).as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 12];
    watch.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    // The slow client goes: its slot is free again.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, _, body) = exchange(address, post("served")).await;
        if code == 201 {
            break;
        }
        assert_eq!(code, 429, "{body}");
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
