//! The transactions of one shard: its participant and coordinator roles,
//! as one sans-I/O state machine, [`ShardTxns`].
//!
//! A shard leader receives requests (reads inside read-write transactions,
//! prepares, commits, aborts, heartbeats, and from other shards: outcome
//! questions and decisions). It answers some at once, parks some on locks,
//! and asks for others to be replicated. Every replica, leader or not, then
//! feeds each applied command back, and all of them arrive at the same
//! durable state (prepared transactions, coordinator decisions, safe time).
//!
//! ```text
//!  Input ──> ShardTxns::step(now, input) ──> [Output]
//!            ├── LockTable (leader only, in memory)
//!            ├── active: unprepared transactions holding locks here (leader)
//!            ├── prepared: txn -> record           (replicated, durable)
//!            ├── decisions: txn -> outcome         (replicated, durable; coordinator)
//!            ├── TimestampOracle (leader)          SafeTime (every replica)
//!
//!  Output: Reply{req, answer} | Propose{req, command} | Persist(...) |
//!          Resolve{txn, coordinator} | Notify{txn, participants, outcome}
//! ```
//!
//! # The protocol (Spanner §4.2.1, client-driven two-phase commit)
//!
//! 1. Reads in a read-write transaction take a shared lock at the leader
//!    (wound-wait) and read the latest committed value. Writes are buffered
//!    by the client.
//! 2. Commit with one participant: the shard takes exclusive locks, picks
//!    `s` (the commit rule in `timestamps.rs`), replicates
//!    `Commit{s, writes}`, and answers after it is applied.
//! 3. Commit with several: the client sends `Prepare` to every participant
//!    but one, the coordinator. A participant takes exclusive locks, checks
//!    it still holds the transaction's read locks, picks `prepare_ts`,
//!    replicates `Prepare` (with the write set AND the read set, so a new
//!    leader re-takes every lock of a prepared transaction), and answers.
//!    Then the client sends `Commit` with every `prepare_ts` to the
//!    coordinator, which decides as in 2 and also records the decision.
//!    The coordinator's replicated decision is the outcome; nothing else.
//! 4. The coordinator's server tells the participants (after commit-wait);
//!    they replicate `Finish`, which applies the writes at `s` and releases
//!    the locks. A participant that hears nothing asks the coordinator
//!    ([`Output::Resolve`]); a coordinator asked about a transaction it never
//!    saw committed decides abort, durably, so a late commit cannot win.
//!
//! Plain (non-transactional) writes are one-participant commits of an
//! internal transaction, so they take exclusive locks too and can never
//! slip between a transaction's read and its commit.
//!
//! # Leadership
//!
//! Locks of unprepared transactions live only in the leader's memory: when
//! it loses leadership they are gone, and those transactions abort (a
//! participant that no longer holds a transaction's read locks refuses to
//! prepare it). Prepared transactions keep their locks: a new leader
//! re-acquires them from the durable records before serving anything.
//!
//! "Still holds the read locks" must mean "has held them since it read",
//! not "holds them now": a transaction that read `k` under one leader and
//! reads `k` again under the next would hold a fresh lock on `k` while its
//! first read may since have been overwritten. So every grant names the
//! leadership's raft term (`Answer::Locked { lock_term }`), the client
//! sends it back with the transaction's later reads and its prepare or
//! commit on that shard, and a term other than the current one aborts the
//! transaction (`ReadLocksLost`). Found by `spandb jepsen --workload
//! list-append`, as an `internal` anomaly: two reads of one key in one
//! transaction disagreeing across a leader kill.
//!
//! # Invariants (asserted)
//! - Assigned timestamps strictly increase; `commit_ts >= prepare_ts` at the
//!   coordinator and again at each participant (`timestamps.rs`).
//! - A decision, once applied, never changes: an abort decision applied
//!   after a commit decision (or the reverse) is ignored, deterministically.
//! - Every lock a prepared transaction needs is granted on reinstall.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use truetime::{Timestamp, TtInterval};

use crate::ids::{Priority, ShardId, TxnId};
use crate::limits;
use crate::lock_table::{Acquire, Grant, LockMode, LockTable, LockTarget};
use crate::timestamps::{SafeTime, TimestampOracle};

/// Identifies a request so its answer finds its way back; chosen by the
/// driver.
pub type ReqId = u64;

/// A write: a value, or a deletion (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A precondition of a plain write: the key's latest value must be
/// `expected` (`None`: absent) when the write is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub key: Vec<u8>,
    pub expected: Option<Vec<u8>>,
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Committed(Timestamp),
    Aborted,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Committed(ts) => write!(f, "committed@{}", ts.as_nanos()),
            Outcome::Aborted => f.write_str("aborted"),
        }
    }
}

/// A transaction prepared on this shard: what it will write and what it
/// read, so its locks can be re-taken by any leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedTxn {
    pub txn: TxnId,
    pub priority: Priority,
    pub prepare_ts: Timestamp,
    pub coordinator: ShardId,
    pub writes: Vec<Write>,
    pub reads: Vec<LockTarget>,
}

/// What this shard asks Raft to replicate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnCommand {
    /// A write or commit decided on this shard: write `writes` at
    /// `commit_ts` (if every condition holds then). With participants, this
    /// shard is the coordinator and the decision is recorded.
    Commit {
        txn: TxnId,
        commit_ts: Timestamp,
        writes: Vec<Write>,
        conditions: Vec<Condition>,
        participants: Vec<ShardId>,
    },
    /// This shard is prepared to commit `txn`.
    Prepare(PreparedTxn),
    /// A transaction prepared here ended.
    Finish { txn: TxnId, outcome: Outcome },
    /// The coordinator decides abort (asked about a transaction it never
    /// committed).
    AbortDecision { txn: TxnId },
    /// No future write here will be at or below `ts`.
    Close { ts: Timestamp },
}

/// Why a transaction was aborted. Every reason is retryable: the client
/// runs the transaction again (with its original priority).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// An older transaction needed a lock it held.
    Wounded { by: TxnId },
    /// The shard's leader changed, and its in-memory locks with it.
    LeaderChanged,
    /// Its read locks on this shard are gone (a leader change since the
    /// reads), so its reads may be stale.
    ReadLocksLost,
    /// Its client stopped sending requests and heartbeats.
    KeepAliveExpired,
    /// Its client aborted it.
    ByClient,
    /// The coordinator decided abort.
    ByCoordinator,
    /// The replication of its prepare or commit failed.
    ProposalDropped,
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortReason::Wounded { by } => write!(f, "wounded by older transaction {by}"),
            AbortReason::LeaderChanged => f.write_str("the shard's leader changed"),
            AbortReason::ReadLocksLost => f.write_str("read locks lost (the shard's leader changed since the reads)"),
            AbortReason::KeepAliveExpired => f.write_str("no heartbeat from the client"),
            AbortReason::ByClient => f.write_str("aborted by the client"),
            AbortReason::ByCoordinator => f.write_str("the coordinator decided abort"),
            AbortReason::ProposalDropped => f.write_str("its replication was dropped"),
        }
    }
}

/// A request that cannot succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnError {
    Aborted(AbortReason),
    /// This replica cannot serve transactions now (not the leader, or not
    /// ready yet).
    NotLeader,
    /// Over a limit; retry later.
    Unavailable(String),
    /// The request makes no sense (e.g. a read after commit).
    InvalidArgument(String),
    /// The request was replicated but its outcome is unknown to this
    /// replica (the driver reports this, e.g. when a snapshot replaced the
    /// log around it); a commit may or may not have happened.
    Ambiguous(String),
}

impl fmt::Display for TxnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnError::Aborted(r) => write!(f, "aborted: {r}"),
            TxnError::NotLeader => f.write_str("not leader"),
            TxnError::Unavailable(m) => write!(f, "unavailable: {m}"),
            TxnError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            TxnError::Ambiguous(m) => write!(f, "outcome unknown: {m}"),
        }
    }
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The read's shared lock is held: read the latest committed value.
    /// `lock_term` names the leadership holding the transaction's locks
    /// here; its later reads and its prepare or commit carry it back.
    Locked {
        lock_term: u64,
    },
    Prepared {
        prepare_ts: Timestamp,
    },
    /// `applied` is false when a condition of a plain write failed.
    Committed {
        commit_ts: Timestamp,
        applied: bool,
    },
    /// Done (an abort, a finish, a heartbeat).
    Done,
    /// The outcome the coordinator recorded.
    Outcome(Outcome),
    /// The coordinator is committing right now: ask again.
    Pending,
}

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Reply {
        req: ReqId,
        result: Result<Answer, TxnError>,
    },
    /// Replicate `command`; tell the state machine `Applied` (or
    /// `ProposalFailed`) with the same `req`.
    Propose {
        req: Option<ReqId>,
        command: TxnCommand,
    },
    /// While applying: write these versions at `ts` (same batch).
    WriteVersions {
        writes: Vec<Write>,
        ts: Timestamp,
    },
    /// While applying: persist or delete durable records (same batch).
    StorePrepared(PreparedTxn),
    DeletePrepared(TxnId),
    StoreDecision {
        txn: TxnId,
        outcome: Outcome,
    },
    /// Ask the coordinator shard how `txn` ended (then feed `Decide`).
    Resolve {
        txn: TxnId,
        coordinator: ShardId,
    },
    /// Tell the participants how `txn` ended (after commit-wait).
    Notify {
        txn: TxnId,
        participants: Vec<ShardId>,
        outcome: Outcome,
    },
}

/// What happens to this shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A read-write transaction reads `target`: take a shared lock.
    /// `lock_term`: the `Answer::Locked` term of its earlier reads here (0
    /// for its first).
    Read {
        req: ReqId,
        txn: TxnId,
        priority: Priority,
        target: LockTarget,
        lock_term: u64,
    },
    /// Prepare `txn` here (a participant that is not the coordinator).
    Prepare {
        req: ReqId,
        txn: TxnId,
        priority: Priority,
        writes: Vec<Write>,
        reads: Vec<LockTarget>,
        /// The term its `reads` were locked under (ignored without reads).
        lock_term: u64,
        coordinator: ShardId,
    },
    /// Commit `txn` here: the one participant, or the coordinator of
    /// `participants` (with their prepare timestamps).
    Commit {
        req: ReqId,
        txn: TxnId,
        priority: Priority,
        writes: Vec<Write>,
        reads: Vec<LockTarget>,
        /// The term its `reads` were locked under (ignored without reads).
        lock_term: u64,
        participants: Vec<(ShardId, Timestamp)>,
    },
    /// A plain write (an internal one-shard transaction).
    Write {
        req: ReqId,
        writes: Vec<Write>,
        conditions: Vec<Condition>,
    },
    Abort {
        req: ReqId,
        txn: TxnId,
    },
    Heartbeat {
        txn: TxnId,
    },
    /// The outcome of `txn`, from its coordinator.
    Decide {
        req: ReqId,
        txn: TxnId,
        outcome: Outcome,
    },
    /// A participant asks how `txn` ended.
    Resolve {
        req: ReqId,
        txn: TxnId,
    },
    /// Close a timestamp (safe time for followers).
    Close,
    /// Time passes: keep-alives expire, prepared transactions get resolved.
    Tick,
    /// A command was applied (every replica). `conditions_held` is the
    /// driver's check of a `Commit`'s conditions against storage.
    Applied {
        req: Option<ReqId>,
        command: TxnCommand,
        conditions_held: bool,
    },
    /// A proposal is definitely not applied (dropped, or replaced after a
    /// leader change).
    ProposalFailed {
        req: Option<ReqId>,
        command: TxnCommand,
    },
    /// This replica leads, in raft term `term`, and has applied every
    /// entry of earlier terms.
    LeaderReady {
        term: u64,
    },
    /// This replica no longer leads.
    LeaderLost,
}

/// What a parked request does once its locks are held.
#[derive(Clone, Debug)]
enum Then {
    Read,
    Prepare {
        writes: Vec<Write>,
        reads: Vec<LockTarget>,
        coordinator: ShardId,
    },
    Commit {
        writes: Vec<Write>,
        conditions: Vec<Condition>,
        participants: Vec<(ShardId, Timestamp)>,
        received: TtInterval,
    },
}

#[derive(Clone, Debug)]
struct Parked {
    txn: TxnId,
    priority: Priority,
    wanted: VecDeque<(LockTarget, LockMode)>,
    then: Then,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading; may still abort here.
    Active,
    /// A prepare or commit of it is being replicated: it cannot be wounded.
    Deciding,
}

#[derive(Clone, Debug)]
struct ActiveTxn {
    last_heard: Timestamp,
    phase: Phase,
    /// A plain write's internal transaction: its request is waiting right
    /// here, so it has no keep-alive to miss.
    internal: bool,
}

/// The transaction state machine of one shard (module docs).
#[derive(Debug, Default)]
pub struct ShardTxns {
    shard: ShardId,
    leading: bool,
    /// The raft term of the current leadership: the in-memory locks live
    /// and die with it (0 when not leading).
    leader_term: u64,
    locks: LockTable,
    oracle: TimestampOracle,
    safe: SafeTime,
    active: BTreeMap<TxnId, ActiveTxn>,
    parked: BTreeMap<ReqId, Parked>,
    tombstones: BTreeMap<TxnId, (AbortReason, Timestamp)>,
    prepared: BTreeMap<TxnId, PreparedTxn>,
    /// When each prepared transaction's coordinator was last asked.
    last_resolve: BTreeMap<TxnId, Timestamp>,
    decisions: BTreeMap<TxnId, Outcome>,
    /// Plain writes get internal transaction ids, numbered from 0.
    next_internal: u64,
    prepared_generation: u64,
}

impl ShardTxns {
    /// A shard's state after a (re)start: from the durable records.
    pub fn restore(
        shard: ShardId,
        max_applied: Timestamp,
        prepared: Vec<PreparedTxn>,
        decisions: Vec<(TxnId, Outcome)>,
    ) -> Self {
        let mut safe = SafeTime::new(max_applied);
        for p in &prepared {
            safe.restore_prepared(p.txn, p.prepare_ts, p.writes.iter().map(|w| w.key.clone()).collect());
        }
        ShardTxns {
            shard,
            safe,
            prepared: prepared.into_iter().map(|p| (p.txn, p)).collect(),
            decisions: decisions.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn shard(&self) -> ShardId {
        self.shard
    }

    pub fn is_leading(&self) -> bool {
        self.leading
    }

    pub fn safe_time(&self) -> &SafeTime {
        &self.safe
    }

    pub fn prepared(&self) -> impl Iterator<Item = &PreparedTxn> {
        self.prepared.values()
    }

    pub fn decision(&self, txn: TxnId) -> Option<Outcome> {
        self.decisions.get(&txn).copied()
    }

    pub fn locks(&self) -> &LockTable {
        &self.locks
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Changes whenever the set of prepared transactions changes (so the
    /// driver republishes what holds reads back only then).
    pub fn prepared_generation(&self) -> u64 {
        self.prepared_generation
    }

    /// Every prepared transaction's prepare timestamp and written keys.
    pub fn prepared_writes(&self) -> Vec<(Timestamp, Vec<Vec<u8>>)> {
        self.prepared.values().map(|p| (p.prepare_ts, p.writes.iter().map(|w| w.key.clone()).collect())).collect()
    }

    /// Never assign at or below `ts` (a linearizable read was served at it).
    pub fn reserve(&mut self, ts: Timestamp) {
        self.oracle.reserve(ts);
    }

    /// Feeds one input; returns what to do, in order.
    pub fn step(&mut self, now: TtInterval, mut input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Applied { req, command, conditions_held } => self.applied(req, command, conditions_held, &mut out),
            Input::ProposalFailed { req, command } => self.proposal_failed(req, command, &mut out),
            Input::LeaderReady { term } => self.leader_ready(term),
            Input::LeaderLost => self.leader_lost(&mut out),
            _ if !self.leading => {
                if let Some(&mut req) = input.req_mut() {
                    out.push(Output::Reply { req, result: Err(TxnError::NotLeader) });
                }
            }
            Input::Read { req, txn, priority, target, lock_term } => {
                if lock_term != 0 && lock_term != self.leader_term {
                    // Its earlier reads' locks died with an earlier
                    // leadership: a new lock now would hide that they may
                    // have been overwritten since.
                    self.abort_active(txn, AbortReason::ReadLocksLost, now, &mut out);
                    out.push(Output::Reply { req, result: Err(TxnError::Aborted(AbortReason::ReadLocksLost)) });
                } else if self.admit(req, txn, now, &mut out) {
                    self.park(
                        req,
                        txn,
                        priority,
                        VecDeque::from([(target, LockMode::Shared)]),
                        Then::Read,
                        now,
                        &mut out,
                    );
                }
            }
            Input::Prepare { req, txn, priority, writes, reads, lock_term, coordinator } => {
                if let Some(p) = self.prepared.get(&txn) {
                    // A retried prepare: answer as before.
                    out.push(Output::Reply { req, result: Ok(Answer::Prepared { prepare_ts: p.prepare_ts }) });
                    return out;
                }
                if let Some(wanted) = self.admit_decision(req, txn, &writes, &reads, lock_term, now, &mut out) {
                    self.park(req, txn, priority, wanted, Then::Prepare { writes, reads, coordinator }, now, &mut out);
                }
            }
            Input::Commit { req, txn, priority, writes, reads, lock_term, participants } => {
                if let Some(outcome) = self.decisions.get(&txn) {
                    out.push(Output::Reply { req, result: outcome_answer(*outcome) });
                    return out;
                }
                if let Some(wanted) = self.admit_decision(req, txn, &writes, &reads, lock_term, now, &mut out) {
                    let then = Then::Commit { writes, conditions: vec![], participants, received: now };
                    self.park(req, txn, priority, wanted, then, now, &mut out);
                }
            }
            Input::Write { req, writes, conditions } => {
                if !self.check_writes(req, &writes, &mut out) {
                    return out;
                }
                let txn = TxnId::internal(self.next_internal);
                self.next_internal += 1;
                let priority = Priority::new(now.latest, txn);
                self.active.insert(txn, ActiveTxn { last_heard: now.earliest, phase: Phase::Active, internal: true });
                let keys: BTreeSet<Vec<u8>> =
                    writes.iter().map(|w| w.key.clone()).chain(conditions.iter().map(|c| c.key.clone())).collect();
                let wanted = keys.into_iter().map(|k| (LockTarget::Key(k), LockMode::Exclusive)).collect();
                let then = Then::Commit { writes, conditions, participants: vec![], received: now };
                self.park(req, txn, priority, wanted, then, now, &mut out);
            }
            Input::Abort { req, txn } => {
                if self.prepared.contains_key(&txn) {
                    self.propose_finish(req, txn, Outcome::Aborted, &mut out);
                } else if self.active.get(&txn).is_some_and(|a| a.phase == Phase::Deciding) {
                    let msg = "the transaction is committing; its outcome decides".to_string();
                    out.push(Output::Reply { req, result: Err(TxnError::InvalidArgument(msg)) });
                } else {
                    self.abort_active(txn, AbortReason::ByClient, now, &mut out);
                    out.push(Output::Reply { req, result: Ok(Answer::Done) });
                }
            }
            Input::Heartbeat { txn } => {
                if let Some(a) = self.active.get_mut(&txn) {
                    a.last_heard = a.last_heard.max(now.earliest);
                }
            }
            Input::Decide { req, txn, outcome } => {
                if self.prepared.contains_key(&txn) {
                    self.propose_finish(req, txn, outcome, &mut out);
                } else {
                    // Finished already (or never prepared here).
                    out.push(Output::Reply { req, result: Ok(Answer::Done) });
                }
            }
            Input::Resolve { req, txn } => self.resolve(req, txn, now, &mut out),
            Input::Close => {
                let ts = self.oracle.assign(now);
                out.push(Output::Propose { req: None, command: TxnCommand::Close { ts } });
            }
            Input::Tick => self.tick(now, &mut out),
        }
        out
    }

    /// Asks to replicate the end of a transaction prepared here. A commit
    /// timestamp is reserved now, at proposal: every timestamp assigned
    /// after this entry (so after it in the log) must exceed it, since
    /// applying it raises the replica's applied time to it.
    fn propose_finish(&mut self, req: ReqId, txn: TxnId, outcome: Outcome, out: &mut Vec<Output>) {
        if let Outcome::Committed(s) = outcome {
            self.oracle.reserve(s);
        }
        out.push(Output::Propose { req: Some(req), command: TxnCommand::Finish { txn, outcome } });
    }

    /// Registers (or refreshes) an active transaction; refuses aborted or
    /// deciding ones.
    fn admit(&mut self, req: ReqId, txn: TxnId, now: TtInterval, out: &mut Vec<Output>) -> bool {
        if let Some((reason, _)) = self.tombstones.get(&txn) {
            out.push(Output::Reply { req, result: Err(TxnError::Aborted(reason.clone())) });
            return false;
        }
        if self.prepared.contains_key(&txn) || self.active.get(&txn).is_some_and(|a| a.phase == Phase::Deciding) {
            let msg = format!("{txn} is already preparing or committing");
            out.push(Output::Reply { req, result: Err(TxnError::InvalidArgument(msg)) });
            return false;
        }
        if !self.active.contains_key(&txn) && self.active.len() >= limits::ACTIVE_TXNS_MAX {
            out.push(Output::Reply {
                req,
                result: Err(TxnError::Unavailable("too many active transactions on this shard".into())),
            });
            return false;
        }
        let a = self.active.entry(txn).or_insert(ActiveTxn {
            last_heard: now.earliest,
            phase: Phase::Active,
            internal: false,
        });
        a.last_heard = a.last_heard.max(now.earliest);
        true
    }

    /// Admits a prepare or commit: checks its size and that the
    /// transaction may still decide, and that it still holds every read
    /// lock it claims, taken under this leadership (else it aborts: its
    /// reads may be stale). Returns the exclusive locks to take, or `None`
    /// if it was answered already.
    #[allow(clippy::too_many_arguments)]
    fn admit_decision(
        &mut self,
        req: ReqId,
        txn: TxnId,
        writes: &[Write],
        reads: &[LockTarget],
        lock_term: u64,
        now: TtInterval,
        out: &mut Vec<Output>,
    ) -> Option<VecDeque<(LockTarget, LockMode)>> {
        if !self.check_writes(req, writes, out) || !self.admit(req, txn, now, out) {
            return None;
        }
        if let Err(e) = self.check_reads_held(txn, reads, lock_term) {
            self.abort_active(txn, AbortReason::ReadLocksLost, now, out);
            out.push(Output::Reply { req, result: Err(e) });
            return None;
        }
        Some(writes.iter().map(|w| (LockTarget::Key(w.key.clone()), LockMode::Exclusive)).collect())
    }

    fn check_writes(&self, req: ReqId, writes: &[Write], out: &mut Vec<Output>) -> bool {
        if writes.len() > limits::WRITES_PER_TXN_MAX {
            let msg = format!("at most {} writes per transaction per shard", limits::WRITES_PER_TXN_MAX);
            out.push(Output::Reply { req, result: Err(TxnError::InvalidArgument(msg)) });
            return false;
        }
        true
    }

    /// Whether `txn` still holds a shared lock on each of `reads`, taken
    /// under this leadership (a lock re-taken under a later one does not
    /// vouch for what the earlier read saw).
    fn check_reads_held(&self, txn: TxnId, reads: &[LockTarget], lock_term: u64) -> Result<(), TxnError> {
        let held = reads.is_empty()
            || (lock_term == self.leader_term && reads.iter().all(|t| self.locks.holds(txn, t, LockMode::Shared)));
        match held {
            true => Ok(()),
            false => Err(TxnError::Aborted(AbortReason::ReadLocksLost)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn park(
        &mut self,
        req: ReqId,
        txn: TxnId,
        priority: Priority,
        wanted: VecDeque<(LockTarget, LockMode)>,
        then: Then,
        now: TtInterval,
        out: &mut Vec<Output>,
    ) {
        self.parked.insert(req, Parked { txn, priority, wanted, then });
        self.advance(req, now, out);
    }

    /// Takes the parked request's locks in order until one must wait (then
    /// wounds whom wound-wait says) or all are held (then carries on).
    fn advance(&mut self, req: ReqId, now: TtInterval, out: &mut Vec<Output>) {
        loop {
            let Some(p) = self.parked.get_mut(&req) else { return };
            let Some((target, mode)) = p.wanted.front().cloned() else {
                let p = self.parked.remove(&req).expect("present above");
                self.locks_held(req, p, now, out);
                return;
            };
            let (txn, priority) = (p.txn, p.priority);
            match self.locks.acquire(txn, priority, target, mode) {
                Acquire::Granted => {
                    p.wanted.pop_front();
                }
                Acquire::Wait { wound, .. } => {
                    for victim in wound {
                        self.abort_active(victim, AbortReason::Wounded { by: txn }, now, out);
                    }
                    return;
                }
                Acquire::Refused { reason, retryable } => {
                    self.parked.remove(&req);
                    let e = if retryable { TxnError::Unavailable(reason) } else { TxnError::InvalidArgument(reason) };
                    out.push(Output::Reply { req, result: Err(e) });
                    return;
                }
            }
        }
    }

    /// Resumes parked requests whose lock a release just granted.
    fn resume(&mut self, grants: Vec<Grant>, now: TtInterval, out: &mut Vec<Output>) {
        for g in grants {
            let req = self
                .parked
                .iter()
                .find(|(_, p)| p.txn == g.txn && p.wanted.front() == Some(&(g.target.clone(), g.mode)))
                .map(|(req, _)| *req);
            if let Some(req) = req {
                if let Some(p) = self.parked.get_mut(&req) {
                    p.wanted.pop_front();
                }
                self.advance(req, now, out);
            }
        }
    }

    /// Every lock of a parked request is held: do what it came for.
    fn locks_held(&mut self, req: ReqId, p: Parked, now: TtInterval, out: &mut Vec<Output>) {
        match p.then {
            Then::Read => out.push(Output::Reply { req, result: Ok(Answer::Locked { lock_term: self.leader_term }) }),
            Then::Prepare { writes, reads, coordinator } => {
                let prepare_ts = self.oracle.assign(now);
                self.deciding(p.txn);
                let record = PreparedTxn { txn: p.txn, priority: p.priority, prepare_ts, coordinator, writes, reads };
                out.push(Output::Propose { req: Some(req), command: TxnCommand::Prepare(record) });
            }
            Then::Commit { writes, conditions, participants, received } => {
                let prepare_timestamps: Vec<Timestamp> = participants.iter().map(|(_, ts)| *ts).collect();
                let commit_ts = self.oracle.assign_commit(received, &prepare_timestamps);
                self.deciding(p.txn);
                let command = TxnCommand::Commit {
                    txn: p.txn,
                    commit_ts,
                    writes,
                    conditions,
                    participants: participants.into_iter().map(|(s, _)| s).collect(),
                };
                out.push(Output::Propose { req: Some(req), command });
            }
        }
    }

    /// The transaction's prepare or commit is being replicated: it can no
    /// longer be wounded.
    fn deciding(&mut self, txn: TxnId) {
        if let Some(a) = self.active.get_mut(&txn) {
            a.phase = Phase::Deciding;
        }
        self.locks.mark_prepared(txn);
    }

    /// Aborts an unprepared transaction here: fails its parked requests,
    /// releases its locks, remembers it.
    fn abort_active(&mut self, txn: TxnId, reason: AbortReason, now: TtInterval, out: &mut Vec<Output>) {
        let reqs: Vec<ReqId> = self.parked.iter().filter(|(_, p)| p.txn == txn).map(|(r, _)| *r).collect();
        for req in reqs {
            self.parked.remove(&req);
            out.push(Output::Reply { req, result: Err(TxnError::Aborted(reason.clone())) });
        }
        self.active.remove(&txn);
        if self.tombstones.len() >= limits::TOMBSTONES_MAX {
            if let Some(oldest) = self.tombstones.iter().min_by_key(|(_, (_, at))| *at).map(|(t, _)| *t) {
                self.tombstones.remove(&oldest);
            }
        }
        self.tombstones.insert(txn, (reason, now.earliest));
        let grants = self.locks.release(txn);
        self.resume(grants, now, out);
    }

    /// Releases everything a finished transaction holds here.
    fn release(&mut self, txn: TxnId, now: TtInterval, out: &mut Vec<Output>) {
        self.active.remove(&txn);
        if self.leading {
            let grants = self.locks.release(txn);
            self.resume(grants, now, out);
        }
    }

    fn resolve(&mut self, req: ReqId, txn: TxnId, now: TtInterval, out: &mut Vec<Output>) {
        if let Some(outcome) = self.decisions.get(&txn) {
            out.push(Output::Reply { req, result: Ok(Answer::Outcome(*outcome)) });
            return;
        }
        if self.active.get(&txn).is_some_and(|a| a.phase == Phase::Deciding) {
            out.push(Output::Reply { req, result: Ok(Answer::Pending) });
            return;
        }
        // Never committed here, and not committing: decide abort, durably,
        // so that a commit arriving later loses.
        self.abort_active(txn, AbortReason::ByCoordinator, now, out);
        out.push(Output::Propose { req: Some(req), command: TxnCommand::AbortDecision { txn } });
    }

    fn tick(&mut self, now: TtInterval, out: &mut Vec<Output>) {
        let silent_since = now.earliest.saturating_sub(limits::KEEPALIVE_TIMEOUT);
        let expired: Vec<TxnId> = self
            .active
            .iter()
            .filter(|(_, a)| a.phase == Phase::Active && !a.internal && a.last_heard < silent_since)
            .map(|(t, _)| *t)
            .collect();
        for txn in expired {
            self.abort_active(txn, AbortReason::KeepAliveExpired, now, out);
        }
        let forget_before = now.earliest.saturating_sub(limits::TOMBSTONE_TTL);
        self.tombstones.retain(|_, (_, at)| *at >= forget_before);
        let resolve_before = now.earliest.saturating_sub(limits::RESOLVE_AFTER);
        let retry_before = now.earliest.saturating_sub(limits::RESOLVE_RETRY);
        for p in self.prepared.values() {
            if p.prepare_ts >= resolve_before {
                continue;
            }
            if self.last_resolve.get(&p.txn).is_some_and(|at| *at >= retry_before) {
                continue;
            }
            self.last_resolve.insert(p.txn, now.earliest);
            out.push(Output::Resolve { txn: p.txn, coordinator: p.coordinator });
        }
    }

    fn applied(&mut self, req: Option<ReqId>, command: TxnCommand, conditions_held: bool, out: &mut Vec<Output>) {
        // Locks are released and waiters resumed at "now" of the apply; the
        // keep-alive clock is not involved, so the interval does not matter.
        let now = TtInterval::new(Timestamp::ZERO, Timestamp::ZERO);
        match command {
            TxnCommand::Close { ts } => self.safe.applied(ts),
            TxnCommand::Commit { txn, commit_ts, writes, conditions: _, participants } => {
                self.safe.applied(commit_ts);
                let result = if self.decisions.get(&txn) == Some(&Outcome::Aborted) {
                    // The coordinator decided abort first (asked by a
                    // participant): this commit lost.
                    Err(TxnError::Aborted(AbortReason::ByCoordinator))
                } else {
                    if conditions_held && !writes.is_empty() {
                        out.push(Output::WriteVersions { writes, ts: commit_ts });
                    }
                    if !participants.is_empty() {
                        let outcome = Outcome::Committed(commit_ts);
                        self.decisions.insert(txn, outcome);
                        out.push(Output::StoreDecision { txn, outcome });
                        if self.leading {
                            out.push(Output::Notify { txn, participants, outcome });
                        }
                    }
                    Ok(Answer::Committed { commit_ts, applied: conditions_held })
                };
                self.release(txn, now, out);
                if let Some(req) = req {
                    out.push(Output::Reply { req, result });
                }
            }
            TxnCommand::Prepare(record) => {
                let (txn, prepare_ts) = (record.txn, record.prepare_ts);
                self.safe.prepare(txn, prepare_ts, record.writes.iter().map(|w| w.key.clone()).collect());
                out.push(Output::StorePrepared(record.clone()));
                self.prepared.insert(txn, record);
                self.prepared_generation += 1;
                self.active.remove(&txn);
                if let Some(req) = req {
                    out.push(Output::Reply { req, result: Ok(Answer::Prepared { prepare_ts }) });
                }
            }
            TxnCommand::Finish { txn, outcome } => {
                if let Some(record) = self.prepared.remove(&txn) {
                    self.prepared_generation += 1;
                    self.last_resolve.remove(&txn);
                    match outcome {
                        Outcome::Committed(s) => {
                            self.safe.finish(txn, Some(s));
                            if !record.writes.is_empty() {
                                out.push(Output::WriteVersions { writes: record.writes, ts: s });
                            }
                        }
                        Outcome::Aborted => self.safe.finish(txn, None),
                    }
                    out.push(Output::DeletePrepared(txn));
                    self.release(txn, now, out);
                }
                if let Some(req) = req {
                    out.push(Output::Reply { req, result: Ok(Answer::Done) });
                }
            }
            TxnCommand::AbortDecision { txn } => {
                let outcome = *self.decisions.entry(txn).or_insert(Outcome::Aborted);
                if outcome == Outcome::Aborted {
                    out.push(Output::StoreDecision { txn, outcome });
                }
                if let Some(req) = req {
                    out.push(Output::Reply { req, result: Ok(Answer::Outcome(outcome)) });
                }
            }
        }
    }

    fn proposal_failed(&mut self, req: Option<ReqId>, command: TxnCommand, out: &mut Vec<Output>) {
        let now = TtInterval::new(Timestamp::ZERO, Timestamp::ZERO);
        let failed = match &command {
            TxnCommand::Commit { txn, .. } | TxnCommand::Prepare(PreparedTxn { txn, .. }) => {
                // Not prepared, not committed: it can only abort now.
                if self.leading {
                    self.abort_active(*txn, AbortReason::ProposalDropped, now, out);
                }
                Err(TxnError::Aborted(AbortReason::ProposalDropped))
            }
            TxnCommand::Finish { .. } | TxnCommand::AbortDecision { .. } | TxnCommand::Close { .. } => {
                Err(TxnError::Unavailable("the replication was dropped; retry".into()))
            }
        };
        if let Some(req) = req {
            out.push(Output::Reply { req, result: failed });
        }
    }

    fn leader_ready(&mut self, term: u64) {
        self.leading = true;
        self.leader_term = term;
        self.oracle = TimestampOracle::starting_above(self.safe.max_applied());
        self.locks.clear();
        // Prepared transactions keep their locks under every leader.
        for p in self.prepared.values() {
            for target in &p.reads {
                let granted = self.locks.acquire(p.txn, p.priority, target.clone(), LockMode::Shared);
                assert_eq!(granted, Acquire::Granted, "{}: prepared {} lost a read lock", self.shard, p.txn);
            }
            for w in &p.writes {
                let granted =
                    self.locks.acquire(p.txn, p.priority, LockTarget::Key(w.key.clone()), LockMode::Exclusive);
                assert_eq!(granted, Acquire::Granted, "{}: prepared {} lost a write lock", self.shard, p.txn);
            }
            self.locks.mark_prepared(p.txn);
        }
    }

    fn leader_lost(&mut self, out: &mut Vec<Output>) {
        self.leading = false;
        self.leader_term = 0;
        for (req, _) in std::mem::take(&mut self.parked) {
            out.push(Output::Reply { req, result: Err(TxnError::Aborted(AbortReason::LeaderChanged)) });
        }
        self.active.clear();
        self.locks.clear();
        self.last_resolve.clear();
    }
}

fn outcome_answer(outcome: Outcome) -> Result<Answer, TxnError> {
    match outcome {
        Outcome::Committed(commit_ts) => Ok(Answer::Committed { commit_ts, applied: true }),
        Outcome::Aborted => Err(TxnError::Aborted(AbortReason::ByCoordinator)),
    }
}

impl Input {
    /// The id of the request this input carries (`None`: not a request),
    /// for the driver to set and the state machine to answer.
    pub fn req_mut(&mut self) -> Option<&mut ReqId> {
        match self {
            Input::Read { req, .. }
            | Input::Prepare { req, .. }
            | Input::Commit { req, .. }
            | Input::Write { req, .. }
            | Input::Abort { req, .. }
            | Input::Decide { req, .. }
            | Input::Resolve { req, .. } => Some(req),
            _ => None,
        }
    }
}

#[cfg(test)]
mod scripts;
