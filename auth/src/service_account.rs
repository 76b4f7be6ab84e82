//! Service account tokens: bound JWTs issued by the TokenRequest subresource and checked on
//! every request, as upstream's `pkg/serviceaccount` (`jwt.go`, `claims.go`): signed with the
//! server's key, for an issuer and audiences, expiring, and valid only while the service
//! account they name still exists with the same uid.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::authn::{Authenticated, TokenAuthenticator, TokenOutcome};
use crate::user::{ALL_SERVICE_ACCOUNTS, UserInfo, service_account_user_name};

/// The shortest token a TokenRequest may ask for (upstream: 10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The expiry of a TokenRequest that names none (upstream: one hour).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The extra attribute naming the token a service account authenticated with.
pub const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// The `kubernetes.io` claim of a bound token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: NamedUid,
}

/// A name and uid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUid {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

/// The claims of a bound service account token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Issuer.
    pub iss: String,
    /// A unique id of the token.
    pub jti: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// The service account the token is bound to.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// The key pair and names tokens are issued and checked with.
pub struct TokenIssuer {
    issuer: String,
    api_audiences: Vec<String>,
    algorithm: Algorithm,
    signing: EncodingKey,
    /// Keys that verify tokens, each with the algorithms its kind signs with.
    verifying: Vec<(&'static [Algorithm], DecodingKey)>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl TokenIssuer {
    /// An issuer named `issuer` signing with the PKCS#8 private key `signing_pem` (ECDSA
    /// P-256/P-384, RSA or Ed25519) and accepting tokens signed by it or by any of the public
    /// keys `extra_public_pems`; tokens are for `api_audiences` unless a request names others.
    ///
    /// # Errors
    ///
    /// A key that cannot be read, or of an unsupported kind.
    pub fn new(
        issuer: impl Into<String>,
        api_audiences: Vec<String>,
        signing_pem: &str,
        extra_public_pems: &[String],
    ) -> anyhow::Result<Self> {
        let pair = rcgen::KeyPair::from_pem(signing_pem)
            .map_err(|e| anyhow::anyhow!("reading the signing key: {e}"))?;
        let algorithm = pair.algorithm();
        let (algorithm, signing, public) = if algorithm == &rcgen::PKCS_ECDSA_P256_SHA256 {
            let public = DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes())?;
            (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(signing_pem.as_bytes())?,
                public,
            )
        } else if algorithm == &rcgen::PKCS_ECDSA_P384_SHA384 {
            let public = DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes())?;
            (
                Algorithm::ES384,
                EncodingKey::from_ec_pem(signing_pem.as_bytes())?,
                public,
            )
        } else if algorithm == &rcgen::PKCS_ED25519 {
            let public = DecodingKey::from_ed_pem(pair.public_key_pem().as_bytes())?;
            (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(signing_pem.as_bytes())?,
                public,
            )
        } else if algorithm == &rcgen::PKCS_RSA_SHA256 {
            let public = DecodingKey::from_rsa_pem(pair.public_key_pem().as_bytes())?;
            (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(signing_pem.as_bytes())?,
                public,
            )
        } else {
            anyhow::bail!(
                "the signing key is of an unsupported kind: use ECDSA P-256/P-384, RSA or Ed25519 in PKCS#8 PEM"
            );
        };
        let own: &'static [Algorithm] = match algorithm {
            Algorithm::ES256 => &[Algorithm::ES256],
            Algorithm::ES384 => &[Algorithm::ES384],
            Algorithm::EdDSA => &[Algorithm::EdDSA],
            _ => &[Algorithm::RS256],
        };
        let mut verifying = vec![(own, public)];
        for pem in extra_public_pems {
            // Keys of another kind than the signing key's (rotating RSA to EC, say) keep
            // verifying the tokens they signed.
            let bytes = pem.as_bytes();
            let key: (&'static [Algorithm], DecodingKey) = if let Ok(k) =
                DecodingKey::from_ec_pem(bytes)
            {
                (&[Algorithm::ES256, Algorithm::ES384], k)
            } else if let Ok(k) = DecodingKey::from_rsa_pem(bytes) {
                (&[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512], k)
            } else {
                let k = DecodingKey::from_ed_pem(bytes)
                    .map_err(|e| anyhow::anyhow!("reading a service account public key: {e}"))?;
                (&[Algorithm::EdDSA], k)
            };
            verifying.push(key);
        }
        Ok(TokenIssuer {
            issuer: issuer.into(),
            api_audiences,
            algorithm,
            signing,
            verifying,
        })
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences of tokens whose request names none.
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// A token for the service account `name` (uid `uid`) in `namespace`, for `audiences`
    /// (the API audiences when empty), valid `expiration_seconds` from now, with the unique
    /// id `jti`; returns the token and its expiry (seconds since the epoch).
    ///
    /// # Errors
    ///
    /// When signing fails.
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        expiration_seconds: i64,
        jti: &str,
    ) -> anyhow::Result<(String, i64)> {
        let issued = now();
        let claims = Claims {
            aud: if audiences.is_empty() {
                self.api_audiences.clone()
            } else {
                audiences.to_vec()
            },
            exp: issued + expiration_seconds,
            iat: issued,
            nbf: issued,
            iss: self.issuer.clone(),
            jti: jti.to_owned(),
            sub: service_account_user_name(namespace, name),
            kubernetes: KubernetesClaim {
                namespace: namespace.to_owned(),
                serviceaccount: NamedUid {
                    name: name.to_owned(),
                    uid: uid.to_owned(),
                },
            },
        };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.signing)?;
        Ok((token, claims.exp))
    }

    /// The claims of `token` if one of the keys signed it, for this issuer and one of
    /// `audiences` (the API audiences when empty), and it has not expired (within a minute of
    /// clock skew between servers sharing the key, as upstream allows).
    ///
    /// # Errors
    ///
    /// Why the token is not valid; `Ok(None)` for a token of another issuer (not ours to judge).
    pub fn verify(&self, token: &str, audiences: &[String]) -> Result<Option<Claims>, String> {
        // A token not shaped like a JWT, or of another issuer, belongs to another
        // authenticator.
        let Ok(unverified) = insecure::issuer(token) else {
            return Ok(None);
        };
        if unverified != self.issuer {
            return Ok(None);
        }
        let audiences = if audiences.is_empty() {
            &self.api_audiences
        } else {
            audiences
        };
        let algorithm = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("reading the token header: {e}"))?
            .alg;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(audiences);
        validation.validate_nbf = true;
        validation.leeway = 60;
        let mut last = format!("no verification key for {algorithm:?}");
        for (algorithms, key) in &self.verifying {
            if !algorithms.contains(&algorithm) {
                continue;
            }
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(Some(data.claims)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }
}

mod insecure {
    /// The `iss` of a JWT, read without checking anything.
    pub(super) fn issuer(token: &str) -> Result<String, ()> {
        use base64::Engine;
        let payload = token.split('.').nth(1).ok_or(())?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| ())?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| ())?;
        value["iss"].as_str().map(str::to_owned).ok_or(())
    }
}

/// Looks up service accounts for the token authenticator.
#[async_trait]
pub trait ServiceAccountLookup: Send + Sync {
    /// The uid of service account `name` in `namespace`, `None` when it does not exist.
    async fn uid(&self, namespace: &str, name: &str) -> Result<Option<String>, String>;
}

/// Authenticates bound service account tokens: valid JWTs of the issuer whose service account
/// still exists with the uid the token names.
pub struct ServiceAccountAuthenticator<L> {
    issuer: std::sync::Arc<TokenIssuer>,
    lookup: L,
}

impl<L> ServiceAccountAuthenticator<L> {
    /// Checks tokens of `issuer`, looking accounts up with `lookup`.
    pub fn new(issuer: std::sync::Arc<TokenIssuer>, lookup: L) -> Self {
        ServiceAccountAuthenticator { issuer, lookup }
    }
}

#[async_trait]
impl<L: ServiceAccountLookup> TokenAuthenticator for ServiceAccountAuthenticator<L> {
    async fn authenticate_token(&self, token: &str, audiences: &[String]) -> TokenOutcome {
        let claims = match self.issuer.verify(token, audiences) {
            Ok(Some(claims)) => claims,
            Ok(None) => return TokenOutcome::NotMine,
            Err(reason) => return TokenOutcome::Invalid(reason),
        };
        let account = &claims.kubernetes;
        match self
            .lookup
            .uid(&account.namespace, &account.serviceaccount.name)
            .await
        {
            Ok(Some(uid)) if uid == account.serviceaccount.uid => {}
            Ok(Some(_)) => {
                return TokenOutcome::Invalid(format!(
                    "service account UID ({}) does not match claim",
                    account.serviceaccount.uid
                ));
            }
            Ok(None) => {
                return TokenOutcome::Invalid(format!(
                    "service account {}/{} has been deleted",
                    account.namespace, account.serviceaccount.name
                ));
            }
            Err(e) => return TokenOutcome::Invalid(e),
        }
        let namespace = &account.namespace;
        let mut user = UserInfo::authenticated(
            service_account_user_name(namespace, &account.serviceaccount.name),
            account.serviceaccount.uid.clone(),
            vec![
                ALL_SERVICE_ACCOUNTS.to_owned(),
                format!("{ALL_SERVICE_ACCOUNTS}:{namespace}"),
            ],
        );
        user.extra = BTreeMap::from([(
            CREDENTIAL_ID.to_owned(),
            vec![format!("JTI={}", claims.jti)],
        )]);
        let wanted = if audiences.is_empty() {
            self.issuer.api_audiences()
        } else {
            audiences
        };
        let audiences = claims
            .aud
            .iter()
            .filter(|a| wanted.contains(a))
            .cloned()
            .collect();
        TokenOutcome::Authenticated(Authenticated { user, audiences })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    struct Accounts(Option<&'static str>);

    #[async_trait]
    impl ServiceAccountLookup for Accounts {
        async fn uid(&self, _namespace: &str, _name: &str) -> Result<Option<String>, String> {
            Ok(self.0.map(str::to_owned))
        }
    }

    fn issuer() -> Arc<TokenIssuer> {
        let key = rcgen::KeyPair::generate().unwrap();
        let audiences = vec!["https://kubernetes.default.svc".to_owned()];
        Arc::new(
            TokenIssuer::new(
                "https://issuer.example",
                audiences,
                &key.serialize_pem(),
                &[],
            )
            .unwrap(),
        )
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        // The authenticator never awaits anything that is not ready.
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut context) {
                return v;
            }
        }
    }

    #[test]
    fn tokens_authenticate_while_their_account_exists() {
        let issuer = issuer();
        let (token, exp) = issuer
            .issue("team", "builder", "u1", &[], 3600, "j1")
            .unwrap();
        assert!(exp > now());
        let live = ServiceAccountAuthenticator::new(issuer.clone(), Accounts(Some("u1")));
        let TokenOutcome::Authenticated(Authenticated { user, audiences }) =
            block_on(live.authenticate_token(&token, &[]))
        else {
            panic!("not authenticated");
        };
        assert_eq!(user.name, "system:serviceaccount:team:builder");
        assert_eq!(audiences, vec!["https://kubernetes.default.svc"]);
        assert_eq!(
            user.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
        let deleted = ServiceAccountAuthenticator::new(issuer.clone(), Accounts(None));
        assert!(
            matches!(block_on(deleted.authenticate_token(&token, &[])), TokenOutcome::Invalid(m) if m.contains("deleted"))
        );
        let recreated = ServiceAccountAuthenticator::new(issuer.clone(), Accounts(Some("u2")));
        assert!(matches!(
            block_on(recreated.authenticate_token(&token, &[])),
            TokenOutcome::Invalid(_)
        ));
        let (expired, _) = issuer
            .issue("team", "builder", "u1", &[], -120, "j2")
            .unwrap();
        assert!(matches!(
            block_on(live.authenticate_token(&expired, &[])),
            TokenOutcome::Invalid(_)
        ));
        let (other_audience, _) = issuer
            .issue("team", "builder", "u1", &["vault".to_owned()], 3600, "j3")
            .unwrap();
        assert!(matches!(
            block_on(live.authenticate_token(&other_audience, &[])),
            TokenOutcome::Invalid(_)
        ));
        let vault = ["vault".to_owned(), "other".to_owned()];
        let TokenOutcome::Authenticated(valid) =
            block_on(live.authenticate_token(&other_audience, &vault))
        else {
            panic!("a vault token is valid for vault");
        };
        assert_eq!(valid.audiences, vec!["vault"]);
        assert!(matches!(
            block_on(live.authenticate_token(&token, &vault)),
            TokenOutcome::Invalid(_)
        ));
        assert_eq!(
            block_on(live.authenticate_token("static-token", &[])),
            TokenOutcome::NotMine
        );
        let stranger = ServiceAccountAuthenticator::new(self::issuer(), Accounts(Some("u1")));
        assert_eq!(
            block_on(stranger.authenticate_token(&token, &[])),
            TokenOutcome::Invalid("InvalidSignature".into())
        );
    }
}
