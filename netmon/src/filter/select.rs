//! Applying a request's filter (`-f`) and network (`-F`/`-G`) to what a source measured: the
//! kept traffic becomes the totals, the interface's own totals move beside them, so nothing is
//! hidden. Pure.

use super::{Filter, Net, Packet};
use crate::flow::FlowCounters;
use crate::measurement::{Endpoint, Measurement, Row, Totals};
use std::net::IpAddr;

/// The ends of one flow, as a selection judges it (ports only for TCP, UDP and SCTP).
#[derive(Clone, Copy, Debug)]
pub struct FlowEnds {
    pub local: IpAddr,
    pub remote: IpAddr,
    pub local_port: Option<u16>,
    pub remote_port: Option<u16>,
    pub protocol: Option<u8>,
}

/// What a selection keeps of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Halves {
    /// What the local end sent matches.
    pub tx: bool,
    /// What the local end received matches.
    pub rx: bool,
    /// The remote end is inside the network: it goes on the left, and sent and received swap.
    pub swap: bool,
}

impl Halves {
    /// Everything, as it is.
    pub const ALL: Self = Self {
        tx: true,
        rx: true,
        swap: false,
    };

    /// A flow's counters as the selection sees them: unmatched halves zero, swapped if turned.
    pub fn apply(&self, c: &FlowCounters) -> FlowCounters {
        let (mut tx_bytes, mut tx_packets) = (c.tx_bytes, c.tx_packets);
        let (mut rx_bytes, mut rx_packets) = (c.rx_bytes, c.rx_packets);
        if !self.tx {
            (tx_bytes, tx_packets) = (0, 0);
        }
        if !self.rx {
            (rx_bytes, rx_packets) = (0, 0);
        }
        if self.swap {
            std::mem::swap(&mut tx_bytes, &mut rx_bytes);
            std::mem::swap(&mut tx_packets, &mut rx_packets);
        }
        FlowCounters {
            rx_bytes,
            rx_packets,
            tx_bytes,
            tx_packets,
        }
    }
}

/// What part of an interface's traffic a request looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// iftop's `-f`: only the packets that match.
    pub filter: Option<Filter>,
    /// iftop's `-F` (IPv4) and `-G` (IPv6): only traffic in to or out of the network, seen
    /// from inside it: the end inside is on the left (`local`), and "sent" means leaving the
    /// network. Each applies to its own family; the other family's flows pass as they are.
    pub net4: Option<Net>,
    pub net6: Option<Net>,
}

impl Selection {
    pub fn is_all(&self) -> bool {
        self.filter.is_none() && self.net4.is_none() && self.net6.is_none()
    }

    fn networks(&self) -> bool {
        self.net4.is_some() || self.net6.is_some()
    }

    /// For notes and messages: `filter \`udp\`, network 10.0.0.0/8`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(f) = &self.filter {
            parts.push(format!("filter `{f}`"));
        }
        for n in self.net4.iter().chain(&self.net6) {
            parts.push(format!("network {n}"));
        }
        parts.join(", ")
    }

    /// Keeps what the selection covers. A measurement its source already narrowed (iftop's own
    /// `-f`, a remote agent) is returned as it is.
    pub fn apply(&self, mut m: Measurement) -> Measurement {
        if self.is_all() || m.selection_applied {
            return m;
        }
        let rows = std::mem::take(&mut m.rows);
        let had = rows.len();
        m.rows = rows.into_iter().filter_map(|r| self.row(r)).collect();
        let sum = |f: fn(&Row) -> u64| m.rows.iter().map(f).sum::<u64>();
        let totals = Totals {
            rx_bytes: sum(|r| r.counters.rx_bytes),
            tx_bytes: sum(|r| r.counters.tx_bytes),
            rx_packets: m.packets.then(|| sum(|r| r.counters.rx_packets)),
            tx_packets: m.packets.then(|| sum(|r| r.counters.tx_packets)),
            rx: None,
            tx: None,
        };
        let all = std::mem::replace(&mut m.totals, totals);
        let unattributed = all.rx.as_ref().map_or(0, |d| d.unattributed_bytes)
            + all.tx.as_ref().map_or(0, |d| d.unattributed_bytes);
        m.notes.push(format!(
            "{}: total_stats counts only the matching traffic ({} of {had} connections; {} of {} bytes), as iftop's -f does; interface_totals has the interface's unfiltered totals",
            self.describe(),
            m.rows.len(),
            m.totals.rx_bytes + m.totals.tx_bytes,
            all.rx_bytes + all.tx_bytes,
        ));
        if self.networks() {
            m.notes.push(
                "with a network, each row's left end (local) is the one inside it, and tx means leaving the network"
                    .into(),
            );
        }
        if unattributed > 0 {
            m.notes.push(format!(
                "{unattributed} bytes the flow table had no room for are in interface_totals only: without a connection they cannot be matched"
            ));
        }
        m.interface_totals = Some(all);
        m.selection_applied = true;
        m
    }

    /// What the selection keeps of one flow: which halves match the filter, and whether the
    /// flow is turned to face the network; `None` when the network does not see it cross.
    /// Pure; the same decision for a window's rows and for `netmon top`'s rolling ones.
    pub fn halves(&self, flow: &FlowEnds) -> Option<Halves> {
        let (local, remote) = (flow.local, flow.remote);
        let mut keep = Halves {
            tx: true,
            rx: true,
            swap: false,
        };
        if let Some(f) = &self.filter {
            keep.tx = f.matches(&Packet {
                src: local,
                dst: remote,
                sport: flow.local_port,
                dport: flow.remote_port,
                proto: flow.protocol,
            });
            keep.rx = f.matches(&Packet {
                src: remote,
                dst: local,
                sport: flow.remote_port,
                dport: flow.local_port,
                proto: flow.protocol,
            });
        }
        let net = if local.is_ipv4() {
            &self.net4
        } else {
            &self.net6
        };
        if let Some(n) = net {
            match (n.contains(&local), n.contains(&remote)) {
                (true, false) => {}
                (false, true) => keep.swap = true,
                // Inside to inside, or outside to outside: not crossing the boundary.
                _ => return None,
            }
        }
        Some(keep)
    }

    /// One row's matching halves, turned to face the network; `None` when nothing of it is kept.
    fn row(&self, mut r: Row) -> Option<Row> {
        let (Endpoint::Addr(local), Endpoint::Addr(remote)) = (&r.local, &r.remote) else {
            // Only iftop cuts addresses, and iftop applies its filter itself.
            return None;
        };
        let keep = self.halves(&FlowEnds {
            local: *local,
            remote: *remote,
            local_port: r.local_port,
            remote_port: r.remote_port,
            protocol: r.protocol,
        })?;
        r.counters = keep.apply(&r.counters);
        if keep.swap {
            std::mem::swap(&mut r.local, &mut r.remote);
            std::mem::swap(&mut r.local_port, &mut r.remote_port);
        }
        let c = &r.counters;
        (c.rx_packets + c.tx_packets > 0 || c.rx_bytes + c.tx_bytes > 0).then_some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse;
    use crate::flow::{FlowCounters, FlowId};
    use crate::measurement::{DirectionDetail, flow_row};
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn row(local: &str, lport: u16, remote: &str, rport: u16, proto: u8, rx: u64, tx: u64) -> Row {
        flow_row(
            &FlowId {
                local: local.parse().unwrap(),
                remote: remote.parse().unwrap(),
                local_port: lport,
                remote_port: rport,
                protocol: proto,
            },
            &FlowCounters {
                rx_bytes: rx,
                rx_packets: rx / 100,
                tx_bytes: tx,
                tx_packets: tx / 100,
            },
        )
    }

    fn measurement(rows: Vec<Row>) -> Measurement {
        let sum = |f: fn(&Row) -> u64| rows.iter().map(f).sum::<u64>();
        Measurement {
            window_ns: 1_000_000_000,
            totals: Totals {
                rx_bytes: sum(|r| r.counters.rx_bytes) + 500,
                tx_bytes: sum(|r| r.counters.tx_bytes),
                rx_packets: Some(sum(|r| r.counters.rx_packets) + 5),
                tx_packets: Some(sum(|r| r.counters.tx_packets)),
                rx: Some(DirectionDetail {
                    unattributed_bytes: 500,
                    unattributed_packets: 5,
                    ..Default::default()
                }),
                tx: Some(DirectionDetail::default()),
            },
            rows,
            packets: true,
            ..Default::default()
        }
    }

    fn select(filter: &str, network: Option<&str>) -> Selection {
        let net = network.map(|n| Net::parse(n).unwrap());
        Selection {
            filter: parse(filter).unwrap(),
            net4: net.filter(|n| n.addr.is_ipv4()),
            net6: net.filter(|n| n.addr.is_ipv6()),
        }
    }

    fn sample() -> Measurement {
        measurement(vec![
            // UDP stream to the server's 5201, TCP to 5202, a ping, DNS.
            row("10.0.0.1", 40000, "10.0.0.2", 5201, 17, 0, 1_400_000),
            row("10.0.0.1", 40001, "10.0.0.2", 5202, 6, 30_000, 9_000_000),
            row("10.0.0.1", 0, "10.0.0.2", 0, 1, 8_400, 8_400),
            row("10.0.0.1", 5353, "192.168.1.1", 53, 17, 1_200, 700),
        ])
    }

    #[test]
    fn a_filter_keeps_the_matching_halves_and_totals_are_their_sum() {
        let m = select("udp and dst port 5201", None).apply(sample());
        assert_eq!(m.rows.len(), 1);
        assert_eq!(m.totals.tx_bytes, 1_400_000);
        assert_eq!(m.totals.rx_bytes, 0);
        assert_eq!(m.totals.tx_packets, Some(14_000));
        let all = m.interface_totals.as_ref().unwrap();
        assert_eq!(all.rx_bytes, 30_000 + 8_400 + 1_200 + 500);
        assert_eq!(all.rx.as_ref().unwrap().unattributed_bytes, 500);
        assert!(m.totals.rx.is_none(), "details belong to the interface");
        assert!(
            m.notes[0].contains("filter `udp and dst port 5201`"),
            "{:?}",
            m.notes
        );
        assert!(
            m.notes.iter().any(|n| n.contains("500 bytes")),
            "{:?}",
            m.notes
        );
        assert!(m.selection_applied);

        // `src port 53` is the DNS server's answers: the receive half only.
        let dns = select("src port 53", None).apply(sample());
        assert_eq!((dns.totals.rx_bytes, dns.totals.tx_bytes), (1_200, 0));
        // `port 53` is both halves.
        let dns = select("port 53", None).apply(sample());
        assert_eq!((dns.totals.rx_bytes, dns.totals.tx_bytes), (1_200, 700));
        // `not icmp` keeps everything else, whole.
        let m = select("not icmp", None).apply(sample());
        assert_eq!(m.rows.len(), 3);
    }

    #[test]
    fn a_network_keeps_crossing_traffic_with_the_inside_end_on_the_left() {
        let m = select("", Some("192.168.0.0/16")).apply(sample());
        assert_eq!(m.rows.len(), 1);
        let r = &m.rows[0];
        assert_eq!(r.local, Endpoint::Addr("192.168.1.1".parse().unwrap()));
        assert_eq!((r.local_port, r.remote_port), (Some(53), Some(5353)));
        // What left the network: the DNS answers, which this host received.
        assert_eq!((r.counters.tx_bytes, r.counters.rx_bytes), (1_200, 700));
        assert_eq!((m.totals.tx_bytes, m.totals.rx_bytes), (1_200, 700));
        // Inside-to-inside is not crossing.
        let m = select("", Some("10.0.0.0/8")).apply(sample());
        assert_eq!(m.rows.len(), 1, "only the DNS flow leaves 10/8");
        assert_eq!(m.rows[0].local, Endpoint::Addr("10.0.0.1".parse().unwrap()));
        // An IPv6 network leaves IPv4 flows as they are, as iftop's -G does.
        let m = select("", Some("fd00::/8")).apply(sample());
        assert_eq!(m.rows, sample().rows);
        let mut v6 = sample();
        v6.rows.push(row("fd00::1", 1, "fd01::2", 2, 6, 10, 20));
        v6.rows.push(row("fd00::1", 1, "fd00::2", 2, 6, 10, 20));
        let m = select("", Some("fd01::/16")).apply(v6);
        assert_eq!(m.rows.len(), 5, "the inside-to-inside IPv6 flow is gone");
        let r = &m.rows[4];
        assert_eq!(r.local, Endpoint::Addr("fd01::2".parse().unwrap()));
        assert_eq!((r.counters.rx_bytes, r.counters.tx_bytes), (20, 10));
    }

    #[test]
    fn no_selection_and_a_source_that_selected_are_left_alone() {
        let m = sample();
        assert_eq!(Selection::default().apply(m.clone()), m);
        let done = Measurement {
            selection_applied: true,
            ..sample()
        };
        assert_eq!(select("icmp", None).apply(done.clone()), done);
    }

    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0u8..4).prop_map(|x| IpAddr::from([10, 0, 0, x])),
            (0u8..3).prop_map(|x| IpAddr::from([192, 168, 1, x])),
            (0u16..3).prop_map(|x| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, x])),
        ]
    }

    fn flow() -> impl Strategy<Value = Row> {
        (
            addr(),
            addr(),
            0u16..5,
            0u16..5,
            prop_oneof![Just(6u8), Just(17), Just(1)],
            0u64..10_000,
            0u64..10_000,
        )
            .prop_map(|(l, r, lp, rp, proto, rx, tx)| {
                row(
                    &l.to_string(),
                    5200 + lp,
                    &r.to_string(),
                    5200 + rp,
                    proto,
                    rx,
                    tx,
                )
            })
    }

    const FILTERS: &[&str] = &[
        "",
        "udp",
        "tcp and dst port 5201",
        "src net 10.0.0.0/30 or dst portrange 5202-5203",
        "not (host 192.168.1.1 or ip6)",
        "src and dst net 10.0.0.0/8",
        "icmp or port 5204",
    ];

    proptest! {
        /// Whatever the filter and network: the totals are the sum of the kept rows, each kept
        /// half is a whole half of a flow, and the interface's totals are untouched.
        #[test]
        fn totals_are_exactly_the_kept_rows(
            rows in proptest::collection::vec(flow(), 0..30),
            which in 0..FILTERS.len(),
            net in proptest::option::of(prop_oneof![Just("10.0.0.0/31"), Just("192.168.0.0/16"), Just("fd00::/126")]),
        ) {
            let m = measurement(rows);
            let before = m.totals.clone();
            let sel = select(FILTERS[which], net);
            let out = sel.apply(m.clone());
            if sel.is_all() {
                prop_assert_eq!(out, m);
                return Ok(());
            }
            let rx: u64 = out.rows.iter().map(|r| r.counters.rx_bytes).sum();
            let tx: u64 = out.rows.iter().map(|r| r.counters.tx_bytes).sum();
            prop_assert_eq!((out.totals.rx_bytes, out.totals.tx_bytes), (rx, tx));
            prop_assert_eq!(out.interface_totals.as_ref(), Some(&before));
            prop_assert!(rx + tx <= before.rx_bytes + before.tx_bytes);
            for r in &out.rows {
                let halves: Vec<u64> = m.rows.iter().flat_map(|o| [o.counters.rx_bytes, o.counters.tx_bytes]).collect();
                prop_assert!(r.counters.rx_bytes == 0 || halves.contains(&r.counters.rx_bytes));
                prop_assert!(r.counters.tx_bytes == 0 || halves.contains(&r.counters.tx_bytes));
            }
        }
    }
}
