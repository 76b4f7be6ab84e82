//! End to end: the real `kubectl` against the `apiserver` binary (SQLite backend in a temp
//! dir), through the everyday commands: create, get, apply, patch, label, annotate, replace,
//! delete, explain, describe, watch.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ServerProcess, kubectl_binaries};

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
    dir: PathBuf,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .current_dir(&self.dir);
        command
    }

    fn run_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(mut stdin) = child.stdin.take() {
            if let Some(input) = input {
                stdin.write_all(input.as_bytes()).expect("write stdin");
            }
        }
        let out = child.wait_with_output().expect("kubectl output");
        let output = Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "$ kubectl {}\n{}{}",
            args.join(" "),
            output.stdout,
            output.stderr
        );
        output
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run_with_input(args, None);
        assert!(out.ok, "kubectl {} failed: {}", args.join(" "), out.stderr);
        out.stdout
    }

    /// Runs and requires failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run_with_input(args, None);
        assert!(
            !out.ok,
            "kubectl {} should fail: {}",
            args.join(" "),
            out.stdout
        );
        out.stderr
    }
}

/// A fresh `apiserver` (SQLite in a temporary directory) and a kubectl working in a directory
/// of its own with its own cache. Fields drop in order: the server before its directory.
struct Session {
    server: ServerProcess,
    k: Kubectl,
    work: PathBuf,
    temp: tempfile::TempDir,
}

impl Session {
    fn start(binary: PathBuf) -> Self {
        let temp = tempfile::tempdir().expect("tempdir");
        let work = temp.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let server = ServerProcess::start(&temp.path().join("data"), &[]);
        let k = Kubectl {
            binary,
            kubeconfig: server.kubeconfig.clone(),
            cache: temp.path().join("cache"),
            dir: work.clone(),
        };
        Session {
            server,
            k,
            work,
            temp,
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write manifest");
}

const CM: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: app-cfg
  labels:
    app: demo
data:
  a: \"1\"
  b: \"2\"
";

const CM2: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: app-cfg
  labels:
    app: demo
data:
  a: \"1\"
  c: \"3\"
";

const CM_SSA: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa-cfg
data:
  k: one
";

const CM_SSA2: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa-cfg
data:
  k: two
";

const WIDGET: &str = "apiVersion: apps.example.io/v1beta1
kind: Widget
metadata:
  name: w1
spec:
  title: Hello
";

const WIDGET2: &str = "apiVersion: apps.example.io/v1
kind: Widget
metadata:
  name: w1
spec:
  displayName: Hello again
  description: applied in v1
";

const BAD: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: bad
data:
  a: b
bogus: 1
";

/// The everyday commands with every pinned kubectl installed (1.27 to 1.33 where present).
#[test]
fn kubectl_end_to_end() {
    for binary in kubectl_binaries() {
        eprintln!("== {}", binary.display());
        end_to_end(binary);
    }
}

fn end_to_end(binary: PathBuf) {
    let Session {
        temp: _temp,
        server,
        k,
        work,
    } = Session::start(binary);
    write(&work, "cm.yaml", CM);
    write(&work, "cm2.yaml", CM2);
    write(&work, "ssa.yaml", CM_SSA);
    write(&work, "ssa2.yaml", CM_SSA2);
    write(&work, "w.yaml", WIDGET);
    write(&work, "w2.yaml", WIDGET2);
    write(&work, "bad.yaml", BAD);

    // Discovery.
    let resources = k.ok(&["api-resources"]);
    for expected in [
        "configmaps",
        "namespaces",
        "secrets",
        "events",
        "leases",
        "widgets",
    ] {
        assert!(
            resources.contains(expected),
            "api-resources lacks {expected}"
        );
    }
    // kubectl 1.27 prints the whole version.Info, later ones the short form.
    let version = k.ok(&["version"]);
    assert!(
        version.contains("Server Version: v1.32") || version.contains(r#"GitVersion:"v1.32.0""#),
        "{version}"
    );
    assert!(k.ok(&["get", "namespaces"]).contains("default"));

    // create -f, get (plain, -o yaml), apply twice, server-side apply twice.
    assert!(
        k.ok(&["create", "-f", "cm.yaml"])
            .contains("configmap/app-cfg created")
    );
    assert!(k.ok(&["get", "cm"]).contains("app-cfg"));
    assert!(
        k.ok(&["get", "cm", "app-cfg", "-o", "yaml"])
            .contains("a: \"1\"")
    );
    k.ok(&["apply", "-f", "cm.yaml"]);
    assert!(k.ok(&["apply", "-f", "cm2.yaml"]).contains("configured"));
    assert_eq!(
        k.ok(&["get", "cm", "app-cfg", "-o", "jsonpath={.data}"]),
        r#"{"a":"1","c":"3"}"#
    );
    assert!(
        k.ok(&["apply", "--server-side", "-f", "ssa.yaml"])
            .contains("serverside-applied")
    );
    k.ok(&["apply", "--server-side", "-f", "ssa2.yaml"]);
    assert_eq!(
        k.ok(&["get", "cm", "ssa-cfg", "-o", "jsonpath={.data.k}"]),
        "two"
    );
    let managed = k.ok(&[
        "get",
        "cm",
        "ssa-cfg",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(managed.contains("manager: kubectl") && managed.contains("operation: Apply"));

    // Strict field validation rejects unknown fields; warn prints a warning.
    let err = k.fails(&["create", "-f", "bad.yaml"]);
    assert!(err.contains("unknown field \"bogus\""), "{err}");
    let out = k.run_with_input(&["create", "-f", "bad.yaml", "--validate=warn"], None);
    assert!(out.ok && out.stderr.contains("unknown field \"bogus\""));

    // patch (strategic, merge, json), label, annotate.
    k.ok(&["patch", "cm", "app-cfg", "-p", r#"{"data":{"x":"y"}}"#]);
    k.ok(&[
        "patch",
        "cm",
        "app-cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"x":"z"}}"#,
    ]);
    assert_eq!(
        k.ok(&["get", "cm", "app-cfg", "-o", "jsonpath={.data.x}"]),
        "z"
    );
    k.ok(&[
        "patch",
        "cm",
        "app-cfg",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/x"}]"#,
    ]);
    assert_eq!(
        k.ok(&["get", "cm", "app-cfg", "-o", "jsonpath={.data.x}"]),
        ""
    );
    assert!(
        k.ok(&[
            "patch",
            "cm",
            "app-cfg",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"1"}}"#
        ])
        .contains("no change")
    );
    k.ok(&["label", "cm", "app-cfg", "env=prod"]);
    k.ok(&["annotate", "cm", "app-cfg", "note=hi"]);
    let labelled = k.ok(&["get", "cm", "-l", "env=prod", "-o", "name"]);
    assert_eq!(labelled.trim(), "configmap/app-cfg");
    assert!(
        k.ok(&[
            "get",
            "cm",
            "app-cfg",
            "-o",
            "jsonpath={.metadata.annotations.note}"
        ]) == "hi"
    );

    // replace (and a stale replace conflicts).
    let live = k.ok(&["get", "cm", "app-cfg", "-o", "yaml"]);
    write(&work, "live.yaml", &live.replace("a: \"1\"", "a: \"100\""));
    assert!(k.ok(&["replace", "-f", "live.yaml"]).contains("replaced"));
    assert!(
        k.fails(&["replace", "-f", "live.yaml"])
            .contains("Conflict")
    );

    // explain and describe.
    assert!(
        k.ok(&["explain", "configmaps"])
            .contains("ConfigMap holds configuration data")
    );
    assert!(k.ok(&["explain", "widgets.spec"]).contains("displayName"));
    assert!(k.ok(&["describe", "cm", "app-cfg"]).contains("app-cfg"));

    // Typed create commands (protobuf bodies from kubectl >= 1.32).
    k.ok(&["create", "configmap", "lit", "--from-literal=k=v"]);
    k.ok(&["create", "secret", "generic", "s1", "--from-literal=p=q"]);
    k.ok(&["create", "namespace", "team"]);
    assert_eq!(
        k.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.p}"]),
        "cQ=="
    );

    // -A, --chunk-size.
    for i in 1..=5 {
        k.ok(&[
            "create",
            "cm",
            &format!("seed-{i}"),
            "-n",
            "team",
            "--from-literal=i=x",
        ]);
    }
    let chunked = k.ok(&["get", "cm", "-n", "team", "--chunk-size=2", "-o", "name"]);
    assert_eq!(chunked.lines().count(), 5, "{chunked}");
    let all = k.ok(&["get", "cm", "-A"]);
    assert!(all.contains("team") && all.contains("default"));

    // get -w sees ADDED, MODIFIED, DELETED.
    let mut watch = k
        .command(&["get", "cm", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    std::thread::sleep(Duration::from_millis(1500));
    k.ok(&["create", "cm", "watched", "--from-literal=a=b"]);
    k.ok(&["label", "cm", "watched", "x=y"]);
    k.ok(&["delete", "cm", "watched"]);
    std::thread::sleep(Duration::from_millis(1000));
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("watch output");
    let seen = String::from_utf8_lossy(&out.stdout);
    eprintln!("watch output:\n{seen}");
    for event in ["ADDED", "MODIFIED", "DELETED"] {
        assert!(
            seen.lines()
                .any(|l| l.contains(event) && l.contains("watched")),
            "watch missed {event}"
        );
    }

    // wait --for=delete.
    k.ok(&["create", "cm", "z"]);
    let waiter = k
        .command(&["wait", "--for=delete", "cm/z", "--timeout=30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl wait");
    std::thread::sleep(Duration::from_millis(1000));
    k.ok(&["delete", "cm", "z"]);
    let waited = waiter.wait_with_output().expect("wait output");
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );

    // Cascading deletion: kubectl waits for each delete, which the garbage collector finishes.
    for policy in ["orphan", "foreground", "background"] {
        let owner = format!("owner-{policy}");
        let dependent = format!("dependent-{policy}");
        k.ok(&["create", "cm", &owner]);
        let uid = k.ok(&["get", "cm", &owner, "-o", "jsonpath={.metadata.uid}"]);
        write(
            &work,
            "dependent.yaml",
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {dependent}\n  \
                 ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    \
                 uid: {}\n    blockOwnerDeletion: true\n",
                uid.trim()
            ),
        );
        k.ok(&["create", "-f", "dependent.yaml"]);
        let cascade = format!("--cascade={policy}");
        k.ok(&["delete", "cm", &owner, &cascade, "--timeout=30s"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let left = k.ok(&["get", "cm", &dependent, "--ignore-not-found", "-o", "name"]);
            let done = if policy == "orphan" {
                let owners = k.ok(&[
                    "get",
                    "cm",
                    &dependent,
                    "-o",
                    "jsonpath={.metadata.ownerReferences}",
                ]);
                !left.trim().is_empty() && owners.trim().is_empty()
            } else {
                left.trim().is_empty()
            };
            if done {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "--cascade={policy}: {dependent} is still {left:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // The example kind: v1beta1 and v1 views of one object; SMP is 415 for it.
    k.ok(&["create", "-f", "w.yaml"]);
    assert_eq!(
        k.ok(&[
            "get",
            "widgets.v1beta1.apps.example.io",
            "w1",
            "-o",
            "jsonpath={.spec.title}"
        ]),
        "Hello"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "widgets.v1.apps.example.io",
            "w1",
            "-o",
            "jsonpath={.spec.displayName}"
        ]),
        "Hello"
    );
    assert!(k.ok(&["get", "wd"]).contains("w1"));
    k.ok(&["apply", "-f", "w2.yaml"]);
    assert_eq!(
        k.ok(&[
            "get",
            "widgets.v1beta1.apps.example.io",
            "w1",
            "-o",
            "jsonpath={.metadata.annotations.widgets\\.apps\\.example\\.io/description}"
        ]),
        "applied in v1"
    );
    assert!(
        k.fails(&["patch", "wd", "w1", "-p", r#"{"spec":{"title":"x"}}"#])
            .contains("not supported")
    );
    k.ok(&[
        "patch",
        "wd",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"displayName":"Merged"}}"#,
    ]);
    assert_eq!(
        k.ok(&[
            "get",
            "widgets.v1beta1.apps.example.io",
            "w1",
            "-o",
            "jsonpath={.spec.title}"
        ]),
        "Merged"
    );

    // Namespace deletion removes its contents, then the namespace.
    assert!(
        k.ok(&["delete", "namespace", "team", "--timeout=60s"])
            .contains("deleted")
    );
    let left = k.run_with_input(&["get", "cm", "-n", "team", "-o", "name"], None);
    assert!(left.stdout.trim().is_empty(), "{}", left.stdout);
    assert!(
        !k.ok(&["get", "ns", "-o", "name"])
            .contains("namespace/team")
    );
    let err = k.fails(&["create", "cm", "orphan", "-n", "team"]);
    assert!(err.contains("not found"), "{err}");

    // delete, delete --all.
    assert!(k.ok(&["delete", "cm", "app-cfg"]).contains("deleted"));
    k.ok(&["delete", "cm", "--all"]);
    let out = k.run_with_input(&["get", "cm", "-o", "name"], None);
    assert!(out.stdout.trim().is_empty());

    // Graceful shutdown.
    let status = server.terminate().expect("server exits on SIGTERM");
    assert!(status.success(), "{status:?}");
}

const HELD: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: held
  namespace: stuck
  finalizers:
  - example.com/hold
";

/// The namespace lifecycle as users meet it: `default` cannot be deleted, namespaces carry the
/// `kubernetes.io/metadata.name` label, a namespace held by content goes `Terminating` and
/// refuses new content, and the known recipe (`kubectl replace --raw .../finalize` with empty
/// `spec.finalizers`) removes it, ending `kubectl wait --for=delete` and the watch.
/// Namespace deletion with every pinned kubectl installed.
#[test]
fn kubectl_namespace_lifecycle() {
    for binary in kubectl_binaries() {
        eprintln!("== {}", binary.display());
        namespace_lifecycle(binary);
    }
}

fn namespace_lifecycle(binary: PathBuf) {
    let Session {
        temp: _temp,
        server,
        k,
        work,
    } = Session::start(binary);
    write(&work, "held.yaml", HELD);

    let err = k.fails(&["delete", "namespace", "default"]);
    assert!(
        err.contains(
            "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted"
        ),
        "{err}"
    );
    assert!(k.ok(&["get", "ns", "default"]).contains("Active"));

    k.ok(&["create", "namespace", "stuck"]);
    let labels = k.ok(&["get", "ns", "--show-labels"]);
    for name in ["default", "stuck"] {
        assert!(
            labels.contains(&format!("kubernetes.io/metadata.name={name}")),
            "{labels}"
        );
    }
    k.ok(&["apply", "-f", "held.yaml"]);

    let mut watch = k
        .command(&["get", "ns", "stuck", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get ns -w");
    // The watch is established once it has printed the namespace as it is (ADDED); the rest
    // of its output is collected in the background.
    let mut watch_output = std::io::BufReader::new(watch.stdout.take().expect("watch stdout"));
    let mut line = String::new();
    while !line.contains("ADDED") {
        line.clear();
        let read = std::io::BufRead::read_line(&mut watch_output, &mut line).expect("watch");
        assert!(
            read > 0,
            "kubectl get -w ended before printing the namespace"
        );
    }
    let collector = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut watch_output, &mut rest);
        rest
    });
    assert!(
        k.ok(&["delete", "namespace", "stuck", "--wait=false"])
            .contains("namespace \"stuck\" deleted")
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert!(k.ok(&["get", "ns", "stuck"]).contains("Terminating"));
    let err = k.fails(&["create", "cm", "late", "-n", "stuck"]);
    assert!(
        err.contains(
            "configmaps \"late\" is forbidden: unable to create new content in namespace stuck because it is being terminated"
        ),
        "{err}"
    );
    let waiter = k
        .command(&["wait", "--for=delete", "ns/stuck", "--timeout=60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl wait");

    // The recipe, with the `jq '.spec.finalizers=[]'` step done here.
    let mut namespace: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "ns", "stuck", "-o", "json"])).expect("namespace");
    assert_eq!(
        namespace["spec"]["finalizers"],
        serde_json::json!(["kubernetes"])
    );
    namespace["spec"]["finalizers"] = serde_json::json!([]);
    // The namespace controller may still be recording its conditions: write unconditionally
    // (namespaces allow it) rather than race it with the resourceVersion just read.
    if let Some(meta) = namespace["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    let out = k.run_with_input(
        &[
            "replace",
            "--raw",
            "/api/v1/namespaces/stuck/finalize",
            "-f",
            "-",
        ],
        Some(&namespace.to_string()),
    );
    assert!(out.ok, "{}", out.stderr);

    let waited = waiter.wait_with_output().expect("wait output");
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(
        !k.ok(&["get", "ns", "-o", "name"])
            .contains("namespace/stuck")
    );
    std::thread::sleep(Duration::from_millis(500));
    let _ = watch.kill();
    let _ = watch.wait();
    let seen = collector.join().expect("watch collector");
    eprintln!("watch output:\n{seen}");
    let modified = seen
        .lines()
        .position(|l| l.contains("MODIFIED") && l.contains("Terminating"));
    let deleted = seen.lines().position(|l| l.contains("DELETED"));
    assert!(
        matches!((modified, deleted), (Some(m), Some(d)) if m < d),
        "watch missed MODIFIED (Terminating) then DELETED"
    );

    let status = server.terminate().expect("server exits on SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// The CronTab CRD of upstream's documentation, with printer columns, a status subresource
/// and bounds.
const CRONTAB_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    schema:
      openAPIV3Schema:
        type: object
        description: CronTab runs a command on a schedule.
        properties:
          spec:
            type: object
            description: The desired schedule.
            x-kubernetes-validations:
            - rule: "!has(self.image) || self.image != 'forbidden'"
              message: the image forbidden is not allowed
            properties:
              cronSpec:
                type: string
                description: When to run, in cron syntax.
              image:
                type: string
                maxLength: 128
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
"#;

const CRONTAB: &str = "apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: nightly
spec:
  cronSpec: \"0 0 * * *\"
  image: busybox
";

const CRONTAB2: &str = "apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: nightly
spec:
  cronSpec: \"0 1 * * *\"
  image: busybox
  replicas: 2
";

const CRONTAB_CEL: &str = "apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: refused
spec:
  cronSpec: \"* * * * *\"
  image: forbidden
";

const HTTP_ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: app
spec:
  parentRefs:
  - name: web
  rules:
  - backendRefs:
    - name: app
      port: 8080
";

const HTTP_ROUTE_RELATIVE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: relative
spec:
  parentRefs:
  - name: web
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: api
";

const CRONTAB_BAD: &str = "apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: too-many
spec:
  cronSpec: \"* * * * *\"
  replicas: 50
";

/// CRDs with every pinned kubectl installed: install and wait for `Established`, then the
/// everyday commands on custom objects, and deleting the CRD deletes them.
#[test]
fn kubectl_custom_resources() {
    for binary in kubectl_binaries() {
        eprintln!("== {}", binary.display());
        custom_resources(binary);
    }
}

fn custom_resources(binary: PathBuf) {
    let Session {
        temp: _temp,
        server: _server,
        k,
        work,
    } = Session::start(binary);
    write(&work, "crd.yaml", CRONTAB_CRD);
    write(&work, "ct.yaml", CRONTAB);
    write(&work, "ct2.yaml", CRONTAB2);
    write(&work, "bad.yaml", CRONTAB_BAD);
    write(&work, "cel.yaml", CRONTAB_CEL);

    assert!(k.ok(&["apply", "-f", "crd.yaml"]).contains(
        "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"
    ));
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=30s",
        "crd/crontabs.stable.example.com",
    ]);
    assert!(
        k.ok(&["get", "crd"])
            .contains("crontabs.stable.example.com")
    );
    assert!(k.ok(&["api-resources"]).contains("crontabs"));

    // create, get with the printer columns, apply, patch of each type.
    assert!(
        k.ok(&["apply", "-f", "ct.yaml"])
            .contains("crontab.stable.example.com/nightly created")
    );
    let table = k.ok(&["get", "crontabs"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS"], "{table}");
    assert!(
        table.contains("nightly") && table.contains("0 0 * * *"),
        "{table}"
    );
    assert_eq!(
        k.ok(&["get", "ct", "nightly", "-o", "jsonpath={.spec.replicas}"]),
        "1"
    );
    assert!(k.ok(&["apply", "-f", "ct2.yaml"]).contains("configured"));
    assert_eq!(
        k.ok(&["get", "ct", "nightly", "-o", "jsonpath={.spec.cronSpec}"]),
        "0 1 * * *"
    );
    k.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    k.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/image","value":"alpine"}]"#,
    ]);
    assert_eq!(
        k.ok(&[
            "get",
            "ct",
            "nightly",
            "-o",
            "jsonpath={.spec.replicas} {.spec.image}"
        ]),
        "3 alpine"
    );
    assert!(
        k.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "ct2.yaml"
        ])
        .contains("serverside-applied")
    );
    assert!(
        k.ok(&["scale", "ct", "nightly", "--replicas=4"])
            .contains("scaled")
    );
    assert_eq!(
        k.ok(&["get", "ct", "nightly", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    k.ok(&["label", "ct", "nightly", "team=ops"]);
    assert!(
        k.ok(&["get", "ct", "-l", "team=ops", "-o", "name"])
            .contains("crontab.stable.example.com/nightly")
    );
    assert!(k.ok(&["describe", "ct", "nightly"]).contains("0 1 * * *"));
    assert!(k.ok(&["explain", "crontabs.spec"]).contains("cronSpec"));

    // A rejected object, with the schema's message.
    let refused = k.fails(&["apply", "-f", "bad.yaml"]);
    assert!(
        refused.contains("spec.replicas: Invalid value: 50: spec.replicas in body should be less than or equal to 10"),
        "{refused}"
    );

    let refused = k.fails(&["apply", "-f", "cel.yaml"]);
    assert!(
        refused.contains("spec: Invalid value: \"object\": the image forbidden is not allowed"),
        "{refused}"
    );

    // get -w sees the custom objects change.
    let mut watch = k
        .command(&["get", "ct", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    std::thread::sleep(Duration::from_millis(1500));
    k.ok(&["annotate", "ct", "nightly", "note=watched"]);
    k.ok(&["delete", "ct", "nightly"]);
    std::thread::sleep(Duration::from_millis(1000));
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("watch output");
    let seen = String::from_utf8_lossy(&out.stdout);
    for event in ["MODIFIED", "DELETED"] {
        assert!(
            seen.lines()
                .any(|l| l.contains(event) && l.contains("nightly")),
            "watch missed {event}: {seen}"
        );
    }

    // A large published CRD (the Gateway API's HTTPRoute: two versions, dozens of CEL
    // rules), applied server-side as its project recommends, and its rules enforced.
    let published = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/crds/gateway.networking.k8s.io_httproutes.yaml");
    let published = published.to_str().expect("utf-8 path");
    assert!(
        k.ok(&["apply", "--server-side", "-f", published])
            .contains("serverside-applied")
    );
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=30s",
        "crd/httproutes.gateway.networking.k8s.io",
    ]);
    write(&work, "route.yaml", HTTP_ROUTE);
    write(&work, "bad-route.yaml", HTTP_ROUTE_RELATIVE);
    assert!(
        k.ok(&["apply", "-f", "route.yaml"])
            .contains("httproute.gateway.networking.k8s.io/app created")
    );
    assert_eq!(
        k.ok(&[
            "get",
            "httproute",
            "app",
            "-o",
            "jsonpath={.spec.rules[0].matches[0].path.type}"
        ]),
        "PathPrefix"
    );
    let refused = k.fails(&["apply", "-f", "bad-route.yaml"]);
    assert!(
        refused.contains("value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"),
        "{refused}"
    );

    // Deleting the CRD deletes its objects, then the kind is gone.
    k.ok(&["apply", "-f", "ct.yaml"]);
    k.ok(&["delete", "-f", "crd.yaml", "--timeout=30s"]);
    let gone = k.fails(&["get", "crontabs"]);
    // Which message depends on whether kubectl's discovery cache still names the kind.
    assert!(
        gone.contains("the server doesn't have a resource type \"crontabs\"")
            || gone.contains("the server could not find the requested resource"),
        "{gone}"
    );
    k.ok(&["apply", "-f", "crd.yaml"]);
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=30s",
        "crd/crontabs.stable.example.com",
    ]);
    let empty = k.run_with_input(&["get", "crontabs", "-o", "name"], None);
    assert!(
        empty.ok && empty.stdout.trim().is_empty(),
        "objects survived their CRD: {}",
        empty.stdout
    );
}
