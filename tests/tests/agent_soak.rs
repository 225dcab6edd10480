//! An hour of an agent's life, time-compressed: 3,600 collections (an hour at the default 1 s
//! tick) at a 50 ms tick, under a stream of new UDP flows that never stops, with a flow table
//! small enough that pressure eviction has to keep room. Memory must stay flat once the 40 s
//! history is full, the kernel table must never overflow, and the counters must still equal the
//! kernel's to the byte.
//!
//! What is compressed is the tick count; the history's 40 s are real seconds, so at this tick the
//! history holds 800 ticks instead of 40, which is more memory per second watched, not less.

use netmon_tests::agent::{collections, health, sample, start_agent, wait_collections};
use netmon_tests::mcp::{curl, read_log};
use netmon_tests::{ADDR_B4, Spawned, VethPair, in_ns};
use std::process::Stdio;
use std::time::{Duration, Instant};

const TICKS: u64 = 3_600;
const TICK: &str = "0.05";
const CAPACITY: &str = "1024";
/// New flows per second: each of FLOWS ports gets one datagram every FLOWS / PPS seconds, by
/// which time its entry has been evicted, so every datagram is a new kernel entry.
const PPS: &str = "300";
const FLOWS: &str = "30000";
/// Bounds on the run: the ticks take 180 s plus the reading overhead.
const RUN_LIMIT: Duration = Duration::from_secs(420);

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
}

#[test]
fn an_hour_of_ticks_with_endless_new_flows_keeps_memory_flat_and_every_byte() {
    let pair = VethPair::new(false);
    let before = pair.counters_a();
    let agent = start_agent(
        &pair.ns_a,
        &[
            "-i",
            &pair.dev_a,
            "--tick",
            TICK,
            "--table-capacity",
            CAPACITY,
            "--flow-series",
            "5",
        ],
    );
    let pid = agent.child.pid();
    wait_collections(&pair.ns_a, &agent, 0, 1);
    let started = Instant::now();
    let flood = Spawned(
        in_ns(&pair.ns_a, env!("CARGO_BIN_EXE_netmon-flood"))
            .args(["--dst", ADDR_B4, "--port-base", "20000", "--flows", FLOWS])
            .args(["--pps", PPS, "--seconds", "600", "--payload", "22"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning netmon-flood"),
    );

    // (seconds since start, RSS KiB, table entries)
    let mut seen: Vec<(f64, u64, u64)> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_secs(5));
        let h = health(&pair.ns_a, &agent);
        let t = started.elapsed().as_secs_f64();
        seen.push((
            t,
            rss_kib(pid),
            h["flow_table_entries"].as_u64().unwrap_or(0),
        ));
        if collections(&h) >= TICKS {
            break;
        }
        assert!(
            started.elapsed() < RUN_LIMIT,
            "only {} collections in {t:.0} s: {h}\n{}",
            collections(&h),
            read_log(&agent.log)
        );
    }
    drop(flood);
    pair.wait_quiet();
    let after = pair.counters_a().since(&before);
    let now = collections(&health(&pair.ns_a, &agent));
    let h = wait_collections(&pair.ns_a, &agent, now, 3);
    let (_, text) = curl(&pair.ns_a, &[&format!("http://{}/metrics", agent.addr)]);
    let dev = pair.dev_a.as_str();
    let get = |name, d| sample(&text, name, &[("interface", dev), ("direction", d)]) as u64;

    let total = started.elapsed().as_secs_f64();
    eprintln!("{TICKS}+ ticks in {total:.0} s; (s, RSS KiB, table entries): {seen:?}");
    eprintln!("health at the end: {h}");
    // Every byte: the flood's datagrams all went through the table's churn.
    assert_eq!(get("netmon_tc_bytes_total", "egress"), after.tx_bytes);
    assert_eq!(get("netmon_tc_packets_total", "egress"), after.tx_packets);
    assert!(after.tx_packets > 30_000, "{after:?}");
    assert_eq!(
        get("netmon_unattributed_bytes_total", "egress"),
        0,
        "every IP byte was in a flow"
    );
    for d in ["egress", "ingress"] {
        assert_eq!(
            sample(
                &text,
                "netmon_flow_table_overflow_total",
                &[
                    ("interface", dev),
                    ("direction", d),
                    ("reason", "table_full")
                ]
            ),
            0.0,
            "the table never filled"
        );
    }
    let pressure = sample(
        &text,
        "netmon_flow_table_evictions_total",
        &[("reason", "pressure")],
    );
    assert!(pressure > 10_000.0, "pressure evictions: {pressure}");
    let capacity: u64 = CAPACITY.parse().unwrap();
    assert!(seen.iter().all(|&(_, _, e)| e < capacity), "{seen:?}");
    let series = text
        .lines()
        .filter(|l| l.starts_with("netmon_flow_bytes_per_second{"))
        .count();
    assert!(series <= 10, "at most 5 flows × 2 directions, got {series}");

    // Flat: after the history has filled (40 s, plus margin), the last third of the run holds no
    // more memory than the middle third did.
    let third = total / 3.0;
    let max_in = |from: f64, to: f64| {
        seen.iter()
            .filter(|(t, _, _)| *t >= from && *t < to)
            .map(|(_, r, _)| *r)
            .max()
            .unwrap_or_else(|| panic!("no RSS sample in {from:.0}–{to:.0} s: {seen:?}"))
    };
    let middle = max_in(third.max(60.0), 2.0 * third);
    let last = max_in(2.0 * third, total + 1.0);
    assert!(
        last <= middle + 1024,
        "RSS grew from {middle} KiB to {last} KiB after the history was full: {seen:?}"
    );
}
