//! Layers that wrap any store.

use std::sync::Arc;

use anyhow::{Context, ensure};
use storage_api::{Error, InterfaceExt, Precondition, Prefixed, RangeRequest, WatchRequest};

use super::Store;
use crate::runner::Case;
use crate::support::{b, next_event, summary};

pub(super) fn cases() -> Vec<Case> {
    vec![case!(
        "kv::layers::prefixed_stores_are_isolated",
        [],
        prefixed_isolation
    )]
}

async fn prefixed_isolation(store: Store) -> anyhow::Result<()> {
    let left: Store = Arc::new(Prefixed::new(store.clone(), "/left")?);
    let right: Store = Arc::new(Prefixed::new(store.clone(), "/right")?);
    let mut watch = left.watch(WatchRequest::prefix("/p/")).await?;
    let rev = left.create("/p/a", b("left"), None).await?;
    right.create("/p/a", b("right"), None).await?;
    let event = next_event(&mut watch).await?;
    ensure!(
        event.key() == Some("/p/a") && event.revision() == rev,
        "{}",
        summary(&event)
    );
    let kv = left.get_latest("/p/a").await?.context("left key")?;
    ensure!(kv.key == "/p/a" && kv.value == b("left"), "{kv:?}");
    let inner = store
        .get_latest("/left/p/a")
        .await?
        .context("key under the prefix")?;
    ensure!(inner.value == b("left"), "{inner:?}");
    let listed = right.range(RangeRequest::prefix("/p/")).await?;
    ensure!(
        listed.kvs.len() == 1 && listed.kvs[0].value == b("right"),
        "{listed:?}"
    );
    match left
        .update("/p/a", b("x"), Precondition::ModRevision(rev - 1), None)
        .await
    {
        Err(Error::Conflict { key, current, .. }) => {
            ensure!(
                key == "/p/a" && current.key == "/p/a",
                "prefix leaked into the error"
            )
        }
        other => anyhow::bail!("expected a conflict, got {other:?}"),
    }
    Ok(())
}
