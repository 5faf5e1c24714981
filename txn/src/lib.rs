//! Transactions, sans I/O: the decisions of Spanner's concurrency control
//! (Corbett et al., OSDI 2012, §4.1–4.2), as state machines that take
//! inputs and time and return what to do. No threads, no network, no
//! storage: the spanserver feeds them and carries out their outputs, and
//! tests drive them from goldenscripts.
//!
//! - [`lock_table`]: shared and exclusive locks on keys and shared locks on
//!   ranges, with wound-wait (older transactions wound younger lock
//!   holders; younger ones wait), which never deadlocks.
//!
//! Read-write transactions hold their locks until they commit or abort
//! (strict two-phase locking); the commit protocol (two-phase commit
//! across shard leaders, commit timestamps from TrueTime, commit-wait) and
//! the safe-time bookkeeping for snapshot reads build on this table.

pub mod ids;
pub mod limits;
pub mod lock_table;

pub use ids::{Priority, TxnId};
pub use lock_table::{Acquire, Grant, LockMode, LockTable, LockTarget};
