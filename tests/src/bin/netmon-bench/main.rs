//! `netmon-bench`: the measurements behind `cargo xtask bench`. Run as root (it creates network
//! namespaces and loads the classifier); writes `report.json` and `report.md` to `--out` and
//! prints the targets table.
//!
//! Timings here are measurements, never assertions: the machine is shared and noisy, so every
//! comparison interleaves its variants run by run and reports medians.

mod classifier;
mod datapath;
mod mcp;
mod owners;
mod proc;
mod report;
mod snapshot;
mod top;

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    Classifier,
    Datapath,
    Snapshot,
    Mcp,
    Top,
    Owners,
}

#[derive(Parser)]
#[command(
    name = "netmon-bench",
    about = "netmon's benchmark suite (run by `cargo xtask bench`)"
)]
struct Args {
    /// Runs per variant (the report gives medians; the issue asks for at least 5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    runs: u16,
    /// Seconds of traffic per datapath run.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=30))]
    seconds: u32,
    /// Where report.json and report.md go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Criterion's output directory, whose medians the report includes.
    #[arg(long)]
    criterion: Option<PathBuf>,
    /// Only these sections (repeatable); default all.
    #[arg(long, value_enum)]
    only: Vec<Section>,
    /// The commit measured, for the report.
    #[arg(long, default_value = "unknown")]
    commit: String,
    /// Internal: attach the do-nothing classifier to this interface (of the namespace this runs
    /// in), say "floor attached" on stderr, and stay for --floor-seconds.
    #[arg(long, hide = true)]
    floor_iface: Option<String>,
    #[arg(long, hide = true, default_value_t = 10)]
    floor_seconds: u64,
    /// Internal, with --floor-iface: attach the classifier without socket attribution instead.
    #[arg(long, hide = true)]
    plain: bool,
}

/// The floor for the datapath's bpf_stats figures: run by the benchmark inside the test
/// namespace, where the interface is.
fn attach_floor(name: &str, seconds: u64, plain: bool) {
    use netmon::source::ebpf::{EbpfOptions, EbpfSource};
    let source = EbpfSource::load(EbpfOptions::default()).expect("loading the classifier");
    let list = netmon::host::list().expect("listing interfaces");
    let iface = list
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no interface {name}"));
    let attached = if plain {
        source
            .attach_plain(iface)
            .expect("attaching the plain classifier")
    } else {
        source.attach_floor(iface).expect("attaching the floor")
    };
    eprintln!("netmon-bench: floor attached to {name}");
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    attached.detach();
}

fn main() {
    let args = Args::parse();
    netmon_tests::require_root();
    if let Some(name) = &args.floor_iface {
        attach_floor(name, args.floor_seconds, args.plain);
        return;
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("binary directory").to_path_buf();
    let netmon = dir.join("netmon");
    let flood = dir.join("netmon-flood");
    for bin in [&netmon, &flood] {
        if !bin.exists() {
            eprintln!(
                "netmon-bench: {} is missing: run `cargo xtask bench` (it builds both)",
                bin.display()
            );
            std::process::exit(2);
        }
    }
    // SAFETY: set before any thread exists; the helpers that start netmon read it.
    unsafe { std::env::set_var("NETMON_BIN", &netmon) };
    let want = |s: Section| args.only.is_empty() || args.only.contains(&s);
    let runs = usize::from(args.runs);

    let (datapath, per_packet) = if want(Section::Datapath) {
        eprintln!("netmon-bench: datapath ({runs} runs × 3 variants × 4 loads)");
        datapath::Bench {
            flood: &flood,
            me: &exe,
            seconds: args.seconds,
            runs,
        }
        .run_all()
    } else {
        (Vec::new(), Vec::new())
    };
    let classifier = if want(Section::Classifier) {
        eprintln!("netmon-bench: classifier cost with BPF_PROG_TEST_RUN");
        classifier::measure(runs)
    } else {
        Vec::new()
    };
    let snapshots = if want(Section::Snapshot) {
        [1, 10_000, 65_536, 1_048_576]
            .into_iter()
            .map(|n| {
                eprintln!("netmon-bench: snapshot cost, {n} flows");
                snapshot::measure(n, runs)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mcp = want(Section::Mcp).then(|| {
        eprintln!("netmon-bench: MCP overhead and memory");
        mcp::measure(&flood, 2 * runs, runs)
    });
    let top = if want(Section::Top) {
        eprintln!("netmon-bench: netmon top vs iftop's screen, idle and at 10,000 flows");
        top::measure(&netmon, &flood, runs)
    } else {
        Vec::new()
    };
    let owners = if want(Section::Owners) {
        eprintln!("netmon-bench: per-process bytes against nethogs and bandwhich");
        let bandwhich = std::env::var_os("NETMON_TEST_CLIENTS")
            .map(|d| std::path::PathBuf::from(d).join("bandwhich/bin/bandwhich"))
            .filter(|p| p.exists());
        if bandwhich.is_none() {
            eprintln!("netmon-bench: bandwhich is not installed; `cargo xtask bench` installs it");
        }
        owners::measure(&netmon, bandwhich.as_deref(), runs)
    } else {
        Vec::new()
    };
    let criterion = args
        .criterion
        .as_deref()
        .map(report::criterion_results)
        .unwrap_or_default();

    let r = report::Report::build(
        report::Machine::here(args.commit),
        runs,
        args.seconds,
        report::Measured {
            datapath_runs: datapath,
            per_packet,
            classifier,
            snapshot: snapshots,
            mcp,
            top,
            owners,
            criterion,
        },
    );
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("netmon-bench: creating {}: {e}", args.out.display());
        std::process::exit(1);
    }
    let json = serde_json::to_string_pretty(&r).expect("report serialises");
    let md = r.markdown();
    for (name, body) in [("report.json", json.as_str()), ("report.md", md.as_str())] {
        let path = args.out.join(name);
        if let Err(e) = std::fs::write(&path, body) {
            eprintln!("netmon-bench: writing {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    println!("{}", r.summary_table());
    println!(
        "full report: {} and {}",
        args.out.join("report.md").display(),
        args.out.join("report.json").display()
    );
}
