//! The register workload: single-key reads, writes and compare-and-sets on
//! many independent keys, checked for linearizability per key.
//!
//! ```text
//!   f      invoke             ok                  client call
//!   read   [k, null]          [k, v]              get (linearizable)
//!   write  [k, v]             [k, v] + commit_ts  put
//!   cas    [k, [old, new]]    same + commit_ts    compare_and_set (fail: value differed)
//! ```
//!
//! Workers share keys in groups of [`REGISTER_WORKERS_PER_KEY`] (worker `w`
//! is in group `w % groups`); a group's key receives
//! [`REGISTER_OPS_PER_KEY`] invocations, then the group moves to a fresh
//! key. Each key's history stays small and concurrent, which is what the
//! linearizability search needs (Jepsen's "independent" keys).
//!
//! Written values are unique across the run (one counter), which lets the
//! checker prune writes of unknown fate that nobody observed. A cas expects
//! the last value any worker saw on that key (null when none), so it
//! succeeds often enough to matter.

use std::collections::HashMap;
use std::sync::Mutex;

use client::Client;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

use super::{decode_int, encode_int, guarded, spread_key, Completion, Effect, Invocation};
use crate::jepsen::limits::{REGISTER_OPS_PER_KEY, REGISTER_WORKERS_PER_KEY};

/// The pure part: which key each worker uses and what it does next.
pub struct RegisterGen {
    groups: Vec<GroupKey>,
    ops_per_key: u64,
    next_key: u64,
    next_value: i64,
    /// The last value seen on each live key (by ok reads, writes, cas).
    last_seen: HashMap<u64, Value>,
}

#[derive(Clone, Copy)]
struct GroupKey {
    key: u64,
    invoked: u64,
}

impl RegisterGen {
    pub fn new(concurrency: usize, workers_per_key: usize, ops_per_key: u64) -> RegisterGen {
        let groups = concurrency.div_ceil(workers_per_key.max(1)).max(1);
        RegisterGen {
            groups: (0..groups as u64).map(|key| GroupKey { key, invoked: 0 }).collect(),
            ops_per_key: ops_per_key.max(1),
            next_key: groups as u64,
            next_value: 1,
            last_seen: HashMap::new(),
        }
    }

    /// The key `worker` works on now.
    fn key_for(&mut self, worker: usize) -> u64 {
        let g = worker % self.groups.len();
        if self.groups[g].invoked >= self.ops_per_key {
            self.last_seen.remove(&self.groups[g].key);
            self.groups[g] = GroupKey { key: self.next_key, invoked: 0 };
            self.next_key += 1;
        }
        self.groups[g].invoked += 1;
        self.groups[g].key
    }

    fn fresh_value(&mut self) -> i64 {
        let v = self.next_value;
        self.next_value += 1;
        v
    }

    /// The next op of `worker`: read, write or cas with equal odds.
    pub fn next(&mut self, worker: usize, rng: &mut StdRng) -> Invocation {
        let key = self.key_for(worker);
        match rng.random_range(0..3) {
            0 => Invocation { f: "read", value: json!([key, null]) },
            1 => Invocation { f: "write", value: json!([key, self.fresh_value()]) },
            _ => {
                let old = self.last_seen.get(&key).cloned().unwrap_or(Value::Null);
                Invocation { f: "cas", value: json!([key, [old, self.fresh_value()]]) }
            }
        }
    }

    /// Learns from an ok completion which value its key now holds.
    pub fn observe(&mut self, op: &Invocation, completion: &Completion) {
        if completion.op_type != jepsen::OpType::Ok {
            return;
        }
        let Some(key) = op.value[0].as_u64() else { return };
        if !self.groups.iter().any(|g| g.key == key) {
            return; // retired: nobody will cas it again
        }
        let seen = match op.f {
            "read" => completion.value[1].clone(),
            "write" => op.value[1].clone(),
            _ => op.value[1][1].clone(),
        };
        self.last_seen.insert(key, seen);
    }
}

/// The workload: the generator behind a lock, and the client calls.
pub struct Register {
    run: String,
    generator: Mutex<RegisterGen>,
}

impl Register {
    pub fn new(run: &str, concurrency: usize) -> Register {
        Register {
            run: run.to_string(),
            generator: Mutex::new(RegisterGen::new(concurrency, REGISTER_WORKERS_PER_KEY, REGISTER_OPS_PER_KEY)),
        }
    }

    pub fn next(&self, worker: usize, rng: &mut StdRng) -> Invocation {
        self.generator.lock().expect("register generator").next(worker, rng)
    }

    fn key(&self, value: &Value) -> Vec<u8> {
        spread_key(&self.run, "register", value[0].as_u64().expect("register keys are integers"))
    }

    pub async fn execute(&self, client: &Client, op: &Invocation) -> Completion {
        let key = self.key(&op.value);
        let v = op.value.clone();
        let completion = match op.f {
            "read" => {
                guarded(Effect::Read, &v, async {
                    match client.get(&key).await {
                        Ok(found) => {
                            Completion::ok(json!([v[0], found.as_deref().map_or(Value::Null, decode_int)]), None)
                        }
                        Err(e) => Completion::fail(v.clone(), e.to_string()),
                    }
                })
                .await
            }
            "write" => {
                let value = encode_int(v[1].as_i64().expect("register values are integers"));
                guarded(Effect::Write, &v, async {
                    match client.put(&key, &value).await {
                        Ok(ts) => Completion::ok(v.clone(), Some(ts.as_nanos())),
                        Err(e) => Completion::write_error(v.clone(), &e),
                    }
                })
                .await
            }
            "cas" => {
                let old = v[1][0].as_i64().map(encode_int);
                let new = encode_int(v[1][1].as_i64().expect("register values are integers"));
                guarded(Effect::Write, &v, async {
                    match client.compare_and_set(&key, old.as_deref(), Some(&new)).await {
                        Ok(w) if w.applied => Completion::ok(v.clone(), Some(w.commit_ts.as_nanos())),
                        Ok(_) => Completion::fail(v.clone(), "the value differed"),
                        Err(e) => Completion::write_error(v.clone(), &e),
                    }
                })
                .await
            }
            other => unreachable!("the register generator made an op {other:?}"),
        };
        self.generator.lock().expect("register generator").observe(op, &completion);
        completion
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jepsen::OpType;
    use rand::SeedableRng;
    use std::collections::{BTreeMap, BTreeSet};

    /// Goal: workers share keys in groups, each key gets a bounded number
    /// of ops, keys are never revisited, and values are unique.
    /// Method: 7 workers, 3 per key (3 groups), 10 ops per key; draw 600
    /// ops round-robin and count.
    #[test]
    fn keys_rotate_per_group_and_values_are_unique() {
        let mut g = RegisterGen::new(7, 3, 10);
        let mut rng = StdRng::seed_from_u64(1);
        let mut per_key: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
        let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
        let mut values = BTreeSet::new();
        let mut fs = BTreeSet::new();
        let mut last_key_of_group: BTreeMap<usize, u64> = BTreeMap::new();
        for i in 0..600 {
            let worker = i % 7;
            let op = g.next(worker, &mut rng);
            let key = op.value[0].as_u64().unwrap();
            per_key.entry(key).or_default().insert(worker % 3);
            *counts.entry(key).or_default() += 1;
            let prev = last_key_of_group.insert(worker % 3, key);
            assert!(prev.is_none_or(|p| p <= key), "a group went back to an old key");
            fs.insert(op.f);
            let written = match op.f {
                "write" => op.value[1].as_i64(),
                "cas" => op.value[1][1].as_i64(),
                _ => None,
            };
            if let Some(v) = written {
                assert!(values.insert(v), "value {v} written twice");
            }
        }
        assert_eq!(fs, BTreeSet::from(["read", "write", "cas"]));
        assert!(per_key.values().all(|groups| groups.len() == 1), "one group per key: {per_key:?}");
        assert!(counts.values().all(|&n| n <= 10), "{counts:?}");
        let unfinished = counts.values().filter(|&&n| n < 10).count();
        assert!(unfinished <= 3, "only each group's current key may have fewer than 10 ops: {counts:?}");
    }

    /// Goal: a cas expects the last value seen on its key: null on a fresh
    /// key, then what an ok write or read reported; failures teach nothing.
    #[test]
    fn cas_expects_the_last_value_seen() {
        let mut g = RegisterGen::new(1, 1, 1000);
        let mut rng = StdRng::seed_from_u64(3);
        let mut expected = Value::Null;
        for _ in 0..300 {
            let op = g.next(0, &mut rng);
            if op.f == "cas" {
                assert_eq!(op.value[1][0], expected, "{op:?}");
            }
            let completion = match op.f {
                "read" => Completion::ok(json!([op.value[0], 99]), None),
                _ if rng.random_bool(0.5) => Completion::fail(op.value.clone(), "no"),
                _ => Completion::ok(op.value.clone(), Some(1)),
            };
            if completion.op_type == OpType::Ok {
                expected = match op.f {
                    "read" => json!(99),
                    "write" => op.value[1].clone(),
                    _ => op.value[1][1].clone(),
                };
            }
            g.observe(&op, &completion);
        }
    }
}
