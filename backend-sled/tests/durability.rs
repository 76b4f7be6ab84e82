//! Durability of the sled backend across process death and restarts.
//!
//! The crash test re-executes this test binary as a child process (selected by an environment
//! variable) that writes concurrently and prints an `ack` line after each write returns; the
//! parent kills it with SIGKILL at random points, reopens the store and checks that every
//! acknowledged write is there with its revision, that revisions keep increasing and that a
//! watch from a pre-crash revision replays the history.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use anyhow::{Context, bail, ensure};
use backend_sled::{SledOptions, SledStore};
use bytes::Bytes;
use futures::StreamExt;
use libtest_mimic::{Arguments, Failed, Trial};
use storage_api::{Error, Interface, Precondition, WatchEvent, WatchRequest};

/// Selects the child role and names the store directory.
const CHILD_DIR: &str = "BACKEND_SLED_TEST_CHILD_DIR";
/// The child's role: `write` (crash test) or `probe` (second opener).
const CHILD_ROLE: &str = "BACKEND_SLED_TEST_CHILD_ROLE";
/// The crash round, so the child writes fresh keys each time.
const CHILD_ROUND: &str = "BACKEND_SLED_TEST_CHILD_ROUND";
/// How many times the writer is killed.
const KILLS: usize = 24;
/// Concurrent writer tasks in the child.
const WRITERS: usize = 4;

fn main() -> ExitCode {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        return match child(Path::new(&dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                println!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let arguments = Arguments::from_args();
    let trials = vec![
        trial("sigkill_crash_loses_no_acknowledged_write", crash_test),
        trial("ttl_survives_restart", ttl_survives_restart),
        trial("second_opener_gets_a_clear_error", second_opener),
        trial("reopen_keeps_revisions_and_compaction", reopen_keeps_state),
        trial("corrupt_records_are_internal_errors", corrupt_records),
    ];
    libtest_mimic::run(&arguments, trials).exit_code()
}

fn trial(name: &'static str, body: fn() -> anyhow::Result<()>) -> Trial {
    Trial::test(name, move || {
        body().map_err(|e| Failed::from(format!("{e:#}")))
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn open(dir: &Path) -> anyhow::Result<SledStore> {
    let mut options = SledOptions::default();
    options.cache_bytes = 16 * 1024 * 1024;
    Ok(SledStore::open(dir, options)?)
}

// ---------------------------------------------------------------------------------------------
// The child process.

fn child(dir: &Path) -> anyhow::Result<()> {
    let role = std::env::var(CHILD_ROLE).unwrap_or_default();
    if role == "probe" {
        // Expected to fail: the parent holds the store open.
        let store = open(dir);
        println!(
            "probe: {:?}",
            store.as_ref().map(|_| "opened").map_err(|e| e.to_string())
        );
        return Ok(());
    }
    let round: usize = std::env::var(CHILD_ROUND)?.parse()?;
    runtime()?.block_on(async move {
        let store = std::sync::Arc::new(open(dir)?);
        println!("ready {}", store.current_revision().await?);
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                child_writer(&store, round, writer).await
            }));
        }
        // The parent kills us long before this; the limit only stops an orphan.
        tokio::time::sleep(Duration::from_secs(30)).await;
        for task in tasks {
            task.abort();
        }
        anyhow::Ok(())
    })
}

fn ack(line: String) {
    let mut out = std::io::stdout().lock();
    // One write call per line, flushed at once: the parent counts only complete lines.
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

async fn child_writer(store: &SledStore, round: usize, writer: usize) -> anyhow::Result<()> {
    let shared = format!("/crash/shared/{}", writer % 2);
    for n in 0.. {
        let own = format!("/crash/w{writer}/r{round}/{n}");
        match n % 4 {
            0 | 1 => {
                let value = format!("c-{round}-{writer}-{n}");
                let revision = store.create(&own, Bytes::from(value.clone()), None).await?;
                ack(format!("ack w{writer} put {own} {revision} {value}"));
            }
            2 => {
                // A compare-and-swap update of a key shared with another writer.
                let value = format!("u-{round}-{writer}-{n}");
                loop {
                    let current = store.get(&shared, None).await?.kv;
                    let result = match current {
                        None => {
                            store
                                .create(&shared, Bytes::from(value.clone()), None)
                                .await
                        }
                        Some(kv) => {
                            store
                                .update(
                                    &shared,
                                    Bytes::from(value.clone()),
                                    Precondition::ModRevision(kv.mod_revision),
                                    None,
                                )
                                .await
                        }
                    };
                    match result {
                        Ok(revision) => {
                            ack(format!("ack w{writer} put {shared} {revision} {value}"));
                            break;
                        }
                        Err(Error::Conflict { .. } | Error::AlreadyExists { .. }) => continue,
                        Err(error) => return Err(error.into()),
                    }
                }
            }
            _ => {
                let victim = format!("/crash/w{writer}/r{round}/{}", n - 3);
                let deleted = store.delete(&victim, Precondition::None).await?;
                ack(format!("ack w{writer} del {victim} {}", deleted.revision));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The crash test.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ack {
    Put {
        key: String,
        revision: u64,
        value: String,
    },
    Del {
        key: String,
        revision: u64,
    },
}

impl Ack {
    /// Parses `ack WRITER put KEY REVISION VALUE` or `ack WRITER del KEY REVISION`.
    fn parse(line: &str) -> anyhow::Result<(String, Ack)> {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["ack", writer, "put", key, revision, value] => Ok((
                (*writer).to_owned(),
                Ack::Put {
                    key: (*key).to_owned(),
                    revision: revision.parse()?,
                    value: (*value).to_owned(),
                },
            )),
            ["ack", writer, "del", key, revision] => Ok((
                (*writer).to_owned(),
                Ack::Del {
                    key: (*key).to_owned(),
                    revision: revision.parse()?,
                },
            )),
            _ => bail!("unexpected line from the child: {line:?}"),
        }
    }

    fn revision(&self) -> u64 {
        match self {
            Ack::Put { revision, .. } | Ack::Del { revision, .. } => *revision,
        }
    }
}

/// A small deterministic generator for kill delays (seeded from the clock, printed on failure).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn spawn_child(dir: &Path, role: &str, round: usize) -> anyhow::Result<std::process::Child> {
    Ok(Command::new(std::env::current_exe()?)
        .env(CHILD_DIR, dir)
        .env(CHILD_ROLE, role)
        .env(CHILD_ROUND, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?)
}

fn crash_test() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    let mut random = XorShift(seed);
    let runtime = runtime()?;
    let mut all_acks: Vec<Ack> = Vec::new();
    let mut revision_after_previous = 0;
    for round in 0..KILLS {
        let mut child = spawn_child(&path, "write", round)?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    // A line cut by the kill has no newline: it was not acknowledged.
                    Ok(_) if line.ends_with('\n') => {
                        let _ = lines_tx.send(line.trim_end().to_owned());
                    }
                    Ok(_) => break,
                }
            }
        });
        let ready = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .context("the child did not start")?;
        let ready_revision: u64 = match ready.strip_prefix("ready ") {
            Some(revision) => revision.parse()?,
            None => bail!("round {round}: child failed to start: {ready}"),
        };
        ensure!(
            ready_revision >= revision_after_previous,
            "round {round}: the store reopened at revision {ready_revision}, below \
             {revision_after_previous} seen before (seed {seed})"
        );
        let delay = Duration::from_millis(30 + random.next() % 300);
        std::thread::sleep(delay);
        child.kill()?; // SIGKILL
        child.wait()?;
        let _ = reader.join();
        let mut acks = Vec::new();
        let mut last_of_writer: HashMap<String, u64> = HashMap::new();
        for line in lines_rx.try_iter() {
            if line.starts_with("error:") {
                bail!("round {round}: the child failed: {line}");
            }
            let (writer, a) = Ack::parse(&line)?;
            // One writer's writes are sequential: their revisions increase in ack order.
            let last = last_of_writer.entry(writer).or_insert(0);
            ensure!(
                a.revision() > *last,
                "round {round}: {a:?} acknowledged after revision {last} by the same writer"
            );
            *last = a.revision();
            acks.push(a);
        }
        for a in &acks {
            ensure!(
                a.revision() > revision_after_previous,
                "round {round}: acknowledged revision {} is not above {revision_after_previous}, \
                 the revision before the round (seed {seed})",
                a.revision()
            );
        }
        all_acks.extend(acks.iter().cloned());
        revision_after_previous = runtime
            .block_on(verify_after_crash(&path, &all_acks, &acks, ready_revision))
            .with_context(|| format!("round {round}, killed after {delay:?} (seed {seed})"))?;
    }
    let revisions: HashSet<u64> = all_acks.iter().map(Ack::revision).collect();
    ensure!(
        revisions.len() == all_acks.len(),
        "two acknowledged writes share a revision"
    );
    ensure!(
        all_acks.len() >= 100,
        "only {} writes were acknowledged over {KILLS} rounds: the test did not exercise much",
        all_acks.len()
    );
    eprintln!(
        "crash test: {KILLS} kills, {} acknowledged writes verified",
        all_acks.len()
    );
    Ok(())
}

/// Reopens the store after a kill and checks it; returns the revision after one fresh write.
async fn verify_after_crash(
    path: &Path,
    all_acks: &[Ack],
    round_acks: &[Ack],
    ready_revision: u64,
) -> anyhow::Result<u64> {
    let store = open(path)?;
    let current = store.current_revision().await?;
    let max_ack = all_acks.iter().map(Ack::revision).max().unwrap_or(0);
    ensure!(
        current >= max_ack,
        "current revision {current} is below acknowledged revision {max_ack}"
    );
    // Every acknowledged write, from every round so far, is there with its revision.
    for a in all_acks {
        match a {
            Ack::Put {
                key,
                revision,
                value,
            } => {
                let kv = store
                    .get(key, Some(*revision))
                    .await?
                    .kv
                    .with_context(|| format!("acknowledged put {key}@{revision} is missing"))?;
                ensure!(
                    kv.mod_revision == *revision && kv.value == value.as_bytes(),
                    "{a:?} read back as {kv:?}"
                );
            }
            Ack::Del { key, revision } => {
                let at = store.get(key, Some(*revision)).await?.kv;
                ensure!(
                    at.is_none(),
                    "acknowledged delete {key}@{revision} is undone: {at:?}"
                );
                let before = store.get(key, Some(revision - 1)).await?.kv;
                ensure!(
                    before.is_some(),
                    "{key} did not exist before its delete at {revision}"
                );
            }
        }
    }
    // A watch from the pre-crash revision replays this round's history in order.
    let mut watch = store
        .watch(WatchRequest::prefix("/crash/").after(ready_revision))
        .await?;
    let mut seen: HashMap<u64, WatchEvent> = HashMap::new();
    let mut last = ready_revision;
    while last < current {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .context("the replay stalled")?
            .context("the replay ended early")??;
        let revision = event.revision();
        // Every revision of the round is a write under /crash/: the replay has each, once.
        ensure!(
            revision == last + 1,
            "replay went from {last} to {revision}"
        );
        last = revision;
        match &event {
            WatchEvent::Put { kv, prev } => {
                let read = store.get(&kv.key, Some(revision)).await?.kv;
                ensure!(
                    read.as_ref() == Some(kv),
                    "event {event:?} but read {read:?}"
                );
                let before = store.get(&kv.key, Some(revision - 1)).await?.kv;
                ensure!(&before == prev, "event {event:?} but before it {before:?}");
            }
            WatchEvent::Delete { key, prev, .. } => {
                let before = store.get(key, Some(revision - 1)).await?.kv;
                ensure!(
                    before.as_ref() == Some(prev),
                    "event {event:?} but before it {before:?}"
                );
            }
            WatchEvent::Progress { .. } => bail!("unexpected progress event"),
        }
        seen.insert(revision, event);
    }
    drop(watch);
    for a in round_acks {
        let event = seen
            .get(&a.revision())
            .with_context(|| format!("the replay lacks acknowledged {a:?}"))?;
        let matches = match (a, event) {
            (Ack::Put { key, value, .. }, WatchEvent::Put { kv, .. }) => {
                &kv.key == key && kv.value == value.as_bytes()
            }
            (Ack::Del { key, .. }, WatchEvent::Delete { key: deleted, .. }) => deleted == key,
            _ => false,
        };
        ensure!(matches, "acknowledged {a:?} replayed as {event:?}");
    }
    // Revisions keep increasing after the restart.
    let revision = store
        .create(
            &format!("/restart/{current}"),
            Bytes::from_static(b"x"),
            None,
        )
        .await?;
    ensure!(
        revision == current + 1,
        "a write after restart got {revision}, current was {current}"
    );
    drop(store);
    // sled's own check: every tree reads back with valid checksums.
    sled::open(path)?
        .checksum()
        .context("sled checksum scan after the restart")?;
    Ok(revision)
}

// ---------------------------------------------------------------------------------------------
// Restarts.

fn ttl_survives_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    runtime()?.block_on(async {
        let store = open(&path)?;
        let before = store.current_revision().await?;
        let ttl = |ms| Some(Duration::from_millis(ms));
        // Expires while the store is closed.
        store
            .create("/ttl/down", Bytes::from_static(b"d"), ttl(300))
            .await?;
        // Expires after the reopen.
        store
            .create("/ttl/up", Bytes::from_static(b"u"), ttl(1500))
            .await?;
        store
            .create("/ttl/long", Bytes::from_static(b"l"), ttl(3_600_000))
            .await?;
        store
            .create("/ttl/none", Bytes::from_static(b"n"), None)
            .await?;
        let written = store.current_revision().await?;
        drop(store);
        tokio::time::sleep(Duration::from_millis(500)).await;

        let store = open(&path)?;
        ensure!(
            store.current_revision().await? >= written,
            "revision went back"
        );
        let mut watch = store
            .watch(WatchRequest::prefix("/ttl/").after(written))
            .await?;
        let mut expired = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while expired.len() < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(left, watch.next())
                .await
                .context("TTL keys did not expire after the restart")?
                .context("watch ended")??;
            match event {
                WatchEvent::Delete {
                    key,
                    revision,
                    prev,
                } => {
                    ensure!(
                        revision > written && prev.key == key,
                        "odd expiry {key}@{revision}"
                    );
                    expired.push(key);
                }
                other => bail!("unexpected event {other:?}"),
            }
        }
        ensure!(
            expired == ["/ttl/down", "/ttl/up"],
            "expired in the wrong order or the wrong keys: {expired:?}"
        );
        ensure!(
            store.get("/ttl/long", None).await?.kv.is_some(),
            "long TTL key expired"
        );
        ensure!(
            store.get("/ttl/none", None).await?.kv.is_some(),
            "key without TTL expired"
        );
        ensure!(
            store.get("/ttl/down", Some(before + 1)).await?.kv.is_some(),
            "history of the expired key is gone"
        );
        Ok(())
    })
}

fn second_opener() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let first = open(&path)?;
    // In this process.
    match open(&path) {
        Ok(_) => bail!("a second open of the same directory succeeded"),
        Err(error) => {
            let message = format!("{error:#}");
            ensure!(message.contains("already open"), "unclear error: {message}");
            match error.downcast_ref::<Error>() {
                Some(Error::Unavailable { .. }) => {}
                other => bail!("expected Unavailable, got {other:?}"),
            }
        }
    }
    // From another process.
    let output = spawn_child(&path, "probe", 0)?.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        stdout.contains("probe: Err") && stdout.contains("already open"),
        "the second process did not get a clear error: {stdout}"
    );
    drop(first);
    open(&path).context("reopening after the first opener closed")?;
    Ok(())
}

fn reopen_keeps_state() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    runtime()?.block_on(async {
        let store = open(&path)?;
        let first = store.create("/r/k", Bytes::from_static(b"0"), None).await?;
        let mut last = first;
        for i in 1..=50 {
            last = store
                .update(
                    "/r/k",
                    Bytes::from(i.to_string()),
                    Precondition::ModRevision(last),
                    None,
                )
                .await?;
        }
        let deleted = store
            .create("/r/gone", Bytes::from_static(b"g"), None)
            .await?;
        store.delete("/r/gone", Precondition::None).await?;
        let compact_at = store.current_revision().await?;
        store.compact(compact_at).await?;
        // Let the writer delete the compacted history (it does so between batches).
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(store);

        {
            // Compaction really removed history: no log entry below the compaction revision,
            // and one version left for the live key, none for the deleted one.
            let db = sled::open(&path)?;
            let log = db.open_tree("log")?;
            let below = log.range(..compact_at.to_be_bytes().as_slice()).count();
            ensure!(
                below == 0,
                "{below} log entries below the compaction revision remain"
            );
            let versions = db.open_tree("versions")?;
            ensure!(
                versions.scan_prefix(b"/r/k\0").count() == 1,
                "old versions of /r/k remain"
            );
            ensure!(
                versions.scan_prefix(b"/r/gone\0").count() == 0,
                "tombstone history remains"
            );
        }

        let store = open(&path)?;
        ensure!(
            store.current_revision().await? == compact_at,
            "revision not kept"
        );
        let kv = store
            .get("/r/k", Some(compact_at))
            .await?
            .kv
            .context("live key lost")?;
        ensure!(kv.value == "50" && kv.create_revision == first && kv.mod_revision == last);
        match store.get("/r/k", Some(compact_at - 1)).await {
            Err(Error::Compacted { compacted, .. }) if compacted == compact_at => {}
            other => bail!("read below the compaction revision after reopen: {other:?}"),
        }
        ensure!(store.get("/r/gone", Some(compact_at)).await?.kv.is_none());
        ensure!(store.get("/r/gone", None).await?.kv.is_none());
        ensure!(deleted < compact_at);
        let next = store
            .create("/r/new", Bytes::from_static(b"n"), None)
            .await?;
        ensure!(next == compact_at + 1, "revision after reopen is {next}");
        Ok(())
    })
}

fn corrupt_records() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    runtime()?.block_on(async {
        let store = open(&path)?;
        let revision = store.create("/c/a", Bytes::from_static(b"a"), None).await?;
        drop(store);
        {
            // No background flusher: it would hold the directory's lock for a moment after
            // `db` is dropped, and the store's open below would find it still locked.
            let db = common::open_raw(&path)?;
            let versions = db.open_tree("versions")?;
            let mut key = b"/c/a\0".to_vec();
            key.extend_from_slice(&revision.to_be_bytes());
            versions.insert(key, &b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..])?;
            db.open_tree("state")?.insert(b"/c/a", &b"\x09"[..])?;
            db.flush()?;
        }
        let store = open(&path)?;
        let internal = |what: &str, result: Result<(), Error>| match result {
            Err(Error::Internal { .. }) => Ok(()),
            other => Err(anyhow::anyhow!("{what} on a corrupt record gave {other:?}")),
        };
        internal("get", store.get("/c/a", None).await.map(drop))?;
        internal(
            "range",
            store
                .range(storage_api::RangeRequest::prefix("/c/"))
                .await
                .map(drop),
        )?;
        internal(
            "update",
            store
                .update("/c/a", Bytes::new(), Precondition::None, None)
                .await
                .map(drop),
        )?;
        let mut watch = store.watch(WatchRequest::prefix("/c/").after(0)).await?;
        internal("watch", watch.next().await.context("no item")?.map(drop))?;
        ensure!(
            watch.next().await.is_none(),
            "the watch went on after its error"
        );
        // Other keys still work.
        store.create("/c/b", Bytes::from_static(b"b"), None).await?;
        Ok(())
    })
}
