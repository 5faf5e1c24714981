//! TrueTime: time as an interval of uncertainty, not a point.
//!
//! Spanner (Corbett et al., OSDI 2012, §3) does not trust any single clock
//! reading. `TT.now()` returns an interval `[earliest, latest]` that is
//! guaranteed to contain the true (absolute) time, as long as the local
//! clock's error stays within `epsilon`. Everything timestamp-related in
//! SpanDB is built on three operations over that interval:
//!
//! ```text
//!                 true time is somewhere in here
//!                 |<--------- 2 * epsilon ---------->|
//!   -------------[earliest=========================latest]-----------> t
//!                                 ^ local clock reading
//!
//!   after(t)  : earliest > t   -> t has definitely passed everywhere
//!   before(t) : latest   < t   -> t has definitely not arrived anywhere
//!   commit_wait(t): wait until after(t)
//! ```
//!
//! A leader stamps a write with `s >= now().latest` and does not tell anyone
//! about it until `after(s)`. Any transaction that starts later in real time
//! reads `now().latest` on some clock, which is then `> s`: that is external
//! consistency, paid for with an expected wait of about `2 * epsilon`.
//!
//! # Model
//!
//! - [`Timestamp`]: nanoseconds since the Unix epoch, a `u64`, totally
//!   ordered. `chrono` is used only to parse and print it.
//! - [`Clock`]: a physical clock reading in nanoseconds. [`SystemClock`]
//!   reads the OS clock and adds an injectable offset and drift (the jepsen
//!   clock nemesis turns these knobs); [`ManualClock`] only moves when a test
//!   moves it, so state machines can be tested without sleeps.
//! - [`TrueTime`]: a clock plus `epsilon`, answering `now`, `after`,
//!   `before` and `commit_wait`.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use truetime::{ManualClock, Timestamp, TrueTime};
//!
//! let clock = Arc::new(ManualClock::new(Timestamp::from_nanos(1_000_000_000)));
//! let tt = TrueTime::new(clock.clone(), Duration::from_millis(2));
//! let now = tt.now();
//! assert_eq!(now.earliest, Timestamp::from_nanos(998_000_000));
//! assert_eq!(now.latest, Timestamp::from_nanos(1_002_000_000));
//!
//! let s = now.latest; // a commit timestamp
//! assert!(!tt.after(s));
//! assert_eq!(tt.commit_wait_remaining(s), Duration::from_nanos(4_000_001));
//! clock.advance(Duration::from_nanos(4_000_001));
//! assert!(tt.after(s));
//! ```
//!
//! # Invariants
//!
//! - `now().latest - now().earliest == 2 * epsilon`, and `earliest <= latest`
//!   (asserted in [`TtInterval::new`]).
//! - `after(t)` implies `!before(t)`.
//! - A [`SystemClock`] reading never goes backwards: an OS clock step or a
//!   negative offset bump is absorbed (held at the last reading), not passed
//!   on.
//!
//! # Caveats
//!
//! The uncertainty is simulated: `epsilon` is configuration, not measured
//! from GPS and atomic clocks. Clock health (comparing with peers and
//! refusing to serve when out of bounds, DESIGN.md §3) is decided by the
//! pure [`health`] module; the server, which owns the network, samples its
//! peers and acts on the verdict.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod health;

/// Default clock uncertainty: a few milliseconds, as DESIGN.md §3 asks.
pub const EPSILON_DEFAULT: Duration = Duration::from_millis(2);

/// The largest epsilon a `TrueTime` accepts. Beyond this, commit-wait
/// (about `2 * epsilon` per write) would make the database unusable, so a
/// larger value is taken as a configuration mistake.
pub const EPSILON_MAX: Duration = Duration::from_secs(1);

/// A point in time: nanoseconds since the Unix epoch (UTC).
///
/// `Timestamp::ZERO` means "before everything"; `Timestamp::MAX` means
/// "after everything" (a read at `MAX` sees every applied version).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The next timestamp after this one (saturating at `MAX`).
    pub const fn next(self) -> Self {
        Timestamp(self.0.saturating_add(1))
    }

    /// The timestamp just before this one (saturating at `ZERO`).
    pub const fn prev(self) -> Self {
        Timestamp(self.0.saturating_sub(1))
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_nanos(d)))
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_nanos(d)))
    }

    /// How long from `earlier` to `self`; zero if `earlier` is not earlier.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Prints RFC 3339 with nanoseconds in UTC, e.g.
/// `2026-11-24T10:00:00.123456789Z`; [`FromStr`] reads it back exactly.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = (self.0 / 1_000_000_000) as i64;
        let nanos = (self.0 % 1_000_000_000) as u32;
        match chrono::DateTime::from_timestamp(secs, nanos) {
            Some(dt) => write!(f, "{}", dt.format("%Y-%m-%dT%H:%M:%S%.9fZ")),
            None => write!(f, "{}ns", self.0),
        }
    }
}

/// Why a timestamp string was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {input:?}: expected RFC 3339 (2026-11-24T10:00:00.5Z) or nanoseconds since the Unix epoch")]
pub struct ParseTimestampError {
    pub input: String,
}

/// Accepts what [`Timestamp`]'s `Display` prints (RFC 3339, any offset) and
/// plain nanoseconds since the Unix epoch (`1764000000000000000`).
impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseTimestampError { input: s.to_string() };
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse::<u64>().map(Timestamp).map_err(|_| err());
        }
        let dt = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| err())?;
        let secs = u64::try_from(dt.timestamp()).map_err(|_| err())?;
        secs.checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(u64::from(dt.timestamp_subsec_nanos())))
            .map(Timestamp)
            .ok_or_else(err)
    }
}

/// `[earliest, latest]`: the true time lies somewhere inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtInterval {
    pub earliest: Timestamp,
    pub latest: Timestamp,
}

impl TtInterval {
    pub fn new(earliest: Timestamp, latest: Timestamp) -> Self {
        assert!(earliest <= latest, "TtInterval: earliest {earliest:?} > latest {latest:?}");
        TtInterval { earliest, latest }
    }

    /// The interval around a clock reading with the given uncertainty.
    pub fn around(reading: Timestamp, epsilon: Duration) -> Self {
        TtInterval::new(reading.saturating_sub(epsilon), reading.saturating_add(epsilon))
    }

    /// Has `t` definitely passed?
    pub fn after(&self, t: Timestamp) -> bool {
        self.earliest > t
    }

    /// Has `t` definitely not yet arrived?
    pub fn before(&self, t: Timestamp) -> bool {
        self.latest < t
    }
}

/// A physical clock: a reading in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    fn read(&self) -> Timestamp;

    /// Sets an offset (signed nanoseconds) and a drift (parts per million)
    /// on top of the clock's source, for fault injection. Clocks that cannot
    /// be adjusted say so.
    fn adjust(&self, _offset_nanos: i64, _drift_ppm: i64) -> Result<(), ClockError> {
        Err(ClockError::NotAdjustable)
    }

    /// The current (offset, drift) adjustment.
    fn adjustment(&self) -> (i64, i64) {
        (0, 0)
    }
}

/// A clock operation that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("this clock cannot be adjusted")]
    NotAdjustable,
}

/// The operating system's clock, plus an injectable offset and drift.
///
/// The offset (signed nanoseconds) and drift (parts per million of elapsed
/// time since the drift was set) let tests and the jepsen clock nemesis move
/// this node's idea of time without touching the OS clock. Readings are
/// monotonic: a step backwards (from the OS or a negative offset bump) is
/// held at the last reading until real time catches up, as a TrueTime
/// implementation must never report time going backwards.
#[derive(Debug)]
pub struct SystemClock {
    offset_nanos: AtomicI64,
    drift_ppm: AtomicI64,
    drift_origin_nanos: AtomicU64,
    last_reading_nanos: AtomicU64,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock {
            offset_nanos: AtomicI64::new(0),
            drift_ppm: AtomicI64::new(0),
            drift_origin_nanos: AtomicU64::new(os_now_nanos()),
            last_reading_nanos: AtomicU64::new(0),
        }
    }

    /// Sets the offset added to every reading (may be negative).
    pub fn set_offset(&self, offset_nanos: i64) {
        self.offset_nanos.store(offset_nanos, Ordering::SeqCst);
    }

    pub fn offset_nanos(&self) -> i64 {
        self.offset_nanos.load(Ordering::SeqCst)
    }

    /// Sets a drift in parts per million, measured from now.
    pub fn set_drift_ppm(&self, ppm: i64) {
        self.drift_origin_nanos.store(os_now_nanos(), Ordering::SeqCst);
        self.drift_ppm.store(ppm, Ordering::SeqCst);
    }

    pub fn drift_ppm(&self) -> i64 {
        self.drift_ppm.load(Ordering::SeqCst)
    }
}

fn os_now_nanos() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    duration_nanos(since)
}

impl Clock for SystemClock {
    fn adjust(&self, offset_nanos: i64, drift_ppm: i64) -> Result<(), ClockError> {
        self.set_offset(offset_nanos);
        if drift_ppm != self.drift_ppm() {
            self.set_drift_ppm(drift_ppm);
        }
        Ok(())
    }

    fn adjustment(&self) -> (i64, i64) {
        (self.offset_nanos(), self.drift_ppm())
    }

    fn read(&self) -> Timestamp {
        let os = os_now_nanos();
        let origin = self.drift_origin_nanos.load(Ordering::SeqCst);
        let elapsed = os.saturating_sub(origin) as i128;
        let drift = elapsed * self.drift_ppm.load(Ordering::SeqCst) as i128 / 1_000_000;
        let offset = self.offset_nanos.load(Ordering::SeqCst) as i128;
        let raw = (os as i128 + offset + drift).clamp(0, u64::MAX as i128) as u64;
        // fetch_max returns the previous maximum; the reading is the larger.
        let prev = self.last_reading_nanos.fetch_max(raw, Ordering::SeqCst);
        Timestamp(prev.max(raw))
    }
}

/// A clock that only moves when told to: for deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock { nanos: AtomicU64::new(start.0) }
    }

    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(duration_nanos(d), Ordering::SeqCst);
    }

    /// Moves the clock to `t`; a manual clock may be set backwards, so tests
    /// can model a misbehaving clock.
    pub fn set(&self, t: Timestamp) {
        self.nanos.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn read(&self) -> Timestamp {
        Timestamp(self.nanos.load(Ordering::SeqCst))
    }
}

/// A clock plus its uncertainty bound.
#[derive(Clone, Debug)]
pub struct TrueTime {
    clock: Arc<dyn Clock>,
    epsilon: Duration,
}

/// A `TrueTime` configuration that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrueTimeError {
    #[error("epsilon {epsilon:?} exceeds the maximum {max:?}")]
    EpsilonTooLarge { epsilon: Duration, max: Duration },
}

impl TrueTime {
    /// # Panics
    /// If `epsilon > EPSILON_MAX`; use [`TrueTime::try_new`] for input that
    /// comes from users.
    pub fn new(clock: Arc<dyn Clock>, epsilon: Duration) -> Self {
        Self::try_new(clock, epsilon).expect("valid epsilon")
    }

    pub fn try_new(clock: Arc<dyn Clock>, epsilon: Duration) -> Result<Self, TrueTimeError> {
        if epsilon > EPSILON_MAX {
            return Err(TrueTimeError::EpsilonTooLarge { epsilon, max: EPSILON_MAX });
        }
        Ok(TrueTime { clock, epsilon })
    }

    /// The system clock with the given epsilon.
    pub fn system(epsilon: Duration) -> Result<Self, TrueTimeError> {
        Self::try_new(Arc::new(SystemClock::new()), epsilon)
    }

    pub fn epsilon(&self) -> Duration {
        self.epsilon
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn now(&self) -> TtInterval {
        TtInterval::around(self.clock.read(), self.epsilon)
    }

    /// True once `t` has definitely passed: `now().earliest > t`.
    pub fn after(&self, t: Timestamp) -> bool {
        self.now().after(t)
    }

    /// True while `t` has definitely not arrived: `now().latest < t`.
    pub fn before(&self, t: Timestamp) -> bool {
        self.now().before(t)
    }

    /// How much longer until `after(t)` holds, by this clock; zero if it
    /// already does. Async drivers sleep this long and check again (the
    /// clock may have been adjusted meanwhile).
    pub fn commit_wait_remaining(&self, t: Timestamp) -> Duration {
        let earliest = self.now().earliest;
        if earliest > t {
            Duration::ZERO
        } else {
            // earliest must become t + 1.
            t.next().duration_since(earliest).max(Duration::from_nanos(1))
        }
    }

    /// Blocks the calling thread until `after(t)`. For async code, loop on
    /// [`TrueTime::commit_wait_remaining`] with the runtime's sleep instead.
    /// Returns how long it waited.
    ///
    /// With a [`ManualClock`] this only returns once another thread moves
    /// the clock past `t`.
    pub fn commit_wait(&self, t: Timestamp) -> Duration {
        let start = std::time::Instant::now();
        loop {
            let remaining = self.commit_wait_remaining(t);
            if remaining.is_zero() {
                return start.elapsed();
            }
            std::thread::sleep(remaining.min(Duration::from_millis(10)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manual(start_ns: u64, epsilon_ms: u64) -> (Arc<ManualClock>, TrueTime) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_nanos(start_ns)));
        let tt = TrueTime::new(clock.clone(), Duration::from_millis(epsilon_ms));
        (clock, tt)
    }

    #[test]
    fn interval_is_two_epsilon_wide() {
        let (_, tt) = manual(10_000_000_000, 3);
        let now = tt.now();
        assert_eq!(now.latest.duration_since(now.earliest), Duration::from_millis(6));
    }

    /// Goal: `after` and `before` are strict at their boundaries; the exact
    /// nanosecond where each flips is pinned down.
    #[test]
    fn after_and_before_boundaries() {
        let eps = Duration::from_millis(1);
        let (clock, tt) = manual(5_000_000_000, 1);
        let t = Timestamp::from_nanos(5_000_000_000);
        // earliest = t - eps: not after t; latest = t + eps: not before t.
        assert!(!tt.after(t));
        assert!(!tt.before(t));
        // Move so that earliest == t exactly: still not after (strict).
        clock.advance(eps);
        assert!(!tt.after(t));
        clock.advance(Duration::from_nanos(1));
        assert!(tt.after(t));
        // before(): latest < t. Reading t - eps - 1 => latest = t - 1.
        clock.set(t.saturating_sub(eps).prev());
        assert!(tt.before(t));
        clock.set(t.saturating_sub(eps));
        assert!(!tt.before(t));
    }

    #[test]
    fn commit_wait_remaining_is_exact() {
        let (clock, tt) = manual(1_000_000_000, 2);
        let s = tt.now().latest;
        let remaining = tt.commit_wait_remaining(s);
        assert_eq!(remaining, Duration::from_nanos(4_000_001));
        clock.advance(remaining - Duration::from_nanos(1));
        assert!(!tt.after(s));
        clock.advance(Duration::from_nanos(1));
        assert!(tt.after(s));
        assert_eq!(tt.commit_wait_remaining(s), Duration::ZERO);
    }

    #[test]
    fn commit_wait_blocks_until_another_thread_moves_the_clock() {
        let (clock, tt) = manual(1_000_000_000, 1);
        let s = tt.now().latest;
        let mover = std::thread::spawn(move || {
            clock.advance(Duration::from_millis(3));
        });
        tt.commit_wait(s);
        assert!(tt.after(s));
        mover.join().unwrap();
    }

    #[test]
    fn system_clock_never_goes_backwards() {
        let clock = SystemClock::new();
        let a = clock.read();
        clock.set_offset(-3_600_000_000_000); // an hour back
        let b = clock.read();
        assert!(b >= a, "reading went backwards: {a:?} -> {b:?}");
        clock.set_offset(3_600_000_000_000);
        let c = clock.read();
        assert!(c.duration_since(a) >= Duration::from_secs(3599));
    }

    #[test]
    fn system_clock_drift_moves_time() {
        let clock = SystemClock::new();
        clock.set_drift_ppm(1_000_000); // runs twice as fast
        let a = clock.read();
        std::thread::sleep(Duration::from_millis(20));
        let b = clock.read();
        assert!(b.duration_since(a) >= Duration::from_millis(39), "{:?}", b.duration_since(a));
    }

    #[test]
    fn epsilon_is_bounded() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::ZERO));
        assert!(TrueTime::try_new(clock.clone(), EPSILON_MAX).is_ok());
        assert!(matches!(
            TrueTime::try_new(clock, EPSILON_MAX + Duration::from_nanos(1)),
            Err(TrueTimeError::EpsilonTooLarge { .. })
        ));
    }

    #[test]
    fn interval_saturates_near_zero() {
        let (_, tt) = manual(1_000, 2);
        assert_eq!(tt.now().earliest, Timestamp::ZERO);
    }

    #[test]
    fn timestamp_text_round_trips() {
        let t = Timestamp::from_nanos(1_764_000_000_123_456_789);
        let text = t.to_string();
        assert_eq!(text, "2025-11-24T16:00:00.123456789Z");
        assert_eq!(text.parse::<Timestamp>().unwrap(), t);
        assert_eq!("1764000000123456789".parse::<Timestamp>().unwrap(), t);
        assert_eq!("2025-11-24T17:00:00.123456789+01:00".parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn bad_timestamps_are_errors() {
        for bad in ["", "yesterday", "-5", "1969-12-31T23:59:59Z", "99999999999999999999"] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad:?} parsed");
        }
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trip(n in 0u64..=u64::MAX) {
            let t = Timestamp::from_nanos(n);
            proptest::prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        }
    }

    /// Goldenscript: `testscripts/commit_wait_boundary`.
    mod scripts {
        use std::error::Error;
        use std::fmt::Write as _;

        use super::*;

        struct Runner {
            clock: Arc<ManualClock>,
            tt: TrueTime,
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
                let mut number =
                    || -> Result<u64, Box<dyn Error>> { Ok(args.next_pos().ok_or("a number is required")?.parse()?) };
                match command.name.as_str() {
                    "epsilon" => self.tt = TrueTime::new(self.clock.clone(), Duration::from_nanos(number()?)),
                    "clock" => self.clock.set(Timestamp::from_nanos(number()?)),
                    "advance" => self.clock.advance(Duration::from_nanos(number()?)),
                    "now" => {
                        let now = self.tt.now();
                        writeln!(out, "now = [{}, {}]", now.earliest.as_nanos(), now.latest.as_nanos())?;
                    }
                    "after" => {
                        let t = number()?;
                        writeln!(out, "after({t}) = {}", self.tt.after(Timestamp::from_nanos(t)))?;
                    }
                    "before" => {
                        let t = number()?;
                        writeln!(out, "before({t}) = {}", self.tt.before(Timestamp::from_nanos(t)))?;
                    }
                    "wait" => {
                        let t = number()?;
                        let d = self.tt.commit_wait_remaining(Timestamp::from_nanos(t));
                        writeln!(out, "commit-wait for {t}: {} ns more", d.as_nanos())?;
                    }
                    other => return Err(format!("unknown command {other}").into()),
                }
                Ok(out)
            }
        }

        #[test]
        fn commit_wait_boundary() -> std::io::Result<()> {
            let clock = Arc::new(ManualClock::new(Timestamp::ZERO));
            let tt = TrueTime::new(clock.clone(), Duration::ZERO);
            goldenscript::run(&mut Runner { clock, tt }, "src/testscripts/commit_wait_boundary")
        }
    }
}
