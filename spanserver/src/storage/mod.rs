//! Storage: one RocksDB per spanserver, shared by all its replicas.
//!
//! ```text
//!   RocksDB (one per server, one directory)
//!   ├── cf "meta"   cluster id, server id, layout fingerprint, format version
//!   ├── cf "raft"   per shard: log entries, hard state, conf state,
//!   │               apply state, truncated state, replica record, GC watermark
//!   ├── cf "data"   MVCC versions of every shard hosted here (disjoint ranges)
//!   └── cf "txn"    per shard: prepared transactions and the decisions it
//!                   recorded as coordinator (`keycode::TxnKey`)
//! ```
//!
//! Why one RocksDB for many shards: the event loop writes the Raft state of
//! every replica that has work in ONE synced write batch per iteration (group
//! commit), so an fsync is shared by all shards rather than paid per shard.
//! Because shard ranges on a server are disjoint, all of them share the
//! `data` column family.
//!
//! Invariants:
//! - A data directory belongs to exactly one cluster id, one server id and
//!   one shard layout; [`Engine::open`] refuses any other (the check runs
//!   before anything is written).
//! - Storage failing under the event loop is fatal to the process, by one
//!   path, [`stop_on_storage_failure`]: a write that fails (after it,
//!   memory and disk may disagree), a snapshot's data that cannot be
//!   ingested, a read that applying an entry depends on (one replica
//!   skipping what the others applied would diverge from them). A replica
//!   must never continue from a state it cannot reproduce; it restarts
//!   from what is on disk, or an operator looks at the disk.

pub mod keycode;
pub mod mvcc;
pub mod raft_log;
pub mod snapshot;

/// Stops the process because storage failed under the event loop (module
/// docs): says what failed in the log and on stderr, then aborts, so no
/// destructor or other thread writes another byte.
pub fn stop_on_storage_failure(what: &str) -> ! {
    tracing::error!("storage failed, stopping so that replicas cannot diverge: {what}");
    eprintln!("fatal: storage failed: {what}");
    std::process::abort()
}

use std::path::Path;
use std::sync::{Arc, Mutex};

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use crate::limits;

pub const CF_META: &str = "meta";
pub const CF_RAFT: &str = "raft";
pub const CF_DATA: &str = "data";
pub const CF_TXN: &str = "txn";

/// Bumped when the on-disk format changes incompatibly.
const FORMAT_VERSION: &str = "2";

const META_FORMAT_VERSION: &[u8] = b"format_version";
const META_CLUSTER_ID: &[u8] = b"cluster_id";
const META_SERVER_ID: &[u8] = b"server_id";
const META_LAYOUT: &[u8] = b"layout";

/// Who a data directory must belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: String,
    pub server_id: u64,
    pub layout_fingerprint: String,
}

/// Why a data directory cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the database in {dir}: {source}")]
    RocksDb { dir: String, source: rocksdb::Error },
    #[error("data directory {dir} belongs to cluster {found:?}, not {expected:?}; refusing to start (use a fresh directory, or the right cluster description)")]
    OtherCluster { dir: String, found: String, expected: String },
    #[error("data directory {dir} belongs to server {found}, not server {expected}; refusing to start")]
    OtherServer { dir: String, found: String, expected: u64 },
    #[error("data directory {dir} was created for the layout [{found}], but the cluster description now says [{expected}]; a static layout cannot change under existing data")]
    LayoutChanged { dir: String, found: String, expected: String },
    #[error("data directory {dir} has format version {found:?}, this binary reads {FORMAT_VERSION:?}")]
    FormatVersion { dir: String, found: String },
}

/// Bloom filters over the data column family's keys without their
/// timestamps (`keycode`: every version of a user key shares the prefix
/// `0x01 | escape(key) | 0x00 0x00`), so a point read at a timestamp
/// skips every file that holds no version of its key instead of searching
/// each one's index and reading a block. Only `mvcc::Reader::get_version`
/// seeks by prefix; every other iterator over the column family must read
/// in total order (`set_total_order_seek`), or RocksDB may skip keys.
/// Also for the SST files a snapshot writes, so ingested files have them.
pub(crate) fn version_filters(o: &mut Options, table: &mut rocksdb::BlockBasedOptions) {
    table.set_bloom_filter(10.0, false);
    table.set_whole_key_filtering(false);
    o.set_prefix_extractor(rocksdb::SliceTransform::create(
        "spandb.version_prefix",
        keycode::versions_prefix,
        Some(keycode::is_version_key),
    ));
}

/// Memtable inserts into the raft column family are hinted per key prefix
/// of a shard and a record kind (`keycode::raft_key`, 9 bytes).
const RAFT_INSERT_HINTS: &str = "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.9";

/// The RocksDB instance and its column families.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    /// Declared before `db`, so dropped before it: they read it.
    point_iterators: Mutex<PointIterators>,
    db: DB,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("path", &self.inner.db.path()).finish()
    }
}

/// Iterators over the data column family kept for point reads
/// ([`Engine::point_iterator`]).
///
/// Why: a point read at a timestamp is a seek (`mvcc::KeyVersions`), and
/// making a RocksDB iterator for it (building its tree of memtable and
/// file iterators in an arena, then tearing it down) cost as much as a
/// third of the seek itself. A kept iterator is refreshed instead: while
/// the column family's files and memtables are the ones it was built
/// over, a refresh only moves it to the newest sequence number.
///
/// Invariants: an iterator is used by one reader at a time (taken out of
/// the pool while in use); it reads the database as of its refresh, so a
/// reader refreshes it before anything it must read after (the GC order in
/// `mvcc`); one not used between two [`Engine::release_idle_iterators`]
/// is dropped, so idle iterators do not keep deleted files on disk.
#[derive(Default)]
struct PointIterators {
    free: Vec<(PointIterator, u64)>,
    /// Counts [`Engine::release_idle_iterators`] calls.
    epoch: u64,
}

/// A data-column-family iterator that the engine owns. `'static` stands
/// for "as long as the engine's `db`" (see [`Engine::new_point_iterator`]).
type PointIterator = rocksdb::DBRawIterator<'static>;

/// An iterator taken from the engine's pool for one point read; it goes
/// back when dropped.
pub struct PooledIterator<'a> {
    engine: &'a Engine,
    it: Option<PointIterator>,
}

impl PooledIterator<'_> {
    /// Private to `storage` and its modules, which only seek and read
    /// through it: moving a kept iterator out (say, swapping those of two
    /// engines) would break [`Engine::new_point_iterator`]'s promise.
    fn iterator(&mut self) -> &mut PointIterator {
        self.it.as_mut().expect("present until dropped")
    }
}

impl Drop for PooledIterator<'_> {
    fn drop(&mut self) {
        if let Some(it) = self.it.take() {
            let mut pool = self.engine.inner.point_iterators.lock().unwrap_or_else(|e| e.into_inner());
            if pool.free.len() < limits::POINT_ITERATORS_KEPT_MAX {
                let epoch = pool.epoch;
                pool.free.push((it, epoch));
            }
        }
    }
}

impl Engine {
    /// Opens (creating if needed) the database in `dir`, and checks or
    /// records that it belongs to `identity`.
    pub fn open(dir: &Path, identity: &Identity) -> Result<Engine, OpenError> {
        let dir_text = dir.display().to_string();
        let rocks = |source| OpenError::RocksDb { dir: dir_text.clone(), source };
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(4);
        db_opts.set_max_total_wal_size(limits::WAL_BYTES_MAX);
        // HyperClockCache: a lookup takes no lock (an LRU cache locks a
        // shard of itself on every lookup, and every point read of every
        // handler looks up two blocks). 0: it sizes its table itself.
        let cache = rocksdb::Cache::new_hyper_clock_cache(limits::BLOCK_CACHE_BYTES, 0);
        let cf = |name: &str| {
            let mut o = Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            if name == CF_RAFT {
                // Log entries are written once, read soon, deleted soon.
                o.set_write_buffer_size(32 * 1024 * 1024);
            }
            if name == CF_TXN {
                // Prepared records and decisions live for milliseconds: a
                // small memtable keeps each insert's skip-list search short,
                // and its flush drops the puts their deletes cancel.
                o.set_write_buffer_size(4 * 1024 * 1024);
            }
            if name == CF_DATA {
                version_filters(&mut o, &mut table);
                o.set_memtable_prefix_bloom_ratio(0.1);
            }
            o.set_block_based_table_factory(&table);
            if name == CF_RAFT {
                // Each shard's log entries go in in index order: a memtable
                // insert starts where the shard's last one ended, not at
                // the skip list's head. (Not in RocksDB's C API but as an
                // options string; the copy keeps every setting above.)
                match o.get_options_from_string(RAFT_INSERT_HINTS) {
                    Ok(hinted) => o = hinted,
                    Err(e) => tracing::warn!("raft column family without insert hints: {e}"),
                }
            }
            ColumnFamilyDescriptor::new(name, o)
        };
        let db = DB::open_cf_descriptors(&db_opts, dir, [cf(CF_META), cf(CF_RAFT), cf(CF_DATA), cf(CF_TXN)])
            .map_err(rocks)?;
        let engine = Engine { inner: Arc::new(EngineInner { point_iterators: Mutex::default(), db }) };
        engine.check_identity(&dir_text, identity)?;
        Ok(engine)
    }

    fn check_identity(&self, dir: &str, identity: &Identity) -> Result<(), OpenError> {
        let rocks = |source| OpenError::RocksDb { dir: dir.to_string(), source };
        let meta = self.cf(CF_META);
        let get = |k: &[u8]| -> Result<Option<String>, OpenError> {
            Ok(self.inner.db.get_cf(meta, k).map_err(rocks)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
        };
        match get(META_CLUSTER_ID)? {
            None => {
                // A fresh directory: claim it, synced, before anything else.
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, META_FORMAT_VERSION, FORMAT_VERSION);
                batch.put_cf(meta, META_CLUSTER_ID, &identity.cluster_id);
                batch.put_cf(meta, META_SERVER_ID, identity.server_id.to_string());
                batch.put_cf(meta, META_LAYOUT, &identity.layout_fingerprint);
                self.write(batch, true).map_err(rocks)?;
                Ok(())
            }
            Some(found) if found != identity.cluster_id => {
                Err(OpenError::OtherCluster { dir: dir.to_string(), found, expected: identity.cluster_id.clone() })
            }
            Some(_) => {
                let version = get(META_FORMAT_VERSION)?.unwrap_or_default();
                if version != FORMAT_VERSION {
                    return Err(OpenError::FormatVersion { dir: dir.to_string(), found: version });
                }
                let server = get(META_SERVER_ID)?.unwrap_or_default();
                if server != identity.server_id.to_string() {
                    return Err(OpenError::OtherServer {
                        dir: dir.to_string(),
                        found: server,
                        expected: identity.server_id,
                    });
                }
                let layout = get(META_LAYOUT)?.unwrap_or_default();
                if layout != identity.layout_fingerprint {
                    return Err(OpenError::LayoutChanged {
                        dir: dir.to_string(),
                        found: layout,
                        expected: identity.layout_fingerprint.clone(),
                    });
                }
                Ok(())
            }
        }
    }

    /// True when this is the last handle: dropping it closes the database.
    pub fn is_last_handle(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    pub fn db(&self) -> &DB {
        &self.inner.db
    }

    pub fn cf(&self, name: &str) -> &ColumnFamily {
        // The column families are created in `open`; their absence is a bug.
        self.inner.db.cf_handle(name).unwrap_or_else(|| panic!("column family {name} missing"))
    }

    /// An iterator over the data column family as of now, for seeks within
    /// one key's versions only: it is bounded by the seek key's prefix
    /// (`set_prefix_same_as_start`), so the bloom filters apply
    /// (`version_filters`). Taken from the engine's pool and refreshed
    /// (`PointIterators`), or made if none is free.
    pub fn point_iterator(&self) -> PooledIterator<'_> {
        let kept = self.inner.point_iterators.lock().unwrap_or_else(|e| e.into_inner()).free.pop();
        let refreshed = kept.and_then(|(mut it, _)| it.refresh().is_ok().then_some(it));
        let it = refreshed.unwrap_or_else(|| self.new_point_iterator());
        PooledIterator { engine: self, it: Some(it) }
    }

    /// Drops the pooled iterators not used since the last call (the event
    /// loop calls this every tick), so that none keeps a superseded
    /// memtable or a compacted file alive for long.
    pub fn release_idle_iterators(&self) {
        let mut pool = self.inner.point_iterators.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = pool.epoch;
        pool.free.retain(|(_, used)| *used == epoch);
        pool.epoch += 1;
    }

    /// The second `unsafe` of this crate: an iterator that borrows the
    /// engine's `db` is stored beside it, in [`EngineInner`].
    #[allow(unsafe_code)]
    fn new_point_iterator(&self) -> PointIterator {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_prefix_same_as_start(true);
        let it = self.inner.db.raw_iterator_cf_opt(self.cf(CF_DATA), opts);
        // SAFETY: the iterator only ever lives in `self.inner`'s pool or
        // in a `PooledIterator` of this engine, which borrows an `Engine`
        // handle and so keeps `self.inner` alive (nothing outside this
        // module and its own modules can reach it, and they never move
        // it: `PooledIterator::iterator`); `EngineInner` drops its pool
        // before its `db`. So no such iterator outlives the database it
        // reads.
        unsafe { std::mem::transmute::<rocksdb::DBRawIterator<'_>, PointIterator>(it) }
    }

    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), rocksdb::Error> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.inner.db.write_opt(batch, &opts)
    }

    /// Writes a batch of the event loop's; a failure stops the process
    /// ([`stop_on_storage_failure`]).
    pub fn write_or_stop(&self, batch: WriteBatch, sync: bool) {
        if let Err(e) = self.write(batch, sync) {
            stop_on_storage_failure(&format!("RocksDB write failed: {e}"));
        }
    }

    /// The file system holding the data: (its size, the bytes free to an
    /// unprivileged writer), as `df` shows them; `None` if it cannot say.
    pub fn disk_space(&self) -> Option<(u64, u64)> {
        disk_space(self.inner.db.path())
    }
}

/// `statvfs(2)` of `path`: (size, bytes available), or `None`. One of the
/// two `unsafe`s of this crate: the C call, and reading what it filled.
#[allow(unsafe_code)]
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call,
    // and `stat` points to memory statvfs fills on success (checked
    // before it is read).
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it wrote the whole struct.
    let stat = unsafe { stat.assume_init() };
    // (u64 fields on 64-bit Linux, the platform SpanDB runs on.)
    let (block, blocks, free) = (stat.f_frsize, stat.f_blocks, stat.f_bavail);
    Some((blocks.saturating_mul(block), free.saturating_mul(block)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(cluster: &str, server: u64, layout: &str) -> Identity {
        Identity { cluster_id: cluster.into(), server_id: server, layout_fingerprint: layout.into() }
    }

    #[test]
    fn a_directory_belongs_to_one_cluster_server_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        drop(Engine::open(dir.path(), &identity("c1", 1, "L")).unwrap());
        drop(Engine::open(dir.path(), &identity("c1", 1, "L")).unwrap());
        let err = Engine::open(dir.path(), &identity("c2", 1, "L")).unwrap_err();
        assert!(matches!(err, OpenError::OtherCluster { .. }), "{err}");
        assert!(err.to_string().contains("\"c1\""), "{err}");
        let err = Engine::open(dir.path(), &identity("c1", 2, "L")).unwrap_err();
        assert!(matches!(err, OpenError::OtherServer { .. }), "{err}");
        let err = Engine::open(dir.path(), &identity("c1", 1, "M")).unwrap_err();
        assert!(matches!(err, OpenError::LayoutChanged { .. }), "{err}");
    }

    #[test]
    fn the_disk_holding_the_data_reports_its_size_and_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), &identity("c1", 1, "L")).unwrap();
        let (size, free) = engine.disk_space().expect("statvfs of a temporary directory");
        assert!(size > 0 && free <= size, "size {size}, free {free}");
        assert_eq!(disk_space(&dir.path().join("no such directory")), None);
    }

    #[test]
    fn a_directory_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _open = Engine::open(dir.path(), &identity("c1", 1, "L")).unwrap();
        let err = Engine::open(dir.path(), &identity("c1", 1, "L")).unwrap_err();
        assert!(matches!(err, OpenError::RocksDb { .. }), "{err}");
    }
}
