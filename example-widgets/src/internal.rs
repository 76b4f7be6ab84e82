//! The hub (internal) Widget, `apps.example.io/__internal`: the representation every served
//! version converts to and from. It holds every field of every version under its newest name
//! (today the same fields as v1). It is never served or stored.

use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use apimachinery::object::ObjectMeta;

/// `apiVersion` of hub documents.
pub const API_VERSION: &str = "apps.example.io/__internal";

/// The hub Widget.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Widget {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: WidgetSpec,
    /// Observed state.
    pub status: WidgetStatus,
}

/// The desired state of a Widget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    /// The display name (v1beta1: `spec.title`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The description (v1beta1: the description annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The observed state of a Widget.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    /// The lifecycle phase (v1beta1: `status.ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The generation most recently observed by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions, keyed by `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

super::object_serde!(Widget, WidgetSpec, WidgetStatus, API_VERSION);
