//! Linearizability of read/write/compare-and-set registers, one per key.
//!
//! # Workload
//!
//! ```text
//! f          invoke value         ok value              fail means
//! read       [key, null]          [key, v]  (null = absent)
//! read-only  [key, null]          [key, v]
//! write      [key, v]             [key, v]
//! cas        [key, [old, new]]    [key, [old, new]]     it found a value != old
//! ```
//!
//! Every key starts absent (`null`). Values are any JSON (compared as
//! JSON text); a `write` of `null` makes the key absent again.
//!
//! `read` and `read-only` are both linearizable reads, and are checked
//! alike: a leader read, and a read-only transaction at the serving
//! replica's `TT.now().latest` (Spanner's external consistency makes it
//! one, on any replica). Snapshot reads at a chosen timestamp
//! (`read-at`) and bounded-staleness reads (`read-bounded`) promise no
//! real-time order, so this checker ignores them; the
//! [`timestamped`](super::timestamped) checker judges them by their
//! timestamps.
//!
//! # Method
//!
//! A history is linearizable if each op can be given an instant between its
//! invocation and its completion such that the ops, run one at a time in
//! that order against a single register, return what they returned. Keys
//! are independent registers, and linearizability is *local* (Herlihy and
//! Wing 1990): the history is linearizable iff each key's sub-history is.
//! So the check runs per key (P-compositionality, as Porcupine does), on
//! far smaller searches.
//!
//! Per key, the search is Wing and Gong's tree search with Lowe's
//! memoisation: the "WGL" algorithm of Lowe's "Testing for
//! linearizability" (2017), the one Porcupine implements (not Lowe's
//! separate just-in-time linearization algorithm). Calls and returns go
//! into one doubly linked list in time order:
//!
//! ```text
//!   head ─ c(w1) ─ c(r1) ─ r(w1) ─ c(w2) ─ r(r1) ─ r(w2) ─ tail
//! ```
//!
//! Walking from the head, the search tries to linearize the first call
//! whose op is legal in the current register value (removing its call and
//! return from the list, remembering it on a stack). Reaching a *return*
//! means that op's instant has passed without it being linearized: undo
//! the last choice and try the next call instead. The list empties exactly
//! when a linearization is found; the stack empties when none exists. A
//! cache of `(set of linearized ops, register value)` pairs, the set as a
//! bitset, prunes every configuration already explored: two paths that
//! linearized the same ops and left the same value have the same future.
//!
//! `fail` ops are dropped: they did not happen. An `info` (or pending) op
//! may take effect at any instant after its invocation, or never: its
//! return goes to the end of time. Taking effect "never" is the same as
//! taking effect after every `ok` op, since nothing observes it then, so
//! the search needs no special case beyond: an `info` read is dropped (it
//! constrains nothing), and an `info` cas that finds another value is a
//! no-op instead of illegal.
//!
//! Each pending op doubles the configurations a failing search must rule
//! out, so timeouts would make exactly the interesting histories (those
//! recorded under faults) undecidable. Two exact simplifications come
//! first: an indeterminate write or cas whose value nobody observed is
//! dropped (`prune_unobserved`), and one whose value was observed, when it
//! is that value's only writer, must take effect before the first `ok` op
//! that observed it returned (`bound_observed`). Both need distinct write
//! values to bite: a harness should write unique values.
//!
//! # Worked example
//!
//! ```text
//!   p0  |--write 1--|
//!   p1        |---read -> 1---|
//!   p2                            |--read -> null--|
//! ```
//!
//! The write must precede the first read (it returned 1), and it completed
//! before the second read began, so the second read should see 1. No order
//! is legal, so the key is `nonlinearizable`. The anomaly names the
//! smallest failing prefix, found by bisecting over the key's events (a
//! prefix, with its unfinished ops taken as indeterminate, fails only if
//! every longer prefix fails): here all three ops, with the last read as
//! the op that cannot be placed. It lists that op, the ops concurrent with
//! it, and the last three writes that completed before it began.
//!
//! # Limits
//!
//! `RegisterOptions::deadline` bounds the whole check, and
//! `RegisterOptions::states_per_key_max` (with
//! `limits::LINEARIZABILITY_CACHE_BYTES_MAX`) each key's cache. Running out gives
//! `unknown` for that key (and for the verdict, unless another key is
//! already `nonlinearizable`). The search is exponential in the worst case;
//! in practice its cost grows with the number of *concurrent* ops on a key,
//! which is why per-key partitioning matters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::history::{History, OpType, Pair};
use crate::limits::{
    ANOMALY_OPS_MAX, LINEARIZABILITY_CACHE_BYTES_MAX, LINEARIZABILITY_DEADLINE_DEFAULT,
    LINEARIZABILITY_STATES_PER_KEY_MAX,
};
use crate::verdict::{kinds, Findings, Verdict};

/// Budgets of the linearizability search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterOptions {
    /// Wall-clock budget of the whole check.
    pub deadline: Duration,
    /// Cache entries one key's search may create.
    pub states_per_key_max: usize,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            deadline: LINEARIZABILITY_DEADLINE_DEFAULT,
            states_per_key_max: LINEARIZABILITY_STATES_PER_KEY_MAX,
        }
    }
}

/// Value id 0 is `null`: absent.
const ABSENT: u32 = 0;

/// How often (in search steps) the deadline is looked at.
const DEADLINE_CHECK_STEPS: u64 = 1024;

#[derive(Clone, Copy, Debug)]
enum Action {
    Read(u32),
    Write(u32),
    Cas { old: u32, new: u32 },
}

#[derive(Clone, Copy, Debug)]
struct RegOp {
    action: Action,
    call_ns: u64,
    /// `None`: `info` or pending, may take effect any time after the call.
    return_ns: Option<u64>,
    /// The op's index for anomalies (`Pair::index`).
    index: u64,
}

impl RegOp {
    /// The register value after this op, or `None` if it cannot happen at
    /// `state`.
    fn step(&self, state: u32) -> Option<u32> {
        match self.action {
            Action::Read(v) => (state == v).then_some(state),
            Action::Write(v) => Some(v),
            Action::Cas { old, new } if state == old => Some(new),
            // An indeterminate cas that finds another value did nothing.
            Action::Cas { .. } if self.return_ns.is_none() => Some(state),
            Action::Cas { .. } => None,
        }
    }

    fn writes(&self) -> bool {
        !matches!(self.action, Action::Read(_))
    }
}

/// One key's ops and its interned values.
#[derive(Default)]
struct KeyOps {
    ops: Vec<RegOp>,
    ids: HashMap<String, u32>,
}

impl KeyOps {
    fn intern(&mut self, v: &Value) -> u32 {
        let text = v.to_string();
        let next = self.ids.len() as u32 + 1;
        if v.is_null() {
            return ABSENT;
        }
        *self.ids.entry(text).or_insert(next)
    }
}

/// Checks that every key's reads, writes and cas ops are linearizable.
pub fn check(history: &History, options: &RegisterOptions) -> Verdict {
    let mut keys: BTreeMap<String, KeyOps> = BTreeMap::new();
    let mut dropped = 0u64;
    for pair in history.pairs() {
        if !matches!(pair.f(), "read" | "read-only" | "write" | "cas") {
            continue;
        }
        match parse(&pair, &mut keys) {
            Ok(true) => {}
            Ok(false) => dropped += 1,
            Err(reason) => return Verdict::unknown(format!("{}: {reason}", pair.describe())),
        }
    }

    let mut findings = Findings::default();
    let ops_total: usize = keys.values().map(|k| k.ops.len()).sum();
    findings.stat("keys", keys.len() as u64);
    findings.stat("ops", ops_total as u64);
    findings.stat("ops-dropped", dropped);
    if ops_total == 0 {
        return findings.finish(Some("no read, write or cas op to check".into()));
    }

    let started = Instant::now();
    let mut budget = Budget {
        deadline: started.checked_add(options.deadline),
        states_max: options.states_per_key_max,
        states_total: 0,
    };
    let mut undecided: Vec<String> = Vec::new();
    let (mut pruned_total, mut bounded_total) = (0, 0);
    for (key, key_ops) in &keys {
        let (mut ops, pruned) = prune_unobserved(&key_ops.ops);
        pruned_total += pruned;
        bounded_total += bound_observed(&mut ops);
        match search(&ops, &mut budget) {
            Search::Linearizable => {}
            Search::NotLinearizable => {
                let (message, ops) = explain(history, key, &ops, &mut budget);
                findings.add(kinds::NONLINEARIZABLE, message, ops);
            }
            Search::Exhausted(why) => undecided.push(format!("key {key}: {why}")),
        }
    }
    findings.stat("ops-pruned", pruned_total as u64);
    findings.stat("ops-bounded", bounded_total as u64);
    findings.stat("states", budget.states_total);
    findings.stat("keys-undecided", undecided.len() as u64);
    let unknown = (!undecided.is_empty()).then(|| {
        format!("{} of {} keys undecided: {}", undecided.len(), keys.len(), crate::verdict::quote_items(&undecided, 3))
    });
    findings.finish(unknown)
}

/// Adds one op to its key. `Ok(false)`: dropped (failed, or an
/// indeterminate read).
fn parse(pair: &Pair, keys: &mut BTreeMap<String, KeyOps>) -> Result<bool, String> {
    let split = |v: &Value| -> Result<(Value, Value), String> {
        match v.as_array().map(|a| a.as_slice()) {
            Some([key, arg]) => Ok((key.clone(), arg.clone())),
            _ => Err(format!("value {v} is not [key, v]")),
        }
    };
    let (key, arg) = split(&pair.invoke.value)?;
    let outcome = pair.outcome();
    let is_read = matches!(pair.f(), "read" | "read-only");
    if outcome == OpType::Fail || (is_read && outcome == OpType::Info) {
        return Ok(false);
    }
    let key_ops = keys.entry(key.to_string()).or_default();
    let action = match pair.f() {
        "read" | "read-only" => {
            let (ok_key, read) = split(pair.value())?;
            if ok_key != key {
                return Err(format!("read of key {key} completed with key {ok_key}"));
            }
            Action::Read(key_ops.intern(&read))
        }
        "write" => Action::Write(key_ops.intern(&arg)),
        _ => match arg.as_array().map(|a| a.as_slice()) {
            Some([old, new]) => Action::Cas { old: key_ops.intern(old), new: key_ops.intern(new) },
            _ => return Err(format!("cas argument {arg} is not [old, new]")),
        },
    };
    key_ops.ops.push(RegOp {
        action,
        call_ns: pair.invoke_ns(),
        return_ns: if outcome == OpType::Ok { pair.return_ns() } else { None },
        index: pair.index(),
    });
    Ok(true)
}

/// Drops the indeterminate writes and cas ops whose value nobody observed,
/// returning the rest and how many were dropped.
///
/// Sound and complete: an indeterminate op may never take effect, so
/// dropping it cannot make a linearizable history non-linearizable; and
/// if a linearization uses it, the ops between it and the next write all
/// leave the value alone and none of them observes it, so the same order
/// without it is still legal. A value is observed when an ok read returns
/// it, an ok cas expects it, or a kept indeterminate cas expects it (a
/// fixpoint). This is what keeps timeouts from blowing up the search: each
/// pending op doubles the configurations to explore.
fn prune_unobserved(ops: &[RegOp]) -> (Vec<RegOp>, usize) {
    let mut observed: HashSet<u32> = HashSet::new();
    for op in ops.iter().filter(|op| op.return_ns.is_some()) {
        match op.action {
            Action::Read(v) => {
                observed.insert(v);
            }
            Action::Cas { old, .. } => {
                observed.insert(old);
            }
            Action::Write(_) => {}
        }
    }
    let mut keep: Vec<bool> = ops.iter().map(|op| op.return_ns.is_some()).collect();
    loop {
        let mut changed = false;
        for (i, op) in ops.iter().enumerate() {
            if keep[i] {
                continue;
            }
            match op.action {
                Action::Write(v) if observed.contains(&v) => keep[i] = true,
                Action::Cas { old, new } if observed.contains(&new) => {
                    keep[i] = true;
                    observed.insert(old);
                }
                _ => continue,
            }
            changed = true;
        }
        if !changed {
            break;
        }
    }
    let kept: Vec<RegOp> = ops.iter().zip(&keep).filter(|(_, &k)| k).map(|(op, _)| *op).collect();
    let pruned = ops.len() - kept.len();
    (kept, pruned)
}

/// Gives an observed indeterminate op a deadline: when it is the only op
/// that writes its value, it must take effect before the earliest `ok` op
/// that observed that value returned. Returns how many ops were bounded.
///
/// Sound and complete: with one writer of `v`, every linearization puts
/// it before any op that reads or expects `v`, so its instant is no later
/// than that op's return; the bound excludes no linearization. It turns a
/// pending op, which the search carries to the end of the history, into
/// an ordinary one.
fn bound_observed(ops: &mut [RegOp]) -> usize {
    let written = |op: &RegOp| match op.action {
        Action::Write(v) | Action::Cas { new: v, .. } => Some(v),
        Action::Read(_) => None,
    };
    let mut writers: HashMap<u32, usize> = HashMap::new();
    for v in ops.iter().filter_map(written) {
        *writers.entry(v).or_default() += 1;
    }
    let mut first_observed: HashMap<u32, u64> = HashMap::new();
    for op in ops.iter() {
        let (Some(ret), Action::Read(v) | Action::Cas { old: v, .. }) = (op.return_ns, op.action) else {
            continue;
        };
        let t = first_observed.entry(v).or_insert(ret);
        *t = (*t).min(ret);
    }
    let mut bounded = 0;
    for op in ops.iter_mut().filter(|op| op.return_ns.is_none()) {
        let Some(v) = written(op) else {
            continue;
        };
        if v != ABSENT && writers[&v] == 1 {
            if let Some(&deadline) = first_observed.get(&v) {
                op.return_ns = Some(deadline.max(op.call_ns));
                bounded += 1;
            }
        }
    }
    bounded
}

struct Budget {
    /// `None`: the deadline is too far to represent.
    deadline: Option<Instant>,
    states_max: usize,
    states_total: u64,
}

impl Budget {
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Search {
    Linearizable,
    NotLinearizable,
    Exhausted(String),
}

/// A set of op positions with an incrementally maintained hash (Zobrist
/// style), so the cache hashes a bitset in O(1).
#[derive(Clone, PartialEq, Eq)]
struct BitSet {
    words: Box<[u64]>,
    hash: u64,
}

impl BitSet {
    fn new(n: usize) -> BitSet {
        BitSet { words: vec![0; n.div_ceil(64)].into_boxed_slice(), hash: 0 }
    }

    fn flip(&mut self, i: usize) {
        self.words[i / 64] ^= 1 << (i % 64);
        self.hash ^= splitmix64(i as u64);
    }
}

impl Hash for BitSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A call or return, in the order the search walks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    time_ns: u64,
    /// Calls sort before returns at the same instant: equal times are
    /// concurrent.
    is_return: bool,
    op: u32,
}

fn events(ops: &[RegOp]) -> Vec<Event> {
    let mut events = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        events.push(Event { time_ns: op.call_ns, is_return: false, op: i as u32 });
        events.push(Event { time_ns: op.return_ns.unwrap_or(u64::MAX), is_return: true, op: i as u32 });
    }
    events.sort_unstable();
    events
}

/// A node of the doubly linked event list. Position 0 is the head,
/// `2n + 1` the tail.
#[derive(Clone, Copy)]
struct Entry {
    op: u32,
    is_call: bool,
    prev: u32,
    next: u32,
    /// A call's return entry.
    ret: u32,
}

/// The Wing-Gong-Lowe search over one key's ops.
fn search(ops: &[RegOp], budget: &mut Budget) -> Search {
    if budget.expired() {
        return Search::Exhausted("deadline passed".into());
    }
    let n = ops.len();
    let words = n.div_ceil(64);
    let states_max = budget.states_max.min(LINEARIZABILITY_CACHE_BYTES_MAX / (words * 8 + 48));

    // Build the list.
    let tail = 2 * n as u32 + 1;
    let mut entries = vec![Entry { op: u32::MAX, is_call: false, prev: 0, next: 0, ret: 0 }; 2 * n + 2];
    let mut call_entry = vec![0u32; n];
    for (i, ev) in events(ops).iter().enumerate() {
        let pos = i as u32 + 1;
        entries[pos as usize].op = ev.op;
        entries[pos as usize].is_call = !ev.is_return;
        if ev.is_return {
            entries[call_entry[ev.op as usize] as usize].ret = pos;
        } else {
            call_entry[ev.op as usize] = pos;
        }
    }
    for pos in 0..=tail {
        entries[pos as usize].prev = pos.saturating_sub(1);
        entries[pos as usize].next = (pos + 1).min(tail);
    }

    let lift = |entries: &mut [Entry], e: u32| {
        let Entry { prev, next, ret, .. } = entries[e as usize];
        entries[prev as usize].next = next;
        entries[next as usize].prev = prev;
        let Entry { prev, next, .. } = entries[ret as usize];
        entries[prev as usize].next = next;
        entries[next as usize].prev = prev;
    };
    let unlift = |entries: &mut [Entry], e: u32| {
        let Entry { prev, next, ret, .. } = entries[e as usize];
        let r = entries[ret as usize];
        entries[r.prev as usize].next = ret;
        entries[r.next as usize].prev = ret;
        entries[prev as usize].next = e;
        entries[next as usize].prev = e;
    };

    let mut linearized = BitSet::new(n);
    let mut state = ABSENT;
    let mut calls: Vec<(u32, u32)> = Vec::new(); // (call entry, state before)
    let mut cache: HashSet<(BitSet, u32)> = HashSet::new();
    let mut entry = entries[0].next;
    let mut steps = 0u64;
    while entries[0].next != tail {
        steps += 1;
        if steps.is_multiple_of(DEADLINE_CHECK_STEPS) && budget.expired() {
            budget.states_total += cache.len() as u64;
            return Search::Exhausted("deadline passed".into());
        }
        let e = entries[entry as usize];
        if e.is_call {
            let op = &ops[e.op as usize];
            if let Some(next_state) = op.step(state) {
                linearized.flip(e.op as usize);
                if cache.insert((linearized.clone(), next_state)) {
                    if cache.len() > states_max {
                        budget.states_total += cache.len() as u64;
                        return Search::Exhausted(format!("search exceeded {states_max} states"));
                    }
                    calls.push((entry, state));
                    state = next_state;
                    lift(&mut entries, entry);
                    entry = entries[0].next;
                    continue;
                }
                linearized.flip(e.op as usize);
            }
            entry = e.next;
        } else {
            // The op of this return was not linearized in time: backtrack.
            let Some((call, state_before)) = calls.pop() else {
                budget.states_total += cache.len() as u64;
                return Search::NotLinearizable;
            };
            state = state_before;
            linearized.flip(entries[call as usize].op as usize);
            unlift(&mut entries, call);
            entry = entries[call as usize].next;
        }
    }
    budget.states_total += cache.len() as u64;
    Search::Linearizable
}

/// The ops of a prefix of `events`: ops whose call is in the prefix, with
/// those whose return is not treated as indeterminate (reads dropped).
fn prefix(ops: &[RegOp], events: &[Event], len: usize) -> Vec<RegOp> {
    let mut called = vec![false; ops.len()];
    let mut returned = vec![false; ops.len()];
    for ev in &events[..len] {
        if ev.is_return {
            returned[ev.op as usize] = true;
        } else {
            called[ev.op as usize] = true;
        }
    }
    ops.iter()
        .enumerate()
        .filter(|&(i, op)| called[i] && (returned[i] || op.writes()))
        .map(|(i, op)| RegOp { return_ns: if returned[i] { op.return_ns } else { None }, ..*op })
        .collect()
}

/// Finds the smallest failing prefix of a nonlinearizable key and names
/// the op that cannot be placed, the ops concurrent with it, and the last
/// writes before it.
fn explain(history: &History, key: &str, ops: &[RegOp], budget: &mut Budget) -> (String, Vec<u64>) {
    let events = events(ops);
    // Invariant of the bisection: prefix(lo) is not known to fail,
    // prefix(hi) fails.
    let (mut lo, mut hi) = (0, events.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match search(&prefix(ops, &events, mid), budget) {
            Search::NotLinearizable => hi = mid,
            Search::Linearizable => lo = mid,
            // Out of budget: report the smallest prefix proven so far.
            Search::Exhausted(_) => break,
        }
    }
    let culprit_pos = events[hi - 1].op as usize;
    let culprit = ops[culprit_pos];
    let in_prefix: HashSet<u32> = events[..hi].iter().map(|e| e.op).collect();
    let ops_in_prefix = in_prefix.len();

    let mut named = vec![culprit.index];
    let culprit_return = culprit.return_ns.unwrap_or(u64::MAX);
    // Concurrent with the culprit.
    for (i, op) in ops.iter().enumerate() {
        if i != culprit_pos
            && in_prefix.contains(&(i as u32))
            && op.call_ns <= culprit_return
            && op.return_ns.unwrap_or(u64::MAX) >= culprit.call_ns
        {
            named.push(op.index);
        }
    }
    // The last writes that completed before it.
    let mut before: Vec<&RegOp> =
        ops.iter().filter(|op| op.writes() && op.return_ns.is_some_and(|r| r < culprit.call_ns)).collect();
    before.sort_by_key(|op| std::cmp::Reverse(op.return_ns));
    named.extend(before.iter().take(3).map(|op| op.index));
    named.truncate(ANOMALY_OPS_MAX);

    let culprit_text = history.pair_of(culprit.index).map_or_else(|| format!("op {}", culprit.index), |p| p.describe());
    let message = format!(
        "key {key}: the first {ops_in_prefix} ops on this key have no linearization \
         (the register starts absent); {culprit_text} cannot be placed",
    );
    (message, named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::verdict::Validity;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    fn check_default(h: &History) -> Verdict {
        check(h, &RegisterOptions::default())
    }

    /// Goal: the worked example of the module docs is caught, and the
    /// anomaly names the late read as the op that cannot be placed.
    /// Method: write 1 | read 1 concurrent; a later read sees null.
    #[test]
    fn stale_read_after_completed_write() {
        let h = hist(vec![
            inv(0, "write", json!([1, 1])),
            inv(1, "read", json!([1, null])),
            ok(0, "write", json!([1, 1])),
            ok(1, "read", json!([1, 1])),
            inv(2, "read", json!([1, null])),
            ok(2, "read", json!([1, null])),
        ]);
        let v = check_default(&h);
        assert_eq!(v.to_string(), "invalid: nonlinearizable");
        let a = &v.anomalies[0];
        assert!(a.message.starts_with("key 1: the first 3 ops"), "{}", a.message);
        assert!(a.message.contains("op 5 (p2 read"), "{}", a.message);
        assert!(a.ops.contains(&5) && a.ops.contains(&2), "{:?}", a.ops);
    }

    /// Goal: the valid counterpart passes: a read concurrent with a write
    /// may see either value. Method: two concurrent reads see old and new.
    #[test]
    fn concurrent_read_may_see_old_or_new() {
        let h = hist(vec![
            inv(0, "write", json!([1, 1])),
            inv(1, "read", json!([1, null])),
            inv(2, "read", json!([1, null])),
            ok(1, "read", json!([1, 1])),
            ok(2, "read", json!([1, null])),
            ok(0, "write", json!([1, 1])),
        ]);
        // Note: p2's read returned after p1's read returned 1, but they
        // overlap, so p2 can be ordered first.
        assert_eq!(check_default(&h).to_string(), "valid");
    }

    /// Goal: a read of a value nobody wrote is caught.
    #[test]
    fn read_of_unwritten_value() {
        let h = hist(vec![
            inv(0, "write", json!(["a", 1])),
            ok(0, "write", json!(["a", 1])),
            inv(0, "read", json!(["a", null])),
            ok(0, "read", json!(["a", 2])),
        ]);
        let v = check_default(&h);
        assert!(v.is_invalid());
        assert!(v.anomalies[0].message.starts_with("key \"a\""));
    }

    /// Goal: a read-only read is held to linearizability like a leader
    /// read; snapshot and bounded-staleness reads are not (they promise no
    /// real-time order). Method: the same stale read under each `f`.
    #[test]
    fn read_only_reads_are_linearizable_reads() {
        let stale = |f: &str, arg: Value| {
            hist(vec![
                inv(0, "write", json!([1, 1])),
                ok(0, "write", json!([1, 1])),
                inv(1, f, arg.clone()),
                ok(1, f, json!([1, null])),
            ])
        };
        assert_eq!(check_default(&stale("read-only", json!([1, null]))).to_string(), "invalid: nonlinearizable");
        let snapshot = check_default(&stale("read-at", json!([1, {"read_ts": 5}])));
        assert!(snapshot.is_valid(), "{snapshot}");
        assert_eq!(snapshot.stats["ops"], 1, "only the write");
        let bounded = check_default(&stale("read-bounded", json!([1, {"max_staleness_ns": 5, "invoke_wall_ns": 9}])));
        assert!(bounded.is_valid(), "{bounded}");
    }

    /// Goal: cas semantics: an ok cas needs the old value, a failed cas is
    /// dropped, an indeterminate cas may or may not have happened.
    /// Method: four small histories, two valid, two invalid.
    #[test]
    fn cas_semantics() {
        // ok cas 1->2 after write 1, then read 2: valid.
        let good = hist(vec![
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])),
            inv(0, "cas", json!([1, [1, 2]])),
            ok(0, "cas", json!([1, [1, 2]])),
            inv(1, "cas", json!([1, [5, 6]])),
            fail(1, "cas", json!([1, [5, 6]])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 2])),
        ]);
        assert!(check_default(&good).is_valid());
        // ok cas 5->6 when the value is 1: invalid.
        let bad = hist(vec![
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])),
            inv(0, "cas", json!([1, [5, 6]])),
            ok(0, "cas", json!([1, [5, 6]])),
        ]);
        assert!(check_default(&bad).is_invalid());
        // An info cas 1->2 may take effect late: reads 1 then 2 are valid,
        // and so is a read of 1 only (it never took effect).
        let late = hist(vec![
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])),
            inv(0, "cas", json!([1, [1, 2]])),
            info(0, "cas", json!([1, [1, 2]])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 1])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 2])),
            inv(2, "cas", json!([1, [7, 8]])),
            info(2, "cas", json!([1, [7, 8]])),
        ]);
        assert!(check_default(&late).is_valid());
        // But it cannot be undone: 1, 2, then 1 again is invalid.
        let undone = hist(vec![
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])),
            inv(0, "cas", json!([1, [1, 2]])),
            info(0, "cas", json!([1, [1, 2]])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 2])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 1])),
        ]);
        assert!(check_default(&undone).is_invalid());
    }

    /// Goal: failed writes never happened; info writes may happen late.
    /// Method: a read sees a failed write's value (invalid); a read sees
    /// an info write's value long after the info (valid).
    #[test]
    fn failed_and_indeterminate_writes() {
        let failed = hist(vec![
            inv(0, "write", json!([1, 9])),
            fail(0, "write", json!([1, 9])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 9])),
        ]);
        assert!(check_default(&failed).is_invalid());
        let late = hist(vec![
            inv(0, "write", json!([1, 9])),
            info(0, "write", json!([1, 9])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, null])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 9])),
            inv(2, "read", json!([1, null])),
        ]);
        assert!(check_default(&late).is_valid());
    }

    /// Goal: keys are independent: a value of key 1 says nothing about key 2.
    #[test]
    fn keys_are_independent() {
        let h = hist(vec![
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])),
            inv(0, "read", json!([2, null])),
            ok(0, "read", json!([2, null])),
        ]);
        let v = check_default(&h);
        assert!(v.is_valid());
        assert_eq!(v.stats["keys"], 2);
    }

    /// Goal: malformed values and empty histories give unknown, not valid.
    #[test]
    fn malformed_and_empty_are_unknown() {
        let h = hist(vec![inv(0, "write", json!(5)), ok(0, "write", json!(5))]);
        let v = check_default(&h);
        assert!(matches!(v.result, Validity::Unknown { .. }), "{v}");
        assert!(v.to_string().contains("not [key, v]"));
        let empty = hist(vec![nemesis("start-partition")]);
        assert!(matches!(check_default(&empty).result, Validity::Unknown { .. }));
    }

    /// Goal: an exhausted budget gives unknown. Method: a tiny state
    /// bound, and a zero deadline.
    #[test]
    fn exhausted_budget_is_unknown() {
        let h = hist(vec![
            inv(0, "write", json!([1, 1])),
            inv(1, "write", json!([1, 2])),
            ok(0, "write", json!([1, 1])),
            ok(1, "write", json!([1, 2])),
        ]);
        let tiny = RegisterOptions { states_per_key_max: 1, ..RegisterOptions::default() };
        let v = check(&h, &tiny);
        assert!(v.to_string().starts_with("unknown: 1 of 1 keys undecided: key 1: search exceeded"), "{v}");
        let now = RegisterOptions { deadline: Duration::ZERO, ..RegisterOptions::default() };
        assert!(check(&h, &now).to_string().contains("deadline"));
    }

    /// A correct register database: every op takes effect at its slot's
    /// effect instant. Writes and cas write unique values.
    /// Returns the ops and, for the stale-read injection, candidate reads:
    /// (op, a value that was definitely overwritten before it began).
    fn simulate(seed: u64, n: usize, keys: u64, workers: usize) -> (Vec<SimOp>, Vec<(usize, Value)>) {
        simulate_with_info(seed, n, keys, workers, 10)
    }

    fn simulate_with_info(
        seed: u64,
        n: usize,
        keys: u64,
        workers: usize,
        info_per_mille: u32,
    ) -> (Vec<SimOp>, Vec<(usize, Value)>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let slots = slots(&mut rng, n, workers, info_per_mille);
        let mut ops: Vec<SimOp> = Vec::with_capacity(n);
        let mut next_value = 0u64;
        // Per key, the values written so far in generation order: cas ops
        // guess the last one.
        let mut written: HashMap<u64, Vec<u64>> = HashMap::new();
        for s in &slots {
            let key = rng.random_range(0..keys);
            let (f, arg) = match rng.random_range(0..4) {
                0 | 1 => ("read", Value::Null),
                2 => {
                    next_value += 1;
                    written.entry(key).or_default().push(next_value);
                    ("write", json!(next_value))
                }
                _ => {
                    next_value += 1;
                    let old = written.get(&key).and_then(|w| w.last().copied());
                    written.entry(key).or_default().push(next_value);
                    ("cas", json!([old, next_value]))
                }
            };
            ops.push(SimOp {
                process: s.process,
                f: f.into(),
                invoke_value: json!([key, arg]),
                outcome: OpType::Ok,
                ok_value: Value::Null,
                invoke_ns: s.invoke_ns,
                complete_ns: Some(s.complete_ns),
                commit_ts: None,
            });
        }
        // Per key: the current value and the ok writes that produced the
        // last two values (value, invoke, return).
        let mut state: HashMap<u64, Value> = HashMap::new();
        let mut last_two: HashMap<u64, Vec<(Value, u64, u64)>> = HashMap::new();
        let mut stale = Vec::new();
        for i in effect_order(&slots) {
            let s = &slots[i];
            let op = &mut ops[i];
            let key = op.invoke_value[0].as_u64().unwrap();
            let arg = op.invoke_value[1].clone();
            let cur = state.get(&key).cloned().unwrap_or(Value::Null);
            let applies = !s.timed_out || chance(&mut rng, 500);
            let new_value = match op.f.as_str() {
                "read" => {
                    op.ok_value = json!([key, cur]);
                    if let Some([(v1, _, r1), (_, i2, r2)]) = last_two.get(&key).map(|w| w.as_slice()) {
                        if r1 < i2 && *r2 < s.invoke_ns && !s.timed_out {
                            stale.push((i, v1.clone()));
                        }
                    }
                    None
                }
                "write" => {
                    op.ok_value = op.invoke_value.clone();
                    Some(arg.clone())
                }
                _ if arg[0] == cur => {
                    op.ok_value = op.invoke_value.clone();
                    Some(arg[1].clone())
                }
                _ => {
                    op.outcome = OpType::Fail;
                    None
                }
            };
            if s.timed_out {
                op.outcome = OpType::Info;
            }
            if let (Some(v), true) = (new_value, applies) {
                state.insert(key, v.clone());
                let w = last_two.entry(key).or_default();
                if s.timed_out {
                    w.clear(); // an indeterminate write: no stale-read claim
                } else {
                    w.push((v, s.invoke_ns, s.complete_ns));
                    if w.len() > 2 {
                        w.remove(0);
                    }
                }
            }
        }
        // The last op of worker 0's process stays pending.
        if let Some(last) = ops.iter_mut().rev().find(|o| o.process == 0) {
            last.complete_ns = None;
        }
        (ops, stale)
    }

    /// Goal: the checker accepts large correct histories, fast.
    /// Method: 10,000 ops of a simulated correct register database over
    /// 100 keys, 10 workers, 1% timeouts, one op pending at the end.
    #[test]
    fn simulated_10k_ops_100_keys_are_linearizable() {
        let (ops, _) = simulate(1, 10_000, 100, 10);
        let h = to_history(&ops);
        let started = Instant::now();
        let v = check_default(&h);
        eprintln!("register 10k ops / 100 keys: {:?}, {v}, {:?}", started.elapsed(), v.stats);
        assert!(v.is_valid(), "{v}: {:?}", v.anomalies);
        assert!(v.stats["ops"] > 9_000);
    }

    /// Goal: high contention (few keys, many workers, more timeouts) is
    /// still decided. Method: 10,000 ops over 5 keys, 20 workers.
    #[test]
    fn simulated_10k_ops_5_keys_contended_are_linearizable() {
        let (ops, _) = simulate(2, 10_000, 5, 20);
        let h = to_history(&ops);
        let started = Instant::now();
        let v = check_default(&h);
        eprintln!("register 10k ops / 5 keys: {:?}, {v}, {:?}", started.elapsed(), v.stats);
        assert!(v.is_valid(), "{v}: {:?}", v.anomalies);
    }

    /// Goal: one stale read in 10,000 ops is found, and named.
    /// Method: pick a read that began after two sequential writes had
    /// completed, make it return the older value (which nothing else
    /// writes), check.
    #[test]
    fn simulated_10k_ops_with_one_stale_read() {
        let (mut ops, stale) = simulate(3, 10_000, 100, 10);
        assert!(!stale.is_empty());
        let (i, old) = stale[stale.len() / 2].clone();
        let key = ops[i].invoke_value[0].clone();
        ops[i].ok_value = json!([key, old]);
        let h = to_history(&ops);
        let started = Instant::now();
        let v = check_default(&h);
        eprintln!("register 10k ops, one stale read: {:?}, {v}", started.elapsed());
        assert_eq!(v.to_string(), "invalid: nonlinearizable");
        assert_eq!(v.anomalies.len(), 1);
        let index = index_of(&h, &ops[i]);
        assert!(v.anomalies[0].message.contains(&format!("op {index} ")), "{}", v.anomalies[0].message);
    }

    /// Goal: timeouts do not make a contended key undecidable, either way.
    /// Method: one key, 10 workers, 10% of ops time out (half of those
    /// take effect); check the correct history, then the same with one
    /// stale read injected. Pruning unobserved indeterminate writes and
    /// bounding observed ones is what keeps both searches small.
    #[test]
    fn info_heavy_single_key_is_decided() {
        let (mut ops, stale) = simulate_with_info(9, 1_000, 1, 10, 100);
        let v = check_default(&to_history(&ops));
        assert!(v.is_valid(), "{v}");
        assert!(v.stats["ops-pruned"] > 0 && v.stats["ops-bounded"] > 0, "{:?}", v.stats);
        let (i, old) = stale[stale.len() / 2].clone();
        let key = ops[i].invoke_value[0].clone();
        ops[i].ok_value = json!([key, old]);
        let h = to_history(&ops);
        let started = Instant::now();
        let v = check_default(&h);
        eprintln!("register 1k ops / 1 key / 10% info, one stale read: {:?}, {v}, {:?}", started.elapsed(), v.stats);
        assert_eq!(v.to_string(), "invalid: nonlinearizable");
        assert!(v.anomalies[0].message.contains(&format!("op {} ", index_of(&h, &ops[i]))));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Goal: every simulated correct history is linearizable (or,
        /// when no op completed ok, at least not invalid: a lone pending
        /// read leaves nothing to check, so `unknown`),
        /// and every one with a read of a never-written value is not.
        /// Method: random seeds, sizes and key counts.
        #[test]
        fn simulated_histories(seed in 0u64..1_000_000, n in 1usize..300, keys in 1u64..6, workers in 1usize..8) {
            let (mut ops, _) = simulate(seed, n, keys, workers);
            let v = check_default(&to_history(&ops));
            let any_ok = ops.iter().any(|o| o.outcome == OpType::Ok && o.complete_ns.is_some());
            if any_ok {
                proptest::prop_assert!(v.is_valid(), "{}", v);
            } else {
                proptest::prop_assert!(!v.is_invalid(), "{}", v);
            }
            if let Some(read) = ops.iter_mut().find(|o| o.f == "read" && o.outcome == OpType::Ok && o.complete_ns.is_some()) {
                read.ok_value[1] = json!("never written");
                proptest::prop_assert!(check_default(&to_history(&ops)).is_invalid());
            }
        }
    }
}
