//! The client's cache of the shard map: which shard holds a key, which
//! replica leads it, and where servers listen.
//!
//! The cache starts from any server's `Admin.ClusterInfo` and is corrected
//! by what servers say: a `NotLeader` hint moves the leader, a `WrongShard`
//! brings the server's descriptors (or, without them, a refresh), a server
//! that cannot be reached loses its leadership in the cache and the next
//! replica is tried.
//!
//! The cache only moves forward ([`Routes::update`]): a descriptor
//! replaces the cached ones its range overlaps only if its epoch is newer
//! than each of theirs (`meta::ShardEpoch::is_newer_than`), so a late or
//! stale answer (a server that has not applied a split yet, a refresh
//! from a lagging server) never brings back a range that moved on.
//!
//! ```text
//!   cached: shard1 ["", "m") rv1    shard2 ["m", "") rv1
//!   update: shard3 ["g", "m") rv2   -> replaces shard1? no: covers only part
//!           shard1 ["", "g") rv2    of it; both rv2 > rv1: shard1 ["", "g")
//!                                   rv2 and shard3 ["g", "m") rv2 replace it
//!   update: shard1 ["", "m") rv1    -> ignored (older than what it overlaps)
//! ```

use std::collections::BTreeMap;

use meta::{ConfVer, RangeVer, ServerId, ShardEpoch, ShardId};

/// The route of the shard holding `key`, found without copying the key.
fn route_of<'a>(shards: &'a mut BTreeMap<Vec<u8>, Route>, key: &[u8]) -> Option<&'a mut Route> {
    use std::ops::Bound;
    let (_, route) = shards.range_mut::<[u8], _>((Bound::Unbounded, Bound::Included(key))).next_back()?;
    let end = &route.descriptor.end_key;
    (end.is_empty() || key < end.as_slice()).then_some(route)
}

/// The route of the shard holding the keys just below `end` (an empty
/// `end`: the last shard), where a reverse scan of `[.., end)` starts.
fn route_before<'a>(shards: &'a mut BTreeMap<Vec<u8>, Route>, end: &[u8]) -> Option<&'a mut Route> {
    use std::ops::Bound;
    let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
    let (_, route) = shards.range_mut::<[u8], _>((Bound::Unbounded, upper)).next_back()?;
    holds_below(&route.descriptor, end).then_some(route)
}

/// Whether shard `d` holds the keys just below `end` (an empty `end`: the
/// last keys of all): it starts below `end` and ends at or after it.
pub(crate) fn holds_below(d: &proto::ShardDescriptor, end: &[u8]) -> bool {
    let above_start = end.is_empty() || d.start_key.as_slice() < end;
    above_start && (d.end_key.is_empty() || (!end.is_empty() && end <= d.end_key.as_slice()))
}

fn route_by_id(shards: &mut BTreeMap<Vec<u8>, Route>, shard_id: ShardId) -> Option<&mut Route> {
    shards.values_mut().find(|r| r.shard_id() == shard_id)
}

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

    pub fn epoch(&self) -> ShardEpoch {
        epoch_of(&self.descriptor)
    }

    fn replica_servers(&self) -> Vec<ServerId> {
        self.descriptor.replicas.iter().map(|r| ServerId(r.server_id)).collect()
    }
}

/// Where to send one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub shard_id: ShardId,
    /// The range the request is routed by.
    pub range_ver: RangeVer,
    pub server_id: ServerId,
    pub addr: String,
    /// The shard's first key, as the route has it.
    pub shard_start: Vec<u8>,
    /// The shard's end key (empty: end of the key space), for paging.
    pub shard_end: Vec<u8>,
}

impl Target {
    /// Does the shard, as routed, hold `key`?
    pub fn holds(&self, key: &[u8]) -> bool {
        self.shard_start.as_slice() <= key && (self.shard_end.is_empty() || key < self.shard_end.as_slice())
    }
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
        routes.refresh(info);
        routes
    }

    /// Takes in a server's view of the cluster: its servers' addresses,
    /// and its descriptors and leaders where they are not older than the
    /// cache's ([`Routes::update`]).
    pub fn refresh(&mut self, info: &proto::ClusterInfoResponse) {
        for s in &info.servers {
            self.servers.insert(ServerId(s.server_id), s.addr.clone());
        }
        for shard in &info.shards {
            let Some(d) = &shard.descriptor else { continue };
            self.update([d.clone()]);
            let leader = (shard.leader_server_id != 0).then_some(ServerId(shard.leader_server_id));
            if let Some(route) = self.shards.get_mut(&d.start_key).filter(|r| r.descriptor == *d) {
                if leader.is_some() {
                    route.leader = leader;
                }
            }
        }
    }

    /// Takes in descriptors a server sent (with a `WrongShard`, or a
    /// refresh). Each replaces the cached routes its range overlaps if it
    /// is newer than every one of them, and is ignored otherwise (module
    /// docs); a route that stays keeps its leader. Returns how many were
    /// taken.
    pub fn update(&mut self, descriptors: impl IntoIterator<Item = proto::ShardDescriptor>) -> usize {
        let mut taken = 0;
        for d in descriptors {
            let epoch = epoch_of(&d);
            let overlapping: Vec<Vec<u8>> = self
                .shards
                .iter()
                .filter(|(_, r)| overlaps(&r.descriptor, &d))
                .map(|(start, _)| start.clone())
                .collect();
            let newer_than_all = overlapping.iter().all(|start| epoch.is_newer_than(&self.shards[start].epoch()));
            if !newer_than_all {
                continue;
            }
            // A leader stays if the shard keeps the server's replica.
            let mut leader = None;
            for start in overlapping {
                let old = self.shards.remove(&start).expect("listed above");
                if old.descriptor.shard_id == d.shard_id {
                    leader = old.leader.filter(|l| d.replicas.iter().any(|r| r.server_id == l.0));
                }
            }
            self.shards.insert(d.start_key.clone(), Route { descriptor: d, leader, next_replica: 0 });
            taken += 1;
        }
        taken
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Do the routes cover the whole key space, with no gap?
    pub fn covers_everything(&self) -> bool {
        let mut next: &[u8] = b"";
        for (start, route) in &self.shards {
            if start.as_slice() != next {
                return false;
            }
            next = &route.descriptor.end_key;
            if next.is_empty() {
                return true;
            }
        }
        false
    }

    pub fn server_addrs(&self) -> Vec<String> {
        self.servers.values().cloned().collect()
    }

    /// The addresses of shard `shard_id`'s replicas' servers, as far as
    /// known.
    pub fn replica_addrs(&mut self, shard_id: ShardId) -> Vec<String> {
        let Some(route) = route_by_id(&mut self.shards, shard_id) else { return Vec::new() };
        route.replica_servers().iter().filter_map(|s| self.servers.get(s).cloned()).collect()
    }

    pub fn shards(&self) -> impl Iterator<Item = &Route> {
        self.shards.values()
    }

    fn route_mut(&mut self, key: &[u8]) -> Option<&mut Route> {
        route_of(&mut self.shards, key)
    }

    fn route_by_id_mut(&mut self, shard_id: ShardId) -> Option<&mut Route> {
        route_by_id(&mut self.shards, shard_id)
    }

    /// Where to send a request for `key`: the leader if known (or if
    /// `prefer_leader` is false, the next replica in rotation).
    pub fn target(&mut self, key: &[u8], prefer_leader: bool) -> Option<Target> {
        let route = route_of(&mut self.shards, key)?;
        Self::pick(route, &self.servers, prefer_leader)
    }

    /// Like [`Routes::target`], for the shard holding the keys just below
    /// `end` (a reverse scan's).
    pub fn target_before(&mut self, end: &[u8], prefer_leader: bool) -> Option<Target> {
        let route = route_before(&mut self.shards, end)?;
        Self::pick(route, &self.servers, prefer_leader)
    }

    /// Like [`Routes::target`], for a shard named by id.
    pub fn target_shard(&mut self, shard_id: ShardId, prefer_leader: bool) -> Option<Target> {
        let route = route_by_id(&mut self.shards, shard_id)?;
        Self::pick(route, &self.servers, prefer_leader)
    }

    /// The shard holding `key`.
    pub fn shard_of(&mut self, key: &[u8]) -> Option<(ShardId, RangeVer)> {
        self.route_mut(key).map(|r| (r.shard_id(), r.epoch().range_ver))
    }

    /// The one shard holding all of `[start, end)` (empty `end`: to the
    /// end of the key space), if one does.
    pub fn shard_spanning(&mut self, start: &[u8], end: &[u8]) -> Option<ShardId> {
        let route = self.route_mut(start)?;
        let shard_end = route.descriptor.end_key.as_slice();
        let inside = shard_end.is_empty() || (!end.is_empty() && end <= shard_end);
        inside.then(|| route.shard_id())
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
            range_ver: route.epoch().range_ver,
            server_id,
            addr: servers.get(&server_id)?.clone(),
            shard_start: route.descriptor.start_key.clone(),
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

/// A wire descriptor's epoch.
pub fn epoch_of(d: &proto::ShardDescriptor) -> ShardEpoch {
    ShardEpoch { range_ver: RangeVer(d.range_ver), conf_ver: ConfVer(d.conf_ver) }
}

/// Do the two descriptors' ranges share a key?
fn overlaps(a: &proto::ShardDescriptor, b: &proto::ShardDescriptor) -> bool {
    let a_before_b_ends = b.end_key.is_empty() || a.start_key < b.end_key;
    let b_before_a_ends = a.end_key.is_empty() || b.start_key < a.end_key;
    a_before_b_ends && b_before_a_ends
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
                range_ver: 1,
                conf_ver: 1,
                replicas: (1..=3)
                    .map(|s| proto::ReplicaDescriptor { replica_id: id * 10 + s, server_id: s, role: 0 })
                    .collect(),
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

    /// Goal: a span is held by one shard only if it starts and ends
    /// inside it; an unbounded end only by the last shard.
    #[test]
    fn a_span_is_held_by_one_shard_only_if_it_ends_inside_it() {
        let mut routes = Routes::from_cluster_info(&info());
        let cases: [(&str, &str, Option<u64>); 7] = [
            ("a", "b", Some(1)),
            ("", "m", Some(1)),
            ("a", "n", None),
            ("a", "", None),
            ("m", "", Some(2)),
            ("q", "z", Some(2)),
            ("l", "m\0", None),
        ];
        for (start, end, expected) in cases {
            let got = routes.shard_spanning(start.as_bytes(), end.as_bytes()).map(|s| s.0);
            assert_eq!(got, expected, "[{start:?}, {end:?})");
        }
        assert_eq!(Routes::default().shard_spanning(b"a", b"b"), None, "no routes known");
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

    fn desc(id: u64, start: &str, end: &str, range_ver: u64, conf_ver: u64, servers: &[u64]) -> proto::ShardDescriptor {
        proto::ShardDescriptor {
            shard_id: id,
            start_key: start.as_bytes().to_vec(),
            end_key: end.as_bytes().to_vec(),
            range_ver,
            conf_ver,
            replicas: servers
                .iter()
                .map(|s| proto::ReplicaDescriptor { replica_id: id * 10 + s, server_id: *s, role: 0 })
                .collect(),
        }
    }

    /// The cached map as `(shard, start, end, range_ver, conf_ver, leader)`.
    fn map(routes: &Routes) -> Vec<(u64, String, String, u64, u64, Option<u64>)> {
        routes
            .shards()
            .map(|r| {
                let d = &r.descriptor;
                let key = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
                (d.shard_id, key(&d.start_key), key(&d.end_key), d.range_ver, d.conf_ver, r.leader.map(|l| l.0))
            })
            .collect()
    }

    /// Goal: the cache only moves forward. Each case starts from shard 1
    /// `["", "m")` (rv1 cv1, led by server 2) and shard 2 `["m", "")`,
    /// takes in descriptors in order, and must end with the map given:
    /// newer descriptors replace what they overlap, older or equal ones
    /// (a server that has not applied a split, a late answer) change
    /// nothing, and a leader survives a membership change that keeps it.
    #[test]
    fn the_route_cache_only_moves_forward() {
        type Map = Vec<(u64, &'static str, &'static str, u64, u64, Option<u64>)>;
        let cases: Vec<(&str, Vec<proto::ShardDescriptor>, usize, Map)> = vec![
            (
                "a split, both halves",
                vec![desc(1, "", "g", 2, 1, &[1, 2, 3]), desc(3, "g", "m", 2, 1, &[1, 2, 3])],
                2,
                vec![(1, "", "g", 2, 1, Some(2)), (3, "g", "m", 2, 1, None), (2, "m", "", 1, 1, None)],
            ),
            (
                "a split's right half alone replaces the parent it overlaps",
                vec![desc(3, "g", "m", 2, 1, &[1, 2, 3])],
                1,
                vec![(3, "g", "m", 2, 1, None), (2, "m", "", 1, 1, None)],
            ),
            (
                "the parent, late, after the split: ignored",
                vec![desc(1, "", "g", 2, 1, &[1, 2, 3]), desc(1, "", "m", 1, 1, &[1, 2, 3])],
                1,
                vec![(1, "", "g", 2, 1, Some(2)), (2, "m", "", 1, 1, None)],
            ),
            (
                "the same descriptor again: nothing changes",
                vec![desc(1, "", "m", 1, 1, &[1, 2, 3])],
                0,
                vec![(1, "", "m", 1, 1, Some(2)), (2, "m", "", 1, 1, None)],
            ),
            (
                "a move that keeps the leader's replica",
                vec![desc(1, "", "m", 1, 2, &[2, 3, 4])],
                1,
                vec![(1, "", "m", 1, 2, Some(2)), (2, "m", "", 1, 1, None)],
            ),
            (
                "a move that takes the leader's replica away",
                vec![desc(1, "", "m", 1, 2, &[1, 3, 4])],
                1,
                vec![(1, "", "m", 1, 2, None), (2, "m", "", 1, 1, None)],
            ),
            (
                "an older membership after a newer one: ignored",
                vec![desc(1, "", "m", 1, 3, &[1, 3, 4]), desc(1, "", "m", 1, 2, &[1, 2, 3])],
                1,
                vec![(1, "", "m", 1, 3, None), (2, "m", "", 1, 1, None)],
            ),
            ("a merge of both shards", vec![desc(1, "", "", 2, 1, &[1, 2, 3])], 1, vec![(1, "", "", 2, 1, Some(2))]),
        ];
        for (name, descriptors, taken, expected) in cases {
            let mut routes = Routes::from_cluster_info(&info());
            assert_eq!(routes.update(descriptors), taken, "{name}");
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(id, s, e, rv, cv, l)| (id, s.to_string(), e.to_string(), rv, cv, l))
                .collect();
            assert_eq!(map(&routes), expected, "{name}");
        }
    }

    /// Goal: a refresh from a server that lags (it has not applied a
    /// split yet) does not undo the split in the cache, but its leaders
    /// and addresses are taken where its descriptors are current.
    #[test]
    fn routes_cover_everything_only_without_gaps() {
        let mut routes = Routes::default();
        assert!(!routes.covers_everything());
        routes.update([desc(1, "", "m", 1, 1, &[1])]);
        assert!(!routes.covers_everything(), "nothing from m on");
        routes.update([desc(2, "t", "", 1, 1, &[1])]);
        assert!(!routes.covers_everything(), "a gap from m to t");
        routes.update([desc(3, "m", "t", 1, 1, &[1])]);
        assert!(routes.covers_everything());
    }

    /// Goal: a reverse scan of `[.., end)` is routed to the shard whose
    /// range holds the keys just below `end`: the one ending at or after
    /// it, not the one starting at it; none where the cache has a gap.
    #[test]
    fn reverse_scans_route_to_the_shard_below_their_end() {
        let mut routes = Routes::default();
        routes.update([desc(1, "", "g", 1, 1, &[1]), desc(2, "g", "m", 1, 1, &[1]), desc(4, "t", "", 1, 1, &[1])]);
        let shard =
            |routes: &mut Routes, end: &str| route_before(&mut routes.shards, end.as_bytes()).map(|r| r.shard_id().0);
        assert_eq!(shard(&mut routes, "g"), Some(1));
        assert_eq!(shard(&mut routes, "g\0"), Some(2));
        assert_eq!(shard(&mut routes, "m"), Some(2));
        assert_eq!(shard(&mut routes, "a"), Some(1));
        assert_eq!(shard(&mut routes, ""), Some(4));
        assert_eq!(shard(&mut routes, "p"), None, "m to t is a gap");
        assert_eq!(shard(&mut routes, "t"), None, "m to t is a gap");
        assert_eq!(shard(&mut routes, "t\0"), Some(4));
    }

    #[test]
    fn a_refresh_from_a_lagging_server_does_not_regress() {
        let mut routes = Routes::from_cluster_info(&info());
        routes.update([desc(1, "", "g", 2, 1, &[1, 2, 3]), desc(3, "g", "m", 2, 1, &[1, 2, 3])]);
        let mut stale = info();
        stale.shards[1].leader_server_id = 3;
        routes.refresh(&stale);
        let expected = vec![
            (1, "".to_string(), "g".to_string(), 2, 1, Some(2)),
            (3, "g".to_string(), "m".to_string(), 2, 1, None),
            (2, "m".to_string(), "".to_string(), 1, 1, Some(3)),
        ];
        assert_eq!(map(&routes), expected);
    }
}
