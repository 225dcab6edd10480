//! `cargo xtask setup | build | run -- ARGS | test | bench`: everything a fresh Debian machine
//! needs, installed only when missing, then netmon built, run, tested or measured.

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Toolchain that builds the kernel crate (aya-build runs `rustup run nightly`, `-Z build-std`).
const BPF_TOOLCHAIN: &str = "nightly";
/// bpf-linker must be built against the LLVM the nightly rustc uses (22 on these machines).
const LLVM_MAJOR: &str = "22";
const BPF_LINKER_VERSION: &str = "0.13";
/// Builds only for the BPF target (netmon's build.rs does that); host clippy/test skip it.
const KERNEL_CRATE: &str = "netmon-ebpf";

/// Debian packages: LLVM for bpf-linker, and the real peers the tests drive.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "iputils-ping",
    "ethtool",
    "iperf3",
    "iftop",
    "bpftool",
    "util-linux",
    "curl",
    "openssh-server",
    "sudo",
    // A real DNS server for the name tests (the binary only: no service is enabled), and
    // /etc/services for service names.
    "dnsmasq-base",
    "netbase",
    // promtool, to lint the agent's /metrics.
    "prometheus",
    // systemd-analyze, to verify the agent's unit file.
    "systemd",
    // The agent's image: a static musl build, built and run with podman and runc.
    "musl-tools",
    "podman",
    "runc",
];

/// Target of the static binary the agent's image holds.
const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// The real MCP clients the tests drive, pinned: the Python SDK from PyPI and the Inspector CLI
/// from npm (0.15.x is the line that runs on Node 20).
const MCP_PYTHON_SDK: &str = "mcp==2.3.0";
const MCP_INSPECTOR: &str = "@modelcontextprotocol/inspector@0.15.0";
/// Offline Kubernetes schema validation (bundled schemas), for the agent's DaemonSet.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing (apt packages, nightly rust-src, bpf-linker); skip what is present.
    Setup,
    /// Set up, then build netmon (release).
    Build,
    /// Set up, build, and run `netmon ARGS` as root (through sudo when not root).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up (plus the MCP test clients), then fmt check, clippy, and every test (privileged
    /// ones included) as root.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
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

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn apt_missing() -> Vec<&'static str> {
    APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect()
}

fn setup() -> Result<()> {
    let missing = apt_missing();
    if missing.is_empty() {
        eprintln!("xtask: apt packages present: {}", APT_PACKAGES.join(" "));
    } else {
        if !is_root() {
            bail!(
                "missing Debian packages: {}; run `cargo xtask setup` as root, or `sudo apt-get install -y {}`",
                missing.join(" "),
                missing.join(" ")
            );
        }
        eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }

    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if toolchains.lines().any(|l| l.starts_with(BPF_TOOLCHAIN)) {
        eprintln!("xtask: rust toolchain {BPF_TOOLCHAIN} present");
    } else {
        eprintln!("xtask: installing rust toolchain {BPF_TOOLCHAIN}");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            BPF_TOOLCHAIN,
            "--profile",
            "minimal",
        ]))?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        BPF_TOOLCHAIN,
    ]))
    .unwrap_or_default();
    if components.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: rust-src for {BPF_TOOLCHAIN} present");
    } else {
        eprintln!("xtask: installing rust-src for {BPF_TOOLCHAIN}");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            BPF_TOOLCHAIN,
        ]))?;
    }

    let targets =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if targets.lines().any(|l| l.trim() == MUSL_TARGET) {
        eprintln!("xtask: rust target {MUSL_TARGET} present");
    } else {
        eprintln!("xtask: installing rust target {MUSL_TARGET}");
        run(Command::new("rustup").args(["target", "add", MUSL_TARGET]))?;
    }

    let linker = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if linker.contains(&format!("bpf-linker {BPF_LINKER_VERSION}")) {
        eprintln!("xtask: {} present", linker.trim());
    } else {
        eprintln!(
            "xtask: installing bpf-linker {BPF_LINKER_VERSION} against LLVM {LLVM_MAJOR} (about 2 minutes)"
        );
        run(Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                &format!("~{BPF_LINKER_VERSION}"),
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{LLVM_MAJOR}"),
            ])
            // Without it bpf-linker looks for libLLVM in /usr and fails with "-lLLVM not found".
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{LLVM_MAJOR}")))?;
    }
    Ok(())
}

/// Where the test clients live; the tests read the same variable.
fn clients_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NETMON_TEST_CLIENTS") {
        return d.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/netmon-test-clients")
}

/// Installs the Python `mcp` SDK into a venv and the MCP Inspector CLI into an npm prefix, each
/// only when the pinned version is not already there.
fn setup_test_clients() -> Result<PathBuf> {
    let dir = clients_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let (name, version) = MCP_PYTHON_SDK
        .split_once("==")
        .unwrap_or((MCP_PYTHON_SDK, ""));
    let check = format!(
        "import importlib.metadata as m, sys; sys.exit(m.version('{name}') != '{version}')"
    );
    if output(Command::new(&python).args(["-c", &check])).is_some() {
        eprintln!(
            "xtask: Python {MCP_PYTHON_SDK} present in {}",
            venv.display()
        );
    } else {
        eprintln!(
            "xtask: installing Python {MCP_PYTHON_SDK} into {}",
            venv.display()
        );
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("creating a Python venv (on Debian: apt-get install python3-venv)")?;
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "--disable-pip-version-check",
            MCP_PYTHON_SDK,
        ]))?;
    }

    let (name, version) = KUBERNETES_VALIDATE
        .split_once("==")
        .unwrap_or((KUBERNETES_VALIDATE, ""));
    let check = format!(
        "import importlib.metadata as m, sys; sys.exit(m.version('{name}') != '{version}')"
    );
    if output(Command::new(&python).args(["-c", &check])).is_some() {
        eprintln!("xtask: Python {KUBERNETES_VALIDATE} present");
    } else {
        eprintln!("xtask: installing Python {KUBERNETES_VALIDATE}");
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "--disable-pip-version-check",
            KUBERNETES_VALIDATE,
        ]))?;
    }

    let npm = dir.join("npm");
    let (pkg, want) = MCP_INSPECTOR
        .rsplit_once('@')
        .unwrap_or((MCP_INSPECTOR, ""));
    let manifest = npm.join("node_modules").join(pkg).join("package.json");
    let have = std::fs::read_to_string(&manifest).unwrap_or_default();
    if have.contains(&format!("\"version\": \"{want}\"")) {
        eprintln!("xtask: {MCP_INSPECTOR} present in {}", npm.display());
    } else {
        eprintln!("xtask: installing {MCP_INSPECTOR} into {}", npm.display());
        std::fs::create_dir_all(&npm)?;
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&npm)
            .arg(MCP_INSPECTOR))
        .context("installing the MCP Inspector with npm (needs Node.js 20 and npm)")?;
    }
    Ok(dir)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Re-runs a command under sudo, keeping the environment (cargo, rustup paths), when not root.
fn privileged(program: &Path, args: &[String]) -> Command {
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

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup(),
        Cmd::Build => {
            setup()?;
            run(cargo().args(["build", "--release", "-p", "netmon"]))
        }
        Cmd::Run { args } => {
            setup()?;
            run(cargo().args(["build", "--release", "-p", "netmon"]))?;
            let bin = workspace_root().join("target/release/netmon");
            let status = privileged(&bin, &args)
                .status()
                .with_context(|| format!("starting {}", bin.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::Bench { args } => {
            setup()?;
            let clients = setup_test_clients()?;
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
            setup()?;
            let clients = setup_test_clients()?;
            run(cargo().args(["fmt", "--all", "--check"]))?;
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
            // The integration tests run target/debug/netmon, which `cargo test` does not build,
            // and put the static one in the agent's image.
            run(cargo().args(["build", "-p", "netmon"]))?;
            run(cargo().args(["build", "-p", "netmon", "--target", MUSL_TARGET]))?;
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
            run(&mut c)
        }
    }
}
