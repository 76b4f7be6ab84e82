//! One handler per verb of a resource request, as upstream's
//! `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/` (`get.go`, `create.go`,
//! `update.go`, `patch.go`, `delete.go`, `watch.go`). [`serve`] finds the resource's
//! [`ResourceHandler`], decides the [`RequestInfo`] once and hands the request to the verb's
//! handler, which reads its typed options from the query once and answers.

use std::sync::Arc;

use apimachinery::selector::FieldSelector;
use apimachinery::status::ApiError;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use patch::PatchType;
use scheme::GroupVersion;

use crate::handler::{RequestBody, RequestContext, ResourceHandler};
use crate::http::{
    MAX_BODY_BYTES, decode_body, json_response, list_response, method_not_allowed, not_found,
    too_large, with_warnings,
};
use crate::query::Query;
use crate::request::{RequestInfo, Verb};
use crate::routes::ResourcePath;
use crate::server::ServerState;
use crate::table::{TableRequest, wants_table};

/// What metrics and logs record of a request.
#[derive(Debug)]
pub(crate) struct RequestLabels {
    /// The verb (`other` for non-resource requests and methods no verb uses).
    pub(crate) verb: &'static str,
    /// The served resource (`""` until one is found).
    pub(crate) resource: String,
}

/// A resource request after routing: everything the verb handlers read, parsed once.
struct ResourceRequest {
    handler: Arc<dyn ResourceHandler>,
    /// Who sends it (authenticated by the dispatcher).
    user: Arc<auth::UserInfo>,
    info: RequestInfo,
    query: Query,
    headers: HeaderMap,
    body: axum::body::Body,
    /// The request path, for 405 messages.
    uri_path: String,
}

impl ResourceRequest {
    fn header(&self, name: header::HeaderName) -> &str {
        crate::http::header_str(&self.headers, name)
    }

    /// The handler context of this request; writes fill in their options.
    fn context(&self) -> RequestContext {
        let path = &self.info.path;
        RequestContext {
            namespace: path.namespace.clone(),
            version: path.version.clone(),
            subresource: path.subresource.clone(),
            user: self.user.clone(),
            ..RequestContext::default()
        }
    }

    /// A write's context: `dryRun`, `fieldValidation` and the field manager from the query
    /// (`options_kind` names the options type in a 422 about the manager).
    fn write_context(&self, options_kind: &str) -> Result<RequestContext, ApiError> {
        let mut ctx = self.context();
        ctx.dry_run = self.query.dry_run(options_kind)?;
        ctx.field_validation = self.query.field_validation()?;
        ctx.field_manager = self
            .query
            .write_manager(options_kind, self.header(header::USER_AGENT))?;
        Ok(ctx)
    }

    /// The body, at most [`MAX_BODY_BYTES`] (413 beyond).
    async fn read_body(&mut self) -> Result<Bytes, ApiError> {
        let length = self
            .header(header::CONTENT_LENGTH)
            .parse::<usize>()
            .unwrap_or(0);
        if length > MAX_BODY_BYTES {
            return Err(too_large());
        }
        let body = std::mem::take(&mut self.body);
        axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| too_large())
    }

    /// The body of a create or update, decoded from its content type once.
    async fn write_body(&mut self) -> Result<RequestBody, ApiError> {
        let raw = self.read_body().await?;
        let document = decode_body(self.header(header::CONTENT_TYPE), &raw)?;
        Ok(RequestBody { raw, document })
    }

    /// A delete's context and options (body and query), then its verb checked, in
    /// kube-apiserver's order.
    async fn delete_options(&mut self) -> Result<(RequestContext, DeleteOptions), ApiError> {
        let mut ctx = self.context();
        ctx.dry_run = self.query.dry_run("DeleteOptions")?;
        let body = self.read_body().await?;
        let options = self.query.delete_options(&body)?;
        self.require_verb("")?;
        Ok((ctx, options))
    }

    /// 405 unless the resource (or the addressed subresource) serves the request's verb.
    fn require_verb(&self, subresource: &str) -> Result<(), ApiError> {
        let info = self.handler.info();
        let verb = self.info.verb.as_str();
        let allowed = if subresource.is_empty() {
            info.verbs.iter().any(|v| v == verb)
        } else {
            info.subresources
                .iter()
                .any(|s| s.name == subresource && s.verbs.iter().any(|v| v == verb))
        };
        if allowed {
            Ok(())
        } else {
            let method = match self.info.verb {
                Verb::Get | Verb::List | Verb::Watch => "GET",
                Verb::Create => "POST",
                Verb::Update => "PUT",
                Verb::Patch => "PATCH",
                Verb::Delete | Verb::DeleteCollection => "DELETE",
            };
            Err(method_not_allowed(method, &self.uri_path))
        }
    }
}

/// Serves a resource request; `labels` get the resource once it is found and the verb as
/// soon as it is known, for metrics and logs.
pub(crate) async fn serve(
    state: &Arc<ServerState>,
    request: Request,
    path: ResourcePath,
    labels: &mut RequestLabels,
) -> Result<Response, ApiError> {
    let gv = GroupVersion::new(path.group.clone(), path.version.clone());
    let handler = state.handler(&gv, &path.resource).ok_or_else(not_found)?;
    // Only served resources become label values: paths are the client's to invent.
    labels.resource.clone_from(&path.resource);
    let kind = handler.info();
    if !kind.namespaced && !path.namespace.is_empty() {
        return Err(not_found());
    }
    if !path.subresource.is_empty() && !kind.has_subresource(&path.subresource) {
        return Err(not_found());
    }
    let query = Query::parse(request.uri());
    let uri_path = request.uri().path().to_owned();
    let info = RequestInfo::new(request.method(), path, &query, &uri_path, &mut |verb| {
        labels.verb = verb.as_str();
    })?;
    let (mut parts, body) = request.into_parts();
    let user = parts
        .extensions
        .remove::<Arc<auth::UserInfo>>()
        .unwrap_or_else(|| Arc::new(auth::UserInfo::anonymous()));
    let request = ResourceRequest {
        handler,
        user,
        info,
        query,
        headers: parts.headers,
        body,
        uri_path,
    };
    match request.info.verb {
        Verb::Get => get(request).await,
        Verb::List => list(request).await,
        Verb::Watch => watch(state, request).await,
        Verb::Create => create(request).await,
        Verb::Update => update(request).await,
        Verb::Patch => patch(request).await,
        Verb::Delete => delete(request).await,
        Verb::DeleteCollection => delete_collection(request).await,
    }
}

async fn get(request: ResourceRequest) -> Result<Response, ApiError> {
    let ctx = request.context();
    let handler = request.handler.as_ref();
    let object = handler
        .get(
            &ctx,
            &request.info.path.name,
            request.query.get("resourceVersion"),
        )
        .await?;
    let body = match TableRequest::from_request(&request.headers, &request.query) {
        Some(table) => table.render(handler, &ctx, std::slice::from_ref(&object), None, None),
        None => object,
    };
    Ok(json_response(StatusCode::OK, &body))
}

async fn list(request: ResourceRequest) -> Result<Response, ApiError> {
    request.require_verb("")?;
    let options = request.query.list_options(false)?;
    let ctx = request.context();
    let handler = request.handler.as_ref();
    if let Some(table) = TableRequest::from_request(&request.headers, &request.query) {
        let list = handler.list(&ctx, &options).await?;
        let body = table.render(
            handler,
            &ctx,
            &list.items,
            Some(list.resource_version.to_string()),
            list.continue_token.clone(),
        );
        return Ok(json_response(StatusCode::OK, &body));
    }
    let list = handler.list_encoded(&ctx, &options).await?;
    let path = &request.info.path;
    let api_version = GroupVersion::new(path.group.clone(), path.version.clone()).api_version();
    list_response(&handler.info().list_kind, &api_version, list)
}

async fn watch(state: &Arc<ServerState>, request: ResourceRequest) -> Result<Response, ApiError> {
    request.require_verb("")?;
    let mut options = request.query.list_options(true)?;
    let name = &request.info.path.name;
    if !name.is_empty() {
        options.predicate.field = FieldSelector::one_term_equal("metadata.name", name);
    }
    let timeout = request.query.watch_timeout()?;
    // A timeout past what `Instant` holds has no deadline worth a bookmark.
    options.deadline = std::time::Instant::now().checked_add(timeout);
    let as_table = wants_table(crate::http::header_str(&request.headers, header::ACCEPT));
    let ctx = request.context();
    crate::watch::serve(state, request.handler, ctx, options, timeout, as_table).await
}

async fn create(mut request: ResourceRequest) -> Result<Response, ApiError> {
    let subresource = request.info.path.subresource.clone();
    request.require_verb(&subresource)?;
    let ctx = request.write_context("CreateOptions")?;
    let body = request.write_body().await?;
    if !subresource.is_empty() {
        let created = request
            .handler
            .create_subresource(&ctx, &request.info.path.name, body)
            .await?;
        return Ok(with_warnings(
            json_response(StatusCode::CREATED, &created.object),
            &created.warnings,
        ));
    }
    // NamespaceLifecycle admission runs in the Store.
    let created = request.handler.create(&ctx, body).await?;
    Ok(with_warnings(
        json_response(StatusCode::CREATED, &created.object),
        &created.warnings,
    ))
}

async fn update(mut request: ResourceRequest) -> Result<Response, ApiError> {
    request.require_verb(&request.info.path.subresource)?;
    let ctx = request.write_context("UpdateOptions")?;
    let body = request.write_body().await?;
    let updated = request
        .handler
        .update(&ctx, &request.info.path.name, body)
        .await?;
    Ok(write_response(updated))
}

async fn patch(mut request: ResourceRequest) -> Result<Response, ApiError> {
    request.require_verb(&request.info.path.subresource)?;
    let handler = request.handler.clone();
    let patch_type = PatchType::from_content_type(
        request.header(header::CONTENT_TYPE),
        handler.supports_strategic_merge(),
    )?;
    let mut ctx = request.context();
    ctx.dry_run = request.query.dry_run("PatchOptions")?;
    ctx.field_validation = request.query.field_validation()?;
    let force = request.query.bool("force")?;
    let manager = request.query.non_empty("fieldManager");
    patch::validate_patch_options(patch_type, manager, force)?;
    ctx.field_manager = patch::manager_or_user_agent(manager, request.header(header::USER_AGENT));
    ctx.force = force.unwrap_or(false);
    let body = request.read_body().await?;
    let patched = handler
        .patch(&ctx, &request.info.path.name, patch_type, &body)
        .await?;
    Ok(write_response(patched))
}

/// 201 for a write that created the object, 200 otherwise, with its warnings.
fn write_response(outcome: crate::handler::WriteOutcome) -> Response {
    let code = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    with_warnings(json_response(code, &outcome.object), &outcome.warnings)
}

async fn delete(mut request: ResourceRequest) -> Result<Response, ApiError> {
    let (ctx, options) = request.delete_options().await?;
    let name = &request.info.path.name;
    crate::namespace::admit_delete(request.handler.info(), name)?;
    let (object, deleted) = request.handler.delete(&ctx, name, &options).await?;
    // As kube-apiserver: 202 only for an object kept (finalizers) when the client asked for
    // cascading deletion with `orphanDependents=false`; 200 otherwise.
    let code = if !deleted && options.orphan_dependents == Some(false) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(json_response(code, &object))
}

async fn delete_collection(mut request: ResourceRequest) -> Result<Response, ApiError> {
    let (ctx, options) = request.delete_options().await?;
    let list = request.query.list_options(false)?;
    let deleted = request
        .handler
        .delete_collection(&ctx, &options, &list)
        .await?;
    Ok(json_response(StatusCode::OK, &deleted))
}
