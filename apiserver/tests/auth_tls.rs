//! The binary's security flags: bearer tokens (401 without one) over the TLS it generates,
//! TLS with a certificate of one's own and the generated kubeconfig, refusing non-loopback
//! binds, and HTTP-level errors (404/405/413/400).

mod common;

use std::io::{Read, Write};
use std::process::Command;

use common::{ServerProcess, https, tls_connect};

/// Sends a POST whose headers declare `length` body bytes, without the body, and returns the
/// status code of the answer.
fn declared_length_only(
    server: &ServerProcess,
    path: &str,
    headers: &[(&str, &str)],
    length: usize,
) -> u16 {
    let mut stream = tls_connect(&server.url, &server.data_dir.join("tls/ca.crt"));
    let host = server.url.trim_start_matches("https://");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {length}\r\n"
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn token_auth_and_http_errors() {
    let temp = tempfile::tempdir().expect("tempdir");
    let tokens = temp.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cret,admin,1,\"system:masters\"\n").expect("tokens");
    let data = temp.path().join("data");
    let server = ServerProcess::start(
        &data,
        &[
            "--token-auth-file",
            tokens.to_str().expect("path"),
            "--storage",
            "memory://",
        ],
    );
    let (code, body) = https(&server, "GET", "/api/v1/namespaces", &[], b"");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    let (code, _) = https(
        &server,
        "GET",
        "/api/v1/namespaces",
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(code, 401);
    let auth = [("Authorization", "Bearer s3cret")];
    let (code, body) = https(&server, "GET", "/api/v1/namespaces", &auth, b"");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"kind\":\"NamespaceList\""));
    assert_eq!(https(&server, "GET", "/readyz", &[], b"").0, 200);
    let kubeconfig = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig");
    assert!(kubeconfig.contains("token: s3cret"));

    // HTTP-level errors, all as metav1.Status.
    let (code, body) = https(&server, "GET", "/no/such/path", &auth, b"");
    assert_eq!(code, 404);
    assert!(body.contains("\"kind\":\"Status\""));
    let (code, body) = https(
        &server,
        "PUT",
        "/api/v1/namespaces/default/configmaps",
        &auth,
        b"{}",
    );
    assert_eq!(code, 405, "{body}");
    let json = [
        ("Authorization", "Bearer s3cret"),
        ("Content-Type", "application/json"),
    ];
    let (code, body) = https(
        &server,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &json,
        b"{nope",
    );
    assert_eq!(code, 400);
    assert!(body.contains("json parse error"), "{body}");
    // Only the headers of an oversized body: the server answers 413 from Content-Length, and a
    // client still writing megabytes after that answer would race the server's close.
    let code = declared_length_only(
        &server,
        "/api/v1/namespaces/default/configmaps",
        &json,
        3 * 1024 * 1024 + 10,
    );
    assert_eq!(code, 413);
    let (code, body) = https(
        &server,
        "GET",
        "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(",
        &auth,
        b"",
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = https(&server, "GET", "/metrics", &auth, b"");
    assert_eq!(code, 200);
    assert!(body.contains("apiserver_request_total"));
    assert!(body.contains("apiserver_storage_operation_duration_seconds"));
    assert!(body.contains("apiserver_open_watches"));
}

#[test]
fn refuses_non_loopback_without_tls_and_auth() {
    let temp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_apiserver"))
        .args([
            "--bind",
            "0.0.0.0:0",
            "--storage",
            "memory://",
            "--data-dir",
        ])
        .arg(temp.path())
        .output()
        .expect("run apiserver");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-insecure-non-loopback"), "{stderr}");
}

#[test]
fn tls_with_generated_kubeconfig() {
    let temp = tempfile::tempdir().expect("tempdir");
    let cert = temp.path().join("tls.crt");
    let key = temp.path().join("tls.key");
    // A certificate of one's own, self-signed: the kubeconfig must trust it as its CA.
    let pair = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
    let own = params.self_signed(&pair).expect("certificate");
    std::fs::write(&cert, own.pem()).expect("write certificate");
    std::fs::write(&key, pair.serialize_pem()).expect("write key");
    let tokens = temp.path().join("tokens.csv");
    std::fs::write(&tokens, "tok,admin,1\n").expect("tokens");
    let server = ServerProcess::start(
        &temp.path().join("data"),
        &[
            "--storage",
            "memory://",
            "--tls-cert",
            cert.to_str().expect("path"),
            "--tls-key",
            key.to_str().expect("path"),
            "--token-auth-file",
            tokens.to_str().expect("path"),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let Some(kubectl) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    }) else {
        panic!("kubectl not found: install it (see tests/kubectl_e2e.rs)");
    };
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .arg("--cache-dir")
        .arg(temp.path().join("cache"))
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/default"));
}

/// A client that never finishes its request headers is cut off after
/// `--request-header-timeout`, and others are served meanwhile.
#[test]
fn slow_header_clients_are_cut_off() {
    let temp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(
        &temp.path().join("data"),
        &[
            "--storage",
            "memory://",
            "--request-header-timeout",
            "500ms",
        ],
    );
    let host = server.url.trim_start_matches("http://");
    let mut slow = std::net::TcpStream::connect(host).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("write part of the headers");
    let started = std::time::Instant::now();
    // Served while the slow client holds its connection.
    let mut other = std::net::TcpStream::connect(host).expect("connect");
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    other.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    slow.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("read timeout");
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(5),
        "the slow client kept its connection for {waited:?}"
    );
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected answer to a slow client: {text}"
    );
}

/// Reads one answer on `stream` (headers, then a `Content-Length` or chunked body), leaving
/// the connection open.
fn read_answer(stream: &mut std::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    let mut read_byte = |answer: &mut Vec<u8>| {
        let n = stream.read(&mut byte).expect("read the answer");
        assert_eq!(n, 1, "the connection closed mid-answer: {answer:?}");
        answer.push(byte[0]);
    };
    while !answer.ends_with(b"\r\n\r\n") {
        read_byte(&mut answer);
    }
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    if head.contains("transfer-encoding: chunked") {
        // The last chunk is empty.
        while !answer.ends_with(b"\r\n0\r\n\r\n") {
            read_byte(&mut answer);
        }
    } else {
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no body length in {head}"));
        for _ in 0..length {
            read_byte(&mut answer);
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends a keep-alive `GET path` on `stream` and reads its answer.
fn get_on(stream: &mut std::net::TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("write a request");
    let answer = read_answer(stream);
    assert!(answer.starts_with("HTTP/1.1 200"), "GET {path}: {answer}");
    answer
}

/// How long after this call the server closes `stream`, which must stay silent meanwhile.
fn closed_after(stream: &mut std::net::TcpStream) -> std::time::Duration {
    let idle_from = std::time::Instant::now();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("read timeout");
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("the server closes the idle connection");
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    idle_from.elapsed()
}

/// Starts the binary on memory storage with the given connection timeouts and connects.
fn connect_with_timeouts(
    temp: &tempfile::TempDir,
    header: &str,
    idle: &str,
) -> (ServerProcess, std::net::TcpStream) {
    let server = ServerProcess::start(
        &temp.path().join("data"),
        &[
            "--storage",
            "memory://",
            "--request-header-timeout",
            header,
            "--idle-connection-timeout",
            idle,
        ],
    );
    let stream =
        std::net::TcpStream::connect(server.url.trim_start_matches("http://")).expect("connect");
    (server, stream)
}

fn assert_about(idled: std::time::Duration, idle: std::time::Duration) {
    assert!(
        idled >= idle.mul_f64(0.8) && idled < idle * 3,
        "the idle connection was closed after {idled:?}, not about {idle:?}"
    );
}

/// A keep-alive connection may wait between requests longer than the header timeout (as
/// kube-apiserver's, whose idle timeout is 90 s against 32 s for headers), and is closed once
/// it has been idle for `--idle-connection-timeout`.
#[test]
fn idle_connections_outlive_the_header_timeout() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (_server, mut stream) = connect_with_timeouts(&temp, "500ms", "3s");
    get_on(&mut stream, "/healthz");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    get_on(&mut stream, "/healthz");
    assert_about(closed_after(&mut stream), std::time::Duration::from_secs(3));
}

/// The idle deadline holds without a header deadline, and after a request (here a watch)
/// that lasted longer than the header timeout.
#[test]
fn idle_connections_close_after_long_requests_and_without_a_header_timeout() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (_server, mut stream) = connect_with_timeouts(&temp, "0", "2s");
    get_on(&mut stream, "/healthz");
    assert_about(closed_after(&mut stream), std::time::Duration::from_secs(2));

    let temp = tempfile::tempdir().expect("tempdir");
    let (_server, mut stream) = connect_with_timeouts(&temp, "500ms", "2s");
    get_on(
        &mut stream,
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=2",
    );
    assert_about(closed_after(&mut stream), std::time::Duration::from_secs(2));
}
