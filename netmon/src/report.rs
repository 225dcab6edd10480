//! The result object, in the shape of the MCP tool contract (`{success, message, data}`), built
//! from a [`Measurement`] whatever its source. `netmon traffic --json` prints exactly this; the
//! MCP tools return it.

use crate::filter::Selection;
use crate::flow::Protocol;
use crate::interface::InterfaceInfo;
use crate::measurement::{DirectionDetail, Measurement, Row, Totals};
use crate::owner::{Container, Owner, OwnerRef, Process, Unattributed};
use crate::rank::{GroupBy, SortKey, rank_rows};
use crate::units::{bits_per_second, megabits, megabytes};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The contract's tool names.
pub mod tool {
    pub const LIST_INTERFACES: &str = "list_network_interfaces";
    pub const GET_TRAFFIC: &str = "get_interface_traffic";
}

/// Where the numbers came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SourceKind {
    /// netmon's classifier on this host.
    #[serde(rename = "ebpf")]
    Ebpf,
    /// `iftop -t` run over SSH on a remote host.
    #[serde(rename = "ssh-iftop")]
    SshIftop,
    /// A netmon agent queried over HTTP.
    #[serde(rename = "agent")]
    Agent,
}

/// `{success, message, data}`: `data` is absent when `success` is false.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Response<T> {
    pub success: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

impl<T> Response<T> {
    pub fn ok(message: String, data: T) -> Self {
        Self {
            success: true,
            message,
            data: Some(data),
        }
    }

    pub fn err(message: String) -> Self {
        Self {
            success: false,
            message,
            data: None,
        }
    }
}

/// `get_interface_traffic`'s data.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TrafficData {
    /// The host that was sampled.
    pub host: String,
    pub source: SourceKind,
    pub total_stats: TotalStats,
    /// Top connections, ordered by `sort` (receive bytes by default), at most `top` of them.
    pub top_connections: Vec<Connection>,
    pub sort: SortKey,
    pub group_by: GroupBy,
    pub top: usize,
    /// How many rows (connections or host pairs) had traffic in the window, before the top cut.
    pub connections_seen: usize,
    /// The filter the figures are narrowed to, as netmon read it (pcap syntax); absent: all
    /// traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The networks of iftop's `-F`/`-G` the figures are narrowed to (crossing traffic only,
    /// the end inside the network on the left).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// The interface's unfiltered totals, beside `total_stats` when a filter or network
    /// narrowed those; absent when the source cannot tell them (iftop counts only what matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_totals: Option<TotalStats>,
    /// For a host-side veth: the container (or pod) at its other end, as the sockets sending
    /// through it say (absent when no container's traffic crossed it in the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_owner: Option<Container>,
    /// What the caller should know about how these figures were obtained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Interface totals over the window. `*_total` are MB (10^6 bytes) and `*_rate_avg` Mbps
/// (10^6 bit/s), as the contract has them; the other fields are exact integers beside them.
/// Bytes are L3 (IP header + payload), as iftop counts them.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TotalStats {
    pub interface: String,
    /// MB sent in the window.
    pub tx_total: f64,
    /// MB received in the window.
    pub rx_total: f64,
    /// Average send rate, Mbps.
    pub tx_rate_avg: f64,
    /// Average receive rate, Mbps.
    pub rx_rate_avg: f64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Null when the source does not count packets (iftop).
    pub tx_packets: Option<u64>,
    pub rx_packets: Option<u64>,
    pub tx_bps: u64,
    pub rx_bps: u64,
    /// Measured window length in nanoseconds.
    pub window_ns: u64,
    /// The same in seconds.
    pub window_seconds: f64,
    /// What the classifier saw besides connections; absent for iftop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx: Option<DirectionDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx: Option<DirectionDetail>,
}

impl TotalStats {
    fn from_totals(iface: &str, t: &Totals, window_ns: u64) -> Self {
        Self {
            tx_packets: t.tx_packets,
            rx_packets: t.rx_packets,
            rx: t.rx.clone(),
            tx: t.tx.clone(),
            ..Self::bytes(iface, t.rx_bytes, t.tx_bytes, window_ns)
        }
    }

    /// Totals from bytes alone: MB, Mbps and bit/s derived from them over the window; no
    /// packet counts or per-direction details (sources that have them add them).
    fn bytes(iface: &str, rx_bytes: u64, tx_bytes: u64, window_ns: u64) -> Self {
        let (rx_bps, tx_bps) = (
            bits_per_second(rx_bytes, window_ns),
            bits_per_second(tx_bytes, window_ns),
        );
        Self {
            interface: iface.to_string(),
            tx_total: megabytes(tx_bytes),
            rx_total: megabytes(rx_bytes),
            tx_rate_avg: megabits(tx_bps),
            rx_rate_avg: megabits(rx_bps),
            tx_bytes,
            rx_bytes,
            tx_packets: None,
            rx_packets: None,
            tx_bps,
            rx_bps,
            window_ns,
            window_seconds: window_ns as f64 / 1e9,
            rx: None,
            tx: None,
        }
    }
}

/// One row of the top list: a connection, or a host pair with `group_by = host` (then ports and
/// protocol are null).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Connection {
    /// An IP address (null in rows by process or container). From iftop, a host iftop cut to
    /// fit its column ends with `…`.
    pub local_addr: Option<String>,
    pub local_port: Option<u16>,
    pub remote_addr: Option<String>,
    pub remote_port: Option<u16>,
    /// Host names from /etc/hosts or reverse DNS; null when off, not found or not answered in
    /// time (the address is always in `*_addr`).
    #[serde(default)]
    pub local_name: Option<String>,
    #[serde(default)]
    pub remote_name: Option<String>,
    /// Service names of the ports from /etc/services for the protocol (443/tcp is https); null
    /// when off or unnamed.
    #[serde(default)]
    pub local_service: Option<String>,
    #[serde(default)]
    pub remote_service: Option<String>,
    pub protocol: Option<Protocol>,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub ip_protocol: Option<u8>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Null when the source does not count packets (iftop).
    pub rx_packets: Option<u64>,
    pub tx_packets: Option<u64>,
    /// Average receive rate over the window, Mbps.
    pub rx_rate: f64,
    /// Average send rate over the window, Mbps.
    pub tx_rate: f64,
    pub rx_bps: u64,
    pub tx_bps: u64,
    /// Flows merged into this row (1 for a connection).
    pub flows: u32,
    /// The process whose socket this is, when known (null in rows by container).
    #[serde(default)]
    pub process: Option<Process>,
    /// Its container (and Kubernetes pod), when it runs in one. In rows by container, null with
    /// no `unattributed_reason` is this host's own processes.
    #[serde(default)]
    pub container: Option<Container>,
    /// The cgroup v2 path of the process.
    #[serde(default)]
    pub cgroup: Option<String>,
    /// Why there is no owner: forwarded, kernel_socket, socket_closed, no_socket, table_full,
    /// off. Null when there is one, or when the source does not attribute (iftop).
    #[serde(default)]
    pub unattributed_reason: Option<Unattributed>,
}

impl Connection {
    /// `packets`: whether the source counted packets (iftop does not; they are null then).
    /// `owners`: the table the row's owner points into.
    fn from_row(r: &Row, window_ns: u64, packets: bool, by: GroupBy, owners: &[Owner]) -> Self {
        let rx_bps = bits_per_second(r.counters.rx_bytes, window_ns);
        let tx_bps = bits_per_second(r.counters.tx_bytes, window_ns);
        let by_owner = matches!(by, GroupBy::Process | GroupBy::Container);
        let owner = r.owner.owner.and_then(|i| owners.get(i as usize));
        let per_process = by != GroupBy::Container;
        Self {
            local_addr: (!by_owner).then(|| r.local.to_string()),
            local_port: r.local_port,
            remote_addr: (!by_owner).then(|| r.remote.to_string()),
            remote_port: r.remote_port,
            process: owner
                .and_then(|o| o.process.clone())
                .filter(|_| per_process),
            container: owner.and_then(|o| o.container.clone()),
            cgroup: owner.and_then(|o| o.cgroup.clone()).filter(|_| per_process),
            unattributed_reason: r.owner.reason,
            local_name: None,
            remote_name: None,
            local_service: None,
            remote_service: None,
            protocol: r.protocol.map(Protocol::from_number),
            ip_protocol: r.protocol,
            rx_bytes: r.counters.rx_bytes,
            tx_bytes: r.counters.tx_bytes,
            rx_packets: packets.then_some(r.counters.rx_packets),
            tx_packets: packets.then_some(r.counters.tx_packets),
            rx_rate: megabits(rx_bps),
            tx_rate: megabits(tx_bps),
            rx_bps,
            tx_bps,
            flows: r.flows,
        }
    }
}

/// What to keep of a sample.
#[derive(Clone, Debug)]
pub struct View {
    pub sort: SortKey,
    pub by: GroupBy,
    pub top: usize,
    /// The part of the traffic asked about.
    pub selection: Selection,
}

impl View {
    /// Everything, ranked by `sort` and `by`, the top `top`.
    pub fn all(sort: SortKey, by: GroupBy, top: usize) -> Self {
        Self {
            sort,
            by,
            top,
            selection: Selection::default(),
        }
    }
}

/// The one container whose processes own traffic in `m`, when exactly one does and no process
/// of the host does: what a host-side veth's other end is. Pure.
pub fn sole_container(m: &Measurement) -> Option<Container> {
    let mut found: Option<&Container> = None;
    for r in &m.rows {
        let Some(o) = r.owner.owner.and_then(|i| m.owners.get(i as usize)) else {
            continue;
        };
        match (&o.container, found) {
            (None, _) => return None,
            (Some(c), None) => found = Some(c),
            (Some(c), Some(f)) if c.id != f.id => return None,
            _ => {}
        }
    }
    found.cloned()
}

impl TrafficData {
    /// The result for what a source measured of `iface` on `host`: narrowed to the view's
    /// selection (unless the source did that), totals, the rows ranked by `view`, and the
    /// source's notes.
    pub fn new(host: &str, source: SourceKind, iface: &str, m: Measurement, view: &View) -> Self {
        let mut m = view.selection.apply(m);
        let w = m.window_ns;
        if matches!(view.by, GroupBy::Process | GroupBy::Container) {
            // Bytes the kernel counted in no flow still belong in some row.
            let lost = |d: &Option<DirectionDetail>| {
                d.as_ref()
                    .map_or((0, 0), |d| (d.unattributed_bytes, d.unattributed_packets))
            };
            let ((rxb, rxp), (txb, txp)) = (lost(&m.totals.rx), lost(&m.totals.tx));
            if rxb + txb > 0 {
                // A row by owner shows no ends.
                let nowhere = crate::measurement::Endpoint::Cut(String::new());
                m.rows.push(Row {
                    local: nowhere.clone(),
                    remote: nowhere,
                    local_port: None,
                    remote_port: None,
                    protocol: None,
                    counters: crate::flow::FlowCounters {
                        rx_bytes: rxb,
                        rx_packets: rxp,
                        tx_bytes: txb,
                        tx_packets: txp,
                    },
                    flows: 0,
                    owner: OwnerRef::unattributed(Unattributed::TableFull),
                });
            }
        }
        let (rows, seen) = rank_rows(m.rows, view.sort, view.by, view.top, &m.owners);
        let sel = &view.selection;
        Self {
            host: host.to_string(),
            source,
            total_stats: TotalStats::from_totals(iface, &m.totals, w),
            top_connections: rows
                .iter()
                .map(|r| Connection::from_row(r, w, m.packets, view.by, &m.owners))
                .collect(),
            sort: view.sort,
            group_by: view.by,
            top: view.top,
            connections_seen: m.rows_seen.unwrap_or(seen),
            filter: sel.filter.as_ref().map(|f| f.to_pcap()),
            networks: sel
                .net4
                .iter()
                .chain(&sel.net6)
                .map(|n| n.to_string())
                .collect(),
            interface_totals: m
                .interface_totals
                .as_ref()
                .map(|t| TotalStats::from_totals(iface, t, w)),
            interface_owner: None,
            notes: m.notes,
        }
    }

    pub fn summary(&self) -> String {
        let t = &self.total_stats;
        let lost = t.rx.as_ref().map_or(0, |d| d.unattributed_bytes)
            + t.tx.as_ref().map_or(0, |d| d.unattributed_bytes);
        let full = if lost > 0 {
            format!("; {lost} bytes in no connection (the flow table was full, see notes)")
        } else {
            String::new()
        };
        let narrowed = match (&self.filter, self.networks.is_empty()) {
            (None, true) => String::new(),
            (Some(f), true) => format!(" (filter `{f}`)"),
            (None, false) => format!(" (network {})", self.networks.join(", ")),
            (Some(f), false) => format!(" (filter `{f}`, network {})", self.networks.join(", ")),
        };
        format!(
            "sampled {}{narrowed} on {} for {:.2} s: {:.3} MB received, {:.3} MB sent, {} of {} connections shown{full}",
            t.interface,
            self.host,
            t.window_seconds,
            t.rx_total,
            t.tx_total,
            self.top_connections.len(),
            self.connections_seen
        )
    }
}

/// `list_network_interfaces`' data: `interfaces` is the contract's list of names, `details` has
/// the rest.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct InterfacesData {
    pub host: String,
    pub interfaces: Vec<String>,
    pub details: Vec<InterfaceInfo>,
}

impl InterfacesData {
    pub fn new(host: &str, list: Vec<InterfaceInfo>) -> Self {
        Self {
            host: host.to_string(),
            interfaces: list.iter().map(|i| i.name.clone()).collect(),
            details: list,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowCounters, FlowId};
    use crate::snapshot::Sample;
    use netmon_common::DirTotals;
    use std::net::IpAddr;

    fn sample() -> Sample {
        let id = |port| FlowId {
            local: IpAddr::from([10, 200, 1, 2]),
            remote: IpAddr::from([10, 200, 1, 1]),
            local_port: 5201,
            remote_port: port,
            protocol: 6,
        };
        // The IP totals (rx 10,865,894 B in 7,300 packets, tx 62,700 B in 1,000) are the
        // flows' sum.
        Sample::new(
            2_000_000_000,
            DirTotals {
                frames: 7_300,
                frame_bytes: 10_968_094,
                ..Default::default()
            },
            DirTotals::default(),
            vec![
                (
                    id(39548),
                    FlowCounters {
                        rx_bytes: 1_146,
                        rx_packets: 15,
                        tx_bytes: 1_055,
                        tx_packets: 14,
                    },
                ),
                (
                    id(39564),
                    FlowCounters {
                        rx_bytes: 10_864_748,
                        rx_packets: 7_285,
                        tx_bytes: 61_645,
                        tx_packets: 986,
                    },
                ),
            ],
        )
    }

    #[test]
    fn contract_fields_and_exact_integers() {
        let view = View::all(SortKey::Rx, GroupBy::Connection, 10);
        let m = Measurement::from_sample(&sample());
        let d = TrafficData::new("localhost", SourceKind::Ebpf, "vinfb", m, &view);
        let t = &d.total_stats;
        assert_eq!(t.rx_total, 10.865894);
        assert_eq!(t.rx_bps, 43_463_576);
        assert_eq!(t.rx_rate_avg, 43.463576);
        assert_eq!(t.tx_bytes, 62_700);
        assert_eq!(t.window_seconds, 2.0);
        assert_eq!(t.rx.as_ref().unwrap().frames, 7_300);
        assert_eq!(d.top_connections[0].remote_port, Some(39564));
        assert_eq!(d.top_connections[0].protocol, Some(Protocol::Tcp));
        assert_eq!(d.connections_seen, 2);

        let v = serde_json::to_value(Response::ok(d.summary(), d)).unwrap();
        for key in [
            "interface",
            "tx_total",
            "rx_total",
            "tx_rate_avg",
            "rx_rate_avg",
        ] {
            assert!(v["data"]["total_stats"].get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["data"]["source"], "ebpf");
        assert_eq!(v["data"]["host"], "localhost");
        assert_eq!(v["data"]["top_connections"][0]["protocol"], "tcp");
    }

    #[test]
    fn failure_has_no_data() {
        let v = serde_json::to_value(Response::<TrafficData>::err("no".into())).unwrap();
        assert_eq!(v["success"], false);
        assert!(v.get("data").is_none());
    }
}
