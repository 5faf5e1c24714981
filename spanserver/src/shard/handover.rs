//! Handing a busy shard's leadership over without aborting what is open
//! there: drain first.
//!
//! A leader change loses the leader's in-memory read locks, so it aborts
//! the transactions holding them (they retry). A placement driver that
//! moved a leadership only while the shard was idle would never move a
//! shard under constant load; one that moved it at once would abort every
//! transaction open there. So a transfer may ask for a drain
//! (`Admin.TransferLeader`'s `drain_ms`, the LoopMsg's `drain`):
//!
//! ```text
//!   asked (drain d, to r2) ── nothing open ──────────────────> raft.transfer_leader(r2)
//!     │ something open                                               │
//!   draining until now + d: requests that would open new      leadership moves: the
//!   work wait in `waiting`; the open ones go on and end        waiting requests are
//!     │ nothing open, or the deadline (without only_if_idle)   answered NotLeader and
//!     └──────────────────────────────────────────────────────> follow the new leader
//!     │ the deadline, with only_if_idle or a long transaction  │ raft gave up (r2 did not
//!   given up: the waiting requests run here <─────────────────┘  catch up in an election
//!                                                                timeout): as if given up
//! ```
//!
//! A transfer without `only_if_idle` (the placement driver's moves for
//! load) hands over what is still open at the deadline: transactions
//! caught mid-way (waiting on another shard's drain, a slow client) abort
//! and retry, cheaply. Not one open for
//! [`limits::HANDOVER_SPARES_OPEN_FOR`] or more: a long transaction (a
//! bulk load's block, a report) would lose the most work, and under
//! repeated moves might never finish, for a move that can wait. So the
//! transfer gives up as if asked only if idle, and the driver asks again
//! in a later round.
//!
//! "Open" is what [`Replica::has_open_transactions`] counts: active,
//! parked or prepared transactions. Work that continues an open
//! transaction (its later reads, its commit, a decision, a heartbeat) is
//! admitted during the drain, so it can end; only inputs that would start
//! something here wait.
//!
//! Invariants:
//! - At most one handover per replica at a time; a second request while
//!   one runs is ignored (the driver plans one operation per shard).
//! - A drain never outlives `until`, and the waiting requests are never
//!   stranded: a lost leadership fails them with NotLeader
//!   (`lose_leadership`), anything else re-submits them here.

use super::*;

/// A leadership transfer waiting for the shard's open transactions to end.
#[derive(Debug)]
pub(super) struct Handover {
    to: ReplicaId,
    /// When to stop waiting for the open transactions.
    until: Instant,
    /// At `until`, give up rather than hand over what is still open.
    only_if_idle: bool,
    /// Raft was asked to transfer; now waiting for the leadership to move.
    asked: bool,
}

impl Replica {
    /// Hands this shard's leadership to its replica on `to`, if this
    /// replica leads: at once, only if idle, or after a drain of at most
    /// `drain` (module docs).
    pub fn transfer_leadership(
        &mut self,
        to: ServerId,
        only_if_idle: bool,
        drain: std::time::Duration,
        now: Instant,
        tt: &TrueTime,
        completions: &mut Vec<Completion>,
    ) {
        let Some(target) = self.replicas_on(to).next().filter(|t| *t != self.replica_id) else { return };
        if !self.is_leader() || self.handover.is_some() {
            return;
        }
        if drain.is_zero() {
            if !(only_if_idle && self.has_open_transactions()) {
                self.raw_node.transfer_leader(target.0);
            }
            return;
        }
        tracing::debug!(shard = %self.shard_id, to = %target, ?drain, "draining the shard to hand its leadership over");
        self.handover = Some(Handover { to: target, until: now + drain, only_if_idle, asked: false });
        self.advance_handover(Some(now), tt, completions);
    }

    /// Would `input` start work here that a drain holds back: a plain
    /// write, or a request of a transaction not open at this shard?
    pub(super) fn held_by_handover(&self, input: &Input) -> bool {
        self.handover.is_some()
            && match input {
                Input::Write { .. } => true,
                Input::Read { txn, .. } | Input::Prepare { txn, .. } | Input::Commit { txn, .. } => {
                    !self.txns.is_open(*txn)
                }
                _ => false,
            }
    }

    /// Moves a handover on (after every iteration, with `now` at every
    /// tick): hands over once nothing is open or at the deadline, gives
    /// up at the deadline with `only_if_idle` or when Raft gave up.
    pub fn advance_handover(&mut self, now: Option<Instant>, tt: &TrueTime, completions: &mut Vec<Completion>) {
        let Some(h) = &self.handover else { return };
        if !self.is_leader() {
            // `lose_leadership` answered the waiting requests.
            self.handover = None;
            return;
        }
        if h.asked {
            if self.raw_node.raft.lead_transferee.is_none() {
                tracing::debug!(shard = %self.shard_id, "the leadership transfer did not happen; admitting again");
                self.end_handover(tt, completions);
            }
            return;
        }
        let due = now.is_some_and(|now| now >= h.until);
        if !self.has_open_transactions() || (due && !h.only_if_idle && !self.spares_a_long_transaction(tt)) {
            let to = h.to;
            if let Some(h) = &mut self.handover {
                h.asked = true;
            }
            self.raw_node.transfer_leader(to.0);
        } else if due {
            tracing::debug!(
                shard = %self.shard_id,
                "transactions still open at the drain's deadline (asked only if idle, or one open for long); not handing over"
            );
            self.end_handover(tt, completions);
        }
    }

    /// Is an active transaction open here for [`limits::HANDOVER_SPARES_OPEN_FOR`]
    /// or more? A handover at its deadline then gives up (module docs).
    fn spares_a_long_transaction(&self, tt: &TrueTime) -> bool {
        self.txns
            .oldest_active_since()
            .is_some_and(|opened| tt.now().earliest.duration_since(opened) >= limits::HANDOVER_SPARES_OPEN_FOR)
    }

    /// Ends a handover that did not move the leadership: what waited runs.
    fn end_handover(&mut self, tt: &TrueTime, completions: &mut Vec<Completion>) {
        self.handover = None;
        for (input, reply) in std::mem::take(&mut self.waiting) {
            self.submit(tt, input, reply, completions);
        }
    }
}
