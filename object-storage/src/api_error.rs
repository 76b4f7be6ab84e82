//! Storage errors as API errors: the mapping of upstream's `pkg/storage/errors/storage.go`
//! (`InterpretGetError`, `InterpretListError`, `InterpretCreateError`, ...), which depends on
//! the operation the error happened in.

use apimachinery::status::{ApiError, GroupResource, Operation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;

use crate::error::StorageError;

/// Builds the API error for a storage error (implemented for [`ApiError`]).
pub trait FromStorageError {
    /// Maps `error`, met by `operation` on `resource`/`name`, to the Status the API returns.
    fn from_storage(
        error: StorageError,
        operation: Operation,
        resource: &GroupResource,
        name: &str,
    ) -> Self;
}

impl FromStorageError for ApiError {
    /// Maps a storage error met by `operation` on `resource`/`name` as Kubernetes'
    /// `storage/errors` package does (`pkg/storage/errors/storage.go`, `InterpretGetError` and
    /// its siblings).
    fn from_storage(
        error: StorageError,
        operation: Operation,
        resource: &GroupResource,
        name: &str,
    ) -> Self {
        use Operation as Op;
        match (error, operation) {
            (StorageError::KeyNotFound { .. }, Op::List) => Self::not_found(resource, ""),
            (StorageError::KeyNotFound { .. }, _) => Self::not_found(resource, name),
            (StorageError::KeyExists { .. }, Op::Create) => Self::already_exists(resource, name),
            (
                e @ (StorageError::KeyExists { .. }
                | StorageError::ResourceVersionConflicts { .. }
                | StorageError::InvalidObj { .. }),
                _,
            ) => Self::conflict(resource, name, storage_detail(&e)),
            (StorageError::Unreachable { .. }, op) => Self::server_timeout(resource, op.verb(), 2),
            (StorageError::Timeout { message, .. }, Op::List) => {
                let _ = message;
                Self::server_timeout(resource, "list", 2)
            }
            (StorageError::Timeout { message, .. }, _) => Self::timeout(message, 0),
            (
                StorageError::TooLargeResourceVersion {
                    requested,
                    current,
                    retry_after_seconds,
                },
                _,
            ) => {
                let mut error = Self::timeout(
                    format!("Too large resource version: {requested}, current: {current}"),
                    retry_after_seconds,
                );
                if let Some(details) = &mut error.details {
                    details.causes = Some(vec![StatusCause {
                        reason: Some("ResourceVersionTooLarge".to_owned()),
                        message: Some("Too large resource version".to_owned()),
                        field: None,
                    }]);
                }
                error
            }
            (
                StorageError::Expired {
                    message,
                    continue_token,
                },
                _,
            ) => {
                let mut error = Self::expired(message);
                error.continue_token = continue_token;
                error
            }
            (
                StorageError::Invalid {
                    field,
                    value,
                    message,
                },
                _,
            ) => Self::bad_request(format!("{field}: Invalid value: {value:?}: {message}")),
            (StorageError::BadRequest(message), _) => Self::bad_request(message),
            (
                StorageError::TooManyRequests {
                    message,
                    retry_after_seconds,
                },
                _,
            ) => Self::too_many_requests(message, retry_after_seconds),
            (StorageError::ResourceVersionSetOnCreate, _) => {
                Self::bad_request("resourceVersion should not be set on objects to be created")
            }
            (StorageError::Callback(inner), _) => match inner.downcast::<ApiError>() {
                Ok(api) => *api,
                Err(other) => Self::internal(other),
            },
            (e @ (StorageError::CorruptObj { .. } | StorageError::Internal(_)), _) => {
                Self::internal(storage_detail(&e))
            }
        }
    }
}

fn storage_detail(error: &StorageError) -> String {
    match error {
        StorageError::Internal(message) => message.clone(),
        StorageError::InvalidObj { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

impl From<ApiError> for StorageError {
    /// Lets strategy and update callbacks return API errors through the storage layer.
    fn from(error: ApiError) -> Self {
        StorageError::callback(error)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_per_operation() {
        let pods = GroupResource::new("", "pods");
        let exists = || StorageError::KeyExists {
            key: "k".into(),
            resource_version: 0,
        };
        assert_eq!(
            ApiError::from_storage(exists(), Operation::Create, &pods, "p").reason,
            "AlreadyExists"
        );
        assert_eq!(
            ApiError::from_storage(exists(), Operation::Update, &pods, "p").reason,
            "Conflict"
        );
        let too_large = StorageError::TooLargeResourceVersion {
            requested: 9,
            current: 3,
            retry_after_seconds: 1,
        };
        let error = ApiError::from_storage(too_large, Operation::Get, &pods, "p");
        assert_eq!((error.code, error.reason.as_str()), (504, "Timeout"));
        assert_eq!(
            error.message,
            "Timeout: Too large resource version: 9, current: 3"
        );
        let callback = StorageError::from(ApiError::bad_request("nope"));
        assert_eq!(
            ApiError::from_storage(callback, Operation::Update, &pods, "p").message,
            "nope"
        );
    }
}
