//! One retry policy for everything that sends a request to a shard's
//! leader and follows it around: the client library (`client::execute`)
//! and the servers' commit-protocol calls (`spanserver::peers`).
//!
//! A request to a shard can fail because the server asked is not the
//! leader (often naming the one it believes is), or for a reason that
//! may pass (the server is down, busy, installing a snapshot, the shard
//! moved). Both callers answer the same way, so the rule lives here,
//! free of I/O: the caller says how an attempt failed and how long it
//! has been trying, and [`Retries::next`] says when to try again.
//!
//! ```text
//!   attempt ──NotLeader{hinted}──> follow the hint at once (at most hints_max in a row)
//!           ──otherwise──────────> wait backoff * jitter, then backoff = min(2 * backoff, backoff_max)
//!   elapsed >= deadline ─────────> give up
//! ```
//!
//! Example: with `backoff_min` 20 ms and `backoff_max` 500 ms, failures
//! wait about 20, 40, 80, 160, 320, 500, 500 ms (each times a jitter in
//! [0.5, 1.5), which keeps many clients from retrying in step); a wait
//! never runs past the deadline.
//!
//! Invariants: a wait is at most `backoff_max * 1.5` and never ends past
//! the deadline; hints are followed at most `hints_max` times in a row
//! (two servers naming each other cannot keep a caller spinning).

use std::time::Duration;

/// How a caller retries. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How long to keep trying, from the first attempt.
    pub deadline: Duration,
    /// The first wait after a failure.
    pub backoff_min: Duration,
    /// The longest wait (before jitter).
    pub backoff_max: Duration,
    /// Leader hints followed in a row without waiting.
    pub hints_max: u32,
}

/// How one attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server asked does not lead the shard; `hinted`: it named the
    /// one it believes does.
    NotLeader { hinted: bool },
    /// Anything else worth trying again (unavailable, unreachable, busy,
    /// a moved shard).
    Retryable,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at once (following a hint).
    Now,
    /// Wait this long, then try again.
    Wait(Duration),
    /// The deadline has passed.
    GiveUp,
}

/// The retry state of one request.
#[derive(Debug, Clone)]
pub struct Retries {
    policy: RetryPolicy,
    backoff: Duration,
    hints_followed: u32,
}

impl Retries {
    pub fn new(policy: RetryPolicy) -> Retries {
        Retries { policy, backoff: policy.backoff_min, hints_followed: 0 }
    }

    /// After an attempt failed with `failure`, `elapsed` after the first
    /// attempt began: when to try again. `jitter` scales the wait; it is
    /// clamped to [0.5, 1.5) (the caller draws it, so tests can fix it).
    pub fn next(&mut self, failure: Failure, elapsed: Duration, jitter: f64) -> Next {
        if elapsed >= self.policy.deadline {
            return Next::GiveUp;
        }
        if failure == (Failure::NotLeader { hinted: true }) && self.hints_followed < self.policy.hints_max {
            self.hints_followed += 1;
            return Next::Now;
        }
        self.hints_followed = 0;
        let jitter = if jitter.is_finite() { jitter.clamp(0.5, 1.5) } else { 1.0 };
        let wait = self.backoff.mul_f64(jitter).min(self.policy.deadline - elapsed);
        self.backoff = (self.backoff * 2).min(self.policy.backoff_max);
        Next::Wait(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> RetryPolicy {
        RetryPolicy { deadline: 2_000 * MS, backoff_min: 20 * MS, backoff_max: 500 * MS, hints_max: 2 }
    }

    /// Goal: the policy's answers, step by step: hints followed at once
    /// up to the limit, then waits that double up to the cap, scaled by
    /// the jitter, never past the deadline; a hint after a wait is
    /// followed again; past the deadline, give up.
    #[test]
    fn a_sequence_of_failures_gets_the_policy_answers() {
        let hinted = Failure::NotLeader { hinted: true };
        let unhinted = Failure::NotLeader { hinted: false };
        let other = Failure::Retryable;
        // (failure, elapsed ms, jitter, expected)
        let table = [
            (hinted, 0, 1.0, Next::Now),
            (hinted, 1, 1.0, Next::Now),
            (hinted, 2, 1.0, Next::Wait(20 * MS)), // the third hint in a row waits
            (hinted, 30, 1.0, Next::Now),          // the count restarts after a wait
            (unhinted, 31, 1.0, Next::Wait(40 * MS)),
            (other, 80, 0.5, Next::Wait(40 * MS)), // 80 ms * 0.5
            (other, 130, 1.5, Next::Wait(240 * MS)),
            (other, 400, 1.0, Next::Wait(320 * MS)),
            (other, 800, 1.0, Next::Wait(500 * MS)),   // capped
            (other, 1_400, 9.0, Next::Wait(600 * MS)), // jitter clamped to 1.5, then cut at the deadline
            (other, 1_900, 1.0, Next::Wait(100 * MS)), // not past the deadline
            (hinted, 2_000, 1.0, Next::GiveUp),
        ];
        let mut retries = Retries::new(policy());
        for (i, (failure, elapsed, jitter, expected)) in table.into_iter().enumerate() {
            assert_eq!(retries.next(failure, elapsed * MS, jitter), expected, "step {i}: {failure:?} at {elapsed} ms");
        }
    }

    /// Goal: a jitter that is not a number does not poison the wait.
    #[test]
    fn a_nan_jitter_waits_the_plain_backoff() {
        let mut retries = Retries::new(policy());
        assert_eq!(retries.next(Failure::Retryable, Duration::ZERO, f64::NAN), Next::Wait(20 * MS));
    }
}
