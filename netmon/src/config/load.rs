//! Where the config and its secrets come from: files, the environment and `$HOME`. Everything
//! here reads; [`super`] only parses and checks.

use super::{Config, TokenFrom};
use crate::error::ConfigError;
use crate::secret::{Secret, TOKEN_ENV, Token};
use std::path::{Path, PathBuf};

/// Where a config file may be named when no flag names one.
pub const CONFIG_ENV: &str = "NETMON_CONFIG";

/// Largest config (or secret) file read. A config is a few kilobytes; the bound keeps a wrong
/// path (a device, a log) from being read whole into memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

fn read(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let failed = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(failed)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problem: format!(
                "the file is larger than {MAX_FILE_BYTES} bytes; is it the right file?"
            ),
        });
    }
    Ok(text)
}

pub fn file(path: &Path) -> Result<Config, ConfigError> {
    Config::parse(&read(path)?, path)
}

/// `--config PATH`, else `$NETMON_CONFIG`, else an empty config (no remote hosts).
pub fn from_flag_or_env(flag: Option<&Path>) -> Result<Config, ConfigError> {
    match flag
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
    {
        Some(p) => file(&p),
        None => Ok(Config::default()),
    }
}

/// The known_hosts file to check host keys against: the config's, else `~/.ssh/known_hosts` of
/// the user netmon runs as.
pub fn known_hosts(config: &Config) -> PathBuf {
    config.known_hosts.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".ssh/known_hosts")
    })
}

/// A value from the environment; `what` says whose, for the message.
pub fn env(var: &str, what: &str) -> Result<String, ConfigError> {
    std::env::var(var).map_err(|_| ConfigError::MissingEnv {
        what: what.to_string(),
        var: var.to_string(),
    })
}

/// A password from the first line of a file.
pub fn password_file(path: &Path) -> Result<Secret, ConfigError> {
    Ok(Secret::new(
        read(path)?.lines().next().unwrap_or_default().to_string(),
    ))
}

/// A bearer token from a file.
pub fn token_file(path: &Path) -> Result<Token, ConfigError> {
    Token::new(&read(path)?, &path.display().to_string())
}

/// The token a server was told to require: `--token-file PATH`, else `$NETMON_MCP_TOKEN`.
pub fn server_token(flag: Option<&Path>) -> Result<Option<Token>, ConfigError> {
    match flag {
        Some(path) => token_file(path).map(Some),
        None => match std::env::var(TOKEN_ENV) {
            Ok(v) => Token::new(&v, TOKEN_ENV).map(Some),
            Err(_) => Ok(None),
        },
    }
}

/// The token a configured host's agent wants.
pub fn agent_token(from: &TokenFrom, host: &str) -> Result<Token, ConfigError> {
    match from {
        TokenFrom::File(path) => token_file(path),
        TokenFrom::Env(var) => Token::new(&env(var, &format!("the agent token of {host}"))?, var),
    }
}
