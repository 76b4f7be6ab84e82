//! Property tests for label and field selectors: no panics on arbitrary input, canonical
//! rendering round-trips, and matching agrees with a direct reference evaluation.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::selector::{
    FieldOperator, FieldRequirement, FieldSelector, LabelSelector, Labels, Operator, Requirement,
};
use proptest::prelude::*;

fn name_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]",
        "[a-zA-Z0-9][-a-zA-Z0-9_.]{0,8}[a-zA-Z0-9]",
        Just("in".to_owned()),
        Just("notin".to_owned()),
    ]
}

fn label_key() -> impl Strategy<Value = String> {
    (
        proptest::option::of("[a-z0-9]{1,5}(\\.[a-z0-9]{1,5}){0,2}"),
        name_part(),
    )
        .prop_map(|(prefix, name)| match prefix {
            Some(p) => format!("{p}/{name}"),
            None => name,
        })
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), name_part(), Just("in".to_owned())]
}

fn requirement() -> impl Strategy<Value = Requirement> {
    let ops = prop_oneof![
        Just(Operator::Equals),
        Just(Operator::DoubleEquals),
        Just(Operator::NotEquals),
        Just(Operator::In),
        Just(Operator::NotIn),
        Just(Operator::Exists),
        Just(Operator::DoesNotExist),
        Just(Operator::GreaterThan),
        Just(Operator::LessThan),
    ];
    (
        label_key(),
        ops,
        label_value(),
        proptest::collection::btree_set(label_value(), 1..4),
        0u32..1000,
    )
        .prop_map(|(key, op, value, set, n)| {
            let values = match op {
                Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => vec![value],
                Operator::In | Operator::NotIn => set.into_iter().collect(),
                Operator::Exists | Operator::DoesNotExist => vec![],
                Operator::GreaterThan | Operator::LessThan => vec![n.to_string()],
            };
            Requirement::new(key, op, values).expect("generated requirement is valid")
        })
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    proptest::collection::vec(requirement(), 0..5).prop_map(LabelSelector::from_requirements)
}

/// Direct evaluation of one requirement, written independently of the library.
fn reference_matches(r: &Requirement, labels: &Labels) -> bool {
    let v = labels.get(r.key());
    let in_set = |x: &String| r.values().iter().any(|y| y == x);
    match r.operator() {
        Operator::Equals | Operator::DoubleEquals | Operator::In => v.is_some_and(in_set),
        Operator::NotEquals | Operator::NotIn => !v.is_some_and(in_set),
        Operator::Exists => v.is_some(),
        Operator::DoesNotExist => v.is_none(),
        Operator::GreaterThan | Operator::LessThan => {
            let bound: i64 = r.values()[0].parse().expect("integer bound");
            match v.and_then(|x| x.parse::<i64>().ok()) {
                None => false,
                Some(x) if r.operator() == Operator::GreaterThan => x > bound,
                Some(x) => x < bound,
            }
        }
    }
}

fn labels_for(sel: &LabelSelector) -> impl Strategy<Value = Labels> + use<> {
    // Keys drawn from the selector (so matches are likely) plus a few others; values drawn
    // from the selector's values, small integers and fresh strings.
    let mut keys: Vec<String> = sel
        .requirements()
        .iter()
        .map(|r| r.key().to_owned())
        .collect();
    keys.push("other".to_owned());
    let mut values: Vec<String> = sel
        .requirements()
        .iter()
        .flat_map(|r| r.values().iter().cloned())
        .collect();
    values.extend(["", "0", "7", "999", "x", "-5"].map(String::from));
    let entry = (
        proptest::sample::select(keys),
        proptest::sample::select(values),
    );
    proptest::collection::vec(entry, 0..6).prop_map(|e| e.into_iter().collect::<BTreeMap<_, _>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn label_parse_never_panics(s in "\\PC{0,40}") {
        let _ = LabelSelector::parse(&s);
    }

    #[test]
    fn label_parse_never_panics_on_grammar_soup(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("in"), Just("notin"), Just("("), Just(")"), Just(","), Just("="),
                Just("=="), Just("!="), Just("!"), Just(">"), Just("<"), Just(" "), Just("a"),
                Just("b/c"), Just("\u{0}"), Just("é"), Just("\t"),
            ],
            0..16,
        )
    ) {
        let s: String = parts.concat();
        if let Ok(sel) = LabelSelector::parse(&s) {
            // Whatever parses renders to something that parses to the same selector.
            prop_assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);
        }
    }

    #[test]
    fn label_display_round_trips(sel in selector()) {
        let text = sel.to_string();
        let reparsed = LabelSelector::parse(&text);
        prop_assert!(reparsed.is_ok(), "{:?} -> {:?}", text, reparsed);
        prop_assert_eq!(reparsed.unwrap(), sel);
    }

    #[test]
    fn label_matching_agrees_with_reference(
        (sel, labels) in selector().prop_flat_map(|s| { let l = labels_for(&s); (Just(s), l) })
    ) {
        let want = sel.requirements().iter().all(|r| reference_matches(r, &labels));
        prop_assert_eq!(sel.matches(&labels), want);
        // Matching through the rendered form gives the same answer.
        prop_assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap().matches(&labels), want);
    }

    #[test]
    fn field_parse_never_panics(s in "\\PC{0,40}") {
        let _ = FieldSelector::parse(&s);
    }

    #[test]
    fn field_display_round_trips(
        terms in proptest::collection::vec(
            ("[a-z]{1,3}(\\.[a-zA-Z]{1,4})?", any::<bool>(), "[a-z,=!\\\\ é]{0,6}"),
            0..5,
        )
    ) {
        let reqs: Vec<FieldRequirement> = terms
            .into_iter()
            .map(|(field, ne, value)| FieldRequirement {
                field,
                operator: if ne { FieldOperator::NotEquals } else { FieldOperator::Equals },
                value,
            })
            .collect();
        let sel = FieldSelector::from_requirements(reqs.clone());
        let text = sel.to_string();
        let reparsed = FieldSelector::parse(&text);
        prop_assert!(reparsed.is_ok(), "{:?} -> {:?}", text, reparsed);
        let key = |r: &FieldRequirement| (r.field.clone(), r.operator == FieldOperator::NotEquals, r.value.clone());
        let mut want: Vec<_> = reqs.iter().map(key).collect();
        let mut got: Vec<_> = reparsed.unwrap().requirements().iter().map(key).collect();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn field_matching_agrees_with_reference(
        terms in proptest::collection::vec(("[ab]", any::<bool>(), "[xy]{0,1}"), 0..4),
        fields in proptest::collection::btree_map("[ab]", "[xy]{0,1}", 0..3),
    ) {
        let reqs: Vec<FieldRequirement> = terms
            .iter()
            .map(|(f, ne, v)| FieldRequirement {
                field: f.clone(),
                operator: if *ne { FieldOperator::NotEquals } else { FieldOperator::Equals },
                value: v.clone(),
            })
            .collect();
        let want = terms.iter().all(|(f, ne, v)| {
            let have = fields.get(f).cloned().unwrap_or_default();
            if *ne { have != *v } else { have == *v }
        });
        prop_assert_eq!(FieldSelector::from_requirements(reqs).matches(&fields), want);
    }
}

#[test]
fn value_sets_render_sorted_without_changing_semantics() {
    let sel = LabelSelector::parse("b notin (z,y), a in (c,b,a)").unwrap();
    assert_eq!(sel.to_string(), "a in (a,b,c),b notin (y,z)");
    let keys: BTreeSet<&str> = sel.requirements().iter().map(Requirement::key).collect();
    assert_eq!(keys, BTreeSet::from(["a", "b"]));
}
