//! Matching one RBAC rule against a request, and whether some rules cover others: upstream's
//! `pkg/apis/rbac/v1/evaluation_helpers.go` (`VerbMatches`, `ResourceMatches`, ...) and
//! `pkg/registry/rbac/validation/policy_comparator.go` (`Covers`).

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::authz::Attributes;

/// `*`: every verb, group, resource or path.
pub const ALL: &str = "*";

fn list(values: &Option<Vec<String>>) -> &[String] {
    values.as_deref().unwrap_or_default()
}

fn has(values: &[String], value: &str) -> bool {
    values.iter().any(|v| v == value)
}

/// Whether `rule` allows the request `attributes` (resource or non-resource), as upstream's
/// `RuleAllows`.
pub fn rule_allows(attributes: &Attributes, rule: &PolicyRule) -> bool {
    let verb_matches = rule.verbs.iter().any(|v| v == ALL || *v == attributes.verb);
    if !verb_matches {
        return false;
    }
    if attributes.resource_request {
        let groups = list(&rule.api_groups);
        groups
            .iter()
            .any(|g| g == ALL || *g == attributes.api_group)
            && resource_matches(list(&rule.resources), attributes)
            && resource_name_matches(list(&rule.resource_names), &attributes.name)
    } else {
        list(&rule.non_resource_urls)
            .iter()
            .any(|spec| non_resource_url_matches(spec, &attributes.path))
    }
}

/// `ResourceMatches`: `*`, the exact `resource[/subresource]`, or `*/subresource`. Runs for
/// every rule a request is checked against, so it compares in place instead of building
/// `resource/subresource`.
fn resource_matches(resources: &[String], attributes: &Attributes) -> bool {
    let resource = attributes.resource.as_str();
    let sub = attributes.subresource.as_str();
    resources.iter().any(|r| {
        if r == ALL {
            return true;
        }
        if sub.is_empty() {
            return r == resource;
        }
        let exact = r
            .strip_prefix(resource)
            .and_then(|rest| rest.strip_prefix('/'))
            == Some(sub);
        exact || r.strip_prefix("*/") == Some(sub)
    })
}

/// `ResourceNameMatches`: no names means every name; else the request must name one of them.
fn resource_name_matches(names: &[String], name: &str) -> bool {
    names.is_empty() || has(names, name)
}

/// `NonResourceURLMatches`: `*`, the exact path, or a prefix ending in `*`.
fn non_resource_url_matches(spec: &str, path: &str) -> bool {
    spec == ALL
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// Whether `owner` rules cover every permission of `servant` rules, and the atomic rules they
/// miss (upstream's `Covers`: each servant rule broken down to one verb, group, resource and
/// name, each checked against every owner rule).
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let missing: Vec<PolicyRule> = servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|rule| rule_covers(rule, sub)))
        .collect();
    (missing.is_empty(), missing)
}

/// `BreakdownRule`: one rule per group, resource, verb and name (or none), and one per path
/// and verb.
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |v: &String| Some(vec![v.clone()]);
    let mut out = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let names = list(&rule.resource_names);
                if names.is_empty() {
                    out.push(PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        verbs: vec![verb.clone()],
                        ..PolicyRule::default()
                    });
                }
                for name in names {
                    out.push(PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        verbs: vec![verb.clone()],
                        ..PolicyRule::default()
                    });
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

/// `ruleCovers`: whether `owner` grants everything `sub` does.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(list(&owner.api_groups), ALL)
        || has_all(list(&owner.api_groups), list(&sub.api_groups));
    let resources = resources_cover(list(&owner.resources), list(&sub.resources));
    let urls = list(&sub.non_resource_urls).iter().all(|path| {
        list(&owner.non_resource_urls)
            .iter()
            .any(|spec| spec == path || spec.strip_suffix('*').is_some_and(|p| path.starts_with(p)))
    });
    // A rule without names grants every name; one with names covers only named requests.
    let owner_names = list(&owner.resource_names);
    let sub_names = list(&sub.resource_names);
    let names =
        owner_names.is_empty() || (!sub_names.is_empty() && has_all(owner_names, sub_names));
    verbs && groups && resources && names && urls
}

/// `resourceCoversAll`: `*`, exact matches, or `*/subresource` for subresources.
fn resources_cover(set: &[String], wanted: &[String]) -> bool {
    if has(set, ALL) {
        return true;
    }
    wanted.iter().all(|path| {
        has(set, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(set, &format!("*/{sub}")))
    })
}

/// `CompactRules`: rules on one group and one resource, with no names or paths, merged into one
/// rule per group and resource with all their verbs; others unchanged.
pub fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for rule in rules {
        let simple = list(&rule.api_groups).len() == 1
            && list(&rule.resources).len() == 1
            && list(&rule.resource_names).is_empty()
            && list(&rule.non_resource_urls).is_empty();
        if simple {
            if let Some(existing) = out.iter_mut().find(|o| {
                o.api_groups == rule.api_groups
                    && o.resources == rule.resources
                    && list(&o.resource_names).is_empty()
                    && list(&o.non_resource_urls).is_empty()
            }) {
                for verb in rule.verbs {
                    if !has(&existing.verbs, &verb) {
                        existing.verbs.push(verb);
                    }
                }
                continue;
            }
        }
        out.push(rule);
    }
    out
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub fn go_quoted(values: &[String]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| apimachinery::selector::go_quote(v))
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// `CompactString`: `{APIGroups:[""], Resources:["configmaps"], Verbs:["get"]}`, naming only
/// the fields a rule sets.
pub fn compact_string(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    let mut part = |name: &str, values: &[String]| {
        if !values.is_empty() {
            parts.push(format!("{name}:{}", go_quoted(values)));
        }
    };
    part("APIGroups", list(&rule.api_groups));
    part("Resources", list(&rule.resources));
    part("NonResourceURLs", list(&rule.non_resource_urls));
    part("ResourceNames", list(&rule.resource_names));
    part("Verbs", &rule.verbs);
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::user::UserInfo;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let own = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        PolicyRule {
            api_groups: own(groups),
            resources: own(resources),
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
            resource_names: (!names.is_empty()).then(|| own(names)).flatten(),
            ..PolicyRule::default()
        }
    }

    fn request(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        let user = Arc::new(UserInfo::default());
        Attributes::resource(user, verb, "ns", group, resource, sub, name)
    }

    #[test]
    fn rules_match_as_upstream() {
        let cm = rule(&[""], &["configmaps"], &["get", "list"], &[]);
        assert!(rule_allows(&request("get", "", "configmaps", "", "a"), &cm));
        assert!(!rule_allows(
            &request("delete", "", "configmaps", "", "a"),
            &cm
        ));
        assert!(!rule_allows(
            &request("get", "apps", "configmaps", "", "a"),
            &cm
        ));
        assert!(!rule_allows(
            &request("get", "", "configmaps", "status", "a"),
            &cm
        ));
        let star_status = rule(&["*"], &["*/status"], &["*"], &[]);
        assert!(rule_allows(
            &request("update", "x", "widgets", "status", "w"),
            &star_status
        ));
        assert!(!rule_allows(
            &request("update", "x", "widgets", "", "w"),
            &star_status
        ));
        let exact_status = rule(&["x"], &["widgets/status"], &["update"], &[]);
        assert!(rule_allows(
            &request("update", "x", "widgets", "status", "w"),
            &exact_status
        ));
        assert!(!rule_allows(
            &request("update", "x", "widgets", "", "w"),
            &exact_status
        ));
        assert!(!rule_allows(
            &request("update", "x", "widget", "s/status", "w"),
            &exact_status
        ));
        assert!(!rule_allows(
            &request("update", "x", "widgets", "scale", "w"),
            &exact_status
        ));
        let named = rule(&[""], &["secrets"], &["get"], &["db"]);
        assert!(rule_allows(
            &request("get", "", "secrets", "", "db"),
            &named
        ));
        assert!(!rule_allows(
            &request("get", "", "secrets", "", "other"),
            &named
        ));
        assert!(!rule_allows(&request("get", "", "secrets", "", ""), &named));
        let urls = PolicyRule {
            non_resource_urls: Some(vec!["/healthz".into(), "/api/*".into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        };
        let path = |p: &str| Attributes::non_resource(Arc::new(UserInfo::default()), "get", p);
        assert!(rule_allows(&path("/healthz"), &urls));
        assert!(rule_allows(&path("/api/v1"), &urls));
        assert!(!rule_allows(&path("/apis"), &urls));
        assert!(!rule_allows(
            &request("get", "", "configmaps", "", ""),
            &urls
        ));
    }

    #[test]
    fn coverage_and_compact_strings() {
        let owner = vec![
            rule(&[""], &["configmaps", "*/status"], &["get", "list"], &[]),
            rule(&[""], &["secrets"], &["get"], &["db"]),
        ];
        assert!(covers(&owner, &[rule(&[""], &["configmaps"], &["get"], &[])]).0);
        assert!(covers(&owner, &[rule(&[""], &["pods/status"], &["list"], &[])]).0);
        assert!(covers(&owner, &[rule(&[""], &["secrets"], &["get"], &["db"])]).0);
        assert!(!covers(&owner, &[rule(&[""], &["secrets"], &["get"], &[])]).0);
        let (ok, missing) = covers(
            &owner,
            &[rule(
                &[""],
                &["configmaps"],
                &["get", "create", "delete"],
                &[],
            )],
        );
        assert!(!ok);
        let compacted = compact(missing);
        assert_eq!(compacted.len(), 1);
        assert_eq!(
            compact_string(&compacted[0]),
            r#"{APIGroups:[""], Resources:["configmaps"], Verbs:["create" "delete"]}"#
        );
        let admin = vec![rule(&["*"], &["*"], &["*"], &[])];
        assert!(covers(&admin, &owner).0);
    }
}
