//! Ground truth for netmon's traffic results: the kernel's interface counters and iperf3's own
//! report of the streams it ran. Shared by the CLI tests and the MCP tests, which must agree with
//! the same truth in the same way.

use crate::{Counters, u};
use serde_json::Value;

const ETH_HLEN: u64 = 14;

/// What traffic ran, and how the link was set up.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub v6: bool,
    pub udp: bool,
    pub parallel: u32,
    pub offloads: bool,
}

impl Case {
    /// iperf3 client arguments for 10 MiB to `server`.
    pub fn iperf3_args(&self, server: &str) -> Vec<String> {
        let mut args: Vec<String> = ["-c", server, "-n", "10M", "-P"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(self.parallel.to_string());
        if self.udp {
            args.extend(["-u", "-l", "1400", "-b", "200M"].map(String::from));
        }
        args
    }
}

/// One iperf3 data stream as iperf3 saw it.
pub struct Stream {
    local_port: u64,
    payload: u64,
    /// TCP only: bytes the server read, and segments the sender retransmitted. When the server
    /// ends the test, bytes still queued at the sender never cross, so `payload` (written to the
    /// socket) can exceed what was on the wire.
    received: u64,
    retransmits: u64,
    /// UDP only: datagrams iperf3 sent.
    packets: Option<u64>,
}

pub fn streams(report: &Value, udp: bool) -> Vec<Stream> {
    let connected = report["start"]["connected"]
        .as_array()
        .expect("start.connected");
    let ends = report["end"]["streams"].as_array().expect("end.streams");
    connected
        .iter()
        .map(|c| {
            let socket = &c["socket"];
            let end = ends
                .iter()
                .find(|s| {
                    if udp {
                        &s["udp"]["socket"] == socket
                    } else {
                        &s["sender"]["socket"] == socket
                    }
                })
                .expect("stream end for socket");
            let (payload, packets) = if udp {
                (
                    end["udp"]["bytes"].as_u64().unwrap(),
                    end["udp"]["packets"].as_u64(),
                )
            } else {
                (end["sender"]["bytes"].as_u64().unwrap(), None)
            };
            Stream {
                local_port: c["local_port"].as_u64().unwrap(),
                payload,
                received: end["receiver"]["bytes"].as_u64().unwrap_or(payload),
                retransmits: end["sender"]["retransmits"].as_u64().unwrap_or(0),
                packets,
            }
        })
        .collect()
}

/// What a network namespace's TCP stack counted (`/proc/net/snmp`, which is per namespace):
/// segments sent, segments sent again, segments received. Independent of netmon: the kernel
/// counts them where TCP builds and takes segments, a GSO super-packet as the segments it
/// becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segments {
    /// `OutSegs`: sent, not counting retransmissions.
    pub out: u64,
    /// `RetransSegs`.
    pub retrans: u64,
    /// `InSegs`.
    pub received: u64,
}

impl Segments {
    pub fn read(ns: &str) -> Self {
        let out = crate::sh(crate::in_ns(ns, "cat").arg("/proc/net/snmp"));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (
            tcp.next().expect("Tcp: names"),
            tcp.next().expect("Tcp: values"),
        );
        let get = |name: &str| -> u64 {
            let i = names
                .split_whitespace()
                .position(|n| n == name)
                .unwrap_or_else(|| panic!("no {name} in /proc/net/snmp"));
            values.split_whitespace().nth(i).unwrap().parse().unwrap()
        };
        Self {
            out: get("OutSegs"),
            retrans: get("RetransSegs"),
            received: get("InSegs"),
        }
    }

    pub fn since(&self, before: &Self) -> Self {
        Self {
            out: self.out - before.out,
            retrans: self.retrans - before.retrans,
            received: self.received - before.received,
        }
    }
}

/// Checks a `get_interface_traffic` result (`{success, message, data}`) for the interface the
/// iperf3 client ran on, `a` being its address and `b` the server's: totals exactly against the
/// kernel's counters, connections adding up to the totals, TCP's packets against the segments
/// the client's namespace counted, each iperf3 stream against iperf3.
#[allow(clippy::too_many_arguments)]
pub fn check(
    result: &Value,
    iface: &str,
    kernel: Counters,
    segments: Segments,
    report: &Value,
    case: Case,
    a: &str,
    b: &str,
) {
    assert_eq!(result["success"], true, "{result:#}");
    let data = &result["data"];
    assert_eq!(data["source"], "ebpf");
    assert_eq!(data["total_stats"]["interface"], iface);
    check_totals(data, kernel, case.offloads);
    check_partition(data);
    check_segments(data, segments);
    check_streams(data, report, case, a, b);
}

/// The TCP connections' packets, summed, against the segments the namespace's stack counted
/// over the same span (all its TCP went through the interface): sent = `OutSegs` +
/// `RetransSegs`, received = `InSegs`, exactly. The stream check below takes each stream's
/// headers from netmon's packet count; this is what holds that count to an independent one.
pub fn check_segments(data: &Value, segments: Segments) {
    let conns = data["top_connections"].as_array().expect("top_connections");
    let tcp = conns.iter().filter(|c| c["protocol"] == "tcp");
    let (tx, rx) = tcp.fold((0, 0), |(tx, rx), c| {
        (tx + u(&c["tx_packets"]), rx + u(&c["rx_packets"]))
    });
    eprintln!(
        "segments: netmon tcp tx {tx} rx {rx} packets; the stack sent {} (+{} again), received {}",
        segments.out, segments.retrans, segments.received
    );
    assert_eq!(
        tx,
        segments.out + segments.retrans,
        "TCP packets sent vs the namespace's OutSegs + RetransSegs"
    );
    assert_eq!(rx, segments.received, "TCP packets received vs InSegs");
}

/// The contract's MB and Mbps agree with the exact integers beside them and the window.
pub fn check_units(t: &Value) {
    let window_ns = u(&t["window_ns"]);
    assert!(window_ns > 0, "empty window");
    for dir in ["rx", "tx"] {
        let bytes = u(&t[&format!("{dir}_bytes")]);
        let bps = u(&t[&format!("{dir}_bps")]);
        let expect_bps =
            (u128::from(bytes) * 8_000_000_000 + u128::from(window_ns) / 2) / u128::from(window_ns);
        assert_eq!(u128::from(bps), expect_bps, "{dir}_bps");
        let mb = t[&format!("{dir}_total")].as_f64().expect("MB");
        assert!(
            (mb - bytes as f64 / 1e6).abs() < 1e-9,
            "{dir}_total {mb} MB vs {bytes} B"
        );
        let mbps = t[&format!("{dir}_rate_avg")].as_f64().expect("Mbps");
        assert!(
            (mbps - bps as f64 / 1e6).abs() < 1e-9,
            "{dir}_rate_avg {mbps} vs {bps} bit/s"
        );
    }
    let secs = t["window_seconds"].as_f64().expect("window_seconds");
    assert!((secs - window_ns as f64 / 1e9).abs() < 1e-9);
}

/// Totals against the kernel's counters of the same interface over a span that holds the
/// window, with nothing else on the link.
pub fn check_totals(data: &Value, kernel: Counters, offloads: bool) {
    let t = &data["total_stats"];
    check_units(t);

    // Totals against the kernel's counters, exactly. TCP always builds GSO super-packets; with
    // offloads off the kernel splits them *after* the TC hook and counts wire packets, with them
    // on veth carries the super-packets and counts those. netmon keeps both views: skbs as seen
    // (`frames`, `frame_bytes`) and wire packets (`*_packets`, `*_bytes`, L3).
    for (dir, k_packets, k_bytes) in [
        ("rx", kernel.rx_packets, kernel.rx_bytes),
        ("tx", kernel.tx_packets, kernel.tx_bytes),
    ] {
        let d = &t[dir];
        let (other_frames, other_bytes) = (u(&d["other_frames"]), u(&d["other_bytes"]));
        let (ip_bytes, ip_packets) = (
            u(&t[&format!("{dir}_bytes")]),
            u(&t[&format!("{dir}_packets")]),
        );
        if offloads {
            assert_eq!(u(&d["frames"]), k_packets, "{dir} frames vs kernel packets");
            assert_eq!(
                u(&d["frame_bytes"]),
                k_bytes,
                "{dir} frame bytes vs kernel bytes"
            );
            assert!(
                ip_packets >= u(&d["frames"]) - other_frames,
                "{dir}: fewer wire packets than skbs"
            );
        } else {
            assert_eq!(
                ip_packets + other_frames,
                k_packets,
                "{dir} wire packets vs kernel packets"
            );
            assert_eq!(
                ip_bytes + ETH_HLEN * ip_packets + other_bytes,
                k_bytes,
                "{dir} L3 + 14/packet vs kernel L2 bytes"
            );
        }
        assert_eq!(u(&d["unattributed_bytes"]), 0);
    }
    eprintln!(
        "totals: kernel rx {} B/{} frames tx {} B/{} frames; netmon L3 rx {} B/{} pkts tx {} B/{} pkts",
        kernel.rx_bytes,
        kernel.rx_packets,
        kernel.tx_bytes,
        kernel.tx_packets,
        u(&t["rx_bytes"]),
        u(&t["rx_packets"]),
        u(&t["tx_bytes"]),
        u(&t["tx_packets"])
    );
}

/// The connections partition the totals exactly: every byte the kernel counted is in one
/// connection, or unattributed (none here). Needs `top` to cover every connection.
pub fn check_partition(data: &Value) {
    let t = &data["total_stats"];
    let conns = data["top_connections"].as_array().expect("top_connections");
    assert_eq!(
        u(&data["connections_seen"]) as usize,
        conns.len(),
        "all connections must be listed"
    );
    for dir in ["rx", "tx"] {
        let (b, p) = (format!("{dir}_bytes"), format!("{dir}_packets"));
        let sum_b: u64 = conns.iter().map(|c| u(&c[&b])).sum();
        let sum_p: u64 = conns.iter().map(|c| u(&c[&p])).sum();
        assert_eq!(
            sum_b,
            u(&t[&b]),
            "{dir}: connection bytes must add up to the total"
        );
        assert_eq!(
            sum_p,
            u(&t[&p]),
            "{dir}: connection packets must add up to the total"
        );
    }
}

/// Every iperf3 data stream of `report` is a connection with the right endpoints and about its
/// bytes: within 1% of iperf3's payload plus headers.
pub fn check_streams(data: &Value, report: &Value, case: Case, a: &str, b: &str) {
    let conns = data["top_connections"].as_array().expect("top_connections");
    let ip_hdr = if case.v6 { 40 } else { 20 };
    for s in streams(report, case.udp) {
        let c = conns
            .iter()
            .find(|c| c["local_port"] == s.local_port && c["remote_port"] == 5201)
            .unwrap_or_else(|| panic!("no connection for local port {}: {conns:#?}", s.local_port));
        assert_eq!(c["local_addr"], a);
        assert_eq!(c["remote_addr"], b);
        assert_eq!(c["protocol"], if case.udp { "udp" } else { "tcp" });
        let (tx_bytes, tx_packets) = (u(&c["tx_bytes"]), u(&c["tx_packets"]));
        let expected = if case.udp {
            let datagrams = s.packets.expect("udp packets");
            // iperf3 opens a UDP stream with one 4-byte datagram of its own.
            assert!(
                tx_packets == datagrams || tx_packets == datagrams + 1,
                "udp packets {tx_packets} vs iperf3 {datagrams}"
            );
            s.payload + datagrams * (ip_hdr + 8)
        } else {
            let hdr = ip_hdr + 32; // TCP timestamps: 32-byte TCP header
            let mss = 1500 - hdr;
            if s.received != s.payload || s.retransmits > 0 {
                // Not everything written crossed, or some crossed twice: the wire payload lies
                // between what the server read and what was written plus retransmits.
                let low = s.received + s.received.div_ceil(mss) * hdr;
                let high = s.payload + (s.retransmits + 1) * mss + tx_packets * hdr;
                eprintln!(
                    "stream :{}: iperf3 wrote {} B, server read {} B, {} retransmits; netmon tx {tx_bytes} B must be in [{low}, {high}]",
                    s.local_port, s.payload, s.received, s.retransmits
                );
                assert!(
                    (low..=high).contains(&tx_bytes),
                    "flow bytes {tx_bytes} outside [{low}, {high}]"
                );
                continue;
            }
            let min_segments = s.payload.div_ceil(mss);
            assert!(
                tx_packets >= min_segments,
                "tcp packets {tx_packets}: {} B of payload needs at least {min_segments} segments",
                s.payload
            );
            s.payload + tx_packets * hdr
        };
        let err = (tx_bytes as f64 - expected as f64).abs() / expected as f64;
        eprintln!(
            "stream :{}: iperf3 payload {} B, expected with headers {expected} B, netmon tx {tx_bytes} B in {tx_packets} pkts ({:.4}% off)",
            s.local_port,
            s.payload,
            err * 100.0
        );
        assert!(
            err < 0.01,
            "flow bytes {tx_bytes} vs expected {expected}: {:.3}% off",
            err * 100.0
        );
    }
}
