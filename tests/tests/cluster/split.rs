//! Splitting a shard by hand (`Admin.SplitShard`, `Client::split_at`)
//! on a cluster of real servers over gRPC.

use std::time::Duration;

use anyhow::Context;
use tests::wait::{wait_for, wait_until};
use tests::{ClusterOptions, TestCluster};

use crate::common::{init, LEADER_TIMEOUT};

fn key(i: usize) -> Vec<u8> {
    format!("k{i:02}").into_bytes()
}

/// Goal: after a split, every acknowledged write is still read, both
/// halves take writes and a transaction across them commits, a client
/// whose map predates the split follows it (the refusals carry the new
/// descriptors), and all of it survives a restart of every server.
/// Method: one shard, 40 keys written; split at "k20" by one client;
/// another client, connected before, reads and writes all 40 keys and
/// commits a transaction over k05 and k25; every server crashes and
/// restarts; a fresh client reads everything back and sees two shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_split_keeps_every_write_and_serves_both_halves() -> anyhow::Result<()> {
    init();
    let mut c = TestCluster::start(ClusterOptions::new(3)).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let stale = c.client().await?;
    for i in 0..40 {
        client.put(&key(i), b"v1").await?;
    }

    let (left, right) = client.split_at(b"k20").await?;
    assert_eq!((left.shard_id, left.start_key.as_slice(), left.end_key.as_slice()), (1, &b""[..], &b"k20"[..]));
    assert_eq!((right.start_key.as_slice(), right.end_key.as_slice()), (&b"k20"[..], &b""[..]));
    assert_eq!((left.range_ver, right.range_ver), (2, 2), "both halves at the next range version");
    let floor = c.spec.static_ids_max();
    assert!(right.shard_id > floor && right.replicas.iter().all(|r| r.replica_id > floor), "new ids: {right:?}");
    let servers = |d: &proto::ShardDescriptor| d.replicas.iter().map(|r| r.server_id).collect::<Vec<_>>();
    assert_eq!(servers(&left), servers(&right), "the child sits beside the shard");

    for i in 0..40 {
        assert_eq!(stale.get(&key(i)).await?.as_deref(), Some(&b"v1"[..]), "k{i:02} after the split");
    }
    for i in 0..40 {
        stale.put(&key(i), b"v2").await?;
    }
    let mut txn = stale.begin();
    txn.put(b"k05", b"t");
    txn.put(b"k25", b"t");
    txn.commit().await?;

    for s in c.server_ids() {
        c.crash(s).await;
    }
    for s in c.server_ids() {
        c.restart(s).await?;
    }
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let child = right.shard_id;
    wait_until(LEADER_TIMEOUT, || c.leader(child).is_some()).await?;
    let fresh = c.client().await?;
    let info = fresh.cluster_info().await?;
    let shards: Vec<u64> = info.shards.iter().filter_map(|s| s.descriptor.as_ref()).map(|d| d.shard_id).collect();
    assert_eq!(shards, vec![1, child], "after the restart");
    for i in 0..40 {
        let want: &[u8] = if i == 5 || i == 25 { b"t" } else { b"v2" };
        assert_eq!(fresh.get(&key(i)).await?.as_deref(), Some(want), "k{i:02} after the restart");
    }
    c.shutdown().await
}

/// Goal: a transaction whose client grouped its writes by a shard that
/// then split commits them all, without waiting out its deadline: at one
/// shard the commit groups them again (two phases over the halves); over
/// several shards a participant that only writes is grouped again too,
/// and so is the coordinator, whose moved keys are prepared on their new
/// shard before it commits. Found by `pgbench -i`: a COPY batch's commit
/// was refused "key outside the shard's range" until its deadline and
/// ended as an unknown outcome; later, its server-side generate (one
/// transaction over several shards, which pgbench does not retry) failed
/// with 40001 when a split came under a participant, and then under the
/// coordinator.
/// Method: a client knowing one shard buffers "c" and "q"; another splits
/// at "m"; the commit succeeds over two shards. Then a transaction buffers
/// "c", "n" and "q" (the map now has two shards, "c" the coordinator's),
/// the other client splits the child at "p" before it commits: it commits
/// over three. Then a transaction buffers "b", "d" and "n", and the other
/// client splits the coordinator's shard at "c" before it commits: it
/// commits over three, the first time. Every key reads back with its last
/// value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_grouped_before_a_split_commits_on_the_halves() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let (writer, splitter) = (c.client().await?, c.client().await?);
    writer.put(b"a", b"known").await?;
    let mut txn = writer.begin();
    txn.put(b"c", b"v1");
    txn.put(b"q", b"v1");
    splitter.split_at(b"m").await?;
    let committed = txn.commit_detailed().await.context("the commit over the split")?;
    assert_eq!(committed.participants, 2, "grouped again over the halves");
    for key in [&b"c"[..], b"q"] {
        assert_eq!(writer.get(key).await?.as_deref(), Some(&b"v1"[..]), "{key:?}");
    }

    let mut txn = writer.begin();
    for key in [&b"c"[..], b"n", b"q"] {
        txn.put(key, b"v2");
    }
    // A prepare at the new half may wait out its election (over a second
    // on a loaded machine): the half prepared before it then asks the
    // coordinator, which answers "pending" (the client heartbeats it).
    splitter.split_at(b"p").await?;
    let committed = txn.commit_detailed().await.context("the commit over a participant's split")?;
    assert_eq!(committed.participants, 3, "the participant's writes grouped again over its halves");
    for key in [&b"c"[..], b"n", b"q"] {
        assert_eq!(writer.get(key).await?.as_deref(), Some(&b"v2"[..]), "{key:?}");
    }

    let mut txn = writer.begin();
    for key in [&b"b"[..], b"d", b"n"] {
        txn.put(key, b"v3");
    }
    splitter.split_at(b"c").await?;
    let committed = txn.commit_detailed().await.context("the commit over the coordinator's split")?;
    assert_eq!(committed.participants, 3, "the coordinator's writes grouped again over its halves");
    for key in [&b"b"[..], b"d", b"n"] {
        assert_eq!(writer.get(key).await?.as_deref(), Some(&b"v3"[..]), "{key:?}");
    }
    // The answering server's shard map can trail a split by an apply.
    wait_for(LEADER_TIMEOUT, || async { (writer.cluster_info().await.ok()?.shards.len() == 4).then_some(()) })
        .await
        .context("four shards")?;
    c.shutdown().await
}

/// Goal: snapshot reads at a timestamp from before a split see the values
/// of then on both halves, from leaders and followers alike, and a scan
/// at it crosses the split: the halves keep their shard's old versions
/// and serve them at old timestamps.
/// Method: write "c" and "q" (v1), then again (v2); split at "m"; write
/// them a third time (v3); read both at v1's and v2's timestamps from the
/// leaders and from followers, and scan ["a", "z") at v1's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_reads_at_a_timestamp_before_a_split_see_its_values_on_both_halves() -> anyhow::Result<()> {
    use client::{ReadMode, ReplicaPreference};
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let keys = [&b"c"[..], &b"q"[..]];
    let mut at = Vec::new();
    for value in [&b"v1"[..], &b"v2"[..]] {
        let mut ts = truetime::Timestamp::ZERO;
        for key in keys {
            ts = ts.max(client.put(key, value).await?);
        }
        at.push((ts, value));
    }
    client.split_at(b"m").await?;
    for key in keys {
        client.put(key, b"v3").await?;
    }
    for (ts, value) in &at {
        for key in keys {
            for replica in [ReplicaPreference::Auto, ReplicaPreference::Follower] {
                let read = client.get_from(key, ReadMode::At(*ts), replica).await?;
                assert_eq!(read.value.map(|v| v.value), Some(value.to_vec()), "{key:?} at {ts:?} ({replica:?})");
            }
        }
    }
    let scanned = client.scan(b"a", b"z", 10, ReadMode::At(at[0].0)).await?;
    let pairs: Vec<(&[u8], &[u8])> = scanned.iter().map(|kv| (kv.key.as_slice(), kv.value.as_slice())).collect();
    assert_eq!(pairs, vec![(&b"c"[..], &b"v1"[..]), (&b"q"[..], &b"v1"[..])], "the scan at v1's timestamp");
    assert_eq!(client.cluster_info().await?.shards.len(), 2, "the reads crossed a split");
    c.shutdown().await
}

/// Goal: bad splits are refused and change nothing: at the empty key, at
/// a shard's first key, and at a key outside the shard named (asked of
/// its leader directly, as a client with a wrong map would).
/// Method: split at "m"; try "" and "m"; ask shard 1 ([-inf, "m")) to
/// split at "q"; the map still has two shards, shard 1 its range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_splits_are_refused_and_change_nothing() -> anyhow::Result<()> {
    use crate::common::kind;
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    client.split_at(b"m").await?;
    for at in [&b""[..], &b"m"[..]] {
        let refused = client.split_at(at).await;
        assert!(matches!(refused, Err(client::Error::InvalidArgument(_))), "split at {at:?}: {refused:?}");
    }
    let leader = c.wait_for_leader_among(1, &c.server_ids(), LEADER_TIMEOUT).await?;
    let mut admin = c.admin_client(leader).await?;
    let outside = proto::SplitShardRequest { shard_id: 1, range_ver: 0, split_key: b"q".to_vec() };
    match admin.split_shard(outside).await {
        Ok(split) => panic!("shard 1 split at a key it does not hold: {split:?}"),
        Err(status) => assert_eq!(kind(&status), proto::ErrorKind::WrongShard, "{status:?}"),
    }
    let info = client.cluster_info().await?;
    assert_eq!(info.shards.len(), 2, "nothing split");
    assert_eq!(c.replica(leader, 1).expect("shard 1").descriptor().end_key, b"m", "shard 1 changed");
    c.shutdown().await
}

/// Goal: a shard splits while a transaction is prepared on keys on both
/// sides (no longer refused), and the transaction stays prepared on both
/// halves until its coordinator decides: once it ends (abort: the
/// coordinator never got a commit) both keys take new writes, on both
/// halves, and its own writes never show.
/// Method: split at "m"; prepare t77 on the child, writing "n" and "q",
/// with shard 1 as its coordinator, which is never asked to commit; split
/// the child at "p" at once (it goes through); write "n" and "q" (each
/// waits until the prepared write is gone: the half holding "q" asks the
/// child, which asks shard 1, which decides abort) and read them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_over_a_prepared_transaction_leaves_it_prepared_on_both_halves() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let (_, right) = client.split_at(b"m").await?;
    let child = right.shard_id;
    let leader = c.wait_for_leader_among(child, &c.server_ids(), LEADER_TIMEOUT).await?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", c.addr(leader)))?.connect().await?;
    let mut raw = proto::txn_client::TxnClient::new(channel);
    let write = |key: &[u8]| proto::Mutation { key: key.to_vec(), value: b"never".to_vec(), delete: false };
    let prepare = proto::TxnPrepareRequest {
        txn: Some(proto::TxnMeta {
            txn_id: 77u128.to_be_bytes().to_vec(),
            priority_ts: 5,
            priority_txn: vec![],
            deadline: None,
        }),
        shard_id: child,
        range_ver: 0,
        coordinator_shard_id: 1,
        writes: vec![write(b"n"), write(b"q")],
        reads: vec![],
        lease: None,
        conditions: Vec::new(),
    };
    raw.prepare(prepare).await?;
    let (_, grandchild) = client.split_at(b"p").await?;
    // Each server answers with its own replicas' view, and a follower of
    // the child learns of the split when it applies it, after the leader.
    let client_ref = &client;
    let three = || async move { client_ref.cluster_info().await.ok().filter(|info| info.shards.len() == 3) };
    wait_for(LEADER_TIMEOUT, three).await.context("the split went through")?;
    for key in [&b"q"[..], &b"n"[..]] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match client.put(key, b"later").await {
                Ok(_) => break,
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(e.into()),
            }
            assert!(tokio::time::Instant::now() < deadline, "the prepared write of {key:?} never ended");
        }
        assert_eq!(client.get(key).await?, Some(b"later".to_vec()), "{key:?}");
    }
    client.refresh_routes().await?;
    let holding_q = client.shards_covering(b"q", b"q\0");
    assert_eq!(holding_q.first().map(|(d, _)| d.shard_id), Some(grandchild.shard_id), "q is on the new half");
    c.shutdown().await
}

/// Goal: a shard that grows past `split.size_bytes` splits by itself, at
/// a key that halves it, again and again as it grows; every write stays
/// readable, and every shard keeps three replicas on distinct servers.
/// Method: one shard, the size at 64 KiB, checked every 200 ms; 300 keys
/// of 1 KiB written in order; the map must reach at least 3 shards that
/// cover the key space without a gap or overlap; then everything is
/// read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shard_over_the_size_splits_by_itself() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(3);
    options.split = spanserver::config::SplitConfig { size_bytes: 64 * 1024, check_interval_ms: 200, load_qps: 0 };
    let c = TestCluster::start(options).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let value = vec![b'v'; 1024];
    for i in 0..300 {
        client.put(format!("key{i:04}").as_bytes(), &value).await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let shards = loop {
        let info = client.cluster_info().await?;
        let mut shards: Vec<proto::ShardDescriptor> = info.shards.into_iter().filter_map(|s| s.descriptor).collect();
        shards.sort_by(|a, b| a.start_key.cmp(&b.start_key));
        if shards.len() >= 3 {
            break shards;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} shards after 30 s", shards.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(shards[0].start_key.is_empty() && shards.last().is_some_and(|d| d.end_key.is_empty()), "{shards:?}");
    for pair in shards.windows(2) {
        assert_eq!(pair[0].end_key, pair[1].start_key, "a gap or an overlap: {shards:?}");
    }
    for d in &shards {
        let mut servers: Vec<u64> = d.replicas.iter().map(|r| r.server_id).collect();
        servers.sort_unstable();
        servers.dedup();
        assert_eq!(servers.len(), 3, "{d:?}");
    }
    for i in 0..300 {
        let key = format!("key{i:04}");
        assert_eq!(client.get(key.as_bytes()).await?.as_deref(), Some(value.as_slice()), "{key}");
    }
    c.shutdown().await
}

/// Goal: a shard that serves more requests a second than `split.load_qps`
/// splits by itself at the median of its sampled request keys, so each
/// half takes about half the load; every write stays readable.
/// Method: one shard, split by size off, by load above 25 requests a
/// second (one client does several times that even on a busy machine),
/// checked every 2 s (enough requests for a sample of their keys, one in
/// 8 kept); one client puts keys load000..load099
/// round and round until the shard has split (or 30 s pass); the split
/// key must be among the written keys, not at their ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_shard_splits_by_load_at_its_median_key() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(3);
    options.split = spanserver::config::SplitConfig { size_bytes: 0, check_interval_ms: 2000, load_qps: 25 };
    let c = TestCluster::start(options).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut i = 0usize;
    let split_at = loop {
        client.put(format!("load{:03}", i % 100).as_bytes(), b"v").await?;
        i += 1;
        if i.is_multiple_of(50) {
            let map = client.shard_map().await?;
            if let Some(d) = map.values().find(|d| d.start_key.starts_with(b"load")) {
                break d.start_key.clone();
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no split by load after {i} puts");
    };
    let at = String::from_utf8_lossy(&split_at).to_string();
    assert!(("load010".."load090").contains(&at.as_str()), "split at {at}, not near the middle");
    for n in 0..100.min(i) {
        let key = format!("load{n:03}");
        assert_eq!(client.get(key.as_bytes()).await?.as_deref(), Some(&b"v"[..]), "{key}");
    }
    c.shutdown().await
}

/// Goal: a shard's leader shows its size and its request rate in its
/// server's status (what `spandb status` prints), measured even when
/// both kinds of split are off.
/// Method: one shard, splits off, the split queue's round at 200 ms; one
/// client writes 200 keys of 1 KiB, then keeps writing while the test
/// polls the leader's status until it shows a rate above zero and at
/// least the bytes written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_shows_its_size_and_load() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(3);
    options.split = spanserver::config::SplitConfig { size_bytes: 0, check_interval_ms: 200, load_qps: 0 };
    let c = TestCluster::start(options).await?;
    let leaders = c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let value = vec![b'v'; 1024];
    for i in 0..200 {
        client.put(&key(i), &value).await?;
    }
    let leader = leaders[&1];
    let addr = client.cluster_info().await?.servers.into_iter().find(|s| s.server_id == leader).expect("leader").addr;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    loop {
        client.put(&key(i % 200), &value).await?;
        i += 1;
        let status = client.server_status(&addr).await?;
        let shard = status.replicas.iter().find(|r| r.shard_id == 1).expect("the shard's replica");
        if shard.requests_per_s > 0.0 && shard.estimated_bytes >= 200 * 1024 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status shows {:.1} requests/s and {} bytes after 30 s",
            shard.requests_per_s,
            shard.estimated_bytes
        );
    }
    c.shutdown().await
}

/// Goal: a snapshot read waiting at a follower of a shard that splits
/// meanwhile never misses a write the child acknowledged below its read
/// timestamp. The moved key's versions on that server come from the
/// child's replica there, which may lag its leader while the parent's
/// safe time goes on rising: the read is refused `WrongShard` (the
/// client then reads the child) or sees the write, never the value
/// before it.
/// Method: 3 servers, one shard led by L; q = v1; a read of q at a
/// timestamp 4 s ahead, straight to follower F, waits there; split at
/// "m"; the child's leadership moves to the other follower G, and G's
/// messages to F are cut, so F's replica of the child stops applying;
/// q = v2 (acknowledged below the read's timestamp); the read finishes
/// once the parent's replica on F has applied past its timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_read_across_a_split_never_misses_a_write_the_child_acknowledged() -> anyhow::Result<()> {
    use crate::common::{kind, raw_get};
    init();
    let mut options = ClusterOptions::new(3);
    options.time.read_timeout_ms = 20_000;
    // The split queue counts load too: keep it from taking F's count first.
    options.split.check_interval_ms = 3_600_000;
    let c = TestCluster::start(options).await?;
    let leaders = c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let (f, g) = match (1..=3).filter(|s| *s != leaders[&1]).collect::<Vec<u64>>()[..] {
        [f, g] => (f, g),
        _ => unreachable!("three servers, one leader"),
    };
    let v1 = client.put(b"q", b"v1").await?;
    let read_ts = v1.saturating_add(Duration::from_secs(4));
    let parent_at_f = c.replica(f, 1).expect("F's replica of the shard");
    parent_at_f.take_load();
    let mut kv = c.kv_client(f).await?;
    let read = tokio::spawn(async move { raw_get(&mut kv, 1, "q", read_ts.as_nanos()).await });
    // The read has checked its route at F once F counted it.
    wait_until(Duration::from_secs(5), || parent_at_f.take_load().0 > 0).await?;

    let (_, right) = client.split_at(b"m").await?;
    let child = right.shard_id;
    c.wait_for_leader_among(child, &[1, 2, 3], LEADER_TIMEOUT).await?;
    c.transfer_leader(child, g, LEADER_TIMEOUT).await?;
    c.net.cut(g, f);
    let v2 = client.put(b"q", b"v2").await?;
    assert!(v2 < read_ts, "the write at {v2:?} came after the read's timestamp {read_ts:?}: nothing to miss");
    match read.await? {
        Ok(Some(v)) => assert_eq!(v, "v2", "the read at {read_ts:?} missed v2, acknowledged at {v2:?}"),
        Ok(None) => panic!("the read found no q"),
        Err(status) => assert_eq!(kind(&status), proto::ErrorKind::WrongShard, "{status:?}"),
    }
    c.net.heal();
    assert_eq!(client.get(b"q").await?.as_deref(), Some(&b"v2"[..]));
    c.shutdown().await
}

/// Goal: a replica that has not applied a split yet never answers a read
/// of the moved keys from the data the child's replica beside it put
/// there (here: history the child collected, so the read found nothing):
/// it is refused `WrongShard`, naming the child; a read of keys that did
/// not move is served.
/// Method: three servers; F (server 3) keeps an hour of history, the
/// others 5 s, so F's own watermarks stay low and only a snapshot from
/// another server brings a high one. "q" is written twice (v1, v2), then
/// F's replica of the shard hears nothing more from its group. The shard
/// splits at "m" without F, and the child collects history past v2 (v1
/// is gone). Then the child's leader reaches F, whose child replica it
/// fills by a snapshot. F's parent replica, still covering "q", is asked
/// for "q" at v1's timestamp, and for "a" (not moved) too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_behind_a_split_never_reads_history_its_child_collected() -> anyhow::Result<()> {
    use crate::common::{kind, raw_get};
    use prost::Message as _;
    use spanserver::config::GcConfig;
    init();
    let f = 3;
    let rest = [1, 2];
    let mut options = ClusterOptions::new(3);
    options.gc = GcConfig { retention_s: 5, interval_s: 1 };
    options.gc_by_server.insert(f, GcConfig { retention_s: 3600, interval_s: 1 });
    options.split.check_interval_ms = 3_600_000;
    let c = TestCluster::start(options).await?;
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    if leader == f {
        c.transfer_leader(1, rest[0], LEADER_TIMEOUT).await?;
    }
    let client = c.client().await?;
    let v1 = client.put(b"q", b"v1").await?;
    let v2 = client.put(b"q", b"v2").await?;
    client.put(b"a", b"later").await?;
    let leader = c.wait_for_leader_among(1, &rest, LEADER_TIMEOUT).await?;
    let leader_applied = c.progress(leader, 1).expect("up").applied_index;
    wait_until(LEADER_TIMEOUT, || c.progress(f, 1).is_some_and(|p| p.applied_index >= leader_applied)).await?;
    c.net.cut_shard(1, f);
    c.net.partition(&[&rest, &[f]]);
    let parent_at_f = c.replica(f, 1).expect("F's replica of the shard");

    let client = c.client_of(&rest).await?;
    let (_, right) = client.split_at(b"m").await?;
    let child = right.shard_id;
    let child_leader = c.wait_for_leader_among(child, &rest, LEADER_TIMEOUT).await?;
    let collected = || c.replica(child_leader, child).is_some_and(|r| r.gc_watermark() > v2);
    wait_until(Duration::from_secs(30), collected).await?;
    c.net.end_partition();
    let filled = || c.replica(f, child).is_some_and(|r| r.descriptor().is_initialized());
    wait_until(LEADER_TIMEOUT, filled).await?;
    assert!(parent_at_f.descriptor().end_key.is_empty(), "F's replica applied the split after all");
    assert!(parent_at_f.gc_watermark() < v1, "F's replica collected v1 itself");

    let mut kv = c.kv_client(f).await?;
    // The install's end may still be under way ("installing"; retry).
    let deadline = tokio::time::Instant::now() + LEADER_TIMEOUT;
    let read = loop {
        match raw_get(&mut kv, 1, "q", v1.as_nanos()).await {
            Err(s) if kind(&s) == proto::ErrorKind::Unavailable && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            read => break read,
        }
    };
    match read {
        Err(status) => {
            assert_eq!(kind(&status), proto::ErrorKind::WrongShard, "{status:?}");
            let detail = proto::ErrorDetail::decode(status.details())?;
            assert!(detail.descriptors.iter().any(|d| d.shard_id == child), "{detail:?}");
        }
        Ok(value) => panic!("F's stale replica read {value:?} at v1's timestamp, below the child's watermark"),
    }
    assert_eq!(raw_get(&mut kv, 1, "a", v1.as_nanos()).await?, None, "a was written after v1");
    c.net.heal();
    assert_eq!(client.get(b"q").await?.as_deref(), Some(&b"v2"[..]));
    c.shutdown().await
}
