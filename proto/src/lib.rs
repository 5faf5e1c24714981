//! The SpanDB wire protocol and storage records, generated from `proto/`.
//!
//! Nothing but generated code lives here (DESIGN.md §2). The services:
//!
//! - `Kv`: the data API, per shard: linearizable and snapshot reads, atomic
//!   single-shard writes.
//! - `Raft`: the transport between spanservers; raft-rs messages travel as
//!   opaque bytes because raft-rs 0.7 uses an older prost than tonic.
//! - `Admin`: cluster layout and per-server status.
//!
//! `storage` holds the records a spanserver keeps in Raft entries and
//! RocksDB; changing their field numbers changes the on-disk format.

#![allow(clippy::all)]

tonic::include_proto!("spandb");

pub mod storage {
    tonic::include_proto!("spandb.storage");
}
