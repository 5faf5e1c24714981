//! In-process cluster scenarios: the Raft and key-value labs of MIT 6.824,
//! ported to SpanDB's sharded, timestamped store, plus its own guarantees
//! (snapshot reads, commit-wait, GC, bad input).
//!
//! Each test states its goal and method at the top. All of them run the
//! real server code (see `tests::cluster`); assertions are about what
//! clients see. One binary, so RocksDB is linked once.

mod clocks;
mod common;
mod election;
mod fuzz;
mod kv;
mod persistence;
mod replication;
mod snapshots;
mod txn;
mod untrusted;
