//! The placement driver: it keeps every shard's replicas where they
//! should be. Its brain is [`scheduler`], a state machine without I/O;
//! [`driver`] runs it against a live cluster.
//!
//! Where it runs, and why there: in every spanserver process, acting only
//! while its server leads the *system shard* (the shard holding the first
//! key, where the id allocator's high-water mark lives). Its durable state
//! (that allocator; the registry is the cluster description for now) is
//! therefore in a Raft group on the same raft-rs + RocksDB code as the
//! data, and survives the loss of a minority; when the system shard's
//! leadership moves, the driver moves with it, with nothing to hand over:
//! the shard map is rebuilt from the servers' reports each round
//! (CockroachDB keeps its allocator in the stores the same way). A
//! separate process group would have meant a second deployment and a
//! second Raft bootstrap for no gain at this size.
//!
//! Two drivers can briefly both believe they lead (an old leader not yet
//! aware it lost): every operation is a membership change checked against
//! the epoch it was planned at, so at most one of them changes a shard.

pub mod driver;
pub mod limits;
pub mod scheduler;

pub use driver::{Driver, DriverConfig};
pub use scheduler::{Operation, Reason, Scheduler, Settings, ShardReport};
