//! A Kubernetes-style API server that kubectl and Kubernetes client libraries use as they use
//! kube-apiserver, built on the `registry` Store and any `storage` backend.
//!
//! # Serving your own kinds
//!
//! Build a [`ServerBuilder`] over a storage backend (`storage::open("sqlite://...")`,
//! `memory://`, ...), register kinds with [`ServerBuilder::register_kind`] (a
//! [`scheme::ResourceInfo`] for names and scope, a converter, a
//! [`registry::Strategy`] for validation and table columns, and a patch schema), or whole
//! handlers of your own with [`ServerBuilder::register_handler`] (anything implementing
//! [`ResourceHandler`]), then serve [`ApiServer::router`] with axum. The built-in kinds of the
//! binary are registered by [`kinds::register_all`]. See `examples/custom_kind.rs`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use scheme::{TypedConverter, builtin};
//! use builtin_kinds::ConfigMapStrategy;
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let storage = storage::open("memory://").await?;
//! let mut builder = apiserver::ServerBuilder::new(storage)?;
//! builder.register_kind(apiserver::KindSpec::<ConfigMap>::new(
//!     builtin::configmaps(),
//!     Arc::new(TypedConverter::<ConfigMap>::new()),
//!     Arc::new(ConfigMapStrategy),
//!     &patch::CONFIG_MAP,
//! ))?;
//! let server = builder.build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! // TCP_NODELAY, as the binary serves: watch events leave at once.
//! let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
//!     let _ = tcp.set_nodelay(true);
//! });
//! axum::serve(listener, server.router()).await?;
//! # Ok(()) }
//! ```

// `ApiError` (the metav1.Status of a failure) is the error of every request path, as in the
// registry crate; it is large but only built on the cold error path.

// Public: what an embedder uses. Routing, dispatch, protobuf, OpenAPI and the namespace
// lifecycle are how the server works, not API.
pub mod access;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod connection_deadlines;
pub mod conversion_webhook;
pub mod crds;
mod dispatch;
mod endpoints;
mod garbage_collector;
mod handler;
mod http;
mod impersonation;
pub mod inflight;
pub mod kinds;
pub mod metrics;
mod namespace;
mod openapi;
mod openapi_v2;
mod protobuf;
mod query;
pub mod rbac;
mod request;
pub mod reviews;
mod routes;
pub mod scale;
mod server;
pub mod service_accounts;
mod strict;
mod table;
pub mod tls;
mod watch;
pub mod watch_cache;

pub use handler::{
    Admission, EncodedList, FieldValidation, ListResult, RequestBody, RequestContext,
    ResourceHandler, StoreHandler, WriteOutcome,
};
pub use server::{ApiServer, KindSpec, ServedKinds, ServerBuilder, ServerError, ServerState};
