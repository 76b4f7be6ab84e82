//! What a resource request asks for, decided once from its method, path and query, as
//! upstream's `RequestInfoFactory.NewRequestInfo`
//! (`staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`) does before any
//! handler runs.

use apimachinery::status::ApiError;
use axum::http::Method;

use crate::http::method_not_allowed;
use crate::query::Query;
use crate::routes::ResourcePath;

/// The verb of a resource request, named as discovery and RBAC name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    /// GET of one object (or a subresource of it).
    Get,
    /// GET of a collection.
    List,
    /// GET with `watch=true`, or of a legacy `/watch/` path.
    Watch,
    /// POST to a collection.
    Create,
    /// PUT of an object or subresource.
    Update,
    /// PATCH of an object or subresource.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

impl Verb {
    /// The verb's name (`get`, `deletecollection`, ...).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A resource request: its verb and what it addresses.
#[derive(Clone, Debug)]
pub(crate) struct RequestInfo {
    /// The verb.
    pub(crate) verb: Verb,
    /// Group, version, namespace, resource, name and subresource of the path.
    pub(crate) path: ResourcePath,
}

impl Verb {
    /// The verb `method` asks for on `path` (`watch`: the query's `watch` flag), before
    /// checking that the path can take it; `None` for a method no verb uses.
    pub(crate) fn of(method: &Method, path: &ResourcePath, watch: bool) -> Option<Verb> {
        let named = !path.name.is_empty();
        Some(match *method {
            Method::GET | Method::HEAD if path.legacy_watch || watch => Verb::Watch,
            Method::GET | Method::HEAD if named => Verb::Get,
            Method::GET | Method::HEAD => Verb::List,
            Method::POST => Verb::Create,
            Method::PUT => Verb::Update,
            Method::PATCH => Verb::Patch,
            Method::DELETE if named => Verb::Delete,
            Method::DELETE => Verb::DeleteCollection,
            _ => return None,
        })
    }

    /// Whether the verb can address `path`: creates go to collections (or to subresources of
    /// objects), updates and patches
    /// to objects, only main resources are watched and deleted, and legacy `/watch/` paths
    /// only watch.
    fn fits(self, path: &ResourcePath) -> bool {
        let named = !path.name.is_empty();
        let sub = !path.subresource.is_empty();
        match self {
            Verb::Get | Verb::List => true,
            Verb::Watch => !sub,
            // A collection, or a subresource of an object that takes creates
            // (`serviceaccounts/<name>/token`).
            Verb::Create => named == sub && !path.legacy_watch,
            Verb::Update | Verb::Patch => named && !path.legacy_watch,
            Verb::Delete | Verb::DeleteCollection => !sub && !path.legacy_watch,
        }
    }
}

impl RequestInfo {
    /// The request info of `method` on `path`. The verb is reported to `seen` as soon as it
    /// is known (for metrics), even when the path cannot take it: then 405 naming
    /// `uri_path`. An undecodable `watch` parameter is 400 whatever the method, as upstream
    /// decodes it with the rest of the list options.
    pub(crate) fn new(
        method: &Method,
        path: ResourcePath,
        query: &Query,
        uri_path: &str,
        seen: &mut dyn FnMut(Verb),
    ) -> Result<Self, ApiError> {
        let watch = query.bool("watch")?.unwrap_or(false);
        let not_allowed = || method_not_allowed(method.as_str(), uri_path);
        let verb = Verb::of(method, &path, watch).ok_or_else(not_allowed)?;
        seen(verb);
        if !verb.fits(&path) {
            return Err(not_allowed());
        }
        Ok(RequestInfo { verb, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str, subresource: &str) -> ResourcePath {
        ResourcePath {
            version: "v1".into(),
            namespace: "ns".into(),
            resource: "configmaps".into(),
            name: name.into(),
            subresource: subresource.into(),
            ..ResourcePath::default()
        }
    }

    fn verb(method: Method, path: ResourcePath, query: &str) -> Result<Verb, u16> {
        let uri: axum::http::Uri = format!("/x?{query}").parse().unwrap();
        RequestInfo::new(&method, path, &Query::parse(&uri), "/x", &mut |_| {})
            .map(|info| info.verb)
            .map_err(|e| e.code)
    }

    #[test]
    fn verbs_from_method_and_path() {
        assert_eq!(verb(Method::GET, path("", ""), ""), Ok(Verb::List));
        assert_eq!(verb(Method::GET, path("a", ""), ""), Ok(Verb::Get));
        assert_eq!(
            verb(Method::GET, path("", ""), "watch=true"),
            Ok(Verb::Watch)
        );
        assert_eq!(verb(Method::GET, path("a", "status"), "watch=1"), Err(405));
        assert_eq!(verb(Method::GET, path("", ""), "watch=maybe"), Err(400));
        assert_eq!(verb(Method::POST, path("", ""), ""), Ok(Verb::Create));
        assert_eq!(verb(Method::POST, path("a", ""), ""), Err(405));
        assert_eq!(verb(Method::POST, path("a", "token"), ""), Ok(Verb::Create));
        assert_eq!(verb(Method::PUT, path("", ""), ""), Err(405));
        assert_eq!(verb(Method::PUT, path("a", "status"), ""), Ok(Verb::Update));
        assert_eq!(verb(Method::PATCH, path("a", ""), ""), Ok(Verb::Patch));
        assert_eq!(
            verb(Method::DELETE, path("", ""), ""),
            Ok(Verb::DeleteCollection)
        );
        assert_eq!(verb(Method::DELETE, path("a", "status"), ""), Err(405));
        assert_eq!(verb(Method::OPTIONS, path("a", ""), ""), Err(405));
        assert_eq!(verb(Method::DELETE, path("", ""), "watch=yes"), Err(400));
    }
}
