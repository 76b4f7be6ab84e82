//! An in-process API server over a store, served on a loopback port, the way
//! `apiserver/tests/kube_client.rs` starts one.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use storage_api::Interface;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The token of the `system:masters` member of an RBAC server.
pub const ADMIN_TOKEN: &str = "storage-bench-admin-token";
/// The token of [`RBAC_USER`].
pub const USER_TOKEN: &str = "storage-bench-user-token";
/// The user of an RBAC server whose rights come from one RoleBinding among many.
pub const RBAC_USER: &str = "storage-bench-user";

/// A running `apiserver` with the built-in kinds. Dropping it shuts it down: open watches end,
/// the controllers stop and the listener closes.
pub struct LocalServer {
    server: apiserver::ApiServer,
    address: SocketAddr,
    serving: JoinHandle<()>,
}

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl LocalServer {
    /// Builds a server over `store` (every built-in kind, the `default` namespace, the namespace
    /// controller) and serves it with `axum::serve` on `127.0.0.1:0`, setting `TCP_NODELAY` on
    /// accepted connections when `nodelay` (as the `apiserver` binary does), with every
    /// resource behind a watch cache when `watch_cache` (the binary's default), and with
    /// `rbac` authenticating [`ADMIN_TOKEN`] and [`USER_TOKEN`] and authorizing by RBAC.
    ///
    /// # Errors
    ///
    /// When the server cannot be built or bootstrapped, or no port can be bound.
    pub async fn start(
        store: Arc<dyn Interface>,
        nodelay: bool,
        watch_cache: bool,
        rbac: bool,
    ) -> Result<Self> {
        let settings = if watch_cache {
            apiserver::watch_cache::WatchCacheSettings::default()
        } else {
            apiserver::watch_cache::WatchCacheSettings::disabled()
        };
        let mut builder = apiserver::ServerBuilder::new(store)
            .context("creating the API server builder")?
            .with_watch_cache(settings);
        if rbac {
            // Bearer tokens over plain HTTP: the server takes them; only kubectl insists on
            // TLS, and TLS costs both identities the same.
            let mut tokens = auth::TokenAuthenticators::new();
            let users = format!(
                "{ADMIN_TOKEN},storage-bench-admin,1,system:masters\n{USER_TOKEN},{RBAC_USER},2\n"
            );
            tokens.push(Arc::new(
                auth::token_file::TokenFile::parse(&users).context("the bench's tokens")?,
            ));
            builder = builder
                .with_authentication(apiserver::access::Authentication::new(tokens, false))
                .with_authorization(vec![apiserver::access::AuthorizationMode::Rbac]);
        }
        apiserver::kinds::register_all(&mut builder, None)
            .context("registering the built-in kinds")?;
        let server = builder.build().context("building the API server")?;
        server
            .bootstrap()
            .await
            .context("bootstrapping the API server (the default namespace)")?;
        // Runs until `shutdown`.
        drop(server.controllers());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port for the API server")?;
        let address = listener
            .local_addr()
            .context("reading the API server's address")?;
        let router = server.router();
        let listener = axum::serve::ListenerExt::tap_io(listener, move |tcp: &mut TcpStream| {
            if nodelay {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::warn!(%error, "setting TCP_NODELAY on an accepted connection");
                }
            }
        });
        let serving = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "the in-process API server stopped");
            }
        });
        Ok(LocalServer {
            server,
            address,
            serving,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.server.shutdown();
        // Stops accepting; connections end when their clients close them.
        self.serving.abort();
    }
}
