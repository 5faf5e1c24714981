//! Installing a snapshot from the leader on a replica: its data file
//! (built and shipped by `storage/snapshot.rs`) and its records, staged
//! into one batch with a marker, then ingested (checklist item 6).

use super::*;

impl Replica {
    /// A snapshot message arrived with its data file at `file` (none for
    /// a shard without data); kept until the snapshot is installed or a
    /// newer one arrives.
    pub fn snapshot_arrived(&mut self, snapshot_id: u64, file: Option<PathBuf>) {
        if let Some((_, Some(old))) = self.incoming_snapshot.replace((snapshot_id, file)) {
            let _ = std::fs::remove_file(old);
        }
    }

    /// Installs a snapshot from the leader (`storage/snapshot.rs`): into `batch`
    /// its transaction records, log position, conf state, apply state, GC
    /// watermark and the deletion of the shard's old data, with a marker
    /// naming the data file; the caller ingests the file once the batch is
    /// written ([`Replica::finish_install`]). Readers of the shard refuse
    /// until then.
    pub fn stage_snapshot(
        &mut self,
        snap: &Snapshot,
        batch: &mut WriteBatch,
        completions: &mut Vec<Completion>,
    ) -> Option<PathBuf> {
        let metadata = snap.metadata.clone().unwrap_or_default();
        // Checked when the message arrived (`validate_incoming`).
        let data: proto::storage::ShardSnapshot =
            prost::Message::decode(snap.data.as_slice()).expect("snapshot data was validated on receipt");
        let file = match self.incoming_snapshot.take() {
            Some((id, file)) if id == data.snapshot_id => file,
            other => {
                // raft-rs hands out only snapshots stepped here, and each is
                // stepped only once its file has arrived.
                panic!("{}: snapshot {} installed without its data file ({other:?})", self.shard_id, data.snapshot_id)
            }
        };
        assert_eq!(file.is_some(), data.data_bytes > 0, "{}: snapshot data file and size disagree", self.shard_id);
        let descriptor = match data.descriptor.clone() {
            Some(d) => wire::descriptor_from_proto(d),
            None => self.descriptor.clone(),
        };
        self.shared.install_seq().begin();
        self.raw_node.mut_store().stage_snapshot(batch, &metadata);

        // Raise the watermark in memory before any version is replaced.
        let watermark = self.shared.gc_watermark().max(Timestamp::from_nanos(data.gc_watermark));
        self.set_gc_watermark(watermark, batch);
        self.gc.forget_versions();

        let cf = self.engine.cf(CF_DATA);
        let (lower, upper) = range_bounds(&descriptor.start_key, &descriptor.end_key);
        batch.delete_range_cf(cf, lower, upper);
        if let Some(path) = &file {
            let marker = raft_key(self.shard_id, RaftKey::PendingIngest);
            batch.put_cf(self.engine.cf(CF_RAFT), marker, path.as_os_str().as_bytes());
        }
        // The shard's transactions: replace the records and the state.
        let txn_cf = self.engine.cf(CF_TXN);
        for kind in [TxnKey::Prepared, TxnKey::Decision] {
            let (lo, hi) = txn_kind_bounds(self.shard_id, kind);
            batch.delete_range_cf(txn_cf, lo, hi);
        }
        let mut prepared = Vec::new();
        for p in &data.prepared {
            match command::prepared_from_proto(p.clone()) {
                Ok(record) => {
                    batch.put_cf(
                        txn_cf,
                        txn_key(self.shard_id, TxnKey::Prepared, record.txn.0),
                        prost::Message::encode_to_vec(p),
                    );
                    prepared.push(record);
                }
                Err(e) => tracing::error!(shard = %self.shard_id, "snapshot with a bad prepared record: {e}"),
            }
        }
        let mut decisions = Vec::new();
        for d in &data.decisions {
            let (Ok(txn), Some(record)) = (command::txn_id_from(&d.txn_id), &d.decision) else { continue };
            batch.put_cf(
                txn_cf,
                txn_key(self.shard_id, TxnKey::Decision, txn.0),
                prost::Message::encode_to_vec(record),
            );
            decisions.push((txn, command::decision_from_proto(record)));
        }
        let max_applied = self.txns.safe_time().max_applied().max(Timestamp::from_nanos(data.max_applied_ts));
        let forgets = self.txns.forgets_timestamps_on_leader_change();
        self.txns = ShardTxns::restore(self.shard_id, max_applied, prepared, decisions);
        if forgets {
            self.txns.unsafe_forget_timestamps_on_leader_change();
        }
        self.published_generation = None;

        self.applied_index = metadata.index;
        self.stage_apply_state(batch);
        let record = proto::storage::ReplicaRecord {
            descriptor: Some(wire::descriptor_to_proto(&descriptor)),
            replica_id: self.replica_id.0,
        };
        batch.put_cf(
            self.engine.cf(CF_RAFT),
            raft_key(self.shard_id, RaftKey::Replica),
            prost::Message::encode_to_vec(&record),
        );
        self.shared.set_descriptor(descriptor.clone());
        self.descriptor = descriptor;
        // Proposals whose index the snapshot jumped over: applied or not,
        // this replica cannot tell.
        let remaining = self.proposals.split_off(&(metadata.index + 1));
        for (_, p) in std::mem::replace(&mut self.proposals, remaining) {
            if let Some(reply) = p.req.and_then(|r| self.replies.remove(&r)).map(|p| p.reply) {
                let e = TxnError::Ambiguous("replaced by a snapshot before the outcome was known".into());
                completions.push(Completion::Txn { reply, result: Err(e) });
            }
        }
        self.shared.count_snapshot_installed();
        tracing::info!(shard = %self.shard_id, index = metadata.index, bytes = data.data_bytes, "installing snapshot");
        file
    }

    /// The batch of [`Replica::stage_snapshot`] is written: ingest its data
    /// file (if any), drop the marker (into `batch`), let readers in.
    pub fn finish_install(&mut self, file: Option<&Path>, batch: &mut WriteBatch) {
        if let Some(path) = file {
            ingest_or_stop(&self.engine, self.shard_id, path);
            batch.delete_cf(self.engine.cf(CF_RAFT), raft_key(self.shard_id, RaftKey::PendingIngest));
        }
        self.shared.install_seq().end();
    }
}
