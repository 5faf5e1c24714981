//! How Raft messages leave a server.
//!
//! The event loop's driver (`driver.rs`) hands each step's outgoing
//! messages, grouped by destination server, to a [`Transport`]; it never
//! blocks on the network.
//! Delivery is best-effort (Raft tolerates loss, duplication and
//! reordering). What the loop must hear back, it hears through its inbox:
//! [`crate::inbox::LoopMsg::PeerUnreachable`] when a peer cannot be
//! reached, and [`crate::inbox::LoopMsg::SnapshotSent`] when a snapshot
//! send finishes or fails (raft-rs's `report_unreachable` and
//! `report_snapshot`, checklist item 6).
//!
//! Two implementations: [`grpc::GrpcTransport`] (one long-lived gRPC stream
//! per peer, snapshots chunked on a separate stream) for real deployments,
//! and the test harness's fault-injecting in-process network.

pub mod grpc;

use raft::eraftpb::Message;

use crate::storage::snapshot::SnapshotFile;
use meta::{ServerId, ShardId};

pub trait Transport: Send + Sync + 'static {
    /// Sends Raft messages (never snapshots) to `to`.
    fn send(&self, to: ServerId, messages: Vec<(ShardId, Message)>);

    /// Sends one `MsgSnapshot` and its data file (`storage/snapshot.rs`), which the
    /// receiver must have on disk before it hands the message to its loop
    /// (`LoopMsg::SnapshotArrived`); the outcome comes back as
    /// `SnapshotSent`.
    fn send_snapshot(&self, to: ServerId, shard: ShardId, message: Message, file: Option<SnapshotFile>);
}
