//! The SpanDB client: routes requests to shard leaders and retries what is
//! safe to retry.
//!
//! ```text
//!   client.put("apple", "red")
//!     │ routes: "apple" -> shard 2 (rv1 cv1), leader s3 at 127.0.0.1:7002
//!     v
//!   Kv.Write ──> s3 ── NotLeader{leader: s1} ──> note hint, resend to s1
//!                s1 ── ok, commit_ts ─────────> Ok(commit_ts)
//! ```
//!
//! Each server is reached over one gRPC channel ([`Transport`]), except a
//! server in the client's own process (the SQL gateway's): its services
//! are called directly, in the caller's task
//! ([`Client::connect_in_process`]).
//!
//! # What is retried
//!
//! Every attempt ends in one of: success; a failure that proves nothing was
//! applied (`NotLeader`, `WrongShard`, `Unavailable`, a refused
//! connection), which is retried with back-off until the deadline; or a
//! failure after which a write's fate is unknown (a lost connection, a
//! timeout, the server's `Ambiguous`). Reads are retried after those too;
//! writes are not: the caller gets [`Error::Ambiguous`] and decides (a put
//! of the same value is idempotent; an increment is not).
//!
//! # Reads
//!
//! [`ReadMode::Latest`] reads are linearizable, served by the leader.
//! [`ReadMode::At`] reads a snapshot at a timestamp, from any replica that
//! has applied that far (replicas are tried in rotation; the leader always
//! catches up). A scan over several shards is paged shard by shard; with
//! `Latest` each page is linearizable on its own, with `At` the whole scan
//! is one consistent snapshot.
//!
//! Which replica serves a lock-free read is the mode's choice (the leader
//! for `Now`, which it can serve without waiting for a closed timestamp;
//! any replica for `At` and `MaxStaleness`; the leader for a strong
//! read-only transaction's reads after its first, at its fresh
//! timestamp: [`ReplicaPreference::Leader`]), unless the caller says
//! [`ReplicaPreference::Follower`] ([`Client::get_from`],
//! [`ReadOnlyTxn::prefer`]): then the first attempt goes to a follower,
//! as Spanner reads from the nearest replica, which is seldom the leader.
//! Every replica gives the same answers; only the waiting differs.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), client::Error> {
//! let client = client::Client::connect(["127.0.0.1:7000"]).await?;
//! let ts = client.put(b"apple", b"red").await?;
//! assert_eq!(client.get(b"apple").await?, Some(b"red".to_vec()));
//! let then = client.get_with(b"apple", client::ReadMode::At(ts)).await?;
//! assert_eq!(then.value.map(|v| v.value), Some(b"red".to_vec()));
//! # Ok(()) }
//! ```

mod error;
pub mod membership;
pub mod routing;
pub mod txn;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::Endpoint;
use tower::ServiceExt as _;
pub use truetime::Timestamp;

use meta::retry::{Failure as RetryFailure, Next, Retries, RetryPolicy};
use meta::{ServerId, ShardId};

use crate::error::{classify, Failure};
pub use crate::error::{Error, Result};
use crate::routing::{Routes, Target};
pub use crate::txn::{CommitInfo, ReadOnlyTxn, Savepoint, Txn, TxnTimings};

/// Client tunables.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long one operation may take, retries included.
    pub deadline: Duration,
    /// First and largest pause between retries (jittered).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub connect_timeout: Duration,
    /// How long one attempt of a plain read may take before the next
    /// replica is tried (a paused or partitioned server must not hold a
    /// read for the whole deadline). Writes wait for their answer: giving
    /// up on one early would make it ambiguous.
    pub read_attempt_timeout: Duration,
    /// The cluster's peer secret, for the calls that change the cluster
    /// (splits, replica changes, draining, leadership transfers, id
    /// allocation); without it servers refuse them (`PermissionDenied`).
    pub peer_secret: Option<PeerSecret>,
}

/// The cluster's peer secret (`meta::ClusterSpec::peer_secret`), as a
/// client that may change the cluster holds it: the placement driver in
/// a server, or an operator's `spandb admin --cluster FILE`. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerSecret(Arc<str>);

impl PeerSecret {
    pub fn new(secret: &str) -> PeerSecret {
        PeerSecret(secret.into())
    }

    /// Adds the secret to a call (metadata `meta::cluster::PEER_SECRET_METADATA`).
    pub fn attach<T>(&self, request: &mut tonic::Request<T>) {
        if let Ok(value) = tonic::metadata::MetadataValue::try_from(&*self.0) {
            request.metadata_mut().insert(meta::cluster::PEER_SECRET_METADATA, value);
        }
    }
}

impl std::fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerSecret(..)")
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            deadline: Duration::from_secs(10),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            read_attempt_timeout: Duration::from_secs(2),
            peer_secret: None,
        }
    }
}

impl ClientConfig {
    /// The retry policy of every request (`meta::retry`).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            deadline: self.deadline,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            hints_max: LEADER_HINTS_FOLLOWED_MAX,
        }
    }
}

/// Leader hints a request follows in a row before it waits.
const LEADER_HINTS_FOLLOWED_MAX: u32 = 3;

/// Sleeps as the retry policy says after a failed attempt of a request
/// begun at `started`; true if it said to try again at once (a hint).
/// Past the deadline it returns at once: the loop gives up.
async fn pause(retries: &mut Retries, failure: RetryFailure, started: Instant) -> bool {
    match retries.next(failure, started.elapsed(), rand::random_range(0.5..1.5)) {
        Next::Now => true,
        Next::Wait(d) => {
            tokio::time::sleep(d).await;
            false
        }
        Next::GiveUp => false,
    }
}

/// Most pairs one scan page asks a server for.
const SCAN_PAGE_PAIRS: usize = 1_000;

/// How a read chooses its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// The latest value, linearizable (served by the leader).
    Latest,
    /// A snapshot at this timestamp (served by any replica that is fresh
    /// enough).
    At(Timestamp),
    /// A snapshot at `TT.now().latest` of the serving replica: sees every
    /// transaction that committed before the read began (external
    /// consistency). The response says which timestamp it was.
    Now,
    /// The freshest snapshot the serving replica has, if no older than
    /// this (bounded staleness); any replica, no waiting on the leader.
    MaxStaleness(Duration),
}

impl ReadMode {
    /// Latest reads need the leader; reads at now are fastest there (it
    /// can close a timestamp at once, a follower waits for the next one).
    fn prefers_leader(self) -> bool {
        matches!(self, ReadMode::Latest | ReadMode::Now)
    }

    /// How a read in this mode is routed, given the caller's preference.
    fn op(self, replica: ReplicaPreference) -> Op {
        let follower_first = replica == ReplicaPreference::Follower && self != ReadMode::Latest;
        let prefer_leader = (self.prefers_leader() || replica == ReplicaPreference::Leader) && !follower_first;
        Op::Read { prefer_leader, follower_first }
    }

    fn options(self) -> proto::ReadOptions {
        match self {
            ReadMode::Latest => proto::ReadOptions::default(),
            ReadMode::At(ts) => proto::ReadOptions { read_ts: ts.as_nanos(), ..Default::default() },
            ReadMode::Now => proto::ReadOptions { now: true, ..Default::default() },
            ReadMode::MaxStaleness(d) => proto::ReadOptions {
                max_staleness_ns: u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
                ..Default::default()
            },
        }
    }
}

/// Where a lock-free read goes first. Retries go on to any replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplicaPreference {
    /// The read mode's choice: the leader for `Latest` and `Now`, the
    /// replicas in rotation for `At` and `MaxStaleness`.
    #[default]
    Auto,
    /// A follower (the replicas in rotation, skipping the one the client
    /// believes leads; any replica while the leader is unknown). Takes
    /// read load off the leaders; a read at `Now` may wait there for the
    /// next closed timestamp. `Latest` ignores it: only a leader serves it.
    Follower,
    /// The leader, whatever the mode: for a read at a timestamp the
    /// caller knows is fresh (a strong read-only transaction's reads after
    /// its first), which a follower could serve only after the leader's
    /// next closed timestamp reached it, up to the closing interval later.
    Leader,
}

/// A value and the commit timestamp of the version it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub version_ts: Timestamp,
}

/// What a read returned, the timestamp it was served at, and the shard
/// that served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOutput {
    pub value: Option<Versioned>,
    pub read_ts: Timestamp,
    pub shard: ShardId,
}

/// What [`Client::scan_pinned`] read: the pairs, the timestamp its pages
/// were read at (if it fixed one), and the shards that served them.
pub(crate) struct ScanOutput {
    pub pairs: Vec<KeyValue>,
    pub read_ts: Option<Timestamp>,
    pub shards: Vec<ShardId>,
}

/// One key-value pair of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub version_ts: Timestamp,
}

/// A change in a [`Client::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

impl Mutation {
    fn key(&self) -> &[u8] {
        match self {
            Mutation::Put(k, _) | Mutation::Delete(k) => k,
        }
    }

    fn to_proto(&self) -> proto::Mutation {
        match self {
            Mutation::Put(k, v) => proto::Mutation { key: k.clone(), value: v.clone(), delete: false },
            Mutation::Delete(k) => proto::Mutation { key: k.clone(), value: Vec::new(), delete: true },
        }
    }
}

/// What a key must hold, when a conditional write is applied, for the
/// write to happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Absent,
    Value(Vec<u8>),
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionalWrite {
    /// False if a condition did not hold: nothing was written.
    pub applied: bool,
    /// When the conditions were checked (and the mutations applied).
    pub commit_ts: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// A plain read: retried anywhere, each attempt bounded.
    Read {
        prefer_leader: bool,
        /// The first attempt goes to a follower.
        follower_first: bool,
    },
    /// A read that takes a lock at the leader: may wait for the lock.
    LockingRead,
    /// A write: one whose fate is unknown is not retried (it may apply).
    Write,
    /// An id allocation, or another system write that may be repeated: a
    /// write, but one whose fate is unknown is retried (an allocation's
    /// ids, if taken, are skipped, never handed out twice; marking a
    /// server draining twice is marking it once).
    Allocate,
}

/// Where an operation goes: the shard holding a key, the shard holding the
/// keys just below one (a reverse scan's end), or a shard by id.
#[derive(Debug, Clone, Copy)]
enum Dest<'a> {
    Key(&'a [u8]),
    Before(&'a [u8]),
    Shard(ShardId),
}

/// The order a scan reads its range in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanOrder {
    /// Ascending key order, from the range's start.
    #[default]
    Forward,
    /// Descending key order, from the range's end down: the last `limit`
    /// pairs (`ORDER BY key DESC LIMIT n`).
    Reverse,
}

impl ScanOrder {
    /// Where a scan of `[start, end)` begins: at its start, or reverse, at
    /// its end (the cursor [`ScanOrder::page`] reads from).
    fn first_cursor(self, start: &[u8], end: &[u8]) -> Vec<u8> {
        match self {
            ScanOrder::Forward => start.to_vec(),
            ScanOrder::Reverse => end.to_vec(),
        }
    }

    /// The range a page read from `cursor` asks for (forward `[cursor,
    /// end)`, reverse `[start, cursor)`), and where it goes: the shard
    /// holding its first key, or the keys just below its end.
    fn page<'a>(self, cursor: &'a [u8], start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>, Dest<'a>) {
        match self {
            ScanOrder::Forward => (cursor.to_vec(), end.to_vec(), Dest::Key(cursor)),
            ScanOrder::Reverse => (start.to_vec(), cursor.to_vec(), Dest::Before(cursor)),
        }
    }
}

/// Where a scan of `[start, end)` in `order` goes on after a page from a
/// shard `[shard_start, shard_end)`: the page's resume key (forward, the
/// next page's start; reverse, its end), else the neighbouring shard's
/// edge if the range goes on there, else nowhere.
fn next_page(order: ScanOrder, resume_key: Vec<u8>, shard: (&[u8], &[u8]), range: (&[u8], &[u8])) -> Option<Vec<u8>> {
    if !resume_key.is_empty() {
        return Some(resume_key);
    }
    let ((shard_start, shard_end), (start, end)) = (shard, range);
    match order {
        ScanOrder::Forward if shard_end.is_empty() || (!end.is_empty() && shard_end >= end) => None,
        ScanOrder::Forward => Some(shard_end.to_vec()),
        ScanOrder::Reverse if shard_start <= start => None,
        ScanOrder::Reverse => Some(shard_start.to_vec()),
    }
}

/// A connection to a SpanDB cluster. Cheap to clone; clones share routes
/// and connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// How the client reaches one server: a gRPC channel over TCP, or a
/// server in the same process called directly ([`Transport::in_process`]),
/// its reads and transaction calls typed ([`Transport::with_kv`],
/// [`Transport::with_txn`]).
#[derive(Clone)]
pub struct Transport {
    service: BoxedService,
    /// The server's key-value service, for reads without encoding.
    kv: Option<Arc<dyn proto::kv_server::Kv>>,
    /// The server's transaction service, for its calls without encoding.
    txn: Option<Arc<dyn proto::txn_server::Txn>>,
}

/// What a call through a [`Transport`] answers.
type TypedResult<T> = std::result::Result<tonic::Response<T>, tonic::Status>;

/// Calls of a server's service, each typed when the transport holds that
/// service ([`Transport::with_kv`], [`Transport::with_txn`]), else encoded
/// through the transport's gRPC client: `name: field.method(Request) ->
/// Response, or Client;` (types from `proto`, the client from its
/// service's module).
macro_rules! typed_calls {
    ($($name:ident: $field:ident.$method:ident($req:ident) -> $resp:ident, or $client:ident;)*) => {$(
        pub(crate) async fn $name(self, request: proto::$req) -> TypedResult<proto::$resp> {
            match self.$field.clone() {
                Some(service) => service.$method(tonic::Request::new(request)).await,
                None => typed_calls!(@client $client, self).$method(request).await,
            }
        }
    )*};
    (@client KvClient, $channel:expr) => { proto::kv_client::KvClient::new($channel) };
    (@client TxnClient, $channel:expr) => { proto::txn_client::TxnClient::new($channel) };
}

type BoxedService =
    tower::util::BoxCloneSyncService<http::Request<Body>, http::Response<Body>, tonic::codegen::StdError>;

impl Transport {
    /// Calls go straight to `service` (a server's `tonic::service::Routes`
    /// in this process): each call runs the server's handler in the
    /// caller's task, with no connection, no HTTP/2 framing and no task
    /// switch. Requests and answers are still encoded as on the wire, so
    /// the server checks them as it checks any client's.
    pub fn in_process<S>(service: S) -> Transport
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<tonic::codegen::StdError>,
    {
        Transport { service: BoxedService::new(service.map_err(Into::into)), kv: None, txn: None }
    }

    /// Reads (Get and Scan) go to `kv`, the same server's key-value
    /// service, as typed requests: a point read is the SQL gateway's most
    /// frequent call, and encoding it, routing it by path and decoding it
    /// again cost about half as much as the read itself (select-only
    /// pgbench). The service
    /// checks the request as it checks any client's; only what bytes on
    /// a wire need is skipped.
    pub fn with_kv(mut self, kv: Arc<dyn proto::kv_server::Kv>) -> Transport {
        self.kv = Some(kv);
        self
    }

    /// Transaction calls (Read, Prepare, Commit, Abort, Heartbeat) go to `txn`, the
    /// same server's transaction service, as typed requests, as
    /// [`Transport::with_kv`] does for reads: a TPC-B transaction makes
    /// seven of them.
    pub fn with_txn(mut self, txn: Arc<dyn proto::txn_server::Txn>) -> Transport {
        self.txn = Some(txn);
        self
    }

    fn tcp(channel: tonic::transport::Channel) -> Transport {
        Transport { service: BoxedService::new(channel.map_err(Into::into)), kv: None, txn: None }
    }

    typed_calls! {
        kv_get: kv.get(GetRequest) -> GetResponse, or KvClient;
        kv_scan: kv.scan(ScanRequest) -> ScanResponse, or KvClient;
        txn_read: txn.read(TxnReadRequest) -> TxnReadResponse, or TxnClient;
        txn_prepare: txn.prepare(TxnPrepareRequest) -> TxnPrepareResponse, or TxnClient;
        txn_commit: txn.commit(TxnCommitRequest) -> TxnCommitResponse, or TxnClient;
        txn_heartbeat: txn.heartbeat(TxnHeartbeatRequest) -> TxnHeartbeatResponse, or TxnClient;
        txn_abort: txn.abort(TxnAbortRequest) -> TxnAbortResponse, or TxnClient;
    }
}

impl tower::Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = tonic::codegen::StdError;
    type Future = <BoxedService as tower::Service<http::Request<Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        self.service.call(request)
    }
}

struct Inner {
    config: ClientConfig,
    seeds: Vec<String>,
    routes: Mutex<Routes>,
    channels: Mutex<HashMap<String, Transport>>,
    /// A server in this process: its address, and the way to call it
    /// directly ([`Client::connect_in_process`]).
    local: Option<(String, Transport)>,
}

impl Client {
    /// Connects through any of `seeds` (host:port of servers) and loads the
    /// shard map.
    pub async fn connect<I, S>(seeds: I) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::connect_with(seeds, ClientConfig::default()).await
    }

    pub async fn connect_with<I, S>(seeds: I, config: ClientConfig) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::connect_in_process(seeds, config, None).await
    }

    /// Like [`Client::connect_with`], for a client in the same process as
    /// a server (the SQL gateway): calls to that server (`local.0`, its
    /// address as the cluster knows it) go through `local.1`
    /// ([`Transport::in_process`]). Everything else is as for any client:
    /// the same requests, checks and errors.
    pub async fn connect_in_process<I, S>(
        seeds: I,
        config: ClientConfig,
        local: Option<(String, Transport)>,
    ) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
        if seeds.is_empty() {
            return Err(Error::InvalidArgument("no server address given".into()));
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                seeds,
                routes: Mutex::new(Routes::default()),
                channels: Mutex::new(HashMap::new()),
                local,
            }),
        };
        client.refresh_routes().await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// `message` as a call that changes the cluster, carrying the peer
    /// secret if this client has one ([`ClientConfig::peer_secret`]).
    fn admin_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(secret) = &self.inner.config.peer_secret {
            secret.attach(&mut request);
        }
        request
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.inner.routes.lock().expect("routes lock")
    }

    async fn channel(&self, addr: &str) -> std::result::Result<Transport, String> {
        if let Some((_, local)) = self.inner.local.as_ref().filter(|(local, _)| local == addr) {
            // No connection to lose: never forgotten.
            return Ok(local.clone());
        }
        if let Some(c) = self.inner.channels.lock().expect("channels lock").get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad address {addr:?}: {e}"))?
            .connect_timeout(self.inner.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3));
        let channel = endpoint.connect().await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let transport = Transport::tcp(channel);
        self.inner.channels.lock().expect("channels lock").insert(addr.to_string(), transport.clone());
        Ok(transport)
    }

    fn forget_channel(&self, addr: &str) {
        self.inner.channels.lock().expect("channels lock").remove(addr);
    }

    /// Reloads the shard map from the servers that answer, asking one
    /// after another until the routes cover the whole key space: a server
    /// reports only the shards it holds, and with more servers than
    /// replicas (or after moves) none may hold them all.
    pub async fn refresh_routes(&self) -> Result<()> {
        self.refresh_routes_from(false).await
    }

    /// Like [`Client::refresh_routes`], asking every server (`all`), or
    /// stopping once the routes cover the key space.
    async fn refresh_routes_from(&self, all: bool) -> Result<()> {
        let mut candidates = self.routes().server_addrs();
        for s in &self.inner.seeds {
            if !candidates.contains(s) {
                candidates.push(s.clone());
            }
        }
        let mut errors = Vec::new();
        let mut answered = false;
        let mut next = 0;
        while let Some(addr) = candidates.get(next).cloned() {
            next += 1;
            match self.cluster_info_from(&addr).await {
                Ok(info) => {
                    let mut routes = self.routes();
                    routes.refresh(&info);
                    answered = true;
                    if !all && routes.covers_everything() {
                        break;
                    }
                    // Servers it told of: asked next, if not yet.
                    for s in routes.server_addrs() {
                        if !candidates.contains(&s) {
                            candidates.push(s);
                        }
                    }
                }
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        if answered {
            Ok(())
        } else {
            Err(Error::Connect(errors.join("; ")))
        }
    }

    /// What the server at `addr` knows: the servers, and its own shards
    /// with their leaders as it knows them.
    pub async fn cluster_info_from(&self, addr: &str) -> std::result::Result<proto::ClusterInfoResponse, String> {
        let channel = self.channel(addr).await?;
        let mut admin = proto::admin_client::AdminClient::new(channel);
        match tokio::time::timeout(self.inner.config.connect_timeout, admin.cluster_info(proto::ClusterInfoRequest {}))
            .await
        {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => {
                self.forget_channel(addr);
                Err(status.message().to_string())
            }
            Err(_) => Err("timed out".into()),
        }
    }

    /// The one shard holding all of `[start, end)` (empty `end`: to the
    /// end of the key space) by the cached routes, if one does: a lookup,
    /// where [`Client::shards_covering`] lists every shard.
    pub fn shard_spanning(&self, start: &[u8], end: &[u8]) -> Option<ShardId> {
        self.routes().shard_spanning(start, end)
    }

    /// The shards (as this client knows them) whose ranges overlap
    /// `[start, end)` (empty `end`: unbounded), in key order, with the
    /// server believed to lead each.
    pub fn shards_covering(&self, start: &[u8], end: &[u8]) -> Vec<(proto::ShardDescriptor, Option<ServerId>)> {
        let routes = self.routes();
        let mut out: Vec<(proto::ShardDescriptor, Option<ServerId>)> = routes
            .shards()
            .filter(|r| {
                let d = &r.descriptor;
                let starts_before_end = end.is_empty() || d.start_key.as_slice() < end;
                let ends_after_start = d.end_key.is_empty() || d.end_key.as_slice() > start;
                starts_before_end && ends_after_start
            })
            .map(|r| (r.descriptor.clone(), r.leader))
            .collect();
        out.sort_by(|a, b| a.0.start_key.cmp(&b.0.start_key));
        out
    }

    /// The cluster's layout and leaders, as one server sees them.
    pub async fn cluster_info(&self) -> Result<proto::ClusterInfoResponse> {
        let mut errors = Vec::new();
        // Copy the addresses first: the routes lock must not be held across
        // network calls.
        let addrs: Vec<String> = self.routes().server_addrs();
        for addr in addrs.into_iter().chain(self.inner.seeds.iter().cloned()) {
            match self.cluster_info_from(&addr).await {
                Ok(info) => return Ok(info),
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        Err(Error::Connect(errors.join("; ")))
    }

    /// One server's view of its replicas.
    pub async fn server_status(&self, addr: &str) -> Result<proto::ServerStatusResponse> {
        let channel = self.channel(addr).await.map_err(Error::Connect)?;
        let mut admin = proto::admin_client::AdminClient::new(channel);
        match tokio::time::timeout(
            self.inner.config.connect_timeout,
            admin.server_status(proto::ServerStatusRequest {}),
        )
        .await
        {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => {
                self.forget_channel(addr);
                Err(Error::Connect(format!("{addr}: {}", status.message())))
            }
            Err(_) => Err(Error::Connect(format!("{addr}: timed out"))),
        }
    }

    /// Runs one operation on the shard holding `key`, retrying what is safe
    /// to retry (module docs) until the deadline.
    async fn execute<T, F, Fut>(&self, dest: Dest<'_>, op: Op, mut attempt: F) -> Result<T>
    where
        F: FnMut(Transport, Target) -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let config = &self.inner.config;
        let started = Instant::now();
        let deadline = started + config.deadline;
        let mut retries = Retries::new(config.retry_policy());
        let mut last_error = String::from("no attempt made");
        let mut attempts = 0u32;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Unavailable(format!(
                    "gave up after {:?}; last error: {last_error}",
                    config.deadline
                )));
            }
            let prefer_leader = !matches!(op, Op::Read { prefer_leader: false, .. });
            let follower_first = matches!(op, Op::Read { follower_first: true, .. });
            let target = match dest {
                _ if follower_first && attempts == 0 => self.follower_target(dest),
                Dest::Key(key) => self.routes().target(key, prefer_leader),
                Dest::Before(end) => self.routes().target_before(end, prefer_leader),
                Dest::Shard(shard) => self.routes().target_shard(shard, prefer_leader),
            };
            attempts += 1;
            let Some(target) = target else {
                last_error = "no route for the key".into();
                let _ = self.refresh_routes().await;
                pause(&mut retries, RetryFailure::Retryable, started).await;
                continue;
            };
            let channel = match self.channel(&target.addr).await {
                Ok(c) => c,
                Err(e) => {
                    // Never connected: nothing was sent.
                    last_error = e;
                    self.routes().note_failure(target.shard_id, target.server_id);
                    pause(&mut retries, RetryFailure::Retryable, started).await;
                    continue;
                }
            };
            let attempt_deadline = match op {
                Op::Read { .. } => (deadline - now).min(config.read_attempt_timeout),
                Op::LockingRead | Op::Write | Op::Allocate => deadline - now,
            };
            let failure = match tokio::time::timeout(attempt_deadline, attempt(channel, target.clone())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(status)) => {
                    let failure = classify(&status);
                    if status_has_no_detail(&status) {
                        self.forget_channel(&target.addr);
                    }
                    failure
                }
                Err(_) => Failure::Ambiguous(format!("no answer from {} within the deadline", target.addr)),
            };
            match failure {
                Failure::NotLeader { leader } => {
                    last_error = format!("{} is not the leader of shard {}", target.addr, target.shard_id);
                    let hinted = leader.is_some();
                    self.routes().note_leader(target.shard_id, leader);
                    if !pause(&mut retries, RetryFailure::NotLeader { hinted }, started).await {
                        // Waiting, not following a hint: try another replica.
                        self.routes().note_failure(target.shard_id, target.server_id);
                    }
                }
                Failure::WrongShard { message, descriptors } => {
                    last_error = message;
                    // The server's descriptors if they move the cache
                    // forward; else the whole map again, from every server
                    // (the route names a server the shard left: others
                    // know where it went), and not that server first.
                    if self.routes().update(descriptors) == 0 {
                        self.routes().note_failure(target.shard_id, target.server_id);
                        let _ = self.refresh_routes_from(true).await;
                    }
                    pause(&mut retries, RetryFailure::Retryable, started).await;
                }
                Failure::Unavailable(msg) => {
                    last_error = format!("{}: {msg}", target.addr);
                    self.routes().note_failure(target.shard_id, target.server_id);
                    pause(&mut retries, RetryFailure::Retryable, started).await;
                }
                Failure::Ambiguous(msg) => {
                    if op == Op::Write {
                        // Say how the deadline was spent: one request
                        // that went unanswered, or retries that left the
                        // last one little time.
                        let history = match attempts {
                            1 => String::new(),
                            n => format!(
                                " (attempt {n}, {:.1?} after the first; before it: {last_error})",
                                started.elapsed()
                            ),
                        };
                        return Err(Error::Ambiguous(format!("{}: {msg}{history}", target.addr)));
                    }
                    last_error = format!("{}: {msg}", target.addr);
                    self.routes().note_failure(target.shard_id, target.server_id);
                    pause(&mut retries, RetryFailure::Retryable, started).await;
                }
                Failure::Permanent(e) => return Err(e),
            }
        }
    }

    /// A follower of the shard of `dest`: the replicas in rotation,
    /// skipping the believed leader (any replica while it is unknown).
    fn follower_target(&self, dest: Dest<'_>) -> Option<Target> {
        let mut routes = self.routes();
        let route = routes.shards().find(|r| match dest {
            Dest::Key(key) => {
                let d = &r.descriptor;
                d.start_key.as_slice() <= key && (d.end_key.is_empty() || key < d.end_key.as_slice())
            }
            Dest::Before(end) => routing::holds_below(&r.descriptor, end),
            Dest::Shard(shard) => r.shard_id() == shard,
        })?;
        let (leader, replicas) = (route.leader, route.descriptor.replicas.len());
        let mut next = || match dest {
            Dest::Key(key) => routes.target(key, false),
            Dest::Before(end) => routes.target_before(end, false),
            Dest::Shard(shard) => routes.target_shard(shard, false),
        };
        let mut target = next()?;
        for _ in 1..replicas {
            if Some(target.server_id) != leader {
                break;
            }
            target = next()?;
        }
        Some(target)
    }

    /// The latest value of `key` (linearizable).
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get_with(key, ReadMode::Latest).await?.value.map(|v| v.value))
    }

    /// Reads `key` as `mode` says.
    pub async fn get_with(&self, key: &[u8], mode: ReadMode) -> Result<GetOutput> {
        self.get_from(key, mode, ReplicaPreference::Auto).await
    }

    /// Reads `key` as `mode` says, sending the first attempt where
    /// `replica` prefers (module docs, "Reads").
    pub async fn get_from(&self, key: &[u8], mode: ReadMode, replica: ReplicaPreference) -> Result<GetOutput> {
        let op = mode.op(replica);
        let mut shard = ShardId(0);
        let result = self
            .execute(Dest::Key(key), op, |channel, target| {
                shard = target.shard_id;
                let request = proto::GetRequest {
                    shard_id: target.shard_id.0,
                    range_ver: target.range_ver.0,
                    key: key.to_vec(),
                    read_ts: 0,
                    options: Some(mode.options()),
                };
                channel.kv_get(request)
            })
            .await;
        let response = with_read_ts(result, mode)?.into_inner();
        Ok(GetOutput {
            value: response
                .found
                .then(|| Versioned { value: response.value, version_ts: Timestamp::from_nanos(response.version_ts) }),
            read_ts: Timestamp::from_nanos(response.read_ts),
            shard,
        })
    }

    /// Sets `key` to `value`; returns the commit timestamp.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<Timestamp> {
        self.write(&[Mutation::Put(key.to_vec(), value.to_vec())]).await
    }

    /// Deletes `key` (deleting a missing key succeeds); returns the commit
    /// timestamp.
    pub async fn delete(&self, key: &[u8]) -> Result<Timestamp> {
        self.write(&[Mutation::Delete(key.to_vec())]).await
    }

    /// Applies mutations atomically at one timestamp. All keys must be in
    /// one shard (atomic writes across shards need a transaction).
    pub async fn write(&self, mutations: &[Mutation]) -> Result<Timestamp> {
        Ok(self.write_if(&[], mutations).await?.commit_ts)
    }

    /// Applies `mutations` atomically if every condition holds when the
    /// write is applied (checked in log order on the shard, so concurrent
    /// writers cannot slip in between). All keys in one shard.
    pub async fn write_if(&self, conditions: &[(Vec<u8>, Expect)], mutations: &[Mutation]) -> Result<ConditionalWrite> {
        let Some(first) = mutations.first() else {
            return Err(Error::InvalidArgument("a write needs at least one mutation".into()));
        };
        {
            let mut routes = self.routes();
            let shard = routes.target(first.key(), true).map(|t| t.shard_id);
            let keys = mutations.iter().map(Mutation::key).chain(conditions.iter().map(|(k, _)| k.as_slice()));
            if keys.into_iter().any(|k| routes.target(k, true).map(|t| t.shard_id) != shard) {
                return Err(Error::InvalidArgument(
                    "the keys of one write span several shards; use a transaction".into(),
                ));
            }
        }
        let proto_mutations: Vec<proto::Mutation> = mutations.iter().map(Mutation::to_proto).collect();
        let proto_conditions: Vec<proto::Condition> = conditions
            .iter()
            .map(|(key, expect)| match expect {
                Expect::Absent => proto::Condition { key: key.clone(), expected: Vec::new(), expect_absent: true },
                Expect::Value(v) => proto::Condition { key: key.clone(), expected: v.clone(), expect_absent: false },
            })
            .collect();
        let response = self
            .execute(Dest::Key(first.key()), Op::Write, |channel, target| {
                let request = proto::WriteRequest {
                    shard_id: target.shard_id.0,
                    range_ver: target.range_ver.0,
                    mutations: proto_mutations.clone(),
                    conditions: proto_conditions.clone(),
                };
                async move { proto::kv_client::KvClient::new(channel).write(request).await }
            })
            .await?
            .into_inner();
        Ok(ConditionalWrite { applied: response.applied, commit_ts: Timestamp::from_nanos(response.commit_ts) })
    }

    /// Splits the shard holding `key` at `key` (`Admin.SplitShard`): the
    /// keys from `key` on move to a new shard (ids from the allocator)
    /// with a replica beside each of the shard's. Returns the two halves,
    /// which the client's routes take in. Refused, changing nothing, if
    /// `key` is a shard's first key, or a prepared transaction holds keys
    /// that would move (try again once it ends).
    pub async fn split_at(&self, key: &[u8]) -> Result<(proto::ShardDescriptor, proto::ShardDescriptor)> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("the empty key begins the first shard; it cannot split there".into()));
        }
        let response = self
            .execute(Dest::Key(key), Op::Write, |channel, target| {
                let request = proto::SplitShardRequest {
                    shard_id: target.shard_id.0,
                    range_ver: target.range_ver.0,
                    split_key: key.to_vec(),
                };
                let request = self.admin_request(request);
                async move { proto::admin_client::AdminClient::new(channel).split_shard(request).await }
            })
            .await?
            .into_inner();
        let (Some(left), Some(right)) = (response.left, response.right) else {
            return Err(Error::Unavailable("a server answered a split without its halves".into()));
        };
        self.routes().update([left.clone(), right.clone()]);
        Ok((left, right))
    }

    /// Takes `count` consecutive ids (for shards and replicas) that no one
    /// was given before and no one will be given again
    /// (`Admin.AllocateIds`). An allocation whose answer is lost leaves
    /// its ids unused; they are never handed out.
    pub async fn allocate_ids(&self, count: u64) -> Result<std::ops::RangeInclusive<u64>> {
        let key = meta::keys::ID_HIGH_WATER;
        let response = self
            .execute(Dest::Key(key), Op::Allocate, |channel, target| {
                let request =
                    proto::AllocateIdsRequest { shard_id: target.shard_id.0, range_ver: target.range_ver.0, count };
                let request = self.admin_request(request);
                async move { proto::admin_client::AdminClient::new(channel).allocate_ids(request).await }
            })
            .await?
            .into_inner();
        if response.count != count || response.first == 0 {
            return Err(Error::Unavailable(format!(
                "a server answered an allocation of {count} ids with {response:?}"
            )));
        }
        Ok(response.first..=response.first + (count - 1))
    }

    /// Sets `key` to `new` (`None`: deletes it) if its value is `expected`
    /// (`None`: absent). Returns whether it was set.
    pub async fn compare_and_set(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<ConditionalWrite> {
        let expect = match expected {
            None => Expect::Absent,
            Some(v) => Expect::Value(v.to_vec()),
        };
        let mutation = match new {
            None => Mutation::Delete(key.to_vec()),
            Some(v) => Mutation::Put(key.to_vec(), v.to_vec()),
        };
        self.write_if(&[(key.to_vec(), expect)], &[mutation]).await
    }

    /// Live pairs with keys in `[start, end)` (an empty `end`: to the end
    /// of the key space), in key order, at most `limit`.
    pub async fn scan(&self, start: &[u8], end: &[u8], limit: usize, mode: ReadMode) -> Result<Vec<KeyValue>> {
        let range = (start, end, ScanOrder::Forward);
        Ok(self.scan_pinned(range, limit, (mode, false), ReplicaPreference::Auto).await?.pairs)
    }

    /// Like [`Client::scan`], in descending key order: the last `limit`
    /// pairs of `[start, end)`, last first.
    pub async fn scan_reverse(&self, start: &[u8], end: &[u8], limit: usize, mode: ReadMode) -> Result<Vec<KeyValue>> {
        let range = (start, end, ScanOrder::Reverse);
        Ok(self.scan_pinned(range, limit, (mode, false), ReplicaPreference::Auto).await?.pairs)
    }

    /// Like [`Client::scan`] over `[start, end)` in an order, each page's
    /// first attempt where `replica` prefers, also returning the timestamp
    /// the pages were read at (`None` for `Latest`, unless `pin`). A
    /// `Now` or bounded-staleness scan reads its first page so, and every
    /// later page at that page's timestamp: one consistent snapshot across
    /// shards. A `Latest` scan reads each page at its shard's latest state,
    /// or, with `pin` (a single-shard read-only transaction's first read),
    /// the first so and the rest at its timestamp. Says which shards
    /// served the pages.
    pub(crate) async fn scan_pinned(
        &self,
        (start, end, order): (&[u8], &[u8], ScanOrder),
        limit: usize,
        (mut mode, pin): (ReadMode, bool),
        replica: ReplicaPreference,
    ) -> Result<ScanOutput> {
        if !end.is_empty() && end <= start {
            return Err(Error::InvalidArgument("scan end must be after start".into()));
        }
        let op = mode.op(replica);
        let mut out = Vec::new();
        // The part of the range still to read: forward, from `cursor` to
        // `end`; reverse, from `start` to `cursor`.
        let mut cursor = order.first_cursor(start, end);
        let mut read_ts = None;
        let mut shards = Vec::new();
        while out.len() < limit {
            let page_limit = (limit - out.len()).min(SCAN_PAGE_PAIRS) as u32;
            let (from, to, dest) = order.page(&cursor, start, end);
            let mut shard = (ShardId(0), Vec::new(), Vec::new());
            let result = self
                .execute(dest, op, |channel, target| {
                    shard = (target.shard_id, target.shard_start.clone(), target.shard_end.clone());
                    let request = proto::ScanRequest {
                        shard_id: target.shard_id.0,
                        range_ver: target.range_ver.0,
                        start_key: from.clone(),
                        end_key: to.clone(),
                        limit: page_limit,
                        read_ts: 0,
                        options: Some(mode.options()),
                        reverse: order == ScanOrder::Reverse,
                    };
                    channel.kv_scan(request)
                })
                .await;
            let page = with_read_ts(result, mode)?.into_inner();
            if pin || !matches!(mode, ReadMode::Latest) {
                let ts = Timestamp::from_nanos(page.read_ts);
                read_ts = Some(ts);
                mode = ReadMode::At(ts);
            }
            out.extend(page.pairs.into_iter().map(|kv| KeyValue {
                key: kv.key,
                value: kv.value,
                version_ts: Timestamp::from_nanos(kv.version_ts),
            }));
            if !shards.contains(&shard.0) {
                shards.push(shard.0);
            }
            match next_page(order, page.resume_key, (&shard.1, &shard.2), (start, end)) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        out.truncate(limit);
        Ok(ScanOutput { pairs: out, read_ts, shards })
    }
}

fn status_has_no_detail(status: &tonic::Status) -> bool {
    status.details().is_empty()
}

/// Fills in the read timestamp of a `SnapshotTooOld` (the server reports
/// only the watermark).
fn with_read_ts<T>(result: Result<T>, mode: ReadMode) -> Result<T> {
    match (result, mode) {
        (Err(Error::SnapshotTooOld { watermark, .. }), ReadMode::At(read_ts)) => {
            Err(Error::SnapshotTooOld { read_ts, watermark })
        }
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client over a made-up cluster: 3 servers, one shard `["", "m")`
    /// led by server 2, one shard `["m", "")` with no known leader. Nothing
    /// is connected.
    fn client() -> Client {
        let info = crate::routing::tests::info();
        Client {
            inner: Arc::new(Inner {
                config: ClientConfig::default(),
                seeds: vec!["h:1".into()],
                routes: Mutex::new(Routes::from_cluster_info(&info)),
                channels: Mutex::new(HashMap::new()),
                local: None,
            }),
        }
    }

    /// Goal: a read that prefers a follower never starts at the believed
    /// leader, spreads over the followers, and uses any replica while the
    /// leader is unknown.
    /// Method: pick many first targets for a key of each shard.
    #[test]
    fn follower_reads_skip_the_leader() {
        let c = client();
        let picks = |dest: Dest<'_>| -> Vec<ServerId> {
            (0..6).map(|_| c.follower_target(dest).expect("a route").server_id).collect()
        };
        let led = picks(Dest::Key(b"apple"));
        assert!(!led.contains(&ServerId(2)), "the leader, server 2, was picked: {led:?}");
        assert!(led.contains(&ServerId(1)) && led.contains(&ServerId(3)), "{led:?}");
        assert_eq!(picks(Dest::Shard(ShardId(1))).iter().filter(|&&s| s == ServerId(2)).count(), 0);
        let unled = picks(Dest::Key(b"zebra"));
        assert_eq!(unled.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "{unled:?}");
    }

    /// Goal: the preference changes the first attempt only where it can:
    /// a `Latest` read stays at the leader.
    #[test]
    fn latest_reads_ignore_the_follower_preference() {
        let follower = ReplicaPreference::Follower;
        assert_eq!(ReadMode::Latest.op(follower), Op::Read { prefer_leader: true, follower_first: false });
        assert_eq!(ReadMode::Now.op(follower), Op::Read { prefer_leader: false, follower_first: true });
        assert_eq!(ReadMode::Now.op(ReplicaPreference::Auto), Op::Read { prefer_leader: true, follower_first: false });
        let at = ReadMode::At(Timestamp::from_nanos(1));
        assert_eq!(at.op(ReplicaPreference::Auto), Op::Read { prefer_leader: false, follower_first: false });
        assert_eq!(at.op(ReplicaPreference::Leader), Op::Read { prefer_leader: true, follower_first: false });
        let stale = ReadMode::MaxStaleness(Duration::from_secs(1));
        assert_eq!(stale.op(ReplicaPreference::Auto), Op::Read { prefer_leader: false, follower_first: false });
    }
}
