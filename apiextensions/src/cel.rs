//! CEL validation rules (`x-kubernetes-validations`), through the `cel` crate: compiled once
//! per CRD version, checked at CRD create and update time (syntax and upstream's static
//! cost limits), and evaluated against objects with `self` and, for transition rules,
//! `oldSelf` (upstream's `apiextensions-apiserver/pkg/apiserver/schema/cel`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use apimachinery::status::{FieldError, FieldErrorType};
use cel::common::ast::{Expr, IdedExpr};
use cel::{Context, Env, Program};
use serde_json::{Map, Value};

use crate::Unstructured;

/// Upstream's `StaticEstimatedCostLimit`: the most one rule may be estimated to cost,
/// counting how many times it runs (`celconfig.PerCallLimit` x 10).
pub const RULE_COST_LIMIT: u64 = 10_000_000;
/// Upstream's `StaticEstimatedCRDCostLimit`: the most all rules of a schema may cost together.
pub const SCHEMA_COST_LIMIT: u64 = 100_000_000;
/// The largest request body upstream accepts (3 MiB), which bounds unbounded lists, maps and
/// strings in cost estimates (upstream's `maxRequestSizeBytes`).
const MAX_REQUEST_BYTES: u64 = 3 * 1024 * 1024;

/// The CEL environment of validation rules: the standard library plus the string, list and
/// math extensions Kubernetes offers.
fn environment() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // The crate's own extensions declare nothing the standard library has, so adding
        // them cannot fail; if one did, rules using it would fail to compile, visibly.
        let _ = env.add_extension(cel::extensions::strings);
        let _ = env.add_extension(cel::extensions::lists);
        let _ = env.add_extension(cel::extensions::math);
        Arc::new(env)
    })
    .clone()
}

/// One compiled rule of a schema node.
#[derive(Clone)]
struct Rule {
    text: String,
    program: Arc<Program>,
    message: Option<String>,
    message_expression: Option<Arc<Program>>,
    reason: FieldErrorType,
    field_path: Option<String>,
    /// The rule reads `oldSelf`: it runs only on updates where the old value exists.
    transition: bool,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("rule", &self.text)
            .finish_non_exhaustive()
    }
}

/// The compiled rules of a schema, by schema node (the node's address inside the schema,
/// which the owning [`crate::schema::StructuralSchema`] keeps alive and unchanged).
#[derive(Clone, Debug, Default)]
pub(crate) struct Rules {
    by_node: HashMap<usize, Vec<Rule>>,
}

fn node_key(schema: &Value) -> usize {
    std::ptr::from_ref(schema) as usize
}

fn references_old_self(expr: &IdedExpr) -> bool {
    match &expr.expr {
        Expr::Ident(name) => name == "oldSelf",
        Expr::Select(select) => references_old_self(&select.operand),
        Expr::Call(call) => {
            call.target.as_deref().is_some_and(references_old_self)
                || call.args.iter().any(references_old_self)
        }
        Expr::Comprehension(c) => [
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ]
        .into_iter()
        .any(references_old_self),
        Expr::List(list) => list.elements.iter().any(references_old_self),
        Expr::Map(map) => map.entries.iter().any(|entry| match &entry.expr {
            cel::common::ast::EntryExpr::MapEntry(e) => {
                references_old_self(&e.key) || references_old_self(&e.value)
            }
            cel::common::ast::EntryExpr::StructField(f) => references_old_self(&f.value),
        }),
        _ => false,
    }
}

fn reason_of(reason: Option<&str>) -> FieldErrorType {
    match reason {
        Some("FieldValueForbidden") => FieldErrorType::Forbidden,
        Some("FieldValueRequired") => FieldErrorType::Required,
        Some("FieldValueDuplicate") => FieldErrorType::Duplicate,
        _ => FieldErrorType::Invalid,
    }
}

impl Rules {
    /// Compiles every rule under `root`; rules that do not compile are left out (the CRD's
    /// validation, [`rule_errors`], rejects them).
    pub(crate) fn compile(root: &Value) -> Self {
        let mut rules = Rules::default();
        walk_nodes(root, &mut |node| {
            let Some(list) = node
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
            else {
                return;
            };
            let compiled: Vec<Rule> = list.iter().filter_map(|r| compile_rule(r).ok()).collect();
            if !compiled.is_empty() {
                rules.by_node.insert(node_key(node), compiled);
            }
        });
        rules
    }

    /// Whether any node has rules.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    /// Evaluates the rules of `schema`'s nodes against `value` (the whole object document,
    /// or `None`), with `old` the stored object on updates.
    pub(crate) fn validate(
        &self,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
    ) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.node(schema, value, old, "", &mut errors);
        errors
    }

    fn node(
        &self,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        match value {
            Value::Object(map) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                for (key, child) in map {
                    let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional)
                    else {
                        continue;
                    };
                    let old_child = old.and_then(|o| o.get(key));
                    self.node(child_schema, child, old_child, &join(path, key), errors);
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    let old_items = old
                        .and_then(Value::as_array)
                        .map(|o| OldItems::index(schema, o));
                    for (i, item) in items.iter().enumerate() {
                        let old_item = old_items.as_ref().and_then(|o| o.find(schema, item));
                        self.node(item_schema, item, old_item, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            _ => {}
        }
        if let Some(rules) = self.by_node.get(&node_key(schema)) {
            for rule in rules {
                evaluate(rule, schema, value, old, path, errors);
            }
        }
    }
}

/// The old items of a `map` or `set` list by their key, so each new item finds its old one
/// (`oldSelf`) in one lookup; upstream correlates only those list types, so atomic lists
/// have none.
struct OldItems<'a> {
    by_key: HashMap<String, &'a Value>,
}

impl<'a> OldItems<'a> {
    fn index(schema: &Value, old: &'a [Value]) -> Self {
        let by_key = old
            .iter()
            .filter_map(|item| list_key(schema, item).map(|key| (key, item)))
            .collect();
        OldItems { by_key }
    }

    fn find(&self, schema: &Value, item: &Value) -> Option<&'a Value> {
        self.by_key.get(&list_key(schema, item)?).copied()
    }
}

/// The identity of a list item: the whole item in a `set`, its key fields in a `map`.
fn list_key(schema: &Value, item: &Value) -> Option<String> {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => Some(item.to_string()),
        Some("map") => {
            let keys = schema.get("x-kubernetes-list-map-keys")?.as_array()?;
            let fields: Vec<Value> = keys
                .iter()
                .filter_map(Value::as_str)
                .map(|k| item.get(k).cloned().unwrap_or(Value::Null))
                .collect();
            Some(Value::from(fields).to_string())
        }
        _ => None,
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn type_name(schema: &Value) -> &str {
    schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
}

fn evaluate(
    rule: &Rule,
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if rule.transition && old.is_none() {
        return;
    }
    let mut context = Context::with_env(environment());
    let Ok(self_value) = cel::to_value(value) else {
        return;
    };
    context.add_variable_from_value("self", self_value);
    if let Some(old) = old.and_then(|o| cel::to_value(o).ok()) {
        context.add_variable_from_value("oldSelf", old);
    }
    let field = match &rule.field_path {
        Some(extra) => format!("{path}{extra}"),
        None => path.to_owned(),
    };
    let field = field.trim_start_matches('.').to_owned();
    let detail = match rule.program.execute(&context) {
        Ok(cel::Value::Bool(true)) => return,
        Ok(cel::Value::Bool(false)) => rule_message(rule, &context),
        Ok(other) => format!("rule did not evaluate to a bool: {other:?}"),
        Err(error) => format!("rule evaluation error: {error}"),
    };
    errors.push(match rule.reason {
        FieldErrorType::Forbidden => FieldError::forbidden(field, detail),
        FieldErrorType::Required => FieldError::required(field, detail),
        kind => FieldError {
            kind,
            field,
            value: Some(Value::from(type_name(schema))),
            detail,
        },
    });
}

/// Upstream's message of a failed rule: `messageExpression`'s string, else `message`, else
/// `failed rule: <rule>`.
fn rule_message(rule: &Rule, context: &Context) -> String {
    if let Some(expression) = &rule.message_expression {
        if let Ok(cel::Value::String(text)) = expression.execute(context) {
            if !text.trim().is_empty() {
                return text.to_string();
            }
        }
    }
    match &rule.message {
        Some(message) if !message.is_empty() => message.clone(),
        _ => format!("failed rule: {}", rule.text),
    }
}

fn compile_rule(rule: &Value) -> Result<Rule, String> {
    let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
    let env = environment();
    let program = env.compile(text).map_err(|e| e.to_string())?;
    let message_expression = match rule.get("messageExpression").and_then(Value::as_str) {
        Some(source) if !source.is_empty() => {
            Some(Arc::new(env.compile(source).map_err(|e| e.to_string())?))
        }
        _ => None,
    };
    let transition = references_old_self(program.expression());
    Ok(Rule {
        text: text.to_owned(),
        program: Arc::new(program),
        message: rule
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
        message_expression,
        reason: reason_of(rule.get("reason").and_then(Value::as_str)),
        field_path: rule
            .get("fieldPath")
            .and_then(Value::as_str)
            .map(str::to_owned),
        transition,
    })
}

/// Calls `visit` on every schema node under `root` (properties, additional properties,
/// items and the logical junctors).
fn walk_nodes<'a>(schema: &'a Value, visit: &mut impl FnMut(&'a Value)) {
    let Value::Object(map) = schema else { return };
    visit(schema);
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for child in properties.values() {
            walk_nodes(child, visit);
        }
    }
    for key in ["additionalProperties", "items", "not"] {
        if let Some(child) = map.get(key).filter(|c| c.is_object()) {
            walk_nodes(child, visit);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for child in map.get(key).and_then(Value::as_array).into_iter().flatten() {
            walk_nodes(child, visit);
        }
    }
}

/// The rule problems of a CRD version's schema at `path` (`...openAPIV3Schema`): rules that
/// do not compile, `reason`s upstream does not allow, and upstream's static cost limits.
pub fn rule_errors(root: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut total: u64 = 0;
    rule_errors_at(root, path, 1, &mut total, &mut errors);
    if total > SCHEMA_COST_LIMIT {
        errors.push(FieldError::forbidden(
            path,
            format!(
                "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of {:.1}x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)",
                total as f64 / SCHEMA_COST_LIMIT as f64
            ),
        ));
    }
    errors
}

fn rule_errors_at(
    schema: &Value,
    path: &str,
    cardinality: u64,
    total: &mut u64,
    errors: &mut Vec<FieldError>,
) {
    let Value::Object(map) = schema else { return };
    for (i, rule) in map
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let rule_path = format!("{path}.x-kubernetes-validations[{i}]");
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
        if text.trim().is_empty() {
            errors.push(FieldError::required(format!("{rule_path}.rule"), ""));
            continue;
        }
        if let Some(reason) = rule.get("reason").and_then(Value::as_str) {
            let allowed = [
                "FieldValueInvalid",
                "FieldValueForbidden",
                "FieldValueRequired",
                "FieldValueDuplicate",
            ];
            if !allowed.contains(&reason) {
                errors.push(FieldError::not_supported(
                    format!("{rule_path}.reason"),
                    reason,
                    &allowed,
                ));
            }
        }
        match compile_rule(rule) {
            Err(problem) => errors.push(FieldError::invalid(
                format!("{rule_path}.rule"),
                text,
                format!("compilation failed: {problem}"),
            )),
            Ok(compiled) => {
                let cost = Estimator {
                    self_schema: schema,
                }
                .cost(compiled.program.expression(), &HashMap::new())
                .saturating_mul(cardinality);
                *total = total.saturating_add(cost);
                if cost > RULE_COST_LIMIT {
                    errors.push(FieldError::forbidden(
                        rule_path,
                        format!(
                            "estimated rule cost exceeds budget by factor of {:.1}x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)",
                            cost as f64 / RULE_COST_LIMIT as f64
                        ),
                    ));
                }
            }
        }
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            rule_errors_at(
                child,
                &format!("{path}.properties[{name}]"),
                cardinality,
                total,
                errors,
            );
        }
    }
    if let Some(additional) = map.get("additionalProperties").filter(|a| a.is_object()) {
        let count = max_entries(schema, "maxProperties", additional);
        rule_errors_at(
            additional,
            &format!("{path}.additionalProperties"),
            cardinality.saturating_mul(count),
            total,
            errors,
        );
    }
    if let Some(items) = map.get("items").filter(|i| i.is_object()) {
        let count = max_entries(schema, "maxItems", items);
        rule_errors_at(
            items,
            &format!("{path}.items"),
            cardinality.saturating_mul(count),
            total,
            errors,
        );
    }
}

/// The fewest bytes one value of `schema` takes in a request, plus a separator.
fn min_size(schema: &Value) -> u64 {
    let own = match schema.get("type").and_then(Value::as_str) {
        Some("string") => 2 + schema.get("minLength").and_then(Value::as_u64).unwrap_or(0),
        Some("boolean") => 4,
        Some("integer" | "number") => 1,
        _ => 2,
    };
    own + 1
}

/// The most entries a collection may have: its `max` bound, else as many of its smallest
/// elements as fit in a request.
fn max_entries(schema: &Value, max: &str, element: &Value) -> u64 {
    schema
        .get(max)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| MAX_REQUEST_BYTES / min_size(element))
}

/// A static cost estimate of a rule, in the spirit of CEL's cost estimator: each step costs 1,
/// a comprehension costs its body times the most elements its range may have, and string
/// scans cost a tenth of the longest string they may see.
struct Estimator<'a> {
    self_schema: &'a Value,
}

impl<'a> Estimator<'a> {
    /// The schema of the value `expr` denotes, when it is `self`, `oldSelf`, a bound
    /// comprehension variable or a field of one of them.
    fn schema_of(&self, expr: &IdedExpr, bound: &HashMap<String, &'a Value>) -> Option<&'a Value> {
        match &expr.expr {
            Expr::Ident(name) if name == "self" || name == "oldSelf" => Some(self.self_schema),
            Expr::Ident(name) => bound.get(name).copied(),
            Expr::Select(select) if !select.test => {
                let parent = self.schema_of(&select.operand, bound)?;
                parent
                    .get("properties")
                    .and_then(|p| p.get(&select.field))
                    .or_else(|| parent.get("additionalProperties").filter(|a| a.is_object()))
            }
            _ => None,
        }
    }

    /// The most elements (or characters) the value of `expr` may have.
    fn size_of(&self, expr: &IdedExpr, bound: &HashMap<String, &'a Value>) -> u64 {
        let Some(schema) = self.schema_of(expr, bound) else {
            return match &expr.expr {
                Expr::List(list) => list.elements.len() as u64,
                _ => MAX_REQUEST_BYTES,
            };
        };
        if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
            return max_entries(schema, "maxItems", items);
        }
        if let Some(values) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            return max_entries(schema, "maxProperties", values);
        }
        if let Some(length) = schema.get("maxLength").and_then(Value::as_u64) {
            return length;
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            return properties.len() as u64;
        }
        MAX_REQUEST_BYTES
    }

    fn element_schema(
        &self,
        range: &IdedExpr,
        bound: &HashMap<String, &'a Value>,
    ) -> Option<&'a Value> {
        let schema = self.schema_of(range, bound)?;
        schema
            .get("items")
            .filter(|i| i.is_object())
            .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
    }

    fn cost(&self, expr: &IdedExpr, bound: &HashMap<String, &'a Value>) -> u64 {
        match &expr.expr {
            Expr::Call(call) => {
                let mut cost = 1u64;
                if let Some(target) = &call.target {
                    cost = cost.saturating_add(self.cost(target, bound));
                }
                for arg in &call.args {
                    cost = cost.saturating_add(self.cost(arg, bound));
                }
                let scans = matches!(
                    call.func_name.as_str(),
                    "matches"
                        | "contains"
                        | "startsWith"
                        | "endsWith"
                        | "indexOf"
                        | "lastIndexOf"
                        | "replace"
                        | "split"
                        | "lowerAscii"
                        | "upperAscii"
                        | "trim"
                        | "find"
                        | "findAll"
                        | "_+_"
                        | "join"
                );
                if scans {
                    // Only a value whose schema is known has a known bound; a computed
                    // value (an accumulator, a literal) counts as one step.
                    let scanned = call
                        .target
                        .as_deref()
                        .or(call.args.first())
                        .filter(|t| self.schema_of(t, bound).is_some())
                        .map_or(1, |t| self.size_of(t, bound));
                    cost = cost.saturating_add(scanned / 10 + 1);
                }
                cost
            }
            Expr::Comprehension(comprehension) => {
                let elements = self.size_of(&comprehension.iter_range, bound);
                let mut inner = bound.clone();
                if let Some(element) = self.element_schema(&comprehension.iter_range, bound) {
                    inner.insert(comprehension.iter_var.clone(), element);
                }
                let body = self
                    .cost(&comprehension.loop_cond, &inner)
                    .saturating_add(self.cost(&comprehension.loop_step, &inner));
                self.cost(&comprehension.iter_range, bound)
                    .saturating_add(self.cost(&comprehension.accu_init, bound))
                    .saturating_add(elements.saturating_mul(body))
                    .saturating_add(self.cost(&comprehension.result, &inner))
            }
            Expr::Select(select) => self.cost(&select.operand, bound).saturating_add(1),
            Expr::List(list) => list
                .elements
                .iter()
                .fold(1u64, |acc, e| acc.saturating_add(self.cost(e, bound))),
            Expr::Map(map) => map
                .entries
                .iter()
                .fold(1u64, |acc, entry| match &entry.expr {
                    cel::common::ast::EntryExpr::MapEntry(e) => acc
                        .saturating_add(self.cost(&e.key, bound))
                        .saturating_add(self.cost(&e.value, bound)),
                    cel::common::ast::EntryExpr::StructField(f) => {
                        acc.saturating_add(self.cost(&f.value, bound))
                    }
                }),
            _ => 1,
        }
    }
}

/// The document a root rule sees as `self`: the object with only `name` and `generateName` of
/// its metadata, as upstream; built from the object's parts, so the rest of the metadata is
/// never serialised.
pub(crate) fn root_self(object: &Unstructured) -> Value {
    let mut map = object.content.clone();
    if !object.api_version.is_empty() {
        map.insert(
            "apiVersion".to_owned(),
            Value::from(object.api_version.as_str()),
        );
    }
    if !object.kind.is_empty() {
        map.insert("kind".to_owned(), Value::from(object.kind.as_str()));
    }
    let mut meta = Map::new();
    if let Some(name) = &object.metadata.name {
        meta.insert("name".to_owned(), Value::from(name.as_str()));
    }
    if let Some(prefix) = &object.metadata.generate_name {
        meta.insert("generateName".to_owned(), Value::from(prefix.as_str()));
    }
    map.insert("metadata".to_owned(), Value::Object(meta));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.replicas", "message": "replicas must be at least minReplicas"},
                {"rule": "self.replicas <= 10"},
                {"rule": "self.replicas >= oldSelf.replicas", "messageExpression": "'replicas may not shrink from ' + string(oldSelf.replicas)"},
            ],
            "properties": {
                "replicas": {"type": "integer"},
                "minReplicas": {"type": "integer"},
                "name": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "name is immutable", "reason": "FieldValueForbidden"}]},
            }
        }}})
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn rules_and_transition_rules_report_upstream_messages() {
        let schema = schema();
        let rules = Rules::compile(&schema);
        let object = json!({"spec": {"replicas": 12, "minReplicas": 20, "name": "a"}});
        assert_eq!(
            messages(&rules.validate(&schema, &object, None)),
            [
                "spec: Invalid value: \"object\": replicas must be at least minReplicas",
                "spec: Invalid value: \"object\": failed rule: self.replicas <= 10",
            ]
        );
        let old = json!({"spec": {"replicas": 5, "minReplicas": 1, "name": "b"}});
        let new = json!({"spec": {"replicas": 3, "minReplicas": 1, "name": "a"}});
        assert_eq!(
            messages(&rules.validate(&schema, &new, Some(&old))),
            [
                "spec.name: Forbidden: name is immutable",
                "spec: Invalid value: \"object\": replicas may not shrink from 5",
            ]
        );
    }

    #[test]
    fn crd_time_checks_compile_and_cost() {
        let path = "spec.versions[0].schema.openAPIV3Schema";
        let bad = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==="}]});
        let errors = messages(&rule_errors(&bad, path));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: \"self.a ===\": compilation failed: "), "{errors:?}");
        let unbounded = json!({"type": "object", "properties": {"lists": {
            "type": "array", "items": {"type": "array", "items": {"type": "string"},
            "x-kubernetes-validations": [{"rule": "self.all(x, x.all(y, y.startsWith('a')))"}]}}}});
        let errors = messages(&rule_errors(&unbounded, path));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("estimated rule cost exceeds budget by factor of")),
            "{errors:?}"
        );
        let bounded = json!({"type": "object", "properties": {"lists": {
            "type": "array", "maxItems": 10, "items": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10},
            "x-kubernetes-validations": [{"rule": "self.all(y, y.startsWith('a'))"}]}}}});
        assert_eq!(messages(&rule_errors(&bounded, path)), Vec::<String>::new());
    }
}
