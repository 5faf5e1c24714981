//! `FOR UPDATE SKIP LOCKED` under the races it exists for, simulated: an
//! engine whose unlocked reads (the candidates) answer from a snapshot
//! taken earlier, while the locking read of each row sees the rows as
//! they are now, and refuses rows "another transaction holds".
//!
//! ```text
//!   Racing engine = MemoryEngine
//!     + scan_unlocked from `snapshot` (if taken): what another worker changed since is unseen
//!     + a no-wait get_for_update of a row whose value holds HELD: refused (LockNotAvailable)
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

mod common;

use common::run;
use sql::kv::{Engine, KvError, Mode, Pair, ShardSpan, Timestamp, Transaction};
use sql::memory::MemoryEngine;
use sql::{Session, Value};

/// Every key and its value, at one moment.
type Snapshot = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Default, Clone)]
struct Racing {
    inner: MemoryEngine,
    snapshot: Arc<Mutex<Option<Snapshot>>>,
    /// What the unlocked reads and the no-wait reads were of, in order.
    log: Arc<Mutex<Vec<&'static str>>>,
}

impl Racing {
    /// From now on, unlocked reads see the data as it is now.
    fn take_snapshot(&self) {
        let mut txn = self.inner.begin(Mode::ReadOnly).unwrap();
        let all: Snapshot = txn.scan(&[], &[], usize::MAX).unwrap().into_iter().collect();
        *self.snapshot.lock().unwrap() = Some(all);
    }
}

impl Engine for Racing {
    fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>, KvError> {
        Ok(Box::new(RacingTxn { inner: self.inner.begin(mode)?, engine: self.clone(), no_wait: false }))
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

struct RacingTxn {
    inner: Box<dyn Transaction>,
    engine: Racing,
    no_wait: bool,
}

impl Transaction for RacingTxn {
    fn mode(&self) -> Mode {
        self.inner.mode()
    }
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key)
    }
    fn get_for_update(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let value = self.inner.get_for_update(key)?;
        if self.no_wait {
            self.engine.log.lock().unwrap().push("no-wait get for update");
            if value.as_ref().is_some_and(|v| v.windows(4).any(|w| w == b"HELD")) {
                return Err(KvError::LockNotAvailable("held by another transaction (simulated)".into()));
            }
        }
        Ok(value)
    }
    fn set_lock_no_wait(&mut self, no_wait: bool) {
        self.no_wait = no_wait;
    }
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        self.engine.log.lock().unwrap().push("locking scan");
        self.inner.scan(start, end, limit)
    }
    fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        self.engine.log.lock().unwrap().push("locking reverse scan");
        self.inner.scan_reverse(start, end, limit)
    }
    fn scan_unlocked(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        self.engine.log.lock().unwrap().push("unlocked scan");
        let snapshot = self.engine.snapshot.lock().unwrap();
        let Some(snapshot) = snapshot.as_ref() else { return self.inner.scan(start, end, limit) };
        Ok(snapshot
            .range(start.to_vec()..)
            .take_while(|(k, _)| end.is_empty() || k.as_slice() < end)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn scan_unlocked_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        self.engine.log.lock().unwrap().push("unlocked reverse scan");
        let snapshot = self.engine.snapshot.lock().unwrap();
        let Some(snapshot) = snapshot.as_ref() else { return self.inner.scan_reverse(start, end, limit) };
        Ok(snapshot
            .range(start.to_vec()..)
            .rev()
            .skip_while(|(k, _)| !end.is_empty() && k.as_slice() >= end)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
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
    fn commit(self: Box<Self>) -> Result<sql::kv::Committed, KvError> {
        self.inner.commit()
    }
    fn rollback(self: Box<Self>) -> Result<(), KvError> {
        self.inner.rollback()
    }
    fn read_ts(&self) -> Option<Timestamp> {
        self.inner.read_ts()
    }
    fn set_deadline(&mut self, deadline: Option<Timestamp>) -> Result<(), KvError> {
        self.inner.set_deadline(deadline)
    }
}

fn rows(s: &mut Session, sql: &str) -> Vec<Vec<Value>> {
    run(s, sql).unwrap_or_else(|e| panic!("{sql}: {e}")).rows
}

/// Goal: SKIP LOCKED returns, of the candidates it read without locks,
/// the rows it could lock, as they are once locked: a row another
/// transaction holds is passed over, as is one deleted since, or one
/// changed so that the WHERE no longer holds; one changed so that it
/// still holds comes back with its new values (PostgreSQL's re-check of
/// the latest version), and a NaN in it does not hide it. The LIMIT
/// counts the rows returned. A subquery in the query reads with locks.
/// Method: snapshot five queued jobs, then change them behind the
/// snapshot's back (one done, one retried, one deleted, one held, one
/// scored NaN) and add a sixth; take them with SKIP LOCKED.
#[test]
fn skip_locked_takes_the_rows_it_can_lock_as_they_are_now() {
    let engine = Racing::default();
    let mut s = Session::new(Arc::new(engine.clone()));
    for sql in [
        "CREATE TABLE jobs (id INT PRIMARY KEY, state TEXT NOT NULL, attempts INT NOT NULL, score FLOAT8, note TEXT)",
        "INSERT INTO jobs SELECT i, 'queued', 0, 1.0, '' FROM generate_series(1, 6) i",
        "CREATE TABLE queues (name TEXT PRIMARY KEY, open BOOL NOT NULL)",
        "INSERT INTO queues VALUES ('q', true)",
    ] {
        run(&mut s, sql).unwrap();
    }
    engine.take_snapshot();
    for sql in [
        "UPDATE jobs SET state = 'done' WHERE id = 1",
        "UPDATE jobs SET attempts = 3 WHERE id = 2",
        "DELETE FROM jobs WHERE id = 3",
        "UPDATE jobs SET note = 'HELD' WHERE id = 4",
        "UPDATE jobs SET score = 'NaN' WHERE id = 5",
    ] {
        run(&mut s, sql).unwrap();
    }
    let take = "SELECT id, attempts, score::text FROM jobs WHERE state = 'queued' \
                AND (SELECT open FROM queues WHERE name = 'q') ORDER BY id";
    engine.log.lock().unwrap().clear();
    let taken = rows(&mut s, &format!("{take} FOR UPDATE SKIP LOCKED"));
    let t = |id, attempts, score: &str| vec![Value::Int4(id), Value::Int4(attempts), Value::Text(score.into())];
    assert_eq!(taken, vec![t(2, 3, "1"), t(5, 0, "NaN"), t(6, 0, "1")]);
    let log = engine.log.lock().unwrap().clone();
    let unlocked = log.iter().filter(|r| **r == "unlocked scan").count();
    assert_eq!(unlocked, 1, "one page of jobs; the subquery's read of queues locks: {log:?}");
    assert_eq!(log.iter().filter(|r| **r == "no-wait get for update").count(), 6, "each candidate locked: {log:?}");

    let taken = rows(&mut s, &format!("{take} LIMIT 2 FOR UPDATE SKIP LOCKED"));
    assert_eq!(taken, vec![t(2, 3, "1"), t(5, 0, "NaN")], "the LIMIT counts rows returned");
}
