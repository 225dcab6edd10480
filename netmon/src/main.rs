//! The `netmon` binary: flags in, one library call, output out. Logs go to stderr.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use netmon::iface;
use netmon::mcp::{NetmonMcp, http, serve_stdio};
use netmon::rank::{GroupBy, SortKey};
use netmon::report::{InterfacesData, Response, TrafficData};
use netmon::request::{SampleWindow, TrafficRequest};
use netmon::source::ebpf::{EbpfOptions, EbpfSource};
use netmon::source::{Progress, collect};
use netmon_common::DEFAULT_FLOW_CAPACITY;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "netmon",
    version,
    about = "What is crossing a network interface right now, counted in the kernel by eBPF"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List this host's network interfaces.
    Interfaces {
        /// Print the MCP result object (JSON) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Sample one interface: totals and the top connections, like `iftop -t -s N`.
    Traffic {
        /// Interface to sample; default: the interface of the default route.
        #[arg(long, short = 'i')]
        iface: Option<String>,
        /// Length of the sample window in seconds (1–3600).
        #[arg(long, short = 's', default_value_t = 5.0)]
        seconds: f64,
        /// How many connections to show.
        #[arg(long, short = 'n', default_value_t = TrafficRequest::DEFAULT_TOP)]
        top: usize,
        /// Order of the top list.
        #[arg(long, value_enum, default_value_t = SortKey::Rx)]
        sort: SortKey,
        /// One row per connection, or per host pair (like iftop without -P).
        #[arg(long, value_enum, default_value_t = GroupBy::Connection)]
        by: GroupBy,
        /// Print the MCP result object (JSON) instead of iftop-like text.
        #[arg(long)]
        json: bool,
        /// Entries in the kernel flow table; flows beyond it are counted as unattributed.
        #[arg(long, default_value_t = DEFAULT_FLOW_CAPACITY)]
        table_capacity: u32,
    },
    /// Serve the MCP tools list_network_interfaces and get_interface_traffic: over stdio by
    /// default, or Streamable HTTP at /mcp with --http.
    Serve {
        /// Serve Streamable HTTP on ADDR instead of stdio (default 127.0.0.1:8765). Anything but
        /// loopback needs a bearer token.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = http::DEFAULT_ADDR)]
        http: Option<SocketAddr>,
        /// File holding the bearer token HTTP clients must send (else $NETMON_MCP_TOKEN).
        #[arg(long, value_name = "PATH", requires = "http")]
        token_file: Option<PathBuf>,
        /// Another Host header value to accept over HTTP (a DNS name clients use), repeatable.
        #[arg(long, value_name = "HOST", requires = "http")]
        allowed_host: Vec<String>,
        /// Another browser Origin to accept over HTTP (e.g. https://app.example:443), repeatable.
        #[arg(long, value_name = "ORIGIN", requires = "http")]
        allowed_origin: Vec<String>,
        /// Entries in the kernel flow table; flows beyond it are counted as unattributed.
        #[arg(long, default_value_t = DEFAULT_FLOW_CAPACITY)]
        table_capacity: u32,
        /// Config file with the remote hosts the tools may sample over SSH (else $NETMON_CONFIG).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Stay attached: Prometheus metrics on /metrics, /health, and MCP on /mcp (answered from
    /// the rolling history), every tick.
    Agent(AgentArgs),
}

#[derive(clap::Args)]
struct AgentArgs {
    /// Interface to watch (repeatable); default: every interface that is up, except lo.
    #[arg(long, short = 'i')]
    iface: Vec<String>,
    /// Export only interfaces that carried traffic in the last 40 s.
    #[arg(long)]
    active_only: bool,
    /// Address for /metrics, /health and /mcp. /mcp is served on anything but loopback only
    /// with a token.
    #[arg(long, default_value = netmon::agent::http::DEFAULT_ADDR)]
    listen: SocketAddr,
    /// Seconds between reads of the kernel's counters (0.02–60).
    #[arg(long, default_value_t = 1.0)]
    tick: f64,
    /// Entries in the kernel flow table; flows beyond it are counted as unattributed.
    #[arg(long, default_value_t = DEFAULT_FLOW_CAPACITY)]
    table_capacity: u32,
    /// Seconds a flow may stay quiet before its kernel entry is removed (its bytes are kept).
    #[arg(long, default_value_t = netmon::agent::DEFAULT_EVICT_IDLE.as_secs_f64())]
    evict_idle: f64,
    /// Export netmon_flow_bytes_per_second for the top K flows per interface (0–100; 0: off).
    #[arg(long, value_name = "K", default_value_t = 0)]
    flow_series: usize,
    /// File holding the bearer token /mcp clients must send (else $NETMON_MCP_TOKEN).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Another Host header value to accept on /mcp (a DNS name clients use), repeatable.
    #[arg(long, value_name = "HOST")]
    allowed_host: Vec<String>,
}

impl AgentArgs {
    /// The flags, checked and typed.
    fn options(&self) -> anyhow::Result<netmon::agent::AgentOptions> {
        if !(0.02..=60.0).contains(&self.tick) {
            anyhow::bail!(
                "--tick {} is out of range: give 0.02 to 60 seconds",
                self.tick
            );
        }
        if !(1.0..=3600.0).contains(&self.evict_idle) {
            anyhow::bail!(
                "--evict-idle {} is out of range: give 1 to 3600 seconds",
                self.evict_idle
            );
        }
        if self.flow_series > netmon::metrics::MAX_FLOW_SERIES {
            anyhow::bail!(
                "--flow-series {} is too many: at most {} per interface keeps Prometheus's series count bounded",
                self.flow_series,
                netmon::metrics::MAX_FLOW_SERIES
            );
        }
        let ebpf = EbpfOptions {
            flow_capacity: self.table_capacity,
        };
        ebpf.validate()?;
        Ok(netmon::agent::AgentOptions {
            ifaces: self
                .iface
                .iter()
                .map(|n| netmon::request::IfaceName::parse(n))
                .collect::<Result<Vec<_>, _>>()?,
            active_only: self.active_only,
            tick: std::time::Duration::from_secs_f64(self.tick),
            ebpf,
            evict_idle: std::time::Duration::from_secs_f64(self.evict_idle),
            flow_series: self.flow_series,
        })
    }
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    let token = match &args.token_file {
        Some(path) => Some(http::Token::from_file(path)?),
        None => http::Token::from_env()?,
    };
    // /mcp's gates. HttpOptions refuses a public address without a token; for the agent that
    // turns /mcp off instead of failing, so a DaemonSet without a token Secret still serves
    // metrics.
    let http_opts = match http::HttpOptions::new(args.listen, token, args.allowed_host, vec![]) {
        Ok(o) => Some(o),
        Err(netmon::Error::HttpNeedsToken { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let agent = netmon::agent::Agent::new(opts)?;
    let mcp = http_opts.map(|o| {
        let handler = NetmonMcp::for_agent(agent.clone(), netmon::config::Config::default());
        (handler, o)
    });
    let served = match &mcp {
        Some((_, o)) if o.token.is_some() => "/metrics, /health and /mcp (bearer token required)",
        Some(_) => "/metrics, /health and /mcp (loopback, no token)",
        None => {
            "/metrics and /health; no /mcp: give --token-file or NETMON_MCP_TOKEN to serve it off loopback"
        }
    };
    let shutdown = shutdown_signal();
    let collecting = tokio::spawn(agent.clone().run(shutdown.clone()));
    netmon::agent::http::serve(agent, args.listen, mcp, shutdown.clone(), |bound| {
        // Tests and scripts read the port from this line.
        eprintln!("netmon: agent serving http://{bound}/ with {served}");
    })
    .await?;
    shutdown.cancel();
    let _ = collecting.await;
    eprintln!("netmon: agent stopped");
    Ok(())
}

/// Cancelled on SIGINT or SIGTERM.
fn shutdown_signal() -> CancellationToken {
    let ct = CancellationToken::new();
    let on_signal = ct.clone();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
        on_signal.cancel();
    });
    ct
}

async fn serve(
    http_addr: Option<SocketAddr>,
    token_file: Option<PathBuf>,
    allowed_host: Vec<String>,
    allowed_origin: Vec<String>,
    table_capacity: u32,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let opts = EbpfOptions {
        flow_capacity: table_capacity,
    };
    opts.validate()?;
    let config = netmon::config::Config::from_flag_or_env(config.as_deref())?;
    let handler = NetmonMcp::new(opts, config);
    let shutdown = shutdown_signal();
    match http_addr {
        None => {
            eprintln!("netmon: serving MCP on stdio");
            tokio::select! {
                r = serve_stdio(handler) => r.context("serving MCP on stdio")?,
                _ = shutdown.cancelled() => {},
            }
        }
        Some(addr) => {
            let token = match token_file {
                Some(path) => Some(http::Token::from_file(&path)?),
                None => http::Token::from_env()?,
            };
            let opts = http::HttpOptions::new(addr, token, allowed_host, allowed_origin)?;
            let auth = if opts.token.is_some() {
                "bearer token required"
            } else {
                "no token"
            };
            http::serve(handler, opts, shutdown, |bound| {
                // Tests and scripts read the port from this line.
                eprintln!(
                    "netmon: serving MCP on http://{bound}{} ({auth})",
                    http::PATH
                );
            })
            .await?;
        }
    }
    eprintln!("netmon: MCP server stopped");
    Ok(())
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).context("serialising the result")?
    );
    Ok(())
}

async fn traffic(req: TrafficRequest, table_capacity: u32) -> Result<TrafficData, netmon::Error> {
    let source = EbpfSource::load(EbpfOptions {
        flow_capacity: table_capacity,
    })?;
    let default = iface::default_interface();
    let shown = req
        .iface
        .as_ref()
        .map(|i| i.to_string())
        .or_else(|| default.clone())
        .unwrap_or_default();
    // Tests and scripts wait for this line to know the window has started.
    let report = |p: Progress| {
        if let Progress::Started { window } = p {
            eprintln!(
                "netmon: attached to {shown}, sampling for {} s",
                window.as_secs_f64()
            );
        }
    };
    let outcome = tokio::select! {
        d = collect(&source, &req, default.clone(), &report) => Some(d),
        _ = tokio::signal::ctrl_c() => None,
    };
    // The sample's future is gone by now, and with it the attachment.
    outcome.unwrap_or_else(|| {
        eprintln!("netmon: interrupted; detached");
        std::process::exit(130)
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Interfaces { json } => {
            let list = iface::list()?;
            if json {
                let n = list.len();
                print_json(&Response::ok(
                    format!("found {n} interfaces"),
                    InterfacesData::new("localhost", list),
                ))?;
            } else {
                print!("{}", netmon::text::interfaces(&list));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Traffic {
            iface,
            seconds,
            top,
            sort,
            by,
            json,
            table_capacity,
        } => {
            let result = match TrafficRequest::new(
                iface.as_deref(),
                seconds,
                SampleWindow::CLI_RANGE,
                top,
                sort,
                by,
            ) {
                Ok(req) => traffic(req, table_capacity).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(data) => {
                    if json {
                        print_json(&Response::ok(data.summary(), data))?;
                    } else {
                        print!("{}", netmon::text::traffic(&data));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    if json {
                        print_json(&Response::<TrafficData>::err(e.to_string()))?;
                    }
                    eprintln!("netmon: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Serve {
            http,
            token_file,
            allowed_host,
            allowed_origin,
            table_capacity,
            config,
        } => {
            if let Err(e) = serve(
                http,
                token_file,
                allowed_host,
                allowed_origin,
                table_capacity,
                config,
            )
            .await
            {
                eprintln!("netmon: {e:#}");
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent(args) => {
            if let Err(e) = agent(args).await {
                eprintln!("netmon: {e:#}");
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netmon: {e:#}");
            ExitCode::FAILURE
        }
    }
}
