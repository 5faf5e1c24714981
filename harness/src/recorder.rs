//! The recorder: every event of a run, in one order, on one clock.
//!
//! Workers call [`Recorder::invoke`] just before they send an operation and
//! [`Recorder::complete`] just after they learn its fate; the nemesis calls
//! [`Recorder::nemesis`]. Each call takes the time (nanoseconds since the
//! run started, from one monotonic clock) and the next index under one
//! lock, so indexes are dense and times never decrease, as `jepsen::History`
//! requires.
//!
//! Recording before sending and after receiving is what makes the history
//! honest: the op's real effect lies somewhere inside its recorded
//! interval, so any real-time order the checkers infer is real.
//!
//! # Process ids
//!
//! ```text
//!   worker 1 of 5:  p1 ─ok─ p1 ─fail─ p1 ─info─► p6 ─ok─ p6 ─info─► p11 ...
//! ```
//!
//! A worker starts as process `w`. After an `info` its op may still be in
//! flight, so the worker continues as a new process, `p + concurrency`
//! ([`next_process`], Jepsen's rule): ids are never reused after `info`,
//! and `p % concurrency` still names the worker.

use std::sync::Mutex;
use std::time::Instant;

use jepsen::{History, Op, OpType, Process};
use serde_json::Value;

use crate::workload::{Completion, Invocation};

/// The process a worker continues as after an `info` completion.
pub fn next_process(process: u64, concurrency: usize) -> u64 {
    process + concurrency as u64
}

pub struct Recorder {
    started: Instant,
    events_max: usize,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    /// A recorder whose clock starts now and that holds at most
    /// `events_max` events (client completions are always recorded, so an
    /// invoked op never lacks its completion).
    pub fn new(events_max: usize) -> Recorder {
        Recorder { started: Instant::now(), events_max, ops: Mutex::new(Vec::new()) }
    }

    /// Appends an event; `fill` adds what the op learned (timestamps, an
    /// error).
    fn push(&self, process: Process, op_type: OpType, f: &str, value: Value, fill: impl FnOnce(&mut Op)) {
        let mut ops = self.ops.lock().expect("recorder lock");
        let index = ops.len() as u64;
        // Taken under the lock: times follow indexes.
        let time_ns = self.started.elapsed().as_nanos() as u64;
        let mut op = Op::new(index, time_ns, process, op_type, f, value);
        fill(&mut op);
        ops.push(op);
    }

    /// Records an invocation; false (nothing recorded) when the history is
    /// full, and the worker should stop.
    pub fn invoke(&self, process: u64, invocation: &Invocation) -> bool {
        if self.len() >= self.events_max {
            return false;
        }
        self.push(Process::Client(process), OpType::Invoke, invocation.f, invocation.value.clone(), |_| {});
        true
    }

    /// Records the completion of `process`'s outstanding `invocation`.
    pub fn complete(&self, process: u64, invocation: &Invocation, completion: Completion) {
        assert!(completion.op_type != OpType::Invoke, "a completion cannot be an invocation");
        let Completion { op_type, value, commit_ts, read_ts, version_ts, error } = completion;
        self.push(Process::Client(process), op_type, invocation.f, value, |op| {
            (op.commit_ts, op.read_ts, op.version_ts, op.error) = (commit_ts, read_ts, version_ts, error);
        });
    }

    /// Records a nemesis event (`start-kill`, `stop-partition`, ...).
    pub fn nemesis(&self, f: &str, value: Value) {
        self.push(Process::Nemesis, OpType::Info, f, value, |_| {});
    }

    pub fn len(&self) -> usize {
        self.ops.lock().expect("recorder lock").len()
    }

    /// Whether the history reached its size limit.
    pub fn is_full(&self) -> bool {
        self.len() >= self.events_max
    }

    /// The recorded history, checked against the history model's rules (a
    /// failure here is a harness bug, reported as an error).
    pub fn into_history(self) -> Result<History, jepsen::Error> {
        History::new(self.ops.into_inner().expect("recorder lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inv(f: &'static str, value: Value) -> Invocation {
        Invocation { f, value }
    }

    /// Goal: the process-id rule never reuses an id and keeps the worker
    /// recoverable as `p % concurrency`.
    /// Method: follow every worker of 5 through 100 infos.
    #[test]
    fn process_ids_are_never_reused_after_info() {
        let concurrency = 5;
        let mut seen = std::collections::BTreeSet::new();
        for worker in 0..concurrency as u64 {
            let mut p = worker;
            for _ in 0..100 {
                assert!(seen.insert(p), "process {p} reused");
                assert_eq!(p % concurrency as u64, worker);
                p = next_process(p, concurrency);
            }
        }
        assert_eq!(next_process(3, 5), 8);
    }

    /// Goal: recorded events form a valid history: dense indexes, times
    /// that never decrease, completions carrying timestamps and errors, a
    /// fresh process after info, nemesis events as process -1.
    /// Method: record a small run by hand and build the `History`.
    #[test]
    fn recorded_events_form_a_valid_history() {
        let r = Recorder::new(100);
        let w = inv("write", json!([1, 5]));
        assert!(r.invoke(0, &w));
        r.nemesis("start-pause", json!({"nodes": [2]}));
        r.complete(0, &w, Completion::ok(json!([1, 5]), Some(77)));
        assert!(r.invoke(0, &w));
        r.complete(0, &w, Completion::info(json!([1, 5]), "timed out"));
        let p = next_process(0, 5);
        let read = inv("read", json!([1, null]));
        assert!(r.invoke(p, &read));
        r.complete(p, &read, Completion::fail(json!([1, null]), "unavailable"));
        assert!(r.invoke(p, &read));
        r.complete(p, &read, Completion::read(json!([1, 5]), 90, Some(77)));
        let h = r.into_history().expect("a valid history");
        assert_eq!(h.len(), 9);
        assert_eq!((h.ops()[8].read_ts, h.ops()[8].version_ts, h.ops()[8].commit_ts), (Some(90), Some(77), None));
        assert!(h.ops().windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
        assert_eq!(h.ops()[1].process, Process::Nemesis);
        assert_eq!(h.ops()[2].commit_ts, Some(77));
        assert_eq!(h.ops()[4].error.as_deref(), Some("timed out"));
        assert_eq!(h.ops()[5].process, Process::Client(5));
    }

    /// Goal: a full recorder refuses new invocations but still records
    /// completions, so no op is left without its fate.
    #[test]
    fn a_full_recorder_still_records_completions() {
        let r = Recorder::new(1);
        let w = inv("write", json!([1, 5]));
        assert!(r.invoke(0, &w));
        assert!(r.is_full());
        assert!(!r.invoke(1, &w));
        r.complete(0, &w, Completion::ok(json!([1, 5]), None));
        assert_eq!(r.into_history().unwrap().len(), 2);
    }
}
