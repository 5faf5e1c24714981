//! The timestamps workload: read-write transactions whose only purpose is
//! their commit timestamps, checked against real time by the `external`
//! checker (Spanner's external consistency, OSDI 2012 §4.1.2).
//!
//! ```text
//!   f    invoke                      ok
//!   txn  [["w", 3, 41], ["w", 17, 42]]  same + commit_ts
//! ```
//!
//! Each transaction blindly writes a fresh value to 1 to
//! [`TIMESTAMPS_TXN_KEYS_MAX`] of [`TIMESTAMPS_KEYS`] keys (half of them a
//! single key: a one-phase commit at one shard leader; the rest two-phase
//! across shards). Keys start with different letters, so consecutive
//! transactions of one worker usually commit at different leaders, on
//! different servers with (under the clock nemesis) different clocks: the
//! case where only commit-wait keeps timestamps in real-time order. Skip
//! it (`--unsafe-skip-commit-wait`) with clock offsets large next to the
//! commit latency (`--epsilon-ms 50`, offsets up to 9/10 of that) and the
//! checker sees a transaction that finished before another began with the
//! larger timestamp.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};

use client::Client;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

use super::{encode_int, guarded, spread_key, Completion, Effect, Invocation};
use crate::limits::{TIMESTAMPS_KEYS, TIMESTAMPS_TXN_KEYS_MAX};

pub struct Timestamps {
    run: String,
    next_value: AtomicI64,
}

impl Timestamps {
    pub fn new(run: &str) -> Timestamps {
        Timestamps { run: run.to_string(), next_value: AtomicI64::new(1) }
    }

    pub fn next(&self, rng: &mut StdRng) -> Invocation {
        let n = if rng.random_bool(0.5) { 1 } else { rng.random_range(2..=TIMESTAMPS_TXN_KEYS_MAX) };
        let mut keys = BTreeSet::new();
        while keys.len() < n.min(TIMESTAMPS_KEYS as usize) {
            keys.insert(rng.random_range(0..TIMESTAMPS_KEYS));
        }
        let writes = keys.into_iter().map(|k| json!(["w", k, self.next_value.fetch_add(1, Ordering::Relaxed)]));
        Invocation { f: "txn", value: Value::Array(writes.collect()) }
    }

    pub async fn execute(&self, client: &Client, op: &Invocation) -> Completion {
        let v = op.value.clone();
        guarded(Effect::Write, &op.value, async {
            let mut txn = client.begin();
            for w in v.as_array().expect("timestamps txns are generated as arrays") {
                let (k, value) = (w[1].as_u64().expect("integer keys"), w[2].as_i64().expect("integer values"));
                txn.put(&spread_key(&self.run, "timestamps", k), &encode_int(value));
            }
            match txn.commit().await {
                Ok(ts) => Completion::ok(v.clone(), Some(ts.as_nanos())),
                Err(e) => Completion::write_error(v.clone(), &e),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Goal: transactions write 1 to the maximum distinct keys, about half
    /// of them one key, with values unique across the run.
    #[test]
    fn transactions_write_distinct_keys_with_fresh_values() {
        let w = Timestamps::new("r");
        let mut rng = StdRng::seed_from_u64(5);
        let mut values = BTreeSet::new();
        let mut single = 0;
        for _ in 0..1_000 {
            let op = w.next(&mut rng);
            let writes = op.value.as_array().unwrap();
            assert!((1..=TIMESTAMPS_TXN_KEYS_MAX).contains(&writes.len()));
            single += usize::from(writes.len() == 1);
            let keys: BTreeSet<u64> = writes.iter().map(|w| w[1].as_u64().unwrap()).collect();
            assert_eq!(keys.len(), writes.len());
            assert!(keys.iter().all(|&k| k < TIMESTAMPS_KEYS));
            assert!(writes.iter().all(|w| values.insert(w[2].as_i64().unwrap())));
        }
        assert!((400..600).contains(&single), "{single}");
    }
}
