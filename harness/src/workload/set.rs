//! The set workload: unique adds during the run, one read at the end.
//!
//! ```text
//!   f      invoke   ok                     client call
//!   add    7        7 + commit_ts          put  L/RUN/set/7 = "7"
//!   read   null     [1, 2, 7, ...]         26 linearizable prefix scans, one per letter L
//! ```
//!
//! Each element is its own key (spread over the shards like every key, see
//! `workload::spread_key`), so adds on different shards run in parallel
//! and a lost add is a lost key. The final read runs once the cluster has
//! healed and recovered; the set checker then wants every acknowledged add
//! in it and nothing that was never attempted.

use std::sync::atomic::{AtomicI64, Ordering};

use client::{Client, ReadMode};
use serde_json::Value;

use super::{decode_int, encode_int, guarded, spread_key, spread_range, Completion, Effect, Invocation};
use crate::limits::SET_READ_ELEMENTS_MAX;

pub struct SetWorkload {
    run: String,
    next_element: AtomicI64,
}

impl SetWorkload {
    pub fn new(run: &str) -> SetWorkload {
        SetWorkload { run: run.to_string(), next_element: AtomicI64::new(0) }
    }

    /// The next add: a fresh element.
    pub fn next(&self) -> Invocation {
        Invocation { f: "add", value: Value::from(self.next_element.fetch_add(1, Ordering::Relaxed)) }
    }

    pub fn final_read(&self) -> Invocation {
        Invocation { f: "read", value: Value::Null }
    }

    pub async fn execute(&self, client: &Client, op: &Invocation) -> Completion {
        match op.f {
            "add" => {
                let element = op.value.as_i64().expect("set elements are integers");
                let key = spread_key(&self.run, "set", element as u64);
                guarded(Effect::Write, &op.value, async {
                    match client.put(&key, &encode_int(element)).await {
                        Ok(ts) => Completion::ok(op.value.clone(), Some(ts.as_nanos())),
                        Err(e) => Completion::write_error(op.value.clone(), &e),
                    }
                })
                .await
            }
            "read" => guarded(Effect::Read, &op.value, self.read_all(client)).await,
            other => unreachable!("the set generator made an op {other:?}"),
        }
    }

    /// Every element of this run's set, in key order per letter.
    async fn read_all(&self, client: &Client) -> Completion {
        let mut elements = Vec::new();
        for letter in 'a'..='z' {
            let (start, end) = spread_range(&self.run, "set", letter);
            match client.scan(&start, &end, SET_READ_ELEMENTS_MAX, ReadMode::Latest).await {
                Ok(pairs) => elements.extend(pairs.iter().map(|kv| decode_int(&kv.value))),
                Err(e) => return Completion::fail(Value::Null, format!("scan of {letter}/...: {e}")),
            }
        }
        Completion::ok(Value::Array(elements), None)
    }
}
