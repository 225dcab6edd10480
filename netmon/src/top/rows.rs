//! `netmon top`'s rows: the watched interface's flows grouped as the screen shows them (host
//! pairs, connections, one end hidden, processes, containers), narrowed by the selection, and
//! put in order. Pure.

use super::state::{Group, SortBy, State};
use crate::filter::{FlowEnds, Halves};
use crate::flow::{FlowId, Protocol};
use crate::owner::{FlowOwner, Owner, Unattributed};
use crate::window::{History, Rolling};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// A row of the flow screens: the ends it shows (an end is `None` when `s`/`d` hid it), with
/// ports when they are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ends {
    pub local: Option<IpAddr>,
    pub local_port: Option<u16>,
    pub remote: Option<IpAddr>,
    pub remote_port: Option<u16>,
    /// With a port shown, the protocol too.
    pub protocol: Option<u8>,
}

/// A row of the process and container screens: whose the flows are, or why they are nobody's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnerKey {
    Process {
        pid: u32,
        comm: String,
    },
    /// A container by its id; `None`: the host's own processes (in no container).
    Container(Option<String>),
    Unattributed(Unattributed),
}

/// The owner behind each owner row.
pub type Named = HashMap<OwnerKey, Arc<Owner>>;

/// What one row is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowKey {
    Ends(Ends),
    Owner(OwnerKey),
}

/// Whose `id` is, as the process (`by_container` false) or container screen groups it.
pub fn owner_key(
    owners: &HashMap<FlowId, FlowOwner>,
    id: &FlowId,
    by_container: bool,
) -> (OwnerKey, Option<Arc<Owner>>) {
    match owners.get(id) {
        Some(FlowOwner::Owned(o)) if by_container => (
            OwnerKey::Container(o.container.as_ref().map(|c| c.id.clone())),
            Some(o.clone()),
        ),
        Some(FlowOwner::Owned(o)) => match &o.process {
            Some(p) => (
                OwnerKey::Process {
                    pid: p.pid,
                    comm: p.comm.clone(),
                },
                Some(o.clone()),
            ),
            None => (OwnerKey::Unattributed(Unattributed::NoSocket), None),
        },
        Some(FlowOwner::Unattributed(r)) => (OwnerKey::Unattributed(*r), None),
        // Not named yet (the tick that brought it is being attributed): said so, not hidden.
        None => (OwnerKey::Unattributed(Unattributed::Off), None),
    }
}

/// The ends of `id` as the flow screens show them under `state`, turned as `h` says.
fn ends(state: &State, id: &FlowId, h: &Halves, connections: bool) -> Ends {
    let ported = Protocol::has_ports(id.protocol);
    let (local, lport, remote, rport) = if h.swap {
        (id.remote, id.remote_port, id.local, id.local_port)
    } else {
        (id.local, id.local_port, id.remote, id.remote_port)
    };
    let port = |shown: bool, p| (shown && ported).then_some(p);
    let by_connection = connections || state.by_connection();
    Ends {
        local: state.show_source.then_some(local),
        local_port: port(connections || state.source_port, lport),
        remote: state.show_destination.then_some(remote),
        remote_port: port(connections || state.destination_port, rport),
        protocol: by_connection.then_some(id.protocol),
    }
}

/// The row a flow belongs to under `state`, and what of it counts; `None` when the selection
/// (or the owner opened with Enter) leaves it out.
fn key_of(
    state: &State,
    owners: &HashMap<FlowId, FlowOwner>,
    id: &FlowId,
) -> Option<(RowKey, Halves)> {
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
    let by_container = state.group == Group::Container;
    if let Some(opened) = &state.drill {
        // One owner's connections.
        return (owner_key(owners, id, by_container).0 == *opened)
            .then(|| (RowKey::Ends(ends(state, id, &h, true)), h));
    }
    let key = match state.group {
        Group::Flows => RowKey::Ends(ends(state, id, &h, false)),
        Group::Process | Group::Container => RowKey::Owner(owner_key(owners, id, by_container).0),
    };
    Some((key, h))
}

/// The rows under `state`, without the ones whose kept traffic is nothing, and the owner
/// behind each owner row. On the owner screens, the bytes no flow holds (a full table) are a
/// row of their own, so the rows add up to the totals.
pub fn group(
    history: &History,
    owners: &HashMap<FlowId, FlowOwner>,
    state: &State,
) -> (Vec<(RowKey, Rolling)>, Named) {
    let mut rows: Vec<(RowKey, Rolling)> = history
        .rolling_by(|id| key_of(state, owners, id))
        .into_iter()
        .filter(|(_, r)| r.cumulative.total_bytes() > 0)
        .collect();
    let mut named = HashMap::new();
    if state.group != Group::Flows {
        let by_container = state.group == Group::Container;
        for id in owners.keys() {
            if let (k, Some(o)) = owner_key(owners, id, by_container) {
                named.entry(k).or_insert(o);
            }
        }
    }
    if state.showing_owners() {
        let lost = history.overflow();
        if state.selection.is_all() && lost.cumulative.total_bytes() > 0 {
            rows.push((
                RowKey::Owner(OwnerKey::Unattributed(Unattributed::TableFull)),
                lost,
            ));
        }
    }
    (rows, named)
}

/// The totals of what the selection (and an opened owner) keeps: their sum, with the busiest
/// tick of that sum.
pub fn selected_totals(
    history: &History,
    owners: &HashMap<FlowId, FlowOwner>,
    state: &State,
) -> Rolling {
    history
        .rolling_by(|id| key_of(state, owners, id).map(|(_, h)| ((), h)))
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
                .then_with(|| a.0.cmp(&b.0))
        }
    };
    match state.sort {
        SortBy::Column(i) => rows.sort_by(by_rate(i.min(2))),
        SortBy::Source => rows.sort_by_cached_key(|(k, _)| (label(k).0, k.clone())),
        SortBy::Destination => rows.sort_by_cached_key(|(k, _)| (label(k).1, k.clone())),
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
    use crate::owner::{Container, Process, Runtime};
    use crate::snapshot::Sample;
    use crate::top::state::Key;

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
            let mut sample = Sample::new(
                S,
                Default::default(),
                Default::default(),
                vec![
                    (id(2, 1000, 6), c(1000, 100)),
                    (id(2, 1001, 6), c(3000, 300)),
                    (id(3, 1002, 17), c(500, 50)),
                    (id(4, 1003, 17), c(70, 7)),
                ],
            );
            // 40 B received in no flow each second (a full table).
            sample.rx.kernel.overflow_bytes = 40;
            sample.rx.kernel.overflow_packets = 1;
            sample.rx.ip_bytes += 40;
            sample.rx.ip_packets += 1;
            h.push(t * S, sample);
        }
        h
    }

    /// 1000 and 1001 are one iperf3 (pid 7) in a container; 1002 is a host process (pid 9);
    /// 1003 is the kernel's own.
    fn owners() -> HashMap<FlowId, FlowOwner> {
        let process = |pid, comm: &str| Process {
            pid,
            comm: comm.into(),
            cmdline: None,
            uid: 0,
            user: Some("root".into()),
        };
        let iperf = Arc::new(Owner {
            process: Some(process(7, "iperf3")),
            container: Some(Container {
                runtime: Runtime::Podman,
                id: "ab".repeat(32),
                pod: None,
            }),
            cgroup: None,
        });
        let dig = Arc::new(Owner {
            process: Some(process(9, "dig")),
            ..Default::default()
        });
        [
            (id(2, 1000, 6), FlowOwner::Owned(iperf.clone())),
            (id(2, 1001, 6), FlowOwner::Owned(iperf)),
            (id(3, 1002, 17), FlowOwner::Owned(dig)),
            (
                id(4, 1003, 17),
                FlowOwner::Unattributed(Unattributed::KernelSocket),
            ),
        ]
        .into_iter()
        .collect()
    }

    fn ends(rows: &[(RowKey, Rolling)]) -> Vec<(Ends, Rolling)> {
        rows.iter()
            .map(|(k, r)| match k {
                RowKey::Ends(e) => (*e, r.clone()),
                RowKey::Owner(o) => panic!("an owner row on a flow screen: {o:?}"),
            })
            .collect()
    }

    #[test]
    fn host_pairs_merge_ports_and_connections_keep_them() {
        let h = history();
        let none = HashMap::new();
        let mut s = State::default();
        let rows = ends(&group(&h, &none, &s).0);
        assert_eq!(rows.len(), 3, "three host pairs");
        let two = rows
            .iter()
            .find(|(k, _)| k.remote == Some(IpAddr::from([10, 0, 0, 2])))
            .unwrap();
        assert_eq!(two.1.cumulative.rx_bytes, 3 * 4000);
        assert_eq!((two.0.local_port, two.0.protocol), (None, None));
        s.key(Key::Char('p'), 1);
        let rows = ends(&group(&h, &none, &s).0);
        assert_eq!(rows.len(), 4);
        assert!(
            rows.iter()
                .all(|(k, _)| k.local_port.is_some() && k.protocol.is_some())
        );
        // Source hidden: every row to 10.0.0.2 on port 443 merges, whatever its local port.
        s.key(Key::Char('S'), 1);
        s.key(Key::Char('s'), 1);
        let rows = ends(&group(&h, &none, &s).0);
        assert_eq!(rows.len(), 3);
        assert!(
            rows.iter()
                .all(|(k, _)| k.local.is_none() && k.local_port.is_none())
        );
    }

    #[test]
    fn the_selection_narrows_rows_and_totals() {
        let h = history();
        let none = HashMap::new();
        let s = State {
            selection: crate::filter::Selection {
                filter: crate::filter::parse("udp").unwrap(),
                ..Default::default()
            },
            ..State::default()
        };
        let rows = group(&h, &none, &s).0;
        assert_eq!(rows.len(), 2);
        let t = selected_totals(&h, &none, &s);
        assert_eq!((t.cumulative.rx_bytes, t.cumulative.tx_bytes), (1710, 171));
        assert_eq!(t.averages[0].rx, 570.0);
    }

    /// The process and container screens: one row per process (its flows summed), per
    /// container (the host's processes in one row), and per reason for what is nobody's, the
    /// bytes in no flow included; the rows add up to the interface's totals exactly.
    #[test]
    fn owner_screens_group_by_process_and_container_and_add_up() {
        let h = history();
        let o = owners();
        let mut s = State::default();
        s.key(Key::Char('g'), 1);
        assert_eq!(s.group, Group::Process, "host pair → process");
        let (rows, named) = group(&h, &o, &s);
        let get = |k: &OwnerKey| rows.iter().find(|(r, _)| *r == RowKey::Owner(k.clone()));
        let iperf = OwnerKey::Process {
            pid: 7,
            comm: "iperf3".into(),
        };
        assert_eq!(get(&iperf).unwrap().1.cumulative.rx_bytes, 3 * 4000);
        assert!(named.contains_key(&iperf));
        let kernel = OwnerKey::Unattributed(Unattributed::KernelSocket);
        assert_eq!(get(&kernel).unwrap().1.cumulative.rx_bytes, 3 * 70);
        let full = OwnerKey::Unattributed(Unattributed::TableFull);
        assert_eq!(get(&full).unwrap().1.cumulative.rx_bytes, 3 * 40);
        let interface = h.interface();
        let mut sum = FlowCounters::default();
        for (_, r) in &rows {
            sum.add(&r.cumulative);
        }
        assert_eq!(sum, interface.cumulative, "the rows are the totals");
        let rate: f64 = rows.iter().map(|(_, r)| r.averages[0].rx).sum();
        assert!((rate - interface.averages[0].rx).abs() < 1e-9);

        s.key(Key::Char('g'), 1);
        assert_eq!(s.group, Group::Container);
        let (rows, _) = group(&h, &o, &s);
        let container = RowKey::Owner(OwnerKey::Container(Some("ab".repeat(32))));
        let host = RowKey::Owner(OwnerKey::Container(None));
        let find = |k: &RowKey| rows.iter().find(|(r, _)| r == k).unwrap().1.clone();
        assert_eq!(find(&container).cumulative.rx_bytes, 3 * 4000);
        assert_eq!(find(&host).cumulative.rx_bytes, 3 * 500);
        assert_eq!(
            rows.len(),
            4,
            "container, host, the kernel's, the full table"
        );

        s.key(Key::Char('g'), 1);
        assert_eq!((s.group, s.by_connection()), (Group::Flows, true));
        s.key(Key::Char('g'), 1);
        assert_eq!((s.group, s.by_connection()), (Group::Flows, false));
    }

    /// Enter on a process opens its connections: only its flows, with ports, and its totals.
    #[test]
    fn an_opened_process_shows_its_connections_only() {
        let h = history();
        let o = owners();
        let s = State {
            group: Group::Process,
            drill: Some(OwnerKey::Process {
                pid: 7,
                comm: "iperf3".into(),
            }),
            ..State::default()
        };
        let rows = ends(&group(&h, &o, &s).0);
        let ports: Vec<_> = rows.iter().map(|(e, _)| e.local_port).collect();
        assert_eq!(rows.len(), 2, "{ports:?}");
        assert!(rows.iter().all(|(e, _)| e.local_port.is_some()));
        let t = selected_totals(&h, &o, &s);
        assert_eq!(t.cumulative.rx_bytes, 3 * 4000);
    }

    #[test]
    fn order_by_column_by_label_and_frozen() {
        let h = history();
        let none = HashMap::new();
        let mut s = State {
            source_port: true,
            destination_port: true,
            ..State::default()
        };
        let port = |k: &RowKey| match k {
            RowKey::Ends(e) => e.local_port.unwrap(),
            RowKey::Owner(_) => 0,
        };
        let label = |k: &RowKey| match k {
            RowKey::Ends(e) => (format!("{:?}", e.local_port), format!("{:?}", e.remote)),
            RowKey::Owner(o) => (format!("{o:?}"), String::new()),
        };
        let rows = order(group(&h, &none, &s).0, &s, &[], label);
        let ports: Vec<_> = rows.iter().map(|(k, _)| port(k)).collect();
        assert_eq!(
            ports,
            [1001, 1000, 1002, 1003],
            "by the 2 s column, descending"
        );
        let previous: Vec<RowKey> = rows.iter().rev().map(|(k, _)| k.clone()).collect();
        s.frozen = true;
        let frozen = order(group(&h, &none, &s).0, &s, &previous, label);
        let ports: Vec<_> = frozen.iter().map(|(k, _)| port(k)).collect();
        assert_eq!(ports, [1003, 1002, 1000, 1001], "the order it had");
        s.frozen = false;
        s.sort = SortBy::Source;
        let by_source = order(group(&h, &none, &s).0, &s, &[], label);
        let ports: Vec<_> = by_source.iter().map(|(k, _)| port(k)).collect();
        assert_eq!(ports, [1000, 1001, 1002, 1003]);
    }
}
