//! Unit tests of the patch engine and server-side apply, several ported from Kubernetes'
//! `strategicpatch/patch_test.go`, `handlers/patch.go` behaviour and structured-merge-diff.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::fieldpath::{FieldPath, FieldSet, PathElement};
use super::*;

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-01-02T00:00:00Z";

fn info<'a>(manager: &'a str, time: &'a str) -> ManagerInfo<'a> {
    ManagerInfo {
        manager,
        subresource: "",
        time,
    }
}

fn smp(current: Value, patch: Value, schema: &dyn PatchSchema) -> Result<Value, ApiError> {
    apply_patch(
        &current,
        patch.to_string().as_bytes(),
        PatchType::StrategicMerge,
        schema,
    )
}

#[test]
fn content_types() {
    assert_eq!(
        PatchType::from_content_type("application/merge-patch+json; charset=utf-8", false),
        Ok(PatchType::Merge)
    );
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json", true),
        Ok(PatchType::StrategicMerge)
    );
    let err = PatchType::from_content_type("application/strategic-merge-patch+json", false)
        .expect_err("CRs have no SMP");
    assert_eq!(
        (err.code, err.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    assert!(err.message.ends_with(
        "accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    ));
    let err = PatchType::from_content_type("text/plain", true).expect_err("unknown");
    assert!(
        err.message
            .contains("application/strategic-merge-patch+json")
    );
}

#[test]
fn patch_options() {
    let err = validate_patch_options(PatchType::Apply, None, None).expect_err("no manager");
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let err = validate_patch_options(PatchType::Merge, Some("m"), Some(true)).expect_err("force");
    assert!(
        err.message
            .contains("force: Forbidden: may not be specified for non-apply patch")
    );
    assert!(validate_patch_options(PatchType::Apply, Some("kubectl"), Some(false)).is_ok());
    assert_eq!(
        manager_or_user_agent(None, "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07"),
        "kubectl"
    );
}

#[test]
fn json_patch_ops_and_errors() {
    let cm = json!({"metadata": {"name": "x"}, "data": {"a": "1"}});
    let patch = br#"[{"op":"add","path":"/data/b","value":"2"},{"op":"remove","path":"/data/a"}]"#;
    let out = apply_patch(&cm, patch, PatchType::Json, &CONFIG_MAP).expect("applies");
    assert_eq!(out["data"], json!({"b": "2"}));

    // A failed test or a missing path: 422 with the generic message and empty details.
    for bad in [
        &br#"[{"op":"test","path":"/data/a","value":"2"}]"#[..],
        br#"[{"op":"remove","path":"/spec/affinity"}]"#,
        br#"[{"op":"frobnicate","path":"/data"}]"#,
    ] {
        let err = apply_patch(&cm, bad, PatchType::Json, &CONFIG_MAP).expect_err("fails");
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert_eq!(
            err.message,
            "the server rejected our request due to an error in our request"
        );
        assert_eq!(err.details, Some(Default::default()));
    }
    let err = apply_patch(&cm, b"{not json", PatchType::Json, &CONFIG_MAP).expect_err("400");
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
    assert!(err.message.starts_with("error decoding patch: "));

    let many = format!(
        "[{}]",
        vec![r#"{"op":"test","path":"/data","value":{}}"#; MAX_JSON_PATCH_OPERATIONS + 1].join(",")
    );
    let err = apply_patch(&cm, many.as_bytes(), PatchType::Json, &CONFIG_MAP).expect_err("413");
    assert_eq!(err.code, 413);
}

#[test]
fn merge_patch_rfc7386_examples() {
    // RFC 7386 appendix A, a few rows.
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
    ];
    for (doc, patch, want) in cases {
        let got = apply_patch(
            &doc,
            patch.to_string().as_bytes(),
            PatchType::Merge,
            &WIDGET,
        )
        .expect("applies");
        assert_eq!(got, want, "{doc} + {patch}");
    }
    let err = apply_patch(&json!({}), b"[1]", PatchType::Merge, &WIDGET).expect_err("not object");
    assert_eq!(err.code, 422);
    let err = apply_patch(&json!({}), b"{", PatchType::Merge, &WIDGET).expect_err("bad json");
    assert_eq!(err.code, 400);
}

#[test]
fn smp_maps_and_null_deletion() {
    // kubectl's second client-side apply of a ConfigMap.
    let cm = json!({"metadata": {"name": "app-cfg", "annotations": {"x": "1"}}, "data": {"a": "1", "b": "2"}});
    let out = smp(
        cm,
        json!({"data": {"b": null, "c": "3"}, "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(out["data"], json!({"a": "1", "c": "3"}));
    assert_eq!(out["metadata"]["annotations"]["x"], "1");
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}"
    );
}

#[test]
fn smp_unsupported_for_custom_kinds() {
    let err = smp(json!({}), json!({"spec": {}}), &WIDGET).expect_err("415");
    assert_eq!(err.code, 415);
}

#[test]
fn smp_merge_key_lists() {
    // patch_test.go: "Merge a list of maps by merge key" (ownerReferences by uid here).
    let obj = json!({"metadata": {"ownerReferences": [
        {"uid": "1", "name": "a", "kind": "K"},
        {"uid": "2", "name": "b", "kind": "K"}
    ]}});
    let out = smp(
        obj.clone(),
        json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b2"}, {"uid": "3", "name": "c", "kind": "K"}]}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([
            {"uid": "1", "name": "a", "kind": "K"},
            {"uid": "2", "name": "b2", "kind": "K"},
            {"uid": "3", "name": "c", "kind": "K"}
        ])
    );
    // "$patch: delete" item.
    let out = smp(
        obj.clone(),
        json!({"metadata": {"ownerReferences": [{"uid": "1", "$patch": "delete"}]}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "2", "name": "b", "kind": "K"}])
    );
    // "$patch: replace" item replaces the list.
    let out = smp(
        obj.clone(),
        json!({"metadata": {"ownerReferences": [{"$patch": "replace"}, {"uid": "9", "name": "z"}]}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "9", "name": "z"}])
    );
    // Missing merge key: 400.
    let err = smp(
        obj,
        json!({"metadata": {"ownerReferences": [{"name": "nouid"}]}}),
        &CONFIG_MAP,
    )
    .expect_err("no key");
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .contains("does not contain declared merge key: uid")
    );
}

#[test]
fn smp_namespace_conditions_and_atomic_finalizers() {
    let ns = json!({"spec": {"finalizers": ["kubernetes"]}, "status": {"conditions": [
        {"type": "A", "status": "True"}, {"type": "B", "status": "False"}
    ]}});
    let out = smp(
        ns,
        json!({"spec": {"finalizers": ["other"]}, "status": {"conditions": [{"type": "B", "status": "True"}]}}),
        &NAMESPACE,
    )
    .expect("applies");
    assert_eq!(out["spec"]["finalizers"], json!(["other"]));
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "A", "status": "True"}, {"type": "B", "status": "True"}])
    );
}

#[test]
fn smp_primitive_list_directives() {
    // patch_test.go: "Delete items in a primitive list" / set union / setElementOrder.
    let obj = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
    let out = smp(
        obj.clone(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
    let out = smp(
        obj.clone(),
        json!({"metadata": {"finalizers": ["d", "a"]}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c", "d"]));
    let out = smp(
        obj,
        json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "b", "a"]));
    let err = smp(
        json!({}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "b"}}),
        &CONFIG_MAP,
    )
    .expect_err("bad format");
    assert_eq!(err.code, 400);
}

#[test]
fn smp_map_directives() {
    let obj = json!({"data": {"a": "1", "b": "2"}});
    let out = smp(
        obj.clone(),
        json!({"data": {"$patch": "replace", "c": "3"}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(out["data"], json!({"c": "3"}));
    let out = smp(
        obj.clone(),
        json!({"data": {"$patch": "delete"}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(out["data"], json!({}));
    let out = smp(
        obj.clone(),
        json!({"data": {"$retainKeys": ["a"], "a": "9"}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(out["data"], json!({"a": "9"}));
    let err = smp(
        obj.clone(),
        json!({"data": {"$retainKeys": ["a"], "b": "9"}}),
        &CONFIG_MAP,
    )
    .expect_err("mismatch");
    assert_eq!(err.code, 422);
    let err = smp(obj, json!({"data": {"$patch": "frobnicate"}}), &CONFIG_MAP).expect_err("bad");
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .starts_with("unknown patch type: frobnicate in map:")
    );
    // Directives and nulls of a new subtree do not leak into the object.
    let out = smp(
        json!({}),
        json!({"data": {"x": null, "y": "1"}}),
        &CONFIG_MAP,
    )
    .expect("applies");
    assert_eq!(out, json!({"data": {"y": "1"}}));
    let err = smp(json!({}), json!([1]), &CONFIG_MAP).expect_err("array");
    assert_eq!(err.code, 400);
}

#[test]
fn fields_v1_round_trip_and_display() {
    let encoded = json!({
        "f:data": {".": {}, "f:key": {}},
        "f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}},
        "f:metadata": {"f:finalizers": {"v:\"a\"": {}}}
    });
    let set = FieldSet::from_fields_v1(&encoded).expect("decodes");
    assert_eq!(set.len(), 6);
    assert_eq!(set.to_fields_v1(), encoded);
    let path = FieldPath(vec![
        PathElement::Field("status".into()),
        PathElement::Field("conditions".into()),
        PathElement::Key(r#"{"type":"Ready"}"#.into()),
        PathElement::Field("status".into()),
    ]);
    assert!(set.contains(&path));
    assert_eq!(
        path.to_string(),
        r#".status.conditions[type="Ready"].status"#
    );
}

fn managed(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn update_ownership_of_ordinary_writes() {
    let created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"key": "a"}});
    let stored = update_managed_fields(
        None,
        &created,
        &info("kubectl-client-side-apply", T1),
        &CONFIG_MAP,
    );
    let entries = managed(&stored);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0],
        json!({
            "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
            "time": T1, "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:key": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
        })
    );
    // Another manager changes one field: it takes it; the timestamp of the first stays.
    let mut stored = stored;
    stored["metadata"]["uid"] = json!("u1");
    let mut edited = stored.clone();
    edited["data"]["key"] = json!("b");
    let after = update_managed_fields(
        Some(&stored),
        &edited,
        &info("kubectl-edit", T2),
        &CONFIG_MAP,
    );
    let entries = managed(&after);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["manager"], "kubectl-client-side-apply");
    assert_eq!(entries[0]["fieldsV1"]["f:data"], json!({}));
    assert_eq!(entries[1]["manager"], "kubectl-edit");
    assert_eq!(entries[1]["fieldsV1"], json!({"f:data": {"f:key": {}}}));
    // A no-op write changes nothing, not even a time.
    let again = update_managed_fields(
        Some(&after),
        &after,
        &info("kubectl-edit", "2030-01-01T00:00:00Z"),
        &CONFIG_MAP,
    );
    assert_eq!(again, after);
    // managedFields: [] resets.
    let mut reset = after.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let out = update_managed_fields(Some(&after), &reset, &info("m", T2), &CONFIG_MAP);
    assert!(out["metadata"].get("managedFields").is_none());
}

fn client_side_applied() -> Value {
    let created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default", "uid": "u1"}, "data": {"key": "a", "other": "o"}});
    update_managed_fields(
        None,
        &created,
        &info("kubectl-client-side-apply", T1),
        &CONFIG_MAP,
    )
}

#[test]
fn apply_conflicts_with_client_side_apply() {
    let live = client_side_applied();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"key": "b"}});
    let err = server_side_apply(
        Some(&live),
        &config,
        &info("kubectl", T2),
        false,
        &CONFIG_MAP,
    )
    .expect_err("conflict");
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.key"#
    );
    let causes = err.details.and_then(|d| d.causes).unwrap_or_default();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason.as_deref(), Some("FieldManagerConflict"));
    assert_eq!(causes[0].field.as_deref(), Some(".data.key"));
    assert_eq!(
        causes[0].message.as_deref(),
        Some(r#"conflict with "kubectl-client-side-apply" using v1"#)
    );

    // The same value is shared ownership, not a conflict.
    let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"key": "a"}});
    let out = server_side_apply(Some(&live), &same, &info("kubectl", T2), false, &CONFIG_MAP)
        .expect("no conflict");
    assert_eq!(out["data"], json!({"key": "a", "other": "o"}));

    // force takes the field.
    let out = server_side_apply(
        Some(&live),
        &config,
        &info("kubectl", T2),
        true,
        &CONFIG_MAP,
    )
    .expect("forced");
    assert_eq!(out["data"]["key"], "b");
    let entries = managed(&out);
    let csa = entries
        .iter()
        .find(|e| e["manager"] == "kubectl-client-side-apply")
        .expect("kept");
    assert_eq!(csa["fieldsV1"], json!({"f:data": {".": {}, "f:other": {}}}));
    let ssa = entries
        .iter()
        .find(|e| e["manager"] == "kubectl")
        .expect("applier");
    assert_eq!(ssa["operation"], "Apply");
    assert_eq!(ssa["fieldsV1"], json!({"f:data": {"f:key": {}}}));
    assert_eq!(ssa["time"], T2);
}

#[test]
fn apply_two_conflicts_message() {
    let live = client_side_applied();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"key": "b", "other": "p"}});
    let err = server_side_apply(
        Some(&live),
        &config,
        &info("kubectl", T2),
        false,
        &CONFIG_MAP,
    )
    .expect_err("conflicts");
    assert_eq!(
        err.message,
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using v1:\n- .data.key\n- .data.other"
    );
}

#[test]
fn apply_creates_prunes_and_is_idempotent() {
    let config = json!({"apiVersion": "apps.example.io/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"displayName": "W", "description": "d"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let created =
        server_side_apply(None, &config, &info("ctl", T1), false, &WIDGET).expect("creates");
    assert_eq!(created["spec"], config["spec"]);
    let entries = managed(&created);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["fieldsV1"],
        json!({"f:spec": {"f:description": {}, "f:displayName": {}},
               "f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
    );
    let mut live = created.clone();
    live["metadata"]["uid"] = json!("u");
    live["metadata"]["resourceVersion"] = json!("5");

    // Same configuration again: unchanged, same time.
    let same =
        server_side_apply(Some(&live), &config, &info("ctl", T2), false, &WIDGET).expect("no-op");
    assert_eq!(same, live);

    // Drop description and the condition: both are pruned.
    let smaller = json!({"apiVersion": "apps.example.io/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"displayName": "W"}});
    let out =
        server_side_apply(Some(&live), &smaller, &info("ctl", T2), false, &WIDGET).expect("prunes");
    assert_eq!(out["spec"], json!({"displayName": "W"}));
    assert!(out.get("status").is_none(), "{out}");
    assert_eq!(out["metadata"]["resourceVersion"], "5");

    // A field another applier also owns survives when one applier drops it.
    let shared = server_side_apply(
        Some(&live),
        &json!({"apiVersion": "apps.example.io/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"description": "d"}}),
        &info("other", T2),
        false,
        &WIDGET,
    )
    .expect("shared");
    let out = server_side_apply(Some(&shared), &smaller, &info("ctl", T2), false, &WIDGET)
        .expect("prunes");
    assert_eq!(out["spec"], json!({"displayName": "W", "description": "d"}));
}

#[test]
fn apply_merges_map_lists_by_key() {
    let live = server_side_apply(
        None,
        &json!({"apiVersion": "apps.example.io/v1", "kind": "Widget",
        "status": {"conditions": [{"type": "A", "status": "True"}]}}),
        &info("a", T1),
        false,
        &WIDGET,
    )
    .expect("a");
    let out = server_side_apply(
        Some(&live),
        &json!({"apiVersion": "apps.example.io/v1", "kind": "Widget",
        "status": {"conditions": [{"type": "B", "status": "False"}]}}),
        &info("b", T1),
        false,
        &WIDGET,
    )
    .expect("b");
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "A", "status": "True"}, {"type": "B", "status": "False"}])
    );
    // b changing A's status conflicts with a, on the keyed path.
    let err = server_side_apply(
        Some(&out),
        &json!({"apiVersion": "apps.example.io/v1", "kind": "Widget",
        "status": {"conditions": [{"type": "A", "status": "False"}]}}),
        &info("b", T1),
        false,
        &WIDGET,
    )
    .expect_err("conflict");
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "a": .status.conditions[type="A"].status"#
    );
    // Duplicate keys in a configuration are rejected.
    let err = server_side_apply(
        None,
        &json!({"status": {"conditions": [{"type": "A"}, {"type": "A"}]}}),
        &info("b", T1),
        false,
        &WIDGET,
    )
    .expect_err("dup");
    assert_eq!(err.code, 400);
}

#[test]
fn apply_before_first_apply_and_validation() {
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "uid": "u"}, "data": {"k": "v"}});
    let err = server_side_apply(
        Some(&live),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "w"}}),
        &info("kubectl", T1),
        false,
        &CONFIG_MAP,
    )
    .expect_err("conflict");
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.k"#
    );
    let err = server_side_apply(
        None,
        &json!({"metadata": {"managedFields": [{}]}}),
        &info("m", T1),
        false,
        &CONFIG_MAP,
    )
    .expect_err("managedFields");
    assert_eq!(err.message, "metadata.managedFields must be nil");
    assert_eq!(
        decode_apply_patch(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"1\"\n").expect("yaml")
            ["data"]["a"],
        "1"
    );
    assert_eq!(
        decode_apply_patch(br#"{"kind":"ConfigMap"}"#).expect("json")["kind"],
        "ConfigMap"
    );
    assert_eq!(decode_apply_patch(b"[1, 2]").expect_err("array").code, 400);
    assert_eq!(decode_apply_patch(b"a: [").expect_err("bad yaml").code, 400);
}

fn json_object() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-z]{0,4}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-e]", value, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    /// The merge patch computed between two objects turns the first into the second.
    #[test]
    fn merge_patch_of_diff_round_trips(a in json_object(), b in json_object()) {
        let patch = merge::create_merge_patch(&a, &b);
        let got = apply_patch(&a, patch.to_string().as_bytes(), PatchType::Merge, &WIDGET);
        prop_assert_eq!(got, Ok(b.clone()));
        // Without lists, a strategic merge patch is a merge patch.
        let has_list = |v: &Value| v.to_string().contains('[');
        if !has_list(&a) && !has_list(&b) {
            let got = apply_patch(&a, patch.to_string().as_bytes(), PatchType::StrategicMerge, &CONFIG_MAP);
            prop_assert_eq!(got, Ok(b));
        }
    }

    /// fieldsV1 encoding round-trips any field set built from an object.
    #[test]
    fn fields_v1_round_trips(a in json_object()) {
        let set = fieldpath::set_from_value(&a, &WIDGET, false).expect("lenient");
        prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), Ok(set));
    }
}
