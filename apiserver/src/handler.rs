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
use axum::body::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use object_storage::{ListOptions, Shared, WatchEvent};
use patch::{self, PatchSchema, PatchType};

use crate::scale::ScaleSubresource;
use registry::Store;
use registry::{
    CreateOptions, DeleteResponse, PatchBody, PatchOptions, SchemeView, TableColumn, UpdateOptions,
    VersionView,
};
use scheme::{ResourceInfo, Scheme};
use serde_json::Value;

use crate::strict::{self, CheckedView};
use crate::table::TableRequest;

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
    /// `fieldValidation`: what a write does about fields of its body (or, for patches other
    /// than apply, of the patched document) the kind does not know or that repeat.
    pub field_validation: FieldValidation,
    /// Who sends the request (anonymous when the server authenticates no one).
    pub user: Arc<auth::UserInfo>,
}

/// A subresource created by POST that is not part of the stored object, such as
/// `serviceaccounts/<name>/token` (TokenRequest): it reads the object through the kind's store
/// and answers with a kind of its own.
#[async_trait]
pub trait SubresourceCreate<K: Object>: Send + Sync {
    /// Answers a POST to the subresource of object `name`.
    async fn create(
        &self,
        ctx: &RequestContext,
        store: &Store<K>,
        name: &str,
        body: RequestBody,
    ) -> Result<WriteOutcome, ApiError>;
}

/// Admission of writes that depends on the request, such as who writes it (RBAC's
/// escalation checks): run on the object about to be written, after the kind's validation,
/// for creates, updates and patches, dry runs included.
pub trait Admission<K>: Send + Sync {
    /// Accepts `new` (replacing `old`, if any) or refuses it with the Status to answer.
    fn admit(&self, ctx: &RequestContext, new: &K, old: Option<&K>) -> Result<(), ApiError>;
}

/// The body of a create or update, decoded from the wire once.
#[derive(Clone, Debug)]
pub struct RequestBody {
    /// The bytes as sent (JSON or YAML), where `fieldValidation` finds repeated keys.
    pub raw: Bytes,
    /// The body as a document in the request version.
    pub document: Value,
}

/// What a create, update or patch produced.
#[derive(Clone, Debug)]
pub struct WriteOutcome {
    /// The object as written, in the request version.
    pub object: Value,
    /// Whether the write created the object (201).
    pub created: bool,
    /// `fieldValidation=Warn` warnings about the body or the patched document.
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
    /// The JSON text of each object (with `apiVersion` and `kind`); shared with every other
    /// response that sends the same object in the same version when it comes from a watch
    /// cache.
    pub items: Vec<Bytes>,
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
                    .map(Bytes::from)
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

/// A stream of watch events whose objects are already JSON text in the request version (as
/// the `object` of a `metav1.WatchEvent`).
pub type EncodedWatch = BoxStream<'static, WatchEvent<Bytes>>;

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

    /// Watches objects encoded as JSON text, for plain watch responses. The default encodes
    /// [`ResourceHandler::watch`]'s documents; a handler may encode each object once for all
    /// its watchers.
    async fn watch_encoded(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<EncodedWatch, ApiError> {
        let events = self.watch(ctx, options).await?;
        Ok(events
            .map(|event| {
                try_map(event, |document| {
                    serde_json::to_vec(&document)
                        .map(Bytes::from)
                        .map_err(encoding_failed)
                })
            })
            .boxed())
    }

    /// Watches objects as the one-row Tables of `as=Table` watch events (JSON text from
    /// [`crate::table::watch_event_table`], without column definitions), and bookmarks as
    /// their documents. `None` when this handler cannot share Tables between watchers; the
    /// caller then renders each watcher's from [`ResourceHandler::watch`].
    async fn watch_tables(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<Option<EncodedWatch>, ApiError> {
        let _ = (ctx, options);
        Ok(None)
    }

    /// Creates an object, applying `ctx.field_validation` to the body.
    async fn create(
        &self,
        ctx: &RequestContext,
        body: RequestBody,
    ) -> Result<WriteOutcome, ApiError>;

    /// Creates through the subresource `ctx.subresource` of object `name` (a POST such as
    /// `serviceaccounts/<name>/token`). By default no subresource takes creates: 405.
    async fn create_subresource(
        &self,
        ctx: &RequestContext,
        name: &str,
        body: RequestBody,
    ) -> Result<WriteOutcome, ApiError> {
        let _ = (name, body);
        let info = self.info();
        Err(ApiError::method_not_supported(
            &apimachinery::status::GroupResource::new(
                info.group.clone(),
                format!("{}/{}", info.plural, ctx.subresource),
            ),
            "create",
        ))
    }

    /// Replaces an object (or writes a subresource), applying `ctx.field_validation` to the
    /// body; `created` when the update created it.
    async fn update(
        &self,
        ctx: &RequestContext,
        name: &str,
        body: RequestBody,
    ) -> Result<WriteOutcome, ApiError>;

    /// Patches an object (or its status); `created` when the patch created it (apply).
    async fn patch(
        &self,
        ctx: &RequestContext,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
    ) -> Result<WriteOutcome, ApiError>;

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
    /// The `scale` subresource: an `autoscaling/v1` Scale view of the object.
    Scale,
}

/// Type-erased function giving the OpenAPI schema of a kind at a version.
pub type SchemaFn = Arc<dyn Fn(&str) -> Option<Value> + Send + Sync>;

/// [`ResourceHandler`] over a registry [`Store<K>`]: `K` is the storage-version type, the
/// [`Scheme`] converts between it and the served versions.
pub struct StoreHandler<K: Object> {
    store: Store<K>,
    scheme: Arc<Scheme>,
    info: ResourceInfo,
    patch_schema: Arc<dyn PatchSchema>,
    openapi: Option<SchemaFn>,
    admission: Option<Arc<dyn Admission<K>>>,
    subresource_creates: Vec<(String, Arc<dyn SubresourceCreate<K>>)>,
    scale: Option<Arc<dyn ScaleSubresource<K>>>,
}

/// `event` with its object turned into another form by `f`; a failure becomes an ERROR event.
pub(crate) fn try_map<T, U>(
    event: WatchEvent<T>,
    f: impl FnOnce(T) -> Result<U, ApiError>,
) -> WatchEvent<U> {
    match event {
        WatchEvent::Added(object) => f(object).map_or_else(WatchEvent::Error, WatchEvent::Added),
        WatchEvent::Modified(object) => {
            f(object).map_or_else(WatchEvent::Error, WatchEvent::Modified)
        }
        WatchEvent::Deleted(object) => {
            f(object).map_or_else(WatchEvent::Error, WatchEvent::Deleted)
        }
        WatchEvent::Bookmark(object) => {
            f(object).map_or_else(WatchEvent::Error, WatchEvent::Bookmark)
        }
        WatchEvent::Error(error) => WatchEvent::Error(error),
    }
}

fn encoding_failed(error: serde_json::Error) -> ApiError {
    ApiError::internal(format!("encoding object: {error}"))
}

/// The BOOKMARK document of a watch in one version: only the kind, the version and the
/// metadata (the resourceVersion, and the initial-events-end annotation).
#[derive(Clone)]
struct BookmarkDocument {
    kind: String,
    api_version: String,
}

impl BookmarkDocument {
    fn new(info: &ResourceInfo, version: &str) -> Self {
        BookmarkDocument {
            kind: info.kind.clone(),
            api_version: info.gvk(version).api_version(),
        }
    }

    fn document<K: Object>(&self, object: &K) -> Value {
        let meta = serde_json::to_value(object.meta()).unwrap_or(Value::Null);
        serde_json::json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": meta})
    }
}

/// The format name a watch event's Table is remembered under on a [`Shared`] object.
const WATCH_TABLE_FORMAT: &str = "meta.k8s.io/v1 Table watch event, includeObject=Metadata";

/// An object's one-row Table for a watch event, as JSON text.
fn encode_watch_table<K: Object>(
    strategy: &dyn registry::Strategy<K>,
    object: &K,
) -> Result<Bytes, ApiError> {
    let meta = object.meta();
    let metadata = serde_json::to_value(meta).map_err(encoding_failed)?;
    let row = TableRequest::for_watch().row(
        strategy.table_cells(object),
        &serde_json::json!({ "metadata": metadata }),
    );
    crate::table::watch_event_table(meta.resource_version.as_deref(), &row)
        .map(Bytes::from)
        .map_err(encoding_failed)
}

/// Encodes objects of one kind as JSON text in one version, once per object: the bytes are
/// remembered on the [`Shared`] object under the version's format name.
struct ObjectEncoder<K: Object> {
    scheme: Arc<Scheme>,
    info: ResourceInfo,
    version: String,
    /// The format names the bytes of objects and of bookmarks are remembered under.
    format: String,
    bookmark_format: String,
    /// In the storage version, an object whose own JSON starts by naming this version and
    /// kind is its response document: it is encoded once, without a document in between.
    /// Anything else (another version, a dynamic object stored at an older version, a type
    /// that leaves its apiVersion out) goes through the Scheme.
    direct_prefix: Option<String>,
    bookmark: BookmarkDocument,
    kind: std::marker::PhantomData<fn(&K)>,
}

impl<K: Object> ObjectEncoder<K> {
    fn encode(&self, object: &Shared<K>) -> Result<Bytes, ApiError> {
        object.encoded(&self.format, |object| self.encode_once(object))
    }

    /// A bookmark's document (only its metadata), once per bookmark.
    fn encode_bookmark(&self, object: &Shared<K>) -> Result<Bytes, ApiError> {
        object.encoded(&self.bookmark_format, |object| {
            serde_json::to_vec(&self.bookmark.document(object))
                .map(Bytes::from)
                .map_err(encoding_failed)
        })
    }

    fn encode_once(&self, object: &K) -> Result<Bytes, ApiError> {
        if let Some(prefix) = &self.direct_prefix {
            let direct = serde_json::to_vec(object).map_err(encoding_failed)?;
            if direct.starts_with(prefix.as_bytes()) {
                return Ok(Bytes::from(direct));
            }
        }
        let document =
            registry::view::encode_versioned(&self.scheme, &self.info, object, &self.version)?;
        serde_json::to_vec(&document)
            .map(Bytes::from)
            .map_err(encoding_failed)
    }
}

impl<K: Object> StoreHandler<K> {
    /// A handler for `store`, described by `info` (which must be registered in `scheme`),
    /// patching with `patch_schema` (see [`patch::builtin_schema`]).
    pub fn new(
        store: Store<K>,
        scheme: Arc<Scheme>,
        info: ResourceInfo,
        patch_schema: Arc<dyn PatchSchema>,
    ) -> Self {
        StoreHandler {
            store: store.with_patch_schema(patch_schema.clone()),
            scheme,
            info,
            patch_schema,
            openapi: None,
            admission: None,
            subresource_creates: Vec::new(),
            scale: None,
        }
    }

    /// This handler serving the `scale` subresource through `scale` (which `info` must list,
    /// [`scheme::SubresourceInfo::scale`]).
    pub fn with_scale(mut self, scale: Arc<dyn ScaleSubresource<K>>) -> Self {
        self.scale = Some(scale);
        self
    }

    /// This handler answering POSTs to `subresource` with `create`.
    pub fn with_subresource_create(
        mut self,
        subresource: &str,
        create: Arc<dyn SubresourceCreate<K>>,
    ) -> Self {
        self.subresource_creates
            .push((subresource.to_owned(), create));
        self
    }

    /// This handler with an OpenAPI schema function for `kubectl explain`.
    pub fn with_openapi(mut self, schema: SchemaFn) -> Self {
        self.openapi = Some(schema);
        self
    }

    /// This handler with `admission` run on every write.
    pub fn with_admission(mut self, admission: Arc<dyn Admission<K>>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// The admission function of one request, if the kind has admission.
    fn admission_for(&self, ctx: &RequestContext) -> Option<registry::AdmissionFn<K>> {
        let admission = self.admission.clone()?;
        let ctx = ctx.clone();
        Some(Arc::new(move |new: &K, old: Option<&K>| {
            admission.admit(&ctx, new, old)
        }))
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
            "scale" if self.scale.is_some() && self.info.has_subresource("scale") => {
                Ok(Target::Scale)
            }
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

    /// Writes the desired replicas `replicas(current Scale)` into the object (through the
    /// main resource's strategy, as upstream's `ScaleREST`), failing with 409 when the Scale was
    /// read at another resourceVersion; answers with the new Scale.
    async fn write_scale(
        &self,
        ctx: &RequestContext,
        name: &str,
        resource_version: Option<String>,
        replicas: impl Fn(&Value) -> Result<i64, ApiError> + Send + Sync,
    ) -> Result<WriteOutcome, ApiError> {
        let Some(scale) = self.scale.clone() else {
            return Err(crate::http::not_found());
        };
        let resource = self.info.group_resource();
        let options = UpdateOptions {
            dry_run: ctx.dry_run,
            field_manager: Some(ctx.field_manager.clone()),
            update_validation: self.admission_for(ctx),
            preconditions: resource_version.map(|rv| object_storage::Preconditions {
                uid: None,
                resource_version: Some(rv),
            }),
            ..UpdateOptions::default()
        };
        let updated = self
            .store
            .update_with(
                &ctx.namespace,
                name,
                "",
                |existing| {
                    let mut object = existing
                        .cloned()
                        .ok_or_else(|| ApiError::not_found(&resource, name))?;
                    let wanted = replicas(&crate::scale::scale_document(scale.as_ref(), &object))?;
                    scale.set_replicas(&mut object, wanted)?;
                    Ok(object)
                },
                &options,
            )
            .await?;
        Ok(WriteOutcome {
            object: crate::scale::scale_document(scale.as_ref(), &updated.object),
            created: false,
            warnings: Vec::new(),
        })
    }

    /// A merge or JSON patch of the Scale view (upstream patches the Scale object, then
    /// updates through it).
    async fn patch_scale(
        &self,
        ctx: &RequestContext,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
    ) -> Result<WriteOutcome, ApiError> {
        if !matches!(patch_type, PatchType::Merge | PatchType::Json) {
            return Err(ApiError::unsupported_media_type(&format!(
                "{}; the scale subresource takes JSON and merge patches",
                patch_type.content_type()
            )));
        }
        let body = body.to_vec();
        let resource = self.info.group_resource();
        self.write_scale(ctx, name, None, move |current| {
            let patched = patch::apply_patch(current, &body, patch_type, &patch::METADATA_ONLY)?;
            let (replicas, resource_version) = crate::scale::requested(&patched)?;
            // A resourceVersion the patch sets is a precondition, as on any patch.
            let current_version = current
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str);
            if resource_version.is_some() && resource_version.as_deref() != current_version {
                return Err(ApiError::conflict(
                    &resource,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            Ok(replicas)
        })
        .await
    }

    /// The stored object as a document in `version`.
    fn to_version(&self, object: &K, version: &str) -> Result<Value, ApiError> {
        registry::view::encode_versioned(&self.scheme, &self.info, object, version)
    }

    /// The encoder of this kind's objects in `version`.
    fn encoder(&self, version: &str) -> ObjectEncoder<K> {
        let gvk = self.info.storage_gvk();
        let direct_prefix = (gvk.version == version).then(|| {
            format!(
                "{{\"apiVersion\":{},\"kind\":{}",
                Value::from(gvk.api_version()),
                Value::from(gvk.kind.clone())
            )
        });
        ObjectEncoder {
            scheme: self.scheme.clone(),
            info: self.info.clone(),
            version: version.to_owned(),
            format: format!("json;{}/{}", self.info.group, version),
            bookmark_format: format!("bookmark;{}/{}", self.info.group, version),
            direct_prefix,
            bookmark: BookmarkDocument::new(&self.info, version),
            kind: std::marker::PhantomData,
        }
    }

    /// The request's version as the Store sees it: documents in and out of `ctx.version`.
    fn view(&self, ctx: &RequestContext) -> Arc<SchemeView> {
        Arc::new(SchemeView::new(
            self.scheme.clone(),
            self.info.clone(),
            ctx.version.clone(),
        ))
    }

    /// A create or update body decoded once into the stored type, with `fieldValidation`
    /// applied to what the kind keeps of it: Strict fails with 400 naming the kind and version
    /// the body could not be decoded as, as kube-apiserver's `transformDecodeError` does
    /// (`ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error:
    /// ...`); Warn returns the problems as warnings.
    fn decode_body(
        &self,
        ctx: &RequestContext,
        view: &SchemeView,
        body: RequestBody,
    ) -> Result<(K, Vec<String>), ApiError> {
        let RequestBody { raw, document } = body;
        let validation = ctx.field_validation;
        let sent = (validation != FieldValidation::Ignore).then(|| document.clone());
        let as_kind = |mut error: ApiError| {
            let kind = &self.info.kind;
            error.message = format!(
                "{kind} in version {:?} cannot be handled as a {kind}: {}",
                ctx.version, error.message
            );
            error
        };
        let object: K = match view.decode(document) {
            Ok(object) => object,
            Err(error) => {
                // A Strict body's repeated keys are reported before why it does not decode.
                if sent.is_some() {
                    let duplicates = strict::problems(&[], &strict::duplicate_fields(&raw));
                    strict::enforce(validation, duplicates).map_err(as_kind)?;
                }
                return Err(error);
            }
        };
        let warnings = match sent {
            Some(sent) => {
                let kept = VersionView::<K>::encode(view, &object)?;
                strict::enforce(validation, strict::body_problems(&raw, &sent, &kept))
                    .map_err(as_kind)?
            }
            None => Vec::new(),
        };
        Ok((object, warnings))
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

    async fn get(
        &self,
        ctx: &RequestContext,
        name: &str,
        resource_version: &str,
    ) -> Result<Value, ApiError> {
        let target = self.readable_target(ctx, "get")?;
        let object = self
            .store
            .get(&ctx.namespace, name, resource_version)
            .await?;
        if let (Target::Scale, Some(scale)) = (target, &self.scale) {
            return Ok(crate::scale::scale_document(scale.as_ref(), &object));
        }
        self.to_version(&object, &ctx.version)
    }

    async fn list_encoded(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<EncodedList, ApiError> {
        let list = self.store.list_shared(&ctx.namespace, options).await?;
        let encoder = self.encoder(&ctx.version);
        let items = list
            .items
            .iter()
            .map(|object| encoder.encode(object))
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
        let info = self.info.clone();
        let version = ctx.version.clone();
        let bookmark = BookmarkDocument::new(&self.info, &ctx.version);
        let stream = watch.map(move |event| match event {
            // Bookmarks carry only metadata; their empty objects are not converted.
            WatchEvent::Bookmark(object) => WatchEvent::Bookmark(bookmark.document(&object)),
            other => try_map(other, |object: K| {
                registry::view::encode_versioned(&scheme, &info, &object, &version)
            }),
        });
        Ok(stream.boxed())
    }

    async fn watch_encoded(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<EncodedWatch, ApiError> {
        let watch = self.store.watch_shared(&ctx.namespace, options).await?;
        let encoder = self.encoder(&ctx.version);
        // Each object is encoded once per version, whichever watcher gets to it first; from a
        // watch cache, every other watcher of the event sends the same bytes.
        let stream = watch.map(move |event| match event {
            WatchEvent::Bookmark(object) => try_map(WatchEvent::Bookmark(object), |o| {
                encoder.encode_bookmark(&o)
            }),
            other => try_map(other, |object| encoder.encode(&object)),
        });
        Ok(stream.boxed())
    }

    async fn watch_tables(
        &self,
        ctx: &RequestContext,
        options: &ListOptions,
    ) -> Result<Option<EncodedWatch>, ApiError> {
        let watch = self.store.watch_shared(&ctx.namespace, options).await?;
        let encoder = self.encoder(&ctx.version);
        let strategy = Arc::clone(self.store.strategy());
        // A watch event's Table depends on the stored object alone (its cells come from the
        // stored type and its row carries only metadata), so one encoding serves the watchers
        // of every version.
        let stream = watch.map(move |event| match event {
            WatchEvent::Bookmark(object) => try_map(WatchEvent::Bookmark(object), |o| {
                encoder.encode_bookmark(&o)
            }),
            other => try_map(other, |object| {
                object.encoded(WATCH_TABLE_FORMAT, |object| {
                    encode_watch_table(strategy.as_ref(), object)
                })
            }),
        });
        Ok(Some(stream.boxed()))
    }

    async fn create(
        &self,
        ctx: &RequestContext,
        body: RequestBody,
    ) -> Result<WriteOutcome, ApiError> {
        if !ctx.subresource.is_empty() {
            return Err(ApiError::method_not_supported(
                &self.info.group_resource(),
                "create",
            ));
        }
        let view = self.view(ctx);
        let (object, warnings) = self.decode_body(ctx, &view, body)?;
        let options = CreateOptions {
            dry_run: ctx.dry_run,
            validation: self.admission_for(ctx),
            // Every create and update is tracked, as kube-apiserver's handlers do, under the
            // manager derived from the user agent when the request names none (maybe "").
            field_manager: Some(ctx.field_manager.clone()),
            view: Some(view.clone()),
        };
        let created = self.store.create(&ctx.namespace, object, &options).await?;
        Ok(WriteOutcome {
            object: VersionView::<K>::encode(view.as_ref(), &created)?,
            created: true,
            warnings,
        })
    }

    async fn create_subresource(
        &self,
        ctx: &RequestContext,
        name: &str,
        body: RequestBody,
    ) -> Result<WriteOutcome, ApiError> {
        let creator = self
            .subresource_creates
            .iter()
            .find(|(subresource, _)| *subresource == ctx.subresource)
            .map(|(_, creator)| creator.clone());
        match creator {
            Some(creator) => creator.create(ctx, &self.store, name, body).await,
            None => Err(ApiError::method_not_supported(
                &self.info.group_resource(),
                "create",
            )),
        }
    }

    async fn update(
        &self,
        ctx: &RequestContext,
        name: &str,
        body: RequestBody,
    ) -> Result<WriteOutcome, ApiError> {
        if self.target(ctx)? == Target::Scale {
            let (replicas, resource_version) = crate::scale::requested(&body.document)?;
            return self
                .write_scale(ctx, name, resource_version, move |_| Ok(replicas))
                .await;
        }
        let view = self.view(ctx);
        let (object, warnings) = self.decode_body(ctx, &view, body)?;
        // The Store checks the body's name against the URL's, turns its uid into a
        // precondition and records managedFields in the request's version.
        let admission = self.admission_for(ctx);
        let options = UpdateOptions {
            dry_run: ctx.dry_run,
            field_manager: Some(ctx.field_manager.clone()),
            view: Some(view.clone()),
            create_validation: admission.clone(),
            update_validation: admission,
            ..UpdateOptions::default()
        };
        let updated = self
            .store
            .update(&ctx.namespace, name, &ctx.subresource, object, &options)
            .await?;
        Ok(WriteOutcome {
            object: VersionView::<K>::encode(view.as_ref(), &updated.object)?,
            created: updated.created,
            warnings,
        })
    }

    async fn patch(
        &self,
        ctx: &RequestContext,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
    ) -> Result<WriteOutcome, ApiError> {
        let target = self.readable_target(ctx, "patch")?;
        if target == Target::Scale {
            return self.patch_scale(ctx, name, patch_type, body).await;
        }
        let view = self.view(ctx);
        // Apply configurations are checked as sent; other patch types on the patched
        // document, inside the Store's pipeline, as Kubernetes does.
        let mut warnings = Vec::new();
        if patch_type == PatchType::Apply {
            let config = patch::decode_apply_patch(body)?;
            let kept = VersionView::<K>::decode(view.as_ref(), config.clone())
                .and_then(|object| VersionView::<K>::encode(view.as_ref(), &object))
                .ok();
            if let Some(kept) = &kept {
                strict::reject_undeclared(&config, kept, ctx, name, &self.info)?;
            }
            if ctx.field_validation != FieldValidation::Ignore {
                let problems = match &kept {
                    Some(kept) => strict::body_problems(body, &config, kept),
                    None => strict::problems(&[], &strict::duplicate_fields(body)),
                };
                warnings = strict::enforce(ctx.field_validation, problems)?;
            }
        }
        let view: Arc<dyn VersionView<K>> = view;
        let checked = (patch_type != PatchType::Apply
            && ctx.field_validation != FieldValidation::Ignore)
            .then(|| {
                Arc::new(CheckedView::new(
                    view.clone(),
                    ctx.field_validation,
                    strict::duplicate_fields(body),
                ))
            });
        let admission = self.admission_for(ctx);
        let options = PatchOptions {
            create_validation: admission.clone(),
            update_validation: admission,
            field_manager: Some(ctx.field_manager.clone()).filter(|m| !m.is_empty()),
            force: ctx.force.then_some(true),
            dry_run: ctx.dry_run,
            view: Some(match &checked {
                Some(checked) => checked.clone(),
                None => view.clone(),
            }),
        };
        let subresource = if target == Target::Status {
            "status"
        } else {
            ""
        };
        let updated = self
            .store
            .patch(
                &ctx.namespace,
                name,
                subresource,
                PatchBody::new(patch_type, body),
                &options,
            )
            .await?;
        if let Some(checked) = checked {
            warnings.extend(checked.warnings());
        }
        Ok(WriteOutcome {
            object: view.encode(&updated.object)?,
            created: updated.created,
            warnings,
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
