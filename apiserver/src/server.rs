//! Building a server: register kinds (or whole handlers), then get an axum [`Router`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use apimachinery::Object;
use apimachinery::status::{ApiError, GroupResource};
use axum::Router;
use k8s_openapi::api::core::v1::Namespace;
use object_storage::Storage;
use object_storage::transformer::ValueTransformer;
use patch::{KindSchema, PatchSchema};
use registry::Store;
use registry::Strategy;
use scheme::{Converter, GroupVersion, RegistrationError, ResourceInfo, RestMapper, Scheme};
use storage_api::Interface;
use tokio::sync::watch;

use crate::access::{Access, Authentication, AuthorizationMode};
use crate::audit::AuditLog;
use crate::handler::{Admission, ResourceHandler, SchemaFn, StoreHandler, SubresourceCreate};
use crate::inflight::InFlightLimits;
use crate::metrics::{InstrumentedStore, Metrics};
use crate::namespace::NamespaceBinding;
use crate::rbac::RbacStores;
use crate::scale::ScaleSubresource;
use crate::watch_cache::{WatchCacheSettings, WatchCaching};
use apiextensions::CustomResourceDefinition;

/// Everything needed to serve one kind from a registry [`Store`].
pub struct KindSpec<K: Object + Default> {
    info: ResourceInfo,
    converter: Arc<dyn Converter>,
    strategy: Arc<dyn Strategy<K>>,
    status_strategy: Option<Arc<dyn Strategy<K>>>,
    subresource_strategies: Vec<(String, Arc<dyn Strategy<K>>)>,
    return_deleted_object: bool,
    patch_schema: Arc<dyn PatchSchema>,
    openapi: Option<SchemaFn>,
    transformer: Option<Arc<dyn ValueTransformer>>,
    admission: Option<Arc<dyn Admission<K>>>,
    subresource_creates: Vec<(String, Arc<dyn SubresourceCreate<K>>)>,
    scale: Option<Arc<dyn ScaleSubresource<K>>>,
    read_defaults: Option<object_storage::ReadDefaults<K>>,
}

impl<K: Object + Default> KindSpec<K> {
    /// A kind described by `info`, converted between its versions by `converter`
    /// ([`scheme::TypedConverter`] for single-version typed kinds), written through
    /// `strategy`, patched with `patch_schema`. `K` is the storage-version type.
    pub fn new(
        info: ResourceInfo,
        converter: Arc<dyn Converter>,
        strategy: Arc<dyn Strategy<K>>,
        patch_schema: &'static KindSchema,
    ) -> Self {
        KindSpec {
            info,
            converter,
            strategy,
            status_strategy: None,
            subresource_strategies: Vec::new(),
            return_deleted_object: false,
            patch_schema: Arc::new(*patch_schema),
            openapi: None,
            transformer: None,
            admission: None,
            subresource_creates: Vec::new(),
            scale: None,
            read_defaults: None,
        }
    }

    /// Applies `defaults` to every object read from storage (a CRD's structural defaults).
    pub fn with_read_defaults(mut self, defaults: object_storage::ReadDefaults<K>) -> Self {
        self.read_defaults = Some(defaults);
        self
    }

    /// Serves the `scale` subresource through `scale`; `info` gains
    /// [`scheme::SubresourceInfo::scale`].
    pub fn with_scale(mut self, scale: Arc<dyn ScaleSubresource<K>>) -> Self {
        if !self.info.has_subresource("scale") {
            self.info = self.info.with_subresource(scheme::SubresourceInfo::scale());
        }
        self.scale = Some(scale);
        self
    }

    /// Patches (merge rules of lists, strategic merge) by `schema` instead of the static
    /// schema given to [`KindSpec::new`], as a CRD's kind does from its structural schema.
    pub fn with_patch_schema(mut self, schema: Arc<dyn PatchSchema>) -> Self {
        self.patch_schema = schema;
        self
    }

    /// Answers POSTs to the subresource `subresource` (which `info` must list with the
    /// `create` verb) with `create`.
    pub fn with_subresource_create(
        mut self,
        subresource: &str,
        create: Arc<dyn SubresourceCreate<K>>,
    ) -> Self {
        self.subresource_creates
            .push((subresource.to_owned(), create));
        self
    }

    /// Runs `admission` on every create, update and patch of the kind (see [`Admission`]).
    pub fn with_admission(mut self, admission: Arc<dyn Admission<K>>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Serves the `status` subresource through `strategy` (`info` must list it).
    pub fn with_status_strategy(mut self, strategy: Arc<dyn Strategy<K>>) -> Self {
        self.status_strategy = Some(strategy);
        self
    }

    /// Writes the update-only subresource `subresource` (such as `namespaces/finalize`; `info`
    /// must list it) through `strategy`, with [`registry::Store::update`].
    pub fn with_subresource_strategy(
        mut self,
        subresource: &str,
        strategy: Arc<dyn Strategy<K>>,
    ) -> Self {
        self.subresource_strategies
            .push((subresource.to_owned(), strategy));
        self
    }

    /// Completed deletes answer with the deleted object instead of a `Status` (as
    /// kube-apiserver does for namespaces).
    pub fn with_return_deleted_object(mut self) -> Self {
        self.return_deleted_object = true;
        self
    }

    /// The OpenAPI schema of the kind per version (for `kubectl explain`).
    pub fn with_openapi(mut self, schema: SchemaFn) -> Self {
        self.openapi = Some(schema);
        self
    }

    /// Encrypts (or otherwise transforms) stored values with `transformer`.
    pub fn with_transformer(mut self, transformer: Arc<dyn ValueTransformer>) -> Self {
        self.transformer = Some(transformer);
        self
    }
}

/// Why a server could not be built or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The Prometheus metrics could not be set up (a programming error).
    #[error("setting up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A kind could not be registered: already registered, or inconsistent names.
    #[error("registering {plural}: {source}")]
    Registration {
        /// The plural resource name of the kind.
        plural: String,
        /// What the scheme refused.
        #[source]
        source: RegistrationError,
    },
    /// A watch cache could not be started (outside a Tokio runtime).
    #[error("starting the watch cache of {resource}: {source}")]
    WatchCache {
        /// The resource.
        resource: String,
        /// Why.
        #[source]
        source: object_storage::StorageError,
    },
    /// A namespace the server needs could not be created.
    #[error("creating namespace {name}: {source}")]
    Bootstrap {
        /// The namespace.
        name: String,
        /// The API error of the create.
        #[source]
        source: ApiError,
    },
    /// The bootstrap RBAC policy could not be written.
    #[error("writing the bootstrap RBAC policy: {0}")]
    BootstrapPolicy(#[source] ApiError),
    /// The stored CustomResourceDefinitions could not be read to serve their kinds.
    #[error("serving the stored CustomResourceDefinitions: {0}")]
    ServeCrds(#[source] ApiError),
}

type Factory = Box<
    dyn FnOnce(
            &Arc<Scheme>,
            &Arc<dyn Interface>,
            &WatchCaching,
        ) -> Result<Arc<dyn ResourceHandler>, ServerError>
        + Send,
>;

/// Builds an [`ApiServer`]: a storage backend, the kinds served, authentication.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// let storage = storage::open("memory://").await?;
/// let mut builder = apiserver::ServerBuilder::new(storage)?;
/// apiserver::kinds::register_all(&mut builder, None)?;
/// let server = builder.build()?;
/// let app = server.router();
/// # let _ = app; Ok(()) }
/// ```
pub struct ServerBuilder {
    storage: Arc<dyn Interface>,
    scheme: Scheme,
    factories: Vec<Factory>,
    metrics: Metrics,
    access: Arc<Access>,
    audit: Option<AuditLog>,
    namespaces: Option<Store<Namespace>>,
    rbac: Option<RbacStores>,
    crds: Option<Store<CustomResourceDefinition>>,
    namespace_binding: Arc<NamespaceBinding>,
    server_address: String,
    inflight: InFlightLimits,
    watch_cache: WatchCacheSettings,
}

impl ServerBuilder {
    /// A builder over `storage` (any backend from `storage::open`).
    ///
    /// # Errors
    ///
    /// When the metrics cannot be set up.
    pub fn new(storage: Arc<dyn Interface>) -> Result<Self, ServerError> {
        let metrics = Metrics::new()?;
        let storage: Arc<dyn Interface> =
            Arc::new(InstrumentedStore::new(storage, metrics.clone()));
        Ok(ServerBuilder {
            storage,
            scheme: Scheme::new(),
            factories: Vec::new(),
            metrics,
            access: Arc::new(Access::new()),
            audit: None,
            namespaces: None,
            rbac: None,
            crds: None,
            namespace_binding: Arc::new(NamespaceBinding::default()),
            server_address: "127.0.0.1:6443".to_owned(),
            inflight: InFlightLimits::default(),
            watch_cache: WatchCacheSettings::default(),
        })
    }

    /// Which resources are served through a watch cache (by default all, with upstream's
    /// ring sizes); see [`WatchCacheSettings`]. Applies to every kind, also those
    /// registered before the call, and to kinds added while serving.
    pub fn with_watch_cache(mut self, settings: WatchCacheSettings) -> Self {
        self.watch_cache = settings;
        self
    }

    /// Limits on requests in flight (by default kube-apiserver's: 400 read, 200 mutating);
    /// see [`InFlightLimits`].
    pub fn with_inflight_limits(mut self, limits: InFlightLimits) -> Self {
        self.inflight = limits;
        self
    }

    /// How requests are authenticated (by default: no authenticators, every request is
    /// `system:anonymous`). Set once; later calls are ignored.
    pub fn with_authentication(self, authentication: Authentication) -> Self {
        if !self.access.set_authentication(authentication) {
            tracing::warn!("authentication set twice: keeping the first");
        }
        self
    }

    /// The authorization chain after the `system:masters` link (by default `AlwaysAllow`).
    /// Set once, before serving; later calls are ignored.
    pub fn with_authorization(self, modes: Vec<AuthorizationMode>) -> Self {
        if !self.access.set_modes(modes) {
            tracing::warn!("authorization modes set twice: keeping the first");
        }
        self
    }

    /// An authorizer of your own, asked after the `system:masters` link and before the
    /// `--authorization-mode` links. Set once, before serving.
    pub fn with_authorizer(self, authorizer: Arc<dyn auth::Authorizer>) -> Self {
        if !self.access.set_custom_authorizer(authorizer) {
            tracing::warn!("custom authorizer set twice: keeping the first");
        }
        self
    }

    /// Issues service account tokens with `issuer` (`serviceaccounts/<name>/token`) and
    /// accepts them. Set before the service accounts are registered; only the first counts.
    pub fn with_token_issuer(self, issuer: Arc<auth::service_account::TokenIssuer>) -> Self {
        if !self.access.set_token_issuer(issuer) {
            tracing::warn!("token issuer set twice: keeping the first");
        }
        self
    }

    /// Records every request in `log` (see [`AuditLog`]).
    pub fn with_audit_log(mut self, log: AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// The authentication and authorization of this server.
    pub fn access(&self) -> &Arc<Access> {
        &self.access
    }

    /// Serves the RBAC kinds (roles, clusterroles, rolebindings, clusterrolebindings), whose
    /// objects the `RBAC` authorization mode enforces; the bootstrap policy is written at
    /// [`ApiServer::bootstrap`] and the RBAC controller runs with [`ApiServer::controllers`].
    ///
    /// # Errors
    ///
    /// When a kind is already registered.
    pub fn register_rbac(&mut self) -> Result<(), ServerError> {
        let stores = crate::rbac::register(self)?;
        self.rbac = Some(stores);
        Ok(())
    }

    /// Serves `apiextensions.k8s.io/v1` CustomResourceDefinitions; the CRD controller
    /// ([`ApiServer::controllers`]) then serves the kind of every established CRD.
    ///
    /// # Errors
    ///
    /// When the kind is already registered.
    pub fn register_crds(&mut self) -> Result<(), ServerError> {
        let store = crate::crds::register(self)?;
        self.crds = Some(store);
        Ok(())
    }

    /// Serves the authorization and authentication review kinds (SelfSubjectAccessReview,
    /// SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectRulesReview,
    /// SelfSubjectReview, TokenReview), answered by this server's authorizer and
    /// authenticators.
    ///
    /// # Errors
    ///
    /// When a kind is already registered.
    pub fn register_reviews(&mut self) -> Result<(), ServerError> {
        use crate::reviews::{Review, ReviewHandler};
        macro_rules! converter {
            ($review:expr) => {
                match $review {
                    Review::SelfSubjectAccess => Arc::new(scheme::TypedConverter::<
                        k8s_openapi::api::authorization::v1::SelfSubjectAccessReview,
                    >::new()) as Arc<dyn Converter>,
                    Review::SubjectAccess => Arc::new(scheme::TypedConverter::<
                        k8s_openapi::api::authorization::v1::SubjectAccessReview,
                    >::new()),
                    Review::LocalSubjectAccess => Arc::new(scheme::TypedConverter::<
                        k8s_openapi::api::authorization::v1::LocalSubjectAccessReview,
                    >::new()),
                    Review::SelfSubjectRules => Arc::new(scheme::TypedConverter::<
                        k8s_openapi::api::authorization::v1::SelfSubjectRulesReview,
                    >::new()),
                    Review::SelfSubject => Arc::new(scheme::TypedConverter::<
                        k8s_openapi::api::authentication::v1::SelfSubjectReview,
                    >::new()),
                    Review::Token => Arc::new(scheme::TypedConverter::<
                        k8s_openapi::api::authentication::v1::TokenReview,
                    >::new()),
                }
            };
        }
        for review in Review::ALL {
            let access = self.access.clone();
            self.register_handler(review.info(), converter!(review), move |_, _| {
                Arc::new(ReviewHandler::new(review, access))
            })?;
        }
        Ok(())
    }

    /// The address reported in `/api` (`serverAddressByClientCIDRs`).
    pub fn with_server_address(mut self, address: impl Into<String>) -> Self {
        self.server_address = address.into();
        self
    }

    /// The scheme (kinds registered so far).
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The instrumented storage every kind uses.
    pub fn storage(&self) -> &Arc<dyn Interface> {
        &self.storage
    }

    /// Registers a kind served from a registry [`Store`] over this builder's storage. Namespaced
    /// kinds check the namespace of their creates and updates against the namespaces
    /// registered with [`ServerBuilder::register_namespaces`] (in any order; see
    /// [`registry::lifecycle`]).
    ///
    /// # Errors
    ///
    /// When the kind is already registered or its info is inconsistent.
    pub fn register_kind<K: Object + Default>(
        &mut self,
        spec: KindSpec<K>,
    ) -> Result<(), ServerError> {
        refuse_namespaces(&spec.info)?;
        let (store, spec) = self.store_for(spec)?;
        self.push_store_handler(store, spec);
        Ok(())
    }

    /// Registers core `v1` namespaces: served like any kind, and also the store the namespace
    /// lifecycle (admission of namespaced writes, the namespace controller, `default`) uses.
    ///
    /// # Errors
    ///
    /// As [`ServerBuilder::register_kind`].
    pub fn register_namespaces(&mut self, spec: KindSpec<Namespace>) -> Result<(), ServerError> {
        let (store, spec) = self.store_for(spec)?;
        self.namespace_binding.bind(&store);
        self.namespaces = Some(store.clone());
        self.push_store_handler(store, spec);
        Ok(())
    }

    /// [`ServerBuilder::register_kind`], returning the kind's store (without its watch cache)
    /// for the server's own controllers.
    pub(crate) fn register_kind_store<K: Object + Default>(
        &mut self,
        spec: KindSpec<K>,
    ) -> Result<Store<K>, ServerError> {
        refuse_namespaces(&spec.info)?;
        let (store, spec) = self.store_for(spec)?;
        self.push_store_handler(store.clone(), spec);
        Ok(store)
    }

    /// Registers `spec` in the scheme and builds its store.
    fn store_for<K: Object + Default>(
        &mut self,
        spec: KindSpec<K>,
    ) -> Result<(Store<K>, KindSpec<K>), ServerError> {
        self.scheme
            .register(spec.info.clone(), spec.converter.clone())
            .map_err(|source| ServerError::Registration {
                plural: spec.info.plural.clone(),
                source,
            })?;
        let store = build_store(&self.storage, &self.namespace_binding, &spec);
        Ok((store, spec))
    }

    /// Serves `store` with a [`StoreHandler`] once the scheme is complete.
    fn push_store_handler<K: Object + Default>(&mut self, store: Store<K>, spec: KindSpec<K>) {
        self.factories.push(Box::new(move |scheme, _, caching| {
            Ok(store_handler(caching.wrap(store)?, spec, scheme))
        }));
    }

    /// Registers a resource served by a handler of your own. `converter` converts its versions
    /// (it is registered in the scheme with `info`); `make` builds the handler once the scheme
    /// is complete.
    ///
    /// # Errors
    ///
    /// When the kind is already registered.
    pub fn register_handler<F>(
        &mut self,
        info: ResourceInfo,
        converter: Arc<dyn Converter>,
        make: F,
    ) -> Result<(), ServerError>
    where
        F: FnOnce(&Arc<Scheme>, &Arc<dyn Interface>) -> Arc<dyn ResourceHandler> + Send + 'static,
    {
        self.scheme
            .register(info.clone(), converter)
            .map_err(|source| ServerError::Registration {
                plural: info.plural.clone(),
                source,
            })?;
        self.factories.push(Box::new(move |scheme, storage, _| {
            Ok(make(scheme, storage))
        }));
        Ok(())
    }

    /// Finishes the server.
    ///
    /// # Errors
    ///
    /// When a watch cache cannot start: build the server on a Tokio runtime.
    pub fn build(self) -> Result<ApiServer, ServerError> {
        let scheme = Arc::new(self.scheme);
        let caching = WatchCaching::new(self.watch_cache, self.metrics.watch_cache.clone());
        let ordered = self
            .factories
            .into_iter()
            .map(|factory| factory(&scheme, &self.storage, &caching))
            .collect::<Result<_, _>>()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        Ok(ApiServer {
            inner: Arc::new(ServerState {
                kinds: RwLock::new(Arc::new(ServedKinds::new(scheme, ordered))),
                kinds_change: Mutex::new(()),
                storage: self.storage,
                metrics: self.metrics,
                access: self.access,
                audit: self.audit,
                namespaces: self.namespaces,
                rbac: self.rbac,
                crds: self.crds,
                crd_kinds: Mutex::new(HashMap::new()),
                namespace_binding: self.namespace_binding,
                shutdown_tx,
                shutdown_rx,
                server_address: self.server_address,
                inflight: self.inflight,
                watch_caching: caching,
            }),
        })
    }
}

/// Core `v1` namespaces drive the namespace lifecycle of every namespaced kind: they are
/// registered with [`ServerBuilder::register_namespaces`] and cannot come or go while serving.
fn refuse_namespaces(info: &ResourceInfo) -> Result<(), ServerError> {
    if info.group.is_empty() && info.plural == "namespaces" {
        return Err(ServerError::Registration {
            plural: info.plural.clone(),
            source: RegistrationError(
                "namespaces drive the namespace lifecycle: register them with \
                 ServerBuilder::register_namespaces, before the server is built"
                    .to_owned(),
            ),
        });
    }
    Ok(())
}

/// The registry Store of a kind over `storage`, with the namespace lifecycle for namespaced
/// kinds.
fn build_store<K: Object + Default>(
    storage: &Arc<dyn Interface>,
    namespace_binding: &Arc<NamespaceBinding>,
    spec: &KindSpec<K>,
) -> Store<K> {
    let mut object_storage = Storage::<K>::new(storage.clone(), Arc::new(K::default));
    if let Some(transformer) = &spec.transformer {
        object_storage = object_storage.with_transformer(transformer.clone());
    }
    if let Some(defaults) = &spec.read_defaults {
        object_storage = object_storage.with_read_defaults(defaults.clone());
    }
    let mut store = Store::new(
        object_storage,
        spec.info.group_resource(),
        spec.info.kind.clone(),
        spec.strategy.clone(),
    );
    if !spec.info.group.is_empty() {
        store = store.with_key_root(&format!("{}/{}", spec.info.group, spec.info.plural));
    }
    if let Some(status) = &spec.status_strategy {
        store = store.with_status_strategy(status.clone());
    }
    for (subresource, strategy) in &spec.subresource_strategies {
        store = store.with_subresource_strategy(subresource, strategy.clone());
    }
    if spec.return_deleted_object {
        store = store.with_return_deleted_object(true);
    }
    if spec.info.namespaced {
        store = store.with_namespace_lifecycle(namespace_binding.clone());
    }
    store
}

/// The handler serving `store` with the conversions of `scheme`.
fn store_handler<K: Object + Default>(
    store: Store<K>,
    spec: KindSpec<K>,
    scheme: &Arc<Scheme>,
) -> Arc<dyn ResourceHandler> {
    let mut handler = StoreHandler::new(store, scheme.clone(), spec.info, spec.patch_schema);
    if let Some(openapi) = spec.openapi {
        handler = handler.with_openapi(openapi);
    }
    if let Some(admission) = spec.admission {
        handler = handler.with_admission(admission);
    }
    for (subresource, create) in spec.subresource_creates {
        handler = handler.with_subresource_create(&subresource, create);
    }
    if let Some(scale) = spec.scale {
        handler = handler.with_scale(scale);
    }
    Arc::new(handler)
}

/// The kinds a server serves at one moment: the scheme, discovery, the handlers and OpenAPI,
/// always consistent with each other. A request works on one snapshot
/// ([`ServerState::kinds`]); [`ApiServer::add_kind`] and [`ApiServer::remove_kind`] replace it.
pub struct ServedKinds {
    /// The scheme of served kinds.
    pub scheme: Arc<Scheme>,
    /// Discovery and name resolution.
    pub mapper: RestMapper,
    /// Handlers by (group, version, plural).
    handlers: HashMap<(String, String, String), Arc<dyn ResourceHandler>>,
    /// Handlers in registration order.
    pub ordered: Vec<Arc<dyn ResourceHandler>>,
    /// Prebuilt OpenAPI v3 documents.
    pub(crate) openapi: crate::openapi::OpenApi,
    /// The prebuilt OpenAPI v2 document.
    pub(crate) openapi_v2: crate::openapi_v2::OpenApiV2,
}

impl ServedKinds {
    fn new(scheme: Arc<Scheme>, ordered: Vec<Arc<dyn ResourceHandler>>) -> Self {
        let mut handlers = HashMap::new();
        for handler in &ordered {
            let info = handler.info();
            for version in &info.versions {
                handlers.insert(
                    (info.group.clone(), version.clone(), info.plural.clone()),
                    handler.clone(),
                );
            }
        }
        let mapper = scheme.rest_mapper();
        let openapi = crate::openapi::OpenApi::build(&mapper, &ordered);
        let openapi_v2 = crate::openapi_v2::OpenApiV2::build(&ordered);
        ServedKinds {
            scheme,
            mapper,
            handlers,
            ordered,
            openapi,
            openapi_v2,
        }
    }

    /// The handler of a resource at a group-version.
    pub fn handler(&self, gv: &GroupVersion, resource: &str) -> Option<&Arc<dyn ResourceHandler>> {
        self.handlers
            .get(&(gv.group.clone(), gv.version.clone(), resource.to_owned()))
    }
}

/// The shared state of a running server.
pub struct ServerState {
    /// The kinds served now; see [`ServerState::kinds`].
    kinds: RwLock<Arc<ServedKinds>>,
    /// Serialises changes of `kinds`, so the next snapshot is built without blocking readers.
    kinds_change: Mutex<()>,
    /// The (instrumented) storage backend.
    pub storage: Arc<dyn Interface>,
    /// Metrics.
    pub metrics: Metrics,
    /// Authentication and authorization.
    pub access: Arc<Access>,
    /// The audit log, when requests are audited.
    pub audit: Option<AuditLog>,
    /// The namespaces store, when namespaces are served.
    pub namespaces: Option<Store<Namespace>>,
    /// The RBAC stores, when the RBAC kinds are served.
    pub(crate) rbac: Option<RbacStores>,
    /// The CustomResourceDefinitions store, when CRDs are served.
    pub(crate) crds: Option<Store<CustomResourceDefinition>>,
    /// The kinds served for CRDs, by CRD name: which CRD, and which handler (so a built-in
    /// kind of the same names is never taken for one).
    pub(crate) crd_kinds: Mutex<HashMap<String, crate::crds::ServedCrd>>,
    /// The namespace lifecycle of namespaced kinds, also those added while serving.
    namespace_binding: Arc<NamespaceBinding>,
    shutdown_tx: watch::Sender<bool>,
    /// Turns true when the server shuts down; watches end.
    pub shutdown_rx: watch::Receiver<bool>,
    /// The address reported in discovery.
    pub server_address: String,
    /// Limits on requests in flight.
    pub inflight: InFlightLimits,
    /// The watch caches of kinds added while serving.
    watch_caching: WatchCaching,
}

impl ServerState {
    /// The kinds served now: a consistent snapshot for one request.
    pub fn kinds(&self) -> Arc<ServedKinds> {
        self.kinds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The handler of a resource at a group-version, in the current kinds.
    pub fn handler(&self, gv: &GroupVersion, resource: &str) -> Option<Arc<dyn ResourceHandler>> {
        self.kinds().handler(gv, resource).cloned()
    }

    /// Serves `spec`'s kind from now on; with `replace`, a kind of the same group and
    /// plural served now is swapped for it in the same step, so requests never see neither.
    ///
    /// # Errors
    ///
    /// When the kind is already served (and not replaced) or its info is inconsistent.
    pub(crate) fn serve_kind<K: Object + Default>(
        &self,
        spec: KindSpec<K>,
        replace: bool,
    ) -> Result<(), ServerError> {
        refuse_namespaces(&spec.info)?;
        self.change_kinds(|current| {
            let mut scheme = (*current.scheme).clone();
            let resource = spec.info.group_resource();
            let mut ordered = current.ordered.clone();
            if replace {
                scheme.unregister(&resource);
                ordered.retain(|handler| handler.info().group_resource() != resource);
            }
            scheme
                .register(spec.info.clone(), spec.converter.clone())
                .map_err(|source| ServerError::Registration {
                    plural: spec.info.plural.clone(),
                    source,
                })?;
            let scheme = Arc::new(scheme);
            let store = build_store(&self.storage, &self.namespace_binding, &spec);
            let store = self.watch_caching.wrap(store)?;
            ordered.push(store_handler(store, spec, &scheme));
            Ok((ServedKinds::new(scheme, ordered), ()))
        })
    }

    /// Stops serving the kind `plural` of `group`; see [`ApiServer::remove_kind`].
    pub(crate) fn remove_kind(&self, group: &str, plural: &str) -> bool {
        if group.is_empty() && plural == "namespaces" {
            return false;
        }
        let removed = self.change_kinds(|current| {
            let mut scheme = (*current.scheme).clone();
            let removed = scheme.unregister(&GroupResource::new(group, plural));
            let ordered = current
                .ordered
                .iter()
                .filter(|handler| {
                    let info = handler.info();
                    !(info.group == group && info.plural == plural)
                })
                .cloned()
                .collect();
            Ok((ServedKinds::new(Arc::new(scheme), ordered), removed))
        });
        matches!(removed, Ok(true))
    }

    /// Replaces the served kinds with what `change` makes of the current ones. Changes apply
    /// one after the other; the next snapshot is built while requests keep reading the current
    /// one, and the swap itself is all the write lock covers.
    fn change_kinds<T>(
        &self,
        change: impl FnOnce(&ServedKinds) -> Result<(ServedKinds, T), ServerError>,
    ) -> Result<T, ServerError> {
        let _one_at_a_time = self
            .kinds_change
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (next, answer) = change(&self.kinds())?;
        *self.kinds.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(answer)
    }
}

/// A built server: serve its [`ApiServer::router`], run its [`ApiServer::controllers`], and
/// call [`ApiServer::shutdown`] to end watches.
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<ServerState>,
}

impl ApiServer {
    /// The shared state.
    pub fn state(&self) -> &Arc<ServerState> {
        &self.inner
    }

    /// The axum router serving the whole API.
    pub fn router(&self) -> Router {
        crate::dispatch::router(self.inner.clone())
    }

    /// Creates the namespaces kube-apiserver starts with (`default`, `kube-system`,
    /// `kube-public`, `kube-node-lease`) when namespaces are served and they do not exist.
    ///
    /// # Errors
    ///
    /// When the storage fails.
    pub async fn bootstrap(&self) -> Result<(), ServerError> {
        for name in crate::namespace::BOOTSTRAP_NAMESPACES {
            crate::namespace::ensure_namespace(&self.inner, name)
                .await
                .map_err(|source| ServerError::Bootstrap {
                    name: name.to_owned(),
                    source,
                })?;
        }
        if let Some(stores) = &self.inner.rbac {
            crate::rbac::bootstrap(stores)
                .await
                .map_err(ServerError::BootstrapPolicy)?;
        }
        crate::crds::serve_established(&self.inner)
            .await
            .map_err(ServerError::ServeCrds)?;
        Ok(())
    }

    /// Spawns the background controllers (the namespace lifecycle, the garbage collector of
    /// `ownerReferences`, the RBAC controller when the RBAC kinds are served, and the CRD
    /// controller when CustomResourceDefinitions are served) on the
    /// current runtime; they stop at [`ApiServer::shutdown`].
    pub fn controllers(&self) -> tokio::task::JoinHandle<()> {
        let namespaces = tokio::spawn(crate::namespace::run_controller(self.inner.clone()));
        let garbage = tokio::spawn(crate::garbage_collector::run_controller(self.inner.clone()));
        let rbac = tokio::spawn(crate::rbac::run_controller(self.inner.clone()));
        let crds = tokio::spawn(crate::crds::run_controller(self.inner.clone()));
        tokio::spawn(async move {
            let _ = namespaces.await;
            let _ = garbage.await;
            let _ = rbac.await;
            let _ = crds.await;
        })
    }

    /// Serves one more kind from now on, as [`ServerBuilder::register_kind`] would have:
    /// discovery, OpenAPI and the REST paths of the kind appear at once; requests already
    /// running keep the kinds they started with.
    ///
    /// # Errors
    ///
    /// When the kind is already served or its info is inconsistent.
    pub fn add_kind<K: Object + Default>(&self, spec: KindSpec<K>) -> Result<(), ServerError> {
        self.inner.serve_kind(spec, false)
    }

    /// Stops serving the kind `plural` of `group` and returns whether it was served. Its
    /// stored objects stay (and are served again if the kind comes back); watches already
    /// open on it run until they end; the namespace controller no longer sees it. Core
    /// namespaces cannot be removed.
    pub fn remove_kind(&self, group: &str, plural: &str) -> bool {
        self.inner.remove_kind(group, plural)
    }

    /// Signals shutdown: open watches end cleanly, controllers stop.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown_tx.send(true);
    }
}
