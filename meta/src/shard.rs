//! A shard as the server, the client and the placement driver see it:
//! its key range, the epoch of its descriptor, and where its replicas
//! are, in which role.
//!
//! ```text
//!   ShardDescriptor { shard2, ["g", "n"), rv1 cv1, [r4@s2, r5@s3, r6@s1] }
//!   contains("h") = true     contains("n") = false (the end is exclusive)
//! ```
//!
//! An empty `end_key` means "to the end of the key space"; the start is
//! inclusive.
//!
//! The epoch has two counters, as TiKV's region epoch: `range_ver` (+1 on
//! every split and merge) and `conf_ver` (+1 on every membership change).
//! A data request names the `range_ver` it routed by, and a replica
//! refuses it when its own differs (`WrongShard`, with its descriptor), so
//! a client never acts on a range that moved; moving a replica changes
//! only `conf_ver`, and so never aborts a transaction. Of two descriptors
//! whose ranges overlap, the one with the higher epoch
//! ([`ShardEpoch::is_newer_than`]) is the truth: a split's halves have a
//! higher `range_ver` than the shard they came from.

use std::fmt;

use crate::ids::{ConfVer, RangeVer, ReplicaId, ServerId, ShardId};

/// A shard's range and replicas at one epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardDescriptor {
    pub shard_id: ShardId,
    /// Inclusive.
    pub start_key: Vec<u8>,
    /// Exclusive; empty: to the end of the key space.
    pub end_key: Vec<u8>,
    pub epoch: ShardEpoch,
    pub replicas: Vec<ReplicaDescriptor>,
}

/// The version of a shard descriptor (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ShardEpoch {
    /// +1 on every split and merge.
    pub range_ver: RangeVer,
    /// +1 on every membership change.
    pub conf_ver: ConfVer,
}

impl ShardEpoch {
    /// The epoch of a shard of the static layout, as first created.
    pub const INITIAL: ShardEpoch = ShardEpoch { range_ver: RangeVer(1), conf_ver: ConfVer(1) };

    /// Did this descriptor come after `other`: a later range (split,
    /// merge), or the same range with later replicas? Two descriptors that
    /// overlap are ordered by this; neither is newer if both are equal,
    /// or if one has the later range and the other the later replicas
    /// (which cannot both be true of one shard's history: a split keeps
    /// the `conf_ver`, so the side with the later range also has every
    /// earlier membership change).
    pub fn is_newer_than(&self, other: &ShardEpoch) -> bool {
        (self.range_ver > other.range_ver && self.conf_ver >= other.conf_ver)
            || (self.range_ver >= other.range_ver && self.conf_ver > other.conf_ver)
    }
}

impl fmt::Display for ShardEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.range_ver, self.conf_ver)
    }
}

/// One replica of a shard: its Raft peer id, the server holding it, and
/// what it does in the shard's Raft group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaDescriptor {
    pub replica_id: ReplicaId,
    pub server_id: ServerId,
    pub role: ReplicaRole,
}

/// What a replica does in its shard's Raft group. A move passes through
/// the joint states (Raft thesis §4.3, raft-rs `ConfChangeV2`): a replica
/// being added is a learner until caught up, then an incoming voter in
/// the joint configuration, then a voter; one being removed is demoted
/// (a voter in the old configuration only, a learner in the new), then
/// removed as a learner (TiKV's peer roles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReplicaRole {
    /// Votes in the current configuration.
    #[default]
    Voter,
    /// Receives the log, never votes.
    Learner,
    /// Votes in the incoming half of a joint configuration only.
    IncomingVoter,
    /// Votes in the outgoing half of a joint configuration only; a
    /// learner once the joint configuration is left.
    DemotingVoter,
}

/// The bounds of an uninitialized replica's range: `[UNINITIALIZED_KEY,
/// UNINITIALIZED_KEY)` holds no key.
pub const UNINITIALIZED_KEY: &[u8] = b"\xff\xff";

impl ShardDescriptor {
    /// The descriptor of a replica created before it knows its shard (a
    /// message from the shard's group arrived first; a snapshot from its
    /// leader will bring the real one): an empty range, no replicas, epoch
    /// zero, so it holds no key and is older than any real descriptor.
    pub fn uninitialized(shard_id: ShardId) -> ShardDescriptor {
        ShardDescriptor {
            shard_id,
            start_key: UNINITIALIZED_KEY.to_vec(),
            end_key: UNINITIALIZED_KEY.to_vec(),
            epoch: ShardEpoch::default(),
            replicas: Vec::new(),
        }
    }

    /// Does this describe a range (not an uninitialized replica)?
    pub fn is_initialized(&self) -> bool {
        self.start_key != self.end_key || self.end_key.is_empty()
    }

    /// Is `key` in `[start_key, end_key)`?
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice() && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }

    /// Does it hold the keys just below `end` (an empty `end`: the last
    /// keys of all), where a reverse scan of `[.., end)` reads first? It
    /// starts below `end` and ends at or after it.
    pub fn holds_below(&self, end: &[u8]) -> bool {
        let above_start = end.is_empty() || self.start_key.as_slice() < end;
        above_start && (self.end_key.is_empty() || (!end.is_empty() && end <= self.end_key.as_slice()))
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
            epoch: ShardEpoch::INITIAL,
            replicas: vec![
                ReplicaDescriptor { replica_id: ReplicaId(4), server_id: ServerId(2), role: ReplicaRole::Voter },
                ReplicaDescriptor { replica_id: ReplicaId(5), server_id: ServerId(3), role: ReplicaRole::Learner },
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
        let blank = ShardDescriptor::uninitialized(ShardId(9));
        assert!(!blank.is_initialized() && d.is_initialized() && last.is_initialized());
        assert!(!blank.contains(b"") && !blank.contains(b"a") && !blank.contains(UNINITIALIZED_KEY));
        assert!(!blank.contains(&[0xff; 40]));
        assert!(d.epoch.is_newer_than(&blank.epoch));
    }

    /// Goal: a shard holds the keys just below an end it starts before and
    /// ends at or after; an empty end is the last shard's.
    #[test]
    fn the_keys_below_an_end_are_held_by_the_shard_ending_at_or_after_it() {
        let d = shard("g", "n");
        assert!(d.holds_below(b"n") && d.holds_below(b"h") && d.holds_below(b"g\0"));
        assert!(!d.holds_below(b"g") && !d.holds_below(b"a") && !d.holds_below(b"n\0") && !d.holds_below(b""));
        assert!(shard("t", "").holds_below(b"") && shard("t", "").holds_below(b"z"));
        assert!(shard("", "g").holds_below(b"a") && !shard("", "g").holds_below(b""));
    }

    fn epoch(range_ver: u64, conf_ver: u64) -> ShardEpoch {
        ShardEpoch { range_ver: RangeVer(range_ver), conf_ver: ConfVer(conf_ver) }
    }

    /// Goal: of two descriptors, the later one by range or by membership
    /// is newer; equal epochs, and a later range with an earlier
    /// membership (which no shard's history produces), are not.
    #[test]
    fn epochs_are_ordered_by_range_then_membership() {
        let cases = [
            // (this, other, this is newer)
            (epoch(1, 1), epoch(1, 1), false),
            (epoch(2, 1), epoch(1, 1), true),
            (epoch(1, 2), epoch(1, 1), true),
            (epoch(2, 3), epoch(1, 1), true),
            (epoch(1, 1), epoch(2, 1), false),
            (epoch(1, 1), epoch(1, 2), false),
            (epoch(2, 1), epoch(1, 2), false),
            (epoch(1, 2), epoch(2, 1), false),
        ];
        for (this, other, newer) in cases {
            assert_eq!(this.is_newer_than(&other), newer, "{this} newer than {other}?");
        }
    }
}
