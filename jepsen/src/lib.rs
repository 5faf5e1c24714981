//! Histories and checkers for SpanDB's Jepsen-style verification.
//!
//! `spandb jepsen` runs workloads against a live cluster while a nemesis
//! kills, pauses, partitions and skews it, records every operation the
//! clients attempted, and then asks: could a correct database have produced
//! this? This crate is the part that answers. It is pure: it reads a
//! history, runs checkers over it, and renders a report; it starts no
//! cluster, opens no socket and reads no clock except the checkers' own
//! deadline. That keeps it deterministic, fast to build, and testable
//! against hand-written histories with known anomalies, so that a checker
//! bug cannot quietly pass everything (STYLE.md, "Tests").
//!
//! ```text
//!   harness (not here)            this crate
//!   clients + nemesis ──JSONL──► History ──► checker::* ──► Verdict ──► report::{summary, html}
//!                                 validated   pure fns        valid | invalid | unknown
//! ```
//!
//! # The history model
//!
//! A [`History`] is a sequence of [`Op`] events, one JSON object per line,
//! in Jepsen's shape (see [`history`] for the rules):
//!
//! ```text
//! {"index":0,"time":1000,"process":0,"type":"invoke","f":"write","value":[7,1]}
//! {"index":1,"time":1200,"process":1,"type":"invoke","f":"read","value":[7,null]}
//! {"index":2,"time":1500,"process":-1,"type":"info","f":"start-partition","value":"majority"}
//! {"index":3,"time":2500,"process":0,"type":"ok","f":"write","value":[7,1],"commit_ts":1764000000000002000}
//! {"index":4,"time":9000,"process":1,"type":"info","f":"read","value":[7,null],"error":"timeout"}
//! ```
//!
//! `index` is the position; `time` is nanoseconds since the test started,
//! from one monotonic clock; a `process` is a client running one op at a
//! time (`-1`, or Jepsen's `"nemesis"`, is the fault injector); `type` is
//! `invoke`, then `ok` (it happened), `fail` (it did not) or `info` (it may
//! happen, at any later time, or never). An op still outstanding at the
//! end counts as `info`. [`History::pairs`] matches each invocation with
//! its completion as a [`Pair`].
//!
//! One line per workload, as the checkers read them:
//!
//! ```text
//! register  {"index":9,"time":5,"process":2,"type":"ok","f":"cas","value":[7,[1,2]],"commit_ts":1764000000000002000}
//!           {"index":9,"time":5,"process":2,"type":"ok","f":"read-only","value":[7,2],"read_ts":1764000000000003000,"version_ts":1764000000000002000}
//! set       {"index":9,"time":5,"process":2,"type":"ok","f":"read","value":[1,2,5]}
//! bank      {"index":9,"time":5,"process":2,"type":"ok","f":"transfer","value":{"from":0,"to":3,"amount":5}}
//! append    {"index":9,"time":5,"process":2,"type":"ok","f":"txn","value":[["append",3,7],["r",4,[1,2]]]}
//! external  any ok op with "commit_ts": 1764000000000002000
//! ```
//!
//! # What each checker guarantees
//!
//! | checker | property | what a violation means |
//! |---|---|---|
//! | [`checker::register`] | linearizability, per key | a single-key read saw a value it could not see at any instant inside its interval |
//! | [`checker::timestamped`] | reads agree with commit timestamps, per key | a read returned a version other than the newest at its timestamp, read below a commit already revealed, or was staler than its bound |
//! | [`checker::list_append`] with `Serializable` | serializability | no serial order of the transactions explains the reads (G0, G1a/b/c, G-single, G2) |
//! | [`checker::list_append`] with `StrictSerializable` | strict serializability | a serial order exists only against real time (`*-realtime` cycles) |
//! | [`checker::external`] | external consistency of `commit_ts` | T1 ended before T2 began but `commit_ts(T1) >= commit_ts(T2)` |
//! | [`checker::set`] | durability of acknowledged writes | an `ok` add is gone, or a failed add is present |
//! | [`checker::bank`] | snapshot consistency | a read saw money created or destroyed |
//!
//! Strict serializability implies serializability, and on single-key
//! operations it is linearizability. External consistency is Spanner's
//! name for strict serializability (Corbett et al., OSDI 2012, §4.1.2), but
//! the `external` checker tests something narrower and complementary: the
//! *timestamps* the database assigns. A database can order operations
//! correctly and still hand out a `commit_ts` that is too small (say,
//! commit-wait skipped); snapshot reads at a timestamp would then miss
//! committed data. Only this checker sees that.
//!
//! # Invariants
//!
//! - Every [`History`] satisfies the model's rules: dense indexes,
//!   non-decreasing time, one outstanding op per process, completions
//!   matching invocations, no reuse of a process after `info`
//!   ([`History::new`] and [`History::read_jsonl`] check them; corrupt
//!   input is an [`Error`] with its line, never a panic).
//! - A [`Verdict`] is `Invalid` exactly when it lists anomalies (asserted
//!   when built). Checkers never panic on a well-formed history: a value
//!   they cannot interpret, a budget they exhaust, or a history with
//!   nothing to check gives `Unknown`, which the harness treats as failure.
//! - Output is deterministic for a given history (sorted maps, stable
//!   orders), except that the linearizability deadline depends on the
//!   machine's speed.
//!
//! # Limits
//!
//! Every bound is a named constant in [`limits`]: the longest history
//! line, the linearizability deadline and state budget, how many anomalies
//! of a kind and ops per anomaly are listed, and how much of a history the
//! HTML timeline draws.
//!
//! # Caveats
//!
//! - Real time is the harness's one monotonic clock: clients on several
//!   machines need a shared clock, or the real-time edges (register,
//!   strict serializability, external consistency) are meaningless.
//! - Registers start absent (`null`); a harness that preloads keys must
//!   record the preload as ops.
//! - The list-append checker is a subset of Elle: version orders only from
//!   reads, no other datatypes, no lost-update or G-nonadjacent reports,
//!   one cycle per strongly connected component (see
//!   [`checker::list_append`] for the list).
//! - The set checker looks only at the final read; the bank checker at
//!   each read's snapshot, not at its recency.
//!
//! # Example
//!
//! ```
//! use jepsen::{checker, report, History};
//!
//! let text = r#"
//! {"index":0,"time":0,"process":0,"type":"invoke","f":"write","value":[7,1]}
//! {"index":1,"time":10,"process":0,"type":"ok","f":"write","value":[7,1]}
//! {"index":2,"time":20,"process":1,"type":"invoke","f":"read","value":[7,null]}
//! {"index":3,"time":30,"process":1,"type":"ok","f":"read","value":[7,null]}
//! "#;
//! let history = History::read_jsonl(text.as_bytes()).unwrap();
//! let verdict = checker::register::check(&history, &Default::default());
//! // The read began after the write of 1 completed, yet saw nothing.
//! assert_eq!(verdict.to_string(), "invalid: nonlinearizable");
//! assert_eq!(verdict.anomalies[0].ops, vec![1, 3]);
//!
//! let verdicts = vec![("linearizable".to_string(), verdict)];
//! assert_eq!(report::summary(&history, &verdicts)["result"], "invalid");
//! assert!(report::html(&history, &verdicts).contains("nonlinearizable"));
//! ```

pub mod checker;
pub mod error;
pub mod generate;
pub mod history;
pub mod limits;
pub mod report;
pub mod verdict;

#[cfg(test)]
mod testing;

pub use checker::bank::BankOptions;
pub use checker::list_append::ConsistencyModel;
pub use checker::register::RegisterOptions;
pub use checker::timestamped::TimestampedOptions;
pub use error::Error;
pub use history::{History, Op, OpType, Pair, Process};
pub use verdict::{kinds, Anomaly, Validity, Verdict};
