//! The review kinds: requests that ask a question and get the answer in `status`, stored
//! nowhere. `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`),
//! SubjectAccessReview, LocalSubjectAccessReview and SelfSubjectRulesReview (`can-i --list`),
//! and `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`) and TokenReview,
//! as upstream's `pkg/registry/authorization/*` and `pkg/registry/authentication/*`.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::status::{ApiError, FieldError};
use async_trait::async_trait;
use auth::authz::UserRules;
use auth::{Attributes, Decision, TokenOutcome, UserInfo, Verdict};
use k8s_openapi::api::authentication::v1::{
    SelfSubjectReview, SelfSubjectReviewStatus, TokenReview, TokenReviewStatus,
    UserInfo as ApiUserInfo,
};
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, NonResourceAttributes, NonResourceRule, ResourceAttributes,
    ResourceRule, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
    SubjectAccessReviewSpec, SubjectAccessReviewStatus, SubjectRulesReviewStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use object_storage::ListOptions;
use patch::PatchType;
use registry::strategy::TableColumn;
use scheme::ResourceInfo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::access::Access;
use crate::handler::{
    ListResult, RequestBody, RequestContext, ResourceHandler, ValueWatch, WriteOutcome,
};

/// The authorization API group.
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";
/// The authentication API group.
pub const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// Which review a [`ReviewHandler`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// `selfsubjectaccessreviews`: may I do this?
    SelfSubjectAccess,
    /// `subjectaccessreviews`: may this user do this?
    SubjectAccess,
    /// `localsubjectaccessreviews`: may this user do this in this namespace?
    LocalSubjectAccess,
    /// `selfsubjectrulesreviews`: what may I do in this namespace?
    SelfSubjectRules,
    /// `selfsubjectreviews`: who am I?
    SelfSubject,
    /// `tokenreviews`: who does this token authenticate?
    Token,
}

impl Review {
    /// Every review kind.
    pub const ALL: [Review; 6] = [
        Review::SelfSubjectAccess,
        Review::SubjectAccess,
        Review::LocalSubjectAccess,
        Review::SelfSubjectRules,
        Review::SelfSubject,
        Review::Token,
    ];

    /// The resource info: create-only, at cluster scope except LocalSubjectAccessReview.
    pub fn info(self) -> ResourceInfo {
        let (group, kind, plural, namespaced) = match self {
            Review::SelfSubjectAccess => (
                AUTHORIZATION_GROUP,
                "SelfSubjectAccessReview",
                "selfsubjectaccessreviews",
                false,
            ),
            Review::SubjectAccess => (
                AUTHORIZATION_GROUP,
                "SubjectAccessReview",
                "subjectaccessreviews",
                false,
            ),
            Review::LocalSubjectAccess => (
                AUTHORIZATION_GROUP,
                "LocalSubjectAccessReview",
                "localsubjectaccessreviews",
                true,
            ),
            Review::SelfSubjectRules => (
                AUTHORIZATION_GROUP,
                "SelfSubjectRulesReview",
                "selfsubjectrulesreviews",
                false,
            ),
            Review::SelfSubject => (
                AUTHENTICATION_GROUP,
                "SelfSubjectReview",
                "selfsubjectreviews",
                false,
            ),
            Review::Token => (AUTHENTICATION_GROUP, "TokenReview", "tokenreviews", false),
        };
        let mut info = ResourceInfo::new(group, "v1", kind, plural);
        info.namespaced = namespaced;
        info.verbs = vec!["create".to_owned()];
        info
    }
}

/// Serves one review kind: `create` answers, every other verb is 405.
pub struct ReviewHandler {
    review: Review,
    info: ResourceInfo,
    access: Arc<Access>,
}

impl ReviewHandler {
    /// A handler of `review`, answering with the server's authorizer and authenticators.
    pub fn new(review: Review, access: Arc<Access>) -> Self {
        ReviewHandler {
            review,
            info: review.info(),
            access,
        }
    }

    fn unsupported(&self, verb: &str) -> ApiError {
        ApiError::method_not_supported(&self.info.group_resource(), verb)
    }

    fn invalid(&self, errors: &[FieldError]) -> ApiError {
        ApiError::invalid(&self.info.kind, &self.info.group, "", errors)
    }

    fn decode<T: DeserializeOwned>(&self, body: RequestBody) -> Result<T, ApiError> {
        serde_json::from_value(body.document)
            .map_err(|e| ApiError::bad_request(format!("decoding {}: {e}", self.info.kind)))
    }

    fn access_status(&self, attributes: Attributes) -> SubjectAccessReviewStatus {
        let verdict: Verdict = self.access.authorize(&attributes);
        SubjectAccessReviewStatus {
            allowed: verdict.allowed(),
            denied: (verdict.decision == Decision::Deny).then_some(true),
            reason: (!verdict.reason.is_empty()).then_some(verdict.reason),
            evaluation_error: None,
        }
    }

    /// `ValidateSelfSubjectAccessReviewSpec`: exactly one kind of attributes.
    fn one_kind_of_attributes(
        &self,
        resource: Option<&ResourceAttributes>,
        non_resource: Option<&NonResourceAttributes>,
    ) -> Vec<FieldError> {
        match (resource, non_resource) {
            (Some(_), Some(n)) => vec![FieldError::invalid(
                "spec.nonResourceAttributes",
                serde_json::to_value(n).unwrap_or(Value::Null),
                "cannot be specified in combination with resourceAttributes",
            )],
            (None, None) => vec![FieldError::invalid(
                "spec.resourceAttributes",
                Value::from("null"),
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
            _ => Vec::new(),
        }
    }

    /// The answer to a SubjectAccessReview, or to a LocalSubjectAccessReview of `namespace`
    /// (`ValidateSubjectAccessReviewSpec`, `ValidateLocalSubjectAccessReview`).
    fn subject_access(
        &self,
        spec: &SubjectAccessReviewSpec,
        namespace: Option<&str>,
    ) -> Result<SubjectAccessReviewStatus, ApiError> {
        let resource = spec.resource_attributes.as_ref();
        let non_resource = spec.non_resource_attributes.as_ref();
        let mut errors = match (namespace, resource, non_resource) {
            (Some(_), _, Some(n)) => vec![FieldError::invalid(
                "spec.nonResourceAttributes",
                serde_json::to_value(n).unwrap_or(Value::Null),
                "disallowed on this kind of request",
            )],
            (Some(namespace), Some(r), None)
                if r.namespace.as_deref().unwrap_or_default() != namespace =>
            {
                vec![FieldError::invalid(
                    "spec.resourceAttributes.namespace",
                    Value::from(r.namespace.clone().unwrap_or_default()),
                    "must match metadata.namespace",
                )]
            }
            _ => self.one_kind_of_attributes(resource, non_resource),
        };
        if spec.user.as_deref().unwrap_or_default().is_empty()
            && spec.groups.as_deref().unwrap_or_default().is_empty()
        {
            errors.push(FieldError::invalid(
                "spec.user",
                Value::from(""),
                "at least one of user or group must be specified",
            ));
        }
        if !errors.is_empty() {
            return Err(self.invalid(&errors));
        }
        let user = subject_user(
            spec.user.as_ref(),
            spec.uid.as_ref(),
            spec.groups.as_ref(),
            spec.extra.as_ref(),
        );
        Ok(self.access_status(review_attributes(user, resource, non_resource)))
    }

    async fn answer(&self, ctx: &RequestContext, body: RequestBody) -> Result<Value, ApiError> {
        match self.review {
            Review::SelfSubjectAccess => {
                let mut review: SelfSubjectAccessReview = self.decode(body)?;
                let spec = &review.spec;
                let errors = self.one_kind_of_attributes(
                    spec.resource_attributes.as_ref(),
                    spec.non_resource_attributes.as_ref(),
                );
                if !errors.is_empty() {
                    return Err(self.invalid(&errors));
                }
                let attributes = review_attributes(
                    ctx.user.clone(),
                    spec.resource_attributes.as_ref(),
                    spec.non_resource_attributes.as_ref(),
                );
                review.status = Some(self.access_status(attributes));
                encode(&review)
            }
            Review::SubjectAccess => {
                let mut review: SubjectAccessReview = self.decode(body)?;
                review.status = Some(self.subject_access(&review.spec, None)?);
                encode(&review)
            }
            Review::LocalSubjectAccess => {
                let mut review: LocalSubjectAccessReview = self.decode(body)?;
                review.status = Some(self.subject_access(&review.spec, Some(&ctx.namespace))?);
                review.metadata.namespace = Some(ctx.namespace.clone());
                encode(&review)
            }
            Review::SelfSubjectRules => {
                let mut review: SelfSubjectRulesReview = self.decode(body)?;
                let namespace = review.spec.namespace.clone().unwrap_or_default();
                if namespace.is_empty() {
                    return Err(ApiError::bad_request("no namespace on request"));
                }
                let rules = self.access.chain_rules(&ctx.user, &namespace);
                review.status = Some(rules_status(rules));
                encode(&review)
            }
            Review::SelfSubject => {
                let mut review: SelfSubjectReview = self.decode(body)?;
                review.status = Some(SelfSubjectReviewStatus {
                    user_info: Some(api_user(&ctx.user)),
                });
                encode(&review)
            }
            Review::Token => {
                let mut review: TokenReview = self.decode(body)?;
                let token = review.spec.token.clone().unwrap_or_default();
                if token.is_empty() {
                    return Err(ApiError::bad_request(
                        "token is required for TokenReview in authentication",
                    ));
                }
                let audiences = review.spec.audiences.clone().unwrap_or_default();
                review.status = Some(
                    match self.access.authenticate_token(&token, &audiences).await {
                        TokenOutcome::Authenticated(valid) => TokenReviewStatus {
                            authenticated: Some(true),
                            user: Some(api_user(&valid.user)),
                            audiences: Some(valid.audiences),
                            error: None,
                        },
                        TokenOutcome::NotMine => TokenReviewStatus {
                            authenticated: Some(false),
                            error: Some("invalid bearer token".to_owned()),
                            ..TokenReviewStatus::default()
                        },
                        TokenOutcome::Invalid(reason) => TokenReviewStatus {
                            authenticated: Some(false),
                            error: Some(reason),
                            ..TokenReviewStatus::default()
                        },
                    },
                );
                encode(&review)
            }
        }
    }
}

fn encode<T: Serialize>(review: &T) -> Result<Value, ApiError> {
    serde_json::to_value(review).map_err(|e| ApiError::internal(format!("encoding review: {e}")))
}

/// The user a SubjectAccessReview names: exactly its fields (no implied groups).
fn subject_user(
    name: Option<&String>,
    uid: Option<&String>,
    groups: Option<&Vec<String>>,
    extra: Option<&BTreeMap<String, Vec<String>>>,
) -> Arc<UserInfo> {
    Arc::new(UserInfo {
        name: name.cloned().unwrap_or_default(),
        uid: uid.cloned().unwrap_or_default(),
        groups: groups.cloned().unwrap_or_default(),
        extra: extra.cloned().unwrap_or_default(),
    })
}

fn api_user(user: &UserInfo) -> ApiUserInfo {
    ApiUserInfo {
        username: (!user.name.is_empty()).then(|| user.name.clone()),
        uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
        groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
    }
}

/// The attributes a review asks about.
fn review_attributes(
    user: Arc<UserInfo>,
    resource: Option<&ResourceAttributes>,
    non_resource: Option<&NonResourceAttributes>,
) -> Attributes {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    match (resource, non_resource) {
        (Some(r), _) => {
            let mut attributes = Attributes::resource(
                user,
                &text(&r.verb),
                &text(&r.namespace),
                &text(&r.group),
                &text(&r.resource),
                &text(&r.subresource),
                &text(&r.name),
            );
            attributes.api_version = text(&r.version);
            attributes
        }
        (None, Some(n)) => Attributes::non_resource(user, &text(&n.verb), &text(&n.path)),
        (None, None) => Attributes::non_resource(user, "", ""),
    }
}

fn rules_status(rules: UserRules) -> SubjectRulesReviewStatus {
    SubjectRulesReviewStatus {
        resource_rules: rules
            .resource_rules
            .into_iter()
            .map(|r| ResourceRule {
                verbs: r.verbs,
                api_groups: Some(r.api_groups),
                resources: Some(r.resources),
                resource_names: (!r.resource_names.is_empty()).then_some(r.resource_names),
            })
            .collect(),
        non_resource_rules: rules
            .non_resource_rules
            .into_iter()
            .map(|r| NonResourceRule {
                verbs: r.verbs,
                non_resource_urls: Some(r.non_resource_urls),
            })
            .collect(),
        incomplete: rules.incomplete,
        evaluation_error: (!rules.errors.is_empty()).then(|| rules.errors.join(", ")),
    }
}

#[async_trait]
impl ResourceHandler for ReviewHandler {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        Vec::new()
    }

    fn table_cells(&self, _ctx: &RequestContext, _object: &Value) -> Vec<Value> {
        Vec::new()
    }

    async fn get(&self, _ctx: &RequestContext, _name: &str, _rv: &str) -> Result<Value, ApiError> {
        Err(self.unsupported("get"))
    }

    async fn list(
        &self,
        _ctx: &RequestContext,
        _options: &ListOptions,
    ) -> Result<ListResult, ApiError> {
        Err(self.unsupported("list"))
    }

    async fn watch(
        &self,
        _ctx: &RequestContext,
        _options: &ListOptions,
    ) -> Result<ValueWatch, ApiError> {
        Err(self.unsupported("watch"))
    }

    async fn create(
        &self,
        ctx: &RequestContext,
        body: RequestBody,
    ) -> Result<WriteOutcome, ApiError> {
        let object = self.answer(ctx, body).await?;
        Ok(WriteOutcome {
            object,
            created: true,
            warnings: Vec::new(),
        })
    }

    async fn update(
        &self,
        _ctx: &RequestContext,
        _name: &str,
        _body: RequestBody,
    ) -> Result<WriteOutcome, ApiError> {
        Err(self.unsupported("update"))
    }

    async fn patch(
        &self,
        _ctx: &RequestContext,
        _name: &str,
        _patch_type: PatchType,
        _body: &[u8],
    ) -> Result<WriteOutcome, ApiError> {
        Err(self.unsupported("patch"))
    }

    async fn delete(
        &self,
        _ctx: &RequestContext,
        _name: &str,
        _options: &DeleteOptions,
    ) -> Result<(Value, bool), ApiError> {
        Err(self.unsupported("delete"))
    }

    async fn delete_collection(
        &self,
        _ctx: &RequestContext,
        _options: &DeleteOptions,
        _list: &ListOptions,
    ) -> Result<Value, ApiError> {
        Err(self.unsupported("deletecollection"))
    }
}
