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

/// Clients heartbeat every active transaction this often (the client
/// crate's `HEARTBEAT_INTERVAL` must be this).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A coordinator takes a transaction's client as alive (committing) if it
/// heard from it within this long: two heartbeats ([`RESOLVE_PATIENCE`]).
pub const HEARD_WITHIN: Duration = Duration::from_secs(2);

/// A transaction prepared this long ago without a decision makes its
/// participant ask the coordinator.
pub const RESOLVE_AFTER: Duration = Duration::from_secs(1);

/// How long a participant's questions from its tick are patient: for
/// this long after its prepare, a coordinator whose transaction is still
/// open there, or committing (its client says so by heartbeat), and heard
/// from within [`HEARD_WITHIN`] answers
/// "pending" (its client is committing: a
/// slow prepare elsewhere, a leader election at a fresh split) rather
/// than deciding abort. Well under [`PREPARE_VALID_FOR`].
pub const RESOLVE_PATIENCE: Duration = Duration::from_secs(10);

/// How often a participant asks again.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(1);

/// How long an aborted transaction is remembered (so its late requests are
/// refused, not mistaken for a new transaction).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// Most remembered aborted transactions per shard.
pub const TOMBSTONES_MAX: usize = 100_000;

/// Most transactions active (holding locks, not prepared) per shard.
pub const ACTIVE_TXNS_MAX: usize = 50_000;

/// Most transactions a coordinator remembers as committing while they
/// hold nothing there (heard from by heartbeat within [`HEARD_WITHIN`]);
/// beyond it, a heartbeat for another is not remembered, and a patient
/// question about it is decided at once, as without it.
pub const COMMITTING_TXNS_MAX: usize = 50_000;

/// Most writes one transaction may make on one shard.
pub const WRITES_PER_TXN_MAX: usize = 10_000;

/// A request parked on a lock this long is answered `Unavailable` (and a
/// plain write's internal transaction aborted): wound-wait never
/// deadlocks, but a liveness bug, or clients that claim equal priorities,
/// must not hold a request (and its locks) for ever. Shorter than the
/// server's default write timeout, so the caller hears a definite "not
/// applied" rather than "outcome unknown".
pub const LOCK_WAIT_MAX: Duration = Duration::from_secs(5);

/// A timestamp that comes from elsewhere (a participant's prepare
/// timestamp relayed by a client, a coordinator's commit timestamp) may be
/// at most this far beyond `TT.now().latest + 2 epsilon` here. Honest
/// clocks within epsilon never come close; a forged or broken one could
/// otherwise push this shard's timestamps (and every later commit-wait)
/// into the future.
pub const TIMESTAMP_AHEAD_SLACK: Duration = Duration::from_secs(1);

/// A coordinator refuses a commit naming a participant prepared longer ago
/// than this (the participant has asked, been told abort, and released its
/// locks long since). Bounds how long a coordinator must remember an abort
/// decision: see [`ABORT_DECISION_TTL`].
pub const PREPARE_VALID_FOR: Duration = Duration::from_secs(30);

/// An abort decision is forgotten this long after it was made. A commit
/// that could contradict it names a participant prepared before it, which
/// [`PREPARE_VALID_FOR`] makes too old by then (with room for clock error).
pub const ABORT_DECISION_TTL: Duration = Duration::from_secs(60);

/// Most decisions a coordinator shard keeps; beyond it, commits with
/// participants and abort decisions are refused (`Unavailable`) until
/// participants acknowledge and decisions are forgotten.
pub const DECISIONS_MAX: usize = 100_000;

/// Most decisions one `ForgetDecisions` entry forgets; more acknowledged
/// between two ticks are forgotten in several entries.
pub const FORGET_BATCH_MAX: usize = 1_000;
