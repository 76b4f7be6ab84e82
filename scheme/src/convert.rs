//! The [`Scheme`]: kinds, their resource info, and defaulting and conversion through a hub.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::gvk::{GroupKind, GroupVersion, GroupVersionKind};
use super::info::{ResourceInfo, ScopeKind};
use super::mapper::RestMapper;
use apimachinery::status::{ApiError, GroupResource};

/// Why a document could not be defaulted or converted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConversionError {
    /// The document does not fit the schema of its version (wrong field type, ...).
    #[error("{0}")]
    Decode(String),
    /// The converter does not know this version.
    #[error("unsupported version {0:?}")]
    UnsupportedVersion(String),
    /// The object cannot be expressed in the target version.
    #[error("{0}")]
    Failed(String),
}

/// Defaulting and conversion of one kind, on JSON documents.
///
/// Every served version converts to and from one hub (internal) representation, so `n`
/// versions need `2n` functions, never `n²`. Documents passed in carry `apiVersion` and `kind`;
/// documents returned must carry the `apiVersion` of the version they are in. The [`Scheme`]
/// never passes the hub version itself to [`Converter::convert_to_hub`] or
/// [`Converter::convert_from_hub`].
pub trait Converter: Send + Sync + 'static {
    /// The hub version: [`INTERNAL_VERSION`](super::INTERNAL_VERSION) for multi-version kinds,
    /// the one served version for kinds without conversion.
    fn hub_version(&self) -> &str;

    /// Applies the defaults of `version` to a document in that version.
    ///
    /// # Errors
    ///
    /// [`ConversionError::Decode`] when the document does not fit the version's schema.
    fn default(&self, version: &str, object: &mut Value) -> Result<(), ConversionError>;

    /// Converts a document in `version` to the hub representation.
    ///
    /// # Errors
    ///
    /// [`ConversionError`] when the document does not decode or cannot be converted.
    fn convert_to_hub(&self, version: &str, object: Value) -> Result<Value, ConversionError>;

    /// Converts a hub document to `version`.
    ///
    /// # Errors
    ///
    /// [`ConversionError`] when the document does not decode or cannot be converted.
    fn convert_from_hub(&self, version: &str, hub: Value) -> Result<Value, ConversionError>;

    /// Whether applying the defaults of the hub version is exactly decoding the document into
    /// the kind's Rust type (typed kinds without defaults of their own), so a caller that
    /// decodes the document into that type anyway may skip [`Converter::default`] there
    /// ([`Scheme::decode_typed`]).
    fn defaults_by_decoding(&self) -> bool {
        false
    }

    /// The OpenAPI v3 schema of the kind at `version`, for `/openapi/v3` and `kubectl explain`.
    fn openapi_schema(&self, version: &str) -> Option<Value> {
        let _ = version;
        None
    }
}

/// The converter of a typed kind served and stored at one version (the built-in
/// `k8s_openapi` kinds): no conversion; defaulting and hub conversion decode the document into
/// `K` and encode it again, so a document that does not fit `K` is rejected and unknown fields
/// are dropped, as kube-apiserver drops them.
pub struct TypedConverter<K> {
    _kind: PhantomData<fn() -> K>,
}

impl<K> TypedConverter<K> {
    /// The converter of `K`.
    pub fn new() -> Self {
        TypedConverter { _kind: PhantomData }
    }
}

impl<K> Default for TypedConverter<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> fmt::Debug for TypedConverter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedConverter")
            .field("type", &std::any::type_name::<K>())
            .finish()
    }
}

impl<K> TypedConverter<K>
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned,
{
    fn round_trip(version: &str, object: Value) -> Result<Value, ConversionError> {
        if version != K::VERSION {
            return Err(ConversionError::UnsupportedVersion(version.to_owned()));
        }
        let typed: K =
            serde_json::from_value(object).map_err(|e| ConversionError::Decode(e.to_string()))?;
        serde_json::to_value(typed).map_err(|e| ConversionError::Failed(e.to_string()))
    }
}

impl<K> Converter for TypedConverter<K>
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned + 'static,
{
    fn hub_version(&self) -> &str {
        K::VERSION
    }

    fn defaults_by_decoding(&self) -> bool {
        true
    }

    fn default(&self, version: &str, object: &mut Value) -> Result<(), ConversionError> {
        *object = Self::round_trip(version, object.take())?;
        Ok(())
    }

    fn convert_to_hub(&self, version: &str, object: Value) -> Result<Value, ConversionError> {
        Self::round_trip(version, object)
    }

    fn convert_from_hub(&self, version: &str, hub: Value) -> Result<Value, ConversionError> {
        Self::round_trip(version, hub)
    }
}

/// A kind registration that is inconsistent or collides with an earlier one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot register kind: {0}")]
pub struct RegistrationError(pub String);

#[derive(Clone)]
struct Entry {
    info: Arc<ResourceInfo>,
    converter: Arc<dyn Converter>,
}

/// The registry of served kinds (`runtime.Scheme` plus the per-resource facts of the API
/// installer): group/version/kind to [`ResourceInfo`] and back, and per kind the conversion
/// between each served version and the hub version, with defaulting applied on decode.
///
/// Write path: [`Scheme::decode`] (body in the request's version -> defaults -> hub), then
/// [`Scheme::convert_from_hub`] to the storage version, or both at once with
/// [`Scheme::decode_to_storage`]. Read path: [`Scheme::convert`] from the stored version to the
/// requested one (through the hub). All of it works on `serde_json::Value` documents; the
/// typed conversions live in each kind's [`Converter`].
#[derive(Clone, Default)]
pub struct Scheme {
    kinds: BTreeMap<GroupKind, Entry>,
    resources: HashMap<GroupResource, GroupKind>,
    order: Vec<GroupKind>,
}

impl fmt::Debug for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheme")
            .field("kinds", &self.order)
            .finish()
    }
}

fn not_registered(gvk: &GroupVersionKind) -> ApiError {
    ApiError::bad_request(format!(
        "no kind {:?} is registered for version {:?}",
        gvk.kind,
        gvk.api_version()
    ))
}

/// The 404 of a path naming no served resource or version.
pub(crate) fn resource_not_found(resource: &GroupResource) -> ApiError {
    let mut error = ApiError::not_found(resource, "");
    "the server could not find the requested resource".clone_into(&mut error.message);
    error
}

fn cannot_handle(gvk: &GroupVersionKind, error: &ConversionError) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version {:?} cannot be handled as a {}: {error}",
        gvk.kind, gvk.version, gvk.kind
    ))
}

fn conversion_failed(from: &GroupVersionKind, to: &str, error: &ConversionError) -> ApiError {
    ApiError::internal(format!(
        "failed to convert {} from {} to {to}: {error}",
        from.kind,
        from.api_version()
    ))
}

/// Reads `apiVersion` and `kind` of a JSON object.
fn type_of(object: &Map<String, Value>) -> Result<GroupVersionKind, ApiError> {
    let text = |field: &str| match object.get(field) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {field} must be a string, not {other}"
        ))),
    };
    let gv = GroupVersion::parse(text("apiVersion")?)?;
    Ok(gv.with_kind(text("kind")?))
}

fn as_object(document: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    document.as_object_mut().ok_or_else(|| {
        ApiError::bad_request(
            "couldn't get version/kind; json parse error: the object is not a JSON object",
        )
    })
}

impl Scheme {
    /// An empty scheme.
    pub fn new() -> Self {
        Scheme::default()
    }

    /// Removes the kind serving `resource`; returns whether one was registered. Kinds can come
    /// and go while a server runs (custom resources).
    pub fn unregister(&mut self, resource: &GroupResource) -> bool {
        let Some(gk) = self.resources.remove(resource) else {
            return false;
        };
        self.kinds.remove(&gk);
        self.order.retain(|registered| registered != &gk);
        true
    }

    /// Registers a kind: its resource info and its converter.
    ///
    /// # Errors
    ///
    /// [`RegistrationError`] when the info is inconsistent ([`ResourceInfo::check`]) or the
    /// kind or resource is already registered.
    pub fn register(
        &mut self,
        info: ResourceInfo,
        converter: Arc<dyn Converter>,
    ) -> Result<(), RegistrationError> {
        info.check().map_err(RegistrationError)?;
        let gk = info.group_kind();
        let gr = info.group_resource();
        if self.kinds.contains_key(&gk) {
            return Err(RegistrationError(format!(
                "kind {gk} is already registered"
            )));
        }
        if self.resources.contains_key(&gr) {
            return Err(RegistrationError(format!(
                "resource {gr} is already registered"
            )));
        }
        if info.serves(converter.hub_version()) && info.versions.len() > 1 {
            return Err(RegistrationError(format!(
                "{gk}: a kind served at several versions needs a hub version that is not served"
            )));
        }
        self.resources.insert(gr, gk.clone());
        self.order.push(gk.clone());
        self.kinds.insert(
            gk,
            Entry {
                info: Arc::new(info),
                converter,
            },
        );
        Ok(())
    }

    /// Registers a typed `k8s_openapi` kind served and stored at its one version, with no
    /// conversion ([`TypedConverter`]). `info` is usually `ResourceInfo::for_type::<K>()` with
    /// short names and categories added.
    ///
    /// # Errors
    ///
    /// [`RegistrationError`] as [`Scheme::register`], or when `info` does not describe `K`
    /// at exactly `K`'s version.
    pub fn register_typed<K>(&mut self, info: ResourceInfo) -> Result<(), RegistrationError>
    where
        K: k8s_openapi::ListableResource + Serialize + DeserializeOwned + 'static,
        K::Scope: ScopeKind,
    {
        if info.group != K::GROUP
            || info.kind != K::KIND
            || info.versions != [K::VERSION]
            || info.namespaced != <K::Scope as ScopeKind>::NAMESPACED
        {
            return Err(RegistrationError(format!(
                "the info of {} does not match the type {}",
                info.group_kind(),
                std::any::type_name::<K>()
            )));
        }
        self.register(info, Arc::new(TypedConverter::<K>::new()))
    }

    /// The info of every registered resource, in registration order.
    pub fn resources(&self) -> impl Iterator<Item = &ResourceInfo> + '_ {
        self.order
            .iter()
            .filter_map(|gk| self.kinds.get(gk).map(|e| e.info.as_ref()))
    }

    /// The info of a kind (exact group and kind).
    pub fn info(&self, gk: &GroupKind) -> Option<&ResourceInfo> {
        self.kinds.get(gk).map(|e| e.info.as_ref())
    }

    /// The info of a resource (exact group and plural).
    pub fn info_for_resource(&self, gr: &GroupResource) -> Option<&ResourceInfo> {
        self.resources.get(gr).and_then(|gk| self.info(gk))
    }

    /// The hub version of a kind.
    pub fn hub_version(&self, gk: &GroupKind) -> Option<&str> {
        self.kinds.get(gk).map(|e| e.converter.hub_version())
    }

    /// Whether `gvk` is a kind served at that version.
    pub fn recognizes(&self, gvk: &GroupVersionKind) -> bool {
        self.info(&gvk.group_kind())
            .is_some_and(|info| info.serves(&gvk.version))
    }

    /// The OpenAPI v3 schema of a kind at a served version, when its converter has one.
    pub fn openapi_schema(&self, gvk: &GroupVersionKind) -> Option<Value> {
        let entry = self.kinds.get(&gvk.group_kind())?;
        if !entry.info.serves(&gvk.version) {
            return None;
        }
        entry.converter.openapi_schema(&gvk.version)
    }

    /// A [`RestMapper`] over the resources registered now.
    pub fn rest_mapper(&self) -> RestMapper {
        RestMapper::from_shared(
            self.order
                .iter()
                .filter_map(|gk| self.kinds.get(gk).map(|e| e.info.clone()))
                .collect(),
        )
    }

    fn entry(&self, gvk: &GroupVersionKind) -> Option<&Entry> {
        self.kinds.get(&gvk.group_kind())
    }

    /// The entry of a served kind, or 400 `no kind "X" is registered for version "g/v"`.
    fn served(&self, gvk: &GroupVersionKind) -> Result<&Entry, ApiError> {
        match self.entry(gvk) {
            Some(entry) if entry.info.serves(&gvk.version) => Ok(entry),
            _ => Err(not_registered(gvk)),
        }
    }

    /// Applies the defaults of `gvk`'s version to a document in that version.
    ///
    /// # Errors
    ///
    /// 400 BadRequest when the kind is not served at that version or the document does not
    /// fit its schema.
    pub fn default_object(
        &self,
        gvk: &GroupVersionKind,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        let entry = self.served(gvk)?;
        entry
            .converter
            .default(&gvk.version, object)
            .map_err(|e| cannot_handle(gvk, &e))
    }

    /// Decodes a request body sent to the endpoint of `expected` (the kind at the request's
    /// version): fills a missing `apiVersion`/`kind` from `expected`, checks them against it,
    /// applies the version's defaults and converts the result to the hub version.
    ///
    /// # Errors
    ///
    /// 400 BadRequest: the body is not a JSON object; its `apiVersion`/`kind` name no served
    /// kind (`no kind "X" is registered for version "g/v"`); they name another version or
    /// kind than the endpoint's (`the API version in the data (..) does not match the expected
    /// API version (..)`); or the body does not fit the version's schema
    /// (`X in version "v" cannot be handled as a X: ...`).
    pub fn decode(&self, expected: &GroupVersionKind, mut body: Value) -> Result<Value, ApiError> {
        let (actual, entry) = self.check_body_type(expected, &mut body)?;
        Self::default_to_hub(&actual, &entry, body)
    }

    /// [`Scheme::decode_to_storage`] into the stored Rust type `K`: the one typed decode of a
    /// request body. A body in the storage version of a kind whose defaulting is decoding
    /// into its type ([`Converter::defaults_by_decoding`]) is decoded directly, once.
    ///
    /// # Errors
    ///
    /// As [`Scheme::decode`]; a storage document that does not fit `K` is 400 in the same
    /// words (`X in version "v" cannot be handled as a X: ...`).
    pub fn decode_typed<K: DeserializeOwned>(
        &self,
        expected: &GroupVersionKind,
        mut body: Value,
    ) -> Result<K, ApiError> {
        let (actual, entry) = self.check_body_type(expected, &mut body)?;
        let typed = |document: Value| {
            serde_json::from_value(document)
                .map_err(|e| cannot_handle(&actual, &ConversionError::Decode(e.to_string())))
        };
        let storage = &entry.info.storage_version;
        if entry.converter.defaults_by_decoding()
            && actual.version == entry.converter.hub_version()
            && actual.version == *storage
        {
            return typed(body);
        }
        let hub = Self::default_to_hub(&actual, &entry, body)?;
        typed(self.convert_from_hub(hub, storage)?)
    }

    /// Fills a missing `apiVersion`/`kind` of a body sent to `expected` and checks them (see
    /// [`Scheme::decode`]): the body's kind and its registration.
    fn check_body_type(
        &self,
        expected: &GroupVersionKind,
        body: &mut Value,
    ) -> Result<(GroupVersionKind, Entry), ApiError> {
        let object = as_object(body)?;
        let mut actual = type_of(object)?;
        if actual.version.is_empty() && actual.group.is_empty() {
            actual.group.clone_from(&expected.group);
            actual.version.clone_from(&expected.version);
            object.insert("apiVersion".to_owned(), expected.api_version().into());
        }
        if actual.kind.is_empty() {
            actual.kind.clone_from(&expected.kind);
            object.insert("kind".to_owned(), expected.kind.clone().into());
        }
        let entry = self.served(&actual)?;
        if actual.group_version() != expected.group_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                actual.api_version(),
                expected.api_version()
            )));
        }
        if actual.kind != expected.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({})",
                actual.kind, expected.kind
            )));
        }
        let entry = entry.clone();
        Ok((actual, entry))
    }

    /// A checked body with the defaults of its version, converted to the hub version.
    fn default_to_hub(
        actual: &GroupVersionKind,
        entry: &Entry,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        entry
            .converter
            .default(&actual.version, &mut body)
            .map_err(|e| cannot_handle(actual, &e))?;
        if actual.version == entry.converter.hub_version() {
            return Ok(body);
        }
        entry
            .converter
            .convert_to_hub(&actual.version, body)
            .map_err(|e| cannot_handle(actual, &e))
    }

    /// [`Scheme::decode`], then conversion to the kind's storage version: what the Store
    /// writes.
    ///
    /// # Errors
    ///
    /// As [`Scheme::decode`]; 500 InternalError when the hub object cannot be expressed in
    /// the storage version.
    pub fn decode_to_storage(
        &self,
        expected: &GroupVersionKind,
        body: Value,
    ) -> Result<Value, ApiError> {
        let hub = self.decode(expected, body)?;
        let storage = self
            .entry(expected)
            .map(|e| e.info.storage_version.clone())
            .ok_or_else(|| not_registered(expected))?;
        self.convert_from_hub(hub, &storage)
    }

    /// Converts a document in any served version (its `apiVersion`) to the hub version.
    /// No defaulting.
    ///
    /// # Errors
    ///
    /// 400 BadRequest when the document names no served kind; 500 InternalError when it does
    /// not decode or convert (documents reaching this come from storage or the server).
    pub fn convert_to_hub(&self, mut document: Value) -> Result<Value, ApiError> {
        let gvk = type_of(as_object(&mut document)?)?;
        let entry = self.entry(&gvk).ok_or_else(|| not_registered(&gvk))?;
        let hub = entry.converter.hub_version();
        if gvk.version == hub {
            return Ok(document);
        }
        if !entry.info.serves(&gvk.version) {
            return Err(not_registered(&gvk));
        }
        entry
            .converter
            .convert_to_hub(&gvk.version, document)
            .map_err(|e| conversion_failed(&gvk, hub, &e))
    }

    /// Converts a hub document to a served `version` of its kind.
    ///
    /// # Errors
    ///
    /// 400 BadRequest when the document is not a hub document of a registered kind; 404
    /// NotFound when the kind is not served at `version`; 500 InternalError when conversion
    /// fails.
    pub fn convert_from_hub(&self, mut hub: Value, version: &str) -> Result<Value, ApiError> {
        let gvk = type_of(as_object(&mut hub)?)?;
        let entry = self.entry(&gvk).ok_or_else(|| not_registered(&gvk))?;
        if gvk.version != entry.converter.hub_version() {
            return Err(ApiError::bad_request(format!(
                "{gvk} is not the hub version of its kind"
            )));
        }
        if !entry.info.serves(version) {
            return Err(resource_not_found(&entry.info.group_resource()));
        }
        if version == gvk.version {
            return Ok(hub);
        }
        entry
            .converter
            .convert_from_hub(version, hub)
            .map_err(|e| conversion_failed(&gvk, version, &e))
    }

    /// Converts a document from its version (its `apiVersion`: a served version or the hub)
    /// to `version`, through the hub. A document already in `version` is returned as it is.
    /// This is the read path: storage version -> hub -> requested version.
    ///
    /// # Errors
    ///
    /// As [`Scheme::convert_to_hub`] and [`Scheme::convert_from_hub`].
    pub fn convert(&self, mut document: Value, version: &str) -> Result<Value, ApiError> {
        let gvk = type_of(as_object(&mut document)?)?;
        let entry = self.entry(&gvk).ok_or_else(|| not_registered(&gvk))?;
        if gvk.version == version {
            if entry.info.serves(version) || version == entry.converter.hub_version() {
                return Ok(document);
            }
            return Err(not_registered(&gvk));
        }
        let hub = self.convert_to_hub(document)?;
        if version == entry.converter.hub_version() {
            return Ok(hub);
        }
        self.convert_from_hub(hub, version)
    }

    /// Converts a list document (`items` in any served versions) to `version`: every item is
    /// converted (an item without `apiVersion`/`kind` is taken to be in the list's version
    /// and of kind `gk`) and the list's `apiVersion` and `kind` (`<Kind>List`) are set.
    ///
    /// # Errors
    ///
    /// 400 BadRequest when `gk` is not registered; 404 NotFound when it is not served at
    /// `version`; as [`Scheme::convert`] per item.
    pub fn convert_list(
        &self,
        gk: &GroupKind,
        mut list: Value,
        version: &str,
    ) -> Result<Value, ApiError> {
        let info = self
            .info(gk)
            .ok_or_else(|| ApiError::bad_request(format!("no kind {gk} is registered")))?;
        if !info.serves(version) {
            return Err(resource_not_found(&info.group_resource()));
        }
        let target_api_version = info.gvk(version).api_version();
        let list_kind = info.list_kind.clone();
        let kind = info.kind.clone();
        let object = as_object(&mut list)?;
        let list_api_version = match object.get("apiVersion") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => target_api_version.clone(),
        };
        if let Some(Value::Array(items)) = object.get_mut("items") {
            for item in items.iter_mut() {
                if let Some(map) = item.as_object_mut() {
                    map.entry("apiVersion")
                        .or_insert_with(|| list_api_version.clone().into());
                    map.entry("kind").or_insert_with(|| kind.clone().into());
                }
                *item = self.convert(item.take(), version)?;
            }
        }
        object.insert("apiVersion".to_owned(), target_api_version.into());
        object.insert("kind".to_owned(), list_kind.into());
        Ok(list)
    }
}
