//! Server-to-server requests of the commit protocol, on the `Peer` service
//! (every call carries the cluster's peer secret, `auth.rs`).
//!
//! ```text
//!   participant leader ──Peer.Resolve(txn, me)──> coordinator shard's leader
//!        (prepared, heard nothing)                 answers what the recorded
//!                                                  decision means for me, or
//!                                                  decides abort durably
//!   coordinator leader ──Peer.Decide(txn, outcome)──> each participant's leader
//!        (after commit-wait)                          answers once applied: an
//!                                                     acknowledgement
//! ```
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

use std::collections::{BTreeMap, HashMap};
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
use crate::commit_wait::CommitWaiter;
use crate::inbox::{LoopHandle, LoopMsg};
use crate::registry::Registry;
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
    addrs: BTreeMap<ServerId, String>,
    registry: Arc<Registry>,
    event_loop: LoopHandle,
    commit_waiter: CommitWaiter,
    runtime: tokio::runtime::Handle,
    secret: PeerSecret,
    channels: Mutex<HashMap<String, Channel>>,
}

/// A `Peer` client whose calls carry the peer secret.
pub type PeerClient = proto::peer_client::PeerClient<InterceptedService<Channel, PeerSecret>>;

fn peers_client(channel: Channel, secret: &PeerSecret) -> PeerClient {
    proto::peer_client::PeerClient::with_interceptor(channel, secret.clone())
}

impl Peers {
    pub fn new(
        cluster: ClusterSpec,
        peer_addrs: &BTreeMap<ServerId, String>,
        registry: Arc<Registry>,
        event_loop: LoopHandle,
        commit_waiter: CommitWaiter,
        runtime: tokio::runtime::Handle,
        secret: PeerSecret,
    ) -> Arc<Peers> {
        let addrs = cluster
            .servers
            .iter()
            .map(|s| (s.id, peer_addrs.get(&s.id).cloned().unwrap_or_else(|| s.addr.clone())))
            .collect();
        Arc::new(Peers {
            cluster,
            addrs,
            registry,
            event_loop,
            commit_waiter,
            runtime,
            secret,
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// Makes one of the event loop's [`PeerCall`]s over gRPC, on the
    /// runtime; returns at once.
    pub fn call(self: &Arc<Self>, call: PeerCall) {
        match call {
            PeerCall::Resolve { participant, txn, coordinator } => self.resolve(participant, txn, coordinator),
            PeerCall::Decide { coordinator, txn, participants, outcome } => {
                self.decide(coordinator, txn, participants, outcome)
            }
        }
    }

    /// Asks `coordinator` how `txn` ended; feeds the answer to `participant`.
    fn resolve(self: &Arc<Self>, participant: ShardId, txn: TxnId, coordinator: ShardId) {
        let peers = self.clone();
        self.runtime.spawn(async move {
            let request = proto::TxnResolveRequest {
                txn_id: txn_id_bytes(txn),
                shard_id: coordinator.0,
                participant_shard_id: participant.0,
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

    /// Tells each participant how `txn` ended, after commit-wait; feeds
    /// `Acknowledged` to the coordinator for each that applied it.
    fn decide(self: &Arc<Self>, coordinator: ShardId, txn: TxnId, participants: Vec<ShardId>, outcome: Outcome) {
        let peers = self.clone();
        self.runtime.spawn(async move {
            let (wire, commit_ts) = match outcome {
                Outcome::Committed(ts) => {
                    peers.commit_waiter.wait(ts).await;
                    (proto::TxnOutcome::Committed, ts.as_nanos())
                }
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
                    let secret = peers.secret.clone();
                    let sent = peers
                        .call_leader(shard, move |channel| {
                            let mut c = peers_client(channel, &secret);
                            let request = request.clone();
                            async move { c.decide(request).await }
                        })
                        .await;
                    match sent {
                        Ok(_) => {
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

    /// The other servers of the cluster.
    pub fn others(&self, me: ServerId) -> Vec<ServerId> {
        self.addrs.keys().copied().filter(|s| *s != me).collect()
    }

    /// A `Peer` client of `server` (its connection is cached).
    pub async fn client(&self, server: ServerId) -> Result<PeerClient, String> {
        let addr = self.addrs.get(&server).ok_or_else(|| format!("no server {server} in the cluster"))?;
        let channel = self.channel(addr).await?;
        Ok(proto::peer_client::PeerClient::with_interceptor(channel, self.secret.clone()))
    }

    /// What `server` knows of the cluster and its own shards
    /// (`Admin.ClusterInfo`).
    pub async fn cluster_info(&self, server: ServerId) -> Result<proto::ClusterInfoResponse, String> {
        let addr = self.addrs.get(&server).ok_or_else(|| format!("no server {server} in the cluster"))?;
        let mut admin = proto::admin_client::AdminClient::new(self.channel(addr).await?);
        match tokio::time::timeout(PEER_ATTEMPT_TIMEOUT, admin.cluster_info(proto::ClusterInfoRequest {})).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(format!("{addr}: {}", status.message())),
            Err(_) => Err(format!("{addr}: no answer within {PEER_ATTEMPT_TIMEOUT:?}")),
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
        let key = meta::keys::ID_HIGH_WATER;
        let hosted = self.registry.all().into_iter().map(|r| r.descriptor()).find(|d| d.contains(key));
        let shard = match hosted {
            Some(d) => d.shard_id,
            None => self
                .cluster
                .shards()
                .into_iter()
                .find(|l| l.start_key.is_empty())
                .map(|l| l.shard_id)
                .ok_or("no shard holds the id allocator")?,
        };
        let request = proto::AllocateIdsRequest { shard_id: shard.0, range_ver: 0, count };
        let answer = self
            .call_leader(shard, move |channel| {
                let mut admin = proto::admin_client::AdminClient::new(channel);
                async move { admin.allocate_ids(request).await }
            })
            .await?;
        match answer.first {
            0 => Err("the allocator answered id 0".into()),
            first => Ok(first),
        }
    }

    /// Calls `f` on the leader of `shard`, retrying until the deadline.
    async fn call_leader<T, F, Fut>(&self, shard: ShardId, f: F) -> Result<T, String>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        // Where the shard is: as this server hosts it (split or not), else
        // as the static layout put it.
        let hosted = self
            .registry
            .get(shard)
            .map(|r| r.descriptor())
            .filter(|d| d.is_initialized())
            .map(|d| d.replicas.iter().map(|r| r.server_id).collect::<Vec<_>>());
        let replicas: Vec<ServerId> = hosted
            .or_else(|| {
                let layout = self.cluster.shards().into_iter().find(|l| l.shard_id == shard)?;
                Some(layout.replicas.iter().map(|(_, s)| *s).collect())
            })
            .filter(|servers: &Vec<ServerId>| !servers.is_empty())
            .ok_or_else(|| format!("no shard {shard} known here"))?;
        let mut next = self.registry.get(shard).and_then(|r| r.progress().leader_server);
        let started = tokio::time::Instant::now();
        let mut retries = Retries::new(PEER_RETRY);
        let mut attempt = 0usize;
        let mut last: String;
        loop {
            let server = next.take().unwrap_or_else(|| replicas[attempt % replicas.len()]);
            attempt += 1;
            let failure = match self.addrs.get(&server) {
                None => {
                    last = format!("no address for {server}");
                    Failure::Retryable
                }
                Some(addr) => match self.channel(addr).await {
                    Err(e) => {
                        last = e;
                        Failure::Retryable
                    }
                    Ok(channel) => match tokio::time::timeout(PEER_ATTEMPT_TIMEOUT, f(channel)).await {
                        Ok(Ok(response)) => return Ok(response.into_inner()),
                        Ok(Err(status)) => {
                            if status.details().is_empty() {
                                self.channels.lock().expect("channels lock").remove(addr);
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
