//! A shard as the server, the client and the placement driver see it:
//! its key range, the epoch of that range, and where its replicas are.
//!
//! ```text
//!   ShardDescriptor { shard2, ["g", "n"), epoch 1, [r4@s2, r5@s3, r6@s1] }
//!   contains("h") = true     contains("n") = false (the end is exclusive)
//! ```
//!
//! An empty `end_key` means "to the end of the key space"; the start is
//! inclusive. A request that names a shard also names the epoch it
//! routed by, and a replica refuses it when its own descriptor's differs
//! (`WrongShard`), so a client never acts on a range that moved.

use crate::ids::{Epoch, ReplicaId, ServerId, ShardId};

/// A shard's range and replicas at one epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardDescriptor {
    pub shard_id: ShardId,
    /// Inclusive.
    pub start_key: Vec<u8>,
    /// Exclusive; empty: to the end of the key space.
    pub end_key: Vec<u8>,
    /// Bumped by every change to the range or the replicas.
    pub epoch: Epoch,
    pub replicas: Vec<ReplicaDescriptor>,
}

/// One replica of a shard: its Raft peer id and the server holding it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaDescriptor {
    pub replica_id: ReplicaId,
    pub server_id: ServerId,
}

impl ShardDescriptor {
    /// Is `key` in `[start_key, end_key)`?
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice() && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }

    /// The server holding replica `replica`, if it is one of this shard's.
    pub fn server_of(&self, replica: ReplicaId) -> Option<ServerId> {
        self.replicas.iter().find(|r| r.replica_id == replica).map(|r| r.server_id)
    }

    /// The replicas of this shard on `server`.
    pub fn replicas_on(&self, server: ServerId) -> impl Iterator<Item = ReplicaId> + '_ {
        self.replicas.iter().filter(move |r| r.server_id == server).map(|r| r.replica_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(start: &str, end: &str) -> ShardDescriptor {
        ShardDescriptor {
            shard_id: ShardId(2),
            start_key: start.into(),
            end_key: end.into(),
            epoch: Epoch(1),
            replicas: vec![
                ReplicaDescriptor { replica_id: ReplicaId(4), server_id: ServerId(2) },
                ReplicaDescriptor { replica_id: ReplicaId(5), server_id: ServerId(3) },
            ],
        }
    }

    /// Goal: the range is half-open, and an empty end reaches past every
    /// key; replicas are found by id and by server.
    #[test]
    fn ranges_are_half_open_and_replicas_are_found() {
        let d = shard("g", "n");
        assert!(d.contains(b"g") && d.contains(b"h") && d.contains(b"mzzz"));
        assert!(!d.contains(b"n") && !d.contains(b"a") && !d.contains(b""));
        let last = shard("t", "");
        assert!(last.contains(b"t") && last.contains(&[0xff; 40]));
        let first = shard("", "g");
        assert!(first.contains(b"") && !first.contains(b"g"));
        assert_eq!(d.server_of(ReplicaId(5)), Some(ServerId(3)));
        assert_eq!(d.server_of(ReplicaId(6)), None);
        assert_eq!(d.replicas_on(ServerId(2)).collect::<Vec<_>>(), vec![ReplicaId(4)]);
    }
}
