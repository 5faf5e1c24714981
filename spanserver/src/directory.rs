//! Where every server of the cluster is: those of the cluster description,
//! and those that joined since (`spandb start --join`).
//!
//! A server that joins is given an id and recorded, with its address, in
//! the system key `meta::keys::JOINED_SERVERS` (`Admin.JoinServer`, at the
//! leader of the shard holding it). Every server reads that record every
//! `limits::JOINED_SERVERS_REFRESH` (`Peers::follow_servers`) and adds what
//! is new here; the Raft transport and the peer calls dial whatever this
//! directory names, so a joined server is reachable once its record has
//! been read, without a restart anywhere.
//!
//! ```text
//!   cluster description: s1 a:7000, s2 a:7001, s3 a:7002   (fixed)
//!   sys/joined:          s7 b:7000                          (grows)
//!   directory:           s1 s2 s3 s7
//! ```
//!
//! It also holds the draining (decommissioned) servers, read from
//! `meta::keys::DRAINING_SERVERS` in the same round: the clock monitor
//! stops counting one in its quorum once it no longer answers
//! (`clock.rs`), so a decommissioned server that was shut down does not
//! take the quorum of clocks out of reach for those left.
//!
//! Invariants: a server's entry never changes once known (a joined
//! server keeps its id and address; a server that moves address joins
//! again, under a new id), and none is ever removed (a decommissioned
//! server holds no replica, so nothing dials it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use meta::{ClusterSpec, ServerId};

use crate::limits;

/// The servers' addresses (see the module docs).
#[derive(Debug)]
pub struct Directory {
    /// Clients' addresses, by server.
    addrs: RwLock<BTreeMap<ServerId, String>>,
    /// Where to dial a server for peer traffic when it is not its address
    /// (the jepsen harness's proxies; `ServerConfig::peer_addrs`).
    peer_addrs: BTreeMap<ServerId, String>,
    /// The servers being decommissioned, as last read.
    draining: RwLock<BTreeSet<ServerId>>,
    /// The largest id of the cluster description: joined servers' ids are
    /// above it.
    static_max: ServerId,
}

impl Directory {
    pub fn new(cluster: &ClusterSpec, peer_addrs: &BTreeMap<ServerId, String>) -> Directory {
        Directory {
            addrs: RwLock::new(cluster.servers.iter().map(|s| (s.id, s.addr.clone())).collect()),
            peer_addrs: peer_addrs.clone(),
            draining: RwLock::default(),
            static_max: cluster.servers.iter().map(|s| s.id).max().unwrap_or(ServerId(0)),
        }
    }

    /// Where clients reach `server`.
    pub fn addr(&self, server: ServerId) -> Option<String> {
        self.addrs.read().expect("directory lock").get(&server).cloned()
    }

    /// Where this server dials `server` for peer traffic.
    pub fn peer_addr(&self, server: ServerId) -> Option<String> {
        self.peer_addrs.get(&server).cloned().or_else(|| self.addr(server))
    }

    pub fn contains(&self, server: ServerId) -> bool {
        self.addrs.read().expect("directory lock").contains_key(&server)
    }

    /// Every server known, ascending by id, with its clients' address.
    pub fn servers(&self) -> Vec<(ServerId, String)> {
        self.addrs.read().expect("directory lock").iter().map(|(id, a)| (*id, a.clone())).collect()
    }

    /// The servers being decommissioned, as last read.
    pub fn set_draining(&self, draining: BTreeSet<ServerId>) {
        *self.draining.write().expect("directory lock") = draining;
    }

    pub fn is_draining(&self, server: ServerId) -> bool {
        self.draining.read().expect("directory lock").contains(&server)
    }

    /// The largest id of the cluster description.
    pub fn static_max(&self) -> ServerId {
        self.static_max
    }

    /// Every server known but `me`.
    pub fn others(&self, me: ServerId) -> Vec<ServerId> {
        self.addrs.read().expect("directory lock").keys().copied().filter(|s| *s != me).collect()
    }

    /// The id a server joining gets for the allocator's id `allocated`:
    /// above every id of the cluster description, so the two never meet.
    pub fn joined_id(&self, allocated: u64) -> Option<ServerId> {
        self.static_max.0.checked_add(allocated).map(ServerId)
    }

    /// Adds the joined servers of `joined` not known yet (an entry already
    /// known is kept as it is); returns those added.
    pub fn learn(&self, joined: &BTreeMap<u64, String>) -> Vec<ServerId> {
        let mut addrs = self.addrs.write().expect("directory lock");
        let mut added = Vec::new();
        for (id, addr) in joined {
            if let std::collections::btree_map::Entry::Vacant(e) = addrs.entry(ServerId(*id)) {
                e.insert(addr.clone());
                added.push(ServerId(*id));
            }
        }
        added
    }
}

/// Asks the server at `at`, of the cluster `cluster` describes, to join
/// this server, reachable at `addr`, to it (`Peer.Join`); the id given.
pub async fn ask_to_join(cluster: &ClusterSpec, at: &str, addr: &str) -> Result<ServerId, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{at}"))
        .map_err(|e| format!("{at}: {e}"))?
        .connect_timeout(limits::PEER_CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {at}: {e}"))?;
    let secret = crate::auth::PeerSecret::new(&cluster.peer_secret);
    let mut peer = proto::peer_client::PeerClient::with_interceptor(channel, secret);
    let request = proto::JoinRequest { cluster_id: cluster.cluster_id.clone(), addr: addr.to_string() };
    let answer = peer.join(request).await.map_err(|s| format!("{at} refused the join: {}", s.message()))?;
    Ok(ServerId(answer.into_inner().server_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClusterSpec {
        let text = "cluster_id = \"t\"\nreplication = 1\n[[servers]]\nid = 1\naddr = \"h:1\"\n[[servers]]\nid = 3\naddr = \"h:3\"\n";
        toml::from_str(text).expect("a cluster description")
    }

    #[test]
    fn joined_servers_are_added_once_and_get_ids_above_the_description() {
        let d = Directory::new(&spec(), &[(ServerId(3), "proxy:3".to_string())].into());
        assert_eq!(d.peer_addr(ServerId(3)).as_deref(), Some("proxy:3"));
        assert_eq!(d.addr(ServerId(3)).as_deref(), Some("h:3"));
        assert_eq!(d.joined_id(5), Some(ServerId(8)));
        assert_eq!(d.joined_id(u64::MAX), None);
        let joined: BTreeMap<u64, String> = [(8, "j:8".to_string()), (3, "elsewhere:3".to_string())].into();
        assert_eq!(d.learn(&joined), vec![ServerId(8)]);
        assert_eq!(d.learn(&joined), vec![]);
        assert_eq!(d.addr(ServerId(3)).as_deref(), Some("h:3"), "a known entry never changes");
        assert_eq!(d.others(ServerId(1)), vec![ServerId(3), ServerId(8)]);
    }
}
