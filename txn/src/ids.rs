//! Transaction identity and priority.

use std::fmt;

use truetime::Timestamp;

/// A transaction, unique cluster-wide (random 128 bits, chosen by the
/// client at `begin`). Displayed as `t<n>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TxnId(pub u128);

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// Wound-wait priority: the transaction's start timestamp, ties broken by
/// id. Smaller is older, and older wins. A retried transaction keeps the
/// priority of its first attempt, so it eventually becomes the oldest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Priority {
    pub start_ts: Timestamp,
    pub txn: TxnId,
}

impl Priority {
    pub fn new(start_ts: Timestamp, txn: TxnId) -> Self {
        Priority { start_ts, txn }
    }
}
