//! A lookup by the whole primary key reads one key (a get), not a range,
//! and an UPDATE or DELETE reads the rows it changes by key for update
//! (an exclusive lock), so that two transactions changing one row queue
//! at their reads instead of both holding it shared and aborting one at
//! commit.
//!
//! ```text
//!   Recorded engine = MemoryEngine + a log of every read its transactions ask for
//! ```

use std::sync::{Arc, Mutex};

mod common;

use common::{run, Read, Wrapped};
use sql::kv::{Engine, KvError, Mode, ShardSpan, Timestamp, Transaction};
use sql::memory::MemoryEngine;
use sql::{Session, Value};

#[derive(Default)]
struct Recorded {
    inner: MemoryEngine,
    reads: Arc<Mutex<Vec<Read>>>,
}

impl Engine for Recorded {
    fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>, KvError> {
        Ok(Box::new(Wrapped { reads: Some(self.reads.clone()), ..Wrapped::around(self.inner.begin(mode)?) }))
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

/// Two tables, `t` (a primary key and a unique column) and `k2` (a
/// primary key of two columns), with a few rows; then the log cleared.
fn setup() -> (Arc<Mutex<Vec<Read>>>, Session) {
    let engine = Recorded::default();
    let reads = engine.reads.clone();
    let mut s = Session::new(Arc::new(engine));
    for sql in [
        "CREATE TABLE t (id INT PRIMARY KEY, email TEXT UNIQUE, n INT)",
        "INSERT INTO t VALUES (1, 'a@x', 10), (2, 'b@x', 20), (3, 'c@x', 30)",
        "CREATE TABLE k2 (a INT, b TEXT, v INT, PRIMARY KEY (a, b))",
        "INSERT INTO k2 VALUES (1, 'x', 1), (1, 'y', 2)",
    ] {
        run(&mut s, sql).unwrap();
    }
    // Warm the session's leased descriptors: later statements read rows only.
    for sql in ["SELECT * FROM t WHERE id > 100", "SELECT * FROM k2 WHERE a > 100"] {
        run(&mut s, sql).unwrap();
    }
    reads.lock().unwrap().clear();
    (reads, s)
}

/// Runs `sql`, returning the reads it made and its rows.
fn reads_of(reads: &Mutex<Vec<Read>>, s: &mut Session, sql: &str) -> (Vec<Read>, Vec<Vec<Value>>) {
    reads.lock().unwrap().clear();
    let out = run(s, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let made = std::mem::take(&mut *reads.lock().unwrap());
    (made, out.rows)
}

/// Goal: SELECT by the whole primary key is one get (found or not); by
/// part of it, or by a range, a scan.
#[test]
fn a_whole_primary_key_is_read_with_a_get() {
    let (reads, mut s) = setup();
    let (made, rows) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE id = 2");
    assert_eq!((made, rows), (vec![Read::Get], vec![vec![Value::Int4(20)]]));
    let (made, rows) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE id = 9");
    assert_eq!((made, rows), (vec![Read::Get], vec![]));
    let (made, rows) = reads_of(&reads, &mut s, "SELECT v FROM k2 WHERE a = 1 AND b = 'y'");
    assert_eq!((made, rows), (vec![Read::Get], vec![vec![Value::Int4(2)]]));
    let (made, rows) = reads_of(&reads, &mut s, "SELECT v FROM k2 WHERE a = 1 ORDER BY b");
    assert_eq!((made, rows), (vec![Read::Scan], vec![vec![Value::Int4(1)], vec![Value::Int4(2)]]));
    let (made, _) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE id >= 2");
    assert_eq!(made, vec![Read::Scan]);
}

/// How many of `made` were of `kind`.
fn count(made: &[Read], kind: Read) -> usize {
    made.iter().filter(|r| **r == kind).count()
}

/// Goal: UPDATE and DELETE read the rows they change for update (by
/// primary key, or through a secondary index's entry to the row), first
/// and once each; what they only look at, here another table's row in a
/// subquery, is read shared. (Their later gets are of keys the statement
/// itself deleted, the row's old key and unique entry: a transaction
/// answers those from its own writes.) A plain SELECT never reads for
/// update.
#[test]
fn update_and_delete_read_their_rows_for_update() {
    let (reads, mut s) = setup();
    let (made, _) = reads_of(&reads, &mut s, "UPDATE t SET n = n + 1 WHERE id = 1");
    assert_eq!((made[0], count(&made, Read::GetForUpdate), count(&made, Read::Scan)), (Read::GetForUpdate, 1, 0));
    let (made, _) = reads_of(&reads, &mut s, "UPDATE t SET n = n + 1 WHERE email = 'b@x'");
    assert_eq!(made[..2], [Read::Scan, Read::GetForUpdate], "the index entry is scanned, the row read for update");
    assert_eq!((count(&made, Read::GetForUpdate), count(&made, Read::Scan)), (1, 1));
    let (made, _) =
        reads_of(&reads, &mut s, "UPDATE t SET n = (SELECT v FROM k2 WHERE a = 1 AND b = 'x') WHERE id = 3");
    assert_eq!((made[0], count(&made, Read::GetForUpdate)), (Read::GetForUpdate, 1), "k2 is read shared: {made:?}");
    let (made, _) = reads_of(&reads, &mut s, "DELETE FROM k2 WHERE a = 1 AND b = 'y'");
    assert_eq!(made, vec![Read::GetForUpdate]);
    let (made, _) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE id = 1");
    assert_eq!(made, vec![Read::Get]);
    let (_, rows) = reads_of(&reads, &mut s, "SELECT id, n FROM t ORDER BY id");
    assert_eq!(
        rows,
        vec![
            vec![Value::Int4(1), Value::Int4(11)],
            vec![Value::Int4(2), Value::Int4(21)],
            vec![Value::Int4(3), Value::Int4(1)],
        ]
    );
    let (_, rows) = reads_of(&reads, &mut s, "SELECT count(*) FROM k2");
    assert_eq!(rows, vec![vec![Value::Int8(1)]]);
}

/// Goal: inside a transaction, a row the transaction changed is read
/// back by a get (which the engine answers from the transaction's own
/// writes), with the new value.
#[test]
fn a_row_changed_earlier_in_the_transaction_is_read_back_by_key() {
    let (reads, mut s) = setup();
    run(&mut s, "BEGIN").unwrap();
    run(&mut s, "UPDATE t SET n = n + 5 WHERE id = 2").unwrap();
    let (made, rows) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE id = 2");
    assert_eq!((made, rows), (vec![Read::Get], vec![vec![Value::Int4(25)]]));
    run(&mut s, "COMMIT").unwrap();
}

/// Goal: `SELECT ... FOR UPDATE` reads the rows it looks up by key for
/// update (exclusively: a transaction that reads a row to change it next
/// queues there, instead of two holding it shared and one aborting at its
/// write), through a secondary index too and with OF naming the table
/// among several; FOR SHARE and a join without OF read shared. It runs
/// in a read-write transaction even outside a block, and a read-only
/// block refuses it (25006). NOWAIT reads as FOR UPDATE does (an engine
/// whose reads never wait has nothing to refuse), and SKIP LOCKED reads
/// the row without locks, then for update; FOR SHARE SKIP LOCKED: 0A000.
#[test]
fn select_for_update_reads_its_rows_for_update() {
    let (reads, mut s) = setup();
    let (made, rows) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE id = 2 FOR UPDATE");
    assert_eq!((made, rows), (vec![Read::GetForUpdate], vec![vec![Value::Int4(20)]]));
    let (made, _) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE email = 'c@x' FOR UPDATE");
    assert_eq!(made, vec![Read::Scan, Read::GetForUpdate], "the index entry scanned, the row read for update");
    let (made, _) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE id = 2 FOR SHARE");
    assert_eq!(made, vec![Read::Get]);
    let join = "SELECT t.n, k2.v FROM t, k2 WHERE t.id = 1 AND k2.a = 1 AND k2.b = 'x'";
    let (made, _) = reads_of(&reads, &mut s, &format!("{join} FOR UPDATE"));
    assert_eq!(count(&made, Read::GetForUpdate), 0, "several tables, none named: {made:?}");
    let (made, rows) = reads_of(&reads, &mut s, &format!("{join} FOR UPDATE OF k2"));
    assert_eq!((count(&made, Read::GetForUpdate), count(&made, Read::Get)), (1, 1), "{made:?}");
    assert_eq!(rows, vec![vec![Value::Int4(10), Value::Int4(1)]]);

    run(&mut s, "BEGIN READ ONLY").unwrap();
    let e = run(&mut s, "SELECT n FROM t WHERE id = 2 FOR UPDATE").expect_err("read-only");
    assert_eq!(e.state.code(), "25006", "{e}");
    run(&mut s, "ROLLBACK").unwrap();
    let (made, rows) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE id = 2 FOR UPDATE NOWAIT");
    assert_eq!((made, rows), (vec![Read::GetForUpdate], vec![vec![Value::Int4(20)]]));
    // SKIP LOCKED: the row read without locks (a scan of its key), then
    // locked and read again.
    let (made, rows) = reads_of(&reads, &mut s, "SELECT n FROM t WHERE id = 2 FOR UPDATE SKIP LOCKED");
    assert_eq!((made, rows), (vec![Read::Scan, Read::GetForUpdate], vec![vec![Value::Int4(20)]]));
    let e = run(&mut s, "SELECT n FROM t FOR SHARE SKIP LOCKED").expect_err("FOR SHARE SKIP LOCKED");
    assert_eq!(e.state.code(), "0A000", "{e}");
}

/// Goal: a join of a table with a side the plan knows has few rows (a
/// LIMIT, VALUES) on the table's key reads the table by key once per row
/// of that side, not whole (optimizer rule 5, lookup joins): a job
/// queue's `UPDATE ... FROM (... LIMIT 1 FOR UPDATE SKIP LOCKED)` reads
/// and locks one row, and a bulk `UPDATE ... FROM (VALUES ...)` the rows
/// it names. Without a key (a join on `n`, no index) the table is
/// scanned, as before.
#[test]
fn a_join_with_few_rows_on_a_key_reads_the_table_by_key() {
    let (reads, mut s) = setup();
    let (made, rows) = reads_of(
        &reads,
        &mut s,
        "UPDATE t SET n = n + 1 FROM (SELECT id FROM t WHERE n >= 20 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AS next \
         WHERE t.id = next.id RETURNING t.id, t.n",
    );
    assert_eq!(rows, vec![vec![Value::Int4(2), Value::Int4(21)]]);
    // The queue's scan (its first page), the job locked and read again,
    // then the update's read of that one row by key, for update (and no
    // scan of `t`; the gets after are of the keys the update replaces,
    // answered from its own writes).
    assert_eq!(made[..3], [Read::Scan, Read::GetForUpdate, Read::GetForUpdate], "{made:?}");
    assert_eq!(count(&made, Read::Scan), 1, "{made:?}");
    let (made, rows) = reads_of(
        &reads,
        &mut s,
        "SELECT t.id, v.tag FROM (VALUES (3, 'c'), (9, 'z')) AS v(id, tag) JOIN t ON t.id = v.id",
    );
    assert_eq!(rows, vec![vec![Value::Int4(3), Value::Text("c".into())]]);
    assert_eq!(made, vec![Read::Get, Read::Get], "one get per row of VALUES: {made:?}");
    let (made, rows) = reads_of(
        &reads,
        &mut s,
        "UPDATE t SET n = v.n FROM (VALUES (1, 100), (3, 300)) AS v(id, n) WHERE v.id = t.id RETURNING t.id",
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(count(&made, Read::GetForUpdate), 2, "{made:?}");
    assert_eq!(count(&made, Read::Scan), 0, "{made:?}");
    let (made, _) = reads_of(&reads, &mut s, "SELECT t.id FROM (VALUES (100)) AS v(n) JOIN t ON t.n = v.n");
    assert_eq!(made, vec![Read::Scan], "no index on n: the table is scanned");
}

/// Goal: ORDER BY a key DESC reads the index from its end down (one
/// reverse scan, whose first page is the few rows a LIMIT wants) rather
/// than every row and a sort. An order the index cannot give either way
/// (mixed directions over `(a, b)`) still sorts a forward scan.
#[test]
fn order_by_a_key_descending_reads_the_index_backwards() {
    let (reads, mut s) = setup();
    let (made, rows) = reads_of(&reads, &mut s, "SELECT id FROM t ORDER BY id DESC LIMIT 2");
    assert_eq!((made, rows), (vec![Read::ScanReverse], vec![vec![Value::Int4(3)], vec![Value::Int4(2)]]));
    let (made, rows) = reads_of(&reads, &mut s, "SELECT id FROM t WHERE id < 3 ORDER BY id DESC");
    assert_eq!((made, rows), (vec![Read::ScanReverse], vec![vec![Value::Int4(2)], vec![Value::Int4(1)]]));
    let (made, rows) = reads_of(&reads, &mut s, "SELECT b, v FROM k2 WHERE a = 1 ORDER BY b DESC LIMIT 1");
    assert_eq!((made, rows), (vec![Read::ScanReverse], vec![vec![Value::Text("y".into()), Value::Int4(2)]]));
    let (made, _) = reads_of(&reads, &mut s, "SELECT a, b FROM k2 ORDER BY a, b DESC");
    assert_eq!(made, vec![Read::Scan]);
    // min and max of a key read its first value in that order (rule 6);
    // of a column no index orders, every row.
    let (made, rows) = reads_of(&reads, &mut s, "SELECT max(id) FROM t");
    assert_eq!((made, rows), (vec![Read::ScanReverse], vec![vec![Value::Int4(3)]]));
    let (made, rows) = reads_of(&reads, &mut s, "SELECT max(id) FROM t WHERE id > 5");
    assert_eq!((made, rows), (vec![Read::ScanReverse], vec![vec![Value::Null]]));
    let (made, rows) = reads_of(&reads, &mut s, "SELECT max(n) FROM t");
    assert_eq!((made, rows), (vec![Read::Scan], vec![vec![Value::Int4(30)]]));
    // A unique index's entries, last first, each row read by key.
    let (made, rows) = reads_of(&reads, &mut s, "SELECT email FROM t WHERE email >= 'a' ORDER BY email DESC LIMIT 1");
    assert_eq!(rows, vec![vec![Value::Text("c@x".into())]]);
    assert_eq!(made[0], Read::ScanReverse, "{made:?}");
    // With no WHERE to choose the index, a LIMIT over the order (or a
    // max) still reads it rather than every row: the index's last entry,
    // then its row by key.
    for sql in
        ["SELECT email FROM t ORDER BY email DESC LIMIT 1", "SELECT email FROM t ORDER BY email DESC LIMIT 1 OFFSET 0"]
    {
        let (made, rows) = reads_of(&reads, &mut s, sql);
        assert_eq!(rows, vec![vec![Value::Text("c@x".into())]], "{sql}");
        assert_eq!(made, vec![Read::ScanReverse, Read::Get], "{sql}");
    }
    // Without a LIMIT of a few rows, or under a filter (each row the
    // index gives read by key until enough pass), the table is read and
    // sorted; a max whose NULLs come first in the index's order, too.
    for sql in [
        "SELECT email FROM t ORDER BY email DESC",
        "SELECT email FROM t ORDER BY email DESC OFFSET 1",
        "SELECT email FROM t ORDER BY email DESC LIMIT 5000",
        "SELECT email FROM t WHERE n > 0 ORDER BY email DESC LIMIT 1",
    ] {
        let (made, _) = reads_of(&reads, &mut s, sql);
        assert_eq!(made, vec![Read::Scan], "{sql}");
    }
    run(&mut s, "CREATE INDEX t_n ON t (n)").unwrap();
    run(&mut s, "SELECT * FROM t WHERE id > 100").unwrap(); // the new descriptor leased
    let (made, _) = reads_of(&reads, &mut s, "SELECT max(n) FROM t");
    assert_eq!(made, vec![Read::Scan], "n may be NULL: NULLs first in the index read backwards");
    let (made, rows) = reads_of(&reads, &mut s, "SELECT min(n) FROM t");
    assert_eq!((made, rows), (vec![Read::Scan, Read::Get], vec![vec![Value::Int4(10)]]), "NULLs last");
}
