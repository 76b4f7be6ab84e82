//! Discovery documents built from the [`RestMapper`]: legacy (`APIVersions`, `APIGroupList`,
//! `APIResourceList`) and aggregated (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, GroupVersionForDiscovery,
};
use serde_json::{Value, json};

use super::gvk::GroupVersion;
use super::info::ResourceInfo;
use super::mapper::RestMapper;

/// The Content-Type an aggregated discovery response must carry for kubectl to read it.
pub const AGGREGATED_DISCOVERY_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn discovery_version(group: &str, version: &str) -> GroupVersionForDiscovery {
    GroupVersionForDiscovery {
        group_version: GroupVersion::new(group, version).to_string(),
        version: version.to_owned(),
    }
}

fn non_empty(list: &[String]) -> Option<Vec<String>> {
    (!list.is_empty()).then(|| list.to_vec())
}

impl RestMapper {
    /// The versions of the core group, for `GET /api` (`APIVersions.versions`).
    pub fn core_versions(&self) -> Vec<String> {
        self.groups()
            .into_iter()
            .find(|g| g.name.is_empty())
            .map(|g| g.versions)
            .unwrap_or_default()
    }

    /// `GET /apis`: every named (non-core) group with its versions and preferred version.
    pub fn api_group_list(&self) -> APIGroupList {
        APIGroupList {
            groups: self
                .groups()
                .into_iter()
                .filter(|g| !g.name.is_empty())
                .map(|g| APIGroup {
                    preferred_version: Some(discovery_version(&g.name, &g.preferred_version)),
                    versions: g
                        .versions
                        .iter()
                        .map(|v| discovery_version(&g.name, v))
                        .collect(),
                    name: g.name,
                    server_address_by_client_cidrs: None,
                })
                .collect(),
        }
    }

    /// `GET /apis/<group>`: one named group, when served.
    pub fn api_group(&self, group: &str) -> Option<APIGroup> {
        self.api_group_list()
            .groups
            .into_iter()
            .find(|g| g.name == group)
    }

    /// `GET /api/v1` or `GET /apis/<group>/<version>`: the resources of a served group
    /// version, each followed by its subresources (`widgets/status`).
    pub fn api_resource_list(&self, gv: &GroupVersion) -> Option<APIResourceList> {
        if !self.serves_group_version(gv) {
            return None;
        }
        let mut resources = Vec::new();
        for info in self.resources_in(gv) {
            resources.push(APIResource {
                categories: non_empty(&info.categories),
                group: None,
                kind: info.kind.clone(),
                name: info.plural.clone(),
                namespaced: info.namespaced,
                short_names: non_empty(&info.short_names),
                singular_name: info.singular.clone(),
                storage_version_hash: None,
                verbs: info.verbs.clone(),
                version: None,
            });
            for sub in &info.subresources {
                let (group, version) = sub.response_group_version.clone().unzip();
                resources.push(APIResource {
                    kind: sub.kind.clone(),
                    group,
                    version,
                    name: format!("{}/{}", info.plural, sub.name),
                    namespaced: info.namespaced,
                    singular_name: String::new(),
                    verbs: sub.verbs.clone(),
                    ..APIResource::default()
                });
            }
        }
        Some(APIResourceList {
            group_version: gv.to_string(),
            resources,
        })
    }

    /// The aggregated discovery document (`APIGroupDiscoveryList`, apidiscovery.k8s.io/v2)
    /// of the core group (`core` true, for `GET /api`) or of every named group (`GET /apis`).
    /// Serve it with [`AGGREGATED_DISCOVERY_CONTENT_TYPE`].
    pub fn aggregated_discovery(&self, core: bool) -> Value {
        let items: Vec<Value> = self
            .groups()
            .into_iter()
            .filter(|g| g.name.is_empty() == core)
            .map(|g| {
                let versions: Vec<Value> = g
                    .versions
                    .iter()
                    .map(|version| {
                        let gv = GroupVersion::new(g.name.clone(), version.clone());
                        let resources: Vec<Value> = self
                            .resources_in(&gv)
                            .into_iter()
                            .map(|info| aggregated_resource(info, version))
                            .collect();
                        json!({
                            "version": version,
                            "resources": resources,
                            "freshness": "Current",
                        })
                    })
                    .collect();
                json!({
                    "metadata": { "name": g.name, "creationTimestamp": null },
                    "versions": versions,
                })
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }
}

fn aggregated_resource(info: &ResourceInfo, version: &str) -> Value {
    let response_kind = json!({ "group": info.group, "version": version, "kind": info.kind });
    let mut resource = json!({
        "resource": info.plural,
        "responseKind": response_kind,
        "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": info.singular,
        "verbs": info.verbs,
    });
    if let Some(map) = resource.as_object_mut() {
        if !info.short_names.is_empty() {
            map.insert("shortNames".to_owned(), json!(info.short_names));
        }
        if !info.categories.is_empty() {
            map.insert("categories".to_owned(), json!(info.categories));
        }
        if !info.subresources.is_empty() {
            let subresources: Vec<Value> = info
                .subresources
                .iter()
                .map(|sub| {
                    let (group, version) = sub
                        .response_group_version
                        .as_ref()
                        .map_or((info.group.as_str(), version), |(g, v)| {
                            (g.as_str(), v.as_str())
                        });
                    json!({
                        "subresource": sub.name,
                        "responseKind": { "group": group, "version": version, "kind": sub.kind },
                        "verbs": sub.verbs,
                    })
                })
                .collect();
            map.insert("subresources".to_owned(), json!(subresources));
        }
    }
    resource
}
