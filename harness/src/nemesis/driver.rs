//! Applying faults: the I/O half of the nemesis.
//!
//! [`Nemesis::start`] draws a plan (`nemesis::plan`), resolves run-time
//! targets (which server leads the chosen shard), records `start-KIND`
//! with what it is about to do, and does it. [`Nemesis::stop`] undoes the
//! active fault and records `stop-KIND` once it is undone. So a fault is in
//! force only inside its recorded window.
//!
//! [`Nemesis::heal`] ends a run: it stops the active fault, then sweeps
//! everything whatever the bookkeeping says (every paused server resumed,
//! every dead server restarted, every link restored, every clock it set on
//! a still-running process reset to offset 0, drift 0), and records a `heal` event listing what the
//! sweep had to fix, if anything. After it, the cluster is whole again.
//!
//! A step that fails (a server that will not answer `SetClock`, say) is
//! recorded as a `nemesis-error` event and printed; the run goes on.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use client::Client;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::{describe, leader_ahead_offsets, plan, ClockFault, Fault, NemesisKind, Targets};
use crate::admin;
use crate::cluster::Cluster;
use crate::limits::{ADMIN_TIMEOUT, MOVE_TIMEOUT, SPLIT_ATTEMPTS, SPLIT_RETRY_AFTER, SPLIT_SCAN_KEYS};
use crate::recorder::Recorder;

/// What the nemesis acts on.
pub enum Target {
    /// A cluster the harness started: every nemesis works.
    Own(Cluster),
    /// A cluster given with `--addr` (id -> address): only the admin-API nemeses (clock, leader-transfer).
    Given(BTreeMap<u64, String>),
}

impl Target {
    pub fn servers(&self) -> BTreeMap<u64, String> {
        match self {
            Target::Own(c) => c.servers(),
            Target::Given(servers) => servers.clone(),
        }
    }

    fn own(&mut self, kind: NemesisKind) -> anyhow::Result<&mut Cluster> {
        match self {
            Target::Own(c) => Ok(c),
            Target::Given(_) => anyhow::bail!("nemesis {} cannot act on a cluster given with --addr", kind.as_str()),
        }
    }
}

/// The fault in force.
enum Active {
    /// `kill` or `placement-kill`: these servers are down.
    Kill(NemesisKind, Vec<u64>),
    Pause(Vec<u64>),
    /// `partition` or `placement-partition`: links are cut.
    Partition(NemesisKind),
    /// A server marked draining (None: the cluster refused), made active
    /// again at the stop.
    Decommission(Option<u64>),
    Clock {
        nodes: Vec<u64>,
        strobe: Option<JoinHandle<()>>,
    },
    /// A transfer was asked for (of `shard`, if one had a leader); the
    /// error, if the leader refused (it may have lost the leadership
    /// meanwhile: a race, not a harness failure).
    LeaderTransfer {
        shard: Option<u64>,
        refused: Option<String>,
    },
    /// A split or a move was made (or skipped): nothing to undo (shards
    /// do not merge back); its stop records how it went. A refusal or a
    /// failure is the cluster's answer, not a harness failure: the final
    /// placement check judges what is left.
    Done {
        kind: NemesisKind,
        outcome: Value,
    },
}

/// What the split and move nemeses act through: the run's client, and
/// the names in the workload's keys (`workload::spread_range`).
pub struct RunAccess {
    pub client: Client,
    pub run_id: String,
    pub workload: &'static str,
}

pub struct Nemesis {
    rng: StdRng,
    shards: usize,
    epsilon_ns: i64,
    beyond_epsilon: bool,
    active: Option<Active>,
    /// Faults started so far, per kind (clock faults take turns).
    started: BTreeMap<NemesisKind, usize>,
    /// Servers whose current process has a clock the nemesis set (a killed
    /// or crashed server leaves the set: its next process starts true).
    clocks_touched: BTreeSet<u64>,
    errors: Vec<String>,
    /// For splits and moves (`None`: those nemeses skip, saying why).
    access: Option<RunAccess>,
}

impl Nemesis {
    pub fn new(rng: StdRng, shards: usize, epsilon_ns: i64, beyond_epsilon: bool) -> Nemesis {
        Nemesis {
            rng,
            shards,
            epsilon_ns,
            beyond_epsilon,
            active: None,
            started: BTreeMap::new(),
            clocks_touched: BTreeSet::new(),
            errors: Vec::new(),
            access: None,
        }
    }

    /// Lets the split and move nemeses act on the cluster.
    pub fn with_access(mut self, access: RunAccess) -> Nemesis {
        self.access = Some(access);
        self
    }

    /// Every step that failed, as messages.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// The cluster's peer secret, which the admin API's changes (clock
    /// offsets, leadership transfers) need: the run's client holds it.
    fn secret(&self) -> Option<&client::PeerSecret> {
        self.access.as_ref()?.client.config().peer_secret.as_ref()
    }

    fn failed(&mut self, recorder: &Recorder, step: &str, error: anyhow::Error) {
        let message = format!("{step}: {error:#}");
        eprintln!("jepsen: nemesis error: {message}");
        recorder.nemesis("nemesis-error", json!({ "step": step, "error": format!("{error:#}") }));
        self.errors.push(message);
    }

    /// Starts a fault of `kind` (stopping the active one first, if any).
    pub async fn start(&mut self, kind: NemesisKind, target: &mut Target, recorder: &Recorder) {
        if self.active.is_some() {
            self.stop(target, recorder).await;
        }
        let servers = target.servers();
        let nodes: Vec<u64> = servers.keys().copied().collect();
        let turn = self.started.entry(kind).or_default();
        let fault = plan(kind, &nodes, self.shards, self.epsilon_ns, self.beyond_epsilon, *turn, &mut self.rng);
        *turn += 1;
        let step = format!("start-{}", kind.as_str());
        if let Err(e) = self.apply(fault, target, recorder, &step).await {
            self.failed(recorder, &step, e);
        }
    }

    async fn apply(
        &mut self,
        fault: Fault,
        target: &mut Target,
        recorder: &Recorder,
        step: &str,
    ) -> anyhow::Result<()> {
        let servers = target.servers();
        match &fault {
            Fault::Kill(targets) | Fault::Pause(targets) => {
                let nodes = self.resolve(targets, &servers).await;
                recorder.nemesis(step, describe(&fault, &nodes));
                let cluster = target.own(fault.kind())?;
                let is_kill = matches!(fault, Fault::Kill(_));
                self.active = Some(if is_kill {
                    Active::Kill(fault.kind(), nodes.clone())
                } else {
                    Active::Pause(nodes.clone())
                });
                for &n in &nodes {
                    if is_kill {
                        cluster.kill(n).await?;
                        // Its next process starts with a true clock.
                        self.clocks_touched.remove(&n);
                    } else {
                        cluster.pause(n)?;
                    }
                }
            }
            Fault::IsolateSystemShardLeader => {
                let Some(leader) = system_shard_leader(&servers).await else {
                    recorder.nemesis(step, describe(&fault, &[]));
                    self.active = Some(Active::Partition(fault.kind()));
                    return Ok(());
                };
                let mut order: Vec<u64> = servers.keys().copied().filter(|&n| n != leader).collect();
                order.insert(0, leader);
                let cut = super::partition::cut_links(super::Shape::IsolateOne, &order);
                recorder.nemesis(step, describe(&fault, &order));
                let cluster = target.own(fault.kind())?;
                self.active = Some(Active::Partition(fault.kind()));
                cluster.proxies().set_cut(&cut);
            }
            Fault::Decommission { node_choice } => {
                let nodes: Vec<u64> = servers.keys().copied().collect();
                let node = nodes[node_choice % nodes.len()];
                recorder.nemesis(step, describe(&fault, &[node]));
                let Some(access) = &self.access else {
                    self.active = Some(Active::Decommission(None));
                    return Ok(());
                };
                let outcome = access.client.set_draining(meta::ServerId(node), true).await;
                let accepted = outcome.is_ok();
                let outcome = match outcome {
                    Ok(draining) => json!({ "draining": draining.iter().map(|s| s.0).collect::<Vec<_>>() }),
                    Err(e) => json!({ "refused": e.to_string() }),
                };
                recorder.nemesis("decommission-outcome", json!({ "node": node, "outcome": outcome }));
                self.active = Some(Active::Decommission(accepted.then_some(node)));
            }
            Fault::Partition { cut, .. } => {
                let nodes: Vec<u64> = servers.keys().copied().collect();
                recorder.nemesis(step, describe(&fault, &nodes));
                let cluster = target.own(fault.kind())?;
                self.active = Some(Active::Partition(fault.kind()));
                cluster.proxies().set_cut(cut);
            }
            Fault::LeaderTransfer { shard_position, replica_choice } => {
                let (views, _) = admin::replica_views(&servers).await;
                let leaders = admin::leaders(&views);
                let shards: Vec<u64> = leaders.keys().copied().collect();
                let choice = shards.get(shard_position % shards.len().max(1)).and_then(|&shard| {
                    let from = leaders[&shard];
                    let others: Vec<u64> =
                        views.iter().filter(|v| v.shard == shard && v.server != from).map(|v| v.server).collect();
                    let to = *others.get(replica_choice % others.len().max(1))?;
                    Some((shard, from, to))
                });
                let Some((shard, from, to)) = choice else {
                    recorder.nemesis(step, describe(&fault, &[]));
                    self.active = Some(Active::LeaderTransfer { shard: None, refused: None });
                    return Ok(());
                };
                recorder.nemesis(step, describe(&fault, &[shard, from, to]));
                let refused = admin::transfer_leader(&servers[&from], self.secret(), shard, to)
                    .await
                    .err()
                    .map(|e| format!("{e:#}"));
                self.active = Some(Active::LeaderTransfer { shard: Some(shard), refused });
            }
            Fault::Split { letter } => {
                let Some(access) = &self.access else {
                    recorder.nemesis(step, json!({ "skipped": "no workload keys to split among" }));
                    self.active = Some(Active::Done { kind: NemesisKind::Split, outcome: Value::Null });
                    return Ok(());
                };
                let key = newest_key(access, *letter).await?;
                let shown = String::from_utf8_lossy(&key).into_owned();
                recorder.nemesis(step, json!({ "letter": letter.to_string(), "key": shown }));
                let mut attempts = 0;
                let outcome = loop {
                    attempts += 1;
                    match access.client.split_at(&key).await {
                        Ok((left, right)) => {
                            break json!({ "left": describe_shard(&left), "right": describe_shard(&right), "attempts": attempts })
                        }
                        // The shard's own refusals (its membership is
                        // changing, or its leader is new: try again; the
                        // key begins a shard already).
                        Err(client::Error::InvalidArgument(m) | client::Error::Unavailable(m)) => {
                            if attempts >= SPLIT_ATTEMPTS {
                                break json!({ "refused": m, "attempts": attempts });
                            }
                            tokio::time::sleep(SPLIT_RETRY_AFTER).await;
                        }
                        Err(e) => return Err(e).context("splitting"),
                    }
                };
                let outcome = json!({ "key": shown, "outcome": outcome });
                self.active = Some(Active::Done { kind: NemesisKind::Split, outcome });
            }
            Fault::Move { shard_position, from_choice, to_choice, until } => {
                let Some(access) = &self.access else {
                    recorder.nemesis(step, json!({ "skipped": "no client to move with" }));
                    self.active = Some(Active::Done { kind: NemesisKind::Move, outcome: Value::Null });
                    return Ok(());
                };
                let nodes: Vec<u64> = servers.keys().copied().collect();
                let Some((shard, from, to)) =
                    pick_move(&access.client, &nodes, *shard_position, *from_choice, *to_choice).await?
                else {
                    recorder.nemesis(step, describe(&fault, &[]));
                    self.active = Some(Active::Done { kind: NemesisKind::Move, outcome: Value::Null });
                    return Ok(());
                };
                recorder.nemesis(step, describe(&fault, &[shard, from, to]));
                let (shard_id, from_id, to_id) = (meta::ShardId(shard), meta::ServerId(from), meta::ServerId(to));
                let moved = access.client.move_replica_until(shard_id, from_id, to_id, None, *until);
                let outcome = match tokio::time::timeout(MOVE_TIMEOUT, moved).await {
                    Ok(Ok(d)) => json!({ "moved": describe_shard(&d) }),
                    Ok(Err(e)) => json!({ "failed": e.to_string() }),
                    Err(_) => json!({ "failed": format!("not done within {MOVE_TIMEOUT:?}") }),
                };
                let outcome = json!({ "shard": shard, "outcome": outcome });
                self.active = Some(Active::Done { kind: NemesisKind::Move, outcome });
            }
            Fault::Clock(ClockFault::LeaderAhead { shard_position, leader_ns, others_ns }) => {
                let (views, _) = admin::replica_views(&servers).await;
                let leaders = admin::leaders(&views);
                let shards: Vec<u64> = leaders.keys().copied().collect();
                let Some(&shard) = shards.get(shard_position % shards.len().max(1)) else {
                    recorder.nemesis(step, describe(&fault, &[]));
                    self.active = Some(Active::Clock { nodes: Vec::new(), strobe: None });
                    return Ok(());
                };
                let nodes: Vec<u64> = servers.keys().copied().collect();
                let leader = leaders[&shard];
                let resolved: Vec<u64> = [shard, leader].into_iter().chain(nodes.iter().copied()).collect();
                recorder.nemesis(step, describe(&fault, &resolved));
                let offsets_ns = leader_ahead_offsets(&nodes, leader, *leader_ns, *others_ns);
                self.set_clocks(&servers, &offsets_ns).await?;
            }
            Fault::Clock(clock) => {
                recorder.nemesis(step, describe(&fault, &[]));
                match clock {
                    ClockFault::Bump { offsets_ns } => self.set_clocks(&servers, offsets_ns).await?,
                    ClockFault::Strobe { nodes, delta_ns, period } => {
                        self.clocks_touched.extend(nodes);
                        let addrs: Vec<String> = nodes.iter().map(|n| servers[n].clone()).collect();
                        let strobe = tokio::spawn(strobe(addrs, self.secret().cloned(), *delta_ns, *period));
                        self.active = Some(Active::Clock { nodes: nodes.clone(), strobe: Some(strobe) });
                    }
                    ClockFault::LeaderAhead { .. } => unreachable!("resolved above"),
                }
            }
        }
        Ok(())
    }

    /// Sets each node's clock offset (drift 0); the fault in force is a
    /// clock fault on those nodes from the first call on.
    async fn set_clocks(
        &mut self,
        servers: &BTreeMap<u64, String>,
        offsets_ns: &BTreeMap<u64, i64>,
    ) -> anyhow::Result<()> {
        let nodes: Vec<u64> = offsets_ns.keys().copied().collect();
        self.clocks_touched.extend(&nodes);
        self.active = Some(Active::Clock { nodes, strobe: None });
        for (n, &offset) in offsets_ns {
            admin::set_clock(&servers[n], self.secret(), offset, 0).await?;
        }
        Ok(())
    }

    /// The nodes a kill or pause hits. A shard without a known leader
    /// falls back to one random node.
    async fn resolve(&mut self, targets: &Targets, servers: &BTreeMap<u64, String>) -> Vec<u64> {
        match targets {
            Targets::Nodes { nodes, .. } => nodes.clone(),
            Targets::SystemShardLeader => match system_shard_leader(servers).await {
                Some(leader) => vec![leader],
                None => {
                    let nodes: Vec<u64> = servers.keys().copied().collect();
                    vec![*nodes.choose(&mut self.rng).expect("servers")]
                }
            },
            Targets::LeaderOfShard { shard_position } => {
                let (views, _) = admin::replica_views(servers).await;
                let leaders = admin::leaders(&views);
                let shards: Vec<u64> = leaders.keys().copied().collect();
                match shards.get(shard_position % shards.len().max(1)) {
                    Some(shard) => vec![leaders[shard]],
                    None => {
                        let nodes: Vec<u64> = servers.keys().copied().collect();
                        vec![*nodes.choose(&mut self.rng).expect("servers")]
                    }
                }
            }
        }
    }

    /// Stops the active fault, if any, and records `stop-KIND`.
    pub async fn stop(&mut self, target: &mut Target, recorder: &Recorder) {
        let Some(active) = self.active.take() else { return };
        let servers = target.servers();
        let (kind, value, result) = match active {
            Active::Kill(kind, nodes) => {
                let result = match target.own(kind) {
                    Ok(cluster) => restart_all(cluster, &nodes).await,
                    Err(e) => Err(e),
                };
                (kind, json!({ "restarted": nodes }), result)
            }
            Active::Pause(nodes) => {
                let result = match target.own(NemesisKind::Pause) {
                    Ok(cluster) => nodes.iter().try_for_each(|&n| cluster.resume(n)),
                    Err(e) => Err(e),
                };
                (NemesisKind::Pause, json!({ "resumed": nodes }), result)
            }
            Active::Partition(kind) => {
                let result = target.own(kind).map(|c| c.proxies().set_cut(&BTreeSet::new()));
                (kind, json!({ "restored": "all links" }), result)
            }
            Active::LeaderTransfer { shard, refused } => {
                // Nothing to undo; say who leads now.
                let leader = match shard {
                    Some(shard) => admin::leaders(&admin::replica_views(&servers).await.0).get(&shard).copied(),
                    None => None,
                };
                let value = json!({ "shard": shard, "leader": leader, "refused": refused });
                (NemesisKind::LeaderTransfer, value, Ok(()))
            }
            Active::Done { kind, outcome } => (kind, outcome, Ok(())),
            Active::Decommission(node) => {
                let result = match (node, &self.access) {
                    (Some(node), Some(access)) => {
                        access.client.set_draining(meta::ServerId(node), false).await.map(drop).map_err(Into::into)
                    }
                    _ => Ok(()),
                };
                (NemesisKind::Decommission, json!({ "recommissioned": node }), result)
            }
            Active::Clock { nodes, strobe } => {
                if let Some(strobe) = strobe {
                    strobe.abort();
                    let _ = strobe.await;
                }
                let live = running(target, &nodes);
                let result = reset_clocks(&servers, self.secret(), &live).await;
                (NemesisKind::Clock, json!({ "reset": live }), result)
            }
        };
        let step = format!("stop-{}", kind.as_str());
        recorder.nemesis(&step, value);
        if let Err(e) = result {
            self.failed(recorder, &step, e);
        }
    }

    /// Stops the active fault, then restores everything (module docs).
    pub async fn heal(&mut self, target: &mut Target, recorder: &Recorder) {
        self.stop(target, recorder).await;
        let servers = target.servers();
        let mut fixed: Vec<String> = Vec::new();
        let mut result = Ok(());
        if let Target::Own(cluster) = target {
            for crash in cluster.take_crashes() {
                eprintln!("jepsen: {crash}");
            }
            // A server that died restarts with a true clock.
            self.clocks_touched.retain(|&n| cluster.is_running(n));
            for id in cluster.node_ids() {
                if cluster.is_paused(id) {
                    fixed.push(format!("resumed {id}"));
                    result = result.and(cluster.resume(id));
                }
                if !cluster.is_running(id) {
                    fixed.push(format!("restarted {id}"));
                    result = result.and(cluster.restart(id).await);
                }
            }
            let cut = cluster.proxies().cut_links();
            if !cut.is_empty() {
                fixed.push(format!("restored {} links", cut.len()));
                cluster.proxies().set_cut(&BTreeSet::new());
            }
        }
        if let Some(access) = &self.access {
            // A decommission whose stop did not run (or failed): undone.
            match access.client.draining_servers().await {
                Ok(draining) => {
                    for server in draining {
                        fixed.push(format!("recommissioned {}", server.0));
                        let undone = access.client.set_draining(server, false).await;
                        result = result.and(undone.map(drop).map_err(Into::into));
                    }
                }
                Err(e) => result = result.and(Err(anyhow::Error::from(e).context("reading the draining servers"))),
            }
        }
        let touched: Vec<u64> = self.clocks_touched.iter().copied().collect();
        if !touched.is_empty() {
            // Unconditional: cheap, and a clock is the one fault the
            // bookkeeping cannot see from here.
            result = result.and(reset_clocks(&servers, self.secret(), &touched).await);
        }
        if !fixed.is_empty() {
            recorder.nemesis("heal", json!({ "fixed": fixed }));
        }
        if let Err(e) = result {
            self.failed(recorder, "heal", e);
        }
    }
}

/// The most recently written of the workload's keys that begin with
/// `letter` (the largest version timestamp among the first
/// [`SPLIT_SCAN_KEYS`] of them), or the first key of that letter's range
/// if none is written yet.
async fn newest_key(access: &RunAccess, letter: char) -> anyhow::Result<Vec<u8>> {
    let (start, end) = crate::workload::spread_range(&access.run_id, access.workload, letter);
    let pairs = access
        .client
        .scan(&start, &end, SPLIT_SCAN_KEYS, client::ReadMode::Latest)
        .await
        .context("reading the workload's keys to split among")?;
    Ok(pairs.into_iter().max_by_key(|kv| kv.version_ts).map_or(start, |kv| kv.key))
}

/// The shard, voter and server of a move: the `shard_position`-th shard
/// (by id) that has a server without a replica, its `from_choice`-th
/// voter, its `to_choice`-th such server; `None` if no shard has one.
async fn pick_move(
    client: &Client,
    nodes: &[u64],
    shard_position: usize,
    from_choice: usize,
    to_choice: usize,
) -> anyhow::Result<Option<(u64, u64, u64)>> {
    let info = client.cluster_info().await.context("listing the shards to move")?;
    let mut shards: Vec<u64> = info.shards.iter().filter_map(|s| s.descriptor.as_ref()).map(|d| d.shard_id).collect();
    shards.sort_unstable();
    shards.dedup();
    for i in 0..shards.len() {
        let shard = shards[(shard_position + i) % shards.len()];
        let (d, _) = client.shard_descriptor(meta::ShardId(shard)).await.context("reading a shard to move")?;
        let voters: Vec<u64> =
            d.replicas.iter().filter(|r| r.role() == proto::ReplicaRole::Voter).map(|r| r.server_id).collect();
        let free: Vec<u64> = nodes.iter().copied().filter(|n| !d.replicas.iter().any(|r| r.server_id == *n)).collect();
        if !voters.is_empty() && !free.is_empty() {
            return Ok(Some((shard, voters[from_choice % voters.len()], free[to_choice % free.len()])));
        }
    }
    Ok(None)
}

fn describe_shard(d: &proto::ShardDescriptor) -> Value {
    json!({
        "shard": d.shard_id,
        "start": String::from_utf8_lossy(&d.start_key),
        "end": String::from_utf8_lossy(&d.end_key),
        "range_ver": d.range_ver,
        "conf_ver": d.conf_ver,
        "servers": d.replicas.iter().map(|r| r.server_id).collect::<Vec<_>>(),
    })
}

/// The nodes among `nodes` that run now (all of them on a given cluster,
/// which the harness cannot see into).
fn running(target: &Target, nodes: &[u64]) -> Vec<u64> {
    match target {
        Target::Own(cluster) => nodes.iter().copied().filter(|&n| cluster.is_running(n)).collect(),
        Target::Given(_) => nodes.to_vec(),
    }
}

async fn restart_all(cluster: &mut Cluster, nodes: &[u64]) -> anyhow::Result<()> {
    for &n in nodes {
        cluster.restart(n).await?;
    }
    Ok(())
}

/// Sets offset 0 and drift 0 on `nodes` (callers pass only running
/// servers: one that is not running gets a true clock when it starts).
async fn reset_clocks(
    servers: &BTreeMap<u64, String>,
    secret: Option<&client::PeerSecret>,
    nodes: &[u64],
) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for n in nodes {
        if let Err(e) = admin::set_clock(&servers[n], secret, 0, 0).await {
            errors.push(format!("server {n}: {e:#}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("resetting clocks: {}", errors.join("; "))
    }
}

/// Flips the clocks at `addrs` between `+delta_ns` and `-delta_ns` every
/// `period`, until aborted. Errors are skipped: the next flip retries.
async fn strobe(addrs: Vec<String>, secret: Option<client::PeerSecret>, delta_ns: i64, period: std::time::Duration) {
    let mut clients = BTreeMap::new();
    let mut sign = 1;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for addr in &addrs {
            if !clients.contains_key(addr) {
                match admin::connect(addr).await {
                    Ok(c) => {
                        clients.insert(addr.clone(), c);
                    }
                    Err(_) => continue,
                }
            }
            let client = clients.get_mut(addr).expect("just inserted");
            let request =
                admin::change(proto::SetClockRequest { offset_ns: sign * delta_ns, drift_ppm: 0 }, secret.as_ref());
            if !matches!(tokio::time::timeout(ADMIN_TIMEOUT, client.set_clock(request)).await, Ok(Ok(_))) {
                clients.remove(addr);
            }
        }
        sign = -sign;
    }
}

/// The server leading the system shard (the one whose range starts at the
/// first key), if one does.
async fn system_shard_leader(servers: &BTreeMap<u64, String>) -> Option<u64> {
    let (views, _) = admin::replica_views(servers).await;
    let leaders = admin::leaders(&views);
    let system = views.iter().find(|v| v.start.is_empty())?.shard;
    leaders.get(&system).copied()
}
