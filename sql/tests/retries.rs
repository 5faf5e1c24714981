//! A transaction block that fails retryably (40001) and is run again by
//! the client (BEGIN ... again, as pgbench's --max-tries and drivers do)
//! keeps its wound-wait priority, so the retry ages instead of starting
//! young every time and losing again.
//!
//! ```text
//!   Prioritized engine = MemoryEngine whose transactions get increasing
//!                        priorities, logging each begin's priority
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

mod common;

use common::{run, Wrapped};
use sql::kv::{Engine, KvError, Mode, Priority, ShardSpan, Timestamp, Transaction};
use sql::memory::MemoryEngine;
use sql::Session;

#[derive(Default)]
struct Prioritized {
    inner: MemoryEngine,
    /// Every transaction begun: its priority, and whether it was given.
    begun: Mutex<Vec<(Priority, bool)>>,
    /// While set, every transaction's reads fail as a wounded one's.
    wounded: Arc<AtomicBool>,
}

impl Prioritized {
    fn start(&self, mode: Mode, given: Option<Priority>) -> Result<Box<dyn Transaction>, KvError> {
        let mut begun = self.begun.lock().unwrap();
        let n = begun.len() as u64 + 1;
        let priority = given.unwrap_or(Priority { start_ns: n, id: u128::from(n) });
        begun.push((priority, given.is_some()));
        let wounded = Some(self.wounded.clone());
        Ok(Box::new(Wrapped { priority: Some(priority), wounded, ..Wrapped::around(self.inner.begin(mode)?) }))
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

/// Goal: ROLLBACK TO SAVEPOINT never revives a block whose transaction
/// was wounded (40001): it fails with 40001 itself, the block stays
/// failed, and only ROLLBACK ends it; nothing of it is committed. Rolling
/// back to a savepoint after a statement's own error (23505) does go on,
/// and commits what came before the savepoint and after it.
#[test]
fn a_wounded_block_cannot_be_rolled_back_to_a_savepoint() {
    let engine = Arc::new(Prioritized::default());
    let mut s = Session::new(engine.clone());
    run(&mut s, "CREATE TABLE t (id INT PRIMARY KEY, n INT)").unwrap();
    run(&mut s, "INSERT INTO t VALUES (1, 0)").unwrap();

    run(&mut s, "BEGIN").unwrap();
    run(&mut s, "INSERT INTO t VALUES (2, 0)").unwrap();
    run(&mut s, "SAVEPOINT a").unwrap();
    engine.wounded.store(true, Ordering::SeqCst);
    let e = run(&mut s, "UPDATE t SET n = 1 WHERE id = 1").expect_err("wounded");
    assert_eq!(e.state.code(), "40001", "{e}");
    engine.wounded.store(false, Ordering::SeqCst);
    let e = run(&mut s, "ROLLBACK TO SAVEPOINT a").expect_err("the transaction ended");
    assert_eq!(e.state.code(), "40001", "{e}");
    let e = run(&mut s, "SELECT 1").expect_err("still failed");
    assert_eq!(e.state.code(), "25P02", "{e}");
    let e = run(&mut s, "ROLLBACK TO SAVEPOINT a").expect_err("still lost");
    assert_eq!(e.state.code(), "40001", "{e}");
    run(&mut s, "ROLLBACK").unwrap();
    assert_eq!(common::count(&mut s, "SELECT count(*) FROM t"), 1, "nothing of the wounded block");

    run(&mut s, "BEGIN").unwrap();
    run(&mut s, "INSERT INTO t VALUES (2, 0)").unwrap();
    run(&mut s, "SAVEPOINT a").unwrap();
    let e = run(&mut s, "INSERT INTO t VALUES (1, 0)").expect_err("a duplicate");
    assert_eq!(e.state.code(), "23505", "{e}");
    run(&mut s, "ROLLBACK TO SAVEPOINT a").unwrap();
    run(&mut s, "INSERT INTO t VALUES (3, 0)").unwrap();
    run(&mut s, "COMMIT").unwrap();
    assert_eq!(common::count(&mut s, "SELECT count(*) FROM t"), 3);
}
