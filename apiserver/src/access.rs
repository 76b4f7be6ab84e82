//! Who sends each request and whether they may: authentication (bearer tokens, anonymous
//! requests) and authorization (the `--authorization-mode` chain), run once per request
//! before routing, as upstream's `WithAuthentication` and `WithAuthorization` filters
//! (`staging/src/k8s.io/apiserver/pkg/endpoints/filters/`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use apimachinery::selector::FieldSelector;
use apimachinery::status::{ApiError, GroupResource};
use auth::authz::{AlwaysAllow, AlwaysDeny, SuperuserAuthorizer};
use auth::rbac::RbacAuthorizer;
use auth::{
    Attributes, Authorizer, AuthorizerChain, TokenAuthenticator, TokenAuthenticators, TokenOutcome,
    UserInfo, Verdict,
};
use axum::http::{HeaderMap, Method, header};

use crate::query::Query;
use crate::request::Verb;
use crate::routes::{ResourcePath, Route};

/// One link of `--authorization-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// Allow every request (upstream's default, and this server's).
    AlwaysAllow,
    /// Deny every request.
    AlwaysDeny,
    /// Role-based access control over the `rbac.authorization.k8s.io` objects.
    Rbac,
}

impl AuthorizationMode {
    /// Parses upstream's comma-separated mode list (`RBAC`, `AlwaysAllow,RBAC`, ...).
    ///
    /// # Errors
    ///
    /// An unknown or repeated mode, or an empty list.
    pub fn parse_list(text: &str) -> Result<Vec<AuthorizationMode>, String> {
        let mut modes = Vec::new();
        for part in text.split(',').map(str::trim) {
            let mode = match part {
                "AlwaysAllow" => AuthorizationMode::AlwaysAllow,
                "AlwaysDeny" => AuthorizationMode::AlwaysDeny,
                "RBAC" => AuthorizationMode::Rbac,
                other => {
                    return Err(format!(
                        "authorization-mode {other:?} is not a valid mode; supported modes: \
                         AlwaysAllow, AlwaysDeny, RBAC"
                    ));
                }
            };
            if modes.contains(&mode) {
                return Err(format!(
                    "authorization-mode {part:?} is given more than once"
                ));
            }
            modes.push(mode);
        }
        Ok(modes)
    }
}

/// How requests are authenticated.
#[derive(Clone, Debug)]
pub struct Authentication {
    tokens: TokenAuthenticators,
    anonymous: bool,
}

impl Default for Authentication {
    /// No authenticators and anonymous requests accepted: every request is
    /// `system:anonymous` (the zero-configuration single-user mode, with `AlwaysAllow`).
    fn default() -> Self {
        Authentication {
            tokens: TokenAuthenticators::new(),
            anonymous: true,
        }
    }
}

impl Authentication {
    /// Bearer tokens checked by `tokens`; requests without credentials are
    /// `system:anonymous` when `anonymous`, else 401 (except health checks and `/version`).
    pub fn new(tokens: TokenAuthenticators, anonymous: bool) -> Self {
        Authentication { tokens, anonymous }
    }
}

/// The verified client certificate chain of a TLS connection (leaf first), put on each
/// request by the TLS acceptor.
#[derive(Clone, Debug, Default)]
pub struct PeerCertificates(pub Option<Arc<Vec<Vec<u8>>>>);

/// The authentication and authorization of one server. The builder configures it (each part
/// once, before serving); handlers and admission hold it from registration on.
pub struct Access {
    authentication: OnceLock<Authentication>,
    service_accounts: OnceLock<Arc<dyn TokenAuthenticator>>,
    token_issuer: OnceLock<Arc<auth::service_account::TokenIssuer>>,
    modes: OnceLock<Vec<AuthorizationMode>>,
    custom: OnceLock<Arc<dyn Authorizer>>,
    chain: OnceLock<AuthorizerChain>,
    rbac: Arc<RbacAuthorizer>,
    /// Whether the RBAC controller has published an index of every RBAC kind.
    rbac_synced: AtomicBool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("authentication", &self.authentication.get())
            .field("modes", &self.modes.get())
            .finish_non_exhaustive()
    }
}

impl Default for Access {
    fn default() -> Self {
        Self::new()
    }
}

impl Access {
    /// Unconfigured: until set, no authenticators with anonymous requests accepted, and
    /// `AlwaysAllow`.
    pub fn new() -> Self {
        Access {
            authentication: OnceLock::new(),
            service_accounts: OnceLock::new(),
            token_issuer: OnceLock::new(),
            modes: OnceLock::new(),
            custom: OnceLock::new(),
            chain: OnceLock::new(),
            rbac: Arc::new(RbacAuthorizer::new()),
            rbac_synced: AtomicBool::new(false),
        }
    }

    /// Sets the authentication; `false` when it was already set or used.
    pub fn set_authentication(&self, authentication: Authentication) -> bool {
        self.authentication.set(authentication).is_ok()
    }

    /// Sets the authorization modes after the `system:masters` link; `false` when they were
    /// already set or the chain is already in use.
    pub fn set_modes(&self, modes: Vec<AuthorizationMode>) -> bool {
        self.chain.get().is_none() && self.modes.set(modes).is_ok()
    }

    /// Puts `authorizer` into the chain after the `system:masters` link and before the modes
    /// (an embedder's own policy); `false` when one was already set or the chain is in use.
    pub fn set_custom_authorizer(&self, authorizer: Arc<dyn Authorizer>) -> bool {
        self.chain.get().is_none() && self.custom.set(authorizer).is_ok()
    }

    /// The authentication.
    pub fn authentication(&self) -> &Authentication {
        self.authentication.get_or_init(Authentication::default)
    }

    /// Sets the issuer of service account tokens; `false` when one was already set.
    pub fn set_token_issuer(&self, issuer: Arc<auth::service_account::TokenIssuer>) -> bool {
        self.token_issuer.set(issuer).is_ok()
    }

    /// The issuer of service account tokens, when the server issues them.
    pub fn token_issuer(&self) -> Option<&Arc<auth::service_account::TokenIssuer>> {
        self.token_issuer.get()
    }

    /// Sets the authenticator of service account tokens (once the service accounts' store
    /// exists); `false` when one was already set.
    pub fn set_service_account_authenticator(
        &self,
        authenticator: Arc<dyn TokenAuthenticator>,
    ) -> bool {
        self.service_accounts.set(authenticator).is_ok()
    }

    /// The audiences of tokens for this server: the service account issuer's API audiences.
    pub fn api_audiences(&self) -> &[String] {
        self.token_issuer
            .get()
            .map_or(&[][..], |issuer| issuer.api_audiences())
    }

    /// What `token` authenticates as for one of `audiences` (empty: this server's): the
    /// static tokens, then service account tokens. Static tokens have no audiences; as
    /// upstream's `WrapAudienceAgnosticToken`, they count for the server's own audiences only.
    pub async fn authenticate_token(&self, token: &str, audiences: &[String]) -> TokenOutcome {
        let outcome = self
            .authentication()
            .tokens
            .authenticate_token(token, audiences)
            .await;
        match outcome {
            TokenOutcome::NotMine => match self.service_accounts.get() {
                Some(accounts) => accounts.authenticate_token(token, audiences).await,
                None => TokenOutcome::NotMine,
            },
            TokenOutcome::Authenticated(mut valid) if valid.audiences.is_empty() => {
                let own = self.api_audiences();
                if audiences.is_empty() {
                    valid.audiences = own.to_vec();
                    return TokenOutcome::Authenticated(valid);
                }
                valid.audiences = audiences
                    .iter()
                    .filter(|a| own.contains(a))
                    .cloned()
                    .collect();
                if valid.audiences.is_empty() {
                    TokenOutcome::Invalid(format!(
                        "token audiences {own:?} is invalid for the target audiences {audiences:?}"
                    ))
                } else {
                    TokenOutcome::Authenticated(valid)
                }
            }
            outcome => outcome,
        }
    }

    /// The user of a request with `headers` to `path`, over a connection with the verified
    /// client certificates `peer`: a client certificate wins (as upstream tries x509 first),
    /// then a bearer token, then the request is anonymous (when allowed).
    ///
    /// # Errors
    ///
    /// 401 for an invalid token or certificate, or for no credentials when anonymous requests
    /// are refused.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        path: &str,
        peer: Option<&PeerCertificates>,
    ) -> Result<Arc<UserInfo>, ApiError> {
        if let Some(leaf) = peer
            .and_then(|p| p.0.as_ref())
            .and_then(|chain| chain.first())
        {
            match auth::x509::user_of_certificate(leaf) {
                Ok(user) => return Ok(Arc::new(user)),
                // A verified certificate without a user name: a token may still tell.
                Err(reason) => tracing::debug!(%reason, "client certificate names no user"),
            }
        }
        let value = crate::http::header_str(headers, header::AUTHORIZATION);
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let Some(token) = token {
            return match self.authenticate_token(token, &[]).await {
                TokenOutcome::Authenticated(valid) => Ok(Arc::new(valid.user)),
                TokenOutcome::NotMine => Err(ApiError::unauthorized("Unauthorized")),
                TokenOutcome::Invalid(reason) => {
                    tracing::debug!(%reason, "token refused");
                    Err(ApiError::unauthorized("Unauthorized"))
                }
            };
        }
        // Health checks and the version stay open to anonymous requests, as upstream's
        // anonymous-endpoint configuration commonly allows; under RBAC they are still
        // authorized (system:public-info-viewer grants them).
        if self.authentication().anonymous || crate::dispatch::is_public(path) {
            Ok(Arc::new(UserInfo::anonymous()))
        } else {
            Err(ApiError::unauthorized("Unauthorized"))
        }
    }

    /// The authorization modes (`AlwaysAllow` unless set).
    pub fn modes(&self) -> &[AuthorizationMode] {
        self.modes
            .get_or_init(|| vec![AuthorizationMode::AlwaysAllow])
    }

    /// The RBAC authorizer (fed by the RBAC controller, asked by the escalation checks even
    /// when RBAC is not in the chain).
    pub fn rbac(&self) -> &Arc<RbacAuthorizer> {
        &self.rbac
    }

    /// Whether RBAC is in the chain.
    pub fn enforces_rbac(&self) -> bool {
        self.modes().contains(&AuthorizationMode::Rbac)
    }

    /// Records that the RBAC index holds every role and binding (listed once).
    pub fn mark_rbac_synced(&self) {
        self.rbac_synced.store(true, Ordering::Release);
    }

    /// Whether the RBAC index holds every role and binding.
    pub fn rbac_synced(&self) -> bool {
        self.rbac_synced.load(Ordering::Acquire)
    }

    /// The chain: `system:masters`, an embedder's authorizer if any, then the modes.
    pub fn chain(&self) -> &AuthorizerChain {
        self.chain.get_or_init(|| {
            let mut links: Vec<Arc<dyn Authorizer>> = vec![Arc::new(SuperuserAuthorizer)];
            if let Some(custom) = self.custom.get() {
                links.push(custom.clone());
            }
            for mode in self.modes() {
                links.push(match mode {
                    AuthorizationMode::AlwaysAllow => Arc::new(AlwaysAllow),
                    AuthorizationMode::AlwaysDeny => Arc::new(AlwaysDeny),
                    AuthorizationMode::Rbac => self.rbac.clone(),
                });
            }
            AuthorizerChain::new(links)
        })
    }

    /// What the chain lets `user` do in `namespace` (SelfSubjectRulesReview).
    pub fn chain_rules(&self, user: &UserInfo, namespace: &str) -> auth::authz::UserRules {
        self.chain().rules_for(user, namespace)
    }

    /// The verdict of the chain on `attributes`.
    pub fn authorize(&self, attributes: &Attributes) -> Verdict {
        self.chain().authorize(attributes)
    }
}

/// Upstream's `Forbidden` response: the forbidden message (HTML-escaped) and the reason.
pub fn forbidden(attributes: &Attributes, reason: &str) -> ApiError {
    let message = attributes
        .forbidden_message()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let detail = if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    };
    // A non-resource request has no resource: upstream's message is then `forbidden: ...`.
    let resource = GroupResource::new(attributes.api_group.clone(), attributes.resource.clone());
    ApiError::forbidden(&resource, &attributes.name, detail)
}

/// The authorization attributes of a request, as upstream's `RequestInfoFactory` decides
/// them from the method, path and query alone (before knowing whether the resource exists).
pub(crate) fn request_attributes(
    user: Arc<UserInfo>,
    method: &Method,
    path: &str,
    route: Option<&Route>,
    query: &Query,
) -> Attributes {
    let Some(Route::Resource(resource)) = route else {
        return Attributes::non_resource(user, &method.as_str().to_ascii_lowercase(), path);
    };
    resource_attributes(user, method, resource, query)
}

fn resource_attributes(
    user: Arc<UserInfo>,
    method: &Method,
    path: &ResourcePath,
    query: &Query,
) -> Attributes {
    // An undecodable `watch` is the handler's 400 to give; authorization reads it as a list.
    let watch = query.bool("watch").ok().flatten().unwrap_or(false);
    let verb = Verb::of(method, path, watch).map_or_else(
        || method.as_str().to_ascii_lowercase(),
        |v| v.as_str().to_owned(),
    );
    let mut name = path.name.clone();
    if name.is_empty() && (verb == "list" || verb == "watch") {
        // A list or watch of one object by `metadata.name=` is authorized as on that name,
        // when the selector parses and the name is one path segment (requestinfo.go).
        if let Ok(selector) = FieldSelector::parse(query.get("fieldSelector")) {
            if let Some(one) = selector.requires_exact_match("metadata.name") {
                if builtin_kinds::rbac::name_is_path_segment(one, false).is_empty()
                    && !one.is_empty()
                {
                    name = one.to_owned();
                }
            }
        }
    }
    let mut namespace = path.namespace.clone();
    if path.group.is_empty() && path.resource == "namespaces" && !path.name.is_empty() {
        // `/api/v1/namespaces/<name>`: the namespace is the object itself.
        namespace = path.name.clone();
    }
    let mut attributes = Attributes::resource(
        user,
        &verb,
        &namespace,
        &path.group,
        &path.resource,
        &path.subresource,
        &name,
    );
    attributes.api_version = path.version.clone();
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(method: Method, path: &str) -> Attributes {
        let uri: axum::http::Uri = path.parse().unwrap();
        let route = crate::routes::parse(uri.path());
        request_attributes(
            Arc::new(UserInfo::anonymous()),
            &method,
            uri.path(),
            route.as_ref(),
            &Query::parse(&uri),
        )
    }

    #[test]
    fn attributes_as_request_info() {
        let a = attributes(Method::GET, "/api/v1/namespaces/team/configmaps?watch=true");
        assert_eq!(
            (a.verb.as_str(), a.namespace.as_str(), a.resource.as_str()),
            ("watch", "team", "configmaps")
        );
        let a = attributes(
            Method::GET,
            "/api/v1/namespaces/team/configmaps?fieldSelector=metadata.name%3Dx",
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "x"));
        let a = attributes(Method::GET, "/api/v1/namespaces/team");
        assert_eq!(
            (a.verb.as_str(), a.namespace.as_str(), a.name.as_str()),
            ("get", "team", "team")
        );
        let a = attributes(
            Method::PUT,
            "/apis/apps.example.io/v1/namespaces/d/widgets/w/status",
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.api_group.as_str(),
                a.subresource.as_str()
            ),
            ("update", "apps.example.io", "status")
        );
        let a = attributes(Method::GET, "/apis");
        assert!(!a.resource_request);
        assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", "/apis"));
        let a = attributes(Method::DELETE, "/api/v1/namespaces/d/configmaps");
        assert_eq!(a.verb, "deletecollection");
        assert_eq!(
            AuthorizationMode::parse_list("RBAC,AlwaysAllow")
                .unwrap()
                .len(),
            2
        );
        assert!(AuthorizationMode::parse_list("Node").is_err());
    }

    #[test]
    fn forbidden_responses_read_as_upstream() {
        let alice = Arc::new(UserInfo::authenticated("alice", "", vec![]));
        let a = Attributes::resource(alice.clone(), "list", "team", "", "configmaps", "", "");
        let e = forbidden(&a, "");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            r#"configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "team""#
        );
        let a = Attributes::non_resource(alice, "get", "/metrics");
        assert_eq!(
            forbidden(&a, "").message,
            r#"forbidden: User "alice" cannot get path "/metrics""#
        );
    }
}
