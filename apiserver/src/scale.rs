//! The `scale` subresource: an `autoscaling/v1` `Scale` view of an object's replica counts,
//! read with GET and written with PUT or PATCH, as kube-apiserver serves it for CRDs that
//! declare `subresources.scale` (upstream's `customresource.ScaleREST`).

use apimachinery::Object;
use apimachinery::status::{ApiError, FieldError};
use serde_json::{Value, json};

/// Reads and writes the replica counts of `K` (a CRD's `specReplicasPath`,
/// `statusReplicasPath` and `labelSelectorPath`).
pub trait ScaleSubresource<K>: Send + Sync {
    /// `spec.replicas` of the Scale (0 when the object has none).
    fn spec_replicas(&self, object: &K) -> i64;
    /// `status.replicas` of the Scale (0 when the object has none).
    fn status_replicas(&self, object: &K) -> i64;
    /// `status.selector` of the Scale, if the kind declares one and the object has it.
    fn selector(&self, object: &K) -> Option<String>;
    /// Sets the object's desired replicas.
    ///
    /// # Errors
    ///
    /// When the object cannot hold the value at the declared path.
    fn set_replicas(&self, object: &mut K, replicas: i64) -> Result<(), ApiError>;
}

/// The `Scale` document of `object`.
pub(crate) fn scale_document<K: Object>(scale: &dyn ScaleSubresource<K>, object: &K) -> Value {
    let meta = object.meta();
    let mut status = json!({"replicas": scale.status_replicas(object)});
    if let Some(selector) = scale.selector(object) {
        status["selector"] = Value::from(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "resourceVersion": meta.resource_version,
            "creationTimestamp": meta.creation_timestamp,
        },
        "spec": {"replicas": scale.spec_replicas(object)},
        "status": status,
    })
}

/// What a `Scale` body asks for: the replicas (422 unless a non-negative integer, as
/// upstream's `ValidateScale`) and the resourceVersion it was read at, if any.
pub(crate) fn requested(body: &Value) -> Result<(i64, Option<String>), ApiError> {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("Scale");
    let api_version = body
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("autoscaling/v1");
    if kind != "Scale" || api_version != "autoscaling/v1" {
        return Err(ApiError::bad_request(format!(
            "the scale subresource takes an autoscaling/v1 Scale, not {api_version} {kind}"
        )));
    }
    let name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let replicas = body.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    // `spec.replicas` is an int32 in autoscaling/v1: a larger number does not decode.
    if replicas.as_i64().is_some_and(|r| i32::try_from(r).is_err())
        || replicas.is_u64() && replicas.as_i64().is_none()
    {
        return Err(ApiError::bad_request(format!(
            "Scale in version \"v1\" cannot be handled as a Scale: spec.replicas: {replicas} does not fit in an int32"
        )));
    }
    let Some(replicas) = replicas.as_i64().filter(|r| *r >= 0) else {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            &[FieldError::invalid(
                "spec.replicas",
                replicas,
                "must be greater than or equal to 0",
            )],
        ));
    };
    let resource_version = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
        .map(str::to_owned);
    Ok((replicas, resource_version))
}
