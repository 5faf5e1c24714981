//! The transactions of one shard: its participant and coordinator roles,
//! as one sans-I/O state machine, [`ShardTxns`].
//!
//! A shard leader receives requests (reads inside read-write transactions,
//! prepares, commits, aborts, heartbeats, and from other shards: outcome
//! questions, decisions, acknowledgements). It answers some at once, parks
//! some on locks, and asks for others to be replicated. Every replica,
//! leader or not, then feeds each applied command back, and all of them
//! arrive at the same durable state (prepared transactions, coordinator
//! decisions, safe time).
//!
//! ```text
//!  Input ──> ShardTxns::step(now, input) ──> [Output]
//!            ├── LockTable (leader only, in memory)
//!            ├── active: unprepared transactions holding locks here (leader)
//!            ├── committing: committing ones holding nothing here (leader; coordinator)
//!            ├── parked: requests waiting for locks (leader, bounded wait)
//!            ├── prepared: txn -> record           (replicated, durable)
//!            ├── decisions: txn -> Decision        (replicated, durable; coordinator)
//!            ├── unacked: who has not confirmed a commit decision (leader)
//!            ├── TimestampOracle (leader)          SafeTime (every replica)
//!
//!  Output: Reply{req, answer} | Propose{req, command} | Write/Store/Delete(...) |
//!          Resolve{txn, coordinator} | Decide{txn, participants, outcome}
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
//!    coordinator, which decides as in 2 and also records the decision,
//!    naming the participants. The coordinator's replicated decision is
//!    the outcome; nothing else.
//! 4. The coordinator's server tells the named participants the decision
//!    (at once, not after commit-wait: `spanserver::peers` says why;
//!    [`Output::Decide`], sent as the `Peer.Decide`
//!    call, arriving as [`Input::Decide`]; one word for one decision);
//!    they replicate `Finish` (a participant's record that the
//!    transaction ended there), which applies the writes at `s` and
//!    releases the locks, and acknowledge ([`Input::Acknowledged`]). The coordinator repeats the notice to
//!    whoever has not acknowledged, also after a leader change, and forgets
//!    the decision once all have (at its next tick, in one
//!    `ForgetDecisions` entry for every decision acknowledged since the
//!    last). A participant that hears nothing asks
//!    the coordinator ([`Output::Resolve`]). The answer is per participant:
//!    committed only to a participant the decision names; a shard the
//!    client left out of its commit was not part of the transaction, and
//!    aborts its prepared writes. A participant that asks only because
//!    it has waited ([`limits::RESOLVE_AFTER`]) is patient: for
//!    [`limits::RESOLVE_PATIENCE`] after its prepare, a coordinator whose
//!    transaction is still open and its client heard from within two
//!    heartbeat intervals answers "pending" (the commit may be waiting on
//!    a slow prepare elsewhere; a vanished client is given up on as
//!    soon). A coordinator where the transaction holds locks knows it as
//!    open; one where it only writes hears of it from the client, which
//!    heartbeats its coordinator while its commit waits on prepares. An
//!    older transaction waiting for the prepared one makes the question
//!    impatient, however recent a patient one was.
//!    Otherwise a coordinator asked about a transaction
//!    it never committed decides abort, durably, so a late commit cannot
//!    win; it forgets that decision after [`limits::ABORT_DECISION_TTL`],
//!    by when a commit naming a participant prepared before it is refused
//!    as too old ([`limits::PREPARE_VALID_FOR`]).
//!
//! A prepared participant never aborts on its own, nor because a client
//! says so: a client's `Abort` of a prepared transaction makes the
//! participant ask the coordinator at once, which decides abort unless it
//! committed. So no client, honest or not, can split a transaction.
//!
//! Plain (non-transactional) writes are one-participant commits of an
//! internal transaction, so they take exclusive locks too and can never
//! slip between a transaction's read and its commit.
//!
//! # Leases: locks held since the read
//!
//! Locks of unprepared transactions live only in the leader's memory, and
//! die with its leadership, with a wound, or with an expired keep-alive;
//! those transactions must abort. "Still holds the read locks" at prepare
//! or commit must mean "has held them since it read", not "holds them
//! now": a transaction that read `k`, lost its lock, and read `k` again
//! would hold a fresh lock on `k` while its first read may since have been
//! overwritten. So a transaction's first lock on a shard starts a
//! [`LockLease`] (the leader's term and an admission number), every grant
//! answers with it (`Answer::Locked { lease }`), and the client presents it
//! with its later reads and its prepare or commit there. A lease that is
//! not the transaction's current admission aborts it (`ReadLocksLost`).
//! Found by `spandb jepsen --workload list-append` as an `internal`
//! anomaly (a reread across a leader kill); a wound followed by a reread
//! under the same leader was the same hole.
//!
//! # A commit that wrote nothing
//!
//! A transaction that only read here (drivers such as psycopg wrap every
//! SELECT in BEGIN ... COMMIT) commits in one phase with no writes. Its
//! Commit entry would change no state; replicating it only proves that
//! this replica still leads, so that locks it granted in this term still
//! stand. A leader lease proves the same without a round: while it holds,
//! no other replica can lead or have led since the term began (the
//! server says so before each step, [`ShardTxns::set_leased`]). Then the
//! commit is answered at once: its reads held their locks from the reads
//! until now, so now is a point at which all of them hold, and nothing
//! becomes visible. It still gets a fresh commit timestamp, and its
//! commit-wait, as any commit. Without a lease it is replicated as before,
//! and asks for one ([`Output::WantLease`]) for the next.
//!
//! ```text
//!   read a (shared lock)  ...  commit, no writes:
//!     leased   -> release the locks, answer committed@s   (no entry)
//!     unleased -> propose Commit{s, no writes} as any commit; WantLease
//! ```
//!
//! # Waiting, and deadlock across shards
//!
//! On one shard wound-wait has no cycles: a request waits only for older
//! transactions or prepared ones, and prepared ones wait for nothing
//! there. Across shards a prepared transaction can wait, at its
//! coordinator, for an older one: young T prepared at shard B, its commit
//! parked at coordinator A behind old T0's lock, while T0 waits at B for
//! T's prepared lock. T0 cannot wound T at B (T may already be committed),
//! so B *pushes* instead: when an older transaction starts waiting for a
//! younger prepared one, B asks T's coordinator at once ([`Output::Resolve`]),
//! and a coordinator that has not started deciding T decides abort. The
//! cycle breaks in one round trip, and wound-wait's rule (the older one
//! wins) holds across shards. A request parked longer than
//! [`limits::LOCK_WAIT_MAX`] is answered `Unavailable` in any case.
//!
//! # Splits: a prepared transaction's heirs
//!
//! A shard may split while a transaction is prepared on it, with keys on
//! both sides. The coordinator's decision names the shard as it was
//! (`shard1`), and nobody tells the coordinator about the split. So the
//! split ([`Input::RangeSplit`]) divides the record instead: the part on
//! moved keys becomes the new shard's prepared record, with this shard as
//! its `coordinator`, and this shard's record lists the new one among its
//! `heirs`:
//!
//! ```text
//!   shard1 ["a", "z"): t1 prepared @5, writes b, q     coordinator shard7
//!   split at "m", child shard9:
//!   shard1 ["a", "m"): t1 @5 writes b, heirs [shard9]  coordinator shard7
//!   shard9 ["m", "z"): t1 @5 writes q                  coordinator shard1
//! ```
//!
//! When shard1 learns the outcome (from shard7, by `Decide` or by asking),
//! its `Finish` also records a decision naming its heirs, so shard1 is
//! now their coordinator: it tells them, repeats until they acknowledge,
//! and answers their questions (`relay`). Shard1 acknowledges
//! shard7 as before, so shard7 may forget its decision while shard9 still
//! needs one: shard1's durable decision is the one shard9 relies on. An
//! heir that asks before shard1 knows is told `Pending`, and shard1 asks
//! shard7 at once. Heirs split again the same way.
//!
//! # Invariants (asserted)
//! - Assigned timestamps strictly increase; `commit_ts >= prepare_ts` at the
//!   coordinator (`timestamps.rs`). Timestamps from outside are checked
//!   before they are used: a commit timestamp below a participant's
//!   prepare timestamp, or one too far in the future, is refused before
//!   anything is proposed; applying such a `Finish` (impossible but for a
//!   bug) changes nothing, deterministically, rather than crash every
//!   replica.
//! - A decision, once applied, never changes: an abort decision applied
//!   after a commit decision (or the reverse) is ignored, deterministically.
//! - Every lock a prepared transaction needs is granted on reinstall.
//! - Nothing aborts a transaction here once its prepare or commit is being
//!   replicated (`abort_active` refuses): its locks live until its
//!   outcome. One wound can make another victim start preparing (the
//!   first victim's release grants the second its last lock); aborting it
//!   anyway let a write skew through (`spandb jepsen`, 2026-12-02).
//! - A committing transaction's written keys are locked by it alone
//!   (asserted in debug builds as the commit or finish is applied).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use truetime::{Timestamp, TtInterval};

use crate::limits;
use crate::lock_table::{Acquire, Grant, LockMode, LockTable, LockTarget};
use crate::timestamps::{SafeTime, TimestampOracle};
use meta::{LockLease, Priority, RequestId, ShardId, Term, TxnId};

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

/// A coordinator's durable decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The participants the commit named (empty for an abort decision,
    /// whose participants the coordinator never learned).
    pub participants: Vec<ShardId>,
    /// When it was decided (the commit timestamp, or the coordinator's
    /// clock for an abort decision): abort decisions are forgotten
    /// [`limits::ABORT_DECISION_TTL`] later.
    pub decided_at: Timestamp,
}

impl Decision {
    /// What participant `shard` must do: commit only if the decision names
    /// it.
    pub fn outcome_for(&self, shard: ShardId) -> Outcome {
        match self.outcome {
            Outcome::Committed(s) if self.participants.contains(&shard) => Outcome::Committed(s),
            _ => Outcome::Aborted,
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
    /// Whom this shard asks for the outcome: the transaction's
    /// coordinator, or, for a record a split handed to this shard, the
    /// shard it split from (which learns the outcome from the coordinator
    /// and relays it: module docs, "Splits").
    pub coordinator: ShardId,
    pub writes: Vec<Write>,
    pub reads: Vec<LockTarget>,
    /// Preconditions on written keys, checked when the prepare applies (if
    /// one fails, nothing is prepared); empty once prepared.
    pub conditions: Vec<Condition>,
    /// The shards split off this one while the transaction was prepared
    /// here, which took the part of it on their keys: this shard relays
    /// the outcome to them.
    pub heirs: Vec<ShardId>,
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
        /// What the transaction read here under its locks: a split that
        /// moved one of them before this applies makes it refused (the
        /// new shard never knew of the lock).
        reads: Vec<LockTarget>,
    },
    /// This shard is prepared to commit `txn`.
    Prepare(PreparedTxn),
    /// A transaction prepared here ended.
    Finish { txn: TxnId, outcome: Outcome },
    /// The coordinator decides abort (asked about a transaction it never
    /// committed), at `decided_at` by its clock.
    AbortDecision { txn: TxnId, decided_at: Timestamp },
    /// The coordinator no longer needs its decisions on `txns` (every
    /// participant acknowledged each commit, or an abort decision
    /// expired). One entry per tick carries all of them: forgetting is
    /// not urgent, and a Raft entry per transaction cost each replica a
    /// log write and an apply.
    ForgetDecisions { txns: Vec<TxnId> },
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
    /// Its read locks on this shard are gone since it read (a leader
    /// change, a wound, an expired keep-alive), so its reads may be stale.
    ReadLocksLost,
    /// Its client stopped sending requests and heartbeats.
    KeepAliveExpired,
    /// Its client aborted it.
    ByClient,
    /// The coordinator decided abort.
    ByCoordinator,
    /// The replication of its prepare or commit failed.
    ProposalDropped,
    /// A participant prepared too long ago ([`limits::PREPARE_VALID_FOR`]).
    PrepareExpired,
    /// The shard split, and the keys it locked or waited for moved to the
    /// new shard ([`Input::RangeSplit`]).
    ShardSplit,
    /// A condition of its prepare did not hold ([`Answer::ConditionsFailed`]).
    ConditionsFailed,
    /// A read would have been granted, or its commit timestamp fallen, at
    /// or after the transaction's deadline ([`Input::Read`]).
    DeadlinePassed,
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortReason::Wounded { by } => write!(f, "wounded by older transaction {by}"),
            AbortReason::LeaderChanged => f.write_str("the shard's leader changed"),
            AbortReason::ReadLocksLost => {
                f.write_str("read locks lost since the reads (a leader change, a wound or an expired keep-alive)")
            }
            AbortReason::KeepAliveExpired => f.write_str("no heartbeat from the client"),
            AbortReason::ByClient => f.write_str("aborted by the client"),
            AbortReason::ByCoordinator => f.write_str("the coordinator decided abort"),
            AbortReason::ProposalDropped => f.write_str("its replication was dropped"),
            AbortReason::PrepareExpired => f.write_str("a participant prepared too long ago"),
            AbortReason::ShardSplit => f.write_str("the shard split, and its keys moved"),
            AbortReason::ConditionsFailed => f.write_str("a key written with a condition did not meet it"),
            AbortReason::DeadlinePassed => {
                f.write_str("it ran past its deadline (the end of a table descriptor's lease it used)")
            }
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
    /// Over a limit, or waited too long; retry later.
    Unavailable(String),
    /// The request makes no sense (e.g. a read after commit, a timestamp
    /// from the far future).
    InvalidArgument(String),
    /// A read that must not wait ([`Input::Read`]'s `no_wait`) found its
    /// lock taken. Nothing was locked; the transaction may go on.
    LockNotAvailable(String),
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
            TxnError::LockNotAvailable(m) => write!(f, "lock not available: {m}"),
        }
    }
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The read's shared lock is held: read the latest committed value.
    /// `lease` names the transaction's locks here; its later reads and its
    /// prepare or commit present it.
    Locked {
        lease: LockLease,
    },
    Prepared {
        prepare_ts: Timestamp,
    },
    /// A prepare's condition did not hold: nothing was prepared, and the
    /// transaction is aborted on this shard.
    ConditionsFailed,
    /// `applied` is false when a condition of a plain write failed.
    Committed {
        commit_ts: Timestamp,
        applied: bool,
    },
    /// Done (an abort, a finish, a heartbeat).
    Done,
    /// What the asking participant must do, from the coordinator's
    /// decision.
    Outcome(Outcome),
    /// The coordinator is committing right now: ask again.
    Pending,
}

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Reply {
        req: RequestId,
        result: Result<Answer, TxnError>,
    },
    /// Replicate `command`; tell the state machine `Applied` (or
    /// `ProposalFailed`) with the same `req`.
    Propose {
        req: Option<RequestId>,
        command: TxnCommand,
    },
    /// While applying: write these versions at `ts` (same batch).
    WriteVersions {
        writes: Vec<Write>,
        ts: Timestamp,
    },
    /// While applying: persist or delete durable records (same batch).
    StorePrepared(PreparedTxn),
    /// While applying a split: the new shard `shard` starts with `record`,
    /// the part of a transaction prepared here that is on its keys (same
    /// batch as the split).
    Inherit {
        shard: ShardId,
        record: PreparedTxn,
    },
    DeletePrepared(TxnId),
    StoreDecision {
        txn: TxnId,
        decision: Decision,
    },
    DeleteDecision(TxnId),
    /// Ask the coordinator shard how `txn` ended (then feed `Decide`).
    /// A `patient` question accepts "pending" for a transaction whose
    /// client is still heard from; an impatient one (an older transaction
    /// waits, or the client aborted) has the coordinator decide now.
    Resolve {
        txn: TxnId,
        coordinator: ShardId,
        patient: bool,
    },
    /// Tell the participants how `txn` ended, and feed
    /// `Acknowledged` for each that confirms.
    Decide {
        txn: TxnId,
        participants: Vec<ShardId>,
        outcome: Outcome,
    },
    /// A commit that wrote nothing came: keep a lease ([`ShardTxns::set_leased`]),
    /// so that such commits need no Raft round.
    WantLease,
}

/// What happens to this shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A read-write transaction reads `target`: take a lock of `mode`,
    /// shared, or exclusive for a key it means to write (a read for
    /// update, as `UPDATE` does: two transactions that read a key shared
    /// and then both write it would each wait for the other's lock, and
    /// wound-wait would abort one). `lease`: the one its earlier reads
    /// here were answered with (`None` for its first).
    ///
    /// `deadline`: the transaction must happen before it (the client's
    /// promise to a schema it cached, F1's rule: the earliest end of the
    /// table descriptor leases its statements used). A read is granted
    /// only while `now.latest` is below it, and a commit only at a
    /// timestamp below it; else the transaction aborts
    /// ([`AbortReason::DeadlinePassed`], retryable).
    Read {
        req: RequestId,
        txn: TxnId,
        priority: Priority,
        target: LockTarget,
        mode: LockMode,
        lease: Option<LockLease>,
        deadline: Option<Timestamp>,
        /// Refuse ([`TxnError::LockNotAvailable`]) rather than wait or
        /// wound when the lock is not free now (SQL's `NOWAIT`). The
        /// transaction keeps what it holds and may go on.
        no_wait: bool,
    },
    /// Prepare `txn` here (a participant that is not the coordinator).
    Prepare {
        req: RequestId,
        txn: TxnId,
        priority: Priority,
        writes: Vec<Write>,
        reads: Vec<LockTarget>,
        /// The lease its `reads` were locked under (needed with reads).
        lease: Option<LockLease>,
        coordinator: ShardId,
        /// Preconditions on keys it writes, checked when the prepare is
        /// applied. If one fails, nothing is prepared and the transaction
        /// aborts here ([`Answer::ConditionsFailed`]).
        conditions: Vec<Condition>,
    },
    /// Commit `txn` here: the one participant, or the coordinator of
    /// `participants` (with their prepare timestamps, which the driver has
    /// checked were issued by them).
    Commit {
        req: RequestId,
        txn: TxnId,
        priority: Priority,
        writes: Vec<Write>,
        reads: Vec<LockTarget>,
        /// The lease its `reads` were locked under (needed with reads).
        lease: Option<LockLease>,
        participants: Vec<(ShardId, Timestamp)>,
        /// Preconditions on keys it writes, checked when applied (as a
        /// plain write's). If one fails, the commit writes nothing and a
        /// coordinator decides abort for its participants.
        conditions: Vec<Condition>,
        /// The commit timestamp must be below it ([`Input::Read`]).
        deadline: Option<Timestamp>,
    },
    /// A plain write (an internal one-shard transaction).
    Write {
        req: RequestId,
        writes: Vec<Write>,
        conditions: Vec<Condition>,
    },
    Abort {
        req: RequestId,
        txn: TxnId,
    },
    /// The client is alive; `committing`: its commit is under way and
    /// this shard is its coordinator (it may hold nothing here).
    Heartbeat {
        txn: TxnId,
        committing: bool,
    },
    /// The outcome of `txn`, from its coordinator (a peer).
    Decide {
        req: RequestId,
        txn: TxnId,
        outcome: Outcome,
    },
    /// Participant `participant` asks how `txn` ended (a peer);
    /// `patient` as in [`Output::Resolve`].
    Resolve {
        req: RequestId,
        txn: TxnId,
        participant: ShardId,
        patient: bool,
    },
    /// `participant` confirmed it applied this shard's decision on `txn`.
    Acknowledged {
        txn: TxnId,
        participant: ShardId,
    },
    /// Close a timestamp (safe time for followers).
    Close,
    /// Time passes: keep-alives expire, parked requests time out, prepared
    /// transactions get resolved, decisions get repeated and forgotten.
    Tick,
    /// A command was applied (every replica). `conditions_held` is the
    /// driver's check of a `Commit`'s conditions against storage.
    Applied {
        req: Option<RequestId>,
        command: TxnCommand,
        conditions_held: bool,
    },
    /// A proposal is definitely not applied (dropped, or replaced after a
    /// leader change).
    ProposalFailed {
        req: Option<RequestId>,
        command: TxnCommand,
    },
    /// This replica leads, in raft term `term`, and has applied every
    /// entry of earlier terms.
    LeaderReady {
        term: Term,
    },
    /// This replica no longer leads.
    LeaderLost,
    /// The shard split (every replica, as the split applies): the keys
    /// from `split_key` to `end_key` (empty: the end of the key space) now
    /// belong to the new shard `child`. Prepared transactions hand the
    /// part of them on those keys to it ([`Output::Inherit`]; module docs,
    /// "Splits"). The leader aborts every unprepared transaction holding
    /// or waiting for a lock on them ([`AbortReason::ShardSplit`];
    /// retryable).
    RangeSplit {
        split_key: Vec<u8>,
        end_key: Vec<u8>,
        child: ShardId,
    },
}

impl Input {
    /// The id of the request this input carries (`None`: not a request),
    /// for the driver to set and the state machine to answer.
    pub fn req_mut(&mut self) -> Option<&mut RequestId> {
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

    /// Whether the input, if accepted, asks for something to be
    /// replicated (so the driver can refuse it when too many proposals are
    /// pending).
    pub fn proposes(&self) -> bool {
        matches!(self, Input::Prepare { .. } | Input::Commit { .. } | Input::Write { .. })
    }
}

/// What a parked request does once its locks are held.
#[derive(Clone, Debug)]
enum Then {
    Read {
        deadline: Option<Timestamp>,
        no_wait: bool,
    },
    Prepare {
        writes: Vec<Write>,
        reads: Vec<LockTarget>,
        coordinator: ShardId,
        conditions: Vec<Condition>,
    },
    Commit {
        writes: Vec<Write>,
        conditions: Vec<Condition>,
        participants: Vec<(ShardId, Timestamp)>,
        reads: Vec<LockTarget>,
        received: TtInterval,
        deadline: Option<Timestamp>,
    },
}

#[derive(Clone, Debug)]
struct Parked {
    txn: TxnId,
    priority: Priority,
    wanted: VecDeque<(LockTarget, LockMode)>,
    then: Then,
    /// When it was parked (`now.earliest`): it waits at most
    /// [`limits::LOCK_WAIT_MAX`].
    since: Timestamp,
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
    /// When it first came here (`now.earliest`): a handover spares
    /// transactions open for long ([`ShardTxns::oldest_active_since`]).
    opened: Timestamp,
    phase: Phase,
    /// Its locks here: presented back by its later requests.
    lease: LockLease,
    /// A plain write's internal transaction: its request is waiting right
    /// here, so it has no keep-alive to miss.
    internal: bool,
}

/// Participants that have not yet confirmed a commit decision, and when
/// they were last told.
#[derive(Clone, Debug)]
struct Unacked {
    participants: BTreeSet<ShardId>,
    outcome: Outcome,
    notified_at: Timestamp,
}

/// The transaction state machine of one shard (module docs).
#[derive(Debug, Default)]
pub struct ShardTxns {
    shard: ShardId,
    leading: bool,
    /// The raft term of the current leadership: the in-memory locks live
    /// and die with it (0 when not leading).
    leader_term: Term,
    /// Admissions of this leadership so far (lease numbers).
    admissions: u64,
    locks: LockTable,
    oracle: TimestampOracle,
    safe: SafeTime,
    active: BTreeMap<TxnId, ActiveTxn>,
    /// Transactions that hold nothing here whose client heartbeats this
    /// shard as their coordinator while their commit waits on prepares
    /// elsewhere: when each was last heard from (leader; pruned after
    /// [`limits::HEARD_WITHIN`]). What lets a coordinator that a
    /// transaction only writes at answer a patient question "pending".
    committing: BTreeMap<TxnId, Timestamp>,
    parked: BTreeMap<RequestId, Parked>,
    tombstones: BTreeMap<TxnId, (AbortReason, Timestamp)>,
    prepared: BTreeMap<TxnId, PreparedTxn>,
    /// When each prepared transaction's coordinator was last asked, and
    /// whether patiently (an impatient question does not wait behind a
    /// patient one: [`ShardTxns::may_ask`]).
    last_resolve: BTreeMap<TxnId, (Timestamp, bool)>,
    decisions: BTreeMap<TxnId, Decision>,
    /// Commit decisions not yet confirmed by every participant (leader).
    unacked: BTreeMap<TxnId, Unacked>,
    /// Decisions to forget with the next tick's `ForgetDecisions` (leader).
    forgettable: BTreeSet<TxnId>,
    /// Decisions whose `ForgetDecisions` is being replicated (leader).
    forgetting: BTreeSet<TxnId>,
    /// Which participant asked, for each `AbortDecision` being replicated
    /// on a participant's question (leader).
    resolving: BTreeMap<RequestId, ShardId>,
    /// Plain writes get internal transaction ids, numbered from 0.
    next_internal: u64,
    prepared_generation: u64,
    /// UNSAFE, a bug planted on purpose for tests that must catch it: a
    /// new leader assigns timestamps from its clock alone, forgetting the
    /// ones in its log.
    unsafe_new_leader_forgets_timestamps: bool,
    /// Whether this leader holds a lease at this step ([`ShardTxns::set_leased`]).
    leased: bool,
}

impl ShardTxns {
    /// A shard's state after a (re)start: from the durable records.
    pub fn restore(
        shard: ShardId,
        max_applied: Timestamp,
        prepared: Vec<PreparedTxn>,
        decisions: Vec<(TxnId, Decision)>,
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

    /// Plants a bug (tests only): from its next leadership on, this shard
    /// assigns timestamps from the clock alone, so a new leader whose
    /// clock is behind goes below timestamps its log already holds — what
    /// a checker of timestamp order must catch.
    pub fn unsafe_forget_timestamps_on_leader_change(&mut self) {
        self.unsafe_new_leader_forgets_timestamps = true;
    }

    /// Whether [`Self::unsafe_forget_timestamps_on_leader_change`] is on.
    pub fn forgets_timestamps_on_leader_change(&self) -> bool {
        self.unsafe_new_leader_forgets_timestamps
    }

    pub fn is_leading(&self) -> bool {
        self.leading
    }

    pub fn safe_time(&self) -> &SafeTime {
        &self.safe
    }

    /// Tells the state machine, before a step, whether this leader holds
    /// a lease then: no other replica can lead the shard at that moment,
    /// nor can have led it since this term began (the server's leader
    /// lease, `spanserver::shard::lease`). A commit that wrote nothing
    /// here is then answered without a Raft round (module docs).
    pub fn set_leased(&mut self, leased: bool) {
        self.leased = leased;
    }

    pub fn prepared(&self) -> impl Iterator<Item = &PreparedTxn> {
        self.prepared.values()
    }

    /// Is `txn` open here: active (holding locks), waiting for one, or
    /// prepared?
    pub fn is_open(&self, txn: TxnId) -> bool {
        self.active.contains_key(&txn) || self.prepared.contains_key(&txn) || self.parked.values().any(|p| p.txn == txn)
    }

    /// What request `req` is waiting for here, in words, for the driver's
    /// log of requests left unanswered for long: its transaction and that
    /// one's phase, the locks it still wants and who holds them (`None`:
    /// it is not parked for a lock here).
    pub fn explain(&self, req: RequestId) -> Option<String> {
        let p = self.parked.get(&req)?;
        let phase = self.active.get(&p.txn).map_or("not active".to_string(), |a| format!("{:?}", a.phase));
        let wanted: Vec<String> = p
            .wanted
            .iter()
            .map(|(target, mode)| {
                let holders: Vec<String> =
                    self.locks.conflicting_holders(p.txn, target, *mode).iter().map(|t| t.to_string()).collect();
                format!("{target}:{mode} held by [{}]", holders.join(" "))
            })
            .collect();
        Some(format!("{} ({phase}) parked since {}, wants {}", p.txn, p.since, wanted.join(", ")))
    }

    pub fn decision(&self, txn: TxnId) -> Option<&Decision> {
        self.decisions.get(&txn)
    }

    pub fn decisions(&self) -> impl Iterator<Item = (&TxnId, &Decision)> {
        self.decisions.iter()
    }

    pub fn locks(&self) -> &LockTable {
        &self.locks
    }

    /// When the longest-open active (unprepared) transaction here came:
    /// the one whose read locks a leader change would cost the most work.
    pub fn oldest_active_since(&self) -> Option<Timestamp> {
        self.active.values().filter(|a| !a.internal).map(|a| a.opened).min()
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    pub fn parked_count(&self) -> usize {
        self.parked.len()
    }

    /// Changes whenever the set of prepared transactions changes (so the
    /// driver republishes what holds reads back only then).
    pub fn prepared_generation(&self) -> u64 {
        self.prepared_generation
    }

    /// Does prepared transaction `txn` write or lock a key of `target`?
    fn prepared_touches(&self, txn: TxnId, target: &LockTarget) -> bool {
        self.prepared.get(&txn).is_some_and(|p| {
            p.writes.iter().any(|w| LockTarget::Key(w.key.clone()).overlaps(target))
                || p.reads.iter().any(|r| r.overlaps(target))
        })
    }

    /// Every prepared transaction's prepare timestamp and written keys.
    pub fn prepared_writes(&self) -> Vec<(Timestamp, Vec<Vec<u8>>)> {
        self.prepared.values().map(|p| (p.prepare_ts, p.writes.iter().map(|w| w.key.clone()).collect())).collect()
    }

    /// Feeds one input; returns what to do, in order.
    pub fn step(&mut self, now: TtInterval, mut input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Applied { req, command, conditions_held } => {
                self.applied(req, command, conditions_held, now, &mut out)
            }
            Input::ProposalFailed { req, command } => self.proposal_failed(req, command, now, &mut out),
            Input::LeaderReady { term } => self.leader_ready(term),
            Input::LeaderLost => self.leader_lost(&mut out),
            Input::RangeSplit { split_key, end_key, child } => {
                self.range_split(split_key, end_key, child, now, &mut out)
            }
            _ if !self.leading => {
                if let Some(&mut req) = input.req_mut() {
                    out.push(Output::Reply { req, result: Err(TxnError::NotLeader) });
                }
            }
            Input::Read { req, txn, priority, target, mode, lease, deadline, no_wait } => {
                if self.admit(req, txn, lease, now, &mut out).is_some() {
                    let wanted = VecDeque::from([(target, mode)]);
                    self.park(req, txn, priority, wanted, Then::Read { deadline, no_wait }, now, &mut out);
                }
            }
            Input::Prepare { req, txn, priority, writes, reads, lease, coordinator, conditions } => {
                if let Some(p) = self.prepared.get(&txn) {
                    // A retried prepare: answer as before, if it names the
                    // same coordinator. (A record a split handed here names
                    // the shard it split from: a prepare naming another
                    // would get a seal for a participant its coordinator
                    // does not know.)
                    let result = match p.coordinator == coordinator {
                        true => Ok(Answer::Prepared { prepare_ts: p.prepare_ts }),
                        false => Err(TxnError::InvalidArgument(format!(
                            "{txn} is prepared here with coordinator {}, not {coordinator}",
                            p.coordinator
                        ))),
                    };
                    out.push(Output::Reply { req, result });
                    return out;
                }
                if coordinator == self.shard {
                    let msg = "a transaction's coordinator commits it; it does not prepare".to_string();
                    out.push(Output::Reply { req, result: Err(TxnError::InvalidArgument(msg)) });
                    return out;
                }
                if let Some(wanted) = self.admit_decision(req, txn, &writes, &reads, lease, now, &mut out) {
                    let then = Then::Prepare { writes, reads, coordinator, conditions };
                    self.park(req, txn, priority, wanted, then, now, &mut out);
                }
            }
            Input::Commit { req, txn, priority, writes, reads, lease, participants, conditions, deadline } => {
                if let Some(d) = self.decisions.get(&txn) {
                    out.push(Output::Reply { req, result: outcome_answer(d.outcome) });
                    return out;
                }
                if let Err(e) = self.check_participants(&participants, now) {
                    if matches!(e, TxnError::Aborted(_)) {
                        self.abort_active(txn, AbortReason::PrepareExpired, now, &mut out);
                    }
                    out.push(Output::Reply { req, result: Err(e) });
                    return out;
                }
                if let Some(wanted) = self.admit_decision(req, txn, &writes, &reads, lease, now, &mut out) {
                    let then = Then::Commit { writes, conditions, participants, reads, received: now, deadline };
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
                let lease = self.new_lease();
                let a = ActiveTxn {
                    last_heard: now.earliest,
                    opened: now.earliest,
                    phase: Phase::Active,
                    lease,
                    internal: true,
                };
                self.active.insert(txn, a);
                let keys: BTreeSet<Vec<u8>> =
                    writes.iter().map(|w| w.key.clone()).chain(conditions.iter().map(|c| c.key.clone())).collect();
                let wanted = keys.into_iter().map(|k| (LockTarget::Key(k), LockMode::Exclusive)).collect();
                let then = Then::Commit {
                    writes,
                    conditions,
                    participants: vec![],
                    reads: vec![],
                    received: now,
                    deadline: None,
                };
                self.park(req, txn, priority, wanted, then, now, &mut out);
            }
            Input::Abort { req, txn } => {
                if let Some(p) = self.prepared.get(&txn) {
                    // Not the client's call: only the coordinator decides a
                    // prepared transaction. Ask it now (it decides abort
                    // unless it committed).
                    let coordinator = p.coordinator;
                    self.last_resolve.insert(txn, (now.earliest, false));
                    out.push(Output::Resolve { txn, coordinator, patient: false });
                    out.push(Output::Reply { req, result: Ok(Answer::Done) });
                } else if self.active.get(&txn).is_some_and(|a| a.phase == Phase::Deciding) {
                    let msg = "the transaction is committing; its outcome decides".to_string();
                    out.push(Output::Reply { req, result: Err(TxnError::InvalidArgument(msg)) });
                } else {
                    self.abort_active(txn, AbortReason::ByClient, now, &mut out);
                    out.push(Output::Reply { req, result: Ok(Answer::Done) });
                }
            }
            Input::Heartbeat { txn, committing } => {
                if let Some(a) = self.active.get_mut(&txn) {
                    a.last_heard = a.last_heard.max(now.earliest);
                } else if committing
                    && !self.tombstones.contains_key(&txn)
                    && !self.prepared.contains_key(&txn)
                    && !self.decisions.contains_key(&txn)
                    && (self.committing.contains_key(&txn) || self.committing.len() < limits::COMMITTING_TXNS_MAX)
                {
                    // A committing client heartbeats its coordinator, where
                    // it may hold nothing yet (it only writes there). A
                    // plain heartbeat does not count: a transaction whose
                    // locks here died with a leader change cannot commit.
                    self.committing.insert(txn, now.earliest);
                }
            }
            Input::Decide { req, txn, outcome } => self.decide(req, txn, outcome, now, &mut out),
            Input::Resolve { req, txn, participant, patient } => {
                self.resolve(req, (txn, participant, patient), now, &mut out)
            }
            Input::Acknowledged { txn, participant } => self.acknowledged(txn, participant, &mut out),
            Input::Close => {
                let ts = self.oracle.assign(now);
                out.push(Output::Propose { req: None, command: TxnCommand::Close { ts } });
            }
            Input::Tick => self.tick(now, &mut out),
        }
        out
    }

    /// The latest timestamp from elsewhere this shard accepts now: a
    /// healthy clock elsewhere reads at most 2 epsilon (the interval's
    /// width) past this one's `latest`.
    fn ahead_max(now: TtInterval) -> Timestamp {
        now.latest.saturating_add(now.latest.duration_since(now.earliest)).saturating_add(limits::TIMESTAMP_AHEAD_SLACK)
    }

    /// Checks the participants' prepare timestamps a commit relays: none
    /// from the future, none too old to commit.
    fn check_participants(&self, participants: &[(ShardId, Timestamp)], now: TtInterval) -> Result<(), TxnError> {
        let ahead_max = Self::ahead_max(now);
        let oldest = now.earliest.saturating_sub(limits::PREPARE_VALID_FOR);
        for (shard, prepare_ts) in participants {
            if *shard == self.shard {
                return Err(TxnError::InvalidArgument("the coordinator is not its own participant".into()));
            }
            if *prepare_ts > ahead_max {
                return Err(TxnError::InvalidArgument(format!(
                    "{shard}'s prepare timestamp {} is beyond this server's clock ({})",
                    prepare_ts.as_nanos(),
                    now.latest.as_nanos()
                )));
            }
            if *prepare_ts < oldest {
                return Err(TxnError::Aborted(AbortReason::PrepareExpired));
            }
        }
        if self.decisions.len() >= limits::DECISIONS_MAX && !participants.is_empty() {
            return Err(TxnError::Unavailable("too many undelivered decisions on this coordinator".into()));
        }
        Ok(())
    }

    /// A coordinator's decision reaches this participant.
    fn decide(&mut self, req: RequestId, txn: TxnId, outcome: Outcome, now: TtInterval, out: &mut Vec<Output>) {
        let Some(p) = self.prepared.get(&txn) else {
            // Finished already (or never prepared here): nothing to do.
            out.push(Output::Reply { req, result: Ok(Answer::Done) });
            return;
        };
        if let Outcome::Committed(s) = outcome {
            let refused = if s < p.prepare_ts {
                Some(format!(
                    "commit timestamp {} is below the prepare timestamp {}",
                    s.as_nanos(),
                    p.prepare_ts.as_nanos()
                ))
            } else if s > Self::ahead_max(now) {
                Some(format!(
                    "commit timestamp {} is beyond this server's clock ({})",
                    s.as_nanos(),
                    now.latest.as_nanos()
                ))
            } else {
                None
            };
            if let Some(msg) = refused {
                out.push(Output::Reply { req, result: Err(TxnError::InvalidArgument(msg)) });
                return;
            }
            // Every timestamp assigned after this entry (so after it in
            // the log) must exceed `s`, since applying it raises the
            // replica's applied time to it.
            self.oracle.reserve(s);
        }
        out.push(Output::Propose { req: Some(req), command: TxnCommand::Finish { txn, outcome } });
    }

    /// A fresh lease of this leadership.
    fn new_lease(&mut self) -> LockLease {
        self.admissions += 1;
        LockLease { term: self.leader_term, admission: self.admissions }
    }

    /// Admits a request of `txn`: refuses aborted (tombstoned) or deciding
    /// transactions, and a lease that is not the transaction's current one
    /// here (its locks were lost since: it aborts). Without a lease, joins
    /// the transaction's current admission or starts one. Returns the
    /// lease, or `None` if the request was answered.
    fn admit(
        &mut self,
        req: RequestId,
        txn: TxnId,
        lease: Option<LockLease>,
        now: TtInterval,
        out: &mut Vec<Output>,
    ) -> Option<LockLease> {
        if let Some((reason, _)) = self.tombstones.get(&txn) {
            out.push(Output::Reply { req, result: Err(TxnError::Aborted(reason.clone())) });
            return None;
        }
        if self.prepared.contains_key(&txn) || self.active.get(&txn).is_some_and(|a| a.phase == Phase::Deciding) {
            let msg = format!("{txn} is already preparing or committing");
            out.push(Output::Reply { req, result: Err(TxnError::InvalidArgument(msg)) });
            return None;
        }
        let current = self.active.get(&txn).map(|a| a.lease);
        if let Some(presented) = lease {
            if current != Some(presented) {
                // Its earlier locks died (with a leadership, a wound, a
                // keep-alive): a new lock now would hide that what it read
                // may have been overwritten since.
                self.abort_active(txn, AbortReason::ReadLocksLost, now, out);
                out.push(Output::Reply { req, result: Err(TxnError::Aborted(AbortReason::ReadLocksLost)) });
                return None;
            }
        }
        if current.is_none() && self.active.len() >= limits::ACTIVE_TXNS_MAX {
            let e = TxnError::Unavailable("too many active transactions on this shard".into());
            out.push(Output::Reply { req, result: Err(e) });
            return None;
        }
        let lease = match current {
            Some(l) => l,
            None => {
                let l = self.new_lease();
                self.active.insert(
                    txn,
                    ActiveTxn {
                        last_heard: now.earliest,
                        opened: now.earliest,
                        phase: Phase::Active,
                        lease: l,
                        internal: false,
                    },
                );
                l
            }
        };
        let a = self.active.get_mut(&txn).expect("admitted above");
        a.last_heard = a.last_heard.max(now.earliest);
        Some(lease)
    }

    /// Admits a prepare or commit: checks its size, that the transaction
    /// may still decide, and that its reads were locked under its current
    /// lease and still are (else it aborts: its reads may be stale).
    /// Returns the exclusive locks to take, or `None` if it was answered.
    #[allow(clippy::too_many_arguments)]
    fn admit_decision(
        &mut self,
        req: RequestId,
        txn: TxnId,
        writes: &[Write],
        reads: &[LockTarget],
        lease: Option<LockLease>,
        now: TtInterval,
        out: &mut Vec<Output>,
    ) -> Option<VecDeque<(LockTarget, LockMode)>> {
        if !self.check_writes(req, writes, out) {
            return None;
        }
        if !reads.is_empty() && lease.is_none() {
            // Reads it claims were never locked for it.
            self.abort_active(txn, AbortReason::ReadLocksLost, now, out);
            out.push(Output::Reply { req, result: Err(TxnError::Aborted(AbortReason::ReadLocksLost)) });
            return None;
        }
        self.admit(req, txn, if reads.is_empty() { None } else { lease }, now, out)?;
        if !reads.iter().all(|t| self.locks.holds(txn, t, LockMode::Shared)) {
            self.abort_active(txn, AbortReason::ReadLocksLost, now, out);
            out.push(Output::Reply { req, result: Err(TxnError::Aborted(AbortReason::ReadLocksLost)) });
            return None;
        }
        Some(writes.iter().map(|w| (LockTarget::Key(w.key.clone()), LockMode::Exclusive)).collect())
    }

    fn check_writes(&self, req: RequestId, writes: &[Write], out: &mut Vec<Output>) -> bool {
        if writes.len() > limits::WRITES_PER_TXN_MAX {
            let msg = format!("at most {} writes per transaction per shard", limits::WRITES_PER_TXN_MAX);
            out.push(Output::Reply { req, result: Err(TxnError::InvalidArgument(msg)) });
            return false;
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn park(
        &mut self,
        req: RequestId,
        txn: TxnId,
        priority: Priority,
        wanted: VecDeque<(LockTarget, LockMode)>,
        then: Then,
        now: TtInterval,
        out: &mut Vec<Output>,
    ) {
        self.parked.insert(req, Parked { txn, priority, wanted, then, since: now.earliest });
        self.advance(req, now, out);
    }

    /// Takes the parked request's locks in order until one must wait (then
    /// wounds, or pushes, whom wound-wait says) or all are held (then
    /// carries on).
    fn advance(&mut self, req: RequestId, now: TtInterval, out: &mut Vec<Output>) {
        loop {
            let Some(p) = self.parked.get_mut(&req) else { return };
            let Some((target, mode)) = p.wanted.front().cloned() else {
                let p = self.parked.remove(&req).expect("present above");
                self.locks_held(req, p, now, out);
                return;
            };
            let (txn, priority) = (p.txn, p.priority);
            if matches!(p.then, Then::Read { no_wait: true, .. })
                && !self.locks.is_free_for(txn, priority, &target, mode)
            {
                let e = TxnError::LockNotAvailable(format!("{target} is locked by another transaction"));
                self.fail_parked(req, e, now, out);
                // (`fail_parked` ended its other parked requests too.)
                if !self.locks.holds_any(txn) {
                    // It holds nothing here, and its client, told so,
                    // keeps no lease of this shard to heartbeat: an entry
                    // left behind would time out and make its next
                    // request here an abort.
                    self.active.remove(&txn);
                    self.locks.release(txn);
                }
                return;
            }
            match self.locks.acquire(txn, priority, target, mode) {
                Acquire::Granted => {
                    p.wanted.pop_front();
                }
                Acquire::Wait { blockers, wound } => {
                    for victim in wound {
                        self.abort_active(victim, AbortReason::Wounded { by: txn }, now, out);
                    }
                    self.push(priority, &blockers, now, out);
                    return;
                }
                Acquire::Refused { reason, retryable } => {
                    let e = if retryable { TxnError::Unavailable(reason) } else { TxnError::InvalidArgument(reason) };
                    self.fail_parked(req, e, now, out);
                    return;
                }
            }
        }
    }

    /// An older transaction waits for younger prepared ones here: ask
    /// their coordinators now, which abort them unless they are deciding
    /// (module docs: deadlock across shards).
    fn push(&mut self, priority: Priority, blockers: &[TxnId], now: TtInterval, out: &mut Vec<Output>) {
        for b in blockers {
            let Some(p) = self.prepared.get(b) else { continue };
            if p.priority <= priority || !self.may_ask(*b, false, now) {
                continue;
            }
            self.last_resolve.insert(*b, (now.earliest, false));
            out.push(Output::Resolve { txn: *b, coordinator: p.coordinator, patient: false });
        }
    }

    /// Answers a parked request with an error, and any other request of
    /// its transaction parked here (their queued lock requests go too, and
    /// others may be granted). The transaction keeps the locks it holds
    /// (its client decides what next), unless it is a plain write's
    /// internal one, which nobody else would ever end.
    fn fail_parked(&mut self, req: RequestId, e: TxnError, now: TtInterval, out: &mut Vec<Output>) {
        let Some(txn) = self.parked.get(&req).map(|p| p.txn) else { return };
        if txn.is_internal() {
            self.parked.remove(&req);
            out.push(Output::Reply { req, result: Err(e) });
            self.abort_active(txn, AbortReason::ByClient, now, out);
            return;
        }
        let reqs: Vec<RequestId> = self.parked.iter().filter(|(_, p)| p.txn == txn).map(|(r, _)| *r).collect();
        for r in reqs {
            self.parked.remove(&r);
            out.push(Output::Reply { req: r, result: Err(e.clone()) });
        }
        let grants = self.locks.cancel_waits(txn);
        self.resume(grants, now, out);
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
    fn locks_held(&mut self, req: RequestId, p: Parked, now: TtInterval, out: &mut Vec<Output>) {
        let deciding = self.active.get(&p.txn).is_some_and(|a| a.phase == Phase::Deciding);
        if (deciding || self.prepared.contains_key(&p.txn)) && !matches!(p.then, Then::Read { .. }) {
            // A second prepare or commit of it, parked before the first
            // went ahead (no honest client sends both): one decision per
            // transaction per shard. Going on would let this one's apply
            // release the locks the first still needs.
            let msg = format!("{} is already preparing or committing", p.txn);
            out.push(Output::Reply { req, result: Err(TxnError::InvalidArgument(msg)) });
            return;
        }
        match p.then {
            Then::Read { deadline, .. } => {
                if deadline.is_some_and(|d| now.latest >= d) {
                    self.abort_active(p.txn, AbortReason::DeadlinePassed, now, out);
                    out.push(Output::Reply { req, result: Err(TxnError::Aborted(AbortReason::DeadlinePassed)) });
                    return;
                }
                let Some(lease) = self.active.get(&p.txn).map(|a| a.lease) else {
                    // Cannot happen: an aborted transaction's requests are
                    // failed and its waits cancelled.
                    out.push(Output::Reply { req, result: Err(TxnError::Aborted(AbortReason::ReadLocksLost)) });
                    return;
                };
                out.push(Output::Reply { req, result: Ok(Answer::Locked { lease }) })
            }
            Then::Prepare { writes, reads, coordinator, conditions } => {
                let prepare_ts = self.oracle.assign(now);
                self.deciding(p.txn);
                let (txn, priority) = (p.txn, p.priority);
                let record =
                    PreparedTxn { txn, priority, prepare_ts, coordinator, writes, reads, conditions, heirs: vec![] };
                out.push(Output::Propose { req: Some(req), command: TxnCommand::Prepare(record) });
            }
            Then::Commit { writes, conditions, participants, reads, received, deadline } => {
                let prepare_timestamps: Vec<Timestamp> = participants.iter().map(|(_, ts)| *ts).collect();
                let commit_ts = self.oracle.assign_commit(received, &prepare_timestamps);
                if deadline.is_some_and(|d| commit_ts >= d) {
                    // Nothing decided: participants that ask learn abort.
                    self.abort_active(p.txn, AbortReason::DeadlinePassed, now, out);
                    out.push(Output::Reply { req, result: Err(TxnError::Aborted(AbortReason::DeadlinePassed)) });
                    return;
                }
                if writes.is_empty() && participants.is_empty() && conditions.is_empty() {
                    out.push(Output::WantLease);
                    if self.leased {
                        // Nothing to replicate: the locks held since the
                        // reads, under a leader no other can have replaced
                        // since, make now a point where every read holds.
                        self.release(p.txn, now, out);
                        out.push(Output::Reply { req, result: Ok(Answer::Committed { commit_ts, applied: true }) });
                        return;
                    }
                }
                self.deciding(p.txn);
                let command = TxnCommand::Commit {
                    txn: p.txn,
                    commit_ts,
                    writes,
                    conditions,
                    participants: participants.into_iter().map(|(s, _)| s).collect(),
                    reads,
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
    ///
    /// Does nothing to a transaction whose prepare or commit is being
    /// replicated, or that is prepared here: its locks must outlive its
    /// proposal, and only its outcome ends it. Callers check this too,
    /// but one wound can start another victim's prepare (the first
    /// victim's release grants the second its last lock), so the check
    /// must sit here, where every abort passes.
    fn abort_active(&mut self, txn: TxnId, reason: AbortReason, now: TtInterval, out: &mut Vec<Output>) {
        self.committing.remove(&txn);
        let deciding = self.active.get(&txn).is_some_and(|a| a.phase == Phase::Deciding);
        if deciding || self.prepared.contains_key(&txn) {
            return;
        }
        let reqs: Vec<RequestId> = self.parked.iter().filter(|(_, p)| p.txn == txn).map(|(r, _)| *r).collect();
        for req in reqs {
            self.parked.remove(&req);
            out.push(Output::Reply { req, result: Err(TxnError::Aborted(reason.clone())) });
        }
        self.active.remove(&txn);
        if !txn.is_internal() {
            if self.tombstones.len() >= limits::TOMBSTONES_MAX {
                if let Some(oldest) = self.tombstones.iter().min_by_key(|(_, (_, at))| *at).map(|(t, _)| *t) {
                    self.tombstones.remove(&oldest);
                }
            }
            self.tombstones.insert(txn, (reason, now.earliest));
        }
        let grants = self.locks.release(txn);
        self.resume(grants, now, out);
    }

    /// Asserts (in debug builds) that no other transaction holds a lock on
    /// a key `txn` is writing as it commits: the invariant two-phase
    /// locking exists for. Cheap (the written keys only), so every test
    /// and every debug `spandb jepsen` run checks it; it found the wound
    /// that aborted a preparing transaction (`abort_active`).
    fn debug_assert_writes_exclusive(&self, txn: TxnId, writes: &[Write]) {
        if cfg!(debug_assertions) {
            for w in writes {
                let others = self.locks.conflicting_holders(txn, &LockTarget::Key(w.key.clone()), LockMode::Exclusive);
                assert!(
                    others.is_empty(),
                    "{}: {txn} writes {:?} while {others:?} hold locks on it",
                    self.shard,
                    String::from_utf8_lossy(&w.key)
                );
            }
        }
    }

    /// Releases everything a finished transaction holds here.
    fn release(&mut self, txn: TxnId, now: TtInterval, out: &mut Vec<Output>) {
        self.active.remove(&txn);
        if self.leading {
            let grants = self.locks.release(txn);
            self.resume(grants, now, out);
        }
    }

    /// Whether to ask `txn`'s coordinator now: not if it was asked within
    /// [`limits::RESOLVE_RETRY`], unless that question was patient and
    /// this one is not (an older transaction waits for `txn`: a patient
    /// question, answered "pending", must not hold back the one that has
    /// the coordinator decide).
    fn may_ask(&self, txn: TxnId, patient: bool, now: TtInterval) -> bool {
        let retry_before = now.earliest.saturating_sub(limits::RESOLVE_RETRY);
        match self.last_resolve.get(&txn) {
            None => true,
            Some(&(at, was_patient)) => at < retry_before || (was_patient && !patient),
        }
    }

    fn resolve(
        &mut self,
        req: RequestId,
        (txn, participant, patient): (TxnId, ShardId, bool),
        now: TtInterval,
        out: &mut Vec<Output>,
    ) {
        if let Some(d) = self.decisions.get(&txn) {
            out.push(Output::Reply { req, result: Ok(Answer::Outcome(d.outcome_for(participant))) });
            return;
        }
        if self.active.get(&txn).is_some_and(|a| a.phase == Phase::Deciding) {
            out.push(Output::Reply { req, result: Ok(Answer::Pending) });
            return;
        }
        if let Some(p) = self.prepared.get(&txn) {
            // Asked by an heir (a shard split off this one): prepared here
            // too, so not this shard's to decide. Ask the coordinator now.
            let coordinator = p.coordinator;
            if self.may_ask(txn, patient, now) {
                self.last_resolve.insert(txn, (now.earliest, patient));
                out.push(Output::Resolve { txn, coordinator, patient });
            }
            out.push(Output::Reply { req, result: Ok(Answer::Pending) });
            return;
        }
        // Still open here, or committing with nothing here, and its client
        // heard from lately (a committing client heartbeats): its commit
        // may be waiting on a slow prepare elsewhere. A patient
        // participant asks again later.
        let heard_since = now.earliest.saturating_sub(limits::HEARD_WITHIN);
        let open = |a: &ActiveTxn| a.phase == Phase::Active && !a.internal && a.last_heard >= heard_since;
        let committing = self.committing.get(&txn).is_some_and(|&heard| heard >= heard_since);
        if patient && (committing || self.active.get(&txn).is_some_and(open)) {
            out.push(Output::Reply { req, result: Ok(Answer::Pending) });
            return;
        }
        if self.decisions.len() >= limits::DECISIONS_MAX {
            let e = TxnError::Unavailable("too many undelivered decisions on this coordinator".into());
            out.push(Output::Reply { req, result: Err(e) });
            return;
        }
        // Never committed here, and not committing: decide abort, durably,
        // so that a commit arriving later loses.
        self.abort_active(txn, AbortReason::ByCoordinator, now, out);
        let command = TxnCommand::AbortDecision { txn, decided_at: now.earliest };
        self.resolving.insert(req, participant);
        out.push(Output::Propose { req: Some(req), command });
    }

    fn acknowledged(&mut self, txn: TxnId, participant: ShardId, out: &mut Vec<Output>) {
        let Some(u) = self.unacked.get_mut(&txn) else { return };
        u.participants.remove(&participant);
        if u.participants.is_empty() {
            self.unacked.remove(&txn);
            self.forget(txn, out);
        }
    }

    /// Queues `txn`'s decision to be forgotten at the next tick, or at
    /// once when [`limits::FORGET_BATCH_MAX`] are queued.
    fn forget(&mut self, txn: TxnId, out: &mut Vec<Output>) {
        if !self.forgetting.contains(&txn)
            && self.forgettable.insert(txn)
            && self.forgettable.len() >= limits::FORGET_BATCH_MAX
        {
            self.propose_forgets(out);
        }
    }

    fn propose_forgets(&mut self, out: &mut Vec<Output>) {
        if self.forgettable.is_empty() {
            return;
        }
        let txns: Vec<TxnId> = std::mem::take(&mut self.forgettable).into_iter().collect();
        self.forgetting.extend(txns.iter().copied());
        out.push(Output::Propose { req: None, command: TxnCommand::ForgetDecisions { txns } });
    }

    fn tick(&mut self, now: TtInterval, out: &mut Vec<Output>) {
        let silent_since = now.earliest.saturating_sub(limits::KEEPALIVE_TIMEOUT);
        // A request parked on a lock is its client waiting, not silent (a
        // commit that waited was aborted as silent, its client never told
        // why): its transaction is heard from until the request is granted
        // or gives up (after LOCK_WAIT_MAX, saying so), and the keep-alive
        // counts from then.
        for p in self.parked.values() {
            if let Some(a) = self.active.get_mut(&p.txn) {
                a.last_heard = a.last_heard.max(now.earliest);
            }
        }
        let expired: Vec<TxnId> = self
            .active
            .iter()
            .filter(|(_, a)| a.phase == Phase::Active && !a.internal && a.last_heard < silent_since)
            .map(|(t, _)| *t)
            .collect();
        for txn in expired {
            self.abort_active(txn, AbortReason::KeepAliveExpired, now, out);
        }
        let parked_since = now.earliest.saturating_sub(limits::LOCK_WAIT_MAX);
        let overdue: Vec<RequestId> =
            self.parked.iter().filter(|(_, p)| p.since < parked_since).map(|(r, _)| *r).collect();
        for req in overdue {
            let msg = format!("waited more than {:?} for a lock", limits::LOCK_WAIT_MAX);
            self.fail_parked(req, TxnError::Unavailable(msg), now, out);
        }
        let forget_before = now.earliest.saturating_sub(limits::TOMBSTONE_TTL);
        self.tombstones.retain(|_, (_, at)| *at >= forget_before);
        let heard_since = now.earliest.saturating_sub(limits::HEARD_WITHIN);
        self.committing.retain(|_, heard| *heard >= heard_since);
        let resolve_before = now.earliest.saturating_sub(limits::RESOLVE_AFTER);
        let patient_since = now.earliest.saturating_sub(limits::RESOLVE_PATIENCE);
        let retry_before = now.earliest.saturating_sub(limits::RESOLVE_RETRY);
        let mut asks = Vec::new();
        for p in self.prepared.values() {
            if p.prepare_ts >= resolve_before {
                continue;
            }
            // Patient while young, unless an older transaction waits for
            // it here (then the coordinator must decide: wound-wait).
            let older_waits = self.leading && self.locks.oldest_blocked_by(p.txn).is_some_and(|o| o < p.priority);
            let patient = p.prepare_ts >= patient_since && !older_waits;
            if self.may_ask(p.txn, patient, now) {
                asks.push((p.txn, p.coordinator, patient));
            }
        }
        for (txn, coordinator, patient) in asks {
            self.last_resolve.insert(txn, (now.earliest, patient));
            out.push(Output::Resolve { txn, coordinator, patient });
        }
        // The coordinator's side: repeat undelivered decisions, forget
        // expired abort decisions.
        for (txn, u) in self.unacked.iter_mut() {
            if u.notified_at < retry_before {
                u.notified_at = now.earliest;
                let participants = u.participants.iter().copied().collect();
                out.push(Output::Decide { txn: *txn, participants, outcome: u.outcome });
            }
        }
        let abort_expired = now.earliest.saturating_sub(limits::ABORT_DECISION_TTL);
        let expired: Vec<TxnId> = self
            .decisions
            .iter()
            .filter(|(_, d)| d.outcome == Outcome::Aborted && d.decided_at < abort_expired)
            .map(|(t, _)| *t)
            .collect();
        for txn in expired {
            self.forget(txn, out);
        }
        self.propose_forgets(out);
    }

    fn applied(
        &mut self,
        req: Option<RequestId>,
        command: TxnCommand,
        conditions_held: bool,
        now: TtInterval,
        out: &mut Vec<Output>,
    ) {
        match command {
            TxnCommand::Close { ts } => self.safe.applied(ts),
            TxnCommand::Commit { txn, commit_ts, writes, conditions: _, participants, reads: _ } => {
                self.safe.applied(commit_ts);
                let result = if self.decisions.get(&txn).is_some_and(|d| d.outcome == Outcome::Aborted) {
                    // The coordinator decided abort first (asked by a
                    // participant): this commit lost.
                    Err(TxnError::Aborted(AbortReason::ByCoordinator))
                } else {
                    if self.leading {
                        self.debug_assert_writes_exclusive(txn, &writes);
                    }
                    if conditions_held && !writes.is_empty() {
                        out.push(Output::WriteVersions { writes, ts: commit_ts });
                    }
                    if !participants.is_empty() {
                        // A failed condition here fails the whole
                        // transaction: the prepared participants abort.
                        let outcome = if conditions_held { Outcome::Committed(commit_ts) } else { Outcome::Aborted };
                        let decision = Decision { outcome, participants: participants.clone(), decided_at: commit_ts };
                        self.decisions.insert(txn, decision.clone());
                        out.push(Output::StoreDecision { txn, decision });
                        if self.leading {
                            let unacked = Unacked {
                                participants: participants.iter().copied().collect(),
                                outcome,
                                notified_at: now.earliest,
                            };
                            self.unacked.insert(txn, unacked);
                            out.push(Output::Decide { txn, participants, outcome });
                        }
                    }
                    Ok(Answer::Committed { commit_ts, applied: conditions_held })
                };
                self.release(txn, now, out);
                if let Some(req) = req {
                    out.push(Output::Reply { req, result });
                }
            }
            TxnCommand::Prepare(record) if !conditions_held => {
                // Nothing prepared: the transaction ends here, as a failed
                // proposal's does; its coordinator is never asked to commit.
                let txn = record.txn;
                self.safe.applied(record.prepare_ts);
                if let Some(a) = self.active.get_mut(&txn) {
                    a.phase = Phase::Active;
                }
                self.abort_active(txn, AbortReason::ConditionsFailed, now, out);
                if let Some(req) = req {
                    out.push(Output::Reply { req, result: Ok(Answer::ConditionsFailed) });
                }
            }
            TxnCommand::Prepare(mut record) => {
                record.conditions.clear();
                let (txn, prepare_ts) = (record.txn, record.prepare_ts);
                // An older transaction that started waiting for it while
                // its prepare was replicated was not pushed then (it could
                // not be wounded, and was not yet prepared): push now.
                if self.leading && self.locks.oldest_blocked_by(txn).is_some_and(|p| p < record.priority) {
                    self.last_resolve.insert(txn, (now.earliest, false));
                    out.push(Output::Resolve { txn, coordinator: record.coordinator, patient: false });
                }
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
                let below = match (self.prepared.get(&txn), outcome) {
                    (Some(p), Outcome::Committed(s)) => s < p.prepare_ts,
                    _ => false,
                };
                if below {
                    // Refused before proposing; only a bug gets here. Every
                    // replica ignores it alike, and the transaction stays
                    // prepared (its coordinator is asked again).
                    if let Some(req) = req {
                        let e = TxnError::InvalidArgument("commit timestamp below the prepare timestamp".into());
                        out.push(Output::Reply { req, result: Err(e) });
                    }
                    return;
                }
                if let Some(record) = self.prepared.remove(&txn) {
                    let (heirs, prepare_ts) = (record.heirs.clone(), record.prepare_ts);
                    if self.leading && matches!(outcome, Outcome::Committed(_)) {
                        self.debug_assert_writes_exclusive(txn, &record.writes);
                    }
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
                    if !heirs.is_empty() {
                        self.relay(txn, outcome, heirs, prepare_ts, now, out);
                    }
                }
                if let Some(req) = req {
                    out.push(Output::Reply { req, result: Ok(Answer::Done) });
                }
            }
            TxnCommand::AbortDecision { txn, decided_at } => {
                let decision = self
                    .decisions
                    .entry(txn)
                    .or_insert(Decision { outcome: Outcome::Aborted, participants: vec![], decided_at })
                    .clone();
                if decision.outcome == Outcome::Aborted {
                    out.push(Output::StoreDecision { txn, decision: decision.clone() });
                }
                if let Some(req) = req {
                    // What the asking participant must do (a commit may
                    // have won the race); unknown after a leader change:
                    // it asks again.
                    let answer = match self.resolving.remove(&req) {
                        Some(participant) => Answer::Outcome(decision.outcome_for(participant)),
                        None => Answer::Pending,
                    };
                    out.push(Output::Reply { req, result: Ok(answer) });
                }
            }
            TxnCommand::ForgetDecisions { txns } => {
                for txn in txns {
                    self.forgetting.remove(&txn);
                    self.unacked.remove(&txn);
                    if self.decisions.remove(&txn).is_some() {
                        out.push(Output::DeleteDecision(txn));
                    }
                }
            }
        }
    }

    /// A transaction prepared here ended, and shards split off this one
    /// hold part of it: this shard becomes their coordinator for it, with
    /// a durable decision naming them, told to them as a coordinator's is
    /// and forgotten once they all acknowledge (module docs, "Splits").
    fn relay(
        &mut self,
        txn: TxnId,
        outcome: Outcome,
        heirs: Vec<ShardId>,
        prepare_ts: Timestamp,
        now: TtInterval,
        out: &mut Vec<Output>,
    ) {
        // Applied by every replica alike, so no clock: an abort decision
        // expires from its prepare timestamp (a forgotten abort is
        // rediscovered: an heir asking about a transaction neither prepared
        // nor decided here is told abort).
        let decided_at = match outcome {
            Outcome::Committed(s) => s,
            Outcome::Aborted => prepare_ts,
        };
        // A decision already here (impossible but for forged requests: a
        // coordinator does not prepare) never changes.
        if self.decisions.contains_key(&txn) {
            return;
        }
        let decision = Decision { outcome, participants: heirs.clone(), decided_at };
        self.decisions.insert(txn, decision.clone());
        out.push(Output::StoreDecision { txn, decision });
        if self.leading {
            let unacked = Unacked { participants: heirs.iter().copied().collect(), outcome, notified_at: now.earliest };
            self.unacked.insert(txn, unacked);
            out.push(Output::Decide { txn, participants: heirs, outcome });
        }
    }

    fn proposal_failed(&mut self, req: Option<RequestId>, command: TxnCommand, now: TtInterval, out: &mut Vec<Output>) {
        if let Some(req) = req {
            self.resolving.remove(&req);
        }
        let failed = match &command {
            TxnCommand::Commit { txn, .. } | TxnCommand::Prepare(PreparedTxn { txn, .. }) => {
                // Not prepared, not committed: it can only abort now.
                if self.leading {
                    if let Some(a) = self.active.get_mut(txn) {
                        a.phase = Phase::Active;
                    }
                    self.abort_active(*txn, AbortReason::ProposalDropped, now, out);
                }
                Err(TxnError::Aborted(AbortReason::ProposalDropped))
            }
            TxnCommand::ForgetDecisions { txns } => {
                for txn in txns {
                    self.forgetting.remove(txn);
                }
                Err(TxnError::Unavailable("the replication was dropped; retry".into()))
            }
            TxnCommand::Finish { .. } | TxnCommand::AbortDecision { .. } | TxnCommand::Close { .. } => {
                Err(TxnError::Unavailable("the replication was dropped; retry".into()))
            }
        };
        if let Some(req) = req {
            out.push(Output::Reply { req, result: failed });
        }
    }

    fn range_split(
        &mut self,
        split_key: Vec<u8>,
        end_key: Vec<u8>,
        child: ShardId,
        now: TtInterval,
        out: &mut Vec<Output>,
    ) {
        let moved = &LockTarget::Range(split_key.clone(), end_key);
        // Every replica: prepared transactions hand the part on moved keys
        // to the child, which asks this shard for their outcome.
        let touching: Vec<TxnId> = self.prepared.keys().copied().filter(|t| self.prepared_touches(*t, moved)).collect();
        for txn in touching {
            let p = self.prepared.get_mut(&txn).expect("listed above");
            let (kept, handed): (Vec<Write>, Vec<Write>) =
                std::mem::take(&mut p.writes).into_iter().partition(|w| w.key < split_key);
            let (mut kept_reads, mut handed_reads) = (vec![], vec![]);
            for target in std::mem::take(&mut p.reads) {
                let (below, above) = target.split_at(&split_key);
                kept_reads.extend(below);
                handed_reads.extend(above);
            }
            p.writes = kept;
            p.reads = kept_reads;
            p.heirs.push(child);
            let record = PreparedTxn {
                txn,
                priority: p.priority,
                prepare_ts: p.prepare_ts,
                coordinator: self.shard,
                writes: handed,
                reads: handed_reads,
                conditions: vec![],
                heirs: vec![],
            };
            self.safe.restore_prepared(txn, p.prepare_ts, p.writes.iter().map(|w| w.key.clone()).collect());
            out.push(Output::StorePrepared(p.clone()));
            out.push(Output::Inherit { shard: child, record });
            self.prepared_generation += 1;
        }
        if !self.leading {
            return;
        }
        // The locks prepared transactions hold on moved keys stay in this
        // table until they end: no request for those keys reaches this
        // shard any more, and a new leader takes only what the records
        // kept. Waiters first: aborting a holder first would grant them the
        // lock on a key that is no longer here.
        let waiting: BTreeSet<TxnId> =
            self.parked.values().filter(|p| p.wanted.iter().any(|(t, _)| t.overlaps(moved))).map(|p| p.txn).collect();
        for txn in waiting {
            self.abort_active(txn, AbortReason::ShardSplit, now, out);
        }
        let nobody = TxnId(u128::MAX);
        for txn in self.locks.conflicting_holders(nobody, moved, LockMode::Exclusive) {
            self.abort_active(txn, AbortReason::ShardSplit, now, out);
        }
    }

    fn leader_ready(&mut self, term: Term) {
        self.leading = true;
        self.leader_term = term;
        self.admissions = 0;
        self.oracle = match self.unsafe_new_leader_forgets_timestamps {
            false => TimestampOracle::starting_above(self.safe.max_applied()),
            true => TimestampOracle::starting_above(Timestamp::ZERO),
        };
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
        // Commit decisions not yet forgotten may not have reached every
        // participant: tell them all again (at the next tick).
        self.unacked = self
            .decisions
            .iter()
            .filter(|(_, d)| matches!(d.outcome, Outcome::Committed(_)) && !d.participants.is_empty())
            .map(|(t, d)| {
                let u = Unacked {
                    participants: d.participants.iter().copied().collect(),
                    outcome: d.outcome,
                    notified_at: Timestamp::ZERO,
                };
                (*t, u)
            })
            .collect();
    }

    fn leader_lost(&mut self, out: &mut Vec<Output>) {
        self.leading = false;
        self.leader_term = Term(0);
        for (req, _) in std::mem::take(&mut self.parked) {
            out.push(Output::Reply { req, result: Err(TxnError::Aborted(AbortReason::LeaderChanged)) });
        }
        self.active.clear();
        self.committing.clear();
        self.locks.clear();
        self.last_resolve.clear();
        self.unacked.clear();
        self.forgettable.clear();
        self.forgetting.clear();
        self.resolving.clear();
    }
}

fn outcome_answer(outcome: Outcome) -> Result<Answer, TxnError> {
    match outcome {
        Outcome::Committed(commit_ts) => Ok(Answer::Committed { commit_ts, applied: true }),
        Outcome::Aborted => Err(TxnError::Aborted(AbortReason::ByCoordinator)),
    }
}

#[cfg(test)]
mod scripts;

#[cfg(test)]
mod tests {
    use super::*;

    fn now(t: u64) -> TtInterval {
        TtInterval::new(Timestamp::from_nanos(t - 1), Timestamp::from_nanos(t + 1))
    }

    fn write(key: &str) -> Write {
        Write { key: key.as_bytes().to_vec(), value: Some(b"v".to_vec()) }
    }

    /// Goal: a plain write the lock table refuses (too many waiters) leaves
    /// nothing behind: the exclusive lock it already took is released, so
    /// the next write of that key goes through.
    /// Method: t1 holds a shared lock on "b"; as many plain writes as the
    /// lock table lets wait (lowered to 100 here)
    /// of "b" queue behind it; a write of "a" and "b" takes "a", then is
    /// refused on "b"; a write of "a" alone must then be proposed at once.
    #[test]
    fn a_refused_plain_write_releases_its_locks() {
        let mut s = ShardTxns::restore(ShardId(1), Timestamp::ZERO, vec![], vec![]);
        s.step(now(1000), Input::LeaderReady { term: Term(1) });
        s.locks.waiters_max = 100;
        let priority = Priority::new(Timestamp::from_nanos(1), TxnId(1));
        let read = Input::Read {
            req: RequestId(1),
            txn: TxnId(1),
            priority,
            target: LockTarget::Key(b"b".to_vec()),
            mode: LockMode::Shared,
            lease: None,
            deadline: None,
            no_wait: false,
        };
        assert!(matches!(s.step(now(1000), read)[..], [Output::Reply { result: Ok(Answer::Locked { .. }), .. }]));
        for req in 0..100 {
            let out = s.step(
                now(1000),
                Input::Write { req: RequestId(10 + req), writes: vec![write("b")], conditions: vec![] },
            );
            assert!(out.is_empty(), "queued behind t1: {out:?}");
        }
        let out = s.step(
            now(1000),
            Input::Write { req: RequestId(5), writes: vec![write("a"), write("b")], conditions: vec![] },
        );
        assert!(
            matches!(&out[..], [Output::Reply { req: RequestId(5), result: Err(TxnError::Unavailable(_)) }]),
            "refused: {out:?}"
        );
        let out = s.step(now(1000), Input::Write { req: RequestId(6), writes: vec![write("a")], conditions: vec![] });
        assert!(
            matches!(&out[..], [Output::Propose { req: Some(RequestId(6)), .. }]),
            "the refused write's lock on \"a\" must be gone: {out:?}"
        );
    }

    fn read(req: u64, txn: TxnId, priority: Priority, key: &str, lease: Option<LockLease>) -> Input {
        let target = LockTarget::Key(key.as_bytes().to_vec());
        Input::Read {
            req: RequestId(req),
            txn,
            priority,
            target,
            mode: LockMode::Shared,
            lease,
            deadline: None,
            no_wait: false,
        }
    }

    fn keys(keys: &[&str]) -> Vec<LockTarget> {
        keys.iter().map(|k| LockTarget::Key(k.as_bytes().to_vec())).collect()
    }

    /// A prepare of a write to `key` (coordinator: shard 2).
    fn prepare(
        req: u64,
        txn: TxnId,
        priority: Priority,
        key: &str,
        reads: Vec<LockTarget>,
        lease: Option<LockLease>,
    ) -> Input {
        let writes = vec![write(key)];
        let (coordinator, conditions) = (ShardId(2), vec![]);
        Input::Prepare { req: RequestId(req), txn, priority, writes, reads, lease, coordinator, conditions }
    }

    /// A one-shard commit of a write to `key`.
    fn commit(
        req: u64,
        txn: TxnId,
        priority: Priority,
        key: &str,
        reads: Vec<LockTarget>,
        lease: Option<LockLease>,
    ) -> Input {
        let (writes, participants, conditions) = (vec![write(key)], vec![], vec![]);
        Input::Commit {
            req: RequestId(req),
            txn,
            priority,
            writes,
            reads,
            lease,
            participants,
            conditions,
            deadline: None,
        }
    }

    /// Goal: a transaction with a deadline (the end of a schema lease its
    /// client used) gets no read granted and no commit timestamp at or
    /// after it: it aborts, retryably, and its locks go; before the
    /// deadline it reads and commits as any other.
    /// Method: t1 reads "a" with deadline 2000 at 1000, then commits at
    /// 1500 (its timestamp, 1501, below 2000). t2, deadline 2000, reads
    /// "b" at 1000 and commits at 2500. t3, deadline 1800, asks to read
    /// "c" at 1900. t4 then writes "b" and "c" at once: nothing of t2's
    /// or t3's is left to wait for.
    #[test]
    fn a_transaction_past_its_deadline_neither_reads_nor_commits() {
        let mut s = ShardTxns::restore(ShardId(1), Timestamp::ZERO, vec![], vec![]);
        s.step(now(1000), Input::LeaderReady { term: Term(1) });
        let deadline = |t| Some(Timestamp::from_nanos(t));
        let with_deadline = |input: Input, d: Option<Timestamp>| match input {
            Input::Read { req, txn, priority, target, mode, lease, no_wait, .. } => {
                Input::Read { req, txn, priority, target, mode, lease, deadline: d, no_wait }
            }
            Input::Commit { req, txn, priority, writes, reads, lease, participants, conditions, .. } => {
                Input::Commit { req, txn, priority, writes, reads, lease, participants, conditions, deadline: d }
            }
            other => other,
        };
        let (t1, t2, t3) = (TxnId(1), TxnId(2), TxnId(3));
        let p = |t: TxnId| Priority::new(Timestamp::from_nanos(t.0 as u64), t);

        let lease = locked(&s.step(now(1000), with_deadline(read(1, t1, p(t1), "a", None), deadline(2000))));
        let out =
            s.step(now(1500), with_deadline(commit(2, t1, p(t1), "a", keys(&["a"]), Some(lease)), deadline(2000)));
        assert!(
            matches!(&out[..], [Output::Propose { command: TxnCommand::Commit { commit_ts, .. }, .. }] if commit_ts.as_nanos() < 2000),
            "before its deadline t1 commits: {out:?}"
        );

        let lease = locked(&s.step(now(1000), with_deadline(read(3, t2, p(t2), "b", None), deadline(2000))));
        let out =
            s.step(now(2500), with_deadline(commit(4, t2, p(t2), "b", keys(&["b"]), Some(lease)), deadline(2000)));
        let aborted = Err(TxnError::Aborted(AbortReason::DeadlinePassed));
        assert!(
            matches!(&out[..], [Output::Reply { req: RequestId(4), result }] if *result == aborted),
            "past its deadline t2's commit is refused: {out:?}"
        );

        let out = s.step(now(1900), with_deadline(read(5, t3, p(t3), "c", None), deadline(1800)));
        assert!(
            matches!(&out[..], [Output::Reply { req: RequestId(5), result }] if *result == aborted),
            "past its deadline t3's read is refused: {out:?}"
        );

        let out = s.step(
            now(2600),
            Input::Write { req: RequestId(6), writes: vec![write("b"), write("c")], conditions: vec![] },
        );
        assert!(matches!(&out[..], [Output::Propose { req: Some(RequestId(6)), .. }]), "no lock left behind: {out:?}");
    }

    fn locked(out: &[Output]) -> LockLease {
        match out {
            [Output::Reply { result: Ok(Answer::Locked { lease }), .. }] => *lease,
            other => panic!("expected a granted lock: {other:?}"),
        }
    }

    /// Goal: a wound never hits a transaction whose prepare is already
    /// being replicated, even when it became so in the middle of the
    /// wounding. Found by `spandb jepsen` (list-append, pauses) on
    /// 2026-12-02 as a write skew: one commit wounded two readers; the
    /// first one's release let the second's parked prepare take its last
    /// lock and propose, and the wound loop then aborted it anyway. Its
    /// locks were gone while its prepare went on to be applied and
    /// committed, so a third transaction read the key it was writing.
    /// Method: w (older than t1) and t1 read "a"; w also reads "b", so
    /// t1's prepare of a write to "b" waits for w. The oldest, t0,
    /// commits a write to "a": it wounds w and t1. Then t2 reads "b".
    #[test]
    fn a_wound_spares_a_victim_whose_prepare_started_meanwhile() {
        let mut s = ShardTxns::restore(ShardId(1), Timestamp::ZERO, vec![], vec![]);
        s.step(now(1000), Input::LeaderReady { term: Term(1) });
        let (t0, w, t1, t2) = (TxnId(10), TxnId(20), TxnId(30), TxnId(40));
        let p = |ts: u64, t: TxnId| Priority::new(Timestamp::from_nanos(ts), t);
        let (p0, pw, p1, p2) = (p(1, t0), p(2, w), p(3, t1), p(4, t2));
        let lease_w = locked(&s.step(now(1000), read(1, w, pw, "a", None)));
        locked(&s.step(now(1000), read(2, w, pw, "b", Some(lease_w))));
        let lease_1 = locked(&s.step(now(1000), read(3, t1, p1, "a", None)));
        let lease_0 = locked(&s.step(now(1000), read(4, t0, p0, "c", None)));
        let out = s.step(now(1000), prepare(5, t1, p1, "b", keys(&["a"]), Some(lease_1)));
        assert_eq!(out, vec![], "t1's prepare waits for w's lock on b");
        let out = s.step(now(1000), commit(6, t0, p0, "a", keys(&["c"]), Some(lease_0)));
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Propose { req: Some(RequestId(5)), command: TxnCommand::Prepare(_) })),
            "w's release lets t1's prepare go ahead: {out:?}"
        );
        assert!(s.locks().holds(t1, &LockTarget::Key(b"b".to_vec()), LockMode::Exclusive), "t1 keeps its locks");
        let out = s.step(now(1000), read(7, t2, p2, "b", None));
        assert_eq!(out, vec![], "t2 must wait for t1's exclusive lock on b");
        let record = PreparedTxn {
            txn: t1,
            priority: p1,
            prepare_ts: Timestamp::from_nanos(1001),
            coordinator: ShardId(2),
            writes: vec![write("b")],
            reads: vec![LockTarget::Key(b"a".to_vec())],
            conditions: vec![],
            heirs: vec![],
        };
        let applied =
            Input::Applied { req: Some(RequestId(5)), command: TxnCommand::Prepare(record), conditions_held: true };
        let out = s.step(now(1001), applied);
        assert!(
            out.iter().any(|o| matches!(o, Output::Resolve { txn, coordinator: ShardId(2), .. } if *txn == t1)),
            "older t0 waits for t1, now prepared: t1's coordinator is asked at once: {out:?}"
        );
        s.locks().check_invariants().unwrap();
    }

    /// Goal: a transaction gets one decision per shard: a commit parked
    /// behind a lock, while a prepare of the same transaction went ahead,
    /// is refused when its lock comes, instead of being proposed and then
    /// releasing (as it applies) the locks the prepare still holds. No
    /// honest client sends both; `random_interleavings_...` found it.
    /// Method: old holds "a"; t2's commit of "a" waits; t2's prepare of
    /// "b" is proposed; old aborts.
    #[test]
    fn a_second_decision_of_a_transaction_is_refused() {
        let mut s = ShardTxns::restore(ShardId(1), Timestamp::ZERO, vec![], vec![]);
        s.step(now(1000), Input::LeaderReady { term: Term(1) });
        let (old, t2) = (TxnId(1), TxnId(2));
        let p = |t: TxnId| Priority::new(Timestamp::from_nanos(t.0 as u64), t);
        locked(&s.step(now(1000), read(1, old, p(old), "a", None)));
        assert_eq!(s.step(now(1000), commit(2, t2, p(t2), "a", vec![], None)), vec![], "t2's commit waits for old");
        let out = s.step(now(1000), prepare(3, t2, p(t2), "b", vec![], None));
        assert!(matches!(&out[..], [Output::Propose { command: TxnCommand::Prepare(_), .. }]), "{out:?}");
        let out = s.step(now(1000), Input::Abort { req: RequestId(4), txn: old });
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Reply { req: RequestId(2), result: Err(TxnError::InvalidArgument(_)) })),
            "the parked commit is refused: {out:?}"
        );
        assert!(
            !out.iter().any(|o| matches!(o, Output::Propose { command: TxnCommand::Commit { .. }, .. })),
            "{out:?}"
        );
        assert!(
            s.locks().holds(t2, &LockTarget::Key(b"b".to_vec()), LockMode::Exclusive),
            "the prepare keeps its lock"
        );
    }

    /// Goal: under random interleavings of reads, prepares, single-shard
    /// commits, decisions and applies on one shard, a transaction whose
    /// prepare or commit was proposed keeps every lock it wrote until that
    /// command and its outcome are applied; the debug assertion in
    /// `applied` (written keys locked by the writer alone) holds
    /// throughout. The wound-cascade bug fails this within a few seeds.
    /// Method: six transactions over four keys, priorities by id; every
    /// proposal is applied later in proposal order, after random delays.
    #[test]
    fn random_interleavings_never_take_a_committing_transactions_locks() {
        for seed in 1..=300u64 {
            let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = move |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let mut s = ShardTxns::restore(ShardId(1), Timestamp::ZERO, vec![], vec![]);
            s.step(now(1000), Input::LeaderReady { term: Term(1) });
            let txns: Vec<TxnId> = (1..=6).map(TxnId).collect();
            let priority = |t: TxnId| Priority::new(Timestamp::from_nanos(t.0 as u64), t);
            let mut leases: BTreeMap<TxnId, LockLease> = BTreeMap::new();
            let mut reads: BTreeMap<TxnId, Vec<LockTarget>> = BTreeMap::new();
            // Proposed and not yet applied, in log order.
            let mut log: VecDeque<(Option<RequestId>, TxnCommand)> = VecDeque::new();
            // Transactions whose prepare or commit was proposed: the keys
            // they write, until their outcome is applied.
            let mut committing: BTreeMap<TxnId, Vec<Vec<u8>>> = BTreeMap::new();
            let mut req = 100u64;
            let mut t_now = 1000u64;
            let trace = std::env::var("TXN_RANDOM_TRACE").is_ok();
            if trace {
                eprintln!("--- seed {seed}");
            }
            for _ in 0..200 {
                t_now += 1;
                req += 1;
                let txn = txns[next(6) as usize];
                let key = ((b'a' + next(4) as u8) as char).to_string();
                let lease = leases.get(&txn).copied();
                let input = match next(6) {
                    0 | 1 => read(req, txn, priority(txn), &key, lease),
                    2 => prepare(req, txn, priority(txn), &key, reads.get(&txn).cloned().unwrap_or_default(), lease),
                    3 => commit(req, txn, priority(txn), &key, reads.get(&txn).cloned().unwrap_or_default(), lease),
                    4 if s.prepared.contains_key(&txn) => {
                        let outcome = match next(2) {
                            0 => Outcome::Aborted,
                            _ => Outcome::Committed(Timestamp::from_nanos(t_now + 10)),
                        };
                        Input::Decide { req: RequestId(req), txn, outcome }
                    }
                    _ => match log.pop_front() {
                        Some((r, command)) => Input::Applied { req: r, command, conditions_held: true },
                        None => continue,
                    },
                };
                let target = match &input {
                    Input::Read { target, .. } => Some(target.clone()),
                    _ => None,
                };
                let applied_outcome = match &input {
                    Input::Applied { command: TxnCommand::Commit { txn, .. }, .. }
                    | Input::Applied { command: TxnCommand::Finish { txn, .. }, .. } => Some(*txn),
                    _ => None,
                };
                let shown = if trace { format!("{input:?}") } else { String::new() };
                let outputs = s.step(now(t_now), input);
                if trace {
                    eprintln!("{shown}\n   -> {outputs:?}");
                }
                for out in outputs {
                    match out {
                        Output::Reply { result: Ok(Answer::Locked { lease }), .. } => {
                            leases.insert(txn, lease);
                            reads.entry(txn).or_default().extend(target.clone());
                        }
                        Output::Reply { result: Err(TxnError::Aborted(_)), .. } if !committing.contains_key(&txn) => {
                            leases.remove(&txn);
                            reads.remove(&txn);
                        }
                        Output::Propose { req, command } => {
                            match &command {
                                TxnCommand::Prepare(p) => {
                                    committing.insert(p.txn, p.writes.iter().map(|w| w.key.clone()).collect());
                                }
                                TxnCommand::Commit { txn, writes, .. } => {
                                    committing.insert(*txn, writes.iter().map(|w| w.key.clone()).collect());
                                }
                                _ => {}
                            }
                            log.push_back((req, command));
                        }
                        _ => {}
                    }
                }
                if let Some(t) = applied_outcome {
                    committing.remove(&t);
                    leases.remove(&t);
                    reads.remove(&t);
                }
                for (t, keys) in &committing {
                    for k in keys {
                        assert!(
                            s.locks().holds(*t, &LockTarget::Key(k.clone()), LockMode::Exclusive),
                            "seed {seed}: {t} lost its lock on {k:?} while committing"
                        );
                    }
                }
            }
        }
    }
}
