//! The nemesis: which faults, when, and against whom. This module is the
//! pure part (names, the schedule, fault plans drawn from a seeded RNG);
//! `driver.rs` applies the plans to the cluster.
//!
//! # The schedule
//!
//! One fault at a time, one step every `interval`, alternating start and
//! stop, the kinds taken round-robin in the order given:
//!
//! ```text
//!   --nemesis partition,kill --interval 5 --time-limit 30
//!
//!   t=5  start-partition   t=10 stop-partition
//!   t=15 start-kill        t=20 stop-kill
//!   t=25 start-partition   (t=30: the run ends; the final heal stops it)
//! ```
//!
//! # Fault plans
//!
//! | kind | plan (drawn at start) | start | stop |
//! |---|---|---|---|
//! | `kill` | one node, a minority, or the leader of a random shard | SIGKILL | restart from its config |
//! | `pause` | the same choice of targets | SIGSTOP | SIGCONT |
//! | `partition` | a [`Shape`] over a shuffled node order | cut its links | restore every link |
//! | `clock` | a leader-ahead, a bump or a strobe, in turn (below) | `SetClock` | offsets and drift back to 0 |
//! | `leader-transfer` | a random shard and a random other replica | `TransferLeader` at the shard's leader | nothing to undo (records who leads now) |
//! | `split` | a random letter of the workload's keys | split the shard holding the most recently written key of that letter, just below it (`Admin.SplitShard`) | nothing to undo (shards do not merge back) |
//! | `move` | a random shard, one of its voters, a server without a replica of it (`--nodes 5`, 3 replicas a shard) | move the replica (`Client::move_replica`: learner, joint configuration, removal) | nothing to undo (records how the move went) |
//! | `placement-kill` | the server leading the system shard (where the placement driver acts) | SIGKILL | restart from its config |
//! | `placement-partition` | the same server | cut every link to and from it | restore every link |
//! | `decommission` | a random server | mark it draining (`Client::set_draining`; refused on 3 nodes: its replicas would have nowhere to go) | mark it active again |
//!
//! # Clock faults
//!
//! The shapes come in turn, so that every run with three clock faults
//! has each: a **leader-ahead** (the leader of a random shard, resolved when the
//! fault starts, jumps ahead by `delta` and every other node behind by
//! `delta`: the skew under which a read that reveals a commit before its
//! commit-wait ends lets two readers see time go backwards), a **bump**
//! (random nodes, each its own random offset) and a **strobe** (random
//! nodes flip between `+delta` and `-delta` every 50 ms).
//!
//! Within epsilon (epsilon read from the servers) every offset is at most
//! `9/10 * epsilon`, where TrueTime promises that nothing breaks (two
//! clocks may then disagree by 1.8 epsilon; a leader-ahead's `delta` is at least
//! half of epsilon). With `--beyond-epsilon` offsets are 10 to 250
//! epsilons, to show what breaks, and only a minority of the nodes is
//! skewed (a leader-ahead skews the leader alone): a majority whose clocks agree
//! on a wrong time looks exactly like the truth to any clock-health check
//! among the servers (Spanner trusts its time masters' GPS and atomic
//! clocks for that), while a minority off by that much must refuse to
//! serve, and the checkers show what happens when it does not
//! (`--unsafe-ignore-clock-health`).

pub mod driver;
pub mod partition;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde_json::{json, Value};

use crate::limits::{
    CLOCK_BEYOND_EPSILON_MAX, CLOCK_BEYOND_EPSILON_MIN, CLOCK_BEYOND_FLOOR_NS, CLOCK_STROBE_PERIOD,
    CLOCK_WITHIN_EPSILON_DEN, CLOCK_WITHIN_EPSILON_NUM,
};
pub use partition::Shape;

use crate::proxy::Link;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NemesisKind {
    Kill,
    Pause,
    Partition,
    Clock,
    LeaderTransfer,
    Split,
    Move,
    PlacementKill,
    PlacementPartition,
    Decommission,
}

/// What `--nemesis` takes (comma-separated): a kind, `all`, `none`, or
/// a nemesis the design names that this build cannot run yet (hidden
/// from the help; refused with the reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NemesisChoice {
    None,
    All,
    Kill,
    Pause,
    Partition,
    Clock,
    /// Leadership moved to a random replica (`shuffle-leader`, TiKV's
    /// scheduler's name for it, is the same).
    #[value(alias = "shuffle-leader")]
    LeaderTransfer,
    Split,
    Move,
    PlacementKill,
    PlacementPartition,
    Decommission,
    /// Neighbouring shards merged: SpanDB does not merge shards yet.
    #[value(hide = true)]
    Merge,
}

impl NemesisKind {
    /// What `--nemesis all` runs: every kind that works on 3 nodes (not
    /// `move`, which needs `--nodes 5`).
    pub const ALL: [NemesisKind; 6] = [
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Partition,
        NemesisKind::Clock,
        NemesisKind::LeaderTransfer,
        NemesisKind::Split,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Partition => "partition",
            NemesisKind::Clock => "clock",
            NemesisKind::LeaderTransfer => "leader-transfer",
            NemesisKind::Split => "split",
            NemesisKind::Move => "move",
            NemesisKind::PlacementKill => "placement-kill",
            NemesisKind::PlacementPartition => "placement-partition",
            NemesisKind::Decommission => "decommission",
        }
    }

    /// The kinds `--nemesis` chose: `none` adds nothing, `all` every kind;
    /// duplicates are dropped, order is kept (it is the schedule's).
    pub fn from_choices(choices: &[NemesisChoice]) -> Result<Vec<NemesisKind>, String> {
        let mut kinds = Vec::new();
        for choice in choices {
            let found = match choice {
                NemesisChoice::None => continue,
                NemesisChoice::All => NemesisKind::ALL.to_vec(),
                NemesisChoice::Kill => vec![NemesisKind::Kill],
                NemesisChoice::Pause => vec![NemesisKind::Pause],
                NemesisChoice::Partition => vec![NemesisKind::Partition],
                NemesisChoice::Clock => vec![NemesisKind::Clock],
                NemesisChoice::LeaderTransfer => vec![NemesisKind::LeaderTransfer],
                NemesisChoice::Split => vec![NemesisKind::Split],
                NemesisChoice::Move => vec![NemesisKind::Move],
                NemesisChoice::PlacementKill => vec![NemesisKind::PlacementKill],
                NemesisChoice::PlacementPartition => vec![NemesisKind::PlacementPartition],
                NemesisChoice::Decommission => vec![NemesisKind::Decommission],
                NemesisChoice::Merge => {
                    return Err("merge: SpanDB does not merge shards yet (the placement driver only splits \
                                and moves them), so there is no merge to attack"
                        .into())
                }
            };
            for k in found {
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
        Ok(kinds)
    }

    /// Why this nemesis cannot act on a cluster the harness did not start
    /// (`--addr`), if it cannot.
    pub fn needs_own_cluster(self) -> Option<&'static str> {
        match self {
            NemesisKind::Kill | NemesisKind::Pause | NemesisKind::PlacementKill => {
                Some("needs to signal the server processes")
            }
            NemesisKind::Partition | NemesisKind::PlacementPartition => Some("needs a proxy on every Raft link"),
            NemesisKind::Clock
            | NemesisKind::LeaderTransfer
            | NemesisKind::Split
            | NemesisKind::Move
            | NemesisKind::Decommission => None,
        }
    }
}

/// One nemesis step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Start(NemesisKind),
    Stop(NemesisKind),
}

/// The steps of a run, with their offsets from its start (module docs).
/// Nothing happens at or after `time_limit`: the final heal takes over.
pub fn schedule(kinds: &[NemesisKind], interval: Duration, time_limit: Duration) -> Vec<(Duration, Step)> {
    let mut steps = Vec::new();
    if kinds.is_empty() || interval.is_zero() {
        return steps;
    }
    for k in 0u32.. {
        let Some(at) = interval.checked_mul(k + 1) else { break };
        if at >= time_limit {
            break;
        }
        let kind = kinds[(k as usize / 2) % kinds.len()];
        steps.push((at, if k % 2 == 0 { Step::Start(kind) } else { Step::Stop(kind) }));
    }
    steps
}

/// Whom a kill or pause targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// These nodes (one, or a minority).
    Nodes { nodes: Vec<u64>, why: &'static str },
    /// The leader of the shard at this position in the shard list, as the
    /// cluster reports it when the fault starts.
    LeaderOfShard { shard_position: usize },
    /// The leader of the system shard (the one holding the first key),
    /// where the placement driver acts, when the fault starts.
    SystemShardLeader,
}

/// A clock fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClockFault {
    /// The leader of the shard at `shard_position` (in the shard list the
    /// cluster reports when the fault starts) jumps by `leader_ns`, every
    /// other node by `others_ns` (0: left alone).
    LeaderAhead { shard_position: usize, leader_ns: i64, others_ns: i64 },
    /// Each chosen node's clock jumps by its offset (ns) and stays there.
    Bump { offsets_ns: BTreeMap<u64, i64> },
    /// The chosen nodes' clocks flip between `+delta_ns` and `-delta_ns`
    /// every `period` until the fault stops.
    Strobe { nodes: Vec<u64>, delta_ns: i64, period: Duration },
}

/// A fault, planned but not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Kill(Targets),
    Pause(Targets),
    Partition {
        shape: Shape,
        cut: BTreeSet<Link>,
    },
    Clock(ClockFault),
    /// Move the leadership of the shard at `shard_position` (in the shard
    /// list the cluster reports when the fault starts) to its
    /// `replica_choice`-th other replica (modulo their number).
    LeaderTransfer {
        shard_position: usize,
        replica_choice: usize,
    },
    /// Split, just below the most recently written of the workload's keys
    /// that begin with `letter` (the workload's first key of that letter
    /// if none is written yet).
    Split {
        letter: char,
    },
    /// Move a replica of the shard at `shard_position` (in the shard
    /// list the cluster reports when the fault starts): its
    /// `from_choice`-th voter to its `to_choice`-th server without a
    /// replica (each modulo their number), as far as `until`: half the
    /// moves stop after the learner is added or after the joint
    /// configuration, as a move cut short does, and leave a learner for
    /// the placement driver to remove.
    Move {
        shard_position: usize,
        from_choice: usize,
        to_choice: usize,
        until: client::membership::MoveStep,
    },
    /// Cut every link to and from the system shard's leader.
    IsolateSystemShardLeader,
    /// Mark the `node_choice`-th server (modulo their number) draining.
    Decommission {
        node_choice: usize,
    },
}

impl Fault {
    pub fn kind(&self) -> NemesisKind {
        match self {
            Fault::Kill(Targets::SystemShardLeader) => NemesisKind::PlacementKill,
            Fault::Kill(_) => NemesisKind::Kill,
            Fault::Pause(_) => NemesisKind::Pause,
            Fault::Partition { .. } => NemesisKind::Partition,
            Fault::Clock(_) => NemesisKind::Clock,
            Fault::LeaderTransfer { .. } => NemesisKind::LeaderTransfer,
            Fault::Split { .. } => NemesisKind::Split,
            Fault::Move { .. } => NemesisKind::Move,
            Fault::IsolateSystemShardLeader => NemesisKind::PlacementPartition,
            Fault::Decommission { .. } => NemesisKind::Decommission,
        }
    }
}

/// Draws a fault of `kind` for `nodes` (sorted ids, at least 3 for a
/// partition). `epsilon_ns` is the cluster's TrueTime epsilon; `shards`
/// the number of shards; `turn` how many faults of this kind started
/// before (clock faults take their shapes in turn).
pub fn plan(
    kind: NemesisKind,
    nodes: &[u64],
    shards: usize,
    epsilon_ns: i64,
    beyond_epsilon: bool,
    turn: usize,
    rng: &mut StdRng,
) -> Fault {
    assert!(!nodes.is_empty(), "a fault needs nodes");
    match kind {
        NemesisKind::Kill => Fault::Kill(pick_targets(nodes, shards, rng)),
        NemesisKind::Pause => Fault::Pause(pick_targets(nodes, shards, rng)),
        NemesisKind::Partition => {
            let shape = *Shape::ALL.choose(rng).expect("shapes");
            let mut order = nodes.to_vec();
            order.shuffle(rng);
            Fault::Partition { shape, cut: partition::cut_links(shape, &order) }
        }
        NemesisKind::Split => Fault::Split { letter: (b'a' + rng.random_range(0..26u8)) as char },
        NemesisKind::PlacementKill => Fault::Kill(Targets::SystemShardLeader),
        NemesisKind::PlacementPartition => Fault::IsolateSystemShardLeader,
        NemesisKind::Decommission => Fault::Decommission { node_choice: rng.random_range(0..nodes.len()) },
        NemesisKind::Move => Fault::Move {
            shard_position: rng.random_range(0..usize::MAX),
            from_choice: rng.random_range(0..nodes.len()),
            to_choice: rng.random_range(0..nodes.len()),
            until: match rng.random_range(0..4) {
                0 => client::membership::MoveStep::Learner,
                1 => client::membership::MoveStep::Joint,
                _ => client::membership::MoveStep::Whole,
            },
        },
        NemesisKind::LeaderTransfer => Fault::LeaderTransfer {
            shard_position: rng.random_range(0..shards.max(1)),
            replica_choice: rng.random_range(0..nodes.len()),
        },
        NemesisKind::Clock => {
            let bound = clock_bound_ns(epsilon_ns, beyond_epsilon);
            // Beyond epsilon, a minority (module docs).
            let chosen = if beyond_epsilon { minority(nodes, rng) } else { pick_some(nodes, rng) };
            match turn % 3 {
                0 => {
                    let shard_position = rng.random_range(0..shards.max(1));
                    if beyond_epsilon {
                        let leader_ns = random_offset(bound, true, rng);
                        Fault::Clock(ClockFault::LeaderAhead { shard_position, leader_ns, others_ns: 0 })
                    } else {
                        let delta_ns = rng.random_range(bound.1 / 2..=bound.1.max(1));
                        Fault::Clock(ClockFault::LeaderAhead {
                            shard_position,
                            leader_ns: delta_ns,
                            others_ns: -delta_ns,
                        })
                    }
                }
                1 => {
                    let offsets_ns =
                        chosen.into_iter().map(|n| (n, random_offset(bound, beyond_epsilon, rng))).collect();
                    Fault::Clock(ClockFault::Bump { offsets_ns })
                }
                _ => {
                    let delta_ns = random_offset(bound, beyond_epsilon, rng).abs();
                    Fault::Clock(ClockFault::Strobe { nodes: chosen, delta_ns, period: CLOCK_STROBE_PERIOD })
                }
            }
        }
    }
}

/// The offsets a leader-ahead sets once its shard's leader is known: `leader`
/// gets `leader_ns`, every other node `others_ns` (unless 0: untouched).
pub fn leader_ahead_offsets(nodes: &[u64], leader: u64, leader_ns: i64, others_ns: i64) -> BTreeMap<u64, i64> {
    nodes
        .iter()
        .filter_map(|&n| match n == leader {
            true => Some((n, leader_ns)),
            false => (others_ns != 0).then_some((n, others_ns)),
        })
        .collect()
}

/// The `(lowest, highest)` magnitude of a clock offset, in ns.
pub fn clock_bound_ns(epsilon_ns: i64, beyond_epsilon: bool) -> (i64, i64) {
    let epsilon_ns = epsilon_ns.max(0);
    if beyond_epsilon {
        let unit = epsilon_ns.max(CLOCK_BEYOND_FLOOR_NS);
        (unit * CLOCK_BEYOND_EPSILON_MIN, unit * CLOCK_BEYOND_EPSILON_MAX)
    } else {
        (0, epsilon_ns * CLOCK_WITHIN_EPSILON_NUM / CLOCK_WITHIN_EPSILON_DEN)
    }
}

/// A signed offset whose magnitude lies in `bound`. Within epsilon it may
/// be anything up to the bound, beyond it at least the lower bound.
fn random_offset((low, high): (i64, i64), beyond_epsilon: bool, rng: &mut StdRng) -> i64 {
    let magnitude = if high <= low { high } else { rng.random_range(low..=high) };
    let magnitude = if beyond_epsilon { magnitude.max(low) } else { magnitude };
    if rng.random_bool(0.5) {
        magnitude
    } else {
        -magnitude
    }
}

/// One node, a minority, or the leader of a shard, with equal odds.
fn pick_targets(nodes: &[u64], shards: usize, rng: &mut StdRng) -> Targets {
    match rng.random_range(0..3) {
        0 => Targets::Nodes { nodes: vec![*nodes.choose(rng).expect("nodes")], why: "one" },
        1 => Targets::Nodes { nodes: minority(nodes, rng), why: "minority" },
        _ => Targets::LeaderOfShard { shard_position: rng.random_range(0..shards.max(1)) },
    }
}

/// A random minority: `(n - 1) / 2` nodes (at least one), sorted.
pub fn minority(nodes: &[u64], rng: &mut StdRng) -> Vec<u64> {
    let size = ((nodes.len() - 1) / 2).max(1);
    let mut picked: Vec<u64> = nodes.choose_multiple(rng, size).copied().collect();
    picked.sort_unstable();
    picked
}

/// A random non-empty subset of the nodes, sorted.
fn pick_some(nodes: &[u64], rng: &mut StdRng) -> Vec<u64> {
    let size = rng.random_range(1..=nodes.len());
    let mut picked: Vec<u64> = nodes.choose_multiple(rng, size).copied().collect();
    picked.sort_unstable();
    picked
}

/// A fault as the value of its `start-*` history event; `resolved` is
/// the nodes a kill or pause hits, or every node for a partition.
pub fn describe(fault: &Fault, resolved: &[u64]) -> Value {
    match fault {
        Fault::Kill(t) | Fault::Pause(t) => json!({ "nodes": resolved, "targets": describe_targets(t) }),
        Fault::Partition { shape, cut } => json!({
            "shape": shape.as_str(),
            "cut": partition::describe(cut),
            "hears": resolved
                .iter()
                .map(|&n| (n.to_string(), json!(partition::hears(cut, resolved, n))))
                .collect::<serde_json::Map<_, _>>(),
        }),
        Fault::Clock(ClockFault::Bump { offsets_ns }) => json!({
            "kind": "bump",
            "offsets_ns": offsets_ns.iter().map(|(n, o)| (n.to_string(), json!(o))).collect::<serde_json::Map<_, _>>(),
        }),
        // `resolved`: the shard and its leader, then every node.
        Fault::Clock(ClockFault::LeaderAhead { leader_ns, others_ns, .. }) => match resolved {
            [shard, leader, nodes @ ..] => json!({
                "kind": "leader-ahead",
                "shard": shard,
                "leader": leader,
                "offsets_ns": leader_ahead_offsets(nodes, *leader, *leader_ns, *others_ns)
                    .iter()
                    .map(|(n, o)| (n.to_string(), json!(o)))
                    .collect::<serde_json::Map<_, _>>(),
            }),
            _ => json!({ "kind": "leader-ahead", "skipped": "no shard has a leader" }),
        },
        Fault::Clock(ClockFault::Strobe { nodes, delta_ns, period }) => json!({
            "kind": "strobe", "nodes": nodes, "delta_ns": delta_ns, "period_ms": period.as_millis() as u64,
        }),
        // `resolved`: the shard, its leader, the new leader.
        Fault::LeaderTransfer { .. } => match resolved {
            [shard, from, to] => json!({ "shard": shard, "from": from, "to": to }),
            _ => json!({ "skipped": "no shard has a leader and another replica" }),
        },
        // The driver records the key and the halves itself.
        Fault::Split { letter } => json!({ "letter": letter.to_string() }),
        // `resolved`: the shard, from, to.
        Fault::Move { until, .. } => match resolved {
            [shard, from, to] => json!({ "shard": shard, "from": from, "to": to, "until": until.as_str() }),
            _ => json!({ "skipped": "no shard has a server without a replica of it" }),
        },
        // `resolved`: the isolated server, then every node.
        Fault::IsolateSystemShardLeader => match resolved {
            [leader, nodes @ ..] => json!({ "isolated": leader, "nodes": nodes }),
            _ => json!({ "skipped": "the system shard has no leader" }),
        },
        // `resolved`: the server.
        Fault::Decommission { .. } => json!({ "node": resolved.first() }),
    }
}

fn describe_targets(t: &Targets) -> String {
    match t {
        Targets::Nodes { why, .. } => why.to_string(),
        Targets::LeaderOfShard { shard_position } => format!("leader of shard {}", shard_position + 1),
        Targets::SystemShardLeader => "leader of the system shard".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Goal: the schedule alternates start and stop, round-robin over the
    /// kinds, and never acts at or after the time limit.
    /// Method: the example of the module docs, and the edge cases.
    #[test]
    fn schedule_alternates_round_robin_within_the_time_limit() {
        use NemesisKind::*;
        let steps = schedule(&[Partition, Kill], secs(5), secs(30));
        assert_eq!(
            steps,
            vec![
                (secs(5), Step::Start(Partition)),
                (secs(10), Step::Stop(Partition)),
                (secs(15), Step::Start(Kill)),
                (secs(20), Step::Stop(Kill)),
                (secs(25), Step::Start(Partition)),
            ]
        );
        assert!(schedule(&[], secs(5), secs(30)).is_empty(), "no nemesis, no steps");
        assert!(schedule(&[Clock], secs(30), secs(30)).is_empty(), "nothing at the time limit");
        assert_eq!(schedule(&[Clock], secs(29), secs(30)), vec![(secs(29), Step::Start(Clock))]);
        let long = schedule(&[Clock], Duration::from_millis(100), secs(3600));
        assert_eq!(long.len(), 35_999);
        assert!(long
            .windows(2)
            .all(|w| matches!((w[0].1, w[1].1), (Step::Start(_), Step::Stop(_)) | (Step::Stop(_), Step::Start(_)))));
    }

    /// Goal: `--nemesis` choices become kinds: lists in order, `none`
    /// and `all`, duplicates once; a nemesis that needs missing parts is
    /// refused with the reason (merge); the choices' names are the kinds'
    /// names, and `shuffle-leader` is `leader-transfer`.
    #[test]
    fn nemesis_choices_become_kinds() {
        use clap::ValueEnum;
        use NemesisChoice as C;
        use NemesisKind::*;
        let kinds = |choices: &[C]| NemesisKind::from_choices(choices);
        assert_eq!(kinds(&[C::Partition, C::Kill]), Ok(vec![Partition, Kill]));
        assert_eq!(kinds(&[C::None]), Ok(vec![]));
        assert_eq!(kinds(&[C::All]), Ok(NemesisKind::ALL.to_vec()));
        assert_eq!(
            kinds(&[C::Clock, C::Clock, C::All]),
            Ok(vec![Clock, Kill, Pause, Partition, LeaderTransfer, Split])
        );
        for k in NemesisKind::ALL {
            assert_eq!(kinds(&[C::from_str(k.as_str(), false).unwrap()]), Ok(vec![k]));
        }
        assert_eq!(kinds(&[C::from_str("shuffle-leader", false).unwrap()]), Ok(vec![LeaderTransfer]));
        let merge = kinds(&[C::from_str("merge", false).unwrap()]).unwrap_err();
        assert!(merge.contains("does not merge shards"), "{merge}");
        assert!(Clock.needs_own_cluster().is_none() && LeaderTransfer.needs_own_cluster().is_none());
        assert!(NemesisKind::ALL.iter().filter(|k| k.needs_own_cluster().is_some()).count() == 3);
    }

    /// Goal: plans respect their bounds: kills and pauses hit one node, a
    /// minority, or a shard leader; clock faults take their shapes in turn
    /// (leader-ahead, bump, strobe); within epsilon every offset is at most 9/10
    /// epsilon and a leader-ahead puts the leader ahead and the rest behind by
    /// at least half of that; beyond epsilon offsets are 10 to 250
    /// epsilons on a minority only (a leader-ahead: the leader alone); the same
    /// seed gives the same plans.
    /// Method: draw many plans of each kind, and many turns of clock
    /// plans both ways, for 3 and 5 nodes.
    #[test]
    fn plans_respect_their_bounds_and_the_seed() {
        let epsilon_ns = 2_000_000;
        let within = epsilon_ns * 9 / 10;
        for nodes in [vec![1, 2, 3], vec![1, 2, 3, 4, 5]] {
            let mut rng = StdRng::seed_from_u64(7);
            let mut seen_targets = BTreeSet::new();
            let placement = [
                NemesisKind::Move,
                NemesisKind::PlacementKill,
                NemesisKind::PlacementPartition,
                NemesisKind::Decommission,
            ];
            for turn in 0..600 {
                for kind in NemesisKind::ALL.into_iter().chain(placement) {
                    let fault = plan(kind, &nodes, 4, epsilon_ns, false, turn, &mut rng);
                    assert_eq!(fault.kind(), kind);
                    match &fault {
                        Fault::Kill(t) | Fault::Pause(t) => match t {
                            Targets::Nodes { nodes: picked, why } => {
                                assert!(picked.len() <= (nodes.len() - 1) / 2 && !picked.is_empty(), "{picked:?}");
                                seen_targets.insert(*why);
                            }
                            Targets::LeaderOfShard { shard_position } => {
                                assert!(*shard_position < 4);
                                seen_targets.insert("leader");
                            }
                            Targets::SystemShardLeader => assert_eq!(kind, NemesisKind::PlacementKill),
                        },
                        Fault::IsolateSystemShardLeader => assert_eq!(kind, NemesisKind::PlacementPartition),
                        Fault::Decommission { node_choice } => assert!(*node_choice < nodes.len()),
                        Fault::Partition { cut, .. } => assert!(!cut.is_empty()),
                        Fault::LeaderTransfer { shard_position, replica_choice } => {
                            assert!(*shard_position < 4 && *replica_choice < nodes.len());
                        }
                        Fault::Split { letter } => assert!(letter.is_ascii_lowercase()),
                        Fault::Move { from_choice, to_choice, .. } => {
                            assert!(*from_choice < nodes.len() && *to_choice < nodes.len());
                        }
                        Fault::Clock(clock) => match (turn % 3, clock) {
                            (0, ClockFault::LeaderAhead { shard_position, leader_ns, others_ns }) => {
                                assert!(*shard_position < 4);
                                assert!((within / 2..=within).contains(leader_ns), "{clock:?}");
                                assert_eq!(*others_ns, -leader_ns);
                            }
                            (1, ClockFault::Bump { offsets_ns }) => {
                                assert!(!offsets_ns.is_empty());
                                assert!(offsets_ns.values().all(|o| o.abs() <= within), "{offsets_ns:?}");
                            }
                            (2, ClockFault::Strobe { nodes: picked, delta_ns, .. }) => {
                                assert!(!picked.is_empty() && *delta_ns >= 0 && *delta_ns <= within);
                            }
                            other => panic!("turn {turn}: {other:?}"),
                        },
                    }
                }
                let beyond = plan(NemesisKind::Clock, &nodes, 4, epsilon_ns, true, turn, &mut rng);
                let (skewed, magnitudes): (usize, Vec<i64>) = match beyond {
                    Fault::Clock(ClockFault::LeaderAhead { leader_ns, others_ns, .. }) => {
                        assert_eq!(others_ns, 0, "beyond epsilon, a leader-ahead skews the leader alone");
                        (1, vec![leader_ns.abs()])
                    }
                    Fault::Clock(ClockFault::Bump { offsets_ns }) => {
                        (offsets_ns.len(), offsets_ns.values().map(|o| o.abs()).collect())
                    }
                    Fault::Clock(ClockFault::Strobe { nodes: picked, delta_ns, .. }) => (picked.len(), vec![delta_ns]),
                    other => panic!("{other:?}"),
                };
                assert!((1..=(nodes.len() - 1) / 2).contains(&skewed), "a minority: {skewed} of {}", nodes.len());
                assert!(magnitudes.iter().all(|m| (10 * epsilon_ns..=250 * epsilon_ns).contains(m)), "{magnitudes:?}");
            }
            assert_eq!(seen_targets, BTreeSet::from(["one", "minority", "leader"]));
        }
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20)
                .map(|turn| plan(NemesisKind::Partition, &[1, 2, 3, 4, 5], 4, 0, false, turn, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    /// Goal: a leader-ahead's offsets put the leader at its offset and every
    /// other node at theirs, leaving them alone when that is 0.
    #[test]
    fn leader_ahead_offsets_by_leader() {
        assert_eq!(leader_ahead_offsets(&[1, 2, 3], 2, 90, -90), BTreeMap::from([(1, -90), (2, 90), (3, -90)]));
        assert_eq!(leader_ahead_offsets(&[1, 2, 3], 3, -500, 0), BTreeMap::from([(3, -500)]));
    }

    /// Goal: a zero epsilon gives no within-epsilon skew, and a usable
    /// beyond-epsilon scale. Method: the bounds for epsilon 0 and 2 ms.
    #[test]
    fn clock_bounds() {
        assert_eq!(clock_bound_ns(2_000_000, false), (0, 1_800_000));
        assert_eq!(clock_bound_ns(0, false), (0, 0));
        assert_eq!(clock_bound_ns(2_000_000, true), (20_000_000, 500_000_000));
        assert_eq!(clock_bound_ns(0, true), (10_000_000, 250_000_000));
    }
}
