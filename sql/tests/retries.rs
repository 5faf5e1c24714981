//! A transaction block that fails retryably (40001) and is run again by
//! the client (BEGIN ... again, as pgbench's --max-tries and drivers do)
//! keeps its wound-wait priority, so the retry ages instead of starting
//! young every time and losing again.
//!
//! ```text
//!   Prioritized engine = MemoryEngine whose transactions get increasing
//!                        priorities, logging each begin's priority
//! ```

use std::sync::{Arc, Mutex};

use sql::kv::{Committed, Engine, KvError, Mode, Pair, Priority, ShardSpan, Timestamp, Transaction};
use sql::memory::MemoryEngine;
use sql::{Collected, Session};

#[derive(Default)]
struct Prioritized {
    inner: MemoryEngine,
    /// Every transaction begun: its priority, and whether it was given.
    begun: Mutex<Vec<(Priority, bool)>>,
}

struct WithPriority {
    inner: Box<dyn Transaction>,
    priority: Priority,
}

impl Prioritized {
    fn start(&self, mode: Mode, given: Option<Priority>) -> Result<Box<dyn Transaction>, KvError> {
        let mut begun = self.begun.lock().unwrap();
        let n = begun.len() as u64 + 1;
        let priority = given.unwrap_or(Priority { start_ns: n, id: u128::from(n) });
        begun.push((priority, given.is_some()));
        Ok(Box::new(WithPriority { inner: self.inner.begin(mode)?, priority }))
    }
}

impl Engine for Prioritized {
    fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>, KvError> {
        self.start(mode, None)
    }
    fn begin_with_priority(&self, mode: Mode, priority: Priority) -> Result<Box<dyn Transaction>, KvError> {
        self.start(mode, Some(priority))
    }
    fn shards(&self, start: &[u8], end: &[u8]) -> Vec<ShardSpan> {
        self.inner.shards(start, end)
    }
    fn now(&self) -> Timestamp {
        self.inner.now()
    }
    fn wait(&self, nanos: u64) {
        self.inner.wait(nanos)
    }
}

impl Transaction for WithPriority {
    fn mode(&self) -> Mode {
        self.inner.mode()
    }
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key)
    }
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        self.inner.scan(start, end, limit)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.inner.put(key, value)
    }
    fn put_absent(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.inner.put_absent(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<(), KvError> {
        self.inner.delete(key)
    }
    fn commit(self: Box<Self>) -> Result<Committed, KvError> {
        self.inner.commit()
    }
    fn rollback(self: Box<Self>) -> Result<(), KvError> {
        self.inner.rollback()
    }
    fn read_ts(&self) -> Option<Timestamp> {
        self.inner.read_ts()
    }
    fn priority(&self) -> Option<Priority> {
        Some(self.priority)
    }
}

fn run(session: &mut Session, sql: &str) -> Result<Collected, sql::Error> {
    let mut out = Collected::default();
    session.execute(sql, &mut out)?;
    Ok(out)
}

/// Goal: after a block's COMMIT fails with 40001 (a concurrent write won),
/// the client's next BEGIN runs with the failed block's priority; one
/// after a block that ended well starts afresh.
#[test]
fn a_retried_block_keeps_its_priority() {
    let engine = Arc::new(Prioritized::default());
    let (mut a, mut b) = (Session::new(engine.clone()), Session::new(engine.clone()));
    run(&mut a, "CREATE TABLE t (id INT PRIMARY KEY, n INT)").unwrap();
    run(&mut a, "INSERT INTO t VALUES (1, 0)").unwrap();
    run(&mut a, "BEGIN").unwrap();
    let first = *engine.begun.lock().unwrap().last().unwrap();
    run(&mut a, "UPDATE t SET n = n + 1 WHERE id = 1").unwrap();
    run(&mut b, "UPDATE t SET n = n + 10 WHERE id = 1").unwrap();
    let e = run(&mut a, "COMMIT").expect_err("b's write came first");
    assert_eq!(e.state.code(), "40001", "{e}");

    run(&mut a, "BEGIN").unwrap();
    let retry = *engine.begun.lock().unwrap().last().unwrap();
    assert_eq!(retry, (first.0, true), "the retry keeps the first attempt's priority");
    run(&mut a, "UPDATE t SET n = n + 1 WHERE id = 1").unwrap();
    run(&mut a, "COMMIT").unwrap();

    run(&mut a, "BEGIN").unwrap();
    let next = *engine.begun.lock().unwrap().last().unwrap();
    assert!(!next.1 && next.0 != first.0, "a new block starts afresh: {next:?}");
    run(&mut a, "ROLLBACK").unwrap();
    let out = run(&mut a, "SELECT n FROM t").unwrap();
    assert_eq!(out.rows, vec![vec![sql::Value::Int4(11)]]);
}
