//! Create, get, update and delete, with their compare-and-swap failures.

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use storage_api::{Error, Precondition, WatchRequest};

use super::Store;
use crate::runner::Case;
use crate::support::b;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!("kv::create::then_get", [], create_then_get),
        case!(
            "kv::create::on_live_key_fails",
            [],
            create_on_live_key_fails
        ),
        case!("kv::create::after_delete", [], create_after_delete),
        case!("kv::create::values_round_trip", [], values_round_trip),
        case!(
            "kv::create::revisions_strictly_increase",
            [],
            revisions_strictly_increase
        ),
        case!("kv::get::missing_key", [], get_missing_key),
        case!("kv::get::exact_old_revision", [], get_exact_old_revision),
        case!("kv::get::future_revision", [], get_future_revision),
        case!("kv::keys::invalid_keys_rejected", [], invalid_keys_rejected),
        case!(
            "kv::keys::dots_inside_a_segment_are_fine",
            [],
            dots_inside_segment
        ),
        case!(
            "kv::update::with_current_revision",
            [],
            update_with_current_revision
        ),
        case!(
            "kv::update::stale_revision_conflicts",
            [],
            update_stale_revision_conflicts
        ),
        case!("kv::update::missing_key", [], update_missing_key),
        case!("kv::update::unconditional", [], update_unconditional),
        case!(
            "kv::delete::returns_previous_value",
            [],
            delete_returns_previous_value
        ),
        case!(
            "kv::delete::stale_revision_conflicts",
            [],
            delete_stale_revision_conflicts
        ),
        case!(
            "kv::delete::missing_and_deleted_keys",
            [],
            delete_missing_and_deleted
        ),
        case!(
            "kv::status::ready_and_current_revision",
            [],
            ready_and_current_revision
        ),
    ]
}

async fn create_then_get(store: Store) -> anyhow::Result<()> {
    let before = store.current_revision().await?;
    let rev = store.create("/a", b("one"), None).await?;
    ensure!(
        rev > before,
        "create revision {rev} must be above the revision before it ({before})"
    );
    let got = store.get("/a", None).await?;
    let kv = got.kv.context("created key must be readable")?;
    ensure!(kv.value == b("one"), "value {:?}", kv.value);
    ensure!(kv.key == "/a", "key {:?}", kv.key);
    ensure!(
        kv.create_revision == rev && kv.mod_revision == rev,
        "revisions of {kv:?} vs {rev}"
    );
    ensure!(
        got.revision >= rev,
        "read revision {} below the write {rev}",
        got.revision
    );
    ensure!(
        store.current_revision().await? >= rev,
        "current revision below the last write"
    );
    Ok(())
}

async fn create_on_live_key_fails(store: Store) -> anyhow::Result<()> {
    store.create("/a", b("one"), None).await?;
    match store.create("/a", b("two"), None).await {
        Err(Error::AlreadyExists { key }) => ensure!(key == "/a", "error names key {key:?}"),
        other => bail!("create on a live key must fail with AlreadyExists, got {other:?}"),
    }
    let kv = store.get("/a", None).await?.kv.context("key vanished")?;
    ensure!(
        kv.value == b("one"),
        "failed create must not change the value: {:?}",
        kv.value
    );
    Ok(())
}

async fn create_after_delete(store: Store) -> anyhow::Result<()> {
    let first = store.create("/a", b("one"), None).await?;
    let deleted = store.delete("/a", Precondition::None).await?;
    let second = store.create("/a", b("two"), None).await?;
    ensure!(
        second > deleted.revision,
        "recreate at {second} not after delete {deleted:?}"
    );
    let kv = store.get("/a", None).await?.kv.context("recreated key")?;
    ensure!(
        kv.create_revision == second,
        "new incarnation keeps create revision {first}: {kv:?}"
    );
    ensure!(kv.value == b("two"), "value {:?}", kv.value);
    Ok(())
}

async fn values_round_trip(store: Store) -> anyhow::Result<()> {
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let large: Vec<u8> = (0..(1usize << 20)).map(|i| (i * 7 % 251) as u8).collect();
    for (key, value) in [
        ("/empty", Bytes::new()),
        ("/binary", Bytes::from(all_bytes)),
        ("/large", Bytes::from(large)),
        ("/utf8", b("ünïcødé ✓")),
    ] {
        store
            .create(key, value.clone(), None)
            .await
            .with_context(|| format!("create {key}"))?;
        let kv = store
            .get(key, None)
            .await?
            .kv
            .with_context(|| format!("{key} missing"))?;
        ensure!(
            kv.value == value,
            "{key}: value of {} bytes changed on the way",
            value.len()
        );
    }
    Ok(())
}

async fn revisions_strictly_increase(store: Store) -> anyhow::Result<()> {
    let mut last = store.current_revision().await?;
    for i in 0..20 {
        let key = format!("/k{}", i % 3);
        let rev = if i < 3 {
            store.create(&key, b(&i.to_string()), None).await?
        } else if i % 5 == 0 {
            let deleted = store.delete(&key, Precondition::None).await?;
            store
                .create(&key, b("again"), None)
                .await?
                .max(deleted.revision)
        } else {
            store
                .update(&key, b(&i.to_string()), Precondition::None, None)
                .await?
        };
        ensure!(rev > last, "write {i} got revision {rev}, not above {last}");
        last = rev;
    }
    Ok(())
}

async fn get_missing_key(store: Store) -> anyhow::Result<()> {
    let rev = store.create("/present", b("x"), None).await?;
    let got = store.get("/absent", None).await?;
    ensure!(got.kv.is_none(), "missing key returned {:?}", got.kv);
    ensure!(
        got.revision >= rev,
        "missing-key read at {} is older than the last write",
        got.revision
    );
    Ok(())
}

async fn get_exact_old_revision(store: Store) -> anyhow::Result<()> {
    let r1 = store.create("/a", b("v1"), None).await?;
    let r2 = store
        .update("/a", b("v2"), Precondition::ModRevision(r1), None)
        .await?;
    let r3 = store.delete("/a", Precondition::None).await?.revision;
    for (at, expected) in [(r1, Some("v1")), (r2, Some("v2")), (r3, None)] {
        let got = store.get("/a", Some(at)).await?;
        ensure!(
            got.revision == at,
            "read at {at} reports revision {}",
            got.revision
        );
        let value = got.kv.as_ref().map(|kv| kv.value.clone());
        ensure!(
            value == expected.map(b),
            "at {at}: expected {expected:?}, got {value:?}"
        );
    }
    let at_r2 = store.get("/a", Some(r2)).await?.kv.context("value at r2")?;
    ensure!(
        at_r2.mod_revision == r2 && at_r2.create_revision == r1,
        "{at_r2:?}"
    );
    if r1 > 1 {
        let before = store.get("/a", Some(r1 - 1)).await?;
        ensure!(
            before.kv.is_none(),
            "key visible before it was created: {:?}",
            before.kv
        );
    }
    Ok(())
}

async fn get_future_revision(store: Store) -> anyhow::Result<()> {
    store.create("/a", b("x"), None).await?;
    let future = store.current_revision().await? + 1_000_000;
    match store.get("/a", Some(future)).await {
        Err(Error::FutureRevision { requested, .. }) => {
            ensure!(
                requested == future,
                "error reports {requested}, asked {future}"
            )
        }
        other => bail!("read at a future revision must fail with FutureRevision, got {other:?}"),
    }
    Ok(())
}

async fn invalid_keys_rejected(store: Store) -> anyhow::Result<()> {
    for key in [
        "", "/", "/a/../b", "/a/./b", "../a", "./a", "/a/..", "/a/.", "..",
    ] {
        let results = [
            ("create", store.create(key, b("x"), None).await.map(|_| ())),
            (
                "update",
                store
                    .update(key, b("x"), Precondition::None, None)
                    .await
                    .map(|_| ()),
            ),
            (
                "delete",
                store.delete(key, Precondition::None).await.map(|_| ()),
            ),
            ("get", store.get(key, None).await.map(|_| ())),
            (
                "watch",
                store.watch(WatchRequest::key(key)).await.map(|_| ()),
            ),
        ];
        for (op, result) in results {
            ensure!(
                matches!(result, Err(Error::InvalidArgument(_))),
                "{op} of key {key:?} must fail with InvalidArgument, got {result:?}"
            );
        }
    }
    Ok(())
}

async fn dots_inside_segment(store: Store) -> anyhow::Result<()> {
    for key in ["/foo/bar..baz/", "/a/...", "/a/.hidden", "/a.b/c"] {
        store
            .create(key, b("x"), None)
            .await
            .with_context(|| format!("create {key:?}"))?;
        ensure!(
            store.get(key, None).await?.kv.is_some(),
            "{key:?} not readable"
        );
    }
    Ok(())
}

async fn update_with_current_revision(store: Store) -> anyhow::Result<()> {
    let created = store.create("/a", b("v1"), None).await?;
    let updated = store
        .update("/a", b("v2"), Precondition::ModRevision(created), None)
        .await?;
    ensure!(
        updated > created,
        "update revision {updated} not above {created}"
    );
    let kv = store.get("/a", None).await?.kv.context("updated key")?;
    ensure!(kv.value == b("v2") && kv.mod_revision == updated, "{kv:?}");
    ensure!(
        kv.create_revision == created,
        "update changed create_revision: {kv:?}"
    );
    Ok(())
}

async fn update_stale_revision_conflicts(store: Store) -> anyhow::Result<()> {
    let created = store.create("/a", b("v1"), None).await?;
    let updated = store
        .update("/a", b("v2"), Precondition::ModRevision(created), None)
        .await?;
    match store
        .update("/a", b("v3"), Precondition::ModRevision(created), None)
        .await
    {
        Err(Error::Conflict {
            key,
            expected,
            current,
        }) => {
            ensure!(
                key == "/a" && expected == created,
                "conflict names {key:?} / {expected}"
            );
            ensure!(
                current.value == b("v2"),
                "conflict carries {:?}, not v2",
                current.value
            );
            ensure!(
                current.mod_revision == updated,
                "conflict carries stale {current:?}"
            );
        }
        other => bail!("stale update must fail with Conflict, got {other:?}"),
    }
    let kv = store.get("/a", None).await?.kv.context("key")?;
    ensure!(
        kv.value == b("v2"),
        "a failed CAS changed the value to {:?}",
        kv.value
    );
    Ok(())
}

async fn update_missing_key(store: Store) -> anyhow::Result<()> {
    for precondition in [Precondition::None, Precondition::ModRevision(1)] {
        match store.update("/never", b("x"), precondition, None).await {
            Err(Error::NotFound { key }) => ensure!(key == "/never", "error names {key:?}"),
            other => bail!("update of a missing key must be NotFound, got {other:?}"),
        }
    }
    let created = store.create("/gone", b("x"), None).await?;
    store.delete("/gone", Precondition::None).await?;
    match store
        .update("/gone", b("y"), Precondition::ModRevision(created), None)
        .await
    {
        Err(Error::NotFound { .. }) => {}
        other => bail!("update of a deleted key must be NotFound, got {other:?}"),
    }
    ensure!(
        store.get("/gone", None).await?.kv.is_none(),
        "update resurrected a deleted key"
    );
    Ok(())
}

async fn update_unconditional(store: Store) -> anyhow::Result<()> {
    let created = store.create("/a", b("v1"), None).await?;
    store
        .update("/a", b("v2"), Precondition::ModRevision(created), None)
        .await?;
    let last = store
        .update("/a", b("v3"), Precondition::None, None)
        .await?;
    let kv = store.get("/a", None).await?.kv.context("key")?;
    ensure!(kv.value == b("v3") && kv.mod_revision == last, "{kv:?}");
    Ok(())
}

async fn delete_returns_previous_value(store: Store) -> anyhow::Result<()> {
    let created = store.create("/a", b("v1"), None).await?;
    let updated = store
        .update("/a", b("v2"), Precondition::None, None)
        .await?;
    let deleted = store
        .delete("/a", Precondition::ModRevision(updated))
        .await?;
    ensure!(
        deleted.revision > updated,
        "delete revision {} not above {updated}",
        deleted.revision
    );
    ensure!(
        deleted.prev.value == b("v2"),
        "prev {:?}",
        deleted.prev.value
    );
    ensure!(deleted.prev.mod_revision == updated && deleted.prev.create_revision == created);
    ensure!(
        store.get("/a", None).await?.kv.is_none(),
        "deleted key still readable"
    );
    Ok(())
}

async fn delete_stale_revision_conflicts(store: Store) -> anyhow::Result<()> {
    let created = store.create("/a", b("v1"), None).await?;
    let updated = store
        .update("/a", b("v2"), Precondition::None, None)
        .await?;
    match store.delete("/a", Precondition::ModRevision(created)).await {
        Err(Error::Conflict { current, .. }) => ensure!(
            current.mod_revision == updated && current.value == b("v2"),
            "conflict carries {current:?}"
        ),
        other => bail!("stale delete must fail with Conflict, got {other:?}"),
    }
    ensure!(
        store.get("/a", None).await?.kv.is_some(),
        "a failed delete removed the key"
    );
    Ok(())
}

async fn delete_missing_and_deleted(store: Store) -> anyhow::Result<()> {
    match store.delete("/never", Precondition::None).await {
        Err(Error::NotFound { key }) => ensure!(key == "/never", "error names {key:?}"),
        other => bail!("delete of a missing key must be NotFound, got {other:?}"),
    }
    let created = store.create("/a", b("v1"), None).await?;
    store.delete("/a", Precondition::None).await?;
    for precondition in [Precondition::None, Precondition::ModRevision(created)] {
        match store.delete("/a", precondition).await {
            Err(Error::NotFound { .. }) => {}
            other => bail!("second delete must be NotFound, got {other:?}"),
        }
    }
    Ok(())
}

async fn ready_and_current_revision(store: Store) -> anyhow::Result<()> {
    store.ready().await?;
    let before = store.current_revision().await?;
    let rev = store.create("/a", b("x"), None).await?;
    let after = store.current_revision().await?;
    ensure!(
        before < rev && rev <= after,
        "before {before}, write {rev}, after {after}"
    );
    Ok(())
}
