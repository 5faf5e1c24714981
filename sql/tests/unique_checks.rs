//! An INSERT that is its own transaction leaves "this key is new" to its
//! commit (`put_absent`) instead of reading each key first; when the
//! commit finds a key taken, the statement runs again with reads, so the
//! error is PostgreSQL's (23505, naming the constraint and the key).
//!
//! ```text
//!   Counted engine = MemoryEngine + counts of transactions begun and
//!                    point reads made
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod common;

use common::{run, Wrapped};
use sql::kv::{Engine, KvError, Mode, ShardSpan, Timestamp, Transaction};
use sql::memory::MemoryEngine;
use sql::{Session, Value};

#[derive(Default)]
struct Counts {
    begun: AtomicUsize,
    gets: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Counted {
    inner: MemoryEngine,
    counts: Arc<Counts>,
}

impl Engine for Counted {
    fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>, KvError> {
        self.counts.begun.fetch_add(1, Ordering::SeqCst);
        let gets = Some(self.counts.gets.clone());
        Ok(Box::new(Wrapped { gets, ..Wrapped::around(self.inner.begin(mode)?) }))
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

fn setup() -> (Arc<Counts>, Session) {
    let engine = Counted::default();
    let counts = engine.counts.clone();
    let mut s = Session::new(Arc::new(engine));
    run(&mut s, "CREATE TABLE t (id INT PRIMARY KEY, email TEXT UNIQUE, n INT)").unwrap();
    run(&mut s, "INSERT INTO t VALUES (1, 'a@x', 1)").unwrap();
    (counts, s)
}

fn reset(counts: &Counts) {
    counts.begun.store(0, Ordering::SeqCst);
    counts.gets.store(0, Ordering::SeqCst);
}

/// Goal: a new row is inserted with no read of its key or its unique
/// entry, in one transaction; the descriptor is not read either (the
/// previous INSERT read it under a lock and leased it from its commit).
#[test]
fn a_new_row_is_inserted_without_reading_its_keys() {
    let (counts, mut s) = setup();
    reset(&counts);
    run(&mut s, "INSERT INTO t VALUES (2, 'b@x', 2)").unwrap();
    assert_eq!(counts.begun.load(Ordering::SeqCst), 1);
    assert_eq!(counts.gets.load(Ordering::SeqCst), 0);
    let out = run(&mut s, "SELECT email FROM t WHERE id = 2").unwrap();
    assert_eq!(out.rows, vec![vec![Value::Text("b@x".into())]]);
}

/// Goal: a key that is taken still gives PostgreSQL's error, naming the
/// constraint, for the primary key and for a unique column, and nothing
/// of the statement is written; the statement ran twice (the second time
/// with reads).
#[test]
fn a_taken_key_is_named_and_nothing_is_written() {
    let (counts, mut s) = setup();
    for (sql, constraint) in [
        ("INSERT INTO t VALUES (3, 'c@x', 3), (1, 'd@x', 4)", "t_pkey"),
        ("INSERT INTO t VALUES (3, 'c@x', 3), (4, 'a@x', 4)", "t_email_key"),
    ] {
        reset(&counts);
        let e = run(&mut s, sql).expect_err(sql);
        assert_eq!(e.state.code(), "23505", "{e}");
        assert!(e.message.contains(constraint), "{e}");
        assert_eq!(counts.begun.load(Ordering::SeqCst), 2, "{sql}");
        let out = run(&mut s, "SELECT count(*) FROM t").unwrap();
        assert_eq!(out.rows, vec![vec![Value::Int8(1)]], "{sql} wrote something");
    }
}

/// Goal: two rows of one statement that take the same key collide as in
/// PostgreSQL (the second is checked by reading, which sees the first).
#[test]
fn rows_of_one_statement_collide_with_each_other() {
    let (_counts, mut s) = setup();
    let e = run(&mut s, "INSERT INTO t VALUES (5, 'e@x', 5), (6, 'e@x', 6)").expect_err("same email");
    assert_eq!(e.state.code(), "23505", "{e}");
    assert!(e.message.contains("t_email_key"), "{e}");
    let out = run(&mut s, "SELECT count(*) FROM t").unwrap();
    assert_eq!(out.rows, vec![vec![Value::Int8(1)]]);
}

/// Goal: inside a transaction block an INSERT checks its keys at once
/// (the error comes at the statement, as in PostgreSQL, not at COMMIT).
#[test]
fn inside_a_block_the_error_comes_at_the_statement() {
    let (_counts, mut s) = setup();
    run(&mut s, "BEGIN").unwrap();
    let e = run(&mut s, "INSERT INTO t VALUES (1, 'z@x', 0)").expect_err("id 1 is taken");
    assert_eq!(e.state.code(), "23505", "{e}");
    run(&mut s, "ROLLBACK").unwrap();
}
