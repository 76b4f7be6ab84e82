//! The request pipeline: authentication, routing, query parsing, verbs, discovery, OpenAPI,
//! health, metrics, watch streaming and Table rendering.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apimachinery::selector::{FieldSelector, LabelSelector, SelectionPredicate};
use apimachinery::status::ApiError;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use object_storage::{ListOptions, ResourceVersionMatch, WatchEvent};
use patch::{self, PatchType};
use scheme::{AGGREGATED_DISCOVERY_CONTENT_TYPE, GroupVersion};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::handler::{EncodedList, FieldValidation, RequestContext, ResourceHandler};
use crate::http::{
    MAX_BODY_BYTES, decode_body, error_response, json_response, json_response_typed,
    method_not_allowed, not_found, too_large,
};
use crate::routes::{self, ResourcePath, Route};
use crate::server::ServerState;

/// The Kubernetes version reported by `/version`: the minor of the kubectl we test against
/// (the gcloud kubectl dispatcher picks its client by this minor).
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "32");

/// The default lifetime of a watch without `timeoutSeconds`.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(3600);

/// The router: every request goes through [`handle`].
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

type Query = HashMap<String, String>;

fn parse_query(uri: &axum::http::Uri) -> Query {
    match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri) {
        Ok(q) => q.0.into_iter().collect(),
        Err(_) => HashMap::new(),
    }
}

fn q<'a>(query: &'a Query, key: &str) -> &'a str {
    query.get(key).map(String::as_str).unwrap_or_default()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Labels for metrics and logs of one request.
struct Labels {
    verb: &'static str,
    resource: String,
}

/// Entry point of every request.
async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", %method, %path, code = tracing::field::Empty);
    let mut labels = Labels {
        verb: "other",
        resource: String::new(),
    };
    let response = route(&state, request, &mut labels)
        .instrument(span.clone())
        .await;
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
    response
}

fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

async fn route(
    state: &Arc<ServerState>,
    request: Request,
    labels: &mut Labels,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_owned();
    if let Some(auth) = &state.auth {
        if !is_public(&path) {
            let header = header_str(request.headers(), header::AUTHORIZATION);
            let token = header.strip_prefix("Bearer ").unwrap_or_default().trim();
            if auth.authenticate(token).is_none() {
                return Err(ApiError::unauthorized("Unauthorized"));
            }
        }
    }
    let method = request.method().clone();
    let read_only = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        "/healthz" | "/livez" => {
            require_get(&method, &path)?;
            return Ok(text(StatusCode::OK, "ok"));
        }
        "/readyz" => {
            require_get(&method, &path)?;
            return Ok(match state.storage.ready().await {
                Ok(()) => text(StatusCode::OK, "ok"),
                Err(e) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("[-]storage failed: {e}\nreadyz check failed"),
                ),
            });
        }
        "/version" => {
            require_get(&method, &path)?;
            return Ok(json_response(StatusCode::OK, &version_info()));
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
    if let Some(rest) = path.strip_prefix("/openapi/v3") {
        require_get(&method, &path)?;
        let query = parse_query(request.uri());
        return state
            .kinds()
            .openapi
            .serve(rest, query.get("hash").map(String::as_str));
    }
    let accept = header_str(request.headers(), header::ACCEPT).to_owned();
    let Some(route) = routes::parse(&path) else {
        return Err(not_found());
    };
    let kinds = state.kinds();
    match route {
        Route::CoreVersions => {
            if !read_only {
                return Err(method_not_allowed(method.as_str(), &path));
            }
            if wants_aggregated(&accept) {
                return Ok(json_response_typed(
                    StatusCode::OK,
                    &kinds.mapper.aggregated_discovery(true),
                    AGGREGATED_DISCOVERY_CONTENT_TYPE,
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
                return Ok(json_response_typed(
                    StatusCode::OK,
                    &kinds.mapper.aggregated_discovery(false),
                    AGGREGATED_DISCOVERY_CONTENT_TYPE,
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
        Route::Resource(resource_path) => {
            resource_request(state, request, resource_path, labels).await
        }
    }
}

/// A `<Kind>List` response written from already encoded items (see
/// [`ResourceHandler::list_encoded`]): the list envelope is built as text around them.
fn list_response(kind: &str, api_version: &str, list: EncodedList) -> Result<Response, ApiError> {
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "resourceVersion".into(),
        Value::from(list.resource_version.to_string()),
    );
    if let Some(token) = list.continue_token {
        metadata.insert("continue".into(), Value::from(token));
    }
    if let Some(remaining) = list.remaining_item_count {
        metadata.insert("remainingItemCount".into(), Value::from(remaining));
    }
    let head = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
    let mut body =
        serde_json::to_vec(&head).map_err(|e| ApiError::internal(format!("encoding list: {e}")))?;
    // `head` is an object: replace its closing brace with the items and close again.
    body.pop();
    let size: usize = list.items.iter().map(|item| item.len() + 1).sum();
    body.reserve(size + 12);
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in list.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    let mut response = Response::new(axum::body::Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
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

fn text(code: StatusCode, body: &str) -> Response {
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
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

/// Whether an Accept header asks for a `meta.k8s.io` Table.
fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let part = part.replace(' ', "");
        part.contains("as=Table") && part.contains("g=meta.k8s.io")
    })
}

fn parse_bool(query: &Query, key: &str) -> Result<Option<bool>, ApiError> {
    match q(query, key) {
        "" => Ok(None),
        "true" | "1" => Ok(Some(true)),
        "false" | "0" => Ok(Some(false)),
        other => Err(ApiError::bad_request(format!(
            "invalid value {other:?} for {key}: must be true or false"
        ))),
    }
}

fn parse_i64(query: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    match q(query, key) {
        "" => Ok(None),
        other => other.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("invalid value {other:?} for {key}: not an integer"))
        }),
    }
}

fn dry_run(query: &Query) -> Result<bool, ApiError> {
    match q(query, "dryRun") {
        "" => Ok(false),
        "All" => Ok(true),
        other => Err(ApiError::bad_request(format!(
            "Invalid dry run value {other:?}: supported values are \"All\""
        ))),
    }
}

/// Builds and validates list/watch options from the query (apimachinery
/// `ValidateListOptions`).
fn list_options(query: &Query, watch: bool) -> Result<ListOptions, ApiError> {
    // The selectors' own messages are upstream's ("unable to parse requirement: ...",
    // "invalid selector: ...").
    let label = LabelSelector::parse(q(query, "labelSelector"))
        .map_err(|e| ApiError::bad_request(e.message()))?;
    let field = FieldSelector::parse(q(query, "fieldSelector"))
        .map_err(|e| ApiError::bad_request(e.message()))?;
    let limit = parse_i64(query, "limit")?;
    let continue_token = Some(q(query, "continue").to_owned()).filter(|c| !c.is_empty());
    let resource_version = q(query, "resourceVersion").to_owned();
    let rvm_raw = q(query, "resourceVersionMatch");
    let resource_version_match = ResourceVersionMatch::parse(rvm_raw);
    let send_initial_events = parse_bool(query, "sendInitialEvents")?;
    let allow_watch_bookmarks = parse_bool(query, "allowWatchBookmarks")?.unwrap_or(false);
    let mut errors = Vec::new();
    use apimachinery::status::FieldError;
    if watch {
        if send_initial_events.is_some() {
            if resource_version_match != ResourceVersionMatch::NotOlderThan {
                errors.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if continue_token.is_some() {
                errors.push(FieldError::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for continue",
                ));
            }
        } else if !rvm_raw.is_empty() {
            errors.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
    } else {
        if send_initial_events.is_some() {
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        if !rvm_raw.is_empty() {
            if resource_version.is_empty() {
                errors.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if continue_token.is_some() {
                errors.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            match &resource_version_match {
                ResourceVersionMatch::Other(other) => errors.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    other.as_str(),
                    &["Exact", "NotOlderThan", ""],
                )),
                ResourceVersionMatch::Exact if resource_version == "0" => {
                    errors.push(FieldError::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
                _ => {}
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", &errors));
    }
    Ok(ListOptions {
        resource_version,
        resource_version_match,
        predicate: SelectionPredicate {
            label,
            field,
            limit,
            continue_token,
            allow_watch_bookmarks,
        },
        recursive: true,
        // Backend progress notifications become BOOKMARK events for clients that allow them.
        progress_notify: watch && allow_watch_bookmarks,
        send_initial_events,
    })
}

fn delete_options(query: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut options: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    if let Some(grace) = parse_i64(query, "gracePeriodSeconds")? {
        options.grace_period_seconds = Some(grace);
    }
    let policy = q(query, "propagationPolicy");
    if !policy.is_empty() {
        options.propagation_policy = Some(policy.to_owned());
    }
    if let Some(orphan) = parse_bool(query, "orphanDependents")? {
        options.orphan_dependents = Some(orphan);
    }
    if dry_run(query)? {
        options.dry_run = Some(vec!["All".to_owned()]);
    }
    Ok(options)
}

async fn read_body(request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    if let Some(length) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if length > MAX_BODY_BYTES {
            return Err(too_large());
        }
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    Ok((parts.headers, bytes))
}

fn verb_allowed(handler: &dyn ResourceHandler, verb: &str, subresource: &str) -> bool {
    let info = handler.info();
    if subresource.is_empty() {
        info.verbs.iter().any(|v| v == verb)
    } else {
        info.subresources
            .iter()
            .any(|s| s.name == subresource && s.verbs.iter().any(|v| v == verb))
    }
}

async fn resource_request(
    state: &Arc<ServerState>,
    request: Request,
    path: ResourcePath,
    labels: &mut Labels,
) -> Result<Response, ApiError> {
    let gv = GroupVersion::new(path.group.clone(), path.version.clone());
    let handler = state.handler(&gv, &path.resource).ok_or_else(not_found)?;
    labels.resource = path.resource.clone();
    let info = handler.info().clone();
    if !info.namespaced && !path.namespace.is_empty() {
        return Err(not_found());
    }
    if !path.subresource.is_empty() && !info.has_subresource(&path.subresource) {
        return Err(not_found());
    }
    let query = parse_query(request.uri());
    let method = request.method().clone();
    let accept = header_str(request.headers(), header::ACCEPT).to_owned();
    let user_agent = header_str(request.headers(), header::USER_AGENT).to_owned();
    let content_type = header_str(request.headers(), header::CONTENT_TYPE).to_owned();
    let mut ctx = RequestContext {
        namespace: path.namespace.clone(),
        version: path.version.clone(),
        subresource: path.subresource.clone(),
        dry_run: false,
        field_manager: String::new(),
        force: false,
        field_validation: FieldValidation::default(),
    };
    let uri_path = request.uri().path().to_owned();
    let is_watch = path.legacy_watch || parse_bool(&query, "watch")?.unwrap_or(false);
    match method {
        Method::GET | Method::HEAD => {
            if is_watch {
                labels.verb = "watch";
                if !path.subresource.is_empty() || !verb_allowed(handler.as_ref(), "watch", "") {
                    return Err(method_not_allowed("GET", &uri_path));
                }
                let mut options = list_options(&query, true)?;
                if !path.name.is_empty() {
                    options.predicate.field =
                        FieldSelector::one_term_equal("metadata.name", &path.name);
                }
                let timeout = parse_i64(&query, "timeoutSeconds")?
                    .filter(|t| *t > 0)
                    .map(|t| Duration::from_secs(t.unsigned_abs()))
                    .unwrap_or(DEFAULT_WATCH_TIMEOUT);
                return serve_watch(state, handler, ctx, options, timeout, wants_table(&accept))
                    .await;
            }
            if path.name.is_empty() {
                labels.verb = "list";
                if !verb_allowed(handler.as_ref(), "list", "") {
                    return Err(method_not_allowed("GET", &uri_path));
                }
                let options = list_options(&query, false)?;
                if wants_table(&accept) {
                    let list = handler.list(&ctx, &options).await?;
                    let include = q(&query, "includeObject");
                    let body = table(
                        handler.as_ref(),
                        &ctx,
                        &list.items,
                        Some(list.resource_version.to_string()),
                        list.continue_token.clone(),
                        include,
                    );
                    return Ok(json_response(StatusCode::OK, &body));
                }
                let list = handler.list_encoded(&ctx, &options).await?;
                return list_response(&info.list_kind, &gv.api_version(), list);
            }
            labels.verb = "get";
            let object = handler
                .get(&ctx, &path.name, q(&query, "resourceVersion"))
                .await?;
            let body = if wants_table(&accept) {
                table(
                    handler.as_ref(),
                    &ctx,
                    std::slice::from_ref(&object),
                    None,
                    None,
                    q(&query, "includeObject"),
                )
            } else {
                object
            };
            Ok(json_response(StatusCode::OK, &body))
        }
        Method::POST => {
            labels.verb = "create";
            if !path.name.is_empty() || !path.subresource.is_empty() || path.legacy_watch {
                return Err(method_not_allowed("POST", &uri_path));
            }
            if !verb_allowed(handler.as_ref(), "create", "") {
                return Err(method_not_allowed("POST", &uri_path));
            }
            ctx.dry_run = dry_run(&query)?;
            let validation = FieldValidation::parse(q(&query, "fieldValidation"))?;
            ctx.field_manager = write_manager(&query, &user_agent)?;
            let (_, body) = read_body(request).await?;
            let value = decode_body(&content_type, &body)?;
            let warnings = check_object_fields(handler.as_ref(), &ctx, &body, &value, validation)?;
            // NamespaceLifecycle admission runs in the Store.
            let created = handler.create(&ctx, value).await?;
            Ok(with_warnings(
                json_response(StatusCode::CREATED, &created),
                &warnings,
            ))
        }
        Method::PUT => {
            labels.verb = "update";
            if path.name.is_empty() || path.legacy_watch {
                return Err(method_not_allowed("PUT", &uri_path));
            }
            if !verb_allowed(handler.as_ref(), "update", &path.subresource) {
                return Err(method_not_allowed("PUT", &uri_path));
            }
            ctx.dry_run = dry_run(&query)?;
            let validation = FieldValidation::parse(q(&query, "fieldValidation"))?;
            ctx.field_manager = write_manager(&query, &user_agent)?;
            let (_, body) = read_body(request).await?;
            let value = decode_body(&content_type, &body)?;
            let warnings = check_object_fields(handler.as_ref(), &ctx, &body, &value, validation)?;
            let (object, created) = handler.update(&ctx, &path.name, value).await?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(json_response(code, &object), &warnings))
        }
        Method::PATCH => {
            labels.verb = "patch";
            if path.name.is_empty() || path.legacy_watch {
                return Err(method_not_allowed("PATCH", &uri_path));
            }
            if !verb_allowed(handler.as_ref(), "patch", &path.subresource) {
                return Err(method_not_allowed("PATCH", &uri_path));
            }
            let patch_type =
                PatchType::from_content_type(&content_type, handler.supports_strategic_merge())?;
            ctx.dry_run = dry_run(&query)?;
            let validation = FieldValidation::parse(q(&query, "fieldValidation"))?;
            ctx.field_validation = validation;
            let force = parse_bool(&query, "force")?;
            let manager = Some(q(&query, "fieldManager")).filter(|m| !m.is_empty());
            patch::validate_patch_options(patch_type, manager, force)?;
            ctx.field_manager = patch::manager_or_user_agent(manager, &user_agent);
            ctx.force = force.unwrap_or(false);
            let (_, body) = read_body(request).await?;
            let mut warnings = Vec::new();
            if patch_type == PatchType::Apply {
                let config = patch::decode_apply_patch(&body)?;
                if let Some(kept) = handler.round_trip(&ctx, &config) {
                    crate::strict::reject_undeclared(&config, &kept, &ctx, &path.name, &info)?;
                }
                warnings = check_fields(handler.as_ref(), &ctx, &body, &config, validation)?;
            }
            let outcome = handler.patch(&ctx, &path.name, patch_type, &body).await?;
            warnings.extend(outcome.warnings);
            let code = if outcome.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(with_warnings(
                json_response(code, &outcome.object),
                &warnings,
            ))
        }
        Method::DELETE => {
            if path.legacy_watch || !path.subresource.is_empty() {
                return Err(method_not_allowed("DELETE", &uri_path));
            }
            ctx.dry_run = dry_run(&query)?;
            let (_, body) = read_body(request).await?;
            let options = delete_options(&query, &body)?;
            if path.name.is_empty() {
                labels.verb = "deletecollection";
                if !verb_allowed(handler.as_ref(), "deletecollection", "") {
                    return Err(method_not_allowed("DELETE", &uri_path));
                }
                let list = list_options(&query, false)?;
                let deleted = handler.delete_collection(&ctx, &options, &list).await?;
                return Ok(json_response(StatusCode::OK, &deleted));
            }
            labels.verb = "delete";
            if !verb_allowed(handler.as_ref(), "delete", "") {
                return Err(method_not_allowed("DELETE", &uri_path));
            }
            crate::namespace::admit_delete(&info, &path.name)?;
            let (object, deleted) = handler.delete(&ctx, &path.name, &options).await?;
            // As kube-apiserver: 202 only for an object kept (finalizers) when the client
            // asked for cascading deletion with `orphanDependents=false`; 200 otherwise.
            let code = if !deleted && options.orphan_dependents == Some(false) {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &object))
        }
        other => Err(method_not_allowed(other.as_str(), &uri_path)),
    }
}

fn write_manager(query: &Query, user_agent: &str) -> Result<String, ApiError> {
    let manager = Some(q(query, "fieldManager")).filter(|m| !m.is_empty());
    let errors = patch::validate_field_manager(manager.unwrap_or_default());
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            "CreateOptions",
            "meta.k8s.io",
            "",
            &errors,
        ));
    }
    Ok(patch::manager_or_user_agent(manager, user_agent))
}

/// `fieldValidation` of a create, update or apply body (`raw` as sent, `body` decoded): Strict
/// rejects unknown and duplicate fields (400), Warn returns them as warnings.
fn check_fields(
    handler: &dyn ResourceHandler,
    ctx: &RequestContext,
    raw: &[u8],
    body: &Value,
    validation: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    if validation == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let problems = match handler.round_trip(ctx, body) {
        Some(kept) => crate::strict::body_problems(raw, body, &kept),
        None => crate::strict::problems(&[], &crate::strict::duplicate_fields(raw)),
    };
    crate::strict::enforce(validation, problems)
}

/// [`check_fields`] for a create or update body: a Strict failure names the kind and version
/// the body could not be decoded as, as kube-apiserver's `transformDecodeError` does
/// (`ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: ...`).
fn check_object_fields(
    handler: &dyn ResourceHandler,
    ctx: &RequestContext,
    raw: &[u8],
    body: &Value,
    validation: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    check_fields(handler, ctx, raw, body, validation).map_err(|mut error| {
        let kind = &handler.info().kind;
        error.message = format!(
            "{kind} in version {:?} cannot be handled as a {kind}: {}",
            ctx.version, error.message
        );
        error
    })
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// A `meta.k8s.io/v1` Table of `objects`.
fn table(
    handler: &dyn ResourceHandler,
    ctx: &RequestContext,
    objects: &[Value],
    resource_version: Option<String>,
    continue_token: Option<String>,
    include_object: &str,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| table_row(handler, ctx, object, include_object))
        .collect();
    let mut metadata = serde_json::Map::new();
    if let Some(rv) = resource_version {
        metadata.insert("resourceVersion".into(), Value::from(rv));
    }
    if let Some(token) = continue_token {
        metadata.insert("continue".into(), Value::from(token));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": handler.table_columns(),
        "rows": rows,
    })
}

fn table_row(
    handler: &dyn ResourceHandler,
    ctx: &RequestContext,
    object: &Value,
    include_object: &str,
) -> Value {
    let row_object = match include_object {
        "None" => Value::Null,
        "Object" => object.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or(Value::Null),
        }),
    };
    json!({
        "cells": handler.table_cells(ctx, object),
        "object": row_object,
    })
}

/// Counts an open watch while alive.
struct WatchGuard(prometheus::IntGauge);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn serve_watch(
    state: &Arc<ServerState>,
    handler: Arc<dyn ResourceHandler>,
    ctx: RequestContext,
    options: ListOptions,
    timeout: Duration,
    as_table: bool,
) -> Result<Response, ApiError> {
    let events = handler.watch(&ctx, &options).await?;
    state.metrics.open_watches.inc();
    let guard = WatchGuard(state.metrics.open_watches.clone());
    let mut shutdown = state.shutdown_rx.clone();
    let stop = async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::select! {
            _ = deadline => {}
            _ = shutdown.wait_for(|v| *v) => {}
        }
    };
    let mut first = true;
    let stream = events
        .take_until(stop)
        .scan(false, |ended, event| {
            // Nothing follows an ERROR event.
            if *ended {
                return futures::future::ready(None);
            }
            if matches!(event, WatchEvent::Error(_)) {
                *ended = true;
            }
            futures::future::ready(Some(event))
        })
        .map(move |event| {
            let _alive = &guard;
            let (kind, object) = match event {
                WatchEvent::Added(o) => ("ADDED", o),
                WatchEvent::Modified(o) => ("MODIFIED", o),
                WatchEvent::Deleted(o) => ("DELETED", o),
                WatchEvent::Bookmark(o) => ("BOOKMARK", o),
                WatchEvent::Error(error) => (
                    "ERROR",
                    serde_json::to_value(error.to_status()).unwrap_or(Value::Null),
                ),
            };
            let object = if as_table && kind != "ERROR" && kind != "BOOKMARK" {
                let mut t = table(
                    handler.as_ref(),
                    &ctx,
                    std::slice::from_ref(&object),
                    None,
                    None,
                    "",
                );
                if !first {
                    if let Some(map) = t.as_object_mut() {
                        map.insert("columnDefinitions".into(), json!([]));
                    }
                }
                first = false;
                t
            } else {
                object
            };
            let mut line =
                serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
            line.push(b'\n');
            Ok::<Bytes, std::convert::Infallible>(Bytes::from(line))
        });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
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
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn list_option_validation() {
        let query: Query = [("resourceVersionMatch".to_owned(), "Exact".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(list_options(&query, false).unwrap_err().code, 422);
        let query: Query = [("labelSelector".to_owned(), "a in (".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(list_options(&query, false).unwrap_err().code, 400);
        let query: Query = [("sendInitialEvents".to_owned(), "true".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(list_options(&query, true).unwrap_err().code, 422);
    }
}
