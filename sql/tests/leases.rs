//! Leased descriptors (`catalog`, "Leases"): read-only statements plan
//! from descriptors their gateway read earlier, and schema changes wait
//! until no gateway can still be using an older one.
//!
//! ```text
//!   Watched engine (tests/common) = MemoryEngine + a log of the modes
//!                    transactions began in + a hook run when a schema
//!                    change waits
//!   sessions A, B on it; A reads, B changes, A reads again
//! ```
//!
//! The memory engine's clock is logical: a schema change's wait moves it
//! by the lease, so a lease taken before the change has ended after it.

use std::sync::{Arc, Mutex};

use sql::catalog::LeaseChecked;
use sql::kv::{Engine, KvError, Mode, Transaction};
use sql::memory::MemoryEngine;
use sql::{Session, Value};

mod common;

use common::{must, run, table, Watched};

fn setup() -> (Arc<Watched>, Session, Session) {
    let engine = Arc::new(Watched::default());
    let mut a = Session::new(engine.clone());
    let b = Session::new(engine.clone());
    must(&mut a, "CREATE TABLE t (id INT PRIMARY KEY, c INT)");
    must(&mut a, "INSERT INTO t VALUES (1, 10), (2, 20)");
    (engine, a, b)
}

/// Goal: a point SELECT whose descriptor is leased reads nothing but its
/// row, in one shard's latest state (`Mode::SingleShard`); one with a
/// subquery, or without a lease yet, runs in a strong read-only
/// transaction (which reads the descriptor and leases it).
#[test]
fn a_leased_point_select_reads_one_shard() {
    let (engine, mut a, _) = setup();
    engine.clear_modes();
    let out = must(&mut a, "SELECT c FROM t WHERE id = 2");
    assert_eq!(out.rows, vec![vec![Value::Int4(20)]]);
    assert_eq!(engine.modes(), vec![Mode::ReadOnly], "no lease yet: the descriptor is read");

    engine.clear_modes();
    let out = must(&mut a, "SELECT c FROM t WHERE id = 2");
    assert_eq!(out.rows, vec![vec![Value::Int4(20)]]);
    assert_eq!(engine.modes(), vec![Mode::SingleShard]);

    engine.clear_modes();
    must(&mut a, "SELECT c FROM t WHERE id IN (SELECT id FROM t WHERE c > 15)");
    assert_eq!(engine.modes(), vec![Mode::ReadOnly], "a subquery's reads are not known before running it");

    engine.clear_modes();
    must(&mut a, "UPDATE t SET c = c + 1 WHERE id = 1");
    assert_eq!(engine.modes(), vec![Mode::ReadWrite], "writers read descriptors, not leases");
}

/// Goal: after a schema change returns, no session anywhere plans with
/// the descriptor from before it: the change waited out every lease.
/// Method: A leases `t`; B drops column `c`; A's next SELECT of `c` must
/// fail and `SELECT *` must not show it. (A change that did not wait
/// would leave A's lease in force, and A would still read `c`.)
#[test]
fn a_schema_change_outlasts_every_lease() {
    let (engine, mut a, mut b) = setup();
    must(&mut a, "SELECT c FROM t WHERE id = 1");
    must(&mut a, "SELECT c FROM t WHERE id = 1");
    assert_eq!(engine.modes().last(), Some(&Mode::SingleShard), "A holds a lease");

    must(&mut b, "ALTER TABLE t DROP COLUMN c");
    let e = run(&mut a, "SELECT c FROM t WHERE id = 1").expect_err("column c is gone");
    assert_eq!(e.state.code(), "42703", "{e}");
    let out = must(&mut a, "SELECT * FROM t WHERE id = 1");
    assert_eq!(out.columns.len(), 1);
    assert!(!table(engine.as_ref(), "t").draining);
}

/// Goal: a change whose drain another change ended meanwhile does not
/// commit on it (a lease could have been taken in between); it drains
/// again and then succeeds, and both changes are in force.
/// Method: while A's ALTER waits out leases, B adds another column (and
/// so ends the drain A waited on).
#[test]
fn a_change_that_lost_its_drain_drains_again() {
    let (engine, mut a, b) = setup();
    let b = Arc::new(Mutex::new(b));
    let hook_b = b.clone();
    engine.on_wait(Box::new(move || {
        must(&mut hook_b.lock().unwrap(), "ALTER TABLE t ADD COLUMN from_b INT");
    }));
    engine.clear_modes();
    must(&mut a, "ALTER TABLE t ADD COLUMN from_a INT");
    let out = must(&mut a, "SELECT * FROM t WHERE id = 1");
    let names: Vec<&str> = out.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "c", "from_b", "from_a"]);
    let desc = table(engine.as_ref(), "t");
    assert!(!desc.draining);
    assert!(desc.drain_epoch >= 2, "A drained twice: {desc:?}");
}

/// Goal: a schema change that fails, or changes nothing, does not leave
/// its table draining (which would cost every later statement its
/// lease).
#[test]
fn a_failed_or_empty_change_ends_its_drain() {
    let (engine, mut a, _) = setup();
    must(&mut a, "ALTER TABLE t ADD COLUMN IF NOT EXISTS c INT");
    assert!(!table(engine.as_ref(), "t").draining);
    must(&mut a, "INSERT INTO t VALUES (3, 10)");
    let e = run(&mut a, "CREATE UNIQUE INDEX t_c ON t (c)").expect_err("c has duplicates");
    assert_eq!(e.state.code(), "23505", "{e}");
    assert!(!table(engine.as_ref(), "t").draining);

    must(&mut a, "BEGIN");
    must(&mut a, "ALTER TABLE t ADD COLUMN d INT");
    must(&mut a, "ROLLBACK");
    let desc = table(engine.as_ref(), "t");
    assert!(!desc.draining && desc.column("d").is_none(), "{desc:?}");
}

/// Goal: inside a transaction block, a schema change of a table the block
/// already used is refused with 0A000 (its drain would wait on the
/// block's own locks); one of a table not used yet works, as pgbench's
/// `BEGIN; TRUNCATE ...; INSERT ...; COMMIT` needs.
#[test]
fn a_block_changes_a_table_before_using_it() {
    let (_engine, mut a, _) = setup();
    must(&mut a, "BEGIN");
    must(&mut a, "SELECT * FROM t");
    let e = run(&mut a, "ALTER TABLE t ADD COLUMN d INT").expect_err("t was used");
    assert_eq!(e.state.code(), "0A000", "{e}");
    must(&mut a, "ROLLBACK");

    must(&mut a, "BEGIN");
    must(&mut a, "TRUNCATE t");
    must(&mut a, "INSERT INTO t VALUES (7, 70)");
    must(&mut a, "ALTER TABLE t ADD COLUMN d INT");
    must(&mut a, "COMMIT");
    let out = must(&mut a, "SELECT * FROM t");
    assert_eq!(out.rows, vec![vec![Value::Int4(7), Value::Int4(70), Value::Null]]);
}

/// Goal: a statement that planned with a lease fails retryably (40001)
/// when its first read comes back at or after the lease's end, and passes
/// when before.
#[test]
fn the_first_read_is_checked_against_the_lease() {
    let engine = MemoryEngine::new();
    for (offset, expired) in [(1, false), (0, true)] {
        let mut txn = engine.begin(Mode::ReadOnly).unwrap();
        let read_ts = engine.now();
        let deadline = Arc::new(Mutex::new(Some(read_ts + offset)));
        let mut checked = LeaseChecked { inner: txn.as_mut(), deadline };
        let first = checked.get(b"k");
        assert_eq!(matches!(first, Err(KvError::Retryable(_))), expired, "{first:?}");
        assert!(checked.get(b"k").is_ok(), "only the first read is checked");
    }
}
