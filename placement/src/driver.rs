//! The placement driver's loop: the I/O around [`Scheduler`].
//!
//! ```text
//!   every interval:
//!     does my server lead the system shard? ── no ──> forget everything
//!       │ yes
//!     read the draining servers (Admin.DrainingServers) ──> set_draining
//!     ask every server for its shards, its clock's health and its
//!       replicas' loads (Admin.ClusterInfo, Admin.ServerStatus)
//!                                           ──> heard / report / set_loads
//!     plan ──> each operation on its own task (Client::move_replica,
//!              Client::transfer_leader)
//!     operations that ended ──> finished
//!     the operations in flight ──> published (spandb status shows them)
//! ```
//!
//! An operation is started only if the shard's descriptor is still at the
//! epoch the scheduler planned it at; each membership change it makes is
//! then checked by the shard against the version it read
//! (`Admin.ChangeReplicas`' `conf_ver`). The driver is stopped by dropping
//! (aborting) its task; moves in flight then stop between two changes,
//! and the next driver's `move_replica` resumes or the shard is left
//! without a joint configuration by its leader.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use meta::{
    ConfVer, RangeVer, ReplicaDescriptor, ReplicaId, ReplicaRole, ServerId, ShardDescriptor, ShardEpoch, ShardId,
};
use tokio::sync::mpsc;

use crate::limits;
use crate::scheduler::{Operation, Reason, Scheduler, Settings, ShardReport};

/// How the driver runs.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The gRPC address of the server this driver runs beside.
    pub local_addr: String,
    /// How often it looks at the cluster.
    pub interval: Duration,
    /// The scheduler's aims.
    pub settings: Settings,
    /// The cluster's peer secret: the changes the driver asks for (replica
    /// changes, leadership transfers, splits) need it.
    pub peer_secret: client::PeerSecret,
}

/// Where the driver shows what it is doing: called each round with the
/// operations in flight, in words (empty once it stands down).
pub type Publish = Box<dyn Fn(Vec<String>) + Send + Sync>;

/// The placement driver beside one server.
pub struct Driver {
    config: DriverConfig,
    publish: Publish,
}

impl Driver {
    pub fn new(config: DriverConfig, publish: Publish) -> Driver {
        Driver { config, publish }
    }

    /// Runs a driver beside the server at `local_addr` on a task of its
    /// own (aborting the task stops it).
    pub fn spawn(
        local_addr: String,
        peer_secret: client::PeerSecret,
        interval: Duration,
        settings: Settings,
        publish: Publish,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(Driver::new(DriverConfig { local_addr, interval, settings, peer_secret }, publish).run())
    }

    /// Runs until the task is aborted.
    pub async fn run(self) {
        let client = loop {
            let config =
                client::ClientConfig { peer_secret: Some(self.config.peer_secret.clone()), ..Default::default() };
            match client::Client::connect_with([self.config.local_addr.clone()], config).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::debug!("placement driver cannot reach its server yet: {e}");
                    tokio::time::sleep(self.config.interval).await;
                }
            }
        };
        // Operations end with (the scheduler that planned them, shard): one
        // planned before this server last stood down must not end an
        // operation the scheduler of its next term planned for that shard.
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u64, ShardId)>();
        let mut scheduler: Option<Scheduler> = None;
        let mut term = 0u64;
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let local = client.server_status(&self.config.local_addr).await.ok();
            if !local.as_ref().is_some_and(leads_system_shard) {
                if scheduler.take().is_some() {
                    tracing::info!("placement driver stands down: this server no longer leads the system shard");
                    (self.publish)(Vec::new());
                }
                continue;
            }
            let Ok(info) = client.cluster_info().await else { continue };
            let now = Instant::now();
            let s = scheduler.get_or_insert_with(|| {
                tracing::info!("placement driver takes over: this server leads the system shard");
                term += 1;
                Scheduler::new(self.config.settings.clone(), info.servers.iter().map(|s| ServerId(s.server_id)), now)
            });
            while let Ok((planned_in, shard)) = done_rx.try_recv() {
                if planned_in == term {
                    s.finished(shard);
                }
            }
            match client.draining_servers().await {
                Ok(draining) => s.set_draining(draining),
                Err(e) => tracing::debug!("placement driver cannot read the draining servers: {e}"),
            }
            // A shard's load is the most any of its replicas measured: the
            // replica that led it over the last interval.
            let mut loads: BTreeMap<ShardId, f64> = BTreeMap::new();
            for server in &info.servers {
                let Ok(theirs) = client.cluster_info_from(&server.addr).await else { continue };
                let status = match local.as_ref().filter(|l| l.server_id == server.server_id) {
                    Some(l) => Some(l.clone()),
                    None => client.server_status(&server.addr).await.ok(),
                };
                let clock_trusted = status.as_ref().is_some_and(|s| s.clock_healthy);
                for r in status.iter().flat_map(|s| &s.replicas) {
                    let load = loads.entry(ShardId(r.shard_id)).or_default();
                    *load = load.max(r.requests_per_s);
                }
                s.heard(ServerId(server.server_id), Instant::now(), clock_trusted);
                for shard in theirs.shards {
                    let Some(d) = shard.descriptor else { continue };
                    let leader = (shard.leader_server_id != 0).then_some(ServerId(shard.leader_server_id));
                    s.report(ShardReport { descriptor: descriptor_of(&d), leader });
                }
            }
            s.set_loads(loads);
            for op in s.plan(Instant::now()) {
                tracing::info!(?op, "placement driver starts an operation");
                let (client, done) = (client.clone(), done_tx.clone());
                tokio::spawn(async move {
                    run_operation(&client, &op).await;
                    let _ = done.send((term, op.shard()));
                });
            }
            (self.publish)(s.in_flight().map(|op| op.to_string()).collect());
        }
    }
}

/// Does the server whose status this is lead the system shard (the one
/// whose range starts at the first key)?
fn leads_system_shard(status: &proto::ServerStatusResponse) -> bool {
    status.replicas.iter().any(|r| r.start_key.is_empty() && r.role == "leader")
}

async fn run_operation(client: &client::Client, op: &Operation) {
    let shard = op.shard();
    match client.shard_descriptor(shard).await {
        Ok((d, _)) if descriptor_of(&d).epoch == op.epoch() => {}
        Ok(_) => {
            tracing::info!(%shard, "placement: the shard changed since the operation was planned; skipped");
            return;
        }
        Err(e) => {
            tracing::warn!(%shard, "placement: cannot read the shard's descriptor: {e}");
            return;
        }
    }
    match *op {
        Operation::MoveReplica { epoch, from, to, reason, .. } => {
            match client.move_replica_planned(shard, from, to, Some(epoch.conf_ver.0)).await {
                Ok(_) => tracing::info!(%shard, %from, %to, ?reason, "placement: replica moved"),
                Err(e) => tracing::warn!(%shard, %from, %to, ?reason, "placement: move failed: {e}"),
            }
        }
        Operation::RemoveLearner { epoch, server, .. } => {
            let remove = proto::ReplicaChange { kind: proto::replica_change::Kind::Remove as i32, server_id: server.0 };
            match client.change_replicas_at(shard, epoch.conf_ver.0, vec![remove]).await {
                Ok(_) => tracing::info!(%shard, %server, "placement: removed a learner a cut-short move left"),
                Err(e) => tracing::warn!(%shard, %server, "placement: removing a left learner failed: {e}"),
            }
        }
        // A leader change aborts the transactions open there (their read
        // locks live at the leader): the leader first drains the shard.
        // One for load hands over what is still open at the end of it
        // (but not a transaction open for long: the server then gives up,
        // `spanserver/src/shard/handover.rs`); one for counts does not.
        // Either is asked again in a later round if it did not happen.
        Operation::TransferLeader { to, reason, .. } => {
            let only_if_idle = reason != Reason::Load;
            match client.transfer_leader(shard, to, only_if_idle, limits::TRANSFER_DRAIN).await {
                Ok(()) => tracing::info!(%shard, %to, ?reason, "placement: leadership transfer asked"),
                Err(e) => tracing::warn!(%shard, %to, ?reason, "placement: leadership transfer refused: {e}"),
            }
        }
    }
}

/// The domain descriptor of a reported one (the driver's gRPC edge).
pub fn descriptor_of(d: &proto::ShardDescriptor) -> ShardDescriptor {
    ShardDescriptor {
        shard_id: ShardId(d.shard_id),
        start_key: d.start_key.clone(),
        end_key: d.end_key.clone(),
        epoch: ShardEpoch { range_ver: RangeVer(d.range_ver), conf_ver: ConfVer(d.conf_ver) },
        replicas: d
            .replicas
            .iter()
            .map(|r| ReplicaDescriptor {
                replica_id: ReplicaId(r.replica_id),
                server_id: ServerId(r.server_id),
                // An unknown role (from a newer server) reads as a
                // learner, as the servers read it: never a voter to count
                // on (prost's `role()` would read it as a voter).
                role: match proto::ReplicaRole::try_from(r.role) {
                    Ok(proto::ReplicaRole::Voter) => ReplicaRole::Voter,
                    Ok(proto::ReplicaRole::IncomingVoter) => ReplicaRole::IncomingVoter,
                    Ok(proto::ReplicaRole::DemotingVoter) => ReplicaRole::DemotingVoter,
                    Ok(proto::ReplicaRole::Learner) | Err(_) => ReplicaRole::Learner,
                },
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the driver reads roles as the servers do; one it does not
    /// know (a newer server's) is never counted as a voter.
    #[test]
    fn an_unknown_role_reads_as_a_learner() {
        let replica = |role: i32| proto::ReplicaDescriptor { replica_id: 1, server_id: 1, role };
        let d = proto::ShardDescriptor {
            shard_id: 1,
            replicas: vec![replica(0), replica(2), replica(99)],
            ..Default::default()
        };
        let roles: Vec<ReplicaRole> = descriptor_of(&d).replicas.iter().map(|r| r.role).collect();
        assert_eq!(roles, vec![ReplicaRole::Voter, ReplicaRole::IncomingVoter, ReplicaRole::Learner]);
    }
}
