//! Per-kind behaviour of the generic [`Store`](super::Store): Kubernetes'
//! `RESTCreateStrategy`, `RESTUpdateStrategy`, `RESTDeleteStrategy`,
//! `RESTGracefulDeleteStrategy`, `GarbageCollectionDeleteStrategy`, `TTLFunc` and table
//! conversion in one object-safe trait.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use serde_json::Value;

use apimachinery::object::Object;
use apimachinery::selector::{Fields, SelectorError, default_field_conversion};
use apimachinery::status::FieldError;

/// What the garbage collector does with dependents when a delete names no policy
/// (`rest.GarbageCollectionPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcPolicy {
    /// Dependents are deleted in the background (the default for most kinds).
    DeleteDependents,
    /// Dependents are orphaned: the `orphan` finalizer is added on delete.
    OrphanDependents,
    /// The kind takes no part in garbage collection: no GC finalizers are ever added.
    Unsupported,
}

/// One column of the `as=Table` rendering (`metav1.TableColumnDefinition`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableColumn {
    /// Column title (`Name`, `Age`, ...).
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    #[serde(rename = "type")]
    pub type_: String,
    /// OpenAPI format, such as `name` for the name column.
    pub format: String,
    /// What the column shows.
    pub description: String,
    /// 0 for columns always shown; higher for `-o wide` only.
    pub priority: i32,
}

impl TableColumn {
    /// A column with priority 0.
    pub fn new(name: &str, type_: &str, format: &str, description: &str) -> Self {
        TableColumn {
            name: name.to_owned(),
            type_: type_.to_owned(),
            format: format.to_owned(),
            description: description.to_owned(),
            priority: 0,
        }
    }

    /// This column with another priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

/// The `Name` column every table starts with.
pub fn name_column() -> TableColumn {
    TableColumn::new(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    )
}

/// The `Age` column (a human duration since `creationTimestamp`).
pub fn age_column() -> TableColumn {
    TableColumn::new(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
    )
}

/// The behaviour of one kind behind a [`Store`](super::Store).
///
/// Object-safe: stores hold an `Arc<dyn Strategy<K>>`. Every method but
/// [`Strategy::namespace_scoped`] has Kubernetes' default behaviour.
pub trait Strategy<K: Object>: Send + Sync {
    /// Whether objects live in namespaces (`/<resource>/<ns>/<name>`) or at cluster scope.
    fn namespace_scoped(&self) -> bool;

    /// Whether the store maintains `metadata.generation`: 1 on create, bumped when anything
    /// outside `metadata` and `status` changes. Kubernetes' built-in configmaps, secrets,
    /// events, leases and namespaces do not; custom resources do (the default).
    fn tracks_generation(&self) -> bool {
        true
    }

    /// Clears or defaults fields before validation on create (for example, resets `status`).
    fn prepare_for_create(&self, _object: &mut K) {}

    /// Clears or carries over fields before validation on update (for example, keeps the old
    /// `status` on main-resource writes and the old spec on status writes).
    fn prepare_for_update(&self, _new: &mut K, _old: &K) {}

    /// Kind-specific validation of a new object (names, metadata and fields); errors become a
    /// 422 Invalid with one cause each. Generic metadata validation runs afterwards.
    fn validate(&self, _object: &K) -> Vec<FieldError> {
        Vec::new()
    }

    /// Kind-specific validation of an update (immutable fields and the new object's fields).
    /// The generic metadata update rules run too.
    fn validate_update(&self, _new: &K, _old: &K) -> Vec<FieldError> {
        Vec::new()
    }

    /// Normalises a validated object before it is stored.
    fn canonicalize(&self, _object: &mut K) {}

    /// Whether an update of a missing object creates it (PUT as create).
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// Whether an update without `metadata.resourceVersion` overwrites whatever is stored.
    fn allow_unconditional_update(&self) -> bool {
        false
    }

    /// `RESTGracefulDeleteStrategy`: the grace period used when a delete names none, or
    /// `None` when the kind is deleted without grace (the default).
    fn default_grace_period_seconds(&self, _object: &K) -> Option<i64> {
        None
    }

    /// `CheckGracefulDelete`: fills in the grace period of `options` and says whether the
    /// delete is graceful. Only called when [`Strategy::default_grace_period_seconds`] is
    /// `Some`. By default the requested period (or the default) must be positive.
    fn check_graceful_delete(&self, object: &K, options: &mut DeleteOptions) -> bool {
        let Some(default) = self.default_grace_period_seconds(object) else {
            return false;
        };
        let period = *options.grace_period_seconds.get_or_insert(default);
        period > 0
    }

    /// The garbage-collection policy applied when a delete names none.
    fn default_gc_policy(&self) -> GcPolicy {
        GcPolicy::DeleteDependents
    }

    /// Finalizers the first delete of an object adds before anything else is decided, as
    /// CustomResourceDefinitions add `customresourcecleanup.apiextensions.k8s.io` in upstream's
    /// `customresourcedefinition.REST.Delete`: the object then stays, marked as being deleted,
    /// until whoever owns them removes them. None by default.
    fn finalizers_on_delete(&self, _object: &K) -> Vec<String> {
        Vec::new()
    }

    /// Called when a delete marks the object as being deleted (deletionTimestamp set, object
    /// kept for finalizers or grace); namespaces enter the `Terminating` phase here.
    fn on_deletion_marked(&self, _object: &mut K) {}

    /// A store-specific veto on `ShouldDeleteDuringUpdate`: whether an update that leaves an
    /// object being deleted without finalizers may delete it.
    fn should_delete_during_update(&self, _new: &K, _old: &K) -> bool {
        true
    }

    /// Finalizers the kind keeps outside `metadata.finalizers` and that a delete waits for, as
    /// namespaces keep `spec.finalizers` (upstream's namespace `REST.Delete`). `None`, the
    /// default, is the generic delete. `Some(pending)` makes deletion two-phase: the first
    /// delete of an object only marks it (deletionTimestamp now, [`Strategy::on_deletion_marked`],
    /// the garbage-collection finalizers the options ask for) and answers with it; later deletes
    /// answer with the object unchanged while `pending`, and run the generic delete once it is
    /// not. Kinds returning `Some` should also veto
    /// [`Strategy::should_delete_during_update`] while their finalizers are pending.
    fn spec_finalizers_pending(&self, _object: &K) -> Option<bool> {
        None
    }

    /// The TTL in seconds to write the object with (`TTLFunc`); `existing` is the current TTL
    /// (0: none) and `update` tells create from update. 0 writes without TTL.
    fn ttl_seconds(&self, _object: &K, existing: u64, _update: bool) -> u64 {
        existing
    }

    /// Checks (and may rename) one field selector term before a list, watch or
    /// deletecollection (upstream's per-kind field label conversion). The default accepts
    /// `metadata.name` and `metadata.namespace` and rejects anything else the way
    /// `DefaultMetaV1FieldSelectorConversion` does; kinds whose [`Strategy::selectable_fields`]
    /// add fields must accept those here too. The error becomes a 400 BadRequest.
    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        default_field_conversion(label, value)
    }

    /// The fields field selectors see (`GetAttrs`): by default `metadata.name` and, for
    /// namespaced kinds, `metadata.namespace`.
    fn selectable_fields(&self, object: &K) -> Fields {
        let meta = object.meta();
        let mut fields = Fields::new();
        fields.insert(
            "metadata.name".to_owned(),
            meta.name.clone().unwrap_or_default(),
        );
        if self.namespace_scoped() {
            fields.insert(
                "metadata.namespace".to_owned(),
                meta.namespace.clone().unwrap_or_default(),
            );
        }
        fields
    }

    /// The labels label selectors see (the object's labels).
    fn selectable_labels(&self, object: &K) -> BTreeMap<String, String> {
        object.meta().labels.clone().unwrap_or_default()
    }

    /// Column definitions of the `as=Table` rendering.
    fn table_columns(&self) -> Vec<TableColumn> {
        vec![name_column(), age_column()]
    }

    /// One table row: a cell per column of [`Strategy::table_columns`].
    fn table_cells(&self, object: &K) -> Vec<Value> {
        vec![
            Value::from(object.meta().name.clone().unwrap_or_default()),
            Value::from(age(object)),
        ]
    }
}

/// `translateTimestampSince(creationTimestamp)`: kubectl's human age (`<unknown>` if unset).
pub fn age<K: Object>(object: &K) -> String {
    match &object.meta().creation_timestamp {
        Some(time) => {
            let now = k8s_openapi::jiff::Timestamp::now().as_second();
            human_duration(now - time.0.as_second())
        }
        None => "<unknown>".to_owned(),
    }
}

/// Kubernetes' `duration.HumanDuration` over whole seconds (`45s`, `5m3s`, `3h`, `2d4h`, `3y`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Replaces `target`'s top-level `status` with `source`'s (removing it when `source` has none),
/// through JSON so it works for typed and dynamic objects. What main-resource strategies call
/// in `prepare_for_update` (`new` keeps `old`'s status).
pub fn copy_status<K: Object>(source: &K, target: &mut K) {
    replace_top_level(source, target, |key| key == "status");
}

/// Replaces everything of `target` outside `metadata` and `status` with `source`'s: what status
/// strategies call in `prepare_for_update` (`new` keeps `old`'s spec).
pub fn copy_spec<K: Object>(source: &K, target: &mut K) {
    replace_top_level(source, target, |key| {
        !matches!(key, "metadata" | "status" | "apiVersion" | "kind")
    });
}

fn replace_top_level<K: Object>(source: &K, target: &mut K, select: impl Fn(&str) -> bool) {
    let (Ok(Value::Object(source)), Ok(Value::Object(mut merged))) =
        (serde_json::to_value(source), serde_json::to_value(&*target))
    else {
        return;
    };
    merged.retain(|key, _| !select(key));
    for (key, value) in source {
        if select(&key) {
            merged.insert(key, value);
        }
    }
    if let Ok(object) = serde_json::from_value(Value::Object(merged)) {
        *target = object;
    }
}

/// Whether anything outside `metadata` and `status` differs (the generation rule).
pub fn spec_changed<K: Object>(new: &K, old: &K) -> bool {
    let strip = |object: &K| match serde_json::to_value(object) {
        Ok(Value::Object(mut map)) => {
            map.retain(|key, _| !matches!(key.as_str(), "metadata" | "status"));
            Some(map)
        }
        _ => None,
    };
    strip(new) != strip(old)
}

/// A strategy for kinds with a `status` subresource: writes to `/status` keep everything
/// outside `metadata` and `status` (the spec) from the stored object, and validate like the
/// main strategy.
pub struct StatusStrategy<S> {
    main: S,
}

impl<S> StatusStrategy<S> {
    /// The status strategy derived from a main-resource strategy.
    pub fn new(main: S) -> Self {
        StatusStrategy { main }
    }
}

impl<K: Object, S: Strategy<K>> Strategy<K> for StatusStrategy<S> {
    fn namespace_scoped(&self) -> bool {
        self.main.namespace_scoped()
    }

    fn tracks_generation(&self) -> bool {
        self.main.tracks_generation()
    }

    fn prepare_for_update(&self, new: &mut K, old: &K) {
        copy_spec(old, new);
    }

    fn validate(&self, object: &K) -> Vec<FieldError> {
        self.main.validate(object)
    }

    fn validate_update(&self, new: &K, old: &K) -> Vec<FieldError> {
        self.main.validate_update(new, old)
    }

    fn canonicalize(&self, object: &mut K) {
        self.main.canonicalize(object);
    }

    fn allow_unconditional_update(&self) -> bool {
        self.main.allow_unconditional_update()
    }

    fn should_delete_during_update(&self, new: &K, old: &K) -> bool {
        self.main.should_delete_during_update(new, old)
    }

    fn spec_finalizers_pending(&self, object: &K) -> Option<bool> {
        self.main.spec_finalizers_pending(object)
    }

    fn ttl_seconds(&self, object: &K, existing: u64, update: bool) -> u64 {
        self.main.ttl_seconds(object, existing, update)
    }

    fn selectable_fields(&self, object: &K) -> Fields {
        self.main.selectable_fields(object)
    }

    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        self.main.convert_field_label(label, value)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        self.main.table_columns()
    }

    fn table_cells(&self, object: &K) -> Vec<Value> {
        self.main.table_cells(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(303), "5m3s");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
        assert_eq!(human_duration(-5), "<invalid>");
    }
}
