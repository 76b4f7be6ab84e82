//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) for
//! the built-in kinds served: core `v1` ConfigMap, Secret, Namespace and Event, and
//! `coordination.k8s.io/v1` Lease, and ([`access`]) core `v1` ServiceAccount and the
//! `authentication.k8s.io/v1`, `authorization.k8s.io/v1` and `rbac.authorization.k8s.io/v1`
//! kinds clients create. kubectl's typed commands send them from kubectl 1.32 on
//! (`kubectl create configmap|secret|namespace|serviceaccount|token|role|rolebinding`,
//! `kubectl auth can-i|whoami`), client-go components for events, leases and reviews.
//! The body is the `k8s\0` envelope holding a `runtime.Unknown` with the object.
//!
//! The messages ([`messages`]) are declared with prost rather than taken from `k8s-pb`, which
//! compiles every Kubernetes proto for the few kinds read here. Decoded objects become JSON
//! documents and go through the normal path; responses stay JSON.

mod access;
mod messages;

use std::collections::BTreeMap;

use apimachinery::status::ApiError;
use base64::Engine;
use k8s_openapi::jiff::Timestamp;
use prost::Message;
use serde_json::{Map, Value, json};

use messages::{ObjectMeta, ObjectReference, Time, Unknown};

/// The protobuf media type.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The magic prefix of Kubernetes protobuf bodies.
const MAGIC: &[u8; 4] = b"k8s\0";

fn bad(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {detail}"))
}

/// A JSON object under construction that leaves out what Go's `omitempty` leaves out.
#[derive(Default)]
struct Doc(Map<String, Value>);

impl Doc {
    fn string(&mut self, key: &str, value: Option<String>) -> &mut Self {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.0.insert(key.to_owned(), Value::from(v));
        }
        self
    }

    fn value(&mut self, key: &str, value: Option<Value>) -> &mut Self {
        if let Some(v) = value {
            self.0.insert(key.to_owned(), v);
        }
        self
    }

    /// A list, absent when empty (`omitempty`, or a nil slice).
    fn list<T: Into<Value>>(&mut self, key: &str, items: Vec<T>) -> &mut Self {
        let items: Vec<Value> = items.into_iter().map(Into::into).collect();
        self.value(key, (!items.is_empty()).then_some(Value::Array(items)))
    }

    fn strings(&mut self, key: &str, map: BTreeMap<String, String>) -> &mut Self {
        self.value(key, (!map.is_empty()).then(|| json!(map)))
    }

    fn bytes(&mut self, key: &str, map: BTreeMap<String, Vec<u8>>) -> &mut Self {
        let engine = base64::engine::general_purpose::STANDARD;
        let encoded: Map<String, Value> = map
            .into_iter()
            .map(|(k, v)| (k, Value::from(engine.encode(v))))
            .collect();
        self.value(key, (!encoded.is_empty()).then_some(Value::Object(encoded)))
    }

    fn done(&mut self) -> Value {
        Value::Object(std::mem::take(&mut self.0))
    }
}

/// `metav1.Time` (`micro`: `MicroTime`) as its RFC 3339 JSON string; a time outside the
/// representable range is a 400.
fn time(value: Option<Time>, micro: bool) -> Result<Option<Value>, ApiError> {
    // Go writes a zero time (a non-pointer field left unset) as an empty message; the epoch
    // itself comes with its fields set.
    let Some(value) = value.filter(|t| t.seconds.is_some() || t.nanos.is_some()) else {
        return Ok(None);
    };
    let nanos = value.nanos.unwrap_or_default();
    let at = Timestamp::new(value.seconds.unwrap_or_default(), nanos)
        .map_err(|e| bad(format!("invalid time: {e}")))?;
    let seconds = at.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(Some(Value::from(if micro {
        format!("{seconds}.{:06}Z", at.subsec_nanosecond() / 1000)
    } else {
        format!("{seconds}Z")
    })))
}

fn meta_json(meta: Option<ObjectMeta>) -> Result<Value, ApiError> {
    let meta = meta.unwrap_or_default();
    let owners: Vec<Value> = meta
        .owner_references
        .into_iter()
        .map(|o| {
            Doc::default()
                .string("apiVersion", o.api_version)
                .string("kind", o.kind)
                .string("name", o.name)
                .string("uid", o.uid)
                .value("controller", o.controller.map(Value::from))
                .value(
                    "blockOwnerDeletion",
                    o.block_owner_deletion.map(Value::from),
                )
                .done()
        })
        .collect();
    let mut managed = Vec::new();
    for entry in meta.managed_fields {
        let fields = match entry.fields_v1.and_then(|f| f.raw) {
            Some(raw) => Some(serde_json::from_slice::<Value>(&raw).map_err(bad)?),
            None => None,
        };
        managed.push(
            Doc::default()
                .string("manager", entry.manager)
                .string("operation", entry.operation)
                .string("apiVersion", entry.api_version)
                .value("time", time(entry.time, false)?)
                .string("fieldsType", entry.fields_type)
                .value("fieldsV1", fields)
                .string("subresource", entry.subresource)
                .done(),
        );
    }
    Ok(Doc::default()
        .string("name", meta.name)
        .string("generateName", meta.generate_name)
        .string("namespace", meta.namespace)
        .string("selfLink", meta.self_link)
        .string("uid", meta.uid)
        .string("resourceVersion", meta.resource_version)
        .value("generation", meta.generation.map(Value::from))
        .value("creationTimestamp", time(meta.creation_timestamp, false)?)
        .value("deletionTimestamp", time(meta.deletion_timestamp, false)?)
        .value(
            "deletionGracePeriodSeconds",
            meta.deletion_grace_period_seconds.map(Value::from),
        )
        .strings("labels", meta.labels)
        .strings("annotations", meta.annotations)
        .value(
            "ownerReferences",
            (!owners.is_empty()).then(|| json!(owners)),
        )
        .value(
            "finalizers",
            (!meta.finalizers.is_empty()).then(|| json!(meta.finalizers)),
        )
        .value(
            "managedFields",
            (!managed.is_empty()).then(|| json!(managed)),
        )
        .done())
}

fn reference_json(reference: ObjectReference) -> Value {
    Doc::default()
        .string("kind", reference.kind)
        .string("namespace", reference.namespace)
        .string("name", reference.name)
        .string("uid", reference.uid)
        .string("apiVersion", reference.api_version)
        .string("resourceVersion", reference.resource_version)
        .string("fieldPath", reference.field_path)
        .done()
}

/// Decodes a protobuf body into the JSON document of the object it holds.
///
/// # Errors
///
/// 400 BadRequest when the envelope or the object does not decode; 415 for kinds other than
/// ConfigMap, Secret, Namespace, Event and ServiceAccount of core `v1`, Lease of
/// `coordination.k8s.io/v1`, TokenRequest, TokenReview and SelfSubjectReview of
/// `authentication.k8s.io/v1`, SubjectAccessReview, LocalSubjectAccessReview,
/// SelfSubjectAccessReview and SelfSubjectRulesReview of `authorization.k8s.io/v1`, and Role,
/// ClusterRole, RoleBinding and ClusterRoleBinding of `rbac.authorization.k8s.io/v1`.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let Some(rest) = body.strip_prefix(MAGIC.as_slice()) else {
        return Err(bad("missing the k8s protobuf envelope prefix"));
    };
    let unknown = Unknown::decode(rest).map_err(bad)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut doc = Doc::default();
    doc.string("apiVersion", Some(api_version.clone()))
        .string("kind", Some(kind.clone()));
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => {
            let cm = messages::ConfigMap::decode(raw.as_slice()).map_err(bad)?;
            doc.value("metadata", Some(meta_json(cm.metadata)?))
                .strings("data", cm.data)
                .bytes("binaryData", cm.binary_data)
                .value("immutable", cm.immutable.map(Value::from));
        }
        ("v1", "Secret") => {
            let secret = messages::Secret::decode(raw.as_slice()).map_err(bad)?;
            doc.value("metadata", Some(meta_json(secret.metadata)?))
                .bytes("data", secret.data)
                .strings("stringData", secret.string_data)
                .string("type", secret.type_)
                .value("immutable", secret.immutable.map(Value::from));
        }
        ("v1", "Namespace") => {
            let ns = messages::Namespace::decode(raw.as_slice()).map_err(bad)?;
            doc.value("metadata", Some(meta_json(ns.metadata)?));
            if let Some(spec) = ns.spec.filter(|s| !s.finalizers.is_empty()) {
                doc.value("spec", Some(json!({ "finalizers": spec.finalizers })));
            }
        }
        ("v1", "Event") => {
            let event = messages::Event::decode(raw.as_slice()).map_err(bad)?;
            let source = event.source.map(|s| {
                Doc::default()
                    .string("component", s.component)
                    .string("host", s.host)
                    .done()
            });
            let series = match event.series {
                Some(series) => Some(
                    Doc::default()
                        .value("count", series.count.map(Value::from))
                        .value("lastObservedTime", time(series.last_observed_time, true)?)
                        .done(),
                ),
                None => None,
            };
            doc.value("metadata", Some(meta_json(event.metadata)?))
                .value(
                    "involvedObject",
                    Some(reference_json(event.involved_object.unwrap_or_default())),
                )
                .string("reason", event.reason)
                .string("message", event.message)
                .value("source", source)
                .value("firstTimestamp", time(event.first_timestamp, false)?)
                .value("lastTimestamp", time(event.last_timestamp, false)?)
                .value("count", event.count.filter(|c| *c != 0).map(Value::from))
                .string("type", event.type_)
                .value("eventTime", time(event.event_time, true)?)
                .value("series", series)
                .string("action", event.action)
                .value("related", event.related.map(reference_json))
                .string("reportingComponent", event.reporting_component)
                .string("reportingInstance", event.reporting_instance);
        }
        ("coordination.k8s.io/v1", "Lease") => {
            let lease = messages::Lease::decode(raw.as_slice()).map_err(bad)?;
            doc.value("metadata", Some(meta_json(lease.metadata)?));
            if let Some(spec) = lease.spec {
                let spec = Doc::default()
                    .string("holderIdentity", spec.holder_identity)
                    .value(
                        "leaseDurationSeconds",
                        spec.lease_duration_seconds.map(Value::from),
                    )
                    .value("acquireTime", time(spec.acquire_time, true)?)
                    .value("renewTime", time(spec.renew_time, true)?)
                    .value("leaseTransitions", spec.lease_transitions.map(Value::from))
                    .string("strategy", spec.strategy)
                    .string("preferredHolder", spec.preferred_holder)
                    .done();
                doc.value("spec", Some(spec));
            }
        }
        ("v1", "ServiceAccount") => access::service_account(&raw, &mut doc)?,
        ("authentication.k8s.io/v1", "TokenRequest") => access::token_request(&raw, &mut doc)?,
        ("authentication.k8s.io/v1", "TokenReview") => access::token_review(&raw, &mut doc)?,
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            access::self_subject_review(&raw, &mut doc)?;
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview" | "LocalSubjectAccessReview") => {
            access::subject_access_review(&raw, &mut doc)?;
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            access::self_subject_access_review(&raw, &mut doc)?;
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            access::self_subject_rules_review(&raw, &mut doc)?;
        }
        ("rbac.authorization.k8s.io/v1", "Role") => access::role(&raw, &mut doc)?,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => access::cluster_role(&raw, &mut doc)?,
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => {
            access::role_binding(&raw, &mut doc)?;
        }
        _ => {
            // As kube-apiserver for kinds without protobuf (custom resources).
            tracing::debug!(%api_version, %kind, "protobuf body of a kind without protobuf");
            return Err(ApiError::unsupported_media_type(
                "application/json, application/yaml",
            ));
        }
    }
    Ok(doc.done())
}

#[cfg(test)]
mod tests {
    use super::messages::*;
    use super::*;

    pub(super) fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let cm = ConfigMap {
            metadata: Some(ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            }),
            data: [("a".to_owned(), "b".to_owned())].into_iter().collect(),
            ..Default::default()
        };
        let value = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(
            value,
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"b"}})
        );
    }

    #[test]
    fn decodes_full_metadata() {
        let secret = Secret {
            metadata: Some(ObjectMeta {
                name: Some("s".into()),
                resource_version: Some("42".into()),
                uid: Some("u-1".into()),
                owner_references: vec![OwnerReference {
                    api_version: Some("v1".into()),
                    kind: Some("ConfigMap".into()),
                    name: Some("owner".into()),
                    uid: Some("u-0".into()),
                    controller: Some(true),
                    block_owner_deletion: None,
                }],
                creation_timestamp: Some(Time {
                    seconds: Some(1_700_000_000),
                    nanos: None,
                }),
                managed_fields: vec![ManagedFieldsEntry {
                    manager: Some("m".into()),
                    operation: Some("Update".into()),
                    api_version: Some("v1".into()),
                    fields_type: Some("FieldsV1".into()),
                    fields_v1: Some(FieldsV1 {
                        raw: Some(br#"{"f:data":{}}"#.to_vec()),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            data: [("k".to_owned(), b"v".to_vec())].into_iter().collect(),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        let value = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {
                    "name": "s", "uid": "u-1", "resourceVersion": "42",
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-0", "controller": true}],
                    "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}],
                },
                "data": {"k": "dg=="},
                "type": "Opaque",
            })
        );
    }

    #[test]
    fn decodes_events_and_leases() {
        let at = Some(Time {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_789),
        });
        let event = Event {
            metadata: Some(ObjectMeta {
                name: Some("e".into()),
                namespace: Some("default".into()),
                ..Default::default()
            }),
            involved_object: Some(ObjectReference {
                kind: Some("ConfigMap".into()),
                name: Some("c".into()),
                ..Default::default()
            }),
            reason: Some("Tested".into()),
            source: Some(EventSource {
                component: Some("unit".into()),
                host: None,
            }),
            count: Some(2),
            type_: Some("Normal".into()),
            event_time: at.clone(),
            reporting_component: Some("unit".into()),
            ..Default::default()
        };
        let value = decode(&envelope("v1", "Event", event.encode_to_vec())).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "default"},
                "involvedObject": {"kind": "ConfigMap", "name": "c"},
                "reason": "Tested", "source": {"component": "unit"}, "count": 2,
                "type": "Normal", "eventTime": "2023-11-14T22:13:20.123456Z",
                "reportingComponent": "unit",
            })
        );
        let lease = Lease {
            metadata: Some(ObjectMeta {
                name: Some("l".into()),
                ..Default::default()
            }),
            spec: Some(LeaseSpec {
                holder_identity: Some("me".into()),
                lease_duration_seconds: Some(15),
                renew_time: at,
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        let value = decode(&envelope(
            "coordination.k8s.io/v1",
            "Lease",
            lease.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "l"},
                "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                         "renewTime": "2023-11-14T22:13:20.123456Z", "leaseTransitions": 0},
            })
        );
    }

    #[test]
    fn zero_times_are_absent_and_the_epoch_is_kept() {
        let event = Event {
            metadata: Some(ObjectMeta {
                name: Some("legacy".into()),
                creation_timestamp: Some(Time::default()),
                ..Default::default()
            }),
            first_timestamp: Some(Time {
                seconds: Some(0),
                nanos: None,
            }),
            event_time: Some(Time::default()),
            ..Default::default()
        };
        let value = decode(&envelope("v1", "Event", event.encode_to_vec())).unwrap();
        assert!(value.get("eventTime").is_none(), "{value}");
        assert!(value["metadata"].get("creationTimestamp").is_none());
        assert_eq!(value["firstTimestamp"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn rejects_garbage_and_kinds_without_protobuf() {
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", vec![0xff, 0xff]))
                .unwrap_err()
                .code,
            400
        );
        let widget = decode(&envelope("apps.example.io/v1", "Widget", Vec::new())).unwrap_err();
        assert_eq!(widget.code, 415);
    }
}
