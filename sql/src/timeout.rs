//! Statement timeouts: `SET statement_timeout = '5s'` cancels any
//! statement of the session that runs longer, with PostgreSQL's error
//! (57014 "canceling statement due to statement timeout").
//!
//! # Model
//!
//! A statement already stops when its session's cancel flag is set (a
//! CancelRequest, Ctrl-C, a client that hung up): the executor checks the
//! flag as it works, and the engine's waits for locks watch it. A timeout
//! is one more way to set that flag, so it costs the running statement
//! nothing but arming and disarming (a lock each): no clock is read on
//! its paths.
//!
//! ```text
//!   session: statement starts ── arm(deadline, flags) ──┐
//!                                                       │  Watchdog: the armed
//!   watchdog thread: fire_due(now) at each deadline ────┤  statements, by ticket
//!            sets `timed_out`, then the cancel flag ────┘
//!   session: statement ends ── disarm(ticket): timed_out? then the
//!            57014 it failed with says "statement timeout"
//! ```
//!
//! One [`Watchdog`] serves every session of a gateway (or a shell's one):
//! sessions arm and disarm it, and one thread of the gateway's runs
//! [`Watchdog::serve`], which sleeps until the nearest deadline or until a
//! nearer one is armed. The crate reads no clock itself: `serve` is given
//! the engine's monotonic one (`Engine::monotonic_ns`), as sessions take
//! their deadlines from it, so a step of the wall clock moves no
//! deadline.
//!
//! # Invariants
//!
//! - Once [`Watchdog::disarm`] returns, that statement's flags are never
//!   set by it: firing and disarming take the same lock.
//! - `timed_out` is set before the cancel flag, so a statement stopped by
//!   a timeout always sees why.
//! - A session without a watchdog (`Session::new`, tests) never times out.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//! use sql::timeout::{Flags, Watchdog};
//!
//! let watchdog = Watchdog::default();
//! let flags = Flags { cancel: Arc::new(AtomicBool::new(false)), timed_out: Arc::default() };
//! let ticket = watchdog.arm(1_000, flags.clone());
//! assert_eq!(watchdog.fire_due(999), Some(1_000));
//! assert!(!flags.cancel.load(Ordering::SeqCst));
//! watchdog.fire_due(1_000);
//! assert!(flags.timed_out.load(Ordering::SeqCst) && flags.cancel.load(Ordering::SeqCst));
//! watchdog.disarm(ticket);
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What firing a statement's timeout sets.
#[derive(Clone)]
pub struct Flags {
    /// The session's cancel flag: the statement stops at its next check.
    pub cancel: Arc<AtomicBool>,
    /// Set first: the cancel was the timeout's.
    pub timed_out: Arc<AtomicBool>,
}

/// An armed statement, to disarm when it ends.
#[must_use = "a statement's timeout is disarmed by its ticket"]
pub struct Ticket(u64);

/// The armed statements of a gateway's sessions and their deadlines
/// (module docs).
#[derive(Default)]
pub struct Watchdog {
    armed: Mutex<Armed>,
    /// Woken when a statement is armed (its deadline may be the nearest).
    changed: Condvar,
}

#[derive(Default)]
struct Armed {
    next_ticket: u64,
    /// By ticket: each statement's deadline (nanoseconds on the engine's
    /// clock) and flags. As many as sessions run statements with a
    /// timeout, so scanning them all is cheap.
    statements: HashMap<u64, (u64, Flags)>,
}

/// The longest [`Watchdog::serve`] sleeps between looks at its stop flag.
const SERVE_STOP_CHECK: Duration = Duration::from_secs(1);

impl Watchdog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Armed> {
        self.armed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A statement with `flags` must stop at `deadline_ns`.
    pub fn arm(&self, deadline_ns: u64, flags: Flags) -> Ticket {
        let mut armed = self.lock();
        armed.next_ticket += 1;
        let ticket = armed.next_ticket;
        // Only a new nearest deadline needs the serving thread to wake.
        let nearest = armed.statements.values().all(|(deadline, _)| deadline_ns < *deadline);
        armed.statements.insert(ticket, (deadline_ns, flags));
        drop(armed);
        if nearest {
            self.changed.notify_all();
        }
        Ticket(ticket)
    }

    /// The statement ended: its timeout no longer fires.
    pub fn disarm(&self, ticket: Ticket) {
        self.lock().statements.remove(&ticket.0);
    }

    /// Stops every armed statement whose deadline is at or before
    /// `now_ns`; returns the nearest deadline left.
    pub fn fire_due(&self, now_ns: u64) -> Option<u64> {
        let mut armed = self.lock();
        armed.statements.retain(|_, (deadline, flags)| {
            let due = *deadline <= now_ns;
            if due {
                flags.timed_out.store(true, Ordering::SeqCst);
                flags.cancel.store(true, Ordering::SeqCst);
            }
            !due
        });
        armed.statements.values().map(|(deadline, _)| *deadline).min()
    }

    /// Wakes [`Watchdog::serve`] to look at its stop flag.
    pub fn wake(&self) {
        self.changed.notify_all();
    }

    /// Fires timeouts as they fall due, by `clock` (nanoseconds, the
    /// engine's), until `stop` is set: the gateway's watchdog thread.
    pub fn serve(&self, clock: &dyn Fn() -> u64, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let next = self.fire_due(clock());
            let armed = self.lock();
            // Armed meanwhile: look again before sleeping.
            if armed.statements.values().map(|(deadline, _)| *deadline).min() != next {
                continue;
            }
            let wait = next.map_or(SERVE_STOP_CHECK, |deadline| {
                Duration::from_nanos(deadline.saturating_sub(clock())).min(SERVE_STOP_CHECK)
            });
            let _ = self.changed.wait_timeout(armed, wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags { cancel: Arc::new(AtomicBool::new(false)), timed_out: Arc::default() }
    }

    /// Goal: a deadline fires once it has passed, not before, and a
    /// disarmed statement is never stopped. Method: two statements, fire
    /// at times around their deadlines.
    #[test]
    fn fires_at_the_deadline_and_never_after_disarm() {
        let watchdog = Watchdog::default();
        let (early, late) = (flags(), flags());
        let early_ticket = watchdog.arm(100, early.clone());
        let late_ticket = watchdog.arm(200, late.clone());
        assert_eq!(watchdog.fire_due(99), Some(100));
        assert!(!early.cancel.load(Ordering::SeqCst));
        watchdog.disarm(late_ticket);
        assert_eq!(watchdog.fire_due(150), None);
        assert!(early.timed_out.load(Ordering::SeqCst) && early.cancel.load(Ordering::SeqCst));
        watchdog.fire_due(1_000);
        assert!(!late.cancel.load(Ordering::SeqCst) && !late.timed_out.load(Ordering::SeqCst));
        watchdog.disarm(early_ticket);
    }

    /// Goal: `serve` fires a deadline armed while it sleeps for a later
    /// one. Method: a thread serving on the real clock; arm 50 ms ahead;
    /// poll for the flag with a deadline. (How soon it fires is the
    /// condition variable's business, not asserted: a timed check.)
    #[test]
    fn serve_wakes_for_a_nearer_deadline() {
        let watchdog = Arc::new(Watchdog::default());
        let stop = Arc::new(AtomicBool::new(false));
        let start = std::time::Instant::now();
        let clock = move || start.elapsed().as_nanos() as u64;
        let served = {
            let (watchdog, stop) = (watchdog.clone(), stop.clone());
            std::thread::spawn(move || watchdog.serve(&clock, &stop))
        };
        let far = watchdog.arm(u64::MAX, flags());
        let near = flags();
        let ticket = watchdog.arm(clock() + 50_000_000, near.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !near.cancel.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "the nearer deadline never fired");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(near.timed_out.load(Ordering::SeqCst));
        watchdog.disarm(ticket);
        watchdog.disarm(far);
        stop.store(true, Ordering::Relaxed);
        watchdog.wake();
        served.join().unwrap();
    }
}
