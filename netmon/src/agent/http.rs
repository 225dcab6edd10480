//! The agent's HTTP port: `/metrics` (Prometheus text), `/health` (JSON) and, when it is safe,
//! `/mcp` (Streamable HTTP, behind the MCP server's Host, Origin and bearer-token gates).
//!
//! `/metrics` and `/health` are read-only and open, as scrapers and kubelet probes expect; they
//! carry interface names and counters, and flow addresses only with `--flow-series`. `/mcp` can
//! make the agent attach to interfaces, so it is served only behind a token or on loopback.

use super::source::AgentSource;
use super::{Agent, Health};
use crate::config::Config;
use crate::error::{HttpError, Result};
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
    /// `/mcp`'s gates, or `None` when `/mcp` is off (a public address without a token).
    pub mcp: Option<HttpOptions>,
}

impl ServeOptions {
    /// `/mcp` is served on loopback, or anywhere with a token. HttpOptions refuses a public
    /// address without one; for the agent that turns `/mcp` off instead of failing, so a
    /// DaemonSet without a token Secret still serves metrics.
    pub fn new(
        addr: SocketAddr,
        token: Option<Token>,
        allowed_hosts: Vec<String>,
        sessions: SessionLimits,
    ) -> Self {
        let mcp = match HttpOptions::new(addr, token, allowed_hosts, vec![]) {
            Ok(o) => Some(o.with_sessions(sessions)),
            Err(HttpError::NeedsToken { .. }) => None,
            Err(e) => {
                log::warn!("/mcp off: {e}");
                None
            }
        };
        Self { addr, mcp }
    }

    /// What the port serves, for the start-up line.
    pub fn describe(&self) -> &'static str {
        match &self.mcp {
            Some(o) if o.token.is_some() => "/metrics, /health and /mcp (bearer token required)",
            Some(_) => "/metrics, /health and /mcp (loopback, no token)",
            None => {
                "/metrics and /health; no /mcp: give --token-file or NETMON_MCP_TOKEN to serve it off loopback"
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
    Ok(crate::http::serve(app, opts.addr, shutdown, on_bound).await?)
}
