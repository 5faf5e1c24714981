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
//!
//! A confirmed round also gives the leader a lease (`lease.rs`): while it
//! holds, queued reads skip the round and wait for the committed index
//! ([`ReadQueue::serve_queued`]), and a round with no reads of its own
//! renews the lease before it ends ([`ReadQueue::start_renewal`]).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

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
    /// Rounds under way: when each began, in which term, and its reads.
    confirming: BTreeMap<u64, Round>,
    awaiting_apply: VecDeque<(u64, Vec<ReadReply>)>,
}

/// One ReadIndex round under way.
struct Round {
    started: Instant,
    term: u64,
    batch: Vec<ReadReply>,
}

impl ReadQueue {
    pub fn len(&self) -> usize {
        self.queued.len()
            + self.confirming.values().map(|r| r.batch.len()).sum::<usize>()
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

    /// Whether reads are queued for the next round.
    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Takes the queued reads as one batch for a round begun at `now` in
    /// `term`; returns the context to pass to raft-rs `read_index`, or
    /// `None` if nothing is queued.
    pub fn start_batch(&mut self, now: Instant, term: u64) -> Option<Vec<u8>> {
        if self.queued.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.queued);
        Some(self.start_round(now, term, batch))
    }

    /// A round with no reads, to renew the lease, unless one is already
    /// under way; returns its context.
    pub fn start_renewal(&mut self, now: Instant, term: u64) -> Option<Vec<u8>> {
        self.confirming.is_empty().then(|| self.start_round(now, term, Vec::new()))
    }

    fn start_round(&mut self, started: Instant, term: u64, batch: Vec<ReadReply>) -> Vec<u8> {
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        self.confirming.insert(ctx, Round { started, term, batch });
        ctx.to_be_bytes().to_vec()
    }

    /// Serves the queued reads at `committed` (the leader holds a lease):
    /// each waits until that index is applied.
    pub fn serve_queued(&mut self, committed: u64) {
        if self.queued.is_empty() {
            return;
        }
        // Indexes in the queue only grow: an earlier round's index was
        // the committed index when it began. A round still being
        // confirmed may later queue a lower one behind this; it then
        // waits for this one, which is later, never wrong.
        self.awaiting_apply.push_back((committed, std::mem::take(&mut self.queued)));
    }

    /// raft-rs confirmed the round `ctx` at committed index `index`;
    /// returns when the round began and in which term (for the lease).
    pub fn confirmed(&mut self, ctx: &[u8], index: u64) -> Option<(Instant, u64)> {
        let bytes = <[u8; 8]>::try_from(ctx).ok()?;
        let round = self.confirming.remove(&u64::from_be_bytes(bytes))?;
        if !round.batch.is_empty() {
            self.awaiting_apply.push_back((index, round.batch));
        }
        Some((round.started, round.term))
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
        let unconfirmed =
            self.queued.drain(..).chain(std::mem::take(&mut self.confirming).into_values().flat_map(|r| r.batch));
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
        let now = Instant::now();
        q.push(tx1, &mut out);
        q.push(tx2, &mut out);
        let ctx = q.start_batch(now, 1).unwrap();
        assert_eq!(q.start_batch(now, 1), None);
        let (tx3, mut rx3) = oneshot::channel();
        q.push(tx3, &mut out);
        let ctx3 = q.start_batch(now, 1).unwrap();
        assert_eq!(q.confirmed(&ctx, 10), Some((now, 1)));
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
        let ctx = q.start_batch(Instant::now(), 1).unwrap();
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

    #[test]
    fn reads_under_a_lease_wait_for_the_committed_index_and_renewals_carry_no_reads() {
        let mut q = ReadQueue::default();
        let mut out = Vec::new();
        let now = Instant::now();
        let renewal = q.start_renewal(now, 2).unwrap();
        assert_eq!(q.start_renewal(now, 2), None, "one renewal at a time");
        let (tx, mut rx) = oneshot::channel();
        q.push(tx, &mut out);
        assert!(q.has_queued());
        q.serve_queued(9);
        assert!(!q.has_queued());
        assert_eq!(q.confirmed(&renewal, 8), Some((now, 2)));
        q.release_applied(8, Timestamp::from_nanos(1), &mut out);
        send_all(&mut out);
        assert!(rx.try_recv().is_err(), "index 9 is not applied yet");
        q.release_applied(9, Timestamp::from_nanos(2), &mut out);
        send_all(&mut out);
        assert_eq!(rx.try_recv().unwrap().unwrap(), Timestamp::from_nanos(2));
        assert!(q.is_empty());
    }
}
