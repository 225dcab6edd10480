//! netmon's MCP server driven by clients no one here wrote: the Python `mcp` SDK (over stdio and
//! Streamable HTTP, with the `initialize` and the `server/discover` handshakes) and the MCP
//! Inspector CLI. Every number in a result is checked against the kernel's counters and iperf3's
//! report of the same traffic, on a veth pair between two namespaces the test creates.

use netmon_tests::mcp::{
    Handshake, HttpServer, PyClient, check_interfaces, check_progress, check_tools, curl,
    inspector, iperf3, last, read_log, structured,
};
use netmon_tests::truth::{self, Case};
use netmon_tests::{
    ADDR_A4, ADDR_A6, ADDR_B4, ADDR_B6, TempFile, VethPair, iperf3_server, sh, tcx_programs, u,
    wait_detached,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One test at a time: iperf3 runs and attachment counts must not overlap with another test's.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const SECOND: Duration = Duration::from_secs(1);
const TOKEN: &str = "3f9c0a5e7b1d4c2a8e6f0b9d1c3a5e7f";

/// The Python SDK over stdio, `initialize` (2025-11-25): schemas, interfaces, and a TCP sample
/// checked against the kernel and iperf3, with progress notifications.
#[test]
fn python_stdio_initialize_tcp4() {
    let _s = serial();
    let case = Case {
        v6: false,
        udp: false,
        parallel: 1,
        offloads: false,
    };
    let pair = VethPair::new(case.offloads);
    let _server = iperf3_server(&pair.ns_b, ADDR_B4);
    let before = pair.counters_a();
    let pidfile = TempFile::new("nmpid", "");
    let plan = json!([
        {"op": "list_tools"},
        {"op": "call", "label": "ifaces", "tool": "list_network_interfaces", "args": {}},
        {"op": "call", "label": "traffic", "tool": "get_interface_traffic",
         "args": {"iface": pair.dev_a, "sample_seconds": 4}},
    ]);
    let client = PyClient::stdio(&pair.ns_a, &pidfile.0, Handshake::Initialize, &plan);
    let connected = client.until("connected", 30 * SECOND);
    let c = last(&connected, "connected");
    assert_eq!(c["protocol_version"], "2025-11-25");
    assert_eq!(c["server"]["name"], "netmon");
    assert!(
        c["instructions"]
            .as_str()
            .unwrap()
            .contains("first call list_network_interfaces")
    );
    check_tools(&last(&client.until("tools", 10 * SECOND), "tools")["tools"]);
    check_interfaces(
        structured(last(&client.until("result", 10 * SECOND), "result")),
        &pair,
    );

    let first = client.next(10 * SECOND);
    assert_eq!(
        (&first["event"], &first["progress"]),
        (&json!("progress"), &json!(0.0))
    );
    let segments = truth::Segments::read(&pair.ns_a);
    let report = iperf3(&pair.ns_a, &case.iperf3_args(ADDR_B4));
    let segments = truth::Segments::read(&pair.ns_a).since(&segments);
    let mut events = vec![first];
    events.extend(client.until("result", 20 * SECOND));
    let kernel = pair.counters_a().since(&before);
    check_progress(&events, "traffic", 4.0);
    let result = structured(last(&events, "result"));
    eprintln!("stdio result: {result:#}");
    truth::check(
        result,
        &pair.dev_a,
        kernel,
        segments,
        &report,
        case,
        ADDR_A4,
        ADDR_B4,
    );
    let d = &result["data"];
    assert_eq!(
        (&d["top"], &d["sort"], &d["group_by"]),
        (&json!(10), &json!("rx"), &json!("connection"))
    );
    let rx: Vec<u64> = d["top_connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| u(&c["rx_bytes"]))
        .collect();
    assert!(
        rx.windows(2).all(|w| w[0] >= w[1]),
        "not by receive bytes: {rx:?}"
    );
    let w = result["data"]["total_stats"]["window_seconds"]
        .as_f64()
        .unwrap();
    assert!((4.0..4.5).contains(&w), "window {w} s for sample_seconds 4");
    client.until("done", 10 * SECOND);
    assert!(client.wait_exit(10 * SECOND).success());
}

/// The Python SDK over Streamable HTTP with a bearer token, `server/discover` (2026-07-28): a UDP
/// IPv6 sample with two streams, offloads on.
#[test]
fn python_http_discover_udp6() {
    let _s = serial();
    let case = Case {
        v6: true,
        udp: true,
        parallel: 2,
        offloads: true,
    };
    let pair = VethPair::new(case.offloads);
    let _server = iperf3_server(&pair.ns_b, ADDR_B6);
    let token = TempFile::new("nmtok", TOKEN);
    let server = HttpServer::start(
        &pair.ns_a,
        &[
            "--http",
            "127.0.0.1:0",
            "--token-file",
            token.0.to_str().unwrap(),
        ],
        &[],
    );
    let before = pair.counters_a();
    let plan = json!([
        {"op": "list_tools"},
        {"op": "call", "label": "traffic", "tool": "get_interface_traffic",
         "args": {"iface": pair.dev_a, "sample_seconds": 3}},
    ]);
    let client = PyClient::http(
        &pair.ns_a,
        &server.url,
        Some(TOKEN),
        Handshake::Discover,
        &plan,
    );
    let c = client.until("connected", 30 * SECOND);
    assert_eq!(last(&c, "connected")["protocol_version"], "2026-07-28");
    check_tools(&last(&client.until("tools", 10 * SECOND), "tools")["tools"]);
    let first = client.next(10 * SECOND);
    assert_eq!(first["progress"], 0.0, "{first}");
    let segments = truth::Segments::read(&pair.ns_a);
    let report = iperf3(&pair.ns_a, &case.iperf3_args(ADDR_B6));
    let segments = truth::Segments::read(&pair.ns_a).since(&segments);
    let mut events = vec![first];
    events.extend(client.until("result", 20 * SECOND));
    let kernel = pair.counters_a().since(&before);
    check_progress(&events, "traffic", 3.0);
    let result = structured(last(&events, "result"));
    eprintln!("http result: {result:#}");
    truth::check(
        result,
        &pair.dev_a,
        kernel,
        segments,
        &report,
        case,
        ADDR_A6,
        ADDR_B6,
    );
    client.until("done", 10 * SECOND);
    let log = read_log(&server.log);
    assert!(
        !log.contains(TOKEN),
        "the token leaked into the log:\n{log}"
    );
}

/// Each bad argument is a tool error (`isError`, `success: false`) whose message says what to do,
/// and the server answers the next call.
fn bad_inputs(client: &PyClient, pair: &VethPair) {
    let expected: &[(&str, &str)] = &[
        ("missing-iface", "missing field `iface`"),
        ("metachar", "use only letters, digits"),
        ("too-long", "at most 15 bytes"),
        (
            "unknown-iface",
            "does not exist on localhost; interfaces there: lo, ",
        ),
        ("zero", "use 3–30 seconds"),
        ("two", "use 3–30 seconds"),
        ("thirty-one", "use 3–30 seconds"),
        ("negative", "use 3–30 seconds"),
        ("five", "sample_seconds: invalid type: string \"five\""),
        ("extra", "unknown field `colour`"),
        ("top-zero", "top: 0 is out of range: use 1–1000"),
        ("remote", "is not one netmon may reach"),
        ("list-extra", "unknown field `verbose`"),
    ];
    let events = client.until("done", 60 * SECOND);
    let outcome = |label: &str| {
        events
            .iter()
            .find(|e| e["label"] == label && (e["event"] == "result" || e["event"] == "exception"))
    };
    for (label, want) in expected {
        let ev = outcome(label).unwrap_or_else(|| panic!("no event for {label}: {events:#?}"));
        let s = structured(ev);
        assert_eq!(s["success"], false, "{label}: {s}");
        assert!(s.get("data").is_none(), "{label}: data on failure");
        let msg = s["message"].as_str().unwrap();
        assert!(msg.contains(want), "{label}: {msg:?} lacks {want:?}");
        eprintln!("{label}: {msg}");
    }
    let unknown = outcome("unknown-iface").unwrap();
    let msg = unknown["structured"]["message"].as_str().unwrap();
    assert!(msg.contains(&pair.dev_a), "{msg}");
    let tool = outcome("no-such-tool").unwrap();
    assert_eq!(
        tool["event"], "exception",
        "an unknown tool is a protocol error: {tool}"
    );
    eprintln!("no-such-tool: {}", tool["message"]);
    let ok = structured(outcome("after").unwrap());
    assert_eq!(ok["success"], true, "{ok}");
    let tools = last(&events, "tools");
    check_tools(&tools["tools"]);
}

fn bad_input_plan(dev: &str) -> Value {
    let t = |label: &str, args: Value| json!({"op": "call", "label": label, "tool": "get_interface_traffic", "args": args});
    json!([
        t("missing-iface", json!({})),
        t("metachar", json!({"iface": "eth0;reboot"})),
        t("too-long", json!({"iface": "abcdefghijklmnop"})),
        t("unknown-iface", json!({"iface": "nosuch0"})),
        t("zero", json!({"iface": dev, "sample_seconds": 0})),
        t("two", json!({"iface": dev, "sample_seconds": 2})),
        t("thirty-one", json!({"iface": dev, "sample_seconds": 31})),
        t("negative", json!({"iface": dev, "sample_seconds": -1})),
        t("five", json!({"iface": dev, "sample_seconds": "five"})),
        t("extra", json!({"iface": dev, "colour": "red"})),
        t("top-zero", json!({"iface": dev, "top": 0})),
        t("remote", json!({"iface": dev, "host": ADDR_B4})),
        {"op": "call", "label": "list-extra", "tool": "list_network_interfaces", "args": {"verbose": true}},
        {"op": "call", "label": "no-such-tool", "tool": "get_everything", "args": {}},
        t("after", json!({"iface": dev, "sample_seconds": 3})),
        {"op": "list_tools"},
    ])
}

#[test]
fn bad_inputs_over_stdio_discover() {
    let _s = serial();
    let pair = VethPair::new(false);
    let pidfile = TempFile::new("nmpid", "");
    let client = PyClient::stdio(
        &pair.ns_a,
        &pidfile.0,
        Handshake::Discover,
        &bad_input_plan(&pair.dev_a),
    );
    bad_inputs(&client, &pair);
}

#[test]
fn bad_inputs_over_http_initialize() {
    let _s = serial();
    let pair = VethPair::new(false);
    let server = HttpServer::start(&pair.ns_a, &["--http", "127.0.0.1:0"], &[]);
    let client = PyClient::http(
        &pair.ns_a,
        &server.url,
        None,
        Handshake::Initialize,
        &bad_input_plan(&pair.dev_a),
    );
    bad_inputs(&client, &pair);
}

/// 50 calls at once from 5 HTTP sessions, on two interfaces: one attachment per interface while
/// they run, none after, and every call answered for its own window.
#[test]
fn fifty_simultaneous_calls_share_one_attachment_per_interface() {
    let _s = serial();
    let pair = VethPair::new(false);
    let server = HttpServer::start(&pair.ns_a, &["--http", "127.0.0.1:0"], &[]);
    let clients: Vec<PyClient> = (0..5)
        .map(|i| {
            let calls: Vec<Value> = (0..10)
                .map(|j| {
                    let iface = if j % 2 == 0 {
                        pair.dev_a.as_str()
                    } else {
                        "lo"
                    };
                    json!({"tool": "get_interface_traffic", "label": format!("c{i}.{j}"),
                           "args": {"iface": iface, "sample_seconds": 3}})
                })
                .collect();
            let handshake = if i % 2 == 0 {
                Handshake::Initialize
            } else {
                Handshake::Discover
            };
            PyClient::http(
                &pair.ns_a,
                &server.url,
                None,
                handshake,
                &json!([{"op": "concurrent", "calls": calls}]),
            )
        })
        .collect();
    // Every session has started sampling: count the attachments now.
    let mut events: Vec<Vec<Value>> = clients
        .iter()
        .map(|c| c.until("progress", 30 * SECOND))
        .collect();
    let on_veth = tcx_programs(&pair.ns_a, &pair.dev_a);
    let on_lo = tcx_programs(&pair.ns_a, "lo");
    eprintln!("while sampling: {} {on_veth:?}, lo {on_lo:?}", pair.dev_a);
    for progs in [&on_veth, &on_lo] {
        let mut p = progs.clone();
        p.sort();
        assert_eq!(
            p,
            ["netmon_egress", "netmon_ingress"],
            "one attachment per interface"
        );
    }
    for (c, ev) in clients.iter().zip(events.iter_mut()) {
        ev.extend(c.until("done", 60 * SECOND));
    }
    let results: Vec<&Value> = events
        .iter()
        .flatten()
        .filter(|e| e["event"] == "result")
        .collect();
    assert_eq!(results.len(), 50);
    for r in results {
        let s = structured(r);
        assert_eq!(s["success"], true, "{s}");
        let w = s["data"]["total_stats"]["window_seconds"].as_f64().unwrap();
        assert!((3.0..4.0).contains(&w), "window {w}");
    }
    let took = wait_detached(&pair.ns_a, &pair.dev_a, 3 * SECOND);
    wait_detached(&pair.ns_a, "lo", 3 * SECOND);
    eprintln!("all detached {took:?} after the last result");
}

/// Two callers on one interface with overlapping windows: a long one (A) and a short one (B)
/// that starts after a first burst. B sees only the second burst, A both, and both count the
/// second burst to the byte.
#[test]
fn each_caller_gets_its_own_window() {
    let _s = serial();
    let pair = VethPair::new(false);
    let _iperf4 = iperf3_server(&pair.ns_b, ADDR_B4);
    let server = HttpServer::start(&pair.ns_a, &["--http", "127.0.0.1:0"], &[]);
    let before = pair.counters_a();
    let call = |label: &str, secs: u32| {
        json!([{"op": "call", "label": label, "tool": "get_interface_traffic",
                "args": {"iface": pair.dev_a, "sample_seconds": secs}}])
    };
    let a = PyClient::http(
        &pair.ns_a,
        &server.url,
        None,
        Handshake::Initialize,
        &call("A", 12),
    );
    a.until("progress", 30 * SECOND);
    let tcp = Case {
        v6: false,
        udp: false,
        parallel: 1,
        offloads: false,
    };
    let burst1 = iperf3(&pair.ns_a, &tcp.iperf3_args(ADDR_B4));
    let b = PyClient::http(
        &pair.ns_a,
        &server.url,
        None,
        Handshake::Discover,
        &call("B", 4),
    );
    b.until("progress", 30 * SECOND);
    let udp = Case {
        v6: false,
        udp: true,
        parallel: 1,
        offloads: false,
    };
    let burst2 = iperf3(&pair.ns_a, &udp.iperf3_args(ADDR_B4));
    let rb = structured(last(&b.until("result", 20 * SECOND), "result")).clone();
    let ra = structured(last(&a.until("result", 20 * SECOND), "result")).clone();
    let kernel = pair.counters_a().since(&before);

    let port = |report: &Value| u(&report["start"]["connected"][0]["local_port"]);
    let (tcp_port, udp_port) = (port(&burst1), port(&burst2));
    let find = |r: &Value, p: u64| {
        r["data"]["top_connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["local_port"] == p && c["remote_port"] == 5201)
            .cloned()
    };
    assert!(
        find(&rb, tcp_port).is_none(),
        "B's window began after the TCP burst"
    );
    let udp_b = find(&rb, udp_port).expect("B saw the UDP burst");
    let udp_a = find(&ra, udp_port).expect("A saw the UDP burst");
    find(&ra, tcp_port).expect("A saw the TCP burst");
    for k in ["tx_bytes", "tx_packets", "rx_bytes", "rx_packets"] {
        assert_eq!(
            udp_a[k], udp_b[k],
            "{k} of the UDP burst differs between windows"
        );
    }
    truth::check_streams(&rb["data"], &burst2, udp, ADDR_A4, ADDR_B4);
    truth::check_streams(&ra["data"], &burst2, udp, ADDR_A4, ADDR_B4);
    truth::check_streams(&ra["data"], &burst1, tcp, ADDR_A4, ADDR_B4);
    // A's window holds everything since `before`, B's only part of it.
    truth::check_totals(&ra["data"], kernel, false);
    truth::check_partition(&ra["data"]);
    truth::check_partition(&rb["data"]);
    assert!(u(&rb["data"]["total_stats"]["tx_bytes"]) < u(&ra["data"]["total_stats"]["tx_bytes"]));
    eprintln!(
        "A: {} B tx over {} s; B: {} B tx over {} s; UDP burst {} B in both",
        ra["data"]["total_stats"]["tx_bytes"],
        ra["data"]["total_stats"]["window_seconds"],
        rb["data"]["total_stats"]["tx_bytes"],
        rb["data"]["total_stats"]["window_seconds"],
        udp_a["tx_bytes"]
    );
}

/// A call cancelled mid-sample detaches at once and the server keeps serving: over stdio with a
/// `notifications/cancelled`, and over HTTP (2026-07-28) where the client drops the request.
fn cancel_and_continue(client: &mut PyClient, pair: &VethPair) {
    let events = client.until("cancelled", 30 * SECOND);
    assert!(
        !events.iter().any(|e| e["event"] == "result"),
        "the cancelled call returned a result: {events:#?}"
    );
    let took = wait_detached(&pair.ns_a, &pair.dev_a, 3 * SECOND);
    eprintln!("detached {took:?} after the cancel");
    client.until("waiting", 5 * SECOND);
    client.go();
    let after = client.until("done", 30 * SECOND);
    let s = structured(last(&after, "result"));
    assert_eq!(s["success"], true, "{s}");
}

fn cancel_plan(dev: &str) -> Value {
    json!([
        {"op": "cancel", "label": "long", "after": 2, "tool": "get_interface_traffic",
         "args": {"iface": dev, "sample_seconds": 20}},
        {"op": "wait"},
        {"op": "call", "label": "after", "tool": "get_interface_traffic",
         "args": {"iface": dev, "sample_seconds": 3}},
    ])
}

#[test]
fn cancel_over_stdio() {
    let _s = serial();
    let pair = VethPair::new(false);
    let pidfile = TempFile::new("nmpid", "");
    let mut client = PyClient::stdio(
        &pair.ns_a,
        &pidfile.0,
        Handshake::Initialize,
        &cancel_plan(&pair.dev_a),
    );
    cancel_and_continue(&mut client, &pair);
}

#[test]
fn cancel_over_http() {
    let _s = serial();
    let pair = VethPair::new(false);
    let server = HttpServer::start(&pair.ns_a, &["--http", "127.0.0.1:0"], &[]);
    let mut client = PyClient::http(
        &pair.ns_a,
        &server.url,
        None,
        Handshake::Discover,
        &cancel_plan(&pair.dev_a),
    );
    cancel_and_continue(&mut client, &pair);
}

fn disconnect_plan(dev: &str) -> Value {
    json!([{"op": "disconnect", "label": "gone", "after": 1, "tool": "get_interface_traffic",
            "args": {"iface": dev, "sample_seconds": 20}}])
}

/// The client vanishes mid-call over stdio: netmon sees stdin close, detaches and exits.
#[test]
fn client_disconnect_over_stdio() {
    let _s = serial();
    let pair = VethPair::new(false);
    let pidfile = TempFile::new("nmpid", "");
    let client = PyClient::stdio(
        &pair.ns_a,
        &pidfile.0,
        Handshake::Initialize,
        &disconnect_plan(&pair.dev_a),
    );
    client.until("disconnecting", 30 * SECOND);
    let pid = std::fs::read_to_string(&pidfile.0).expect("server pid");
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    let log = client.log.clone();
    client.wait_exit(10 * SECOND);
    let start = Instant::now();
    // Exited: gone, or a zombie until whoever inherited it reaps it.
    let running = || {
        std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|st| {
            st.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    };
    // rmcp alone would keep running handlers for its 5 s drain; netmon stops them on EOF.
    while running() {
        assert!(
            start.elapsed() < 2 * SECOND,
            "netmon (pid {}) still running 2 s after its client left:\n{}",
            pid.trim(),
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("netmon exited {:?} after its client", start.elapsed());
    wait_detached(&pair.ns_a, &pair.dev_a, 3 * SECOND);
}

/// The client vanishes mid-call over HTTP, and the server keeps serving. Without sessions
/// (2026-07-28) nobody can receive the result, so the sample stops at once. In a session
/// (`initialize`) the MCP spec says a dropped connection is not a cancellation (the client may
/// resume the stream), so the sample runs out its window and then detaches.
#[test]
fn client_disconnect_over_http() {
    let _s = serial();
    let pair = VethPair::new(false);
    let server = HttpServer::start(&pair.ns_a, &["--http", "127.0.0.1:0"], &[]);
    let gone = |handshake: Handshake, secs: u32| {
        let plan = json!([{"op": "disconnect", "label": "gone", "after": 1,
            "tool": "get_interface_traffic", "args": {"iface": pair.dev_a, "sample_seconds": secs}}]);
        let client = PyClient::http(&pair.ns_a, &server.url, None, handshake, &plan);
        client.until("disconnecting", 30 * SECOND);
        client.wait_exit(10 * SECOND);
        Instant::now()
    };

    let left = gone(Handshake::Discover, 20);
    wait_detached(&pair.ns_a, &pair.dev_a, SECOND);
    eprintln!(
        "2026-07-28: detached {:?} after the client left",
        left.elapsed()
    );

    let left = gone(Handshake::Initialize, 5);
    // Still sampling for the session; meanwhile another client is served.
    assert!(
        tcx_programs(&pair.ns_a, &pair.dev_a)
            .iter()
            .any(|p| p == "netmon_ingress")
    );
    let next = PyClient::http(
        &pair.ns_a,
        &server.url,
        None,
        Handshake::Initialize,
        &json!([{"op": "list_tools"}]),
    );
    check_tools(&last(&next.until("tools", 30 * SECOND), "tools")["tools"]);
    wait_detached(&pair.ns_a, &pair.dev_a, 7 * SECOND);
    eprintln!(
        "2025-11-25 session: detached {:?} after the client left (window 5 s)",
        left.elapsed()
    );
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;

/// HTTP on a non-loopback address: no token, no start; then 401 without or with a wrong token,
/// 403 for a foreign Host or Origin, 200 otherwise; and a client across the veth gets through
/// with the token only.
#[test]
fn http_security() {
    let _s = serial();
    let pair = VethPair::new(false);
    let bind = format!("{ADDR_A4}:0");

    for (args, env, want) in [
        (
            vec!["--http", bind.as_str()],
            vec![],
            "without a bearer token",
        ),
        (
            vec!["--http", "0.0.0.0:0"],
            vec![],
            "without a bearer token",
        ),
        (
            vec!["--http", bind.as_str()],
            vec![(netmon::secret::TOKEN_ENV, "short")],
            "is not usable",
        ),
    ] {
        let mut cmd = netmon_tests::in_ns(&pair.ns_a, "timeout");
        cmd.arg("10")
            .arg(netmon_tests::netmon_bin())
            .arg("serve")
            .args(&args)
            .env_remove(netmon::secret::TOKEN_ENV);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("netmon serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        eprintln!("{args:?} refused: {}", stderr.trim());
    }

    let server = HttpServer::start(
        &pair.ns_a,
        &["--http", &bind],
        &[(netmon::secret::TOKEN_ENV, TOKEN)],
    );
    let url = server.url.clone();
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let post = |extra: &[&str]| {
        let mut args = vec![
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json, text/event-stream",
            "--data",
            INIT,
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&pair.ns_a, &args)
    };
    let cases: &[(&str, Vec<&str>, u16)] = &[
        ("no token", vec![], 401),
        (
            "wrong token",
            vec![
                "-H",
                "Authorization: Bearer 00000000000000000000000000000000",
            ],
            401,
        ),
        ("token", vec!["-H", &bearer], 200),
        (
            "foreign Origin",
            vec!["-H", &bearer, "-H", "Origin: http://evil.example"],
            403,
        ),
        (
            "foreign Host",
            vec!["-H", &bearer, "-H", "Host: evil.example"],
            403,
        ),
        (
            "loopback Origin",
            vec!["-H", &bearer, "-H", "Origin: http://localhost:6274"],
            200,
        ),
    ];
    for (what, extra, want) in cases {
        let (code, body) = post(extra);
        eprintln!("{what}: {code} {}", body.lines().next().unwrap_or(""));
        assert_eq!(code, *want, "{what}: {body}");
        if *want == 401 {
            assert!(body.contains("bearer token"), "{what}: {body}");
        }
    }

    // A client in the other namespace, across the veth.
    let plan = json!([{"op": "list_tools"}]);
    let ok = PyClient::http(&pair.ns_b, &url, Some(TOKEN), Handshake::Initialize, &plan);
    check_tools(&last(&ok.until("tools", 30 * SECOND), "tools")["tools"]);
    let refused = PyClient::http(&pair.ns_b, &url, None, Handshake::Initialize, &plan);
    let status = refused.wait_exit(30 * SECOND);
    assert!(!status.success(), "a client without the token got in");
    let log = read_log(&server.log);
    assert!(
        !log.contains(TOKEN),
        "the token leaked into the log:\n{log}"
    );
}

/// Runs `ping -c 10` from A to B inside the window `call` samples, and returns the result and
/// the kernel's counters over the whole span. The window starts just after netmon attaches both
/// programs (it snapshots the counters then), so the pings wait until both are attached, plus
/// 500 ms.
fn ping_during(
    pair: &VethPair,
    call: impl FnOnce() -> Value + Send,
) -> (Value, netmon_tests::Counters) {
    let before = pair.counters_a();
    let (result, attached, pinged) = std::thread::scope(|s| {
        let h = s.spawn(call);
        let start = Instant::now();
        loop {
            let progs = tcx_programs(&pair.ns_a, &pair.dev_a);
            if ["netmon_ingress", "netmon_egress"]
                .iter()
                .all(|p| progs.iter().any(|q| q == p))
            {
                break;
            }
            assert!(start.elapsed() < 60 * SECOND, "netmon never attached");
            std::thread::sleep(Duration::from_millis(20));
        }
        let attached = Instant::now();
        std::thread::sleep(Duration::from_millis(500));
        sh(netmon_tests::in_ns(&pair.ns_a, "ping").args(["-c", "10", "-i", "0.1", "-q", ADDR_B4]));
        let pinged = attached.elapsed();
        (h.join().expect("inspector thread"), attached, pinged)
    });
    let _ = attached;
    let window = result["structuredContent"]["data"]["total_stats"]["window_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        pinged.as_secs_f64() + 0.5 < window,
        "the pings ended {pinged:?} after attaching, too close to the {window} s window for a fair comparison"
    );
    (result, pair.counters_a().since(&before))
}

/// The ICMP echo exchange: 10 requests out, 10 replies in, 84 bytes each.
fn check_ping(result: &Value, pair: &VethPair, kernel: netmon_tests::Counters) {
    let s = &result["structuredContent"];
    assert_eq!(s["success"], true, "{result:#}");
    assert_eq!(result.get("isError"), Some(&json!(false)));
    truth::check_totals(&s["data"], kernel, false);
    truth::check_partition(&s["data"]);
    let icmp = s["data"]["top_connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["protocol"] == "icmp")
        .unwrap_or_else(|| panic!("no ICMP row: {s:#}"));
    assert_eq!(icmp["remote_addr"], ADDR_B4);
    for k in ["tx_packets", "rx_packets"] {
        assert_eq!(icmp[k], 10, "{k}");
    }
    for k in ["tx_bytes", "rx_bytes"] {
        assert_eq!(icmp[k], 840, "{k}");
    }
    assert_eq!(s["data"]["total_stats"]["interface"], pair.dev_a.as_str());
}

/// The MCP Inspector CLI: tools/list and tools/call over stdio and over HTTP.
#[test]
fn inspector_cli_stdio_and_http() {
    let _s = serial();
    let pair = VethPair::new(false);
    let bin = netmon_tests::netmon_bin();
    let bin = bin.to_str().unwrap();

    let list = inspector(&pair.ns_a, &[bin, "serve", "--method", "tools/list"]);
    check_tools(&list["tools"]);
    let call = [
        "--method",
        "tools/call",
        "--tool-name",
        "get_interface_traffic",
        "--tool-arg",
        &format!("iface={}", pair.dev_a),
        "--tool-arg",
        "sample_seconds=6",
    ];
    let (result, kernel) = ping_during(&pair, || {
        let mut args = vec![bin, "serve"];
        args.extend(call);
        inspector(&pair.ns_a, &args)
    });
    eprintln!(
        "inspector stdio: {}",
        result["structuredContent"]["message"]
    );
    check_ping(&result, &pair, kernel);

    let server = HttpServer::start(&pair.ns_a, &["--http", "127.0.0.1:0"], &[]);
    let list = inspector(
        &pair.ns_a,
        &[&server.url, "--transport", "http", "--method", "tools/list"],
    );
    check_tools(&list["tools"]);
    let (result, kernel) = ping_during(&pair, || {
        let mut args = vec![server.url.as_str(), "--transport", "http"];
        args.extend(call);
        inspector(&pair.ns_a, &args)
    });
    eprintln!("inspector http: {}", result["structuredContent"]["message"]);
    check_ping(&result, &pair, kernel);
    let bad = inspector(
        &pair.ns_a,
        &[
            &server.url,
            "--transport",
            "http",
            "--method",
            "tools/call",
            "--tool-name",
            "get_interface_traffic",
            "--tool-arg",
            "iface=eth0;reboot",
        ],
    );
    assert_eq!(bad["isError"], true, "{bad:#}");
    assert!(
        bad["structuredContent"]["message"]
            .as_str()
            .unwrap()
            .contains("letters, digits")
    );
}

/// Over stdio, stdout carries nothing but JSON-RPC, even with debug logging on: every line the
/// server writes parses as a JSON-RPC 2.0 message, and the logs are on stderr.
#[test]
fn stdio_stdout_carries_only_protocol() {
    use std::io::{BufRead, BufReader, Write};
    let _s = serial();
    let pair = VethPair::new(false);
    let mut child = netmon_tests::Spawned(
        netmon_tests::in_ns(&pair.ns_a, netmon_tests::netmon_bin().to_str().unwrap())
            .arg("serve")
            .env("RUST_LOG", "debug")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("netmon serve"),
    );
    let stderr = netmon_tests::mcp::drain_pipe(child.0.stderr.take().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.0.stdin.take().unwrap();
    let messages = [
        INIT.to_string(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_string(),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "get_interface_traffic", "arguments": {"iface": pair.dev_a, "sample_seconds": 3},
            "_meta": {"progressToken": "p3"}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "get_interface_traffic", "arguments": {"iface": "x y"}}})
        .to_string(),
    ];
    for m in &messages {
        writeln!(stdin, "{m}").expect("writing to netmon");
    }
    stdin.flush().unwrap();
    let mut lines = Vec::new();
    let mut answered = std::collections::BTreeSet::new();
    let deadline = Instant::now() + 20 * SECOND;
    while answered.len() < 4 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no answer to all requests; stdout so far: {lines:#?}"));
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("non-JSON on stdout ({e}): {line:?}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
        if let Some(id) = v["id"].as_u64() {
            answered.insert(id);
        }
        lines.push(v);
    }
    drop(stdin);
    let deadline = Instant::now() + 5 * SECOND;
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "netmon did not exit when stdin closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for line in rx.try_iter() {
        let v: Value = serde_json::from_str(&line).expect("JSON-RPC");
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
    }
    let progress = lines
        .iter()
        .filter(|v| v["method"] == "notifications/progress")
        .count();
    assert_eq!(progress, 4, "0, 1, 2 and 3 of 3 s");
    let call = lines.iter().find(|v| v["id"] == 3).unwrap();
    assert_eq!(
        call["result"]["structuredContent"]["success"], true,
        "{call}"
    );
    let bad = lines.iter().find(|v| v["id"] == 4).unwrap();
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    let log = read_log(&stderr);
    assert!(
        log.contains("DEBUG"),
        "debug logs expected on stderr:\n{log}"
    );
    eprintln!(
        "{} JSON-RPC lines on stdout, {} bytes of logs on stderr",
        lines.len(),
        log.len()
    );
}

/// Without privileges the server still starts and lists interfaces, and a traffic call is a tool
/// error naming the capabilities to grant.
#[test]
fn unprivileged_server_explains_what_it_lacks() {
    let _s = serial();
    let pair = VethPair::new(false);
    let pidfile = TempFile::new("nmpid", "");
    let plan = json!([
        {"op": "call", "label": "ifaces", "tool": "list_network_interfaces"},
        {"op": "call", "label": "traffic", "tool": "get_interface_traffic",
         "args": {"iface": pair.dev_a, "sample_seconds": 3}},
    ]);
    let client = PyClient::stdio_under(
        &pair.ns_a,
        &pidfile.0,
        "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all",
        Handshake::Initialize,
        &plan,
    );
    let events = client.until("done", 30 * SECOND);
    let ifaces = structured(
        events
            .iter()
            .find(|e| e["label"] == "ifaces" && e["event"] == "result")
            .unwrap(),
    );
    check_interfaces(ifaces, &pair);
    let traffic = structured(last(&events, "result"));
    let msg = traffic["message"].as_str().unwrap();
    assert_eq!(traffic["success"], false);
    assert!(
        msg.contains("CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"),
        "{msg}"
    );
    eprintln!("unprivileged: {msg}");
}

/// The prompt, completion of its `iface`, and log messages, through the Python SDK over stdio:
/// a model learns of an idle interface (at level info, once it asked for it) and of a full flow
/// table (a warning, with the same byte count the result carries).
#[test]
fn the_prompt_completion_and_log_messages() {
    let _s = serial();
    let pair = VethPair::new(false);
    let _server = iperf3_server(&pair.ns_b, ADDR_B4);
    let pidfile = TempFile::new("nmpid", "");
    let dev = pair.dev_a.as_str();
    let plan = json!([
        {"op": "capabilities", "label": "caps"},
        {"op": "list_prompts", "label": "prompts"},
        {"op": "get_prompt", "label": "prompt", "name": "diagnose_bandwidth",
         "args": {"iface": dev, "host": "localhost"}},
        {"op": "get_prompt", "label": "no-iface", "name": "diagnose_bandwidth", "args": {}},
        {"op": "complete", "label": "complete", "prompt": "diagnose_bandwidth",
         "argument": "iface", "value": &dev[..2]},
        // Below the default level (warning): no message for an idle interface yet.
        {"op": "call", "label": "idle-quiet", "tool": "get_interface_traffic",
         "args": {"iface": "lo", "sample_seconds": 3}},
        {"op": "set_level", "label": "level", "level": "info"},
        {"op": "call", "label": "idle", "tool": "get_interface_traffic",
         "args": {"iface": "lo", "sample_seconds": 3}},
        {"op": "wait", "label": "before-full"},
        {"op": "call", "label": "full", "tool": "get_interface_traffic",
         "args": {"iface": dev, "sample_seconds": 5}},
    ]);
    // A 4-entry table per family, so parallel streams overflow it.
    let mut client =
        PyClient::stdio_with(&pair.ns_a, &pidfile.0, &["--table-capacity", "4"], &plan);
    let events = client.until("waiting", Duration::from_secs(60));
    let ev = |label: &str| {
        events
            .iter()
            .find(|e| e["label"] == label && e["event"] != "progress")
            .unwrap_or_else(|| panic!("no {label} event in {events:#?}"))
    };
    let caps = &ev("caps")["capabilities"];
    for c in ["tools", "prompts", "completions", "logging"] {
        assert!(caps.get(c).is_some(), "capability {c} missing: {caps}");
    }
    assert_eq!(ev("prompts")["prompts"][0]["name"], "diagnose_bandwidth");
    let text = ev("prompt")["messages"].to_string();
    assert!(
        text.contains(dev) && text.contains("list_network_interfaces"),
        "{text}"
    );
    assert_eq!(ev("no-iface")["event"], "exception", "{:#}", ev("no-iface"));
    assert!(
        ev("no-iface")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("needs iface")
    );
    assert_eq!(
        ev("complete")["values"],
        json!([dev]),
        "{:#}",
        ev("complete")
    );

    let logs: Vec<&Value> = events.iter().filter(|e| e["event"] == "log").collect();
    assert_eq!(
        logs.len(),
        1,
        "one message, after the level was set: {logs:#?}"
    );
    assert_eq!(logs[0]["level"], "info");
    assert_eq!(logs[0]["data"]["interface"], "lo");
    assert!(
        logs[0]["data"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no IP traffic"),
        "{:#}",
        logs[0]
    );

    // Eight parallel streams and iperf3's control connection: nine flows into four entries.
    client.go();
    let args: Vec<String> = ["-c", ADDR_B4, "-P", "8", "-t", "2"]
        .map(String::from)
        .to_vec();
    std::thread::sleep(Duration::from_secs(1));
    iperf3(&pair.ns_a, &args);
    let rest = client.until("result", Duration::from_secs(30));
    let full = structured(last(&rest, "result"));
    assert_eq!(full["success"], true, "{full:#}");
    let t = &full["data"]["total_stats"];
    let lost = u(&t["rx"]["unattributed_bytes"]) + u(&t["tx"]["unattributed_bytes"]);
    assert!(lost > 0, "nine flows in four entries must overflow: {t:#}");
    let warning = rest
        .iter()
        .find(|e| e["event"] == "log" && e["level"] == "warning")
        .unwrap_or_else(|| panic!("no warning about the table: {rest:#?}"));
    let message = warning["data"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("{lost} bytes")) && message.contains("--table-capacity"),
        "{message}"
    );
}

/// The prompt through the MCP Inspector CLI, over stdio.
#[test]
fn inspector_cli_lists_and_gets_the_prompt() {
    let _s = serial();
    let pair = VethPair::new(false);
    let bin = netmon_tests::netmon_bin();
    let bin = bin.to_str().unwrap();
    let list = inspector(&pair.ns_a, &[bin, "serve", "--method", "prompts/list"]);
    assert_eq!(list["prompts"][0]["name"], "diagnose_bandwidth", "{list:#}");
    let args = list["prompts"][0]["arguments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(args[0]["name"], "iface");
    assert_eq!(args[0]["required"], true);
    let got = inspector(
        &pair.ns_a,
        &[
            bin,
            "serve",
            "--method",
            "prompts/get",
            "--prompt-name",
            "diagnose_bandwidth",
            "--prompt-args",
            &format!("iface={}", pair.dev_a),
        ],
    );
    let text = got["messages"].to_string();
    assert!(
        text.contains(&pair.dev_a) && text.contains("get_interface_traffic"),
        "{got:#}"
    );
}
