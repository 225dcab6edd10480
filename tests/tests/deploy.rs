//! The agent's deployment files, checked by the tools their platforms use: `systemd-analyze
//! verify` for the unit, `kubernetes-validate --strict` (offline schemas) for the DaemonSet. Each
//! check also runs on a broken copy, which must fail, so a checker that passes everything is
//! caught.

use netmon_tests::mcp::clients_dir;
use netmon_tests::{TempDir, netmon_bin};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../netmon/deploy")
        .join(file)
}

/// `text` in a file `name` of a directory that is removed when the returned guard drops, even
/// if the test fails first.
fn scratch(name: &str, text: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new("nmdep");
    let path = dir.path(name);
    std::fs::write(&path, text).expect("writing a scratch copy");
    (dir, path)
}

fn show(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `systemd-analyze verify` on `unit`, with ExecStart pointed at the netmon this test built (the
/// verifier checks that the binary exists).
fn verify_unit(name: &str, unit: &str) -> Output {
    let unit = unit.replace("/usr/local/bin/netmon", &netmon_bin().display().to_string());
    let (_dir, path) = scratch(name, &unit);
    Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("running systemd-analyze (apt-get install systemd)")
}

#[test]
fn the_systemd_unit_verifies_and_grants_only_three_capabilities() {
    let unit = std::fs::read_to_string(deploy("netmon-agent.service")).expect("the unit");
    let out = verify_unit("netmon-agent.service", &unit);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        show(&out)
    );
    for line in [
        "ExecStart=/usr/local/bin/netmon agent --listen 0.0.0.0:9465",
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_PERFMON",
        "CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON",
        "NoNewPrivileges=yes",
        "LimitNOFILE=8192",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line:?}");
    }
    let broken = unit.replace("Restart=on-failure", "Restart=sometimes");
    let out = verify_unit("netmon-agent.service", &broken);
    assert!(
        !out.stderr.is_empty(),
        "a bad Restart= value must be reported: {}",
        show(&out)
    );
}

fn kubernetes_validate(path: &Path) -> Output {
    let bin = clients_dir().join("venv/bin/kubernetes-validate");
    assert!(
        bin.exists(),
        "{} missing: run `cargo xtask setup` (cargo xtask test installs it)",
        bin.display()
    );
    Command::new(bin)
        .args(["--strict", "-k", "1.30.0"])
        .arg(path)
        .output()
        .expect("running kubernetes-validate")
}

#[test]
fn the_daemonset_passes_strict_schema_validation() {
    let path = deploy("daemonset.yaml");
    let out = kubernetes_validate(&path);
    assert!(out.status.success(), "kubernetes-validate: {}", show(&out));
    let text = std::fs::read_to_string(&path).expect("the DaemonSet");
    for needle in [
        "hostNetwork: true",
        r#"drop: ["ALL"]"#,
        r#"add: ["BPF", "NET_ADMIN", "PERFMON"]"#,
        "path: /health",
        r#"prometheus.io/scrape: "true""#,
        r#"prometheus.io/port: "9465""#,
        "limits:",
    ] {
        assert!(text.contains(needle), "the DaemonSet lacks {needle:?}");
    }
    // A misspelt field must fail under --strict.
    let (_dir, broken) = scratch(
        "daemonset.yaml",
        &text.replace("hostNetwork: true", "hostNetwrk: true"),
    );
    let out = kubernetes_validate(&broken);
    assert!(
        !out.status.success(),
        "--strict must reject an unknown field: {}",
        show(&out)
    );
}
