//! The list-append workload: short transactions of appends and reads over
//! a few keys, each key a list of unique integers, checked the Elle way
//! (`jepsen::checker::list_append`) for strict serializability.
//!
//! ```text
//!   f    invoke                               ok (+ commit_ts)
//!   txn  [["append", 4, 17], ["r", 5, null]]  [["append", 4, 17], ["r", 5, [2, 9]]]
//! ```
//!
//! A transaction runs its micro-ops in order in one read-write
//! transaction: `r` reads the key (a shared lock; the transaction's own
//! earlier appends included); `append` reads the list and writes it back
//! one element longer (the exclusive lock is taken at commit). Lists are
//! stored as decimal elements joined by commas (`"2,9,17"`); anything that
//! does not parse comes back as a string element, which the checker
//! reports as garbage.
//!
//! # Keys
//!
//! [`LIST_APPEND_ACTIVE_KEYS`] keys are live at a time; a key that has
//! been given [`LIST_APPEND_APPENDS_PER_KEY`] appends is retired and a
//! fresh one takes its place (Elle's key rotation): lists stay short,
//! reads stay cheap, and every key still sees plenty of contention.
//! Consecutive key ids start with consecutive letters (`spread_key`), so a
//! transaction over two keys usually spans two shards. Elements are unique
//! across the run (one counter), as the checker requires.

use std::sync::Mutex;

use client::Client;
use jepsen::generate::ListAppendGen;
use rand::rngs::StdRng;
use serde_json::{json, Value};

use super::{guarded, spread_key, Completion, Effect, Invocation};
use crate::limits::{LIST_APPEND_ACTIVE_KEYS, LIST_APPEND_APPENDS_PER_KEY, LIST_APPEND_TXN_OPS_MAX};

pub struct ListAppend {
    run: String,
    generator: Mutex<ListAppendGen>,
}

impl ListAppend {
    pub fn new(run: &str) -> ListAppend {
        ListAppend {
            run: run.to_string(),
            generator: Mutex::new(ListAppendGen::new(
                LIST_APPEND_ACTIVE_KEYS,
                LIST_APPEND_APPENDS_PER_KEY,
                LIST_APPEND_TXN_OPS_MAX,
            )),
        }
    }

    pub fn next(&self, rng: &mut StdRng) -> Invocation {
        Invocation { f: "txn", value: self.generator.lock().expect("list-append generator").next(rng) }
    }

    pub async fn execute(&self, client: &Client, op: &Invocation) -> Completion {
        guarded(Effect::Write, &op.value, self.txn(client, &op.value)).await
    }

    async fn txn(&self, client: &Client, v: &Value) -> Completion {
        let mops = v.as_array().expect("list-append txns are generated as arrays");
        let mut txn = client.begin();
        let mut done = Vec::with_capacity(mops.len());
        for mop in mops {
            let (f, k) = (mop[0].as_str().unwrap_or_default(), mop[1].as_u64().expect("integer keys"));
            let key = spread_key(&self.run, "list-append", k);
            // An append reads its list for update (SQL's UPDATE does):
            // elle's check covers exclusive reads too.
            let read = match f {
                "r" => txn.get(&key).await,
                _ => txn.get_for_update(&key).await,
            };
            let mut list = match read {
                Ok(found) => decode_list(found.as_deref().unwrap_or_default()),
                // Nothing was written: dropping the transaction releases it.
                Err(e) => return Completion::fail(v.clone(), e.to_string()),
            };
            if f == "r" {
                done.push(json!(["r", k, list]));
            } else {
                list.push(mop[2].clone());
                txn.put(&key, encode_list(&list).as_bytes());
                done.push(mop.clone());
            }
        }
        match txn.commit().await {
            Ok(ts) => Completion::ok(Value::Array(done), Some(ts.as_nanos())),
            Err(e) => Completion::write_error(v.clone(), &e),
        }
    }
}

/// `"2,9,17"` -> `[2, 9, 17]`; empty -> `[]`; a piece that is not an
/// integer stays a string (garbage the checker reports).
pub fn decode_list(bytes: &[u8]) -> Vec<Value> {
    if bytes.is_empty() {
        return Vec::new();
    }
    String::from_utf8_lossy(bytes)
        .split(',')
        .map(|piece| piece.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(piece)))
        .collect()
}

pub fn encode_list(list: &[Value]) -> String {
    list.iter()
        .map(|e| match e {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: lists round-trip through their stored form; junk survives as
    /// strings for the checker to see.
    #[test]
    fn lists_round_trip() {
        let list = vec![json!(2), json!(9), json!(17)];
        assert_eq!(encode_list(&list), "2,9,17");
        assert_eq!(decode_list(b"2,9,17"), list);
        assert_eq!(decode_list(b""), Vec::<Value>::new());
        assert_eq!(decode_list(b"1,x"), vec![json!(1), json!("x")]);
    }
}
