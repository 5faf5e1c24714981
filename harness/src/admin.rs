//! Admin calls to single servers, each on a fresh connection and under
//! [`ADMIN_TIMEOUT`], so a paused or dead server costs a timeout, never a
//! hang; and the one definition of "every shard has a stable leader".

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use client::PeerSecret;
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

/// `message` as a call that changes the cluster: with the peer secret,
/// if the run has it (the servers refuse the call without it).
pub fn change<T>(message: T, secret: Option<&PeerSecret>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(secret) = secret {
        secret.attach(&mut request);
    }
    request
}

pub async fn set_clock(
    addr: &str,
    secret: Option<&PeerSecret>,
    offset_ns: i64,
    drift_ppm: i64,
) -> anyhow::Result<proto::ClockStatus> {
    call!(addr, set_clock, change(proto::SetClockRequest { offset_ns, drift_ppm }, secret))
}

/// Asks `addr`, which must lead `shard`, to hand the leadership to
/// server `to`.
pub async fn transfer_leader(addr: &str, secret: Option<&PeerSecret>, shard: u64, to: u64) -> anyhow::Result<()> {
    let request = proto::TransferLeaderRequest { shard_id: shard, to_server_id: to, only_if_idle: false, drain_ms: 0 };
    call!(addr, transfer_leader, change(request, secret)).map(|_| ())
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
    /// The replica's range `[start, end)` (empty end: unbounded) and its
    /// range version.
    pub start: Vec<u8>,
    pub end: Vec<u8>,
    pub range_ver: u64,
    /// "voter", "learner", "incoming-voter" or "demoting-voter".
    pub membership: String,
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
                start: r.start_key.clone(),
                end: r.end_key.clone(),
                range_ver: r.range_ver,
                membership: r.membership.clone(),
            })),
            Err(_) => silent.push(server),
        }
    }
    (views, silent)
}

/// The keys each server that answers stores outside its replicas
/// (`ServerStatusResponse.stray_keys`), as problems in words: none once
/// every replica that left a server took its data with it.
pub async fn stray_data(servers: &BTreeMap<u64, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (&server, addr) in servers {
        if let Ok(status) = server_status(addr).await {
            let keys: Vec<String> =
                status.stray_keys.iter().map(|k| format!("{:?}", String::from_utf8_lossy(k))).collect();
            if !keys.is_empty() {
                problems
                    .push(format!("server {server} stores data outside its replicas, from keys {}", keys.join(", ")));
            }
        }
    }
    problems
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

/// What is wrong with the shard map the servers report, once every shard
/// has a followed leader ([`recovered`]): the leaders' ranges must cover
/// the key space with no gap and no overlap, and every shard must have
/// `voters` voters (if given), no joint configuration, each replica on
/// its own server and at its leader's range (a replica still behind a
/// split is not there yet). With `voters` given (a cluster the run
/// started, its placement driver on), no learner either: one a move cut
/// short left is removed by the driver after
/// `placement.stray_learner_after_s` ([`crate::limits::STRAY_LEARNER_AFTER_S`]
/// there), which the recovery wait outlasts.
pub fn placement_problems(views: &[ReplicaView], voters: Option<usize>) -> Vec<String> {
    let leaders = leaders(views);
    let mut problems = Vec::new();
    let mut ranges: Vec<&ReplicaView> =
        views.iter().filter(|v| leaders.get(&v.shard) == Some(&v.server) && v.is_leader).collect();
    ranges.sort_by(|a, b| a.start.cmp(&b.start));
    let show = |k: &[u8]| format!("{:?}", String::from_utf8_lossy(k));
    let mut expected_start: Option<&[u8]> = Some(b"");
    for r in &ranges {
        match expected_start {
            Some(s) if s == r.start.as_slice() => {}
            Some(s) if s < r.start.as_slice() => {
                problems.push(format!("no shard holds [{}, {})", show(s), show(&r.start)))
            }
            Some(_) => problems.push(format!("shard {} at {} overlaps the shard before it", r.shard, show(&r.start))),
            None => problems.push(format!("shard {} begins after a shard that reaches the end", r.shard)),
        }
        expected_start = (!r.end.is_empty()).then_some(r.end.as_slice());
    }
    if let Some(s) = expected_start {
        problems.push(format!("no shard holds the keys from {} on", show(s)));
    }
    for r in &ranges {
        let copies: Vec<&ReplicaView> = views.iter().filter(|v| v.shard == r.shard).collect();
        let servers: std::collections::BTreeSet<u64> = copies.iter().map(|v| v.server).collect();
        if servers.len() != copies.len() {
            problems.push(format!("shard {} has two replicas on one server", r.shard));
        }
        let voting = copies.iter().filter(|v| v.membership == "voter").count();
        if let Some(n) = voters.filter(|&n| n != voting) {
            problems.push(format!("shard {} has {voting} voters, not {n}", r.shard));
        }
        if copies.iter().any(|v| v.membership.ends_with("-voter")) {
            problems.push(format!("shard {} is still in a joint configuration", r.shard));
        }
        let learners: Vec<u64> = copies.iter().filter(|v| v.membership == "learner").map(|v| v.server).collect();
        if voters.is_some() && !learners.is_empty() {
            problems.push(format!("shard {} has learners on servers {learners:?} (a move cut short)", r.shard));
        }
        let behind: Vec<u64> = copies.iter().filter(|v| v.range_ver != r.range_ver).map(|v| v.server).collect();
        if !behind.is_empty() {
            problems
                .push(format!("shard {}: servers {behind:?} are not at its range version {}", r.shard, r.range_ver));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(server: u64, shard: u64, is_leader: bool, term: u64, leader_server: u64) -> ReplicaView {
        let membership = "voter".to_string();
        ReplicaView {
            server,
            shard,
            is_leader,
            term,
            leader_server,
            start: vec![],
            end: vec![],
            range_ver: 1,
            membership,
        }
    }

    /// Replicas of `shard` on `servers` (the first leads), holding `[start, end)`.
    fn shard(shard: u64, servers: &[u64], start: &str, end: &str) -> Vec<ReplicaView> {
        servers
            .iter()
            .map(|&s| ReplicaView {
                start: start.into(),
                end: end.into(),
                ..v(s, shard, s == servers[0], 1, servers[0])
            })
            .collect()
    }

    /// Goal: the placement check passes a map that tiles the key space
    /// with full shards, and names each way one can be wrong: a gap, an
    /// overlap, an open end, a missing replica, a learner left behind, a
    /// replica behind a split.
    #[test]
    fn placement_needs_a_tiling_of_full_shards() {
        let healthy = [shard(1, &[1, 2, 3], "", "g"), shard(2, &[2, 3, 1], "g", "")].concat();
        assert_eq!(placement_problems(&healthy, Some(3)), Vec::<String>::new());
        let gap = [shard(1, &[1, 2, 3], "", "g"), shard(2, &[2, 3, 1], "h", "")].concat();
        assert_eq!(placement_problems(&gap, Some(3)), vec!["no shard holds [\"g\", \"h\")"]);
        let overlap = [shard(1, &[1, 2, 3], "", "g"), shard(2, &[2, 3, 1], "f", "")].concat();
        assert!(placement_problems(&overlap, Some(3))[0].contains("overlaps"));
        let open = shard(1, &[1, 2, 3], "", "g");
        assert_eq!(placement_problems(&open, Some(3)), vec!["no shard holds the keys from \"g\" on"]);
        let short = [shard(1, &[1, 2], "", "g"), shard(2, &[2, 3, 1], "g", "")].concat();
        assert_eq!(placement_problems(&short, Some(3)), vec!["shard 1 has 2 voters, not 3"]);
        assert_eq!(placement_problems(&short, None), Vec::<String>::new());
        let mut learner = healthy.clone();
        learner.push(ReplicaView { membership: "learner".into(), ..healthy[4].clone() });
        learner[6].server = 4;
        assert_eq!(
            placement_problems(&learner, Some(3)),
            vec!["shard 2 has learners on servers [4] (a move cut short)"],
            "a learner left by a move"
        );
        assert_eq!(placement_problems(&learner, None), Vec::<String>::new(), "a cluster the run did not start");
        let mut joint = healthy.clone();
        joint[1].membership = "demoting-voter".into();
        assert!(placement_problems(&joint, Some(3)).iter().any(|p| p.contains("joint")), "{joint:?}");
        let mut behind = healthy.clone();
        behind[0].range_ver = 2;
        assert!(placement_problems(&behind, Some(3))[0].contains("servers [2, 3] are not at its range version 2"));
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
