//! [`EtcdStore`]: the storage `Interface` on etcd v3.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, PutOptions,
    Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use storage_api::{
    BatchWrite, Capabilities, DeleteResponse, Error, Expect, GetResponse, Interface, KeyValue,
    Precondition, RangeRequest, RangeResponse, Result, Revision, Ttl, WatchRequest, WatchStream,
    validate_batch, validate_key, validate_prefix,
};
use tracing::Instrument;

use crate::errors::{EtcdFailure, classify, timed_out};
use crate::lease::LeaseManager;
use crate::options::EtcdOptions;

/// The most writes one batch may hold: etcd's default `--max-txn-ops`.
const MAX_BATCH_WRITES: usize = 128;
/// How long to wait between two attempts of a read whose member just failed.
const READ_RETRY_DELAY: Duration = Duration::from_millis(100);
/// How long to wait before sending again a request that reached no member.
const NOT_SENT_RETRY_DELAY: Duration = Duration::from_millis(20);
/// How long to wait for etcd to report its compaction revision (only on the error path).
const COMPACTION_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The storage [`Interface`] on an etcd v3 cluster.
///
/// Cheap to clone (all clones share one connection). Every key is stored under
/// [`EtcdOptions::prefix`]; revisions are etcd's, global to the cluster. Create it with
/// [`EtcdStore::connect`] (or [`EtcdStore::connect_url`]) inside the Tokio runtime that will use
/// it: the connection and the optional compactor live on that runtime.
#[derive(Clone)]
pub struct EtcdStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) prefix: Vec<u8>,
    pub(crate) options: EtcdOptions,
    leases: LeaseManager,
    compactor: Option<tokio::task::JoinHandle<()>>,
    /// Bumped by `request_progress`: every watch that wants progress asks its etcd stream for
    /// it when it sees the change (a `WatchProgressRequest` is per gRPC stream, and each of our
    /// watches has its own).
    pub(crate) progress_requests: storage_api::ProgressRequests,
    /// Whether the cluster answers progress requests only once its watches have sent every
    /// earlier event, from its version at connect time.
    progress_requests_supported: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(compactor) = self.compactor.take() {
            compactor.abort();
        }
    }
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.inner.options.endpoints)
            .field("prefix", &self.inner.options.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster described by `options`.
    ///
    /// The connection is established lazily and balanced over every endpoint, so this succeeds
    /// even while etcd is down: use [`Interface::ready`] to know whether etcd answers. Fails with
    /// [`Error::InvalidArgument`] for a bad prefix or endpoint. When
    /// [`EtcdOptions::compaction_interval`] is set, starts the periodic compactor on the current
    /// Tokio runtime; it stops when the last clone of the store is dropped.
    pub async fn connect(options: EtcdOptions) -> Result<Self> {
        if options.prefix.ends_with('/') {
            return Err(Error::InvalidArgument(format!(
                "etcd key prefix {:?} must not end with '/'",
                options.prefix
            )));
        }
        validate_prefix(&options.prefix)?;
        if options.endpoints.is_empty() {
            return Err(Error::InvalidArgument("no etcd endpoint given".to_owned()));
        }
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let client = match tokio::time::timeout(
            options.request_timeout,
            Client::connect(&options.endpoints, Some(connect)),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(etcd_client::Error::InvalidUri(e))) => {
                return Err(Error::InvalidArgument(format!(
                    "bad etcd endpoint in {:?}: {e}",
                    options.endpoints
                )));
            }
            Ok(Err(e)) => return Err(resolve_plain(classify("connect", e))),
            Err(_) => return Err(timed_out("connect", options.request_timeout)),
        };
        let progress_requests_supported = probe_progress_requests(&client, &options).await;
        let leases = LeaseManager::new(options.lease_reuse_duration, options.lease_max_objects);
        let compaction_interval = options.compaction_interval;
        let compact_key = options.compact_rev_key.clone();
        let compactor = compaction_interval.map(|interval| {
            let client = client.clone();
            let timeout = options.request_timeout;
            tokio::spawn(
                crate::compactor::run(client, compact_key, interval, timeout)
                    .instrument(tracing::info_span!("etcd_compactor")),
            )
        });
        Ok(EtcdStore {
            inner: Arc::new(Inner {
                client,
                prefix: options.prefix.clone().into_bytes(),
                options,
                leases,
                compactor,
                progress_requests: storage_api::ProgressRequests::default(),
                progress_requests_supported,
            }),
        })
    }

    /// Parses a storage URL with [`EtcdOptions::from_url`] and connects with
    /// [`EtcdStore::connect`]. This is what the `storage` facade calls for `etcd://` URLs.
    pub async fn connect_url(url: &str) -> Result<Self> {
        Self::connect(EtcdOptions::from_url(url)?).await
    }

    /// The options the store was connected with.
    pub fn options(&self) -> &EtcdOptions {
        &self.inner.options
    }

    /// The underlying etcd client (shares the store's connection), for tools that need raw
    /// access, such as the benchmark's baseline.
    pub fn client(&self) -> Client {
        self.inner.client.clone()
    }
}

impl Inner {
    pub(crate) fn full_key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(&self.prefix);
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// Converts an etcd key-value under our prefix.
    pub(crate) fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        let key = kv
            .key()
            .strip_prefix(self.prefix.as_slice())
            .ok_or_else(|| {
                Error::internal(format!(
                    "etcd returned key {:?} outside the prefix {:?}",
                    String::from_utf8_lossy(kv.key()),
                    self.options.prefix
                ))
            })?;
        let key = std::str::from_utf8(key)
            .map_err(|e| Error::internal_from("etcd returned a key that is not UTF-8", e))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: revision_from(kv.create_revision()),
            mod_revision: revision_from(kv.mod_revision()),
        })
    }

    /// Runs one request under the request timeout, sending it again (to whichever member the
    /// balancer picks) while it fails before reaching any member.
    async fn call<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, EtcdFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let timeout = self.options.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(remaining, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => match classify(what, e) {
                    EtcdFailure::NotSent(error)
                        if tokio::time::Instant::now() + NOT_SENT_RETRY_DELAY < deadline =>
                    {
                        tracing::debug!(%error, "etcd request not sent, retrying");
                        tokio::time::sleep(NOT_SENT_RETRY_DELAY).await;
                    }
                    failure => return Err(failure),
                },
                Err(_) => return Err(EtcdFailure::Other(timed_out(what, timeout))),
            }
        }
    }

    /// Runs an idempotent read, retrying on another member while the request timeout lasts
    /// when a member fails fast (killed, no leader).
    async fn read<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, EtcdFailure>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let timeout = self.options.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(remaining, attempt(self.client.kv_client())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => match classify(what, e) {
                    EtcdFailure::Other(Error::Unavailable { message, .. })
                    | EtcdFailure::NotSent(Error::Unavailable { message, .. })
                        if tokio::time::Instant::now() + READ_RETRY_DELAY < deadline =>
                    {
                        tracing::debug!(%message, "etcd read failed, retrying");
                        tokio::time::sleep(READ_RETRY_DELAY).await;
                    }
                    failure => return Err(failure),
                },
                Err(_) => return Err(EtcdFailure::Other(timed_out(what, timeout))),
            }
        }
    }

    /// Turns a failure into the contract's error, looking up the compaction or current revision
    /// for the revision errors.
    async fn resolve(&self, failure: EtcdFailure, requested: Revision) -> Error {
        match failure {
            EtcdFailure::Compacted => Error::Compacted {
                requested,
                // Boxed: the lookup reads, and a failed read resolves its error here again.
                compacted: Box::pin(self.compacted_revision())
                    .await
                    .unwrap_or(requested),
            },
            EtcdFailure::FutureRevision => Error::FutureRevision {
                requested,
                current: match self.current_revision().await {
                    Ok(current) => current,
                    Err(_) => requested.saturating_sub(1),
                },
            },
            other => resolve_plain(other),
        }
    }

    /// The latest revision, read linearizably.
    pub(crate) async fn current_revision(&self) -> Result<Revision> {
        let key = self.probe_key();
        let response = self
            .read("read of the current revision", |mut kv| {
                let key = key.clone();
                async move { kv.get(key, Some(GetOptions::new().with_count_only())).await }
            })
            .await
            .map_err(resolve_plain)?;
        header_revision(response.header())
    }

    /// A key under our prefix that no caller can write (keys never contain NUL).
    pub(crate) fn probe_key(&self) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(b"\0probe");
        key
    }

    /// etcd's compaction revision. A read at revision 1 succeeds exactly when nothing above
    /// revision 1 was compacted (then 0 is reported); otherwise a watch from revision 1 is
    /// cancelled with the compaction revision, which is how etcd reports it.
    pub(crate) async fn compacted_revision(&self) -> Result<Revision> {
        let key = self.probe_key();
        let first = self
            .read("compaction revision probe", |mut kv| {
                let key = key.clone();
                async move {
                    kv.get(
                        key,
                        Some(GetOptions::new().with_count_only().with_revision(1)),
                    )
                    .await
                }
            })
            .await;
        match first {
            Ok(_) => return Ok(0),
            // Not resolved through `resolve`, which would ask for the compaction revision again.
            Err(EtcdFailure::Compacted) => {}
            Err(other) => return Err(resolve_plain(other)),
        }
        let probe = async {
            let mut watch = self.client.watch_client();
            let mut stream = watch
                .watch(
                    self.probe_key(),
                    Some(WatchOptions::new().with_start_revision(1)),
                )
                .await?;
            while let Some(response) = stream.message().await? {
                if response.compact_revision() > 0 {
                    return Ok(Some(revision_from(response.compact_revision())));
                }
                if response.canceled() {
                    return Ok(None);
                }
            }
            Ok::<_, etcd_client::Error>(None)
        };
        match tokio::time::timeout(COMPACTION_PROBE_TIMEOUT, probe).await {
            Ok(Ok(Some(revision))) => Ok(revision),
            Ok(Ok(None)) | Err(_) => Err(Error::internal(
                "etcd did not report its compaction revision",
            )),
            Ok(Err(e)) => Err(resolve_plain(classify("compaction revision probe", e))),
        }
    }

    /// A lease for a write with `ttl`, reusing a recent one when it fits.
    async fn lease(&self, ttl: Duration) -> Result<i64> {
        if ttl.is_zero() {
            return Err(Error::InvalidArgument(
                "TTL must be greater than zero".to_owned(),
            ));
        }
        self.leases
            .lease_for(ttl, |seconds| async move {
                let response = self
                    .call("lease grant", || {
                        let mut lease = self.client.lease_client();
                        async move { lease.grant(seconds, None).await }
                    })
                    .await
                    .map_err(resolve_plain)?;
                tracing::debug!(id = response.id(), seconds, "granted etcd lease");
                Ok(response.id())
            })
            .await
    }

    /// Runs a write transaction whose `then` branch puts under a lease for `ttl` (if any),
    /// granting a new lease once when etcd says the reused one is gone.
    async fn write_txn(
        &self,
        what: &str,
        ttl: Ttl,
        build: impl Fn(Option<PutOptions>) -> Txn,
    ) -> Result<TxnResponse> {
        let mut retried = false;
        loop {
            let lease = match ttl {
                Some(ttl) => Some(self.lease(ttl).await?),
                None => None,
            };
            let txn = build(lease.map(|id| PutOptions::new().with_lease(id)));
            let attempt = || {
                let mut kv = self.client.kv_client();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            };
            match self.call(what, attempt).await {
                Ok(response) => return Ok(response),
                Err(EtcdFailure::LeaseNotFound) if !retried => {
                    if let Some(id) = lease {
                        self.leases.forget(id).await;
                    }
                    retried = true;
                }
                Err(failure) => return Err(self.resolve(failure, 0).await),
            }
        }
    }

    /// The value returned by the `else` get of a failed conditional write.
    fn else_value(&self, response: &TxnResponse) -> Result<Option<KeyValue>> {
        match response.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(get)) => get.kvs().first().map(|kv| self.kv(kv)).transpose(),
            _ => Err(Error::internal(
                "etcd transaction response lacks its else-branch read",
            )),
        }
    }
}

impl Inner {
    /// A read at `revision` (etcd's 0 is "latest"); out-of-range revisions are future ones.
    pub(crate) async fn read_range(
        &self,
        what: &str,
        key: Vec<u8>,
        options: GetOptions,
        revision: Option<Revision>,
    ) -> Result<(Revision, etcd_client::GetResponse)> {
        let inner = self;
        let (options, requested) = match revision {
            None => (options, None),
            Some(0) => {
                // Revision 0 is never real: readable (and empty) unless history was compacted.
                let probe = inner
                    .read(what, |mut kv| {
                        let key = key.clone();
                        async move {
                            kv.get(
                                key,
                                Some(GetOptions::new().with_count_only().with_revision(1)),
                            )
                            .await
                        }
                    })
                    .await;
                return match probe {
                    Ok(mut response) => {
                        response.take_kvs();
                        Ok((0, response))
                    }
                    Err(failure) => Err(inner.resolve(failure, 0).await),
                };
            }
            Some(revision) => match i64::try_from(revision) {
                Ok(r) => (options.with_revision(r), Some(revision)),
                Err(_) => {
                    return Err(Error::FutureRevision {
                        requested: revision,
                        current: inner.current_revision().await?,
                    });
                }
            },
        };
        let response = inner
            .read(what, |mut kv| {
                let key = key.clone();
                let options = options.clone();
                async move { kv.get(key, Some(options)).await }
            })
            .await;
        match response {
            Ok(response) => {
                let at = match requested {
                    Some(revision) => revision,
                    None => header_revision(response.header())?,
                };
                Ok((at, response))
            }
            Err(failure) => Err(inner.resolve(failure, requested.unwrap_or(0)).await),
        }
    }
}

/// Maps a failure that needs no further lookup.
pub(crate) fn resolve_plain(failure: EtcdFailure) -> Error {
    match failure {
        EtcdFailure::Other(error) | EtcdFailure::NotSent(error) => error,
        EtcdFailure::Compacted => Error::internal("etcd reported a compacted revision"),
        EtcdFailure::FutureRevision => Error::internal("etcd reported a future revision"),
        EtcdFailure::LeaseNotFound => Error::unavailable("etcd lease expired during the write"),
    }
}

pub(crate) fn revision_from(revision: i64) -> Revision {
    u64::try_from(revision).unwrap_or(0)
}

pub(crate) fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| revision_from(h.revision()))
        .ok_or_else(|| Error::internal("etcd response lacks its header"))
}

fn expected_of(precondition: Precondition) -> Revision {
    match precondition {
        Precondition::None => 0,
        Precondition::ModRevision(revision) => revision,
    }
}

/// The compares of a conditional write: the key exists and, if asked, has that mod_revision.
fn write_compares(key: &[u8], precondition: Precondition) -> Vec<Compare> {
    let mut compares = vec![Compare::create_revision(
        key.to_vec(),
        CompareOp::Greater,
        0,
    )];
    if let Precondition::ModRevision(expected) = precondition {
        // A revision etcd cannot hold can never match: -1 keeps the compare false.
        let expected = i64::try_from(expected).unwrap_or(-1);
        compares.push(Compare::mod_revision(
            key.to_vec(),
            CompareOp::Equal,
            expected,
        ));
    }
    compares
}

#[async_trait]
impl Interface for EtcdStore {
    #[tracing::instrument(level = "debug", skip(self, value), fields(len = value.len()))]
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        validate_key(key)?;
        let inner = &self.inner;
        let full = inner.full_key(key);
        let response = inner
            .write_txn("create", ttl, |put| {
                Txn::new()
                    .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(full.clone(), value.to_vec(), put)])
            })
            .await?;
        if !response.succeeded() {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        header_revision(response.header())
    }

    #[tracing::instrument(level = "debug", skip(self, value), fields(len = value.len()))]
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision> {
        validate_key(key)?;
        let inner = &self.inner;
        let full = inner.full_key(key);
        let response = inner
            .write_txn("update", ttl, |put| {
                Txn::new()
                    .when(write_compares(&full, precondition))
                    .and_then([TxnOp::put(full.clone(), value.to_vec(), put)])
                    .or_else([TxnOp::get(full.clone(), None)])
            })
            .await?;
        if response.succeeded() {
            return header_revision(response.header());
        }
        Err(conditional_failure(
            key,
            precondition,
            inner.else_value(&response)?,
        ))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse> {
        validate_key(key)?;
        let inner = &self.inner;
        let full = inner.full_key(key);
        let response = inner
            .write_txn("delete", None, |_| {
                Txn::new()
                    .when(write_compares(&full, precondition))
                    .and_then([TxnOp::delete(
                        full.clone(),
                        Some(DeleteOptions::new().with_prev_key()),
                    )])
                    .or_else([TxnOp::get(full.clone(), None)])
            })
            .await?;
        if !response.succeeded() {
            return Err(conditional_failure(
                key,
                precondition,
                inner.else_value(&response)?,
            ));
        }
        let prev = match response.op_responses().into_iter().next() {
            Some(TxnOpResponse::Delete(delete)) => delete.prev_kvs().first().map(|kv| inner.kv(kv)),
            _ => None,
        }
        .ok_or_else(|| Error::internal("etcd delete response lacks the deleted value"))??;
        Ok(DeleteResponse {
            revision: header_revision(response.header())?,
            prev,
        })
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        validate_key(key)?;
        let full = self.inner.full_key(key);
        let (at, response) = self
            .inner
            .read_range("get", full, GetOptions::new(), revision)
            .await?;
        Ok(GetResponse {
            revision: at,
            kv: response
                .kvs()
                .first()
                .map(|kv| self.inner.kv(kv))
                .transpose()?,
        })
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        request.validate()?;
        let inner = &self.inner;
        let full_prefix = inner.full_key(&request.prefix);
        let start = inner.full_key(request.first_key());
        let end = storage_api::prefix_range_end(&full_prefix).unwrap_or_else(|| vec![0]);
        // etcd rejects the empty key; "\0" is the smallest key there is.
        let start = if start.is_empty() { vec![0] } else { start };
        let mut options = GetOptions::new().with_range(end);
        if request.count_only {
            options = options.with_count_only();
        } else if let Some(limit) = request.limit.filter(|l| *l > 0) {
            options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let (at, response) = inner
            .read_range("range", start, options, request.revision)
            .await?;
        let kvs = response
            .kvs()
            .iter()
            .map(|kv| inner.kv(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(RangeResponse {
            revision: at,
            more: response.more() && !request.count_only,
            count: u64::try_from(response.count()).unwrap_or(0),
            kvs,
        })
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        request.validate()?;
        crate::watch::start(self.inner.clone(), request).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn compact(&self, revision: Revision) -> Result<()> {
        let inner = &self.inner;
        let Ok(etcd_revision) = i64::try_from(revision) else {
            return Err(Error::FutureRevision {
                requested: revision,
                current: inner.current_revision().await?,
            });
        };
        if revision == 0 {
            return Err(Error::Compacted {
                requested: 0,
                compacted: inner.compacted_revision().await.unwrap_or(0),
            });
        }
        let attempt = || {
            let mut kv = inner.client.kv_client();
            async move { kv.compact(etcd_revision, None).await }
        };
        match inner.call("compact", attempt).await {
            Ok(_) => {
                tracing::info!(revision, "compacted etcd history");
                Ok(())
            }
            Err(failure) => Err(inner.resolve(failure, revision).await),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.compacted_revision().await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn ready(&self) -> Result<()> {
        self.inner.current_revision().await.map(|_| ())
    }

    /// Refused (and the capability not reported) on etcd releases whose answer to a progress
    /// request can overtake events not yet sent on the stream: see [`probe_progress_requests`].
    async fn request_progress(&self) -> Result<()> {
        let inner = &self.inner;
        if !inner.progress_requests_supported {
            return Err(Error::InvalidArgument(
                "this etcd answers progress requests before it has sent every event (fixed in \
                 etcd 3.4.31 and 3.5.13); upgrade etcd for consistent reads from a watch cache"
                    .to_owned(),
            ));
        }
        inner.progress_requests.request();
        Ok(())
    }

    /// TTLs (etcd leases), progress events (etcd's progress notifications, at the server's
    /// `--experimental-watch-progress-notify-interval`), compaction (etcd's, global to the
    /// cluster), and progress on request (etcd's `RequestProgress`) when the cluster's release
    /// answers it correctly.
    /// One etcd transaction: a compare per write (`create_revision = 0` for an absent key,
    /// `mod_revision` otherwise), the writes on success, and on failure a read of every key to
    /// tell which expectation failed.
    #[tracing::instrument(level = "debug", skip_all, fields(writes = writes.len()))]
    async fn write_batch(&self, writes: Vec<BatchWrite>) -> Result<Revision> {
        validate_batch(&writes, MAX_BATCH_WRITES)?;
        let inner = &self.inner;
        let keys: Vec<Vec<u8>> = writes.iter().map(|w| inner.full_key(w.key())).collect();
        let compares: Vec<Compare> = writes
            .iter()
            .zip(&keys)
            .map(|(write, key)| match write.expect() {
                Expect::Absent => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                Expect::ModRevision(expected) => Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    i64::try_from(expected).unwrap_or(-1),
                ),
            })
            .collect();
        let ops: Vec<TxnOp> = writes
            .iter()
            .zip(&keys)
            .map(|(write, key)| match write {
                BatchWrite::Put { value, .. } => TxnOp::put(key.clone(), value.to_vec(), None),
                BatchWrite::Delete { .. } => TxnOp::delete(key.clone(), None),
            })
            .collect();
        let reads: Vec<TxnOp> = keys
            .iter()
            .map(|key| TxnOp::get(key.clone(), None))
            .collect();
        let txn = Txn::new().when(compares).and_then(ops).or_else(reads);
        let attempt = || {
            let mut kv = inner.client.kv_client();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        };
        let response = match inner.call("write_batch", attempt).await {
            Ok(response) => response,
            Err(failure) => return Err(inner.resolve(failure, 0).await),
        };
        if response.succeeded() {
            return header_revision(response.header());
        }
        for (write, read) in writes.iter().zip(response.op_responses()) {
            let live = match read {
                TxnOpResponse::Get(get) => get.kvs().first().map(|kv| inner.kv(kv)).transpose()?,
                _ => {
                    return Err(Error::internal(
                        "etcd batch response lacks its else-branch reads",
                    ));
                }
            };
            write.check(live.as_ref())?;
        }
        Err(Error::internal(
            "etcd refused a batch whose expectations all hold at the revision it read",
        ))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all().with_progress_requests(self.inner.progress_requests_supported)
    }
}

/// Asks the cluster its version: progress requests are used only where they are answered once
/// every earlier event has been sent (etcd 3.4.31, 3.5.13 and later; before that a cache
/// trusting the answer could serve stale reads as consistent). Upstream gates its consistent
/// reads from cache the same way (`pkg/storage/feature/feature_support_checker.go`). A cluster
/// that does not answer within the request timeout is taken not to support them.
async fn probe_progress_requests(client: &Client, options: &EtcdOptions) -> bool {
    let mut maintenance = client.maintenance_client();
    match tokio::time::timeout(options.request_timeout, maintenance.status()).await {
        Ok(Ok(status)) => {
            let supported = answers_progress_requests(status.version());
            tracing::debug!(
                version = status.version(),
                supported,
                "etcd progress requests"
            );
            supported
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot read the etcd version; progress requests unused");
            false
        }
        Err(_) => {
            tracing::warn!("etcd did not report its version in time; progress requests unused");
            false
        }
    }
}

/// Whether an etcd server of `version` (such as `3.5.13`) answers a progress request only once
/// its watches have sent every earlier event: 3.4.31 and later 3.4 releases, 3.5.13 and later,
/// and every release from 3.6 on.
fn answers_progress_requests(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|part| part.parse::<u64>().unwrap_or(0));
    let (major, minor, patch) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, minor) => minor >= 6,
        (major, _) => major > 3,
    }
}

/// The error of a conditional write whose compares failed, given the value read in the same
/// transaction.
fn conditional_failure(key: &str, precondition: Precondition, current: Option<KeyValue>) -> Error {
    match current {
        None => Error::NotFound {
            key: key.to_owned(),
        },
        Some(current) => Error::Conflict {
            key: key.to_owned(),
            expected: expected_of(precondition),
            current: Box::new(current),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::answers_progress_requests;

    #[test]
    fn progress_requests_are_trusted_from_the_fixed_releases_on() {
        for (version, expected) in [
            ("3.4.23", false),
            ("3.4.31", true),
            ("3.5.12", false),
            ("3.5.13", true),
            ("3.5.21", true),
            ("3.6.0", true),
            ("3.6.0-rc.1", true),
            ("3.3.27", false),
            ("4.0.0", true),
            ("garbage", false),
        ] {
            assert_eq!(answers_progress_requests(version), expected, "{version}");
        }
    }
}
