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
//! Invariants:
//! - `truncated.index <= hard_state.commit` once anything is compacted: only
//!   applied (hence committed) entries are ever compacted.
//! - Entries `first_index..=last_index` are all present and contiguous.
//! - A snapshot is taken from one RocksDB snapshot, so its data, apply state
//!   and conf state describe the same applied index (`storage/snapshot.rs` builds
//!   it, off the event loop).

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
        self.put_truncated(batch);
        Ok(())
    }

    fn put_truncated(&self, batch: &mut WriteBatch) {
        let t = proto::storage::TruncatedState { index: self.truncated_index, term: self.truncated_term };
        batch.put_cf(
            self.engine.cf(CF_RAFT),
            raft_key(self.shard_id, RaftKey::TruncatedState),
            prost::Message::encode_to_vec(&t),
        );
    }

    fn read_entry(&self, index: u64) -> raft::Result<Entry> {
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
        let cf = self.engine.cf(CF_RAFT);
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(log_key(self.shard_id, high));
        let mut it = self.engine.db().raw_iterator_cf_opt(cf, opts);
        it.seek(log_key(self.shard_id, low));
        let mut entries = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        let mut expected = low;
        while let Some(v) = it.value() {
            let entry: Entry = decode_raft(v, "log entry");
            if entry.index != expected {
                return Err(storage_err(format!("log gap: found {} where {expected} belongs", entry.index)));
            }
            size += entry.encoded_len() as u64;
            // Always at least one entry, then stop before exceeding max_size.
            if !entries.is_empty() && max_size.is_some_and(|m| size > m) {
                break;
            }
            entries.push(entry);
            expected += 1;
            it.next();
        }
        it.status().map_err(storage_err)?;
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
