//! Bounds on what describes a cluster, in one place.

/// Longest key (bytes), for the servers' requests and the cluster
/// description's split points alike.
pub const KEY_BYTES_MAX: usize = 4 * 1024;

/// Most shards a static layout may have.
pub const SHARDS_STATIC_MAX: usize = 1024;

/// Most ids one allocation may take (`Admin.AllocateIds`).
pub const IDS_PER_ALLOCATION_MAX: u64 = 1_000_000;
