//! The client's cache of the shard map: which shard holds a key, which
//! replica leads it, and where servers listen.
//!
//! The cache starts from any server's `Admin.ClusterInfo` and is corrected
//! by what servers say: a `NotLeader` hint moves the leader, a `WrongShard`
//! triggers a refresh, a server that cannot be reached loses its
//! leadership in the cache and the next replica is tried.

use std::collections::BTreeMap;

use meta::{Epoch, ServerId, ShardId};

/// One shard as the client sees it.
#[derive(Debug, Clone)]
pub struct Route {
    pub descriptor: proto::ShardDescriptor,
    /// The server believed to lead the shard.
    pub leader: Option<ServerId>,
    /// Rotates through replicas when the leader is unknown, and spreads
    /// snapshot reads.
    next_replica: usize,
}

impl Route {
    pub fn shard_id(&self) -> ShardId {
        ShardId(self.descriptor.shard_id)
    }

    pub fn epoch(&self) -> Epoch {
        Epoch(self.descriptor.epoch)
    }

    fn replica_servers(&self) -> Vec<ServerId> {
        self.descriptor.replicas.iter().map(|r| ServerId(r.server_id)).collect()
    }
}

/// Where to send one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub shard_id: ShardId,
    pub epoch: Epoch,
    pub server_id: ServerId,
    pub addr: String,
    /// The shard's end key (empty: end of the key space), for paging.
    pub shard_end: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// By start key.
    shards: BTreeMap<Vec<u8>, Route>,
    servers: BTreeMap<ServerId, String>,
}

impl Routes {
    pub fn from_cluster_info(info: &proto::ClusterInfoResponse) -> Routes {
        let mut routes = Routes::default();
        for s in &info.servers {
            routes.servers.insert(ServerId(s.server_id), s.addr.clone());
        }
        for shard in &info.shards {
            if let Some(d) = &shard.descriptor {
                let leader = (shard.leader_server_id != 0).then_some(ServerId(shard.leader_server_id));
                routes.shards.insert(d.start_key.clone(), Route { descriptor: d.clone(), leader, next_replica: 0 });
            }
        }
        routes
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    pub fn server_addrs(&self) -> Vec<String> {
        self.servers.values().cloned().collect()
    }

    pub fn shards(&self) -> impl Iterator<Item = &Route> {
        self.shards.values()
    }

    fn route_mut(&mut self, key: &[u8]) -> Option<&mut Route> {
        let (_, route) = self.shards.range_mut(..=key.to_vec()).next_back()?;
        let end = &route.descriptor.end_key;
        (end.is_empty() || key < end.as_slice()).then_some(route)
    }

    fn route_by_id_mut(&mut self, shard_id: ShardId) -> Option<&mut Route> {
        self.shards.values_mut().find(|r| r.shard_id() == shard_id)
    }

    /// Where to send a request for `key`: the leader if known (or if
    /// `prefer_leader` is false, the next replica in rotation).
    pub fn target(&mut self, key: &[u8], prefer_leader: bool) -> Option<Target> {
        let servers = self.servers.clone();
        let route = self.route_mut(key)?;
        Self::pick(route, &servers, prefer_leader)
    }

    /// Like [`Routes::target`], for a shard named by id.
    pub fn target_shard(&mut self, shard_id: ShardId, prefer_leader: bool) -> Option<Target> {
        let servers = self.servers.clone();
        let route = self.route_by_id_mut(shard_id)?;
        Self::pick(route, &servers, prefer_leader)
    }

    /// The shard holding `key`.
    pub fn shard_of(&mut self, key: &[u8]) -> Option<(ShardId, Epoch)> {
        self.route_mut(key).map(|r| (r.shard_id(), r.epoch()))
    }

    fn pick(route: &mut Route, servers: &BTreeMap<ServerId, String>, prefer_leader: bool) -> Option<Target> {
        let replicas = route.replica_servers();
        if replicas.is_empty() {
            return None;
        }
        let server_id = match route.leader {
            Some(l) if prefer_leader => l,
            _ => {
                let s = replicas[route.next_replica % replicas.len()];
                route.next_replica = route.next_replica.wrapping_add(1);
                s
            }
        };
        Some(Target {
            shard_id: route.shard_id(),
            epoch: route.epoch(),
            server_id,
            addr: servers.get(&server_id)?.clone(),
            shard_end: route.descriptor.end_key.clone(),
        })
    }

    /// A server said the leader is elsewhere (or unknown).
    pub fn note_leader(&mut self, shard_id: ShardId, leader: Option<(ServerId, String)>) {
        if let Some((id, addr)) = &leader {
            self.servers.insert(*id, addr.clone());
        }
        if let Some(route) = self.route_by_id_mut(shard_id) {
            route.leader = leader.map(|(id, _)| id);
        }
    }

    /// A server could not be reached or could not serve: stop preferring it.
    pub fn note_failure(&mut self, shard_id: ShardId, server_id: ServerId) {
        if let Some(route) = self.route_by_id_mut(shard_id) {
            if route.leader == Some(server_id) {
                route.leader = None;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A made-up cluster for tests: 3 servers, shard 1 `["", "m")` led by
    /// server 2, shard 2 `["m", "")` with no known leader.
    pub(crate) fn info() -> proto::ClusterInfoResponse {
        let shard = |id: u64, start: &str, end: &str, leader: u64| proto::ShardInfo {
            descriptor: Some(proto::ShardDescriptor {
                shard_id: id,
                start_key: start.as_bytes().to_vec(),
                end_key: end.as_bytes().to_vec(),
                epoch: 1,
                replicas: (1..=3).map(|s| proto::ReplicaDescriptor { replica_id: id * 10 + s, server_id: s }).collect(),
            }),
            leader_server_id: leader,
        };
        proto::ClusterInfoResponse {
            cluster_id: "c".into(),
            servers: (1..=3).map(|s| proto::ServerInfo { server_id: s, addr: format!("h:{s}") }).collect(),
            shards: vec![shard(1, "", "m", 2), shard(2, "m", "", 0)],
        }
    }

    #[test]
    fn keys_route_to_the_shard_holding_them() {
        let mut routes = Routes::from_cluster_info(&info());
        assert_eq!(routes.target(b"", true).unwrap().shard_id, ShardId(1));
        assert_eq!(routes.target(b"apple", true).unwrap().addr, "h:2");
        assert_eq!(routes.target(b"m", true).unwrap().shard_id, ShardId(2));
        assert_eq!(routes.target(b"zzz", true).unwrap().shard_end, b"");
    }

    #[test]
    fn hints_and_failures_move_the_leader() {
        let mut routes = Routes::from_cluster_info(&info());
        routes.note_leader(ShardId(1), Some((ServerId(3), "h:3".into())));
        assert_eq!(routes.target(b"a", true).unwrap().server_id, ServerId(3));
        routes.note_failure(ShardId(1), ServerId(3));
        // Unknown leader: rotate through the replicas.
        let seen: Vec<ServerId> = (0..3).map(|_| routes.target(b"a", true).unwrap().server_id).collect();
        assert_eq!(seen, vec![ServerId(1), ServerId(2), ServerId(3)]);
    }
}
