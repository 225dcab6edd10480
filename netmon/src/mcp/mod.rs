//! netmon as an MCP server: the contract's two tools behind one handler, served over stdio
//! ([`serve_stdio`]) or Streamable HTTP ([`http`]).
//!
//! - [`args`]: the tools' arguments, decoded and validated into typed requests.
//! - [`tools`]: tool definitions (schemas, annotations) and the server's instructions.
//! - [`http`]: the HTTP transport with its Host, Origin and bearer-token checks.
//!
//! Every failure a caller can fix comes back as a tool result with `success: false` and
//! `isError: true`, never as a protocol error, so a model sees the message and can retry.

pub mod args;
pub mod http;
pub mod tools;

use crate::agent::Agent;
use crate::agent::client::AgentClient;
use crate::agent::source::AgentSource;
use crate::config::{Auth, Config, TokenFrom};
use crate::error::{Error, Result};
use crate::iface;
use crate::report::{InterfacesData, Response, TrafficData};
use crate::request::TrafficRequest;
use crate::source::ebpf::{EbpfOptions, EbpfSource};
use crate::source::ssh::SshSource;
use crate::source::{Progress, TrafficSource, collect};
use crate::ssh::{Credential, Login};
use args::{InterfacesArgs, Remote, Target, TrafficArgs};
use http::Token;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, InitializeResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde::Serialize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{OnceCell, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Samples running at once across all clients; beyond it a call is refused, not queued, so a
/// flood of calls cannot pin the server for minutes.
pub const MAX_CONCURRENT_SAMPLES: usize = 256;

struct Shared {
    /// Loaded on the first traffic call, so a server without privileges still starts, lists
    /// interfaces, and explains what it lacks when asked for traffic.
    ebpf: OnceCell<EbpfSource>,
    opts: EbpfOptions,
    samples: Semaphore,
    /// Remote hosts and the SSH policy.
    config: Config,
    /// Set when this server is a running agent's `/mcp`: local traffic comes from its history.
    agent: Option<AgentSource>,
}

/// The MCP handler. Clones share one loaded program, so every session of an HTTP server and
/// every concurrent call shares one attachment per interface.
#[derive(Clone)]
pub struct NetmonMcp {
    shared: Arc<Shared>,
    /// Cancelled when the client's side of the connection is gone (stdin closed), so running
    /// samples stop at once instead of after rmcp's drain period.
    gone: CancellationToken,
}

impl NetmonMcp {
    pub fn new(opts: EbpfOptions, config: Config) -> Self {
        Self::build(opts, config, None)
    }

    /// The MCP server of a running agent: this host's traffic is answered from the agent's
    /// history (and its loaded classifier, for interfaces it does not watch).
    pub fn for_agent(agent: Arc<Agent>, config: Config) -> Self {
        let opts = agent.ebpf_options();
        Self::build(opts, config, Some(AgentSource::new(agent)))
    }

    fn build(opts: EbpfOptions, config: Config, agent: Option<AgentSource>) -> Self {
        Self {
            shared: Arc::new(Shared {
                ebpf: OnceCell::new(),
                opts,
                samples: Semaphore::new(MAX_CONCURRENT_SAMPLES),
                config,
                agent,
            }),
            gone: CancellationToken::new(),
        }
    }

    async fn ebpf(&self) -> Result<&EbpfSource> {
        self.shared
            .ebpf
            .get_or_try_init(|| async { EbpfSource::load(self.shared.opts) })
            .await
    }

    /// The SSH source for a remote host, if the config lets netmon reach it. A configured host
    /// logs in as configured (a password passed by the call takes precedence over its auth);
    /// an unlisted one, when allowed, with the call's own port, username and password.
    fn remote(&self, r: Remote) -> Result<RemoteSource> {
        let cfg = &self.shared.config;
        if let Some(h) = cfg.find(&r.host)
            && let Some(url) = &h.agent_url
        {
            let token = match &h.agent_token {
                None => None,
                Some(TokenFrom::File(path)) => Some(Token::from_file(path)?),
                Some(TokenFrom::Env(var)) => Some(Token::new(
                    &std::env::var(var).map_err(|_| Error::BadConfig {
                        path: "remote_hosts".into(),
                        reason: format!(
                            "the agent token of {} comes from ${var}, which netmon's environment does not have",
                            h.name
                        ),
                    })?,
                    var,
                )?),
            };
            return Ok(RemoteSource::Agent(AgentClient {
                label: h.name.clone(),
                url: url.clone(),
                token,
            }));
        }
        let password = r
            .password
            .map(|p| Credential::Password(p.expose().to_string()));
        let (label, host, port, user, auth, sudo, policy) = match cfg.find(&r.host) {
            Some(h) => (
                h.name.clone(),
                h.host.clone(),
                h.port,
                h.username.clone(),
                h.auth.clone(),
                h.sudo,
                h.host_key_policy.unwrap_or(cfg.host_key_policy),
            ),
            None if cfg.allow_unlisted_hosts => (
                r.host.clone(),
                r.host.clone(),
                r.port,
                r.username,
                None,
                false,
                cfg.host_key_policy,
            ),
            None => {
                return Err(Error::HostNotAllowed {
                    host: r.host,
                    names: cfg.names(),
                });
            }
        };
        let credential = match (password, auth) {
            (Some(p), _) => p,
            (None, Some(Auth::PasswordEnv(var))) => {
                Credential::Password(std::env::var(&var).map_err(|_| Error::BadConfig {
                    path: "remote_hosts".into(),
                    reason: format!(
                        "the password of {label} comes from ${var}, which netmon's environment does not have"
                    ),
                })?)
            }
            (None, Some(Auth::PasswordFile(path))) => {
                let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
                    path: path.clone(),
                    source: e,
                })?;
                Credential::Password(text.lines().next().unwrap_or_default().to_string())
            }
            (None, Some(Auth::KeyFile(path))) => Credential::KeyFile(path),
            (None, Some(Auth::Agent)) => Credential::Agent,
            (None, None) => return Err(Error::NoCredential { host: label }),
        };
        Ok(RemoteSource::Ssh(Box::new(SshSource::new(
            label,
            Login {
                host,
                port,
                user,
                credential,
                policy,
                known_hosts: cfg.known_hosts_path(),
                connect_timeout: cfg.connect_timeout(),
            },
            sudo,
        ))))
    }

    async fn list_interfaces(&self, target: Target) -> Result<(String, InterfacesData)> {
        let (host, list) = match target {
            Target::Local => ("localhost".to_string(), iface::list()?),
            Target::Remote(r) => match self.remote(r)? {
                RemoteSource::Ssh(source) => (source.label.clone(), source.interfaces().await?),
                RemoteSource::Agent(agent) => {
                    let data = agent.interfaces().await?;
                    return Ok((format!("found {} interfaces", data.interfaces.len()), data));
                }
            },
        };
        Ok((
            format!("found {} interfaces", list.len()),
            InterfacesData::new(&host, list),
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
        match target {
            Target::Local => match &self.shared.agent {
                Some(agent) => self.sample(agent, &req, ctx).await,
                None => self.sample(self.ebpf().await?, &req, ctx).await,
            },
            Target::Remote(r) => match self.remote(r)? {
                RemoteSource::Ssh(source) => self.sample(source.as_ref(), &req, ctx).await,
                RemoteSource::Agent(agent) => {
                    let data = tokio::select! {
                        biased;
                        _ = ctx.ct.cancelled() => return Err(Error::Cancelled),
                        _ = self.gone.cancelled() => return Err(Error::Cancelled),
                        d = agent.traffic(&req) => d?,
                    };
                    Ok((data.summary(), data))
                }
            },
        }
    }

    /// One sample through `source`, with progress notifications, stopped at once by a cancel
    /// or a vanished client.
    async fn sample<S: TrafficSource>(
        &self,
        source: &S,
        req: &TrafficRequest,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(String, TrafficData)> {
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
        let work = collect(source, req, None, &report);
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
                            log::debug!("progress notification not sent: {e}");
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
        Ok((data.summary(), data))
    }
}

/// How a remote host is reached.
enum RemoteSource {
    /// Over SSH, running iftop there.
    Ssh(Box<SshSource>),
    /// Through its netmon agent's `/mcp`.
    Agent(AgentClient),
}

/// `{success, message, data}` as structured content, the same JSON as text, and `isError` set
/// when `success` is false.
fn tool_result<T: Serialize>(outcome: Result<(String, T)>) -> Result<CallToolResult, McpError> {
    let (value, failed) = match outcome {
        Ok((message, data)) => (serde_json::to_value(Response::ok(message, data)), false),
        Err(e) => (
            serde_json::to_value(Response::<T>::err(e.to_string())),
            true,
        ),
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
        Err(e) => format!("failed: {e}"),
    }
}

impl ServerHandler for NetmonMcp {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
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
                    Err(e) => Err(e),
                };
                log::info!(
                    "{}: {} in {:?}",
                    tools::LIST_INTERFACES,
                    outcome_label(&r),
                    started.elapsed()
                );
                tool_result(r)
            }
            tools::GET_TRAFFIC => {
                let r = self.get_traffic(request.arguments, &context).await;
                log::info!(
                    "{}: {} in {:?}",
                    tools::GET_TRAFFIC,
                    outcome_label(&r),
                    started.elapsed()
                );
                tool_result(r)
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

/// Serves MCP over stdin/stdout until the client closes stdin. Nothing but protocol goes to
/// stdout.
pub async fn serve_stdio(
    mut handler: NetmonMcp,
) -> Result<(), rmcp::service::ServerInitializeError> {
    let gone = CancellationToken::new();
    handler.gone = gone.clone();
    let (stdin, stdout) = rmcp::transport::stdio();
    let service = handler
        .serve((EofSignal { inner: stdin, gone }, stdout))
        .await?;
    let _ = service.waiting().await;
    Ok(())
}
