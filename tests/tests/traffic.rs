//! Real traffic on a veth pair between two namespaces: iperf3 TCP and UDP, IPv4 and IPv6, one
//! and several parallel flows, offloads on and off. netmon runs in namespace A on its end of the
//! pair; its numbers are compared with the kernel's interface counters and with iperf3's own.

use netmon_tests::truth::{self, Case};
use netmon_tests::{
    ADDR_A4, ADDR_A6, ADDR_B4, ADDR_B6, VethPair, finish_json, iperf3_client, iperf3_server,
    spawn_netmon, wait_attached,
};

/// One iperf3 at a time: on a 2-core machine two concurrent runs starve each other, and iperf3's
/// `-n` sender count then includes bytes still queued when the server ends the test, which never
/// reach the wire.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(case: Case) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pair = VethPair::new(case.offloads);
    let (a, b) = if case.v6 {
        (ADDR_A6, ADDR_B6)
    } else {
        (ADDR_A4, ADDR_B4)
    };
    let _server = iperf3_server(&pair.ns_b, b);
    let before = pair.counters_a();

    let mut netmon = spawn_netmon(
        &pair.ns_a,
        &[
            "traffic",
            "--iface",
            &pair.dev_a,
            "--seconds",
            "4",
            "--json",
            "--top",
            "100",
            "-P",
        ],
    );
    let stderr = wait_attached(&mut netmon);
    let args = case.iperf3_args(b);
    let report = iperf3_client(
        &pair.ns_a,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let result = finish_json(netmon, stderr);
    let kernel = pair.counters_a().since(&before);
    truth::check(&result, &pair.dev_a, kernel, &report, case, a, b);
}

#[test]
fn tcp4_offloads_off() {
    run(Case {
        v6: false,
        udp: false,
        parallel: 1,
        offloads: false,
    });
}

#[test]
fn tcp4_offloads_on() {
    run(Case {
        v6: false,
        udp: false,
        parallel: 1,
        offloads: true,
    });
}

#[test]
fn tcp6_offloads_off() {
    run(Case {
        v6: true,
        udp: false,
        parallel: 1,
        offloads: false,
    });
}

#[test]
fn tcp6_parallel_offloads_on() {
    run(Case {
        v6: true,
        udp: false,
        parallel: 3,
        offloads: true,
    });
}

#[test]
fn udp4_offloads_off() {
    run(Case {
        v6: false,
        udp: true,
        parallel: 1,
        offloads: false,
    });
}

#[test]
fn udp6_parallel_offloads_on() {
    run(Case {
        v6: true,
        udp: true,
        parallel: 2,
        offloads: true,
    });
}

#[test]
fn tcp4_parallel_offloads_off() {
    run(Case {
        v6: false,
        udp: false,
        parallel: 4,
        offloads: false,
    });
}
