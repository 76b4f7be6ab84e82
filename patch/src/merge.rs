//! JSON merge patch (RFC 7386) and its inverse, the merge patch between two documents.

use serde_json::{Map, Value};

use apimachinery::status::ApiError;

/// Applies an RFC 7386 merge patch to `current` (400 if the patch is not JSON, 422 if the
/// result is not an object).
pub fn apply_merge_patch(current: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut doc = current.clone();
    json_patch::merge(&mut doc, &patch);
    super::patched_object(doc)
}

/// The merge patch that turns `from` into `to`: changed and added fields with their new value,
/// removed fields as `null`, objects recursively, anything else replaced whole.
///
/// `to` must not hold `null` values (a merge patch cannot set a field to `null`).
pub fn create_merge_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for (key, old) in a {
                match b.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new) if new != old => {
                        let sub = match (old, new) {
                            (Value::Object(_), Value::Object(_)) => create_merge_patch(old, new),
                            _ => new.clone(),
                        };
                        patch.insert(key.clone(), sub);
                    }
                    Some(_) => {}
                }
            }
            for (key, new) in b {
                if !a.contains_key(key) {
                    patch.insert(key.clone(), new.clone());
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}
