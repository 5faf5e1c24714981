//! Requests left unanswered for long, in the log with what they wait for.
//!
//! Every transactional request a replica takes is answered: granted,
//! replicated and applied, refused, or failed when the leadership ends
//! (`mod.rs`, `leadership.rs`). A request that sits for seconds anyway is
//! either a legitimate wait (a lock held by an older transaction, a
//! Raft group that cannot reach a quorum) or a bug that strands it. From
//! the outside both look the same: a client's deadline passes and it
//! reports the outcome as unknown. So a replica logs, once per request,
//! any that waited [`limits::SLOW_REQUEST_LOG_AFTER`], with what holds
//! it (the etcd "apply request took too long" idea):
//!
//! ```text
//!   WARN spandb::slow: a request is still unanswered: w0 (Active) parked
//!        since 2026-12-06T05:31:27.50Z, wants "k":X held by [t7]; raft:
//!        term 6, Leader, committed 27, applied 27; leader ready true,
//!        handover false, 0 waiting shard=shard1 what="write" waited=3.03s
//!   WARN spandb::slow: a request is still unanswered: proposed at index
//!        212 in term 4; raft: term 5, Follower, ... what="commit" ...
//! ```
//!
//! Requests that wait for a new leader or a handover have no request id
//! yet; the replica logs the queue once when it has been non-empty that
//! long.
//!
//! Invariant: logging only reads state; it never answers or drops a
//! request.

use super::*;

/// Where a request's answer goes, and since when it waits.
pub(super) struct Pending {
    pub(super) reply: TxnReply,
    since: Instant,
    what: &'static str,
    logged: bool,
}

impl Pending {
    pub(super) fn new(reply: TxnReply, input: &Input) -> Pending {
        Pending { reply, since: Instant::now(), what: input_name(input), logged: false }
    }
}

/// A short name for a request, for the log.
fn input_name(input: &Input) -> &'static str {
    match input {
        Input::Read { .. } => "locking read",
        Input::Prepare { .. } => "prepare",
        Input::Commit { .. } => "commit",
        Input::Write { .. } => "write",
        Input::Abort { .. } => "abort",
        Input::Decide { .. } => "decision",
        Input::Resolve { .. } => "resolution",
        _ => "input",
    }
}

impl Replica {
    /// Logs each request that has waited [`limits::SLOW_REQUEST_LOG_AFTER`]
    /// for its answer, once, with what holds it (module docs).
    pub fn log_slow_requests(&mut self, now: Instant) {
        let after = limits::SLOW_REQUEST_LOG_AFTER;
        match self.waiting_since {
            Some(since) if !self.waiting.is_empty() && now.saturating_duration_since(since) >= after => {
                tracing::warn!(
                    target: "spandb::slow",
                    shard = %self.shard_id,
                    waited = ?now.saturating_duration_since(since),
                    "{} requests wait for a new leader or a handover: {}",
                    self.waiting.len(),
                    self.raft_state()
                );
                self.waiting_since = None;
            }
            _ => {}
        }
        let slow: Vec<RequestId> = self
            .replies
            .iter()
            .filter(|(_, p)| !p.logged && now.saturating_duration_since(p.since) >= after)
            .map(|(req, _)| *req)
            .collect();
        for req in slow {
            let why = self.explain(req);
            let Some(p) = self.replies.get_mut(&req) else { continue };
            p.logged = true;
            tracing::warn!(
                target: "spandb::slow",
                shard = %self.shard_id,
                what = p.what,
                waited = ?now.saturating_duration_since(p.since),
                "a request is still unanswered: {why}"
            );
        }
    }

    /// What request `req` waits for, in words.
    fn explain(&self, req: RequestId) -> String {
        let held = if let Some(parked) = self.txns.explain(req) {
            parked
        } else if let Some((index, p)) = self.proposals.iter().find(|(_, p)| p.req == Some(req)) {
            format!("proposed at index {index} in term {}", p.term)
        } else {
            "neither parked for a lock nor proposed".to_string()
        };
        format!("{held}; {}", self.raft_state())
    }

    /// The replica's Raft and leadership state, for the log.
    fn raft_state(&self) -> String {
        let raft = &self.raw_node.raft;
        format!(
            "raft: term {}, {:?}, committed {}, applied {}; leader ready {}, handover {}, {} waiting",
            raft.term,
            raft.state,
            raft.raft_log.committed,
            self.applied_index,
            self.leader_ready(),
            self.handover.is_some(),
            self.waiting.len()
        )
    }
}
