//! Clock health: does our clock still agree with a quorum of the cluster?
//!
//! TrueTime promises that true time lies within `±epsilon` of a server's
//! clock reading. Nothing checks that promise by itself: a clock that drifts
//! or is stepped beyond `epsilon` keeps handing out intervals that do not
//! contain true time, and commit-wait, read timestamps and external
//! consistency silently break. So every spanserver samples every peer's
//! clock with a round trip, and a server whose clock disagrees with a quorum
//! of the cluster by more than `epsilon` stops handing out timestamps and
//! serving timestamped reads, says why, and resumes once it agrees again
//! (DESIGN.md §3, "clock health"; Spanner §3 evicts such machines).
//!
//! This module is the pure core of that check. It owns no clock and no
//! network: the server sends the requests, reads its own clock, and passes
//! every reading in. [`ClockHealth::record`] keeps the newest sample per
//! peer; [`ClockHealth::verdict`] answers "may I serve timestamps now?".
//!
//! # Model
//!
//! All offsets are signed nanoseconds (`i64`) of *true time minus our
//! clock*: an offset of `-8 ms` means our clock reads 8 ms ahead of true
//! time. Raw readings are [`Timestamp`]s (nanoseconds since the epoch, of
//! whichever clock was read).
//!
//! A [`ClockSample`] of peer P is one round trip, taken by us:
//!
//! - `sent`: our raw reading when we sent the request,
//! - `peer_reading`: P's raw reading while it handled the request,
//! - `received`: our raw reading when the answer arrived.
//!
//! P read its clock at some moment in `[sent, received]` of our clock, so
//! `P - ours` lies in `[peer_reading - received, peer_reading - sent]`. No
//! assumption is made about where in the round trip P answered, so an
//! asymmetric network delay only widens the interval, it never biases it. If
//! P is healthy its clock is within `±epsilon` of true time, so according to
//! P:
//!
//! ```text
//!   true - ours  in  [peer_reading - received - epsilon, peer_reading - sent + epsilon]
//! ```
//!
//! Our own clock claims `true - ours` in `[-epsilon, +epsilon]`. Each claim
//! is a *source* interval on one offset axis. The sources of a verdict are
//! ourselves plus every peer with a fresh sample (at most [`SAMPLE_AGE_MAX`]
//! old by our clock). With `quorum = cluster_size / 2 + 1`:
//!
//! - **healthy** if some point of our own interval lies in at least `quorum`
//!   source intervals (ours included): a quorum of clocks, ours among them,
//!   can all be right at once.
//! - **unhealthy** otherwise, with a [`ClockProblem`] a human can act on:
//!   [`ClockProblem::OffFromQuorum`] when a quorum of *other* servers agree on
//!   an offset outside our interval (our clock is the broken one, and we say
//!   by how much); [`ClockProblem::NoFreshSamples`] when no peer has answered
//!   recently; [`ClockProblem::NoQuorum`] when no quorum agrees anywhere.
//!
//! The overlap is found with Marzullo's algorithm ([`marzullo`],
//! [`marzullo_within`]), as NTP and TigerBeetle's clock do: sort the interval
//! endpoints (a start before an end at equal offsets, so intervals that only
//! touch still overlap) and sweep, counting open intervals.
//!
//! # Example
//!
//! Three servers, `epsilon` = 10 ms, every round trip 1 ms (0.5 ms each way).
//! True time is 100 s. Our clock runs 8 ms ahead, peer B's 8 ms behind, peer
//! C's is exact: all within `epsilon`, so all should be healthy.
//!
//! We sample B: we send at our 100.008 s, B reads 99.9925 s (true 100.0005 s),
//! the answer arrives at our 100.009 s. B's claim is
//! `[99.9925 - 100.009 - 0.010, 99.9925 - 100.008 + 0.010]` s, that is
//! `[-26.5, -5.5]` ms. C reads 100.0005 s, so its claim is `[-18.5, +2.5]` ms.
//!
//! ```text
//!                        -30       -20       -10        0        +10   true - ours (ms)
//!                         |         |         |         |         |
//!   peer B (clock -8 ms)      [===================]                     -26.5 .. -5.5
//!   peer C (clock 0)                  [===================]             -18.5 .. +2.5
//!   ours   (clock +8 ms)                      [===================]     -10   .. +10
//!   all three agree                           [===]                     -10   .. -5.5
//! ```
//!
//! The sweep meets the starts at -26.5, -18.5, -10 (three open) before the
//! first end at -5.5: all 3 sources agree on `[-10, -5.5]` ms, which lies in
//! our interval and holds the real offset, -8 ms. 3 >= quorum 2: healthy.
//!
//! Now our clock runs 30 ms ahead and B and C are exact. Both peers claim
//! `[-40.5, -19.5]` ms; our `[-10, +10]` meets neither, so only 1 clock (ours)
//! agrees within our interval, below the quorum of 2. The two peers agree
//! with each other on `[-40.5, -19.5]`, whose middle is -30 ms: the verdict is
//! "clock is about 30 ms ahead of a quorum of 2 servers (epsilon 10 ms)".
//!
//! # Use
//!
//! The server, which owns the clock and the network, does this:
//!
//! 1. Every [`SAMPLE_INTERVAL`], for every other member P: read our raw
//!    clock (`sent`), ask P for its raw clock reading ([`crate::Clock::read`],
//!    not a `TtInterval`), read our raw clock again when the answer arrives
//!    (`received`), and [`ClockHealth::record`] it. Rejections are logged
//!    and otherwise ignored; a lost request is simply no sample.
//! 2. Before handing out a timestamp or serving a timestamped read (or once
//!    per tick, caching the answer), ask [`ClockHealth::verdict`] with our
//!    raw clock reading. Unhealthy: refuse, with the verdict's one-line
//!    `Display` as the reason; log when the verdict flips.
//! 3. Always answer peers' sample requests, healthy or not.
//!
//!
//! - A kept sample has `sent <= received` and a round trip of at most
//!   [`SAMPLE_RTT_MAX`]: checked by [`ClockHealth::record`], asserted again in
//!   [`ClockHealth::verdict`] when read back.
//! - At most `cluster_size - 1 <= PEERS_MAX` peers are kept (we are the
//!   remaining member): asserted after every insert and in `verdict`.
//! - A verdict's `agreeing` is between 1 (we always agree with ourselves) and
//!   the number of sources; it is healthy exactly when `agreeing >= quorum`;
//!   a healthy verdict's agreed offset interval lies within
//!   `[-epsilon, +epsilon]`. All asserted in `verdict`.
//! - If every clock is within `epsilon` of true time, every server's verdict
//!   is healthy with all fresh sources agreeing: the real offset lies in
//!   every source interval (no false alarms; a proptest checks it).
//! - If our clock is off by more than `3 * epsilon + RTT` (RTT: the longest
//!   round trip of a sample) while a quorum of the other servers are within
//!   `epsilon`, the verdict is unhealthy. A healthy peer's claim holds our
//!   real offset and is `2 * epsilon + RTT` wide, while our own interval
//!   lies more than `2 * epsilon + RTT` from the real offset: they cannot
//!   meet, and too few clocks are left to agree with ours. The reported
//!   offset is then within `2 * epsilon + RTT` of the real one (a proptest
//!   checks both).
//!
//! # Limits
//!
//! - [`PEERS_MAX`] peers (a cluster of at most `PEERS_MAX + 1` servers): a
//!   verdict sorts at most `2 * (PEERS_MAX + 1)` endpoints, O(n log n).
//! - [`SAMPLE_RTT_MAX`]: a longer round trip is rejected; [`SAMPLE_AGE_MAX`]:
//!   an older sample is ignored; [`SAMPLE_INTERVAL`]: how often the server
//!   is expected to sample each peer.
//! - Offsets are clamped into `i64` nanoseconds (±292 years), so absurd
//!   readings from the network (0, `u64::MAX`) saturate, never overflow.
//!
//! # Caveats
//!
//! - Drift between samples is not modelled: a sample up to
//!   [`SAMPLE_AGE_MAX`] old is used as if taken now. Two crystals 200 ppm
//!   apart move 2 ms in 10 s; widening each interval by `age * drift_max`
//!   (as NTP's dispersion does) would close that gap.
//! - Resolution: "healthy" means "consistent with a quorum", not "proven
//!   within epsilon". An offset between `epsilon` and `3 * epsilon + RTT` may
//!   go unnoticed, because each claim is `2 * epsilon + RTT` wide.
//! - A quorum of clocks broken the same way wins: the correct minority is
//!   then the one declared unhealthy. TrueTime assumes most clocks are fine.
//! - The caller must never record a sample of itself (it would count twice)
//!   and must build the `ClockHealth` with the real cluster size; a removed
//!   peer should be [`ClockHealth::forget`]ten (stale samples also make room
//!   for new peers on their own).
//! - Between two samples a clock can jump; the exposure is about one
//!   [`SAMPLE_INTERVAL`]. Answering peers' sample requests is fine even when
//!   unhealthy: they need our reading to judge their own clocks.
//! - A sample taken before our clock was stepped back has its `received` in
//!   our clock's future; it no longer counts, and the next sample of that
//!   peer replaces it (the last one recorded wins, whatever its readings).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::{Timestamp, EPSILON_MAX};

/// How often the server is expected to sample each peer. Not used by the
/// verdict itself; [`SAMPLE_AGE_MAX`] is ten of these, so a peer may miss
/// nine samples in a row before it stops counting.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// A sample older than this (by our clock, at verdict time) is ignored: a
/// peer that has not answered for this long no longer vouches for our clock.
/// Long enough to ride out a few lost samples, short enough that drift
/// between samples (see the module caveats) stays around a millisecond.
pub const SAMPLE_AGE_MAX: Duration = Duration::from_secs(10);

/// A sample whose round trip took longer than this is rejected. A sample can
/// only expose an offset larger than `3 * epsilon + round trip`, so a slow
/// round trip says little: at 100 ms any offset above about a tenth of a
/// second is caught even on a slow network, while a round trip inside one
/// region takes well under a millisecond. Longer ones mean an overloaded
/// peer or network; the next sample will do.
pub const SAMPLE_RTT_MAX: Duration = Duration::from_millis(100);

/// The most peers one `ClockHealth` tracks (a cluster of at most
/// `PEERS_MAX + 1` servers). SpanDB clusters have at most a few hundred
/// servers; this bounds memory and the sort in every verdict.
pub const PEERS_MAX: usize = 512;

/// One round trip to a peer: our reading, the peer's, ours again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    /// Our raw clock reading when the request was sent.
    pub sent: Timestamp,
    /// The peer's raw clock reading, taken while handling the request.
    pub peer_reading: Timestamp,
    /// Our raw clock reading when the answer arrived.
    pub received: Timestamp,
}

impl ClockSample {
    /// How long the round trip took by our clock (zero if malformed).
    pub fn round_trip(&self) -> Duration {
        self.received.duration_since(self.sent)
    }

    /// Where this sample puts true time relative to our clock, in signed
    /// nanoseconds: `[peer_reading - received - epsilon, peer_reading - sent
    /// + epsilon]`, clamped into `i64`. Requires `sent <= received`, which
    /// [`ClockHealth::record`] checks.
    fn true_offset_ns(&self, epsilon_ns: i64) -> (i64, i64) {
        assert!(self.sent <= self.received, "malformed sample kept: {self:?}");
        let reading = i128::from(self.peer_reading.as_nanos());
        let lo = reading - i128::from(self.received.as_nanos()) - i128::from(epsilon_ns);
        let hi = reading - i128::from(self.sent.as_nanos()) + i128::from(epsilon_ns);
        (clamp_i64(lo), clamp_i64(hi))
    }
}

/// Why [`ClockHealth::record`] did not keep a sample. Every variant asks the
/// same of the caller: drop the sample, log it, and sample again later.
/// Only [`SampleRejected::TooManyPeers`] points at the caller (its idea of
/// the membership); the others are the network's or the clocks' doing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SampleRejected {
    /// The answer arrived before the request was sent: the readings are
    /// corrupt or our clock stepped backwards mid-flight.
    #[error("malformed sample: received at {received}, before it was sent at {sent}")]
    ReceivedBeforeSent { sent: Timestamp, received: Timestamp },
    /// The round trip was too slow to say anything useful about the offset.
    #[error("round trip {round_trip:?} exceeds {max:?}")]
    RoundTripTooLong { round_trip: Duration, max: Duration },
    /// A new peer, but the cluster's other `peers_max` members all have
    /// fresh samples: the cluster size is wrong or a removed peer was not
    /// forgotten.
    #[error("already tracking {peers_max} peers, the rest of the cluster")]
    TooManyPeers { peers_max: usize },
}

/// The newest sample of every peer, and the verdict they add up to.
#[derive(Clone, Debug)]
pub struct ClockHealth {
    cluster_size: usize,
    epsilon_ns: i64,
    /// The newest sample per peer id; a `BTreeMap` so a verdict sees the
    /// sources in the same order every time.
    samples: BTreeMap<u64, ClockSample>,
}

impl ClockHealth {
    /// Clock health for one server of a `cluster_size`-server cluster whose
    /// clocks promise `±epsilon`.
    ///
    /// # Panics
    /// If `cluster_size` is 0 or above `PEERS_MAX + 1`, or `epsilon` exceeds
    /// [`EPSILON_MAX`]: configuration bugs, not runtime conditions.
    pub fn new(cluster_size: usize, epsilon: Duration) -> Self {
        assert!(
            (1..=PEERS_MAX + 1).contains(&cluster_size),
            "cluster size {cluster_size} outside 1..={}",
            PEERS_MAX + 1
        );
        assert!(epsilon <= EPSILON_MAX, "epsilon {epsilon:?} exceeds {EPSILON_MAX:?}");
        let epsilon_ns = i64::try_from(epsilon.as_nanos()).expect("epsilon <= EPSILON_MAX fits i64");
        ClockHealth { cluster_size, epsilon_ns, samples: BTreeMap::new() }
    }

    pub fn cluster_size(&self) -> usize {
        self.cluster_size
    }

    /// The cluster grew (a server joined) or shrank (a decommissioned one
    /// shut down): the quorum is of the new size from the next verdict on.
    /// The samples held are kept, except that a smaller cluster keeps
    /// fewer peers: the oldest go first (the caller forgets the ones of
    /// servers that left, [`ClockHealth::forget`]). Sizes outside
    /// `1..=PEERS_MAX + 1` are clamped into it.
    pub fn set_cluster_size(&mut self, cluster_size: usize) {
        self.cluster_size = cluster_size.clamp(1, PEERS_MAX + 1);
        while self.samples.len() > self.peers_max() {
            let oldest = self.samples.iter().min_by_key(|(_, s)| s.received).map(|(peer, _)| *peer);
            self.samples.remove(&oldest.expect("more samples than peers: not empty"));
        }
    }

    pub fn epsilon(&self) -> Duration {
        Duration::from_nanos(self.epsilon_ns.unsigned_abs())
    }

    /// How many clocks, ours included, must agree: `cluster_size / 2 + 1`.
    pub fn quorum(&self) -> usize {
        self.cluster_size / 2 + 1
    }

    /// The most peers kept: everyone in the cluster but us.
    fn peers_max(&self) -> usize {
        self.cluster_size - 1
    }

    /// Keeps `sample` as the newest of `peer`, unless it is malformed, too
    /// slow, or one peer too many.
    ///
    /// The caller records answers as they arrive, so the last one recorded
    /// is the newest in real time and replaces the one kept, even if its
    /// readings are smaller: our clock may have been stepped back (an
    /// operator fixing it), and refusing "older" readings would then lock
    /// out every new sample until the clock caught up again.
    ///
    /// A new peer in a full table first evicts samples that are not fresh
    /// at this one's `received`, so replaced servers make room by
    /// themselves.
    pub fn record(&mut self, peer: u64, sample: ClockSample) -> Result<(), SampleRejected> {
        if sample.received < sample.sent {
            return Err(SampleRejected::ReceivedBeforeSent { sent: sample.sent, received: sample.received });
        }
        let round_trip = sample.round_trip();
        if round_trip > SAMPLE_RTT_MAX {
            return Err(SampleRejected::RoundTripTooLong { round_trip, max: SAMPLE_RTT_MAX });
        }
        if !self.samples.contains_key(&peer) && self.samples.len() >= self.peers_max() {
            self.samples.retain(|_, kept| Self::is_fresh(kept, sample.received));
            if self.samples.len() >= self.peers_max() {
                return Err(SampleRejected::TooManyPeers { peers_max: self.peers_max() });
            }
        }
        self.samples.insert(peer, sample);
        assert!(
            self.samples.len() <= self.peers_max(),
            "{} peers kept, at most {}",
            self.samples.len(),
            self.peers_max()
        );
        Ok(())
    }

    /// Drops everything known about `peer` (it left the cluster).
    pub fn forget(&mut self, peer: u64) {
        self.samples.remove(&peer);
    }

    /// The newest kept sample of `peer`, fresh or not.
    pub fn sample(&self, peer: u64) -> Option<&ClockSample> {
        self.samples.get(&peer)
    }

    /// Is `sample` fresh at our raw reading `now`? A sample received "after"
    /// `now` was measured against our clock before it was stepped back (or
    /// the caller passed an old `now`): its claim no longer applies, so it
    /// does not count.
    fn is_fresh(sample: &ClockSample, now: Timestamp) -> bool {
        sample.received <= now && now.duration_since(sample.received) <= SAMPLE_AGE_MAX
    }

    /// May we serve timestamps at our raw clock reading `now`?
    pub fn verdict(&self, now: Timestamp) -> Verdict {
        assert!(
            self.samples.len() <= self.peers_max(),
            "{} peers kept, at most {}",
            self.samples.len(),
            self.peers_max()
        );
        let own = (-self.epsilon_ns, self.epsilon_ns);
        let peers: Vec<(i64, i64)> = self
            .samples
            .values()
            .filter(|sample| Self::is_fresh(sample, now))
            .map(|sample| {
                assert!(sample.round_trip() <= SAMPLE_RTT_MAX, "kept a sample with a long round trip: {sample:?}");
                sample.true_offset_ns(self.epsilon_ns)
            })
            .collect();
        let mut sources = peers.clone();
        sources.push(own);

        let quorum = self.quorum();
        let best_within_own =
            marzullo_within(&sources, own).expect("our own interval is a source and lies within itself");
        let agreeing = best_within_own.sources;
        assert!((1..=sources.len()).contains(&agreeing), "{agreeing} of {} sources agree", sources.len());

        let problem = if agreeing >= quorum {
            None
        } else if peers.is_empty() {
            Some(ClockProblem::NoFreshSamples { quorum, cluster_size: self.cluster_size })
        } else {
            match marzullo(&peers) {
                Some(others) if others.sources >= quorum => {
                    let (lo, hi) = others.range;
                    let middle = (i128::from(lo) + i128::from(hi)) / 2;
                    Some(ClockProblem::OffFromQuorum {
                        ahead_ns: clamp_i64(-middle),
                        servers: others.sources,
                        epsilon_ns: self.epsilon_ns,
                    })
                }
                _ => {
                    let anywhere = marzullo(&sources).expect("sources include our own interval");
                    Some(ClockProblem::NoQuorum {
                        agreeing_max: anywhere.sources,
                        quorum,
                        fresh_peers: peers.len(),
                        peers: self.peers_max(),
                    })
                }
            }
        };

        let offset_ns = problem.is_none().then_some(best_within_own.range);
        if let Some((lo, hi)) = offset_ns {
            assert!(own.0 <= lo && lo <= hi && hi <= own.1, "agreed offset {lo}..{hi} outside our interval {own:?}");
        }
        let verdict =
            Verdict { cluster_size: self.cluster_size, quorum, fresh_peers: peers.len(), agreeing, offset_ns, problem };
        assert_eq!(verdict.is_healthy(), agreeing >= quorum, "verdict disagrees with its count: {verdict:?}");
        verdict
    }
}

/// The answer to "may this server serve timestamps now?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub cluster_size: usize,
    /// Clocks that must agree, ours included: `cluster_size / 2 + 1`.
    pub quorum: usize,
    /// Peers with a fresh sample.
    pub fresh_peers: usize,
    /// The most clocks, ours included, that agree at one point of our own
    /// interval `[-epsilon, +epsilon]`.
    pub agreeing: usize,
    /// When healthy: where the agreeing clocks put true time relative to our
    /// clock (`true - ours`, signed nanoseconds), within `±epsilon`.
    pub offset_ns: Option<(i64, i64)>,
    /// Why not healthy; `None` when healthy.
    pub problem: Option<ClockProblem>,
}

impl Verdict {
    pub fn is_healthy(&self) -> bool {
        self.problem.is_none()
    }
}

/// One line for `spandb status` and the server log, e.g.
/// `healthy: 3/3 clocks agree (quorum 2); true time is our clock -10..-5.5 ms`
/// or `UNHEALTHY: clock is about 30 ms ahead of a quorum of 2 servers
/// (epsilon 10 ms); not serving timestamps`.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.problem, self.offset_ns) {
            (None, Some((lo, hi))) => write!(
                f,
                "healthy: {}/{} clocks agree (quorum {}); true time is our clock {}..{} ms",
                self.agreeing,
                self.cluster_size,
                self.quorum,
                signed_ms(lo),
                signed_ms(hi)
            ),
            (None, None) => {
                write!(f, "healthy: {}/{} clocks agree (quorum {})", self.agreeing, self.cluster_size, self.quorum)
            }
            (Some(problem), _) => write!(f, "UNHEALTHY: {problem}; not serving timestamps"),
        }
    }
}

/// Why a verdict is unhealthy, worded so an operator knows where to look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClockProblem {
    /// No peer has answered within [`SAMPLE_AGE_MAX`]: we cannot tell whether
    /// our clock is right (look at the network or the peers).
    NoFreshSamples { quorum: usize, cluster_size: usize },
    /// A quorum of other servers agree on a time our interval excludes: our
    /// clock is the broken one (look at this server's clock).
    OffFromQuorum {
        /// Our clock minus the quorum's estimate of true time (the middle of
        /// their agreed interval): positive when our clock runs ahead.
        ahead_ns: i64,
        /// How many other servers make up that quorum.
        servers: usize,
        epsilon_ns: i64,
    },
    /// No quorum of clocks agrees anywhere (several clocks broken, or too
    /// few peers sampled recently).
    NoQuorum { agreeing_max: usize, quorum: usize, fresh_peers: usize, peers: usize },
}

impl fmt::Display for ClockProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ClockProblem::NoFreshSamples { quorum, cluster_size } => {
                write!(f, "no fresh clock samples from peers; {quorum} of {cluster_size} clocks must agree")
            }
            ClockProblem::OffFromQuorum { ahead_ns, servers, epsilon_ns } => write!(
                f,
                "clock is about {} ms {} a quorum of {servers} servers (epsilon {} ms)",
                unsigned_ms(ahead_ns),
                if ahead_ns >= 0 { "ahead of" } else { "behind" },
                unsigned_ms(epsilon_ns)
            ),
            ClockProblem::NoQuorum { agreeing_max, quorum, fresh_peers, peers } => write!(
                f,
                "only {agreeing_max} of the {quorum} clocks needed agree on the time \
                 ({fresh_peers} of {peers} peers sampled recently)"
            ),
        }
    }
}

/// The most sources that overlap, and where: Marzullo's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// How many intervals contain every point of `range`.
    pub sources: usize,
    /// The leftmost maximal stretch of the axis covered by `sources`
    /// intervals, inclusive at both ends.
    pub range: (i64, i64),
}

/// Marzullo's algorithm: the largest number of `intervals` (inclusive
/// `(lo, hi)` pairs) that share a point, and the leftmost stretch where they
/// do. `None` for no intervals. Intervals that only touch overlap at the
/// touching point. O(n log n).
///
/// # Panics
/// If an interval has `lo > hi` (callers build them; they are not input).
pub fn marzullo(intervals: &[(i64, i64)]) -> Option<Overlap> {
    sweep(intervals, None)
}

/// [`marzullo`] restricted to points of `window` (inclusive): the most
/// intervals that share a point inside `window`, and the leftmost stretch of
/// `window` where they do. `None` if no interval meets `window`.
pub fn marzullo_within(intervals: &[(i64, i64)], window: (i64, i64)) -> Option<Overlap> {
    assert!(window.0 <= window.1, "window {window:?} is empty");
    sweep(intervals, Some(window))
}

/// An interval endpoint. `Start` sorts before `End`, so at equal offsets
/// every interval opening there is counted before any closing there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Edge {
    Start,
    End,
}

fn sweep(intervals: &[(i64, i64)], window: Option<(i64, i64)>) -> Option<Overlap> {
    let mut edges: Vec<(i64, Edge)> = Vec::with_capacity(2 * intervals.len());
    for &(lo, hi) in intervals {
        assert!(lo <= hi, "interval {lo}..{hi} is empty");
        edges.push((lo, Edge::Start));
        edges.push((hi, Edge::End));
    }
    edges.sort_unstable();

    // After edge i, `open` intervals cover every point of [x_i, x_{i+1}]
    // (inclusive: an interval ending at x_{i+1} still covers it, and one
    // starting there is counted by a later stretch).
    let mut best: Option<Overlap> = None;
    let mut open = 0usize;
    for (i, &(x, edge)) in edges.iter().enumerate() {
        match edge {
            Edge::Start => open += 1,
            Edge::End => open -= 1,
        }
        let Some(&(next_x, _)) = edges.get(i + 1) else { break };
        if open == 0 || best.is_some_and(|best| open <= best.sources) {
            continue;
        }
        let (mut lo, mut hi) = (x, next_x);
        if let Some((window_lo, window_hi)) = window {
            lo = lo.max(window_lo);
            hi = hi.min(window_hi);
            if lo > hi {
                continue;
            }
        }
        best = Some(Overlap { sources: open, range: (lo, hi) });
    }
    assert_eq!(open, 0, "every interval closes");
    if let Some(best) = best {
        assert!(best.sources <= intervals.len() && best.range.0 <= best.range.1, "bad overlap {best:?}");
    }
    best
}

fn clamp_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// Nanoseconds as milliseconds rounded to the microsecond, trailing zeros
/// dropped: `10`, `5.5`, `0.001`. Always non-negative.
fn unsigned_ms(ns: i64) -> String {
    let micros = (i128::from(ns).abs() + 500) / 1000;
    let (whole, frac) = (micros / 1000, micros % 1000);
    if frac == 0 {
        format!("{whole}")
    } else {
        format!("{whole}.{frac:03}").trim_end_matches('0').to_string()
    }
}

/// Like [`unsigned_ms`], with a sign unless it rounds to zero: `+2.5`, `-10`, `0`.
fn signed_ms(ns: i64) -> String {
    let magnitude = unsigned_ms(ns);
    match ns.signum() {
        _ if magnitude == "0" => magnitude,
        -1 => format!("-{magnitude}"),
        _ => format!("+{magnitude}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: i64 = 1_000_000;
    /// True time at the start of every simulation: 100 s after the epoch.
    const TRUE_START_NS: u64 = 100_000_000_000;

    /// Our raw reading at true time `true_ns` for a clock `offset_ns` ahead.
    fn reading(true_ns: u64, offset_ns: i64) -> Timestamp {
        Timestamp::from_nanos(clamp_i64(i128::from(true_ns) + i128::from(offset_ns)).max(0) as u64)
    }

    /// A round trip sent at true time `true_ns` by a clock `ours_ns` ahead, to
    /// a peer `peer_ns` ahead, `out_ns` on the way there, `back_ns` back.
    fn simulate(true_ns: u64, ours_ns: i64, peer_ns: i64, out_ns: u64, back_ns: u64) -> ClockSample {
        ClockSample {
            sent: reading(true_ns, ours_ns),
            peer_reading: reading(true_ns + out_ns, peer_ns),
            received: reading(true_ns + out_ns + back_ns, ours_ns),
        }
    }

    /// Every server of a cluster with these clock offsets samples every other
    /// one at `TRUE_START_NS` (round trip `rtt_ns`, half each way), then
    /// judges at true time `TRUE_START_NS + rtt_ns`.
    fn verdicts(offsets_ns: &[i64], epsilon_ns: i64, rtt_ns: u64) -> Vec<Verdict> {
        let epsilon = Duration::from_nanos(epsilon_ns as u64);
        (0..offsets_ns.len())
            .map(|us| {
                let mut health = ClockHealth::new(offsets_ns.len(), epsilon);
                for peer in (0..offsets_ns.len()).filter(|&peer| peer != us) {
                    let sample =
                        simulate(TRUE_START_NS, offsets_ns[us], offsets_ns[peer], rtt_ns / 2, rtt_ns - rtt_ns / 2);
                    health.record(peer as u64, sample).unwrap();
                }
                health.verdict(reading(TRUE_START_NS + rtt_ns, offsets_ns[us]))
            })
            .collect()
    }

    /// An inclusive `(lo, hi)` stretch of the offset axis.
    type Interval = (i64, i64);

    fn overlap(sources: usize, lo: i64, hi: i64) -> Option<Overlap> {
        Some(Overlap { sources, range: (lo, hi) })
    }

    /// Goal: the sweep finds the largest overlap and the leftmost stretch
    /// where it holds, with touching intervals counted as overlapping.
    /// Method: hand-made interval sets with known answers.
    #[test]
    fn marzullo_hand_made_sets() {
        let cases: &[(&str, &[Interval], Option<Overlap>)] = &[
            ("empty", &[], None),
            ("single", &[(3, 7)], overlap(1, 3, 7)),
            ("disjoint: leftmost wins the tie", &[(4, 5), (0, 1), (2, 3)], overlap(1, 0, 1)),
            ("nested", &[(0, 10), (2, 5), (3, 4)], overlap(3, 3, 4)),
            ("touching", &[(0, 5), (5, 9)], overlap(2, 5, 5)),
            ("all equal", &[(1, 2), (1, 2), (1, 2)], overlap(3, 1, 2)),
            ("one outlier", &[(0, 10), (1, 9), (100, 200), (2, 8)], overlap(3, 2, 8)),
            ("points", &[(5, 5), (5, 5), (6, 6)], overlap(2, 5, 5)),
            ("chain: no three share a point", &[(0, 2), (1, 3), (2, 4), (3, 5)], overlap(3, 2, 2)),
            ("two regions, left one wins", &[(0, 10), (0, 1), (9, 10)], overlap(2, 0, 1)),
            ("extremes", &[(i64::MIN, i64::MAX), (0, 0), (i64::MAX, i64::MAX)], overlap(2, 0, 0)),
        ];
        for (name, intervals, expected) in cases {
            assert_eq!(marzullo(intervals), *expected, "{name}");
        }
    }

    /// Goal: restricting the sweep to a window finds the best point inside
    /// it, even where the global best lies outside.
    /// Method: hand-made sets and windows with known answers.
    #[test]
    fn marzullo_within_hand_made_sets() {
        let cases: &[(&str, &[Interval], Interval, Option<Overlap>)] = &[
            ("global best outside", &[(0, 10), (1, 9), (20, 30)], (15, 25), overlap(1, 20, 25)),
            ("clipped to the window", &[(0, 10), (2, 8)], (5, 20), overlap(2, 5, 8)),
            ("touching the window", &[(0, 5)], (5, 9), overlap(1, 5, 5)),
            ("nothing in the window", &[(0, 5)], (6, 9), None),
            ("after an end", &[(0, 5), (0, 10)], (7, 9), overlap(1, 7, 9)),
            ("end on the window edge", &[(0, 5), (0, 10)], (5, 9), overlap(2, 5, 5)),
        ];
        for (name, intervals, window, expected) in cases {
            assert_eq!(marzullo_within(intervals, *window), *expected, "{name}");
        }
    }

    /// How many of `intervals` contain `x`.
    fn covering(intervals: &[(i64, i64)], x: i64) -> usize {
        intervals.iter().filter(|&&(lo, hi)| lo <= x && x <= hi).count()
    }

    fn interval() -> impl Strategy<Value = (i64, i64)> {
        (-50i64..50, 0i64..20).prop_map(|(lo, width)| (lo, lo + width))
    }

    proptest! {
        /// Goal: the sweep agrees with brute force.
        /// Method: random small intervals; the best count is the best over
        /// every interval start (and window edge); both ends of the returned
        /// range are covered that many times.
        #[test]
        fn marzullo_matches_brute_force(
            intervals in prop::collection::vec(interval(), 0..12),
            window in interval(),
        ) {
            let best_anywhere = intervals.iter().map(|&(lo, _)| covering(&intervals, lo)).max();
            let found = marzullo(&intervals);
            prop_assert_eq!(found.map(|o| o.sources), best_anywhere);
            if let Some(Overlap { sources, range: (lo, hi) }) = found {
                prop_assert_eq!(covering(&intervals, lo), sources);
                prop_assert_eq!(covering(&intervals, hi), sources);
            }

            let candidates = intervals.iter().map(|&(lo, _)| lo).chain([window.0]);
            let best_within = candidates
                .filter(|x| window.0 <= *x && *x <= window.1)
                .map(|x| covering(&intervals, x))
                .max()
                .filter(|&count| count > 0);
            let found = marzullo_within(&intervals, window);
            prop_assert_eq!(found.map(|o| o.sources), best_within);
            if let Some(Overlap { sources, range: (lo, hi) }) = found {
                prop_assert!(window.0 <= lo && hi <= window.1);
                prop_assert_eq!(covering(&intervals, lo), sources);
                prop_assert_eq!(covering(&intervals, hi), sources);
            }
        }
    }

    /// Goal: the worked cases of the brief, with the verdict of every server.
    /// Method: 3 servers, epsilon 10 ms, round trip 1 ms; clock offsets per
    /// case, the expected health of each server's own view.
    #[test]
    fn worked_cases() {
        let cases: &[(&str, [i64; 3], [bool; 3])] = &[
            ("everyone within epsilon", [8 * MS, -8 * MS, 0], [true, true, true]),
            ("our clock 30 ms ahead", [30 * MS, 0, 0], [false, true, true]),
            ("a peer 30 ms ahead", [0, 30 * MS, 0], [true, false, true]),
            ("two clocks broken opposite ways", [30 * MS, -30 * MS, 0], [false, false, false]),
        ];
        for (name, offsets, healthy) in cases {
            let verdicts = verdicts(offsets, 10 * MS, MS as u64);
            let got: Vec<bool> = verdicts.iter().map(Verdict::is_healthy).collect();
            assert_eq!(got, healthy, "{name}: {verdicts:#?}");
        }
        let ahead = &verdicts(&[30 * MS, 0, 0], 10 * MS, MS as u64)[0];
        assert_eq!(
            ahead.problem,
            Some(ClockProblem::OffFromQuorum { ahead_ns: 30 * MS, servers: 2, epsilon_ns: 10 * MS })
        );
        assert_eq!(
            ahead.to_string(),
            "UNHEALTHY: clock is about 30 ms ahead of a quorum of 2 servers (epsilon 10 ms); not serving timestamps"
        );
        let fine = &verdicts(&[8 * MS, -8 * MS, 0], 10 * MS, MS as u64)[0];
        assert_eq!((fine.agreeing, fine.offset_ns), (3, Some((-10 * MS, -5 * MS - MS / 2))));
        assert_eq!(fine.to_string(), "healthy: 3/3 clocks agree (quorum 2); true time is our clock -10..-5.5 ms");
        let split = &verdicts(&[30 * MS, -30 * MS, 0], 10 * MS, MS as u64)[2];
        assert_eq!(
            split.to_string(),
            "UNHEALTHY: only 1 of the 2 clocks needed agree on the time (2 of 2 peers sampled recently); \
             not serving timestamps"
        );
    }

    /// Goal: only samples at most SAMPLE_AGE_MAX old count, to the
    /// nanosecond; without fresh peers only a one-server cluster is healthy.
    /// Method: one sample, verdicts at its age limit and one nanosecond past.
    #[test]
    fn stale_samples_are_ignored() {
        let epsilon = Duration::from_millis(10);
        let mut health = ClockHealth::new(3, epsilon);
        let sample = simulate(TRUE_START_NS, 0, 0, 0, 0);
        health.record(2, sample).unwrap();
        let at_limit = sample.received.saturating_add(SAMPLE_AGE_MAX);
        assert_eq!(health.verdict(at_limit).agreeing, 2);
        assert!(health.verdict(at_limit).is_healthy());
        let stale = health.verdict(at_limit.next());
        assert_eq!(stale.problem, Some(ClockProblem::NoFreshSamples { quorum: 2, cluster_size: 3 }));
        assert_eq!(
            stale.to_string(),
            "UNHEALTHY: no fresh clock samples from peers; 2 of 3 clocks must agree; not serving timestamps"
        );
        // A sample "from the future" (our clock went backwards) is not fresh.
        assert!(!health.verdict(sample.received.prev()).is_healthy());

        let alone = ClockHealth::new(1, epsilon);
        let verdict = alone.verdict(Timestamp::from_nanos(TRUE_START_NS));
        assert!(verdict.is_healthy(), "{verdict}");
        assert_eq!(verdict.to_string(), "healthy: 1/1 clocks agree (quorum 1); true time is our clock -10..+10 ms");
    }

    /// Goal: record keeps only well-formed, fast, newest samples, and never
    /// more peers than the cluster has.
    /// Method: one sample per rejection reason, each on its boundary.
    #[test]
    fn record_rejections() {
        let t = |ns: u64| Timestamp::from_nanos(TRUE_START_NS + ns);
        let mut health = ClockHealth::new(3, Duration::from_millis(10));
        let backwards = ClockSample { sent: t(5), peer_reading: t(5), received: t(4) };
        assert_eq!(health.record(2, backwards), Err(SampleRejected::ReceivedBeforeSent { sent: t(5), received: t(4) }));

        let rtt_max_ns = SAMPLE_RTT_MAX.as_nanos() as u64;
        let slowest = ClockSample { sent: t(0), peer_reading: t(0), received: t(rtt_max_ns) };
        assert_eq!(health.record(2, slowest), Ok(()));
        let too_slow = ClockSample { received: t(rtt_max_ns + 1), ..slowest };
        assert_eq!(
            health.record(2, too_slow),
            Err(SampleRejected::RoundTripTooLong {
                round_trip: SAMPLE_RTT_MAX + Duration::from_nanos(1),
                max: SAMPLE_RTT_MAX
            })
        );

        // The last sample recorded wins, even with smaller readings (our
        // clock was stepped back); it is put back for the eviction below.
        let stepped_back = ClockSample { sent: t(0), peer_reading: t(0), received: t(1) };
        assert_eq!(health.record(2, stepped_back), Ok(()));
        assert_eq!(health.sample(2), Some(&stepped_back));
        assert_eq!(health.record(2, slowest), Ok(()));

        let fresh = simulate(TRUE_START_NS + rtt_max_ns, 0, 0, 0, 0);
        assert_eq!(health.record(3, fresh), Ok(()));
        assert_eq!(health.record(4, fresh), Err(SampleRejected::TooManyPeers { peers_max: 2 }));
        health.forget(3);
        assert_eq!(health.record(4, fresh), Ok(()));

        // Once peer 2's sample (received at rtt_max_ns) is stale relative to
        // a new one, it makes room; exactly SAMPLE_AGE_MAX old, it does not.
        let age_max_ns = SAMPLE_AGE_MAX.as_nanos() as u64;
        let at_age_max = simulate(TRUE_START_NS + rtt_max_ns + age_max_ns, 0, 0, 0, 0);
        assert_eq!(health.record(4, at_age_max), Ok(()));
        assert_eq!(health.record(5, at_age_max), Err(SampleRejected::TooManyPeers { peers_max: 2 }));
        let past_age_max = simulate(TRUE_START_NS + rtt_max_ns + age_max_ns + 1, 0, 0, 0, 0);
        assert_eq!(health.record(5, past_age_max), Ok(()));
        assert_eq!(health.sample(2), None);

        // A sample received "after" a new one was taken before our clock
        // was stepped back: it makes room too.
        let before_step_back = simulate(TRUE_START_NS, 0, 0, 0, 0);
        assert_eq!(health.record(6, before_step_back), Ok(()));
        assert_eq!(health.sample(4), None);
        assert_eq!(health.sample(5), None);

        let mut alone = ClockHealth::new(1, Duration::from_millis(10));
        assert_eq!(alone.record(2, fresh), Err(SampleRejected::TooManyPeers { peers_max: 0 }));
    }

    /// Goal: a cluster that shrinks under a full table of samples (a
    /// decommissioned server shut down) keeps at most its new number of
    /// peers, dropping the oldest, and a sample of a peer still kept is
    /// recorded as before (it once tripped the table's size assertion, in
    /// the server's clock monitor).
    #[test]
    fn a_shrinking_cluster_drops_its_oldest_samples() {
        let mut health = ClockHealth::new(4, Duration::from_millis(10));
        let at = |received_ns: u64| simulate(TRUE_START_NS + received_ns, 0, 0, 0, 0);
        for (peer, received_ns) in [(2, 3_000), (3, 1_000), (4, 2_000)] {
            assert_eq!(health.record(peer, at(received_ns)), Ok(()));
        }
        health.set_cluster_size(3);
        assert_eq!(health.sample(3), None, "the oldest went");
        assert!(health.sample(2).is_some() && health.sample(4).is_some());
        assert_eq!(health.record(2, at(4_000)), Ok(()));
        assert_eq!(health.record(3, at(4_000)), Err(SampleRejected::TooManyPeers { peers_max: 2 }));
        health.set_cluster_size(1);
        assert_eq!((health.sample(2), health.sample(4)), (None, None));
        // A verdict checks the table's bound too.
        let _ = health.verdict(reading(TRUE_START_NS + 5_000, 0));
    }

    /// Goal: readings off the network cannot panic or overflow anything.
    /// Method: extreme readings (0, u64::MAX) in every field, verdicts at
    /// extreme `now`s; plus a proptest over arbitrary triples.
    #[test]
    fn absurd_readings_are_harmless() {
        let (zero, max, mid) = (Timestamp::ZERO, Timestamp::MAX, Timestamp::from_nanos(TRUE_START_NS));
        let samples = [
            ClockSample { sent: mid, peer_reading: zero, received: mid },
            ClockSample { sent: mid, peer_reading: max, received: mid },
            ClockSample { sent: zero, peer_reading: max, received: zero },
            ClockSample { sent: max, peer_reading: zero, received: max },
            ClockSample { sent: zero, peer_reading: zero, received: max },
        ];
        for sample in samples {
            let mut health = ClockHealth::new(3, EPSILON_MAX);
            let _ = health.record(2, sample);
            for now in [zero, mid, max] {
                let verdict = health.verdict(now);
                assert!(!verdict.is_healthy(), "{sample:?} at {now:?}: {verdict}");
                let _ = verdict.to_string();
            }
        }
        // Two peers with absurd readings agree with each other, far away.
        let mut health = ClockHealth::new(3, Duration::from_millis(10));
        health.record(2, samples[1]).unwrap();
        health.record(3, samples[1]).unwrap();
        let verdict = health.verdict(mid);
        assert!(matches!(verdict.problem, Some(ClockProblem::OffFromQuorum { servers: 2, .. })), "{verdict}");
    }

    #[test]
    #[should_panic(expected = "cluster size 0")]
    fn empty_cluster_is_a_bug() {
        ClockHealth::new(0, Duration::from_millis(1));
    }

    #[test]
    fn milliseconds_print_to_the_microsecond() {
        let cases =
            [(0, "0"), (10 * MS, "+10"), (-5_500_000, "-5.5"), (1_000, "+0.001"), (499, "0"), (-1_234_567, "-1.235")];
        for (ns, text) in cases {
            assert_eq!(signed_ms(ns), text, "{ns}");
        }
        assert_eq!(unsigned_ms(i64::MIN), "9223372036854.776");
    }

    /// A healthy cluster: `n` clocks within `epsilon_ns` of true time, and a
    /// (round trip, outbound share) pair for every ordered pair of servers.
    fn healthy_cluster() -> impl Strategy<Value = (i64, Vec<i64>, Vec<(u64, u64, u64)>)> {
        (1usize..=9, 1_000i64..=20 * MS).prop_flat_map(|(n, epsilon_ns)| {
            let rtt_max_ns = SAMPLE_RTT_MAX.as_nanos() as u64;
            let age_window_ns = SAMPLE_AGE_MAX.as_nanos() as u64 / 2;
            (
                Just(epsilon_ns),
                prop::collection::vec(-epsilon_ns..=epsilon_ns, n),
                prop::collection::vec((0..=rtt_max_ns, any::<u64>(), 0..=age_window_ns), n * n),
            )
        })
    }

    /// Samples server `us` takes of every other server, each sent at its own
    /// true time within the first half of SAMPLE_AGE_MAX; returns the
    /// health and our reading at a true time when all are still fresh.
    fn sample_everyone(
        us: usize,
        epsilon_ns: i64,
        offsets_ns: &[i64],
        trips: &[(u64, u64, u64)],
    ) -> (ClockHealth, Timestamp) {
        let n = offsets_ns.len();
        let mut health = ClockHealth::new(n, Duration::from_nanos(epsilon_ns as u64));
        for peer in (0..n).filter(|&peer| peer != us) {
            let (rtt_ns, split, delay_ns) = trips[us * n + peer];
            let out_ns = split % (rtt_ns + 1);
            let sample = simulate(TRUE_START_NS + delay_ns, offsets_ns[us], offsets_ns[peer], out_ns, rtt_ns - out_ns);
            health.record(peer as u64, sample).unwrap();
        }
        let judged_at_ns = TRUE_START_NS + SAMPLE_AGE_MAX.as_nanos() as u64 / 2 + SAMPLE_RTT_MAX.as_nanos() as u64;
        (health, reading(judged_at_ns, offsets_ns[us]))
    }

    proptest! {
        /// Goal: no false alarms: if every clock is within epsilon of true
        /// time, every server is healthy, with every clock agreeing.
        /// Method: random cluster sizes, epsilons, offsets within epsilon,
        /// round trips up to SAMPLE_RTT_MAX split at random, sample times
        /// spread over half of SAMPLE_AGE_MAX.
        #[test]
        fn healthy_clusters_raise_no_alarm((epsilon_ns, offsets_ns, trips) in healthy_cluster()) {
            for us in 0..offsets_ns.len() {
                let (health, now) = sample_everyone(us, epsilon_ns, &offsets_ns, &trips);
                let verdict = health.verdict(now);
                prop_assert!(verdict.is_healthy(), "server {}: {}", us, verdict);
                prop_assert_eq!(verdict.agreeing, offsets_ns.len());
                let (lo, hi) = verdict.offset_ns.unwrap();
                prop_assert!(lo <= -offsets_ns[us] && -offsets_ns[us] <= hi, "real offset outside {}..{}", lo, hi);
            }
        }

        /// Goal: a clock more than 3 * epsilon + RTT off is caught whenever a
        /// quorum of the other servers is within epsilon, even if every
        /// remaining server is broken the same way; the reported offset is
        /// within 2 * epsilon + RTT of the real one.
        /// Method: server 0 off by that much (either sign) plus up to 1 s;
        /// `healthy` servers within epsilon; the rest near server 0's clock.
        #[test]
        fn a_broken_clock_is_caught(
            (epsilon_ns, offsets_ns, trips) in healthy_cluster().prop_filter("needs 3 servers", |(_, o, _)| o.len() >= 3),
            healthy_extra in 0usize..9,
            rtt_cap_ns in 0..=SAMPLE_RTT_MAX.as_nanos() as u64,
            beyond_ns in 1i64..=1_000 * MS,
            behind in any::<bool>(),
        ) {
            let n = offsets_ns.len();
            let quorum = n / 2 + 1;
            let healthy = (quorum + healthy_extra).min(n - 1);
            let off_ns = 3 * epsilon_ns + rtt_cap_ns as i64 + beyond_ns;
            let off_ns = if behind { -off_ns } else { off_ns };
            let mut offsets_ns = offsets_ns;
            offsets_ns[0] = off_ns;
            for other in offsets_ns.iter_mut().skip(1 + healthy) {
                *other += off_ns; // within epsilon of server 0's clock
            }
            let trips: Vec<(u64, u64, u64)> =
                trips.into_iter().map(|(rtt_ns, split, delay_ns)| (rtt_ns.min(rtt_cap_ns), split, delay_ns)).collect();

            let (health, now) = sample_everyone(0, epsilon_ns, &offsets_ns, &trips);
            let verdict = health.verdict(now);
            prop_assert!(!verdict.is_healthy(), "{}", verdict);
            match verdict.problem {
                Some(ClockProblem::OffFromQuorum { ahead_ns, servers, .. }) => {
                    prop_assert!(servers >= quorum);
                    prop_assert!((ahead_ns - off_ns).abs() <= 2 * epsilon_ns + rtt_cap_ns as i64, "{}", verdict);
                }
                other => prop_assert!(false, "expected OffFromQuorum, got {:?}", other),
            }
        }

        /// Goal: nothing off the network panics.
        /// Method: arbitrary readings, peers and `now`s.
        #[test]
        fn arbitrary_samples_never_panic(
            cluster_size in 1usize..=5,
            samples in prop::collection::vec((0u64..8, any::<u64>(), any::<u64>(), any::<u64>()), 0..16),
            now in any::<u64>(),
        ) {
            let mut health = ClockHealth::new(cluster_size, Duration::from_millis(10));
            for (peer, sent, peer_reading, received) in samples {
                let sample = ClockSample {
                    sent: Timestamp::from_nanos(sent),
                    peer_reading: Timestamp::from_nanos(peer_reading),
                    received: Timestamp::from_nanos(received),
                };
                let _ = health.record(peer, sample);
            }
            let verdict = health.verdict(Timestamp::from_nanos(now));
            prop_assert_eq!(verdict.is_healthy(), verdict.agreeing >= verdict.quorum);
            let _ = verdict.to_string();
        }
    }

    /// Goldenscripts: `testscripts/health/*`, one per scenario.
    mod scripts {
        use std::error::Error;
        use std::fmt::Write as _;

        use super::*;

        /// A simulated cluster: servers `s1..sN`, each with a clock offset
        /// from true time and its own `ClockHealth`.
        struct Runner {
            epsilon: Duration,
            true_ns: u64,
            servers: BTreeMap<u64, (i64, ClockHealth)>,
        }

        impl Runner {
            fn new() -> Self {
                Runner { epsilon: Duration::ZERO, true_ns: TRUE_START_NS, servers: BTreeMap::new() }
            }

            fn server(&self, name: &str) -> Result<u64, Box<dyn Error>> {
                let id: u64 = name.strip_prefix('s').ok_or("servers are named s1, s2, ...")?.parse()?;
                if !self.servers.contains_key(&id) {
                    return Err(format!("no server {name}").into());
                }
                Ok(id)
            }

            fn reading(&self, id: u64) -> Timestamp {
                reading(self.true_ns, self.servers[&id].0)
            }

            /// Records `sample` at `us` and says what came of it.
            fn record(
                &mut self,
                us: u64,
                peer: u64,
                sample: ClockSample,
                out: &mut String,
            ) -> Result<(), Box<dyn Error>> {
                let epsilon_ns = self.epsilon.as_nanos() as i64;
                let health = &mut self.servers.get_mut(&us).ok_or("no such server")?.1;
                match health.record(peer, sample) {
                    Ok(()) => {
                        let (lo, hi) = sample.true_offset_ns(epsilon_ns);
                        writeln!(out, "s{us} <- s{peer}: true - s{us} in {}..{} ms", signed_ms(lo), signed_ms(hi))?;
                    }
                    Err(rejected) => writeln!(out, "s{us} <- s{peer}: rejected: {rejected}")?,
                }
                Ok(())
            }

            /// A round trip from `us` to `peer`: `rtt` long, `out` of it on
            /// the way there (half by default). True time moves on by `rtt`.
            fn sample(
                &mut self,
                us: u64,
                peer: u64,
                rtt_ns: i64,
                out_ns: Option<i64>,
            ) -> Result<String, Box<dyn Error>> {
                let out_ns = out_ns.unwrap_or(rtt_ns / 2);
                if !(0..=rtt_ns).contains(&out_ns) {
                    return Err("out must lie within 0..=rtt".into());
                }
                let sample = simulate(
                    self.true_ns,
                    self.servers[&us].0,
                    self.servers[&peer].0,
                    out_ns as u64,
                    (rtt_ns - out_ns) as u64,
                );
                self.true_ns += rtt_ns as u64;
                let mut out = String::new();
                self.record(us, peer, sample, &mut out)?;
                Ok(out)
            }
        }

        /// `30ms`, `+8ms`, `-0.5ms`, `11s`, `250us`, `7ns`, `0`, as nanoseconds.
        fn parse_ns(text: &str) -> Result<i64, Box<dyn Error>> {
            let err = || format!("bad duration {text:?}: expected e.g. -8ms, 0.5ms, 11s, 250us, 7ns");
            let (negative, rest) = match text.as_bytes().first() {
                Some(b'-') => (true, &text[1..]),
                Some(b'+') => (false, &text[1..]),
                _ => (false, text),
            };
            let unit_at = rest.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(rest.len());
            let (number, unit) = rest.split_at(unit_at);
            let scale: i64 = match unit {
                "ns" => 1,
                "us" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "" if number.chars().all(|c| c == '0') => 1,
                _ => return Err(err().into()),
            };
            let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
            let mut ns = whole.parse::<i64>().map_err(|_| err())?.checked_mul(scale).ok_or_else(err)?;
            let mut digit_scale = scale;
            for digit in frac.chars() {
                digit_scale /= 10;
                let digit = i64::from(digit.to_digit(10).ok_or_else(err)?);
                if digit_scale == 0 && digit != 0 {
                    return Err(err().into());
                }
                ns += digit * digit_scale;
            }
            Ok(if negative { -ns } else { ns })
        }

        impl goldenscript::Runner for Runner {
            type Command = goldenscript::Command;

            fn run(
                &mut self,
                command: &goldenscript::Command,
                _: &goldenscript::Context,
            ) -> Result<String, Box<dyn Error>> {
                let mut out = String::new();
                let mut args = command.consume_args();
                match command.name.as_str() {
                    // cluster N epsilon=DURATION: servers s1..sN, clocks exact.
                    "cluster" => {
                        let size: u64 = args.next_pos().ok_or("cluster size required")?.parse()?;
                        let epsilon_ns = parse_ns(args.take_key("epsilon").ok_or("epsilon= required")?)?;
                        self.epsilon = Duration::from_nanos(u64::try_from(epsilon_ns)?);
                        self.true_ns = TRUE_START_NS;
                        self.servers =
                            (1..=size).map(|id| (id, (0, ClockHealth::new(size as usize, self.epsilon)))).collect();
                    }
                    // clock sN=OFFSET ...: how far each clock reads ahead of true time.
                    "clock" => {
                        while let Some((name, offset)) = args.next_key() {
                            let id = self.server(name)?;
                            self.servers.get_mut(&id).expect("checked").0 = parse_ns(offset)?;
                        }
                    }
                    // advance DURATION: true time moves on.
                    "advance" => {
                        let ns = parse_ns(args.next_pos().ok_or("duration required")?)?;
                        self.true_ns += u64::try_from(ns)?;
                    }
                    // sample sA sB rtt=DURATION [out=DURATION]: sA samples sB.
                    "sample" => {
                        let us = self.server(args.next_pos().ok_or("sampling server required")?)?;
                        let peer = self.server(args.next_pos().ok_or("sampled server required")?)?;
                        let rtt_ns = parse_ns(args.take_key("rtt").ok_or("rtt= required")?)?;
                        let out_ns = args.take_key("out").map(parse_ns).transpose()?;
                        args.reject_next()?;
                        out = self.sample(us, peer, rtt_ns, out_ns)?;
                    }
                    // sample-all rtt=DURATION: every server samples every other.
                    "sample-all" => {
                        let rtt_ns = parse_ns(args.take_key("rtt").ok_or("rtt= required")?)?;
                        let ids: Vec<u64> = self.servers.keys().copied().collect();
                        for &us in &ids {
                            for &peer in ids.iter().filter(|&&peer| peer != us) {
                                out.push_str(&self.sample(us, peer, rtt_ns, None)?);
                            }
                        }
                    }
                    // record sA sB sent=NS peer=NS received=NS: raw readings.
                    "record" => {
                        let us = self.server(args.next_pos().ok_or("recording server required")?)?;
                        let peer: u64 = args.next_pos().ok_or("peer required")?.trim_start_matches('s').parse()?;
                        let mut raw = |key: &str| -> Result<Timestamp, Box<dyn Error>> {
                            Ok(Timestamp::from_nanos(args.take_key(key).ok_or(format!("{key}= required"))?.parse()?))
                        };
                        let sample =
                            ClockSample { sent: raw("sent")?, peer_reading: raw("peer")?, received: raw("received")? };
                        args.reject_next()?;
                        self.record(us, peer, sample, &mut out)?;
                    }
                    // forget sA sB: sA drops sB.
                    "forget" => {
                        let us = self.server(args.next_pos().ok_or("server required")?)?;
                        let peer = self.server(args.next_pos().ok_or("peer required")?)?;
                        self.servers.get_mut(&us).expect("checked").1.forget(peer);
                    }
                    // verdict [sA ...]: each server's verdict at its own reading now.
                    "verdict" => {
                        let mut ids = Vec::new();
                        while let Some(name) = args.next_pos() {
                            ids.push(self.server(name)?);
                        }
                        if ids.is_empty() {
                            ids = self.servers.keys().copied().collect();
                        }
                        for id in ids {
                            let verdict = self.servers[&id].1.verdict(self.reading(id));
                            writeln!(out, "s{id}: {verdict}")?;
                        }
                    }
                    other => return Err(format!("unknown command {other}").into()),
                }
                args.reject_next()?;
                Ok(out)
            }
        }

        macro_rules! scripts {
            ($($name:ident),* $(,)?) => {$(
                #[test]
                fn $name() -> std::io::Result<()> {
                    goldenscript::run(&mut Runner::new(), concat!("src/testscripts/health/", stringify!($name)))
                }
            )*};
        }

        scripts!(
            everyone_within_epsilon,
            own_clock_ahead,
            peer_clock_ahead,
            clocks_broken_opposite_ways,
            stale_samples,
            bad_samples,
            detection_threshold,
        );

        #[test]
        fn durations_parse() {
            for (text, ns) in [("0", 0), ("+8ms", 8_000_000), ("-0.5ms", -500_000), ("11s", 11_000_000_000), ("7ns", 7)]
            {
                assert_eq!(parse_ns(text).unwrap(), ns, "{text}");
            }
            for bad in ["", "5", "1.5ns", "ms", "3m"] {
                assert!(parse_ns(bad).is_err(), "{bad:?} parsed");
            }
        }
    }
}
