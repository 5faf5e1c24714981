//! Stepped clusters: every server's event loop (`spanserver::event_loop::EventLoop`)
//! driven by ONE thread over a seeded schedule, with simulated time, so a
//! run is a function of its seed.
//!
//! ```text
//!   seed ──> StdRng ──┬─ message fates: delay (reorders), loss, partitions
//!                     └─ each server's tick phase
//!   loop: deliver what is due ─> step each server that has input or is
//!         due (EventLoop::step(now, messages)) ─> check invariants ─> advance
//!         time to the next event (ManualClock for TrueTime, `start + t`
//!         for the loop's Instants)
//! ```
//!
//! The servers are the real code: RocksDB in temp directories, raft-rs,
//! the transaction state machines, the event loop, snapshots; only the
//! driver is replaced. Each step's effects (`spanserver::event_loop`:
//! what to send first, what to write, then messages, peer calls,
//! replies) come back as values, which this driver puts on the schedule
//! instead of a socket; clocks are set by the schedule.
//! Election timeouts are pinned (`raft.election_ticks_max`), since
//! raft-rs draws them from its own unseeded generator; servers start at
//! seeded tick phases instead, which breaks ties the same way every run.
//!
//! Checked after every step, not sampled ([`Invariants`]): at most one
//! leader per shard per term, a committed index never goes backwards on a
//! replica, every replica applies the same entry at each index (entries
//! a replica got in a snapshot were compared where they were applied),
//! no snapshot reaches the same replica more than
//! `SAME_SNAPSHOT_DELIVERIES_MAX` times (a resend loop), and every
//! acknowledged write (a plain write or a commit answered `Committed`,
//! whoever submitted it) is in the RocksDB of every replica that applied
//! past the index it was acknowledged at, and again after that replica
//! restarts; and a request handler that would read from a leader's lease
//! now (`ReplicaProgress::lease_covers`) reads at a time no replica of the
//! shard has published a newer one than (it misses nothing a follower
//! could serve, nor anything a newer leader applied). A violation stops
//! the run with the seed and the trace so far.
//!
//! A server's writes take no simulated time unless a test gives it a
//! write latency ([`SteppedCluster::set_write_latency`], a slow disk):
//! then its early sends leave and its followers may apply entries before
//! it does.
//!
//! Each server's clock is off by a seeded amount ([`Setup`]); a server's
//! own assertions (timestamps strictly increasing in a shard's log, ...)
//! count as checks: a panic in a step is reported with the seed.
//!
//! A server can crash (its event loop dropped: what it wrote to RocksDB
//! stays, its memory and the messages to it are lost), between steps or
//! inside one, at the points the step is split at ([`CrashPoint`]: after
//! a leader's early sends and before its write, or after the write and
//! before it applies or answers anything), and restart from
//! its directory, or pause (SIGSTOP: not stepped, its memory kept, what
//! arrives for it waiting until it resumes, as in its sockets).
//!
//! The commit protocol's peer calls (`PeerCall`: a participant asking
//! the coordinator, a coordinator telling the participants) travel on the
//! same schedule, as `peers.rs` makes them: to the shard's leader of the
//! moment, a told decision only after the caller's commit-wait, a
//! committed answer only after the answering server's, each hop lost,
//! delayed or cut by a partition like a Raft message; the answer goes
//! back into the caller's loop (`Decide` for a participant,
//! `Acknowledged` for a coordinator). A call that finds no leader or is
//! lost is dropped: the state machines repeat them.
//!
//! Transactions run on it in `stepped_list_append` (a client that
//! drives the transaction state machines as the client library does,
//! checked by the jepsen list-append checker).
//!
//! Scenarios read as scripts in `tests/tests/cluster_scripts.rs`
//! (goldenscripts under `tests/testscripts/cluster/`).
//!
//! Logs are compacted every [`LOG_COMPACT_ENTRIES`] entries, so a replica
//! that was down or cut off catches up by snapshot: the leader builds it
//! on its build thread (the driver waits for the build after each step,
//! and reuse and retries are paced by the step's time, so the run depends
//! on neither the thread's speed nor the wall clock), the data file is
//! copied into the receiver's snapshot directory when sent, and the
//! message is delivered, lost or cut like any other; the sender hears
//! how it went (`SnapshotSent`) when it arrives or fails.
//!
//! Not yet (issue 10, item 3): an in-memory engine (each server is a
//! RocksDB in a temp directory, about 4 s of wall time per 9 s
//! transaction run).

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meta::{ClusterSpec, ReplicaId, RequestId, ServerId, ServerSpec, ShardDescriptor, ShardId, TxnId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spanserver::clock::ClockGuard;
use spanserver::config::{GcConfig, RaftConfig, UnsafeTestingConfig};
use spanserver::event_loop::{EventLoop, Next, Outgoing, Persist, RaftState, SnapshotSend};
use spanserver::inbox::LoopMsg;
use spanserver::registry::Registry;
use spanserver::shard::command::Split;
use spanserver::shard::membership::MembershipChange;
use spanserver::shard::{PeerCall, TxnReply};
use spanserver::storage::keycode::RaftKey;
use spanserver::storage::mvcc::Reader;
use spanserver::storage::snapshot::SnapshotDir;
use spanserver::storage::{Engine, Identity};
use spanserver::RaftMessage;
use tokio::sync::oneshot;
use truetime::{ManualClock, Timestamp, TrueTime};
use txn::{Answer, Input, Outcome, TxnError};

/// Every stepped server's TrueTime epsilon.
pub const EPSILON: Duration = Duration::from_millis(2);

/// The cluster a stepped run builds.
#[derive(Debug, Clone)]
pub struct Setup {
    pub servers: u64,
    /// Shards of the static layout.
    pub shards: usize,
    /// Replicas per shard, on consecutive servers (`meta::cluster`).
    pub replication: usize,
    /// Each server's clock is off by a seeded amount within this, either
    /// way (its TrueTime reads its own clock).
    pub clock_skew_max: Duration,
    /// Bugs planted on purpose, to show the checks catch them.
    pub unsafe_testing: UnsafeTestingConfig,
    /// MVCC garbage collection (the servers' default unless set).
    pub gc: GcConfig,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            servers: 3,
            shards: 2,
            replication: 3,
            clock_skew_max: Duration::from_millis(1),
            unsafe_testing: UnsafeTestingConfig::default(),
            gc: GcConfig::default(),
        }
    }
}

/// What a stepped run may do to messages.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Chance that a message is lost, in percent.
    pub loss_percent: u32,
    /// Most a message is delayed (uniformly from zero): delays reorder.
    pub delay_max: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { loss_percent: 0, delay_max: Duration::from_millis(5) }
    }
}

/// A Raft message on its way.
struct Envelope {
    deliver_at: Duration,
    /// Orders envelopes due at the same instant: the order they were sent.
    seq: u64,
    from: ServerId,
    to: ServerId,
    shard: ShardId,
    message: RaftMessage,
    kind: EnvelopeKind,
}

enum EnvelopeKind {
    Raft,
    /// A snapshot, with its data file already copied into the receiver's
    /// snapshot directory (none for an empty shard).
    Snapshot {
        file: Option<PathBuf>,
    },
}

/// What a server's step handed over to send, until the schedule takes
/// it: `(from, to, shard, message)`, and snapshots with their senders.
#[derive(Default)]
struct Sent {
    messages: Vec<(ServerId, ServerId, ShardId, RaftMessage)>,
    snapshots: Vec<(ServerId, SnapshotSend)>,
}

impl Sent {
    fn add(&mut self, from: ServerId, outgoing: Outgoing) {
        for (to, messages) in outgoing.messages {
            self.messages.extend(messages.into_iter().map(|(shard, m)| (from, to, shard, m)));
        }
        self.snapshots.extend(outgoing.snapshots.into_iter().map(|send| (from, send)));
    }
}

/// A hop of the commit protocol between servers, on the schedule.
struct Mail {
    deliver_at: Duration,
    seq: u64,
    /// The server it leaves (a partition between it and the receiver cuts it).
    from: ServerId,
    kind: MailKind,
}

enum MailKind {
    /// A peer request for `shard`'s leader of the moment; `then` says
    /// what its answer is for.
    Request { shard: ShardId, input: Input, then: Then },
    /// An answer back into `to`'s own loop.
    Answer { to: ServerId, shard: ShardId, input: Input },
}

/// What a peer request's answer is for.
#[derive(Clone, Copy)]
enum Then {
    /// `participant` (on the asking server) asked how `txn` ended: an
    /// outcome becomes its `Decide`.
    TellParticipant { asker: ServerId, participant: ShardId, txn: TxnId },
    /// `coordinator` (on the telling server) told `participant`: done
    /// becomes its `Acknowledged`.
    Acknowledge { teller: ServerId, coordinator: ShardId, participant: ShardId, txn: TxnId },
}

/// A plain write or commit submitted, its answer not yet handed on.
struct Watched {
    server: ServerId,
    shard: ShardId,
    writes: Vec<txn::Write>,
    answer: oneshot::Receiver<Result<Answer, TxnError>>,
    reply: TxnReply,
}

/// A write a server acknowledged.
struct AcknowledgedWrite {
    /// The answering replica's applied index when the answer came.
    index: u64,
    commit_ts: Timestamp,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// The writes acknowledged so far, and how far each replica was checked.
#[derive(Default)]
struct AcknowledgedWrites {
    /// Shard -> its acknowledged writes, in the order the answers came.
    by_shard: BTreeMap<ShardId, Vec<AcknowledgedWrite>>,
    /// (server, shard) -> how many of the shard's writes were found in
    /// that replica (reset when the server restarts).
    checked: BTreeMap<(ServerId, ShardId), usize>,
}

/// A peer request submitted, its answer not yet back.
struct AwaitedAnswer {
    answerer: ServerId,
    then: Then,
    answer: oneshot::Receiver<Result<Answer, TxnError>>,
}

struct SteppedServer {
    /// `None` while crashed.
    event_loop: Option<EventLoop>,
    /// This server's clock, and how far it is off the simulated time.
    clock: Arc<ManualClock>,
    clock_offset_ns: i64,
    /// Messages delivered and not yet stepped.
    pending: Vec<LoopMsg>,
    /// When its loop asked to be stepped next (simulated time).
    wake_at: Duration,
    /// Its RocksDB while it runs (for the checks' reads of what it applied).
    engine: Option<Engine>,
    /// Its data directory, which outlives a crash.
    dir: tempfile::TempDir,
    /// Where snapshot files sent to it are put (in `dir`).
    snapshots: Arc<SnapshotDir>,
    /// Stopped (SIGSTOP): not stepped; what arrives waits in `pending`.
    paused: bool,
    /// Crash in the next step that writes, at this point of it.
    crash_in_step: Option<CrashPoint>,
    /// How long its writes take ([`SteppedCluster::set_write_latency`]).
    write_latency: Duration,
    /// A step's write under way (the step's first half is done, its early
    /// sends have left); the second half runs when it is done.
    writing: Option<Writing>,
}

/// A write a step handed its driver, taking simulated time.
struct Writing {
    /// The step's output, its early sends taken.
    persist: Persist,
    done_at: Duration,
}

/// Where in a step a server crashes ([`SteppedCluster::crash_in_step`]):
/// the protocol's crash points, between the halves of a step
/// (`spanserver::event_loop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the messages that may leave before the write (a leader's
    /// appends) left, before the write: followers may persist entries
    /// the crashed leader never did.
    AfterEarlySends,
    /// After the write, before anything was applied, answered or sent
    /// in reply: durable, and nobody heard.
    AfterWrite,
}

impl std::fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CrashPoint::AfterEarlySends => "after its early sends, before its write",
            CrashPoint::AfterWrite => "after its write, before applying",
        })
    }
}

/// How a server's step ended.
enum Stepped {
    Done {
        sent: Sent,
        peer_calls: Vec<PeerCall>,
        next: Next,
    },
    /// Its write takes time: the second half runs when it is done.
    Writing {
        sent: Sent,
        writing: Writing,
    },
    /// Crashed at its armed crash point, having sent `sent`.
    Crashed {
        sent: Sent,
        at: CrashPoint,
    },
}

/// A cluster of stepped servers. See the module docs.
pub struct SteppedCluster {
    pub seed: u64,
    spec: ClusterSpec,
    unsafe_testing: UnsafeTestingConfig,
    gc: GcConfig,
    rng: StdRng,
    /// The loop's Instants are `start + now`.
    start: Instant,
    /// Simulated time since the start.
    now: Duration,
    clock_start: Timestamp,
    servers: BTreeMap<ServerId, SteppedServer>,
    /// The servers' peer calls of this round, until the schedule takes them.
    peer_calls: Vec<(ServerId, PeerCall)>,
    peer_calls_made: usize,
    mail: Vec<Mail>,
    awaited: Vec<AwaitedAnswer>,
    in_flight: Vec<Envelope>,
    next_seq: u64,
    pub faults: Faults,
    /// Servers that cannot reach each other (both directions).
    partitioned: BTreeSet<(ServerId, ServerId)>,
    /// Servers whose incoming Raft messages and snapshots are held in
    /// flight (neither lost nor delivered) until [`SteppedCluster::deliver`].
    held: BTreeSet<ServerId>,
    invariants: Invariants,
    /// Requests whose answers the cluster looks at before the caller.
    watched: Vec<Watched>,
    acknowledged: AcknowledgedWrites,
    /// What happened, in order (elections, faults).
    pub trace: Vec<String>,
    /// How much of `trace` [`SteppedCluster::take_events`] has handed out.
    trace_taken: usize,
    /// Messages delivered, and a hash of each one's route and Raft
    /// header in delivery order: two runs with equal digests delivered
    /// the same messages in the same order.
    delivered: u64,
    delivery_hash: u64,
    /// Snapshots that reached their receiver.
    snapshots_delivered: u64,
    /// Crashes inside a step ([`SteppedCluster::crash_in_step`]) that
    /// happened.
    crashes_in_step: u64,
    /// (shard, snapshot index, receiver) -> how often it was delivered.
    snapshot_deliveries: BTreeMap<(ShardId, u64, ServerId), u32>,
}

/// The same snapshot delivered to the same server more often than this is
/// a resend loop (a follower that cannot use what it is sent).
const SAME_SNAPSHOT_DELIVERIES_MAX: u32 = 3;

/// Opens (or reopens) `server`'s event loop from `dir`, wired to the schedule.
fn open_event_loop(
    spec: &ClusterSpec,
    server: ServerId,
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    unsafe_testing: &UnsafeTestingConfig,
    gc: &GcConfig,
) -> (EventLoop, Engine, Arc<SnapshotDir>) {
    let identity = Identity {
        cluster_id: spec.cluster_id.clone(),
        server_id: server.0,
        layout_fingerprint: spec.layout_fingerprint(),
    };
    let engine = Engine::open(dir, &identity).expect("RocksDB opens");
    let tt = TrueTime::new(clock.clone(), EPSILON);
    let registry = Arc::new(Registry::new(
        server,
        spec.clone(),
        Arc::new(spanserver::directory::Directory::new(spec, &Default::default())),
    ));
    let snapshots = SnapshotDir::open(dir).expect("a snapshot dir");
    let event_loop = EventLoop::open(
        engine.clone(),
        registry,
        tt.clone(),
        ClockGuard::trusted_without_monitor(tt),
        raft_config(),
        gc.clone(),
        unsafe_testing,
        snapshots.clone(),
        &spanserver::raft_logger(server.0),
    )
    .expect("the store opens");
    (event_loop, engine, snapshots)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// Raft timing for stepped runs: short ticks, pinned election timeouts,
/// and logs compacted often (every few seconds of a run), so a replica
/// that was down or cut off for a while catches up by snapshot.
fn raft_config() -> RaftConfig {
    RaftConfig {
        tick_ms: 10,
        election_ticks: 10,
        election_ticks_max: 11,
        heartbeat_ticks: 2,
        close_timestamp_ms: 50,
        log_compact_entries: LOG_COMPACT_ENTRIES,
        log_retain_entries: 20,
        ..RaftConfig::default()
    }
}

/// Stepped replicas compact their logs once they hold this many applied
/// entries (a leader closes a timestamp every 50 ms: about 20 entries a
/// second without writes).
pub const LOG_COMPACT_ENTRIES: u64 = 100;

/// The thread's monotonic clock is the real one again once a cluster is
/// gone (`spanserver::shard::lease::simulate_now`).
impl Drop for SteppedCluster {
    fn drop(&mut self) {
        spanserver::shard::lease::simulate_now(None);
    }
}

impl SteppedCluster {
    /// `servers` servers, `shards` shards of replication 3 (the static
    /// layout), all driven by `seed`.
    pub fn new(seed: u64, servers: u64, shards: usize) -> SteppedCluster {
        SteppedCluster::with(seed, Setup { servers, shards, ..Setup::default() })
    }

    /// The cluster `setup` describes, driven by `seed`.
    pub fn with(seed: u64, setup: Setup) -> SteppedCluster {
        let Setup { servers, shards, replication, clock_skew_max, unsafe_testing, gc } = setup;
        let split_points = (1..shards).map(|i| format!("k{i:04}")).collect();
        let spec = ClusterSpec {
            cluster_id: format!("stepped-{seed}"),
            replication,
            split_points,
            servers: (1..=servers)
                .map(|i| ServerSpec { id: ServerId(i), addr: format!("127.0.0.1:{}", 1000 + i) })
                .collect(),
            peer_secret: "s".repeat(meta::cluster::PEER_SECRET_CHARS_MIN),
        };
        spec.validate().expect("a valid stepped cluster");
        let clock_start = Timestamp::from_nanos(1_767_225_600_000_000_000);
        let mut rng = StdRng::seed_from_u64(seed);
        let tick = raft_config().tick();
        let mut cluster_servers = BTreeMap::new();
        for s in &spec.servers {
            let dir = tempfile::tempdir().expect("a temp dir");
            let skew_ns = clock_skew_max.as_nanos() as i64;
            let clock_offset_ns = if skew_ns == 0 { 0 } else { rng.random_range(-skew_ns..=skew_ns) };
            let clock = Arc::new(ManualClock::new(clock_start));
            let (event_loop, engine, snapshots) =
                open_event_loop(&spec, s.id, dir.path(), &clock, &unsafe_testing, &gc);
            // A seeded phase: servers tick at different instants.
            let phase = Duration::from_micros(rng.random_range(0..tick.as_micros() as u64));
            cluster_servers.insert(
                s.id,
                SteppedServer {
                    event_loop: Some(event_loop),
                    clock,
                    clock_offset_ns,
                    pending: Vec::new(),
                    wake_at: phase,
                    engine: Some(engine),
                    dir,
                    snapshots,
                    paused: false,
                    crash_in_step: None,
                    write_latency: Duration::ZERO,
                    writing: None,
                },
            );
        }
        let start = Instant::now();
        spanserver::shard::lease::simulate_now(Some(start));
        SteppedCluster {
            seed,
            spec,
            unsafe_testing,
            gc,
            rng,
            start,
            now: Duration::ZERO,
            clock_start,
            servers: cluster_servers,
            peer_calls: Vec::new(),
            peer_calls_made: 0,
            mail: Vec::new(),
            awaited: Vec::new(),
            in_flight: Vec::new(),
            next_seq: 0,
            faults: Faults::default(),
            partitioned: BTreeSet::new(),
            held: BTreeSet::new(),
            invariants: Invariants::default(),
            watched: Vec::new(),
            acknowledged: AcknowledgedWrites::default(),
            trace: Vec::new(),
            trace_taken: 0,
            delivered: 0,
            delivery_hash: FNV_OFFSET,
            snapshots_delivered: 0,
            crashes_in_step: 0,
            snapshot_deliveries: BTreeMap::new(),
        }
    }

    /// Simulated time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Stops `server` at once, as a killed process: its in-memory state is
    /// gone (what it wrote to RocksDB stays), messages to it are lost.
    pub fn crash(&mut self, server: ServerId) {
        self.crash_now(server, "");
    }

    /// Arms a crash of `server` in its next step that writes, at `at`
    /// (what it sent before that point is on its way; nothing after).
    pub fn crash_in_step(&mut self, server: ServerId, at: CrashPoint) {
        let s = self.servers.get_mut(&server).expect("a server of the cluster");
        if s.event_loop.is_some() {
            s.crash_in_step = Some(at);
        }
    }

    fn crash_now(&mut self, server: ServerId, how: &str) {
        let s = self.servers.get_mut(&server).expect("a server of the cluster");
        s.event_loop = None;
        s.engine = None;
        s.pending.clear();
        s.paused = false;
        s.crash_in_step = None;
        s.writing = None;
        self.trace.push(format!("{:?} crash {server}{how}", self.now));
    }

    /// Starts a crashed `server` again from its data directory.
    pub fn restart(&mut self, server: ServerId) {
        if self.servers[&server].crash_in_step.is_some() {
            // Armed, and it has not written since: it crashes now.
            self.crash(server);
        }
        let s = self.servers.get_mut(&server).expect("a server of the cluster");
        assert!(s.event_loop.is_none(), "{server} is running");
        let (event_loop, engine, snapshots) =
            open_event_loop(&self.spec, server, s.dir.path(), &s.clock, &self.unsafe_testing, &self.gc);
        s.event_loop = Some(event_loop);
        s.engine = Some(engine);
        s.snapshots = snapshots;
        s.wake_at = self.now;
        self.invariants.restarted(server);
        // Everything acknowledged must be found again after the recovery.
        self.acknowledged.checked.retain(|(s, _), _| *s != server);
        self.trace.push(format!("{:?} restart {server}", self.now));
    }

    /// Stops stepping `server`, as SIGSTOP does: it keeps its memory, and
    /// what is sent to it waits (as in its sockets) until [`Self::resume`].
    pub fn pause(&mut self, server: ServerId) {
        self.servers.get_mut(&server).expect("a server of the cluster").paused = true;
        self.trace.push(format!("{:?} pause {server}", self.now));
    }

    pub fn resume(&mut self, server: ServerId) {
        let s = self.servers.get_mut(&server).expect("a server of the cluster");
        s.paused = false;
        s.wake_at = s.wake_at.min(self.now);
        self.trace.push(format!("{:?} resume {server}", self.now));
    }

    /// Makes each of `server`'s writes take `latency` of simulated time (a
    /// slow disk): the first half of a step runs and its early sends leave
    /// (a leader's appends), then the server waits for its write, taking
    /// no input, and the second half (apply, answer, publish) runs when
    /// the write is done. Zero (the default): a step is instantaneous.
    pub fn set_write_latency(&mut self, server: ServerId, latency: Duration) {
        self.servers.get_mut(&server).expect("a server of the cluster").write_latency = latency;
        self.trace.push(format!("{:?} write latency {server} {latency:?}", self.now));
    }

    /// Steps `server`'s clock to `offset_ns` off the simulated true time
    /// (the clock nemesis' jump; within epsilon TrueTime still holds).
    pub fn set_clock_offset(&mut self, server: ServerId, offset_ns: i64) {
        self.servers.get_mut(&server).expect("a server of the cluster").clock_offset_ns = offset_ns;
        self.trace.push(format!("{:?} clock {server} {offset_ns:+} ns", self.now));
    }

    /// How far `server`'s clock is off the simulated true time.
    pub fn clock_offset(&self, server: ServerId) -> i64 {
        self.servers[&server].clock_offset_ns
    }

    /// Asks `shard`'s leader of the moment to hand its leadership to the
    /// replica on `to` (what a server that distrusts its clock does).
    pub fn transfer_leader(&mut self, shard: ShardId, to: ServerId) {
        let Some(leader) = self.leader(shard).filter(|l| self.is_up(*l)) else { return };
        let s = self.servers.get_mut(&leader).expect("a server of the cluster");
        s.pending.push(LoopMsg::TransferLeader { shard, to, only_if_idle: false, drain: Duration::ZERO });
        self.trace.push(format!("{:?} transfer {shard} from {leader} to {to}", self.now));
    }

    /// The cluster's servers.
    pub fn server_ids(&self) -> Vec<ServerId> {
        self.servers.keys().copied().collect()
    }

    /// Whether `server` is running (not crashed; it may be paused).
    pub fn is_up(&self, server: ServerId) -> bool {
        self.servers.get(&server).is_some_and(|s| s.event_loop.is_some())
    }

    /// Asks `server`'s replica of `shard` to confirm its leadership and
    /// apply what was committed, as a linearizable read does first
    /// (`requests.rs`): answered with its safe time once the read may
    /// look at the data.
    pub fn read_index(
        &mut self,
        server: ServerId,
        shard: ShardId,
    ) -> oneshot::Receiver<spanserver::error::Result<Timestamp>> {
        let (reply, answer) = oneshot::channel();
        let s = self.servers.get_mut(&server).expect("a server of the cluster");
        if s.event_loop.is_some() {
            s.pending.push(LoopMsg::ReadIndex { shard, reply });
        }
        answer
    }

    /// Cuts `a` and `b` apart (both directions) until [`Self::heal`].
    pub fn partition(&mut self, a: ServerId, b: ServerId) {
        self.partitioned.insert((a.min(b), a.max(b)));
        self.trace.push(format!("{:?} partition {a} {b}", self.now));
    }

    pub fn heal(&mut self) {
        self.partitioned.clear();
        self.trace.push(format!("{:?} heal", self.now));
    }

    /// Holds the Raft messages and snapshots on their way to `server`
    /// (and those sent to it later): it runs, ticks and sends, but hears
    /// nothing until [`SteppedCluster::deliver`]. Unlike a partition,
    /// nothing is lost; unlike a pause, the server keeps running.
    pub fn hold(&mut self, server: ServerId) {
        self.held.insert(server);
        self.trace.push(format!("{:?} hold {server}", self.now));
    }

    /// Delivers what was held for `server` at the next step, in the order
    /// it would have arrived, and stops holding; returns how many
    /// messages.
    pub fn deliver(&mut self, server: ServerId) -> usize {
        self.held.remove(&server);
        let mut n = 0;
        for e in self.in_flight.iter_mut().filter(|e| e.to == server) {
            e.deliver_at = e.deliver_at.min(self.now);
            n += 1;
        }
        self.trace.push(format!("{:?} deliver {server}: {n} messages", self.now));
        n
    }

    /// Hands `input` to `shard`'s replica on `server` at the next step;
    /// the answer arrives on the returned channel.
    ///
    /// The answers to plain writes and commits pass through the cluster
    /// first: it notes what was acknowledged, to check it stays.
    pub fn submit(
        &mut self,
        server: ServerId,
        shard: ShardId,
        input: txn::Input,
    ) -> tokio::sync::oneshot::Receiver<Result<txn::Answer, txn::TxnError>> {
        let (reply, answer): (TxnReply, _) = tokio::sync::oneshot::channel();
        let Some(s) = self.servers.get_mut(&server).filter(|s| s.event_loop.is_some()) else { return answer };
        let writes = match &input {
            Input::Write { writes, .. } | Input::Commit { writes, .. } => Some(writes.clone()),
            _ => None,
        };
        match writes {
            Some(writes) => {
                let (from_loop, loop_answer) = tokio::sync::oneshot::channel();
                s.pending.push(LoopMsg::Txn { shard, input, reply: Some(from_loop) });
                self.watched.push(Watched { server, shard, writes, answer: loop_answer, reply });
            }
            None => s.pending.push(LoopMsg::Txn { shard, input, reply: Some(reply) }),
        }
        answer
    }

    /// Hands the watched answers that came to their callers, noting the
    /// writes acknowledged (at the answering replica's applied index,
    /// which is at or past the write's entry).
    fn take_watched(&mut self) {
        for mut w in std::mem::take(&mut self.watched) {
            let answer = match w.answer.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {
                    self.watched.push(w);
                    continue;
                }
                Err(oneshot::error::TryRecvError::Closed) => continue,
                Ok(answer) => answer,
            };
            if let Ok(Answer::Committed { commit_ts, applied: true }) = &answer {
                let index = self.raft_state(w.server, w.shard).map_or(0, |st| st.applied_index);
                let acked = self.acknowledged.by_shard.entry(w.shard).or_default();
                for write in w.writes {
                    acked.push(AcknowledgedWrite { index, commit_ts: *commit_ts, key: write.key, value: write.value });
                }
            }
            let _ = w.reply.send(answer);
        }
    }

    /// How many writes the servers acknowledged so far.
    pub fn writes_acknowledged(&self) -> usize {
        self.acknowledged.by_shard.values().map(Vec::len).sum()
    }

    /// Every acknowledged write is in every replica that applied past it,
    /// and again after a replica restarts (checked as its applied index
    /// passes each one, in the order they were acknowledged).
    fn check_acknowledged(&mut self, server: ServerId, states: &[RaftState]) -> Result<(), String> {
        let Some(engine) = self.servers[&server].engine.as_ref() else { return Ok(()) };
        let reader = Reader::new(engine);
        let descriptors = self.servers[&server].event_loop.as_ref().map(EventLoop::descriptors).unwrap_or_default();
        for st in states {
            let Some(acked) = self.acknowledged.by_shard.get(&st.shard) else { continue };
            let here = descriptors.iter().find(|d| d.shard_id == st.shard);
            let checked = self.acknowledged.checked.entry((server, st.shard)).or_default();
            while let Some(w) = acked.get(*checked).filter(|w| w.index <= st.applied_index) {
                // A key a split moved away is the new shard's to hold: on a
                // server without an initialized replica of it (one that
                // skipped the split, waiting for its snapshot), the check
                // waits until there is one.
                let moved = here.is_some_and(|d| !d.contains(&w.key));
                if moved && !descriptors.iter().any(|d| d.contains(&w.key)) {
                    break;
                }
                let found = reader.get_version(&w.key, w.commit_ts).map_err(|e| e.to_string())?;
                let collected = || -> Result<bool, String> {
                    // Garbage collection may remove it, once a newer
                    // version of the key is at or below the watermark of
                    // the replica holding it here.
                    let Some(holder) = descriptors.iter().find(|d| d.contains(&w.key)) else { return Ok(false) };
                    let record =
                        reader.raft_record(holder.shard_id, RaftKey::GcWatermark).map_err(|e| e.to_string())?;
                    let watermark = record.and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
                    let newer =
                        reader.get_version(&w.key, Timestamp::from_nanos(watermark)).map_err(|e| e.to_string())?;
                    Ok(newer.is_some_and(|(ts, _)| ts > w.commit_ts))
                };
                if found.as_ref().map(|(ts, v)| (*ts, v)) != Some((w.commit_ts, &w.value)) && !collected()? {
                    return Err(format!(
                        "{server} applied {} to index {} but lacks the write of {:?} at {} acknowledged at index {}: it has {found:?}",
                        st.shard,
                        st.applied_index,
                        String::from_utf8_lossy(&w.key),
                        w.commit_ts,
                        w.index
                    ));
                }
                *checked += 1;
            }
        }
        Ok(())
    }

    /// Submits `input` to `shard`'s leader of the moment and runs the
    /// cluster until the answer comes or `within` passes (what a client
    /// does over gRPC, without the retries).
    pub fn call(&mut self, shard: ShardId, input: Input, within: Duration) -> Result<Answer, String> {
        let leader = self.leader(shard).filter(|l| self.is_up(*l)).ok_or_else(|| format!("no leader of {shard}"))?;
        let mut answer = self.submit(leader, shard, input);
        let deadline = self.now + within;
        while self.now < deadline {
            let until = self.now + Duration::from_millis(1);
            self.run_until(until);
            match answer.try_recv() {
                Ok(result) => return result.map_err(|e| e.to_string()),
                Err(oneshot::error::TryRecvError::Closed) => return Err("the request was dropped".into()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
        Err(format!("no answer within {within:?}"))
    }

    /// The server whose replica of `shard` leads in the highest term seen.
    pub fn leader(&self, shard: ShardId) -> Option<ServerId> {
        self.invariants.leader(shard)
    }

    /// Like [`Self::leader`], with the term.
    pub fn leader_term(&self, shard: ShardId) -> Option<(ServerId, u64)> {
        self.invariants.leader_term(shard)
    }

    /// The shards of the static layout, in key order.
    pub fn shard_ids(&self) -> Vec<ShardId> {
        self.descriptors().keys().copied().collect()
    }

    /// The shard whose range holds `key` (by the newest descriptors).
    pub fn shard_of(&self, key: &[u8]) -> ShardId {
        self.descriptors()
            .into_values()
            .filter(|d| d.contains(key))
            .max_by_key(|d| d.epoch.range_ver)
            .map(|d| d.shard_id)
            .expect("the shards cover every key")
    }

    /// Each shard's newest descriptor among the running servers (the
    /// static layout's for a shard no running server hosts).
    pub fn descriptors(&self) -> BTreeMap<ShardId, ShardDescriptor> {
        let mut out: BTreeMap<ShardId, ShardDescriptor> =
            self.spec.shards().iter().map(|l| (l.shard_id, l.descriptor())).collect();
        for d in self.servers.values().filter_map(|s| s.event_loop.as_ref()).flat_map(EventLoop::descriptors) {
            let newer = out.get(&d.shard_id).is_none_or(|old| d.epoch.is_newer_than(&old.epoch));
            if newer {
                out.insert(d.shard_id, d);
            }
        }
        out
    }

    /// `server`'s descriptor of `shard`, if it is up and hosts one.
    pub fn descriptor_on(&self, server: ServerId, shard: ShardId) -> Option<ShardDescriptor> {
        let event_loop = self.servers.get(&server)?.event_loop.as_ref()?;
        event_loop.descriptors().into_iter().find(|d| d.shard_id == shard)
    }

    /// Adds a line to the trace (a driver's own event, such as a split
    /// it asked for).
    pub fn note(&mut self, event: String) {
        self.trace.push(format!("{:?} {event}", self.now));
    }

    /// Splits `shard` at `key` through its leader, with the child's ids
    /// given, running until the answer comes (or `within` passes).
    pub fn split(
        &mut self,
        shard: ShardId,
        key: &[u8],
        child: ShardId,
        child_replicas: Vec<ReplicaId>,
        within: Duration,
    ) -> Result<(ShardDescriptor, ShardDescriptor), String> {
        let mut answer = self.submit_split(shard, key, child, child_replicas)?;
        let deadline = self.now + within;
        while self.now < deadline {
            let until = self.now + Duration::from_millis(1);
            self.run_until(until);
            match answer.try_recv() {
                Ok(result) => return result.map_err(|e| e.to_string()),
                Err(oneshot::error::TryRecvError::Closed) => return Err("the split was dropped".into()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
        Err(format!("no answer within {within:?}"))
    }

    /// Hands a split of `shard` at `key` to its leader at the next step,
    /// as [`Self::split`] does, without running: what is submitted next
    /// reaches the leader after it (and is admitted before it applies).
    pub fn submit_split(
        &mut self,
        shard: ShardId,
        key: &[u8],
        child: ShardId,
        child_replicas: Vec<ReplicaId>,
    ) -> Result<oneshot::Receiver<spanserver::error::Result<(ShardDescriptor, ShardDescriptor)>>, String> {
        let leader = self.leader(shard).filter(|l| self.is_up(*l)).ok_or_else(|| format!("no leader of {shard}"))?;
        let range_ver = self.descriptors().get(&shard).map(|d| d.epoch.range_ver).ok_or("no such shard")?;
        let split = Split { split_key: key.to_vec(), range_ver, child_shard: child, child_replicas };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let s = self.servers.get_mut(&leader).expect("a server");
        s.pending.push(LoopMsg::Split { shard, split, reply });
        Ok(answer)
    }

    /// Hands `change` of `shard`'s membership, if the shard is still at
    /// the membership version `from` (its descriptor then), to its leader
    /// at the next step; the answer (the new descriptor) arrives on the
    /// returned channel.
    pub fn submit_membership(
        &mut self,
        from: &ShardDescriptor,
        change: MembershipChange,
    ) -> Result<oneshot::Receiver<spanserver::error::Result<ShardDescriptor>>, String> {
        let shard = from.shard_id;
        let leader = self.leader(shard).filter(|l| self.is_up(*l)).ok_or_else(|| format!("no leader of {shard}"))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let s = self.servers.get_mut(&leader).expect("a server");
        s.pending.push(LoopMsg::ChangeReplicas { shard, conf_ver: from.epoch.conf_ver, change, reply });
        self.trace.push(format!("{:?} change {shard} at {}", self.now, from.epoch));
        Ok(answer)
    }

    /// The trace's entries since the last call, without their times.
    pub fn take_events(&mut self) -> Vec<String> {
        let new = self.trace[self.trace_taken..]
            .iter()
            .map(|e| e.split_once(' ').map_or(e.clone(), |(_, event)| event.to_string()))
            .collect();
        self.trace_taken = self.trace.len();
        new
    }

    /// Runs until simulated time `until`; panics, naming the seed, on a
    /// broken invariant.
    pub fn run_until(&mut self, until: Duration) {
        while self.now < until {
            self.run_one(until);
        }
    }

    /// Delivers what is due, steps the servers that have input or are
    /// due, checks the invariants, then moves time to the next event.
    fn run_one(&mut self, until: Duration) {
        let now_ns = self.clock_start.as_nanos() as i64 + self.now.as_nanos() as i64;
        for s in self.servers.values() {
            s.clock.set(Timestamp::from_nanos((now_ns + s.clock_offset_ns) as u64));
        }
        // Deliver, in (due time, send order), except to held servers.
        let held = &self.held;
        let (due, waiting): (Vec<Envelope>, Vec<Envelope>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|e| e.deliver_at <= self.now && !held.contains(&e.to));
        self.in_flight = waiting;
        let mut due = due;
        due.sort_by_key(|e| (e.deliver_at, e.seq));
        for e in due {
            let m = &e.message;
            for word in
                [e.from.0, e.to.0, e.shard.0, m.msg_type as u64, m.term, m.index, m.commit, m.entries.len() as u64]
            {
                self.delivery_hash = (self.delivery_hash ^ word).wrapping_mul(FNV_PRIME);
            }
            self.delivered += 1;
            let up = self.servers.get(&e.to).is_some_and(|s| s.event_loop.is_some());
            match e.kind {
                EnvelopeKind::Snapshot { file } => self.deliver_snapshot(e.from, e.to, e.shard, e.message, file, up),
                EnvelopeKind::Raft if up => {
                    let s = self.servers.get_mut(&e.to).expect("a server");
                    s.pending.push(LoopMsg::Raft { from: e.from, messages: vec![(e.shard, e.message)] });
                }
                EnvelopeKind::Raft => {}
            }
        }
        self.deliver_mail();
        let instant = self.start + self.now;
        let ids: Vec<ServerId> = self.servers.keys().copied().collect();
        for id in ids {
            let s = self.servers.get_mut(&id).expect("a server");
            let Some(event_loop) = s.event_loop.as_mut() else { continue };
            let write_done = s.writing.as_ref().map(|w| w.done_at <= self.now);
            if s.paused
                || write_done == Some(false)
                || (write_done.is_none() && s.pending.is_empty() && s.wake_at > self.now)
            {
                continue;
            }
            let resumed = s.writing.take();
            let messages = if resumed.is_some() { Vec::new() } else { std::mem::take(&mut s.pending) };
            let engine = s.engine.as_ref().expect("a running server's engine");
            let crash_point = s.crash_in_step;
            let done_at = (!s.write_latency.is_zero()).then_some(self.now + s.write_latency);
            // What the server's driver does (`spanserver::driver`), with
            // the crash points between; the server's own assertions are
            // checks too: report the seed.
            let stepped = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut sent = Sent::default();
                let Persist { batch, sync, .. } = match resumed {
                    Some(w) => w.persist,
                    None => {
                        let mut persist = event_loop.step(instant, messages);
                        sent.add(id, std::mem::take(&mut persist.send_first));
                        match done_at {
                            Some(done_at) if !persist.batch.is_empty() => {
                                return Stepped::Writing { sent, writing: Writing { persist, done_at } };
                            }
                            _ => persist,
                        }
                    }
                };
                let crashes = crash_point.filter(|_| !batch.is_empty());
                if let Some(at @ CrashPoint::AfterEarlySends) = crashes {
                    return Stepped::Crashed { sent, at };
                }
                if !batch.is_empty() {
                    engine.write_or_stop(batch, sync);
                }
                if let Some(at @ CrashPoint::AfterWrite) = crashes {
                    return Stepped::Crashed { sent, at };
                }
                let effects = event_loop.persisted();
                sent.add(id, effects.send);
                for c in effects.replies {
                    c.send();
                }
                Stepped::Done { sent, peer_calls: effects.peer_calls, next: effects.next }
            }));
            match stepped {
                Ok(Stepped::Done { sent, peer_calls, next }) => {
                    s.wake_at = match next {
                        Next::WakeAt(at) => at.saturating_duration_since(self.start),
                        Next::Stopped => Duration::MAX,
                    };
                    self.take_sent(sent);
                    self.peer_calls.extend(peer_calls.into_iter().map(|call| (id, call)));
                }
                Ok(Stepped::Writing { sent, writing }) => {
                    s.writing = Some(writing);
                    self.take_sent(sent);
                }
                Ok(Stepped::Crashed { sent, at }) => {
                    self.take_sent(sent);
                    self.crashes_in_step += 1;
                    self.crash_now(id, &format!(" {at}"));
                    continue;
                }
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("a panic");
                    panic!(
                        "seed {}: {id} failed an assertion in its step: {what} (at {:?})\n{}",
                        self.seed,
                        self.now,
                        self.trace.join("\n")
                    );
                }
            }
            // Whether raft-rs finds a snapshot built at its next ask must
            // not depend on the build thread's speed.
            if let Some(event_loop) = self.servers[&id].event_loop.as_ref() {
                event_loop.wait_for_snapshot_builds();
            }
            self.take_watched();
            self.check(id);
        }
        if let Err(violation) = self.check_lease_reads() {
            panic!("seed {}: {violation} (at {:?})\n{}", self.seed, self.now, self.trace.join("\n"))
        }
        self.take_peer_calls();
        self.take_answers();
        // Next event: a due server, a message, or the end.
        let next_wake = self
            .servers
            .values()
            .filter(|s| s.event_loop.is_some() && !s.paused)
            .map(|s| s.writing.as_ref().map_or(s.wake_at, |w| w.done_at))
            .min()
            .unwrap_or(until);
        let next_delivery = self
            .in_flight
            .iter()
            .filter(|e| !self.held.contains(&e.to))
            .map(|e| e.deliver_at)
            .chain(self.mail.iter().map(|m| m.deliver_at))
            .min()
            .unwrap_or(until);
        let pending = self.servers.values().any(|s| !s.pending.is_empty() && !s.paused && s.writing.is_none());
        let next = if pending { self.now } else { next_wake.min(next_delivery).min(until) };
        // Time always moves, by at least a microsecond.
        self.now = next.max(self.now + Duration::from_micros(1));
        // What the servers read as the monotonic clock outside the loop's
        // instants (their lease checks) is simulated time too.
        spanserver::shard::lease::simulate_now(Some(self.start + self.now));
    }

    /// Puts what a step handed over on the schedule: each message lost,
    /// or delayed by a seeded amount.
    fn take_sent(&mut self, sent: Sent) {
        for (from, to, shard, message) in sent.messages {
            let cut = self.partitioned.contains(&(from.min(to), from.max(to)));
            let lost = self.rng.random_range(0..100) < self.faults.loss_percent;
            let delay = self.delay();
            if cut || lost {
                continue;
            }
            self.put_in_flight(Envelope {
                deliver_at: self.now + delay,
                seq: 0,
                from,
                to,
                shard,
                message,
                kind: EnvelopeKind::Raft,
            });
        }
        for (from, send) in sent.snapshots {
            self.schedule_snapshot(from, send);
        }
    }

    /// Puts a snapshot on the schedule like a message, its data file
    /// copied into the receiver's snapshot directory now (the sender may
    /// replace its file before delivery); one that is lost, cut off or
    /// sent to a server that is down fails at once, as a broken stream.
    fn schedule_snapshot(&mut self, from: ServerId, send: SnapshotSend) {
        let SnapshotSend { to, shard, message, file } = send;
        let failed = |c: &mut SteppedCluster| c.report_snapshot_sent(from, shard, &message, false);
        if !self.arrives(from, to) {
            return failed(self);
        }
        let receiver = &self.servers[&to].snapshots;
        let copied = match file {
            Some(f) => match receiver.receive_copy(shard, &f.path) {
                Ok(path) => Some(path),
                Err(e) => {
                    self.trace.push(format!("{:?} snapshot {shard} {from} -> {to} failed: {e}", self.now));
                    return failed(self);
                }
            },
            None => None,
        };
        let delay = self.delay();
        let kind = EnvelopeKind::Snapshot { file: copied };
        self.put_in_flight(Envelope { deliver_at: self.now + delay, seq: 0, from, to, shard, message, kind });
    }

    /// Puts `e` on its way, numbered in send order (its `seq`).
    fn put_in_flight(&mut self, mut e: Envelope) {
        self.next_seq += 1;
        e.seq = self.next_seq;
        self.in_flight.push(e);
    }

    /// Hands a snapshot that reached its receiver in (if it is up) and
    /// tells the sender how the send went.
    fn deliver_snapshot(
        &mut self,
        from: ServerId,
        to: ServerId,
        shard: ShardId,
        message: RaftMessage,
        file: Option<PathBuf>,
        up: bool,
    ) {
        self.report_snapshot_sent(from, shard, &message, up);
        if !up {
            if let Some(path) = file {
                let _ = std::fs::remove_file(path);
            }
            return;
        }
        let index = message.snapshot.as_ref().and_then(|s| s.metadata.as_ref()).map_or(0, |m| m.index);
        self.trace.push(format!("{:?} snapshot {shard} index {index} {from} -> {to}", self.now));
        self.snapshots_delivered += 1;
        let times = self.snapshot_deliveries.entry((shard, index, to)).or_default();
        *times += 1;
        if *times > SAME_SNAPSHOT_DELIVERIES_MAX {
            panic!(
                "seed {}: the snapshot of {shard} at index {index} reached {to} {times} times: a resend loop (at {:?})\n{}",
                self.seed,
                self.now,
                self.trace.join("\n")
            );
        }
        let s = self.servers.get_mut(&to).expect("a server");
        s.pending.push(LoopMsg::SnapshotArrived { from, shard, message, file });
    }

    /// Tells the sender of a snapshot (if it is up) whether it arrived.
    fn report_snapshot_sent(&mut self, from: ServerId, shard: ShardId, message: &RaftMessage, ok: bool) {
        if let Some(s) = self.servers.get_mut(&from).filter(|s| s.event_loop.is_some()) {
            s.pending.push(LoopMsg::SnapshotSent { shard, to: meta::ReplicaId(message.to), ok });
        }
    }

    /// How many armed crashes happened inside a step.
    pub fn crashes_in_step(&self) -> u64 {
        self.crashes_in_step
    }

    /// How many snapshots reached their receivers.
    pub fn snapshots_delivered(&self) -> u64 {
        self.snapshots_delivered
    }

    /// The invariants, after `server` stepped; a violation panics with
    /// the seed and the trace.
    fn check(&mut self, server: ServerId) {
        let Some(event_loop) = self.servers[&server].event_loop.as_ref() else { return };
        let states = event_loop.raft_states();
        let mut observed = Vec::new();
        for st in &states {
            // Entries before the log's first were compacted away or came
            // in a snapshot: they were compared when applied elsewhere.
            let from = (self.invariants.applied_checked(server, st.shard, st.replica) + 1).max(st.first_log_index);
            let entries = event_loop.log_entries(st.shard, from, st.applied_index + 1);
            observed.push(Observed { state: *st, first_index: from, entries });
        }
        let checked = self.invariants.observe(server, &observed).and_then(|events| {
            for e in events {
                self.trace.push(format!("{:?} {e}", self.now));
            }
            self.check_acknowledged(server, &states)
        });
        if let Err(violation) = checked {
            panic!("seed {}: {violation} (at {:?})\n{}", self.seed, self.now, self.trace.join("\n"))
        }
    }

    /// A handler reading from a lease now reads at the leader's published
    /// time: no replica of the shard may have published a newer one (it
    /// could serve what the lease read would miss). Paused servers run no
    /// handlers, but what they published counts.
    fn check_lease_reads(&self) -> Result<(), String> {
        let now = self.start + self.now;
        let states: Vec<(ServerId, bool, RaftState)> = self
            .servers
            .iter()
            .filter_map(|(id, s)| Some((*id, s.paused, s.event_loop.as_ref()?)))
            .flat_map(|(id, paused, l)| l.raft_states().into_iter().map(move |st| (id, paused, st)))
            .collect();
        for (leader, _, lease) in states
            .iter()
            .filter(|(_, paused, st)| !paused && st.leader && st.lease_reads_until.is_some_and(|until| now < until))
        {
            let ahead = states
                .iter()
                .find(|(_, _, st)| st.shard == lease.shard && st.published_max_applied > lease.published_max_applied);
            if let Some((server, _, st)) = ahead {
                return Err(format!(
                    "a lease read of {} at {leader} would read at {}, but {server} published {} \
                     (applied index {} there, {} at the leader)",
                    lease.shard,
                    lease.published_max_applied,
                    st.published_max_applied,
                    st.applied_index,
                    lease.applied_index
                ));
            }
        }
        Ok(())
    }

    /// The Raft state of `server`'s replica of `shard`, if it is up and
    /// hosts one.
    pub fn raft_state(&self, server: ServerId, shard: ShardId) -> Option<RaftState> {
        let event_loop = self.servers.get(&server)?.event_loop.as_ref()?;
        event_loop.raft_states().into_iter().find(|st| st.shard == shard)
    }

    /// Whether a request handler on `server` would now serve a
    /// linearizable read of `shard` from the lease, without the loop
    /// (`spanserver::registry::ReplicaProgress::lease_covers`).
    pub fn lease_reads_cover(&self, server: ServerId, shard: ShardId) -> bool {
        let now = self.start + self.now;
        self.raft_state(server, shard).is_some_and(|st| st.leader && st.lease_reads_until.is_some_and(|u| now < u))
    }

    /// Every replica's (server, shard, committed, applied), for the trace.
    pub fn progress(&self) -> Vec<(ServerId, ShardId, u64, u64)> {
        self.servers
            .iter()
            .flat_map(|(id, s)| {
                let states = s.event_loop.as_ref().map(EventLoop::raft_states).unwrap_or_default();
                states.into_iter().map(move |st| (*id, st.shard, st.committed_index, st.applied_index))
            })
            .collect()
    }

    /// How many applied log entries the invariants compare.
    pub fn entries_checked(&self) -> usize {
        self.invariants.entries_checked()
    }

    /// How many messages were delivered, and the hash of their order.
    pub fn digest(&self) -> (u64, u64) {
        (self.delivered, self.delivery_hash)
    }

    /// Peer calls the replicas made so far.
    pub fn peer_calls(&self) -> usize {
        self.peer_calls_made
    }

    /// The latest version of `key` that `server` has applied (its
    /// timestamp and value, `None` for a deletion), or `None` if it has
    /// none or `server` is down.
    pub fn latest(&self, server: ServerId, key: &[u8]) -> Option<(Timestamp, Option<Vec<u8>>)> {
        let engine = self.servers.get(&server)?.engine.as_ref()?;
        Reader::new(engine).get_version(key, Timestamp::MAX).expect("a stepped server's RocksDB reads")
    }

    /// Every version of `key` that `server` has applied, newest first
    /// (timestamp and value, `None` for a deletion); empty if it is down.
    pub fn versions(&self, server: ServerId, key: &[u8]) -> Vec<(Timestamp, Option<Vec<u8>>)> {
        let Some(engine) = self.servers.get(&server).and_then(|s| s.engine.as_ref()) else { return Vec::new() };
        let reader = Reader::new(engine);
        let mut versions = Vec::new();
        let mut at = Timestamp::MAX;
        while let Some((ts, value)) = reader.get_version(key, at).expect("a stepped server's RocksDB reads") {
            versions.push((ts, value));
            if ts == Timestamp::ZERO {
                break;
            }
            at = ts.prev();
        }
        versions
    }

    /// The simulated true time (no server's clock: theirs are off it).
    pub fn true_time(&self) -> Timestamp {
        Timestamp::from_nanos(self.clock_start.as_nanos() + self.now.as_nanos() as u64)
    }

    /// When `server`'s TrueTime will say `TT.after(ts)` (its clock minus
    /// epsilon past `ts`), in simulated time; now if it already does.
    pub fn when_after(&self, server: ServerId, ts: Timestamp) -> Duration {
        let offset = self.servers[&server].clock_offset_ns as i128;
        let due = ts.as_nanos() as i128 - self.clock_start.as_nanos() as i128 - offset + EPSILON.as_nanos() as i128 + 1;
        Duration::from_nanos(due.clamp(0, u64::MAX as i128) as u64).max(self.now)
    }

    /// A seeded network delay for one hop.
    fn delay(&mut self) -> Duration {
        let delay_us = self.faults.delay_max.as_micros() as u64;
        Duration::from_micros(if delay_us == 0 { 0 } else { self.rng.random_range(0..=delay_us) })
    }

    /// Whether a hop from `from` to `to` arrives now: not cut by a
    /// partition, not lost, and `to` is up.
    fn arrives(&mut self, from: ServerId, to: ServerId) -> bool {
        let cut = self.partitioned.contains(&(from.min(to), from.max(to)));
        let lost = self.rng.random_range(0..100) < self.faults.loss_percent;
        let up = self.servers.get(&to).is_some_and(|s| s.event_loop.is_some());
        !cut && !lost && up
    }

    fn post(&mut self, deliver_at: Duration, from: ServerId, kind: MailKind) {
        self.next_seq += 1;
        self.mail.push(Mail { deliver_at, seq: self.next_seq, from, kind });
    }

    /// Puts the replicas' new peer calls on the schedule, as `peers.rs`
    /// makes them: a decision leaves after the caller's commit-wait.
    fn take_peer_calls(&mut self) {
        let calls = std::mem::take(&mut self.peer_calls);
        self.peer_calls_made += calls.len();
        for (from, call) in calls {
            match call {
                PeerCall::Resolve { participant, txn, coordinator, patient } => {
                    let input = Input::Resolve { req: RequestId(0), txn, participant, patient };
                    let then = Then::TellParticipant { asker: from, participant, txn };
                    let at = self.now + self.delay();
                    self.post(at, from, MailKind::Request { shard: coordinator, input, then });
                }
                PeerCall::Decide { coordinator, txn, participants, outcome } => {
                    // At once, as `spanserver::peers` sends it.
                    let leaves_at = self.now;
                    for participant in participants {
                        let input = Input::Decide { req: RequestId(0), txn, outcome };
                        let then = Then::Acknowledge { teller: from, coordinator, participant, txn };
                        let at = leaves_at + self.delay();
                        self.post(at, from, MailKind::Request { shard: participant, input, then });
                    }
                }
            }
        }
    }

    /// Delivers the mail that is due: a request to its shard's leader of
    /// the moment (dropped if there is none, or the hop is lost or cut),
    /// an answer into its server's loop.
    fn deliver_mail(&mut self) {
        self.mail.sort_by_key(|m| (m.deliver_at, m.seq));
        let due = self.mail.iter().take_while(|m| m.deliver_at <= self.now).count();
        let due: Vec<Mail> = self.mail.drain(..due).collect();
        for m in due {
            match m.kind {
                MailKind::Request { shard, input, then } => {
                    let Some(to) = self.leader(shard) else { continue };
                    if self.arrives(m.from, to) {
                        let answer = self.submit(to, shard, input);
                        self.awaited.push(AwaitedAnswer { answerer: to, then, answer });
                    }
                }
                MailKind::Answer { to, shard, input } => {
                    if self.arrives(m.from, to) {
                        let s = self.servers.get_mut(&to).expect("a server of the cluster");
                        s.pending.push(LoopMsg::Txn { shard, input, reply: None });
                    }
                }
            }
        }
    }

    /// Sends back the answers to peer requests that came: an outcome to
    /// the participant that asked (a commit only after the answering
    /// server's commit-wait, as `requests.rs` holds it), a participant's
    /// done to the coordinator that told it. Errors, `Pending`, and
    /// requests whose server went down are dropped (asked again later).
    fn take_answers(&mut self) {
        let mut waiting = Vec::new();
        for mut a in std::mem::take(&mut self.awaited) {
            let answer = match a.answer.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {
                    waiting.push(a);
                    continue;
                }
                Err(oneshot::error::TryRecvError::Closed) => continue,
                Ok(answer) => answer,
            };
            match (a.then, answer) {
                (Then::TellParticipant { asker, participant, txn }, Ok(Answer::Outcome(outcome))) => {
                    let ready = match outcome {
                        Outcome::Committed(ts) => self.when_after(a.answerer, ts),
                        Outcome::Aborted => self.now,
                    };
                    let at = ready + self.delay();
                    let input = Input::Decide { req: RequestId(0), txn, outcome };
                    self.post(at, a.answerer, MailKind::Answer { to: asker, shard: participant, input });
                }
                (Then::Acknowledge { teller, coordinator, participant, txn }, Ok(_)) => {
                    let at = self.now + self.delay();
                    let input = Input::Acknowledged { txn, participant };
                    self.post(at, a.answerer, MailKind::Answer { to: teller, shard: coordinator, input });
                }
                _ => {}
            }
        }
        self.awaited = waiting;
    }
}

/// What one replica showed after a step: its Raft state and its log
/// entries `first_index..` up to its applied index, as (term, data).
#[derive(Debug, Clone)]
pub struct Observed {
    pub state: RaftState,
    pub first_index: u64,
    pub entries: Vec<(u64, Vec<u8>)>,
}

/// Raft's safety rules, checked on every observation:
/// - at most one leader per shard per term (Election Safety);
/// - a replica's committed index never goes back;
/// - every replica applies the same entry at each index (State Machine
///   Safety): the first replica to apply an index fixes its (term, data),
///   every later one must match.
#[derive(Debug, Default)]
pub struct Invariants {
    /// (shard, term) -> the server whose replica led it.
    leaders: BTreeMap<(ShardId, u64), ServerId>,
    /// (server, shard, replica) -> the committed index last seen. (A
    /// server may host a shard again after its replica there was removed:
    /// a new replica, with a new id, starting over.)
    committed: BTreeMap<(ServerId, ShardId, ReplicaId), u64>,
    /// (server, shard, replica) -> the applied index checked so far.
    applied: BTreeMap<(ServerId, ShardId, ReplicaId), u64>,
    /// (shard, index) -> the applied entry's term and data.
    log: BTreeMap<(ShardId, u64), (u64, Vec<u8>)>,
}

impl Invariants {
    /// The server that led `shard` in the highest term seen.
    pub fn leader(&self, shard: ShardId) -> Option<ServerId> {
        self.leader_term(shard).map(|(s, _)| s)
    }

    /// ... and that term.
    pub fn leader_term(&self, shard: ShardId) -> Option<(ServerId, u64)> {
        self.leaders.range((shard, 0)..=(shard, u64::MAX)).next_back().map(|((_, term), s)| (*s, *term))
    }

    /// `server` restarted: its committed index may restart lower (it is
    /// persisted lazily); what it applied is on disk and stays checked.
    pub fn restarted(&mut self, server: ServerId) {
        self.committed.retain(|(s, _, _), _| *s != server);
    }

    /// How many (shard, index) entries have been applied somewhere and
    /// compared since.
    pub fn entries_checked(&self) -> usize {
        self.log.len()
    }

    /// The applied index of `server`'s replica `replica` of `shard`
    /// checked so far.
    pub fn applied_checked(&self, server: ServerId, shard: ShardId, replica: ReplicaId) -> u64 {
        self.applied.get(&(server, shard, replica)).copied().unwrap_or(0)
    }

    /// Checks what `server` showed; returns what is new (leaders), or the
    /// rule it broke.
    pub fn observe(&mut self, server: ServerId, observed: &[Observed]) -> Result<Vec<String>, String> {
        let mut events = Vec::new();
        for o in observed {
            let st = &o.state;
            if st.leader {
                match self.leaders.get(&(st.shard, st.term)) {
                    Some(other) if *other != server => {
                        return Err(format!("two leaders of {} in term {}: {other} and {server}", st.shard, st.term))
                    }
                    Some(_) => {}
                    None => {
                        self.leaders.insert((st.shard, st.term), server);
                        events.push(format!("{} term {} leader {server}", st.shard, st.term));
                    }
                }
            }
            let seen = self.committed.entry((server, st.shard, st.replica)).or_insert(0);
            if st.committed_index < *seen {
                return Err(format!(
                    "{server}'s committed index of {} went back from {} to {}",
                    st.shard, *seen, st.committed_index
                ));
            }
            *seen = st.committed_index;
            for (offset, entry) in o.entries.iter().enumerate() {
                let index = o.first_index + offset as u64;
                match self.log.get(&(st.shard, index)) {
                    Some(first) if first != entry => {
                        return Err(format!(
                            "{server} applied a different entry at {} index {index}: term {} where another replica applied term {}",
                            st.shard, entry.0, first.0
                        ))
                    }
                    Some(_) => {}
                    None => {
                        self.log.insert((st.shard, index), entry.clone());
                    }
                }
            }
            if !o.entries.is_empty() {
                self.applied.insert((server, st.shard, st.replica), o.first_index + o.entries.len() as u64 - 1);
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meta::ReplicaId;

    fn state(shard: u64, term: u64, leader: bool, committed: u64) -> RaftState {
        RaftState {
            shard: ShardId(shard),
            replica: ReplicaId(1),
            term,
            leader,
            committed_index: committed,
            applied_index: committed,
            first_log_index: 1,
            lease_reads_until: None,
            published_max_applied: Timestamp::ZERO,
        }
    }

    fn seen(st: RaftState, first_index: u64, entries: &[(u64, &str)]) -> Observed {
        let entries = entries.iter().map(|(t, d)| (*t, d.as_bytes().to_vec())).collect();
        Observed { state: st, first_index, entries }
    }

    /// Goal: each rule can fail: a second leader in a term, a committed
    /// index that goes back, a replica applying another entry at an index
    /// are violations; a new leader in a later term, the same entries
    /// applied elsewhere, and a new replica starting over, are not.
    #[test]
    fn each_broken_rule_is_a_violation() {
        let mut inv = Invariants::default();
        inv.observe(ServerId(1), &[seen(state(1, 2, true, 3), 1, &[(1, "a"), (2, "b"), (2, "c")])]).unwrap();
        assert_eq!(inv.leader(ShardId(1)), Some(ServerId(1)));
        let e = inv.observe(ServerId(2), &[seen(state(1, 2, true, 3), 1, &[])]).unwrap_err();
        assert!(e.contains("two leaders of shard1 in term 2"), "{e}");
        inv.observe(ServerId(2), &[seen(state(1, 3, true, 3), 1, &[(1, "a"), (2, "b")])]).unwrap();
        assert_eq!(inv.leader(ShardId(1)), Some(ServerId(2)));
        let e = inv.observe(ServerId(1), &[seen(state(1, 3, false, 2), 4, &[])]).unwrap_err();
        assert!(e.contains("went back from 3 to 2"), "{e}");
        let e = inv.observe(ServerId(2), &[seen(state(1, 3, false, 3), 3, &[(3, "x")])]).unwrap_err();
        assert!(e.contains("different entry at shard1 index 3"), "{e}");
        assert_eq!(inv.applied_checked(ServerId(2), ShardId(1), ReplicaId(1)), 2);
        // A new replica of the shard on server 1 (its old one removed)
        // starts over: not a committed index going back.
        let anew = RaftState { replica: ReplicaId(9), ..state(1, 3, false, 0) };
        inv.observe(ServerId(1), &[seen(anew, 1, &[])]).unwrap();
        assert_eq!(inv.applied_checked(ServerId(1), ShardId(1), ReplicaId(9)), 0);
    }
}
