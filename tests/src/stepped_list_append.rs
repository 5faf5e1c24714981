//! Read-write transactions on a stepped cluster, checked for strict
//! serializability by the jepsen list-append checker
//! (`jepsen::checker::list_append`), all from one seed.
//!
//! ```text
//!   clients (state machines, one transaction each at a time)
//!     read k:   Txn Read (shared lock, lease) ─> ReadIndex at that leader
//!               ─> its RocksDB's latest version ─> held until TT.after(version)
//!     append k: read k (as above, or this transaction's own write), buffer k ++ [e]
//!     commit:   Prepare at every shard but the coordinator ─> Commit there
//!               ─> held until TT.after(commit_ts) (commit-wait)
//!   faults: each second, one of: pause a server (SIGSTOP), crash and
//!           restart one (at once, or inside its next step that writes:
//!           after its early sends or after its write), partition a shard leader away, jump every clock
//!           (within epsilon), move both shards' leaderships; then heal
//!   history: invoke / ok / fail / info at simulated times ─> the checker
//! ```
//!
//! The client does what the client library and the request handlers do
//! (`client/src/txn.rs`, `spanserver/src/requests.rs`) without gRPC: it
//! submits the transaction state machine's inputs to the shard's leader
//! of the moment and reads that server's RocksDB after its ReadIndex. A
//! request unanswered within [`REQUEST_TIMEOUT`] fails the transaction
//! (then aborted everywhere, best effort); a commit unanswered is `info`
//! (its outcome unknown), as over the network.
//!
//! Every read is checked as it returns: the version it saw must have a
//! timestamp below the simulated true time (no read returns a version
//! before its commit-wait could have ended, whatever the servers' skewed
//! clocks say). Reading as soon as the server's clock passes the version,
//! without epsilon, is caught by it within the first two seeds.
//!
//! Keys rotate as in the jepsen workload (a key retires after
//! [`APPENDS_PER_KEY`] appends); even key ids live on shard 1, odd ones
//! on shard 2, so most transactions span both.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jepsen::generate::ListAppendGen;
use jepsen::{History, Op, OpType, Process};
use meta::{LockLease, Priority, ReplicaId, ReplicaRole, RequestId, ServerId, ShardDescriptor, ShardId, TxnId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use spanserver::shard::membership::MembershipChange;
use tokio::sync::oneshot;
use truetime::Timestamp;
use txn::{Answer, Input, LockMode, LockTarget, TxnError, Write};

use crate::stepped::{CrashPoint, Faults, Setup, SteppedCluster, EPSILON};

/// How long a client waits for any one answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Appends a key gets before a fresh key replaces it.
pub const APPENDS_PER_KEY: u64 = 6;
/// Keys live at a time.
pub const ACTIVE_KEYS: usize = 4;
/// Micro-operations per transaction, at most.
pub const MOPS_MAX: usize = 4;
/// How often the clients look at their answers (simulated time).
const CLIENT_STEP: Duration = Duration::from_millis(1);

/// What a run does.
#[derive(Debug, Clone)]
pub struct Run {
    pub seed: u64,
    pub setup: Setup,
    pub faults: Faults,
    pub clients: usize,
    /// Simulated time the clients run for (faults included).
    pub duration: Duration,
    /// Inject pauses, crashes and partitions, one each second.
    pub nemesis: bool,
    /// Also split a shard the seed picks, at a key it picks, about every
    /// other second (from a random stream of its own, so runs without
    /// splits are what they were).
    pub splits: bool,
    /// Also move a replica of a shard the seed picks to a server without
    /// one, step by step beside the clients and the faults (its own
    /// random stream too). Wants a fourth server.
    pub moves: bool,
}

impl Run {
    pub fn new(seed: u64) -> Run {
        Run {
            seed,
            setup: Setup::default(),
            faults: Faults { loss_percent: 1, delay_max: Duration::from_millis(2) },
            // Enough clients over the live keys for long lock queues: a
            // commit that wounds several holders while prepares wait. With
            // 4, seeds 600..630 missed the wound cascade `spandb jepsen`
            // found on 2026-12-02; with 8 the debug assertion in
            // `txn::shard` catches it at seed 604.
            clients: 8,
            duration: Duration::from_secs(8),
            nemesis: true,
            splits: false,
            moves: false,
        }
    }
}

/// A micro-operation: read a key, or append an element to it.
#[derive(Debug, Clone)]
enum Mop {
    Read(u64),
    Append(u64, i64),
}

impl Mop {
    fn key(&self) -> u64 {
        match self {
            Mop::Read(k) | Mop::Append(k, _) => *k,
        }
    }
}

fn key_name(k: u64) -> Vec<u8> {
    // Split point "k0001": "a…" is shard 1, "z…" shard 2.
    format!("{}{k}", if k.is_multiple_of(2) { 'a' } else { 'z' }).into_bytes()
}

/// The shard holding key `k` now (the cluster's newest descriptors: the
/// client's map, which a split moves on).
fn shard_of(c: &SteppedCluster, k: u64) -> ShardId {
    c.shard_of(&key_name(k))
}

/// A generated transaction's micro-operations (`jepsen::generate`'s
/// JSON form) as [`Mop`]s.
fn mops_of(txn: &Value) -> Vec<Mop> {
    txn.as_array()
        .expect("generated transactions are arrays")
        .iter()
        .map(|m| {
            let key = m[1].as_u64().expect("integer keys");
            match m[0].as_str() {
                Some("append") => Mop::Append(key, m[2].as_i64().expect("integer elements")),
                _ => Mop::Read(key),
            }
        })
        .collect()
}

type Reply = oneshot::Receiver<Result<Answer, TxnError>>;

/// Where a transaction is.
enum Step {
    /// The next micro-operation, or the commit.
    Next,
    Locking {
        server: ServerId,
        /// The shard the read went to (where its lease is).
        shard: ShardId,
        key: u64,
        reply: Reply,
        deadline: Duration,
    },
    Confirming {
        server: ServerId,
        key: u64,
        reply: oneshot::Receiver<spanserver::error::Result<Timestamp>>,
        deadline: Duration,
    },
    /// A read's value, held until its version (committed at `ts`) is
    /// visible.
    Visible {
        at: Duration,
        ts: Timestamp,
        key: u64,
        list: Vec<i64>,
    },
    Preparing {
        pending: Vec<(ShardId, Reply)>,
        prepared: Vec<(ShardId, Timestamp)>,
        deadline: Duration,
    },
    Committing {
        server: ServerId,
        reply: Reply,
        deadline: Duration,
    },
    /// Committed; the answer waits for commit-wait.
    CommitWait {
        at: Duration,
        commit_ts: Timestamp,
    },
}

struct Txn {
    invoke: Vec<Value>,
    mops: Vec<Mop>,
    next: usize,
    done: Vec<Value>,
    id: TxnId,
    priority: Priority,
    /// Lists this transaction wrote.
    writes: BTreeMap<u64, Vec<i64>>,
    /// Per shard: the lease and the keys read under it.
    reads: BTreeMap<ShardId, (LockLease, Vec<u64>)>,
    step: Step,
}

enum Outcome {
    Ok(Timestamp),
    Fail(String),
    Info(String),
}

/// Runs `run`; returns the history and the cluster (for more checks).
pub fn run(run: &Run) -> (History, SteppedCluster) {
    let mut c = SteppedCluster::with(run.seed, run.setup.clone());
    c.faults = run.faults;
    let mut rng = StdRng::seed_from_u64(run.seed ^ 0x5eed);
    let mut generator = ListAppendGen::new(ACTIVE_KEYS, APPENDS_PER_KEY, MOPS_MAX);
    let mut ops: Vec<Op> = Vec::new();
    let mut clients: Vec<Option<Txn>> = (0..run.clients).map(|_| None).collect();
    // A client whose transaction ended unknown takes a new process id
    // (its old one may still be running, as far as the checker knows).
    let mut processes: Vec<u64> = (0..run.clients as u64).collect();
    let mut next_process = run.clients as u64;
    c.run_until(Duration::from_secs(1));
    let end = c.now() + run.duration;
    let mut next_fault = c.now() + Duration::from_secs(1);
    let mut undo: Option<Heal> = None;
    let mut txn_seq = 0u128;
    let mut split_rng = StdRng::seed_from_u64(run.seed ^ 0x5e11_7000);
    let mut move_rng = StdRng::seed_from_u64(run.seed ^ 0x0303_7e00);
    let mut moving: Option<Move> = None;
    let mut next_id = 1000;
    while c.now() < end {
        if let Some(m) = moving.as_mut() {
            if let Some(outcome) = m.advance(&mut c, &mut next_id) {
                c.note(format!("move {} from {} to {}: {outcome}", m.shard, m.from, m.to));
                moving = None;
            }
        }
        if run.nemesis && c.now() >= next_fault {
            next_fault = c.now() + Duration::from_secs(1);
            if run.splits && split_rng.random_bool(0.5) {
                split_somewhere(&mut c, &mut split_rng, &mut next_id, txn_seq);
            }
            if run.moves && moving.is_none() {
                moving = Move::pick(&c, &mut move_rng);
            }
            match undo.take() {
                Some(heal) => heal(&mut c),
                None => undo = Some(start_fault(&mut c, &mut rng)),
            }
        }
        for (client, slot) in clients.iter_mut().enumerate() {
            let process = processes[client];
            if slot.is_none() {
                let mops = mops_of(&generator.next(&mut rng));
                txn_seq += 1;
                let id = TxnId::random(u128::from(run.seed) << 64 | txn_seq);
                let invoke: Vec<Value> = mops.iter().map(mop_json).collect();
                let now_ns = c.now().as_nanos() as u64;
                ops.push(Op::new(0, now_ns, Process::Client(process), OpType::Invoke, "txn", json!(invoke)));
                *slot = Some(Txn {
                    invoke,
                    mops,
                    next: 0,
                    done: Vec::new(),
                    id,
                    priority: Priority::new(Timestamp::from_nanos(now_ns.max(1)), id),
                    writes: BTreeMap::new(),
                    reads: BTreeMap::new(),
                    step: Step::Next,
                });
            }
            let t = slot.as_mut().expect("filled above");
            if let Some(outcome) = advance(&mut c, t) {
                let t = slot.take().expect("a transaction");
                let now_ns = c.now().as_nanos() as u64;
                let p = Process::Client(process);
                let op = match outcome {
                    Outcome::Ok(ts) => {
                        let mut op = Op::new(0, now_ns, p, OpType::Ok, "txn", json!(t.done));
                        op.commit_ts = Some(ts.as_nanos());
                        op
                    }
                    Outcome::Fail(e) => {
                        abort_everywhere(&mut c, &t);
                        let mut op = Op::new(0, now_ns, p, OpType::Fail, "txn", json!(t.invoke));
                        op.error = Some(e);
                        op
                    }
                    Outcome::Info(e) => {
                        processes[client] = next_process;
                        next_process += 1;
                        let mut op = Op::new(0, now_ns, p, OpType::Info, "txn", json!(t.invoke));
                        op.error = Some(e);
                        op
                    }
                };
                ops.push(op);
            }
        }
        let until = c.now() + CLIENT_STEP;
        c.run_until(until);
    }
    if let Some(heal) = undo.take() {
        heal(&mut c);
    }
    // Whatever is still running ends unknown.
    for (client, slot) in clients.iter_mut().enumerate() {
        if let Some(t) = slot.take() {
            let p = Process::Client(processes[client]);
            let mut op = Op::new(0, c.now().as_nanos() as u64, p, OpType::Info, "txn", json!(t.invoke));
            op.error = Some("the run ended".into());
            ops.push(op);
        }
    }
    for (i, op) in ops.iter_mut().enumerate() {
        op.index = i as u64;
    }
    (History::new(ops).expect("a well-formed history"), c)
}

fn mop_json(m: &Mop) -> Value {
    match m {
        Mop::Read(k) => json!(["r", k, null]),
        Mop::Append(k, e) => json!(["append", k, e]),
    }
}

/// Ends a fault.
type Heal = Box<dyn FnOnce(&mut SteppedCluster)>;

/// Splits a shard the seed picks at a key it picks among those in use
/// (refusals are fine: the key may begin a shard; a transaction prepared
/// on both sides stays prepared on both halves). The answer comes within
/// a second of simulated time, during which the clients wait.
fn split_somewhere(c: &mut SteppedCluster, rng: &mut StdRng, next_id: &mut u64, txns_so_far: u128) {
    let k = rng.random_range(0..=(txns_so_far as u64 / 2 + 8));
    let key = key_name(k);
    let shard = c.shard_of(&key);
    let replicas = c.descriptors()[&shard].replicas.len() as u64;
    let child = ShardId(*next_id);
    let child_replicas = (1..=replicas).map(|i| meta::ReplicaId(*next_id + i)).collect();
    *next_id += 1 + replicas;
    let answer = c.split(shard, &key, child, child_replicas, Duration::from_secs(1));
    let shown = match answer {
        Ok((_, right)) => format!("split {shard} at {:?}: {}", String::from_utf8_lossy(&key), right.shard_id),
        Err(e) => format!("split {shard} at {:?} refused: {e}", String::from_utf8_lossy(&key)),
    };
    c.note(shown);
}

/// A replica move driven one step at a time beside the clients, as
/// `Client::move_replica` does over gRPC: a learner on `to`, caught up,
/// the leadership handed away from `from` if it leads, the joint
/// configuration (promote `to`, demote `from`), left by the leader on
/// its own, then the learner on `from` removed. A step that takes more
/// than [`MOVE_STEP_TIMEOUT`] abandons the move; the next move of the
/// shard first removes a learner one left behind.
struct Move {
    shard: ShardId,
    from: ServerId,
    to: ServerId,
    phase: MovePhase,
    /// A change submitted, and the phase once it is applied.
    waiting: Option<(oneshot::Receiver<spanserver::error::Result<ShardDescriptor>>, MovePhase)>,
    deadline: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MovePhase {
    AddLearner,
    CatchUp,
    HandOver,
    Joint,
    LeaveJoint,
    Remove,
    Done,
}

/// How long one step of a [`Move`] may take, in simulated time.
const MOVE_STEP_TIMEOUT: Duration = Duration::from_secs(3);

impl Move {
    /// A move of a settled shard's replica the seed picks to a server
    /// without one; or, for a shard a move left a learner in, its removal.
    fn pick(c: &SteppedCluster, rng: &mut StdRng) -> Option<Move> {
        let descriptors: Vec<ShardDescriptor> = c.descriptors().into_values().collect();
        let d = &descriptors[rng.random_range(0..descriptors.len())];
        let deadline = c.now() + MOVE_STEP_TIMEOUT;
        if d.replicas.iter().any(|r| r.role == ReplicaRole::IncomingVoter || r.role == ReplicaRole::DemotingVoter) {
            return None; // its leader leaves the joint configuration on its own
        }
        if let Some(left) = d.replicas.iter().find(|r| r.role == ReplicaRole::Learner) {
            let (from, to) = (left.server_id, left.server_id);
            return Some(Move { shard: d.shard_id, from, to, phase: MovePhase::Remove, waiting: None, deadline });
        }
        let holders: Vec<ServerId> = d.replicas.iter().map(|r| r.server_id).collect();
        let free: Vec<ServerId> = c.server_ids().into_iter().filter(|s| !holders.contains(s)).collect();
        if free.is_empty() {
            return None;
        }
        let from = holders[rng.random_range(0..holders.len())];
        let to = free[rng.random_range(0..free.len())];
        Some(Move { shard: d.shard_id, from, to, phase: MovePhase::AddLearner, waiting: None, deadline })
    }

    /// Takes the next step if it can; `Some(outcome)` once the move ends.
    fn advance(&mut self, c: &mut SteppedCluster, next_id: &mut u64) -> Option<String> {
        if c.now() > self.deadline {
            return Some(format!("abandoned at {:?}", self.phase));
        }
        if let Some((reply, then)) = self.waiting.as_mut() {
            match reply.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return None,
                Err(oneshot::error::TryRecvError::Closed) => self.waiting = None, // dropped: submit again
                Ok(Err(e)) => return Some(format!("refused at {:?}: {e}", self.phase)),
                Ok(Ok(_)) => {
                    self.phase = *then;
                    self.waiting = None;
                    self.deadline = c.now() + MOVE_STEP_TIMEOUT;
                }
            }
        }
        let d = c.descriptors().remove(&self.shard)?;
        let submit = |c: &mut SteppedCluster, change| c.submit_membership(&d, change).ok();
        let (change, then) = match self.phase {
            MovePhase::AddLearner => {
                *next_id += 1;
                (MembershipChange::AddLearner { server: self.to, replica: ReplicaId(*next_id) }, MovePhase::CatchUp)
            }
            MovePhase::CatchUp => {
                let leader = c.leader(self.shard)?;
                let committed = c.raft_state(leader, self.shard)?.committed_index;
                if c.raft_state(self.to, self.shard).is_some_and(|st| st.applied_index >= committed) {
                    self.phase = MovePhase::HandOver;
                }
                return None;
            }
            MovePhase::HandOver => {
                match c.leader(self.shard) {
                    Some(l) if l == self.from => {
                        let other = d.replicas.iter().map(|r| r.server_id).find(|s| *s != self.from && *s != self.to);
                        if let Some(to) = other {
                            c.transfer_leader(self.shard, to);
                        }
                    }
                    Some(_) => self.phase = MovePhase::Joint,
                    None => {}
                }
                return None;
            }
            MovePhase::Joint => {
                let change = MembershipChange::Joint { promote: vec![self.to], demote: vec![self.from] };
                (change, MovePhase::LeaveJoint)
            }
            MovePhase::LeaveJoint => {
                if d.replicas.iter().all(|r| matches!(r.role, ReplicaRole::Voter | ReplicaRole::Learner)) {
                    self.phase = MovePhase::Remove;
                }
                return None;
            }
            MovePhase::Remove => (MembershipChange::RemoveLearner { server: self.from }, MovePhase::Done),
            MovePhase::Done => return Some("done".into()),
        };
        if let Some(reply) = submit(c, change) {
            self.waiting = Some((reply, then));
        }
        None
    }
}

/// Starts a fault the seed picks; returns how to end it.
fn start_fault(c: &mut SteppedCluster, rng: &mut StdRng) -> Heal {
    let shard = ShardId(rng.random_range(1..=2));
    let servers = c.server_ids();
    let victim = c.leader(shard).unwrap_or(servers[rng.random_range(0..servers.len())]);
    match rng.random_range(0..5) {
        4 => {
            // Leadership of both shards moves, repeatedly, while the fault
            // lasts (as when servers distrust their clocks in turn).
            for shard in [ShardId(1), ShardId(2)] {
                let to = servers[rng.random_range(0..servers.len())];
                c.transfer_leader(shard, to);
            }
            Box::new(|_: &mut SteppedCluster| {})
        }
        3 => {
            // Every clock jumps to its own offset within 9/10 epsilon.
            let bound = EPSILON.as_nanos() as i64 * 9 / 10;
            let before: Vec<(ServerId, i64)> = servers.iter().map(|s| (*s, c.clock_offset(*s))).collect();
            for s in &servers {
                c.set_clock_offset(*s, rng.random_range(-bound..=bound));
            }
            Box::new(move |c: &mut SteppedCluster| {
                for (s, offset) in before {
                    c.set_clock_offset(s, offset);
                }
            })
        }
        0 => {
            c.pause(victim);
            Box::new(move |c: &mut SteppedCluster| c.resume(victim))
        }
        1 => {
            // At once, or inside its next step that writes.
            match rng.random_range(0..3) {
                0 => c.crash(victim),
                1 => c.crash_in_step(victim, CrashPoint::AfterEarlySends),
                _ => c.crash_in_step(victim, CrashPoint::AfterWrite),
            }
            Box::new(move |c: &mut SteppedCluster| c.restart(victim))
        }
        _ => {
            for other in servers.into_iter().filter(|s| *s != victim) {
                c.partition(victim, other);
            }
            Box::new(|c: &mut SteppedCluster| c.heal())
        }
    }
}

/// Submits `input` to `shard`'s leader of the moment, after the check
/// its request handler makes (`requests.rs`): every key it names is in
/// that server's range of the shard (a split may have moved it).
fn send(c: &mut SteppedCluster, shard: ShardId, input: Input) -> Result<(ServerId, Reply), String> {
    let server = c.leader(shard).filter(|s| c.is_up(*s)).ok_or_else(|| format!("no leader of {shard}"))?;
    let keys: Vec<Vec<u8>> = match &input {
        Input::Read { target: LockTarget::Key(k), .. } => vec![k.clone()],
        Input::Prepare { writes, reads, .. } | Input::Commit { writes, reads, .. } => {
            let read_keys = reads.iter().filter_map(|r| match r {
                LockTarget::Key(k) => Some(k.clone()),
                LockTarget::Range(..) => None,
            });
            writes.iter().map(|w| w.key.clone()).chain(read_keys).collect()
        }
        _ => Vec::new(),
    };
    let range = c.descriptor_on(server, shard).ok_or_else(|| format!("{server} has no replica of {shard}"))?;
    if let Some(k) = keys.iter().find(|k| !range.contains(k)) {
        return Err(format!("wrong shard: {shard} no longer holds {:?}", String::from_utf8_lossy(k)));
    }
    Ok((server, c.submit(server, shard, input)))
}

/// Tells every shard the transaction touched to drop it (best effort:
/// a prepared participant then asks the coordinator).
fn abort_everywhere(c: &mut SteppedCluster, t: &Txn) {
    let shards: BTreeSet<ShardId> = t.reads.keys().copied().chain(t.writes.keys().map(|k| shard_of(c, *k))).collect();
    for shard in shards {
        drop(send(c, shard, Input::Abort { req: RequestId(0), txn: t.id }));
    }
}

/// Polls a reply: `None` while it has not come.
fn poll<T>(reply: &mut oneshot::Receiver<T>) -> Option<Result<T, String>> {
    match reply.try_recv() {
        Ok(v) => Some(Ok(v)),
        Err(oneshot::error::TryRecvError::Empty) => None,
        Err(oneshot::error::TryRecvError::Closed) => Some(Err("the server went away".into())),
    }
}

/// Moves `t` on as far as its answers allow; `Some` when it ended.
fn advance(c: &mut SteppedCluster, t: &mut Txn) -> Option<Outcome> {
    loop {
        let now = c.now();
        match &mut t.step {
            Step::Next => {
                let Some(mop) = t.mops.get(t.next).cloned() else {
                    return commit(c, t).err();
                };
                let k = mop.key();
                if let Some(list) = t.writes.get(&k).cloned() {
                    finish_mop(t, &mop, list);
                    continue;
                }
                let shard = shard_of(c, k);
                let lease = t.reads.get(&shard).map(|(l, _)| *l);
                let input = Input::Read {
                    req: RequestId(0),
                    txn: t.id,
                    priority: t.priority,
                    target: LockTarget::Key(key_name(k)),
                    // An append reads its list for update, as SQL's UPDATE does.
                    mode: match mop {
                        Mop::Append(..) => LockMode::Exclusive,
                        Mop::Read(_) => LockMode::Shared,
                    },
                    lease,
                    deadline: None,
                    no_wait: false,
                };
                let (server, reply) = match send(c, shard, input) {
                    Ok(sent) => sent,
                    Err(e) => return Some(Outcome::Fail(e)),
                };
                t.step = Step::Locking { server, shard, key: k, reply, deadline: now + REQUEST_TIMEOUT };
            }
            Step::Locking { server, shard, key, reply, deadline } => {
                let (server, shard, key) = (*server, *shard, *key);
                match poll(reply) {
                    None if now < *deadline => return None,
                    None => return Some(Outcome::Fail("the read's lock timed out".into())),
                    Some(Ok(Ok(Answer::Locked { lease }))) => {
                        let entry = t.reads.entry(shard).or_insert((lease, Vec::new()));
                        entry.1.push(key);
                        let reply = c.read_index(server, shard);
                        t.step = Step::Confirming { server, key, reply, deadline: now + REQUEST_TIMEOUT };
                    }
                    Some(other) => return Some(Outcome::Fail(format!("the read's lock: {other:?}"))),
                }
            }
            Step::Confirming { server, key, reply, deadline } => {
                let (server, key) = (*server, *key);
                match poll(reply) {
                    None if now < *deadline => return None,
                    None => return Some(Outcome::Fail("the read's ReadIndex timed out".into())),
                    Some(Ok(Ok(_))) => {
                        let Some(latest) = c.is_up(server).then(|| c.latest(server, &key_name(key))) else {
                            return Some(Outcome::Fail("the reader went away".into()));
                        };
                        let (ts, list) = match latest {
                            Some((ts, Some(v))) => (ts, decode(&v)),
                            Some((ts, None)) => (ts, Vec::new()),
                            None => (Timestamp::ZERO, Vec::new()),
                        };
                        let at = if ts == Timestamp::ZERO { now } else { c.when_after(server, ts) };
                        t.step = Step::Visible { at, ts, key, list };
                    }
                    Some(other) => return Some(Outcome::Fail(format!("the read's ReadIndex: {other:?}"))),
                }
            }
            Step::Visible { at, ts, key, list } => {
                if now < *at {
                    return None;
                }
                // No read returns a version before its commit-wait could
                // have ended: true time must be past its timestamp (what
                // TT.after promises, whatever the server's clock says).
                let true_now = c.true_time();
                assert!(
                    *ts < true_now,
                    "seed {}: a read returned the version of key {key} committed at {ts} at true time {true_now}, before its commit-wait could end",
                    c.seed
                );
                let (key, list) = (*key, std::mem::take(list));
                let mop = t.mops[t.next].clone();
                debug_assert_eq!(mop.key(), key);
                finish_mop(t, &mop, list);
            }
            Step::Preparing { pending, prepared, deadline } => {
                let mut still = Vec::new();
                for (shard, mut reply) in std::mem::take(pending) {
                    match poll(&mut reply) {
                        None => still.push((shard, reply)),
                        Some(Ok(Ok(Answer::Prepared { prepare_ts }))) => prepared.push((shard, prepare_ts)),
                        Some(other) => return Some(Outcome::Fail(format!("the prepare at {shard}: {other:?}"))),
                    }
                }
                if !still.is_empty() {
                    if now >= *deadline {
                        return Some(Outcome::Fail("a prepare timed out".into()));
                    }
                    *pending = still;
                    return None;
                }
                let participants = std::mem::take(prepared);
                match send_commit(c, t, participants) {
                    Ok(step) => t.step = step,
                    Err(outcome) => return Some(outcome),
                }
            }
            Step::Committing { server, reply, deadline } => {
                let server = *server;
                match poll(reply) {
                    None if now < *deadline => return None,
                    None => return Some(Outcome::Info("the commit was not answered in time".into())),
                    Some(Ok(Ok(Answer::Committed { commit_ts, .. }))) => {
                        t.step = Step::CommitWait { at: c.when_after(server, commit_ts), commit_ts };
                    }
                    Some(Ok(Err(TxnError::Ambiguous(m)))) => return Some(Outcome::Info(m)),
                    Some(Ok(Err(e))) => return Some(Outcome::Fail(format!("the commit: {e}"))),
                    Some(Ok(Ok(other))) => return Some(Outcome::Info(format!("the commit answered {other:?}"))),
                    Some(Err(e)) => return Some(Outcome::Info(e)),
                }
            }
            Step::CommitWait { at, commit_ts } => {
                return (now >= *at).then_some(Outcome::Ok(*commit_ts));
            }
        }
    }
}

/// Records a micro-operation that saw `list` (the key's value before it).
fn finish_mop(t: &mut Txn, mop: &Mop, mut list: Vec<i64>) {
    match mop {
        Mop::Read(k) => t.done.push(json!(["r", k, list])),
        Mop::Append(k, e) => {
            list.push(*e);
            t.writes.insert(*k, list);
            t.done.push(json!(["append", k, e]));
        }
    }
    t.next += 1;
    t.step = Step::Next;
}

/// Per shard: (writes, read keys). Reads go where they were locked,
/// writes where their keys are now (as the client library does).
fn parts(c: &SteppedCluster, t: &Txn) -> BTreeMap<ShardId, (Vec<Write>, Vec<LockTarget>)> {
    let mut parts: BTreeMap<ShardId, (Vec<Write>, Vec<LockTarget>)> = BTreeMap::new();
    for (shard, (_, keys)) in &t.reads {
        parts.entry(*shard).or_default().1 = keys.iter().map(|k| LockTarget::Key(key_name(*k))).collect();
    }
    for (k, list) in &t.writes {
        let value = list.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        parts.entry(shard_of(c, *k)).or_default().0.push(Write { key: key_name(*k), value: Some(value.into_bytes()) });
    }
    parts
}

/// The coordinator: the first shard written, else the first read.
fn coordinator(parts: &BTreeMap<ShardId, (Vec<Write>, Vec<LockTarget>)>) -> ShardId {
    parts.iter().find(|(_, (w, _))| !w.is_empty()).or_else(|| parts.iter().next()).map(|(s, _)| *s).expect("not empty")
}

/// Starts the commit: prepares at the other shards, or the commit itself.
fn commit(c: &mut SteppedCluster, t: &mut Txn) -> Result<(), Outcome> {
    let parts = parts(c, t);
    let coord = coordinator(&parts);
    let mut pending = Vec::new();
    for (shard, (writes, reads)) in parts.into_iter().filter(|(s, _)| *s != coord) {
        let lease = (!reads.is_empty()).then(|| t.reads[&shard].0);
        let input = Input::Prepare {
            req: RequestId(0),
            txn: t.id,
            priority: t.priority,
            writes,
            reads,
            lease,
            coordinator: coord,
            conditions: Vec::new(),
        };
        let (_, reply) = send(c, shard, input).map_err(|e| Outcome::Fail(format!("the prepare at {shard}: {e}")))?;
        pending.push((shard, reply));
    }
    t.step = match pending.is_empty() {
        true => send_commit(c, t, Vec::new())?,
        false => Step::Preparing { pending, prepared: Vec::new(), deadline: c.now() + REQUEST_TIMEOUT },
    };
    Ok(())
}

fn send_commit(c: &mut SteppedCluster, t: &Txn, participants: Vec<(ShardId, Timestamp)>) -> Result<Step, Outcome> {
    let mut parts = parts(c, t);
    let coord = coordinator(&parts);
    let (writes, reads) = parts.remove(&coord).expect("the coordinator takes part");
    let lease = (!reads.is_empty()).then(|| t.reads[&coord].0);
    let input = Input::Commit {
        req: RequestId(0),
        txn: t.id,
        priority: t.priority,
        writes,
        reads,
        lease,
        participants,
        conditions: Vec::new(),
        deadline: None,
    };
    let (server, reply) = send(c, coord, input).map_err(|e| Outcome::Fail(format!("the commit at {coord}: {e}")))?;
    Ok(Step::Committing { server, reply, deadline: c.now() + REQUEST_TIMEOUT })
}

fn decode(bytes: &[u8]) -> Vec<i64> {
    if bytes.is_empty() {
        return Vec::new();
    }
    String::from_utf8_lossy(bytes).split(',').map(|e| e.parse().expect("an element")).collect()
}
