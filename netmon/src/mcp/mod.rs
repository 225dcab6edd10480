//! netmon as an MCP server: the contract's two tools, a prompt, and log messages, behind one
//! handler, served over stdio ([`serve_stdio`]) or Streamable HTTP ([`http`]).
//!
//! - [`args`]: the tools' arguments, decoded and validated into typed requests.
//! - [`tools`]: tool definitions (schemas, annotations) and the server's instructions.
//! - [`prompt`]: the `diagnose_bandwidth` prompt and completion of its arguments.
//! - [`log`]: `logging/setLevel` and the messages a call sends while it runs.
//! - [`http`]: the HTTP transport with its Host, Origin and bearer-token gates.
//! - [`sessions`]: HTTP sessions, bounded in number and idle time.
//!
//! Which source answers a call is [`crate::source::route`]'s decision; this module only speaks
//! MCP. Every failure a caller can fix comes back as a tool result with `success: false` and
//! `isError: true`, never as a protocol error, so a model sees the message and can retry.

pub mod args;
pub mod http;
pub mod log;
pub mod prompt;
pub mod sessions;
pub mod tools;

use crate::config::Config;
use crate::error::{Error, Result, chain};
use crate::names::Namer;
use crate::report::{InterfacesData, Response, TrafficData};
use crate::request::{Target, TrafficRequest};
use crate::source::ebpf::{EbpfOptions, EbpfSource};
use crate::source::route::{Route, open, route};
use crate::source::{Progress, TrafficSource, collect};
use args::{InterfacesArgs, TrafficArgs};
#[allow(deprecated)] // SetLevelRequestParams: see `set_level`
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    CustomRequest, CustomResult, ErrorCode, GetPromptRequestParams, GetPromptResponse,
    Implementation, InitializeResult, ListPromptsResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, SetLevelRequestParams, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde::Serialize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Samples running at once across all clients; beyond it a call is refused, not queued, so a
/// flood of calls cannot pin the server for minutes.
pub const MAX_CONCURRENT_SAMPLES: usize = 256;

struct Shared {
    /// This machine's traffic: the classifier (loaded on the first traffic call, so a server
    /// without privileges still starts, lists interfaces, and explains what it lacks), or a
    /// running agent's history.
    local: Arc<dyn TrafficSource>,
    samples: Semaphore,
    /// Remote hosts and the SSH policy.
    config: Config,
    /// Host and service names, with one cache for every call.
    namer: Namer,
}

/// The MCP handler. Clones share the sources, so every session of an HTTP server and every
/// concurrent call shares one attachment per interface; each session has its own log level.
#[derive(Clone)]
pub struct NetmonMcp {
    shared: Arc<Shared>,
    log: log::SessionLog,
    /// Cancelled when the client's side of the connection is gone (stdin or stdout closed), so
    /// running samples stop at once instead of after rmcp's drain period.
    gone: CancellationToken,
}

impl NetmonMcp {
    /// A server whose local traffic comes from `local` (the classifier, or an agent's history).
    pub fn new(local: Arc<dyn TrafficSource>, config: Config) -> Self {
        Self {
            shared: Arc::new(Shared {
                local,
                samples: Semaphore::new(MAX_CONCURRENT_SAMPLES),
                config,
                namer: Namer::default(),
            }),
            log: log::SessionLog::default(),
            gone: CancellationToken::new(),
        }
    }

    /// The handler for a new session: the same sources, its own log level.
    pub fn for_session(&self) -> Self {
        Self {
            log: log::SessionLog::default(),
            ..self.clone()
        }
    }

    /// The source that answers for `target`.
    fn source(&self, target: Target) -> Result<Source> {
        let r = route(&target, &self.shared.config)?;
        match (r, target) {
            (Route::Local, _) => Ok(Source::Local(self.shared.local.clone())),
            (r, Target::Remote(remote)) => {
                Ok(Source::Remote(open(r, remote, &self.shared.config)?))
            }
            (_, Target::Local) => Ok(Source::Local(self.shared.local.clone())),
        }
    }

    async fn list_interfaces(&self, target: Target) -> Result<(String, InterfacesData)> {
        let source = self.source(target)?;
        let list = source.get().interfaces().await?;
        Ok((
            format!("found {} interfaces", list.len()),
            InterfacesData::new(source.get().host(), list),
        ))
    }

    async fn get_traffic(
        &self,
        raw: Option<rmcp::model::JsonObject>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(String, TrafficData)> {
        let (target, req) = TrafficArgs::parse(tools::GET_TRAFFIC, raw)?;
        let _permit = self.shared.samples.try_acquire().map_err(|_| Error::Busy {
            limit: MAX_CONCURRENT_SAMPLES,
        })?;
        let source = self.source(target)?;
        let started = Instant::now();
        let data = self.sample(source.get(), &req, ctx).await?;
        self.log
            .after_sample(&ctx.peer, &data, started.elapsed())
            .await;
        Ok((data.summary(), data))
    }

    /// One sample through `source`, with progress notifications, stopped at once by a cancel
    /// or a vanished client.
    async fn sample(
        &self,
        source: &dyn TrafficSource,
        req: &TrafficRequest,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<TrafficData> {
        // The source reports progress synchronously; the notifications go out from this task so
        // they stay in order and stop when the call does.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let report = move |p: Progress| {
            let _ = tx.send(p);
        };
        let token = ctx.meta.get_progress_token();
        let window = req.window.duration().as_secs_f64();
        let name = req
            .iface
            .as_ref()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let work = collect(source, req, None, &report, &self.shared.namer);
        tokio::pin!(work);
        let data = loop {
            tokio::select! {
                biased;
                _ = ctx.ct.cancelled() => return Err(Error::Cancelled),
                _ = self.gone.cancelled() => return Err(Error::Cancelled),
                d = &mut work => break d?,
                Some(p) = rx.recv() => {
                    if let Some(token) = &token {
                        let done = match p {
                            Progress::Started { .. } => 0.0,
                            Progress::Elapsed { elapsed, .. } => elapsed.as_secs_f64(),
                        };
                        let note = ProgressNotificationParam::new(token.clone(), done)
                            .with_total(window)
                            .with_message(format!("sampling {name}: {done:.0} of {window:.0} s"));
                        if let Err(e) = ctx.peer.notify_progress(note).await {
                            ::log::debug!("progress notification not sent: {e}");
                        }
                    }
                }
            }
        };
        if let Some(token) = &token {
            let note = ProgressNotificationParam::new(token.clone(), window)
                .with_total(window)
                .with_message(format!("sampled {name} for {window:.0} s"));
            let _ = ctx.peer.notify_progress(note).await;
        }
        Ok(data)
    }
}

/// The source a call goes to: this machine's, shared, or a remote one made for the call.
enum Source {
    Local(Arc<dyn TrafficSource>),
    Remote(Box<dyn TrafficSource>),
}

impl Source {
    fn get(&self) -> &dyn TrafficSource {
        match self {
            Source::Local(s) => s.as_ref(),
            Source::Remote(s) => s.as_ref(),
        }
    }
}

/// `{success, message, data}` as structured content, the same JSON as text, and `isError` set
/// when `success` is false. The message is the whole chain of causes.
fn tool_result<T: Serialize>(outcome: &Result<(String, T)>) -> Result<CallToolResult, McpError> {
    let (value, failed) = match outcome {
        Ok((message, data)) => (
            serde_json::to_value(Response::ok(message.clone(), data)),
            false,
        ),
        Err(e) => (serde_json::to_value(Response::<T>::err(chain(e))), true),
    };
    let value =
        value.map_err(|e| McpError::internal_error(format!("encoding the result: {e}"), None))?;
    Ok(if failed {
        CallToolResult::structured_error(value)
    } else {
        CallToolResult::structured(value)
    })
}

fn outcome_label<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("failed: {}", chain(e)),
    }
}

impl ServerHandler for NetmonMcp {
    #[allow(deprecated)] // logging: still in the 2025-11-25 protocol, which clients speak
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_completions()
                .enable_logging()
                .build(),
        )
        .with_server_info(
            Implementation::new("netmon", env!("CARGO_PKG_VERSION"))
                .with_title("netmon: live interface traffic, counted by eBPF"),
        )
        .with_instructions(tools::INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools::all()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::all().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = Instant::now();
        let result = match request.name.as_ref() {
            tools::LIST_INTERFACES => {
                let r = match InterfacesArgs::parse(tools::LIST_INTERFACES, request.arguments) {
                    Ok(t) => self.list_interfaces(t).await,
                    Err(e) => Err(e.into()),
                };
                ::log::info!(
                    "{}: {} in {:?}",
                    tools::LIST_INTERFACES,
                    outcome_label(&r),
                    started.elapsed()
                );
                tool_result(&r)
            }
            tools::GET_TRAFFIC => {
                let r = self.get_traffic(request.arguments, &context).await;
                ::log::info!(
                    "{}: {} in {:?}",
                    tools::GET_TRAFFIC,
                    outcome_label(&r),
                    started.elapsed()
                );
                tool_result(&r)
            }
            other => Err(McpError::invalid_params(
                format!(
                    "unknown tool {other:?}; netmon has {} and {}",
                    tools::LIST_INTERFACES,
                    tools::GET_TRAFFIC
                ),
                None,
            )),
        };
        result.map(Into::into)
    }

    #[allow(deprecated)] // logging: still in the 2025-11-25 protocol, which clients speak
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.log.set(request.level);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(prompt::all()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        prompt::get(&request).map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let Some(want) = prompt::completion_wanted(&request) else {
            return Ok(CompleteResult::default());
        };
        // Interface names of the host the prompt is about; no names when it cannot be reached.
        let names = match self.source(want.target) {
            Ok(source) => match source.get().interfaces().await {
                Ok(list) => list.into_iter().map(|i| i.name).collect(),
                Err(e) => {
                    ::log::debug!("completing iface: {}", chain(&e));
                    Vec::new()
                }
            },
            Err(e) => {
                ::log::debug!("completing iface: {}", chain(&e));
                Vec::new()
            }
        };
        Ok(prompt::complete(&want.prefix, names))
    }

    /// A request rmcp could not read as one of the methods it knows. `tools/call` lands here
    /// when its arguments are not an object: that is the caller's mistake (-32602), not an
    /// unknown method.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        if request.method == "tools/call" {
            return Err(McpError::invalid_params(
                "tools/call: params must be {\"name\": <tool>, \"arguments\": <object>}; arguments must be a JSON object",
                None,
            ));
        }
        Err(McpError::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!("netmon has no method {:?}", request.method),
            None,
        ))
    }
}

/// How `netmon serve` speaks MCP.
pub enum Transport {
    Stdio,
    Http(http::HttpOptions),
}

/// `netmon serve`: the tools for this machine (the classifier, loaded on the first traffic
/// call) and the config's remote hosts, until the client leaves (stdio) or `shutdown`.
/// `on_start` gets where it serves, e.g. `stdio` or `http://127.0.0.1:8765/mcp (no token)`.
pub async fn serve(
    ebpf: EbpfOptions,
    config: Config,
    transport: Transport,
    shutdown: CancellationToken,
    on_start: impl FnOnce(String),
) -> Result<()> {
    let source = EbpfSource::lazy(ebpf);
    let handler = NetmonMcp::new(Arc::new(source.clone()), config);
    let served = match transport {
        Transport::Stdio => {
            on_start("stdio".into());
            tokio::select! {
                r = serve_stdio(handler) => {
                    if let Err(e) = r {
                        ::log::warn!("MCP over stdio ended: {e}");
                    }
                }
                _ = shutdown.cancelled() => {},
            }
            Ok(())
        }
        Transport::Http(opts) => {
            let auth = if opts.token.is_some() {
                "bearer token required"
            } else {
                "no token"
            };
            let scheme = opts.scheme();
            http::serve(handler, opts, shutdown, |bound| {
                on_start(format!("{scheme}://{bound}{} ({auth})", http::PATH))
            })
            .await
        }
    };
    // Calls still sampling when the server stops hold attachments: give them back before the
    // process exits (on the clsact path a filter would outlive it).
    let _ = tokio::task::spawn_blocking(move || source.detach_all()).await;
    served
}

/// Stdin that cancels a token when it reaches end of file: the client has gone.
struct EofSignal<R> {
    inner: R,
    gone: CancellationToken,
}

impl<R: AsyncRead + Unpin> AsyncRead for EofSignal<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            self.gone.cancel();
        }
        r
    }
}

/// Stdout that cancels the same token when a write fails (the client closed its end): rmcp
/// only logs a failed write, and would go on serving a client that can no longer hear it.
struct ClosedSignal<W> {
    inner: W,
    gone: CancellationToken,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for ClosedSignal<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Err(_))) {
            self.gone.cancel();
        }
        r
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(r, Poll::Ready(Err(_))) {
            self.gone.cancel();
        }
        r
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves MCP over stdin/stdout until the client closes either. Nothing but protocol goes to
/// stdout.
pub async fn serve_stdio(
    mut handler: NetmonMcp,
) -> Result<(), rmcp::service::ServerInitializeError> {
    let gone = CancellationToken::new();
    handler.gone = gone.clone();
    let (stdin, stdout) = rmcp::transport::stdio();
    let service = handler
        .serve_with_ct(
            (
                EofSignal {
                    inner: stdin,
                    gone: gone.clone(),
                },
                ClosedSignal {
                    inner: stdout,
                    gone: gone.clone(),
                },
            ),
            gone.clone(),
        )
        .await?;
    let _ = service.waiting().await;
    Ok(())
}
