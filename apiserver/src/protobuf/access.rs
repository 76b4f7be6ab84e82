//! The authentication, authorization and RBAC kinds read from protobuf bodies, and core `v1`
//! ServiceAccount: what `kubectl auth can-i|whoami` and `kubectl create token|serviceaccount|
//! role|clusterrole|rolebinding|clusterrolebinding` send from kubectl 1.32 on, and the reviews
//! client-go components post (`SubjectAccessReview`, `TokenReview`).
//!
//! Each function decodes the object's bytes (the `raw` of the envelope) and adds its fields to
//! the document that already holds `apiVersion` and `kind`. A nested message is written when it
//! came on the wire: Go writes its non-pointer structs (`spec`, `status`, `roleRef`) always,
//! and pointers only when set, so this gives what Go's JSON encoding of the object gives.

use std::collections::BTreeMap;

use apimachinery::status::ApiError;
use prost::Message;
use serde_json::Value;

use super::messages::{
    self, ExtraValue, LabelSelector, NonResourceAttributes, PolicyRule, ResourceAttributes,
    SelectorAttributes, SelectorRequirement, SubjectAccessReviewStatus, UserInfo,
};
use super::{Doc, bad, meta_json, reference_json, time};

/// `metav1.LabelSelectorRequirement`s and `metav1.FieldSelectorRequirement`s.
fn requirements(requirements: Vec<SelectorRequirement>) -> Vec<Value> {
    requirements
        .into_iter()
        .map(|r| {
            Doc::default()
                .string("key", r.key)
                .string("operator", r.operator)
                .list("values", r.values)
                .done()
        })
        .collect()
}

fn label_selector(selector: LabelSelector) -> Value {
    Doc::default()
        .strings("matchLabels", selector.match_labels)
        .list("matchExpressions", requirements(selector.match_expressions))
        .done()
}

/// `FieldSelectorAttributes` and `LabelSelectorAttributes`.
fn selector_attributes(attributes: SelectorAttributes) -> Value {
    Doc::default()
        .string("rawSelector", attributes.raw_selector)
        .list("requirements", requirements(attributes.requirements))
        .done()
}

fn resource_attributes(attributes: ResourceAttributes) -> Value {
    Doc::default()
        .string("namespace", attributes.namespace)
        .string("verb", attributes.verb)
        .string("group", attributes.group)
        .string("version", attributes.version)
        .string("resource", attributes.resource)
        .string("subresource", attributes.subresource)
        .string("name", attributes.name)
        .value(
            "fieldSelector",
            attributes.field_selector.map(selector_attributes),
        )
        .value(
            "labelSelector",
            attributes.label_selector.map(selector_attributes),
        )
        .done()
}

fn non_resource_attributes(attributes: NonResourceAttributes) -> Value {
    Doc::default()
        .string("path", attributes.path)
        .string("verb", attributes.verb)
        .done()
}

/// A `map[string]ExtraValue` (each value a list of strings), absent when empty.
fn extra(map: BTreeMap<String, ExtraValue>) -> Option<Value> {
    (!map.is_empty()).then(|| {
        Value::Object(
            map.into_iter()
                .map(|(key, value)| (key, Value::from(value.items)))
                .collect(),
        )
    })
}

fn access_status(status: SubjectAccessReviewStatus) -> Value {
    Doc::default()
        // `allowed` has no omitempty: written as sent, even false.
        .value("allowed", status.allowed.map(Value::from))
        .value("denied", status.denied.filter(|d| *d).map(Value::from))
        .string("reason", status.reason)
        .string("evaluationError", status.evaluation_error)
        .done()
}

fn user_info(user: UserInfo) -> Value {
    Doc::default()
        .string("username", user.username)
        .string("uid", user.uid)
        .list("groups", user.groups)
        .value("extra", extra(user.extra))
        .done()
}

fn policy_rules(rules: Vec<PolicyRule>) -> Vec<Value> {
    rules
        .into_iter()
        .map(|rule| {
            Doc::default()
                .list("verbs", rule.verbs)
                .list("apiGroups", rule.api_groups)
                .list("resources", rule.resources)
                .list("resourceNames", rule.resource_names)
                .list("nonResourceURLs", rule.non_resource_urls)
                .done()
        })
        .collect()
}

/// authorization/v1 `SubjectAccessReview` and `LocalSubjectAccessReview`.
pub(super) fn subject_access_review(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let review = messages::SubjectAccessReview::decode(raw).map_err(bad)?;
    let spec = review.spec.map(|spec| {
        Doc::default()
            .value(
                "resourceAttributes",
                spec.resource_attributes.map(resource_attributes),
            )
            .value(
                "nonResourceAttributes",
                spec.non_resource_attributes.map(non_resource_attributes),
            )
            .string("user", spec.user)
            .list("groups", spec.groups)
            .value("extra", extra(spec.extra))
            .string("uid", spec.uid)
            .done()
    });
    doc.value("metadata", Some(meta_json(review.metadata)?))
        .value("spec", spec)
        .value("status", review.status.map(access_status));
    Ok(())
}

/// authorization/v1 `SelfSubjectAccessReview` (`kubectl auth can-i`).
pub(super) fn self_subject_access_review(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let review = messages::SelfSubjectAccessReview::decode(raw).map_err(bad)?;
    let spec = review.spec.map(|spec| {
        Doc::default()
            .value(
                "resourceAttributes",
                spec.resource_attributes.map(resource_attributes),
            )
            .value(
                "nonResourceAttributes",
                spec.non_resource_attributes.map(non_resource_attributes),
            )
            .done()
    });
    doc.value("metadata", Some(meta_json(review.metadata)?))
        .value("spec", spec)
        .value("status", review.status.map(access_status));
    Ok(())
}

/// authorization/v1 `SelfSubjectRulesReview` (`kubectl auth can-i --list`).
pub(super) fn self_subject_rules_review(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let review = messages::SelfSubjectRulesReview::decode(raw).map_err(bad)?;
    let spec = review
        .spec
        .map(|spec| Doc::default().string("namespace", spec.namespace).done());
    let status = review.status.map(|status| {
        let resource_rules: Vec<Value> = status
            .resource_rules
            .into_iter()
            .map(|rule| {
                Doc::default()
                    .list("verbs", rule.verbs)
                    .list("apiGroups", rule.api_groups)
                    .list("resources", rule.resources)
                    .list("resourceNames", rule.resource_names)
                    .done()
            })
            .collect();
        let non_resource_rules: Vec<Value> = status
            .non_resource_rules
            .into_iter()
            .map(|rule| {
                Doc::default()
                    .list("verbs", rule.verbs)
                    .list("nonResourceURLs", rule.non_resource_urls)
                    .done()
            })
            .collect();
        Doc::default()
            .list("resourceRules", resource_rules)
            .list("nonResourceRules", non_resource_rules)
            // `incomplete` has no omitempty: written as sent, even false.
            .value("incomplete", status.incomplete.map(Value::from))
            .string("evaluationError", status.evaluation_error)
            .done()
    });
    doc.value("metadata", Some(meta_json(review.metadata)?))
        .value("spec", spec)
        .value("status", status);
    Ok(())
}

/// authentication/v1 `SelfSubjectReview` (`kubectl auth whoami`).
pub(super) fn self_subject_review(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let review = messages::SelfSubjectReview::decode(raw).map_err(bad)?;
    let status = review.status.map(|status| {
        Doc::default()
            .value("userInfo", status.user_info.map(user_info))
            .done()
    });
    doc.value("metadata", Some(meta_json(review.metadata)?))
        .value("status", status);
    Ok(())
}

/// authentication/v1 `TokenReview`.
pub(super) fn token_review(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let review = messages::TokenReview::decode(raw).map_err(bad)?;
    let spec = review.spec.map(|spec| {
        Doc::default()
            .string("token", spec.token)
            .list("audiences", spec.audiences)
            .done()
    });
    let status = review.status.map(|status| {
        Doc::default()
            .value(
                "authenticated",
                status.authenticated.filter(|a| *a).map(Value::from),
            )
            .value("user", status.user.map(user_info))
            .list("audiences", status.audiences)
            .string("error", status.error)
            .done()
    });
    doc.value("metadata", Some(meta_json(review.metadata)?))
        .value("spec", spec)
        .value("status", status);
    Ok(())
}

/// authentication/v1 `TokenRequest` (`kubectl create token`, POSTed to
/// `serviceaccounts/<name>/token`).
pub(super) fn token_request(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let request = messages::TokenRequest::decode(raw).map_err(bad)?;
    let spec = request.spec.map(|spec| {
        let bound = spec.bound_object_ref.map(|r| {
            Doc::default()
                .string("kind", r.kind)
                .string("apiVersion", r.api_version)
                .string("name", r.name)
                .string("uid", r.uid)
                .done()
        });
        Doc::default()
            .list("audiences", spec.audiences)
            .value(
                "expirationSeconds",
                spec.expiration_seconds.map(Value::from),
            )
            .value("boundObjectRef", bound)
            .done()
    });
    let status = match request.status {
        Some(status) => Some(
            Doc::default()
                .string("token", status.token)
                .value(
                    "expirationTimestamp",
                    time(status.expiration_timestamp, false)?,
                )
                .done(),
        ),
        None => None,
    };
    doc.value("metadata", Some(meta_json(request.metadata)?))
        .value("spec", spec)
        .value("status", status);
    Ok(())
}

/// rbac/v1 `Role`.
pub(super) fn role(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let role = messages::Role::decode(raw).map_err(bad)?;
    doc.value("metadata", Some(meta_json(role.metadata)?))
        .list("rules", policy_rules(role.rules));
    Ok(())
}

/// rbac/v1 `ClusterRole`.
pub(super) fn cluster_role(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let role = messages::ClusterRole::decode(raw).map_err(bad)?;
    let aggregation = role.aggregation_rule.map(|rule| {
        let selectors: Vec<Value> = rule
            .cluster_role_selectors
            .into_iter()
            .map(label_selector)
            .collect();
        Doc::default()
            .list("clusterRoleSelectors", selectors)
            .done()
    });
    doc.value("metadata", Some(meta_json(role.metadata)?))
        .list("rules", policy_rules(role.rules))
        .value("aggregationRule", aggregation);
    Ok(())
}

/// rbac/v1 `RoleBinding` and `ClusterRoleBinding`.
pub(super) fn role_binding(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let binding = messages::RoleBinding::decode(raw).map_err(bad)?;
    let subjects: Vec<Value> = binding
        .subjects
        .into_iter()
        .map(|subject| {
            Doc::default()
                .string("kind", subject.kind)
                .string("apiGroup", subject.api_group)
                .string("name", subject.name)
                .string("namespace", subject.namespace)
                .done()
        })
        .collect();
    let role_ref = binding.role_ref.unwrap_or_default();
    let role_ref = Doc::default()
        .string("apiGroup", role_ref.api_group)
        .string("kind", role_ref.kind)
        .string("name", role_ref.name)
        .done();
    doc.value("metadata", Some(meta_json(binding.metadata)?))
        .list("subjects", subjects)
        .value("roleRef", Some(role_ref));
    Ok(())
}

/// core/v1 `ServiceAccount`.
pub(super) fn service_account(raw: &[u8], doc: &mut Doc) -> Result<(), ApiError> {
    let account = messages::ServiceAccount::decode(raw).map_err(bad)?;
    let secrets: Vec<Value> = account.secrets.into_iter().map(reference_json).collect();
    let image_pull_secrets: Vec<Value> = account
        .image_pull_secrets
        .into_iter()
        .map(|r| Doc::default().string("name", r.name).done())
        .collect();
    doc.value("metadata", Some(meta_json(account.metadata)?))
        .list("secrets", secrets)
        .list("imagePullSecrets", image_pull_secrets)
        .value(
            "automountServiceAccountToken",
            account.automount_service_account_token.map(Value::from),
        );
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::decode;
    use super::super::messages::*;
    use super::super::tests::envelope;
    use super::*;

    fn named(name: &str, namespace: Option<&str>) -> Option<ObjectMeta> {
        Some(ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            ..Default::default()
        })
    }

    #[test]
    fn decodes_access_reviews() {
        // As kubectl auth can-i sends it: Go writes the empty status with its bools.
        let review = SelfSubjectAccessReview {
            metadata: Some(ObjectMeta::default()),
            spec: Some(SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some("default".into()),
                    verb: Some("list".into()),
                    group: Some(String::new()),
                    resource: Some("pods".into()),
                    field_selector: Some(SelectorAttributes {
                        raw_selector: None,
                        requirements: vec![SelectorRequirement {
                            key: Some("spec.nodeName".into()),
                            operator: Some("In".into()),
                            values: vec!["n1".into()],
                        }],
                    }),
                    label_selector: Some(SelectorAttributes {
                        raw_selector: Some("app=web".into()),
                        requirements: Vec::new(),
                    }),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: Some(SubjectAccessReviewStatus {
                allowed: Some(false),
                reason: Some(String::new()),
                evaluation_error: Some(String::new()),
                denied: Some(false),
            }),
        };
        let value = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            review.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "metadata": {},
                "spec": {"resourceAttributes": {
                    "namespace": "default", "verb": "list", "resource": "pods",
                    "fieldSelector": {"requirements": [{"key": "spec.nodeName", "operator": "In", "values": ["n1"]}]},
                    "labelSelector": {"rawSelector": "app=web"},
                }},
                "status": {"allowed": false},
            })
        );
        let review = SubjectAccessReview {
            metadata: None,
            spec: Some(SubjectAccessReviewSpec {
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/healthz".into()),
                    verb: Some("get".into()),
                }),
                user: Some("alice".into()),
                groups: vec!["devs".into()],
                extra: [(
                    "scopes".to_owned(),
                    ExtraValue {
                        items: vec!["a".into(), "b".into()],
                    },
                )]
                .into_iter()
                .collect(),
                uid: Some("u-1".into()),
                ..Default::default()
            }),
            status: None,
        };
        let value = decode(&envelope(
            "authorization.k8s.io/v1",
            "LocalSubjectAccessReview",
            review.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
                "metadata": {},
                "spec": {
                    "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
                    "user": "alice", "groups": ["devs"], "extra": {"scopes": ["a", "b"]}, "uid": "u-1",
                },
            })
        );
    }

    #[test]
    fn decodes_rules_reviews() {
        let review = SelfSubjectRulesReview {
            metadata: Some(ObjectMeta::default()),
            spec: Some(SelfSubjectRulesReviewSpec {
                namespace: Some("default".into()),
            }),
            status: Some(SubjectRulesReviewStatus {
                incomplete: Some(false),
                evaluation_error: Some(String::new()),
                ..Default::default()
            }),
        };
        let value = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectRulesReview",
            review.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                "metadata": {}, "spec": {"namespace": "default"}, "status": {"incomplete": false},
            })
        );
    }

    #[test]
    fn decodes_self_subject_and_token_reviews() {
        // kubectl auth whoami: an empty review, the server fills in the status.
        let review = SelfSubjectReview {
            metadata: Some(ObjectMeta::default()),
            status: Some(SelfSubjectReviewStatus {
                user_info: Some(UserInfo::default()),
            }),
        };
        let value = decode(&envelope(
            "authentication.k8s.io/v1",
            "SelfSubjectReview",
            review.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                "metadata": {}, "status": {"userInfo": {}},
            })
        );
        let review = TokenReview {
            metadata: Some(ObjectMeta::default()),
            spec: Some(TokenReviewSpec {
                token: Some("t0k3n".into()),
                audiences: vec!["api".into()],
            }),
            status: Some(TokenReviewStatus {
                authenticated: Some(false),
                user: Some(UserInfo {
                    username: Some("bob".into()),
                    extra: [("k".to_owned(), ExtraValue::default())]
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let value = decode(&envelope(
            "authentication.k8s.io/v1",
            "TokenReview",
            review.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "metadata": {},
                "spec": {"token": "t0k3n", "audiences": ["api"]},
                "status": {"user": {"username": "bob", "extra": {"k": []}}},
            })
        );
    }

    #[test]
    fn decodes_token_requests() {
        // As kubectl create token --audience api --duration 10m --bound-object-kind Pod sends it.
        let request = TokenRequest {
            metadata: named("builder", Some("default")),
            spec: Some(TokenRequestSpec {
                audiences: vec!["api".into()],
                bound_object_ref: Some(BoundObjectReference {
                    kind: Some("Pod".into()),
                    api_version: Some("v1".into()),
                    name: Some("p".into()),
                    uid: Some(String::new()),
                }),
                expiration_seconds: Some(600),
            }),
            status: Some(TokenRequestStatus {
                token: Some(String::new()),
                expiration_timestamp: Some(Time::default()),
            }),
        };
        let value = decode(&envelope(
            "authentication.k8s.io/v1",
            "TokenRequest",
            request.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "metadata": {"name": "builder", "namespace": "default"},
                "spec": {
                    "audiences": ["api"], "expirationSeconds": 600,
                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"},
                },
                "status": {},
            })
        );
    }

    #[test]
    fn decodes_roles_and_bindings() {
        let binding = RoleBinding {
            metadata: named("read-pods", Some("default")),
            subjects: vec![
                Subject {
                    kind: Some("User".into()),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    name: Some("alice".into()),
                    namespace: Some(String::new()),
                },
                Subject {
                    kind: Some("ServiceAccount".into()),
                    api_group: Some(String::new()),
                    name: Some("builder".into()),
                    namespace: Some("ci".into()),
                },
            ],
            role_ref: Some(RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: Some("Role".into()),
                name: Some("pod-reader".into()),
            }),
        };
        let value = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            binding.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "read-pods", "namespace": "default"},
                "subjects": [
                    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                    {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"},
                ],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            })
        );
        let role = Role {
            metadata: named("pod-reader", Some("default")),
            rules: vec![PolicyRule {
                verbs: vec!["get".into(), "list".into()],
                api_groups: vec![String::new()],
                resources: vec!["pods".into()],
                ..Default::default()
            }],
        };
        let value = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "Role",
            role.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value["rules"],
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])
        );
        let role = ClusterRole {
            metadata: named("monitoring", None),
            rules: vec![PolicyRule {
                verbs: vec!["get".into()],
                non_resource_urls: vec!["/metrics".into()],
                ..Default::default()
            }],
            aggregation_rule: Some(AggregationRule {
                cluster_role_selectors: vec![LabelSelector {
                    match_labels: [("agg".to_owned(), "true".to_owned())]
                        .into_iter()
                        .collect(),
                    match_expressions: vec![SelectorRequirement {
                        key: Some("tier".into()),
                        operator: Some("Exists".into()),
                        values: Vec::new(),
                    }],
                }],
            }),
        };
        let value = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            role.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "monitoring"},
                "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}],
                "aggregationRule": {"clusterRoleSelectors": [{
                    "matchLabels": {"agg": "true"},
                    "matchExpressions": [{"key": "tier", "operator": "Exists"}],
                }]},
            })
        );
    }

    #[test]
    fn decodes_service_accounts() {
        let account = ServiceAccount {
            metadata: named("builder", Some("ci")),
            secrets: vec![ObjectReference {
                name: Some("builder-token".into()),
                ..Default::default()
            }],
            image_pull_secrets: vec![LocalObjectReference {
                name: Some("registry".into()),
            }],
            automount_service_account_token: Some(false),
        };
        let value = decode(&envelope("v1", "ServiceAccount", account.encode_to_vec())).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "builder", "namespace": "ci"},
                "secrets": [{"name": "builder-token"}],
                "imagePullSecrets": [{"name": "registry"}],
                "automountServiceAccountToken": false,
            })
        );
        let bare = decode(&envelope(
            "v1",
            "ServiceAccount",
            ServiceAccount::default().encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            bare,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {}})
        );
        let garbage = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            vec![0xff, 0xff],
        ));
        assert_eq!(garbage.unwrap_err().code, 400);
    }
}
