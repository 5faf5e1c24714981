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

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::json;
use tokio::task::JoinHandle;

use super::{describe, plan, split_offsets, ClockFault, Fault, NemesisKind, Targets};
use crate::admin;
use crate::cluster::Cluster;
use crate::limits::ADMIN_TIMEOUT;
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
    Kill(Vec<u64>),
    Pause(Vec<u64>),
    Partition,
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
        }
    }

    /// Every step that failed, as messages.
    pub fn errors(&self) -> &[String] {
        &self.errors
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
                self.active = Some(if is_kill { Active::Kill(nodes.clone()) } else { Active::Pause(nodes.clone()) });
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
            Fault::Partition { cut, .. } => {
                let nodes: Vec<u64> = servers.keys().copied().collect();
                recorder.nemesis(step, describe(&fault, &nodes));
                let cluster = target.own(fault.kind())?;
                self.active = Some(Active::Partition);
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
                let refused = admin::transfer_leader(&servers[&from], shard, to).await.err().map(|e| format!("{e:#}"));
                self.active = Some(Active::LeaderTransfer { shard: Some(shard), refused });
            }
            Fault::Clock(ClockFault::Split { shard_position, leader_ns, others_ns }) => {
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
                let offsets_ns = split_offsets(&nodes, leader, *leader_ns, *others_ns);
                self.set_clocks(&servers, &offsets_ns).await?;
            }
            Fault::Clock(clock) => {
                recorder.nemesis(step, describe(&fault, &[]));
                match clock {
                    ClockFault::Bump { offsets_ns } => self.set_clocks(&servers, offsets_ns).await?,
                    ClockFault::Strobe { nodes, delta_ns, period } => {
                        self.clocks_touched.extend(nodes);
                        let addrs: Vec<String> = nodes.iter().map(|n| servers[n].clone()).collect();
                        let strobe = tokio::spawn(strobe(addrs, *delta_ns, *period));
                        self.active = Some(Active::Clock { nodes: nodes.clone(), strobe: Some(strobe) });
                    }
                    ClockFault::Split { .. } => unreachable!("resolved above"),
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
            admin::set_clock(&servers[n], offset, 0).await?;
        }
        Ok(())
    }

    /// The nodes a kill or pause hits. A shard without a known leader
    /// falls back to one random node.
    async fn resolve(&mut self, targets: &Targets, servers: &BTreeMap<u64, String>) -> Vec<u64> {
        match targets {
            Targets::Nodes { nodes, .. } => nodes.clone(),
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
            Active::Kill(nodes) => {
                let result = match target.own(NemesisKind::Kill) {
                    Ok(cluster) => restart_all(cluster, &nodes).await,
                    Err(e) => Err(e),
                };
                (NemesisKind::Kill, json!({ "restarted": nodes }), result)
            }
            Active::Pause(nodes) => {
                let result = match target.own(NemesisKind::Pause) {
                    Ok(cluster) => nodes.iter().try_for_each(|&n| cluster.resume(n)),
                    Err(e) => Err(e),
                };
                (NemesisKind::Pause, json!({ "resumed": nodes }), result)
            }
            Active::Partition => {
                let result = target.own(NemesisKind::Partition).map(|c| c.proxies().set_cut(&BTreeSet::new()));
                (NemesisKind::Partition, json!({ "restored": "all links" }), result)
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
            Active::Clock { nodes, strobe } => {
                if let Some(strobe) = strobe {
                    strobe.abort();
                    let _ = strobe.await;
                }
                let live = running(target, &nodes);
                let result = reset_clocks(&servers, &live).await;
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
        let touched: Vec<u64> = self.clocks_touched.iter().copied().collect();
        if !touched.is_empty() {
            // Unconditional: cheap, and a clock is the one fault the
            // bookkeeping cannot see from here.
            result = result.and(reset_clocks(&servers, &touched).await);
        }
        if !fixed.is_empty() {
            recorder.nemesis("heal", json!({ "fixed": fixed }));
        }
        if let Err(e) = result {
            self.failed(recorder, "heal", e);
        }
    }
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
async fn reset_clocks(servers: &BTreeMap<u64, String>, nodes: &[u64]) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for n in nodes {
        if let Err(e) = admin::set_clock(&servers[n], 0, 0).await {
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
async fn strobe(addrs: Vec<String>, delta_ns: i64, period: std::time::Duration) {
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
            let request = proto::SetClockRequest { offset_ns: sign * delta_ns, drift_ppm: 0 };
            if !matches!(tokio::time::timeout(ADMIN_TIMEOUT, client.set_clock(request)).await, Ok(Ok(_))) {
                clients.remove(addr);
            }
        }
        sign = -sign;
    }
}
