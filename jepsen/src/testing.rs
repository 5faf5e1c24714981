//! Test support: a notation for hand-written histories, and a simulator of
//! correct databases that produces large valid histories.
//!
//! Hand-written histories put event `i` at time `10 * i` ns, so the order
//! of the lines is the real-time order:
//!
//! ```text
//! hist(vec![
//!     inv(0, "write", json!([1, 5])),   // index 0, time 0
//!     ok(0, "write", json!([1, 5])),    // index 1, time 10
//! ])
//! ```
//!
//! The simulator ([`slots`]) lays out operations of `workers` concurrent
//! clients in time: each gets an invocation, an effect instant strictly
//! inside its interval, and a completion. A workload fills in what each
//! operation does and applies it to a model database in effect order, which
//! makes the history correct by construction (strictly serializable, and so
//! linearizable per key); tests then inject exactly one anomaly.

use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::Value;

use crate::history::{History, Op, OpType, Process};

/// One event of a hand-written history (index and time are filled in).
#[derive(Clone)]
pub(crate) struct E {
    process: Process,
    op_type: OpType,
    f: String,
    value: Value,
    commit_ts: Option<u64>,
    read_ts: Option<u64>,
    version_ts: Option<u64>,
}

impl E {
    pub(crate) fn ts(mut self, commit_ts: u64) -> E {
        self.commit_ts = Some(commit_ts);
        self
    }

    /// A read served at `read_ts` that returned the version committed at
    /// `version_ts` (`None`: the key had no version).
    pub(crate) fn served(mut self, read_ts: u64, version_ts: Option<u64>) -> E {
        self.read_ts = Some(read_ts);
        self.version_ts = version_ts;
        self
    }
}

fn e(process: i64, op_type: OpType, f: &str, value: Value) -> E {
    E {
        process: if process < 0 { Process::Nemesis } else { Process::Client(process as u64) },
        op_type,
        f: f.to_string(),
        value,
        commit_ts: None,
        read_ts: None,
        version_ts: None,
    }
}

pub(crate) fn inv(p: i64, f: &str, v: Value) -> E {
    e(p, OpType::Invoke, f, v)
}
pub(crate) fn ok(p: i64, f: &str, v: Value) -> E {
    e(p, OpType::Ok, f, v)
}
pub(crate) fn fail(p: i64, f: &str, v: Value) -> E {
    e(p, OpType::Fail, f, v)
}
pub(crate) fn info(p: i64, f: &str, v: Value) -> E {
    e(p, OpType::Info, f, v)
}
pub(crate) fn nemesis(f: &str) -> E {
    e(-1, OpType::Info, f, Value::Null)
}

/// Event `i` at time `10 * i`.
pub(crate) fn hist(events: Vec<E>) -> History {
    let ops = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| Op {
            index: i as u64,
            time_ns: 10 * i as u64,
            process: e.process,
            op_type: e.op_type,
            f: e.f,
            value: e.value,
            commit_ts: e.commit_ts,
            read_ts: e.read_ts,
            version_ts: e.version_ts,
            error: None,
        })
        .collect();
    History::new(ops).expect("hand-written history is well-formed")
}

/// Where one simulated operation sits in time.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub process: u64,
    pub invoke_ns: u64,
    /// The instant it takes effect (if it does): invoke < effect < complete.
    pub effect_ns: u64,
    pub complete_ns: u64,
    /// The client gives up at `complete_ns` with `info`; the workload
    /// decides whether the effect happened.
    pub timed_out: bool,
}

/// Lays out `n` operations of `workers` clients; about `info_per_mille` of
/// them time out (the worker then takes a new process id).
pub(crate) fn slots(rng: &mut StdRng, n: usize, workers: usize, info_per_mille: u32) -> Vec<Slot> {
    let mut free: BinaryHeap<std::cmp::Reverse<(u64, usize)>> =
        (0..workers).map(|w| std::cmp::Reverse((0, w))).collect();
    let mut process: Vec<u64> = (0..workers as u64).collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let std::cmp::Reverse((free_ns, w)) = free.pop().expect("workers > 0");
        let invoke_ns = free_ns + rng.random_range(1..50_000);
        let effect_ns = invoke_ns + rng.random_range(1..1_000_000);
        let complete_ns = effect_ns + rng.random_range(1..1_000_000);
        let timed_out = rng.random_range(0..1000) < info_per_mille;
        out.push(Slot { process: process[w], invoke_ns, effect_ns, complete_ns, timed_out });
        if timed_out {
            process[w] += workers as u64;
        }
        free.push(std::cmp::Reverse((complete_ns, w)));
    }
    out
}

/// A simulated operation, ready to become two events.
#[derive(Clone, Debug)]
pub(crate) struct SimOp {
    pub process: u64,
    pub f: String,
    pub invoke_value: Value,
    /// `Ok`, `Fail` or `Info`.
    pub outcome: OpType,
    /// The ok completion's value (ignored for fail and info, which repeat
    /// the invocation's value).
    pub ok_value: Value,
    pub invoke_ns: u64,
    /// `None`: still pending when the history ends.
    pub complete_ns: Option<u64>,
    pub commit_ts: Option<u64>,
}

/// Orders the events by time and numbers them.
pub(crate) fn to_history(ops: &[SimOp]) -> History {
    let mut events: Vec<(u64, usize, bool)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke_ns, i, false));
        if let Some(t) = op.complete_ns {
            assert!(t > op.invoke_ns);
            events.push((t, i, true));
        }
    }
    events.sort_by_key(|&(t, i, is_completion)| (t, i, is_completion));
    let ops = events
        .into_iter()
        .enumerate()
        .map(|(index, (t, i, is_completion))| {
            let op = &ops[i];
            let (op_type, value, commit_ts) = match (is_completion, op.outcome) {
                (false, _) => (OpType::Invoke, op.invoke_value.clone(), None),
                (true, OpType::Ok) => (OpType::Ok, op.ok_value.clone(), op.commit_ts),
                (true, outcome) => (outcome, op.invoke_value.clone(), None),
            };
            let mut event = Op::new(index as u64, t, Process::Client(op.process), op_type, op.f.clone(), value);
            event.commit_ts = commit_ts;
            if matches!(op_type, OpType::Info | OpType::Fail) {
                event.error = Some("simulated".into());
            }
            event
        })
        .collect();
    History::new(ops).expect("simulated history is well-formed")
}

/// The positions of `slots` in effect order.
pub(crate) fn effect_order(slots: &[Slot]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_by_key(|&i| (slots[i].effect_ns, i));
    order
}

/// The time just after every slot has completed.
pub(crate) fn end_ns(slots: &[Slot]) -> u64 {
    slots.iter().map(|s| s.complete_ns).max().unwrap_or(0) + 1
}

/// A coin that comes up heads `per_mille` times in 1000.
pub(crate) fn chance(rng: &mut StdRng, per_mille: u32) -> bool {
    rng.random_range(0..1000) < per_mille
}

/// The index anomalies name a simulated op by (see `Pair::index`).
pub(crate) fn index_of(h: &History, op: &SimOp) -> u64 {
    h.pairs()
        .find(|p| p.process() == Process::Client(op.process) && p.invoke_ns() == op.invoke_ns)
        .expect("the op is in the history")
        .index()
}
