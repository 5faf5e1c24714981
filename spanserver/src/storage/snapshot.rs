//! Raft snapshots of a shard: built off the event loop, sent as a file,
//! installed by ingesting it.
//!
//! A follower too far behind (its next entry compacted away at the leader)
//! needs the shard's whole state. That can be big, so no step of it may
//! hold the shard in memory or stall the event loop, which serves every
//! other shard of the server:
//!
//! ```text
//! leader                                   follower
//!  raft-rs asks Storage::snapshot(i)
//!   ├─ built, index >= i: the header ──>   MsgSnapshot{metadata, header}
//!   └─ else: start a build thread,            + the data file, streamed in
//!      answer SnapshotTemporarilyUnavailable    chunks to data_dir/snapshots/
//!      (raft-rs asks again later)           then handed to the event loop
//!  build thread: one RocksDB snapshot ──>   Ready.snapshot: install
//!    header: apply/conf state, term,          batch (synced): delete the range,
//!      descriptor, prepared, decisions,         records, raft state, "ingest
//!      GC watermark                              pending" marker
//!    data: an SST file of the range's          then ingest the SST (moved in),
//!      versions, streamed from the iterator     then delete the marker
//! ```
//!
//! - **Consistency.** Header and data come from one RocksDB snapshot, so they
//!   describe the same applied index (the apply batch writes data and apply
//!   state together).
//! - **Bounded.** The build streams the iterator into an `SstFileWriter`;
//!   the transport streams the file in [`crate::limits::SNAPSHOT_CHUNK_BYTES`]
//!   chunks; the receiver writes chunks to disk; RocksDB ingests the file.
//!   A server runs at most [`crate::limits::SNAPSHOT_BUILDS_MAX`] builds
//!   at once; a leader finding none free answers "not yet" as for a build
//!   under way.
//!   A shard whose data exceeds the configured `raft.snapshot_bytes_max`
//!   is not sent (the build fails, is logged, and is retried later): the
//!   follower stays behind until the shard is split, and no leader ever
//!   fails because of it (raft-rs turns any other `snapshot()` error into
//!   a fatal one).
//! - **Readers during an install.** Between the batch that deletes the old
//!   data and the ingest of the new, the range is empty. Each replica keeps
//!   an install sequence ([`InstallSeq`]: installs running, and a
//!   generation); a read notes it before taking its RocksDB snapshot and
//!   checks it after reading, and answers `Unavailable` if an install
//!   overlapped (a seqlock). An install also holds off the reads of every
//!   other replica here whose range it overlaps: a parent that has not
//!   applied its split yet still serves the child's keys while the
//!   child's first snapshot arrives.
//! - **Crashes.** The marker written with the batch names the file; a
//!   replica loading with the marker present ingests the file again if it
//!   is still there (RocksDB moved it in otherwise) before serving.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use prost011::Message as _;
use raft::eraftpb::{ConfState, Entry, Snapshot, SnapshotMetadata};
use rocksdb::{Options, SstFileWriter};

use crate::storage::keycode::{range_bounds, RaftKey, TxnKey};
use crate::storage::mvcc::Reader;
use crate::storage::raft_log::decode_record;
use crate::storage::{Engine, CF_DATA};
use meta::ShardId;

/// A failed build is retried no sooner than this (the shard may have
/// shrunk, or the disk recovered).
const BUILD_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A built snapshot is reused for lagging followers this long; after
/// that, a request builds a fresh one (so followers catch up from a
/// recent state and the leader's log can be compacted past it).
const BUILT_REUSE_FOR: Duration = Duration::from_secs(60);

/// Where a server keeps snapshot files: `DATA_DIR/snapshots`.
#[derive(Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
    next: AtomicU64,
    /// Builds running on this server ([`crate::limits::SNAPSHOT_BUILDS_MAX`]).
    builds: AtomicUsize,
}

impl SnapshotDir {
    /// Creates the directory. Files of earlier runs stay until the
    /// replicas have loaded and [`SnapshotDir::clean`] removes those no
    /// pending install's marker names.
    pub fn open(data_dir: &Path) -> std::io::Result<Arc<SnapshotDir>> {
        let dir = data_dir.join("snapshots");
        std::fs::create_dir_all(&dir)?;
        Ok(Arc::new(SnapshotDir {
            dir,
            next: AtomicU64::new(rand::random::<u32>() as u64),
            builds: AtomicUsize::new(0),
        }))
    }

    /// Takes one of the server's build slots, if one is free.
    fn start_build(&self) -> bool {
        self.builds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < crate::limits::SNAPSHOT_BUILDS_MAX).then_some(n + 1)
            })
            .is_ok()
    }

    fn end_build(&self) {
        self.builds.fetch_sub(1, Ordering::SeqCst);
    }

    /// Removes every file but `keep` (the ones pending installs name).
    pub fn clean(&self, keep: &[PathBuf]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            if !keep.contains(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// A fresh path for a file of `shard`, `kind` "out" or "in".
    pub fn new_path(&self, shard: ShardId, kind: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.dir.join(format!("{kind}-{}-{n}.sst", shard.0))
    }

    /// Copies `from` into this directory as an incoming file (for
    /// in-process transports, which share a file system with the sender).
    pub fn receive_copy(&self, shard: ShardId, from: &Path) -> std::io::Result<PathBuf> {
        let to = self.new_path(shard, "in");
        std::fs::copy(from, &to)?;
        std::fs::File::open(&to)?.sync_all()?;
        Ok(to)
    }
}

/// The data part of a built snapshot: an SST file of the shard's versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub bytes: u64,
}

/// A snapshot ready to send: raft-rs's message part, and the data file.
#[derive(Debug, Clone)]
struct Built {
    snapshot: Snapshot,
    file: Option<SnapshotFile>,
    id: u64,
    at: Instant,
}

#[derive(Debug, Default)]
enum Slot {
    #[default]
    Idle,
    Building,
    Built(Built),
    Failed {
        at: Instant,
    },
}

/// The sending side for one replica: what `raft::Storage::snapshot`
/// answers, and the build thread behind it.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    engine: Engine,
    shard: ShardId,
    dir: Arc<SnapshotDir>,
    bytes_max: u64,
    gc_watermark: Arc<AtomicU64>,
    slot: Arc<Mutex<Slot>>,
    /// Signalled when a build ends ([`SnapshotSource::wait_for_build`]).
    built: Arc<Condvar>,
}

/// Why a snapshot cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the shard's data exceeds the snapshot limit of {bytes_max} bytes; it must be split before a follower can catch up by snapshot")]
    TooBig { bytes_max: u64 },
    #[error("{0}")]
    Storage(String),
}

impl SnapshotSource {
    pub fn new(
        engine: Engine,
        shard: ShardId,
        dir: Arc<SnapshotDir>,
        bytes_max: u64,
        gc_watermark: Arc<AtomicU64>,
    ) -> Self {
        SnapshotSource { engine, shard, dir, bytes_max, gc_watermark, slot: Arc::default(), built: Arc::default() }
    }

    /// raft-rs wants a snapshot at or after `request_index` for a
    /// follower whose next entry is no longer in the log (which starts
    /// after `truncated_index`): the built one if it will do, else
    /// `SnapshotTemporarilyUnavailable` while one is built in the
    /// background. Never any other error (raft-rs makes those fatal).
    ///
    /// A built snapshot older than `truncated_index` will not do, though
    /// raft-rs usually asks with `request_index` 0: the follower would
    /// still miss the entries between it and the log, and one already
    /// past it ignores it, so the same stale snapshot would be sent over
    /// and over (the stepped simulation found that loop: a follower
    /// restarted after the log was compacted again got one snapshot
    /// every few milliseconds until the built one aged out).
    ///
    /// Nor will one whose configuration lacks the replica it is for
    /// (`to`): a replica added since it was built ignores it (raft-rs
    /// restores only a snapshot that names it), so a new learner would
    /// wait until the built one aged out.
    ///
    /// `now` is the event loop's step time: a built snapshot's age and a
    /// failed build's retry pacing are measured in it, never by reading
    /// a clock, so a stepped run does not depend on wall time.
    pub fn get(&self, request_index: u64, truncated_index: u64, to: u64, now: Instant) -> raft::Result<Snapshot> {
        let unavailable = || Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable));
        let wanted = request_index.max(truncated_index);
        let names_to = |m: &raft::eraftpb::SnapshotMetadata| {
            m.conf_state.as_ref().is_some_and(|cs| {
                [&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next].iter().any(|ids| ids.contains(&to))
            })
        };
        let mut slot = self.slot.lock().expect("snapshot slot");
        match &*slot {
            Slot::Built(b)
                if b.snapshot.metadata.as_ref().is_some_and(|m| m.index >= wanted && names_to(m))
                    && now.saturating_duration_since(b.at) < BUILT_REUSE_FOR =>
            {
                return Ok(b.snapshot.clone());
            }
            Slot::Building => return unavailable(),
            Slot::Failed { at } if now.saturating_duration_since(*at) < BUILD_RETRY_AFTER => return unavailable(),
            _ => {}
        }
        if !self.dir.start_build() {
            return unavailable(); // the server builds enough already
        }
        let old = std::mem::replace(&mut *slot, Slot::Building);
        drop(slot);
        if let Slot::Built(b) = old {
            if let Some(f) = b.file {
                // A transfer in progress keeps its open file.
                let _ = std::fs::remove_file(f.path);
            }
        }
        let source = self.clone();
        let spawned = std::thread::Builder::new().name(format!("spandb-snapshot-{}", self.shard.0)).spawn(move || {
            let started = Instant::now();
            let result = source.build(now);
            let mut slot = source.slot.lock().expect("snapshot slot");
            *slot = match result {
                Ok(built) => {
                    tracing::info!(
                        shard = %source.shard,
                        index = built.snapshot.metadata.as_ref().map_or(0, |m| m.index),
                        bytes = built.file.as_ref().map_or(0, |f| f.bytes),
                        took_ms = started.elapsed().as_millis() as u64,
                        "built a snapshot"
                    );
                    Slot::Built(built)
                }
                Err(e) => {
                    tracing::error!(shard = %source.shard, "cannot build a snapshot: {e}");
                    Slot::Failed { at: now }
                }
            };
            source.dir.end_build();
            source.built.notify_all();
        });
        if spawned.is_err() {
            self.dir.end_build();
            *self.slot.lock().expect("snapshot slot") = Slot::Failed { at: now };
        }
        unavailable()
    }

    /// Returns once no build is running. For drivers that must see the
    /// same thing every run (the stepped simulation waits after each step,
    /// so whether raft-rs finds a snapshot built does not depend on how
    /// fast the build thread was); the server itself never waits.
    pub fn wait_for_build(&self) {
        let slot = self.slot.lock().expect("snapshot slot");
        let _idle = self.built.wait_while(slot, |s| matches!(s, Slot::Building)).expect("snapshot slot");
    }

    /// The data file of the built snapshot `id`, if it is still the one
    /// kept (the transport sends it along with the message).
    pub fn file(&self, id: u64) -> Option<SnapshotFile> {
        match &*self.slot.lock().expect("snapshot slot") {
            Slot::Built(b) if b.id == id => b.file.clone(),
            _ => None,
        }
    }

    /// Builds a snapshot from one RocksDB snapshot (module docs).
    /// Stamped `at`, the step time of the ask that started it.
    fn build(&self, at: Instant) -> Result<Built, BuildError> {
        let storage = |e: crate::error::Error| BuildError::Storage(e.to_string());
        let reader = Reader::new(&self.engine);
        let get = |kind| reader.raft_record(self.shard, kind).map_err(storage);
        let apply: proto::storage::ApplyState =
            get(RaftKey::ApplyState)?.map(|b| decode_record(&b, "apply state")).unwrap_or_default();
        let conf_state: ConfState = get(RaftKey::ConfState)?
            .map(|b| ConfState::decode(b.as_slice()).map_err(|e| BuildError::Storage(e.to_string())))
            .transpose()?
            .unwrap_or_default();
        let truncated: proto::storage::TruncatedState =
            get(RaftKey::TruncatedState)?.map(|b| decode_record(&b, "truncated state")).unwrap_or_default();
        let record: proto::storage::ReplicaRecord = get(RaftKey::Replica)?
            .map(|b| decode_record(&b, "replica record"))
            .ok_or_else(|| BuildError::Storage("replica record missing".into()))?;
        let descriptor = record.descriptor.unwrap_or_default();
        let term = if apply.applied_index == truncated.index {
            truncated.term
        } else {
            let bytes = reader
                .raft_log_entry(self.shard, apply.applied_index)
                .map_err(storage)?
                .ok_or_else(|| BuildError::Storage(format!("applied entry {} missing", apply.applied_index)))?;
            Entry::decode(bytes.as_slice()).map_err(|e| BuildError::Storage(e.to_string()))?.term
        };
        let prepared = reader
            .txn_records(self.shard, TxnKey::Prepared)
            .map_err(storage)?
            .into_iter()
            .map(|(_, v)| decode_record::<proto::storage::PreparedTxn>(&v, "prepared transaction"))
            .collect();
        let decisions = reader
            .txn_records(self.shard, TxnKey::Decision)
            .map_err(storage)?
            .into_iter()
            .map(|(txn_id, v)| proto::storage::DecisionEntry { txn_id, decision: Some(decode_record(&v, "decision")) })
            .collect();
        // Read after the RocksDB snapshot was taken: GC raises the
        // watermark before it deletes, so this is at least the watermark
        // of the data read (possibly higher: then the follower is merely
        // more careful).
        let gc_watermark = self.gc_watermark.load(Ordering::SeqCst);
        let id = rand::random::<u64>();
        let file = self.write_data(&reader, &descriptor)?;
        let header = proto::storage::ShardSnapshot {
            descriptor: Some(descriptor),
            max_applied_ts: apply.max_applied_ts,
            gc_watermark,
            prepared,
            decisions,
            snapshot_id: id,
            data_bytes: file.as_ref().map_or(0, |f| f.bytes),
        };
        let snapshot = Snapshot {
            data: prost::Message::encode_to_vec(&header),
            metadata: Some(SnapshotMetadata { conf_state: Some(conf_state), index: apply.applied_index, term }),
        };
        Ok(Built { snapshot, file, id, at })
    }

    /// Streams the shard's versions into an SST file (none if the shard
    /// is empty), within the size limit.
    fn write_data(
        &self,
        reader: &Reader<'_>,
        descriptor: &proto::ShardDescriptor,
    ) -> Result<Option<SnapshotFile>, BuildError> {
        let path = self.dir.new_path(self.shard, "out");
        let opts = sst_options();
        let mut writer = SstFileWriter::create(&opts);
        let rocks = |e: rocksdb::Error| BuildError::Storage(e.to_string());
        writer.open(&path).map_err(rocks)?;
        let (lower, upper) = range_bounds(&descriptor.start_key, &descriptor.end_key);
        let mut bytes = 0u64;
        let mut count = 0u64;
        let written = reader
            .visit_raw(CF_DATA, &lower, &upper, |k, v| {
                bytes += (k.len() + v.len()) as u64;
                if bytes > self.bytes_max {
                    return Err(crate::error::Error::Unavailable("too big".into()));
                }
                count += 1;
                writer.put(k, v).map_err(crate::error::Error::from)
            })
            .map_err(|e| match e {
                crate::error::Error::Unavailable(_) => BuildError::TooBig { bytes_max: self.bytes_max },
                other => BuildError::Storage(other.to_string()),
            });
        let finished = written.and_then(|()| if count == 0 { Ok(()) } else { writer.finish().map_err(rocks) });
        if finished.is_err() || count == 0 {
            let _ = std::fs::remove_file(&path);
        }
        finished?;
        if count == 0 {
            return Ok(None);
        }
        let bytes = std::fs::metadata(&path).map_err(|e| BuildError::Storage(e.to_string()))?.len();
        Ok(Some(SnapshotFile { path, bytes }))
    }
}

/// The options SST files are written with (the data column family's
/// compression and filters).
fn sst_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let mut table = rocksdb::BlockBasedOptions::default();
    crate::storage::version_filters(&mut o, &mut table);
    o.set_block_based_table_factory(&table);
    o
}

/// Ingests `path` into the data column family, moving the file in.
pub fn ingest(engine: &Engine, path: &Path) -> Result<(), rocksdb::Error> {
    let mut opts = rocksdb::IngestExternalFileOptions::default();
    opts.set_move_files(true);
    engine.db().ingest_external_file_cf_opts(engine.cf(CF_DATA), &opts, vec![path])
}

/// A replica's guard against reads overlapping a snapshot install into
/// its range (module docs: readers during an install): its own install,
/// or one of another replica here whose range overlaps it (a stale
/// parent and its split child's first snapshot), so installs may
/// overlap. A seqlock with a count: `active` installs, and a
/// `generation` every begin and end moves.
#[derive(Debug, Default)]
pub struct InstallSeq {
    active: AtomicU64,
    generation: AtomicU64,
}

impl InstallSeq {
    /// Before the install's deletion is written.
    pub fn begin(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Once the install's data is ingested.
    pub fn end(&self) {
        let before = self.active.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a snapshot install ended that did not begin");
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Taken before a read: `None` while an install runs.
    pub fn read_begin(&self) -> Option<u64> {
        let generation = self.generation.load(Ordering::SeqCst);
        (self.active.load(Ordering::SeqCst) == 0).then_some(generation)
    }

    /// After a read: did no install overlap it?
    pub fn read_valid(&self, begun: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == begun
    }
}

#[cfg(test)]
mod tests {
    use rocksdb::WriteBatch;
    use truetime::Timestamp;

    use super::*;
    use crate::shard::Replica;
    use crate::storage::keycode::raft_key;
    use crate::storage::{mvcc, Identity, CF_RAFT};

    struct Server {
        _dir: tempfile::TempDir,
        engine: Engine,
        snapshots: Arc<SnapshotDir>,
    }

    fn server() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity { cluster_id: "t".into(), server_id: 1, layout_fingerprint: "l".into() };
        let engine = Engine::open(dir.path(), &identity).unwrap();
        let snapshots = SnapshotDir::open(dir.path()).unwrap();
        Server { _dir: dir, engine, snapshots }
    }

    /// Shard 1, `["", "m")`, bootstrapped, with `versions` applied at index 7.
    fn shard_with(s: &Server, versions: &[(&str, u64, Option<&str>)]) {
        let descriptor = meta::ShardDescriptor {
            shard_id: ShardId(1),
            end_key: b"m".to_vec(),
            epoch: meta::ShardEpoch::INITIAL,
            replicas: vec![meta::ReplicaDescriptor {
                replica_id: meta::ReplicaId(1),
                server_id: meta::ServerId(1),
                role: meta::ReplicaRole::Voter,
            }],
            ..Default::default()
        };
        let mut batch = WriteBatch::default();
        Replica::bootstrap(&s.engine, &mut batch, &descriptor, meta::ReplicaId(1));
        let apply = proto::storage::ApplyState { applied_index: 7, max_applied_ts: 90, last_split_index: 0 };
        batch.put_cf(
            s.engine.cf(CF_RAFT),
            raft_key(ShardId(1), RaftKey::ApplyState),
            prost::Message::encode_to_vec(&apply),
        );
        let truncated = proto::storage::TruncatedState { index: 7, term: 2 };
        batch.put_cf(
            s.engine.cf(CF_RAFT),
            raft_key(ShardId(1), RaftKey::TruncatedState),
            prost::Message::encode_to_vec(&truncated),
        );
        for (k, t, v) in versions {
            mvcc::put_version(&s.engine, &mut batch, k.as_bytes(), Timestamp::from_nanos(*t), v.map(str::as_bytes));
        }
        s.engine.write(batch, false).unwrap();
    }

    fn source(s: &Server, bytes_max: u64) -> SnapshotSource {
        SnapshotSource::new(s.engine.clone(), ShardId(1), s.snapshots.clone(), bytes_max, Arc::default())
    }

    /// Goal: a built snapshot carries the shard's state as of its applied
    /// index, and its data file, ingested elsewhere, reproduces exactly the
    /// shard's versions (tombstones included), none of another shard's.
    #[test]
    fn a_snapshot_file_ingested_elsewhere_reproduces_the_shard() {
        let leader = server();
        shard_with(&leader, &[("a", 10, Some("1")), ("a", 20, None), ("b", 30, Some("2")), ("z", 40, Some("other"))]);
        let built = source(&leader, u64::MAX).build(Instant::now()).unwrap();
        let metadata = built.snapshot.metadata.clone().unwrap();
        assert_eq!((metadata.index, metadata.term), (7, 2));
        let header: proto::storage::ShardSnapshot = prost::Message::decode(built.snapshot.data.as_slice()).unwrap();
        assert_eq!(header.max_applied_ts, 90);
        let file = built.file.expect("a shard with data has a file");
        assert_eq!(header.data_bytes, file.bytes);

        let follower = server();
        let copy = follower.snapshots.receive_copy(ShardId(1), &file.path).unwrap();
        ingest(&follower.engine, &copy).unwrap();
        let versions: Vec<(String, u64, Option<String>)> = Reader::new(&follower.engine)
            .all_versions(b"", b"")
            .unwrap()
            .into_iter()
            .map(|v| {
                (String::from_utf8(v.key).unwrap(), v.ts.as_nanos(), v.value.map(|v| String::from_utf8(v).unwrap()))
            })
            .collect();
        let want = [("a", 20, None), ("a", 10, Some("1")), ("b", 30, Some("2"))]
            .map(|(k, t, v): (&str, u64, Option<&str>)| (k.to_string(), t, v.map(str::to_string)));
        assert_eq!(versions, want);
    }

    /// Goal: a shard over the size limit yields no snapshot and an error
    /// that says why (never a file, never a fatal error for raft-rs), and
    /// an empty shard yields a snapshot without a file.
    #[test]
    fn builds_are_bounded_and_empty_shards_have_no_file() {
        let s = server();
        shard_with(&s, &[("a", 10, Some("0123456789")), ("b", 10, Some("0123456789"))]);
        let err = source(&s, 30).build(Instant::now()).unwrap_err();
        assert!(matches!(err, BuildError::TooBig { bytes_max: 30 }), "{err}");
        assert_eq!(std::fs::read_dir(&s.snapshots.dir).unwrap().count(), 0, "no file is left behind");
        let source = source(&s, 30);
        let first = source.get(1, 0, 1, Instant::now());
        assert!(matches!(first, Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable))));

        let empty = server();
        shard_with(&empty, &[("z", 10, Some("outside the shard"))]);
        let built =
            super::SnapshotSource::new(empty.engine.clone(), ShardId(1), empty.snapshots.clone(), 30, Arc::default())
                .build(Instant::now())
                .unwrap();
        assert!(built.file.is_none());
    }

    /// Goal: a server builds at most `SNAPSHOT_BUILDS_MAX` snapshots at
    /// once: a leader that finds every build slot taken answers "not yet"
    /// without starting one, and builds once a slot is free.
    /// Method: take every slot by hand; ask twice (no build starts); free
    /// one; ask, wait for the build, ask again: the snapshot.
    #[test]
    fn a_server_builds_a_bounded_number_of_snapshots_at_once() {
        let s = server();
        shard_with(&s, &[("a", 10, Some("1"))]);
        for _ in 0..crate::limits::SNAPSHOT_BUILDS_MAX {
            assert!(s.snapshots.start_build());
        }
        assert!(!s.snapshots.start_build(), "no slot beyond the limit");
        let source = source(&s, u64::MAX);
        let now = Instant::now();
        for _ in 0..2 {
            source.wait_for_build();
            let r = source.get(1, 0, 1, now);
            assert!(matches!(r, Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable))));
        }
        assert!(matches!(*source.slot.lock().unwrap(), Slot::Idle), "no build started while the slots were taken");
        s.snapshots.end_build();
        let _ = source.get(1, 0, 1, now);
        source.wait_for_build();
        let built = source.get(1, 0, 1, now).expect("built once a slot was free");
        assert_eq!(built.metadata.map(|m| m.index), Some(7));
        assert!(s.snapshots.start_build(), "the finished build gave its slot back");
        assert!(!s.snapshots.start_build());
    }

    /// Goal: a built snapshot is handed out again while it reaches the
    /// start of the log and is young by the step's clock, and not once the
    /// log was compacted past it (a follower would still be behind; the
    /// regression of a resend loop), it aged out, or it is asked for a
    /// replica its configuration does not name (one added since).
    /// Method: build at index 7 (the fixture's applied index); ask with
    /// the log truncated at 7, then at 9 as after a compaction, at step
    /// times around the reuse limit.
    #[test]
    fn a_snapshot_older_than_the_log_start_is_not_reused() {
        let s = server();
        shard_with(&s, &[("a", 10, Some("1"))]);
        let source = source(&s, u64::MAX);
        let unavailable = |r: raft::Result<Snapshot>| {
            matches!(r, Err(raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable)))
        };
        let t0 = Instant::now();
        assert!(unavailable(source.get(0, 7, 1, t0)), "the first ask starts a build");
        source.wait_for_build();
        let built = source.get(0, 7, 1, t0).expect("the built snapshot reaches the log start");
        assert_eq!(built.metadata.unwrap().index, 7);
        let later = t0 + BUILT_REUSE_FOR - Duration::from_secs(1);
        assert!(source.get(0, 7, 1, later).is_ok(), "reused while young, by the step's clock");
        assert!(unavailable(source.get(0, 9, 1, t0)), "compacted past it: build a fresh one");
        source.wait_for_build();
        assert!(source.get(0, 7, 1, t0).is_ok(), "the fresh one");
        assert!(unavailable(source.get(0, 7, 1, t0 + BUILT_REUSE_FOR)), "aged out by the step's clock: rebuilt");
        source.wait_for_build();
        assert!(unavailable(source.get(0, 7, 9, t0)), "for a replica its configuration lacks: rebuilt");
        source.wait_for_build();
    }

    /// Goal: the install sequence lets a read through only if no install
    /// began before or during it.
    #[test]
    fn reads_overlapping_an_install_are_caught() {
        let seq = InstallSeq::default();
        let clean = seq.read_begin().unwrap();
        assert!(seq.read_valid(clean));
        seq.begin();
        assert_eq!(seq.read_begin(), None, "no read starts during an install");
        assert!(!seq.read_valid(clean), "a read that overlapped the start is refused");
        seq.end();
        assert!(!seq.read_valid(clean), "and one that spanned the whole install");
        assert!(seq.read_valid(seq.read_begin().unwrap()));
        // Two installs overlapping (its own, and a neighbour's over its
        // range): reads wait for both to end.
        seq.begin();
        seq.begin();
        seq.end();
        assert_eq!(seq.read_begin(), None, "one install still runs");
        seq.end();
        assert!(seq.read_valid(seq.read_begin().unwrap()));
    }
}
