//! The classifier against a reference: generated frames (`netmon_tests::frames`) go through the
//! real classifier with BPF_PROG_TEST_RUN, in runs of 500, and every table entry and total the
//! run added must equal what `netmon_tests::reference`, written from the specifications, says
//! the frames add. A failure shrinks to the smallest run and frames that still differ, and
//! proptest keeps it (tests/proptest-regressions/) to run first from then on.
//!
//! `NETMON_DIFF_FRAMES` frames in all (100,000 by default, as CI runs it; `cargo xtask fuzz
//! --differential` runs a million).

use aya::programs::{TestRun, TestRunOptions};
use netmon::flow::{FlowCounters, FlowId};
use netmon::snapshot::diff;
use netmon::source::ebpf::loader::Program;
use netmon::source::ebpf::{EbpfOptions, EbpfSource};
use netmon_common::{Direction, LinkKind};
use netmon_tests::reference::{Expected, Frame};
use netmon_tests::require_root;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

const LO: u32 = 1;
const RUN: usize = 500;

/// Runs one frame through the classifier of its link kind and direction; false when
/// BPF_PROG_TEST_RUN refuses it (a frame shorter than an Ethernet header, or an IP ethertype
/// with less than an IP header: the kernel's test harness checks those before any program).
fn run(s: &EbpfSource, f: &Frame) -> bool {
    let mut ctx = [0u8; 192];
    ctx[164..168].copy_from_slice(&u32::from(f.gso_segs).to_ne_bytes());
    ctx[176..180].copy_from_slice(&u32::from(f.gso_size).to_ne_bytes());
    let which = Program::Classifier {
        direction: f.direction,
        link: f.link,
    };
    let r = s
        .with_program(which, |p| {
            p.test_run(TestRunOptions {
                data_in: Some(&f.bytes),
                ctx_in: Some(&ctx),
                ..Default::default()
            })
        })
        .expect("program");
    match r {
        Ok(out) => {
            assert_eq!(out.return_value, u32::MAX, "TC_ACT_UNSPEC on every path");
            true
        }
        Err(_) => false,
    }
}

static FRAMES: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Runs `frames` through the classifier and compares what the kernel's tables and totals
/// gained with the reference's sums.
fn check(s: &EbpfSource, frames: &[Frame]) -> Result<(), TestCaseError> {
    s.release(LO).expect("release");
    s.prepare(LO).expect("prepare");
    let before = s.snapshot(LO);
    let mut expected = Expected::default();
    for f in frames {
        if run(s, f) {
            expected.add(f);
            FRAMES.fetch_add(1, Ordering::Relaxed);
        } else {
            REFUSED.fetch_add(1, Ordering::Relaxed);
        }
    }
    let got = diff(&before, &s.snapshot(LO));
    for (i, d) in [(0, &got.rx), (1, &got.tx)] {
        let k = &d.kernel;
        let t = (k.frames, k.frame_bytes, k.other_frames, k.other_bytes);
        prop_assert_eq!(
            t,
            expected.totals[i],
            "direction {}: frames, bytes, other",
            i
        );
        prop_assert_eq!(k.overflow_packets, 0, "the table overflowed");
    }
    let flows: HashMap<FlowId, FlowCounters> = got.flows.into_iter().collect();
    let want: HashMap<FlowId, FlowCounters> = expected
        .flows
        .into_iter()
        .filter(|(_, c)| !c.is_zero())
        .collect();
    for (id, c) in &want {
        prop_assert_eq!(flows.get(id), Some(c), "flow {:?}", id);
    }
    prop_assert_eq!(flows.len(), want.len(), "flows the reference does not have");
    Ok(())
}

#[test]
fn the_classifier_counts_what_the_reference_says_frame_for_frame() {
    require_root();
    let total: usize = std::env::var("NETMON_DIFF_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let s = EbpfSource::load(EbpfOptions {
        flow_capacity: 1 << 16,
    })
    .expect("load");
    // Both link kinds' programs verified before the clock starts.
    for link in [LinkKind::Ethernet, LinkKind::RawIp] {
        for direction in [Direction::Ingress, Direction::Egress] {
            s.with_program(Program::Classifier { direction, link }, |_| ())
                .expect("program");
        }
    }
    let config = Config {
        cases: total.div_ceil(RUN) as u32,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/proptest-regressions/differential.txt"
            )),
        )),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    let result = runner.run(
        &prop::collection::vec(netmon_tests::frames::frame(), RUN),
        |frames| check(&s, &frames),
    );
    eprintln!(
        "differential: {} frames compared, {} refused by BPF_PROG_TEST_RUN, in {:.1} s",
        FRAMES.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
