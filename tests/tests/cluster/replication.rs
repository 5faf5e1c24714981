//! Log replication under real concurrency: concurrent writes all land,
//! and many shards on the same servers all make progress. The 6.824
//! lab 2B scenarios (no commit without a quorum, a cut-off leader's
//! writes discarded) run on stepped clusters, `tests/tests/stepped_raft.rs`,
//! where every step is checked.

use tests::{ClusterOptions, TestCluster};

use crate::common::{init, LEADER_TIMEOUT};

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
