//! Timestamped registers: every read checked against the commit
//! timestamps of the writes it could have seen.
//!
//! # Why
//!
//! The [`register`](super::register) checker judges reads by real time
//! alone, which fits reads that promise linearizability (a leader read, a
//! read-only transaction at `TT.now().latest`). A Spanner-style database
//! also serves reads that promise something else: a snapshot read at a
//! timestamp `T` the user chose promises exactly the state at `T`, and a
//! bounded-staleness read promises a state at most `d` old. Real time
//! says little about those; timestamps say everything. And even for the
//! linearizable reads, the timestamps the database reports catch bugs the
//! values alone can hide (a read served below a commit it had already
//! revealed to someone else).
//!
//! # Model
//!
//! Per key, the ops of the register workload with the timestamps the
//! database reported (values unique per key, never null: the harness
//! writes fresh integers):
//!
//! ```text
//! f             invoke value                                          ok value  ok timestamps
//! write         [k, v]                                                [k, v]    commit_ts
//! cas           [k, [old, new]]                                       same      commit_ts
//! read          [k, null]                      leader, linearizable   [k, v]    read_ts, version_ts
//! read-only     [k, null]                      at TT.now().latest     [k, v]    read_ts, version_ts
//! read-at       [k, {"read_ts": T}]            snapshot at T          [k, v]    read_ts, version_ts
//! read-bounded  [k, {"max_staleness_ns": d,    bounded staleness      [k, v]    read_ts, version_ts
//!                    "invoke_wall_ns": W}]
//! ```
//!
//! `version_ts` is the commit timestamp of the version returned (absent
//! with `null`: no version at `read_ts`); `W` is the harness's wall clock
//! (ns since the Unix epoch) when it invoked the read. A snapshot read is
//! judged at the `T` it asked for, the others at the `read_ts` reported.
//!
//! A write's commit timestamp is its `commit_ts` when it returned `ok`.
//! A write of unknown fate (`info`, or pending at the end) whose value a
//! read returned did commit, at that read's `version_ts`: the check
//! *learns* it. Unobserved writes of unknown fate are ignored (they may
//! never have happened); failed writes never happened.
//!
//! # The rules and their anomaly kinds
//!
//! For every `ok` read `R` of key `k`, judged at timestamp `r`, returning
//! value `v` with version `t`:
//!
//! - (a) `unwritten-value`: `v` is not null and no write of `k` that could
//!   have happened wrote it (no write did, or its only write failed).
//!   `wrong-version`: the write of `v` committed at `c != t`, or two reads
//!   report different versions for one write of unknown fate, or `t > r`
//!   (a version from after the read's own timestamp).
//! - (b) `missed-write`: some write of `k` committed at `c` with
//!   `t < c <= r` (`t = 0` for null): MVCC at `r` must return the newest
//!   version at or below `r`, and `c` is newer than what `R` returned.
//! - (c) `read-ts-inversion`: `R` is a `read` or `read-only`, and an op on
//!   `k` that completed before `R` began revealed a commit at `c > r`: an
//!   `ok` write or cas with `commit_ts` `c`, or any `ok` read that
//!   returned the version at `c`. Such a commit was acknowledged, or
//!   shown to someone, so it is in the past of real time (commit-wait and
//!   the visibility wait hold every such answer until `TT.after(c)`), and
//!   a read that promises to see the present must read at or above it.
//! - (d) `stale-bounded-read`: `R` is a `read-bounded` with bound `d`,
//!   invoked at wall time `W`, and `r < W - d - slack`: its snapshot is
//!   older than it promised. `slack` ([`TimestampedOptions`]) covers only
//!   the harness's and the servers' readings of one machine's clock.
//!
//! # Worked example (epsilon 100 ms; times and timestamps in ms)
//!
//! ```text
//!   p0  |------------ write 7 (commit_ts 1190) ------------|  invoked 1000, ok 1200
//!   p1     |read -> 7 (version 1190, read_ts 1190)|            1010..1015, at the leader
//!   p2        |read-only -> 6 (version 900, read_ts 1030)|     1020..1025, at a follower
//! ```
//!
//! The leader's clock runs 90 ms ahead, a follower's 90 ms behind. The
//! leader commits at its `TT.now().latest` = 1000 + 90 + 100 = 1190 and,
//! skipping the visibility wait, answers p1 at once. p2's read-only
//! transaction, at the follower, reads at its `TT.now().latest` =
//! 1020 - 90 + 100 = 1030 and returns the older value. Rule (c): p1
//! revealed the commit at 1190 before p2 began, and p2 read at 1030: a
//! `read-ts-inversion` naming both. (The register checker sees the same
//! history as `nonlinearizable`: 7, then 6, while the write is still in
//! flight.) Every other rule holds: 6 was written at 900 and nothing
//! committed in (900, 1030].
//!
//! # Invariants
//!
//! - Every anomaly names the read and the op that contradicts it (the
//!   write, or the op that revealed the commit).
//! - A read flagged by (a) is not judged by (b): with a wrong version, a
//!   "missed" write would be noise on top of the same fault.
//! - Output is deterministic: keys in order, reads in history order.
//!
//! # Limits and caveats
//!
//! - O(n log n) per key. A key with a value written twice (or a write of
//!   null) cannot be checked by value and is `unknown` ("undecided").
//! - Reads without `read_ts` (or a non-null read without `version_ts`)
//!   are skipped and counted; a history where no read carries `read_ts`
//!   is `unknown`, so a harness that forgot to record them cannot pass.
//! - Rule (c) is per key: a leader read's `read_ts` is its shard's newest
//!   applied timestamp, which says nothing about other shards.
//! - Linearizability of `read` and `read-only` (real-time order of values)
//!   is the register checker's job; the two complement each other.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::history::{History, OpType, Pair};
use crate::limits::STALENESS_SLACK_DEFAULT;
use crate::verdict::{kinds, Findings, Verdict};

/// Parameters of the timestamped-register check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampedOptions {
    /// How much older than its bound a bounded-staleness read may be
    /// judged, for the harness's and the servers' clock readings (module
    /// docs, rule (d)).
    pub staleness_slack: Duration,
}

impl Default for TimestampedOptions {
    fn default() -> Self {
        TimestampedOptions { staleness_slack: STALENESS_SLACK_DEFAULT }
    }
}

/// What a read promised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadKind {
    /// `read`: linearizable, at the leader.
    Latest,
    /// `read-only`: at the serving replica's `TT.now().latest`.
    Now,
    /// `read-at`: a snapshot at this timestamp.
    At(u64),
    /// `read-bounded`: at most `max_staleness_ns` old when invoked at
    /// `invoke_wall_ns`.
    Bounded { max_staleness_ns: u64, invoke_wall_ns: u64 },
}

impl ReadKind {
    /// Whether the read promises to see everything revealed before it
    /// began (rule (c)).
    fn sees_the_present(self) -> bool {
        matches!(self, ReadKind::Latest | ReadKind::Now)
    }
}

struct WriteOp {
    /// The value written, as JSON text.
    value: String,
    outcome: OpType,
    /// The `commit_ts` of an `ok` completion.
    commit_ts: Option<u64>,
    return_ns: Option<u64>,
    index: u64,
}

struct ReadOp {
    kind: ReadKind,
    /// JSON text; `None` for null.
    value: Option<String>,
    version_ts: Option<u64>,
    /// The timestamp the read is judged at (module docs).
    read_ts: u64,
    invoke_ns: u64,
    return_ns: u64,
    index: u64,
}

#[derive(Default)]
struct KeyOps {
    writes: Vec<WriteOp>,
    reads: Vec<ReadOp>,
}

/// Checks every read of every key against the writes' commit timestamps
/// (module docs).
pub fn check(history: &History, options: &TimestampedOptions) -> Verdict {
    let mut keys: BTreeMap<String, KeyOps> = BTreeMap::new();
    let mut skipped = 0u64;
    let mut per_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for pair in history.pairs() {
        let f = pair.f();
        if !matches!(f, "write" | "cas" | "read" | "read-only" | "read-at" | "read-bounded") {
            continue;
        }
        match parse(&pair) {
            Ok(Parsed::Write(key, w)) => keys.entry(key).or_default().writes.push(w),
            Ok(Parsed::Read(key, r)) => {
                *per_kind.entry(f).or_default() += 1;
                keys.entry(key).or_default().reads.push(r);
            }
            Ok(Parsed::Skipped) => skipped += 1,
            Ok(Parsed::Nothing) => {}
            Err(reason) => return Verdict::unknown(format!("{}: {reason}", pair.describe())),
        }
    }

    let mut findings = Findings::default();
    findings.stat("keys", keys.len() as u64);
    for (f, n) in &per_kind {
        findings.stat(&format!("reads-{}", stat_name(f)), *n);
    }
    findings.stat("reads-without-timestamps", skipped);
    let reads: u64 = per_kind.values().sum();
    let slack_ns = u64::try_from(options.staleness_slack.as_nanos()).unwrap_or(u64::MAX);
    let mut undecided = Vec::new();
    let (mut committed, mut learned) = (0u64, 0u64);
    for (key, ops) in &keys {
        match check_key(history, key, ops, slack_ns, &mut findings) {
            Ok((c, l)) => {
                committed += c;
                learned += l;
            }
            Err(why) => undecided.push(format!("key {key}: {why}")),
        }
    }
    findings.stat("writes-committed", committed);
    findings.stat("writes-learned", learned);
    findings.stat("keys-undecided", undecided.len() as u64);
    let unknown = if reads == 0 {
        Some("no ok read carries a read_ts".to_string())
    } else if !undecided.is_empty() {
        Some(format!(
            "{} of {} keys undecided: {}",
            undecided.len(),
            keys.len(),
            crate::verdict::quote_items(&undecided, 3)
        ))
    } else {
        None
    };
    findings.finish(unknown)
}

/// The stats name of a read `f`: `reads-leader`, `reads-read-only`,
/// `reads-snapshot`, `reads-bounded`.
fn stat_name(f: &str) -> &'static str {
    match f {
        "read" => "leader",
        "read-only" => "read-only",
        "read-at" => "snapshot",
        _ => "bounded",
    }
}

enum Parsed {
    Write(String, WriteOp),
    Read(String, ReadOp),
    /// An ok read without the timestamps this check needs.
    Skipped,
    /// A read that did not return: it promised nothing.
    Nothing,
}

fn parse(pair: &Pair) -> Result<Parsed, String> {
    let split = |v: &Value| -> Result<(Value, Value), String> {
        match v.as_array().map(|a| a.as_slice()) {
            Some([key, arg]) => Ok((key.clone(), arg.clone())),
            _ => Err(format!("value {v} is not [key, v]")),
        }
    };
    let (key, arg) = split(&pair.invoke.value)?;
    let key_text = key.to_string();
    let outcome = pair.outcome();
    let field = |name: &str| -> Result<u64, String> {
        arg.get(name).and_then(Value::as_u64).ok_or_else(|| format!("argument {arg} lacks an integer {name:?}"))
    };
    let kind = match pair.f() {
        "write" | "cas" => {
            let value = match pair.f() {
                "write" => arg.clone(),
                _ => match arg.as_array().map(|a| a.as_slice()) {
                    Some([_, new]) => new.clone(),
                    _ => return Err(format!("cas argument {arg} is not [old, new]")),
                },
            };
            let ok = outcome == OpType::Ok;
            return Ok(Parsed::Write(
                key_text,
                WriteOp {
                    value: value.to_string(),
                    outcome,
                    commit_ts: if ok { pair.commit_ts() } else { None },
                    return_ns: pair.return_ns(),
                    index: pair.index(),
                },
            ));
        }
        "read" => ReadKind::Latest,
        "read-only" => ReadKind::Now,
        "read-at" => ReadKind::At(field("read_ts")?),
        _ => {
            ReadKind::Bounded { max_staleness_ns: field("max_staleness_ns")?, invoke_wall_ns: field("invoke_wall_ns")? }
        }
    };
    if outcome != OpType::Ok {
        return Ok(Parsed::Nothing);
    }
    let (ok_key, read) = split(pair.value())?;
    if ok_key != key {
        return Err(format!("read of key {key} completed with key {ok_key}"));
    }
    let value = (!read.is_null()).then(|| read.to_string());
    let (Some(reported_ts), Some(return_ns)) = (pair.read_ts(), pair.return_ns()) else {
        return Ok(Parsed::Skipped);
    };
    if value.is_some() && pair.version_ts().is_none() {
        return Ok(Parsed::Skipped);
    }
    Ok(Parsed::Read(
        key_text,
        ReadOp {
            kind,
            value,
            version_ts: pair.version_ts(),
            read_ts: match kind {
                ReadKind::At(t) => t,
                _ => reported_ts,
            },
            invoke_ns: pair.invoke_ns(),
            return_ns,
            index: pair.index(),
        },
    ))
}

fn describe(history: &History, index: u64) -> String {
    history.pair_of(index).map_or_else(|| format!("op {index}"), |p| p.describe())
}

/// Checks one key; returns how many writes had a known commit timestamp
/// and how many of those were learned from reads, or why the key cannot
/// be checked.
fn check_key(
    history: &History,
    key: &str,
    ops: &KeyOps,
    slack_ns: u64,
    findings: &mut Findings,
) -> Result<(u64, u64), String> {
    // The writer of each value.
    let mut writers: HashMap<&str, usize> = HashMap::new();
    for (i, w) in ops.writes.iter().enumerate() {
        if w.value == "null" {
            return Err(format!("{} writes null; the check needs non-null values", describe(history, w.index)));
        }
        if let Some(&other) = writers.get(w.value.as_str()) {
            return Err(format!(
                "value {} is written by both op {} and op {}; the check needs unique values",
                w.value, ops.writes[other].index, w.index
            ));
        }
        writers.insert(&w.value, i);
    }

    // (a): every returned value has its write, at the version reported;
    // learn the commit timestamps of writes of unknown fate.
    let mut commit: Vec<Option<(u64, Option<u64>)>> =
        ops.writes.iter().map(|w| w.commit_ts.map(|c| (c, None))).collect();
    let mut flagged = vec![false; ops.reads.len()];
    for (ri, r) in ops.reads.iter().enumerate() {
        let text = || describe(history, r.index);
        if let Some(t) = r.version_ts.filter(|&t| t > r.read_ts) {
            flagged[ri] = true;
            findings.add(
                kinds::WRONG_VERSION,
                format!("key {key}: {} read at {} but returned a version committed later, at {t}", text(), r.read_ts),
                vec![r.index],
            );
            continue;
        }
        let Some(value) = &r.value else {
            if let Some(t) = r.version_ts {
                flagged[ri] = true;
                findings.add(
                    kinds::WRONG_VERSION,
                    format!("key {key}: {} returned no value but a version at {t}, and nothing deletes", text()),
                    vec![r.index],
                );
            }
            continue;
        };
        let t = r.version_ts.expect("non-null reads without version_ts are skipped when parsed");
        let Some(&wi) = writers.get(value.as_str()) else {
            flagged[ri] = true;
            findings.add(
                kinds::UNWRITTEN_VALUE,
                format!("key {key}: {} returned {value}, which no write or cas wrote", text()),
                vec![r.index],
            );
            continue;
        };
        let w = &ops.writes[wi];
        if w.outcome == OpType::Fail {
            flagged[ri] = true;
            findings.add(
                kinds::UNWRITTEN_VALUE,
                format!(
                    "key {key}: {} returned {value}, whose only write, {}, failed",
                    text(),
                    describe(history, w.index)
                ),
                vec![r.index, w.index],
            );
            continue;
        }
        match commit[wi] {
            Some((c, _)) if c == t => {}
            Some((c, learned_from)) => {
                flagged[ri] = true;
                let how = match learned_from {
                    None => format!("{} committed it at {c}", describe(history, w.index)),
                    Some(other) => format!(
                        "{} returned it at version {c} (its write, op {}, is of unknown fate)",
                        describe(history, other),
                        w.index
                    ),
                };
                let mut named = vec![r.index, w.index];
                named.extend(learned_from);
                findings.add(
                    kinds::WRONG_VERSION,
                    format!("key {key}: {} returned {value} at version {t}, but {how}", text()),
                    named,
                );
            }
            None => commit[wi] = Some((t, Some(r.index))),
        }
    }

    // (b): no known commit in (version, read_ts].
    let mut commits: Vec<(u64, usize)> =
        commit.iter().enumerate().filter_map(|(wi, c)| c.map(|(ts, _)| (ts, wi))).collect();
    commits.sort_unstable();
    for (ri, r) in ops.reads.iter().enumerate() {
        if flagged[ri] {
            continue;
        }
        let t = r.version_ts.unwrap_or(0);
        let after = commits.partition_point(|&(c, _)| c <= t);
        let Some(&(c, wi)) = commits.get(after).filter(|&&(c, _)| c <= r.read_ts) else {
            continue;
        };
        let w = &ops.writes[wi];
        let returned = match (&r.value, r.version_ts) {
            (Some(v), Some(t)) => format!("{v} at version {t}"),
            _ => "no value".to_string(),
        };
        let how = match commit[wi] {
            Some((_, Some(seen_by))) => format!("op {} (of unknown fate; op {seen_by} saw it)", w.index),
            _ => describe(history, w.index),
        };
        findings.add(
            kinds::MISSED_WRITE,
            format!(
                "key {key}: {} read at {} and returned {returned}, but {how} wrote {} at {c}, in between",
                describe(history, r.index),
                r.read_ts,
                w.value
            ),
            vec![r.index, w.index],
        );
    }

    // (c): reads that see the present read above every commit revealed
    // before they began. Revealed: (return time, commit, op index).
    let mut revealed: Vec<(u64, u64, u64)> = Vec::new();
    for (wi, w) in ops.writes.iter().enumerate() {
        if let (OpType::Ok, Some(ret), Some((c, _))) = (w.outcome, w.return_ns, commit[wi]) {
            revealed.push((ret, c, w.index));
        }
    }
    for r in &ops.reads {
        if let Some(t) = r.version_ts {
            revealed.push((r.return_ns, t, r.index));
        }
    }
    revealed.sort_unstable();
    let mut present: Vec<&ReadOp> = ops.reads.iter().filter(|r| r.kind.sees_the_present()).collect();
    present.sort_by_key(|r| (r.invoke_ns, r.index));
    let mut next = 0;
    let mut newest: Option<(u64, u64, u64)> = None;
    for r in present {
        while next < revealed.len() && revealed[next].0 < r.invoke_ns {
            if newest.is_none_or(|n| revealed[next].1 > n.1) {
                newest = Some(revealed[next]);
            }
            next += 1;
        }
        if let Some((ret, c, by)) = newest.filter(|n| r.read_ts < n.1) {
            findings.add(
                kinds::READ_TS_INVERSION,
                format!(
                    "key {key}: {} completed at {ret} ns revealing the commit at {c}, before {} began at {} ns, \
                     which read at {} (below it)",
                    describe(history, by),
                    describe(history, r.index),
                    r.invoke_ns,
                    r.read_ts
                ),
                vec![by, r.index],
            );
        }
    }

    // (d): bounded reads within their bound.
    for r in &ops.reads {
        let ReadKind::Bounded { max_staleness_ns, invoke_wall_ns } = r.kind else { continue };
        let oldest = invoke_wall_ns.saturating_sub(max_staleness_ns).saturating_sub(slack_ns);
        if r.read_ts < oldest {
            let behind_ns = invoke_wall_ns.saturating_sub(max_staleness_ns).saturating_sub(r.read_ts);
            findings.add(
                kinds::STALE_BOUNDED_READ,
                format!(
                    "key {key}: {} may be {:.3} ms stale (invoked at wall time {invoke_wall_ns}), \
                     but read at {}: {:.3} ms older than its bound allows",
                    describe(history, r.index),
                    max_staleness_ns as f64 / 1e6,
                    r.read_ts,
                    behind_ns as f64 / 1e6
                ),
                vec![r.index],
            );
        }
    }

    let learned = commit.iter().filter(|c| matches!(c, Some((_, Some(_))))).count() as u64;
    Ok((commits.len() as u64, learned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::verdict::Validity;
    use serde_json::json;

    fn check_default(h: &History) -> Verdict {
        check(h, &TimestampedOptions::default())
    }

    /// `[k, {"read_ts": t}]`
    fn at(k: i64, t: u64) -> Value {
        json!([k, {"read_ts": t}])
    }

    /// `[k, {"max_staleness_ns": d, "invoke_wall_ns": w}]`
    fn bounded(k: i64, d: u64, w: u64) -> Value {
        json!([k, {"max_staleness_ns": d, "invoke_wall_ns": w}])
    }

    /// Two writes (1 at 100, 2 at 200), acknowledged one after the other,
    /// then `reads`.
    fn after_two_writes(reads: Vec<E>) -> History {
        let mut events = vec![
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])).ts(100),
            inv(0, "write", json!([1, 2])),
            ok(0, "write", json!([1, 2])).ts(200),
        ];
        events.extend(reads);
        hist(events)
    }

    /// Goal: reads of every kind that agree with the commit timestamps
    /// pass, including an old snapshot, a null before the first write, and
    /// a write of unknown fate whose version a read revealed.
    #[test]
    fn consistent_reads_of_every_kind_pass() {
        let h = hist(vec![
            inv(1, "read-at", at(1, 50)),
            ok(1, "read-at", json!([1, null])).served(50, None),
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])).ts(100),
            inv(0, "cas", json!([1, [1, 2]])),
            info(0, "cas", json!([1, [1, 2]])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 2])).served(250, Some(200)),
            inv(1, "read-only", json!([1, null])),
            ok(1, "read-only", json!([1, 2])).served(300, Some(200)),
            inv(1, "read-at", at(1, 150)),
            ok(1, "read-at", json!([1, 1])).served(150, Some(100)),
            inv(1, "read-bounded", bounded(1, 1_000, 1_000)),
            ok(1, "read-bounded", json!([1, 1])).served(120, Some(100)),
        ]);
        let v = check_default(&h);
        assert_eq!(v.to_string(), "valid", "{:?}", v.anomalies);
        assert_eq!(v.stats["writes-committed"], 2);
        assert_eq!(v.stats["writes-learned"], 1);
        let reads = ["reads-leader", "reads-read-only", "reads-snapshot", "reads-bounded"].map(|s| v.stats[s]);
        assert_eq!(reads, [1, 1, 2, 1]);
    }

    /// Goal: a stale snapshot read is caught: a snapshot at the commit
    /// timestamp of an acknowledged write returns the value before it.
    #[test]
    fn stale_snapshot_read_is_a_missed_write() {
        let h = after_two_writes(vec![
            inv(1, "read-at", at(1, 200)),
            ok(1, "read-at", json!([1, 1])).served(200, Some(100)),
        ]);
        let v = check_default(&h);
        assert_eq!(v.to_string(), "invalid: missed-write");
        let a = &v.anomalies[0];
        assert_eq!(a.ops, vec![3, 5]);
        assert!(a.message.contains("read at 200 and returned 1 at version 100"), "{}", a.message);
        assert!(a.message.contains("wrote 2 at 200, in between"), "{}", a.message);
    }

    /// Goal: a read below its read_ts that missed an acknowledged write is
    /// caught, whatever the read's kind; a null read that missed the first
    /// write too.
    #[test]
    fn read_that_missed_a_write_below_its_read_ts() {
        for f in ["read", "read-only", "read-bounded"] {
            let arg = if f == "read-bounded" { bounded(1, 1_000, 0) } else { json!([1, null]) };
            let h = after_two_writes(vec![inv(1, f, arg), ok(1, f, json!([1, 1])).served(250, Some(100))]);
            let v = check_default(&h);
            assert_eq!(v.kinds(), vec![kinds::MISSED_WRITE], "{f}: {v}");
        }
        let h =
            after_two_writes(vec![inv(1, "read-at", at(1, 150)), ok(1, "read-at", json!([1, null])).served(150, None)]);
        let v = check_default(&h);
        assert_eq!(v.to_string(), "invalid: missed-write");
        assert!(v.anomalies[0].message.contains("returned no value"), "{}", v.anomalies[0].message);
    }

    /// Goal: a bounded-staleness read older than its bound is caught, and
    /// one just inside the bound plus the slack is not.
    #[test]
    fn bounded_read_staler_than_its_bound() {
        let wall = 10_000_000_000;
        let d = 500_000_000;
        let slack = STALENESS_SLACK_DEFAULT.as_nanos() as u64;
        let read = |read_ts: u64| {
            after_two_writes(vec![
                inv(1, "read-bounded", bounded(1, d, wall)),
                ok(1, "read-bounded", json!([1, 2])).served(read_ts, Some(200)),
            ])
        };
        assert!(check_default(&read(wall - d - slack)).is_valid());
        let v = check_default(&read(wall - d - slack - 1));
        assert_eq!(v.to_string(), "invalid: stale-bounded-read");
        assert!(v.anomalies[0].message.contains("may be 500.000 ms stale"), "{}", v.anomalies[0].message);
        let loose = TimestampedOptions { staleness_slack: Duration::from_secs(1) };
        assert!(check(&read(wall - d - slack - 1), &loose).is_valid());
    }

    /// Goal: a value that matches no write is caught, and so is the value
    /// of a failed write.
    #[test]
    fn value_that_matches_no_write() {
        let h = after_two_writes(vec![
            inv(1, "read-only", json!([1, null])),
            ok(1, "read-only", json!([1, 9])).served(300, Some(250)),
        ]);
        let v = check_default(&h);
        assert_eq!(v.to_string(), "invalid: unwritten-value");
        assert!(v.anomalies[0].message.contains("returned 9, which no write or cas wrote"));

        let h = hist(vec![
            inv(0, "write", json!([1, 9])),
            fail(0, "write", json!([1, 9])),
            inv(1, "read-at", at(1, 300)),
            ok(1, "read-at", json!([1, 9])).served(300, Some(250)),
        ]);
        let v = check_default(&h);
        assert_eq!(v.to_string(), "invalid: unwritten-value");
        assert_eq!(v.anomalies[0].ops, vec![1, 3]);
    }

    /// Goal: versions must match their writes: an acknowledged write's
    /// commit_ts, one version per write of unknown fate, and never above
    /// the read's own timestamp.
    #[test]
    fn versions_must_match_their_writes() {
        let h = after_two_writes(vec![
            inv(1, "read-at", at(1, 300)),
            ok(1, "read-at", json!([1, 2])).served(300, Some(201)),
        ]);
        let v = check_default(&h);
        assert_eq!(v.to_string(), "invalid: wrong-version");
        assert!(v.anomalies[0].message.contains("committed it at 200"), "{}", v.anomalies[0].message);

        let unknown_fate = hist(vec![
            inv(0, "write", json!([1, 5])),
            info(0, "write", json!([1, 5])),
            inv(1, "read-at", at(1, 300)),
            ok(1, "read-at", json!([1, 5])).served(300, Some(250)),
            inv(1, "read-at", at(1, 400)),
            ok(1, "read-at", json!([1, 5])).served(400, Some(260)),
        ]);
        let v = check_default(&unknown_fate);
        assert_eq!(v.to_string(), "invalid: wrong-version");
        assert_eq!(v.anomalies[0].ops, vec![1, 3, 5]);

        let future = after_two_writes(vec![
            inv(1, "read-bounded", bounded(1, 1_000, 0)),
            ok(1, "read-bounded", json!([1, 2])).served(150, Some(200)),
        ]);
        let v = check_default(&future);
        assert_eq!(v.to_string(), "invalid: wrong-version");
        assert!(v.anomalies[0].message.contains("committed later, at 200"), "{}", v.anomalies[0].message);
    }

    /// Goal: the worked example of the module docs (visibility before
    /// commit-wait) is a read-ts inversion: a read-only transaction that
    /// began after another read revealed a commit reads below it. And the
    /// same after an acknowledged write. Snapshot and bounded reads, which
    /// do not promise the present, are not held to it.
    #[test]
    fn read_below_a_revealed_commit_is_an_inversion() {
        let h = hist(vec![
            inv(2, "write", json!([1, 6])),
            ok(2, "write", json!([1, 6])).ts(900),
            inv(0, "write", json!([1, 7])),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 7])).served(1190, Some(1190)),
            inv(2, "read-only", json!([1, null])),
            ok(2, "read-only", json!([1, 6])).served(1030, Some(900)),
            ok(0, "write", json!([1, 7])).ts(1190),
        ]);
        let v = check_default(&h);
        assert_eq!(v.to_string(), "invalid: read-ts-inversion");
        assert_eq!(v.anomalies[0].ops, vec![4, 6]);
        assert!(v.anomalies[0].message.contains("revealing the commit at 1190"), "{}", v.anomalies[0].message);
        assert!(v.anomalies[0].message.contains("which read at 1030 (below it)"), "{}", v.anomalies[0].message);
        // The register checker agrees, by values alone.
        let lin = crate::checker::register::check(&h, &Default::default());
        assert_eq!(lin.to_string(), "invalid: nonlinearizable");

        let after_ack = after_two_writes(vec![
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 1])).served(150, Some(100)),
        ]);
        assert_eq!(check_default(&after_ack).to_string(), "invalid: read-ts-inversion");

        for (f, arg) in [("read-at", at(1, 150)), ("read-bounded", bounded(1, 1_000, 0))] {
            let h = after_two_writes(vec![inv(1, f, arg), ok(1, f, json!([1, 1])).served(150, Some(100))]);
            assert!(check_default(&h).is_valid(), "{f}");
        }
    }

    /// Goal: concurrent ops are not ordered: a read that began before a
    /// write was acknowledged may read below its commit.
    #[test]
    fn concurrent_reads_may_read_below() {
        let h = hist(vec![
            inv(0, "write", json!([1, 1])),
            inv(1, "read-only", json!([1, null])),
            ok(0, "write", json!([1, 1])).ts(100),
            ok(1, "read-only", json!([1, null])).served(90, None),
        ]);
        assert!(check_default(&h).is_valid());
    }

    /// Goal: histories the check cannot judge are unknown, never valid:
    /// no read with timestamps, a value written twice, a malformed
    /// argument.
    #[test]
    fn unjudgeable_histories_are_unknown() {
        let no_ts = after_two_writes(vec![inv(1, "read", json!([1, null])), ok(1, "read", json!([1, 2]))]);
        let v = check_default(&no_ts);
        assert_eq!(v.to_string(), "unknown: no ok read carries a read_ts");
        assert_eq!(v.stats["reads-without-timestamps"], 1);

        let twice = hist(vec![
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])).ts(100),
            inv(0, "write", json!([1, 1])),
            ok(0, "write", json!([1, 1])).ts(200),
            inv(1, "read", json!([1, null])),
            ok(1, "read", json!([1, 1])).served(250, Some(200)),
        ]);
        let v = check_default(&twice);
        assert!(matches!(v.result, Validity::Unknown { .. }), "{v}");
        assert!(v.to_string().contains("written by both op 1 and op 3"), "{v}");

        let bad = hist(vec![inv(1, "read-at", json!([1, null])), ok(1, "read-at", json!([1, null])).served(5, None)]);
        assert!(check_default(&bad).to_string().contains("lacks an integer \"read_ts\""));
    }

    /// A correct timestamped database: every op takes effect at its
    /// slot's effect instant, which is also its timestamp (plus an epoch):
    /// writes commit there, reads at now read there, snapshot reads read
    /// at a commit timestamp already known, bounded reads anywhere in
    /// their bound. Returns the events, and for each ok read: its event
    /// position and the value and version one commit older than what it
    /// returned (to inject a missed write), if there was one.
    fn simulate(seed: u64, n: usize) -> (Vec<crate::history::Op>, Vec<(usize, Value, u64)>) {
        use crate::history::{Op, Process};
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        const EPOCH: u64 = 1_764_000_000_000_000_000;
        let mut rng = StdRng::seed_from_u64(seed);
        let slots = slots(&mut rng, n, 6, 20);
        // Per key: (commit_ts, value) in commit order.
        let mut versions: BTreeMap<u64, Vec<(u64, i64)>> = BTreeMap::new();
        let mut next_value = 0i64;
        // (time, is_completion, slot, op)
        let mut events: Vec<(u64, bool, usize, Op)> = Vec::new();
        let mut stale_candidates = Vec::new();
        for i in crate::testing::effect_order(&slots) {
            let slot = &slots[i];
            let key = rng.random_range(0..4u64);
            let now = EPOCH + slot.effect_ns;
            let history = versions.entry(key).or_default();
            let at = |ts: u64| history.iter().rev().find(|(c, _)| *c <= ts).copied();
            let process = Process::Client(slot.process);
            let (f, arg, done_value, read, commit) = match rng.random_range(0..6) {
                0 | 1 => {
                    next_value += 1;
                    let f = if rng.random_bool(0.5) { "write" } else { "cas" };
                    let arg = match f {
                        "write" => json!([key, next_value]),
                        _ => json!([key, [history.last().map(|v| v.1), next_value]]),
                    };
                    if !slot.timed_out || rng.random_bool(0.5) {
                        history.push((now, next_value));
                    }
                    (f, arg.clone(), arg, None, Some(now))
                }
                kind => {
                    let (f, arg, read_ts) = match kind {
                        2 => ("read", json!([key, null]), now),
                        3 => ("read-only", json!([key, null]), now),
                        4 => {
                            let t = history.iter().map(|v| v.0).rfind(|&c| c < EPOCH + slot.invoke_ns);
                            let t = t.unwrap_or(EPOCH);
                            ("read-at", json!([key, {"read_ts": t}]), t)
                        }
                        _ => {
                            let d = rng.random_range(0..2_000_000u64);
                            let wall = EPOCH + slot.invoke_ns;
                            let read_ts = wall - d + rng.random_range(0..=now - wall + d);
                            ("read-bounded", json!([key, {"max_staleness_ns": d, "invoke_wall_ns": wall}]), read_ts)
                        }
                    };
                    let version = at(read_ts);
                    if let Some((c, _)) = version {
                        let older = history.iter().rev().find(|(o, _)| *o < c).map(|&(_, v)| json!(v));
                        stale_candidates.push((i, older.unwrap_or(Value::Null), c));
                    }
                    let value = json!([key, version.map(|v| v.1)]);
                    (f, arg, value, Some((read_ts, version.map(|v| v.0))), None)
                }
            };
            let invoke = Op::new(0, slot.invoke_ns, process, OpType::Invoke, f, arg.clone());
            events.push((slot.invoke_ns, false, i, invoke));
            let mut done = match (slot.timed_out, read.is_some()) {
                (true, true) => Op::new(0, slot.complete_ns, process, OpType::Fail, f, arg),
                (true, false) => Op::new(0, slot.complete_ns, process, OpType::Info, f, arg),
                (false, _) => Op::new(0, slot.complete_ns, process, OpType::Ok, f, done_value),
            };
            if done.op_type == OpType::Ok {
                done.commit_ts = commit;
                if let Some((read_ts, version_ts)) = read {
                    (done.read_ts, done.version_ts) = (Some(read_ts), version_ts);
                }
            }
            events.push((slot.complete_ns, true, i, done));
        }
        events.sort_by_key(|(t, is_completion, i, _)| (*t, *i, *is_completion));
        let ops: Vec<Op> = events
            .into_iter()
            .enumerate()
            .map(|(index, (_, _, _, mut op))| {
                op.index = index as u64;
                op
            })
            .collect();
        // Slot -> position of its ok completion, for injections.
        let stale = stale_candidates
            .into_iter()
            .filter_map(|(slot, older, version)| {
                let s = &slots[slot];
                let pos = ops.iter().position(|o| {
                    o.time_ns == s.complete_ns && o.process == Process::Client(s.process) && o.op_type == OpType::Ok
                })?;
                Some((pos, older, version))
            })
            .collect();
        (ops, stale)
    }

    /// Goal: large correct histories with every read kind pass, and one
    /// injected anomaly of each kind is found among thousands of ops.
    /// Method: simulate 5,000 ops over 4 keys with timeouts; then (1) make
    /// one read return the acknowledged version before the one it saw, (2)
    /// a value nobody wrote,
    /// (3) push one bounded read's timestamp far below its bound.
    #[test]
    fn simulated_histories_pass_and_injections_are_found() {
        let (ops, stale) = simulate(7, 5_000);
        let h = History::new(ops.clone()).unwrap();
        let v = check_default(&h);
        assert!(v.is_valid(), "{v}: {:?}", v.anomalies);
        for kind in ["reads-leader", "reads-read-only", "reads-snapshot", "reads-bounded", "writes-learned"] {
            assert!(v.stats[kind] > 10, "{kind}: {:?}", v.stats);
        }

        // The ok writes' commit timestamps, by value.
        let committed: HashMap<String, u64> = h
            .pairs()
            .filter(|p| matches!(p.f(), "write" | "cas"))
            .filter_map(|p| {
                let arg = &p.invoke.value[1];
                let value = if p.f() == "write" { arg } else { &arg[1] };
                Some((value.to_string(), p.commit_ts()?))
            })
            .collect();
        let (pos, older, older_ts) = stale
            .iter()
            .find_map(|(pos, older, _)| Some((*pos, older.clone(), *committed.get(&older.to_string())?)))
            .expect("a read whose older version was acknowledged");
        let mut bad = ops.clone();
        bad[pos].value[1] = older;
        bad[pos].version_ts = Some(older_ts);
        let v = check_default(&History::new(bad).unwrap());
        assert_eq!(v.kinds(), vec![kinds::MISSED_WRITE], "{v}");
        assert!(v.anomalies.iter().all(|a| a.ops.contains(&(pos as u64))), "{:?}", v.anomalies);

        let mut garbage = ops.clone();
        garbage[pos].value[1] = json!(-1);
        let v = check_default(&History::new(garbage).unwrap());
        assert_eq!(v.to_string(), "invalid: unwritten-value");
        assert_eq!(v.anomalies[0].ops, vec![pos as u64]);

        let bounded = ops
            .iter()
            .position(|o| o.op_type == OpType::Ok && o.f == "read-bounded" && o.version_ts.is_none())
            .unwrap();
        let mut too_stale = ops.clone();
        too_stale[bounded].read_ts = Some(1_000);
        let v = check_default(&History::new(too_stale).unwrap());
        assert_eq!(v.to_string(), "invalid: stale-bounded-read");
    }
}
