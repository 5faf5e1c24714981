//! The words every SpanDB crate shares: the ids of what makes up a
//! cluster and of what runs on it, as newtypes (a shard id is never passed
//! where a server id is expected), in one crate that depends on nothing
//! heavy, so the transaction core, the server, the client, the placement
//! driver and the tests name the same things the same way (TiKV keeps
//! these in `metapb`).
//!
//! ```text
//!   cluster ── ServerId s1 s2 s3 ...          spanserver processes
//!      └── ShardId shard1 ...                 a key range and its Raft group
//!             ├── ReplicaId r1 r2 r3          its Raft peers, one per server
//!             └── ShardDescriptor             its range, epoch (RangeVer,
//!                                             ConfVer) and replicas (roles)
//!   TxnId t<n> (client) / w<n> (a leader's plain write)
//!      ├── Priority (start_ts, TxnId)         wound-wait: older wins
//!      └── LockLease (term, admission)        the leadership its locks belong to
//!   keys: 0x00... the system's own keys (the id allocator's mark)
//!   ClusterSpec: cluster id, servers, split points, replication
//!      └── shards() -> ShardLayout            the static layout (until placement)
//! ```
//!
//! Invariants: shard, server and replica ids are non-zero (raft-rs
//! reserves 0) and never reused; a client transaction id is never an
//! internal one ([`TxnId::random`] keeps below the internal block).
//!
//! Wire types stay in `proto`; each crate's gRPC edge converts, and
//! nothing inside a crate passes a `proto` id around.

pub mod cluster;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod retry;
pub mod shard;

pub use cluster::{ClusterSpec, ClusterSpecError, ServerSpec, ShardLayout};
pub use ids::{ConfVer, LockLease, Priority, RangeVer, ReplicaId, RequestId, ServerId, ShardId, Term, TxnId};
pub use shard::{ReplicaDescriptor, ReplicaRole, ShardDescriptor, ShardEpoch};
