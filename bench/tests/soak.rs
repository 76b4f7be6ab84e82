//! The soak, CI-sized: `storage-soak` drives mixed HTTP load (ConfigMap creates, updates,
//! deletes and lists, Events that expire after 20 s, watchers that resume) against an API
//! server process on SQLite with compaction keeping 30 s of history, for 170 s, and fails
//! unless resident memory and open descriptors stay flat after a 110 s warm-up (which covers
//! the watch cache's 75 s window, the history window and the event TTL) and the database plus
//! WAL stay within twice the live data plus retained history. The 30-minute runs are in
//! `bench/results/soak/`.

use std::process::Command;

#[test]
fn sqlite_stays_bounded_under_mixed_load() {
    let out = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_storage-soak"))
        .args([
            "run",
            "--backends=sqlite",
            "--duration=170s",
            "--warmup=110s",
            "--sample-every=5s",
            "--history=30s",
            "--event-ttl=20s",
            "--rate=150",
            "--value-size=16384",
            "--objects=500",
        ])
        .arg(format!("--out={}", out.path().display()))
        .output()
        .expect("running storage-soak");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the soak found unbounded growth or failures"
    );
    for file in ["soak-sqlite.svg", "soak-sqlite.csv", "soak-sqlite.json"] {
        let written = std::fs::metadata(out.path().join(file))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(written > 0, "storage-soak wrote no {file}");
    }
}
