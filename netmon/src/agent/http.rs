//! The agent's HTTP port: `/metrics` (Prometheus text), `/health` (JSON) and, when it is safe,
//! `/mcp` (Streamable HTTP, behind the MCP server's Host, Origin and bearer-token gates).
//!
//! `/metrics` and `/health` are read-only and open, as scrapers and kubelet probes expect; they
//! carry interface names and counters, and flow addresses only with `--flow-series`. `/mcp` can
//! make the agent attach to interfaces, so it is served only behind a token or on loopback.

use super::{Agent, Health};
use crate::error::Result;
use crate::mcp::NetmonMcp;
use crate::mcp::http::HttpOptions;
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

/// Binds `opts.addr` and serves until `shutdown`; `/mcp` too when `mcp` is given.
/// `on_bound` gets the bound address.
pub async fn serve(
    agent: Arc<Agent>,
    addr: SocketAddr,
    mcp: Option<(NetmonMcp, HttpOptions)>,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<()> {
    let port = Port {
        agent,
        mcp: mcp.is_some(),
    };
    let mut app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(port);
    if let Some((handler, opts)) = mcp {
        app = app.merge(crate::mcp::http::router(handler, &opts, &shutdown));
    }
    crate::http::serve(app, addr, shutdown, on_bound).await
}
