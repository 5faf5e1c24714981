//! The placement driver on a running cluster (`placement::Driver` beside
//! every server, acting at the system shard's leader).

use std::collections::BTreeSet;
use std::time::Duration;

use meta::{ServerId, ShardId};
use spanserver::config::{PlacementConfig, SplitConfig};
use tests::{ClusterOptions, TestCluster};

use crate::common::{init, raw_get, LEADER_TIMEOUT};

/// How long re-replicating every shard of a dead server may take here.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);

fn key(i: u64) -> Vec<u8> {
    format!("{}{i:03}", ["a", "h", "p"][(i % 3) as usize]).into_bytes()
}

/// The shards' voters by the newest descriptors, if no shard is mid-move.
async fn settled_voters(client: &client::Client, shards: &[u64]) -> Option<Vec<BTreeSet<u64>>> {
    let mut all = Vec::new();
    for &shard in shards {
        let (d, _) = client.shard_descriptor(ShardId(shard)).await.ok()?;
        if d.replicas.iter().any(|r| r.role() != proto::ReplicaRole::Voter) {
            return None;
        }
        all.push(d.replicas.iter().map(|r| r.server_id).collect());
    }
    Some(all)
}

/// Every replica id in the shards' descriptors.
async fn replica_ids(client: &client::Client, shards: &[u64]) -> anyhow::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for shard in shards {
        let (d, _) = client.shard_descriptor(ShardId(*shard)).await?;
        ids.extend(d.replicas.iter().map(|r| r.replica_id));
    }
    Ok(ids)
}

/// Goal: a server that dies is re-replicated by the placement driver:
/// every shard it held gets a voter on another live server, through the
/// usual move (learner, joint configuration, removal), so each shard has
/// three voters on distinct live servers again; every acknowledged write
/// is still there and writes go on. The dead server is the system
/// shard's leader, where the driver was running: the driver beside the
/// next leader takes over. While it works, its server's status names the
/// moves it runs (what `spandb status` prints). The replicas it adds get
/// ids never used before, across the driver's failover: each above every
/// id the map held before the crash.
/// Method: 5 servers, 3 shards of 3 replicas, the driver on with a 2 s
/// dead threshold; 150 keys over the shards; crash the server leading
/// the system shard (shard 1), poll until no shard names it, and the
/// live servers' statuses for a move away from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_servers_replicas_are_placed_on_live_servers() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(5).replication(3).split_points(&["g", "n"]);
    options.placement =
        PlacementConfig { enabled: true, dead_after_s: 2, interval_ms: 200, operations_max: 4, ..Default::default() };
    let mut c = TestCluster::start(options).await?;
    let leaders = c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    for i in 0..150 {
        client.put(&key(i), b"before").await?;
    }
    let shards: Vec<u64> = c.shard_ids();
    let before = settled_voters(&client, &shards).await.expect("no move before the crash");
    let ids_before = replica_ids(&client, &shards).await?;
    let dead = leaders[&1];
    assert!(before.iter().any(|voters| voters.contains(&dead)));
    c.crash(dead).await;
    let live: Vec<String> =
        client.cluster_info().await?.servers.into_iter().filter(|s| s.server_id != dead).map(|s| s.addr).collect();
    let mut moves_shown = BTreeSet::new();

    let deadline = tokio::time::Instant::now() + HEAL_TIMEOUT;
    let after = loop {
        for addr in &live {
            if let Ok(status) = client.server_status(addr).await {
                moves_shown.extend(status.placement_operations.into_iter().filter(|op| op.starts_with("move ")));
            }
        }
        match settled_voters(&client, &shards).await {
            Some(v) if v.iter().all(|voters| voters.len() == 3 && !voters.contains(&dead)) => break v,
            _ if tokio::time::Instant::now() > deadline => {
                anyhow::bail!("server {dead}'s replicas were not placed elsewhere within {HEAL_TIMEOUT:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    for (shard, (was, is)) in shards.iter().zip(before.iter().zip(&after)) {
        let kept: BTreeSet<u64> = was.iter().copied().filter(|s| *s != dead).collect();
        assert!(kept.is_subset(is), "shard {shard}: the live voters stay ({was:?} -> {is:?})");
    }
    let ids_after = replica_ids(&client, &shards).await?;
    let max_before = ids_before.iter().copied().max().unwrap_or(0);
    let new_ids: Vec<u64> = ids_after.iter().copied().filter(|id| !ids_before.contains(id)).collect();
    assert!(!new_ids.is_empty() && new_ids.iter().all(|id| *id > max_before), "{ids_before:?} -> {ids_after:?}");
    let distinct: BTreeSet<u64> = ids_after.iter().copied().collect();
    assert_eq!(distinct.len(), ids_after.len(), "a replica id is used twice: {ids_after:?}");
    let away = format!("replica from s{dead} to ");
    assert!(
        moves_shown.iter().any(|op| op.contains(&away) && op.contains("its server is dead")),
        "the moves were shown: {moves_shown:?}"
    );
    for i in 0..150 {
        assert_eq!(client.get(&key(i)).await?.as_deref(), Some(&b"before"[..]), "{:?}", key(i));
    }
    client.put(b"after", b"three live voters").await?;
    c.shutdown().await
}

/// Goal: the placement driver spreads leaderships: a server that comes
/// back after a crash leads nothing (its shards elected leaders
/// elsewhere), and the driver hands it leaderships until no server leads
/// two more shards than another.
/// Method: 3 servers, 3 shards, the driver on; crash the server leading
/// the most shards, restart it, poll until every server leads one shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaderships_spread_back_to_a_restarted_server() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(3).split_points(&["g", "n"]);
    options.placement =
        PlacementConfig { enabled: true, dead_after_s: 60, interval_ms: 200, operations_max: 4, ..Default::default() };
    let mut c = TestCluster::start(options).await?;
    let leaders = c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let busiest = (1..=3).max_by_key(|s| leaders.values().filter(|l| *l == s).count()).expect("three servers");
    c.crash(busiest).await;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    c.restart(busiest).await?;
    let shards = c.shard_ids();
    let deadline = tokio::time::Instant::now() + HEAL_TIMEOUT;
    loop {
        let leading: Vec<usize> =
            (1..=3).map(|s| shards.iter().filter(|shard| c.leader(**shard) == Some(s)).count()).collect();
        if leading == [1, 1, 1] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "leaderships per server stayed {leading:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = c.client().await?;
    client.put(b"balanced", b"yes").await?;
    c.shutdown().await
}

/// Goal: with a preferred leader (Spanner's default leader), the driver
/// hands it every shard, and the cluster keeps serving when it dies.
/// Method: 3 servers, 3 shards, server 3 preferred; poll until it leads
/// all three; crash it; a write and a read through the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_leadership_goes_to_the_preferred_leader() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(3).split_points(&["g", "n"]);
    options.placement = PlacementConfig {
        enabled: true,
        dead_after_s: 60,
        interval_ms: 200,
        operations_max: 4,
        preferred_leader: Some(3),
        ..Default::default()
    };
    let mut c = TestCluster::start(options).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let shards = c.shard_ids();
    let deadline = tokio::time::Instant::now() + HEAL_TIMEOUT;
    loop {
        let leaders: Vec<Option<u64>> = shards.iter().map(|s| c.leader(*s)).collect();
        if leaders.iter().all(|l| *l == Some(3)) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "leaders stayed {leaders:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.crash(3).await;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client_of(&[1, 2]).await?;
    client.put(b"after", b"3 died").await?;
    assert_eq!(client.get(b"after").await?.as_deref(), Some(&b"3 died"[..]));
    c.shutdown().await
}

/// Goal: a decommissioned server is drained: the driver moves every
/// replica it holds to the other servers (its leadership first), every
/// write is kept and the shard serves throughout. Decommissions that
/// would leave too few servers for the replicas, or name an unknown
/// server, are refused and change nothing; recommissioning undoes it.
/// Method: 4 servers, one shard on 1-3, the driver on; 100 keys;
/// decommission server 1; poll until the shard does not name it; ask to
/// decommission server 2 too (2 servers would be left for 3 replicas)
/// and server 9; recommission server 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decommissioned_server_is_drained_and_bad_decommissions_are_refused() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(4).replication(3);
    options.placement =
        PlacementConfig { enabled: true, dead_after_s: 60, interval_ms: 200, operations_max: 4, ..Default::default() };
    let c = TestCluster::start(options).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    for i in 0..100 {
        client.put(&key(i), b"before").await?;
    }
    assert_eq!(client.set_draining(ServerId(1), true).await?, vec![ServerId(1)]);
    let deadline = tokio::time::Instant::now() + HEAL_TIMEOUT;
    let after = loop {
        match settled_voters(&client, &[1]).await {
            Some(v) if !v[0].contains(&1) && v[0].len() == 3 => break v,
            _ => {
                assert!(tokio::time::Instant::now() < deadline, "server 1 was not drained");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(after[0], BTreeSet::from([2, 3, 4]));
    for i in 0..100 {
        assert_eq!(client.get(&key(i)).await?.as_deref(), Some(&b"before"[..]), "{:?}", key(i));
    }
    client.put(b"after", b"drained").await?;

    for (server, why) in [(2, "would leave 2 servers"), (9, "no server s9")] {
        let refused = client.set_draining(ServerId(server), true).await;
        assert!(matches!(&refused, Err(client::Error::InvalidArgument(m)) if m.contains(why)), "{refused:?}");
    }
    assert_eq!(client.draining_servers().await?, vec![ServerId(1)]);
    assert_eq!(client.set_draining(ServerId(1), false).await?, vec![]);
    c.shutdown().await
}

/// Goal: a learner that a cut-short move left (here an operator's move
/// stopped after its first step) is removed by the driver once the shard
/// has stayed at one epoch for `placement.stray_learner_after_s`, and
/// its data leaves that server; the shard keeps every write. A move
/// planned at a membership version the shard has left is refused and
/// changes nothing (two drivers that both believe they lead cannot both
/// add a learner).
/// Method: 4 servers, one shard on 1-3, the driver on with a 2 s wait;
/// 20 keys; a learner added on server 4 by hand; poll until the shard
/// has voters 1-3 and nothing else, and server 4 no replica. Then a move
/// planned at the version before the learner came.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_left_by_a_cut_short_move_is_removed_and_a_stale_plan_is_refused() -> anyhow::Result<()> {
    use proto::replica_change::Kind;
    init();
    let mut options = ClusterOptions::new(4).replication(3);
    options.placement = PlacementConfig {
        enabled: true,
        dead_after_s: 60,
        interval_ms: 200,
        operations_max: 4,
        stray_learner_after_s: 2,
        preferred_leader: None,
    };
    let c = TestCluster::start(options).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    for i in 0..20 {
        client.put(&key(i), b"kept").await?;
    }
    let (before, _) = client.shard_descriptor(ShardId(1)).await?;
    let learner = proto::ReplicaChange { kind: Kind::AddLearner as i32, server_id: 4 };
    let with_learner = client.change_replicas(ShardId(1), vec![learner]).await?;
    assert!(with_learner.replicas.iter().any(|r| r.server_id == 4 && r.role() == proto::ReplicaRole::Learner));

    let deadline = tokio::time::Instant::now() + HEAL_TIMEOUT;
    loop {
        let settled = settled_voters(&client, &[1]).await;
        if settled == Some(vec![BTreeSet::from([1, 2, 3])]) && c.replica(4, 1).is_none() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the learner stayed: {settled:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..20 {
        assert_eq!(client.get(&key(i)).await?.as_deref(), Some(&b"kept"[..]), "{:?}", key(i));
    }

    let (now, _) = client.shard_descriptor(ShardId(1)).await?;
    let stale = client.move_replica_planned(ShardId(1), ServerId(1), ServerId(4), Some(before.conf_ver)).await;
    assert!(matches!(&stale, Err(client::Error::InvalidArgument(m)) if m.contains("as planned")), "{stale:?}");
    // What arbitrates two drivers: the shard's leader refuses a change at
    // a version it has left.
    let learner = proto::ReplicaChange { kind: Kind::AddLearner as i32, server_id: 4 };
    let stale = client.change_replicas_at(ShardId(1), before.conf_ver, vec![learner]).await;
    assert!(stale.is_err(), "a change at membership version {} went through: {stale:?}", before.conf_ver);
    assert_eq!(client.shard_descriptor(ShardId(1)).await?.0, now, "a refused move changed the shard");
    c.shutdown().await
}

/// Goal: a decommissioned server that is shut down once drained leaves
/// the quorum of clocks: the servers left keep trusting their clocks,
/// and serving, with one more of them down. (Counting it, 2 of 4 clocks
/// would answer: no quorum, and every server would refuse timestamps.)
/// Method: 4 servers, one shard on 1-3, the driver on; decommission 3;
/// poll until no shard has a replica on it; crash it, then crash
/// another server; the two left trust their clocks throughout, until the
/// crashed servers' last clock samples are too old to count and after,
/// and a write and a read go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decommissioned_server_shut_down_leaves_the_quorum_of_clocks() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(4).replication(3);
    options.placement =
        PlacementConfig { enabled: true, dead_after_s: 60, interval_ms: 200, operations_max: 4, ..Default::default() };
    let mut c = TestCluster::start(options).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    c.wait_for_trusted_clocks(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    client.put(b"before", b"v").await?;
    client.set_draining(ServerId(3), true).await?;
    let deadline = tokio::time::Instant::now() + HEAL_TIMEOUT;
    loop {
        match settled_voters(&client, &[1]).await {
            Some(v) if !v[0].contains(&3) && v[0].len() == 3 => break,
            _ => {
                assert!(tokio::time::Instant::now() < deadline, "server 3 was not drained");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    c.crash(3).await;
    let other = [1, 2, 4].into_iter().find(|s| c.leader(1) != Some(*s)).expect("a follower of shard 1");
    c.crash(other).await;
    let left: Vec<u64> = [1, 2, 4].into_iter().filter(|s| *s != other).collect();
    // The crashed servers' last samples count until they are too old:
    // the verdict that matters comes after that, and must stay healthy.
    let aged = tokio::time::Instant::now() + truetime::health::SAMPLE_AGE_MAX + Duration::from_secs(2);
    while tokio::time::Instant::now() < aged {
        assert!(left.iter().all(|s| c.clock_trusted(*s)), "a server left distrusts its clock");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = c.client_of(&left).await?;
    client.put(b"after", b"two of three").await?;
    assert_eq!(client.get(b"before").await?.as_deref(), Some(&b"v"[..]));
    c.shutdown().await
}

/// Goal: a shard that has moved is served by its new server as soon as
/// its own move ends, while the driver is still moving other shards: a
/// migration goes shard by shard, not all or nothing.
/// Method: 4 servers, 4 shards (split at "g", "n", "t"), 10 keys each;
/// the driver on, one operation at a time; decommission the server
/// holding the most shards; poll until one of its shards has left it
/// while another is still there; read that shard's keys at the writes'
/// timestamp straight from its new server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_moved_shard_is_served_before_the_whole_migration_ends() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(4).replication(3).split_points(&["g", "n", "t"]);
    options.placement =
        PlacementConfig { enabled: true, dead_after_s: 60, interval_ms: 200, operations_max: 1, ..Default::default() };
    let c = TestCluster::start(options).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let shards = c.shard_ids();
    let keys = |prefix: char| (0..10).map(move |i| format!("{prefix}{i}"));
    let mut written_at = 0;
    for prefix in ['a', 'h', 'o', 'u'] {
        for key in keys(prefix) {
            written_at = written_at.max(client.put(key.as_bytes(), b"v").await?.as_nanos());
        }
    }
    let before = settled_voters(&client, &shards).await.expect("nothing moving yet");
    let busiest = (1..=4).max_by_key(|s| before.iter().filter(|v| v.contains(s)).count()).expect("four servers");
    assert!(before.iter().filter(|v| v.contains(&busiest)).count() >= 2, "{before:?}");
    client.set_draining(ServerId(busiest), true).await?;
    let deadline = tokio::time::Instant::now() + HEAL_TIMEOUT;
    let (moved, to) = loop {
        let mut left = None;
        let mut still_there = false;
        for (i, shard) in shards.iter().enumerate() {
            let (d, _) = client.shard_descriptor(ShardId(*shard)).await?;
            let on: BTreeSet<u64> = d.replicas.iter().map(|r| r.server_id).collect();
            let settled = d.replicas.iter().all(|r| r.role() == proto::ReplicaRole::Voter);
            if before[i].contains(&busiest) && !on.contains(&busiest) && settled {
                let new = on.difference(&before[i]).next().copied();
                left = left.or(new.map(|n| (i, n)));
            }
            still_there |= on.contains(&busiest);
        }
        match left {
            Some(found) if still_there => break found,
            Some(_) => anyhow::bail!("every shard left before one was seen moved alone (operations_max is 1)"),
            None if tokio::time::Instant::now() > deadline => anyhow::bail!("no shard left server {busiest}"),
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let mut kv = c.kv_client(to).await?;
    let prefix = ['a', 'h', 'o', 'u'][moved];
    for key in keys(prefix) {
        // (A snapshot read waits there until the replica's safe time
        // passes it; one that gives up is asked again.)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let read = loop {
            match raw_get(&mut kv, shards[moved], &key, written_at).await {
                Err(e) if tokio::time::Instant::now() < deadline && e.code() == tonic::Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                other => break other,
            }
        };
        assert_eq!(read?.as_deref(), Some("v"), "{key} from server {to}, where shard {} moved", shards[moved]);
    }
    c.shutdown().await
}

/// Goal: under constant load, the placement driver moves hot shards'
/// leaderships apart, and the transfers it makes lose nothing: every
/// acknowledged transaction is there, each whole. (A driver that moved
/// leaderships only while a shard was idle never moved these.)
/// Method: 3 servers, 4 shards (split at "b", "c", "d"), loads measured
/// every 500 ms; the leaderships arranged 2/1/1 with both shards the
/// load goes to ("b…" and "c…") on server 1, which counts alone call
/// balanced; the driver started; then 4 clients increment a key in each of the two shards in
/// one transaction, without pause, until the two are led by different
/// servers (within 60 s), then 2 s more. Each client's two keys hold its
/// number of acknowledged commits (one more if its last commit was
/// ambiguous).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_shards_leaderships_move_apart_under_constant_load() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    init();
    let mut options = ClusterOptions::new(3).split_points(&["b", "c", "d"]);
    options.split = SplitConfig { size_bytes: 0, check_interval_ms: 500, load_qps: 0 };
    let mut c = TestCluster::start(options).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let shard_of = |key: &[u8]| {
        let routes = c.shard_ids().into_iter().map(|s| (s, c.server(1).registry.get(ShardId(s))));
        routes
            .filter_map(|(s, r)| r.map(|r| (s, r.descriptor())))
            .find(|(_, d)| d.contains(key))
            .map(|(s, _)| s)
            .expect("a shard holds every key")
    };
    let (hot_b, hot_c) = (shard_of(b"b"), shard_of(b"c"));
    let (cold_a, cold_d) = (shard_of(b"a"), shard_of(b"d"));
    for (shard, server) in [(hot_b, 1), (hot_c, 1), (cold_a, 2), (cold_d, 3)] {
        c.transfer_leader(shard, server, LEADER_TIMEOUT).await?;
    }
    assert_eq!([c.leader(hot_b), c.leader(hot_c)], [Some(1), Some(1)], "the layout did not hold");
    c.start_placement(PlacementConfig {
        enabled: true,
        dead_after_s: 60,
        interval_ms: 200,
        operations_max: 4,
        ..Default::default()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let keys = [format!("b{w}").into_bytes(), format!("c{w}").into_bytes()];
                let (mut acked, mut ambiguous) = (0u64, 0u64);
                while !stop.load(Ordering::SeqCst) {
                    let keys = keys.clone();
                    let result = client
                        .run(|txn| {
                            let keys = keys.clone();
                            Box::pin(async move {
                                for key in &keys {
                                    let n: u64 = match txn.get(key).await? {
                                        Some(v) => String::from_utf8_lossy(&v).parse().unwrap_or(0),
                                        None => 0,
                                    };
                                    txn.put(key, (n + 1).to_string().as_bytes());
                                }
                                Ok(())
                            })
                        })
                        .await;
                    match result {
                        Ok(_) => acked += 1,
                        Err(client::Error::Ambiguous(_)) => {
                            ambiguous += 1;
                            break;
                        }
                        Err(e) => return Err(anyhow::anyhow!("client {w}: {e}")),
                    }
                }
                Ok((w, acked, ambiguous))
            })
        })
        .collect();
    let apart = tests::wait::wait_until(
        HEAL_TIMEOUT,
        || matches!((c.leader(hot_b), c.leader(hot_c)), (Some(b), Some(hc)) if b != hc),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // more load after the move
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.push(w.await??);
    }
    apart.map_err(|e| anyhow::anyhow!("the hot shards stayed on one leader: {e}"))?;
    for (w, acked, ambiguous) in outcomes {
        anyhow::ensure!(acked > 0, "client {w} committed nothing");
        for key in [format!("b{w}"), format!("c{w}")] {
            let value: u64 = client
                .get(key.as_bytes())
                .await?
                .map(|v| String::from_utf8_lossy(&v).parse().unwrap_or(u64::MAX))
                .unwrap_or(0);
            anyhow::ensure!(
                (acked..=acked + ambiguous).contains(&value),
                "{key} is {value}, but client {w} had {acked} commits acknowledged and {ambiguous} ambiguous"
            );
        }
    }
    c.shutdown().await
}

/// Goal: a shard split by load does not keep both halves on one leader:
/// under the same constant load, the placement driver hands one half's
/// leadership to another server (the halves are born led by the same
/// server, and a driver that waited for an idle shard never moved them).
/// Every acknowledged write is there.
/// Method: 3 servers, one shard; split by load above 50 requests a
/// second, loads measured every 2 s (enough requests for a sample of
/// their keys); the driver on; 4 clients read and write random keys of
/// load000..load199 in transactions, without pause, until two shards holding those
/// keys are led by different servers (within 60 s); then read every key
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_load_split_spreads_its_halves_leaderships_under_constant_load() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    init();
    let mut options = ClusterOptions::new(3);
    options.split = SplitConfig { size_bytes: 0, check_interval_ms: 2000, load_qps: 50 };
    options.placement =
        PlacementConfig { enabled: true, dead_after_s: 60, interval_ms: 200, operations_max: 4, ..Default::default() };
    let c = TestCluster::start(options).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut written = std::collections::BTreeSet::new();
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("load{:03}", rand::random_range(0..200));
                    client
                        .run(|txn| {
                            let key = key.clone();
                            Box::pin(async move {
                                txn.get(key.as_bytes()).await?;
                                txn.put(key.as_bytes(), key.as_bytes());
                                Ok(())
                            })
                        })
                        .await?;
                    written.insert(key);
                }
                Ok::<_, client::Error>(written)
            })
        })
        .collect();
    let load_range = |d: &meta::ShardDescriptor| d.contains(b"load100") || d.start_key.starts_with(b"load");
    let spread =
        tests::wait::wait_until(HEAL_TIMEOUT, || {
            // The servers whose replicas lead a shard of the load's keys.
            let leaders: BTreeSet<u64> =
                c.server_ids()
                    .into_iter()
                    .filter(|id| {
                        c.server(*id).registry.all().iter().any(|r| {
                            r.progress().role == spanserver::registry::Role::Leader && load_range(&r.descriptor())
                        })
                    })
                    .collect();
            leaders.len() >= 2
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    let mut written = BTreeSet::new();
    for w in workers {
        written.extend(w.await??);
    }
    spread
        .map_err(|e| anyhow::anyhow!("the load's shards stayed on one leader ({} shards): {e}", c.shard_ids().len()))?;
    for key in &written {
        assert_eq!(client.get(key.as_bytes()).await?.as_deref(), Some(key.as_bytes()), "{key}");
    }
    c.shutdown().await
}

/// Goal: what a server reports for the placement driver and `spandb
/// status` (`Admin.ServerStatus`): its disk's size and free space; at a
/// shard's leader, the reads and writes a second it served, its shard's
/// keys, and the replica of a server that went silent, as down.
/// Method: 3 servers, one shard, the split queue measuring every 500 ms;
/// 40 writes and 40 reads; poll the leader's report until it counts both;
/// write 10 new keys twice each and poll until the key count grew by
/// exactly 10; crash a follower's server; poll until the leader reports
/// that replica down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_reports_its_load_and_keys_and_a_silent_replica_and_a_server_its_disk() -> anyhow::Result<()> {
    use tests::wait::wait_until;
    init();
    let mut options = ClusterOptions::new(3);
    options.split = SplitConfig { size_bytes: 0, check_interval_ms: 500, load_qps: 0 };
    let mut c = TestCluster::start(options).await?;
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let report = |status: &proto::ServerStatusResponse| status.replicas.iter().find(|r| r.shard_id == 1).cloned();
    let deadline = tokio::time::Instant::now() + HEAL_TIMEOUT;
    loop {
        for i in 0..40 {
            client.put(&key(i), b"v").await?;
            client.get(&key(i)).await?;
        }
        let status = client.server_status(&c.addr(leader)).await?;
        assert!(status.capacity_bytes > 0 && status.available_bytes <= status.capacity_bytes, "{status:?}");
        let r = report(&status).expect("the leader's replica");
        if r.reads_per_s > 0.0 && r.writes_per_s > 0.0 {
            // (A request on a round's edge may count in two rounds: 2/s.)
            assert!((r.reads_per_s + r.writes_per_s - r.requests_per_s).abs() <= 4.0, "{r:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no load reported: {r:?}");
    }
    // The leader counts its shard's keys: once each, however often
    // written, and the new ones once written. A round that saw no writes
    // comes after the one that counted all of them (a count taken while
    // the loop above still wrote misses some).
    let mut counted = None;
    wait_until(HEAL_TIMEOUT, || {
        counted = c
            .replica(leader, 1)
            .filter(|r| r.load_rates().1 == 0.0)
            .and_then(|r| r.keys(r.descriptor().epoch.range_ver));
        counted.is_some()
    })
    .await?;
    let before = counted.expect("counted");
    assert!(before >= 40, "40 keys written, {before} counted");
    for i in 100..110 {
        client.put(&key(i), b"v").await?;
        client.put(&key(i), b"w").await?;
    }
    let mut keys = None;
    let deadline = tokio::time::Instant::now() + HEAL_TIMEOUT;
    while keys != Some(before + 10) {
        assert!(tokio::time::Instant::now() < deadline, "{before} keys, then 10 more: {keys:?} reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
        keys = report(&client.server_status(&c.addr(leader)).await?).expect("the leader's replica").keys;
    }
    let follower = (1..=3).find(|s| *s != leader).expect("a follower");
    let silent = c.replica(follower, 1).expect("the follower's replica").replica_id.0;
    c.crash(follower).await;
    let addr = c.addr(leader);
    let mut down = Vec::new();
    wait_until(HEAL_TIMEOUT, || {
        down = c.progress(leader, 1).map(|p| p.down_replicas.iter().map(|r| r.0).collect()).unwrap_or_default();
        down == vec![silent]
    })
    .await?;
    let status = client.server_status(&addr).await?;
    assert_eq!(report(&status).expect("the leader's replica").down_replica_ids, vec![silent]);
    c.shutdown().await
}
