//! Round-trip property tests of Widget conversion: any valid Widget converted
//! v1beta1 -> hub -> v1 -> hub -> v1beta1 is unchanged, and v1 -> hub -> v1beta1 -> hub -> v1
//! too, both with the typed conversions and through the Scheme on JSON documents.

use std::collections::BTreeMap;

use apimachinery::object::ObjectMeta;
use example_widgets::{
    self, DESCRIPTION_ANNOTATION, hub_to_v1, hub_to_v1beta1, internal, v1, v1_to_hub, v1beta1,
    v1beta1_to_hub, validate, validate_internal,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use scheme::{Scheme, builtin};

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.:/-]{0,24}"
}

fn non_empty_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9 _.-]{0,30}"
}

/// A map that is absent or non-empty (Go's omitempty makes empty and absent the same).
fn string_map(keys: &'static str) -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    option::of(btree_map(keys, text(), 1..4))
}

fn metadata(
    annotations: BoxedStrategy<Option<BTreeMap<String, String>>>,
) -> impl Strategy<Value = ObjectMeta> {
    (
        "[a-z][a-z0-9-]{0,12}",
        option::of("[a-z][a-z0-9-]{0,8}"),
        string_map("[a-z]{1,6}"),
        annotations,
        option::of(1i64..1000),
        option::of("[0-9a-f]{8}"),
    )
        .prop_map(
            |(name, namespace, labels, annotations, generation, uid)| ObjectMeta {
                name: Some(name),
                namespace,
                labels,
                annotations,
                generation,
                uid,
                ..ObjectMeta::default()
            },
        )
}

fn reason() -> impl Strategy<Value = String> {
    "[A-Za-z]([A-Za-z0-9_,:]{0,10}[A-Za-z0-9_])?"
}

/// Absent or non-empty conditions with unique types.
fn conditions() -> impl Strategy<Value = Option<Vec<Condition>>> {
    option::of(
        vec(
            (
                prop::sample::select(vec!["True", "False", "Unknown"]),
                reason(),
                text(),
                0i64..4_000_000_000,
                option::of(0i64..100),
            ),
            1..4,
        )
        .prop_map(|items| {
            items
                .into_iter()
                .enumerate()
                .map(
                    |(i, (status, reason, message, seconds, observed))| Condition {
                        type_: format!("Type{i}"),
                        status: status.to_owned(),
                        reason,
                        message,
                        last_transition_time: Time(
                            Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH),
                        ),
                        observed_generation: observed,
                    },
                )
                .collect()
        }),
    )
}

fn phase() -> impl Strategy<Value = Option<String>> {
    option::of(prop::sample::select(vec!["Pending", "Running"]).prop_map(str::to_owned))
}

prop_compose! {
    fn valid_v1()(
        metadata in metadata(string_map("[a-z]{1,6}(\\.io/[a-z]{1,4})?").boxed()),
        display_name in non_empty_text(),
        description in option::of(text()),
        phase in phase(),
        observed_generation in option::of(0i64..1000),
        conditions in conditions(),
    ) -> v1::Widget {
        v1::Widget {
            metadata,
            spec: v1::WidgetSpec { display_name: Some(display_name), description },
            status: v1::WidgetStatus { phase, observed_generation, conditions },
        }
    }
}

/// v1beta1 annotations: absent or non-empty, maybe with the description annotation.
fn v1beta1_annotations() -> BoxedStrategy<Option<BTreeMap<String, String>>> {
    (string_map("[a-z]{1,6}"), option::of(text()))
        .prop_map(|(annotations, description)| match description {
            None => annotations,
            Some(description) => {
                let mut annotations = annotations.unwrap_or_default();
                annotations.insert(DESCRIPTION_ANNOTATION.to_owned(), description);
                Some(annotations)
            }
        })
        .boxed()
}

prop_compose! {
    fn valid_v1beta1()(
        metadata in metadata(v1beta1_annotations()),
        title in non_empty_text(),
        ready in option::of(any::<bool>()),
        observed_generation in option::of(0i64..1000),
        conditions in conditions(),
    ) -> v1beta1::Widget {
        v1beta1::Widget {
            metadata,
            spec: v1beta1::WidgetSpec { title: Some(title) },
            status: v1beta1::WidgetStatus { ready, observed_generation, conditions },
        }
    }
}

fn scheme() -> Scheme {
    let mut scheme = Scheme::new();
    let registered =
        builtin::register_core(&mut scheme).and_then(|()| example_widgets::register(&mut scheme));
    if let Err(error) = registered {
        panic!("{error}");
    }
    scheme
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn v1beta1_hub_v1_hub_v1beta1_is_lossless(widget in valid_v1beta1()) {
        let hub: internal::Widget = v1beta1_to_hub(widget.clone());
        prop_assert!(validate_internal(&hub).is_empty(), "{:?}", validate_internal(&hub));
        let v1 = hub_to_v1(hub);
        prop_assert!(validate(&v1).is_empty());
        let back = hub_to_v1beta1(v1_to_hub(v1)).unwrap();
        prop_assert_eq!(back, widget);
    }

    #[test]
    fn v1_hub_v1beta1_hub_v1_is_lossless(widget in valid_v1()) {
        prop_assert!(validate(&widget).is_empty(), "{:?}", validate(&widget));
        let v1beta1 = hub_to_v1beta1(v1_to_hub(widget.clone())).unwrap();
        let back = hub_to_v1(v1beta1_to_hub(v1beta1));
        prop_assert_eq!(back, widget);
    }

    #[test]
    fn scheme_round_trips_json_documents(widget in valid_v1beta1(), other in valid_v1()) {
        let scheme = scheme();
        let document = serde_json::to_value(&widget).unwrap();
        let v1 = scheme.convert(document.clone(), "v1").unwrap();
        prop_assert_eq!(&v1["apiVersion"], "apps.example.io/v1");
        let back = scheme.convert(v1, "v1beta1").unwrap();
        prop_assert_eq!(&back, &document);
        let decoded: v1beta1::Widget = serde_json::from_value(back).unwrap();
        prop_assert_eq!(decoded, widget);

        let document = serde_json::to_value(&other).unwrap();
        let hub = scheme.convert_to_hub(document.clone()).unwrap();
        let v1beta1 = scheme.convert_from_hub(hub, "v1beta1").unwrap();
        let back = scheme.convert(v1beta1, "v1").unwrap();
        prop_assert_eq!(back, document);
    }

    #[test]
    fn decoding_a_canonical_object_only_converts(widget in valid_v1beta1()) {
        // Defaulting leaves canonical objects alone (non-empty description annotation).
        prop_assume!(widget
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
            .is_none_or(|d| !d.is_empty()));
        let scheme = scheme();
        let endpoint = scheme::GroupVersionKind::new("apps.example.io", "v1beta1", "Widget");
        let stored = scheme
            .decode_to_storage(&endpoint, serde_json::to_value(&widget).unwrap())
            .unwrap();
        let expected = serde_json::to_value(hub_to_v1(v1beta1_to_hub(widget))).unwrap();
        prop_assert_eq!(stored, expected);
    }
}
