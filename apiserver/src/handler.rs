//! The per-resource request handler the router dispatches to, and its generic implementation
//! over the registry [`Store`].
//!
//! A [`ResourceHandler`] serves one resource (all its versions): every verb takes and returns
//! `serde_json::Value` documents in the request's group-version, so the router never sees a
//! Rust type. [`StoreHandler`] implements it for any [`Object`] kept in a [`Store`], converting
//! between the request version and the storage version with the [`Scheme`] and running the
//! patch engine and server-side apply of [`patch`].

use std::sync::Arc;

use apimachinery::Object;
use apimachinery::status::ApiError;
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use object_storage::{ListOptions, Preconditions, WatchEvent};
use patch::{
    self, KindSchema, ManagerInfo, PatchSchema, PatchType, adopt_managed_fields,
    update_managed_fields,
};
use registry::Store;
use registry::{
    CreateOptions, DeleteResponse, PatchOptions, PatchView, SchemeView, TableColumn, UpdateOptions,
};
use scheme::{ResourceInfo, Scheme};
use serde_json::Value;

use crate::strict::CheckedView;

/// How the server treats fields a request body carries that the kind does not know
/// (`fieldValidation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and answer with one `Warning` header each (the default, as in Kubernetes).
    #[default]
    Warn,
    /// Reject the request with 400 BadRequest.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter; `""` is the default, anything else unknown is 400.
    pub fn parse(value: &str) -> Result<Self, ApiError> {
        match value {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}, must be one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// What one request tells a handler besides its body.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// The namespace of the path (`""` for cluster-scoped resources and all-namespace lists).
    pub namespace: String,
    /// The version of the path; documents in and out are in this version.
    pub version: String,
    /// The subresource (`""` for the main resource, `"status"`).
    pub subresource: String,
    /// `dryRun=All`: validate fully, persist nothing.
    pub dry_run: bool,
    /// The field manager of the write (the `fieldManager` parameter or derived from the
    /// user agent).
    pub field_manager: String,
    /// `force` of apply patches.
    pub force: bool,
    /// `fieldValidation`: what a patch does about fields of the patched document the kind
    /// does not know (create and update bodies are checked before the handler is called).
    pub field_validation: FieldValidation,
}

/// What a patch produced.
#[derive(Clone, Debug)]
pub struct PatchOutcome {
    /// The patched (or, for apply, possibly created) object in the request version.
    pub object: Value,
    /// Whether the patch created the object (apply only).
    pub created: bool,
    /// `fieldValidation=Warn` warnings about the patched document.
    pub warnings: Vec<String>,
}

/// One page of a list, in the request version.
#[derive(Clone, Debug, Default)]
pub struct ListResult {
    /// The objects (each with `apiVersion` and `kind`).
    pub items: Vec<Value>,
    /// The revision the list was read at.
    pub resource_version: u64,
    /// The token of the next page.
    pub continue_token: Option<String>,
    /// How many objects follow this page, when known.
    pub remaining_item_count: Option<i64>,
}

/// One page of a list with every item already encoded as JSON text in the request version:
/// what a plain (non-Table) list response is written from, without building a
/// `serde_json::Value` per object.
#[derive(Clone, Debug, Default)]
pub struct EncodedList {
    /// The JSON text of each object (with `apiVersion` and `kind`).
    pub items: Vec<Vec<u8>>,
    /// The revision the list was read at.
    pub resource_version: u64,
    /// The token of the next page.
    pub continue_token: Option<String>,
    /// How many objects follow this page, when known.
    pub remaining_item_count: Option<i64>,
}

impl EncodedList {
    /// Encodes every item of `list`.
    ///
    /// # Errors
    ///
    /// 500 when an item does not serialize.
    pub fn from_list(list: ListResult) -> Result<Self, ApiError> {
        let items = list
            .items
            .iter()
            .map(|item| {
                serde_json::to_vec(item)
                    .map_err(|e| ApiError::internal(format!("encoding object: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(EncodedList {
            items,
            resource_version: list.resource_version,
            continue_token: list.continue_token,
            remaining_item_count: list.remaining_item_count,
        })
    }
}

/// A stream of watch events carrying documents in the request version.
pub type ValueWatch = BoxStream<'static, WatchEvent<Value>>;

/// One served resource. All documents are in the request's group-version (`ctx.version`).
#[async_trait]
pub trait ResourceHandler: Send + Sync + 'static {
    /// Names, versions, scope, verbs and subresources (discovery and routing read it).
    fn info(&self) -> &ResourceInfo;

    /// The OpenAPI v3 schema of the kind at `version` (for `kubectl explain`), if any.
    fn openapi_schema(&self, _version: &str) -> Option<Value> {
        None
    }

    /// Whether strategic merge patches are accepted (built-in kinds only, as in Kubernetes).
    fn supports_strategic_merge(&self) -> bool {
        false
    }

    /// Column definitions of `as=Table`.
    fn table_columns(&self) -> Vec<TableColumn>;

    /// One table row for an object in the request version.
    fn table_cells(&self, ctx: &RequestContext, object: &Value) -> Vec<Value>;

    /// `body` (in `ctx.version`) as the kind keeps it: decoded and encoded again, so the
    /// fields it lacks are the ones the kind does not know (`fieldValidation`). `None` when
    /// the handler does not check fields or the body does not decode (the write reports that).
    fn round_trip(&self, _ctx: &RequestContext, _body: &Value) -> Option<Value> {
        None
    }

    /// Reads one object.
    async fn get(
        &self,
        ctx: &RequestContext,
        name: &str,
        resource_version: &str,
    ) -> Result<Value, ApiError>;

    /// Lists objects.
    async fn list(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<ListResult, ApiError>;

    /// Lists objects encoded as JSON text, for plain list responses. The default encodes
    /// [`ResourceHandler::list`]'s documents; a handler may skip the documents.
    async fn list_encoded(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<EncodedList, ApiError> {
        EncodedList::from_list(self.list(ctx, options).await?)
    }

    /// Watches objects.
    async fn watch(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<ValueWatch, ApiError>;

    /// Creates an object.
    async fn create(&self, ctx: &RequestContext, body: Value) -> Result<Value, ApiError>;

    /// Replaces an object (or its status); `true` when the update created it.
    async fn update(
        &self,
        ctx: &RequestContext,
        name: &str,
        body: Value,
    ) -> Result<(Value, bool), ApiError>;

    /// Patches an object (or its status); `true` when the patch created it (apply).
    async fn patch(
        &self,
        ctx: &RequestContext,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
    ) -> Result<PatchOutcome, ApiError>;

    /// Deletes an object: the response body and whether it is gone (200) rather than only
    /// marked for deletion (202).
    async fn delete(
        &self,
        ctx: &RequestContext,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<(Value, bool), ApiError>;

    /// Deletes every selected object; answers with the list of deleted objects.
    async fn delete_collection(
        &self,
        ctx: &RequestContext,
        options: &DeleteOptions,
        list: &ListOptions,
    ) -> Result<Value, ApiError>;
}

/// The part of an object a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The object itself.
    Main,
    /// Its `status` subresource.
    Status,
    /// A subresource with a strategy of its own that is only ever updated
    /// (`namespaces/finalize`).
    UpdateOnly,
}

/// Type-erased function giving the OpenAPI schema of a kind at a version.
pub type SchemaFn = Arc<dyn Fn(&str) -> Option<Value> + Send + Sync>;

/// [`ResourceHandler`] over a registry [`Store<K>`]: `K` is the storage-version type, the
/// [`Scheme`] converts between it and the served versions.
pub struct StoreHandler<K: Object> {
    store: Store<K>,
    scheme: Arc<Scheme>,
    info: ResourceInfo,
    patch_schema: &'static KindSchema,
    openapi: Option<SchemaFn>,
}

impl<K: Object> StoreHandler<K> {
    /// A handler for `store`, described by `info` (which must be registered in `scheme`),
    /// patching with `patch_schema` (see [`patch::builtin_schema`]).
    pub fn new(
        store: Store<K>,
        scheme: Arc<Scheme>,
        info: ResourceInfo,
        patch_schema: &'static KindSchema,
    ) -> Self {
        StoreHandler {
            store: store.with_patch_schema(Arc::new(*patch_schema)),
            scheme,
            info,
            patch_schema,
            openapi: None,
        }
    }

    /// This handler with an OpenAPI schema function for `kubectl explain`.
    pub fn with_openapi(mut self, schema: SchemaFn) -> Self {
        self.openapi = Some(schema);
        self
    }

    /// The store underneath.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// What the request's subresource addresses; 404 for one the kind does not have.
    fn target(&self, ctx: &RequestContext) -> Result<Target, ApiError> {
        match ctx.subresource.as_str() {
            "" => Ok(Target::Main),
            "status" if self.info.has_subresource("status") => Ok(Target::Status),
            "status" => Err(crate::http::not_found()),
            other if self.store.has_subresource(other) => Ok(Target::UpdateOnly),
            _ => Err(crate::http::not_found()),
        }
    }

    /// 405 for a verb an update-only subresource (such as `namespaces/finalize`) lacks.
    fn readable_target(&self, ctx: &RequestContext, verb: &str) -> Result<Target, ApiError> {
        match self.target(ctx)? {
            Target::UpdateOnly => Err(ApiError::method_not_supported(
                &self.info.group_resource(),
                &format!("{verb} {}", ctx.subresource),
            )),
            target => Ok(target),
        }
    }

    /// The stored object as a document in `version`.
    fn to_version(&self, object: &K, version: &str) -> Result<Value, ApiError> {
        let mut value = serde_json::to_value(object)
            .map_err(|e| ApiError::internal(format!("encoding object: {e}")))?;
        if let Some(map) = value.as_object_mut() {
            let gvk = self.info.storage_gvk();
            map.entry("apiVersion")
                .or_insert_with(|| Value::from(gvk.api_version()));
            map.entry("kind").or_insert_with(|| Value::from(gvk.kind));
        }
        self.scheme.convert(value, version)
    }

    /// A request document in `version` as the stored type.
    fn decode_version(&self, body: Value, version: &str) -> Result<K, ApiError> {
        let storage = self
            .scheme
            .decode_to_storage(&self.info.gvk(version), body)?;
        serde_json::from_value(storage).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version {version:?} cannot be handled as a {}: {e}",
                self.info.kind, self.info.kind
            ))
        })
    }

    fn manager<'a>(&self, ctx: &'a RequestContext, time: &'a str) -> ManagerInfo<'a> {
        ManagerInfo {
            manager: &ctx.field_manager,
            subresource: &ctx.subresource,
            time,
        }
    }

    async fn run_update<F>(
        &self,
        ctx: &RequestContext,
        name: &str,
        update: F,
        options: &UpdateOptions<K>,
    ) -> Result<(Value, bool), ApiError>
    where
        F: FnMut(Option<&K>) -> Result<K, ApiError> + Send,
    {
        let updated = match self.target(ctx)? {
            Target::Main => {
                self.store
                    .update_with(&ctx.namespace, name, update, options)
                    .await?
            }
            Target::Status => {
                self.store
                    .update_status_with(&ctx.namespace, name, update, options)
                    .await?
            }
            Target::UpdateOnly => {
                self.store
                    .update_subresource_with(
                        &ctx.subresource,
                        &ctx.namespace,
                        name,
                        update,
                        options,
                    )
                    .await?
            }
        };
        Ok((
            self.to_version(&updated.object, &ctx.version)?,
            updated.created,
        ))
    }
}

#[async_trait]
impl<K: Object> ResourceHandler for StoreHandler<K> {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn openapi_schema(&self, version: &str) -> Option<Value> {
        self.openapi.as_ref().and_then(|f| f(version))
    }

    fn supports_strategic_merge(&self) -> bool {
        self.patch_schema.supports_strategic_merge()
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        self.store.table_columns()
    }

    fn table_cells(&self, _ctx: &RequestContext, object: &Value) -> Vec<Value> {
        let stored = self
            .scheme
            .convert(object.clone(), &self.info.storage_version)
            .ok()
            .and_then(|v| serde_json::from_value::<K>(v).ok());
        match stored {
            Some(object) => self.store.strategy().table_cells(&object),
            None => vec![
                object
                    .pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null),
            ],
        }
    }

    fn round_trip(&self, ctx: &RequestContext, body: &Value) -> Option<Value> {
        let stored = self.decode_version(body.clone(), &ctx.version).ok()?;
        self.to_version(&stored, &ctx.version).ok()
    }

    async fn get(
        &self,
        ctx: &RequestContext,
        name: &str,
        resource_version: &str,
    ) -> Result<Value, ApiError> {
        self.readable_target(ctx, "get")?;
        let object = self
            .store
            .get(&ctx.namespace, name, resource_version)
            .await?;
        self.to_version(&object, &ctx.version)
    }

    async fn list_encoded(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<EncodedList, ApiError> {
        let list = self.store.list(&ctx.namespace, options).await?;
        // In the storage version, an object whose own JSON starts by naming this version and
        // kind is its response document: it is encoded once, without a document in between.
        // Anything else (another version, a dynamic object stored at an older version, a type
        // that leaves its apiVersion out) goes through the Scheme.
        let gvk = self.info.storage_gvk();
        let prefix = (gvk.version == ctx.version).then(|| {
            format!(
                "{{\"apiVersion\":{},\"kind\":{}",
                Value::from(gvk.api_version()),
                Value::from(gvk.kind.clone())
            )
        });
        let encode = |object: &K| -> Result<Vec<u8>, ApiError> {
            let failed = |e: serde_json::Error| ApiError::internal(format!("encoding object: {e}"));
            if let Some(prefix) = &prefix {
                let direct = serde_json::to_vec(object).map_err(failed)?;
                if direct.starts_with(prefix.as_bytes()) {
                    return Ok(direct);
                }
            }
            serde_json::to_vec(&self.to_version(object, &ctx.version)?).map_err(failed)
        };
        let items = list
            .items
            .iter()
            .map(encode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EncodedList {
            items,
            resource_version: list.resource_version,
            continue_token: list.continue_token,
            remaining_item_count: list.remaining_item_count,
        })
    }

    async fn list(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<ListResult, ApiError> {
        let list = self.store.list(&ctx.namespace, options).await?;
        let items = list
            .items
            .iter()
            .map(|o| self.to_version(o, &ctx.version))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListResult {
            items,
            resource_version: list.resource_version,
            continue_token: list.continue_token,
            remaining_item_count: list.remaining_item_count,
        })
    }

    async fn watch(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<ValueWatch, ApiError> {
        let watch = self.store.watch(&ctx.namespace, options).await?;
        let scheme = self.scheme.clone();
        let gvk = self.info.storage_gvk();
        let version = ctx.version.clone();
        let convert = move |object: K| -> Result<Value, ApiError> {
            let mut value = serde_json::to_value(&object)
                .map_err(|e| ApiError::internal(format!("encoding object: {e}")))?;
            if let Some(map) = value.as_object_mut() {
                map.entry("apiVersion")
                    .or_insert_with(|| Value::from(gvk.api_version()));
                map.entry("kind")
                    .or_insert_with(|| Value::from(gvk.kind.clone()));
            }
            scheme.convert(value, &version)
        };
        let bookmark_kind = self.info.kind.clone();
        let bookmark_api_version = self.info.gvk(&ctx.version).api_version();
        let stream = watch.map(move |event| {
            let wrap = |object: K, f: fn(Value) -> WatchEvent<Value>| match convert(object) {
                Ok(value) => f(value),
                Err(error) => WatchEvent::Error(error),
            };
            match event {
                WatchEvent::Added(o) => wrap(o, WatchEvent::Added),
                WatchEvent::Modified(o) => wrap(o, WatchEvent::Modified),
                WatchEvent::Deleted(o) => wrap(o, WatchEvent::Deleted),
                WatchEvent::Bookmark(o) => {
                    // Bookmarks carry only metadata; do not convert empty objects.
                    let meta = serde_json::to_value(o.meta()).unwrap_or(Value::Null);
                    WatchEvent::Bookmark(serde_json::json!({
                        "kind": bookmark_kind,
                        "apiVersion": bookmark_api_version,
                        "metadata": meta,
                    }))
                }
                WatchEvent::Error(e) => WatchEvent::Error(e),
            }
        });
        Ok(stream.boxed())
    }

    async fn create(&self, ctx: &RequestContext, body: Value) -> Result<Value, ApiError> {
        if !ctx.subresource.is_empty() {
            return Err(ApiError::method_not_supported(
                &self.info.group_resource(),
                "create",
            ));
        }
        let time = patch::now_rfc3339();
        // Ownership is recorded on what the kind keeps, never on fields the decode drops.
        let mut object = self.decode_version(body, &ctx.version)?;
        let kept = self.to_version(&object, &ctx.version)?;
        let tracked =
            update_managed_fields(None, &kept, &self.manager(ctx, &time), self.patch_schema);
        adopt_managed_fields(&mut object, &tracked)?;
        let options = CreateOptions {
            dry_run: ctx.dry_run,
            validation: None,
        };
        let created = self.store.create(&ctx.namespace, object, &options).await?;
        self.to_version(&created, &ctx.version)
    }

    async fn update(
        &self,
        ctx: &RequestContext,
        name: &str,
        body: Value,
    ) -> Result<(Value, bool), ApiError> {
        let body_name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut options = UpdateOptions {
            dry_run: ctx.dry_run,
            ..UpdateOptions::default()
        };
        if let Some(uid) = body
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
        {
            options.preconditions = Some(Preconditions::uid(uid));
        }
        let time = patch::now_rfc3339();
        let version = ctx.version.clone();
        // Ownership is recorded on what the kind keeps, never on fields the decode drops.
        let decoded = self.decode_version(body, &version)?;
        let kept = self.to_version(&decoded, &version)?;
        let update = |old: Option<&K>| -> Result<K, ApiError> {
            let old_value = old.map(|o| self.to_version(o, &version)).transpose()?;
            let tracked = update_managed_fields(
                old_value.as_ref(),
                &kept,
                &self.manager(ctx, &time),
                self.patch_schema,
            );
            let mut new = decoded.clone();
            adopt_managed_fields(&mut new, &tracked)?;
            Ok(new)
        };
        self.run_update(ctx, name, update, &options).await
    }

    async fn patch(
        &self,
        ctx: &RequestContext,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
    ) -> Result<PatchOutcome, ApiError> {
        // The Store runs the patch inside its update pipeline (retried on conflict, prepared,
        // validated, admitted), records managedFields and checks the apply options.
        let view: Arc<dyn PatchView<K>> = Arc::new(SchemeView::new(
            self.scheme.clone(),
            self.info.clone(),
            ctx.version.clone(),
        ));
        // Apply configurations are checked as sent, by the router; other patch types on the
        // patched document, as Kubernetes does.
        let checked = (patch_type != PatchType::Apply
            && ctx.field_validation != FieldValidation::Ignore)
            .then(|| {
                Arc::new(CheckedView::new(
                    view.clone(),
                    ctx.field_validation,
                    crate::strict::duplicate_fields(body),
                ))
            });
        let options = PatchOptions {
            field_manager: Some(ctx.field_manager.clone()).filter(|m| !m.is_empty()),
            force: ctx.force.then_some(true),
            dry_run: ctx.dry_run,
            view: Some(match &checked {
                Some(checked) => checked.clone(),
                None => view,
            }),
            ..PatchOptions::default()
        };
        let updated = if self.readable_target(ctx, "patch")? == Target::Status {
            self.store
                .patch_status(&ctx.namespace, name, patch_type, body, &options)
                .await?
        } else {
            self.store
                .patch(&ctx.namespace, name, patch_type, body, &options)
                .await?
        };
        Ok(PatchOutcome {
            object: self.to_version(&updated.object, &ctx.version)?,
            created: updated.created,
            warnings: checked.map(|c| c.warnings()).unwrap_or_default(),
        })
    }

    async fn delete(
        &self,
        ctx: &RequestContext,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<(Value, bool), ApiError> {
        if !ctx.subresource.is_empty() {
            return Err(ApiError::method_not_supported(
                &self.info.group_resource(),
                "delete",
            ));
        }
        let mut options = options.clone();
        if ctx.dry_run {
            options.dry_run = Some(vec!["All".to_owned()]);
        }
        let result = self.store.delete(&ctx.namespace, name, &options).await?;
        let body = match result.response {
            DeleteResponse::Object(object) => self.to_version(&object, &ctx.version)?,
            DeleteResponse::Status(status) => {
                let mut value = serde_json::to_value(&status)
                    .map_err(|e| ApiError::internal(format!("encoding status: {e}")))?;
                if let Some(map) = value.as_object_mut() {
                    map.insert("kind".to_owned(), Value::from("Status"));
                    map.insert("apiVersion".to_owned(), Value::from("v1"));
                    map.entry("metadata")
                        .or_insert_with(|| Value::Object(Default::default()));
                }
                value
            }
        };
        Ok((body, result.deleted))
    }

    async fn delete_collection(
        &self,
        ctx: &RequestContext,
        options: &DeleteOptions,
        list: &ListOptions,
    ) -> Result<Value, ApiError> {
        let mut options = options.clone();
        if ctx.dry_run {
            options.dry_run = Some(vec!["All".to_owned()]);
        }
        let deleted = self
            .store
            .delete_collection(&ctx.namespace, &options, list)
            .await?;
        let items = deleted
            .items
            .iter()
            .map(|o| self.to_version(o, &ctx.version))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(serde_json::json!({
            "kind": self.info.list_kind,
            "apiVersion": self.info.gvk(&ctx.version).api_version(),
            "metadata": { "resourceVersion": deleted.resource_version.to_string() },
            "items": items,
        }))
    }
}
