//! The `netmon` binary: flags in, typed options, one library call, output out. Logs and errors
//! go to stderr; an error exits with status 2.

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use netmon::agent::http::ServeOptions as AgentPort;
use netmon::agent::{Agent, AgentFlags, AgentOptions};
use netmon::config::load;
use netmon::error::{ArgNames, chain};
use netmon::mcp::sessions::SessionLimits;
use netmon::mcp::{self, Transport, http};
use netmon::names::Namer;
use netmon::rank::{GroupBy, SortKey};
use netmon::report::{InterfacesData, Response, TrafficData};
use netmon::request::{IfaceName, Naming, SampleWindow, TrafficRequest};
use netmon::source::ebpf::{EbpfOptions, EbpfSource};
use netmon::source::{Progress, collect};
use netmon::top::state::{Group, SortBy};
use netmon::{host, text};
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
    Traffic(TrafficFlags),
    /// iftop's live screen: the top connections with 2 s, 10 s and 40 s rates and bars, and the
    /// interface's totals, refreshed every second (keys as iftop's; h lists them).
    Top(TopFlags),
    /// Serve the MCP tools list_network_interfaces and get_interface_traffic: over stdio by
    /// default, or Streamable HTTP at /mcp with --http.
    Serve(ServeFlags),
    /// Stay attached: Prometheus metrics on /metrics, /health, and MCP on /mcp (answered from
    /// the rolling history), every tick.
    Agent(AgentArgs),
    /// Print shell completions to stdout, e.g. `netmon completions bash >
    /// /usr/share/bash-completion/completions/netmon`.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the man page (roff), or write one page per command into DIR.
    Man {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Shells netmon writes completions for.
#[derive(Clone, Copy, ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl From<CompletionShell> for clap_complete::Shell {
    fn from(s: CompletionShell) -> Self {
        match s {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The top list's order.
#[derive(Clone, Copy, ValueEnum)]
enum Sort {
    /// Received bytes.
    Rx,
    /// Sent bytes.
    Tx,
    /// Sent + received bytes.
    Total,
    /// The left (local) end's address.
    Source,
    /// The right (remote) end's address.
    Destination,
}

impl From<Sort> for SortKey {
    fn from(s: Sort) -> Self {
        match s {
            Sort::Rx => SortKey::Rx,
            Sort::Tx => SortKey::Tx,
            Sort::Total => SortKey::Total,
            Sort::Source => SortKey::Source,
            Sort::Destination => SortKey::Destination,
        }
    }
}

/// What one row is.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum By {
    /// One row per connection, with ports and the process it belongs to.
    Connection,
    /// One row per host pair, like iftop without -P.
    Host,
    /// One row per process, like nethogs: PID, USER, PROGRAM, sent, received.
    Process,
    /// One row per container or pod, and one for this host's own processes.
    Container,
}

impl From<By> for GroupBy {
    fn from(b: By) -> Self {
        match b {
            By::Connection => GroupBy::Connection,
            By::Host => GroupBy::Host,
            By::Process => GroupBy::Process,
            By::Container => GroupBy::Container,
        }
    }
}

/// iftop's `-o`: the column or end the list is ordered by.
#[derive(Clone, Copy, ValueEnum)]
enum Order {
    /// Sent + received over the window (`netmon traffic` has one window, so 2s, 10s and 40s
    /// order alike).
    #[value(name = "2s")]
    TwoS,
    #[value(name = "10s")]
    TenS,
    #[value(name = "40s")]
    FortyS,
    /// The left (local) end's address.
    Source,
    /// The right (remote) end's address.
    Destination,
}

impl From<Order> for SortKey {
    fn from(o: Order) -> Self {
        match o {
            Order::TwoS | Order::TenS | Order::FortyS => SortKey::Total,
            Order::Source => SortKey::Source,
            Order::Destination => SortKey::Destination,
        }
    }
}

/// What to show and how to name it, shared by `traffic` and `top` (iftop's -f -F -G -n -N).
#[derive(clap::Args)]
struct NarrowFlags {
    /// Only traffic matching this pcap-style filter, like iftop -f: host, net N/len, port,
    /// portrange (each with src/dst), tcp, udp, icmp, icmp6, sctp, ip, ip6, proto N, and/or/not.
    /// The totals count only what matched; the interface's own totals are shown beside them.
    #[arg(long, short = 'f', value_name = "EXPR")]
    filter: Option<String>,
    /// Only traffic in to or out of this IPv4 network, the end inside it on the left, like
    /// iftop -F.
    #[arg(long = "net", short = 'F', value_name = "NET/LEN")]
    net4: Option<String>,
    /// The same for an IPv6 network, like iftop -G.
    #[arg(long = "net6", short = 'G', value_name = "NET6/LEN")]
    net6: Option<String>,
    /// No host names: send no reverse-DNS queries (iftop -n).
    #[arg(long = "no-dns", short = 'n')]
    no_dns: bool,
    /// No service names: bare port numbers (iftop -N).
    #[arg(long = "no-services", short = 'N')]
    no_services: bool,
}

/// `netmon traffic`'s flags: iftop's short ones where iftop has them (README has the table).
#[derive(clap::Args)]
struct TrafficFlags {
    /// Interface to sample; default: the interface of the default route.
    #[arg(long, short = 'i')]
    iface: Option<String>,
    /// Length of the sample window in seconds (1–3600); one output after it, like iftop -t -s.
    #[arg(long, short = 's', default_value_t = 5.0)]
    seconds: f64,
    #[command(flatten)]
    narrow: NarrowFlags,
    /// One row per connection, with ports (iftop -P); the same as --by connection.
    #[arg(long = "ports", short = 'P', conflicts_with = "by")]
    ports: bool,
    /// Rates in bytes per second in the text view (iftop -B).
    #[arg(long = "bytes", short = 'B')]
    bytes: bool,
    /// How many rows to show (1–1000), like iftop -L.
    #[arg(long, short = 'L', default_value_t = TrafficRequest::DEFAULT_TOP)]
    top: usize,
    /// Order of the list by bytes or address (iftop's -o is the same with its column names).
    #[arg(long, value_enum, default_value_t = Sort::Rx)]
    sort: Sort,
    /// Order like iftop -o: 2s, 10s, 40s (sent + received), source or destination.
    #[arg(short = 'o', value_enum, conflicts_with = "sort", value_name = "ORDER")]
    order: Option<Order>,
    /// One row per host pair (iftop's default), per connection (-P), per process (like
    /// nethogs) or per container.
    #[arg(long, value_enum, default_value_t = By::Host)]
    by: By,
    /// Print the MCP result object (JSON) instead of iftop-like text.
    #[arg(long)]
    json: bool,
    /// Flows counted at once, IPv4 and IPv6 together; flows beyond it are counted as
    /// unattributed.
    #[arg(long, default_value_t = DEFAULT_FLOW_CAPACITY)]
    table_capacity: u32,
    /// Sample with a classifier of this process even when a local agent could answer (by
    /// default `netmon traffic` asks the agent at $NETMON_AGENT_SOCKET or
    /// /run/netmon/agent.sock, which loads nothing).
    #[arg(long)]
    no_agent: bool,
}

/// `netmon top`'s flags: iftop's where iftop has them.
#[derive(clap::Args)]
struct TopFlags {
    /// Interface to watch; default: the interface of the default route.
    #[arg(long, short = 'i')]
    iface: Option<String>,
    #[command(flatten)]
    narrow: NarrowFlags,
    /// Show ports: one row per connection (iftop -P; the p key toggles).
    #[arg(long = "ports", short = 'P', conflicts_with = "by")]
    ports: bool,
    /// The first screen: host pairs (the default), connections, processes or containers (the
    /// g key cycles them).
    #[arg(long, value_enum)]
    by: Option<By>,
    /// Rates in bytes per second (iftop -B).
    #[arg(long = "bytes", short = 'B')]
    bytes: bool,
    /// No bars (iftop -b; the b key toggles).
    #[arg(long = "no-bars", short = 'b')]
    no_bars: bool,
    /// Top of the scale in bits per second, e.g. 100M or 1G (iftop -m); default: the peak seen.
    #[arg(long = "max-scale", short = 'm', value_name = "LIMIT")]
    max_scale: Option<String>,
    /// Order like iftop -o: 2s, 10s, 40s, source or destination (keys 1 2 3 < >).
    #[arg(short = 'o', value_enum, value_name = "ORDER")]
    order: Option<Order>,
    /// Entries in each kernel flow table (IPv4, IPv6).
    #[arg(long, default_value_t = DEFAULT_FLOW_CAPACITY)]
    table_capacity: u32,
}

#[derive(clap::Args)]
struct ServeFlags {
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
    /// Entries in each kernel flow table (IPv4, IPv6); flows beyond it are counted as
    /// unattributed.
    #[arg(long, default_value_t = DEFAULT_FLOW_CAPACITY)]
    table_capacity: u32,
    /// Config file with the remote hosts the tools may sample over SSH (else $NETMON_CONFIG).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(flatten)]
    sessions: SessionFlags,
    #[command(flatten)]
    tls: TlsFlags,
}

/// HTTPS: a certificate and its key, both PEM.
#[derive(clap::Args)]
struct TlsFlags {
    /// Serve HTTPS with this certificate chain (PEM) instead of plain HTTP.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsFlags {
    fn acceptor(&self) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(netmon::tls::acceptor(cert, key)?)),
            _ => Ok(None),
        }
    }
}

/// Bounds on HTTP sessions.
#[derive(clap::Args)]
struct SessionFlags {
    /// Most MCP sessions open at once over HTTP; a new one closes the idlest.
    #[arg(long, default_value_t = SessionLimits::DEFAULT.max)]
    max_sessions: usize,
    /// Seconds an HTTP session with no request and no open stream is kept.
    #[arg(long, default_value_t = SessionLimits::DEFAULT.idle.as_secs_f64())]
    session_idle: f64,
}

impl SessionFlags {
    fn limits(&self) -> netmon::Result<SessionLimits> {
        Ok(SessionLimits::new(self.max_sessions, self.session_idle)?)
    }
}

#[derive(clap::Args)]
struct AgentArgs {
    /// Interface to watch (repeatable); default: every interface that is up, except lo.
    #[arg(long, short = 'i')]
    iface: Vec<String>,
    /// Export only interfaces that carried traffic in the last 40 s.
    #[arg(long)]
    active_only: bool,
    /// Address for /metrics, /health and /mcp. /mcp is served only with a token.
    #[arg(long, default_value = netmon::agent::http::DEFAULT_ADDR)]
    listen: SocketAddr,
    /// Seconds between reads of the kernel's counters (0.02–60).
    #[arg(long, default_value_t = 1.0)]
    tick: f64,
    /// Flows counted at once, IPv4 and IPv6 together; flows beyond it are counted as
    /// unattributed.
    #[arg(long, default_value_t = DEFAULT_FLOW_CAPACITY)]
    table_capacity: u32,
    /// The Unix socket `netmon traffic` on this host asks instead of loading a classifier
    /// (root and the netmon group may use it); default $NETMON_AGENT_SOCKET or
    /// /run/netmon/agent.sock.
    #[arg(long, value_name = "PATH")]
    local_socket: Option<PathBuf>,
    /// Serve no local socket.
    #[arg(long, conflicts_with = "local_socket")]
    no_local_socket: bool,
    /// Seconds a flow may stay quiet before its kernel entry is removed (its bytes are kept).
    #[arg(long, default_value_t = netmon::agent::DEFAULT_EVICT_IDLE.as_secs_f64())]
    evict_idle: f64,
    /// Export netmon_flow_bytes_per_second for the top K flows per interface (0–100; 0: off).
    #[arg(long, value_name = "K", default_value_t = 0)]
    flow_series: usize,
    /// Export netmon_process_bytes_per_second for the top K processes per interface (0–100;
    /// 0: off).
    #[arg(long, value_name = "K", default_value_t = 0)]
    process_series: usize,
    /// File holding the bearer token /mcp clients must send (else $NETMON_MCP_TOKEN).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Another Host header value to accept on /mcp (a DNS name clients use), repeatable.
    #[arg(long, value_name = "HOST")]
    allowed_host: Vec<String>,
    #[command(flatten)]
    sessions: SessionFlags,
    #[command(flatten)]
    tls: TlsFlags,
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

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).context("serialising the result")?
    );
    Ok(())
}

/// `netmon traffic`: the interface is resolved before the classifier is loaded, so a mistyped
/// name gets the list of interfaces without privileges.
async fn traffic(f: &TrafficFlags) -> netmon::Result<TrafficData> {
    let by = if f.ports { By::Connection } else { f.by };
    let sort = f.order.map_or(f.sort.into(), SortKey::from);
    let req = TrafficRequest::new(
        f.iface.as_deref(),
        f.seconds,
        SampleWindow::CLI_RANGE,
        f.top,
        sort,
        by.into(),
        ArgNames::CLI,
    )?
    .with_selection(
        f.narrow.filter.as_deref(),
        f.narrow.net4.as_deref(),
        f.narrow.net6.as_deref(),
    )?
    .with_naming(Naming {
        hosts: !f.narrow.no_dns,
        services: !f.narrow.no_services,
    });
    let default = host::default_interface();
    let shown = req
        .iface
        .as_ref()
        .map(|i| i.to_string())
        .or_else(|| default.clone())
        .unwrap_or_default();
    if !f.no_agent && !shown.is_empty() {
        let path = netmon::agent::local::socket_path();
        let asked = netmon::agent::local::LocalRequest::new(&req, &shown);
        if let Some(answer) = netmon::agent::local::ask(&path, &asked).await {
            let mut data = answer?;
            data.notes.push(format!(
                "answered by the netmon agent on this host ({}), which loads nothing new; --no-agent samples with a classifier of this process",
                path.display()
            ));
            return Ok(data);
        }
    }
    let source = EbpfSource::lazy(EbpfOptions::new(f.table_capacity)?);
    // Tests and scripts wait for this line to know the window has started.
    let report = |p: Progress| {
        if let Progress::Started { window } = p {
            eprintln!(
                "netmon: attached to {shown}, sampling for {} s",
                window.as_secs_f64()
            );
        }
    };
    let namer = Namer::default();
    let stop = shutdown_signal();
    let outcome = tokio::select! {
        d = collect(&source, &req, default.clone(), &report, &namer) => Some(d),
        _ = stop.cancelled() => None,
    };
    outcome.unwrap_or_else(|| {
        // The sample's future is gone, and its attachment with it, but that detach runs on a
        // blocking thread exit would not wait for: detach here, before exiting (on the clsact
        // path a filter would outlive the process).
        source.detach_all();
        eprintln!("netmon: interrupted; detached");
        std::process::exit(130)
    })
}

/// `netmon top`: flags into the screen's first state; the interface is checked before the
/// classifier loads.
async fn top(f: TopFlags) -> anyhow::Result<()> {
    let list = host::list()?;
    let name = match f.iface {
        Some(n) => IfaceName::parse(&n, "--iface")?.as_str().to_string(),
        None => host::default_interface().context(
            "no default route to pick an interface from; choose one with --iface (`netmon interfaces` lists them)",
        )?,
    };
    let iface = list
        .iter()
        .find(|i| i.name == name)
        .cloned()
        .with_context(|| {
            format!(
                "interface {name:?} does not exist here; interfaces: {} (`netmon interfaces` shows them)",
                netmon::interface::names(&list)
            )
        })?;
    let request = TrafficRequest::new(
        Some(&iface.name),
        1.0,
        SampleWindow::CLI_RANGE,
        1,
        SortKey::Rx,
        GroupBy::Host,
        ArgNames::CLI,
    )?
    .with_selection(
        f.narrow.filter.as_deref(),
        f.narrow.net4.as_deref(),
        f.narrow.net6.as_deref(),
    )?;
    let by = if f.ports {
        By::Connection
    } else {
        f.by.unwrap_or(By::Host)
    };
    let connections = by == By::Connection;
    let state = netmon::top::state::State {
        names: !f.narrow.no_dns,
        services: !f.narrow.no_services,
        source_port: connections,
        destination_port: connections,
        group: match by {
            By::Process => Group::Process,
            By::Container => Group::Container,
            By::Host | By::Connection => Group::Flows,
        },
        rate_bytes: f.bytes,
        bars: !f.no_bars,
        scale_max: f
            .max_scale
            .as_deref()
            .map(|m| netmon::request::bandwidth(m, "--max-scale"))
            .transpose()?,
        sort: match f.order {
            None | Some(Order::TwoS) => SortBy::Column(0),
            Some(Order::TenS) => SortBy::Column(1),
            Some(Order::FortyS) => SortBy::Column(2),
            Some(Order::Source) => SortBy::Source,
            Some(Order::Destination) => SortBy::Destination,
        },
        selection: request.selection,
        ..Default::default()
    };
    let opts = AgentOptions::new(&AgentFlags {
        ifaces: vec![iface.name.clone()],
        active_only: false,
        tick_seconds: 1.0,
        table_capacity: f.table_capacity,
        evict_idle_seconds: netmon::agent::DEFAULT_EVICT_IDLE.as_secs_f64(),
        flow_series: 0,
        process_series: 0,
    })?;
    netmon::top::run(iface, state, opts).await?;
    Ok(())
}

async fn serve(f: ServeFlags) -> anyhow::Result<()> {
    let ebpf = EbpfOptions::new(f.table_capacity)?;
    let config = load::from_flag_or_env(f.config.as_deref())?;
    let transport = match f.http {
        None => Transport::Stdio,
        Some(addr) => Transport::Http(
            http::HttpOptions::new(
                addr,
                load::server_token(f.token_file.as_deref())?,
                f.allowed_host,
                f.allowed_origin,
            )?
            .with_sessions(f.sessions.limits()?)
            .with_tls(f.tls.acceptor()?),
        ),
    };
    let shutdown = shutdown_signal();
    mcp::serve(ebpf, config, transport, shutdown, |how| {
        // Tests and scripts read the port from this line.
        eprintln!("netmon: serving MCP on {how}");
    })
    .await?;
    eprintln!("netmon: MCP server stopped");
    Ok(())
}

async fn agent(a: AgentArgs) -> anyhow::Result<()> {
    let opts = AgentOptions::new(&AgentFlags {
        ifaces: a.iface,
        active_only: a.active_only,
        tick_seconds: a.tick,
        table_capacity: a.table_capacity,
        evict_idle_seconds: a.evict_idle,
        flow_series: a.flow_series,
        process_series: a.process_series,
    })?;
    let token = load::server_token(a.token_file.as_deref())?;
    let port = AgentPort::new(
        a.listen,
        token,
        a.allowed_host,
        a.sessions.limits()?,
        a.tls.acceptor()?,
    );
    let served = port.describe();
    let scheme = port.scheme();
    let agent = Agent::new(opts)?;
    let shutdown = shutdown_signal();
    let collecting = tokio::spawn(agent.clone().run(shutdown.clone()));
    if !a.no_local_socket {
        let path = a
            .local_socket
            .clone()
            .unwrap_or_else(netmon::agent::local::socket_path);
        match netmon::agent::local::bind(&path).await {
            Ok(listener) => {
                eprintln!(
                    "netmon: agent answering `netmon traffic` on {}",
                    path.display()
                );
                tokio::spawn(netmon::agent::local::serve(
                    agent.clone(),
                    listener,
                    path,
                    shutdown.clone(),
                ));
            }
            Err(e) => eprintln!("netmon: no local socket: {}", chain(&e)),
        }
    }
    let serving = netmon::agent::http::serve(agent, port, shutdown.clone(), |bound| {
        // Tests and scripts read the port from this line.
        eprintln!("netmon: agent serving {scheme}://{bound}/ with {served}");
    })
    .await;
    // The collector is stopped whether serving ended or failed (a port that cannot be bound):
    // the runtime waits for its thread.
    shutdown.cancel();
    let _ = collecting.await;
    serving?;
    eprintln!("netmon: agent stopped");
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Interfaces { json } => {
            let list = host::list()?;
            if json {
                let n = list.len();
                print_json(&Response::ok(
                    format!("found {n} interfaces"),
                    InterfacesData::new("localhost", list),
                ))?;
            } else {
                print!("{}", text::interfaces(&list));
            }
        }
        Command::Traffic(f) => match traffic(&f).await {
            Ok(data) if f.json => print_json(&Response::ok(data.summary(), data))?,
            Ok(data) => print!(
                "{}",
                text::traffic(
                    &data,
                    text::Style {
                        rate_bytes: f.bytes
                    }
                )
            ),
            Err(e) => {
                if f.json {
                    print_json(&Response::<TrafficData>::err(chain(&e)))?;
                }
                return Err(e.into());
            }
        },
        Command::Top(f) => top(f).await?,
        Command::Serve(f) => serve(f).await?,
        Command::Agent(a) => agent(a).await?,
        Command::Completions { shell } => {
            let shell: clap_complete::Shell = shell.into();
            clap_complete::generate(shell, &mut Cli::command(), "netmon", &mut std::io::stdout());
        }
        Command::Man { out: None } => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .context("writing the man page")?,
        Command::Man { out: Some(dir) } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netmon: {e:#}");
            ExitCode::from(2)
        }
    }
}
