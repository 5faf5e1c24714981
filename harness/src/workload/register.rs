//! The register workload: single-key writes, compare-and-sets and reads of
//! every kind a user can issue, on many independent keys; checked for
//! linearizability per key, and every read against the commit timestamps.
//!
//! ```text
//!   f             invoke                                   ok                   client call
//!   write         [k, v]                                   [k, v] + commit_ts   put
//!   cas           [k, [old, new]]                          same + commit_ts     compare_and_set (fail: value differed)
//!   read          [k, null]                                [k, v] + read_ts,    get_with(Latest): linearizable, at the leader
//!                                                                   version_ts
//!   read-only     [k, null]                                same                 a read-only transaction at the serving
//!                                                                               replica's TT.now().latest, a follower first
//!   read-at       [k, {"read_ts": T}]                      same                 get_with(At(T)): a snapshot, any replica
//!   read-bounded  [k, {"max_staleness_ns": d,              same                 get_with(MaxStaleness(d)), any replica
//!                      "invoke_wall_ns": W}]
//! ```
//!
//! Writes and cas ops are 2 in 5 of the ops; the rest are reads: leader
//! reads and read-only reads 1 in 5 each, snapshot and bounded reads 1 in
//! 10 each. A snapshot read's `T` comes from an op on its key that
//! already completed: the commit timestamp of a write, or the `read_ts` or
//! `version_ts` of a read (the newest of those, or one of the few before
//! it). `W` is the harness's wall clock just before the invocation is
//! recorded, `d` is [`REGISTER_READ_STALENESS`].
//!
//! The read-only read is one read of a read-only transaction; it is sent
//! as the transaction sends it (`get_from(k, ReadMode::Now,
//! ReplicaPreference::Follower)`, what `client.read_only()
//! .prefer(Follower).get(k)` does), so the history gets the version's
//! timestamp, which the transaction's API does not return.
//!
//! Two checkers judge the history (`check.rs`): `linearizable` (the
//! Wing-Gong/Lowe search; leader and read-only reads are its reads) and
//! `timestamped` (every read, including snapshot and bounded ones, against
//! the writes' commit timestamps; `jepsen::checker::timestamped`).
//!
//! Workers share keys in groups of [`REGISTER_WORKERS_PER_KEY`] (worker `w`
//! is in group `w % groups`); a group's key receives
//! [`REGISTER_OPS_PER_KEY`] invocations, then the group moves to a fresh
//! key. Each key's history stays small and concurrent, which is what the
//! linearizability search needs (Jepsen's "independent" keys). Key ids
//! advance by [`REGISTER_KEY_STRIDE`] (7, coprime with the 26 letters
//! `spread_key` picks from), so keys used one after another, or side by
//! side, sit on different shards: 0, 7, 14, 21 are `a`, `h`, `o`, `v`, one
//! in each shard of a started cluster, and a fault aimed at one shard's
//! leader meets some key at once.
//!
//! Written values are unique across the run (one counter), which lets the
//! checkers prune writes of unknown fate that nobody observed, and tie a
//! read's value to its write. A cas expects the last value any worker saw
//! on that key (null when none), so it succeeds often enough to matter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use client::{Client, GetOutput, ReadMode, ReplicaPreference, Timestamp};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use super::{decode_int, encode_int, guarded, spread_key, Completion, Effect, Invocation};
use crate::limits::{
    REGISTER_KEY_STRIDE, REGISTER_OPS_PER_KEY, REGISTER_READ_STALENESS, REGISTER_SNAPSHOT_TIMESTAMPS_KEPT,
    REGISTER_WORKERS_PER_KEY,
};

/// The pure part: which key each worker uses and what it does next.
pub struct RegisterGen {
    groups: Vec<GroupKey>,
    ops_per_key: u64,
    next_key: u64,
    next_value: i64,
    /// The last value seen on each live key (by ok reads, writes, cas).
    last_seen: HashMap<u64, Value>,
    /// Timestamps completed ops reported on each live key, newest last
    /// (at most [`REGISTER_SNAPSHOT_TIMESTAMPS_KEPT`]).
    timestamps: HashMap<u64, Vec<u64>>,
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
            groups: (0..groups as u64).map(|g| GroupKey { key: g * REGISTER_KEY_STRIDE, invoked: 0 }).collect(),
            ops_per_key: ops_per_key.max(1),
            next_key: groups as u64 * REGISTER_KEY_STRIDE,
            next_value: 1,
            last_seen: HashMap::new(),
            timestamps: HashMap::new(),
        }
    }

    /// The key `worker` works on now.
    fn key_for(&mut self, worker: usize) -> u64 {
        let g = worker % self.groups.len();
        if self.groups[g].invoked >= self.ops_per_key {
            let retired = self.groups[g].key;
            self.last_seen.remove(&retired);
            self.timestamps.remove(&retired);
            self.groups[g] = GroupKey { key: self.next_key, invoked: 0 };
            self.next_key += REGISTER_KEY_STRIDE;
        }
        self.groups[g].invoked += 1;
        self.groups[g].key
    }

    fn fresh_value(&mut self) -> i64 {
        let v = self.next_value;
        self.next_value += 1;
        v
    }

    /// The next op of `worker` (module docs for the mix); `wall_ns` is the
    /// wall clock now, for a bounded read's invocation.
    pub fn next(&mut self, worker: usize, rng: &mut StdRng, wall_ns: u64) -> Invocation {
        let key = self.key_for(worker);
        let read_only = Invocation { f: "read-only", value: json!([key, null]) };
        match rng.random_range(0..10) {
            0 | 1 => Invocation { f: "write", value: json!([key, self.fresh_value()]) },
            2 | 3 => {
                let old = self.last_seen.get(&key).cloned().unwrap_or(Value::Null);
                Invocation { f: "cas", value: json!([key, [old, self.fresh_value()]]) }
            }
            4 | 5 => Invocation { f: "read", value: json!([key, null]) },
            6 | 7 => read_only,
            8 => {
                // The newest timestamp known, or one of the few before it.
                let Some(known) = self.timestamps.get(&key).filter(|t| !t.is_empty()) else {
                    return read_only;
                };
                let ts =
                    if rng.random_bool(0.5) { known[known.len() - 1] } else { *known.choose(rng).expect("not empty") };
                Invocation { f: "read-at", value: json!([key, { "read_ts": ts }]) }
            }
            _ => {
                let staleness_ns = REGISTER_READ_STALENESS.as_nanos() as u64;
                Invocation {
                    f: "read-bounded",
                    value: json!([key, { "max_staleness_ns": staleness_ns, "invoke_wall_ns": wall_ns }]),
                }
            }
        }
    }

    /// Learns from an ok completion which value its key now holds, and the
    /// timestamps it reported.
    pub fn observe(&mut self, op: &Invocation, completion: &Completion) {
        if completion.op_type != jepsen::OpType::Ok {
            return;
        }
        let Some(key) = op.value[0].as_u64() else { return };
        if !self.groups.iter().any(|g| g.key == key) {
            return; // retired: nobody will use it again
        }
        let seen = match op.f {
            "write" => op.value[1].clone(),
            "cas" => op.value[1][1].clone(),
            _ => completion.value[1].clone(),
        };
        self.last_seen.insert(key, seen);
        let known = self.timestamps.entry(key).or_default();
        for ts in [completion.commit_ts, completion.version_ts, completion.read_ts].into_iter().flatten() {
            if !known.contains(&ts) {
                known.push(ts);
            }
        }
        known.sort_unstable();
        let excess = known.len().saturating_sub(REGISTER_SNAPSHOT_TIMESTAMPS_KEPT);
        known.drain(..excess);
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
        let wall_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        self.generator.lock().expect("register generator").next(worker, rng, wall_ns)
    }

    fn key(&self, value: &Value) -> Vec<u8> {
        spread_key(&self.run, "register", value[0].as_u64().expect("register keys are integers"))
    }

    pub async fn execute(&self, client: &Client, op: &Invocation) -> Completion {
        let key = self.key(&op.value);
        let v = op.value.clone();
        let completion = match op.f {
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
            read => {
                let (mode, replica) = read_mode(read, &v);
                guarded(Effect::Read, &v, async {
                    match client.get_from(&key, mode, replica).await {
                        Ok(out) => read_completion(&v, out),
                        Err(e) => Completion::fail(v.clone(), e.to_string()),
                    }
                })
                .await
            }
        };
        self.generator.lock().expect("register generator").observe(op, &completion);
        completion
    }
}

/// How a read `f` with invocation value `v` is sent (module docs).
fn read_mode(f: &str, v: &Value) -> (ReadMode, ReplicaPreference) {
    let field = |name: &str| v[1][name].as_u64().expect("generated reads carry their parameters");
    match f {
        "read" => (ReadMode::Latest, ReplicaPreference::Auto),
        "read-only" => (ReadMode::Now, ReplicaPreference::Follower),
        "read-at" => (ReadMode::At(Timestamp::from_nanos(field("read_ts"))), ReplicaPreference::Auto),
        "read-bounded" => (
            ReadMode::MaxStaleness(std::time::Duration::from_nanos(field("max_staleness_ns"))),
            ReplicaPreference::Auto,
        ),
        other => unreachable!("the register generator made an op {other:?}"),
    }
}

/// A read's completion: `[k, value]` with the server's timestamps.
fn read_completion(v: &Value, out: GetOutput) -> Completion {
    let value = out.value.as_ref().map_or(Value::Null, |found| decode_int(&found.value));
    let version_ts = out.value.map(|found| found.version_ts.as_nanos());
    Completion::read(json!([v[0], value]), out.read_ts.as_nanos(), version_ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jepsen::OpType;
    use rand::SeedableRng;
    use std::collections::{BTreeMap, BTreeSet};

    /// Goal: workers share keys in groups, each key gets a bounded number
    /// of ops, keys are never revisited, values are unique, and every op
    /// kind shows up.
    /// Method: 7 workers, 3 per key (3 groups), 10 ops per key; draw 600
    /// ops round-robin, each completed ok with timestamps, and count.
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
            let op = g.next(worker, &mut rng, 1_000);
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
            let done = match written {
                Some(_) => Completion::ok(op.value.clone(), Some(i as u64 * 10)),
                None => Completion::read(json!([key, null]), i as u64 * 10 + 5, None),
            };
            g.observe(&op, &done);
        }
        assert_eq!(fs, BTreeSet::from(["read", "read-only", "read-at", "read-bounded", "write", "cas"]));
        let letters: Vec<u8> = per_key.keys().take(26).map(|&k| spread_key("r", "register", k)[0]).collect();
        assert_eq!(letters.iter().collect::<BTreeSet<_>>().len(), letters.len().min(26), "{letters:?}");
        assert_eq!(&letters[..3], b"aho", "the first keys sit on different shards");
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
            let op = g.next(0, &mut rng, 1_000);
            if op.f == "cas" {
                assert_eq!(op.value[1][0], expected, "{op:?}");
            }
            let completion = match op.f {
                "write" | "cas" if rng.random_bool(0.5) => Completion::fail(op.value.clone(), "no"),
                "write" | "cas" => Completion::ok(op.value.clone(), Some(1)),
                _ => Completion::read(json!([op.value[0], 99]), 5, Some(1)),
            };
            if completion.op_type == OpType::Ok {
                expected = match op.f {
                    "write" => op.value[1].clone(),
                    "cas" => op.value[1][1].clone(),
                    _ => json!(99),
                };
            }
            g.observe(&op, &completion);
        }
    }

    /// Goal: snapshot reads only ask for timestamps that completed ops on
    /// their key reported (never one made up), half the time the newest;
    /// a fresh key gets a read-only read instead; bounded reads carry
    /// their bound and the wall clock given.
    /// Method: one worker on one key; complete every op ok with distinct
    /// timestamps; check each snapshot's `read_ts` against those seen.
    #[test]
    fn snapshot_timestamps_come_from_completed_ops() {
        let mut g = RegisterGen::new(1, 1, 10_000);
        let mut rng = StdRng::seed_from_u64(5);
        let mut reported: Vec<u64> = Vec::new();
        let (mut snapshots, mut newest) = (0, 0);
        let first = g.next(0, &mut rng, 7);
        assert_ne!(first.f, "read-at", "nothing completed yet");
        for i in 1..2_000u64 {
            let op = g.next(0, &mut rng, 7_000 + i);
            match op.f {
                "read-at" => {
                    let ts = op.value[1]["read_ts"].as_u64().unwrap();
                    assert!(reported.contains(&ts), "{ts} was never reported");
                    snapshots += 1;
                    newest += u32::from(Some(&ts) == reported.iter().max());
                }
                "read-bounded" => {
                    assert_eq!(op.value[1]["invoke_wall_ns"], 7_000 + i);
                    assert_eq!(op.value[1]["max_staleness_ns"], REGISTER_READ_STALENESS.as_nanos() as u64);
                }
                _ => {}
            }
            let done = match op.f {
                "write" | "cas" => Completion::ok(op.value.clone(), Some(i * 100)),
                _ => Completion::read(json!([op.value[0], null]), i * 100 + 1, None),
            };
            reported.extend([done.commit_ts, done.read_ts].into_iter().flatten());
            g.observe(&op, &done);
        }
        assert!(snapshots > 100, "{snapshots}");
        assert!(newest * 3 >= snapshots, "{newest} of {snapshots} at the newest");
    }

    /// Goal: each read kind is sent the way the module docs say.
    #[test]
    fn read_kinds_map_to_modes() {
        use std::time::Duration;
        let v = json!([1, {"read_ts": 42, "max_staleness_ns": 5_000, "invoke_wall_ns": 9}]);
        assert_eq!(read_mode("read", &v), (ReadMode::Latest, ReplicaPreference::Auto));
        assert_eq!(read_mode("read-only", &v), (ReadMode::Now, ReplicaPreference::Follower));
        assert_eq!(read_mode("read-at", &v).0, ReadMode::At(Timestamp::from_nanos(42)));
        assert_eq!(read_mode("read-bounded", &v).0, ReadMode::MaxStaleness(Duration::from_nanos(5_000)));
    }
}
