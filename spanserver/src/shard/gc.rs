//! The replica's garbage: MVCC versions below the GC watermark, removed
//! in bounded rounds, and the Raft log behind the applied index,
//! compacted once it is long enough.

use super::*;

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

    /// Starts a GC round at `watermark` if it is above the current one.
    pub fn start_gc(&mut self, watermark: Timestamp, batch: &mut WriteBatch) {
        if watermark <= self.shared.gc_watermark() {
            return;
        }
        // Raise first, delete after (mvcc.rs explains why).
        self.set_gc_watermark(watermark, batch);
        self.gc.cursor = Some(self.descriptor.start_key.clone());
    }

    /// Runs one bounded GC step, if a round is in progress.
    pub fn gc_step(&mut self, batch: &mut WriteBatch) {
        let Some(from) = self.gc.cursor.take() else { return };
        match mvcc::gc_step(
            &self.engine,
            batch,
            &from,
            &self.descriptor.end_key,
            self.shared.gc_watermark(),
            limits::GC_VERSIONS_PER_STEP_MAX,
        ) {
            Ok(step) => self.gc.cursor = step.next_key,
            Err(e) => tracing::warn!(shard = %self.shard_id, "garbage collection step failed: {e}"),
        }
    }
}
