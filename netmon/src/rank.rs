//! Ranking flows: sort key, grouping by host pair, top N. Pure.

use crate::flow::FlowCounters;
use crate::owner::{Owner, OwnerRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

/// What the top list is ordered by (descending).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// Received bytes: the contract's default.
    #[default]
    Rx,
    /// Sent bytes.
    Tx,
    /// Sent + received bytes.
    Total,
    /// The left (local) end's address, ascending: iftop's `-o source`.
    Source,
    /// The right (remote) end's address, ascending: iftop's `-o destination`.
    Destination,
}

/// What one row of the top list is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One row per connection (addresses, ports, protocol), like `iftop -P`.
    #[default]
    Connection,
    /// One row per local/remote host pair, all ports and protocols merged, like plain `iftop`.
    Host,
    /// One row per process, like nethogs, and one per reason for traffic without one.
    Process,
    /// One row per container (or pod), one for this host's own processes, and one per reason
    /// for traffic without an owner.
    Container,
}

/// A row of the ranking: a connection, or a host pair when grouped (then ports and protocol are
/// `None`). `A` is how hosts are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranked<A = IpAddr> {
    pub local: A,
    pub remote: A,
    pub local_port: Option<u16>,
    pub remote_port: Option<u16>,
    pub protocol: Option<u8>,
    pub counters: FlowCounters,
    /// How many flows this row merges (1 per connection).
    pub flows: u32,
    /// Whose it is: an index into the result's owners, or why it has none.
    pub owner: OwnerRef,
}

/// The byte count a key orders by; the address keys order by total bytes within one address.
fn sort_value(c: &FlowCounters, key: SortKey) -> u64 {
    match key {
        SortKey::Rx => c.rx_bytes,
        SortKey::Tx => c.tx_bytes,
        SortKey::Total | SortKey::Source | SortKey::Destination => c.total_bytes(),
    }
}

/// The key a row merges under for an owner grouping: the process, or the container (`None`:
/// this host's own processes), or the reason there is no owner.
#[derive(Clone, PartialEq, Eq, Hash)]
enum OwnerKey {
    Process(u32),
    Container(Option<String>),
    Unattributed(Option<crate::owner::Unattributed>),
}

fn owner_key(r: &OwnerRef, by: GroupBy, owners: &[Owner]) -> OwnerKey {
    let Some(o) = r.owner.and_then(|i| owners.get(i as usize)) else {
        return OwnerKey::Unattributed(r.reason);
    };
    match by {
        GroupBy::Process => OwnerKey::Process(o.process.as_ref().map_or(0, |p| p.pid)),
        _ => OwnerKey::Container(o.container.as_ref().map(|c| c.id.clone())),
    }
}

/// Merges rows with equal keys; the first row's ends and owner stand for the group.
fn merge<A: Clone, K: Eq + Hash>(
    rows: Vec<Ranked<A>>,
    key: impl Fn(&Ranked<A>) -> K,
    keep_ports: bool,
) -> Vec<Ranked<A>> {
    let mut groups: HashMap<K, Ranked<A>> = HashMap::new();
    for r in rows {
        let k = key(&r);
        match groups.get_mut(&k) {
            Some(g) => {
                g.counters.add(&r.counters);
                g.flows += r.flows;
                if g.owner != r.owner {
                    // A host pair shared by two owners has none of its own.
                    g.owner = OwnerRef::NONE;
                }
            }
            None => {
                let mut g = r;
                if !keep_ports {
                    g.local_port = None;
                    g.remote_port = None;
                    g.protocol = None;
                }
                groups.insert(k, g);
            }
        }
    }
    groups.into_values().collect()
}

/// Groups (by host pair for [`GroupBy::Host`], by owner for the others), orders (by `key`, then
/// total bytes, then addresses, so equal inputs give equal output) and keeps the first `top`
/// rows. Also returns how many rows there were before the cut. `owners` is the table rows'
/// owners point into.
pub fn rank_rows<A: Clone + Ord + Hash>(
    rows: Vec<Ranked<A>>,
    key: SortKey,
    by: GroupBy,
    top: usize,
    owners: &[Owner],
) -> (Vec<Ranked<A>>, usize) {
    let mut rows = match by {
        GroupBy::Connection => rows,
        GroupBy::Host => merge(rows, |r| (r.local.clone(), r.remote.clone()), false),
        GroupBy::Process | GroupBy::Container => {
            merge(rows, |r| owner_key(&r.owner, by, owners), false)
        }
    };
    let all = rows.len();
    let order = |a: &Ranked<A>, b: &Ranked<A>| {
        let by_address = match key {
            SortKey::Source => a.local.cmp(&b.local).then(a.remote.cmp(&b.remote)),
            SortKey::Destination => a.remote.cmp(&b.remote).then(a.local.cmp(&b.local)),
            _ => std::cmp::Ordering::Equal,
        };
        by_address
            .then(sort_value(&b.counters, key).cmp(&sort_value(&a.counters, key)))
            .then(b.counters.total_bytes().cmp(&a.counters.total_bytes()))
            .then_with(|| {
                (&a.local, &a.remote, a.local_port, a.remote_port, a.protocol).cmp(&(
                    &b.local,
                    &b.remote,
                    b.local_port,
                    b.remote_port,
                    b.protocol,
                ))
            })
    };
    // Only the top rows need an order: partition around the cut in linear time, then sort what
    // is kept. Sorting all 262k rows of a big table took ~80 ms.
    if top < rows.len() {
        if top == 0 {
            rows.clear();
        } else {
            rows.select_nth_unstable_by(top - 1, order);
            rows.truncate(top);
        }
    }
    rows.sort_by(order);
    (rows, all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn flow(remote: u8, port: u16, proto: u8, rx: u64, tx: u64) -> Ranked {
        let ported = proto == 6 || proto == 17;
        Ranked {
            local: IpAddr::from([10, 0, 0, 1]),
            remote: IpAddr::from([10, 0, 0, remote]),
            local_port: ported.then_some(port),
            remote_port: ported.then_some(443),
            protocol: Some(proto),
            counters: FlowCounters {
                rx_bytes: rx,
                rx_packets: 1,
                tx_bytes: tx,
                tx_packets: 1,
            },
            flows: 1,
            owner: OwnerRef::NONE,
        }
    }

    fn rank(rows: &[Ranked], key: SortKey, by: GroupBy, top: usize) -> (Vec<Ranked>, usize) {
        rank_rows(rows.to_vec(), key, by, top, &[])
    }

    #[test]
    fn default_is_receive_bytes_descending_and_cut_to_top() {
        let flows = vec![
            flow(2, 1, 6, 10, 900),
            flow(3, 2, 6, 500, 0),
            flow(4, 3, 6, 70, 70),
        ];
        let (rows, all) = rank(&flows, SortKey::Rx, GroupBy::Connection, 2);
        assert_eq!(all, 3);
        let rx: Vec<u64> = rows.iter().map(|r| r.counters.rx_bytes).collect();
        assert_eq!(rx, vec![500, 70]);
        assert_eq!(rows[0].local_port, Some(2));
    }

    #[test]
    fn sort_by_tx_and_total() {
        let flows = vec![
            flow(2, 1, 6, 10, 900),
            flow(3, 2, 6, 500, 0),
            flow(4, 3, 6, 300, 300),
        ];
        let (tx, _) = rank(&flows, SortKey::Tx, GroupBy::Connection, 10);
        assert_eq!(tx[0].counters.tx_bytes, 900);
        let (total, _) = rank(&flows, SortKey::Total, GroupBy::Connection, 10);
        let t: Vec<u64> = total.iter().map(|r| r.counters.total_bytes()).collect();
        assert_eq!(t, vec![910, 600, 500]);
    }

    #[test]
    fn sort_by_source_and_destination_address() {
        let mut flows = vec![
            flow(9, 1, 6, 100, 0),
            flow(2, 1, 6, 5, 0),
            flow(2, 2, 6, 50, 0),
        ];
        flows[0].local = IpAddr::from([10, 0, 0, 0]);
        let (rows, _) = rank(&flows, SortKey::Destination, GroupBy::Connection, 10);
        let got: Vec<(u8, u64)> = rows
            .iter()
            .map(|r| match r.remote {
                IpAddr::V4(a) => (a.octets()[3], r.counters.rx_bytes),
                IpAddr::V6(_) => unreachable!(),
            })
            .collect();
        assert_eq!(got, [(2, 50), (2, 5), (9, 100)]);
        let (rows, _) = rank(&flows, SortKey::Source, GroupBy::Connection, 1);
        assert_eq!(rows[0].local, IpAddr::from([10, 0, 0, 0]));
    }

    #[test]
    fn ties_are_ordered_deterministically() {
        let flows = vec![
            flow(9, 1, 6, 100, 0),
            flow(2, 1, 6, 100, 0),
            flow(5, 1, 6, 100, 0),
        ];
        let (rows, _) = rank(&flows, SortKey::Rx, GroupBy::Connection, 10);
        let remotes: Vec<IpAddr> = rows.iter().map(|r| r.remote).collect();
        assert_eq!(
            remotes,
            vec![
                IpAddr::from([10, 0, 0, 2]),
                IpAddr::from([10, 0, 0, 5]),
                IpAddr::from([10, 0, 0, 9])
            ]
        );
    }

    #[test]
    fn grouping_by_host_merges_ports_and_protocols() {
        let flows = vec![
            flow(2, 1, 6, 100, 1),
            flow(2, 2, 17, 50, 2),
            flow(3, 1, 6, 120, 0),
        ];
        let (rows, all) = rank(&flows, SortKey::Rx, GroupBy::Host, 10);
        assert_eq!(all, 2);
        assert_eq!(rows[0].remote, IpAddr::from([10, 0, 0, 2]));
        assert_eq!(rows[0].counters.rx_bytes, 150);
        assert_eq!(rows[0].counters.tx_bytes, 3);
        assert_eq!(rows[0].flows, 2);
        assert_eq!((rows[0].local_port, rows[0].protocol), (None, None));
    }

    #[test]
    fn grouping_by_process_and_container_keeps_every_byte() {
        use crate::owner::{Container, Process, Runtime, Unattributed};
        let proc_ = |pid, container: Option<&str>| Owner {
            process: Some(Process {
                pid,
                comm: "p".into(),
                cmdline: None,
                uid: 0,
                user: None,
            }),
            container: container.map(|id| Container {
                runtime: Runtime::Podman,
                id: id.into(),
                pod: None,
            }),
            cgroup: None,
        };
        // Processes 10 and 11 in container c1, 12 on the host; one forwarded flow.
        let owners = vec![
            proc_(10, Some("c1")),
            proc_(11, Some("c1")),
            proc_(12, None),
        ];
        let mut rows = vec![
            flow(2, 1, 6, 100, 1),
            flow(2, 2, 6, 50, 2),
            flow(3, 1, 17, 120, 0),
            flow(4, 1, 6, 7, 7),
            flow(5, 1, 6, 1, 1),
        ];
        rows[0].owner = OwnerRef::owned(0);
        rows[1].owner = OwnerRef::owned(0);
        rows[2].owner = OwnerRef::owned(1);
        rows[3].owner = OwnerRef::owned(2);
        rows[4].owner = OwnerRef::unattributed(Unattributed::Forwarded);
        let total: u64 = rows.iter().map(|r| r.counters.total_bytes()).sum();
        let (p, n) = rank_rows(rows.clone(), SortKey::Rx, GroupBy::Process, 10, &owners);
        assert_eq!(n, 4, "three processes and a reason");
        assert_eq!(p[0].owner, OwnerRef::owned(0));
        assert_eq!((p[0].counters.rx_bytes, p[0].flows), (150, 2));
        assert_eq!(p[1].owner, OwnerRef::owned(1));
        assert_eq!(
            p.iter().map(|r| r.counters.total_bytes()).sum::<u64>(),
            total
        );
        let (c, n) = rank_rows(rows, SortKey::Rx, GroupBy::Container, 10, &owners);
        assert_eq!(n, 3, "c1, the host's processes, and forwarded");
        assert_eq!(c[0].counters.rx_bytes, 270, "both processes of c1");
        assert_eq!(
            c.iter().map(|r| r.counters.total_bytes()).sum::<u64>(),
            total
        );
        assert!(c.iter().all(|r| r.local_port.is_none()));
    }

    #[test]
    fn portless_protocols_have_no_ports() {
        let flows = vec![flow(2, 0, 1, 84, 84)];
        let (rows, _) = rank(&flows, SortKey::Rx, GroupBy::Connection, 10);
        assert_eq!((rows[0].local_port, rows[0].remote_port), (None, None));
        assert_eq!(rows[0].protocol, Some(1));
    }
}
