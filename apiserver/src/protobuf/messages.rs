//! The Kubernetes protobuf messages the server decodes, declared with prost and their upstream
//! field numbers (from the `protobuf:"..."` tags of the Go types in `k8s.io/api` and
//! `k8s.io/apimachinery`). Fields a message does not declare are skipped by prost, so each
//! kind declares every field its JSON form has: nothing a client sends is silently lost.

use std::collections::BTreeMap;

use prost::Message;

/// `runtime.TypeMeta`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    pub api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub kind: Option<String>,
}

/// `runtime.Unknown`: the envelope after the `k8s\0` magic.
#[derive(Clone, PartialEq, Message)]
pub(super) struct Unknown {
    #[prost(message, optional, tag = "1")]
    pub type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub raw: Option<Vec<u8>>,
}

/// `metav1.Time` and `metav1.MicroTime` (same wire shape).
#[derive(Clone, PartialEq, Message)]
pub(super) struct Time {
    #[prost(int64, optional, tag = "1")]
    pub seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    pub nanos: Option<i32>,
}

/// `metav1.OwnerReference`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct OwnerReference {
    #[prost(string, optional, tag = "1")]
    pub kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub api_version: Option<String>,
    #[prost(bool, optional, tag = "6")]
    pub controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub block_owner_deletion: Option<bool>,
}

/// `metav1.FieldsV1`: the JSON of a field set.
#[derive(Clone, PartialEq, Message)]
pub(super) struct FieldsV1 {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub raw: Option<Vec<u8>>,
}

/// `metav1.ManagedFieldsEntry`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ManagedFieldsEntry {
    #[prost(string, optional, tag = "1")]
    pub manager: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub operation: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub api_version: Option<String>,
    #[prost(message, optional, tag = "4")]
    pub time: Option<Time>,
    #[prost(string, optional, tag = "6")]
    pub fields_type: Option<String>,
    #[prost(message, optional, tag = "7")]
    pub fields_v1: Option<FieldsV1>,
    #[prost(string, optional, tag = "8")]
    pub subresource: Option<String>,
}

/// `metav1.ObjectMeta`, every field.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub namespace: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub self_link: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub resource_version: Option<String>,
    #[prost(int64, optional, tag = "7")]
    pub generation: Option<i64>,
    #[prost(message, optional, tag = "8")]
    pub creation_timestamp: Option<Time>,
    #[prost(message, optional, tag = "9")]
    pub deletion_timestamp: Option<Time>,
    #[prost(int64, optional, tag = "10")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    pub annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    pub owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    pub finalizers: Vec<String>,
    #[prost(message, repeated, tag = "17")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// core/v1 `ConfigMap`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    pub binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    pub immutable: Option<bool>,
}

/// core/v1 `Secret`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct Secret {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    pub data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    pub type_: Option<String>,
    #[prost(btree_map = "string, string", tag = "4")]
    pub string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    pub immutable: Option<bool>,
}

/// core/v1 `NamespaceSpec`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    pub finalizers: Vec<String>,
}

/// core/v1 `Namespace` (status is the server's, not read from requests).
#[derive(Clone, PartialEq, Message)]
pub(super) struct Namespace {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<NamespaceSpec>,
}

/// core/v1 `ObjectReference`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ObjectReference {
    #[prost(string, optional, tag = "1")]
    pub kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub namespace: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub api_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub resource_version: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub field_path: Option<String>,
}

/// core/v1 `EventSource`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct EventSource {
    #[prost(string, optional, tag = "1")]
    pub component: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub host: Option<String>,
}

/// core/v1 `EventSeries`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct EventSeries {
    #[prost(int32, optional, tag = "1")]
    pub count: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub last_observed_time: Option<Time>,
}

/// core/v1 `Event`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct Event {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub involved_object: Option<ObjectReference>,
    #[prost(string, optional, tag = "3")]
    pub reason: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub message: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub source: Option<EventSource>,
    #[prost(message, optional, tag = "6")]
    pub first_timestamp: Option<Time>,
    #[prost(message, optional, tag = "7")]
    pub last_timestamp: Option<Time>,
    #[prost(int32, optional, tag = "8")]
    pub count: Option<i32>,
    #[prost(string, optional, tag = "9")]
    pub type_: Option<String>,
    #[prost(message, optional, tag = "10")]
    pub event_time: Option<Time>,
    #[prost(message, optional, tag = "11")]
    pub series: Option<EventSeries>,
    #[prost(string, optional, tag = "12")]
    pub action: Option<String>,
    #[prost(message, optional, tag = "13")]
    pub related: Option<ObjectReference>,
    #[prost(string, optional, tag = "14")]
    pub reporting_component: Option<String>,
    #[prost(string, optional, tag = "15")]
    pub reporting_instance: Option<String>,
}

/// coordination/v1 `LeaseSpec`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct LeaseSpec {
    #[prost(string, optional, tag = "1")]
    pub holder_identity: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub lease_duration_seconds: Option<i32>,
    #[prost(message, optional, tag = "3")]
    pub acquire_time: Option<Time>,
    #[prost(message, optional, tag = "4")]
    pub renew_time: Option<Time>,
    #[prost(int32, optional, tag = "5")]
    pub lease_transitions: Option<i32>,
    #[prost(string, optional, tag = "6")]
    pub strategy: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub preferred_holder: Option<String>,
}

/// coordination/v1 `Lease`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct Lease {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<LeaseSpec>,
}
