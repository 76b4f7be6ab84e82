//! `apps.example.io/v1beta1` Widget: the first release, converted to and from v1 through the
//! hub. It has `spec.title` (v1's `spec.displayName`), no `spec.description` (carried in the
//! [`DESCRIPTION_ANNOTATION`](super::DESCRIPTION_ANNOTATION)), and `status.ready` instead of
//! `status.phase`.

use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use apimachinery::object::ObjectMeta;

/// `apiVersion` of this version.
pub const API_VERSION: &str = "apps.example.io/v1beta1";

/// A Widget at `apps.example.io/v1beta1`.
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
    /// The title of the Widget (v1: `spec.displayName`). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// The observed state of a Widget.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    /// Whether the Widget is running (v1: `status.phase` `Running`; false is `Pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// The generation of the Widget most recently observed by its controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The latest observations of the Widget's state; a map-list keyed by `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

super::object_serde!(Widget, WidgetSpec, WidgetStatus, API_VERSION);
super::widget_resource!(Widget, "v1beta1", API_VERSION);
