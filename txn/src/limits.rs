//! Every bound the transaction layer enforces, in one place.

/// Locks one transaction may hold on one shard (keys and ranges). Also
/// bounds the keys a transaction may write on one shard.
pub const LOCKS_PER_TXN_MAX: usize = 10_000;

/// Lock requests waiting on one shard.
pub const LOCK_WAITERS_MAX: usize = 10_000;
