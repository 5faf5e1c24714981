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
