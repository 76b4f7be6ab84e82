//! The entry of every request: authentication and authorization ([`crate::access`]), then
//! the non-resource paths (health, version, metrics, discovery, OpenAPI) here, and resource
//! requests through [`endpoints::serve`](crate::endpoints::serve).

use std::sync::Arc;
use std::time::Instant;

use apimachinery::status::ApiError;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use scheme::{AGGREGATED_DISCOVERY_CONTENT_TYPE, GroupVersion};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::audit::AuditEvent;
use crate::endpoints::RequestLabels;
use crate::http::{
    error_response, header_str, json_response, method_not_allowed, not_found, text_response as text,
};
use crate::query::Query;
use crate::routes::{self, Route};
use crate::server::ServerState;

/// The Kubernetes version reported by `/version`: the minor of the kubectl we test against
/// (the gcloud kubectl dispatcher picks its client by this minor).
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "32");

/// The router: every request goes through [`handle`].
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// Entry point of every request.
async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let started = Instant::now();
    let received = k8s_openapi::jiff::Timestamp::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // What the audit log needs of the request, taken before it is consumed.
    let audited = state.audit.as_ref().map(|_| {
        let uri = request.uri().to_string();
        let user_agent = header_str(request.headers(), header::USER_AGENT).to_owned();
        let source = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0);
        (uri, user_agent, source)
    });
    let mut decided = Decided::default();
    let span = tracing::info_span!("request", %method, %path, code = tracing::field::Empty);
    let mut labels = RequestLabels {
        verb: "other",
        resource: String::new(),
    };
    let exempt = crate::inflight::is_exempt(&method, &path, request.uri().query());
    let response = match state.inflight.admit(&method, exempt) {
        // The slot is held until the response is built (watch streams are exempt).
        Ok(_slot) => {
            route(&state, request, &mut labels, &mut decided)
                .instrument(span.clone())
                .await
        }
        Err(refused) => Err(refused),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    let code = response.status().as_u16();
    span.record("code", code);
    tracing::debug!(parent: &span, code, elapsed_ms = started.elapsed().as_millis() as u64, "done");
    state
        .metrics
        .observe_request(labels.verb, &labels.resource, code, started);
    if let (Some(log), Some((uri, user_agent, source))) = (&state.audit, &audited) {
        log.record(&AuditEvent {
            received,
            uri,
            method: method.as_str(),
            user: decided.user.as_ref(),
            attributes: decided.attributes.as_ref(),
            verdict: decided.verdict.as_ref(),
            source: *source,
            user_agent,
            code,
            streaming: labels.verb == "watch" && code < 300,
        });
    }
    response
}

/// Who sent a request and what authorization made of it, as far as it got.
#[derive(Default)]
struct Decided {
    user: Option<Arc<auth::UserInfo>>,
    attributes: Option<auth::Attributes>,
    verdict: Option<auth::Verdict>,
}

/// Health checks and `/version`: open to anonymous requests (still authorized), and exempt
/// from the in-flight limits.
pub(crate) fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

async fn route(
    state: &Arc<ServerState>,
    mut request: Request,
    labels: &mut RequestLabels,
    decided: &mut Decided,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<crate::access::PeerCertificates>()
        .cloned();
    let authenticated = state
        .access
        .authenticate(request.headers(), &path, peer.as_ref())
        .await?;
    decided.user = Some(authenticated.clone());
    let user = state.access.impersonate(authenticated, request.headers())?;
    let parsed = routes::parse(&path);
    let attributes = crate::access::request_attributes(
        user.clone(),
        request.method(),
        &path,
        parsed.as_ref(),
        &Query::parse(request.uri()),
    );
    let verdict = state.access.authorize(&attributes);
    let refused =
        (!verdict.allowed()).then(|| crate::access::forbidden(&attributes, &verdict.reason));
    decided.user = Some(user.clone());
    decided.attributes = Some(attributes);
    decided.verdict = Some(verdict);
    if let Some(refused) = refused {
        return Err(refused);
    }
    request.extensions_mut().insert(user);
    let method = request.method().clone();
    let read_only = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        "/healthz" | "/livez" => {
            require_get(&method, &path)?;
            return Ok(text(StatusCode::OK, "ok"));
        }
        "/readyz" => {
            require_get(&method, &path)?;
            if let Err(e) = state.storage.ready().await {
                return Ok(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("[-]storage failed: {e}\nreadyz check failed"),
                ));
            }
            // As upstream's `rbac/bootstrap-roles` check: under RBAC, not ready before the
            // authorizer has seen every role and binding once.
            if state.access.enforces_rbac() && !state.access.rbac_synced() {
                return Ok(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "[-]poststarthook/rbac/bootstrap-roles failed: not finished\nreadyz check failed",
                ));
            }
            return Ok(text(StatusCode::OK, "ok"));
        }
        "/version" => {
            require_get(&method, &path)?;
            return Ok(json_response(StatusCode::OK, &version_info()));
        }
        crate::backup::BACKUP_PATH => {
            require_get(&method, &path)?;
            return crate::backup::serve(state.storage.clone());
        }
        "/metrics" => {
            require_get(&method, &path)?;
            let mut response = Response::new(Body::from(state.metrics.render()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return Ok(response);
        }
        _ => {}
    }
    if path == "/openapi/v2" {
        require_get(&method, &path)?;
        let accept = header_str(request.headers(), header::ACCEPT);
        let if_none_match = header_str(request.headers(), header::IF_NONE_MATCH);
        return Ok(state.kinds().openapi_v2.serve(accept, if_none_match));
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3") {
        require_get(&method, &path)?;
        let query = Query::parse(request.uri());
        return state.kinds().openapi.serve(rest, query.optional("hash"));
    }
    let accept = header_str(request.headers(), header::ACCEPT).to_owned();
    let Some(route) = parsed else {
        return Err(not_found());
    };
    let kinds = state.kinds();
    match route {
        Route::CoreVersions => {
            if !read_only {
                return Err(method_not_allowed(method.as_str(), &path));
            }
            if wants_aggregated(&accept) {
                return Ok(aggregated_discovery(
                    &kinds.mapper.aggregated_discovery(true),
                    header_str(request.headers(), header::IF_NONE_MATCH),
                ));
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "APIVersions",
                    "versions": kinds.mapper.core_versions(),
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": state.server_address}
                    ],
                }),
            ))
        }
        Route::Groups => {
            if !read_only {
                return Err(method_not_allowed(method.as_str(), &path));
            }
            if wants_aggregated(&accept) {
                return Ok(aggregated_discovery(
                    &kinds.mapper.aggregated_discovery(false),
                    header_str(request.headers(), header::IF_NONE_MATCH),
                ));
            }
            Ok(json_response(
                StatusCode::OK,
                &to_json(&kinds.mapper.api_group_list())?,
            ))
        }
        Route::Group(group) => {
            if !read_only {
                return Err(method_not_allowed(method.as_str(), &path));
            }
            let group = kinds.mapper.api_group(&group).ok_or_else(not_found)?;
            Ok(json_response(StatusCode::OK, &to_json(&group)?))
        }
        Route::GroupVersion(group, version) => {
            if !read_only {
                return Err(method_not_allowed(method.as_str(), &path));
            }
            let list = kinds
                .mapper
                .api_resource_list(&GroupVersion::new(group, version))
                .ok_or_else(not_found)?;
            Ok(json_response(StatusCode::OK, &to_json(&list)?))
        }
        Route::Resource(path) => crate::endpoints::serve(state, request, path, labels).await,
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(format!("encoding: {e}")))
}

fn require_get(method: &Method, path: &str) -> Result<(), ApiError> {
    if method == Method::GET || method == Method::HEAD {
        Ok(())
    } else {
        Err(method_not_allowed(method.as_str(), path))
    }
}

fn version_info() -> Value {
    let (major, minor) = KUBERNETES_VERSION;
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An aggregated discovery document with its ETag, or 304 Not Modified when the client holds
/// the current one (upstream's `ServeHTTPWithETag`): the ETag changes with every kind added
/// or removed, which is how clients learn of new CRDs.
fn aggregated_discovery(document: &Value, if_none_match: &str) -> Response {
    // Serialised once: the bytes are both the body and what the ETag hashes.
    let body = match serde_json::to_vec(document) {
        Ok(body) => body,
        Err(e) => return error_response(&ApiError::internal(format!("encoding response: {e}"))),
    };
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&body, &mut hasher);
    let etag = format!("\"{:016X}\"", std::hash::Hasher::finish(&hasher));
    let mut response = if if_none_match == etag {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(Body::from(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(AGGREGATED_DISCOVERY_CONTENT_TYPE),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
    response
}

/// Whether an Accept header asks for aggregated discovery v2 first.
fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let part = part.replace(' ', "");
        part.contains("g=apidiscovery.k8s.io")
            && part.contains("v=v2")
            && !part.contains("v=v2beta1")
            && part.contains("as=APIGroupDiscoveryList")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json, */*"));
    }
}
