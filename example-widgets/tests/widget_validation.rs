//! Widget types, defaulting, validation and OpenAPI schemas.

use apimachinery::object::ObjectMeta;
use apimachinery::status::{ApiError, FieldErrorType};
use example_widgets::{
    self, DESCRIPTION_ANNOTATION, default_v1, default_v1beta1, openapi_schema, v1, v1beta1,
    validate,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

fn assert_object<T: apimachinery::Object>() {}

fn condition(type_: &str, status: &str, reason: &str) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: String::new(),
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
        observed_generation: None,
    }
}

fn widget() -> v1::Widget {
    v1::Widget {
        metadata: ObjectMeta {
            name: Some("w".to_owned()),
            namespace: Some("default".to_owned()),
            ..ObjectMeta::default()
        },
        spec: v1::WidgetSpec {
            display_name: Some("Widget".to_owned()),
            description: None,
        },
        status: v1::WidgetStatus::default(),
    }
}

#[test]
fn widgets_are_objects_with_type_information() {
    assert_object::<v1::Widget>();
    assert_object::<v1beta1::Widget>();
    use kube_core::Resource;
    assert_eq!(v1::Widget::api_version(&()), "apps.example.io/v1");
    assert_eq!(v1beta1::Widget::version(&()), "v1beta1");
    assert_eq!(v1::Widget::plural(&()), "widgets");
    assert_eq!(v1::Widget::kind(&()), "Widget");
    assert_eq!(
        <v1::Widget as k8s_openapi::ListableResource>::LIST_KIND,
        "WidgetList"
    );
    let info = example_widgets::widget_resource_info();
    assert_eq!(info.short_names, ["wd"]);
    assert_eq!(info.categories, ["all"]);
    assert_eq!(info.storage_version, "v1");
}

#[test]
fn serialization_writes_type_and_reads_it_back() {
    let value = serde_json::to_value(widget()).unwrap();
    assert_eq!(
        value,
        json!({
            "apiVersion": "apps.example.io/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "default"},
            "spec": {"displayName": "Widget"},
            "status": {}
        })
    );
    let back: v1::Widget = serde_json::from_value(value).unwrap();
    assert_eq!(back, widget());
    // apiVersion and kind may be absent (list items), spec/status null or absent.
    let bare: v1::Widget =
        serde_json::from_value(json!({"metadata": {"name": "w"}, "spec": null})).unwrap();
    assert_eq!(bare.spec, v1::WidgetSpec::default());
    // Other types are rejected.
    assert!(
        serde_json::from_value::<v1::Widget>(json!({"apiVersion": "apps.example.io/v1beta1"}))
            .is_err()
    );
    assert!(serde_json::from_value::<v1beta1::Widget>(json!({"kind": "Gadget"})).is_err());
}

#[test]
fn defaulting_removes_empty_values() {
    let mut w = widget();
    w.spec.description = Some(String::new());
    w.metadata.annotations = Some(Default::default());
    w.status.conditions = Some(Vec::new());
    default_v1(&mut w);
    assert_eq!(w, widget());

    let mut old = v1beta1::Widget::default();
    old.metadata.annotations = Some([(DESCRIPTION_ANNOTATION.to_owned(), String::new())].into());
    old.status.conditions = Some(Vec::new());
    default_v1beta1(&mut old);
    assert_eq!(old, v1beta1::Widget::default());
    // A non-empty description is kept.
    let mut old = v1beta1::Widget::default();
    old.metadata.annotations = Some([(DESCRIPTION_ANNOTATION.to_owned(), "d".to_owned())].into());
    let before = old.clone();
    default_v1beta1(&mut old);
    assert_eq!(old, before);
}

#[test]
fn valid_widgets_pass() {
    let mut w = widget();
    w.spec.description = Some("d".to_owned());
    w.status = v1::WidgetStatus {
        phase: Some("Running".to_owned()),
        observed_generation: Some(2),
        conditions: Some(vec![
            condition("Ready", "True", "Started"),
            condition("example.io/Synced", "Unknown", "Waiting_for:sync"),
        ]),
    };
    assert_eq!(validate(&w), vec![]);
}

#[test]
fn invalid_widgets_report_each_field() {
    let mut w = widget();
    w.spec.display_name = None;
    w.spec.description = Some("x".repeat(example_widgets::MAX_DESCRIPTION_LENGTH + 1));
    w.metadata.annotations = Some([(DESCRIPTION_ANNOTATION.to_owned(), "d".to_owned())].into());
    w.status = v1::WidgetStatus {
        phase: Some("Stopped".to_owned()),
        observed_generation: Some(-1),
        conditions: Some(vec![
            condition("Ready", "True", "Started"),
            condition("Ready", "Maybe", "9bad"),
            condition("", "False", ""),
        ]),
    };
    let errors = validate(&w);
    let summary: Vec<(FieldErrorType, &str)> =
        errors.iter().map(|e| (e.kind, e.field.as_str())).collect();
    assert_eq!(
        summary,
        vec![
            (
                FieldErrorType::Forbidden,
                "metadata.annotations[widgets.apps.example.io/description]"
            ),
            (FieldErrorType::Required, "spec.displayName"),
            (FieldErrorType::TooLong, "spec.description"),
            (FieldErrorType::NotSupported, "status.phase"),
            (FieldErrorType::Invalid, "status.observedGeneration"),
            (FieldErrorType::Duplicate, "status.conditions[1].type"),
            (FieldErrorType::NotSupported, "status.conditions[1].status"),
            (FieldErrorType::Invalid, "status.conditions[1].reason"),
            (FieldErrorType::Required, "status.conditions[2].type"),
            (FieldErrorType::Required, "status.conditions[2].reason"),
        ]
    );
    assert_eq!(
        errors[3].to_string(),
        "status.phase: Unsupported value: \"Stopped\": supported values: \"Pending\", \"Running\""
    );
    assert_eq!(
        errors[2].to_string(),
        format!(
            "spec.description: Too long: may not be more than {} bytes",
            example_widgets::MAX_DESCRIPTION_LENGTH
        )
    );
    // The Store turns them into a 422 with one cause per error.
    let api = ApiError::invalid("Widget", "apps.example.io", "w", &errors);
    assert_eq!((api.code, api.reason.as_str()), (422, "Invalid"));
    let causes = api.details.unwrap().causes.unwrap();
    assert_eq!(causes.len(), errors.len());
    assert_eq!(causes[5].reason.as_deref(), Some("FieldValueDuplicate"));

    let mut long = widget();
    long.spec.display_name = Some("n".repeat(example_widgets::MAX_DISPLAY_NAME_LENGTH + 1));
    assert_eq!(validate(&long)[0].kind, FieldErrorType::TooLong);
    let mut empty = widget();
    empty.spec.display_name = Some(String::new());
    assert_eq!(validate(&empty)[0].field, "spec.displayName");
}

#[test]
fn openapi_schemas_per_version() {
    let v1 = openapi_schema("v1").unwrap();
    assert_eq!(
        v1["x-kubernetes-group-version-kind"],
        json!([{"group": "apps.example.io", "version": "v1", "kind": "Widget"}])
    );
    assert_eq!(v1["properties"]["spec"]["required"], json!(["displayName"]));
    let conditions = &v1["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    assert_eq!(
        v1["properties"]["status"]["properties"]["phase"]["enum"],
        json!(["Pending", "Running"])
    );
    let v1beta1 = openapi_schema("v1beta1").unwrap();
    assert!(v1beta1["properties"]["spec"]["properties"]["displayName"].is_null());
    assert_eq!(
        v1beta1["properties"]["status"]["properties"]["ready"]["type"],
        json!("boolean")
    );
    assert!(openapi_schema("v2").is_none());
}
