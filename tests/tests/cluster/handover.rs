//! Leadership transfers that drain a busy shard first
//! (`spanserver/src/shard/handover.rs`): what the placement driver asks
//! for when it balances leaderships under load.

use std::time::Duration;

use client::Error as ClientError;
use meta::{ServerId, ShardId};
use tests::wait::wait_until;
use tests::{ClusterOptions, TestCluster};

use crate::common::{init, LEADER_TIMEOUT};

/// A cluster of 3 servers, one shard, "k" = "1"; a client; the shard's
/// leader and another server.
async fn three_servers_with_k() -> anyhow::Result<(TestCluster, client::Client, u64, u64)> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let next = if leader == 1 { 2 } else { 1 };
    let client = c.client().await?;
    client.put(b"k", b"1").await?;
    Ok((c, client, leader, next))
}

/// Goal: a transfer with a drain does not abort the transaction open at
/// the leader. It holds new work back, lets the open transaction commit,
/// then hands over at once (long before the drain's deadline), and the
/// work that waited is served by the new leader. (Without a drain, the
/// same transfer aborts the transaction: `a_reread_after_a_leader_change_aborts`.)
/// Method: a transaction reads "k" at shard 1's leader; ask for a
/// transfer with the longest drain (10 s); a plain write of "n" starts;
/// the transaction writes "k" and commits; within 5 s the leadership is
/// on the other server, and the plain write has succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_transfer_lets_the_open_transaction_commit_then_hands_over() -> anyhow::Result<()> {
    let (c, client, leader, next) = three_servers_with_k().await?;
    let mut txn = client.begin();
    assert_eq!(txn.get(b"k").await?, Some(b"1".to_vec()));

    client.transfer_leader(ShardId(1), ServerId(next), false, Duration::from_secs(10)).await?;
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.put(b"n", b"x").await })
    };
    assert_eq!(c.leader(1), Some(leader), "the leadership moved while a transaction was open");
    txn.put(b"k", b"2");
    txn.commit().await?;
    wait_until(Duration::from_secs(5), || c.leader(1) == Some(next)).await?;
    waiting.await??;
    assert_eq!(client.get(b"k").await?, Some(b"2".to_vec()));
    assert_eq!(client.get(b"n").await?, Some(b"x".to_vec()));
    c.shutdown().await
}

/// Goal: a drained transfer asked `only_if_idle` gives up when a
/// transaction is still open at its deadline: the leadership stays, the
/// open transaction is not aborted, and the work held back runs at the
/// same leader. A drain longer than the limit is refused, and changes
/// nothing.
/// Method: a transaction reads "k"; a transfer with a 300 ms drain,
/// `only_if_idle`; a plain write of "n" (another key) waits out the drain
/// and succeeds; the leader is unchanged; the transaction commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_outlasts_an_open_transaction_gives_up_when_asked_only_if_idle() -> anyhow::Result<()> {
    let (c, client, leader, next) = three_servers_with_k().await?;
    let too_long = client.transfer_leader(ShardId(1), ServerId(next), false, Duration::from_secs(11)).await;
    assert!(matches!(too_long, Err(ClientError::InvalidArgument(_))), "a drain over the limit gave {too_long:?}");

    let mut txn = client.begin();
    assert_eq!(txn.get(b"k").await?, Some(b"1".to_vec()));
    client.transfer_leader(ShardId(1), ServerId(next), true, Duration::from_millis(300)).await?;
    client.put(b"n", b"x").await?;
    assert_eq!(c.leader(1), Some(leader), "the leadership moved though a transaction stayed open");
    txn.put(b"k", b"2");
    txn.commit().await?;
    assert_eq!(c.leader(1), Some(leader));
    assert_eq!(client.get(b"k").await?, Some(b"2".to_vec()));
    c.shutdown().await
}

/// Goal: a drained transfer without `only_if_idle` (a move for load)
/// hands over a transaction still open at its deadline if it is young
/// (it aborts, and can retry cheaply), but gives up for one open for
/// `HANDOVER_SPARES_OPEN_FOR` or more: the leadership stays and the long
/// transaction commits (a bulk load's block once lost its catalog locks
/// to such a move).
/// Method: a transaction reads "k", then stays open past the limit; a
/// transfer with a 300 ms drain; a plain write of "n" waits it out; the
/// leader is unchanged and the transaction commits. Then a transaction
/// reads "k" and the same transfer comes at once: the leadership moves
/// and that transaction's commit is refused as aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_hands_over_a_young_open_transaction_but_spares_a_long_one() -> anyhow::Result<()> {
    let (c, client, leader, next) = three_servers_with_k().await?;
    let drain = Duration::from_millis(300);
    let mut long = client.begin();
    assert_eq!(long.get(b"k").await?, Some(b"1".to_vec()));
    tokio::time::sleep(spanserver::limits::HANDOVER_SPARES_OPEN_FOR + Duration::from_millis(200)).await;
    client.transfer_leader(ShardId(1), ServerId(next), false, drain).await?;
    client.put(b"n", b"x").await?;
    assert_eq!(c.leader(1), Some(leader), "the leadership moved though a long transaction was open");
    long.put(b"k", b"2");
    long.commit().await?;
    assert_eq!(client.get(b"k").await?, Some(b"2".to_vec()));

    let mut young = client.begin();
    assert_eq!(young.get(b"k").await?, Some(b"2".to_vec()));
    client.transfer_leader(ShardId(1), ServerId(next), false, drain).await?;
    wait_until(LEADER_TIMEOUT, || c.leader(1) == Some(next)).await?;
    young.put(b"k", b"3");
    let lost = young.commit().await;
    assert!(matches!(lost, Err(ClientError::Aborted(_))), "a young transaction handed over gave {lost:?}");
    assert_eq!(client.get(b"k").await?, Some(b"2".to_vec()));
    c.shutdown().await
}
