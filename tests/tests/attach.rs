//! What netmon leaves on an interface (nothing), what it leaves alone (other tools' filters), and
//! how it fails without privileges or with bad input.

use netmon_tests::{
    VethPair, in_ns, netmon_bin, require_root, sh, spawn_netmon, tcx_programs, wait_attached,
    wait_detached,
};
use std::process::Command;
use std::time::Duration;

fn netmon_programs(pair: &VethPair) -> String {
    let names = tcx_programs(&pair.ns_a, &pair.dev_a);
    names
        .into_iter()
        .filter(|n| n.starts_with("netmon_"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ingress_filters(pair: &VethPair) -> String {
    let out = sh(in_ns(&pair.ns_a, "tc").args(["filter", "show", "dev", &pair.dev_a, "ingress"]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Another tool's classic-BPF filter on clsact ingress (returns 0: no match).
fn add_foreign_filter(pair: &VethPair) {
    sh(in_ns(&pair.ns_a, "tc").args(["qdisc", "add", "dev", &pair.dev_a, "clsact"]));
    sh(in_ns(&pair.ns_a, "tc").args([
        "filter",
        "add",
        "dev",
        &pair.dev_a,
        "ingress",
        "prio",
        "7",
        "bpf",
        "bytecode",
        "1,6 0 0 0,",
    ]));
}

/// A complete one-second `netmon traffic --json` run on `dev_a` that must succeed.
fn sample_one_second(pair: &VethPair) {
    let out = sh(in_ns(&pair.ns_a, netmon_bin().to_str().unwrap()).args([
        "traffic",
        "-i",
        &pair.dev_a,
        "-s",
        "1",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["success"], true, "{v:#}");
}

#[test]
fn nothing_is_left_after_exit_or_kill_9_and_foreign_filters_stay() {
    let pair = VethPair::new(true);
    add_foreign_filter(&pair);
    let foreign = ingress_filters(&pair);
    assert!(foreign.contains("bytecode"), "{foreign}");

    // Clean exit.
    sample_one_second(&pair);
    wait_detached(&pair.ns_a, &pair.dev_a, Duration::from_secs(10));
    assert_eq!(
        ingress_filters(&pair),
        foreign,
        "the foreign filter changed"
    );

    // kill -9 while attached.
    let mut child = spawn_netmon(&pair.ns_a, &["traffic", "-i", &pair.dev_a, "-s", "60"]);
    let _stderr = wait_attached(&mut child);
    let attached = netmon_programs(&pair);
    assert!(
        attached.contains("netmon_ingress") && attached.contains("netmon_egress"),
        "{attached}"
    );
    let pid = child.pid() as i32;
    // SAFETY: kill(2) on the PID of the child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let _ = child.0.wait();
    wait_detached(&pair.ns_a, &pair.dev_a, Duration::from_secs(10));
    assert_eq!(
        ingress_filters(&pair),
        foreign,
        "the foreign filter changed"
    );
}

#[test]
fn two_netmons_on_one_interface_do_not_disturb_each_other() {
    let pair = VethPair::new(true);
    let mut long = spawn_netmon(&pair.ns_a, &["traffic", "-i", &pair.dev_a, "-s", "60"]);
    let _stderr = wait_attached(&mut long);
    sample_one_second(&pair);
    // The short one detached only its own links; the long one is still attached.
    let left = netmon_programs(&pair);
    assert_eq!(left.matches("netmon_ingress").count(), 1, "{left}");
    assert_eq!(left.matches("netmon_egress").count(), 1, "{left}");
    drop(long);
    wait_detached(&pair.ns_a, &pair.dev_a, Duration::from_secs(10));
}

#[test]
fn without_privileges_the_error_names_the_capabilities() {
    require_root();
    let unprivileged = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(netmon_bin())
            .args(args)
            .output()
            .expect("setpriv");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = unprivileged(&["traffic", "-i", "lo", "-s", "1"]);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"),
        "{stderr}"
    );
    assert!(stderr.contains("run it as root"), "{stderr}");
    // A mistyped interface is found out before the classifier is loaded: the answer lists the
    // interfaces, and says nothing of privileges.
    let (code, stderr) = unprivileged(&["traffic", "-i", "nosuchif0", "-s", "1"]);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("\"nosuchif0\" does not exist") && stderr.contains("interfaces there: lo"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`netmon interfaces` shows them"),
        "{stderr}"
    );
    assert!(!stderr.contains("CAP_BPF"), "{stderr}");
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_2() {
    require_root();
    let run = |args: &[&str]| {
        let out = Command::new(netmon_bin())
            .args(args)
            .output()
            .expect("netmon");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, err, _) = run(&["traffic", "-i", "nosuchif0", "-s", "1"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("\"nosuchif0\" does not exist") && err.contains("lo"),
        "{err}"
    );
    let (code, err, _) = run(&["traffic", "-i", "lo", "-s", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("1–3600 seconds"), "{err}");
    let (code, err, _) = run(&["traffic", "-i", "eth0;reboot", "-s", "1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not valid"), "{err}");
    let (code, _, out) = run(&["traffic", "-i", "nosuchif0", "-s", "1", "--json"]);
    assert_eq!(code, Some(2));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON error object");
    assert_eq!(v["success"], false);
    assert!(v["message"].as_str().unwrap().contains("does not exist"));
    let (code, err, _) = run(&["traffic", "-i", "lo", "-s", "1", "--table-capacity", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("out of range"), "{err}");
}

/// netmon run with `NETMON_TC_ATTACH=netlink`: clsact filters, the path kernels before 6.6 take.
fn spawn_netlink_netmon(pair: &VethPair, seconds: &str) -> netmon_tests::Spawned {
    let child = in_ns(&pair.ns_a, "env")
        .args(["NETMON_TC_ATTACH=netlink", "RUST_LOG=warn"])
        .arg(netmon_bin())
        .args(["traffic", "-i", &pair.dev_a, "-s", seconds, "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning netmon");
    netmon_tests::Spawned(child)
}

/// netmon's filters on both hooks of `dev_a`, and whether it has a clsact qdisc.
fn clsact_state(pair: &VethPair) -> (Vec<String>, bool) {
    let mut netmon = Vec::new();
    for hook in ["ingress", "egress"] {
        let out = sh(in_ns(&pair.ns_a, "tc").args(["filter", "show", "dev", &pair.dev_a, hook]));
        netmon.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("netmon_"))
                .map(|l| format!("{hook}: {}", l.trim())),
        );
    }
    let q = sh(in_ns(&pair.ns_a, "tc").args(["qdisc", "show", "dev", &pair.dev_a]));
    (
        netmon,
        String::from_utf8_lossy(&q.stdout).contains("clsact"),
    )
}

/// The clsact path (kernels before 6.6): SIGINT and SIGTERM mid-window leave no filter and no
/// qdisc (netmon added the qdisc); a clsact qdisc that was there before stays; filters left by
/// a netmon killed with -9 are removed by the next netmon before it attaches; and a netmon
/// that is alive keeps its filters while another comes and goes.
#[test]
fn the_clsact_path_leaves_nothing_after_signals_and_cleans_up_after_kill_9() {
    let pair = VethPair::new(true);
    assert_eq!(clsact_state(&pair), (vec![], false));
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut child = spawn_netlink_netmon(&pair, "60");
        let _stderr = wait_attached(&mut child);
        let (filters, qdisc) = clsact_state(&pair);
        assert_eq!(filters.len(), 2, "{filters:?}");
        assert!(qdisc, "netmon added a clsact qdisc");
        // SAFETY: kill(2) on the PID of the child we spawned and have not reaped.
        assert_eq!(unsafe { libc::kill(child.pid() as i32, signal) }, 0);
        let status = child.0.wait().expect("wait");
        assert_eq!(status.code(), Some(130), "signal {signal}: {status}");
        assert_eq!(
            clsact_state(&pair),
            (vec![], false),
            "signal {signal}: netmon left its filters or its qdisc"
        );
    }

    // kill -9 leaves the filters (nothing can run then) ...
    let mut killed = spawn_netlink_netmon(&pair, "60");
    let _stderr = wait_attached(&mut killed);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(killed.pid() as i32, libc::SIGKILL) }, 0);
    let _ = killed.0.wait();
    let (left, _) = clsact_state(&pair);
    assert_eq!(left.len(), 2, "{left:?}");
    // ... and the next netmon removes them before it attaches, then its own when it leaves.
    let mut next = spawn_netlink_netmon(&pair, "1");
    let (line, stderr) = netmon_tests::wait_stderr_line(&mut next, "left when it was killed");
    eprintln!("{}", line.trim());
    let result = netmon_tests::finish_json(next, stderr);
    assert_eq!(result["success"], true);
    let (filters, qdisc) = clsact_state(&pair);
    assert_eq!(filters, Vec::<String>::new());
    // The killed netmon's qdisc: the next one found it there and did not add it, so it stays.
    assert!(qdisc);

    // A clsact qdisc that was there before netmon (here, the one left above) stays, and a
    // netmon that is alive keeps its filters while another comes and goes.
    let mut long = spawn_netlink_netmon(&pair, "60");
    let _stderr = wait_attached(&mut long);
    let mut short = spawn_netlink_netmon(&pair, "1");
    let stderr = wait_attached(&mut short);
    let result = netmon_tests::finish_json(short, stderr);
    assert_eq!(result["success"], true);
    let (filters, qdisc) = clsact_state(&pair);
    assert_eq!(filters.len(), 2, "the live netmon's filters: {filters:?}");
    assert!(qdisc);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(long.pid() as i32, libc::SIGTERM) }, 0);
    let _ = long.0.wait();
    assert_eq!(clsact_state(&pair), (vec![], true));
}
