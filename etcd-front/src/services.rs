//! The gRPC services: thin adapters from etcd's protobuf services to the engine, the watch
//! streams and the lease table.

use std::pin::Pin;
use std::sync::Arc;

use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbClusterServer, PbClusterService, PbCompactionRequest,
    PbCompactionResponse, PbDefragmentRequest, PbDefragmentResponse, PbDeleteRequest,
    PbDeleteResponse, PbDowngradeRequest, PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse,
    PbHashRequest, PbHashResponse, PbKvServer, PbKvService, PbLeaseGrantRequest,
    PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse, PbLeaseLeasesRequest,
    PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse, PbLeaseServer,
    PbLeaseService, PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
    PbMaintenanceServer, PbMaintenanceService, PbMember, PbMemberAddRequest, PbMemberAddResponse,
    PbMemberListRequest, PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse,
    PbMemberRemoveRequest, PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
    PbMoveLeaderRequest, PbMoveLeaderResponse, PbPutRequest, PbPutResponse, PbRangeRequest,
    PbRangeResponse, PbRangeStreamResponse, PbSnapshotRequest, PbSnapshotResponse, PbStatusRequest,
    PbStatusResponse, PbTxnRequest, PbTxnResponse, PbWatchRequest, PbWatchServer, PbWatchService,
};
use futures::{Stream, StreamExt};
use storage_api::Error;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status, Streaming};

use crate::errors;
use crate::keys;
use crate::leases::{self, MAX_LEASE_TTL};
use crate::snapshot;
use crate::txn::check_put;
use crate::{EtcdFront, REPORTED_VERSION, watch};

/// Measures the database for `Status` (`dbSize`), in bytes.
pub type DbSize = Arc<dyn Fn() -> i64 + Send + Sync>;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// `AlarmRequest.action` values.
const ALARM_GET: i32 = 0;
const ALARM_DEACTIVATE: i32 = 2;

impl EtcdFront {
    /// Every service of the front on one tonic router, with the standard gRPC health service
    /// reporting it serving.
    pub async fn router(&self, server: tonic::transport::Server) -> Router {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let mut server = server;
        server
            .add_service(health)
            .add_service(PbKvServer::new(self.clone()))
            .add_service(PbWatchServer::new(self.clone()))
            .add_service(PbLeaseServer::new(self.clone()))
            .add_service(PbMaintenanceServer::new(self.clone()))
            .add_service(PbClusterServer::new(self.clone()))
    }

    /// Serves every service on `listener` until `shutdown` resolves. Nagle's algorithm is off
    /// on every connection: a unary response sharing a connection with a watch stream would
    /// otherwise wait for the acknowledgement of the last watch response (40 ms with delayed
    /// ACKs) before it is sent.
    pub async fn serve(
        &self,
        server: tonic::transport::Server,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        self.router(server)
            .await
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }

    async fn current_revision(&self) -> Result<u64, Status> {
        self.engine
            .store
            .current_revision()
            .await
            .map_err(errors::from_storage)
    }

    async fn header(&self) -> Result<Option<etcd_client::proto::PbResponseHeader>, Status> {
        Ok(self.engine.identity.header(self.current_revision().await?))
    }

    fn member(&self) -> PbMember {
        PbMember {
            id: self.engine.identity.member_id,
            name: self.options.name.clone(),
            peer_ur_ls: Vec::new(),
            client_ur_ls: self.options.advertise_client_urls.clone(),
            is_learner: false,
        }
    }
}

#[tonic::async_trait]
impl PbKvService for EtcdFront {
    async fn range(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        Ok(Response::new(self.engine.range(request.get_ref()).await?))
    }

    type RangeStreamStream = BoxStream<PbRangeStreamResponse>;

    async fn range_stream(
        &self,
        _request: Request<PbRangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented(
            "RangeStream is not served by this etcd front; use Range with a limit",
        ))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let request = request.into_inner();
        check_put(&request)?;
        Ok(Response::new(self.engine.put(request).await?))
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let request = request.into_inner();
        if request.key.is_empty() {
            return Err(errors::empty_key());
        }
        Ok(Response::new(self.engine.delete_range(request).await?))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        Ok(Response::new(self.engine.txn(request.into_inner()).await?))
    }

    /// Compaction in the store; `physical` needs no wait, the store's reads already refuse
    /// compacted revisions when this returns.
    async fn compact(
        &self,
        request: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let revision = u64::try_from(request.get_ref().revision).unwrap_or(0);
        self.engine
            .store
            .compact(revision)
            .await
            .map_err(errors::from_storage)?;
        Ok(Response::new(PbCompactionResponse {
            header: self.header().await?,
        }))
    }
}

#[tonic::async_trait]
impl PbWatchService for EtcdFront {
    type WatchStream = watch::ResponseStream;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Ok(Response::new(watch::serve(
            Arc::clone(&self.engine.store),
            self.engine.identity,
            request.into_inner(),
        )))
    }
}

#[tonic::async_trait]
impl PbLeaseService for EtcdFront {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let PbLeaseGrantRequest { ttl, id } = request.into_inner();
        if ttl > MAX_LEASE_TTL {
            return Err(errors::lease_ttl_too_large());
        }
        let leases = &self.engine.leases;
        let ttl = leases.effective_ttl(ttl);
        let id = match id {
            0 => loop {
                let candidate = random_lease_id()?;
                if !leases.exists(candidate) {
                    break candidate;
                }
            },
            id if leases.exists(id) => return Err(errors::lease_exists()),
            id => id,
        };
        let revision = match self
            .engine
            .store
            .create(&keys::lease_key(id), leases::encode_ttl(ttl), None)
            .await
        {
            Ok(revision) => revision,
            Err(Error::AlreadyExists { .. }) => return Err(errors::lease_exists()),
            Err(error) => return Err(errors::from_storage(error)),
        };
        leases.insert(id, ttl);
        Ok(Response::new(PbLeaseGrantResponse {
            header: self.engine.identity.header(revision),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let revision = self.engine.revoke(request.get_ref().id).await?;
        Ok(Response::new(PbLeaseRevokeResponse {
            header: self.engine.identity.header(revision),
        }))
    }

    type LeaseKeepAliveStream = BoxStream<PbLeaseKeepAliveResponse>;

    /// Each request renews its lease to the full TTL; an unknown lease is answered with TTL 0,
    /// as etcd answers it.
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let front = self.clone();
        let responses = request.into_inner().then(move |request| {
            let front = front.clone();
            async move {
                let id = request?.id;
                let ttl = front.engine.leases.keep_alive(id).unwrap_or(0);
                Ok(PbLeaseKeepAliveResponse {
                    header: front.header().await?,
                    id,
                    ttl,
                })
            }
        });
        Ok(Response::new(Box::pin(responses)))
    }

    /// An unknown lease is answered with TTL -1, as etcd answers it.
    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let PbLeaseTimeToLiveRequest {
            id,
            keys: with_keys,
        } = request.into_inner();
        let header = self.header().await?;
        let response = match self.engine.leases.time_to_live(id) {
            Some(status) => PbLeaseTimeToLiveResponse {
                header,
                id,
                ttl: status.remaining,
                granted_ttl: status.granted_ttl,
                keys: if with_keys {
                    status.keys.iter().filter_map(|k| keys::decode(k)).collect()
                } else {
                    Vec::new()
                },
            },
            None => PbLeaseTimeToLiveResponse {
                header,
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(response))
    }

    async fn lease_leases(
        &self,
        _request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        Ok(Response::new(PbLeaseLeasesResponse {
            header: self.header().await?,
            leases: self
                .engine
                .leases
                .ids()
                .into_iter()
                .map(|id| PbLeaseStatus { id })
                .collect(),
        }))
    }
}

/// A positive lease ID no client chose.
fn random_lease_id() -> Result<i64, Status> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| Status::internal(format!("no randomness: {e}")))?;
    Ok((i64::from_be_bytes(bytes) & i64::MAX).max(1))
}

fn single_member() -> Status {
    Status::failed_precondition(
        "this etcd front is a single member backed by its store; membership cannot change",
    )
}

#[tonic::async_trait]
impl PbClusterService for EtcdFront {
    async fn member_add(
        &self,
        _request: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(single_member())
    }

    async fn member_remove(
        &self,
        _request: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(single_member())
    }

    async fn member_update(
        &self,
        _request: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(single_member())
    }

    async fn member_list(
        &self,
        _request: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        Ok(Response::new(PbMemberListResponse {
            header: self.header().await?,
            members: vec![self.member()],
        }))
    }

    async fn member_promote(
        &self,
        _request: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(single_member())
    }
}

#[tonic::async_trait]
impl PbMaintenanceService for EtcdFront {
    /// The front raises no alarm: listing returns none, disarming has nothing to do, and
    /// raising one by hand is refused.
    async fn alarm(
        &self,
        request: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        match request.get_ref().action {
            ALARM_GET | ALARM_DEACTIVATE => Ok(Response::new(PbAlarmResponse {
                header: self.header().await?,
                alarms: Vec::new(),
            })),
            _ => Err(Status::unimplemented(
                "this etcd front raises no alarms and cannot be given one",
            )),
        }
    }

    async fn status(
        &self,
        _request: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let revision = self.current_revision().await?;
        let db_size = self.options.db_size.as_ref().map_or(0, |measure| measure());
        Ok(Response::new(PbStatusResponse {
            header: self.engine.identity.header(revision),
            version: REPORTED_VERSION.to_owned(),
            db_size,
            leader: self.engine.identity.member_id,
            raft_index: revision,
            raft_term: 1,
            raft_applied_index: revision,
            db_size_in_use: db_size,
            ..PbStatusResponse::default()
        }))
    }

    /// The stores reclaim space as they compact (SQLite's incremental vacuum, sled's
    /// segment cleaner); there is nothing left for a defragmentation to do.
    async fn defragment(
        &self,
        _request: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        Ok(Response::new(PbDefragmentResponse {
            header: self.header().await?,
        }))
    }

    async fn hash(
        &self,
        _request: Request<PbHashRequest>,
    ) -> Result<Response<PbHashResponse>, Status> {
        Err(Status::unimplemented(
            "Hash hashes etcd's bbolt file, which this front does not have",
        ))
    }

    async fn hash_kv(
        &self,
        _request: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        Err(Status::unimplemented(
            "HashKV is not served by this etcd front yet",
        ))
    }

    type SnapshotStream = BoxStream<PbSnapshotResponse>;

    /// The keys and leases at the latest revision, in etcd's snapshot format (see the
    /// `snapshot` module).
    async fn snapshot(
        &self,
        _request: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let snapshot = snapshot::take(&*self.engine.store)
            .await
            .map_err(errors::from_storage)?;
        let header = self.engine.identity.header(snapshot.revision);
        Ok(Response::new(Box::pin(snapshot::stream(
            snapshot,
            header,
            REPORTED_VERSION,
        ))))
    }

    async fn move_leader(
        &self,
        _request: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(single_member())
    }

    async fn downgrade(
        &self,
        _request: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "this etcd front has no cluster version to downgrade",
        ))
    }
}
