//! Podman containers for the tests (runc; no registry is reachable, so images are built from
//! this host's own binaries): an iperf3 image and a container with its own network namespace
//! joined to a test namespace by a veth.

use crate::{in_ns, ip, sh, unique};
use std::process::Command;

/// A podman container (runc) with its own network namespace, made from this host's iperf3
/// and its libraries, removed on drop.
pub struct Container {
    pub name: String,
    pub id: String,
    pub pid: String,
}

pub fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc"]);
    c
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", &self.name]).output();
    }
}

/// An image with only this host's iperf3 and the libraries it links (no registry here).
pub fn iperf3_image() -> String {
    let tag = format!("localhost/{}:latest", unique("nmiperf"));
    let ctx = std::env::temp_dir().join(unique("nmimg"));
    let root = ctx.join("root");
    let ldd = sh(Command::new("ldd").arg("/usr/bin/iperf3"));
    let libs = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let files = std::iter::once("/usr/bin/iperf3".to_string()).chain(
        libs.split_whitespace()
            .filter(|w| w.starts_with('/'))
            .map(str::to_string),
    );
    for f in files {
        let to = root.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY root/ /\nENTRYPOINT [\"/usr/bin/iperf3\"]\n",
    )
    .unwrap();
    let out = podman()
        .args(["build", "-q", "-t", &tag])
        .arg(&ctx)
        .output()
        .expect("podman build");
    let _ = std::fs::remove_dir_all(&ctx);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag
}

/// Runs `iperf3 -s` in a container with no network, then gives it `eth0` (the far end of
/// `host_dev`, which goes into `ns`) with `10.205.<n>.2/24`.
pub fn iperf3_container(image: &str, ns: &str, host_dev: &str, n: u8) -> Container {
    let name = unique("nmc");
    let out = podman()
        .args(["run", "-d", "--name", &name, "--network", "none"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .arg(image)
        // Serving until removed: the veth goes with the container's namespace, and the test
        // reads its counters after the transfers.
        .arg("-s")
        .output()
        .expect("podman run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect = |f: &str| {
        let o = podman().args(["inspect", "-f", f, &name]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let c = Container {
        id: inspect("{{.Id}}"),
        pid: inspect("{{.State.Pid}}"),
        name,
    };
    ip(&[
        "link", "add", host_dev, "netns", ns, "type", "veth", "peer", "name", "eth0", "netns",
        &c.pid,
    ]);
    let inside = |args: &[&str]| {
        sh(Command::new("nsenter")
            .args(["-t", &c.pid, "-n"])
            .args(args));
    };
    inside(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
    inside(&[
        "ip",
        "addr",
        "add",
        &format!("10.205.{n}.2/24"),
        "dev",
        "eth0",
    ]);
    inside(&[
        "ethtool", "-K", "eth0", "tso", "off", "gso", "off", "gro", "off",
    ]);
    inside(&["ip", "link", "set", "lo", "up"]);
    inside(&["ip", "link", "set", "eth0", "up"]);
    inside(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &format!("10.205.{n}.1"),
    ]);
    sh(in_ns(ns, "sysctl").args([
        "-q",
        "-w",
        &format!("net.ipv6.conf.{host_dev}.disable_ipv6=1"),
    ]));
    sh(in_ns(ns, "ip").args(["addr", "add", &format!("10.205.{n}.1/24"), "dev", host_dev]));
    sh(in_ns(ns, "ethtool").args(["-K", host_dev, "tso", "off", "gso", "off", "gro", "off"]));
    sh(in_ns(ns, "ip").args(["link", "set", host_dev, "up"]));
    c
}

/// An image removed on drop.
pub struct Image(pub String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", "-f", &self.0]).output();
    }
}
