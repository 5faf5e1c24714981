//! Timestamp rules (Spanner §4.1.2–4.1.3) and safe time (§4.1.3).
//!
//! # Assignment: the [`TimestampOracle`] of a shard leader
//!
//! ```text
//!   write / prepare / close:  ts = max(TT.now().latest, last_assigned + 1)
//!   commit (coordinator):     s  = max(every prepare_ts,
//!                                      TT.now().latest when the commit arrived,
//!                                      last_assigned + 1)
//! ```
//!
//! So timestamps a leader assigns strictly increase, also across leader
//! changes (a new leader first learns every timestamp in its log), and a
//! commit timestamp is at least every participant's prepare timestamp and
//! later than the commit request (which, with commit-wait, gives external
//! consistency: a transaction that starts after another finished gets a
//! larger timestamp).
//!
//! # Safe time: the [`SafeTime`] of a replica
//!
//! A replica can serve a read at `t` once no write at or below `t` can still
//! appear in its data:
//!
//! ```text
//!   t_paxos_safe = the largest timestamp applied (assigned timestamps only
//!                  grow, so nothing at or below it is still to come)...
//!   t_TM_safe    = ...except transactions prepared here, which will commit
//!                  at some s >= prepare_ts: min(prepare_ts) - 1
//!   t_safe       = min(t_paxos_safe, t_TM_safe)
//! ```
//!
//! A prepared transaction only blocks reads of the keys it writes:
//! [`SafeTime::safe_for_key`] refines `t_safe` per key, so one prepared
//! transaction does not stall every read of the shard.
//!
//! # Invariants (asserted)
//! - Assigned timestamps strictly increase ([`TimestampOracle::assign`]).
//! - A commit timestamp is at least every prepare timestamp, checked where
//!   it is chosen ([`commit_timestamp`]) and again where it is applied
//!   ([`SafeTime::finish`]).

use std::collections::BTreeMap;

use truetime::{Timestamp, TtInterval};

use meta::TxnId;

/// Hands out a shard leader's timestamps.
#[derive(Clone, Debug, Default)]
pub struct TimestampOracle {
    last_assigned: Timestamp,
}

impl TimestampOracle {
    /// An oracle that will assign only above `floor` (a new leader passes
    /// the largest timestamp in its log).
    pub fn starting_above(floor: Timestamp) -> Self {
        TimestampOracle { last_assigned: floor }
    }

    pub fn last_assigned(&self) -> Timestamp {
        self.last_assigned
    }

    /// Never assign at or below `ts` from now on (a read was served at
    /// `ts`, or a commit at `ts` was applied).
    pub fn reserve(&mut self, ts: Timestamp) {
        self.last_assigned = self.last_assigned.max(ts);
    }

    /// A fresh timestamp: `max(now.latest, last + 1)`.
    pub fn assign(&mut self, now: TtInterval) -> Timestamp {
        let ts = now.latest.max(self.last_assigned.next());
        assert!(ts > self.last_assigned, "timestamps must strictly increase");
        self.last_assigned = ts;
        ts
    }

    /// The commit timestamp of a transaction this leader coordinates; see
    /// [`commit_timestamp`].
    pub fn assign_commit(&mut self, received: TtInterval, prepare_timestamps: &[Timestamp]) -> Timestamp {
        let s = commit_timestamp(received, prepare_timestamps, self.last_assigned);
        self.last_assigned = s;
        s
    }
}

/// `s = max(every prepare_ts, received.latest, last_assigned + 1)`.
pub fn commit_timestamp(received: TtInterval, prepare_timestamps: &[Timestamp], last_assigned: Timestamp) -> Timestamp {
    let max_prepare = prepare_timestamps.iter().copied().max().unwrap_or(Timestamp::ZERO);
    let s = max_prepare.max(received.latest).max(last_assigned.next());
    for p in prepare_timestamps {
        assert!(s >= *p, "commit timestamp {s:?} below a prepare timestamp {p:?}");
    }
    s
}

/// What a replica knows about time: the largest applied timestamp and the
/// transactions prepared here. Every replica computes the same from the
/// same log.
#[derive(Clone, Debug, Default)]
pub struct SafeTime {
    max_applied: Timestamp,
    /// prepare_ts and written keys of each prepared transaction.
    prepared: BTreeMap<TxnId, (Timestamp, Vec<Vec<u8>>)>,
}

impl SafeTime {
    pub fn new(max_applied: Timestamp) -> Self {
        SafeTime { max_applied, prepared: BTreeMap::new() }
    }

    /// `t_paxos_safe`: the largest applied timestamp.
    pub fn max_applied(&self) -> Timestamp {
        self.max_applied
    }

    /// A timestamp this shard's leader assigned was applied (a commit it
    /// decided, a prepare, a close). Assigned timestamps strictly increase
    /// in log order: that is what makes `t_paxos_safe` safe.
    pub fn applied(&mut self, ts: Timestamp) {
        assert!(
            ts > self.max_applied,
            "an assigned timestamp {ts:?} does not exceed the applied {:?}: the log's timestamps are out of order",
            self.max_applied
        );
        self.max_applied = ts;
    }

    pub fn prepare(&mut self, txn: TxnId, prepare_ts: Timestamp, written_keys: Vec<Vec<u8>>) {
        self.applied(prepare_ts);
        self.prepared.insert(txn, (prepare_ts, written_keys));
    }

    /// Re-registers a transaction prepared before a restart (or in a
    /// snapshot): its prepare timestamp is already within `max_applied`.
    pub fn restore_prepared(&mut self, txn: TxnId, prepare_ts: Timestamp, written_keys: Vec<Vec<u8>>) {
        assert!(
            prepare_ts <= self.max_applied,
            "restored {txn} prepared at {prepare_ts:?}, after the applied {:?}",
            self.max_applied
        );
        self.prepared.insert(txn, (prepare_ts, written_keys));
    }

    /// A prepared transaction finished: committed at `commit_ts`, or
    /// aborted (`None`). A commit counts as applied at `commit_ts`.
    pub fn finish(&mut self, txn: TxnId, commit_ts: Option<Timestamp>) {
        let prepared = self.prepared.remove(&txn);
        if let (Some((prepare_ts, _)), Some(s)) = (prepared, commit_ts) {
            assert!(s >= prepare_ts, "{txn} commits at {s:?}, below its prepare timestamp {prepare_ts:?}");
        }
        // The commit timestamp was chosen by the coordinator, not assigned
        // here, so it may be below what is applied; the leader reserved it
        // when it proposed the finish, so nothing after it is below it.
        if let Some(s) = commit_ts {
            self.max_applied = self.max_applied.max(s);
        }
    }

    pub fn is_prepared(&self, txn: TxnId) -> bool {
        self.prepared.contains_key(&txn)
    }

    pub fn prepared_count(&self) -> usize {
        self.prepared.len()
    }

    /// `t_safe = min(t_paxos_safe, min(prepare_ts) - 1)`.
    pub fn safe(&self) -> Timestamp {
        let tm = self.prepared.values().map(|(p, _)| p.prev()).min().unwrap_or(Timestamp::MAX);
        self.max_applied.min(tm)
    }

    /// The largest `t` at which `key` can be read: like [`SafeTime::safe`],
    /// but only transactions that write `key` hold it back.
    pub fn safe_for_key(&self, key: &[u8]) -> Timestamp {
        let tm = self
            .prepared
            .values()
            .filter(|(_, keys)| keys.iter().any(|k| k == key))
            .map(|(p, _)| p.prev())
            .min()
            .unwrap_or(Timestamp::MAX);
        self.max_applied.min(tm)
    }

    /// Like [`SafeTime::safe_for_key`] for every key in `[start, end)`.
    pub fn safe_for_range(&self, start: &[u8], end: &[u8]) -> Timestamp {
        let inside = |k: &Vec<u8>| k.as_slice() >= start && (end.is_empty() || k.as_slice() < end);
        let tm = self
            .prepared
            .values()
            .filter(|(_, keys)| keys.iter().any(inside))
            .map(|(p, _)| p.prev())
            .min()
            .unwrap_or(Timestamp::MAX);
        self.max_applied.min(tm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: u64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    fn now(earliest: u64, latest: u64) -> TtInterval {
        TtInterval::new(ts(earliest), ts(latest))
    }

    #[test]
    fn assigned_timestamps_strictly_increase_even_when_the_clock_stalls() {
        let mut o = TimestampOracle::default();
        assert_eq!(o.assign(now(90, 100)), ts(100));
        assert_eq!(o.assign(now(90, 100)), ts(101));
        assert_eq!(o.assign(now(80, 95)), ts(102), "a clock going back does not matter");
        assert_eq!(o.assign(now(190, 200)), ts(200));
        let mut o = TimestampOracle::starting_above(ts(500));
        assert_eq!(o.assign(now(90, 100)), ts(501), "a new leader stays above its log");
    }

    /// Goal: the commit timestamp rule, each term of the max winning once.
    #[test]
    fn commit_timestamp_is_the_max_of_its_three_bounds() {
        assert_eq!(commit_timestamp(now(90, 100), &[ts(50), ts(70)], ts(10)), ts(100), "TT.now().latest");
        assert_eq!(commit_timestamp(now(90, 100), &[ts(50), ts(170)], ts(10)), ts(170), "a prepare timestamp");
        assert_eq!(commit_timestamp(now(90, 100), &[ts(50)], ts(300)), ts(301), "above everything assigned");
        let mut o = TimestampOracle::starting_above(ts(300));
        assert_eq!(o.assign_commit(now(90, 100), &[]), ts(301));
        assert_eq!(o.assign(now(90, 100)), ts(302));
    }

    /// Goal: t_safe = min(t_paxos_safe, min prepare - 1); per key, only
    /// transactions writing that key hold it back; a finished commit moves
    /// the applied time up to its timestamp.
    #[test]
    fn safe_time_waits_for_prepared_transactions() {
        let mut s = SafeTime::new(ts(100));
        assert_eq!(s.safe(), ts(100));
        s.prepare(TxnId(1), ts(120), vec![b"a".to_vec()]);
        s.applied(ts(150));
        assert_eq!(s.safe(), ts(119));
        assert_eq!(s.safe_for_key(b"a"), ts(119));
        assert_eq!(s.safe_for_key(b"b"), ts(150));
        assert_eq!(s.safe_for_range(b"", b"b"), ts(119));
        assert_eq!(s.safe_for_range(b"b", b""), ts(150));
        s.finish(TxnId(1), Some(ts(180)));
        assert_eq!(s.safe(), ts(180));
        s.prepare(TxnId(2), ts(190), vec![b"a".to_vec()]);
        s.finish(TxnId(2), None);
        assert_eq!(s.safe(), ts(190));
    }

    #[test]
    #[should_panic(expected = "out of order")]
    fn assigned_timestamps_out_of_log_order_are_a_bug() {
        let mut s = SafeTime::new(ts(100));
        s.applied(ts(100));
    }

    #[test]
    #[should_panic(expected = "below its prepare timestamp")]
    fn a_commit_below_its_prepare_timestamp_is_a_bug() {
        let mut s = SafeTime::new(ts(100));
        s.prepare(TxnId(1), ts(120), vec![]);
        s.finish(TxnId(1), Some(ts(110)));
    }
}
