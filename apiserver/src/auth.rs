//! Static bearer tokens (`--token-auth-file`, Kubernetes' CSV format).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

/// Who a token authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name.
    pub name: String,
    /// User id.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// The tokens of a token file.
#[derive(Clone, Debug, Default)]
pub struct TokenAuth {
    tokens: HashMap<String, User>,
}

impl TokenAuth {
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
            let user = User {
                name: fields[1].clone(),
                uid: fields[2].clone(),
                groups,
            };
            if tokens.insert(fields[0].clone(), user).is_some() {
                anyhow::bail!("token file line {}: duplicate token", number + 1);
            }
        }
        Ok(TokenAuth { tokens })
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

    /// The user of `token`, if it is valid.
    pub fn authenticate(&self, token: &str) -> Option<&User> {
        if token.is_empty() {
            return None;
        }
        self.tokens.get(token)
    }

    /// The first token of the file (written into the generated kubeconfig).
    pub fn first_token(&self) -> Option<&str> {
        let mut tokens: Vec<&String> = self.tokens.keys().collect();
        tokens.sort();
        tokens.first().map(|t| t.as_str())
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
        let auth = TokenAuth::parse("# c\nsecret,alice,1,\"admins,dev\"\nt2,bob,2\n").unwrap();
        let alice = auth.authenticate("secret").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, vec!["admins", "dev"]);
        assert!(auth.authenticate("nope").is_none());
        assert!(auth.authenticate("").is_none());
        assert!(TokenAuth::parse("only,two").is_err());
    }
}
