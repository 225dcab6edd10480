//! Snapshot cost: read the flow table, diff two snapshots, rank the top 10, for tables of 1k,
//! 65k and 262k flows. The table is filled through the real classifier with BPF_PROG_TEST_RUN
//! (one crafted frame per flow), so the entries are exactly what the kernel program writes.

use crate::proc::{median, status_kib};
use aya::programs::{TestRun, TestRunOptions};
use netmon::measurement::Measurement;
use netmon::rank::{GroupBy, SortKey, rank_rows};
use netmon::snapshot::diff;
use netmon::source::ebpf::loader::Program;
use netmon::source::ebpf::{EbpfOptions, EbpfSource};
use netmon_common::{Direction, LinkKind};
use serde::Serialize;
use std::time::Instant;

/// BPF_PROG_TEST_RUN runs sched_cls programs on the loopback device.
const LO: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Cost {
    pub flows: usize,
    pub reps: usize,
    /// Medians, milliseconds. The end of a window: flows read from the kernel and diffed against
    /// the window's first snapshot as they come (`EbpfSource::sample_since`), then ranked.
    pub read_diff_ms: f64,
    pub rank_ms: f64,
    pub total_ms: f64,
    /// For comparison: a full snapshot into a table (what the window's start costs), and the diff
    /// of two such tables.
    pub snapshot_ms: f64,
    pub table_diff_ms: f64,
    /// Flows the diff found with traffic (all of them: every flow got a frame between snapshots).
    pub diffed_flows: usize,
    /// Growth of this process's resident memory while holding two snapshots and a sample, KiB.
    pub rss_growth_kib: u64,
    /// Seconds to push one frame per flow through the classifier.
    pub fill_s: f64,
}

fn fill(source: &EbpfSource, flows: u32) -> f64 {
    let start = Instant::now();
    source
        .with_program(
            Program::Classifier {
                direction: Direction::Ingress,
                link: LinkKind::Ethernet,
            },
            |p| {
                for i in 0..flows {
                    let f = netmon_tests::frames::numbered_udp(1, i);
                    p.test_run(TestRunOptions {
                        data_in: Some(&f),
                        ..Default::default()
                    })
                    .expect("BPF_PROG_TEST_RUN");
                }
            },
        )
        .expect("program");
    start.elapsed().as_secs_f64()
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

pub fn measure(flows: usize, reps: usize) -> Cost {
    let source = EbpfSource::load(EbpfOptions {
        flow_capacity: flows as u32,
    })
    .expect("loading netmon's classifier (needs root)");
    source.prepare(LO).expect("prepare lo");
    let mut fill_s = vec![fill(&source, flows as u32)];
    let rss_before = status_kib(std::process::id(), "VmRSS").unwrap_or(0);
    let mut prev = source.snapshot(LO);
    assert_eq!(
        prev.flows.len(),
        flows,
        "the table should hold exactly one entry per crafted flow"
    );
    let (mut read_diff, mut ranks, mut totals) = (vec![], vec![], vec![]);
    let (mut snaps, mut table_diffs) = (vec![], vec![]);
    let (mut diffed, mut rss_growth) = (0, 0);
    for _ in 0..reps {
        // Traffic on every flow between the snapshots, so the diff and the ranking see them all.
        fill_s.push(fill(&source, flows as u32));
        let t0 = Instant::now();
        let (sample, _sockets) = source.sample_since(LO, &prev);
        read_diff.push(ms(t0));
        let t1 = Instant::now();
        let rows = Measurement::from_sample(&sample).rows;
        let (top, seen) = rank_rows(rows, SortKey::Rx, GroupBy::Connection, 10, &[]);
        ranks.push(ms(t1));
        totals.push(ms(t0));
        assert_eq!((top.len(), seen), (10.min(flows), flows));
        diffed = sample.flows.len();

        let t2 = Instant::now();
        let snap = source.snapshot(LO);
        snaps.push(ms(t2));
        let t3 = Instant::now();
        let by_tables = diff(&prev, &snap);
        table_diffs.push(ms(t3));
        assert_eq!(
            by_tables.flows.len(),
            diffed,
            "both ways of diffing must find the same flows"
        );
        rss_growth = status_kib(std::process::id(), "VmRSS")
            .unwrap_or(0)
            .saturating_sub(rss_before);
        prev = snap;
    }
    let med = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    Cost {
        flows,
        reps,
        read_diff_ms: med(&read_diff),
        rank_ms: med(&ranks),
        total_ms: med(&totals),
        snapshot_ms: med(&snaps),
        table_diff_ms: med(&table_diffs),
        diffed_flows: diffed,
        rss_growth_kib: rss_growth,
        fill_s: med(&fill_s),
    }
}
