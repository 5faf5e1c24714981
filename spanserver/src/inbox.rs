//! The way into a server's event loop ([`crate::event_loop`]): what it can be
//! asked ([`LoopMsg`]) and the handle request handlers, the transport
//! and the peer calls post with ([`LoopHandle`]). A bounded queue: when
//! it is full, a request is refused (`Unavailable`) rather than queued
//! without limit.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use meta::{ReplicaId, ServerId, ShardEpoch, ShardId};
use raft::eraftpb::Message;

use crate::error::{Error, Result};
use crate::limits;
use crate::shard::command::Split;
use crate::shard::membership::{MembershipChange, MembershipReply};
use crate::shard::reads::ReadReply;
use crate::shard::split::SplitReply;
use crate::shard::TxnReply;
use crate::storage::snapshot::SnapshotDir;

/// What the event loop is asked to do.
pub enum LoopMsg {
    /// Raft messages from a peer server (never snapshots).
    Raft { from: ServerId, messages: Vec<(ShardId, Message)> },
    /// A snapshot message from a peer, and its data file, now in this
    /// server's snapshot directory (`storage/snapshot.rs`).
    SnapshotArrived { from: ServerId, shard: ShardId, message: Message, file: Option<PathBuf> },
    /// A request for a shard's transaction state machine (reads in
    /// read-write transactions, prepares, commits, plain writes, ...). The
    /// input's request id is assigned by the replica.
    Txn { shard: ShardId, input: txn::Input, reply: Option<TxnReply> },
    /// Confirm leadership for a linearizable read (ReadIndex).
    ReadIndex { shard: ShardId, reply: ReadReply },
    /// A snapshot read is waiting for safe time: close a timestamp now.
    CloseTimestampNow { shard: ShardId },
    /// The transport finished (or failed) sending a snapshot.
    SnapshotSent { shard: ShardId, to: ReplicaId, ok: bool },
    /// The transport lost its connection to a peer.
    PeerUnreachable { server: ServerId },
    /// Ask a shard's Raft group to hand leadership to this server's replica
    /// (done by the leader; ignored elsewhere).
    /// With `drain` (not zero), new work waits while the open transactions
    /// end, for that long at most; with `only_if_idle`, it never hands
    /// over while a transaction is open (`shard/handover.rs`).
    TransferLeader { shard: ShardId, to: ServerId, only_if_idle: bool, drain: std::time::Duration },
    /// Destroy this server's replica `replica` of `shard`: the replica GC
    /// saw a descriptor at epoch `newer` without it (`replica_gc.rs`).
    /// Done only if the replica here is still that one, at an older epoch.
    DestroyStale { shard: ShardId, replica: ReplicaId, newer: ShardEpoch },
    /// Split a shard (at its leader): answered once applied
    /// (`shard/split.rs`).
    Split { shard: ShardId, split: Split, reply: SplitReply },
    /// Change a shard's membership (at its leader) if it is at
    /// `conf_ver`: answered once applied (`shard/membership.rs`).
    ChangeReplicas { shard: ShardId, conf_ver: meta::ConfVer, change: MembershipChange, reply: MembershipReply },
    /// Stop the loop; everything waiting is answered.
    Shutdown,
}

/// The way into the event loop, for handlers and transports.
#[derive(Clone)]
pub struct LoopHandle {
    tx: SyncSender<LoopMsg>,
    snapshots: Arc<SnapshotDir>,
}

impl LoopHandle {
    /// Where snapshot data files to this server are put before
    /// [`LoopMsg::SnapshotArrived`] hands them in.
    pub fn snapshot_dir(&self) -> &Arc<SnapshotDir> {
        &self.snapshots
    }

    /// Hands `msg` to the loop without blocking. A full inbox sheds load.
    pub fn send(&self, msg: LoopMsg) -> Result<()> {
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::Unavailable("server overloaded: event loop inbox full".into())),
            Err(TrySendError::Disconnected(_)) => Err(Error::Unavailable("server is shutting down".into())),
        }
    }
}

/// Creates the inbox: the handle for senders and the receiving end for
/// [`crate::event_loop::EventLoop::open`].
pub fn inbox(snapshots: Arc<SnapshotDir>) -> (LoopHandle, Receiver<LoopMsg>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(limits::INBOX_MESSAGES_MAX);
    (LoopHandle { tx, snapshots }, rx)
}
