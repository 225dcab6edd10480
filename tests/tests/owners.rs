//! Whose traffic it is, with real processes: two iperf3 clients the test started (their PIDs
//! and bytes), a process older than netmon and one that exits mid-window, a receive-only UDP
//! server and ping, traffic forwarded through a router namespace (unattributed, with the
//! reason), and two podman containers (their ids as `podman inspect` gives them, bytes exact).
//! Every sum is checked: owners plus unattributed equal the interface's totals, which equal the
//! kernel's counters.

use netmon_tests::podman::{Container, Image, iperf3_container, iperf3_image};
use netmon_tests::truth;
use netmon_tests::{
    ADDR_A4, ADDR_A6, ADDR_B4, Counters, Spawned, VethPair, finish_json, in_ns, ip,
    iperf3_server_on, sh, spawn_netmon, u, unique, wait_attached,
};
use serde_json::Value;
use std::io::BufReader;
use std::process::{Command, Stdio};
use std::time::Duration;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn rows(d: &Value) -> &Vec<Value> {
    d["top_connections"].as_array().expect("top_connections")
}

/// `netmon traffic --json -n` on `dev` in `ns` for `seconds`, with `extra` flags; returns once
/// its window has started, with the rest of its stderr.
fn traffic(
    ns: &str,
    dev: &str,
    seconds: u32,
    extra: &[&str],
) -> (Spawned, BufReader<std::process::ChildStderr>) {
    let secs = seconds.to_string();
    let mut args = vec!["traffic", "-i", dev, "-s", &secs, "--json", "-n"];
    args.extend(extra);
    let mut child = spawn_netmon(ns, &args);
    let rest = wait_attached(&mut child);
    (child, rest)
}

/// A child started by the test in `ns`, its stdout captured: `ip netns exec` execs the
/// program, so the child's PID is the program's.
fn start(ns: &str, program: &str, args: &[&str]) -> Spawned {
    Spawned(
        in_ns(ns, program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning a test process"),
    )
}

fn output(mut child: Spawned) -> String {
    let out = std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .expect("waiting for a test process");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rows and totals add up: every byte is in some row, and the totals are the kernel's.
fn check_sums(d: &Value, kernel: Counters) {
    let t = &d["total_stats"];
    for dir in ["rx", "tx"] {
        let key = format!("{dir}_bytes");
        let sum: u64 = rows(d).iter().map(|c| u(&c[&key])).sum();
        assert_eq!(sum, u(&t[&key]), "{dir}: owners + unattributed = totals");
    }
    truth::check_totals(d, kernel, false);
}

/// Two iperf3 clients with different PIDs in one namespace, started by the test: each PID's
/// connections and bytes are its own, exactly, and within 1% of what its iperf3 sent plus
/// headers.
#[test]
fn two_processes_each_get_their_own_bytes() {
    let _s = serial();
    let pair = VethPair::new(false);
    let _s1 = iperf3_server_on(&pair.ns_b, ADDR_B4, 5201);
    let _s2 = iperf3_server_on(&pair.ns_b, ADDR_B4, 5202);
    let before = pair.counters_a();
    let spawn = |by: &str| traffic(&pair.ns_a, &pair.dev_a, 6, &["-L", "100", "--by", by]);
    let (by_process, e1) = spawn("process");
    let (by_connection, e2) = spawn("connection");
    let clients: Vec<(Spawned, &str)> = [("5201", "1M"), ("5202", "2M")]
        .into_iter()
        .map(|(port, n)| {
            let c = start(
                &pair.ns_a,
                "iperf3",
                &[
                    "-J", "-c", ADDR_B4, "-p", port, "-u", "-l", "1400", "-b", "8M", "-n", n,
                ],
            );
            (c, port)
        })
        .collect();
    let mut reports = Vec::new();
    for (c, port) in clients {
        let pid = c.pid();
        let report: Value = serde_json::from_str(&output(c)).expect("iperf3 JSON");
        reports.push((pid, port, report));
    }
    let p = finish_json(by_process, e1);
    let c = finish_json(by_connection, e2);
    let kernel = pair.counters_a().since(&before);
    let (pd, cd) = (&p["data"], &c["data"]);
    assert_eq!(pd["group_by"], "process");
    check_sums(pd, kernel);
    check_sums(cd, kernel);
    for (pid, port, report) in &reports {
        // By process: one row for this PID, named as the test started it.
        let row = rows(pd)
            .iter()
            .find(|r| r["process"]["pid"] == *pid)
            .unwrap_or_else(|| panic!("no row for pid {pid}: {pd:#}"));
        assert_eq!(row["process"]["comm"], "iperf3");
        assert!(
            row["process"]["cmdline"].is_null()
                || row["process"]["cmdline"]
                    .as_str()
                    .unwrap()
                    .contains("iperf3")
        );
        assert!(row["local_addr"].is_null(), "a row by process has no ends");
        // By connection: its flows are exactly its bytes.
        let mine: Vec<&Value> = rows(cd)
            .iter()
            .filter(|r| r["process"]["pid"] == *pid)
            .collect();
        assert!(
            mine.len() >= 2,
            "the UDP stream and the control connection: {mine:#?}"
        );
        assert!(mine.iter().any(|r| r["remote_port"] == port.parse::<u64>().unwrap() && r["protocol"] == "udp"));
        for dir in ["rx_bytes", "tx_bytes"] {
            let flows: u64 = mine.iter().map(|r| u(&r[dir])).sum();
            assert_eq!(u(&row[dir]), flows, "pid {pid} {dir}: its row = its flows");
        }
        // Against iperf3: the datagrams plus their 28 B of headers, and the small control
        // connection besides.
        let stream = &report["end"]["streams"][0]["udp"];
        let wire = u(&stream["bytes"]) + 28 * u(&stream["packets"]);
        let sent = u(&row["tx_bytes"]);
        let off = (sent as f64 - wire as f64) / wire as f64;
        eprintln!(
            "pid {pid}: netmon {sent} B sent, iperf3 {wire} B with headers ({:+.3}%)",
            off * 100.0
        );
        assert!((0.0..0.01).contains(&off), "pid {pid}: {sent} vs {wire}");
    }
    assert_ne!(reports[0].0, reports[1].0);
}

/// A connection opened before netmon started, and a process that exits mid-window: both named.
#[test]
fn a_process_older_than_netmon_and_one_that_exits_mid_window() {
    let _s = serial();
    let pair = VethPair::new(false);
    let _s1 = iperf3_server_on(&pair.ns_b, ADDR_B4, 5201);
    let _s2 = iperf3_server_on(&pair.ns_b, ADDR_B4, 5202);
    // Older: connected (its control connection and stream open) before netmon loads.
    let old = start(
        &pair.ns_a,
        "iperf3",
        &["-J", "-c", ADDR_B4, "-p", "5201", "-b", "2M", "-t", "9"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    // A window with room: on a loaded machine the short transfer below has ended past 5 s.
    let (netmon, err) = traffic(&pair.ns_a, &pair.dev_a, 8, &["-P", "-L", "100"]);
    let window_start = std::time::Instant::now();
    // Short-lived: starts after netmon and is gone before the window ends.
    let short = start(
        &pair.ns_a,
        "iperf3",
        &["-J", "-c", ADDR_B4, "-p", "5202", "-n", "200K"],
    );
    let short_pid = short.pid();
    let _ = output(short);
    let short_done = window_start.elapsed();
    let v = finish_json(netmon, err);
    let old_pid = old.pid();
    let _ = output(old);
    let d = &v["data"];
    let of = |pid: u32| -> Vec<&Value> {
        rows(d)
            .iter()
            .filter(|r| r["process"]["pid"] == pid)
            .collect()
    };
    let old_rows = of(old_pid);
    assert!(
        old_rows
            .iter()
            .any(|r| r["remote_port"] == 5201 && u(&r["tx_bytes"]) > 100_000),
        "the older connection is named: {d:#}"
    );
    let short_rows = of(short_pid);
    assert!(
        short_rows
            .iter()
            .any(|r| r["remote_port"] == 5202 && u(&r["tx_bytes"]) > 200_000),
        "the process that exited keeps its bytes (it ended {short_done:?} into the window): {d:#}"
    );
    assert_eq!(short_rows[0]["process"]["comm"], "iperf3");
    assert!(
        short_rows[0]["process"]["cmdline"].is_null(),
        "it exited: no command line to read"
    );
    for r in rows(d) {
        if r["protocol"] == "tcp" || r["protocol"] == "udp" {
            assert!(
                r["process"].is_object(),
                "every TCP/UDP flow here has an owner: {r}"
            );
        }
    }
}

/// A TCP server that accepts one connection and reads it to the end (bounded: 20 s
/// timeouts); started in `ns` on `addr:port`, listening when this returns.
fn tcp_sink(ns: &str, addr: &str, port: &str) -> Spawned {
    let server = start(
        ns,
        "python3",
        &[
            "-c",
            "import socket,sys\n\
             fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
             s = socket.socket(fam)\n\
             s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); s.settimeout(20)\n\
             c, _ = s.accept(); c.settimeout(20)\n\
             while c.recv(65536): pass",
            addr,
            port,
        ],
    );
    netmon_tests::wait_listening(ns, port);
    server
}

/// Connections a listener accepted, over IPv6 and IPv4: the kernel makes an accepted socket
/// without `socket(2)`, so it is named after its listener's process. One server listens before
/// netmon starts (found in the kernel's socket list), one after (its creation recorded). The
/// connections are still open, idle, when the window ends: a closed accepted socket is recorded
/// at release, by whoever closed it, so only open ones test the way through the listener.
#[test]
fn accepted_connections_over_ipv6_and_ipv4_are_their_servers() {
    let _s = serial();
    let pair = VethPair::new(false);
    let older = tcp_sink(&pair.ns_a, ADDR_A4, "5302");
    let before = pair.counters_a();
    let (netmon, err) = traffic(&pair.ns_a, &pair.dev_a, 5, &["-P", "-L", "100"]);
    let newer = tcp_sink(&pair.ns_a, ADDR_A6, "5301");
    // Each sends 1 MB at once, then holds the connection open past the window (8 s, bounded).
    let clients: Vec<Spawned> = [(ADDR_A6, "5301"), (ADDR_A4, "5302")]
        .into_iter()
        .map(|(addr, port)| {
            start(
                &pair.ns_b,
                "python3",
                &[
                    "-c",
                    "import socket,sys,time\n\
                     c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n\
                     c.sendall(b'x' * 1000000); time.sleep(8); c.close()",
                    addr,
                    port,
                ],
            )
        })
        .collect();
    let v = finish_json(netmon, err);
    let kernel = pair.counters_a().since(&before);
    drop(clients);
    let d = &v["data"];
    check_sums(d, kernel);
    for (server, port, family) in [(&newer, 5301, "IPv6"), (&older, 5302, "IPv4")] {
        let mine: Vec<&Value> = rows(d).iter().filter(|r| r["local_port"] == port).collect();
        assert_eq!(mine.len(), 1, "one accepted connection: {d:#}");
        let r = mine[0];
        assert_eq!(r["process"]["pid"], server.pid(), "{family}: {r}");
        assert_eq!(r["process"]["comm"], "python3");
        assert!(u(&r["rx_bytes"]) > 1_000_000, "{family}: {r}");
        eprintln!(
            "{family}: the connection accepted by pid {} received {} B",
            server.pid(),
            r["rx_bytes"]
        );
    }
}

/// A UDP server that only receives, and ping (a raw ICMP socket here), are named too.
#[test]
fn a_receive_only_udp_server_and_ping() {
    let _s = serial();
    let pair = VethPair::new(false);
    let before = pair.counters_a();
    let (netmon, err) = traffic(&pair.ns_a, &pair.dev_a, 4, &["-P", "-L", "100"]);
    // Receives 50 datagrams and sends nothing; bounded by its count and a 10 s timeout.
    let server = start(
        &pair.ns_a,
        "python3",
        &[
            "-c",
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('10.200.1.1', 9999)); s.settimeout(10); print('ready', flush=True); [s.recv(2000) for _ in range(50)]",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    sh(in_ns(&pair.ns_b, "python3").args([
        "-c",
        "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(50): s.sendto(b'x'*500, ('10.200.1.1', 9999)); time.sleep(0.01)",
    ]));
    let server_pid = server.pid();
    let ping = start(&pair.ns_a, "ping", &["-q", "-c", "4", "-i", "0.2", ADDR_B4]);
    let ping_pid = ping.pid();
    let _ = output(ping);
    let _ = output(server);
    let v = finish_json(netmon, err);
    let kernel = pair.counters_a().since(&before);
    let d = &v["data"];
    check_sums(d, kernel);
    let udp = rows(d)
        .iter()
        .find(|r| r["local_port"] == 9999)
        .unwrap_or_else(|| panic!("{d:#}"));
    assert_eq!(udp["process"]["pid"], server_pid, "{udp}");
    assert_eq!((u(&udp["rx_bytes"]), u(&udp["tx_bytes"])), (50 * 528, 0));
    let icmp = rows(d)
        .iter()
        .find(|r| r["protocol"] == "icmp")
        .unwrap_or_else(|| panic!("{d:#}"));
    assert_eq!(icmp["process"]["pid"], ping_pid, "{icmp}");
    assert_eq!(icmp["process"]["comm"], "ping");
}

/// Traffic a router namespace forwards belongs to no socket of it: one unattributed row with
/// the reason, and the totals still the kernel's.
#[test]
fn forwarded_traffic_is_unattributed_with_the_reason() {
    let _s = serial();
    // A (10.210.1.2) — R — B (10.210.2.2); netmon on R's side towards A.
    let (a, r, b) = (unique("nfa"), unique("nfr"), unique("nfb"));
    let (ra, ar, rb, br) = (unique("vra"), unique("var"), unique("vrb"), unique("vbr"));
    let _cleanup = Namespaces(vec![a.clone(), r.clone(), b.clone()]);
    for ns in [&a, &r, &b] {
        ip(&["netns", "add", ns]);
        std::fs::create_dir_all(format!("/etc/netns/{ns}")).unwrap();
        std::fs::write(format!("/etc/netns/{ns}/resolv.conf"), "# none\n").unwrap();
    }
    ip(&[
        "link", "add", &ra, "netns", &r, "type", "veth", "peer", "name", &ar, "netns", &a,
    ]);
    ip(&[
        "link", "add", &rb, "netns", &r, "type", "veth", "peer", "name", &br, "netns", &b,
    ]);
    for (ns, dev, addr) in [
        (&a, &ar, "10.210.1.2/24"),
        (&r, &ra, "10.210.1.1/24"),
        (&r, &rb, "10.210.2.1/24"),
        (&b, &br, "10.210.2.2/24"),
    ] {
        sh(in_ns(ns, "ip").args(["addr", "add", addr, "dev", dev]));
        sh(in_ns(ns, "ethtool").args(["-K", dev, "tso", "off", "gso", "off", "gro", "off"]));
        sh(in_ns(ns, "ip").args(["link", "set", dev, "up"]));
        sh(in_ns(ns, "sysctl").args(["-q", "-w", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")]));
    }
    sh(in_ns(&a, "ip").args(["route", "add", "default", "via", "10.210.1.1"]));
    sh(in_ns(&b, "ip").args(["route", "add", "default", "via", "10.210.2.1"]));
    sh(in_ns(&r, "sysctl").args(["-q", "-w", "net.ipv4.ip_forward=1"]));
    let _server = iperf3_server_on(&b, "10.210.2.2", 5201);
    let counters = || Counters::read(&r, &ra);
    let before = counters();
    // A window with room: a loaded machine has taken more than 5 s for these 2 MB.
    let (netmon, err) = traffic(&r, &ra, 8, &["--by", "process"]);
    let sending = std::time::Instant::now();
    sh(in_ns(&a, "iperf3").args(["-c", "10.210.2.2", "-n", "2M"]));
    let sent_in = sending.elapsed();
    let v = finish_json(netmon, err);
    let kernel = counters().since(&before);
    let d = &v["data"];
    assert_eq!(v["success"], true, "{v:#}");
    let forwarded: Vec<&Value> = rows(d)
        .iter()
        .filter(|c| c["unattributed_reason"] == "forwarded")
        .collect();
    assert_eq!(forwarded.len(), 1, "{d:#}");
    assert!(
        u(&forwarded[0]["rx_bytes"]) > 2_000_000,
        "iperf3 sent for {sent_in:?}; kernel {kernel:?}; {d:#}"
    );
    assert!(forwarded[0]["process"].is_null());
    check_sums(d, kernel);
}

struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
    }
}

/// Two podman containers with their own network namespaces, each an iperf3 server that a
/// client in another namespace asks to send (`-R`), through a namespace standing for the host
/// (it routes; the containers' veths end there). On each host-side veth, everything is its
/// container's: the container's bytes equal the veth's IP totals, which equal the kernel's
/// counters; the id is `podman inspect`'s; the veth is labelled with it; and an agent (three
/// capabilities, entered with nsenter) counts the same per container.
#[test]
fn two_containers_each_own_their_veth() {
    let _s = serial();
    let image = iperf3_image();
    let _image = Image(image.clone());
    let (h, s) = (unique("nch"), unique("ncs"));
    let _cleanup = Namespaces(vec![h.clone(), s.clone()]);
    for ns in [&h, &s] {
        ip(&["netns", "add", ns]);
        std::fs::create_dir_all(format!("/etc/netns/{ns}")).unwrap();
        std::fs::write(format!("/etc/netns/{ns}/resolv.conf"), "# none\n").unwrap();
        // The agent serves on loopback.
        sh(in_ns(ns, "ip").args(["link", "set", "lo", "up"]));
    }
    let (hs, sh_) = (unique("vhs"), unique("vsh"));
    ip(&[
        "link", "add", &hs, "netns", &h, "type", "veth", "peer", "name", &sh_, "netns", &s,
    ]);
    for (ns, dev, addr) in [(&h, &hs, "10.205.0.1/24"), (&s, &sh_, "10.205.0.2/24")] {
        sh(in_ns(ns, "sysctl").args(["-q", "-w", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")]));
        sh(in_ns(ns, "ip").args(["addr", "add", addr, "dev", dev]));
        sh(in_ns(ns, "ip").args(["link", "set", dev, "up"]));
    }
    sh(in_ns(&s, "ip").args(["route", "add", "default", "via", "10.205.0.1"]));
    sh(in_ns(&h, "sysctl").args(["-q", "-w", "net.ipv4.ip_forward=1"]));
    let devs = [unique("vhc"), unique("vhc")];
    let containers: Vec<Container> = devs
        .iter()
        .zip([1u8, 2])
        .map(|(dev, n)| iperf3_container(&image, &h, dev, n))
        .collect();

    let agent = netmon_tests::agent::start_agent_nsenter(
        &h,
        &["-i", &devs[0], "-i", &devs[1], "--tick", "0.5"],
    );
    let before: Vec<Counters> = devs.iter().map(|d| Counters::read(&h, d)).collect();
    let windows: Vec<(Spawned, _)> = devs
        .iter()
        .map(|d| traffic(&h, d, 6, &["--by", "container"]))
        .collect();
    for n in [1u8, 2] {
        sh(in_ns(&s, "iperf3").args([
            "-c",
            &format!("10.205.{n}.2"),
            "-R",
            "-n",
            &format!("{n}M"),
            "--connect-timeout",
            "5000",
        ]));
    }
    let results: Vec<Value> = windows
        .into_iter()
        .map(|(n, e)| finish_json(n, e))
        .collect();
    // Two more collections after the last byte: the agent's counters hold every one of them
    // (a fixed pause was not enough on a loaded machine).
    let now = netmon_tests::agent::collections(&netmon_tests::agent::health(&h, &agent));
    netmon_tests::agent::wait_collections(&h, &agent, now, 2);
    let (_, metrics) = netmon_tests::mcp::curl(&h, &[&format!("http://{}/metrics", agent.addr)]);
    let agent_log = netmon_tests::mcp::read_log(&agent.log);
    assert!(
        metrics.contains("netmon_container_ip_bytes_total{"),
        "the agent counted no container; its log:\n{agent_log}\n{metrics}"
    );
    for ((v, c), (dev, before)) in results
        .iter()
        .zip(&containers)
        .zip(devs.iter().zip(&before))
    {
        let kernel = Counters::read(&h, dev).since(before);
        let d = &v["data"];
        assert_eq!(v["success"], true, "{v:#}");
        check_sums(d, kernel);
        let mine: Vec<&Value> = rows(d)
            .iter()
            .filter(|r| r["container"]["id"] == c.id.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "one row for the container: {d:#}");
        let row = mine[0];
        assert_eq!(row["container"]["runtime"], "podman");
        let t = &d["total_stats"];
        assert_eq!(
            (u(&row["rx_bytes"]), u(&row["tx_bytes"])),
            (u(&t["rx_bytes"]), u(&t["tx_bytes"])),
            "every IP byte on its veth is the container's"
        );
        assert_eq!(
            d["interface_owner"]["id"],
            c.id.as_str(),
            "the veth's label"
        );
        eprintln!(
            "{dev}: container {} owns {} B sent + {} B received, = the veth's IP totals",
            &c.id[..12],
            row["tx_bytes"],
            row["rx_bytes"]
        );
        let counted = netmon_tests::agent::sample(
            &metrics,
            "netmon_container_ip_bytes_total",
            &[
                ("interface", dev),
                ("container", &c.id),
                ("direction", "ingress"),
            ],
        );
        // The agent has counted since it attached, a little before the window: at least the
        // window's bytes, and only the container's.
        assert!(
            counted as u64 >= u(&row["rx_bytes"]),
            "{counted} < {}",
            row["rx_bytes"]
        );
        assert!(
            metrics.contains(&format!(
                "netmon_interface_container{{container=\"{}\",interface=\"{dev}\"",
                c.id
            )),
            "the agent labels the veth:\n{metrics}"
        );
    }
    drop(agent);
    drop(containers);
}

/// A process whose name and command line hold terminal escape sequences (it chose them): the
/// text view and `--by process` print them escaped (`\x1b`), never raw; the JSON keeps them as
/// the process wrote them (JSON escapes them itself).
#[test]
fn escape_sequences_in_a_process_name_reach_no_terminal() {
    let _s = serial();
    let pair = VethPair::new(false);
    let args = [
        "traffic",
        "-i",
        &pair.dev_a,
        "-s",
        "3",
        "--by",
        "process",
        "-n",
    ];
    let mut netmon = spawn_netmon(&pair.ns_a, &args);
    let _stderr = wait_attached(&mut netmon);
    let sender = start(
        &pair.ns_a,
        "python3",
        &[
            "-c",
            "import socket,time,sys\nopen('/proc/self/comm','w').write('ev\\x1b[2Jil')\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(20): s.sendto(b'x'*100, ('10.200.1.2', 9)); time.sleep(0.02)",
            "\u{1b}]0;pwned\u{7}",
        ],
    );
    let _ = output(sender);
    let out = std::mem::replace(&mut netmon.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .expect("netmon");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success());
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "a raw control character reached the terminal"
    );
    assert!(
        text.contains("ev\\x1b[2Jil") || text.contains("\\x1b]0;pwned\\x07"),
        "{text}"
    );
}
