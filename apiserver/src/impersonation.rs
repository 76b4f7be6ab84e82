//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): the `Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>` headers, each
//! authorized with the `impersonate` verb before the request runs as the user they name, as
//! upstream's `WithImpersonation` filter
//! (`staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation.go`).

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::status::{ApiError, GroupResource};
use auth::user::{
    ALL_AUTHENTICATED, ALL_SERVICE_ACCOUNTS, ALL_UNAUTHENTICATED, ANONYMOUS,
    split_service_account_user_name,
};
use auth::{Attributes, UserInfo};
use axum::http::HeaderMap;

use crate::access::Access;

const USER: &str = "impersonate-user";
const UID: &str = "impersonate-uid";
const GROUP: &str = "impersonate-group";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// What the headers ask to act as.
#[derive(Debug, Default)]
struct Requested {
    user: Option<String>,
    uid: Option<String>,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
}

/// Percent-decodes an extra key (upstream's `unescapeExtraKey`); an invalid escape keeps the
/// text as sent.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_owned())
}

fn requested(headers: &HeaderMap) -> Result<Option<Requested>, ApiError> {
    let mut asked = Requested::default();
    let mut any = false;
    for (name, value) in headers {
        let name = name.as_str();
        if !name.starts_with("impersonate-") {
            continue;
        }
        any = true;
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad_request(format!("header {name} is not text")))?
            .to_owned();
        match name {
            USER => asked.user = Some(value),
            UID => asked.uid = Some(value),
            GROUP => asked.groups.push(value),
            other => match other.strip_prefix(EXTRA_PREFIX) {
                Some(key) => asked
                    .extra
                    .entry(unescape(key).to_lowercase())
                    .or_default()
                    .push(value),
                None => {
                    return Err(ApiError::bad_request(format!(
                        "unknown impersonation header {name}"
                    )));
                }
            },
        }
    }
    Ok(any.then_some(asked))
}

/// The attributes of impersonating one thing, as upstream builds them.
fn attributes(
    requestor: &Arc<UserInfo>,
    resource: &str,
    group: &str,
    namespace: &str,
    sub: &str,
    name: &str,
) -> Attributes {
    Attributes::resource(
        requestor.clone(),
        "impersonate",
        namespace,
        group,
        resource,
        sub,
        name,
    )
}

impl Access {
    /// The user `requestor` acts as: itself without impersonation headers, else the user
    /// they name once the chain allows `requestor` to impersonate each part of it.
    ///
    /// # Errors
    ///
    /// 403 (upstream's message) for any part the requestor may not impersonate, or for
    /// groups, uid or extras without a user; 400 for malformed headers.
    pub fn impersonate(
        &self,
        requestor: Arc<UserInfo>,
        headers: &HeaderMap,
    ) -> Result<Arc<UserInfo>, ApiError> {
        let Some(asked) = requested(headers)? else {
            return Ok(requestor);
        };
        let Some(name) = asked.user.clone().filter(|n| !n.is_empty()) else {
            let detail = "requested groups, uid or extras without impersonating a user";
            return Err(ApiError::forbidden(&GroupResource::new("", ""), "", detail));
        };
        let mut checks = Vec::new();
        match split_service_account_user_name(&name) {
            Some((namespace, account)) => {
                checks.push(attributes(
                    &requestor,
                    "serviceaccounts",
                    "",
                    namespace,
                    "",
                    account,
                ));
            }
            None => checks.push(attributes(&requestor, "users", "", "", "", &name)),
        }
        for group in &asked.groups {
            checks.push(attributes(&requestor, "groups", "", "", "", group));
        }
        for (key, values) in &asked.extra {
            for value in values {
                checks.push(attributes(
                    &requestor,
                    "userextras",
                    "authentication.k8s.io",
                    "",
                    key,
                    value,
                ));
            }
        }
        if let Some(uid) = &asked.uid {
            checks.push(attributes(
                &requestor,
                "uids",
                "authentication.k8s.io",
                "",
                "",
                uid,
            ));
        }
        for check in &checks {
            let verdict = self.authorize(check);
            if !verdict.allowed() {
                return Err(crate::access::forbidden(check, &verdict.reason));
            }
        }
        let mut groups = asked.groups;
        if let Some((namespace, _)) = split_service_account_user_name(&name) {
            if groups.is_empty() {
                groups = vec![
                    ALL_SERVICE_ACCOUNTS.to_owned(),
                    format!("{ALL_SERVICE_ACCOUNTS}:{namespace}"),
                ];
            }
        }
        // Non-anonymous users are authenticated, anonymous ones not, unless the headers
        // already said which.
        let implied = if name == ANONYMOUS {
            ALL_UNAUTHENTICATED
        } else {
            ALL_AUTHENTICATED
        };
        if !groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
        {
            groups.push(implied.to_owned());
        }
        Ok(Arc::new(UserInfo {
            name,
            uid: asked.uid.unwrap_or_default(),
            groups,
            extra: asked.extra,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AuthorizationMode;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_the_allowed_may_act_as_others() {
        let access = Access::new();
        assert!(access.set_modes(vec![AuthorizationMode::Rbac]));
        let alice = Arc::new(UserInfo::authenticated("alice", "", vec![]));
        let same = access
            .impersonate(alice.clone(), &HeaderMap::new())
            .unwrap();
        assert_eq!(same.name, "alice");
        let refused = access
            .impersonate(alice, &headers(&[("Impersonate-User", "bob")]))
            .unwrap_err();
        assert_eq!(refused.code, 403);
        assert_eq!(
            refused.message,
            r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
        );
        let root = Arc::new(UserInfo::authenticated(
            "root",
            "",
            vec!["system:masters".into()],
        ));
        let bob = access
            .impersonate(
                root.clone(),
                &headers(&[
                    ("Impersonate-User", "bob"),
                    ("Impersonate-Group", "devs"),
                    ("Impersonate-Extra-Scopes%2fOne", "read"),
                ]),
            )
            .unwrap();
        assert_eq!(bob.name, "bob");
        assert_eq!(bob.groups, vec!["devs", "system:authenticated"]);
        assert_eq!(bob.extra.get("scopes/one"), Some(&vec!["read".to_owned()]));
        let account = access
            .impersonate(
                root.clone(),
                &headers(&[("Impersonate-User", "system:serviceaccount:team:ci")]),
            )
            .unwrap();
        assert_eq!(
            account.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
        let groupless = access
            .impersonate(root, &headers(&[("Impersonate-Group", "devs")]))
            .unwrap_err();
        assert_eq!(groupless.code, 403);
    }
}
