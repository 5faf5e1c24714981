//! Each server's own settings ([`ServerConfig`]: its id, addresses, data
//! directory, Raft timing, GC, time). The cluster description every
//! server shares, and the static shard layout derived from it, are
//! [`meta::ClusterSpec`].
//!
//! A data directory remembers the cluster id and a fingerprint of the
//! layout; a server refuses to start on a directory made for another
//! cluster or another layout (see [`crate::storage::Engine::open`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits;
use meta::{ClusterSpec, ClusterSpecError, ServerId};

/// A configuration that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

impl From<ClusterSpecError> for ConfigError {
    fn from(e: ClusterSpecError) -> ConfigError {
        ConfigError(e.0)
    }
}

/// Raft timing and log retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// Length of one Raft tick.
    pub tick_ms: u64,
    /// Ticks without a heartbeat before a follower campaigns (the least;
    /// randomized up to `election_ticks_max`).
    pub election_ticks: usize,
    /// Election timeouts are drawn from `[election_ticks,
    /// election_ticks_max)`; 0 means twice `election_ticks` (raft-rs's
    /// default). `election_ticks + 1` pins them, as a deterministic
    /// simulation needs (raft-rs draws them from its own unseeded RNG).
    pub election_ticks_max: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Compact a shard's log once it holds this many applied entries.
    pub log_compact_entries: u64,
    /// Entries kept behind the applied index when compacting, so briefly
    /// lagging followers catch up from the log rather than a snapshot.
    pub log_retain_entries: u64,
    /// A leader keeps the log entries a recently active follower still
    /// needs (and, soon after a split, every follower), but at most this
    /// many behind its applied index: a follower further behind gets a
    /// snapshot (and one that missed a split meanwhile skips it).
    pub log_kept_for_followers_max: u64,
    /// A leader with no writes proposes a closed timestamp this often, so
    /// followers can serve snapshot reads of recent timestamps.
    pub close_timestamp_ms: u64,
    /// Largest shard data (bytes of stored versions) a Raft snapshot may
    /// carry. A bigger shard cannot bring a lagging follower up to date
    /// by snapshot until it is split; the leader logs it and carries on.
    pub snapshot_bytes_max: u64,
    /// Leaders serve linearizable reads from a lease after a confirmed
    /// ReadIndex round, without a round each (`shard/lease.rs`). Off:
    /// every read takes a round (for comparison and for suspicion).
    pub lease_reads: bool,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 100,
            election_ticks: 10,
            election_ticks_max: 0,
            heartbeat_ticks: 1,
            log_compact_entries: 10_000,
            log_retain_entries: 1_000,
            log_kept_for_followers_max: 100_000,
            close_timestamp_ms: 200,
            snapshot_bytes_max: 512 * 1024 * 1024,
            lease_reads: true,
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
        if self.election_ticks_max != 0 && self.election_ticks_max <= self.election_ticks {
            return Err(bad("raft.election_ticks_max must be 0 or exceed raft.election_ticks"));
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

/// Splits by size (`split_queue.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// A shard holding more than this many bytes of versions splits in
    /// two at the key that halves them (0: never by size).
    pub size_bytes: u64,
    /// How often each server looks at the shards it leads.
    pub check_interval_ms: u64,
    /// A shard that served more than this many requests a second over
    /// the last check interval splits at the median of its sampled keys,
    /// half the load on each side (0: never by load). Not with a
    /// `placement.preferred_leader` ([`SplitConfig::with_placement`]).
    pub load_qps: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { size_bytes: 64 * 1024 * 1024, check_interval_ms: 10_000, load_qps: 2_500 }
    }
}

impl SplitConfig {
    /// The splits a server makes under `placement`. A load split exists
    /// to spread a hot shard's load: it gives the placement driver two
    /// leaderships to put on different servers. A preferred leader keeps
    /// every leadership on one server, so there a load split spreads
    /// nothing and only makes transactions span more shards (pgbench's
    /// TPC-B at 16 clients on shared shards: 664 and 789 tps with them,
    /// 972 and 934 without; BENCHMARKS.md, "2026-12-05 (last)"): off.
    pub fn with_placement(&self, placement: &PlacementConfig) -> SplitConfig {
        let load_qps = if placement.preferred_leader.is_some() { 0 } else { self.load_qps };
        SplitConfig { load_qps, ..self.clone() }
    }

    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.check_interval_ms == 0 {
            return Err(bad("split.check_interval_ms must be at least 1"));
        }
        Ok(())
    }
}

/// The placement driver that runs beside the server (the `placement`
/// crate; `spandb start` runs it, and it acts only while this server
/// leads the system shard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementConfig {
    /// Whether the driver runs at all.
    pub enabled: bool,
    /// A server not heard from for this long is dead: its replicas are
    /// placed on other servers.
    pub dead_after_s: u64,
    /// How often the driver looks at the cluster.
    pub interval_ms: u64,
    /// Replica moves in flight at once.
    pub operations_max: usize,
    /// A learner left by a move cut short (no operation of the driver owns
    /// it, and its shard stays at one epoch) is removed after this long.
    /// Keep it longer than a move's steps wait (60 s), so a move still
    /// running elsewhere has given up by then; shorter (tests, jepsen),
    /// such a move may lose its learner and fail, which loses nothing.
    pub stray_learner_after_s: u64,
    /// The server that should lead every shard it holds a voter of
    /// (Spanner's default leader): put the leaders next to the clients,
    /// typically the server whose SQL gateway they use. Give every server
    /// the same value. Unset: leaderships are balanced by load and count.
    pub preferred_leader: Option<u64>,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            enabled: true,
            dead_after_s: 60,
            interval_ms: 1_000,
            operations_max: 4,
            stray_learner_after_s: 75,
            preferred_leader: None,
        }
    }
}

impl PlacementConfig {
    pub fn dead_after(&self) -> Duration {
        Duration::from_secs(self.dead_after_s)
    }

    pub fn stray_learner_after(&self) -> Duration {
        Duration::from_secs(self.stray_learner_after_s)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dead_after_s == 0
            || self.interval_ms == 0
            || self.operations_max == 0
            || self.stray_learner_after_s == 0
        {
            return Err(bad(
                "placement.dead_after_s, interval_ms, operations_max and stray_learner_after_s must be at least 1",
            ));
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
    /// A new shard leader assigns timestamps from its clock alone,
    /// forgetting those in its log: with a clock behind, it goes below
    /// them (`txn::ShardTxns::unsafe_forget_timestamps_on_leader_change`).
    pub new_leader_forgets_timestamps: bool,
}

impl UnsafeTestingConfig {
    pub fn any(&self) -> bool {
        self.stale_reads_ms > 0
            || self.skip_commit_wait
            || self.skip_visibility_wait
            || self.ignore_clock_health
            || self.new_leader_forgets_timestamps
    }
}

/// The admin service's operator tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve `Admin.SetClock` (shift this server's clock, within
    /// [`limits::CLOCK_OFFSET_MAX`]). Off by default: it is for tests,
    /// the jepsen nemeses and operators who turn it on on purpose.
    /// (`Admin.TransferLeader` is always served: the placement driver
    /// balances leaderships with it.)
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
    pub split: SplitConfig,
    #[serde(default)]
    pub placement: PlacementConfig,
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
    /// This server joined the cluster at run time (`spandb start --join`):
    /// its id is not in the cluster description but was given by
    /// `Peer.Join`, and `listen` is the address it was recorded at.
    #[serde(default)]
    pub joined: bool,
}

/// A [`ServerConfig`] after validation, with the cluster description loaded.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    pub server_id: ServerId,
    /// The address a server that joined at run time was recorded at
    /// (`None`: a server of the cluster description).
    pub joined_addr: Option<String>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub cluster: ClusterSpec,
    pub raft: RaftConfig,
    pub gc: GcConfig,
    pub split: SplitConfig,
    pub placement: PlacementConfig,
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
        self.split.validate()?;
        self.placement.validate()?;
        self.time.validate()?;
        let (listen_text, joined_addr) = match (cluster.server(self.id), self.joined) {
            (Some(me), false) => (self.listen.unwrap_or_else(|| me.addr.clone()), None),
            (None, true) => {
                let addr = self.listen.ok_or_else(|| bad("a server that joined needs its listen address"))?;
                (addr.clone(), Some(addr))
            }
            (Some(_), true) => {
                return Err(bad(format!("server id {} is in the cluster description: it did not join", self.id.0)))
            }
            (None, false) => {
                return Err(bad(format!(
                    "server id {} is not in the cluster description (a new server joins with `spandb start --join`)",
                    self.id.0
                )))
            }
        };
        let listen = resolve_addr(&listen_text)?;
        let mut peer_addrs = BTreeMap::new();
        for (id, addr) in self.peer_addrs {
            let id = id
                .parse::<u64>()
                .ok()
                .map(ServerId)
                .filter(|id| cluster.server(*id).is_some())
                .ok_or_else(|| bad(format!("peer_addrs: {id:?} is not a server id of the cluster")))?;
            if !meta::cluster::looks_like_host_port(&addr) {
                return Err(bad(format!("peer_addrs: {addr:?} is not host:port")));
            }
            peer_addrs.insert(id, addr);
        }
        Ok(ResolvedConfig {
            server_id: self.id,
            joined_addr,
            data_dir: self.data_dir,
            listen,
            cluster,
            raft: self.raft,
            gc: self.gc,
            split: self.split,
            placement: self.placement,
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

    /// A one-server cluster description at `127.0.0.1:7000`.
    fn one_server() -> ClusterSpec {
        let secret = "s".repeat(meta::cluster::PEER_SECRET_CHARS_MIN);
        let text = format!("cluster_id = \"test\"\nreplication = 1\npeer_secret = \"{secret}\"\n[[servers]]\nid = 1\naddr = \"127.0.0.1:7000\"\n");
        ClusterSpec::from_toml(&text).expect("a valid description")
    }

    /// Goal: a preferred leader turns load splits off (they could not
    /// spread load) and leaves size splits as they are.
    #[test]
    fn a_preferred_leader_turns_load_splits_off() {
        let split = SplitConfig::default();
        assert_eq!(split.with_placement(&PlacementConfig::default()), split);
        let pinned = PlacementConfig { preferred_leader: Some(1), ..Default::default() };
        assert_eq!(split.with_placement(&pinned), SplitConfig { load_qps: 0, ..split.clone() });
    }

    #[test]
    fn server_config_must_name_a_known_server() {
        let cfg = ServerConfig {
            id: ServerId(9),
            data_dir: "/tmp/x".into(),
            listen: None,
            cluster: Some(one_server()),
            cluster_file: None,
            raft: RaftConfig::default(),
            gc: GcConfig::default(),
            split: Default::default(),
            placement: Default::default(),
            time: TimeConfig::default(),
            peer_addrs: BTreeMap::new(),
            admin: AdminConfig::default(),
            unsafe_testing: UnsafeTestingConfig::default(),
            joined: false,
        };
        assert!(cfg.clone().resolve().unwrap_err().0.contains("not in the cluster"));
        let mut cfg = ServerConfig { id: ServerId(1), ..cfg };
        cfg.peer_addrs.insert("7".into(), "127.0.0.1:1".into());
        assert!(cfg.resolve().unwrap_err().0.contains("peer_addrs"));
    }
}
