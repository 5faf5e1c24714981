//! Log replication (6.824 lab 2B): commit needs a quorum, a cut-off
//! leader's uncommitted entries are discarded, concurrent writes all land,
//! and many shards on the same servers all make progress.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::ErrorKind;
use spanserver::registry::Role;
use tests::wait::wait_until;
use tests::{ClusterOptions, TestCluster};

use crate::common::{init, kind, raw_get, raw_put, LEADER_TIMEOUT};

/// Goal (6.824 TestFailNoAgree2B): with 3 of 5 replicas cut off, a write
/// does not commit; after healing the cluster agrees again, and the write's
/// outcome is definite and matches what reads see.
/// Method: send a write straight to the leader while only one follower can
/// hear it, check nothing is acknowledged or committed, heal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_commit_without_quorum() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(5).replication(5)).await?;
    let all = [1, 2, 3, 4, 5];
    let leader = c.wait_for_leader_among(1, &all, LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    client.put(b"before", b"1").await?;
    let others: Vec<u64> = all.into_iter().filter(|&s| s != leader).collect();
    let buddy = others[0];
    c.net.partition(&[&[leader, buddy], &[others[1]], &[others[2]], &[others[3]]]);
    let committed_before = c.progress(leader, 1).expect("up").committed_index;

    let mut kv = c.kv_client(leader).await?;
    let write = tokio::spawn(async move { raw_put(&mut kv, 1, "nq", "1").await });
    // Stepping down takes an election timeout (check-quorum); meanwhile
    // and after, nothing may commit.
    wait_until(LEADER_TIMEOUT, || c.progress(leader, 1).is_some_and(|p| p.role != Role::Leader)).await?;
    assert!(!write.is_finished(), "a write was answered without a quorum");
    assert_eq!(c.progress(leader, 1).expect("up").committed_index, committed_before, "committed without a quorum");

    c.net.heal();
    let outcome = tokio::time::timeout(Duration::from_secs(30), write).await??;
    c.wait_for_leader_among(1, &all, LEADER_TIMEOUT).await?;
    let value = client.get(b"nq").await?;
    match outcome {
        Ok(_) => assert_eq!(value, Some(b"1".to_vec()), "an acknowledged write is missing"),
        Err(status) => {
            assert_eq!(kind(&status), ErrorKind::Unavailable, "not a definite failure: {status:?}");
            assert_eq!(value, None, "a write reported as failed was applied");
        }
    }
    client.put(b"after", b"1").await?;
    c.shutdown().await
}

/// Goal (6.824 TestRejoin2B, TestBackup2B): a leader cut off from the
/// majority accepts writes it can never commit; the majority moves on; after
/// healing those writes are reported failed (never acknowledged), every
/// majority write survives, and all replicas hold the same data.
/// Method: raw writes to the isolated leader, client writes to the
/// majority, heal, compare every replica's snapshot at one timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_uncommitted_entries_are_discarded() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    let old = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|&s| s != old).collect();
    c.net.partition(&[&[old], &rest]);
    let mut stale = Vec::new();
    for i in 0..5 {
        let mut kv = c.kv_client(old).await?;
        stale.push(tokio::spawn(async move { raw_put(&mut kv, 1, &format!("old{i}"), "x").await }));
    }
    c.wait_for_leader_among(1, &rest, LEADER_TIMEOUT).await?;
    wait_until(LEADER_TIMEOUT, || c.progress(old, 1).is_some_and(|p| p.role != Role::Leader)).await?;
    let client = c.client_of(&rest).await?;
    let mut last_ts = client::Timestamp::ZERO;
    for i in 0..20 {
        last_ts = last_ts.max(client.put(format!("new{i}").as_bytes(), b"y").await?);
    }

    c.net.heal();
    for write in stale {
        let outcome = tokio::time::timeout(Duration::from_secs(30), write).await??;
        let status = outcome.expect_err("a write that only the cut-off leader saw was acknowledged");
        assert!(
            matches!(kind(&status), ErrorKind::Unavailable | ErrorKind::NotLeader),
            "not a definite failure: {status:?}"
        );
    }
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let committed = c.progress(leader, 1).expect("up").committed_index;
    c.wait_for_applied(1, committed, LEADER_TIMEOUT).await?;
    let mut views = BTreeMap::new();
    for id in [1, 2, 3] {
        let mut kv = c.kv_client(id).await?;
        let mut view = Vec::new();
        for key in (0..5).map(|i| format!("old{i}")).chain((0..20).map(|i| format!("new{i}"))) {
            view.push((key.clone(), raw_get(&mut kv, 1, &key, last_ts.as_nanos()).await?));
        }
        views.insert(id, view);
    }
    for (id, view) in &views {
        for (key, value) in view {
            let want = key.starts_with("new").then(|| "y".to_string());
            assert_eq!(value, &want, "server {id} has {key} = {value:?}");
        }
    }
    c.shutdown().await
}

/// Goal (6.824 TestConcurrentStarts2B): many writes at once, over several
/// shards, all commit and are all readable; within a shard every write has
/// its own timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_all_commit() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3).split_points(&["g", "n", "t"])).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let keys: Vec<String> = (0..100).map(|i| format!("{}{i:03}", (b'a' + (i % 26) as u8) as char)).collect();
    let writes: Vec<_> = keys
        .iter()
        .map(|k| {
            let (client, k) = (client.clone(), k.clone());
            tokio::spawn(async move { client.put(k.as_bytes(), k.as_bytes()).await })
        })
        .collect();
    let mut timestamps = Vec::new();
    for w in writes {
        timestamps.push(w.await??);
    }
    for k in &keys {
        assert_eq!(client.get(k.as_bytes()).await?, Some(k.as_bytes().to_vec()), "{k} lost");
    }
    let all = client.scan(b"", b"", 1000, client::ReadMode::Latest).await?;
    assert_eq!(all.len(), keys.len());
    // Versions in one shard never share a timestamp.
    let mut seen = std::collections::BTreeSet::new();
    for kv in &all {
        let shard = match kv.key[0] {
            b'a'..=b'f' => 1,
            b'g'..=b'm' => 2,
            b'n'..=b's' => 3,
            _ => 4,
        };
        assert!(seen.insert((shard, kv.version_ts)), "two writes in shard {shard} at {}", kv.version_ts);
    }
    c.shutdown().await
}

/// Goal: sixteen shards on the same three servers all elect leaders and all
/// accept writes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_shards_on_the_same_servers_all_make_progress() -> anyhow::Result<()> {
    init();
    let splits: Vec<String> = (b'b'..=b'p').map(|c| (c as char).to_string()).collect();
    let split_refs: Vec<&str> = splits.iter().map(String::as_str).collect();
    let c = TestCluster::start(ClusterOptions::new(3).split_points(&split_refs)).await?;
    assert_eq!(c.shard_ids().len(), 16);
    let leaders = c.wait_for_leaders(LEADER_TIMEOUT).await?;
    assert_eq!(leaders.len(), 16);
    let client = c.client().await?;
    let keys: Vec<String> = (b'a'..=b'p').map(|c| format!("{}-key", c as char)).collect();
    let writes: Vec<_> = keys
        .iter()
        .map(|k| {
            let (client, k) = (client.clone(), k.clone());
            tokio::spawn(async move { client.put(k.as_bytes(), b"v").await })
        })
        .collect();
    for w in writes {
        w.await??;
    }
    for k in &keys {
        assert_eq!(client.get(k.as_bytes()).await?, Some(b"v".to_vec()));
    }
    c.shutdown().await
}
