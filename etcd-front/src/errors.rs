//! etcd's gRPC errors, word for word: clients match on the message (etcd's
//! `api/v3rpc/rpctypes/error.go`), so these must be exactly etcd's.

use storage_api::Error;
use tonic::{Code, Status};

/// `ErrGRPCEmptyKey`.
pub(crate) fn empty_key() -> Status {
    Status::invalid_argument("etcdserver: key is not provided")
}

/// `ErrGRPCKeyNotFound`: `ignore_value` or `ignore_lease` on a missing key.
pub(crate) fn key_not_found() -> Status {
    Status::invalid_argument("etcdserver: key not found")
}

/// `ErrGRPCValueProvided`.
pub(crate) fn value_provided() -> Status {
    Status::invalid_argument("etcdserver: value is provided")
}

/// `ErrGRPCLeaseProvided`.
pub(crate) fn lease_provided() -> Status {
    Status::invalid_argument("etcdserver: lease is provided")
}

/// `ErrGRPCTooManyOps`.
pub(crate) fn too_many_ops() -> Status {
    Status::invalid_argument("etcdserver: too many operations in txn request")
}

/// `ErrGRPCDuplicateKey`.
pub(crate) fn duplicate_key() -> Status {
    Status::invalid_argument("etcdserver: duplicate key given in txn request")
}

/// `ErrGRPCCompacted`.
pub(crate) fn compacted() -> Status {
    Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
}

/// `ErrGRPCFutureRev`.
pub(crate) fn future_revision() -> Status {
    Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
}

/// `ErrGRPCLeaseNotFound`.
pub(crate) fn lease_not_found() -> Status {
    Status::not_found("etcdserver: requested lease not found")
}

/// `ErrGRPCLeaseExist`.
pub(crate) fn lease_exists() -> Status {
    Status::failed_precondition("etcdserver: lease already exists")
}

/// `ErrGRPCLeaseTTLTooLarge`.
pub(crate) fn lease_ttl_too_large() -> Status {
    Status::out_of_range("etcdserver: too large lease TTL")
}

/// A storage error as etcd would report the same condition.
pub(crate) fn from_storage(error: Error) -> Status {
    match error {
        Error::Compacted { .. } => compacted(),
        Error::FutureRevision { .. } => future_revision(),
        Error::InvalidArgument(message) => Status::invalid_argument(message),
        Error::Unsupported(what) => Status::unimplemented(format!(
            "the storage backend of this etcd front does not support {what}"
        )),
        Error::Unavailable { message, .. } => Status::unavailable(message),
        // Conditions the front settles itself before they reach clients; seeing one here is
        // a bug, reported as such rather than as a condition of the data.
        other => Status::new(Code::Internal, other.to_string()),
    }
}
