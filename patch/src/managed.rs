//! `metadata.managedFields`: field ownership per manager, server-side apply, and the ownership
//! of ordinary writes.
//!
//! The model is structured-merge-diff's `merge.Updater` behind Kubernetes' field manager chain
//! (strip of system metadata, `before-first-apply`, timestamps):
//!
//! - An entry is identified by manager, operation and subresource, plus `apiVersion` for
//!   `Update` entries. Entries with no fields are dropped; entries are sorted as Kubernetes
//!   sorts them (operation, time, manager, apiVersion, subresource).
//! - `apiVersion`, `kind`, `metadata` itself and `metadata.{name, namespace, creationTimestamp,
//!   selfLink, uid, clusterName, generation, managedFields, resourceVersion}` are never owned.
//! - An ordinary write ([`update_managed_fields`]) gives its manager the fields it added or
//!   changed (added to what that manager already had), takes them from every other manager,
//!   and takes removed fields from everyone. It bumps the entry's time only if it took fields.
//!   Updates of an existing object without managed fields are not tracked (Kubernetes' skip
//!   of non-applied objects); `managedFields: []` or `[{}]` in the request clears them.
//! - An apply ([`server_side_apply`]) merges the configuration into the live object, gives the
//!   applier exactly the fields of its configuration, removes fields it applied last time and
//!   no longer applies (unless another applier owns them or something below them), and fails
//!   with 409 for each field another manager owns whose value it changes, unless `force`, which
//!   takes the field from that manager. An apply to an existing object without managed fields
//!   first records every existing field as owned by `before-first-apply` (operation Update).

use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{Map, Value};

use super::fieldpath::{self, FieldPath, FieldSet, PathElement, compare, set_from_value};
use super::schema::{ListKind, PatchSchema};
use apimachinery::status::ApiError;

/// The manager that owns the fields of objects first applied to without managed fields.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Who is writing, and when.
#[derive(Clone, Copy, Debug)]
pub struct ManagerInfo<'a> {
    /// The field manager (`fieldManager` query parameter, or derived from the user agent).
    pub manager: &'a str,
    /// The subresource written (`""` for the main resource, `"status"`, ...).
    pub subresource: &'a str,
    /// The time to record, RFC 3339 in whole seconds (see [`super::now_rfc3339`]).
    pub time: &'a str,
}

/// The operation of a managed fields entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One decoded `managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedEntry {
    /// The manager.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// The API version the fields are in.
    pub api_version: String,
    /// When the manager last changed the object (RFC 3339).
    pub time: Option<String>,
    /// The subresource, empty for the main resource.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn same_identity(&self, other: &ManagedEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// Kubernetes' manager identifier (the entry without time and fields, as JSON), which is
    /// also how conflicts are sorted.
    fn identifier(&self) -> String {
        let mut s = format!(
            "{{\"manager\":{},\"operation\":\"{}\"",
            Value::String(self.manager.clone()),
            self.operation.as_str()
        );
        if self.operation == Operation::Update && !self.api_version.is_empty() {
            let _ = write!(
                s,
                ",\"apiVersion\":{}",
                Value::String(self.api_version.clone())
            );
        }
        if !self.subresource.is_empty() {
            let _ = write!(
                s,
                ",\"subresource\":{}",
                Value::String(self.subresource.clone())
            );
        }
        s.push('}');
        s
    }

    /// How conflict messages name the manager: `"kubectl"`, `"x" with subresource "status"`,
    /// `"kubectl-client-side-apply" using v1`.
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            let _ = write!(s, " with subresource {:?}", self.subresource);
        }
        if self.operation == Operation::Update {
            let _ = write!(s, " using {}", self.api_version);
        }
        s
    }
}

/// Decodes `metadata.managedFields` of an object (absent or `null` is empty).
pub fn decode_managed_fields(object: &Value) -> Result<Vec<ManagedEntry>, String> {
    let Some(list) = object.pointer("/metadata/managedFields") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = list else {
        return if list.is_null() {
            Ok(Vec::new())
        } else {
            Err("managedFields must be a list".to_owned())
        };
    };
    let text = |entry: &Value, key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    items
        .iter()
        .map(|entry| {
            let operation = match entry.get("operation").and_then(Value::as_str) {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                other => return Err(format!("unknown operation {other:?}")),
            };
            match entry.get("fieldsType").and_then(Value::as_str) {
                None | Some("FieldsV1") => {}
                Some(other) => return Err(format!("unknown fieldsType {other:?}")),
            }
            let fields = match entry.get("fieldsV1") {
                None | Some(Value::Null) => FieldSet::new(),
                Some(v) => FieldSet::from_fields_v1(v)?,
            };
            Ok(ManagedEntry {
                manager: text(entry, "manager"),
                operation,
                api_version: text(entry, "apiVersion"),
                time: entry.get("time").and_then(Value::as_str).map(str::to_owned),
                subresource: text(entry, "subresource"),
                fields,
            })
        })
        .collect()
}

/// Encodes entries as `metadata.managedFields` JSON, dropping empty ones, in Kubernetes' order.
pub fn encode_managed_fields(entries: &[ManagedEntry]) -> Value {
    let mut entries: Vec<&ManagedEntry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    entries.sort_by(|a, b| {
        (
            a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(
        entries
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), Value::String(e.manager.clone()));
                m.insert(
                    "operation".into(),
                    Value::String(e.operation.as_str().into()),
                );
                m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
                if let Some(time) = &e.time {
                    m.insert("time".into(), Value::String(time.clone()));
                }
                m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
                m.insert("fieldsV1".into(), e.fields.to_fields_v1());
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), Value::String(e.subresource.clone()));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

const STRIPPED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// The object without the fields nobody owns.
fn strip(object: &Value) -> Value {
    let mut out = object.clone();
    if let Value::Object(map) = &mut out {
        map.remove("apiVersion");
        map.remove("kind");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for key in STRIPPED_METADATA {
                meta.remove(*key);
            }
        }
    }
    out
}

fn without_metadata_node(mut set: FieldSet) -> FieldSet {
    let metadata = FieldPath::fields(&["metadata"]);
    if set.contains(&metadata) {
        set = set.difference(&[metadata].into_iter().collect());
    }
    set
}

fn without_managed_fields(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.remove("managedFields");
    }
    out
}

fn set_managed_fields(object: &mut Value, entries: &[ManagedEntry]) {
    let encoded = encode_managed_fields(entries);
    let Value::Object(map) = object else {
        return;
    };
    let empty = encoded.as_array().is_some_and(Vec::is_empty);
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        if empty {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_owned(), encoded);
        }
    }
}

fn api_version(object: &Value) -> String {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn is_reset(object: &Value) -> bool {
    match object.pointer("/metadata/managedFields") {
        Some(Value::Array(items)) => {
            items.is_empty()
                || (items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    }
}

/// Records the ownership of an ordinary write (create, update, JSON/merge/strategic patch):
/// returns `new` with `metadata.managedFields` maintained for `info.manager` (operation
/// `Update`). `old` is the stored object (`None` on create).
///
/// The managed fields come from `new` when it carries valid ones (a client may send them back
/// as read), else from `old`.
pub fn update_managed_fields(
    old: Option<&Value>,
    new: &Value,
    info: &ManagerInfo<'_>,
    schema: &dyn PatchSchema,
) -> Value {
    let mut result = new.clone();
    if is_reset(new) {
        set_managed_fields(&mut result, &[]);
        return result;
    }
    let mut entries = match decode_managed_fields(new) {
        Ok(entries) if !entries.is_empty() => entries,
        _ => old
            .map(decode_managed_fields)
            .and_then(Result::ok)
            .unwrap_or_default(),
    };
    let existing = old.is_some_and(|o| {
        o.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .is_some_and(|uid| !uid.is_empty())
    });
    if entries.is_empty() && existing {
        // Kubernetes does not start tracking on updates of untracked objects.
        set_managed_fields(&mut result, &[]);
        return result;
    }
    let empty = Value::Object(Map::new());
    let before = strip(old.unwrap_or(&empty));
    let after = strip(new);
    let comparison = compare(&before, &after, schema);
    let taken = without_metadata_node(comparison.modified.union(&comparison.added));
    for entry in &mut entries {
        entry.fields = entry
            .fields
            .difference(&taken)
            .difference(&comparison.removed);
    }
    let operation_set = taken.difference(&comparison.removed);
    if !operation_set.is_empty() {
        let me = ManagedEntry {
            manager: info.manager.to_owned(),
            operation: Operation::Update,
            api_version: api_version(new),
            time: Some(info.time.to_owned()),
            subresource: info.subresource.to_owned(),
            fields: operation_set,
        };
        match entries.iter_mut().find(|e| e.same_identity(&me)) {
            Some(entry) => {
                entry.fields = entry.fields.union(&me.fields);
                entry.time = me.time;
            }
            None => entries.push(me),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    set_managed_fields(&mut result, &entries);
    result
}

/// Server-side apply: merges the configuration `applied` into `current` (`None` creates) for
/// `info.manager`, maintaining `metadata.managedFields`.
///
/// Errors: 400 when the configuration is not an object, carries `metadata.managedFields`, or
/// has a map list item without its key or a duplicate; 409 `Conflict` with one
/// `FieldManagerConflict` cause per field another manager owns and the configuration changes,
/// unless `force`; 500 when the live object's managed fields do not decode.
///
/// A no-op apply returns `current` unchanged (same timestamps).
pub fn server_side_apply(
    current: Option<&Value>,
    applied: &Value,
    info: &ManagerInfo<'_>,
    force: bool,
    schema: &dyn PatchSchema,
) -> Result<Value, ApiError> {
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the apply configuration must be an object",
        ));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let empty = Value::Object(Map::new());
    let live = current.unwrap_or(&empty);
    let mut entries = decode_managed_fields(live)
        .map_err(|e| ApiError::internal(format!("failed to decode managed fields: {e}")))?;
    let original_entries = entries.clone();
    let live = without_managed_fields(live);

    if entries.is_empty() && current.is_some() {
        let fields = without_metadata_node(compare(&empty, &strip(&live), schema).added);
        entries.push(ManagedEntry {
            manager: BEFORE_FIRST_APPLY.to_owned(),
            operation: Operation::Update,
            api_version: api_version(&live),
            time: Some(info.time.to_owned()),
            subresource: info.subresource.to_owned(),
            fields,
        });
    }

    let mut merged = merge_apply(&live, applied, &mut Vec::new(), schema)?;
    let new_set = set_from_value(&strip(applied), schema, true)
        .map(without_metadata_node)
        .map_err(|e| ApiError::bad_request(format!("failed to create typed patch object: {e}")))?;

    let me_template = ManagedEntry {
        manager: info.manager.to_owned(),
        operation: Operation::Apply,
        api_version: api_version(applied),
        time: Some(info.time.to_owned()),
        subresource: info.subresource.to_owned(),
        fields: new_set.clone(),
    };
    let mine = entries.iter().position(|e| e.same_identity(&me_template));
    let last_set = mine.map(|i| entries[i].fields.clone()).unwrap_or_default();

    // Prune what this applier applied last time and no longer applies.
    let mut protected = new_set.clone();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) != mine && entry.operation == Operation::Apply {
            protected = protected.union(&entry.fields);
        }
    }
    for path in last_set.difference(&new_set).iter() {
        if !protected.contains_at_or_below(path) {
            fieldpath::remove_path(&mut merged, &path.0, schema);
        }
    }

    let comparison = compare(&strip(&live), &strip(&merged), schema);
    let changed = without_metadata_node(comparison.modified.union(&comparison.added));
    let mut conflicts: Vec<(usize, FieldPath)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) == mine {
            continue;
        }
        for path in entry.fields.intersection(&changed).iter() {
            conflicts.push((i, path.clone()));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&entries, conflicts));
    }
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            entry.fields = entry
                .fields
                .difference(&changed)
                .difference(&comparison.removed);
        }
    }
    match mine {
        Some(i) => {
            let entry = &mut entries[i];
            let keep_time = comparison.is_empty()
                && entry.fields == new_set
                && entry.api_version == me_template.api_version;
            entry.fields = new_set;
            entry.api_version = me_template.api_version;
            if !keep_time {
                entry.time = me_template.time;
            }
        }
        None => entries.push(me_template),
    }
    entries.retain(|e| !e.fields.is_empty());

    if let Some(current) = current {
        if comparison.is_empty() && merged == live && entries == original_entries {
            return Ok(current.clone());
        }
    }
    set_managed_fields(&mut merged, &entries);
    Ok(merged)
}

fn conflict_error(entries: &[ManagedEntry], mut conflicts: Vec<(usize, FieldPath)>) -> ApiError {
    conflicts.sort_by(|(a, pa), (b, pb)| {
        (entries[*a].identifier(), pa).cmp(&(entries[*b].identifier(), pb))
    });
    let causes: Vec<StatusCause> = conflicts
        .iter()
        .map(|(i, path)| StatusCause {
            reason: Some("FieldManagerConflict".to_owned()),
            message: Some(format!("conflict with {}", entries[*i].printed())),
            field: Some(path.to_string()),
        })
        .collect();
    let message = if let [(i, path)] = conflicts.as_slice() {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {path}",
            entries[*i].printed()
        )
    } else {
        let mut lines: Vec<String> = Vec::new();
        let mut last: Option<usize> = None;
        for (i, path) in &conflicts {
            if last.is_none_or(|l| entries[l].identifier() != entries[*i].identifier()) {
                lines.push(format!("conflicts with {}:", entries[*i].printed()));
                last = Some(*i);
            }
            lines.push(format!("- {path}"));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError {
        code: 409,
        reason: "Conflict".to_owned(),
        message,
        details: Some(Box::new(StatusDetails {
            causes: Some(causes),
            ..StatusDetails::default()
        })),
        continue_token: None,
    }
}

fn list_kind(schema: &dyn PatchSchema, names: &[String]) -> ListKind {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    schema.list_kind(&names)
}

/// A configuration value as it lands in the object: `null` fields dropped.
fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// structured-merge-diff's `Merge` of a configuration into the live object: objects per field
/// (`null` removes), set and map lists per item (items shared by both follow the
/// configuration's order, live-only items keep their place), anything else replaced.
fn merge_apply(
    live: &Value,
    config: &Value,
    names: &mut Vec<String>,
    schema: &dyn PatchSchema,
) -> Result<Value, ApiError> {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (key, value) in c {
                if value.is_null() {
                    out.remove(key);
                    continue;
                }
                names.push(key.clone());
                let merged = match out.get(key) {
                    Some(existing) => merge_apply(existing, value, names, schema),
                    None => merge_apply(&Value::Null, value, names, schema),
                };
                names.pop();
                out.insert(key.clone(), merged?);
            }
            Ok(Value::Object(out))
        }
        (Value::Array(l), Value::Array(c)) => {
            let kind = list_kind(schema, names);
            if kind == ListKind::Atomic {
                return Ok(normalize(config));
            }
            let bad = |e: String| {
                let path = FieldPath(
                    names
                        .iter()
                        .map(|n| PathElement::Field(n.clone()))
                        .collect(),
                );
                ApiError::bad_request(format!("failed to create typed patch object: {path}: {e}"))
            };
            let config_items = fieldpath::list_items(c, kind, true).map_err(bad)?;
            let live_items = fieldpath::list_items(l, kind, false).unwrap_or_default();
            let in_config = |e: &PathElement| config_items.iter().any(|(ce, _)| ce == e);
            let live_of =
                |e: &PathElement| live_items.iter().find(|(le, _)| le == e).map(|(_, v)| *v);
            let mut out = Vec::new();
            let mut next = 0;
            let emit = |next: &mut usize,
                        out: &mut Vec<Value>,
                        names: &mut Vec<String>|
             -> Result<bool, ApiError> {
                let (element, item) = &config_items[*next];
                *next += 1;
                let shared = live_of(element);
                out.push(match shared {
                    Some(l) => merge_apply(l, item, names, schema)?,
                    None => normalize(item),
                });
                Ok(shared.is_some())
            };
            for (element, item) in &live_items {
                if in_config(element) {
                    while next < config_items.len() {
                        if emit(&mut next, &mut out, names)? {
                            break;
                        }
                    }
                } else {
                    out.push((*item).clone());
                }
            }
            while next < config_items.len() {
                emit(&mut next, &mut out, names)?;
            }
            Ok(Value::Array(out))
        }
        (_, Value::Object(_)) => merge_apply(&Value::Object(Map::new()), config, names, schema),
        (_, Value::Array(_)) if list_kind(schema, names) != ListKind::Atomic => {
            merge_apply(&Value::Array(Vec::new()), config, names, schema)
        }
        _ => Ok(normalize(config)),
    }
}

/// Sets `object`'s `metadata.managedFields` to those of the document `tracked` (the result
/// of [`update_managed_fields`] on the object's own document), so a typed object gets its
/// ownership without decoding the whole document again.
///
/// # Errors
///
/// 500 when the entries do not decode as `ManagedFieldsEntry`s.
pub fn adopt_managed_fields<K: apimachinery::Object>(
    object: &mut K,
    tracked: &Value,
) -> Result<(), ApiError> {
    object.meta_mut().managed_fields = match tracked.pointer("/metadata/managedFields") {
        Some(Value::Array(items)) if !items.is_empty() => Some(
            serde_json::from_value(Value::Array(items.clone()))
                .map_err(|e| ApiError::internal(format!("encoding managed fields: {e}")))?,
        ),
        _ => None,
    };
    Ok(())
}
