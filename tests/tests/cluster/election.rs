//! Leader election (6.824 lab 2A): a leader appears, survives quiet times,
//! is replaced when cut off, and is not disturbed by the old one's return.

use std::time::Duration;

use meta::ServerId;
use rand::{Rng, SeedableRng};
use spanserver::registry::Role;
use tests::wait::wait_until;
use tests::{ClusterOptions, TestCluster};

use crate::common::{init, LEADER_TIMEOUT};

/// Goal: a fresh cluster elects one leader that every replica follows, and
/// without faults keeps it: no spurious elections.
/// Method: wait for a leader, then watch for longer than two election
/// timeouts; leader and term must not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_election() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let term = c.progress(leader, 1).expect("leader is up").term;
    assert!(term >= 1);
    // Observing a quiet period: nothing should happen, so there is no
    // condition to poll for.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [1, 2, 3] {
        let p = c.progress(id, 1).expect("up");
        assert_eq!(p.term, term, "server {id} moved to another term without faults");
        assert_eq!(p.leader_server, Some(ServerId(leader)), "server {id} follows someone else");
        assert_eq!(p.role == Role::Leader, id == leader);
    }
    c.shutdown().await
}

/// Goal (6.824 TestReElection2A): when the leader is cut off, the others
/// elect a new one and keep serving; when the old leader returns it follows
/// the new one without forcing an election (pre-vote and check-quorum).
/// Method: isolate the leader, write through the majority, heal, and check
/// the new leader keeps its term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reelection_after_leader_partition() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    let old = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|&s| s != old).collect();
    c.net.partition(&[&[old], &rest]);
    let new = c.wait_for_leader_among(1, &rest, LEADER_TIMEOUT).await?;
    assert_ne!(new, old);
    wait_until(LEADER_TIMEOUT, || c.progress(old, 1).is_some_and(|p| p.role != Role::Leader)).await?;
    let client = c.client_of(&rest).await?;
    client.put(b"k", b"during").await?;
    let new_term = c.progress(new, 1).expect("up").term;

    c.net.heal();
    wait_until(LEADER_TIMEOUT, || {
        c.progress(old, 1).is_some_and(|p| p.term == new_term && p.leader_server == Some(ServerId(new)))
    })
    .await?;
    let p = c.progress(new, 1).expect("up");
    assert_eq!((p.role, p.term), (Role::Leader, new_term), "the rejoining leader disturbed the new one");

    client.put(b"k", b"after").await?;
    assert_eq!(c.client().await?.get(b"k").await?, Some(b"after".to_vec()));
    c.shutdown().await
}

/// Goal (6.824 TestManyElections2A): with 7 replicas and 3 of them cut off
/// at random, again and again, the remaining 4 always elect a leader and
/// accept writes; never two leaders in one term (the harness checks).
/// Method: eight rounds of isolate-3, elect, write, heal; then every write
/// must be readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_elections_under_churn_of_7_servers() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(7).replication(7).seed(7)).await?;
    c.wait_for_leader_among(1, &[1, 2, 3, 4, 5, 6, 7], LEADER_TIMEOUT).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..8 {
        let mut ids: Vec<u64> = (1..=7).collect();
        let mut cut = Vec::new();
        for _ in 0..3 {
            cut.push(ids.remove(rng.random_range(0..ids.len())));
        }
        let groups: Vec<&[u64]> = std::iter::once(ids.as_slice()).chain(cut.iter().map(std::slice::from_ref)).collect();
        c.net.partition(&groups);
        c.wait_for_leader_among(1, &ids, LEADER_TIMEOUT).await?;
        wait_until(LEADER_TIMEOUT, || cut.iter().all(|&s| c.progress(s, 1).is_some_and(|p| p.role != Role::Leader)))
            .await?;
        let client = c.client_of(&ids).await?;
        client.put(format!("round{round}").as_bytes(), b"done").await?;
        c.net.heal();
    }
    let client = c.client().await?;
    for round in 0..8 {
        assert_eq!(client.get(format!("round{round}").as_bytes()).await?, Some(b"done".to_vec()));
    }
    c.shutdown().await
}
