//! The spanserver: a replicated, durable, sharded key-value store.
//!
//! A spanserver hosts replicas of many shards. Each shard is a key range
//! `[start, end)` replicated by a Raft group (tikv's raft-rs); each replica
//! keeps its Raft log and its MVCC data in the server's one RocksDB.
//!
//! ```text
//!        gRPC: Kv, Txn (data), Admin (status, operator tools)   Peer (servers only:
//!                          │                                  Raft, Resolve, Decide,
//!              requests.rs │ validate, route, check the clock, ReadClock; peer secret)
//!                          │ wait (ReadIndex, safe time,       │ transport/grpc.rs,
//!                          │   commit-wait, visibility)        │ peers.rs, clock.rs
//!                          v                                   v
//!        ┌─────── event_loop.rs: ONE event loop thread ─────────────┐
//!        │   shard 1 replica      shard 2 replica      shard N ...  │
//!        │   RawNode + ShardTxns  RawNode + ShardTxns               │
//!        │   event_loop/ready.rs: persist (1 fsync) → send → apply → advance
//!        └──────────────────────────┬───────────────────────────────┘
//!                                   v
//!        storage/: RocksDB  cf raft (logs, hard/conf/apply state)
//!                           cf data (key | !ts -> value, all shards)
//!                           cf txn  (prepared transactions, decisions)
//!                           cf meta (cluster id, server id, layout)
//! ```
//!
//! Each replica pairs a raft-rs `RawNode` (what is committed) with a
//! `txn::ShardTxns` (what it means: locks, timestamps, prepared
//! transactions, coordinator decisions, safe time); the replica is the I/O
//! shell between them (`shard/`: the replica in `mod.rs`, applying in
//! `apply.rs`, leadership and closed timestamps in `leadership.rs`,
//! snapshot installs in `install.rs`, GC and log compaction in `gc.rs`,
//! reads in `reads.rs`, the log's commands in `command.rs`, the durable
//! transaction records in `records.rs`, splits in `split.rs`, membership
//! changes in `membership.rs`; a replica that leaves its shard is
//! destroyed by `event_loop/removal.rs`). Every data
//! write, plain or transactional, is a transaction command in the log.
//!
//! # How a write flows (numbers from a 3-server cluster, epsilon = 2 ms)
//!
//! 1. `Kv.Write` for key `"apple"` reaches the leader of the shard holding
//!    it; `requests.rs` checks sizes and routing, hands it to the loop.
//! 2. `ShardTxns` takes an exclusive lock on `apple` (a plain write is a
//!    one-shard transaction), picks `s = max(TT.now().latest, last + 1)`
//!    and asks to replicate `Commit{s}`; in the same loop iteration every
//!    other shard's entries join one synced RocksDB batch, and the append
//!    goes to the followers.
//! 3. Followers persist and answer; the leader sees a quorum, applies the
//!    entry (a version `apple@s` in cf data), releases the lock, and
//!    answers the handler.
//! 4. The handler commit-waits until `TT.after(s)` (about 4 ms after `s`
//!    was picked, mostly overlapped by replication), then replies `s`.
//!
//! A read-write transaction across shards adds locks for its reads and a
//! two-phase commit: `Txn.Prepare` on all participants but one, then
//! `Txn.Commit` on that one, the coordinator, whose replicated decision is
//! the outcome (`txn::shard` explains the protocol; `peers.rs` carries the
//! server-to-server part). A replica never calls out itself: what it wants
//! asked of another shard (`shard::PeerCall`) waits in its outbox until the
//! event loop returns it with the step's effects, the driver makes the call,
//! and the answer comes back through the inbox (`inbox.rs`) as an input
//! like any other.
//!
//! The event loop is a state machine: `step(now, inputs)` returns what to
//! send first and what to persist, `persisted()` returns the effects
//! (messages, peer calls, replies, the next wake-up). `driver.rs` is the
//! one place that runs it on a thread with the wall clock, RocksDB's synced
//! write, the transport and `peers.rs`; the stepped simulation drives the
//! same loop on its schedule.
//!
//! # Reads
//!
//! Linearizable reads go to the leader and use ReadIndex
//! (`shard/reads.rs`), or, within the lease a confirmed round gives the
//! leader, its committed index without a round (`shard/lease.rs`); snapshot reads at a timestamp go to any replica that
//! can serve it (`requests.rs`): one that has applied a command at or above it
//! (assigned timestamps increase in log order, and idle leaders propose
//! `Close` commands so this keeps moving), and on which no transaction that
//! writes the read's keys is prepared at or below it (`t_TM_safe`, per key).
//!
//! # Trust
//!
//! Clients are untrusted: everything they send is checked at the edge
//! (`requests.rs`, limits in [`limits`]), timestamps they carry or relay
//! against this server's clock and the participants' seals (`auth.rs`);
//! nothing they send reaches an `assert!`. Server-to-server calls live on
//! the `Peer` service, which refuses callers without the cluster's peer
//! secret. A server trusts its own clock only while a quorum of its peers'
//! clocks agree with it (`clock.rs`); otherwise it serves no timestamps.
//!
//! # Invariants, and where they are asserted
//!
//! - Persist before telling anyone; apply in order, exactly once; commit
//!   index persisted with the applied index (`event_loop/ready.rs`,
//!   `shard/apply.rs::apply_entries`).
//! - Command timestamps strictly increase in a shard's log (asserted as
//!   each is applied: `txn::SafeTime::applied`, reached from
//!   `shard/apply.rs::apply_entry` through `ShardTxns::step`).
//! - No client learns of a commit at `s` before `TT.after(s)`: not its
//!   writer (commit-wait), not a reader of the version or of a tombstone,
//!   not a participant asking the coordinator (`requests.rs`, `commit_wait.rs`).
//! - A read at `t` below the GC watermark fails; GC raises the watermark
//!   before deleting (`storage/mvcc.rs`).
//! - A data directory serves one cluster, one server, one layout
//!   (`storage/mod.rs`).
//!
//! # Limits
//!
//! Every bound is in [`limits`]; tunables in [`config`].
//!
//! # Caveats
//!
//! The shard layout starts from the cluster description; shards split by
//! size or by hand (`shard/split.rs`) and replicas move by hand
//! (`shard/membership.rs`), but nothing moves or balances them by itself
//! until the placement driver exists. Snapshots stream through disk
//! (`storage/snapshot.rs`); a shard over `raft.snapshot_bytes_max` cannot catch a
//! follower up until it is split. Peers holding the secret are trusted
//! (raft-rs assumes correct peers), and there is no TLS yet: the secret
//! crosses the network in the clear.

pub mod auth;
pub mod clock;
pub mod commit_wait;
pub mod config;
pub mod directory;
mod driver;
pub mod error;
pub mod event_loop;
pub mod inbox;
pub mod limits;
mod logger;
pub mod peers;
pub mod registry;
mod replica_gc;
pub mod requests;
pub mod server;
pub mod service;
pub mod shard;
mod split_queue;
pub mod storage;
pub mod transport;
pub mod wire;

pub use config::{ResolvedConfig, ServerConfig};
pub use error::Error;
pub use logger::raft_logger;
pub use server::{Server, StartError, TransportKind};

/// Re-exported so transports outside this crate name the same types.
pub use raft::eraftpb::Message as RaftMessage;
