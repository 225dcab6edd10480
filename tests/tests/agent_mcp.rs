//! The agent's `/mcp`, driven by the real Python MCP client: answers come from the agent's
//! history and say which window they cover; and a gateway (`netmon serve` with a config file)
//! asks an agent in another namespace over HTTP, with its token, and is refused without one.
//!
//! Ground truth is ping's own size: `-s 1000` makes 1028-byte IP packets (20 B IPv4 header, 8 B
//! ICMP header, 1000 B payload), one request out and one reply in per ping.

use netmon_tests::agent::{RunningAgent, health, start_agent, wait_collections};
use netmon_tests::mcp::{Handshake, PyClient, curl, read_log};
use netmon_tests::{ADDR_A4, ADDR_B4, TempFile, VethPair, in_ns, sh};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);
const TOKEN: &str = "9a1c3e5f7b0d2f4a6c8e0b1d3f5a7c9e";
const PINGS: u64 = 5;
const PING_IP_BYTES: u64 = 1028;

fn ping(ns: &str, to: &str) {
    sh(in_ns(ns, "ping").args(["-c", "5", "-i", "0.2", "-s", "1000", "-q", to]));
}

fn result(client: &PyClient, label: &str) -> Value {
    let events = client.until("result", 60 * SECOND);
    let r = events.last().cloned().unwrap_or_default();
    assert_eq!(r["label"], label, "{events:#?}\n{}", read_log(&client.log));
    r
}

/// The ICMP row between the two addresses, from `data.top_connections`.
fn icmp_row<'a>(data: &'a Value, local: &str, remote: &str) -> &'a Value {
    data["top_connections"]
        .as_array()
        .and_then(|rows| {
            rows.iter().find(|r| {
                r["protocol"] == "icmp" && r["local_addr"] == local && r["remote_addr"] == remote
            })
        })
        .unwrap_or_else(|| panic!("no ICMP row {local} <-> {remote} in {data:#}"))
}

/// The status of an empty JSON POST to `url` from `ns`: what a client without a token gets.
fn post_status(ns: &str, url: &str) -> u16 {
    let json = "content-type: application/json";
    curl(ns, &["-X", "POST", "-H", json, "-d", "{}", url]).0
}

/// `data.notes`, also printed: they are what the tests are about, and CI logs keep them.
fn notes(data: &Value) -> String {
    let n = data["notes"].to_string();
    eprintln!(
        "notes: {n}; window_seconds: {}",
        data["total_stats"]["window_seconds"]
    );
    n
}

/// Waits (bounded) until the agent has watched its interface for at least `secs`.
fn wait_watched(ns: &str, a: &RunningAgent, secs: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(ns, a)["interfaces"][0]["watched_seconds"]
        .as_f64()
        .unwrap_or(0.0)
        < secs
    {
        assert!(Instant::now() < deadline, "{}", read_log(&a.log));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/mcp` needs a token on loopback too: any local user can reach loopback, and the agent's
/// answers (every connection and its process) are more than theirs to see. Without a token the
/// agent serves no `/mcp` at all; with one, a client without it gets 401.
#[test]
fn on_loopback_too_mcp_needs_the_token() {
    let pair = VethPair::new(false);
    let open = start_agent(&pair.ns_a, &["-i", &pair.dev_a, "--tick", "0.2"]);
    let h = wait_collections(&pair.ns_a, &open, 0, 1);
    assert_eq!(h["mcp"], false, "{h}");
    assert!(
        open.banner.contains("no /mcp: give --token-file"),
        "{}",
        open.banner
    );
    let code = post_status(&pair.ns_a, &format!("http://{}/mcp", open.addr));
    assert_eq!(code, 404, "no /mcp without a token, loopback or not");
    let token = TempFile::new("tok", TOKEN);
    let guarded = start_agent(
        &pair.ns_a,
        &[
            "-i",
            &pair.dev_a,
            "--tick",
            "0.2",
            "--token-file",
            token.path_str(),
        ],
    );
    let h = wait_collections(&pair.ns_a, &guarded, 0, 1);
    assert_eq!(h["mcp"], true, "{h}");
    let code = post_status(&pair.ns_a, &format!("http://{}/mcp", guarded.addr));
    assert_eq!(code, 401, "a local client without the token");
}

#[test]
fn the_agent_answers_mcp_from_its_history_and_says_which_window() {
    let pair = VethPair::new(false);
    let token = TempFile::new("tok", TOKEN);
    let with_token = ["--token-file", token.path_str()];
    let agent = start_agent(
        &pair.ns_a,
        &[&["-i", &pair.dev_a, "--tick", "0.2"][..], &with_token].concat(),
    );
    let h = wait_collections(&pair.ns_a, &agent, 0, 1);
    assert_eq!(h["mcp"], true, "{h}");
    wait_watched(&pair.ns_a, &agent, 4.0);
    // The client is connected and waiting before the pings, so the call comes right after
    // them: its 3 s hold all five however slowly the client started.
    let url = format!("http://{}/mcp", agent.addr);
    let args = json!({"iface": pair.dev_a, "sample_seconds": 3, "top": 10});
    let plan = json!([
        {"op": "wait", "label": "ready"},
        {"op": "call", "label": "history", "tool": "get_interface_traffic", "args": args}
    ]);
    let mut client = PyClient::http(&pair.ns_a, &url, Some(TOKEN), Handshake::Initialize, &plan);
    client.until("waiting", 60 * SECOND);
    ping(&pair.ns_a, ADDR_B4);
    // Two ticks after the last reply, so the history holds all of it.
    let now = netmon_tests::agent::collections(&health(&pair.ns_a, &agent));
    wait_collections(&pair.ns_a, &agent, now, 2);
    client.go();
    let r = result(&client, "history");
    assert_eq!(r["is_error"], false, "{r:#}");
    let data = &r["structured"]["data"];
    assert!(
        notes(data).contains("answered at once from the agent's history"),
        "{data:#}"
    );
    // Ticks of 0.2 s: the newest ticks that cover 3 s (less a tenth of a tick).
    let window = data["total_stats"]["window_seconds"].as_f64().unwrap();
    assert!((2.9..3.5).contains(&window), "window {window} s");
    let row = icmp_row(data, ADDR_A4, ADDR_B4);
    assert_eq!(row["tx_bytes"], PINGS * PING_IP_BYTES, "{row:#}");
    assert_eq!(row["rx_bytes"], PINGS * PING_IP_BYTES, "{row:#}");
    assert_eq!(row["tx_packets"], PINGS);
    assert_eq!(data["source"], "ebpf");
    drop(client);

    // A new agent has watched for less than the window: the call waits only for the rest.
    let fresh = start_agent(
        &pair.ns_a,
        &[&["-i", &pair.dev_a, "--tick", "0.2"][..], &with_token].concat(),
    );
    wait_collections(&pair.ns_a, &fresh, 0, 1);
    let plan =
        json!([{"op": "call", "label": "young", "tool": "get_interface_traffic", "args": args}]);
    let url = format!("http://{}/mcp", fresh.addr);
    let client = PyClient::http(&pair.ns_a, &url, Some(TOKEN), Handshake::Discover, &plan);
    let r = result(&client, "young");
    assert_eq!(r["is_error"], false, "{r:#}");
    let data = &r["structured"]["data"];
    let n = notes(data);
    assert!(
        n.contains("when asked, so the call waited"),
        "the note must say the call waited: {n}"
    );
    let window = data["total_stats"]["window_seconds"].as_f64().unwrap();
    assert!((2.9..3.5).contains(&window), "window {window} s");

    // An interface the agent does not watch is sampled for the call, and the note says so.
    let plan = json!([{"op": "call", "label": "lo", "tool": "get_interface_traffic",
        "args": {"iface": "lo", "sample_seconds": 3}}]);
    let client = PyClient::http(&pair.ns_a, &url, Some(TOKEN), Handshake::Initialize, &plan);
    let r = result(&client, "lo");
    assert_eq!(r["is_error"], false, "{r:#}");
    assert!(
        notes(&r["structured"]["data"]).contains("does not watch lo"),
        "{r:#}"
    );
}

#[test]
fn a_gateway_asks_an_agent_in_another_namespace_with_its_token_and_is_refused_without() {
    let pair = VethPair::new(false);
    let token = TempFile::new("tok", TOKEN);
    let wrong = TempFile::new("wtok", "0000000000000000000000000000000000");
    let listen = format!("{ADDR_B4}:0");
    let agent = start_agent(
        &pair.ns_b,
        &[
            "-i",
            &pair.dev_b,
            "--tick",
            "0.2",
            "--listen",
            &listen,
            "--token-file",
            token.path_str(),
        ],
    );
    let h = wait_collections(&pair.ns_b, &agent, 0, 1);
    assert_eq!(h["mcp"], true, "{h}");
    let base = format!("http://{}", agent.addr);

    // Off loopback without a token, an agent serves metrics and health but no /mcp.
    let open = start_agent(&pair.ns_b, &["-i", &pair.dev_b, "--listen", &listen]);
    let h = wait_collections(&pair.ns_b, &open, 0, 1);
    assert_eq!(h["mcp"], false, "{h}");
    let code = post_status(&pair.ns_a, &format!("http://{}/mcp", open.addr));
    assert_eq!(code, 404, "no /mcp without a token");
    assert!(
        open.banner.contains("no /mcp: give --token-file"),
        "{}",
        open.banner
    );
    drop(open);

    // From the gateway's namespace: metrics are open, /mcp is not.
    let (code, _) = curl(&pair.ns_a, &[&format!("{base}/metrics")]);
    assert_eq!(code, 200);
    let code = post_status(&pair.ns_a, &format!("{base}/mcp"));
    assert_eq!(code, 401);

    let config = TempFile::new(
        "gw.toml",
        &format!(
            r#"
[[remote_hosts]]
name = "node-b"
host = "{ADDR_B4}"
agent_url = "{base}/mcp"
agent_token = {{ file = "{}" }}

[[remote_hosts]]
name = "node-b-no-token"
host = "b-no-token.invalid"
agent_url = "{base}/mcp"

[[remote_hosts]]
name = "node-b-wrong-token"
host = "b-wrong-token.invalid"
agent_url = "{base}/mcp"
agent_token = {{ file = "{}" }}
"#,
            token.path_str(),
            wrong.path_str()
        ),
    );
    wait_watched(&pair.ns_b, &agent, 4.0);

    let traffic = |label: &str, host: &str| {
        json!({"op": "call", "label": label, "tool": "get_interface_traffic",
            "args": {"iface": pair.dev_b, "sample_seconds": 3, "host": host}})
    };
    let plan = json!([
        {"op": "wait", "label": "ready"},
        {"op": "call", "label": "ifaces", "tool": "list_network_interfaces", "args": {"host": "node-b"}},
        traffic("traffic", "node-b"),
        traffic("no-token", "node-b-no-token"),
        traffic("wrong-token", "node-b-wrong-token"),
    ]);
    let pidfile = TempFile::new("gw.pid", "");
    let wrapper = format!("env NETMON_CONFIG={}", config.path_str());
    let mut client = PyClient::stdio_under(
        &pair.ns_a,
        &pidfile.0,
        &wrapper,
        Handshake::Initialize,
        &plan,
    );
    client.until("waiting", 60 * SECOND);
    ping(&pair.ns_a, ADDR_B4);
    let now = netmon_tests::agent::collections(&health(&pair.ns_b, &agent));
    wait_collections(&pair.ns_b, &agent, now, 2);
    client.go();

    let r = result(&client, "ifaces");
    assert_eq!(r["is_error"], false, "{r:#}");
    let data = &r["structured"]["data"];
    assert_eq!(data["host"], "node-b");
    assert!(
        data["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == pair.dev_b.as_str()),
        "{data:#}"
    );

    let r = result(&client, "traffic");
    assert_eq!(r["is_error"], false, "{r:#}\n{}", read_log(&agent.log));
    let data = &r["structured"]["data"];
    assert_eq!(data["source"], "agent");
    assert_eq!(data["host"], "node-b");
    let n = notes(data);
    assert!(
        n.contains("answered at once from the agent's history"),
        "{n}"
    );
    assert!(
        n.contains(&format!("asked the netmon agent at {base}/mcp")),
        "{n}"
    );
    // Seen from b: the requests come in, the replies go out.
    let row = icmp_row(data, ADDR_B4, ADDR_A4);
    assert_eq!(row["rx_bytes"], PINGS * PING_IP_BYTES, "{row:#}");
    assert_eq!(row["tx_bytes"], PINGS * PING_IP_BYTES, "{row:#}");

    for label in ["no-token", "wrong-token"] {
        let r = result(&client, label);
        assert_eq!(r["is_error"], true, "{r:#}");
        let message = r["structured"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("refused the request (HTTP 401)") && message.contains("agent_token"),
            "{label}: {message}"
        );
    }
    assert!(
        read_log(&agent.log).contains("refused POST /mcp"),
        "the agent logs what it refused"
    );
}

/// A CA and a certificate for `ip` signed by it, made with the real openssl: (CA, cert, key).
fn certificates(dir: &netmon_tests::TempDir, ip: &str) -> (String, String, String) {
    let p = |n: &str| dir.path(n).to_str().unwrap().to_string();
    let openssl = |args: &[&str]| sh(std::process::Command::new("openssl").args(args));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.pem"),
                "-days",
                "2",
                "-subj",
                "/CN=netmon test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &p("agent.key"),
                "-out",
                &p("agent.csr"),
                "-subj",
                "/CN=netmon agent",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.path("ext"), format!("subjectAltName=IP:{ip}\n")).unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("agent.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-out",
        &p("agent.pem"),
        "-days",
        "2",
        "-extfile",
        &p("ext"),
    ]);
    (p("ca.pem"), p("agent.pem"), p("agent.key"))
}

/// The bearer token need not cross the network in the clear: the agent serves HTTPS with
/// `--tls-cert`/`--tls-key`, and a gateway asks its `https://` URL, checking the certificate
/// against `agent_ca_file`. Without the CA (the system's roots do not know it), or over plain
/// HTTP to the TLS port, the call fails with an error that names what to check.
#[test]
fn a_gateway_asks_an_https_agent_checking_its_certificate() {
    let pair = VethPair::new(false);
    let dir = netmon_tests::TempDir::new("nmtls");
    let (ca, cert, key) = certificates(&dir, ADDR_B4);
    // The unprivileged agent reads its key: as a service would, from a file it may read.
    sh(std::process::Command::new("chmod").args(["-R", "a+rX", dir.0.to_str().unwrap()]));
    let token = TempFile::new("tok", TOKEN);
    let listen = format!("{ADDR_B4}:0");
    let agent = start_agent(
        &pair.ns_b,
        &[
            "-i",
            &pair.dev_b,
            "--tick",
            "0.2",
            "--listen",
            &listen,
            "--token-file",
            token.path_str(),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    assert!(
        agent.banner.contains("agent serving https://"),
        "{}",
        agent.banner
    );
    let base = format!("https://{}", agent.addr);
    let (code, body) = curl(&pair.ns_a, &["--cacert", &ca, &format!("{base}/health")]);
    assert_eq!(code, 200, "{body}");
    // Plain HTTP to the TLS port gets nothing.
    let (code, _) = curl(&pair.ns_a, &[&format!("http://{}/health", agent.addr)]);
    assert_ne!(code, 200);
    let config = TempFile::new(
        "gw.toml",
        &format!(
            r#"
[[remote_hosts]]
name = "tls"
host = "{ADDR_B4}"
agent_url = "{base}/mcp"
agent_token = {{ file = "{tok}" }}
agent_ca_file = "{ca}"

[[remote_hosts]]
name = "tls-unknown-ca"
host = "tls-unknown-ca.invalid"
agent_url = "{base}/mcp"
agent_token = {{ file = "{tok}" }}

[[remote_hosts]]
name = "plain-to-tls"
host = "plain-to-tls.invalid"
agent_url = "http://{addr}/mcp"
agent_token = {{ file = "{tok}" }}
"#,
            tok = token.path_str(),
            addr = agent.addr,
        ),
    );
    let traffic = |label: &str, host: &str| {
        json!({"op": "call", "label": label, "tool": "get_interface_traffic",
            "args": {"iface": pair.dev_b, "sample_seconds": 3, "host": host}})
    };
    let plan = json!([
        traffic("tls", "tls"),
        traffic("unknown-ca", "tls-unknown-ca"),
        traffic("plain", "plain-to-tls"),
    ]);
    let pidfile = TempFile::new("gw.pid", "");
    let wrapper = format!("env NETMON_CONFIG={}", config.path_str());
    let client = PyClient::stdio_under(
        &pair.ns_a,
        &pidfile.0,
        &wrapper,
        Handshake::Initialize,
        &plan,
    );
    let r = result(&client, "tls");
    assert_eq!(r["is_error"], false, "{r:#}\n{}", read_log(&agent.log));
    let data = &r["structured"]["data"];
    assert_eq!(data["source"], "agent");
    assert!(notes(data).contains(&format!("asked the netmon agent at {base}/mcp")));
    for (label, want) in [
        ("unknown-ca", "agent_ca_file"),
        ("plain", "could not be reached"),
    ] {
        let r = result(&client, label);
        let msg = r["structured"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        eprintln!("{label}: {msg}");
        assert_eq!(r["structured"]["success"], false, "{r:#}");
        assert!(msg.contains(want), "{label}: {msg}");
        assert!(!msg.contains(TOKEN), "the token in a message");
    }
}
