//! A fault-injecting network for in-process clusters.
//!
//! Each server's Raft traffic goes through a `SimTransport` into the
//! shared [`SimNetwork`], which decides per message: deliver now, deliver
//! later (random delay, so messages reorder), or drop (random loss, a
//! partition, a cut link, a shard cut off from one server, a crashed
//! destination). Delivery is the real thing: into the destination
//! server's event loop inbox, as the gRPC transport would.
//!
//! ```text
//!   s1 loop ──SimTransport──┐        ┌──> s2 inbox
//!                           ├─ SimNetwork: partitions, cuts, loss, delay
//!   s3 loop ──SimTransport──┘        └──> s1 inbox
//! ```
//!
//! Randomness comes from one seeded RNG, so a failing seed can be rerun
//! (timing still varies: servers run on real threads).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meta::{ReplicaId, ServerId, ShardId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spanserver::inbox::{LoopHandle, LoopMsg};
use spanserver::storage::snapshot::SnapshotFile;
use spanserver::transport::Transport;
use spanserver::RaftMessage;

#[derive(Default)]
struct Faults {
    /// If set, only servers in the same group can talk.
    partition: Option<Vec<BTreeSet<ServerId>>>,
    /// Directed links that drop everything.
    cut: BTreeSet<(ServerId, ServerId)>,
    /// One shard's messages to one server are dropped (its replica there
    /// hears nothing from its group; the server's other replicas do).
    shard_cut: BTreeSet<(ShardId, ServerId)>,
    /// Probability of dropping each message.
    loss: f64,
    /// Each message is delayed uniformly in [0, delay_max].
    delay_max: Duration,
}

struct State {
    inboxes: BTreeMap<ServerId, LoopHandle>,
    faults: Faults,
    rng: StdRng,
    delivered: u64,
    dropped: u64,
}

/// The network shared by an in-process cluster's servers.
#[derive(Clone)]
pub struct SimNetwork {
    state: Arc<Mutex<State>>,
    runtime: tokio::runtime::Handle,
}

impl SimNetwork {
    pub fn new(seed: u64, runtime: tokio::runtime::Handle) -> Self {
        SimNetwork {
            state: Arc::new(Mutex::new(State {
                inboxes: BTreeMap::new(),
                faults: Faults::default(),
                rng: StdRng::seed_from_u64(seed),
                delivered: 0,
                dropped: 0,
            })),
            runtime,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("network lock")
    }

    /// A transport for server `me`, delivering to servers registered here.
    pub fn transport(&self, me: ServerId, own_inbox: LoopHandle) -> Arc<dyn Transport> {
        self.lock().inboxes.insert(me, own_inbox.clone());
        Arc::new(SimTransport { me, own_inbox, net: self.clone() })
    }

    /// The server is gone (crashed): messages to it are dropped.
    pub fn unregister(&self, server: ServerId) {
        self.lock().inboxes.remove(&server);
    }

    /// Only servers in the same group can talk; servers in no group are
    /// isolated.
    pub fn partition(&self, groups: &[&[u64]]) {
        let groups = groups.iter().map(|g| g.iter().map(|&id| ServerId(id)).collect()).collect();
        self.lock().faults.partition = Some(groups);
    }

    /// Drops everything from `from` to `to` (one direction).
    pub fn cut(&self, from: u64, to: u64) {
        self.lock().faults.cut.insert((ServerId(from), ServerId(to)));
    }

    /// Drops every message of `shard`'s group to server `to`.
    pub fn cut_shard(&self, shard: u64, to: u64) {
        self.lock().faults.shard_cut.insert((ShardId(shard), ServerId(to)));
    }

    /// Ends the partition, keeping the other faults.
    pub fn end_partition(&self) {
        self.lock().faults.partition = None;
    }

    /// Random loss and delay on every link.
    pub fn set_unreliable(&self, loss: f64, delay_max: Duration) {
        let mut state = self.lock();
        state.faults.loss = loss;
        state.faults.delay_max = delay_max;
    }

    /// Removes every fault: no partition, no cuts, no loss, no delay.
    pub fn heal(&self) {
        self.lock().faults = Faults::default();
    }

    /// (delivered, dropped) message counts so far.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.delivered, s.dropped)
    }

    fn connected(faults: &Faults, from: ServerId, to: ServerId) -> bool {
        if faults.cut.contains(&(from, to)) {
            return false;
        }
        match &faults.partition {
            None => true,
            Some(groups) => groups.iter().any(|g| g.contains(&from) && g.contains(&to)),
        }
    }

    /// Decides the fate of one message of `shard`'s group: `None` to
    /// drop, or the delay.
    fn route(&self, from: ServerId, to: ServerId, shard: ShardId) -> Option<Duration> {
        let mut state = self.lock();
        let ok = state.inboxes.contains_key(&to)
            && Self::connected(&state.faults, from, to)
            && !state.faults.shard_cut.contains(&(shard, to));
        let loss = state.faults.loss.clamp(0.0, 1.0);
        let lost = loss > 0.0 && state.rng.random_bool(loss);
        if !ok || lost {
            state.dropped += 1;
            return None;
        }
        state.delivered += 1;
        let max = state.faults.delay_max;
        Some(if max.is_zero() { Duration::ZERO } else { max.mul_f64(state.rng.random::<f64>()) })
    }

    fn inbox(&self, to: ServerId) -> Option<LoopHandle> {
        self.lock().inboxes.get(&to).cloned()
    }

    /// Delivers after `delay`, re-checking the link then (a partition that
    /// began meanwhile also stops messages in flight).
    fn deliver(&self, from: ServerId, to: ServerId, delay: Duration, messages: Vec<(ShardId, RaftMessage)>) {
        self.deliver_msg(from, to, delay, LoopMsg::Raft { from, messages });
    }

    fn deliver_snapshot(
        &self,
        from: ServerId,
        to: ServerId,
        delay: Duration,
        shard: ShardId,
        message: RaftMessage,
        file: Option<std::path::PathBuf>,
    ) {
        self.deliver_msg(from, to, delay, LoopMsg::SnapshotArrived { from, shard, message, file });
    }

    fn deliver_msg(&self, from: ServerId, to: ServerId, delay: Duration, msg: LoopMsg) {
        let deliver_now = move |net: &SimNetwork| {
            let state = net.lock();
            if !Self::connected(&state.faults, from, to) {
                return false;
            }
            match state.inboxes.get(&to) {
                Some(inbox) => inbox.send(msg).is_ok(),
                None => false,
            }
        };
        if delay.is_zero() {
            deliver_now(self);
        } else {
            let net = self.clone();
            self.runtime.spawn(async move {
                tokio::time::sleep(delay).await;
                deliver_now(&net);
            });
        }
    }
}

struct SimTransport {
    me: ServerId,
    own_inbox: LoopHandle,
    net: SimNetwork,
}

impl Transport for SimTransport {
    fn send(&self, to: ServerId, messages: Vec<(ShardId, RaftMessage)>) {
        // Each message meets its own fate, so a batch can arrive in part.
        let mut by_delay: BTreeMap<Duration, Vec<(ShardId, RaftMessage)>> = BTreeMap::new();
        for m in messages {
            if let Some(delay) = self.net.route(self.me, to, m.0) {
                by_delay.entry(delay).or_default().push(m);
            }
        }
        for (delay, batch) in by_delay {
            self.net.deliver(self.me, to, delay, batch);
        }
    }

    /// The data file is copied into the receiver's snapshot directory (the
    /// servers share a file system), then the message is delivered.
    fn send_snapshot(&self, to: ServerId, shard: ShardId, message: RaftMessage, file: Option<SnapshotFile>) {
        let replica = ReplicaId(message.to);
        let ok = match (self.net.route(self.me, to, shard), self.net.inbox(to)) {
            (Some(delay), Some(inbox)) => {
                let copied = file.map(|f| inbox.snapshot_dir().receive_copy(shard, &f.path)).transpose();
                match copied {
                    Ok(file) => {
                        self.net.deliver_snapshot(self.me, to, delay, shard, message, file);
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        };
        let _ = self.own_inbox.send(LoopMsg::SnapshotSent { shard, to: replica, ok });
    }
}
