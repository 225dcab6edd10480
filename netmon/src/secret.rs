//! Secrets netmon handles: passwords passed by a tool call or read for a configured host, and
//! bearer tokens. Neither is ever printed, not even by `{:?}`. Pure: reading them from files and
//! the environment is [`crate::config::load`]'s.

use crate::error::ConfigError;
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;

/// A password as received: never printed.
#[derive(Clone, Default, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The password itself, for the one place that sends it (the SSH login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a bearer token may come from when no file is given.
pub const TOKEN_ENV: &str = "NETMON_MCP_TOKEN";
/// Shorter tokens are refused: they can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token; never printed.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// `origin` says where it came from (a file, a variable), for the message.
    pub fn new(raw: &str, origin: &str) -> Result<Self, ConfigError> {
        let t = raw.trim();
        if t.len() < MIN_TOKEN_LEN || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::BadToken {
                origin: origin.to_string(),
                problem: format!(
                    "a token must be at least {MIN_TOKEN_LEN} characters without spaces (make one with `openssl rand -hex 32`)"
                ),
            });
        }
        Ok(Self(t.into()))
    }

    /// The token itself, for the one place that sends it (a gateway asking an agent).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_tokens_are_refused_and_never_printed() {
        assert!(Token::new("short", "test").is_err());
        assert!(Token::new("has a space in it 12345", "test").is_err());
        let t = Token::new("  0123456789abcdef0123\n", "file").unwrap();
        assert!(t.matches(b"0123456789abcdef0123"));
        assert!(!t.matches(b"0123456789abcdef012"));
        assert!(!format!("{t:?}").contains("0123"));
        let e = Token::new("short secret", "file").unwrap_err().to_string();
        assert!(!e.contains("short secret"), "{e}");
    }

    #[test]
    fn passwords_never_print() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
