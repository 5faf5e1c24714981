//! COPY FROM STDIN: batches that commit on their own, and the block rule
//! that makes `BEGIN; TRUNCATE; COPY; COMMIT` atomic.

mod common;

use std::sync::Arc;

use common::{must, run, Watched};
use sql::Session;

fn rows(from: i64, to: i64) -> Vec<u8> {
    (from..=to).map(|i| format!("{i}\t{}\tx\n", i % 7)).collect::<String>().into_bytes()
}

fn count(s: &mut Session, table: &str) -> i64 {
    let out = must(s, &format!("SELECT count(*) FROM {table}"));
    match out.rows[0][0] {
        sql::Value::Int8(n) => n,
        ref v => panic!("count is {v:?}"),
    }
}

/// Goal: COPY loads more rows than one transaction may write, in batches
/// of COPY_BATCH_ROWS each committed on its own, whatever the chunking;
/// the tag counts them all.
/// Method: 2,500 rows (three batches) fed in 7-byte chunks into a table
/// without a primary key (hidden row ids).
#[test]
fn copy_loads_in_batches_whatever_the_chunks() {
    let engine = Arc::new(Watched::default());
    let mut s = Session::new(engine.clone());
    must(&mut s, "CREATE TABLE acc (aid INT NOT NULL, bid INT, filler TEXT)");
    let parsed = sql::parser::parse("COPY acc FROM STDIN WITH (FREEZE ON)").unwrap().pop().unwrap();
    assert_eq!(s.copy_start(&parsed).unwrap(), 3);
    engine.clear_modes();
    for chunk in rows(1, 2_500).chunks(7) {
        s.copy_data(chunk);
    }
    s.copy_data(b"\\.\n");
    assert_eq!(s.copy_done().unwrap(), "COPY 2500");
    assert_eq!(count(&mut s, "acc"), 2_500);
    let read_write = engine.modes().iter().filter(|m| **m == sql::kv::Mode::ReadWrite).count();
    assert_eq!(read_write, 3, "one transaction per batch: {:?}", engine.modes());
}

/// Goal: a COPY into a table the block truncated is part of the block:
/// nothing shows before COMMIT, and a ROLLBACK leaves the old rows; a
/// bad line fails the COPY with its line number and 22P02, the block is
/// then failed (25P02) and rolls back.
#[test]
fn copy_after_truncate_in_a_block_commits_with_the_block() {
    let engine = Arc::new(Watched::default());
    let mut s = Session::new(engine.clone());
    let mut other = Session::new(engine.clone());
    must(&mut s, "CREATE TABLE acc (aid INT PRIMARY KEY, bid INT, filler TEXT)");
    must(&mut s, "INSERT INTO acc VALUES (1, 1, 'old')");
    let copy = sql::parser::parse("COPY acc (aid, bid, filler) FROM STDIN").unwrap().pop().unwrap();

    must(&mut s, "BEGIN");
    must(&mut s, "TRUNCATE acc");
    s.copy_start(&copy).unwrap();
    s.copy_data(&rows(1, 1_500));
    assert_eq!(s.copy_done().unwrap(), "COPY 1500");
    assert_eq!(count(&mut other, "acc"), 1, "the block's rows are its own until COMMIT");
    must(&mut s, "ROLLBACK");
    assert_eq!(count(&mut other, "acc"), 1);

    must(&mut s, "BEGIN");
    must(&mut s, "TRUNCATE acc");
    s.copy_start(&copy).unwrap();
    s.copy_data(&rows(1, 1_200));
    assert_eq!(s.copy_done().unwrap(), "COPY 1200");
    must(&mut s, "COMMIT");
    assert_eq!(count(&mut other, "acc"), 1_200);

    must(&mut s, "BEGIN");
    s.copy_start(&copy).unwrap();
    s.copy_data(b"5000\t1\tok\n5001\tnope\tbad\n");
    let e = s.copy_done().unwrap_err();
    assert_eq!(e.state.code(), "22P02", "{e:?}");
    assert!(e.message.contains("line 2"), "{}", e.message);
    let e = run(&mut s, "SELECT 1").unwrap_err();
    assert_eq!(e.state.code(), "25P02");
    must(&mut s, "ROLLBACK");
}

/// Goal: COPY ... TO STDOUT is its query: the rows of the table's
/// visible columns (or of the given query), tagged `COPY n`; what it does
/// not support (a file, CSV) is 0A000.
#[test]
fn copy_to_stdout_gives_the_rows_and_their_count() {
    let mut s = Session::new(Arc::new(Watched::default()));
    must(&mut s, "CREATE TABLE t (a INT, b TEXT)");
    must(&mut s, "INSERT INTO t VALUES (1, 'x'), (2, NULL)");
    let out = must(&mut s, "COPY t TO STDOUT");
    assert_eq!(out.tags, vec!["COPY 2".to_string()]);
    let mut lines: Vec<String> = out.rows.iter().map(|r| sql::copy::format_line(r)).collect();
    lines.sort();
    assert_eq!(lines, vec!["1\tx\n".to_string(), "2\t\\N\n".to_string()]);
    let out = must(&mut s, "COPY (SELECT b, a * 10 FROM t WHERE a = 1) TO STDOUT WITH (FORMAT text)");
    assert_eq!((out.rows.len(), out.tags[0].as_str()), (1, "COPY 1"));
    assert_eq!(sql::copy::format_line(&out.rows[0]), "x\t10\n");
    let out = must(&mut s, "COPY t (b) TO STDOUT");
    assert_eq!(out.columns.len(), 1);
    for bad in [
        "COPY t TO '/tmp/x'",
        "COPY t TO STDOUT WITH (FORMAT binary)",
        "COPY (DELETE FROM t) TO STDOUT",
        "COPY (WITH w AS (SELECT 1) DELETE FROM t RETURNING a) TO STDOUT",
    ] {
        let e = run(&mut s, bad).unwrap_err();
        assert_eq!(e.state, sql::SqlState::FeatureNotSupported, "{bad}: {e:?}");
    }
    let out = must(&mut s, "COPY t TO STDOUT");
    assert_eq!(out.tags, vec!["COPY 2".to_string()], "the refused COPYs deleted nothing");
}

/// Goal: an INSERT ... SELECT inside a block into a table the block
/// created or truncated may write more rows than one transaction (pgbench
/// `-I G`: `BEGIN; TRUNCATE; INSERT ... FROM generate_series(1, 100000);
/// COMMIT`): its rows appear when the block commits and never if it rolls
/// back; into any other table the per-transaction limit holds (54000);
/// a duplicate key fails the statement and the block (23505, then 25P02).
/// Method: 12,000 rows, more than WRITES_PER_TRANSACTION_MAX; a second
/// session counts.
#[test]
fn a_large_insert_select_into_a_table_the_block_truncated_commits_with_the_block() {
    let engine = Arc::new(Watched::default());
    let mut s = Session::new(engine.clone());
    let mut other = Session::new(engine.clone());
    let big = sql::limits::WRITES_PER_TRANSACTION_MAX as i64 + 2_000;
    let load = format!("INSERT INTO acc (aid, bid, filler) SELECT g, g % 7, '' FROM generate_series(1, {big}) AS g");
    must(&mut s, "CREATE TABLE acc (aid INT NOT NULL, bid INT, filler CHAR(8))");
    must(&mut s, "INSERT INTO acc VALUES (1, 1, 'old')");

    must(&mut s, "BEGIN");
    must(&mut s, "TRUNCATE acc");
    assert_eq!(must(&mut s, &load).tags, vec![format!("INSERT 0 {big}")]);
    assert_eq!(count(&mut other, "acc"), 1, "the block's rows are its own until COMMIT");
    must(&mut s, "ROLLBACK");
    assert_eq!(count(&mut other, "acc"), 1);

    must(&mut s, "BEGIN");
    must(&mut s, "TRUNCATE acc");
    must(&mut s, &load);
    must(&mut s, "COMMIT");
    assert_eq!(count(&mut other, "acc"), big);
    let out = must(&mut other, "SELECT sum(aid), min(filler) FROM acc");
    assert_eq!(out.rows[0][0], sql::Value::Int8(big * (big + 1) / 2));
    assert_eq!(out.rows[0][1], sql::Value::Text("        ".into()), "cast to char(8) as a row is");

    must(&mut s, "BEGIN");
    let e = run(&mut s, &load).unwrap_err();
    assert_eq!(e.state.code(), "54000", "{e:?}");
    must(&mut s, "ROLLBACK");

    must(&mut s, "BEGIN");
    must(&mut s, "CREATE TABLE uniq (k INT PRIMARY KEY)");
    let e = run(&mut s, &format!("INSERT INTO uniq SELECT g % {} FROM generate_series(1, {big}) AS g", big - 1))
        .unwrap_err();
    assert_eq!(e.state.code(), "23505", "{e:?}");
    assert_eq!(run(&mut s, "SELECT 1").unwrap_err().state.code(), "25P02");
    must(&mut s, "ROLLBACK");
    assert_eq!(run(&mut other, "SELECT * FROM uniq").unwrap_err().state.code(), "42P01");
}

/// Goal: ROLLBACK TO a savepoint taken before a COPY in a block is
/// refused (0A000): the COPY's batches commit on their own (into a table
/// the block made), so going back would leave its rows in place. One
/// taken after the COPY still goes back.
/// Method: BEGIN; CREATE TABLE; SAVEPOINT a; COPY 3 rows; SAVEPOINT b;
/// INSERT; ROLLBACK TO b (fine); ROLLBACK TO a (0A000); ROLLBACK.
#[test]
fn rollback_to_a_savepoint_before_a_copy_in_a_block_is_refused() {
    let engine = Arc::new(Watched::default());
    let mut s = Session::new(engine.clone());
    must(&mut s, "BEGIN");
    must(&mut s, "CREATE TABLE acc (aid INT PRIMARY KEY, bid INT, filler TEXT)");
    must(&mut s, "SAVEPOINT a");
    let copy = sql::parser::parse("COPY acc (aid, bid, filler) FROM STDIN").unwrap().pop().unwrap();
    s.copy_start(&copy).unwrap();
    s.copy_data(&rows(1, 3));
    assert_eq!(s.copy_done().unwrap(), "COPY 3");
    must(&mut s, "SAVEPOINT b");
    must(&mut s, "INSERT INTO acc VALUES (10, 1, 'x')");
    must(&mut s, "ROLLBACK TO b");
    let e = run(&mut s, "ROLLBACK TO a").expect_err("the COPY's batches are committed");
    assert_eq!(e.state.code(), "0A000", "{e}");
    must(&mut s, "ROLLBACK");
}

/// Goal: COPY inside a block into a table with foreign keys writes in the
/// block's own transaction: it sees the rows the block wrote (a batch of
/// its own would not: it would wait on the block's locks, or find no
/// referenced row), and a ROLLBACK takes its rows with the block's, so no
/// row is left referencing nothing. A row referencing nothing fails it.
/// Method: BEGIN, INSERT a parent, COPY 1,500 children referencing it
/// (two batches), ROLLBACK: no child. Again with COMMIT: all of them. A
/// COPY of a child referencing a missing parent: 23503.
#[test]
fn copy_in_a_block_into_a_table_with_foreign_keys_goes_with_the_block() {
    let engine = Arc::new(Watched::default());
    let mut s = Session::new(engine.clone());
    must(&mut s, "CREATE TABLE branch (bid INT PRIMARY KEY)");
    must(&mut s, "CREATE TABLE acc (aid INT PRIMARY KEY, bid INT REFERENCES branch, filler TEXT)");
    let children = |s: &mut Session, from: i64, to: i64| {
        let copy = sql::parser::parse("COPY acc (aid, bid, filler) FROM STDIN").unwrap().pop().unwrap();
        s.copy_start(&copy).unwrap();
        let data: String = (from..=to).map(|i| format!("{i}\t7\tx\n")).collect();
        s.copy_data(data.as_bytes());
        s.copy_done()
    };
    for end in ["ROLLBACK", "COMMIT"] {
        must(&mut s, "BEGIN");
        must(&mut s, "INSERT INTO branch VALUES (7)");
        assert_eq!(children(&mut s, 1, 1_500).unwrap(), "COPY 1500");
        must(&mut s, end);
    }
    assert_eq!(count(&mut s, "acc"), 1_500);
    assert_eq!(count(&mut s, "branch"), 1);
    must(&mut s, "BEGIN");
    must(&mut s, "DELETE FROM acc");
    must(&mut s, "DELETE FROM branch");
    let e = children(&mut s, 1, 10).expect_err("branch 7 is gone");
    assert_eq!(e.state.code(), "23503", "{e}");
    must(&mut s, "ROLLBACK");
    assert_eq!(count(&mut s, "acc"), 1_500);
}

/// Goal: COPY writes the values it is given to a GENERATED ALWAYS
/// identity column, as PostgreSQL's does (an INSERT would need
/// OVERRIDING SYSTEM VALUE). Method: COPY two rows with ids; read them.
#[test]
fn copy_writes_identity_columns_as_given() {
    let engine = Arc::new(Watched::default());
    let mut s = Session::new(engine.clone());
    must(&mut s, "CREATE TABLE gen (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v INT)");
    let copy = sql::parser::parse("COPY gen (id, v) FROM STDIN").unwrap().pop().unwrap();
    s.copy_start(&copy).unwrap();
    s.copy_data(b"7\t1\n8\t2\n");
    assert_eq!(s.copy_done().unwrap(), "COPY 2");
    let out = must(&mut s, "SELECT id FROM gen ORDER BY id");
    assert_eq!(out.rows, vec![vec![sql::Value::Int8(7)], vec![sql::Value::Int8(8)]]);
}
