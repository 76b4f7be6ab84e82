//! Typed conversions between v1beta1, the hub and v1, defaulting, and the [`Converter`] the
//! scheme uses for Widgets.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{DESCRIPTION_ANNOTATION, PHASE_PENDING, PHASE_RUNNING, internal, v1, v1beta1};
use apimachinery::object::ObjectMeta;
use scheme::{ConversionError, Converter, INTERNAL_VERSION};

/// v1 -> hub: the same fields.
pub fn v1_to_hub(widget: v1::Widget) -> internal::Widget {
    internal::Widget {
        metadata: widget.metadata,
        spec: internal::WidgetSpec {
            display_name: widget.spec.display_name,
            description: widget.spec.description,
        },
        status: internal::WidgetStatus {
            phase: widget.status.phase,
            observed_generation: widget.status.observed_generation,
            conditions: widget.status.conditions,
        },
    }
}

/// hub -> v1: the same fields.
pub fn hub_to_v1(widget: internal::Widget) -> v1::Widget {
    v1::Widget {
        metadata: widget.metadata,
        spec: v1::WidgetSpec {
            display_name: widget.spec.display_name,
            description: widget.spec.description,
        },
        status: v1::WidgetStatus {
            phase: widget.status.phase,
            observed_generation: widget.status.observed_generation,
            conditions: widget.status.conditions,
        },
    }
}

/// v1beta1 -> hub: `title` becomes `displayName`, the description annotation becomes
/// `description` (and is removed; an annotations map it leaves empty is removed too),
/// `ready` becomes `phase`.
pub fn v1beta1_to_hub(widget: v1beta1::Widget) -> internal::Widget {
    let mut metadata = widget.metadata;
    let description = take_annotation(&mut metadata, DESCRIPTION_ANNOTATION);
    internal::Widget {
        metadata,
        spec: internal::WidgetSpec {
            display_name: widget.spec.title,
            description,
        },
        status: internal::WidgetStatus {
            phase: widget
                .status
                .ready
                .map(|ready| if ready { PHASE_RUNNING } else { PHASE_PENDING }.to_owned()),
            observed_generation: widget.status.observed_generation,
            conditions: widget.status.conditions,
        },
    }
}

/// hub -> v1beta1: `displayName` becomes `title`, `description` goes into the description
/// annotation, `phase` becomes `ready`.
///
/// # Errors
///
/// [`ConversionError::Failed`] when `status.phase` is neither `Pending` nor `Running` (an
/// invalid object: v1beta1 cannot express it).
pub fn hub_to_v1beta1(widget: internal::Widget) -> Result<v1beta1::Widget, ConversionError> {
    let ready = match widget.status.phase.as_deref() {
        None => None,
        Some(PHASE_RUNNING) => Some(true),
        Some(PHASE_PENDING) => Some(false),
        Some(other) => {
            return Err(ConversionError::Failed(format!(
                "status.phase {other:?} has no v1beta1 representation"
            )));
        }
    };
    let mut metadata = widget.metadata;
    if let Some(description) = widget.spec.description {
        metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(DESCRIPTION_ANNOTATION.to_owned(), description);
    }
    Ok(v1beta1::Widget {
        metadata,
        spec: v1beta1::WidgetSpec {
            title: widget.spec.display_name,
        },
        status: v1beta1::WidgetStatus {
            ready,
            observed_generation: widget.status.observed_generation,
            conditions: widget.status.conditions,
        },
    })
}

fn take_annotation(metadata: &mut ObjectMeta, key: &str) -> Option<String> {
    let annotations = metadata.annotations.as_mut()?;
    let value = annotations.remove(key)?;
    if annotations.is_empty() {
        metadata.annotations = None;
    }
    Some(value)
}

fn default_common<T>(metadata: &mut ObjectMeta, conditions: &mut Option<Vec<T>>) {
    if metadata.annotations.as_ref().is_some_and(|a| a.is_empty()) {
        metadata.annotations = None;
    }
    if conditions.as_ref().is_some_and(Vec::is_empty) {
        *conditions = None;
    }
}

/// v1 defaults: an empty `spec.description`, empty annotations and empty conditions are
/// removed.
pub fn default_v1(widget: &mut v1::Widget) {
    if widget.spec.description.as_deref() == Some("") {
        widget.spec.description = None;
    }
    default_common(&mut widget.metadata, &mut widget.status.conditions);
}

/// v1beta1 defaults: an empty description annotation, empty annotations and empty
/// conditions are removed.
pub fn default_v1beta1(widget: &mut v1beta1::Widget) {
    if let Some(annotations) = widget.metadata.annotations.as_mut() {
        if annotations
            .get(DESCRIPTION_ANNOTATION)
            .is_some_and(String::is_empty)
        {
            annotations.remove(DESCRIPTION_ANNOTATION);
        }
    }
    default_common(&mut widget.metadata, &mut widget.status.conditions);
}

/// The scheme's converter for Widgets: decodes documents into the typed structs of their
/// version and applies the typed conversions above; the hub is `apps.example.io/__internal`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WidgetConverter;

fn decode<T: DeserializeOwned>(document: Value) -> Result<T, ConversionError> {
    serde_json::from_value(document).map_err(|e| ConversionError::Decode(e.to_string()))
}

fn encode<T: Serialize>(object: &T) -> Result<Value, ConversionError> {
    serde_json::to_value(object).map_err(|e| ConversionError::Failed(e.to_string()))
}

impl Converter for WidgetConverter {
    fn hub_version(&self) -> &str {
        INTERNAL_VERSION
    }

    fn default(&self, version: &str, object: &mut Value) -> Result<(), ConversionError> {
        *object = match version {
            "v1" => {
                let mut widget: v1::Widget = decode(object.take())?;
                default_v1(&mut widget);
                encode(&widget)?
            }
            "v1beta1" => {
                let mut widget: v1beta1::Widget = decode(object.take())?;
                default_v1beta1(&mut widget);
                encode(&widget)?
            }
            other => return Err(ConversionError::UnsupportedVersion(other.to_owned())),
        };
        Ok(())
    }

    fn convert_to_hub(&self, version: &str, object: Value) -> Result<Value, ConversionError> {
        let hub = match version {
            "v1" => v1_to_hub(decode(object)?),
            "v1beta1" => v1beta1_to_hub(decode(object)?),
            other => return Err(ConversionError::UnsupportedVersion(other.to_owned())),
        };
        encode(&hub)
    }

    fn convert_from_hub(&self, version: &str, hub: Value) -> Result<Value, ConversionError> {
        let hub: internal::Widget = decode(hub)?;
        match version {
            "v1" => encode(&hub_to_v1(hub)),
            "v1beta1" => encode(&hub_to_v1beta1(hub)?),
            other => Err(ConversionError::UnsupportedVersion(other.to_owned())),
        }
    }

    fn openapi_schema(&self, version: &str) -> Option<Value> {
        super::openapi_schema(version)
    }
}
