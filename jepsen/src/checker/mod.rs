//! The checkers: each a pure function from a [`History`](crate::History)
//! (and its parameters) to a [`Verdict`](crate::Verdict).
//!
//! | module | workload `f`s | property |
//! |---|---|---|
//! | [`register`] | `read`, `read-only`, `write`, `cas` | linearizability, per key |
//! | [`timestamped`] | `read`, `read-only`, `read-at`, `read-bounded`, `write`, `cas` | every read agrees with the writes' commit timestamps, per key |
//! | [`set`] | `add`, `read` | acknowledged adds survive, nothing invented |
//! | [`bank`] | `transfer`, `read` | every snapshot conserves the total |
//! | [`list_append`] | `txn` | serializability or strict serializability |
//! | [`external`] | any, with `commit_ts` | real-time order implies `commit_ts` order |
//!
//! A checker looks only at the ops whose `f` it knows, so one history can
//! hold several workloads (and nemesis events, which all of them skip).
//! A history with nothing to check gives `unknown`, so that a harness that
//! recorded the wrong thing cannot pass.

pub mod bank;
pub mod external;
pub mod list_append;
pub mod register;
pub mod set;
pub mod timestamped;
