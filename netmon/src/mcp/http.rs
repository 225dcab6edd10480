//! MCP over Streamable HTTP at `/mcp`.
//!
//! Three gates, because a privileged process that samples traffic must not be drivable by a web
//! page or by anyone on the network:
//! - **Host**: only loopback names, the addresses the server is bound to, and `--allowed-host`
//!   (DNS rebinding); checked by rmcp, answered with 403.
//! - **Origin**: a browser request must come from a loopback page or an `--allowed-origin`;
//!   checked by rmcp, answered with 403. Requests without Origin (non-browser clients) pass.
//! - **Bearer token**: required whenever one is configured, and a server bound to anything but
//!   loopback refuses to start without one; answered with 401.

use super::NetmonMcp;
use super::sessions::{self, BoundedSessions, SessionLimits};
use crate::error::{HttpError, Result};
use crate::host;
use crate::secret::{TOKEN_ENV, Token};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::net::{IpAddr, SocketAddr};
use tokio_util::sync::CancellationToken;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8765";
pub const PATH: &str = "/mcp";

/// A validated HTTP server configuration.
pub struct HttpOptions {
    pub addr: SocketAddr,
    pub token: Option<Token>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub sessions: SessionLimits,
    /// Serve HTTPS with this certificate.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("addr", &self.addr)
            .field("token", &self.token)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_origins", &self.allowed_origins)
            .field("sessions", &self.sessions)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl HttpOptions {
    /// `extra_hosts` and `extra_origins` add to the loopback defaults.
    pub fn new(
        addr: SocketAddr,
        token: Option<Token>,
        extra_hosts: Vec<String>,
        extra_origins: Vec<String>,
    ) -> Result<Self, HttpError> {
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(HttpError::NeedsToken {
                addr,
                env: TOKEN_ENV,
            });
        }
        let mut allowed_hosts: Vec<String> =
            vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        // An IP literal in Host cannot be a rebinding attack, so the server's own addresses are
        // safe to accept; names need --allowed-host.
        if addr.ip().is_unspecified() {
            if let Ok(list) = host::list() {
                allowed_hosts.extend(
                    list.iter()
                        .flat_map(|i| i.addresses.iter())
                        .map(IpAddr::to_string),
                );
            }
        } else {
            allowed_hosts.push(addr.ip().to_string());
        }
        allowed_hosts.extend(extra_hosts);
        let mut allowed_origins: Vec<String> = vec![
            "http://localhost:*".into(),
            "http://127.0.0.1:*".into(),
            "http://[::1]:*".into(),
        ];
        allowed_origins.extend(extra_origins);
        Ok(Self {
            addr,
            token,
            allowed_hosts,
            allowed_origins,
            sessions: SessionLimits::DEFAULT,
            tls: None,
        })
    }
}

impl HttpOptions {
    pub fn with_sessions(mut self, sessions: SessionLimits) -> Self {
        self.sessions = sessions;
        self
    }

    /// Serves HTTPS; browsers' pages then come from `https://` origins too.
    pub fn with_tls(mut self, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        if tls.is_some() {
            self.allowed_origins.extend(
                [
                    "https://localhost:*",
                    "https://127.0.0.1:*",
                    "https://[::1]:*",
                ]
                .map(String::from),
            );
        }
        self.tls = tls;
        self
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// Largest request body read; rmcp has the same bound.
const MAX_BODY: usize = 4 << 20;

fn rpc_error(status: StatusCode, code: i32, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Requests rmcp would answer vaguely: several `Host` headers (rmcp checks only the first) get
/// 400; a POST body that is not JSON gets 400 with a JSON-RPC parse error (-32700), not rmcp's
/// 415.
async fn check_request(req: Request, next: Next) -> Response {
    if req.headers().get_all(header::HOST).iter().count() > 1 {
        return (
            StatusCode::BAD_REQUEST,
            "more than one Host header: send exactly one\n",
        )
            .into_response();
    }
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            "the request body is larger than 4 MiB, or was cut off",
        );
    };
    // A whole parse, not a skim: serde_json's skim (IgnoredAny) has no depth limit, and rmcp
    // answered a body nested 100,000 arrays deep with "415 Unsupported Media Type". The parse
    // stops at 128 levels.
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            -32700,
            &format!(
                "parse error: the body is not JSON, or nests deeper than 128 levels ({e}); send one JSON-RPC message"
            ),
        );
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

async fn require_token(State(token): State<Option<Token>>, req: Request, next: Next) -> Response {
    let Some(token) = token else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|p| token.matches(p.trim().as_bytes())) {
        return next.run(req).await;
    }
    log::warn!(
        "refused {} {}: {} bearer token",
        req.method(),
        req.uri().path(),
        if presented.is_some() { "wrong" } else { "no" }
    );
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        format!(
            "missing or wrong bearer token: send `Authorization: Bearer <token>` with the token the server was given (--token-file or {TOKEN_ENV})\n"
        ),
    )
        .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"netmon\""),
    );
    resp
}

/// `/mcp` with its three gates, as a router to serve alone ([`serve`]) or beside other routes
/// (the agent's port). The token layer guards only these routes.
pub fn router(
    handler: NetmonMcp,
    opts: &HttpOptions,
    shutdown: &CancellationToken,
) -> axum::Router {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(opts.allowed_hosts.clone())
        .with_allowed_origins(opts.allowed_origins.clone())
        .enforce_origin_validation()
        .with_cancellation_token(shutdown.child_token());
    let sessions = BoundedSessions::new(opts.sessions);
    tokio::spawn(sessions::sweep_until(
        sessions.clone(),
        shutdown.child_token(),
    ));
    let service = StreamableHttpService::new(move || Ok(handler.for_session()), sessions, config);
    axum::Router::new()
        .nest_service(PATH, service)
        .layer(axum::middleware::from_fn(check_request))
        .layer(axum::middleware::from_fn_with_state(
            opts.token.clone(),
            require_token,
        ))
}

/// Binds `opts.addr` and serves until `shutdown` is cancelled. `on_bound` gets the bound
/// address (the real port when 0 was asked for).
pub async fn serve(
    handler: NetmonMcp,
    opts: HttpOptions,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<()> {
    let app = router(handler, &opts, &shutdown);
    Ok(crate::http::serve(app, opts.addr, opts.tls.clone(), shutdown, on_bound).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        let any: SocketAddr = "0.0.0.0:8765".parse().unwrap();
        let e = HttpOptions::new(any, None, vec![], vec![]).unwrap_err();
        assert!(e.to_string().contains(TOKEN_ENV), "{e}");
        let t = Token::new("0123456789abcdef0123", "test").unwrap();
        assert!(HttpOptions::new(any, Some(t), vec![], vec![]).is_ok());
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(HttpOptions::new(lo, None, vec![], vec![]).is_ok());
    }
}
