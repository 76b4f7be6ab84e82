//! `rbac.authorization.k8s.io/v1` Roles, ClusterRoles, RoleBindings and ClusterRoleBindings,
//! and core `v1` ServiceAccounts, validated as upstream's `pkg/apis/rbac/validation` and
//! `pkg/apis/core/validation` (`ValidateServiceAccount`). The escalation checks of writes to
//! roles and bindings need the author, so the API server runs them as admission.

use std::marker::PhantomData;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
    Subject,
};
use serde_json::Value;

use apimachinery::selector::LabelSelector;
use apimachinery::status::FieldError;
use registry::strategy::{Strategy, TableColumn, age, age_column, name_column};
use registry::validation::{name_is_dns_subdomain, validate_object_meta};

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `ValidateRBACName` (`path.IsValidPathSegmentName`): any name that is one path segment.
pub fn name_is_path_segment(name: &str, prefix: bool) -> Vec<String> {
    let mut errors = Vec::new();
    if !prefix && (name == "." || name == "..") {
        errors.push(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errors.push(format!("may not contain '{bad}'"));
        }
    }
    errors
}

/// `ValidatePolicyRule`: verbs, and either resources with groups or (cluster-wide only)
/// non-resource URLs.
fn validate_rule(rule: &PolicyRule, namespaced: bool, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let count = |v: &Option<Vec<String>>| v.as_ref().map_or(0, Vec::len);
    if rule.verbs.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    if count(&rule.non_resource_urls) > 0 {
        let urls = serde_json::to_value(&rule.non_resource_urls).unwrap_or(Value::Null);
        if namespaced {
            errors.push(FieldError::invalid(
                format!("{path}.nonResourceURLs"),
                urls,
                "namespaced rules cannot apply to non-resource URLs",
            ));
        } else if count(&rule.api_groups) > 0
            || count(&rule.resources) > 0
            || count(&rule.resource_names) > 0
        {
            errors.push(FieldError::invalid(
                format!("{path}.nonResourceURLs"),
                urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errors;
    }
    if count(&rule.api_groups) == 0 {
        errors.push(FieldError::required(
            format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if count(&rule.resources) == 0 {
        errors.push(FieldError::required(
            format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
    errors
}

fn validate_rules(rules: Option<&Vec<PolicyRule>>, namespaced: bool) -> Vec<FieldError> {
    rules
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, rule)| validate_rule(rule, namespaced, &format!("rules[{i}]")))
        .collect()
}

fn validate_aggregation(rule: Option<&AggregationRule>) -> Vec<FieldError> {
    let Some(rule) = rule else {
        return Vec::new();
    };
    let selectors = rule.cluster_role_selectors.as_deref().unwrap_or_default();
    if selectors.is_empty() {
        return vec![FieldError::required(
            "aggregationRule.clusterRoleSelectors",
            "at least one clusterRoleSelector required if aggregationRule is non-nil",
        )];
    }
    selectors
        .iter()
        .enumerate()
        .filter(|(_, s)| LabelSelector::try_from(*s).is_err())
        .map(|(i, s)| {
            FieldError::invalid(
                format!("aggregationRule.clusterRoleSelectors[{i}]"),
                serde_json::to_value(s).unwrap_or(Value::Null),
                "invalid label selector.",
            )
        })
        .collect()
}

/// `ValidateRoleBindingSubject` and the roleRef checks of `ValidateRoleBinding`.
fn validate_binding(
    role_ref: &RoleRef,
    subjects: Option<&Vec<Subject>>,
    namespaced: bool,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if role_ref.api_group != RBAC_GROUP {
        errors.push(FieldError::not_supported(
            "roleRef.apiGroup",
            role_ref.api_group.as_str(),
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&role_ref.kind.as_str()) {
        errors.push(FieldError::not_supported(
            "roleRef.kind",
            role_ref.kind.as_str(),
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errors.push(FieldError::required("roleRef.name", ""));
    } else {
        for message in name_is_path_segment(&role_ref.name, false) {
            errors.push(FieldError::invalid(
                "roleRef.name",
                role_ref.name.as_str(),
                message,
            ));
        }
    }
    for (i, subject) in subjects.into_iter().flatten().enumerate() {
        let path = format!("subjects[{i}]");
        let group = subject.api_group.as_deref().unwrap_or_default();
        if subject.name.is_empty() {
            errors.push(FieldError::required(format!("{path}.name"), ""));
        }
        match subject.kind.as_str() {
            "ServiceAccount" => {
                if !subject.name.is_empty() {
                    for message in name_is_dns_subdomain(&subject.name, false) {
                        errors.push(FieldError::invalid(
                            format!("{path}.name"),
                            subject.name.as_str(),
                            message,
                        ));
                    }
                }
                if !group.is_empty() {
                    errors.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        group,
                        &[""],
                    ));
                }
                if !namespaced && subject.namespace.as_deref().unwrap_or_default().is_empty() {
                    errors.push(FieldError::required(format!("{path}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    errors.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errors.push(FieldError::not_supported(
                format!("{path}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errors
}

fn role_ref_unchanged(new: &RoleRef, old: &RoleRef) -> Vec<FieldError> {
    if new == old {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            "roleRef",
            serde_json::to_value(new).unwrap_or(Value::Null),
            "cannot change roleRef",
        )]
    }
}

/// What the strategies of Roles and ClusterRoles read of them.
pub trait RulesKind: apimachinery::object::Object {
    /// Whether objects live in namespaces (Roles) or not (ClusterRoles).
    const NAMESPACED: bool;
    /// The rules.
    fn rules(&self) -> Option<&Vec<PolicyRule>>;
    /// The aggregation rule (ClusterRoles only).
    fn aggregation_rule(&self) -> Option<&AggregationRule> {
        None
    }
}

impl RulesKind for Role {
    const NAMESPACED: bool = true;
    fn rules(&self) -> Option<&Vec<PolicyRule>> {
        self.rules.as_ref()
    }
}

impl RulesKind for ClusterRole {
    const NAMESPACED: bool = false;
    fn rules(&self) -> Option<&Vec<PolicyRule>> {
        self.rules.as_ref()
    }
    fn aggregation_rule(&self) -> Option<&AggregationRule> {
        self.aggregation_rule.as_ref()
    }
}

/// What the strategies of RoleBindings and ClusterRoleBindings read of them.
pub trait BindingKind: apimachinery::object::Object {
    /// Whether objects live in namespaces (RoleBindings) or not (ClusterRoleBindings).
    const NAMESPACED: bool;
    /// The role bound.
    fn role_ref(&self) -> &RoleRef;
    /// Who it is bound to.
    fn subjects(&self) -> Option<&Vec<Subject>>;
}

impl BindingKind for RoleBinding {
    const NAMESPACED: bool = true;
    fn role_ref(&self) -> &RoleRef {
        &self.role_ref
    }
    fn subjects(&self) -> Option<&Vec<Subject>> {
        self.subjects.as_ref()
    }
}

impl BindingKind for ClusterRoleBinding {
    const NAMESPACED: bool = false;
    fn role_ref(&self) -> &RoleRef {
        &self.role_ref
    }
    fn subjects(&self) -> Option<&Vec<Subject>> {
        self.subjects.as_ref()
    }
}

/// `roles` and `clusterroles`: path-segment names, valid rules (non-resource URLs only at
/// cluster scope), and for ClusterRoles an optional aggregation rule.
#[derive(Debug)]
pub struct RulesStrategy<K>(PhantomData<fn(&K)>);

impl<K> Default for RulesStrategy<K> {
    fn default() -> Self {
        RulesStrategy(PhantomData)
    }
}

/// The strategy of `roles`.
pub type RoleStrategy = RulesStrategy<Role>;
/// The strategy of `clusterroles`.
pub type ClusterRoleStrategy = RulesStrategy<ClusterRole>;

impl<K: RulesKind> Strategy<K> for RulesStrategy<K> {
    fn namespace_scoped(&self) -> bool {
        K::NAMESPACED
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn validate(&self, role: &K) -> Vec<FieldError> {
        let mut errors = validate_object_meta(role.meta(), K::NAMESPACED, name_is_path_segment);
        errors.extend(validate_rules(role.rules(), K::NAMESPACED));
        errors.extend(validate_aggregation(role.aggregation_rule()));
        errors
    }

    fn validate_update(&self, new: &K, _old: &K) -> Vec<FieldError> {
        self.validate(new)
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    /// As upstream's RBAC strategies: a PUT of a missing role or binding creates it.
    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![name_column(), created_at_column()]
    }

    fn table_cells(&self, role: &K) -> Vec<Value> {
        vec![name_cell(role.meta()), created_at(role.meta())]
    }
}

/// `rolebindings` and `clusterrolebindings`: a roleRef (to a Role or ClusterRole; only a
/// ClusterRole at cluster scope) that never changes, and valid subjects (service accounts of
/// ClusterRoleBindings with their namespace).
#[derive(Debug)]
pub struct BindingStrategy<K>(PhantomData<fn(&K)>);

impl<K> Default for BindingStrategy<K> {
    fn default() -> Self {
        BindingStrategy(PhantomData)
    }
}

/// The strategy of `rolebindings`.
pub type RoleBindingStrategy = BindingStrategy<RoleBinding>;
/// The strategy of `clusterrolebindings`.
pub type ClusterRoleBindingStrategy = BindingStrategy<ClusterRoleBinding>;

impl<K: BindingKind> Strategy<K> for BindingStrategy<K> {
    fn namespace_scoped(&self) -> bool {
        K::NAMESPACED
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn validate(&self, binding: &K) -> Vec<FieldError> {
        let mut errors = validate_object_meta(binding.meta(), K::NAMESPACED, name_is_path_segment);
        errors.extend(validate_binding(
            binding.role_ref(),
            binding.subjects(),
            K::NAMESPACED,
        ));
        errors
    }

    fn validate_update(&self, new: &K, old: &K) -> Vec<FieldError> {
        let mut errors = self.validate(new);
        errors.extend(role_ref_unchanged(new.role_ref(), old.role_ref()));
        errors
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    /// As upstream's RBAC strategies: a PUT of a missing role or binding creates it.
    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        binding_columns()
    }

    fn table_cells(&self, binding: &K) -> Vec<Value> {
        binding_cells(binding)
    }
}

/// `serviceaccounts`: DNS-subdomain names.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServiceAccountStrategy;

impl Strategy<ServiceAccount> for ServiceAccountStrategy {
    fn namespace_scoped(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn validate(&self, account: &ServiceAccount) -> Vec<FieldError> {
        validate_object_meta(&account.metadata, true, name_is_dns_subdomain)
    }

    fn validate_update(&self, new: &ServiceAccount, _old: &ServiceAccount) -> Vec<FieldError> {
        self.validate(new)
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            name_column(),
            TableColumn::new(
                "Secrets",
                "string",
                "",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age_column(),
        ]
    }

    fn table_cells(&self, account: &ServiceAccount) -> Vec<Value> {
        vec![
            name_cell(&account.metadata),
            Value::from(account.secrets.as_ref().map_or(0, Vec::len)),
            Value::from(age(account)),
        ]
    }
}

type Meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn name_cell(meta: &Meta) -> Value {
    Value::from(meta.name.clone().unwrap_or_default())
}

fn created_at_column() -> TableColumn {
    TableColumn::new("Created At", "date", "", "CreationTimestamp of the object")
}

fn created_at(meta: &Meta) -> Value {
    meta.creation_timestamp
        .as_ref()
        .map_or(Value::Null, |t| Value::from(t.0.to_string()))
}

fn binding_columns() -> Vec<TableColumn> {
    let mut users = TableColumn::new("Users", "string", "", "Users in the roleBinding");
    users.priority = 1;
    let mut groups = TableColumn::new("Groups", "string", "", "Groups in the roleBinding");
    groups.priority = 1;
    let mut accounts = TableColumn::new(
        "ServiceAccounts",
        "string",
        "",
        "ServiceAccounts in the roleBinding",
    );
    accounts.priority = 1;
    vec![
        name_column(),
        TableColumn::new("Role", "string", "", "Role to which the roleBinding refers"),
        age_column(),
        users,
        groups,
        accounts,
    ]
}

fn binding_cells<K: BindingKind>(binding: &K) -> Vec<Value> {
    let subjects = binding.subjects().map(Vec::as_slice).unwrap_or_default();
    let of_kind = |kind: &str| -> Value {
        let names: Vec<String> = subjects
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| match (&s.namespace, kind) {
                (Some(ns), "ServiceAccount") if !ns.is_empty() => format!("{ns}/{}", s.name),
                _ => s.name.clone(),
            })
            .collect();
        Value::from(names.join(", "))
    };
    let role_ref = binding.role_ref();
    vec![
        name_cell(binding.meta()),
        Value::from(format!("{}/{}", role_ref.kind, role_ref.name)),
        Value::from(age(binding)),
        of_kind("User"),
        of_kind("Group"),
        of_kind("ServiceAccount"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(kind: &str, subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: Meta {
                name: Some("b".into()),
                namespace: Some("team".into()),
                ..Meta::default()
            },
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: kind.into(),
                name: "r".into(),
            },
            subjects: Some(subjects),
        }
    }

    fn subject(kind: &str, group: Option<&str>, name: &str) -> Subject {
        Subject {
            kind: kind.into(),
            api_group: group.map(str::to_owned),
            name: name.into(),
            namespace: None,
        }
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.detail))
            .collect()
    }

    #[test]
    fn bindings_are_validated_as_upstream() {
        let ok = binding(
            "ClusterRole",
            vec![
                subject("User", Some(RBAC_GROUP), "alice"),
                subject("ServiceAccount", None, "sa"),
            ],
        );
        assert!(RoleBindingStrategy::default().validate(&ok).is_empty());
        let bad = binding(
            "Secret",
            vec![subject("Robot", None, "x"), subject("User", None, "")],
        );
        let fields: Vec<String> = RoleBindingStrategy::default()
            .validate(&bad)
            .iter()
            .map(|e| e.field.clone())
            .collect();
        assert_eq!(
            fields,
            vec![
                "roleRef.kind",
                "subjects[0].kind",
                "subjects[1].name",
                "subjects[1].apiGroup"
            ]
        );
        let mut changed = ok.clone();
        changed.role_ref.name = "other".into();
        assert_eq!(
            messages(&RoleBindingStrategy::default().validate_update(&changed, &ok)),
            vec!["roleRef: cannot change roleRef"]
        );
        let cluster = ClusterRoleBinding {
            metadata: Meta {
                name: Some("c".into()),
                ..Meta::default()
            },
            role_ref: ok.role_ref.clone(),
            subjects: Some(vec![subject("ServiceAccount", None, "sa")]),
        };
        assert_eq!(
            ClusterRoleBindingStrategy::default()
                .validate(&cluster)
                .iter()
                .map(|e| e.field.clone())
                .collect::<Vec<_>>(),
            vec!["subjects[0].namespace"]
        );
    }

    #[test]
    fn rules_are_validated_as_upstream() {
        let role = Role {
            metadata: Meta {
                name: Some("a/b".into()),
                namespace: Some("t".into()),
                ..Meta::default()
            },
            rules: Some(vec![
                PolicyRule {
                    verbs: vec![],
                    ..PolicyRule::default()
                },
                PolicyRule {
                    verbs: vec!["get".into()],
                    non_resource_urls: Some(vec!["/x".into()]),
                    ..PolicyRule::default()
                },
            ]),
        };
        assert_eq!(
            messages(&RoleStrategy::default().validate(&role)),
            vec![
                "metadata.name: may not contain '/'",
                "rules[0].verbs: verbs must contain at least one value",
                "rules[0].apiGroups: resource rules must supply at least one api group",
                "rules[0].resources: resource rules must supply at least one resource",
                "rules[1].nonResourceURLs: namespaced rules cannot apply to non-resource URLs",
            ]
        );
    }
}
