//! Changing where a shard's replicas live: one membership change
//! ([`Client::change_replicas`]), and a whole move of a replica from one
//! server to another ([`Client::move_replica`]), the four changes of the
//! server's `shard/membership.rs`:
//!
//! ```text
//!   add a learner on TO ─> wait until it has caught up ─> joint: promote
//!   TO, demote FROM (the leader leaves the joint configuration itself)
//!   ─> wait until it has ─> remove the learner on FROM
//! ```
//!
//! A move can be run again after a failure: each step looks at the
//! shard's descriptor first and skips what is already done. Data
//! requests never wait on a move, and a move never aborts a transaction.

use std::time::{Duration, Instant};

use meta::{ServerId, ShardId};
use proto::replica_change::Kind;

use crate::error::{Error, Result};
use crate::{Client, Dest, Op};

/// How far [`Client::move_replica_until`] goes: a whole move, or only its
/// first steps (what a move cut short leaves: a fault injector's partial
/// moves; the placement driver removes the learner left).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveStep {
    /// Stop once the learner on the new server is added.
    Learner,
    /// Stop once the joint configuration is left: the new server's
    /// replica votes, the old server's is a learner.
    Joint,
    /// The whole move: the old server's replica removed.
    Whole,
}

impl MoveStep {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveStep::Learner => "learner",
            MoveStep::Joint => "joint",
            MoveStep::Whole => "whole",
        }
    }
}

/// How long a move waits for a learner to catch up, or for the leader to
/// leave a joint configuration.
pub const MOVE_STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often it looks.
const MOVE_POLL: Duration = Duration::from_millis(50);

fn role_of(d: &proto::ShardDescriptor, server: ServerId) -> Option<proto::ReplicaRole> {
    d.replicas.iter().find(|r| r.server_id == server.0).map(|r| r.role())
}

fn is_joint(d: &proto::ShardDescriptor) -> bool {
    d.replicas.iter().any(|r| matches!(r.role(), proto::ReplicaRole::IncomingVoter | proto::ReplicaRole::DemotingVoter))
}

impl Client {
    /// The newest descriptor of `shard` any server reports, and the
    /// server that leads it by that report (if known).
    pub async fn shard_descriptor(&self, shard: ShardId) -> Result<(proto::ShardDescriptor, Option<ServerId>)> {
        let info = self.cluster_info().await?;
        let mut newest: Option<(proto::ShardDescriptor, Option<ServerId>)> = None;
        for server in &info.servers {
            let Ok(theirs) = self.cluster_info_from(&server.addr).await else { continue };
            for s in theirs.shards {
                let Some(d) = s.descriptor.filter(|d| d.shard_id == shard.0) else { continue };
                let newer = newest
                    .as_ref()
                    .is_none_or(|(n, _)| crate::routing::epoch_of(&d).is_newer_than(&crate::routing::epoch_of(n)));
                if newer {
                    let leader = (s.leader_server_id != 0).then_some(ServerId(s.leader_server_id));
                    newest = Some((d, leader));
                }
            }
        }
        let found = newest.ok_or_else(|| Error::InvalidArgument(format!("no server knows shard {}", shard.0)))?;
        self.routes().update([found.0.clone()]);
        Ok(found)
    }

    /// Every shard's newest descriptor any server that answers reports,
    /// by shard id (a server reports only the shards it holds).
    pub async fn shard_map(&self) -> Result<std::collections::BTreeMap<ShardId, proto::ShardDescriptor>> {
        let info = self.cluster_info().await?;
        let mut newest: std::collections::BTreeMap<ShardId, proto::ShardDescriptor> = Default::default();
        for server in &info.servers {
            let Ok(theirs) = self.cluster_info_from(&server.addr).await else { continue };
            for d in theirs.shards.into_iter().filter_map(|s| s.descriptor) {
                let id = ShardId(d.shard_id);
                let epoch = crate::routing::epoch_of(&d);
                if newest.get(&id).is_none_or(|n| epoch.is_newer_than(&crate::routing::epoch_of(n))) {
                    newest.insert(id, d);
                }
            }
        }
        Ok(newest)
    }

    /// One membership change of `shard` (`Admin.ChangeReplicas`), at the
    /// shard's membership version as the servers report it now; the new
    /// descriptor once applied.
    pub async fn change_replicas(
        &self,
        shard: ShardId,
        changes: Vec<proto::ReplicaChange>,
    ) -> Result<proto::ShardDescriptor> {
        let (current, _) = self.shard_descriptor(shard).await?;
        self.change_replicas_at(shard, current.conf_ver, changes).await
    }

    /// One membership change of `shard`, refused by its leader unless the
    /// shard is still at membership version `conf_ver` (what the caller
    /// planned the change at); the new descriptor once applied.
    pub async fn change_replicas_at(
        &self,
        shard: ShardId,
        conf_ver: u64,
        changes: Vec<proto::ReplicaChange>,
    ) -> Result<proto::ShardDescriptor> {
        let request = proto::ChangeReplicasRequest { shard_id: shard.0, conf_ver, changes };
        let response = self
            .execute(Dest::Shard(shard), Op::Write, |channel, _| {
                let request = self.admin_request(request.clone());
                async move { proto::admin_client::AdminClient::new(channel).change_replicas(request).await }
            })
            .await?
            .into_inner();
        let d = response
            .descriptor
            .ok_or_else(|| Error::Unavailable("a server answered a membership change without the descriptor".into()))?;
        self.routes().update([d.clone()]);
        Ok(d)
    }

    /// Moves `shard`'s voter on `from` to `to` (module docs); the final
    /// descriptor.
    pub async fn move_replica(&self, shard: ShardId, from: ServerId, to: ServerId) -> Result<proto::ShardDescriptor> {
        self.move_replica_planned(shard, from, to, None).await
    }

    /// [`Client::move_replica`], begun only if the shard is at membership
    /// version `planned` (if given): the version a placement driver
    /// planned the move at. The first change (the learner) is made at that
    /// version, so of two drivers that both believe they lead and plan a
    /// move of one shard at one version, only one adds a learner.
    pub async fn move_replica_planned(
        &self,
        shard: ShardId,
        from: ServerId,
        to: ServerId,
        planned: Option<u64>,
    ) -> Result<proto::ShardDescriptor> {
        self.move_replica_until(shard, from, to, planned, MoveStep::Whole).await
    }

    /// [`Client::move_replica_planned`], stopping after step `until`.
    pub async fn move_replica_until(
        &self,
        shard: ShardId,
        from: ServerId,
        to: ServerId,
        planned: Option<u64>,
        until: MoveStep,
    ) -> Result<proto::ShardDescriptor> {
        let change = |kind: Kind, server: ServerId| proto::ReplicaChange { kind: kind as i32, server_id: server.0 };
        let (mut d, _) = self.shard_descriptor(shard).await?;
        if let Some(planned) = planned.filter(|p| *p != d.conf_ver) {
            return Err(Error::InvalidArgument(format!(
                "shard {} is at membership version {}, not {planned} as planned",
                shard.0, d.conf_ver
            )));
        }
        // A planned move starts from a settled shard, so its first change
        // is the learner, at the planned version (not a wait, then a later
        // version, nor a promotion of someone else's learner).
        if planned.is_some() && (is_joint(&d) || role_of(&d, to).is_some()) {
            return Err(Error::InvalidArgument(format!(
                "shard {} is in the middle of a membership change; a planned move starts from voters only",
                shard.0
            )));
        }
        if is_joint(&d) {
            d = self.wait_until_not_joint(shard).await?;
        }
        match (role_of(&d, from), role_of(&d, to)) {
            (Some(proto::ReplicaRole::Voter), None) => {
                d = self.change_replicas_at(shard, d.conf_ver, vec![change(Kind::AddLearner, to)]).await?;
            }
            (Some(proto::ReplicaRole::Voter), Some(proto::ReplicaRole::Learner)) => {}
            (Some(proto::ReplicaRole::Learner) | None, Some(proto::ReplicaRole::Voter)) => {}
            (f, t) => {
                return Err(Error::InvalidArgument(format!(
                    "cannot move shard {} from server {from} ({f:?}) to server {to} ({t:?})",
                    shard.0
                )))
            }
        }
        if until == MoveStep::Learner {
            return Ok(d);
        }
        if role_of(&d, to) == Some(proto::ReplicaRole::Learner) {
            self.wait_until_caught_up(shard, to).await?;
            self.change_replicas(shard, vec![change(Kind::Promote, to), change(Kind::Demote, from)]).await?;
            d = self.wait_until_not_joint(shard).await?;
        }
        if until == MoveStep::Joint {
            return Ok(d);
        }
        if role_of(&d, from) == Some(proto::ReplicaRole::Learner) {
            d = self.change_replicas(shard, vec![change(Kind::Remove, from)]).await?;
        }
        Ok(d)
    }

    /// Marks `server` as draining (decommissioned: the placement driver
    /// moves its replicas away and places none there), or active again;
    /// the draining servers after the change.
    pub async fn set_draining(&self, server: ServerId, draining: bool) -> Result<Vec<ServerId>> {
        let key = meta::keys::DRAINING_SERVERS;
        let response = self
            .execute(Dest::Key(key), Op::Allocate, |channel, target| {
                let request = proto::SetServerDrainingRequest {
                    shard_id: target.shard_id.0,
                    range_ver: target.range_ver.0,
                    server_id: server.0,
                    draining,
                };
                let request = self.admin_request(request);
                async move { proto::admin_client::AdminClient::new(channel).set_server_draining(request).await }
            })
            .await?;
        Ok(response.into_inner().server_ids.into_iter().map(ServerId).collect())
    }

    /// The draining servers.
    pub async fn draining_servers(&self) -> Result<Vec<ServerId>> {
        let key = meta::keys::DRAINING_SERVERS;
        let op = Op::Read { prefer_leader: true, follower_first: false };
        let response = self
            .execute(Dest::Key(key), op, |channel, target| {
                let request =
                    proto::DrainingServersRequest { shard_id: target.shard_id.0, range_ver: target.range_ver.0 };
                async move { proto::admin_client::AdminClient::new(channel).draining_servers(request).await }
            })
            .await?;
        Ok(response.into_inner().server_ids.into_iter().map(ServerId).collect())
    }

    /// Asks `shard`'s leader to hand its leadership to the replica on
    /// `to` (`Admin.TransferLeader`). A leader change aborts the
    /// transactions open there, so with a `drain` the leader first holds
    /// new work back for up to that long while the open ones end; with
    /// `only_if_idle`, it never hands over while one is open (then gives
    /// up). Answered once asked, not once done: Raft transfers the
    /// leadership when that replica has caught up, and gives up after an
    /// election timeout.
    pub async fn transfer_leader(
        &self,
        shard: ShardId,
        to: ServerId,
        only_if_idle: bool,
        drain: Duration,
    ) -> Result<()> {
        let drain_ms = u32::try_from(drain.as_millis()).unwrap_or(u32::MAX);
        let request = proto::TransferLeaderRequest { shard_id: shard.0, to_server_id: to.0, only_if_idle, drain_ms };
        self.execute(Dest::Shard(shard), Op::Write, |channel, _| {
            let request = self.admin_request(request);
            async move { proto::admin_client::AdminClient::new(channel).transfer_leader(request).await }
        })
        .await?;
        Ok(())
    }

    /// Waits until `server`'s replica of `shard` has applied what its
    /// leader had committed when the wait began.
    async fn wait_until_caught_up(&self, shard: ShardId, server: ServerId) -> Result<()> {
        let deadline = Instant::now() + MOVE_STEP_TIMEOUT;
        let servers = self.cluster_info().await?.servers;
        let addr_of = |s: ServerId| servers.iter().find(|i| i.server_id == s.0).map(|i| i.addr.clone());
        let addr = addr_of(server).ok_or_else(|| Error::InvalidArgument(format!("no server {server}")))?;
        let mut goal = None;
        loop {
            if goal.is_none() {
                let (_, leader) = self.shard_descriptor(shard).await?;
                if let Some(leader_addr) = leader.and_then(addr_of) {
                    if let Ok(status) = self.server_status(&leader_addr).await {
                        goal = status.replicas.iter().find(|r| r.shard_id == shard.0).map(|r| r.committed_index);
                    }
                }
            }
            if let (Some(goal), Ok(status)) = (goal, self.server_status(&addr).await) {
                let caught_up =
                    status.replicas.iter().any(|r| r.shard_id == shard.0 && r.range_ver > 0 && r.applied_index >= goal);
                if caught_up {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "server {server}'s learner of shard {} did not catch up within {MOVE_STEP_TIMEOUT:?}",
                    shard.0
                )));
            }
            tokio::time::sleep(MOVE_POLL).await;
        }
    }

    /// Waits until the shard's leader has left its joint configuration.
    async fn wait_until_not_joint(&self, shard: ShardId) -> Result<proto::ShardDescriptor> {
        let deadline = Instant::now() + MOVE_STEP_TIMEOUT;
        loop {
            let (d, _) = self.shard_descriptor(shard).await?;
            if !is_joint(&d) {
                return Ok(d);
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "shard {} did not leave its joint configuration within {MOVE_STEP_TIMEOUT:?}",
                    shard.0
                )));
            }
            tokio::time::sleep(MOVE_POLL).await;
        }
    }
}
