//! How etcd's errors map onto the contract's error kinds.

use std::time::Duration;

use storage_api::Error;
use tonic::Code;

/// An etcd failure, classified before the revision errors get their numbers (which needs another
/// round trip, done by the store).
#[derive(Debug)]
pub(crate) enum EtcdFailure {
    /// `mvcc: required revision has been compacted`.
    Compacted,
    /// `mvcc: required revision is a future revision`.
    FutureRevision,
    /// `requested lease not found`: a reused lease expired or was revoked meanwhile.
    LeaseNotFound,
    /// The request never reached a member (the connection to the one picked could not be
    /// established), so even a write can safely be sent again.
    NotSent(Error),
    /// Anything else, already mapped.
    Other(Error),
}

/// Classifies an etcd client error raised while doing `what`.
pub(crate) fn classify(what: &str, error: etcd_client::Error) -> EtcdFailure {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            if message.contains("required revision has been compacted") {
                return EtcdFailure::Compacted;
            }
            if message.contains("required revision is a future revision") {
                return EtcdFailure::FutureRevision;
            }
            if message.contains("requested lease not found") {
                return EtcdFailure::LeaseNotFound;
            }
            let not_sent = status.code() == Code::Unavailable
                && (message.contains("tcp connect error")
                    || message.contains("error trying to connect")
                    || message.contains("Connection refused"));
            let message = format!("etcd {what} failed: {message}");
            if not_sent {
                return EtcdFailure::NotSent(Error::unavailable_from(message, status));
            }
            EtcdFailure::Other(match status.code() {
                // etcd's NOSPACE alarm ("mvcc: database space exceeded") lasts until an operator
                // compacts, defragments and disarms it: not a failure to retry blindly.
                Code::ResourceExhausted if message.contains("database space exceeded") => {
                    Error::internal_from(message, status)
                }
                Code::InvalidArgument | Code::OutOfRange => Error::InvalidArgument(message),
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Aborted
                | Code::Unknown
                | Code::ResourceExhausted => Error::unavailable_from(message, status),
                _ => Error::internal_from(message, status),
            })
        }
        error @ (etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::WatchError(_)
        | etcd_client::Error::EndpointError(_)) => EtcdFailure::Other(Error::unavailable_from(
            format!("etcd {what} failed: {error}"),
            error,
        )),
        error => EtcdFailure::Other(Error::internal_from(
            format!("etcd {what} failed: {error}"),
            error,
        )),
    }
}

/// The error of a request that did not answer in time.
pub(crate) fn timed_out(what: &str, timeout: Duration) -> Error {
    Error::unavailable(format!(
        "etcd {what} did not complete within {timeout:?} (no reachable etcd member?)"
    ))
}
