//! The human view: reads like `iftop -t` (local host on the `=>` line, remote on `<=`), with
//! iftop's units: rates in bits (b/Kb/Mb; bytes with `-B`) and the cumulative column in bytes,
//! both 1024-based. Names stand in for addresses and ports where the result has them, as in
//! iftop; the JSON keeps both.

use crate::interface::InterfaceInfo;
use crate::rank::GroupBy;
use crate::report::{Connection, TrafficData};
use crate::units::iftop_size;
use std::fmt::Write as _;

const WIDTH: usize = 92;

/// `s` with every control character (C0, DEL and C1: all below U+00A0) written as `\xHH`,
/// so that text others wrote (a process's name and command line, a container's or pod's name,
/// an interface name, a DNS answer) cannot move a terminal's cursor, change its colours or ring
/// it. Every human view passes what it prints through this.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A whole view, line by line: the newlines are the view's own; every other control character
/// in it came from a field and is escaped ([`printable`]).
fn printable_lines(view: String) -> String {
    if !view.chars().any(|c| c.is_control() && c != '\n') {
        return view;
    }
    view.split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n")
}

/// How the text is drawn.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// Rates in bytes per second (iftop's `-B`) instead of bits.
    pub rate_bytes: bool,
}

fn endpoint(addr: &str, name: Option<&str>, port: Option<u16>, service: Option<&str>) -> String {
    let host = name.unwrap_or(addr);
    let port = service
        .map(str::to_string)
        .or_else(|| port.map(|p| p.to_string()));
    match port {
        Some(p) if name.is_none() && addr.contains(':') => format!("[{addr}]:{p}"),
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn rate(bps: u64, style: Style) -> String {
    if style.rate_bytes {
        iftop_size(bps as f64 / 8.0, false)
    } else {
        iftop_size(bps as f64, true)
    }
}

fn bytes(b: u64) -> String {
    iftop_size(b as f64, false)
}

fn row(
    out: &mut String,
    n: Option<usize>,
    host: &str,
    arrow: &str,
    bps: u64,
    total: u64,
    style: Style,
) {
    let num = n
        .map(|n| format!("{n:>4}"))
        .unwrap_or_else(|| "    ".into());
    let _ = writeln!(
        out,
        "{num} {host:<40} {arrow} {:>10} {:>10}",
        rate(bps, style),
        bytes(total)
    );
}

fn connection(out: &mut String, n: usize, c: &Connection, style: Style) {
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
    let local = endpoint(
        c.local_addr.as_deref().unwrap_or(""),
        c.local_name.as_deref(),
        c.local_port,
        c.local_service.as_deref(),
    ) + &proto;
    row(out, Some(n), &local, "=>", c.tx_bps, c.tx_bytes, style);
    let remote = endpoint(
        c.remote_addr.as_deref().unwrap_or(""),
        c.remote_name.as_deref(),
        c.remote_port,
        c.remote_service.as_deref(),
    );
    row(out, None, &remote, "<=", c.rx_bps, c.rx_bytes, style);
}

/// Who a row of an owner grouping is, for the text view.
fn owner_label(c: &Connection) -> String {
    if let Some(r) = c.unattributed_reason {
        return format!("unattributed: {}", r.label());
    }
    if let Some(p) = &c.process {
        return p
            .cmdline
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| p.comm.clone());
    }
    "this host's processes".into()
}

/// nethogs' view: one row per process (PID, USER, PROGRAM) or per container, sent and received.
fn owners(out: &mut String, d: &TrafficData, style: Style) {
    let by_process = d.group_by == GroupBy::Process;
    if by_process {
        let _ = writeln!(
            out,
            "{:>7} {:<9} {:<40} {:>10} {:>10} {:>9} {:>9}",
            "PID", "USER", "PROGRAM", "SENT", "RECEIVED", "SENT", "RECEIVED"
        );
    } else {
        let _ = writeln!(
            out,
            "{:<14} {:<10} {:<31} {:>10} {:>10} {:>9} {:>9}",
            "CONTAINER", "RUNTIME", "POD", "SENT", "RECEIVED", "SENT", "RECEIVED"
        );
    }
    for c in &d.top_connections {
        let figures = format!(
            "{:>10} {:>10} {:>9} {:>9}",
            rate(c.tx_bps, style),
            rate(c.rx_bps, style),
            bytes(c.tx_bytes),
            bytes(c.rx_bytes)
        );
        let mut label = owner_label(c);
        if by_process {
            let (pid, user) = match &c.process {
                Some(p) => (
                    p.pid.to_string(),
                    p.user.clone().unwrap_or_else(|| p.uid.to_string()),
                ),
                None => (String::new(), String::new()),
            };
            label.truncate(40);
            let _ = writeln!(out, "{pid:>7} {user:<9} {label:<40} {figures}");
        } else {
            let (id, runtime, pod) = match &c.container {
                Some(k) => (
                    k.id.chars().take(12).collect::<String>(),
                    serde_json::to_value(k.runtime)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    k.pod
                        .as_ref()
                        .map(|p| match (&p.namespace, &p.name) {
                            (Some(ns), Some(n)) => format!("{ns}/{n}"),
                            _ => p.uid.clone(),
                        })
                        .unwrap_or_default(),
                ),
                None => {
                    label.truncate(56);
                    let _ = writeln!(out, "{label:<57} {figures}");
                    continue;
                }
            };
            let _ = writeln!(out, "{id:<14} {runtime:<10} {pod:<31} {figures}");
        }
    }
}

pub fn traffic(d: &TrafficData, style: Style) -> String {
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
    if let Some(f) = &d.filter {
        let _ = writeln!(out, "Filter: {f}");
    }
    if !d.networks.is_empty() {
        let _ = writeln!(
            out,
            "Network: {} (its end on the left)",
            d.networks.join(", ")
        );
    }
    let window = format!("last {:.0}s", t.window_seconds);
    let _ = writeln!(
        out,
        "   # Host name (port/service if enabled)           {window:>11} {:>10}",
        "cumulative"
    );
    let line = "-".repeat(WIDTH);
    let _ = writeln!(out, "{line}");
    match d.group_by {
        GroupBy::Process | GroupBy::Container => owners(&mut out, d, style),
        _ => {
            for (i, c) in d.top_connections.iter().enumerate() {
                connection(&mut out, i + 1, c, style);
            }
        }
    }
    let _ = writeln!(out, "{line}");
    let total = |label: &str, bps: u64| format!("{label:<48} {:>10}\n", rate(bps, style));
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
    if let Some(all) = &d.interface_totals {
        let _ = writeln!(
            out,
            "{:<48} {:>10} {:>10} {:>10}",
            "Whole interface, unfiltered (sent/received/total):",
            bytes(all.tx_bytes),
            bytes(all.rx_bytes),
            bytes(all.tx_bytes + all.rx_bytes)
        );
    }
    let unattributed = |d: &Option<crate::measurement::DirectionDetail>| {
        d.as_ref().map_or(0, |d| d.unattributed_bytes)
    };
    let whole = d.interface_totals.as_ref().unwrap_or(t);
    let lost = unattributed(&whole.rx) + unattributed(&whole.tx);
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
    for n in &d.notes {
        let _ = writeln!(out, "note: {n}");
    }
    printable_lines(out)
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
    printable_lines(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(printable("iperf3 -c 10.0.0.1"), "iperf3 -c 10.0.0.1");
        assert_eq!(
            printable("evil\x1b[2J\x1b]0;pwned\x07\r\u{9b}31m"),
            "evil\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x9b31m"
        );
        assert_eq!(printable("café ✓"), "café ✓");
        let view = printable_lines("line one\nname \x1b[31mred\n".to_string());
        assert_eq!(view, "line one\nname \\x1b[31mred\n");
    }
}
