//! Configuration: the cluster description every server shares, and each
//! server's own settings.
//!
//! Until the placement driver exists (its own issue), the shard layout is
//! static and derived from the [`ClusterSpec`] alone, identically on every
//! server: shard `i` (from 1) covers `[split[i-2], split[i-1])`, and its
//! replicas sit on `replication` consecutive servers (by id order) starting
//! at server `i-1` modulo the server count, so they are always distinct.
//!
//! ```text
//! servers s1 s2 s3, split_points ["g", "n", "t"], replication 3
//!
//!   shard1 [ "" , "g")  r1@s1 r2@s2 r3@s3
//!   shard2 ["g" , "n")  r4@s2 r5@s3 r6@s1
//!   shard3 ["n" , "t")  r7@s3 r8@s1 r9@s2
//!   shard4 ["t" ,  ∞ )  r10@s1 r11@s2 r12@s3
//! ```
//!
//! Replica ids are `(shard_index * replication) + j + 1`: unique in the
//! cluster, non-zero, as raft-rs requires.
//!
//! A data directory remembers the cluster id and a fingerprint of this
//! layout; a server refuses to start on a directory made for another
//! cluster or another layout (see [`crate::storage::Engine::open`]).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits;
use meta::{ReplicaId, ServerId, ShardId};

/// A configuration that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// One server in the cluster description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub id: ServerId,
    /// host:port for clients and peers.
    pub addr: String,
}

/// The cluster description: identical on every server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Names the cluster; stored in every data directory and sent with
    /// every Raft message, so servers of different clusters never mix.
    pub cluster_id: String,
    /// Replicas per shard.
    #[serde(default = "default_replication")]
    pub replication: usize,
    /// Keys where one shard ends and the next begins, strictly increasing.
    #[serde(default)]
    pub split_points: Vec<String>,
    pub servers: Vec<ServerSpec>,
    /// Shared by the servers and nobody else: peer calls (Raft traffic,
    /// the commit protocol's server-to-server requests, clock samples)
    /// must present it, and it seals the prepare timestamps a client
    /// relays to a coordinator. Keep this file away from clients. At least
    /// [`PEER_SECRET_CHARS_MIN`] characters; [`ClusterSpec::new_peer_secret`]
    /// makes one.
    #[serde(default)]
    pub peer_secret: String,
}

/// Shortest peer secret a cluster description may carry.
pub const PEER_SECRET_CHARS_MIN: usize = 32;

fn default_replication() -> usize {
    3
}

/// A shard of the static layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLayout {
    pub shard_id: ShardId,
    pub start_key: Vec<u8>,
    /// Empty: to the end of the key space.
    pub end_key: Vec<u8>,
    pub replicas: Vec<(ReplicaId, ServerId)>,
}

impl ShardLayout {
    /// The shard's descriptor at its first epoch.
    pub fn descriptor(&self) -> meta::ShardDescriptor {
        meta::ShardDescriptor {
            shard_id: self.shard_id,
            start_key: self.start_key.clone(),
            end_key: self.end_key.clone(),
            epoch: 1,
            replicas: self
                .replicas
                .iter()
                .map(|&(replica_id, server_id)| meta::ReplicaDescriptor { replica_id, server_id })
                .collect(),
        }
    }
}

impl ClusterSpec {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let spec: ClusterSpec = toml::from_str(text).map_err(|e| bad(format!("cluster description: {e}")))?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| bad(format!("{}: {}", path.display(), e.0)))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a ClusterSpec always serializes")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster_id.is_empty() || self.cluster_id.len() > 128 {
            return Err(bad("cluster_id must be 1 to 128 characters"));
        }
        if !self.cluster_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(bad(format!(
                "cluster_id {:?} may only use letters, digits, '-', '_' and '.'",
                self.cluster_id
            )));
        }
        if self.peer_secret.chars().count() < PEER_SECRET_CHARS_MIN {
            return Err(bad(format!(
                "peer_secret must be at least {PEER_SECRET_CHARS_MIN} characters (generate one with `openssl rand -hex 32`)"
            )));
        }
        if self.servers.is_empty() {
            return Err(bad("the cluster has no servers"));
        }
        let mut ids = HashSet::new();
        let mut addrs = HashSet::new();
        for s in &self.servers {
            if s.id.0 == 0 {
                return Err(bad("server id 0 is not allowed (ids start at 1)"));
            }
            if !ids.insert(s.id) {
                return Err(bad(format!("server id {} appears twice", s.id.0)));
            }
            if s.addr.parse::<SocketAddr>().is_err() && !looks_like_host_port(&s.addr) {
                return Err(bad(format!("server {}: address {:?} is not host:port", s.id.0, s.addr)));
            }
            if !addrs.insert(s.addr.clone()) {
                return Err(bad(format!("address {} is given to more than one server", s.addr)));
            }
        }
        if self.replication == 0 {
            return Err(bad("replication must be at least 1"));
        }
        if self.replication > self.servers.len() {
            return Err(bad(format!(
                "replication {} needs at least that many servers, the cluster has {}",
                self.replication,
                self.servers.len()
            )));
        }
        for w in self.split_points.windows(2) {
            if w[0] >= w[1] {
                return Err(bad(format!("split points must strictly increase: {:?} is not before {:?}", w[0], w[1])));
            }
        }
        if let Some(first) = self.split_points.first() {
            if first.is_empty() {
                return Err(bad("a split point may not be the empty key"));
            }
        }
        if let Some(long) = self.split_points.iter().find(|k| k.len() > limits::KEY_BYTES_MAX) {
            return Err(bad(format!("split point of {} bytes exceeds the key limit", long.len())));
        }
        if self.split_points.len() + 1 > SHARDS_STATIC_MAX {
            return Err(bad(format!("at most {SHARDS_STATIC_MAX} shards in a static layout")));
        }
        Ok(())
    }

    /// A fresh random peer secret (64 hex characters).
    pub fn new_peer_secret() -> String {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Servers sorted by id.
    pub fn sorted_servers(&self) -> Vec<&ServerSpec> {
        let mut servers: Vec<_> = self.servers.iter().collect();
        servers.sort_by_key(|s| s.id);
        servers
    }

    pub fn server(&self, id: ServerId) -> Option<&ServerSpec> {
        self.servers.iter().find(|s| s.id == id)
    }

    /// The static shard layout (see the module docs).
    pub fn shards(&self) -> Vec<ShardLayout> {
        let servers = self.sorted_servers();
        let n = servers.len();
        let mut bounds: Vec<Vec<u8>> = vec![Vec::new()];
        bounds.extend(self.split_points.iter().map(|k| k.as_bytes().to_vec()));
        bounds.push(Vec::new());
        (0..bounds.len() - 1)
            .map(|i| ShardLayout {
                shard_id: ShardId(i as u64 + 1),
                start_key: bounds[i].clone(),
                end_key: bounds[i + 1].clone(),
                replicas: (0..self.replication)
                    .map(|j| {
                        let replica = ReplicaId((i * self.replication + j + 1) as u64);
                        (replica, servers[(i + j) % n].id)
                    })
                    .collect(),
            })
            .collect()
    }

    /// What a data directory must agree with: the layout, not the addresses
    /// (servers may move to new addresses and keep their data).
    pub fn layout_fingerprint(&self) -> String {
        let ids: Vec<String> = self.sorted_servers().iter().map(|s| s.id.0.to_string()).collect();
        format!("replication={} servers={} split_points={:?}", self.replication, ids.join(","), self.split_points)
    }
}

/// Most shards a static layout may have.
pub const SHARDS_STATIC_MAX: usize = 1024;

fn looks_like_host_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// Raft timing and log retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// Length of one Raft tick.
    pub tick_ms: u64,
    /// Ticks without a heartbeat before a follower campaigns (randomized
    /// up to twice this).
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Compact a shard's log once it holds this many applied entries.
    pub log_compact_entries: u64,
    /// Entries kept behind the applied index when compacting, so briefly
    /// lagging followers catch up from the log rather than a snapshot.
    pub log_retain_entries: u64,
    /// A leader with no writes proposes a closed timestamp this often, so
    /// followers can serve snapshot reads of recent timestamps.
    pub close_timestamp_ms: u64,
    /// Largest shard data (bytes of stored versions) a Raft snapshot may
    /// carry. A bigger shard cannot bring a lagging follower up to date
    /// by snapshot until it is split; the leader logs it and carries on.
    pub snapshot_bytes_max: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 1,
            log_compact_entries: 10_000,
            log_retain_entries: 1_000,
            close_timestamp_ms: 200,
            snapshot_bytes_max: 512 * 1024 * 1024,
        }
    }
}

impl RaftConfig {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    pub fn close_timestamp_interval(&self) -> Duration {
        Duration::from_millis(self.close_timestamp_ms)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.tick_ms) {
            return Err(bad("raft.tick_ms must be between 1 and 10000"));
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err(bad("raft.election_ticks must exceed raft.heartbeat_ticks, which must be at least 1"));
        }
        if self.log_compact_entries == 0 {
            return Err(bad("raft.log_compact_entries must be at least 1"));
        }
        if self.log_retain_entries >= self.log_compact_entries {
            return Err(bad("raft.log_retain_entries must be below raft.log_compact_entries"));
        }
        if self.close_timestamp_ms == 0 {
            return Err(bad("raft.close_timestamp_ms must be at least 1"));
        }
        if self.snapshot_bytes_max == 0 || self.snapshot_bytes_max > limits::SNAPSHOT_BYTES_MAX {
            return Err(bad(format!("raft.snapshot_bytes_max must be between 1 and {}", limits::SNAPSHOT_BYTES_MAX)));
        }
        Ok(())
    }
}

/// Garbage collection of old MVCC versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Versions stay readable for this long after they are overwritten.
    pub retention_s: u64,
    /// How often the watermark moves up.
    pub interval_s: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig { retention_s: 3600, interval_s: 60 }
    }
}

impl GcConfig {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_s)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_s)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_s == 0 {
            return Err(bad("gc.interval_s must be at least 1"));
        }
        Ok(())
    }
}

/// Time: the TrueTime uncertainty and request deadlines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeConfig {
    /// TrueTime epsilon: half the width of the uncertainty interval.
    pub epsilon_ms: u64,
    /// How long a write waits to be applied before it is answered as
    /// ambiguous.
    pub write_timeout_ms: u64,
    /// How long a read waits for ReadIndex, or for the replica to apply far
    /// enough, before it is answered `Unavailable`.
    pub read_timeout_ms: u64,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig { epsilon_ms: 2, write_timeout_ms: 10_000, read_timeout_ms: 2_000 }
    }
}

impl TimeConfig {
    pub fn epsilon(&self) -> Duration {
        Duration::from_millis(self.epsilon_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if Duration::from_millis(self.epsilon_ms) > truetime::EPSILON_MAX {
            return Err(bad(format!("time.epsilon_ms exceeds {:?}", truetime::EPSILON_MAX)));
        }
        if self.write_timeout_ms == 0 || self.read_timeout_ms == 0 {
            return Err(bad("time.write_timeout_ms and time.read_timeout_ms must be at least 1"));
        }
        Ok(())
    }
}

/// Switches that make the server WRONG on purpose, so tests can show that
/// the checkers catch it. Never set them in production; the server logs a
/// warning at start when any is on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnsafeTestingConfig {
    /// Linearizable reads are served this many milliseconds in the past
    /// (stale reads). 0: off.
    pub stale_reads_ms: u64,
    /// Acknowledge writes without commit-wait.
    pub skip_commit_wait: bool,
    /// Reads return versions before `TT.after(version timestamp)`: the
    /// hole that lets a reader see a commit before its commit-wait ends.
    pub skip_visibility_wait: bool,
    /// Keep serving timestamps while the clock disagrees with the peers'
    /// (`clock.rs`): clocks skewed beyond epsilon then give wrong answers.
    pub ignore_clock_health: bool,
}

impl UnsafeTestingConfig {
    pub fn any(&self) -> bool {
        self.stale_reads_ms > 0 || self.skip_commit_wait || self.skip_visibility_wait || self.ignore_clock_health
    }
}

/// The admin service's operator tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve `Admin.SetClock` (shift this server's clock, within
    /// [`limits::CLOCK_OFFSET_MAX`]) and `Admin.TransferLeader`. Off by
    /// default: they are for tests, the jepsen nemeses and operators who
    /// turn them on on purpose.
    pub tools: bool,
}

/// One server's settings (`spandb start --config FILE`, or flags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Which server of the cluster description this is.
    pub id: ServerId,
    pub data_dir: PathBuf,
    /// Where to listen; defaults to this server's address in the cluster.
    #[serde(default)]
    pub listen: Option<String>,
    /// The cluster description, or a path to it (`cluster_file`).
    #[serde(default)]
    pub cluster: Option<ClusterSpec>,
    #[serde(default)]
    pub cluster_file: Option<PathBuf>,
    #[serde(default)]
    pub raft: RaftConfig,
    #[serde(default)]
    pub gc: GcConfig,
    #[serde(default)]
    pub time: TimeConfig,
    /// Where to reach peers for Raft traffic, by server id, when it is not
    /// their address in the cluster description (e.g. a proxy per link, as
    /// the jepsen harness uses to cut links).
    #[serde(default)]
    pub peer_addrs: BTreeMap<String, String>,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub unsafe_testing: UnsafeTestingConfig,
}

/// A [`ServerConfig`] after validation, with the cluster description loaded.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    pub server_id: ServerId,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub cluster: ClusterSpec,
    pub raft: RaftConfig,
    pub gc: GcConfig,
    pub time: TimeConfig,
    /// Raft dial addresses that differ from the cluster description.
    pub peer_addrs: BTreeMap<ServerId, String>,
    pub admin: AdminConfig,
    pub unsafe_testing: UnsafeTestingConfig,
}

impl ServerConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| bad(format!("server configuration: {e}")))
    }

    pub fn resolve(self) -> Result<ResolvedConfig, ConfigError> {
        let cluster = match (self.cluster, self.cluster_file) {
            (Some(_), Some(_)) => return Err(bad("give either cluster or cluster_file, not both")),
            (Some(c), None) => {
                c.validate()?;
                c
            }
            (None, Some(path)) => ClusterSpec::load(&path)?,
            (None, None) => return Err(bad("no cluster description (cluster or cluster_file)")),
        };
        self.raft.validate()?;
        self.gc.validate()?;
        self.time.validate()?;
        let me = cluster
            .server(self.id)
            .ok_or_else(|| bad(format!("server id {} is not in the cluster description", self.id.0)))?;
        let listen_text = self.listen.unwrap_or_else(|| me.addr.clone());
        let listen = resolve_addr(&listen_text)?;
        let mut peer_addrs = BTreeMap::new();
        for (id, addr) in self.peer_addrs {
            let id = id
                .parse::<u64>()
                .ok()
                .map(ServerId)
                .filter(|id| cluster.server(*id).is_some())
                .ok_or_else(|| bad(format!("peer_addrs: {id:?} is not a server id of the cluster")))?;
            if !looks_like_host_port(&addr) {
                return Err(bad(format!("peer_addrs: {addr:?} is not host:port")));
            }
            peer_addrs.insert(id, addr);
        }
        Ok(ResolvedConfig {
            server_id: self.id,
            data_dir: self.data_dir,
            listen,
            cluster,
            raft: self.raft,
            gc: self.gc,
            time: self.time,
            peer_addrs,
            admin: self.admin,
            unsafe_testing: self.unsafe_testing,
        })
    }
}

fn resolve_addr(addr: &str) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve listen address {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| bad(format!("listen address {addr:?} resolves to nothing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(servers: &[(u64, &str)], split: &[&str], replication: usize) -> ClusterSpec {
        ClusterSpec {
            cluster_id: "test".into(),
            replication,
            split_points: split.iter().map(|s| s.to_string()).collect(),
            servers: servers
                .iter()
                .map(|(id, addr)| ServerSpec { id: ServerId(*id), addr: addr.to_string() })
                .collect(),
            peer_secret: "s".repeat(PEER_SECRET_CHARS_MIN),
        }
    }

    #[test]
    fn layout_places_replicas_on_distinct_servers() {
        let s = spec(&[(1, "a:1"), (2, "a:2"), (3, "a:3")], &["g", "n", "t"], 3);
        s.validate().unwrap();
        let shards = s.shards();
        assert_eq!(shards.len(), 4);
        assert_eq!(shards[0].start_key, b"");
        assert_eq!(shards[0].end_key, b"g");
        assert_eq!(shards[3].start_key, b"t");
        assert_eq!(shards[3].end_key, b"");
        let mut replica_ids = HashSet::new();
        for shard in &shards {
            let servers: HashSet<_> = shard.replicas.iter().map(|(_, s)| *s).collect();
            assert_eq!(servers.len(), 3, "{shard:?}");
            for (r, _) in &shard.replicas {
                assert!(r.0 > 0);
                assert!(replica_ids.insert(*r), "replica id {r} reused");
            }
        }
        assert_eq!(shards[1].replicas[0], (ReplicaId(4), ServerId(2)));
    }

    #[test]
    fn bad_descriptions_are_refused_with_reasons() {
        let cases = [
            (spec(&[(1, "a:1"), (2, "a:1")], &[], 1), "more than one server"),
            (spec(&[(1, "a:1"), (1, "a:2")], &[], 1), "appears twice"),
            (spec(&[(0, "a:1")], &[], 1), "id 0"),
            (spec(&[(1, "a:1")], &[], 3), "replication 3"),
            (spec(&[(1, "a:1")], &["b", "a"], 1), "strictly increase"),
            (spec(&[(1, "a:1")], &["", "a"], 1), "empty key"),
            (spec(&[(1, "nowhere")], &[], 1), "host:port"),
            (spec(&[], &[], 1), "no servers"),
            (ClusterSpec { peer_secret: "short".into(), ..spec(&[(1, "a:1")], &[], 1) }, "peer_secret"),
        ];
        for (spec, want) in cases {
            let err = spec.validate().unwrap_err();
            assert!(err.0.contains(want), "{:?} does not mention {want:?}", err.0);
        }
    }

    #[test]
    fn toml_round_trip_and_unknown_fields() {
        let s = spec(&[(1, "127.0.0.1:7000")], &["m"], 1);
        assert_eq!(ClusterSpec::from_toml(&s.to_toml()).unwrap(), s);
        let err = ClusterSpec::from_toml("cluster_id = \"x\"\nservers = []\nbogus = 1\n").unwrap_err();
        assert!(err.0.contains("bogus"), "{err}");
        let err = ClusterSpec::from_toml("cluster_id = \"x\"\n[[servers]]\nid = 1\naddr = \"a:1\"\n").unwrap_err();
        assert!(err.0.contains("peer_secret"), "a description without a peer secret is refused: {err}");
    }

    #[test]
    fn server_config_must_name_a_known_server() {
        let cfg = ServerConfig {
            id: ServerId(9),
            data_dir: "/tmp/x".into(),
            listen: None,
            cluster: Some(spec(&[(1, "127.0.0.1:7000")], &[], 1)),
            cluster_file: None,
            raft: RaftConfig::default(),
            gc: GcConfig::default(),
            time: TimeConfig::default(),
            peer_addrs: BTreeMap::new(),
            admin: AdminConfig::default(),
            unsafe_testing: UnsafeTestingConfig::default(),
        };
        assert!(cfg.clone().resolve().unwrap_err().0.contains("not in the cluster"));
        let mut cfg = ServerConfig { id: ServerId(1), ..cfg };
        cfg.peer_addrs.insert("7".into(), "127.0.0.1:1".into());
        assert!(cfg.resolve().unwrap_err().0.contains("peer_addrs"));
    }
}
