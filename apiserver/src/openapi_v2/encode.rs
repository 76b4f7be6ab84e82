//! OpenAPI v2 (Swagger 2.0) as protobuf: the body of `GET /openapi/v2` when the client asks for
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`.
//!
//! kubectl 1.27 and 1.28 fetch the document this way (client-go
//! `DiscoveryClient.OpenAPISchema`) and `proto.Unmarshal` the body into gnostic's
//! `openapi_v2.Document`. kube-openapi's `pkg/util/proto` (`NewOpenAPIData`) then walks
//! `definitions`: each schema's `$ref`, `type`, `properties`, `items`, `additionalProperties`,
//! `required`, description and vendor extensions, for `kubectl explain`, client-side validation
//! and the patch metadata of `kubectl apply`. It maps kinds to definitions through the
//! `x-kubernetes-group-version-kind` extension, which it reads by YAML-decoding the `yaml` string
//! of the extension's `NamedAny.value` (`VendorExtensionToMap`, with gopkg.in/yaml.v2, a YAML
//! 1.1 parser). Operations carry the same extension.
//!
//! Messages and field numbers are those of `openapiv2/OpenAPIv2.proto` (package `openapi.v2`)
//! in github.com/google/gnostic-models (the same file as github.com/google/gnostic
//! `openapiv2/OpenAPIv2.proto`, which kubectl 1.27 vendors). The file is proto3: scalars have
//! implicit presence, so they are plain (non-`Option`) fields here and a zero value is not
//! written, as Go's `proto.Marshal` does.
//!
//! kube-apiserver builds its protobuf by letting gnostic parse the JSON document
//! (`openapi_v2.ParseDocument`) and marshalling the result, so [`encode_document`] follows
//! gnostic's parser: `x-` keys become vendor extensions, `Paths` takes keys starting with `/`,
//! `Responses` takes three-digit codes and `default`, a parameter or response with `$ref` is a
//! `JsonReference`, a parameter's `in` picks the body or non-body sub-schema, and `type` may be a
//! string or a list. `items` is one schema; a list (which gnostic rejects) becomes one schema
//! per member.
//!
//! Only the subset a Kubernetes document uses is declared. Not declared (so dropped by the
//! converter): response `headers` and `examples`, `FileSchema` (gnostic picks `Schema` for a
//! response schema anyway), and OAuth2 security definitions.

use std::fmt::Write as _;

use prost::Message;

use super::messages::*;
use serde_json::{Map, Value};

/// A JSON object of the Swagger document.
type Object = Map<String, Value>;

/// How many schemas deep (`properties`, `items`, `additionalProperties`, `allOf`) the converter
/// descends; deeper children are left out. The conversion and prost's encoder recurse once per
/// level, so this bounds their stack use on adversarial input. A JSON document parsed by
/// serde_json (nesting limit 128) never reaches it, since every schema level is at least two
/// JSON levels; Kubernetes schemas nest a few dozen levels at most.
const MAX_SCHEMA_DEPTH: usize = 100;

// ---------------------------------------------------------------------------------------------
// Conversion from the Swagger JSON.
// ---------------------------------------------------------------------------------------------

/// The protobuf encoding of a Swagger 2.0 JSON document, as kube-apiserver serves it for the
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` media type.
///
/// Contract: never panics. A missing field, or one of the wrong JSON type, is left at its
/// protobuf default (not written); unknown fields are ignored; `$ref` strings are copied
/// unchanged; every key starting with `x-` at a level whose message has `vendor_extension`
/// becomes a [`NamedAny`] whose `yaml` is the value as JSON text (valid YAML). Object entries
/// keep the order of the `serde_json::Map`. A non-object input encodes as an empty document
/// (zero bytes).
pub(crate) fn encode_document(doc: &Value) -> Vec<u8> {
    document(doc).encode_to_vec()
}

/// The [`Document`] of a Swagger JSON document (see [`encode_document`]).
fn document(doc: &Value) -> Document {
    let Some(o) = doc.as_object() else {
        return Document::default();
    };
    Document {
        swagger: str_field(o, "swagger"),
        info: info(o.get("info")),
        host: str_field(o, "host"),
        base_path: str_field(o, "basePath"),
        schemes: string_list(o, "schemes"),
        consumes: string_list(o, "consumes"),
        produces: string_list(o, "produces"),
        paths: o.get("paths").and_then(Value::as_object).map(paths),
        definitions: o
            .get("definitions")
            .and_then(Value::as_object)
            .map(|m| Definitions {
                additional_properties: named_schemas(m, 0),
            }),
        parameters: o
            .get("parameters")
            .and_then(Value::as_object)
            .map(|m| ParameterDefinitions {
                additional_properties: m
                    .iter()
                    .filter_map(|(name, p)| {
                        Some(NamedParameter {
                            name: name.clone(),
                            value: Some(parameter(p.as_object()?)?),
                        })
                    })
                    .collect(),
            }),
        responses: o
            .get("responses")
            .and_then(Value::as_object)
            .map(|m| ResponseDefinitions {
                additional_properties: m
                    .iter()
                    .filter_map(|(name, r)| {
                        Some(NamedResponse {
                            name: name.clone(),
                            value: Some(response(r.as_object()?)),
                        })
                    })
                    .collect(),
            }),
        security: security_requirements(o),
        security_definitions: security_definitions(o.get("securityDefinitions")),
        tags: array(o, "tags")
            .iter()
            .filter_map(Value::as_object)
            .map(|t| Tag {
                name: str_field(t, "name"),
                description: str_field(t, "description"),
                external_docs: external_docs(t.get("externalDocs")),
                vendor_extension: vendor_extensions(t),
            })
            .collect(),
        external_docs: external_docs(o.get("externalDocs")),
        vendor_extension: vendor_extensions(o),
    }
}

/// `info`, with its contact and license; `None` unless an object.
fn info(v: Option<&Value>) -> Option<Info> {
    let o = v?.as_object()?;
    Some(Info {
        title: str_field(o, "title"),
        version: str_field(o, "version"),
        description: str_field(o, "description"),
        terms_of_service: str_field(o, "termsOfService"),
        contact: o
            .get("contact")
            .and_then(Value::as_object)
            .map(|c| Contact {
                name: str_field(c, "name"),
                url: str_field(c, "url"),
                email: str_field(c, "email"),
                vendor_extension: vendor_extensions(c),
            }),
        license: o
            .get("license")
            .and_then(Value::as_object)
            .map(|l| License {
                name: str_field(l, "name"),
                url: str_field(l, "url"),
                vendor_extension: vendor_extensions(l),
            }),
        vendor_extension: vendor_extensions(o),
    })
}

/// `paths`: keys starting with `/` are paths, `x-` keys extensions, the rest ignored (as
/// gnostic's `NewPaths` sorts them).
fn paths(o: &Object) -> Paths {
    Paths {
        vendor_extension: vendor_extensions(o),
        path: o
            .iter()
            .filter(|(name, _)| name.starts_with('/'))
            .map(|(name, item)| NamedPathItem {
                name: name.clone(),
                value: Some(path_item(item)),
            })
            .collect(),
    }
}

/// One path's operations and shared parameters; a non-object is an empty item.
fn path_item(v: &Value) -> PathItem {
    let Some(o) = v.as_object() else {
        return PathItem::default();
    };
    PathItem {
        xref: str_field(o, "$ref"),
        get: operation(o.get("get")),
        put: operation(o.get("put")),
        post: operation(o.get("post")),
        delete: operation(o.get("delete")),
        options: operation(o.get("options")),
        head: operation(o.get("head")),
        patch: operation(o.get("patch")),
        parameters: parameters_items(o),
        vendor_extension: vendor_extensions(o),
    }
}

/// One operation; `None` unless an object.
fn operation(v: Option<&Value>) -> Option<Operation> {
    let o = v?.as_object()?;
    Some(Operation {
        tags: string_list(o, "tags"),
        summary: str_field(o, "summary"),
        description: str_field(o, "description"),
        external_docs: external_docs(o.get("externalDocs")),
        operation_id: str_field(o, "operationId"),
        produces: string_list(o, "produces"),
        consumes: string_list(o, "consumes"),
        parameters: parameters_items(o),
        responses: o.get("responses").and_then(Value::as_object).map(responses),
        schemes: string_list(o, "schemes"),
        deprecated: bool_field(o, "deprecated"),
        security: security_requirements(o),
        vendor_extension: vendor_extensions(o),
    })
}

/// The `parameters` list of an operation or path item. Members that are neither a `$ref` nor
/// a parameter with a known `in` are left out (gnostic rejects them).
fn parameters_items(o: &Object) -> Vec<ParametersItem> {
    array(o, "parameters")
        .iter()
        .filter_map(|v| {
            let p = v.as_object()?;
            // A `$ref` wins: gnostic's parameter sub-schemas reject the `$ref` key, so its
            // parser falls through to `JsonReference`.
            let oneof = if has_ref(p) {
                ParametersItemOneof::JsonReference(json_reference(p))
            } else {
                ParametersItemOneof::Parameter(parameter(p)?)
            };
            Some(ParametersItem { oneof: Some(oneof) })
        })
        .collect()
}

/// A parameter, body or non-body by its `in`; `None` when `in` is missing or unknown.
fn parameter(o: &Object) -> Option<Parameter> {
    let oneof = match o.get("in").and_then(Value::as_str)? {
        "body" => ParameterOneof::BodyParameter(BodyParameter {
            description: str_field(o, "description"),
            name: str_field(o, "name"),
            in_: str_field(o, "in"),
            required: bool_field(o, "required"),
            schema: o
                .get("schema")
                .filter(|s| s.is_object())
                .map(|s| Box::new(schema(s, 0))),
            vendor_extension: vendor_extensions(o),
        }),
        location => ParameterOneof::NonBodyParameter(non_body_parameter(o, location)?),
    };
    Some(Parameter { oneof: Some(oneof) })
}

/// Builds one of the messages with the shared "primitive" fields (`type` through `multipleOf`
/// and vendor extensions): the non-body parameter sub-schemas and [`PrimitivesItems`], from
/// JSON object `$o`, nesting `items` at `$depth`. `$extra` are the type's other fields,
/// written by the caller.
macro_rules! primitive_fields {
    ($ty:ident, $o:expr, $depth:expr, { $($extra:ident: $value:expr),* $(,)? }) => {{
        let o: &Object = $o;
        $ty {
            type_: str_field(o, "type"),
            format: str_field(o, "format"),
            items: primitives_items(o.get("items"), $depth),
            collection_format: str_field(o, "collectionFormat"),
            default: any_field(o, "default"),
            maximum: f64_field(o, "maximum"),
            exclusive_maximum: bool_field(o, "exclusiveMaximum"),
            minimum: f64_field(o, "minimum"),
            exclusive_minimum: bool_field(o, "exclusiveMinimum"),
            max_length: i64_field(o, "maxLength"),
            min_length: i64_field(o, "minLength"),
            pattern: str_field(o, "pattern"),
            max_items: i64_field(o, "maxItems"),
            min_items: i64_field(o, "minItems"),
            unique_items: bool_field(o, "uniqueItems"),
            enum_: any_list(o, "enum"),
            multiple_of: f64_field(o, "multipleOf"),
            vendor_extension: vendor_extensions(o),
            $($extra: $value,)*
        }
    }};
}

/// A query or formData parameter (one message serves both).
fn query_like(o: &Object) -> Box<QueryParameterSubSchema> {
    Box::new(primitive_fields!(QueryParameterSubSchema, o, 0, {
        required: bool_field(o, "required"),
        in_: str_field(o, "in"),
        description: str_field(o, "description"),
        name: str_field(o, "name"),
        allow_empty_value: bool_field(o, "allowEmptyValue"),
    }))
}

/// A path or header parameter (one message serves both).
fn path_like(o: &Object) -> Box<PathParameterSubSchema> {
    Box::new(primitive_fields!(PathParameterSubSchema, o, 0, {
        required: bool_field(o, "required"),
        in_: str_field(o, "in"),
        description: str_field(o, "description"),
        name: str_field(o, "name"),
    }))
}

/// A non-body parameter at `location` (its `in`); `None` for an unknown location.
fn non_body_parameter(o: &Object, location: &str) -> Option<NonBodyParameter> {
    let oneof = match location {
        "header" => NonBodyParameterOneof::HeaderParameterSubSchema(path_like(o)),
        "formData" => NonBodyParameterOneof::FormDataParameterSubSchema(query_like(o)),
        "query" => NonBodyParameterOneof::QueryParameterSubSchema(query_like(o)),
        "path" => NonBodyParameterOneof::PathParameterSubSchema(path_like(o)),
        _ => return None,
    };
    Some(NonBodyParameter { oneof: Some(oneof) })
}

/// The `items` of a non-body parameter (or of another `items`) at nesting `depth`; `None`
/// unless an object, or past [`MAX_SCHEMA_DEPTH`].
fn primitives_items(v: Option<&Value>, depth: usize) -> Option<Box<PrimitivesItems>> {
    let o = v?.as_object()?;
    if depth >= MAX_SCHEMA_DEPTH {
        return None;
    }
    Some(Box::new(primitive_fields!(
        PrimitivesItems,
        o,
        depth + 1,
        {}
    )))
}

/// An operation's `responses`: keys that are three digits or `default` are responses, `x-`
/// keys extensions, the rest ignored (gnostic's `NewResponses` patterns).
fn responses(o: &Object) -> Responses {
    Responses {
        response_code: o
            .iter()
            .filter(|(code, _)| is_response_code(code))
            .filter_map(|(code, v)| {
                let r = v.as_object()?;
                let oneof = if has_ref(r) {
                    ResponseValueOneof::JsonReference(json_reference(r))
                } else {
                    ResponseValueOneof::Response(response(r))
                };
                Some(NamedResponseValue {
                    name: code.clone(),
                    value: Some(ResponseValue { oneof: Some(oneof) }),
                })
            })
            .collect(),
        vendor_extension: vendor_extensions(o),
    }
}

/// Whether `key` names a response: `^([0-9]{3})$|^(default)$`.
fn is_response_code(key: &str) -> bool {
    key == "default" || (key.len() == 3 && key.bytes().all(|b| b.is_ascii_digit()))
}

/// One inline response.
fn response(o: &Object) -> Response {
    Response {
        description: str_field(o, "description"),
        schema: o
            .get("schema")
            .filter(|s| s.is_object())
            .map(|s| SchemaItem {
                oneof: Some(SchemaItemOneof::Schema(Box::new(schema(s, 0)))),
            }),
        vendor_extension: vendor_extensions(o),
    }
}

/// A `{"$ref": ...}` object as a [`JsonReference`].
fn json_reference(o: &Object) -> JsonReference {
    JsonReference {
        xref: str_field(o, "$ref"),
        description: str_field(o, "description"),
    }
}

/// Whether the object has a string `$ref`.
fn has_ref(o: &Object) -> bool {
    o.get("$ref").is_some_and(Value::is_string)
}

/// A schema at nesting `depth` (0 for a definition, a body or a response). A non-object is an
/// empty schema. At [`MAX_SCHEMA_DEPTH`] the nested schemas (`properties`, `items`,
/// `additionalProperties`, `allOf`) are left out; the schema's own fields are kept.
fn schema(v: &Value, depth: usize) -> Schema {
    let Some(o) = v.as_object() else {
        return Schema::default();
    };
    // The nested schemas, or none once deep enough.
    let nested = |key: &str| {
        if depth < MAX_SCHEMA_DEPTH {
            o.get(key)
        } else {
            None
        }
    };
    let child = depth + 1;
    Schema {
        xref: str_field(o, "$ref"),
        format: str_field(o, "format"),
        title: str_field(o, "title"),
        description: str_field(o, "description"),
        default: any_field(o, "default"),
        multiple_of: f64_field(o, "multipleOf"),
        maximum: f64_field(o, "maximum"),
        exclusive_maximum: bool_field(o, "exclusiveMaximum"),
        minimum: f64_field(o, "minimum"),
        exclusive_minimum: bool_field(o, "exclusiveMinimum"),
        max_length: i64_field(o, "maxLength"),
        min_length: i64_field(o, "minLength"),
        pattern: str_field(o, "pattern"),
        max_items: i64_field(o, "maxItems"),
        min_items: i64_field(o, "minItems"),
        unique_items: bool_field(o, "uniqueItems"),
        max_properties: i64_field(o, "maxProperties"),
        min_properties: i64_field(o, "minProperties"),
        required: string_list(o, "required"),
        enum_: any_list(o, "enum"),
        additional_properties: additional_properties(nested("additionalProperties"), child),
        type_: type_item(o.get("type")),
        items: items_item(nested("items"), child),
        all_of: nested("allOf")
            .and_then(Value::as_array)
            .map(|all| all.iter().map(|s| schema(s, child)).collect())
            .unwrap_or_default(),
        properties: nested("properties")
            .and_then(Value::as_object)
            .map(|m| Properties {
                additional_properties: named_schemas(m, child),
            }),
        discriminator: str_field(o, "discriminator"),
        read_only: bool_field(o, "readOnly"),
        xml: o.get("xml").and_then(Value::as_object).map(|x| Xml {
            name: str_field(x, "name"),
            namespace: str_field(x, "namespace"),
            prefix: str_field(x, "prefix"),
            attribute: bool_field(x, "attribute"),
            wrapped: bool_field(x, "wrapped"),
            vendor_extension: vendor_extensions(x),
        }),
        external_docs: external_docs(o.get("externalDocs")),
        example: any_field(o, "example"),
        vendor_extension: vendor_extensions(o),
    }
}

/// Every entry of `definitions` or `properties` as a [`NamedSchema`] at `depth`.
fn named_schemas(m: &Object, depth: usize) -> Vec<NamedSchema> {
    m.iter()
        .map(|(name, s)| NamedSchema {
            name: name.clone(),
            value: Some(schema(s, depth)),
        })
        .collect()
}

/// `additionalProperties`: a boolean or a schema; `None` for anything else.
fn additional_properties(v: Option<&Value>, depth: usize) -> Option<AdditionalPropertiesItem> {
    let oneof = match v? {
        Value::Bool(b) => AdditionalPropertiesItemOneof::Boolean(*b),
        s @ Value::Object(_) => AdditionalPropertiesItemOneof::Schema(Box::new(schema(s, depth))),
        _ => return None,
    };
    Some(AdditionalPropertiesItem { oneof: Some(oneof) })
}

/// `type`: a string is a one-member list, a list keeps its strings; `None` for anything else.
fn type_item(v: Option<&Value>) -> Option<TypeItem> {
    match v? {
        Value::String(t) => Some(TypeItem {
            value: vec![t.clone()],
        }),
        Value::Array(types) => Some(TypeItem {
            value: strings(types),
        }),
        _ => None,
    }
}

/// `items`: an object is one schema, a list one schema per member; `None` for anything else.
fn items_item(v: Option<&Value>, depth: usize) -> Option<ItemsItem> {
    let v = v?;
    match v {
        Value::Object(_) => Some(ItemsItem {
            schema: vec![schema(v, depth)],
        }),
        Value::Array(all) => Some(ItemsItem {
            schema: all.iter().map(|s| schema(s, depth)).collect(),
        }),
        _ => None,
    }
}

/// `externalDocs`; `None` unless an object.
fn external_docs(v: Option<&Value>) -> Option<ExternalDocs> {
    let o = v?.as_object()?;
    Some(ExternalDocs {
        description: str_field(o, "description"),
        url: str_field(o, "url"),
        vendor_extension: vendor_extensions(o),
    })
}

/// `security` of the document or an operation: a list of `{scheme: [scopes]}` objects.
fn security_requirements(o: &Object) -> Vec<SecurityRequirement> {
    array(o, "security")
        .iter()
        .filter_map(Value::as_object)
        .map(|requirement| SecurityRequirement {
            additional_properties: requirement
                .iter()
                .map(|(name, scopes)| NamedStringArray {
                    name: name.clone(),
                    value: Some(StringArray {
                        value: scopes.as_array().map(|s| strings(s)).unwrap_or_default(),
                    }),
                })
                .collect(),
        })
        .collect()
}

/// `securityDefinitions`: `basic` and `apiKey` schemes; other types (OAuth2) are left out.
fn security_definitions(v: Option<&Value>) -> Option<SecurityDefinitions> {
    let m = v?.as_object()?;
    Some(SecurityDefinitions {
        additional_properties: m
            .iter()
            .filter_map(|(name, def)| {
                let o = def.as_object()?;
                let oneof = match o.get("type").and_then(Value::as_str)? {
                    "basic" => SecurityDefinitionsItemOneof::BasicAuthenticationSecurity(
                        BasicAuthenticationSecurity {
                            type_: str_field(o, "type"),
                            description: str_field(o, "description"),
                            vendor_extension: vendor_extensions(o),
                        },
                    ),
                    "apiKey" => SecurityDefinitionsItemOneof::ApiKeySecurity(ApiKeySecurity {
                        type_: str_field(o, "type"),
                        name: str_field(o, "name"),
                        in_: str_field(o, "in"),
                        description: str_field(o, "description"),
                        vendor_extension: vendor_extensions(o),
                    }),
                    _ => return None,
                };
                Some(NamedSecurityDefinitionsItem {
                    name: name.clone(),
                    value: Some(SecurityDefinitionsItem { oneof: Some(oneof) }),
                })
            })
            .collect(),
    })
}

/// The `x-` keys of an object as vendor extensions, in the object's order.
fn vendor_extensions(o: &Object) -> Vec<NamedAny> {
    o.iter()
        .filter(|(name, _)| name.starts_with("x-"))
        .map(|(name, v)| NamedAny {
            name: name.clone(),
            value: Some(any(v)),
        })
        .collect()
}

/// A JSON value as a gnostic [`Any`] (only `yaml` set).
fn any(v: &Value) -> Any {
    Any {
        value: None,
        yaml: yaml_text(v),
    }
}

/// `key` as an [`Any`], `None` when absent (a JSON `null` is present: YAML `null`).
fn any_field(o: &Object, key: &str) -> Option<Any> {
    o.get(key).map(any)
}

/// The members of list `key` as [`Any`]s (`enum`).
fn any_list(o: &Object, key: &str) -> Vec<Any> {
    array(o, key).iter().map(any).collect()
}

/// The value as the YAML text of an [`Any`].
///
/// It is compact JSON rather than serde_yaml_ng's block YAML: JSON is valid YAML, and kubectl
/// reads the text with yaml.v2, a YAML 1.1 parser, which would turn plain scalars such as `yes`,
/// `on` or `y` (left unquoted by a YAML 1.2 emitter) into booleans; a JSON string is always
/// double-quoted, so it stays a string. The characters libyaml refuses in input even inside
/// quotes (the C1 controls and DEL, which serde_json writes raw, and U+FEFF/U+FFFE/U+FFFF) are
/// written as `\uXXXX` escapes, which JSON and YAML read alike. Serializing a `Value` cannot
/// fail; the empty-string fallback would only make readers skip the value.
fn yaml_text(v: &Value) -> String {
    let json = serde_json::to_string(v).unwrap_or_default();
    if !json.chars().any(needs_yaml_escape) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if needs_yaml_escape(c) {
            // Outside strings serde_json writes only ASCII, so `c` is inside a string, where an
            // escape is valid. Every such character is in the Basic Multilingual Plane and not
            // a surrogate, so one `\uXXXX` spells it.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether YAML 1.1 readers refuse `c` as a raw character (see [`yaml_text`]).
fn needs_yaml_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// String field `key`, empty unless a string.
fn str_field(o: &Object, key: &str) -> String {
    o.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Boolean field `key`, `false` unless a boolean.
fn bool_field(o: &Object, key: &str) -> bool {
    o.get(key).and_then(Value::as_bool).unwrap_or_default()
}

/// Number field `key` as a double, 0 unless a number.
fn f64_field(o: &Object, key: &str) -> f64 {
    o.get(key).and_then(Value::as_f64).unwrap_or_default()
}

/// Number field `key` as an int64, 0 unless a number. Integers above `i64::MAX` saturate, as
/// do floats (`as` saturates and maps NaN to 0; it never panics); fractions are truncated.
fn i64_field(o: &Object, key: &str) -> i64 {
    let Some(v) = o.get(key) else {
        return 0;
    };
    if let Some(i) = v.as_i64() {
        i
    } else if v.is_u64() {
        i64::MAX
    } else {
        v.as_f64().map_or(0, |f| f as i64)
    }
}

/// List field `key`, empty unless a list.
fn array<'a>(o: &'a Object, key: &str) -> &'a [Value] {
    o.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The string members of a list (others skipped).
fn strings(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The string members of list field `key` (`consumes`, `produces`, `schemes`, `tags`,
/// `required`).
fn string_list(o: &Object, key: &str) -> Vec<String> {
    strings(array(o, key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const WIDGET: &str = "io.example.v1.Widget";
    const WIDGET_PATH: &str = "/apis/example.io/v1/namespaces/{namespace}/widgets/{name}";

    fn gvk() -> Value {
        json!([{"group": "example.io", "version": "v1", "kind": "Widget"}])
    }

    /// A small document in the shape kube-apiserver serves.
    fn sample() -> Value {
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.28.0"},
            "paths": {
                WIDGET_PATH: {
                    "parameters": [
                        {"$ref": "#/parameters/namespace-vxFvr8"},
                        {"in": "path", "name": "name", "required": true, "type": "string",
                         "uniqueItems": true, "description": "name of the Widget"}
                    ],
                    "get": {
                        "operationId": "readExampleV1NamespacedWidget",
                        "description": "read the specified Widget",
                        "consumes": ["*/*"],
                        "produces": ["application/json", "application/yaml"],
                        "schemes": ["https"],
                        "tags": ["exampleV1"],
                        "responses": {
                            "200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{WIDGET}")}},
                            "401": {"description": "Unauthorized"}
                        },
                        "x-kubernetes-action": "get",
                        "x-kubernetes-group-version-kind": {"group": "example.io", "version": "v1", "kind": "Widget"}
                    },
                    "patch": {
                        "operationId": "patchExampleV1NamespacedWidget",
                        "consumes": ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"],
                        "produces": ["application/json"],
                        "parameters": [
                            {"in": "body", "name": "body", "required": true,
                             "schema": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}},
                            {"in": "query", "name": "fieldValidation", "type": "string", "uniqueItems": true,
                             "description": "how to handle unknown fields"}
                        ],
                        "responses": {"200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{WIDGET}")}}},
                        "x-kubernetes-action": "patch",
                        "x-kubernetes-group-version-kind": {"group": "example.io", "version": "v1", "kind": "Widget"}
                    }
                },
                "x-paths-extension": true
            },
            "parameters": {
                "namespace-vxFvr8": {"in": "path", "name": "namespace", "required": true,
                                     "type": "string", "uniqueItems": true}
            },
            "definitions": {
                WIDGET: {
                    "description": "A Widget.",
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "spec": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "properties": {
                                "sizes": {"type": "array", "items": {"type": "integer", "format": "int32"},
                                          "maxItems": 10, "minimum": 1.5}
                            }
                        },
                        "status": {"type": "object", "additionalProperties": false}
                    },
                    "x-kubernetes-group-version-kind": gvk()
                }
            },
            "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}},
            "security": [{"BearerToken": []}]
        })
    }

    fn decode(doc: &Value) -> Document {
        Document::decode(encode_document(doc).as_slice()).expect("decodes as openapi.v2.Document")
    }

    fn property<'a>(s: &'a Schema, name: &str) -> &'a Schema {
        s.properties
            .as_ref()
            .expect("properties")
            .additional_properties
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.as_ref())
            .unwrap_or_else(|| panic!("property {name}"))
    }

    #[test]
    fn definitions_round_trip() {
        let doc = decode(&sample());
        assert_eq!(doc.swagger, "2.0");
        let info = doc.info.as_ref().expect("info");
        assert_eq!(
            (info.title.as_str(), info.version.as_str()),
            ("Kubernetes", "v1.28.0")
        );

        let definitions = &doc
            .definitions
            .as_ref()
            .expect("definitions")
            .additional_properties;
        assert_eq!(definitions.len(), 1);
        let named = definitions.first().expect("one definition");
        assert_eq!(named.name, WIDGET);
        let widget = named.value.as_ref().expect("schema");
        assert_eq!(widget.description, "A Widget.");
        assert_eq!(widget.type_.as_ref().expect("type").value, vec!["object"]);
        assert_eq!(widget.required, vec!["spec"]);

        let mut names: Vec<&str> = widget
            .properties
            .as_ref()
            .expect("properties")
            .additional_properties
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, vec!["apiVersion", "spec", "status"]);

        let spec = property(widget, "spec");
        let Some(AdditionalPropertiesItemOneof::Schema(values)) = spec
            .additional_properties
            .as_ref()
            .and_then(|a| a.oneof.as_ref())
        else {
            panic!("spec.additionalProperties is a schema");
        };
        assert_eq!(values.type_.as_ref().expect("type").value, vec!["string"]);
        let sizes = property(spec, "sizes");
        let item = sizes
            .items
            .as_ref()
            .expect("items")
            .schema
            .first()
            .expect("one item schema");
        assert_eq!(item.type_.as_ref().expect("type").value, vec!["integer"]);
        assert_eq!(item.format, "int32");
        assert_eq!((sizes.max_items, sizes.minimum), (10, 1.5));

        // `false` is a set oneof member, so it survives proto3's zero-value elision.
        let status = property(widget, "status");
        assert_eq!(
            status
                .additional_properties
                .as_ref()
                .and_then(|a| a.oneof.clone()),
            Some(AdditionalPropertiesItemOneof::Boolean(false))
        );

        assert_eq!(widget.vendor_extension.len(), 1);
        let extension = widget.vendor_extension.first().expect("extension");
        assert_eq!(extension.name, "x-kubernetes-group-version-kind");
        let yaml = &extension.value.as_ref().expect("value").yaml;
        let parsed: Value = serde_yaml_ng::from_str(yaml).expect("yaml parses");
        assert_eq!(parsed, gvk());
    }

    #[test]
    fn paths_round_trip() {
        let doc = decode(&sample());
        let paths = doc.paths.as_ref().expect("paths");
        assert_eq!(paths.path.len(), 1);
        assert_eq!(
            paths.vendor_extension.first().map(|e| e.name.as_str()),
            Some("x-paths-extension")
        );
        let named = paths.path.first().expect("one path");
        assert_eq!(named.name, WIDGET_PATH);
        let item = named.value.as_ref().expect("path item");

        // Path-level parameters: a reference, then an inline path parameter.
        let Some(ParametersItemOneof::JsonReference(reference)) =
            item.parameters.first().and_then(|p| p.oneof.as_ref())
        else {
            panic!("first path parameter is a $ref");
        };
        assert_eq!(reference.xref, "#/parameters/namespace-vxFvr8");
        let Some(ParametersItemOneof::Parameter(Parameter {
            oneof:
                Some(ParameterOneof::NonBodyParameter(NonBodyParameter {
                    oneof: Some(NonBodyParameterOneof::PathParameterSubSchema(name)),
                })),
        })) = item.parameters.get(1).and_then(|p| p.oneof.as_ref())
        else {
            panic!("second path parameter is in: path");
        };
        assert_eq!(
            (name.name.as_str(), name.required, name.unique_items),
            ("name", true, true)
        );

        let get = item.get.as_ref().expect("get");
        assert_eq!(get.operation_id, "readExampleV1NamespacedWidget");
        assert_eq!(get.schemes, vec!["https"]);
        assert_eq!(get.tags, vec!["exampleV1"]);
        let responses = get.responses.as_ref().expect("responses");
        let codes: Vec<&str> = responses
            .response_code
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert!(codes.contains(&"200") && codes.contains(&"401"));
        let ok = responses
            .response_code
            .iter()
            .find(|r| r.name == "200")
            .and_then(|r| r.value.as_ref())
            .and_then(|v| v.oneof.as_ref());
        let Some(ResponseValueOneof::Response(ok)) = ok else {
            panic!("200 is an inline response");
        };
        assert_eq!(ok.description, "OK");
        let Some(SchemaItemOneof::Schema(body)) = ok.schema.as_ref().and_then(|s| s.oneof.as_ref())
        else {
            panic!("200 has a schema");
        };
        assert_eq!(body.xref, format!("#/definitions/{WIDGET}"));

        let patch = item.patch.as_ref().expect("patch");
        assert_eq!(patch.operation_id, "patchExampleV1NamespacedWidget");
        assert!(
            patch
                .consumes
                .iter()
                .any(|c| c == "application/apply-patch+yaml")
        );
        let Some(ParametersItemOneof::Parameter(Parameter {
            oneof: Some(ParameterOneof::BodyParameter(body)),
        })) = patch.parameters.first().and_then(|p| p.oneof.as_ref())
        else {
            panic!("first patch parameter is the body");
        };
        assert_eq!(
            (body.name.as_str(), body.in_.as_str(), body.required),
            ("body", "body", true)
        );
        assert_eq!(
            body.schema.as_ref().expect("body schema").xref,
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
        );
        let Some(ParametersItemOneof::Parameter(Parameter {
            oneof:
                Some(ParameterOneof::NonBodyParameter(NonBodyParameter {
                    oneof: Some(NonBodyParameterOneof::QueryParameterSubSchema(query)),
                })),
        })) = patch.parameters.get(1).and_then(|p| p.oneof.as_ref())
        else {
            panic!("second patch parameter is in: query");
        };
        assert_eq!(query.name, "fieldValidation");
        assert_eq!(query.type_, "string");
        assert!(query.unique_items);

        let operation_gvk = patch
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .and_then(|e| e.value.as_ref())
            .expect("operation gvk");
        let parsed: Value = serde_yaml_ng::from_str(&operation_gvk.yaml).expect("yaml parses");
        assert_eq!(
            parsed,
            json!({"group": "example.io", "version": "v1", "kind": "Widget"})
        );
    }

    #[test]
    fn shared_parameters_and_security() {
        let doc = decode(&sample());
        let shared = &doc
            .parameters
            .as_ref()
            .expect("parameters")
            .additional_properties;
        let namespace = shared.first().expect("one shared parameter");
        assert_eq!(namespace.name, "namespace-vxFvr8");
        assert!(matches!(
            namespace.value.as_ref().and_then(|p| p.oneof.as_ref()),
            Some(ParameterOneof::NonBodyParameter(NonBodyParameter {
                oneof: Some(NonBodyParameterOneof::PathParameterSubSchema(_)),
            }))
        ));
        let scheme = doc
            .security_definitions
            .as_ref()
            .and_then(|s| s.additional_properties.first())
            .expect("security definition");
        assert_eq!(scheme.name, "BearerToken");
        assert!(matches!(
            scheme.value.as_ref().and_then(|v| v.oneof.as_ref()),
            Some(SecurityDefinitionsItemOneof::ApiKeySecurity(key)) if key.in_ == "header"
        ));
        assert_eq!(
            doc.security
                .first()
                .and_then(|r| r.additional_properties.first())
                .map(|n| n.name.as_str()),
            Some("BearerToken")
        );
    }

    #[test]
    fn empty_and_malformed_input_do_not_panic() {
        assert!(encode_document(&json!({})).is_empty());
        assert_eq!(decode(&json!({})), Document::default());
        assert!(encode_document(&Value::Null).is_empty());
        assert!(encode_document(&json!([1, 2])).is_empty());

        let malformed = json!({
            "swagger": 2,
            "info": "nope",
            "paths": {"/x": {"get": [], "put": {"parameters": [1, {"in": 5}, {"in": "cookie"}],
                                                 "responses": {"200": 3, "abc": {}}}}, "/y": 7},
            "definitions": {"a": 5, "b": {"properties": 3, "items": "x", "additionalProperties": "no",
                                          "type": 7, "maxLength": 1e300, "minLength": -1.5,
                                          "maxItems": u64::MAX, "allOf": {}, "enum": "x"}},
            "parameters": {"p": {"in": 5}, "q": []},
            "security": [1, {"a": 2}],
            "tags": [null]
        });
        let doc = decode(&malformed);
        let b = doc
            .definitions
            .as_ref()
            .and_then(|d| d.additional_properties.iter().find(|n| n.name == "b"))
            .and_then(|n| n.value.as_ref())
            .expect("b");
        assert_eq!(
            (b.max_length, b.min_length, b.max_items),
            (i64::MAX, -1, i64::MAX)
        );
        assert!(b.properties.is_none() && b.items.is_none() && b.additional_properties.is_none());
        let put = doc
            .paths
            .as_ref()
            .and_then(|p| p.path.iter().find(|n| n.name == "/x"))
            .and_then(|n| n.value.as_ref())
            .and_then(|i| i.put.as_ref())
            .expect("put");
        assert!(put.parameters.is_empty());
        assert_eq!(
            put.responses.as_ref().map(|r| r.response_code.len()),
            Some(0)
        );
    }

    #[test]
    fn deep_schemas_are_cut_at_the_depth_limit() {
        let mut deep = json!({"type": "string"});
        for _ in 0..(MAX_SCHEMA_DEPTH + 50) {
            deep = json!({"type": "array", "items": deep});
        }
        let input = json!({"definitions": {"deep": deep}});
        assert!(!encode_document(&input).is_empty());
        let doc = document(&input);
        let mut current = doc
            .definitions
            .as_ref()
            .and_then(|d| d.additional_properties.first())
            .and_then(|n| n.value.as_ref())
            .expect("deep");
        let mut levels = 0;
        while let Some(next) = current.items.as_ref().and_then(|i| i.schema.first()) {
            levels += 1;
            current = next;
        }
        assert_eq!(levels, MAX_SCHEMA_DEPTH);
    }

    #[test]
    fn yaml_text_escapes_characters_yaml_refuses() {
        let value = json!({"s": "a\u{7f}b\u{85}c\u{feff}", "yes": "on"});
        let text = yaml_text(&value);
        assert!(!text.chars().any(needs_yaml_escape), "{text}");
        assert!(text.contains("\\u007f") && text.contains("\\u0085") && text.contains("\\ufeff"));
        let parsed: Value = serde_yaml_ng::from_str(&text).expect("yaml parses");
        assert_eq!(parsed, value);
    }
}
