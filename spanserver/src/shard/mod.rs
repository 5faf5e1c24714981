//! A replica: this server's copy of one shard, driven through raft-rs, with
//! the shard's transactions decided by `txn::ShardTxns`.
//!
//! ```text
//!        requests (leader)                 raft messages
//!             │                                  │
//!             v                                  v
//!   Replica: ShardTxns::step(now, input) ──> outputs ──> propose / reply /
//!             │                                          persist / ask peers
//!             v
//!   RawNode<RaftLogStore> ──> Ready ──> (event_loop/ready.rs orders persist,
//!             │                          send, apply, advance)
//!             v
//!   apply: decode TxnCommand ──> ShardTxns::step(Applied) ──> write versions,
//!          records (cf txn) into the batch; answer the request that proposed it
//! ```
//!
//! The replica is the I/O shell around two pure cores: raft-rs decides
//! what is committed, `ShardTxns` decides what a command means (locks,
//! timestamps, prepared transactions, decisions, safe time). The replica
//! stores and sends what they say, and owns what is about the log: which
//! proposal an applied entry answers, leadership, snapshots, compaction and
//! garbage collection.
//!
//! # Leadership and timestamps
//!
//! A new leader must know every timestamp in its log before it assigns
//! one. So when a replica becomes leader it waits until it has applied its
//! log up to the position it had when elected (its own first entry), and
//! only then tells `ShardTxns` `LeaderReady` (which starts assigning above
//! the largest applied timestamp and re-takes the locks of prepared
//! transactions). Requests that arrive meanwhile wait (bounded).
//!
//! # Proposals are tracked by (index, term)
//!
//! After `propose`, the entry's index and term are recorded with the
//! request it serves. When that index is applied with the same term, the
//! request is answered by the apply; with another term, a leader change
//! replaced it: `ProposalFailed`. A snapshot that jumps over a pending
//! index leaves the outcome unknown: `Ambiguous`. Never a FIFO: leader
//! changes drop and reorder proposals (STYLE.md, raft-rs checklist item 8).
//!
//! # Invariants (asserted)
//! - Entries apply exactly once, in order: each applied index is the
//!   previous plus one (or a snapshot's index).
//! - The timestamp rules hold (`txn::timestamps`).

mod apply;
pub mod command;
mod gc;
pub(crate) use gc::GcBudget;
mod handover;
mod install;
mod leadership;
pub mod lease;
pub mod membership;
pub mod reads;
mod records;
mod slow;
pub mod split;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use meta::RequestId;
use prost011::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, Snapshot};
use raft::RawNode;
use rocksdb::WriteBatch;
use tokio::sync::oneshot;
use truetime::{Timestamp, TrueTime};
use txn::{Answer, Input, LockTarget, Outcome, Output, ShardTxns, TxnCommand, TxnError};

use self::command::Command;
pub(crate) use self::gc::GcState;
use self::lease::LeaderLease;
use self::membership::MembershipReply;
use self::reads::{ReadQueue, ReadReply};
use self::split::SplitReply;
use crate::config::{RaftConfig, UnsafeTestingConfig};
use crate::error::{Error, Result};
use crate::limits;
use crate::registry::{Registry, ReplicaProgress, ReplicaShared, Role, TimeView};
use crate::storage::keycode::{raft_key, range_bounds, txn_key, txn_kind_bounds, RaftKey, TxnKey};
use crate::storage::raft_log::{decode_record, RaftLogStore};
use crate::storage::snapshot::{ingest, SnapshotDir, SnapshotFile, SnapshotSource};
use crate::storage::{mvcc, Engine, CF_DATA, CF_RAFT, CF_TXN};
use crate::wire;
use meta::{ReplicaId, ServerId, ShardDescriptor, ShardId, TxnId};
use records::{decode_decision, decode_prepared, load_txn_records};

/// A commit-protocol request a replica wants made of another shard's
/// leader. The replica only records it ([`Replica::take_peer_calls`]);
/// the event loop returns it with the step's effects, and the step's
/// driver makes the call (`peers.rs` over gRPC; the simulation on its
/// schedule), so no state change ever waits on, or calls into, the
/// network. Answers come back through the inbox as inputs (`Decide`,
/// `Acknowledged`).
#[derive(Debug, Clone, PartialEq)]
pub enum PeerCall {
    /// Ask `coordinator` how `txn` ended, on behalf of `participant`.
    Resolve { participant: ShardId, txn: TxnId, coordinator: ShardId, patient: bool },
    /// Tell `participants` how `txn` ended, on behalf
    /// of `coordinator`.
    Decide { coordinator: ShardId, txn: TxnId, participants: Vec<ShardId>, outcome: Outcome },
}

/// Answered with the state machine's answer to a request.
pub type TxnReply = oneshot::Sender<std::result::Result<Answer, TxnError>>;

/// An answer for a waiting request handler, with the channel it goes
/// back on. The step only collects them; its driver sends them once the
/// step's batches are written ([`crate::event_loop::Effects::replies`]),
/// so no handler hears of a write before it is applied.
#[derive(Debug)]
pub enum Completion {
    /// A transaction state machine's answer (or a refusal).
    Txn { reply: TxnReply, result: std::result::Result<Answer, TxnError> },
    /// A linearizable read may proceed at this safe time (or may not).
    Read { reply: ReadReply, result: Result<Timestamp> },
    /// A split applied (the shard and its child), or why not.
    Split { reply: SplitReply, result: Result<(ShardDescriptor, ShardDescriptor)> },
    /// A membership change applied (the new descriptor), or why not.
    Membership { reply: MembershipReply, result: Result<ShardDescriptor> },
}

impl Completion {
    /// Sends the answer; a handler that stopped waiting is not an error.
    pub fn send(self) {
        match self {
            Completion::Txn { reply, result } => {
                let _ = reply.send(result);
            }
            Completion::Read { reply, result } => {
                let _ = reply.send(result);
            }
            Completion::Split { reply, result } => {
                let _ = reply.send(result);
            }
            Completion::Membership { reply, result } => {
                let _ = reply.send(result);
            }
        }
    }

    /// The transaction answer this carries, if it is one (for observers
    /// of the effects, such as the simulation's checks).
    pub fn txn_result(&self) -> Option<&std::result::Result<Answer, TxnError>> {
        match self {
            Completion::Txn { result, .. } => Some(result),
            Completion::Read { .. } | Completion::Split { .. } | Completion::Membership { .. } => None,
        }
    }
}

/// The first log index of every initialized shard (of the static layout,
/// or born by a split): its Raft state starts here (index and term), as if
/// it had applied a snapshot, so a replica added to it later (empty, from
/// index 0) always starts from a snapshot, never from the log (TiKV's
/// `RAFT_INIT_LOG_INDEX`).
pub const INITIAL_INDEX: u64 = 5;

struct Proposal {
    term: u64,
    req: Option<RequestId>,
    command: TxnCommand,
}

pub struct Replica {
    pub shard_id: ShardId,
    pub replica_id: ReplicaId,
    engine: Engine,
    registry: Arc<Registry>,
    /// Peer calls made since the event loop last took them.
    peer_calls: Vec<PeerCall>,
    descriptor: ShardDescriptor,
    pub raw_node: RawNode<RaftLogStore>,
    shared: Arc<ReplicaShared>,
    applied_index: u64,
    txns: ShardTxns,
    /// Our proposals by log index.
    proposals: BTreeMap<u64, Proposal>,
    /// Our split proposals by log index, with their term.
    splits: BTreeMap<u64, (u64, SplitReply)>,
    /// Our membership change proposals by log index, with their term.
    membership: BTreeMap<u64, (u64, MembershipReply)>,
    /// Shards this replica's splits created, for the event loop to open.
    created: Vec<ShardId>,
    /// The log index of the last split applied here (0: none).
    last_split_index: u64,
    /// While uninitialized: the servers of the replicas that wrote to it.
    heard_from: BTreeMap<ReplicaId, ServerId>,
    /// Where each request's answer goes, and since when it waits.
    replies: HashMap<RequestId, slow::Pending>,
    next_req: RequestId,
    /// While leading: (term, index to apply before `LeaderReady`, ready?).
    leadership: Option<(u64, u64, bool)>,
    /// Requests that arrived before this new leader was ready, or that
    /// would open new work while a handover drains the shard.
    waiting: VecDeque<(Input, Option<TxnReply>)>,
    /// When `waiting` last became non-empty (`slow.rs`).
    waiting_since: Option<Instant>,
    /// A leadership transfer draining the shard first (`handover.rs`).
    handover: Option<handover::Handover>,
    /// Values written by entries applied in this iteration, whose batch is
    /// not yet in RocksDB: conditions must see them.
    staged: HashMap<Vec<u8>, Option<Vec<u8>>>,
    reads: ReadQueue,
    /// While leading: reads may skip the ReadIndex round (`lease.rs`).
    lease: LeaderLease,
    gc: gc::GcState,
    /// When this replica last proposed (as of the step that noticed), or
    /// `None` before its first step: idle leaders close timestamps.
    last_proposal_at: Option<Instant>,
    /// Proposed since the last step noticed.
    proposed: bool,
    /// When this leader last handed its leadership away (clock distrust).
    last_hand_off: Option<Instant>,
    /// The last snapshot message that arrived, by id, and its data file.
    incoming_snapshot: Option<(u64, Option<PathBuf>)>,
    /// A waiting read asked for a closed timestamp.
    close_wanted: bool,
    /// A commit that wrote nothing asked for a lease (`txn`'s
    /// `Output::WantLease`); [`Replica::flush_reads`] renews it.
    lease_wanted: bool,
    last_close_at: Option<Instant>,
    published_generation: Option<u64>,
}

/// The raft-rs configuration of every replica (STYLE.md checklist item 9:
/// set what the defaults leave open).
fn raft_config(replica_id: ReplicaId, applied: u64, rc: &RaftConfig) -> raft::Config {
    raft::Config {
        id: replica_id.0,
        election_tick: rc.election_ticks,
        min_election_tick: rc.election_ticks,
        max_election_tick: match rc.election_ticks_max {
            0 => 2 * rc.election_ticks,
            n => n,
        },
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

/// Sets a request id on an input that carries one.
fn with_req(mut input: Input, id: RequestId) -> Input {
    if let Some(req) = input.req_mut() {
        *req = id;
    }
    input
}

impl Replica {
    /// Adds a brand-new replica of a static shard to `batch`.
    pub fn bootstrap(engine: &Engine, batch: &mut WriteBatch, descriptor: &ShardDescriptor, replica_id: ReplicaId) {
        let shard = descriptor.shard_id;
        let voters: Vec<u64> = descriptor.replicas.iter().map(|r| r.replica_id.0).collect();
        RaftLogStore::bootstrap_at(engine, batch, shard, (&voters, &[]), INITIAL_INDEX, INITIAL_INDEX, None);
        let record = proto::storage::ReplicaRecord {
            descriptor: Some(wire::descriptor_to_proto(descriptor)),
            replica_id: replica_id.0,
        };
        batch.put_cf(engine.cf(CF_RAFT), raft_key(shard, RaftKey::Replica), prost::Message::encode_to_vec(&record));
        let apply = proto::storage::ApplyState { applied_index: INITIAL_INDEX, ..Default::default() };
        batch.put_cf(engine.cf(CF_RAFT), raft_key(shard, RaftKey::ApplyState), prost::Message::encode_to_vec(&apply));
    }

    /// Adds an uninitialized replica (`replica_id` of `shard`) to `batch`:
    /// no range, no voters, an empty log, for the shard's leader to fill
    /// with a snapshot (`event_loop.rs`, a message for a shard not here).
    pub fn bootstrap_uninitialized(engine: &Engine, batch: &mut WriteBatch, shard: ShardId, replica_id: ReplicaId) {
        RaftLogStore::bootstrap(engine, batch, shard, &[]);
        let record = proto::storage::ReplicaRecord {
            descriptor: Some(wire::descriptor_to_proto(&ShardDescriptor::uninitialized(shard))),
            replica_id: replica_id.0,
        };
        batch.put_cf(engine.cf(CF_RAFT), raft_key(shard, RaftKey::Replica), prost::Message::encode_to_vec(&record));
        let apply = proto::storage::ApplyState::default();
        batch.put_cf(engine.cf(CF_RAFT), raft_key(shard, RaftKey::ApplyState), prost::Message::encode_to_vec(&apply));
    }

    /// Loads a replica from disk (after `bootstrap`, or a restart).
    pub fn load(
        engine: &Engine,
        registry: Arc<Registry>,
        snapshots: Arc<SnapshotDir>,
        shard: ShardId,
        rc: &RaftConfig,
        unsafe_testing: &UnsafeTestingConfig,
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
        // An install interrupted between its batch and its ingest: finish it.
        if let Some(path) = get(RaftKey::PendingIngest)? {
            let path = PathBuf::from(std::ffi::OsString::from_vec(path));
            if path.exists() {
                ingest_or_stop(engine, shard, &path);
            }
            engine.db().delete_cf(cf, raft_key(shard, RaftKey::PendingIngest)).map_err(|e| e.to_string())?;
            tracing::info!(%shard, "finished a snapshot install interrupted by a restart");
        }
        let source = SnapshotSource::new(engine.clone(), shard, snapshots, rc.snapshot_bytes_max, watermark.clone());
        let store = RaftLogStore::load(engine, shard, source).map_err(|e| e.to_string())?;
        let replica_id = ReplicaId(record.replica_id);
        let descriptor = wire::descriptor_from_proto(record.descriptor.unwrap_or_default());
        let config = raft_config(replica_id, apply.applied_index, rc);
        config.validate().map_err(|e| format!("{shard}: raft config: {e}"))?;
        let logger = logger.new(slog::o!("shard" => shard.0, "replica" => replica_id.0));
        let raw_node = RawNode::new(&config, store, &logger).map_err(|e| format!("{shard}: {e}"))?;
        let max_applied_ts = Timestamp::from_nanos(apply.max_applied_ts);
        let prepared = load_txn_records(engine, shard, TxnKey::Prepared, decode_prepared)?;
        let decisions = load_txn_records(engine, shard, TxnKey::Decision, decode_decision)?;
        let mut txns = ShardTxns::restore(shard, max_applied_ts, prepared, decisions);
        if unsafe_testing.new_leader_forgets_timestamps {
            txns.unsafe_forget_timestamps_on_leader_change();
        }
        let shared = Arc::new(ReplicaShared::new(descriptor.clone(), replica_id, max_applied_ts, watermark));
        let mut replica = Replica {
            shard_id: shard,
            replica_id,
            engine: engine.clone(),
            registry,
            peer_calls: Vec::new(),
            descriptor,
            raw_node,
            shared,
            applied_index: apply.applied_index,
            txns,
            proposals: BTreeMap::new(),
            splits: BTreeMap::new(),
            membership: BTreeMap::new(),
            created: Vec::new(),
            last_split_index: apply.last_split_index,
            heard_from: BTreeMap::new(),
            replies: HashMap::new(),
            next_req: RequestId(1),
            leadership: None,
            waiting: VecDeque::new(),
            waiting_since: None,
            handover: None,
            staged: HashMap::new(),
            reads: ReadQueue::default(),
            lease: LeaderLease::new(rc),
            gc: gc::GcState::default(),
            last_proposal_at: None,
            proposed: false,
            last_hand_off: None,
            incoming_snapshot: None,
            close_wanted: false,
            lease_wanted: false,
            last_close_at: None,
            published_generation: None,
        };
        // Published before requests can find it: a read must never see
        // the replica without its prepared transactions' writes (a child
        // of a split starts with some).
        replica.publish();
        replica.registry.insert(replica.shared.clone());
        Ok(replica)
    }

    pub fn descriptor(&self) -> &ShardDescriptor {
        &self.descriptor
    }

    /// Whether this replica's shard no longer names it (it applied its
    /// own removal): the event loop destroys it.
    pub fn is_removed(&self) -> bool {
        self.descriptor.is_initialized() && self.descriptor.server_of(self.replica_id).is_none()
    }

    pub fn is_leader(&self) -> bool {
        self.raw_node.raft.state == raft::StateRole::Leader
    }

    /// What the replica last published for request handlers.
    pub fn published_progress(&self) -> ReplicaProgress {
        self.shared.progress()
    }

    /// The time the replica last published for request handlers.
    pub fn published_time(&self) -> TimeView {
        self.shared.time_view()
    }

    fn leader_ready(&self) -> bool {
        self.leadership.is_some_and(|(_, _, ready)| ready)
    }

    /// The server hosting replica `r` of this shard.
    pub fn server_of(&self, r: ReplicaId) -> Option<ServerId> {
        self.descriptor.server_of(r).or_else(|| self.heard_from.get(&r).copied())
    }

    /// A message from replica `from` came from `server`. An uninitialized
    /// replica knows no other replica until a snapshot brings the
    /// descriptor; meanwhile it answers whoever wrote to it.
    pub fn heard_from(&mut self, from: ReplicaId, server: ServerId) {
        if !self.descriptor.is_initialized() && self.heard_from.len() < limits::UNINITIALIZED_PEERS_MAX {
            self.heard_from.insert(from, server);
        }
    }

    /// Is a transaction open here: active (holding locks), waiting for a
    /// lock, or prepared? A leader change would abort the first two (their
    /// read locks live only at the leader).
    pub fn has_open_transactions(&self) -> bool {
        self.txns.active_count() > 0 || self.txns.parked_count() > 0 || self.txns.prepared().next().is_some()
    }

    /// Replica ids of this shard hosted on `server`.
    pub fn replicas_on(&self, server: ServerId) -> impl Iterator<Item = ReplicaId> + '_ {
        self.descriptor.replicas_on(server)
    }

    fn not_leader(&self) -> Error {
        let leader = self.raw_node.raft.leader_id;
        let hint = (leader != 0 && leader != self.replica_id.0)
            .then(|| self.server_of(ReplicaId(leader)))
            .flatten()
            .and_then(|s| self.registry.server_addr(s).map(|a| (s, a)));
        Error::NotLeader { shard_id: self.shard_id, leader: hint }
    }

    // --- Transactions --------------------------------------------------------

    /// A request for the transaction state machine. Answered through
    /// `reply` (if any) at the end of the loop iteration.
    /// Inputs that are not requests (a heartbeat, an acknowledgement) get
    /// no reply slot: nothing would ever answer it.
    pub fn submit(
        &mut self,
        tt: &TrueTime,
        mut input: Input,
        reply: Option<TxnReply>,
        completions: &mut Vec<Completion>,
    ) {
        let reply = match (input.req_mut().is_some(), reply) {
            (true, Some(reply)) => Some(reply),
            (true, None) => Some(oneshot::channel().0),
            (false, _) => None,
        };
        let refuse = |completions: &mut Vec<Completion>, reply: Option<TxnReply>, e: TxnError| {
            if let Some(reply) = reply {
                completions.push(Completion::Txn { reply, result: Err(e) });
            }
        };
        if !self.is_leader() {
            return refuse(completions, reply, TxnError::NotLeader);
        }
        if !self.leader_ready() || self.held_by_handover(&input) {
            if self.waiting.len() >= limits::WAITING_WRITES_PER_SHARD_MAX {
                let e = TxnError::Unavailable("too many requests waiting for a new leader".into());
                return refuse(completions, reply, e);
            }
            if self.waiting.is_empty() {
                self.waiting_since = Some(lease::monotonic_now());
            }
            self.waiting.push_back((input, reply));
            return;
        }
        if input.proposes() && self.proposals.len() >= limits::PENDING_WRITES_PER_SHARD_MAX {
            let e = TxnError::Unavailable("too many writes in flight on this shard".into());
            return refuse(completions, reply, e);
        }
        if let Some(reply) = reply {
            let req = self.next_req;
            self.next_req.0 += 1;
            self.replies.insert(req, slow::Pending::new(reply, &input));
            input = with_req(input, req);
        }
        let outputs = self.step_txns(tt, input);
        self.execute(tt, outputs, None, completions);
    }

    /// Steps the transaction state machine at the clock's current reading.
    /// Every input that does something, and what it did, is traced under
    /// `spandb::txn` (`SPANDB_LOG=info,spandb::txn=trace`): a lock
    /// conflict, wound or lost decision is then visible in the server logs
    /// of a failed jepsen run.
    fn step_txns(&mut self, tt: &TrueTime, input: Input) -> Vec<Output> {
        let now = tt.now();
        let leased = self.holds_lease(lease::monotonic_now());
        self.txns.set_leased(leased);
        if !tracing::enabled!(target: "spandb::txn", tracing::Level::TRACE) {
            return self.txns.step(now, input);
        }
        let quiet = matches!(input, Input::Tick | Input::Close);
        let shown = format!("{input:?}");
        let outputs = self.txns.step(now, input);
        if !quiet || !outputs.is_empty() {
            tracing::trace!(target: "spandb::txn", shard = %self.shard_id, now = ?now, "{shown} -> {outputs:?}");
        }
        outputs
    }

    /// Carries out the state machine's outputs. `batch` is the apply batch
    /// while applying (records and versions go there), `None` otherwise.
    fn execute(
        &mut self,
        tt: &TrueTime,
        outputs: Vec<Output>,
        mut batch: Option<&mut WriteBatch>,
        completions: &mut Vec<Completion>,
    ) {
        let mut queue: VecDeque<Output> = outputs.into();
        while let Some(output) = queue.pop_front() {
            match output {
                Output::Reply { req, result } => {
                    if let Some(pending) = self.replies.remove(&req) {
                        completions.push(Completion::Txn { reply: pending.reply, result });
                    }
                }
                Output::Propose { req, command } => {
                    // raft-rs 0.7 forwards a follower's proposals to the
                    // leader, and has no switch to stop it. Ours must never
                    // be forwarded: the command carries a timestamp this
                    // replica assigned while it led, which the new leader's
                    // log may already have passed. So propose only while
                    // Raft itself says this replica leads (checked on the
                    // loop thread, right before proposing).
                    if !self.is_leader() {
                        queue.extend(self.step_txns(tt, Input::ProposalFailed { req, command }));
                        continue;
                    }
                    let data = command::encode(&command);
                    match self.raw_node.propose(vec![], data) {
                        Ok(()) => {
                            let index = self.raw_node.raft.raft_log.last_index();
                            let term = self.raw_node.raft.term;
                            self.proposals.insert(index, Proposal { term, req, command });
                            self.proposed = true;
                        }
                        Err(e) => {
                            tracing::debug!(shard = %self.shard_id, "proposal dropped: {e}");
                            queue.extend(self.step_txns(tt, Input::ProposalFailed { req, command }));
                        }
                    }
                }
                Output::WriteVersions { writes, ts } => {
                    let batch = batch.as_deref_mut().expect("versions are written only while applying");
                    let bytes =
                        writes.iter().map(|w| w.key.len() + w.value.as_ref().map_or(0, Vec::len)).sum::<usize>();
                    self.shared.add_written_bytes(bytes as u64);
                    self.gc.note_written(ts);
                    for w in writes {
                        mvcc::put_version(&self.engine, batch, &w.key, ts, w.value.as_deref());
                        self.staged.insert(w.key, w.value);
                    }
                }
                Output::StorePrepared(p) => {
                    let batch = batch.as_deref_mut().expect("records are written only while applying");
                    let key = txn_key(self.shard_id, TxnKey::Prepared, p.txn.0);
                    let value = prost::Message::encode_to_vec(&command::prepared_to_proto(&p));
                    batch.put_cf(self.engine.cf(CF_TXN), key, value);
                }
                // Written by `apply_split`, with the child it makes.
                Output::Inherit { shard, .. } => {
                    tracing::error!(shard = %self.shard_id, child = %shard, "a prepared record handed over outside a split")
                }
                Output::DeletePrepared(t) => {
                    let batch = batch.as_deref_mut().expect("records are written only while applying");
                    batch.delete_cf(self.engine.cf(CF_TXN), txn_key(self.shard_id, TxnKey::Prepared, t.0));
                }
                Output::StoreDecision { txn, decision } => {
                    let batch = batch.as_deref_mut().expect("records are written only while applying");
                    let key = txn_key(self.shard_id, TxnKey::Decision, txn.0);
                    let value = prost::Message::encode_to_vec(&command::decision_to_proto(&decision));
                    batch.put_cf(self.engine.cf(CF_TXN), key, value);
                }
                Output::DeleteDecision(t) => {
                    let batch = batch.as_deref_mut().expect("records are written only while applying");
                    batch.delete_cf(self.engine.cf(CF_TXN), txn_key(self.shard_id, TxnKey::Decision, t.0));
                }
                Output::Resolve { txn, coordinator, patient } => {
                    self.peer_calls.push(PeerCall::Resolve { participant: self.shard_id, txn, coordinator, patient })
                }
                Output::Decide { txn, participants, outcome } => {
                    self.peer_calls.push(PeerCall::Decide { coordinator: self.shard_id, txn, participants, outcome })
                }
                Output::WantLease => self.lease_wanted = true,
            }
        }
    }

    /// Lets time pass for transactions (keep-alives, resolution).
    pub fn tick_txns(&mut self, tt: &TrueTime, completions: &mut Vec<Completion>) {
        if self.leader_ready() {
            let outputs = self.step_txns(tt, Input::Tick);
            self.execute(tt, outputs, None, completions);
        }
    }

    /// The data file to send with an outgoing snapshot message: `Ok(None)`
    /// for a shard without data, `Err` if the build it names is gone.
    #[allow(clippy::result_unit_err)]
    pub fn snapshot_file_for(&self, m: &Message) -> std::result::Result<Option<SnapshotFile>, ()> {
        let header: proto::storage::ShardSnapshot =
            m.snapshot.as_ref().and_then(|s| prost::Message::decode(s.data.as_slice()).ok()).ok_or(())?;
        if header.data_bytes == 0 {
            return Ok(None);
        }
        self.raw_node.store().snapshot_source().file(header.snapshot_id).map(Some).ok_or(())
    }

    // --- Reads -------------------------------------------------------------

    pub fn queue_read(&mut self, reply: ReadReply, completions: &mut Vec<Completion>) {
        if self.is_leader() {
            self.reads.push(reply, completions);
        } else {
            completions.push(Completion::Read { reply, result: Err(self.not_leader()) });
        }
    }

    /// Serves the reads queued this iteration: from the lease if it
    /// holds (renewing it when half gone), else by a ReadIndex round
    /// begun at `now`. Must not be called between `ready()` and
    /// `advance()`.
    pub fn flush_reads(&mut self, now: Instant, completions: &mut Vec<Completion>) {
        if !self.is_leader() {
            let err = self.not_leader();
            self.reads.fail_unconfirmed(&err, completions);
            return;
        }
        self.void_lease_if_transferring();
        if std::mem::take(&mut self.lease_wanted) {
            let term = self.raw_node.raft.term;
            if self.lease.expiring(term, now) {
                if let Some(ctx) = self.reads.start_renewal(now, term) {
                    self.raw_node.read_index(ctx);
                }
            }
        }
        if !self.reads.has_queued() {
            return;
        }
        let raft = &self.raw_node.raft;
        let term = raft.term;
        let conf_change_pending = raft.pending_conf_index > raft.raft_log.applied;
        if !conf_change_pending && self.lease.covers(term, now) {
            self.reads.serve_queued(raft.raft_log.committed);
            // What is applied is in RocksDB (the last iteration wrote
            // it); reads waiting for more are released when it applies.
            self.reads.release_applied(self.applied_index, self.txns.safe_time().max_applied(), completions);
            if self.lease.expiring(term, now) {
                if let Some(ctx) = self.reads.start_renewal(now, term) {
                    self.raw_node.read_index(ctx);
                }
            }
        } else if let Some(ctx) = self.reads.start_batch(now, term) {
            self.raw_node.read_index(ctx);
        }
    }

    /// A transfer began (here, or asked by a follower): its TimeoutNow
    /// may elect the target at any time, so the term leases no more
    /// (`lease.rs`). Checked where reads are served and after every
    /// iteration that touched the replica (a transfer's start sends).
    pub fn void_lease_if_transferring(&mut self) {
        if self.raw_node.raft.lead_transferee.is_some() {
            self.lease.void(self.raw_node.raft.term);
            self.shared.revoke_lease_reads();
        }
    }

    /// Before a step's early sends leave (`lease.rs`, "Reads that skip the
    /// loop"): a transfer begun in the step ends the lease, and a commit
    /// index past what is applied stops handlers' lease reads until the
    /// next publish, since the appends about to leave tell the followers,
    /// which may apply those entries and serve them (a bounded-staleness
    /// read) while this leader is still writing its batch.
    pub fn guard_lease_reads(&mut self) {
        self.void_lease_if_transferring();
        if self.raw_node.raft.raft_log.committed > self.applied_index {
            self.shared.revoke_lease_reads();
        }
    }

    /// Whether no other replica can lead the shard at `now`, nor have led
    /// it since this term began: the lease holds as it does for reads
    /// served from it ([`Replica::flush_reads`]), and this leader is ready.
    /// What `txn` needs to answer a commit that wrote nothing without a
    /// Raft round (`ShardTxns::set_leased`).
    fn holds_lease(&self, now: Instant) -> bool {
        let raft = &self.raw_node.raft;
        self.is_leader()
            && self.leader_ready()
            && raft.lead_transferee.is_none()
            && raft.pending_conf_index <= raft.raft_log.applied
            && self.lease.covers(raft.term, now)
    }

    /// Until when handlers may serve linearizable reads without the loop
    /// ([`ReplicaProgress::lease_covers`]): the conditions under which
    /// [`Replica::flush_reads`] serves from the lease, and everything
    /// committed applied (the loop's path gets both by waiting for the
    /// committed index; a ready leader has applied what earlier terms
    /// committed, and a follower may already serve what this term did).
    fn lease_reads_until(&self) -> Option<Instant> {
        let raft = &self.raw_node.raft;
        let conf_change_pending = raft.pending_conf_index > raft.raft_log.applied;
        let eligible = self.is_leader()
            && self.leader_ready()
            && raft.raft_log.committed <= self.applied_index
            && raft.lead_transferee.is_none()
            && !conf_change_pending;
        eligible.then(|| self.lease.held_until(raft.term)).flatten()
    }

    pub fn confirm_reads(&mut self, states: Vec<raft::ReadState>) {
        for rs in states {
            if let Some((started, term)) = self.reads.confirmed(&rs.request_ctx, rs.index) {
                let raft = &self.raw_node.raft;
                if raft.state == raft::StateRole::Leader && raft.term == term {
                    self.lease.extend(term, started);
                }
            }
        }
    }

    // --- After each loop iteration -----------------------------------------

    /// Notices role changes, readies a new leader, releases reads, and
    /// publishes progress. Runs after the iteration's batches are written.
    pub fn after_iteration(&mut self, tt: &TrueTime, completions: &mut Vec<Completion>) {
        // The iteration's batches are written: RocksDB has what was staged.
        self.staged.clear();
        self.observe_role(tt, completions);
        self.void_lease_if_transferring();
        if let Some((term, ready_at, false)) = self.leadership {
            if self.applied_index >= ready_at {
                self.leadership = Some((term, ready_at, true));
                let outputs = self.step_txns(tt, Input::LeaderReady { term: meta::Term(term) });
                self.execute(tt, outputs, None, completions);
                for (input, reply) in std::mem::take(&mut self.waiting) {
                    self.submit(tt, input, reply, completions);
                }
            }
        }
        self.advance_handover(None, tt, completions);
        self.publish();
        self.reads.release_applied(self.applied_index, self.txns.safe_time().max_applied(), completions);
    }

    /// The peer calls made since the last time, for the event loop to
    /// return with its effects.
    pub fn take_peer_calls(&mut self) -> Vec<PeerCall> {
        std::mem::take(&mut self.peer_calls)
    }

    /// Publishes progress and safe time for request handlers (after every
    /// iteration that touched the replica, and every tick).
    pub fn publish(&mut self) {
        // The time first: a handler that finds the lease covering (in the
        // progress) then reads at the published time, which must hold
        // everything applied by then.
        let generation = self.txns.prepared_generation();
        let prepared = (self.published_generation != Some(generation)).then(|| self.txns.prepared_writes());
        self.published_generation = Some(generation);
        self.shared.publish_time(self.txns.safe_time().max_applied(), prepared);
        let raft = &self.raw_node.raft;
        let leader_replica = (raft.leader_id != 0).then_some(ReplicaId(raft.leader_id));
        // What a leader knows of its followers, for `spandb status` and the
        // placement driver: silent ones, and ones waiting for a snapshot.
        // raft-rs clears `recent_active` of every follower at each quorum
        // check, and sets it again at its next answer: one that is also
        // behind the commit index (which closed timestamps keep moving) has
        // not answered for a while.
        let (mut down_replicas, mut pending_replicas) = (Vec::new(), Vec::new());
        if raft.state == raft::StateRole::Leader {
            let committed = raft.raft_log.committed;
            for (&id, p) in raft.prs().iter().filter(|(&id, _)| id != self.replica_id.0) {
                if p.state == raft::ProgressState::Snapshot {
                    pending_replicas.push(ReplicaId(id));
                } else if !p.recent_active && p.matched < committed {
                    down_replicas.push(ReplicaId(id));
                }
            }
            down_replicas.sort();
            pending_replicas.sort();
        }
        self.shared.set_progress(ReplicaProgress {
            role: Role::from_raft(raft.state),
            term: raft.term,
            leader_replica,
            leader_server: leader_replica.and_then(|r| self.server_of(r)),
            committed_index: raft.raft_log.committed,
            applied_index: self.applied_index,
            first_index: self.raw_node.store().first_log_index(),
            last_index: raft.raft_log.last_index(),
            pending_requests: self.replies.len(),
            down_replicas: down_replicas.into(),
            pending_replicas: pending_replicas.into(),
            lease_reads_until: self.lease_reads_until(),
        });
    }

    /// Fails everything waiting on this replica (the server is stopping).
    pub fn fail_all(&mut self, err: &Error, completions: &mut Vec<Completion>) {
        self.reads.fail_all(err, completions);
        let unavailable = || Err(TxnError::Unavailable(err.to_string()));
        for reply in self.waiting.drain(..).filter_map(|(_, r)| r) {
            completions.push(Completion::Txn { reply, result: unavailable() });
        }
        for (_, p) in std::mem::take(&mut self.proposals) {
            if let Some(pending) = p.req.and_then(|r| self.replies.remove(&r)) {
                let result = Err(TxnError::Ambiguous(format!("{err}; it may still commit")));
                completions.push(Completion::Txn { reply: pending.reply, result });
            }
        }
        for (_, pending) in self.replies.drain() {
            completions.push(Completion::Txn { reply: pending.reply, result: unavailable() });
        }
        for (_, (_, reply)) in std::mem::take(&mut self.splits) {
            completions
                .push(Completion::Split { reply, result: Err(Error::Ambiguous(format!("{err}; it may still split"))) });
        }
        for (_, (_, reply)) in std::mem::take(&mut self.membership) {
            let result = Err(Error::Ambiguous(format!("{err}; it may still apply")));
            completions.push(Completion::Membership { reply, result });
        }
    }

    /// Checks a Raft message from the network before raft-rs sees it. Bad
    /// input from a peer is dropped, never a panic. Snapshot messages come
    /// only with their data file (`file_bytes`: its size, if any), through
    /// [`Replica::validate_snapshot`].
    pub fn validate_incoming(&self, msg: &Message) -> std::result::Result<(), String> {
        if msg.to != self.replica_id.0 {
            return Err(format!("addressed to replica {}, this is {}", msg.to, self.replica_id));
        }
        if msg.msg_type() == raft::eraftpb::MessageType::MsgSnapshot || msg.snapshot.is_some() {
            return Err("a snapshot without its data file".into());
        }
        Ok(())
    }

    /// Checks a snapshot message and its data file (`file_bytes`: the
    /// file's size, `None` without one); returns the snapshot's id.
    pub fn validate_snapshot(&self, msg: &Message, file_bytes: Option<u64>) -> std::result::Result<u64, String> {
        if msg.to != self.replica_id.0 {
            return Err(format!("addressed to replica {}, this is {}", msg.to, self.replica_id));
        }
        let snap = match (&msg.snapshot, msg.msg_type()) {
            (Some(snap), raft::eraftpb::MessageType::MsgSnapshot) => snap,
            _ => return Err("not a snapshot message".into()),
        };
        let data: proto::storage::ShardSnapshot =
            prost::Message::decode(snap.data.as_slice()).map_err(|e| format!("undecodable snapshot: {e}"))?;
        let d = data.descriptor.unwrap_or_default();
        if d.shard_id != self.shard_id.0 {
            return Err(format!("snapshot of shard {} sent to {}", d.shard_id, self.shard_id));
        }
        let expected = (data.data_bytes > 0).then_some(data.data_bytes);
        if file_bytes != expected {
            return Err(format!("snapshot data of {file_bytes:?} bytes, its header says {expected:?}"));
        }
        Ok(data.snapshot_id)
    }
}

/// Ingests a snapshot's data file; a failure stops the process (like a
/// failed write: the replica's data would not match its Raft state).
fn ingest_or_stop(engine: &Engine, shard: ShardId, path: &Path) {
    if let Err(e) = ingest(engine, path) {
        crate::storage::stop_on_storage_failure(&format!("{shard}: snapshot ingest of {} failed: {e}", path.display()));
    }
}
