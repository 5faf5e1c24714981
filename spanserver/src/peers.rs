//! Server-to-server requests of the commit protocol, on the `Peer` service
//! (every call carries the cluster's peer secret, `auth.rs`).
//!
//! ```text
//!   participant leader ──Peer.Resolve(txn, me)──> coordinator shard's leader
//!        (prepared, heard nothing)                 answers what the recorded
//!                                                  decision means for me, or
//!                                                  decides abort durably
//!   coordinator leader ──Peer.Decide(txn, outcome)──> each participant's leader
//!        (once decided, during commit-wait)           answers once applied: an
//!                                                     acknowledgement
//! ```
//!
//! `Decide` does not wait for the coordinator's commit-wait (Spanner's
//! coordinator does, so that a participant releases its locks only once
//! `s` has passed). Two rules make the wait unnecessary here, and sending
//! at once ends the participants' locks `2ε` sooner (TPC-B's hot rows are
//! at participants):
//! - no reply reveals a version at `s` before `TT.after(s)` on its
//!   server's clock (`requests.rs`, "No read sees a commit before its
//!   commit-wait ends"), so a reader at a participant that applied early
//!   learns nothing sooner than one at the coordinator;
//! - a participant's leader assigns every later timestamp above `s`
//!   (`txn`: `Finish` reserves it), so a transaction that takes a lock
//!   the early `Finish` released commits above `s`, as it would after a
//!   late one.
//!
//! Both are best-effort with bounded retries, and the state machines repeat
//! them (`txn::limits::RESOLVE_RETRY`): a participant keeps asking while it
//! is prepared, a coordinator keeps telling participants that have not
//! acknowledged. Answers go back into the event loop: `Decide` inputs for
//! the participant, `Acknowledged` for the coordinator.
//!
//! A shard's leader is found like the client finds it: the leader this
//! server knows of (if it hosts a replica), else the shard's replicas in
//! turn, following `NotLeader` hints.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meta::retry::{Failure, Next, Retries, RetryPolicy};
use meta::RequestId;
use meta::{ShardId, TxnId};
use prost::Message as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use txn::{Input, Outcome};

use crate::auth::PeerSecret;
use crate::inbox::{LoopHandle, LoopMsg};
use crate::registry::{Registry, Role};
use crate::shard::PeerCall;
use crate::wire::txn_id_bytes;
use meta::ClusterSpec;
use meta::ServerId;

/// How one Resolve or Decide retries (`meta::retry`, as the client
/// does): 5 s in all, waits from 50 ms doubling to 500 ms, leader hints
/// followed at once.
const PEER_RETRY: RetryPolicy = RetryPolicy {
    deadline: Duration::from_secs(5),
    backoff_min: Duration::from_millis(50),
    backoff_max: Duration::from_millis(500),
    hints_max: 3,
};
/// How long one attempt may take.
const PEER_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Peers {
    cluster: ClusterSpec,
    registry: Arc<Registry>,
    event_loop: LoopHandle,
    runtime: tokio::runtime::Handle,
    secret: PeerSecret,
    channels: Mutex<HashMap<String, Channel>>,
    /// Shards some server was found to host ([`Peers::check_shard_exists`]):
    /// shard ids are never reused, so an entry stays true.
    found_shards: Mutex<std::collections::BTreeSet<ShardId>>,
}

/// A `Peer` client whose calls carry the peer secret.
pub type PeerClient = proto::peer_client::PeerClient<InterceptedService<Channel, PeerSecret>>;

fn peers_client(channel: Channel, secret: &PeerSecret) -> PeerClient {
    proto::peer_client::PeerClient::with_interceptor(channel, secret.clone())
}

impl Peers {
    pub fn new(
        cluster: ClusterSpec,
        registry: Arc<Registry>,
        event_loop: LoopHandle,
        runtime: tokio::runtime::Handle,
        secret: PeerSecret,
    ) -> Arc<Peers> {
        Arc::new(Peers {
            cluster,
            registry,
            event_loop,
            runtime,
            secret,
            channels: Mutex::new(HashMap::new()),
            found_shards: Mutex::default(),
        })
    }

    /// Makes one of the event loop's [`PeerCall`]s over gRPC, on the
    /// runtime; returns at once.
    pub fn call(self: &Arc<Self>, call: PeerCall) {
        match call {
            PeerCall::Resolve { participant, txn, coordinator, patient } => {
                self.resolve(participant, txn, (coordinator, patient))
            }
            PeerCall::Decide { coordinator, txn, participants, outcome } => {
                self.decide(coordinator, txn, participants, outcome)
            }
        }
    }

    /// Asks `coordinator` how `txn` ended; feeds the answer to `participant`.
    fn resolve(self: &Arc<Self>, participant: ShardId, txn: TxnId, (coordinator, patient): (ShardId, bool)) {
        let peers = self.clone();
        self.runtime.spawn(async move {
            let request = proto::TxnResolveRequest {
                txn_id: txn_id_bytes(txn),
                shard_id: coordinator.0,
                participant_shard_id: participant.0,
                patient,
            };
            let secret = peers.secret.clone();
            let answer = peers
                .call_leader(coordinator, move |channel| {
                    let mut c = peers_client(channel, &secret);
                    let request = request.clone();
                    async move { c.resolve(request).await }
                })
                .await;
            let outcome = match answer {
                Ok(r) => match proto::TxnOutcome::try_from(r.outcome) {
                    Ok(proto::TxnOutcome::Committed) => {
                        Outcome::Committed(truetime::Timestamp::from_nanos(r.commit_ts))
                    }
                    Ok(proto::TxnOutcome::Aborted) => Outcome::Aborted,
                    _ => return, // pending: the participant asks again later
                },
                Err(e) => {
                    tracing::debug!(%txn, %coordinator, "cannot resolve yet: {e}");
                    return;
                }
            };
            let input = Input::Decide { req: RequestId(0), txn, outcome };
            let _ = peers.event_loop.send(LoopMsg::Txn { shard: participant, input, reply: None });
        });
    }

    /// Tells each participant how `txn` ended, at once (module docs);
    /// feeds `Acknowledged` to the coordinator for each that applied it.
    fn decide(self: &Arc<Self>, coordinator: ShardId, txn: TxnId, participants: Vec<ShardId>, outcome: Outcome) {
        let peers = self.clone();
        self.runtime.spawn(async move {
            let (wire, commit_ts) = match outcome {
                Outcome::Committed(ts) => (proto::TxnOutcome::Committed, ts.as_nanos()),
                Outcome::Aborted => (proto::TxnOutcome::Aborted, 0),
            };
            for shard in participants {
                let request = proto::TxnDecideRequest {
                    txn_id: txn_id_bytes(txn),
                    shard_id: shard.0,
                    outcome: wire as i32,
                    commit_ts,
                };
                let peers = peers.clone();
                tokio::spawn(async move {
                    let sent = match peers.decide_here(shard, txn, outcome).await {
                        true => Ok(()),
                        false => {
                            let secret = peers.secret.clone();
                            let call = move |channel| {
                                let mut c = peers_client(channel, &secret);
                                let request = request.clone();
                                async move { c.decide(request).await }
                            };
                            peers.call_leader(shard, call).await.map(drop)
                        }
                    };
                    match sent {
                        Ok(()) => {
                            let input = Input::Acknowledged { txn, participant: shard };
                            let _ = peers.event_loop.send(LoopMsg::Txn { shard: coordinator, input, reply: None });
                        }
                        // Told again later; the participant may also ask.
                        Err(e) => tracing::debug!(%txn, %shard, "decision not delivered: {e}"),
                    }
                });
            }
        });
    }

    /// Tells `shard`'s leader how `txn` ended without leaving the process,
    /// when that leader is a replica here (with a preferred leader, every
    /// participant's is): the same `Decide` input a `Peer.Decide` call
    /// would feed the event loop, minus the HTTP/2 round trip to itself.
    /// True once the decision is applied there; false when it could not
    /// say so (no replica here, not the leader, no answer in time), and
    /// the caller goes through gRPC, which finds the leader wherever it is.
    async fn decide_here(&self, shard: ShardId, txn: TxnId, outcome: Outcome) -> bool {
        let leads_here = self.registry.get(shard).is_some_and(|r| r.progress().role == Role::Leader);
        if !leads_here {
            return false;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let input = Input::Decide { req: RequestId(0), txn, outcome };
        if self.event_loop.send(LoopMsg::Txn { shard, input, reply: Some(reply) }).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(PEER_ATTEMPT_TIMEOUT, answer).await, Ok(Ok(Ok(_))))
    }

    /// The other servers of the cluster, as known now.
    pub fn others(&self, me: ServerId) -> Vec<ServerId> {
        self.registry.directory.others(me)
    }

    /// Did `server` join at run time (rather than being in the cluster
    /// description)?
    pub fn is_joined(&self, server: ServerId) -> bool {
        server > self.registry.directory.static_max()
    }

    /// Is `server` being decommissioned, as last read?
    pub fn is_draining(&self, server: ServerId) -> bool {
        self.registry.directory.is_draining(server)
    }

    /// Where to dial `server` (`Directory::peer_addr`).
    fn addr(&self, server: ServerId) -> Result<String, String> {
        self.registry.directory.peer_addr(server).ok_or_else(|| format!("no server {server} in the cluster"))
    }

    /// A `Peer` client of `server` (its connection is cached).
    pub async fn client(&self, server: ServerId) -> Result<PeerClient, String> {
        let addr = self.addr(server)?;
        let channel = self.channel(&addr).await?;
        Ok(proto::peer_client::PeerClient::with_interceptor(channel, self.secret.clone()))
    }

    /// What `server` knows of the cluster and its own shards
    /// (`Admin.ClusterInfo`).
    pub async fn cluster_info(&self, server: ServerId) -> Result<proto::ClusterInfoResponse, String> {
        let addr = self.addr(server)?;
        let mut admin = proto::admin_client::AdminClient::new(self.channel(&addr).await?);
        match tokio::time::timeout(PEER_ATTEMPT_TIMEOUT, admin.cluster_info(proto::ClusterInfoRequest {})).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(format!("{addr}: {}", status.message())),
            Err(_) => Err(format!("{addr}: no answer within {PEER_ATTEMPT_TIMEOUT:?}")),
        }
    }

    /// Whether some server hosts `shard`: known here (a replica, the
    /// static layout, an earlier answer), else asked of every other server
    /// at once. `InvalidArgument` if every server answered without it;
    /// `Unavailable` if none that answered has it and some did not answer.
    ///
    /// A participant checks its coordinator so: a prepared transaction
    /// naming a shard nobody hosts would ask it forever, holding its
    /// locks; one born by a split on servers this one shares nothing with
    /// is found by asking.
    pub async fn check_shard_exists(&self, shard: ShardId) -> Result<(), crate::error::Error> {
        use crate::error::Error;
        let known = self.registry.get(shard).is_some()
            || self.cluster.shards().iter().any(|l| l.shard_id == shard)
            || self.found_shards.lock().expect("found shards lock").contains(&shard);
        if known {
            return Ok(());
        }
        let others = self.registry.directory.others(self.registry.server_id);
        let mut answers: futures::stream::FuturesUnordered<_> = others.iter().map(|s| self.cluster_info(*s)).collect();
        let mut silent = Vec::new();
        // The first server that has it ends the search.
        while let Some(answer) = futures::StreamExt::next(&mut answers).await {
            match answer {
                Ok(info) => {
                    if info.shards.iter().any(|s| s.descriptor.as_ref().is_some_and(|d| d.shard_id == shard.0)) {
                        self.found_shards.lock().expect("found shards lock").insert(shard);
                        return Ok(());
                    }
                }
                Err(e) => silent.push(e),
            }
        }
        match silent.is_empty() {
            true => Err(Error::InvalidArgument(format!("no server hosts {shard}"))),
            false => Err(Error::Unavailable(format!("no server that answered hosts {shard}; {}", silent.join("; ")))),
        }
    }

    async fn channel(&self, addr: &str) -> Result<Channel, String> {
        if let Some(c) = self.channels.lock().expect("channels lock").get(addr) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(PEER_ATTEMPT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        self.channels.lock().expect("channels lock").insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Takes `count` ids from the id allocator (`Admin.AllocateIds` at
    /// the leader of the shard holding its mark); returns the first.
    pub async fn allocate_ids(&self, count: u64) -> Result<u64, String> {
        let shard = self.system_shard(meta::keys::ID_HIGH_WATER)?;
        let request = proto::AllocateIdsRequest { shard_id: shard.0, range_ver: 0, count };
        let secret = self.secret.clone();
        let answer = self
            .call_leader(shard, move |channel| {
                let mut admin = proto::admin_client::AdminClient::with_interceptor(channel, secret.clone());
                async move { admin.allocate_ids(request).await }
            })
            .await?;
        match answer.first {
            0 => Err("the allocator answered id 0".into()),
            first => Ok(first),
        }
    }

    /// The shard holding the system key `key`: as this server hosts it,
    /// else the static layout's first shard.
    fn system_shard(&self, key: &[u8]) -> Result<ShardId, String> {
        let hosted = self.registry.all().into_iter().map(|r| r.descriptor()).find(|d| d.contains(key));
        match hosted {
            Some(d) => Ok(d.shard_id),
            None => self
                .cluster
                .shards()
                .into_iter()
                .find(|l| l.start_key.is_empty())
                .map(|l| l.shard_id)
                .ok_or_else(|| "no shard holds the system keys".to_string()),
        }
    }

    /// Joins the server at `addr` to the cluster (`Peer.Join`, asked of
    /// this server): an id never given before (from the id allocator),
    /// recorded at the leader of the shard holding
    /// `meta::keys::JOINED_SERVERS`. Every join gets a new id, even at an
    /// address that joined before: a server that lost its data directory
    /// must not come back as the replicas (and Raft votes) it lost.
    pub async fn join(&self, addr: &str) -> Result<proto::JoinResponse, String> {
        let first = self.allocate_ids(1).await?;
        let server_id = self.registry.directory.joined_id(first).ok_or("the server id space is used up")?.0;
        let shard = self.system_shard(meta::keys::JOINED_SERVERS)?;
        let request = proto::RecordJoinedRequest { shard_id: shard.0, server_id, addr: addr.to_string() };
        let secret = self.secret.clone();
        let answer = self
            .call_leader(shard, move |channel| {
                let (mut peer, request) = (peers_client(channel, &secret), request.clone());
                async move { peer.record_joined(request).await }
            })
            .await?;
        let joined: std::collections::BTreeMap<u64, String> =
            answer.servers.iter().map(|s| (s.server_id, s.addr.clone())).collect();
        self.registry.directory.learn(&joined);
        Ok(answer)
    }

    /// The servers that joined at run time, as the leader of the shard
    /// holding their record has applied (`Peer.JoinedServers`).
    pub async fn joined_servers(&self) -> Result<std::collections::BTreeMap<u64, String>, String> {
        let shard = self.system_shard(meta::keys::JOINED_SERVERS)?;
        let secret = self.secret.clone();
        let answer = self
            .call_leader(shard, move |channel| {
                let mut peer = peers_client(channel, &secret);
                async move { peer.joined_servers(proto::JoinedServersRequest { shard_id: shard.0 }).await }
            })
            .await?;
        Ok(answer.servers.into_iter().map(|s| (s.server_id, s.addr)).collect())
    }

    /// The servers being decommissioned (`Admin.DrainingServers` at the
    /// leader of the shard holding `meta::keys::DRAINING_SERVERS`).
    pub async fn draining_servers(&self) -> Result<std::collections::BTreeSet<ServerId>, String> {
        let shard = self.system_shard(meta::keys::DRAINING_SERVERS)?;
        let answer = self
            .call_leader(shard, move |channel| {
                let mut admin = proto::admin_client::AdminClient::new(channel);
                async move {
                    admin.draining_servers(proto::DrainingServersRequest { shard_id: shard.0, range_ver: 0 }).await
                }
            })
            .await?;
        Ok(answer.server_ids.into_iter().map(ServerId).collect())
    }

    /// Reads the records of joined and of draining servers every
    /// `limits::JOINED_SERVERS_REFRESH` into the directory
    /// (`directory.rs`), until `stopped` is set.
    pub fn follow_servers(self: Arc<Self>, stopped: Arc<std::sync::atomic::AtomicBool>) {
        let runtime = self.runtime.clone();
        runtime.spawn(async move {
            let directory = &self.registry.directory;
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                match self.joined_servers().await {
                    Ok(joined) => {
                        for id in directory.learn(&joined) {
                            tracing::info!(server = %id, addr = ?directory.addr(id), "learned of a server that joined");
                        }
                    }
                    Err(e) => tracing::debug!("cannot read the joined servers: {e}"),
                }
                match self.draining_servers().await {
                    Ok(draining) => directory.set_draining(draining),
                    Err(e) => tracing::debug!("cannot read the draining servers: {e}"),
                }
                tokio::time::sleep(crate::limits::JOINED_SERVERS_REFRESH).await;
            }
        });
    }

    /// Calls `f` on the leader of `shard`, retrying until the deadline.
    async fn call_leader<T, F, Fut>(&self, shard: ShardId, f: F) -> Result<T, String>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        // Where the shard is: as this server hosts it (split or not), else
        // as the static layout put it; then every other server, since
        // splits and moves put shards where this server may not know (a
        // server with a replica answers NotLeader with the leader, one
        // without answers that it has none).
        let hosted = self
            .registry
            .get(shard)
            .map(|r| r.descriptor())
            .filter(|d| d.is_initialized())
            .map(|d| d.replicas.iter().map(|r| r.server_id).collect::<Vec<_>>());
        let mut replicas: Vec<ServerId> = hosted
            .or_else(|| {
                let layout = self.cluster.shards().into_iter().find(|l| l.shard_id == shard)?;
                Some(layout.replicas.iter().map(|(_, s)| *s).collect())
            })
            .unwrap_or_default();
        // (The others in a random order: a few servers that do not answer
        // must not eat every call's time before the rest are tried.)
        let mut others: Vec<ServerId> = self
            .registry
            .directory
            .servers()
            .into_iter()
            .map(|(server, _)| server)
            .filter(|server| !replicas.contains(server))
            .collect();
        rand::seq::SliceRandom::shuffle(others.as_mut_slice(), &mut rand::rng());
        replicas.extend(others);
        if replicas.is_empty() {
            return Err(format!("no server to ask for {shard}"));
        }
        let mut next = self.registry.get(shard).and_then(|r| r.progress().leader_server);
        let started = tokio::time::Instant::now();
        let mut retries = Retries::new(PEER_RETRY);
        let mut attempt = 0usize;
        let mut last: String;
        loop {
            let server = next.take().unwrap_or_else(|| replicas[attempt % replicas.len()]);
            attempt += 1;
            let failure = match self.registry.directory.peer_addr(server) {
                None => {
                    last = format!("no address for {server}");
                    Failure::Retryable
                }
                Some(addr) => match self.channel(&addr).await {
                    Err(e) => {
                        last = e;
                        Failure::Retryable
                    }
                    Ok(channel) => match tokio::time::timeout(PEER_ATTEMPT_TIMEOUT, f(channel)).await {
                        Ok(Ok(response)) => return Ok(response.into_inner()),
                        Ok(Err(status)) => {
                            if status.details().is_empty() {
                                self.channels.lock().expect("channels lock").remove(&addr);
                            }
                            last = status.message().to_string();
                            match proto::ErrorDetail::decode(status.details()) {
                                Ok(d) if d.kind == proto::ErrorKind::NotLeader as i32 => {
                                    next = (d.leader_server_id != 0).then_some(ServerId(d.leader_server_id));
                                    Failure::NotLeader { hinted: next.is_some() }
                                }
                                _ => Failure::Retryable,
                            }
                        }
                        Err(_) => {
                            last = format!("{addr}: timed out");
                            Failure::Retryable
                        }
                    },
                },
            };
            match retries.next(failure, started.elapsed(), rand::random_range(0.5..1.5)) {
                Next::Now => {}
                Next::Wait(d) => tokio::time::sleep(d).await,
                Next::GiveUp => return Err(last),
            }
        }
    }
}
