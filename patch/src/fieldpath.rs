//! Field paths and field sets, structured-merge-diff's model of "which fields", with the
//! `fieldsV1` encoding of `metadata.managedFields`.
//!
//! A path is a sequence of [`PathElement`]s: a field name, the key of a map-list item, the value
//! of a set item or, for lists without identity, an index. A [`FieldSet`] is a set of paths; a
//! path in the set means that node is owned. `fieldsV1` nests the paths as JSON objects keyed
//! by `f:<name>`, `k:<json object>`, `v:<json>` or `i:<index>`, with `"."` marking a node that
//! is itself in the set and also has owned children.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use super::schema::{ListKind, PatchSchema};

/// One step of a field path. The variant order is structured-merge-diff's order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of an object (`f:<name>`).
    Field(String),
    /// A map-list item by its key fields: the compact JSON object of them, keys sorted
    /// (`k:{"type":"Ready"}`).
    Key(String),
    /// A set item by its value, as compact JSON (`v:"finalizer"`).
    Value(String),
    /// A list item by position (`i:0`).
    Index(usize),
}

impl PathElement {
    /// The `fieldsV1` key of this element.
    pub fn serialize(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(json) => format!("k:{json}"),
            PathElement::Value(json) => format!("v:{json}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `fieldsV1` key.
    pub fn deserialize(key: &str) -> Result<Self, String> {
        let (kind, rest) = key
            .split_once(':')
            .ok_or_else(|| format!("missing colon: {key}"))?;
        match kind {
            "f" => Ok(PathElement::Field(rest.to_owned())),
            "k" => {
                let parsed: Map<String, Value> =
                    serde_json::from_str(rest).map_err(|e| format!("{key}: {e}"))?;
                Ok(PathElement::Key(Value::Object(parsed).to_string()))
            }
            "v" => {
                let parsed: Value =
                    serde_json::from_str(rest).map_err(|e| format!("{key}: {e}"))?;
                Ok(PathElement::Value(parsed.to_string()))
            }
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("{key}: {e}")),
            _ => Err(format!("unknown path element type: {key}")),
        }
    }
}

fn go_string(value: &Value) -> String {
    // structured-merge-diff's `value.ToString`: strings quoted, other scalars as JSON.
    value.to_string()
}

impl fmt::Display for PathElement {
    /// structured-merge-diff's `PathElement.String()`: `.name`, `[type="Ready"]`, `[="x"]`,
    /// `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(json) => {
                let fields: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", go_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(json) => write!(f, "[={json}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the object's root.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(pub Vec<PathElement>);

impl FieldPath {
    /// A path of field names.
    pub fn fields(names: &[&str]) -> Self {
        FieldPath(
            names
                .iter()
                .map(|n| PathElement::Field((*n).to_owned()))
                .collect(),
        )
    }

    /// Whether `prefix` is a prefix of this path (or equal to it).
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for FieldPath {
    /// `.spec.conditions[type="Ready"].status`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for element in &self.0 {
            write!(f, "{element}")?;
        }
        Ok(())
    }
}

/// A set of field paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<FieldPath>);

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        FieldSet::default()
    }

    /// Adds a path.
    pub fn insert(&mut self, path: FieldPath) {
        self.0.insert(path);
    }

    /// Whether the path is in the set.
    pub fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
    }

    /// Whether the set holds `path` or a path below it.
    pub fn contains_at_or_below(&self, path: &FieldPath) -> bool {
        self.0
            .range(path.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(path))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of paths.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The paths, in order.
    pub fn iter(&self) -> impl Iterator<Item = &FieldPath> {
        self.0.iter()
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    /// `self ∖ other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    /// `self ∩ other`.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// The `fieldsV1` JSON of the set.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<PathElement, Node>,
        }
        fn emit(node: &Node) -> Value {
            let mut out = Map::new();
            for (element, child) in &node.children {
                out.insert(element.serialize(), emit(child));
            }
            if node.member && !node.children.is_empty() {
                out.insert(".".to_owned(), Value::Object(Map::new()));
            }
            Value::Object(out)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for element in &path.0 {
                node = node.children.entry(element.clone()).or_default();
            }
            node.member = true;
        }
        emit(&root)
    }

    /// Parses `fieldsV1` JSON. Unknown element kinds are an error.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        fn read(
            value: &Value,
            prefix: &mut Vec<PathElement>,
            out: &mut FieldSet,
        ) -> Result<(), String> {
            let Value::Object(map) = value else {
                return Err(format!("expected an object, got {value}"));
            };
            for (key, child) in map {
                if key == "." {
                    if !prefix.is_empty() {
                        out.insert(FieldPath(prefix.clone()));
                    }
                    continue;
                }
                prefix.push(PathElement::deserialize(key)?);
                let is_leaf = child.as_object().is_some_and(Map::is_empty);
                if is_leaf {
                    out.insert(FieldPath(prefix.clone()));
                } else {
                    read(child, prefix, out)?;
                }
                prefix.pop();
            }
            Ok(())
        }
        let mut out = FieldSet::new();
        read(value, &mut Vec::new(), &mut out)?;
        Ok(out)
    }
}

impl FromIterator<FieldPath> for FieldSet {
    fn from_iter<T: IntoIterator<Item = FieldPath>>(iter: T) -> Self {
        FieldSet(iter.into_iter().collect())
    }
}

fn list_kind(schema: &dyn PatchSchema, names: &[String]) -> ListKind {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    schema.list_kind(&names)
}

/// The path element of list item `index` for a list of `kind`. Items without the identity the
/// kind needs fall back to their index, unless `strict`, where that is an error.
pub fn item_element(
    item: &Value,
    index: usize,
    kind: ListKind,
    strict: bool,
) -> Result<PathElement, String> {
    match kind {
        ListKind::Set if !item.is_object() && !item.is_array() => {
            Ok(PathElement::Value(item.to_string()))
        }
        ListKind::Map(keys) => {
            let mut fields = Map::new();
            if let Value::Object(map) = item {
                for key in keys {
                    if let Some(v) = map.get(*key).filter(|v| !v.is_object() && !v.is_array()) {
                        fields.insert((*key).to_owned(), v.clone());
                    }
                }
            }
            if !fields.is_empty() {
                Ok(PathElement::Key(Value::Object(fields).to_string()))
            } else if strict {
                Err(format!(
                    "element {index}: associative list with keys has an element that omits key field {:?}",
                    keys.first().copied().unwrap_or_default()
                ))
            } else {
                Ok(PathElement::Index(index))
            }
        }
        _ if strict && kind != ListKind::Atomic => {
            Err(format!("element {index}: a set may only hold scalars"))
        }
        _ => Ok(PathElement::Index(index)),
    }
}

/// The items of a non-atomic list with their path elements. `strict` rejects items without
/// identity and duplicates.
pub fn list_items(
    list: &[Value],
    kind: ListKind,
    strict: bool,
) -> Result<Vec<(PathElement, &Value)>, String> {
    let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let element = item_element(item, i, kind, strict)?;
        if strict && out.iter().any(|(e, _)| *e == element) {
            return Err(format!("duplicate entries for key {element}"));
        }
        out.push((element, item));
    }
    Ok(out)
}

/// structured-merge-diff's `ToFieldSet`: every leaf (scalar, `null`, empty object, atomic list),
/// every item of a set or map list, of `value`. `strict` is for apply configurations.
pub fn set_from_value(
    value: &Value,
    schema: &dyn PatchSchema,
    strict: bool,
) -> Result<FieldSet, String> {
    fn walk(
        value: &Value,
        path: &mut Vec<PathElement>,
        names: &mut Vec<String>,
        schema: &dyn PatchSchema,
        strict: bool,
        out: &mut FieldSet,
    ) -> Result<(), String> {
        let Value::Object(map) = value else {
            return Ok(());
        };
        for (key, child) in map {
            path.push(PathElement::Field(key.clone()));
            names.push(key.clone());
            match child {
                Value::Object(m) if !m.is_empty() => walk(child, path, names, schema, strict, out)?,
                Value::Array(items) => {
                    let kind = list_kind(schema, names);
                    if kind == ListKind::Atomic {
                        out.insert(FieldPath(path.clone()));
                    } else {
                        let items = list_items(items, kind, strict)
                            .map_err(|e| format!("{}: {e}", FieldPath(path.clone())))?;
                        for (element, item) in items {
                            path.push(element);
                            out.insert(FieldPath(path.clone()));
                            walk(item, path, names, schema, strict, out)?;
                            path.pop();
                        }
                    }
                }
                _ => out.insert(FieldPath(path.clone())),
            }
            names.pop();
            path.pop();
        }
        Ok(())
    }
    let mut out = FieldSet::new();
    walk(
        value,
        &mut Vec::new(),
        &mut Vec::new(),
        schema,
        strict,
        &mut out,
    )?;
    Ok(out)
}

/// The difference between two versions of an object (structured-merge-diff's `Comparison`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Paths present only in the new object (containers and everything below them).
    pub added: FieldSet,
    /// Paths present only in the old object.
    pub removed: FieldSet,
    /// Leaves present in both with different values.
    pub modified: FieldSet,
}

impl Comparison {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Object,
    List(ListKind),
    Leaf,
}

fn shape(value: &Value, kind: ListKind) -> Shape {
    match value {
        Value::Object(_) => Shape::Object,
        Value::Array(_) if kind != ListKind::Atomic => Shape::List(kind),
        _ => Shape::Leaf,
    }
}

/// Compares two versions of an object.
pub fn compare(old: &Value, new: &Value, schema: &dyn PatchSchema) -> Comparison {
    let mut walker = CompareWalk {
        path: Vec::new(),
        names: Vec::new(),
        schema,
        out: Comparison::default(),
    };
    walker.walk(Some(old), Some(new));
    walker.out
}

/// The state of [`compare`]'s walk: where it is, the field names above it (for list kinds
/// from the schema), and what it found.
struct CompareWalk<'s> {
    path: Vec<PathElement>,
    names: Vec<String>,
    schema: &'s dyn PatchSchema,
    out: Comparison,
}

impl CompareWalk<'_> {
    fn children(value: &Value, kind: ListKind) -> Vec<(PathElement, Option<String>, &Value)> {
        match value {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (PathElement::Field(k.clone()), Some(k.clone()), v))
                .collect(),
            Value::Array(items) => list_items(items, kind, false)
                .unwrap_or_default()
                .into_iter()
                .map(|(e, v)| (e, None, v))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn walk(&mut self, old: Option<&Value>, new: Option<&Value>) {
        let kind = if self.names.is_empty() {
            ListKind::Atomic
        } else {
            list_kind(self.schema, &self.names)
        };
        let old_shape = old.map(|v| shape(v, kind));
        let new_shape = new.map(|v| shape(v, kind));
        if !self.path.is_empty() {
            let here = || FieldPath(self.path.clone());
            match (old, new) {
                (None, Some(_)) => {
                    self.out.added.insert(here());
                }
                (Some(_), None) => {
                    self.out.removed.insert(here());
                }
                (Some(a), Some(b))
                    if (old_shape == Some(Shape::Leaf) || old_shape != new_shape) && a != b =>
                {
                    self.out.modified.insert(here());
                }
                _ => {}
            }
        }
        let old_children = match (old, old_shape) {
            (Some(v), Some(s)) if s != Shape::Leaf => Self::children(v, kind),
            _ => Vec::new(),
        };
        let new_children = match (new, new_shape) {
            (Some(v), Some(s)) if s != Shape::Leaf => Self::children(v, kind),
            _ => Vec::new(),
        };
        let same = old_shape == new_shape;
        let mut seen: Vec<&PathElement> = Vec::new();
        for (element, name, old_child) in &old_children {
            if seen.contains(&element) {
                continue;
            }
            seen.push(element);
            let new_child = if same {
                new_children
                    .iter()
                    .find(|(e, _, _)| e == element)
                    .map(|(_, _, v)| *v)
            } else {
                None
            };
            self.descend(element, name, Some(*old_child), new_child);
        }
        for (element, name, new_child) in &new_children {
            let in_old = same && old_children.iter().any(|(e, _, _)| e == element);
            if in_old || seen.contains(&element) {
                continue;
            }
            seen.push(element);
            self.descend(element, name, None, Some(*new_child));
        }
    }

    fn descend(
        &mut self,
        element: &PathElement,
        name: &Option<String>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        self.path.push(element.clone());
        if let Some(name) = name {
            self.names.push(name.clone());
        }
        self.walk(old, new);
        if name.is_some() {
            self.names.pop();
        }
        self.path.pop();
    }
}

/// Removes the node at `path` from `value`, then any object or list that removal left empty.
/// Returns whether something was removed.
pub fn remove_path(value: &mut Value, path: &[PathElement], schema: &dyn PatchSchema) -> bool {
    fn walk(
        value: &mut Value,
        path: &[PathElement],
        names: &mut Vec<String>,
        schema: &dyn PatchSchema,
    ) -> bool {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        match (first, value) {
            (PathElement::Field(name), Value::Object(map)) => {
                if rest.is_empty() {
                    return map.remove(name).is_some();
                }
                let Some(child) = map.get_mut(name) else {
                    return false;
                };
                names.push(name.clone());
                let removed = walk(child, rest, names, schema);
                names.pop();
                if removed && is_empty_container(child) {
                    map.remove(name);
                }
                removed
            }
            (element, Value::Array(items)) => {
                let kind = list_kind(schema, names);
                let position = items.iter().enumerate().position(|(i, item)| {
                    item_element(item, i, kind, false).as_ref() == Ok(element)
                });
                let Some(position) = position else {
                    return false;
                };
                if rest.is_empty() {
                    items.remove(position);
                    return true;
                }
                let removed = walk(&mut items[position], rest, names, schema);
                if removed && is_empty_container(&items[position]) {
                    items.remove(position);
                }
                removed
            }
            _ => false,
        }
    }
    walk(value, path, &mut Vec::new(), schema)
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}
