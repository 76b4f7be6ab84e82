//! Who a request is and what it may do, as kube-apiserver decides it, without HTTP or storage:
//!
//! - [`user`]: [`UserInfo`], the well-known users and groups;
//! - [`authn`]: the [`TokenAuthenticator`] trait and a union of authenticators; [`token_file`]
//!   reads upstream's static token file; [`service_account`] issues and checks bound service
//!   account tokens; [`x509`] reads client certificates;
//! - [`authz`]: request [`Attributes`], the [`Authorizer`] trait (replace or chain it),
//!   `AlwaysAllow`, the `system:masters` superuser link and the chain itself, and upstream's
//!   forbidden message;
//! - [`rbac`]: the RBAC authorizer over an index of roles and bindings, escalation checks,
//!   ClusterRole aggregation and the bootstrap policy.
//!
//! The `apiserver` crate serves the RBAC kinds, feeds their objects to the authorizer and
//! authorizes every request through the chain.

pub mod authn;
pub mod authz;
pub mod rbac;
pub mod service_account;
pub mod token_file;
pub mod user;
pub mod x509;

pub use authn::{Authenticated, TokenAuthenticator, TokenAuthenticators, TokenOutcome};
pub use authz::{Attributes, Authorizer, AuthorizerChain, Decision, Verdict};
pub use user::UserInfo;
