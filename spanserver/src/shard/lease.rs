//! Leader leases: linearizable reads at the leader without a heartbeat
//! round each time (Raft thesis §6.4.1; TiKV's and CockroachDB's leases).
//!
//! A ReadIndex round (`reads.rs`) proves that the replica was still the
//! leader when a quorum answered a heartbeat it sent. That proof lasts: a
//! follower that has just heard from its leader refuses to vote for
//! anyone else (raft-rs with `check_quorum`: a vote request arriving
//! while `election_elapsed < election_timeout` is ignored, unless it is a
//! leadership transfer's). So no other leader can be elected until some
//! follower of that quorum has counted `election_ticks` ticks since the
//! heartbeat, and until then every write acknowledged anywhere was
//! committed by this leader. A read in that window may take the committed
//! index as its read index at once.
//!
//! ```text
//!   t0: read_index(ctx) ──heartbeat──> followers reset their election clocks (after t0)
//!        quorum answered ──> lease until t0 + duration
//!   read at now < until, same term, no transfer, no conf change pending
//!        ──> read index = committed, no messages
//! ```
//!
//! # Reads that skip the loop
//!
//! A request handler need not ask the loop at all: after each iteration
//! the loop publishes when the lease ends (`ReplicaProgress::
//! lease_reads_until`), only for a ready leader (it has applied every
//! entry of earlier terms) that has applied everything committed, with
//! no transfer or membership change under way. A handler that finds the
//! lease covering its own `Instant::now()` reads the applied state at
//! once. That state holds every write acknowledged before the read:
//! writes are acknowledged after they are applied and published, and no
//! other replica could have led since the lease began.
//!
//! Acknowledged is not enough: a read must also see whatever another
//! reader has already been shown. A follower applies an entry once it
//! hears the commit index, which the leader's appends carry before the
//! leader's own write is done (they leave first, `event_loop.rs`), so a
//! follower can serve a commit in a bounded-staleness read while its
//! leader has not applied it yet. So the step that lets such appends go
//! revokes the published lease whenever the commit index is past what is
//! applied (`Replica::guard_lease_reads`), and the publish after the
//! apply restores it; the time is published before the lease, so a
//! handler that finds the lease reads a time that holds everything
//! applied. (Found by `spandb jepsen`: a linearizable read 1.7 ms below a
//! commit a bounded-staleness read had returned before it began.) For
//! the same reason a transfer revokes the published lease in the step
//! that begins it, before its TimeoutNow leaves (`EventLoop::step`).
//!
//! # Commits that wrote nothing
//!
//! The same proof lets a read-write transaction that only read this
//! shard commit without a Raft round: no other replica can lead now nor
//! can have led since the term began, so the locks granted in this term
//! still stand (`txn::shard`, "A commit that wrote nothing";
//! `Replica::holds_lease`). Such a commit without a lease asks for one,
//! and the next loop iteration starts a round to get it.
//!
//! # The duration
//!
//! A follower's ticks come at least one tick apart in scheduled time and
//! never in a burst (`EventLoop::step`), so `election_ticks` ticks after
//! a reset take more than `(election_ticks - 2)` ticks of real time. The
//! lease is one tick shorter still, `(election_ticks - 3) × tick` (700 ms
//! with the defaults), for what the leader's loop spends between reading
//! its clock and serving a read, and for monotonic clocks that run at
//! slightly different rates on different machines. With fewer than four
//! election ticks there is no lease: every read takes a round.
//!
//! # What ends a lease early
//!
//! - A new term, or losing leadership: the lease is the term's.
//! - A leadership transfer. Its `TimeoutNow` makes the target campaign
//!   with a vote every follower grants regardless of its election clock,
//!   and the message may arrive late, even after the transfer was
//!   abandoned here. So once a transfer has begun, the term never leases
//!   again.
//! - A membership change proposed or applied: the quorum that answered
//!   was the old configuration's.
//! - A follower's restart: it forgets the leader it heard from and would
//!   vote at once. The event loop keeps replicas it loaded at start from
//!   voting for one election timeout (`EventLoop::quiet_after_restart`).
//!
//! # Invariants
//! - A lease is extended only by a round confirmed in the term it began
//!   in, from the time the round began.
//! - A read served from a lease gets the committed index at the time it
//!   is served, so it waits for every write committed before it.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// The instant a stepped simulation's step runs at (`tests::stepped`),
    /// which [`monotonic_now`] reads instead of the real clock.
    static SIMULATED_NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The monotonic clock as a shard's lease checks read it: the real one,
/// except on a thread where a stepped simulation set its step's instant
/// ([`simulate_now`]). The leases themselves are measured on the loop's
/// instants, which a simulation passes in; a check against the real clock
/// there made a seed's replay depend on how fast the machine ran it.
pub fn monotonic_now() -> Instant {
    SIMULATED_NOW.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Makes [`monotonic_now`] read `now` on this thread (None: the real
/// clock again). For simulations, around each step.
pub fn simulate_now(now: Option<Instant>) {
    SIMULATED_NOW.with(|c| c.set(now));
}

use crate::config::RaftConfig;

/// One replica's lease.
#[derive(Debug, Default)]
pub struct LeaderLease {
    /// How long a confirmed round lasts; `None`: leases are off.
    duration: Option<Duration>,
    /// The term and the instant the current lease ends.
    held: Option<(u64, Instant)>,
    /// A term that must never lease again (a transfer began in it).
    void_term: Option<u64>,
}

impl LeaderLease {
    pub fn new(rc: &RaftConfig) -> LeaderLease {
        LeaderLease { duration: duration(rc), held: None, void_term: None }
    }

    /// A round begun at `started` in `term` was confirmed by a quorum.
    pub fn extend(&mut self, term: u64, started: Instant) {
        let Some(duration) = self.duration else { return };
        if self.void_term == Some(term) {
            return;
        }
        let until = started + duration;
        self.held = match self.held {
            Some((t, old)) if t == term => Some((term, old.max(until))),
            _ => Some((term, until)),
        };
    }

    /// Whether a read in `term` at `now` may skip the round.
    pub fn covers(&self, term: u64, now: Instant) -> bool {
        self.held.is_some_and(|(t, until)| t == term && now < until) && self.void_term != Some(term)
    }

    /// When the lease held in `term` ends, if one is held.
    pub fn held_until(&self, term: u64) -> Option<Instant> {
        self.held.filter(|(t, _)| *t == term && self.void_term != Some(term)).map(|(_, until)| until)
    }

    /// Whether the lease held in `term` ends within half its duration of
    /// `now` (time to start a round that renews it).
    pub fn expiring(&self, term: u64, now: Instant) -> bool {
        match (self.held, self.duration) {
            (Some((t, until)), Some(duration)) if t == term => until.saturating_duration_since(now) < duration / 2,
            _ => true,
        }
    }

    /// Ends the lease (a membership change, a step-down).
    pub fn end(&mut self) {
        self.held = None;
    }

    /// Ends the lease, and no round in `term` gives one again.
    pub fn void(&mut self, term: u64) {
        self.held = None;
        self.void_term = Some(term);
    }
}

/// The lease's length for a Raft configuration (module docs), if any.
pub fn duration(rc: &RaftConfig) -> Option<Duration> {
    let ticks = u32::try_from(rc.election_ticks).ok()?.checked_sub(3).filter(|t| *t > 0)?;
    rc.lease_reads.then(|| rc.tick() * ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> (LeaderLease, Instant) {
        (LeaderLease::new(&RaftConfig::default()), Instant::now())
    }

    #[test]
    fn a_confirmed_round_covers_its_term_for_the_duration_from_its_start() {
        let (mut l, t0) = lease();
        assert!(!l.covers(7, t0), "no round yet");
        l.extend(7, t0);
        let d = duration(&RaftConfig::default()).unwrap();
        assert_eq!(d, Duration::from_millis(700));
        assert!(l.covers(7, t0 + d - Duration::from_millis(1)));
        assert!(!l.covers(7, t0 + d), "expired");
        assert!(!l.covers(8, t0), "another term");
        // An older round does not shorten it.
        l.extend(7, t0 - Duration::from_millis(500));
        assert!(l.covers(7, t0 + d - Duration::from_millis(1)));
        assert!(!l.expiring(7, t0));
        assert!(l.expiring(7, t0 + d / 2 + Duration::from_millis(1)));
    }

    #[test]
    fn a_term_with_a_transfer_never_leases_again() {
        let (mut l, t0) = lease();
        l.extend(3, t0);
        l.void(3);
        assert!(!l.covers(3, t0));
        l.extend(3, t0 + Duration::from_millis(10));
        assert!(!l.covers(3, t0 + Duration::from_millis(20)));
        // The next term is a new lease.
        l.extend(4, t0);
        assert!(l.covers(4, t0));
        l.end();
        assert!(!l.covers(4, t0));
    }

    #[test]
    fn short_election_timeouts_and_the_switch_turn_leases_off() {
        let rc = RaftConfig { election_ticks: 3, ..RaftConfig::default() };
        assert_eq!(duration(&rc), None);
        let rc = RaftConfig { lease_reads: false, ..RaftConfig::default() };
        assert_eq!(duration(&rc), None);
        let mut l = LeaderLease::new(&rc);
        let t0 = Instant::now();
        l.extend(1, t0);
        assert!(!l.covers(1, t0));
        let rc = RaftConfig { election_ticks: 4, tick_ms: 50, ..RaftConfig::default() };
        assert_eq!(duration(&rc), Some(Duration::from_millis(50)));
    }
}
