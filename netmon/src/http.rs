//! Serving an axum router on one address until shutdown: the part the MCP server and the agent
//! share.

use crate::error::HttpError;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// Binds `addr` and serves `app` until `shutdown` is cancelled. `on_bound` gets the bound
/// address (the real port when 0 was asked for).
pub async fn serve(
    app: axum::Router,
    addr: SocketAddr,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| HttpError::Bind { addr, source: e })?;
    let bound = listener
        .local_addr()
        .map_err(|e| HttpError::Bind { addr, source: e })?;
    on_bound(bound);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| HttpError::Bind {
            addr: bound,
            source: e,
        })
}
