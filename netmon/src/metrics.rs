//! The agent's Prometheus metrics: NetProbe's set under a `netmon_` prefix, plus the flow table's
//! fill and overflow. Encoded by the `prometheus` crate, never by hand.
//!
//! Counters grow by exactly what each collection's diff found, so `rate()` over them is the
//! kernel's count. They start at zero when the agent attaches, which Prometheus reads as a
//! counter reset after a restart, as it should. The text is Prometheus's exposition format 0.0.4
//! (the `prometheus` crate), which every scraper reads and `promtool check metrics` lints.

use crate::flow::{FlowId, Protocol};
use crate::interface::InterfaceInfo;
use crate::owner::Container;
use crate::snapshot::{Sample, TableFill};
use crate::window::{Rate, Rolling};
use netmon_common::DirTotals;
use prometheus::{Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use prometheus::{Opts, Registry, TextEncoder};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

const DIRECTIONS: [&str; 2] = ["ingress", "egress"];
const IF_LABELS: &[&str] = &["interface", "ifindex"];
const DIR_LABELS: &[&str] = &["interface", "ifindex", "direction"];
const OVERFLOW_LABELS: &[&str] = &["interface", "ifindex", "direction", "reason"];
const REASONS: [&str; 2] = ["table_full", "insert_failed"];
const EVICT_LABELS: &[&str] = &["reason"];
const ROLLING_LABELS: &[&str] = &["interface", "ifindex", "direction", "window"];
/// iftop's columns: the averages over [`crate::window::SPANS`], then the peak.
const WINDOWS: [&str; 4] = ["2s", "10s", "40s", "peak_40s"];
const FLOW_LABELS: &[&str] = &[
    "interface",
    "direction",
    "protocol",
    "local",
    "local_port",
    "remote",
    "remote_port",
];
/// Most per-flow series one interface may export (`--flow-series`).
pub const MAX_FLOW_SERIES: usize = 100;

/// Why idle flows left the kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictReason {
    /// Quiet for longer than the agent's `--evict-idle`.
    Idle,
    /// The table was three-quarters full, so flows quiet for two ticks went.
    Pressure,
}

impl EvictReason {
    fn label(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Pressure => "pressure",
        }
    }
}

fn protocol_label(n: u8) -> String {
    match Protocol::from_number(n) {
        Protocol::Tcp => "tcp".into(),
        Protocol::Udp => "udp".into(),
        Protocol::Icmp => "icmp".into(),
        Protocol::Icmpv6 => "icmpv6".into(),
        Protocol::Sctp => "sctp".into(),
        Protocol::Other => n.to_string(),
    }
}

/// A container's runtime, pod namespace and pod name, as label values.
fn container_labels(c: &Container) -> (String, String, String) {
    let runtime = serde_json::to_value(c.runtime)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let (ns, name) = c
        .pod
        .as_ref()
        .map(|p| {
            (
                p.namespace.clone().unwrap_or_default(),
                p.name.clone().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    (runtime, ns, name)
}

/// Every series the agent exports, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    packets: IntCounterVec,
    bytes: IntCounterVec,
    ip_packets: IntCounterVec,
    ip_bytes: IntCounterVec,
    packets_per_second: GaugeVec,
    bytes_per_second: GaugeVec,
    unattributed_bytes: IntCounterVec,
    overflow: IntCounterVec,
    active: IntGaugeVec,
    up: IntGaugeVec,
    collections: IntCounter,
    last_collection: Gauge,
    table_entries: IntGaugeVec,
    evictions: IntCounterVec,
    flow_rate: GaugeVec,
    rolling: GaugeVec,
    container_bytes: IntCounterVec,
    interface_container: IntGaugeVec,
    process_rate: GaugeVec,
    /// The label values of each interface's exported flow series, to remove them.
    flow_series: Mutex<HashMap<String, Vec<[String; 7]>>>,
    /// The same for the per-process series.
    process_series: Mutex<HashMap<String, Vec<[String; 4]>>>,
    /// When each container series last counted, so a gone container's series go too.
    container_seen: Mutex<HashMap<[String; 6], std::time::Instant>>,
    /// Each interface's container label values, to replace or remove them.
    interface_labels: Mutex<HashMap<String, [String; 5]>>,
}

/// A container's counters stay this long after its last byte, then go (its container is
/// probably gone; a new byte brings the series back from zero, as Prometheus expects).
pub const CONTAINER_SERIES_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Labels of the per-container series.
const CONTAINER_LABELS: &[&str] = &[
    "interface",
    "direction",
    "runtime",
    "container",
    "pod_namespace",
    "pod_name",
];
const PROCESS_LABELS: &[&str] = &["interface", "direction", "pid", "comm"];

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("netmon")
}

impl Metrics {
    /// Names and label sets are constants, so registering cannot fail; a failure would be a bug
    /// caught by the unit test.
    pub fn new(table_capacity: u32) -> Self {
        let registry = Registry::new();
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(opts(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(opts(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let int_gauges = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(opts(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let m = Self {
            packets: counters(
                "tc_packets_total",
                "Frames the classifier saw (one per skb, as the kernel's interface counters count).",
                DIR_LABELS,
            ),
            bytes: counters(
                "tc_bytes_total",
                "Bytes of those frames, link-layer header included (the interface counters' bytes).",
                DIR_LABELS,
            ),
            ip_packets: counters(
                "ip_packets_total",
                "IP packets on the wire (a GSO super-packet counts as its segments).",
                DIR_LABELS,
            ),
            ip_bytes: counters(
                "ip_bytes_total",
                "IP bytes on the wire (headers of every segment included), as iftop counts.",
                DIR_LABELS,
            ),
            packets_per_second: gauges(
                "tc_packets_per_second",
                "Frames per second over the last collection.",
                DIR_LABELS,
            ),
            bytes_per_second: gauges(
                "tc_bytes_per_second",
                "Bytes per second over the last collection.",
                DIR_LABELS,
            ),
            unattributed_bytes: counters(
                "unattributed_bytes_total",
                "IP bytes in the totals but in no flow, because the flow table had no room.",
                DIR_LABELS,
            ),
            overflow: counters(
                "flow_table_overflow_total",
                "Flow-table inserts refused, by reason (table_full: raise --table-capacity).",
                OVERFLOW_LABELS,
            ),
            active: int_gauges(
                "interface_active",
                "1 if the interface carried traffic in the last 40 s.",
                IF_LABELS,
            ),
            up: int_gauges(
                "interface_up",
                "1 if the interface is administratively up.",
                IF_LABELS,
            ),
            collections: IntCounter::with_opts(opts(
                "collection_total",
                "Collections (reads of the kernel's counters) done.",
            ))
            .expect("valid metric"),
            last_collection: Gauge::with_opts(opts(
                "last_collection_timestamp_seconds",
                "Unix time of the last collection.",
            ))
            .expect("valid metric"),
            table_entries: int_gauges(
                "flow_table_entries",
                "Entries in the kernel flow tables, by address family (each family has its own table of flow_table_capacity entries).",
                &["family"],
            ),
            evictions: counters(
                "flow_table_evictions_total",
                "Idle flows removed from the kernel table, by reason (idle: quiet for --evict-idle; pressure: the table was three-quarters full).",
                EVICT_LABELS,
            ),
            flow_rate: gauges(
                "flow_bytes_per_second",
                "IP bytes per second of the top flows over the last 10 s (only with --flow-series K: K flows per interface).",
                FLOW_LABELS,
            ),
            rolling: gauges(
                "ip_bytes_per_second",
                "IP bytes per second as iftop's totals show them: averages over the last 2, 10 and 40 s, and the peak tick in the last 40 s.",
                ROLLING_LABELS,
            ),
            container_bytes: counters(
                "container_ip_bytes_total",
                "IP bytes of the flows whose socket belongs to a process in this container (or pod), on this interface.",
                CONTAINER_LABELS,
            ),
            interface_container: int_gauges(
                "interface_container",
                "1 for a host-side veth and the container (or pod) whose sockets send through it.",
                &[
                    "interface",
                    "runtime",
                    "container",
                    "pod_namespace",
                    "pod_name",
                ],
            ),
            process_rate: gauges(
                "process_bytes_per_second",
                "IP bytes per second over the last 10 s of the top processes (only with --process-series K: K per interface).",
                PROCESS_LABELS,
            ),
            flow_series: Mutex::default(),
            process_series: Mutex::default(),
            container_seen: Mutex::default(),
            interface_labels: Mutex::default(),
            registry,
        };
        let agent_up =
            IntGauge::with_opts(opts("up", "1 while the agent runs.")).expect("valid metric");
        agent_up.set(1);
        let capacity = IntGauge::with_opts(opts(
            "flow_table_capacity",
            "Capacity of each kernel flow table (IPv4 and IPv6 have one each).",
        ))
        .expect("valid metric");
        capacity.set(i64::from(table_capacity));
        // Zero from the start, so rate() and dashboards see "none" rather than no series.
        for reason in [EvictReason::Idle, EvictReason::Pressure] {
            m.evictions.with_label_values(&[reason.label()]);
        }
        for c in [
            Box::new(m.collections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.last_collection.clone()),
            Box::new(agent_up),
            Box::new(capacity),
        ] {
            m.registry.register(c).expect("unique metric");
        }
        m
    }

    /// Adds one collection's diff of `iface`.
    pub fn record(&self, iface: &InterfaceInfo, sample: &Sample, active: bool) {
        let idx = iface.index.to_string();
        let secs = sample.window_ns as f64 / 1e9;
        let per_s = |v: u64| if secs > 0.0 { v as f64 / secs } else { 0.0 };
        for (direction, crossed) in DIRECTIONS.into_iter().zip([&sample.rx, &sample.tx]) {
            let l = [iface.name.as_str(), idx.as_str(), direction];
            let t = &crossed.kernel;
            self.packets.with_label_values(&l).inc_by(t.frames);
            self.bytes.with_label_values(&l).inc_by(t.frame_bytes);
            self.ip_packets
                .with_label_values(&l)
                .inc_by(crossed.ip_packets);
            self.ip_bytes.with_label_values(&l).inc_by(crossed.ip_bytes);
            self.unattributed_bytes
                .with_label_values(&l)
                .inc_by(t.overflow_bytes);
            self.packets_per_second
                .with_label_values(&l)
                .set(per_s(t.frames));
            self.bytes_per_second
                .with_label_values(&l)
                .set(per_s(t.frame_bytes));
            self.record_overflow(&l, t);
        }
        let l = [iface.name.as_str(), idx.as_str()];
        self.active.with_label_values(&l).set(i64::from(active));
        self.up.with_label_values(&l).set(i64::from(iface.up));
    }

    /// iftop's rolling views of `iface`'s totals.
    pub fn record_rolling(&self, iface: &InterfaceInfo, r: &Rolling) {
        let idx = iface.index.to_string();
        let rates = [r.averages[0], r.averages[1], r.averages[2], r.peak];
        for (window, rate) in WINDOWS.into_iter().zip(rates) {
            for (direction, v) in DIRECTIONS.into_iter().zip([rate.rx, rate.tx]) {
                self.rolling
                    .with_label_values(&[iface.name.as_str(), idx.as_str(), direction, window])
                    .set(v);
            }
        }
    }

    fn record_overflow(&self, l: &[&str; 3], t: &DirTotals) {
        for (reason, n) in REASONS
            .into_iter()
            .zip([t.overflow_table_full, t.overflow_insert_failed])
        {
            self.overflow
                .with_label_values(&[l[0], l[1], l[2], reason])
                .inc_by(n);
        }
    }

    /// Drops every series of an interface that vanished or is no longer exported.
    pub fn forget(&self, iface: &InterfaceInfo) {
        let idx = iface.index.to_string();
        for direction in DIRECTIONS {
            let l = [iface.name.as_str(), idx.as_str(), direction];
            for c in [
                &self.packets,
                &self.bytes,
                &self.ip_packets,
                &self.ip_bytes,
                &self.unattributed_bytes,
            ] {
                let _ = c.remove_label_values(&l);
            }
            let _ = self.packets_per_second.remove_label_values(&l);
            for window in WINDOWS {
                let _ = self
                    .rolling
                    .remove_label_values(&[l[0], l[1], l[2], window]);
            }
            let _ = self.bytes_per_second.remove_label_values(&l);
            for reason in REASONS {
                let _ = self
                    .overflow
                    .remove_label_values(&[l[0], l[1], l[2], reason]);
            }
        }
        let l = [iface.name.as_str(), idx.as_str()];
        let _ = self.active.remove_label_values(&l);
        let _ = self.up.remove_label_values(&l);
        self.forget_flows(&iface.name);
        self.set_processes(&iface.name, &[]);
        let mut labels = self
            .interface_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(l) = labels.remove(&iface.name) {
            let refs: Vec<&str> = l.iter().map(String::as_str).collect();
            let _ = self.interface_container.remove_label_values(&refs);
        }
        drop(labels);
        let mut seen = self
            .container_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        seen.retain(|labels, _| {
            let mine = labels[0] == iface.name;
            if mine {
                let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
                let _ = self.container_bytes.remove_label_values(&refs);
            }
            !mine
        });
    }

    /// Adds one collection's bytes per container on `iface`: `(container, rx, tx)`. Series of
    /// containers quiet for [`CONTAINER_SERIES_TTL`] are removed.
    pub fn record_containers(&self, iface: &str, by_container: &[(Container, u64, u64)]) {
        let now = std::time::Instant::now();
        let mut seen = self
            .container_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (c, rx, tx) in by_container {
            let (runtime, ns, name) = container_labels(c);
            for (direction, v) in DIRECTIONS.into_iter().zip([*rx, *tx]) {
                let labels = [
                    iface.to_string(),
                    direction.to_string(),
                    runtime.clone(),
                    c.id.clone(),
                    ns.clone(),
                    name.clone(),
                ];
                let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
                self.container_bytes.with_label_values(&refs).inc_by(v);
                seen.insert(labels, now);
            }
        }
        seen.retain(|labels, at| {
            let keep = now.duration_since(*at) < CONTAINER_SERIES_TTL;
            if !keep {
                let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
                let _ = self.container_bytes.remove_label_values(&refs);
            }
            keep
        });
    }

    /// Labels a host-side veth with the container at its other end.
    pub fn set_interface_container(&self, iface: &str, c: &Container) {
        let (runtime, ns, name) = container_labels(c);
        let l = [iface.to_string(), runtime, c.id.clone(), ns, name];
        let mut labels = self
            .interface_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(old) = labels.insert(iface.to_string(), l.clone())
            && old != l
        {
            let refs: Vec<&str> = old.iter().map(String::as_str).collect();
            let _ = self.interface_container.remove_label_values(&refs);
        }
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        self.interface_container.with_label_values(&refs).set(1);
    }

    /// Replaces `iface`'s per-process series with `top`: (pid, comm, rate).
    pub fn set_processes(&self, iface: &str, top: &[(u32, String, Rate)]) {
        let mut series = self
            .process_series
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for labels in series.remove(iface).unwrap_or_default() {
            let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            let _ = self.process_rate.remove_label_values(&refs);
        }
        let mut exported = Vec::new();
        for (pid, comm, rate) in top {
            for (direction, v) in DIRECTIONS.into_iter().zip([rate.rx, rate.tx]) {
                let labels = [
                    iface.to_string(),
                    direction.to_string(),
                    pid.to_string(),
                    comm.clone(),
                ];
                let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
                self.process_rate.with_label_values(&refs).set(v);
                exported.push(labels);
            }
        }
        series.insert(iface.to_string(), exported);
    }

    /// Counts idle flows removed from the kernel table.
    pub fn evicted(&self, reason: EvictReason, n: usize) {
        self.evictions
            .with_label_values(&[reason.label()])
            .inc_by(n as u64);
    }

    /// Replaces `iface`'s per-flow series with `top`. The series of a flow that left the top
    /// are removed, so the exported set never grows beyond what the caller passes.
    pub fn set_flows(&self, iface: &str, top: &[(FlowId, Rate)]) {
        self.forget_flows(iface);
        let mut exported = Vec::with_capacity(top.len() * 2);
        for (id, rate) in top {
            for (direction, v) in DIRECTIONS.into_iter().zip([rate.rx, rate.tx]) {
                let labels = [
                    iface.to_string(),
                    direction.to_string(),
                    protocol_label(id.protocol),
                    id.local.to_string(),
                    id.local_port.to_string(),
                    id.remote.to_string(),
                    id.remote_port.to_string(),
                ];
                let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
                self.flow_rate.with_label_values(&refs).set(v);
                exported.push(labels);
            }
        }
        self.flow_series().insert(iface.to_string(), exported);
    }

    fn flow_series(&self) -> MutexGuard<'_, HashMap<String, Vec<[String; 7]>>> {
        self.flow_series.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_flows(&self, iface: &str) {
        for labels in self.flow_series().remove(iface).unwrap_or_default() {
            let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            let _ = self.flow_rate.remove_label_values(&refs);
        }
    }

    /// One collection round is over; the tables held `fill`.
    pub fn collected(&self, unix_seconds: f64, fill: TableFill) {
        self.collections.inc();
        self.last_collection.set(unix_seconds);
        for (family, n) in [("ipv4", fill.v4), ("ipv6", fill.v6)] {
            self.table_entries
                .with_label_values(&[family])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every series.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::warn!("encoding metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The Content-Type of [`Self::render`]'s text.
    pub fn content_type() -> &'static str {
        prometheus::TEXT_FORMAT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interface::InterfaceKind;
    use crate::snapshot::Crossed;

    fn eth0() -> InterfaceInfo {
        InterfaceInfo {
            name: "eth0".into(),
            index: 2,
            up: true,
            operstate: "up".into(),
            mac: None,
            mtu: 1500,
            kind: InterfaceKind::Ethernet,
            addresses: vec![],
        }
    }

    fn sample(frames: u64, bytes: u64) -> Sample {
        let t = Crossed {
            ip_packets: frames,
            ip_bytes: bytes - 14 * frames,
            kernel: DirTotals {
                frames,
                frame_bytes: bytes,
                ..Default::default()
            },
        };
        Sample {
            window_ns: 2_000_000_000,
            rx: t,
            tx: t,
            flows: vec![],
        }
    }

    #[test]
    fn counters_add_each_collection_and_rates_cover_the_last() {
        let m = Metrics::new(65_536);
        m.record(&eth0(), &sample(10, 1_000), true);
        m.record(&eth0(), &sample(30, 4_000), true);
        m.collected(1_800_000_000.5, TableFill { v4: 42, v6: 3 });
        let text = m.render();
        for line in [
            r#"netmon_tc_packets_total{direction="ingress",ifindex="2",interface="eth0"} 40"#,
            r#"netmon_tc_bytes_total{direction="egress",ifindex="2",interface="eth0"} 5000"#,
            r#"netmon_ip_bytes_total{direction="egress",ifindex="2",interface="eth0"} 4440"#,
            r#"netmon_tc_bytes_per_second{direction="ingress",ifindex="2",interface="eth0"} 2000"#,
            r#"netmon_flow_table_overflow_total{direction="ingress",ifindex="2",interface="eth0",reason="table_full"} 0"#,
            r#"netmon_interface_active{ifindex="2",interface="eth0"} 1"#,
            "netmon_up 1",
            "netmon_collection_total 1",
            r#"netmon_flow_table_entries{family="ipv4"} 42"#,
            r#"netmon_flow_table_entries{family="ipv6"} 3"#,
            "netmon_flow_table_capacity 65536",
            "# TYPE netmon_tc_bytes_total counter",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        let rolling = Rolling {
            averages: [
                Rate { rx: 1.0, tx: 2.0 },
                Rate { rx: 3.0, tx: 4.0 },
                Rate { rx: 5.0, tx: 6.0 },
            ],
            peak: Rate { rx: 7.0, tx: 8.0 },
            ..Default::default()
        };
        m.record_rolling(&eth0(), &rolling);
        let text = m.render();
        for line in [
            r#"netmon_ip_bytes_per_second{direction="ingress",ifindex="2",interface="eth0",window="10s"} 3"#,
            r#"netmon_ip_bytes_per_second{direction="egress",ifindex="2",interface="eth0",window="peak_40s"} 8"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        m.forget(&eth0());
        assert!(!m.render().contains("eth0"));
    }

    #[test]
    fn flow_series_are_replaced_not_accumulated() {
        let m = Metrics::new(1024);
        let id = |port: u16| FlowId {
            local: "10.0.0.1".parse().unwrap(),
            remote: "10.0.0.2".parse().unwrap(),
            local_port: port,
            remote_port: 443,
            protocol: 6,
        };
        let r = |rx: f64| Rate { rx, tx: rx / 2.0 };
        m.set_flows("eth0", &[(id(1), r(100.0)), (id(2), r(50.0))]);
        m.set_flows("eth1", &[(id(3), r(7.0))]);
        m.set_flows("eth0", &[(id(2), r(80.0))]);
        let text = m.render();
        let series = |t: &str| {
            t.lines()
                .filter(|l| l.starts_with("netmon_flow_bytes_per_second{"))
                .count()
        };
        // eth0: one flow × two directions; eth1: the same.
        assert_eq!(series(&text), 4, "{text}");
        assert!(text.contains(r#"netmon_flow_bytes_per_second{direction="ingress",interface="eth0",local="10.0.0.1",local_port="2",protocol="tcp",remote="10.0.0.2",remote_port="443"} 80"#), "{text}");
        assert!(!text.contains(r#"local_port="1""#));
        m.evicted(EvictReason::Pressure, 3);
        assert!(
            m.render()
                .contains(r#"netmon_flow_table_evictions_total{reason="pressure"} 3"#)
        );
        m.forget(&InterfaceInfo {
            name: "eth1".into(),
            index: 3,
            ..eth0()
        });
        assert_eq!(series(&m.render()), 2);
    }
}
