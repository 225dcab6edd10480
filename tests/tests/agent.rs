//! `netmon agent` as it would run in a container: a non-root user with only CAP_BPF,
//! CAP_NET_ADMIN and CAP_PERFMON, inside a namespace, counting real traffic. Its /metrics must
//! equal the kernel's interface counters and pass `promtool check metrics`; its /health must
//! name what it is attached to.

use netmon_tests::agent::{collections, health, sample, start_agent, wait_collections};
use netmon_tests::mcp::curl;
use netmon_tests::{ADDR_B4, Spawned, VethPair, in_ns, sh};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn agent_with_three_capabilities_counts_what_the_kernel_counts() {
    let pair = VethPair::new(false);
    let before = pair.counters_a();
    let agent = start_agent(&pair.ns_a, &["-i", &pair.dev_a]);
    let h = wait_collections(&pair.ns_a, &agent, 0, 1);
    assert_eq!(h["up"], true);
    assert_eq!(h["interfaces"][0]["name"], pair.dev_a.as_str(), "{h}");
    assert!(h["ingress_program_id"].as_u64().unwrap_or(0) > 0, "{h}");
    assert!(h["egress_program_id"].as_u64().unwrap_or(0) > 0, "{h}");
    assert_eq!(h["flow_table_capacity"], 65_536);

    // UDP (one skb per packet) and ping, so the classifier's frames are the kernel's packets.
    let _server = netmon_tests::iperf3_server(&pair.ns_b, ADDR_B4);
    let report = netmon_tests::iperf3_client(
        &pair.ns_a,
        &["-c", ADDR_B4, "-u", "-l", "1400", "-b", "40M", "-n", "4M"],
    );
    assert!(report["end"]["sum"]["bytes"].as_u64().unwrap_or(0) >= 4_000_000);
    sh(in_ns(&pair.ns_a, "ping").args(["-c", "5", "-i", "0.2", "-q", ADDR_B4]));
    pair.wait_quiet();
    let after = pair.counters_a().since(&before);
    // Two more collections after the link went quiet: the last one saw everything.
    let now = collections(&health(&pair.ns_a, &agent));
    wait_collections(&pair.ns_a, &agent, now, 2);

    let (code, text) = curl(&pair.ns_a, &[&format!("http://{}/metrics", agent.addr)]);
    assert_eq!(code, 200);
    let dev = pair.dev_a.as_str();
    let dir = |d| [("interface", dev), ("direction", d)];
    let get = |name, d| sample(&text, name, &dir(d)) as u64;
    assert_eq!(get("netmon_tc_bytes_total", "egress"), after.tx_bytes);
    assert_eq!(get("netmon_tc_bytes_total", "ingress"), after.rx_bytes);
    assert_eq!(get("netmon_tc_packets_total", "egress"), after.tx_packets);
    assert_eq!(get("netmon_tc_packets_total", "ingress"), after.rx_packets);
    assert!(after.tx_bytes > 4_000_000, "{after:?}");
    // IP bytes are the frames less their 14-byte Ethernet headers (all of it was IP, bar ARP).
    let ip = get("netmon_ip_bytes_total", "egress");
    let arp = after.tx_packets - get("netmon_ip_packets_total", "egress");
    assert!(arp <= 2, "{arp} non-IP frames");
    assert_eq!(ip + 28 * arp + 14 * after.tx_packets, after.tx_bytes);
    assert_eq!(get("netmon_unattributed_bytes_total", "egress"), 0);
    // iftop's cumulative line in /health is the same IP byte count.
    let h = health(&pair.ns_a, &agent);
    let rolling = &h["interfaces"][0]["rolling"];
    assert_eq!(rolling["cumulative_tx_bytes"], ip, "{h}");
    assert_eq!(
        rolling["cumulative_rx_bytes"],
        get("netmon_ip_bytes_total", "ingress"),
        "{h}"
    );
    assert!(
        rolling["peak_40s"]["tx_bytes_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert_eq!(
        sample(&text, "netmon_interface_active", &[("interface", dev)]),
        1.0
    );
    assert!(text.contains("\nnetmon_up 1\n"), "{text}");

    let lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("piped stdin")
                .write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("running promtool (apt-get install prometheus)");
    assert!(
        lint.status.success(),
        "promtool check metrics: {}\n{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
}

#[test]
fn after_kill_9_a_restarted_agent_is_attached_once_and_counts_from_zero() {
    let pair = VethPair::new(false);
    let first = start_agent(&pair.ns_a, &["-i", &pair.dev_a]);
    wait_collections(&pair.ns_a, &first, 0, 1);
    sh(in_ns(&pair.ns_a, "ping").args(["-c", "3", "-i", "0.2", "-q", ADDR_B4]));
    let progs = netmon_tests::tcx_programs(&pair.ns_a, &pair.dev_a);
    assert_eq!(progs, ["netmon_ingress", "netmon_egress"]);
    // SIGKILL: no chance to detach. TCX links belong to the process and go with it.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !netmon_tests::tcx_programs(&pair.ns_a, &pair.dev_a).is_empty() {
        assert!(Instant::now() < deadline, "links outlived the killed agent");
        std::thread::sleep(Duration::from_millis(50));
    }
    pair.wait_quiet();
    let before = pair.counters_a();
    let second = start_agent(&pair.ns_a, &["-i", &pair.dev_a]);
    wait_collections(&pair.ns_a, &second, 0, 1);
    assert_eq!(
        netmon_tests::tcx_programs(&pair.ns_a, &pair.dev_a),
        ["netmon_ingress", "netmon_egress"],
        "exactly one attachment per direction after the restart"
    );
    sh(in_ns(&pair.ns_a, "ping").args(["-c", "2", "-i", "0.2", "-q", ADDR_B4]));
    pair.wait_quiet();
    let now = collections(&health(&pair.ns_a, &second));
    wait_collections(&pair.ns_a, &second, now, 2);
    let after = pair.counters_a().since(&before);
    let (_, text) = curl(&pair.ns_a, &[&format!("http://{}/metrics", second.addr)]);
    // A new process, new counters: only what crossed since the restart (Prometheus sees a reset).
    let tx = sample(
        &text,
        "netmon_tc_packets_total",
        &[("interface", pair.dev_a.as_str()), ("direction", "egress")],
    );
    assert_eq!(tx as u64, after.tx_packets);
    assert!(after.tx_packets >= 2 && after.tx_packets <= 4, "{after:?}");
}

/// Waits (bounded) until /health lists exactly `names`, in any order.
fn wait_watching(ns: &str, a: &netmon_tests::agent::RunningAgent, names: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = health(ns, a);
        let mut seen: Vec<String> = h["interfaces"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|i| i["name"].as_str())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        seen.sort();
        let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        want.sort();
        if seen == want {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "watching {seen:?}, want {want:?}: {h}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn interfaces_that_appear_and_vanish_are_attached_and_dropped_while_it_runs() {
    let pair = VethPair::new(false);
    // The default: every interface that is up, loopback excepted.
    let agent = start_agent(&pair.ns_a, &[]);
    wait_watching(&pair.ns_a, &agent, &[&pair.dev_a]);
    // A veth pair inside the namespace: both ends appear (dummy devices need a module these
    // machines do not have).
    let (extra, peer) = (netmon_tests::unique("nmx"), netmon_tests::unique("nmy"));
    sh(in_ns(&pair.ns_a, "ip")
        .args(["link", "add", &extra, "type", "veth", "peer", "name", &peer]));
    for dev in [&extra, &peer] {
        sh(in_ns(&pair.ns_a, "ip").args(["link", "set", dev, "up"]));
    }
    wait_watching(&pair.ns_a, &agent, &[&pair.dev_a, &extra, &peer]);
    assert_eq!(
        netmon_tests::tcx_programs(&pair.ns_a, &extra),
        ["netmon_ingress", "netmon_egress"]
    );
    let metric = format!("interface=\"{extra}\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !curl(&pair.ns_a, &[&format!("http://{}/metrics", agent.addr)])
        .1
        .contains(&metric)
    {
        assert!(Instant::now() < deadline, "no series for {extra}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Deleting one end deletes both.
    sh(in_ns(&pair.ns_a, "ip").args(["link", "del", &extra]));
    wait_watching(&pair.ns_a, &agent, &[&pair.dev_a]);
    let now = collections(&health(&pair.ns_a, &agent));
    wait_collections(&pair.ns_a, &agent, now, 1);
    let (_, text) = curl(&pair.ns_a, &[&format!("http://{}/metrics", agent.addr)]);
    assert!(
        !text.contains(&metric),
        "{extra}'s series outlived it:\n{text}"
    );
    assert!(text.contains(&format!("interface=\"{}\"", pair.dev_a)));
}

/// A Prometheus server started by the test inside `ns`, stopped on drop, its data removed.
struct Prometheus {
    _child: Spawned,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Loopback inside the test's own namespace, so no port of the host's is taken.
const PROMETHEUS: &str = "127.0.0.1:19090";

fn start_prometheus(ns: &str, target: &str) -> Prometheus {
    let dir = std::env::temp_dir().join(netmon_tests::unique("nmprom"));
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: netmon\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("prometheus.yml");
    let child = Spawned(
        in_ns(ns, "prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={PROMETHEUS}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning prometheus (apt-get install prometheus)"),
    );
    Prometheus { _child: child, dir }
}

/// An instant PromQL query (at `time`, Unix seconds, if given): the one result's value.
fn promql(ns: &str, query: &str, time: Option<f64>) -> Option<f64> {
    let mut args = vec![
        "-G".to_string(),
        format!("http://{PROMETHEUS}/api/v1/query"),
        "--data-urlencode".into(),
        format!("query={query}"),
    ];
    if let Some(t) = time {
        args.extend(["--data-urlencode".into(), format!("time={t}")]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, body) = curl(ns, &refs);
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[test]
fn a_real_prometheus_stores_the_kernels_counts() {
    let pair = VethPair::new(false);
    let agent = start_agent(&pair.ns_a, &["-i", &pair.dev_a]);
    wait_collections(&pair.ns_a, &agent, 0, 1);
    let _prom = start_prometheus(&pair.ns_a, &agent.addr);
    let series = format!(
        "netmon_tc_bytes_total{{direction=\"egress\",interface=\"{}\"}}",
        pair.dev_a
    );
    // Bounded wait until Prometheus has scraped the agent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while promql(&pair.ns_a, &series, None).is_none() {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the agent"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Two more scrapes of the quiet link, then mark the start.
    std::thread::sleep(Duration::from_millis(2500));
    let t0 = unix_now();
    let before = pair.counters_a();

    let _server = netmon_tests::iperf3_server(&pair.ns_b, ADDR_B4);
    let start = Instant::now();
    netmon_tests::iperf3_client(
        &pair.ns_a,
        &["-c", ADDR_B4, "-u", "-l", "1400", "-b", "16M", "-t", "6"],
    );
    let busy = start.elapsed().as_secs_f64();
    pair.wait_quiet();
    let sent = pair.counters_a().since(&before).tx_bytes;
    // Let the agent collect and Prometheus scrape the quiet link twice more.
    std::thread::sleep(Duration::from_millis(2500));
    let t1 = unix_now();

    let at = |t| promql(&pair.ns_a, &series, Some(t)).expect("a stored sample");
    let stored = at(t1) - at(t0);
    assert_eq!(
        stored as u64, sent,
        "what Prometheus stored between the marks must be what the kernel counted"
    );
    // rate() over the marks. Prometheus divides the increase between the first and last samples
    // inside the window by the time between them, stretched towards the window's edges; with
    // scrapes 1 s apart, that time is at least the window less 2 s, and the link was quiet
    // near both edges. So rate() lies between the exact figure and window / (window - 2 s)
    // times it.
    let window_ms = ((t1 - t0) * 1000.0).round();
    let window = window_ms / 1000.0;
    let rate = promql(
        &pair.ns_a,
        &format!("rate({series}[{window_ms}ms])"),
        Some(t1),
    )
    .expect("a rate");
    let exact = sent as f64 / window;
    let upper = window / (window - 2.0);
    eprintln!(
        "stored {stored} B = kernel {sent} B; rate() {rate:.0} B/s vs {exact:.0} B/s over {window} s"
    );
    assert!(
        rate / exact >= 0.999 && rate / exact <= upper + 0.001,
        "rate() {rate:.0} B/s vs the kernel's {exact:.0} B/s over {window} s (traffic for {busy:.1} s)"
    );
    assert!(sent > 10_000_000, "{sent}");
}

/// A PromQL instant query's whole answer: `(status, result)`.
fn promql_result(ns: &str, query: &str) -> (String, Vec<Value>) {
    let q = format!("query={query}");
    let url = format!("http://{PROMETHEUS}/api/v1/query");
    let (_, body) = curl(ns, &["-G", &url, "--data-urlencode", &q]);
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let status = v["status"].as_str().unwrap_or("?").to_string();
    if status != "success" {
        return (format!("{status}: {}", v["error"]), Vec::new());
    }
    (
        status,
        v["data"]["result"].as_array().cloned().unwrap_or_default(),
    )
}

/// The dashboard as a Grafana dashboard model: schema version, a Prometheus datasource variable,
/// panels with unique ids on the 24-column grid, every query on that datasource, and no
/// variable used that is not defined.
fn check_dashboard_model(d: &Value) -> Vec<String> {
    assert!(
        d["schemaVersion"].as_u64().unwrap_or(0) >= 36,
        "schemaVersion"
    );
    assert!(d["title"].is_string() && d["uid"].is_string());
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "a Prometheus datasource variable: {vars:#?}"
    );
    let panels = d["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut ids = std::collections::HashSet::new();
    let mut exprs = Vec::new();
    for p in panels {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(
            x + w <= 24 && g["h"].as_u64().unwrap() > 0,
            "gridPos of {id}: {g}"
        );
        assert!(g["y"].is_u64(), "gridPos.y of {id}");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {id}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {id}");
            let e = t["expr"].as_str().expect("expr").to_string();
            for var in e.split('$').skip(1) {
                let name: String = var
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    names.contains(&name.as_str()) || name.starts_with("__"),
                    "panel {id} uses ${name}, which is not defined"
                );
            }
            exprs.push(e);
        }
    }
    exprs
}

/// The Grafana dashboard (`netmon/deploy/grafana-dashboard.json`) loads as a dashboard model, and
/// every PromQL expression in it, its variables' queries included, returns series from a real
/// Prometheus scraping a live agent (flow series on) while UDP and ping traffic flow.
#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../netmon/deploy/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let exprs = check_dashboard_model(&dash);

    let pair = VethPair::new(false);
    let agent = start_agent(
        &pair.ns_a,
        &["-i", &pair.dev_a, "--tick", "1", "--flow-series", "5"],
    );
    wait_collections(&pair.ns_a, &agent, 0, 1);
    let _prom = start_prometheus(&pair.ns_a, &agent.addr);
    let _server = netmon_tests::iperf3_server(&pair.ns_b, ADDR_B4);
    let ns = pair.ns_a.clone();
    // Bounded: 18 s of 2 Mbit/s, past the 15 s wait and the queries.
    let traffic = std::thread::spawn(move || {
        netmon_tests::iperf3_client(&ns, &["-c", ADDR_B4, "-u", "-b", "2M", "-t", "18"])
    });
    let mut ping = Spawned(
        in_ns(&pair.ns_a, "ping")
            .args(["-q", "-c", "100", "-i", "0.25", ADDR_B4])
            .stdout(Stdio::null())
            .spawn()
            .expect("ping"),
    );
    // Enough scrapes for a 10 s rate interval, and flows in the agent's 10 s window.
    std::thread::sleep(Duration::from_secs(15));

    let vars = |e: &str| {
        e.replace("$__rate_interval", "10s")
            .replace("$instance", ".*")
            .replace("$interface", &pair.dev_a)
    };
    let mut failed = Vec::new();
    // The variables' own queries, as Grafana runs them: label values of a series.
    let interfaces = promql_result(
        &pair.ns_a,
        "group by (interface) (netmon_interface_up{instance=~\".*\"})",
    )
    .1;
    assert!(
        interfaces
            .iter()
            .any(|s| s["metric"]["interface"] == pair.dev_a.as_str()),
        "the interface variable lists {}: {interfaces:?}",
        pair.dev_a
    );
    assert!(
        !promql_result(&pair.ns_a, "group by (instance) (netmon_up)")
            .1
            .is_empty()
    );
    for e in &exprs {
        let q = vars(e);
        let (status, result) = promql_result(&pair.ns_a, &q);
        eprintln!("{:>3} series  {q}", result.len());
        if status != "success" || result.is_empty() {
            failed.push(format!("{status}, {} series: {q}", result.len()));
        }
    }
    let _ = ping.0.kill();
    traffic.join().expect("iperf3");
    assert!(
        failed.is_empty(),
        "queries without data:\n{}",
        failed.join("\n")
    );
}

/// `/health` answers within 50 ms while the agent records ticks of 65,536 flows with per-flow
/// and per-process series on (ranking and grouping each tick): the collector holds no lock that
/// `/health` takes while it ranks, groups or reads the kernel. Two floods of 32,768 ports each
/// keep every flow moving; curl's own `time_total` is the latency (no process start in it).
#[test]
fn health_answers_within_50_ms_while_a_65536_flow_tick_is_recorded() {
    let pair = VethPair::new(false);
    let agent = start_agent(
        &pair.ns_a,
        &[
            "-i",
            &pair.dev_a,
            "--tick",
            "1",
            "--table-capacity",
            "262144",
            "--flow-series",
            "10",
            "--process-series",
            "10",
        ],
    );
    wait_collections(&pair.ns_a, &agent, 0, 1);
    let flood = |base: &str| {
        netmon_tests::Spawned(
            in_ns(&pair.ns_a, env!("CARGO_BIN_EXE_netmon-flood"))
                .args(["--dst", ADDR_B4, "--port-base", base, "--flows", "32768"])
                .args(["--pps", "45000", "--seconds", "40", "--payload", "22"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("netmon-flood"),
        )
    };
    // The same ports from two sockets: 2 × 32,768 connections.
    let _floods = [flood("1024"), flood("1024")];
    // Until the agent's ticks hold all the flows (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let h = health(&pair.ns_a, &agent);
        let flows = h["interfaces"][0]["flows_last_40s"].as_u64().unwrap_or(0);
        if flows >= 65_536 {
            eprintln!(
                "{flows} flows in the last 40 s, {} table entries",
                h["flow_table_entries"]
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {flows} flows after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // 8 s of /health every 20 ms, across eight ticks of 65,536 flows.
    let url = format!("http://{}/health", agent.addr);
    let mut times = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < until {
        let out = in_ns(&pair.ns_a, "curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{time_total}",
                &url,
            ])
            .output()
            .expect("curl");
        let t: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("time_total");
        times.push(t * 1000.0);
        std::thread::sleep(Duration::from_millis(20));
    }
    let collections = netmon_tests::agent::collections(&health(&pair.ns_a, &agent));
    times.sort_by(f64::total_cmp);
    let (median, max) = (times[times.len() / 2], times[times.len() - 1]);
    eprintln!(
        "/health over {} requests during ticks: median {median:.1} ms, max {max:.1} ms ({collections} collections)",
        times.len()
    );
    assert!(max < 50.0, "/health took {max:.1} ms at worst: {times:?}");
}

/// `netmon traffic` on a host whose agent runs asks the agent over its local socket: no bpf()
/// call at all in the CLI's process (strace), and the same figures as a classifier of its own
/// and as the kernel's counters, for a burst between quiet edges inside both windows.
#[test]
fn netmon_traffic_asks_the_local_agent_and_loads_nothing() {
    let pair = VethPair::new(false);
    let dir = tempdir("nmsock");
    let socket = dir.join("agent.sock");
    let agent_started = Instant::now();
    let agent = start_agent(
        &pair.ns_a,
        &[
            "-i",
            &pair.dev_a,
            "--local-socket",
            socket.to_str().unwrap(),
        ],
    );
    wait_collections(&pair.ns_a, &agent, 0, 1);
    assert!(
        socket.exists(),
        "the agent made no socket: {}",
        agent.banner
    );

    // A classifier of its own (--no-agent) around a burst of pings, between quiet edges.
    let before = pair.counters_a();
    let mut own = netmon_tests::spawn_netmon(
        &pair.ns_a,
        &[
            "traffic",
            "-i",
            &pair.dev_a,
            "-s",
            "4",
            "--json",
            "--no-agent",
        ],
    );
    let rest = netmon_tests::wait_attached(&mut own);
    sh(in_ns(&pair.ns_a, "ping").args(["-c", "20", "-i", "0.05", "-q", ADDR_B4]));
    let own = netmon_tests::finish_json(own, rest);
    let burst = pair.counters_a().since(&before);
    assert!(burst.tx_packets >= 20, "{burst:?}");
    // Two more collections, so the agent's history holds the whole burst.
    let now = collections(&health(&pair.ns_a, &agent));
    wait_collections(&pair.ns_a, &agent, now, 2);

    // The agent's last 10 s hold the burst and quiet on both sides; once it has watched for
    // 10 s it answers from its history at once.
    let watched = agent_started.elapsed();
    std::thread::sleep(Duration::from_millis(10_500).saturating_sub(watched));
    let started = Instant::now();
    let traced = in_ns(&pair.ns_a, "strace")
        .args(["-f", "-qq", "-e", "trace=bpf", "-o"])
        .arg(dir.join("strace"))
        .arg(netmon_tests::netmon_bin())
        .args(["traffic", "-i", &pair.dev_a, "-s", "10", "--json"])
        .env("NETMON_AGENT_SOCKET", &socket)
        .output()
        .expect("strace (apt-get install strace)");
    let took = started.elapsed();
    assert!(
        traced.status.success(),
        "{}",
        String::from_utf8_lossy(&traced.stderr)
    );
    let asked: Value = serde_json::from_slice(&traced.stdout).expect("JSON");
    let calls = std::fs::read_to_string(dir.join("strace")).unwrap_or_default();
    assert_eq!(
        calls.matches("bpf(").count(),
        0,
        "the CLI made bpf() calls:\n{calls}"
    );
    let notes = asked["data"]["notes"].to_string();
    assert!(notes.contains("answered by the netmon agent"), "{notes}");
    eprintln!("netmon traffic -s 10 through the agent: {took:?} wall time");

    // Both equal the kernel's counters: every frame was IP bar ARP (28 B of payload, not IP).
    for (who, r) in [("its own classifier", &own), ("the agent", &asked)] {
        let t = &r["data"]["total_stats"];
        let ip_packets = netmon_tests::u(&t["tx_packets"]);
        let ip_bytes = netmon_tests::u(&t["tx_bytes"]);
        let arp = burst.tx_packets - ip_packets;
        assert!(arp <= 2, "{who}: {arp} non-IP frames of {burst:?}");
        assert_eq!(
            ip_bytes + 28 * arp + 14 * burst.tx_packets,
            burst.tx_bytes,
            "{who}: {t}"
        );
        let rx = netmon_tests::u(&t["rx_bytes"]) + 14 * netmon_tests::u(&t["rx_packets"]);
        let rx_arp = burst.rx_packets - netmon_tests::u(&t["rx_packets"]);
        assert_eq!(rx + 42 * rx_arp, burst.rx_bytes, "{who}: {t}");
    }
    assert_eq!(
        own["data"]["total_stats"]["tx_bytes"],
        asked["data"]["total_stats"]["tx_bytes"]
    );

    // A CLI in another network namespace is not answered by this agent: it samples itself.
    let other = in_ns(&pair.ns_b, netmon_tests::netmon_bin().to_str().unwrap())
        .args(["traffic", "-i", &pair.dev_b, "-s", "1", "--json"])
        .env("NETMON_AGENT_SOCKET", &socket)
        .output()
        .expect("netmon");
    let other: Value = serde_json::from_slice(&other.stdout).expect("JSON");
    assert!(
        !other["data"]["notes"]
            .to_string()
            .contains("answered by the netmon agent"),
        "{other}"
    );
}

/// A directory of its own under /tmp that the least-privileged agent (uid 65534) can write,
/// removed when the test ends.
fn tempdir(prefix: &str) -> TempDir {
    let d = std::env::temp_dir().join(netmon_tests::unique(prefix));
    std::fs::create_dir_all(&d).expect("temp dir");
    sh(std::process::Command::new("chmod").args(["1777"]).arg(&d));
    TempDir(d)
}

struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
