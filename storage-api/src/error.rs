//! The one error type of the byte-level contract.

use crate::types::{KeyValue, Revision};

/// Result alias used throughout the storage contract.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a storage operation.
///
/// Each variant is a *kind* of failure that callers match on: the outcome of a condition the
/// contract defines (missing key, live key, revision mismatch, compacted or future revision), the
/// caller's own mistake, or a failure of the backend. Backends convert their private errors into
/// these kinds and keep the original as the source where there is one. How a kind is shown to
/// clients (Kubernetes maps them onto `Status` objects) is decided above this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key does not exist (or is deleted) at the revision asked for. An answer about the
    /// data, not a failure of the store: not retryable as such.
    #[error("key not found: {key:?}")]
    NotFound {
        /// The key that was looked up.
        key: String,
    },
    /// `create` found the key live. A precondition that did not hold: the caller decides
    /// whether to update instead.
    #[error("key already exists: {key:?}")]
    AlreadyExists {
        /// The key that was to be created.
        key: String,
    },
    /// A conditional write found another `mod_revision` than the one expected: someone else
    /// wrote first (optimistic concurrency), and the caller retries from the live value.
    ///
    /// `current` carries the value that is live now, so a compare-and-swap loop can retry without
    /// another read.
    #[error("conflict on key {key:?}: expected mod_revision {expected}, found {}", current.mod_revision)]
    Conflict {
        /// The key written.
        key: String,
        /// The `mod_revision` the caller expected.
        expected: Revision,
        /// The live value at the time of the failed write.
        current: Box<KeyValue>,
    },
    /// The revision asked for has been compacted away. Permanent for that revision: the caller
    /// must start again from a newer one (re-list, then watch).
    #[error("required revision {requested} has been compacted (compacted revision is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The store's compaction revision: the oldest revision still readable.
        compacted: Revision,
    },
    /// The revision asked for is newer than the store's current revision. Retryable: the store
    /// may reach it soon (a caller that read it from a more up-to-date replica or server).
    #[error("required revision {requested} is a future revision (current revision is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The request itself is malformed (bad key, bad range, bad option). The caller's fault:
    /// repeating it fails the same way.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The store does not implement an optional part of the contract (see
    /// [`crate::Capabilities`]): the caller's request is valid, this store cannot serve it.
    #[error("not supported by this store: {0}")]
    Unsupported(String),
    /// The backend cannot serve now (connection lost, shutting down, watch consumer too slow).
    /// Retryable: the same request may succeed later (a watch resumes from its last revision).
    #[error("storage unavailable: {message}")]
    Unavailable {
        /// What is unavailable and why.
        message: String,
        /// The backend's own error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A bug or a corrupted store. The backend's fault, and not retryable: repeating the
    /// request is not expected to help.
    #[error("internal storage error: {message}")]
    Internal {
        /// What failed.
        message: String,
        /// The backend's own error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// An [`Error::Unavailable`] with a message and no source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Unavailable`] wrapping a backend error.
    pub fn unavailable_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// An [`Error::Internal`] with a message and no source.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Internal`] wrapping a backend error.
    pub fn internal_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Internal {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::FutureRevision { .. }
        )
    }
}
