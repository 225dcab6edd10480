//! Builds the kernel crate for the BPF target (aya-build runs cargo with the nightly toolchain and
//! bpf-linker) and leaves the object in OUT_DIR for `include_bytes_aligned!`.
//!
//! aya-build relays every line of that inner build as `cargo:warning=`, so a good build printed
//! about 40 `warning: netmon@…: Compiling core …` lines. Its output is caught here instead: on
//! success only real diagnostics pass (and the `cargo:` instructions); on failure, or with
//! `NETMON_BUILD_VERBOSE=1` (`cargo xtask build -v`), everything does.
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;

const VERBOSE: &str = "NETMON_BUILD_VERBOSE";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed={VERBOSE}");
    let verbose = std::env::var_os(VERBOSE).is_some_and(|v| v == "1");
    let out_dir = std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?;
    let log_path = std::path::Path::new(&out_dir).join("kernel-build.log");
    let mut log = std::fs::File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let built = {
        let _redirect = StdoutTo::file(&log)?;
        build_kernel_crate()
    };
    let mut text = String::new();
    log.rewind()?;
    log.read_to_string(&mut text)?;
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        if verbose || built.is_err() || !is_progress(line) {
            writeln!(out, "{line}")?;
        }
    }
    built
}

/// A relayed line of cargo's progress (`Compiling`, `Finished`, …), not a diagnostic.
fn is_progress(line: &str) -> bool {
    let Some(said) = line.strip_prefix("cargo:warning=") else {
        return false;
    };
    let word = said.split_whitespace().next().unwrap_or("");
    said.trim().is_empty()
        || matches!(
            word,
            "Compiling"
                | "Finished"
                | "Fresh"
                | "Building"
                | "Running"
                | "Updating"
                | "Downloading"
                | "Downloaded"
                | "Locking"
                | "Adding"
                | "Blocking"
                | "Checking"
        )
}

fn build_kernel_crate() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "netmon-ebpf")
        .ok_or_else(|| anyhow!("netmon-ebpf package not found in the workspace"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF program failed; `cargo xtask setup` installs rust-src for nightly and bpf-linker")
}

/// Points file descriptor 1 at a file until dropped, so aya-build's `println!`s land there.
struct StdoutTo {
    saved: libc::c_int,
}

impl StdoutTo {
    fn file(f: &std::fs::File) -> anyhow::Result<Self> {
        std::io::stdout().flush()?;
        // SAFETY: dup and dup2 on valid descriptors; the saved one is restored and closed on drop.
        let saved = unsafe { libc::dup(1) };
        if saved < 0 || unsafe { libc::dup2(f.as_raw_fd(), 1) } < 0 {
            return Err(std::io::Error::last_os_error()).context("redirecting stdout");
        }
        Ok(Self { saved })
    }
}

impl Drop for StdoutTo {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        // SAFETY: `saved` came from dup above and is closed once.
        unsafe {
            libc::dup2(self.saved, 1);
            libc::close(self.saved);
        }
    }
}
