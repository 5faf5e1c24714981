//! The ONE place that orders persist → send → apply → advance for every
//! replica of the server (raft-rs 0.7's Ready contract, STYLE.md
//! checklist items 1–4, 6, 7), in the two halves of a step:
//!
//! ```text
//! take_readies (end of step):
//!          for each replica with a Ready:
//!            its leader messages go to Persist.send_first (a leader may
//!              send before it persists: Raft thesis §10.2.1)
//!            stage snapshot, entries, hard state  ──> Persist.batch
//!          the driver sends, then writes the batch, synced if any Ready
//!            must_sync   (group commit: ONE fsync)
//! advance_readies (persisted):
//!          ingest the data file of each snapshot installed by the batch
//!          for each Ready, now persisted:
//!            send persisted messages (votes, append responses)
//!            advance_append  -> LightReady
//!            stage the new committed index          ──> batch A
//!            apply committed entries (Ready's, then LightReady's) ──> batch A
//!            advance_apply; note ReadIndex confirmations; maybe compact the log
//!          GC steps, paced (shard/gc.rs)             ──> batch A
//!          write A (not synced: the log is durable, and applied index and
//!            applied data share the batch, so replay after a crash is exact)
//!          open the replicas splits in A created
//!          then answer clients (their writes are applied), ready new
//!          leaders, release reads, publish progress: into Effects
//! ```
//!
//! Nothing touches a `RawNode` between its `ready()` and `advance_append()`
//! except its storage (staging writes); [`EventLoop::step`] refuses to run
//! again before [`EventLoop::persisted`].

use std::sync::Arc;
use std::time::Instant;

use meta::ShardId;
use rocksdb::WriteBatch;

use super::removal::uncovered;
use super::{EventLoop, Persist, Persisting};
use crate::limits;
use crate::registry::ReplicaShared;
use crate::storage::keycode::range_bounds;
use crate::storage::CF_DATA;

/// Do `[a_start, a_end)` and `[b_start, b_end)` share a key (empty end:
/// unbounded)?
fn overlap(a_start: &[u8], a_end: &[u8], b_start: &[u8], b_end: &[u8]) -> bool {
    (b_end.is_empty() || a_start < b_end) && (a_end.is_empty() || b_start < a_end)
}

impl EventLoop {
    /// Takes every replica's Ready and stages what it must persist.
    pub(super) fn take_readies(&mut self, now: Instant) -> Persist {
        let mut batch = WriteBatch::default();
        let mut sync = false;
        let mut readies = Vec::new();
        let mut installs = Vec::new();
        let ranges: Vec<(ShardId, Vec<u8>, Vec<u8>)> = self
            .replicas
            .iter()
            .map(|(shard, r)| (*shard, r.descriptor()))
            .filter(|(_, d)| d.is_initialized())
            .map(|(shard, d)| (shard, d.start_key.clone(), d.end_key.clone()))
            .collect();
        for (shard, r) in self.replicas.iter_mut() {
            if !r.raw_node.has_ready() {
                continue;
            }
            let mut rd = r.raw_node.ready();
            self.outbox.push(r, rd.take_messages());
            if !rd.snapshot().is_empty() {
                let before = r.descriptor().clone();
                let file = r.stage_snapshot(rd.snapshot(), &mut batch, &mut self.completions);
                let others: Vec<&(ShardId, Vec<u8>, Vec<u8>)> = ranges.iter().filter(|(s, ..)| s != shard).collect();
                let after = r.descriptor();
                // The old range's keys the snapshot no longer holds and no
                // other replica here does go with the old data (a parent
                // that skipped its split; the child may never come here).
                if before.is_initialized() {
                    let mut kept: Vec<(Vec<u8>, Vec<u8>)> =
                        others.iter().map(|(_, s, e)| (s.clone(), e.clone())).collect();
                    kept.push((after.start_key.clone(), after.end_key.clone()));
                    for (start, end) in uncovered(&before.start_key, &before.end_key, &kept) {
                        let (lower, upper) = range_bounds(&start, &end);
                        batch.delete_range_cf(self.engine.cf(CF_DATA), lower, upper);
                    }
                }
                // Replicas here whose range the install empties for a
                // while: their reads wait for it too.
                let overlapped: Vec<Arc<ReplicaShared>> = others
                    .iter()
                    .filter(|(_, s, e)| overlap(s, e, &after.start_key, &after.end_key))
                    .filter_map(|(s, ..)| self.registry.get(*s))
                    .collect();
                for o in &overlapped {
                    o.install_seq().begin();
                }
                installs.push((*shard, file, overlapped));
            }
            r.raw_node.mut_store().stage_append(&mut batch, rd.entries());
            if let Some(hs) = rd.hs() {
                r.raw_node.mut_store().stage_hard_state(&mut batch, hs);
            }
            sync |= rd.must_sync();
            readies.push((*shard, rd));
        }
        self.persisting = Some(Persisting { now, readies, installs });
        Persist { send_first: self.outbox.take(), batch, sync }
    }

    /// Finishes the Readies of [`EventLoop::take_readies`], now persisted.
    pub(super) fn advance_readies(&mut self, persisting: Persisting) {
        let Persisting { now, readies, installs } = persisting;
        let mut completions = std::mem::take(&mut self.completions);
        let mut apply = WriteBatch::default();
        for (shard, file, overlapped) in installs {
            let r = self.replicas.get_mut(&shard).expect("replica of an install");
            r.finish_install(file.as_deref(), &mut apply);
            for o in overlapped {
                o.install_seq().end();
            }
        }
        let mut touched = Vec::with_capacity(readies.len());
        for (shard, mut rd) in readies {
            let r = self.replicas.get_mut(&shard).expect("replica of a Ready");
            self.outbox.push(r, rd.take_persisted_messages());
            let read_states = rd.take_read_states();
            let committed = rd.take_committed_entries();
            let mut light = r.raw_node.advance_append(rd);
            if let Some(commit) = light.commit_index() {
                r.raw_node.mut_store().stage_commit(&mut apply, commit);
            }
            self.outbox.push(r, light.take_messages());
            r.apply_entries(&self.tt, committed, &mut apply, &mut completions);
            r.apply_entries(&self.tt, light.take_committed_entries(), &mut apply, &mut completions);
            r.raw_node.advance_apply();
            r.confirm_reads(read_states);
            r.maybe_compact_log(&mut apply, &self.raft_config);
            r.release_cached_entries();
            touched.push(shard);
        }
        let gc_due = self.gc_due.take();
        self.gc_budget.earn(now);
        for r in self.replicas.values_mut() {
            if let Some((watermark, now_latest)) = gc_due {
                r.start_gc(watermark, now_latest, &mut apply);
            }
            let versions_max = self.gc_budget.available().min(limits::GC_VERSIONS_PER_STEP_MAX);
            self.gc_budget.spend(r.gc_step(&mut apply, versions_max));
        }
        if !apply.is_empty() {
            self.engine.write_or_stop(apply, false);
        }
        self.open_created();

        // Follow up, answer, publish.
        for &shard in &touched {
            let r = self.replicas.get_mut(&shard).expect("touched replica");
            // May propose (a new leader's waiting requests): its Ready is
            // taken in the next step, which the driver starts at once.
            r.after_iteration(&self.tt, &mut completions);
        }
        self.completions = completions;
        for (shard, to) in std::mem::take(&mut self.outbox.lost_snapshots) {
            if let Some(r) = self.replicas.get_mut(&shard) {
                r.raw_node.report_snapshot(to.0, raft::SnapshotStatus::Failure);
            }
        }
        // Only a replica that applied entries can have applied its removal.
        self.destroy_removed(touched);
    }
}
