//! The [`RestMapper`]: resource and kind names as users type them -> group/version/resource
//! and kind, as kubectl resolves them; categories; and the data discovery serves.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::gvk::{GroupKind, GroupVersion, GroupVersionKind, GroupVersionResource};
use super::info::ResourceInfo;
use apimachinery::status::{ApiError, GroupResource};

/// The result of a mapping: the resource and kind at one version, and the resource's info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestMapping {
    /// The resource at the chosen version.
    pub resource: GroupVersionResource,
    /// The kind at the chosen version.
    pub gvk: GroupVersionKind,
    /// Everything else about the resource (scope, names, verbs).
    pub info: Arc<ResourceInfo>,
}

impl RestMapping {
    /// Whether the resource is namespaced.
    pub fn namespaced(&self) -> bool {
        self.info.namespaced
    }
}

/// A group served by the API, as `/apis` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiGroupInfo {
    /// Group name, empty for the core group.
    pub name: String,
    /// Served versions, most preferred first.
    pub versions: Vec<String>,
    /// The preferred version.
    pub preferred_version: String,
}

/// Maps resource names, kinds and categories to served resources
/// (`meta.RESTMapper` with kubectl's short-name and category expansion folded in).
///
/// Names match case-insensitively. An empty group or version in a query means "any": the
/// version then resolves to the resource's preferred version. When a name matches resources
/// of more than one group the lookup is ambiguous (400 BadRequest); qualify it with the group
/// (`widgets.apps.example.io`). Plural and singular names take precedence over short names,
/// so a short name never hides another resource's real name.
#[derive(Clone, Debug, Default)]
pub struct RestMapper {
    resources: Vec<Arc<ResourceInfo>>,
}

/// 404 NotFound for a name nothing matches.
fn no_match(what: String) -> ApiError {
    let mut error = ApiError::not_found(&GroupResource::new("", ""), "");
    error.message = format!("no matches for {what}");
    error.details = None;
    error
}

fn ambiguous(input: &str, matches: &[Arc<ResourceInfo>], kinds: bool) -> ApiError {
    let listed: Vec<String> = matches
        .iter()
        .map(|info| {
            let version = info.preferred_version();
            if kinds {
                info.gvk(version).to_string()
            } else {
                info.gvr(version).to_string()
            }
        })
        .collect();
    ApiError::bad_request(format!(
        "{input} matches multiple {} [{}]",
        if kinds { "kinds" } else { "resources" },
        listed.join(" ")
    ))
}

impl RestMapper {
    /// A mapper over `resources` (their order is discovery order).
    pub fn new(resources: impl IntoIterator<Item = ResourceInfo>) -> Self {
        RestMapper {
            resources: resources.into_iter().map(Arc::new).collect(),
        }
    }

    pub(crate) fn from_shared(resources: Vec<Arc<ResourceInfo>>) -> Self {
        RestMapper { resources }
    }

    /// Every resource, in discovery order.
    pub fn resources(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> + '_ {
        self.resources.iter()
    }

    /// Resources whose names match `input.resource` in `input.group` (any group when empty)
    /// and that serve `input.version` (when given). Full names first; short names only when
    /// no full name matches.
    fn matching(&self, input: &GroupVersionResource) -> Vec<Arc<ResourceInfo>> {
        let candidates = || {
            self.resources.iter().filter(|info| {
                (input.group.is_empty() || info.group.eq_ignore_ascii_case(&input.group))
                    && (input.version.is_empty() || info.serves(&input.version))
            })
        };
        let full: Vec<_> = candidates()
            .filter(|info| info.matches_full_name(&input.resource))
            .cloned()
            .collect();
        if !full.is_empty() {
            return full;
        }
        candidates()
            .filter(|info| info.matches_short_name(&input.resource))
            .cloned()
            .collect()
    }

    fn chosen_version<'a>(info: &'a ResourceInfo, requested: &'a str) -> &'a str {
        if requested.is_empty() {
            info.preferred_version()
        } else {
            requested
        }
    }

    /// Every resource `input` may name (`ResourcesFor`), each at the requested version or its
    /// preferred one.
    pub fn resources_for(&self, input: &GroupVersionResource) -> Vec<GroupVersionResource> {
        self.matching(input)
            .iter()
            .map(|info| info.gvr(Self::chosen_version(info, &input.version)))
            .collect()
    }

    /// The one resource `input` names (`ResourceFor`): plural, singular or short name, any
    /// case, with optional group and version.
    ///
    /// # Errors
    ///
    /// 404 NotFound when nothing matches; 400 BadRequest when resources of several groups do.
    pub fn resource_for(
        &self,
        input: &GroupVersionResource,
    ) -> Result<GroupVersionResource, ApiError> {
        self.mapping_for_resource(input).map(|m| m.resource)
    }

    /// The kind of the one resource `input` names (`KindFor`).
    ///
    /// # Errors
    ///
    /// As [`RestMapper::resource_for`].
    pub fn kind_for(&self, input: &GroupVersionResource) -> Result<GroupVersionKind, ApiError> {
        self.mapping_for_resource(input).map(|m| m.gvk)
    }

    /// The full mapping of the one resource `input` names.
    ///
    /// # Errors
    ///
    /// As [`RestMapper::resource_for`].
    pub fn mapping_for_resource(
        &self,
        input: &GroupVersionResource,
    ) -> Result<RestMapping, ApiError> {
        let matches = self.matching(input);
        match matches.as_slice() {
            [] => Err(no_match(input.to_string())),
            [info] => {
                let version = Self::chosen_version(info, &input.version);
                Ok(RestMapping {
                    resource: info.gvr(version),
                    gvk: info.gvk(version),
                    info: info.clone(),
                })
            }
            _ => Err(ambiguous(&input.resource, &matches, false)),
        }
    }

    /// The mapping of a kind (`RESTMapping`): the kind matches case-insensitively, an empty
    /// group means any group; the version is the first of `versions` the resource serves, or
    /// its preferred version when `versions` is empty.
    ///
    /// # Errors
    ///
    /// 404 NotFound (`no matches for kind "X" in version "g/v"`) when no served resource has
    /// the kind at any of `versions`; 400 BadRequest when kinds of several groups match.
    pub fn rest_mapping(&self, gk: &GroupKind, versions: &[&str]) -> Result<RestMapping, ApiError> {
        let matches: Vec<Arc<ResourceInfo>> = self
            .resources
            .iter()
            .filter(|info| {
                info.kind.eq_ignore_ascii_case(&gk.kind)
                    && (gk.group.is_empty() || info.group.eq_ignore_ascii_case(&gk.group))
                    && (versions.is_empty() || versions.iter().any(|v| info.serves(v)))
            })
            .cloned()
            .collect();
        match matches.as_slice() {
            [] => {
                let version = versions.first().copied().unwrap_or("");
                Err(no_match(format!(
                    "kind {:?} in version {:?}",
                    gk.kind,
                    GroupVersion::new(gk.group.clone(), version).to_string()
                )))
            }
            [info] => {
                let version = versions
                    .iter()
                    .copied()
                    .find(|v| info.serves(v))
                    .unwrap_or(info.preferred_version());
                Ok(RestMapping {
                    resource: info.gvr(version),
                    gvk: info.gvk(version),
                    info: info.clone(),
                })
            }
            _ => Err(ambiguous(&gk.kind, &matches, true)),
        }
    }

    /// The singular name of the resource `resource` names (`ResourceSingularizer`).
    ///
    /// # Errors
    ///
    /// As [`RestMapper::resource_for`].
    pub fn resource_singularizer(&self, resource: &str) -> Result<String, ApiError> {
        self.mapping_for_resource(&GroupVersionResource::from_resource(resource))
            .map(|m| m.info.singular.clone())
    }

    /// Resolves a kubectl argument (`kubectl get <arg>`): `wd`, `widgets`, `Widget`,
    /// `widgets.apps.example.io`, `widgets.v1.apps.example.io`, `Widget.apps.example.io`,
    /// `Widget.v1beta1.apps.example.io`, as kubectl's `mappingFor` does: first as a resource
    /// (fully specified `resource.version.group`, then `resource.group`), then as a kind.
    ///
    /// # Errors
    ///
    /// 404 NotFound `the server doesn't have a resource type "<arg>"` when nothing matches;
    /// 400 BadRequest when the argument is ambiguous.
    pub fn lookup(&self, arg: &str) -> Result<RestMapping, ApiError> {
        let (fully, partial) = parse_resource_arg(arg);
        let mut last = None;
        for input in fully.into_iter().chain(std::iter::once(partial)) {
            match self.mapping_for_resource(&input) {
                Ok(mapping) => return Ok(mapping),
                Err(e) if e.code == 404 => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        let (fully, partial) = parse_kind_arg(arg);
        for (gk, versions) in fully
            .map(|gvk| (gvk.group_kind(), vec![gvk.version]))
            .into_iter()
            .chain(std::iter::once((partial, Vec::new())))
        {
            let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
            match self.rest_mapping(&gk, &versions) {
                Ok(mapping) => return Ok(mapping),
                Err(e) if e.code == 404 => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        let mut error = last.unwrap_or_else(|| no_match(arg.to_owned()));
        error.message = format!("the server doesn't have a resource type {arg:?}");
        Err(error)
    }

    /// The resources in `category` (`kubectl get all`), in discovery order.
    pub fn expand_category(&self, category: &str) -> Vec<GroupResource> {
        self.resources
            .iter()
            .filter(|info| {
                info.categories
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(category))
            })
            .map(|info| info.group_resource())
            .collect()
    }

    /// The served groups in discovery order (the core group `""` first when served), each
    /// with its versions: a group's versions are the union of its resources' served versions
    /// in their preference order, and the preferred version is the first.
    pub fn groups(&self) -> Vec<ApiGroupInfo> {
        let mut groups: Vec<ApiGroupInfo> = Vec::new();
        for info in &self.resources {
            let index = match groups.iter().position(|g| g.name == info.group) {
                Some(index) => index,
                None => {
                    groups.push(ApiGroupInfo {
                        name: info.group.clone(),
                        versions: Vec::new(),
                        preferred_version: String::new(),
                    });
                    groups.len() - 1
                }
            };
            let group = &mut groups[index];
            for version in &info.versions {
                if !group.versions.contains(version) {
                    group.versions.push(version.clone());
                }
            }
        }
        for group in &mut groups {
            group.preferred_version = group.versions.first().cloned().unwrap_or_default();
        }
        groups.sort_by_key(|g| !g.name.is_empty());
        groups
    }

    /// The resources served at a group version, in discovery order.
    pub fn resources_in(&self, gv: &GroupVersion) -> Vec<&Arc<ResourceInfo>> {
        self.resources
            .iter()
            .filter(|info| info.group == gv.group && info.serves(&gv.version))
            .collect()
    }

    /// Whether a group version is served.
    pub fn serves_group_version(&self, gv: &GroupVersion) -> bool {
        self.resources
            .iter()
            .any(|info| info.group == gv.group && info.serves(&gv.version))
    }

    /// The info of a resource by exact group and plural name (path routing).
    pub fn info_for_resource(&self, gr: &GroupResource) -> Option<&Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|info| info.group == gr.group && info.plural == gr.resource)
    }

    /// The categories in use, sorted.
    pub fn categories(&self) -> BTreeSet<String> {
        self.resources
            .iter()
            .flat_map(|info| info.categories.iter().cloned())
            .collect()
    }
}

/// `schema.ParseResourceArg`: `resource.version.group` (when the argument has two dots or
/// more) and `resource.group`.
fn parse_resource_arg(arg: &str) -> (Option<GroupVersionResource>, GroupVersionResource) {
    let fully = (arg.matches('.').count() >= 2).then(|| {
        let mut parts = arg.splitn(3, '.');
        let resource = parts.next().unwrap_or_default();
        let version = parts.next().unwrap_or_default();
        let group = parts.next().unwrap_or_default();
        GroupVersionResource::new(group, version, resource)
    });
    let partial = match arg.split_once('.') {
        Some((resource, group)) => GroupVersionResource::new(group, "", resource),
        None => GroupVersionResource::from_resource(arg),
    };
    (fully, partial)
}

/// `schema.ParseKindArg`: `Kind.version.group` and `Kind.group`.
fn parse_kind_arg(arg: &str) -> (Option<GroupVersionKind>, GroupKind) {
    let (fully, partial) = parse_resource_arg(arg);
    (
        fully.map(|r| GroupVersionKind::new(r.group, r.version, r.resource)),
        GroupKind::new(partial.group, partial.resource),
    )
}
