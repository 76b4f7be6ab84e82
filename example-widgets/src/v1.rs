//! `apps.example.io/v1` Widget: the storage version.

use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use apimachinery::object::ObjectMeta;

/// `apiVersion` of this version.
pub const API_VERSION: &str = "apps.example.io/v1";

/// A Widget at `apps.example.io/v1`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Widget {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: WidgetSpec,
    /// Observed state, set by controllers through the `status` subresource.
    pub status: WidgetStatus,
}

/// The desired state of a Widget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    /// The display name of the Widget. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A brief summary of the Widget's purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The observed state of a Widget.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    /// The lifecycle phase: `Pending` or `Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The generation of the Widget most recently observed by its controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The latest observations of the Widget's state; a map-list keyed by `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

super::object_serde!(Widget, WidgetSpec, WidgetStatus, API_VERSION);
super::widget_resource!(Widget, "v1", API_VERSION);
