//! One replica's Raft log and Raft state in RocksDB, as raft-rs `Storage`.
//!
//! raft-rs reads through the [`raft::Storage`] trait; the event loop writes
//! through the `stage_*` methods, which add to a RocksDB write batch (shared
//! by all replicas of the server) and update this struct's in-memory copy of
//! the metadata at once. The batch is written before raft-rs is told
//! anything (`advance`), and a failed write stops the process, so raft-rs
//! never observes memory that disk does not have.
//!
//! ```text
//!   truncated (index=t, term)      entries in RocksDB          last
//!   ────────────┤ t+1 │ t+2 │ ... │ last │
//!               first_index = t+1           last_index
//! ```
//!
//! raft-rs reads back what it just appended: the entries it applies, the
//! ones it sends followers, and terms to match logs. Those are the newest
//! entries, so an `EntryCache` keeps the log's tail in memory
//! ([`crate::limits::RAFT_ENTRY_CACHE_BYTES_MAX`] per replica) and RocksDB is
//! read only for older ones (a follower far behind). Every read of the
//! event loop's hottest path used to open a RocksDB iterator.
//!
//! Invariants:
//! - `truncated.index <= hard_state.commit` once anything is compacted: only
//!   applied (hence committed) entries are ever compacted.
//! - Entries `first_index..=last_index` are all present and contiguous.
//! - The cache holds a suffix of them: contiguous entries ending at
//!   `last_index` (or nothing), equal to what is staged for RocksDB.
//! - A snapshot is taken from one RocksDB snapshot, so its data, apply state
//!   and conf state describe the same applied index (`storage/snapshot.rs` builds
//!   it, off the event loop).

use std::collections::VecDeque;
use std::time::Instant;

use prost011::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::{ReadOptions, WriteBatch};

use super::keycode::{self, log_key, raft_key, RaftKey};
use super::{Engine, CF_RAFT};
use crate::storage::snapshot::SnapshotSource;
use meta::ShardId;

/// Decodes a prost (0.14) record stored by this module's callers.
pub fn decode_record<M: prost::Message + Default>(bytes: &[u8], what: &str) -> M {
    M::decode(bytes).unwrap_or_else(|e| panic!("corrupt {what} record in RocksDB: {e}"))
}

fn decode_raft<M: prost011::Message + Default>(bytes: &[u8], what: &str) -> M {
    M::decode(bytes).unwrap_or_else(|e| panic!("corrupt {what} record in RocksDB: {e}"))
}

fn storage_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

/// The Raft log and state of one replica.
pub struct RaftLogStore {
    engine: Engine,
    shard_id: ShardId,
    hard_state: HardState,
    conf_state: ConfState,
    truncated_index: u64,
    truncated_term: u64,
    last_index: u64,
    last_term: u64,
    /// Builds the snapshots raft-rs asks for, in the background.
    snapshots: SnapshotSource,
    /// The event loop's step time ([`RaftLogStore::set_now`]); none
    /// before the first step.
    now: Option<Instant>,
    /// The newest entries (module docs).
    cache: EntryCache,
}

/// The tail of a replica's log, in memory: contiguous entries that end at
/// the log's last index, at most `bytes_max` bytes of them (the newest
/// entry is kept whatever its size). Empty after a load; filled by appends.
#[derive(Debug)]
struct EntryCache {
    entries: VecDeque<Entry>,
    bytes: usize,
    bytes_max: usize,
}

impl EntryCache {
    fn new(bytes_max: usize) -> EntryCache {
        EntryCache { entries: VecDeque::new(), bytes: 0, bytes_max }
    }

    /// The index of the first cached entry (None: empty).
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    fn get(&self, index: u64) -> Option<&Entry> {
        let first = self.first_index()?;
        self.entries.get(usize::try_from(index.checked_sub(first)?).ok()?)
    }

    /// Adds `entries` (contiguous), which replace any cached from their
    /// first index on, then drops the oldest beyond the byte budget.
    fn append(&mut self, entries: &[Entry]) {
        let Some(new_first) = entries.first().map(|e| e.index) else {
            return;
        };
        // The cache ends at the log's last index, and an append leaves no
        // gap after it: only a replaced tail goes, or everything.
        if self.first_index().is_none_or(|first| first >= new_first) {
            self.clear();
        }
        while self.entries.back().is_some_and(|last| last.index >= new_first) {
            self.pop_back();
        }
        for e in entries {
            self.bytes += e.encoded_len();
            self.entries.push_back(e.clone());
        }
        while self.bytes > self.bytes_max && self.entries.len() > 1 {
            self.pop_front();
        }
    }

    /// Drops the entries up to and including `index`.
    fn compact(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            self.pop_front();
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.encoded_len();
        }
    }

    fn pop_back(&mut self) {
        if let Some(e) = self.entries.pop_back() {
            self.bytes -= e.encoded_len();
        }
    }
}

impl RaftLogStore {
    /// Adds the initial Raft state of a new replica to `batch`: an empty log
    /// at index 0 with the given voters (none: an uninitialized replica,
    /// which a snapshot fills).
    pub fn bootstrap(engine: &Engine, batch: &mut WriteBatch, shard: ShardId, voters: &[u64]) {
        let cf = engine.cf(CF_RAFT);
        let cs = ConfState { voters: voters.to_vec(), ..Default::default() };
        batch.put_cf(cf, raft_key(shard, RaftKey::ConfState), cs.encode_to_vec());
        batch.put_cf(cf, raft_key(shard, RaftKey::HardState), HardState::default().encode_to_vec());
        let truncated = proto::storage::TruncatedState { index: 0, term: 0 };
        batch.put_cf(cf, raft_key(shard, RaftKey::TruncatedState), prost::Message::encode_to_vec(&truncated));
    }

    /// Writes the initial Raft state of a replica whose log starts after
    /// `index` at `term`, as if it had applied a snapshot there, with
    /// `voters` (a shard born by a split: `shard/split.rs`). A replica that
    /// already heard of a term at or above `term` (it existed,
    /// uninitialized, before) keeps that term and vote: `prior`, its hard
    /// state so far.
    pub fn bootstrap_at(
        engine: &Engine,
        batch: &mut WriteBatch,
        shard: ShardId,
        (voters, learners): (&[u64], &[u64]),
        index: u64,
        term: u64,
        prior: Option<HardState>,
    ) {
        let cf = engine.cf(CF_RAFT);
        let cs = ConfState { voters: voters.to_vec(), learners: learners.to_vec(), ..Default::default() };
        batch.put_cf(cf, raft_key(shard, RaftKey::ConfState), cs.encode_to_vec());
        let hs = match prior.filter(|p| p.term >= term) {
            Some(p) => HardState { term: p.term, vote: p.vote, commit: index },
            None => HardState { term, vote: 0, commit: index },
        };
        batch.put_cf(cf, raft_key(shard, RaftKey::HardState), hs.encode_to_vec());
        let truncated = proto::storage::TruncatedState { index, term };
        batch.put_cf(cf, raft_key(shard, RaftKey::TruncatedState), prost::Message::encode_to_vec(&truncated));
    }

    /// The hard state stored for `shard`, if any.
    pub fn stored_hard_state(engine: &Engine, shard: ShardId) -> Result<Option<HardState>, rocksdb::Error> {
        let stored = engine.db().get_cf(engine.cf(CF_RAFT), raft_key(shard, RaftKey::HardState))?;
        Ok(stored.map(|b| decode_raft(&b, "hard state")))
    }

    /// Loads a replica's Raft state after a restart.
    pub fn load(engine: &Engine, shard: ShardId, snapshots: SnapshotSource) -> Result<Self, rocksdb::Error> {
        let db = engine.db();
        let cf = engine.cf(CF_RAFT);
        let hard_state: HardState = db
            .get_cf(cf, raft_key(shard, RaftKey::HardState))?
            .map(|b| decode_raft(&b, "hard state"))
            .unwrap_or_default();
        let conf_state: ConfState = db
            .get_cf(cf, raft_key(shard, RaftKey::ConfState))?
            .map(|b| decode_raft(&b, "conf state"))
            .unwrap_or_default();
        let truncated: proto::storage::TruncatedState = db
            .get_cf(cf, raft_key(shard, RaftKey::TruncatedState))?
            .map(|b| decode_record(&b, "truncated state"))
            .unwrap_or_default();
        let mut store = RaftLogStore {
            engine: engine.clone(),
            shard_id: shard,
            hard_state,
            conf_state,
            truncated_index: truncated.index,
            truncated_term: truncated.term,
            last_index: truncated.index,
            last_term: truncated.term,
            snapshots,
            now: None,
            cache: EntryCache::new(crate::limits::RAFT_ENTRY_CACHE_BYTES_MAX),
        };
        // The last entry: seek backwards from the end of this shard's log.
        let mut it = db.raw_iterator_cf(cf);
        it.seek_for_prev(log_key(shard, u64::MAX));
        if let Some(k) = it.key() {
            if let Some(index) = keycode::decode_log_key(shard, k) {
                if index > store.truncated_index {
                    let entry: Entry = decode_raft(it.value().unwrap_or_default(), "log entry");
                    store.last_index = index;
                    store.last_term = entry.term;
                }
            }
        }
        it.status()?;
        Ok(store)
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    pub fn truncated_index(&self) -> u64 {
        self.truncated_index
    }

    pub fn first_log_index(&self) -> u64 {
        self.truncated_index + 1
    }

    pub fn last_log_index(&self) -> u64 {
        self.last_index
    }

    /// Appends (or overwrites from their first index) `entries`.
    pub fn stage_append(&mut self, batch: &mut WriteBatch, entries: &[Entry]) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        assert!(
            first.index > self.truncated_index,
            "{}: append at {} overwrites compacted entries (truncated at {})",
            self.shard_id,
            first.index,
            self.truncated_index
        );
        assert!(
            first.index <= self.last_index + 1,
            "{}: append at {} leaves a gap after {}",
            self.shard_id,
            first.index,
            self.last_index
        );
        let cf = self.engine.cf(CF_RAFT);
        for e in entries {
            batch.put_cf(cf, log_key(self.shard_id, e.index), e.encode_to_vec());
        }
        if last.index < self.last_index {
            // A new leader's entries replace a longer conflicting tail.
            batch.delete_range_cf(
                cf,
                log_key(self.shard_id, last.index + 1),
                log_key(self.shard_id, self.last_index + 1),
            );
        }
        self.last_index = last.index;
        self.last_term = last.term;
        self.cache.append(entries);
    }

    pub fn stage_hard_state(&mut self, batch: &mut WriteBatch, hs: &HardState) {
        self.hard_state = hs.clone();
        batch.put_cf(self.engine.cf(CF_RAFT), raft_key(self.shard_id, RaftKey::HardState), hs.encode_to_vec());
    }

    /// Records a new committed index (from a `LightReady`).
    pub fn stage_commit(&mut self, batch: &mut WriteBatch, commit: u64) {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.stage_hard_state(batch, &hs);
    }

    pub fn stage_conf_state(&mut self, batch: &mut WriteBatch, cs: &ConfState) {
        self.conf_state = cs.clone();
        batch.put_cf(self.engine.cf(CF_RAFT), raft_key(self.shard_id, RaftKey::ConfState), cs.encode_to_vec());
    }

    /// Replaces the log with a snapshot's position: every entry is dropped,
    /// and the log continues after `metadata.index`. (The data is installed
    /// by the caller, in the same batch.)
    pub fn stage_snapshot(&mut self, batch: &mut WriteBatch, metadata: &SnapshotMetadata) {
        let cf = self.engine.cf(CF_RAFT);
        batch.delete_range_cf(cf, log_key(self.shard_id, 0), log_key(self.shard_id, u64::MAX));
        self.truncated_index = metadata.index;
        self.truncated_term = metadata.term;
        self.last_index = metadata.index;
        self.last_term = metadata.term;
        self.cache.clear();
        self.put_truncated(batch);
        let cs = metadata.conf_state.clone().unwrap_or_default();
        self.stage_conf_state(batch, &cs);
        if self.hard_state.commit < metadata.index {
            let mut hs = self.hard_state.clone();
            hs.commit = metadata.index;
            hs.term = hs.term.max(metadata.term);
            self.stage_hard_state(batch, &hs);
        }
    }

    /// Discards entries up to and including `index`, which must be applied.
    pub fn stage_compact(&mut self, batch: &mut WriteBatch, index: u64) -> raft::Result<()> {
        if index <= self.truncated_index {
            return Ok(());
        }
        assert!(index <= self.last_index, "{}: compact to {index} beyond last {}", self.shard_id, self.last_index);
        let term = raft::Storage::term(self, index)?;
        let cf = self.engine.cf(CF_RAFT);
        batch.delete_range_cf(cf, log_key(self.shard_id, self.truncated_index + 1), log_key(self.shard_id, index + 1));
        self.truncated_index = index;
        self.truncated_term = term;
        self.cache.compact(index);
        self.put_truncated(batch);
        Ok(())
    }

    /// Drops the cached entries up to and including `index`: nothing
    /// should need them soon (they are read from RocksDB if asked for).
    pub fn release_cached(&mut self, index: u64) {
        self.cache.compact(index);
    }

    fn put_truncated(&self, batch: &mut WriteBatch) {
        let t = proto::storage::TruncatedState { index: self.truncated_index, term: self.truncated_term };
        batch.put_cf(
            self.engine.cf(CF_RAFT),
            raft_key(self.shard_id, RaftKey::TruncatedState),
            prost::Message::encode_to_vec(&t),
        );
    }

    /// Adds the stored entries `[low, high)` to `entries` (adding their
    /// sizes to `size`), stopping before `max_size` is exceeded (after one
    /// entry at least); whether it added them all.
    fn read_stored(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
        entries: &mut Vec<Entry>,
        size: &mut u64,
    ) -> raft::Result<bool> {
        let cf = self.engine.cf(CF_RAFT);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(log_key(self.shard_id, high));
        let mut it = self.engine.db().raw_iterator_cf_opt(cf, opts);
        it.seek(log_key(self.shard_id, low));
        let mut expected = low;
        while let Some(v) = it.value() {
            let entry: Entry = decode_raft(v, "log entry");
            if entry.index != expected {
                return Err(storage_err(format!("log gap: found {} where {expected} belongs", entry.index)));
            }
            if !take_within(entries, size, max_size, entry) {
                return Ok(false);
            }
            expected += 1;
            it.next();
        }
        it.status().map_err(storage_err)?;
        Ok(expected == high)
    }

    fn read_entry(&self, index: u64) -> raft::Result<Entry> {
        if let Some(e) = self.cache.get(index) {
            return Ok(e.clone());
        }
        let bytes = self
            .engine
            .db()
            .get_cf(self.engine.cf(CF_RAFT), log_key(self.shard_id, index))
            .map_err(storage_err)?
            .ok_or(raft::Error::Store(StorageError::Unavailable))?;
        Ok(decode_raft(&bytes, "log entry"))
    }

    /// The event loop's time for this step, which snapshot reuse and
    /// retries are paced by (the store never reads a clock).
    pub fn set_now(&mut self, now: Instant) {
        self.now = Some(now);
    }

    /// Where this replica's snapshots come from (`storage/snapshot.rs`).
    pub fn snapshot_source(&self) -> &SnapshotSource {
        &self.snapshots
    }
}

impl raft::Storage for RaftLogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(storage_err(format!("entries [{low}, {high}) beyond the last index {}", self.last_index)));
        }
        let max_size = max_size.into();
        // Older entries from RocksDB, the newest from the cache.
        let cached_from = self.cache.first_index().map_or(high, |first| first.clamp(low, high));
        let mut entries = Vec::with_capacity((high - low).min(256) as usize);
        let mut size = 0u64;
        let stored_all = low == cached_from || self.read_stored(low, cached_from, max_size, &mut entries, &mut size)?;
        if stored_all {
            for entry in (cached_from..high).map_while(|index| self.cache.get(index)) {
                if !take_within(&mut entries, &mut size, max_size, entry.clone()) {
                    break;
                }
            }
        }
        if entries.is_empty() && low < high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated_index {
            return Ok(self.truncated_term);
        }
        if idx < self.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if idx == self.last_index {
            return Ok(self.last_term);
        }
        Ok(self.read_entry(idx)?.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    /// Built off the event loop; `SnapshotTemporarilyUnavailable` until
    /// then (`storage/snapshot.rs`), and before the loop's first step
    /// gave the store a time. Never older than the log's start.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let Some(now) = self.now else {
            return Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable));
        };
        self.snapshots.get(request_index, self.truncated_index, to, now)
    }
}

/// Adds `entry` to `entries` (its size to `size`) unless that exceeds
/// `max_size`; the first entry always goes in, as raft-rs requires.
/// Whether it went in.
fn take_within(entries: &mut Vec<Entry>, size: &mut u64, max_size: Option<u64>, entry: Entry) -> bool {
    *size += entry.encoded_len() as u64;
    if !entries.is_empty() && max_size.is_some_and(|m| *size > m) {
        return false;
    }
    entries.push(entry);
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use raft::Storage as _;

    use super::*;
    use crate::storage::snapshot::SnapshotDir;
    use crate::storage::Identity;

    const SHARD: ShardId = ShardId(7);

    struct Log {
        _dir: tempfile::TempDir,
        engine: Engine,
        snapshots: Arc<SnapshotDir>,
        /// The store under test: appends go through it, so it caches.
        store: RaftLogStore,
    }

    impl Log {
        fn new(cache_bytes: usize) -> Log {
            let dir = tempfile::tempdir().unwrap();
            let identity = Identity { cluster_id: "t".into(), server_id: 1, layout_fingerprint: "l".into() };
            let engine = Engine::open(dir.path(), &identity).unwrap();
            let snapshots = SnapshotDir::open(dir.path()).unwrap();
            let mut batch = WriteBatch::default();
            RaftLogStore::bootstrap(&engine, &mut batch, SHARD, &[1]);
            engine.write(batch, false).unwrap();
            let mut store = Self::load(&engine, &snapshots);
            store.cache = EntryCache::new(cache_bytes);
            Log { _dir: dir, engine, snapshots, store }
        }

        /// A store loaded from RocksDB: its cache is empty, so it reads
        /// what is stored.
        fn load(engine: &Engine, snapshots: &Arc<SnapshotDir>) -> RaftLogStore {
            let source = SnapshotSource::new(engine.clone(), SHARD, snapshots.clone(), u64::MAX, Arc::default());
            RaftLogStore::load(engine, SHARD, source).unwrap()
        }

        fn stage(&mut self, stage: impl FnOnce(&mut RaftLogStore, &mut WriteBatch)) {
            let mut batch = WriteBatch::default();
            stage(&mut self.store, &mut batch);
            self.engine.write(batch, false).unwrap();
        }

        /// Every read the cached store answers, the stored log answers the
        /// same.
        fn check(&self) {
            let stored = Self::load(&self.engine, &self.snapshots);
            let (first, last) = (self.store.first_log_index(), self.store.last_log_index());
            assert_eq!((stored.first_log_index(), stored.last_log_index()), (first, last));
            for index in first.saturating_sub(1)..=last + 1 {
                assert_eq!(fmt(self.store.term(index)), fmt(stored.term(index)), "term({index})");
            }
            for low in first.saturating_sub(1)..=last + 1 {
                for high in low..=last + 2 {
                    for max_size in [None, Some(0), Some(150), Some(1_000)] {
                        let (cached, read) =
                            (entries(&self.store, low, high, max_size), entries(&stored, low, high, max_size));
                        assert_eq!(cached, read, "entries({low}, {high}, {max_size:?})");
                    }
                }
            }
        }
    }

    fn entries(store: &RaftLogStore, low: u64, high: u64, max_size: Option<u64>) -> String {
        fmt(store
            .entries(low, high, max_size, GetEntriesContext::empty(false))
            .map(|es| es.iter().map(|e| (e.index, e.term, e.data.len())).collect::<Vec<_>>()))
    }

    fn fmt<T: std::fmt::Debug>(r: raft::Result<T>) -> String {
        format!("{r:?}")
    }

    fn entry(index: u64, term: u64, bytes: usize) -> Entry {
        Entry { index, term, data: vec![index as u8; bytes], ..Default::default() }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Entries from `back` before the log's end (overwriting that many).
        Append {
            back: u64,
            sizes: Vec<usize>,
        },
        Compact {
            back: u64,
        },
        Release {
            back: u64,
        },
        Snapshot {
            ahead: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..4u64, prop::collection::vec(0..120usize, 1..6)).prop_map(|(back, sizes)| Op::Append { back, sizes }),
            1 => (0..8u64).prop_map(|back| Op::Compact { back }),
            2 => (0..8u64).prop_map(|back| Op::Release { back }),
            1 => (0..3u64).prop_map(|ahead| Op::Snapshot { ahead }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Goal: the cache changes no answer. Whatever appends (some
        /// replacing a tail), compactions, releases and snapshots a log
        /// goes through, the store that caches reads the same entries and
        /// terms as one that reads RocksDB, for every range and size bound.
        #[test]
        fn the_cached_tail_reads_as_the_stored_log(ops in prop::collection::vec(op(), 1..24), cache_bytes in 0..600usize) {
            let mut log = Log::new(cache_bytes);
            let mut term = 1;
            for op in ops {
                let (first, last) = (log.store.first_log_index(), log.store.last_log_index());
                match op {
                    Op::Append { back, sizes } => {
                        let start = (last + 1).saturating_sub(back).max(first);
                        if start <= last {
                            term += 1; // a new leader replaces the tail
                        }
                        let new: Vec<Entry> =
                            sizes.iter().enumerate().map(|(i, &b)| entry(start + i as u64, term, b)).collect();
                        log.stage(|s, b| s.stage_append(b, &new));
                    }
                    Op::Compact { back } => {
                        let to = last.saturating_sub(back);
                        log.stage(|s, b| s.stage_compact(b, to).unwrap());
                    }
                    Op::Release { back } => log.store.release_cached(last.saturating_sub(back)),
                    Op::Snapshot { ahead } => {
                        term += 1;
                        let metadata = SnapshotMetadata { index: last + ahead, term, ..Default::default() };
                        log.stage(|s, b| s.stage_snapshot(b, &metadata));
                    }
                }
                log.check();
            }
        }
    }

    /// Goal: the cache keeps within its budget (the newest entry always),
    /// and reads past it come from RocksDB.
    #[test]
    fn the_cache_keeps_the_newest_entries_within_its_budget() {
        let mut log = Log::new(300);
        let batch: Vec<Entry> = (1..=10).map(|i| entry(i, 1, 100)).collect();
        log.stage(|s, b| s.stage_append(b, &batch));
        let cached: Vec<u64> = log.store.cache.entries.iter().map(|e| e.index).collect();
        assert!(log.store.cache.bytes <= 300, "{} bytes cached", log.store.cache.bytes);
        assert_eq!(cached.last(), Some(&10));
        assert!(cached.len() < 10, "everything cached: {cached:?}");
        assert_eq!(entries(&log.store, 1, 11, None), entries(&Log::load(&log.engine, &log.snapshots), 1, 11, None));
        let big = [entry(11, 1, 1_000)];
        log.stage(|s, b| s.stage_append(b, &big));
        assert_eq!(log.store.cache.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [11]);
        log.store.release_cached(11);
        assert!(log.store.cache.entries.is_empty());
        log.check();
    }
}
