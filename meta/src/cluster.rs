//! The cluster description every server shares ([`ClusterSpec`], a TOML
//! file), and the static shard layout derived from it.
//!
//! A new cluster's shard layout is derived from the [`ClusterSpec`]
//! alone, identically on every server (splits and moves change it later,
//! through each shard's own log): shard `i` (from 1) covers `[split[i-2], split[i-1])`, and its
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
//! A server's data directory remembers the cluster id and
//! [`ClusterSpec::layout_fingerprint`]; the server refuses to start on a
//! directory made for another cluster or another layout.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ids::{ReplicaId, ServerId, ShardId};
use crate::shard::{ReplicaDescriptor, ReplicaRole, ShardDescriptor, ShardEpoch};

/// A cluster description that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpecError(pub String);

impl fmt::Display for ClusterSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterSpecError {}

fn bad(msg: impl Into<String>) -> ClusterSpecError {
    ClusterSpecError(msg.into())
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
    /// Shared by the servers and their operators, nobody else: peer calls
    /// (Raft traffic, the commit protocol's server-to-server requests,
    /// clock samples) and the admin API's changes (splits, moves,
    /// draining) must present it, and it seals the prepare timestamps a client
    /// relays to a coordinator. Keep this file away from clients. At least
    /// [`PEER_SECRET_CHARS_MIN`] characters; `spanserver::auth::new_peer_secret`
    /// makes one.
    #[serde(default)]
    pub peer_secret: String,
}

/// Shortest peer secret a cluster description may carry.
pub const PEER_SECRET_CHARS_MIN: usize = 32;

/// The gRPC metadata key that carries the peer secret: on every `Peer`
/// call, and on the admin API's changes (splits, replica changes,
/// draining, leadership transfers, id allocation, clock adjustments),
/// which only servers and operators holding the cluster description may
/// ask for (`spanserver::auth`).
pub const PEER_SECRET_METADATA: &str = "spandb-peer-secret";

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
    pub fn descriptor(&self) -> ShardDescriptor {
        ShardDescriptor {
            shard_id: self.shard_id,
            start_key: self.start_key.clone(),
            end_key: self.end_key.clone(),
            epoch: ShardEpoch::INITIAL,
            replicas: self
                .replicas
                .iter()
                .map(|&(replica_id, server_id)| ReplicaDescriptor { replica_id, server_id, role: ReplicaRole::Voter })
                .collect(),
        }
    }
}

impl ClusterSpec {
    pub fn from_toml(text: &str) -> Result<Self, ClusterSpecError> {
        let spec: ClusterSpec = toml::from_str(text).map_err(|e| bad(format!("cluster description: {e}")))?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn load(path: &Path) -> Result<Self, ClusterSpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| bad(format!("{}: {}", path.display(), e.0)))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a ClusterSpec always serializes")
    }

    pub fn validate(&self) -> Result<(), ClusterSpecError> {
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
        if let Some(long) = self.split_points.iter().find(|k| k.len() > crate::limits::KEY_BYTES_MAX) {
            return Err(bad(format!("split point of {} bytes exceeds the key limit", long.len())));
        }
        if self.split_points.len() + 1 > crate::limits::SHARDS_STATIC_MAX {
            return Err(bad(format!("at most {} shards in a static layout", crate::limits::SHARDS_STATIC_MAX)));
        }
        Ok(())
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

    /// The largest shard or replica id the static layout uses: the id
    /// allocator hands out ids above it (`meta::keys::ID_HIGH_WATER`).
    pub fn static_ids_max(&self) -> u64 {
        let shards = self.split_points.len() as u64 + 1;
        shards.max(shards * self.replication as u64)
    }

    /// What a data directory must agree with: the layout, not the addresses
    /// (servers may move to new addresses and keep their data).
    pub fn layout_fingerprint(&self) -> String {
        let ids: Vec<String> = self.sorted_servers().iter().map(|s| s.id.0.to_string()).collect();
        format!("replication={} servers={} split_points={:?}", self.replication, ids.join(","), self.split_points)
    }
}

/// Whether `addr` has the shape `host:port` (a name that may not resolve yet).
pub fn looks_like_host_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
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
        // The id allocator starts above every id the layout took.
        let taken =
            shards.iter().flat_map(|l| std::iter::once(l.shard_id.0).chain(l.replicas.iter().map(|(r, _)| r.0)));
        assert_eq!(taken.max(), Some(s.static_ids_max()));
        let single = spec(&[(1, "a:1")], &["g", "n"], 1);
        assert_eq!(single.static_ids_max(), 3);
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
}
