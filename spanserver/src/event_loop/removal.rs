//! Removing a replica from this server once it is no longer a member of
//! its shard: its data, Raft state and transaction records are deleted,
//! and a tombstone keeps its id, so that a late message for it never
//! brings it back (ids are never reused: a message for a higher id of the
//! same shard is for a newer replica on this server).
//!
//! ```text
//!   a replica leaves its shard:
//!     it applies its own removal (the descriptor no longer names it)   ─┐
//!     or a leader writes to a newer replica of the shard on this server ├─> destroy:
//!     or a restart finds it removed (the destroy was cut short)        ─┘
//!       delete its key range's versions (the parts no other replica here
//!       holds), its cf raft and cf txn keys; write the tombstone; forget it
//! ```
//!
//! Only the versions of keys no other replica on this server holds are
//! deleted: a replica that missed a split of its shard still has the
//! wider range, and the split's child may be here (created by its
//! leader's messages).

use rocksdb::WriteBatch;

use super::EventLoop;
use crate::storage::keycode::{raft_key, raft_shard_bounds, range_bounds, RaftKey};
use crate::storage::mvcc::Reader;
use crate::storage::{CF_DATA, CF_RAFT, CF_TXN};
use crate::wire;
use meta::{ReplicaId, ShardId};

impl EventLoop {
    /// Destroys each replica of `shards` whose shard no longer names it
    /// (after an iteration: the shards that applied entries in it; at
    /// start-up: all).
    pub(super) fn destroy_removed(&mut self, shards: impl IntoIterator<Item = ShardId>) {
        let removed: Vec<ShardId> =
            shards.into_iter().filter(|s| self.replicas.get(s).is_some_and(|r| r.is_removed())).collect();
        for shard in removed {
            self.destroy(shard, "it applied its removal from the shard");
        }
    }

    /// Destroys this server's replica of `shard` (module docs).
    pub(super) fn destroy(&mut self, shard: ShardId, why: &str) {
        let Some(mut replica) = self.replicas.remove(&shard) else { return };
        // Before any data goes: a read that already found the replica
        // must not see its range empty (`ReplicaShared::read_consistent`).
        if let Some(shared) = self.registry.get(shard) {
            shared.retire();
        }
        replica.fail_all(&crate::registry::replica_left(shard), &mut self.completions);
        let d = replica.descriptor().clone();
        let mut batch = WriteBatch::default();
        if d.is_initialized() {
            let others: Vec<(Vec<u8>, Vec<u8>)> = self
                .replicas
                .values()
                .map(|r| r.descriptor())
                .filter(|o| o.is_initialized())
                .map(|o| (o.start_key.clone(), o.end_key.clone()))
                .collect();
            for (start, end) in uncovered(&d.start_key, &d.end_key, &others) {
                let (lower, upper) = range_bounds(&start, &end);
                batch.delete_range_cf(self.engine.cf(CF_DATA), lower, upper);
            }
        }
        let (lo, hi) = raft_shard_bounds(shard);
        batch.delete_range_cf(self.engine.cf(CF_RAFT), lo.clone(), hi.clone());
        batch.delete_range_cf(self.engine.cf(CF_TXN), lo, hi);
        batch.put_cf(self.engine.cf(CF_RAFT), raft_key(shard, RaftKey::Tombstone), replica.replica_id.0.to_be_bytes());
        self.engine.write_or_stop(batch, true);
        self.registry.remove(shard);
        tracing::info!(%shard, replica = %replica.replica_id, "replica destroyed: {why}");
    }

    /// The highest replica id of `shard` destroyed on this server, if any.
    pub(super) fn tombstone(&self, shard: ShardId) -> Option<ReplicaId> {
        let stored = self.engine.db().get_cf(self.engine.cf(CF_RAFT), raft_key(shard, RaftKey::Tombstone));
        match stored {
            Ok(Some(b)) => <[u8; 8]>::try_from(b.as_slice()).ok().map(|b| ReplicaId(u64::from_be_bytes(b))),
            Ok(None) => None,
            Err(e) => crate::storage::stop_on_storage_failure(&format!("{shard}: reading its tombstone: {e}")),
        }
    }

    /// Whether a message of `shard` for replica `to` may reach a replica
    /// here: the one here, or (none here) one not destroyed before. A
    /// leader's message (`from_a_leader`: an append, a heartbeat, a
    /// snapshot) for a newer replica than the one here destroys that one:
    /// it is stale (removed; the new one is created from the message).
    pub(super) fn admit_for(&mut self, shard: ShardId, to: ReplicaId, from_a_leader: bool) -> bool {
        if let Some(here) = self.replicas.get(&shard).map(|r| r.replica_id) {
            if to.0 > here.0 && from_a_leader {
                self.destroy(shard, "a leader writes to a newer replica of the shard on this server");
                return true;
            }
            return to == here;
        }
        self.tombstone(shard).is_none_or(|dead| to.0 > dead.0)
    }
}

/// Keys stored through `reader` that no replica record in the same view
/// holds: the first key of each stretch outside every initialized
/// replica's range that has any version. None on a healthy server: a
/// replica's data leaves with it (`EventLoop::destroy`), and a range that
/// narrows (a split, a snapshot of a parent that skipped its split)
/// changes its record in the batch that moves or deletes its data. The
/// ranges come from the records, not from the replicas in memory, because
/// those change before their batch is written. `spandb status` and
/// jepsen's placement check show what is left.
pub fn stray_keys(reader: &Reader) -> crate::error::Result<Vec<Vec<u8>>> {
    let mut held = Vec::new();
    for (_, bytes) in reader.replica_records()? {
        let record: proto::storage::ReplicaRecord = prost::Message::decode(bytes.as_slice())
            .map_err(|e| crate::error::Error::Storage(format!("a replica record does not decode: {e}")))?;
        let d = wire::descriptor_from_proto(record.descriptor.unwrap_or_default());
        if d.is_initialized() {
            held.push((d.start_key, d.end_key));
        }
    }
    let mut strays = Vec::new();
    for (start, end) in uncovered(b"", b"", &held) {
        strays.extend(reader.first_key(&start, &end)?);
    }
    Ok(strays)
}

/// The parts of `[start, end)` (empty end: unbounded) that none of
/// `others` covers, in order.
pub fn uncovered(start: &[u8], end: &[u8], others: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    // Whether a start-like key (empty: the first) is below an end-like
    // one (empty: past the last).
    let below = |a: &[u8], b: &[u8]| b.is_empty() || a < b;
    let mut covers: Vec<&(Vec<u8>, Vec<u8>)> =
        others.iter().filter(|(s, e)| below(s, end) && below(start, e) && (e.is_empty() || s < e)).collect();
    covers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    let mut cursor: Option<Vec<u8>> = Some(start.to_vec());
    for (s, e) in covers {
        let Some(c) = cursor.clone() else { break };
        if c < *s {
            out.push((c.clone(), s.clone()));
        }
        cursor = if e.is_empty() { None } else { Some(c.max(e.clone())) };
    }
    if let Some(c) = cursor {
        if below(&c, end) {
            out.push((c, end.to_vec()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str, e: &str) -> (Vec<u8>, Vec<u8>) {
        (s.as_bytes().to_vec(), e.as_bytes().to_vec())
    }

    /// Goal: a destroyed replica's range minus the other replicas' ranges
    /// on the server: nothing covered, partly, wholly, unbounded ends.
    #[test]
    fn uncovered_parts_of_a_range() {
        assert_eq!(uncovered(b"a", b"z", &[]), vec![r("a", "z")]);
        assert_eq!(uncovered(b"a", b"z", &[r("m", "")]), vec![r("a", "m")]);
        assert_eq!(uncovered(b"a", b"z", &[r("", "c"), r("f", "g")]), vec![r("c", "f"), r("g", "z")]);
        assert_eq!(uncovered(b"a", b"", &[r("m", "p")]), vec![r("a", "m"), r("p", "")]);
        assert_eq!(uncovered(b"a", b"", &[r("", "")]), Vec::<(Vec<u8>, Vec<u8>)>::new());
        assert_eq!(uncovered(b"a", b"m", &[r("m", "z"), r("", "a")]), vec![r("a", "m")]);
        assert_eq!(uncovered(b"", b"", &[r("b", "c")]), vec![r("", "b"), r("c", "")]);
    }

    /// Goal: stray keys are the first stored key of each stretch no
    /// replica record holds, and none when the records hold everything
    /// stored; an uninitialized replica's record holds nothing.
    #[test]
    fn stray_keys_are_the_first_stored_key_outside_every_replica() {
        use crate::storage::{mvcc, Engine, Identity};
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity { cluster_id: "t".into(), server_id: 1, layout_fingerprint: "l".into() };
        let engine = Engine::open(dir.path(), &identity).unwrap();
        let mut batch = WriteBatch::default();
        for key in ["a", "g", "h", "q", "z"] {
            mvcc::put_version(&engine, &mut batch, key.as_bytes(), truetime::Timestamp::from_nanos(5), Some(b"v"));
        }
        engine.write(batch, false).unwrap();
        // The replicas here are the records in the raft column family.
        let strays = |held: &[(Vec<u8>, Vec<u8>)]| {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(engine.cf(CF_RAFT), vec![0u8], vec![0xffu8; 9]);
            for (i, (start, end)) in held.iter().enumerate() {
                let shard = ShardId(i as u64 + 1);
                let d = meta::ShardDescriptor {
                    shard_id: shard,
                    start_key: start.clone(),
                    end_key: end.clone(),
                    ..Default::default()
                };
                let record =
                    proto::storage::ReplicaRecord { descriptor: Some(wire::descriptor_to_proto(&d)), replica_id: 1 };
                batch.put_cf(
                    engine.cf(CF_RAFT),
                    raft_key(shard, RaftKey::Replica),
                    prost::Message::encode_to_vec(&record),
                );
                batch.put_cf(engine.cf(CF_RAFT), raft_key(shard, RaftKey::Tombstone), 7u64.to_be_bytes());
            }
            engine.write(batch, false).unwrap();
            stray_keys(&Reader::new(&engine)).unwrap()
        };
        assert_eq!(strays(&[r("", "")]), Vec::<Vec<u8>>::new());
        assert_eq!(strays(&[r("", "g"), r("p", "")]), vec![b"g".to_vec()]);
        assert_eq!(strays(&[r("b", "p")]), vec![b"a".to_vec(), b"q".to_vec()]);
        assert_eq!(strays(&[r("b", "p"), r("a", "a")]), vec![b"a".to_vec(), b"q".to_vec()], "uninitialized");
        assert_eq!(strays(&[]), vec![b"a".to_vec()]);
    }
}
