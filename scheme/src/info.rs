//! [`ResourceInfo`]: everything the server needs to know about one served resource.

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};

use super::gvk::{GroupKind, GroupVersionKind, GroupVersionResource};
use apimachinery::status::GroupResource;

/// The verbs of a resource with the full generic Store behind it, as discovery lists them.
pub const STANDARD_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The verbs of a `status` (or other get/update) subresource.
pub const SUBRESOURCE_VERBS: [&str; 3] = ["get", "patch", "update"];

/// A subresource such as `status`, served at `<plural>/<name>/<subresource>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubresourceInfo {
    /// Subresource name (`status`, `scale`).
    pub name: String,
    /// The kind the subresource accepts and returns (the parent kind for `status`).
    pub kind: String,
    /// Verbs for discovery.
    pub verbs: Vec<String>,
    /// The group and version of `kind` when it is not the parent's (`autoscaling`, `v1` for
    /// `scale`); `None` for the parent's own group-version.
    pub response_group_version: Option<(String, String)>,
}

impl SubresourceInfo {
    /// A subresource `name` taking and returning `kind`, with the discovery `verbs`.
    pub fn new(name: impl Into<String>, kind: impl Into<String>, verbs: &[&str]) -> Self {
        SubresourceInfo {
            name: name.into(),
            kind: kind.into(),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            response_group_version: None,
        }
    }

    /// The `scale` subresource: get, patch and update of `autoscaling/v1` `Scale`.
    pub fn scale() -> Self {
        SubresourceInfo {
            response_group_version: Some(("autoscaling".to_owned(), "v1".to_owned())),
            ..SubresourceInfo::new("scale", "Scale", &SUBRESOURCE_VERBS)
        }
    }

    /// The `status` subresource of `kind`: get, patch and update of the same kind.
    pub fn status(kind: impl Into<String>) -> Self {
        SubresourceInfo::new("status", kind, &SUBRESOURCE_VERBS)
    }
}

/// One served resource: names, scope, versions and verbs, as discovery and the RESTMapper use
/// them (the union of a CRD's `spec.names`/`spec.scope`/`spec.versions` and what kube-apiserver
/// knows about a built-in kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, empty for the core group.
    pub group: String,
    /// Served versions, most preferred first.
    pub versions: Vec<String>,
    /// The version objects are stored in; one of `versions`.
    pub storage_version: String,
    /// Kind, in CamelCase (`Widget`).
    pub kind: String,
    /// Kind of lists (`WidgetList`).
    pub list_kind: String,
    /// Plural, lower-case resource name used in paths (`widgets`).
    pub plural: String,
    /// Singular, lower-case name (`widget`).
    pub singular: String,
    /// Short names (`wd`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// Subresources (`status`).
    pub subresources: Vec<SubresourceInfo>,
    /// Verbs of the main resource, for discovery.
    pub verbs: Vec<String>,
}

impl ResourceInfo {
    /// A namespaced resource served and stored at one `version`, with the standard verbs,
    /// `<Kind>List` lists and the lower-cased kind as its singular name. Adjust with the
    /// `with_*` methods.
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        kind: impl Into<String>,
        plural: impl Into<String>,
    ) -> Self {
        let kind = kind.into();
        let version = version.into();
        ResourceInfo {
            group: group.into(),
            versions: vec![version.clone()],
            storage_version: version,
            list_kind: format!("{kind}List"),
            singular: kind.to_ascii_lowercase(),
            kind,
            plural: plural.into(),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced: true,
            subresources: Vec::new(),
            verbs: STANDARD_VERBS.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    /// The info of a typed `k8s_openapi` kind: group, version, kind, plural, list kind and scope
    /// from its constants; served and stored at its one version.
    pub fn for_type<K>() -> Self
    where
        K: k8s_openapi::ListableResource,
        K::Scope: ScopeKind,
    {
        let mut info = ResourceInfo::new(K::GROUP, K::VERSION, K::KIND, K::URL_PATH_SEGMENT);
        info.list_kind = K::LIST_KIND.to_owned();
        info.namespaced = <K::Scope as ScopeKind>::NAMESPACED;
        info
    }

    /// Served versions, most preferred first, and the storage version.
    pub fn with_versions(mut self, versions: &[&str], storage_version: &str) -> Self {
        self.versions = versions.iter().map(|v| (*v).to_owned()).collect();
        self.storage_version = storage_version.to_owned();
        self
    }

    /// The singular name.
    pub fn with_singular(mut self, singular: impl Into<String>) -> Self {
        self.singular = singular.into();
        self
    }

    /// Short names.
    pub fn with_short_names(mut self, short_names: &[&str]) -> Self {
        self.short_names = short_names.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// Categories.
    pub fn with_categories(mut self, categories: &[&str]) -> Self {
        self.categories = categories.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// Namespaced or cluster scope.
    pub fn with_namespaced(mut self, namespaced: bool) -> Self {
        self.namespaced = namespaced;
        self
    }

    /// Adds a subresource (listed in discovery after those added before).
    pub fn with_subresource(mut self, subresource: SubresourceInfo) -> Self {
        self.subresources.push(subresource);
        self
    }

    /// Adds the `status` subresource.
    pub fn with_status_subresource(mut self) -> Self {
        let status = SubresourceInfo::status(self.kind.clone());
        self.subresources.push(status);
        self
    }

    /// The verbs of the main resource.
    pub fn with_verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// The most preferred served version.
    pub fn preferred_version(&self) -> &str {
        self.versions
            .first()
            .map_or(self.storage_version.as_str(), String::as_str)
    }

    /// Whether `version` is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// Whether the resource has the subresource `name`.
    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }

    /// The group and kind.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group.clone(), self.kind.clone())
    }

    /// The group and plural resource.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group.clone(), self.plural.clone())
    }

    /// The kind at `version`.
    pub fn gvk(&self, version: &str) -> GroupVersionKind {
        GroupVersionKind::new(self.group.clone(), version, self.kind.clone())
    }

    /// The resource at `version`.
    pub fn gvr(&self, version: &str) -> GroupVersionResource {
        GroupVersionResource::new(self.group.clone(), version, self.plural.clone())
    }

    /// The kind at the storage version.
    pub fn storage_gvk(&self) -> GroupVersionKind {
        self.gvk(&self.storage_version)
    }

    /// Whether `name` (any case) is the plural, singular or one of the short names.
    pub fn is_named(&self, name: &str) -> bool {
        self.matches_full_name(name) || self.matches_short_name(name)
    }

    pub(crate) fn matches_full_name(&self, name: &str) -> bool {
        self.plural.eq_ignore_ascii_case(name) || self.singular.eq_ignore_ascii_case(name)
    }

    pub(crate) fn matches_short_name(&self, name: &str) -> bool {
        self.short_names
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
    }

    /// Checks the info is consistent: names present and lower-case, storage version served,
    /// no duplicate versions. Returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let lower = |s: &str| !s.is_empty() && s == s.to_ascii_lowercase();
        if self.kind.is_empty() || self.list_kind.is_empty() {
            return Err(format!("{}: kind and list kind are required", self.plural));
        }
        if !lower(&self.plural) || !lower(&self.singular) {
            return Err(format!(
                "{}: plural and singular names must be non-empty lower case",
                self.group_kind()
            ));
        }
        if let Some(bad) = self.short_names.iter().find(|s| !lower(s)) {
            return Err(format!(
                "{}: short name {bad:?} must be non-empty lower case",
                self.group_kind()
            ));
        }
        if self.versions.is_empty() {
            return Err(format!("{}: no served version", self.group_kind()));
        }
        if !self.serves(&self.storage_version) {
            return Err(format!(
                "{}: storage version {:?} is not served",
                self.group_kind(),
                self.storage_version
            ));
        }
        for (i, version) in self.versions.iter().enumerate() {
            if version.is_empty() || self.versions[..i].contains(version) {
                return Err(format!(
                    "{}: empty or duplicate version {version:?}",
                    self.group_kind()
                ));
            }
        }
        Ok(())
    }
}

/// Whether a `k8s_openapi` scope marker is namespaced; lets [`ResourceInfo::for_type`] read the
/// scope of a typed kind.
pub trait ScopeKind {
    /// True for namespaced resources.
    const NAMESPACED: bool;
}

impl ScopeKind for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl ScopeKind for ClusterResourceScope {
    const NAMESPACED: bool = false;
}
