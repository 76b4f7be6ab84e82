//! Group, version, kind and resource identifiers (`k8s.io/apimachinery/pkg/runtime/schema`).

use std::fmt;

use apimachinery::status::{ApiError, GroupResource};

/// The version name of the hub (internal) representation of a kind, as Kubernetes spells it
/// (`runtime.APIVersionInternal`). Hub documents carry `apiVersion: <group>/__internal`.
pub const INTERNAL_VERSION: &str = "__internal";

/// An API group and version, such as `apps.example.io/v1` or the core `v1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupVersion {
    /// API group, empty for the core group.
    pub group: String,
    /// Version, such as `v1` or `v1beta1`.
    pub version: String,
}

impl GroupVersion {
    /// A group and version.
    pub fn new(group: impl Into<String>, version: impl Into<String>) -> Self {
        GroupVersion {
            group: group.into(),
            version: version.into(),
        }
    }

    /// Parses an `apiVersion` value: `v1` (core group) or `group/version`
    /// (`schema.ParseGroupVersion`). An empty string is the empty group version.
    ///
    /// # Errors
    ///
    /// 400 BadRequest for more than one `/` or an empty version after a group.
    pub fn parse(api_version: &str) -> Result<Self, ApiError> {
        if api_version.is_empty() || api_version == "/" {
            return Ok(GroupVersion::default());
        }
        match api_version.split_once('/') {
            None => Ok(GroupVersion::new("", api_version)),
            Some((group, version)) if !version.contains('/') && !version.is_empty() => {
                Ok(GroupVersion::new(group, version))
            }
            Some(_) => Err(ApiError::bad_request(format!(
                "unexpected GroupVersion string: {api_version}"
            ))),
        }
    }

    /// The `apiVersion` string: `version` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        self.to_string()
    }

    /// This group version with a kind.
    pub fn with_kind(&self, kind: impl Into<String>) -> GroupVersionKind {
        GroupVersionKind::new(self.group.clone(), self.version.clone(), kind)
    }

    /// This group version with a resource.
    pub fn with_resource(&self, resource: impl Into<String>) -> GroupVersionResource {
        GroupVersionResource::new(self.group.clone(), self.version.clone(), resource)
    }

    /// Whether this is the hub (internal) version of its group.
    pub fn is_internal(&self) -> bool {
        self.version == INTERNAL_VERSION
    }
}

impl fmt::Display for GroupVersion {
    /// `apps.example.io/v1`, or `v1` for the core group (Kubernetes' `String()`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.version)
        } else {
            write!(f, "{}/{}", self.group, self.version)
        }
    }
}

/// A group and kind, such as `apps.example.io` / `Widget`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    /// API group, empty for the core group.
    pub group: String,
    /// Kind, in CamelCase.
    pub kind: String,
}

impl GroupKind {
    /// A group and kind.
    pub fn new(group: impl Into<String>, kind: impl Into<String>) -> Self {
        GroupKind {
            group: group.into(),
            kind: kind.into(),
        }
    }

    /// This group kind at a version.
    pub fn with_version(&self, version: impl Into<String>) -> GroupVersionKind {
        GroupVersionKind::new(self.group.clone(), version, self.kind.clone())
    }
}

impl fmt::Display for GroupKind {
    /// `Widget.apps.example.io`, or `ConfigMap` for the core group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// A group, version and kind: the type of a serialized object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupVersionKind {
    /// API group, empty for the core group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind, in CamelCase.
    pub kind: String,
}

impl GroupVersionKind {
    /// A group, version and kind.
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        kind: impl Into<String>,
    ) -> Self {
        GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    /// The group and version.
    pub fn group_version(&self) -> GroupVersion {
        GroupVersion::new(self.group.clone(), self.version.clone())
    }

    /// The group and kind.
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group.clone(), self.kind.clone())
    }

    /// The `apiVersion` string of objects of this kind.
    pub fn api_version(&self) -> String {
        self.group_version().to_string()
    }
}

/// kube-rs names the same triple `kube_core::GroupVersionKind`; ours adds the ordering,
/// default and upstream `Display` the Scheme and its messages need (which the orphan rule
/// keeps us from adding to kube-core's), so the two convert into each other for free.
impl From<kube_core::GroupVersionKind> for GroupVersionKind {
    fn from(gvk: kube_core::GroupVersionKind) -> Self {
        GroupVersionKind::new(gvk.group, gvk.version, gvk.kind)
    }
}

impl From<GroupVersionKind> for kube_core::GroupVersionKind {
    fn from(gvk: GroupVersionKind) -> Self {
        kube_core::GroupVersionKind {
            group: gvk.group,
            version: gvk.version,
            kind: gvk.kind,
        }
    }
}

impl From<kube_core::GroupVersion> for GroupVersion {
    fn from(gv: kube_core::GroupVersion) -> Self {
        GroupVersion::new(gv.group, gv.version)
    }
}

impl From<GroupVersion> for kube_core::GroupVersion {
    fn from(gv: GroupVersion) -> Self {
        kube_core::GroupVersion {
            group: gv.group,
            version: gv.version,
        }
    }
}

impl From<kube_core::GroupVersionResource> for GroupVersionResource {
    fn from(gvr: kube_core::GroupVersionResource) -> Self {
        GroupVersionResource::new(gvr.group, gvr.version, gvr.resource)
    }
}

impl From<GroupVersionResource> for kube_core::GroupVersionResource {
    fn from(gvr: GroupVersionResource) -> Self {
        kube_core::GroupVersionResource::gvr(&gvr.group, &gvr.version, &gvr.resource)
    }
}

impl fmt::Display for GroupVersionKind {
    /// `apps.example.io/v1, Kind=Widget` (and `/v1, Kind=ConfigMap` for the core group, as
    /// Kubernetes prints it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}, Kind={}", self.group, self.version, self.kind)
    }
}

/// A group, version and resource: the REST path of a collection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupVersionResource {
    /// API group, empty for the core group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Resource: the plural, lower-case name (or, as mapper input, a singular or short name).
    pub resource: String,
}

impl GroupVersionResource {
    /// A group, version and resource.
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        GroupVersionResource {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
        }
    }

    /// Only a resource name, any group and version (mapper input such as `wd`).
    pub fn from_resource(resource: impl Into<String>) -> Self {
        GroupVersionResource::new("", "", resource)
    }

    /// The group and version.
    pub fn group_version(&self) -> GroupVersion {
        GroupVersion::new(self.group.clone(), self.version.clone())
    }

    /// The group and resource.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group.clone(), self.resource.clone())
    }
}

impl fmt::Display for GroupVersionResource {
    /// `apps.example.io/v1, Resource=widgets`, as Kubernetes prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}, Resource={}",
            self.group, self.version, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_core_identifiers_convert_both_ways() {
        let ours = GroupVersionKind::new("apps.example.io", "v1", "Widget");
        let theirs: kube_core::GroupVersionKind = ours.clone().into();
        assert_eq!(theirs.api_version(), "apps.example.io/v1");
        assert_eq!(GroupVersionKind::from(theirs), ours);
        let gv: kube_core::GroupVersion = GroupVersion::new("", "v1").into();
        assert_eq!(GroupVersion::from(gv).api_version(), "v1");
        let gvr: kube_core::GroupVersionResource =
            GroupVersionResource::new("apps", "v1", "deployments").into();
        assert_eq!(gvr.group, "apps");
        assert_eq!(
            GroupVersionResource::from(gvr),
            GroupVersionResource::new("apps", "v1", "deployments")
        );
    }
}
