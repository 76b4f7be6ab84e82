//! Role-based access control as upstream's RBAC authorizer
//! (`plugin/pkg/auth/authorizer/rbac/rbac.go`) and its registry's escalation checks
//! (`pkg/registry/rbac/escalation_check.go`, `pkg/registry/rbac/validation/rule.go`).
//!
//! The server keeps an [`RbacPolicy`] of every RBAC object, fed by watches, and publishes its
//! [`PolicyIndex`] to the [`RbacAuthorizer`] after each change; requests read the latest
//! index without waiting for writers.

pub mod bootstrap;
mod policy;
pub mod rules;

use std::sync::{Arc, RwLock};

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};

pub use policy::{PolicyIndex, PolicyKind, PolicyObject, RBAC_GROUP, RbacPolicy};

use crate::authz::{Attributes, Authorizer, NonResourceRule, ResourceRule, UserRules, Verdict};
use crate::user::UserInfo;

/// The RBAC authorizer: allows what some role bound to the user (by name, group or service
/// account) allows; has no opinion otherwise, giving missing roles as the reason.
#[derive(Debug, Default)]
pub struct RbacAuthorizer {
    index: RwLock<Arc<PolicyIndex>>,
}

impl RbacAuthorizer {
    /// An authorizer with no roles or bindings (it allows nothing) until
    /// [`RbacAuthorizer::publish`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the index requests are authorized against.
    pub fn publish(&self, index: PolicyIndex) {
        let index = Arc::new(index);
        match self.index.write() {
            Ok(mut current) => *current = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }

    /// The current index.
    pub fn index(&self) -> Arc<PolicyIndex> {
        match self.index.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Upstream's aggregate of errors: one as itself, several as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

impl Authorizer for RbacAuthorizer {
    fn authorize(&self, attributes: &Attributes) -> Verdict {
        match self.index().allows(attributes) {
            Ok(by) => Verdict::allow(format!("RBAC: allowed by {by}")),
            Err(errors) if errors.is_empty() => Verdict::no_opinion(""),
            Err(errors) => Verdict::no_opinion(format!("RBAC: {}", aggregate(&errors))),
        }
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> UserRules {
        let (rules, errors) = self.index().rules_of(user, namespace);
        let mut out = UserRules {
            incomplete: !errors.is_empty(),
            errors,
            ..UserRules::default()
        };
        for rule in rules {
            let own = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
            if rule.resources.as_ref().is_some_and(|r| !r.is_empty()) {
                out.resource_rules.push(ResourceRule {
                    verbs: rule.verbs.clone(),
                    api_groups: own(&rule.api_groups),
                    resources: own(&rule.resources),
                    resource_names: own(&rule.resource_names),
                });
            }
            if rule
                .non_resource_urls
                .as_ref()
                .is_some_and(|u| !u.is_empty())
            {
                out.non_resource_rules.push(NonResourceRule {
                    verbs: rule.verbs.clone(),
                    non_resource_urls: own(&rule.non_resource_urls),
                });
            }
        }
        out
    }
}

/// Why a write of a role or binding was refused.
#[derive(Clone, Debug, PartialEq)]
pub struct EscalationDenied {
    /// Upstream's message, such as `user "bob" (groups=["system:authenticated"]) is attempting
    /// to grant RBAC permissions not currently held:` and the missing rules.
    pub message: String,
    /// The role a binding names when it does not exist (upstream answers 404 for it, where
    /// the other refusals are 403).
    pub missing_role: Option<RoleRef>,
}

impl std::fmt::Display for EscalationDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The escalation checks of writes to roles and bindings: `user` may write what it already
/// holds, or anything when `authorizer` allows it `escalate` (roles) or `bind` (bindings), or
/// when it is a `system:masters` member.
pub struct EscalationCheck<'a> {
    /// The server's authorizer chain (asked about `escalate` and `bind`).
    pub authorizer: &'a dyn Authorizer,
    /// The RBAC index the author's own rules come from.
    pub index: &'a PolicyIndex,
    /// The author of the write.
    pub user: &'a Arc<UserInfo>,
}

impl EscalationCheck<'_> {
    fn authorized(&self, verb: &str, resource: &str, namespace: &str, name: &str) -> bool {
        self.user.is_superuser()
            || self
                .authorizer
                .authorize(&Attributes::resource(
                    self.user.clone(),
                    verb,
                    namespace,
                    RBAC_GROUP,
                    resource,
                    "",
                    name,
                ))
                .allowed()
    }

    /// Upstream's `ConfirmNoEscalation`: the author's rules in `namespace` must cover `rules`.
    pub fn confirm_no_escalation(
        &self,
        namespace: &str,
        rules: &[PolicyRule],
    ) -> Result<(), EscalationDenied> {
        let (owner, errors) = self.index.rules_of(self.user, namespace);
        let (covered, missing) = rules::covers(&owner, rules);
        if covered {
            return Ok(());
        }
        let mut described: Vec<String> = rules::compact(missing)
            .iter()
            .map(rules::compact_string)
            .collect();
        described.sort();
        described.dedup();
        let mut message = format!(
            "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            apimachinery::selector::go_quote(&self.user.name),
            rules::go_quoted(&self.user.groups),
            described.join("\n")
        );
        if !errors.is_empty() {
            // Go's `%v` of a one-element slice of upstream's aggregate error.
            message.push_str(&format!("; resolution errors: [{}]", aggregate(&errors)));
        }
        Err(EscalationDenied {
            message,
            missing_role: None,
        })
    }

    /// A create or update of the Role or ClusterRole (`resource` `roles` or `clusterroles`)
    /// `name` in `namespace` with `rules`; `aggregated` when a ClusterRole sets an
    /// aggregation rule, which only holders of every permission may do.
    pub fn check_role(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        rules: &[PolicyRule],
        aggregated: bool,
    ) -> Result<(), EscalationDenied> {
        if self.authorized("escalate", resource, namespace, name) {
            return Ok(());
        }
        if aggregated {
            let everything = PolicyRule {
                api_groups: Some(vec![rules::ALL.into()]),
                resources: Some(vec![rules::ALL.into()]),
                verbs: vec![rules::ALL.into()],
                ..PolicyRule::default()
            };
            let urls = PolicyRule {
                non_resource_urls: Some(vec![rules::ALL.into()]),
                verbs: vec![rules::ALL.into()],
                ..PolicyRule::default()
            };
            if self
                .confirm_no_escalation(namespace, &[everything, urls])
                .is_err()
            {
                return Err(EscalationDenied {
                    message: "must have cluster-admin privileges to use the aggregationRule".into(),
                    missing_role: None,
                });
            }
        }
        self.confirm_no_escalation(namespace, rules)
    }

    /// A create or update of a RoleBinding in `namespace` (or a ClusterRoleBinding, `""`)
    /// naming `role_ref`: allowed with `bind` on the role, or when the author holds the
    /// role's rules.
    pub fn check_binding(
        &self,
        namespace: &str,
        role_ref: &RoleRef,
    ) -> Result<(), EscalationDenied> {
        let resource = if role_ref.kind == "ClusterRole" {
            "clusterroles"
        } else {
            "roles"
        };
        if self.authorized("bind", resource, namespace, &role_ref.name) {
            return Ok(());
        }
        let rules = self
            .index
            .role_ref_rules(role_ref, namespace)
            .map_err(|message| EscalationDenied {
                message,
                missing_role: Some(role_ref.clone()),
            })?;
        self.confirm_no_escalation(namespace, &rules)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::authz::Decision;

    fn meta(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: (!namespace.is_empty()).then(|| namespace.into()),
            ..ObjectMeta::default()
        }
    }

    fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(resources.iter().map(|s| (*s).to_owned()).collect()),
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
            ..PolicyRule::default()
        }
    }

    fn subject(kind: &str, namespace: Option<&str>, name: &str) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.map(str::to_owned),
            api_group: None,
        }
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn policy() -> RbacPolicy {
        let mut policy = RbacPolicy::new();
        policy.put(PolicyObject::ClusterRole(ClusterRole {
            metadata: meta("", "reader"),
            rules: Some(vec![rule(&["configmaps"], &["get", "list", "watch"])]),
            ..ClusterRole::default()
        }));
        policy.put(PolicyObject::Role(Role {
            metadata: meta("team", "writer"),
            rules: Some(vec![rule(&["configmaps"], &["create", "update"])]),
        }));
        policy.put(PolicyObject::RoleBinding(RoleBinding {
            metadata: meta("team", "alice-reads"),
            role_ref: role_ref("ClusterRole", "reader"),
            subjects: Some(vec![
                subject("User", None, "alice"),
                subject("ServiceAccount", None, "builder"),
            ]),
        }));
        policy.put(PolicyObject::RoleBinding(RoleBinding {
            metadata: meta("team", "devs-write"),
            role_ref: role_ref("Role", "writer"),
            subjects: Some(vec![subject("Group", None, "devs")]),
        }));
        policy.put(PolicyObject::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta("", "dangling"),
            role_ref: role_ref("ClusterRole", "gone"),
            subjects: Some(vec![subject("Group", None, "devs")]),
        }));
        policy
    }

    fn ask(user: &Arc<UserInfo>, verb: &str, namespace: &str) -> Attributes {
        Attributes::resource(user.clone(), verb, namespace, "", "configmaps", "", "")
    }

    #[test]
    fn bindings_grant_their_roles_in_their_namespace() {
        let authorizer = RbacAuthorizer::new();
        authorizer.publish(policy().index());
        let alice = Arc::new(UserInfo::authenticated("alice", "", vec![]));
        let verdict = authorizer.authorize(&ask(&alice, "list", "team"));
        assert!(verdict.allowed());
        assert_eq!(
            verdict.reason,
            r#"RBAC: allowed by RoleBinding "alice-reads/team" of ClusterRole "reader" to User "alice""#
        );
        assert_eq!(
            authorizer.authorize(&ask(&alice, "list", "other")).decision,
            Decision::NoOpinion
        );
        assert_eq!(
            authorizer
                .authorize(&ask(&alice, "create", "team"))
                .decision,
            Decision::NoOpinion
        );
        let sa = Arc::new(UserInfo::authenticated(
            "system:serviceaccount:team:builder",
            "",
            vec![],
        ));
        assert!(authorizer.authorize(&ask(&sa, "watch", "team")).allowed());
        let dev = Arc::new(UserInfo::authenticated("bob", "", vec!["devs".into()]));
        assert!(authorizer.authorize(&ask(&dev, "create", "team")).allowed());
        let denied = authorizer.authorize(&ask(&dev, "delete", "team"));
        assert_eq!(denied.decision, Decision::NoOpinion);
        assert_eq!(
            denied.reason,
            r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#
        );
        let rules = authorizer.rules_for(&dev, "team");
        assert_eq!(rules.resource_rules.len(), 1);
        assert!(rules.incomplete);
    }

    #[test]
    fn writes_cannot_grant_more_than_their_author_holds() {
        let index = policy().index();
        let authorizer = RbacAuthorizer::new();
        authorizer.publish(policy().index());
        let bob = Arc::new(UserInfo::authenticated("bob", "", vec!["devs".into()]));
        let check = EscalationCheck {
            authorizer: &authorizer,
            index: &index,
            user: &bob,
        };
        assert!(
            check
                .check_role(
                    "roles",
                    "team",
                    "r",
                    &[rule(&["configmaps"], &["create"])],
                    false
                )
                .is_ok()
        );
        let denied = check
            .check_role(
                "roles",
                "team",
                "r",
                &[rule(&["configmaps", "secrets"], &["get", "create"])],
                false,
            )
            .unwrap_err();
        assert_eq!(
            denied.message,
            "user \"bob\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC \
             permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:[\"get\"]}\n\
             {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"create\"]}; resolution errors: \
             [clusterrole.rbac.authorization.k8s.io \"gone\" not found]"
        );
        assert!(
            check
                .check_binding("team", &role_ref("Role", "writer"))
                .is_ok()
        );
        assert!(
            check
                .check_binding("team", &role_ref("ClusterRole", "reader"))
                .is_err()
        );
        assert!(
            check
                .check_role("clusterroles", "", "agg", &[], true)
                .unwrap_err()
                .message
                .contains("aggregationRule")
        );
        let root = Arc::new(UserInfo::authenticated(
            "root",
            "",
            vec!["system:masters".into()],
        ));
        let check = EscalationCheck {
            user: &root,
            ..check
        };
        assert!(
            check
                .check_binding("", &role_ref("ClusterRole", "anything"))
                .is_ok()
        );
    }

    #[test]
    fn aggregation_collects_selected_rules() {
        let mut policy = policy();
        let mut labelled = ClusterRole {
            metadata: meta("", "extra"),
            rules: Some(vec![rule(&["secrets"], &["get"])]),
            ..ClusterRole::default()
        };
        labelled.metadata.labels = Some([("agg".to_owned(), "yes".to_owned())].into());
        policy.put(PolicyObject::ClusterRole(labelled));
        policy.put(PolicyObject::ClusterRole(ClusterRole {
            metadata: meta("", "combined"),
            aggregation_rule: Some(k8s_openapi::api::rbac::v1::AggregationRule {
                cluster_role_selectors: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                        match_labels: Some([("agg".to_owned(), "yes".to_owned())].into()),
                        ..Default::default()
                    },
                ]),
            }),
            ..ClusterRole::default()
        }));
        let updates = policy.aggregation_updates();
        assert_eq!(
            updates,
            vec![("combined".to_owned(), vec![rule(&["secrets"], &["get"])])]
        );
    }

    #[test]
    fn bootstrap_policy_parses() {
        let roles = bootstrap::cluster_roles().unwrap();
        let bindings = bootstrap::cluster_role_bindings().unwrap();
        for name in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer",
        ] {
            assert!(
                roles
                    .iter()
                    .any(|r| r.metadata.name.as_deref() == Some(name)),
                "{name}"
            );
        }
        assert!(
            bindings
                .iter()
                .any(|b| b.metadata.name.as_deref() == Some("cluster-admin"))
        );
    }
}
