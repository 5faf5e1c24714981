//! The event loop: one thread per server drives every replica it hosts.
//!
//! ```text
//!   inputs (requests, raft messages, transport feedback)
//!      v
//!   step(now, inputs):  handle inputs ── tick every raft.tick_ms ── start
//!                       ReadIndex rounds ── each replica's Ready: stage
//!                       entries, hard states, snapshots ──> Persist
//!   driver:             send Persist.send_first; write Persist.batch
//!                       (ONE fsync for every shard: group commit)
//!   persisted():        apply, advance, answer, ready new leaders ──> Effects
//!   driver:             send Effects.send, make Effects.peer_calls, send
//!                       Effects.replies; wait for input until Effects.next
//! ```
//!
//! The loop is a state machine: time and input are arguments, and what
//! must happen outside it comes back as values. A step has two halves,
//! split at the one durable write, as etcd-raft's `Ready`/`Advance`:
//! [`EventLoop::step`]`(now, inputs) -> `[`Persist`] (what to send at
//! once and what to write), then, once the driver has written it,
//! [`EventLoop::persisted`]`() -> `[`Effects`] (Raft messages, the commit
//! protocol's peer calls, replies and when to step next). The split keeps
//! raft-rs's overlap: a leader's appends leave before its own fsync
//! (Raft thesis §10.2.1), so the disk and the network work at once. It
//! also gives a simulation the protocol's crash points: after the early
//! sends, and after the write, before anything is applied or answered.
//!
//! The server's driver (`driver.rs`) reads the clock and the inbox, writes
//! to RocksDB and hands the effects to the transport, `peers.rs` and the
//! reply channels; the stepped simulation (`tests::stepped`) puts them on
//! its seeded schedule instead. Inside the step the loop still touches
//! RocksDB, as state: reads, and the applied state's batch, which is not
//! synced (module docs of `event_loop/ready.rs`).
//! Snapshots are built on a thread of their own and paced by the step's
//! `now`; a simulation waits for a build after each step
//! ([`EventLoop::wait_for_snapshot_builds`]).
//!
//! Why one thread: raft-rs `RawNode`s are not shared, the Ready contract is
//! easiest to honour when one place orders it, and group commit (one fsync
//! for every shard's entries) needs one place that sees all of them. Request
//! handlers talk to the loop only through its inbox ([`crate::inbox`]) and
//! get answers on oneshot channels; they never block it.
//!
//! A failed RocksDB write stops the process: continuing could let this
//! replica's state diverge from the log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use raft::eraftpb::Message;
use raft::SnapshotStatus;
use rocksdb::WriteBatch;
use truetime::{Timestamp, TrueTime};

use crate::clock::ClockGuard;
use crate::config::{GcConfig, RaftConfig, UnsafeTestingConfig};
use crate::error::Error;
use crate::inbox::LoopMsg;
use crate::limits;
use crate::registry::Registry;
use crate::shard::{Completion, GcBudget, PeerCall, Replica};
use crate::storage::snapshot::{SnapshotDir, SnapshotFile};
use crate::storage::Engine;
use meta::{ReplicaId, ServerId, ShardId};

mod ready;
mod removal;

pub use removal::stray_keys;

/// Raft messages to send, by destination server.
#[derive(Default)]
pub struct Outgoing {
    pub messages: BTreeMap<ServerId, Vec<(ShardId, Message)>>,
    pub snapshots: Vec<SnapshotSend>,
}

/// A snapshot message to send with its data file (`storage/snapshot.rs`);
/// the sender reports how it went (`LoopMsg::SnapshotSent`).
pub struct SnapshotSend {
    pub to: ServerId,
    pub shard: ShardId,
    pub message: Message,
    pub file: Option<SnapshotFile>,
}

impl Outgoing {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.snapshots.is_empty()
    }
}

/// The first half of a step's output ([`EventLoop::step`]): the driver
/// sends `send_first`, writes `batch` (synced if `sync`), and only then
/// calls [`EventLoop::persisted`].
#[must_use = "the batch must be written and persisted() called"]
pub struct Persist {
    /// Messages that may leave before the write (a leader's appends).
    pub send_first: Outgoing,
    /// Every replica's new log entries, hard states and installed
    /// snapshots' Raft state, in one batch; empty if there are none.
    pub batch: WriteBatch,
    /// Whether the write must be synced (raft-rs's `must_sync`).
    pub sync: bool,
}

/// The second half of a step's output ([`EventLoop::persisted`]), for the
/// driver to carry out in any order.
#[must_use]
pub struct Effects {
    /// Raft messages that may leave now that the write is durable (votes,
    /// append responses, and what the apply produced).
    pub send: Outgoing,
    /// The replicas' requests of other shards' leaders (commit protocol).
    pub peer_calls: Vec<PeerCall>,
    /// Answers for request handlers: what they wait for is applied.
    pub replies: Vec<Completion>,
    /// When to step next.
    pub next: Next,
}

/// Outgoing Raft messages as a step collects them.
#[derive(Default)]
struct Outbox {
    outgoing: Outgoing,
    /// Snapshot messages whose data file is gone (a newer build replaced
    /// it): raft-rs must hear that they failed.
    lost_snapshots: Vec<(ShardId, ReplicaId)>,
}

impl Outbox {
    fn push(&mut self, replica: &Replica, messages: Vec<Message>) {
        for m in messages {
            let Some(server) = replica.server_of(ReplicaId(m.to)) else {
                tracing::debug!(shard = %replica.shard_id, to = m.to, "message to unknown replica dropped");
                continue;
            };
            if m.msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                match replica.snapshot_file_for(&m) {
                    Ok(file) => self.outgoing.snapshots.push(SnapshotSend {
                        to: server,
                        shard: replica.shard_id,
                        message: m,
                        file,
                    }),
                    Err(()) => self.lost_snapshots.push((replica.shard_id, ReplicaId(m.to))),
                }
            } else {
                self.outgoing.messages.entry(server).or_default().push((replica.shard_id, m));
            }
        }
    }

    fn take(&mut self) -> Outgoing {
        std::mem::take(&mut self.outgoing)
    }
}

/// The event loop's state: every replica on this server.
pub struct EventLoop {
    engine: Engine,
    registry: Arc<Registry>,
    tt: TrueTime,
    /// Closed timestamps are proposed only while the clock is trusted.
    clock: Arc<ClockGuard>,
    raft_config: RaftConfig,
    gc_config: GcConfig,
    unsafe_testing: UnsafeTestingConfig,
    /// Where replicas keep snapshot files (for replicas opened later).
    snapshots: Arc<SnapshotDir>,
    logger: slog::Logger,
    replicas: BTreeMap<ShardId, Replica>,
    outbox: Outbox,
    /// A GC round to start, set by the GC timer: (its watermark,
    /// `TT.now().latest`).
    gc_due: Option<(Timestamp, Timestamp)>,
    /// What GC steps may examine (`shard/gc.rs`, "Pacing").
    gc_budget: GcBudget,
    /// Replies collected during the step.
    completions: Vec<Completion>,
    /// Set at the first step.
    timers: Option<Timers>,
    /// Between [`EventLoop::step`] and [`EventLoop::persisted`]: the
    /// step's time and its Readies, waiting for their write.
    persisting: Option<Persisting>,
    /// A `Shutdown` came: everything waiting was answered.
    stopped: bool,
    /// The replicas opened from disk at start, and until when they do
    /// not vote ([`EventLoop::quiet_after_restart`]).
    restarted: BTreeSet<ShardId>,
    quiet_until: Option<Instant>,
}

/// What a step carries from its first half to its second.
struct Persisting {
    now: Instant,
    readies: Vec<(ShardId, raft::Ready)>,
    /// Snapshot installs whose data file is ingested once the batch is
    /// written (storage/snapshot.rs), each with the other replicas here
    /// whose reads it holds off until then (their ranges overlap it).
    installs: Vec<(ShardId, Option<PathBuf>, Vec<Arc<crate::registry::ReplicaShared>>)>,
}

enum Flow {
    Continue,
    Stop,
}

/// When the driver steps next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Step again at this instant, or as soon as a message arrives
    /// (`now` itself: there is more to do right away).
    WakeAt(Instant),
    /// The loop stopped (`Shutdown`); everything waiting was answered.
    Stopped,
}

/// One replica's Raft state ([`EventLoop::raft_states`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftState {
    pub shard: ShardId,
    pub replica: ReplicaId,
    pub term: u64,
    pub leader: bool,
    pub committed_index: u64,
    pub applied_index: u64,
    /// The first index still in the log (entries before it were
    /// compacted away or came in a snapshot).
    pub first_log_index: u64,
    /// Until when handlers may read without the loop, as last published
    /// (`ReplicaProgress::lease_covers`).
    pub lease_reads_until: Option<Instant>,
    /// The largest applied timestamp as last published: where a handler
    /// reads a linearizable read from the lease.
    pub published_max_applied: Timestamp,
}

/// When the periodic work of the loop is next due.
#[derive(Debug, Clone, Copy)]
struct Timers {
    next_tick: Instant,
    next_gc: Instant,
}

impl EventLoop {
    /// Opens every replica on this server, bootstrapping the static layout's
    /// replicas on first start.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        engine: Engine,
        registry: Arc<Registry>,
        tt: TrueTime,
        clock: Arc<ClockGuard>,
        raft_config: RaftConfig,
        gc_config: GcConfig,
        unsafe_testing: &UnsafeTestingConfig,
        snapshots: Arc<SnapshotDir>,
        logger: &slog::Logger,
    ) -> std::result::Result<EventLoop, String> {
        let records = crate::storage::mvcc::Reader::new(&engine).replica_records().map_err(|e| e.to_string())?;
        let mut shards: BTreeSet<ShardId> = records.into_iter().map(|(shard, _)| shard).collect();
        // Replicas found on disk may have answered heartbeats before.
        let restarted = shards.clone();
        if shards.is_empty() {
            shards = bootstrap_static_layout(&engine, &registry).map_err(|e| e.to_string())?;
        }
        let mut replicas = BTreeMap::new();
        for shard in shards {
            let mut replica = Replica::load(
                &engine,
                registry.clone(),
                snapshots.clone(),
                shard,
                &raft_config,
                unsafe_testing,
                logger,
            )?;
            if !restarted.contains(&shard) {
                // Bootstrapped just now: it holds no version.
                replica.set_gc_state(crate::shard::GcState::empty());
            }
            replicas.insert(shard, replica);
        }
        let mut event_loop = EventLoop {
            engine,
            registry,
            tt,
            clock,
            raft_config,
            gc_config,
            unsafe_testing: unsafe_testing.clone(),
            snapshots,
            logger: logger.clone(),
            replicas,
            outbox: Outbox::default(),
            gc_due: None,
            gc_budget: GcBudget::default(),
            completions: Vec::new(),
            timers: None,
            persisting: None,
            stopped: false,
            restarted,
            quiet_until: None,
        };
        // A destroy cut short by a crash is finished now.
        let all: Vec<ShardId> = event_loop.replicas.keys().copied().collect();
        event_loop.destroy_removed(all);
        Ok(event_loop)
    }

    /// The first half of one iteration at `now`: handle `messages` in
    /// order, then what is due (Raft ticks, GC, closed timestamps, queued
    /// reads), then take every replica's Ready and stage what it must
    /// persist (`event_loop/ready.rs`). The driver sends
    /// [`Persist::send_first`], writes [`Persist::batch`] and calls
    /// [`EventLoop::persisted`] before stepping again. Time is an
    /// argument: the loop itself never reads a clock, so a test can step
    /// it.
    pub fn step(&mut self, now: Instant, messages: Vec<LoopMsg>) -> Persist {
        assert!(self.persisting.is_none(), "step() again before persisted()");
        assert!(!self.stopped, "step() after the loop stopped");
        let tick = self.raft_config.tick();
        let timers =
            *self.timers.get_or_insert(Timers { next_tick: now + tick, next_gc: now + self.gc_config.interval() });
        self.quiet_until.get_or_insert(now + tick * self.raft_config.election_ticks as u32);
        for r in self.replicas.values_mut() {
            r.raw_node.mut_store().set_now(now);
        }
        let mut messages = messages.into_iter();
        while let Some(msg) = messages.next() {
            if let Flow::Stop = self.handle(msg, now) {
                self.stop(messages);
                self.persisting = Some(Persisting { now, readies: Vec::new(), installs: Vec::new() });
                return Persist { send_first: Outgoing::default(), batch: WriteBatch::default(), sync: false };
            }
        }
        let mut next_tick = timers.next_tick;
        if now >= next_tick {
            // A server that does not trust its clock hands the shards
            // it leads to servers that trust theirs (clock.rs).
            let hand_off_to = self.clock.hand_off_to();
            let election_timeout = tick * self.raft_config.election_ticks as u32;
            for r in self.replicas.values_mut() {
                if let Some(trusted) = &hand_off_to {
                    r.hand_off_leadership(trusted, now, election_timeout);
                }
                r.raw_node.tick();
                r.observe_role(&self.tt, &mut self.completions);
                r.maybe_leave_joint();
                r.tick_txns(&self.tt, &mut self.completions);
                r.advance_handover(Some(now), &self.tt, &mut self.completions);
                r.log_slow_requests(now);
                r.publish();
            }
            self.engine.release_idle_iterators();
            next_tick += tick;
            if next_tick < now {
                // Fell behind (a long fsync, a paused process): do not
                // fire a burst of ticks, which would look like a timeout.
                next_tick = now + tick;
            }
        }
        let mut next_gc = timers.next_gc;
        if now >= next_gc {
            let clock = self.tt.now();
            self.gc_due = Some((clock.earliest.saturating_sub(self.gc_config.retention()), clock.latest));
            next_gc = now + self.gc_config.interval();
        }
        self.timers = Some(Timers { next_tick, next_gc });
        let clock_trusted = self.clock.is_healthy();
        let close_interval = self.raft_config.close_timestamp_interval();
        for r in self.replicas.values_mut() {
            // Idle leaders close timestamps; reads waiting for safe
            // time get theirs (rate-limited).
            if clock_trusted {
                r.maybe_close_timestamp(&self.tt, now, close_interval, &mut self.completions);
            }
            r.flush_reads(now, &mut self.completions);
            // Before this step's messages leave: a transfer begun in it
            // ends handlers' lease reads before its TimeoutNow is sent,
            // and a commit index the appends carry before this replica
            // applies it ends them until it does.
            r.guard_lease_reads();
        }
        self.take_readies(now)
    }

    /// The second half of the iteration [`EventLoop::step`] began, once
    /// its [`Persist`] is written: install snapshots, apply, advance,
    /// answer, ready new leaders (`event_loop/ready.rs`), and collect the
    /// replicas' peer calls. Says when the next step is due if no message
    /// comes first.
    pub fn persisted(&mut self) -> Effects {
        let persisting = self.persisting.take().expect("persisted() without a step() before it");
        let now = persisting.now;
        if self.stopped {
            let replies = std::mem::take(&mut self.completions);
            return Effects { send: Outgoing::default(), peer_calls: Vec::new(), replies, next: Next::Stopped };
        }
        self.advance_readies(persisting);
        // The replicas' requests of other shards leave after the step
        // that made them (and after what it wrote is on disk).
        let peer_calls = self.replicas.values_mut().flat_map(|r| r.take_peer_calls()).collect();
        let next_tick = self.timers.expect("set by step()").next_tick;
        let next = if self.replicas.values().any(|r| r.raw_node.has_ready()) {
            Next::WakeAt(now)
        } else {
            Next::WakeAt(self.replicas.values().filter_map(|r| r.close_due(now)).fold(next_tick, Instant::min))
        };
        Effects { send: self.outbox.take(), peer_calls, replies: std::mem::take(&mut self.completions), next }
    }

    fn handle(&mut self, msg: LoopMsg, now: Instant) -> Flow {
        match msg {
            LoopMsg::Raft { from, messages } => {
                for (shard, m) in messages {
                    if !self.admit_for(shard, ReplicaId(m.to), from_a_leader(&m)) {
                        tracing::debug!(%shard, %from, to = m.to, "message for a replica not here (or destroyed) dropped");
                        continue;
                    }
                    if !self.replicas.contains_key(&shard) && !self.create_for(shard, from, &m) {
                        tracing::debug!(%shard, %from, "message for a shard not hosted here dropped");
                        continue;
                    }
                    if self.quiet_after_restart(shard, &m, now) {
                        tracing::debug!(%shard, %from, "vote request dropped: restarted within an election timeout");
                        continue;
                    }
                    let r = self.replicas.get_mut(&shard).expect("hosted or just created");
                    r.heard_from(ReplicaId(m.from), from);
                    if let Err(reason) = r.validate_incoming(&m) {
                        tracing::warn!(%shard, %from, "invalid raft message dropped: {reason}");
                        continue;
                    }
                    if let Err(e) = r.raw_node.step(m) {
                        tracing::debug!(%shard, %from, "raft refused a message: {e}");
                    }
                    r.observe_role(&self.tt, &mut self.completions);
                }
            }
            LoopMsg::Txn { shard, input, reply } => match self.replicas.get_mut(&shard) {
                Some(r) => r.submit(&self.tt, input, reply, &mut self.completions),
                None => {
                    if let Some(reply) = reply {
                        self.completions.push(Completion::Txn { reply, result: Err(txn::TxnError::NotLeader) });
                    }
                }
            },
            LoopMsg::ReadIndex { shard, reply } => match self.replicas.get_mut(&shard) {
                Some(r) => r.queue_read(reply, &mut self.completions),
                None => self.completions.push(Completion::Read { reply, result: Err(not_hosted(shard)) }),
            },
            LoopMsg::CloseTimestampNow { shard } => {
                if let Some(r) = self.replicas.get_mut(&shard) {
                    r.want_close();
                }
            }
            LoopMsg::SnapshotArrived { from, shard, message, file } => {
                if !self.admit_for(shard, ReplicaId(message.to), true) {
                    tracing::debug!(%shard, %from, "snapshot for a replica not here (or destroyed) dropped");
                    remove_file(file);
                    return Flow::Continue;
                }
                if !self.replicas.contains_key(&shard) {
                    self.create_for(shard, from, &message);
                }
                let Some(r) = self.replicas.get_mut(&shard) else {
                    tracing::debug!(%shard, %from, "snapshot for a shard not hosted here dropped");
                    remove_file(file);
                    return Flow::Continue;
                };
                r.heard_from(ReplicaId(message.from), from);
                let file_bytes = file.as_ref().and_then(|f| std::fs::metadata(f).ok()).map(|m| m.len());
                match r.validate_snapshot(&message, file_bytes) {
                    Ok(id) => {
                        r.snapshot_arrived(id, file);
                        if let Err(e) = r.raw_node.step(message) {
                            tracing::debug!(%shard, %from, "raft refused a snapshot: {e}");
                        }
                        r.observe_role(&self.tt, &mut self.completions);
                    }
                    Err(reason) => {
                        tracing::warn!(%shard, %from, "invalid snapshot dropped: {reason}");
                        remove_file(file);
                    }
                }
            }
            LoopMsg::SnapshotSent { shard, to, ok } => {
                if let Some(r) = self.replicas.get_mut(&shard) {
                    let status = if ok { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
                    r.raw_node.report_snapshot(to.0, status);
                }
            }
            LoopMsg::PeerUnreachable { server } => {
                for r in self.replicas.values_mut() {
                    let peers: Vec<ReplicaId> = r.replicas_on(server).collect();
                    for peer in peers {
                        r.raw_node.report_unreachable(peer.0);
                    }
                }
            }
            LoopMsg::TransferLeader { shard, to, only_if_idle, drain } => {
                if let Some(r) = self.replicas.get_mut(&shard) {
                    r.transfer_leadership(to, only_if_idle, drain, now, &self.tt, &mut self.completions);
                }
            }
            LoopMsg::DestroyStale { shard, replica, newer } => {
                let stale = self
                    .replicas
                    .get(&shard)
                    .is_some_and(|r| r.replica_id == replica && newer.is_newer_than(&r.descriptor().epoch));
                if stale {
                    self.destroy(shard, "a newer descriptor of the shard does not name it");
                }
            }
            LoopMsg::Split { shard, split, reply } => match self.replicas.get_mut(&shard) {
                Some(r) => r.propose_split(split, reply, &mut self.completions),
                None => self.completions.push(Completion::Split { reply, result: Err(not_hosted(shard)) }),
            },
            LoopMsg::ChangeReplicas { shard, conf_ver, change, reply } => match self.replicas.get_mut(&shard) {
                Some(r) => r.propose_membership(conf_ver, change, reply, &mut self.completions),
                None => self.completions.push(Completion::Membership { reply, result: Err(not_hosted(shard)) }),
            },
            LoopMsg::Shutdown => return Flow::Stop,
        }
        Flow::Continue
    }

    /// Every replica's Raft state as of now, for observers that check
    /// invariants between steps (the simulation): shard, replica, term,
    /// whether it leads, committed and applied index.
    pub fn raft_states(&self) -> Vec<RaftState> {
        self.replicas
            .values()
            .map(|r| RaftState {
                shard: r.shard_id,
                replica: r.replica_id,
                term: r.raw_node.raft.term,
                leader: r.is_leader(),
                committed_index: r.raw_node.raft.raft_log.committed,
                applied_index: r.raw_node.raft.raft_log.applied,
                first_log_index: r.raw_node.store().first_log_index(),
                lease_reads_until: r.published_progress().lease_reads_until,
                published_max_applied: r.published_time().max_applied,
            })
            .collect()
    }

    /// Every replica's descriptor as of now (for observers: the
    /// simulation's routing).
    pub fn descriptors(&self) -> Vec<meta::ShardDescriptor> {
        self.replicas.values().map(|r| r.descriptor().clone()).collect()
    }

    /// Returns once no replica is building a snapshot, for drivers that
    /// step the loop and must see the same run every time (module docs
    /// of `storage/snapshot.rs`); the server's own driver never waits.
    pub fn wait_for_snapshot_builds(&self) {
        for r in self.replicas.values() {
            r.raw_node.store().snapshot_source().wait_for_build();
        }
    }

    /// The entries `[lo, hi)` of this server's log of `shard`, as (term,
    /// data), for observers that compare replicas' logs (the simulation);
    /// empty if the shard is not hosted or the range is not in the log.
    pub fn log_entries(&self, shard: ShardId, lo: u64, hi: u64) -> Vec<(u64, Vec<u8>)> {
        let Some(r) = self.replicas.get(&shard) else { return Vec::new() };
        if lo >= hi {
            return Vec::new(); // (raft-rs panics on a reversed range)
        }
        let context = raft::GetEntriesContext::empty(false);
        match r.raw_node.raft.raft_log.slice(lo, hi, None, context) {
            Ok(entries) => entries.into_iter().map(|e| (e.term, e.data.to_vec())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// A message of `shard`'s group came, and this server has no replica
    /// of it: create one, uninitialized (no range, no voters, an empty
    /// log), if the message is a leader's to a replica (an append, a
    /// heartbeat or a snapshot), so the leader brings it up to date with
    /// a snapshot (its log starts after the split's initial index, so it
    /// always sends one). This is how a replica that skipped the split of
    /// its shard (a snapshot of the shrunk shard came instead) gets the
    /// child (TiKV creates peers the same way). Returns whether it did.
    fn create_for(&mut self, shard: ShardId, from: ServerId, m: &Message) -> bool {
        if !from_a_leader(m) || m.to == 0 || m.term == 0 || self.replicas.len() >= limits::REPLICAS_PER_SERVER_MAX {
            return false;
        }
        let mut batch = WriteBatch::default();
        Replica::bootstrap_uninitialized(&self.engine, &mut batch, shard, ReplicaId(m.to));
        self.engine.write_or_stop(batch, true);
        match Replica::load(
            &self.engine,
            self.registry.clone(),
            self.snapshots.clone(),
            shard,
            &self.raft_config,
            &self.unsafe_testing,
            &self.logger,
        ) {
            Ok(replica) => {
                tracing::info!(%shard, %from, replica = m.to, "created an uninitialized replica for its group's leader to fill");
                self.replicas.insert(shard, replica);
                true
            }
            Err(e) => crate::storage::stop_on_storage_failure(&format!("{shard}: cannot open a created replica: {e}")),
        }
    }

    /// Opens the replicas that applied splits created (their batch is
    /// written); the replica that led the split shard campaigns at once in
    /// its child's group, as the one most likely to win it.
    fn open_created(&mut self) {
        let mut created = Vec::new();
        for r in self.replicas.values_mut() {
            let children = r.take_created();
            if children.is_empty() {
                continue;
            }
            let (leading, gc) = (r.is_leader(), r.gc_state_for_child());
            created.extend(children.into_iter().map(|child| (child, leading, gc.clone())));
        }
        for (child, campaign, gc) in created {
            let opened = Replica::load(
                &self.engine,
                self.registry.clone(),
                self.snapshots.clone(),
                child,
                &self.raft_config,
                &self.unsafe_testing,
                &self.logger,
            );
            match opened {
                Ok(mut replica) => {
                    replica.set_gc_state(gc);
                    if campaign {
                        if let Err(e) = replica.raw_node.campaign() {
                            tracing::debug!(shard = %child, "the split child's campaign failed: {e}");
                        }
                    }
                    self.replicas.insert(child, replica);
                }
                // Its state was written in the batch just written: a
                // failure to read it back is a storage failure.
                Err(e) => crate::storage::stop_on_storage_failure(&format!("{child}: cannot open after a split: {e}")),
            }
        }
    }

    /// Whether `m` is a vote request a replica opened at start must not
    /// answer yet. Before the restart it may have answered a heartbeat
    /// that gave its leader a lease (`shard/lease.rs`), and raft-rs,
    /// which forgot that leader, would vote at once and let another
    /// leader be elected while the lease holds. So for one election
    /// timeout from the first step it behaves as a follower that has just
    /// heard from a leader: only a leadership transfer's campaign gets a
    /// vote. Replicas created while running (splits, new members) never
    /// answered a heartbeat before and vote at once.
    fn quiet_after_restart(&self, shard: ShardId, m: &Message, now: Instant) -> bool {
        use raft::eraftpb::MessageType::{MsgRequestPreVote, MsgRequestVote};
        matches!(m.msg_type(), MsgRequestVote | MsgRequestPreVote)
            && m.context != raft::CAMPAIGN_TRANSFER
            && self.raft_config.lease_reads
            && self.restarted.contains(&shard)
            && self.quiet_until.is_some_and(|until| now < until)
    }

    /// Stops: answers everything waiting, in the replicas and in `rest`
    /// (the messages of the step after `Shutdown`).
    fn stop(&mut self, rest: impl Iterator<Item = LoopMsg>) {
        self.stopped = true;
        let err = Error::Unavailable("server is shutting down".into());
        for r in self.replicas.values_mut() {
            r.fail_all(&err, &mut self.completions);
        }
        self.completions.extend(refuse(rest));
        tracing::debug!(server = %self.registry.server_id, "event loop stopped");
    }
}

/// Answers the requests among `messages` with `Unavailable`: for a driver
/// whose loop stopped, with what was still in its inbox.
pub fn refuse(messages: impl IntoIterator<Item = LoopMsg>) -> Vec<Completion> {
    let err = Error::Unavailable("server is shutting down".into());
    let mut out = Vec::new();
    for msg in messages {
        match msg {
            LoopMsg::Txn { reply: Some(reply), .. } => {
                out.push(Completion::Txn { reply, result: Err(txn::TxnError::Unavailable(err.to_string())) })
            }
            LoopMsg::ReadIndex { reply, .. } => out.push(Completion::Read { reply, result: Err(err.clone()) }),
            _ => {}
        }
    }
    out
}

fn remove_file(file: Option<PathBuf>) {
    if let Some(f) = file {
        let _ = std::fs::remove_file(f);
    }
}

fn not_hosted(shard: ShardId) -> Error {
    Error::WrongShard {
        shard_id: shard,
        descriptors: Vec::new(),
        reason: "no replica of this shard on this server".into(),
    }
}

/// Whether `m` is one only a leader sends to a replica: an append, a
/// heartbeat or a snapshot.
fn from_a_leader(m: &Message) -> bool {
    use raft::eraftpb::MessageType::{MsgAppend, MsgHeartbeat, MsgSnapshot};
    matches!(m.msg_type(), MsgAppend | MsgHeartbeat | MsgSnapshot)
}

/// Writes the initial state of every replica the static layout puts on
/// this server, in one synced batch.
fn bootstrap_static_layout(
    engine: &Engine,
    registry: &Registry,
) -> std::result::Result<BTreeSet<ShardId>, rocksdb::Error> {
    let mut batch = WriteBatch::default();
    let mut shards = BTreeSet::new();
    for layout in registry.cluster.shards() {
        let Some((replica_id, _)) = layout.replicas.iter().find(|(_, s)| *s == registry.server_id) else {
            continue;
        };
        Replica::bootstrap(engine, &mut batch, &layout.descriptor(), *replica_id);
        shards.insert(layout.shard_id);
    }
    engine.write(batch, true)?;
    tracing::info!(server = %registry.server_id, shards = shards.len(), "bootstrapped replicas of the static layout");
    Ok(shards)
}
