//! Kubernetes API machinery as plain types, with no async runtime and no I/O: label and field
//! selectors ([`selector`]), continue tokens byte-compatible with Kubernetes
//! ([`continue_token`]), resourceVersion parsing ([`resource_version`]), `metav1.Status` errors
//! ([`status`]) and the [`Object`] trait every stored kind implements ([`object`]).

pub mod continue_token;
pub mod object;
pub mod resource_version;
pub mod selector;
pub mod status;

pub use object::{NewFunc, Object};
