//! External consistency: commit timestamps respect real time.
//!
//! Spanner's promise (Corbett et al., OSDI 2012, §4.1.2): if T1 commits
//! before T2 starts, in absolute time, then `commit_ts(T1) < commit_ts(T2)`.
//! The history cannot see the commit instant, only the client's view; but
//! T1 committed before its `ok` arrived and T2 starts after its invoke, so:
//!
//! ```text
//!   T1 |--------ok|                    ok(T1).time < invoke(T2).time
//!                    |invoke-----T2|   ==> commit_ts(T1) < commit_ts(T2)
//! ```
//!
//! Every `ok` op with a `commit_ts` takes part, whatever its `f`. Ops
//! without one are counted (`ok-without-commit-ts`) and skipped; `info` ops
//! are skipped (their commit instant is unknown). A history in which no op
//! carries a `commit_ts` is `unknown`: a harness that forgot to record them
//! must not pass.
//!
//! Caveat: `commit_ts` means a commit timestamp. A read-only transaction's
//! read timestamp obeys a weaker rule (a read at `t` may follow a commit
//! at exactly `t`), so a harness must not record it as `commit_ts`.
//!
//! # Method: one sweep, O(n log n)
//!
//! Sort the ops by invocation time and, separately, by completion time.
//! Walk the invocations in order; before each, fold every op that
//! completed strictly earlier into a running maximum of `commit_ts` (and
//! remember which op holds it). The op violates the rule against some
//! earlier op iff its `commit_ts` is `<=` that maximum; the anomaly names
//! the pair (the maximum's holder and the op). Equal times are concurrent.

use crate::history::{History, OpType};
use crate::verdict::{kinds, Findings, Verdict};

/// One op that carries a commit timestamp.
#[derive(Clone, Copy)]
struct Stamped {
    invoke_ns: u64,
    return_ns: u64,
    commit_ts: u64,
    index: u64,
}

/// Checks that real-time order implies commit-timestamp order.
pub fn check(history: &History) -> Verdict {
    let mut stamped = Vec::new();
    let mut without = 0u64;
    for pair in history.pairs().filter(|p| p.outcome() == OpType::Ok) {
        match (pair.commit_ts(), pair.return_ns()) {
            (Some(commit_ts), Some(return_ns)) => {
                stamped.push(Stamped { invoke_ns: pair.invoke_ns(), return_ns, commit_ts, index: pair.index() })
            }
            _ => without += 1,
        }
    }
    let mut findings = Findings::default();
    findings.stat("ops", stamped.len() as u64);
    findings.stat("ok-without-commit-ts", without);
    if stamped.is_empty() {
        return findings.finish(Some("no ok op carries a commit_ts".into()));
    }

    let mut by_invoke = stamped.clone();
    by_invoke.sort_by_key(|s| (s.invoke_ns, s.index));
    let mut by_return = stamped;
    by_return.sort_by_key(|s| (s.return_ns, s.index));
    let mut next_done = 0;
    let mut max: Option<Stamped> = None;
    let mut inversions = 0u64;
    for op in &by_invoke {
        while next_done < by_return.len() && by_return[next_done].return_ns < op.invoke_ns {
            let done = by_return[next_done];
            if max.is_none_or(|m| done.commit_ts > m.commit_ts) {
                max = Some(done);
            }
            next_done += 1;
        }
        if let Some(m) = max.filter(|m| op.commit_ts <= m.commit_ts) {
            inversions += 1;
            findings.add(
                kinds::COMMIT_TS_INVERSION,
                format!(
                    "op {} completed at {} ns with commit_ts {} before op {} was invoked at {} ns, \
                     but op {} has commit_ts {} (not greater)",
                    m.index, m.return_ns, m.commit_ts, op.index, op.invoke_ns, op.index, op.commit_ts
                ),
                vec![m.index, op.index],
            );
        }
    }
    findings.stat("inversions", inversions);
    findings.finish(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, Process};
    use crate::testing::*;
    use crate::verdict::Validity;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{json, Value};
    use std::time::Instant;

    fn w(p: i64) -> E {
        inv(p, "write", json!([1, p]))
    }
    fn w_ok(p: i64, ts: u64) -> E {
        ok(p, "write", json!([1, p])).ts(ts)
    }

    /// Goal: sequential ops with increasing commit_ts pass; so do
    /// concurrent ops in either order.
    #[test]
    fn valid_orders() {
        let h = hist(vec![
            w(0),
            w_ok(0, 100),
            w(1),
            w(2),
            w_ok(2, 150),
            w_ok(1, 120), // concurrent with p2: any order
            w(0),
            w_ok(0, 200),
        ]);
        let v = check(&h);
        assert_eq!(v.to_string(), "valid");
        assert_eq!(v.stats["ops"], 4);
    }

    /// Goal: a later op with a smaller commit_ts is caught, naming both.
    #[test]
    fn inversion() {
        let h = hist(vec![w(0), w_ok(0, 100), w(1), w_ok(1, 90)]);
        let v = check(&h);
        assert_eq!(v.to_string(), "invalid: commit-ts-inversion");
        assert_eq!(v.anomalies[0].ops, vec![1, 3]);
    }

    /// Goal: equal commit_ts for real-time ordered ops is a violation too.
    #[test]
    fn equal_commit_ts_is_an_inversion() {
        let h = hist(vec![w(0), w_ok(0, 100), w(1), w_ok(1, 100)]);
        assert!(check(&h).is_invalid());
    }

    /// Goal: equal times are concurrent, not ordered. Method: op A
    /// completes at the same nanosecond op B is invoked.
    #[test]
    fn equal_times_are_concurrent() {
        let c = Process::Client;
        let mut a_ok = Op::new(1, 5, c(0), OpType::Ok, "write", Value::Null);
        a_ok.commit_ts = Some(100);
        let mut b_ok = Op::new(3, 9, c(1), OpType::Ok, "write", Value::Null);
        b_ok.commit_ts = Some(50);
        let h = History::new(vec![
            Op::new(0, 1, c(0), OpType::Invoke, "write", Value::Null),
            a_ok,
            Op::new(2, 5, c(1), OpType::Invoke, "write", Value::Null),
            b_ok,
        ])
        .unwrap();
        assert!(check(&h).is_valid());
    }

    /// Goal: a history without commit timestamps is unknown.
    #[test]
    fn no_commit_ts_is_unknown() {
        let h = hist(vec![w(0), ok(0, "write", json!([1, 0]))]);
        let v = check(&h);
        assert!(matches!(v.result, Validity::Unknown { .. }));
        assert_eq!(v.stats["ok-without-commit-ts"], 1);
    }

    /// A correct database stamps each op with its effect instant (plus an
    /// epoch offset); info ops carry none.
    fn simulate(seed: u64, n: usize) -> Vec<SimOp> {
        let mut rng = StdRng::seed_from_u64(seed);
        let slots = slots(&mut rng, n, 10, 10);
        slots
            .iter()
            .map(|s| SimOp {
                process: s.process,
                f: if rng.random_range(0..2) == 0 { "read" } else { "write" }.into(),
                invoke_value: Value::Null,
                outcome: if s.timed_out { OpType::Info } else { OpType::Ok },
                ok_value: Value::Null,
                invoke_ns: s.invoke_ns,
                complete_ns: Some(s.complete_ns),
                commit_ts: Some(1_764_000_000_000_000_000 + s.effect_ns),
            })
            .collect()
    }

    /// Goal: 10,000 correctly stamped ops pass; one stale stamp is found.
    /// Method: simulate; then give one op a commit_ts below that of an op
    /// that completed before it began.
    #[test]
    fn simulated_10k_ops() {
        let mut ops = simulate(5, 10_000);
        let started = Instant::now();
        let v = check(&to_history(&ops));
        eprintln!("external consistency 10k ops: {:?}, {v}", started.elapsed());
        assert!(v.is_valid(), "{v}");

        let victim = 5_000;
        let earlier = (0..victim)
            .rev()
            .find(|&i| ops[i].outcome == OpType::Ok && ops[i].complete_ns.unwrap() < ops[victim].invoke_ns)
            .unwrap();
        assert_eq!(ops[victim].outcome, OpType::Ok);
        ops[victim].commit_ts = Some(ops[earlier].commit_ts.unwrap() - 1);
        let h = to_history(&ops);
        let v = check(&h);
        assert_eq!(v.to_string(), "invalid: commit-ts-inversion");
        assert!(v.anomalies[0].ops.contains(&index_of(&h, &ops[victim])));
    }
}
