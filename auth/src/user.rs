//! Who a request is: upstream's `user.Info` (`staging/src/k8s.io/apiserver/pkg/authentication/user`).

use std::collections::BTreeMap;

/// The group of the bootstrap superusers: members may do anything, whatever the authorizer.
pub const SYSTEM_MASTERS: &str = "system:masters";
/// The group every authenticated user is in.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of anonymous requests.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user name of anonymous requests.
pub const ANONYMOUS: &str = "system:anonymous";
/// The prefix of service account user names: `system:serviceaccount:<namespace>:<name>`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// The group of every service account.
pub const ALL_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

/// An authenticated (or anonymous) user: name, uid, groups and extra attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`alice`, `system:serviceaccount:team:builder`, `system:anonymous`).
    pub name: String,
    /// A unique id, when the authenticator knows one.
    pub uid: String,
    /// Groups, `system:authenticated` or `system:unauthenticated` included.
    pub groups: Vec<String>,
    /// Extra attributes (service account tokens carry the pod and credential ids here).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with `name`, `uid` and `groups`, and `system:authenticated` added to the groups
    /// as upstream's authenticators do (unless already there or the user is anonymous).
    pub fn authenticated(
        name: impl Into<String>,
        uid: impl Into<String>,
        groups: Vec<String>,
    ) -> Self {
        let mut user = UserInfo {
            name: name.into(),
            uid: uid.into(),
            groups,
            extra: BTreeMap::new(),
        };
        if user.name != ANONYMOUS && !user.in_group(ALL_AUTHENTICATED) {
            user.groups.push(ALL_AUTHENTICATED.to_owned());
        }
        user
    }

    /// The anonymous user: `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS.to_owned(),
            uid: String::new(),
            groups: vec![ALL_UNAUTHENTICATED.to_owned()],
            extra: BTreeMap::new(),
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Whether the user is a bootstrap superuser (`system:masters`).
    pub fn is_superuser(&self) -> bool {
        self.in_group(SYSTEM_MASTERS)
    }
}

/// The user name of service account `name` in `namespace`.
pub fn service_account_user_name(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
}

/// The namespace and name of a service account user name, if it is one.
pub fn split_service_account_user_name(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_service_accounts() {
        let alice = UserInfo::authenticated("alice", "1", vec!["dev".into()]);
        assert_eq!(alice.groups, vec!["dev", ALL_AUTHENTICATED]);
        assert!(!alice.is_superuser());
        assert_eq!(UserInfo::anonymous().groups, vec![ALL_UNAUTHENTICATED]);
        let sa = service_account_user_name("team", "builder");
        assert_eq!(
            split_service_account_user_name(&sa),
            Some(("team", "builder"))
        );
        assert_eq!(
            split_service_account_user_name("system:serviceaccount:x"),
            None
        );
        assert_eq!(split_service_account_user_name("alice"), None);
    }
}
