//! SQL's transaction interface (`sql::kv`) over SpanDB's client.
//!
//! The SQL layer is synchronous and free of tokio; the client is async.
//! Each call blocks its thread until the client answers ([`wait_on`]), so
//! sessions run on threads of their own, never on the runtime's workers
//! (`spawn_blocking`, a gateway connection's thread, or plain threads).
//!
//! Modes map to the client's transactions: read-write to a locking
//! transaction (serializable, externally consistent), read-only to a
//! strong read-only transaction (single-shard: its first read
//! linearizable at the leader), `AS OF SYSTEM TIME` to a snapshot read
//! and `with_max_staleness` to a bounded-staleness read.
//!
//! # Cancelling a wait
//!
//! A read in a read-write transaction may wait at a shard leader for a
//! lock (up to `txn::limits::LOCK_WAIT_MAX`). A session's cancel flag
//! ([`ClientEngine::with_cancel`]: a CancelRequest, Ctrl-C, a client that
//! hung up) ends such a wait within [`CANCEL_CHECK_PERIOD`]: the engine
//! drops the read and answers [`KvError::Cancelled`]; the session then
//! rolls the transaction back, which releases what the read may still
//! be granted (the client remembers where it was sent). Commits are not
//! cancelled: a commit given up on would have an unknown outcome.
//!
//! A session's `lock_timeout` ([`Transaction::set_lock_timeout`]) ends a
//! read of a read-write transaction the same way once it has waited that
//! long ([`KvError::LockTimeout`], 55P03). The engine cannot tell a lock
//! wait from a slow answer (a shard electing a leader), so it ends either:
//! reads that hold no wait answer within milliseconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sql::kv::{Committed, Engine, KvError, Mode, Pair, Priority, SavepointMark, ShardSpan, Timestamp, Transaction};
use tokio::runtime::Handle;

/// How often a read waiting for its answer checks its session's cancel
/// flag (module docs, "Cancelling a wait").
pub const CANCEL_CHECK_PERIOD: Duration = Duration::from_millis(20);

/// An engine over a connected client. Clones share the client; each
/// session of a gateway has one, with its own cancel flag.
#[derive(Clone)]
pub struct ClientEngine {
    client: client::Client,
    handle: Handle,
    /// The address the client was given (for `\kv`).
    seed: String,
    /// Split at each new table's boundaries ([`Engine::split_at`]).
    split_tables: bool,
    /// Where its transactions' time goes, if asked ([`ClientEngine::with_time_spent`]).
    spent: Option<Arc<TimeSpent>>,
    /// Ends its transactions' waits for reads when set ([`ClientEngine::with_cancel`]).
    cancel: Option<Arc<AtomicBool>>,
}

/// Where the transactions of an engine's sessions spent their time,
/// summed over all of them (`spandb bench sql`'s latency breakdown).
/// Read-write transactions add their [`client::TxnTimings`] when they end
/// (committed or rolled back; a commit that fails adds its reads only);
/// read-only ones their reads.
#[derive(Default)]
pub struct TimeSpent(Mutex<Spent>);

/// A sum of [`TimeSpent`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Spent {
    /// Read-write transactions (attempts) that ended.
    pub txns: u64,
    pub rw: client::TxnTimings,
    /// Reads of read-only transactions and statements: count and time.
    pub lock_free_reads: u64,
    pub lock_free_read: Duration,
}

impl Spent {
    /// What was spent since `before` (an earlier total).
    pub fn since(&self, before: &Spent) -> Spent {
        Spent {
            txns: self.txns.saturating_sub(before.txns),
            rw: self.rw.since(&before.rw),
            lock_free_reads: self.lock_free_reads.saturating_sub(before.lock_free_reads),
            lock_free_read: self.lock_free_read.saturating_sub(before.lock_free_read),
        }
    }
}

impl TimeSpent {
    pub fn total(&self) -> Spent {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add_rw(&self, t: client::TxnTimings) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.txns += 1;
        s.rw += t;
    }

    fn add_lock_free_read(&self, took: Duration) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.lock_free_reads += 1;
        s.lock_free_read += took;
    }
}

impl ClientEngine {
    pub fn new(client: client::Client, handle: Handle, seed: String) -> ClientEngine {
        ClientEngine { client, handle, seed, split_tables: false, spent: None, cancel: None }
    }

    /// Reads of this engine's transactions stop waiting, answering
    /// [`KvError::Cancelled`], once `cancel` is set: a session's cancel
    /// flag (`sql::Session::with_cancel`), so that a cancelled statement
    /// waiting for a lock ends at once (module docs).
    pub fn with_cancel(mut self, cancel: Arc<AtomicBool>) -> ClientEngine {
        self.cancel = Some(cancel);
        self
    }

    /// Sums where its transactions' time goes into `spent`.
    pub fn with_time_spent(mut self, spent: Arc<TimeSpent>) -> ClientEngine {
        self.spent = Some(spent);
        self
    }

    /// Gives each table created through this engine shards of its own
    /// (`--split-tables`): isolation and spread for big tables, at the
    /// price of two-phase commits for every transaction that touches a
    /// table and the catalog, or two tables (BENCHMARKS.md).
    pub fn with_table_splits(mut self, on: bool) -> ClientEngine {
        self.split_tables = on;
        self
    }

    pub fn seed_addr(&self) -> String {
        self.seed.clone()
    }
}

/// Runs `fut` to completion on this thread, with `handle`'s runtime as
/// the current one (its timers and its spawned tasks). Unlike
/// `Handle::block_on`, this works on a thread that is itself running a
/// runtime: a gateway connection's thread (`pg::serve`) runs its session
/// inline, and a call that needs no round trip (a read under the leader's
/// lease, through the in-process transport) finishes without waking any
/// other thread.
///
/// `unconstrained`: on such a thread, a tokio resource that ran out of its
/// task's budget would hand its wake-up to that thread's scheduler, which
/// cannot run until this call returns, and the call would never return.
///
/// (Not `futures::executor::block_on`: that refuses to run inside another
/// executor, and sqllogictest's runner is one.)
fn wait_on<F: std::future::Future>(handle: &Handle, fut: F) -> F::Output {
    match drive(handle, fut, None, || None::<std::convert::Infallible>) {
        Ok(out) => out,
        Err(never) => match never {},
    }
}

/// Like [`wait_on`], but gives up (dropping `fut`) once `cancel` is set
/// ([`KvError::Cancelled`]) or `lock_timeout` has passed
/// ([`KvError::LockTimeout`]), checked every [`CANCEL_CHECK_PERIOD`]
/// while waiting: for reads only, whose abandoning changes nothing the
/// transaction's rollback does not undo.
fn wait_on_or_cancel<F: std::future::Future>(
    handle: &Handle,
    cancel: Option<&AtomicBool>,
    lock_timeout: Option<Duration>,
    fut: F,
) -> Result<F::Output, KvError> {
    if cancel.is_none() && lock_timeout.is_none() {
        return Ok(wait_on(handle, fut));
    }
    let asked = Instant::now();
    let give_up = || {
        if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            Some(KvError::Cancelled)
        } else if lock_timeout.is_some_and(|t| asked.elapsed() >= t) {
            Some(KvError::LockTimeout)
        } else {
            None
        }
    };
    drive(handle, fut, Some(CANCEL_CHECK_PERIOD), give_up)
}

/// Polls `fut` on this thread ([`wait_on`] says why so) until it is
/// ready, or until `give_up` says why not, asked after each poll; while
/// the future waits, the thread parks until woken, or for at most
/// `check` when given.
fn drive<F: std::future::Future, E>(
    handle: &Handle,
    fut: F,
    check: Option<Duration>,
    mut give_up: impl FnMut() -> Option<E>,
) -> Result<F::Output, E> {
    let _entered = handle.enter();
    let mut fut = std::pin::pin!(tokio::task::unconstrained(fut));
    let waker = std::task::Waker::from(Arc::new(Unparker(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(out) = std::future::Future::poll(fut.as_mut(), &mut cx) {
            return Ok(out);
        }
        if let Some(why) = give_up() {
            return Err(why);
        }
        // A wake-up before this park makes it return at once.
        match check {
            Some(period) => std::thread::park_timeout(period),
            None => std::thread::park(),
        }
    }
}

/// Wakes a thread parked in [`drive`].
struct Unparker(std::thread::Thread);

impl std::task::Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The clock of [`ClientEngine::now`]: the system's, in nanoseconds
/// since the Unix epoch.
pub fn wall_clock_ns() -> Timestamp {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The clock of [`ClientEngine`]'s `monotonic_ns`: nanoseconds since the
/// process first asked, never stepping (what sessions take
/// `statement_timeout` deadlines from, and so what the gateway's watchdog
/// fires by).
pub fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

fn kv_error(e: client::Error) -> KvError {
    match e {
        client::Error::Aborted(m) => KvError::Retryable(m),
        client::Error::Ambiguous(m) => KvError::Ambiguous(m),
        client::Error::InvalidArgument(m) => KvError::Invalid(m),
        client::Error::ConditionNotMet(m) => KvError::ConditionNotMet(m),
        client::Error::LockNotAvailable(m) => KvError::LockNotAvailable(m),
        e @ (client::Error::Unavailable(_)
        | client::Error::Connect(_)
        | client::Error::SnapshotTooOld { .. }
        | client::Error::PermissionDenied(_)) => KvError::Unavailable(e.to_string()),
    }
}

impl Engine for ClientEngine {
    fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>, KvError> {
        // Whatever the client starts, it starts on its own runtime.
        let _entered = self.handle.enter();
        let (handle, spent) = (self.handle.clone(), self.spent.clone());
        let cancel = self.cancel.clone();
        let read_only = |txn| {
            Box::new(ReadOnly { txn, mode, handle: handle.clone(), spent: spent.clone(), cancel: cancel.clone() })
        };
        Ok(match mode {
            Mode::ReadWrite => Box::new(ReadWrite::new(self.client.begin(), handle, spent, cancel)),
            Mode::ReadOnly => read_only(self.client.read_only()),
            Mode::SingleShard => read_only(self.client.read_only_single_shard()),
            Mode::AsOf(ts) => read_only(self.client.snapshot(truetime::Timestamp::from_nanos(ts))),
            Mode::BoundedStaleness(ns) => read_only(self.client.bounded_staleness(Duration::from_nanos(ns))),
        })
    }

    fn begin_with_priority(&self, mode: Mode, priority: Priority) -> Result<Box<dyn Transaction>, KvError> {
        let _entered = self.handle.enter();
        match mode {
            Mode::ReadWrite => {
                let priority =
                    meta::Priority::new(truetime::Timestamp::from_nanos(priority.start_ns), meta::TxnId(priority.id));
                let txn = self.client.begin_with_priority(priority);
                let (handle, spent, cancel) = (self.handle.clone(), self.spent.clone(), self.cancel.clone());
                Ok(Box::new(ReadWrite::new(txn, handle, spent, cancel)))
            }
            other => self.begin(other),
        }
    }

    fn shards(&self, start: &[u8], end: &[u8]) -> Vec<ShardSpan> {
        self.client
            .shards_covering(start, end)
            .into_iter()
            .map(|(d, leader)| ShardSpan {
                shard_id: d.shard_id,
                range_ver: d.range_ver,
                leader_server: leader.map_or(0, |s| s.0),
                start: d.start_key,
                end: d.end_key,
            })
            .collect()
    }

    fn shard_spanning(&self, start: &[u8], end: &[u8]) -> Option<u64> {
        self.client.shard_spanning(start, end).map(|id| id.0)
    }

    /// Splits there (`Admin.SplitShard`); a refusal (the key begins a
    /// shard already) leaves the shards as they are.
    fn split_at(&self, key: &[u8]) {
        if !self.split_tables {
            return;
        }
        if let Err(e) = wait_on(&self.handle, self.client.split_at(key)) {
            tracing::debug!("no split at a new table's boundary: {e}");
        }
    }

    fn now(&self) -> Timestamp {
        wall_clock_ns()
    }

    fn monotonic_ns(&self) -> u64 {
        monotonic_ns()
    }

    /// Sessions run on threads of their own (module docs), so this sleeps one.
    fn wait(&self, nanos: u64) {
        std::thread::sleep(Duration::from_nanos(nanos));
    }
}

struct ReadWrite {
    /// None once committed or rolled back.
    txn: Option<client::Txn>,
    handle: Handle,
    spent: Option<Arc<TimeSpent>>,
    cancel: Option<Arc<AtomicBool>>,
    /// How long one read may wait ([`Transaction::set_lock_timeout`]).
    lock_timeout: Option<Duration>,
    /// The transaction's savepoints, by [`SavepointMark`].
    savepoints: Vec<client::Savepoint>,
}

impl ReadWrite {
    fn new(txn: client::Txn, handle: Handle, spent: Option<Arc<TimeSpent>>, cancel: Option<Arc<AtomicBool>>) -> Self {
        ReadWrite { txn: Some(txn), handle, spent, cancel, lock_timeout: None, savepoints: Vec::new() }
    }

    fn txn(&mut self) -> Result<&mut client::Txn, KvError> {
        self.txn.as_mut().ok_or_else(|| KvError::Invalid("the transaction has ended".into()))
    }
}

impl Drop for ReadWrite {
    fn drop(&mut self) {
        // The client's Txn releases its locks on drop, on the runtime.
        let _guard = self.handle.enter();
        self.txn.take();
    }
}

impl Transaction for ReadWrite {
    fn mode(&self) -> Mode {
        Mode::ReadWrite
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let (handle, cancel, timeout) = (self.handle.clone(), self.cancel.clone(), self.lock_timeout);
        let txn = self.txn()?;
        wait_on_or_cancel(&handle, cancel.as_deref(), timeout, txn.get(key))?.map_err(kv_error)
    }

    fn set_lock_timeout(&mut self, timeout: Option<Duration>) {
        self.lock_timeout = timeout;
    }

    fn set_lock_no_wait(&mut self, no_wait: bool) {
        if let Ok(txn) = self.txn() {
            txn.set_no_wait(no_wait);
        }
    }

    fn get_for_update(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let (handle, cancel, timeout) = (self.handle.clone(), self.cancel.clone(), self.lock_timeout);
        let txn = self.txn()?;
        wait_on_or_cancel(&handle, cancel.as_deref(), timeout, txn.get_for_update(key))?.map_err(kv_error)
    }

    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        let (handle, cancel, timeout) = (self.handle.clone(), self.cancel.clone(), self.lock_timeout);
        let txn = self.txn()?;
        let scan = txn.scan(start, end, limit);
        let pairs = wait_on_or_cancel(&handle, cancel.as_deref(), timeout, scan)?.map_err(kv_error)?;
        Ok(pairs.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }

    fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        let (handle, cancel, timeout) = (self.handle.clone(), self.cancel.clone(), self.lock_timeout);
        let txn = self.txn()?;
        let scan = txn.scan_reverse(start, end, limit);
        let pairs = wait_on_or_cancel(&handle, cancel.as_deref(), timeout, scan)?.map_err(kv_error)?;
        Ok(pairs.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }

    fn scan_unlocked(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        let (handle, cancel) = (self.handle.clone(), self.cancel.clone());
        let txn = self.txn()?;
        let scan = txn.scan_unlocked(start, end, limit);
        let pairs = wait_on_or_cancel(&handle, cancel.as_deref(), None, scan)?.map_err(kv_error)?;
        Ok(pairs.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }

    fn scan_unlocked_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        let (handle, cancel) = (self.handle.clone(), self.cancel.clone());
        let txn = self.txn()?;
        let scan = txn.scan_unlocked_reverse(start, end, limit);
        let pairs = wait_on_or_cancel(&handle, cancel.as_deref(), None, scan)?.map_err(kv_error)?;
        Ok(pairs.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.txn()?.put(key, value);
        Ok(())
    }

    fn put_absent(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.txn()?.put_absent(key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), KvError> {
        self.txn()?.delete(key);
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<Committed, KvError> {
        let txn = self.txn.take().ok_or_else(|| KvError::Invalid("the transaction has ended".into()))?;
        let before = txn.timings();
        let committed = wait_on(&self.handle, txn.commit_detailed());
        if let Some(spent) = &self.spent {
            spent.add_rw(committed.as_ref().map_or(before, |info| info.timings));
        }
        let info = committed.map_err(kv_error)?;
        Ok(Committed {
            ts: Some(info.commit_ts.as_nanos()),
            commit_wait_ns: info.commit_wait.as_nanos() as u64,
            participants: info.participants,
        })
    }

    fn rollback(mut self: Box<Self>) -> Result<(), KvError> {
        match self.txn.take() {
            Some(txn) => {
                if let Some(spent) = &self.spent {
                    spent.add_rw(txn.timings());
                }
                wait_on(&self.handle, txn.rollback()).map_err(kv_error)
            }
            None => Ok(()),
        }
    }

    fn read_ts(&self) -> Option<Timestamp> {
        None
    }

    fn set_deadline(&mut self, deadline: Option<Timestamp>) -> Result<(), KvError> {
        self.txn()?.set_deadline(deadline.map(truetime::Timestamp::from_nanos));
        Ok(())
    }

    fn priority(&self) -> Option<Priority> {
        let p = self.txn.as_ref()?.priority();
        Some(Priority { start_ns: p.start_ts.as_nanos(), id: p.txn.0 })
    }

    fn savepoint(&mut self) -> Result<SavepointMark, KvError> {
        let savepoint = self.txn()?.savepoint();
        self.savepoints.push(savepoint);
        Ok(SavepointMark(self.savepoints.len() - 1))
    }

    fn rollback_to(&mut self, mark: SavepointMark) -> Result<(), KvError> {
        let savepoint =
            *self.savepoints.get(mark.0).ok_or_else(|| KvError::Invalid(format!("no savepoint {mark:?}")))?;
        self.txn()?.rollback_to(savepoint);
        self.savepoints.truncate(mark.0 + 1);
        Ok(())
    }

    fn forget_savepoints(&mut self) -> Result<(), KvError> {
        self.txn()?.forget_savepoints();
        self.savepoints.clear();
        Ok(())
    }
}

struct ReadOnly {
    txn: client::ReadOnlyTxn,
    mode: Mode,
    handle: Handle,
    spent: Option<Arc<TimeSpent>>,
    cancel: Option<Arc<AtomicBool>>,
}

impl ReadOnly {
    /// Notes a read that began at `asked` (when the engine sums time).
    fn note_read(&self, asked: Instant) {
        if let Some(spent) = &self.spent {
            spent.add_lock_free_read(asked.elapsed());
        }
    }
}

impl Transaction for ReadOnly {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let asked = Instant::now();
        let value = wait_on_or_cancel(&self.handle, self.cancel.as_deref(), None, self.txn.get(key))?.map_err(kv_error);
        self.note_read(asked);
        value
    }

    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        let asked = Instant::now();
        let scan = self.txn.scan(start, end, limit);
        let pairs = wait_on_or_cancel(&self.handle, self.cancel.as_deref(), None, scan)?.map_err(kv_error);
        self.note_read(asked);
        Ok(pairs?.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }

    fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        let asked = Instant::now();
        let scan = self.txn.scan_reverse(start, end, limit);
        let pairs = wait_on_or_cancel(&self.handle, self.cancel.as_deref(), None, scan)?.map_err(kv_error);
        self.note_read(asked);
        Ok(pairs?.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }

    fn put(&mut self, _key: &[u8], _value: &[u8]) -> Result<(), KvError> {
        Err(KvError::ReadOnly)
    }

    fn put_absent(&mut self, _key: &[u8], _value: &[u8]) -> Result<(), KvError> {
        Err(KvError::ReadOnly)
    }

    fn delete(&mut self, _key: &[u8]) -> Result<(), KvError> {
        Err(KvError::ReadOnly)
    }

    fn commit(self: Box<Self>) -> Result<Committed, KvError> {
        Ok(Committed::at(self.txn.read_ts().map(|t| t.as_nanos())))
    }

    fn rollback(self: Box<Self>) -> Result<(), KvError> {
        Ok(())
    }

    fn read_ts(&self) -> Option<Timestamp> {
        self.txn.read_ts().map(|t| t.as_nanos())
    }

    fn set_deadline(&mut self, _: Option<Timestamp>) -> Result<(), KvError> {
        Err(KvError::Invalid("a read-only transaction has no deadline".into()))
    }

    /// Nothing to go back to: a read-only transaction writes nothing.
    fn savepoint(&mut self) -> Result<SavepointMark, KvError> {
        Ok(SavepointMark(0))
    }

    fn rollback_to(&mut self, _: SavepointMark) -> Result<(), KvError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a call waited on from a thread that runs a runtime of its own
    /// (a gateway connection's) finishes, even when it uses up a tokio
    /// task's budget: unconstrained, the resources it polls never hand
    /// their wake-up to that thread's blocked scheduler. Found by
    /// `pgbench -i` hanging in the middle of its COPY.
    #[test]
    fn a_long_call_from_a_connection_thread_finishes() {
        let client_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let handle = client_runtime.handle().clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let own = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            own.block_on(async move {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                for i in 0..10_000u32 {
                    tx.send(i).unwrap();
                }
                drop(tx);
                // Each receive takes from the budget (128 per task poll).
                let sum = wait_on(&handle, async move {
                    let mut sum = 0u64;
                    while let Some(i) = rx.recv().await {
                        sum += u64::from(i);
                    }
                    sum
                });
                done_tx.send(sum).unwrap();
            });
        });
        let sum = done_rx.recv_timeout(Duration::from_secs(60)).expect("the call never finished");
        assert_eq!(sum, (0..10_000u64).sum::<u64>());
    }
}
