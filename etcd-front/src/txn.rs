//! The KV engine: etcd's Range, Put, DeleteRange and Txn over the storage contract.
//!
//! Every write request is a transaction: Put and DeleteRange are transactions of one operation.
//! A transaction is evaluated against a snapshot of the store at one revision plus its own
//! pending writes (a later operation of a transaction sees the earlier ones, as in etcd), then
//! committed:
//!
//! - no change: answered at the snapshot revision;
//! - one key changed: the contract's compare-and-swap (`create`, `update` or `delete` expecting
//!   the `mod_revision` read), so concurrent writers of other keys commit in the same group
//!   commit of the backend;
//! - several keys: [`storage_api::Interface::write_batch`], atomic at one revision, on stores
//!   with [`storage_api::Capabilities::atomic_batches`].
//!
//! Serializability: a transaction whose every compare and operation names the same single key
//! runs concurrently with others (its compare-and-swap fails if the key changed since the
//! snapshot, and it is evaluated again); any other writing transaction takes the front's write
//! gate exclusively, so nothing it read can change before it commits. Read-only transactions
//! need neither: they read at one revision.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use etcd_client::proto::{
    PbCompare, PbDeleteResponse, PbPutResponse, PbRangeResponse, PbResponseHeader, PbResponseOp,
    PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use etcd_client::proto::{PbDeleteRequest, PbPutRequest, PbRangeRequest};
use storage_api::{BatchWrite, Error, Expect, Interface, Precondition, RangeRequest, Revision};
use tokio::sync::RwLock;
use tonic::Status;

use crate::errors;
use crate::keys::{self, PENDING, Span};
use crate::leases::Leases;
use crate::record::{EtcdKv, Record, to_i64};

/// etcd's default `--max-txn-ops`.
pub(crate) const MAX_TXN_OPS: usize = 128;
/// Evaluations of one transaction before the front gives up on a key that keeps changing.
const MAX_ATTEMPTS: usize = 1000;

// Protobuf enum values (etcd's rpc.proto).
const SORT_NONE: i32 = 0;
const SORT_ASCEND: i32 = 1;
const SORT_DESCEND: i32 = 2;
const TARGET_KEY: i32 = 0;
const TARGET_VERSION: i32 = 1;
const TARGET_CREATE: i32 = 2;
const TARGET_MOD: i32 = 3;
const TARGET_VALUE: i32 = 4;
const COMPARE_EQUAL: i32 = 0;
const COMPARE_GREATER: i32 = 1;
const COMPARE_LESS: i32 = 2;
const COMPARE_NOT_EQUAL: i32 = 3;
const COMPARE_TARGET_VERSION: i32 = 0;
const COMPARE_TARGET_CREATE: i32 = 1;
const COMPARE_TARGET_MOD: i32 = 2;
const COMPARE_TARGET_VALUE: i32 = 3;
const COMPARE_TARGET_LEASE: i32 = 4;

/// Fills response headers: the cluster and member this front reports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Identity {
    /// The cluster ID in every header.
    pub(crate) cluster_id: u64,
    /// The member ID in every header (and the leader in `Status`).
    pub(crate) member_id: u64,
}

impl Identity {
    /// A response header at `revision`.
    pub(crate) fn header(&self, revision: Revision) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision: to_i64(revision),
            raft_term: 1,
        })
    }
}

/// The KV engine shared by the services.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) store: Arc<dyn Interface>,
    pub(crate) leases: Arc<Leases>,
    pub(crate) identity: Identity,
    /// Held shared by single-key writers, exclusively by every other writer (module doc).
    pub(crate) gate: RwLock<()>,
}

/// Which gate a transaction needs.
#[derive(Debug, PartialEq, Eq)]
enum Footprint {
    /// No write in either branch.
    ReadOnly,
    /// Every compare and operation names this one storage key.
    SingleKey(String),
    /// Anything else that writes.
    Wide,
}

/// How a transaction ended.
enum Evaluated {
    /// Committed (or nothing to commit) at this revision.
    Done(PbTxnResponse, Revision),
    /// A key read changed before the commit: evaluate again.
    Retry,
}

impl Engine {
    /// etcd's Range.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(crate) async fn range(&self, request: &PbRangeRequest) -> Result<PbRangeResponse, Status> {
        check_range(request)?;
        let mut view = View::new(&*self.store, None);
        view.range(request, &self.identity).await
    }

    /// etcd's Put, as a transaction of one operation.
    pub(crate) async fn put(&self, request: PbPutRequest) -> Result<PbPutResponse, Status> {
        match self.single(PbTxnOpRequest::RequestPut(request)).await? {
            PbTxnOpResponse::ResponsePut(put) => Ok(put),
            _ => Err(Status::internal("a put was answered as another operation")),
        }
    }

    /// etcd's DeleteRange, as a transaction of one operation.
    pub(crate) async fn delete_range(
        &self,
        request: PbDeleteRequest,
    ) -> Result<PbDeleteResponse, Status> {
        match self
            .single(PbTxnOpRequest::RequestDeleteRange(request))
            .await?
        {
            PbTxnOpResponse::ResponseDeleteRange(delete) => Ok(delete),
            _ => Err(Status::internal(
                "a delete was answered as another operation",
            )),
        }
    }

    /// Runs one operation as a transaction; its response carries the full header.
    async fn single(&self, request: PbTxnOpRequest) -> Result<PbTxnOpResponse, Status> {
        let txn = PbTxnRequest {
            compare: Vec::new(),
            success: vec![PbTxnRequestOp {
                request: Some(request),
            }],
            failure: Vec::new(),
        };
        self.txn(txn)
            .await?
            .responses
            .pop()
            .and_then(|op| op.response)
            .ok_or_else(|| Status::internal("a transaction of one operation answered nothing"))
    }

    /// etcd's Txn.
    #[tracing::instrument(level = "debug", skip_all, fields(compares = txn.compare.len()))]
    pub(crate) async fn txn(&self, txn: PbTxnRequest) -> Result<PbTxnResponse, Status> {
        check_txn(&txn, MAX_TXN_OPS)?;
        check_intervals(&txn.success)?;
        check_intervals(&txn.failure)?;
        let footprint = footprint(&txn);
        if let Some(create) = create_if_absent(&txn) {
            if let Some(response) = self.try_create(create).await? {
                return Ok(response);
            }
        }
        for _ in 0..MAX_ATTEMPTS {
            let evaluated = match &footprint {
                Footprint::ReadOnly => {
                    let revision = self.current_revision().await?;
                    self.evaluate(&txn, View::new(&*self.store, Some(revision)))
                        .await?
                }
                Footprint::SingleKey(key) => {
                    let _shared = self.gate.read().await;
                    let read = self
                        .store
                        .get(key, None)
                        .await
                        .map_err(errors::from_storage)?;
                    let mut view = View::new(&*self.store, Some(read.revision));
                    view.known.insert(key.clone(), read.kv);
                    self.evaluate(&txn, view).await?
                }
                Footprint::Wide => {
                    let _exclusive = self.gate.write().await;
                    let revision = self.current_revision().await?;
                    self.evaluate(&txn, View::new(&*self.store, Some(revision)))
                        .await?
                }
            };
            match evaluated {
                Evaluated::Done(mut response, revision) => {
                    response.header = self.identity.header(revision);
                    return Ok(response);
                }
                Evaluated::Retry => continue,
            }
        }
        Err(Status::unavailable(
            "etcdserver: transaction kept conflicting with concurrent writes; try again",
        ))
    }

    /// The fast path of a create-if-absent transaction (`create_if_absent`): the store's own
    /// create checks absence atomically, so nothing is read first. `None` when the key exists:
    /// the transaction is then evaluated in full, failure branch and all.
    async fn try_create(&self, put: &PbPutRequest) -> Result<Option<PbTxnResponse>, Status> {
        let _shared = self.gate.read().await;
        if put.lease != 0 && !self.leases.exists(put.lease) {
            return Err(errors::lease_not_found());
        }
        let key = keys::encode(&put.key);
        let record = Record {
            version: 1,
            lease: put.lease,
            value: bytes::Bytes::copy_from_slice(&put.value),
        };
        match self.store.create(&key, record.encode(), None).await {
            Ok(revision) => {
                if put.lease != 0 {
                    self.leases.committed([(key, put.lease, revision)]);
                }
                Ok(Some(PbTxnResponse {
                    header: self.identity.header(revision),
                    succeeded: true,
                    responses: vec![PbResponseOp {
                        response: Some(PbTxnOpResponse::ResponsePut(PbPutResponse {
                            header: self.identity.header(revision),
                            prev_kv: None,
                        })),
                    }],
                }))
            }
            Err(Error::AlreadyExists { .. }) => Ok(None),
            Err(error) => Err(errors::from_storage(error)),
        }
    }

    async fn current_revision(&self) -> Result<Revision, Status> {
        self.store
            .current_revision()
            .await
            .map_err(errors::from_storage)
    }

    /// Evaluates `txn` in `view` and commits what it wrote.
    async fn evaluate(&self, txn: &PbTxnRequest, mut view: View<'_>) -> Result<Evaluated, Status> {
        let succeeded = view.compares_hold(&txn.compare).await?;
        // etcd decides the branch of every nested transaction before applying anything, so
        // nested compares see the state before the transaction.
        let path = view.path(txn, succeeded).await?;
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let mut cursor = path.into_iter();
        let responses = self.apply_ops(&mut view, ops, &mut cursor).await?;
        let commit = match self.commit(&view).await? {
            Some(commit) => commit,
            None => return Ok(Evaluated::Retry),
        };
        let mut response = PbTxnResponse {
            header: None,
            succeeded,
            responses,
        };
        resolve_pending(&mut response, commit, &self.identity);
        Ok(Evaluated::Done(response, commit))
    }

    /// Applies `ops` to the view; `path` holds the branch decisions of nested transactions in
    /// the order they are met.
    async fn apply_ops(
        &self,
        view: &mut View<'_>,
        ops: &[PbTxnRequestOp],
        path: &mut std::vec::IntoIter<bool>,
    ) -> Result<Vec<PbResponseOp>, Status> {
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(PbTxnOpRequest::RequestRange(range)) => {
                    PbTxnOpResponse::ResponseRange(view.range(range, &self.identity).await?)
                }
                Some(PbTxnOpRequest::RequestPut(put)) => {
                    PbTxnOpResponse::ResponsePut(view.put(put, &self.leases).await?)
                }
                Some(PbTxnOpRequest::RequestDeleteRange(delete)) => {
                    PbTxnOpResponse::ResponseDeleteRange(view.delete(delete).await?)
                }
                Some(PbTxnOpRequest::RequestTxn(nested)) => {
                    let succeeded = path.next().unwrap_or(false);
                    let branch = if succeeded {
                        &nested.success
                    } else {
                        &nested.failure
                    };
                    let responses = Box::pin(self.apply_ops(view, branch, path)).await?;
                    PbTxnOpResponse::ResponseTxn(PbTxnResponse {
                        header: None,
                        succeeded,
                        responses,
                    })
                }
                None => return Err(Status::invalid_argument("empty request in txn")),
            };
            responses.push(PbResponseOp {
                response: Some(response),
            });
        }
        Ok(responses)
    }

    /// Commits `writes` (at least one) at one revision: one key through the single-key
    /// methods, several through an atomic batch, refused with a clear error by a store
    /// without atomic batches. The storage error is returned as is, so callers can tell a
    /// changed key from a failure.
    pub(crate) async fn write(
        &self,
        mut writes: Vec<BatchWrite>,
    ) -> Result<storage_api::Result<Revision>, Status> {
        match writes.len() {
            1 => Ok(commit_one(&*self.store, writes.remove(0)).await),
            n => {
                if !self.store.capabilities().atomic_batches {
                    return Err(Status::unimplemented(format!(
                        "this etcd front's storage backend cannot write {n} keys atomically at \
                         one revision (it lacks atomic batches); transactions, ranged deletes \
                         and lease revocations may change one key each"
                    )));
                }
                Ok(self.store.write_batch(writes).await)
            }
        }
    }

    /// etcd's LeaseRevoke (and lease expiry): the lease's keys and its record deleted at one
    /// revision, which is returned.
    pub(crate) async fn revoke(&self, id: i64) -> Result<Revision, Status> {
        let _exclusive = self.gate.write().await;
        let Some(attached) = self.leases.keys_of(id) else {
            return Err(errors::lease_not_found());
        };
        let mut writes = Vec::new();
        for key in attached
            .into_iter()
            .chain(std::iter::once(keys::lease_key(id)))
        {
            let read = self
                .store
                .get(&key, None)
                .await
                .map_err(errors::from_storage)?;
            if let Some(kv) = read.kv {
                writes.push(BatchWrite::Delete {
                    key,
                    mod_revision: kv.mod_revision,
                });
            }
        }
        let revision = if writes.is_empty() {
            self.current_revision().await?
        } else {
            self.write(writes).await?.map_err(errors::from_storage)?
        };
        self.leases.remove(id);
        Ok(revision)
    }

    /// Commits the view's writes; `None` when a key changed since it was read.
    async fn commit(&self, view: &View<'_>) -> Result<Option<Revision>, Status> {
        let mut writes = Vec::new();
        let mut lease_changes = Vec::new();
        for key in &view.written {
            let Some(pending) = view.overlay.get(key) else {
                continue;
            };
            let base = view.base.get(key).copied().flatten();
            match pending {
                Some(kv) => {
                    writes.push(BatchWrite::Put {
                        key: key.clone(),
                        value: kv.record.encode(),
                        expect: base.map_or(Expect::Absent, Expect::ModRevision),
                    });
                    lease_changes.push((key.clone(), kv.record.lease));
                }
                None => {
                    let Some(mod_revision) = base else { continue };
                    writes.push(BatchWrite::Delete {
                        key: key.clone(),
                        mod_revision,
                    });
                    lease_changes.push((key.clone(), 0));
                }
            }
        }
        if writes.is_empty() {
            return view
                .revision
                .map(Some)
                .ok_or_else(|| Status::internal("transaction view without a revision"));
        }
        let revision = self.write(writes).await?;
        match revision {
            Ok(revision) => {
                self.leases.committed(
                    lease_changes
                        .into_iter()
                        .map(|(key, lease)| (key, lease, revision)),
                );
                Ok(Some(revision))
            }
            Err(Error::AlreadyExists { .. } | Error::NotFound { .. } | Error::Conflict { .. }) => {
                Ok(None)
            }
            Err(error) => Err(errors::from_storage(error)),
        }
    }
}

/// One write through the single-key methods of the contract.
async fn commit_one(store: &dyn Interface, write: BatchWrite) -> storage_api::Result<Revision> {
    match write {
        BatchWrite::Put {
            key,
            value,
            expect: Expect::Absent,
        } => store.create(&key, value, None).await,
        BatchWrite::Put {
            key,
            value,
            expect: Expect::ModRevision(revision),
        } => {
            store
                .update(&key, value, Precondition::ModRevision(revision), None)
                .await
        }
        BatchWrite::Delete { key, mod_revision } => store
            .delete(&key, Precondition::ModRevision(mod_revision))
            .await
            .map(|deleted| deleted.revision),
    }
}

/// The snapshot a transaction reads: the store at `revision`, plus the transaction's writes.
/// A view without a revision reads the latest state (a Range outside a transaction).
struct View<'a> {
    store: &'a dyn Interface,
    revision: Option<Revision>,
    /// Keys already read at `revision` (`None`: absent).
    known: HashMap<String, Option<storage_api::KeyValue>>,
    /// Pending writes by storage key: `Some` a put, `None` a delete.
    overlay: BTreeMap<String, Option<EtcdKv>>,
    /// The written keys in the order of the operations that wrote them: a store emits the
    /// events of one revision in that order, as etcd does.
    written: Vec<String>,
    /// The `mod_revision` each read key had at `revision` (`None`: absent).
    base: HashMap<String, Option<Revision>>,
}

impl<'a> View<'a> {
    fn new(store: &'a dyn Interface, revision: Option<Revision>) -> Self {
        View {
            store,
            revision,
            known: HashMap::new(),
            overlay: BTreeMap::new(),
            written: Vec::new(),
            base: HashMap::new(),
        }
    }

    /// One key as the transaction sees it.
    async fn get(&mut self, key: &str) -> Result<Option<EtcdKv>, Status> {
        if let Some(pending) = self.overlay.get(key) {
            return Ok(pending.clone());
        }
        let stored = match self.known.get(key) {
            Some(known) => known.clone(),
            None => {
                let read = self
                    .store
                    .get(key, self.revision)
                    .await
                    .map_err(errors::from_storage)?;
                self.known.insert(key.to_owned(), read.kv.clone());
                read.kv
            }
        };
        self.base
            .entry(key.to_owned())
            .or_insert(stored.as_ref().map(|kv| kv.mod_revision));
        stored
            .as_ref()
            .map(EtcdKv::from_stored)
            .transpose()
            .map_err(errors::from_storage)
    }

    /// Every key in `span` at `at` (latest when `None`) from the store, with the total count
    /// and the revision read; at most `limit` keys (0: all) unless `count_only`.
    async fn read_span(
        &self,
        span: &Span,
        at: Option<Revision>,
        limit: u64,
        count_only: bool,
    ) -> Result<(Vec<EtcdKv>, u64, Revision), Status> {
        let storage = |e| errors::from_storage(e);
        let decode = |kvs: Vec<storage_api::KeyValue>| -> Result<Vec<EtcdKv>, Status> {
            kvs.iter()
                .map(EtcdKv::from_stored)
                .collect::<storage_api::Result<_>>()
                .map_err(storage)
        };
        let pinned = |request: RangeRequest| match at {
            Some(revision) => request.at(revision),
            None => request,
        };
        match span {
            Span::Empty => {
                let revision = match at {
                    Some(revision) => revision,
                    None => self.store.current_revision().await.map_err(storage)?,
                };
                Ok((Vec::new(), 0, revision))
            }
            Span::Single(key) => {
                let read = self.store.get(key, at).await.map_err(storage)?;
                let count = u64::from(read.kv.is_some());
                let kvs = if count_only {
                    Vec::new()
                } else {
                    decode(read.kv.into_iter().collect())?
                };
                Ok((kvs, count, read.revision))
            }
            Span::Prefix { prefix, start } => {
                let mut request =
                    pinned(RangeRequest::prefix(prefix.clone()).start(start.clone())).limit(limit);
                request.count_only = count_only;
                let read = self.store.range(request).await.map_err(storage)?;
                Ok((decode(read.kvs)?, read.count, read.revision))
            }
            Span::Bounded { prefix, start, end } => {
                let count_from = |from: &String| {
                    RangeRequest::prefix(prefix.clone())
                        .start(from.clone())
                        .count_only()
                };
                let from_start = self
                    .store
                    .range(pinned(count_from(start)))
                    .await
                    .map_err(storage)?;
                // The later reads at the revision the first one was served at.
                let revision = from_start.revision;
                let from_end = self
                    .store
                    .range(count_from(end).at(revision))
                    .await
                    .map_err(storage)?;
                let count = from_start.count.saturating_sub(from_end.count);
                if count_only || count == 0 {
                    return Ok((Vec::new(), count, revision));
                }
                let take = if limit == 0 { count } else { limit.min(count) };
                let request = RangeRequest::prefix(prefix.clone())
                    .start(start.clone())
                    .at(revision)
                    .limit(take);
                let read = self.store.range(request).await.map_err(storage)?;
                Ok((decode(read.kvs)?, count, revision))
            }
        }
    }

    /// The keys of `span` as the transaction sees them (store plus pending writes), all of
    /// them, with their count.
    async fn merged_span(&mut self, span: &Span) -> Result<Vec<EtcdKv>, Status> {
        let (stored, _, _) = self.read_span(span, self.revision, 0, false).await?;
        for kv in &stored {
            self.base
                .entry(kv.stored_key.clone())
                .or_insert(Some(kv.mod_revision));
        }
        let mut merged: BTreeMap<String, EtcdKv> = stored
            .into_iter()
            .map(|kv| (kv.stored_key.clone(), kv))
            .collect();
        for (key, pending) in &self.overlay {
            if !span.contains(key) {
                continue;
            }
            match pending {
                Some(kv) => {
                    merged.insert(key.clone(), kv.clone());
                }
                None => {
                    merged.remove(key);
                }
            }
        }
        Ok(merged.into_values().collect())
    }

    /// Records a pending write of `key`: `Some` a put, `None` a delete.
    fn write(&mut self, key: String, pending: Option<EtcdKv>) {
        if !self.overlay.contains_key(&key) {
            self.written.push(key.clone());
        }
        self.overlay.insert(key, pending);
    }

    fn overlay_touches(&self, span: &Span) -> bool {
        self.overlay.keys().any(|key| span.contains(key))
    }

    /// etcd's Range inside this view (or at the request's own revision, which ignores it).
    async fn range(
        &mut self,
        request: &PbRangeRequest,
        identity: &Identity,
    ) -> Result<PbRangeResponse, Status> {
        let span = Span::of(&request.key, &request.range_end);
        let own_revision = (request.revision > 0).then_some(request.revision as Revision);
        let filtered = request.sort_order != SORT_NONE
            || request.sort_target != TARGET_KEY
            || request.min_mod_revision != 0
            || request.max_mod_revision != 0
            || request.min_create_revision != 0
            || request.max_create_revision != 0;
        let limit = u64::try_from(request.limit).unwrap_or(0);
        let (mut kvs, count, read_at) = if own_revision.is_none() && self.overlay_touches(&span) {
            let merged = self.merged_span(&span).await?;
            let count = merged.len() as u64;
            let kvs = if request.count_only {
                Vec::new()
            } else {
                merged
            };
            (kvs, count, self.revision.unwrap_or_default())
        } else {
            let fetch = if filtered { 0 } else { limit };
            self.read_span(
                &span,
                own_revision.or(self.revision),
                fetch,
                request.count_only,
            )
            .await?
        };
        // etcd's header carries the store's revision, also for a read at a past revision.
        let header_revision = match (own_revision, self.revision) {
            (None, _) => read_at,
            (Some(_), Some(snapshot)) => snapshot,
            (Some(_), None) => self
                .store
                .current_revision()
                .await
                .map_err(errors::from_storage)?,
        };
        kvs.retain(|kv| passes_filters(request, kv));
        sort(request, &mut kvs);
        let more = limit > 0 && kvs.len() as u64 > limit
            || (!filtered && limit > 0 && !request.count_only && count > limit);
        if limit > 0 {
            kvs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok(PbRangeResponse {
            header: identity.header(header_revision),
            kvs: kvs
                .iter()
                .map(|kv| kv.to_pb(PENDING, request.keys_only))
                .collect(),
            more,
            count: i64::try_from(count).unwrap_or(i64::MAX),
        })
    }

    /// etcd's Put inside this view.
    async fn put(
        &mut self,
        request: &PbPutRequest,
        leases: &Leases,
    ) -> Result<PbPutResponse, Status> {
        let key = keys::encode(&request.key);
        let prev = self.get(&key).await?;
        if (request.ignore_value || request.ignore_lease) && prev.is_none() {
            return Err(errors::key_not_found());
        }
        let lease = if request.ignore_lease {
            prev.as_ref().map_or(0, |p| p.record.lease)
        } else {
            request.lease
        };
        if lease != 0 && !leases.exists(lease) {
            return Err(errors::lease_not_found());
        }
        let value = match (&prev, request.ignore_value) {
            (Some(prev), true) => prev.record.value.clone(),
            _ => bytes::Bytes::copy_from_slice(&request.value),
        };
        let written = EtcdKv {
            key: request.key.clone(),
            stored_key: key.clone(),
            record: Record {
                version: prev.as_ref().map_or(1, |p| p.record.version + 1),
                lease,
                value,
            },
            create_revision: prev.as_ref().map_or(PENDING, |p| p.create_revision),
            mod_revision: PENDING,
        };
        self.write(key, Some(written));
        Ok(PbPutResponse {
            header: None,
            prev_kv: if request.prev_kv {
                prev.map(|p| p.to_pb(PENDING, false))
            } else {
                None
            },
        })
    }

    /// etcd's DeleteRange inside this view.
    async fn delete(&mut self, request: &PbDeleteRequest) -> Result<PbDeleteResponse, Status> {
        let span = Span::of(&request.key, &request.range_end);
        let doomed = self.merged_span(&span).await?;
        for kv in &doomed {
            self.write(kv.stored_key.clone(), None);
        }
        Ok(PbDeleteResponse {
            header: None,
            deleted: doomed.len() as i64,
            prev_kvs: if request.prev_kv {
                doomed.iter().map(|kv| kv.to_pb(PENDING, false)).collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Whether every compare holds at the snapshot (before any write of the transaction).
    async fn compares_hold(&mut self, compares: &[PbCompare]) -> Result<bool, Status> {
        for compare in compares {
            let kvs = match Span::of(&compare.key, &compare.range_end) {
                Span::Single(key) => self.get(&key).await?.into_iter().collect(),
                span => self.read_span(&span, self.revision, 0, false).await?.0,
            };
            if !compare_holds(compare, &kvs) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The branch decisions of the nested transactions on the path `succeeded` takes, depth
    /// first in operation order.
    async fn path(&mut self, txn: &PbTxnRequest, succeeded: bool) -> Result<Vec<bool>, Status> {
        let mut path = Vec::new();
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        for op in ops {
            if let Some(PbTxnOpRequest::RequestTxn(nested)) = &op.request {
                let nested_succeeded = self.compares_hold(&nested.compare).await?;
                path.push(nested_succeeded);
                path.extend(Box::pin(self.path(nested, nested_succeeded)).await?);
            }
        }
        Ok(path)
    }
}

/// etcd's `compareKV` over every key of the compare's range; a missing key compares as a key
/// with zero version and revisions, except for a value compare, which fails.
fn compare_holds(compare: &PbCompare, kvs: &[EtcdKv]) -> bool {
    if kvs.is_empty() {
        if compare.target == COMPARE_TARGET_VALUE {
            return false;
        }
        return compare_one(compare, None);
    }
    kvs.iter().all(|kv| compare_one(compare, Some(kv)))
}

fn compare_one(compare: &PbCompare, kv: Option<&EtcdKv>) -> bool {
    // As etcd's `compareKV`: the target picks the field; a union holding another field
    // compares with zero (or the empty value).
    let number = |wanted: fn(&PbTargetUnion) -> Option<i64>| {
        compare.target_union.as_ref().and_then(wanted).unwrap_or(0)
    };
    let ordering = match compare.target {
        COMPARE_TARGET_VERSION => kv
            .map_or(0, |kv| kv.record.version)
            .cmp(&number(|u| match u {
                PbTargetUnion::Version(v) => Some(*v),
                _ => None,
            })),
        COMPARE_TARGET_CREATE => kv
            .map_or(0, |kv| to_i64(kv.create_revision))
            .cmp(&number(|u| match u {
                PbTargetUnion::CreateRevision(v) => Some(*v),
                _ => None,
            })),
        COMPARE_TARGET_MOD => {
            kv.map_or(0, |kv| to_i64(kv.mod_revision))
                .cmp(&number(|u| match u {
                    PbTargetUnion::ModRevision(v) => Some(*v),
                    _ => None,
                }))
        }
        COMPARE_TARGET_VALUE => {
            let wanted = match &compare.target_union {
                Some(PbTargetUnion::Value(v)) => v.as_slice(),
                _ => &[],
            };
            kv.map_or(&[][..], |kv| kv.record.value.as_ref())
                .cmp(wanted)
        }
        COMPARE_TARGET_LEASE => kv.map_or(0, |kv| kv.record.lease).cmp(&number(|u| match u {
            PbTargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        _ => return false,
    };
    match compare.result {
        COMPARE_EQUAL => ordering.is_eq(),
        COMPARE_GREATER => ordering.is_gt(),
        COMPARE_LESS => ordering.is_lt(),
        COMPARE_NOT_EQUAL => ordering.is_ne(),
        _ => false,
    }
}

fn passes_filters(request: &PbRangeRequest, kv: &EtcdKv) -> bool {
    let modr = to_i64(kv.mod_revision);
    let create = to_i64(kv.create_revision);
    (request.max_mod_revision == 0 || modr <= request.max_mod_revision)
        && (request.min_mod_revision == 0 || modr >= request.min_mod_revision)
        && (request.max_create_revision == 0 || create <= request.max_create_revision)
        && (request.min_create_revision == 0 || create >= request.min_create_revision)
}

/// etcd's sort: no order with a target other than the key sorts ascending; key order
/// ascending is the order read.
fn sort(request: &PbRangeRequest, kvs: &mut [EtcdKv]) {
    let order = match (request.sort_order, request.sort_target) {
        (SORT_NONE, TARGET_KEY) | (SORT_ASCEND, TARGET_KEY) => return,
        (SORT_NONE, _) => SORT_ASCEND,
        (order, _) => order,
    };
    match request.sort_target {
        TARGET_KEY => kvs.sort_by(|a, b| a.key.cmp(&b.key)),
        TARGET_VERSION => kvs.sort_by_key(|kv| kv.record.version),
        TARGET_CREATE => kvs.sort_by_key(|kv| kv.create_revision),
        TARGET_MOD => kvs.sort_by_key(|kv| kv.mod_revision),
        TARGET_VALUE => kvs.sort_by(|a, b| a.record.value.cmp(&b.record.value)),
        _ => {}
    }
    if order == SORT_DESCEND {
        kvs.reverse();
    }
}

/// Replaces pending revisions by the commit revision and fills nested headers.
fn resolve_pending(response: &mut PbTxnResponse, revision: Revision, identity: &Identity) {
    let fix = |kv: &mut etcd_client::proto::PbKeyValue| {
        if kv.mod_revision == to_i64(PENDING) {
            kv.mod_revision = to_i64(revision);
        }
        if kv.create_revision == to_i64(PENDING) {
            kv.create_revision = to_i64(revision);
        }
    };
    for op in &mut response.responses {
        match &mut op.response {
            Some(PbTxnOpResponse::ResponseRange(range)) => {
                range.kvs.iter_mut().for_each(fix);
                if range.header.is_none() {
                    range.header = identity.header(revision);
                }
            }
            Some(PbTxnOpResponse::ResponsePut(put)) => {
                put.prev_kv.iter_mut().for_each(fix);
                put.header = identity.header(revision);
            }
            Some(PbTxnOpResponse::ResponseDeleteRange(delete)) => {
                delete.prev_kvs.iter_mut().for_each(fix);
                delete.header = identity.header(revision);
            }
            Some(PbTxnOpResponse::ResponseTxn(nested)) => {
                resolve_pending(nested, revision, identity);
                nested.header = identity.header(revision);
            }
            None => {}
        }
    }
}

/// etcd's `checkRangeRequest`.
fn check_range(request: &PbRangeRequest) -> Result<(), Status> {
    if request.key.is_empty() {
        return Err(errors::empty_key());
    }
    if !matches!(request.sort_order, SORT_NONE | SORT_ASCEND | SORT_DESCEND)
        || !(TARGET_KEY..=TARGET_VALUE).contains(&request.sort_target)
    {
        return Err(Status::invalid_argument("etcdserver: invalid sort option"));
    }
    Ok(())
}

/// etcd's `checkTxnRequest`: sizes, empty keys and the Put flags, recursively.
fn check_txn(txn: &PbTxnRequest, max_ops: usize) -> Result<(), Status> {
    let ops = txn
        .compare
        .len()
        .max(txn.success.len())
        .max(txn.failure.len());
    if ops > max_ops {
        return Err(errors::too_many_ops());
    }
    if txn.compare.iter().any(|c| c.key.is_empty()) {
        return Err(errors::empty_key());
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(range)) => check_range(range)?,
            Some(PbTxnOpRequest::RequestPut(put)) => check_put(put)?,
            Some(PbTxnOpRequest::RequestDeleteRange(delete)) => {
                if delete.key.is_empty() {
                    return Err(errors::empty_key());
                }
            }
            Some(PbTxnOpRequest::RequestTxn(nested)) => check_txn(nested, max_ops)?,
            None => return Err(Status::invalid_argument("etcdserver: empty request in txn")),
        }
    }
    Ok(())
}

/// etcd's `checkPutRequest`.
pub(crate) fn check_put(put: &PbPutRequest) -> Result<(), Status> {
    if put.key.is_empty() {
        return Err(errors::empty_key());
    }
    if put.ignore_value && !put.value.is_empty() {
        return Err(errors::value_provided());
    }
    if put.ignore_lease && put.lease != 0 {
        return Err(errors::lease_provided());
    }
    Ok(())
}

/// etcd's `checkIntervals`: within one branch no key is put twice, and no put falls in a
/// deleted range. Nested transactions contribute the puts and deletes of both their branches.
fn check_intervals(ops: &[PbTxnRequestOp]) -> Result<(), Status> {
    let (deletes, puts) = intervals(ops)?;
    for key in &puts {
        if deletes.iter().any(|span| span.contains(key)) {
            return Err(errors::duplicate_key());
        }
    }
    Ok(())
}

fn intervals(ops: &[PbTxnRequestOp]) -> Result<(Vec<Span>, HashSet<String>), Status> {
    let mut deletes = Vec::new();
    let mut puts = HashSet::new();
    for op in ops {
        match &op.request {
            Some(PbTxnOpRequest::RequestPut(put)) => {
                if !puts.insert(keys::encode(&put.key)) {
                    return Err(errors::duplicate_key());
                }
            }
            Some(PbTxnOpRequest::RequestDeleteRange(delete)) => {
                deletes.push(Span::of(&delete.key, &delete.range_end));
            }
            Some(PbTxnOpRequest::RequestTxn(nested)) => {
                check_intervals(&nested.success)?;
                check_intervals(&nested.failure)?;
                let (success_deletes, success_puts) = intervals(&nested.success)?;
                let (failure_deletes, failure_puts) = intervals(&nested.failure)?;
                for key in success_puts.union(&failure_puts) {
                    if !puts.insert(key.clone()) {
                        return Err(errors::duplicate_key());
                    }
                }
                deletes.extend(success_deletes);
                deletes.extend(failure_deletes);
            }
            Some(PbTxnOpRequest::RequestRange(_)) | None => {}
        }
    }
    Ok((deletes, puts))
}

/// The put of a transaction that creates a key only if it is absent, as kube-apiserver's
/// `Create` and the etcd backend's `create` send it: one compare of the key's create or mod
/// revision or version with 0, a success branch of one plain put of that key (no previous
/// value asked, no `ignore_*`).
fn create_if_absent(txn: &PbTxnRequest) -> Option<&PbPutRequest> {
    let [compare] = txn.compare.as_slice() else {
        return None;
    };
    let [op] = txn.success.as_slice() else {
        return None;
    };
    let Some(PbTxnOpRequest::RequestPut(put)) = &op.request else {
        return None;
    };
    let zero = matches!(
        compare.target_union,
        Some(
            PbTargetUnion::CreateRevision(0)
                | PbTargetUnion::ModRevision(0)
                | PbTargetUnion::Version(0)
        )
    );
    let plain = !put.prev_kv && !put.ignore_value && !put.ignore_lease;
    (zero
        && compare.result == COMPARE_EQUAL
        && compare.range_end.is_empty()
        && compare.key == put.key
        && plain)
        .then_some(put)
}

/// Which gate `txn` needs (module doc).
fn footprint(txn: &PbTxnRequest) -> Footprint {
    let mut spans = Vec::new();
    let mut writes = false;
    for compare in &txn.compare {
        spans.push(Span::of(&compare.key, &compare.range_end));
    }
    collect(&txn.success, &mut spans, &mut writes);
    collect(&txn.failure, &mut spans, &mut writes);
    if !writes {
        return Footprint::ReadOnly;
    }
    let mut keys = spans.iter().map(Span::single);
    match keys.next() {
        Some(Some(first)) if keys.all(|key| key == Some(first)) => {
            Footprint::SingleKey(first.to_owned())
        }
        _ => Footprint::Wide,
    }
}

fn collect(ops: &[PbTxnRequestOp], spans: &mut Vec<Span>, writes: &mut bool) {
    for op in ops {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(range)) => {
                // A read at its own revision still names the key; treat it like any read.
                spans.push(Span::of(&range.key, &range.range_end));
            }
            Some(PbTxnOpRequest::RequestPut(put)) => {
                *writes = true;
                spans.push(Span::Single(keys::encode(&put.key)));
            }
            Some(PbTxnOpRequest::RequestDeleteRange(delete)) => {
                *writes = true;
                spans.push(Span::of(&delete.key, &delete.range_end));
            }
            Some(PbTxnOpRequest::RequestTxn(nested)) => {
                for compare in &nested.compare {
                    spans.push(Span::of(&compare.key, &compare.range_end));
                }
                collect(&nested.success, spans, writes);
                collect(&nested.failure, spans, writes);
            }
            None => {}
        }
    }
}
