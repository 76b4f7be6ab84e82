//! End to end: the `apiserver` binary with a token file, a client CA and
//! `--authorization-mode=RBAC`, driven by the real kubectl as several users (tokens and client
//! certificates) and by kube-rs: `auth can-i` matrices for view, edit and admin bindings, 403
//! messages word for word, escalation refused, a ServiceAccount token used and then revoked by
//! deleting the account, `auth whoami`, and anonymous requests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ServerProcess, https, kubectl_binary};

/// One kubectl user: a kubeconfig of its own (the server's CA, and a token or a client
/// certificate, or nothing).
struct User {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl User {
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(kubectl_binary())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .output()
            .expect("run kubectl");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.ok, "kubectl {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// `kubectl auth can-i` as yes (true) or no (false).
    fn can(&self, verb: &str, resource: &str, namespace: &str) -> bool {
        let out = self.run(&["auth", "can-i", verb, resource, "-n", namespace]);
        match out.stdout.trim() {
            "yes" => true,
            "no" => false,
            other => panic!("can-i {verb} {resource}: {other:?} {}", out.stderr),
        }
    }

    /// Waits until `can-i` says `expected`: bindings reach the authorizer through its
    /// watch, a moment after the write is acknowledged (as upstream's informers).
    fn wait_until_can(&self, verb: &str, resource: &str, namespace: &str, expected: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.can(verb, resource, namespace) != expected {
            assert!(
                Instant::now() < deadline,
                "can-i {verb} {resource} -n {namespace} never became {expected}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `certificate-authority-data` line of the server's kubeconfig.
fn ca_line(server: &ServerProcess) -> String {
    std::fs::read_to_string(&server.kubeconfig)
        .expect("kubeconfig")
        .lines()
        .find(|l| l.contains("certificate-authority-data"))
        .expect("the kubeconfig embeds the CA")
        .trim()
        .to_owned()
}

fn user(server: &ServerProcess, dir: &Path, name: &str, credentials: &str) -> User {
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    {}\n\
         users:\n- name: u\n  user:\n{credentials}contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n\
         current-context: x\n",
        server.url,
        ca_line(server)
    );
    std::fs::write(&kubeconfig, text).expect("write kubeconfig");
    User {
        kubeconfig,
        cache: dir.join(format!("{name}.cache")),
    }
}

fn token_user(server: &ServerProcess, dir: &Path, name: &str, token: &str) -> User {
    user(server, dir, name, &format!("    token: {token}\n"))
}

/// A client CA, and a certificate for `name` in `group` signed by it (PEM files in `dir`)
/// (rcgen keeps one value per name attribute, so one group.)
fn client_certificate(dir: &Path, name: &str, group: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test client CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, group);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).expect("client certificate");
    let paths = (
        dir.join("client-ca.crt"),
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

/// A GET without credentials: (status code, body).
fn anonymous_get(server: &ServerProcess, path: &str) -> (u16, String) {
    https(server, "GET", path, &[], b"")
}

/// A POST of `body` (JSON) as the server's administrator: the answer's status and JSON.
fn admin_post(
    server: &ServerProcess,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let token = std::fs::read_to_string(server.data_dir.join("admin-token")).expect("admin token");
    let authorization = format!("Bearer {}", token.trim());
    let (code, text) = https(
        server,
        "POST",
        path,
        &[
            ("Authorization", &authorization),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn rbac_with_kubectl_as_several_users() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let tokens = dir.join("tokens.csv");
    std::fs::write(
        &tokens,
        "alicetok,alice,1001\nbobtok,bob,1002\ncaroltok,carol,1003,\"leads\"\n",
    )
    .expect("tokens");
    let (client_ca, dave_cert, dave_key) = client_certificate(dir, "dave", "qa");
    let server = ServerProcess::start(
        &dir.join("data"),
        &[
            "--storage",
            "memory://",
            "--token-auth-file",
            tokens.to_str().expect("path"),
            "--client-ca-file",
            client_ca.to_str().expect("path"),
            "--authorization-mode",
            "RBAC",
            "--audit-log-path",
            dir.join("audit.log").to_str().expect("path"),
        ],
    );
    assert!(
        server.url.starts_with("https://"),
        "authentication brings TLS: {}",
        server.url
    );
    let admin = User {
        kubeconfig: server.kubeconfig.clone(),
        cache: dir.join("admin.cache"),
    };
    let alice = token_user(&server, dir, "alice", "alicetok");
    let bob = token_user(&server, dir, "bob", "bobtok");
    let carol = token_user(&server, dir, "carol", "caroltok");
    let dave = user(
        &server,
        dir,
        "dave",
        &format!(
            "    client-certificate: {}\n    client-key: {}\n",
            dave_cert.display(),
            dave_key.display()
        ),
    );

    // Who is who.
    let whoami = admin.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("system:admin") && whoami.contains("system:masters"),
        "{whoami}"
    );
    let whoami = alice.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("alice") && whoami.contains("system:authenticated"),
        "{whoami}"
    );
    let whoami = dave.ok(&["auth", "whoami", "-o", "json"]);
    let review: serde_json::Value = serde_json::from_str(&whoami).expect("json");
    assert_eq!(review["status"]["userInfo"]["username"], "dave");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["qa", "system:authenticated"])
    );

    // Before any binding: only discovery, whoami and can-i.
    admin.ok(&["create", "namespace", "team"]);
    admin.ok(&["create", "namespace", "other"]);
    assert!(!alice.can("list", "configmaps", "team"));
    let denied = alice.run(&["get", "configmaps", "-n", "team"]);
    assert!(!denied.ok);
    assert!(
        denied.stderr.contains(
            r#"Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "team""#
        ),
        "{}",
        denied.stderr
    );
    let denied = alice.run(&["get", "namespace", "team"]);
    assert!(
        denied.stderr.contains(
            r#"namespaces "team" is forbidden: User "alice" cannot get resource "namespaces" in API group "" in the namespace "team""#
        ),
        "{}",
        denied.stderr
    );
    let denied = alice.run(&["get", "clusterroles"]);
    assert!(
        denied.stderr.contains(
            r#"clusterroles.rbac.authorization.k8s.io is forbidden: User "alice" cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#
        ),
        "{}",
        denied.stderr
    );

    // view, edit and admin in `team`, through RoleBindings; dave's group views everything.
    admin.ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
        "-n",
        "team",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "bob-edit",
        "--clusterrole=edit",
        "--user=bob",
        "-n",
        "team",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "leads-admin",
        "--clusterrole=admin",
        "--group=leads",
        "-n",
        "team",
    ]);
    admin.ok(&[
        "create",
        "clusterrolebinding",
        "qa-view",
        "--clusterrole=view",
        "--group=qa",
    ]);
    alice.wait_until_can("list", "configmaps", "team", true);
    bob.wait_until_can("create", "configmaps", "team", true);
    carol.wait_until_can("create", "rolebindings", "team", true);
    dave.wait_until_can("list", "configmaps", "other", true);
    let matrix: &[(&str, &str, [bool; 3])] = &[
        // verb, resource, [view, edit, admin]
        ("get", "configmaps", [true, true, true]),
        ("list", "configmaps", [true, true, true]),
        ("watch", "configmaps", [true, true, true]),
        ("create", "configmaps", [false, true, true]),
        ("delete", "configmaps", [false, true, true]),
        ("get", "secrets", [false, true, true]),
        ("create", "secrets", [false, true, true]),
        ("list", "serviceaccounts", [true, true, true]),
        ("create", "serviceaccounts/token", [false, true, true]),
        ("update", "leases.coordination.k8s.io", [false, true, true]),
        ("list", "rolebindings", [false, false, true]),
        ("create", "roles", [false, false, true]),
        (
            "create",
            "localsubjectaccessreviews.authorization.k8s.io",
            [false, false, true],
        ),
        ("get", "namespaces", [true, true, true]),
        ("delete", "namespaces", [false, false, false]),
        ("create", "clusterroles", [false, false, false]),
    ];
    for (verb, resource, expected) in matrix {
        for (who, user, allowed) in [
            ("view", &alice, expected[0]),
            ("edit", &bob, expected[1]),
            ("admin", &carol, expected[2]),
        ] {
            assert_eq!(
                user.can(verb, resource, "team"),
                allowed,
                "{who}: {verb} {resource} in team"
            );
            assert!(
                !user.can(verb, resource, "other"),
                "{who}: {verb} {resource} in other"
            );
        }
    }
    assert!(dave.can("watch", "configmaps", "team"));
    assert!(!dave.can("get", "secrets", "team"));
    let rules = alice.ok(&["auth", "can-i", "--list", "-n", "team"]);
    assert!(
        rules.contains("configmaps") && rules.contains("[get list watch]"),
        "{rules}"
    );

    // What the rules let through, and what they do not.
    bob.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=a=1",
        "-n",
        "team",
    ]);
    assert!(
        alice
            .ok(&["get", "configmaps", "-n", "team", "-o", "name"])
            .contains("configmap/settings")
    );
    let denied = alice.run(&["delete", "configmap", "settings", "-n", "team"]);
    assert!(
        denied.stderr.contains(
            r#"configmaps "settings" is forbidden: User "alice" cannot delete resource "configmaps" in API group "" in the namespace "team""#
        ),
        "{}",
        denied.stderr
    );
    let denied = bob.run(&["get", "secrets", "-n", "other"]);
    assert!(
        denied.stderr.contains(
            r#"User "bob" cannot list resource "secrets" in API group "" in the namespace "other""#
        ),
        "{}",
        denied.stderr
    );

    // Escalation: an admin of `team` may hand out what it holds there, and nothing more.
    carol.ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        "--user=alice",
        "-n",
        "team",
    ]);
    carol.ok(&[
        "create",
        "role",
        "cm-reader",
        "--verb=get,list",
        "--resource=configmaps",
        "-n",
        "team",
    ]);
    let denied = carol.run(&[
        "create",
        "rolebinding",
        "carol-root",
        "--clusterrole=cluster-admin",
        "--user=carol",
        "-n",
        "team",
    ]);
    assert!(!denied.ok);
    assert!(
        denied.stderr.contains(
            r#"rolebindings.rbac.authorization.k8s.io "carol-root" is forbidden: user "carol" (groups=["leads" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#
        ) && denied.stderr.contains(r#"{APIGroups:["*"], Resources:["*"], Verbs:["*"]}"#),
        "{}",
        denied.stderr
    );
    let denied = carol.run(&[
        "create",
        "role",
        "ns-deleter",
        "--verb=delete",
        "--resource=namespaces",
        "-n",
        "team",
    ]);
    assert!(
        denied
            .stderr
            .contains(r#"roles.rbac.authorization.k8s.io "ns-deleter" is forbidden: user "carol""#)
            && denied
                .stderr
                .contains(r#"{APIGroups:[""], Resources:["namespaces"], Verbs:["delete"]}"#),
        "{}",
        denied.stderr
    );
    let denied = carol.run(&[
        "create",
        "rolebinding",
        "x",
        "--clusterrole=view",
        "--user=carol",
        "-n",
        "other",
    ]);
    assert!(denied.stderr.contains(r#"User "carol" cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace "other""#), "{}", denied.stderr);
    let denied = bob.run(&[
        "create",
        "role",
        "r",
        "--verb=get",
        "--resource=configmaps",
        "-n",
        "team",
    ]);
    assert!(
        denied
            .stderr
            .contains(r#"User "bob" cannot create resource "roles""#),
        "{}",
        denied.stderr
    );
    // With `bind` on a role, a user may bind it without holding it.
    admin.ok(&[
        "create",
        "clusterrole",
        "bind-view",
        "--verb=bind",
        "--resource=clusterroles",
        "--resource-name=view",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "bob-binds",
        "--clusterrole=bind-view",
        "--user=bob",
        "-n",
        "other",
    ]);
    bob.wait_until_can("bind", "clusterroles/view", "other", true);
    let rolebinding = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: alice-view\n  namespace: other\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: view\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: alice\n";
    let file = dir.join("binding.yaml");
    std::fs::write(&file, rolebinding).expect("write");
    // bob may not create rolebindings at all in `other`; the admin grants just that.
    admin.ok(&[
        "create",
        "role",
        "binder",
        "--verb=create",
        "--resource=rolebindings.rbac.authorization.k8s.io",
        "-n",
        "other",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "bob-binder",
        "--role=binder",
        "--user=bob",
        "-n",
        "other",
    ]);
    bob.wait_until_can("create", "rolebindings", "other", true);
    bob.ok(&["create", "-f", file.to_str().expect("path")]);
    alice.wait_until_can("list", "configmaps", "other", true);

    // Every way of writing a role is checked: patches of each type, PUT creating, dry runs.
    let escalating_rule = r#"{"apiGroups":[""],"resources":["namespaces"],"verbs":["delete"]}"#;
    let escalates = |out: Output, how: &str| {
        assert!(!out.ok, "{how} escalated");
        assert!(
            out.stderr.contains(r#"roles.rbac.authorization.k8s.io "cm-reader" is forbidden: user "carol""#)
                || out.stderr.contains(r#"is forbidden: user "carol" (groups=["leads" "system:authenticated"]) is attempting to grant RBAC permissions not currently held"#),
            "{how}: {}",
            out.stderr
        );
    };
    escalates(
        carol.run(&[
            "patch",
            "role",
            "cm-reader",
            "-n",
            "team",
            "--type=merge",
            "-p",
            &format!(r#"{{"rules":[{escalating_rule}]}}"#),
        ]),
        "merge patch",
    );
    escalates(
        carol.run(&[
            "patch",
            "role",
            "cm-reader",
            "-n",
            "team",
            "--type=json",
            "-p",
            &format!(r#"[{{"op":"add","path":"/rules/-","value":{escalating_rule}}}]"#),
        ]),
        "json patch",
    );
    let role = |name: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\n  namespace: team\nrules:\n- apiGroups: [\"\"]\n  resources: [namespaces]\n  verbs: [delete]\n"
        )
    };
    let file = dir.join("cm-reader.yaml");
    std::fs::write(&file, role("cm-reader")).expect("write");
    escalates(
        carol.run(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            file.to_str().expect("path"),
        ]),
        "server-side apply",
    );
    let file = dir.join("new-role.yaml");
    std::fs::write(&file, role("new-role")).expect("write");
    let created = carol.run(&["replace", "-f", file.to_str().expect("path")]);
    assert!(!created.ok);
    assert!(
        created
            .stderr
            .contains(r#"roles.rbac.authorization.k8s.io "new-role" is forbidden: user "carol""#),
        "PUT creating: {}",
        created.stderr
    );
    let dry = carol.run(&[
        "create",
        "rolebinding",
        "dry",
        "--clusterrole=cluster-admin",
        "--user=carol",
        "-n",
        "team",
        "--dry-run=server",
    ]);
    assert!(!dry.ok);
    assert!(
        dry.stderr
            .contains("is attempting to grant RBAC permissions not currently held"),
        "dry run: {}",
        dry.stderr
    );
    let missing = carol.run(&[
        "create",
        "rolebinding",
        "ghost",
        "--clusterrole=no-such-role",
        "--user=carol",
        "-n",
        "team",
    ]);
    assert!(
        missing.stderr.contains(r#"failed to create rolebinding: clusterrole.rbac.authorization.k8s.io "no-such-role" not found"#),
        "{}",
        missing.stderr
    );
    // What is held may be written back, by every route.
    carol.ok(&[
        "patch",
        "role",
        "cm-reader",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"rules":[{"apiGroups":[""],"resources":["configmaps"],"verbs":["get"]}]}"#,
    ]);

    // Impersonation: who may act as whom.
    assert_eq!(
        admin
            .run(&[
                "auth",
                "can-i",
                "list",
                "configmaps",
                "-n",
                "team",
                "--as=alice"
            ])
            .stdout
            .trim(),
        "yes"
    );
    assert_eq!(
        admin
            .run(&[
                "auth", "can-i", "list", "secrets", "-n", "other", "--as=bob"
            ])
            .stdout
            .trim(),
        "no"
    );
    let whoami = admin.ok(&["auth", "whoami", "--as=bob", "--as-group=devs"]);
    assert!(
        whoami.contains("bob") && whoami.contains("devs"),
        "{whoami}"
    );
    let denied = alice.run(&["get", "configmaps", "-n", "team", "--as=bob"]);
    assert!(
        denied.stderr.contains(
            r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
        ),
        "{}",
        denied.stderr
    );

    // A service account token: works while the account exists, then no more.
    admin.ok(&["create", "serviceaccount", "builder", "-n", "team"]);
    admin.ok(&[
        "create",
        "rolebinding",
        "builder-view",
        "--clusterrole=view",
        "--serviceaccount=team:builder",
        "-n",
        "team",
    ]);
    let token = admin.ok(&["create", "token", "builder", "-n", "team"]);
    let builder = token_user(&server, dir, "builder", token.trim());
    let whoami = builder.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("system:serviceaccount:team:builder"),
        "{whoami}"
    );
    builder.wait_until_can("list", "configmaps", "team", true);
    assert!(
        builder
            .ok(&["get", "configmaps", "-n", "team", "-o", "name"])
            .contains("configmap/settings")
    );
    admin.ok(&["delete", "serviceaccount", "builder", "-n", "team"]);
    let revoked = builder.run(&["get", "configmaps", "-n", "team"]);
    assert!(!revoked.ok);
    assert!(
        revoked.stderr.contains("Unauthorized"),
        "{}",
        revoked.stderr
    );

    // Audiences: a token for another audience is valid only for it; static tokens only for
    // the server's own.
    admin.ok(&["create", "serviceaccount", "auditor", "-n", "team"]);
    let vault_token = admin.ok(&[
        "create",
        "token",
        "auditor",
        "-n",
        "team",
        "--audience=vault",
    ]);
    let review_for = |token: &str, audiences: &[&str]| {
        serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences},
        })
    };
    let token_path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let (_, answer) = admin_post(
        &server,
        token_path,
        review_for(vault_token.trim(), &["vault"]),
    );
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(answer["status"]["audiences"], serde_json::json!(["vault"]));
    let (_, answer) = admin_post(&server, token_path, review_for(vault_token.trim(), &[]));
    assert_eq!(answer["status"]["authenticated"], false, "{answer}");
    let (_, answer) = admin_post(&server, token_path, review_for("caroltok", &["vault"]));
    assert_eq!(answer["status"]["authenticated"], false, "{answer}");
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let (_, answer) = admin_post(
        &server,
        token_path,
        review_for("caroltok", &[issuer, "vault"]),
    );
    assert_eq!(
        answer["status"]["audiences"],
        serde_json::json!([issuer]),
        "{answer}"
    );
    let vault_user = token_user(&server, dir, "vault", vault_token.trim());
    assert!(
        !vault_user.run(&["auth", "whoami"]).ok,
        "a vault token is not for the API"
    );

    // Anonymous requests: health and version only (kubectl would prompt for a password
    // without credentials, so these go over a plain TLS connection).
    let (code, body) = anonymous_get(&server, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok"));
    assert_eq!(anonymous_get(&server, "/version").0, 200);
    let (code, body) = anonymous_get(&server, "/api/v1/namespaces");
    assert_eq!(code, 403, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("status");
    assert_eq!(
        status["message"],
        r#"namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" in API group "" at the cluster scope"#
    );
    let (code, body) = anonymous_get(&server, "/metrics");
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"forbidden: User \"system:anonymous\" cannot get path \"/metrics\""#),
        "{body}"
    );
    // An unknown token is 401 (discovery fails first, so kubectl words it its own way).
    let denied = token_user(&server, dir, "nobody", "not-a-token").run(&["get", "namespaces"]);
    assert!(
        denied
            .stderr
            .contains("error: You must be logged in to the server"),
        "{}",
        denied.stderr
    );

    // SubjectAccessReview, LocalSubjectAccessReview and TokenReview, as a controller asks them.
    let review = |user: &str, verb: &str, resource: &str, namespace: &str| {
        serde_json::json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}},
        })
    };
    let path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let (code, answer) = admin_post(&server, path, review("bob", "create", "configmaps", "team"));
    assert_eq!(
        (code, &answer["status"]["allowed"]),
        (201, &serde_json::json!(true)),
        "{answer}"
    );
    assert!(
        answer["status"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(r#"RoleBinding "bob-edit/team""#),
        "{answer}"
    );
    let (_, answer) = admin_post(
        &server,
        path,
        review("bob", "create", "configmaps", "other"),
    );
    assert_eq!(answer["status"]["allowed"], false, "{answer}");
    let (code, answer) = admin_post(
        &server,
        path,
        serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"resourceAttributes": {"verb": "get"}}}),
    );
    assert_eq!(code, 422, "{answer}");
    assert_eq!(
        answer["message"],
        r#"SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": at least one of user or group must be specified"#
    );
    let mut local = review("alice", "get", "configmaps", "team");
    local["kind"] = "LocalSubjectAccessReview".into();
    let local_path = "/apis/authorization.k8s.io/v1/namespaces/team/localsubjectaccessreviews";
    let (code, answer) = admin_post(&server, local_path, local.clone());
    assert_eq!(
        (code, &answer["status"]["allowed"]),
        (201, &serde_json::json!(true)),
        "{answer}"
    );
    local["spec"]["resourceAttributes"]["namespace"] = "other".into();
    let (code, answer) = admin_post(&server, local_path, local);
    assert_eq!(code, 422, "{answer}");
    let token_review = |token: &str| serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let token_path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let (code, answer) = admin_post(&server, token_path, token_review("caroltok"));
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["status"]["authenticated"], true);
    assert_eq!(answer["status"]["user"]["username"], "carol");
    let (_, answer) = admin_post(&server, token_path, token_review(token.trim()));
    assert_eq!(
        answer["status"]["authenticated"], false,
        "the deleted account's token: {answer}"
    );

    // kube-rs reads only what its Role allows.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(kube_reads_only_what_its_role_allows(&alice.kubeconfig));

    // Every request above is in the audit log, with who asked and what was decided.
    // The last request of the test is kube-rs' cluster-wide list of configmaps.
    let events = audit_events(&dir.join("audit.log"), |e| {
        e["requestURI"]
            .as_str()
            .is_some_and(|uri| uri.starts_with("/api/v1/configmaps"))
    });
    let refused = events
        .iter()
        .find(|e| {
            e["user"]["username"] == "alice"
                && e["verb"] == "list"
                && e["objectRef"]["resource"] == "configmaps"
                && e["objectRef"]["namespace"] == "team"
                && e["responseStatus"]["code"] == 403
        })
        .expect("alice's refused list is audited");
    assert_eq!(refused["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(refused["level"], "Metadata");
    assert_eq!(
        refused["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(refused["sourceIPs"], serde_json::json!(["127.0.0.1"]));
    assert!(events.iter().any(|e| {
        e["user"]["username"] == "dave"
            && e["objectRef"]["resource"] == "selfsubjectreviews"
            && e["responseStatus"]["code"] == 201
            && e["annotations"]["authorization.k8s.io/decision"] == "allow"
    }));
}

/// The audit log's events, once one matching `last` has been written (the writer is a
/// thread of its own).
fn audit_events(path: &Path, last: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("an audit line is JSON"))
            .collect();
        if events.iter().any(&last) || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn kube_reads_only_what_its_role_allows(kubeconfig: &Path) {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::{Api, ListParams};
    let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let names: Vec<String> = configmaps
        .list(&ListParams::default())
        .await
        .expect("alice may list configmaps in team")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(names.contains(&"settings".to_owned()), "{names:?}");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team");
    // alice also holds edit in team now (carol granted it), but not in `default`.
    let refused = Api::<Secret>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .expect_err("alice may not list secrets in default");
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403);
            assert_eq!(
                status.message,
                r#"secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "default""#
            );
        }
        other => panic!("expected 403, got {other}"),
    }
    assert!(secrets.list(&ListParams::default()).await.is_ok());
    let all: Api<ConfigMap> = Api::all(client);
    let refused = all
        .list(&ListParams::default())
        .await
        .expect_err("no cluster-wide list");
    assert!(matches!(refused, kube::Error::Api(s) if s.code == 403));
}
