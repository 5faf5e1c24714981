//! The bank workload: transfers conserve money, and every read is a
//! consistent snapshot.
//!
//! # Workload
//!
//! ```text
//! f         invoke value                        ok value
//! transfer  {"from": 1, "to": 2, "amount": 5}   same
//! read      null                                {"0": 100, "1": 95, "2": 105}
//! ```
//!
//! Accounts are named by JSON object keys, so an account written as the
//! number `1` in a transfer is the account `"1"` in a read. Transfers are
//! not checked themselves (a failed or indeterminate transfer changes
//! nothing observable except through reads); every `ok` read must:
//!
//! - sum to `BankOptions::total` (`wrong-total`): a read that saw half a
//!   transfer, or a lost or doubled one, breaks the sum;
//! - hold every account (`missing-account`): `BankOptions::accounts`, or,
//!   when not given, every account any transfer or read names;
//! - have no negative balance, unless `BankOptions::negative_allowed`
//!   (`negative-balance`).
//!
//! Each bad read is one anomaly per rule it breaks. A history without an
//! `ok` read is `unknown`.
//!
//! Caveat: this is a snapshot check, not a serializability proof: a
//! database could return consistent but stale snapshots. Combine with the
//! external-consistency checker (reads carrying `commit_ts`) for recency.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::history::{History, OpType};
use crate::limits::ANOMALY_MESSAGE_ITEMS_MAX;
use crate::verdict::{kinds, quote_items, Findings, Verdict};

/// What a correct bank must preserve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankOptions {
    /// The sum of all balances, constant through the test.
    pub total: i64,
    /// Whether a balance may go below zero.
    pub negative_allowed: bool,
    /// Every account; `None` means every account the history names.
    pub accounts: Option<Vec<String>>,
}

impl BankOptions {
    /// Total given, negative balances not allowed, accounts inferred.
    pub fn new(total: i64) -> BankOptions {
        BankOptions { total, negative_allowed: false, accounts: None }
    }
}

/// The name of an account as a JSON object key: strings as they are,
/// anything else as its JSON text.
fn account_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks every ok read against the bank's invariants.
pub fn check(history: &History, options: &BankOptions) -> Verdict {
    let mut accounts: BTreeSet<String> = BTreeSet::new();
    let inferred = options.accounts.is_none();
    if let Some(given) = &options.accounts {
        accounts.extend(given.iter().cloned());
    }
    let mut transfers = 0u64;
    let mut reads = Vec::new();
    for pair in history.pairs() {
        match pair.f() {
            "transfer" => {
                transfers += 1;
                if inferred {
                    for side in ["from", "to"] {
                        match pair.invoke.value.get(side) {
                            Some(v) if !v.is_null() => {
                                accounts.insert(account_name(v));
                            }
                            _ => return Verdict::unknown(format!("{}: transfer without {side:?}", pair.describe())),
                        }
                    }
                }
            }
            "read" if pair.outcome() == OpType::Ok => {
                let Some(balances) = pair.value().as_object() else {
                    return Verdict::unknown(format!("{}: read value is not an object", pair.describe()));
                };
                let mut parsed = Vec::with_capacity(balances.len());
                for (account, balance) in balances {
                    let Some(balance) = balance.as_i64() else {
                        return Verdict::unknown(format!(
                            "{}: balance of {account} is not an integer",
                            pair.describe()
                        ));
                    };
                    if inferred {
                        accounts.insert(account.clone());
                    }
                    parsed.push((account.clone(), balance));
                }
                reads.push((pair, parsed));
            }
            _ => {}
        }
    }

    let mut findings = Findings::default();
    findings.stat("accounts", accounts.len() as u64);
    findings.stat("transfers", transfers);
    findings.stat("reads", reads.len() as u64);
    if reads.is_empty() {
        return findings.finish(Some("no ok read to check".into()));
    }
    for (pair, balances) in &reads {
        let at = || pair.describe();
        let sum: i128 = balances.iter().map(|(_, b)| *b as i128).sum();
        if sum != options.total as i128 {
            findings.add(
                kinds::WRONG_TOTAL,
                format!("{}: balances sum to {sum}, expected {}", at(), options.total),
                vec![pair.index()],
            );
        }
        let seen: BTreeSet<&str> = balances.iter().map(|(a, _)| a.as_str()).collect();
        let missing: Vec<&str> = accounts.iter().map(|a| a.as_str()).filter(|a| !seen.contains(a)).collect();
        if !missing.is_empty() {
            findings.add(
                kinds::MISSING_ACCOUNT,
                format!("{}: accounts missing: {}", at(), quote_items(&missing, ANOMALY_MESSAGE_ITEMS_MAX)),
                vec![pair.index()],
            );
        }
        if !options.negative_allowed {
            let negative: Vec<String> =
                balances.iter().filter(|(_, b)| *b < 0).map(|(a, b)| format!("{a}={b}")).collect();
            if !negative.is_empty() {
                findings.add(
                    kinds::NEGATIVE_BALANCE,
                    format!("{}: negative balances: {}", at(), quote_items(&negative, ANOMALY_MESSAGE_ITEMS_MAX)),
                    vec![pair.index()],
                );
            }
        }
    }
    findings.finish(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::verdict::Validity;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;
    use std::time::Instant;

    fn transfer(p: i64, from: i64, to: i64, amount: i64) -> Vec<E> {
        let v = json!({"from": from, "to": to, "amount": amount});
        vec![inv(p, "transfer", v.clone()), ok(p, "transfer", v)]
    }

    fn read(p: i64, balances: Value) -> Vec<E> {
        vec![inv(p, "read", Value::Null), ok(p, "read", balances)]
    }

    fn run(parts: Vec<Vec<E>>, options: &BankOptions) -> Verdict {
        check(&hist(parts.into_iter().flatten().collect()), options)
    }

    /// Goal: consistent snapshots pass. Method: a transfer between two
    /// reads that both sum to the total.
    #[test]
    fn valid_bank() {
        let v = run(
            vec![read(0, json!({"0": 10, "1": 10})), transfer(1, 0, 1, 3), read(0, json!({"0": 7, "1": 13}))],
            &BankOptions::new(20),
        );
        assert_eq!(v.to_string(), "valid");
        assert_eq!(v.stats["accounts"], 2);
    }

    /// Goal: a read that saw half a transfer is caught.
    #[test]
    fn wrong_total() {
        let v = run(vec![transfer(1, 0, 1, 3), read(0, json!({"0": 7, "1": 10}))], &BankOptions::new(20));
        assert_eq!(v.to_string(), "invalid: wrong-total");
        assert_eq!(v.anomalies[0].ops, vec![3]);
        assert!(v.anomalies[0].message.contains("sum to 17, expected 20"));
    }

    /// Goal: a read without an account is caught, whether the accounts are
    /// inferred or given. Method: the transfer names account 2, the read
    /// lacks it; then the accounts given explicitly.
    #[test]
    fn missing_account() {
        let v = run(vec![transfer(1, 0, 2, 0), read(0, json!({"0": 10, "1": 10}))], &BankOptions::new(20));
        assert_eq!(v.to_string(), "invalid: missing-account");
        assert!(v.anomalies[0].message.ends_with("accounts missing: 2"));
        let given = BankOptions { accounts: Some(vec!["0".into(), "1".into(), "9".into()]), ..BankOptions::new(20) };
        let v = run(vec![read(0, json!({"0": 10, "1": 10}))], &given);
        assert_eq!(v.to_string(), "invalid: missing-account");
    }

    /// Goal: negative balances are caught unless allowed.
    #[test]
    fn negative_balance() {
        let parts = || vec![read(0, json!({"0": -5, "1": 25}))];
        let v = run(parts(), &BankOptions::new(20));
        assert_eq!(v.to_string(), "invalid: negative-balance");
        let allowed = BankOptions { negative_allowed: true, ..BankOptions::new(20) };
        assert!(run(parts(), &allowed).is_valid());
    }

    /// Goal: no reads or malformed reads give unknown.
    #[test]
    fn unknown_without_reads() {
        let v = run(vec![transfer(1, 0, 1, 3)], &BankOptions::new(20));
        assert!(matches!(v.result, Validity::Unknown { .. }));
        let v = run(vec![read(0, json!([1, 2]))], &BankOptions::new(20));
        assert!(matches!(v.result, Validity::Unknown { .. }));
    }

    /// A correct bank: 8 accounts of 100; transfers apply atomically at
    /// their effect instant unless they would overdraw (then fail); reads
    /// return the balances at their effect instant.
    fn simulate(seed: u64, n: usize) -> Vec<SimOp> {
        let mut rng = StdRng::seed_from_u64(seed);
        let slots = slots(&mut rng, n, 10, 10);
        let mut balances = [100i64; 8];
        let mut ops: Vec<SimOp> = slots
            .iter()
            .map(|s| {
                let (f, v) = if rng.random_range(0..2) == 0 {
                    ("read", Value::Null)
                } else {
                    let from = rng.random_range(0..8);
                    let to = (from + rng.random_range(1..8)) % 8;
                    ("transfer", json!({"from": from, "to": to, "amount": rng.random_range(1..30)}))
                };
                SimOp {
                    process: s.process,
                    f: f.into(),
                    invoke_value: v.clone(),
                    outcome: OpType::Ok,
                    ok_value: v,
                    invoke_ns: s.invoke_ns,
                    complete_ns: Some(s.complete_ns),
                    commit_ts: None,
                }
            })
            .collect();
        for i in effect_order(&slots) {
            let op = &mut ops[i];
            if op.f == "read" {
                let snapshot: serde_json::Map<String, Value> =
                    balances.iter().enumerate().map(|(a, b)| (a.to_string(), json!(b))).collect();
                op.ok_value = Value::Object(snapshot);
            } else {
                let from = op.invoke_value["from"].as_u64().unwrap() as usize;
                let to = op.invoke_value["to"].as_u64().unwrap() as usize;
                let amount = op.invoke_value["amount"].as_i64().unwrap();
                if balances[from] < amount {
                    op.outcome = OpType::Fail;
                } else if !slots[i].timed_out || chance(&mut rng, 500) {
                    balances[from] -= amount;
                    balances[to] += amount;
                }
            }
            if slots[i].timed_out {
                op.outcome = OpType::Info;
            }
        }
        ops
    }

    /// Goal: 10,000 correct bank ops pass; one torn snapshot is found.
    /// Method: simulate and check; then make one ok read see a transfer's
    /// debit without its credit.
    #[test]
    fn simulated_10k_ops() {
        let mut ops = simulate(11, 10_000);
        let started = Instant::now();
        let v = check(&to_history(&ops), &BankOptions::new(800));
        eprintln!("bank 10k ops: {:?}, {v}, {:?}", started.elapsed(), v.stats);
        assert!(v.is_valid(), "{v}");
        assert!(v.stats["reads"] > 4_000);

        let victim = ops.iter().position(|o| o.f == "read" && o.outcome == OpType::Ok).unwrap();
        let b = ops[victim].ok_value["3"].as_i64().unwrap();
        ops[victim].ok_value["3"] = json!(b - 7);
        let h = to_history(&ops);
        let v = check(&h, &BankOptions::new(800));
        assert_eq!(v.to_string(), "invalid: wrong-total");
        assert_eq!(v.anomalies[0].ops, vec![index_of(&h, &ops[victim])]);
    }
}
