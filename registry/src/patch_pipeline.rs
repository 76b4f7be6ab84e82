//! PATCH through the [`Store`]: Kubernetes' `patchResource` over the update pipeline.
//!
//! [`Store::patch`] (of the main resource or `status`) reads the stored object, applies the
//! patch with the `patch` crate's engine, and writes the result through the same pipeline as
//! [`Store::update`]: resourceVersion rules, strategy preparation and validation (422),
//! admission, `ShouldDeleteDuringUpdate`, no-op detection, dry run. The patch runs inside the
//! storage's compare-and-swap loop, so a patch that loses a race with another write is applied
//! again to the fresh object (both changes survive) instead of failing with 409.
//!
//! What a patch request gets, in order:
//!
//! 1. 415 `UnsupportedMediaType` for a strategic merge patch on a kind whose patch schema
//!    does not support it (custom kinds such as `Widget`), whether or not the object exists.
//! 2. `PatchOptions` validation ([`validate_patch_options`]): apply needs a field manager,
//!    `force` is for apply only, the manager is at most 128 printable bytes (422 `Invalid` on
//!    `PatchOptions`).
//! 3. Apply bodies: YAML or JSON (400 `error decoding YAML: ...`), whose `apiVersion` must be
//!    the version of the [`VersionView`] (400 `Incorrect version specified in apply patch.
//!    Specified patch version: X, expected: Y`, as Kubernetes) and whose `kind` must be the
//!    kind (400 `the kind in the data (X) does not match the expected kind (Y)`).
//!    `metadata.managedFields` in the body is 400.
//! 4. Missing object: server-side apply creates it (201; `Updated::created`), even for kinds
//!    that do not allow create-on-update, except through `status` (404, as Kubernetes' status
//!    REST never creates); every other patch type is 404 `NotFound`.
//! 5. The patch: JSON patch (400 undecodable, 413 over 10000 operations, 422 when an operation
//!    fails), merge patch (400 undecodable, 422 when the result is not an object), strategic
//!    merge patch (400 malformed directives), server-side apply (409 `Conflict` with
//!    `FieldManagerConflict` causes unless `force`). A result that does not decode as the kind
//!    is 422 `Invalid` on the field `patch` (Kubernetes' wording for undecodable patch
//!    results), or what the view's decoding answers.
//! 6. The name of the patched object must be the name on the URL (400 `the name of the object
//!    (X) does not match the name on the URL (Y)`), and its namespace, when set, the
//!    request's (400). An apply body without a name gets the URL's.
//!
//! # Field ownership (`metadata.managedFields`)
//!
//! Server-side apply records the applier's fields ([`server_side_apply`]); JSON, merge and
//! strategic merge patches with a field manager record the fields they add or change
//! ([`update_managed_fields`]). Fields the strategy resets are not owned: on the main resource
//! of a store with a `status` subresource, `status` is dropped from an apply configuration and
//! restored to the stored value in other patches before ownership is computed; through `status`,
//! everything but `apiVersion`, `kind`, `metadata` and `status` is. So an applier of the main
//! resource never owns `status`, and status writers never own the spec. [`Store::create`],
//! [`Store::update`] and [`Store::update_with`] record ownership the same way, through this
//! module's one tracker, when their options name a field manager.
//!
//! # Versions
//!
//! Patches apply to the object as a [`VersionView`] shows it (see [`crate::view`]): by
//! default the stored type's own JSON; with a [`SchemeView`](crate::SchemeView), the
//! versioned object of the request, as Kubernetes patches it.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{AdmissionFn, Store, Strategy, UpdateOptions, Updated};
use crate::view::VersionView;
use apimachinery::object::Object;
use apimachinery::status::ApiError;
use patch::{
    ManagerInfo, PatchType, adopt_managed_fields, apply_patch, decode_apply_patch, now_rfc3339,
    server_side_apply, update_managed_fields, validate_field_manager, validate_patch_options,
};

/// Options of [`Store::patch`] (Kubernetes' `PatchOptions` plus admission).
// The derive asks `K: Clone`, which every stored kind (`Object`) is.
#[derive(Clone)]
pub struct PatchOptions<K> {
    /// The field manager (`fieldManager`). Required for apply; for other patch types, when
    /// set, `managedFields` records the fields the patch adds or changes (callers derive it
    /// from the user agent with [`manager_or_user_agent`](patch::manager_or_user_agent)
    /// as Kubernetes does); `None` leaves managed fields untouched.
    pub field_manager: Option<String>,
    /// `force` of apply patches: take the fields other managers own instead of failing with
    /// 409. Forbidden (422) for other patch types, even when `false`.
    pub force: Option<bool>,
    /// Validate fully but persist nothing (`dryRun=All`).
    pub dry_run: bool,
    /// Admission validation when an apply creates the object.
    pub create_validation: Option<AdmissionFn<K>>,
    /// Admission validation of the patched object (new object, old object).
    pub update_validation: Option<AdmissionFn<K>>,
    /// The version the patch is written in; `None`: the stored type's own JSON.
    pub view: Option<Arc<dyn VersionView<K>>>,
}

impl<K> Default for PatchOptions<K> {
    fn default() -> Self {
        PatchOptions {
            field_manager: None,
            force: None,
            dry_run: false,
            create_validation: None,
            update_validation: None,
            view: None,
        }
    }
}

impl<K> PatchOptions<K> {
    /// Options with this field manager.
    pub fn with_manager(manager: impl Into<String>) -> Self {
        PatchOptions {
            field_manager: Some(manager.into()),
            ..PatchOptions::default()
        }
    }
}

/// `ValidateFieldManager` for create and update options: 422 Invalid on `options_kind`.
pub(crate) fn check_field_manager(options_kind: &str, manager: &str) -> Result<(), ApiError> {
    let errors = validate_field_manager(manager);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(options_kind, "meta.k8s.io", "", &errors))
    }
}

/// Top-level fields a status write may change; everything else is reset from the stored object.
fn status_writable(key: &str) -> bool {
    matches!(key, "apiVersion" | "kind" | "metadata" | "status")
}

/// A PATCH request's body and how to read it.
#[derive(Clone, Copy, Debug)]
pub struct PatchBody<'a> {
    /// The patch type (from the request's `Content-Type`).
    pub patch_type: PatchType,
    /// The patch as sent.
    pub body: &'a [u8],
}

impl<'a> PatchBody<'a> {
    /// A patch of `patch_type`.
    pub fn new(patch_type: PatchType, body: &'a [u8]) -> Self {
        PatchBody { patch_type, body }
    }
}

impl<K: Object> Store<K> {
    /// Patches the object `name` in `namespace` (`""` for cluster-scoped kinds), or its
    /// `status` when `subresource` is `"status"` (through the status strategy, 405 when the
    /// kind has none; only `status` and metadata change, and apply never creates), with
    /// `body`, a patch of `patch_type` (from the request's `Content-Type`, see
    /// [`PatchType::from_content_type`]). Returns the object as stored (in the stored type;
    /// convert it for the response) and whether the patch created it (server-side apply on a
    /// missing object: 201). Other subresources are 405.
    ///
    /// See the [module docs](self) for the steps and every error.
    #[tracing::instrument(level = "debug", skip(self, patch, options), fields(resource = %self.resource))]
    pub async fn patch(
        &self,
        namespace: &str,
        name: &str,
        subresource: &str,
        patch: PatchBody<'_>,
        options: &PatchOptions<K>,
    ) -> Result<Updated<K>, ApiError> {
        let strategy = match subresource {
            "" => self.strategy.clone(),
            "status" => self
                .status_strategy
                .clone()
                .ok_or_else(|| ApiError::method_not_supported(&self.resource, "patch status"))?,
            other => {
                return Err(ApiError::method_not_supported(
                    &self.resource,
                    &format!("patch {other}"),
                ));
            }
        };
        self.patch_through(strategy, subresource, namespace, name, patch, options)
            .await
    }

    /// The PATCH pipeline of the main resource or a subresource, through `strategy`.
    async fn patch_through(
        &self,
        strategy: Arc<dyn Strategy<K>>,
        subresource: &str,
        namespace: &str,
        name: &str,
        patch: PatchBody<'_>,
        options: &PatchOptions<K>,
    ) -> Result<Updated<K>, ApiError> {
        let PatchBody { patch_type, body } = patch;
        if patch_type == PatchType::StrategicMerge && !self.patch_schema.supports_strategic_merge()
        {
            // The same 415 (listing the accepted types) as for an unknown content type; the
            // content type is checked before the options, as in Kubernetes.
            PatchType::from_content_type(patch_type.content_type(), false)?;
        }
        validate_patch_options(patch_type, options.field_manager.as_deref(), options.force)?;
        let view = self.view_or_stored(options.view.as_ref());
        let apply = patch_type == PatchType::Apply;
        let config = if apply {
            let mut config = decode_apply_patch(body)?;
            check_apply_type(&config, view.as_ref())?;
            self.drop_reset_fields(subresource, &mut config);
            Some(config)
        } else {
            None
        };
        let time = now_rfc3339();
        let manager = options.field_manager.clone().unwrap_or_default();
        let force = options.force.unwrap_or(false);
        let schema = self.patch_schema.clone();
        let update_options = UpdateOptions {
            dry_run: options.dry_run,
            force_allow_create: apply && subresource.is_empty(),
            preconditions: None,
            create_validation: options.create_validation.clone(),
            update_validation: options.update_validation.clone(),
            field_manager: None,
            view: None,
        };
        let update = |current: Option<&K>| -> Result<K, ApiError> {
            let current = current.map(|c| view.encode(c)).transpose()?;
            let mut result = match (&config, current) {
                (Some(config), current) => {
                    let info = ManagerInfo {
                        manager: &manager,
                        subresource,
                        time: &time,
                    };
                    server_side_apply(current.as_ref(), config, &info, force, schema.as_ref())?
                }
                (None, Some(current)) => {
                    let mut patched = apply_patch(&current, body, patch_type, schema.as_ref())?;
                    self.restore_reset_fields(subresource, &mut patched, Some(&current));
                    check_name(&mut patched, namespace, name)?;
                    let object = view.decode(patched)?;
                    if manager.is_empty() {
                        return Ok(object);
                    }
                    return self.track_update(
                        Some(&current),
                        object,
                        &manager,
                        subresource,
                        view.as_ref(),
                    );
                }
                (None, None) => return Err(ApiError::not_found(&self.resource, name)),
            };
            check_name(&mut result, namespace, name)?;
            view.decode(result)
        };
        self.update_pipeline(
            strategy,
            subresource,
            namespace,
            name,
            update,
            &update_options,
        )
        .await
    }

    /// Removes from an apply configuration the fields the strategy resets, so the applier
    /// neither sets nor owns them.
    fn drop_reset_fields(&self, subresource: &str, config: &mut Value) {
        let Some(map) = config.as_object_mut() else {
            return;
        };
        match subresource {
            "" if self.has_status() => {
                map.remove("status");
            }
            "status" => map.retain(|key, _| status_writable(key)),
            _ => {}
        }
    }

    /// Puts back into `new` the stored values of the fields the strategy resets (what the
    /// strategy will do anyway), so ownership is computed on what is written.
    fn restore_reset_fields(&self, subresource: &str, new: &mut Value, old: Option<&Value>) {
        let Some(map) = new.as_object_mut() else {
            return;
        };
        let empty = Map::new();
        let old = old.and_then(Value::as_object).unwrap_or(&empty);
        let reset = |key: &str| match subresource {
            "" => self.has_status() && key == "status",
            "status" => !status_writable(key),
            _ => false,
        };
        map.retain(|key, _| !reset(key));
        for (key, value) in old {
            if reset(key) {
                map.insert(key.clone(), value.clone());
            }
        }
    }

    /// The one tracker of ordinary writes (create, update, non-apply patches): records
    /// `manager`'s write of `new` in its `metadata.managedFields` (operation `Update`). `old`
    /// is the stored object as a document of `view` (`None` on create). Ownership is computed
    /// on `new` as `view` shows it, which is what the kind keeps (fields a decode dropped are
    /// nobody's, or a later apply of them would conflict with a phantom), ignoring the
    /// fields the strategy of `subresource` resets.
    pub(crate) fn track_update(
        &self,
        old: Option<&Value>,
        new: K,
        manager: &str,
        subresource: &str,
        view: &dyn VersionView<K>,
    ) -> Result<K, ApiError> {
        let mut kept = view.encode(&new)?;
        self.restore_reset_fields(subresource, &mut kept, old);
        let info = ManagerInfo {
            manager,
            subresource,
            time: &now_rfc3339(),
        };
        let tracked = update_managed_fields(old, &kept, &info, self.patch_schema.as_ref());
        let mut new = new;
        adopt_managed_fields(&mut new, &tracked)?;
        Ok(new)
    }
}

/// The apply configuration must name the view's `apiVersion` and kind (400).
fn check_apply_type<K>(config: &Value, view: &dyn VersionView<K>) -> Result<(), ApiError> {
    let field = |name: &str| config.get(name).and_then(Value::as_str).unwrap_or_default();
    let expected = view.api_version();
    if !expected.is_empty() && field("apiVersion") != expected {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {}, expected: {expected}",
            field("apiVersion")
        )));
    }
    let expected = view.kind();
    if !expected.is_empty() && field("kind") != expected {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({}) does not match the expected kind ({expected})",
            field("kind")
        )));
    }
    Ok(())
}

/// Kubernetes' `checkName` on a patched document: the name must be the URL's (an absent name,
/// as in an apply body that creates, becomes the URL's); a namespace, when set, the request's.
fn check_name(document: &mut Value, namespace: &str, name: &str) -> Result<(), ApiError> {
    let Some(object) = document.as_object_mut() else {
        return Ok(());
    };
    let meta = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    let Some(meta) = meta.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the name of the object was undeterminable: metadata is not an object",
        ));
    };
    let actual = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if actual.is_empty() {
        meta.insert("name".to_owned(), Value::from(name));
    } else if actual != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({actual}) does not match the name on the URL ({name})"
        )));
    }
    let actual = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !namespace.is_empty() && !actual.is_empty() && actual != namespace {
        return Err(ApiError::bad_request(format!(
            "the namespace of the object ({actual}) does not match the namespace on the URL ({namespace})"
        )));
    }
    Ok(())
}
