//! Every bound the transaction layer enforces, in one place.

/// Locks one transaction may hold on one shard (keys and ranges). Also
/// bounds the keys a transaction may write on one shard.
pub const LOCKS_PER_TXN_MAX: usize = 10_000;

/// Lock requests waiting on one shard.
pub const LOCK_WAITERS_MAX: usize = 10_000;

use std::time::Duration;

/// A transaction that holds locks on a shard but has not prepared is
/// aborted if its client is silent (no request, no heartbeat) this long.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Clients heartbeat every active transaction this often.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A transaction prepared this long ago without a decision makes its
/// participant ask the coordinator.
pub const RESOLVE_AFTER: Duration = Duration::from_secs(1);

/// How often a participant asks again.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(1);

/// How long an aborted transaction is remembered (so its late requests are
/// refused, not mistaken for a new transaction).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// Most remembered aborted transactions per shard.
pub const TOMBSTONES_MAX: usize = 100_000;

/// Most transactions active (holding locks, not prepared) per shard.
pub const ACTIVE_TXNS_MAX: usize = 50_000;

/// Most writes one transaction may make on one shard.
pub const WRITES_PER_TXN_MAX: usize = 10_000;
