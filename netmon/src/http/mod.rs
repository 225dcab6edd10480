//! Serving an axum router on one address until shutdown: the part the MCP server and the agent
//! share, hardened against clients that connect and never finish.
//!
//! - **Header timeout.** A connection that has not sent a whole request head within
//!   [`HEADER_READ_TIMEOUT`] is closed. hyper starts that clock at accept and again after each
//!   response, so it is also the keep-alive idle timeout; it never runs while a response (an SSE
//!   stream) is in flight.
//! - **A connection limit below the descriptor limit.** At the limit, the connection idle the
//!   longest is closed to let the new one in ([`conns`]); when every connection is busy, the new
//!   one is refused. Running out of descriptors anyway (EMFILE) sheds an idle connection too,
//!   instead of spinning on a listener that stays readable.
//! - **Descriptors.** The soft `RLIMIT_NOFILE` is raised to the hard limit at start.
//!
//! axum's own `serve` has none of these (and turns hyper's default header timeout off), so this
//! is hyper's HTTP/1 connection driven by a loop of netmon's.

pub mod conns;

use crate::error::HttpError;
use axum::body::Body;
use conns::{Busy, Conns};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest a connection may go without a complete request head, idle keep-alive included.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Descriptors kept for everything that is not a client connection (maps, SSH, logs).
const FD_RESERVE: u64 = 64;
/// Most connections whatever the descriptor limit: each costs memory.
const MAX_CONNECTIONS: usize = 1024;
/// How long shutdown waits for responses in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in force.
pub fn raise_nofile_limit() -> io::Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

/// Connections to serve at once under a soft descriptor limit of `nofile`: all of it but a
/// reserve (at least half), at most [`MAX_CONNECTIONS`]. Pure.
pub fn connection_limit(nofile: u64) -> usize {
    let by_fds = nofile.saturating_sub(FD_RESERVE).max(nofile / 2);
    usize::try_from(by_fds)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_CONNECTIONS)
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A connection's stream: TCP, or TLS over it.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Binds `addr` and serves `app` until `shutdown` is cancelled, over TLS when `tls` is given
/// (the handshake is bounded like a request head). `on_bound` gets the bound address (the real
/// port when 0 was asked for).
pub async fn serve(
    app: axum::Router,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), HttpError> {
    let nofile = raise_nofile_limit().unwrap_or_else(|e| {
        log::warn!("could not raise RLIMIT_NOFILE: {e}");
        1024
    });
    let bind = |e| HttpError::Bind { addr, source: e };
    // A backlog wider than mio's default 128, so a burst of connections does not stall new
    // clients in the kernel's queue while idle ones are shed.
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(bind)?;
    socket.set_reuseaddr(true).map_err(bind)?;
    socket.bind(addr).map_err(bind)?;
    let listener = socket.listen(1024).map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    on_bound(bound);

    let conns = Conns::new(connection_limit(nofile));
    log::info!(
        "serving {}://{bound}: at most {} connections (RLIMIT_NOFILE {nofile})",
        if tls.is_some() { "https" } else { "http" },
        conns.max
    );
    let mut http = http1::Builder::new();
    // Without a timer hyper ignores the header timeout.
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let router = TowerToHyperService::new(app);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // The peer gave up while queued.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) =>
            {
                continue;
            }
            Err(e) => {
                // Out of descriptors, the connection stays queued and the listener readable: an
                // immediate retry would spin. Free one if an idle connection can go, then pause.
                let pause = if out_of_descriptors(&e) && conns.shed_idlest() {
                    Duration::from_millis(10)
                } else {
                    Duration::from_millis(250)
                };
                log::warn!("accepting on {bound}: {e}");
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        if !conns.make_room() {
            log::debug!("{bound}: {} connections, all busy; refusing one", conns.max);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (slot, registration) = conns.register();
        let service = Tracked {
            router: router.clone(),
            slot: slot.clone(),
        };
        let shutdown = shutdown.clone();
        let (http, tls) = (http.clone(), tls.clone());
        tokio::spawn(async move {
            // Dropped last, after the socket is closed.
            let _registration = registration;
            let stream: Box<dyn Stream> = match tls {
                None => Box::new(stream),
                Some(tls) => {
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            log::debug!("TLS handshake: {e}");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            let conn = http.serve_connection(TokioIo::new(stream), service);
            let mut conn = pin!(conn);
            let mut draining = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            log::debug!("http connection: {e}");
                        }
                        break;
                    }
                    // Shed, or shutting down: an idle or half-sent connection is closed now;
                    // one with a response in flight finishes it first.
                    () = slot.shed.cancelled(), if !draining => {
                        if slot.is_idle() {
                            break;
                        }
                        conn.as_mut().graceful_shutdown();
                        draining = true;
                    }
                    () = shutdown.cancelled(), if !draining => {
                        if slot.is_idle() {
                            break;
                        }
                        conn.as_mut().graceful_shutdown();
                        draining = true;
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, conns.wait_empty())
        .await
        .is_err()
    {
        log::warn!(
            "{bound}: {} connection(s) still open after {SHUTDOWN_GRACE:?}; closing",
            conns.len()
        );
    }
    Ok(())
}

/// The router, with each request counted busy until its response body is done or dropped.
struct Tracked {
    router: TowerToHyperService<axum::Router>,
    slot: Arc<conns::Slot>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let busy = Busy::start(&self.slot);
        let response = hyper::service::Service::call(&self.router, req);
        Box::pin(async move {
            let r = response.await?;
            Ok(r.map(|body| TrackedBody { body, _busy: busy }))
        })
    }
}

struct TrackedBody {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_descriptors_for_the_rest() {
        assert_eq!(connection_limit(256), 192);
        assert_eq!(connection_limit(1024), 960);
        assert_eq!(connection_limit(100), 50);
        assert_eq!(connection_limit(1 << 20), MAX_CONNECTIONS);
        assert_eq!(connection_limit(0), 1);
    }
}
