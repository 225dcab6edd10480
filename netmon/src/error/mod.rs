//! netmon's errors, by domain: a request that cannot be served as asked ([`RequestError`]), the
//! kernel side ([`BpfError`]), SSH and the remote iftop ([`SshError`]), a remote agent
//! ([`AgentError`]), the config file and secrets ([`ConfigError`]), and HTTP serving
//! ([`HttpError`]). Each message says what to do next, and each keeps its cause as `source()`
//! instead of flattening it into text; [`chain`] writes a whole chain as one line, for callers
//! that show one message (a tool result, the command line).
//!
//! This module imports nothing of netmon's, so every other module can use it.

mod agent;
mod bpf;
mod config;
mod http;
mod request;
mod ssh;

pub use agent::AgentError;
pub use bpf::BpfError;
pub use config::ConfigError;
pub use http::HttpError;
pub use request::{ArgNames, FilterError, RequestError};
pub use ssh::SshError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A cause kept as `source()`: whatever error a library handed back.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("listing this host's interfaces failed")]
    Interfaces(#[source] std::io::Error),
    #[error("the call was cancelled before its sample finished; nothing was kept")]
    Cancelled,
    #[error(
        "the terminal failed: {0}; netmon top needs an interactive terminal (netmon traffic prints text instead)"
    )]
    Terminal(#[source] std::io::Error),
    #[error(
        "netmon top draws on a terminal, and its output is not one; use `netmon traffic` for text or JSON"
    )]
    NotATerminal,
    #[error(
        "netmon could not start counting on {iface} within 10 s; the lines above say why (RUST_LOG=info for more)"
    )]
    NotWatching { iface: String },
    #[error(
        "netmon is already running {limit} samples at once; retry when some have finished (each takes sample_seconds)"
    )]
    Busy { limit: usize },
}

/// The error and its causes as one line, each cause once.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !m.is_empty() && !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = e.source();
    }
    s
}

/// The OS error number somewhere in the chain, if any.
pub(crate) fn errno(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(n) = io.raw_os_error()
        {
            return Some(n);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bpf_map_create failed")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn the_chain_keeps_every_cause_once() {
        let e = Wrapped(std::io::Error::from_raw_os_error(libc::EPERM));
        let c = chain(&e);
        assert!(c.starts_with("bpf_map_create failed: "), "{c}");
        assert!(c.contains("Operation not permitted"), "{c}");
        assert_eq!(errno(&e), Some(libc::EPERM));
    }
}
