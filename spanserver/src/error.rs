//! The spanserver's one error type, and its mapping to gRPC.
//!
//! Variants are grouped by what the caller should do. Across gRPC each
//! becomes a `tonic::Status` whose details carry a `proto::ErrorDetail`
//! (kind, leader hint, range_ver and descriptors, watermark): clients decide on that structure,
//! never on message text. [`Error::to_status`] is the one place that maps.

use prost::Message as _;
use truetime::Timestamp;

use meta::{ServerId, ShardDescriptor, ShardId};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // --- Go elsewhere: nothing was applied. ---
    /// This replica is not the leader; `leader` is the one it knows of.
    #[error("not leader for shard {shard_id}{}", leader_text(.leader))]
    NotLeader { shard_id: ShardId, leader: Option<(ServerId, String)> },

    /// The shard is not here, does not hold the key, or the request was
    /// routed by another range (`range_ver`); carries this server's
    /// descriptors of the shard and of the shard holding the key.
    #[error("wrong shard {shard_id}: {reason}")]
    WrongShard { shard_id: ShardId, descriptors: Vec<ShardDescriptor>, reason: String },

    // --- Retry later: nothing was applied. ---
    #[error("unavailable: {0}")]
    Unavailable(String),

    // --- Run the transaction again (keeping its priority). ---
    /// The transaction was aborted: wounded by an older one, its locks lost
    /// with a leader, its client silent, ...
    #[error("transaction aborted: {0}")]
    Aborted(String),

    // --- Do not retry blindly: the write may or may not be applied. ---
    #[error("outcome unknown: {0}")]
    Ambiguous(String),

    // --- Fix the input. ---
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A read that must not wait (SQL's `NOWAIT`) found its lock taken;
    /// nothing was locked, and the transaction may go on.
    #[error("lock not available: {0}")]
    LockNotAvailable(String),

    /// Not for this caller: a peer-only request without the peer secret,
    /// or an operator tool that is off.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    #[error("snapshot too old: read at {read_ts} is below the garbage-collection watermark {watermark}")]
    SnapshotTooOld { read_ts: Timestamp, watermark: Timestamp },

    // --- Operator attention. ---
    /// The local storage failed a read. (A failed write stops the process:
    /// replicas must not diverge.)
    #[error("storage: {0}")]
    Storage(String),
}

fn leader_text(leader: &Option<(ServerId, String)>) -> String {
    match leader {
        Some((id, addr)) => format!("; leader is server {id} at {addr}"),
        None => "; leader unknown".to_string(),
    }
}

impl Error {
    /// May the same request succeed if sent again (possibly elsewhere)?
    pub fn is_retryable(&self) -> bool {
        match self {
            // Nothing applied; the leader may be elsewhere.
            Error::NotLeader { .. } => true,
            // Nothing applied; refresh the shard map first.
            Error::WrongShard { .. } => true,
            // Nothing applied; transient.
            Error::Unavailable(_) => true,
            // The transaction's writes were not applied; run it again.
            Error::Aborted(_) => true,
            // Maybe applied: retrying a write could apply it twice.
            Error::Ambiguous(_) => false,
            // The same input fails the same way.
            Error::InvalidArgument(_) => false,
            // Asking again does not grant permission.
            Error::PermissionDenied(_) => false,
            // The caller asked not to wait: it decides what next.
            Error::LockNotAvailable(_) => false,
            // Older data is gone for good.
            Error::SnapshotTooOld { .. } => false,
            // A broken disk does not heal by asking again.
            Error::Storage(_) => false,
        }
    }

    pub fn to_status(&self) -> tonic::Status {
        use proto::ErrorKind;
        // The detail carries the bare reason: the client names the kind
        // itself (no "transaction aborted: transaction aborted: ...").
        let message = match self {
            Error::Unavailable(m)
            | Error::Aborted(m)
            | Error::Ambiguous(m)
            | Error::InvalidArgument(m)
            | Error::PermissionDenied(m)
            | Error::LockNotAvailable(m)
            | Error::Storage(m) => m.clone(),
            other => other.to_string(),
        };
        let mut detail = proto::ErrorDetail { message, ..Default::default() };
        let code = match self {
            Error::NotLeader { leader, .. } => {
                detail.kind = ErrorKind::NotLeader as i32;
                if let Some((id, addr)) = leader {
                    detail.leader_server_id = id.0;
                    detail.leader_addr = addr.clone();
                }
                tonic::Code::FailedPrecondition
            }
            Error::WrongShard { shard_id, descriptors, .. } => {
                detail.kind = ErrorKind::WrongShard as i32;
                let own = descriptors.iter().find(|d| d.shard_id == *shard_id);
                detail.range_ver = own.map_or(0, |d| d.epoch.range_ver.0);
                detail.descriptors = descriptors.iter().map(crate::wire::descriptor_to_proto).collect();
                tonic::Code::FailedPrecondition
            }
            Error::Unavailable(_) => {
                detail.kind = ErrorKind::Unavailable as i32;
                tonic::Code::Unavailable
            }
            Error::Ambiguous(_) => {
                detail.kind = ErrorKind::Ambiguous as i32;
                tonic::Code::Unknown
            }
            Error::Aborted(_) => {
                detail.kind = ErrorKind::Aborted as i32;
                tonic::Code::Aborted
            }
            Error::InvalidArgument(_) => {
                detail.kind = ErrorKind::InvalidArgument as i32;
                tonic::Code::InvalidArgument
            }
            Error::PermissionDenied(_) => {
                detail.kind = ErrorKind::PermissionDenied as i32;
                tonic::Code::PermissionDenied
            }
            Error::LockNotAvailable(_) => {
                detail.kind = ErrorKind::LockNotAvailable as i32;
                tonic::Code::FailedPrecondition
            }
            Error::SnapshotTooOld { watermark, .. } => {
                detail.kind = ErrorKind::SnapshotTooOld as i32;
                detail.gc_watermark = watermark.as_nanos();
                tonic::Code::OutOfRange
            }
            Error::Storage(_) => {
                detail.kind = ErrorKind::Unavailable as i32;
                tonic::Code::Internal
            }
        };
        tonic::Status::with_details(code, self.to_string(), detail.encode_to_vec().into())
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        e.to_status()
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(e.to_string())
    }
}
