//! Authentication of bearer tokens: the [`TokenAuthenticator`] trait and the union of several
//! (upstream's `staging/src/k8s.io/apiserver/pkg/authentication/token/union`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::user::UserInfo;

/// A valid token's user, and the audiences it is valid for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// Who the token names.
    pub user: UserInfo,
    /// The audiences the token was found valid for, among those asked; empty for tokens
    /// without audiences (static tokens), which are valid for the server's own.
    pub audiences: Vec<String>,
}

/// What a token authenticator says of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenOutcome {
    /// The token is valid and names this user.
    Authenticated(Authenticated),
    /// The token is not one this authenticator knows; another may.
    NotMine,
    /// The token is this authenticator's kind but invalid (expired, wrong audience, revoked);
    /// the message says why, for logs and TokenReview.
    Invalid(String),
}

/// Turns a bearer token into a user.
#[async_trait]
pub trait TokenAuthenticator: Send + Sync {
    /// Authenticates `token` (never empty) for one of `audiences` (empty: the server's own
    /// API audiences). Authenticators of tokens without audiences ignore them.
    async fn authenticate_token(&self, token: &str, audiences: &[String]) -> TokenOutcome;
}

#[async_trait]
impl<T: TokenAuthenticator + ?Sized> TokenAuthenticator for Arc<T> {
    async fn authenticate_token(&self, token: &str, audiences: &[String]) -> TokenOutcome {
        (**self).authenticate_token(token, audiences).await
    }
}

/// Several authenticators asked in order: the first that authenticates the token wins; when
/// none does, the token is invalid with every reason given.
#[derive(Clone, Default)]
pub struct TokenAuthenticators {
    authenticators: Vec<Arc<dyn TokenAuthenticator>>,
}

impl std::fmt::Debug for TokenAuthenticators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthenticators")
            .field("count", &self.authenticators.len())
            .finish()
    }
}

impl TokenAuthenticators {
    /// No authenticators: every token is [`TokenOutcome::NotMine`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `authenticator` after the others.
    pub fn push(&mut self, authenticator: Arc<dyn TokenAuthenticator>) {
        self.authenticators.push(authenticator);
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.authenticators.is_empty()
    }
}

#[async_trait]
impl TokenAuthenticator for TokenAuthenticators {
    async fn authenticate_token(&self, token: &str, audiences: &[String]) -> TokenOutcome {
        let mut reasons = Vec::new();
        for authenticator in &self.authenticators {
            match authenticator.authenticate_token(token, audiences).await {
                TokenOutcome::Authenticated(valid) => return TokenOutcome::Authenticated(valid),
                TokenOutcome::NotMine => {}
                TokenOutcome::Invalid(reason) => reasons.push(reason),
            }
        }
        if reasons.is_empty() {
            TokenOutcome::NotMine
        } else {
            TokenOutcome::Invalid(reasons.join(", "))
        }
    }
}
