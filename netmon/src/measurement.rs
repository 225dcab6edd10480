//! What a source measured of one interface over a window, in the one shape every source can give:
//! interface totals, connection rows, and notes on how the figures were obtained. The eBPF
//! source's flows, iftop's table and a remote agent's answer all become a [`Measurement`], and
//! the result object is built from it the same way whatever the source. Pure.

use crate::flow::{FlowCounters, FlowId};
use crate::owner::{Owner, OwnerRef};
use crate::rank::Ranked;
use crate::snapshot::Sample;
use netmon_common::DirTotals;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One end of a connection as the source knows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Addr(IpAddr),
    /// What iftop printed of an address it cut to fit its column (the start of it).
    Cut(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Addr(a) => a.fmt(f),
            Endpoint::Cut(s) => write!(f, "{s}…"),
        }
    }
}

impl Endpoint {
    /// Reads what [`Display`](std::fmt::Display) wrote.
    pub fn parse(s: &str) -> Self {
        match s.parse() {
            Ok(a) => Endpoint::Addr(a),
            Err(_) => Endpoint::Cut(s.trim_end_matches('…').to_string()),
        }
    }
}

/// A connection row before ranking.
pub type Row = Ranked<Endpoint>;

/// Everything counted in one direction besides connections, so no byte goes unaccounted for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DirectionDetail {
    /// Frames seen (a GSO super-packet is one frame), as the kernel's interface counters count.
    pub frames: u64,
    /// Their length with the link-layer header, as the kernel's interface counters count.
    pub frame_bytes: u64,
    /// Frames that are not IP or could not be parsed (ARP, LLDP, truncated); not in `*_bytes`.
    pub other_frames: u64,
    pub other_bytes: u64,
    /// IP packets/bytes that are in the totals but in no connection because the flow table was
    /// full or an insert failed.
    pub unattributed_packets: u64,
    pub unattributed_bytes: u64,
    /// Flow-table inserts refused because the table was full.
    pub table_full_events: u64,
    /// Flow-table inserts that failed for another reason.
    pub insert_failed_events: u64,
}

impl From<&DirTotals> for DirectionDetail {
    fn from(t: &DirTotals) -> Self {
        Self {
            frames: t.frames,
            frame_bytes: t.frame_bytes,
            other_frames: t.other_frames,
            other_bytes: t.other_bytes,
            unattributed_packets: t.overflow_packets,
            unattributed_bytes: t.overflow_bytes,
            table_full_events: t.overflow_table_full,
            insert_failed_events: t.overflow_insert_failed,
        }
    }
}

/// Interface totals over the window: L3 bytes, as iftop counts them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// `None` when the source does not count packets (iftop).
    pub rx_packets: Option<u64>,
    pub tx_packets: Option<u64>,
    /// What the classifier saw besides connections; `None` for iftop.
    pub rx: Option<DirectionDetail>,
    pub tx: Option<DirectionDetail>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurement {
    pub window_ns: u64,
    pub totals: Totals,
    pub rows: Vec<Row>,
    /// Whether the rows count packets (iftop's do not).
    pub packets: bool,
    /// How many rows there were before a cut the source already made (a remote agent sends only
    /// its top rows); `None`: `rows` is all of them.
    pub rows_seen: Option<usize>,
    pub notes: Vec<String>,
    /// The interface's own totals, when `totals` count only what a filter or network kept.
    pub interface_totals: Option<Totals>,
    /// Whether the rows and totals are already narrowed to the request's selection (iftop's
    /// `-f`, a remote agent); otherwise [`crate::filter::Selection::apply`] narrows them.
    pub selection_applied: bool,
    /// The owners rows point into (empty when the source does not attribute).
    pub owners: Vec<Owner>,
}

/// One kernel flow as a row; protocols without ports get none.
pub fn flow_row(id: &FlowId, c: &FlowCounters) -> Row {
    let ported = crate::flow::Protocol::has_ports(id.protocol);
    Ranked {
        local: Endpoint::Addr(id.local),
        remote: Endpoint::Addr(id.remote),
        local_port: ported.then_some(id.local_port),
        remote_port: ported.then_some(id.remote_port),
        protocol: Some(id.protocol),
        counters: *c,
        flows: 1,
        owner: OwnerRef::NONE,
    }
}

impl Row {
    /// The kernel flow a row of [`flow_row`] came from.
    pub fn flow_id(&self) -> Option<FlowId> {
        let (Endpoint::Addr(local), Endpoint::Addr(remote), Some(protocol)) =
            (&self.local, &self.remote, self.protocol)
        else {
            return None;
        };
        Some(FlowId {
            local: *local,
            remote: *remote,
            local_port: self.local_port.unwrap_or(0),
            remote_port: self.remote_port.unwrap_or(0),
            protocol,
        })
    }
}

impl Measurement {
    /// The kernel's counters over a window. When the flow table was full, a note says how much
    /// traffic is in the totals but in no connection, and why.
    pub fn from_sample(s: &Sample) -> Self {
        let (rx, tx) = (&s.rx.kernel, &s.tx.kernel);
        let lost = rx.overflow_bytes + tx.overflow_bytes;
        let notes = if lost > 0 {
            vec![format!(
                "the flow table was full: {lost} bytes in {} packets are in the totals but in no connection ({} inserts refused for lack of room, {} failed otherwise); restart netmon with a larger --table-capacity",
                rx.overflow_packets + tx.overflow_packets,
                rx.overflow_table_full + tx.overflow_table_full,
                rx.overflow_insert_failed + tx.overflow_insert_failed,
            )]
        } else {
            Vec::new()
        };
        Self {
            window_ns: s.window_ns,
            totals: Totals {
                rx_bytes: s.rx.ip_bytes,
                tx_bytes: s.tx.ip_bytes,
                rx_packets: Some(s.rx.ip_packets),
                tx_packets: Some(s.tx.ip_packets),
                rx: Some(rx.into()),
                tx: Some(tx.into()),
            },
            rows: s.flows.iter().map(|(id, c)| flow_row(id, c)).collect(),
            packets: true,
            rows_seen: None,
            notes,
            interface_totals: None,
            selection_applied: false,
            owners: Vec::new(),
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_is_told_with_its_bytes() {
        let mut s = Sample::default();
        assert!(Measurement::from_sample(&s).notes.is_empty());
        s.rx.kernel.overflow_bytes = 600;
        s.rx.kernel.overflow_packets = 6;
        s.tx.kernel.overflow_bytes = 40;
        s.tx.kernel.overflow_packets = 1;
        s.rx.kernel.overflow_table_full = 7;
        let n = &Measurement::from_sample(&s).notes;
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("640 bytes in 7 packets"), "{n:?}");
        assert!(n[0].contains("7 inserts refused"), "{n:?}");
    }

    #[test]
    fn endpoints_print_and_read_back() {
        for e in [
            Endpoint::Addr("10.0.0.1".parse().unwrap()),
            Endpoint::Addr("fd00::1".parse().unwrap()),
            Endpoint::Cut("fd00:209:aaaa:bbbb:cccc:dddd:eeee:".into()),
        ] {
            assert_eq!(Endpoint::parse(&e.to_string()), e);
        }
    }
}
