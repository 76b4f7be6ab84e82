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

/// core/v1 `LocalObjectReference`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct LocalObjectReference {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
}

/// core/v1 `ServiceAccount`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ServiceAccount {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    pub secrets: Vec<ObjectReference>,
    #[prost(message, repeated, tag = "3")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    #[prost(bool, optional, tag = "4")]
    pub automount_service_account_token: Option<bool>,
}

/// `metav1.LabelSelectorRequirement` and `metav1.FieldSelectorRequirement` (same wire shape).
#[derive(Clone, PartialEq, Message)]
pub(super) struct SelectorRequirement {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub operator: Option<String>,
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
}

/// `metav1.LabelSelector`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct LabelSelector {
    #[prost(btree_map = "string, string", tag = "1")]
    pub match_labels: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "2")]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// `ExtraValue` of authorization/v1 and authentication/v1 (same wire shape): a `[]string`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ExtraValue {
    #[prost(string, repeated, tag = "1")]
    pub items: Vec<String>,
}

/// authorization/v1 `FieldSelectorAttributes` and `LabelSelectorAttributes` (same wire shape).
#[derive(Clone, PartialEq, Message)]
pub(super) struct SelectorAttributes {
    #[prost(string, optional, tag = "1")]
    pub raw_selector: Option<String>,
    #[prost(message, repeated, tag = "2")]
    pub requirements: Vec<SelectorRequirement>,
}

/// authorization/v1 `ResourceAttributes`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ResourceAttributes {
    #[prost(string, optional, tag = "1")]
    pub namespace: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub verb: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub group: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub version: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub resource: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub subresource: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub name: Option<String>,
    #[prost(message, optional, tag = "8")]
    pub field_selector: Option<SelectorAttributes>,
    #[prost(message, optional, tag = "9")]
    pub label_selector: Option<SelectorAttributes>,
}

/// authorization/v1 `NonResourceAttributes`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct NonResourceAttributes {
    #[prost(string, optional, tag = "1")]
    pub path: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub verb: Option<String>,
}

/// authorization/v1 `SubjectAccessReviewSpec`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SubjectAccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    pub resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    pub non_resource_attributes: Option<NonResourceAttributes>,
    #[prost(string, optional, tag = "3")]
    pub user: Option<String>,
    #[prost(string, repeated, tag = "4")]
    pub groups: Vec<String>,
    #[prost(btree_map = "string, message", tag = "5")]
    pub extra: BTreeMap<String, ExtraValue>,
    #[prost(string, optional, tag = "6")]
    pub uid: Option<String>,
}

/// authorization/v1 `SubjectAccessReviewStatus`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SubjectAccessReviewStatus {
    #[prost(bool, optional, tag = "1")]
    pub allowed: Option<bool>,
    #[prost(string, optional, tag = "2")]
    pub reason: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub evaluation_error: Option<String>,
    #[prost(bool, optional, tag = "4")]
    pub denied: Option<bool>,
}

/// authorization/v1 `SubjectAccessReview` and `LocalSubjectAccessReview` (same wire shape).
#[derive(Clone, PartialEq, Message)]
pub(super) struct SubjectAccessReview {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<SubjectAccessReviewSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<SubjectAccessReviewStatus>,
}

/// authorization/v1 `SelfSubjectAccessReviewSpec`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SelfSubjectAccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    pub resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    pub non_resource_attributes: Option<NonResourceAttributes>,
}

/// authorization/v1 `SelfSubjectAccessReview`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SelfSubjectAccessReview {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<SelfSubjectAccessReviewSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<SubjectAccessReviewStatus>,
}

/// authorization/v1 `SelfSubjectRulesReviewSpec`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SelfSubjectRulesReviewSpec {
    #[prost(string, optional, tag = "1")]
    pub namespace: Option<String>,
}

/// authorization/v1 `ResourceRule`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ResourceRule {
    #[prost(string, repeated, tag = "1")]
    pub verbs: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub api_groups: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    pub resources: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub resource_names: Vec<String>,
}

/// authorization/v1 `NonResourceRule`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct NonResourceRule {
    #[prost(string, repeated, tag = "1")]
    pub verbs: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub non_resource_urls: Vec<String>,
}

/// authorization/v1 `SubjectRulesReviewStatus`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SubjectRulesReviewStatus {
    #[prost(message, repeated, tag = "1")]
    pub resource_rules: Vec<ResourceRule>,
    #[prost(message, repeated, tag = "2")]
    pub non_resource_rules: Vec<NonResourceRule>,
    #[prost(bool, optional, tag = "3")]
    pub incomplete: Option<bool>,
    #[prost(string, optional, tag = "4")]
    pub evaluation_error: Option<String>,
}

/// authorization/v1 `SelfSubjectRulesReview`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SelfSubjectRulesReview {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<SelfSubjectRulesReviewSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<SubjectRulesReviewStatus>,
}

/// authentication/v1 `UserInfo`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct UserInfo {
    #[prost(string, optional, tag = "1")]
    pub username: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub uid: Option<String>,
    #[prost(string, repeated, tag = "3")]
    pub groups: Vec<String>,
    #[prost(btree_map = "string, message", tag = "4")]
    pub extra: BTreeMap<String, ExtraValue>,
}

/// authentication/v1 `SelfSubjectReviewStatus`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SelfSubjectReviewStatus {
    #[prost(message, optional, tag = "1")]
    pub user_info: Option<UserInfo>,
}

/// authentication/v1 `SelfSubjectReview` (no spec: the server fills in the status).
#[derive(Clone, PartialEq, Message)]
pub(super) struct SelfSubjectReview {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub status: Option<SelfSubjectReviewStatus>,
}

/// authentication/v1 `TokenReviewSpec`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct TokenReviewSpec {
    #[prost(string, optional, tag = "1")]
    pub token: Option<String>,
    #[prost(string, repeated, tag = "2")]
    pub audiences: Vec<String>,
}

/// authentication/v1 `TokenReviewStatus`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct TokenReviewStatus {
    #[prost(bool, optional, tag = "1")]
    pub authenticated: Option<bool>,
    #[prost(message, optional, tag = "2")]
    pub user: Option<UserInfo>,
    #[prost(string, optional, tag = "3")]
    pub error: Option<String>,
    #[prost(string, repeated, tag = "4")]
    pub audiences: Vec<String>,
}

/// authentication/v1 `TokenReview`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct TokenReview {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<TokenReviewSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<TokenReviewStatus>,
}

/// authentication/v1 `BoundObjectReference` (the proto names the uid `uID`).
#[derive(Clone, PartialEq, Message)]
pub(super) struct BoundObjectReference {
    #[prost(string, optional, tag = "1")]
    pub kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub api_version: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub uid: Option<String>,
}

/// authentication/v1 `TokenRequestSpec` as of Kubernetes 1.34 (`attestations`, field 5, came
/// later and is not part of the API served).
#[derive(Clone, PartialEq, Message)]
pub(super) struct TokenRequestSpec {
    #[prost(string, repeated, tag = "1")]
    pub audiences: Vec<String>,
    #[prost(message, optional, tag = "3")]
    pub bound_object_ref: Option<BoundObjectReference>,
    #[prost(int64, optional, tag = "4")]
    pub expiration_seconds: Option<i64>,
}

/// authentication/v1 `TokenRequestStatus`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct TokenRequestStatus {
    #[prost(string, optional, tag = "1")]
    pub token: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub expiration_timestamp: Option<Time>,
}

/// authentication/v1 `TokenRequest`, the body of `serviceaccounts/<name>/token`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct TokenRequest {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<TokenRequestSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<TokenRequestStatus>,
}

/// rbac/v1 `PolicyRule`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct PolicyRule {
    #[prost(string, repeated, tag = "1")]
    pub verbs: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub api_groups: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    pub resources: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub resource_names: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub non_resource_urls: Vec<String>,
}

/// rbac/v1 `AggregationRule`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct AggregationRule {
    #[prost(message, repeated, tag = "1")]
    pub cluster_role_selectors: Vec<LabelSelector>,
}

/// rbac/v1 `Role`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct Role {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    pub rules: Vec<PolicyRule>,
}

/// rbac/v1 `ClusterRole`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ClusterRole {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    pub rules: Vec<PolicyRule>,
    #[prost(message, optional, tag = "3")]
    pub aggregation_rule: Option<AggregationRule>,
}

/// rbac/v1 `Subject`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct Subject {
    #[prost(string, optional, tag = "1")]
    pub kind: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub api_group: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub namespace: Option<String>,
}

/// rbac/v1 `RoleRef`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct RoleRef {
    #[prost(string, optional, tag = "1")]
    pub api_group: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
}

/// rbac/v1 `RoleBinding` and `ClusterRoleBinding` (same wire shape).
#[derive(Clone, PartialEq, Message)]
pub(super) struct RoleBinding {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    pub subjects: Vec<Subject>,
    #[prost(message, optional, tag = "3")]
    pub role_ref: Option<RoleRef>,
}
