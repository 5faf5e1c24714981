//! The lock table of a shard leader: shared and exclusive locks on keys,
//! shared locks on key ranges, with wound-wait (Spanner §4.2.1, after
//! Rosenkrantz, Stearns and Lewis 1978).
//!
//! Every transaction has a [`Priority`]: its start timestamp (ties broken by
//! id). Smaller is older. When a request conflicts with a lock another
//! transaction holds:
//!
//! ```text
//!   requester older than holder, holder not prepared  -> wound the holder
//!                                                        (it must abort), wait
//!   requester younger than holder, or holder prepared -> wait
//! ```
//!
//! Waits therefore only ever point from younger to older transactions, or
//! to prepared ones (which hold every lock they need and wait for nothing),
//! so waits never form a cycle: **no deadlock**. A retried transaction keeps
//! its priority, so it ages until it wins: **no starvation**.
//!
//! Fairness without cycles: a request is also blocked by an *older* waiting
//! request it conflicts with (so a stream of young readers cannot starve an
//! old writer), but never by a younger one.
//!
//! # Model
//!
//! ```text
//!   key "a": S{t3, t5}        ranges: S["k", "p") t5
//!   key "b": X{t4}            waiting: t7 X "a" (behind t3, t5)
//! ```
//!
//! The table never blocks and never aborts anything itself: [`LockTable::acquire`]
//! returns a decision ([`Acquire::Granted`], [`Acquire::Wait`] with the
//! transactions to wound, if any), and [`LockTable::release`] returns the
//! waiting requests it could grant. The caller (the shard leader) aborts the
//! wounded, parks and resumes requests.
//!
//! # Invariants (checked by `check_invariants`, used in tests)
//! - A key is held by at most one transaction exclusively, and then by no
//!   other transaction in any mode; an exclusive key lock and another
//!   transaction's shared range lock never overlap.
//! - Every wait edge points to an older or prepared transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::limits;
use meta::{Priority, TxnId};

/// Lock strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockMode {
    /// Readers: compatible with other shared locks.
    Shared,
    /// Writers: compatible with nothing held by others.
    Exclusive,
}

impl LockMode {
    fn compatible(self, other: LockMode) -> bool {
        self == LockMode::Shared && other == LockMode::Shared
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockMode::Shared => "S",
            LockMode::Exclusive => "X",
        })
    }
}

/// What a lock covers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockTarget {
    Key(Vec<u8>),
    /// `[start, end)`; an empty end means the end of the key space. Only
    /// shared range locks exist (they stop phantoms under scans).
    Range(Vec<u8>, Vec<u8>),
}

/// Is `k` in `[s, e)` (an empty `e`: the end of the key space)?
fn in_range(k: &[u8], s: &[u8], e: &[u8]) -> bool {
    k >= s && (e.is_empty() || k < e)
}

impl LockTarget {
    /// Do the two share a key?
    pub fn overlaps(&self, other: &LockTarget) -> bool {
        match (self, other) {
            (LockTarget::Key(a), LockTarget::Key(b)) => a == b,
            (LockTarget::Key(k), LockTarget::Range(s, e)) | (LockTarget::Range(s, e), LockTarget::Key(k)) => {
                in_range(k, s, e)
            }
            (LockTarget::Range(s1, e1), LockTarget::Range(s2, e2)) => {
                (e2.is_empty() || s1 < e2) && (e1.is_empty() || s2 < e1)
            }
        }
    }

    /// The parts of this target below `key` and from `key` on (a split
    /// at `key`): a key falls on one side, a range may fall on both.
    pub fn split_at(&self, key: &[u8]) -> (Option<LockTarget>, Option<LockTarget>) {
        match self {
            LockTarget::Key(k) if k.as_slice() < key => (Some(self.clone()), None),
            LockTarget::Key(_) => (None, Some(self.clone())),
            LockTarget::Range(s, e) => {
                let below_end = !e.is_empty() && e.as_slice() <= key;
                let below = (s.as_slice() < key).then(|| {
                    if below_end {
                        self.clone()
                    } else {
                        LockTarget::Range(s.clone(), key.to_vec())
                    }
                });
                let above = (!below_end).then(|| LockTarget::Range(s.as_slice().max(key).to_vec(), e.clone()));
                (below, above)
            }
        }
    }
}

impl fmt::Display for LockTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            LockTarget::Key(k) => write!(f, "{:?}", text(k)),
            LockTarget::Range(s, e) if e.is_empty() => write!(f, "[{:?}, +inf)", text(s)),
            LockTarget::Range(s, e) => write!(f, "[{:?}, {:?})", text(s), text(e)),
        }
    }
}

/// The table's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// The lock is held now.
    Granted,
    /// The request waits (it is queued in the table) until a release grants
    /// it. `wound` lists younger, unprepared holders in its way: the caller
    /// must abort them (and release their locks).
    Wait { blockers: Vec<TxnId>, wound: Vec<TxnId> },
    /// Refused outright. `retryable`: the table is busy (too many waiters);
    /// otherwise the request itself is over a limit or unsupported.
    Refused { reason: String, retryable: bool },
}

/// A waiting request the table granted during a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub txn: TxnId,
    pub target: LockTarget,
    pub mode: LockMode,
}

#[derive(Clone, Debug, Default)]
struct TxnLocks {
    priority: Option<Priority>,
    prepared: bool,
    /// By target, so that a transaction's own lock is found in log time:
    /// it may hold [`limits::LOCKS_PER_TXN_MAX`], and every request and
    /// grant looks (in a list, taking n locks cost n² comparisons, on
    /// the event loop of the shard's leader: 10,000 keys took 325 ms in a
    /// release build, 10.5 ms by target).
    held: BTreeMap<LockTarget, LockMode>,
}

#[derive(Clone, Debug)]
struct Waiter {
    txn: TxnId,
    target: LockTarget,
    mode: LockMode,
}

/// The lock table of one shard leader. Purely in memory: a new leader
/// starts empty and re-locks prepared transactions from their durable
/// records (their locks must survive; unprepared ones die with the leader).
#[derive(Clone, Debug)]
pub struct LockTable {
    txns: BTreeMap<TxnId, TxnLocks>,
    /// Holders per key (shared and exclusive).
    keys: BTreeMap<Vec<u8>, Vec<(TxnId, LockMode)>>,
    /// Shared range locks.
    ranges: Vec<(TxnId, Vec<u8>, Vec<u8>)>,
    /// Waiting requests, oldest first.
    waiting: BTreeMap<(Priority, u64), Waiter>,
    next_seq: u64,
    /// [`limits::LOCK_WAITERS_MAX`], lowered by tests that fill it.
    pub(crate) waiters_max: usize,
}

impl Default for LockTable {
    fn default() -> Self {
        LockTable {
            txns: BTreeMap::new(),
            keys: BTreeMap::new(),
            ranges: Vec::new(),
            waiting: BTreeMap::new(),
            next_seq: 0,
            waiters_max: limits::LOCK_WAITERS_MAX,
        }
    }
}

impl LockTable {
    pub fn new() -> Self {
        Self::default()
    }

    fn priority(&self, txn: TxnId) -> Option<Priority> {
        self.txns.get(&txn).and_then(|t| t.priority)
    }

    pub fn is_prepared(&self, txn: TxnId) -> bool {
        self.txns.get(&txn).is_some_and(|t| t.prepared)
    }

    /// Prepared transactions cannot be wounded: they may already be
    /// committed at the coordinator.
    pub fn mark_prepared(&mut self, txn: TxnId) {
        if let Some(t) = self.txns.get_mut(&txn) {
            t.prepared = true;
        }
    }

    /// Does `txn` hold a lock covering `target` at least as strong as `mode`?
    pub fn holds(&self, txn: TxnId, target: &LockTarget, mode: LockMode) -> bool {
        let Some(t) = self.txns.get(&txn) else { return false };
        if t.held.get(target).is_some_and(|held| *held >= mode) {
            return true;
        }
        // A key inside one of its range locks (ranges sort after keys).
        let LockTarget::Key(k) = target else { return false };
        let mut ranges = t.held.range(LockTarget::Range(Vec::new(), Vec::new())..);
        ranges.any(|(r, held)| *held >= mode && matches!(r, LockTarget::Range(s, e) if in_range(k, s, e)))
    }

    /// The oldest waiting request that `holder` blocks, if any: its
    /// priority.
    pub fn oldest_blocked_by(&self, holder: TxnId) -> Option<Priority> {
        self.waiting
            .iter()
            .find(|(_, w)| self.conflicting_holders(w.txn, &w.target, w.mode).contains(&holder))
            .map(|((priority, _), _)| *priority)
    }

    /// Does `txn` hold any lock here?
    pub fn holds_any(&self, txn: TxnId) -> bool {
        self.txns.get(&txn).is_some_and(|t| !t.held.is_empty())
    }

    pub fn is_waiting(&self, txn: TxnId) -> bool {
        self.waiting.values().any(|w| w.txn == txn)
    }

    /// Transactions that hold or await locks here.
    pub fn txns(&self) -> Vec<TxnId> {
        self.txns.keys().copied().collect()
    }

    /// Who, other than `txn`, holds a lock on something overlapping
    /// `target` in a mode incompatible with `mode`.
    pub fn conflicting_holders(&self, txn: TxnId, target: &LockTarget, mode: LockMode) -> BTreeSet<TxnId> {
        let mut out = BTreeSet::new();
        match target {
            LockTarget::Key(k) => {
                for (holder, held) in self.keys.get(k).into_iter().flatten() {
                    if *holder != txn && !held.compatible(mode) {
                        out.insert(*holder);
                    }
                }
            }
            LockTarget::Range(s, e) => {
                let range = self.keys.range(s.clone()..);
                for (k, holders) in range {
                    if !e.is_empty() && k.as_slice() >= e.as_slice() {
                        break;
                    }
                    for (holder, held) in holders {
                        if *holder != txn && !held.compatible(mode) {
                            out.insert(*holder);
                        }
                    }
                }
            }
        }
        // Range locks are shared: they conflict only with exclusive requests.
        if mode == LockMode::Exclusive {
            for (holder, s, e) in &self.ranges {
                if *holder != txn && target.overlaps(&LockTarget::Range(s.clone(), e.clone())) {
                    out.insert(*holder);
                }
            }
        }
        out
    }

    /// Older waiting requests (of other transactions) that conflict.
    fn conflicting_older_waiters(
        &self,
        txn: TxnId,
        priority: Priority,
        target: &LockTarget,
        mode: LockMode,
    ) -> BTreeSet<TxnId> {
        self.waiting
            .range(..(priority, 0))
            .filter(|(_, w)| w.txn != txn && !w.mode.compatible(mode) && w.target.overlaps(target))
            .map(|(_, w)| w.txn)
            .collect()
    }

    /// Would [`LockTable::acquire`] grant this request now, without a
    /// wait? (A request that must not wait, SQL's `NOWAIT`, is refused
    /// instead of queued, and wounds nobody.)
    pub fn is_free_for(&self, txn: TxnId, priority: Priority, target: &LockTarget, mode: LockMode) -> bool {
        self.holds(txn, target, mode)
            || (self.conflicting_holders(txn, target, mode).is_empty()
                && self.conflicting_older_waiters(txn, priority, target, mode).is_empty())
    }

    /// Asks for a lock. See the module docs for the rules.
    pub fn acquire(&mut self, txn: TxnId, priority: Priority, target: LockTarget, mode: LockMode) -> Acquire {
        if matches!(target, LockTarget::Range(..)) && mode == LockMode::Exclusive {
            return Acquire::Refused { reason: "exclusive range locks are not supported".into(), retryable: false };
        }
        if self.priority(txn).is_some_and(|p| p != priority) {
            // One transaction, one priority, for its whole life; requests
            // come from clients, so a change is refused, not asserted.
            return Acquire::Refused { reason: format!("{txn} cannot change its priority"), retryable: false };
        }
        if self.holds(txn, &target, mode) {
            return Acquire::Granted;
        }
        let entry = self.txns.entry(txn).or_default();
        entry.priority = Some(priority);
        if entry.held.len() >= limits::LOCKS_PER_TXN_MAX {
            return Acquire::Refused {
                retryable: false,
                reason: format!("a transaction may hold at most {} locks per shard", limits::LOCKS_PER_TXN_MAX),
            };
        }
        let holders = self.conflicting_holders(txn, &target, mode);
        let older_waiters = self.conflicting_older_waiters(txn, priority, &target, mode);
        if holders.is_empty() && older_waiters.is_empty() {
            self.grant(txn, target, mode);
            return Acquire::Granted;
        }
        if self.waiting.len() >= self.waiters_max {
            return Acquire::Refused { reason: "too many lock requests waiting on this shard".into(), retryable: true };
        }
        let wound: Vec<TxnId> = holders
            .iter()
            .copied()
            .filter(|h| !self.is_prepared(*h) && self.priority(*h).is_some_and(|hp| priority < hp))
            .collect();
        let blockers: Vec<TxnId> = holders.union(&older_waiters).copied().collect();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiting.insert((priority, seq), Waiter { txn, target, mode });
        Acquire::Wait { blockers, wound }
    }

    fn grant(&mut self, txn: TxnId, target: LockTarget, mode: LockMode) {
        match &target {
            LockTarget::Key(k) => {
                let holders = self.keys.entry(k.clone()).or_default();
                match holders.iter_mut().find(|(t, _)| *t == txn) {
                    // An upgrade (S -> X) replaces the weaker hold.
                    Some((_, held)) => *held = (*held).max(mode),
                    None => holders.push((txn, mode)),
                }
            }
            LockTarget::Range(s, e) => self.ranges.push((txn, s.clone(), e.clone())),
        }
        let held = self.txns.entry(txn).or_default().held.entry(target).or_insert(mode);
        *held = (*held).max(mode);
    }

    /// Releases every lock `txn` holds and every request it has waiting
    /// (it committed or aborted), then grants what it can, oldest first.
    pub fn release(&mut self, txn: TxnId) -> Vec<Grant> {
        if let Some(t) = self.txns.remove(&txn) {
            for target in t.held.into_keys() {
                if let LockTarget::Key(k) = target {
                    if let Some(holders) = self.keys.get_mut(&k) {
                        holders.retain(|(t, _)| *t != txn);
                        if holders.is_empty() {
                            self.keys.remove(&k);
                        }
                    }
                }
            }
        }
        self.ranges.retain(|(t, _, _)| *t != txn);
        self.waiting.retain(|_, w| w.txn != txn);
        self.grant_waiters()
    }

    /// Withdraws every waiting request of `txn` (it gave up waiting; it
    /// keeps what it holds), then grants what it can, oldest first.
    pub fn cancel_waits(&mut self, txn: TxnId) -> Vec<Grant> {
        self.waiting.retain(|_, w| w.txn != txn);
        if self.txns.get(&txn).is_some_and(|t| t.held.is_empty()) {
            self.txns.remove(&txn);
        }
        self.grant_waiters()
    }

    fn grant_waiters(&mut self) -> Vec<Grant> {
        let mut grants = Vec::new();
        let order: Vec<(Priority, u64)> = self.waiting.keys().copied().collect();
        for key in order {
            let Some(w) = self.waiting.get(&key).cloned() else {
                continue;
            };
            let blocked = !self.conflicting_holders(w.txn, &w.target, w.mode).is_empty()
                || !self.conflicting_older_waiters(w.txn, key.0, &w.target, w.mode).is_empty();
            if !blocked {
                self.waiting.remove(&key);
                self.grant(w.txn, w.target.clone(), w.mode);
                grants.push(Grant { txn: w.txn, target: w.target, mode: w.mode });
            }
        }
        grants
    }

    /// Forgets everything (the leader stepped down).
    pub fn clear(&mut self) {
        *self = LockTable { waiters_max: self.waiters_max, ..LockTable::default() };
    }

    /// Checks the module invariants; returns a description of the first
    /// violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (k, holders) in &self.keys {
            let exclusive: Vec<_> = holders.iter().filter(|(_, m)| *m == LockMode::Exclusive).collect();
            if !exclusive.is_empty() && holders.len() > 1 {
                return Err(format!("key {k:?} held exclusively with others: {holders:?}"));
            }
            if let Some((t, _)) = exclusive.first() {
                for (r, s, e) in &self.ranges {
                    if r != t && LockTarget::Key(k.clone()).overlaps(&LockTarget::Range(s.clone(), e.clone())) {
                        return Err(format!("key {k:?} held exclusively by {t} inside {r}'s range lock"));
                    }
                }
            }
        }
        for ((priority, _), w) in &self.waiting {
            for blocker in self.conflicting_holders(w.txn, &w.target, w.mode) {
                let older = self.priority(blocker).is_some_and(|p| p < *priority);
                if !older && !self.is_prepared(blocker) {
                    // Allowed only while the caller has not yet aborted a
                    // wounded holder; report it so tests can see it.
                    return Err(format!("{} waits for younger unprepared {blocker}", w.txn));
                }
            }
        }
        Ok(())
    }

    /// One line per lock and waiter, for goldenscripts.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, holders) in &self.keys {
            let hs: Vec<String> = holders.iter().map(|(t, m)| format!("{t}:{m}")).collect();
            out.push_str(&format!("lock {} {}\n", LockTarget::Key(k.clone()), hs.join(" ")));
        }
        for (t, s, e) in &self.ranges {
            out.push_str(&format!("lock {} {t}:S\n", LockTarget::Range(s.clone(), e.clone())));
        }
        for w in self.waiting.values() {
            out.push_str(&format!("wait {} {}:{}\n", w.target, w.txn, w.mode));
        }
        if out.is_empty() {
            out.push_str("(no locks)\n");
        }
        out
    }
}

/// Goldenscript tests: `testscripts/lock_table/*`, named after the
/// scenario each one shows. Regenerate with `UPDATE_GOLDENFILES=1`.
#[cfg(test)]
mod scripts {
    use std::error::Error;
    use std::fmt::Write as _;

    use truetime::Timestamp;

    use super::*;

    #[derive(goldenscript::Command)]
    enum Command {
        /// lock TXN prio=N S|X KEY|[START,END)
        Lock(String, #[arg(key = "prio")] u64, String, String),
        /// prepare TXN: it can no longer be wounded
        Prepare(String),
        /// release TXN: it committed or aborted
        Release(String),
        /// locks: the table
        Locks,
    }

    fn txn(name: &str) -> Result<TxnId, Box<dyn Error>> {
        Ok(TxnId(name.strip_prefix('t').ok_or("transactions are t<n>")?.parse()?))
    }

    fn target(text: &str) -> Result<LockTarget, Box<dyn Error>> {
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(')')) {
            let (s, e) = inner.split_once(',').ok_or("ranges are [start,end)")?;
            Ok(LockTarget::Range(s.as_bytes().to_vec(), e.as_bytes().to_vec()))
        } else {
            Ok(LockTarget::Key(text.as_bytes().to_vec()))
        }
    }

    #[derive(Default)]
    struct Runner {
        table: LockTable,
    }

    impl goldenscript::Runner for Runner {
        type Command = Command;

        fn run(&mut self, command: &Command, _: &goldenscript::Context) -> Result<String, Box<dyn Error>> {
            let mut out = String::new();
            match command {
                Command::Lock(t, prio, mode, what) => {
                    let t = txn(t)?;
                    let mode = match mode.as_str() {
                        "S" => LockMode::Shared,
                        "X" => LockMode::Exclusive,
                        m => return Err(format!("mode {m}: S or X").into()),
                    };
                    let target = target(what)?;
                    let priority = Priority::new(Timestamp::from_nanos(*prio), t);
                    let shown = format!("{t} {mode} {target}");
                    match self.table.acquire(t, priority, target, mode) {
                        Acquire::Granted => writeln!(out, "{shown} → granted")?,
                        Acquire::Wait { blockers, wound } => {
                            let list = |v: &[TxnId]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" ");
                            if !wound.is_empty() {
                                write!(out, "{shown} → wound {}; ", list(&wound))?;
                            } else {
                                write!(out, "{shown} → ")?;
                            }
                            writeln!(out, "wait for {}", list(&blockers))?;
                        }
                        Acquire::Refused { reason, .. } => writeln!(out, "{shown} → refused: {reason}")?,
                    }
                }
                Command::Prepare(t) => self.table.mark_prepared(txn(t)?),
                Command::Release(t) => {
                    let grants = self.table.release(txn(t)?);
                    if grants.is_empty() {
                        writeln!(out, "release {t}")?;
                    }
                    for g in grants {
                        writeln!(out, "release {t} → granted {} {} {}", g.txn, g.mode, g.target)?;
                    }
                }
                Command::Locks => out.push_str(&self.table.render()),
            }
            Ok(out)
        }
    }

    macro_rules! scripts {
        ($($name:ident),* $(,)?) => {$(
            #[test]
            fn $name() -> std::io::Result<()> {
                goldenscript::run(&mut Runner::default(), concat!("src/testscripts/lock_table/", stringify!($name)))
            }
        )*};
    }

    scripts!(
        wound_wait_older_wounds_younger,
        wound_wait_younger_waits,
        prepared_holders_are_not_wounded,
        shared_locks_and_upgrades,
        range_locks_stop_phantoms,
        older_waiters_are_not_overtaken,
    );

    /// Goal: no sequence of requests and releases breaks the table's
    /// invariants once wounded transactions are aborted, and every request
    /// is eventually granted when everyone before it finishes (no deadlock).
    /// Method: random requests from 8 transactions on 4 keys and a range;
    /// wounded ones are released at once; at the end all release in age
    /// order and nothing may be left waiting.
    #[test]
    fn random_workloads_keep_invariants_and_never_deadlock() {
        let mut seed = 0x5eed_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _round in 0..200 {
            let mut table = LockTable::new();
            let mut aborted = std::collections::BTreeSet::new();
            for _ in 0..40 {
                let t = TxnId(u128::from(next() % 8));
                if aborted.contains(&t) {
                    continue;
                }
                let priority = Priority::new(Timestamp::from_nanos(t.0 as u64), t);
                let key = [b'a' + (next() % 4) as u8];
                let (target, mode) = match next() % 5 {
                    0 => (LockTarget::Range(b"b".to_vec(), b"d".to_vec()), LockMode::Shared),
                    1 | 2 => (LockTarget::Key(key.to_vec()), LockMode::Shared),
                    _ => (LockTarget::Key(key.to_vec()), LockMode::Exclusive),
                };
                if table.is_waiting(t) {
                    continue; // one outstanding request per transaction
                }
                if let Acquire::Wait { wound, .. } = table.acquire(t, priority, target, mode) {
                    for w in wound {
                        aborted.insert(w);
                        table.release(w);
                    }
                }
                table.check_invariants().unwrap();
            }
            for t in 0..8u128 {
                table.release(TxnId(t));
                table.check_invariants().unwrap();
            }
            assert!(table.txns().is_empty() && !table.is_waiting(TxnId(0)));
        }
    }

    /// Goal: `holds` finds a transaction's own key locks at their mode or
    /// above, keys inside its shared range locks, and nothing of others'.
    #[test]
    fn holds_finds_own_keys_upgrades_and_keys_in_own_ranges() {
        let mut table = LockTable::new();
        let (t1, t2) = (TxnId(1), TxnId(2));
        let p = |t: TxnId| Priority::new(Timestamp::from_nanos(t.0 as u64), t);
        let key = |k: &str| LockTarget::Key(k.into());
        for i in 0..1_000 {
            assert!(matches!(table.acquire(t1, p(t1), key(&format!("k{i:04}")), LockMode::Shared), Acquire::Granted));
        }
        assert!(matches!(table.acquire(t1, p(t1), key("k0007"), LockMode::Exclusive), Acquire::Granted));
        assert!(matches!(
            table.acquire(t1, p(t1), LockTarget::Range("m".into(), "p".into()), LockMode::Shared),
            Acquire::Granted
        ));
        assert!(table.holds(t1, &key("k0500"), LockMode::Shared));
        assert!(!table.holds(t1, &key("k0500"), LockMode::Exclusive));
        assert!(table.holds(t1, &key("k0007"), LockMode::Exclusive), "upgraded");
        assert!(table.holds(t1, &key("n"), LockMode::Shared), "inside its range");
        assert!(!table.holds(t1, &key("n"), LockMode::Exclusive), "range locks are shared");
        assert!(!table.holds(t1, &key("p"), LockMode::Shared), "past its range's end");
        assert!(!table.holds(t2, &key("k0500"), LockMode::Shared), "another's");
        table.check_invariants().unwrap();
        table.release(t1);
        assert!(!table.holds(t1, &key("k0500"), LockMode::Shared));
        table.check_invariants().unwrap();
    }

    /// Goal: a split hands each part of a lock target to the side that
    /// holds its keys, and nothing to a side without keys of it.
    #[test]
    fn split_at_divides_keys_and_ranges_at_the_split_key() {
        let key = |k: &str| LockTarget::Key(k.into());
        let range = |s: &str, e: &str| LockTarget::Range(s.into(), e.into());
        assert_eq!(key("a").split_at(b"m"), (Some(key("a")), None));
        assert_eq!(key("m").split_at(b"m"), (None, Some(key("m"))));
        assert_eq!(range("a", "z").split_at(b"m"), (Some(range("a", "m")), Some(range("m", "z"))));
        assert_eq!(range("a", "").split_at(b"m"), (Some(range("a", "m")), Some(range("m", ""))));
        assert_eq!(range("a", "m").split_at(b"m"), (Some(range("a", "m")), None));
        assert_eq!(range("m", "z").split_at(b"m"), (None, Some(range("m", "z"))));
        assert_eq!(range("n", "").split_at(b"m"), (None, Some(range("n", ""))));
    }
}
