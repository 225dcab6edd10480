//! `cargo xtask fuzz`: netmon's fuzz targets (netmon/fuzz, cargo-fuzz with libFuzzer on the
//! nightly toolchain) for a length of time each, their corpora merged and minimised back into
//! the repository so the next run starts where this one stopped, and a report of the inputs
//! each survived, its coverage and its crashes; `--differential` runs the classifier against
//! its reference for a million frames. `cargo xtask test` runs every target for a fixed number
//! of inputs from its corpus ([`smoke`]).

use crate::setup::BPF_TOOLCHAIN;
use crate::{run, workspace_root};
use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every target, in the order they run.
pub const TARGETS: &[&str] = &[
    "iftop_text",
    "filter",
    "config",
    "mcp_args",
    "cgroup",
    "procfs",
    "netlink",
    "remote_ip",
    "http_mcp",
];

/// Inputs each target runs in `cargo xtask test`, after its corpus.
const SMOKE_RUNS: u32 = 20_000;
/// libFuzzer's bounds on one input: seconds, and the process's memory.
const INPUT_TIMEOUT_S: u32 = 10;
const RSS_LIMIT_MB: u32 = 2048;

fn fuzz_dir() -> PathBuf {
    workspace_root().join("netmon/fuzz")
}

fn cargo_fuzz() -> Command {
    let mut c = Command::new("cargo");
    c.arg(format!("+{BPF_TOOLCHAIN}"))
        .arg("fuzz")
        .current_dir(workspace_root().join("netmon"));
    c
}

/// What one target's run printed at its end (libFuzzer's `-print_final_stats`).
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub target: String,
    pub seconds: f64,
    pub inputs: u64,
    pub coverage: u64,
    pub features: u64,
    pub corpus: u64,
    pub peak_rss_mb: u64,
    pub crashes: Vec<PathBuf>,
}

/// Reads libFuzzer's output: the final stats and the last coverage line.
fn parse_stats(target: &str, text: &str) -> Outcome {
    let mut o = Outcome {
        target: target.into(),
        ..Default::default()
    };
    for line in text.lines() {
        let stat = |name: &str| {
            line.strip_prefix(&format!("stat::{name}:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(v) = stat("number_of_executed_units") {
            o.inputs = v;
        }
        if let Some(v) = stat("peak_rss_mb") {
            o.peak_rss_mb = v;
        }
        // "#12345	DONE   cov: 812 ft: 2301 corp: 120/4Kb ..."
        if line.starts_with('#') && line.contains(" cov: ") {
            let mut words = line.split_whitespace();
            while let Some(w) = words.next() {
                let next = words.clone().next().unwrap_or("");
                match w {
                    "cov:" => o.coverage = next.parse().unwrap_or(o.coverage),
                    "ft:" => o.features = next.parse().unwrap_or(o.features),
                    "corp:" => {
                        o.corpus = next
                            .split('/')
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(o.corpus)
                    }
                    _ => {}
                }
            }
        }
    }
    o
}

fn crashes(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("artifacts").join(target);
    std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        ["crash-", "timeout-", "oom-", "leak-"]
                            .iter()
                            .any(|k| n.starts_with(k))
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `target` from its corpus with libFuzzer `flags`, returning what it printed.
fn run_target(target: &str, flags: &[String]) -> Result<(bool, String)> {
    let corpus = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    let mut c = cargo_fuzz();
    c.args(["run", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        .args(flags);
    eprintln!("xtask: running {c:?}");
    let out = c.output().with_context(|| format!("starting {c:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// Builds every target once (the sanitiser build of netmon and its dependencies).
fn build() -> Result<()> {
    run(cargo_fuzz().arg("build"))
}

/// Every target for [`SMOKE_RUNS`] inputs after its corpus: a parser that regressed fails the
/// build. Part of `cargo xtask test`.
pub fn smoke() -> Result<()> {
    build()?;
    let mut failed = Vec::new();
    for t in TARGETS {
        let (ok, text) = run_target(t, &[format!("-runs={SMOKE_RUNS}")])?;
        let o = parse_stats(t, &text);
        eprintln!(
            "xtask: fuzz {t}: {} inputs, coverage {} ({})",
            o.inputs,
            o.coverage,
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            eprintln!("{text}");
            failed.push(*t);
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {}; the failing input is under netmon/fuzz/artifacts/ (reproduce with `cargo +nightly fuzz run TARGET FILE` in netmon/)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// `cargo xtask fuzz`: each of `targets` for `minutes`, its corpus merged and minimised back
/// into netmon/fuzz/corpus, and a report.
pub fn long(targets: &[String], minutes: f64) -> Result<()> {
    build()?;
    let secs = (minutes * 60.0).round().max(1.0) as u64;
    let mut outcomes = Vec::new();
    for t in targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!("no fuzz target {t:?}; targets: {}", TARGETS.join(", "));
        }
        let started = std::time::Instant::now();
        let (_, text) = run_target(t, &[format!("-max_total_time={secs}")])?;
        let mut o = parse_stats(t, &text);
        o.seconds = started.elapsed().as_secs_f64();
        o.crashes = crashes(t);
        eprintln!(
            "xtask: fuzz {t}: {} inputs in {:.0} s, coverage {}, {} crash(es)",
            o.inputs,
            o.seconds,
            o.coverage,
            o.crashes.len()
        );
        minimise(t)?;
        outcomes.push(o);
    }
    report(&outcomes)
}

/// Merges the target's corpus into its smallest equivalent set (libFuzzer's `-merge=1`), in
/// place.
fn minimise(target: &str) -> Result<()> {
    let corpus = fuzz_dir().join("corpus").join(target);
    let merged = fuzz_dir().join("corpus").join(format!("{target}.merged"));
    let _ = std::fs::remove_dir_all(&merged);
    std::fs::create_dir_all(&merged)?;
    let mut c = cargo_fuzz();
    c.args(["run", target])
        .arg(&merged)
        .arg(&corpus)
        .args(["--", "-merge=1"]);
    let out = c.output().with_context(|| format!("starting {c:?}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&merged);
        bail!(
            "minimising the {target} corpus failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&corpus)?;
    std::fs::rename(&merged, &corpus)?;
    Ok(())
}

fn report(outcomes: &[Outcome]) -> Result<()> {
    let dir = workspace_root().join("target/fuzz");
    std::fs::create_dir_all(&dir)?;
    let mut md = String::from(
        "| target | time | inputs run | coverage (edges) | corpus | peak RSS | crashes |\n|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        md += &format!(
            "| `{}` | {:.0} min | {} | {} | {} | {} MB | {} |\n",
            o.target,
            o.seconds / 60.0,
            o.inputs,
            o.coverage,
            o.corpus,
            o.peak_rss_mb,
            o.crashes.len()
        );
    }
    std::fs::write(dir.join("report.md"), &md)?;
    println!("{md}");
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.crashes.is_empty()).collect();
    if !crashed.is_empty() {
        for o in &crashed {
            for c in &o.crashes {
                eprintln!("xtask: {} crashed on {}", o.target, c.display());
            }
        }
        bail!("crashes found; each needs a fix and a regression test named after it");
    }
    Ok(())
}

/// The classifier against its reference for `frames` frames, in a release build (as root).
pub fn differential(frames: u64, cargo_bin: &Path) -> Result<()> {
    let mut c = crate::privileged(
        cargo_bin,
        &[
            "test".into(),
            "--release".into(),
            "-p".into(),
            "netmon-tests".into(),
            "--test".into(),
            "differential".into(),
            "--".into(),
            "--nocapture".into(),
        ],
    );
    c.current_dir(workspace_root())
        .env("NETMON_DIFF_FRAMES", frames.to_string());
    run(&mut c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_stats_are_read() {
        let text = "#2\tINITED cov: 10 ft: 11 corp: 3/90b exec/s: 0 rss: 40Mb\n\
                    #65536\tpulse  cov: 300 ft: 900 corp: 50/2Kb lim: 100 exec/s: 21845 rss: 60Mb\n\
                    #100000\tDONE   cov: 312 ft: 950 corp: 55/3Kb lim: 100 exec/s: 20000 rss: 61Mb\n\
                    stat::number_of_executed_units: 100000\nstat::peak_rss_mb: 61\n";
        let o = parse_stats("filter", text);
        assert_eq!(
            (o.inputs, o.coverage, o.features, o.corpus, o.peak_rss_mb),
            (100_000, 312, 950, 55, 61)
        );
    }
}
