//! The key-value transaction interface SQL runs on.
//!
//! `sql` owns this trait (the consumer owns the interface): the `cli`
//! binary implements it over `client` (SpanDB read-write transactions,
//! read-only transactions, snapshot and bounded-staleness reads), and tests
//! over [`crate::memory::MemoryEngine`]. Nothing here knows about the
//! network, threads or time: the implementation does.
//!
//! ```text
//!   Session ──begin(mode)──> Engine ──> Box<dyn Transaction>
//!                                         get / scan (a page) / put / delete
//!                                         commit -> commit timestamp | rollback
//! ```
//!
//! Contract, which every implementation keeps:
//! - A read-write transaction is serializable and sees its own writes;
//!   `put` and `delete` are buffered and take effect at `commit`, all at
//!   one timestamp, or not at all.
//! - A read-only transaction reads one consistent snapshot (at the
//!   timestamp its mode names, or one it picks) and refuses writes.
//! - `scan` returns at most `limit` pairs in key order; the caller pages by
//!   scanning again from just after the last key. No call returns more than
//!   `limit` pairs, so a query over a million rows holds one page.
//!   `scan_reverse` is its mirror: the last pairs first, paged by scanning
//!   again up to the last key.
//! - A read-write transaction given a deadline (`set_deadline`) neither
//!   reads nor commits at or after it (`catalog`, "Writers").
//! - Errors say whether running the whole transaction again may succeed
//!   ([`KvError::Retryable`], SQLSTATE 40001) or the commit's outcome is
//!   unknown ([`KvError::Ambiguous`]).

use crate::error::{Error, SqlState};

/// A timestamp: nanoseconds since the Unix epoch (SpanDB's TrueTime
/// timestamps).
pub type Timestamp = u64;

/// How a transaction reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serializable, externally consistent, takes locks.
    ReadWrite,
    /// Lock-free, at a timestamp the engine picks (strong: sees every
    /// commit that finished before it began).
    ReadOnly,
    /// Like `ReadOnly`, for reads the caller knows lie in one shard: the
    /// first read is linearizable (the shard's latest state, with no wait
    /// for a timestamp to close) and fixes the timestamp of the rest —
    /// Spanner's single-site read-only transaction (OSDI 2012, §4.2.2).
    /// Across shards it would not be externally consistent, hence the
    /// caller's promise; an engine fails a read another shard serves (the
    /// promise rested on stale routes, or the shard split) with
    /// [`KvError::Retryable`], and the session runs the statement again
    /// as `ReadOnly`.
    SingleShard,
    /// Lock-free, at exactly this timestamp.
    AsOf(Timestamp),
    /// Lock-free, at a timestamp no older than this many nanoseconds.
    BoundedStaleness(u64),
}

impl Mode {
    pub fn is_read_only(self) -> bool {
        !matches!(self, Mode::ReadWrite)
    }
}

/// A key-value pair.
pub type Pair = (Vec<u8>, Vec<u8>);

/// What can go wrong below SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The transaction was aborted (a conflict, a wound, a lost lock);
    /// running it again may succeed. The message says which transaction,
    /// key and timestamps.
    #[error("{0}")]
    Retryable(String),
    /// The commit may or may not have taken effect.
    #[error("{0}")]
    Ambiguous(String),
    /// The cluster could not serve the request (no leader, timeout).
    #[error("{0}")]
    Unavailable(String),
    /// The request was refused as malformed (a bug above, or a limit).
    #[error("{0}")]
    Invalid(String),
    /// A write in a read-only transaction.
    #[error("cannot write in a read-only transaction")]
    ReadOnly,
    /// A [`Transaction::put_absent`] key had a value at commit (or the
    /// engine could not check it): nothing was written.
    #[error("{0}")]
    ConditionNotMet(String),
    /// The statement was cancelled while the engine waited for an answer
    /// (a read waiting for a lock): the engine gave up waiting, and the
    /// transaction must be rolled back (it may hold a lock the read
    /// took after).
    #[error("canceling statement due to user request")]
    Cancelled,
    /// A read waited longer than the transaction's lock timeout
    /// ([`Transaction::set_lock_timeout`]); as after [`KvError::Cancelled`],
    /// the transaction must be rolled back.
    #[error("canceling statement due to lock timeout")]
    LockTimeout,
    /// A read told not to wait ([`Transaction::set_lock_no_wait`]) found
    /// its lock held by another transaction. Nothing was locked; the
    /// transaction may go on (SQL rolls it back to a savepoint, or ends
    /// it, as after any error).
    #[error("could not obtain lock on row: {0}")]
    LockNotAvailable(String),
}

impl From<KvError> for Error {
    fn from(e: KvError) -> Error {
        let state = match &e {
            KvError::Retryable(_) => SqlState::SerializationFailure,
            KvError::Ambiguous(_) => SqlState::StatementCompletionUnknown,
            KvError::Unavailable(_) => SqlState::SystemError,
            KvError::Invalid(_) => SqlState::ProgramLimitExceeded,
            KvError::ReadOnly => SqlState::ReadOnlySqlTransaction,
            // The session reruns the statement with reads, which name the
            // duplicate key; seen here only if that raced.
            KvError::ConditionNotMet(_) => SqlState::SerializationFailure,
            KvError::Cancelled => SqlState::QueryCanceled,
            KvError::LockTimeout | KvError::LockNotAvailable(_) => SqlState::LockNotAvailable,
        };
        let message = match &e {
            KvError::Retryable(m) => format!("restart transaction: {m}"),
            KvError::Ambiguous(m) => format!("the commit's outcome is unknown: {m}"),
            other => other.to_string(),
        };
        Error::new(state, message)
    }
}

/// Begins a transaction in `mode`, with `priority` if an earlier attempt
/// of the same work fixed one, and remembers the priority this one got: a
/// retry keeps the first attempt's, so wound-wait ages it.
pub fn begin_keeping_priority(
    engine: &dyn Engine,
    mode: Mode,
    priority: &mut Option<Priority>,
) -> Result<Box<dyn Transaction>, KvError> {
    let txn = match *priority {
        Some(p) => engine.begin_with_priority(mode, p)?,
        None => engine.begin(mode)?,
    };
    *priority = priority.or(txn.priority());
    Ok(txn)
}

/// How one attempt of a transaction ended ([`finish`]).
pub enum Attempt<T> {
    Committed(T, Committed),
    /// The commit found a [`Transaction::put_absent`] key taken: nothing
    /// was written (the message says which).
    KeyTaken(String),
    Failed(Error),
}

/// Commits `txn` if the work `ran` in it succeeded, else rolls it back.
pub fn finish<T>(txn: Box<dyn Transaction>, ran: Result<T, Error>) -> Attempt<T> {
    match ran {
        Ok(v) => match txn.commit() {
            Ok(c) => Attempt::Committed(v, c),
            Err(KvError::ConditionNotMet(m)) => Attempt::KeyTaken(m),
            Err(e) => Attempt::Failed(Error::from(e)),
        },
        Err(e) => {
            let _ = txn.rollback();
            Attempt::Failed(e)
        }
    }
}

/// Where a key range lives, for EXPLAIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpan {
    pub shard_id: u64,
    /// The version of the shard's range (`meta::RangeVer`).
    pub range_ver: u64,
    pub leader_server: u64,
    pub start: Vec<u8>,
    /// Empty: unbounded.
    pub end: Vec<u8>,
}

/// A read-write transaction's wound-wait priority (the older wins): a
/// retry of an aborted transaction reuses it, so it ages instead of
/// starting young, and loses to newcomers, every time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub start_ns: u64,
    pub id: u128,
}

/// How a commit went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Committed {
    pub ts: Option<Timestamp>,
    /// How long the commit was held for commit-wait (nanoseconds).
    pub commit_wait_ns: u64,
    /// Shards that took part (0 for a read-only transaction).
    pub participants: usize,
}

impl Committed {
    pub fn at(ts: Option<Timestamp>) -> Committed {
        Committed { ts, ..Committed::default() }
    }
}

/// Every pair with a key starting with `prefix`, read a page of `page`
/// pairs at a time. For small ranges only (the catalog, tests): it holds
/// them all.
pub fn scan_prefix(txn: &mut dyn Transaction, prefix: &[u8], page: usize) -> Result<Vec<Pair>, KvError> {
    let end = crate::encoding::prefix_end(prefix);
    let mut from = prefix.to_vec();
    let mut out = Vec::new();
    loop {
        let pairs = txn.scan(&from, &end, page)?;
        let full = pairs.len() == page;
        if let Some((last, _)) = pairs.last() {
            from = last.clone();
            from.push(0);
        }
        out.extend(pairs);
        if !full {
            return Ok(out);
        }
    }
}

/// Starts transactions.
pub trait Engine: Send + Sync {
    fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>, KvError>;

    /// Like `begin`, a read-write transaction with `priority` (a retry's).
    /// Engines without priorities ignore it.
    fn begin_with_priority(&self, mode: Mode, priority: Priority) -> Result<Box<dyn Transaction>, KvError> {
        let _ = priority;
        self.begin(mode)
    }

    /// The shards covering `[start, end)` (empty `end`: unbounded), for
    /// EXPLAIN. An engine without shards answers one.
    fn shards(&self, start: &[u8], end: &[u8]) -> Vec<ShardSpan>;

    /// The id of the one shard holding all of `[start, end)`, if one
    /// does: asked once per span of every read-only statement (one shard:
    /// a read at one replica's timestamp, without asking the others), so
    /// an engine with many shards answers it by a lookup.
    fn shard_spanning(&self, start: &[u8], end: &[u8]) -> Option<u64> {
        match self.shards(start, end).as_slice() {
            [s] => Some(s.shard_id),
            _ => None,
        }
    }

    /// The current time as the engine's clock sees it (nanoseconds since
    /// the Unix epoch), for `now()` and `AS OF SYSTEM TIME '-10s'`.
    fn now(&self) -> Timestamp;

    /// A clock that never steps back or jumps (nanoseconds from an
    /// arbitrary start): what timeouts and `pg_sleep` measure by, so that
    /// a step of the wall clock neither fires nor stretches them. An
    /// engine with a logical clock answers that ([`Engine::now`]).
    fn monotonic_ns(&self) -> u64 {
        self.now()
    }

    /// Returns once `nanos` have passed on the engine's clock: a schema
    /// change waiting out descriptor leases (`catalog`, "Leases"). An
    /// engine with a logical clock moves it instead of sleeping.
    fn wait(&self, nanos: u64);

    /// A hint that a shard should begin at `key` (a new table's first
    /// key, and the first key after it), so each table starts in shards of
    /// its own (CockroachDB splits at table boundaries the same way). Best
    /// effort: nothing waits on it, and an engine without shards ignores it.
    fn split_at(&self, key: &[u8]) {
        let _ = key;
    }
}

/// One transaction. See the module docs for the contract.
pub trait Transaction: Send {
    fn mode(&self) -> Mode;

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// Like `get`, for a key the transaction means to write: a read-write
    /// transaction locks it exclusively (UPDATE and DELETE read their rows
    /// so, or two of them that read a row and write it would both wait at
    /// commit, and one abort). Engines without such locks read as `get`.
    fn get_for_update(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.get(key)
    }

    /// From now on, a read of this read-write transaction that waits
    /// longer than `timeout` for its answer gives up with
    /// [`KvError::LockTimeout`] (`None`: it waits as long as the engine
    /// does). What a read waits for that long is, as a rule, a lock
    /// another transaction holds (PostgreSQL's `lock_timeout`). Engines
    /// whose reads never wait ignore it.
    fn set_lock_timeout(&mut self, timeout: Option<std::time::Duration>) {
        let _ = timeout;
    }

    /// From now on (until turned off), a read of this read-write
    /// transaction whose lock another transaction holds fails at once with
    /// [`KvError::LockNotAvailable`] instead of waiting (SQL's `NOWAIT`).
    /// Engines whose reads never wait ignore it.
    fn set_lock_no_wait(&mut self, no_wait: bool) {
        let _ = no_wait;
    }

    /// At most `limit` (> 0) pairs with keys in `[start, end)`, in order;
    /// an empty `end` is unbounded.
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError>;

    /// Like `scan`, in descending key order: the last `limit` (> 0) pairs
    /// of `[start, end)`, last first. The caller pages by scanning again
    /// up to (excluding) the last key it got. A read-write transaction
    /// locks only the span from that key to `end`.
    fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError>;

    /// Like `scan`, without locks, in a read-write transaction too: the
    /// latest committed pairs with the transaction's own writes over them
    /// (SQL's `SKIP LOCKED` reads its candidates so, then locks each row
    /// it takes). Nothing stops another transaction from changing the
    /// range meanwhile. Engines without locks scan as `scan`.
    fn scan_unlocked(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        self.scan(start, end, limit)
    }

    /// [`Transaction::scan_unlocked`] in descending key order
    /// ([`Transaction::scan_reverse`]).
    fn scan_unlocked_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        self.scan_reverse(start, end, limit)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError>;

    /// Like `put`, only if `key` has no value when the transaction
    /// commits; else `commit` fails with [`KvError::ConditionNotMet`] and
    /// writes nothing. Lets an INSERT skip reading a key it expects to be
    /// new.
    fn put_absent(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError>;

    fn delete(&mut self, key: &[u8]) -> Result<(), KvError>;

    /// Commits; says at which timestamp (a read-only transaction: its read
    /// timestamp, or `None` if it read nothing) and how.
    fn commit(self: Box<Self>) -> Result<Committed, KvError>;

    fn rollback(self: Box<Self>) -> Result<(), KvError>;

    /// The timestamp a read-only transaction reads at, once it is fixed.
    fn read_ts(&self) -> Option<Timestamp>;

    /// From now on a read-write transaction must happen before `deadline`
    /// (`None`: no longer): its reads fail and its commit fails
    /// ([`KvError::Retryable`] both) at or after it, by the engine's
    /// clock and commit timestamps. What writers promise for the leased
    /// descriptors they use (`catalog`, "Writers"). Read-only
    /// transactions refuse it ([`KvError::Invalid`]).
    fn set_deadline(&mut self, deadline: Option<Timestamp>) -> Result<(), KvError>;

    /// A read-write transaction's priority, if the engine has them.
    fn priority(&self) -> Option<Priority> {
        None
    }

    /// Marks the writes so far, for [`Transaction::rollback_to`] (SQL's
    /// SAVEPOINT). Engines whose transactions cannot go back refuse.
    fn savepoint(&mut self) -> Result<SavepointMark, KvError> {
        Err(KvError::Invalid("this transaction has no savepoints".into()))
    }

    /// Undoes every write since `mark` (marks taken after it are gone;
    /// it stays). Reads, and any locks they took, are kept.
    fn rollback_to(&mut self, mark: SavepointMark) -> Result<(), KvError> {
        let _ = mark;
        Err(KvError::Invalid("this transaction has no savepoints".into()))
    }

    /// Every savepoint is gone (released): the engine may stop keeping
    /// what it needed to go back.
    fn forget_savepoints(&mut self) -> Result<(), KvError> {
        Ok(())
    }
}

/// A place in a transaction's writes ([`Transaction::savepoint`]); what
/// it counts is the engine's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavepointMark(pub usize);
