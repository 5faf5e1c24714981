//! The key-value service (6.824 lab 3A) and SpanDB's own guarantees:
//! snapshot reads at timestamps, commit-wait, GC, bad input.

use std::sync::Arc;
use std::time::Duration;

use proto::ErrorKind;
use spanserver::config::GcConfig;
use spanserver::registry::Role;
use spanserver::{Server, TransportKind};
use tests::wait::wait_until;
use tests::{ClusterOptions, TestCluster};

use crate::common::{detail, init, kind, raw_get, raw_put, LEADER_TIMEOUT};

/// Goal: a snapshot read at a write's commit timestamp sees exactly the
/// state then, on every replica; latest reads see the newest value; and
/// commit-wait holds: when a write is acknowledged, its timestamp has
/// definitely passed on the leader's TrueTime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_reads_see_the_state_at_their_timestamp() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let ts1 = client.put(b"k", b"v1").await?;
    assert!(c.server(leader).truetime.after(ts1), "acknowledged before TT.after(commit_ts)");
    let ts2 = client.put(b"k", b"v2").await?;
    client.put(b"other", b"o").await?;
    assert!(ts2 > ts1);
    for id in [1, 2, 3] {
        let mut kv = c.kv_client(id).await?;
        assert_eq!(raw_get(&mut kv, 1, "k", ts1.prev().as_nanos()).await?, None, "server {id}");
        assert_eq!(raw_get(&mut kv, 1, "k", ts1.as_nanos()).await?.as_deref(), Some("v1"), "server {id}");
        assert_eq!(raw_get(&mut kv, 1, "k", ts2.prev().as_nanos()).await?.as_deref(), Some("v1"), "server {id}");
        assert_eq!(raw_get(&mut kv, 1, "k", ts2.as_nanos()).await?.as_deref(), Some("v2"), "server {id}");
    }
    assert_eq!(client.get(b"k").await?, Some(b"v2".to_vec()));
    let at1 = client.scan(b"", b"", 10, client::ReadMode::At(ts1)).await?;
    assert_eq!(
        at1.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect::<Vec<_>>(),
        vec![(b"k".to_vec(), b"v1".to_vec())]
    );
    // A linearizable read reports the timestamp it read at, at or after
    // the last write.
    let out = client.get_with(b"k", client::ReadMode::Latest).await?;
    assert!(out.read_ts >= ts2);
    c.shutdown().await
}

/// Goal: compare-and-set is atomic: of many concurrent CAS from the same
/// expected value, exactly one wins; a failed CAS writes nothing; the
/// conditions see writes applied just before them in the same batch.
/// Method: 20 concurrent increments by CAS from the same starting value,
/// then a loop of increments until each of 10 workers succeeded 5 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_is_atomic() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let first = client.compare_and_set(b"n", None, Some(b"0")).await?;
    assert!(first.applied);
    let again = client.compare_and_set(b"n", None, Some(b"0")).await?;
    assert!(!again.applied, "a key that exists is not absent");
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.compare_and_set(b"n", Some(b"0"), Some(b"1")).await })
        })
        .collect();
    let mut winners = 0;
    for r in racers {
        winners += r.await??.applied as usize;
    }
    assert_eq!(winners, 1, "CAS from the same value succeeded {winners} times");
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while done < 5 {
                    let current = client.get(b"n").await?.expect("n exists");
                    let next = (String::from_utf8_lossy(&current).parse::<u64>()? + 1).to_string();
                    if client.compare_and_set(b"n", Some(&current), Some(next.as_bytes())).await?.applied {
                        done += 1;
                    }
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    assert_eq!(client.get(b"n").await?, Some(b"51".to_vec()), "lost or doubled increments");
    c.shutdown().await
}

/// Goal (6.824 TestOnePartition3A): a write sent to a leader stranded in a
/// minority does not complete while the partition lasts; the majority
/// serves meanwhile; once healed, the stranded write gets a definite
/// failure and the majority's value stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_leader_write_does_not_complete_until_the_partition_heals() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(5).replication(5)).await?;
    let all = [1, 2, 3, 4, 5];
    let old = c.wait_for_leader_among(1, &all, LEADER_TIMEOUT).await?;
    let others: Vec<u64> = all.into_iter().filter(|&s| s != old).collect();
    let minority = [old, others[0]];
    let majority = &others[1..];
    c.net.partition(&[&minority, majority]);
    let mut kv = c.kv_client(old).await?;
    let stranded = tokio::spawn(async move { raw_put(&mut kv, 1, "p", "minority").await });

    c.wait_for_leader_among(1, majority, LEADER_TIMEOUT).await?;
    wait_until(LEADER_TIMEOUT, || c.progress(old, 1).is_some_and(|p| p.role != Role::Leader)).await?;
    let client = c.client_of(majority).await?;
    client.put(b"p", b"majority").await?;
    assert!(!stranded.is_finished(), "the minority leader answered a write it could not commit");

    c.net.heal();
    let outcome = tokio::time::timeout(Duration::from_secs(30), stranded).await??;
    let status = outcome.expect_err("a write only the minority saw was acknowledged");
    assert_eq!(kind(&status), ErrorKind::Unavailable, "not a definite failure: {status:?}");
    assert_eq!(c.client().await?.get(b"p").await?, Some(b"majority".to_vec()));
    c.shutdown().await
}

/// Goal: versions below the GC watermark are deleted and reads there fail
/// with `SnapshotTooOld`, never with wrong data, on every replica; reads at
/// or above the watermark are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_below_the_gc_watermark_fail_cleanly() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(3);
    options.gc = GcConfig { retention_s: 1, interval_s: 1 };
    let c = TestCluster::start(options).await?;
    c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let ts1 = client.put(b"k", b"v1").await?;
    let ts2 = client.put(b"k", b"v2").await?;
    let v = client.get_with(b"k", client::ReadMode::At(ts1)).await?.value.expect("v1");
    assert_eq!(v.value, b"v1");
    wait_until(Duration::from_secs(30), || {
        [1, 2, 3].iter().all(|&id| c.replica(id, 1).is_some_and(|r| r.gc_watermark() > ts2))
    })
    .await?;
    match client.get_with(b"k", client::ReadMode::At(ts1)).await {
        Err(client::Error::SnapshotTooOld { read_ts, watermark }) => {
            assert_eq!(read_ts, ts1);
            assert!(watermark > ts1);
        }
        other => panic!("read below the watermark returned {other:?}"),
    }
    for id in [1, 2, 3] {
        let mut kv = c.kv_client(id).await?;
        let status = raw_get(&mut kv, 1, "k", ts1.as_nanos()).await.expect_err("below the watermark");
        assert_eq!(kind(&status), ErrorKind::SnapshotTooOld, "server {id}");
        let watermark = c.replica(id, 1).expect("up").gc_watermark();
        assert_eq!(raw_get(&mut kv, 1, "k", watermark.as_nanos()).await?.as_deref(), Some("v2"), "server {id}");
    }
    assert_eq!(client.get(b"k").await?, Some(b"v2".to_vec()));
    c.shutdown().await
}

/// Goal: malformed and oversized requests get clear, typed errors, change
/// nothing, and leave the server serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_change_nothing() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3).split_points(&["m"])).await?;
    let leaders = c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let client = c.client().await?;
    let limits = (spanserver::limits::KEY_BYTES_MAX, spanserver::limits::VALUE_BYTES_MAX);
    let cases: Vec<(&str, client::Result<client::Timestamp>)> = vec![
        ("empty key", client.put(b"", b"v").await),
        ("long key", client.put(&vec![b'k'; limits.0 + 1], b"v").await),
        ("long value", client.put(b"k", &vec![b'v'; limits.1 + 1]).await),
    ];
    for (what, result) in cases {
        assert!(matches!(result, Err(client::Error::InvalidArgument(_))), "{what}: {result:?}");
    }
    let far_future = client::Timestamp::from_nanos(u64::MAX / 2);
    let r = client.get_with(b"k", client::ReadMode::At(far_future)).await;
    assert!(matches!(r, Err(client::Error::InvalidArgument(_))), "future read: {r:?}");
    let r = client.scan(b"z", b"a", 10, client::ReadMode::Latest).await;
    assert!(matches!(r, Err(client::Error::InvalidArgument(_))), "backwards scan: {r:?}");
    let r = client
        .write(&[
            client::Mutation::Put(b"a".to_vec(), b"1".to_vec()),
            client::Mutation::Put(b"z".to_vec(), b"1".to_vec()),
        ])
        .await;
    assert!(matches!(r, Err(client::Error::InvalidArgument(_))), "cross-shard write: {r:?}");

    let leader = leaders[&1];
    let mut kv = c.kv_client(leader).await?;
    let status = raw_put(&mut kv, 99, "a", "v").await.expect_err("unknown shard");
    assert_eq!(kind(&status), ErrorKind::WrongShard);
    let status = raw_put(&mut kv, 1, "z", "v").await.expect_err("key outside the shard");
    assert_eq!(kind(&status), ErrorKind::WrongShard);
    // The refusal says where the key is: this server's descriptors of
    // the shard named and of the shard holding the key.
    let refusal = detail(&status);
    let named: Vec<(u64, u64, u64)> =
        refusal.descriptors.iter().map(|d| (d.shard_id, d.range_ver, d.conf_ver)).collect();
    assert_eq!(refusal.range_ver, 1);
    assert_eq!(named.len(), 2, "{named:?}");
    assert_eq!(named[0], (1, 1, 1));
    let holder = &refusal.descriptors[1];
    assert!(holder.start_key.as_slice() <= b"z".as_slice() && holder.end_key.is_empty(), "{holder:?}");
    let stale = proto::WriteRequest {
        shard_id: 1,
        range_ver: 7,
        mutations: vec![proto::Mutation { key: b"a".to_vec(), value: b"v".to_vec(), delete: false }],
        conditions: vec![],
    };
    let status = kv.write(stale).await.expect_err("stale range_ver");
    assert_eq!(kind(&status), ErrorKind::WrongShard);
    let refusal = detail(&status);
    assert_eq!((refusal.range_ver, refusal.descriptors.len()), (1, 1), "{refusal:?}");
    let too_many = proto::WriteRequest {
        shard_id: 1,
        range_ver: 0,
        mutations: (0..spanserver::limits::WRITE_MUTATIONS_MAX + 1)
            .map(|i| proto::Mutation { key: format!("a{i}").into_bytes(), value: vec![], delete: false })
            .collect(),
        conditions: vec![],
    };
    let status = kv.write(too_many).await.expect_err("too many mutations");
    assert_eq!(kind(&status), ErrorKind::InvalidArgument);

    // Raft traffic without the peer secret, or from another cluster, is
    // refused; garbage is dropped.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", c.addr(leader)))?.connect().await?;
    let batch = |cluster_id: &str, envelopes| proto::RaftBatch {
        cluster_id: cluster_id.into(),
        from_server_id: 2,
        to_server_id: leader,
        envelopes,
    };
    let mut stranger = proto::peer_client::PeerClient::new(channel.clone());
    let status =
        stranger.raft(tokio_stream::iter(vec![batch(&c.spec.cluster_id, vec![])])).await.expect_err("no peer secret");
    assert_eq!(kind(&status), ErrorKind::PermissionDenied);
    let secret = spanserver::auth::PeerSecret::new(&c.spec.peer_secret);
    let mut raft = proto::peer_client::PeerClient::with_interceptor(channel, secret);
    let status = raft.raft(tokio_stream::iter(vec![batch("someone-else", vec![])])).await.expect_err("foreign cluster");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let garbage = vec![proto::RaftEnvelope { shard_id: 1, message: vec![0xff, 0x01, 0x02] }];
    raft.raft(tokio_stream::iter(vec![batch(&c.spec.cluster_id, garbage)])).await?;

    // Nothing above was written, and the cluster still serves.
    client.put(b"a", b"ok").await?;
    let all = client.scan(b"", b"", 100, client::ReadMode::Latest).await?;
    assert_eq!(all.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), vec![b"a".to_vec()]);
    c.shutdown().await
}

/// Goal: a server refuses a data directory that belongs to another cluster,
/// and says why, instead of mixing two clusters' data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_another_cluster_is_refused() -> anyhow::Result<()> {
    init();
    let mut c = TestCluster::start(ClusterOptions::new(3)).await?;
    c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    c.crash(1).await;
    let mut config = c.config_of(1);
    config.cluster.cluster_id = "another-cluster".into();
    config.listen = "127.0.0.1:0".parse()?;
    let clock = Arc::new(truetime::SystemClock::new());
    let err = Server::start(config, clock, TransportKind::Grpc, None).await.err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("belongs to cluster") && text.contains(&c.spec.cluster_id), "{text}");
    c.shutdown().await
}

/// An in-process transport to server `n`'s routes that counts the calls
/// made through them in `calls`.
fn counting_routes(c: &TestCluster, n: u64, calls: &Arc<std::sync::atomic::AtomicU64>) -> client::Transport {
    let counted = calls.clone();
    let counting = tower::ServiceBuilder::new()
        .map_request(move |request| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            request
        })
        .service(c.server(n).routes.clone());
    client::Transport::in_process(counting)
}

/// Goal: with the server's key-value and transaction services given too
/// (`Transport::with_kv`, `with_txn`, as the SQL gateway does), reads and
/// transaction calls of the client's own server skip the encoded path
/// and return what a TCP client gets, plain writes still go through the
/// server's routes, and a read the service refuses is refused alike (a
/// stale shard version is retried, not served). Method: calls through
/// the routes are counted while the client reads, scans and commits a
/// transaction over two shards, and a TCP client reads the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_of_the_clients_own_server_skip_the_encoded_path() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3).split_points(&["m"])).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    c.transfer_leader(1, 1, LEADER_TIMEOUT).await?;
    c.transfer_leader(2, 1, LEADER_TIMEOUT).await?;
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let server = c.server(1);
    let local = counting_routes(&c, 1, &calls).with_kv(server.kv.clone()).with_txn(server.txn.clone());
    let client =
        client::Client::connect_in_process([c.addr(1)], client::ClientConfig::default(), Some((c.addr(1), local)))
            .await?;
    let tcp = client::Client::connect_with([c.addr(2)], c.operator_config()).await?;
    for (k, v) in [(&b"a"[..], &b"1"[..]), (b"b", b"2"), (b"c", b"3")] {
        client.put(k, v).await?;
    }
    let writes = calls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(writes >= 3, "writes did not go through the routes: {writes} calls");
    for key in [&b"a"[..], b"b", b"c", b"d"] {
        assert_eq!(client.get(key).await?, tcp.get(key).await?, "{key:?}");
    }
    let scanned = client.scan(b"a", b"m", 10, client::ReadMode::Latest).await?;
    let keys: Vec<_> = scanned.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
    assert_eq!(
        keys,
        vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec()), (b"c".to_vec(), b"3".to_vec())]
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), writes, "a read went through the encoded path");
    // A transaction over both shards: locking reads, a prepare and a commit.
    let mut txn = client.begin();
    let a = txn.get(b"a").await?.unwrap_or_default();
    txn.put(b"a", &[a, b"+".to_vec()].concat());
    txn.put(b"z", b"26");
    let commit_ts = txn.commit().await?;
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        writes,
        "a transaction call went through the encoded path"
    );
    let read = tcp.get_with(b"a", client::ReadMode::Latest).await?;
    assert_eq!(read.value.map(|v| v.value).as_deref(), Some(&b"1+"[..]));
    assert!(read.read_ts >= commit_ts);
    assert_eq!(tcp.get(b"z").await?.as_deref(), Some(&b"26"[..]));
    // The shard splits: the client's cached version is stale, the typed
    // read is refused and retried with the new one, as over TCP.
    tcp.split_at(b"b").await?;
    assert_eq!(client.get(b"c").await?.as_deref(), Some(&b"3"[..]));
    c.shutdown().await
}

/// Goal: a client in a server's process (the SQL gateway's) calls that
/// server's services directly (`client::Transport::in_process`), with
/// the results a TCP client gets, and goes on through the other servers
/// when that server stops. Method: two shards, one led by server 1 (the
/// client's own) and one by server 2; a transaction over both and reads
/// of what it wrote; the direct calls are counted; then server 1
/// crashes and the client writes and reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_in_a_servers_process_reaches_it_without_tcp() -> anyhow::Result<()> {
    init();
    let mut c = TestCluster::start(ClusterOptions::new(3).split_points(&["m"])).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    c.transfer_leader(1, 1, LEADER_TIMEOUT).await?;
    c.transfer_leader(2, 2, LEADER_TIMEOUT).await?;
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let in_process = Some((c.addr(1), counting_routes(&c, 1, &calls)));
    let client = client::Client::connect_in_process([c.addr(1)], client::ClientConfig::default(), in_process).await?;
    let mut txn = client.begin();
    assert_eq!(txn.get(b"a").await?, None);
    txn.put(b"a", b"1");
    txn.put(b"z", b"26");
    let commit_ts = txn.commit().await?;
    let out = client.get_with(b"a", client::ReadMode::Latest).await?;
    assert_eq!(out.value.map(|v| v.value).as_deref(), Some(&b"1"[..]));
    assert!(out.read_ts >= commit_ts, "a linearizable read at {} missed the commit at {commit_ts}", out.read_ts);
    assert_eq!(client.get(b"z").await?.as_deref(), Some(&b"26"[..]));
    assert!(calls.load(std::sync::atomic::Ordering::Relaxed) >= 3, "the client hardly called its own server directly");

    c.crash(1).await;
    c.wait_for_leader_among(1, &[2, 3], LEADER_TIMEOUT).await?;
    client.put(b"a", b"2").await?;
    assert_eq!(client.get(b"a").await?.as_deref(), Some(&b"2"[..]));
    assert_eq!(client.get(b"z").await?.as_deref(), Some(&b"26"[..]));
    c.shutdown().await
}
