//! Ordered range reads: prefixes, start keys, limits, counts and revisions.

use anyhow::{bail, ensure};
use storage_api::{Error, Precondition, RangeRequest};

use super::Store;
use crate::runner::Case;
use crate::support::b;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!("kv::range::prefix_boundaries", [], prefix_boundaries),
        case!("kv::range::byte_order", [], byte_order),
        case!("kv::range::start_key", [], start_key),
        case!("kv::range::limit_more_and_count", [], limit_more_and_count),
        case!(
            "kv::range::page_through_at_one_revision",
            [],
            page_through_at_one_revision
        ),
        case!("kv::range::exact_old_revision", [], exact_old_revision),
        case!("kv::range::future_revision", [], future_revision),
        case!("kv::range::count_only", [], count_only),
        case!("kv::range::empty_prefix_result", [], empty_result),
        case!(
            "kv::range::start_outside_prefix_rejected",
            [],
            start_outside_prefix
        ),
        case!(
            "kv::range::empty_or_bordering_start_rejected",
            [],
            empty_or_bordering_start
        ),
    ]
}

fn keys(response: &storage_api::RangeResponse) -> Vec<&str> {
    response.kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn prefix_boundaries(store: Store) -> anyhow::Result<()> {
    for key in [
        "/a", "/a/1", "/a/2", "/a/sub/3", "/ab", "/ab/1", "/a0", "/b/1",
    ] {
        store.create(key, b(key), None).await?;
    }
    let response = store.range(RangeRequest::prefix("/a/")).await?;
    ensure!(
        keys(&response) == ["/a/1", "/a/2", "/a/sub/3"],
        "got {:?}",
        keys(&response)
    );
    ensure!(
        response.count == 3 && !response.more,
        "count {} more {}",
        response.count,
        response.more
    );
    let response = store.range(RangeRequest::prefix("/ab/")).await?;
    ensure!(keys(&response) == ["/ab/1"], "got {:?}", keys(&response));
    for kv in &response.kvs {
        ensure!(
            kv.value == b(&kv.key),
            "value of {} is {:?}",
            kv.key,
            kv.value
        );
    }
    Ok(())
}

async fn byte_order(store: Store) -> anyhow::Result<()> {
    let mut names = vec![
        "b", "a", "B", "A", "aa", "a-b", "a_b", "a.b", "z", "é", "zz", "0", "9~",
    ];
    for name in &names {
        store.create(&format!("/p/{name}"), b(name), None).await?;
    }
    names.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    let expected: Vec<String> = names.iter().map(|n| format!("/p/{n}")).collect();
    let response = store.range(RangeRequest::prefix("/p/")).await?;
    ensure!(
        keys(&response) == expected,
        "order {:?}, expected {expected:?}",
        keys(&response)
    );
    Ok(())
}

async fn start_key(store: Store) -> anyhow::Result<()> {
    for i in 0..5 {
        store.create(&format!("/p/{i}"), b("x"), None).await?;
    }
    let response = store
        .range(RangeRequest::prefix("/p/").start("/p/2"))
        .await?;
    ensure!(
        keys(&response) == ["/p/2", "/p/3", "/p/4"],
        "got {:?}",
        keys(&response)
    );
    ensure!(
        response.count == 3,
        "count from the start key is 3, got {}",
        response.count
    );
    // The smallest key after /p/2, as the continue token logic uses it.
    let response = store
        .range(RangeRequest::prefix("/p/").start("/p/2\0"))
        .await?;
    ensure!(
        keys(&response) == ["/p/3", "/p/4"],
        "got {:?}",
        keys(&response)
    );
    let response = store
        .range(RangeRequest::prefix("/p/").start("/p/9"))
        .await?;
    ensure!(
        response.kvs.is_empty() && response.count == 0 && !response.more,
        "{response:?}"
    );
    Ok(())
}

async fn limit_more_and_count(store: Store) -> anyhow::Result<()> {
    for i in 0..10 {
        store.create(&format!("/p/{i:02}"), b("x"), None).await?;
    }
    let response = store.range(RangeRequest::prefix("/p/").limit(3)).await?;
    ensure!(
        keys(&response) == ["/p/00", "/p/01", "/p/02"],
        "got {:?}",
        keys(&response)
    );
    ensure!(response.more, "7 keys remain, more must be true");
    ensure!(
        response.count == 10,
        "count must be the whole range (10), got {}",
        response.count
    );
    let response = store.range(RangeRequest::prefix("/p/").limit(10)).await?;
    ensure!(
        response.kvs.len() == 10 && !response.more,
        "limit == size: {response:?}"
    );
    let response = store.range(RangeRequest::prefix("/p/").limit(0)).await?;
    ensure!(
        response.kvs.len() == 10 && !response.more,
        "limit 0 means no limit"
    );
    let response = store
        .range(RangeRequest::prefix("/p/").start("/p/08").limit(1))
        .await?;
    ensure!(
        keys(&response) == ["/p/08"] && response.more && response.count == 2,
        "{response:?}"
    );
    Ok(())
}

async fn page_through_at_one_revision(store: Store) -> anyhow::Result<()> {
    for i in 0..7 {
        store.create(&format!("/p/{i}"), b("old"), None).await?;
    }
    let first = store.range(RangeRequest::prefix("/p/").limit(3)).await?;
    let pinned = first.revision;
    // Writes after the first page must not show up in later pages read at its revision.
    store
        .update("/p/5", b("new"), Precondition::None, None)
        .await?;
    store.delete("/p/6", Precondition::None).await?;
    store.create("/p/7", b("new"), None).await?;
    let mut seen = keys(&first)
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>();
    let mut last = first
        .kvs
        .last()
        .map(|kv| kv.key.clone())
        .unwrap_or_default();
    let mut more = first.more;
    while more {
        let page = store
            .range(
                RangeRequest::prefix("/p/")
                    .start(format!("{last}\0"))
                    .limit(3)
                    .at(pinned),
            )
            .await?;
        ensure!(
            page.revision == pinned,
            "page read at {} instead of {pinned}",
            page.revision
        );
        for kv in &page.kvs {
            ensure!(
                kv.value == b("old"),
                "{} shows a write after the snapshot",
                kv.key
            );
            seen.push(kv.key.clone());
        }
        last = page.kvs.last().map(|kv| kv.key.clone()).unwrap_or_default();
        more = page.more;
    }
    let expected: Vec<String> = (0..7).map(|i| format!("/p/{i}")).collect();
    ensure!(seen == expected, "pages at one revision: {seen:?}");
    Ok(())
}

async fn exact_old_revision(store: Store) -> anyhow::Result<()> {
    store.create("/p/a", b("a1"), None).await?;
    store.create("/p/b", b("b1"), None).await?;
    let snapshot = store.current_revision().await?;
    store
        .update("/p/a", b("a2"), Precondition::None, None)
        .await?;
    store.delete("/p/b", Precondition::None).await?;
    store.create("/p/c", b("c1"), None).await?;
    let old = store
        .range(RangeRequest::prefix("/p/").at(snapshot))
        .await?;
    ensure!(
        old.revision == snapshot,
        "read at {snapshot} reports {}",
        old.revision
    );
    let values: Vec<_> = old
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    ensure!(
        values == [("/p/a", b("a1")), ("/p/b", b("b1"))],
        "old snapshot: {values:?}"
    );
    ensure!(old.count == 2, "count at the old revision: {}", old.count);
    let new = store.range(RangeRequest::prefix("/p/")).await?;
    let values: Vec<_> = new
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    ensure!(
        values == [("/p/a", b("a2")), ("/p/c", b("c1"))],
        "latest: {values:?}"
    );
    Ok(())
}

async fn future_revision(store: Store) -> anyhow::Result<()> {
    store.create("/p/a", b("x"), None).await?;
    let future = store.current_revision().await? + 1_000_000;
    match store.range(RangeRequest::prefix("/p/").at(future)).await {
        Err(Error::FutureRevision { requested, current }) => {
            ensure!(
                requested == future && current < future,
                "{requested} / {current}"
            )
        }
        other => bail!("range at a future revision must be FutureRevision, got {other:?}"),
    }
    Ok(())
}

async fn count_only(store: Store) -> anyhow::Result<()> {
    for i in 0..4 {
        store.create(&format!("/p/{i}"), b("x"), None).await?;
    }
    store.create("/q/0", b("x"), None).await?;
    let response = store
        .range(RangeRequest::prefix("/p/").count_only())
        .await?;
    ensure!(response.count == 4, "count {}", response.count);
    ensure!(response.kvs.is_empty(), "count_only must not return values");
    Ok(())
}

async fn empty_result(store: Store) -> anyhow::Result<()> {
    let rev = store.create("/other", b("x"), None).await?;
    let response = store.range(RangeRequest::prefix("/p/")).await?;
    ensure!(
        response.kvs.is_empty() && response.count == 0 && !response.more,
        "{response:?}"
    );
    ensure!(
        response.revision >= rev,
        "empty range still reports the store revision"
    );
    Ok(())
}

async fn start_outside_prefix(store: Store) -> anyhow::Result<()> {
    store.create("/p/a", b("x"), None).await?;
    match store.range(RangeRequest::prefix("/p/").start("/o")).await {
        Err(Error::InvalidArgument(_)) => Ok(()),
        other => bail!("a start key outside the prefix must be InvalidArgument, got {other:?}"),
    }
}

/// The start-key rule of the contract (`RangeRequest::start`): a start outside the prefix is
/// `InvalidArgument` wherever it falls, before the prefix (the empty string, the prefix without
/// its slash) or after it; only under the empty prefix is the empty start inside.
async fn empty_or_bordering_start(store: Store) -> anyhow::Result<()> {
    store.create("/p/a", b("x"), None).await?;
    store.create("/q/a", b("y"), None).await?;
    for start in ["", "/p", "/q/"] {
        match store.range(RangeRequest::prefix("/p/").start(start)).await {
            Err(Error::InvalidArgument(_)) => {}
            other => bail!(
                "start {start:?} is outside the prefix \"/p/\" and must be InvalidArgument, got \
                 {other:?}"
            ),
        }
    }
    let whole = store.range(RangeRequest::prefix("").start("")).await?;
    ensure!(
        keys(&whole) == ["/p/a", "/q/a"],
        "the empty start under the empty prefix reads everything, got {:?}",
        keys(&whole)
    );
    Ok(())
}
