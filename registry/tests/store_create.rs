//! Store create: system metadata, validation, namespaces, AlreadyExists, generateName, dry run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use registry::{CreateOptions, UpdateOptions};
use serde_json::json;
use store_support::*;

async fn create_sets_system_metadata(b: Backend) {
    let store = configmaps(&b);
    let created = store
        .create(
            "ns",
            configmap("ns", "c1", &[("k", "v")]),
            &CreateOptions::default(),
        )
        .await
        .expect("create");
    let meta = &created.metadata;
    assert_eq!(meta.uid.as_deref().map(str::len), Some(36));
    assert!(meta.creation_timestamp.is_some());
    assert!(meta.resource_version.as_deref().is_some_and(|rv| rv != "0"));
    assert_eq!(meta.generation, None, "configmaps do not track generation");
    let json = serde_json::to_value(&created).unwrap();
    let ts = json["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.len() == 20,
        "RFC 3339 seconds: {ts}"
    );
    let read = store.get("ns", "c1", "").await.expect("get");
    assert_eq!(read, created);

    // A custom kind tracks generation and drops status on create.
    let gadgets = gadgets(&b);
    let g = gadgets
        .create(
            "ns",
            gadget(
                "ns",
                "g1",
                json!({"size": 1}),
                Some(json!({"phase": "Running"})),
            ),
            &CreateOptions::default(),
        )
        .await
        .expect("create gadget");
    assert_eq!(g.metadata.generation, Some(1));
    assert!(g.data.get("status").is_none());
    // Client-set uid is replaced.
    let mut cm = configmap("ns", "c2", &[]);
    cm.metadata.uid = Some("client-uid".into());
    let created = store
        .create("ns", cm, &CreateOptions::default())
        .await
        .unwrap();
    assert_ne!(created.metadata.uid.as_deref(), Some("client-uid"));
}

async fn create_validation_errors(b: Backend) {
    let store = configmaps(&b);
    let error = assert_error(
        store
            .create(
                "ns",
                configmap("ns", "Bad_Name", &[]),
                &CreateOptions::default(),
            )
            .await,
        422,
        "Invalid",
        &[
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain",
        ],
    );
    assert_eq!(
        causes(&error),
        vec![("FieldValueInvalid".to_owned(), "metadata.name".to_owned())]
    );
    let error = assert_error(
        store
            .create(
                "ns",
                configmap("ns", "c", &[("bad key", "v"), ("..x", "v")]),
                &CreateOptions::default(),
            )
            .await,
        422,
        "Invalid",
        &[
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters",
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
        ],
    );
    assert_eq!(causes(&error).len(), 2);
    let big = "x".repeat(1024 * 1024 + 1);
    assert_error(
        store
            .create(
                "ns",
                configmap("ns", "big", &[("k", &big)]),
                &CreateOptions::default(),
            )
            .await,
        422,
        "Invalid",
        &["Too long: may not be more than 1048576 bytes"],
    );
    // Labels and annotations.
    let mut cm = configmap("ns", "labels", &[]);
    cm.metadata.labels = Some([("bad key!".to_owned(), "v".to_owned())].into());
    let error = assert_error(
        store.create("ns", cm, &CreateOptions::default()).await,
        422,
        "Invalid",
        &["metadata.labels: Invalid value: \"bad key!\""],
    );
    assert_eq!(causes(&error)[0].1, "metadata.labels");
    // Neither name nor generateName.
    assert_error(
        store
            .create("ns", configmap("ns", "", &[]), &CreateOptions::default())
            .await,
        422,
        "Invalid",
        &["metadata.name: Required value: name or generateName is required"],
    );
    // Nothing was stored.
    let list = store.list("ns", &Default::default()).await.unwrap();
    assert!(list.items.is_empty());

    // Secrets: required keys of the well-known types.
    let secrets = secrets(&b);
    let tls = Secret {
        metadata: meta("ns", "tls"),
        type_: Some("kubernetes.io/tls".into()),
        data: Some([("tls.crt".to_owned(), ByteString(b"c".to_vec()))].into()),
        ..Secret::default()
    };
    let error = assert_error(
        secrets.create("ns", tls, &CreateOptions::default()).await,
        422,
        "Invalid",
        &["Secret \"tls\" is invalid: data[tls.key]: Required value"],
    );
    assert_eq!(
        causes(&error),
        vec![("FieldValueRequired".into(), "data[tls.key]".into())]
    );
    // stringData is merged into data; type defaults to Opaque.
    let s = Secret {
        metadata: meta("ns", "s"),
        string_data: Some([("user".to_owned(), "admin".to_owned())].into()),
        ..Secret::default()
    };
    let s = secrets
        .create("ns", s, &CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(s.data.unwrap()["user"].0, b"admin");
    assert!(s.string_data.is_none());

    // Leases.
    let leases = leases(&b);
    let lease = Lease {
        metadata: meta("ns", "l"),
        spec: Some(LeaseSpec {
            lease_duration_seconds: Some(0),
            lease_transitions: Some(-1),
            ..LeaseSpec::default()
        }),
    };
    let error = assert_error(
        leases.create("ns", lease, &CreateOptions::default()).await,
        422,
        "Invalid",
        &[
            "Lease.coordination.k8s.io \"l\" is invalid: [spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0, spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0]",
        ],
    );
    assert_eq!(causes(&error).len(), 2);

    // Namespaces: DNS labels.
    let namespaces = namespaces(&b);
    let ns = Namespace {
        metadata: meta("", "a.b"),
        ..Namespace::default()
    };
    assert_error(
        namespaces.create("", ns, &CreateOptions::default()).await,
        422,
        "Invalid",
        &[
            "Namespace \"a.b\" is invalid: metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label",
        ],
    );
    let ns = namespaces
        .create(
            "",
            Namespace {
                metadata: meta("", "team-a"),
                ..Namespace::default()
            },
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
}

async fn create_namespace_rules(b: Backend) {
    let store = configmaps(&b);
    assert_error(
        store
            .create(
                "other",
                configmap("ns", "c", &[]),
                &CreateOptions::default(),
            )
            .await,
        400,
        "BadRequest",
        &["the namespace of the provided object does not match the namespace sent on the request"],
    );
    // The request namespace fills an empty body namespace.
    let created = store
        .create("ns", configmap("", "c", &[]), &CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("ns"));
    // A namespaced kind needs a namespace.
    assert_error(
        store
            .create("", configmap("", "c", &[]), &CreateOptions::default())
            .await,
        422,
        "Invalid",
        &["metadata.namespace: Required value"],
    );
    assert_error(
        store.get("", "c", "").await,
        400,
        "BadRequest",
        &["Namespace parameter required."],
    );
    assert_error(
        store.get("ns", "", "").await,
        400,
        "BadRequest",
        &["Name parameter required."],
    );
    assert_error(
        store.get("ns", "..", "").await,
        400,
        "BadRequest",
        &["Name parameter invalid: \"..\": may not be '..'"],
    );
    // A cluster-scoped kind clears the body namespace.
    let namespaces = namespaces(&b);
    let ns = namespaces
        .create(
            "",
            Namespace {
                metadata: meta("x", "cluster"),
                ..Namespace::default()
            },
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(ns.metadata.namespace, None);
    assert_eq!(
        namespaces.key("", "cluster").unwrap(),
        "/namespaces/cluster"
    );
    assert_eq!(store.key("ns", "c").unwrap(), "/configmaps/ns/c");
}

async fn create_already_exists(b: Backend) {
    let store = configmaps(&b);
    store
        .create("ns", configmap("ns", "c", &[]), &CreateOptions::default())
        .await
        .unwrap();
    let error = assert_error(
        store
            .create("ns", configmap("ns", "c", &[]), &CreateOptions::default())
            .await,
        409,
        "AlreadyExists",
        &[],
    );
    assert_eq!(error.message, "configmaps \"c\" already exists");
    // Being deleted: an object held by a finalizer.
    let mut held = configmap("ns", "held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    store
        .create("ns", held, &CreateOptions::default())
        .await
        .unwrap();
    let result = store
        .delete("ns", "held", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(!result.deleted);
    let error = assert_error(
        store
            .create(
                "ns",
                configmap("ns", "held", &[]),
                &CreateOptions::default(),
            )
            .await,
        409,
        "AlreadyExists",
        &[],
    );
    assert_eq!(
        error.message,
        "object is being deleted: configmaps \"held\" already exists"
    );
}

async fn create_generate_name(b: Backend) {
    let store = configmaps(&b);
    let mut cm = configmap("ns", "", &[]);
    cm.metadata.generate_name = Some("web-".into());
    let created = store
        .create("ns", cm.clone(), &CreateOptions::default())
        .await
        .unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");

    // Conflicts are retried with fresh names.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let retrying = configmaps(&b).with_name_generator(Arc::new(move |prefix: &str| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if n < 3 {
            format!("{prefix}taken")
        } else {
            format!("{prefix}free{n}")
        }
    }));
    retrying
        .create(
            "ns",
            configmap("ns", "web-taken", &[]),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    calls.store(0, Ordering::SeqCst);
    let created = retrying
        .create("ns", cm.clone(), &CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("web-free3"));
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // Always the same name: 8 attempts, then 409 with the generate-name variant.
    let stuck_calls = Arc::new(AtomicUsize::new(0));
    let counter = stuck_calls.clone();
    let stuck = configmaps(&b).with_name_generator(Arc::new(move |prefix: &str| {
        counter.fetch_add(1, Ordering::SeqCst);
        format!("{prefix}taken")
    }));
    let error = assert_error(
        stuck.create("ns", cm, &CreateOptions::default()).await,
        409,
        "AlreadyExists",
        &[],
    );
    assert_eq!(
        error.message,
        "configmaps \"web-taken\" already exists, the server was not able to generate a unique name for the object"
    );
    assert_eq!(error.details.unwrap().retry_after_seconds, Some(1));
    assert_eq!(stuck_calls.load(Ordering::SeqCst), 8);

    // An invalid generateName is a 422 on metadata.generateName.
    let mut bad = configmap("ns", "", &[]);
    bad.metadata.generate_name = Some("Bad_".into());
    let error = assert_error(
        store.create("ns", bad, &CreateOptions::default()).await,
        422,
        "Invalid",
        &["metadata.generateName: Invalid value: \"Bad_\""],
    );
    assert!(
        causes(&error)
            .iter()
            .any(|(_, f)| f == "metadata.generateName")
    );
}

async fn create_dry_run(b: Backend) {
    let store = configmaps(&b);
    let dry = CreateOptions {
        dry_run: true,
        ..CreateOptions::default()
    };
    let out = store
        .create("ns", configmap("ns", "c", &[("k", "v")]), &dry)
        .await
        .unwrap();
    assert!(out.metadata.uid.is_some());
    assert!(out.metadata.creation_timestamp.is_some());
    assert_error(
        store.get("ns", "c", "").await,
        404,
        "NotFound",
        &["configmaps \"c\" not found"],
    );
    // Full validation still runs.
    assert_error(
        store.create("ns", configmap("ns", "Bad", &[]), &dry).await,
        422,
        "Invalid",
        &["metadata.name"],
    );
    // And AlreadyExists too.
    store
        .create("ns", configmap("ns", "c", &[]), &CreateOptions::default())
        .await
        .unwrap();
    assert_error(
        store.create("ns", configmap("ns", "c", &[]), &dry).await,
        409,
        "AlreadyExists",
        &["configmaps \"c\" already exists"],
    );
    // Admission runs on the prepared object.
    let deny = CreateOptions {
        dry_run: false,
        validation: Some(Arc::new(
            |_: &k8s_openapi::api::core::v1::ConfigMap,
             _: Option<&k8s_openapi::api::core::v1::ConfigMap>| {
                Err(apimachinery::status::ApiError::forbidden(
                    &apimachinery::status::GroupResource::new("", "configmaps"),
                    "d",
                    "denied by policy",
                ))
            },
        )),
        ..CreateOptions::default()
    };
    assert_error(
        store.create("ns", configmap("ns", "d", &[]), &deny).await,
        403,
        "Forbidden",
        &["configmaps \"d\" is forbidden: denied by policy"],
    );
    assert_error(store.get("ns", "d", "").await, 404, "NotFound", &[]);
    let _ = UpdateOptions::<k8s_openapi::api::core::v1::ConfigMap>::default();
}

async fn create_omits_empty_collections(b: Backend) {
    let store = configmaps(&b);
    let mut cm = configmap("ns", "empty", &[]);
    cm.metadata.labels = Some(Default::default());
    cm.metadata.annotations = Some(Default::default());
    cm.metadata.finalizers = Some(Vec::new());
    cm.data = Some(Default::default());
    cm.binary_data = Some(Default::default());
    let created = store
        .create("ns", cm, &CreateOptions::default())
        .await
        .expect("create");
    let json = serde_json::to_value(&created).unwrap();
    for field in ["labels", "annotations", "finalizers"] {
        assert!(json["metadata"].get(field).is_none(), "{field}: {json}");
    }
    assert!(
        json.get("data").is_none() && json.get("binaryData").is_none(),
        "{json}"
    );
}

both_backends!(
    create_omits_empty_collections,
    create_sets_system_metadata,
    create_validation_errors,
    create_namespace_rules,
    create_already_exists,
    create_generate_name,
    create_dry_run,
);
