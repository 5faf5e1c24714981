//! Advisory locks: PostgreSQL's `pg_advisory_lock` family, held across the
//! cluster.
//!
//! Migration tools (golang-migrate, Prisma, Rails, Flyway, sqlx) take one
//! before they change a schema, so that two deploys do not migrate at
//! once; applications use them as named mutexes. A gateway-local lock
//! table would let two clients of two gateways both hold one, so a lock
//! is a row of a system table, written in a transaction of its own
//! (PostgreSQL's session-level locks outlive the transaction that took
//! them, and a rollback does not give them back):
//!
//! ```text
//!   SELECT pg_advisory_lock(42)       session 7 (gateway A)
//!     /Table/5/1/1/42 = {holders: [{owner: 7, exclusive, until: now + 20 s}]}
//!   SELECT pg_try_advisory_lock(42)   session 9 (gateway B): false
//!   (A's renewer, every 4 s)          until: now + 20 s
//!   SELECT pg_advisory_unlock(42)     session 7: the row deleted
//!   SELECT pg_advisory_lock(42)       session 9, polling: taken
//! ```
//!
//! A holder's entry carries a lease ([`limits::ADVISORY_LEASE_NS`]); the
//! gateway renews the entries of its sessions' locks (its
//! [`Registry`]: [`renew`], every [`limits::ADVISORY_RENEW_NS`]), and an
//! entry whose lease ran out is anyone's: a gateway that stopped (or lost
//! the cluster) frees its locks that long after. A session gives its
//! locks back when it unlocks them, when it ends, and, for the
//! transaction-level ones (`pg_advisory_xact_lock`), when its
//! transaction ends. `pg_advisory_lock` waits by polling (cancellable,
//! 57014); two sessions waiting for each other's locks wait until one
//! is cancelled (PostgreSQL would find the deadlock).
//!
//! Invariants:
//! - An exclusive holder's entry is the only unexpired one of its lock,
//!   and shared holders' entries are only beside other shared ones: an
//!   entry is added only in a transaction that read the lock's row for
//!   update and found no conflicting unexpired entry.
//! - A session counts its holds in memory (PostgreSQL's locks nest:
//!   locked twice, unlocked twice); the row has one entry per holder and
//!   mode, removed when the session's count of that mode reaches zero.
//! - A session trusts its count of a lock only while the lease it last
//!   wrote is more than half left; after that, locking it again reads the
//!   row (a gateway cut off from the cluster cannot renew, and another
//!   may have taken the lock over).
//! - A statement that took a hold is not run again on a retryable error
//!   (the session's implicit retries): it would count the hold twice. It
//!   fails with 40001, holding what it took, as a PostgreSQL statement
//!   failing after `pg_advisory_lock` does.
//! - Time is the engine's (`Engine::now`), and the lease is far longer
//!   than clocks differ: a lease a gateway renews does not look expired
//!   to another.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::encoding::{self, Direction};
use crate::error::{Error, Result, SqlState};
use crate::kv::{self, Attempt, Engine, Mode, Transaction};
use crate::limits;
use crate::sql_err;
use crate::types::Value;

use crate::keyspace::LOCKS_TABLE;

/// A lock's name. PostgreSQL keeps the one-`bigint` form and the
/// two-`int` form apart: `pg_advisory_lock(1)` and `pg_advisory_lock(0, 1)`
/// are different locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockId {
    /// Named by two ints (`(a << 32) | b` in `key`).
    pub pair: bool,
    pub key: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    Exclusive,
    Shared,
}

/// A holder's entry in a lock's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    owner: u64,
    exclusive: bool,
    until_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Row {
    holders: Vec<Holder>,
}

/// How many times a session holds a lock in one mode, and what it knows
/// of its entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    session: u32,
    /// Held until the transaction ends.
    xact: u32,
    /// When the entry's lease ends, as last written by this gateway.
    until_ns: u64,
    /// Which taking of the lock this is ([`Registry::next_generation`]):
    /// a renewal that found an earlier one's entry gone must not drop a
    /// later one's counts.
    generation: u64,
}

impl Counts {
    fn held(&self) -> bool {
        self.session + self.xact > 0
    }
}

/// The locks a gateway's sessions hold: what its renewer renews. One per
/// gateway (shared by its sessions), or one per session.
#[derive(Debug, Default)]
pub struct Registry {
    held: Mutex<BTreeMap<(u64, LockId, LockMode), Counts>>,
    next_generation: std::sync::atomic::AtomicU64,
}

impl Registry {
    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<(u64, LockId, LockMode), Counts>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any session holds a lock (the renewer has nothing to do).
    pub fn is_empty(&self) -> bool {
        self.held().is_empty()
    }
}

/// What ends a wait for an advisory lock: the session's cancel flag
/// (57014) and its `lock_timeout` (55P03), measured on the engine's clock.
#[derive(Clone, Copy, Default)]
pub struct Wait<'a> {
    pub cancel: Option<&'a AtomicBool>,
    pub lock_timeout: Option<std::time::Duration>,
}

/// One session's advisory locks: its owner id (random, so unique across
/// the cluster's sessions), its gateway's registry, the engine.
pub struct SessionLocks {
    owner: u64,
    registry: Arc<Registry>,
    engine: Arc<dyn Engine>,
    /// Holds taken so far (a statement that took one is not run again
    /// on a retryable error: the hold would count twice).
    taken: std::sync::atomic::AtomicU64,
    /// Transaction-level holds now held (none: a transaction's end has
    /// nothing to give back).
    xact_held: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SessionLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLocks").field("owner", &self.owner).finish()
    }
}

/// Whether `name` is one of the advisory lock functions.
pub fn is_function(name: &str) -> bool {
    name.starts_with("pg_advisory_") || name.starts_with("pg_try_advisory_")
}

/// What each of the functions does: (mode, transaction-level, waits).
fn kind(name: &str) -> Option<(LockMode, bool, bool)> {
    let shared = name.ends_with("_shared");
    let mode = if shared { LockMode::Shared } else { LockMode::Exclusive };
    let base = name.strip_suffix("_shared").unwrap_or(name);
    Some(match base {
        "pg_advisory_lock" => (mode, false, true),
        "pg_try_advisory_lock" => (mode, false, false),
        "pg_advisory_xact_lock" => (mode, true, true),
        "pg_try_advisory_xact_lock" => (mode, true, false),
        _ => return None,
    })
}

impl SessionLocks {
    pub fn new(engine: Arc<dyn Engine>, registry: Arc<Registry>) -> SessionLocks {
        SessionLocks {
            owner: rand::random(),
            registry,
            engine,
            taken: Default::default(),
            xact_held: Default::default(),
        }
    }

    /// How many holds the session has taken so far.
    pub fn holds_taken(&self) -> u64 {
        self.taken.load(Ordering::SeqCst)
    }

    /// Calls advisory function `name` (strict: a NULL argument gives
    /// NULL and takes nothing). `wait` bounds a wait for the lock.
    pub fn call(&self, name: &str, args: &[Value], wait: Wait<'_>) -> Result<Value> {
        if args.iter().any(Value::is_null) {
            return Ok(Value::Null);
        }
        if name == "pg_advisory_unlock_all" {
            self.unlock_all()?;
            return Ok(Value::Text(String::new()));
        }
        let id = match args {
            [key] => LockId { pair: false, key: int(key)? },
            [a, b] => LockId { pair: true, key: (int(a)? << 32) | (int(b)? & 0xFFFF_FFFF) },
            _ => return sql_err!(UndefinedFunction, "function {name} takes one bigint or two integers"),
        };
        if let Some(base) = name.strip_prefix("pg_advisory_unlock") {
            let mode = if base == "_shared" { LockMode::Shared } else { LockMode::Exclusive };
            return self.unlock(id, mode).map(Value::Bool);
        }
        let Some((mode, xact, waits)) = kind(name) else {
            return sql_err!(UndefinedFunction, "function {name} does not exist");
        };
        let taken = self.lock(id, mode, xact, waits, wait)?;
        Ok(if waits { Value::Text(String::new()) } else { Value::Bool(taken) })
    }

    /// Takes `id` in `mode`, waiting if `waits`; whether it was taken.
    fn lock(&self, id: LockId, mode: LockMode, xact: bool, waits: bool, wait: Wait<'_>) -> Result<bool> {
        let slot = (self.owner, id, mode);
        // Held, with a lease well ahead: nested, no I/O. A lease near its
        // end (its renewals failing) is checked, and renewed, by taking
        // the lock again: the entry may have been taken over.
        let now_ns = self.engine.now();
        let trusted = self
            .registry
            .held()
            .get(&slot)
            .is_some_and(|c| c.held() && c.until_ns > now_ns.saturating_add(limits::ADVISORY_LEASE_NS / 2));
        if !trusted {
            let mut pause = limits::ADVISORY_POLL_MIN_NS;
            // On the monotonic clock, as every timeout (`Engine::monotonic_ns`).
            let started = self.engine.monotonic_ns();
            let give_up_at =
                wait.lock_timeout.map(|t| started.saturating_add(t.as_nanos().min(u128::from(u64::MAX)) as u64));
            while !take(self.engine.as_ref(), self.owner, id, mode)? {
                if !waits {
                    return Ok(false);
                }
                if wait.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                    return sql_err!(QueryCanceled, "canceling statement due to user request");
                }
                if give_up_at.is_some_and(|at| self.engine.monotonic_ns() >= at) {
                    return sql_err!(LockNotAvailable, "canceling statement due to lock timeout");
                }
                self.engine.wait(pause);
                pause = (pause * 2).min(limits::ADVISORY_POLL_MAX_NS);
            }
        }
        let generation = self.registry.next_generation.fetch_add(1, Ordering::SeqCst);
        let mut registry = self.registry.held();
        let counts = registry.entry(slot).or_insert(Counts { generation, ..Counts::default() });
        if !trusted {
            counts.until_ns = now_ns + limits::ADVISORY_LEASE_NS;
        }
        if xact {
            counts.xact += 1;
            self.xact_held.fetch_add(1, Ordering::SeqCst);
        } else {
            counts.session += 1;
        }
        self.taken.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// Gives back one session-level hold of `id` in `mode`; false if the
    /// session held none (PostgreSQL warns, and returns false).
    fn unlock(&self, id: LockId, mode: LockMode) -> Result<bool> {
        let slot = (self.owner, id, mode);
        let release = {
            let mut registry = self.registry.held();
            let Some(counts) = registry.get_mut(&slot).filter(|c| c.session > 0) else { return Ok(false) };
            counts.session -= 1;
            let done = !counts.held();
            if done {
                registry.remove(&slot);
            }
            done
        };
        if release {
            give_back(self.engine.as_ref(), self.owner, &[(id, mode)])?;
        }
        Ok(true)
    }

    /// `pg_advisory_unlock_all()`: every session-level hold.
    pub fn unlock_all(&self) -> Result<()> {
        self.release(|c| c.session = 0)
    }

    /// The transaction ended (or failed): its transaction-level holds go.
    pub fn end_transaction(&self) -> Result<()> {
        if self.xact_held.swap(0, Ordering::SeqCst) == 0 {
            return Ok(());
        }
        self.release(|c| c.xact = 0)
    }

    /// The session ended: every hold goes.
    pub fn end_session(&self) -> Result<()> {
        self.xact_held.store(0, Ordering::SeqCst);
        self.release(|c| {
            c.session = 0;
            c.xact = 0;
        })
    }

    /// Applies `change` to each of the session's counts and gives back
    /// the locks it no longer holds.
    fn release(&self, change: impl Fn(&mut Counts)) -> Result<()> {
        let released: Vec<(LockId, LockMode)> = {
            let mut registry = self.registry.held();
            let mut released = Vec::new();
            registry.retain(|&(owner, id, mode), counts| {
                if owner != self.owner {
                    return true;
                }
                change(counts);
                let keep = counts.held();
                if !keep {
                    released.push((id, mode));
                }
                keep
            });
            released
        };
        if released.is_empty() {
            return Ok(());
        }
        give_back(self.engine.as_ref(), self.owner, &released)
    }
}

fn int(v: &Value) -> Result<i64> {
    v.as_i64().ok_or_else(|| Error::new(SqlState::DatatypeMismatch, "an advisory lock's key is an integer"))
}

fn lock_key(id: LockId) -> Vec<u8> {
    let mut key = encoding::index_prefix(LOCKS_TABLE, 1);
    encoding::encode_key_value(&mut key, &Value::Int8(if id.pair { 2 } else { 1 }), Direction::Asc);
    encoding::encode_key_value(&mut key, &Value::Int8(id.key), Direction::Asc);
    key
}

fn read(txn: &mut dyn Transaction, key: &[u8], for_update: bool) -> Result<Row> {
    let bytes = if for_update { txn.get_for_update(key)? } else { txn.get(key)? };
    match bytes {
        None => Ok(Row::default()),
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::new(SqlState::InternalError, format!("corrupt advisory lock row: {e}"))),
    }
}

fn write(txn: &mut dyn Transaction, key: &[u8], row: &Row) -> Result<()> {
    if row.holders.is_empty() {
        txn.delete(key)?;
    } else {
        let bytes = serde_json::to_vec(row).map_err(|e| Error::new(SqlState::InternalError, e.to_string()))?;
        txn.put(key, &bytes)?;
    }
    Ok(())
}

/// Whether a holder other than `owner` keeps `owner` from taking the lock
/// in `mode` at `now_ns`.
fn conflicts(row: &Row, owner: u64, mode: LockMode, now_ns: u64) -> bool {
    row.holders.iter().any(|h| h.owner != owner && h.until_ns > now_ns && (h.exclusive || mode == LockMode::Exclusive))
}

/// One attempt to take `id` for `owner`: a lock-free look first (a
/// waiting session locks nothing while the lock is taken), then a
/// transaction that reads the row for update and adds the entry. False
/// if another holds it (or the attempts kept conflicting).
fn take(engine: &dyn Engine, owner: u64, id: LockId, mode: LockMode) -> Result<bool> {
    let key = lock_key(id);
    let now_ns = engine.now();
    let mut look = engine.begin(Mode::ReadOnly)?;
    let row = read(look.as_mut(), &key, false);
    let _ = look.rollback();
    if conflicts(&row?, owner, mode, now_ns) {
        return Ok(false);
    }
    for _ in 0..limits::ADVISORY_ATTEMPTS_MAX {
        let now_ns = engine.now();
        let mut txn = engine.begin(Mode::ReadWrite)?;
        let ran = read(txn.as_mut(), &key, true).and_then(|mut row| {
            if conflicts(&row, owner, mode, now_ns) {
                return Ok(false);
            }
            let exclusive = mode == LockMode::Exclusive;
            row.holders.retain(|h| h.until_ns > now_ns && !(h.owner == owner && h.exclusive == exclusive));
            row.holders.push(Holder { owner, exclusive, until_ns: now_ns + limits::ADVISORY_LEASE_NS });
            write(txn.as_mut(), &key, &row).map(|()| true)
        });
        if matches!(ran, Ok(false)) {
            let _ = txn.rollback();
            return Ok(false);
        }
        match kv::finish(txn, ran) {
            Attempt::Committed(taken, _) => return Ok(taken),
            Attempt::Failed(e) if e.is_retryable() => continue,
            // The entry may or may not be there: the row says which.
            Attempt::Failed(e) if e.state == SqlState::StatementCompletionUnknown => {
                let mut look = engine.begin(Mode::ReadOnly)?;
                let row = read(look.as_mut(), &key, false);
                let _ = look.rollback();
                let exclusive = mode == LockMode::Exclusive;
                return Ok(row?.holders.iter().any(|h| h.owner == owner && h.exclusive == exclusive));
            }
            Attempt::Failed(e) => return Err(e),
            Attempt::KeyTaken(m) => return Err(Error::new(SqlState::InternalError, m)),
        }
    }
    Ok(false)
}

/// Removes `owner`'s entries for `locks`, in one transaction (retried
/// if it conflicts; an entry left behind expires with its lease).
fn give_back(engine: &dyn Engine, owner: u64, locks: &[(LockId, LockMode)]) -> Result<()> {
    let mut last = None;
    for _ in 0..limits::ADVISORY_ATTEMPTS_MAX {
        let mut txn = engine.begin(Mode::ReadWrite)?;
        let ran = locks.iter().try_for_each(|&(id, mode)| {
            let key = lock_key(id);
            let mut row = read(txn.as_mut(), &key, true)?;
            let exclusive = mode == LockMode::Exclusive;
            row.holders.retain(|h| !(h.owner == owner && h.exclusive == exclusive));
            write(txn.as_mut(), &key, &row)
        });
        match kv::finish(txn, ran) {
            Attempt::Committed((), _) => return Ok(()),
            Attempt::Failed(e) if e.is_retryable() => last = Some(e),
            Attempt::Failed(e) => return Err(e),
            Attempt::KeyTaken(m) => return Err(Error::new(SqlState::InternalError, m)),
        }
    }
    Err(last.unwrap_or_else(|| Error::new(SqlState::InternalError, "advisory unlock did not run")))
}

/// Renews the leases of every lock `registry`'s sessions hold, in one
/// transaction (tried again if it conflicts with a take or an unlock);
/// returns how many holds were lost (their entries were taken over after
/// their leases ran out: the sessions no longer hold them, and an unlock
/// of one returns false).
pub fn renew(engine: &dyn Engine, registry: &Registry) -> Result<usize> {
    let held: Vec<((u64, LockId, LockMode), u64)> =
        registry.held().iter().map(|(slot, counts)| (*slot, counts.generation)).collect();
    if held.is_empty() {
        return Ok(0);
    }
    let mut by_lock: BTreeMap<LockId, Vec<(u64, LockMode)>> = BTreeMap::new();
    for ((owner, id, mode), _) in &held {
        by_lock.entry(*id).or_default().push((*owner, *mode));
    }
    let mut attempts = 0;
    let (lost, until_ns) = loop {
        attempts += 1;
        let now_ns = engine.now();
        let until_ns = now_ns + limits::ADVISORY_LEASE_NS;
        let mut txn = engine.begin(Mode::ReadWrite)?;
        let mut lost = Vec::new();
        let ran = by_lock.iter().try_for_each(|(&id, holders)| {
            let key = lock_key(id);
            let mut row = read(txn.as_mut(), &key, true)?;
            for &(owner, mode) in holders {
                let exclusive = mode == LockMode::Exclusive;
                // An entry still there, expired or not, was taken over by
                // nobody: a take removes the expired entries it passes.
                match row.holders.iter_mut().find(|h| h.owner == owner && h.exclusive == exclusive) {
                    Some(h) => h.until_ns = until_ns,
                    None => lost.push((owner, id, mode)),
                }
            }
            write(txn.as_mut(), &key, &row)
        });
        match kv::finish(txn, ran) {
            Attempt::Committed((), _) => break (lost, until_ns),
            Attempt::Failed(e) if e.is_retryable() && attempts < limits::ADVISORY_ATTEMPTS_MAX => continue,
            Attempt::Failed(e) => return Err(e),
            Attempt::KeyTaken(m) => return Err(Error::new(SqlState::InternalError, m)),
        }
    };
    // Each slot as it was when read: one unlocked and taken again since
    // is another taking of the lock (another generation), left alone.
    let mut registry = registry.held();
    for (slot, generation) in held {
        let Some(counts) = registry.get_mut(&slot).filter(|c| c.generation == generation) else { continue };
        if lost.contains(&slot) {
            registry.remove(&slot);
        } else {
            counts.until_ns = until_ns;
        }
    }
    Ok(lost.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryEngine;

    fn call(locks: &SessionLocks, name: &str, args: &[i64]) -> Value {
        let args: Vec<Value> = args.iter().map(|a| Value::Int8(*a)).collect();
        locks.call(name, &args, Wait::default()).unwrap()
    }

    /// Goal: a lock held by one session is refused to another, whatever
    /// gateway (registry) each is on, until it is unlocked as many times
    /// as it was locked; the two name forms are different locks; shared
    /// locks share. Method: two sessions on two registries of one engine.
    #[test]
    fn locks_exclude_across_gateways_and_nest() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let a = SessionLocks::new(engine.clone(), Arc::default());
        let b = SessionLocks::new(engine.clone(), Arc::default());
        assert_eq!(call(&a, "pg_try_advisory_lock", &[42]), Value::Bool(true));
        assert_eq!(call(&a, "pg_advisory_lock", &[42]), Value::Text(String::new()));
        assert_eq!(call(&b, "pg_try_advisory_lock", &[42]), Value::Bool(false));
        assert_eq!(call(&b, "pg_try_advisory_lock_shared", &[42]), Value::Bool(false));
        assert_eq!(call(&b, "pg_try_advisory_lock", &[0, 42]), Value::Bool(true), "the (int, int) form");
        assert_eq!(call(&a, "pg_advisory_unlock", &[42]), Value::Bool(true));
        assert_eq!(call(&b, "pg_try_advisory_lock", &[42]), Value::Bool(false), "locked twice, unlocked once");
        assert_eq!(call(&a, "pg_advisory_unlock", &[42]), Value::Bool(true));
        assert_eq!(call(&a, "pg_advisory_unlock", &[42]), Value::Bool(false), "not held any more");
        assert_eq!(call(&b, "pg_try_advisory_lock_shared", &[42]), Value::Bool(true));
        assert_eq!(call(&a, "pg_try_advisory_lock_shared", &[42]), Value::Bool(true), "shared with shared");
        assert_eq!(call(&a, "pg_try_advisory_lock", &[42]), Value::Bool(false), "not exclusive beside b's share");
        assert_eq!(a.call("pg_try_advisory_lock", &[Value::Null], Wait::default()).unwrap(), Value::Null);
    }

    /// Goal: a session's ending, its unlock_all, and (for transaction-
    /// level locks) its transaction's end give its locks back; a lease
    /// nobody renews runs out, and a waiting session then takes the lock.
    /// Method: the in-memory engine's logical clock moves as waits wait.
    #[test]
    fn locks_end_with_sessions_transactions_and_leases() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let a = SessionLocks::new(engine.clone(), Arc::default());
        let b = SessionLocks::new(engine.clone(), Arc::default());
        call(&a, "pg_advisory_lock", &[1]);
        call(&a, "pg_advisory_lock", &[2]);
        call(&a, "pg_advisory_xact_lock", &[3]);
        a.end_transaction().unwrap();
        assert_eq!(call(&b, "pg_try_advisory_lock", &[3]), Value::Bool(true), "the transaction ended");
        assert_eq!(call(&b, "pg_try_advisory_lock", &[1]), Value::Bool(false));
        a.unlock_all().unwrap();
        assert_eq!(call(&b, "pg_try_advisory_lock", &[1]), Value::Bool(true));
        assert_eq!(call(&a, "pg_try_advisory_lock", &[4]), Value::Bool(true));
        a.end_session().unwrap();
        assert_eq!(call(&b, "pg_try_advisory_lock", &[4]), Value::Bool(true), "the session ended");

        // b holds 1 and nobody renews it: a's wait outlasts the lease.
        let start = engine.now();
        assert_eq!(call(&a, "pg_advisory_lock", &[1]), Value::Text(String::new()));
        assert!(engine.now() - start >= limits::ADVISORY_LEASE_NS);
        // b's renewal finds its hold of 1 lost, keeps 3 and 4.
        let registry_b = b.registry.clone();
        assert_eq!(renew(engine.as_ref(), &registry_b).unwrap(), 1);
        assert_eq!(call(&b, "pg_advisory_unlock", &[1]), Value::Bool(false));
        assert_eq!(call(&a, "pg_try_advisory_lock", &[3]), Value::Bool(false), "renewed");
    }

    /// Goal: a session whose lease ran out (its renewals failing) does
    /// not go on trusting its count: locking again checks the row, and
    /// finds the lock taken over. Method: no renewer; the logical clock
    /// moved past the lease; another session takes the lock.
    #[test]
    fn a_hold_past_its_lease_is_checked_again() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let a = SessionLocks::new(engine.clone(), Arc::default());
        let b = SessionLocks::new(engine.clone(), Arc::default());
        assert_eq!(call(&a, "pg_try_advisory_lock", &[5]), Value::Bool(true));
        assert_eq!(call(&a, "pg_try_advisory_lock", &[5]), Value::Bool(true), "nested, lease fresh");
        engine.wait(limits::ADVISORY_LEASE_NS);
        assert_eq!(call(&b, "pg_try_advisory_lock", &[5]), Value::Bool(true), "a's lease ran out");
        assert_eq!(call(&a, "pg_try_advisory_lock", &[5]), Value::Bool(false), "a checks, and finds b");
        // b's nested hold, its lease fresh, needs no look at the row.
        assert_eq!(call(&b, "pg_try_advisory_lock", &[5]), Value::Bool(true));
    }

    /// Goal: a waiting lock stops when its statement is cancelled.
    #[test]
    fn a_wait_is_cancelled() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let a = SessionLocks::new(engine.clone(), Arc::default());
        let b = SessionLocks::new(engine.clone(), Arc::default());
        call(&a, "pg_advisory_lock", &[1]);
        let cancel = AtomicBool::new(true);
        let e = b
            .call("pg_advisory_lock", &[Value::Int8(1)], Wait { cancel: Some(&cancel), lock_timeout: None })
            .unwrap_err();
        assert_eq!(e.state, SqlState::QueryCanceled);
    }

    /// Goal: a wait longer than the session's `lock_timeout` ends with
    /// 55P03, and the lock stays its holder's. Method: two sessions on
    /// one engine (whose waits move its logical clock).
    #[test]
    fn a_wait_gives_up_at_the_lock_timeout() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let a = SessionLocks::new(engine.clone(), Arc::default());
        let b = SessionLocks::new(engine.clone(), Arc::default());
        call(&a, "pg_advisory_lock", &[1]);
        let wait = Wait { cancel: None, lock_timeout: Some(std::time::Duration::from_millis(50)) };
        let e = b.call("pg_advisory_lock", &[Value::Int8(1)], wait).unwrap_err();
        assert_eq!(e.state, SqlState::LockNotAvailable);
        assert_eq!(call(&b, "pg_try_advisory_lock", &[1]), Value::Bool(false));
        assert_eq!(call(&a, "pg_advisory_unlock", &[1]), Value::Bool(true));
        assert_eq!(b.call("pg_advisory_lock", &[Value::Int8(1)], wait).unwrap(), Value::Text(String::new()));
    }
}
