//! Schema changes that fill or copy a whole table do it in batches of
//! their own transactions (`backfill`): CREATE INDEX on a table of any
//! size while writers keep writing, and ALTER TABLE ADD PRIMARY KEY on a
//! table bigger than one transaction may write, with writers refused
//! meanwhile; a duplicate undoes either.
//!
//! ```text
//!   Watched engine (tests/common): hooks run between batches (at the n-th
//!   transaction begun) or at the wait before the switch; session A
//!   changes the schema, session B writes from the hooks
//! ```

mod common;

use std::sync::{Arc, Mutex};

use common::{count, must, run, table, Watched};
use sql::{Session, Value};

/// Goal: CREATE INDEX over several batches, with another session
/// inserting, updating and deleting rows before and after the batch that
/// is being filled, ends with every row's entry and no other; the index
/// is then used. Method: the writes run between the first and second
/// batch; `check_indexes` compares the index with the rows.
#[test]
fn an_index_is_built_in_batches_while_writers_write() {
    let engine = Arc::new(Watched::default());
    let mut a = Session::new(engine.clone());
    let b = Arc::new(Mutex::new(Session::new(engine.clone())));
    must(&mut a, "CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    must(&mut a, "INSERT INTO t SELECT g, g % 100 FROM generate_series(1, 2500) g");
    // Transactions of the CREATE INDEX: drain, the statement, batch 1,
    // then batch 2 (the hook runs as it begins).
    let writer = b.clone();
    engine.on_begin(
        4,
        Box::new(move || {
            let mut b = writer.lock().unwrap();
            must(&mut b, "INSERT INTO t VALUES (5001, 7), (5002, 7)");
            must(&mut b, "UPDATE t SET v = 7 WHERE id IN (10, 2400)");
            must(&mut b, "DELETE FROM t WHERE id IN (20, 2300)");
        }),
    );
    must(&mut a, "CREATE INDEX t_v ON t (v)");
    let desc = table(engine.as_ref(), "t");
    assert!(desc.indexes.iter().all(|i| !i.write_only), "{desc:?}");
    sql::testing::check_indexes(engine.as_ref(), "t").expect("the index matches the rows");
    // 25 rows have v = 7, two moved to 7 (one of which already was: 2400
    // % 100 = 0, 10 % 100 = 10), two inserted; none deleted had v = 7.
    assert_eq!(count(&mut a, "SELECT count(*) FROM t WHERE v = 7"), 29);
    let plan = must(&mut a, "EXPLAIN SELECT id FROM t WHERE v = 7");
    assert!(format!("{:?}", plan.rows).contains("t@t_v"), "{:?}", plan.rows);
}

/// Goal: a duplicate found in a late batch fails CREATE UNIQUE INDEX with
/// PostgreSQL's error and leaves no index behind (writes of the duplicate
/// value then succeed).
#[test]
fn a_duplicate_undoes_a_unique_index() {
    let engine = Arc::new(Watched::default());
    let mut a = Session::new(engine.clone());
    must(&mut a, "CREATE TABLE u (id INT PRIMARY KEY, v INT)");
    must(&mut a, "INSERT INTO u SELECT g, CASE WHEN g = 2400 THEN 5 ELSE g END FROM generate_series(1, 2500) g");
    let e = run(&mut a, "CREATE UNIQUE INDEX u_v ON u (v)").expect_err("v = 5 twice");
    assert_eq!(e.state.code(), "23505", "{e}");
    assert!(e.message.contains("could not create unique index \"u_v\""), "{e}");
    assert_eq!(e.detail.as_deref(), Some("Key (v)=(5) is duplicated."), "{e:?}");
    let desc = table(engine.as_ref(), "u");
    assert!(desc.indexes.is_empty() && !desc.draining, "{desc:?}");
    must(&mut a, "INSERT INTO u VALUES (9999, 5)");
}

/// Goal: ALTER TABLE ADD PRIMARY KEY rewrites a table of 25,000 rows —
/// more than one transaction may write — keeping every row; while it
/// runs, readers read and writers get 55006; afterwards the table is keyed
/// by the new column, without its hidden row id.
#[test]
fn a_primary_key_is_added_to_a_big_table_in_batches() {
    let engine = Arc::new(Watched::default());
    let mut a = Session::new(engine.clone());
    must(&mut a, "CREATE TABLE h (a INT NOT NULL, b TEXT)");
    for (from, to) in [(1, 10_000), (10_001, 20_000), (20_001, 25_000)] {
        must(&mut a, &format!("INSERT INTO h SELECT g, 'row ' || g FROM generate_series({from}, {to}) g"));
    }
    let b = Arc::new(Mutex::new(Session::new(engine.clone())));
    let during = Arc::new(Mutex::new(None));
    let (writer, seen) = (b.clone(), during.clone());
    // Transactions of the ALTER: drain, the statement (which starts the
    // rewrite), the new table's id (allocated on its own), then the first
    // batch (the hook runs as it begins).
    engine.on_begin(
        4,
        Box::new(move || {
            let mut b = writer.lock().unwrap();
            let insert = run(&mut b, "INSERT INTO h VALUES (30000, 'late')").map(|_| ());
            let rows = count(&mut b, "SELECT count(*) FROM h");
            *seen.lock().unwrap() = Some((insert, rows));
        }),
    );
    must(&mut a, "ALTER TABLE h ADD PRIMARY KEY (a)");
    let (insert, rows) = during.lock().unwrap().take().expect("the hook ran");
    assert_eq!(insert.expect_err("writes are refused during the rewrite").state.code(), "55006");
    assert_eq!(rows, 25_000);

    let desc = table(engine.as_ref(), "h");
    assert!(desc.rewrite.is_none() && !desc.has_hidden_rowid(), "{desc:?}");
    assert_eq!(desc.primary.name, "h_pkey");
    assert_eq!(count(&mut a, "SELECT count(*) FROM h"), 25_000);
    let out = must(&mut a, "SELECT b FROM h WHERE a = 24999");
    assert_eq!(out.rows, vec![vec![Value::Text("row 24999".into())]]);
    let out = must(&mut a, "SELECT * FROM h WHERE a = 1");
    assert_eq!(out.columns.len(), 2, "the row id is gone");
    let e = run(&mut a, "INSERT INTO h VALUES (1, 'again')").expect_err("a is the key now");
    assert_eq!(e.state.code(), "23505", "{e}");
    sql::testing::check_indexes(engine.as_ref(), "h").expect("consistent");
}

/// Goal: a new primary key that two rows share, or a NULL in one of its
/// columns, fails the ALTER (23505, 23502) and leaves the table as it was,
/// taking writes again.
#[test]
fn a_rewrite_that_fails_leaves_the_table_as_it_was() {
    let engine = Arc::new(Watched::default());
    let mut a = Session::new(engine.clone());
    must(&mut a, "CREATE TABLE d (a INT, b INT)");
    must(&mut a, "INSERT INTO d SELECT g, g FROM generate_series(1, 2500) g");
    must(&mut a, "INSERT INTO d VALUES (2000, 0), (NULL, 1)");
    for (sql, code) in [("ALTER TABLE d ADD PRIMARY KEY (b)", "23505"), ("ALTER TABLE d ADD PRIMARY KEY (a)", "23502")]
    {
        let e = run(&mut a, sql).expect_err(sql);
        assert_eq!(e.state.code(), code, "{sql}: {e}");
        let desc = table(engine.as_ref(), "d");
        assert!(desc.rewrite.is_none() && desc.has_hidden_rowid() && !desc.draining, "{desc:?}");
        must(&mut a, "INSERT INTO d VALUES (0, 0)");
    }
    assert_eq!(count(&mut a, "SELECT count(*) FROM d"), 2504);
}

/// Goal: a batch whose commit's outcome is unknown (the cluster did not
/// answer in time) is run again, and the change completes with every row
/// once — whether that batch had committed or not. A rewrite batch that
/// committed must not be copied again (its rows would be found taken: a
/// duplicate that is not one); an index batch that committed finds its
/// entries already there, the rows' own.
/// Method: for each of the two cases, ADD PRIMARY KEY to a 2,500-row
/// table without one (three batches), the second batch's commit reporting
/// an unknown outcome; then CREATE UNIQUE INDEX the same way.
#[test]
fn a_batch_whose_outcome_is_unknown_runs_again_from_where_the_change_got() {
    for commits in [true, false] {
        let engine = Arc::new(Watched::default());
        let mut a = Session::new(engine.clone());
        must(&mut a, "CREATE TABLE p (a INT NOT NULL, b INT)");
        must(&mut a, "INSERT INTO p SELECT g, g FROM generate_series(1, 2500) g");
        // Drain, the statement, the new table's id, batch 1, batch 2.
        engine.commit_outcome_unknown(5, commits);
        must(&mut a, "ALTER TABLE p ADD PRIMARY KEY (a)");
        assert_eq!(count(&mut a, "SELECT count(*) FROM p"), 2500, "commits: {commits}");
        assert!(!table(engine.as_ref(), "p").has_hidden_rowid());
        sql::testing::check_indexes(engine.as_ref(), "p").expect("consistent");

        // Drain, the statement, batch 1, batch 2.
        engine.commit_outcome_unknown(4, commits);
        must(&mut a, "CREATE UNIQUE INDEX p_b ON p (b)");
        let desc = table(engine.as_ref(), "p");
        assert!(desc.indexes.iter().all(|i| !i.write_only), "{desc:?}");
        sql::testing::check_indexes(engine.as_ref(), "p").expect("the index matches the rows");
    }
}
