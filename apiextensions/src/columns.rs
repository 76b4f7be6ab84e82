//! `additionalPrinterColumns`: the Table columns of a custom kind, each read from the object
//! with a simple JSONPath, rendered as upstream's `customresource/tableconvertor` renders them.

use registry::strategy::{TableColumn, human_duration};
use serde_json::{Map, Value};

/// One step of a simple JSONPath (`.spec.replicas`, `.items[0]`, `.conditions[?(@.type=="Ready")]`).
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter { field: String, equals: Value },
}

/// A parsed JSONPath of the subset column and selectable-field paths use.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `.a.b[0].c`, `.a[*].b`, `.a[?(@.k=="v")].b` (optionally wrapped in `{}`).
    ///
    /// # Errors
    ///
    /// What is wrong with the path, for the CRD's validation message.
    pub fn parse(path: &str) -> Result<Self, String> {
        let text = path
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .unwrap_or(path);
        let text = text.strip_prefix('$').unwrap_or(text);
        if !text.starts_with('.') {
            return Err("must be a simple json path starting with .".to_owned());
        }
        let mut steps = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() {
                    return Err(format!("empty field name in {path:?}"));
                }
                steps.push(Step::Field(name.to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after
                    .find(']')
                    .ok_or_else(|| format!("unclosed [ in {path:?}"))?;
                let inside = &after[..end];
                steps.push(
                    parse_bracket(inside)
                        .ok_or_else(|| format!("unsupported subscript [{inside}] in {path:?}"))?,
                );
                rest = &after[end + 1..];
            } else {
                return Err(format!("unexpected {rest:?} in {path:?}"));
            }
        }
        Ok(JsonPath { steps })
    }

    /// The first value the path selects in `object`, if any.
    pub fn first<'a>(&self, object: &'a Value) -> Option<&'a Value> {
        first_from(&self.steps, object)
    }

    /// [`JsonPath::first`] in an object given as its fields, without building the object.
    pub fn first_in<'a>(&self, fields: &'a Map<String, Value>) -> Option<&'a Value> {
        match self.steps.split_first() {
            Some((Step::Field(name), rest)) => first_from(rest, fields.get(name)?),
            _ => None,
        }
    }
}

fn parse_bracket(inside: &str) -> Option<Step> {
    if inside == "*" {
        return Some(Step::All);
    }
    if let Ok(index) = inside.parse::<usize>() {
        return Some(Step::Index(index));
    }
    let filter = inside.strip_prefix("?(@.")?.strip_suffix(')')?;
    let (field, literal) = filter.split_once("==")?;
    let literal = literal.trim();
    let equals = if let Some(s) = literal
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .or_else(|| {
            literal
                .strip_prefix('\'')
                .and_then(|l| l.strip_suffix('\''))
        }) {
        Value::from(s)
    } else {
        serde_json::from_str(literal).ok()?
    };
    Some(Step::Filter {
        field: field.trim().to_owned(),
        equals,
    })
}

fn first_from<'a>(steps: &[Step], value: &'a Value) -> Option<&'a Value> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(value);
    };
    match step {
        Step::Field(name) => first_from(rest, value.get(name)?),
        Step::Index(i) => first_from(rest, value.get(*i)?),
        Step::All => value.as_array()?.iter().find_map(|v| first_from(rest, v)),
        Step::Filter { field, equals } => value
            .as_array()?
            .iter()
            .filter(|item| item.get(field) == Some(equals))
            .find_map(|v| first_from(rest, v)),
    }
}

/// One printer column: its definition and its parsed path.
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    /// The column as the Table's `columnDefinitions` shows it.
    pub definition: TableColumn,
    path: JsonPath,
}

impl PrinterColumn {
    /// A column named `name` of `type_` (`integer`, `number`, `string`, `boolean`, `date`)
    /// read from `json_path`.
    ///
    /// # Errors
    ///
    /// A path outside the supported subset.
    pub fn new(
        name: &str,
        type_: &str,
        format: &str,
        description: &str,
        priority: i32,
        json_path: &str,
    ) -> Result<Self, String> {
        Ok(PrinterColumn {
            definition: TableColumn::new(name, type_, format, description).with_priority(priority),
            path: JsonPath::parse(json_path)?,
        })
    }

    /// The cell of `object` (the whole document), as upstream's `cellForJSONValue`: `date`
    /// columns show the age, other types the value if it has that type, else nothing.
    pub fn cell(&self, object: &Value) -> Value {
        let Some(value) = self.path.first(object) else {
            return Value::Null;
        };
        match self.definition.type_.as_str() {
            "date" => match value.as_str() {
                Some(text) => Value::from(age_of(text)),
                None => Value::Null,
            },
            "integer" if value.is_i64() || value.is_u64() => value.clone(),
            "number" if value.is_number() => value.clone(),
            "boolean" if value.is_boolean() => value.clone(),
            "string" => match value {
                Value::String(_) => value.clone(),
                Value::Null => Value::Null,
                other => Value::from(other.to_string()),
            },
            _ => Value::Null,
        }
    }
}

/// The age of an RFC 3339 timestamp, `<invalid>` when it does not parse.
fn age_of(text: &str) -> String {
    let Ok(then) = text.parse::<k8s_openapi::jiff::Timestamp>() else {
        return "<invalid>".to_owned();
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    human_duration(now.as_second() - then.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_paths_select_the_first_match() {
        let object = json!({"spec": {"replicas": 3, "items": [{"n": "a"}, {"n": "b"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let value = |path: &str| JsonPath::parse(path).unwrap().first(&object).cloned();
        assert_eq!(value(".spec.replicas"), Some(json!(3)));
        assert_eq!(value("{.spec.items[1].n}"), Some(json!("b")));
        assert_eq!(value(".spec.items[*].n"), Some(json!("a")));
        assert_eq!(
            value(".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(value(".spec.missing"), None);
        assert!(JsonPath::parse("spec").is_err());
        assert!(JsonPath::parse(".a[?(@.x>1)]").is_err());
    }

    #[test]
    fn cells_follow_the_column_type() {
        let object = json!({"spec": {"replicas": 3, "name": "n"},
            "metadata": {"creationTimestamp": "2000-01-01T00:00:00Z"}});
        let column = |t: &str, p: &str| PrinterColumn::new("C", t, "", "", 0, p).unwrap();
        assert_eq!(column("integer", ".spec.replicas").cell(&object), json!(3));
        assert_eq!(column("string", ".spec.replicas").cell(&object), json!("3"));
        assert_eq!(
            column("boolean", ".spec.replicas").cell(&object),
            Value::Null
        );
        assert!(
            column("date", ".metadata.creationTimestamp")
                .cell(&object)
                .as_str()
                .unwrap()
                .ends_with('y')
        );
    }
}
