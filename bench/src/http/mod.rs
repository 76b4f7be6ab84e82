//! The HTTP level: every workload through a real `apiserver` over loopback HTTP/1.1.
//!
//! For each measurement the fresh store gets its own in-process server ([`server`]) and a new
//! namespace; the workloads then run unchanged over [`client::HttpClient`], which reads and
//! writes ConfigMaps in that namespace. Client and server share the process, the runtime and
//! the machine's cores.

pub mod client;
pub mod server;
pub mod wire;

use std::sync::Arc;

use anyhow::{Result, bail};
use storage_api::Interface;

use crate::cli::Workload;
use crate::watch_check;
use crate::workloads::{self, Measured, Params, Progress};

/// How a measurement's server and client are set up.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The namespace the measurement creates and works in.
    pub namespace: String,
    /// Bytes of the ConfigMaps' `pad` data entry.
    pub value_size: usize,
    /// Set `TCP_NODELAY` on the server's accepted connections (`--http-nodelay`, default on).
    pub server_nodelay: bool,
    /// Serve through the API server's watch cache (level `http-cache`).
    pub watch_cache: bool,
    /// What the clients read and write.
    pub kind: Kind,
    /// A running API server to drive instead of one started here (`--http-server`).
    pub external: Option<String>,
}

/// The kind of object the HTTP level reads and writes: ConfigMaps, or the objects of a
/// CustomResourceDefinition of the same shape (`data.pad`), which the client installs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// Core `v1` ConfigMaps.
    #[default]
    ConfigMap,
    /// `bench.example.com/v1` BenchObjects, served from [`client::BENCH_CRD`].
    Custom,
}

impl Kind {
    /// The collection path in `namespace`.
    pub fn collection(self, namespace: &str) -> String {
        match self {
            Kind::ConfigMap => format!("/api/v1/namespaces/{namespace}/configmaps"),
            Kind::Custom => {
                format!("/apis/bench.example.com/v1/namespaces/{namespace}/benchobjects")
            }
        }
    }

    /// `apiVersion` and `kind` of the objects.
    pub fn type_meta(self) -> (&'static str, &'static str) {
        match self {
            Kind::ConfigMap => ("v1", "ConfigMap"),
            Kind::Custom => ("bench.example.com/v1", "BenchObject"),
        }
    }

    /// The key prefix of the objects in `namespace` in the server's store.
    pub fn key_prefix(self, namespace: &str) -> String {
        match self {
            Kind::ConfigMap => format!("/registry/configmaps/{namespace}/"),
            Kind::Custom => format!("/registry/bench.example.com/benchobjects/{namespace}/"),
        }
    }
}

/// How many RoleBindings an RBAC measurement's namespace holds (one of them the driving
/// user's).
pub const BINDINGS: usize = 1_000;

/// The level name of the `system:masters` rows of `http-rbac` measurements.
pub const MASTERS_LEVEL: &str = "http-masters";

/// Serves `store` on a loopback port and runs `workload` against it over HTTP with
/// `concurrency` clients, in the setup's namespace (created first).
///
/// # Errors
///
/// When the server cannot start, the namespace cannot be created, or the workload cannot run
/// at all (`churn` needs compaction, which the HTTP API does not expose). Failed requests are
/// counted in the result, not returned.
pub async fn measure(
    store: Arc<dyn Interface>,
    setup: &Setup,
    workload: Workload,
    concurrency: usize,
    params: &Params,
    progress: Progress,
) -> Result<Measured> {
    if workload == Workload::Churn {
        bail!(
            "churn compacts the store, which the HTTP API does not expose; use --levels kv,object"
        );
    }
    let server = match &setup.external {
        Some(_) => None,
        None => Some(
            server::LocalServer::start(
                store.clone(),
                setup.server_nodelay,
                setup.watch_cache,
                false,
            )
            .await?,
        ),
    };
    let base = match (&setup.external, &server) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(server)) => server.base_url(),
        (None, None) => bail!("no API server to drive"),
    };
    let mut client = client::HttpClient::connect(base, setup.namespace.clone(), setup.value_size)
        .await?
        .with_kind(setup.kind);
    if setup.kind == Kind::Custom {
        client.install_bench_crd().await?;
    }
    if server.is_some() {
        // An in-process server: the workload compacts its store as the server's own
        // compactor would.
        client = client.with_compactor(store.clone());
    }
    let client = Arc::new(client);
    let measured = if workload == Workload::WatchCheck {
        // The history is read from the server's store (DELETE answers carry no revision).
        let reference = server.is_some().then(|| watch_check::Reference {
            store,
            prefix: setup.kind.key_prefix(&setup.namespace),
        });
        watch_check::watch_check(client.clone(), concurrency, params, reference).await
    } else {
        workloads::run(client.clone(), workload, concurrency, params, progress).await
    };
    // Close the pooled connections before the server goes away.
    drop(client);
    drop(server);
    let mut measured = measured?;
    measured.note(
        "server_nodelay",
        setup.server_nodelay,
        if setup.server_nodelay {
            String::new()
        } else {
            "server without TCP_NODELAY".to_owned()
        },
    );
    Ok(measured)
}

/// Serves `store` with RBAC on and measures `workload` twice at once on that server:
/// `concurrency` clients of a user whom one of [`BINDINGS`] RoleBindings in its namespace binds
/// to `edit`, and `concurrency` clients of a `system:masters` member in a namespace of its
/// own. Running side by side, both see the same server, data and moment of a noisy machine, so
/// their ratio is the cost of authorization alone. Returns (user, masters).
///
/// # Errors
///
/// As [`measure`], or when the user's binding never takes effect.
pub async fn measure_rbac(
    store: Arc<dyn Interface>,
    setup: &Setup,
    workload: Workload,
    concurrency: usize,
    params: &Params,
    progress: Progress,
) -> Result<(Measured, Measured)> {
    if matches!(workload, Workload::Churn | Workload::Watch) {
        bail!("http-rbac measures request workloads (create, update, get, list, mixed)");
    }
    let server = server::LocalServer::start(store, setup.server_nodelay, true, true).await?;
    let base = server.base_url();
    let as_admin = |namespace: String| {
        client::HttpClient::new(
            base.clone(),
            namespace,
            setup.value_size,
            Some(server::ADMIN_TOKEN),
        )
    };
    let admin = as_admin(format!("{}-masters", setup.namespace))?;
    admin.create_namespace().await?;
    let binder = as_admin(setup.namespace.clone())?;
    binder.create_namespace().await?;
    // Others' bindings first, so the user's is the last of many.
    for i in 0..BINDINGS - 1 {
        binder
            .bind(
                &format!("other-{i:04}"),
                "edit",
                &format!("other-user-{i:04}"),
            )
            .await?;
    }
    binder.bind("bench-user", "edit", server::RBAC_USER).await?;
    let user = client::HttpClient::new(
        base.clone(),
        setup.namespace.clone(),
        setup.value_size,
        Some(server::USER_TOKEN),
    )?;
    // The binding reaches the authorizer through its watch, a moment after it is written.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !user.can_list().await {
        if std::time::Instant::now() > deadline {
            bail!("the RoleBinding of {} never took effect", server::RBAC_USER);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let quiet: Progress = Arc::new(|_| {});
    let (user_measured, admin_measured) = tokio::join!(
        workloads::run(Arc::new(user), workload, concurrency, params, progress),
        workloads::run(Arc::new(admin), workload, concurrency, params, quiet),
    );
    drop(server);
    let note = format!(
        "side by side: {concurrency} + {concurrency} clients, RBAC on, {BINDINGS} RoleBindings"
    );
    let mut user_measured = user_measured?;
    user_measured.note("side_by_side", true, note.clone());
    let mut admin_measured = admin_measured?;
    admin_measured.note("side_by_side", true, note);
    Ok((user_measured, admin_measured))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tiny() -> Params {
        Params {
            duration: Duration::from_millis(100),
            keys: 20,
            page_size: 7,
            list_total: 30,
            watchers: 3,
            watch_rate: 500,
            pacing: crate::pacing::Pacing::Interleaved,
            mixed_write_percent: 50,
            churn_updates: 100,
            churn_keys: 10,
            churn_compact_every: 50,
            churn_keep: 10,
        }
    }

    /// The watch check over HTTP (watch cache on and off): writes, deletes and watches go
    /// through the server, compaction to its store; every watcher matches the history.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_check_over_http() {
        for watch_cache in [false, true] {
            let store: Arc<dyn Interface> = Arc::new(backend_memory::MemoryStore::default());
            let setup = Setup {
                namespace: format!("check-{watch_cache}"),
                value_size: 32,
                server_nodelay: true,
                watch_cache,
                kind: Kind::ConfigMap,
                external: None,
            };
            let params = Params {
                duration: Duration::from_millis(1500),
                keys: 64,
                watchers: 4,
                watch_rate: 1_000,
                churn_keep: 100,
                ..tiny()
            };
            let measured = measure(
                store,
                &setup,
                Workload::WatchCheck,
                4,
                &params,
                Arc::new(|_| {}),
            )
            .await
            .unwrap();
            let note = |name: &str| measured.noted(name).unwrap_or_default();
            assert!(note("events_checked") > 500, "{:?}", measured.notes);
            assert!(note("relists") > 0, "{:?}", measured.notes);
        }
    }

    /// RBAC on: the bound user and the superuser both run without a refused request.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rbac_side_by_side() {
        let store: Arc<dyn Interface> = Arc::new(backend_memory::MemoryStore::default());
        let setup = Setup {
            namespace: "rbac".to_owned(),
            value_size: 64,
            server_nodelay: true,
            watch_cache: true,
            kind: Kind::ConfigMap,
            external: None,
        };
        for workload in [Workload::Create, Workload::Get] {
            let (user, masters) = measure_rbac(
                store.clone(),
                &Setup {
                    namespace: format!("rbac-{}", workload.name()),
                    ..setup.clone()
                },
                workload,
                2,
                &tiny(),
                Arc::new(|_| {}),
            )
            .await
            .unwrap();
            for (who, measured) in [("user", &user), ("masters", &masters)] {
                assert_eq!(
                    measured.recorder.errors, 0,
                    "{who}: {:?}",
                    measured.recorder.first_error
                );
                assert!(measured.recorder.count() > 0, "{who}");
            }
        }
        assert!(
            measure_rbac(store, &setup, Workload::Watch, 1, &tiny(), Arc::new(|_| {}))
                .await
                .is_err()
        );
    }

    /// Every workload but churn, over HTTP against a memory store, on ConfigMaps and on a CRD's
    /// objects: real requests, no errors.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_runs_over_http() {
        let progress: Progress = Arc::new(|_| {});
        for workload in [
            Workload::Create,
            Workload::Update,
            Workload::Get,
            Workload::List,
            Workload::ListPast,
            Workload::Mixed,
            Workload::Watch,
        ] {
            for concurrency in [1, 4] {
                let store: Arc<dyn Interface> = Arc::new(backend_memory::MemoryStore::default());
                let mut params = tiny();
                if workload == Workload::List && concurrency == 4 {
                    // The unpaginated collection GET of the results file.
                    params.page_size = 0;
                }
                let setup = Setup {
                    namespace: format!("bench-{concurrency}"),
                    value_size: 64,
                    server_nodelay: concurrency == 4,
                    watch_cache: concurrency == 4,
                    // A CRD's objects at 4 clients, ConfigMaps at 1.
                    kind: if concurrency == 4 {
                        Kind::Custom
                    } else {
                        Kind::ConfigMap
                    },
                    external: None,
                };
                let measured = measure(
                    store,
                    &setup,
                    workload,
                    concurrency,
                    &params,
                    progress.clone(),
                )
                .await
                .unwrap();
                assert_eq!(
                    measured.recorder.errors, 0,
                    "{workload:?} c{concurrency}: {:?}",
                    measured.recorder.first_error
                );
                assert!(measured.recorder.count() > 0, "{workload:?} c{concurrency}");
                if workload == Workload::Watch {
                    let note = |name: &str| measured.noted(name);
                    assert_eq!(note("watchers_complete"), Some(3), "{:?}", measured.notes);
                    let writes = note("writes").unwrap();
                    assert!(writes > 0);
                    assert_eq!(note("events_delivered"), Some(3 * writes));
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_are_counted_not_hidden() {
        let store: Arc<dyn Interface> = Arc::new(backend_memory::MemoryStore::default());
        let server = server::LocalServer::start(store, false, true, false)
            .await
            .unwrap();
        let client = client::HttpClient::connect(server.base_url(), "errs".to_owned(), 8)
            .await
            .unwrap();
        use crate::client::Client as _;
        let version = client.create("a", 1).await.unwrap();
        let error = client.create("a", 2).await.unwrap_err();
        assert!(format!("{error:#}").contains("HTTP 409"), "{error:#}");
        client.update("a", &version, 3).await.unwrap();
        let stale = client.update("a", &version, 4).await.unwrap_err();
        assert!(format!("{stale:#}").contains("HTTP 409"), "{stale:#}");
        let missing = client.get("nope").await.unwrap_err();
        assert!(format!("{missing:#}").contains("HTTP 404"), "{missing:#}");
        assert!(client.compact(1).await.is_err());
        // A namespace that exists already cannot be the measurement's namespace.
        let again = client::HttpClient::connect(server.base_url(), "errs".to_owned(), 8).await;
        assert!(again.is_err());
    }
}
