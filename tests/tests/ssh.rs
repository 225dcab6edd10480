//! Remote hosts over SSH, end to end: an MCP client (the Python SDK over stdio) asks netmon, in
//! namespace A, about namespace B, where a real OpenSSH server runs and real iftop counts. The
//! traffic is iperf3 from A to B; the results are checked against iperf3 and B's kernel
//! counters. Every error case runs against the real server.

use netmon_tests::TempDir;
use netmon_tests::mcp::{Handshake, PyClient, read_log, structured};
use netmon_tests::sshd::{
    Iftop, NOSUDO_USER, PW, PW_USER, Sshd, documented_sudo_rule, ensure_users, keypair,
};
use netmon_tests::{ADDR_A4, ADDR_B4, Counters, VethPair, iperf3_client, iperf3_server, u};
use serde_json::{Value, json};
use std::time::Duration;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const SECOND: Duration = Duration::from_secs(1);

/// B with sshd on port 22 (and, when asked, one without iftop on 2222 and one whose iftop
/// prints without end on 2223), the keys netmon logs in with, and the known_hosts that trusts B.
struct Remote {
    pair: VethPair,
    dir: TempDir,
    sshd: Sshd,
    _broken: Vec<Sshd>,
    root_key: std::path::PathBuf,
    nosudo_key: std::path::PathBuf,
    known_hosts: std::path::PathBuf,
}

impl Remote {
    fn new(with_broken: bool) -> Self {
        ensure_users();
        let pair = VethPair::new(false);
        let dir = TempDir::new("nmssh");
        let (host_key, _) = keypair(&dir, "host_ed25519");
        let (root_key, root_pub) = keypair(&dir, "root_ed25519");
        let (nosudo_key, nosudo_pub) = keypair(&dir, "nosudo_ed25519");
        let authorized = [
            ("root", root_pub.as_str()),
            (NOSUDO_USER, nosudo_pub.as_str()),
        ];
        let sshd = Sshd::start(
            &pair.ns_b,
            ADDR_B4,
            22,
            &dir,
            &host_key,
            &authorized,
            Iftop::Real,
        );
        let mut broken = Vec::new();
        if with_broken {
            broken.push(Sshd::start(
                &pair.ns_b,
                ADDR_B4,
                2222,
                &dir,
                &host_key,
                &authorized,
                Iftop::Missing,
            ));
            // A hostile or broken host: "iftop" floods its output and never ends.
            let flood = dir.path("flood-iftop");
            std::fs::write(
                &flood,
                "#!/bin/sh\nexec yes 'Listening on a flood of bytes'\n",
            )
            .unwrap();
            netmon_tests::sh(
                std::process::Command::new("chmod").args(["0755", flood.to_str().unwrap()]),
            );
            broken.push(Sshd::start(
                &pair.ns_b,
                ADDR_B4,
                2223,
                &dir,
                &host_key,
                &authorized,
                Iftop::Replaced(&flood),
            ));
        }
        let known_hosts = dir.path("known_hosts");
        let key = sshd
            .host_key
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        std::fs::write(
            &known_hosts,
            format!(
                "# netmon test\n{ADDR_B4} {key}\n[{ADDR_B4}]:2222 {key}\n[{ADDR_B4}]:2223 {key}\n"
            ),
        )
        .unwrap();
        Self {
            pair,
            dir,
            sshd,
            _broken: broken,
            root_key,
            nosudo_key,
            known_hosts,
        }
    }

    /// A config file with the test hosts, checking keys against `known_hosts`.
    fn config(&self, name: &str, known_hosts: &std::path::Path, extra: &str) -> std::path::PathBuf {
        let path = self.dir.path(name);
        std::fs::write(
            &path,
            format!(
                "known_hosts = \"{kh}\"\nconnect_timeout_seconds = 3\n{extra}\n\
                 [[remote_hosts]]\nname = \"b-root\"\nhost = \"{ADDR_B4}\"\nusername = \"root\"\nauth = {{ key_file = \"{rk}\" }}\n\
                 [[remote_hosts]]\nname = \"b-pw\"\nhost = \"{ADDR_B4}\"\nusername = \"{PW_USER}\"\nauth = {{ password_env = \"NMTEST_PW\" }}\nsudo = true\n\
                 [[remote_hosts]]\nname = \"b-nosudo\"\nhost = \"{ADDR_B4}\"\nusername = \"{NOSUDO_USER}\"\nauth = {{ key_file = \"{nk}\" }}\n\
                 [[remote_hosts]]\nname = \"b-no-iftop\"\nhost = \"{ADDR_B4}\"\nport = 2222\nusername = \"root\"\nauth = {{ key_file = \"{rk}\" }}\n\
                 [[remote_hosts]]\nname = \"b-flood\"\nhost = \"{ADDR_B4}\"\nport = 2223\nusername = \"root\"\nauth = {{ key_file = \"{rk}\" }}\n\
                 [[remote_hosts]]\nname = \"ghost\"\nhost = \"10.200.1.99\"\nusername = \"root\"\nauth = {{ key_file = \"{rk}\" }}\n",
                kh = known_hosts.display(),
                rk = self.root_key.display(),
                nk = self.nosudo_key.display(),
            ),
        )
        .unwrap();
        path
    }

    /// The Python client, in A, running `netmon serve` there with `config`.
    fn client(&self, config: &std::path::Path, plan: &Value) -> PyClient {
        let pidfile = self.dir.path(&netmon_tests::unique("pid"));
        let wrapper = format!(
            "env RUST_LOG=debug NETMON_CONFIG={} NMTEST_PW={PW}",
            config.display()
        );
        PyClient::stdio_under(
            &self.pair.ns_a,
            &pidfile,
            &wrapper,
            Handshake::Initialize,
            plan,
        )
    }
}

fn outcome<'a>(events: &'a [Value], label: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["label"] == label && (e["event"] == "result" || e["event"] == "exception"))
        .unwrap_or_else(|| panic!("no outcome for {label}: {events:#?}"))
}

/// Remote results through real sshd + iftop: interfaces, then iperf3 traffic sampled on B's
/// veth as root (key) and as the password user through sudo.
#[test]
fn remote_traffic_through_sshd_and_iftop() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = Remote::new(false);
    let _iperf = iperf3_server(&r.pair.ns_b, ADDR_B4);
    let config = r.config("netmon.toml", &r.known_hosts, "");
    let dev_b = r.pair.dev_b.clone();
    let plan = json!([
        {"op": "call", "label": "ifaces", "tool": "list_network_interfaces", "args": {"host": "b-root"}},
        {"op": "call", "label": "root", "tool": "get_interface_traffic",
         "args": {"host": "b-root", "iface": dev_b, "sample_seconds": 4}},
        {"op": "wait"},
        {"op": "call", "label": "pw", "tool": "get_interface_traffic",
         "args": {"host": "b-pw", "iface": dev_b, "sample_seconds": 4}},
    ]);
    let mut client = r.client(&config, &plan);
    let evs = client.until("result", 30 * SECOND);
    let ifaces = structured(events_last(&evs));
    assert_eq!(ifaces["success"], true, "{ifaces:#}");
    assert_eq!(ifaces["data"]["host"], "b-root");
    assert_eq!(ifaces["data"]["interfaces"], json!(["lo", dev_b]));
    assert_eq!(ifaces["data"]["details"][1]["kind"], "veth");
    let addrs = ifaces["data"]["details"][1]["addresses"]
        .as_array()
        .unwrap();
    assert!(addrs.contains(&json!(ADDR_B4)), "{addrs:?}");

    for (label, go_first) in [("root", false), ("pw", true)] {
        if go_first {
            client.until("waiting", 10 * SECOND);
            client.go();
        }
        // The window has started once the first progress notification arrives.
        client.until("progress", 30 * SECOND);
        let before = Counters::read(&r.pair.ns_b, &dev_b);
        // iftop reports at its first tick after the window, and a tick needs a packet: keep a
        // few flowing (bounded: 40 pings, 8 s).
        let mut ping = netmon_tests::Spawned(
            netmon_tests::in_ns(&r.pair.ns_a, "ping")
                .args(["-c", "40", "-i", "0.2", "-q", ADDR_B4])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("ping"),
        );
        let report = iperf3_client(&r.pair.ns_a, &["-c", ADDR_B4, "-n", "10M"]);
        let evs = client.until("result", 30 * SECOND);
        let _ = ping.0.kill();
        let kernel = Counters::read(&r.pair.ns_b, &dev_b).since(&before);
        let res = structured(outcome(&evs, label));
        assert_eq!(res["success"], true, "{label}: {res:#}");
        let d = &res["data"];
        assert_eq!(d["source"], "ssh-iftop");
        let t = &d["total_stats"];
        assert_eq!(t["interface"], dev_b.as_str());
        assert!(t["rx_packets"].is_null(), "iftop counts no packets");
        let w = t["window_seconds"].as_f64().unwrap();
        assert!((3.5..7.0).contains(&w), "{label}: window {w} s");
        // The iperf3 data stream: received on B's port 5201 from A's client port.
        let port = u(&report["start"]["connected"][0]["local_port"]);
        // When the server ends the test early, what it read (and even what the sender wrote)
        // can differ from what crossed the wire: the stream then lies between the two, plus
        // headers. Otherwise both are equal and the check is the plain 2%.
        let received = u(&report["end"]["sum_received"]["bytes"]);
        let sent = u(&report["end"]["sum_sent"]["bytes"]);
        let retransmits = report["end"]["sum_sent"]["retransmits"]
            .as_u64()
            .unwrap_or(0);
        let conns = d["top_connections"].as_array().unwrap();
        let c = conns
            .iter()
            .find(|c| c["local_port"] == 5201 && c["remote_port"] == port)
            .unwrap_or_else(|| panic!("{label}: no row for the iperf3 stream: {conns:#?}"));
        assert_eq!(c["local_addr"], ADDR_B4);
        assert_eq!(c["remote_addr"], ADDR_A4);
        let mss = 1448;
        let with_headers = |payload: u64| payload + payload.div_ceil(mss) * 52;
        let low = with_headers(received);
        let high = with_headers(sent + retransmits * mss);
        let got = u(&c["rx_bytes"]);
        eprintln!(
            "{label}: iperf3 sent {sent} B, server read {received} B, {retransmits} retransmits → {low}–{high} B on the wire; iftop via netmon {got} B; totals rx {} B vs kernel L3 {} B",
            t["rx_bytes"],
            kernel.rx_bytes - 14 * kernel.rx_packets
        );
        assert!(
            got as f64 >= low as f64 * 0.98 && got as f64 <= high as f64 * 1.02,
            "{label}: {got} B outside {low}–{high} B ± 2%"
        );
        // The totals hold the stream, and no more than the kernel saw on B's veth.
        let rx = u(&t["rx_bytes"]);
        assert!(rx >= got && rx as f64 <= (kernel.rx_bytes - 14 * kernel.rx_packets) as f64 * 1.02);
    }
    client.until("done", 10 * SECOND);
    let log = read_log(&client.log);
    assert!(!log.contains(PW), "the password is in netmon's log");
}

/// A filter and a network for an SSH host become iftop's own `-f` and `-F` there, written by
/// netmon from the parsed expression: with `tcp and dst port 5201` only what B received on its
/// iperf3 port counts; with A's network, A's end is on the left.
#[test]
fn remote_filter_and_network_are_iftops_own() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = Remote::new(false);
    let _iperf = iperf3_server(&r.pair.ns_b, ADDR_B4);
    let config = r.config("netmon.toml", &r.known_hosts, "");
    let dev_b = r.pair.dev_b.clone();
    let plan = json!([
        {"op": "call", "label": "filtered", "tool": "get_interface_traffic",
         "args": {"host": "b-root", "iface": dev_b, "sample_seconds": 4,
                  "filter": "tcp and dst port 5201", "resolve_names": false}},
        {"op": "wait"},
        {"op": "call", "label": "network", "tool": "get_interface_traffic",
         "args": {"host": "b-root", "iface": dev_b, "sample_seconds": 4,
                  "networks": ["10.200.1.1/32"], "resolve_names": false}},
    ]);
    let mut client = r.client(&config, &plan);
    for label in ["filtered", "network"] {
        if label == "network" {
            // The first stream has ended: this window holds the second alone.
            client.until("waiting", 10 * SECOND);
            client.go();
        }
        client.until("progress", 30 * SECOND);
        // iftop reports at a tick after the window, and a tick needs a packet (bounded: 40
        // pings, 8 s).
        let mut ping = netmon_tests::Spawned(
            netmon_tests::in_ns(&r.pair.ns_a, "ping")
                .args(["-c", "40", "-i", "0.2", "-q", ADDR_B4])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("ping"),
        );
        // iftop ticks only on a packet that passes its filter, so the stream outlasts the
        // window (bounded by iperf3's -t).
        let report = iperf3_client(&r.pair.ns_a, &["-c", ADDR_B4, "-t", "7", "-b", "20M"]);
        let evs = client.until("result", 30 * SECOND);
        let _ = ping.0.kill();
        let res = structured(outcome(&evs, label));
        assert_eq!(res["success"], true, "{label}: {res:#}");
        let d = &res["data"];
        assert_eq!(d["source"], "ssh-iftop");
        assert!(
            d.get("interface_totals").is_none(),
            "iftop counts only what matched"
        );
        let notes = d["notes"].to_string();
        assert!(notes.contains("iftop applied"), "{notes}");
        let conns = d["top_connections"].as_array().unwrap();
        let port = u(&report["start"]["connected"][0]["local_port"]);
        eprintln!("{label}: {conns:#?}");
        if label == "filtered" {
            assert_eq!(d["filter"], "tcp and dst port 5201");
            assert!(!conns.is_empty());
            for c in conns {
                assert_eq!(
                    (&c["local_addr"], &c["local_port"]),
                    (&json!(ADDR_B4), &json!(5201)),
                    "{c}"
                );
                assert_eq!(u(&c["tx_bytes"]), 0, "B's packets leave from 5201: {c}");
            }
            let stream = conns
                .iter()
                .find(|c| c["remote_port"] == port)
                .expect("stream");
            assert!(
                u(&stream["rx_bytes"]) > 5_000_000,
                "4 s of 20 Mbit/s: {stream}"
            );
            assert_eq!(u(&d["total_stats"]["tx_bytes"]), 0);
        } else {
            assert_eq!(d["networks"], json!(["10.200.1.1/32"]));
            for c in conns {
                assert_eq!(c["local_addr"], ADDR_A4, "A's network on the left: {c}");
            }
            let stream = conns
                .iter()
                .find(|c| c["local_port"] == port && c["remote_port"] == 5201)
                .expect("stream");
            assert!(
                u(&stream["tx_bytes"]) > 5_000_000,
                "leaving A's network: {stream}"
            );
        }
    }
    client.until("done", 10 * SECOND);
}

fn events_last(evs: &[Value]) -> &Value {
    evs.last().expect("events")
}

/// Every failure against the real server, each a tool error that says what to do, within its
/// time bound, with the password in no log and no message.
#[test]
fn remote_errors_against_real_sshd() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = Remote::new(true);
    let dev_b = r.pair.dev_b.clone();
    let config = r.config("netmon.toml", &r.known_hosts, "");
    let t = |label: &str, args: Value| json!({"op": "call", "label": label, "tool": "get_interface_traffic", "args": args});
    let wrong_pw = "Wr0ng-pw-77aa";
    let plan = json!([
        t("wrong-password", json!({"host": "b-pw", "iface": dev_b, "password": wrong_pw, "sample_seconds": 3})),
        t("no-iftop", json!({"host": "b-no-iftop", "iface": dev_b, "sample_seconds": 3})),
        t("no-sudo", json!({"host": "b-nosudo", "iface": dev_b, "sample_seconds": 3})),
        t("unknown-iface", json!({"host": "b-root", "iface": "nosuch0", "sample_seconds": 3})),
        t("idle", json!({"host": "b-root", "iface": "lo", "sample_seconds": 3})),
        t("flood", json!({"host": "b-flood", "iface": dev_b, "sample_seconds": 3})),
        t("unreachable", json!({"host": "ghost", "iface": "eth0", "sample_seconds": 3})),
        t("unlisted", json!({"host": "10.200.1.3", "iface": "eth0", "password": PW})),
        {"op": "call", "label": "list-unlisted", "tool": "list_network_interfaces", "args": {"host": "10.200.1.3"}},
    ]);
    let client = r.client(&config, &plan);
    let evs = client.until("done", 120 * SECOND);
    let expect: &[(&str, &str)] = &[
        (
            "wrong-password",
            "login as nmtest-pw on 10.200.1.2 by password failed",
        ),
        (
            "no-iftop",
            "iftop is not installed on b-no-iftop: install it there",
        ),
        (
            "no-sudo",
            "user nmtest-nosudo on b-nosudo may not capture with iftop",
        ),
        (
            "unknown-iface",
            "interface \"nosuch0\" does not exist on b-root; interfaces there: lo, ",
        ),
        ("unreachable", "no SSH login to 10.200.1.99:22 within 3 s"),
        (
            "idle",
            "printed no table for lo within 8 s of starting a 3 s window",
        ),
        (
            "flood",
            "the command printed more than 4194304 bytes on stdout",
        ),
        ("unlisted", "is not one netmon may reach"),
        (
            "list-unlisted",
            "add it there, or set allow_unlisted_hosts = true",
        ),
    ];
    for (label, want) in expect {
        let s = structured(outcome(&evs, label));
        let msg = s["message"].as_str().unwrap();
        eprintln!("{label}: {msg}");
        assert_eq!(s["success"], false, "{label}");
        assert!(msg.contains(want), "{label}: {msg:?} lacks {want:?}");
        assert!(
            !msg.contains(PW) && !msg.contains(wrong_pw),
            "{label}: password in {msg}"
        );
    }
    let unknown = structured(outcome(&evs, "unknown-iface"));
    assert!(unknown["message"].as_str().unwrap().contains(&dev_b));
    let unreachable = outcome(&evs, "unreachable")["elapsed"].as_f64().unwrap();
    assert!(
        unreachable < 5.0,
        "unreachable took {unreachable} s (bound 3 s)"
    );
    // An idle interface: iftop never reaches its report; the call says so within its bound
    // (window + 5 s, and the login) instead of answering "0 B".
    let took = outcome(&evs, "idle")["elapsed"].as_f64().unwrap();
    eprintln!("idle: refused in {took:.2} s for a 3 s window");
    assert!(took < 3.0 + 5.0 + 2.0 + 3.0, "idle took {took} s");
    // The flooding host is cut off at the bound, long before its window would end.
    let took = outcome(&evs, "flood")["elapsed"].as_f64().unwrap();
    eprintln!("flood: cut off after {took:.2} s");
    assert!(took < 3.0 + 5.0, "flood took {took} s");
    let log = read_log(&client.log);
    for secret in [PW, wrong_pw] {
        assert!(!log.contains(secret), "a password is in netmon's log");
        assert!(
            !evs.iter().any(|e| e.to_string().contains(secret)),
            "a password in an event"
        );
    }

    // Host keys: unknown (strict), changed (names the line), and accept-new recording it.
    let empty = r.dir.path("known_hosts_empty");
    std::fs::write(&empty, "").unwrap();
    let (_, other) = keypair(&r.dir, "other_ed25519");
    let other = other
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let changed = r.dir.path("known_hosts_changed");
    std::fs::write(&changed, format!("# one\n# two\n{ADDR_B4} {other}\n")).unwrap();
    let accept = r.dir.path("known_hosts_accept");
    std::fs::write(&accept, "").unwrap();
    let list = json!([{"op": "call", "label": "l", "tool": "list_network_interfaces", "args": {"host": "b-root"}}]);
    for (name, kh, extra, want) in [
        ("strict.toml", &empty, "", "is not in"),
        ("changed.toml", &changed, "", "line 3"),
        (
            "accept.toml",
            &accept,
            "host_key_policy = \"accept-new\"",
            "",
        ),
    ] {
        let cfg = r.config(name, kh, extra);
        let c = r.client(&cfg, &list);
        let evs = c.until("done", 30 * SECOND);
        let s = structured(outcome(&evs, "l"));
        let msg = s["message"].as_str().unwrap();
        eprintln!("{name}: {msg}");
        if want.is_empty() {
            assert_eq!(s["success"], true, "{msg}");
            let recorded = std::fs::read_to_string(kh).unwrap();
            let key = r.sshd.host_key.split_whitespace().nth(1).unwrap();
            assert!(
                recorded.contains(key),
                "accept-new did not record the key: {recorded}"
            );
        } else {
            assert_eq!(s["success"], false);
            assert!(msg.contains(want), "{msg}");
        }
    }
}

fn iftop_running(dev: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", &format!("iftop -t -s 20 .* -i {dev}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A remote call cancelled mid-sample closes the channel, and iftop stops on the remote host
/// at once instead of running out its window.
#[test]
fn cancelled_remote_call_stops_iftop_there() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = Remote::new(false);
    let config = r.config("netmon.toml", &r.known_hosts, "");
    let dev_b = r.pair.dev_b.clone();
    let plan = json!([
        {"op": "cancel", "label": "long", "after": 2, "tool": "get_interface_traffic",
         "args": {"host": "b-root", "iface": dev_b, "sample_seconds": 20}},
        {"op": "wait"},
        {"op": "call", "label": "after", "tool": "list_network_interfaces", "args": {"host": "b-root"}},
    ]);
    let mut client = r.client(&config, &plan);
    client.until("progress", 30 * SECOND);
    assert!(
        iftop_running(&dev_b),
        "iftop is not running on B during the call"
    );
    client.until("cancelled", 30 * SECOND);
    let start = std::time::Instant::now();
    while iftop_running(&dev_b) {
        assert!(
            start.elapsed() < 3 * SECOND,
            "iftop still runs on B 3 s after the cancel"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("iftop on B stopped {:?} after the cancel", start.elapsed());
    client.until("waiting", 10 * SECOND);
    client.go();
    let evs = client.until("done", 30 * SECOND);
    assert_eq!(structured(outcome(&evs, "after"))["success"], true);
}

/// Login through a real ssh-agent holding the key, and an unlisted host reached with the
/// call's own username and password once the config allows unlisted hosts.
#[test]
fn agent_login_and_allowed_unlisted_host() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = Remote::new(false);
    let sock = r.dir.path("agent.sock");
    let mut agent = netmon_tests::Spawned(
        std::process::Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent"),
    );
    let start = std::time::Instant::now();
    while !sock.exists() {
        assert!(start.elapsed() < 5 * SECOND, "ssh-agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    netmon_tests::sh(
        std::process::Command::new("ssh-add")
            .arg(&r.root_key)
            .env("SSH_AUTH_SOCK", &sock),
    );
    let kh = r.known_hosts.display().to_string();
    let agent_cfg = r.dir.path("agent.toml");
    std::fs::write(
        &agent_cfg,
        format!(
            "known_hosts = \"{kh}\"\n[[remote_hosts]]\nname = \"b-agent\"\nhost = \"{ADDR_B4}\"\nusername = \"root\"\nauth = \"agent\"\n"
        ),
    )
    .unwrap();
    let unlisted_cfg = r.dir.path("unlisted.toml");
    std::fs::write(
        &unlisted_cfg,
        format!("known_hosts = \"{kh}\"\nallow_unlisted_hosts = true\n"),
    )
    .unwrap();

    let list = |label: &str, args: Value| json!([{"op": "call", "label": label, "tool": "list_network_interfaces", "args": args}]);
    let pidfile = r.dir.path("agent-pid");
    let wrapper = format!(
        "env SSH_AUTH_SOCK={} NETMON_CONFIG={}",
        sock.display(),
        agent_cfg.display()
    );
    let c = PyClient::stdio_under(
        &r.pair.ns_a,
        &pidfile,
        &wrapper,
        Handshake::Initialize,
        &list("agent", json!({"host": "b-agent"})),
    );
    let evs = c.until("done", 30 * SECOND);
    let s = structured(outcome(&evs, "agent"));
    assert_eq!(s["success"], true, "{s:#}");
    assert_eq!(s["data"]["host"], "b-agent");
    assert_eq!(s["data"]["interfaces"], json!(["lo", r.pair.dev_b]));

    let c = r.client(
        &unlisted_cfg,
        &json!([
            {"op": "call", "label": "pw", "tool": "list_network_interfaces",
             "args": {"host": ADDR_B4, "username": PW_USER, "password": PW}},
            {"op": "call", "label": "no-pw", "tool": "list_network_interfaces",
             "args": {"host": ADDR_B4, "username": PW_USER}},
        ]),
    );
    let evs = c.until("done", 30 * SECOND);
    let s = structured(outcome(&evs, "pw"));
    assert_eq!(s["success"], true, "{s:#}");
    assert_eq!(s["data"]["host"], ADDR_B4);
    let s = structured(outcome(&evs, "no-pw"));
    assert!(
        s["message"].as_str().unwrap().contains("no way to log in"),
        "{s}"
    );
    assert!(!read_log(&c.log).contains(PW));
    let _ = agent.0.kill();
}

/// The sudoers rule README documents is the one the tests install, and it lets the user run
/// iftop's text mode as root and nothing else (`sudo -l COMMAND` asks sudo whether the rule
/// allows COMMAND, without running it).
#[test]
fn the_documented_sudo_rule_allows_iftop_text_mode_only() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    ensure_users();
    let installed = std::fs::read_to_string("/etc/sudoers.d/netmon-test").unwrap();
    assert_eq!(installed.trim_end(), documented_sudo_rule(PW_USER));
    let allowed = |cmd: &str| {
        std::process::Command::new("runuser")
            .args([
                "-u",
                PW_USER,
                "--",
                "sh",
                "-c",
                &format!("sudo -n -l {cmd}"),
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    for ok in [
        "/usr/sbin/iftop -t -s 3 -n -N -P -B -L 500 -i eth0",
        "/usr/sbin/iftop -t -s 3 -n -N -P -B -L 500 -f 'udp and port 53' -F 10.0.0.0/8 -i eth0",
    ] {
        assert!(allowed(ok), "the rule must allow {ok}");
    }
    for refused in [
        "/usr/sbin/iftop -i eth0",
        "/usr/sbin/iftop",
        "/usr/bin/stdbuf -oL /usr/sbin/iftop -t",
        "/usr/bin/stdbuf -oL id",
        "/bin/sh -c id",
        "/usr/bin/id",
        "/usr/bin/tee /etc/passwd",
        "-u nobody /usr/sbin/iftop -t -i eth0",
    ] {
        assert!(!allowed(refused), "the rule must not allow {refused}");
    }
}
