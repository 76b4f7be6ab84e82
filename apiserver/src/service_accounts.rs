//! Core `v1` ServiceAccounts with their `token` subresource (TokenRequest, `kubectl create
//! token`), and the authenticator of the tokens it issues, which looks each account up so a
//! token stops working once its account is deleted (upstream's
//! `pkg/registry/core/serviceaccount/storage/token.go`).

use std::sync::Arc;

use apimachinery::status::{ApiError, FieldError, GroupResource};
use async_trait::async_trait;
use auth::service_account::{
    DEFAULT_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS, ServiceAccountAuthenticator,
    ServiceAccountLookup, TokenIssuer,
};
use builtin_kinds::ServiceAccountStrategy;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use registry::Store;
use scheme::{ResourceInfo, SubresourceInfo, TypedConverter};
use serde_json::Value;

use crate::handler::{RequestBody, RequestContext, SubresourceCreate, WriteOutcome};
use crate::server::{KindSpec, ServerBuilder, ServerError};

/// The longest token a TokenRequest may ask for (upstream: 2^32 seconds).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// Registers `serviceaccounts` on `builder`, with `serviceaccounts/token` when the server
/// issues tokens (a token issuer is set on its [`crate::access::Access`]).
///
/// # Errors
///
/// When the kind is already registered.
pub fn register(
    builder: &mut ServerBuilder,
    schema: crate::handler::SchemaFn,
) -> Result<(), ServerError> {
    let access = builder.access().clone();
    let issuer = access.token_issuer().cloned();
    let mut info = ResourceInfo::for_type::<ServiceAccount>().with_short_names(&["sa"]);
    if issuer.is_some() {
        info = info.with_subresource(SubresourceInfo::new("token", "TokenRequest", &["create"]));
    }
    let mut spec = KindSpec::<ServiceAccount>::new(
        info,
        Arc::new(TypedConverter::<ServiceAccount>::new()),
        Arc::new(ServiceAccountStrategy),
        &patch::SERVICE_ACCOUNT,
    )
    .with_openapi(schema);
    if let Some(issuer) = &issuer {
        spec = spec.with_subresource_create(
            "token",
            Arc::new(TokenRequests {
                issuer: issuer.clone(),
            }),
        );
    }
    let store = builder.register_kind_store(spec)?;
    if let Some(issuer) = issuer {
        let authenticator = ServiceAccountAuthenticator::new(issuer, Accounts { store });
        access.set_service_account_authenticator(Arc::new(authenticator));
    }
    Ok(())
}

/// Looks service accounts up in their store, at the latest revision.
struct Accounts {
    store: Store<ServiceAccount>,
}

#[async_trait]
impl ServiceAccountLookup for Accounts {
    async fn uid(&self, namespace: &str, name: &str) -> Result<Option<String>, String> {
        match self.store.get(namespace, name, "").await {
            Ok(account) => Ok(Some(account.metadata.uid.unwrap_or_default())),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e.message),
        }
    }
}

/// Answers `serviceaccounts/<name>/token`.
struct TokenRequests {
    issuer: Arc<TokenIssuer>,
}

#[async_trait]
impl SubresourceCreate<ServiceAccount> for TokenRequests {
    async fn create(
        &self,
        ctx: &RequestContext,
        store: &Store<ServiceAccount>,
        name: &str,
        body: RequestBody,
    ) -> Result<WriteOutcome, ApiError> {
        // The status is the server's to fill in (kubectl sends an empty one).
        let mut document = body.document;
        if let Some(map) = document.as_object_mut() {
            map.remove("status");
        }
        let mut request: TokenRequest = serde_json::from_value(document)
            .map_err(|e| ApiError::bad_request(format!("decoding TokenRequest: {e}")))?;
        let expiration = request
            .spec
            .expiration_seconds
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        let mut errors = Vec::new();
        if expiration < MIN_EXPIRATION_SECONDS {
            errors.push(FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            ));
        }
        if expiration > MAX_EXPIRATION_SECONDS {
            errors.push(FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        if let Some(bound) = &request.spec.bound_object_ref {
            // Pods, secrets and nodes bind tokens upstream; this server runs no pods and does
            // not yet tie a token's life to a secret's.
            errors.push(FieldError::invalid(
                "spec.boundObjectRef",
                serde_json::to_value(bound).unwrap_or(Value::Null),
                "binding tokens to objects is not supported by this server",
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                &errors,
            ));
        }
        let account = store.get(&ctx.namespace, name, "").await.map_err(|e| {
            if e.code == 404 {
                ApiError::not_found(&GroupResource::new("", "serviceaccounts"), name)
            } else {
                e
            }
        })?;
        let uid = account.metadata.uid.clone().unwrap_or_default();
        let (token, expires) = self
            .issuer
            .issue(
                &ctx.namespace,
                name,
                &uid,
                &request.spec.audiences,
                expiration,
                &registry::system::new_uid(),
            )
            .map_err(|e| ApiError::internal(format!("signing the token: {e}")))?;
        let expiration_timestamp = Timestamp::from_second(expires)
            .map_err(|e| ApiError::internal(format!("token expiry: {e}")))?;
        if request.spec.audiences.is_empty() {
            request.spec.audiences = self.issuer.api_audiences().to_vec();
        }
        request.spec.expiration_seconds = Some(expiration);
        request.metadata.name = Some(name.to_owned());
        request.metadata.namespace = Some(ctx.namespace.clone());
        request.metadata.creation_timestamp = Some(Time(Timestamp::now()));
        request.status = Some(TokenRequestStatus {
            token,
            expiration_timestamp: Time(expiration_timestamp),
        });
        let object = serde_json::to_value(&request)
            .map_err(|e| ApiError::internal(format!("encoding TokenRequest: {e}")))?;
        Ok(WriteOutcome {
            object,
            created: true,
            warnings: Vec::new(),
        })
    }
}
