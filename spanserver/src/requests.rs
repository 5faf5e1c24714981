//! Serving data requests: validation, routing checks, waiting, reading.
//!
//! Three kinds of request, three ways to wait:
//!
//! - **Linearizable read** (`read_ts = 0`, leader only): ask the loop for a
//!   ReadIndex round (or its lease, `shard/lease.rs`); once it answers, every write acknowledged before the
//!   read began is applied here. Read at the replica's safe time, which the
//!   loop publishes before it answers (so the read sees at least that
//!   state) and which is exactly the state read (so `read_ts` is honest).
//! - **Snapshot read** at `t` (any replica): wait until safe time `>= t`
//!   (asking a leader to close a timestamp at once), take a RocksDB
//!   snapshot, then check `t` against the GC watermark (mvcc.rs explains
//!   the order), and read at `t`.
//! - **Write** (leader only): the loop proposes it at a fresh timestamp `s`
//!   and answers once it is applied; then commit-wait until `TT.after(s)`
//!   before telling the client (`commit_wait.rs`). After that, any snapshot read at a
//!   timestamp taken from `TT.now().latest` anywhere is above `s`.
//!
//! # No read sees a commit before its commit-wait ends
//!
//! Applying a commit makes its versions readable (and releases its locks)
//! at once; only the writer's answer waits for `TT.after(s)`. So every
//! answer that reveals a version waits too: a get, scan or transactional
//! read replies only once `TT.after(newest_ts)`, where `newest_ts` is the
//! newest commit timestamp it returns *or* of a tombstone that hid a key
//! (an absence is news of a delete); a participant's question about an
//! outcome (`Resolve`) is answered `Committed(s)` only after `TT.after(s)`.
//!
//! Why it is needed: with clocks skewed within epsilon (a leader `+0.8ε`,
//! a follower `-0.8ε`), a linearizable read at the leader could return a
//! commit at `s` right after it was applied, before its writer was
//! answered; a read-only transaction started later at the follower, at
//! `TT.now().latest < s` there, would then return the older value: time
//! going backwards between two readers. Once the first reply waits for
//! `TT.after(s)` on its server's clock, the true time is past `s` when it
//! arrives, so any later reader's `TT.now().latest` (on any clock within
//! epsilon) is above `s` and it sees the commit (Spanner §4.1.2: no
//! client sees a commit at `s` before `TT.after(s)`). Fresh data costs a
//! read at most the `2ε` the writer pays; older data costs nothing.
//!
//! # A read and the replica changing under it
//!
//! A read checks its route, waits (for safe time, for a ReadIndex round)
//! and only then reads RocksDB; the replica may change meanwhile. Three
//! changes would make the read wrong without any error, so each is
//! published before it takes effect and checked after the read
//! (`ReplicaShared::read_consistent`):
//!
//! ```text
//!   change while the read waits       what the read would see     refusal
//!   snapshot install                  the range empty, half-made  Unavailable (retry here)
//!   split moving the read's keys      the child's replica here,   WrongShard + new descriptor
//!                                     which may lag its leader
//!   the replica leaves the server     the range deleted           WrongShard
//! ```
//!
//! The split case is the subtle one: the parent's safe time keeps rising
//! after the split, but writes to the moved keys now go through the
//! child, whose replica on this server may not have applied a write its
//! leader already acknowledged below the read's timestamp (test
//! `split::a_follower_read_across_a_split_never_misses_a_write_the_child_acknowledged`).
//!
//! One change is not a race but a lasting state: a replica that has not
//! applied a split yet (it was cut off) shares the moved keys' data with
//! the child's replica here when that one arrived first, by a snapshot.
//! That data is the child's: writes the stale replica has not applied,
//! history the child's GC took (GC is local to each server, by its clock,
//! so the snapshot's watermark can be above the stale replica's), and,
//! while the snapshot goes in, nothing at all. So a read is refused
//! `WrongShard`, with the child's descriptor, if a replica here with a
//! higher range version holds a key it read (`Registry::newer_holder`,
//! checked after the read: the child's descriptor is published before
//! its install deletes anything; test
//! `split::a_replica_behind_a_split_never_reads_history_its_child_collected`).
//!
//! Bad input is refused here, before it reaches the loop, with
//! `InvalidArgument` naming the limit (see `limits.rs`). Timestamps that
//! come from outside are checked against this server's clock; prepare
//! timestamps a client relays must carry their participant's seal
//! (`auth.rs`).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use meta::{LockLease, Priority, RequestId, ShardId, Term, TxnId};
use tokio::sync::oneshot;
use truetime::{Timestamp, TrueTime};
use txn::{Answer, Input, LockMode, LockTarget, Outcome, TxnError};

use crate::auth::PeerSecret;
use crate::clock::ClockGuard;
use crate::commit_wait::CommitWaiter;
use crate::config::{TimeConfig, UnsafeTestingConfig};
use crate::error::{Error, Result};
use crate::inbox::{LoopHandle, LoopMsg};
use crate::limits;
use crate::registry::{Access, Registry, ReplicaShared, Role, TimeView};
use crate::shard::command;
use crate::shard::membership::MembershipChange;
use crate::storage::mvcc::{KeyVersions, Reader, ScanPage};
use crate::storage::Engine;
use meta::ServerId;

/// The handlers of the data requests (`Kv` and `Txn`), and everything
/// they need.
pub struct DataRequests {
    pub server_id: ServerId,
    pub registry: Arc<Registry>,
    pub event_loop: LoopHandle,
    /// Taken away at shutdown, so the database closes even while
    /// connections linger (see `Server::stop`).
    engine: RwLock<Option<Engine>>,
    pub tt: TrueTime,
    pub time: TimeConfig,
    commit_waiter: CommitWaiter,
    secret: PeerSecret,
    /// Whether this server's clock may be used (`clock.rs`).
    clock: Arc<ClockGuard>,
    unsafe_testing: UnsafeTestingConfig,
}

/// The data of a successful get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    pub value: Option<(Timestamp, Vec<u8>)>,
    pub read_ts: Timestamp,
}

impl DataRequests {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        server_id: ServerId,
        registry: Arc<Registry>,
        event_loop: LoopHandle,
        engine: Engine,
        tt: TrueTime,
        time: TimeConfig,
        commit_waiter: CommitWaiter,
        secret: PeerSecret,
        clock: Arc<ClockGuard>,
        unsafe_testing: UnsafeTestingConfig,
    ) -> DataRequests {
        DataRequests {
            server_id,
            registry,
            event_loop,
            engine: RwLock::new(Some(engine)),
            tt,
            time,
            commit_waiter,
            secret,
            clock,
            unsafe_testing,
        }
    }

    /// Whether this server trusts its clock now.
    pub fn clock_trusted(&self) -> bool {
        self.clock.is_healthy()
    }

    pub(crate) fn engine(&self) -> Result<Engine> {
        self.engine
            .read()
            .expect("engine lock")
            .clone()
            .ok_or_else(|| Error::Unavailable("server is shutting down".into()))
    }

    /// Stops serving reads from storage; returns the engine so the caller
    /// can close it.
    pub fn take_engine(&self) -> Option<Engine> {
        self.engine.write().expect("engine lock").take()
    }

    fn replica(&self, shard_id: u64) -> Result<Arc<ReplicaShared>> {
        self.registry.get(ShardId(shard_id)).ok_or_else(|| Error::WrongShard {
            shard_id: ShardId(shard_id),
            descriptors: Vec::new(),
            reason: "no replica of this shard on this server".into(),
        })
    }

    /// Refuses a request routed by another range than the shard's (a
    /// `range_ver` other than its own; 0: not checked), or naming a key
    /// outside it. Only the range counts: a request routed before a
    /// replica moved is still good. The refusal carries this server's
    /// descriptors of the shard and of the shard holding the stray key.
    /// Checks that the replica holds `keys` (at `range_ver`, unless 0);
    /// returns the range version it checked, for a read to confirm after
    /// it read (`ReplicaShared::read_consistent`).
    fn check_route(
        &self,
        r: &ReplicaShared,
        range_ver: u64,
        access: Access,
        keys: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<u64> {
        enum Refused {
            Stale,
            Outside(Vec<u8>),
        }
        let mut first_key = None;
        let checked = r.with_descriptor(|d| {
            if range_ver != 0 && range_ver != d.epoch.range_ver.0 {
                return Err(Refused::Stale);
            }
            for key in keys {
                first_key.get_or_insert(key);
                if !d.contains(key) {
                    return Err(Refused::Outside(key.to_vec()));
                }
            }
            Ok(d.epoch.range_ver.0)
        });
        if let Some(key) = first_key {
            r.record_load(key, access);
        }
        let refused = match checked {
            Ok(range_ver) => return Ok(range_ver),
            Err(refused) => refused,
        };
        let d = r.descriptor();
        Err(match refused {
            Refused::Stale => Error::WrongShard {
                shard_id: r.shard_id,
                reason: format!("range_ver {range_ver} is stale, the shard is at {}", d.epoch.range_ver),
                descriptors: vec![d],
            },
            Refused::Outside(key) => {
                let holder = self.registry.all().into_iter().map(|o| o.descriptor()).find(|o| o.contains(&key));
                Error::WrongShard {
                    shard_id: r.shard_id,
                    reason: "key outside the shard's range".into(),
                    descriptors: std::iter::once(d).chain(holder).collect(),
                }
            }
        })
    }

    fn not_leader(&self, r: &ReplicaShared) -> Error {
        let leader = r
            .progress()
            .leader_server
            .filter(|s| *s != self.server_id)
            .and_then(|s| self.registry.server_addr(s).map(|a| (s, a)));
        Error::NotLeader { shard_id: r.shard_id, leader }
    }

    /// Resolves the timestamp a read of `span` runs at, waiting as needed
    /// (module docs).
    async fn read_ts(&self, r: &ReplicaShared, at: ReadAt, span: &Span) -> Result<Timestamp> {
        let ts = match at {
            ReadAt::Latest => {
                self.read_index(r).await?;
                // Everything acknowledged is applied. Read at the largest
                // applied timestamp, once no prepared transaction that
                // writes the span is still below it.
                let ts = self
                    .wait_time(r, |view| {
                        view.readable(view.max_applied, &span.0, &span.1, span.2).then_some(view.max_applied)
                    })
                    .await?;
                // A deliberately broken server (tests only): read the past.
                let stale = Duration::from_millis(self.unsafe_testing.stale_reads_ms);
                return Ok(ts.saturating_sub(stale));
            }
            ReadAt::At(ts) => ts,
            ReadAt::Now => self.tt.now().latest,
            ReadAt::Bounded(staleness) => return self.bounded_read_ts(r, staleness, span).await,
        };
        let now = self.tt.now();
        if ts > now.latest.saturating_add(limits::SNAPSHOT_READ_FUTURE_MAX) {
            return Err(Error::InvalidArgument(format!(
                "read timestamp {ts} is more than {:?} in the future (now is at most {})",
                limits::SNAPSHOT_READ_FUTURE_MAX,
                now.latest
            )));
        }
        if !r.with_time_view(|view| view.readable(ts, &span.0, &span.1, span.2)) && r.progress().role == Role::Leader {
            let _ = self.event_loop.send(LoopMsg::CloseTimestampNow { shard: r.shard_id });
        }
        self.wait_time(r, |view| view.readable(ts, &span.0, &span.1, span.2).then_some(ts)).await
    }

    /// The freshest timestamp this replica can serve `span` at, if it is
    /// within `staleness` of now (a leader first closes a timestamp).
    async fn bounded_read_ts(&self, r: &ReplicaShared, staleness: Duration, span: &Span) -> Result<Timestamp> {
        let oldest = self.tt.now().latest.saturating_sub(staleness);
        let freshest = |view: &TimeView| {
            let held_back = view
                .prepared
                .iter()
                .filter(|(_, keys)| {
                    keys.iter().any(|k| {
                        if span.2 {
                            k.as_slice() >= span.0.as_slice() && (span.1.is_empty() || k.as_slice() < span.1.as_slice())
                        } else {
                            *k == span.0
                        }
                    })
                })
                .map(|(p, _)| p.prev())
                .min()
                .unwrap_or(Timestamp::MAX);
            view.max_applied.min(held_back)
        };
        let now_fresh = freshest(&r.time_view());
        if now_fresh >= oldest {
            return Ok(now_fresh);
        }
        if r.progress().role != Role::Leader {
            return Err(Error::Unavailable(format!(
                "replica of {} is more than {staleness:?} behind; try the leader",
                r.shard_id
            )));
        }
        let _ = self.event_loop.send(LoopMsg::CloseTimestampNow { shard: r.shard_id });
        self.wait_time(r, |view| {
            let t = freshest(view);
            (t >= oldest).then_some(t)
        })
        .await
    }

    /// Waits (up to the read timeout) until `ready` returns a timestamp for
    /// the replica's published time.
    async fn wait_time(
        &self,
        r: &ReplicaShared,
        mut ready: impl FnMut(&TimeView) -> Option<Timestamp>,
    ) -> Result<Timestamp> {
        if let Some(ts) = r.with_time_view(&mut ready) {
            return Ok(ts);
        }
        let mut time = r.watch_time();
        let waited = tokio::time::timeout(self.time.read_timeout(), async {
            loop {
                if let Some(ts) = ready(&time.borrow_and_update()) {
                    return Ok(ts);
                }
                if time.changed().await.is_err() {
                    return Err(Error::Unavailable("server is shutting down".into()));
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            let view = r.time_view();
            Err(Error::Unavailable(format!(
                "replica of {} cannot serve the read yet (applied up to {}, {} prepared transactions); try the leader",
                r.shard_id,
                view.max_applied,
                view.prepared.len()
            )))
        })
    }

    /// Returns once this replica has confirmed it leads and has applied
    /// every write acknowledged before the call: at once while its lease
    /// covers now ([`crate::registry::ReplicaProgress::lease_covers`]), else by a round
    /// through the event loop (`shard/reads.rs`).
    async fn read_index(&self, r: &ReplicaShared) -> Result<()> {
        if r.lease_covers(Instant::now()) {
            return Ok(());
        }
        if r.progress().role != Role::Leader {
            return Err(self.not_leader(r));
        }
        let (tx, rx) = oneshot::channel();
        self.event_loop.send(LoopMsg::ReadIndex { shard: r.shard_id, reply: tx })?;
        match tokio::time::timeout(self.time.read_timeout(), rx).await {
            Ok(Ok(result)) => result.map(|_| ()),
            Ok(Err(_)) => Err(Error::Unavailable("server is shutting down".into())),
            Err(_) => Err(Error::Unavailable(format!(
                "{}: leadership not confirmed within {:?}",
                r.shard_id,
                self.time.read_timeout()
            ))),
        }
    }

    /// Refuses a read at `read_ts` below the replica's GC watermark:
    /// versions it needs may be gone.
    fn check_watermark(r: &ReplicaShared, read_ts: Timestamp) -> Result<()> {
        let watermark = r.gc_watermark();
        if read_ts < watermark {
            return Err(Error::SnapshotTooOld { read_ts, watermark });
        }
        Ok(())
    }

    pub async fn get(&self, req: proto::GetRequest) -> Result<GetResult> {
        check_key(&req.key)?;
        self.clock.check()?;
        let r = self.replica(req.shard_id)?;
        let checked = self.check_route(&r, req.range_ver, Access::Read, &mut std::iter::once(req.key.as_slice()))?;
        let at = read_at(req.read_ts, req.options.as_ref())?;
        let span = (req.key.clone(), Vec::new(), false);
        let read_ts = self.read_ts(&r, at, &span).await?;
        let version = self.read_data(&r, checked, (&req.key, &[], false), |engine| {
            let versions = KeyVersions::new(engine, &req.key);
            Self::check_watermark(&r, read_ts)?;
            versions.newest_at(read_ts)
        })?;
        self.wait_visible(version.as_ref().map_or(Timestamp::ZERO, |(ts, _)| *ts)).await?;
        let value = version.and_then(|(ts, value)| value.map(|v| (ts, v)));
        Ok(GetResult { value, read_ts })
    }

    /// Reads `span` of the replica's data (`(start, end, is_range)`, as
    /// [`Span`]) through one RocksDB snapshot ([`Reader`], or for one key
    /// [`KeyVersions`], which `read` makes of the engine), refusing if a snapshot
    /// install, a split that moved part of the span (the replica was at
    /// `range_ver` when the route was checked) or the replica's removal
    /// overlaps the read ([`ReplicaShared::read_consistent`]), or if the
    /// replica is behind a split whose child's replica here holds part of
    /// the span (module docs).
    fn read_data<T>(
        &self,
        r: &ReplicaShared,
        range_ver: u64,
        span: (&[u8], &[u8], bool),
        read: impl FnOnce(&Engine) -> Result<T>,
    ) -> Result<T> {
        let engine = self.engine()?;
        let (start, end, range) = span;
        let still_held = |d: &meta::ShardDescriptor| {
            d.contains(start) && (!range || d.end_key.is_empty() || (!end.is_empty() && end <= d.end_key.as_slice()))
        };
        let out = r.read_consistent(range_ver, still_held, || read(&engine))?;
        if let Some(newer) = self.registry.newer_holder(r.shard_id, range_ver, span) {
            return Err(Error::WrongShard {
                shard_id: r.shard_id,
                reason: format!("this replica is behind a split: {} holds these keys here", newer.shard_id),
                descriptors: vec![newer],
            });
        }
        Ok(out)
    }

    /// Holds a reply revealing a version at `ts` until `TT.after(ts)`
    /// (module docs); refuses it if the clock that decided when was not
    /// trusted at the end.
    async fn wait_visible(&self, ts: Timestamp) -> Result<()> {
        if ts > Timestamp::ZERO && !self.unsafe_testing.skip_visibility_wait {
            self.commit_waiter.wait(ts).await;
            self.clock.check()?;
        }
        Ok(())
    }

    /// Checks a scan's bounds and clips them to the shard: a forward scan
    /// starts in the shard and its end is clipped (the client continues
    /// from the shard's end); a reverse one ends in the shard (the keys
    /// just below its end are the shard's) and its start is clipped.
    fn scan_bounds(&self, r: &ReplicaShared, range_ver: u64, span: ScanSpan<'_>, limit: u32) -> Result<ScanBounds> {
        let ScanSpan { start, end, reverse } = span;
        if start.len() > limits::SCAN_BOUND_BYTES_MAX || end.len() > limits::SCAN_BOUND_BYTES_MAX {
            let max = limits::SCAN_BOUND_BYTES_MAX;
            return Err(Error::InvalidArgument(format!("scan bound longer than {max} bytes")));
        }
        if !end.is_empty() && end <= start {
            return Err(Error::InvalidArgument("scan end key must be after the start key".into()));
        }
        let limit = match limit {
            0 => limits::SCAN_LIMIT_DEFAULT,
            n if n > limits::SCAN_LIMIT_MAX => {
                return Err(Error::InvalidArgument(format!("scan limit {n} exceeds {}", limits::SCAN_LIMIT_MAX)))
            }
            n => n,
        };
        // A reverse scan starts where the shard does, if the range starts
        // below it (checked again below, against the range it is checked at).
        let first = match reverse {
            true => start.max(r.descriptor().start_key.as_slice()).to_vec(),
            false => start.to_vec(),
        };
        // A reverse scan's load is recorded where it reads (its first pair,
        // the highest: `record_reverse_load`), not at its start. Its start
        // lies in the shard when its end does (checked below).
        let checked = match reverse {
            true => self.check_route(r, range_ver, Access::Read, &mut std::iter::empty())?,
            false => self.check_route(r, range_ver, Access::Read, &mut std::iter::once(first.as_slice()))?,
        };
        // Clip the range to the shard (as of the check); the client pages
        // across shards.
        let d = r.descriptor();
        if d.epoch.range_ver.0 != checked {
            return Err(Error::WrongShard {
                shard_id: r.shard_id,
                reason: "the shard split as the scan began".into(),
                descriptors: vec![d],
            });
        }
        // A reverse scan's shard must hold the keys just below `end`.
        if reverse && !d.holds_below(end) {
            let holder = self.registry.all().into_iter().map(|o| o.descriptor()).find(|o| o.holds_below(end));
            return Err(Error::WrongShard {
                shard_id: r.shard_id,
                reason: "the keys below the reverse scan's end are outside the shard's range".into(),
                descriptors: std::iter::once(d).chain(holder).collect(),
            });
        }
        let end = match (end.is_empty(), d.end_key.is_empty()) {
            (true, _) => d.end_key.clone(),
            (false, true) => end.to_vec(),
            (false, false) => end.to_vec().min(d.end_key.clone()),
        };
        Ok(ScanBounds { start: first, end, limit, range_ver: checked })
    }

    pub async fn scan(&self, req: proto::ScanRequest) -> Result<proto::ScanResponse> {
        self.clock.check()?;
        let r = self.replica(req.shard_id)?;
        let asked = ScanSpan { start: &req.start_key, end: &req.end_key, reverse: req.reverse };
        let ScanBounds { start, end, limit, range_ver } = self.scan_bounds(&r, req.range_ver, asked, req.limit)?;
        let at = read_at(req.read_ts, req.options.as_ref())?;
        let span = (start.clone(), end.clone(), true);
        let read_ts = self.read_ts(&r, at, &span).await?;
        let page = self.read_data(&r, range_ver, (&start, &end, true), |engine| {
            Self::check_watermark(&r, read_ts)?;
            scan_page(engine, ScanSpan { start: &start, end: &end, reverse: req.reverse }, read_ts, limit)
        })?;
        if req.reverse {
            record_reverse_load(&r, &page, &start);
        }
        self.wait_visible(page.newest_ts).await?;
        let (pairs, resume_key) = page_to_proto(page);
        Ok(proto::ScanResponse { pairs, resume_key, read_ts: read_ts.as_nanos() })
    }

    fn txn_error(&self, r: &ReplicaShared, e: TxnError) -> Error {
        match e {
            TxnError::Aborted(reason) => Error::Aborted(reason.to_string()),
            TxnError::NotLeader => self.not_leader(r),
            TxnError::Unavailable(m) => Error::Unavailable(m),
            TxnError::InvalidArgument(m) => Error::InvalidArgument(m),
            TxnError::Ambiguous(m) => Error::Ambiguous(m),
            TxnError::LockNotAvailable(m) => Error::LockNotAvailable(m),
        }
    }

    /// Hands `input` to the shard's transaction state machine and waits for
    /// its answer. `Ok(None)`: no answer in time (or the server stopped).
    async fn txn_call(&self, r: &ReplicaShared, input: Input, timeout: Duration) -> Result<Option<Answer>> {
        let (tx, rx) = oneshot::channel();
        self.event_loop.send(LoopMsg::Txn { shard: r.shard_id, input, reply: Some(tx) })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(answer))) => Ok(Some(answer)),
            Ok(Ok(Err(e))) => Err(self.txn_error(r, e)),
            Ok(Err(_)) | Err(_) => Ok(None),
        }
    }

    /// A plain write: a one-shard transaction of its own (it takes
    /// exclusive locks, so it never slips between a transaction's read and
    /// its commit), answered after commit-wait.
    pub async fn write(&self, req: proto::WriteRequest) -> Result<WriteOutcome> {
        check_mutations(&req.mutations)?;
        check_conditions(&req.conditions)?;
        self.clock.check()?;
        let r = self.replica(req.shard_id)?;
        let keys =
            req.mutations.iter().map(|m| m.key.as_slice()).chain(req.conditions.iter().map(|c| c.key.as_slice()));
        self.check_route(&r, req.range_ver, Access::Write, &mut keys.into_iter())?;
        if r.progress().role != Role::Leader {
            return Err(self.not_leader(&r));
        }
        let input = Input::Write {
            req: RequestId(0),
            writes: req.mutations.into_iter().map(command::write_from_proto).collect(),
            conditions: req.conditions.into_iter().map(command::condition_from_proto).collect(),
        };
        let answer = match self.txn_call(&r, input, self.time.write_timeout()).await {
            // A plain write that aborted (wounded while it waited for a
            // lock, its proposal dropped) was never applied.
            Err(Error::Aborted(reason)) => return Err(Error::Unavailable(format!("write not applied: {reason}"))),
            Err(e) => return Err(e),
            Ok(None) => {
                return Err(Error::Ambiguous(format!(
                    "the write was not answered within {:?}; it may still be applied",
                    self.time.write_timeout()
                )))
            }
            Ok(Some(answer)) => answer,
        };
        let Answer::Committed { commit_ts, applied } = answer else {
            return Err(Error::Storage(format!("unexpected answer to a write: {answer:?}")));
        };
        let commit_wait = self.commit_wait(commit_ts).await?;
        Ok(WriteOutcome { commit_ts, applied, commit_wait })
    }

    // --- The id allocator --------------------------------------------------

    /// Hands out `count` consecutive ids never handed out before (for
    /// shards and replicas): raises the high-water mark
    /// (`meta::keys::ID_HIGH_WATER`, starting above the static layout's
    /// ids) by a conditional plain write through this shard's log, and
    /// answers only once it is applied, so a new leader, or the cluster
    /// after a restart, starts above every id ever answered. A write that
    /// finds the mark moved (another allocation first, or this leader not
    /// yet applied as far as its log) is tried again.
    pub async fn allocate_ids(&self, req: proto::AllocateIdsRequest) -> Result<proto::AllocateIdsResponse> {
        let count = req.count;
        if count == 0 || count > meta::limits::IDS_PER_ALLOCATION_MAX {
            return Err(Error::InvalidArgument(format!(
                "allocate 1 to {} ids at a time, not {count}",
                meta::limits::IDS_PER_ALLOCATION_MAX
            )));
        }
        let static_max = self.registry.cluster.static_ids_max();
        let (current, _) = self
            .update_system_value(req.shard_id, req.range_ver, meta::keys::ID_HIGH_WATER, |current| {
                let high = high_water(current, static_max)?;
                let next =
                    high.checked_add(count).ok_or_else(|| Error::InvalidArgument("the id space is used up".into()))?;
                Ok(next.to_be_bytes().to_vec())
            })
            .await?;
        Ok(proto::AllocateIdsResponse { first: high_water(current.as_deref(), static_max)? + 1, count })
    }

    /// Marks a server as draining or active (`Admin.SetServerDraining`);
    /// the draining servers after the change.
    pub async fn set_server_draining(
        &self,
        req: proto::SetServerDrainingRequest,
        answering: impl Fn(ServerId) -> bool,
    ) -> Result<proto::DrainingServersResponse> {
        let (cluster, directory) = (&self.registry.cluster, &self.registry.directory);
        let server = ServerId(req.server_id);
        if !directory.contains(server) {
            return Err(Error::InvalidArgument(format!("the cluster has no server {server}")));
        }
        let (_, next) = self
            .update_system_value(req.shard_id, req.range_ver, meta::keys::DRAINING_SERVERS, |current| {
                let mut draining = draining_servers(current)?;
                if !req.draining {
                    draining.remove(&server.0);
                    return Ok(meta::keys::encode_servers(&draining));
                }
                draining.insert(server.0);
                let left = directory
                    .servers()
                    .into_iter()
                    .filter(|(id, _)| !draining.contains(&id.0) && answering(*id))
                    .count();
                if left < cluster.replication {
                    return Err(Error::InvalidArgument(format!(
                        "decommissioning server {server} would leave {left} servers that answer and are not \
                         draining, for shards of {} replicas",
                        cluster.replication
                    )));
                }
                Ok(meta::keys::encode_servers(&draining))
            })
            .await?;
        Ok(proto::DrainingServersResponse { server_ids: draining_servers(Some(&next))?.into_iter().collect() })
    }

    /// Records a joined server at this leader of the shard holding
    /// `meta::keys::JOINED_SERVERS` (`Peer.RecordJoined`): `server_id` at
    /// `addr`. Recording the same pair again changes nothing (a retry of
    /// one whose answer was lost). Answers with every server.
    pub async fn record_joined(&self, req: proto::RecordJoinedRequest) -> Result<proto::JoinResponse> {
        let directory = &self.registry.directory;
        let server = ServerId(req.server_id);
        if server.0 == 0 || directory.servers().iter().any(|(id, a)| *id == server && *a != req.addr) {
            return Err(Error::InvalidArgument(format!("server id {server} is taken")));
        }
        let (_, next) = self
            .update_system_value(req.shard_id, 0, meta::keys::JOINED_SERVERS, |current| {
                let mut joined = joined_servers(current)?;
                match joined.get(&server.0) {
                    Some(addr) if *addr == req.addr => return Ok(meta::keys::encode_server_addrs(&joined)),
                    Some(_) => return Err(Error::InvalidArgument(format!("server id {server} is taken"))),
                    None => {}
                }
                if joined.len() >= limits::JOINED_SERVERS_MAX {
                    return Err(Error::InvalidArgument(format!(
                        "{} servers have joined already (limits::JOINED_SERVERS_MAX)",
                        limits::JOINED_SERVERS_MAX
                    )));
                }
                joined.insert(server.0, req.addr.clone());
                Ok(meta::keys::encode_server_addrs(&joined))
            })
            .await?;
        let joined = joined_servers(Some(&next))?;
        directory.learn(&joined);
        let servers =
            directory.servers().into_iter().map(|(id, addr)| proto::ServerInfo { server_id: id.0, addr }).collect();
        Ok(proto::JoinResponse { server_id: server.0, servers })
    }

    /// The joined servers (`Peer.JoinedServers`), as this leader of the
    /// shard holding them has applied.
    pub async fn joined_servers(&self, req: proto::JoinedServersRequest) -> Result<proto::JoinedServersResponse> {
        let current = self.read_system_value(req.shard_id, 0, meta::keys::JOINED_SERVERS)?;
        let servers = joined_servers(current.as_deref())?
            .into_iter()
            .map(|(server_id, addr)| proto::ServerInfo { server_id, addr })
            .collect();
        Ok(proto::JoinedServersResponse { servers })
    }

    /// The system value at `key`, as this leader of `shard` has applied.
    fn read_system_value(&self, shard: u64, range_ver: u64, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let r = self.replica(shard)?;
        let checked = self.check_route(&r, range_ver, Access::Read, &mut std::iter::once(key))?;
        if r.progress().role != Role::Leader {
            return Err(self.not_leader(&r));
        }
        self.read_data(&r, checked, (key, &[], false), |engine| latest_value(engine, key))
    }

    /// The draining servers (`Admin.DrainingServers`), as the leader of
    /// the shard holding them has applied.
    pub async fn draining_servers(&self, req: proto::DrainingServersRequest) -> Result<proto::DrainingServersResponse> {
        let current = self.read_system_value(req.shard_id, req.range_ver, meta::keys::DRAINING_SERVERS)?;
        Ok(proto::DrainingServersResponse { server_ids: draining_servers(current.as_deref())?.into_iter().collect() })
    }

    /// Replaces the system value at `key` with `next(current)` by a
    /// replicated conditional write at the leader of `shard` (again if the
    /// value moved meanwhile); the value before and after.
    async fn update_system_value(
        &self,
        shard: u64,
        range_ver: u64,
        key: &[u8],
        next: impl Fn(Option<&[u8]>) -> Result<Vec<u8>>,
    ) -> Result<(Option<Vec<u8>>, Vec<u8>)> {
        self.clock.check()?;
        let r = self.replica(shard)?;
        let checked = self.check_route(&r, range_ver, Access::Write, &mut std::iter::once(key))?;
        for _ in 0..limits::ID_ALLOCATION_ATTEMPTS_MAX {
            if r.progress().role != Role::Leader {
                return Err(self.not_leader(&r));
            }
            let current = self.read_data(&r, checked, (key, &[], false), |engine| latest_value(engine, key))?;
            let value = next(current.as_deref())?;
            let input = Input::Write {
                req: RequestId(0),
                writes: vec![txn::Write { key: key.to_vec(), value: Some(value.clone()) }],
                conditions: vec![txn::Condition { key: key.to_vec(), expected: current.clone() }],
            };
            match self.txn_call(&r, input, self.time.write_timeout()).await {
                Ok(Some(Answer::Committed { applied: true, .. })) => return Ok((current, value)),
                // The value moved, or the write lost a lock race: again.
                Ok(Some(Answer::Committed { applied: false, .. })) | Err(Error::Aborted(_)) => {}
                Ok(Some(other)) => return Err(Error::Storage(format!("unexpected answer to a write: {other:?}"))),
                // (An allocation's ids that may have been taken are
                // skipped, never reused.)
                Ok(None) => return Err(Error::Unavailable("the write was not answered in time; retry".into())),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(limits::ID_ALLOCATION_RETRY_PAUSE).await;
        }
        Err(Error::Unavailable("the system value kept moving; retry".into()))
    }

    /// Checks a split request before ids are taken for it: the shard is
    /// here, led here, at the request's range, and holds the key. Returns
    /// how many replicas the shard has (the child gets as many ids).
    pub fn check_split(&self, req: &proto::SplitShardRequest) -> Result<usize> {
        check_key(&req.split_key)?;
        let r = self.replica(req.shard_id)?;
        self.check_route(&r, req.range_ver, Access::Read, &mut std::iter::once(req.split_key.as_slice()))?;
        if r.progress().role != Role::Leader {
            return Err(self.not_leader(&r));
        }
        Ok(r.descriptor().replicas.len())
    }

    /// Splits a shard at a key (`shard/split.rs`) with new ids from
    /// `first_id` on (the child's shard id, then one replica id per
    /// replica), answered once applied.
    pub async fn split_shard(&self, req: proto::SplitShardRequest, first_id: u64) -> Result<proto::SplitShardResponse> {
        let replicas = self.check_split(&req)? as u64;
        let r = self.replica(req.shard_id)?;
        let split = command::Split {
            split_key: req.split_key,
            range_ver: meta::RangeVer(req.range_ver),
            child_shard: ShardId(first_id),
            child_replicas: (1..=replicas).map(|i| meta::ReplicaId(first_id + i)).collect(),
        };
        let (tx, rx) = oneshot::channel();
        self.event_loop.send(LoopMsg::Split { shard: r.shard_id, split, reply: tx })?;
        let (left, right) = self.applied_answer(rx, "the split").await?;
        Ok(proto::SplitShardResponse {
            left: Some(crate::wire::descriptor_to_proto(&left)),
            right: Some(crate::wire::descriptor_to_proto(&right)),
        })
    }

    /// The answer to a command the event loop proposed (`what`, for the
    /// errors), once applied; `Ambiguous` if none comes within the write
    /// timeout (it may still apply).
    async fn applied_answer<T>(&self, rx: oneshot::Receiver<Result<T>>, what: &str) -> Result<T> {
        match tokio::time::timeout(self.time.write_timeout(), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Unavailable("server is shutting down".into())),
            Err(_) => Err(Error::Ambiguous(format!(
                "{what} was not answered within {:?}; it may still apply",
                self.time.write_timeout()
            ))),
        }
    }

    /// Checks a membership change at this shard's leader; says how many
    /// new replica ids it needs (one to add a learner, else none).
    pub fn check_change_replicas(&self, req: &proto::ChangeReplicasRequest) -> Result<u64> {
        let r = self.replica(req.shard_id)?;
        if r.progress().role != Role::Leader {
            return Err(self.not_leader(&r));
        }
        let adds = req.changes.iter().filter(|c| c.kind() == proto::replica_change::Kind::AddLearner).count();
        Ok(adds.min(1) as u64)
    }

    /// Changes a shard's membership (`shard/membership.rs`); `new_replica`
    /// is the id of a learner it adds. Answered once applied.
    pub async fn change_replicas(
        &self,
        req: proto::ChangeReplicasRequest,
        new_replica: Option<meta::ReplicaId>,
    ) -> Result<proto::ChangeReplicasResponse> {
        use proto::replica_change::Kind;
        let r = self.replica(req.shard_id)?;
        if req.changes.len() > limits::REPLICA_CHANGES_MAX {
            return Err(Error::InvalidArgument(format!("more than {} changes at once", limits::REPLICA_CHANGES_MAX)));
        }
        let server = |c: &proto::ReplicaChange| ServerId(c.server_id);
        let of = |kind: Kind| req.changes.iter().filter(move |c| c.kind() == kind).map(server).collect::<Vec<_>>();
        let (adds, removes, promote, demote) =
            (of(Kind::AddLearner), of(Kind::Remove), of(Kind::Promote), of(Kind::Demote));
        let change = match (adds.as_slice(), removes.as_slice(), new_replica) {
            ([server], [], Some(replica)) if promote.is_empty() && demote.is_empty() => {
                MembershipChange::AddLearner { server: *server, replica }
            }
            ([], [server], _) if promote.is_empty() && demote.is_empty() => {
                MembershipChange::RemoveLearner { server: *server }
            }
            ([], [], _) if !promote.is_empty() || !demote.is_empty() => MembershipChange::Joint { promote, demote },
            _ => {
                return Err(Error::InvalidArgument(
                    "a membership change is one ADD_LEARNER, one REMOVE, or PROMOTEs and DEMOTEs".into(),
                ))
            }
        };
        let (tx, rx) = oneshot::channel();
        let conf_ver = meta::ConfVer(req.conf_ver);
        self.event_loop.send(LoopMsg::ChangeReplicas { shard: r.shard_id, conf_ver, change, reply: tx })?;
        let descriptor = self.applied_answer(rx, "the membership change").await?;
        Ok(proto::ChangeReplicasResponse { descriptor: Some(crate::wire::descriptor_to_proto(&descriptor)) })
    }

    // --- Read-write transactions --------------------------------------------

    /// A read inside a read-write transaction: a shared lock (key or range)
    /// held until the transaction ends, then the latest committed value.
    ///
    /// A scan locks only what its page reads (`narrow_lock`): it first
    /// looks (without a lock) where a page of `limit` pairs would end,
    /// locks the span up to there, and reads that span again under the
    /// lock. So `ORDER BY id DESC LIMIT 20` locks the last twenty rows'
    /// span, not the shard's whole range, and waits only for writers
    /// there. If keys came or went
    /// in between, the locked read is what counts: fewer pairs, with a
    /// resume key at the lock's edge, or a page cut short inside it.
    pub async fn txn_read(&self, req: proto::TxnReadRequest) -> Result<proto::TxnReadResponse> {
        let (txn, priority) = txn_meta(req.txn.as_ref())?;
        self.clock.check()?;
        let span = req.span.ok_or_else(|| Error::InvalidArgument("a transactional read needs a span".into()))?;
        let r = self.replica(req.shard_id)?;
        let mode = if req.for_update { LockMode::Exclusive } else { LockMode::Shared };
        let reverse = req.reverse;
        // The locked range: the page's extent within the clipped span, and
        // where the rest of the span continues if that cut it short.
        let (target, scan, checked) = if span.range {
            if req.for_update {
                return Err(Error::InvalidArgument("a scan cannot read for update (range locks are shared)".into()));
            }
            let asked = ScanSpan { start: &span.start, end: &span.end, reverse };
            let ScanBounds { start, end, limit, range_ver } = self.scan_bounds(&r, req.range_ver, asked, req.limit)?;
            let clipped = ScanSpan { start: &start, end: &end, reverse };
            let peek = match req.narrow_lock {
                true => self
                    .read_data(&r, range_ver, (&start, &end, true), |e| scan_page(e, clipped, Timestamp::MAX, limit))?,
                // The client records the whole span it asked for.
                false => ScanPage::default(),
            };
            // A full page needs no more of the range than up to its last
            // pair, even where no live key follows it in the shard.
            let resume_key = peek.resume_key.or_else(|| {
                let (last, _, _) = peek.pairs.last().filter(|_| peek.pairs.len() == limit as usize)?;
                let edge = if reverse { last.clone() } else { [last.as_slice(), &[0]].concat() };
                let inside = if reverse { edge.as_slice() > start.as_slice() } else { end.is_empty() || edge < end };
                inside.then_some(edge)
            });
            let (start, end, cut) = match resume_key {
                Some(at) if reverse => (at.clone(), end, Some(at)),
                Some(at) => (start, at.clone(), Some(at)),
                None => (start, end, None),
            };
            (LockTarget::Range(start.clone(), end.clone()), Some((start, end, limit, cut)), range_ver)
        } else {
            if reverse {
                return Err(Error::InvalidArgument("a get cannot be reverse".into()));
            }
            check_key(&span.start)?;
            let checked =
                self.check_route(&r, req.range_ver, Access::Read, &mut std::iter::once(span.start.as_slice()))?;
            (LockTarget::Key(span.start.clone()), None, checked)
        };
        let (lease, deadline) = (req.lease.map(lease_from_proto), txn_deadline(req.txn.as_ref()));
        let no_wait = req.no_wait;
        let input = Input::Read { req: RequestId(0), txn, priority, target, mode, lease, deadline, no_wait };
        let asked = Instant::now();
        let lease = match self.txn_call(&r, input, self.time.write_timeout()).await? {
            Some(Answer::Locked { lease }) => Some(lease_to_proto(lease)),
            Some(other) => return Err(Error::Storage(format!("unexpected answer to a read: {other:?}"))),
            None => return Err(Error::Unavailable("the read's lock was not granted in time".into())),
        };
        let lock_ns = u64::try_from(asked.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // The lock is held: nobody can commit a write to it. Confirm
        // leadership and that everything committed is applied, then read
        // the latest version.
        self.read_index(&r).await?;
        let Some((start, end, limit, cut)) = scan else {
            let version = self.read_data(&r, checked, (&span.start, &[], false), |engine| {
                KeyVersions::new(engine, &span.start).newest_at(Timestamp::MAX)
            })?;
            let newest_ts = version.as_ref().map_or(Timestamp::ZERO, |(ts, _)| *ts);
            let pairs = version
                .and_then(|(ts, value)| value.map(|v| (ts, v)))
                .map(|(ts, value)| proto::KeyValue { key: span.start.clone(), value, version_ts: ts.as_nanos() })
                .into_iter()
                .collect();
            self.wait_visible(newest_ts).await?;
            return Ok(proto::TxnReadResponse {
                pairs,
                resume_key: Vec::new(),
                lease,
                lock_ns,
                server_ns: 0,
                locked: None,
            });
        };
        let locked = ScanSpan { start: &start, end: &end, reverse };
        let mut page =
            self.read_data(&r, checked, (&start, &end, true), |e| scan_page(e, locked, Timestamp::MAX, limit))?;
        if reverse {
            record_reverse_load(&r, &page, &start);
        }
        // Nothing left in the locked span: the rest of the asked one
        // begins (or, reverse, ends) at the lock's edge.
        if page.resume_key.is_none() {
            page.resume_key = cut;
        }
        self.wait_visible(page.newest_ts).await?;
        let (pairs, resume_key) = page_to_proto(page);
        let locked = Some(proto::Span { start, end, range: true });
        Ok(proto::TxnReadResponse { pairs, resume_key, lease, lock_ns, server_ns: 0, locked })
    }

    fn txn_writes_and_reads(
        &self,
        r: &ReplicaShared,
        range_ver: u64,
        writes: Vec<proto::Mutation>,
        reads: Vec<proto::Span>,
    ) -> Result<(Vec<txn::Write>, Vec<LockTarget>)> {
        if !writes.is_empty() {
            check_mutations(&writes)?;
        }
        if reads.len() > txn::limits::LOCKS_PER_TXN_MAX {
            return Err(Error::InvalidArgument(format!(
                "more than {} reads on one shard",
                txn::limits::LOCKS_PER_TXN_MAX
            )));
        }
        self.check_route(r, range_ver, Access::Write, &mut writes.iter().map(|m| m.key.as_slice()))?;
        let reads = reads.into_iter().map(|s| command::span_to_target(s.start, s.end, s.range)).collect();
        Ok((writes.into_iter().map(command::write_from_proto).collect(), reads))
    }

    /// Prepares a transaction on this shard (a participant that is not the
    /// coordinator); returns the prepare timestamp and its seal, or `None`
    /// if a condition failed (nothing prepared; the transaction aborted here).
    pub async fn txn_prepare(&self, req: proto::TxnPrepareRequest) -> Result<Option<(Timestamp, Vec<u8>)>> {
        let (txn, priority) = txn_meta(req.txn.as_ref())?;
        self.clock.check()?;
        let r = self.replica(req.shard_id)?;
        let conditions = txn_conditions(req.conditions, &req.writes)?;
        let (writes, reads) = self.txn_writes_and_reads(&r, req.range_ver, req.writes, req.reads)?;
        // (The service checked that some server hosts the coordinator.)
        let coordinator = ShardId(req.coordinator_shard_id);
        let lease = req.lease.map(lease_from_proto);
        let input = Input::Prepare { req: RequestId(0), txn, priority, writes, reads, lease, coordinator, conditions };
        match self.txn_call(&r, input, self.time.write_timeout()).await? {
            Some(Answer::Prepared { prepare_ts }) => {
                Ok(Some((prepare_ts, self.secret.seal(txn, r.shard_id, prepare_ts))))
            }
            Some(Answer::ConditionsFailed) => Ok(None),
            Some(other) => Err(Error::Storage(format!("unexpected answer to a prepare: {other:?}"))),
            None => Err(Error::Ambiguous("the prepare was not answered in time; it may still be prepared".into())),
        }
    }

    /// Commits a transaction at this shard (its only participant, or its
    /// coordinator), answered after commit-wait.
    pub async fn txn_commit(&self, req: proto::TxnCommitRequest) -> Result<WriteOutcome> {
        let (txn, priority) = txn_meta(req.txn.as_ref())?;
        self.clock.check()?;
        let r = self.replica(req.shard_id)?;
        let conditions = txn_conditions(req.conditions, &req.writes)?;
        let (writes, reads) = self.txn_writes_and_reads(&r, req.range_ver, req.writes, req.reads)?;
        if req.participants.len() > limits::PARTICIPANTS_MAX {
            return Err(Error::InvalidArgument(format!("more than {} participants", limits::PARTICIPANTS_MAX)));
        }
        let mut participants = Vec::with_capacity(req.participants.len());
        for p in req.participants {
            let (shard, prepare_ts) = (ShardId(p.shard_id), Timestamp::from_nanos(p.prepare_ts));
            if !self.secret.check_seal(txn, shard, prepare_ts, &p.seal) {
                return Err(Error::InvalidArgument(format!(
                    "{shard}'s prepare timestamp {prepare_ts} does not carry that participant's seal"
                )));
            }
            participants.push((shard, prepare_ts));
        }
        let (lease, deadline) = (req.lease.map(lease_from_proto), txn_deadline(req.txn.as_ref()));
        let input = Input::Commit {
            req: RequestId(0),
            txn,
            priority,
            writes,
            reads,
            lease,
            participants,
            conditions,
            deadline,
        };
        let (commit_ts, applied) = match self.txn_call(&r, input, self.time.write_timeout()).await? {
            Some(Answer::Committed { commit_ts, applied }) => (commit_ts, applied),
            Some(other) => return Err(Error::Storage(format!("unexpected answer to a commit: {other:?}"))),
            None => return Err(Error::Ambiguous("the commit was not answered in time; it may still commit".into())),
        };
        let commit_wait = self.commit_wait(commit_ts).await?;
        Ok(WriteOutcome { commit_ts, applied, commit_wait })
    }

    /// Holds the answer until `TT.after(commit_ts)`; returns how long. If
    /// the clock that decided when is not trusted at the end, the commit
    /// stands but its acknowledgement would not: `Ambiguous`.
    async fn commit_wait(&self, commit_ts: Timestamp) -> Result<Duration> {
        let started = Instant::now();
        if !self.unsafe_testing.skip_commit_wait {
            self.commit_waiter.wait(commit_ts).await;
            if let Err(e) = self.clock.check() {
                return Err(Error::Ambiguous(format!("committed at {commit_ts}, but during its commit-wait {e}")));
            }
        }
        Ok(started.elapsed())
    }

    pub async fn txn_abort(&self, req: proto::TxnAbortRequest) -> Result<()> {
        let txn = command::txn_id_from(&req.txn_id).map_err(Error::InvalidArgument)?;
        let r = self.replica(req.shard_id)?;
        match self.txn_call(&r, Input::Abort { req: RequestId(0), txn }, self.time.write_timeout()).await? {
            Some(_) => Ok(()),
            None => Err(Error::Unavailable("the abort was not answered in time".into())),
        }
    }

    /// Keeps a transaction alive on the named shards hosted here (and, for
    /// a committing client, tells its coordinator so).
    pub fn txn_heartbeat(&self, req: proto::TxnHeartbeatRequest) -> Result<()> {
        let txn = command::txn_id_from(&req.txn_id).map_err(Error::InvalidArgument)?;
        if req.shard_ids.len() > limits::PARTICIPANTS_MAX {
            return Err(Error::InvalidArgument(format!("more than {} shards", limits::PARTICIPANTS_MAX)));
        }
        for shard in req.shard_ids.into_iter().map(ShardId) {
            if self.registry.get(shard).is_some() {
                let input = Input::Heartbeat { txn, committing: req.committing };
                let _ = self.event_loop.send(LoopMsg::Txn { shard, input, reply: None });
            }
        }
        Ok(())
    }

    /// A participant asks this coordinator shard how `txn` ended (for it).
    /// A commit is told only after `TT.after(commit_ts)` (module docs).
    pub async fn txn_resolve(&self, req: proto::TxnResolveRequest) -> Result<proto::TxnResolveResponse> {
        let txn = command::txn_id_from(&req.txn_id).map_err(Error::InvalidArgument)?;
        self.clock.check()?;
        let r = self.replica(req.shard_id)?;
        let participant = ShardId(req.participant_shard_id);
        let input = Input::Resolve { req: RequestId(0), txn, participant, patient: req.patient };
        let answer = self.txn_call(&r, input, self.time.write_timeout()).await?;
        Ok(match answer {
            Some(Answer::Outcome(Outcome::Committed(ts))) => {
                self.wait_visible(ts).await?;
                proto::TxnResolveResponse { outcome: proto::TxnOutcome::Committed as i32, commit_ts: ts.as_nanos() }
            }
            Some(Answer::Outcome(Outcome::Aborted)) => {
                proto::TxnResolveResponse { outcome: proto::TxnOutcome::Aborted as i32, commit_ts: 0 }
            }
            _ => proto::TxnResolveResponse { outcome: proto::TxnOutcome::Pending as i32, commit_ts: 0 },
        })
    }

    /// The coordinator tells this participant shard how `txn` ended.
    pub async fn txn_decide(&self, req: proto::TxnDecideRequest) -> Result<()> {
        let txn = command::txn_id_from(&req.txn_id).map_err(Error::InvalidArgument)?;
        let outcome = match proto::TxnOutcome::try_from(req.outcome) {
            Ok(proto::TxnOutcome::Committed) => Outcome::Committed(Timestamp::from_nanos(req.commit_ts)),
            Ok(proto::TxnOutcome::Aborted) => Outcome::Aborted,
            _ => return Err(Error::InvalidArgument("a decision must be committed or aborted".into())),
        };
        let r = self.replica(req.shard_id)?;
        match self.txn_call(&r, Input::Decide { req: RequestId(0), txn, outcome }, self.time.write_timeout()).await? {
            Some(_) => Ok(()),
            None => Err(Error::Unavailable("the decision was not applied in time".into())),
        }
    }
}

/// A scan page as the wire has it: pairs, and where to resume (empty:
/// done). The system's own keys (`meta::keys`) are not data, and scans do
/// not return them.
fn page_to_proto(page: ScanPage) -> (Vec<proto::KeyValue>, Vec<u8>) {
    let pairs = page
        .pairs
        .into_iter()
        .filter(|(key, _, _)| !meta::keys::is_system(key))
        .map(|(key, value, ts)| proto::KeyValue { key, value, version_ts: ts.as_nanos() })
        .collect();
    (pairs, page.resume_key.unwrap_or_default())
}

/// A span of a read: (start, end, is a range).
type Span = (Vec<u8>, Vec<u8>, bool);

/// A scan as asked: `[start, end)` (empty end: unbounded), read in key
/// order or, `reverse`, from the end down.
#[derive(Clone, Copy)]
struct ScanSpan<'a> {
    start: &'a [u8],
    end: &'a [u8],
    reverse: bool,
}

/// A scan's range clipped to the shard, its page limit, and the shard's
/// range version it was checked against.
struct ScanBounds {
    start: Vec<u8>,
    end: Vec<u8>,
    limit: u32,
    range_ver: u64,
}

/// Records a reverse scan's load at the highest key its page read (else
/// its start), where load-based splitting should see it: `ORDER BY id
/// DESC LIMIT n` and `max(id)` read a shard's tail.
fn record_reverse_load(r: &ReplicaShared, page: &ScanPage, start: &[u8]) {
    let key = page.pairs.first().map_or(start, |(key, _, _)| key.as_slice());
    r.record_load(key, Access::Read);
}

/// One page of a scan of `span` at `read_ts`, in its direction.
fn scan_page(engine: &Engine, span: ScanSpan<'_>, read_ts: Timestamp, limit: u32) -> Result<ScanPage> {
    let reader = Reader::new(engine);
    let (limit, bytes) = (limit as usize, limits::SCAN_PAGE_BYTES_MAX);
    if span.reverse {
        reader.scan_reverse(span.start, span.end, read_ts, limit, bytes)
    } else {
        reader.scan(span.start, span.end, read_ts, limit, bytes)
    }
}

/// When a read reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadAt {
    /// Linearizable, at the leader.
    Latest,
    At(Timestamp),
    /// At `TT.now().latest` of this replica.
    Now,
    /// The freshest this replica can serve, at most this far behind.
    Bounded(Duration),
}

/// The latest value of `key` (a tombstone: `None`).
fn latest_value(engine: &Engine, key: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(KeyVersions::new(engine, key).newest_at(Timestamp::MAX)?.and_then(|(_, value)| value))
}

fn read_at(read_ts: u64, options: Option<&proto::ReadOptions>) -> Result<ReadAt> {
    let o = options.cloned().unwrap_or_default();
    let ts = if o.read_ts != 0 { o.read_ts } else { read_ts };
    match (ts != 0, o.now, o.max_staleness_ns != 0) {
        (false, false, false) => Ok(ReadAt::Latest),
        (true, false, false) => Ok(ReadAt::At(Timestamp::from_nanos(ts))),
        (false, true, false) => Ok(ReadAt::Now),
        (false, false, true) => Ok(ReadAt::Bounded(Duration::from_nanos(o.max_staleness_ns))),
        _ => Err(Error::InvalidArgument("give at most one of read_ts, now and max_staleness".into())),
    }
}

fn lease_from_proto(l: proto::LockLease) -> LockLease {
    LockLease { term: Term(l.term), admission: l.admission }
}

fn lease_to_proto(l: LockLease) -> proto::LockLease {
    proto::LockLease { term: l.term.0, admission: l.admission }
}

/// A transaction's id and priority from the wire.
fn txn_meta(meta: Option<&proto::TxnMeta>) -> Result<(TxnId, Priority)> {
    let meta = meta.ok_or_else(|| Error::InvalidArgument("a transactional request needs the transaction".into()))?;
    let txn = command::txn_id_from(&meta.txn_id).map_err(Error::InvalidArgument)?;
    if txn.is_internal() {
        return Err(Error::InvalidArgument("transaction ids in the top 2^64 are reserved".into()));
    }
    let priority_txn = if meta.priority_txn.is_empty() {
        txn
    } else {
        command::txn_id_from(&meta.priority_txn).map_err(Error::InvalidArgument)?
    };
    Ok((txn, Priority::new(Timestamp::from_nanos(meta.priority_ts), priority_txn)))
}

/// The time a transaction must happen before, if it has one
/// ([`Input::Read`]).
fn txn_deadline(meta: Option<&proto::TxnMeta>) -> Option<Timestamp> {
    meta.and_then(|m| m.deadline).map(Timestamp::from_nanos)
}

/// How a plain write turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    pub commit_ts: Timestamp,
    /// False when a condition did not hold (nothing was written).
    pub applied: bool,
    /// How long the answer was held for commit-wait.
    pub commit_wait: Duration,
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("key must not be empty".into()));
    }
    if key.len() > limits::KEY_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "key of {} bytes exceeds the limit of {} bytes",
            key.len(),
            limits::KEY_BYTES_MAX
        )));
    }
    Ok(())
}

/// The id high-water mark a system value holds (none yet: the static
/// layout's ids are taken).
fn high_water(value: Option<&[u8]>, static_max: u64) -> Result<u64> {
    match value {
        None => Ok(static_max),
        Some(bytes) => <[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .map_err(|_| Error::Storage(format!("the id high-water mark is {} bytes, not 8", bytes.len()))),
    }
}

/// The joined servers a system value holds (none yet: none).
fn joined_servers(value: Option<&[u8]>) -> Result<std::collections::BTreeMap<u64, String>> {
    match value {
        None => Ok(Default::default()),
        Some(bytes) => meta::keys::decode_server_addrs(bytes).ok_or_else(|| {
            Error::Storage(format!("the joined servers' value ({} bytes) does not decode", bytes.len()))
        }),
    }
}

/// The draining servers a system value holds (none yet: none).
fn draining_servers(value: Option<&[u8]>) -> Result<std::collections::BTreeSet<u64>> {
    match value {
        None => Ok(Default::default()),
        Some(bytes) => meta::keys::decode_servers(bytes)
            .ok_or_else(|| Error::Storage(format!("the draining servers' value is {} bytes", bytes.len()))),
    }
}

/// Refuses a user write to a key the system keeps for itself
/// (`meta::keys`).
fn check_not_system(key: &[u8]) -> Result<()> {
    if meta::keys::is_system(key) {
        return Err(Error::InvalidArgument("keys that begin with byte 0x00 are reserved for SpanDB itself".into()));
    }
    Ok(())
}

/// A prepare's or commit's conditions, checked: within the limits, and
/// each on a key the request writes (its lock comes from the write).
fn txn_conditions(conditions: Vec<proto::Condition>, writes: &[proto::Mutation]) -> Result<Vec<txn::Condition>> {
    check_conditions(&conditions)?;
    if let Some(c) = conditions.iter().find(|c| !writes.iter().any(|w| w.key == c.key)) {
        return Err(Error::InvalidArgument(format!(
            "a condition must be on a key the request writes: {}",
            String::from_utf8_lossy(&c.key)
        )));
    }
    Ok(conditions.into_iter().map(command::condition_from_proto).collect())
}

fn check_conditions(conditions: &[proto::Condition]) -> Result<()> {
    if conditions.len() > limits::WRITE_MUTATIONS_MAX {
        return Err(Error::InvalidArgument(format!(
            "{} conditions exceed the limit of {} per write",
            conditions.len(),
            limits::WRITE_MUTATIONS_MAX
        )));
    }
    for c in conditions {
        check_key(&c.key)?;
        check_not_system(&c.key)?;
        if c.expected.len() > limits::VALUE_BYTES_MAX {
            return Err(Error::InvalidArgument("expected value exceeds the value limit".into()));
        }
        if c.expect_absent && !c.expected.is_empty() {
            return Err(Error::InvalidArgument("a condition cannot expect both a value and absence".into()));
        }
    }
    Ok(())
}

fn check_mutations(mutations: &[proto::Mutation]) -> Result<()> {
    if mutations.is_empty() {
        return Err(Error::InvalidArgument("a write needs at least one mutation".into()));
    }
    if mutations.len() > limits::WRITE_MUTATIONS_MAX {
        return Err(Error::InvalidArgument(format!(
            "{} mutations exceed the limit of {} per write",
            mutations.len(),
            limits::WRITE_MUTATIONS_MAX
        )));
    }
    let mut bytes = 0usize;
    for m in mutations {
        check_key(&m.key)?;
        check_not_system(&m.key)?;
        if m.value.len() > limits::VALUE_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "value of {} bytes exceeds the limit of {} bytes",
                m.value.len(),
                limits::VALUE_BYTES_MAX
            )));
        }
        bytes += m.key.len() + m.value.len();
    }
    if bytes > limits::WRITE_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "write of {bytes} bytes exceeds the limit of {} bytes",
            limits::WRITE_BYTES_MAX
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &[u8], value_len: usize) -> proto::Mutation {
        proto::Mutation { key: key.to_vec(), value: vec![b'x'; value_len], delete: false }
    }

    #[test]
    fn oversized_or_empty_input_is_refused() {
        let cases: Vec<(Vec<proto::Mutation>, &str)> = vec![
            (vec![], "at least one"),
            (vec![m(b"", 1)], "empty"),
            (vec![m(&vec![b'k'; limits::KEY_BYTES_MAX + 1], 1)], "key of"),
            (vec![m(b"k", limits::VALUE_BYTES_MAX + 1)], "value of"),
            ((0..limits::WRITE_MUTATIONS_MAX + 1).map(|_| m(b"k", 0)).collect(), "mutations exceed"),
            ((0..5).map(|_| m(b"k", limits::VALUE_BYTES_MAX)).collect(), "write of"),
        ];
        for (mutations, want) in cases {
            let err = check_mutations(&mutations).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)));
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        }
        check_mutations(&[m(b"k", limits::VALUE_BYTES_MAX)]).unwrap();
    }
}
