//! The `netmon` binary: flags in, one library call, output out. Logs go to stderr.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use netmon::config::{SampleWindow, TrafficRequest};
use netmon::iface;
use netmon::rank::{GroupBy, SortKey};
use netmon::report::{InterfacesData, Response, TrafficData};
use netmon::source::ebpf::{EbpfOptions, EbpfSource, Progress};
use netmon::source::{TrafficSource, resolve_iface};
use netmon_common::DEFAULT_FLOW_CAPACITY;
use std::process::ExitCode;

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
    let list = source.interfaces().await?;
    let iface = resolve_iface(&req, &list, source.host(), iface::default_interface())?;
    let name = iface.name.clone();
    // Tests and scripts wait for this line to know the window has started.
    let report = |p: Progress| {
        if let Progress::Started { window } = p {
            eprintln!(
                "netmon: attached to {name}, sampling for {} s",
                window.as_secs_f64()
            );
        }
    };
    let sample = tokio::select! {
        s = source.sample_with_progress(&iface, req.window.duration(), &report) => s?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("netmon: interrupted; detaching from {name}");
            std::process::exit(130);
        }
    };
    Ok(TrafficData::from_sample(
        source.host(),
        source.kind(),
        &iface.name,
        &sample,
        netmon::report::View {
            sort: req.sort,
            by: req.by,
            top: req.top,
        },
    ))
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
