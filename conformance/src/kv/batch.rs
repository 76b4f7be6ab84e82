//! Atomic batches: several conditional writes at one revision, all or nothing.

use anyhow::{Context, bail, ensure};
use storage_api::{BatchWrite, Error, Expect, RangeRequest, WatchEvent, WatchRequest};

use super::Store;
use crate::runner::Case;
use crate::support::{b, next_events};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "kv::batch::writes_share_one_revision",
            [AtomicBatches],
            writes_share_one_revision
        ),
        case!(
            "kv::batch::failed_expectation_writes_nothing",
            [AtomicBatches],
            failed_expectation_writes_nothing
        ),
        case!(
            "kv::batch::watch_sees_every_write_at_the_batch_revision",
            [AtomicBatches],
            watch_sees_every_write
        ),
        case!(
            "kv::batch::past_reads_see_all_or_nothing",
            [AtomicBatches],
            past_reads_see_all_or_nothing
        ),
        case!(
            "kv::batch::malformed_batches_rejected",
            [AtomicBatches],
            malformed_batches_rejected
        ),
    ]
}

fn put(key: &str, value: &str, expect: Expect) -> BatchWrite {
    BatchWrite::Put {
        key: key.into(),
        value: b(value),
        expect,
    }
}

async fn writes_share_one_revision(store: Store) -> anyhow::Result<()> {
    let a = store.create("/b/a", b("a1"), None).await?;
    let c = store.create("/b/c", b("c1"), None).await?;
    let rev = store
        .write_batch(vec![
            put("/b/a", "a2", Expect::ModRevision(a)),
            put("/b/b", "b1", Expect::Absent),
            BatchWrite::Delete {
                key: "/b/c".into(),
                mod_revision: c,
            },
        ])
        .await?;
    ensure!(rev > c, "batch revision {rev} must follow {c}");
    ensure!(
        store.current_revision().await? == rev,
        "the batch takes exactly one revision"
    );
    let listed = store.range(RangeRequest::prefix("/b/")).await?;
    let kvs: Vec<_> = listed
        .kvs
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                kv.value.clone(),
                kv.create_revision,
                kv.mod_revision,
            )
        })
        .collect();
    ensure!(
        kvs == vec![("/b/a", b("a2"), a, rev), ("/b/b", b("b1"), rev, rev)],
        "after the batch: {kvs:?}"
    );
    Ok(())
}

async fn failed_expectation_writes_nothing(store: Store) -> anyhow::Result<()> {
    let a = store.create("/b/a", b("a1"), None).await?;
    let before = store.current_revision().await?;
    // The second write fails: the key exists. The first must not happen either.
    let result = store
        .write_batch(vec![
            put("/b/new", "x", Expect::Absent),
            put("/b/a", "a2", Expect::Absent),
        ])
        .await;
    ensure!(
        matches!(&result, Err(Error::AlreadyExists { key }) if key == "/b/a"),
        "expected AlreadyExists on /b/a, got {result:?}"
    );
    let stale = store
        .write_batch(vec![
            put("/b/new", "x", Expect::Absent),
            put("/b/a", "a2", Expect::ModRevision(a + 1000)),
        ])
        .await;
    match stale {
        Err(Error::Conflict { key, current, .. }) => {
            ensure!(key == "/b/a", "conflict names {key}");
            ensure!(current.value == b("a1"), "conflict carries the live value");
        }
        other => bail!("expected Conflict on /b/a, got {other:?}"),
    }
    let missing = store
        .write_batch(vec![BatchWrite::Delete {
            key: "/b/missing".into(),
            mod_revision: a,
        }])
        .await;
    ensure!(
        matches!(missing, Err(Error::NotFound { .. })),
        "deleting a missing key: {missing:?}"
    );
    ensure!(
        store.current_revision().await? == before,
        "failed batches take no revision"
    );
    ensure!(
        store.get("/b/new", None).await?.kv.is_none(),
        "no write of a failed batch is applied"
    );
    Ok(())
}

async fn watch_sees_every_write(store: Store) -> anyhow::Result<()> {
    let a = store.create("/b/a", b("a1"), None).await?;
    let mut watch = store.watch(WatchRequest::prefix("/b/").after(a)).await?;
    let rev = store
        .write_batch(vec![
            put("/b/z", "z1", Expect::Absent),
            BatchWrite::Delete {
                key: "/b/a".into(),
                mod_revision: a,
            },
        ])
        .await?;
    let after = store.create("/b/later", b("l"), None).await?;
    let events = next_events(&mut watch, 3).await?;
    match &events[..] {
        [
            WatchEvent::Put { kv, prev: None },
            WatchEvent::Delete {
                key,
                revision,
                prev,
            },
            WatchEvent::Put { kv: later, .. },
        ] => {
            ensure!(
                kv.key == "/b/z" && kv.mod_revision == rev,
                "first event {kv:?}"
            );
            ensure!(
                key == "/b/a" && *revision == rev && prev.value == b("a1"),
                "second event: {key} at {revision}, prev {prev:?}"
            );
            ensure!(later.mod_revision == after, "third event {later:?}");
        }
        other => bail!("unexpected events {other:?}"),
    }
    Ok(())
}

async fn past_reads_see_all_or_nothing(store: Store) -> anyhow::Result<()> {
    let before = store.create("/b/x", b("x1"), None).await?;
    let rev = store
        .write_batch(vec![
            put("/b/y", "y1", Expect::Absent),
            put("/b/x", "x2", Expect::ModRevision(before)),
        ])
        .await?;
    store.create("/b/after", b("a"), None).await?;
    let at_before = store.range(RangeRequest::prefix("/b/").at(before)).await?;
    ensure!(
        at_before.kvs.len() == 1 && at_before.kvs[0].value == b("x1"),
        "before the batch: {:?}",
        at_before.kvs
    );
    let at_batch = store.range(RangeRequest::prefix("/b/").at(rev)).await?;
    let values: Vec<_> = at_batch.kvs.iter().map(|kv| kv.value.clone()).collect();
    ensure!(
        values == vec![b("x2"), b("y1")],
        "at the batch revision: {values:?}"
    );
    let old = store
        .get("/b/x", Some(before))
        .await?
        .kv
        .context("x at the revision before the batch")?;
    ensure!(old.value == b("x1"), "x before the batch: {old:?}");
    Ok(())
}

async fn malformed_batches_rejected(store: Store) -> anyhow::Result<()> {
    let empty = store.write_batch(Vec::new()).await;
    ensure!(
        matches!(empty, Err(Error::InvalidArgument(_))),
        "empty batch: {empty:?}"
    );
    let twice = store
        .write_batch(vec![
            put("/b/a", "1", Expect::Absent),
            put("/b/a", "2", Expect::Absent),
        ])
        .await;
    ensure!(
        matches!(twice, Err(Error::InvalidArgument(_))),
        "one key twice: {twice:?}"
    );
    let bad_key = store
        .write_batch(vec![put("/b/../a", "1", Expect::Absent)])
        .await;
    ensure!(
        matches!(bad_key, Err(Error::InvalidArgument(_))),
        "invalid key: {bad_key:?}"
    );
    ensure!(
        store.get("/b/a", None).await?.kv.is_none(),
        "a rejected batch writes nothing"
    );
    Ok(())
}
