//! The replica's garbage: MVCC versions below the GC watermark, removed
//! in bounded rounds, and the Raft log behind the applied index,
//! compacted once it is long enough.
//!
//! # Rounds that can find nothing are skipped
//!
//! A round scans every version of the shard. Most rounds of a shard that
//! is read more than written find nothing: a version is garbage at a
//! watermark `W` only once a newer version of its key is at or below `W`
//! (or it is a tombstone at or below `W`). So the replica remembers, by
//! the second, the commit timestamps of the versions it writes
//! ([`GcState`]), and after a round that ran to its end at `W₀` it knows:
//! nothing at or below `W₀` is garbage but what was written since, and
//! every version above `W₀` is one it remembers. A round at a new `W` can
//! then find something only if it remembers a version at or below `W`;
//! if not, the watermark is raised without a scan.
//!
//! ```text
//!   round at W₀ ran to its end        remembered writes (seconds)
//!   ──────────────┤W₀          W├──────────·····──·──·─────────> ts
//!                   nothing here: skip the round at W
//! ```
//!
//! What the replica has not seen written (the versions a restart finds
//! on disk, or a snapshot brings) it cannot remember: those are assumed
//! to reach up to a margin past the time it learned of them
//! ([`limits::GC_UNTRACKED_MARGIN`], `untracked_until`). One round runs
//! when it learns of them (the garbage below the watermark then), and
//! the next once the watermark is past `untracked_until`. The rounds in
//! between could each find only the garbage whose newer version falls in
//! their own stretch of watermarks, and each would scan every version to
//! find it: after a restart, a full scan of the server's data every GC
//! interval for the whole retention period (an hour by default; seen as
//! TPC-B dips every minute). That garbage waits for the one round
//! instead; it is unreadable meanwhile (below the watermark) and takes
//! space for at most the retention period longer.
//!
//! ```text
//!   learned of unseen versions at L, untracked_until = L + margin
//!   rounds:  W1 (runs)   W2 … Wn < untracked_until (skipped)   W ≥ untracked_until (runs)
//! ```
//!
//! Rounds that versions it wrote call for run as before. A replica
//! bootstrapped with the cluster starts empty, and a split's child knows
//! what its parent knew.
//!
//! # Pacing
//!
//! A round examines a shard's versions a step at a time, in the event
//! loop, and the server's [`GcBudget`] lets its replicas examine at most
//! [`limits::GC_VERSIONS_PER_SECOND_MAX`] versions a second between them
//! (each at most [`limits::GC_VERSIONS_PER_STEP_MAX`] per loop
//! iteration). Unpaced, the first round after a restart over a TPC-B load
//! of 1.6 million accounts took over a second of every server's loop at
//! once, and TPC-B stalled for two (BENCHMARKS.md); paced, a round takes
//! seconds of a little work per iteration.
//!
//! So a round can take longer than the GC interval. A round still running
//! when the watermark moves up goes on (its steps delete below the new
//! watermark), and counts as swept only up to the watermark it began at;
//! were it started over instead, it would never reach the shard's end.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;

/// Garbage collection progress, and what this replica knows of the
/// timestamps of its stored versions (module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct GcState {
    /// While a round is running: the watermark it started at, and the
    /// next key to examine.
    cursor: Option<(Timestamp, Vec<u8>)>,
    /// The watermark of the last round that ran to its end (or was
    /// skipped), while no round runs since; `None` if none did.
    swept: Option<Timestamp>,
    /// Versions this replica did not see written may be stored at or
    /// below this timestamp; `None` while it is not known yet (fixed at
    /// the next round's start).
    untracked_until: Option<Timestamp>,
    /// The seconds of the commit timestamps of the versions written here
    /// that may be above `swept` (older ones are forgotten when a round
    /// starts).
    written: BTreeSet<u64>,
}

impl GcState {
    /// The state of a replica that holds no version (bootstrapped with the
    /// cluster).
    pub(crate) fn empty() -> GcState {
        GcState {
            cursor: None,
            swept: Some(Timestamp::ZERO),
            untracked_until: Some(Timestamp::ZERO),
            written: BTreeSet::new(),
        }
    }

    /// What a split's child knows: what its parent knew of the versions
    /// it inherits (no round runs in it yet).
    pub(crate) fn for_child(&self) -> GcState {
        GcState { cursor: None, ..self.clone() }
    }

    /// Versions were written at `ts`.
    pub(crate) fn note_written(&mut self, ts: Timestamp) {
        self.written.insert(second_of(ts));
    }

    /// The stored versions were replaced by ones this replica did not see
    /// written (a snapshot).
    pub(crate) fn forget_versions(&mut self) {
        // A running round would count the new versions as swept.
        self.cursor = None;
        self.swept = None;
        self.untracked_until = None;
    }

    /// Whether a round at `watermark` (above the last one) can find
    /// garbage; `now_latest` is `TT.now().latest`.
    fn round_needed(&mut self, watermark: Timestamp, now_latest: Timestamp) -> bool {
        let untracked_until =
            *self.untracked_until.get_or_insert_with(|| now_latest.saturating_add(limits::GC_UNTRACKED_MARGIN));
        let Some(swept) = self.swept else { return true };
        // Unseen versions' garbage waits for one round past them all.
        let untracked_due = untracked_until > swept && watermark >= untracked_until;
        untracked_due || self.written.range(..=second_of(watermark)).next().is_some()
    }

    /// A round at `watermark` starts at `start`: versions written in a
    /// second wholly at or below it are its to look at.
    fn begin_round(&mut self, watermark: Timestamp, start: Vec<u8>) {
        self.written = self.written.split_off(&second_of(watermark));
        self.swept = None;
        self.cursor = Some((watermark, start));
    }

    /// The watermark rose to `watermark`: starts a round there (from
    /// `start`) unless one is running (it goes on: module docs)
    /// or it can find nothing.
    fn watermark_raised(&mut self, watermark: Timestamp, now_latest: Timestamp, start: Vec<u8>) {
        if self.cursor.is_some() {
            return;
        }
        if self.round_needed(watermark, now_latest) {
            self.begin_round(watermark, start);
        } else {
            self.swept = Some(watermark);
        }
    }

    /// The running round's step ended; `next` is where the next starts
    /// (`None`: the round is done, swept to the watermark it began at).
    fn stepped(&mut self, next: Option<Vec<u8>>) {
        let Some((round, _)) = self.cursor.take() else { return };
        match next {
            Some(next) => self.cursor = Some((round, next)),
            None => self.swept = Some(round),
        }
    }
}

/// How many versions a server's garbage collector may examine now
/// (module docs, "Pacing"): earned with time at
/// [`limits::GC_VERSIONS_PER_SECOND_MAX`], up to
/// [`limits::GC_VERSIONS_BURST_MAX`]; a step that examined more (a key's
/// versions are examined together) leaves a debt.
#[derive(Debug, Default)]
pub(crate) struct GcBudget {
    versions: i64,
    earned_at: Option<Instant>,
}

impl GcBudget {
    /// Earns what the time since the last call is worth.
    pub(crate) fn earn(&mut self, now: Instant) {
        let since = self.earned_at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        self.earned_at = Some(now);
        let burst = limits::GC_VERSIONS_BURST_MAX;
        let rate = u128::from(limits::GC_VERSIONS_PER_SECOND_MAX);
        let earned = (since.as_nanos() * rate / 1_000_000_000).min(burst.into()) as i64;
        self.versions = self.versions.saturating_add(earned).min(burst as i64);
    }

    /// What may be examined now.
    pub(crate) fn available(&self) -> usize {
        self.versions.max(0) as usize
    }

    pub(crate) fn spend(&mut self, examined: usize) {
        self.versions = self.versions.saturating_sub(examined as i64);
    }
}

fn second_of(ts: Timestamp) -> u64 {
    ts.as_nanos() / 1_000_000_000
}

impl Replica {
    pub(super) fn set_gc_watermark(&mut self, watermark: Timestamp, batch: &mut WriteBatch) {
        self.shared.gc_watermark_cell().store(watermark.as_nanos(), std::sync::atomic::Ordering::SeqCst);
        batch.put_cf(
            self.engine.cf(CF_RAFT),
            raft_key(self.shard_id, RaftKey::GcWatermark),
            watermark.as_nanos().to_be_bytes(),
        );
    }

    /// Lets the log's in-memory tail (`storage/raft_log.rs`) forget what
    /// is applied here and, at a leader, held by every follower: nothing
    /// reads those entries again but a follower fallen behind, which reads
    /// them from RocksDB. An idle shard so holds no cached entries.
    pub fn release_cached_entries(&mut self) {
        let mut upto = self.applied_index;
        if self.is_leader() {
            let matched =
                self.raw_node.raft.prs().iter().filter(|(id, _)| **id != self.replica_id.0).map(|(_, p)| p.matched);
            upto = matched.fold(upto, u64::min);
        }
        self.raw_node.mut_store().release_cached(upto);
    }

    /// Compacts the log once it holds enough applied entries.
    ///
    /// A leader keeps what a follower it heard from recently still needs
    /// (one only briefly behind catches up from the log, not by a
    /// snapshot), and soon after a split what every follower needs; but
    /// never more than `raft.log_kept_for_followers_max` entries behind the
    /// applied index: a follower that far behind gets a snapshot anyway.
    pub fn maybe_compact_log(&mut self, batch: &mut WriteBatch, rc: &RaftConfig) {
        let truncated = self.raw_node.store().truncated_index();
        if self.applied_index.saturating_sub(truncated) < rc.log_compact_entries {
            return;
        }
        let mut to = self.applied_index - rc.log_retain_entries;
        // Soon after a split, a replica that has not reached it must get
        // it from the log, not from a snapshot (`split.rs`): the leader
        // keeps what every replica needs, active or not, and a follower
        // (which cannot tell, and may lead next) keeps its log.
        let split_recent = self.last_split_index != 0
            && self.applied_index.saturating_sub(self.last_split_index) <= rc.log_kept_for_followers_max;
        if split_recent && !self.is_leader() {
            return;
        }
        if self.is_leader() {
            let needed = self
                .raw_node
                .raft
                .prs()
                .iter()
                .filter(|(id, p)| **id != self.replica_id.0 && (p.recent_active || split_recent))
                .map(|(_, p)| p.matched)
                .min();
            let floor = self.applied_index.saturating_sub(rc.log_kept_for_followers_max);
            if let Some(needed) = needed {
                to = to.min(needed.max(floor));
            }
        }
        if to <= truncated {
            return;
        }
        if let Err(e) = self.raw_node.mut_store().stage_compact(batch, to) {
            tracing::warn!(shard = %self.shard_id, "log compaction to {to} skipped: {e}");
        }
    }

    // --- Garbage collection ------------------------------------------------

    /// Raises the GC watermark to `watermark` if it is above the current
    /// one, and starts a round there unless it can find nothing (module
    /// docs); `now_latest` is `TT.now().latest`.
    pub fn start_gc(&mut self, watermark: Timestamp, now_latest: Timestamp, batch: &mut WriteBatch) {
        if watermark <= self.shared.gc_watermark() {
            return;
        }
        // Raise first, delete after (mvcc.rs explains why).
        self.set_gc_watermark(watermark, batch);
        self.gc.watermark_raised(watermark, now_latest, self.descriptor.start_key.clone());
    }

    /// This replica's split made `child`: what it knows of the versions
    /// the child inherits.
    pub(crate) fn gc_state_for_child(&self) -> gc::GcState {
        self.gc.for_child()
    }

    /// Sets what this replica knows of its versions (`GcState`).
    pub(crate) fn set_gc_state(&mut self, state: gc::GcState) {
        self.gc = state;
    }

    /// Runs one GC step of at most `versions_max` versions (at least one
    /// key's), if a round is in progress; returns how many it examined.
    pub fn gc_step(&mut self, batch: &mut WriteBatch, versions_max: usize) -> usize {
        if versions_max == 0 {
            return 0;
        }
        let Some((_, from)) = &self.gc.cursor else { return 0 };
        match mvcc::gc_step(
            &self.engine,
            batch,
            from,
            &self.descriptor.end_key,
            self.shared.gc_watermark(),
            versions_max,
        ) {
            Ok(step) => {
                self.gc.stepped(step.next_key);
                step.examined
            }
            // The round is abandoned: the next one runs in full.
            Err(e) => {
                self.gc.cursor = None;
                tracing::warn!(shard = %self.shard_id, "garbage collection step failed: {e}");
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn at(seconds: u64) -> Timestamp {
        Timestamp::from_nanos(seconds * SECOND)
    }

    /// Runs a round at `watermark` to its end, if one is needed; says
    /// whether it ran.
    fn round(gc: &mut GcState, watermark: Timestamp, now: Timestamp) -> bool {
        let needed = gc.round_needed(watermark, now);
        if needed {
            gc.begin_round(watermark, Vec::new());
            gc.cursor = None;
        }
        gc.swept = Some(watermark);
        needed
    }

    /// Goal: a replica that started empty scans only once a version it
    /// wrote is at or below the watermark, and again after a round only
    /// for what was written since.
    #[test]
    fn an_empty_replica_scans_only_what_it_wrote_below_the_watermark() {
        let mut gc = GcState::empty();
        assert!(!round(&mut gc, at(10), at(3610)), "nothing written");
        gc.note_written(at(100));
        gc.note_written(at(200));
        assert!(!round(&mut gc, at(50), at(3650)), "writes above the watermark only");
        assert!(round(&mut gc, at(100), at(3700)), "a write at the watermark");
        assert!(round(&mut gc, at(150), at(3750)), "the write at 100 s shares its second with the watermark's");
        assert!(!round(&mut gc, at(199), at(3799)), "the next write is above");
        assert!(round(&mut gc, at(250), at(3850)));
        assert!(!round(&mut gc, at(300), at(3900)), "the round at 250 s saw everything below it");
    }

    /// Goal: a write at or below the watermark of a round already running
    /// (the round may have passed its key) makes the next round run.
    #[test]
    fn a_write_during_a_round_below_its_watermark_is_not_forgotten() {
        let mut gc = GcState::empty();
        gc.note_written(at(5));
        assert!(gc.round_needed(at(20), at(3620)));
        gc.begin_round(at(20), Vec::new());
        gc.note_written(at(7));
        gc.cursor = None;
        gc.swept = Some(at(20));
        assert!(round(&mut gc, at(30), at(3630)));
        assert!(!round(&mut gc, at(40), at(3640)));
    }

    /// Goal: versions the replica did not see written (a restart, a
    /// snapshot) are scanned for twice: at once, and by the first round
    /// past the time it learned of them, plus the margin; not by every
    /// round in between (module docs), unless its own writes call for one.
    #[test]
    fn unseen_versions_are_scanned_for_at_once_and_once_past_them() {
        let margin = limits::GC_UNTRACKED_MARGIN.as_secs();
        let mut gc = GcState::default();
        assert!(round(&mut gc, at(10), at(1000)), "restarted: unknown versions");
        assert!(!round(&mut gc, at(70), at(1060)), "their garbage waits for a round past them");
        assert!(!round(&mut gc, at(999 + margin), at(2000)), "still below what it learned at 1000 s");
        assert!(round(&mut gc, at(1000 + margin), at(2100)), "the round that reaches what it learned");
        assert!(!round(&mut gc, at(1001 + margin), at(3000)));
        gc.forget_versions();
        assert!(round(&mut gc, at(1100 + margin), at(4000)), "a snapshot replaced the versions");
        gc.note_written(at(1999));
        assert!(round(&mut gc, at(2000), at(4100)), "a version it wrote is below the watermark");
        assert!(!round(&mut gc, at(3999 + margin), at(4900)));
        assert!(round(&mut gc, at(4000 + margin), at(5000)));
        assert!(!round(&mut gc, at(4001 + margin), at(6000)));
    }

    /// Goal: a round still running when the watermark rises again goes
    /// on to its end, rather than starting over (a round longer than the
    /// GC interval would never end), and counts as swept only up to the
    /// watermark it began at: what was written between the two calls for
    /// another round.
    #[test]
    fn a_long_round_ends_and_counts_to_its_own_watermark() {
        let mut gc = GcState::empty();
        gc.note_written(at(5));
        gc.watermark_raised(at(20), at(3620), b"a".to_vec());
        gc.stepped(Some(b"m".to_vec()));
        gc.note_written(at(25));
        gc.watermark_raised(at(30), at(3630), b"a".to_vec());
        assert_eq!(gc.cursor, Some((at(20), b"m".to_vec())), "the round goes on from where it was");
        gc.stepped(None);
        assert_eq!(gc.swept, Some(at(20)));
        gc.watermark_raised(at(40), at(3640), b"a".to_vec());
        assert_eq!(gc.cursor, Some((at(40), b"a".to_vec())), "the write at 25 s calls for a round");
        gc.stepped(None);
        gc.watermark_raised(at(50), at(3650), b"a".to_vec());
        assert_eq!((gc.cursor.clone(), gc.swept), (None, Some(at(50))), "nothing left to find");
    }

    /// Goal: the collector's budget grows with time at its rate, stops
    /// growing at the burst, and what a step overspent (a key's versions
    /// are examined together) is paid back first.
    #[test]
    fn the_budget_is_earned_with_time_up_to_a_burst() {
        let t0 = Instant::now();
        let rate = limits::GC_VERSIONS_PER_SECOND_MAX as usize;
        let mut budget = GcBudget::default();
        budget.earn(t0);
        assert_eq!(budget.available(), 0, "nothing before time passes");
        budget.earn(t0 + Duration::from_millis(10));
        assert_eq!(budget.available(), rate / 100);
        budget.spend(rate / 100 + 500);
        assert_eq!(budget.available(), 0, "overspent");
        budget.earn(t0 + Duration::from_millis(20));
        assert_eq!(budget.available(), rate / 100 - 500);
        budget.earn(t0 + Duration::from_secs(3600));
        assert_eq!(budget.available(), limits::GC_VERSIONS_BURST_MAX as usize);
    }

    /// Goal: a split's child scans when its parent would have.
    #[test]
    fn a_child_knows_what_its_parent_knew() {
        let mut parent = GcState::empty();
        parent.note_written(at(100));
        let mut child = parent.for_child();
        assert!(round(&mut child, at(150), at(3750)));
        assert!(!round(&mut child, at(200), at(3800)));
        assert!(!round(&mut GcState::empty().for_child(), at(100), at(3700)));
    }
}
