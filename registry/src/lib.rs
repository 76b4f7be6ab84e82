//! Kubernetes object-level storage semantics, written once over any [`storage_api::Interface`].
//!
//! [`Storage<K>`] gives objects of one type the behaviour of Kubernetes' `storage.Interface`:
//! resourceVersion rules for get, list and watch; continue tokens byte-compatible with
//! Kubernetes; label and field selectors; `GuaranteedUpdate` with preconditions, suggestions
//! and no-op detection; filtered watches with initial events and bookmarks; value transformers
//! for encryption at rest. `K` is any [`Object`]: a typed `k8s_openapi` struct or a
//! [`DynamicObject`](object::DynamicObject).

mod codec_helpers;
pub mod continue_token;
mod error;
pub mod example;
pub mod object;
mod options;
pub mod patch;
pub mod resource_version;
pub mod scheme;
pub mod selector;
pub mod status;
mod storage;
pub mod store;
pub mod transformer;

pub use error::{Result, StorageError};
pub use object::{NewFunc, Object};
pub use options::{
    GetOptions, INITIAL_EVENTS_END_ANNOTATION, ListOptions, ObjectList, Preconditions,
    ResourceVersionMatch, ResponseMeta, Stats, WatchError, WatchEvent,
};
pub use storage::{AttrFunc, Codec, ObjectWatch, Storage, default_attrs};
pub use store::{Store, Strategy};
