//! The placement driver: it keeps every shard's replicas where they
//! should be. Its brain is [`scheduler`], a state machine without I/O;
//! [`driver`] runs it against a live cluster.
//!
//! Where it runs, and why there: in every spanserver process, acting only
//! while its server leads the *system shard* (the shard holding the first
//! key, where the id allocator's high-water mark lives). Its durable state
//! (that allocator, the servers that joined at run time and the draining
//! set, each a system key) is therefore in a Raft group on the same
//! raft-rs + RocksDB code as the data, and survives the loss of a
//! minority; when the system shard's
//! leadership moves, the driver moves with it, with nothing to hand over:
//! the shard map is rebuilt from the servers' reports each round
//! (CockroachDB keeps its allocator in the stores the same way). A
//! separate process group would have meant a second deployment and a
//! second Raft bootstrap for no gain at this size.
//!
//! What is not in the system shard, on purpose: the cluster id and the
//! servers it started with are in the cluster description every server
//! is started with (and checked against each data directory and every
//! Raft message), and the driver's settings (`placement.*`) are each
//! server's own configuration, as its Raft and GC settings are. A
//! failover to a server configured differently changes the settings; an
//! operator keeps them alike, as with any setting. Replicated settings
//! (CockroachDB's cluster settings) would be a system key each, and are
//! not built yet.
//!
//! Two drivers can briefly both believe they lead (an old leader not yet
//! aware it lost). Each operation is checked against the epoch it was
//! planned at before it starts, and its first membership change is made
//! at that membership version (`Client::move_replica_planned`;
//! `Admin.ChangeReplicas` refuses any other version), so of two drivers
//! that plan a change of one shard at one version, only one makes it; the
//! other's move fails before it adds anything.

pub mod driver;
pub mod limits;
pub mod scheduler;

pub use driver::{Driver, DriverConfig};
pub use scheduler::{Operation, Reason, Scheduler, Settings, ShardReport};
