//! The event loop: one thread per server drives every replica it hosts.
//!
//! ```text
//!   inbox (requests, raft messages, transport feedback)
//!      │  drain up to INBOX_DRAIN_PER_ITERATION_MAX
//!      v
//!   step / propose / queue reads ── tick every raft.tick_ms ── start ReadIndex rounds
//!      │
//!      v
//!   ready.rs: for ALL replicas with work:
//!      1. persist: one synced RocksDB batch (entries, hard states, snapshots)
//!      2. send, advance, apply: one batch (applied writes + apply states)
//!      3. answer clients, ready new leaders, publish progress
//!   hand the replicas' peer calls (commit protocol) to PeerCalls
//! ```
//!
//! Why one thread: raft-rs `RawNode`s are not shared, the Ready contract is
//! easiest to honour when one place orders it, and group commit (one fsync
//! for every shard's entries) needs one place that sees all of them. Request
//! handlers talk to the loop only through its inbox ([`crate::inbox`]) and
//! get answers on oneshot channels; they never block it.
//!
//! The loop is [`EventLoop::step`]`(now, messages) -> Next`: time and input
//! are arguments, and what it must do next (wake at an instant) is its
//! answer; [`EventLoop::run`] is the thin driver that reads the clock and the
//! inbox. Its effects go out through interfaces a test can replace: the
//! [`Transport`] (Raft messages), [`PeerCalls`] (the commit protocol's
//! server-to-server requests) and the replies' channels. Snapshots are
//! built on a thread of their own and paced by the step's `now`; a
//! simulation waits for a build after each step
//! ([`EventLoop::wait_for_snapshot_builds`]). RocksDB writes happen inside
//! the step (the Ready contract orders them between sends and applies).
//!
//! The loop thread never blocks except on its inbox (with a timeout until
//! the next tick) and on RocksDB writes. A failed RocksDB write stops the
//! process: continuing could let this replica's state diverge from the log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
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
use crate::shard::{Completion, PeerCalls, Replica};
use crate::storage::keycode::{decode_raft_key_shard, raft_key, RaftKey};
use crate::storage::snapshot::{SnapshotDir, SnapshotFile};
use crate::storage::{Engine, CF_RAFT};
use crate::transport::Transport;
use meta::{ReplicaId, ServerId, ShardId};

mod ready;

/// Outgoing Raft messages of one iteration, by destination server.
#[derive(Default)]
struct Outbox {
    messages: BTreeMap<ServerId, Vec<(ShardId, Message)>>,
    snapshots: Vec<(ServerId, ShardId, Message, Option<SnapshotFile>)>,
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
                    Ok(file) => self.snapshots.push((server, replica.shard_id, m, file)),
                    Err(()) => self.lost_snapshots.push((replica.shard_id, ReplicaId(m.to))),
                }
            } else {
                self.messages.entry(server).or_default().push((replica.shard_id, m));
            }
        }
    }

    fn flush(&mut self, transport: &dyn Transport) {
        for (server, messages) in std::mem::take(&mut self.messages) {
            transport.send(server, messages);
        }
        for (server, shard, m, file) in self.snapshots.drain(..) {
            transport.send_snapshot(server, shard, m, file);
        }
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
    replicas: BTreeMap<ShardId, Replica>,
    inbox: Receiver<LoopMsg>,
    transport: Arc<dyn Transport>,
    outbox: Outbox,
    /// Where the replicas' commit-protocol requests go (`peers.rs`).
    peer_calls: Arc<dyn PeerCalls>,
    /// A GC watermark to start rounds at, set by the GC timer.
    gc_due: Option<Timestamp>,
    /// Replies to send once this iteration's batches are written.
    completions: Vec<Completion>,
    /// Set at the first step.
    timers: Option<Timers>,
}

enum Flow {
    Continue,
    Stop,
}

/// What the driver does after a [`EventLoop::step`].
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
        inbox: Receiver<LoopMsg>,
        transport: Arc<dyn Transport>,
        peer_calls: Arc<dyn PeerCalls>,
        snapshots: Arc<SnapshotDir>,
        logger: &slog::Logger,
    ) -> std::result::Result<EventLoop, String> {
        let mut shards = list_replicas(&engine).map_err(|e| e.to_string())?;
        if shards.is_empty() {
            shards = bootstrap_static_layout(&engine, &registry).map_err(|e| e.to_string())?;
        }
        let mut replicas = BTreeMap::new();
        for shard in shards {
            let replica = Replica::load(
                &engine,
                registry.clone(),
                snapshots.clone(),
                shard,
                &raft_config,
                unsafe_testing,
                logger,
            )?;
            replicas.insert(shard, replica);
        }
        Ok(EventLoop {
            engine,
            registry,
            tt,
            clock,
            raft_config,
            gc_config,
            replicas,
            inbox,
            transport,
            outbox: Outbox::default(),
            peer_calls,
            gc_due: None,
            completions: Vec::new(),
            timers: None,
        })
    }

    /// The driver: runs the loop on this thread until `Shutdown` (or every
    /// handle is dropped), waiting on the inbox until a message arrives or
    /// the next step is due, reading the clock, and stepping.
    pub fn run(mut self) {
        let mut wake = Instant::now();
        loop {
            let timeout = wake.saturating_duration_since(Instant::now());
            let mut messages = Vec::new();
            match self.inbox.recv_timeout(timeout) {
                Ok(msg) => messages.push(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while !messages.is_empty() && messages.len() < limits::INBOX_DRAIN_PER_ITERATION_MAX {
                match self.inbox.try_recv() {
                    Ok(msg) => messages.push(msg),
                    Err(_) => break,
                }
            }
            match self.step(Instant::now(), messages) {
                Next::Stopped => return,
                Next::WakeAt(at) => wake = at,
            }
        }
        self.stop(Vec::new());
    }

    /// One iteration of the loop at `now`: handle `messages` in order,
    /// then what is due (Raft ticks, GC, closed timestamps, queued reads),
    /// then every replica's Ready (`event_loop/ready.rs`: persist, send, apply,
    /// answer), then hand the replicas' peer calls over. Says when the
    /// next step is due if no message comes first. Time is an argument:
    /// the loop itself never reads a clock, so a test can step it.
    pub fn step(&mut self, now: Instant, messages: Vec<LoopMsg>) -> Next {
        let tick = self.raft_config.tick();
        let timers =
            *self.timers.get_or_insert(Timers { next_tick: now + tick, next_gc: now + self.gc_config.interval() });
        for r in self.replicas.values_mut() {
            r.raw_node.mut_store().set_now(now);
        }
        let mut messages = messages.into_iter();
        while let Some(msg) = messages.next() {
            if let Flow::Stop = self.handle(msg) {
                self.stop(messages.collect());
                return Next::Stopped;
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
                r.tick_txns(&self.tt, &mut self.completions);
                r.publish();
            }
            next_tick += tick;
            if next_tick < now {
                // Fell behind (a long fsync, a paused process): do not
                // fire a burst of ticks, which would look like a timeout.
                next_tick = now + tick;
            }
        }
        let mut next_gc = timers.next_gc;
        if now >= next_gc {
            self.gc_due = Some(self.tt.now().earliest.saturating_sub(self.gc_config.retention()));
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
            r.flush_reads();
        }
        self.handle_readies();
        // The replicas' requests of other shards leave after the step
        // that made them (and after what it wrote is on disk).
        for r in self.replicas.values_mut() {
            for call in r.take_peer_calls() {
                self.peer_calls.call(call);
            }
        }
        if self.replicas.values().any(|r| r.raw_node.has_ready()) {
            return Next::WakeAt(now);
        }
        Next::WakeAt(self.replicas.values().filter_map(|r| r.close_due(now)).fold(next_tick, Instant::min))
    }

    fn handle(&mut self, msg: LoopMsg) -> Flow {
        match msg {
            LoopMsg::Raft { from, messages } => {
                for (shard, m) in messages {
                    let Some(r) = self.replicas.get_mut(&shard) else {
                        tracing::debug!(%shard, %from, "message for a shard not hosted here dropped");
                        continue;
                    };
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
                        let _ = reply.send(Err(txn::TxnError::NotLeader));
                    }
                }
            },
            LoopMsg::ReadIndex { shard, reply } => match self.replicas.get_mut(&shard) {
                Some(r) => r.queue_read(reply),
                None => {
                    let _ = reply.send(Err(not_hosted(shard)));
                }
            },
            LoopMsg::CloseTimestampNow { shard } => {
                if let Some(r) = self.replicas.get_mut(&shard) {
                    r.want_close();
                }
            }
            LoopMsg::SnapshotArrived { from, shard, message, file } => {
                let Some(r) = self.replicas.get_mut(&shard) else {
                    tracing::debug!(%shard, %from, "snapshot for a shard not hosted here dropped");
                    remove_file(file);
                    return Flow::Continue;
                };
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
            LoopMsg::TransferLeader { shard, to } => {
                if let Some(r) = self.replicas.get_mut(&shard) {
                    let target = r.replicas_on(to).next();
                    if let Some(target) = target.filter(|t| r.is_leader() && *t != r.replica_id) {
                        r.raw_node.transfer_leader(target.0);
                    }
                }
            }
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
            })
            .collect()
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
        let context = raft::GetEntriesContext::empty(false);
        match r.raw_node.raft.raft_log.slice(lo, hi, None, context) {
            Ok(entries) => entries.into_iter().map(|e| (e.term, e.data.to_vec())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Writes a batch; a failure stops the process (module docs).
    fn write(&self, batch: WriteBatch, sync: bool) {
        if let Err(e) = self.engine.write(batch, sync) {
            crate::storage::stop_on_storage_failure(&format!("RocksDB write failed: {e}"));
        }
    }

    /// Stops: answers everything waiting, in the replicas, in `rest` (the
    /// messages of the step after `Shutdown`) and in the inbox.
    fn stop(&mut self, rest: Vec<LoopMsg>) {
        let err = Error::Unavailable("server is shutting down".into());
        for c in self.completions.drain(..) {
            c.send();
        }
        for r in self.replicas.values_mut() {
            r.fail_all(&err);
        }
        let queued = std::iter::from_fn(|| self.inbox.try_recv().ok());
        for msg in rest.into_iter().chain(queued) {
            match msg {
                LoopMsg::Txn { reply: Some(reply), .. } => {
                    let _ = reply.send(Err(txn::TxnError::Unavailable(err.to_string())));
                }
                LoopMsg::ReadIndex { reply, .. } => {
                    let _ = reply.send(Err(err.clone()));
                }
                _ => {}
            }
        }
        tracing::debug!(server = %self.registry.server_id, "event loop stopped");
    }
}

fn remove_file(file: Option<PathBuf>) {
    if let Some(f) = file {
        let _ = std::fs::remove_file(f);
    }
}

fn not_hosted(shard: ShardId) -> Error {
    Error::WrongShard { shard_id: shard, epoch: None, reason: "no replica of this shard on this server".into() }
}

/// The shards with a replica record in this server's RocksDB.
fn list_replicas(engine: &Engine) -> std::result::Result<BTreeSet<ShardId>, rocksdb::Error> {
    let db = engine.db();
    let cf = engine.cf(CF_RAFT);
    let mut out = BTreeSet::new();
    let mut it = db.raw_iterator_cf(cf);
    let mut next_shard = 0u64;
    loop {
        it.seek(next_shard.to_be_bytes());
        let Some(shard) = it.key().and_then(decode_raft_key_shard) else {
            break;
        };
        if db.get_cf(cf, raft_key(shard, RaftKey::Replica))?.is_some() {
            out.insert(shard);
        }
        match shard.0.checked_add(1) {
            Some(n) => next_shard = n,
            None => break,
        }
    }
    it.status()?;
    Ok(out)
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
