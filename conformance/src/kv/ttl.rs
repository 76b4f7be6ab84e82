//! Keys written with a time-to-live.

use std::time::Duration;

use anyhow::{bail, ensure};
use storage_api::{Precondition, WatchEvent, WatchRequest};

use super::Store;
use crate::runner::Case;
use crate::support::{b, eventually, next_event, summary};

/// Generous: etcd rounds lease TTLs up to its minimum (about 2 s with default settings).
const EXPIRY_WAIT: Duration = Duration::from_secs(20);

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "kv::ttl::key_expires_with_a_delete_event",
            [Ttl],
            key_expires
        ),
        case!(
            "kv::ttl::update_without_ttl_makes_key_permanent",
            [Ttl],
            update_clears_ttl
        ),
        case!("kv::ttl::update_with_ttl_expires", [Ttl], update_sets_ttl),
        case!("kv::ttl::other_keys_untouched", [Ttl], other_keys_untouched),
    ]
}

async fn wait_until_gone(store: &Store, key: &str) -> anyhow::Result<()> {
    eventually(EXPIRY_WAIT, &format!("expiry of {key}"), || async {
        Ok(store.get(key, None).await?.kv.is_none().then_some(()))
    })
    .await
}

async fn key_expires(store: Store) -> anyhow::Result<()> {
    let mut watch = store.watch(WatchRequest::prefix("/p/")).await?;
    let created = store
        .create("/p/a", b("short-lived"), Some(Duration::from_secs(1)))
        .await?;
    let event = next_event(&mut watch).await?;
    ensure!(
        event.revision() == created,
        "create event {}",
        summary(&event)
    );
    wait_until_gone(&store, "/p/a").await?;
    match next_event(&mut watch).await? {
        WatchEvent::Delete {
            key,
            revision,
            prev,
        } => {
            ensure!(
                key == "/p/a" && revision > created,
                "expiry delete {key} @{revision}"
            );
            ensure!(
                prev.value == b("short-lived"),
                "expiry prev {:?}",
                prev.value
            );
        }
        other => bail!("expiry must be a delete event, got {}", summary(&other)),
    }
    ensure!(
        store.current_revision().await? > created,
        "expiry must take its own revision"
    );
    Ok(())
}

async fn update_clears_ttl(store: Store) -> anyhow::Result<()> {
    let created = store
        .create("/p/a", b("v1"), Some(Duration::from_secs(1)))
        .await?;
    store
        .update("/p/a", b("v2"), Precondition::ModRevision(created), None)
        .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let kv = store.get("/p/a", None).await?.kv;
    ensure!(
        kv.is_some_and(|kv| kv.value == b("v2")),
        "update without TTL must make it permanent"
    );
    Ok(())
}

async fn update_sets_ttl(store: Store) -> anyhow::Result<()> {
    store.create("/p/a", b("v1"), None).await?;
    store
        .update(
            "/p/a",
            b("v2"),
            Precondition::None,
            Some(Duration::from_secs(1)),
        )
        .await?;
    wait_until_gone(&store, "/p/a").await
}

async fn other_keys_untouched(store: Store) -> anyhow::Result<()> {
    store.create("/p/keep", b("x"), None).await?;
    store
        .create("/p/go", b("x"), Some(Duration::from_secs(1)))
        .await?;
    wait_until_gone(&store, "/p/go").await?;
    ensure!(
        store.get("/p/keep", None).await?.kv.is_some(),
        "expiry removed another key"
    );
    Ok(())
}
