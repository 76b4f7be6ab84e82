//! Backup and restore while serving: `apiserver backup` takes a backup of a server under
//! concurrent writes, through `/storage/backup` with an administrator's kubeconfig (a user
//! without the right is refused); `apiserver restore` makes a new store from it, on SQLite and
//! on sled; the restored server holds exactly the ConfigMaps of the backup's revision, and a
//! client that watches or lists with a resourceVersion of the old server gets 410 Gone and
//! lists again.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, VersionMatch, WatchEvent, WatchParams};

mod common;

use common::ServerProcess;

/// `apiserver` with these arguments (a subcommand).
fn apiserver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apiserver"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run apiserver")
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    kube::Client::try_from(config).expect("client")
}

/// Name to data of every ConfigMap in `default`.
fn contents(list: &[ConfigMap]) -> BTreeMap<String, BTreeMap<String, String>> {
    list.iter()
        .map(|cm| {
            (
                cm.metadata.name.clone().unwrap_or_default(),
                cm.data.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn configmap(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("v".to_owned(), value.to_owned())])),
        ..Default::default()
    }
}

async fn backup_under_load_restores_into(storage: impl Fn(&Path) -> Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "admin-token,admin,1,\"system:masters\"\nbob-token,bob,2\n",
    )
    .expect("tokens");
    let server_flags = |data: &Path| -> Vec<String> {
        let mut flags = vec![
            "--token-auth-file".to_owned(),
            tokens.display().to_string(),
            "--authorization-mode".to_owned(),
            "RBAC".to_owned(),
        ];
        if let Some(url) = storage(data) {
            flags.extend(["--storage".to_owned(), url]);
        }
        flags
    };
    let old_data = dir.path().join("old");
    let flags = server_flags(&old_data);
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&old_data, &flag_refs);
    let kubeconfig = server.kubeconfig.display().to_string();
    let admin = client(&server.kubeconfig).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");

    // Four writers create, update and delete ConfigMaps until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let api = configmaps.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0_u32;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("w{writer}-{:03}", i % 150);
                let result = match i % 5 {
                    4 => api.delete(&name, &Default::default()).await.map(|_| ()),
                    _ => match api
                        .create(&PostParams::default(), &configmap(&name, &i.to_string()))
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(kube::Error::Api(status)) if status.code == 409 => {
                            let patch = serde_json::json!({"data": {"v": i.to_string()}});
                            api.patch(&name, &Default::default(), &kube::api::Patch::Merge(patch))
                                .await
                                .map(|_| ())
                        }
                        Err(error) => Err(error),
                    },
                };
                match result {
                    Ok(()) | Err(kube::Error::Api(_)) => {}
                    Err(error) => panic!("writer {writer}: {error}"),
                }
                i += 1;
            }
        }));
    }
    // An event, which a restore gives a fresh TTL.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(admin.clone(), "default");
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "ConfigMap", "name": "w0-000", "namespace": "default"},
        "reason": "Tested",
        "message": "an event",
        "type": "Normal"
    }))
    .expect("event");
    events
        .create(&PostParams::default(), &event)
        .await
        .expect("create an event");
    while configmaps
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .len()
        < 100
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A user without the right is refused; the administrator's backup is taken under load.
    let file = dir.path().join("backup.ksb");
    let file_arg = file.display().to_string();
    let refused = apiserver(&[
        "backup",
        "--kubeconfig",
        &kubeconfig,
        "--token",
        "bob-token",
        "--to",
        &file_arg,
    ]);
    assert!(!refused.status.success(), "{}", printed(&refused));
    assert!(
        printed(&refused).contains("forbidden"),
        "{}",
        printed(&refused)
    );
    let taken = apiserver(&["backup", "--kubeconfig", &kubeconfig, "--to", &file_arg]);
    assert!(taken.status.success(), "{}", printed(&taken));
    let revision: u64 = printed(&taken)
        .split("at revision ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {}", printed(&taken)));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let at_backup = configmaps
        .list(
            &ListParams::default()
                .at(&revision.to_string())
                .matching(VersionMatch::Exact),
        )
        .await
        .expect("list at the backup's revision");
    let expected = contents(&at_backup.items);
    assert!(expected.len() >= 100, "{} ConfigMaps", expected.len());
    let latest = configmaps.list(&ListParams::default()).await.expect("list");
    let latest_revision: u64 = latest
        .metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .expect("resourceVersion");
    assert!(latest_revision > revision, "no write after the backup");
    drop(server);

    // Restored into a new store and served: exactly the ConfigMaps of the backup's revision.
    let new_data = dir.path().join("new");
    let mut restore_args = vec![
        "restore".to_owned(),
        "--from".to_owned(),
        file_arg.clone(),
        "--data-dir".to_owned(),
        new_data.display().to_string(),
    ];
    if let Some(url) = storage(&new_data) {
        restore_args.extend(["--storage".to_owned(), url]);
    }
    let restore_refs: Vec<&str> = restore_args.iter().map(String::as_str).collect();
    let restored = apiserver(&restore_refs);
    assert!(restored.status.success(), "{}", printed(&restored));
    assert!(
        printed(&restored).contains("(1 with a TTL)"),
        "{}",
        printed(&restored)
    );
    let flags = server_flags(&new_data);
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&new_data, &flag_refs);
    let admin = client(&server.kubeconfig).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(admin, "default");
    let list = configmaps.list(&ListParams::default()).await.expect("list");
    assert!(
        contents(&list.items) == expected,
        "the restore holds other ConfigMaps"
    );

    // Clients of the old server: a watch from its latest resourceVersion gets 410, as does
    // an exact list; a new list works, and so do writes.
    let old = latest_revision.to_string();
    let mut watch = configmaps
        .watch(&WatchParams::default(), &old)
        .await
        .expect("watch")
        .boxed();
    match watch.next().await {
        Some(Ok(WatchEvent::Error(status))) => assert_eq!(status.code, 410, "{status:?}"),
        other => panic!("a watch from an old resourceVersion got {other:?}"),
    }
    let exact = configmaps
        .list(&ListParams::default().at(&old).matching(VersionMatch::Exact))
        .await;
    assert!(
        matches!(&exact, Err(kube::Error::Api(status)) if status.code == 410),
        "{exact:?}"
    );
    let new_revision: u64 = list
        .metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .expect("resourceVersion");
    assert!(
        new_revision > latest_revision,
        "{new_revision} <= {latest_revision}"
    );
    println!(
        "backup at revision {revision} of {} ConfigMaps; old server at {latest_revision}; \
         restored server at {new_revision}",
        expected.len()
    );
    configmaps
        .create(&PostParams::default(), &configmap("after-restore", "1"))
        .await
        .expect("a write after the restore");

    // Restoring into a store that has keys is refused.
    drop(server);
    let again = apiserver(&restore_refs);
    assert!(!again.status.success(), "{}", printed(&again));
    assert!(
        printed(&again).contains("already holds keys"),
        "{}",
        printed(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_into_sqlite() {
    backup_under_load_restores_into(|_| None).await;
}

#[cfg(feature = "sled")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_into_sled() {
    backup_under_load_restores_into(|data| Some(format!("sled://{}/sled", data.display()))).await;
}
