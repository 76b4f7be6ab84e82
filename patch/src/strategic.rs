//! Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`), driven by a
//! [`PatchSchema`].
//!
//! The rules, from `k8s.io/apimachinery/pkg/util/strategicpatch`: maps merge per key and a `null`
//! value deletes the key; lists merge as the schema says (atomic: replaced; set: union; map:
//! per item by merge key); and the directives below. A key absent from the original takes the
//! patch value with its `null`s and directives removed, as the API server does
//! (`IgnoreUnmatchedNulls`).
//!
//! | directive | where | effect |
//! |---|---|---|
//! | `"$patch": "replace"` | in a map | the map becomes the patch's map |
//! | `"$patch": "delete"` | in a map | the map becomes empty |
//! | `{"$patch": "replace"}` | item of a merge list | the list becomes the patch's other items |
//! | `{"$patch": "delete", "<key>": v}` | item of a map list | removes the item with key `v` |
//! | `"$deleteFromPrimitiveList/<f>": [..]` | beside `<f>` | removes these values from set list `<f>` |
//! | `"$setElementOrder/<f>": [..]` | beside `<f>` | orders the named items of list `<f>` |
//! | `"$retainKeys": [..]` | in a map | drops the original's other keys (the patch may only use these) |

use serde_json::{Map, Value};

use super::schema::{ListKind, PatchSchema};
use apimachinery::status::ApiError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Applies a strategic merge patch to `current` (an object). Malformed patches and directives
/// are 400; a patch using keys outside its `$retainKeys` is 422.
pub fn apply_strategic_merge_patch(
    current: &Value,
    patch: &[u8],
    schema: &dyn PatchSchema,
) -> Result<Value, ApiError> {
    let patch: Value =
        serde_json::from_slice(patch).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_type(&patch)
        )));
    };
    let original = match current {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let mut path = Vec::new();
    Ok(Value::Object(merge_map(
        original, patch, &mut path, schema,
    )?))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    }
}

fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> ApiError {
    let shown = directive
        .as_str()
        .map_or_else(|| directive.to_string(), str::to_owned);
    ApiError::bad_request(format!(
        "unknown patch type: {shown} in map: {}",
        Value::Object(map.clone())
    ))
}

fn no_merge_key(map: &Map<String, Value>, key: &str) -> ApiError {
    ApiError::bad_request(format!(
        "map: {} does not contain declared merge key: {key}",
        Value::Object(map.clone())
    ))
}

fn list_kind(schema: &dyn PatchSchema, path: &[String]) -> ListKind {
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    schema.list_kind(&names)
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    path: &mut Vec<String>,
    schema: &dyn PatchSchema,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => merge_map(Map::new(), patch, path, schema),
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_patch_type(&directive, &patch)),
        };
    }

    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        let bad = || ApiError::bad_request("invalid patch format of retainKeys");
        let Value::Array(keys) = retain else {
            return Err(bad());
        };
        let keys: Vec<String> = keys
            .into_iter()
            .map(|k| match k {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?;
        let outside = patch
            .keys()
            .any(|k| !k.starts_with('$') && !keys.contains(k));
        if outside {
            return Err(super::unprocessable_entity());
        }
        original.retain(|k, _| keys.contains(k));
    }

    let deletes: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(DELETE_FROM_PRIMITIVE_LIST))
        .cloned()
        .collect();
    for key in deletes {
        let Some(Value::Array(remove)) = patch.remove(&key) else {
            return Err(ApiError::bad_request(
                "invalid patch format of primitive list",
            ));
        };
        let field = &key[DELETE_FROM_PRIMITIVE_LIST.len()..];
        if let Some(Value::Array(list)) = original.get_mut(field) {
            list.retain(|item| !remove.contains(item));
        }
    }

    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    let mut orders = Vec::new();
    for key in order_keys {
        let Some(Value::Array(order)) = patch.remove(&key) else {
            return Err(ApiError::bad_request(
                "invalid patch format of setElementOrder list",
            ));
        };
        orders.push((key[SET_ELEMENT_ORDER.len()..].to_owned(), order));
    }

    for (key, value) in patch {
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        path.push(key.clone());
        let merged = match (original.remove(&key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                merge_map(old, new, path, schema).map(Value::Object)
            }
            (Some(Value::Array(old)), Value::Array(new)) => merge_list(old, new, path, schema),
            (_, new) => fresh(new, path, schema),
        };
        path.pop();
        original.insert(key, merged?);
    }

    for (field, order) in orders {
        path.push(field.clone());
        let kind = list_kind(schema, path);
        path.pop();
        if let Some(Value::Array(list)) = original.get_mut(&field) {
            reorder(list, &order, kind);
        }
    }
    Ok(original)
}

/// A patch value for a field the original lacks (or holds with another type): its `null`s and
/// directives are applied against nothing.
fn fresh(
    value: Value,
    path: &mut Vec<String>,
    schema: &dyn PatchSchema,
) -> Result<Value, ApiError> {
    match value {
        Value::Object(map) => merge_map(Map::new(), map, path, schema).map(Value::Object),
        Value::Array(list) => merge_list(Vec::new(), list, path, schema),
        other => Ok(other),
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    path: &mut Vec<String>,
    schema: &dyn PatchSchema,
) -> Result<Value, ApiError> {
    let kind = list_kind(schema, path);
    let key = match kind {
        ListKind::Atomic => return Ok(Value::Array(patch)),
        ListKind::Set => None,
        ListKind::Map(keys) => keys.first().copied(),
    };

    let mut replace = false;
    let mut deleted = Vec::new();
    let mut items = Vec::new();
    for item in patch {
        let directive = item.as_object().and_then(|m| m.get(DIRECTIVE).cloned());
        let (Some(directive), Value::Object(mut map)) = (directive, item.clone()) else {
            items.push(item);
            continue;
        };
        map.remove(DIRECTIVE);
        match directive.as_str() {
            Some("replace") => replace = true,
            Some("delete") => match key {
                Some(key) => match map.get(key) {
                    Some(value) => deleted.push(value.clone()),
                    None => return Err(no_merge_key(&map, key)),
                },
                None => return Err(bad_patch_type(&directive, &map)),
            },
            _ => return Err(bad_patch_type(&directive, &map)),
        }
    }

    if replace {
        let items = items
            .into_iter()
            .map(|item| fresh(item, path, schema))
            .collect::<Result<_, _>>()?;
        return Ok(Value::Array(items));
    }

    let Some(key) = key else {
        // A set of scalars: union, keeping the original order.
        let mut result = original;
        for item in items {
            if !result.contains(&item) {
                result.push(item);
            }
        }
        return Ok(Value::Array(result));
    };

    let mut result: Vec<Value> = original
        .into_iter()
        .filter(|o| !o.get(key).is_some_and(|k| deleted.contains(k)))
        .collect();
    for item in items {
        let Value::Object(map) = item else {
            return Err(ApiError::bad_request(format!(
                "invalid patch: item {item} of a list merged on {key:?} is not an object"
            )));
        };
        let Some(id) = map.get(key).cloned() else {
            return Err(no_merge_key(&map, key));
        };
        match result.iter().position(|o| o.get(key) == Some(&id)) {
            Some(pos) => {
                let old = match std::mem::take(&mut result[pos]) {
                    Value::Object(old) => old,
                    _ => Map::new(),
                };
                result[pos] = Value::Object(merge_map(old, map, path, schema)?);
            }
            None => result.push(Value::Object(merge_map(Map::new(), map, path, schema)?)),
        }
    }
    Ok(Value::Array(result))
}

/// `$setElementOrder`: the items the order names take, in the order's sequence, the positions
/// such items occupy in the list; other items stay where they are.
fn reorder(list: &mut [Value], order: &[Value], kind: ListKind) {
    let id = |item: &Value| -> Option<Value> {
        match kind {
            ListKind::Map(keys) => keys.first().and_then(|k| item.get(*k).cloned()),
            _ => Some(item.clone()),
        }
    };
    let wanted: Vec<Value> = order.iter().filter_map(id).collect();
    let rank = |item: &Value| id(item).and_then(|i| wanted.iter().position(|w| *w == i));
    let slots: Vec<usize> = (0..list.len())
        .filter(|&i| rank(&list[i]).is_some())
        .collect();
    let mut named: Vec<Value> = slots.iter().map(|&i| list[i].clone()).collect();
    named.sort_by_key(|item| rank(item).unwrap_or(usize::MAX));
    for (slot, item) in slots.into_iter().zip(named) {
        list[slot] = item;
    }
}
