//! Snapshots of the kernel counters and the difference of two of them over a window.
//!
//! Pure: a [`Snapshot`] is plain data read from the maps, and [`diff`] turns two of them into a
//! [`Sample`]. Counters only grow while an interface is attached; an entry that shrank was removed
//! and re-created between the snapshots, so its whole current value is new.

use crate::flow::{FlowCounters, FlowId};
use crate::owner::FlowSockets;
use netmon_common::DirTotals;
use std::collections::HashMap;

/// Flows by connection. foldhash is several times faster than the default SipHash on these
/// 40-byte keys and is still seeded per map, so remote hosts choosing addresses and ports cannot
/// aim for collisions.
pub type FlowTable = HashMap<FlowId, FlowCounters, foldhash::fast::RandomState>;

/// What the flow tables say of flows' sockets (only flows with something to say).
pub type SocketTable = HashMap<FlowId, FlowSockets, foldhash::fast::RandomState>;

/// Everything netmon knows about one interface at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// CLOCK_MONOTONIC, the clock `bpf_ktime_get_ns` uses.
    pub taken_ns: u64,
    pub rx: DirTotals,
    pub tx: DirTotals,
    pub flows: FlowTable,
    pub sockets: SocketTable,
    /// The same flows by the slot the classifier keeps their counters in, ascending: the end of
    /// a window walks these beside the kernel's slots instead of looking each flow up by its
    /// key ([`SlotCursor`]). Empty for sources without slots.
    pub slots: Vec<SlotCount>,
}

/// One flow's counters, by its slot and the slot's generation (which flow of the slot it is).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotCount {
    pub slot: u32,
    pub generation: u32,
    pub counters: FlowCounters,
}

/// Walks a window's first reading (ascending slots) alongside a later reading in the same
/// order, and gives what each flow of the later one added since: a linear merge of two arrays,
/// where a lookup by flow key would miss the cache for nearly every flow of a big table.
pub struct SlotCursor<'a> {
    before: &'a [SlotCount],
    at: usize,
}

impl<'a> SlotCursor<'a> {
    pub fn new(before: &'a [SlotCount]) -> Self {
        Self { before, at: 0 }
    }

    /// What the flow in `now`'s slot added since the first reading; `None` if nothing. A slot
    /// of another generation then held another flow, so everything it counts now is new.
    /// Calls must come in ascending slot order.
    pub fn since(&mut self, now: &SlotCount) -> Option<FlowCounters> {
        while self.before.get(self.at).is_some_and(|b| b.slot < now.slot) {
            self.at += 1;
        }
        let then = self
            .before
            .get(self.at)
            .filter(|b| b.slot == now.slot && b.generation == now.generation)
            .map(|b| &b.counters);
        flow_delta(then, &now.counters)
    }
}

/// Entries of each flow table (IPv4 and IPv6 have one each), as a full read counted them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableFill {
    pub v4: usize,
    pub v6: usize,
}

impl TableFill {
    /// Flows held: both families share the classifier's slots, so this is what meets the
    /// capacity first.
    pub fn fullest(&self) -> usize {
        self.v4 + self.v6
    }
}

/// One direction of what crossed an interface over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Crossed {
    /// IP packets on the wire (a GSO super-packet counts its segments) and their L3 bytes: the
    /// window's flows summed, plus the packets no flow holds (the kernel's overflow counters).
    /// Derived, never read: the flow tables and the per-CPU totals are read one after the
    /// other, not at one instant, so with traffic crossing the window's edges totals read on
    /// their own differed from the rows' sum by whole packets. Summed, rows + unattributed =
    /// totals in every view, by construction.
    pub ip_packets: u64,
    pub ip_bytes: u64,
    /// The kernel's per-CPU totals over the window: frames as the interface counters count
    /// them, frames that are not IP, and the overflow.
    pub kernel: DirTotals,
}

impl Crossed {
    /// The totals of a window whose flows added `in_flows` (this direction's packets, bytes).
    pub fn new(in_flows: (u64, u64), kernel: DirTotals) -> Self {
        Self {
            ip_packets: in_flows.0 + kernel.overflow_packets,
            ip_bytes: in_flows.1 + kernel.overflow_bytes,
            kernel,
        }
    }

    /// Adds another window's totals (windows that follow each other).
    pub fn add(&mut self, other: &Crossed) {
        self.ip_packets += other.ip_packets;
        self.ip_bytes += other.ip_bytes;
        self.kernel = sum_totals([&self.kernel, &other.kernel]);
    }
}

/// What crossed the interface between two snapshots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Measured length of the window.
    pub window_ns: u64,
    pub rx: Crossed,
    pub tx: Crossed,
    /// Flows with traffic in the window, in no particular order.
    pub flows: Vec<(FlowId, FlowCounters)>,
}

impl Sample {
    /// A window's sample from its flows and the kernel's totals over it; the IP totals are the
    /// flows' sum plus the overflow ([`Crossed`]).
    pub fn new(
        window_ns: u64,
        rx: DirTotals,
        tx: DirTotals,
        flows: Vec<(FlowId, FlowCounters)>,
    ) -> Self {
        let mut sum = FlowCounters::default();
        for (_, c) in &flows {
            sum.add(c);
        }
        Self {
            window_ns,
            rx: Crossed::new((sum.rx_packets, sum.rx_bytes), rx),
            tx: Crossed::new((sum.tx_packets, sum.tx_bytes), tx),
            flows,
        }
    }
}

fn delta(after: u64, before: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// Per-field difference of two totals.
pub fn diff_totals(after: &DirTotals, before: &DirTotals) -> DirTotals {
    DirTotals {
        frames: delta(after.frames, before.frames),
        frame_bytes: delta(after.frame_bytes, before.frame_bytes),
        other_frames: delta(after.other_frames, before.other_frames),
        other_bytes: delta(after.other_bytes, before.other_bytes),
        overflow_packets: delta(after.overflow_packets, before.overflow_packets),
        overflow_bytes: delta(after.overflow_bytes, before.overflow_bytes),
        overflow_table_full: delta(after.overflow_table_full, before.overflow_table_full),
        overflow_insert_failed: delta(after.overflow_insert_failed, before.overflow_insert_failed),
    }
}

/// Sums per-CPU totals into one.
pub fn sum_totals<'a>(per_cpu: impl IntoIterator<Item = &'a DirTotals>) -> DirTotals {
    per_cpu
        .into_iter()
        .fold(DirTotals::default(), |mut acc, t| {
            acc.frames += t.frames;
            acc.frame_bytes += t.frame_bytes;
            acc.other_frames += t.other_frames;
            acc.other_bytes += t.other_bytes;
            acc.overflow_packets += t.overflow_packets;
            acc.overflow_bytes += t.overflow_bytes;
            acc.overflow_table_full += t.overflow_table_full;
            acc.overflow_insert_failed += t.overflow_insert_failed;
            acc
        })
}

/// What one flow added over a window, given its counters at the start (`None`: it had no entry
/// then) and now. `None` when it added nothing.
pub fn flow_delta(then: Option<&FlowCounters>, now: &FlowCounters) -> Option<FlowCounters> {
    let then = then.copied().unwrap_or_default();
    let d = if now.rx_bytes < then.rx_bytes
        || now.tx_bytes < then.tx_bytes
        || now.rx_packets < then.rx_packets
        || now.tx_packets < then.tx_packets
    {
        *now
    } else {
        FlowCounters {
            rx_bytes: now.rx_bytes - then.rx_bytes,
            rx_packets: now.rx_packets - then.rx_packets,
            tx_bytes: now.tx_bytes - then.tx_bytes,
            tx_packets: now.tx_packets - then.tx_packets,
        }
    };
    (!d.is_zero()).then_some(d)
}

/// The traffic between `before` and `after`.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Sample {
    let flows = after
        .flows
        .iter()
        .filter_map(|(id, now)| Some((*id, flow_delta(before.flows.get(id), now)?)))
        .collect();
    Sample::new(
        after.taken_ns.saturating_sub(before.taken_ns),
        diff_totals(&after.rx, &before.rx),
        diff_totals(&after.tx, &before.tx),
        flows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn id(port: u16) -> FlowId {
        FlowId {
            local: IpAddr::from([10, 0, 0, 1]),
            remote: IpAddr::from([10, 0, 0, 2]),
            local_port: port,
            remote_port: 80,
            protocol: 6,
        }
    }

    fn c(rx: u64, tx: u64) -> FlowCounters {
        FlowCounters {
            rx_bytes: rx,
            rx_packets: rx / 100,
            tx_bytes: tx,
            tx_packets: tx / 100,
        }
    }

    #[test]
    fn diff_subtracts_existing_flows_and_keeps_new_ones_whole() {
        let before = Snapshot {
            taken_ns: 1_000,
            flows: [(id(1), c(1_000, 500)), (id(2), c(300, 300))]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let after = Snapshot {
            taken_ns: 5_000_001_000,
            flows: [
                (id(1), c(3_000, 700)),
                (id(2), c(300, 300)),
                (id(3), c(200, 0)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let mut s = diff(&before, &after);
        s.flows.sort_by_key(|(id, _)| *id);
        assert_eq!(s.window_ns, 5_000_000_000);
        // id(2) had no traffic in the window and is left out.
        assert_eq!(s.flows, vec![(id(1), c(2_000, 200)), (id(3), c(200, 0))]);
    }

    /// The IP totals are the rows' sum plus what no row holds, whatever the per-CPU totals
    /// were when they were read.
    #[test]
    fn ip_totals_are_the_flows_plus_the_overflow() {
        let before = Snapshot {
            flows: [(id(1), c(1_000, 500))].into_iter().collect(),
            ..Default::default()
        };
        let after = Snapshot {
            rx: DirTotals {
                overflow_packets: 3,
                overflow_bytes: 4_500,
                frames: 99,
                ..Default::default()
            },
            flows: [(id(1), c(3_000, 700)), (id(2), c(200, 100))]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let s = diff(&before, &after);
        assert_eq!(
            (s.rx.ip_bytes, s.rx.ip_packets),
            (2_000 + 200 + 4_500, 20 + 2 + 3)
        );
        assert_eq!((s.tx.ip_bytes, s.tx.ip_packets), (200 + 100, 2 + 1));
        assert_eq!(s.rx.kernel.frames, 99);
        let mut twice = s.rx;
        twice.add(&s.rx);
        assert_eq!(twice.ip_bytes, 2 * s.rx.ip_bytes);
        assert_eq!(twice.kernel.overflow_packets, 6);
    }

    #[test]
    fn a_shrunken_flow_was_recreated_and_counts_whole() {
        let before = Snapshot {
            flows: [(id(1), c(10_000, 0))].into_iter().collect(),
            ..Default::default()
        };
        let after = Snapshot {
            flows: [(id(1), c(400, 100))].into_iter().collect(),
            ..Default::default()
        };
        assert_eq!(diff(&before, &after).flows, vec![(id(1), c(400, 100))]);
    }

    #[test]
    fn totals_are_summed_over_cpus_and_differenced() {
        let t = |n: u64| DirTotals {
            frames: n,
            frame_bytes: n * 100,
            other_frames: n,
            other_bytes: n * 86,
            overflow_table_full: n / 2,
            ..Default::default()
        };
        let summed = sum_totals([&t(2), &t(4)]);
        assert_eq!(summed, t(6));
        assert_eq!(diff_totals(&t(10), &t(4)), t(6));
        // A counter that went backwards (entry re-created) counts from zero.
        assert_eq!(diff_totals(&t(3), &t(10)), t(3));
    }
}
