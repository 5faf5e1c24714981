//! Membership changes: which servers hold a shard's replicas, and which
//! of them vote. Each change is one raft-rs `ConfChangeV2` entry in the
//! shard's own log, applied by every replica at the same position, so the
//! log stays the one truth for the descriptor (its `conf_ver` + 1, the
//! replicas and their roles, written in the apply's batch).
//!
//! A move of a replica from server A to server D is four changes (TiKV's
//! way; `Client::move_replica` drives them):
//!
//! ```text
//!   r1@A r2@B r3@C (voters)                                  conf_ver 1
//!   1. add learner r9@D (fresh id; filled by a snapshot)      conf_ver 2
//!   2. joint: promote r9, demote r1     r9 incoming, r1 demoting   3
//!   3. leave the joint configuration  (the leader, by itself)      4
//!      r2 r3 r9 voters, r1 learner
//!   4. remove learner r1                                           5
//! ```
//!
//! Between steps 2 and 3 a quorum of both the old and the new voters
//! decides (raft's joint consensus), so no moment has two majorities that
//! do not overlap. The removed replica is a learner when it goes, so a
//! removed replica that never hears of its removal cannot campaign.
//!
//! A change names the `conf_ver` it was asked for; every replica applies
//! it only if the shard is still there (the same check at the same log
//! position everywhere), so a stale request changes nothing. The leader
//! refuses up front: a change while another is pending or while the
//! configuration is joint, a change that leaves no voter, and changes
//! that do not fit the replicas' roles. Asked to demote its own replica,
//! it hands its leadership to another voter and asks the caller to retry
//! (at the new leader). Data requests do not look at `conf_ver`:
//! a move never aborts a transaction.

use prost::Message as _;
use raft::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfState};

use super::*;
use meta::{ConfVer, ReplicaDescriptor, ReplicaRole, ShardEpoch};

/// A membership change as the admin API asks for it: by server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// A new learner on `server`, with a replica id from the allocator.
    AddLearner { server: ServerId, replica: ReplicaId },
    /// One joint configuration: these servers' learners become voters,
    /// these servers' voters become learners.
    Joint { promote: Vec<ServerId>, demote: Vec<ServerId> },
    /// The learner on `server` leaves the shard.
    RemoveLearner { server: ServerId },
}

/// Answered with the descriptor once the change is applied, or why not.
pub type MembershipReply = oneshot::Sender<Result<ShardDescriptor>>;

impl Replica {
    /// Proposes `change` (at the leader), if the shard is at `conf_ver`;
    /// answered when applied.
    pub fn propose_membership(
        &mut self,
        conf_ver: ConfVer,
        change: MembershipChange,
        reply: MembershipReply,
        completions: &mut Vec<Completion>,
    ) {
        let proposal = if !self.is_leader() || !self.leader_ready() {
            Err(self.not_leader())
        } else if let Some(e) = self.step_aside_before_demotion(&change) {
            Err(e)
        } else {
            self.conf_change_for(conf_ver, &change)
        };
        let (cc, context) = match proposal {
            Ok(p) => p,
            Err(e) => return completions.push(Completion::Membership { reply, result: Err(e) }),
        };
        match self.raw_node.propose_conf_change(context.encode_to_vec(), cc) {
            Ok(()) => {
                let index = self.raw_node.raft.raft_log.last_index();
                self.membership.insert(index, (self.raw_node.raft.term, reply));
                self.proposed = true;
            }
            Err(e) => {
                let result = Err(Error::Unavailable(format!("the change was not proposed: {e}")));
                completions.push(Completion::Membership { reply, result });
            }
        }
    }

    /// A leader asked to demote its own replica hands the leadership to
    /// the most caught-up voter that stays, and refuses for now (the
    /// caller retries at the new leader): a leader must not vote itself
    /// out of the group it leads.
    fn step_aside_before_demotion(&mut self, change: &MembershipChange) -> Option<Error> {
        let MembershipChange::Joint { demote, .. } = change else { return None };
        let me = self.descriptor.server_of(self.replica_id)?;
        if !demote.contains(&me) {
            return None;
        }
        let prs = self.raw_node.raft.prs();
        let target = self
            .descriptor
            .replicas
            .iter()
            .filter(|r| {
                r.role == ReplicaRole::Voter && r.replica_id != self.replica_id && !demote.contains(&r.server_id)
            })
            .max_by_key(|r| prs.get(r.replica_id.0).map_or(0, |p| p.matched))
            .map(|r| r.replica_id);
        match target {
            Some(to) => {
                self.raw_node.transfer_leader(to.0);
                Some(Error::Unavailable(format!(
                    "{} hands its leadership to replica {to} before demoting this one; retry",
                    self.shard_id
                )))
            }
            None => Some(Error::InvalidArgument(format!("no voter of {} would be left to lead", self.shard_id))),
        }
    }

    /// The conf change that makes `change`, or why it may not be made now
    /// (module docs).
    fn conf_change_for(
        &self,
        conf_ver: ConfVer,
        change: &MembershipChange,
    ) -> Result<(ConfChangeV2, proto::storage::ConfChangeContext)> {
        let d = &self.descriptor;
        let refuse = |why: String| Err(Error::InvalidArgument(why));
        if conf_ver != d.epoch.conf_ver {
            return refuse(format!(
                "{} is at conf_ver {}, the change was for {conf_ver}",
                self.shard_id, d.epoch.conf_ver
            ));
        }
        if self.raw_node.raft.has_pending_conf() || is_joint(d) {
            return Err(Error::Unavailable(format!("{} is changing its membership; retry", self.shard_id)));
        }
        let role_on =
            |server: ServerId| d.replicas.iter().find(|r| r.server_id == server).map(|r| (r.replica_id, r.role));
        let single = |change_type: ConfChangeType, node_id: ReplicaId| ConfChangeSingle {
            change_type: change_type as i32,
            node_id: node_id.0,
        };
        let mut context = proto::storage::ConfChangeContext { conf_ver: conf_ver.0, added: Vec::new() };
        let mut cc = ConfChangeV2::default();
        match change {
            MembershipChange::AddLearner { server, replica } => {
                if role_on(*server).is_some() {
                    return refuse(format!("server {server} already has a replica of {}", self.shard_id));
                }
                if self.registry.server_addr(*server).is_none() {
                    return refuse(format!("server {server} is not a server of this cluster"));
                }
                if replica.0 == 0 || d.replicas.iter().any(|r| r.replica_id.0 >= replica.0) {
                    return refuse("a new replica's id must be above every replica id of the shard".into());
                }
                cc.changes.push(single(ConfChangeType::AddLearnerNode, *replica));
                let added = ReplicaDescriptor { replica_id: *replica, server_id: *server, role: ReplicaRole::Learner };
                context.added.push(wire::replica_to_proto(&added));
            }
            MembershipChange::Joint { promote, demote } => {
                if promote.is_empty() && demote.is_empty() {
                    return refuse("a joint change needs a promotion or a demotion".into());
                }
                for server in promote {
                    match role_on(*server) {
                        Some((id, ReplicaRole::Learner)) => cc.changes.push(single(ConfChangeType::AddNode, id)),
                        _ => return refuse(format!("server {server} has no learner of {} to promote", self.shard_id)),
                    }
                }
                for server in demote {
                    match role_on(*server) {
                        Some((id, _)) if id == self.replica_id => {
                            return refuse(format!("server {server} leads {}; it cannot demote itself", self.shard_id))
                        }
                        Some((id, ReplicaRole::Voter)) => cc.changes.push(single(ConfChangeType::AddLearnerNode, id)),
                        _ => return refuse(format!("server {server} has no voter of {} to demote", self.shard_id)),
                    }
                }
                let voters = d.replicas.iter().filter(|r| r.role == ReplicaRole::Voter).count();
                if voters + promote.len() <= demote.len() {
                    return refuse(format!("the change would leave {} without voters", self.shard_id));
                }
                cc.set_transition(ConfChangeTransition::Explicit);
            }
            MembershipChange::RemoveLearner { server } => match role_on(*server) {
                Some((id, ReplicaRole::Learner)) => cc.changes.push(single(ConfChangeType::RemoveNode, id)),
                Some(_) => {
                    return refuse(format!("server {server}'s replica of {} votes; demote it first", self.shard_id))
                }
                None => return refuse(format!("server {server} has no replica of {}", self.shard_id)),
            },
        }
        Ok((cc, context))
    }

    /// The leader leaves a joint configuration as soon as it can (the
    /// joint changes are proposed with an explicit transition, so that
    /// whoever leads finishes them, even after a leader change).
    pub fn maybe_leave_joint(&mut self) {
        if !self.is_leader() || !self.leader_ready() || !is_joint(&self.descriptor) {
            return;
        }
        if self.raw_node.raft.has_pending_conf() {
            return;
        }
        let context = proto::storage::ConfChangeContext { conf_ver: self.descriptor.epoch.conf_ver.0, added: vec![] };
        if let Err(e) = self.raw_node.propose_conf_change(context.encode_to_vec(), ConfChangeV2::default()) {
            tracing::warn!(shard = %self.shard_id, "cannot propose leaving the joint configuration: {e}");
            return;
        }
        self.proposed = true;
    }

    /// Applies a conf change entry at `index` (every replica, in log
    /// order): only if the shard is still at the `conf_ver` of its
    /// `context` (the entry's context, where raft-rs puts what
    /// `propose_conf_change` was given).
    pub(super) fn apply_membership(
        &mut self,
        index: u64,
        cc: ConfChangeV2,
        context: &[u8],
        reply: Option<MembershipReply>,
        batch: &mut WriteBatch,
        completions: &mut Vec<Completion>,
    ) {
        let answer = |completions: &mut Vec<Completion>, result: Result<ShardDescriptor>| {
            if let Some(reply) = reply {
                completions.push(Completion::Membership { reply, result });
            }
        };
        let context = match proto::storage::ConfChangeContext::decode(context) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(shard = %self.shard_id, index, "a conf change without its context skipped: {e}");
                return answer(completions, Err(Error::InvalidArgument("undecodable conf change context".into())));
            }
        };
        let old = self.descriptor.clone();
        if context.conf_ver != old.epoch.conf_ver.0 {
            let why = format!(
                "{} is at conf_ver {}, the change was for {}",
                self.shard_id, old.epoch.conf_ver, context.conf_ver
            );
            tracing::warn!(shard = %self.shard_id, index, "conf change refused: {why}");
            return answer(completions, Err(Error::InvalidArgument(why)));
        }
        let cs = match self.raw_node.apply_conf_change(&cc) {
            Ok(cs) => cs,
            Err(e) => {
                // Deterministic: every replica refuses the same change.
                tracing::warn!(shard = %self.shard_id, index, "conf change refused: {e}");
                return answer(completions, Err(Error::InvalidArgument(format!("conf change refused: {e}"))));
            }
        };
        // The quorum that gave the lease was the old configuration's.
        self.lease.end();
        let added: Vec<ReplicaDescriptor> = context.added.into_iter().map(wire::replica_from_proto).collect();
        let new = descriptor_after(&old, &cs, &added);
        self.raw_node.mut_store().stage_conf_state(batch, &cs);
        self.stage_replica_record(&new, self.replica_id, batch);
        self.shared.set_descriptor(new.clone());
        self.descriptor = new.clone();
        tracing::info!(shard = %self.shard_id, conf_ver = %new.epoch.conf_ver, "membership changed: {}", show_replicas(&new));
        answer(completions, Ok(new));
    }
}

/// Whether `d` is in a joint configuration.
pub fn is_joint(d: &ShardDescriptor) -> bool {
    d.replicas.iter().any(|r| matches!(r.role, ReplicaRole::IncomingVoter | ReplicaRole::DemotingVoter))
}

/// The descriptor after a conf change that left raft-rs with `cs`:
/// `conf_ver` + 1, every replica of `cs` with its role, the servers of
/// replicas already there from `old`, of new ones from `added`. Replicas
/// in order of id.
pub fn descriptor_after(old: &ShardDescriptor, cs: &ConfState, added: &[ReplicaDescriptor]) -> ShardDescriptor {
    let joint = !cs.voters_outgoing.is_empty();
    let mut roles: BTreeMap<u64, ReplicaRole> = BTreeMap::new();
    for &id in &cs.voters {
        let role =
            if !joint || cs.voters_outgoing.contains(&id) { ReplicaRole::Voter } else { ReplicaRole::IncomingVoter };
        roles.insert(id, role);
    }
    for &id in &cs.voters_outgoing {
        roles.entry(id).or_insert(ReplicaRole::DemotingVoter);
    }
    for &id in &cs.learners {
        roles.insert(id, ReplicaRole::Learner);
    }
    let server_of =
        |id: ReplicaId| old.server_of(id).or_else(|| added.iter().find(|r| r.replica_id == id).map(|r| r.server_id));
    let replicas = roles
        .into_iter()
        .filter_map(|(id, role)| {
            let replica_id = ReplicaId(id);
            match server_of(replica_id) {
                Some(server_id) => Some(ReplicaDescriptor { replica_id, server_id, role }),
                None => {
                    tracing::error!(shard = %old.shard_id, %replica_id, "a replica of no known server left out");
                    None
                }
            }
        })
        .collect();
    let epoch = ShardEpoch { range_ver: old.epoch.range_ver, conf_ver: ConfVer(old.epoch.conf_ver.0 + 1) };
    ShardDescriptor { replicas, epoch, ..old.clone() }
}

fn show_replicas(d: &ShardDescriptor) -> String {
    let shown: Vec<String> =
        d.replicas.iter().map(|r| format!("{}@{}:{:?}", r.replica_id, r.server_id, r.role)).collect();
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use meta::RangeVer;

    fn replica(id: u64, server: u64, role: ReplicaRole) -> ReplicaDescriptor {
        ReplicaDescriptor { replica_id: ReplicaId(id), server_id: ServerId(server), role }
    }

    /// Goal: each step of a move gives the descriptor the roles raft-rs
    /// has, the servers of old and added replicas, and conf_ver + 1; the
    /// range and range_ver stay.
    /// Method: the module docs' move, step by step, from the ConfStates
    /// raft-rs reports.
    #[test]
    fn a_move_step_by_step() {
        use ReplicaRole::*;
        let d1 = ShardDescriptor {
            shard_id: ShardId(7),
            start_key: b"a".to_vec(),
            end_key: b"m".to_vec(),
            epoch: ShardEpoch { range_ver: RangeVer(3), conf_ver: ConfVer(1) },
            replicas: vec![replica(1, 1, Voter), replica(2, 2, Voter), replica(3, 3, Voter)],
        };
        let cs = |voters: &[u64], outgoing: &[u64], learners: &[u64], next: &[u64]| ConfState {
            voters: voters.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners: learners.to_vec(),
            learners_next: next.to_vec(),
            auto_leave: false,
        };
        let d2 = descriptor_after(&d1, &cs(&[1, 2, 3], &[], &[9], &[]), &[replica(9, 4, Learner)]);
        assert_eq!(
            d2.replicas,
            vec![replica(1, 1, Voter), replica(2, 2, Voter), replica(3, 3, Voter), replica(9, 4, Learner)]
        );
        assert_eq!((d2.epoch.conf_ver, d2.epoch.range_ver, &d2.start_key), (ConfVer(2), RangeVer(3), &b"a".to_vec()));
        assert!(!is_joint(&d2));
        let d3 = descriptor_after(&d2, &cs(&[2, 3, 9], &[1, 2, 3], &[], &[1]), &[]);
        assert_eq!(
            d3.replicas,
            vec![
                replica(1, 1, DemotingVoter),
                replica(2, 2, Voter),
                replica(3, 3, Voter),
                replica(9, 4, IncomingVoter)
            ]
        );
        assert!(is_joint(&d3));
        let d4 = descriptor_after(&d3, &cs(&[2, 3, 9], &[], &[1], &[]), &[]);
        assert_eq!(
            d4.replicas,
            vec![replica(1, 1, Learner), replica(2, 2, Voter), replica(3, 3, Voter), replica(9, 4, Voter)]
        );
        let d5 = descriptor_after(&d4, &cs(&[2, 3, 9], &[], &[], &[]), &[]);
        assert_eq!(d5.replicas, vec![replica(2, 2, Voter), replica(3, 3, Voter), replica(9, 4, Voter)]);
        assert_eq!(d5.epoch.conf_ver, ConfVer(5));
    }
}
