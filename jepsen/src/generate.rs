//! Workload generators that are pure functions of a seeded RNG, shared by
//! the harness that runs them against real processes (`spandb jepsen`)
//! and the simulation that runs them on stepped clusters
//! (`tests::stepped_list_append`).
//!
//! [`ListAppendGen`]: transactions of list appends and reads for the
//! list-append checker ([`crate::checker::list_append`]), with Elle's key
//! rotation. A transaction is a JSON array of micro-operations:
//!
//! ```text
//!   [["r", 5, null], ["append", 4, 17]]
//! ```
//!
//! Invariants: elements are unique across the run (one counter), as the
//! checker requires; a key gets at most `appends_per_key` appends, then a
//! fresh key takes its place and the old one is never used again (lists
//! stay short, every key still sees contention).

use rand::Rng;
use serde_json::{json, Value};

/// Transactions of appends and reads over a few live keys (module docs).
pub struct ListAppendGen {
    /// Live key ids and the appends generated for each so far.
    active: Vec<(u64, u64)>,
    appends_per_key: u64,
    ops_max: usize,
    next_key: u64,
    next_element: i64,
}

impl ListAppendGen {
    /// `active_keys` keys live at a time, each retired after
    /// `appends_per_key` appends; transactions of 1 to `ops_max`
    /// micro-operations.
    pub fn new(active_keys: usize, appends_per_key: u64, ops_max: usize) -> ListAppendGen {
        let active_keys = active_keys.max(1) as u64;
        ListAppendGen {
            active: (0..active_keys).map(|k| (k, 0)).collect(),
            appends_per_key: appends_per_key.max(1),
            ops_max: ops_max.max(1),
            next_key: active_keys,
            next_element: 1,
        }
    }

    /// A transaction: each micro-operation a read or an append (equal
    /// odds) on a random live key.
    pub fn next(&mut self, rng: &mut impl Rng) -> Value {
        let n = rng.random_range(1..=self.ops_max);
        let mut mops = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = rng.random_range(0..self.active.len());
            let key = self.active[slot].0;
            if rng.random_bool(0.5) {
                mops.push(json!(["r", key, null]));
                continue;
            }
            mops.push(json!(["append", key, self.next_element]));
            self.next_element += 1;
            self.active[slot].1 += 1;
            if self.active[slot].1 >= self.appends_per_key {
                self.active[slot] = (self.next_key, 0);
                self.next_key += 1;
            }
        }
        Value::Array(mops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::{BTreeMap, BTreeSet};

    /// Goal: elements are unique, no key gets more than its share of
    /// appends, retired keys never come back, and transactions are 1 to
    /// the maximum micro-ops long.
    #[test]
    fn keys_rotate_and_elements_are_unique() {
        let mut g = ListAppendGen::new(3, 5, 4);
        let mut rng = StdRng::seed_from_u64(3);
        let mut elements = BTreeSet::new();
        let mut appends: BTreeMap<u64, u64> = BTreeMap::new();
        let mut retired = BTreeSet::new();
        for _ in 0..2_000 {
            let txn = g.next(&mut rng);
            let mops = txn.as_array().unwrap();
            assert!((1..=4).contains(&mops.len()));
            for mop in mops {
                let k = mop[1].as_u64().unwrap();
                assert!(!retired.contains(&k), "retired key {k} used again");
                if mop[0] == "append" {
                    assert!(elements.insert(mop[2].as_i64().unwrap()));
                    let n = appends.entry(k).or_default();
                    *n += 1;
                    if *n == 5 {
                        retired.insert(k);
                    }
                }
            }
        }
        assert!(appends.values().all(|&n| n <= 5), "{appends:?}");
        assert!(retired.len() > 100);
    }
}
