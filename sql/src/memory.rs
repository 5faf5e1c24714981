//! An in-memory [`Engine`] for tests: multi-version, serializable by
//! validation at commit, deterministic.
//!
//! Every key keeps its versions (timestamp, value or tombstone). A
//! transaction reads at the timestamp its first read takes (as SpanDB's
//! do: what commits between BEGIN and the first read is seen), overlaid
//! with its own buffered writes, and a read-write one remembers what it
//! read (keys, and the key ranges its scans covered). `commit` checks that
//! nothing it read or wrote has a version newer than that timestamp
//! (backward validation, as in optimistic concurrency control; a
//! transaction that read nothing has nothing to validate); if so it aborts with a
//! retryable error, else its writes land at a new timestamp. That makes
//! the history serializable — write skew is caught, like SpanDB's locks
//! catch it — while letting a single-threaded test interleave two
//! transactions step by step (locks would block it).
//!
//! Time is logical: each commit is 1 µs after the previous one, starting at
//! 2026-01-01, so scripts print the same timestamps on every run.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::kv::{Committed, Engine, KvError, Mode, Pair, SavepointMark, ShardSpan, Timestamp, Transaction};

/// 2026-01-01T00:00:00Z in nanoseconds.
const EPOCH_NS: Timestamp = 1_767_225_600_000_000_000;
/// How far apart successive commits are.
const COMMIT_STEP_NS: Timestamp = 1_000;

/// One version of a key: its timestamp and value (`None`: a tombstone).
type Version = (Timestamp, Option<Vec<u8>>);

#[derive(Default)]
struct State {
    /// Key -> versions, oldest first.
    versions: BTreeMap<Vec<u8>, Vec<Version>>,
    /// The latest commit timestamp.
    last_ts: Timestamp,
}

impl State {
    fn read_at(&self, key: &[u8], ts: Timestamp) -> Option<Vec<u8>> {
        let versions = self.versions.get(key)?;
        versions.iter().rev().find(|(t, _)| *t <= ts).and_then(|(_, v)| v.clone())
    }

    fn newest(&self, key: &[u8]) -> Timestamp {
        self.versions.get(key).and_then(|v| v.last()).map_or(0, |(t, _)| *t)
    }

    /// The first `limit` live pairs of `[start, end)` at `ts`, in key
    /// order, or (`reverse`) the last, last first.
    fn scan_at(&self, (start, end, reverse): (&[u8], &[u8], bool), ts: Timestamp, limit: usize) -> Vec<Pair> {
        let range = self.versions.range::<[u8], _>((Bound::Included(start), end_bound(end)));
        let keys: Box<dyn Iterator<Item = &Vec<u8>>> =
            if reverse { Box::new(range.rev().map(|(k, _)| k)) } else { Box::new(range.map(|(k, _)| k)) };
        keys.filter_map(|key| self.read_at(key, ts).map(|v| (key.clone(), v))).take(limit).collect()
    }
}

fn end_bound(end: &[u8]) -> Bound<&[u8]> {
    if end.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(end)
    }
}

/// The in-memory engine. Cheap to clone; clones share the data.
#[derive(Clone)]
pub struct MemoryEngine {
    state: Arc<Mutex<State>>,
}

impl Default for MemoryEngine {
    fn default() -> Self {
        MemoryEngine::new()
    }
}

impl MemoryEngine {
    pub fn new() -> MemoryEngine {
        MemoryEngine { state: Arc::new(Mutex::new(State { last_ts: EPOCH_NS, ..State::default() })) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave State half-changed (every change
        // is one insert), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every live key and value at the latest timestamp (for tests).
    pub fn dump(&self) -> Vec<Pair> {
        let state = self.lock();
        state.scan_at((&[], &[], false), state.last_ts, usize::MAX)
    }
}

impl Engine for MemoryEngine {
    fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>, KvError> {
        let read_ts = match mode {
            Mode::ReadWrite | Mode::ReadOnly | Mode::SingleShard | Mode::BoundedStaleness(_) => None,
            Mode::AsOf(ts) => Some(ts),
        };
        Ok(Box::new(MemoryTxn {
            engine: self.clone(),
            mode,
            read_ts,
            writes: BTreeMap::new(),
            absent: Vec::new(),
            read_keys: Vec::new(),
            read_ranges: Vec::new(),
            deadline: None,
            savepoints: Vec::new(),
        }))
    }

    fn shards(&self, start: &[u8], end: &[u8]) -> Vec<ShardSpan> {
        vec![ShardSpan { shard_id: 1, range_ver: 1, leader_server: 1, start: start.to_vec(), end: end.to_vec() }]
    }

    fn now(&self) -> Timestamp {
        self.lock().last_ts
    }

    /// Moves the logical clock: later commits are `nanos` later.
    fn wait(&self, nanos: u64) {
        let mut state = self.lock();
        state.last_ts = state.last_ts.saturating_add(nanos);
    }
}

/// A transaction's buffered writes (`None`: a delete).
type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

struct MemoryTxn {
    engine: MemoryEngine,
    mode: Mode,
    /// Fixed by the first read (as SpanDB's transactions fix theirs), so
    /// what commits between `begin` and the first read is seen.
    read_ts: Option<Timestamp>,
    writes: Writes,
    /// Written keys that must have no value at commit.
    absent: Vec<Vec<u8>>,
    read_keys: Vec<Vec<u8>>,
    /// What each scan saw: `start` to `end`, `end` included if the flag
    /// says so (a full forward page, up to its last key); empty end:
    /// unbounded.
    read_ranges: Vec<(Vec<u8>, Vec<u8>, bool)>,
    /// Reads at or after it (by the logical clock) and commits at or
    /// after it fail ([`Transaction::set_deadline`]).
    deadline: Option<Timestamp>,
    /// The writes (and absent keys) as each savepoint found them.
    savepoints: Vec<(Writes, Vec<Vec<u8>>)>,
}

impl MemoryTxn {
    /// A page of a scan of `[start, end)`, in key order or (`reverse`)
    /// from the end down, with this transaction's writes over it.
    fn scan_ordered(&mut self, range: (&[u8], &[u8], bool), limit: usize) -> Result<Vec<Pair>, KvError> {
        let (start, end, reverse) = range;
        if limit == 0 {
            return Err(KvError::Invalid("scan limit must be positive".into()));
        }
        self.check_deadline(self.engine.now())?;
        if !end.is_empty() && end <= start {
            // As SpanDB's client refuses it.
            return Err(KvError::Invalid("scan end must be after start".into()));
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        // Read enough to survive own deletes hiding some.
        let within = self.writes.range::<[u8], _>((Bound::Included(start), end_bound(end)));
        let want = limit.saturating_add(within.filter(|(_, w)| w.is_none()).count());
        let ts = self.snapshot();
        merged.extend(self.engine.lock().scan_at(range, ts, want));
        let complete = merged.len() < want;
        // The last key read from storage in the scan's order.
        let last_stored = if reverse { merged.keys().next() } else { merged.keys().next_back() }.cloned();
        for (k, w) in self.writes.range::<[u8], _>((Bound::Included(start), end_bound(end))) {
            // Beyond what was read from storage, own writes would be
            // interleaved with unread keys: leave them to the next page.
            let beyond = last_stored.as_ref().is_some_and(|last| if reverse { k < last } else { k > last });
            if !complete && beyond {
                continue;
            }
            match w {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        let page: Vec<Pair> = if reverse {
            merged.into_iter().rev().take(limit).collect()
        } else {
            merged.into_iter().take(limit).collect()
        };
        if !self.mode.is_read_only() {
            // What this page covers: from the range's edge to its last key
            // if it is full, else the whole range.
            match (page.len() == limit, page.last()) {
                (true, Some((last, _))) if reverse => self.read_ranges.push((last.clone(), end.to_vec(), false)),
                (true, Some((last, _))) => self.read_ranges.push((start.to_vec(), last.clone(), true)),
                _ => self.read_ranges.push((start.to_vec(), end.to_vec(), false)),
            }
        }
        Ok(page)
    }

    /// The snapshot reads use, fixed now if not yet.
    fn snapshot(&mut self) -> Timestamp {
        let engine = &self.engine;
        *self.read_ts.get_or_insert_with(|| engine.lock().last_ts)
    }

    /// A read-write transaction's reads come after its deadline: retry.
    fn check_deadline(&self, at: Timestamp) -> Result<(), KvError> {
        match self.deadline {
            Some(d) if !self.mode.is_read_only() && at >= d => {
                Err(KvError::Retryable(format!("the transaction ran past its deadline {d} (at {at})")))
            }
            _ => Ok(()),
        }
    }

    fn check_writable(&self) -> Result<(), KvError> {
        match self.mode.is_read_only() {
            true => Err(KvError::ReadOnly),
            false => Ok(()),
        }
    }
}

impl Transaction for MemoryTxn {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.check_deadline(self.engine.now())?;
        if let Some(w) = self.writes.get(key) {
            return Ok(w.clone());
        }
        if !self.mode.is_read_only() {
            self.read_keys.push(key.to_vec());
        }
        let ts = self.snapshot();
        Ok(self.engine.lock().read_at(key, ts))
    }

    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        self.scan_ordered((start, end, false), limit)
    }

    fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>, KvError> {
        self.scan_ordered((start, end, true), limit)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.check_writable()?;
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn put_absent(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.put(key, value)?;
        self.absent.push(key.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), KvError> {
        self.check_writable()?;
        self.writes.insert(key.to_vec(), None);
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<Committed, KvError> {
        if self.mode.is_read_only() {
            return Ok(Committed::at(self.read_ts));
        }
        let mut state = self.engine.lock();
        // Nothing read: blind writes, nothing to validate.
        let read_ts = self.read_ts.unwrap_or(Timestamp::MAX);
        let newer = |key: &[u8]| state.newest(key) > read_ts;
        let conflict = self.read_keys.iter().chain(self.writes.keys()).find(|k| newer(k)).cloned().or_else(|| {
            self.read_ranges.iter().find_map(|(start, end, inclusive)| {
                let upper = match (end.is_empty(), inclusive) {
                    (true, _) => Bound::Unbounded,
                    (false, true) => Bound::Included(end.as_slice()),
                    (false, false) => Bound::Excluded(end.as_slice()),
                };
                state
                    .versions
                    .range::<[u8], _>((Bound::Included(start.as_slice()), upper))
                    .find(|(k, _)| newer(k))
                    .map(|(k, _)| k.clone())
            })
        });
        if let Some(key) = conflict {
            return Err(KvError::Retryable(format!(
                "key {} changed after the transaction began reading at {} (changed at {})",
                crate::encoding::pretty_key(&key),
                read_ts,
                state.newest(&key)
            )));
        }
        if let Some(key) = self.absent.iter().find(|k| state.read_at(k, Timestamp::MAX).is_some()) {
            return Err(KvError::ConditionNotMet(format!("key {} has a value", crate::encoding::pretty_key(key))));
        }
        if self.writes.is_empty() {
            return Ok(Committed::at(self.read_ts));
        }
        let ts = state.last_ts + COMMIT_STEP_NS;
        self.check_deadline(ts)?;
        state.last_ts = ts;
        for (k, w) in self.writes {
            state.versions.entry(k).or_default().push((ts, w));
        }
        Ok(Committed { ts: Some(ts), commit_wait_ns: 0, participants: 1 })
    }

    fn rollback(self: Box<Self>) -> Result<(), KvError> {
        Ok(())
    }

    fn savepoint(&mut self) -> Result<SavepointMark, KvError> {
        self.savepoints.push((self.writes.clone(), self.absent.clone()));
        Ok(SavepointMark(self.savepoints.len() - 1))
    }

    fn rollback_to(&mut self, mark: SavepointMark) -> Result<(), KvError> {
        let (writes, absent) =
            self.savepoints.get(mark.0).cloned().ok_or_else(|| KvError::Invalid(format!("no savepoint {mark:?}")))?;
        (self.writes, self.absent) = (writes, absent);
        self.savepoints.truncate(mark.0 + 1);
        Ok(())
    }

    fn forget_savepoints(&mut self) -> Result<(), KvError> {
        self.savepoints.clear();
        Ok(())
    }

    fn read_ts(&self) -> Option<Timestamp> {
        self.read_ts
    }

    fn set_deadline(&mut self, deadline: Option<Timestamp>) -> Result<(), KvError> {
        self.check_writable()?;
        self.deadline = deadline;
        Ok(())
    }
}
