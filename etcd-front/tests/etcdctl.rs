//! `etcdctl` 3.4 (Debian's `etcd-client`) runs one scripted scenario against a real etcd and
//! against the front over SQLite; the outputs must match once IDs, revisions, endpoints,
//! versions, sizes and timings are masked.
//!
//! The scenario covers put, get (prefix, revision, limit, keys-only, sort, from-key, ranges,
//! JSON), del (prefix, prev-kv), txn, watch (prefix, revision, prev-kv), leases (grant,
//! put with a lease, time-to-live with keys, keep-alive, list, revoke), lock, elect,
//! compaction, endpoint status and health, member list, alarms, defrag, and snapshot save,
//! status and restore (`tests/snapshot.rs` starts etcd on the restored directory).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backend_etcd::testing::EtcdCluster;
use regex::Regex;

mod common;

use common::{ETCDCTL_MISSING, FrontProcess, require_etcdctl};

/// One etcdctl invocation of the scenario.
struct Step {
    args: &'static [&'static str],
    stdin: Option<&'static str>,
    /// Long-running commands (watch, elect) are stopped after this long.
    stop_after: Option<Duration>,
    /// Saves the first capture group of this pattern in stdout as `{name}`.
    capture: Option<(&'static str, &'static str)>,
}

const fn run(args: &'static [&'static str]) -> Step {
    Step {
        args,
        stdin: None,
        stop_after: None,
        capture: None,
    }
}

const fn capture(args: &'static [&'static str], name: &'static str, pattern: &'static str) -> Step {
    Step {
        args,
        stdin: None,
        stop_after: None,
        capture: Some((name, pattern)),
    }
}

const fn stopped(args: &'static [&'static str], after_ms: u64) -> Step {
    Step {
        args,
        stdin: None,
        stop_after: Some(Duration::from_millis(after_ms)),
        capture: None,
    }
}

const TXN: &str = "mod(\"foo\") > \"0\"\n\nput foo txn-success\nget foo\n\nput foo txn-failure\n\n";
const TXN_FAILING: &str = "value(\"foo\") = \"nope\"\n\nput foo no\n\nget foo\nput other yes\n\n";

fn scenario() -> Vec<Step> {
    vec![
        run(&["put", "foo", "bar"]),
        capture(
            &["put", "foo2", "bar2", "-w", "json"],
            "rev_foo2",
            r#""revision":(\d+)"#,
        ),
        run(&["put", "fop", "x"]),
        run(&["put", "a/b", "1"]),
        run(&["put", "a/c", "2"]),
        capture(
            &["get", "foo", "-w", "json"],
            "rev_foo",
            r#""mod_revision":(\d+)"#,
        ),
        run(&["get", "foo"]),
        run(&["get", "--prefix", "fo"]),
        run(&["get", "--prefix", "a", "--limit", "1"]),
        run(&["get", "--prefix", "a", "--keys-only"]),
        run(&["get", "--prefix", "", "--sort-by=MODIFY", "--order=DESCEND"]),
        run(&[
            "get",
            "--prefix",
            "",
            "--sort-by=VALUE",
            "--order=ASCEND",
            "--keys-only",
        ]),
        run(&["get", "--from-key", "b"]),
        run(&["get", "a/b", "a/d"]),
        run(&["get", "--prefix", "", "--count-only", "-w", "json"]),
        run(&["put", "foo", "baz", "--prev-kv"]),
        run(&["get", "foo", "--rev", "{rev_foo}"]),
        run(&["get", "foo", "-w", "json"]),
        run(&["put", "foo", "--ignore-value"]),
        run(&["get", "foo", "--print-value-only"]),
        run(&["del", "fop"]),
        run(&["del", "--prefix", "a", "--prev-kv"]),
        run(&["del", "missing"]),
        Step {
            stdin: Some(TXN),
            ..run(&["txn"])
        },
        Step {
            stdin: Some(TXN_FAILING),
            ..run(&["txn"])
        },
        run(&["get", "--prefix", "", "-w", "json"]),
        run(&["put", "", "empty"]),
        capture(
            &["lease", "grant", "60"],
            "lease",
            r"lease ([0-9a-f]+) granted",
        ),
        run(&["put", "--lease={lease}", "leased", "v"]),
        run(&["put", "--lease={lease}", "leased2", "v"]),
        run(&["lease", "timetolive", "{lease}", "--keys"]),
        run(&["lease", "keep-alive", "--once", "{lease}"]),
        run(&["lease", "list"]),
        run(&["lease", "revoke", "{lease}"]),
        run(&["get", "--prefix", "leased"]),
        run(&["lease", "timetolive", "{lease}"]),
        run(&["lease", "revoke", "{lease}"]),
        run(&["put", "--lease=1234", "k", "v"]),
        run(&["lock", "mylock", "echo", "locked"]),
        stopped(&["elect", "myelection", "alice"], 3000),
        stopped(
            &["watch", "--prefix", "fo", "--rev", "{rev_foo}", "--prev-kv"],
            3000,
        ),
        run(&["compaction", "{rev_foo2}"]),
        run(&["get", "foo", "--rev", "{rev_foo}"]),
        run(&["get", "foo2", "--rev", "{rev_foo2}"]),
        run(&["endpoint", "health"]),
        run(&["endpoint", "status"]),
        run(&["member", "list"]),
        run(&["alarm", "list"]),
        run(&["defrag"]),
        run(&["snapshot", "save", "{dir}/snap.db"]),
        run(&["snapshot", "status", "{dir}/snap.db", "-w", "json"]),
        run(&[
            "snapshot",
            "restore",
            "{dir}/snap.db",
            "--data-dir",
            "{dir}/restored",
        ]),
    ]
}

/// What one step printed, masked.
#[derive(Debug, PartialEq, Eq)]
struct Printed {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs the scenario against `endpoint`.
fn play(endpoint: &str) -> Vec<(String, Printed)> {
    // Snapshot files go here.
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().display().to_string();
    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("dir", dir_path.clone());
    let mut printed = Vec::new();
    for step in scenario() {
        let args: Vec<String> = step
            .args
            .iter()
            .map(|arg| {
                let mut arg = (*arg).to_owned();
                for (name, value) in &vars {
                    arg = arg.replace(&format!("{{{name}}}"), value);
                }
                arg
            })
            .collect();
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .arg("--command-timeout=10s")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect(ETCDCTL_MISSING);
        if let Some(input) = step.stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let output = match step.stop_after {
            Some(after) => stop_after(child, after),
            None => child.wait_with_output().unwrap(),
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if let Some((name, pattern)) = step.capture {
            let value = Regex::new(pattern)
                .unwrap()
                .captures(&stdout)
                .and_then(|c| c.get(1))
                .unwrap_or_else(|| panic!("{args:?} printed no {name}: {stdout}"))
                .as_str()
                .to_owned();
            vars.insert(name, value);
        }
        printed.push((
            args.join(" "),
            Printed {
                success: step.stop_after.is_some() || output.status.success(),
                stdout: mask(&stdout.replace(&dir_path, "<dir>"), endpoint),
                stderr: mask(
                    &String::from_utf8_lossy(&output.stderr).replace(&dir_path, "<dir>"),
                    endpoint,
                ),
            },
        ));
    }
    printed
}

fn stop_after(mut child: Child, after: Duration) -> std::process::Output {
    std::thread::sleep(after);
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// Masks what legitimately differs between two servers.
fn mask(text: &str, endpoint: &str) -> String {
    let host = endpoint.trim_start_matches("http://");
    let mut text = text
        .replace(endpoint, "<endpoint>")
        .replace(host, "<endpoint>");
    let rules: &[(&str, &str)] = &[
        (
            r#""(cluster_id|member_id|revision|raft_term|create_revision|mod_revision|raft_index|raft_applied_index|leader|dbSize|dbSizeInUse|ID|id|hash|totalKey|totalSize|restored-compact-revision)":-?\d+"#,
            r#""$1":<n>"#,
        ),
        (r"\b[0-9a-f]{16}\b", "<id>"),
        (r"\b[0-9a-f]{12,15}\b", "<id>"),
        (r"took = [^\s,]+", "took = <t>"),
        (r#""took":[^,}]+"#, r#""took":<t>"#),
        (r#""ts":"[^"]*""#, r#""ts":"<time>""#),
        (r#""ts":\d+(\.\d+)?"#, r#""ts":<time>"#),
        (r"client-[0-9a-f-]+", "client-<uuid>"),
        (r"started, [^,]*, [^,]*,", "started, <name>, <peer urls>,"),
        // endpoint status: raft term, raft index, applied index.
        (
            r"(true|false), (true|false), \d+, \d+, \d+,",
            "$1, $2, <term>, <index>, <index>,",
        ),
        (r"remaining\(\d+s\)", "remaining(<n>s)"),
        (r"compacted revision \d+", "compacted revision <n>"),
        (r"\b3\.\d+\.\d+\b", "<version>"),
        (r"\b\d+(\.\d+)? [kMG]?B\b", "<size>"),
        (r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(\.\d+)?", "<time>"),
    ];
    for (pattern, replacement) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, *replacement)
            .into_owned();
    }
    // etcd lists a lease's keys in Go map order, which varies from run to run.
    Regex::new(r"attached keys\(\[([^\]]*)\]\)")
        .unwrap()
        .replace_all(&text, |caps: &regex::Captures<'_>| {
            let mut keys: Vec<&str> = caps[1].split(' ').collect();
            keys.sort_unstable();
            format!("attached keys([{}])", keys.join(" "))
        })
        .into_owned()
}

/// `etcd-front` over SQLite in a directory of its own.
fn start_front() -> (FrontProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let front = FrontProcess::start(&storage, "http", &["--name=front".to_owned()]);
    (front, dir)
}

/// etcdctl 3.4 sends the endpoint it was given as the HTTP/2 `:authority` of some calls
/// (`endpoint status`, `defrag`, `snapshot`); with a scheme (`http://host:port`) that is not
/// an authority, and the front's HTTP/2 library refuses the request. Endpoints are given as
/// `host:port`, which both servers accept from every etcdctl call.
fn bare(endpoint: &str) -> String {
    endpoint.trim_start_matches("http://").to_owned()
}

#[test]
fn etcdctl_sees_the_front_as_it_sees_etcd() {
    require_etcdctl();
    let etcd = EtcdCluster::start_single().unwrap();
    let etcd_endpoint = etcd.endpoints()[0].clone();
    let (front, _dir) = start_front();
    let expected = play(&bare(&etcd_endpoint));
    let actual = play(&bare(&front.endpoint()));
    let mut differences = Vec::new();
    for ((command, want), (_, got)) in expected.iter().zip(&actual) {
        if want != got {
            differences.push(format!(
                "etcdctl {command}\n  etcd:  {want:?}\n  front: {got:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}",
        differences.len(),
        expected.len(),
        differences.join("\n")
    );
}

/// `etcdctl check perf --load=s` (60 s of writes from 50 clients, then a ranged delete of every
/// key it wrote) passes against the front over SQLite.
#[test]
fn check_perf_passes_against_the_front() {
    require_etcdctl();
    let (front, _dir) = start_front();
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", bare(&front.endpoint())))
        .args(["check", "perf", "--load=s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The summary, without the progress bar's redraws.
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("PASS") || line.starts_with("FAIL"))
        .collect();
    println!(
        "etcdctl check perf --load=s against the front:\n{}",
        summary.join("\n")
    );
    assert!(
        output.status.success()
            && !summary.is_empty()
            && summary.iter().all(|l| l.starts_with("PASS")),
        "check perf did not pass:\n{}\n{stderr}",
        summary.join("\n")
    );
}
