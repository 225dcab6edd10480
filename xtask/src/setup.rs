//! What each command needs installed, in three scopes, each installed only when missing:
//! building and running netmon ([`build`]), building its packages and image ([`dist`]), and its
//! tests' real peers ([`test`]). Every step says what it found or installs.

use crate::{is_root, output, run};
use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// Toolchain that builds the kernel crate (aya-build runs `rustup run nightly`, `-Z build-std`).
pub const BPF_TOOLCHAIN: &str = "nightly";
/// bpf-linker must be built against the LLVM the nightly rustc uses (22 on these machines).
const LLVM_MAJOR: &str = "22";
const BPF_LINKER_VERSION: &str = "0.13";

/// Building and running: LLVM for bpf-linker, and iproute2 (`ip`), which netmon's docs and
/// errors point at.
const BUILD_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
];

/// Packages and the image: a static musl build, the tarball, the .deb, podman for the image.
const DIST_PACKAGES: &[&str] = &["musl-tools", "podman", "runc"];

/// The real peers the tests drive.
const TEST_PACKAGES: &[&str] = &[
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
    // Shows that `netmon traffic` answered by the local agent makes no bpf() call.
    "strace",
    "netbase",
    // promtool and a real Prometheus, for the agent's /metrics and the dashboard's queries.
    "prometheus",
    // systemd-analyze, to verify the agent's unit file.
    "systemd",
    // A real terminal for netmon top.
    "tmux",
    // A Debian tree to boot a real systemd in (podman), for the .deb's agent unit.
    "debootstrap",
    // The packages' checks: lintian, getcap, file and man.
    "lintian",
    "libcap2-bin",
    "file",
    "man-db",
];

/// Target of the static binary the tarball, the .deb and the agent's image hold.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// cargo-deb, pinned: it builds the .deb from netmon's `[package.metadata.deb]`.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// The real MCP clients the tests drive, pinned: the Python SDK from PyPI and the Inspector CLI
/// from npm (0.15.x is the line that runs on Node 20).
const MCP_PYTHON_SDK: &str = "mcp==2.3.0";
const MCP_INSPECTOR: &str = "@modelcontextprotocol/inspector@0.15.0";
/// Offline Kubernetes schema validation (bundled schemas), for the agent's DaemonSet.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

fn apt_missing(packages: &[&'static str]) -> Vec<&'static str> {
    packages
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect()
}

fn apt(scope: &str, packages: &[&'static str]) -> Result<()> {
    let missing = apt_missing(packages);
    if missing.is_empty() {
        eprintln!("xtask: {scope} packages present: {}", packages.join(" "));
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}; run this as root, or `sudo apt-get install -y {}`",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {scope} packages: {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn rust_target(target: &str) -> Result<()> {
    let targets =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if targets.lines().any(|l| l.trim() == target) {
        eprintln!("xtask: rust target {target} present");
        Ok(())
    } else {
        eprintln!("xtask: installing rust target {target}");
        run(Command::new("rustup").args(["target", "add", target]))
    }
}

/// What building and running netmon need: LLVM and iproute2, the nightly toolchain's rust-src,
/// and bpf-linker.
pub fn build() -> Result<()> {
    apt("build", BUILD_PACKAGES)?;
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

/// What the tarball, the .deb and the image need: musl, podman and runc, the musl target, and
/// cargo-deb.
pub fn dist() -> Result<()> {
    apt("packaging", DIST_PACKAGES)?;
    rust_target(MUSL_TARGET)?;
    let have = output(Command::new("cargo").args(["deb", "--version"])).unwrap_or_default();
    if have.contains(CARGO_DEB_VERSION) {
        eprintln!("xtask: cargo-deb {CARGO_DEB_VERSION} present");
        Ok(())
    } else {
        eprintln!("xtask: installing cargo-deb {CARGO_DEB_VERSION} (about 3 minutes)");
        run(Command::new("cargo").args([
            "install",
            "cargo-deb",
            "--locked",
            "--version",
            CARGO_DEB_VERSION,
        ]))
    }
}

/// cargo-fuzz (it runs the fuzz targets with the nightly toolchain) and cargo-deny (licenses,
/// bans, sources), pinned.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
const CARGO_DENY_VERSION: &str = "0.20.2";

/// A cargo subcommand from crates.io at a pinned version, installed unless that version is
/// there.
fn cargo_tool(package: &str, subcommand: &str, version: &str, minutes: u32) -> Result<()> {
    let have = output(Command::new("cargo").args([subcommand, "--version"])).unwrap_or_default();
    if have.contains(version) {
        eprintln!("xtask: {package} {version} present");
        return Ok(());
    }
    eprintln!("xtask: installing {package} {version} (about {minutes} minutes)");
    run(Command::new("cargo").args(["install", package, "--locked", "--version", version]))
}

/// What fuzzing and the supply-chain check need: cargo-fuzz and cargo-deny (the nightly
/// toolchain is already there for the kernel crate).
pub fn fuzz() -> Result<()> {
    cargo_tool("cargo-fuzz", "fuzz", CARGO_FUZZ_VERSION, 2)?;
    cargo_tool("cargo-deny", "deny", CARGO_DENY_VERSION, 4)
}

/// The peers the benchmark compares with: nethogs (Debian) and bandwhich (crates.io, into the
/// clients' directory).
const BENCH_PACKAGES: &[&str] = &["nethogs"];
const BANDWHICH_VERSION: &str = "0.23.1";

pub fn bench() -> Result<()> {
    apt("benchmark", BENCH_PACKAGES)?;
    let root = clients_dir().join("bandwhich");
    let bin = root.join("bin/bandwhich");
    let have = output(Command::new(&bin).arg("--version")).unwrap_or_default();
    if have.contains(BANDWHICH_VERSION) {
        eprintln!("xtask: bandwhich {BANDWHICH_VERSION} present");
        return Ok(());
    }
    eprintln!(
        "xtask: installing bandwhich {BANDWHICH_VERSION} into {} (about 2 minutes)",
        root.display()
    );
    run(Command::new("cargo")
        .args([
            "install",
            "bandwhich",
            "--locked",
            "--version",
            BANDWHICH_VERSION,
            "--root",
        ])
        .arg(&root))
}

/// The tests' real peers (Debian packages) and MCP clients; returns where the clients live.
pub fn test() -> Result<PathBuf> {
    apt("test", TEST_PACKAGES)?;
    test_clients()
}

/// Where the test clients live; the tests read the same variable.
pub fn clients_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NETMON_TEST_CLIENTS") {
        return d.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/netmon-test-clients")
}

/// A pinned package in the venv, installed unless that version is there.
fn pip(venv: &std::path::Path, pinned: &str) -> Result<()> {
    let (name, version) = pinned.split_once("==").unwrap_or((pinned, ""));
    let check = format!(
        "import importlib.metadata as m, sys; sys.exit(m.version('{name}') != '{version}')"
    );
    if output(Command::new(venv.join("bin/python")).args(["-c", &check])).is_some() {
        eprintln!("xtask: Python {pinned} present in {}", venv.display());
        return Ok(());
    }
    if !venv.join("bin/pip").exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(venv))
            .context("creating a Python venv (on Debian: apt-get install python3-venv)")?;
    }
    eprintln!("xtask: installing Python {pinned} into {}", venv.display());
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        pinned,
    ]))
}

/// Installs the Python `mcp` SDK and kubernetes-validate into a venv and the MCP Inspector CLI
/// into an npm prefix, each only when the pinned version is not already there.
fn test_clients() -> Result<PathBuf> {
    let dir = clients_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let venv = dir.join("venv");
    pip(&venv, MCP_PYTHON_SDK)?;
    pip(&venv, KUBERNETES_VALIDATE)?;

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
