//! Many tasks writing at once.

use std::collections::BTreeSet;

use anyhow::{Context, bail, ensure};
use storage_api::{Error, Precondition, RangeRequest};

use super::Store;
use crate::runner::Case;
use crate::support::b;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!("kv::concurrency::cas_race_has_no_lost_update", [], cas_race),
        case!(
            "kv::concurrency::create_race_has_one_winner",
            [],
            create_race
        ),
        case!(
            "kv::concurrency::parallel_writers_get_distinct_revisions",
            [],
            parallel_writers
        ),
    ]
}

/// Tasks increment one counter with read-modify-CAS loops: every increment must land, and no
/// two successful writes may share a revision.
async fn cas_race(store: Store) -> anyhow::Result<()> {
    const TASKS: usize = 16;
    const INCREMENTS: usize = 10;
    store.create("/counter", b("0"), None).await?;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                let mut current = store.get("/counter", None).await?.kv.context("counter")?;
                while revisions.len() < INCREMENTS {
                    let n: u64 = std::str::from_utf8(&current.value)?.parse()?;
                    let next = b(&(n + 1).to_string());
                    let expected = Precondition::ModRevision(current.mod_revision);
                    match store.update("/counter", next.clone(), expected, None).await {
                        Ok(revision) => {
                            revisions.push(revision);
                            current.value = next;
                            current.mod_revision = revision;
                        }
                        Err(Error::Conflict { current: live, .. }) => current = *live,
                        Err(other) => return Err(other.into()),
                    }
                }
                anyhow::Ok(revisions)
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for task in tasks {
        for revision in task.await?? {
            ensure!(
                all.insert(revision),
                "two successful CAS writes share revision {revision}"
            );
        }
    }
    let kv = store.get("/counter", None).await?.kv.context("counter")?;
    let total = (TASKS * INCREMENTS).to_string();
    ensure!(
        kv.value == b(&total),
        "lost update: counter is {:?}, expected {total}",
        kv.value
    );
    Ok(())
}

async fn create_race(store: Store) -> anyhow::Result<()> {
    for round in 0..5 {
        let key = format!("/race/{round}");
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move { store.create(&key, b(&i.to_string()), None).await })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await? {
                Ok(revision) => winners.push((i, revision)),
                Err(Error::AlreadyExists { .. }) => {}
                Err(other) => bail!("racing create failed with {other}"),
            }
        }
        ensure!(
            winners.len() == 1,
            "round {round}: {} creates won",
            winners.len()
        );
        let kv = store.get(&key, None).await?.kv.context("winner's key")?;
        ensure!(
            kv.value == b(&winners[0].0.to_string()),
            "value is not the winner's"
        );
        ensure!(
            kv.mod_revision == winners[0].1,
            "revision is not the winner's"
        );
    }
    Ok(())
}

async fn parallel_writers(store: Store) -> anyhow::Result<()> {
    const TASKS: usize = 8;
    const KEYS: usize = 50;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for k in 0..KEYS {
                    revisions.push(
                        store
                            .create(&format!("/w/{t}/{k:03}"), b("x"), None)
                            .await?,
                    );
                }
                anyhow::Ok(revisions)
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for task in tasks {
        let revisions = task.await??;
        ensure!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "one task's revisions not increasing"
        );
        for revision in revisions {
            ensure!(all.insert(revision), "revision {revision} handed out twice");
        }
    }
    let count = store
        .range(RangeRequest::prefix("/w/").count_only())
        .await?
        .count;
    ensure!(
        count == (TASKS * KEYS) as u64,
        "{count} keys after {} creates",
        TASKS * KEYS
    );
    Ok(())
}
