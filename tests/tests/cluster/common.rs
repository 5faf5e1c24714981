//! Helpers shared by the scenarios.

use std::time::Duration;

use prost::Message as _;
use proto::kv_client::KvClient;
use tonic::transport::Channel;

/// Generous: elections on a loaded 2-core machine can take a while.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// The error kind a server put in a status (Unspecified if none).
/// The structured detail of an error status (default if it has none).
pub fn detail(status: &tonic::Status) -> proto::ErrorDetail {
    proto::ErrorDetail::decode(status.details()).unwrap_or_default()
}

pub fn kind(status: &tonic::Status) -> proto::ErrorKind {
    proto::ErrorDetail::decode(status.details())
        .ok()
        .and_then(|d| proto::ErrorKind::try_from(d.kind).ok())
        .unwrap_or(proto::ErrorKind::Unspecified)
}

/// One put, straight to one server, no retries.
pub async fn raw_put(kv: &mut KvClient<Channel>, shard: u64, key: &str, value: &str) -> Result<u64, tonic::Status> {
    let request = proto::WriteRequest {
        shard_id: shard,
        range_ver: 0,
        mutations: vec![proto::Mutation { key: key.into(), value: value.into(), delete: false }],
        conditions: vec![],
    };
    Ok(kv.write(request).await?.into_inner().commit_ts)
}

/// One get, straight to one server: linearizable if `read_ts == 0`.
pub async fn raw_get(
    kv: &mut KvClient<Channel>,
    shard: u64,
    key: &str,
    read_ts: u64,
) -> Result<Option<String>, tonic::Status> {
    let request = proto::GetRequest { shard_id: shard, range_ver: 0, key: key.into(), read_ts, options: None };
    let r = kv.get(request).await?.into_inner();
    Ok(r.found.then(|| String::from_utf8(r.value).expect("utf-8 value")))
}

pub fn init() {
    tests::init_logging();
}
