//! `fieldValidation`: finding the fields a request body carries that the kind does not know,
//! and JSON object keys a body repeats, the way Kubernetes' strict decoding reports them
//! (`unknown field "spec.foo"`, `duplicate field "data.x"`).
//!
//! Create and update bodies are checked as sent; merge, strategic and JSON patches are
//! checked on the patched document (through [`CheckedView`], inside the Store's update
//! pipeline), plus duplicate keys in the patch body itself.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use apimachinery::status::{ApiError, FieldError};
use registry::VersionView;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use scheme::ResourceInfo;

use crate::handler::{FieldValidation, RequestContext};

/// Paths of fields in `sent` that are absent from `kept` (what a typed round trip dropped).
/// `null` values count as absent on both sides.
pub(crate) fn dropped_fields(sent: &Value, kept: &Value, prefix: &str, out: &mut Vec<String>) {
    match (sent, kept) {
        (Value::Object(sent), Value::Object(kept)) => {
            for (key, value) in sent {
                let path = join(prefix, key);
                match kept.get(key) {
                    Some(inner) => dropped_fields(value, inner, &path, out),
                    None if value.is_null() => {}
                    None => out.push(path),
                }
            }
        }
        (Value::Array(sent), Value::Array(kept)) => {
            for (i, (a, b)) in sent.iter().zip(kept.iter()).enumerate() {
                dropped_fields(a, b, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The strict-decoding problems of a create, update or apply body, in document order as
/// Kubernetes lists them: `duplicate field "<path>"` for a repeated object key and
/// `unknown field "<path>"` for a field `kept` (the body decoded as the kind and encoded
/// again) lacks. `raw` is the body as sent, JSON or YAML; for a protobuf body only unknown
/// fields of `sent` (the decoded body) are found.
pub(crate) fn body_problems(raw: &[u8], sent: &Value, kept: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if walk(raw, Shape::Known(kept), &mut out) {
        return out;
    }
    let mut unknown = Vec::new();
    dropped_fields(sent, kept, "", &mut unknown);
    retain_unknown(&mut unknown);
    problems(&unknown, &[])
}

/// Paths of object keys that occur more than once in the JSON or YAML text `body`, in
/// document order (each extra occurrence once). Neither: none.
pub(crate) fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    walk(body, Shape::Unchecked, &mut out);
    out.into_iter()
        .filter_map(|p| {
            p.strip_prefix("duplicate field ")
                .and_then(|q| serde_json::from_str::<String>(q).ok())
        })
        .collect()
}

/// Walks `body` as JSON, else as YAML, appending its problems to `out`; `false` (and nothing
/// appended) when it is neither (a protobuf body).
fn walk(body: &[u8], shape: Shape<'_>, out: &mut Vec<String>) -> bool {
    let mut found = Vec::new();
    let mut json = serde_json::Deserializer::from_slice(body);
    let parsed = KeyWalk::root(shape, &mut found).deserialize(&mut json);
    if parsed.is_ok() && json.end().is_ok() {
        out.append(&mut found);
        return true;
    }
    found.clear();
    let yaml = serde_yaml_ng::Deserializer::from_slice(body);
    if KeyWalk::root(shape, &mut found).deserialize(yaml).is_ok() {
        out.append(&mut found);
        return true;
    }
    false
}

/// Server-side apply owns fields by schema, so an apply configuration with a field the kind
/// does not declare fails whatever `fieldValidation` says, with the message of Kubernetes'
/// field manager (`failed to create typed patch object (ns/name; group/version, Kind=K):
/// .spec: field not declared in schema`). Kubernetes answers 500 (kubernetes#122480); this is
/// the client's mistake, so 400.
pub(crate) fn reject_undeclared(
    config: &Value,
    kept: &Value,
    ctx: &RequestContext,
    name: &str,
    info: &ResourceInfo,
) -> Result<(), ApiError> {
    let mut unknown = Vec::new();
    dropped_fields(config, kept, "", &mut unknown);
    retain_unknown(&mut unknown);
    let errors: Vec<String> = unknown
        .iter()
        .map(|path| format!(".{path}: field not declared in schema"))
        .collect();
    let detail = match errors.as_slice() {
        [] => return Ok(()),
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    };
    let gvk = info.gvk(&ctx.version);
    Err(ApiError::bad_request(format!(
        "failed to create typed patch object ({}/{name}; {}/{}, Kind={}): {detail}",
        ctx.namespace, gvk.group, gvk.version, gvk.kind
    )))
}

/// The `Warning` texts / strict error parts for `unknown` and `duplicate` paths: duplicates
/// first, as Kubernetes lists a patch's problems.
pub(crate) fn problems(unknown: &[String], duplicate: &[String]) -> Vec<String> {
    duplicate
        .iter()
        .map(|f| format!("duplicate field {f:?}"))
        .chain(unknown.iter().map(|f| format!("unknown field {f:?}")))
        .collect()
}

/// Applies `validation` to `problems`: Strict fails with 400 `strict decoding error: ...`,
/// Warn returns them as warnings, Ignore drops them.
pub(crate) fn enforce(
    validation: FieldValidation,
    problems: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    match validation {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(problems),
        FieldValidation::Strict if problems.is_empty() => Ok(Vec::new()),
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            problems.join(", ")
        ))),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// What the walk compares a JSON value against.
#[derive(Clone, Copy)]
enum Shape<'v> {
    /// The kept document at this path: report repeated keys and fields it lacks.
    Known(&'v Value),
    /// Inside an unknown field: report nothing (Kubernetes skips unknown fields whole).
    Unknown,
    /// No kept document: report repeated keys only.
    Unchecked,
}

/// Visits any JSON value (answering whether it was `null`), recording problems in `out`.
struct KeyWalk<'a, 'v> {
    path: String,
    shape: Shape<'v>,
    out: &'a mut Vec<String>,
}

impl<'a, 'v> KeyWalk<'a, 'v> {
    fn root(shape: Shape<'v>, out: &'a mut Vec<String>) -> Self {
        KeyWalk {
            path: String::new(),
            shape,
            out,
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeyWalk<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyWalk<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let out = self.out;
        let mut index = 0;
        loop {
            let shape = match self.shape {
                Shape::Known(Value::Array(items)) => {
                    items.get(index).map_or(Shape::Unknown, Shape::Known)
                }
                Shape::Known(_) | Shape::Unknown => Shape::Unknown,
                Shape::Unchecked => Shape::Unchecked,
            };
            let child = KeyWalk {
                path: format!("{}[{index}]", self.path),
                shape,
                out: &mut *out,
            };
            if seq.next_element_seed(child)?.is_none() {
                return Ok(false);
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let out = self.out;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            let shape = match self.shape {
                Shape::Known(Value::Object(kept)) => {
                    kept.get(&key).map_or(Shape::Unknown, Shape::Known)
                }
                Shape::Known(_) | Shape::Unknown => Shape::Unknown,
                Shape::Unchecked => Shape::Unchecked,
            };
            let repeated = !seen.insert(key);
            if repeated && !matches!(self.shape, Shape::Unknown) {
                out.push(format!("duplicate field {path:?}"));
            }
            let child = KeyWalk {
                path: path.clone(),
                shape,
                out: &mut *out,
            };
            let null = map.next_value_seed(child)?;
            let reports_unknown = matches!(self.shape, Shape::Known(_))
                && matches!(shape, Shape::Unknown)
                && !repeated
                && !null
                && !path.starts_with("metadata.annotations");
            if reports_unknown {
                out.push(format!("unknown field {path:?}"));
            }
        }
        Ok(false)
    }
}

/// A [`VersionView`] that checks each patched document for fields the kind does not know before
/// decoding it: Strict fails the patch with 400, Warn keeps the latest document's problems
/// for the response's `Warning` headers (the pipeline may run the patch more than once on
/// conflicts; only the attempt that lands counts).
pub(crate) struct CheckedView<K> {
    inner: Arc<dyn VersionView<K>>,
    validation: FieldValidation,
    duplicates: Vec<String>,
    warnings: Mutex<Vec<String>>,
}

impl<K> CheckedView<K> {
    /// Wraps `inner`; `duplicates` are the repeated keys of the patch body, reported with the
    /// unknown fields of every attempt.
    pub(crate) fn new(
        inner: Arc<dyn VersionView<K>>,
        validation: FieldValidation,
        duplicates: Vec<String>,
    ) -> Self {
        CheckedView {
            inner,
            validation,
            duplicates,
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// The warnings of the last decoded document.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

impl<K: Send + Sync> VersionView<K> for CheckedView<K> {
    fn api_version(&self) -> String {
        self.inner.api_version()
    }

    fn kind(&self) -> String {
        self.inner.kind()
    }

    fn encode(&self, object: &K) -> Result<Value, ApiError> {
        self.inner.encode(object)
    }

    fn decode(&self, document: Value) -> Result<K, ApiError> {
        let sent = (self.validation != FieldValidation::Ignore).then(|| document.clone());
        let object = self.inner.decode(document)?;
        if let Some(sent) = sent {
            let kept = self.inner.encode(&object)?;
            let mut unknown = Vec::new();
            dropped_fields(&sent, &kept, "", &mut unknown);
            retain_unknown(&mut unknown);
            let problems = problems(&unknown, &self.duplicates);
            if self.validation == FieldValidation::Strict && !problems.is_empty() {
                return Err(strict_patch_error(&sent, &problems));
            }
            if let Ok(mut slot) = self.warnings.lock() {
                *slot = problems;
            }
        }
        Ok(object)
    }
}

/// A Strict patch whose result has problems is 422 Invalid on the field `patch`, holding the
/// patched document, as kube-apiserver's patch handler answers (create and update bodies are
/// 400 instead): `"" is invalid: patch: Invalid value: "<document>": strict decoding error: ...`.
fn strict_patch_error(patched: &Value, problems: &[String]) -> ApiError {
    let error = FieldError::invalid(
        "patch",
        patched.to_string(),
        format!("strict decoding error: {}", problems.join(", ")),
    );
    ApiError::invalid("", "", "", &[error])
}

/// Drops paths a version conversion legitimately moves (into annotations and back): only
/// what no version of the kind knows is unknown.
pub(crate) fn retain_unknown(paths: &mut Vec<String>) {
    paths.retain(|p| !p.starts_with("metadata.annotations"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_keys_are_found_with_their_paths() {
        let body = br#"{"a":1,"spec":{"x":1,"x":2,"list":[{"k":1,"k":2}]},"a":{"b":null}}"#;
        assert_eq!(
            duplicate_fields(body),
            vec!["spec.x", "spec.list[0].k", "a"]
        );
        assert!(duplicate_fields(br#"{"a":{"a":{"a":1}}}"#).is_empty());
        assert_eq!(
            duplicate_fields(b"a: 1\nb: {c: 1, c: 2}\na: 2\n"),
            vec!["b.c", "a"]
        );
        assert!(duplicate_fields(b"k8s\0\x0a\x02\xff").is_empty());
    }

    #[test]
    fn body_problems_come_in_document_order() {
        let raw = br#"{"metadata":{"name":"a","name":"b","bogus":1,"annotations":{"x":"1"}},
            "data":{"k":"v"},"spec":{"deep":{"deep":1,"deep":2}},"nothing":null,"data":{"k":"v"}}"#;
        let sent: Value = serde_json::from_slice(raw).unwrap();
        let kept = json!({"metadata": {"name": "b"}, "data": {"k": "v"}});
        assert_eq!(
            body_problems(raw, &sent, &kept),
            vec![
                r#"duplicate field "metadata.name""#,
                r#"unknown field "metadata.bogus""#,
                r#"unknown field "spec""#,
                r#"duplicate field "data""#,
            ]
        );
        // YAML too.
        let yaml = b"metadata:\n  name: a\n  name: a\nspec: 1\n";
        let sent = json!({"metadata": {"name": "a"}, "spec": 1});
        let kept = json!({"metadata": {"name": "a"}});
        assert_eq!(
            body_problems(yaml, &sent, &kept),
            vec![
                r#"duplicate field "metadata.name""#,
                r#"unknown field "spec""#
            ]
        );
        // Neither JSON nor YAML (protobuf): unknown fields of the decoded body.
        assert_eq!(
            body_problems(b"k8s\0\x0a\x02\xff", &sent, &kept),
            vec![r#"unknown field "spec""#]
        );
    }

    #[test]
    fn dropped_fields_ignore_nulls_and_walk_lists() {
        let sent = json!({"a": 1, "b": null, "l": [{"x": 1, "y": 2}], "m": {"n": 1}});
        let kept = json!({"a": 1, "l": [{"x": 1}], "m": {}});
        let mut out = Vec::new();
        dropped_fields(&sent, &kept, "", &mut out);
        assert_eq!(out, vec!["l[0].y", "m.n"]);
    }

    #[test]
    fn enforcement_by_directive() {
        let problems = problems(&["spec.foo".to_owned()], &["data.x".to_owned()]);
        assert_eq!(
            enforce(FieldValidation::Strict, problems.clone())
                .unwrap_err()
                .message,
            r#"strict decoding error: duplicate field "data.x", unknown field "spec.foo""#
        );
        assert_eq!(
            enforce(FieldValidation::Warn, problems.clone()).unwrap(),
            problems
        );
        assert!(
            enforce(FieldValidation::Ignore, problems)
                .unwrap()
                .is_empty()
        );
        assert!(
            enforce(FieldValidation::Strict, Vec::new())
                .unwrap()
                .is_empty()
        );
    }
}
