//! In-process clusters of real spanservers over the simulated network.
//!
//! Every server is the production code: RocksDB in its own temporary
//! directory, the event loop thread, the gRPC data service on a loopback
//! port. Only Raft traffic is diverted through [`SimNetwork`], so tests can
//! partition, delay and drop it. Clients connect over gRPC as users do.
//!
//! A crash drops the server (its loop stops, its port closes) and a restart
//! opens the same data directory on the same port. While the cluster runs, a
//! sampler checks an invariant of Raft every few milliseconds: **at most one
//! leader per shard per term**; [`TestCluster::shutdown`] fails the test if
//! it ever broke.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use meta::{ClusterSpec, ReplicaId, ServerId, ServerSpec, ShardId};
use spanserver::config::{
    AdminConfig, GcConfig, PlacementConfig, RaftConfig, ResolvedConfig, SplitConfig, TimeConfig, UnsafeTestingConfig,
};
use spanserver::registry::{Registry, ReplicaProgress, Role};
use spanserver::{Server, TransportKind};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::sim::SimNetwork;
use crate::wait::wait_until;

/// How a test cluster is laid out and tuned.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub servers: usize,
    pub replication: usize,
    pub split_points: Vec<String>,
    pub raft: RaftConfig,
    pub gc: GcConfig,
    /// The GC settings of particular servers, by id (the rest use `gc`).
    pub gc_by_server: BTreeMap<u64, GcConfig>,
    pub split: SplitConfig,
    /// The placement driver beside each server (off unless a test turns
    /// it on: most tests place replicas themselves).
    pub placement: PlacementConfig,
    pub time: TimeConfig,
    /// Deliberate bugs, to show that checks can fail.
    pub unsafe_testing: UnsafeTestingConfig,
    /// Serve the admin API's operator tools (on unless a test checks that
    /// they can be off).
    pub admin_tools: bool,
    pub seed: u64,
}

impl ClusterOptions {
    /// `servers` servers, replication `min(3, servers)`, one shard, and
    /// timing fast enough for tests yet calm on a loaded 2-core machine.
    pub fn new(servers: usize) -> Self {
        ClusterOptions {
            servers,
            replication: servers.min(3),
            split_points: Vec::new(),
            raft: RaftConfig {
                tick_ms: 50,
                election_ticks: 10,
                heartbeat_ticks: 1,
                log_compact_entries: 10_000,
                log_retain_entries: 1_000,
                close_timestamp_ms: 100,
                ..RaftConfig::default()
            },
            gc: GcConfig::default(),
            gc_by_server: BTreeMap::new(),
            split: SplitConfig::default(),
            placement: PlacementConfig { enabled: false, ..PlacementConfig::default() },
            time: TimeConfig::default(),
            unsafe_testing: UnsafeTestingConfig::default(),
            admin_tools: true,
            seed: 1,
        }
    }

    pub fn replication(mut self, r: usize) -> Self {
        self.replication = r;
        self
    }

    pub fn split_points(mut self, points: &[&str]) -> Self {
        self.split_points = points.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

struct Member {
    spec: ServerSpec,
    dir: std::path::PathBuf,
    server: Option<Server>,
    /// The placement driver beside the server, while it runs.
    driver: Option<JoinHandle<()>>,
    clock: Arc<truetime::SystemClock>,
}

/// Observed leaders: (shard, term) -> replica, and any violation seen.
#[derive(Default)]
struct LeaderLog {
    leaders: BTreeMap<(ShardId, u64), ReplicaId>,
    violations: Vec<String>,
}

pub struct TestCluster {
    pub options: ClusterOptions,
    pub spec: ClusterSpec,
    pub net: SimNetwork,
    _dir: tempfile::TempDir,
    members: BTreeMap<ServerId, Member>,
    registries: Arc<Mutex<BTreeMap<ServerId, Arc<Registry>>>>,
    leader_log: Arc<Mutex<LeaderLog>>,
    sampler: JoinHandle<()>,
}

impl TestCluster {
    pub async fn start(options: ClusterOptions) -> anyhow::Result<TestCluster> {
        let dir = tempfile::Builder::new().prefix("spandb-test-").tempdir()?;
        // Reserve a port per server: the listener is handed to the server.
        let mut listeners = Vec::new();
        let mut servers = Vec::new();
        for i in 0..options.servers {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            servers.push(ServerSpec { id: ServerId(i as u64 + 1), addr: l.local_addr()?.to_string() });
            listeners.push(l);
        }
        let spec = ClusterSpec {
            cluster_id: format!("test-{}", rand::random::<u32>()),
            replication: options.replication,
            split_points: options.split_points.clone(),
            servers,
            peer_secret: spanserver::auth::new_peer_secret(),
        };
        spec.validate()?;
        let registries: Arc<Mutex<BTreeMap<ServerId, Arc<Registry>>>> = Default::default();
        let leader_log: Arc<Mutex<LeaderLog>> = Default::default();
        let sampler = tokio::spawn(sample_leaders(registries.clone(), leader_log.clone()));
        let mut cluster = TestCluster {
            net: SimNetwork::new(options.seed, tokio::runtime::Handle::current()),
            options,
            spec: spec.clone(),
            _dir: dir,
            members: BTreeMap::new(),
            registries,
            leader_log,
            sampler,
        };
        for (s, listener) in spec.servers.iter().zip(listeners) {
            let member = Member {
                spec: s.clone(),
                dir: cluster._dir.path().join(format!("s{}", s.id.0)),
                server: None,
                driver: None,
                clock: Arc::new(truetime::SystemClock::new()),
            };
            cluster.members.insert(s.id, member);
            cluster.start_server(s.id, Some(listener)).await?;
        }
        cluster.wait_for_trusted_clocks(CLOCK_TRUST_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Waits until every running server trusts its clock (it serves no
    /// timestamps before: `spanserver::clock`).
    pub async fn wait_for_trusted_clocks(&self, timeout: Duration) -> anyhow::Result<()> {
        wait_until(timeout, || self.members.values().filter_map(|m| m.server.as_ref()).all(|s| s.clock.is_healthy()))
            .await
            .context("servers do not trust their clocks")
    }

    /// Whether server `id` trusts its clock now.
    pub fn clock_trusted(&self, id: u64) -> bool {
        self.server(id).clock.is_healthy()
    }

    /// The configuration server `id` runs with.
    pub fn config_of(&self, id: u64) -> ResolvedConfig {
        self.config(ServerId(id))
    }

    fn config(&self, id: ServerId) -> ResolvedConfig {
        let member = &self.members[&id];
        ResolvedConfig {
            server_id: id,
            data_dir: member.dir.clone(),
            listen: member.spec.addr.parse().expect("bound address"),
            cluster: self.spec.clone(),
            raft: self.options.raft.clone(),
            gc: self.options.gc_by_server.get(&id.0).unwrap_or(&self.options.gc).clone(),
            split: self.options.split.clone(),
            placement: self.options.placement.clone(),
            time: self.options.time.clone(),
            peer_addrs: Default::default(),
            admin: AdminConfig { tools: self.options.admin_tools },
            unsafe_testing: self.options.unsafe_testing.clone(),
            joined_addr: None,
        }
    }

    async fn start_server(&mut self, id: ServerId, listener: Option<std::net::TcpListener>) -> anyhow::Result<()> {
        let config = self.config(id);
        let listener = match listener {
            Some(l) => l,
            None => rebind(config.listen).await?,
        };
        let net = self.net.clone();
        let factory: spanserver::server::TransportFactory = Box::new(move |inbox| net.transport(id, inbox));
        let clock = self.members[&id].clock.clone();
        let server = Server::start(config, clock, TransportKind::Custom(factory), Some(listener))
            .await
            .with_context(|| format!("starting server {id}"))?;
        self.registries.lock().expect("registries").insert(id, server.registry.clone());
        let driver = self.options.placement.enabled.then(|| self.spawn_driver(&server));
        let member = self.members.get_mut(&id).expect("member");
        member.server = Some(server);
        member.driver = driver;
        Ok(())
    }

    /// The placement driver beside `server`, as the options say.
    fn spawn_driver(&self, server: &Server) -> JoinHandle<()> {
        let placement = &self.options.placement;
        let load_settle = 2 * self.options.split.check_interval();
        let mut settings = placement::Settings::new(placement.dead_after(), placement.operations_max, load_settle);
        settings.stray_learner_after = placement.stray_learner_after();
        settings.preferred_leader = placement.preferred_leader.map(ServerId);
        let registry = server.registry.clone();
        let publish = Box::new(move |operations| registry.set_placement_operations(operations));
        let secret = client::PeerSecret::new(&self.spec.peer_secret);
        placement::Driver::spawn(server.local_addr.to_string(), secret, placement.interval(), settings, publish)
    }

    /// Turns the placement driver on with `config` beside every server
    /// running (a test that arranges the cluster by hand first).
    pub fn start_placement(&mut self, config: PlacementConfig) {
        self.options.placement = PlacementConfig { enabled: true, ..config };
        let ids: Vec<ServerId> = self.members.keys().copied().collect();
        for id in ids {
            let member = &self.members[&id];
            if member.driver.is_none() {
                if let Some(server) = &member.server {
                    let driver = self.spawn_driver(server);
                    self.members.get_mut(&id).expect("member").driver = Some(driver);
                }
            }
        }
    }

    /// Stops a server abruptly; its data directory stays.
    pub async fn crash(&mut self, id: u64) {
        let id = ServerId(id);
        self.net.unregister(id);
        self.registries.lock().expect("registries").remove(&id);
        if let Some(driver) = self.members.get_mut(&id).and_then(|m| m.driver.take()) {
            driver.abort();
        }
        if let Some(server) = self.members.get_mut(&id).and_then(|m| m.server.take()) {
            server.crash().await;
        }
    }

    /// The live keys (with their latest values) in the data directory of
    /// server `id`, which must be down: what a server keeps of the data of
    /// replicas it no longer hosts.
    pub fn stored_keys(&self, id: u64) -> anyhow::Result<Vec<Vec<u8>>> {
        use spanserver::storage::{mvcc::Reader, Engine, Identity};
        if self.is_up(id) {
            bail!("server {id} is running: crash it first");
        }
        let config = self.config_of(id);
        let identity = Identity {
            cluster_id: config.cluster.cluster_id.clone(),
            server_id: id,
            layout_fingerprint: config.cluster.layout_fingerprint(),
        };
        let engine = Engine::open(&config.data_dir, &identity)?;
        let page = Reader::new(&engine).scan(b"", b"", truetime::Timestamp::MAX, usize::MAX, usize::MAX)?;
        Ok(page.pairs.into_iter().map(|(key, _, _)| key).collect())
    }

    /// Starts a crashed server again on its data directory and port.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let id = ServerId(id);
        if self.members[&id].server.is_some() {
            bail!("server {id} is running");
        }
        self.start_server(id, None).await
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.members.get(&ServerId(id)).is_some_and(|m| m.server.is_some())
    }

    pub fn server_ids(&self) -> Vec<u64> {
        self.members.keys().map(|id| id.0).collect()
    }

    pub fn addr(&self, id: u64) -> String {
        self.members[&ServerId(id)].spec.addr.clone()
    }

    pub fn server(&self, id: u64) -> &Server {
        self.members[&ServerId(id)].server.as_ref().expect("server is up")
    }

    pub fn clock(&self, id: u64) -> &truetime::SystemClock {
        &self.members[&ServerId(id)].clock
    }

    /// A client that knows every server, and may change the cluster
    /// (splits, moves, leadership transfers: it holds the peer secret).
    pub async fn client(&self) -> anyhow::Result<client::Client> {
        let addrs: Vec<String> = self.members.values().map(|m| m.spec.addr.clone()).collect();
        Ok(client::Client::connect_with(addrs, self.operator_config()).await?)
    }

    /// A client that knows only the given servers (and the peer secret).
    pub async fn client_of(&self, ids: &[u64]) -> anyhow::Result<client::Client> {
        let addrs: Vec<String> = ids.iter().map(|&id| self.addr(id)).collect();
        Ok(client::Client::connect_with(addrs, self.operator_config()).await?)
    }

    /// A client configuration with the cluster's peer secret, as an
    /// operator's.
    pub fn operator_config(&self) -> client::ClientConfig {
        client::ClientConfig {
            peer_secret: Some(client::PeerSecret::new(&self.spec.peer_secret)),
            ..Default::default()
        }
    }

    /// A raw admin client of one server whose calls carry the peer
    /// secret, for requests the client library would check or reroute.
    pub async fn admin_client(
        &self,
        id: u64,
    ) -> anyhow::Result<
        proto::admin_client::AdminClient<
            tonic::service::interceptor::InterceptedService<Channel, spanserver::auth::PeerSecret>,
        >,
    > {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr(id)))?.connect().await?;
        let secret = spanserver::auth::PeerSecret::new(&self.spec.peer_secret);
        Ok(proto::admin_client::AdminClient::with_interceptor(channel, secret))
    }

    /// A raw gRPC data client of one server, for requests the client
    /// library would reroute.
    pub async fn kv_client(&self, id: u64) -> anyhow::Result<proto::kv_client::KvClient<Channel>> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr(id)))?.connect().await?;
        Ok(proto::kv_client::KvClient::new(channel))
    }

    /// Progress of shard `shard`'s replica on server `id`, if it is up.
    pub fn progress(&self, id: u64, shard: u64) -> Option<ReplicaProgress> {
        let registries = self.registries.lock().expect("registries");
        registries.get(&ServerId(id))?.get(ShardId(shard)).map(|r| r.progress())
    }

    pub fn replica(&self, id: u64, shard: u64) -> Option<Arc<spanserver::registry::ReplicaShared>> {
        let registries = self.registries.lock().expect("registries");
        registries.get(&ServerId(id))?.get(ShardId(shard))
    }

    pub fn shard_ids(&self) -> Vec<u64> {
        self.spec.shards().iter().map(|s| s.shard_id.0).collect()
    }

    /// The servers hosting a shard: as the newest descriptor among the
    /// running servers' replicas of it says (a shard born by a split, or
    /// whose replicas moved), else as the static layout put it.
    pub fn shard_servers(&self, shard: u64) -> Vec<u64> {
        let hosted = self
            .server_ids()
            .into_iter()
            .filter_map(|id| self.replica(id, shard))
            .max_by_key(|r| r.descriptor().epoch.conf_ver);
        match hosted {
            Some(r) => r.descriptor().replicas.iter().map(|d| d.server_id.0).collect(),
            None => self
                .spec
                .shards()
                .iter()
                .find(|l| l.shard_id.0 == shard)
                .map(|l| l.replicas.iter().map(|(_, s)| s.0).collect())
                .unwrap_or_default(),
        }
    }

    /// The server whose replica leads `shard` with the highest term, among
    /// the given servers (default: all running).
    pub fn leader_among(&self, shard: u64, among: &[u64]) -> Option<u64> {
        among
            .iter()
            .filter_map(|&id| self.progress(id, shard).map(|p| (id, p)))
            .filter(|(_, p)| p.role == Role::Leader)
            .max_by_key(|(_, p)| p.term)
            .map(|(id, _)| id)
    }

    pub fn leader(&self, shard: u64) -> Option<u64> {
        self.leader_among(shard, &self.server_ids())
    }

    /// Waits until `shard` has a leader among `among` that a majority of
    /// them acknowledge (same term, same leader); returns it.
    pub async fn wait_for_leader_among(&self, shard: u64, among: &[u64], timeout: Duration) -> anyhow::Result<u64> {
        let mut found = None;
        wait_until(timeout, || {
            let Some(leader) = self.leader_among(shard, among) else {
                return false;
            };
            let term = self.progress(leader, shard).map(|p| p.term);
            let agreeing = among
                .iter()
                .filter_map(|&id| self.progress(id, shard))
                .filter(|p| Some(p.term) == term && p.leader_server == Some(ServerId(leader)))
                .count();
            let hosts = among.iter().filter(|&&id| self.shard_servers(shard).contains(&id)).count();
            if agreeing * 2 > hosts.max(1) {
                found = Some(leader);
                true
            } else {
                false
            }
        })
        .await
        .with_context(|| format!("no leader for shard {shard} among {among:?}"))?;
        Ok(found.expect("set when the wait succeeds"))
    }

    /// Moves `shard`'s leadership to server `to` and waits until it leads.
    pub async fn transfer_leader(&self, shard: u64, to: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.leader(shard) == Some(to) {
                let all: Vec<u64> = self.server_ids().into_iter().filter(|&id| self.is_up(id)).collect();
                self.wait_for_leader_among(shard, &all, timeout).await?;
                if self.leader(shard) == Some(to) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("shard {shard}'s leadership did not move to server {to}");
            }
            if let Some(leader) = self.leader(shard) {
                let msg = spanserver::inbox::LoopMsg::TransferLeader {
                    shard: ShardId(shard),
                    to: ServerId(to),
                    only_if_idle: false,
                    drain: Duration::ZERO,
                };
                let _ = self.server(leader).event_loop.send(msg);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every shard has a leader; returns them.
    pub async fn wait_for_leaders(&self, timeout: Duration) -> anyhow::Result<BTreeMap<u64, u64>> {
        let mut leaders = BTreeMap::new();
        let up: Vec<u64> = self.server_ids().into_iter().filter(|&id| self.is_up(id)).collect();
        for shard in self.shard_ids() {
            leaders.insert(shard, self.wait_for_leader_among(shard, &up, timeout).await?);
        }
        Ok(leaders)
    }

    /// Waits until every running replica of `shard` has applied at least
    /// `index`.
    pub async fn wait_for_applied(&self, shard: u64, index: u64, timeout: Duration) -> anyhow::Result<()> {
        wait_until(timeout, || {
            self.shard_servers(shard)
                .iter()
                .filter(|&&id| self.is_up(id))
                .all(|&id| self.progress(id, shard).is_some_and(|p| p.applied_index >= index))
        })
        .await
        .with_context(|| format!("shard {shard} replicas did not apply index {index}"))
    }

    /// Stops everything; fails if Raft's one-leader-per-term invariant was
    /// ever observed broken.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.sampler.abort();
        let ids: Vec<u64> = self.server_ids();
        for id in ids {
            self.crash(id).await;
        }
        let log = self.leader_log.lock().expect("leader log");
        if !log.violations.is_empty() {
            bail!("Raft invariant broken: {}", log.violations.join("; "));
        }
        Ok(())
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

/// How long a starting cluster may take to trust its clocks.
const CLOCK_TRUST_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the same address again after a crash (the old socket may take a
/// moment to close).
async fn rebind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let mut last = None;
    for _ in 0..100 {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.expect("at least one attempt")).with_context(|| format!("rebinding {addr}"))
}

/// Every few milliseconds, records which replica leads each (shard, term);
/// two different ones for the same pair is a violation of Raft's Election
/// Safety.
async fn sample_leaders(registries: Arc<Mutex<BTreeMap<ServerId, Arc<Registry>>>>, log: Arc<Mutex<LeaderLog>>) {
    loop {
        let snapshot: Vec<Arc<Registry>> = registries.lock().expect("registries").values().cloned().collect();
        {
            let mut log = log.lock().expect("leader log");
            for registry in snapshot {
                for replica in registry.all() {
                    let p = replica.progress();
                    if p.role != Role::Leader {
                        continue;
                    }
                    let key = (replica.shard_id, p.term);
                    match log.leaders.get(&key) {
                        Some(r) if *r != replica.replica_id => {
                            let v = format!(
                                "{} term {} has two leaders: {} and {}",
                                replica.shard_id, p.term, r, replica.replica_id
                            );
                            log.violations.push(v);
                        }
                        Some(_) => {}
                        None => {
                            log.leaders.insert(key, replica.replica_id);
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
