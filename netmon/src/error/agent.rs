//! A remote netmon agent asked over its `/mcp`, and the local agent answering from history.

use super::Cause;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "the agent could not answer for {iface}: {reason}; retry, or check `journalctl`/the agent's stderr"
    )]
    Stalled { iface: String, reason: String },

    #[error(
        "the netmon agent of {host} ({url}) could not be reached; check that `netmon agent` runs there and listens on that address (`curl {url}/../health`), and for https:// that its certificate names that address and is signed by the CA in agent_ca_file (or one the system trusts)"
    )]
    Unreachable {
        host: String,
        url: String,
        #[source]
        source: Cause,
    },

    #[error(
        "the netmon agent of {host} ({url}) refused the request (HTTP 401): give the host `agent_token` in the config with the token the agent was started with (its --token-file or NETMON_MCP_TOKEN)"
    )]
    Refused { host: String, url: String },

    #[error("the netmon agent of {host} did not answer within {secs} s ({what})")]
    TimedOut {
        host: String,
        what: &'static str,
        secs: u64,
    },

    #[error("the netmon agent of {host} answered: {message}")]
    Failed { host: String, message: String },
}
