//! In-process cluster scenarios on real threads, where real concurrency
//! is the point: concurrent clients through gRPC, the key-value labs of
//! MIT 6.824 ported to SpanDB's sharded, timestamped store, and its own
//! guarantees (snapshot reads, commit-wait, GC, bad input). The Raft
//! labs' scenarios run on stepped clusters instead
//! (`tests/tests/stepped_raft.rs`), where every step is checked.
//!
//! Each test states its goal and method at the top. All of them run the
//! real server code (see `tests::cluster`); assertions are about what
//! clients see. One binary, so RocksDB is linked once.

mod clocks;
mod common;
mod fuzz;
mod handover;
mod ids;
mod kv;
mod moves;
mod persistence;
mod placement;
mod replication;
mod snapshots;
mod split;
mod txn;
mod untrusted;
