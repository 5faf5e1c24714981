//! The set workload: were acknowledged adds kept, and nothing else invented?
//!
//! # Workload
//!
//! ```text
//! f      invoke value    ok value
//! add    7               7            (an integer element)
//! read   null            [1, 2, 7]    (the whole set, once, at the end)
//! ```
//!
//! The checker takes the last `ok` read as the final read and compares it
//! with the adds:
//!
//! ```text
//!   add outcome                       in final read        absent
//!   ok, completed before read began   fine                 lost-add
//!   ok, concurrent with the read      indeterminate        indeterminate
//!   info (or pending)                 indeterminate        indeterminate
//!   fail (every attempt)              failed-add-present   fine
//!   never attempted                   unexpected-element   -
//! ```
//!
//! An element added several times counts by its most hopeful attempt (ok
//! before info before fail). A duplicated element in the read is
//! `duplicate-elements`. The stats count the ok adds, the lost ones, the
//! unexpected ones and the indeterminate ones found present or absent (the
//! `recovered` rate Jepsen reports).
//!
//! Caveat: only the final read is checked; Jepsen's `set-full` checker also
//! follows every element through intermediate reads (stale and lost
//! windows). Without a final `ok` read the verdict is `unknown`.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{History, OpType, Pair};
use crate::limits::ANOMALY_MESSAGE_ITEMS_MAX;
use crate::verdict::{kinds, quote_items, Findings, Verdict};

/// What is known of one element's adds.
#[derive(Default)]
struct Adds {
    /// Ok adds that completed before the final read began.
    ok_before_read: Vec<u64>,
    /// Ok adds concurrent with (or after) the final read, info adds.
    indeterminate: Vec<u64>,
    failed: Vec<u64>,
}

/// Checks the final read of a set against its adds.
pub fn check(history: &History) -> Verdict {
    let mut final_read: Option<Pair> = None;
    for pair in history.pairs() {
        if pair.f() == "read" && pair.outcome() == OpType::Ok && final_read.is_none_or(|r| r.index() < pair.index()) {
            final_read = Some(pair);
        }
    }
    let Some(read) = final_read else {
        return Verdict::unknown("no ok read: the set workload needs a final read");
    };
    let Some(read_elements) = as_elements(read.value()) else {
        return Verdict::unknown(format!("{}: value is not a list of integers", read.describe()));
    };

    let mut adds: BTreeMap<i64, Adds> = BTreeMap::new();
    let mut acknowledged = 0;
    for pair in history.pairs().filter(|p| p.f() == "add") {
        let Some(element) = pair.invoke.value.as_i64() else {
            return Verdict::unknown(format!("{}: element is not an integer", pair.describe()));
        };
        let entry = adds.entry(element).or_default();
        match pair.outcome() {
            OpType::Ok => {
                acknowledged += 1;
                if pair.return_ns().is_some_and(|r| r < read.invoke_ns()) {
                    entry.ok_before_read.push(pair.index());
                } else {
                    entry.indeterminate.push(pair.index());
                }
            }
            OpType::Fail => entry.failed.push(pair.index()),
            _ => entry.indeterminate.push(pair.index()),
        }
    }

    let mut findings = Findings::default();
    let mut present = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for &e in &read_elements {
        if !present.insert(e) {
            duplicates.insert(e);
        }
    }
    let mut lost = Vec::new();
    let mut lost_ops = vec![read.index()];
    let mut unexpected = Vec::new();
    let mut failed_present = Vec::new();
    let mut failed_ops = vec![read.index()];
    let (mut indeterminate_present, mut indeterminate_absent) = (0u64, 0u64);
    for (&element, a) in &adds {
        let is_present = present.contains(&element);
        if !a.ok_before_read.is_empty() {
            if !is_present {
                lost.push(element);
                lost_ops.extend(&a.ok_before_read);
            }
        } else if !a.indeterminate.is_empty() {
            if is_present {
                indeterminate_present += 1;
            } else {
                indeterminate_absent += 1;
            }
        } else if is_present {
            failed_present.push(element);
            failed_ops.extend(&a.failed);
        }
    }
    for &element in &present {
        if !adds.contains_key(&element) {
            unexpected.push(element);
        }
    }

    let read_text = format!("the final read (op {})", read.index());
    if !lost.is_empty() {
        findings.add(
            kinds::LOST_ADD,
            format!(
                "{} acknowledged adds missing from {read_text}: {}",
                lost.len(),
                quote_items(&lost, ANOMALY_MESSAGE_ITEMS_MAX)
            ),
            lost_ops,
        );
    }
    if !unexpected.is_empty() {
        findings.add(
            kinds::UNEXPECTED_ELEMENT,
            format!(
                "{} elements in {read_text} were never added: {}",
                unexpected.len(),
                quote_items(&unexpected, ANOMALY_MESSAGE_ITEMS_MAX)
            ),
            vec![read.index()],
        );
    }
    if !failed_present.is_empty() {
        findings.add(
            kinds::FAILED_ADD_PRESENT,
            format!(
                "{} elements in {read_text} were only added by failed adds: {}",
                failed_present.len(),
                quote_items(&failed_present, ANOMALY_MESSAGE_ITEMS_MAX)
            ),
            failed_ops,
        );
    }
    if !duplicates.is_empty() {
        let duplicates: Vec<i64> = duplicates.into_iter().collect();
        findings.add(
            kinds::DUPLICATE_ELEMENTS,
            format!(
                "{read_text} holds elements more than once: {}",
                quote_items(&duplicates, ANOMALY_MESSAGE_ITEMS_MAX)
            ),
            vec![read.index()],
        );
    }
    findings.stat("attempted", adds.len() as u64);
    findings.stat("acknowledged", acknowledged);
    findings.stat("read-size", read_elements.len() as u64);
    findings.stat("lost", lost.len() as u64);
    findings.stat("unexpected", unexpected.len() as u64);
    findings.stat("failed-present", failed_present.len() as u64);
    findings.stat("indeterminate-present", indeterminate_present);
    findings.stat("indeterminate-absent", indeterminate_absent);
    findings.finish(None)
}

fn as_elements(value: &serde_json::Value) -> Option<Vec<i64>> {
    value.as_array()?.iter().map(|v| v.as_i64()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::verdict::Validity;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::{json, Value};
    use std::time::Instant;

    fn add(p: i64, e: i64, outcome: fn(i64, &str, Value) -> E) -> Vec<E> {
        vec![inv(p, "add", json!(e)), outcome(p, "add", json!(e))]
    }

    fn read(p: i64, elements: Value) -> Vec<E> {
        vec![inv(p, "read", Value::Null), ok(p, "read", elements)]
    }

    fn run(parts: Vec<Vec<E>>) -> Verdict {
        check(&hist(parts.into_iter().flatten().collect()))
    }

    /// Goal: the valid case: ok adds present, a failed add absent, info
    /// adds either way. Method: one of each, then a final read.
    #[test]
    fn valid_set() {
        let v = run(vec![add(0, 1, ok), add(0, 2, fail), add(0, 3, info), add(1, 4, info), read(2, json!([1, 3]))]);
        assert_eq!(v.to_string(), "valid");
        assert_eq!(v.stats["indeterminate-present"], 1);
        assert_eq!(v.stats["indeterminate-absent"], 1);
        assert_eq!(v.stats["acknowledged"], 1);
    }

    /// Goal: a lost acknowledged add is caught, with the add's op.
    #[test]
    fn lost_add() {
        let v = run(vec![add(0, 1, ok), add(0, 2, ok), read(1, json!([2]))]);
        assert_eq!(v.to_string(), "invalid: lost-add");
        assert_eq!(v.anomalies[0].ops, vec![1, 5]);
        assert_eq!(v.stats["lost"], 1);
    }

    /// Goal: an ok add concurrent with the final read may be absent.
    #[test]
    fn add_concurrent_with_read_is_indeterminate() {
        let v = check(&hist(vec![
            inv(0, "add", json!(1)),
            inv(1, "read", Value::Null),
            ok(0, "add", json!(1)),
            ok(1, "read", json!([])),
        ]));
        assert!(v.is_valid(), "{v}");
    }

    /// Goal: an element nobody added is caught.
    #[test]
    fn unexpected_element() {
        let v = run(vec![add(0, 1, ok), read(1, json!([1, 99]))]);
        assert_eq!(v.to_string(), "invalid: unexpected-element");
        assert!(v.anomalies[0].message.contains("99"));
    }

    /// Goal: a failed add must not appear.
    #[test]
    fn failed_add_present() {
        let v = run(vec![add(0, 1, fail), read(1, json!([1]))]);
        assert_eq!(v.to_string(), "invalid: failed-add-present");
        assert_eq!(v.anomalies[0].ops, vec![1, 3]);
    }

    /// Goal: an element twice in the read is caught.
    #[test]
    fn duplicate_elements() {
        let v = run(vec![add(0, 1, ok), read(1, json!([1, 1]))]);
        assert_eq!(v.to_string(), "invalid: duplicate-elements");
    }

    /// Goal: no final read, or a malformed one, is unknown.
    #[test]
    fn no_final_read_is_unknown() {
        let v = run(vec![add(0, 1, ok)]);
        assert!(matches!(v.result, Validity::Unknown { .. }));
        let v = run(vec![add(0, 1, ok), read(1, json!("x"))]);
        assert!(matches!(v.result, Validity::Unknown { .. }));
    }

    /// A correct set database: adds take effect at their effect instant
    /// (timed-out adds half the time, 2% fail without effect); a final
    /// read after everything.
    fn simulate(seed: u64, n: usize) -> Vec<SimOp> {
        let mut rng = StdRng::seed_from_u64(seed);
        let slots = slots(&mut rng, n, 10, 10);
        let mut ops: Vec<SimOp> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| SimOp {
                process: s.process,
                f: "add".into(),
                invoke_value: json!(i),
                outcome: OpType::Ok,
                ok_value: json!(i),
                invoke_ns: s.invoke_ns,
                complete_ns: Some(s.complete_ns),
                commit_ts: None,
            })
            .collect();
        let mut set = BTreeSet::new();
        for i in effect_order(&slots) {
            if slots[i].timed_out {
                ops[i].outcome = OpType::Info;
                if chance(&mut rng, 500) {
                    set.insert(i);
                }
            } else if chance(&mut rng, 20) {
                ops[i].outcome = OpType::Fail;
            } else {
                set.insert(i);
            }
        }
        let end = end_ns(&slots);
        ops.push(SimOp {
            process: 1_000_000,
            f: "read".into(),
            invoke_value: Value::Null,
            outcome: OpType::Ok,
            ok_value: json!(set),
            invoke_ns: end,
            complete_ns: Some(end + 1),
            commit_ts: None,
        });
        ops
    }

    /// Goal: 10,000 correct adds pass; one dropped element is found.
    /// Method: simulate, check; remove one acknowledged element from the
    /// final read, check again.
    #[test]
    fn simulated_10k_adds() {
        let mut ops = simulate(7, 10_000);
        let started = Instant::now();
        let v = check(&to_history(&ops));
        eprintln!("set 10k adds: {:?}, {v}, {:?}", started.elapsed(), v.stats);
        assert!(v.is_valid(), "{v}");
        assert!(v.stats["indeterminate-present"] > 0 && v.stats["indeterminate-absent"] > 0);

        let victim = ops.iter().position(|o| o.outcome == OpType::Ok && o.f == "add").unwrap();
        let element = ops[victim].invoke_value.clone();
        let read = ops.last_mut().unwrap();
        read.ok_value.as_array_mut().unwrap().retain(|e| *e != element);
        let h = to_history(&ops);
        let v = check(&h);
        assert_eq!(v.to_string(), "invalid: lost-add");
        assert!(v.anomalies[0].ops.contains(&index_of(&h, &ops[victim])));
    }
}
