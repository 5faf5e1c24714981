//! A memory engine that lets a test watch and interleave: it logs the mode
//! of every transaction begun, and runs a hook once when a schema change
//! waits out leases, or when the n-th transaction begins (so a test can
//! act between two batches of a backfill); and it can make the n-th
//! transaction's commit report an unknown outcome, having committed or
//! not (what a client sees when the cluster does not answer in time); and
//! it logs every deadline a transaction is given (`deadlines`).

#![allow(dead_code)] // each test file uses some of it

use std::sync::Mutex;

use sql::kv::{Engine, KvError, Mode, ShardSpan, Timestamp, Transaction};
use sql::memory::MemoryEngine;

pub type Hook = Box<dyn FnOnce() + Send>;

/// Called on every read of a [`Wrapped`] transaction.
pub type ReadHook = std::sync::Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Watched {
    pub inner: MemoryEngine,
    modes: Mutex<Vec<Mode>>,
    on_wait: Mutex<Option<Hook>>,
    /// (transactions begun so far, the hook's turn, the hook)
    on_begin: Mutex<(usize, Option<(usize, Hook)>)>,
    /// (the turn whose commit's outcome is unknown, whether it commits)
    unknown_outcome: Mutex<Option<(usize, bool)>>,
    /// Every `set_deadline` of its transactions, in order.
    deadlines: std::sync::Arc<Mutex<Vec<Option<Timestamp>>>>,
    /// How far each read of its transactions moves the clock, nanoseconds
    /// ([`Watched::reads_take`]).
    read_ns: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether the next `Mode::SingleShard` transaction's reads fail
    /// ([`Watched::next_single_shard_meets_another`]).
    single_shard_meets_another: std::sync::atomic::AtomicBool,
}

impl Watched {
    pub fn modes(&self) -> Vec<Mode> {
        self.modes.lock().unwrap().clone()
    }

    pub fn clear_modes(&self) {
        self.modes.lock().unwrap().clear();
    }

    /// The deadlines given to its transactions so far, in order.
    pub fn deadlines(&self) -> Vec<Option<Timestamp>> {
        self.deadlines.lock().unwrap().clone()
    }

    /// From now on each read of its transactions moves the clock `nanos`
    /// (a slow statement, by the clock leases are measured with).
    pub fn reads_take(&self, nanos: u64) {
        self.read_ns.store(nanos, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes the next `Mode::SingleShard` transaction's reads fail
    /// retryably, as a real engine's do when another shard serves one
    /// (the gateway's routes were stale, or the shard split).
    pub fn next_single_shard_meets_another(&self) {
        self.single_shard_meets_another.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs `hook` the next time a schema change waits.
    pub fn on_wait(&self, hook: Hook) {
        *self.on_wait.lock().unwrap() = Some(hook);
    }

    /// Makes the commit of the `n`-th transaction from now fail with
    /// [`KvError::Ambiguous`], after committing if `commits`.
    pub fn commit_outcome_unknown(&self, n: usize, commits: bool) {
        let turn = self.on_begin.lock().unwrap().0 + n;
        *self.unknown_outcome.lock().unwrap() = Some((turn, commits));
    }

    /// Runs `hook` when the `n`-th transaction from now begins (before it
    /// does).
    pub fn on_begin(&self, n: usize, hook: Hook) {
        let mut on_begin = self.on_begin.lock().unwrap();
        let turn = on_begin.0 + n;
        on_begin.1 = Some((turn, hook));
    }
}

impl Engine for Watched {
    fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>, KvError> {
        let (hook, count) = {
            let mut on_begin = self.on_begin.lock().unwrap();
            on_begin.0 += 1;
            let count = on_begin.0;
            let hook = match on_begin.1.take() {
                Some((turn, hook)) if turn == count => Some(hook),
                other => {
                    on_begin.1 = other;
                    None
                }
            };
            (hook, count)
        };
        if let Some(hook) = hook {
            hook();
        }
        self.modes.lock().unwrap().push(mode);
        let (clock, read_ns) = (self.inner.clone(), self.read_ns.clone());
        let on_read: ReadHook = std::sync::Arc::new(move || {
            clock.wait(read_ns.load(std::sync::atomic::Ordering::SeqCst));
        });
        let meets_another = mode == Mode::SingleShard
            && self.single_shard_meets_another.swap(false, std::sync::atomic::Ordering::SeqCst);
        let txn = Wrapped {
            deadlines: Some(self.deadlines.clone()),
            on_read: Some(on_read),
            wounded: meets_another.then(|| std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true))),
            ..Wrapped::around(self.inner.begin(mode)?)
        };
        match *self.unknown_outcome.lock().unwrap() {
            Some((turn, commits)) if turn == count => Ok(Box::new(Wrapped { unknown_outcome: Some(commits), ..txn })),
            _ => Ok(Box::new(txn)),
        }
    }

    fn shards(&self, start: &[u8], end: &[u8]) -> Vec<ShardSpan> {
        self.inner.shards(start, end)
    }

    fn now(&self) -> Timestamp {
        self.inner.now()
    }

    fn wait(&self, nanos: u64) {
        let hook = self.on_wait.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        self.inner.wait(nanos);
    }
}

/// A transaction that passes everything to `inner`, counting point reads
/// in `gets`, logging every read in `reads`, and reporting `priority` as
/// its own (engines of tests that watch what the SQL layer asks for);
/// with `unknown_outcome`, its commit fails with [`KvError::Ambiguous`],
/// having committed if it is true ([`Watched::commit_outcome_unknown`]);
/// while `wounded` is set, its reads fail as a wounded transaction's do
/// ([`KvError::Retryable`]); `on_read` runs before each read.
pub struct Wrapped {
    pub inner: Box<dyn Transaction>,
    pub gets: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    pub reads: Option<std::sync::Arc<Mutex<Vec<Read>>>>,
    pub priority: Option<sql::kv::Priority>,
    pub unknown_outcome: Option<bool>,
    pub deadlines: Option<std::sync::Arc<Mutex<Vec<Option<Timestamp>>>>>,
    pub wounded: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    pub on_read: Option<ReadHook>,
}

/// A read a [`Wrapped`] transaction was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Get,
    GetForUpdate,
    Scan,
    ScanReverse,
}

impl Wrapped {
    /// Passes everything to `inner`.
    pub fn around(inner: Box<dyn Transaction>) -> Wrapped {
        Wrapped {
            inner,
            gets: None,
            reads: None,
            priority: None,
            unknown_outcome: None,
            deadlines: None,
            wounded: None,
            on_read: None,
        }
    }

    fn note(&self, read: Read) -> Result<(), KvError> {
        if let Some(on_read) = &self.on_read {
            on_read();
        }
        if self.wounded.as_ref().is_some_and(|w| w.load(std::sync::atomic::Ordering::SeqCst)) {
            return Err(KvError::Retryable("wounded by an older transaction (injected)".into()));
        }
        if let Some(gets) = self.gets.as_ref().filter(|_| read != Read::Scan) {
            gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        if let Some(reads) = &self.reads {
            reads.lock().unwrap().push(read);
        }
        Ok(())
    }
}

impl Transaction for Wrapped {
    fn mode(&self) -> Mode {
        self.inner.mode()
    }
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.note(Read::Get)?;
        self.inner.get(key)
    }
    fn get_for_update(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.note(Read::GetForUpdate)?;
        self.inner.get_for_update(key)
    }
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<sql::kv::Pair>, KvError> {
        self.note(Read::Scan)?;
        self.inner.scan(start, end, limit)
    }
    fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<sql::kv::Pair>, KvError> {
        self.note(Read::ScanReverse)?;
        self.inner.scan_reverse(start, end, limit)
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
        let committed = match self.unknown_outcome {
            None => return self.inner.commit(),
            Some(true) => self.inner.commit().map(|_| "committed")?,
            Some(false) => "did not commit",
        };
        Err(KvError::Ambiguous(format!("injected: no answer in time (it {committed})")))
    }
    fn rollback(self: Box<Self>) -> Result<(), KvError> {
        self.inner.rollback()
    }
    fn read_ts(&self) -> Option<Timestamp> {
        self.inner.read_ts()
    }
    fn set_deadline(&mut self, deadline: Option<Timestamp>) -> Result<(), KvError> {
        if let Some(log) = &self.deadlines {
            log.lock().unwrap().push(deadline);
        }
        self.inner.set_deadline(deadline)
    }
    fn priority(&self) -> Option<sql::kv::Priority> {
        self.priority.or(self.inner.priority())
    }
    fn savepoint(&mut self) -> Result<sql::kv::SavepointMark, KvError> {
        self.inner.savepoint()
    }
    fn rollback_to(&mut self, mark: sql::kv::SavepointMark) -> Result<(), KvError> {
        self.inner.rollback_to(mark)
    }
    fn forget_savepoints(&mut self) -> Result<(), KvError> {
        self.inner.forget_savepoints()
    }
}

/// Runs `sql` in `session`, collecting what it returns.
pub fn run(session: &mut sql::Session, sql: &str) -> Result<sql::Collected, sql::Error> {
    let mut out = sql::Collected::default();
    session.execute(sql, &mut out)?;
    Ok(out)
}

/// Like [`run`], panicking (naming the statement) on an error.
pub fn must(session: &mut sql::Session, sql: &str) -> sql::Collected {
    run(session, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The one integer a query like `SELECT count(*) ...` returns.
pub fn count(session: &mut sql::Session, sql: &str) -> i64 {
    match must(session, sql).rows.as_slice() {
        [row] => match row.as_slice() {
            [sql::Value::Int8(n)] => *n,
            other => panic!("{sql}: {other:?}"),
        },
        other => panic!("{sql}: {other:?}"),
    }
}

/// Table `name`'s descriptor as committed.
pub fn table(engine: &dyn Engine, name: &str) -> sql::catalog::TableDesc {
    let tables = sql::session::list_tables(engine).expect("tables");
    (*tables.into_iter().find(|t| t.name == name).expect("the table")).clone()
}
