//! Helpers for netmon's privileged integration tests: network namespaces joined by a veth pair,
//! child processes stopped by PID, kernel interface counters, and the netmon binary run inside a
//! namespace. Everything a test creates is removed by a `Drop`, so it goes away when the test
//! fails too.

pub mod agent;
pub mod frames;
pub mod mcp;
pub mod podman;
pub mod reference;
pub mod sshd;
pub mod tmux;
pub mod truth;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The tests load eBPF programs and create namespaces: they need root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "privileged integration tests need root: run `cargo xtask test`"
    );
}

/// A name unique to this process and call, at most 15 bytes (IFNAMSIZ).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id() % 100_000);
    assert!(name.len() <= 15, "{name} too long");
    name
}

pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn ip(args: &[&str]) -> Output {
    sh(Command::new("ip").args(args))
}

/// `ip netns exec NS ARGS...`: runs inside the namespace with its own /sys mounted.
pub fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// Two namespaces, `a` and `b`, joined by a veth pair `dev_a`/`dev_b` with
/// 10.200.1.1/24 + fd00:200::1/64 in `a` and .2/::2 in `b`. Both namespaces are deleted on drop,
/// which deletes the veth pair.
pub struct VethPair {
    pub ns_a: String,
    pub ns_b: String,
    pub dev_a: String,
    pub dev_b: String,
}

pub const ADDR_A4: &str = "10.200.1.1";
pub const ADDR_B4: &str = "10.200.1.2";
pub const ADDR_A6: &str = "fd00:200::1";
pub const ADDR_B6: &str = "fd00:200::2";

impl VethPair {
    /// `offloads`: leave TSO/GSO/GRO as veth has them (on), or turn them off on both ends so the
    /// classifier sees one skb per wire packet.
    pub fn new(offloads: bool) -> Self {
        require_root();
        let pair = Self {
            ns_a: unique("nma"),
            ns_b: unique("nmb"),
            dev_a: unique("va"),
            dev_b: unique("vb"),
        };
        ip(&["netns", "add", &pair.ns_a]);
        ip(&["netns", "add", &pair.ns_b]);
        for ns in [&pair.ns_a, &pair.ns_b] {
            // netmon names hosts by reverse DNS by default: in a test's namespaces there is no
            // DNS server unless the test starts one, so no query ever goes to this machine's
            // resolver. `ip netns exec` mounts these files over /etc's.
            pair.etc(ns, "resolv.conf", "# netmon tests: no DNS server here\n");
        }
        ip(&[
            "link",
            "add",
            &pair.dev_a,
            "netns",
            &pair.ns_a,
            "type",
            "veth",
            "peer",
            "name",
            &pair.dev_b,
            "netns",
            &pair.ns_b,
        ]);
        for (ns, dev, a4, a6) in [
            (&pair.ns_a, &pair.dev_a, ADDR_A4, ADDR_A6),
            (&pair.ns_b, &pair.dev_b, ADDR_B4, ADDR_B6),
        ] {
            // No router solicitations or DAD probes: the link must stay quiet between tests'
            // counter reads.
            for (k, v) in [
                ("accept_ra", "0"),
                ("dad_transmits", "0"),
                ("router_solicitations", "0"),
            ] {
                sh(in_ns(ns, "sysctl").args(["-q", "-w", &format!("net.ipv6.conf.{dev}.{k}={v}")]));
            }
            sh(in_ns(ns, "ip").args(["addr", "add", &format!("{a4}/24"), "dev", dev]));
            sh(in_ns(ns, "ip").args(["addr", "add", &format!("{a6}/64"), "dev", dev, "nodad"]));
            sh(in_ns(ns, "ip").args(["link", "set", "lo", "up"]));
            if !offloads {
                sh(in_ns(ns, "ethtool")
                    .args(["-K", dev, "tso", "off", "gso", "off", "gro", "off"]));
            }
            sh(in_ns(ns, "ip").args(["link", "set", dev, "up"]));
        }
        pair.wait_quiet();
        pair
    }

    /// Waits until link-up chatter (MLD reports, neighbour discovery) has stopped: no counter on
    /// `dev_a` moves for 1.5 s. Bounded to 20 s.
    pub fn wait_quiet(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = self.counters_a();
        let mut still_since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            let now = self.counters_a();
            if now != last {
                last = now;
                still_since = Instant::now();
            } else if still_since.elapsed() >= Duration::from_millis(1500) {
                return;
            }
        }
        panic!("{} never went quiet", self.dev_a);
    }

    pub fn counters_a(&self) -> Counters {
        Counters::read(&self.ns_a, &self.dev_a)
    }
}

impl VethPair {
    /// Permanent neighbour entries for the IPv4 peers, so no ARP crosses the link: the kernel's
    /// counters then hold IP packets only, and L2 bytes − 14 per frame is exactly the IP bytes.
    pub fn static_neighbours(&self) {
        let mac = |ns: &str, dev: &str| {
            let out = sh(in_ns(ns, "cat").arg(format!("/sys/class/net/{dev}/address")));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let (mac_a, mac_b) = (mac(&self.ns_a, &self.dev_a), mac(&self.ns_b, &self.dev_b));
        for (ns, addr, mac, dev) in [
            (&self.ns_a, ADDR_B4, &mac_b, &self.dev_a),
            (&self.ns_b, ADDR_A4, &mac_a, &self.dev_b),
        ] {
            sh(in_ns(ns, "ip").args([
                "neigh",
                "replace",
                addr,
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ]));
        }
    }

    /// Writes `/etc/netns/<ns>/<name>`, which `ip netns exec` mounts over `/etc/<name>` for the
    /// programs it starts in `ns`. Removed with the pair.
    pub fn etc(&self, ns: &str, name: &str, contents: &str) {
        let dir = Path::new("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("creating /etc/netns/<ns>");
        std::fs::write(dir.join(name), contents).expect("writing /etc/netns/<ns>/<file>");
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
    }
}

/// The kernel's interface counters (L2: IP bytes + 14 per Ethernet frame).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

impl Counters {
    pub fn read(ns: &str, dev: &str) -> Self {
        let get = |name: &str| -> u64 {
            let out = sh(in_ns(ns, "cat").arg(format!("/sys/class/net/{dev}/statistics/{name}")));
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("counter")
        };
        Self {
            rx_bytes: get("rx_bytes"),
            rx_packets: get("rx_packets"),
            tx_bytes: get("tx_bytes"),
            tx_packets: get("tx_packets"),
        }
    }

    pub fn since(&self, before: &Self) -> Self {
        Self {
            rx_bytes: self.rx_bytes - before.rx_bytes,
            rx_packets: self.rx_packets - before.rx_packets,
            tx_bytes: self.tx_bytes - before.tx_bytes,
            tx_packets: self.tx_packets - before.tx_packets,
        }
    }
}

/// A child process that is killed (by its PID, which only it has) and reaped on drop.
pub struct Spawned(pub Child);

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The netmon binary: `$NETMON_BIN` when set (the benchmark runs the release build), else the
/// one next to this test binary (`cargo xtask test` builds it first).
pub fn netmon_bin() -> std::path::PathBuf {
    if let Some(bin) = std::env::var_os("NETMON_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("netmon");
    assert!(
        bin.exists(),
        "{} not built: run `cargo xtask test`, or `cargo build -p netmon` first",
        bin.display()
    );
    bin
}

/// netmon started inside `ns`, with stdout and stderr piped.
pub fn spawn_netmon(ns: &str, args: &[&str]) -> Spawned {
    let child = in_ns(ns, netmon_bin().to_str().expect("utf-8 path"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning netmon");
    Spawned(child)
}

/// Reads `child`'s stderr until a line contains `needle` (bounded to 30 s); returns that line and
/// a reader for the rest of stderr. Panics with what was read if netmon exits first.
pub fn wait_stderr_line(
    child: &mut Spawned,
    needle: &'static str,
) -> (String, BufReader<std::process::ChildStderr>) {
    let stderr = child.0.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err(seen));
                    return;
                }
                Ok(_) => {
                    seen.push_str(&line);
                    if line.contains(needle) {
                        let _ = tx.send(Ok((line, r)));
                        return;
                    }
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(found)) => found,
        Ok(Err(stderr)) => panic!("netmon exited before saying {needle:?}; stderr:\n{stderr}"),
        Err(_) => panic!("netmon did not say {needle:?} within 30 s"),
    }
}

/// Reads `child`'s stderr until netmon says its window has started (bounded to 30 s); returns a
/// reader for the rest of stderr.
pub fn wait_attached(child: &mut Spawned) -> BufReader<std::process::ChildStderr> {
    wait_stderr_line(child, "sampling for").1
}

/// Waits for netmon to exit (bounded) and returns its parsed JSON stdout.
pub fn finish_json(mut child: Spawned, mut rest_of_stderr: impl Read) -> serde_json::Value {
    let mut stdout = child.0.stdout.take().expect("piped stdout");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            let mut out = String::new();
            stdout.read_to_string(&mut out).expect("stdout");
            let mut err = String::new();
            let _ = rest_of_stderr.read_to_string(&mut err);
            assert!(
                status.success(),
                "netmon failed: {status}\nstdout:\n{out}\nstderr:\n{err}"
            );
            return serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{out}"));
        }
        assert!(
            Instant::now() < deadline,
            "netmon did not finish within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// iperf3 server bound to `addr` inside `ns`, one test at a time, stopped on drop.
pub fn iperf3_server(ns: &str, addr: &str) -> Spawned {
    iperf3_server_on(ns, addr, 5201)
}

/// The same on another port.
pub fn iperf3_server_on(ns: &str, addr: &str, port: u16) -> Spawned {
    let port = port.to_string();
    let server = Spawned(
        in_ns(ns, "iperf3")
            .args(["-s", "-B", addr, "-p", &port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning iperf3 -s"),
    );
    wait_listening(ns, &port);
    server
}

/// Waits (bounded to 10 s) until a TCP socket listens on `port` in `ns`.
pub fn wait_listening(ns: &str, port: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = in_ns(ns, "ss")
            .args(["-Hltn", &format!("sport = :{port}")])
            .output()
            .expect("ss");
        if !out.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listened on port {port} in {ns} within 10 s");
}

/// Waits (bounded to 10 s) until a UDP socket is bound to `port` in `ns`.
pub fn wait_udp(ns: &str, port: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = in_ns(ns, "ss")
            .args(["-Hlun", &format!("sport = :{port}")])
            .output()
            .expect("ss");
        if !out.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing bound UDP port {port} in {ns} within 10 s");
}

/// Runs an iperf3 client in `ns` (bounded by iperf3's own -n and a 60 s timeout) and returns
/// its JSON report.
pub fn iperf3_client(ns: &str, args: &[&str]) -> serde_json::Value {
    let out = sh(in_ns(ns, "timeout")
        .args(["60", "iperf3", "-J", "--connect-timeout", "5000"])
        .args(args));
    serde_json::from_slice(&out.stdout).expect("iperf3 JSON")
}

/// Runs `f` on a thread inside network namespace `ns` (threads it starts are in `ns` too), and
/// returns what it returned.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsRawFd;
    let ns = ns.to_string();
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
        // SAFETY: setns on this thread only; the fd is valid for the call.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        f()
    })
    .join()
    .expect("namespace thread")
}

/// Names of the programs attached through TCX to `dev` in `ns` (ingress and egress), asked of the
/// kernel from a thread that enters the namespace. Debian's bpftool 7.1 predates TCX in
/// `bpftool net`.
pub fn tcx_programs(ns: &str, dev: &str) -> Vec<String> {
    use aya::programs::{SchedClassifier, TcAttachType};
    use std::os::fd::AsRawFd;
    let (ns, dev) = (ns.to_string(), dev.to_string());
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
        // SAFETY: setns on this short-lived thread only; the fd is valid for the call.
        assert_eq!(
            unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        let mut names = Vec::new();
        for kind in [TcAttachType::Ingress, TcAttachType::Egress] {
            let (_, progs) = SchedClassifier::query_tcx(&dev, kind).expect("query_tcx");
            names.extend(
                progs
                    .iter()
                    .map(|p| p.name_as_str().unwrap_or("?").to_string()),
            );
        }
        names
    })
    .join()
    .expect("query thread")
}

/// A file under the system temp dir (readable by all, as an unprivileged agent must read its
/// token), removed on drop.
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    pub fn new(name: &str, contents: &str) -> Self {
        let p = std::env::temp_dir().join(unique(name));
        std::fs::write(&p, contents).expect("temp file");
        Self(p)
    }

    pub fn path_str(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Polls (bounded) until netmon has no TCX program on `dev` in `ns`; returns how long it took.
pub fn wait_detached(ns: &str, dev: &str, bound: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let progs = tcx_programs(ns, dev);
        if !progs.iter().any(|p| p.starts_with("netmon")) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "netmon still attached to {dev} after {bound:?}: {progs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A JSON integer, or a panic that shows the value.
pub fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// A directory under the system temp dir, removed with everything in it on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
