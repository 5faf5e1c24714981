//! What a replica does as it gains and loses leadership: readying a new
//! leader for the transaction state machine, failing what the old one
//! held, handing leadership away when its clock is not trusted, and the
//! leader's closed timestamps.

use super::*;

impl Replica {
    /// This server does not trust its clock: if this replica leads, ask
    /// Raft to move the leadership to a replica on a server in `trusted`
    /// (at most once per `interval`, the election timeout, so a transfer
    /// that did not happen is tried again, not repeated in a burst).
    pub fn hand_off_leadership(
        &mut self,
        trusted: &std::collections::BTreeSet<ServerId>,
        now: Instant,
        interval: std::time::Duration,
    ) {
        if !self.is_leader() || self.last_hand_off.is_some_and(|at| now.duration_since(at) < interval) {
            return;
        }
        let target = self
            .descriptor
            .replicas
            .iter()
            .filter(|d| d.replica_id != self.replica_id && trusted.contains(&d.server_id))
            .map(|d| d.replica_id.0)
            .min();
        if let Some(target) = target {
            tracing::info!(shard = %self.shard_id, to = target, "clock not trusted: handing the leadership over");
            self.last_hand_off = Some(now);
            self.raw_node.transfer_leader(target);
        }
    }

    /// A read waits for safe time: close a timestamp soon.
    pub fn want_close(&mut self) {
        self.close_wanted = true;
    }

    /// When a wanted close may be proposed (`None`: none is wanted).
    pub fn close_due(&self, now: Instant) -> Option<Instant> {
        self.close_wanted.then(|| self.last_close_at.map_or(now, |at| at + limits::FORCED_CLOSE_INTERVAL_MIN))
    }

    /// Proposes a closed timestamp, so followers' safe time moves: if this
    /// leader has been idle for `idle_interval`, or a read wants one and
    /// the last was at least `FORCED_CLOSE_INTERVAL_MIN` ago (so a stream
    /// of reads costs a bounded number of entries, not one each).
    pub fn maybe_close_timestamp(
        &mut self,
        tt: &TrueTime,
        now: Instant,
        idle_interval: std::time::Duration,
        completions: &mut Vec<Completion>,
    ) {
        if std::mem::take(&mut self.proposed) {
            self.last_proposal_at = Some(now);
        }
        let last_proposal_at = *self.last_proposal_at.get_or_insert(now);
        if !self.leader_ready() || !self.is_leader() {
            self.close_wanted = false;
            return;
        }
        let idle = now.duration_since(last_proposal_at) >= idle_interval;
        let wanted = self.close_due(now).is_some_and(|due| now >= due);
        if !idle && !wanted {
            return;
        }
        self.close_wanted = false;
        self.last_close_at = Some(now);
        let outputs = self.step_txns(tt, Input::Close);
        self.execute(tt, outputs, None, completions);
    }

    /// Notices a change of Raft role or term at once (the loop calls this
    /// after every `step` and `tick`, before anything can be proposed), so
    /// the transaction state machine never acts as a leader it no longer is.
    pub fn observe_role(&mut self, tt: &TrueTime, completions: &mut Vec<Completion>) {
        let raft = &self.raw_node.raft;
        let leading_now = raft.state == raft::StateRole::Leader;
        let (term, last_index) = (raft.term, raft.raft_log.last_index());
        let same_term = self.leadership.is_some_and(|(t, _, _)| t == term);
        if leading_now && !same_term {
            if self.leadership.is_some() {
                self.lose_leadership(tt, completions);
            }
            self.leadership = Some((term, last_index, false));
            tracing::debug!(shard = %self.shard_id, term, "became leader");
        } else if !leading_now && self.leadership.is_some() {
            self.lose_leadership(tt, completions);
        }
    }

    fn lose_leadership(&mut self, tt: &TrueTime, completions: &mut Vec<Completion>) {
        let was_ready = self.leader_ready();
        self.leadership = None;
        if was_ready {
            let outputs = self.step_txns(tt, Input::LeaderLost);
            self.execute(tt, outputs, None, completions);
        }
        for (_, reply) in self.waiting.drain(..) {
            if let Some(reply) = reply {
                completions.push(Completion::Txn { reply, result: Err(TxnError::NotLeader) });
            }
        }
        let err = self.not_leader();
        self.reads.fail_unconfirmed(&err, completions);
        self.lease.end();
    }
}
