//! Authorization: what a request asks ([`Attributes`]), the [`Authorizer`] trait that decides
//! it, and the authorizers every server has (upstream's
//! `staging/src/k8s.io/apiserver/pkg/authorization/authorizer` and `union`).

use std::sync::Arc;

use apimachinery::selector::go_quote;

use crate::user::UserInfo;

/// What a request asks to do, as upstream's `authorizer.AttributesRecord`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Who asks.
    pub user: Arc<UserInfo>,
    /// The verb: `get`, `list`, `watch`, `create`, ... for resources; the lowercase HTTP
    /// method for other paths; `bind`, `escalate`, `impersonate` for the checks of those.
    pub verb: String,
    /// Whether this is a request on an API resource (else on a non-resource path).
    pub resource_request: bool,
    /// The namespace (`""` for cluster-scoped resources and all-namespace requests).
    pub namespace: String,
    /// The API group (`""` for the core group).
    pub api_group: String,
    /// The API version.
    pub api_version: String,
    /// The plural resource.
    pub resource: String,
    /// The subresource (`""` for the main resource).
    pub subresource: String,
    /// The object name (`""` for collections).
    pub name: String,
    /// The request path (non-resource requests).
    pub path: String,
}

impl Attributes {
    /// A resource request of `user`.
    #[allow(clippy::too_many_arguments)]
    pub fn resource(
        user: Arc<UserInfo>,
        verb: &str,
        namespace: &str,
        api_group: &str,
        resource: &str,
        subresource: &str,
        name: &str,
    ) -> Self {
        Attributes {
            user,
            verb: verb.to_owned(),
            resource_request: true,
            namespace: namespace.to_owned(),
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            name: name.to_owned(),
            ..Attributes::default()
        }
    }

    /// A request of `user` on the non-resource `path`.
    pub fn non_resource(user: Arc<UserInfo>, verb: &str, path: &str) -> Self {
        Attributes {
            user,
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Attributes::default()
        }
    }

    /// `resource/subresource`, or the resource alone.
    pub fn resource_and_subresource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// Upstream's `forbiddenMessage`
    /// (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go`):
    /// `User "alice" cannot list resource "configmaps" in API group "" in the namespace "team"`.
    pub fn forbidden_message(&self) -> String {
        let user = go_quote(&self.user.name);
        if !self.resource_request {
            return format!(
                "User {user} cannot {} path {}",
                self.verb,
                go_quote(&self.path)
            );
        }
        let resource = go_quote(&self.resource_and_subresource());
        let group = go_quote(&self.api_group);
        if self.namespace.is_empty() {
            format!(
                "User {user} cannot {} resource {resource} in API group {group} at the cluster scope",
                self.verb
            )
        } else {
            format!(
                "User {user} cannot {} resource {resource} in API group {group} in the namespace {}",
                self.verb,
                go_quote(&self.namespace)
            )
        }
    }
}

/// An authorizer's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request is allowed.
    Allow,
    /// The request is denied, whatever later authorizers would say.
    Deny,
    /// This authorizer neither allows nor denies; the next one decides (the last: denied).
    NoOpinion,
}

/// A decision and why (the reason follows the forbidden message, as upstream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The decision.
    pub decision: Decision,
    /// Why, when the authorizer says (`""` otherwise).
    pub reason: String,
}

impl Verdict {
    /// Allowed, for `reason`.
    pub fn allow(reason: impl Into<String>) -> Self {
        Verdict {
            decision: Decision::Allow,
            reason: reason.into(),
        }
    }

    /// No opinion, for `reason` (may be empty).
    pub fn no_opinion(reason: impl Into<String>) -> Self {
        Verdict {
            decision: Decision::NoOpinion,
            reason: reason.into(),
        }
    }

    /// Whether the request is allowed.
    pub fn allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}

/// What one user may do in one namespace, as SelfSubjectRulesReview reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRules {
    /// Rules on resources.
    pub resource_rules: Vec<ResourceRule>,
    /// Rules on non-resource paths.
    pub non_resource_rules: Vec<NonResourceRule>,
    /// Whether the list may be incomplete (an authorizer that cannot list rules, or errors).
    pub incomplete: bool,
    /// Errors met while listing (missing roles).
    pub errors: Vec<String>,
}

/// A rule on resources (`authorization.k8s.io/v1` ResourceRule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceRule {
    /// Verbs.
    pub verbs: Vec<String>,
    /// API groups.
    pub api_groups: Vec<String>,
    /// Resources (`resource/subresource` for subresources).
    pub resources: Vec<String>,
    /// Object names; empty means all.
    pub resource_names: Vec<String>,
}

/// A rule on non-resource paths (`authorization.k8s.io/v1` NonResourceRule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NonResourceRule {
    /// Verbs.
    pub verbs: Vec<String>,
    /// Paths, a trailing `*` matching any suffix.
    pub non_resource_urls: Vec<String>,
}

/// Decides whether a request is allowed. Implementations are fast and in memory: they run on
/// every request.
pub trait Authorizer: Send + Sync {
    /// The verdict on `attributes`.
    fn authorize(&self, attributes: &Attributes) -> Verdict;

    /// What `user` may do in `namespace`, for SelfSubjectRulesReview. The default says the
    /// list is incomplete: an authorizer that cannot enumerate its rules.
    fn rules_for(&self, _user: &UserInfo, _namespace: &str) -> UserRules {
        UserRules {
            incomplete: true,
            ..UserRules::default()
        }
    }
}

impl<A: Authorizer + ?Sized> Authorizer for Arc<A> {
    fn authorize(&self, attributes: &Attributes) -> Verdict {
        (**self).authorize(attributes)
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> UserRules {
        (**self).rules_for(user, namespace)
    }
}

/// Allows everything (`--authorization-mode=AlwaysAllow`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _attributes: &Attributes) -> Verdict {
        Verdict::allow("")
    }

    fn rules_for(&self, _user: &UserInfo, _namespace: &str) -> UserRules {
        UserRules {
            resource_rules: vec![ResourceRule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                resource_names: Vec::new(),
            }],
            non_resource_rules: vec![NonResourceRule {
                verbs: vec!["*".into()],
                non_resource_urls: vec!["*".into()],
            }],
            ..UserRules::default()
        }
    }
}

/// Allows nothing (`--authorization-mode=AlwaysDeny`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysDeny;

impl Authorizer for AlwaysDeny {
    /// No opinion with upstream's reason: later links may still allow (upstream's
    /// `alwaysDenyAuthorizer` does the same).
    fn authorize(&self, _attributes: &Attributes) -> Verdict {
        Verdict::no_opinion("Everything is forbidden.")
    }

    fn rules_for(&self, _user: &UserInfo, _namespace: &str) -> UserRules {
        UserRules::default()
    }
}

/// Allows every request of a `system:masters` member, and has no opinion otherwise: the
/// first link of every chain, as upstream's privileged-group authorizer.
#[derive(Clone, Copy, Debug, Default)]
pub struct SuperuserAuthorizer;

impl Authorizer for SuperuserAuthorizer {
    fn authorize(&self, attributes: &Attributes) -> Verdict {
        if attributes.user.is_superuser() {
            Verdict::allow("")
        } else {
            Verdict::no_opinion("")
        }
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> UserRules {
        if user.is_superuser() {
            AlwaysAllow.rules_for(user, namespace)
        } else {
            UserRules::default()
        }
    }
}

/// Authorizers asked in order: the first that allows or denies decides; when all have no
/// opinion, the request is denied with their reasons joined (upstream's `union`).
#[derive(Clone, Default)]
pub struct AuthorizerChain {
    links: Vec<Arc<dyn Authorizer>>,
}

impl std::fmt::Debug for AuthorizerChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizerChain")
            .field("links", &self.links.len())
            .finish()
    }
}

impl AuthorizerChain {
    /// The chain of `links`.
    pub fn new(links: Vec<Arc<dyn Authorizer>>) -> Self {
        AuthorizerChain { links }
    }
}

impl Authorizer for AuthorizerChain {
    fn authorize(&self, attributes: &Attributes) -> Verdict {
        let mut reasons = Vec::new();
        for link in &self.links {
            let verdict = link.authorize(attributes);
            if verdict.decision != Decision::NoOpinion {
                return verdict;
            }
            if !verdict.reason.is_empty() {
                reasons.push(verdict.reason);
            }
        }
        Verdict::no_opinion(reasons.join("\n"))
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> UserRules {
        let mut all = UserRules::default();
        for link in &self.links {
            let rules = link.rules_for(user, namespace);
            all.resource_rules.extend(rules.resource_rules);
            all.non_resource_rules.extend(rules.non_resource_rules);
            all.incomplete |= rules.incomplete;
            all.errors.extend(rules.errors);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Arc<UserInfo> {
        Arc::new(UserInfo::authenticated("alice", "", vec![]))
    }

    #[test]
    fn forbidden_messages_read_as_upstream() {
        let list = Attributes::resource(alice(), "list", "team", "", "configmaps", "", "");
        assert_eq!(
            list.forbidden_message(),
            r#"User "alice" cannot list resource "configmaps" in API group "" in the namespace "team""#
        );
        let status = Attributes::resource(
            alice(),
            "update",
            "",
            "apps.example.io",
            "widgets",
            "status",
            "w",
        );
        assert_eq!(
            status.forbidden_message(),
            r#"User "alice" cannot update resource "widgets/status" in API group "apps.example.io" at the cluster scope"#
        );
        assert_eq!(go_quote("a\"b\\c\n\u{0}é"), r#""a\"b\\c\n\x00é""#);
        let path = Attributes::non_resource(alice(), "get", "/metrics");
        assert_eq!(
            path.forbidden_message(),
            r#"User "alice" cannot get path "/metrics""#
        );
    }

    #[test]
    fn chains_stop_at_the_first_decision() {
        let chain = AuthorizerChain::new(vec![Arc::new(SuperuserAuthorizer), Arc::new(AlwaysDeny)]);
        let attrs = Attributes::resource(alice(), "get", "", "", "namespaces", "", "x");
        let verdict = chain.authorize(&attrs);
        assert_eq!(verdict.decision, Decision::NoOpinion);
        assert_eq!(verdict.reason, "Everything is forbidden.");
        let then_allow = AuthorizerChain::new(vec![Arc::new(AlwaysDeny), Arc::new(AlwaysAllow)]);
        assert!(then_allow.authorize(&attrs).allowed());
        let root = Arc::new(UserInfo::authenticated(
            "root",
            "",
            vec!["system:masters".into()],
        ));
        let attrs = Attributes {
            user: root,
            ..attrs
        };
        assert!(chain.authorize(&attrs).allowed());
        let empty = AuthorizerChain::new(vec![Arc::new(SuperuserAuthorizer)]);
        let attrs = Attributes {
            user: alice(),
            ..attrs
        };
        assert_eq!(empty.authorize(&attrs).decision, Decision::NoOpinion);
    }
}
