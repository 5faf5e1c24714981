//! Requests from clients are untrusted: forged peer calls, forged or
//! absurd timestamps and operator tools that are off are refused with
//! typed errors, and none of them can crash, wedge or split anything.
//! (Each scenario is one the review reproduced against a running cluster.)

use std::time::Duration;

use spanserver::auth::PeerSecret;
use tests::{ClusterOptions, TestCluster};
use tonic::transport::Channel;

use crate::common::{init, kind, LEADER_TIMEOUT};

type TxnClient = proto::txn_client::TxnClient<Channel>;

async fn txn_client(c: &TestCluster, id: u64) -> anyhow::Result<TxnClient> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", c.addr(id)))?.connect().await?;
    Ok(TxnClient::new(channel))
}

async fn channel(c: &TestCluster, id: u64) -> anyhow::Result<Channel> {
    Ok(tonic::transport::Endpoint::from_shared(format!("http://{}", c.addr(id)))?.connect().await?)
}

fn meta(id: u128) -> proto::TxnMeta {
    proto::TxnMeta { txn_id: id.to_be_bytes().to_vec(), priority_ts: 5, priority_txn: vec![], deadline: None }
}

fn put(key: &str, value: &str) -> proto::Mutation {
    proto::Mutation { key: key.into(), value: value.into(), delete: false }
}

/// Prepares transaction `id` writing `key` on shard 2 (coordinator shard
/// 1), straight at shard 2's leader; returns the answer (prepare
/// timestamp and seal).
async fn prepare_on_2(c: &TestCluster, id: u128, key: &str) -> anyhow::Result<proto::TxnPrepareResponse> {
    let leader = c.wait_for_leader_among(2, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let request = proto::TxnPrepareRequest {
        txn: Some(meta(id)),
        shard_id: 2,
        range_ver: 0,
        coordinator_shard_id: 1,
        writes: vec![put(key, "x")],
        reads: vec![],
        lease: None,
        conditions: Vec::new(),
    };
    Ok(txn_client(c, leader).await?.prepare(request).await?.into_inner())
}

/// Commits transaction `id` at shard 1's leader naming `participants`.
async fn commit_on_1(
    c: &TestCluster,
    id: u128,
    key: &str,
    participants: Vec<proto::Participant>,
) -> Result<proto::TxnCommitResponse, tonic::Status> {
    let leader = c.leader(1).expect("shard 1 has a leader");
    let request = proto::TxnCommitRequest {
        txn: Some(meta(id)),
        shard_id: 1,
        range_ver: 0,
        writes: vec![put(key, "x")],
        reads: vec![],
        participants,
        lease: None,
        conditions: vec![],
    };
    let mut client = txn_client(c, leader).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    Ok(client.commit(request).await?.into_inner())
}

/// Goal: server-to-server calls are not for clients. `Resolve`, `Decide`,
/// `ReadClock` and Raft traffic without the cluster's peer secret are
/// refused (PermissionDenied), and change nothing: a forged
/// `Decide{Aborted}` cannot drop a prepared transaction's writes, nor a
/// forged `Decide{Committed}` below its prepare timestamp crash the
/// replicas (the review saw that one crash-loop a server for good).
/// Even a peer (with the secret) gets InvalidArgument for the low
/// timestamp, and the cluster keeps serving, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_calls_need_the_peer_secret_and_are_checked() -> anyhow::Result<()> {
    init();
    let mut c = TestCluster::start(ClusterOptions::new(3).split_points(&["m"])).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let prepared = prepare_on_2(&c, 21, "zebra").await?;
    let leader2 = c.leader(2).expect("shard 2 has a leader");

    let decide = |outcome: proto::TxnOutcome, commit_ts: u64| proto::TxnDecideRequest {
        txn_id: 21u128.to_be_bytes().to_vec(),
        shard_id: 2,
        outcome: outcome as i32,
        commit_ts,
    };
    let mut stranger = proto::peer_client::PeerClient::new(channel(&c, leader2).await?);
    for status in [
        stranger.decide(decide(proto::TxnOutcome::Aborted, 0)).await.expect_err("forged abort"),
        stranger.decide(decide(proto::TxnOutcome::Committed, 1)).await.expect_err("forged low commit"),
        stranger
            .resolve(proto::TxnResolveRequest {
                txn_id: 21u128.to_be_bytes().to_vec(),
                shard_id: 1,
                participant_shard_id: 2,
                patient: false,
            })
            .await
            .expect_err("forged resolve"),
        stranger.read_clock(proto::ReadClockRequest {}).await.expect_err("clock sample"),
    ] {
        assert_eq!(kind(&status), proto::ErrorKind::PermissionDenied, "{status:?}");
    }

    // A peer's decision below the prepare timestamp, or from the far
    // future, is refused before anything is proposed.
    let secret = PeerSecret::new(&c.spec.peer_secret);
    let mut peer = proto::peer_client::PeerClient::with_interceptor(channel(&c, leader2).await?, secret);
    for commit_ts in [prepared.prepare_ts - 1, u64::MAX] {
        let status = peer.decide(decide(proto::TxnOutcome::Committed, commit_ts)).await.expect_err("refused");
        assert_eq!(kind(&status), proto::ErrorKind::InvalidArgument, "commit_ts {commit_ts}: {status:?}");
    }

    // Nothing broke: the coordinator commits with the real prepare
    // timestamp, every server restarts, and both halves are there.
    let participant = proto::Participant { shard_id: 2, prepare_ts: prepared.prepare_ts, seal: prepared.seal };
    let committed = commit_on_1(&c, 21, "apple", vec![participant]).await?;
    assert!(committed.commit_ts >= prepared.prepare_ts);
    let client = c.client().await?;
    for id in [1, 2, 3] {
        c.crash(id).await;
        c.restart(id).await?;
    }
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    assert_eq!(client.get(b"apple").await?, Some(b"x".to_vec()));
    assert_eq!(client.get(b"zebra").await?, Some(b"x".to_vec()), "the participant applied the commit");
    c.shutdown().await
}

/// Goal: a coordinator accepts only prepare timestamps their participant
/// issued (sealed): a client relaying a lower one (which would commit
/// below the participant's prepare timestamp), `u64::MAX` (which wedged
/// the shard's timestamps) or ten years ahead (which made every later
/// write commit-wait ten years) gets InvalidArgument, and the shard keeps
/// taking writes at sane timestamps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_prepare_timestamps_need_their_participants_seal() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3).split_points(&["m"])).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let prepared = prepare_on_2(&c, 31, "zebra").await?;
    let ten_years_ns = 10 * 365 * 24 * 3600 * 1_000_000_000u64;
    let forged = [
        (prepared.prepare_ts - 1, prepared.seal.clone()),
        (u64::MAX, prepared.seal.clone()),
        (prepared.prepare_ts + ten_years_ns, vec![]),
        (prepared.prepare_ts, b"not a seal".to_vec()),
    ];
    for (prepare_ts, seal) in forged {
        let participant = proto::Participant { shard_id: 2, prepare_ts, seal };
        let status = commit_on_1(&c, 31, "apple", vec![participant]).await.expect_err("forged prepare timestamp");
        assert_eq!(kind(&status), proto::ErrorKind::InvalidArgument, "prepare_ts {prepare_ts}: {status:?}");
    }
    let client = c.client().await?;
    let before = c.server(1).truetime.now().latest;
    let ts = client.put(b"after", b"1").await?;
    assert!(ts.duration_since(before) < Duration::from_secs(5), "writes commit at sane timestamps: {ts}");
    c.shutdown().await
}

/// Goal: a prepare naming a coordinator shard no server hosts is refused
/// (InvalidArgument), and nothing is prepared: its transaction would ask
/// that shard forever, holding its locks. (A coordinator this server does
/// not host is looked up on the others: `moves`'s
/// `a_participant_reaches_a_coordinator_on_servers_it_shares_nothing_with`.)
/// Method: prepare on shard 2 naming shard 999; then a plain write of the
/// key goes through at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepare_naming_a_coordinator_no_server_hosts_is_refused() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3).split_points(&["m"])).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let leader = c.wait_for_leader_among(2, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let request = proto::TxnPrepareRequest {
        txn: Some(meta(51)),
        shard_id: 2,
        range_ver: 0,
        coordinator_shard_id: 999,
        writes: vec![put("zebra", "x")],
        reads: vec![],
        lease: None,
        conditions: Vec::new(),
    };
    let status = txn_client(&c, leader).await?.prepare(request).await.expect_err("no shard 999");
    assert_eq!(kind(&status), proto::ErrorKind::InvalidArgument, "{status:?}");
    assert!(status.message().contains("no server hosts shard999"), "{status:?}");
    let client = c.client().await?;
    client.put(b"zebra", b"free").await?;
    assert_eq!(client.get(b"zebra").await?, Some(b"free".to_vec()));
    c.shutdown().await
}

/// Goal: only the coordinator decides a prepared transaction. A client's
/// `Abort` at a prepared participant of a transaction its coordinator
/// committed (the review's forged `Decide{Aborted}` did this) makes the
/// participant ask the coordinator, and it applies the commit: both
/// writes visible, never one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_abort_cannot_split_a_committed_transaction() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3).split_points(&["m"])).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let prepared = prepare_on_2(&c, 41, "zebra").await?;
    let participant = proto::Participant { shard_id: 2, prepare_ts: prepared.prepare_ts, seal: prepared.seal };
    commit_on_1(&c, 41, "apple", vec![participant]).await?;
    let leader2 = c.leader(2).expect("shard 2 has a leader");
    txn_client(&c, leader2)
        .await?
        .abort(proto::TxnAbortRequest { txn_id: 41u128.to_be_bytes().to_vec(), shard_id: 2 })
        .await?;
    let client = c.client().await?;
    assert_eq!(client.get(b"apple").await?, Some(b"x".to_vec()));
    assert_eq!(client.get(b"zebra").await?, Some(b"x".to_vec()), "the committed transaction's other half");
    c.shutdown().await
}

/// Goal: the admin calls that change the cluster are not for clients.
/// `SplitShard`, `ChangeReplicas`, `SetServerDraining`, `TransferLeader`,
/// `AllocateIds` and `SetClock` without the peer secret, or with another
/// one, are refused (PermissionDenied) and change nothing: before, any
/// client could take a shard's replicas down to one, split without end or
/// drain servers. What only describes the cluster stays open, and the
/// same changes go through with the secret (an operator's client).
/// Method: 3 servers; each change sent raw to shard 1's leader, without
/// a secret and with a forged one; the shard map, the draining set and
/// the clocks are as before; then a split with the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_need_the_peer_secret() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(3)).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    let leader = c.wait_for_leader_among(1, &[1, 2, 3], LEADER_TIMEOUT).await?;
    let other = [1, 2, 3].into_iter().find(|&s| s != leader).expect("another server");
    let client = c.client().await?;
    let (before, _) = client.shard_descriptor(meta::ShardId(1)).await?;
    let shards_before = client.cluster_info().await?.shards.len();

    let forged = PeerSecret::new("not the cluster's secret, but long enough");
    let mut stranger = proto::admin_client::AdminClient::new(channel(&c, leader).await?);
    let mut impostor = proto::admin_client::AdminClient::with_interceptor(channel(&c, leader).await?, forged);
    // Requests the leader would carry out from a holder of the secret.
    let demote = proto::ReplicaChange { kind: proto::replica_change::Kind::Demote as i32, server_id: other };
    let (split, change) = (
        proto::SplitShardRequest { shard_id: 1, range_ver: before.range_ver, split_key: b"c".to_vec() },
        proto::ChangeReplicasRequest { shard_id: 1, conf_ver: before.conf_ver, changes: vec![demote] },
    );
    let drain =
        proto::SetServerDrainingRequest { shard_id: 1, range_ver: before.range_ver, server_id: other, draining: true };
    let transfer = proto::TransferLeaderRequest { shard_id: 1, to_server_id: other, only_if_idle: false, drain_ms: 0 };
    let allocate = proto::AllocateIdsRequest { shard_id: 1, range_ver: 0, count: 5 };
    let clock = proto::SetClockRequest { offset_ns: 1_000_000, drift_ppm: 0 };
    macro_rules! refused {
        ($($method:ident($request:expr)),* $(,)?) => {$(
            let status = stranger.$method($request.clone()).await.expect_err(stringify!($method));
            assert_eq!(kind(&status), proto::ErrorKind::PermissionDenied, "{}: {status:?}", stringify!($method));
            assert!(status.message().contains("peer secret"), "{status:?}");
            let status = impostor.$method($request.clone()).await.expect_err(stringify!($method));
            assert_eq!(kind(&status), proto::ErrorKind::PermissionDenied, "{}, forged: {status:?}", stringify!($method));
        )*};
    }
    refused!(
        split_shard(split),
        change_replicas(change),
        set_server_draining(drain),
        transfer_leader(transfer),
        allocate_ids(allocate),
        set_clock(clock),
    );

    // Nothing changed, and what describes the cluster answers anyone.
    let (after, _) = client.shard_descriptor(meta::ShardId(1)).await?;
    assert_eq!(after, before, "shard 1's range and replicas");
    assert_eq!(stranger.cluster_info(proto::ClusterInfoRequest {}).await?.into_inner().shards.len(), shards_before);
    assert!(!stranger.server_status(proto::ServerStatusRequest {}).await?.into_inner().replicas.is_empty());
    assert!(client.draining_servers().await?.is_empty(), "no server draining");
    for id in [1, 2, 3] {
        let mut admin = proto::admin_client::AdminClient::new(channel(&c, id).await?);
        let clock = admin.get_clock(proto::GetClockRequest {}).await?.into_inner();
        assert_eq!(clock.offset_ns, 0, "server {id}'s clock");
    }

    // With the secret (the test cluster's client holds it): the same changes go through.
    // The answering server's shard map can trail the split by an apply.
    client.split_at(b"c").await?;
    tests::wait::wait_for(LEADER_TIMEOUT, || async {
        let shards = client.cluster_info().await.ok()?.shards.len();
        (shards == shards_before + 1).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("split: {e}"))?;
    c.shutdown().await
}

/// Goal: the admin API's operator tool (clock offsets) is off unless the
/// server is started with it; when on, absurd clock adjustments (an hour,
/// `i64::MIN`, which stopped a clock) are refused. (Leader transfers are
/// always served to holders of the peer secret: the placement driver
/// uses them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_tools_are_off_unless_enabled_and_bounded() -> anyhow::Result<()> {
    init();
    let mut options = ClusterOptions::new(1);
    options.admin_tools = false;
    let off = TestCluster::start(options).await?;
    off.wait_for_leaders(LEADER_TIMEOUT).await?;
    let mut admin = proto::admin_client::AdminClient::new(channel(&off, 1).await?);
    let status = admin.set_clock(proto::SetClockRequest { offset_ns: 1, drift_ppm: 0 }).await.expect_err("off");
    assert_eq!(kind(&status), proto::ErrorKind::PermissionDenied);
    off.shutdown().await?;

    let on = TestCluster::start(ClusterOptions::new(1)).await?;
    let mut admin = on.admin_client(1).await?;
    for offset_ns in [3_600_000_000_000, i64::MIN, i64::MAX] {
        let status = admin.set_clock(proto::SetClockRequest { offset_ns, drift_ppm: 0 }).await.expect_err("absurd");
        assert_eq!(kind(&status), proto::ErrorKind::InvalidArgument, "offset {offset_ns}");
    }
    let fine = admin.set_clock(proto::SetClockRequest { offset_ns: 1_000_000, drift_ppm: 0 }).await?.into_inner();
    assert_eq!(fine.offset_ns, 1_000_000);
    on.shutdown().await
}

/// Goal: a request body that does not decode is refused with a typed
/// error (InvalidArgument with the structured detail), not INTERNAL
/// without one, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_typed_errors() -> anyhow::Result<()> {
    init();
    let c = TestCluster::start(ClusterOptions::new(1)).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    // A GetRequest whose key field carries a varint: a wire-type mismatch.
    let garbage = vec![0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    let status = raw_call(&channel(&c, 1).await?, "/spandb.Kv/Get", garbage).await.expect_err("undecodable");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(kind(&status), proto::ErrorKind::InvalidArgument, "{status:?}");
    let client = c.client().await?;
    client.put(b"still", b"serving").await?;
    c.shutdown().await
}

/// Sends `body` as the (already encoded) request message of `path`.
pub async fn raw_call(channel: &Channel, path: &'static str, body: Vec<u8>) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let response: tonic::Response<Vec<u8>> = grpc.unary(tonic::Request::new(body), path, RawCodec).await?;
    drop(response);
    Ok(())
}

/// Bytes in, bytes out: for sending what a real client never would.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; bytes::Buf::remaining(src)];
        bytes::Buf::copy_to_slice(src, &mut out);
        Ok(Some(out))
    }
}
