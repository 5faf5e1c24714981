//! The replicated commands: what a shard's Raft log entries say.
//!
//! Every normal entry with data is one [`Command`], encoded as a
//! `proto::storage::RaftCommand`: a [`txn::TxnCommand`] (a commit, a
//! prepare, a finish, an abort decision, a forgotten decision, a closed
//! timestamp), or a change of the shard itself (a [`Split`]). Empty entries are raft-rs's own (a new
//! leader's first entry); conf change entries are raft-rs `ConfChange` /
//! `ConfChangeV2`.
//!
//! Decoding is deterministic: a command that does not decode fails the same
//! way on every replica, so it is an apply result, never a crash.

use meta::{Priority, RangeVer, ReplicaId, ShardId, TxnId};
use prost::Message as _;
use proto::storage::{self as pb, raft_command};
use truetime::Timestamp;
use txn::{Condition, Decision, LockTarget, Outcome, PreparedTxn, TxnCommand, Write};

use crate::wire::txn_id_bytes;

pub fn txn_id_from(bytes: &[u8]) -> Result<TxnId, String> {
    let array: [u8; 16] = bytes.try_into().map_err(|_| format!("a transaction id is 16 bytes, not {}", bytes.len()))?;
    Ok(TxnId(u128::from_be_bytes(array)))
}

pub fn write_to_proto(w: &Write) -> proto::Mutation {
    match &w.value {
        Some(v) => proto::Mutation { key: w.key.clone(), value: v.clone(), delete: false },
        None => proto::Mutation { key: w.key.clone(), value: Vec::new(), delete: true },
    }
}

pub fn write_from_proto(m: proto::Mutation) -> Write {
    Write { key: m.key, value: (!m.delete).then_some(m.value) }
}

pub fn condition_to_proto(c: &Condition) -> proto::Condition {
    match &c.expected {
        Some(v) => proto::Condition { key: c.key.clone(), expected: v.clone(), expect_absent: false },
        None => proto::Condition { key: c.key.clone(), expected: Vec::new(), expect_absent: true },
    }
}

pub fn condition_from_proto(c: proto::Condition) -> Condition {
    Condition { key: c.key, expected: (!c.expect_absent).then_some(c.expected) }
}

pub fn span_to_target(start: Vec<u8>, end: Vec<u8>, range: bool) -> LockTarget {
    if range {
        LockTarget::Range(start, end)
    } else {
        LockTarget::Key(start)
    }
}

fn target_to_lock_span(t: &LockTarget) -> pb::LockSpan {
    match t {
        LockTarget::Key(k) => pb::LockSpan { start: k.clone(), end: Vec::new(), range: false },
        LockTarget::Range(s, e) => pb::LockSpan { start: s.clone(), end: e.clone(), range: true },
    }
}

pub fn prepared_to_proto(p: &PreparedTxn) -> pb::PreparedTxn {
    pb::PreparedTxn {
        txn_id: txn_id_bytes(p.txn),
        priority_ts: p.priority.start_ts.as_nanos(),
        priority_txn: txn_id_bytes(p.priority.txn),
        prepare_ts: p.prepare_ts.as_nanos(),
        coordinator: p.coordinator.0,
        writes: p.writes.iter().map(write_to_proto).collect(),
        reads: p.reads.iter().map(target_to_lock_span).collect(),
        conditions: p.conditions.iter().map(condition_to_proto).collect(),
        heirs: p.heirs.iter().map(|s| s.0).collect(),
    }
}

pub fn prepared_from_proto(p: pb::PreparedTxn) -> Result<PreparedTxn, String> {
    Ok(PreparedTxn {
        txn: txn_id_from(&p.txn_id)?,
        priority: Priority::new(Timestamp::from_nanos(p.priority_ts), txn_id_from(&p.priority_txn)?),
        prepare_ts: Timestamp::from_nanos(p.prepare_ts),
        coordinator: ShardId(p.coordinator),
        writes: p.writes.into_iter().map(write_from_proto).collect(),
        reads: p.reads.into_iter().map(|s| span_to_target(s.start, s.end, s.range)).collect(),
        conditions: p.conditions.into_iter().map(condition_from_proto).collect(),
        heirs: p.heirs.into_iter().map(ShardId).collect(),
    })
}

pub fn decision_to_proto(d: &Decision) -> pb::DecisionRecord {
    let (committed, commit_ts) = match d.outcome {
        Outcome::Committed(ts) => (true, ts.as_nanos()),
        Outcome::Aborted => (false, 0),
    };
    pb::DecisionRecord {
        committed,
        commit_ts,
        participants: d.participants.iter().map(|s| s.0).collect(),
        decided_at: d.decided_at.as_nanos(),
    }
}

pub fn decision_from_proto(d: &pb::DecisionRecord) -> Decision {
    let outcome = if d.committed { Outcome::Committed(Timestamp::from_nanos(d.commit_ts)) } else { Outcome::Aborted };
    Decision {
        outcome,
        participants: d.participants.iter().copied().map(ShardId).collect(),
        decided_at: Timestamp::from_nanos(d.decided_at),
    }
}

/// What one log entry says.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Txn(TxnCommand),
    Split(Split),
}

/// Split the shard at `split_key` (`shard/split.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub split_key: Vec<u8>,
    /// The range the split was proposed for.
    pub range_ver: RangeVer,
    pub child_shard: ShardId,
    /// One per replica of the shard, beside it on the same server, in the
    /// order of the shard's descriptor.
    pub child_replicas: Vec<ReplicaId>,
}

pub fn encode_split(split: &Split) -> Vec<u8> {
    let kind = raft_command::Kind::Split(pb::SplitCommand {
        split_key: split.split_key.clone(),
        range_ver: split.range_ver.0,
        child_shard_id: split.child_shard.0,
        child_replica_ids: split.child_replicas.iter().map(|r| r.0).collect(),
    });
    pb::RaftCommand { kind: Some(kind) }.encode_to_vec()
}

pub fn encode(command: &TxnCommand) -> Vec<u8> {
    let kind = match command {
        TxnCommand::Commit { txn, commit_ts, writes, conditions, participants, reads } => {
            raft_command::Kind::Commit(pb::CommitCommand {
                txn_id: txn_id_bytes(*txn),
                commit_ts: commit_ts.as_nanos(),
                writes: writes.iter().map(write_to_proto).collect(),
                conditions: conditions.iter().map(condition_to_proto).collect(),
                participants: participants.iter().map(|s| s.0).collect(),
                reads: reads.iter().map(target_to_lock_span).collect(),
            })
        }
        TxnCommand::Prepare(p) => raft_command::Kind::Prepare(prepared_to_proto(p)),
        TxnCommand::Finish { txn, outcome } => {
            let (committed, commit_ts) = match outcome {
                Outcome::Committed(ts) => (true, ts.as_nanos()),
                Outcome::Aborted => (false, 0),
            };
            raft_command::Kind::Finish(pb::FinishCommand { txn_id: txn_id_bytes(*txn), committed, commit_ts })
        }
        TxnCommand::AbortDecision { txn, decided_at } => raft_command::Kind::AbortDecision(pb::AbortDecisionCommand {
            txn_id: txn_id_bytes(*txn),
            decided_at: decided_at.as_nanos(),
        }),
        TxnCommand::ForgetDecisions { txns } => raft_command::Kind::ForgetDecision(pb::ForgetDecisionCommand {
            txn_id: Vec::new(),
            txn_ids: txns.iter().map(|t| txn_id_bytes(*t)).collect(),
        }),
        TxnCommand::Close { ts } => raft_command::Kind::Close(pb::CloseCommand { ts: ts.as_nanos() }),
    };
    pb::RaftCommand { kind: Some(kind) }.encode_to_vec()
}

pub fn decode(data: &[u8]) -> Result<Command, String> {
    let cmd = pb::RaftCommand::decode(data).map_err(|e| format!("undecodable command: {e}"))?;
    Ok(Command::Txn(match cmd.kind.ok_or("command without a kind")? {
        raft_command::Kind::Split(s) => {
            return Ok(Command::Split(Split {
                split_key: s.split_key,
                range_ver: RangeVer(s.range_ver),
                child_shard: ShardId(s.child_shard_id),
                child_replicas: s.child_replica_ids.into_iter().map(ReplicaId).collect(),
            }))
        }
        raft_command::Kind::Commit(c) => TxnCommand::Commit {
            txn: txn_id_from(&c.txn_id)?,
            commit_ts: Timestamp::from_nanos(c.commit_ts),
            writes: c.writes.into_iter().map(write_from_proto).collect(),
            conditions: c.conditions.into_iter().map(condition_from_proto).collect(),
            participants: c.participants.into_iter().map(ShardId).collect(),
            reads: c.reads.into_iter().map(|s| span_to_target(s.start, s.end, s.range)).collect(),
        },
        raft_command::Kind::Prepare(p) => TxnCommand::Prepare(prepared_from_proto(p)?),
        raft_command::Kind::Finish(f) => TxnCommand::Finish {
            txn: txn_id_from(&f.txn_id)?,
            outcome: if f.committed {
                Outcome::Committed(Timestamp::from_nanos(f.commit_ts))
            } else {
                Outcome::Aborted
            },
        },
        raft_command::Kind::AbortDecision(a) => {
            TxnCommand::AbortDecision { txn: txn_id_from(&a.txn_id)?, decided_at: Timestamp::from_nanos(a.decided_at) }
        }
        raft_command::Kind::ForgetDecision(f) => {
            let old_single = (!f.txn_id.is_empty()).then_some(f.txn_id);
            let txns = old_single.into_iter().chain(f.txn_ids).map(|t| txn_id_from(&t)).collect::<Result<_, _>>()?;
            TxnCommand::ForgetDecisions { txns }
        }
        raft_command::Kind::Close(c) => TxnCommand::Close { ts: Timestamp::from_nanos(c.ts) },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let t = TxnId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let ts = Timestamp::from_nanos(77);
        let commands = [
            TxnCommand::Commit {
                txn: t,
                commit_ts: ts,
                writes: vec![
                    Write { key: b"k".to_vec(), value: Some(b"v".to_vec()) },
                    Write { key: b"d".to_vec(), value: None },
                ],
                conditions: vec![Condition { key: b"k".to_vec(), expected: None }],
                participants: vec![ShardId(2), ShardId(3)],
                reads: vec![LockTarget::Key(b"r".to_vec()), LockTarget::Range(b"a".to_vec(), b"c".to_vec())],
            },
            TxnCommand::Prepare(PreparedTxn {
                txn: t,
                priority: Priority::new(Timestamp::from_nanos(5), TxnId(9)),
                prepare_ts: ts,
                coordinator: ShardId(4),
                writes: vec![Write { key: b"w".to_vec(), value: Some(vec![]) }],
                reads: vec![LockTarget::Key(b"r".to_vec()), LockTarget::Range(b"a".to_vec(), b"".to_vec())],
                conditions: vec![Condition { key: b"w".to_vec(), expected: None }],
                heirs: vec![ShardId(8)],
            }),
            TxnCommand::Finish { txn: t, outcome: Outcome::Committed(ts) },
            TxnCommand::Finish { txn: t, outcome: Outcome::Aborted },
            TxnCommand::AbortDecision { txn: t, decided_at: ts },
            TxnCommand::ForgetDecisions { txns: vec![t, TxnId(7)] },
            TxnCommand::Close { ts },
        ];
        for c in commands {
            assert_eq!(decode(&encode(&c)).unwrap(), Command::Txn(c));
        }
        let split = Split {
            split_key: b"m".to_vec(),
            range_ver: RangeVer(3),
            child_shard: ShardId(12),
            child_replicas: vec![ReplicaId(13), ReplicaId(14), ReplicaId(15)],
        };
        assert_eq!(decode(&encode_split(&split)).unwrap(), Command::Split(split));
        let decision =
            Decision { outcome: Outcome::Committed(ts), participants: vec![ShardId(2), ShardId(5)], decided_at: ts };
        assert_eq!(decision_from_proto(&decision_to_proto(&decision)), decision);
        assert!(decode(b"\xff\xff").is_err());
        assert!(decode(&pb::RaftCommand { kind: None }.encode_to_vec()).is_err());
        let bad_id = pb::RaftCommand {
            kind: Some(raft_command::Kind::AbortDecision(pb::AbortDecisionCommand {
                txn_id: vec![1, 2],
                decided_at: 0,
            })),
        };
        assert!(decode(&bad_id.encode_to_vec()).unwrap_err().contains("16 bytes"));
    }
}
