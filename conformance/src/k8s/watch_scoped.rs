//! The table-driven predicate watches of `watcher_tests.go`: `RunTestWatch` (`testWatch`,
//! 5 rows, non-recursive and recursive), `RunTestClusterScopedWatch` (6 rows) and
//! `RunTestNamespaceScopedWatch` (17 rows). Every row is its own case.
//!
//! Each row watches from the resourceVersion of a consistent list, then writes objects one by
//! one and expects, per write, one event (ADDED, MODIFIED, or DELETED carrying the previous
//! object with the new resourceVersion) or silence; at the end nothing else may be pending.

use std::collections::BTreeMap;

use apimachinery::selector::{FieldSelector, LabelSelector, SelectionPredicate};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use object_storage::{ListOptions, WatchEvent};

use super::watch::{cluster_pods, expect_event, put, stop};
use super::{Pods, Store};
use super::{pod, pod_on, pods, rv};
use crate::runner::Case;

pub(super) fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for recursive in [false, true] {
        for row in TestWatchRow::ALL {
            let mode = if recursive {
                "recursive"
            } else {
                "non_recursive"
            };
            cases.push(Case::new(
                format!("k8s::watch::test_watch::{mode}::{}", row.name()),
                &[],
                move |store| test_watch(store, row, recursive),
            ));
        }
    }
    for row in CLUSTER_ROWS {
        cases.push(Case::new(
            format!("k8s::watch::cluster_scoped::{}", row.name),
            &[],
            move |store| scoped_watch(store, row, false),
        ));
    }
    for row in NAMESPACE_ROWS {
        cases.push(Case::new(
            format!("k8s::watch::namespace_scoped::{}", row.name),
            &[],
            move |store| scoped_watch(store, row, true),
        ));
    }
    cases
}

/// What one write must produce on the watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Nothing,
    Added,
    Modified,
    Deleted,
}

/// The expected event for a write whose result is `out`; `previous` is the object as the
/// watcher last knew it (a DELETED event carries it with the new resourceVersion).
fn expected_event(
    expect: Expect,
    out: &Pod,
    previous: Option<&Pod>,
) -> anyhow::Result<Option<WatchEvent<Pod>>> {
    Ok(match expect {
        Expect::Nothing => None,
        Expect::Added => Some(WatchEvent::Added(out.clone())),
        Expect::Modified => Some(WatchEvent::Modified(out.clone())),
        Expect::Deleted => {
            let mut object = previous
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("a DELETED step needs a previous object"))?;
            object.metadata.resource_version = out.metadata.resource_version.clone();
            Some(WatchEvent::Deleted(object))
        }
    })
}

fn with_labels(mut pod: Pod, labels: &[(&str, &str)]) -> Pod {
    pod.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    pod
}

fn field_predicate(selector: &str) -> anyhow::Result<SelectionPredicate> {
    Ok(SelectionPredicate {
        field: FieldSelector::parse(selector)?,
        ..SelectionPredicate::default()
    })
}

#[derive(Clone, Copy, Debug)]
enum TestWatchRow {
    CreateKey,
    KeyUpdatedToMatch,
    Update,
    DeleteBecauseFiltered,
    Filtering,
}

impl TestWatchRow {
    const ALL: [TestWatchRow; 5] = [
        TestWatchRow::CreateKey,
        TestWatchRow::KeyUpdatedToMatch,
        TestWatchRow::Update,
        TestWatchRow::DeleteBecauseFiltered,
        TestWatchRow::Filtering,
    ];

    fn name(self) -> &'static str {
        match self {
            TestWatchRow::CreateKey => "create_a_key",
            TestWatchRow::KeyUpdatedToMatch => "key_updated_to_match_predicate",
            TestWatchRow::Update => "update",
            TestWatchRow::DeleteBecauseFiltered => "delete_because_of_being_filtered",
            TestWatchRow::Filtering => "filtering",
        }
    }

    /// Upstream's `test-ns-<n>` numbering.
    fn number(self) -> u8 {
        match self {
            TestWatchRow::CreateKey => 1,
            TestWatchRow::KeyUpdatedToMatch => 2,
            TestWatchRow::Update => 3,
            TestWatchRow::DeleteBecauseFiltered => 4,
            TestWatchRow::Filtering => 5,
        }
    }

    fn predicate(self) -> anyhow::Result<SelectionPredicate> {
        Ok(match self {
            TestWatchRow::CreateKey | TestWatchRow::Update => SelectionPredicate::everything(),
            TestWatchRow::KeyUpdatedToMatch => field_predicate("spec.nodeName=bar")?,
            TestWatchRow::DeleteBecauseFiltered => field_predicate("spec.nodeName!=bar")?,
            TestWatchRow::Filtering => SelectionPredicate {
                label: LabelSelector::parse("select=true")?,
                ..SelectionPredicate::default()
            },
        })
    }

    /// The writes: `Some(pod)` is a GuaranteedUpdate to it, `None` a delete.
    fn steps(self) -> Vec<(Option<Pod>, Expect)> {
        let base = pod("", "foo");
        let assigned = pod_on("", "foo", "bar");
        let selected = |p: &Pod| with_labels(p.clone(), &[("select", "true")]);
        match self {
            TestWatchRow::CreateKey => vec![(Some(base), Expect::Added)],
            TestWatchRow::KeyUpdatedToMatch => vec![
                (Some(base), Expect::Nothing),
                (Some(assigned), Expect::Added),
            ],
            TestWatchRow::Update => vec![
                (Some(base), Expect::Added),
                (Some(assigned), Expect::Modified),
            ],
            TestWatchRow::DeleteBecauseFiltered => vec![
                (Some(base), Expect::Added),
                (Some(assigned), Expect::Deleted),
            ],
            TestWatchRow::Filtering => vec![
                (Some(selected(&base)), Expect::Added),
                (Some(base.clone()), Expect::Deleted),
                (Some(selected(&base)), Expect::Added),
                (Some(selected(&assigned)), Expect::Modified),
                (None, Expect::Deleted),
            ],
        }
    }
}

/// `testWatch`: one row, watching `/pods/<ns>` (recursive) or `/pods/<ns>/foo`. A write to
/// the sibling namespace `<ns>-bad` must never be seen.
async fn test_watch(store: Store, row: TestWatchRow, recursive: bool) -> anyhow::Result<()> {
    let storage = pods(&store);
    let namespace = format!("test-ns-{}-{recursive}", row.number());
    let key = format!("/pods/{namespace}/foo");
    let watch_key = if recursive {
        format!("/pods/{namespace}")
    } else {
        key.clone()
    };
    let predicate = row.predicate()?;
    let list = storage
        .get_list(
            &watch_key,
            &ListOptions {
                predicate: predicate.clone(),
                recursive,
                ..ListOptions::default()
            },
        )
        .await?;
    let mut watch = storage
        .watch(
            &watch_key,
            &ListOptions {
                resource_version: list.resource_version.to_string(),
                predicate,
                recursive,
                ..ListOptions::default()
            },
        )
        .await?;

    let bad_namespace = format!("{namespace}-bad");
    put(
        &storage,
        &format!("/pods/{bad_namespace}/foo"),
        &pod(&bad_namespace, "foo"),
    )
    .await?;

    let mut previous: Option<Pod> = None;
    for (step, (object, expect)) in row.steps().into_iter().enumerate() {
        let out = match object {
            Some(mut object) => {
                object.metadata.namespace = Some(namespace.clone());
                put(&storage, &key, &object).await?
            }
            None => storage.delete(&key, None, |_| Ok(()), None).await?,
        };
        if let Some(event) = expected_event(expect, &out, previous.as_ref())? {
            expect_event(&mut watch, &event, &format!("step {step} ({expect:?})")).await?;
        }
        previous = Some(out);
    }
    stop(watch, "after the last step").await
}

/// The shape of a written pod (upstream's `basePod`, `basePodUpdated`, `basePodAssigned`).
#[derive(Clone, Copy, Debug)]
enum Shape {
    Base,
    /// `status.phase: Running`.
    Updated,
    /// `spec.nodeName` set.
    Assigned(&'static str),
}

/// One write of a scoped-watch row: name, namespace (empty for cluster-scoped), shape and
/// the expected event.
type Write = (&'static str, &'static str, Shape, Expect);

#[derive(Clone, Copy, Debug)]
struct ScopedRow {
    name: &'static str,
    requested_name: &'static str,
    requested_namespace: &'static str,
    recursive: bool,
    field_selector: &'static str,
    writes: &'static [Write],
}

fn shaped(name: &str, namespace: &str, shape: Shape) -> Pod {
    match shape {
        Shape::Base => pod(namespace, name),
        Shape::Updated => {
            let mut object = pod(namespace, name);
            object.status = Some(PodStatus {
                phase: Some("Running".to_owned()),
                ..PodStatus::default()
            });
            object
        }
        Shape::Assigned(node) => pod_on(namespace, name, node),
    }
}

/// `RunTestClusterScopedWatch` / `RunTestNamespaceScopedWatch`: one row.
async fn scoped_watch(store: Store, row: ScopedRow, namespaced: bool) -> anyhow::Result<()> {
    let storage: Pods = if namespaced {
        pods(&store)
    } else {
        cluster_pods(&store)
    };
    let mut watch_key = "/pods".to_owned();
    if namespaced {
        if !row.requested_namespace.is_empty() {
            watch_key = format!("{watch_key}/{}", row.requested_namespace);
            if !row.requested_name.is_empty() {
                watch_key = format!("{watch_key}/{}", row.requested_name);
            }
        }
    } else if !row.requested_name.is_empty() {
        watch_key = format!("{watch_key}/{}", row.requested_name);
    }
    let predicate = field_predicate(row.field_selector)?;
    let mut options = ListOptions {
        predicate,
        recursive: true,
        ..ListOptions::default()
    };
    let list = storage.get_list("/pods", &options).await?;
    options.resource_version = list.resource_version.to_string();
    options.recursive = row.recursive;
    let mut watch = storage.watch(&watch_key, &options).await?;

    let mut current: BTreeMap<String, Pod> = BTreeMap::new();
    for (step, &(name, namespace, shape, expect)) in row.writes.iter().enumerate() {
        let (key, id) = if namespaced {
            (
                format!("pods/{namespace}/{name}"),
                format!("{namespace}/{name}"),
            )
        } else {
            (format!("pods/{name}"), name.to_owned())
        };
        let out = put(&storage, &key, &shaped(name, namespace, shape)).await?;
        let expected = if expect == Expect::Deleted {
            let previous = current.remove(&id);
            expected_event(expect, &out, previous.as_ref())?
        } else {
            current.insert(id.clone(), out.clone());
            expected_event(expect, &out, None)?
        };
        if let Some(event) = expected {
            expect_event(
                &mut watch,
                &event,
                &format!("write {step} of {id} ({shape:?}, rv {})", rv(&out)),
            )
            .await?;
        }
    }
    stop(watch, "after the last write").await
}

use Expect::{Added as A, Deleted as D, Modified as M, Nothing as N};
use Shape::{Assigned as Asg, Base as B, Updated as U};

const fn row(
    name: &'static str,
    requested_name: &'static str,
    requested_namespace: &'static str,
    recursive: bool,
    field_selector: &'static str,
    writes: &'static [Write],
) -> ScopedRow {
    ScopedRow {
        name,
        requested_name,
        requested_namespace,
        recursive,
        field_selector,
        writes,
    }
}

/// `RunTestClusterScopedWatch` (keys `/pods/<name>`).
const CLUSTER_ROWS: [ScopedRow; 6] = [
    row(
        "t1_no_name_no_selector",
        "",
        "",
        true,
        "",
        &[
            ("t1-foo1", "", B, A),
            ("t1-foo1", "", U, M),
            ("t1-foo2", "", Asg("t1-bar1"), A),
        ],
    ),
    row(
        "t2_no_name_node_selector",
        "",
        "",
        true,
        "spec.nodeName=t2-bar1",
        &[("t2-foo1", "", B, N), ("t2-foo1", "", Asg("t2-bar1"), A)],
    ),
    row(
        "t3_no_name_node_selector_filters_out",
        "",
        "",
        true,
        "spec.nodeName!=t3-bar1",
        &[
            ("t3-foo1", "", B, A),
            ("t3-foo2", "", B, A),
            ("t3-foo1", "", U, M),
            ("t3-foo1", "", Asg("t3-bar1"), D),
        ],
    ),
    row(
        "t4_name_name_selector",
        "t4-foo1",
        "",
        false,
        "metadata.name=t4-foo1",
        &[
            ("t4-foo1", "", B, A),
            ("t4-foo2", "", B, N),
            ("t4-foo1", "", U, M),
            ("t4-foo2", "", U, N),
        ],
    ),
    row(
        "t5_name_name_and_node_selector",
        "t5-foo1",
        "",
        false,
        "metadata.name=t5-foo1,spec.nodeName=t5-bar1",
        &[
            ("t5-foo1", "", B, N),
            ("t5-foo2", "", B, N),
            ("t5-foo1", "", U, N),
            ("t5-foo2", "", U, N),
            ("t5-foo1", "", Asg("t5-bar1"), A),
        ],
    ),
    row(
        "t6_name_name_selector_node_filters_out",
        "t6-foo1",
        "",
        false,
        "spec.nodeName!=t6-bar1,metadata.name=t6-foo1",
        &[
            ("t6-foo1", "", B, A),
            ("t6-foo2", "", B, N),
            ("t6-foo1", "", U, M),
            ("t6-foo1", "", Asg("t6-bar1"), D),
            ("t6-foo2", "", Asg("t6-bar1"), N),
        ],
    ),
];

/// `RunTestNamespaceScopedWatch` (keys `/pods/<ns>/<name>`); upstream numbers them t1-t19
/// without t13 and t14.
const NAMESPACE_ROWS: [ScopedRow; 17] = [
    row(
        "t1_no_name_no_namespace_no_selector",
        "",
        "",
        true,
        "",
        &[
            ("t1-foo1", "t1-ns1", B, A),
            ("t1-foo2", "t1-ns2", B, A),
            ("t1-foo1", "t1-ns1", U, M),
            ("t1-foo2", "t1-ns2", U, M),
        ],
    ),
    row(
        "t2_no_name_no_namespace_namespace_selector",
        "",
        "",
        true,
        "metadata.namespace=t2-ns1",
        &[
            ("t2-foo1", "t2-ns1", B, A),
            ("t2-foo1", "t2-ns2", B, N),
            ("t2-foo1", "t2-ns1", U, M),
            ("t2-foo1", "t2-ns2", U, N),
        ],
    ),
    row(
        "t3_no_name_no_namespace_node_selector",
        "",
        "",
        true,
        "spec.nodeName=t3-bar1",
        &[
            ("t3-foo1", "t3-ns1", B, N),
            ("t3-foo2", "t3-ns2", B, N),
            ("t3-foo1", "t3-ns1", Asg("t3-bar1"), A),
            ("t3-foo2", "t3-ns2", Asg("t3-bar1"), A),
        ],
    ),
    row(
        "t4_no_name_no_namespace_node_selector_filters_out",
        "",
        "",
        true,
        "spec.nodeName!=t4-bar1",
        &[
            ("t4-foo1", "t4-ns1", B, A),
            ("t4-foo2", "t4-ns1", B, A),
            ("t4-foo1", "t4-ns1", U, M),
            ("t4-foo1", "t4-ns1", Asg("t4-bar1"), D),
        ],
    ),
    row(
        "t5_no_name_namespace_no_selector",
        "",
        "t5-ns1",
        true,
        "",
        &[
            ("t5-foo1", "t5-ns1", B, A),
            ("t5-foo1", "t5-ns2", B, N),
            ("t5-foo2", "t5-ns1", B, A),
            ("t5-foo1", "t5-ns1", U, M),
            ("t5-foo1", "t5-ns2", U, N),
        ],
    ),
    row(
        "t6_no_name_namespace_matching_namespace_selector",
        "",
        "t6-ns1",
        true,
        "metadata.namespace=t6-ns1",
        &[
            ("t6-foo1", "t6-ns1", B, A),
            ("t6-foo1", "t6-ns2", B, N),
            ("t6-foo1", "t6-ns1", U, M),
        ],
    ),
    row(
        "t7_no_name_namespace_non_matching_namespace_selector",
        "",
        "t7-ns1",
        true,
        "metadata.namespace=t7-ns2",
        &[
            ("t7-foo1", "t7-ns1", B, N),
            ("t7-foo1", "t7-ns2", B, N),
            ("t7-foo1", "t7-ns1", U, N),
            ("t7-foo1", "t7-ns2", U, N),
        ],
    ),
    row(
        "t8_no_name_namespace_node_selector",
        "",
        "t8-ns1",
        true,
        "spec.nodeName=t8-bar2",
        &[
            ("t8-foo1", "t8-ns1", B, N),
            ("t8-foo1", "t8-ns1", Asg("t8-bar1"), N),
            ("t8-foo1", "t8-ns2", Asg("t8-bar2"), N),
            ("t8-foo1", "t8-ns1", Asg("t8-bar2"), A),
        ],
    ),
    row(
        "t9_no_name_namespace_node_selector_filters_out",
        "",
        "t9-ns2",
        true,
        "spec.nodeName!=t9-bar1",
        &[
            ("t9-foo1", "t9-ns1", B, N),
            ("t9-foo1", "t9-ns2", B, A),
            ("t9-foo1", "t9-ns2", Asg("t9-bar1"), D),
            ("t9-foo1", "t9-ns2", Asg("t9-bar2"), A),
        ],
    ),
    row(
        "t10_name_no_namespace_name_selector",
        "t10-foo1",
        "",
        true,
        "metadata.name=t10-foo1",
        &[
            ("t10-foo1", "t10-ns1", B, A),
            ("t10-foo1", "t10-ns2", B, A),
            ("t10-foo2", "t10-ns1", B, N),
            ("t10-foo1", "t10-ns1", U, M),
            ("t10-foo1", "t10-ns1", Asg("t10-bar1"), M),
        ],
    ),
    row(
        "t11_name_no_namespace_name_and_namespace_selector",
        "t11-foo1",
        "",
        true,
        "metadata.name=t11-foo1,metadata.namespace=t11-ns1",
        &[
            ("t11-foo1", "t11-ns1", B, A),
            ("t11-foo2", "t11-ns1", B, N),
            ("t11-foo1", "t11-ns2", B, N),
            ("t11-foo1", "t11-ns1", U, M),
            ("t11-foo1", "t11-ns1", Asg("t11-bar1"), M),
        ],
    ),
    row(
        "t12_name_no_namespace_name_and_node_selector",
        "t12-foo1",
        "",
        true,
        "metadata.name=t12-foo1,spec.nodeName=t12-bar1",
        &[
            ("t12-foo1", "t12-ns1", B, N),
            ("t12-foo1", "t12-ns1", U, N),
            ("t12-foo1", "t12-ns1", Asg("t12-bar1"), A),
        ],
    ),
    row(
        "t15_name_no_namespace_name_selector_node_filters_out",
        "t15-foo1",
        "",
        true,
        "spec.nodeName!=t15-bar1,metadata.name=t15-foo1",
        &[
            ("t15-foo1", "t15-ns1", B, A),
            ("t15-foo2", "t15-ns1", B, N),
            ("t15-foo1", "t15-ns1", U, M),
            ("t15-foo1", "t15-ns1", Asg("t15-bar1"), D),
            ("t15-foo1", "t15-ns1", Asg("t15-bar2"), A),
        ],
    ),
    row(
        "t16_name_namespace_name_selector",
        "t16-foo1",
        "t16-ns1",
        false,
        "metadata.name=t16-foo1",
        &[
            ("t16-foo1", "t16-ns1", B, A),
            ("t16-foo2", "t16-ns1", B, N),
            ("t16-foo1", "t16-ns1", U, M),
            ("t16-foo1", "t16-ns1", Asg("t16-bar1"), M),
        ],
    ),
    row(
        "t17_name_namespace_name_and_namespace_selector",
        "t17-foo2",
        "t17-ns1",
        false,
        "metadata.name=t17-foo2,metadata.namespace=t17-ns1",
        &[
            ("t17-foo1", "t17-ns1", B, N),
            ("t17-foo2", "t17-ns1", B, A),
            ("t17-foo1", "t17-ns1", U, N),
            ("t17-foo2", "t17-ns1", Asg("t17-bar1"), M),
        ],
    ),
    row(
        "t18_name_namespace_name_namespace_and_node_selector",
        "t18-foo1",
        "t18-ns1",
        false,
        "metadata.name=t18-foo1,metadata.namespace=t18-ns1,spec.nodeName=t18-bar1",
        &[
            ("t18-foo1", "t18-ns1", B, N),
            ("t18-foo2", "t18-ns1", B, N),
            ("t18-foo1", "t18-ns2", B, N),
            ("t18-foo1", "t18-ns1", U, N),
            ("t18-foo1", "t18-ns1", Asg("t18-bar1"), A),
        ],
    ),
    row(
        "t19_name_namespace_name_and_namespace_selector_node_filters_out",
        "t19-foo2",
        "t19-ns1",
        false,
        "spec.nodeName!=t19-bar1,metadata.name=t19-foo2,metadata.namespace=t19-ns1",
        &[
            ("t19-foo1", "t19-ns1", B, N),
            ("t19-foo2", "t19-ns2", B, N),
            ("t19-foo2", "t19-ns1", B, A),
            ("t19-foo2", "t19-ns1", U, M),
            ("t19-foo2", "t19-ns1", Asg("t19-bar1"), D),
        ],
    ),
];
