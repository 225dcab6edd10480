//! One tick of an always-on sampler (the agent): the traffic since the previous reading, which
//! flows have been quiet long enough to leave the kernel table, and what those flows counted
//! between the reading and their removal. Pure: the kernel reads and removals happen in
//! [`crate::source::ebpf`], which feeds this module what they returned.
//!
//! The classifier keeps no timestamps (a clock read per packet costs more than the whole lookup
//! saved), so a flow's idleness is judged here, from counters that did not move between
//! readings: each flow remembers the reading at which its counters last changed.

use crate::flow::{FlowCounters, FlowId};
use crate::snapshot::{FlowTable, Sample, Snapshot, diff_totals, flow_delta};
use std::collections::HashMap;

/// What the sampler keeps of one interface between ticks.
#[derive(Clone, Debug, Default)]
pub struct Tracked {
    /// The last reading, to diff the next one against.
    pub snapshot: Snapshot,
    /// When (the reading's CLOCK_MONOTONIC) each flow's counters last changed.
    pub moved_ns: HashMap<FlowId, u64, foldhash::fast::RandomState>,
}

impl Tracked {
    /// The first reading of an interface: every flow in it counts as having just moved.
    pub fn start(snapshot: Snapshot) -> Self {
        let at = snapshot.taken_ns;
        let moved_ns = snapshot.flows.keys().map(|id| (*id, at)).collect();
        Self { snapshot, moved_ns }
    }
}

/// A tick in progress: [`tick`] made it from a reading, [`Tick::evicted`] adds what removed
/// entries had counted late, [`Tick::finish`] ends it.
#[derive(Debug)]
pub struct Tick {
    next: Tracked,
    window_ns: u64,
    rx: netmon_common::DirTotals,
    tx: netmon_common::DirTotals,
    /// Flows that moved since the previous reading, by what they added.
    moved: FlowTable,
    /// Flows whose counters last changed before the cutoff, to remove from the kernel table.
    pub idle: Vec<FlowId>,
    /// How many of `idle` were removed, and how many of those were IPv6 flows.
    pub evicted: usize,
    pub evicted_v6: usize,
}

/// Diffs `now` against `prev` and lists the flows whose counters have not changed since before
/// `idle_before_ns` (same clock as the readings; 0 keeps every flow).
pub fn tick(prev: &Tracked, now: Snapshot, idle_before_ns: u64) -> Tick {
    let at = now.taken_ns;
    let mut moved = FlowTable::default();
    let mut moved_ns =
        HashMap::with_capacity_and_hasher(now.flows.len(), foldhash::fast::RandomState::default());
    let mut idle = Vec::new();
    for (id, c) in &now.flows {
        let last = match flow_delta(prev.snapshot.flows.get(id), c) {
            Some(d) => {
                moved.insert(*id, d);
                at
            }
            None => prev.moved_ns.get(id).copied().unwrap_or(at),
        };
        if last < idle_before_ns {
            idle.push(*id);
        }
        moved_ns.insert(*id, last);
    }
    Tick {
        window_ns: at.saturating_sub(prev.snapshot.taken_ns),
        rx: diff_totals(&now.rx, &prev.snapshot.rx),
        tx: diff_totals(&now.tx, &prev.snapshot.tx),
        next: Tracked {
            snapshot: now,
            moved_ns,
        },
        moved,
        idle,
        evicted: 0,
        evicted_v6: 0,
    }
}

impl Tick {
    /// `id`'s kernel entry was removed holding `at_removal`: what it counted after the reading
    /// belongs to this tick, and the next tick starts without it, so a flow that comes back is a
    /// new entry counted from zero, neither lost nor counted twice.
    pub fn evicted(&mut self, id: FlowId, at_removal: &FlowCounters) {
        self.evicted += 1;
        if id.local.is_ipv6() {
            self.evicted_v6 += 1;
        }
        let read = self.next.snapshot.flows.remove(&id);
        self.next.moved_ns.remove(&id);
        if let Some(late) = flow_delta(read.as_ref(), at_removal) {
            self.moved.entry(id).or_default().add(&late);
        }
    }

    /// `id`'s kernel entry, removed at an earlier tick, counted `late` after its removal
    /// (packets that had found the entry just before): they are this tick's traffic.
    pub fn late(&mut self, id: FlowId, late: &FlowCounters) {
        self.moved.entry(id).or_default().add(late);
    }

    /// The state for the next tick, and this tick's traffic.
    pub fn finish(self) -> (Tracked, Sample) {
        let sample = Sample::new(
            self.window_ns,
            self.rx,
            self.tx,
            self.moved.into_iter().collect(),
        );
        (self.next, sample)
    }
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
            remote_port: 53,
            protocol: 17,
        }
    }

    fn c(rx: u64) -> FlowCounters {
        FlowCounters {
            rx_bytes: rx,
            rx_packets: rx / 100,
            ..Default::default()
        }
    }

    fn reading(at: u64, flows: &[(u16, u64)]) -> Snapshot {
        Snapshot {
            taken_ns: at,
            flows: flows.iter().map(|&(p, rx)| (id(p), c(rx))).collect(),
            ..Default::default()
        }
    }

    fn sorted(mut s: Sample) -> Vec<(u16, u64)> {
        s.flows.sort_by_key(|(f, _)| *f);
        s.flows
            .iter()
            .map(|(f, c)| (f.local_port, c.rx_bytes))
            .collect()
    }

    #[test]
    fn idleness_is_judged_from_counters_that_did_not_move() {
        let t0 = Tracked::start(reading(1_000, &[(1, 100), (2, 100)]));
        // Flow 1 moves, flow 2 does not; nothing is old enough yet.
        let t = tick(&t0, reading(2_000, &[(1, 300), (2, 100)]), 500);
        assert!(t.idle.is_empty());
        let (t1, s) = t.finish();
        assert_eq!(sorted(s), [(1, 200)]);
        assert_eq!(t1.moved_ns[&id(1)], 2_000);
        assert_eq!(
            t1.moved_ns[&id(2)],
            1_000,
            "unchanged counters keep the old time"
        );
        // With the cutoff past 1,000, flow 2 is idle; flow 1 moved at 2,000.
        let t = tick(&t1, reading(3_000, &[(1, 300), (2, 100)]), 1_500);
        assert_eq!(t.idle, [id(2)]);
        // A cutoff of 0 (the default before the first eviction is due) keeps everything.
        let t = tick(&t1, reading(3_000, &[(1, 300), (2, 100)]), 0);
        assert!(t.idle.is_empty());
    }

    #[test]
    fn late_bytes_of_an_evicted_entry_land_in_this_tick_and_a_returning_flow_counts_from_zero() {
        let t0 = Tracked::start(reading(0, &[(1, 1_000), (2, 500)]));
        let mut t = tick(&t0, reading(10, &[(1, 1_000), (2, 700)]), 5);
        assert_eq!(t.idle, [id(1)]);
        // Between the reading (1,000) and its removal, flow 1 counted 50 more bytes.
        t.evicted(id(1), &c(1_050));
        assert_eq!(t.evicted, 1);
        let (t1, s) = t.finish();
        assert_eq!(sorted(s), [(1, 50), (2, 200)]);
        assert!(!t1.snapshot.flows.contains_key(&id(1)));
        assert!(!t1.moved_ns.contains_key(&id(1)));
        // It comes back as a new entry: its whole count is new.
        let (_, s) = tick(&t1, reading(20, &[(1, 30), (2, 700)]), 0).finish();
        assert_eq!(sorted(s), [(1, 30)]);
    }

    #[test]
    fn an_evicted_entry_that_moved_in_the_tick_adds_to_its_row() {
        let t0 = Tracked::start(reading(0, &[(1, 100)]));
        let mut t = tick(&t0, reading(10, &[(1, 400)]), 0);
        t.evicted(id(1), &c(450));
        let (_, s) = t.finish();
        assert_eq!(sorted(s), [(1, 350)], "one row: 300 read plus 50 late");
    }

    #[test]
    fn totals_and_window_are_the_differences_of_the_readings() {
        let mut a = reading(1_000, &[]);
        a.rx.overflow_bytes = 10;
        a.rx.frames = 4;
        let mut b = reading(4_000, &[]);
        b.rx.overflow_bytes = 25;
        b.rx.frames = 9;
        let (_, s) = tick(&Tracked::start(a), b, 0).finish();
        // No flow moved: the IP bytes are the overflow's alone.
        assert_eq!((s.window_ns, s.rx.ip_bytes), (3_000, 15));
        assert_eq!((s.rx.kernel.frames, s.rx.kernel.overflow_bytes), (5, 15));
    }
}
