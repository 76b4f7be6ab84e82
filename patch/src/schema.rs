//! What the patch engine needs to know about a kind: how each list merges, and whether the kind
//! accepts strategic merge patches at all.

/// How a list field merges, the union of Kubernetes' `patchStrategy`/`patchMergeKey` (strategic
/// merge patch) and `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` (server-side apply).
///
/// For every kind this crate serves the two agree, so one rule drives both engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced as a whole (`listType=atomic`, no patch strategy). The default for unknown lists.
    Atomic,
    /// A set of scalars (`listType=set`, `patchStrategy=merge` without a merge key), such as
    /// `metadata.finalizers`: patches add to it, `$deleteFromPrimitiveList` removes from it.
    Set,
    /// A list of objects identified by key fields (`listType=map`, `patchStrategy=merge`): the
    /// first key is the strategic merge key, all of them identify an item for apply.
    Map(&'static [&'static str]),
}

/// Per-kind knowledge the patch engine needs.
///
/// Paths are the field names from the object's root; list items are transparent, so the
/// `status` field of a `status.conditions` item is at `["status", "conditions", "status"]`.
pub trait PatchSchema: Send + Sync {
    /// Whether the kind accepts `application/strategic-merge-patch+json`. Built-in kinds do;
    /// custom kinds do not (Kubernetes answers 415 for them).
    fn supports_strategic_merge(&self) -> bool;

    /// How the list at `path` merges. Lists the schema does not name are atomic.
    fn list_kind(&self, path: &[&str]) -> ListKind;
}

/// One list rule of a [`KindSchema`].
#[derive(Clone, Copy, Debug)]
pub struct ListRule {
    /// Field names from the root.
    pub path: &'static [&'static str],
    /// How the list merges.
    pub kind: ListKind,
}

/// A static [`PatchSchema`]: a strategic-merge flag and a table of list rules.
#[derive(Clone, Copy, Debug)]
pub struct KindSchema {
    /// Whether strategic merge patches are accepted.
    pub strategic_merge: bool,
    /// The lists that are not atomic.
    pub lists: &'static [ListRule],
}

impl PatchSchema for KindSchema {
    fn supports_strategic_merge(&self) -> bool {
        self.strategic_merge
    }

    fn list_kind(&self, path: &[&str]) -> ListKind {
        self.lists
            .iter()
            .find(|rule| rule.path == path)
            .map_or(ListKind::Atomic, |rule| rule.kind)
    }
}

/// `metadata.finalizers` (a set) and `metadata.ownerReferences` (merge key `uid`), as in
/// `ObjectMeta`.
const FINALIZERS: ListRule = ListRule {
    path: &["metadata", "finalizers"],
    kind: ListKind::Set,
};
const OWNER_REFERENCES: ListRule = ListRule {
    path: &["metadata", "ownerReferences"],
    kind: ListKind::Map(&["uid"]),
};
const STATUS_CONDITIONS: ListRule = ListRule {
    path: &["status", "conditions"],
    kind: ListKind::Map(&["type"]),
};

/// Built-in kinds whose only non-atomic lists are in `ObjectMeta`: core `ConfigMap`, `Secret`,
/// `Event` and `coordination.k8s.io` `Lease` (their `data`, `binaryData`, `stringData`, labels and
/// annotations are maps, which always merge per key).
pub const METADATA_ONLY: KindSchema = KindSchema {
    strategic_merge: true,
    lists: &[FINALIZERS, OWNER_REFERENCES],
};

/// Core `ConfigMap`.
pub const CONFIG_MAP: KindSchema = METADATA_ONLY;
/// Core `Secret`.
pub const SECRET: KindSchema = METADATA_ONLY;
/// Core `Event`.
pub const EVENT: KindSchema = METADATA_ONLY;
/// `coordination.k8s.io` `Lease`.
pub const LEASE: KindSchema = METADATA_ONLY;

/// `rbac.authorization.k8s.io` Role, ClusterRole, RoleBinding and ClusterRoleBinding: their
/// `rules` and `subjects` are atomic (no patch strategy upstream).
pub const RBAC: KindSchema = METADATA_ONLY;

/// Core `ServiceAccount`: `secrets` merges on `name` (`patchMergeKey=name`).
pub const SERVICE_ACCOUNT: KindSchema = KindSchema {
    strategic_merge: true,
    lists: &[
        FINALIZERS,
        OWNER_REFERENCES,
        ListRule {
            path: &["secrets"],
            kind: ListKind::Map(&["name"]),
        },
    ],
};

/// Core `Namespace`: `spec.finalizers` is atomic (no patch strategy), `status.conditions` merges
/// on `type`.
pub const NAMESPACE: KindSchema = KindSchema {
    strategic_merge: true,
    lists: &[FINALIZERS, OWNER_REFERENCES, STATUS_CONDITIONS],
};

/// The example kind `Widget` (`apps.example.io`): a custom kind, so no strategic merge patch, and
/// `status.conditions` is a map list keyed by `type` for server-side apply.
pub const WIDGET: KindSchema = KindSchema {
    strategic_merge: false,
    lists: &[FINALIZERS, OWNER_REFERENCES, STATUS_CONDITIONS],
};

/// Any other custom kind: no strategic merge patch, only `ObjectMeta`'s lists are non-atomic.
pub const CUSTOM_RESOURCE: KindSchema = KindSchema {
    strategic_merge: false,
    lists: &[FINALIZERS, OWNER_REFERENCES],
};

/// The schema of a built-in kind this crate knows, by API group and kind.
pub fn builtin_schema(group: &str, kind: &str) -> Option<&'static KindSchema> {
    match (group, kind) {
        ("", "ConfigMap") => Some(&CONFIG_MAP),
        ("", "Secret") => Some(&SECRET),
        ("", "Event") => Some(&EVENT),
        ("", "Namespace") => Some(&NAMESPACE),
        ("coordination.k8s.io", "Lease") => Some(&LEASE),
        ("", "ServiceAccount") => Some(&SERVICE_ACCOUNT),
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => Some(&RBAC),
        ("apps.example.io", "Widget") => Some(&WIDGET),
        _ => None,
    }
}
