//! Criterion benches for the pure hot paths: diff + top-N over a big flow table, and the iftop
//! parser. Run by `cargo xtask bench` (or `cargo bench -p netmon`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use netmon::flow::{FlowCounters, FlowId};
use netmon::measurement::Measurement;
use netmon::rank::{GroupBy, SortKey, rank_rows};
use netmon::snapshot::{Snapshot, diff};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn flow(i: u32) -> FlowId {
    let remote = if i.is_multiple_of(4) {
        IpAddr::V6(Ipv6Addr::from(
            0xfd00_0000_0000_0000_0000_0000_0000_0000 | u128::from(i),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))
    };
    FlowId {
        local: IpAddr::V4(Ipv4Addr::new(10, 200, 1, 1)),
        remote,
        local_port: (i % 60_000) as u16 + 1024,
        remote_port: 443,
        protocol: if i.is_multiple_of(3) { 17 } else { 6 },
    }
}

/// Two snapshots a window apart: every flow moved, by amounts that vary so the ranking works.
fn snapshots(n: u32) -> (Snapshot, Snapshot) {
    let counters = |i: u32, scale: u64| FlowCounters {
        rx_bytes: u64::from(i.wrapping_mul(2_654_435_761) % 1_000_000) * scale,
        rx_packets: u64::from(i % 1000) * scale,
        tx_bytes: u64::from(i % 77_777) * scale,
        tx_packets: u64::from(i % 500) * scale,
    };
    let before = Snapshot {
        taken_ns: 0,
        flows: (0..n).map(|i| (flow(i), counters(i, 1))).collect(),
        ..Default::default()
    };
    let after = Snapshot {
        taken_ns: 5_000_000_000,
        flows: (0..n).map(|i| (flow(i), counters(i, 2))).collect(),
        ..Default::default()
    };
    (before, after)
}

fn diff_and_rank(c: &mut Criterion) {
    let mut g = c.benchmark_group("diff_rank_top10");
    g.sample_size(20);
    for n in [1_024u32, 65_536, 262_144] {
        let (before, after) = snapshots(n);
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let s = diff(black_box(&before), black_box(&after));
                let rows = Measurement::from_sample(&s).rows;
                rank_rows(rows, SortKey::Rx, GroupBy::Connection, 10, &[])
            })
        });
    }
    g.finish();
}

/// iftop `-t -L 500` output with `rows` connection pairs, in the shape iftop 1.0~pre4 prints.
fn iftop_output(rows: usize) -> String {
    let rule = "-".repeat(92);
    let mut s = String::from(
        "Listening on va1\n   # Host name (port/service if enabled)            last 2s   last 10s   last 40s cumulative\n",
    );
    s.push_str(&rule);
    s.push('\n');
    for i in 0..rows {
        let a = format!("10.200.{}.{}:{}", i / 250, i % 250 + 1, 40_000 + i);
        s.push_str(&format!(
            "{:>4} {:<40} => {:>10} {:>10} {:>10} {:>10}\n",
            i + 1,
            a,
            "3.66KB",
            "10.3KB",
            "10.3KB",
            "61.7KB"
        ));
        s.push_str(&format!(
            "     {:<40} <= {:>10} {:>10} {:>10} {:>10}\n",
            "10.200.1.1:5201", "2.33MB", "1.73MB", "1.73MB", "10.4MB"
        ));
    }
    s.push_str(&rule);
    s.push('\n');
    for (label, v) in [
        ("Total send rate:", "3.99KB     10.5KB     10.5KB"),
        ("Total receive rate:", "2.33MB     1.73MB     1.73MB"),
        (
            "Total send and receive rate:",
            "2.34MB     1.74MB     1.74MB",
        ),
    ] {
        s.push_str(&format!("{label:<52} {v}\n"));
    }
    s.push_str(&rule);
    s.push('\n');
    s.push_str(
        "Peak rate (sent/received/total):                     23.4KB     2.46MB     2.48MB\n",
    );
    s.push_str(
        "Cumulative (sent/received/total):                    62.7KB     10.4MB     10.4MB\n",
    );
    s.push_str(&"=".repeat(92));
    s.push_str("\n\n");
    s
}

fn iftop_parser(c: &mut Criterion) {
    let mut g = c.benchmark_group("iftop_parse");
    for rows in [10usize, 500] {
        let text = iftop_output(rows);
        // The output must parse into every row, or the bench would time the error path.
        let table = netmon::iftop::parse(&text)
            .expect("parses")
            .expect("a complete table");
        assert_eq!(table.pairs.len(), rows);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(rows), &text, |b, t| {
            b.iter(|| netmon::iftop::parse(black_box(t)))
        });
    }
    g.finish();
}

criterion_group!(benches, diff_and_rank, iftop_parser);
criterion_main!(benches);
