//! Log compaction and snapshots (6.824 lab 2D).

use spanserver::config::RaftConfig;
use tests::wait::wait_until;
use tests::{ClusterOptions, TestCluster};

use crate::common::{init, raw_get, LEADER_TIMEOUT};

/// Goal (6.824 TestSnapshotInstall2D): a follower that misses more than the
/// leader's retained log catches up through a snapshot, then serves every
/// acknowledged write, and still does after a restart.
/// Method: tiny compaction thresholds; cut one follower off, write until
/// the leader's log starts after the follower's, heal, read from the
/// follower at the last write's timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_installs_a_snapshot() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(3);
    options.raft = RaftConfig { log_compact_entries: 40, log_retain_entries: 5, ..options.raft };
    let mut c = TestCluster::start(options).await?;
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let lagging = [1, 2, 3].into_iter().find(|&s| s != leader).expect("a follower");
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|&s| s != lagging).collect();
    c.net.partition(&[&rest, &[lagging]]);
    let client = c.client_of(&rest).await?;
    let mut last_ts;
    let mut i = 0;
    // Write until the leader has compacted past everything the lagging
    // follower has.
    loop {
        last_ts = client.put(format!("k{i:04}").as_bytes(), format!("v{i}").as_bytes()).await?;
        i += 1;
        let leader_first = c.progress(leader, 1).expect("up").first_index;
        let lagging_last = c.progress(lagging, 1).expect("up").last_index;
        if i >= 100 && leader_first > lagging_last + 1 {
            break;
        }
        assert!(i < 5_000, "the leader never compacted its log");
    }
    assert_eq!(c.replica(lagging, 1).expect("up").snapshots_installed(), 0);

    c.net.heal();
    let committed = c.progress(leader, 1).expect("up").committed_index;
    c.wait_for_applied(1, committed, LEADER_TIMEOUT).await?;
    assert!(c.replica(lagging, 1).expect("up").snapshots_installed() >= 1, "caught up without a snapshot");
    check_all(&c, lagging, i, last_ts).await?;

    c.crash(lagging).await;
    c.restart(lagging).await?;
    wait_until(LEADER_TIMEOUT, || c.progress(lagging, 1).is_some_and(|p| p.applied_index >= committed)).await?;
    // A restarted server serves no timestamped read until it trusts its
    // clock again (`spanserver::clock`); it answers Unavailable until then.
    wait_until(LEADER_TIMEOUT, || c.clock_trusted(lagging)).await?;
    check_all(&c, lagging, i, last_ts).await?;
    c.shutdown().await
}

/// Reads every written key from server `id`, at `ts`.
async fn check_all(c: &TestCluster, id: u64, count: usize, ts: client::Timestamp) -> anyhow::Result<()> {
    let mut kv = c.kv_client(id).await?;
    for j in 0..count {
        let got = raw_get(&mut kv, 1, &format!("k{j:04}"), ts.as_nanos()).await?;
        assert_eq!(got, Some(format!("v{j}")), "server {id} is missing k{j:04}");
    }
    Ok(())
}

/// Goal: a shard too big to snapshot costs only the lagging follower's
/// catching up: its leader, and the next one, stay up and serve (raft-rs
/// makes any `snapshot()` error but "temporarily unavailable" fatal, which
/// used to take every leader of a big shard down in turn).
/// Method: `raft.snapshot_bytes_max` 4 KiB and tiny compaction thresholds;
/// cut a follower off, write about 20 KiB, heal; writes go on while the
/// leader keeps failing to build a snapshot; move the leadership to the
/// other up-to-date server, write again; the lagging follower never
/// installed a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_too_big_to_snapshot_does_not_stop_its_leaders() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(3);
    options.raft =
        RaftConfig { log_compact_entries: 40, log_retain_entries: 5, snapshot_bytes_max: 4096, ..options.raft };
    let c = TestCluster::start(options).await?;
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let lagging = [1, 2, 3].into_iter().find(|&s| s != leader).expect("a follower");
    let other = [1, 2, 3].into_iter().find(|&s| s != leader && s != lagging).expect("the third server");
    let rest = [leader, other];
    c.net.partition(&[&rest, &[lagging]]);
    let client = c.client_of(&rest).await?;
    let value = vec![b'v'; 200];
    for i in 0..100 {
        client.put(format!("k{i:04}").as_bytes(), &value).await?;
    }
    wait_until(LEADER_TIMEOUT, || {
        c.progress(leader, 1).expect("up").first_index > c.progress(lagging, 1).expect("up").last_index + 1
    })
    .await?;
    c.net.heal();
    for i in 100..150 {
        client.put(format!("k{i:04}").as_bytes(), &value).await?;
    }
    c.transfer_leader(1, other, LEADER_TIMEOUT).await?;
    for i in 150..200 {
        client.put(format!("k{i:04}").as_bytes(), &value).await?;
    }
    assert!(c.is_up(leader) && c.is_up(other));
    let lagging_replica = c.replica(lagging, 1).expect("up");
    assert_eq!(lagging_replica.snapshots_installed(), 0, "a snapshot over the limit was installed");
    let committed = c.progress(other, 1).expect("up").committed_index;
    assert!(c.progress(lagging, 1).expect("up").applied_index < committed, "the follower caught up somehow");
    c.shutdown().await
}

/// Goal: a follower that skips a split through a snapshot of the
/// narrowed parent keeps none of the moved half's data when the child's
/// replica never comes to it (it moved away meanwhile): its server stores
/// nothing outside its replicas, and every key still reads back.
/// Method: 4 servers, one shard on 1-3, tiny compaction thresholds (a
/// leader keeps at most 40 entries for a follower, even after a split); keys
/// on both sides of "m"; cut a follower F off; split at "m"; move the
/// child's replica from F to server 4; write to the parent until its log
/// starts after F's; heal; once F's replica is narrowed to `["", "m")`,
/// ask F's server for stray keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_skips_a_split_by_snapshot_keeps_no_data_of_the_moved_half() -> anyhow::Result<()> {
    use meta::{ServerId, ShardId};
    init();
    let mut options = ClusterOptions::new(4).replication(3);
    options.raft =
        RaftConfig { log_compact_entries: 40, log_retain_entries: 5, log_kept_for_followers_max: 40, ..options.raft };
    let c = TestCluster::start(options).await?;
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    for i in 0..10 {
        client.put(format!("a{i}").as_bytes(), b"v").await?;
        client.put(format!("q{i}").as_bytes(), b"v").await?;
    }
    let lagging = [1, 2, 3].into_iter().find(|&s| s != leader).expect("a follower");
    let rest: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|&s| s != lagging).collect();
    c.net.partition(&[&rest, &[lagging]]);
    let client = c.client_of(&rest).await?;
    let (_, right) = client.split_at(b"m").await?;
    let child = ShardId(right.shard_id);
    client.move_replica(child, ServerId(lagging), ServerId(4)).await?;
    let mut i = 0;
    loop {
        client.put(format!("b{i:04}").as_bytes(), b"v").await?;
        i += 1;
        let leader_first = c.progress(leader, 1).expect("up").first_index;
        let lagging_last = c.progress(lagging, 1).expect("up").last_index;
        if leader_first > lagging_last + 1 {
            break;
        }
        assert!(i < 5_000, "the leader never compacted its log");
    }
    c.net.heal();
    wait_until(LEADER_TIMEOUT, || c.replica(lagging, 1).is_some_and(|r| r.descriptor().end_key == b"m")).await?;
    assert!(c.replica(lagging, 1).expect("up").snapshots_installed() >= 1, "skipped the split without a snapshot");
    assert!(c.replica(lagging, child.0).is_none(), "the child's replica came to F after all");
    let status = client.server_status(&c.addr(lagging)).await?;
    let strays: Vec<String> = status.stray_keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    assert!(strays.is_empty(), "F stores data outside its replicas, from keys {strays:?}");
    for i in 0..10 {
        assert_eq!(client.get(format!("q{i}").as_bytes()).await?.as_deref(), Some(&b"v"[..]), "q{i}");
    }
    c.shutdown().await
}
