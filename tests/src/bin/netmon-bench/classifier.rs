//! The classifier's own cost, with no traffic and no bpf_stats: crafted frames run through the
//! verifier-accepted programs with BPF_PROG_TEST_RUN, beside the do-nothing program the same way
//! (the floor: the test harness's own cost per run). For one flow the kernel repeats the frame
//! and reports the average; for 10,000 flows each frame runs once and the per-run figures are
//! averaged, so both programs also pay the harness's per-call cost there.

use aya::programs::{TestRun, TestRunOptions};
use netmon::source::ebpf::loader::Program;
use netmon::source::ebpf::{EbpfOptions, EbpfSource};
use netmon_common::{Direction, LinkKind};
use serde::Serialize;

/// BPF_PROG_TEST_RUN runs sched_cls programs on the loopback device.
const LO: u32 = 1;
const REPEAT: u32 = 1_000_000;
const MANY: u32 = 10_000;

#[derive(Clone, Debug, Serialize)]
pub struct FrameCost {
    pub frame: &'static str,
    /// Medians over rounds, nanoseconds per run.
    pub netmon_ns: f64,
    pub floor_ns: f64,
    pub over_floor_ns: f64,
}

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend(ethertype.to_be_bytes());
    f
}

/// A 64-byte frame (60 without the FCS): Ethernet + IPv4 + UDP, 10.1.x.y:port → 10.0.0.1:53.
fn udp4(i: u32) -> Vec<u8> {
    let mut f = eth(0x0800);
    let mut ip = vec![0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0];
    ip.extend([10, 1, (i >> 16) as u8, (i >> 8) as u8, 10, 0, 0, 1]);
    f.extend(ip);
    f.extend((i as u16).to_be_bytes());
    f.extend(53u16.to_be_bytes());
    f.extend(26u16.to_be_bytes());
    f.resize(60, 0);
    f
}

/// Ethernet + IPv6 + UDP, fd00::1:port → fd00::2:53, 18 bytes of payload.
fn udp6() -> Vec<u8> {
    let mut f = eth(0x86DD);
    f.extend([0x60, 0, 0, 0, 0, 26, 17, 64]);
    let a: std::net::Ipv6Addr = "fd00::1".parse().expect("address");
    let b: std::net::Ipv6Addr = "fd00::2".parse().expect("address");
    f.extend(a.octets());
    f.extend(b.octets());
    f.extend(4000u16.to_be_bytes());
    f.extend(53u16.to_be_bytes());
    f.extend(26u16.to_be_bytes());
    f.resize(f.len() + 20, 0);
    f
}

/// An 802.1Q-tagged IPv4 UDP frame: the general parsing path.
fn vlan_udp4() -> Vec<u8> {
    let plain = udp4(7);
    let mut f = plain[..12].to_vec();
    f.extend([0x81, 0x00, 0x00, 0x64]);
    f.extend(&plain[12..]);
    f
}

fn ns_per_run(source: &EbpfSource, which: Program, frame: &[u8], repeat: u32) -> f64 {
    source
        .with_program(which, |p| {
            p.test_run(TestRunOptions {
                data_in: Some(frame),
                repeat,
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN")
            .duration
            .as_nanos() as f64
        })
        .expect("program")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn measure(rounds: usize) -> Vec<FrameCost> {
    let source = EbpfSource::load(EbpfOptions::default()).expect("loading netmon's classifier");
    source.prepare(LO).expect("prepare lo");
    let ingress = Program::Classifier {
        direction: Direction::Ingress,
        link: LinkKind::Ethernet,
    };
    let mut out = Vec::new();
    for (frame, bytes) in [
        ("IPv4 UDP, 64 B, 1 flow", udp4(1)),
        ("IPv6 UDP, 1 flow", udp6()),
        ("IPv4 UDP behind a VLAN tag, 1 flow", vlan_udp4()),
    ] {
        let (mut nm, mut fl) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            nm.push(ns_per_run(&source, ingress, &bytes, REPEAT));
            fl.push(ns_per_run(&source, Program::Floor, &bytes, REPEAT));
        }
        out.push(cost(frame, nm, fl));
    }
    // 10,000 flows: each frame once per pass; the first pass creates the entries.
    let frames: Vec<Vec<u8>> = (0..MANY).map(|i| udp4(i + 1_000)).collect();
    let pass = |which| {
        frames
            .iter()
            .map(|f| ns_per_run(&source, which, f, 1))
            .sum::<f64>()
            / f64::from(MANY)
    };
    let _ = pass(ingress);
    let (mut nm, mut fl) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        nm.push(pass(ingress));
        fl.push(pass(Program::Floor));
    }
    out.push(cost(
        "IPv4 UDP, 64 B, 10,000 flows (one run per call)",
        nm,
        fl,
    ));
    out
}

fn cost(frame: &'static str, netmon: Vec<f64>, floor: Vec<f64>) -> FrameCost {
    let (netmon_ns, floor_ns) = (median(netmon), median(floor));
    eprintln!("netmon-bench: {frame}: {netmon_ns:.1} ns per run, floor {floor_ns:.1} ns");
    FrameCost {
        frame,
        netmon_ns,
        floor_ns,
        over_floor_ns: netmon_ns - floor_ns,
    }
}
