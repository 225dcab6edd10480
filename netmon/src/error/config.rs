//! The config file, the secrets it points at, and the reach policy it sets.

use super::Cause;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file does not parse. The message names the place and the key, never the value: a bad
    /// line may hold a password.
    #[error("config file {path}, line {line}, column {column}{key}: {problem}", path = path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        /// ` (key remote_hosts[0].password)` or empty.
        key: String,
        problem: String,
    },

    #[error("config file {path}: {problem}", path = path.display())]
    Invalid { path: PathBuf, problem: String },

    #[error("reading {path}", path = path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{what} comes from ${var}, which netmon's environment does not have")]
    MissingEnv { what: String, var: String },

    #[error("the bearer token from {origin} is not usable: {problem}")]
    BadToken { origin: String, problem: String },

    #[error(
        "host {host:?} is not one netmon may reach: it is not in the config file's remote_hosts ({names}); add it there, or set allow_unlisted_hosts = true"
    )]
    HostNotAllowed { host: String, names: String },

    #[error(
        "no way to log in to {host}: pass password, or give the host an auth entry (key_file, password_env, password_file or agent) in the config file"
    )]
    NoCredential { host: String },

    #[error("{what}")]
    Other {
        what: String,
        #[source]
        source: Option<Cause>,
    },
}
