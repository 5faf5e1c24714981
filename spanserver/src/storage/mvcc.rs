//! Multi-version storage: every write adds a version at its commit
//! timestamp; a read at `t` sees, per key, the newest version at or below `t`.
//!
//! ```text
//!            ts=10     ts=20     ts=30     ts=40
//!   "apple"  v1                  v3(del)
//!   "pear"             v2                  v4
//!
//!   read at 25: apple=v1  pear=v2
//!   read at 35: apple=-   pear=v2     (v3 is a tombstone)
//!   read at 45: apple=-   pear=v4
//! ```
//!
//! Values are stored with a one-byte tag: `0x00` tombstone, `0x01` value.
//!
//! # Garbage collection
//!
//! Versions that no read at or above the watermark `W` can see are deleted:
//! per key, everything older than the newest version `<= W`, and that
//! version too if it is a tombstone. Reads below `W` fail with
//! `SnapshotTooOld` instead of returning a partial history. The ordering
//! that makes this safe:
//!
//! 1. The GC raises the in-memory watermark, then deletes.
//! 2. A read takes its RocksDB snapshot (a point read: creates or refreshes its
//!    iterator, [`KeyVersions`]), then checks the watermark.
//!
//! So a read that passes the check took its snapshot before any deletion
//! the raised watermark allowed.

use rocksdb::{ReadOptions, WriteBatch, DB};
use truetime::Timestamp;

use super::keycode::{self, after_all_versions, decode_version_key, key_prefix, range_bounds, RaftKey, TxnKey};
use super::{Engine, CF_DATA, CF_RAFT, CF_TXN};
use crate::error::{Error, Result};
use meta::ShardId;

const TAG_TOMBSTONE: u8 = 0x00;
const TAG_VALUE: u8 = 0x01;

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: Vec<u8>,
    pub ts: Timestamp,
    /// `None` is a tombstone (the key was deleted at `ts`).
    pub value: Option<Vec<u8>>,
}

/// Adds a version of `key` at `ts` to `batch` (`None`: a tombstone).
pub fn put_version(engine: &Engine, batch: &mut WriteBatch, key: &[u8], ts: Timestamp, value: Option<&[u8]>) {
    let encoded = encode_value(value);
    batch.put_cf(engine.cf(CF_DATA), keycode::version_key(key, ts), encoded);
}

fn encode_value(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        None => vec![TAG_TOMBSTONE],
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(TAG_VALUE);
            out.extend_from_slice(v);
            out
        }
    }
}

fn decode_value(raw: &[u8]) -> Result<Option<Vec<u8>>> {
    match raw.split_first() {
        Some((&TAG_TOMBSTONE, [])) => Ok(None),
        Some((&TAG_VALUE, rest)) => Ok(Some(rest.to_vec())),
        _ => Err(Error::Storage(format!("malformed version value {:02x?}", &raw[..raw.len().min(8)]))),
    }
}

fn malformed(e: keycode::MalformedKey) -> Error {
    Error::Storage(e.to_string())
}

/// A page of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Live versions (never tombstones): key, value, commit timestamp.
    pub pairs: Vec<(Vec<u8>, Vec<u8>, Timestamp)>,
    /// Where the next page starts, if the range is not exhausted.
    pub resume_key: Option<Vec<u8>>,
    /// The newest commit timestamp the page reveals: of a pair returned, or
    /// of a tombstone that hid a key (its absence is news too). A reply
    /// must not leave before `TT.after` of it (DESIGN.md §6).
    pub newest_ts: Timestamp,
}

/// A scan's page as it fills: at most `limit` pairs and about
/// `bytes_max` bytes (always at least one pair if there is one).
struct PageFill {
    page: ScanPage,
    bytes: usize,
    limit: usize,
    bytes_max: usize,
}

impl PageFill {
    /// Takes `key`'s newest version the read sees, at `ts` (`None`: a
    /// tombstone, which hides the key and returns nothing, but is news
    /// too); false, taking nothing, if it is a pair and the page is full.
    fn take(&mut self, key: &[u8], ts: Timestamp, value: Option<Vec<u8>>) -> bool {
        if let Some(value) = value {
            if self.page.pairs.len() >= self.limit || self.bytes >= self.bytes_max {
                return false;
            }
            self.bytes += key.len() + value.len();
            self.page.pairs.push((key.to_vec(), value, ts));
        }
        self.page.newest_ts = self.page.newest_ts.max(ts);
        true
    }
}

/// What [`Reader::count_keys`] found: `keys` keys in `bytes` bytes of
/// versions, the whole range if `complete`, else only its beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCount {
    pub keys: u64,
    pub bytes: u64,
    pub complete: bool,
}

/// Options for an iterator over the versions of `key` only, so the bloom
/// filters apply (`storage::version_filters`).
fn versions_of(key: &[u8]) -> ReadOptions {
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(after_all_versions(key));
    opts.set_prefix_same_as_start(true);
    opts
}

/// The newest version of `key` at or below `read_ts` that `it` (bounded
/// by the seek key's prefix: [`versions_of`], `Engine::point_iterator`)
/// sees.
fn newest_version(
    it: &mut rocksdb::DBRawIterator<'_>,
    key: &[u8],
    read_ts: Timestamp,
) -> Result<Option<(Timestamp, Option<Vec<u8>>)>> {
    it.seek(keycode::version_key(key, read_ts));
    if let (Some(k), Some(v)) = (it.key(), it.value()) {
        let (user_key, ts) = decode_version_key(k).map_err(malformed)?;
        if user_key != key || ts > read_ts {
            return Err(Error::Storage(format!("version key out of place for {key:02x?}")));
        }
        return Ok(Some((ts, decode_value(v)?)));
    }
    it.status()?;
    Ok(None)
}

/// The versions of one key as they were when this was made: for a
/// point read, which needs no [`Reader`]. An iterator reads the database
/// as of its creation or refresh, as one through a snapshot would, and a
/// RocksDB snapshot costs the database's lock twice (to take and to give
/// back), on every read of every handler. The iterator is one the engine
/// keeps ([`Engine::point_iterator`]).
pub struct KeyVersions<'a> {
    key: &'a [u8],
    it: super::PooledIterator<'a>,
}

impl<'a> KeyVersions<'a> {
    /// Pins the versions of `key` as of now (the GC ordering in the
    /// module docs: make this before checking the watermark).
    pub fn new(engine: &'a Engine, key: &'a [u8]) -> Self {
        KeyVersions { key, it: engine.point_iterator() }
    }

    /// The newest version at or below `read_ts`, tombstone or not:
    /// `(commit_ts, value)`, `None` for a tombstone.
    pub fn newest_at(mut self, read_ts: Timestamp) -> Result<Option<(Timestamp, Option<Vec<u8>>)>> {
        newest_version(self.it.iterator(), self.key, read_ts)
    }
}

/// A consistent, point-in-time view of the data column family.
pub struct Reader<'a> {
    engine: &'a Engine,
    snapshot: rocksdb::Snapshot<'a>,
}

impl<'a> Reader<'a> {
    /// Takes a RocksDB snapshot: everything read through this reader sees
    /// the database as of now, whatever is written later.
    pub fn new(engine: &'a Engine) -> Self {
        Reader { engine, snapshot: engine.db().snapshot() }
    }

    /// Options for an iterator over `[.., upper)` in total order (the data
    /// column family has a prefix extractor: `storage::version_filters`).
    fn read_opts(&self, upper: Vec<u8>) -> ReadOptions {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        opts.set_iterate_upper_bound(upper);
        opts.set_total_order_seek(true);
        opts
    }

    fn db(&self) -> &DB {
        self.engine.db()
    }

    /// A record of `shard` in the `raft` column family, as of this view.
    pub fn raft_record(&self, shard: ShardId, kind: RaftKey) -> Result<Option<Vec<u8>>> {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        Ok(self.db().get_cf_opt(self.engine.cf(CF_RAFT), keycode::raft_key(shard, kind), &opts)?)
    }

    /// The shards with a replica record (`RaftKey::Replica`) in the
    /// `raft` column family, as of this view, with the record's bytes:
    /// one per replica on this server, written in the same batch as the
    /// data its range change moves (a split, a snapshot install, a
    /// removal).
    pub fn replica_records(&self) -> Result<Vec<(ShardId, Vec<u8>)>> {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        let mut it = self.db().raw_iterator_cf_opt(self.engine.cf(CF_RAFT), opts);
        let mut out = Vec::new();
        let mut next_shard = Some(0u64);
        while let Some(n) = next_shard {
            it.seek(n.to_be_bytes());
            let Some(shard) = it.key().and_then(keycode::decode_raft_key_shard) else { break };
            if let Some(record) = self.raft_record(shard, RaftKey::Replica)? {
                out.push((shard, record));
            }
            next_shard = shard.0.checked_add(1);
        }
        it.status()?;
        Ok(out)
    }

    /// A shard's records of one kind in the `txn` column family, as of
    /// this view: (transaction id bytes, record bytes).
    pub fn txn_records(&self, shard: ShardId, kind: TxnKey) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (lo, hi) = keycode::txn_kind_bounds(shard, kind);
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        opts.set_iterate_upper_bound(hi);
        let mut it = self.db().raw_iterator_cf_opt(self.engine.cf(CF_TXN), opts);
        it.seek(lo);
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            out.push((k[9..].to_vec(), v.to_vec()));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// A log entry of `shard`, encoded, as of this view.
    pub fn raft_log_entry(&self, shard: ShardId, index: u64) -> Result<Option<Vec<u8>>> {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        Ok(self.db().get_cf_opt(self.engine.cf(CF_RAFT), keycode::log_key(shard, index), &opts)?)
    }

    /// The newest version of `key` at or below `read_ts`, tombstone or
    /// not: `(commit_ts, value)`, `None` for a tombstone.
    pub fn get_version(&self, key: &[u8], read_ts: Timestamp) -> Result<Option<(Timestamp, Option<Vec<u8>>)>> {
        let mut opts = versions_of(key);
        opts.set_snapshot(&self.snapshot);
        newest_version(&mut self.db().raw_iterator_cf_opt(self.engine.cf(CF_DATA), opts), key, read_ts)
    }

    /// The newest version of `key` at or below `read_ts` that is not a
    /// tombstone: `(commit_ts, value)`.
    pub fn get(&self, key: &[u8], read_ts: Timestamp) -> Result<Option<(Timestamp, Vec<u8>)>> {
        Ok(self.get_version(key, read_ts)?.and_then(|(ts, value)| value.map(|v| (ts, v))))
    }

    /// Live keys in `[start, end)` (empty `end`: unbounded) as of
    /// `read_ts`, in key order, at most `limit` pairs and about `bytes_max`
    /// bytes (always at least one pair if there is one).
    pub fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        read_ts: Timestamp,
        limit: usize,
        bytes_max: usize,
    ) -> Result<ScanPage> {
        let cf = self.engine.cf(CF_DATA);
        let (lower, upper) = range_bounds(start, end);
        let mut it = self.db().raw_iterator_cf_opt(cf, self.read_opts(upper));
        it.seek(lower);
        let mut fill = PageFill { page: ScanPage::default(), bytes: 0, limit, bytes_max };
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (user_key, ts) = decode_version_key(k).map_err(malformed)?;
            if ts > read_ts {
                // Too new for this read; older versions of the key follow.
                it.next();
                continue;
            }
            if !fill.take(&user_key, ts, decode_value(v)?) {
                fill.page.resume_key = Some(user_key);
                return Ok(fill.page);
            }
            it.seek(after_all_versions(&user_key));
        }
        it.status()?;
        Ok(fill.page)
    }

    /// Like [`Reader::scan`], in descending key order: the live keys of
    /// `[start, end)` from the last down. A page cut short says where the
    /// rest ends: its `resume_key` is the exclusive end of `[start,
    /// resume_key)`, the range still to read (the first key not returned,
    /// with a zero byte appended: the least key above it).
    pub fn scan_reverse(
        &self,
        start: &[u8],
        end: &[u8],
        read_ts: Timestamp,
        limit: usize,
        bytes_max: usize,
    ) -> Result<ScanPage> {
        let cf = self.engine.cf(CF_DATA);
        let (lower, upper) = range_bounds(start, end);
        let mut opts = self.read_opts(upper);
        opts.set_iterate_lower_bound(lower);
        let mut it = self.db().raw_iterator_cf_opt(cf, opts);
        it.seek_to_last();
        let mut fill = PageFill { page: ScanPage::default(), bytes: 0, limit, bytes_max };
        // At the oldest version of a key (versions sort newest first):
        // find its newest at or below `read_ts`, then step below the key.
        while let Some(k) = it.key() {
            let (user_key, _) = decode_version_key(k).map_err(malformed)?;
            it.seek(keycode::version_key(&user_key, read_ts));
            let visible = match (it.key(), it.value()) {
                (Some(k), Some(v)) => match decode_version_key(k).map_err(malformed)? {
                    (key, ts) if key == user_key => Some((ts, decode_value(v)?)),
                    _ => None,
                },
                _ => None,
            };
            if let Some((ts, value)) = visible {
                if !fill.take(&user_key, ts, value) {
                    let mut resume = user_key;
                    resume.push(0);
                    fill.page.resume_key = Some(resume);
                    return Ok(fill.page);
                }
            }
            it.seek(keycode::version_key(&user_key, Timestamp::MAX));
            it.prev();
        }
        it.status()?;
        Ok(fill.page)
    }

    /// The first key in `[start, end)` with any version stored,
    /// tombstones and versions below the GC watermark included.
    pub fn first_key(&self, start: &[u8], end: &[u8]) -> Result<Option<Vec<u8>>> {
        let (lower, upper) = range_bounds(start, end);
        let mut it = self.db().raw_iterator_cf_opt(self.engine.cf(CF_DATA), self.read_opts(upper));
        it.seek(&lower);
        match it.key() {
            Some(k) => Ok(Some(decode_version_key(k).map_err(malformed)?.0)),
            None => {
                it.status()?;
                Ok(None)
            }
        }
    }

    /// Every version (tombstones included) of every key in `[start, end)`,
    /// in storage order (for tests: it holds them all in memory).
    #[cfg(test)]
    pub fn all_versions(&self, start: &[u8], end: &[u8]) -> Result<Vec<Version>> {
        let (lower, upper) = range_bounds(start, end);
        let mut out = Vec::new();
        self.visit_raw(CF_DATA, &lower, &upper, |k, v| {
            let (key, ts) = decode_version_key(k).map_err(malformed)?;
            out.push(Version { key, ts, value: decode_value(v)? });
            Ok(())
        })?;
        Ok(out)
    }

    /// Where to split `[start, end)` in two halves of about equal size, if
    /// its versions (keys and values) hold more than `size_bytes`: the
    /// first key with at least half of the range's bytes before it, never
    /// between two versions of one key. Reads at most about `read_max`
    /// bytes (at least `size_bytes`): a range holding more splits at the
    /// middle of what was read, and is left bigger than half. `None` if
    /// the range holds no more than `size_bytes`, or the halfway key is
    /// `start`.
    ///
    /// Halving the range, not cutting `size_bytes / 2` off its front,
    /// matters after a bulk load: a shard of 30 MiB with a limit of 8 MiB
    /// is small enough after two rounds of splits, not seven.
    pub fn split_key(&self, start: &[u8], end: &[u8], size_bytes: u64, read_max: u64) -> Result<Option<Vec<u8>>> {
        let read_max = read_max.max(size_bytes);
        // Keys where a new key begins, with the bytes before each, about
        // every 64th of the size: a range that splits has at least 64 of
        // them, and at most 64 per size read.
        let step = (size_bytes / 64).max(1);
        let (lower, upper) = range_bounds(start, end);
        let mut it = self.db().raw_iterator_cf_opt(self.engine.cf(CF_DATA), self.read_opts(upper));
        it.seek(&lower);
        let (mut seen, mut current, mut next_mark) = (0u64, Vec::new(), 0u64);
        let mut candidates: Vec<(u64, Vec<u8>)> = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (user_key, _) = decode_version_key(k).map_err(|e| Error::Storage(e.to_string()))?;
            if user_key != current {
                if seen >= next_mark && !current.is_empty() {
                    candidates.push((seen, user_key.clone()));
                    next_mark = seen + step;
                }
                current = user_key;
            }
            seen += (k.len() + v.len()) as u64;
            if seen > read_max {
                break;
            }
            it.next();
        }
        it.status()?;
        if seen <= size_bytes {
            return Ok(None);
        }
        let half = seen / 2;
        let at_half = candidates.iter().position(|(before, _)| *before >= half);
        let key = at_half.or(candidates.len().checked_sub(1)).map(|i| candidates.swap_remove(i).1);
        Ok(key.filter(|k| k.as_slice() > start))
    }

    /// Counts the keys stored in `[start, end)` (a key with versions
    /// counts once, deleted or not until GC removes it), reading at most
    /// about `bytes_max` bytes of versions: beyond, the count is of the
    /// range's beginning only and says so ([`KeyCount::complete`]).
    pub fn count_keys(&self, start: &[u8], end: &[u8], bytes_max: u64) -> Result<KeyCount> {
        let (lower, upper) = range_bounds(start, end);
        let mut it = self.db().raw_iterator_cf_opt(self.engine.cf(CF_DATA), self.read_opts(upper));
        it.seek(&lower);
        let mut count = KeyCount { keys: 0, bytes: 0, complete: true };
        let mut current = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if count.bytes >= bytes_max {
                count.complete = false;
                break;
            }
            let (user_key, _) = decode_version_key(k).map_err(malformed)?;
            if count.keys == 0 || user_key != current {
                count.keys += 1;
                current = user_key;
            }
            count.bytes += (k.len() + v.len()) as u64;
            it.next();
        }
        it.status()?;
        Ok(count)
    }

    /// Calls `f` with every stored key and value of column family `cf` in
    /// `[lower, upper)`, in order, as of this view, stopping at the first
    /// error (building snapshots streams a shard's versions this way).
    pub fn visit_raw(
        &self,
        cf: &str,
        lower: &[u8],
        upper: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut it = self.db().raw_iterator_cf_opt(self.engine.cf(cf), self.read_opts(upper.to_vec()));
        it.seek(lower);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            f(k, v)?;
            it.next();
        }
        it.status()?;
        Ok(())
    }
}

/// Progress of one garbage-collection step over a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcStep {
    /// Versions examined.
    pub examined: usize,
    /// Versions deleted (added to the batch).
    pub deleted: usize,
    /// Where the next step starts; `None` when the range is done.
    pub next_key: Option<Vec<u8>>,
}

/// Adds to `batch` the deletion of versions in `[from, end)` that no read at
/// or above `watermark` can see, examining about `versions_max` versions.
/// Call again from `next_key` until it is `None`.
///
/// The caller must have raised the readable watermark to `watermark` before
/// the batch is written (see the module docs).
pub fn gc_step(
    engine: &Engine,
    batch: &mut WriteBatch,
    from: &[u8],
    end: &[u8],
    watermark: Timestamp,
    versions_max: usize,
) -> Result<GcStep> {
    let cf = engine.cf(CF_DATA);
    let (_, upper) = range_bounds(from, end);
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(upper);
    opts.set_total_order_seek(true);
    // A round reads the whole shard once: its blocks must not push the
    // ones reads keep using out of the block cache.
    opts.fill_cache(false);
    let mut it = engine.db().raw_iterator_cf_opt(cf, opts);
    it.seek(key_prefix(from));
    let mut step = GcStep { examined: 0, deleted: 0, next_key: None };
    // The key being examined, and whether its newest version <= watermark
    // has been seen (everything after that one is invisible).
    let mut current: Option<(Vec<u8>, bool)> = None;
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let (key, ts) = decode_version_key(k).map_err(malformed)?;
        let same_key = current.as_ref().is_some_and(|(c, _)| *c == key);
        if !same_key {
            if step.examined >= versions_max {
                step.next_key = Some(key);
                return Ok(step);
            }
            current = Some((key, false));
        }
        step.examined += 1;
        let (_, shadowed) = current.as_mut().expect("set above");
        if ts <= watermark {
            let is_tombstone = decode_value(v)?.is_none();
            if *shadowed || is_tombstone {
                batch.delete_cf(cf, k);
                step.deleted += 1;
            }
            *shadowed = true;
        }
        it.next();
    }
    it.status()?;
    Ok(step)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::storage::Identity;

    fn ts(n: u64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    struct Db {
        _dir: tempfile::TempDir,
        engine: Engine,
    }

    fn db() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity { cluster_id: "t".into(), server_id: 1, layout_fingerprint: "l".into() };
        let engine = Engine::open(dir.path(), &identity).unwrap();
        Db { _dir: dir, engine }
    }

    fn write(engine: &Engine, versions: &[(&str, u64, Option<&str>)]) {
        let mut batch = WriteBatch::default();
        for (k, t, v) in versions {
            put_version(engine, &mut batch, k.as_bytes(), ts(*t), v.map(str::as_bytes));
        }
        engine.write(batch, false).unwrap();
    }

    fn get(engine: &Engine, key: &str, at: u64) -> Option<String> {
        Reader::new(engine).get(key.as_bytes(), ts(at)).unwrap().map(|(_, v)| String::from_utf8(v).unwrap())
    }

    fn scan_all(engine: &Engine, at: u64) -> Vec<(String, String)> {
        Reader::new(engine)
            .scan(b"", b"", ts(at), usize::MAX, usize::MAX)
            .unwrap()
            .pairs
            .into_iter()
            .map(|(k, v, _)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    /// Goal: the first stored key of a range counts tombstones too, and
    /// honours both bounds (an empty end: unbounded).
    #[test]
    fn first_key_of_a_range_counts_every_version() {
        let d = db();
        write(&d.engine, &[("b", 5, Some("1")), ("d", 7, None), ("f", 3, Some("2"))]);
        let first = |start: &str, end: &str| {
            Reader::new(&d.engine)
                .first_key(start.as_bytes(), end.as_bytes())
                .unwrap()
                .map(|k| String::from_utf8(k).unwrap())
        };
        assert_eq!(first("", ""), Some("b".into()));
        assert_eq!(first("c", "e"), Some("d".into()), "a tombstone is stored data");
        assert_eq!(first("c", "d"), None, "the end is exclusive");
        assert_eq!(first("e", ""), Some("f".into()));
        assert_eq!(first("g", ""), None);
    }

    /// Goal: a range over the size limit splits at the first key with
    /// half of its bytes before it (of what the read limit let it read),
    /// counting every version; never at its first key, never when it
    /// holds no more than the limit, and never between two versions of
    /// one key.
    #[test]
    fn split_keys_halve_what_is_over_the_size() {
        let d = db();
        let value = "x".repeat(90);
        // Ten keys of about 110 bytes a version (key, timestamp, value);
        // "k3" has three versions.
        let mut versions: Vec<(String, u64)> = (0..10).map(|i| (format!("k{i}"), 10)).collect();
        versions.extend([("k3".to_string(), 20), ("k3".to_string(), 30)]);
        let rows: Vec<(&str, u64, Option<&str>)> =
            versions.iter().map(|(k, t)| (k.as_str(), *t, Some(value.as_str()))).collect();
        write(&d.engine, &rows);
        let reader = Reader::new(&d.engine);
        let at = |start: &str, end: &str, size: u64, read_max: u64| {
            let key = reader.split_key(start.as_bytes(), end.as_bytes(), size, read_max).unwrap();
            key.map(|k| String::from_utf8(k).unwrap())
        };
        // 12 versions of about 110 bytes, about 1,300 in all; k3's three
        // versions stay together. Read whole, any limit below that splits
        // at the middle: k0 to k3 (660 bytes) before k4.
        assert_eq!(at("", "", 600, 100_000).as_deref(), Some("k4"));
        assert_eq!(at("", "", 200, 100_000).as_deref(), Some("k4"), "halves, not cut at the limit");
        assert_eq!(at("", "", 1_000, 100_000).as_deref(), Some("k4"));
        // Read only in part (about 600 bytes: k0 to k3 and one version
        // more), it splits at the middle of what it read: k3.
        assert_eq!(at("", "", 200, 600).as_deref(), Some("k3"));
        assert_eq!(at("", "", 100_000, 100_000), None, "under the limit");
        assert_eq!(at("", "", 100_000, 10), None, "the read limit never goes below the size");
        assert_eq!(
            at("k5", "", 200, 100_000).as_deref(),
            Some("k8"),
            "k5 to k7 before k8: the first with half of k5 to k9"
        );
        assert_eq!(at("k5", "k6", 50, 100_000), None, "one key cannot split");
        assert_eq!(at("k9", "", 10, 100_000), None, "the halfway key is the range's first");
    }

    /// Goal: a key counts once however many versions it has, a deleted
    /// key still counts, both bounds hold, and a count that reaches its
    /// byte limit stops there and says it is partial.
    #[test]
    fn key_counts_count_keys_not_versions_and_stop_at_the_limit() {
        let d = db();
        write(&d.engine, &[("a", 5, Some("1")), ("a", 9, Some("2")), ("b", 7, None), ("c", 3, Some("3"))]);
        let reader = Reader::new(&d.engine);
        let count =
            |start: &str, end: &str, max: u64| reader.count_keys(start.as_bytes(), end.as_bytes(), max).unwrap();
        let all = count("", "", 1 << 20);
        assert_eq!((all.keys, all.complete), (3, true));
        assert_eq!(count("b", "c", 1 << 20).keys, 1, "the end is exclusive, a tombstone counts");
        assert_eq!(count("d", "", 1 << 20), KeyCount { keys: 0, bytes: 0, complete: true });
        let partial = count("", "", 1);
        assert_eq!((partial.keys, partial.complete), (1, false));
        assert!(partial.bytes > 0 && partial.bytes < all.bytes);
    }

    /// Goal: the grid in the module docs, read at every interesting
    /// timestamp, by get and by scan.
    #[test]
    fn reads_see_the_newest_version_at_or_below_their_timestamp() {
        let d = db();
        write(
            &d.engine,
            &[("apple", 10, Some("v1")), ("pear", 20, Some("v2")), ("apple", 30, None), ("pear", 40, Some("v4"))],
        );
        assert_eq!(get(&d.engine, "apple", 9), None);
        assert_eq!(get(&d.engine, "apple", 10).as_deref(), Some("v1"));
        assert_eq!(get(&d.engine, "apple", 29).as_deref(), Some("v1"));
        assert_eq!(get(&d.engine, "apple", 30), None);
        assert_eq!(get(&d.engine, "pear", 45).as_deref(), Some("v4"));
        assert_eq!(get(&d.engine, "pea", 45), None);
        assert_eq!(get(&d.engine, "pearl", 45), None);
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(scan_all(&d.engine, 25), pairs(&[("apple", "v1"), ("pear", "v2")]));
        assert_eq!(scan_all(&d.engine, 35), pairs(&[("pear", "v2")]));
        assert_eq!(scan_all(&d.engine, 45), pairs(&[("pear", "v4")]));
        assert_eq!(scan_all(&d.engine, 5), pairs(&[]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

        /// Goal: the data column family's bloom filters (keyed by user key,
        /// without timestamps) never hide a version from a point read, nor
        /// any key from a scan, with versions spread over memtables and
        /// several SST files, and user keys that are prefixes of others or
        /// hold the escape byte. Point reads through the engine's kept
        /// iterators, read after every batch, see every write before
        /// them, across flushes (which rebuild a kept iterator) and
        /// without (which only refresh it).
        #[test]
        fn filtered_point_reads_and_scans_agree_with_a_model(
            batches in proptest::collection::vec(
                proptest::collection::vec((0usize..8, 1u64..50, proptest::option::of(0u8..10)), 1..12),
                1..5,
            ),
            reads in proptest::collection::vec((0usize..10, 0u64..60), 1..30),
        ) {
            const KEYS: [&[u8]; 10] = [
                b"a", b"a\0", b"a\0b", b"ab", b"b", b"\0", b"a long key, longer than a timestamp",
                b"a long key, longer than a timestamp!", b"absent", b"a\0\0",
            ];
            let d = db();
            let mut model: BTreeMap<(Vec<u8>, u64), Option<Vec<u8>>> = BTreeMap::new();
            let newest_in = |model: &BTreeMap<(Vec<u8>, u64), Option<Vec<u8>>>, k: usize, at: u64| {
                model
                    .iter()
                    .filter(|((key, t), _)| key.as_slice() == KEYS[k] && *t <= at)
                    .max_by_key(|((_, t), _)| *t)
                    .map(|((_, t), v)| (ts(*t), v.clone()))
            };
            for (i, batch) in batches.iter().enumerate() {
                let mut wb = WriteBatch::default();
                for &(k, t, v) in batch {
                    let value = v.map(|v| vec![v]);
                    put_version(&d.engine, &mut wb, KEYS[k], ts(t), value.as_deref());
                    model.insert((KEYS[k].to_vec(), t), value);
                }
                d.engine.write(wb, false).unwrap();
                // Several at once, so the pool holds more than one.
                let mut held: Vec<_> = reads.iter().take(3).map(|&(k, _)| KeyVersions::new(&d.engine, KEYS[k])).collect();
                for &(k, at) in &reads {
                    let read = KeyVersions::new(&d.engine, KEYS[k]).newest_at(ts(at)).unwrap();
                    proptest::prop_assert_eq!(read, newest_in(&model, k, at));
                }
                held.clear();
                if i % 2 == 1 {
                    d.engine.release_idle_iterators();
                }
                if i + 1 < batches.len() && i % 3 != 2 {
                    d.engine.db().flush_cf(d.engine.cf(CF_DATA)).unwrap();
                }
            }
            let reader = Reader::new(&d.engine);
            for &(k, at) in &reads {
                let expected = newest_in(&model, k, at);
                proptest::prop_assert_eq!(reader.get_version(KEYS[k], ts(at)).unwrap(), expected);
                let mut live: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
                let mut newest: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
                for ((key, t), v) in &model {
                    if *t <= at && newest.get(key).is_none_or(|n| t > n) {
                        newest.insert(key.clone(), *t);
                        match v {
                            Some(v) => live.insert(key.clone(), v.clone()),
                            None => live.remove(key),
                        };
                    }
                }
                let scanned = reader.scan(b"", b"", ts(at), usize::MAX, usize::MAX).unwrap().pairs;
                let scanned: BTreeMap<Vec<u8>, Vec<u8>> = scanned.into_iter().map(|(k, v, _)| (k, v)).collect();
                proptest::prop_assert_eq!(scanned, live);
            }
        }
    }

    #[test]
    fn scans_page_and_respect_bounds() {
        let d = db();
        let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        let versions: Vec<_> = keys.iter().map(|k| (k.as_str(), 5, Some("x"))).collect();
        write(&d.engine, &versions);
        let reader = Reader::new(&d.engine);
        let page = reader.scan(b"k2", b"k8", ts(10), 4, usize::MAX).unwrap();
        let got: Vec<_> = page.pairs.iter().map(|(k, _, _)| k.clone()).collect();
        assert_eq!(got, vec![b"k2".to_vec(), b"k3".to_vec(), b"k4".to_vec(), b"k5".to_vec()]);
        assert_eq!(page.resume_key.as_deref(), Some(&b"k6"[..]));
        let page = reader.scan(b"k6", b"k8", ts(10), 4, usize::MAX).unwrap();
        assert_eq!(page.pairs.len(), 2);
        assert_eq!(page.resume_key, None);
        // A byte budget still returns at least one pair per page.
        let page = reader.scan(b"", b"", ts(10), 100, 1).unwrap();
        assert_eq!(page.pairs.len(), 1);
        assert_eq!(page.resume_key.as_deref(), Some(&b"k1"[..]));
    }

    /// Goal: a reverse scan returns exactly the forward scan's pairs,
    /// last first, at every timestamp, and its pages, resumed from their
    /// `resume_key`, cover the range without a gap or a repeat.
    #[test]
    fn reverse_scans_mirror_forward_scans() {
        let d = db();
        // Keys with versions at several timestamps, tombstones among them,
        // and a key whose only version is newer than some reads.
        let mut versions = Vec::new();
        let keys: Vec<String> = (0..12).map(|i| format!("k{i:02}")).collect();
        for (i, k) in keys.iter().enumerate() {
            for t in [2u64, 4, 6] {
                if !(i as u64 + t).is_multiple_of(3) {
                    let value = if (i as u64 * t).is_multiple_of(5) { None } else { Some("v") };
                    versions.push((k.as_str(), t + i as u64 % 2, value));
                }
            }
        }
        write(&d.engine, &versions);
        let reader = Reader::new(&d.engine);
        for at in 0..9 {
            for (start, end) in [(&b""[..], &b""[..]), (b"k03", b"k09"), (b"k05", b""), (b"", b"k07")] {
                let forward = reader.scan(start, end, ts(at), usize::MAX, usize::MAX).unwrap();
                let mut want = forward.pairs.clone();
                want.reverse();
                let whole = reader.scan_reverse(start, end, ts(at), usize::MAX, usize::MAX).unwrap();
                assert_eq!(whole.pairs, want, "at {at} over {start:?}..{end:?}");
                assert_eq!(whole.newest_ts, forward.newest_ts);
                assert_eq!(whole.resume_key, None);
                // Pages of two.
                let (mut got, mut upper) = (Vec::new(), end.to_vec());
                loop {
                    let page = reader.scan_reverse(start, &upper, ts(at), 2, usize::MAX).unwrap();
                    assert!(page.pairs.len() <= 2);
                    got.extend(page.pairs);
                    match page.resume_key {
                        Some(r) => upper = r,
                        None => break,
                    }
                }
                assert_eq!(got, want, "paged at {at} over {start:?}..{end:?}");
            }
        }
    }

    #[test]
    fn a_snapshot_reader_ignores_later_writes() {
        let d = db();
        write(&d.engine, &[("a", 1, Some("old"))]);
        let reader = Reader::new(&d.engine);
        write(&d.engine, &[("a", 2, Some("new")), ("b", 2, Some("new"))]);
        assert_eq!(reader.get(b"a", Timestamp::MAX).unwrap().unwrap().1, b"old");
        assert_eq!(reader.scan(b"", b"", Timestamp::MAX, 10, 1 << 20).unwrap().pairs.len(), 1);
    }

    /// Goal: after GC at watermark W, every read at or above W returns
    /// exactly what it returned before; only invisible versions are gone.
    #[test]
    fn gc_keeps_everything_visible_at_or_above_the_watermark() {
        let d = db();
        write(
            &d.engine,
            &[
                ("a", 10, Some("a10")),
                ("a", 20, Some("a20")),
                ("a", 30, Some("a30")),
                ("b", 10, Some("b10")),
                ("b", 15, None),
                ("c", 10, Some("c10")),
                ("c", 40, None),
                ("d", 50, Some("d50")),
            ],
        );
        let before: Vec<_> = [25, 30, 35, 40, 45, 50, 60].iter().map(|&t| scan_all(&d.engine, t)).collect();
        let mut batch = WriteBatch::default();
        let mut from = Vec::new();
        let mut total = 0;
        loop {
            let step = gc_step(&d.engine, &mut batch, &from, b"", ts(25), 2).unwrap();
            total += step.deleted;
            match step.next_key {
                Some(k) => from = k,
                None => break,
            }
        }
        d.engine.write(batch, false).unwrap();
        // a10 (shadowed by a20), b10 and the b15 tombstone; c10 stays
        // (visible at 25..40), d50 is above the watermark.
        assert_eq!(total, 3);
        let after: Vec<_> = [25, 30, 35, 40, 45, 50, 60].iter().map(|&t| scan_all(&d.engine, t)).collect();
        assert_eq!(before, after);
        let versions = Reader::new(&d.engine).all_versions(b"", b"").unwrap();
        assert_eq!(versions.len(), 5);
    }
}

/// Goldenscript tests: `testscripts/mvcc/*`, in the notation of the module
/// docs. Regenerate with `UPDATE_GOLDENFILES=1 cargo test -p spanserver`.
#[cfg(test)]
mod scripts {
    use std::error::Error as StdError;
    use std::fmt::Write as _;

    use super::*;
    use crate::storage::Identity;

    #[derive(goldenscript::Command)]
    enum Command {
        /// put KEY VALUE ts=N
        Put(String, String, #[arg(key = "ts")] u64),
        /// del KEY ts=N
        Del(String, #[arg(key = "ts")] u64),
        /// get KEY ts=N
        Get(String, #[arg(key = "ts")] u64),
        /// scan [FROM [TO]] ts=N [limit=N]
        Scan {
            from: Option<String>,
            to: Option<String>,
            #[arg(key)]
            ts: u64,
            #[arg(key)]
            limit: Option<usize>,
        },
        /// gc watermark=N [step=N]: GC rounds to completion, steps of N versions
        Gc {
            #[arg(key)]
            watermark: u64,
            #[arg(key)]
            step: Option<usize>,
        },
        /// versions: every stored version, in storage order
        Versions,
    }

    struct Runner {
        _dir: tempfile::TempDir,
        engine: Engine,
    }

    impl Runner {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let identity = Identity { cluster_id: "t".into(), server_id: 1, layout_fingerprint: "l".into() };
            let engine = Engine::open(dir.path(), &identity).expect("open");
            Runner { _dir: dir, engine }
        }

        fn write(&self, key: &str, ts: u64, value: Option<&str>) -> Result<(), Box<dyn StdError>> {
            let mut batch = WriteBatch::default();
            put_version(&self.engine, &mut batch, key.as_bytes(), Timestamp::from_nanos(ts), value.map(str::as_bytes));
            Ok(self.engine.write(batch, false)?)
        }
    }

    fn text(b: &[u8]) -> String {
        format!("{:?}", String::from_utf8_lossy(b))
    }

    impl goldenscript::Runner for Runner {
        type Command = Command;

        fn run(&mut self, command: &Command, _: &goldenscript::Context) -> Result<String, Box<dyn StdError>> {
            let mut out = String::new();
            match command {
                Command::Put(key, value, ts) => self.write(key, *ts, Some(value))?,
                Command::Del(key, ts) => self.write(key, *ts, None)?,
                Command::Get(key, ts) => {
                    match Reader::new(&self.engine).get(key.as_bytes(), Timestamp::from_nanos(*ts))? {
                        Some((at, v)) => {
                            writeln!(out, "{} @{ts} → {} (written @{})", text(key.as_bytes()), text(&v), at.as_nanos())?
                        }
                        None => writeln!(out, "{} @{ts} → none", text(key.as_bytes()))?,
                    }
                }
                Command::Scan { from, to, ts, limit } => {
                    let from = from.as_deref().unwrap_or("");
                    let to = to.as_deref().unwrap_or("");
                    let page = Reader::new(&self.engine).scan(
                        from.as_bytes(),
                        to.as_bytes(),
                        Timestamp::from_nanos(*ts),
                        limit.unwrap_or(usize::MAX),
                        usize::MAX,
                    )?;
                    let pairs: Vec<String> = page
                        .pairs
                        .iter()
                        .map(|(k, v, at)| format!("{}={}@{}", text(k), text(v), at.as_nanos()))
                        .collect();
                    write!(
                        out,
                        "scan [{}, {}) @{ts} → [{}]",
                        text(from.as_bytes()),
                        text(to.as_bytes()),
                        pairs.join(" ")
                    )?;
                    if let Some(resume) = page.resume_key {
                        write!(out, " resume at {}", text(&resume))?;
                    }
                    writeln!(out)?;
                }
                Command::Gc { watermark, step } => {
                    let mut from = Vec::new();
                    let (mut deleted, mut steps) = (0, 0);
                    loop {
                        let mut batch = WriteBatch::default();
                        let s = gc_step(
                            &self.engine,
                            &mut batch,
                            &from,
                            b"",
                            Timestamp::from_nanos(*watermark),
                            step.unwrap_or(1000),
                        )?;
                        self.engine.write(batch, false)?;
                        deleted += s.deleted;
                        steps += 1;
                        match s.next_key {
                            Some(k) => from = k,
                            None => break,
                        }
                    }
                    writeln!(out, "gc @{watermark}: deleted {deleted} versions in {steps} steps")?;
                }
                Command::Versions => {
                    for v in Reader::new(&self.engine).all_versions(b"", b"")? {
                        let value = v.value.as_deref().map(text).unwrap_or_else(|| "tombstone".into());
                        writeln!(out, "{}@{} = {value}", text(&v.key), v.ts.as_nanos())?;
                    }
                }
            }
            Ok(out)
        }
    }

    #[test]
    fn visibility() -> std::io::Result<()> {
        goldenscript::run(&mut Runner::new(), "src/storage/testscripts/mvcc/visibility")
    }

    #[test]
    fn gc() -> std::io::Result<()> {
        goldenscript::run(&mut Runner::new(), "src/storage/testscripts/mvcc/gc")
    }
}
