//! The replicated commands: what a shard's Raft log entries say.
//!
//! Every normal entry with data is a `proto::storage::RaftCommand`, and every
//! command carries a timestamp. In one shard's log, command timestamps
//! strictly increase in log order (the leader assigns them at proposal
//! time, after applying every entry of earlier terms; see `shard/mod.rs`),
//! which is what lets a replica say "every write at or below my last applied
//! timestamp is here" and serve snapshot reads.
//!
//! Empty entries are raft-rs's own (a new leader's first entry); conf change
//! entries are raft-rs `ConfChange`/`ConfChangeV2`.

use prost::Message as _;
use proto::storage::{raft_command, CloseTimestamp, RaftCommand, WriteCommand};
use truetime::Timestamp;

/// A decoded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Puts and deletes, applied atomically at `ts` if every condition
    /// holds then (otherwise nothing is written).
    Write { ts: Timestamp, mutations: Vec<proto::Mutation>, conditions: Vec<proto::Condition> },
    /// No write in this shard will have a timestamp `<= ts`.
    CloseTimestamp { ts: Timestamp },
}

impl Command {
    pub fn ts(&self) -> Timestamp {
        match self {
            Command::Write { ts, .. } | Command::CloseTimestamp { ts } => *ts,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let (ts, kind) = match self {
            Command::Write { ts, mutations, conditions } => (
                *ts,
                raft_command::Kind::Write(WriteCommand {
                    mutations: mutations.clone(),
                    conditions: conditions.clone(),
                }),
            ),
            Command::CloseTimestamp { ts } => (*ts, raft_command::Kind::CloseTimestamp(CloseTimestamp {})),
        };
        RaftCommand { ts: ts.as_nanos(), kind: Some(kind) }.encode_to_vec()
    }

    /// Decodes entry data. A failure is deterministic (every replica has
    /// the same bytes), so it is an apply result, not a crash.
    pub fn decode(data: &[u8]) -> Result<Command, String> {
        let cmd = RaftCommand::decode(data).map_err(|e| format!("undecodable command: {e}"))?;
        let ts = Timestamp::from_nanos(cmd.ts);
        match cmd.kind {
            Some(raft_command::Kind::Write(w)) => {
                Ok(Command::Write { ts, mutations: w.mutations, conditions: w.conditions })
            }
            Some(raft_command::Kind::CloseTimestamp(_)) => Ok(Command::CloseTimestamp { ts }),
            None => Err("command without a kind".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let cmds = [
            Command::Write {
                ts: Timestamp::from_nanos(7),
                mutations: vec![
                    proto::Mutation { key: b"k".to_vec(), value: b"v".to_vec(), delete: false },
                    proto::Mutation { key: b"d".to_vec(), value: vec![], delete: true },
                ],
                conditions: vec![proto::Condition {
                    key: b"k".to_vec(),
                    expected: b"old".to_vec(),
                    expect_absent: false,
                }],
            },
            Command::CloseTimestamp { ts: Timestamp::from_nanos(9) },
        ];
        for c in cmds {
            assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        }
        assert!(Command::decode(b"\xff\xff").is_err());
        assert!(Command::decode(&RaftCommand { ts: 1, kind: None }.encode_to_vec()).is_err());
    }
}
