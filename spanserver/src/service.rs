//! gRPC handlers: proto in, domain call, proto or `Status` out.
//!
//! The data logic lives in `requests.rs`; errors become a `Status` in exactly one
//! place (`Error::to_status`). The `Peer` service is for servers only: every
//! call must carry the cluster's peer secret (`auth.rs`), as must the
//! `Admin` calls that change the cluster. Its Raft methods
//! are the receiving half of the gRPC transport: they check who is talking
//! (cluster id, destination server), decode raft-rs messages off the event
//! loop, and hand them in.

use std::sync::Arc;
use std::time::Instant;

use prost011::Message as _;
use raft::eraftpb::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::PeerSecret;
use crate::clock::ClockGuard;
use crate::error::Error;
use crate::inbox::{LoopHandle, LoopMsg};
use crate::limits;
use crate::peers::Peers;
use crate::registry::Registry;
use crate::requests::DataRequests;
use crate::wire;
use meta::{ServerId, ShardId};

pub struct KvService {
    pub requests: Arc<DataRequests>,
}

#[tonic::async_trait]
impl proto::kv_server::Kv for KvService {
    async fn get(&self, request: Request<proto::GetRequest>) -> Result<Response<proto::GetResponse>, Status> {
        let result = self.requests.get(request.into_inner()).await?;
        let (found, version_ts, value) = match result.value {
            Some((ts, value)) => (true, ts.as_nanos(), value),
            None => (false, 0, Vec::new()),
        };
        Ok(Response::new(proto::GetResponse { found, value, version_ts, read_ts: result.read_ts.as_nanos() }))
    }

    async fn scan(&self, request: Request<proto::ScanRequest>) -> Result<Response<proto::ScanResponse>, Status> {
        Ok(Response::new(self.requests.scan(request.into_inner()).await?))
    }

    async fn write(&self, request: Request<proto::WriteRequest>) -> Result<Response<proto::WriteResponse>, Status> {
        let outcome = self.requests.write(request.into_inner()).await?;
        Ok(Response::new(proto::WriteResponse {
            commit_ts: outcome.commit_ts.as_nanos(),
            applied: outcome.applied,
            commit_wait_ns: outcome.commit_wait.as_nanos() as u64,
        }))
    }
}

pub struct TxnService {
    pub requests: Arc<DataRequests>,
    /// To find a prepare's coordinator when no replica here knows it.
    pub peers: Arc<Peers>,
}

#[tonic::async_trait]
impl proto::txn_server::Txn for TxnService {
    async fn read(&self, request: Request<proto::TxnReadRequest>) -> Result<Response<proto::TxnReadResponse>, Status> {
        let started = Instant::now();
        let mut response = self.requests.txn_read(request.into_inner()).await?;
        response.server_ns = nanos_since(started);
        Ok(Response::new(response))
    }

    async fn prepare(
        &self,
        request: Request<proto::TxnPrepareRequest>,
    ) -> Result<Response<proto::TxnPrepareResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        self.peers.check_shard_exists(ShardId(request.coordinator_shard_id)).await?;
        let (prepare_ts, seal, conditions_failed) = match self.requests.txn_prepare(request).await? {
            Some((prepare_ts, seal)) => (prepare_ts.as_nanos(), seal, false),
            None => (0, Vec::new(), true),
        };
        let server_ns = nanos_since(started);
        Ok(Response::new(proto::TxnPrepareResponse { prepare_ts, seal, conditions_failed, server_ns }))
    }

    async fn commit(
        &self,
        request: Request<proto::TxnCommitRequest>,
    ) -> Result<Response<proto::TxnCommitResponse>, Status> {
        let started = Instant::now();
        let outcome = self.requests.txn_commit(request.into_inner()).await?;
        Ok(Response::new(proto::TxnCommitResponse {
            commit_ts: outcome.commit_ts.as_nanos(),
            commit_wait_ns: outcome.commit_wait.as_nanos() as u64,
            conditions_failed: !outcome.applied,
            server_ns: nanos_since(started),
        }))
    }

    async fn abort(
        &self,
        request: Request<proto::TxnAbortRequest>,
    ) -> Result<Response<proto::TxnAbortResponse>, Status> {
        self.requests.txn_abort(request.into_inner()).await?;
        Ok(Response::new(proto::TxnAbortResponse {}))
    }

    async fn heartbeat(
        &self,
        request: Request<proto::TxnHeartbeatRequest>,
    ) -> Result<Response<proto::TxnHeartbeatResponse>, Status> {
        self.requests.txn_heartbeat(request.into_inner())?;
        Ok(Response::new(proto::TxnHeartbeatResponse {}))
    }
}

pub struct AdminService {
    pub registry: Arc<Registry>,
    pub truetime: truetime::TrueTime,
    pub event_loop: LoopHandle,
    /// Whether `SetClock` is served (`[admin] tools`).
    pub tools: bool,
    pub clock: Arc<ClockGuard>,
    /// For `AllocateIds`, which writes through a shard like a data request.
    pub requests: Arc<DataRequests>,
    /// For `SplitShard`, which takes ids from the allocator's shard.
    pub peers: Arc<Peers>,
    /// What the calls that change the cluster must present (`auth.rs`).
    pub secret: PeerSecret,
}

impl AdminService {
    /// Is `server` up, as far as this one can tell: itself, or a peer
    /// that answered a clock sample lately (`limits::PEER_ANSWER_WINDOW`).
    fn answers(&self, server: ServerId) -> bool {
        server == self.registry.server_id || self.clock.peer_answers(server)
    }

    fn check_tools(&self, what: &str) -> Result<(), Status> {
        match self.tools {
            true => Ok(()),
            false => Err(Error::PermissionDenied(format!(
                "{what} is an operator tool, off on this server (start it with `[admin] tools = true` or `spandb start --admin-tools`)"
            ))
            .into()),
        }
    }

    fn clock_status(&self) -> proto::ClockStatus {
        let now = self.truetime.now();
        let (offset_ns, drift_ppm) = self.truetime.clock().adjustment();
        proto::ClockStatus {
            earliest: now.earliest.as_nanos(),
            latest: now.latest.as_nanos(),
            offset_ns,
            drift_ppm,
            epsilon_ns: self.truetime.epsilon().as_nanos() as u64,
        }
    }
}

#[tonic::async_trait]
impl proto::admin_server::Admin for AdminService {
    async fn cluster_info(
        &self,
        _request: Request<proto::ClusterInfoRequest>,
    ) -> Result<Response<proto::ClusterInfoResponse>, Status> {
        // The shards this server hosts, as they are now (split or not),
        // and the static layout's others as first laid out (the client
        // keeps whichever of two overlapping descriptors is newer).
        let cluster = &self.registry.cluster;
        let hosted = self.registry.all();
        let mut shards: Vec<proto::ShardInfo> = hosted
            .iter()
            .filter(|r| r.descriptor().is_initialized())
            .map(|r| proto::ShardInfo {
                descriptor: Some(wire::descriptor_to_proto(&r.descriptor())),
                leader_server_id: r.progress().leader_server.map_or(0, |s| s.0),
            })
            .collect();
        shards.extend(cluster.shards().into_iter().filter(|l| !hosted.iter().any(|r| r.shard_id == l.shard_id)).map(
            |layout| proto::ShardInfo {
                descriptor: Some(wire::descriptor_to_proto(&layout.descriptor())),
                leader_server_id: 0,
            },
        ));
        Ok(Response::new(proto::ClusterInfoResponse {
            cluster_id: cluster.cluster_id.clone(),
            servers: self
                .registry
                .directory
                .servers()
                .into_iter()
                .map(|(id, addr)| proto::ServerInfo { server_id: id.0, addr })
                .collect(),
            shards,
        }))
    }

    async fn server_status(
        &self,
        _request: Request<proto::ServerStatusRequest>,
    ) -> Result<Response<proto::ServerStatusResponse>, Status> {
        // Sizes are estimates only; a server shutting down shows none.
        let engine = self.requests.engine().ok();
        let replicas = self
            .registry
            .all()
            .into_iter()
            .map(|r| {
                let p = r.progress();
                let d = r.descriptor();
                let (requests, writes) = r.load_rates();
                proto::ReplicaStatus {
                    shard_id: r.shard_id.0,
                    replica_id: r.replica_id.0,
                    role: p.role.as_str().to_string(),
                    term: p.term,
                    leader_replica_id: p.leader_replica.map_or(0, |l| l.0),
                    leader_server_id: p.leader_server.map_or(0, |s| s.0),
                    committed_index: p.committed_index,
                    applied_index: p.applied_index,
                    first_index: p.first_index,
                    last_index: p.last_index,
                    safe_ts: r.safe_ts().as_nanos(),
                    gc_watermark: r.gc_watermark().as_nanos(),
                    snapshots_installed: r.snapshots_installed(),
                    range_ver: d.epoch.range_ver.0,
                    conf_ver: d.epoch.conf_ver.0,
                    membership: d
                        .replicas
                        .iter()
                        .find(|x| x.replica_id == r.replica_id)
                        .map_or("", |x| match x.role {
                            meta::ReplicaRole::Voter => "voter",
                            meta::ReplicaRole::Learner => "learner",
                            meta::ReplicaRole::IncomingVoter => "incoming-voter",
                            meta::ReplicaRole::DemotingVoter => "demoting-voter",
                        })
                        .to_string(),
                    start_key: d.start_key,
                    end_key: d.end_key,
                    estimated_bytes: engine.as_ref().map_or(0, |e| crate::split_queue::estimated_bytes(e, &r)),
                    requests_per_s: requests,
                    reads_per_s: (requests - writes).max(0.0),
                    writes_per_s: writes,
                    down_replica_ids: p.down_replicas.iter().map(|r| r.0).collect(),
                    pending_replica_ids: p.pending_replicas.iter().map(|r| r.0).collect(),
                    keys: (p.role == crate::registry::Role::Leader).then(|| r.keys(d.epoch.range_ver)).flatten(),
                }
            })
            .collect();
        let stray_keys = match &engine {
            Some(e) => crate::event_loop::stray_keys(&crate::storage::mvcc::Reader::new(e))?,
            None => Vec::new(),
        };
        let server_id = self.registry.server_id;
        let (capacity_bytes, available_bytes) = engine.as_ref().and_then(|e| e.disk_space()).unwrap_or((0, 0));
        Ok(Response::new(proto::ServerStatusResponse {
            server_id: server_id.0,
            addr: self.registry.server_addr(server_id).unwrap_or_default(),
            replicas,
            clock_healthy: self.clock.is_healthy(),
            clock: self.clock.describe(),
            placement_operations: self.registry.placement_operations(),
            stray_keys,
            capacity_bytes,
            available_bytes,
        }))
    }

    async fn allocate_ids(
        &self,
        request: Request<proto::AllocateIdsRequest>,
    ) -> Result<Response<proto::AllocateIdsResponse>, Status> {
        self.secret.check_admin(request.metadata(), "AllocateIds")?;
        Ok(Response::new(self.requests.allocate_ids(request.into_inner()).await?))
    }

    async fn set_server_draining(
        &self,
        request: Request<proto::SetServerDrainingRequest>,
    ) -> Result<Response<proto::DrainingServersResponse>, Status> {
        self.secret.check_admin(request.metadata(), "SetServerDraining")?;
        Ok(Response::new(self.requests.set_server_draining(request.into_inner(), |s| self.answers(s)).await?))
    }

    async fn draining_servers(
        &self,
        request: Request<proto::DrainingServersRequest>,
    ) -> Result<Response<proto::DrainingServersResponse>, Status> {
        Ok(Response::new(self.requests.draining_servers(request.into_inner()).await?))
    }

    async fn split_shard(
        &self,
        request: Request<proto::SplitShardRequest>,
    ) -> Result<Response<proto::SplitShardResponse>, Status> {
        self.secret.check_admin(request.metadata(), "SplitShard")?;
        let request = request.into_inner();
        let replicas = self.requests.check_split(&request)? as u64;
        // The child's ids come from the allocator, never from the caller:
        // a shard id already in use would shrink this shard into nothing.
        let first = self
            .peers
            .allocate_ids(1 + replicas)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot take ids for the new shard: {e}")))?;
        Ok(Response::new(self.requests.split_shard(request, first).await?))
    }

    async fn change_replicas(
        &self,
        request: Request<proto::ChangeReplicasRequest>,
    ) -> Result<Response<proto::ChangeReplicasResponse>, Status> {
        self.secret.check_admin(request.metadata(), "ChangeReplicas")?;
        let request = request.into_inner();
        let adds = request.changes.iter().filter(|c| c.kind() == proto::replica_change::Kind::AddLearner);
        if let Some(down) = adds.map(|c| ServerId(c.server_id)).find(|s| !self.answers(*s)) {
            return Err(Error::InvalidArgument(format!(
                "server {down} does not answer (down or cut off): a replica there could not catch up"
            ))
            .into());
        }
        // A new learner's id comes from the allocator, never the caller:
        // an id in use (or used before) would confuse the group.
        let new_replica = match self.requests.check_change_replicas(&request)? {
            0 => None,
            n => Some(meta::ReplicaId(
                self.peers
                    .allocate_ids(n)
                    .await
                    .map_err(|e| Error::Unavailable(format!("cannot take an id for the new replica: {e}")))?,
            )),
        };
        Ok(Response::new(self.requests.change_replicas(request, new_replica).await?))
    }

    async fn transfer_leader(
        &self,
        request: Request<proto::TransferLeaderRequest>,
    ) -> Result<Response<proto::TransferLeaderResponse>, Status> {
        self.secret.check_admin(request.metadata(), "TransferLeader")?;
        let r = request.into_inner();
        let shard = ShardId(r.shard_id);
        let replica = self.registry.get(shard).ok_or_else(|| Error::WrongShard {
            shard_id: shard,
            descriptors: Vec::new(),
            reason: "no replica of this shard on this server".into(),
        })?;
        let to = ServerId(r.to_server_id);
        if !replica.descriptor().replicas.iter().any(|d| d.server_id == to) {
            return Err(Error::InvalidArgument(format!("server {to} has no replica of {shard}")).into());
        }
        let progress = replica.progress();
        if progress.role != crate::registry::Role::Leader {
            let leader = progress
                .leader_server
                .filter(|s| *s != self.registry.server_id)
                .and_then(|s| self.registry.server_addr(s).map(|a| (s, a)));
            return Err(Error::NotLeader { shard_id: shard, leader }.into());
        }
        let drain = std::time::Duration::from_millis(r.drain_ms.into());
        if drain > limits::TRANSFER_DRAIN_MAX {
            return Err(Error::InvalidArgument(format!(
                "a drain of {drain:?} is longer than the limit, {:?} (limits::TRANSFER_DRAIN_MAX)",
                limits::TRANSFER_DRAIN_MAX
            ))
            .into());
        }
        self.event_loop.send(LoopMsg::TransferLeader { shard, to, only_if_idle: r.only_if_idle, drain })?;
        Ok(Response::new(proto::TransferLeaderResponse {}))
    }

    async fn get_clock(
        &self,
        _request: Request<proto::GetClockRequest>,
    ) -> Result<Response<proto::ClockStatus>, Status> {
        Ok(Response::new(self.clock_status()))
    }

    async fn set_clock(
        &self,
        request: Request<proto::SetClockRequest>,
    ) -> Result<Response<proto::ClockStatus>, Status> {
        self.check_tools("SetClock")?;
        self.secret.check_admin(request.metadata(), "SetClock")?;
        let r = request.into_inner();
        check_clock_adjustment(r.offset_ns, r.drift_ppm)?;
        self.truetime
            .clock()
            .adjust(r.offset_ns, r.drift_ppm)
            .map_err(|e| Status::from(Error::InvalidArgument(e.to_string())))?;
        tracing::info!(offset_ns = r.offset_ns, drift_ppm = r.drift_ppm, "clock adjusted through the admin API");
        Ok(Response::new(self.clock_status()))
    }
}

/// Refuses clock adjustments beyond the documented bounds (`unsigned_abs`:
/// `i64::MIN` has no positive `abs`).
fn check_clock_adjustment(offset_ns: i64, drift_ppm: i64) -> Result<(), Error> {
    let offset_max = limits::CLOCK_OFFSET_MAX.as_nanos() as u64;
    if offset_ns.unsigned_abs() > offset_max || drift_ppm.unsigned_abs() > limits::CLOCK_DRIFT_PPM_MAX as u64 {
        return Err(Error::InvalidArgument(format!(
            "clock offset must be within ±{:?} and drift within ±{} ppm",
            limits::CLOCK_OFFSET_MAX,
            limits::CLOCK_DRIFT_PPM_MAX
        )));
    }
    Ok(())
}

/// The calls only servers make (proto `Peer`).
pub struct PeerService {
    pub cluster_id: String,
    pub server_id: ServerId,
    pub event_loop: LoopHandle,
    pub requests: Arc<DataRequests>,
    /// For `Join`, which takes an id and writes at the system shard.
    pub peers: Arc<Peers>,
    pub secret: PeerSecret,
}

impl PeerService {
    /// Writes a snapshot's data file of `bytes` bytes from `stream` into
    /// the snapshot directory, synced; removes it on any error.
    async fn receive_file(
        &self,
        shard: ShardId,
        bytes: u64,
        stream: &mut Streaming<proto::SnapshotChunk>,
    ) -> Result<std::path::PathBuf, Status> {
        use tokio::io::AsyncWriteExt as _;
        let path = self.event_loop.snapshot_dir().new_path(shard, "in");
        let result: Result<(), Status> = async {
            let io = |e: std::io::Error| Status::from(Error::Unavailable(format!("writing snapshot data: {e}")));
            let mut f = tokio::fs::File::create(&path).await.map_err(io)?;
            let mut written = 0u64;
            while let Some(chunk) = stream.message().await? {
                written += chunk.file_data.len() as u64;
                if written > bytes {
                    return Err(Error::InvalidArgument("more snapshot data than announced".into()).into());
                }
                f.write_all(&chunk.file_data).await.map_err(io)?;
            }
            if written != bytes {
                return Err(
                    Error::InvalidArgument(format!("snapshot data of {written} bytes, {bytes} announced")).into()
                );
            }
            f.sync_all().await.map_err(io)
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        Ok(path)
    }

    fn check_peer(&self, cluster_id: &str, to: u64) -> Result<(), Error> {
        if cluster_id != self.cluster_id {
            return Err(Error::PermissionDenied(format!(
                "raft traffic from cluster {cluster_id:?}, this server is in {:?}",
                self.cluster_id
            )));
        }
        if to != self.server_id.0 {
            return Err(Error::InvalidArgument(format!(
                "raft traffic for server {to} reached server {}",
                self.server_id.0
            )));
        }
        Ok(())
    }
}

fn decode_envelopes(envelopes: Vec<proto::RaftEnvelope>) -> Vec<(ShardId, Message)> {
    envelopes
        .into_iter()
        .filter_map(|e| match Message::decode(e.message.as_slice()) {
            Ok(m) => Some((ShardId(e.shard_id), m)),
            Err(err) => {
                tracing::warn!(shard = e.shard_id, "undecodable raft message dropped: {err}");
                None
            }
        })
        .collect()
}

#[tonic::async_trait]
impl proto::peer_server::Peer for PeerService {
    async fn raft(&self, request: Request<Streaming<proto::RaftBatch>>) -> Result<Response<proto::RaftAck>, Status> {
        self.secret.check(request.metadata())?;
        let mut stream = request.into_inner();
        while let Some(batch) = stream.message().await? {
            self.check_peer(&batch.cluster_id, batch.to_server_id)?;
            let messages = decode_envelopes(batch.envelopes);
            // A full inbox drops Raft traffic; Raft retransmits.
            let _ = self.event_loop.send(LoopMsg::Raft { from: ServerId(batch.from_server_id), messages });
        }
        Ok(Response::new(proto::RaftAck {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<proto::SnapshotChunk>>,
    ) -> Result<Response<proto::RaftAck>, Status> {
        self.secret.check(request.metadata())?;
        let mut stream = request.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Error::InvalidArgument("empty snapshot stream".into()).into());
        };
        self.check_peer(&first.cluster_id, first.to_server_id)?;
        let (from, shard) = (ServerId(first.from_server_id), ShardId(first.shard_id));
        let message = Message::decode(first.message.as_slice())
            .map_err(|e| Error::InvalidArgument(format!("undecodable snapshot message: {e}")))?;
        let header: proto::storage::ShardSnapshot = message
            .snapshot
            .as_ref()
            .and_then(|s| prost::Message::decode(s.data.as_slice()).ok())
            .ok_or_else(|| Error::InvalidArgument("a snapshot message without a snapshot header".into()))?;
        if header.data_bytes > limits::SNAPSHOT_BYTES_MAX {
            return Err(Error::InvalidArgument("snapshot data exceeds the size limit".into()).into());
        }
        // The data file, to disk as it arrives (storage/snapshot.rs).
        let file = match header.data_bytes {
            0 => None,
            bytes => Some(self.receive_file(shard, bytes, &mut stream).await?),
        };
        let arrived = LoopMsg::SnapshotArrived { from, shard, message, file: file.clone() };
        if let Err(e) = self.event_loop.send(arrived) {
            if let Some(f) = file {
                let _ = tokio::fs::remove_file(f).await;
            }
            return Err(e.into());
        }
        Ok(Response::new(proto::RaftAck {}))
    }

    async fn resolve(
        &self,
        request: Request<proto::TxnResolveRequest>,
    ) -> Result<Response<proto::TxnResolveResponse>, Status> {
        self.secret.check(request.metadata())?;
        Ok(Response::new(self.requests.txn_resolve(request.into_inner()).await?))
    }

    async fn decide(
        &self,
        request: Request<proto::TxnDecideRequest>,
    ) -> Result<Response<proto::TxnDecideResponse>, Status> {
        self.secret.check(request.metadata())?;
        self.requests.txn_decide(request.into_inner()).await?;
        Ok(Response::new(proto::TxnDecideResponse {}))
    }

    async fn read_clock(
        &self,
        request: Request<proto::ReadClockRequest>,
    ) -> Result<Response<proto::ReadClockResponse>, Status> {
        self.secret.check(request.metadata())?;
        let reading = self.requests.tt.clock().read().as_nanos();
        let healthy = self.requests.clock_trusted();
        Ok(Response::new(proto::ReadClockResponse { reading, server_id: self.server_id.0, healthy }))
    }

    async fn join(&self, request: Request<proto::JoinRequest>) -> Result<Response<proto::JoinResponse>, Status> {
        self.secret.check(request.metadata())?;
        let r = request.into_inner();
        if r.cluster_id != self.cluster_id {
            return Err(Error::PermissionDenied(format!(
                "a server of cluster {:?} asked to join cluster {:?}",
                r.cluster_id, self.cluster_id
            ))
            .into());
        }
        if r.addr.len() > limits::SERVER_ADDR_BYTES_MAX || !meta::cluster::looks_like_host_port(&r.addr) {
            return Err(Error::InvalidArgument(format!(
                "a joining server's address must be host:port of at most {} bytes",
                limits::SERVER_ADDR_BYTES_MAX
            ))
            .into());
        }
        let directory = &self.requests.registry.directory;
        if let Some((id, _)) =
            directory.servers().into_iter().find(|(id, a)| *a == r.addr && id.0 <= directory.static_max().0)
        {
            return Err(Error::InvalidArgument(format!("{} is the address of server {id}", r.addr)).into());
        }
        let answer = self.peers.join(&r.addr).await.map_err(Error::Unavailable)?;
        tracing::info!(server = answer.server_id, addr = %r.addr, "a server joined the cluster");
        Ok(Response::new(answer))
    }

    async fn record_joined(
        &self,
        request: Request<proto::RecordJoinedRequest>,
    ) -> Result<Response<proto::JoinResponse>, Status> {
        self.secret.check(request.metadata())?;
        let r = request.into_inner();
        if r.addr.len() > limits::SERVER_ADDR_BYTES_MAX || !meta::cluster::looks_like_host_port(&r.addr) {
            return Err(Error::InvalidArgument("a joined server's address must be a short host:port".into()).into());
        }
        if r.server_id <= self.requests.registry.directory.static_max().0 {
            return Err(
                Error::InvalidArgument(format!("server id {} is the cluster description's", r.server_id)).into()
            );
        }
        Ok(Response::new(self.requests.record_joined(r).await?))
    }

    async fn joined_servers(
        &self,
        request: Request<proto::JoinedServersRequest>,
    ) -> Result<Response<proto::JoinedServersResponse>, Status> {
        self.secret.check(request.metadata())?;
        Ok(Response::new(self.requests.joined_servers(request.into_inner()).await?))
    }
}

/// Nanoseconds since `started`, for the breakdown fields of responses.
fn nanos_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: clock adjustments beyond the bounds are refused, including the
    /// extremes whose `abs()` overflows.
    #[test]
    fn clock_adjustments_are_bounded() {
        let max = limits::CLOCK_OFFSET_MAX.as_nanos() as i64;
        for (offset, drift) in [(max + 1, 0), (-max - 1, 0), (i64::MIN, 0), (i64::MAX, 0), (0, i64::MIN), (0, 100_001)]
        {
            assert!(
                matches!(check_clock_adjustment(offset, drift), Err(Error::InvalidArgument(_))),
                "offset {offset} drift {drift} accepted"
            );
        }
        for (offset, drift) in [(max, 0), (-max, 0), (0, 100_000), (0, -100_000), (0, 0)] {
            check_clock_adjustment(offset, drift).unwrap();
        }
    }
}
