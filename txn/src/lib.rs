//! Transactions, sans I/O: the decisions of Spanner's concurrency control
//! (Corbett et al., OSDI 2012, §4.1–4.2), as state machines that take
//! inputs and time and return what to do. No threads, no network, no
//! storage: the spanserver feeds them and carries out their outputs, and
//! tests drive them from goldenscripts.
//!
//! - [`lock_table`]: shared and exclusive locks on keys and shared locks on
//!   ranges, with wound-wait (older transactions wound younger lock
//!   holders; younger ones wait), which never deadlocks.
//! - [`timestamps`]: the timestamp rules (what a leader may assign, what a
//!   commit timestamp must exceed) and safe time (`t_safe`, up to which a
//!   replica can serve snapshot reads).
//! - [`shard`]: [`ShardTxns`], the transactions of one shard in both roles,
//!   participant and coordinator: `step(now, input) -> outputs`.
//!
//! Read-write transactions hold their locks until they commit or abort
//! (strict two-phase locking), commit with two-phase commit across shard
//! leaders (the coordinator's replicated decision is the outcome), get
//! commit timestamps from TrueTime, and are acknowledged only after
//! commit-wait, which the server does: external consistency.
//!
//! The goldenscripts in `src/testscripts/` are the specification by
//! example; each is named after the scenario it shows.

pub mod limits;
pub mod lock_table;
pub mod shard;
pub mod timestamps;

pub use lock_table::{Acquire, Grant, LockMode, LockTable, LockTarget};
pub use shard::{
    AbortReason, Answer, Condition, Decision, Input, Outcome, Output, PreparedTxn, ShardTxns, TxnCommand, TxnError,
    Write,
};
pub use timestamps::{SafeTime, TimestampOracle};
