//! `cargo xtask setup | build | run -- ARGS | dist | image | test | bench | fuzz`: what each needs,
//! installed only when missing ([`setup`]), then netmon built, run, packed ([`dist`]), tested or
//! measured.

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;

mod dist;
mod fuzz;
mod setup;

/// Builds only for the BPF target (netmon's build.rs does that); host clippy/test skip it.
const KERNEL_CRATE: &str = "netmon-ebpf";

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and running need (LLVM and iproute2, nightly rust-src,
    /// bpf-linker); with --all, also what packaging and the tests need. Skips what is present.
    Setup {
        #[arg(long)]
        all: bool,
    },
    /// Set up, then build netmon (release).
    Build {
        /// Show the kernel crate's build (quiet unless it fails).
        #[arg(long, short)]
        verbose: bool,
    },
    /// Set up, build, and run `netmon ARGS` as root (through sudo when not root).
    Run {
        /// Show the kernel crate's build (quiet unless it fails).
        #[arg(long, short)]
        verbose: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the static (musl) netmon and pack it, with the deploy files, completions and man
    /// pages, into target/dist/*.tar.gz and a .deb.
    Dist,
    /// Build the agent's image (localhost/netmon:VERSION and :latest) with podman.
    Image,
    /// Set up everything (test peers and MCP clients included), then fmt check, clippy, the
    /// packages, and every test (privileged ones included) as root.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then fuzz: each target (or TARGET) for MINUTES, its corpus merged and minimised
    /// back into netmon/fuzz/corpus, a report in target/fuzz/report.md; with --differential,
    /// the classifier against its reference for a million frames (as root).
    Fuzz {
        /// One target (default: all).
        target: Option<String>,
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Run the differential test instead, for this many frames.
        #[arg(long, value_name = "FRAMES", num_args = 0..=1, default_missing_value = "1000000")]
        differential: Option<u64>,
    },
    /// Set up, then measure: criterion benches of the pure hot paths, then (as root) datapath
    /// overhead and accuracy against iftop, snapshot cost, MCP overhead and memory. Writes
    /// target/bench/report.{md,json} and prints the targets table. Not part of `test`.
    Bench {
        /// Extra arguments for netmon-bench (e.g. `--runs 7`, `--only snapshot`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub(crate) fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Re-runs a command under sudo, keeping the environment (cargo, rustup paths), when not root.
pub(crate) fn privileged(program: &Path, args: &[String]) -> Command {
    if is_root() {
        let mut c = Command::new(program);
        c.args(args);
        c
    } else {
        let mut c = Command::new("sudo");
        c.arg("-E").arg(program).args(args);
        c
    }
}

/// The release build; `verbose` shows the kernel crate's inner build.
fn build_release(verbose: bool) -> Result<()> {
    let mut c = cargo();
    c.args(["build", "--release", "-p", "netmon"]);
    if verbose {
        c.env("NETMON_BUILD_VERBOSE", "1");
    }
    run(&mut c)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Setup { all } => {
            setup::build()?;
            if all {
                setup::dist()?;
                setup::test()?;
            }
            Ok(())
        }
        Cmd::Build { verbose } => {
            setup::build()?;
            build_release(verbose)
        }
        Cmd::Run { verbose, args } => {
            setup::build()?;
            build_release(verbose)?;
            let bin = workspace_root().join("target/release/netmon");
            let status = privileged(&bin, &args)
                .status()
                .with_context(|| format!("starting {}", bin.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::Dist => {
            setup::build()?;
            setup::dist()?;
            dist::dist()
        }
        Cmd::Image => {
            setup::build()?;
            setup::dist()?;
            dist::image()
        }
        Cmd::Fuzz {
            target,
            minutes,
            differential,
        } => {
            setup::build()?;
            setup::fuzz()?;
            if let Some(frames) = differential {
                let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                return fuzz::differential(frames, Path::new(&cargo_bin));
            }
            let targets: Vec<String> = match target {
                Some(t) => vec![t],
                None => fuzz::TARGETS.iter().map(|t| t.to_string()).collect(),
            };
            fuzz::long(&targets, minutes)
        }
        Cmd::Bench { args } => {
            setup::build()?;
            let clients = setup::test()?;
            setup::bench()?;
            run(cargo().args([
                "build",
                "--release",
                "-p",
                "netmon",
                "-p",
                "netmon-tests",
                "--bins",
            ]))?;
            let root = workspace_root();
            let criterion = root.join("target/criterion");
            // Old results of benches that no longer exist must not reach the report.
            let _ = std::fs::remove_dir_all(&criterion);
            run(cargo().args([
                "bench",
                "-p",
                "netmon",
                "--bench",
                "hot_paths",
                "--",
                "--warm-up-time",
                "1",
                "--measurement-time",
                "3",
            ]))?;
            let commit = output(
                Command::new("git")
                    .args(["rev-parse", "--short", "HEAD"])
                    .current_dir(&root),
            )
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
            let mut bench_args = vec![
                "--out".to_string(),
                root.join("target/bench").display().to_string(),
                "--criterion".into(),
                criterion.display().to_string(),
                "--commit".into(),
                commit,
            ];
            bench_args.extend(args);
            let mut c = privileged(&root.join("target/release/netmon-bench"), &bench_args);
            c.current_dir(&root).env("NETMON_TEST_CLIENTS", &clients);
            run(&mut c)
        }
        Cmd::Test { args } => {
            setup::build()?;
            setup::dist()?;
            setup::fuzz()?;
            let clients = setup::test()?;
            run(cargo().args(["fmt", "--all", "--check"]))?;
            // Licenses, banned and duplicate crates, and sources, as deny.toml says (not
            // advisories: their database is fetched from GitHub, which CI cannot reach).
            run(cargo().args([
                "deny",
                "--log-level",
                "error",
                "check",
                "licenses",
                "bans",
                "sources",
            ]))?;
            run(cargo().args([
                "clippy",
                "--workspace",
                "--exclude",
                KERNEL_CRATE,
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            // The integration tests run target/debug/netmon, which `cargo test` does not build;
            // the package tests check what `dist` makes, and the agent's image holds its static
            // binary.
            run(cargo().args(["build", "-p", "netmon"]))?;
            dist::dist()?;
            let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut test_args = vec![
                "test".to_string(),
                "--workspace".into(),
                "--exclude".into(),
                KERNEL_CRATE.into(),
                "--no-fail-fast".into(),
            ];
            test_args.extend(args);
            let mut c = privileged(Path::new(&cargo_bin), &test_args);
            c.current_dir(workspace_root())
                .env("NETMON_TEST_CLIENTS", &clients);
            let tested = run(&mut c);
            // Every parser for a fixed number of inputs from its corpus, even when a test
            // failed above (both are reported).
            let fuzzed = fuzz::smoke();
            tested.and(fuzzed)
        }
    }
}
