//! Commit-wait with sub-millisecond precision.
//!
//! Every acknowledged write waits until `TT.after(commit_ts)` (Spanner
//! §4.1.2), about `2 * epsilon` after its timestamp was picked. Tokio's
//! timer wheel has millisecond granularity, which would add up to a
//! millisecond to every write; with `epsilon = 1 ms` that is a third of
//! the write's latency. So commit waits are kept in one deadline heap,
//! served by one thread that sleeps precisely (a condition variable with a
//! timeout) until the earliest deadline and wakes every waiter that is due.
//!
//! ```text
//!   handler: waiter.wait(s).await ──> heap: (s, seq) -> oneshot
//!   timer thread: sleep until TT.after(min s), fire every due oneshot
//! ```
//!
//! Invariant: a wait never finishes before `TT.after(s)` by the server's
//! TrueTime (checked again by the waiter when it wakes, so even a clock
//! moved by the clock nemesis cannot release it early).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use truetime::{Timestamp, TrueTime};

/// The longest the timer thread sleeps before re-reading the clock (the
/// clock may be adjusted while it sleeps).
const TIMER_SLEEP_MAX: Duration = Duration::from_millis(50);

#[derive(Default)]
struct State {
    deadlines: BinaryHeap<Reverse<(Timestamp, u64)>>,
    waiters: HashMap<u64, oneshot::Sender<()>>,
    next_seq: u64,
    stopped: bool,
}

/// Waits for TrueTime to pass timestamps; cheap to clone.
#[derive(Clone)]
pub struct CommitWaiter {
    tt: TrueTime,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl CommitWaiter {
    /// Starts the timer thread; it stops when every `CommitWaiter` clone is
    /// dropped or [`CommitWaiter::stop`] is called.
    pub fn start(tt: TrueTime) -> std::io::Result<CommitWaiter> {
        let waiter = CommitWaiter { tt, shared: Arc::new((Mutex::new(State::default()), Condvar::new())) };
        let weak = Arc::downgrade(&waiter.shared);
        let tt = waiter.tt.clone();
        std::thread::Builder::new().name("spandb-commit-wait".into()).spawn(move || timer(tt, weak))?;
        Ok(waiter)
    }

    /// Resolves once `TT.after(ts)` holds.
    pub async fn wait(&self, ts: Timestamp) {
        loop {
            if self.tt.after(ts) {
                return;
            }
            let (tx, rx) = oneshot::channel();
            let registered = {
                let (lock, cvar) = &*self.shared;
                let mut state = lock.lock().expect("commit-wait lock");
                if state.stopped {
                    false
                } else {
                    let seq = state.next_seq;
                    state.next_seq += 1;
                    state.deadlines.push(Reverse((ts, seq)));
                    state.waiters.insert(seq, tx);
                    cvar.notify_one();
                    true
                }
            };
            if registered {
                // Woken (or the timer went away): check the clock again.
                let _ = rx.await;
            } else {
                // No timer: fall back to the runtime's timer.
                tokio::time::sleep(self.tt.commit_wait_remaining(ts)).await;
            }
        }
    }

    /// Stops the timer thread, releasing every waiter (they re-check the
    /// clock and fall back to the runtime's timer).
    pub fn stop(&self) {
        let (lock, cvar) = &*self.shared;
        let mut state = lock.lock().expect("commit-wait lock");
        state.stopped = true;
        state.deadlines.clear();
        state.waiters.clear();
        cvar.notify_one();
    }
}

fn timer(tt: TrueTime, shared: std::sync::Weak<(Mutex<State>, Condvar)>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let (lock, cvar) = &*shared;
        let mut state = lock.lock().expect("commit-wait lock");
        if state.stopped {
            return;
        }
        while let Some(Reverse((ts, seq))) = state.deadlines.peek().copied() {
            if !tt.after(ts) {
                break;
            }
            state.deadlines.pop();
            if let Some(tx) = state.waiters.remove(&seq) {
                let _ = tx.send(());
            }
        }
        let sleep = match state.deadlines.peek() {
            Some(Reverse((ts, _))) => tt.commit_wait_remaining(*ts).min(TIMER_SLEEP_MAX),
            None => TIMER_SLEEP_MAX,
        };
        let _ = cvar.wait_timeout(state, sleep).expect("commit-wait lock");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use truetime::ManualClock;

    /// Goal: a wait ends only once TT.after(ts) holds, whatever the order
    /// of registration, and waits on past timestamps end at once.
    #[tokio::test]
    async fn waits_end_exactly_when_their_timestamp_has_passed() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_nanos(1_000_000_000)));
        let tt = TrueTime::new(clock.clone(), Duration::from_millis(1));
        let waiter = CommitWaiter::start(tt.clone()).unwrap();
        waiter.wait(Timestamp::from_nanos(1)).await;
        let late = tt.now().latest.saturating_add(Duration::from_millis(5));
        let soon = tt.now().latest;
        let (w1, w2) = (waiter.clone(), waiter.clone());
        let late_task = tokio::spawn(async move { w1.wait(late).await });
        let soon_task = tokio::spawn(async move { w2.wait(soon).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!late_task.is_finished() && !soon_task.is_finished());
        clock.advance(Duration::from_millis(2) + Duration::from_nanos(1));
        soon_task.await.unwrap();
        assert!(tt.after(soon));
        assert!(!late_task.is_finished());
        clock.advance(Duration::from_millis(5));
        late_task.await.unwrap();
        assert!(tt.after(late));
        waiter.stop();
    }
}
