//! The agent's image: `netmon/deploy/Containerfile` (FROM scratch + the static musl netmon that
//! `cargo xtask test` builds) built with podman, run with runc in a test namespace with only
//! CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, serving /health and /metrics about real traffic.

use netmon_tests::mcp::curl;
use netmon_tests::{ADDR_B4, VethPair, in_ns, sh, unique};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    // crun fails on these machines; runc works (machine-facts).
    c.args(["--runtime", "runc"]);
    c
}

/// An image built for this test, removed on drop.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", "-f", &self.0]).output();
    }
}

/// A container started by this test, removed (killed first) on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", &self.0]).output();
    }
}

fn build_image() -> Image {
    // The static binary `cargo xtask dist` (run by `cargo xtask test`) ships.
    let bin = root().join("target/x86_64-unknown-linux-musl/release/netmon");
    assert!(
        bin.exists(),
        "{} missing: `cargo xtask test` builds it (cargo xtask dist)",
        bin.display()
    );
    let ctx = std::env::temp_dir().join(unique("nmimg"));
    std::fs::create_dir_all(&ctx).expect("build context");
    std::fs::copy(
        root().join("netmon/deploy/Containerfile"),
        ctx.join("Containerfile"),
    )
    .expect("Containerfile");
    std::fs::copy(&bin, ctx.join("netmon")).expect("the static binary");
    let tag = format!("localhost/{}:test", unique("nmimg"));
    let image = Image(tag.clone());
    let out = podman()
        .args(["build", "-q", "-t", &tag, "-f"])
        .arg(ctx.join("Containerfile"))
        .arg(&ctx)
        .output()
        .expect("running podman build (apt-get install podman runc)");
    let _ = std::fs::remove_dir_all(&ctx);
    assert!(
        out.status.success(),
        "podman build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

#[test]
fn the_image_runs_with_three_capabilities_and_serves_metrics() {
    let pair = VethPair::new(false);
    let image = build_image();
    let name = unique("nmctr");
    let out = podman()
        .args(["run", "-d", "--name", &name])
        .arg(format!("--network=ns:/run/netns/{}", pair.ns_a))
        .args(["--cap-drop", "all", "--cap-add", "bpf,net_admin,perfmon"])
        .args(["--security-opt", "seccomp=unconfined"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .arg(&image.0)
        .args(["agent", "--listen", "127.0.0.1:9465", "--tick", "0.5", "-i"])
        .arg(&pair.dev_a)
        .output()
        .expect("podman run");
    let container = Container(name);
    assert!(
        out.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = || {
        podman()
            .args(["logs", &container.0])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).to_string())
            .unwrap_or_default()
    };
    let caps = podman()
        .args(["inspect", "--format", "{{.EffectiveCaps}}", &container.0])
        .output()
        .expect("podman inspect");
    let caps = String::from_utf8_lossy(&caps.stdout).to_string();
    for cap in ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"] {
        assert!(caps.contains(cap), "{cap} missing from {caps}");
    }
    assert_eq!(caps.matches("CAP_").count(), 3, "only three: {caps}");

    let url = |path: &str| format!("http://127.0.0.1:9465{path}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let health: Value = loop {
        let out = in_ns(&pair.ns_a, "curl")
            .args(["-s", "--max-time", "2", &url("/health")])
            .output()
            .expect("curl");
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout)
            && v["interfaces"][0]["collections"].as_u64().unwrap_or(0) > 0
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the container never served /health; logs:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(health["interfaces"][0]["name"], pair.dev_a.as_str());

    let before = pair.counters_a();
    sh(in_ns(&pair.ns_a, "ping").args(["-c", "4", "-i", "0.2", "-q", ADDR_B4]));
    pair.wait_quiet();
    let sent = pair.counters_a().since(&before).tx_packets;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, text) = curl(&pair.ns_a, &[&url("/metrics")]);
        assert_eq!(code, 200);
        let egress = text
            .lines()
            .find(|l| {
                l.starts_with("netmon_tc_packets_total{")
                    && l.contains("direction=\"egress\"")
                    && l.contains(&format!("interface=\"{}\"", pair.dev_a))
            })
            .and_then(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .unwrap_or(0);
        // Everything since the agent attached: the pings (and their ARP) and nothing else on a
        // quiet link.
        if egress >= sent {
            assert_eq!(egress, sent);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container's metrics never showed {sent} sent packets:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
