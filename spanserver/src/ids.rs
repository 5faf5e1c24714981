//! Identifier newtypes, so a shard id is never passed where a server id is
//! expected.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[derive(serde::Serialize, serde::Deserialize)]
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
/// A shard (a key range and its Raft group). Non-zero. Defined by the
/// transaction layer, which names shards as coordinators and participants.
pub use txn::ShardId;
id_type!(
    /// A Raft peer within one shard's group. Non-zero, never reused.
    ReplicaId, "r"
);
