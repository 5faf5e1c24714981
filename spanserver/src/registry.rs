//! What request handlers may know about the replicas without asking the
//! event loop: descriptors, roles, leaders, safe time, GC watermarks.
//!
//! The event loop owns the replicas and is the only writer here; handlers
//! read. Reads of this state are hints (a handler may see a leader that has
//! just stepped down): anything that must be exact (ReadIndex, proposals)
//! goes through the loop, and the loop re-checks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use tokio::sync::watch;
use truetime::Timestamp;

use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::limits;
use crate::storage::snapshot::InstallSeq;
use meta::ClusterSpec;
use meta::{RangeVer, ReplicaId, ServerId, ShardDescriptor, ShardId};

/// A replica's Raft role, as raft-rs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    pub fn from_raft(state: raft::StateRole) -> Role {
        match state {
            raft::StateRole::Follower => Role::Follower,
            raft::StateRole::PreCandidate => Role::PreCandidate,
            raft::StateRole::Candidate => Role::Candidate,
            raft::StateRole::Leader => Role::Leader,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// A copy of a replica's Raft progress, published by the loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaProgress {
    pub role: Role,
    pub term: u64,
    pub leader_replica: Option<ReplicaId>,
    pub leader_server: Option<ServerId>,
    pub committed_index: u64,
    pub applied_index: u64,
    pub first_index: u64,
    pub last_index: u64,
    /// Requests waiting for an answer from the replica's transaction state
    /// machine (parked on locks, or being replicated).
    pub pending_requests: usize,
    /// At a leader: replicas that have not answered since its last quorum
    /// check (raft-rs's `recent_active`) and are behind its commit index,
    /// in id order.
    pub down_replicas: Arc<[ReplicaId]>,
    /// At a leader: replicas waiting for a snapshot, in id order.
    pub pending_replicas: Arc<[ReplicaId]>,
    /// At a ready leader whose lease holds: when the lease ends
    /// ([`ReplicaProgress::lease_covers`]).
    pub lease_reads_until: Option<Instant>,
}

impl ReplicaProgress {
    /// Whether a linearizable read arriving at `now` may skip the event
    /// loop: this replica leads, has applied every entry committed (of
    /// earlier terms and of its own), and holds a lease (`shard/lease.rs`)
    /// that no transfer or membership change has ended. Every write
    /// acknowledged before `now`, and every entry a follower may have
    /// served, is then applied here and published in the replica's
    /// [`TimeView`]: replies leave the loop after it publishes, appends
    /// that carry a commit index not yet applied here revoke the lease
    /// before they leave, and no other replica can have led since the
    /// lease began.
    pub fn lease_covers(&self, now: Instant) -> bool {
        self.role == Role::Leader && self.lease_reads_until.is_some_and(|until| now < until)
    }
}

/// What a replica can serve reads at, published after every loop
/// iteration: the largest applied timestamp, and the transactions prepared
/// here (prepare timestamp, keys they will write), which hold back reads of
/// those keys at or above their prepare timestamp (`txn::SafeTime`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeView {
    pub max_applied: Timestamp,
    pub prepared: Arc<Vec<(Timestamp, Vec<Vec<u8>>)>>,
}

impl TimeView {
    /// Can `[start, end)` (or the key `start`, if `!range`) be read at `ts`?
    pub fn readable(&self, ts: Timestamp, start: &[u8], end: &[u8], range: bool) -> bool {
        if ts > self.max_applied {
            return false;
        }
        let touches = |k: &Vec<u8>| {
            if range {
                k.as_slice() >= start && (end.is_empty() || k.as_slice() < end)
            } else {
                k.as_slice() == start
            }
        };
        !self.prepared.iter().any(|(prepare_ts, keys)| *prepare_ts <= ts && keys.iter().any(touches))
    }

    /// `t_safe`: every key can be read at or below it.
    pub fn safe(&self) -> Timestamp {
        let tm = self.prepared.iter().map(|(p, _)| p.prev()).min().unwrap_or(Timestamp::MAX);
        self.max_applied.min(tm)
    }
}

/// One replica's shared state.
#[derive(Debug)]
pub struct ReplicaShared {
    pub shard_id: ShardId,
    pub replica_id: ReplicaId,
    descriptor: RwLock<ShardDescriptor>,
    /// The registry's count of layout changes, once the replica is in it:
    /// every descriptor set is one.
    layout: OnceLock<Arc<LayoutChanges>>,
    progress: Mutex<ReplicaProgress>,
    /// What reads this replica can serve (see [`TimeView`]).
    time: watch::Sender<TimeView>,
    /// Reads below this timestamp fail: versions may be gone.
    gc_watermark: Arc<AtomicU64>,
    snapshots_installed: AtomicU64,
    /// Busy while a snapshot install overlaps the replica's range: reads
    /// refuse then.
    install_seq: InstallSeq,
    /// Set once the replica is leaving this server, before its data is
    /// deleted: reads refuse from then on ([`ReplicaShared::read_consistent`]).
    retired: AtomicBool,
    /// See [`ReplicaShared::written_bytes`].
    written_bytes: AtomicU64,
    /// Requests routed to this replica since the split queue last looked
    /// ([`ReplicaShared::record_load`]).
    requests: AtomicU64,
    /// Of those, the writes (a request on a round's edge may count its
    /// request in one round and its write in the next).
    writes: AtomicU64,
    /// Every [`limits::LOAD_SAMPLE_EVERY`]-th request's key, the newest
    /// [`limits::LOAD_SAMPLE_KEYS`].
    sampled_keys: Mutex<std::collections::VecDeque<Vec<u8>>>,
    /// Requests and, of those, writes a second over the split queue's
    /// last round (see [`ReplicaShared::load_rates`]), set together.
    load_rates: Mutex<(f64, f64)>,
    /// The keys the split queue last counted at this leader, and the
    /// range version it counted them under (see [`ReplicaShared::keys`]).
    key_count: Mutex<Option<(RangeVer, u64)>>,
}

/// What a request does with the keys it names, for the load a replica
/// reports (reads and writes a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl ReplicaShared {
    pub fn new(
        descriptor: ShardDescriptor,
        replica_id: ReplicaId,
        max_applied: Timestamp,
        gc_watermark: Arc<AtomicU64>,
    ) -> Self {
        ReplicaShared {
            shard_id: descriptor.shard_id,
            replica_id,
            descriptor: RwLock::new(descriptor),
            layout: OnceLock::new(),
            progress: Mutex::new(ReplicaProgress::default()),
            time: watch::Sender::new(TimeView { max_applied, prepared: Arc::new(Vec::new()) }),
            gc_watermark,
            snapshots_installed: AtomicU64::new(0),
            install_seq: InstallSeq::default(),
            retired: AtomicBool::new(false),
            written_bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            sampled_keys: Mutex::new(std::collections::VecDeque::new()),
            load_rates: Mutex::new((0.0, 0.0)),
            key_count: Mutex::new(None),
        }
    }

    /// The requests a second this replica served over the split queue's
    /// last round, as it measured them (`spandb status` shows it).
    pub fn requests_per_s(&self) -> f64 {
        self.load_rates().0
    }

    /// The requests and, of those, the writes a second this replica
    /// served over the split queue's last round, one pair.
    pub fn load_rates(&self) -> (f64, f64) {
        *self.load_rates.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_load_rates(&self, requests_per_s: f64, writes_per_s: f64) {
        *self.load_rates.lock().unwrap_or_else(PoisonError::into_inner) = (requests_per_s, writes_per_s);
    }

    /// The keys this replica's shard holds, as the split queue last
    /// counted them at this replica while it led under range version
    /// `range_ver` (`None`: not counted under it). Exact for a shard of up
    /// to [`limits::KEY_COUNT_SCAN_BYTES_MAX`]; beyond, extrapolated.
    pub fn keys(&self, range_ver: RangeVer) -> Option<u64> {
        self.key_count.lock().unwrap_or_else(PoisonError::into_inner).filter(|(v, _)| *v == range_ver).map(|(_, n)| n)
    }

    pub fn set_keys(&self, range_ver: RangeVer, keys: u64) {
        *self.key_count.lock().unwrap_or_else(PoisonError::into_inner) = Some((range_ver, keys));
    }

    pub fn forget_keys(&self) {
        *self.key_count.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// One request for `key` (its first key) reached this replica: load
    /// for the split queue's split by load. Cheap: a counter or two, and a
    /// lock for one request in [`limits::LOAD_SAMPLE_EVERY`].
    pub fn record_load(&self, key: &[u8], access: Access) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        if access == Access::Write {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        if n.is_multiple_of(limits::LOAD_SAMPLE_EVERY) {
            let mut keys = self.sampled_keys.lock().expect("sampled keys lock");
            if keys.len() >= limits::LOAD_SAMPLE_KEYS {
                keys.pop_front();
            }
            keys.push_back(key.to_vec());
        }
    }

    /// The writes counted since the last call (starting again from
    /// nothing); [`ReplicaShared::take_load`] counts them among requests.
    pub fn take_writes(&self) -> u64 {
        self.writes.swap(0, Ordering::Relaxed)
    }

    /// The requests counted and the keys sampled since the last call
    /// (both start again from nothing).
    pub fn take_load(&self) -> (u64, Vec<Vec<u8>>) {
        let n = self.requests.swap(0, Ordering::Relaxed);
        let keys = std::mem::take(&mut *self.sampled_keys.lock().expect("sampled keys lock"));
        (n, keys.into())
    }

    /// Bytes of versions this replica applied since the server started
    /// (or since its shard last split): with RocksDB's estimate of what is
    /// on disk, it tells the split queue when to look closer.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes.load(Ordering::Relaxed)
    }

    pub fn add_written_bytes(&self, n: u64) {
        self.written_bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn reset_written_bytes(&self) {
        self.written_bytes.store(0, Ordering::Relaxed);
    }

    pub fn descriptor(&self) -> ShardDescriptor {
        self.descriptor.read().expect("descriptor lock").clone()
    }

    /// `f` of the descriptor, without copying it (every read checks it
    /// twice).
    pub fn with_descriptor<T>(&self, f: impl FnOnce(&ShardDescriptor) -> T) -> T {
        f(&self.descriptor.read().expect("descriptor lock"))
    }

    pub fn set_descriptor(&self, d: ShardDescriptor) {
        let set = || *self.descriptor.write().expect("descriptor lock") = d;
        match self.layout.get() {
            Some(layout) => layout.change(set),
            None => set(),
        }
    }

    pub fn progress(&self) -> ReplicaProgress {
        self.progress.lock().expect("progress lock").clone()
    }

    /// [`ReplicaProgress::lease_covers`], without copying the progress.
    pub fn lease_covers(&self, now: Instant) -> bool {
        self.progress.lock().expect("progress lock").lease_covers(now)
    }

    pub fn set_progress(&self, p: ReplicaProgress) {
        *self.progress.lock().expect("progress lock") = p;
    }

    /// Ends reads from the lease at once (a transfer began: its
    /// TimeoutNow must not leave while handlers still trust the lease).
    pub fn revoke_lease_reads(&self) {
        self.progress.lock().expect("progress lock").lease_reads_until = None;
    }

    /// `t_safe` of this replica.
    pub fn safe_ts(&self) -> Timestamp {
        self.time.borrow().safe()
    }

    pub fn time_view(&self) -> TimeView {
        self.time.borrow().clone()
    }

    /// `f` of the published time view, without copying it.
    pub fn with_time_view<T>(&self, f: impl FnOnce(&TimeView) -> T) -> T {
        f(&self.time.borrow())
    }

    /// Publishes a new view if it differs (the loop calls this after every
    /// iteration that touched the replica).
    pub fn publish_time(&self, max_applied: Timestamp, prepared: Option<Vec<(Timestamp, Vec<Vec<u8>>)>>) {
        self.time.send_if_modified(|cur| {
            let mut changed = false;
            if max_applied > cur.max_applied {
                cur.max_applied = max_applied;
                changed = true;
            }
            if let Some(p) = prepared {
                cur.prepared = Arc::new(p);
                changed = true;
            }
            changed
        });
    }

    pub fn watch_time(&self) -> watch::Receiver<TimeView> {
        self.time.subscribe()
    }

    pub fn gc_watermark(&self) -> Timestamp {
        Timestamp::from_nanos(self.gc_watermark.load(Ordering::SeqCst))
    }

    pub fn gc_watermark_cell(&self) -> &Arc<AtomicU64> {
        &self.gc_watermark
    }

    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(Ordering::SeqCst)
    }

    pub fn count_snapshot_installed(&self) {
        self.snapshots_installed.fetch_add(1, Ordering::SeqCst);
    }

    /// Does the replica's range hold a key of `[start, end)` (`range`;
    /// empty `end`: unbounded), or the key `start` (`!range`)? An
    /// uninitialized replica holds none.
    pub fn holds_any(&self, start: &[u8], end: &[u8], range: bool) -> bool {
        let d = self.descriptor.read().expect("descriptor lock");
        if !d.is_initialized() {
            return false;
        }
        match range {
            false => d.contains(start),
            true => {
                (end.is_empty() || d.start_key.as_slice() < end)
                    && (d.end_key.is_empty() || start < d.end_key.as_slice())
            }
        }
    }

    pub fn install_seq(&self) -> &InstallSeq {
        &self.install_seq
    }

    /// The replica is leaving this server: called before its data is
    /// deleted, so that a read holding this state (it found the replica
    /// before the registry forgot it) refuses instead of reading the
    /// deleted range as empty.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    /// Runs `read`, a read of this replica's data through one RocksDB
    /// snapshot, of keys the replica held at range version `range_ver`
    /// (when the request's route was checked), and returns its result
    /// only if that data was this replica's, whole, throughout:
    ///
    /// - a snapshot install empties the shard's range between its two
    ///   steps (`storage/snapshot.rs`): refused `Unavailable`, retry here;
    /// - a split moved keys the read covers (`still_held` of the new
    ///   descriptor says no) to the child, whose replica here may not yet
    ///   have applied writes its leader acknowledged, while this replica's
    ///   safe time goes on rising: refused `WrongShard`, with the new
    ///   descriptor;
    /// - a replica leaving the server has its range deleted: refused
    ///   `WrongShard`, the client looks for the shard elsewhere.
    ///
    /// Why checks after the read are enough: the install begins, the split
    /// is published and the retirement is marked before what they change
    /// is written or served; a read that saw the change saw the mark. A
    /// read woken by a safe time published after a split's apply sees the
    /// new descriptor too: the loop sets it while applying, and publishes
    /// the time after.
    pub fn read_consistent<T>(
        &self,
        range_ver: u64,
        still_held: impl FnOnce(&ShardDescriptor) -> bool,
        read: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let installing = || Error::Unavailable(format!("{} is installing a snapshot; retry", self.shard_id));
        let gone = || replica_left(self.shard_id);
        let seq = self.install_seq.read_begin().ok_or_else(installing)?;
        if self.retired.load(Ordering::SeqCst) {
            return Err(gone());
        }
        let out = read()?;
        if self.retired.load(Ordering::SeqCst) {
            return Err(gone());
        }
        let split = self.with_descriptor(|d| d.epoch.range_ver.0 != range_ver && !still_held(d));
        if split {
            let d = self.descriptor();
            return Err(Error::WrongShard {
                shard_id: self.shard_id,
                reason: format!("the shard split during the read (range_ver {range_ver} -> {})", d.epoch.range_ver),
                descriptors: vec![d],
            });
        }
        match self.install_seq.read_valid(seq) {
            true => Ok(out),
            false => Err(installing()),
        }
    }
}

/// The refusal of a request for a replica that left this server: the
/// client looks for the shard elsewhere.
pub fn replica_left(shard_id: ShardId) -> Error {
    Error::WrongShard { shard_id, descriptors: Vec::new(), reason: "the replica of this shard left this server".into() }
}

/// Changes to which keys the replicas here hold (a replica added or
/// removed, a descriptor set), counted seqlock style: the count is odd
/// while a change is under way, and changes take turns. What
/// [`Registry::newer_holder`] found of the whole layout stays true while
/// the count stays where it was when it looked.
#[derive(Debug, Default)]
pub struct LayoutChanges {
    count: AtomicU64,
    one_at_a_time: Mutex<()>,
    /// What was last found of the layout: `n` (even) if no two replicas'
    /// ranges overlapped at count `n`, `n + 1` if some did (so a server
    /// with a replica stuck behind a split does not look again on every
    /// read); `u64::MAX` before anything was found.
    found: AtomicU64,
}

impl LayoutChanges {
    fn new() -> Self {
        LayoutChanges { found: AtomicU64::new(u64::MAX), ..Default::default() }
    }

    fn change<T>(&self, change: impl FnOnce() -> T) -> T {
        let _turn = self.one_at_a_time.lock().unwrap_or_else(PoisonError::into_inner);
        self.count.fetch_add(1, Ordering::SeqCst);
        let out = change();
        self.count.fetch_add(1, Ordering::SeqCst);
        out
    }

    /// The count, if no change is under way.
    fn settled(&self) -> Option<u64> {
        let n = self.count.load(Ordering::SeqCst);
        n.is_multiple_of(2).then_some(n)
    }
}

/// All replicas on this server, by shard, and what the server shows of
/// itself beside them (`Admin.ServerStatus`).
#[derive(Debug)]
pub struct Registry {
    pub server_id: ServerId,
    pub cluster: ClusterSpec,
    /// Where every server is, joined ones included.
    pub directory: Arc<Directory>,
    replicas: RwLock<BTreeMap<ShardId, Arc<ReplicaShared>>>,
    layout: Arc<LayoutChanges>,
    /// What the placement driver beside this server is doing, in words
    /// (empty unless it runs and this server leads the system shard).
    placement_operations: Mutex<Vec<String>>,
}

impl Registry {
    pub fn new(server_id: ServerId, cluster: ClusterSpec, directory: Arc<Directory>) -> Self {
        Registry {
            server_id,
            cluster,
            directory,
            replicas: RwLock::new(BTreeMap::new()),
            layout: Arc::new(LayoutChanges::new()),
            placement_operations: Mutex::new(Vec::new()),
        }
    }

    pub fn set_placement_operations(&self, operations: Vec<String>) {
        *self.placement_operations.lock().unwrap_or_else(PoisonError::into_inner) = operations;
    }

    pub fn placement_operations(&self) -> Vec<String> {
        self.placement_operations.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn insert(&self, r: Arc<ReplicaShared>) {
        let _ = r.layout.set(self.layout.clone());
        self.layout.change(|| self.replicas.write().expect("registry lock").insert(r.shard_id, r));
    }

    pub fn remove(&self, shard: ShardId) {
        self.layout.change(|| self.replicas.write().expect("registry lock").remove(&shard));
    }

    pub fn get(&self, shard: ShardId) -> Option<Arc<ReplicaShared>> {
        self.replicas.read().expect("registry lock").get(&shard).cloned()
    }

    /// Replicas in shard order.
    pub fn all(&self) -> Vec<Arc<ReplicaShared>> {
        self.replicas.read().expect("registry lock").values().cloned().collect()
    }

    /// The descriptor of another initialized replica here that holds a
    /// key of `span` (`(start, end, is_range)`, as
    /// [`ReplicaShared::holds_any`]) at a higher range version than
    /// `range_ver`, if any. Only a replica behind a split overlaps another
    /// here (the child's replica came by snapshot first), and its data for
    /// those keys is the child's: newer writes it has not applied, history
    /// the child's GC took, and for a moment while the child's snapshot
    /// goes in, nothing. Called on every read, so it is O(1) while no two
    /// replicas here overlap (nearly always: only between a child's
    /// snapshot and its parent's split) and the layout has not changed
    /// since it last found so ([`LayoutChanges`]); else O(replicas here),
    /// a range compare under each one's descriptor lock.
    pub fn newer_holder(&self, shard: ShardId, range_ver: u64, span: (&[u8], &[u8], bool)) -> Option<ShardDescriptor> {
        let settled = self.layout.settled();
        let found = self.layout.found.load(Ordering::SeqCst);
        if settled == Some(found) {
            // No replica overlaps another, so none holds this one's keys.
            return None;
        }
        let (start, end, range) = span;
        let replicas = self.replicas.read().expect("registry lock");
        let newer = replicas
            .values()
            .filter(|o| o.shard_id != shard && o.holds_any(start, end, range))
            .map(|o| o.descriptor())
            .find(|d| d.epoch.range_ver.0 > range_ver);
        if let Some(n) = settled.filter(|n| newer.is_none() && found != n + 1) {
            let disjoint = ranges_disjoint(replicas.values().map(|r| r.descriptor()));
            if self.layout.settled() == Some(n) {
                self.layout.found.store(if disjoint { n } else { n + 1 }, Ordering::SeqCst);
            }
        }
        newer
    }

    pub fn server_addr(&self, server: ServerId) -> Option<String> {
        self.directory.addr(server)
    }
}

/// Whether no two of these shards' ranges overlap (uninitialized ones
/// hold nothing).
fn ranges_disjoint(descriptors: impl Iterator<Item = ShardDescriptor>) -> bool {
    let mut held: Vec<ShardDescriptor> = descriptors.filter(|d| d.is_initialized()).collect();
    held.sort_by(|a, b| a.start_key.cmp(&b.start_key));
    held.windows(2).all(|w| !w[0].end_key.is_empty() && w[0].end_key <= w[1].start_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(shard: u64, start: &str, end: &str, range_ver: u64) -> Arc<ReplicaShared> {
        let descriptor = ShardDescriptor {
            start_key: start.as_bytes().to_vec(),
            end_key: end.as_bytes().to_vec(),
            epoch: meta::ShardEpoch { range_ver: meta::RangeVer(range_ver), ..Default::default() },
            ..ShardDescriptor::uninitialized(ShardId(shard))
        };
        Arc::new(ReplicaShared::new(descriptor, ReplicaId(shard), Timestamp::ZERO, Arc::new(AtomicU64::new(0))))
    }

    fn registry(replicas: &[Arc<ReplicaShared>]) -> Registry {
        let cluster = ClusterSpec {
            cluster_id: "c".into(),
            replication: 3,
            split_points: Vec::new(),
            servers: Vec::new(),
            peer_secret: String::new(),
        };
        let directory = Arc::new(Directory::new(&cluster, &BTreeMap::new()));
        let registry = Registry::new(ServerId(1), cluster, directory);
        for r in replicas {
            registry.insert(r.clone());
        }
        registry
    }

    /// A replica behind a split ([a, end), range version 1) beside the
    /// child's replica that came by snapshot ([m, end), range version 2,
    /// which split again at x: version 3): reads of the moved keys at the
    /// stale replica find the newer holder; other reads, and reads at the
    /// newer replicas, do not.
    #[test]
    fn a_replica_behind_a_split_finds_the_newer_holder_of_moved_keys() {
        let registry = registry(&[replica(1, "a", "", 1), replica(2, "m", "x", 2), replica(3, "x", "", 3)]);
        let holder = |shard: u64, range_ver: u64, span: (&[u8], &[u8], bool)| {
            registry.newer_holder(ShardId(shard), range_ver, span).map(|d| d.shard_id.0)
        };
        assert_eq!(holder(1, 1, (b"n", b"", false)), Some(2));
        assert_eq!(holder(1, 1, (b"y", b"", false)), Some(3));
        assert_eq!(holder(1, 1, (b"b", b"", false)), None);
        assert_eq!(holder(1, 1, (b"b", b"n", true)), Some(2));
        assert_eq!(holder(1, 1, (b"b", b"m", true)), None);
        assert_eq!(holder(2, 2, (b"n", b"", false)), None, "the stale replica is older");
        assert_eq!(holder(3, 3, (b"y", b"", false)), None);
        // An uninitialized replica holds no key.
        let blank = ShardDescriptor {
            epoch: meta::ShardEpoch { range_ver: meta::RangeVer(9), ..Default::default() },
            ..ShardDescriptor::uninitialized(ShardId(4))
        };
        registry.insert(Arc::new(ReplicaShared::new(
            blank,
            ReplicaId(4),
            Timestamp::ZERO,
            Arc::new(AtomicU64::new(0)),
        )));
        assert_eq!(holder(1, 1, (b"b", b"m", true)), None);
    }

    /// Goal: the finding that no replicas overlap is forgotten at the
    /// next change. Replicas [a, m) and [m, ""), disjoint, found so; then
    /// a child's replica [p, "") at a newer range version comes in (its
    /// snapshot before the parent's split), and then the parent applies
    /// the split; then its child's range is set to overlap it again.
    #[test]
    fn a_layout_change_is_seen_after_the_replicas_were_found_disjoint() {
        let parent = replica(2, "m", "", 1);
        let registry = registry(&[replica(1, "a", "m", 1), parent.clone()]);
        let holder = |range_ver: u64, key: &[u8]| {
            registry.newer_holder(ShardId(2), range_ver, (key, b"", false)).map(|d| d.shard_id.0)
        };
        assert_eq!(holder(1, b"q"), None);
        assert_eq!(holder(1, b"q"), None, "found disjoint, and remembered");
        let child = replica(3, "p", "", 2);
        registry.insert(child.clone());
        assert_eq!(holder(1, b"q"), Some(3), "a new replica overlaps");
        assert_eq!(holder(1, b"q"), Some(3), "and again, the overlap known");
        assert_eq!(holder(1, b"n"), None, "keys the new replica does not hold");
        let split = |start: &str, end: &str, range_ver: u64| ShardDescriptor {
            start_key: start.as_bytes().to_vec(),
            end_key: end.as_bytes().to_vec(),
            epoch: meta::ShardEpoch { range_ver: meta::RangeVer(range_ver), ..Default::default() },
            ..ShardDescriptor::uninitialized(parent.shard_id)
        };
        parent.set_descriptor(split("m", "p", 2));
        assert_eq!(holder(2, b"n"), None);
        assert_eq!(holder(2, b"n"), None, "found disjoint again");
        child.set_descriptor(ShardDescriptor {
            start_key: b"n".to_vec(),
            epoch: split("", "", 3).epoch,
            ..child.descriptor()
        });
        assert_eq!(holder(2, b"n"), Some(3), "a descriptor set overlaps");
        registry.remove(ShardId(3));
        assert_eq!(holder(2, b"n"), None);
    }
}
