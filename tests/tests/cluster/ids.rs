//! The id allocator (`Admin.AllocateIds`): ids for shards and replicas
//! that are never handed out twice, across leader changes and restarts.

use std::collections::BTreeSet;
use std::time::Duration;

use tests::{ClusterOptions, TestCluster};

use crate::common::{init, LEADER_TIMEOUT};

/// Takes the ids of `ranges` into `seen`, failing on any id taken twice
/// or within the static layout's.
fn take(seen: &mut BTreeSet<u64>, ranges: &[std::ops::RangeInclusive<u64>], floor: u64, when: &str) {
    for range in ranges {
        for id in range.clone() {
            assert!(id > floor, "{when}: id {id} is one of the static layout's (<= {floor})");
            assert!(seen.insert(id), "{when}: id {id} handed out twice");
        }
    }
}

/// Goal: ids are never handed out twice: not to concurrent callers, not
/// after the allocator's shard changes leader, not after every server
/// restarts; each allocation starts above the static layout's ids and
/// above every id answered before it.
/// Method: 4 clients allocate 1 to 5 ids 15 times each, at once; the
/// leader of the shard holding the high-water mark is crashed and more
/// are allocated; every server is crashed and restarted and more are
/// allocated. Every id is checked against all before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_are_never_handed_out_twice() -> anyhow::Result<()> {
    init();
    let mut c = TestCluster::start(ClusterOptions::new(3).split_points(&["m"])).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let floor = c.spec.static_ids_max();
    let client = c.client().await?;
    let mut seen = BTreeSet::new();

    let mut tasks = Vec::new();
    for worker in 0..4u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..15u64 {
                got.push(client.allocate_ids(1 + (worker + i) % 5).await?);
            }
            anyhow::Ok(got)
        }));
    }
    for t in tasks {
        take(&mut seen, &t.await??, floor, "concurrent");
    }
    assert_eq!(seen.len(), 4 * 15 * 3, "every id answered is counted once");

    // The shard holding the mark loses its leader.
    let shard = 1;
    let leader = c.leader(shard).expect("a leader of shard 1");
    c.crash(leader).await;
    let others: Vec<u64> = c.server_ids().into_iter().filter(|s| *s != leader).collect();
    c.wait_for_leader_among(shard, &others, LEADER_TIMEOUT).await?;
    let after_failover = client.allocate_ids(3).await?;
    assert!(*after_failover.start() > *seen.last().unwrap(), "after a failover: {after_failover:?}");
    take(&mut seen, &[after_failover], floor, "after a failover");
    c.restart(leader).await?;

    // Every server restarts from its directory.
    for s in c.server_ids() {
        c.crash(s).await;
    }
    for s in c.server_ids() {
        c.restart(s).await?;
    }
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let after_restart = client.allocate_ids(2).await?;
    assert!(*after_restart.start() > *seen.last().unwrap(), "after a restart: {after_restart:?}");
    take(&mut seen, &[after_restart], floor, "after a restart");
    c.shutdown().await
}

/// Goal: the system's keys (byte 0x00 first) cannot be written by users,
/// alone or in a transaction, and a refused write changes nothing; bad
/// allocation sizes are refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cannot_write_the_system_keys() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let first = client.allocate_ids(1).await?;
    let mark = meta::keys::ID_HIGH_WATER;
    let forged = client.write(&[client::Mutation::Put(mark.to_vec(), 0u64.to_be_bytes().to_vec())]).await;
    assert!(matches!(forged, Err(client::Error::InvalidArgument(_))), "a plain write: {forged:?}");
    let mut txn = client.begin();
    txn.put(b"\x00sys/other", b"x");
    let forged = txn.commit().await;
    assert!(matches!(forged, Err(client::Error::InvalidArgument(_))), "a transaction: {forged:?}");
    for count in [0, meta::limits::IDS_PER_ALLOCATION_MAX + 1] {
        let bad = client.allocate_ids(count).await;
        assert!(matches!(bad, Err(client::Error::InvalidArgument(_))), "{count} ids: {bad:?}");
    }
    let next = client.allocate_ids(1).await?;
    assert_eq!(*next.start(), first.start() + 1, "nothing moved the mark in between");
    tokio::time::timeout(Duration::from_secs(30), c.shutdown()).await?
}
