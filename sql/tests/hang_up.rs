//! A session whose client hung up: every statement from then on is
//! cancelled, including one that starts after the hang-up was marked
//! (a plain cancel applies only to the statement running when it came).
//!
//! ```text
//!   Session over MemoryEngine; the flags set as the gateway's watcher sets them
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;

mod common;

use common::{must, run};
use sql::memory::MemoryEngine;
use sql::{Session, SqlState};

const COUNT: &str = "SELECT count(*) FROM generate_series(1, 1000)";

/// Goal: a cancel flag set between statements is cleared by the next
/// one, but once the session is marked hung up, every later statement is
/// cancelled (57014), and its transaction's write is rolled back.
#[test]
fn after_a_hang_up_every_statement_is_cancelled() {
    let engine = Arc::new(MemoryEngine::default());
    let mut s = Session::new(engine.clone());
    must(&mut s, "CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    must(&mut s, "INSERT INTO t VALUES (1, 0)");
    let cancel = s.cancel_handle();
    cancel.store(true, Ordering::SeqCst);
    must(&mut s, COUNT);

    must(&mut s, "BEGIN");
    must(&mut s, "UPDATE t SET v = 1 WHERE id = 1");
    s.hang_up_handle().store(true, Ordering::SeqCst);
    cancel.store(true, Ordering::SeqCst);
    let e = run(&mut s, COUNT).expect_err("cancelled");
    assert_eq!(e.state, SqlState::QueryCanceled, "{e:?}");
    must(&mut s, "ROLLBACK");
    let e = run(&mut s, COUNT).expect_err("cancelled again, outside the block");
    assert_eq!(e.state, SqlState::QueryCanceled, "{e:?}");
    drop(s);
    let mut other = Session::new(engine);
    let v = must(&mut other, "SELECT v FROM t WHERE id = 1");
    assert_eq!(v.rows, vec![vec![sql::Value::Int4(0)]], "the hung-up transaction was rolled back");
}
