//! The RBAC objects a server holds ([`RbacPolicy`]) and the index the authorizer reads
//! ([`PolicyIndex`]): who is bound to which role, found by user name and by group in one hash
//! lookup each, so a request costs the bindings of its user, not all bindings.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apimachinery::selector::LabelSelector;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use apimachinery::selector::go_quote;

use crate::user::{UserInfo, service_account_user_name};

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// One RBAC object, as the server's watches deliver them.
#[derive(Clone, Debug)]
pub enum PolicyObject {
    /// A namespaced Role.
    Role(Role),
    /// A ClusterRole.
    ClusterRole(ClusterRole),
    /// A RoleBinding.
    RoleBinding(RoleBinding),
    /// A ClusterRoleBinding.
    ClusterRoleBinding(ClusterRoleBinding),
}

/// The four RBAC kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Roles.
    Role,
    /// ClusterRoles.
    ClusterRole,
    /// RoleBindings.
    RoleBinding,
    /// ClusterRoleBindings.
    ClusterRoleBinding,
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_default()
}

impl PolicyObject {
    /// Which of the four kinds it is.
    pub fn kind(&self) -> PolicyKind {
        match self {
            PolicyObject::Role(_) => PolicyKind::Role,
            PolicyObject::ClusterRole(_) => PolicyKind::ClusterRole,
            PolicyObject::RoleBinding(_) => PolicyKind::RoleBinding,
            PolicyObject::ClusterRoleBinding(_) => PolicyKind::ClusterRoleBinding,
        }
    }
}

/// Every Role, ClusterRole, RoleBinding and ClusterRoleBinding, keyed by namespace and name.
#[derive(Clone, Debug, Default)]
pub struct RbacPolicy {
    roles: BTreeMap<(String, String), Role>,
    cluster_roles: BTreeMap<String, ClusterRole>,
    role_bindings: BTreeMap<(String, String), RoleBinding>,
    cluster_role_bindings: BTreeMap<String, ClusterRoleBinding>,
}

impl RbacPolicy {
    /// An empty policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces `object`.
    pub fn put(&mut self, object: PolicyObject) {
        match object {
            PolicyObject::Role(r) => {
                self.roles
                    .insert((namespace_of(&r.metadata), name_of(&r.metadata)), r);
            }
            PolicyObject::ClusterRole(r) => {
                self.cluster_roles.insert(name_of(&r.metadata), r);
            }
            PolicyObject::RoleBinding(b) => {
                self.role_bindings
                    .insert((namespace_of(&b.metadata), name_of(&b.metadata)), b);
            }
            PolicyObject::ClusterRoleBinding(b) => {
                self.cluster_role_bindings.insert(name_of(&b.metadata), b);
            }
        }
    }

    /// Removes `object` (matched by kind, namespace and name).
    pub fn remove(&mut self, object: &PolicyObject) {
        match object {
            PolicyObject::Role(r) => {
                self.roles
                    .remove(&(namespace_of(&r.metadata), name_of(&r.metadata)));
            }
            PolicyObject::ClusterRole(r) => {
                self.cluster_roles.remove(&name_of(&r.metadata));
            }
            PolicyObject::RoleBinding(b) => {
                self.role_bindings
                    .remove(&(namespace_of(&b.metadata), name_of(&b.metadata)));
            }
            PolicyObject::ClusterRoleBinding(b) => {
                self.cluster_role_bindings.remove(&name_of(&b.metadata));
            }
        }
    }

    /// Removes every object of `kind` (before a fresh list of them).
    pub fn clear(&mut self, kind: PolicyKind) {
        match kind {
            PolicyKind::Role => self.roles.clear(),
            PolicyKind::ClusterRole => self.cluster_roles.clear(),
            PolicyKind::RoleBinding => self.role_bindings.clear(),
            PolicyKind::ClusterRoleBinding => self.cluster_role_bindings.clear(),
        }
    }

    /// The ClusterRoles with an aggregation rule whose rules differ from what the rule
    /// selects, with the rules they should have: the roles the selectors match (itself
    /// excluded), in name order, each rule once, as upstream's ClusterRole aggregation
    /// controller (`pkg/controller/clusterroleaggregation`).
    pub fn aggregation_updates(&self) -> Vec<(String, Vec<PolicyRule>)> {
        let mut updates = Vec::new();
        for (name, role) in &self.cluster_roles {
            let Some(rule) = &role.aggregation_rule else {
                continue;
            };
            let selectors: Vec<LabelSelector> = rule
                .cluster_role_selectors
                .iter()
                .flatten()
                .filter_map(|s| LabelSelector::try_from(s).ok())
                .collect();
            let mut rules: Vec<PolicyRule> = Vec::new();
            for (other_name, other) in &self.cluster_roles {
                if other_name == name {
                    continue;
                }
                let labels = other.metadata.labels.clone().unwrap_or_default();
                if !selectors.iter().any(|s| s.matches(&labels)) {
                    continue;
                }
                for r in other.rules.iter().flatten() {
                    if !rules.contains(r) {
                        rules.push(r.clone());
                    }
                }
            }
            if role.rules.as_deref().unwrap_or_default() != rules.as_slice() {
                updates.push((name.clone(), rules));
            }
        }
        updates
    }

    /// The index of this policy.
    pub fn index(&self) -> PolicyIndex {
        let mut index = PolicyIndex::default();
        for ((namespace, name), role) in &self.roles {
            index
                .roles
                .entry(namespace.clone())
                .or_default()
                .insert(name.clone(), role.rules.clone().unwrap_or_default().into());
        }
        for (name, role) in &self.cluster_roles {
            index
                .cluster_roles
                .insert(name.clone(), role.rules.clone().unwrap_or_default().into());
        }
        for (name, binding) in &self.cluster_role_bindings {
            let grant = Arc::new(Grant {
                binding_kind: "ClusterRoleBinding",
                binding: name.clone(),
                namespace: String::new(),
                role_ref: binding.role_ref.clone(),
            });
            index
                .cluster
                .add(binding.subjects.iter().flatten(), "", &grant);
        }
        for ((namespace, name), binding) in &self.role_bindings {
            let grant = Arc::new(Grant {
                binding_kind: "RoleBinding",
                binding: name.clone(),
                namespace: namespace.clone(),
                role_ref: binding.role_ref.clone(),
            });
            index.namespaces.entry(namespace.clone()).or_default().add(
                binding.subjects.iter().flatten(),
                namespace,
                &grant,
            );
        }
        index
    }
}

/// One binding of a role to subjects.
#[derive(Debug)]
struct Grant {
    binding_kind: &'static str,
    binding: String,
    /// The binding's namespace (`""` for ClusterRoleBindings).
    namespace: String,
    role_ref: RoleRef,
}

/// Grants by the user name and by the group they bind.
#[derive(Debug, Default)]
struct Grants {
    users: HashMap<String, Vec<(Arc<Grant>, String)>>,
    groups: HashMap<String, Vec<(Arc<Grant>, String)>>,
}

impl Grants {
    /// Indexes `grant` under its subjects; service accounts without a namespace take the
    /// binding's (upstream's `appliesToUser`), and bind nothing in a ClusterRoleBinding.
    fn add<'a>(
        &mut self,
        subjects: impl Iterator<Item = &'a Subject>,
        namespace: &str,
        grant: &Arc<Grant>,
    ) {
        for subject in subjects {
            let (map, key, described) = match subject.kind.as_str() {
                "User" => (
                    &mut self.users,
                    subject.name.clone(),
                    format!("User {}", go_quote(&subject.name)),
                ),
                "Group" => (
                    &mut self.groups,
                    subject.name.clone(),
                    format!("Group {}", go_quote(&subject.name)),
                ),
                "ServiceAccount" => {
                    let sa_namespace = subject
                        .namespace
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .unwrap_or(namespace);
                    if sa_namespace.is_empty() {
                        continue;
                    }
                    // Upstream's `describeSubject`: name/namespace.
                    (
                        &mut self.users,
                        service_account_user_name(sa_namespace, &subject.name),
                        format!(
                            "ServiceAccount {}",
                            go_quote(&format!("{}/{sa_namespace}", subject.name))
                        ),
                    )
                }
                _ => continue,
            };
            map.entry(key).or_default().push((grant.clone(), described));
        }
    }

    /// The grants that apply to `user`.
    fn of<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = &'a (Arc<Grant>, String)> {
        let by_name = self.users.get(&user.name).into_iter().flatten();
        let by_group = user
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flatten();
        by_name.chain(by_group)
    }
}

/// An immutable index of an [`RbacPolicy`]: role rules by name and grants by subject.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    /// Role rules by namespace, then name (looked up without building a key).
    roles: HashMap<String, HashMap<String, Arc<[PolicyRule]>>>,
    cluster_roles: HashMap<String, Arc<[PolicyRule]>>,
    cluster: Grants,
    namespaces: HashMap<String, Grants>,
}

/// A missing role, as upstream words it.
fn not_found(role_ref: &RoleRef) -> String {
    if role_ref.kind == "ClusterRole" {
        format!(
            "clusterrole.{RBAC_GROUP} {} not found",
            go_quote(&role_ref.name)
        )
    } else {
        format!("role.{RBAC_GROUP} {} not found", go_quote(&role_ref.name))
    }
}

impl PolicyIndex {
    /// The rules `role_ref` names for a binding in `namespace` (`""`: a ClusterRoleBinding),
    /// or why there are none.
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Result<Arc<[PolicyRule]>, String> {
        let found = match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role_ref.name),
            "Role" if !namespace.is_empty() => self
                .roles
                .get(namespace)
                .and_then(|roles| roles.get(&role_ref.name)),
            _ => None,
        };
        found.cloned().ok_or_else(|| not_found(role_ref))
    }

    /// Visits every rule granted to `user` in `namespace` (cluster-wide grants first, then the
    /// namespace's), each binding once (through the first of its subjects that is the user),
    /// with the text of the grant; `visit` returns `false` to stop. Missing roles are reported
    /// to `missing`.
    fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        missing: &mut dyn FnMut(String),
        visit: &mut dyn FnMut(&str, &Grant, &PolicyRule) -> bool,
    ) {
        let local = (!namespace.is_empty())
            .then(|| self.namespaces.get(namespace))
            .flatten();
        let grants = self
            .cluster
            .of(user)
            .chain(local.into_iter().flat_map(|g| g.of(user)));
        // A binding can name the user and some of its groups; a user has few bindings, so a
        // short list remembers which were seen without allocating a set.
        let mut seen: Vec<*const Grant> = Vec::new();
        for (grant, subject) in grants {
            let id = Arc::as_ptr(grant);
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            match self.role_ref_rules(&grant.role_ref, &grant.namespace) {
                Ok(rules) => {
                    for rule in rules.iter() {
                        if !visit(subject, grant, rule) {
                            return;
                        }
                    }
                }
                Err(e) => missing(e),
            }
        }
    }

    /// Whether some rule granted to `user` allows `attributes`: the grant's text when one
    /// does (upstream's wording, `RoleBinding "name/namespace" of Role "r" to User "alice"`),
    /// else the errors met.
    pub fn allows(&self, attributes: &crate::authz::Attributes) -> Result<String, Vec<String>> {
        let mut errors = Vec::new();
        let mut allowed_by = None;
        self.visit(
            &attributes.user,
            &attributes.namespace,
            &mut |e| errors.push(e),
            &mut |subject, grant, rule| {
                if super::rules::rule_allows(attributes, rule) {
                    let binding = if grant.namespace.is_empty() {
                        go_quote(&grant.binding)
                    } else {
                        go_quote(&format!("{}/{}", grant.binding, grant.namespace))
                    };
                    allowed_by = Some(format!(
                        "{} {binding} of {} {} to {subject}",
                        grant.binding_kind,
                        grant.role_ref.kind,
                        go_quote(&grant.role_ref.name)
                    ));
                    return false;
                }
                true
            },
        );
        allowed_by.ok_or(errors)
    }

    /// Every rule granted to `user` in `namespace`, and the missing roles met.
    pub fn rules_of(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit(
            user,
            namespace,
            &mut |e| errors.push(e),
            &mut |_, _, rule| {
                rules.push(rule.clone());
                true
            },
        );
        (rules, errors)
    }
}
