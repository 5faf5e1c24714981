//! The SpanDB wire protocol and storage records, generated from `proto/`.
//!
//! Nothing but generated code lives here (DESIGN.md §2), and the codec it
//! uses ([`codec`]: prost's, with typed decode errors). The services:
//!
//! - `Kv`: the data API, per shard: linearizable and snapshot reads, atomic
//!   single-shard writes.
//! - `Txn`: reads, prepares, commits and aborts of read-write transactions.
//! - `Peer`: between spanservers only (Raft traffic, the commit protocol's
//!   questions and decisions, clock samples); raft-rs messages travel as
//!   opaque bytes because raft-rs 0.7 uses an older prost than tonic.
//! - `Admin`: cluster layout and per-server status, and operator tools.
//!
//! `storage` holds the records a spanserver keeps in Raft entries and
//! RocksDB; changing their field numbers changes the on-disk format.

#![allow(clippy::all)]

pub mod codec;

tonic::include_proto!("spandb");

pub mod storage {
    tonic::include_proto!("spandb.storage");
}
