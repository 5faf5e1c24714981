//! Replica GC: a replica that knows no leader, or is a learner, asks the
//! other servers of its shard whether it still belongs, and is destroyed
//! if it does not (CockroachDB's replica GC queue; TiKV asks its
//! placement driver).
//!
//! Why it is needed: a replica is destroyed when it applies its own
//! removal (`event_loop/removal.rs`), or when a leader writes to a newer
//! replica of the shard on its server. A replica whose server was down
//! (or cut off) while it was removed does neither: it never hears from
//! the shard again (leaders do not write to non-members, and its
//! pre-votes win nothing), so without this it would keep its data and
//! its Raft state forever. A voter cut off from its leader soon knows no
//! leader (its election timer fires); a learner never campaigns, so it
//! goes on naming the leader it last heard, and is asked about as long
//! as it is a learner (a move cut short leaves one; `spandb jepsen`
//! found one the placement driver removed during a partition, kept for
//! good).
//!
//! ```text
//!   every REPLICA_GC_INTERVAL, for each replica here with no known leader,
//!   or a learner (in its own descriptor):
//!     ask every other server (Admin.ClusterInfo) for its view of the shard
//!     a descriptor newer than ours that does not name our replica?
//!       ──> LoopMsg::DestroyStale { shard, replica, newer epoch }
//!           (the loop destroys it only if it is still that replica, at an
//!            older epoch)
//! ```
//!
//! Only positive evidence destroys: a newer descriptor of the same shard,
//! from a server of the cluster, without this replica in it. Silence (a
//! partition, servers down) destroys nothing. A replica that was removed
//! and then re-added has a new replica id, so the old one is stale too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::inbox::{LoopHandle, LoopMsg};
use crate::limits;
use crate::peers::Peers;
use crate::registry::Registry;
use crate::wire;
use meta::ShardEpoch;

/// Starts the replica GC on `runtime`; it ends when `stopped` is set.
pub fn start(
    registry: Arc<Registry>,
    peers: Arc<Peers>,
    event_loop: LoopHandle,
    stopped: Arc<AtomicBool>,
    runtime: &tokio::runtime::Handle,
) {
    runtime.spawn(async move {
        let mut every = tokio::time::interval(limits::REPLICA_GC_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        while !stopped.load(Ordering::SeqCst) {
            every.tick().await;
            let asking: Vec<_> = registry
                .all()
                .into_iter()
                .filter(|r| {
                    let d = r.descriptor();
                    let learner = d
                        .replicas
                        .iter()
                        .any(|x| x.replica_id == r.replica_id && x.role == meta::ReplicaRole::Learner);
                    d.is_initialized() && (r.progress().leader_server.is_none() || learner)
                })
                .collect();
            if asking.is_empty() {
                continue;
            }
            // One question per server, for every such replica here;
            // every other server, not only those of our descriptor: they
            // may all have left the shard since.
            let mut views = Vec::new();
            for server in peers.others(registry.server_id) {
                if let Ok(info) = peers.cluster_info(server).await {
                    views.extend(info.shards.into_iter().filter_map(|s| s.descriptor).map(wire::descriptor_from_proto));
                }
            }
            for r in asking {
                let ours = r.descriptor();
                let me = (registry.server_id, r.replica_id);
                let newer_without_us = views.iter().find(|d| {
                    d.shard_id == ours.shard_id
                        && d.epoch.is_newer_than(&ours.epoch)
                        && !d.replicas.iter().any(|x| (x.server_id, x.replica_id) == me)
                });
                if let Some(newer) = newer_without_us {
                    let newer: ShardEpoch = newer.epoch;
                    tracing::info!(shard = %ours.shard_id, replica = %r.replica_id, %newer, "a newer descriptor of the shard does not name this replica");
                    let _ = event_loop.send(LoopMsg::DestroyStale { shard: ours.shard_id, replica: r.replica_id, newer });
                }
            }
        }
    });
}
