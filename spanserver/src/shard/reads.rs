//! Linearizable reads at the leader, by ReadIndex (Raft thesis §6.4).
//!
//! A read must not return state older than any write acknowledged before it
//! began. The leader records its committed index, confirms with a heartbeat
//! round that it is still the leader (raft-rs `read_index`), waits until it
//! has applied that index, and only then lets the read look at its data.
//!
//! ```text
//!   queued ──flush (one read_index per batch)──> confirming ──ReadState{index}──>
//!   awaiting apply ──applied >= index──> done (handler reads RocksDB)
//! ```
//!
//! Reads that arrive in the same loop iteration share one `read_index` call
//! (one heartbeat round), so a thousand concurrent gets cost one round trip.
//! If the replica stops being leader before a batch is confirmed, raft-rs
//! forgets it; the batch is failed with `NotLeader` and the client retries at
//! the new leader. A confirmed batch stays valid after a step-down: its
//! index was the committed index while this replica was still leader.

use std::collections::{BTreeMap, VecDeque};

use tokio::sync::oneshot;
use truetime::Timestamp;

use super::Completion;
use crate::error::{Error, Result};
use crate::limits;

/// Answered with the replica's safe time once the read may proceed.
pub type ReadReply = oneshot::Sender<Result<Timestamp>>;

#[derive(Default)]
pub struct ReadQueue {
    queued: Vec<ReadReply>,
    next_ctx: u64,
    confirming: BTreeMap<u64, Vec<ReadReply>>,
    awaiting_apply: VecDeque<(u64, Vec<ReadReply>)>,
}

impl ReadQueue {
    pub fn len(&self) -> usize {
        self.queued.len()
            + self.confirming.values().map(Vec::len).sum::<usize>()
            + self.awaiting_apply.iter().map(|(_, v)| v.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a read, or refuses it (into `out`) when too many are waiting.
    pub fn push(&mut self, reply: ReadReply, out: &mut Vec<Completion>) {
        if self.len() >= limits::PENDING_READS_PER_SHARD_MAX {
            let result = Err(Error::Unavailable("too many reads waiting on this shard".into()));
            out.push(Completion::Read { reply, result });
            return;
        }
        self.queued.push(reply);
    }

    /// Takes the queued reads as one batch; returns the context to pass to
    /// raft-rs `read_index`, or `None` if nothing is queued.
    pub fn start_batch(&mut self) -> Option<Vec<u8>> {
        if self.queued.is_empty() {
            return None;
        }
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        self.confirming.insert(ctx, std::mem::take(&mut self.queued));
        Some(ctx.to_be_bytes().to_vec())
    }

    /// raft-rs confirmed the batch `ctx` at committed index `index`.
    pub fn confirmed(&mut self, ctx: &[u8], index: u64) {
        let Ok(bytes) = <[u8; 8]>::try_from(ctx) else {
            return;
        };
        if let Some(batch) = self.confirming.remove(&u64::from_be_bytes(bytes)) {
            self.awaiting_apply.push_back((index, batch));
        }
    }

    /// Releases every read whose index is applied.
    pub fn release_applied(&mut self, applied_index: u64, safe_ts: Timestamp, out: &mut Vec<Completion>) {
        while self.awaiting_apply.front().is_some_and(|(index, _)| *index <= applied_index) {
            let (_, batch) = self.awaiting_apply.pop_front().expect("checked above");
            out.extend(batch.into_iter().map(|reply| Completion::Read { reply, result: Ok(safe_ts) }));
        }
    }

    /// Fails every read not yet confirmed (the replica stopped leading).
    pub fn fail_unconfirmed(&mut self, err: &Error, out: &mut Vec<Completion>) {
        let unconfirmed = self.queued.drain(..).chain(std::mem::take(&mut self.confirming).into_values().flatten());
        out.extend(unconfirmed.map(|reply| Completion::Read { reply, result: Err(err.clone()) }));
    }

    /// Fails everything (the replica is going away).
    pub fn fail_all(&mut self, err: &Error, out: &mut Vec<Completion>) {
        self.fail_unconfirmed(err, out);
        for (_, batch) in self.awaiting_apply.drain(..) {
            out.extend(batch.into_iter().map(|reply| Completion::Read { reply, result: Err(err.clone()) }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_all(out: &mut Vec<Completion>) {
        for c in out.drain(..) {
            c.send();
        }
    }

    #[test]
    fn batches_are_confirmed_then_released_in_index_order() {
        let mut q = ReadQueue::default();
        let mut out = Vec::new();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        q.push(tx1, &mut out);
        q.push(tx2, &mut out);
        let ctx = q.start_batch().unwrap();
        assert_eq!(q.start_batch(), None);
        let (tx3, mut rx3) = oneshot::channel();
        q.push(tx3, &mut out);
        let ctx3 = q.start_batch().unwrap();
        q.confirmed(&ctx, 10);
        q.confirmed(&ctx3, 12);
        q.release_applied(11, Timestamp::from_nanos(5), &mut out);
        send_all(&mut out);
        assert_eq!(rx1.try_recv().unwrap().unwrap(), Timestamp::from_nanos(5));
        assert_eq!(rx2.try_recv().unwrap().unwrap(), Timestamp::from_nanos(5));
        assert!(rx3.try_recv().is_err());
        q.release_applied(12, Timestamp::from_nanos(6), &mut out);
        send_all(&mut out);
        assert_eq!(rx3.try_recv().unwrap().unwrap(), Timestamp::from_nanos(6));
        assert!(q.is_empty());
    }

    #[test]
    fn stepping_down_fails_only_unconfirmed_reads() {
        let mut q = ReadQueue::default();
        let mut out = Vec::new();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        q.push(tx1, &mut out);
        let ctx = q.start_batch().unwrap();
        q.confirmed(&ctx, 3);
        q.push(tx2, &mut out);
        q.fail_unconfirmed(&Error::Unavailable("stepped down".into()), &mut out);
        send_all(&mut out);
        assert!(rx2.try_recv().unwrap().is_err());
        assert!(rx1.try_recv().is_err(), "confirmed read must wait for apply, not fail");
        q.release_applied(3, Timestamp::from_nanos(1), &mut out);
        send_all(&mut out);
        assert!(rx1.try_recv().unwrap().is_ok());
    }
}
