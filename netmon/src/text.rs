//! The human view: reads like `iftop -t` (local host on the `=>` line, remote on `<=`), with
//! iftop's units: rates in bits (b/Kb/Mb) and the cumulative column in bytes, both 1024-based.

use crate::interface::InterfaceInfo;
use crate::report::{Connection, TrafficData};
use crate::units::iftop_size;
use std::fmt::Write as _;

const WIDTH: usize = 92;

fn endpoint(addr: &str, port: Option<u16>) -> String {
    match port {
        Some(p) if addr.contains(':') => format!("[{addr}]:{p}"),
        Some(p) => format!("{addr}:{p}"),
        None => addr.to_string(),
    }
}

fn rate(bps: u64) -> String {
    iftop_size(bps as f64, true)
}

fn bytes(b: u64) -> String {
    iftop_size(b as f64, false)
}

fn row(out: &mut String, n: Option<usize>, host: &str, arrow: &str, bps: u64, total: u64) {
    let num = n
        .map(|n| format!("{n:>4}"))
        .unwrap_or_else(|| "    ".into());
    let _ = writeln!(
        out,
        "{num} {host:<40} {arrow} {:>10} {:>10}",
        rate(bps),
        bytes(total)
    );
}

fn connection(out: &mut String, n: usize, c: &Connection) {
    let proto = c
        .protocol
        .map(|p| {
            format!(
                " ({})",
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let local = endpoint(&c.local_addr, c.local_port) + &proto;
    row(out, Some(n), &local, "=>", c.tx_bps, c.tx_bytes);
    row(
        out,
        None,
        &endpoint(&c.remote_addr, c.remote_port),
        "<=",
        c.rx_bps,
        c.rx_bytes,
    );
}

pub fn traffic(d: &TrafficData) -> String {
    let t = &d.total_stats;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Listening on {} ({} on {})",
        t.interface,
        serde_json::to_value(d.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        d.host
    );
    let window = format!("last {:.0}s", t.window_seconds);
    let _ = writeln!(
        out,
        "   # Host name (port/service if enabled)           {window:>11} {:>10}",
        "cumulative"
    );
    let line = "-".repeat(WIDTH);
    let _ = writeln!(out, "{line}");
    for (i, c) in d.top_connections.iter().enumerate() {
        connection(&mut out, i + 1, c);
    }
    let _ = writeln!(out, "{line}");
    let total = |label: &str, bps: u64| format!("{label:<48} {:>10}\n", rate(bps));
    out += &total("Total send rate:", t.tx_bps);
    out += &total("Total receive rate:", t.rx_bps);
    out += &total("Total send and receive rate:", t.tx_bps + t.rx_bps);
    let _ = writeln!(out, "{line}");
    let _ = writeln!(
        out,
        "{:<48} {:>10} {:>10} {:>10}",
        "Cumulative (sent/received/total):",
        bytes(t.tx_bytes),
        bytes(t.rx_bytes),
        bytes(t.tx_bytes + t.rx_bytes)
    );
    if let (Some(tx), Some(rx)) = (t.tx_packets, t.rx_packets) {
        let _ = writeln!(
            out,
            "{:<48} {:>10} {:>10}",
            "Packets (sent/received):", tx, rx
        );
    }
    let unattributed = |d: &Option<crate::measurement::DirectionDetail>| {
        d.as_ref().map_or(0, |d| d.unattributed_bytes)
    };
    let lost = unattributed(&t.rx) + unattributed(&t.tx);
    if lost > 0 {
        let _ = writeln!(
            out,
            "Not in any connection (flow table full): {} (raise --table-capacity)",
            bytes(lost)
        );
    }
    let _ = writeln!(out, "{}", "=".repeat(WIDTH));
    let _ = writeln!(
        out,
        "{} of {} connections shown, sorted by {:?}",
        d.top_connections.len(),
        d.connections_seen,
        d.sort
    );
    out
}

pub fn interfaces(list: &[InterfaceInfo]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5}  {:<16} {:<5} {:<9} {:>6}  {:<17}  addresses",
        "index", "name", "up", "kind", "mtu", "mac"
    );
    for i in list {
        let kind = serde_json::to_value(i.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let addrs: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(
            out,
            "{:>5}  {:<16} {:<5} {:<9} {:>6}  {:<17}  {}",
            i.index,
            i.name,
            if i.up { "up" } else { "down" },
            kind,
            i.mtu,
            i.mac.as_deref().unwrap_or("-"),
            addrs.join(" ")
        );
    }
    out
}
