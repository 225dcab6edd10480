//! `netmon top` in a real terminal: tmux runs it in a test namespace while iperf3 sends, and
//! `capture-pane` reads the screen. The stream is on it, the cumulative TX/RX equal the kernel's
//! counters to the screen's precision, iftop's keys change what is shown, a resize redraws, and
//! q, Ctrl-C or SIGTERM end it at once with the terminal restored and nothing attached.

use netmon::units::iftop_size;
use netmon_tests::tmux::Tmux;
use netmon_tests::{
    ADDR_B4, Spawned, VethPair, in_ns, iperf3_client, iperf3_server, netmon_bin, sh, tcx_programs,
    u,
};
use std::time::Duration;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const SECOND: Duration = Duration::from_secs(1);

/// `netmon top` in a terminal whose shell stays after netmon exits (a dead pane has no cursor
/// state to read), printing netmon's exit status.
fn start_top(pair: &VethPair, args: &str, width: u16, height: u16) -> Tmux {
    let t = Tmux::start(
        &format!(
            "ip netns exec {} {} top -i {} {args}; echo netmon-exited:$?; exec sleep 60",
            pair.ns_a,
            netmon_bin().display(),
            pair.dev_a
        ),
        width,
        height,
    );
    t.wait_for(&format!("netmon top {}", pair.dev_a), 20 * SECOND);
    t
}

/// Waits (bounded) until netmon has exited; returns how long it took and its status.
fn wait_exit(t: &Tmux, bound: Duration) -> (Duration, String) {
    let start = std::time::Instant::now();
    let screen = t.wait_for("netmon-exited:", bound);
    let status = screen
        .split("netmon-exited:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("")
        .to_string();
    (start.elapsed(), status)
}

/// netmon's PID: the child of the pane's shell (`ip netns exec` execs netmon).
fn netmon_pid(t: &Tmux) -> String {
    let shell = t.pane("pane_pid");
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .expect("the shell's children");
    children
        .split_whitespace()
        .next()
        .expect("netmon")
        .to_string()
}

/// The value after `label` on the screen's line that starts with `line`.
fn after<'a>(screen: &'a str, line: &str, label: &str) -> &'a str {
    let l = screen
        .lines()
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no {line} line:\n{screen}"));
    let rest = match label {
        "" => l[line.len()..].trim_start(),
        _ => l
            .split_once(label)
            .map(|(_, r)| r.trim_start())
            .unwrap_or(""),
    };
    rest.split_whitespace().next().unwrap_or("")
}

/// The screen's rows: lines with an arrow.
fn rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|l| l.contains(" => ") || l.contains(" <= ") || l.contains("<=>"))
        .collect()
}

#[test]
fn the_screen_shows_the_stream_counts_exactly_and_follows_iftops_keys() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pair = VethPair::new(false);
    pair.static_neighbours();
    let _server = iperf3_server(&pair.ns_b, ADDR_B4);
    let before = pair.counters_a();
    let top = start_top(&pair, "-P -n -N", 120, 40);
    let report = iperf3_client(&pair.ns_a, &["-c", ADDR_B4, "-n", "5M"]);
    let port = u(&report["start"]["connected"][0]["local_port"]);
    // Two refreshes after the last packet.
    std::thread::sleep(Duration::from_millis(2500));
    let kernel = pair.counters_a().since(&before);
    let screen = top.capture();
    eprintln!("{screen}");
    let stream = format!("10.200.1.1:{port}");
    assert!(
        rows(&screen)
            .iter()
            .any(|l| l.starts_with(&stream) && l.contains("=> 10.200.1.2:5201")),
        "the iperf3 connection is on the screen"
    );
    // No ARP (static neighbours) and offloads off: the link carried IP packets only, and each
    // frame is its IP packet plus 14 bytes of Ethernet header.
    let ip = |bytes: u64, frames: u64| iftop_size((bytes - 14 * frames) as f64, false);
    let (tx, rx) = (
        ip(kernel.tx_bytes, kernel.tx_packets),
        ip(kernel.rx_bytes, kernel.rx_packets),
    );
    eprintln!(
        "kernel: tx {} B in {} frames ({tx}), rx {} B in {} frames ({rx})",
        kernel.tx_bytes, kernel.tx_packets, kernel.rx_bytes, kernel.rx_packets
    );
    assert_eq!(after(&screen, "TX:", "cum:"), tx, "TX cumulative");
    assert_eq!(after(&screen, "RX:", ""), rx, "RX cumulative");

    // P freezes the screen while traffic flows; P again brings it back to life.
    let mut ping = Spawned(
        in_ns(&pair.ns_a, "ping")
            .args(["-q", "-c", "30", "-i", "0.1", "-s", "1000", ADDR_B4])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ping"),
    );
    top.keys("P");
    let paused = top.wait_for("PAUSED", 2 * SECOND);
    std::thread::sleep(SECOND + Duration::from_millis(200));
    assert_eq!(
        top.capture(),
        paused,
        "paused: two captures a second apart are the same"
    );
    top.keys("P");
    top.wait_for("live", 2 * SECOND);
    std::thread::sleep(Duration::from_millis(1500));
    let live = top.capture();
    assert_ne!(live, paused);
    assert!(live.contains("10.200.1.2"), "{live}");
    let _ = ping.0.kill();

    // T adds the cumulative column: the stream's row gets a fourth figure, in bytes.
    let figures = |s: &str| {
        rows(s)
            .into_iter()
            .find(|l| l.starts_with(&stream))
            .map(|l| {
                l.split("5201")
                    .nth(1)
                    .unwrap_or("")
                    .split_whitespace()
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(figures(&live), 3);
    top.keys("T");
    std::thread::sleep(Duration::from_millis(400));
    let with_cum = top.capture();
    assert_eq!(figures(&with_cum), 4, "{with_cum}");

    // 1/2/3 pick the column the rows are sorted by.
    top.keys("3");
    top.wait_for("sort 40s", 2 * SECOND);
    top.keys("2");
    top.wait_for("sort 10s", 2 * SECOND);

    // S hides the source ports (the two iperf3 connections merge), D the destination's.
    top.keys("S");
    std::thread::sleep(Duration::from_millis(1200));
    let s = top.capture();
    let r = rows(&s);
    assert!(!r.iter().any(|l| l.starts_with("10.200.1.1:")), "{s}");
    assert!(
        r.iter()
            .any(|l| l.starts_with("10.200.1.1 ") && l.contains("=> 10.200.1.2:5201")),
        "{s}"
    );
    top.keys("D");
    std::thread::sleep(Duration::from_millis(1200));
    let s = top.capture();
    assert!(
        rows(&s)
            .iter()
            .any(|l| l.starts_with("10.200.1.1 ") && l.contains("=> 10.200.1.2 ")),
        "{s}"
    );

    // A resize redraws at the new size.
    top.resize(80, 24);
    std::thread::sleep(Duration::from_millis(600));
    let small = top.capture();
    let rule = small
        .lines()
        .find(|l| l.starts_with("────"))
        .unwrap_or_else(|| panic!("{small}"));
    assert_eq!(rule.chars().count(), 80, "{small}");
    assert!(small.lines().any(|l| l.starts_with("TX:")), "{small}");

    // h shows the help; any key returns.
    top.keys("h");
    top.wait_for("any key returns", 2 * SECOND);
    top.keys("x");
    top.wait_for("TX:", 2 * SECOND);

    // q: gone within a second, the terminal back from the alternate screen, nothing attached.
    top.keys("q");
    let (took, status) = wait_exit(&top, SECOND);
    eprintln!("q → exit in {took:?}");
    assert_eq!(status, "0");
    assert_eq!(
        top.pane("alternate_on"),
        "0",
        "the alternate screen was left"
    );
    assert_eq!(top.pane("cursor_flag"), "1", "the cursor is back");
    assert!(tcx_programs(&pair.ns_a, &pair.dev_a).is_empty());
}

/// Ctrl-C and SIGTERM end it as q does: at once, the terminal restored, nothing attached.
#[test]
fn ctrl_c_and_sigterm_restore_the_terminal_and_detach() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pair = VethPair::new(false);
    for how in ["C-c", "TERM"] {
        let top = start_top(&pair, "", 100, 30);
        assert_eq!(top.pane("alternate_on"), "1");
        assert_eq!(tcx_programs(&pair.ns_a, &pair.dev_a).len(), 2, "attached");
        if how == "TERM" {
            sh(std::process::Command::new("kill").args(["-TERM", &netmon_pid(&top)]));
        } else {
            top.keys(how);
        }
        let (took, status) = wait_exit(&top, SECOND);
        eprintln!("{how} → exit in {took:?}");
        assert_eq!(status, "0", "{how}: a clean exit");
        assert_eq!(
            top.pane("alternate_on"),
            "0",
            "{how}: alternate screen left"
        );
        assert_eq!(top.pane("cursor_flag"), "1", "{how}: cursor shown");
        assert!(
            tcx_programs(&pair.ns_a, &pair.dev_a).is_empty(),
            "{how}: detached"
        );
    }
}

/// Without a terminal, `netmon top` says what to use instead.
#[test]
fn without_a_terminal_it_points_at_netmon_traffic() {
    let pair = VethPair::new(false);
    let out = sh_unchecked(in_ns(&pair.ns_a, netmon_bin().to_str().unwrap()).args([
        "top",
        "-i",
        &pair.dev_a,
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("netmon traffic"), "{err}");
    assert!(tcx_programs(&pair.ns_a, &pair.dev_a).is_empty());
}

fn sh_unchecked(c: &mut std::process::Command) -> std::process::Output {
    c.stdin(std::process::Stdio::null())
        .output()
        .expect("running netmon")
}
