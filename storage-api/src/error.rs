//! The one error type of the byte-level contract.

use crate::types::{KeyValue, Revision};

/// Result alias used throughout the storage contract.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a storage operation.
///
/// Each variant is a *kind* that maps one-to-one onto a Kubernetes `Status` (see
/// [`Error::http_status`]); backends convert their private errors into these kinds and keep the
/// original as the source where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key does not exist (or is deleted) at the revision asked for. HTTP 404.
    #[error("key not found: {key:?}")]
    NotFound {
        /// The key that was looked up.
        key: String,
    },
    /// `create` found the key live. HTTP 409 AlreadyExists.
    #[error("key already exists: {key:?}")]
    AlreadyExists {
        /// The key that was to be created.
        key: String,
    },
    /// A conditional write found another `mod_revision` than the one expected. HTTP 409 Conflict.
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
    /// The revision asked for has been compacted away. HTTP 410 Expired.
    #[error("required revision {requested} has been compacted (compacted revision is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The store's compaction revision: the oldest revision still readable.
        compacted: Revision,
    },
    /// The revision asked for is newer than the store's current revision. HTTP 504 Timeout
    /// ("Too large resource version").
    #[error("required revision {requested} is a future revision (current revision is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The request itself is malformed (bad key, bad range, bad option). HTTP 400.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend cannot serve now (connection lost, shutting down, watch consumer too slow).
    /// Retryable. HTTP 503.
    #[error("storage unavailable: {message}")]
    Unavailable {
        /// What is unavailable and why.
        message: String,
        /// The backend's own error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A bug or a corrupted store. HTTP 500.
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

    /// The HTTP status code Kubernetes uses for this kind of failure.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::NotFound { .. } => 404,
            Error::AlreadyExists { .. } | Error::Conflict { .. } => 409,
            Error::Compacted { .. } => 410,
            Error::FutureRevision { .. } => 504,
            Error::InvalidArgument(_) => 400,
            Error::Unavailable { .. } => 503,
            Error::Internal { .. } => 500,
        }
    }

    /// The Kubernetes `Status.reason` for this kind of failure.
    pub fn status_reason(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::Conflict { .. } => "Conflict",
            Error::Compacted { .. } => "Expired",
            Error::FutureRevision { .. } => "Timeout",
            Error::InvalidArgument(_) => "BadRequest",
            Error::Unavailable { .. } => "ServiceUnavailable",
            Error::Internal { .. } => "InternalError",
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
