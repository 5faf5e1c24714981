//! `handle_readies`: the ONE place that orders persist → send → apply →
//! advance for every replica of the server (raft-rs 0.7's Ready contract,
//! STYLE.md checklist items 1–4, 6, 7).
//!
//! ```text
//! phase 1  for each replica with a Ready:
//!            send its leader messages at once (a leader may send before it
//!              persists: Raft thesis §10.2.1)
//!            stage snapshot, entries, hard state  ──> batch P
//!          write P, synced if any Ready must_sync   (group commit: ONE fsync)
//! phase 2  ingest the data file of each snapshot installed in P
//!          for each Ready, now persisted:
//!            send persisted messages (votes, append responses)
//!            advance_append  -> LightReady
//!            stage the new committed index          ──> batch A
//!            apply committed entries (Ready's, then LightReady's) ──> batch A
//!            advance_apply; note ReadIndex confirmations; maybe compact the log
//!          GC steps                                  ──> batch A
//!          write A (not synced: the log is durable, and applied index and
//!            applied data share the batch, so replay after a crash is exact)
//! phase 3  answer clients (their writes are applied), ready new leaders,
//!          release reads, publish progress, send the rest
//! ```
//!
//! Nothing touches a `RawNode` between its `ready()` and `advance_append()`
//! except its storage (staging writes).

use raft::Ready;
use rocksdb::WriteBatch;

use std::path::PathBuf;

use super::EventLoop;
use meta::ShardId;

impl EventLoop {
    pub(super) fn handle_readies(&mut self) {
        let mut completions = std::mem::take(&mut self.completions);

        // Phase 1: persist.
        let mut persist = WriteBatch::default();
        let mut must_sync = false;
        let mut readies: Vec<(ShardId, Ready)> = Vec::new();
        // Snapshot installs whose data file is ingested once `persist` is
        // written (storage/snapshot.rs).
        let mut installs: Vec<(ShardId, Option<PathBuf>)> = Vec::new();
        for (shard, r) in self.replicas.iter_mut() {
            if !r.raw_node.has_ready() {
                continue;
            }
            let mut rd = r.raw_node.ready();
            self.outbox.push(r, rd.take_messages());
            if !rd.snapshot().is_empty() {
                let file = r.stage_snapshot(rd.snapshot(), &mut persist, &mut completions);
                installs.push((*shard, file));
            }
            r.raw_node.mut_store().stage_append(&mut persist, rd.entries());
            if let Some(hs) = rd.hs() {
                r.raw_node.mut_store().stage_hard_state(&mut persist, hs);
            }
            must_sync |= rd.must_sync();
            readies.push((*shard, rd));
        }
        self.outbox.flush(&*self.transport);
        if !persist.is_empty() {
            self.write(persist, must_sync);
        }

        // Phase 2: finish installs, send, advance, apply.
        let mut apply = WriteBatch::default();
        for (shard, file) in installs {
            let r = self.replicas.get_mut(&shard).expect("replica of an install");
            r.finish_install(file.as_deref(), &mut apply);
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
            touched.push(shard);
        }
        let gc_due = self.gc_due.take();
        for r in self.replicas.values_mut() {
            if let Some(watermark) = gc_due {
                r.start_gc(watermark, &mut apply);
            }
            r.gc_step(&mut apply);
        }
        if !apply.is_empty() {
            self.write(apply, false);
        }

        // Phase 3: follow up, answer, publish.
        for shard in touched {
            let r = self.replicas.get_mut(&shard).expect("touched replica");
            // May propose (a new leader's waiting requests): its Ready is
            // handled in the next iteration, which `run` starts at once.
            r.after_iteration(&self.tt, &mut completions);
        }
        for c in completions {
            c.send();
        }
        self.outbox.flush(&*self.transport);
        for (shard, to) in std::mem::take(&mut self.outbox.lost_snapshots) {
            if let Some(r) = self.replicas.get_mut(&shard) {
                r.raw_node.report_snapshot(to.0, raft::SnapshotStatus::Failure);
            }
        }
    }
}
