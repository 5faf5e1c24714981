//! Leased descriptors (`catalog`, "Leases" and "Writers"): statements
//! plan from descriptors their gateway read earlier, writers commit before
//! those leases end, and schema changes wait until no gateway can still
//! be using an older one.
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
/// transaction (which reads the descriptor and leases it). A write that
/// read the descriptor under a lock leases it too, from its commit.
/// Method: B (leases of its own) has none yet; A's INSERT leased `t`.
#[test]
fn a_leased_point_select_reads_one_shard() {
    let (engine, mut a, mut b) = setup();
    engine.clear_modes();
    let out = must(&mut b, "SELECT c FROM t WHERE id = 2");
    assert_eq!(out.rows, vec![vec![Value::Int4(20)]]);
    assert_eq!(engine.modes(), vec![Mode::ReadOnly], "no lease yet: the descriptor is read");

    engine.clear_modes();
    let out = must(&mut b, "SELECT c FROM t WHERE id = 2");
    assert_eq!(out.rows, vec![vec![Value::Int4(20)]]);
    assert_eq!(engine.modes(), vec![Mode::SingleShard]);

    engine.clear_modes();
    let out = must(&mut a, "SELECT c FROM t WHERE id = 2");
    assert_eq!(out.rows, vec![vec![Value::Int4(20)]]);
    assert_eq!(engine.modes(), vec![Mode::SingleShard], "A's INSERT leased t");

    engine.clear_modes();
    must(&mut a, "SELECT c FROM t WHERE id IN (SELECT id FROM t WHERE c > 15)");
    assert_eq!(engine.modes(), vec![Mode::ReadOnly], "a subquery's reads are not known before running it");

    engine.clear_modes();
    must(&mut a, "UPDATE t SET c = c + 1 WHERE id = 1");
    assert_eq!(engine.modes(), vec![Mode::ReadWrite]);
}

/// Goal: a single-shard SELECT whose reads another shard served (the
/// gateway's routes were stale, or the shard split under it) is not
/// answered from them, nor failed: it runs again in a strong read-only
/// transaction, which any shard may serve.
/// Method: the engine fails the next single-shard transaction's reads
/// retryably, as the client does when a read meets another shard.
#[test]
fn a_single_shard_select_that_meets_another_shard_runs_again_strong() {
    let (engine, mut a, _) = setup();
    must(&mut a, "SELECT c FROM t WHERE id = 2");
    engine.next_single_shard_meets_another();
    engine.clear_modes();
    let out = must(&mut a, "SELECT c FROM t WHERE id = 2");
    assert_eq!(out.rows, vec![vec![Value::Int4(20)]]);
    assert_eq!(engine.modes(), vec![Mode::SingleShard, Mode::ReadOnly]);

    engine.clear_modes();
    must(&mut a, "SELECT c FROM t WHERE id = 2");
    assert_eq!(engine.modes(), vec![Mode::SingleShard], "the next statement reads one shard again");
}

/// Goal: a leased SELECT through a secondary index, whose index entries
/// and rows one shard holds, reads that shard's latest state too
/// (`Mode::SingleShard`), as `min` of an indexed column does.
#[test]
fn a_leased_select_through_an_index_reads_one_shard() {
    let (engine, mut a, _) = setup();
    must(&mut a, "CREATE INDEX t_c ON t (c)");
    must(&mut a, "SELECT id FROM t WHERE c = 20");
    for (sql, want) in [("SELECT id FROM t WHERE c = 20", Value::Int4(2)), ("SELECT min(c) FROM t", Value::Int4(10))] {
        engine.clear_modes();
        let out = must(&mut a, sql);
        assert_eq!(out.rows, vec![vec![want]], "{sql}");
        assert_eq!(engine.modes(), vec![Mode::SingleShard], "{sql}");
    }
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

/// Goal: a lease past the renewal age is fetched again before the next
/// statement, by a strong read-only transaction of its own
/// (`Mode::ReadOnly`), not inside the statement's transaction; so statements keep planning from
/// a lease as time goes on (a read-only one stays `SingleShard`, where an
/// aged lease would make it read the descriptor in a strong read-only
/// transaction), and one session renews while the others use the lease.
/// Method: sessions A and B of one gateway (one set of leases); A's
/// INSERT leased `t`; the clock moves a renewal age at a time, three
/// times; A or B selects after each move.
#[test]
fn leases_are_renewed_outside_the_statements_that_use_them() {
    use sql::limits::LEASE_RENEWAL_AGE_NS;
    let engine = Arc::new(Watched::default());
    let leases = Arc::new(sql::catalog::Leases::default());
    let mut a = Session::new(engine.clone()).with_leases(leases.clone());
    let mut b = Session::new(engine.clone()).with_leases(leases);
    must(&mut a, "CREATE TABLE t (id INT PRIMARY KEY, c INT)");
    must(&mut a, "INSERT INTO t VALUES (1, 10), (2, 20)");
    let select = |s: &mut Session| {
        engine.clear_modes();
        assert_eq!(must(s, "SELECT c FROM t WHERE id = 2").rows, vec![vec![Value::Int4(20)]]);
        engine.modes()
    };
    assert_eq!(select(&mut a), vec![Mode::SingleShard], "leased by A's INSERT, young");
    engine.inner.wait(LEASE_RENEWAL_AGE_NS);
    assert_eq!(select(&mut a), vec![Mode::ReadOnly, Mode::SingleShard], "renewed, then used");
    assert_eq!(select(&mut b), vec![Mode::SingleShard], "the renewed lease is the gateway's");
    for _ in 0..2 {
        engine.inner.wait(LEASE_RENEWAL_AGE_NS);
        assert_eq!(select(&mut b), vec![Mode::ReadOnly, Mode::SingleShard]);
    }
    engine.clear_modes();
    must(&mut a, "UPDATE t SET c = c + 1 WHERE id = 1");
    assert_eq!(engine.modes(), vec![Mode::ReadWrite], "a writer on the renewed lease");

    // A lease no statement asked for since it was taken is not renewed.
    must(&mut a, "CREATE TABLE u (id INT PRIMARY KEY)");
    let select_u = |s: &mut Session| {
        engine.clear_modes();
        must(s, "SELECT id FROM u WHERE id = 1");
        engine.modes()
    };
    engine.inner.wait(LEASE_RENEWAL_AGE_NS);
    assert_eq!(select_u(&mut a), vec![Mode::ReadOnly, Mode::ReadOnly], "t renewed (it was used); u fetched");
    engine.inner.wait(LEASE_RENEWAL_AGE_NS);
    assert_eq!(select_u(&mut a), vec![Mode::SingleShard], "t unused since its renewal: not renewed again");
}

/// Goal: a renewal during a schema change's drain leases nothing: the
/// change, once it returns, is seen by the renewing session.
/// Method: A leases `t`; while B's DROP COLUMN waits out leases, the clock
/// moves past the renewal age and A selects (renewing, and finding `t`
/// draining); after B returns, A's SELECT of `c` fails with 42703.
#[test]
fn a_renewal_during_a_drain_leases_nothing() {
    let (engine, a, mut b) = setup();
    let a = Arc::new(Mutex::new(a));
    must(&mut a.lock().unwrap(), "SELECT c FROM t WHERE id = 1");
    let (hook_a, hook_engine) = (a.clone(), engine.clone());
    engine.on_wait(Box::new(move || {
        hook_engine.inner.wait(sql::limits::LEASE_RENEWAL_AGE_NS);
        hook_engine.clear_modes();
        must(&mut hook_a.lock().unwrap(), "SELECT c FROM t WHERE id = 1");
        assert_eq!(hook_engine.modes().first(), Some(&Mode::ReadOnly), "a renewal was tried");
    }));
    must(&mut b, "ALTER TABLE t DROP COLUMN c");
    let e = run(&mut a.lock().unwrap(), "SELECT c FROM t WHERE id = 1").expect_err("column c is gone");
    assert_eq!(e.state.code(), "42703", "{e}");
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

/// Goal: a writer that planned from a leased descriptor never commits
/// after a schema change it did not see (`catalog`, "Writers"): here an
/// index created meanwhile would lack the writer's row. Its block fails
/// with 40001 at COMMIT, and the table and the index agree.
/// Method: A's earlier write leased `t`; A begins a block and inserts
/// from the lease; B creates an index on `c` (its drain waits the lease
/// out, moving the memory engine's clock); A commits. (A writer with no
/// deadline would commit row 3 without its index entry: OCC alone does
/// not see it, as A never read the descriptor.)
#[test]
fn a_writer_on_a_lease_does_not_commit_past_a_schema_change() {
    let (engine, mut a, mut b) = setup();
    must(&mut a, "UPDATE t SET c = c + 1 WHERE id = 1");
    must(&mut a, "BEGIN");
    must(&mut a, "INSERT INTO t VALUES (3, 30)");
    must(&mut b, "CREATE INDEX t_c ON t (c)");
    let e = run(&mut a, "COMMIT").expect_err("t changed under A's lease");
    assert_eq!(e.state.code(), "40001", "{e}");

    let by_index = must(&mut b, "SELECT id FROM t WHERE c = 30");
    let out = must(&mut b, "EXPLAIN SELECT id FROM t WHERE c = 30");
    assert!(format!("{:?}", out.rows).contains("t_c"), "read through the index: {:?}", out.rows);
    let all = must(&mut b, "SELECT id FROM t WHERE c + 0 = 30");
    assert_eq!(by_index.rows, all.rows);
    assert!(all.rows.is_empty(), "A's row did not commit: {:?}", all.rows);

    must(&mut a, "INSERT INTO t VALUES (3, 30)");
    assert_eq!(must(&mut b, "SELECT id FROM t WHERE c = 30").rows, vec![vec![Value::Int4(3)]]);
    assert!(!table(engine.as_ref(), "t").draining);
}

/// Leases `t` in `s` (a write that read its descriptor under a lock) and
/// prepares `INSERT INTO t VALUES ($1, $2)` there; returns a runner of it
/// that inserts `(id, id * 10)`.
fn prepared_insert(s: &mut Session) -> impl Fn(&mut Session, i32) -> sql::Result<()> {
    must(s, "UPDATE t SET c = c + 1 WHERE id = 1");
    let p = s.prepare("INSERT INTO t VALUES ($1, $2)", &[]).expect("prepare").expect("a statement");
    move |s: &mut Session, id: i32| {
        let mut out = sql::Collected::default();
        s.execute_prepared(&p, vec![Value::Int4(id), Value::Int4(id * 10)], &mut out)
    }
}

/// Goal: a prepared write keeps its plan across transactions (session
/// "Kept plans"), and a transaction that runs the kept plan is bound to
/// the lease it came from as one that planned afresh: it does not commit
/// after a schema change it did not see.
/// Method: A prepares an INSERT and runs it in two blocks (the second
/// reuses the plan); in a third block it runs it again, B creates an
/// index on `c` meanwhile, and A's COMMIT must fail with 40001, leaving
/// no row without its index entry. (A kept plan that skipped the lease's
/// deadline would commit row 5 unindexed.)
#[test]
fn a_prepared_write_keeps_its_plan_and_its_lease_deadline() {
    let (engine, mut a, mut b) = setup();
    let exec = prepared_insert(&mut a);
    for id in [3, 4] {
        must(&mut a, "BEGIN");
        exec(&mut a, id).expect("insert");
        must(&mut a, "COMMIT");
    }
    assert_eq!(a.plans_reused(), 1, "the second block reuses the first one's plan");

    must(&mut a, "BEGIN");
    exec(&mut a, 5).expect("insert");
    assert_eq!(a.plans_reused(), 2);
    must(&mut b, "CREATE INDEX t_c ON t (c)");
    let e = run(&mut a, "COMMIT").expect_err("t changed under A's lease");
    assert_eq!(e.state.code(), "40001", "{e}");
    let by_index = must(&mut b, "SELECT id FROM t WHERE c = 50");
    let all = must(&mut b, "SELECT id FROM t WHERE c + 0 = 50");
    assert_eq!(by_index.rows, all.rows);
    assert!(all.rows.is_empty(), "A's row did not commit: {:?}", all.rows);

    exec(&mut a, 5).expect("planned again from the new descriptor, and committed");
    assert_eq!(must(&mut b, "SELECT id FROM t WHERE c = 50").rows, vec![vec![Value::Int4(5)]]);
    assert!(!table(engine.as_ref(), "t").draining);
}

/// Goal: a block that ran a kept plan and then nears its lease's end
/// reads that plan's descriptor under a lock, as one that planned afresh
/// would, so a schema change after that cannot slip under it.
/// Method: A's prepared INSERT keeps its plan; in a block A runs it, the
/// clock moves past the lease, A runs it again (planned again now, and
/// lifting the deadline), B creates an index on `c`, A commits. Either
/// A's COMMIT fails with 40001 or every row is indexed. (A kept plan
/// that did not record its use of the lease would lift the deadline
/// without the read, and commit row 5 unindexed.)
#[test]
fn a_slow_block_with_a_kept_plan_locks_its_descriptor() {
    let (engine, mut a, mut b) = setup();
    let exec = prepared_insert(&mut a);
    exec(&mut a, 3).expect("insert");
    must(&mut a, "BEGIN");
    exec(&mut a, 5).expect("insert");
    assert_eq!(a.plans_reused(), 1, "the block runs the kept plan");
    engine.inner.wait(sql::limits::DESCRIPTOR_LEASE_NS);
    exec(&mut a, 6).expect("insert near the deadline");
    must(&mut b, "CREATE INDEX t_c ON t (c)");
    let committed = run(&mut a, "COMMIT");
    if let Err(e) = &committed {
        assert_eq!(e.state.code(), "40001", "{e}");
    }
    for c in [50, 60] {
        let by_index = must(&mut b, &format!("SELECT id FROM t WHERE c = {c}"));
        let all = must(&mut b, &format!("SELECT id FROM t WHERE c + 0 = {c}"));
        assert_eq!(by_index.rows, all.rows, "c = {c}: the index agrees with the table");
    }
}

/// Goal: a block that outlives its leases is not failed for being slow:
/// it reads the leased descriptors under locks instead, finds them
/// unchanged, and commits.
/// Method: A inserts from a lease in a block, then the clock moves past
/// the lease (no schema change), then A inserts again and commits.
#[test]
fn a_slow_block_locks_its_leased_descriptors_and_commits() {
    let (engine, mut a, _) = setup();
    must(&mut a, "BEGIN");
    must(&mut a, "INSERT INTO t VALUES (3, 30)");
    engine.inner.wait(sql::limits::DESCRIPTOR_LEASE_NS);
    must(&mut a, "INSERT INTO t VALUES (4, 40)");
    engine.inner.wait(sql::limits::DESCRIPTOR_LEASE_NS);
    must(&mut a, "COMMIT");
    let out = must(&mut a, "SELECT id FROM t WHERE id > 2 ORDER BY id");
    assert_eq!(out.rows, vec![vec![Value::Int4(3)], vec![Value::Int4(4)]]);
}

/// Goal: a schema change in a block whose statements planned from leases
/// runs without their deadline: it may take longer than what is left of
/// the lease (a CREATE TABLE waiting for its table's split, on a busy
/// machine), and a deadline passed in the middle of it would fail the
/// block (40001: psycopg's check saw it). The lease is read under a lock
/// instead, as for a slow block.
/// Method: A inserts from a lease in a block (a deadline is set), then
/// creates a table, well before the deadline; the deadline must be lifted
/// (set to none) before the CREATE TABLE, and the block commits.
#[test]
fn a_schema_change_in_a_block_lifts_the_lease_deadline_first() {
    let (engine, mut a, _) = setup();
    must(&mut a, "SELECT c FROM t WHERE id = 1");
    must(&mut a, "BEGIN");
    must(&mut a, "INSERT INTO t VALUES (3, 30)");
    let set = engine.deadlines();
    assert!(matches!(set.last(), Some(Some(_))), "the INSERT planned from a lease: {set:?}");
    must(&mut a, "CREATE TABLE u (id INT PRIMARY KEY)");
    let lifted = engine.deadlines();
    assert_eq!(lifted.len(), set.len() + 1, "one more deadline call: {lifted:?}");
    assert_eq!(lifted.last(), Some(&None), "lifted before the CREATE TABLE");
    must(&mut a, "INSERT INTO u VALUES (1)");
    must(&mut a, "COMMIT");
    assert_eq!(must(&mut a, "SELECT count(*) FROM u").rows, vec![vec![Value::Int8(1)]]);
}

/// Goal: a statement that planned from a lease and runs longer than what
/// is left of it lifts the lease's deadline as it goes, in a block and on
/// its own: it commits instead of failing with 40001 "ran past its
/// deadline", which it would every time it ran (a pooled connection's
/// slow UPDATE never committed; seen with psql on a demo cluster).
/// Method: A leases t; each read then takes 60 ms by the engine's clock;
/// an UPDATE of 12 keys by point reads (about 720 ms, past the 500 ms
/// lease) runs in a block, commits, and then once more on its own.
#[test]
fn a_statement_that_outlasts_its_lease_lifts_the_deadline_as_it_goes() {
    let (engine, mut a, _) = setup();
    let keys = (3..=12).map(|i| format!("({i}, 0)")).collect::<Vec<_>>().join(", ");
    must(&mut a, &format!("INSERT INTO t VALUES {keys}"));
    must(&mut a, "SELECT c FROM t WHERE id = 1");
    let update = "UPDATE t SET c = c + 1 WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)";
    engine.reads_take(60_000_000);
    must(&mut a, "BEGIN");
    let set = engine.deadlines();
    must(&mut a, update);
    let after = engine.deadlines();
    assert!(matches!(after.get(set.len()), Some(Some(_))), "the UPDATE planned from a lease: {after:?}");
    assert_eq!(after.last(), Some(&None), "and lifted its deadline while it ran: {after:?}");
    must(&mut a, "COMMIT");
    must(&mut a, update);
    engine.reads_take(0);
    let out = must(&mut a, "SELECT sum(c) FROM t");
    assert_eq!(out.rows, vec![vec![Value::Int8(10 + 20 + 12 * 2)]]);
}

/// Goal: a read-write transaction with a deadline fails retryably (40001)
/// when it reads, or would commit, at or after it; before it, it works;
/// a lifted deadline binds nothing.
#[test]
fn a_writer_past_its_deadline_fails_retryably() {
    let engine = MemoryEngine::new();
    let mut txn = engine.begin(Mode::ReadWrite).unwrap();
    txn.set_deadline(Some(engine.now() + 1)).unwrap();
    assert!(txn.get(b"k").is_ok());
    txn.put(b"k", b"v").unwrap();
    assert!(matches!(txn.commit(), Err(KvError::Retryable(_))), "its commit comes after the deadline");

    let mut txn = engine.begin(Mode::ReadWrite).unwrap();
    txn.set_deadline(Some(engine.now())).unwrap();
    assert!(matches!(txn.get(b"k"), Err(KvError::Retryable(_))), "a read at the deadline");
    txn.set_deadline(None).unwrap();
    txn.put(b"k", b"v").unwrap();
    assert!(txn.commit().is_ok());
    assert!(engine.begin(Mode::ReadOnly).unwrap().set_deadline(None).is_err(), "read-only: no deadline");
}

/// Goal: a prepared SELECT keeps its plan across executions while its
/// table's lease holds the version it was planned from, and is planned
/// again once a schema change made that version old, even if the session
/// has leased the new version meanwhile (session "Kept plans").
/// Method: A prepares and runs a point SELECT of `c` twice (the second run
/// reuses the plan); B drops `c`; A leases the new descriptor with another
/// statement; A's prepared SELECT must now fail with 42703. A kept plan
/// checked only for a lease, not its version, would still read `c`.
#[test]
fn a_prepared_select_keeps_its_plan_until_its_descriptor_changes() {
    let (_engine, mut a, mut b) = setup();
    let p = a.prepare("SELECT c FROM t WHERE id = $1", &[]).expect("prepare").expect("a statement");
    let exec = |s: &mut Session, id: i32| {
        let mut out = sql::Collected::default();
        s.execute_prepared(&p, vec![Value::Int4(id)], &mut out).map(|()| out.rows)
    };
    assert_eq!(exec(&mut a, 1).expect("first run"), vec![vec![Value::Int4(10)]]);
    assert_eq!(exec(&mut a, 2).expect("second run"), vec![vec![Value::Int4(20)]]);
    assert_eq!(a.plans_reused(), 1, "the second run reuses the first run's plan");

    must(&mut b, "ALTER TABLE t DROP COLUMN c");
    must(&mut a, "SELECT id FROM t WHERE id = 1");
    must(&mut a, "SELECT id FROM t WHERE id = 1");
    let e = exec(&mut a, 1).expect_err("column c is gone");
    assert_eq!(e.state.code(), "42703", "{e}");
    assert_eq!(a.plans_reused(), 1);
}

/// Goal: a prepared query whose table changed shape since Parse fails
/// with PostgreSQL's 0A000 "cached plan must not change result type"
/// instead of sending rows that do not match the columns Describe
/// announced (a driver reading them fails on the field count); a new
/// Parse sees the new shape. Method: prepare `SELECT *`, add a column
/// from another session, execute.
#[test]
fn a_prepared_query_whose_columns_changed_fails_with_0a000() {
    let (_engine, mut a, mut b) = setup();
    let p = a.prepare("SELECT * FROM t WHERE id = $1", &[]).expect("prepare").expect("a statement");
    let exec = |s: &mut Session, p: &sql::Prepared| {
        let mut out = sql::Collected::default();
        s.execute_prepared(p, vec![Value::Int4(1)], &mut out).map(|()| out.rows)
    };
    assert_eq!(exec(&mut a, &p).expect("before"), vec![vec![Value::Int4(1), Value::Int4(10)]]);
    must(&mut b, "ALTER TABLE t ADD COLUMN d INT");
    let e = exec(&mut a, &p).expect_err("the result type changed");
    assert_eq!(e.state.code(), "0A000", "{e}");
    let again = a.prepare("SELECT * FROM t WHERE id = $1", &[]).expect("prepare").expect("a statement");
    assert_eq!(
        exec(&mut a, &again).expect("after a new Parse"),
        vec![vec![Value::Int4(1), Value::Int4(10), Value::Null]]
    );
}

/// Goal: the same for a prepared write's RETURNING, whose column types
/// an ALTER COLUMN ... TYPE changed since Parse (Django's AutoField made
/// a BigAutoField): 0A000, and the write is undone with the statement.
/// Method: prepare `INSERT ... RETURNING c`, make `c` a bigint from
/// another session, execute, then look for the row.
#[test]
fn a_prepared_write_whose_returning_changed_fails_with_0a000_and_writes_nothing() {
    let (_engine, mut a, mut b) = setup();
    let p = a.prepare("INSERT INTO t VALUES ($1, $2) RETURNING c", &[]).expect("prepare").expect("a statement");
    let exec = |s: &mut Session, p: &sql::Prepared, id: i32| {
        let mut out = sql::Collected::default();
        s.execute_prepared(p, vec![Value::Int4(id), Value::Int4(id * 10)], &mut out).map(|()| out.rows)
    };
    assert_eq!(exec(&mut a, &p, 5).expect("before"), vec![vec![Value::Int4(50)]]);
    must(&mut b, "ALTER TABLE t ALTER COLUMN c TYPE bigint");
    let e = exec(&mut a, &p, 6).expect_err("the result type changed");
    assert_eq!(e.state.code(), "0A000", "{e}");
    assert!(run(&mut a, "SELECT c FROM t WHERE id = 6").expect("a read").rows.is_empty(), "the insert stayed");
}

/// Goal: inside a block that changed the table, a statement prepared
/// there is described as the block sees the table, so its execution is
/// not refused (JDBC and Rails prepare every statement). Method: in a
/// block, make `c` a bigint, then prepare and run `INSERT ... RETURNING c`.
#[test]
fn a_statement_prepared_in_a_block_that_changed_its_table_runs() {
    let (_engine, mut a, _b) = setup();
    must(&mut a, "BEGIN");
    must(&mut a, "ALTER TABLE t ALTER COLUMN c TYPE bigint");
    let p = a.prepare("INSERT INTO t VALUES ($1, $2) RETURNING c", &[]).expect("prepare").expect("a statement");
    let mut out = sql::Collected::default();
    a.execute_prepared(&p, vec![Value::Int4(7), Value::Int8(70)], &mut out).expect("the block's own shape");
    assert_eq!(out.rows, vec![vec![Value::Int8(70)]]);
    must(&mut a, "COMMIT");
}

/// Goal: a gateway that leased a table, and kept a plan of a write to it,
/// checks a foreign key another gateway created to it since: creating
/// the referencing table drained the referenced one, so no lease or plan
/// from before is used after. Both directions: the key a new table's
/// rows reference, and (ALTER TABLE ADD CONSTRAINT) the key an existing
/// table's rows now reference.
/// Method: A leases `t` and prepares a DELETE from it; B creates `child`
/// referencing `t` and inserts a row referencing 1; A's prepared DELETE
/// of 1 must fail with 23503, as must its plain DELETE. (Without the
/// drain A's lease would still be good, and its plan, made before the
/// foreign key existed, would delete the row.)
#[test]
fn a_new_foreign_key_reaches_gateways_that_leased_the_referenced_table() {
    let (_engine, mut a, mut b) = setup();
    must(&mut a, "UPDATE t SET c = c + 1 WHERE id = 2");
    let p = a.prepare("DELETE FROM t WHERE id = $1", &[]).expect("prepare").expect("a statement");
    let delete = |s: &mut Session, id: i32| {
        let mut out = sql::Collected::default();
        s.execute_prepared(&p, vec![Value::Int4(id)], &mut out)
    };
    must(&mut a, "INSERT INTO t VALUES (3, 30), (4, 40)");
    delete(&mut a, 3).expect("nothing references 3");

    must(&mut b, "CREATE TABLE child (id INT PRIMARY KEY, tid INT REFERENCES t)");
    must(&mut b, "INSERT INTO child VALUES (1, 1)");
    let e = delete(&mut a, 1).expect_err("child 1 references t 1");
    assert_eq!(e.state.code(), "23503", "{e}");
    let e = run(&mut a, "DELETE FROM t WHERE id = 1").expect_err("child 1 references t 1");
    assert_eq!(e.state.code(), "23503", "{e}");

    must(&mut b, "CREATE TABLE other (id INT PRIMARY KEY, tid INT)");
    must(&mut b, "INSERT INTO other VALUES (1, 4)");
    must(&mut b, "ALTER TABLE other ADD FOREIGN KEY (tid) REFERENCES t");
    let e = delete(&mut a, 4).expect_err("other 1 references t 4");
    assert_eq!(e.state.code(), "23503", "{e}");
    assert_eq!(must(&mut a, "SELECT id FROM t ORDER BY id").rows.len(), 3, "1, 2 and 4 are left");
}

/// Goal: a renamed table is gone under its old name at every gateway,
/// including one that leased it and kept a plan over it, and there
/// under its new one. Method: A leases `t` and prepares a read of it; B
/// renames `t` to `u`; A's prepared read and a fresh one fail with 42P01,
/// and A reads `u`.
#[test]
fn a_renamed_table_is_gone_under_its_old_name_everywhere() {
    let (_engine, mut a, mut b) = setup();
    must(&mut a, "UPDATE t SET c = c + 1 WHERE id = 2");
    let p = a.prepare("SELECT c FROM t WHERE id = $1", &[]).expect("prepare").expect("a statement");
    let read = |s: &mut Session| {
        let mut out = sql::Collected::default();
        s.execute_prepared(&p, vec![Value::Int4(2)], &mut out).map(|()| out)
    };
    assert_eq!(read(&mut a).expect("read").rows, vec![vec![Value::Int4(21)]]);

    must(&mut b, "ALTER TABLE t RENAME TO u");
    let e = read(&mut a).expect_err("t is gone");
    assert_eq!(e.state.code(), "42P01", "{e}");
    let e = run(&mut a, "SELECT c FROM t WHERE id = 2").expect_err("t is gone");
    assert_eq!(e.state.code(), "42P01", "{e}");
    assert_eq!(must(&mut a, "SELECT c FROM u WHERE id = 2").rows, vec![vec![Value::Int4(21)]]);
}

/// Goal: dropping a column or constraint of a referencing table drains
/// the referenced table only when a foreign key goes with it (its
/// references change); otherwise other gateways keep their leases of it.
/// Method: the referenced table's drain epoch after each change.
#[test]
fn only_a_dropped_foreign_key_drains_the_table_it_referenced() {
    let (engine, mut a, _b) = setup();
    must(&mut a, "CREATE TABLE child (id INT PRIMARY KEY, tid INT REFERENCES t, note TEXT CHECK (note <> ''), x INT)");
    let epoch = |engine: &Watched| table(engine, "t").drain_epoch;
    let before = epoch(&engine);
    must(&mut a, "ALTER TABLE child DROP COLUMN x");
    must(&mut a, "ALTER TABLE child DROP CONSTRAINT child_note_check");
    assert_eq!(epoch(&engine), before, "nothing of t changed");
    must(&mut a, "ALTER TABLE child DROP COLUMN tid");
    assert_eq!(epoch(&engine), before + 1, "t lost its reference");
    assert!(table(engine.as_ref(), "t").referenced_by.is_empty());
}
