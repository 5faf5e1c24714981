//! Identifier newtypes and the transaction's priority.

use std::fmt;

use serde::{Deserialize, Serialize};
use truetime::Timestamp;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A spanserver process, named in the cluster description. Non-zero.
    ServerId, "s"
);
id_type!(
    /// A shard (a key range and its Raft group). Non-zero.
    ShardId, "shard"
);
id_type!(
    /// A Raft peer within one shard's group. Non-zero, never reused.
    ReplicaId, "r"
);
id_type!(
    /// A request to a shard's transaction state machine, numbered by the
    /// driver that submits it so the answer finds its way back (0 until
    /// the driver numbers it).
    RequestId, "req"
);
id_type!(
    /// The version of a shard's key range: +1 on every split and merge.
    /// A data request names the one it routed by, and a replica whose
    /// range has moved on refuses it (`WrongShard`), so a client never
    /// acts on a range that changed; replica moves leave it alone, so
    /// they never abort a transaction (TiKV's region epoch `version`).
    RangeVer, "rv"
);
id_type!(
    /// The version of a shard's membership: +1 on every conf change
    /// (TiKV's region epoch `conf_ver`).
    ConfVer, "cv"
);
id_type!(
    /// A Raft term of one shard's group (raft-rs counts them as `u64`;
    /// this names one where it leaves Raft, as in a lock lease).
    Term, "term"
);

/// A transaction, unique cluster-wide: drawn at random by the client at
/// `begin` ([`TxnId::random`]), below the top 2^64 ids, which a shard
/// leader uses for the internal transactions of plain writes
/// ([`TxnId::internal`]). Displayed as `t<n>`, internal ones as `w<n>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TxnId(pub u128);

/// The first internal id.
const INTERNAL_BASE: u128 = u128::MAX - u64::MAX as u128;

impl TxnId {
    /// A client transaction id from 128 random bits.
    pub fn random(bits: u128) -> TxnId {
        TxnId(bits % INTERNAL_BASE)
    }

    /// The internal transaction of a shard's `n`th plain write.
    pub fn internal(n: u64) -> TxnId {
        TxnId(INTERNAL_BASE + u128::from(n))
    }

    pub fn is_internal(self) -> bool {
        self.0 >= INTERNAL_BASE
    }
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_internal() {
            write!(f, "w{}", self.0 - INTERNAL_BASE)
        } else {
            write!(f, "t{}", self.0)
        }
    }
}

/// Wound-wait priority: the transaction's start timestamp, ties broken by
/// id. Smaller is older, and older wins. A retried transaction keeps the
/// priority of its first attempt, so it eventually becomes the oldest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Priority {
    pub start_ts: Timestamp,
    pub txn: TxnId,
}

impl Priority {
    pub fn new(start_ts: Timestamp, txn: TxnId) -> Self {
        Priority { start_ts, txn }
    }
}

/// The locks a transaction holds on one shard belong to one *lease*: the
/// leadership that granted them (its raft term) and the admission the
/// leader gave the transaction when it first locked something there (a
/// number unique within the term). Every later read of the transaction on
/// that shard, and its prepare or commit, presents the lease; a lease that
/// is no longer the transaction's current one means its locks were lost in
/// between (a leader change, a wound, an expired keep-alive), so what it
/// read may have been overwritten, and it aborts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LockLease {
    pub term: Term,
    pub admission: u64,
}

impl fmt::Display for LockLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.term.0, self.admission)
    }
}
