//! Static bearer tokens (`--token-auth-file`, Kubernetes' CSV format, as upstream's
//! `staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/tokenfile`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use async_trait::async_trait;

use crate::authn::{Authenticated, TokenAuthenticator, TokenOutcome};
use crate::user::UserInfo;

/// The tokens of a token file.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

impl TokenFile {
    /// Parses `token,user,uid[,"group1,group2"]` lines (blank lines and `#` comments skipped).
    ///
    /// # Errors
    ///
    /// A line with fewer than three fields, an empty token, or a duplicate token.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut tokens = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 {
                anyhow::bail!(
                    "token file line {}: want token,user,uid[,\"group1,group2\"], got {} fields",
                    number + 1,
                    fields.len()
                );
            }
            if fields[0].is_empty() {
                anyhow::bail!("token file line {}: empty token", number + 1);
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let user = UserInfo::authenticated(fields[1].clone(), fields[2].clone(), groups);
            if tokens.insert(fields[0].clone(), user).is_some() {
                anyhow::bail!("token file line {}: duplicate token", number + 1);
            }
        }
        Ok(TokenFile { tokens })
    }

    /// Reads and parses a token file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or parsed.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading token file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing token file {}", path.display()))
    }

    /// The user of `token`, if it is one of the file's.
    pub fn user(&self, token: &str) -> Option<&UserInfo> {
        if token.is_empty() {
            return None;
        }
        self.tokens.get(token)
    }

    /// One token for one user.
    pub fn single(token: &str, user: UserInfo) -> Self {
        TokenFile {
            tokens: HashMap::from([(token.to_owned(), user)]),
        }
    }

    /// The first token of the file in byte order.
    pub fn first_token(&self) -> Option<&str> {
        self.tokens.keys().min().map(String::as_str)
    }

    /// The first token, in byte order, of a `system:masters` member.
    pub fn superuser_token(&self) -> Option<&str> {
        self.tokens
            .iter()
            .filter(|(_, user)| user.is_superuser())
            .map(|(token, _)| token.as_str())
            .min()
    }
}

#[async_trait]
impl TokenAuthenticator for TokenFile {
    /// Static tokens have no audiences: the caller decides what they are valid for.
    async fn authenticate_token(&self, token: &str, _audiences: &[String]) -> TokenOutcome {
        match self.user(token) {
            Some(user) => TokenOutcome::Authenticated(Authenticated {
                user: user.clone(),
                audiences: Vec::new(),
            }),
            None => TokenOutcome::NotMine,
        }
    }
}

/// Splits one CSV line: commas separate fields, double quotes group (`""` escapes a quote).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current).trim().to_owned()),
            c => current.push(c),
        }
    }
    fields.push(current.trim().to_owned());
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_files() {
        let auth = TokenFile::parse("# c\nsecret,alice,1,\"admins,dev\"\nt2,bob,2\n").unwrap();
        let alice = auth.user("secret").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, vec!["admins", "dev", "system:authenticated"]);
        assert!(auth.user("nope").is_none());
        assert!(auth.user("").is_none());
        assert!(TokenFile::parse("only,two").is_err());
        let both = TokenFile::parse("a,bob,2\nz,root,1,system:masters\n").unwrap();
        assert_eq!(both.first_token(), Some("a"));
        assert_eq!(both.superuser_token(), Some("z"));
    }
}
