//! `netmon top`'s rows: the watched interface's flows grouped as the screen shows them (host
//! pairs, connections, one end hidden), narrowed by the selection, and put in order. Pure.

use super::state::{SortBy, State};
use crate::filter::{FlowEnds, Halves};
use crate::flow::{FlowId, Protocol};
use crate::window::{History, Rolling};
use std::net::IpAddr;

/// What one row is: the ends it shows (an end is `None` when `s`/`d` hid it), with ports when
/// they are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub local: Option<IpAddr>,
    pub local_port: Option<u16>,
    pub remote: Option<IpAddr>,
    pub remote_port: Option<u16>,
    /// With a port shown, the protocol too.
    pub protocol: Option<u8>,
}

/// The row a flow belongs to under `state`, and what of it counts; `None` when the selection
/// leaves it out.
fn key_of(state: &State, id: &FlowId) -> Option<(RowKey, Halves)> {
    let ported = Protocol::has_ports(id.protocol);
    let h = state.selection.halves(&FlowEnds {
        local: id.local,
        remote: id.remote,
        local_port: ported.then_some(id.local_port),
        remote_port: ported.then_some(id.remote_port),
        protocol: Some(id.protocol),
    })?;
    if !h.tx && !h.rx {
        return None;
    }
    let (local, lport, remote, rport) = if h.swap {
        (id.remote, id.remote_port, id.local, id.local_port)
    } else {
        (id.local, id.local_port, id.remote, id.remote_port)
    };
    let port = |shown: bool, p| (shown && ported).then_some(p);
    Some((
        RowKey {
            local: state.show_source.then_some(local),
            local_port: port(state.source_port, lport),
            remote: state.show_destination.then_some(remote),
            remote_port: port(state.destination_port, rport),
            protocol: state.by_connection().then_some(id.protocol),
        },
        h,
    ))
}

/// The rows under `state`, without the ones whose kept traffic is nothing.
pub fn group(history: &History, state: &State) -> Vec<(RowKey, Rolling)> {
    history
        .rolling_by(|id| key_of(state, id))
        .into_iter()
        .filter(|(_, r)| r.cumulative.total_bytes() > 0)
        .collect()
}

/// The selection's totals: the sum of what it keeps, with the busiest tick of that sum.
pub fn selected_totals(history: &History, state: &State) -> Rolling {
    history
        .rolling_by(|id| key_of(state, id).map(|(_, h)| ((), h)))
        .remove(&())
        .unwrap_or_default()
}

/// Puts `rows` in the order the screen shows: by the chosen column (sent + received,
/// descending) or by an end's label; with the order frozen (`o`), rows keep their place in
/// `previous` and new ones follow. `label` is how a row's ends read on the screen.
pub fn order(
    mut rows: Vec<(RowKey, Rolling)>,
    state: &State,
    previous: &[RowKey],
    label: impl Fn(&RowKey) -> (String, String),
) -> Vec<(RowKey, Rolling)> {
    let by_rate = |i: usize| {
        move |a: &(RowKey, Rolling), b: &(RowKey, Rolling)| {
            b.1.averages[i]
                .total()
                .total_cmp(&a.1.averages[i].total())
                .then(a.0.cmp(&b.0))
        }
    };
    match state.sort {
        SortBy::Column(i) => rows.sort_by(by_rate(i.min(2))),
        SortBy::Source => rows.sort_by_cached_key(|(k, _)| (label(k).0, *k)),
        SortBy::Destination => rows.sort_by_cached_key(|(k, _)| (label(k).1, *k)),
    }
    if state.frozen && !previous.is_empty() {
        let place = |k: &RowKey| previous.iter().position(|p| p == k).unwrap_or(usize::MAX);
        // Stable: new rows keep the order just computed, after the known ones.
        rows.sort_by_key(|(k, _)| place(k));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowCounters;
    use crate::snapshot::Sample;

    const S: u64 = 1_000_000_000;

    fn id(remote: u8, lport: u16, proto: u8) -> FlowId {
        FlowId {
            local: IpAddr::from([10, 0, 0, 1]),
            remote: IpAddr::from([10, 0, 0, remote]),
            local_port: lport,
            remote_port: 443,
            protocol: proto,
        }
    }

    fn history() -> History {
        let mut h = History::default();
        for t in 1..=3 {
            let c = |rx, tx| FlowCounters {
                rx_bytes: rx,
                rx_packets: 1,
                tx_bytes: tx,
                tx_packets: 1,
            };
            h.push(
                t * S,
                Sample {
                    window_ns: S,
                    flows: vec![
                        (id(2, 1000, 6), c(1000, 100)),
                        (id(2, 1001, 6), c(3000, 300)),
                        (id(3, 1002, 17), c(500, 50)),
                    ],
                    ..Default::default()
                },
            );
        }
        h
    }

    #[test]
    fn host_pairs_merge_ports_and_connections_keep_them() {
        let h = history();
        let mut s = State::default();
        let rows = group(&h, &s);
        assert_eq!(rows.len(), 2, "two host pairs");
        let two = rows
            .iter()
            .find(|(k, _)| k.remote == Some(IpAddr::from([10, 0, 0, 2])))
            .unwrap();
        assert_eq!(two.1.cumulative.rx_bytes, 3 * 4000);
        assert_eq!((two.0.local_port, two.0.protocol), (None, None));
        s.key(super::super::state::Key::Char('p'), 1);
        let rows = group(&h, &s);
        assert_eq!(rows.len(), 3);
        assert!(
            rows.iter()
                .all(|(k, _)| k.local_port.is_some() && k.protocol.is_some())
        );
        // Source hidden: every row to 10.0.0.2 on port 443 merges, whatever its local port.
        s.key(super::super::state::Key::Char('S'), 1);
        s.key(super::super::state::Key::Char('s'), 1);
        let rows = group(&h, &s);
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter()
                .all(|(k, _)| k.local.is_none() && k.local_port.is_none())
        );
    }

    #[test]
    fn the_selection_narrows_rows_and_totals() {
        let h = history();
        let s = State {
            selection: crate::filter::Selection {
                filter: crate::filter::parse("udp").unwrap(),
                ..Default::default()
            },
            ..State::default()
        };
        let rows = group(&h, &s);
        assert_eq!(rows.len(), 1);
        let t = selected_totals(&h, &s);
        assert_eq!((t.cumulative.rx_bytes, t.cumulative.tx_bytes), (1500, 150));
        assert_eq!(t.averages[0].rx, 500.0);
    }

    #[test]
    fn order_by_column_by_label_and_frozen() {
        let h = history();
        let mut s = State {
            source_port: true,
            destination_port: true,
            ..State::default()
        };
        let label = |k: &RowKey| (format!("{:?}", k.local_port), format!("{:?}", k.remote));
        let rows = order(group(&h, &s), &s, &[], label);
        let ports: Vec<_> = rows.iter().map(|(k, _)| k.local_port.unwrap()).collect();
        assert_eq!(ports, [1001, 1000, 1002], "by the 2 s column, descending");
        let previous: Vec<RowKey> = rows.iter().rev().map(|(k, _)| *k).collect();
        s.frozen = true;
        let frozen = order(group(&h, &s), &s, &previous, label);
        let ports: Vec<_> = frozen.iter().map(|(k, _)| k.local_port.unwrap()).collect();
        assert_eq!(ports, [1002, 1000, 1001], "the order it had");
        s.frozen = false;
        s.sort = SortBy::Source;
        let by_source = order(group(&h, &s), &s, &[], label);
        let ports: Vec<_> = by_source
            .iter()
            .map(|(k, _)| k.local_port.unwrap())
            .collect();
        assert_eq!(ports, [1000, 1001, 1002]);
    }
}
