//! The agent's HTTP port: `/metrics` (Prometheus text), `/health` (JSON) and, when it is safe,
//! `/mcp` (Streamable HTTP, behind the MCP server's Host, Origin and bearer-token gates).
//!
//! `/metrics` and `/health` are read-only and open, as scrapers and kubelet probes expect; they
//! carry interface names and counters, and flow addresses only with `--flow-series`. `/mcp`
//! tells every connection and the process behind it, and can make the agent attach to
//! interfaces, so it is served only behind a token, on loopback too: any local user can reach
//! loopback, and the agent's privileges are more than theirs.

use super::source::AgentSource;
use super::{Agent, Health};
use crate::config::Config;
use crate::error::Result;
use crate::mcp::NetmonMcp;
use crate::mcp::http::HttpOptions;
use crate::mcp::sessions::SessionLimits;
use crate::secret::Token;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where the agent listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9465";

#[derive(Clone)]
struct Port {
    agent: Arc<Agent>,
    mcp: bool,
}

async fn metrics(State(port): State<Port>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            crate::metrics::Metrics::content_type(),
        )],
        port.agent.metrics.render(),
    )
}

async fn health(State(port): State<Port>) -> impl IntoResponse {
    let h: Health = Health {
        mcp: port.mcp,
        ..port.agent.health()
    };
    // A struct of plain fields always serialises.
    let body = serde_json::to_string(&h).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// How the agent's port is served.
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// `/mcp`'s gates, or `None` when `/mcp` is off (no token).
    pub mcp: Option<HttpOptions>,
    /// Serve HTTPS with this certificate: the whole port, `/metrics` included.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl ServeOptions {
    /// `/mcp` is served with a token only, on any address. Without one it is off rather than
    /// a failure, so a DaemonSet without a token Secret still serves metrics.
    pub fn new(
        addr: SocketAddr,
        token: Option<Token>,
        allowed_hosts: Vec<String>,
        sessions: SessionLimits,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let mcp = token.and_then(|token| {
            match HttpOptions::new(addr, Some(token), allowed_hosts, vec![]) {
                Ok(o) => Some(o.with_sessions(sessions).with_tls(tls.clone())),
                Err(e) => {
                    log::warn!("/mcp off: {e}");
                    None
                }
            }
        });
        Self { addr, mcp, tls }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// What the port serves, for the start-up line.
    pub fn describe(&self) -> &'static str {
        match &self.mcp {
            Some(_) => "/metrics, /health and /mcp (bearer token required)",
            None => {
                "/metrics and /health; no /mcp: give --token-file or NETMON_MCP_TOKEN to serve it (without a token any local user could read every connection and its process)"
            }
        }
    }
}

/// Serves the agent's port until `shutdown`; `/mcp` too when the options allow it, answered from
/// the agent's history. `on_bound` gets the bound address.
pub async fn serve(
    agent: Arc<Agent>,
    opts: ServeOptions,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<()> {
    let port = Port {
        agent: agent.clone(),
        mcp: opts.mcp.is_some(),
    };
    let mut app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(port);
    if let Some(http) = &opts.mcp {
        let handler = NetmonMcp::new(Arc::new(AgentSource::new(agent)), Config::default());
        app = app.merge(crate::mcp::http::router(handler, http, &shutdown));
    }
    Ok(crate::http::serve(app, opts.addr, opts.tls.clone(), shutdown, on_bound).await?)
}
