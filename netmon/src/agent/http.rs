//! The agent's HTTP port: `/metrics` (Prometheus text) and `/health` (JSON).
//! Both are read-only and carry interface names and counters, no flows.

use super::{Agent, Health};
use crate::error::Result;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where the agent listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9465";

async fn metrics(State(agent): State<Arc<Agent>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            crate::metrics::Metrics::content_type(),
        )],
        agent.metrics.render(),
    )
}

async fn health(State(agent): State<Arc<Agent>>) -> impl IntoResponse {
    let h: Health = agent.health();
    // A struct of plain fields always serialises.
    let body = serde_json::to_string(&h).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// Binds `addr` and serves until `shutdown`. `on_bound` gets the bound address.
pub async fn serve(
    agent: Arc<Agent>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(agent);
    crate::http::serve(app, addr, shutdown, on_bound).await
}
