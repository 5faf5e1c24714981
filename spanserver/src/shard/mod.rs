//! A replica: this server's copy of one shard, driven through raft-rs.
//!
//! ```text
//!             proposals (leader)          raft messages
//!                    │                         │
//!                    v                         v
//!   Replica ──> RawNode<RaftLogStore> ──> Ready ──> (store/ready.rs orders:
//!     │                                             persist, send, apply, advance)
//!     ├── pending_writes: index -> (term, reply)    resolved when that index applies
//!     ├── reads: ReadIndex batches                  released when applied >= index
//!     ├── leader: timestamps, readiness             only while leading
//!     └── apply_state: applied_index, max_applied_ts (the replica's safe time)
//! ```
//!
//! # Timestamps
//!
//! The leader stamps each command at proposal time with
//! `ts = max(TT.now().latest, last_assigned_ts + 1)`. A new leader first
//! applies every entry up to the log position it had when elected (its own
//! first entry), then sets `last_assigned_ts` to at least the largest
//! applied timestamp, and only then proposes. Since it holds every committed
//! entry, its timestamps exceed every timestamp in the log: **timestamps
//! strictly increase in log order**, across leader changes. Applying
//! asserts it.
//!
//! Consequence: once a replica has applied a command at `t`, no write at or
//! below `t` can still arrive, so its **safe time** is its largest applied
//! timestamp, and it can serve snapshot reads at any `ts <= safe time`. An
//! idle leader proposes `CloseTimestamp` commands to move safe time along.
//!
//! # Proposals are tracked by (index, term)
//!
//! After `propose`, the entry's index and term are recorded. When that index
//! is applied with the same term, the write succeeded; with another term, a
//! leader change replaced it and it will never apply (the client may retry:
//! `Unavailable`). A snapshot that jumps over a pending index leaves the
//! outcome unknown (`Ambiguous`). Never a FIFO: leader changes drop and
//! reorder proposals (STYLE.md, raft-rs checklist item 8).
//!
//! # Invariants (asserted)
//! - Entries apply exactly once, in order: each applied index is the
//!   previous plus one (or a snapshot's index).
//! - Applied command timestamps strictly increase.

pub mod command;
pub mod reads;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use prost011::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, Snapshot};
use raft::RawNode;
use rocksdb::WriteBatch;
use tokio::sync::oneshot;
use truetime::{Timestamp, TrueTime};

use self::command::Command;
use self::reads::{ReadQueue, ReadReply};
use crate::config::RaftConfig;
use crate::error::{Error, Result};
use crate::ids::{ReplicaId, ServerId, ShardId};
use crate::limits;
use crate::registry::{Registry, ReplicaProgress, ReplicaShared, Role};
use crate::storage::keycode::{raft_key, range_bounds, RaftKey};
use crate::storage::raft_log::{decode_record, RaftLogStore};
use crate::storage::{mvcc, Engine, CF_DATA, CF_RAFT};

/// A write as proposed: mutations, and conditions that must all hold at
/// apply time for them to be written (compare-and-set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBody {
    pub mutations: Vec<proto::Mutation>,
    pub conditions: Vec<proto::Condition>,
}

impl WriteBody {
    /// Every key the write touches or checks.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.mutations.iter().map(|m| m.key.as_slice()).chain(self.conditions.iter().map(|c| c.key.as_slice()))
    }
}

/// How an applied write turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    pub commit_ts: Timestamp,
    /// False if a condition did not hold (nothing was written).
    pub applied: bool,
}

/// Answered once the write is applied.
pub type WriteReply = oneshot::Sender<Result<WriteOutcome>>;

/// A reply to send once the batch that justifies it is on disk.
pub enum Completion {
    Write(WriteReply, Result<WriteOutcome>),
}

impl Completion {
    pub fn send(self) {
        match self {
            Completion::Write(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
}

struct PendingWrite {
    term: u64,
    reply: WriteReply,
}

struct WaitingWrite {
    body: WriteBody,
    reply: WriteReply,
}

/// What only a leader has.
struct LeaderState {
    term: u64,
    /// The leader may assign timestamps once it has applied this index
    /// (its last log index when it was elected).
    ready_at_index: u64,
    ready: bool,
    last_assigned_ts: Timestamp,
    /// Writes that arrived before the leader was ready.
    waiting: VecDeque<WaitingWrite>,
}

/// Garbage collection progress for the current watermark.
#[derive(Default)]
struct GcState {
    /// The next key to examine, while a round is running.
    cursor: Option<Vec<u8>>,
}

pub struct Replica {
    pub shard_id: ShardId,
    pub replica_id: ReplicaId,
    engine: Engine,
    registry: Arc<Registry>,
    descriptor: proto::ShardDescriptor,
    pub raw_node: RawNode<RaftLogStore>,
    shared: Arc<ReplicaShared>,
    applied_index: u64,
    max_applied_ts: Timestamp,
    leader: Option<LeaderState>,
    pending_writes: BTreeMap<u64, PendingWrite>,
    /// Values written by entries applied in this loop iteration, whose batch
    /// is not yet in RocksDB: conditions must see them.
    staged: HashMap<Vec<u8>, Option<Vec<u8>>>,
    reads: ReadQueue,
    gc: GcState,
    last_proposal_at: Instant,
}

/// The raft-rs configuration of every replica (STYLE.md checklist item 9:
/// set what the defaults leave open).
fn raft_config(replica_id: ReplicaId, applied: u64, rc: &RaftConfig) -> raft::Config {
    raft::Config {
        id: replica_id.0,
        election_tick: rc.election_ticks,
        heartbeat_tick: rc.heartbeat_ticks,
        applied,
        max_size_per_msg: limits::RAFT_MSG_BYTES_MAX,
        max_inflight_msgs: limits::RAFT_INFLIGHT_MSGS_MAX,
        check_quorum: true,
        pre_vote: true,
        read_only_option: raft::ReadOnlyOption::Safe,
        max_uncommitted_size: limits::RAFT_UNCOMMITTED_BYTES_MAX,
        max_committed_size_per_ready: limits::RAFT_COMMITTED_BYTES_PER_READY_MAX,
        ..Default::default()
    }
}

impl Replica {
    /// Adds a brand-new replica of a static shard to `batch`.
    pub fn bootstrap(
        engine: &Engine,
        batch: &mut WriteBatch,
        descriptor: &proto::ShardDescriptor,
        replica_id: ReplicaId,
    ) {
        let shard = ShardId(descriptor.shard_id);
        let voters: Vec<u64> = descriptor.replicas.iter().map(|r| r.replica_id).collect();
        RaftLogStore::bootstrap(engine, batch, shard, &voters);
        let record = proto::storage::ReplicaRecord { descriptor: Some(descriptor.clone()), replica_id: replica_id.0 };
        batch.put_cf(engine.cf(CF_RAFT), raft_key(shard, RaftKey::Replica), prost::Message::encode_to_vec(&record));
        let apply = proto::storage::ApplyState::default();
        batch.put_cf(engine.cf(CF_RAFT), raft_key(shard, RaftKey::ApplyState), prost::Message::encode_to_vec(&apply));
    }

    /// Loads a replica from disk (after `bootstrap`, or a restart).
    pub fn load(
        engine: &Engine,
        registry: Arc<Registry>,
        shard: ShardId,
        rc: &RaftConfig,
        logger: &slog::Logger,
    ) -> std::result::Result<Replica, String> {
        let db = engine.db();
        let cf = engine.cf(CF_RAFT);
        let get = |kind| db.get_cf(cf, raft_key(shard, kind)).map_err(|e| e.to_string());
        let record: proto::storage::ReplicaRecord = get(RaftKey::Replica)?
            .map(|b| decode_record(&b, "replica record"))
            .ok_or_else(|| format!("{shard}: no replica record"))?;
        let apply: proto::storage::ApplyState =
            get(RaftKey::ApplyState)?.map(|b| decode_record(&b, "apply state")).unwrap_or_default();
        let watermark = get(RaftKey::GcWatermark)?
            .map(|b| u64::from_be_bytes(b.as_slice().try_into().unwrap_or([0; 8])))
            .unwrap_or(0);
        let watermark = Arc::new(std::sync::atomic::AtomicU64::new(watermark));
        let store = RaftLogStore::load(engine, shard, watermark.clone()).map_err(|e| e.to_string())?;
        let replica_id = ReplicaId(record.replica_id);
        let descriptor = record.descriptor.unwrap_or_default();
        let config = raft_config(replica_id, apply.applied_index, rc);
        config.validate().map_err(|e| format!("{shard}: raft config: {e}"))?;
        let logger = logger.new(slog::o!("shard" => shard.0, "replica" => replica_id.0));
        let raw_node = RawNode::new(&config, store, &logger).map_err(|e| format!("{shard}: {e}"))?;
        let max_applied_ts = Timestamp::from_nanos(apply.max_applied_ts);
        let shared = Arc::new(ReplicaShared::new(descriptor.clone(), replica_id, max_applied_ts, watermark));
        registry.insert(shared.clone());
        let replica = Replica {
            shard_id: shard,
            replica_id,
            engine: engine.clone(),
            registry,
            descriptor,
            raw_node,
            shared,
            applied_index: apply.applied_index,
            max_applied_ts,
            leader: None,
            pending_writes: BTreeMap::new(),
            staged: HashMap::new(),
            reads: ReadQueue::default(),
            gc: GcState::default(),
            last_proposal_at: Instant::now(),
        };
        replica.publish();
        Ok(replica)
    }

    pub fn descriptor(&self) -> &proto::ShardDescriptor {
        &self.descriptor
    }

    pub fn is_leader(&self) -> bool {
        self.raw_node.raft.state == raft::StateRole::Leader
    }

    /// The server hosting replica `r` of this shard.
    pub fn server_of(&self, r: ReplicaId) -> Option<ServerId> {
        self.descriptor.replicas.iter().find(|d| d.replica_id == r.0).map(|d| ServerId(d.server_id))
    }

    /// Replica ids of this shard hosted on `server`.
    pub fn replicas_on(&self, server: ServerId) -> impl Iterator<Item = ReplicaId> + '_ {
        self.descriptor.replicas.iter().filter(move |d| d.server_id == server.0).map(|d| ReplicaId(d.replica_id))
    }

    fn not_leader(&self) -> Error {
        let leader = self.raw_node.raft.leader_id;
        let hint = (leader != 0 && leader != self.replica_id.0)
            .then(|| self.server_of(ReplicaId(leader)))
            .flatten()
            .and_then(|s| self.registry.server_addr(s).map(|a| (s, a)));
        Error::NotLeader { shard_id: self.shard_id, leader: hint }
    }

    /// Checks that a request meant for this shard is routed here correctly.
    pub fn check_route(&self, epoch: u64, keys: &mut dyn Iterator<Item = &[u8]>) -> Result<()> {
        if epoch != 0 && epoch != self.descriptor.epoch {
            return Err(Error::WrongShard {
                shard_id: self.shard_id,
                epoch: Some(self.descriptor.epoch),
                reason: format!("epoch {epoch} is stale, the shard is at {}", self.descriptor.epoch),
            });
        }
        for key in keys {
            if !contains(&self.descriptor, key) {
                return Err(Error::WrongShard {
                    shard_id: self.shard_id,
                    epoch: Some(self.descriptor.epoch),
                    reason: "key outside the shard's range".into(),
                });
            }
        }
        Ok(())
    }

    // --- Proposals ---------------------------------------------------------

    fn next_ts(&mut self, tt: &TrueTime) -> Timestamp {
        let leader = self.leader.as_mut().expect("only a leader assigns timestamps");
        debug_assert!(leader.ready);
        let ts = tt.now().latest.max(leader.last_assigned_ts.next());
        leader.last_assigned_ts = ts;
        ts
    }

    /// Proposes a write, or queues it until this new leader is ready.
    pub fn propose_write(&mut self, tt: &TrueTime, epoch: u64, body: WriteBody, reply: WriteReply) {
        if let Err(e) = self.check_route(epoch, &mut body.keys()) {
            let _ = reply.send(Err(e));
            return;
        }
        let not_leader = self.not_leader();
        match &mut self.leader {
            None => {
                let _ = reply.send(Err(not_leader));
            }
            Some(leader) if !leader.ready => {
                if leader.waiting.len() >= limits::WAITING_WRITES_PER_SHARD_MAX {
                    let _ = reply.send(Err(Error::Unavailable("too many writes waiting for a new leader".into())));
                } else {
                    leader.waiting.push_back(WaitingWrite { body, reply });
                }
            }
            Some(_) => self.propose_now(tt, body, reply),
        }
    }

    fn propose_now(&mut self, tt: &TrueTime, body: WriteBody, reply: WriteReply) {
        if self.pending_writes.len() >= limits::PENDING_WRITES_PER_SHARD_MAX {
            let _ = reply.send(Err(Error::Unavailable("too many writes in flight on this shard".into())));
            return;
        }
        let ts = self.next_ts(tt);
        let data = Command::Write { ts, mutations: body.mutations, conditions: body.conditions }.encode();
        match self.raw_node.propose(vec![], data) {
            Ok(()) => {
                let index = self.raw_node.raft.raft_log.last_index();
                let term = self.raw_node.raft.term;
                self.pending_writes.insert(index, PendingWrite { term, reply });
                self.last_proposal_at = Instant::now();
            }
            Err(e) => {
                let _ = reply.send(Err(Error::Unavailable(format!("proposal dropped: {e}"))));
            }
        }
    }

    /// Proposes a closed timestamp if this leader has been idle for
    /// `interval` (or at once if `force`), so followers' safe time moves.
    pub fn maybe_close_timestamp(&mut self, tt: &TrueTime, now: Instant, interval: std::time::Duration, force: bool) {
        if !self.leader.as_ref().is_some_and(|l| l.ready) {
            return;
        }
        if !force && now.duration_since(self.last_proposal_at) < interval {
            return;
        }
        let ts = self.next_ts(tt);
        if self.raw_node.propose(vec![], Command::CloseTimestamp { ts }.encode()).is_ok() {
            self.last_proposal_at = now;
        }
    }

    // --- Reads -------------------------------------------------------------

    pub fn queue_read(&mut self, reply: ReadReply) {
        if self.is_leader() {
            self.reads.push(reply);
        } else {
            let _ = reply.send(Err(self.not_leader()));
        }
    }

    /// Starts a ReadIndex round for the reads queued this iteration. Must
    /// not be called between `ready()` and `advance()`.
    pub fn flush_reads(&mut self) {
        if !self.is_leader() {
            let err = self.not_leader();
            self.reads.fail_unconfirmed(&err);
            return;
        }
        if let Some(ctx) = self.reads.start_batch() {
            self.raw_node.read_index(ctx);
        }
    }

    pub fn confirm_reads(&mut self, states: Vec<raft::ReadState>) {
        for rs in states {
            self.reads.confirmed(&rs.request_ctx, rs.index);
        }
    }

    // --- Apply -------------------------------------------------------------

    /// Applies committed entries into `batch`, in order, exactly once.
    pub fn apply_entries(&mut self, entries: Vec<Entry>, batch: &mut WriteBatch, completions: &mut Vec<Completion>) {
        if entries.is_empty() {
            return;
        }
        for entry in entries {
            assert_eq!(
                entry.index,
                self.applied_index + 1,
                "{}: applying entry {} after {}",
                self.shard_id,
                entry.index,
                self.applied_index
            );
            let result = self.apply_entry(&entry, batch);
            self.applied_index = entry.index;
            if let Some(p) = self.pending_writes.remove(&entry.index) {
                let result = if p.term == entry.term {
                    result
                } else {
                    Err(Error::Unavailable("write dropped: leadership changed before it committed".into()))
                };
                completions.push(Completion::Write(p.reply, result));
            }
        }
        self.stage_apply_state(batch);
    }

    fn apply_entry(&mut self, entry: &Entry, batch: &mut WriteBatch) -> Result<WriteOutcome> {
        let no_write = WriteOutcome { commit_ts: Timestamp::ZERO, applied: true };
        match entry.entry_type() {
            EntryType::EntryNormal if entry.data.is_empty() => Ok(no_write),
            EntryType::EntryNormal => match Command::decode(&entry.data) {
                Ok(cmd) => self.apply_command(cmd, batch),
                Err(msg) => {
                    tracing::error!(shard = %self.shard_id, index = entry.index, "{msg}");
                    Err(Error::InvalidArgument(msg))
                }
            },
            EntryType::EntryConfChange => {
                let cc = ConfChange::decode(entry.data.as_slice())
                    .map_err(|e| Error::InvalidArgument(format!("undecodable conf change: {e}")))?;
                self.apply_conf_change(&cc, batch)
            }
            EntryType::EntryConfChangeV2 => {
                let cc = ConfChangeV2::decode(entry.data.as_slice())
                    .map_err(|e| Error::InvalidArgument(format!("undecodable conf change: {e}")))?;
                self.apply_conf_change(&cc, batch)
            }
        }
    }

    fn apply_conf_change(&mut self, cc: &impl raft_proto::ConfChangeI, batch: &mut WriteBatch) -> Result<WriteOutcome> {
        match self.raw_node.apply_conf_change(cc) {
            Ok(cs) => {
                self.raw_node.mut_store().stage_conf_state(batch, &cs);
                Ok(WriteOutcome { commit_ts: Timestamp::ZERO, applied: true })
            }
            // Deterministic: every replica refuses the same change.
            Err(e) => Err(Error::InvalidArgument(format!("conf change refused: {e}"))),
        }
    }

    fn apply_command(&mut self, cmd: Command, batch: &mut WriteBatch) -> Result<WriteOutcome> {
        let ts = cmd.ts();
        assert!(
            ts > self.max_applied_ts,
            "{}: command timestamp {ts:?} does not exceed the applied {:?}",
            self.shard_id,
            self.max_applied_ts
        );
        self.max_applied_ts = ts;
        match cmd {
            Command::Write { mutations, conditions, .. } => {
                let keys = mutations.iter().map(|m| &m.key).chain(conditions.iter().map(|c| &c.key));
                if let Some(key) = keys.into_iter().find(|k| !contains(&self.descriptor, k)) {
                    // Deterministic refusal: the same on every replica.
                    return Err(Error::WrongShard {
                        shard_id: self.shard_id,
                        epoch: Some(self.descriptor.epoch),
                        reason: format!("key {:?} outside the shard's range", String::from_utf8_lossy(key)),
                    });
                }
                for c in &conditions {
                    let current = self.latest_value(&c.key)?;
                    let holds = match &current {
                        None => c.expect_absent,
                        Some(v) => !c.expect_absent && *v == c.expected,
                    };
                    if !holds {
                        return Ok(WriteOutcome { commit_ts: ts, applied: false });
                    }
                }
                for m in &mutations {
                    let value = (!m.delete).then_some(m.value.as_slice());
                    mvcc::put_version(&self.engine, batch, &m.key, ts, value);
                    self.staged.insert(m.key.clone(), value.map(<[u8]>::to_vec));
                }
                Ok(WriteOutcome { commit_ts: ts, applied: true })
            }
            Command::CloseTimestamp { .. } => Ok(WriteOutcome { commit_ts: ts, applied: true }),
        }
    }

    /// The key's latest value as of the entries applied so far, including
    /// those staged in this iteration's batch (not yet in RocksDB).
    fn latest_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(staged) = self.staged.get(key) {
            return Ok(staged.clone());
        }
        Ok(mvcc::Reader::new(&self.engine).get(key, Timestamp::MAX)?.map(|(_, v)| v))
    }

    fn stage_apply_state(&self, batch: &mut WriteBatch) {
        let state = proto::storage::ApplyState {
            applied_index: self.applied_index,
            max_applied_ts: self.max_applied_ts.as_nanos(),
        };
        batch.put_cf(
            self.engine.cf(CF_RAFT),
            raft_key(self.shard_id, RaftKey::ApplyState),
            prost::Message::encode_to_vec(&state),
        );
    }

    /// Installs a snapshot from the leader into `batch`: data, log position,
    /// conf state, apply state and GC watermark, atomically.
    pub fn stage_snapshot(&mut self, snap: &Snapshot, batch: &mut WriteBatch, completions: &mut Vec<Completion>) {
        let metadata = snap.metadata.clone().unwrap_or_default();
        // Checked when the message arrived (`validate_incoming`).
        let data: proto::storage::ShardSnapshot =
            prost::Message::decode(snap.data.as_slice()).expect("snapshot data was validated on receipt");
        let descriptor = data.descriptor.clone().unwrap_or_else(|| self.descriptor.clone());
        self.raw_node.mut_store().stage_snapshot(batch, &metadata);

        // Raise the watermark in memory before any version is replaced.
        let watermark = self.shared.gc_watermark().max(Timestamp::from_nanos(data.gc_watermark));
        self.set_gc_watermark(watermark, batch);

        let cf = self.engine.cf(CF_DATA);
        let (lower, upper) = range_bounds(&descriptor.start_key, &descriptor.end_key);
        batch.delete_range_cf(cf, lower, upper);
        for v in &data.versions {
            let value = (!v.tombstone).then_some(v.value.as_slice());
            mvcc::put_version(&self.engine, batch, &v.key, Timestamp::from_nanos(v.ts), value);
        }
        self.applied_index = metadata.index;
        self.max_applied_ts = self.max_applied_ts.max(Timestamp::from_nanos(data.max_applied_ts));
        self.stage_apply_state(batch);
        let record =
            proto::storage::ReplicaRecord { descriptor: Some(descriptor.clone()), replica_id: self.replica_id.0 };
        batch.put_cf(
            self.engine.cf(CF_RAFT),
            raft_key(self.shard_id, RaftKey::Replica),
            prost::Message::encode_to_vec(&record),
        );
        self.shared.set_descriptor(descriptor.clone());
        self.descriptor = descriptor;
        // Writes whose index the snapshot jumped over: applied or not, this
        // replica cannot tell.
        let remaining = self.pending_writes.split_off(&(metadata.index + 1));
        for (_, p) in std::mem::replace(&mut self.pending_writes, remaining) {
            completions.push(Completion::Write(
                p.reply,
                Err(Error::Ambiguous("replaced by a snapshot before the outcome was known".into())),
            ));
        }
        self.shared.count_snapshot_installed();
        tracing::info!(shard = %self.shard_id, index = metadata.index, versions = data.versions.len(), "installed snapshot");
    }

    fn set_gc_watermark(&mut self, watermark: Timestamp, batch: &mut WriteBatch) {
        self.shared.gc_watermark_cell().store(watermark.as_nanos(), std::sync::atomic::Ordering::SeqCst);
        batch.put_cf(
            self.engine.cf(CF_RAFT),
            raft_key(self.shard_id, RaftKey::GcWatermark),
            watermark.as_nanos().to_be_bytes(),
        );
    }

    /// Compacts the log once it holds enough applied entries.
    pub fn maybe_compact_log(&mut self, batch: &mut WriteBatch, rc: &RaftConfig) {
        let truncated = self.raw_node.store().truncated_index();
        if self.applied_index.saturating_sub(truncated) < rc.log_compact_entries {
            return;
        }
        let to = self.applied_index - rc.log_retain_entries;
        if let Err(e) = self.raw_node.mut_store().stage_compact(batch, to) {
            tracing::warn!(shard = %self.shard_id, "log compaction to {to} skipped: {e}");
        }
    }

    // --- Garbage collection ------------------------------------------------

    /// Starts a GC round at `watermark` if it is above the current one.
    pub fn start_gc(&mut self, watermark: Timestamp, batch: &mut WriteBatch) {
        if watermark <= self.shared.gc_watermark() {
            return;
        }
        // Raise first, delete after (mvcc.rs explains why).
        self.set_gc_watermark(watermark, batch);
        self.gc.cursor = Some(self.descriptor.start_key.clone());
    }

    /// Runs one bounded GC step, if a round is in progress.
    pub fn gc_step(&mut self, batch: &mut WriteBatch) {
        let Some(from) = self.gc.cursor.take() else {
            return;
        };
        match mvcc::gc_step(
            &self.engine,
            batch,
            &from,
            &self.descriptor.end_key,
            self.shared.gc_watermark(),
            limits::GC_VERSIONS_PER_STEP_MAX,
        ) {
            Ok(step) => self.gc.cursor = step.next_key,
            Err(e) => tracing::warn!(shard = %self.shard_id, "garbage collection step failed: {e}"),
        }
    }

    // --- After each loop iteration -----------------------------------------

    /// Notices role changes, readies a new leader, releases reads, and
    /// publishes progress. Runs after the iteration's batches are written.
    pub fn after_iteration(&mut self, tt: &TrueTime) {
        // The iteration's batches are written: RocksDB has what was staged.
        self.staged.clear();
        self.observe_role();
        let ready_now = match &self.leader {
            Some(l) => !l.ready && self.applied_index >= l.ready_at_index,
            None => false,
        };
        if ready_now {
            let max_applied_ts = self.max_applied_ts;
            let leader = self.leader.as_mut().expect("checked above");
            leader.ready = true;
            leader.last_assigned_ts = leader.last_assigned_ts.max(max_applied_ts);
            let waiting = std::mem::take(&mut leader.waiting);
            for w in waiting {
                self.propose_now(tt, w.body, w.reply);
            }
        }
        self.shared.raise_safe_ts(self.max_applied_ts);
        self.reads.release_applied(self.applied_index, self.shared.safe_ts());
        self.publish();
    }

    fn observe_role(&mut self) {
        let raft = &self.raw_node.raft;
        let leading_now = raft.state == raft::StateRole::Leader;
        let term = raft.term;
        let same_term = self.leader.as_ref().is_some_and(|l| l.term == term);
        if leading_now && !same_term {
            self.leader = Some(LeaderState {
                term,
                ready_at_index: raft.raft_log.last_index(),
                ready: false,
                last_assigned_ts: self.max_applied_ts,
                waiting: VecDeque::new(),
            });
            tracing::debug!(shard = %self.shard_id, term, "became leader");
        } else if !leading_now {
            if let Some(old) = self.leader.take() {
                let err = self.not_leader();
                for w in old.waiting {
                    let _ = w.reply.send(Err(err.clone()));
                }
                self.reads.fail_unconfirmed(&err);
            }
        }
    }

    fn publish(&self) {
        let raft = &self.raw_node.raft;
        let leader_replica = (raft.leader_id != 0).then_some(ReplicaId(raft.leader_id));
        self.shared.set_progress(ReplicaProgress {
            role: Role::from_raft(raft.state),
            term: raft.term,
            leader_replica,
            leader_server: leader_replica.and_then(|r| self.server_of(r)),
            committed_index: raft.raft_log.committed,
            applied_index: self.applied_index,
            first_index: self.raw_node.store().first_log_index(),
            last_index: raft.raft_log.last_index(),
        });
    }

    /// Fails everything waiting on this replica (the server is stopping).
    pub fn fail_all(&mut self, err: &Error) {
        self.reads.fail_all(err);
        if let Some(l) = self.leader.as_mut() {
            for w in l.waiting.drain(..) {
                let _ = w.reply.send(Err(err.clone()));
            }
        }
        for (_, p) in std::mem::take(&mut self.pending_writes) {
            let _ = p.reply.send(Err(Error::Ambiguous(format!("{err}; the write may still commit"))));
        }
    }

    /// Checks a Raft message from the network before raft-rs sees it. Bad
    /// input from a peer is dropped, never a panic.
    pub fn validate_incoming(&self, msg: &Message) -> std::result::Result<(), String> {
        if msg.to != self.replica_id.0 {
            return Err(format!("addressed to replica {}, this is {}", msg.to, self.replica_id));
        }
        if let Some(snap) = &msg.snapshot {
            if !snap.data.is_empty() {
                let data: proto::storage::ShardSnapshot =
                    prost::Message::decode(snap.data.as_slice()).map_err(|e| format!("undecodable snapshot: {e}"))?;
                let d = data.descriptor.unwrap_or_default();
                if d.shard_id != self.shard_id.0 {
                    return Err(format!("snapshot of shard {} sent to {}", d.shard_id, self.shard_id));
                }
            }
        }
        Ok(())
    }
}

/// Is `key` in the shard's `[start_key, end_key)`?
pub fn contains(d: &proto::ShardDescriptor, key: &[u8]) -> bool {
    key >= d.start_key.as_slice() && (d.end_key.is_empty() || key < d.end_key.as_slice())
}
