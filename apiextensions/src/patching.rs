//! How a CRD's objects merge under patches and server-side apply: the
//! `x-kubernetes-list-type` (`set`, `map` with `x-kubernetes-list-map-keys`) of the lists its
//! structural schema declares, plus `ObjectMeta`'s own lists.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use patch::{ListKind, PatchSchema};
use serde_json::Value;

/// The list rules of one CRD version: lists reached through `properties` and `items` (the
/// paths the patch engine asks about; lists under `additionalProperties` stay atomic).
#[derive(Clone, Debug, Default)]
pub struct CustomResourcePatchSchema {
    rules: Vec<(Vec<String>, ListKind)>,
}

impl CustomResourcePatchSchema {
    /// The rules of `root` (an `openAPIV3Schema`), if any.
    pub fn new(root: Option<&Value>) -> Self {
        let mut rules = vec![
            (path(&["metadata", "finalizers"]), ListKind::Set),
            (
                path(&["metadata", "ownerReferences"]),
                ListKind::Map(intern(&["uid"])),
            ),
        ];
        if let Some(root) = root {
            collect(root, &mut Vec::new(), &mut rules);
        }
        CustomResourcePatchSchema { rules }
    }
}

fn path(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| (*s).to_owned()).collect()
}

fn collect(schema: &Value, at: &mut Vec<String>, rules: &mut Vec<(Vec<String>, ListKind)>) {
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => rules.push((at.clone(), ListKind::Set)),
            Some("map") => {
                let keys: Vec<&str> = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if !keys.is_empty() {
                    rules.push((at.clone(), ListKind::Map(intern(&keys))));
                }
            }
            _ => {}
        }
        // List items are transparent in the patch engine's paths.
        collect(items, at, rules);
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            if at.is_empty() && name == "metadata" {
                continue;
            }
            at.push(name.clone());
            collect(child, at, rules);
            at.pop();
        }
    }
}

/// The patch engine names map keys with `'static` slices; each distinct key list is kept once
/// for the life of the process, however often CRDs change. They grow only with the distinct
/// key lists CRD authors write (in practice a handful: `name`, `type`, `port`, ...).
fn intern(keys: &[&str]) -> &'static [&'static str] {
    static KEYS: OnceLock<Mutex<HashSet<&'static [&'static str]>>> = OnceLock::new();
    let mut known = KEYS
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = known.iter().find(|k| **k == keys) {
        return found;
    }
    let owned: Vec<&'static str> = keys
        .iter()
        .map(|k| &*Box::leak((*k).to_owned().into_boxed_str()))
        .collect();
    let leaked: &'static [&'static str] = Box::leak(owned.into_boxed_slice());
    known.insert(leaked);
    leaked
}

impl PatchSchema for CustomResourcePatchSchema {
    /// Custom kinds take no strategic merge patches (415), as upstream.
    fn supports_strategic_merge(&self) -> bool {
        false
    }

    fn list_kind(&self, path: &[&str]) -> ListKind {
        self.rules
            .iter()
            .find(|(rule, _)| {
                rule.len() == path.len() && rule.iter().zip(path).all(|(a, b)| a == b)
            })
            .map_or(ListKind::Atomic, |(_, kind)| *kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_types_become_merge_rules() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
                "items": {"type": "object", "properties": {
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}},
            "plain": {"type": "array", "items": {"type": "string"}},
        }}}});
        let rules = CustomResourcePatchSchema::new(Some(&schema));
        assert_eq!(
            rules.list_kind(&["spec", "ports"]),
            ListKind::Map(&["port", "protocol"])
        );
        assert_eq!(rules.list_kind(&["spec", "ports", "tags"]), ListKind::Set);
        assert_eq!(rules.list_kind(&["spec", "plain"]), ListKind::Atomic);
        assert_eq!(rules.list_kind(&["metadata", "finalizers"]), ListKind::Set);
        assert!(std::ptr::eq(
            intern(&["port", "protocol"]),
            intern(&["port", "protocol"])
        ));
    }
}
