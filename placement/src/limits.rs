//! The placement driver's fixed bounds, in one place. What an operator
//! tunes is in the server's configuration (`placement.*`).

use std::time::Duration;

/// How long a leadership transfer the driver asks for may hold new work
/// on the shard back while the transactions open there end
/// (`Admin.TransferLeader`'s `drain_ms`; `spanserver/src/shard/handover.rs`).
/// Most transactions take milliseconds; one still open after this is
/// aborted by a transfer for load, and keeps the leadership where it is
/// for a transfer that only balances counts.
pub const TRANSFER_DRAIN: Duration = Duration::from_millis(500);

/// Replicas one server receives at once (each arrives as a snapshot,
/// written to its disk while it serves): the driver plans no more moves
/// into a server while this many are under way, and places the rest
/// elsewhere or later.
pub const MOVES_INTO_SERVER_MAX: usize = 2;

/// How long a learner no operation of this driver owns may stay at one
/// shard epoch before the driver removes it as a cut-short move's
/// leftover (scheduler rule 0), unless `placement.stray_learner_after_s`
/// says otherwise: longer than any step of a move waits
/// ([`client::membership::MOVE_STEP_TIMEOUT`]), so a move another driver
/// (one that lost the system shard's leadership) still runs has given up
/// or moved on by then.
pub const STRAY_LEARNER_AFTER_DEFAULT: Duration =
    Duration::from_secs(client::membership::MOVE_STEP_TIMEOUT.as_secs() + 15);
