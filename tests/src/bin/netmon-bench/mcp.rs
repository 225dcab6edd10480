//! MCP overhead and memory, through the real Python `mcp` SDK over stdio: the wall time of
//! `get_interface_traffic` beyond `sample_seconds`, `list_network_interfaces` latency, and the
//! resident memory of `netmon serve` idle and after a sample of 65,000 flows.

use crate::proc::{median, status_kib};
use netmon_tests::mcp::{Handshake, PyClient, read_log};
use netmon_tests::{ADDR_B4, VethPair, in_ns, sh};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const SAMPLE_SECONDS: u64 = 3;
const BIG_FLOWS: u32 = 65_000;

#[derive(Clone, Debug, Serialize)]
pub struct McpCost {
    pub list_calls: usize,
    pub list_latency_ms: Vec<f64>,
    pub list_latency_median_ms: f64,
    pub traffic_calls: usize,
    pub sample_seconds: u64,
    /// Client-measured wall time minus `sample_seconds`, per call.
    pub traffic_overhead_ms: Vec<f64>,
    pub traffic_overhead_median_ms: f64,
    pub rss_idle_kib: u64,
    pub rss_after_big_sample_kib: u64,
    pub peak_rss_kib: u64,
    /// Connections the big sample saw, and bytes it could not attribute (must be 0).
    pub big_sample_connections: u64,
    pub big_sample_unattributed_bytes: u64,
}

fn elapsed_ms(ev: &Value) -> f64 {
    ev["elapsed"].as_f64().unwrap_or(f64::NAN) * 1e3
}

fn server_pid(pidfile: &Path) -> u32 {
    let text = std::fs::read_to_string(pidfile).expect("netmon's pidfile");
    text.trim().parse().expect("a PID")
}

pub fn measure(flood: &Path, lists: usize, calls: usize) -> McpCost {
    let pair = VethPair::new(false);
    let dir = std::env::temp_dir().join(netmon_tests::unique("nmbench"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pidfile = dir.join("netmon.pid");
    let list = json!({"op": "call", "tool": "list_network_interfaces", "args": {}});
    let traffic = json!({"op": "call", "tool": "get_interface_traffic",
        "args": {"iface": pair.dev_a, "sample_seconds": SAMPLE_SECONDS}});
    let mut plan = vec![json!({"op": "wait", "label": "idle"})];
    plan.extend((0..lists).map(|i| {
        let mut s = list.clone();
        s["label"] = json!(format!("list{i}"));
        s
    }));
    plan.extend((0..calls).map(|i| {
        let mut s = traffic.clone();
        s["label"] = json!(format!("traffic{i}"));
        s
    }));
    plan.push(
        json!({"op": "call", "label": "big", "tool": "get_interface_traffic",
        "args": {"iface": pair.dev_a, "sample_seconds": 5}}),
    );
    plan.push(json!({"op": "wait", "label": "loaded"}));
    let mut client = PyClient::stdio(&pair.ns_a, &pidfile, Handshake::Initialize, &json!(plan));
    let t = Duration::from_secs(60);
    client.until("waiting", t);
    let pid = server_pid(&pidfile);
    let rss_idle = status_kib(pid, "VmRSS").unwrap_or(0);
    client.go();

    let (mut list_ms, mut overhead_ms) = (vec![], vec![]);
    for _ in 0..(lists + calls) {
        let ev = client.until("result", t).pop().expect("a result");
        assert_eq!(ev["is_error"], false, "call failed: {ev}");
        let label = ev["label"].as_str().unwrap_or_default();
        if label.starts_with("list") {
            list_ms.push(elapsed_ms(&ev));
        } else {
            overhead_ms.push(elapsed_ms(&ev) - SAMPLE_SECONDS as f64 * 1e3);
        }
    }
    // The big sample: flood 65,000 flows once its window has started.
    client.until("progress", t);
    sh(
        in_ns(&pair.ns_a, flood.to_str().expect("utf-8 path")).args([
            "--dst",
            ADDR_B4,
            "--port-base",
            "500",
            "--flows",
            &BIG_FLOWS.to_string(),
            "--seconds",
            "2",
        ]),
    );
    let big = client.until("result", t).pop().expect("a result");
    assert_eq!(
        big["is_error"],
        false,
        "big sample failed: {big}\n{}",
        read_log(&client.log)
    );
    client.until("waiting", t);
    let rss_loaded = status_kib(pid, "VmRSS").unwrap_or(0);
    let peak = status_kib(pid, "VmHWM").unwrap_or(0);
    client.go();
    client.until("done", t);
    let _ = client.wait_exit(Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&dir);

    let data = &big["structured"]["data"];
    let unattributed = ["rx", "tx"]
        .iter()
        .map(|d| {
            data["total_stats"][d]["unattributed_bytes"]
                .as_u64()
                .unwrap_or(u64::MAX)
        })
        .fold(0u64, u64::saturating_add);
    McpCost {
        list_calls: list_ms.len(),
        list_latency_median_ms: median(&list_ms).unwrap_or(f64::NAN),
        list_latency_ms: list_ms,
        traffic_calls: overhead_ms.len(),
        sample_seconds: SAMPLE_SECONDS,
        traffic_overhead_median_ms: median(&overhead_ms).unwrap_or(f64::NAN),
        traffic_overhead_ms: overhead_ms,
        rss_idle_kib: rss_idle,
        rss_after_big_sample_kib: rss_loaded,
        peak_rss_kib: peak,
        big_sample_connections: data["connections_seen"].as_u64().unwrap_or(0),
        big_sample_unattributed_bytes: unattributed,
    }
}
