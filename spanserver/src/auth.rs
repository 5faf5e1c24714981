//! Who may ask what: the cluster's peer secret.
//!
//! Clients are untrusted (DESIGN.md §6). Three things only servers (and
//! their operators, who hold the cluster description) may do:
//!
//! - **Call the `Peer` service** (Raft traffic, the commit protocol's
//!   `Resolve` and `Decide`, clock samples). A forged `Decide` could split a
//!   transaction or, before the checks of `txn::shard`, crash every
//!   replica; a forged `Resolve` could abort transactions. Every peer call
//!   carries the secret in the metadata key [`PEER_SECRET_METADATA`]; the
//!   service refuses calls without it (`PermissionDenied`).
//! - **Change the cluster through the `Admin` service**: `SplitShard`,
//!   `ChangeReplicas`, `SetServerDraining`, `TransferLeader`,
//!   `AllocateIds` and `SetClock` carry the secret the same way. Any client
//!   could otherwise split shards without end, take a shard's replicas
//!   down to one, drain servers or move leaderships around (the placement
//!   driver and the split queue, inside the servers, make these calls;
//!   `spandb admin --cluster FILE`, for operators). What only describes the
//!   cluster (`ClusterInfo`, which clients route by, `ServerStatus`,
//!   `GetClock`, `DrainingServers`) stays open.
//! - **Issue prepare timestamps.** Commit is client-driven: the client
//!   relays each participant's prepare timestamp to the coordinator, which
//!   must pick a commit timestamp at or above all of them. A client that
//!   relayed a smaller one would make the coordinator commit below a
//!   participant's prepare timestamp (which the participant must then
//!   refuse: a split transaction); a larger one would push the
//!   coordinator's timestamps into the future. So a participant *seals*
//!   what it issued, an HMAC-SHA256 under the secret over
//!   `(transaction, shard, prepare_ts)`, and the coordinator accepts a
//!   prepare timestamp only with a valid seal.
//!
//! ```text
//!   participant ──Prepare──> prepare_ts=1005, seal=HMAC(secret, t7|shard2|1005)
//!   client relays (shard2, 1005, seal) ──Commit──> coordinator: check the seal
//! ```
//!
//! The secret lives in the cluster description (`peer_secret`), which only
//! servers read.
//!
//! # Caveats
//!
//! Without TLS (a later issue) the secret crosses the network in the clear:
//! this keeps clients on the same network from making peer calls by
//! accident or by design, not an eavesdropper who can read peer traffic.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use meta::{ShardId, TxnId};
use sha2::Sha256;
use tonic::metadata::MetadataValue;
use truetime::Timestamp;

use crate::error::Error;

pub use meta::cluster::PEER_SECRET_METADATA;

/// A fresh random peer secret (64 hex characters) for a new cluster
/// description (`meta::ClusterSpec::peer_secret`).
pub fn new_peer_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Domain separation: the seal's key is derived from the secret, so the
/// value sent in the clear on peer calls is not the seal key itself.
const SEAL_KEY_LABEL: &[u8] = b"spandb prepare-timestamp seal v1";

/// The cluster's peer secret, and what it proves.
#[derive(Clone)]
pub struct PeerSecret {
    secret: Arc<str>,
    seal_key: Arc<[u8; 32]>,
}

impl std::fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerSecret(..)")
    }
}

impl PeerSecret {
    pub fn new(secret: &str) -> PeerSecret {
        let seal_key = mac(secret.as_bytes(), &[SEAL_KEY_LABEL]);
        PeerSecret { secret: secret.into(), seal_key: Arc::new(seal_key) }
    }

    /// Checks a peer call's metadata (constant time in the secret).
    pub fn check(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Error> {
        let presented = metadata.get(PEER_SECRET_METADATA).map(|v| v.as_bytes()).unwrap_or_default();
        if constant_time_eq(presented, self.secret.as_bytes()) {
            Ok(())
        } else {
            Err(Error::PermissionDenied("a peer-only call without the cluster's peer secret".into()))
        }
    }

    /// Checks the metadata of `what`, an admin call that changes the
    /// cluster: the same secret as [`PeerSecret::check`], refused with
    /// a message that says where an operator finds it.
    pub fn check_admin(&self, metadata: &tonic::metadata::MetadataMap, what: &str) -> Result<(), Error> {
        self.check(metadata).map_err(|_| {
            Error::PermissionDenied(format!(
                "{what} changes the cluster, which needs the cluster's peer secret: pass the cluster \
                 description the servers run with (`spandb admin --cluster FILE`)"
            ))
        })
    }

    /// Adds the secret to an outgoing peer call.
    pub fn attach<T>(&self, request: &mut tonic::Request<T>) {
        if let Ok(value) = MetadataValue::try_from(&*self.secret) {
            request.metadata_mut().insert(PEER_SECRET_METADATA, value);
        }
    }

    /// The participant's seal on a prepare timestamp it issued.
    pub fn seal(&self, txn: TxnId, shard: ShardId, prepare_ts: Timestamp) -> Vec<u8> {
        mac(&*self.seal_key, &seal_parts(txn, shard, prepare_ts)).to_vec()
    }

    /// Whether `seal` is this cluster's seal on `(txn, shard, prepare_ts)`.
    pub fn check_seal(&self, txn: TxnId, shard: ShardId, prepare_ts: Timestamp, seal: &[u8]) -> bool {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&*self.seal_key).expect("HMAC takes any key length");
        for part in seal_parts(txn, shard, prepare_ts) {
            m.update(&part);
        }
        m.verify_slice(seal).is_ok()
    }
}

/// Adds the peer secret to every request of a peer client.
impl tonic::service::Interceptor for PeerSecret {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        self.attach(&mut request);
        Ok(request)
    }
}

fn seal_parts(txn: TxnId, shard: ShardId, prepare_ts: Timestamp) -> [Vec<u8>; 3] {
    [txn.0.to_be_bytes().to_vec(), shard.0.to_be_bytes().to_vec(), prepare_ts.as_nanos().to_be_bytes().to_vec()]
}

fn mac<P: AsRef<[u8]>>(key: &[u8], parts: &[P]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p.as_ref());
    }
    m.finalize().into_bytes().into()
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a seal vouches for exactly the (transaction, shard, timestamp)
    /// it was made for, under exactly this secret.
    #[test]
    fn seals_bind_transaction_shard_and_timestamp() {
        let secret = PeerSecret::new("0123456789abcdef0123456789abcdef");
        let (t, s, ts) = (TxnId(7), ShardId(2), Timestamp::from_nanos(1005));
        let seal = secret.seal(t, s, ts);
        assert!(secret.check_seal(t, s, ts, &seal));
        assert!(!secret.check_seal(TxnId(8), s, ts, &seal), "another transaction");
        assert!(!secret.check_seal(t, ShardId(3), ts, &seal), "another shard");
        assert!(!secret.check_seal(t, s, ts.prev(), &seal), "a lower timestamp");
        assert!(!secret.check_seal(t, s, ts, &seal[..31]), "a truncated seal");
        assert!(!secret.check_seal(t, s, ts, b""), "no seal");
        let other = PeerSecret::new("fedcba9876543210fedcba9876543210");
        assert!(!other.check_seal(t, s, ts, &seal), "another cluster's secret");
    }

    /// Goal: peer calls pass only with the exact secret.
    #[test]
    fn peer_calls_need_the_secret() {
        let secret = PeerSecret::new("0123456789abcdef0123456789abcdef");
        let mut request = tonic::Request::new(());
        assert!(matches!(secret.check(request.metadata()), Err(Error::PermissionDenied(_))));
        secret.attach(&mut request);
        secret.check(request.metadata()).unwrap();
        let other = PeerSecret::new("0123456789abcdef0123456789abcdeX");
        assert!(other.check(request.metadata()).is_err());
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"ab"));
    }
}
