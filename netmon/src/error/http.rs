//! Serving HTTP: the MCP server and the agent's port.

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to serve on {addr} without a bearer token: anything but loopback needs one (set {env} or pass --token-file; make one with `openssl rand -hex 32`), or bind 127.0.0.1"
    )]
    NeedsToken {
        addr: std::net::SocketAddr,
        env: &'static str,
    },

    #[error(
        "serving HTTP on {addr} (is another process using the port? pick another address or port)"
    )]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
