//! A million flows (issue 24): the table filled through the real classifier with
//! BPF_PROG_TEST_RUN, one crafted frame per flow, read and diffed the way the agent does it
//! (`tick`, then `evict`), window after window: every flow's bytes and packets exact, half of
//! them evicted, their slots given back after the quarantine and taken by new flows while the
//! old ones keep sending, and nothing counted twice or lost.
//!
//! The ground truth is what the test sent: each frame is one packet of
//! [`NUMBERED_UDP_L3`] bytes on a flow of its own. `NETMON_SCALE_FLOWS` sets the table size
//! (default 1,048,576).

use aya::programs::{TestRun, TestRunOptions};
use netmon::flow::{FlowCounters, FlowId};
use netmon::source::ebpf::loader::Program;
use netmon::source::ebpf::slots::QUARANTINE_NS;
use netmon::source::ebpf::{EbpfOptions, EbpfSource};
use netmon::tick::{self, Tracked};
use netmon_common::{Direction, LinkKind};
use netmon_tests::frames::{NUMBERED_UDP_L3, numbered_udp};
use netmon_tests::require_root;
use std::collections::HashMap;
use std::time::Duration;

/// BPF_PROG_TEST_RUN runs sched_cls programs on the loopback device.
const LO: u32 = 1;

fn flows() -> u32 {
    std::env::var("NETMON_SCALE_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20)
}

/// One frame on each flow `(set, i)` of `frames`, in that order, through the ingress classifier.
fn send(source: &EbpfSource, frames: &[(u8, u32)]) {
    source
        .with_program(
            Program::Classifier {
                direction: Direction::Ingress,
                link: LinkKind::Ethernet,
            },
            |p| {
                for &(set, i) in frames {
                    let f = numbered_udp(set, i);
                    p.test_run(TestRunOptions {
                        data_in: Some(&f),
                        ..Default::default()
                    })
                    .expect("BPF_PROG_TEST_RUN");
                }
            },
        )
        .expect("the ingress classifier");
}

/// The flow `numbered_udp(set, i)` is, seen from its receiver.
fn id(set: u8, i: u32) -> FlowId {
    FlowId {
        local: [10, 0, 0, 1].into(),
        remote: [10, set, (i >> 16) as u8, 1].into(),
        local_port: 53,
        remote_port: i as u16,
        protocol: 17,
    }
}

struct Agent<'a> {
    source: &'a EbpfSource,
    tracked: Tracked,
}

impl Agent<'_> {
    /// One tick: read, diff, evict the flows that did not move since `idle_before_ns`; returns
    /// the tick's flows by id (each once: a second row for one id fails the test) and how
    /// many were evicted.
    fn tick(&mut self, idle_before_ns: u64) -> (HashMap<FlowId, FlowCounters>, usize) {
        let now = self.source.read(&[LO]).take(LO);
        let mut t = tick::tick(&self.tracked, now, idle_before_ns);
        self.source.evict(LO, &mut t);
        let evicted = t.evicted;
        let (next, sample) = t.finish();
        self.tracked = next;
        assert_eq!(
            (
                sample.rx.kernel.overflow_packets,
                sample.rx.kernel.other_frames
            ),
            (0, 0),
            "no packet may miss its flow: {:?}",
            sample.rx.kernel
        );
        let mut rows = HashMap::with_capacity(sample.flows.len());
        for (id, c) in sample.flows {
            assert!(
                rows.insert(id, c).is_none(),
                "{id:?} came twice in one tick"
            );
        }
        // Rows add up to the frames the kernel saw (its own per-CPU totals).
        let sum: u64 = rows.values().map(|c| c.rx_packets).sum();
        assert_eq!(
            sum, sample.rx.kernel.frames,
            "rows against the kernel's frames"
        );
        (rows, evicted)
    }
}

/// Every flow of `expected` has exactly one packet of [`NUMBERED_UDP_L3`] bytes in `rows`,
/// and nothing else is there.
fn exactly_one_packet_each(
    what: &str,
    rows: &HashMap<FlowId, FlowCounters>,
    expected: &[(u8, u32)],
) {
    let one = FlowCounters {
        rx_bytes: NUMBERED_UDP_L3,
        rx_packets: 1,
        ..Default::default()
    };
    let mut wrong = 0usize;
    let mut first = None;
    for &(set, i) in expected {
        let got = rows.get(&id(set, i)).copied().unwrap_or_default();
        if got != one {
            wrong += 1;
            first.get_or_insert((set, i, got));
        }
    }
    assert_eq!(
        (wrong, rows.len()),
        (0, expected.len()),
        "{what}: {wrong} of {} flows not exactly one packet (first: {first:?}); {} rows",
        expected.len(),
        rows.len()
    );
}

#[test]
fn a_million_flows_are_exact_through_eviction_and_slot_reuse() {
    require_root();
    let n = flows();
    assert!(
        (4..1 << 24).contains(&n) && n.is_multiple_of(2),
        "NETMON_SCALE_FLOWS must be even, 4 to 2^24: {n}"
    );
    let source = EbpfSource::load(EbpfOptions::new(n).expect("capacity"))
        .expect("loading netmon's classifier (needs root)");
    source.prepare(LO).expect("prepare lo");
    let mut agent = Agent {
        source: &source,
        tracked: Tracked::start(source.read(&[LO]).take(LO)),
    };
    let a: Vec<(u8, u32)> = (0..n).map(|i| (1, i)).collect();

    // Two windows over the full table.
    for window in 1..=2 {
        send(&source, &a);
        let (rows, evicted) = agent.tick(0);
        exactly_one_packet_each(&format!("window {window}, {n} flows"), &rows, &a);
        assert_eq!(evicted, 0);
    }

    // Half the flows go quiet and are evicted.
    let cutoff = agent.tracked.snapshot.taken_ns + 1;
    let odd: Vec<(u8, u32)> = a.iter().copied().filter(|(_, i)| i % 2 == 1).collect();
    send(&source, &odd);
    let (rows, evicted) = agent.tick(cutoff);
    exactly_one_packet_each("the window the even flows were evicted in", &rows, &odd);
    assert_eq!(evicted, a.len() - odd.len(), "the quiet half is evicted");

    // The quarantine passes (the odd flows keep sending), and the evicted flows' slots go back.
    std::thread::sleep(Duration::from_nanos(QUARANTINE_NS) + Duration::from_millis(200));
    send(&source, &odd);
    let (rows, _) = agent.tick(0);
    exactly_one_packet_each("the window their slots went back in", &rows, &odd);

    // New flows take those slots while the old ones send, frame for frame interleaved. The
    // table has no room but the slots given back: a slot not given back, or given back twice,
    // shows as an overflow or a flow with another's bytes.
    let new: Vec<(u8, u32)> = (0..n / 2).map(|i| (2, i)).collect();
    let mixed: Vec<(u8, u32)> = new.iter().zip(&odd).flat_map(|(n, o)| [*n, *o]).collect();
    send(&source, &mixed);
    let (rows, _) = agent.tick(0);
    let mut expected_rows = new.clone();
    expected_rows.extend(&odd);
    exactly_one_packet_each("new flows in reused slots", &rows, &expected_rows);

    // And one more window over the whole table, old and new.
    send(&source, &expected_rows);
    let (rows, _) = agent.tick(0);
    exactly_one_packet_each("the window after the reuse", &rows, &expected_rows);
}
