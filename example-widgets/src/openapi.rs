//! OpenAPI v3 schemas of Widget per served version (for `/openapi/v3` and `kubectl explain`).

use serde_json::{Value, json};

use super::{
    DESCRIPTION_ANNOTATION, GROUP, KIND, MAX_DESCRIPTION_LENGTH, MAX_DISPLAY_NAME_LENGTH,
    PHASE_PENDING, PHASE_RUNNING,
};

/// The `$ref` of ObjectMeta in `components.schemas`.
const OBJECT_META_REF: &str =
    "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn conditions_schema() -> Value {
    json!({
        "description": "The latest available observations of the Widget's state.",
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "type",
        "items": {
            "description": "Condition contains details for one aspect of the current state of this API Resource.",
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": { "description": "Type of condition in CamelCase or in foo.example.com/CamelCase.", "type": "string", "maxLength": 316 },
                "status": { "description": "Status of the condition, one of True, False, Unknown.", "type": "string", "enum": ["True", "False", "Unknown"] },
                "observedGeneration": { "description": "The .metadata.generation that the condition was set based upon.", "type": "integer", "format": "int64", "minimum": 0 },
                "lastTransitionTime": { "description": "The last time the condition transitioned from one status to another.", "type": "string", "format": "date-time" },
                "reason": { "description": "A programmatic identifier indicating the reason for the condition's last transition.", "type": "string", "maxLength": 1024, "minLength": 1, "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$" },
                "message": { "description": "A human readable message indicating details about the transition.", "type": "string", "maxLength": 32768 }
            }
        }
    })
}

fn envelope(version: &str, description: &str, spec: Value, status: Value) -> Value {
    json!({
        "description": description,
        "type": "object",
        "x-kubernetes-group-version-kind": [{ "group": GROUP, "version": version, "kind": KIND }],
        "properties": {
            "apiVersion": { "description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string" },
            "kind": { "description": "Kind is a string value representing the REST resource this object represents.", "type": "string" },
            "metadata": { "description": "Standard object's metadata.", "allOf": [{ "$ref": OBJECT_META_REF }] },
            "spec": spec,
            "status": status,
        }
    })
}

/// The schema of Widget at `version` (`v1` or `v1beta1`), `None` for other versions. Its
/// `metadata` refers to `#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`.
pub fn openapi_schema(version: &str) -> Option<Value> {
    match version {
        "v1" => Some(envelope(
            "v1",
            "Widget is the example resource of the apps.example.io group.",
            json!({
                "description": "Spec defines the behavior of the Widget.",
                "type": "object",
                "required": ["displayName"],
                "properties": {
                    "displayName": { "description": "DisplayName is the display name of the Widget.", "type": "string", "minLength": 1, "maxLength": MAX_DISPLAY_NAME_LENGTH },
                    "description": { "description": "Description provides a brief summary of the Widget's purpose or functionality.", "type": "string", "maxLength": MAX_DESCRIPTION_LENGTH }
                }
            }),
            json!({
                "description": "Status describes the current status of the Widget.",
                "type": "object",
                "properties": {
                    "phase": { "description": "Phase is the current lifecycle phase of the Widget.", "type": "string", "enum": [PHASE_PENDING, PHASE_RUNNING] },
                    "observedGeneration": { "description": "ObservedGeneration reflects the generation of the most recently observed Widget.", "type": "integer", "format": "int64", "minimum": 0 },
                    "conditions": conditions_schema()
                }
            }),
        )),
        "v1beta1" => Some(envelope(
            "v1beta1",
            &format!(
                "Widget is the example resource of the apps.example.io group (v1beta1). Its description is kept in the annotation {DESCRIPTION_ANNOTATION}."
            ),
            json!({
                "description": "Spec defines the behavior of the Widget.",
                "type": "object",
                "required": ["title"],
                "properties": {
                    "title": { "description": "Title is the display name of the Widget (spec.displayName in v1).", "type": "string", "minLength": 1, "maxLength": MAX_DISPLAY_NAME_LENGTH }
                }
            }),
            json!({
                "description": "Status describes the current status of the Widget.",
                "type": "object",
                "properties": {
                    "ready": { "description": "Ready is true when the Widget is running (status.phase Running in v1).", "type": "boolean" },
                    "observedGeneration": { "description": "ObservedGeneration reflects the generation of the most recently observed Widget.", "type": "integer", "format": "int64", "minimum": 0 },
                    "conditions": conditions_schema()
                }
            }),
        )),
        _ => None,
    }
}
