//! Admin calls to single servers, each on a fresh connection and under
//! [`ADMIN_TIMEOUT`], so a paused or dead server costs a timeout, never a
//! hang; and the one definition of "every shard has a stable leader".

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use proto::admin_client::AdminClient;
use tonic::transport::{Channel, Endpoint};

use crate::limits::ADMIN_TIMEOUT;

/// A connection to `addr`'s admin service (the clock strobe keeps one).
pub async fn connect(addr: &str) -> anyhow::Result<AdminClient<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("bad address {addr:?}"))?
        .connect_timeout(ADMIN_TIMEOUT)
        .timeout(ADMIN_TIMEOUT);
    let channel = tokio::time::timeout(ADMIN_TIMEOUT, endpoint.connect())
        .await
        .with_context(|| format!("{addr}: no connection within {ADMIN_TIMEOUT:?}"))?
        .with_context(|| format!("cannot connect to {addr}"))?;
    Ok(AdminClient::new(channel))
}

/// Runs one admin call against `addr`.
macro_rules! call {
    ($addr:expr, $method:ident, $request:expr) => {{
        let addr: &str = $addr;
        let mut admin = connect(addr).await?;
        match tokio::time::timeout(ADMIN_TIMEOUT, admin.$method($request)).await {
            Ok(Ok(response)) => Ok::<_, anyhow::Error>(response.into_inner()),
            Ok(Err(status)) => Err(anyhow::anyhow!("{addr}: {}", status.message())),
            Err(_) => Err(anyhow::anyhow!("{addr}: no answer within {ADMIN_TIMEOUT:?}")),
        }
    }};
}

pub async fn server_status(addr: &str) -> anyhow::Result<proto::ServerStatusResponse> {
    call!(addr, server_status, proto::ServerStatusRequest {})
}

pub async fn get_clock(addr: &str) -> anyhow::Result<proto::ClockStatus> {
    call!(addr, get_clock, proto::GetClockRequest {})
}

pub async fn set_clock(addr: &str, offset_ns: i64, drift_ppm: i64) -> anyhow::Result<proto::ClockStatus> {
    call!(addr, set_clock, proto::SetClockRequest { offset_ns, drift_ppm })
}

/// Asks `addr`, which must lead `shard`, to hand the leadership to
/// server `to`.
pub async fn transfer_leader(addr: &str, shard: u64, to: u64) -> anyhow::Result<()> {
    call!(addr, transfer_leader, proto::TransferLeaderRequest { shard_id: shard, to_server_id: to }).map(|_| ())
}

/// The smallest TrueTime epsilon among the servers that answer, in ns.
pub async fn epsilon_ns(servers: &BTreeMap<u64, String>) -> anyhow::Result<i64> {
    let mut epsilon: Option<u64> = None;
    let mut errors = Vec::new();
    for addr in servers.values() {
        match get_clock(addr).await {
            Ok(c) => epsilon = Some(epsilon.map_or(c.epsilon_ns, |e| e.min(c.epsilon_ns))),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    match epsilon {
        Some(e) => Ok(e.min(i64::MAX as u64) as i64),
        None => bail!("no server told its clock: {}", errors.join("; ")),
    }
}

/// One replica as a server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaView {
    pub server: u64,
    pub shard: u64,
    pub is_leader: bool,
    pub term: u64,
    pub leader_server: u64,
}

/// Every replica of every server that answers; the servers that do not.
pub async fn replica_views(servers: &BTreeMap<u64, String>) -> (Vec<ReplicaView>, Vec<u64>) {
    let mut views = Vec::new();
    let mut silent = Vec::new();
    for (&server, addr) in servers {
        match server_status(addr).await {
            Ok(status) => views.extend(status.replicas.iter().map(|r| ReplicaView {
                server,
                shard: r.shard_id,
                is_leader: r.role == "leader",
                term: r.term,
                leader_server: r.leader_server_id,
            })),
            Err(_) => silent.push(server),
        }
    }
    (views, silent)
}

/// The leader of each shard: the server whose replica says it leads, at
/// the highest term any replica of the shard reports.
pub fn leaders(views: &[ReplicaView]) -> BTreeMap<u64, u64> {
    let mut max_term: BTreeMap<u64, u64> = BTreeMap::new();
    for v in views {
        let t = max_term.entry(v.shard).or_default();
        *t = (*t).max(v.term);
    }
    views.iter().filter(|v| v.is_leader && v.term == max_term[&v.shard]).map(|v| (v.shard, v.server)).collect()
}

/// Whether the cluster has recovered: every server answered, and every
/// shard has a leader at its highest term that all its replicas follow.
/// `Err` says what is still missing.
pub fn recovered(views: &[ReplicaView], silent: &[u64]) -> Result<(), String> {
    if !silent.is_empty() {
        return Err(format!("servers {silent:?} do not answer"));
    }
    if views.is_empty() {
        return Err("no replicas reported".into());
    }
    let leaders = leaders(views);
    let mut missing = Vec::new();
    let shards: std::collections::BTreeSet<u64> = views.iter().map(|v| v.shard).collect();
    for shard in shards {
        match leaders.get(&shard) {
            None => missing.push(format!("shard {shard} has no leader")),
            Some(&leader) => {
                let strays: Vec<String> = views
                    .iter()
                    .filter(|v| v.shard == shard && v.leader_server != leader)
                    .map(|v| format!("{} (term {}, leader {})", v.server, v.term, v.leader_server))
                    .collect();
                if !strays.is_empty() {
                    let term = views.iter().filter(|v| v.shard == shard).map(|v| v.term).max().unwrap_or(0);
                    missing.push(format!(
                        "shard {shard}: servers {} do not follow leader {leader} (term {term}) yet",
                        strays.join(", ")
                    ));
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(server: u64, shard: u64, is_leader: bool, term: u64, leader_server: u64) -> ReplicaView {
        ReplicaView { server, shard, is_leader, term, leader_server }
    }

    /// Goal: recovery means every shard has one leader at its top term
    /// that all replicas follow, and every server answers.
    /// Method: a healthy view, then one fault at a time.
    #[test]
    fn recovery_needs_a_followed_leader_everywhere() {
        let healthy = vec![
            v(1, 1, true, 3, 1),
            v(2, 1, false, 3, 1),
            v(3, 1, false, 3, 1),
            v(2, 2, true, 5, 2),
            v(3, 2, false, 5, 2),
        ];
        assert_eq!(recovered(&healthy, &[]), Ok(()));
        assert_eq!(leaders(&healthy), BTreeMap::from([(1, 1), (2, 2)]));
        assert!(recovered(&healthy, &[3]).unwrap_err().contains("do not answer"));

        // A deposed leader at an old term does not count.
        let mut stale = healthy.clone();
        stale[0] = v(1, 1, true, 2, 1);
        stale[1] = v(2, 1, false, 3, 0);
        stale[2] = v(3, 1, false, 3, 0);
        assert!(recovered(&stale, &[]).unwrap_err().contains("shard 1 has no leader"));
        assert_eq!(leaders(&stale), BTreeMap::from([(2, 2)]));

        // A replica that does not know the leader yet.
        let mut lagging = healthy.clone();
        lagging[4] = v(3, 2, false, 4, 0);
        let why = recovered(&lagging, &[]).unwrap_err();
        assert!(why.contains("servers 3 (term 4, leader 0) do not follow leader 2 (term 5)"), "{why}");
        assert!(recovered(&[], &[]).is_err());
    }
}
