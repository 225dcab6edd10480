//! MCP sessions over HTTP, bounded. rmcp's session manager keeps every session a client opens
//! until it is deleted or quiet for five minutes, at about 90 KB each (eight channels whose first
//! 32-slot block is allocated up front, and the session's tasks), and has no limit on their
//! number: a client that initialises in a loop and never deletes grows the server without
//! bound. This wrapper around it:
//!
//! - keeps at most [`SessionLimits::max`] sessions: a new one closes the idlest (one with no open
//!   stream first), so a new client always gets in;
//! - closes a session with no request and no open stream for [`SessionLimits::idle`];
//! - answers a request whose id is already in flight in the same session with a JSON-RPC error
//!   at once (rmcp would lose the first request's answer, and its stream would hang);
//! - gives freed memory back to the system after it closes sessions (glibc keeps it otherwise).

use crate::error::RequestError;
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ErrorData, RequestId, ServerJsonRpcMessage};
use rmcp::transport::common::server_side_http::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, SessionConfig};
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How many sessions, and how long a quiet one lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    pub max: usize,
    pub idle: Duration,
}

impl SessionLimits {
    pub const DEFAULT: Self = Self {
        max: 128,
        idle: Duration::from_secs(60),
    };

    /// `--max-sessions` and `--session-idle`, checked.
    pub fn new(max: usize, idle_seconds: f64) -> Result<Self, RequestError> {
        if !(1..=100_000).contains(&max) {
            return Err(RequestError::OutOfRange {
                arg: "--max-sessions",
                got: max.to_string(),
                range: "1–100000".into(),
                why: "",
            });
        }
        if !(1.0..=3600.0).contains(&idle_seconds) {
            return Err(RequestError::OutOfRange {
                arg: "--session-idle",
                got: idle_seconds.to_string(),
                range: "1–3600 seconds".into(),
                why: "",
            });
        }
        Ok(Self {
            max,
            idle: Duration::from_secs_f64(idle_seconds),
        })
    }
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Request ids of one session whose answer has not been sent.
type InFlight = Arc<Mutex<HashSet<RequestId>>>;

/// What the wrapper knows of one session.
#[derive(Default)]
struct Activity {
    /// The last request, notification or stream opened.
    last: Option<Instant>,
    /// Streams open now (request streams until their answer is sent, and GET streams).
    streams: Arc<AtomicUsize>,
    in_flight: InFlight,
}

pub struct BoundedSessions {
    inner: LocalSessionManager,
    limits: SessionLimits,
    sessions: Mutex<HashMap<SessionId, Activity>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which session should go to make room, or because it has been quiet too long. Pure.
fn idlest(
    sessions: &HashMap<SessionId, Activity>,
    now: Instant,
) -> Option<(SessionId, bool, Duration)> {
    sessions
        .iter()
        .map(|(id, a)| {
            let open = a.streams.load(Ordering::Relaxed) > 0;
            let quiet = a
                .last
                .map_or(Duration::MAX, |l| now.saturating_duration_since(l));
            (id.clone(), open, quiet)
        })
        // No open stream first, then the longest quiet.
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
}

impl BoundedSessions {
    pub fn new(limits: SessionLimits) -> Arc<Self> {
        let mut inner = LocalSessionManager::default();
        // rmcp's own timeout stays as a backstop behind ours.
        let mut config = SessionConfig::default();
        config.keep_alive = Some(limits.idle.max(Duration::from_secs(300)));
        inner.session_config = config;
        Arc::new(Self {
            inner,
            limits,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn touch(&self, id: &SessionId) -> Option<(Arc<AtomicUsize>, InFlight)> {
        let mut s = lock(&self.sessions);
        let a = s.get_mut(id)?;
        a.last = Some(Instant::now());
        Some((a.streams.clone(), a.in_flight.clone()))
    }

    /// Closes sessions quiet for longer than the idle limit with no open stream; returns how
    /// many.
    pub async fn sweep(&self) -> usize {
        let now = Instant::now();
        let quiet: Vec<SessionId> = lock(&self.sessions)
            .iter()
            .filter(|(_, a)| {
                a.streams.load(Ordering::Relaxed) == 0
                    && a.last
                        .is_none_or(|l| now.saturating_duration_since(l) > self.limits.idle)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &quiet {
            self.close(id).await;
        }
        quiet.len()
    }

    async fn close(&self, id: &SessionId) {
        lock(&self.sessions).remove(id);
        // A worker stuck writing to a client that reads nothing could hold the close up.
        match tokio::time::timeout(Duration::from_secs(2), self.inner.close_session(id)).await {
            Ok(Err(e)) => log::debug!("closing session {id}: {e}"),
            Err(_) => log::debug!("closing session {id} timed out"),
            Ok(Ok(())) => {}
        }
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long after closing sessions their memory is given back: a closed session's tasks end
/// only once its handlers have drained (rmcp allows them 5 s), and only then is it freed.
const TRIM_AFTER: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(7),
];

/// Closes quiet sessions every few seconds until `stop`, and gives the memory back.
pub async fn sweep_until(sessions: Arc<BoundedSessions>, stop: CancellationToken) {
    let every =
        (sessions.limits.idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if sessions.sweep().await > 0 {
            trim_later();
        }
    }
}

/// Gives memory back a few times over the next seconds, as closed sessions finish ending. One
/// such round at a time: a client opening sessions in a loop would start one per session.
fn trim_later() {
    static TRIMMING: AtomicBool = AtomicBool::new(false);
    if TRIMMING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        let mut waited = Duration::ZERO;
        for at in TRIM_AFTER {
            tokio::time::sleep(at - waited).await;
            waited = at;
            give_memory_back();
        }
        TRIMMING.store(false, Ordering::Release);
    });
}

/// Returns freed heap pages to the system. glibc keeps freed memory in its arenas, so RSS
/// stays at its peak after thousands of sessions close; `malloc_trim` releases it (measured in
/// `tests/tests/hostile.rs`). musl's allocator has no such call and returns memory by itself.
pub fn give_memory_back() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A session's stream: counted open while it lives, and its request id in flight until the
/// answer passes or the stream is dropped.
struct Tracked<S> {
    inner: S,
    streams: Arc<AtomicUsize>,
    request: Option<(RequestId, InFlight)>,
}

impl<S> Tracked<S> {
    fn new(inner: S, streams: Arc<AtomicUsize>, request: Option<(RequestId, InFlight)>) -> Self {
        streams.fetch_add(1, Ordering::Relaxed);
        Self {
            inner,
            streams,
            request,
        }
    }

    fn answered(&mut self) {
        if let Some((id, set)) = self.request.take() {
            lock(&set).remove(&id);
        }
    }
}

impl<S> Drop for Tracked<S> {
    fn drop(&mut self) {
        self.answered();
        self.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S: Stream<Item = ServerSseMessage> + Unpin> Stream for Tracked<S> {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(m)) = &next
            && let Some((id, _)) = &self.request
            && let Some(msg) = &m.message
        {
            let answers = match msg.as_ref() {
                ServerJsonRpcMessage::Response(r) => &r.id == id,
                ServerJsonRpcMessage::Error(e) => e.id.as_ref() == Some(id),
                _ => false,
            };
            if answers {
                self.answered();
            }
        }
        next
    }
}

type SseStream = Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync + 'static>>;

/// One message, then the end: the answer to a request netmon refuses itself.
fn refusal(id: RequestId, message: String) -> SseStream {
    let msg = ServerJsonRpcMessage::error(ErrorData::invalid_request(message, None), Some(id));
    Box::pin(futures::stream::iter([ServerSseMessage::from_message(msg)]))
}

impl SessionManager for BoundedSessions {
    type Error = <LocalSessionManager as SessionManager>::Error;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let mut closed_any = false;
        loop {
            let victim = {
                let s = lock(&self.sessions);
                if s.len() < self.limits.max {
                    break;
                }
                idlest(&s, Instant::now())
            };
            let Some((id, _, _)) = victim else { break };
            log::info!(
                "{} MCP sessions open, the most allowed: closing the idlest ({id}) for a new one",
                self.limits.max
            );
            self.close(&id).await;
            closed_any = true;
        }
        if closed_any {
            trim_later();
        }
        let (id, transport) = self.inner.create_session().await?;
        lock(&self.sessions).insert(
            id.clone(),
            Activity {
                last: Some(Instant::now()),
                ..Default::default()
            },
        );
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        let has = self.inner.has_session(id).await?;
        if has {
            self.touch(id);
        } else {
            // rmcp ended it (its own timeout): forget it too.
            lock(&self.sessions).remove(id);
        }
        Ok(has)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        lock(&self.sessions).remove(id);
        let r = self.inner.close_session(id).await;
        trim_later();
        r
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let Some((streams, in_flight)) = self.touch(id) else {
            // Not one of ours (rmcp checked it exists): pass it on, untracked.
            let s = self.inner.create_stream(id, message).await?;
            return Ok(Box::pin(s) as SseStream);
        };
        let request = match &message {
            ClientJsonRpcMessage::Request(r) => Some(r.id.clone()),
            _ => None,
        };
        if let Some(rid) = &request
            && !lock(&in_flight).insert(rid.clone())
        {
            return Ok(refusal(
                rid.clone(),
                format!(
                    "request id {rid} is already in flight in this session; use a new id for each request"
                ),
            ));
        }
        let s = match self.inner.create_stream(id, message).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(rid) = &request {
                    lock(&in_flight).remove(rid);
                }
                return Err(e);
            }
        };
        let request = request.map(|rid| (rid, in_flight));
        Ok(Box::pin(Tracked::new(Box::pin(s), streams, request)) as SseStream)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let s = self.inner.create_standalone_stream(id).await?;
        Ok(match self.touch(id) {
            Some((streams, _)) => Box::pin(Tracked::new(Box::pin(s), streams, None)) as SseStream,
            None => Box::pin(s) as SseStream,
        })
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let s = self.inner.resume(id, last_event_id).await?;
        Ok(match self.touch(id) {
            Some((streams, _)) => Box::pin(Tracked::new(Box::pin(s), streams, None)) as SseStream,
            None => Box::pin(s) as SseStream,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(quiet_s: u64, streams: usize, now: Instant) -> Activity {
        Activity {
            last: Some(now - Duration::from_secs(quiet_s)),
            streams: Arc::new(AtomicUsize::new(streams)),
            ..Default::default()
        }
    }

    #[test]
    fn the_idlest_is_the_longest_quiet_without_a_stream() {
        let now = Instant::now() + Duration::from_secs(100);
        let mut s = HashMap::new();
        s.insert(SessionId::from("busy-old"), activity(90, 1, now));
        s.insert(SessionId::from("quiet-10"), activity(10, 0, now));
        s.insert(SessionId::from("quiet-50"), activity(50, 0, now));
        let (id, open, quiet) = idlest(&s, now).unwrap();
        assert_eq!(
            (id.as_ref(), open, quiet.as_secs()),
            ("quiet-50", false, 50)
        );
        // With only streaming sessions, the longest quiet of them.
        s.retain(|id, _| id.as_ref() == "busy-old");
        assert_eq!(idlest(&s, now).unwrap().0.as_ref(), "busy-old");
        assert!(idlest(&HashMap::new(), now).is_none());
    }
}
