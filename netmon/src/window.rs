//! Rolling views of one interface's traffic, as iftop shows them: the last 2 s, 10 s and 40 s,
//! the peak over the last 40 s, and the total since watching began. Pure: an always-on sampler
//! feeds [`History::push`] one [`Sample`] per tick (about a second) and asks for views.
//!
//! Memory follows what moved, not what exists: each tick keeps only the flows that had traffic
//! in it, and a flow is forgotten (cumulative figure included) once no tick in the last 40 s
//! mentions it, as iftop forgets host pairs whose history is all zero. The interface's own
//! cumulative totals are kept for as long as the history lives.

use crate::filter::Halves;
use crate::flow::{FlowCounters, FlowId};
use crate::snapshot::{Crossed, FlowTable, Sample};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// How far back the views reach, like iftop's longest column.
pub const HISTORY_NS: u64 = 40_000_000_000;

/// The averaging spans iftop prints, in seconds.
pub const SPANS: [u64; 3] = [2, 10, 40];

/// One tick of history.
#[derive(Clone, Debug)]
struct Tick {
    /// CLOCK_MONOTONIC at the end of the tick.
    end_ns: u64,
    sample: Sample,
}

/// Bytes per second in each direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rate {
    pub rx: f64,
    pub tx: f64,
}

impl Rate {
    fn of(c: &FlowCounters, ns: u64) -> Self {
        if ns == 0 {
            return Self::default();
        }
        let per_s = 1e9 / ns as f64;
        Self {
            rx: c.rx_bytes as f64 * per_s,
            tx: c.tx_bytes as f64 * per_s,
        }
    }

    pub fn total(&self) -> f64 {
        self.rx + self.tx
    }
}

/// What iftop shows for one row: averages over [`SPANS`], the peak over the history, and the
/// total since the row appeared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rolling {
    /// Averages over the last 2, 10 and 40 s (or as much of each as has been watched).
    pub averages: [Rate; 3],
    /// The highest one-tick rate in the last 40 s, per direction and for both together.
    pub peak: Rate,
    pub peak_total: f64,
    pub cumulative: FlowCounters,
}

/// The traffic of one interface over the last 40 s, tick by tick.
#[derive(Debug, Default)]
pub struct History {
    ticks: VecDeque<Tick>,
    /// Per flow: counters since it was first seen, and the end of the last tick that moved it.
    flows: HashMap<FlowId, (FlowCounters, u64)>,
    /// Interface totals since watching began.
    pub rx_total: Crossed,
    pub tx_total: Crossed,
    /// Time watched so far.
    pub watched_ns: u64,
}

impl History {
    /// Adds one tick that ended at `end_ns` (CLOCK_MONOTONIC) and drops what fell out of the last
    /// 40 s.
    pub fn push(&mut self, end_ns: u64, sample: Sample) {
        self.rx_total.add(&sample.rx);
        self.tx_total.add(&sample.tx);
        self.watched_ns += sample.window_ns;
        for (id, c) in &sample.flows {
            let e = self.flows.entry(*id).or_default();
            e.0.add(c);
            e.1 = end_ns;
        }
        self.ticks.push_back(Tick { end_ns, sample });
        let horizon = end_ns.saturating_sub(HISTORY_NS);
        while self.ticks.front().is_some_and(|t| t.end_ns <= horizon) {
            self.ticks.pop_front();
        }
        self.flows.retain(|_, (_, last)| *last > horizon);
    }

    /// When the newest tick ended (CLOCK_MONOTONIC).
    pub fn newest_end_ns(&self) -> Option<u64> {
        self.ticks.back().map(|t| t.end_ns)
    }

    /// The newest tick's traffic.
    pub fn latest(&self) -> Option<&Sample> {
        self.ticks.back().map(|t| &t.sample)
    }

    /// Whether `id` moved within the last 40 s.
    pub fn knows(&self, id: &FlowId) -> bool {
        self.flows.contains_key(id)
    }

    /// Flows moved within the last 40 s.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// The newest ticks covering at least `ns` of time (all of them if the history is shorter),
    /// with the time they actually cover.
    fn newest(&self, ns: u64) -> (impl Iterator<Item = &Tick>, u64) {
        let mut covered = 0;
        let mut n = 0;
        for t in self.ticks.iter().rev() {
            if covered >= ns {
                break;
            }
            covered += t.sample.window_ns;
            n += 1;
        }
        (self.ticks.iter().rev().take(n), covered)
    }

    /// The traffic of the newest ticks covering at least `ns`, merged into one [`Sample`] whose
    /// `window_ns` says what it really covers; `None` before the first tick. An always-on
    /// sampler answers a request for the last N seconds with this.
    pub fn last(&self, ns: u64) -> Option<Sample> {
        if self.ticks.is_empty() {
            return None;
        }
        let (ticks, covered) = self.newest(ns);
        let mut rx = Crossed::default();
        let mut tx = Crossed::default();
        let mut flows: HashMap<FlowId, FlowCounters> = HashMap::new();
        for t in ticks {
            rx.add(&t.sample.rx);
            tx.add(&t.sample.tx);
            for (id, c) in &t.sample.flows {
                flows.entry(*id).or_default().add(c);
            }
        }
        Some(Sample {
            window_ns: covered,
            rx,
            tx,
            flows: flows.into_iter().collect(),
        })
    }

    /// Every flow's average rate over the newest ticks covering `span_s` seconds (flows that did
    /// not move in them are absent). One span only, which is what ranking by it needs:
    /// [`Self::flows`] does three spans and the peaks, ten times the work at 60k flows.
    pub fn averages(&self, span_s: u64) -> Vec<(FlowId, Rate)> {
        let (ticks, covered) = self.newest(span_s * 1_000_000_000);
        let mut sums = FlowTable::with_capacity_and_hasher(self.flows.len(), Default::default());
        for t in ticks {
            for (id, c) in &t.sample.flows {
                sums.entry(*id).or_default().add(c);
            }
        }
        sums.into_iter()
            .map(|(id, c)| (id, Rate::of(&c, covered)))
            .collect()
    }

    /// iftop's columns for every flow that moved in the last 40 s.
    pub fn flows(&self) -> HashMap<FlowId, Rolling> {
        self.rolling_by(|id| Some((*id, Halves::ALL)))
    }

    /// iftop's columns for rows made of flows, as `netmon top` shows them: `key` puts a flow in
    /// a row and says which of its halves count (and whether they swap, for `-F`); flows it
    /// gives `None` are left out. A row's peak is its own busiest tick, not a sum of its flows'
    /// peaks. One pass over the ticks, newest first, serves the three spans and the peaks.
    pub fn rolling_by<K: Hash + Eq + Clone>(
        &self,
        key: impl Fn(&FlowId) -> Option<(K, Halves)>,
    ) -> HashMap<K, Rolling> {
        let keys: HashMap<FlowId, (K, Halves)> = self
            .flows
            .keys()
            .filter_map(|id| key(id).map(|k| (*id, k)))
            .collect();
        let mut out: HashMap<K, Rolling> = HashMap::new();
        for (id, (cum, _)) in &self.flows {
            if let Some((k, h)) = keys.get(id) {
                out.entry(k.clone())
                    .or_default()
                    .cumulative
                    .add(&h.apply(cum));
            }
        }
        let mut sums: HashMap<K, FlowCounters> = HashMap::new();
        let mut tick: HashMap<K, FlowCounters> = HashMap::new();
        let mut covered = 0;
        let mut span = 0;
        let finish =
            |out: &mut HashMap<K, Rolling>, sums: &HashMap<K, FlowCounters>, i: usize, ns| {
                for (k, c) in sums {
                    if let Some(r) = out.get_mut(k) {
                        r.averages[i] = Rate::of(c, ns);
                    }
                }
            };
        for t in self.ticks.iter().rev() {
            while span < SPANS.len() && covered >= SPANS[span] * 1_000_000_000 {
                finish(&mut out, &sums, span, covered);
                span += 1;
            }
            tick.clear();
            for (id, c) in &t.sample.flows {
                if let Some((k, h)) = keys.get(id) {
                    tick.entry(k.clone()).or_default().add(&h.apply(c));
                }
            }
            for (k, c) in &tick {
                if let Some(r) = out.get_mut(k) {
                    let rate = Rate::of(c, t.sample.window_ns);
                    r.peak.rx = r.peak.rx.max(rate.rx);
                    r.peak.tx = r.peak.tx.max(rate.tx);
                    r.peak_total = r.peak_total.max(rate.total());
                }
                if span < SPANS.len() {
                    sums.entry(k.clone()).or_default().add(c);
                }
            }
            covered += t.sample.window_ns;
        }
        while span < SPANS.len() {
            finish(&mut out, &sums, span, covered);
            span += 1;
        }
        out
    }

    /// iftop's totals lines for the interface (IP bytes, like iftop).
    pub fn interface(&self) -> Rolling {
        self.rolling_of(|c| FlowCounters {
            rx_bytes: c.0.ip_bytes,
            rx_packets: c.0.ip_packets,
            tx_bytes: c.1.ip_bytes,
            tx_packets: c.1.ip_packets,
        })
    }

    /// The same for the IP bytes in no flow (the flow table was full).
    pub fn overflow(&self) -> Rolling {
        self.rolling_of(|c| FlowCounters {
            rx_bytes: c.0.kernel.overflow_bytes,
            rx_packets: c.0.kernel.overflow_packets,
            tx_bytes: c.1.kernel.overflow_bytes,
            tx_packets: c.1.kernel.overflow_packets,
        })
    }

    /// Rolling views of one figure of the interface's totals (received, sent).
    fn rolling_of(&self, figure: impl Fn((&Crossed, &Crossed)) -> FlowCounters) -> Rolling {
        let bytes = |s: &Sample| figure((&s.rx, &s.tx));
        let mut r = Rolling {
            cumulative: figure((&self.rx_total, &self.tx_total)),
            ..Default::default()
        };
        // Totals only: merging the ticks' flows (as `last` does) would be wasted work here, and
        // the agent asks for this every tick.
        for (i, span) in SPANS.iter().enumerate() {
            let (ticks, covered) = self.newest(span * 1_000_000_000);
            let mut sum = FlowCounters::default();
            ticks.for_each(|t| sum.add(&bytes(&t.sample)));
            r.averages[i] = Rate::of(&sum, covered);
        }
        for t in &self.ticks {
            let rate = Rate::of(&bytes(&t.sample), t.sample.window_ns);
            r.peak.rx = r.peak.rx.max(rate.rx);
            r.peak.tx = r.peak.tx.max(rate.tx);
            r.peak_total = r.peak_total.max(rate.total());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const S: u64 = 1_000_000_000;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    fn id(port: u16) -> FlowId {
        FlowId {
            local: IpAddr::from([10, 0, 0, 1]),
            remote: IpAddr::from([10, 0, 0, 2]),
            local_port: port,
            remote_port: 443,
            protocol: 6,
        }
    }

    /// One second in which each `(port, rx, tx)` moved those bytes (one packet per 1000 B).
    fn second(flows: &[(u16, u64, u64)]) -> Sample {
        let mut s = Sample {
            window_ns: S,
            ..Default::default()
        };
        for &(port, rx, tx) in flows {
            s.rx.ip_bytes += rx;
            s.rx.ip_packets += rx / 1000;
            s.tx.ip_bytes += tx;
            s.tx.ip_packets += tx / 1000;
            s.flows.push((
                id(port),
                FlowCounters {
                    rx_bytes: rx,
                    rx_packets: rx / 1000,
                    tx_bytes: tx,
                    tx_packets: tx / 1000,
                },
            ));
        }
        s
    }

    /// A known schedule, one tick per second for 60 s:
    /// - flow 1 receives 10,000 B every second;
    /// - flow 2 sends a 50,000 B burst at second 5 and at second 30, nothing else;
    /// - flow 3 receives 1,000 B in second 59 only.
    fn schedule(until: u64) -> History {
        let mut h = History::default();
        for t in 1..=until {
            let mut f = vec![(1, 10_000, 0)];
            if t == 5 || t == 30 {
                f.push((2, 0, 50_000));
            }
            if t == 59 {
                f.push((3, 1_000, 0));
            }
            h.push(t * S, second(&f));
        }
        h
    }

    #[test]
    fn rows_of_several_flows_sum_them_and_peak_on_their_own_busiest_tick() {
        // Flows 1 and 2 in one row: flow 1's steady 10,000 B/s received, and flow 2's two
        // 50,000 B bursts sent. Flow 3 is left out.
        let h = schedule(31);
        let rows = h.rolling_by(|f| (f.local_port != 3).then_some(((), Halves::ALL)));
        let r = &rows[&()];
        assert_eq!(r.cumulative.rx_bytes, 310_000);
        assert_eq!(r.cumulative.tx_bytes, 100_000);
        assert_eq!(r.averages[1].rx, 10_000.0);
        assert_eq!(r.averages[1].tx, 5_000.0);
        // The busiest tick of the row: 10,000 received + 50,000 sent in one second.
        assert_eq!(r.peak_total, 60_000.0);
        // Only received halves, turned to face the remote end: what it sent.
        let received = Halves {
            tx: false,
            rx: true,
            swap: true,
        };
        let rows = h.rolling_by(|f| Some((f.local_port, received)));
        assert_eq!(rows[&2].cumulative.total_bytes(), 0);
        assert_eq!(rows[&1].averages[0].tx, 10_000.0);
        assert_eq!(rows[&1].averages[0].rx, 0.0);
        assert_eq!(rows[&1].cumulative.tx_bytes, 310_000);
    }

    #[test]
    fn averages_peak_and_cumulative_follow_a_known_schedule() {
        let h = schedule(31);
        let flows = h.flows();
        let f1 = &flows[&id(1)];
        assert_eq!(f1.averages.map(|r| r.rx), [10_000.0; 3]);
        assert_eq!(f1.cumulative.rx_bytes, 310_000);
        let f2 = &flows[&id(2)];
        // Seconds 30 and 31: one burst in the last 2 s; in the last 10 s; two in 31 s watched.
        assert_eq!(f2.averages[0].tx, 25_000.0);
        assert_eq!(f2.averages[1].tx, 5_000.0);
        assert!(close(f2.averages[2].tx, 100_000.0 / 31.0));
        assert_eq!(f2.peak.tx, 50_000.0);
        assert_eq!(f2.cumulative.tx_bytes, 100_000);
        // One span alone gives the same averages as the full columns.
        for (i, span) in SPANS.iter().enumerate() {
            let one = h.averages(*span);
            let one: HashMap<FlowId, Rate> = one.into_iter().collect();
            assert_eq!(one.len(), 2, "flows 1 and 2 moved in every span");
            for (fid, rate) in &one {
                assert_eq!(*rate, flows[fid].averages[i], "flow {fid:?}, {span} s");
            }
        }

        let i = h.interface();
        assert_eq!(
            i.averages[0],
            Rate {
                rx: 10_000.0,
                tx: 25_000.0
            }
        );
        assert_eq!(i.peak_total, 60_000.0);
        assert_eq!(i.cumulative.rx_bytes, 310_000);
        assert_eq!(i.cumulative.tx_bytes, 100_000);
    }

    #[test]
    fn the_views_reach_back_40_s_and_forget_idle_flows() {
        let h = schedule(60);
        let flows = h.flows();
        // Flow 2's last burst was at second 30: 30 s ago, still inside 40 s, averaged over 40 s.
        let f2 = &flows[&id(2)];
        assert_eq!(f2.averages[2].tx, 50_000.0 / 40.0);
        assert_eq!(f2.averages[1].tx, 0.0);
        // Its bursts were 25 s apart, so it was never forgotten in between: the first one left
        // the averages but stays in the cumulative figure.
        assert_eq!(f2.cumulative.tx_bytes, 100_000);
        let f3 = &flows[&id(3)];
        assert_eq!(f3.averages[0].rx, 500.0);
        assert_eq!(h.interface().cumulative.rx_bytes, 601_000);
        let h = schedule(70);
        assert!(!h.flows().contains_key(&id(2)), "idle for 40 s: forgotten");
        assert_eq!(h.flow_count(), 2);
    }

    #[test]
    fn last_n_seconds_is_the_merge_of_the_newest_ticks() {
        let h = schedule(31);
        let s = h.last(5 * S).expect("ticks");
        assert_eq!(s.window_ns, 5 * S);
        assert_eq!(s.rx.ip_bytes, 50_000);
        assert_eq!(s.tx.ip_bytes, 50_000);
        let s = h.last(100 * S).expect("ticks");
        assert_eq!(s.window_ns, 31 * S, "only what was watched, and it says so");
        assert!(History::default().last(S).is_none());
    }
}
