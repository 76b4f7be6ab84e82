//! Compaction of history.

use anyhow::{Context, bail, ensure};
use storage_api::{Error, Precondition, RangeRequest};

use super::Store;
use crate::runner::Case;
use crate::support::b;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "kv::compaction::older_reads_fail",
            [Compaction],
            older_reads_fail
        ),
        case!(
            "kv::compaction::reads_at_the_compaction_revision_work",
            [Compaction],
            reads_at
        ),
        case!(
            "kv::compaction::latest_state_is_kept",
            [Compaction],
            latest_state_kept
        ),
        case!(
            "kv::compaction::twice_or_into_the_future_fails",
            [Compaction],
            bad_targets
        ),
        case!(
            "kv::compaction::compacted_revision_is_reported",
            [Compaction],
            reported
        ),
    ]
}

async fn older_reads_fail(store: Store) -> anyhow::Result<()> {
    let r1 = store.create("/p/a", b("1"), None).await?;
    let r2 = store
        .update("/p/a", b("2"), Precondition::None, None)
        .await?;
    store.compact(r2).await?;
    for result in [
        store.get("/p/a", Some(r1)).await.map(|_| ()),
        store
            .range(RangeRequest::prefix("/p/").at(r1))
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(Error::Compacted {
                requested,
                compacted,
            }) => {
                ensure!(
                    requested == r1 && compacted >= r2,
                    "{requested} / {compacted}"
                )
            }
            other => bail!("read below the compaction revision must be Compacted, got {other:?}"),
        }
    }
    Ok(())
}

async fn reads_at(store: Store) -> anyhow::Result<()> {
    store.create("/p/a", b("1"), None).await?;
    let r2 = store.create("/p/b", b("1"), None).await?;
    store
        .update("/p/a", b("2"), Precondition::None, None)
        .await?;
    store.compact(r2).await?;
    let range = store.range(RangeRequest::prefix("/p/").at(r2)).await?;
    let values: Vec<_> = range
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    ensure!(
        values == [("/p/a", b("1")), ("/p/b", b("1"))],
        "at compaction revision: {values:?}"
    );
    let a = store
        .get("/p/a", Some(r2))
        .await?
        .kv
        .context("/p/a at r2")?;
    ensure!(a.value == b("1"), "{a:?}");
    Ok(())
}

async fn latest_state_kept(store: Store) -> anyhow::Result<()> {
    for i in 0..10 {
        store.create(&format!("/p/{i}"), b("v1"), None).await?;
    }
    for i in 0..10 {
        if i % 2 == 0 {
            store
                .update(&format!("/p/{i}"), b("v2"), Precondition::None, None)
                .await?;
        } else {
            store.delete(&format!("/p/{i}"), Precondition::None).await?;
        }
    }
    let current = store.current_revision().await?;
    store.compact(current).await?;
    let range = store.range(RangeRequest::prefix("/p/")).await?;
    let keys: Vec<_> = range.kvs.iter().map(|kv| kv.key.as_str()).collect();
    ensure!(
        keys == ["/p/0", "/p/2", "/p/4", "/p/6", "/p/8"],
        "after compaction: {keys:?}"
    );
    ensure!(
        range.kvs.iter().all(|kv| kv.value == b("v2")),
        "values changed by compaction"
    );
    let created = store.create("/p/1", b("again"), None).await?;
    ensure!(
        created > current,
        "writes continue above the compaction revision"
    );
    Ok(())
}

async fn bad_targets(store: Store) -> anyhow::Result<()> {
    store.create("/p/a", b("1"), None).await?;
    let r2 = store
        .update("/p/a", b("2"), Precondition::None, None)
        .await?;
    store.compact(r2).await?;
    match store.compact(r2).await {
        Err(Error::Compacted { .. }) => {}
        other => bail!("compacting to the same revision again must be Compacted, got {other:?}"),
    }
    let future = store.current_revision().await? + 1_000_000;
    match store.compact(future).await {
        Err(Error::FutureRevision { .. }) => {}
        other => bail!("compacting into the future must be FutureRevision, got {other:?}"),
    }
    Ok(())
}

async fn reported(store: Store) -> anyhow::Result<()> {
    let r1 = store.create("/p/a", b("1"), None).await?;
    let before = store.compacted_revision().await?;
    ensure!(
        before < r1,
        "compacted revision {before} before any compaction of {r1}"
    );
    let r2 = store
        .update("/p/a", b("2"), Precondition::None, None)
        .await?;
    store.compact(r2).await?;
    let after = store.compacted_revision().await?;
    ensure!(after == r2, "compacted to {r2}, store reports {after}");
    Ok(())
}
