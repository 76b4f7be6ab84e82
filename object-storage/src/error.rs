//! Errors of the object-level storage layer, with Kubernetes' storage error codes.

use storage_api::Revision;

/// Result alias of the object-level storage layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Why an object-level storage operation failed.
///
/// The first seven kinds are Kubernetes' `StorageError` codes (1..=7); the others are the other
/// error types Kubernetes' storage layer returns. `apimachinery::status` turns any of them into the
/// `metav1.Status` the API returns for a given operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Code 1: the key does not exist.
    #[error(
        "StorageError: key not found, Code: 1, Key: {key}, ResourceVersion: {resource_version}, AdditionalErrorMsg: "
    )]
    KeyNotFound {
        /// The key.
        key: String,
        /// The revision the read was served at (0 if unknown).
        resource_version: Revision,
    },
    /// Code 2: the key exists (create).
    #[error(
        "StorageError: key exists, Code: 2, Key: {key}, ResourceVersion: {resource_version}, AdditionalErrorMsg: "
    )]
    KeyExists {
        /// The key.
        key: String,
        /// The revision the conflict was seen at (0 if unknown).
        resource_version: Revision,
    },
    /// Code 3: a resource version conflict that could not be retried.
    #[error(
        "StorageError: resource version conflicts, Code: 3, Key: {key}, ResourceVersion: {resource_version}, AdditionalErrorMsg: {message}"
    )]
    ResourceVersionConflicts {
        /// The key.
        key: String,
        /// The conflicting revision.
        resource_version: Revision,
        /// Detail.
        message: String,
    },
    /// Code 4: a precondition (UID or resourceVersion) failed.
    #[error(
        "StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: {resource_version}, AdditionalErrorMsg: {message}"
    )]
    InvalidObj {
        /// The key.
        key: String,
        /// The revision of the object checked.
        resource_version: Revision,
        /// Which precondition failed, as Kubernetes words it.
        message: String,
    },
    /// Code 5: the backend cannot be reached.
    #[error(
        "StorageError: server unreachable, Code: 5, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: {message}"
    )]
    Unreachable {
        /// The key.
        key: String,
        /// Detail.
        message: String,
    },
    /// Code 6: the request did not complete in time.
    #[error(
        "StorageError: request timeout, Code: 6, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: {message}"
    )]
    Timeout {
        /// The key.
        key: String,
        /// Detail.
        message: String,
    },
    /// Code 7: stored data cannot be transformed or decoded.
    #[error(
        "StorageError: corrupt object, Code: 7, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: {message}"
    )]
    CorruptObj {
        /// The key.
        key: String,
        /// Detail.
        message: String,
    },
    /// The request is invalid in one field (Kubernetes' `storage.InvalidError`), such as an
    /// unparsable resourceVersion. HTTP 400 (`FromStorageError`).
    #[error("{field}: Invalid value: {value:?}: {message}")]
    Invalid {
        /// The field path, such as `resourceVersion`.
        field: String,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        message: String,
    },
    /// A malformed request: bad continue token, resourceVersion together with continue, ...
    /// HTTP 400.
    #[error("{0}")]
    BadRequest(String),
    /// The resourceVersion or continue token is too old (compacted). HTTP 410 Expired.
    #[error("{message}")]
    Expired {
        /// The message Kubernetes returns.
        message: String,
        /// For a compacted continue token: a fresh token that continues inconsistently at the
        /// latest revision (`status.metadata.continue`).
        continue_token: Option<String>,
    },
    /// The resourceVersion is newer than the store's (HTTP 504 Timeout,
    /// "Too large resource version").
    #[error("Timeout: Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
        /// The `Retry-After` seconds to suggest.
        retry_after_seconds: i32,
    },
    /// The storage cannot take the request now and the client should retry after the given
    /// seconds, such as a watch cache that is (re)initialising. HTTP 429.
    #[error("{message}")]
    TooManyRequests {
        /// What is busy, as upstream words it ("storage is (re)initializing").
        message: String,
        /// The `Retry-After` seconds to suggest.
        retry_after_seconds: i32,
    },
    /// The object to create already carries a resourceVersion.
    #[error("resourceVersion should not be set on objects to be created")]
    ResourceVersionSetOnCreate,
    /// A bug, a failed transformer, or an undecodable object. HTTP 500.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// An error returned by a caller's callback (update function, deletion validation), passed
    /// through unchanged so the caller can recover it with `downcast`.
    #[error(transparent)]
    Callback(Box<dyn std::error::Error + Send + Sync>),
}

impl StorageError {
    /// Kubernetes' storage error code (1..=7) for the coded kinds.
    pub fn code(&self) -> Option<u8> {
        Some(match self {
            StorageError::KeyNotFound { .. } => 1,
            StorageError::KeyExists { .. } => 2,
            StorageError::ResourceVersionConflicts { .. } => 3,
            StorageError::InvalidObj { .. } => 4,
            StorageError::Unreachable { .. } => 5,
            StorageError::Timeout { .. } => 6,
            StorageError::CorruptObj { .. } => 7,
            _ => return None,
        })
    }

    /// `is_not_found` of Kubernetes' storage package.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::KeyNotFound { .. })
    }

    /// `is_exist`.
    pub fn is_exist(&self) -> bool {
        matches!(self, StorageError::KeyExists { .. })
    }

    /// `is_invalid_obj`: a failed precondition.
    pub fn is_invalid_obj(&self) -> bool {
        matches!(self, StorageError::InvalidObj { .. })
    }

    /// `is_internal_error`.
    pub fn is_internal(&self) -> bool {
        matches!(self, StorageError::Internal(_))
    }

    /// `is_too_large_resource_version`.
    pub fn is_too_large_resource_version(&self) -> bool {
        matches!(self, StorageError::TooLargeResourceVersion { .. })
    }

    /// A 410 Expired (compacted resourceVersion or continue token).
    pub fn is_expired(&self) -> bool {
        matches!(self, StorageError::Expired { .. })
    }

    /// Wraps a caller's error so it passes through the storage layer unchanged.
    pub fn callback(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StorageError::Callback(Box::new(error))
    }

    /// Converts a byte-level storage error met while working on `key`.
    pub(crate) fn from_backend(key: &str, error: storage_api::Error) -> Self {
        use storage_api::Error as E;
        match error {
            E::NotFound { .. } => StorageError::KeyNotFound {
                key: key.to_owned(),
                resource_version: 0,
            },
            E::AlreadyExists { .. } => StorageError::KeyExists {
                key: key.to_owned(),
                resource_version: 0,
            },
            E::Conflict { current, .. } => StorageError::ResourceVersionConflicts {
                key: key.to_owned(),
                resource_version: current.mod_revision,
                message: "the object has been modified".to_owned(),
            },
            E::Compacted { .. } => StorageError::Expired {
                message: "The resourceVersion for the provided list is too old.".to_owned(),
                continue_token: None,
            },
            E::FutureRevision { requested, current } => StorageError::TooLargeResourceVersion {
                requested,
                current,
                retry_after_seconds: 1,
            },
            E::InvalidArgument(message) => StorageError::BadRequest(message),
            E::Unavailable { message, .. } => StorageError::Unreachable {
                key: key.to_owned(),
                message,
            },
            other => StorageError::Internal(other.to_string()),
        }
    }
}
