//! What a checker says about a history.
//!
//! A [`Verdict`] is a [`Validity`] and the evidence: [`Anomaly`]s, each a
//! kind from [`kinds`], a message a person can follow, and the indexes of
//! the ops involved (the completion's index when the op has one, see
//! `Pair::index`). It prints as one line:
//!
//! ```text
//! valid
//! invalid: G-single, lost-add
//! unknown: key 7: search exceeded 2000000 states
//! ```
//!
//! `Unknown` means the checker could not decide (a budget ran out, the
//! history has nothing it can check, a value is malformed). Callers treat it
//! as a failure: a test passes only on `valid`.
//!
//! Invariant: `result` is `Invalid` exactly when `anomalies` is non-empty
//! (built by `Findings::finish`, asserted there).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::{ANOMALIES_PER_KIND_MAX, ANOMALY_OPS_MAX};

/// The anomaly kinds, one name per meaning, shared by the checkers.
pub mod kinds {
    /// Registers: no linearization of a key's ops exists.
    pub const NONLINEARIZABLE: &str = "nonlinearizable";

    /// Set: an acknowledged add is missing from the final read.
    pub const LOST_ADD: &str = "lost-add";
    /// Set: the final read has an element nobody tried to add.
    pub const UNEXPECTED_ELEMENT: &str = "unexpected-element";
    /// Set: the final read has an element whose only adds failed.
    pub const FAILED_ADD_PRESENT: &str = "failed-add-present";

    /// Bank: a read's balances do not sum to the expected total.
    pub const WRONG_TOTAL: &str = "wrong-total";
    /// Bank: a read lacks an account.
    pub const MISSING_ACCOUNT: &str = "missing-account";
    /// Bank: a read has a negative balance (when those are not allowed).
    pub const NEGATIVE_BALANCE: &str = "negative-balance";

    /// Set and list-append: one read holds the same element twice.
    pub const DUPLICATE_ELEMENTS: &str = "duplicate-elements";

    /// List-append: two reads of a key are not prefixes of one order.
    pub const INCOMPATIBLE_ORDER: &str = "incompatible-order";
    /// List-append: a read has an element no transaction appended.
    pub const GARBAGE_ELEMENT: &str = "garbage-element";
    /// List-append: a transaction's read disagrees with its own earlier
    /// reads and appends.
    pub const INTERNAL: &str = "internal";
    /// List-append: aborted read (saw an append of a failed transaction).
    pub const G1A: &str = "G1a";
    /// List-append: intermediate read (saw a non-final append of a
    /// transaction).
    pub const G1B: &str = "G1b";
    /// Dependency cycles, weakest first: write cycle (ww edges only).
    pub const G0: &str = "G0";
    /// Cycle of ww and wr edges.
    pub const G1C: &str = "G1c";
    /// Cycle with exactly one rw edge (read skew).
    pub const G_SINGLE: &str = "G-single";
    /// Cycle with two or more rw edges (write skew and friends).
    pub const G2: &str = "G2";
    /// Appended to a cycle kind when the cycle needs a real-time edge: a
    /// strict-serializability violation, not a serializability one.
    pub const REALTIME_SUFFIX: &str = "-realtime";

    /// External consistency: T1 finished before T2 started, yet
    /// `commit_ts(T1) >= commit_ts(T2)`.
    pub const COMMIT_TS_INVERSION: &str = "commit-ts-inversion";

    /// Timestamped registers: a read returned a value that no write which
    /// could have happened wrote.
    pub const UNWRITTEN_VALUE: &str = "unwritten-value";
    /// Timestamped registers: a read's `version_ts` is not its value's
    /// commit timestamp, or lies above the read's own timestamp.
    pub const WRONG_VERSION: &str = "wrong-version";
    /// Timestamped registers: a write committed between the version a
    /// read returned and the timestamp it read at.
    pub const MISSED_WRITE: &str = "missed-write";
    /// Timestamped registers: a read that promises the present (leader
    /// read, read-only transaction) began after an op revealed a commit at
    /// `c`, yet read below `c`.
    pub const READ_TS_INVERSION: &str = "read-ts-inversion";
    /// Timestamped registers: a bounded-staleness read read older data
    /// than its bound allows.
    pub const STALE_BOUNDED_READ: &str = "stale-bounded-read";
}

/// Whether the history satisfies the checked property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Validity {
    Valid,
    Invalid,
    /// The checker could not decide; treat as a failure.
    Unknown {
        reason: String,
    },
}

/// One piece of evidence against a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// One of [`kinds`].
    pub kind: String,
    pub message: String,
    /// Indexes of the offending ops (at most `limits::ANOMALY_OPS_MAX`).
    pub ops: Vec<u64>,
}

/// A checker's result. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub result: Validity,
    /// At most `limits::ANOMALIES_PER_KIND_MAX` of each kind, in the order
    /// found.
    pub anomalies: Vec<Anomaly>,
    /// Anomalies found beyond the per-kind cap.
    pub anomalies_unlisted: u64,
    /// What the checker looked at: counts named by each checker (e.g.
    /// `keys`, `lost`, `edges-rw`).
    pub stats: BTreeMap<String, u64>,
}

impl Verdict {
    /// An `Unknown` verdict with no evidence.
    pub fn unknown(reason: impl Into<String>) -> Verdict {
        Verdict {
            result: Validity::Unknown { reason: reason.into() },
            anomalies: Vec::new(),
            anomalies_unlisted: 0,
            stats: BTreeMap::new(),
        }
    }

    pub fn is_valid(&self) -> bool {
        self.result == Validity::Valid
    }

    pub fn is_invalid(&self) -> bool {
        self.result == Validity::Invalid
    }

    /// The distinct anomaly kinds, in the order first found.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = Vec::new();
        for a in &self.anomalies {
            if !kinds.contains(&a.kind.as_str()) {
                kinds.push(&a.kind);
            }
        }
        kinds
    }

    /// The anomalies of one kind.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Anomaly> + 'a {
        self.anomalies.iter().filter(move |a| a.kind == kind)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Validity::Valid => write!(f, "valid"),
            Validity::Invalid => write!(f, "invalid: {}", self.kinds().join(", ")),
            Validity::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// A checker's working set of evidence: caps anomalies per kind and turns
/// into a [`Verdict`].
#[derive(Debug, Default)]
pub(crate) struct Findings {
    anomalies: Vec<Anomaly>,
    per_kind: BTreeMap<String, usize>,
    unlisted: u64,
    pub(crate) stats: BTreeMap<String, u64>,
}

impl Findings {
    /// Records an anomaly; `ops` are sorted, deduplicated and capped.
    pub(crate) fn add(&mut self, kind: &str, message: String, mut ops: Vec<u64>) {
        let listed = self.per_kind.entry(kind.to_string()).or_default();
        if *listed >= ANOMALIES_PER_KIND_MAX {
            self.unlisted += 1;
            return;
        }
        *listed += 1;
        ops.sort_unstable();
        ops.dedup();
        ops.truncate(ANOMALY_OPS_MAX);
        self.anomalies.push(Anomaly { kind: kind.to_string(), message, ops });
    }

    pub(crate) fn stat(&mut self, name: &str, value: u64) {
        self.stats.insert(name.to_string(), value);
    }

    /// Invalid if there is any anomaly; else unknown if `unknown` gives a
    /// reason; else valid.
    pub(crate) fn finish(self, unknown: Option<String>) -> Verdict {
        let result = match (self.anomalies.is_empty(), unknown) {
            (false, _) => Validity::Invalid,
            (true, Some(reason)) => Validity::Unknown { reason },
            (true, None) => Validity::Valid,
        };
        let verdict =
            Verdict { result, anomalies: self.anomalies, anomalies_unlisted: self.unlisted, stats: self.stats };
        assert_eq!(
            verdict.is_invalid(),
            !verdict.anomalies.is_empty(),
            "a verdict is invalid exactly when it lists anomalies"
        );
        verdict
    }
}

/// Quotes at most `max` items, then says how many more there are:
/// `1, 2, 3 (and 7 more)`.
pub(crate) fn quote_items<T: fmt::Display>(items: &[T], max: usize) -> String {
    let shown: Vec<String> = items.iter().take(max).map(|i| i.to_string()).collect();
    let mut s = shown.join(", ");
    if items.len() > max {
        s.push_str(&format!(" (and {} more)", items.len() - max));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a verdict prints as one line and survives JSON.
    /// Method: build each result, print it, serialize and parse it back.
    #[test]
    fn display_and_json() {
        let mut f = Findings::default();
        f.add(kinds::G_SINGLE, "cycle".into(), vec![5, 3, 5]);
        f.add(kinds::LOST_ADD, "lost 7".into(), vec![1]);
        f.add(kinds::G_SINGLE, "cycle 2".into(), vec![9]);
        f.stat("txns", 3);
        let v = f.finish(Some("ignored when invalid".into()));
        assert_eq!(v.to_string(), "invalid: G-single, lost-add");
        assert_eq!(v.anomalies[0].ops, vec![3, 5]);
        assert_eq!(v.of_kind(kinds::G_SINGLE).count(), 2);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["result"], "invalid");
        assert_eq!(json["stats"]["txns"], 3);
        assert_eq!(serde_json::from_value::<Verdict>(json).unwrap(), v);

        let u = Findings::default().finish(Some("no reads".into()));
        assert_eq!(u.to_string(), "unknown: no reads");
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json["reason"], "no reads");
        assert_eq!(serde_json::from_value::<Verdict>(json).unwrap(), u);
        assert_eq!(Verdict::unknown("no reads"), u);

        let ok = Findings::default().finish(None);
        assert!(ok.is_valid());
        assert_eq!(ok.to_string(), "valid");
    }

    /// Goal: a flood of anomalies is capped per kind and counted.
    /// Method: add more than the cap of one kind and one of another.
    #[test]
    fn anomalies_are_capped_per_kind() {
        let mut f = Findings::default();
        for i in 0..ANOMALIES_PER_KIND_MAX as u64 + 5 {
            f.add(kinds::LOST_ADD, format!("{i}"), (0..100).collect());
        }
        f.add(kinds::G0, "x".into(), vec![]);
        let v = f.finish(None);
        assert_eq!(v.anomalies.len(), ANOMALIES_PER_KIND_MAX + 1);
        assert_eq!(v.anomalies_unlisted, 5);
        assert_eq!(v.anomalies[0].ops.len(), ANOMALY_OPS_MAX);
        assert_eq!(v.kinds(), vec![kinds::LOST_ADD, kinds::G0]);
    }

    /// Goal: long lists are quoted with a count of the rest.
    #[test]
    fn quote_items_caps() {
        assert_eq!(quote_items(&[1, 2, 3], 5), "1, 2, 3");
        assert_eq!(quote_items(&[1, 2, 3, 4], 2), "1, 2 (and 2 more)");
    }
}
