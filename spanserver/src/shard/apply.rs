//! Applying committed entries, in order, exactly once, into the
//! replica's write batch: the transaction commands through the shard's
//! `ShardTxns`, splits (`split.rs`), conf changes through raft-rs, and the
//! apply state in the same batch (STYLE.md's raft-rs checklist, items 2
//! to 5). A transaction command that names a key outside the shard's
//! range (admitted before a split moved it) is refused here, the same way
//! on every replica, as a dropped proposal: its transaction aborts,
//! retryably.

use super::*;

impl Replica {
    // --- Apply -------------------------------------------------------------

    /// Applies committed entries into `batch`, in order, exactly once.
    pub fn apply_entries(
        &mut self,
        tt: &TrueTime,
        entries: Vec<Entry>,
        batch: &mut WriteBatch,
        completions: &mut Vec<Completion>,
    ) {
        if entries.is_empty() {
            return;
        }
        for entry in entries {
            assert_eq!(
                entry.index,
                self.applied_index + 1,
                "{}: applying entry {} after {}",
                self.shard_id,
                entry.index,
                self.applied_index
            );
            self.apply_entry(tt, &entry, batch, completions);
            self.applied_index = entry.index;
        }
        self.stage_apply_state(batch);
    }

    fn apply_entry(&mut self, tt: &TrueTime, entry: &Entry, batch: &mut WriteBatch, completions: &mut Vec<Completion>) {
        // Which of our proposals, if any, this entry answers: only a
        // command entry of the same term (never raft-rs's own empty or
        // conf change entries).
        let mut req = None;
        let mut split_reply = None;
        if let Some((term, reply)) = self.splits.remove(&entry.index) {
            if term == entry.term {
                split_reply = Some(reply);
            } else {
                let e = Error::Unavailable("the split was replaced by another leader's entry; retry".into());
                completions.push(Completion::Split { reply, result: Err(e) });
            }
        }
        let mut membership_reply = None;
        if let Some((term, reply)) = self.membership.remove(&entry.index) {
            let is_conf_change =
                matches!(entry.entry_type(), EntryType::EntryConfChange | EntryType::EntryConfChangeV2);
            if term == entry.term && is_conf_change {
                membership_reply = Some(reply);
            } else {
                // Replaced by another leader's entry, or dropped by raft-rs
                // (a change was pending): never applied.
                let e = Error::Unavailable("the membership change was not applied; retry".into());
                completions.push(Completion::Membership { reply, result: Err(e) });
            }
        }
        if let Some(p) = self.proposals.remove(&entry.index) {
            let ours = p.term == entry.term && entry.entry_type() == EntryType::EntryNormal && !entry.data.is_empty();
            if ours {
                req = p.req;
            } else {
                // Replaced by another leader's entry: never applied.
                let outputs = self.step_txns(tt, Input::ProposalFailed { req: p.req, command: p.command });
                self.execute(tt, outputs, Some(batch), completions);
            }
        }
        match entry.entry_type() {
            EntryType::EntryNormal if entry.data.is_empty() => {}
            EntryType::EntryNormal => match command::decode(&entry.data) {
                Ok(Command::Txn(command)) if !self.inside_range(&command) => {
                    tracing::info!(shard = %self.shard_id, index = entry.index, "a command for keys that moved was refused");
                    let outputs = self.step_txns(tt, Input::ProposalFailed { req, command });
                    self.execute(tt, outputs, Some(batch), completions);
                }
                Ok(Command::Txn(command)) => {
                    let conditions_held = self.conditions_hold(&command);
                    let input = Input::Applied { req, command, conditions_held };
                    let outputs = self.step_txns(tt, input);
                    self.execute(tt, outputs, Some(batch), completions);
                }
                Ok(Command::Split(split)) => {
                    let split_reply = split_reply.take();
                    self.apply_split(tt, entry.index, split, split_reply, batch, completions);
                }
                Err(msg) => {
                    // Deterministic: every replica skips the same entry.
                    tracing::error!(shard = %self.shard_id, index = entry.index, "{msg}");
                    if let Some(reply) = req.and_then(|r| self.replies.remove(&r)).map(|p| p.reply) {
                        completions.push(Completion::Txn { reply, result: Err(TxnError::InvalidArgument(msg)) });
                    }
                }
            },
            EntryType::EntryConfChange => match ConfChange::decode(entry.data.as_slice()) {
                Ok(cc) => {
                    let cc = raft_proto::ConfChangeI::into_v2(cc);
                    self.apply_membership(entry.index, cc, &entry.context, membership_reply, batch, completions);
                }
                Err(e) => tracing::error!(shard = %self.shard_id, "undecodable conf change: {e}"),
            },
            EntryType::EntryConfChangeV2 => match ConfChangeV2::decode(entry.data.as_slice()) {
                Ok(cc) => {
                    self.apply_membership(entry.index, cc, &entry.context, membership_reply, batch, completions);
                }
                Err(e) => tracing::error!(shard = %self.shard_id, "undecodable conf change: {e}"),
            },
        }
    }

    /// Does every key `command` writes, checks or locks belong to this
    /// shard (as of this log position)?
    fn inside_range(&self, command: &TxnCommand) -> bool {
        let d = &self.descriptor;
        let target_inside = |t: &LockTarget| match t {
            LockTarget::Key(k) => d.contains(k),
            LockTarget::Range(s, e) => {
                d.contains(s) && (d.end_key.is_empty() || (!e.is_empty() && e.as_slice() <= d.end_key.as_slice()))
            }
        };
        match command {
            TxnCommand::Commit { writes, conditions, reads, .. } => {
                writes.iter().all(|w| d.contains(&w.key))
                    && conditions.iter().all(|c| d.contains(&c.key))
                    && reads.iter().all(target_inside)
            }
            TxnCommand::Prepare(p) => {
                p.writes.iter().all(|w| d.contains(&w.key))
                    && p.reads.iter().all(target_inside)
                    && p.conditions.iter().all(|c| d.contains(&c.key))
            }
            _ => true,
        }
    }

    /// Checks a commit's or a prepare's conditions against the latest
    /// values, including those staged earlier in this iteration.
    fn conditions_hold(&self, command: &TxnCommand) -> bool {
        let conditions = match command {
            TxnCommand::Commit { conditions, .. } => conditions,
            TxnCommand::Prepare(p) => &p.conditions,
            _ => return true,
        };
        conditions.iter().all(|c| match self.latest_value(&c.key) {
            Ok(current) => current == c.expected,
            // A storage read failing during apply cannot be skipped
            // consistently across replicas: stop.
            Err(e) => crate::storage::stop_on_storage_failure(&format!(
                "{}: a read that applying an entry needs failed: {e}",
                self.shard_id
            )),
        })
    }

    /// The key's latest value as of the entries applied so far, including
    /// those staged in this iteration's batch (not yet in RocksDB).
    fn latest_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(staged) = self.staged.get(key) {
            return Ok(staged.clone());
        }
        Ok(mvcc::Reader::new(&self.engine).get(key, Timestamp::MAX)?.map(|(_, v)| v))
    }

    pub(super) fn stage_apply_state(&self, batch: &mut WriteBatch) {
        let state = proto::storage::ApplyState {
            applied_index: self.applied_index,
            max_applied_ts: self.txns.safe_time().max_applied().as_nanos(),
            last_split_index: self.last_split_index,
        };
        batch.put_cf(
            self.engine.cf(CF_RAFT),
            raft_key(self.shard_id, RaftKey::ApplyState),
            prost::Message::encode_to_vec(&state),
        );
    }
}
