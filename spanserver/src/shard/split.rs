//! Splitting a shard in two: one Raft command, applied by every replica
//! in one write batch, so the two halves are born at the same log
//! position on every server (TiKV's and CockroachDB's split trigger).
//!
//! ```text
//!   shard1 ["", "") rv1, replicas r1@s1 r2@s2 r3@s3, log ... 41 42
//!      Split { at "m", rv1, child shard9, [r10, r11, r12] }   (index 43)
//!   ->  shard1 ["", "m") rv2, r1@s1 r2@s2 r3@s3    (the same group, log 44 ...)
//!       shard9 ["m", "") rv2, r10@s1 r11@s2 r12@s3 (a new group: log starts
//!              after index 5, term 5; applied 5; its data is already in
//!              this server's RocksDB, keyed by user key)
//! ```
//!
//! The ids come from the id allocator (`Admin.AllocateIds`), so they were
//! never used. Every replica checks the command against its own state at
//! that log position, which is the same everywhere: the shard still at
//! the proposed `range_ver`, the key strictly inside its range, and one
//! child id per replica; a split that fails a check is refused on every
//! replica, and changes nothing.
//!
//! Applying it: the shard's descriptor shrinks (range_ver + 1) and the
//! child's is written beside it at the same range_ver, with the shard's
//! membership version; the child's Raft state starts at a non-zero index
//! (so a replica added to it later always starts from a snapshot, never
//! an empty log), its applied timestamp at the shard's (so it never
//! assigns below a timestamp the shard assigned or closed), its GC
//! watermark at the shard's. Transactions prepared here keep their part
//! on the shard's keys and hand the rest to the child, which learns their
//! outcome from this shard (`txn::Input::RangeSplit`, and the txn
//! crate's "Splits"). The leader aborts the unprepared transactions
//! holding or waiting for locks on moved keys; commands admitted before
//! the split that name a moved key are refused when they apply
//! (`apply.rs`), and the transaction aborts, retryably. The event loop opens the child once the
//! batch is written (`Replica::take_created`), and the replica that led
//! the shard campaigns at once in the child's group.
//!
//! A replica that misses the split entry and receives a snapshot of the
//! shrunk shard instead would have no replica of the child, and the
//! moved keys' data only as of before. So for a while after a split
//! (`raft.log_kept_for_followers_max` entries) the log is kept for every
//! replica that has not reached it, not only those heard from recently
//! (`gc.rs`): one that was down or cut off catches up from the log, and
//! applies the split itself. One that misses more than that gets the
//! child from the child's leader: its messages create an uninitialized
//! replica here, which a snapshot fills (`event_loop.rs::create_for`, as
//! TiKV does). A split waits while the shard's configuration is joint
//! (`membership.rs`); the child gets the shard's voters and learners.

use super::*;
use crate::shard::command::Split;
use meta::{RangeVer, ReplicaDescriptor, ReplicaRole, ShardEpoch};

/// What a split's child starts from on one server.
struct ChildState<'a> {
    descriptor: &'a ShardDescriptor,
    replica_id: ReplicaId,
    max_applied: Timestamp,
    watermark: Timestamp,
    /// The parts of transactions prepared on the shard that are on its keys.
    prepared: Vec<txn::PreparedTxn>,
    /// The hard state of an uninitialized replica of it already here.
    prior: Option<raft::eraftpb::HardState>,
}

/// Answered with the two halves (the shard, then the child) once a split
/// is applied, or with why not.
pub type SplitReply = oneshot::Sender<Result<(ShardDescriptor, ShardDescriptor)>>;

impl Replica {
    /// Proposes `split` (at the leader): checked here, and again as it is
    /// applied; answered then.
    pub fn propose_split(&mut self, split: Split, reply: SplitReply, completions: &mut Vec<Completion>) {
        let refusal = if !self.is_leader() || !self.leader_ready() {
            Some(self.not_leader())
        } else {
            self.split_refusal(&split).map(Error::InvalidArgument)
        };
        if let Some(e) = refusal {
            return completions.push(Completion::Split { reply, result: Err(e) });
        }
        match self.raw_node.propose(vec![], command::encode_split(&split)) {
            Ok(()) => {
                let index = self.raw_node.raft.raft_log.last_index();
                self.splits.insert(index, (self.raw_node.raft.term, reply));
                self.proposed = true;
            }
            Err(e) => {
                let result = Err(Error::Unavailable(format!("the split was not proposed: {e}")));
                completions.push(Completion::Split { reply, result });
            }
        }
    }

    /// Why `split` cannot apply to this shard as it is now (module docs);
    /// `None` if it can. A function of replicated state only, so every
    /// replica answers the same at the same log position.
    fn split_refusal(&self, split: &Split) -> Option<String> {
        let d = &self.descriptor;
        if split.range_ver != d.epoch.range_ver {
            return Some(format!(
                "{} is at {}, the split was for {}",
                self.shard_id, d.epoch.range_ver, split.range_ver
            ));
        }
        if split.split_key.as_slice() <= d.start_key.as_slice() || !d.contains(&split.split_key) {
            return Some(format!(
                "the split key {:?} is not strictly inside {}'s range",
                String::from_utf8_lossy(&split.split_key),
                self.shard_id
            ));
        }
        if super::membership::is_joint(d) {
            return Some(format!("{} is changing its membership; split once that ends", self.shard_id));
        }
        if split.child_replicas.len() != d.replicas.len() {
            return Some(format!("{} child replica ids for {} replicas", split.child_replicas.len(), d.replicas.len()));
        }
        let mut ids: Vec<u64> = split.child_replicas.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let fresh = split.child_shard.0 != 0
            && split.child_shard != self.shard_id
            && ids.len() == split.child_replicas.len()
            && ids.iter().all(|id| *id != 0 && d.server_of(ReplicaId(*id)).is_none());
        if !fresh {
            return Some("the child's ids must be new, distinct and non-zero".into());
        }
        None
    }

    /// Applies a split at `index` (every replica, in log order).
    pub(super) fn apply_split(
        &mut self,
        tt: &TrueTime,
        index: u64,
        split: Split,
        reply: Option<SplitReply>,
        batch: &mut WriteBatch,
        completions: &mut Vec<Completion>,
    ) {
        if let Some(reason) = self.split_refusal(&split) {
            tracing::warn!(shard = %self.shard_id, "split refused: {reason}");
            if let Some(reply) = reply {
                completions.push(Completion::Split { reply, result: Err(Error::InvalidArgument(reason)) });
            }
            return;
        }
        let old = self.descriptor.clone();
        let epoch = ShardEpoch { range_ver: RangeVer(old.epoch.range_ver.0 + 1), conf_ver: old.epoch.conf_ver };
        let left = ShardDescriptor { end_key: split.split_key.clone(), epoch, ..old.clone() };
        let right = ShardDescriptor {
            shard_id: split.child_shard,
            start_key: split.split_key.clone(),
            end_key: old.end_key.clone(),
            epoch,
            replicas: old
                .replicas
                .iter()
                .zip(&split.child_replicas)
                .map(|(r, id)| ReplicaDescriptor { replica_id: *id, server_id: r.server_id, role: r.role })
                .collect(),
        };
        self.stage_replica_record(&left, self.replica_id, batch);
        let mine =
            old.replicas.iter().position(|r| r.replica_id == self.replica_id).map(|i| right.replicas[i].replica_id);
        fn stop<T>(e: rocksdb::Error) -> T {
            crate::storage::stop_on_storage_failure(&format!("reading a replica: {e}"))
        }
        let existing: Option<proto::storage::ReplicaRecord> = self
            .engine
            .db()
            .get_cf(self.engine.cf(CF_RAFT), raft_key(split.child_shard, RaftKey::Replica))
            .unwrap_or_else(stop)
            .map(|b| decode_record(&b, "replica record"));
        let initialized =
            existing.map(|r| wire::descriptor_from_proto(r.descriptor.unwrap_or_default()).is_initialized());
        // Every replica divides its prepared transactions alike; the
        // child's parts go into its records below.
        let input = Input::RangeSplit {
            split_key: split.split_key.clone(),
            end_key: old.end_key.clone(),
            child: split.child_shard,
        };
        let (inherited, outputs): (Vec<Output>, Vec<Output>) =
            self.step_txns(tt, input).into_iter().partition(|o| matches!(o, Output::Inherit { .. }));
        let prepared: Vec<txn::PreparedTxn> = inherited
            .into_iter()
            .filter_map(|o| match o {
                Output::Inherit { record, .. } => Some(record),
                _ => None,
            })
            .collect();
        let handed = prepared.len();
        match (mine, initialized) {
            // Not here yet, or here uninitialized (the child's leader
            // reached this server first): the split makes it.
            (Some(child_replica), None | Some(false)) => {
                let prior = RaftLogStore::stored_hard_state(&self.engine, split.child_shard).unwrap_or_else(stop);
                let max_applied = self.txns.safe_time().max_applied();
                let watermark = self.shared.gc_watermark();
                let child = ChildState {
                    descriptor: &right,
                    replica_id: child_replica,
                    max_applied,
                    watermark,
                    prepared,
                    prior,
                };
                Replica::bootstrap_split_child(&self.engine, batch, child);
                self.created.push(split.child_shard);
            }
            // Already filled by a snapshot from the child's leader: newer.
            (Some(_), Some(true)) => {}
            (None, _) => tracing::error!(shard = %self.shard_id, "split applied by a replica not in the descriptor"),
        }
        self.execute(tt, outputs, Some(batch), completions);
        self.shared.set_descriptor(left.clone());
        self.shared.reset_written_bytes();
        self.descriptor = left.clone();
        self.last_split_index = index;
        tracing::info!(
            shard = %self.shard_id,
            child = %right.shard_id,
            "split at {:?}, handing {handed} prepared transactions to the child",
            String::from_utf8_lossy(&right.start_key)
        );
        if let Some(reply) = reply {
            completions.push(Completion::Split { reply, result: Ok((left, right)) });
        }
    }

    /// Stages this replica's record (its descriptor and id).
    pub(super) fn stage_replica_record(&self, d: &ShardDescriptor, replica_id: ReplicaId, batch: &mut WriteBatch) {
        let record =
            proto::storage::ReplicaRecord { descriptor: Some(wire::descriptor_to_proto(d)), replica_id: replica_id.0 };
        batch.put_cf(
            self.engine.cf(CF_RAFT),
            raft_key(d.shard_id, RaftKey::Replica),
            prost::Message::encode_to_vec(&record),
        );
    }

    /// Adds the replica of a split's child on this server to `batch`: its
    /// record, and Raft and apply state at [`INITIAL_INDEX`]
    /// (keeping the term and vote of an uninitialized replica it replaces).
    fn bootstrap_split_child(engine: &Engine, batch: &mut WriteBatch, child: ChildState<'_>) {
        let ChildState { descriptor, replica_id, max_applied, watermark: gc_watermark, prepared, prior } = child;
        let shard = descriptor.shard_id;
        // Never joint (a split waits for the joint configuration to end).
        let with_role = |role: ReplicaRole| -> Vec<u64> {
            descriptor.replicas.iter().filter(|r| r.role == role).map(|r| r.replica_id.0).collect()
        };
        let (voters, learners) = (with_role(ReplicaRole::Voter), with_role(ReplicaRole::Learner));
        let index = INITIAL_INDEX;
        RaftLogStore::bootstrap_at(engine, batch, shard, (&voters, &learners), index, index, prior);
        let record = proto::storage::ReplicaRecord {
            descriptor: Some(wire::descriptor_to_proto(descriptor)),
            replica_id: replica_id.0,
        };
        let cf = engine.cf(CF_RAFT);
        batch.put_cf(cf, raft_key(shard, RaftKey::Replica), prost::Message::encode_to_vec(&record));
        let apply = proto::storage::ApplyState {
            applied_index: INITIAL_INDEX,
            max_applied_ts: max_applied.as_nanos(),
            last_split_index: 0,
        };
        batch.put_cf(cf, raft_key(shard, RaftKey::ApplyState), prost::Message::encode_to_vec(&apply));
        batch.put_cf(cf, raft_key(shard, RaftKey::GcWatermark), gc_watermark.as_nanos().to_be_bytes());
        for p in prepared {
            let value = prost::Message::encode_to_vec(&command::prepared_to_proto(&p));
            batch.put_cf(engine.cf(CF_TXN), txn_key(shard, TxnKey::Prepared, p.txn.0), value);
        }
    }

    /// The shards this replica's splits created since the last call, for
    /// the event loop to open once the batch that created them is written.
    pub fn take_created(&mut self) -> Vec<ShardId> {
        std::mem::take(&mut self.created)
    }
}
