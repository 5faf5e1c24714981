//! Transactions, from the client's side.
//!
//! # Read-write: [`Txn`]
//!
//! ```text
//!   let mut txn = client.begin();
//!   txn.get(b"alice")   ── Txn.Read ──> leader of alice's shard: shared lock, latest value
//!   txn.get_for_update(b"carol")  the same, under an exclusive lock (it will write carol)
//!   txn.put(b"bob", ..)    buffered here (later reads of bob see it)
//!   txn.commit()
//!     one shard:   Txn.Commit ──> that shard: exclusive locks, s, replicate, commit-wait
//!     several:     Txn.Prepare ──> every shard but the coordinator (in parallel)
//!                  Txn.Commit(prepare timestamps) ──> the coordinator
//!     several, nothing written:  Txn.Commit ──> every shard read (in parallel);
//!                  the transaction's timestamp is the smallest answered
//! ```
//!
//! # A transaction that wrote nothing
//!
//! At one shard it commits as any other, and a leader holding its lease
//! answers without a Raft round (`txn::shard`, "A commit that wrote
//! nothing"). Over several shards it needs no two-phase commit: each shard
//! checks that it held the read locks since the reads and releases them,
//! in one phase of its own, and the transaction's timestamp is the
//! smallest of theirs, `s = min(s_i)`. Callers rely on `s` being a point
//! where every read holds (a SQL gateway leases the descriptors it read
//! from it), and it is:
//!
//! - below the next write of every key read: shard `i` releases its locks
//!   at `s_i >= s`, and a later write there gets a timestamp above `s_i`;
//! - above every version read: a read's answer waits until `TT.after` of
//!   the newest version it reveals (the visibility wait), so that version
//!   is below true time at the answer, which is before every commit was
//!   sent, and each `s_i` is at least `TT.now().latest` when its commit
//!   arrived.
//!
//! It is externally consistent too: a transaction acknowledged before
//! this one began has a timestamp below true time then, below every
//! `s_i`; and this one is acknowledged only after every shard's
//! commit-wait, past the largest `s_i`. The largest would not do: it may be
//! past another shard's next write. `tests/tests/cluster/clocks.rs`
//! shows the smallest above every version read with the shards' clocks
//! skewed apart, and below one without the visibility wait.
//!
//! While the transaction is open, and through its commit, a background
//! task heartbeats the shards it holds locks on (a silent transaction loses them after
//! `KEEPALIVE_TIMEOUT`). A commit with participants to prepare also
//! heartbeats its coordinator, at every replica, if the transaction holds
//! no locks there (it only writes there), until the commit returns: a
//! participant that prepared a second ago asks the coordinator about the
//! transaction, and a coordinator that has not heard that the client is
//! committing decides abort. A failed prepare aborts the transaction on every
//! shard; a commit whose answer is lost is [`Error::Ambiguous`], never
//! retried. Dropping an unfinished transaction rolls it back.
//!
//! Writes are grouped by shard from the client's map when the commit
//! begins. If a shard split since (the client learns it from the
//! refusal), a request is never sent with keys its shard no longer holds:
//! a commit at one shard groups the writes again (and may go on in two
//! phases over the halves). Over several shards, where others may already
//! be prepared, a part that only writes there (no locks held) groups its
//! writes again and prepares the halves, unless one is a shard already
//! prepared. For the coordinator, whose commit was not sent, that means
//! preparing the moved keys' new shard and then committing the rest at the
//! coordinator, which keeps its id. A part holding locks at a shard that
//! split aborts the transaction, retryably.
//!
//! A locking read may be abandoned before its answer (its future dropped:
//! a SQL statement cancelled while it waits for a lock). The shard may
//! still grant that lock later, so the transaction remembers the shard
//! ([`Txn`]'s `unanswered`): rolling back releases the lock there at once,
//! and a commit refuses (aborting everywhere), since the transaction
//! cannot know what it holds.
//!
//! [`Client::run`] runs a closure as a transaction and retries it when it
//! is aborted (wounded by an older transaction, locks lost with a leader),
//! keeping the first attempt's priority: an old transaction eventually wins.
//!
//! # Read-only: [`ReadOnlyTxn`]
//!
//! Lock-free reads at one timestamp, from any replica that has applied that
//! far: `read_only()` (the first read picks `TT.now().latest` at its
//! server: externally consistent), `snapshot(ts)`, or
//! `bounded_staleness(d)` (the first read picks the freshest timestamp its
//! replica has, at most `d` old). Every later read uses the same timestamp,
//! so the transaction sees one consistent snapshot across shards. After a
//! strong first read (`read_only()`, `read_only_single_shard()`) that
//! timestamp is fresh, so the later reads go to leaders first: a leader
//! closes a timestamp on demand, a follower waits for the leader's next
//! one (up to the closing interval, 200 ms by default).
//! `.prefer(ReplicaPreference::Follower)` sends each read to a follower
//! first (the answers are the same; a read at now may wait there for the
//! next closed timestamp).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meta::{Priority, RangeVer, ShardId, TxnId};

use crate::{next_page, Client, Dest, Error, KeyValue, Op, ReadMode, ReplicaPreference, Result, ScanOrder, Timestamp};

/// How often an open transaction heartbeats its shards: the servers'
/// `txn::limits::HEARTBEAT_INTERVAL` (a coordinator takes a client heard
/// from within two of them as alive).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// How soon after its commit begins a client first heartbeats a
/// coordinator it holds no locks at: well before a participant prepared
/// since asks the coordinator (`txn::limits::RESOLVE_AFTER`, a second
/// after its prepare).
const COORDINATOR_FIRST_BEAT: Duration = Duration::from_millis(250);

/// How often it heartbeats that coordinator after the first: a beat or
/// two may be lost within the two intervals a coordinator counts a client
/// as heard from (`txn::limits::HEARD_WITHIN`).
const COORDINATOR_BEAT_INTERVAL: Duration = Duration::from_millis(500);

/// How many times [`Client::run`] tries a transaction.
pub const RUN_ATTEMPTS_MAX: usize = 100;

/// Most pairs one transactional scan page asks for.
const TXN_SCAN_PAGE: u32 = 1_000;

/// How many times a commit groups its writes again when the shard they
/// were grouped by split before it took them (each split is a regroup).
const COMMIT_REGROUPS_MAX: usize = 3;

fn now() -> Timestamp {
    Timestamp::from_nanos(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0))
}

/// How a commit went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    pub commit_ts: Timestamp,
    /// How long the coordinator held the answer for commit-wait.
    pub commit_wait: Duration,
    /// Shards that took part (1: a one-phase commit).
    pub participants: usize,
    /// Where the transaction's time went.
    pub timings: TxnTimings,
}

/// Where a read-write transaction's time went: its requests as this
/// client waited for them, and as their servers reported them. The
/// difference is the network and both ends' gRPC. For latency
/// breakdowns (`spandb bench sql`); routing retries count in the
/// client's times.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TxnTimings {
    /// Locking reads (a get, or one page of a scan).
    pub reads: u32,
    pub read: Duration,
    pub read_server: Duration,
    /// Of the servers' time on reads, until the locks were granted (the
    /// wait behind other transactions' locks, and the event loop's queue).
    pub read_lock: Duration,
    /// The prepares (sent together: until the last answered), and the
    /// slowest one's server time; zero for a one-shard commit, or one
    /// that wrote nothing.
    pub prepare: Duration,
    pub prepare_server: Duration,
    /// The commit at the coordinator (or the only shard), commit-wait
    /// included, and its server time.
    pub commit: Duration,
    pub commit_server: Duration,
    /// Of the commit, how long the coordinator held it for commit-wait.
    pub commit_wait: Duration,
}

impl std::ops::AddAssign for TxnTimings {
    fn add_assign(&mut self, t: TxnTimings) {
        self.reads += t.reads;
        self.read += t.read;
        self.read_server += t.read_server;
        self.read_lock += t.read_lock;
        self.prepare += t.prepare;
        self.prepare_server += t.prepare_server;
        self.commit += t.commit;
        self.commit_server += t.commit_server;
        self.commit_wait += t.commit_wait;
    }
}

impl TxnTimings {
    /// What a sum of timings grew by since `before`, an earlier sum.
    pub fn since(&self, before: &TxnTimings) -> TxnTimings {
        TxnTimings {
            reads: self.reads.saturating_sub(before.reads),
            read: self.read.saturating_sub(before.read),
            read_server: self.read_server.saturating_sub(before.read_server),
            read_lock: self.read_lock.saturating_sub(before.read_lock),
            prepare: self.prepare.saturating_sub(before.prepare),
            prepare_server: self.prepare_server.saturating_sub(before.prepare_server),
            commit: self.commit.saturating_sub(before.commit),
            commit_server: self.commit_server.saturating_sub(before.commit_server),
            commit_wait: self.commit_wait.saturating_sub(before.commit_wait),
        }
    }

    fn note_read(&mut self, asked: Instant, response: &proto::TxnReadResponse) {
        self.reads += 1;
        self.read += asked.elapsed();
        self.read_server += Duration::from_nanos(response.server_ns);
        self.read_lock += Duration::from_nanos(response.lock_ns);
    }
}

#[derive(Debug, Default, Clone)]
struct ShardPart {
    /// The shard's range as the transaction routed by.
    range_ver: RangeVer,
    writes: Vec<proto::Mutation>,
    reads: Vec<proto::Span>,
    /// The lease the reads were locked under.
    lease: Option<proto::LockLease>,
    /// "Absent" conditions on keys it writes ([`Txn::put_absent`]).
    conditions: Vec<proto::Condition>,
}

impl ShardPart {
    /// Does the shard, as `target` routes to it, still hold every key
    /// the part writes (sorted: the first and the last tell)?
    fn is_inside(&self, target: &crate::routing::Target) -> bool {
        [self.writes.first(), self.writes.last()].into_iter().flatten().all(|w| target.holds(&w.key))
    }

    /// Does the transaction hold no locks at the shard (it only writes
    /// there)? Then its writes may be grouped again after a split.
    fn only_writes(&self) -> bool {
        self.reads.is_empty() && self.lease.is_none()
    }

    /// Takes `other`'s writes and conditions (grouped again onto this
    /// part's shard), keeping the writes sorted.
    fn absorb(&mut self, other: ShardPart) {
        self.range_ver = self.range_ver.max(other.range_ver);
        self.writes.extend(other.writes);
        self.writes.sort_by(|a, b| a.key.cmp(&b.key));
        self.conditions.extend(other.conditions);
    }
}

/// What a transaction read on one shard.
#[derive(Debug, Clone)]
struct ShardReads {
    range_ver: RangeVer,
    /// The lease of the transaction's locks there (from the first read's
    /// answer); later reads and the prepare or commit present it, so locks
    /// lost since (a leader change, a wound, an expired keep-alive) abort
    /// the transaction even if a later read took them again.
    lease: Option<proto::LockLease>,
    spans: Vec<proto::Span>,
}

/// A read-write transaction. See the module docs.
pub struct Txn {
    client: Client,
    id: TxnId,
    /// Wound-wait: its first attempt's start time and id.
    priority: Priority,
    /// Buffered writes (`None`: delete).
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Written keys that must have no value when the transaction commits.
    absent: BTreeSet<Vec<u8>>,
    /// What was read, per shard (its locks must hold at commit).
    reads: BTreeMap<ShardId, ShardReads>,
    /// Shards a locking read was sent to that never answered it (the
    /// read's future was dropped): the read may yet take its lock there.
    unanswered: BTreeSet<ShardId>,
    /// Shards to heartbeat (shared with the heartbeat task).
    locked_shards: Arc<Mutex<BTreeSet<ShardId>>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    finished: bool,
    /// The transaction must happen before it ([`Txn::set_deadline`]).
    deadline: Option<Timestamp>,
    /// Locking reads refuse rather than wait ([`Txn::set_no_wait`]).
    no_wait: bool,
    timings: TxnTimings,
    /// What each buffered write replaced, oldest first, kept from the
    /// first [`Txn::savepoint`] on (`None` before it).
    undo: Option<Vec<Undo>>,
}

/// A place in a transaction's buffered writes to go back to
/// ([`Txn::savepoint`], [`Txn::rollback_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint(usize);

/// What one buffered write replaced: the key's earlier write (`None`:
/// none) and whether it was written absent-only.
#[derive(Debug)]
struct Undo {
    key: Vec<u8>,
    write: Option<Option<Vec<u8>>>,
    absent: bool,
}

impl Txn {
    fn new(client: Client, priority: Option<Priority>) -> Txn {
        let id = TxnId::random(rand::random());
        Txn {
            client,
            id,
            priority: priority.unwrap_or(Priority::new(now(), id)),
            writes: BTreeMap::new(),
            absent: BTreeSet::new(),
            reads: BTreeMap::new(),
            unanswered: BTreeSet::new(),
            locked_shards: Arc::default(),
            heartbeat: None,
            finished: false,
            deadline: None,
            no_wait: false,
            timings: TxnTimings::default(),
            undo: None,
        }
    }

    /// Where the transaction's time has gone so far.
    pub fn timings(&self) -> TxnTimings {
        self.timings
    }

    pub fn id(&self) -> TxnId {
        self.id
    }

    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// From now on, the transaction must happen before `deadline`: the
    /// servers grant its reads only while their clocks' `latest` is below
    /// it, and commit it only at a timestamp below it; else it aborts
    /// ([`Error::Aborted`], retryable). A SQL gateway sets it to the end
    /// of the table descriptor leases the transaction's statements used
    /// (F1's rule), and lifts it (`None`) once it has read those
    /// descriptors under locks instead.
    pub fn set_deadline(&mut self, deadline: Option<Timestamp>) {
        self.deadline = deadline;
    }

    /// From now on (until turned off), a locking read whose lock another
    /// transaction holds fails at once with [`Error::LockNotAvailable`]
    /// instead of waiting for it (or wounding a younger holder): SQL's
    /// `FOR UPDATE NOWAIT`. The transaction stays open and keeps the
    /// locks it holds.
    pub fn set_no_wait(&mut self, no_wait: bool) {
        self.no_wait = no_wait;
    }

    fn meta(&self) -> proto::TxnMeta {
        proto::TxnMeta {
            txn_id: self.id.0.to_be_bytes().to_vec(),
            priority_ts: self.priority.start_ts.as_nanos(),
            priority_txn: self.priority.txn.0.to_be_bytes().to_vec(),
            deadline: self.deadline.map(Timestamp::as_nanos),
        }
    }

    fn check_open(&self) -> Result<()> {
        match self.finished {
            true => Err(Error::InvalidArgument("the transaction has already committed or rolled back".into())),
            false => Ok(()),
        }
    }

    /// Starts heartbeats once the transaction holds a lock somewhere.
    fn note_locked(&mut self, shard: ShardId, range_ver: RangeVer, lease: Option<proto::LockLease>, span: proto::Span) {
        self.reads.entry(shard).or_insert(ShardReads { range_ver, lease, spans: Vec::new() }).spans.push(span);
        self.locked_shards.lock().expect("shards lock").insert(shard);
        if self.heartbeat.is_none() {
            let (client, shards, id) = (self.client.clone(), self.locked_shards.clone(), self.id);
            self.heartbeat = Some(tokio::spawn(async move {
                // At a steady rate (a round takes at most an interval): a
                // coordinator judges a participant's patient question by
                // whether it heard from the client within two.
                let mut every = tokio::time::interval(HEARTBEAT_INTERVAL);
                every.tick().await;
                loop {
                    every.tick().await;
                    let list: Vec<ShardId> = shards.lock().expect("shards lock").iter().copied().collect();
                    client.heartbeat(id, &list).await;
                }
            }));
        }
    }

    /// A locking read came back (answered or failed) from `sent_to`, the
    /// shards it was sent to that were not already `unanswered`.
    fn answered(&mut self, sent_to: Vec<ShardId>) {
        for shard in sent_to {
            self.unanswered.remove(&shard);
        }
    }

    /// Every shard where the transaction may hold locks: those it read
    /// on, and those an abandoned read was sent to.
    fn maybe_locked(&self) -> Vec<ShardId> {
        self.reads.keys().chain(&self.unanswered).copied().collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// Reads `key`: this transaction's own write if it made one, else the
    /// latest committed value, under a shared lock.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_locked(key, false).await
    }

    /// Like [`Txn::get`], under an exclusive lock: for a key the
    /// transaction means to write (SQL's UPDATE). Two transactions that
    /// both read a key shared and then write it each wait for the other at
    /// commit, and wound-wait aborts one; an exclusive read makes the
    /// second wait (or wound) at its read instead.
    pub async fn get_for_update(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_locked(key, true).await
    }

    async fn get_locked(&mut self, key: &[u8], for_update: bool) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        if let Some(w) = self.writes.get(key) {
            return Ok(w.clone());
        }
        let meta = self.meta();
        let span = proto::Span { start: key.to_vec(), end: Vec::new(), range: false };
        let mut locked_at = (ShardId(0), RangeVer(0));
        let (reads, unanswered, mut sent_to) = (&self.reads, &mut self.unanswered, Vec::new());
        let no_wait = self.no_wait;
        let asked = Instant::now();
        let response = self
            .client
            .execute(Dest::Key(key), Op::LockingRead, |channel, target| {
                locked_at = (target.shard_id, target.range_ver);
                if unanswered.insert(target.shard_id) {
                    sent_to.push(target.shard_id);
                }
                let request = proto::TxnReadRequest {
                    txn: Some(meta.clone()),
                    shard_id: target.shard_id.0,
                    range_ver: target.range_ver.0,
                    span: Some(span.clone()),
                    limit: 1,
                    lease: reads.get(&target.shard_id).and_then(|r| r.lease),
                    for_update,
                    no_wait,
                    reverse: false,
                    narrow_lock: false,
                };
                channel.txn_read(request)
            })
            .await;
        self.answered(sent_to);
        let response = response?.into_inner();
        self.timings.note_read(asked, &response);
        self.note_locked(locked_at.0, locked_at.1, response.lease, span);
        Ok(response.pairs.into_iter().next().map(|kv| kv.value))
    }

    /// Reads the pairs with keys in `[start, end)` (empty `end`: unbounded),
    /// at most `limit`, under shared range locks, merged with this
    /// transaction's own writes. Each page locks only the span it read
    /// (the server says which), so a scan that stops at its limit leaves
    /// the rest of the range to writers.
    pub async fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        self.scan_ordered((start, end, ScanOrder::Forward), limit).await
    }

    /// Like [`Txn::scan`], in descending key order: the last `limit` pairs
    /// of the range, last first, locking the span from the last pair
    /// returned to `end`.
    pub async fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        self.scan_ordered((start, end, ScanOrder::Reverse), limit).await
    }

    async fn scan_ordered(&mut self, range: (&[u8], &[u8], ScanOrder), limit: usize) -> Result<Vec<KeyValue>> {
        let (start, end, order) = range;
        self.check_open()?;
        if !end.is_empty() && end <= start {
            return Err(Error::InvalidArgument("scan end must be after start".into()));
        }
        let meta = self.meta();
        let mut found: BTreeMap<Vec<u8>, KeyValue> = BTreeMap::new();
        // The part of the range still to read: forward, from `cursor` to
        // `end`; reverse, from `start` to `cursor`.
        let mut cursor = order.first_cursor(start, end);
        // Read a little more than the limit: own deletes may hide some.
        let want = limit.saturating_add(self.deletes_within(start, end));
        loop {
            let (from, to, dest) = order.page(&cursor, start, end);
            let mut at = (ShardId(0), RangeVer(0), (Vec::new(), Vec::new()));
            let span = proto::Span { start: from.clone(), end: to.clone(), range: true };
            let page_limit = (want.saturating_sub(found.len())).clamp(1, TXN_SCAN_PAGE as usize) as u32;
            let (reads, unanswered, mut sent_to) = (&self.reads, &mut self.unanswered, Vec::new());
            let no_wait = self.no_wait;
            let asked = Instant::now();
            let page = self
                .client
                .execute(dest, Op::LockingRead, |channel, target| {
                    at = (target.shard_id, target.range_ver, (target.shard_start.clone(), target.shard_end.clone()));
                    if unanswered.insert(target.shard_id) {
                        sent_to.push(target.shard_id);
                    }
                    let request = proto::TxnReadRequest {
                        txn: Some(meta.clone()),
                        shard_id: target.shard_id.0,
                        range_ver: target.range_ver.0,
                        span: Some(span.clone()),
                        limit: page_limit,
                        lease: reads.get(&target.shard_id).and_then(|r| r.lease),
                        for_update: false,
                        no_wait,
                        reverse: order == ScanOrder::Reverse,
                        narrow_lock: true,
                    };
                    channel.txn_read(request)
                })
                .await;
            self.answered(sent_to);
            let page = page?.into_inner();
            self.timings.note_read(asked, &page);
            let (shard, range_ver, (shard_start, shard_end)) = at;
            // A server from before `locked` locked the whole span, clipped
            // to the shard, and read it forwards whatever was asked.
            let locked = match page.locked.clone() {
                Some(span) => span,
                None if order == ScanOrder::Forward => {
                    let end = match (to.is_empty(), shard_end.is_empty()) {
                        (true, _) => shard_end.clone(),
                        (false, true) => to.clone(),
                        (false, false) => to.clone().min(shard_end.clone()),
                    };
                    proto::Span { start: from.clone(), end, range: true }
                }
                None => {
                    let span = proto::Span { start: from.max(shard_start.clone()), end: to, range: true };
                    self.note_locked(shard, range_ver, page.lease, span);
                    return Err(Error::Unavailable(format!("shard {shard}'s server cannot scan in reverse")));
                }
            };
            self.note_locked(shard, range_ver, page.lease, locked);
            for kv in page.pairs {
                found.insert(
                    kv.key.clone(),
                    KeyValue { key: kv.key, value: kv.value, version_ts: Timestamp::from_nanos(kv.version_ts) },
                );
            }
            if found.len() >= want {
                break;
            }
            match next_page(order, page.resume_key, (&shard_start, &shard_end), (start, end)) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(self.with_own_writes(found, range, limit))
    }

    /// How many keys of `[start, end)` this transaction deletes: as many
    /// pairs a scan there may read that it does not return.
    fn deletes_within(&self, start: &[u8], end: &[u8]) -> usize {
        let within = self.writes.range(start.to_vec()..).take_while(|(k, _)| end.is_empty() || k.as_slice() < end);
        within.filter(|(_, w)| w.is_none()).count()
    }

    /// What a scan of `[start, end)` in `order` that read `found` (at
    /// least `limit` pairs more than this transaction deletes there, or
    /// all there are) answers: this transaction's writes win over what it
    /// read. A write beyond the last pair read (when the reads stopped at
    /// `limit` pairs more than the deletes) is never among the first
    /// `limit` in order: at least `limit` pairs read survive the deletes.
    fn with_own_writes(
        &self,
        mut found: BTreeMap<Vec<u8>, KeyValue>,
        (start, end, order): (&[u8], &[u8], ScanOrder),
        limit: usize,
    ) -> Vec<KeyValue> {
        for (k, w) in self.writes.range(start.to_vec()..) {
            if !end.is_empty() && k.as_slice() >= end {
                break;
            }
            match w {
                Some(v) => {
                    found.insert(k.clone(), KeyValue { key: k.clone(), value: v.clone(), version_ts: Timestamp::ZERO });
                }
                None => {
                    found.remove(k);
                }
            }
        }
        match order {
            ScanOrder::Forward => found.into_values().take(limit).collect(),
            ScanOrder::Reverse => found.into_values().rev().take(limit).collect(),
        }
    }

    /// Like [`Txn::scan`], without locks: the latest committed pairs (a
    /// linearizable read at the leaders), merged with this transaction's
    /// own writes. Nothing stops another transaction from writing or
    /// inserting a key in the range before this one commits: SQL's `SKIP
    /// LOCKED` reads its candidates so, then locks each row it takes with
    /// [`Txn::set_no_wait`] and reads it again.
    pub async fn scan_unlocked(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        self.scan_unlocked_ordered((start, end, ScanOrder::Forward), limit).await
    }

    /// [`Txn::scan_unlocked`] in descending key order: the last `limit`
    /// pairs, last first.
    pub async fn scan_unlocked_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        self.scan_unlocked_ordered((start, end, ScanOrder::Reverse), limit).await
    }

    async fn scan_unlocked_ordered(&mut self, range: (&[u8], &[u8], ScanOrder), limit: usize) -> Result<Vec<KeyValue>> {
        let (start, end, _) = range;
        self.check_open()?;
        if !end.is_empty() && end <= start {
            return Err(Error::InvalidArgument("scan end must be after start".into()));
        }
        let want = limit.saturating_add(self.deletes_within(start, end));
        let replica = ReplicaPreference::Auto;
        let read = self.client.scan_pinned(range, want, (ReadMode::Latest, false), replica).await?;
        let found = read.pairs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        Ok(self.with_own_writes(found, range, limit))
    }

    /// Buffers a write of `key` (applied at commit).
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.keep_undo(key);
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
    }

    /// Buffers a write of `key` that applies only if `key` has no value
    /// when the transaction commits; otherwise the whole transaction
    /// applies nothing and commit fails with [`Error::ConditionNotMet`].
    /// Checked by the key's shard when it applies the commit (or, in a
    /// transaction across shards, the prepare), under the exclusive lock
    /// the write takes, so no read (and no round trip) is needed to insert
    /// a new key.
    pub fn put_absent(&mut self, key: &[u8], value: &[u8]) {
        self.put(key, value);
        self.absent.insert(key.to_vec());
    }

    /// Buffers a deletion of `key` (applied at commit).
    pub fn delete(&mut self, key: &[u8]) {
        self.keep_undo(key);
        self.writes.insert(key.to_vec(), None);
    }

    /// Marks the writes buffered so far: [`Txn::rollback_to`] goes back
    /// to them (SQL's SAVEPOINT). From the first mark on, each write also
    /// keeps what it replaced.
    pub fn savepoint(&mut self) -> Savepoint {
        Savepoint(self.undo.get_or_insert_with(Vec::new).len())
    }

    /// Undoes every write buffered since `savepoint` (later savepoints
    /// are gone with them; this one stays). Reads and the locks they
    /// took are kept until the transaction ends.
    pub fn rollback_to(&mut self, savepoint: Savepoint) {
        let Some(undo) = self.undo.as_mut() else { return };
        while undo.len() > savepoint.0 {
            let Undo { key, write, absent } = undo.pop().expect("longer than the mark");
            if absent {
                self.absent.insert(key.clone());
            } else {
                self.absent.remove(&key);
            }
            match write {
                Some(w) => self.writes.insert(key, w),
                None => self.writes.remove(&key),
            };
        }
    }

    /// Forgets every savepoint (all were released): writes stop keeping
    /// what they replace.
    pub fn forget_savepoints(&mut self) {
        self.undo = None;
    }

    /// Keeps what a write of `key` replaces, once a savepoint was taken.
    fn keep_undo(&mut self, key: &[u8]) {
        if let Some(undo) = self.undo.as_mut() {
            let write = self.writes.get(key).cloned();
            undo.push(Undo { key: key.to_vec(), write, absent: self.absent.contains(key) });
        }
    }

    /// Groups the transaction's reads and writes by shard.
    fn parts(&self) -> Result<BTreeMap<ShardId, ShardPart>> {
        let mut parts: BTreeMap<ShardId, ShardPart> = BTreeMap::new();
        for (shard, read) in &self.reads {
            let p = parts.entry(*shard).or_default();
            p.range_ver = read.range_ver;
            p.reads = read.spans.clone();
            p.lease = read.lease;
        }
        for (key, value) in &self.writes {
            let (shard, range_ver) = self
                .client
                .routes()
                .shard_of(key)
                .ok_or_else(|| Error::Unavailable("no shard for a written key".into()))?;
            let p = parts.entry(shard).or_default();
            if p.range_ver == RangeVer(0) {
                p.range_ver = range_ver;
            }
            p.writes.push(match value {
                Some(v) => proto::Mutation { key: key.clone(), value: v.clone(), delete: false },
                None => proto::Mutation { key: key.clone(), value: Vec::new(), delete: true },
            });
            if self.absent.contains(key) {
                p.conditions.push(proto::Condition { key: key.clone(), expected: Vec::new(), expect_absent: true });
            }
        }
        Ok(parts)
    }

    /// Groups again, by the routes as they are now, the writes of parts
    /// that only write and whose shard split before their prepare was
    /// sent. None may land on a shard in `sent` but `coordinator`, whose
    /// commit is not sent yet (a prepared shard takes one prepare): that
    /// is an abort, retryable.
    async fn regroup(
        &self,
        moved: Vec<ShardPart>,
        sent: &BTreeSet<ShardId>,
        coordinator: ShardId,
    ) -> Result<BTreeMap<ShardId, ShardPart>> {
        let writes: Vec<&proto::Mutation> = moved.iter().flat_map(|p| &p.writes).collect();
        if writes.iter().any(|w| self.client.routes().shard_of(&w.key).is_none()) {
            // The split taught this client one half only (see `commit`).
            let _ = self.client.refresh_routes_from(true).await;
        }
        let mut regrouped: BTreeMap<ShardId, ShardPart> = BTreeMap::new();
        for part in &moved {
            for write in &part.writes {
                let (shard, range_ver) = self
                    .client
                    .routes()
                    .shard_of(&write.key)
                    .ok_or_else(|| Error::Unavailable("no shard for a written key".into()))?;
                let p = regrouped.entry(shard).or_default();
                p.range_ver = range_ver;
                p.writes.push(write.clone());
                p.conditions.extend(part.conditions.iter().filter(|c| c.key == write.key).cloned());
            }
        }
        if let Some(shard) = regrouped.keys().find(|s| sent.contains(s) && **s != coordinator) {
            return Err(Error::Aborted(format!("{shard} split under the transaction's prepare")));
        }
        for part in regrouped.values_mut() {
            part.writes.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(regrouped)
    }

    /// Commits: atomically applies every write at one timestamp, which it
    /// returns. `Err(Aborted)`: nothing applied, run it again;
    /// `Err(Ambiguous)`: the outcome is unknown.
    pub async fn commit(self) -> Result<Timestamp> {
        Ok(self.commit_detailed().await?.commit_ts)
    }

    /// Like [`Txn::commit`], also saying how the commit went.
    pub async fn commit_detailed(mut self) -> Result<CommitInfo> {
        self.check_open()?;
        self.finished = true;
        // Heartbeats go on through the commit: a prepare may wait for
        // locks at one shard while another, where the transaction read (the
        // coordinator), hears nothing else from it.
        let outcome = self.commit_grouped().await;
        self.stop_heartbeat();
        outcome
    }

    /// [`Txn::commit_detailed`]'s work: the writes grouped by shard (again
    /// after a split) and committed.
    async fn commit_grouped(&mut self) -> Result<CommitInfo> {
        if !self.unanswered.is_empty() {
            self.abort_everywhere(self.maybe_locked()).await;
            return Err(Error::Aborted("a locking read was abandoned before its answer".into()));
        }
        let mut regroups = 0;
        loop {
            if self.writes.keys().any(|k| self.client.routes().shard_of(k).is_none()) {
                // A split taught this client one half and not yet the
                // other (the cache moves forward shard by shard): learn
                // the map again, from every server, before grouping the
                // writes.
                let _ = self.client.refresh_routes_from(true).await;
            }
            let parts = self.parts()?;
            if parts.is_empty() {
                return Ok(CommitInfo {
                    commit_ts: Timestamp::ZERO,
                    commit_wait: Duration::ZERO,
                    participants: 0,
                    timings: self.timings,
                });
            }
            if parts.len() > 1 && parts.values().all(|p| p.writes.is_empty() && p.conditions.is_empty()) {
                return self.commit_reads(parts).await;
            }
            match self.commit_parts(parts).await {
                Ok(outcome) => return outcome,
                // Nothing was sent: group the writes again.
                Err(Moved(_)) if regroups < COMMIT_REGROUPS_MAX => regroups += 1,
                Err(Moved(shard)) => {
                    return Err(Error::Aborted(format!("{shard} kept splitting under the transaction's commit")))
                }
            }
        }
    }

    /// Commits `parts` (at least one writes): in one phase at a single
    /// shard, else prepares every shard but the coordinator, then commits
    /// there. `Err(Moved)`: a single shard split after the writes were
    /// grouped and some are now another shard's; nothing was sent, and
    /// the caller groups them again. Over several shards, a part that
    /// only writes (the coordinator's too) is grouped again and its
    /// halves join the prepares; a part holding locks at a shard that
    /// split aborts the transaction (the others may be prepared), which
    /// running it again gets past.
    async fn commit_parts(&mut self, parts: BTreeMap<ShardId, ShardPart>) -> Result<Result<CommitInfo>, Moved> {
        // The coordinator: the first shard written, else the first read.
        let coordinator = parts
            .iter()
            .find(|(_, p)| !p.writes.is_empty())
            .map(|(s, _)| *s)
            .unwrap_or_else(|| *parts.keys().next().expect("not empty"));
        let meta = self.meta();
        let mut coordinator_part = parts[&coordinator].clone();
        // Every shard the transaction may hold anything at, for aborts.
        let mut involved: BTreeSet<ShardId> = parts.keys().copied().collect();
        // Shards a prepare went to, or will go to (the coordinator's
        // commit): a part regrouped after a split may not join them.
        let mut sent: BTreeSet<ShardId> = BTreeSet::from([coordinator]);
        let mut pending: Vec<(ShardId, ShardPart)> = parts.into_iter().filter(|(s, _)| *s != coordinator).collect();
        let (mut participants, mut failure, mut regroups) = (Vec::new(), None, 0);
        let mut coordinator_beats = None;
        loop {
            if !pending.is_empty() && coordinator_beats.is_none() && !self.reads.contains_key(&coordinator) {
                coordinator_beats = Some(CoordinatorBeats::start(&self.client, self.id, coordinator));
            }
            let asked = Instant::now();
            while !pending.is_empty() && failure.is_none() {
                let prepares = pending.iter().map(|(shard, part)| {
                    prepare_on(self.client.clone(), *shard, meta.clone(), part.clone(), coordinator)
                });
                let prepared = futures_join_all(prepares).await;
                let mut moved = Vec::new();
                for ((shard, part), result) in std::mem::take(&mut pending).into_iter().zip(prepared) {
                    if !matches!(result, Ok(Err(_))) {
                        sent.insert(shard);
                    }
                    match result {
                        Ok(Ok(p)) if p.conditions_failed => {
                            failure = Some(Error::ConditionNotMet(format!(
                                "a key {shard} writes with put_absent has a value"
                            )))
                        }
                        Ok(Ok(p)) => {
                            self.timings.prepare_server =
                                self.timings.prepare_server.max(Duration::from_nanos(p.server_ns));
                            participants.push(proto::Participant {
                                shard_id: shard.0,
                                prepare_ts: p.prepare_ts,
                                seal: p.seal,
                            })
                        }
                        // Nothing went to the shard: a part holding no
                        // locks there (it only writes) is grouped again.
                        Ok(Err(_)) if part.only_writes() && regroups < COMMIT_REGROUPS_MAX => moved.push(part),
                        Ok(Err(m)) => failure = Some(m.abort()),
                        Err(e) => failure = Some(e),
                    }
                }
                if failure.is_none() && !moved.is_empty() {
                    regroups += 1;
                    match self.regroup(moved, &sent, coordinator).await {
                        Ok(regrouped) => {
                            place_regrouped(regrouped, coordinator, &mut coordinator_part, &mut pending, &mut involved)
                        }
                        Err(e) => failure = Some(e),
                    }
                }
            }
            // The prepares' rounds (more than one after a split).
            self.timings.prepare += asked.elapsed();
            if let Some(e) = failure {
                drop(coordinator_beats.take());
                self.abort_everywhere(involved.iter().copied()).await;
                return Ok(Err(not_committed(e, "a participant did not prepare")));
            }
            let asked = Instant::now();
            let result = commit_on(&self.client, coordinator, &meta, &coordinator_part, participants.clone()).await;
            return Ok(match result {
                Ok(Ok(r)) => {
                    if r.conditions_failed {
                        return Ok(Err(Error::ConditionNotMet("a key written with put_absent has a value".into())));
                    }
                    let commit_wait = Duration::from_nanos(r.commit_wait_ns);
                    self.timings.commit = asked.elapsed();
                    self.timings.commit_server = Duration::from_nanos(r.server_ns);
                    self.timings.commit_wait = commit_wait;
                    Ok(CommitInfo {
                        commit_ts: Timestamp::from_nanos(r.commit_ts),
                        commit_wait,
                        participants: involved.len(),
                        timings: self.timings,
                    })
                }
                // Nothing prepared anywhere: the caller groups it all again.
                Ok(Err(moved)) if participants.is_empty() => return Err(moved),
                // The coordinator's shard split and nothing was sent to
                // it: its writes on the moved keys are prepared on their
                // new shard (naming the coordinator, which keeps its id),
                // and the commit goes to it with the rest.
                Ok(Err(_)) if coordinator_part.only_writes() && regroups < COMMIT_REGROUPS_MAX => {
                    regroups += 1;
                    let moved = vec![std::mem::take(&mut coordinator_part)];
                    match self.regroup(moved, &sent, coordinator).await {
                        Ok(regrouped) => {
                            place_regrouped(regrouped, coordinator, &mut coordinator_part, &mut pending, &mut involved)
                        }
                        Err(e) => failure = Some(e),
                    }
                    continue;
                }
                Ok(Err(moved)) => {
                    drop(coordinator_beats.take());
                    self.abort_everywhere(involved.iter().copied()).await;
                    Err(moved.abort())
                }
                Err(Error::Ambiguous(m)) => Err(Error::Ambiguous(m)),
                Err(e) => {
                    // Definitely not committed: release the prepared ones now
                    // rather than when they time out and ask.
                    drop(coordinator_beats.take());
                    self.abort_everywhere(involved.iter().copied()).await;
                    Err(not_committed(e, "the commit failed"))
                }
            });
        }
    }

    /// Commits a transaction that wrote nothing, at every shard it read at
    /// once, each in one phase, at the smallest of their timestamps
    /// (module docs, "A transaction that wrote nothing").
    async fn commit_reads(&mut self, parts: BTreeMap<ShardId, ShardPart>) -> Result<CommitInfo> {
        let meta = self.meta();
        let asked = Instant::now();
        let commits =
            parts.iter().map(|(shard, part)| {
                let (client, meta, part, shard) = (self.client.clone(), meta.clone(), part.clone(), *shard);
                async move {
                    commit_on(&client, shard, &meta, &part, Vec::new()).await.and_then(|r| r.map_err(Moved::abort))
                }
            });
        let (mut commit_ts, mut commit_wait, mut failure) = (Timestamp::MAX, Duration::ZERO, None);
        for result in futures_join_all(commits).await {
            match result {
                Ok(r) => {
                    commit_ts = commit_ts.min(Timestamp::from_nanos(r.commit_ts));
                    commit_wait = commit_wait.max(Duration::from_nanos(r.commit_wait_ns));
                    self.timings.commit_server = self.timings.commit_server.max(Duration::from_nanos(r.server_ns));
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            // Nothing was written anywhere: whatever the others answered,
            // the transaction did nothing, and may run again.
            self.abort_everywhere(parts.keys().copied()).await;
            return Err(not_committed(e, "a shard it read did not commit"));
        }
        self.timings.commit = asked.elapsed();
        self.timings.commit_wait = commit_wait;
        Ok(CommitInfo { commit_ts, commit_wait, participants: parts.len(), timings: self.timings })
    }

    /// Abandons the transaction, releasing its locks.
    pub async fn rollback(mut self) -> Result<()> {
        self.check_open()?;
        self.finished = true;
        self.stop_heartbeat();
        self.abort_everywhere(self.maybe_locked()).await;
        Ok(())
    }

    async fn abort_everywhere(&self, shards: impl IntoIterator<Item = ShardId>) {
        let aborts = shards.into_iter().map(|shard| abort_on(self.client.clone(), self.id, shard));
        futures_join_all(aborts).await;
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

/// What a client hears of a transaction that definitely did not commit
/// because of `e`: as it was if running it again cannot help (a bad
/// request, a failed condition) or if it was an abort; otherwise an abort
/// saying `what` failed.
fn not_committed(e: Error, what: &str) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(m),
        Error::Aborted(m) => Error::Aborted(m),
        Error::ConditionNotMet(m) => Error::ConditionNotMet(m),
        other => Error::Aborted(format!("{what}: {other}")),
    }
}

/// Where the parts grouped again after a split go: the coordinator's
/// shard's into its part (to go with its commit), the others' to be
/// prepared; all among the shards the transaction may hold anything at.
fn place_regrouped(
    regrouped: BTreeMap<ShardId, ShardPart>,
    coordinator: ShardId,
    coordinator_part: &mut ShardPart,
    pending: &mut Vec<(ShardId, ShardPart)>,
    involved: &mut BTreeSet<ShardId>,
) {
    for (shard, part) in regrouped {
        involved.insert(shard);
        if shard == coordinator {
            coordinator_part.absorb(part);
        } else {
            pending.push((shard, part));
        }
    }
}

/// Sends `shard` the prepare of `part`, naming `coordinator`.
async fn prepare_on(
    client: Client,
    shard: ShardId,
    meta: proto::TxnMeta,
    part: ShardPart,
    coordinator: ShardId,
) -> Result<Result<proto::TxnPrepareResponse, Moved>> {
    let result = client
        .execute(Dest::Shard(shard), Op::Write, |channel, target| {
            let inside = part.is_inside(&target);
            let request = proto::TxnPrepareRequest {
                txn: Some(meta.clone()),
                shard_id: shard.0,
                range_ver: part.range_ver.max(target.range_ver).0,
                coordinator_shard_id: coordinator.0,
                writes: part.writes.clone(),
                reads: part.reads.clone(),
                lease: part.lease,
                conditions: part.conditions.clone(),
            };
            send_inside(inside, shard, channel.txn_prepare(request))
        })
        .await;
    result.map(|r| r.map(|r| r.into_inner()))
}

/// Sends `shard` the commit of `part` (its only participant, or the
/// coordinator of `participants`).
async fn commit_on(
    client: &Client,
    shard: ShardId,
    meta: &proto::TxnMeta,
    part: &ShardPart,
    participants: Vec<proto::Participant>,
) -> Result<Result<proto::TxnCommitResponse, Moved>> {
    let result = client
        .execute(Dest::Shard(shard), Op::Write, |channel, target| {
            let inside = part.is_inside(&target);
            let request = proto::TxnCommitRequest {
                txn: Some(meta.clone()),
                shard_id: shard.0,
                range_ver: part.range_ver.max(target.range_ver).0,
                writes: part.writes.clone(),
                reads: part.reads.clone(),
                participants: participants.clone(),
                lease: part.lease,
                conditions: part.conditions.clone(),
            };
            send_inside(inside, shard, channel.txn_commit(request))
        })
        .await;
    result.map(|r| r.map(|r| r.into_inner()))
}

/// A shard split after a transaction grouped its writes by it: some of
/// the writes sent to it are now another shard's. Found before sending
/// (the route the request goes by no longer holds them), so the shard
/// never refuses a request that cannot succeed there, and the client
/// never retries one until its deadline.
#[derive(Debug, Clone, Copy)]
struct Moved(ShardId);

impl Moved {
    /// The abort a transaction over several shards ends in (retryable).
    fn abort(self) -> Error {
        Error::Aborted(format!("{} split after the transaction grouped its writes", self.0))
    }
}

/// Sends a part's request (`send`) if the route still holds its writes
/// (`inside`), else answers [`Moved`] without sending.
async fn send_inside<T>(
    inside: bool,
    shard: ShardId,
    send: impl Future<Output = std::result::Result<T, tonic::Status>>,
) -> std::result::Result<Result<T, Moved>, tonic::Status> {
    if !inside {
        return Ok(Err(Moved(shard)));
    }
    send.await.map(Ok)
}

async fn abort_on(client: Client, id: TxnId, shard: ShardId) {
    let request = proto::TxnAbortRequest { txn_id: id.0.to_be_bytes().to_vec(), shard_id: shard.0 };
    let _ = client
        .execute(Dest::Shard(shard), Op::LockingRead, |channel, _| {
            let request = request.clone();
            channel.txn_abort(request)
        })
        .await;
}

/// Heartbeats that tell a coordinator the transaction holds no locks at
/// that its commit is under way (module docs); they stop when this is
/// dropped.
struct CoordinatorBeats(tokio::task::JoinHandle<()>);

impl CoordinatorBeats {
    fn start(client: &Client, id: TxnId, coordinator: ShardId) -> CoordinatorBeats {
        let client = client.clone();
        CoordinatorBeats(tokio::spawn(async move {
            let first = tokio::time::Instant::now() + COORDINATOR_FIRST_BEAT;
            let mut every = tokio::time::interval_at(first, COORDINATOR_BEAT_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                client.committing_heartbeat(id, coordinator).await;
            }
        }))
    }
}

impl Drop for CoordinatorBeats {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        self.stop_heartbeat();
        let shards = if self.finished { Vec::new() } else { self.maybe_locked() };
        if !shards.is_empty() {
            // Dropped without commit or rollback: release its locks.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (client, id) = (self.client.clone(), self.id);
                runtime.spawn(async move {
                    futures_join_all(shards.into_iter().map(|s| abort_on(client.clone(), id, s))).await;
                });
            }
        }
    }
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("a transaction task panicked"));
    }
    out
}

/// A read-only transaction: lock-free reads at one timestamp. See the
/// module docs.
pub struct ReadOnlyTxn {
    client: Client,
    first: ReadMode,
    read_ts: Option<Timestamp>,
    replica: ReplicaPreference,
    /// A single-shard transaction's shard, once its first read fixed it.
    shard: Option<ShardId>,
}

impl ReadOnlyTxn {
    /// Sends every read of the transaction where `replica` prefers first
    /// (module docs).
    pub fn prefer(mut self, replica: ReplicaPreference) -> ReadOnlyTxn {
        self.replica = replica;
        self
    }

    /// The timestamp every read uses (known after the first read, or from
    /// the start for a snapshot).
    pub fn read_ts(&self) -> Option<Timestamp> {
        self.read_ts
    }

    fn mode(&self) -> ReadMode {
        match self.read_ts {
            Some(ts) => ReadMode::At(ts),
            None => self.first,
        }
    }

    /// Where the next read goes first. After a strong first read (`Now`,
    /// `Latest`) the transaction's timestamp is fresh: only a leader
    /// serves it at once (it closes a timestamp on demand); a follower
    /// waits for the leader's next closed timestamp, up to the closing
    /// interval (200 ms by default).
    fn preference(&self) -> ReplicaPreference {
        match (self.replica, self.first, self.read_ts) {
            (ReplicaPreference::Auto, ReadMode::Now | ReadMode::Latest, Some(_)) => ReplicaPreference::Leader,
            _ => self.replica,
        }
    }

    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let out = self.client.get_from(key, self.mode(), self.preference()).await?;
        self.served_by(&[out.shard])?;
        self.read_ts.get_or_insert(out.read_ts);
        Ok(out.value.map(|v| v.value))
    }

    /// Checks that a single-shard transaction (`read_only_single_shard`)
    /// reads one shard: its timestamp is that shard's latest state, which
    /// says nothing of what other shards committed before the transaction
    /// began, so a read another shard served (the caller's routes were
    /// stale, or the shard split) would not be externally consistent. It
    /// fails, retryably: run the reads again in a `read_only()`
    /// transaction.
    fn served_by(&mut self, shards: &[ShardId]) -> Result<()> {
        if self.first != ReadMode::Latest {
            return Ok(());
        }
        for &shard in shards {
            match self.shard {
                None => self.shard = Some(shard),
                Some(first) if first == shard => {}
                Some(first) => {
                    return Err(Error::Aborted(format!(
                        "a single-shard read-only transaction read shard {} and then shard {} \
                         (the shard split, or its route was stale); run it as a strong read-only transaction",
                        first.0, shard.0
                    )))
                }
            }
        }
        Ok(())
    }

    /// Pairs in `[start, end)`, at most `limit`, all at the transaction's
    /// timestamp.
    pub async fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        self.scan_ordered((start, end, ScanOrder::Forward), limit).await
    }

    /// Like [`ReadOnlyTxn::scan`], the last `limit` pairs, last first.
    pub async fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        self.scan_ordered((start, end, ScanOrder::Reverse), limit).await
    }

    async fn scan_ordered(&mut self, range: (&[u8], &[u8], ScanOrder), limit: usize) -> Result<Vec<KeyValue>> {
        // The first page fixes the timestamp when none is yet (a `Latest`
        // one too); every other page, here and later, is read at it.
        let mode = (self.mode(), true);
        let read = self.client.scan_pinned(range, limit, mode, self.preference()).await?;
        self.served_by(&read.shards)?;
        if let Some(ts) = read.read_ts {
            self.read_ts.get_or_insert(ts);
        }
        Ok(read.pairs)
    }
}

impl Client {
    /// Starts a read-write transaction.
    pub fn begin(&self) -> Txn {
        Txn::new(self.clone(), None)
    }

    /// Starts a read-write transaction with a given priority (a retry of an
    /// earlier attempt).
    pub fn begin_with_priority(&self, priority: Priority) -> Txn {
        Txn::new(self.clone(), Some(priority))
    }

    /// A read-only transaction at `TT.now().latest` of its first read's
    /// server: sees everything committed before it started.
    pub fn read_only(&self) -> ReadOnlyTxn {
        ReadOnlyTxn {
            client: self.clone(),
            first: ReadMode::Now,
            read_ts: None,
            replica: ReplicaPreference::Auto,
            shard: None,
        }
    }

    /// A read-only transaction for reads the caller knows lie in one
    /// shard: the first read is linearizable at the shard's leader (its
    /// latest applied state, no wait for a timestamp to close) and fixes
    /// the timestamp of the rest — Spanner's single-site read-only
    /// transaction. A read in another shard at that timestamp would not be
    /// externally consistent, so one another shard serves (the caller's
    /// routes were stale, or the shard split) fails, as
    /// [`Error::Aborted`]: run the reads again in a `read_only()` one.
    pub fn read_only_single_shard(&self) -> ReadOnlyTxn {
        ReadOnlyTxn {
            client: self.clone(),
            first: ReadMode::Latest,
            read_ts: None,
            replica: ReplicaPreference::Auto,
            shard: None,
        }
    }

    /// A read-only transaction at `ts`.
    pub fn snapshot(&self, ts: Timestamp) -> ReadOnlyTxn {
        ReadOnlyTxn {
            client: self.clone(),
            first: ReadMode::At(ts),
            read_ts: Some(ts),
            replica: ReplicaPreference::Auto,
            shard: None,
        }
    }

    /// A read-only transaction at the freshest timestamp the first read's
    /// replica can serve, at most `max_staleness` old.
    pub fn bounded_staleness(&self, max_staleness: Duration) -> ReadOnlyTxn {
        ReadOnlyTxn {
            client: self.clone(),
            first: ReadMode::MaxStaleness(max_staleness),
            read_ts: None,
            replica: ReplicaPreference::Auto,
            shard: None,
        }
    }

    /// Runs `f` in a transaction and commits it, running it again (with
    /// the first attempt's priority) while it is aborted. Returns `f`'s
    /// result and the commit timestamp. An ambiguous commit is returned as
    /// is, never retried.
    pub async fn run<T, F>(&self, mut f: F) -> Result<(T, Timestamp)>
    where
        F: for<'t> FnMut(&'t mut Txn) -> Pin<Box<dyn Future<Output = Result<T>> + Send + 't>>,
    {
        let mut priority = None;
        let mut backoff = self.config().backoff_min;
        let mut last = None;
        for _ in 0..RUN_ATTEMPTS_MAX {
            let mut txn = Txn::new(self.clone(), priority);
            priority = Some(txn.priority());
            let outcome = match f(&mut txn).await {
                Ok(value) => txn.commit().await.map(|ts| (value, ts)),
                Err(e) => {
                    let _ = txn.rollback().await;
                    Err(e)
                }
            };
            match outcome {
                Err(Error::Aborted(m)) => {
                    last = Some(m);
                    let jitter = rand::random_range(0.5..1.5);
                    tokio::time::sleep(backoff.mul_f64(jitter)).await;
                    backoff = (backoff * 2).min(self.config().backoff_max);
                }
                other => return other,
            }
        }
        Err(Error::Aborted(format!("gave up after {RUN_ATTEMPTS_MAX} attempts; last: {}", last.unwrap_or_default())))
    }

    /// Tells `coordinator` that transaction `id`'s commit is under way
    /// (best-effort), at every replica: the client has not talked to the
    /// coordinator since the commit began, so its idea of the leader may
    /// be stale (a follower drops the beat).
    async fn committing_heartbeat(&self, id: TxnId, coordinator: ShardId) {
        let addrs = self.routes().replica_addrs(coordinator);
        let beats = addrs.into_iter().map(|addr| {
            let client = self.clone();
            let request = proto::TxnHeartbeatRequest {
                txn_id: id.0.to_be_bytes().to_vec(),
                shard_ids: vec![coordinator.0],
                committing: true,
            };
            async move {
                let beat = async {
                    if let Ok(channel) = client.channel(&addr).await {
                        let _ = channel.txn_heartbeat(request).await;
                    }
                };
                let _ = tokio::time::timeout(COORDINATOR_BEAT_INTERVAL, beat).await;
            }
        });
        futures_join_all(beats).await;
    }

    /// Keeps a transaction's locks alive on `shards` (best-effort), all at
    /// once: a shard slow to answer (electing a leader) must not keep the
    /// others from hearing (a coordinator answers a participant's patient
    /// question by whether it heard from the client lately).
    async fn heartbeat(&self, id: TxnId, shards: &[ShardId]) {
        let beats = shards.iter().map(|&shard| {
            let client = self.clone();
            async move {
                let shard_ids = vec![shard.0];
                let txn_id = id.0.to_be_bytes().to_vec();
                let request = proto::TxnHeartbeatRequest { txn_id, shard_ids, committing: false };
                let Some(target) = client.routes().target_shard(shard, true) else { return };
                let beat = async {
                    if let Ok(channel) = client.channel(&target.addr).await {
                        let _ = channel.txn_heartbeat(request).await;
                    }
                };
                let _ = tokio::time::timeout(HEARTBEAT_INTERVAL, beat).await;
            }
        });
        futures_join_all(beats).await;
    }
}
