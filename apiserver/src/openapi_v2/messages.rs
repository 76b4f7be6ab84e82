//! The messages of gnostic's `openapiv2/OpenAPIv2.proto` (package `openapi.v2`) that a
//! Kubernetes document uses, with upstream's field numbers and oneof layout; see
//! [`super::encode`] for how a Swagger JSON document becomes one.

// The names mirror the proto's messages and oneof fields.
#![allow(clippy::enum_variant_names)]

use prost::{Message, Oneof};

// ---------------------------------------------------------------------------------------------
// Messages of openapiv2/OpenAPIv2.proto, in the upstream file's (alphabetical) order.
// ---------------------------------------------------------------------------------------------

/// `AdditionalPropertiesItem`: a schema's `additionalProperties`, a schema or a boolean.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct AdditionalPropertiesItem {
    /// `oneof oneof { Schema schema = 1; bool boolean = 2; }`.
    #[prost(oneof = "AdditionalPropertiesItemOneof", tags = "1, 2")]
    pub oneof: Option<AdditionalPropertiesItemOneof>,
}

/// The `oneof` of [`AdditionalPropertiesItem`].
#[derive(Clone, PartialEq, Oneof)]
pub(crate) enum AdditionalPropertiesItemOneof {
    /// An object: the schema of every additional property. Boxed: `Schema` contains this.
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
    /// `true` or `false`. Written even when `false` (a set oneof member always is).
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

/// gnostic's `Any`: an arbitrary JSON/YAML value (defaults, examples, enum members, vendor
/// extensions). gnostic's parser fills only `yaml`; so does this converter.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Any {
    /// `google.protobuf.Any value = 1`, never set.
    #[prost(message, optional, tag = "1")]
    pub value: Option<GoogleProtobufAny>,
    /// `string yaml = 2`: the value as YAML text.
    #[prost(string, tag = "2")]
    pub yaml: String,
}

/// `google.protobuf.Any`, declared only so [`Any`] has its upstream layout.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct GoogleProtobufAny {
    /// `string type_url = 1`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// `bytes value = 2`.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `ApiKeySecurity`: a `securityDefinitions` entry of `type: apiKey` (Kubernetes' `BearerToken`).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ApiKeySecurity {
    /// `type`.
    #[prost(string, tag = "1")]
    pub type_: String,
    /// `name`: the header or query parameter.
    #[prost(string, tag = "2")]
    pub name: String,
    /// `in`: `header` or `query`.
    #[prost(string, tag = "3")]
    pub in_: String,
    /// `description`.
    #[prost(string, tag = "4")]
    pub description: String,
    /// `x-` keys.
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `BasicAuthenticationSecurity`: a `securityDefinitions` entry of `type: basic`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct BasicAuthenticationSecurity {
    /// `type`.
    #[prost(string, tag = "1")]
    pub type_: String,
    /// `description`.
    #[prost(string, tag = "2")]
    pub description: String,
    /// `x-` keys.
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `BodyParameter`: a parameter with `in: body`, whose type is a schema.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct BodyParameter {
    /// `description`.
    #[prost(string, tag = "1")]
    pub description: String,
    /// `name`.
    #[prost(string, tag = "2")]
    pub name: String,
    /// `in`: always `body`.
    #[prost(string, tag = "3")]
    pub in_: String,
    /// `required`.
    #[prost(bool, tag = "4")]
    pub required: bool,
    /// `schema`, usually a `$ref` to a definition. Boxed to keep the parameter oneofs small.
    #[prost(message, optional, boxed, tag = "5")]
    pub schema: Option<Box<Schema>>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Contact` of `info`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Contact {
    /// `name`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `url`.
    #[prost(string, tag = "2")]
    pub url: String,
    /// `email`.
    #[prost(string, tag = "3")]
    pub email: String,
    /// `x-` keys.
    #[prost(message, repeated, tag = "4")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Definitions`: the document's `definitions`, in the JSON object's order.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Definitions {
    /// `repeated NamedSchema additional_properties = 1`.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `Document`: the whole Swagger 2.0 document, what kubectl unmarshals.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Document {
    /// `swagger`: `2.0`.
    #[prost(string, tag = "1")]
    pub swagger: String,
    /// `info`.
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    /// `host`.
    #[prost(string, tag = "3")]
    pub host: String,
    /// `basePath`.
    #[prost(string, tag = "4")]
    pub base_path: String,
    /// `schemes`.
    #[prost(string, repeated, tag = "5")]
    pub schemes: Vec<String>,
    /// `consumes`.
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    /// `produces`.
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    /// `paths`.
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    /// `definitions`.
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    /// `parameters`: shared parameters that operations `$ref` as `#/parameters/<name>`.
    #[prost(message, optional, tag = "10")]
    pub parameters: Option<ParameterDefinitions>,
    /// `responses`: shared responses.
    #[prost(message, optional, tag = "11")]
    pub responses: Option<ResponseDefinitions>,
    /// `security`.
    #[prost(message, repeated, tag = "12")]
    pub security: Vec<SecurityRequirement>,
    /// `securityDefinitions`.
    #[prost(message, optional, tag = "13")]
    pub security_definitions: Option<SecurityDefinitions>,
    /// `tags`.
    #[prost(message, repeated, tag = "14")]
    pub tags: Vec<Tag>,
    /// `externalDocs`.
    #[prost(message, optional, tag = "15")]
    pub external_docs: Option<ExternalDocs>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `ExternalDocs`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ExternalDocs {
    /// `description`.
    #[prost(string, tag = "1")]
    pub description: String,
    /// `url`.
    #[prost(string, tag = "2")]
    pub url: String,
    /// `x-` keys.
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `FormDataParameterSubSchema`: a parameter with `in: formData`, numbered field for field as
/// [`QueryParameterSubSchema`], so one message serves both.
pub(crate) type FormDataParameterSubSchema = QueryParameterSubSchema;

/// `HeaderParameterSubSchema`: a parameter with `in: header`, numbered field for field as
/// [`PathParameterSubSchema`], so one message serves both.
pub(crate) type HeaderParameterSubSchema = PathParameterSubSchema;

/// `Info`: the document's `info`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Info {
    /// `title`.
    #[prost(string, tag = "1")]
    pub title: String,
    /// `version`.
    #[prost(string, tag = "2")]
    pub version: String,
    /// `description`.
    #[prost(string, tag = "3")]
    pub description: String,
    /// `termsOfService`.
    #[prost(string, tag = "4")]
    pub terms_of_service: String,
    /// `contact`.
    #[prost(message, optional, tag = "5")]
    pub contact: Option<Contact>,
    /// `license`.
    #[prost(message, optional, tag = "6")]
    pub license: Option<License>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "7")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `ItemsItem`: a schema's `items`; one schema for an object, one per member for a list.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ItemsItem {
    /// `repeated Schema schema = 1`.
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

/// `JsonReference`: a parameter or response that is only a `$ref`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct JsonReference {
    /// `string _ref = 1`: the `$ref`, unchanged.
    #[prost(string, tag = "1")]
    pub xref: String,
    /// `description`.
    #[prost(string, tag = "2")]
    pub description: String,
}

/// `License` of `info`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct License {
    /// `name`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `url`.
    #[prost(string, tag = "2")]
    pub url: String,
    /// `x-` keys.
    #[prost(message, repeated, tag = "3")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `NamedAny`: one vendor extension, the `x-` key and its value.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedAny {
    /// The key, `x-` included.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value, as YAML in [`Any::yaml`].
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

/// `NamedParameter`: one entry of the document's `parameters`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedParameter {
    /// The key.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The parameter.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Parameter>,
}

/// `NamedPathItem`: one entry of `paths`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedPathItem {
    /// The path, starting with `/`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its operations.
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

/// `NamedResponse`: one entry of the document's `responses`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedResponse {
    /// The key.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The response.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Response>,
}

/// `NamedResponseValue`: one entry of an operation's `responses`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedResponseValue {
    /// The status code (`200`, ...) or `default`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The response or a reference to one.
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

/// `NamedSchema`: one entry of `definitions` or of a schema's `properties`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedSchema {
    /// The definition or property name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its schema.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

/// `NamedSecurityDefinitionsItem`: one entry of `securityDefinitions`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedSecurityDefinitionsItem {
    /// The scheme's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The scheme.
    #[prost(message, optional, tag = "2")]
    pub value: Option<SecurityDefinitionsItem>,
}

/// `NamedStringArray`: one entry of a security requirement, scheme name to scopes.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NamedStringArray {
    /// The scheme's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The scopes.
    #[prost(message, optional, tag = "2")]
    pub value: Option<StringArray>,
}

/// `NonBodyParameter`: a parameter that is not `in: body`, by location.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct NonBodyParameter {
    /// `oneof oneof { header = 1; form_data = 2; query = 3; path = 4; }`.
    #[prost(oneof = "NonBodyParameterOneof", tags = "1, 2, 3, 4")]
    pub oneof: Option<NonBodyParameterOneof>,
}

/// The `oneof` of [`NonBodyParameter`]. The sub-schemas are boxed to keep the enum small.
#[derive(Clone, PartialEq, Oneof)]
pub(crate) enum NonBodyParameterOneof {
    /// `in: header`.
    #[prost(message, tag = "1")]
    HeaderParameterSubSchema(Box<HeaderParameterSubSchema>),
    /// `in: formData`.
    #[prost(message, tag = "2")]
    FormDataParameterSubSchema(Box<FormDataParameterSubSchema>),
    /// `in: query`.
    #[prost(message, tag = "3")]
    QueryParameterSubSchema(Box<QueryParameterSubSchema>),
    /// `in: path`.
    #[prost(message, tag = "4")]
    PathParameterSubSchema(Box<PathParameterSubSchema>),
}

/// `Operation`: one method of a path.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Operation {
    /// `tags`.
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    /// `summary`.
    #[prost(string, tag = "2")]
    pub summary: String,
    /// `description`.
    #[prost(string, tag = "3")]
    pub description: String,
    /// `externalDocs`.
    #[prost(message, optional, tag = "4")]
    pub external_docs: Option<ExternalDocs>,
    /// `operationId`.
    #[prost(string, tag = "5")]
    pub operation_id: String,
    /// `produces`.
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    /// `consumes`.
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    /// `parameters`.
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    /// `responses`.
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    /// `schemes`.
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    /// `deprecated`.
    #[prost(bool, tag = "11")]
    pub deprecated: bool,
    /// `security`.
    #[prost(message, repeated, tag = "12")]
    pub security: Vec<SecurityRequirement>,
    /// `x-` keys (`x-kubernetes-action`, `x-kubernetes-group-version-kind`, ...).
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Parameter`: a body or non-body parameter.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Parameter {
    /// `oneof oneof { body_parameter = 1; non_body_parameter = 2; }`.
    #[prost(oneof = "ParameterOneof", tags = "1, 2")]
    pub oneof: Option<ParameterOneof>,
}

/// The `oneof` of [`Parameter`].
#[derive(Clone, PartialEq, Oneof)]
pub(crate) enum ParameterOneof {
    /// `in: body`.
    #[prost(message, tag = "1")]
    BodyParameter(BodyParameter),
    /// Any other `in`.
    #[prost(message, tag = "2")]
    NonBodyParameter(NonBodyParameter),
}

/// `ParameterDefinitions`: the document's `parameters`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ParameterDefinitions {
    /// `repeated NamedParameter additional_properties = 1`.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedParameter>,
}

/// `ParametersItem`: one member of an operation's or path's `parameters`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ParametersItem {
    /// `oneof oneof { Parameter parameter = 1; JsonReference json_reference = 2; }`.
    #[prost(oneof = "ParametersItemOneof", tags = "1, 2")]
    pub oneof: Option<ParametersItemOneof>,
}

/// The `oneof` of [`ParametersItem`].
#[derive(Clone, PartialEq, Oneof)]
pub(crate) enum ParametersItemOneof {
    /// An inline parameter.
    #[prost(message, tag = "1")]
    Parameter(Parameter),
    /// `{"$ref": "#/parameters/<name>"}`.
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

/// `PathItem`: the operations of one path.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct PathItem {
    /// `string _ref = 1`: `$ref`.
    #[prost(string, tag = "1")]
    pub xref: String,
    /// `get`.
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    /// `put`.
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    /// `post`.
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    /// `delete`.
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    /// `options`.
    #[prost(message, optional, tag = "6")]
    pub options: Option<Operation>,
    /// `head`.
    #[prost(message, optional, tag = "7")]
    pub head: Option<Operation>,
    /// `patch`.
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    /// `parameters` shared by the path's operations.
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `PathParameterSubSchema`: a parameter with `in: path`. Same numbering as
/// [`HeaderParameterSubSchema`].
#[derive(Clone, PartialEq, Message)]
pub(crate) struct PathParameterSubSchema {
    /// `required`.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// `in`.
    #[prost(string, tag = "2")]
    pub in_: String,
    /// `description`.
    #[prost(string, tag = "3")]
    pub description: String,
    /// `name`.
    #[prost(string, tag = "4")]
    pub name: String,
    /// `type`.
    #[prost(string, tag = "5")]
    pub type_: String,
    /// `format`.
    #[prost(string, tag = "6")]
    pub format: String,
    /// `items` (for `type: array`).
    #[prost(message, optional, boxed, tag = "7")]
    pub items: Option<Box<PrimitivesItems>>,
    /// `collectionFormat`.
    #[prost(string, tag = "8")]
    pub collection_format: String,
    /// `default`.
    #[prost(message, optional, tag = "9")]
    pub default: Option<Any>,
    /// `maximum`.
    #[prost(double, tag = "10")]
    pub maximum: f64,
    /// `exclusiveMaximum`.
    #[prost(bool, tag = "11")]
    pub exclusive_maximum: bool,
    /// `minimum`.
    #[prost(double, tag = "12")]
    pub minimum: f64,
    /// `exclusiveMinimum`.
    #[prost(bool, tag = "13")]
    pub exclusive_minimum: bool,
    /// `maxLength`.
    #[prost(int64, tag = "14")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "15")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "16")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "17")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "18")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
    /// `enum`.
    #[prost(message, repeated, tag = "20")]
    pub enum_: Vec<Any>,
    /// `multipleOf`.
    #[prost(double, tag = "21")]
    pub multiple_of: f64,
    /// `x-` keys.
    #[prost(message, repeated, tag = "22")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Paths`: the document's `paths`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Paths {
    /// `x-` keys (field 1 here, unlike most messages).
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    /// Keys starting with `/`.
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

/// `PrimitivesItems`: the `items` of an array-typed non-body parameter (nests for arrays of
/// arrays).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct PrimitivesItems {
    /// `type`.
    #[prost(string, tag = "1")]
    pub type_: String,
    /// `format`.
    #[prost(string, tag = "2")]
    pub format: String,
    /// `items`. Boxed: the message contains itself.
    #[prost(message, optional, boxed, tag = "3")]
    pub items: Option<Box<PrimitivesItems>>,
    /// `collectionFormat`.
    #[prost(string, tag = "4")]
    pub collection_format: String,
    /// `default`.
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    /// `maximum`.
    #[prost(double, tag = "6")]
    pub maximum: f64,
    /// `exclusiveMaximum`.
    #[prost(bool, tag = "7")]
    pub exclusive_maximum: bool,
    /// `minimum`.
    #[prost(double, tag = "8")]
    pub minimum: f64,
    /// `exclusiveMinimum`.
    #[prost(bool, tag = "9")]
    pub exclusive_minimum: bool,
    /// `maxLength`.
    #[prost(int64, tag = "10")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "11")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "12")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "13")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "14")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "15")]
    pub unique_items: bool,
    /// `enum`.
    #[prost(message, repeated, tag = "16")]
    pub enum_: Vec<Any>,
    /// `multipleOf`.
    #[prost(double, tag = "17")]
    pub multiple_of: f64,
    /// `x-` keys.
    #[prost(message, repeated, tag = "18")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Properties`: a schema's `properties`, in the JSON object's order.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Properties {
    /// `repeated NamedSchema additional_properties = 1`.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `QueryParameterSubSchema`: a parameter with `in: query`. Same numbering as
/// [`FormDataParameterSubSchema`].
#[derive(Clone, PartialEq, Message)]
pub(crate) struct QueryParameterSubSchema {
    /// `required`.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// `in`.
    #[prost(string, tag = "2")]
    pub in_: String,
    /// `description`.
    #[prost(string, tag = "3")]
    pub description: String,
    /// `name`.
    #[prost(string, tag = "4")]
    pub name: String,
    /// `allowEmptyValue`.
    #[prost(bool, tag = "5")]
    pub allow_empty_value: bool,
    /// `type`.
    #[prost(string, tag = "6")]
    pub type_: String,
    /// `format`.
    #[prost(string, tag = "7")]
    pub format: String,
    /// `items` (for `type: array`).
    #[prost(message, optional, boxed, tag = "8")]
    pub items: Option<Box<PrimitivesItems>>,
    /// `collectionFormat`.
    #[prost(string, tag = "9")]
    pub collection_format: String,
    /// `default`.
    #[prost(message, optional, tag = "10")]
    pub default: Option<Any>,
    /// `maximum`.
    #[prost(double, tag = "11")]
    pub maximum: f64,
    /// `exclusiveMaximum`.
    #[prost(bool, tag = "12")]
    pub exclusive_maximum: bool,
    /// `minimum`.
    #[prost(double, tag = "13")]
    pub minimum: f64,
    /// `exclusiveMinimum`.
    #[prost(bool, tag = "14")]
    pub exclusive_minimum: bool,
    /// `maxLength`.
    #[prost(int64, tag = "15")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "16")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "17")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "18")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "19")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
    /// `enum`.
    #[prost(message, repeated, tag = "21")]
    pub enum_: Vec<Any>,
    /// `multipleOf`.
    #[prost(double, tag = "22")]
    pub multiple_of: f64,
    /// `x-` keys.
    #[prost(message, repeated, tag = "23")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Response`: one response of an operation. `headers` (3) and `examples` (4) are not declared.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Response {
    /// `description`.
    #[prost(string, tag = "1")]
    pub description: String,
    /// `schema`.
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `ResponseDefinitions`: the document's `responses`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ResponseDefinitions {
    /// `repeated NamedResponse additional_properties = 1`.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedResponse>,
}

/// `ResponseValue`: a response or a reference to one.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ResponseValue {
    /// `oneof oneof { Response response = 1; JsonReference json_reference = 2; }`.
    #[prost(oneof = "ResponseValueOneof", tags = "1, 2")]
    pub oneof: Option<ResponseValueOneof>,
}

/// The `oneof` of [`ResponseValue`].
#[derive(Clone, PartialEq, Oneof)]
pub(crate) enum ResponseValueOneof {
    /// An inline response.
    #[prost(message, tag = "1")]
    Response(Response),
    /// `{"$ref": "#/responses/<name>"}`.
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

/// `Responses`: an operation's `responses`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Responses {
    /// Keys that are three digits or `default`.
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "2")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `Schema`: a JSON schema of a definition, property, item, body or response.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Schema {
    /// `string _ref = 1`: `$ref`, unchanged (`#/definitions/<name>`).
    #[prost(string, tag = "1")]
    pub xref: String,
    /// `format`.
    #[prost(string, tag = "2")]
    pub format: String,
    /// `title`.
    #[prost(string, tag = "3")]
    pub title: String,
    /// `description`.
    #[prost(string, tag = "4")]
    pub description: String,
    /// `default`.
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    /// `multipleOf`.
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    /// `maximum`.
    #[prost(double, tag = "7")]
    pub maximum: f64,
    /// `exclusiveMaximum`.
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    /// `minimum`.
    #[prost(double, tag = "9")]
    pub minimum: f64,
    /// `exclusiveMinimum`.
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    /// `maxLength`.
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "13")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    /// `maxProperties`.
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    /// `minProperties`.
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    /// `required`: the required property names.
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    /// `enum`.
    #[prost(message, repeated, tag = "20")]
    pub enum_: Vec<Any>,
    /// `additionalProperties`.
    #[prost(message, optional, tag = "21")]
    pub additional_properties: Option<AdditionalPropertiesItem>,
    /// `type`.
    #[prost(message, optional, tag = "22")]
    pub type_: Option<TypeItem>,
    /// `items`.
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    /// `allOf`.
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    /// `properties`.
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    /// `discriminator`.
    #[prost(string, tag = "26")]
    pub discriminator: String,
    /// `readOnly`.
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    /// `xml`.
    #[prost(message, optional, tag = "28")]
    pub xml: Option<Xml>,
    /// `externalDocs`.
    #[prost(message, optional, tag = "29")]
    pub external_docs: Option<ExternalDocs>,
    /// `example`.
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    /// `x-` keys (`x-kubernetes-group-version-kind`, `x-kubernetes-patch-strategy`, ...).
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `SchemaItem`: a response's `schema`. Only the `Schema` member (1) is declared; `FileSchema`
/// (2) is not, since gnostic's parser tries `Schema` first and it accepts any object.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct SchemaItem {
    /// `oneof oneof { Schema schema = 1; FileSchema file_schema = 2; }`.
    #[prost(oneof = "SchemaItemOneof", tags = "1")]
    pub oneof: Option<SchemaItemOneof>,
}

/// The `oneof` of [`SchemaItem`].
#[derive(Clone, PartialEq, Oneof)]
pub(crate) enum SchemaItemOneof {
    /// The response body's schema. Boxed: `Schema` is large.
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
}

/// `SecurityDefinitions`: the document's `securityDefinitions`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct SecurityDefinitions {
    /// `repeated NamedSecurityDefinitionsItem additional_properties = 1`.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSecurityDefinitionsItem>,
}

/// `SecurityDefinitionsItem`: one security scheme. The OAuth2 members (3 to 6) are not
/// declared.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct SecurityDefinitionsItem {
    /// `oneof oneof { basic_authentication_security = 1; api_key_security = 2; oauth2... }`.
    #[prost(oneof = "SecurityDefinitionsItemOneof", tags = "1, 2")]
    pub oneof: Option<SecurityDefinitionsItemOneof>,
}

/// The `oneof` of [`SecurityDefinitionsItem`].
#[derive(Clone, PartialEq, Oneof)]
pub(crate) enum SecurityDefinitionsItemOneof {
    /// `type: basic`.
    #[prost(message, tag = "1")]
    BasicAuthenticationSecurity(BasicAuthenticationSecurity),
    /// `type: apiKey`.
    #[prost(message, tag = "2")]
    ApiKeySecurity(ApiKeySecurity),
}

/// `SecurityRequirement`: one member of `security`, scheme name to scopes.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct SecurityRequirement {
    /// `repeated NamedStringArray additional_properties = 1`.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedStringArray>,
}

/// `StringArray`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct StringArray {
    /// `repeated string value = 1`.
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// `Tag`: one member of the document's `tags`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Tag {
    /// `name`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `description`.
    #[prost(string, tag = "2")]
    pub description: String,
    /// `externalDocs`.
    #[prost(message, optional, tag = "3")]
    pub external_docs: Option<ExternalDocs>,
    /// `x-` keys.
    #[prost(message, repeated, tag = "4")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `TypeItem`: a schema's `type`, one string or a list of them.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct TypeItem {
    /// `repeated string value = 1`.
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// `Xml`: a schema's `xml`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Xml {
    /// `name`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `namespace`.
    #[prost(string, tag = "2")]
    pub namespace: String,
    /// `prefix`.
    #[prost(string, tag = "3")]
    pub prefix: String,
    /// `attribute`.
    #[prost(bool, tag = "4")]
    pub attribute: bool,
    /// `wrapped`.
    #[prost(bool, tag = "5")]
    pub wrapped: bool,
    /// `x-` keys.
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}
