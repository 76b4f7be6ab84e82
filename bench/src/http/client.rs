//! The HTTP level's [`Client`]: ConfigMaps in one namespace of an API server, over HTTP/1.1
//! keep-alive connections from a hyper connection pool (one connection per request in flight,
//! so one per concurrent client once the pool has grown).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

use storage_api::{Interface, Revision};

use super::Kind;
use super::wire::{self, ConfigMapBody, Lines, List, Object};
use crate::client::{Client, Expired, SeenStream};

/// How long a request may take to answer (for a watch: to send its response head).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// ConfigMaps in one namespace, over HTTP.
#[derive(Debug)]
pub struct HttpClient {
    pool: Pool<HttpConnector, Full<Bytes>>,
    base: String,
    namespace: String,
    pad: String,
    /// `Bearer <token>`, when the client authenticates.
    authorization: Option<HeaderValue>,
    /// The store of an in-process server, compacted directly as a server's own compactor
    /// does (the HTTP API has no compaction call).
    compactor: Option<Arc<dyn Interface>>,
    /// What it reads and writes.
    kind: Kind,
}

/// The CustomResourceDefinition of [`Kind::Custom`]: objects shaped like the bench's
/// ConfigMaps, with a `data` map of strings.
pub const BENCH_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "benchobjects.bench.example.com"},
  "spec": {
    "group": "bench.example.com",
    "scope": "Namespaced",
    "names": {"plural": "benchobjects", "singular": "benchobject", "kind": "BenchObject"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "data": {"type": "object", "additionalProperties": {"type": "string"}}}}}}]
  }
}"#;

impl HttpClient {
    /// A client of the server at `base` (`http://127.0.0.1:PORT`) that creates namespace
    /// `namespace` and writes ConfigMaps with a `value_size`-byte data entry into it.
    ///
    /// # Errors
    ///
    /// When the namespace cannot be created.
    pub async fn connect(base: String, namespace: String, value_size: usize) -> Result<Self> {
        let client = Self::new(base, namespace, value_size, None)?;
        client.create_namespace().await?;
        Ok(client)
    }

    /// A client of `base` for ConfigMaps in `namespace` (which must exist), sending `token`
    /// as its bearer token when given.
    ///
    /// # Errors
    ///
    /// A token that cannot be a header value.
    pub fn new(
        base: String,
        namespace: String,
        value_size: usize,
        token: Option<&str>,
    ) -> Result<Self> {
        let mut connector = HttpConnector::new();
        // What client-go and reqwest do: requests are small and latency matters.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let pool = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let authorization = token
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .context("the bearer token")?;
        Ok(HttpClient {
            pool,
            base,
            namespace,
            pad: "x".repeat(value_size),
            authorization,
            compactor: None,
            kind: Kind::ConfigMap,
        })
    }

    /// This client, reading and writing `kind`.
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// Installs [`BENCH_CRD`] (unless present) and waits until its kind is served.
    ///
    /// # Errors
    ///
    /// When the server refuses the CRD or does not serve its kind within 30 s.
    pub async fn install_bench_crd(&self) -> Result<()> {
        let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        if let Err(error) = self
            .call(
                Method::POST,
                path.to_owned(),
                Some(Bytes::from_static(BENCH_CRD.as_bytes())),
            )
            .await
        {
            if !error.to_string().contains("AlreadyExists")
                && !error.to_string().contains("already exists")
            {
                return Err(error.context("creating the bench CRD"));
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.can_list().await {
            if std::time::Instant::now() > deadline {
                bail!("the bench CRD was not served within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Creates the client's namespace.
    ///
    /// # Errors
    ///
    /// When the server refuses.
    pub async fn create_namespace(&self) -> Result<()> {
        let body = wire::namespace_body(&self.namespace)?;
        self.call(Method::POST, "/api/v1/namespaces".to_owned(), Some(body))
            .await
            .with_context(|| format!("creating namespace {}", self.namespace))?;
        Ok(())
    }

    /// Creates a RoleBinding named `name` in the client's namespace binding `user` to the
    /// ClusterRole `role`.
    ///
    /// # Errors
    ///
    /// When the server refuses.
    pub async fn bind(&self, name: &str, role: &str, user: &str) -> Result<()> {
        let body = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": self.namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        });
        let path = format!(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{}/rolebindings",
            self.namespace
        );
        self.call(
            Method::POST,
            path,
            Some(Bytes::from(serde_json::to_vec(&body)?)),
        )
        .await
        .with_context(|| format!("creating RoleBinding {name}"))?;
        Ok(())
    }

    /// This client, compacting `store` (the in-process server's) when a workload compacts.
    pub fn with_compactor(mut self, store: Arc<dyn Interface>) -> Self {
        self.compactor = Some(store);
        self
    }

    /// Whether a GET of the ConfigMap collection succeeds.
    pub async fn can_list(&self) -> bool {
        self.call(Method::GET, format!("{}?limit=1", self.collection()), None)
            .await
            .is_ok()
    }

    fn collection(&self) -> String {
        self.kind.collection(&self.namespace)
    }

    fn item(&self, name: &str) -> String {
        format!("{}/{name}", self.collection())
    }

    fn body(&self, name: &str, stamp: u64, resource_version: Option<Revision>) -> Result<Bytes> {
        let body = ConfigMapBody::of_kind(
            self.kind.type_meta(),
            &self.namespace,
            name,
            stamp,
            &self.pad,
            resource_version,
        );
        Ok(Bytes::from(serde_json::to_vec(&body)?))
    }

    /// Sends a request and returns the response once its head arrived, whatever its status.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>> {
        let has_body = body.is_some();
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base))
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if has_body {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(hyper::header::AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .context("building the request")?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.pool.request(request)).await {
            Ok(response) => Ok(response?),
            Err(_) => bail!("no response within {}s", REQUEST_TIMEOUT.as_secs()),
        }
    }

    /// One request/response exchange: the whole body of a 2xx response, else an error naming
    /// the status and the server's Status message.
    async fn call(
        &self,
        method: Method,
        path_and_query: String,
        body: Option<Bytes>,
    ) -> Result<Bytes> {
        let response = self.send(method.clone(), &path_and_query, body).await?;
        let status = response.status();
        let collected = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "response body not complete within {}s",
                    REQUEST_TIMEOUT.as_secs()
                )
            })?
            .with_context(|| format!("reading the response to {method} {path_and_query}"))?
            .to_bytes();
        if !status.is_success() {
            bail!(
                "{method} {}: HTTP {} {}",
                path_and_query.split('?').next().unwrap_or_default(),
                status.as_u16(),
                wire::error_text(&collected)
            );
        }
        Ok(collected)
    }

    /// Sends a ConfigMap (create or update) and returns the stored object's revision.
    async fn write(&self, method: Method, path: String, body: Bytes) -> Result<Revision> {
        let response = self.call(method, path, Some(body)).await?;
        let object: Object =
            serde_json::from_slice(&response).context("decoding the written ConfigMap")?;
        object.metadata.revision()
    }
}

#[async_trait]
impl Client for HttpClient {
    type Version = Revision;

    fn revision(version: &Revision) -> Revision {
        *version
    }

    async fn create(&self, name: &str, stamp: u64) -> Result<Revision> {
        let body = self.body(name, stamp, None)?;
        self.write(Method::POST, self.collection(), body).await
    }

    async fn update(&self, name: &str, version: &Revision, stamp: u64) -> Result<Revision> {
        let body = self.body(name, stamp, Some(*version))?;
        self.write(Method::PUT, self.item(name), body).await
    }

    async fn delete(&self, name: &str, version: &Revision) -> Result<Option<Revision>> {
        let options = serde_json::json!({
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"resourceVersion": version.to_string()},
        });
        let body = Bytes::from(serde_json::to_vec(&options)?);
        // A ConfigMap's DELETE answers a Status (upstream's `ReturnDeletedObject` is off for
        // it), which carries no revision.
        self.call(Method::DELETE, self.item(name), Some(body))
            .await?;
        Ok(None)
    }

    async fn get(&self, name: &str) -> Result<()> {
        let response = self.call(Method::GET, self.item(name), None).await?;
        let object: Object = serde_json::from_slice(&response).context("decoding a ConfigMap")?;
        if object.metadata.name != name {
            bail!("asked for {name}, got {:?}", object.metadata.name);
        }
        Ok(())
    }

    async fn list(&self, page_size: u64, revision: Option<Revision>) -> Result<usize> {
        let mut seen = 0;
        let mut continue_token: Option<String> = None;
        loop {
            let mut query = Vec::new();
            if page_size > 0 {
                query.push(format!("limit={page_size}"));
            }
            match (&continue_token, revision) {
                // A continue token carries the snapshot revision itself.
                (Some(token), _) => query.push(format!("continue={}", wire::query_value(token))),
                (None, Some(revision)) => {
                    query.push(format!(
                        "resourceVersion={revision}&resourceVersionMatch=Exact"
                    ));
                }
                (None, None) => {}
            }
            let mut path = self.collection();
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            let response = self.call(Method::GET, path, None).await?;
            let list: List =
                serde_json::from_slice(&response).context("decoding a ConfigMapList")?;
            seen += list.items.len();
            match list.metadata.continue_token {
                Some(token) if !token.is_empty() => continue_token = Some(token),
                _ => return Ok(seen),
            }
        }
    }

    async fn watch(&self, after: Revision) -> Result<SeenStream> {
        let path = format!("{}?watch=true&resourceVersion={after}", self.collection());
        let response = self.send(Method::GET, &path, None).await?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status == StatusCode::GONE {
                return Err(anyhow::Error::new(Expired(wire::error_text(&body))));
            }
            bail!(
                "watch: HTTP {} {}",
                status.as_u16(),
                wire::error_text(&body)
            );
        }
        let chunks = BodyDataStream::new(response.into_body());
        let state = (chunks, Lines::default(), false);
        let stream =
            futures::stream::unfold(state, |(mut chunks, mut lines, mut done)| async move {
                loop {
                    if done {
                        return None;
                    }
                    if let Some(line) = lines.next_line() {
                        match wire::decode_event(&line) {
                            Ok(Some(seen)) => return Some((Ok(seen), (chunks, lines, done))),
                            Ok(None) => continue,
                            Err(error) => {
                                done = true;
                                return Some((Err(error), (chunks, lines, done)));
                            }
                        }
                    }
                    match chunks.next().await {
                        Some(Ok(chunk)) => lines.push(&chunk),
                        Some(Err(error)) => {
                            done = true;
                            let error =
                                anyhow::Error::from(error).context("reading the watch stream");
                            return Some((Err(error), (chunks, lines, done)));
                        }
                        None => {
                            done = true;
                            let pending = lines.pending();
                            let error = anyhow::anyhow!(
                                "the server ended the watch ({pending} bytes after the last event)"
                            );
                            return Some((Err(error), (chunks, lines, done)));
                        }
                    }
                }
            });
        Ok(stream.boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        let response = self
            .call(Method::GET, format!("{}?limit=1", self.collection()), None)
            .await?;
        let list: List = serde_json::from_slice(&response).context("decoding a ConfigMapList")?;
        list.metadata
            .resource_version
            .parse()
            .with_context(|| format!("list resourceVersion {:?}", list.metadata.resource_version))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let Some(store) = &self.compactor else {
            bail!("the HTTP API does not expose compaction (the churn workload needs it)")
        };
        match store.compact(revision).await {
            Ok(()) | Err(storage_api::Error::Compacted { .. }) => Ok(()),
            Err(error) => Err(error).context("compacting the server's store"),
        }
    }
}
