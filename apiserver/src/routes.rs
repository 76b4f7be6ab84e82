//! Parsing of Kubernetes REST paths (`RequestInfoFactory`).

/// What a resource path names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group (`""` for `/api/v1`).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace (`""`: cluster scope or all namespaces).
    pub namespace: String,
    /// Plural resource name.
    pub resource: String,
    /// Object name (`""` for collections).
    pub name: String,
    /// Subresource (`""` for the main resource).
    pub subresource: String,
    /// A legacy `/watch/` path.
    pub legacy_watch: bool,
}

/// What a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion(String, String),
    /// A resource path.
    Resource(ResourcePath),
}

/// Subresources of `namespaces` that keep the path on the namespace itself.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Parses an API path (`/api/...` or `/apis/...`); `None` when it is not one.
pub fn parse(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Some(Route::CoreVersions),
        ["apis"] => return Some(Route::Groups),
        ["apis", group] => return Some(Route::Group((*group).to_owned())),
        ["api", version] => return Some(Route::GroupVersion(String::new(), (*version).to_owned())),
        ["apis", group, version] => {
            return Some(Route::GroupVersion(
                (*group).to_owned(),
                (*version).to_owned(),
            ));
        }
        ["api", version, rest @ ..] => (String::new(), (*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => ((*group).to_owned(), (*version).to_owned(), rest),
        _ => return None,
    };
    if rest.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut out = ResourcePath {
        group,
        version,
        ..ResourcePath::default()
    };
    let mut rest = rest;
    if rest.first() == Some(&"watch") {
        out.legacy_watch = true;
        rest = &rest[1..];
    }
    let mut in_namespace = false;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        out.namespace = rest[1].to_owned();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
            in_namespace = true;
        }
    }
    match rest {
        [resource] => out.resource = (*resource).to_owned(),
        [resource, name] => {
            out.resource = (*resource).to_owned();
            out.name = (*name).to_owned();
        }
        [resource, name, sub] => {
            out.resource = (*resource).to_owned();
            out.name = (*name).to_owned();
            out.subresource = (*sub).to_owned();
        }
        _ => return None,
    }
    if out.group.is_empty() && out.resource == "namespaces" {
        if in_namespace {
            // `/api/v1/namespaces/a/namespaces/b`: namespaces live in no namespace.
            return None;
        }
        // `/api/v1/namespaces/<name>[/<sub>]`: the namespace is the object itself.
        out.namespace = String::new();
    }
    Some(Route::Resource(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Some(Route::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(parse("/api"), Some(Route::CoreVersions));
        assert_eq!(parse("/apis/"), Some(Route::Groups));
        assert_eq!(
            parse("/api/v1"),
            Some(Route::GroupVersion(String::new(), "v1".into()))
        );
        let r = res("/api/v1/namespaces/default/configmaps/x");
        assert_eq!(
            (r.namespace.as_str(), r.resource.as_str(), r.name.as_str()),
            ("default", "configmaps", "x")
        );
        let r = res("/api/v1/namespaces/foo");
        assert_eq!(
            (r.namespace.as_str(), r.resource.as_str(), r.name.as_str()),
            ("", "namespaces", "foo")
        );
        let r = res("/api/v1/namespaces/foo/status");
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.subresource.as_str()),
            ("namespaces", "foo", "status")
        );
        let r = res("/api/v1/namespaces");
        assert_eq!((r.resource.as_str(), r.name.as_str()), ("namespaces", ""));
        let r = res("/apis/apps.example.io/v1/namespaces/d/widgets/w/status");
        assert_eq!(
            (r.group.as_str(), r.subresource.as_str()),
            ("apps.example.io", "status")
        );
        let r = res("/api/v1/watch/namespaces/d/configmaps");
        assert!(r.legacy_watch);
        assert_eq!(r.namespace, "d");
        let r = res("/api/v1/configmaps");
        assert_eq!(
            (r.namespace.as_str(), r.resource.as_str()),
            ("", "configmaps")
        );
        assert_eq!(parse("/foo"), None);
        assert_eq!(parse("/api/v1/namespaces/a/namespaces/b"), None);
        let r = res("/apis/x.example.io/v1/namespaces/a/namespaces/b");
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("a", "b"));
        assert_eq!(parse("/api/v1/a/b/c/d"), None);
    }
}
