//! iftop's filters and names, end to end: `-f` and `-F` on real traffic (iperf3 TCP and UDP and
//! a ping) checked against iperf3 and the kernel's counters; host names from a real DNS server
//! (dnsmasq, in the peer namespace) and the bound on waiting for one that stopped answering;
//! both through the Python MCP client; and every filter netmon writes for iftop accepted by the
//! real iftop's libpcap.

use netmon_tests::mcp::{Handshake, PyClient, last, structured};
use netmon_tests::truth;
use netmon_tests::{
    ADDR_A4, ADDR_A6, ADDR_B4, ADDR_B6, Counters, Spawned, TempFile, VethPair, finish_json, in_ns,
    iperf3_client, iperf3_server_on, sh, spawn_netmon, u, wait_attached,
};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const SECOND: Duration = Duration::from_secs(1);

fn rows(d: &Value) -> &Vec<Value> {
    d["top_connections"].as_array().expect("top_connections")
}

/// The interface's unfiltered totals must be the kernel's, exactly, as `total_stats` is without
/// a filter.
fn check_interface_totals(d: &Value, kernel: Counters) {
    let whole = json!({ "total_stats": d["interface_totals"].clone() });
    assert!(
        whole["total_stats"].is_object(),
        "no interface_totals: {d:#}"
    );
    truth::check_totals(&whole, kernel, false);
}

/// Two netmons at once on A's end of the link, one with `-f "udp and dst port 5201"` and one
/// with `-F <B>/32`, while an iperf3 UDP stream goes to B's port 5201, a TCP stream to 5202 and a
/// ping to B. The filtered one shows the UDP stream alone, with totals equal to its bytes as
/// iperf3 counted them; the other shows every connection with B on the left.
#[test]
fn a_filter_keeps_only_the_udp_stream_and_a_network_turns_rows_to_face_it() {
    let _s = serial();
    let pair = VethPair::new(false);
    let _udp_server = iperf3_server_on(&pair.ns_b, ADDR_B4, 5201);
    let _tcp_server = iperf3_server_on(&pair.ns_b, ADDR_B4, 5202);
    let before = pair.counters_a();
    let spawn = |extra: &[&str]| {
        let mut a = vec![
            "traffic",
            "-i",
            pair.dev_a.as_str(),
            "-s",
            "8",
            "--json",
            "-P",
        ];
        a.extend(["-L", "100", "-n"]);
        a.extend_from_slice(extra);
        spawn_netmon(&pair.ns_a, &a)
    };
    let mut filtered = spawn(&["-f", "udp and dst port 5201"]);
    let filtered_err = wait_attached(&mut filtered);
    let mut network = spawn(&["-F", "10.200.1.2/32"]);
    let network_err = wait_attached(&mut network);

    let ns_a = pair.ns_a.clone();
    let tcp = std::thread::spawn(move || {
        iperf3_client(
            &ns_a,
            &["-c", ADDR_B4, "-p", "5202", "-n", "4M", "-b", "40M"],
        )
    });
    let udp = iperf3_client(
        &pair.ns_a,
        &[
            "-c", ADDR_B4, "-p", "5201", "-u", "-l", "1400", "-b", "20M", "-n", "2M",
        ],
    );
    sh(in_ns(&pair.ns_a, "ping").args(["-q", "-c", "3", "-i", "0.2", ADDR_B4]));
    let tcp = tcp.join().expect("tcp iperf3");
    let f = finish_json(filtered, filtered_err);
    let n = finish_json(network, network_err);
    let kernel = pair.counters_a().since(&before);

    // -f: the UDP stream's sent half, alone.
    let fd = &f["data"];
    assert_eq!(f["success"], true, "{f:#}");
    assert_eq!(fd["filter"], "udp and dst port 5201");
    let udp_port = u(&udp["start"]["connected"][0]["local_port"]);
    let stream = &udp["end"]["streams"][0]["udp"];
    let (payload, datagrams) = (u(&stream["bytes"]), u(&stream["packets"]));
    let r = rows(fd);
    assert_eq!(r.len(), 1, "only the UDP stream: {r:#?}");
    assert_eq!(u(&fd["connections_seen"]), 1);
    let c = &r[0];
    assert_eq!(
        (
            &c["protocol"],
            &c["local_port"],
            &c["remote_addr"],
            &c["remote_port"]
        ),
        (
            &json!("udp"),
            &json!(udp_port),
            &json!(ADDR_B4),
            &json!(5201)
        )
    );
    let t = &fd["total_stats"];
    let (tx, tx_packets) = (u(&t["tx_bytes"]), u(&t["tx_packets"]));
    assert_eq!((tx, tx_packets), (u(&c["tx_bytes"]), u(&c["tx_packets"])));
    assert_eq!(
        (u(&t["rx_bytes"]), u(&t["rx_packets"])),
        (0, 0),
        "replies come from port 5201"
    );
    // Exact: each datagram is its payload plus 28 bytes of IPv4 and UDP headers, and iperf3
    // opens the stream with one 4-byte datagram of its own that it does not count.
    let opening = tx_packets - datagrams;
    assert!(
        opening <= 1,
        "{tx_packets} packets for {datagrams} datagrams"
    );
    assert_eq!(tx, payload + 28 * datagrams + 32 * opening);
    eprintln!(
        "-f: {tx} B in {tx_packets} packets = iperf3's {payload} B in {datagrams} datagrams + headers (+{opening} opening datagram); interface {} B",
        u(&fd["interface_totals"]["tx_bytes"]) + u(&fd["interface_totals"]["rx_bytes"])
    );
    check_interface_totals(fd, kernel);

    // -F: every IPv4 row has B on the left; B "receives" what A sent.
    let nd = &n["data"];
    assert_eq!(n["success"], true, "{n:#}");
    assert_eq!(nd["networks"], json!(["10.200.1.2/32"]));
    let v4: Vec<&Value> = rows(nd)
        .iter()
        .filter(|c| !c["local_addr"].as_str().unwrap().contains(':'))
        .collect();
    assert!(
        v4.len() >= 5,
        "UDP data + control, TCP data + control, ping: {v4:#?}"
    );
    for c in &v4 {
        assert_eq!(
            (&c["local_addr"], &c["remote_addr"]),
            (&json!(ADDR_B4), &json!(ADDR_A4)),
            "{c}"
        );
    }
    let find = |port: u64, remote: u64| {
        v4.iter()
            .find(|c| c["local_port"] == port && c["remote_port"] == remote)
            .unwrap_or_else(|| panic!("no row {port} <- {remote}: {v4:#?}"))
    };
    let u_row = find(5201, udp_port);
    assert_eq!(
        (u(&u_row["rx_bytes"]), u(&u_row["rx_packets"])),
        (tx, tx_packets),
        "the same datagrams, now received by the network"
    );
    let tcp_port = u(&tcp["start"]["connected"][0]["local_port"]);
    let t_row = find(5202, tcp_port);
    assert!(u(&t_row["rx_bytes"]) > 4 << 20, "{t_row}");
    let ping = v4
        .iter()
        .find(|c| c["protocol"] == "icmp")
        .expect("ping row");
    assert_eq!((u(&ping["rx_packets"]), u(&ping["tx_packets"])), (3, 3));
    // Nothing crossing was dropped, and every byte is in a row.
    let nt = &nd["total_stats"];
    let ni = &nd["interface_totals"];
    assert_eq!(
        u(&nt["rx_bytes"]) + u(&nt["tx_bytes"]),
        u(&ni["rx_bytes"]) + u(&ni["tx_bytes"])
    );
    truth::check_partition(&json!({
        "total_stats": nt.clone(),
        "top_connections": nd["top_connections"].clone(),
        "connections_seen": nd["connections_seen"].clone(),
    }));
    check_interface_totals(nd, kernel);
}

/// dnsmasq in B, answering for this test's addresses only.
fn dnsmasq(pair: &VethPair) -> Spawned {
    let dns = Spawned(
        in_ns(&pair.ns_b, "dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=10.200.1.2",
                "--port=53",
                "--user=root",
                "--pid-file=",
                "--log-facility=-",
                "--log-queries",
                &format!("--host-record=ay.netmon.test,{ADDR_A4},{ADDR_A6}"),
                &format!("--host-record=bee.netmon.test,{ADDR_B4},{ADDR_B6}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base)"),
    );
    let deadline = Instant::now() + 10 * SECOND;
    while Instant::now() < deadline {
        let out = sh(in_ns(&pair.ns_b, "ss").args(["-Hlun", "sport = :53"]));
        if !out.stdout.is_empty() {
            return dns;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("dnsmasq did not listen within 10 s");
}

/// `netmon traffic` in A while B is pinged over IPv4 and IPv6 and a UDP stream goes to B's
/// 5201; returns the result and how long netmon took from its window's start to its exit,
/// beyond the window.
fn sample_with_names(pair: &VethPair, extra: &[&str]) -> (Value, Duration) {
    let mut args = vec!["traffic", "-i", &pair.dev_a, "-s", "3", "--json", "-P"];
    args.extend_from_slice(extra);
    let mut netmon = spawn_netmon(&pair.ns_a, &args);
    let err = wait_attached(&mut netmon);
    let started = Instant::now();
    sh(in_ns(&pair.ns_a, "ping").args(["-q", "-c", "3", "-i", "0.2", ADDR_B4]));
    sh(in_ns(&pair.ns_a, "ping").args(["-q", "-c", "3", "-i", "0.2", ADDR_B6]));
    iperf3_client(
        &pair.ns_a,
        &["-c", ADDR_B4, "-u", "-l", "1000", "-b", "1M", "-n", "100K"],
    );
    let v = finish_json(netmon, err);
    let took = started.elapsed();
    assert_eq!(v["success"], true, "{v:#}");
    let window =
        Duration::from_secs_f64(v["data"]["total_stats"]["window_seconds"].as_f64().unwrap());
    (v, took.saturating_sub(window))
}

fn row<'a>(d: &'a Value, remote: &str, protocol: &str) -> &'a Value {
    rows(d)
        .iter()
        .find(|c| c["remote_addr"] == remote && c["protocol"] == protocol)
        .unwrap_or_else(|| panic!("no {protocol} row to {remote}: {d:#}"))
}

/// Host names from a real DNS server (dnsmasq in B, asked by netmon in A through
/// /etc/netns/<A>/resolv.conf), /etc/hosts before DNS, service names per protocol from
/// /etc/services; then, with the server stopped (SIGSTOP: it holds its socket and never
/// answers), the sample still returns within its window + 0.5 s, with numbers.
#[test]
fn names_from_a_real_dns_server_and_the_bound_when_it_stops() {
    let _s = serial();
    let pair = VethPair::new(false);
    let _iperf = iperf3_server_on(&pair.ns_b, ADDR_B4, 5201);
    let dns = dnsmasq(&pair);
    pair.etc(&pair.ns_a, "resolv.conf", "nameserver 10.200.1.2\n");
    pair.etc(
        &pair.ns_a,
        "hosts",
        &format!("127.0.0.1 localhost\n{ADDR_B6} bee6-from-hosts bee6\n"),
    );
    pair.etc(&pair.ns_a, "services", "netmon-test 5201/udp\n");

    // Without names first: the cost of a sample alone, side by side.
    let (plain, plain_extra) = sample_with_names(&pair, &["-n", "-N"]);
    for c in rows(&plain["data"]) {
        assert!(
            c["remote_name"].is_null() && c["remote_service"].is_null(),
            "{c}"
        );
    }

    let (named, named_extra) = sample_with_names(&pair, &[]);
    let d = &named["data"];
    let v4 = row(d, ADDR_B4, "icmp");
    assert_eq!(v4["local_name"], "ay.netmon.test", "{v4}");
    assert_eq!(v4["remote_name"], "bee.netmon.test", "{v4}");
    let v6 = row(d, ADDR_B6, "icmpv6");
    assert_eq!(
        v6["local_name"], "ay.netmon.test",
        "PTR for the IPv6 address: {v6}"
    );
    assert_eq!(
        v6["remote_name"], "bee6-from-hosts",
        "/etc/hosts comes first: {v6}"
    );
    let udp = row(d, ADDR_B4, "udp");
    assert_eq!(
        udp["remote_service"], "netmon-test",
        "5201/udp is named: {udp}"
    );
    let control = row(d, ADDR_B4, "tcp");
    assert_eq!(control["remote_port"], 5201);
    assert!(
        control["remote_service"].is_null(),
        "5201/tcp is not: {control}"
    );
    assert_eq!(
        udp["remote_addr"], ADDR_B4,
        "the numbers stay beside the names"
    );
    let notes = d["notes"].to_string();
    assert!(
        notes.contains("by reverse DNS") && notes.contains("10.200.1.2"),
        "{notes}"
    );
    assert!(notes.contains("traffic themselves"), "{notes}");

    // The server stops answering: a new netmon (nothing cached) waits at most 0.5 s for it.
    let pid = dns.pid().to_string();
    sh(std::process::Command::new("kill").args(["-STOP", &pid]));
    let (stopped, stopped_extra) = sample_with_names(&pair, &[]);
    sh(std::process::Command::new("kill").args(["-CONT", &pid]));
    drop(dns);
    let d = &stopped["data"];
    let v4 = row(d, ADDR_B4, "icmp");
    assert!(
        v4["remote_name"].is_null() && v4["local_name"].is_null(),
        "{v4}"
    );
    assert_eq!(row(d, ADDR_B6, "icmpv6")["remote_name"], "bee6-from-hosts");
    let notes = d["notes"].to_string();
    assert!(notes.contains("not answered within 500 ms"), "{notes}");
    eprintln!(
        "after the window: {plain_extra:?} without names, {named_extra:?} with dnsmasq answering, {stopped_extra:?} with it stopped"
    );
    // The bound is 0.5 s on top of what a sample costs without names, measured side by side;
    // 0.15 s more allows for the scheduling of two processes on two cores.
    assert!(
        stopped_extra <= plain_extra + Duration::from_millis(650),
        "{stopped_extra:?} beyond the window with the DNS server stopped, {plain_extra:?} without names"
    );
}

/// Both through the Python MCP client: `filter` and `resolve_names`, and a filter netmon does
/// not do, refused with the word.
#[test]
fn mcp_filter_and_resolve_names() {
    let _s = serial();
    let pair = VethPair::new(false);
    let _iperf = iperf3_server_on(&pair.ns_b, ADDR_B4, 5201);
    let dns = dnsmasq(&pair);
    pair.etc(&pair.ns_a, "resolv.conf", "nameserver 10.200.1.2\n");
    let pidfile = TempFile::new("nmpid", "");
    let plan = json!([
        {"op": "call", "label": "bad", "tool": "get_interface_traffic",
         "args": {"iface": pair.dev_a, "filter": "icmp or ether host 00:11:22:33:44:55"}},
        {"op": "call", "label": "icmp", "tool": "get_interface_traffic",
         "args": {"iface": pair.dev_a, "sample_seconds": 3, "filter": "icmp", "resolve_names": false}},
        {"op": "call", "label": "named", "tool": "get_interface_traffic",
         "args": {"iface": pair.dev_a, "sample_seconds": 3}},
    ]);
    let client = PyClient::stdio(&pair.ns_a, &pidfile.0, Handshake::Initialize, &plan);
    let bad = client.until("result", 30 * SECOND);
    let bad = structured(last(&bad, "result"));
    assert_eq!(bad["success"], false, "{bad:#}");
    let msg = bad["message"].as_str().unwrap();
    assert!(
        msg.contains("filter: ") && msg.contains("\"ether\" (word 3"),
        "{msg}"
    );

    for label in ["icmp", "named"] {
        client.until("progress", 30 * SECOND);
        let before = pair.counters_a();
        sh(in_ns(&pair.ns_a, "ping").args(["-q", "-c", "4", "-i", "0.2", ADDR_B4]));
        iperf3_client(&pair.ns_a, &["-c", ADDR_B4, "-n", "1M"]);
        let evs = client.until("result", 30 * SECOND);
        let kernel = pair.counters_a().since(&before);
        let r = structured(last(&evs, "result"));
        assert_eq!(r["success"], true, "{label}: {r:#}");
        let d = &r["data"];
        if label == "icmp" {
            assert_eq!(d["filter"], "icmp");
            let rs = rows(d);
            assert_eq!(rs.len(), 1, "{rs:#?}");
            assert_eq!(rs[0]["protocol"], "icmp");
            assert_eq!((u(&rs[0]["tx_packets"]), u(&rs[0]["rx_packets"])), (4, 4));
            assert!(rs[0]["remote_name"].is_null(), "resolve_names: false");
            assert_eq!(u(&d["total_stats"]["tx_bytes"]), u(&rs[0]["tx_bytes"]));
            // The window held the pings and iperf3 and nothing else: the kernel's counters.
            check_interface_totals(d, kernel);
            assert!(
                !d["notes"].to_string().contains("reverse DNS"),
                "{}",
                d["notes"]
            );
        } else {
            assert!(
                d.get("filter").is_none() && d.get("interface_totals").is_none(),
                "{d:#}"
            );
            let ping = row(d, ADDR_B4, "icmp");
            assert_eq!(ping["remote_name"], "bee.netmon.test", "{ping}");
        }
    }
    client.until("done", 10 * SECOND);
    drop(dns);
}

/// Every filter shape netmon passes to a remote iftop, compiled by the real iftop's libpcap:
/// iftop starts listening with it (a filter libpcap refuses ends iftop at once with its error).
#[test]
fn iftop_accepts_the_filters_netmon_writes_for_it() {
    let _s = serial();
    let pair = VethPair::new(false);
    let written = [
        "dst host 1.2.3.4",
        "src port 22",
        "dst portrange 22-23",
        "net 10.0.0.0/8 and not port 53",
        "udp and dst port 5201",
        "src and dst net fd00::/8 or icmp6",
        "not (tcp or udp) and (ip proto 47 or ip6 proto 47)",
        "proto 47",
        "sctp or portrange 1000-2000 and src or dst host 10.200.1.2",
    ];
    let mut running = Vec::new();
    for text in written {
        let pcap = netmon::filter::parse(text).unwrap().unwrap().to_pcap();
        let child = Spawned(
            in_ns(&pair.ns_a, "iftop")
                .args(["-t", "-s", "30", "-n", "-N", "-i", &pair.dev_a, "-f", &pcap])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("iftop"),
        );
        running.push((pcap, child));
    }
    // A refused filter ends iftop within milliseconds; give them all 2 s.
    std::thread::sleep(2 * SECOND);
    for (pcap, mut child) in running {
        if let Some(status) = child.0.try_wait().expect("wait") {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("iftop refused {pcap:?} ({status}): {err}");
        }
        eprintln!("iftop accepted: {pcap}");
    }
}
