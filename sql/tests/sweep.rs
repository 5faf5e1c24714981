//! The sweeper deletes what DROP TABLE, TRUNCATE, DROP INDEX, DROP COLUMN
//! and ALTER TABLE ADD PRIMARY KEY abandon (`sweep`), in batches, and
//! nothing else.
//!
//! ```text
//!   memory engine: statements abandon spans -> sweep_batch until Idle
//!   -> every SQL key left belongs to a live table's live index
//! ```

mod common;

use std::collections::{HashMap, HashSet};

use common::{count, must};
use sql::kv::Engine;
use sql::memory::MemoryEngine;
use sql::sweep::{self, Swept};
use sql::{Session, Value};

/// Sweeps until this sweeper finds nothing to do; returns the batches
/// that deleted something.
fn sweep_all(engine: &dyn Engine, sweeper: u64) -> usize {
    let mut batches = 0;
    loop {
        match sweep::sweep_batch(engine, sweeper, sql::limits::SWEEP_BATCH_ROWS).expect("a sweep batch") {
            Swept::Idle => return batches,
            Swept::Keys(_) | Swept::Finished(_) => batches += 1,
        }
        assert!(batches < 10_000, "the sweep does not end");
    }
}

/// Keys of user tables that no live table's index owns.
fn orphans(engine: &MemoryEngine) -> Vec<Vec<u8>> {
    let tables = sql::session::list_tables(engine).expect("tables");
    let live: HashMap<u32, HashSet<u32>> = tables
        .iter()
        .map(|t| (t.id, std::iter::once(t.primary.id).chain(t.indexes.iter().map(|i| i.id)).collect()))
        .collect();
    engine
        .dump()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| match sql::encoding::decode_index_prefix(k) {
            Ok((table, index, _)) => {
                table >= sql::catalog::FIRST_USER_TABLE_ID && !live.get(&table).is_some_and(|ix| ix.contains(&index))
            }
            Err(_) => false,
        })
        .collect()
}

/// Goal: a dropped table bigger than a batch is deleted over several
/// batches and its job with the last; a table beside it keeps every row.
#[test]
fn a_dropped_table_is_swept_in_batches_and_nothing_else() {
    let engine = std::sync::Arc::new(MemoryEngine::new());
    let mut s = Session::new(engine.clone());
    must(&mut s, "CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    must(&mut s, "CREATE INDEX t_v ON t (v)");
    must(&mut s, "INSERT INTO t SELECT g, g FROM generate_series(1, 1500) g");
    must(&mut s, "CREATE TABLE u (id INT PRIMARY KEY)");
    must(&mut s, "INSERT INTO u SELECT g FROM generate_series(1, 10) g");
    assert_eq!(sweep::jobs_left(engine.as_ref()).unwrap(), 0);
    let t = common::table(engine.as_ref(), "t").id;
    must(&mut s, "DROP TABLE t");
    assert_eq!(sweep::jobs_left(engine.as_ref()).unwrap(), 1);
    assert_eq!(orphans(&engine).len(), 3000, "rows and index entries of t");
    let jobs = must(&mut s, "SHOW JOBS");
    assert_eq!(
        jobs.rows,
        vec![vec![
            Value::Text("SWEEP".into()),
            Value::Text("pending".into()),
            Value::Text(format!("sweep [/Table/{t}, /Table/{}), nothing deleted yet", t + 1)),
        ]]
    );
    // 3,000 keys at 1,000 a batch: the third batch empties the span but
    // deletes a full batch, so a fourth finds it empty and ends the job.
    let batch = sql::limits::SWEEP_BATCH_ROWS;
    for _ in 0..3 {
        assert_eq!(sweep::sweep_batch(engine.as_ref(), 1, batch).unwrap(), Swept::Keys(batch));
    }
    assert_eq!(sweep::sweep_batch(engine.as_ref(), 1, batch).unwrap(), Swept::Finished(0));
    assert_eq!(sweep::sweep_batch(engine.as_ref(), 1, batch).unwrap(), Swept::Idle);
    assert_eq!(sweep::jobs_left(engine.as_ref()).unwrap(), 0);
    assert!(must(&mut s, "SHOW JOBS").rows.is_empty());
    assert_eq!(orphans(&engine), Vec::<Vec<u8>>::new());
    assert_eq!(count(&mut s, "SELECT count(*) FROM u"), 10);
}

/// Goal: every statement that abandons keys leaves a job for them:
/// TRUNCATE, DROP INDEX, DROP COLUMN (with an index on it), ADD PRIMARY
/// KEY (the rows under the old id) and DROP TABLE of a table whose
/// rewrite was abandoned; after sweeping, no key is left that no live
/// index owns, and the live tables keep their rows.
#[test]
fn every_statement_that_abandons_keys_leaves_them_to_the_sweeper() {
    let engine = std::sync::Arc::new(MemoryEngine::new());
    let mut s = Session::new(engine.clone());
    must(&mut s, "CREATE TABLE a (id INT PRIMARY KEY, v INT, w INT)");
    must(&mut s, "INSERT INTO a SELECT g, g % 7, g % 5 FROM generate_series(1, 50) g");
    must(&mut s, "CREATE INDEX a_v ON a (v)");
    must(&mut s, "CREATE INDEX a_w ON a (w)");
    must(&mut s, "DROP INDEX a_v");
    must(&mut s, "ALTER TABLE a DROP COLUMN w");
    must(&mut s, "CREATE TABLE b (k INT, x TEXT)");
    must(&mut s, "INSERT INTO b SELECT g, 'x' FROM generate_series(1, 40) g");
    must(&mut s, "ALTER TABLE b ADD PRIMARY KEY (k)");
    must(&mut s, "CREATE TABLE c (id INT PRIMARY KEY)");
    must(&mut s, "INSERT INTO c SELECT g FROM generate_series(1, 30) g");
    must(&mut s, "TRUNCATE c");
    must(&mut s, "INSERT INTO c VALUES (1)");
    // A rewrite that finds a duplicate is abandoned (its copies so far
    // orphaned), and the table dropped after it.
    must(&mut s, "CREATE TABLE d (k INT)");
    must(&mut s, "INSERT INTO d SELECT g % 1200 FROM generate_series(1, 2400) g");
    let e = common::run(&mut s, "ALTER TABLE d ADD PRIMARY KEY (k)").expect_err("duplicates");
    assert_eq!(e.state, sql::SqlState::UniqueViolation, "{e}");
    must(&mut s, "DROP TABLE d");
    assert!(!orphans(&engine).is_empty());
    // DROP INDEX, DROP COLUMN, ADD PRIMARY KEY, TRUNCATE, the abandoned
    // rewrite and DROP TABLE d.
    assert_eq!(sweep::jobs_left(engine.as_ref()).unwrap(), 6);
    sweep_all(engine.as_ref(), 1);
    assert_eq!(sweep::jobs_left(engine.as_ref()).unwrap(), 0);
    assert_eq!(orphans(&engine), Vec::<Vec<u8>>::new());
    assert_eq!(count(&mut s, "SELECT count(*) FROM a"), 50);
    assert_eq!(count(&mut s, "SELECT count(*) FROM b"), 40);
    assert_eq!(count(&mut s, "SELECT count(*) FROM c"), 1);
}

/// Goal: two sweepers do not work one job at once: a job claimed by one
/// is left alone by the other until the claim expires (its sweeper
/// stopped), then taken over from where the first got to.
#[test]
fn a_claimed_job_is_left_to_its_sweeper_until_the_claim_ends() {
    let engine = std::sync::Arc::new(MemoryEngine::new());
    let mut s = Session::new(engine.clone());
    must(&mut s, "CREATE TABLE t (id INT PRIMARY KEY)");
    must(&mut s, "INSERT INTO t SELECT g FROM generate_series(1, 2500) g");
    must(&mut s, "DROP TABLE t");
    let batch = sql::limits::SWEEP_BATCH_ROWS;
    assert_eq!(sweep::sweep_batch(engine.as_ref(), 1, batch).unwrap(), Swept::Keys(batch));
    let running = must(&mut s, "SHOW JOBS");
    assert_eq!(running.rows[0][1], Value::Text("running".into()), "{:?}", running.rows);
    let t = sql::catalog::FIRST_USER_TABLE_ID;
    assert_eq!(
        running.rows[0][2],
        Value::Text(format!("sweep [/Table/{t}, /Table/{}), deleted up to /Table/{t}/1/1000", t + 1)),
        "the 1,000th row's key"
    );
    assert_eq!(sweep::sweep_batch(engine.as_ref(), 2, batch).unwrap(), Swept::Idle);
    engine.wait(sql::limits::SWEEP_CLAIM_NS);
    assert_eq!(sweep::sweep_batch(engine.as_ref(), 2, batch).unwrap(), Swept::Keys(batch));
    // Now 2's: 1 waits in turn.
    assert_eq!(sweep::sweep_batch(engine.as_ref(), 1, batch).unwrap(), Swept::Idle);
    assert_eq!(sweep::sweep_batch(engine.as_ref(), 2, batch).unwrap(), Swept::Finished(500));
    assert_eq!(sweep::jobs_left(engine.as_ref()).unwrap(), 0);
    assert_eq!(orphans(&engine), Vec::<Vec<u8>>::new());
}
