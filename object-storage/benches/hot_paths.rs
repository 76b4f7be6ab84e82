//! Micro-benchmarks of the pure functions on the request path of `object-storage`: selector parsing
//! and matching, continue-token encode/decode, and object encode/decode with resourceVersion
//! injection. Run with `cargo bench -p object-storage --bench hot_paths`.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::continue_token::{ContinueError, decode_continue, encode_continue};
use apimachinery::selector::{
    FieldSelector, Fields, LabelSelector, Labels, SelectionPredicate, SelectorError,
};
use divan::{Bencher, black_box};
use k8s_openapi::api::core::v1::{Container, ContainerPort, EnvVar, Pod, PodSpec};
use object_storage::{Codec, Storage};
use storage_api::KeyValue;

fn main() {
    divan::main();
}

/// The value of a set-up step that cannot fail with the constant inputs used here.
fn ok<T, E: std::fmt::Debug>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("benchmark set-up failed: {error:?}"),
    }
}

const LABEL_SELECTOR: &str = "app=web,tier in (frontend,backend),!canary,environment!=dev";
const FIELD_SELECTOR: &str = "metadata.namespace=prod,status.phase!=Failed";

fn labels(matching: bool) -> Labels {
    let mut labels = BTreeMap::from([
        ("app".to_owned(), "web".to_owned()),
        ("tier".to_owned(), "frontend".to_owned()),
        ("environment".to_owned(), "prod".to_owned()),
        ("pod-template-hash".to_owned(), "7d9f8b6c5d".to_owned()),
        ("version".to_owned(), "v1.2.3".to_owned()),
    ]);
    if !matching {
        labels.insert("canary".to_owned(), "true".to_owned());
    }
    labels
}

fn fields() -> Fields {
    BTreeMap::from([
        (
            "metadata.name".to_owned(),
            "web-7d9f8b6c5d-x2x9q".to_owned(),
        ),
        ("metadata.namespace".to_owned(), "prod".to_owned()),
        ("status.phase".to_owned(), "Running".to_owned()),
    ])
}

mod selector {
    use super::*;

    #[divan::bench]
    fn parse_label_selector() -> Result<LabelSelector, SelectorError> {
        LabelSelector::parse(black_box(LABEL_SELECTOR))
    }

    #[divan::bench]
    fn parse_field_selector() -> Result<FieldSelector, SelectorError> {
        FieldSelector::parse(black_box(FIELD_SELECTOR))
    }

    #[divan::bench(args = [true, false])]
    fn match_labels(bencher: Bencher, matching: bool) {
        let selector = ok(LabelSelector::parse(LABEL_SELECTOR));
        let labels = labels(matching);
        bencher.bench_local(|| black_box(&selector).matches(black_box(&labels)));
    }

    #[divan::bench]
    fn match_predicate(bencher: Bencher) {
        let predicate = SelectionPredicate {
            label: ok(LabelSelector::parse(LABEL_SELECTOR)),
            field: ok(FieldSelector::parse(FIELD_SELECTOR)),
            ..SelectionPredicate::default()
        };
        let (labels, fields) = (labels(true), fields());
        bencher
            .bench_local(|| black_box(&predicate).matches(black_box(&labels), black_box(&fields)));
    }
}

mod continue_token {
    use super::*;

    const PREFIX: &str = "/registry/pods/prod/";
    const KEY: &str = "/registry/pods/prod/web-7d9f8b6c5d-x2x9q\u{0}";

    #[divan::bench]
    fn encode() -> Result<String, ContinueError> {
        encode_continue(black_box(KEY), black_box(PREFIX), black_box(123_456_789))
    }

    #[divan::bench]
    fn decode(bencher: Bencher) {
        let token = ok(encode_continue(KEY, PREFIX, 123_456_789));
        bencher.bench_local(|| decode_continue(black_box(&token), black_box(PREFIX)));
    }
}

mod object {
    use super::*;

    /// A Deployment-made Pod of typical size (about 1.5 KiB of JSON).
    fn pod() -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-7d9f8b6c5d-x2x9q".to_owned());
        pod.metadata.namespace = Some("prod".to_owned());
        pod.metadata.uid = Some("5f0c4b8e-2d47-4a8c-9a57-0f3c1f0f9d11".to_owned());
        pod.metadata.resource_version = Some("123456".to_owned());
        pod.metadata.labels = Some(labels(true));
        pod.metadata.annotations = Some(BTreeMap::from([(
            "kubectl.kubernetes.io/restartedAt".to_owned(),
            "2024-01-01T00:00:00Z".to_owned(),
        )]));
        let container = |name: &str, port: i32| Container {
            name: name.to_owned(),
            image: Some(format!("registry.example/{name}:1.2.3")),
            args: Some(vec!["--listen=:8080".to_owned(), "--verbose".to_owned()]),
            env: Some(
                (0..6)
                    .map(|i| EnvVar {
                        name: format!("VAR_{i}"),
                        value: Some(format!("value-{i}")),
                        ..EnvVar::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![ContainerPort {
                container_port: port,
                name: Some("http".to_owned()),
                ..ContainerPort::default()
            }]),
            ..Container::default()
        };
        pod.spec = Some(PodSpec {
            containers: vec![container("web", 8080), container("sidecar", 9090)],
            node_name: Some("node-17".to_owned()),
            service_account_name: Some("web".to_owned()),
            ..PodSpec::default()
        });
        pod
    }

    fn codec() -> Codec<Pod> {
        let store = Arc::new(backend_memory::MemoryStore::default());
        Storage::new(store, Arc::new(Pod::default)).codec().clone()
    }

    /// Object to stored JSON (resourceVersion and selfLink stripped).
    #[divan::bench]
    fn encode(bencher: Bencher) {
        let (codec, pod) = (codec(), pod());
        bencher.bench_local(|| codec.encode(black_box(&pod)));
    }

    /// Stored bytes to object with the key's mod revision injected as resourceVersion.
    #[divan::bench]
    fn decode_with_resource_version(bencher: Bencher) {
        let codec = codec();
        let value = ok(codec.encode(&pod()));
        let kv = KeyValue {
            key: "/registry/pods/prod/web-7d9f8b6c5d-x2x9q".to_owned(),
            value: value.into(),
            create_revision: 100,
            mod_revision: 123_456,
        };
        bencher.bench_local(|| codec.decode(black_box(&kv)));
    }

    /// Setting resourceVersion alone (what every read does after decoding).
    #[divan::bench]
    fn set_resource_version(bencher: Bencher) {
        let mut pod = pod();
        let mut revision = 1u64;
        bencher.bench_local(|| {
            revision += 1;
            Codec::<Pod>::set_resource_version(black_box(&mut pod), revision);
        });
    }
}
