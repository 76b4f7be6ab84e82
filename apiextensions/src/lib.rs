//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`), written once above the generic
//! registry:
//!
//! - [`Unstructured`]: the object type of every custom kind (typed metadata, JSON content);
//! - [`definition`]: the CRD kind's defaulting, validation, conditions and strategies;
//! - [`schema`]: structural schemas, and the validation, pruning and defaulting of objects by
//!   them;
//! - [`cel`]: CEL validation rules (`x-kubernetes-validations`), their cost limits and
//!   evaluation;
//! - [`columns`]: `additionalPrinterColumns` and the simple JSONPath they and
//!   `selectableFields` use;
//! - [`patching`]: how a CRD's lists merge under patches and server-side apply;
//! - [`kind`]: a CRD turned into what the server needs to serve its kind (resource info,
//!   converter, strategies).
//!
//! The server side (serving established CRDs, conditions, deleting a CRD's objects) lives in
//! the `apiserver` crate's CRD controller.

pub mod cel;
pub mod columns;
pub mod definition;
pub mod kind;
mod object;
pub mod patching;
pub mod schema;

pub use definition::{CLEANUP_FINALIZER, CrdStatusStrategy, CrdStrategy};
pub use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
pub use kind::{
    ConversionWebhook, CustomResourceConverter, CustomResourceKind, CustomResourceStrategy,
    ScalePaths,
};
pub use object::Unstructured;
