//! The client's error type, and how server statuses are classified.
//!
//! Servers put a `proto::ErrorDetail` in every error status; the client
//! decides on its `kind`, never on message text. A status without a detail
//! came from the transport (connection lost, deadline hit); whether a write
//! it interrupted was applied is then unknown, unless the connection was
//! refused outright (the request never left).

use prost::Message as _;
use truetime::Timestamp;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A write may or may not have been applied: the client lost track of
    /// it after sending. It is never re-sent automatically.
    #[error("outcome unknown (the write may or may not have been applied): {0}")]
    Ambiguous(String),

    /// The cluster could not serve the request before the deadline; nothing
    /// was applied.
    #[error("unavailable: {0}")]
    Unavailable(String),

    /// The request is invalid (too large, empty key, bad range, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The read timestamp is below the garbage-collection watermark.
    #[error("snapshot too old: read at {read_ts} is below the watermark {watermark}")]
    SnapshotTooOld { read_ts: Timestamp, watermark: Timestamp },

    /// None of the given addresses answered.
    #[error("cannot reach the cluster: {0}")]
    Connect(String),

    /// The transaction was aborted (wounded by an older one, its locks
    /// lost with a shard leader, ...): nothing of it was applied. Run it
    /// again; [`crate::Client::run`] does, keeping its priority.
    #[error("transaction aborted: {0}")]
    Aborted(String),

    /// The server refuses this caller the request (an operator tool that
    /// is off, a peer-only request).
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// A read that was told not to wait ([`crate::Txn::set_no_wait`])
    /// found its lock taken by another transaction. Nothing was locked;
    /// the transaction may go on.
    #[error("lock not available: {0}")]
    LockNotAvailable(String),

    /// A transaction's conditional write ([`crate::Txn::put_absent`]) found
    /// its key present: nothing of the transaction was applied.
    #[error("condition not met: {0}")]
    ConditionNotMet(String),
}

impl Error {
    /// Can the caller try the same request again?
    pub fn is_retryable(&self) -> bool {
        match self {
            // Retrying a write could apply it twice; the caller must decide
            // (for example by reading first).
            Error::Ambiguous(_) => false,
            // Nothing happened; later may work.
            Error::Unavailable(_) => true,
            // The same input fails the same way.
            Error::InvalidArgument(_) => false,
            // Old versions do not come back.
            Error::SnapshotTooOld { .. } => false,
            // Addresses may come back.
            Error::Connect(_) => true,
            // The transaction may succeed when run again.
            Error::Aborted(_) => true,
            // Asking again does not grant permission.
            Error::PermissionDenied(_) => false,
            // The caller asked not to wait; it decides when to ask again.
            Error::LockNotAvailable(_) => false,
            // The same condition fails the same way (unless the data
            // changes; the caller decides).
            Error::ConditionNotMet(_) => false,
        }
    }
}

/// What one attempt's failure means for the retry loop.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// Not the leader; maybe a hint where it is. Nothing applied.
    NotLeader { leader: Option<(meta::ServerId, String)> },
    /// The shard map is stale; the server's descriptors of the shard
    /// and of the shard holding the key, if it has them. Nothing applied.
    WrongShard { message: String, descriptors: Vec<proto::ShardDescriptor> },
    /// Try again later or elsewhere. Nothing applied.
    Unavailable(String),
    /// The request went out and its fate is unknown.
    Ambiguous(String),
    /// Retrying cannot help.
    Permanent(Error),
}

pub(crate) fn classify(status: &tonic::Status) -> Failure {
    use proto::ErrorKind;
    if let Ok(detail) = proto::ErrorDetail::decode(status.details()) {
        let msg = detail.message.clone();
        match ErrorKind::try_from(detail.kind).unwrap_or(ErrorKind::Unspecified) {
            ErrorKind::NotLeader => {
                let leader = (detail.leader_server_id != 0 && !detail.leader_addr.is_empty())
                    .then(|| (meta::ServerId(detail.leader_server_id), detail.leader_addr.clone()));
                return Failure::NotLeader { leader };
            }
            ErrorKind::WrongShard => return Failure::WrongShard { message: msg, descriptors: detail.descriptors },
            ErrorKind::Unavailable => return Failure::Unavailable(msg),
            ErrorKind::Ambiguous => return Failure::Ambiguous(msg),
            ErrorKind::InvalidArgument => return Failure::Permanent(Error::InvalidArgument(msg)),
            ErrorKind::Aborted => return Failure::Permanent(Error::Aborted(msg)),
            ErrorKind::PermissionDenied => return Failure::Permanent(Error::PermissionDenied(msg)),
            ErrorKind::LockNotAvailable => return Failure::Permanent(Error::LockNotAvailable(msg)),
            ErrorKind::SnapshotTooOld => {
                return Failure::Permanent(Error::SnapshotTooOld {
                    read_ts: Timestamp::ZERO,
                    watermark: Timestamp::from_nanos(detail.gc_watermark),
                })
            }
            ErrorKind::Unspecified => {}
        }
    }
    // No detail: the transport failed, or a server bug. Only a refused
    // connection proves the request never left.
    if connection_refused(status) {
        Failure::Unavailable(format!("connection refused: {}", status.message()))
    } else {
        Failure::Ambiguous(format!("{}: {}", status.code(), status.message()))
    }
}

/// Walks the error's causes for an I/O "connection refused".
fn connection_refused(status: &tonic::Status) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_with(kind: proto::ErrorKind, f: impl FnOnce(&mut proto::ErrorDetail)) -> tonic::Status {
        let mut d = proto::ErrorDetail { kind: kind as i32, message: "m".into(), ..Default::default() };
        f(&mut d);
        tonic::Status::with_details(tonic::Code::Unavailable, "m", d.encode_to_vec().into())
    }

    #[test]
    fn statuses_are_classified_by_their_detail() {
        use proto::ErrorKind::*;
        assert_eq!(
            classify(&status_with(NotLeader, |d| {
                d.leader_server_id = 2;
                d.leader_addr = "h:2".into();
            })),
            Failure::NotLeader { leader: Some((meta::ServerId(2), "h:2".into())) }
        );
        assert_eq!(classify(&status_with(NotLeader, |_| {})), Failure::NotLeader { leader: None });
        assert!(matches!(classify(&status_with(WrongShard, |_| {})), Failure::WrongShard { .. }));
        assert!(matches!(classify(&status_with(Unavailable, |_| {})), Failure::Unavailable(_)));
        assert!(matches!(classify(&status_with(Ambiguous, |_| {})), Failure::Ambiguous(_)));
        assert!(matches!(
            classify(&status_with(InvalidArgument, |_| {})),
            Failure::Permanent(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            classify(&status_with(PermissionDenied, |_| {})),
            Failure::Permanent(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            classify(&status_with(SnapshotTooOld, |d| d.gc_watermark = 5)),
            Failure::Permanent(Error::SnapshotTooOld { .. })
        ));
    }

    /// Goal: a bare transport error (no detail) is never taken as "not
    /// applied": a write interrupted that way must surface as ambiguous.
    #[test]
    fn a_bare_transport_error_is_ambiguous() {
        let s = tonic::Status::unavailable("connection reset");
        assert!(matches!(classify(&s), Failure::Ambiguous(_)));
        let s = tonic::Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        assert!(matches!(classify(&s), Failure::Unavailable(_)), "{:?}", classify(&s));
    }
}
