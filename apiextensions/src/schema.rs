//! Structural schemas: a CRD version's `openAPIV3Schema`, and what the server does with it to
//! every custom object: validation (with upstream's messages), pruning of unknown fields and
//! defaulting.
//!
//! The rules follow upstream's `apiextensions-apiserver/pkg/apiserver/schema` (structural
//! schemas, `pruning/algorithm.go`, `defaulting/algorithm.go`) and the error messages of
//! `apiextensions-apiserver/pkg/apiserver/validation/validation.go` over kube-openapi's
//! validator (`<path> in body must be of type integer: "string"`, ...).

use std::collections::HashMap;
use std::sync::Arc;

use apimachinery::status::{FieldError, FieldErrorType};
use regex::Regex;
use serde_json::{Map, Value};

use crate::Unstructured;
use crate::cel::{Rules, root_self, rule_errors};

/// The fields every object has at its root whatever its schema says: never pruned, never
/// validated by the schema (metadata is validated as `ObjectMeta`).
const ROOT_TYPE_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// One version's structural schema, with its `pattern`s compiled once.
#[derive(Clone, Debug)]
pub struct StructuralSchema {
    /// Shared, never changed: the compiled CEL rules are keyed by node addresses inside it.
    root: Arc<Value>,
    patterns: HashMap<String, Regex>,
    rules: Arc<Rules>,
}

impl StructuralSchema {
    /// The schema `root` (an `openAPIV3Schema` as JSON). Patterns that do not compile are left
    /// out; [`structural_errors`] rejects such a schema when its CRD is written.
    pub fn new(root: Value) -> Self {
        let mut patterns = HashMap::new();
        collect_patterns(&root, &mut patterns);
        let root = Arc::new(root);
        let rules = Arc::new(Rules::compile(&root));
        StructuralSchema {
            root,
            patterns,
            rules,
        }
    }

    /// Whether any node of the schema has a `default`.
    pub fn has_defaults(&self) -> bool {
        fn any_default(schema: &Value) -> bool {
            let Value::Object(map) = schema else {
                return false;
            };
            map.contains_key("default") || children(map).any(any_default)
        }
        any_default(&self.root)
    }

    /// Applies the defaults to an object's top-level fields other than `apiVersion`, `kind`
    /// and `metadata`, as [`StructuralSchema::apply_defaults`] does to a whole document.
    pub fn apply_defaults_to_content(&self, content: &mut Map<String, Value>) {
        let mut document = Value::Object(std::mem::take(content));
        default_value(&self.root, &mut document);
        if let Value::Object(map) = document {
            *content = map;
        }
    }

    /// Whether the schema has CEL rules (`x-kubernetes-validations`).
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Evaluates the CEL rules against `object`; `old` is the stored object on
    /// updates (for transition rules). Root rules see only `name` and `generateName` of the
    /// metadata, as upstream.
    pub fn validate_rules(
        &self,
        object: &Unstructured,
        old: Option<&Unstructured>,
    ) -> Vec<FieldError> {
        let current = root_self(object);
        let old = old.map(root_self);
        self.rules.validate(&self.root, &current, old.as_ref())
    }

    /// The schema as JSON.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Whether the root keeps unknown fields (`x-kubernetes-preserve-unknown-fields: true`).
    pub fn preserves_unknown_fields(&self) -> bool {
        flag(&self.root, "x-kubernetes-preserve-unknown-fields")
    }

    /// Validates an object's top-level fields other than `apiVersion`, `kind` and `metadata`
    /// (`content`) against the schema. Errors name paths like `spec.replicas`.
    pub fn validate_content(&self, content: &Map<String, Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let validator = Validator {
            patterns: &self.patterns,
        };
        validator.object(&self.root, content, "", &mut errors);
        errors
    }

    /// Removes the fields the schema does not know from a whole object document, and returns
    /// their paths (`spec.foo`), in document order.
    pub fn prune(&self, document: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        if let Value::Object(map) = document {
            prune_object(&self.root, map, "", true, &mut pruned);
        }
        pruned
    }

    /// Applies the schema's `default`s to a whole object document, top-down, as upstream's
    /// defaulting: an absent field (or a `null` one that is not `nullable`) with a default
    /// gets it.
    pub fn apply_defaults(&self, document: &mut Value) {
        default_value(&self.root, document);
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn collect_patterns(schema: &Value, out: &mut HashMap<String, Regex>) {
    let Value::Object(map) = schema else { return };
    if let Some(pattern) = map.get("pattern").and_then(Value::as_str) {
        if let Ok(regex) = Regex::new(pattern) {
            out.insert(pattern.to_owned(), regex);
        }
    }
    for child in children(map) {
        collect_patterns(child, out);
    }
}

/// The sub-schemas of a schema node: properties, additionalProperties, items and the logical
/// junctors.
fn children(map: &Map<String, Value>) -> impl Iterator<Item = &Value> {
    let properties = map
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.values());
    let single = ["additionalProperties", "items", "not"]
        .into_iter()
        .filter_map(|key| map.get(key).filter(|v| v.is_object()));
    let lists = ["allOf", "anyOf", "oneOf"]
        .into_iter()
        .filter_map(|key| map.get(key).and_then(Value::as_array))
        .flatten();
    properties.chain(single).chain(lists)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The JSON type name of a value, as kube-openapi reports it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

/// A number as Go's `%v` prints it (integers without a fraction).
fn number_text(value: &Value) -> String {
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f}"),
        None => value.to_string(),
    }
}

fn type_invalid(path: &str, actual: &str, message: String) -> FieldError {
    FieldError {
        kind: FieldErrorType::TypeInvalid,
        field: path.to_owned(),
        value: Some(Value::from(actual)),
        detail: message,
    }
}

fn too_many(path: &str, actual: usize, max: u64) -> FieldError {
    FieldError {
        kind: FieldErrorType::TooMany,
        field: path.to_owned(),
        value: Some(Value::from(actual)),
        detail: format!("must have at most {max} items"),
    }
}

struct Validator<'a> {
    patterns: &'a HashMap<String, Regex>,
}

impl Validator<'_> {
    fn value(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let Value::Object(rules) = schema else { return };
        if value.is_null() {
            if flag(schema, "nullable") {
                return;
            }
            if let Some(expected) = rules.get("type").and_then(Value::as_str) {
                errors.push(type_invalid(
                    path,
                    "null",
                    format!("{path} in body must be of type {expected}: \"null\""),
                ));
            }
            return;
        }
        if flag(schema, "x-kubernetes-int-or-string") {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                let actual = type_name(value);
                errors.push(type_invalid(
                    path,
                    actual,
                    format!("{path} in body must be of type integer,string: \"{actual}\""),
                ));
                return;
            }
        } else if let Some(expected) = rules.get("type").and_then(Value::as_str) {
            if !type_matches(expected, value) {
                let actual = type_name(value);
                errors.push(type_invalid(
                    path,
                    actual,
                    format!("{path} in body must be of type {expected}: \"{actual}\""),
                ));
                return;
            }
        }
        if let Some(allowed) = rules.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                let texts: Vec<String> = allowed
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect();
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                errors.push(FieldError::not_supported(path, value.clone(), &texts));
            }
        }
        match value {
            Value::String(text) => self.string(rules, text, path, errors),
            Value::Number(_) => number(rules, value, path, errors),
            Value::Array(items) => self.array(rules, items, path, errors),
            Value::Object(map) => {
                if flag(schema, "x-kubernetes-embedded-resource") {
                    embedded_resource(map, path, errors);
                }
                self.object(schema, map, path, errors);
            }
            _ => {}
        }
        self.junctors(rules, value, path, errors);
    }

    fn string(
        &self,
        rules: &Map<String, Value>,
        text: &str,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let length = text.chars().count() as u64;
        if let Some(max) = rules.get("maxLength").and_then(Value::as_u64) {
            if length > max {
                errors.push(FieldError {
                    kind: FieldErrorType::TooLong,
                    field: path.to_owned(),
                    value: None,
                    detail: format!("may not be more than {max} bytes"),
                });
            }
        }
        if let Some(min) = rules.get("minLength").and_then(Value::as_u64) {
            if length < min {
                errors.push(FieldError::invalid(
                    path,
                    text,
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
        }
        if let Some(pattern) = rules.get("pattern").and_then(Value::as_str) {
            if let Some(regex) = self.patterns.get(pattern) {
                if !regex.is_match(text) {
                    errors.push(FieldError::invalid(
                        path,
                        text,
                        format!("{path} in body should match '{pattern}'"),
                    ));
                }
            }
        }
        if let Some(format) = rules.get("format").and_then(Value::as_str) {
            if !format_matches(format, text) {
                errors.push(FieldError::invalid(
                    path,
                    text,
                    format!("{path} in body must be of type {format}: \"{text}\""),
                ));
            }
        }
    }

    fn array(
        &self,
        rules: &Map<String, Value>,
        items: &[Value],
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some(max) = rules.get("maxItems").and_then(Value::as_u64) {
            if items.len() as u64 > max {
                errors.push(too_many(path, items.len(), max));
            }
        }
        if let Some(min) = rules.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                errors.push(FieldError::invalid(
                    path,
                    items.len(),
                    format!("{path} in body should have at least {min} items"),
                ));
            }
        }
        if let Some(item_schema) = rules.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.value(item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
        list_type(rules, items, path, errors);
    }

    /// An object's own rules; `map` is its fields (for the root, its content).
    fn object(
        &self,
        schema: &Value,
        map: &Map<String, Value>,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let Value::Object(rules) = schema else { return };
        if let Some(required) = rules.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                let at_root_type = path.is_empty() && ROOT_TYPE_FIELDS.contains(&name);
                if !at_root_type && !map.contains_key(name) {
                    errors.push(FieldError::required(join(path, name), ""));
                }
            }
        }
        if let Some(max) = rules.get("maxProperties").and_then(Value::as_u64) {
            if map.len() as u64 > max {
                errors.push(too_many(path, map.len(), max));
            }
        }
        if let Some(min) = rules.get("minProperties").and_then(Value::as_u64) {
            if (map.len() as u64) < min {
                errors.push(FieldError::invalid(
                    path,
                    map.len(),
                    format!("{path} in body should have at least {min} properties"),
                ));
            }
        }
        let properties = rules.get("properties").and_then(Value::as_object);
        let additional = rules.get("additionalProperties").filter(|v| v.is_object());
        for (key, value) in map {
            if path.is_empty() && ROOT_TYPE_FIELDS.contains(&key.as_str()) {
                continue;
            }
            let child = properties.and_then(|p| p.get(key)).or(additional);
            if let Some(child) = child {
                self.value(child, value, &join(path, key), errors);
            }
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`: value validations only, as structural schemas
    /// allow there.
    fn junctors(
        &self,
        rules: &Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let passes = |schema: &Value| {
            let mut inner = Vec::new();
            self.value(schema, value, path, &mut inner);
            inner.is_empty()
        };
        if let Some(all) = rules.get("allOf").and_then(Value::as_array) {
            for schema in all {
                self.value(schema, value, path, errors);
            }
        }
        if let Some(any) = rules.get("anyOf").and_then(Value::as_array) {
            if !any.iter().any(passes) {
                errors.push(FieldError::invalid(
                    path,
                    value.clone(),
                    format!("{path} in body must validate at least one schema (anyOf)"),
                ));
            }
        }
        if let Some(one) = rules.get("oneOf").and_then(Value::as_array) {
            if one.iter().filter(|s| passes(s)).count() != 1 {
                errors.push(FieldError::invalid(
                    path,
                    value.clone(),
                    format!("{path} in body must validate one and only one schema (oneOf)"),
                ));
            }
        }
        if let Some(not) = rules.get("not") {
            if passes(not) {
                errors.push(FieldError::invalid(
                    path,
                    value.clone(),
                    format!("{path} in body must not validate the schema (not)"),
                ));
            }
        }
    }
}

fn number(rules: &Map<String, Value>, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(n) = value.as_f64() else { return };
    if let Some(min) = rules.get("minimum") {
        let exclusive = rules
            .get("exclusiveMinimum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let bound = min.as_f64().unwrap_or(f64::MIN);
        if n < bound || (exclusive && n == bound) {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body should be {relation} {}", number_text(min)),
            ));
        }
    }
    if let Some(max) = rules.get("maximum") {
        let exclusive = rules
            .get("exclusiveMaximum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let bound = max.as_f64().unwrap_or(f64::MAX);
        if n > bound || (exclusive && n == bound) {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body should be {relation} {}", number_text(max)),
            ));
        }
    }
    if let Some(factor) = rules.get("multipleOf") {
        if let Some(f) = factor.as_f64().filter(|f| *f > 0.0) {
            let quotient = n / f;
            if (quotient - quotient.round()).abs() > 1e-9 {
                errors.push(FieldError::invalid(
                    path,
                    value.clone(),
                    format!(
                        "{path} in body should be a multiple of {}",
                        number_text(factor)
                    ),
                ));
            }
        }
    }
    if let Some(format) = rules.get("format").and_then(Value::as_str) {
        let fits = match format {
            "int32" => value.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
            "int64" => value.is_i64(),
            _ => true,
        };
        if !fits {
            errors.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{path} in body must be of type {format}: \"{value}\""),
            ));
        }
    }
}

/// `x-kubernetes-embedded-resource`: the object must say what it is.
fn embedded_resource(map: &Map<String, Value>, path: &str, errors: &mut Vec<FieldError>) {
    for field in ["apiVersion", "kind"] {
        let present = map
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !present {
            errors.push(FieldError::required(join(path, field), "must not be empty"));
        }
    }
}

/// `x-kubernetes-list-type`: `set` items are unique, `map` items are unique by their
/// `x-kubernetes-list-map-keys`.
fn list_type(
    rules: &Map<String, Value>,
    items: &[Value],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let key_of = |item: &Value| -> Option<Value> {
        match rules.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => Some(item.clone()),
            Some("map") => {
                let keys = rules.get("x-kubernetes-list-map-keys")?.as_array()?;
                let mut key = Map::new();
                for name in keys.iter().filter_map(Value::as_str) {
                    if let Some(v) = item.get(name) {
                        key.insert(name.to_owned(), v.clone());
                    }
                }
                Some(Value::Object(key))
            }
            _ => None,
        }
    };
    // Keys by their JSON text, so a long list costs one hash per item.
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(key) = key_of(item) else { return };
        if !seen.insert(key.to_string()) {
            errors.push(FieldError {
                kind: FieldErrorType::Duplicate,
                field: format!("{path}[{i}]"),
                value: Some(key),
                detail: String::new(),
            });
        }
    }
}

/// The string formats upstream's CRD validation checks (`apiextensions-apiserver`'s
/// `strfmt` registry); unknown formats pass, as upstream.
fn format_matches(format: &str, text: &str) -> bool {
    match format {
        "byte" => base64_like(text),
        "date" => is_date(text),
        "date-time" | "datetime" => is_date_time(text),
        "uuid" => is_uuid(text),
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(text),
        "int32" => text.parse::<i32>().is_ok(),
        "int64" => text.parse::<i64>().is_ok(),
        _ => true,
    }
}

fn base64_like(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len() % 4 == 0
        && text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn digits(text: &str, count: usize) -> bool {
    text.len() == count && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 3
        && digits(parts[0], 4)
        && digits(parts[1], 2)
        && digits(parts[2], 2)
        && matches!(parts[1].parse::<u8>(), Ok(1..=12))
        && matches!(parts[2].parse::<u8>(), Ok(1..=31))
}

/// RFC 3339 (`2006-01-02T15:04:05Z`, fractions and offsets allowed).
fn is_date_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once(['T', 't', ' ']) else {
        return false;
    };
    // `get` rather than slicing: the text is a request's and may hold multi-byte characters.
    let (Some(clock), Some(mut rest)) = (time.get(..8), time.get(8..)) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let fields: Vec<&str> = clock.split(':').collect();
    let clock_ok = fields.len() == 3
        && fields.iter().all(|f| digits(f, 2))
        && matches!(fields[0].parse::<u8>(), Ok(0..=23))
        && matches!(fields[1].parse::<u8>(), Ok(0..=59))
        && matches!(fields[2].parse::<u8>(), Ok(0..=60));
    if !clock_ok {
        return false;
    }
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        rest = &fraction[end..];
    }
    match rest {
        "Z" | "z" => true,
        offset => {
            let Some(sign_less) = offset.strip_prefix(['+', '-']) else {
                return false;
            };
            let fields: Vec<&str> = sign_less.split(':').collect();
            fields.len() == 2 && digits(fields[0], 2) && digits(fields[1], 2)
        }
    }
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_cidr(text: &str) -> bool {
    let Some((address, bits)) = text.split_once('/') else {
        return false;
    };
    match (address.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
        _ => false,
    }
}

/// Pruning of one object node (`pruning/algorithm.go`): fields outside `properties` go unless
/// `additionalProperties` has a schema for them or the node preserves unknown fields.
fn prune_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    root: bool,
    pruned: &mut Vec<String>,
) {
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|v| v.is_object());
    let mut gone = Vec::new();
    for (key, value) in map.iter_mut() {
        if (root || embedded) && ROOT_TYPE_FIELDS.contains(&key.as_str()) {
            if embedded && key == "metadata" {
                if let Value::Object(meta) = value {
                    prune_embedded_metadata(meta, &join(path, key), pruned);
                }
            }
            continue;
        }
        match properties.and_then(|p| p.get(key)).or(additional) {
            Some(child) => prune_value(child, value, &join(path, key), pruned),
            None if preserve => {}
            None => gone.push(key.clone()),
        }
    }
    for key in gone {
        map.remove(&key);
        pruned.push(join(path, &key));
    }
}

fn prune_value(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => prune_object(schema, map, path, false, pruned),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item_schema, item, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

/// The metadata of an embedded resource keeps only `ObjectMeta`'s fields.
fn prune_embedded_metadata(meta: &mut Map<String, Value>, path: &str, pruned: &mut Vec<String>) {
    const OBJECT_META_FIELDS: [&str; 16] = [
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
        "clusterName",
    ];
    let gone: Vec<String> = meta
        .keys()
        .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in gone {
        meta.remove(&key);
        pruned.push(join(path, &key));
    }
}

fn default_value(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, child) in properties {
                    let Some(default) = child.get("default") else {
                        continue;
                    };
                    let missing = match map.get(key) {
                        None => true,
                        Some(Value::Null) => !flag(child, "nullable"),
                        Some(_) => false,
                    };
                    if missing {
                        map.insert(key.clone(), default.clone());
                    }
                }
                for (key, child) in properties {
                    if let Some(inner) = map.get_mut(key) {
                        default_value(child, inner);
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                let properties = schema.get("properties").and_then(Value::as_object);
                for (key, inner) in map.iter_mut() {
                    if properties.is_none_or(|p| !p.contains_key(key)) {
                        default_value(additional, inner);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    default_value(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Why a CRD version's schema is not structural, or otherwise unusable, as upstream's
/// `ValidateStructural` and `ValidateCustomResourceDefinitionOpenAPISchema` report it; `path`
/// is the schema's field path (`spec.versions[0].schema.openAPIV3Schema`).
pub fn structural_errors(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match schema.get("type").and_then(Value::as_str) {
        None | Some("") => errors.push(FieldError::required(
            format!("{path}.type"),
            "must not be empty at the root",
        )),
        Some("object") => {}
        Some(other) => errors.push(FieldError::invalid(
            format!("{path}.type"),
            other,
            "must be object at the root",
        )),
    }
    if let Some(metadata) = schema.pointer("/properties/metadata") {
        let only_names = metadata
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(|p| p.keys().all(|k| k == "name" || k == "generateName"));
        let extra_keys = metadata.as_object().is_some_and(|m| {
            m.keys()
                .any(|k| !matches!(k.as_str(), "type" | "properties" | "description"))
        });
        if !only_names || extra_keys {
            errors.push(FieldError::forbidden(
                format!("{path}.properties[metadata]"),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    node_errors(schema, path, false, &mut errors);
    errors.extend(rule_errors(schema, path));
    errors
}

/// Checks one schema node; `typed_position` says whether it is a property, an item or an
/// additional property outside any `allOf`/`anyOf`/`oneOf`/`not` (where structural schemas
/// need a type; inside those junctors only value validations appear, untyped).
fn node_errors(schema: &Value, path: &str, typed_position: bool, errors: &mut Vec<FieldError>) {
    node_errors_in(schema, path, typed_position, false, errors);
}

fn node_errors_in(
    schema: &Value,
    path: &str,
    typed_position: bool,
    in_junctor: bool,
    errors: &mut Vec<FieldError>,
) {
    let Value::Object(map) = schema else {
        errors.push(FieldError::invalid(
            path,
            schema.clone(),
            "must be a schema object",
        ));
        return;
    };
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    let has_type = map
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if in_junctor && map.contains_key("x-kubernetes-validations") {
        errors.push(FieldError::forbidden(
            format!("{path}.x-kubernetes-validations"),
            "must be empty to be structural",
        ));
    }
    if typed_position && !in_junctor && !has_type && !preserve && !int_or_string {
        errors.push(FieldError::required(
            format!("{path}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if let Some(t) = map.get("type").and_then(Value::as_str) {
        if !matches!(
            t,
            "object" | "array" | "string" | "integer" | "number" | "boolean" | ""
        ) {
            errors.push(FieldError::not_supported(
                format!("{path}.type"),
                t,
                &["array", "boolean", "integer", "number", "object", "string"],
            ));
        }
        if t == "array" && map.get("items").is_none() {
            errors.push(FieldError::required(
                format!("{path}.items"),
                "must be specified",
            ));
        }
    }
    if map.contains_key("properties")
        && map
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
    {
        errors.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if flag(schema, "uniqueItems") {
        errors.push(FieldError::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(pattern) = map.get("pattern").and_then(Value::as_str) {
        if let Err(error) = Regex::new(pattern) {
            errors.push(FieldError::invalid(
                format!("{path}.pattern"),
                pattern,
                format!("must be a valid regular expression, but isn't: {error}"),
            ));
        }
    }
    if map.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map")
        && map
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        errors.push(FieldError::required(
            format!("{path}.x-kubernetes-list-map-keys"),
            "must not be empty if x-kubernetes-list-type is map",
        ));
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let child_path = format!("{path}.properties[{name}]");
            node_errors_in(child, &child_path, true, in_junctor, errors);
        }
    }
    if let Some(additional) = map.get("additionalProperties").filter(|a| a.is_object()) {
        let child_path = format!("{path}.additionalProperties");
        node_errors_in(additional, &child_path, true, in_junctor, errors);
    }
    match map.get("items") {
        Some(items @ Value::Object(_)) => {
            node_errors_in(items, &format!("{path}.items"), true, in_junctor, errors);
        }
        Some(Value::Array(_)) => errors.push(FieldError::forbidden(
            format!("{path}.items"),
            "items must be a schema object and not an array",
        )),
        _ => {}
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = map.get(junctor).and_then(Value::as_array) {
            for (i, child) in list.iter().enumerate() {
                node_errors_in(
                    child,
                    &format!("{path}.{junctor}[{i}]"),
                    false,
                    true,
                    errors,
                );
            }
        }
    }
    if let Some(default) = map.get("default") {
        // As upstream, a default must itself be valid against its schema.
        let compiled = StructuralSchema::new(schema.clone());
        let validator = Validator {
            patterns: &compiled.patterns,
        };
        validator.value(schema, default, &format!("{path}.default"), errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crontab_schema() -> StructuralSchema {
        StructuralSchema::new(json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["cronSpec"],
                    "properties": {
                        "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                        "image": {"type": "string", "maxLength": 10},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "when": {"type": "string", "format": "date-time"},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "note": {"type": "string", "nullable": true},
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            }
        }))
    }

    fn content(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    /// The errors as text, sorted (validation follows map order).
    fn messages(errors: &[FieldError]) -> Vec<String> {
        let mut texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        texts.sort();
        texts
    }

    #[test]
    fn valid_objects_pass() {
        let schema = crontab_schema();
        let object = content(json!({"spec": {
            "cronSpec": "* * * * */5", "replicas": 3, "color": "red", "port": "http",
            "when": "2024-01-02T03:04:05.5+01:00", "tags": ["a", "b"], "labels": {"x": "y"},
            "free": {"anything": [1, {"goes": true}]}, "note": null,
        }}));
        assert_eq!(
            messages(&schema.validate_content(&object)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn errors_carry_upstream_messages() {
        let schema = crontab_schema();
        let object = content(json!({"spec": {
            "replicas": "three", "image": "a-very-long-image", "color": "pink",
            "port": 1.5, "when": "yesterday", "tags": ["a", "a", "b"], "labels": {"x": 1},
        }, "status": {"ready": null}}));
        assert_eq!(
            messages(&schema.validate_content(&object)),
            [
                "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"",
                "spec.cronSpec: Required value",
                "spec.image: Too long: may not be more than 10 bytes",
                "spec.labels.x: Invalid value: \"integer\": spec.labels.x in body must be of type string: \"integer\"",
                "spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\"",
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                "spec.tags: Too many: 3: must have at most 2 items",
                "spec.tags[1]: Duplicate value: \"a\"",
                "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
                "status.ready: Invalid value: \"null\": status.ready in body must be of type boolean: \"null\"",
            ]
        );
        let object = content(json!({"spec": {"cronSpec": "bad", "replicas": 0}}));
        assert_eq!(
            messages(&schema.validate_content(&object)),
            [
                "spec.cronSpec: Invalid value: \"bad\": spec.cronSpec in body should match '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'",
                "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            ]
        );
    }

    #[test]
    fn formats_reject_without_panicking_on_any_text() {
        for text in [
            "2024-01-02T0000000\u{e9}",
            "2024-01-02T\u{e9}\u{e9}\u{e9}\u{e9}",
            "\u{e9}",
            "",
        ] {
            assert!(!format_matches("date-time", text), "{text}");
        }
        assert!(format_matches("date-time", "2024-01-02T03:04:05Z"));
    }

    #[test]
    fn pruning_drops_unknown_fields_but_keeps_preserved_ones() {
        let schema = crontab_schema();
        let mut document = json!({
            "apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "c"},
            "spec": {"cronSpec": "x", "bogus": 1, "free": {"kept": 1}, "labels": {"a": "b"}},
            "extra": true,
        });
        let pruned = schema.prune(&mut document);
        assert_eq!(pruned, ["spec.bogus", "extra"]);
        assert_eq!(document["spec"]["free"]["kept"], 1);
        assert_eq!(document["spec"]["labels"]["a"], "b");
        assert_eq!(document["kind"], "CronTab");
    }

    #[test]
    fn defaults_fill_missing_and_non_nullable_null_fields() {
        let schema = crontab_schema();
        let mut document = json!({"spec": {"cronSpec": "x"}});
        schema.apply_defaults(&mut document);
        assert_eq!(document["spec"]["replicas"], 1);
        let mut document = json!({"spec": {"replicas": null}});
        schema.apply_defaults(&mut document);
        assert_eq!(document["spec"]["replicas"], 1);
    }

    #[test]
    fn non_structural_schemas_are_reported() {
        let path = "spec.versions[0].schema.openAPIV3Schema";
        let errors = structural_errors(
            &json!({"properties": {
                "spec": {"properties": {"a": {"type": "string"}}},
                "list": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                "bad": {"type": "string", "pattern": "("},
                "n": {"type": "integer", "default": "x"},
                "alt": {"type": "object", "oneOf": [{"properties": {"kind": {"enum": ["a"]}}}]},
            }}),
            path,
        );
        assert_eq!(
            messages(&errors),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[bad].pattern: Invalid value: \"(\": must be a valid regular expression, but isn't: regex parse error:\n    (\n    ^\nerror: unclosed group",
                "spec.versions[0].schema.openAPIV3Schema.properties[list].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                "spec.versions[0].schema.openAPIV3Schema.properties[n].default: Invalid value: \"string\": spec.versions[0].schema.openAPIV3Schema.properties[n].default in body must be of type integer: \"string\"",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
                "spec.versions[0].schema.openAPIV3Schema.type: Required value: must not be empty at the root",
            ]
        );
    }
}
