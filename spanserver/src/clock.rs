//! Clock health at run time: sample the peers, judge, and refuse
//! timestamped work while this server's clock is not trusted.
//!
//! TrueTime promises that true time lies within `±epsilon` of this
//! server's clock. If the clock leaves that bound, commit timestamps,
//! commit-wait and read timestamps go wrong silently. So a server keeps
//! checking its clock against its peers' (`truetime::health` decides from
//! round-trip samples, Marzullo-style) and, while it disagrees with a
//! quorum by more than epsilon, stops handing out timestamps and serving
//! timestamped reads: requests get `Unavailable` with the reason, which
//! `spandb status` and the log also show. It resumes once it agrees again.
//!
//! ```text
//!   monitor task, every SAMPLE_PERIOD:    Peer.ReadClock ──> each peer
//!     sent / peer reading / received  ──> ClockHealth::record
//!     verdict(now) ──> ClockGuard { healthy, reason, baseline }
//!
//!   every request, before and after each clock-dependent wait:
//!     ClockGuard::check(): healthy, and the clock has moved in step with
//!     the monotonic clock since the baseline (no jump)
//! ```
//!
//! # Jumps between samples
//!
//! A verdict is only as new as its samples, and a clock can be stepped at
//! any moment (an operator, a bad NTP step, the jepsen clock nemesis). So
//! [`ClockGuard::check`] also compares how far the clock and the monotonic
//! clock (`Instant`) have moved since the last verdict: if they differ by
//! more than [`ClockGuard::jump_tolerance`], the clock jumped. The server
//! then refuses at once, forgets every sample (they were measured against
//! the old clock), and samples again right away; one round trip later the
//! fresh verdict decides. A jump that stays within epsilon costs that round
//! trip of refusals; one that leaves it keeps the server refusing.
//!
//! Where the checks sit (`requests.rs`): on entry of every request that reads
//! or assigns a timestamp, and again after every wait whose end the clock
//! decides (commit-wait, the visibility wait of reads), because the clock
//! may have jumped during the wait. A write whose commit-wait ended on a
//! distrusted clock is answered `Ambiguous` (it is committed; its
//! acknowledgement would not be trustworthy); a read is refused. The event
//! loop asks before proposing a closed timestamp.
//!
//! # Invariants
//!
//! - While `check` fails, no request is served a timestamp from this
//!   server's clock, and no answer that waited on it leaves.
//! - A verdict is healthy only if a quorum of the cluster's clocks, ours
//!   among them, agree within epsilon (`truetime::health`), from samples
//!   taken after the last jump.
//!
//! # Limits and caveats
//!
//! [`SAMPLE_PERIOD`] bounds how stale a verdict is; `truetime::health`
//! bounds sample age and round trip. A server cut off from its peers for
//! longer than `SAMPLE_AGE_MAX` has no fresh samples and refuses
//! (availability traded for safety; a one-server cluster is its own
//! quorum). An offset between epsilon and about `3 epsilon + RTT` can go
//! unnoticed (see `truetime::health`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use truetime::health::{ClockHealth, ClockProblem, ClockSample, Verdict};
use truetime::{Timestamp, TrueTime};

use crate::error::Error;
use crate::limits;
use crate::peers::Peers;
use meta::ServerId;

/// How often the monitor samples every peer (and at once after a jump).
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(200);

/// Smallest clock jump that makes the server distrust its samples: NTP's
/// slewing moves the clock against the monotonic clock by at most 500 ppm,
/// 0.1 ms per sample period.
const JUMP_TOLERANCE_MIN: Duration = Duration::from_micros(500);

/// What the monitor last concluded, read by every request.
pub struct ClockGuard {
    tt: TrueTime,
    /// Off: every check fails (`unsafe_testing.ignore_clock_health` on).
    enforce: bool,
    healthy: AtomicBool,
    /// Clock and monotonic readings taken together with the verdict: what
    /// every check measures a jump from. Apart from `state`, so checks
    /// (every request) share it without taking turns.
    baseline: RwLock<Reading>,
    state: Mutex<GuardState>,
    /// Wakes the monitor early (a jump was seen, or it must stop).
    wake: Notify,
    /// The server is stopping: the monitor ends.
    stopped: AtomicBool,
    /// Peers whose own verdict was healthy at their last sample: where an
    /// unhealthy server hands its leaderships.
    trusted_peers: Mutex<BTreeSet<ServerId>>,
    /// When each peer last answered a sample (None before the first
    /// round): which servers are up, as far as this one can tell.
    answered_at: Mutex<Option<BTreeMap<ServerId, Instant>>>,
}

struct GuardState {
    /// The verdict's one-line text, for errors and `spandb status`.
    reason: String,
    /// A check saw a jump: the monitor must forget its samples.
    jumped: bool,
    /// The last verdict found this clock off from a quorum of the others:
    /// this server, not the network, is at fault.
    off_from_quorum: bool,
}

impl ClockGuard {
    /// A guard that refuses until the monitor's first verdict (a one-server
    /// cluster gets it at once).
    pub fn new(tt: TrueTime, enforce: bool) -> Arc<ClockGuard> {
        let baseline = Reading::take(&tt);
        Arc::new(ClockGuard {
            tt,
            enforce,
            healthy: AtomicBool::new(false),
            baseline: RwLock::new(baseline),
            state: Mutex::new(GuardState {
                reason: "UNHEALTHY: no clock samples from peers yet; not serving timestamps".into(),
                jumped: false,
                off_from_quorum: false,
            }),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            trusted_peers: Mutex::new(BTreeSet::new()),
            answered_at: Mutex::new(None),
        })
    }

    /// A guard that trusts its clock from the start and stays so, jumps
    /// included: for a driver that runs no monitor because it controls
    /// every clock (the stepped clusters, whose simulated time is not the
    /// monotonic clock's). A server never uses it.
    pub fn trusted_without_monitor(tt: TrueTime) -> Arc<ClockGuard> {
        let guard = ClockGuard::new(tt, false);
        guard.healthy.store(true, Ordering::SeqCst);
        guard.state.lock().expect("clock guard lock").reason = "trusted: no monitor (simulation)".into();
        guard
    }

    /// Ends the monitor (the server is stopping).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// How far the clock may move apart from the monotonic clock between
    /// two verdicts before it counts as a jump: a quarter of epsilon, at
    /// least `JUMP_TOLERANCE_MIN`.
    pub fn jump_tolerance(&self) -> Duration {
        (self.tt.epsilon() / 4).max(JUMP_TOLERANCE_MIN)
    }

    /// `Ok` if this server may hand out timestamps and serve timestamped
    /// reads now; otherwise `Unavailable` with the reason.
    pub fn check(&self) -> Result<(), Error> {
        if !self.enforce {
            return Ok(());
        }
        // The common case, without the lock: healthy, and no jump since a
        // baseline (perhaps one a verdict is replacing just now: a jump
        // seen from it is checked again below, from the current one).
        if self.healthy.load(Ordering::SeqCst) && self.jump_since(self.baseline()).is_none() {
            return Ok(());
        }
        let mut state = self.state.lock().expect("clock guard lock");
        if !self.healthy.load(Ordering::SeqCst) {
            return Err(Error::Unavailable(format!("clock: {}", state.reason)));
        }
        if let Some(jump) = self.jump_since(self.baseline()) {
            self.healthy.store(false, Ordering::SeqCst);
            state.jumped = true;
            state.reason = format!(
                "UNHEALTHY: the clock jumped by {} ms since the last check; checking it against peers again",
                jump_ms(jump)
            );
            tracing::warn!("{}", state.reason);
            self.wake.notify_one();
            return Err(Error::Unavailable(format!("clock: {}", state.reason)));
        }
        Ok(())
    }

    /// Whether the guard lets timestamped work through now.
    pub fn is_healthy(&self) -> bool {
        self.check().is_ok()
    }

    /// Where this server should hand the leaderships it holds: peers that
    /// trusted their own clocks at their last sample, if a quorum found
    /// this server's clock off (not while it merely re-checks after a jump,
    /// which takes one round trip, nor while it cannot reach its peers).
    pub fn hand_off_to(&self) -> Option<BTreeSet<ServerId>> {
        if self.healthy.load(Ordering::SeqCst) || !self.state.lock().expect("clock guard lock").off_from_quorum {
            return None;
        }
        Some(self.trusted_peers.lock().expect("clock guard lock").clone())
    }

    /// Did `peer` answer a clock sample within the last
    /// [`limits::PEER_ANSWER_WINDOW`] (true before the first round, and without a
    /// monitor: nothing is known against it)? A membership change refuses
    /// to place a replica on a server that did not.
    pub fn peer_answers(&self, peer: ServerId) -> bool {
        self.answered_at
            .lock()
            .expect("clock guard lock")
            .as_ref()
            .is_none_or(|answered| answered.get(&peer).is_some_and(|at| at.elapsed() <= limits::PEER_ANSWER_WINDOW))
    }

    /// The last verdict, in one line.
    pub fn describe(&self) -> String {
        let text = self.state.lock().expect("clock guard lock").reason.clone();
        if self.enforce {
            text
        } else {
            format!("{text} (ignored: unsafe_testing.ignore_clock_health)")
        }
    }

    /// The current verdict's baseline.
    fn baseline(&self) -> Reading {
        *self.baseline.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// How far (signed ns) the clock moved apart from the monotonic clock
    /// since `baseline`, if more than the tolerance. Both readings are
    /// bracketed by monotonic readings ([`Reading`]), so a thread paused
    /// between reading the two clocks widens the window instead of looking
    /// like a jump; the tolerance also allows for NTP slewing
    /// ([`SLEW_PPM_MAX`]) over the time elapsed.
    fn jump_since(&self, baseline: Reading) -> Option<i128> {
        let now = Reading::take(&self.tt);
        let clock_moved = i128::from(now.clock.as_nanos()) - i128::from(baseline.clock.as_nanos());
        // Real time elapsed between the two clock readings lies in [lo, hi].
        let lo = now.before.saturating_duration_since(baseline.after).as_nanos() as i128;
        let hi = now.after.saturating_duration_since(baseline.before).as_nanos() as i128;
        let tolerance = self.jump_tolerance().as_nanos() as i128 + hi * SLEW_PPM_MAX / 1_000_000;
        if clock_moved < lo - tolerance {
            Some(clock_moved - lo)
        } else if clock_moved > hi + tolerance {
            Some(clock_moved - hi)
        } else {
            None
        }
    }

    /// Installs a verdict, with a new baseline; returns whether samples
    /// must be forgotten first (a check saw a jump since the last call).
    fn take_jumped(&self) -> bool {
        std::mem::take(&mut self.state.lock().expect("clock guard lock").jumped)
    }

    fn publish(&self, verdict: &Verdict, baseline: Reading) {
        let (healthy, reason) = (verdict.is_healthy(), verdict.to_string());
        let mut state = self.state.lock().expect("clock guard lock");
        state.off_from_quorum = matches!(verdict.problem, Some(ClockProblem::OffFromQuorum { .. }));
        *self.baseline.write().unwrap_or_else(PoisonError::into_inner) = baseline;
        let was = self.healthy.swap(healthy, Ordering::SeqCst);
        if was != healthy {
            if healthy {
                tracing::info!("clock {reason}");
            } else {
                tracing::warn!("clock {reason}");
            }
        }
        state.reason = reason;
    }
}

/// The most the OS clock moves against the monotonic clock by NTP slewing
/// (Linux slews at most 500 ppm): never a jump.
const SLEW_PPM_MAX: i128 = 500;

/// A clock reading, bracketed by monotonic readings taken just before and
/// just after it.
#[derive(Clone, Copy, Debug)]
struct Reading {
    before: Instant,
    clock: Timestamp,
    after: Instant,
}

impl Reading {
    fn take(tt: &TrueTime) -> Reading {
        let before = Instant::now();
        let clock = tt.clock().read();
        Reading { before, clock, after: Instant::now() }
    }

    #[cfg(test)]
    fn at(clock: Timestamp) -> Reading {
        let now = Instant::now();
        Reading { before: now, clock, after: now }
    }
}

fn jump_ms(ns: i128) -> String {
    format!("{:+.1}", ns as f64 / 1e6)
}

/// Samples every other server every [`SAMPLE_PERIOD`] and publishes the
/// verdict to `guard`, until [`ClockGuard::stop`].
pub fn start_monitor(guard: Arc<ClockGuard>, me: ServerId, peers: Arc<Peers>, runtime: &tokio::runtime::Handle) {
    let mut health = ClockHealth::new(peers.others(me).len() + 1, guard.tt.epsilon());
    runtime.spawn(async move {
        let mut last = Reading::take(&guard.tt);
        // Joined servers that have answered once: they count in the
        // quorum from then on, as the description's servers always do.
        // One whose join never completed (its answer was lost, it never
        // started) is sampled but never counted, so it cannot take the
        // quorum out of reach.
        let mut joined_answered: BTreeSet<ServerId> = BTreeSet::new();
        while !guard.stopped.load(Ordering::SeqCst) {
            // Servers that joined since are sampled too (`directory.rs`).
            let others = peers.others(me);
            // A jump seen here or by a request voids every sample.
            if guard.take_jumped() || guard.jump_since(last).is_some() {
                for peer in &others {
                    health.forget(peer.0);
                }
            }
            let samples = sample_all(&guard.tt, &peers, &others).await;
            let mut trusted = BTreeSet::new();
            let answering: BTreeSet<ServerId> = samples.iter().map(|(peer, _, _)| *peer).collect();
            joined_answered.extend(answering.iter().filter(|s| peers.is_joined(**s)));
            // A decommissioned server counts while it answers: once shut
            // down, it is gone from the quorum (`directory.rs`).
            // Its last sample goes with it, so a smaller quorum is made
            // of the servers still counted.
            let (counted, left): (Vec<ServerId>, Vec<ServerId>) = others
                .iter()
                .filter(|s| !peers.is_joined(**s) || joined_answered.contains(s))
                .partition(|s| !peers.is_draining(**s) || answering.contains(s));
            for server in left {
                health.forget(server.0);
            }
            health.set_cluster_size(counted.len() + 1);
            let answered_now = Instant::now();
            guard
                .answered_at
                .lock()
                .expect("clock guard lock")
                .get_or_insert_with(BTreeMap::new)
                .extend(answering.iter().map(|s| (*s, answered_now)));
            for (peer, sample, peer_trusts_itself) in samples {
                match health.record(peer.0, sample) {
                    Ok(()) if peer_trusts_itself => {
                        trusted.insert(peer);
                    }
                    Ok(()) => {}
                    Err(e) => tracing::debug!(%peer, "clock sample dropped: {e}"),
                }
            }
            *guard.trusted_peers.lock().expect("clock guard lock") = trusted;
            let baseline = Reading::take(&guard.tt);
            let verdict = health.verdict(baseline.clock);
            // A jump during the sampling voids this round too.
            if guard.jump_since(last).is_none() {
                guard.publish(&verdict, baseline);
            }
            last = baseline;
            tracing::trace!(server = %me, "clock {verdict}");
            tokio::select! {
                _ = tokio::time::sleep(SAMPLE_PERIOD) => {}
                _ = guard.wake.notified() => {}
            }
        }
    });
}

/// One sample of every other server, concurrently, with whether it trusts
/// its own clock; servers that do not answer in time give none.
async fn sample_all(tt: &TrueTime, peers: &Arc<Peers>, others: &[ServerId]) -> Vec<(ServerId, ClockSample, bool)> {
    let mut tasks = Vec::with_capacity(others.len());
    for peer in others.iter().copied() {
        let (tt, peers) = (tt.clone(), peers.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = peers.client(peer).await.ok()?;
            let sent = tt.clock().read();
            let answer =
                tokio::time::timeout(truetime::health::SAMPLE_RTT_MAX, client.read_clock(proto::ReadClockRequest {}))
                    .await;
            let received = tt.clock().read();
            match answer {
                // An answer from another server than the one asked (two
                // ids at one address) is no sample of this one.
                Ok(Ok(r)) if r.get_ref().server_id == peer.0 => {
                    let r = r.into_inner();
                    let peer_reading = Timestamp::from_nanos(r.reading);
                    Some((peer, ClockSample { sent, peer_reading, received }, r.healthy))
                }
                _ => None,
            }
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(Some(sample)) = t.await {
            out.push(sample);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use truetime::{Clock, ManualClock};

    fn healthy() -> Verdict {
        Verdict { cluster_size: 3, quorum: 2, fresh_peers: 2, agreeing: 3, offset_ns: Some((0, 0)), problem: None }
    }

    fn thirty_ms_ahead() -> Verdict {
        let problem = ClockProblem::OffFromQuorum { ahead_ns: 30_000_000, servers: 2, epsilon_ns: 10_000_000 };
        Verdict { agreeing: 1, offset_ns: None, problem: Some(problem), ..healthy() }
    }

    fn guard(epsilon_ms: u64) -> (Arc<ManualClock>, Arc<ClockGuard>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_nanos(1_000_000_000_000)));
        let tt = TrueTime::new(clock.clone(), Duration::from_millis(epsilon_ms));
        (clock, ClockGuard::new(tt, true))
    }

    /// Goal: a guard refuses until a healthy verdict, then serves; a clock
    /// jump after the verdict makes it refuse at once (before any new
    /// sample), and the monitor is told to forget its samples.
    /// Method: a manual clock (it stands still while real time passes, so
    /// epsilon is large enough, 200 ms, that the test's own pace stays far
    /// inside the 50 ms tolerance), stepped 300 ms after a healthy verdict.
    #[test]
    fn jumps_after_a_verdict_are_refused_at_once() {
        let (clock, g) = guard(200);
        assert!(matches!(g.check(), Err(Error::Unavailable(m)) if m.contains("no clock samples")));
        g.publish(&healthy(), Reading::at(clock.read()));
        g.check().unwrap();
        clock.advance(Duration::from_millis(300));
        let refused = g.check();
        // The jump is the clock's step less the real time the test took
        // meanwhile (a loaded machine may take milliseconds).
        let jumped_ms = |m: &str| m.split("jumped by +").nth(1)?.split(' ').next()?.parse::<f64>().ok();
        let jump = match &refused {
            Err(Error::Unavailable(m)) => jumped_ms(m),
            _ => None,
        };
        assert!(jump.is_some_and(|ms| (250.0..=300.0).contains(&ms)), "{refused:?}");
        assert!(g.take_jumped(), "the monitor must forget its samples");
        assert!(g.check().is_err(), "stays refused until the next verdict");
        assert_eq!(g.hand_off_to(), None, "a jump alone hands nothing away");
        g.publish(&healthy(), Reading::at(clock.read()));
        g.check().unwrap();
        assert!(!g.take_jumped());
    }

    /// Goal: a thread paused between reading the monotonic clock and the
    /// clock (a loaded machine) is not taken for a clock jump: the bracket
    /// of the readings widens the window (this misfired under a benchmark
    /// before the readings were bracketed); a real jump still shows.
    /// Method: a baseline whose clock reading may have been taken anywhere
    /// in the last 30 ms, a clock 30 ms on: no jump; 300 ms on: a jump.
    #[test]
    fn a_pause_between_readings_is_not_a_jump() {
        let (clock, g) = guard(10);
        let now = Instant::now();
        let paused = Reading {
            before: now.checked_sub(Duration::from_millis(30)).expect("a monotonic clock 30 ms old"),
            clock: clock.read(),
            after: now,
        };
        clock.advance(Duration::from_millis(30));
        assert_eq!(g.jump_since(paused), None);
        clock.advance(Duration::from_millis(270));
        assert!(g.jump_since(paused).is_some_and(|ns| ns > 200_000_000));
    }

    /// Goal: an unhealthy verdict refuses with its reason and, when this
    /// clock is the one off, asks to hand leaderships away; a guard that
    /// does not enforce (a deliberately broken server) never refuses.
    #[test]
    fn unhealthy_verdicts_refuse_unless_ignored() {
        let (clock, g) = guard(10);
        g.publish(&thirty_ms_ahead(), Reading::at(clock.read()));
        assert!(matches!(g.check(), Err(Error::Unavailable(m)) if m.contains("30 ms ahead")));
        assert!(g.hand_off_to().is_some());
        let tt = TrueTime::new(clock.clone(), Duration::from_millis(10));
        let off = ClockGuard::new(tt, false);
        off.check().unwrap();
        assert!(off.describe().contains("ignored"));
    }
}
