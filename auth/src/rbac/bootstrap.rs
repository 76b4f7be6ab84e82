//! The bootstrap policy: the ClusterRoles and ClusterRoleBindings every server starts with
//! (`cluster-admin` for `system:masters`, `admin`, `edit`, `view` built by aggregation, and the
//! discovery, basic-user and public-info roles everyone is bound to), as upstream's
//! `plugin/pkg/auth/authorizer/rbac/bootstrappolicy`, limited to the resources served here.
//! The data is in `auth/policy/*.yaml`.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Deserialize;

/// The annotation that lets the server add missing rules and subjects to a bootstrap object
/// at startup (`"true"`); an administrator sets it to `"false"` to keep their own edits.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

const CLUSTER_ROLES: &str = include_str!("../../policy/cluster-roles.yaml");
const CLUSTER_ROLE_BINDINGS: &str = include_str!("../../policy/cluster-role-bindings.yaml");

#[derive(Deserialize)]
struct List<T> {
    items: Vec<T>,
}

/// The bootstrap ClusterRoles.
///
/// # Errors
///
/// Never for the data compiled in (a test parses it); the error names the file otherwise.
pub fn cluster_roles() -> anyhow::Result<Vec<ClusterRole>> {
    let list: List<ClusterRole> = serde_yaml_ng::from_str(CLUSTER_ROLES)
        .map_err(|e| anyhow::anyhow!("auth/policy/cluster-roles.yaml: {e}"))?;
    Ok(list.items)
}

/// The bootstrap ClusterRoleBindings.
///
/// # Errors
///
/// As [`cluster_roles`].
pub fn cluster_role_bindings() -> anyhow::Result<Vec<ClusterRoleBinding>> {
    let list: List<ClusterRoleBinding> = serde_yaml_ng::from_str(CLUSTER_ROLE_BINDINGS)
        .map_err(|e| anyhow::anyhow!("auth/policy/cluster-role-bindings.yaml: {e}"))?;
    Ok(list.items)
}

/// Whether the bootstrap object with these annotations may be updated at startup: unless
/// the annotation says `"false"` (upstream's reconciler reads it the same way).
pub fn autoupdate(annotations: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(AUTOUPDATE_ANNOTATION))
        .is_none_or(|v| v != "false")
}
