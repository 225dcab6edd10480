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

/// The row of process `pid` on a process screen: its `=>` line and the `<=` line under it.
fn process_row(screen: &str, pid: u64) -> Option<(String, String)> {
    let lines: Vec<&str> = screen.lines().collect();
    let i = lines.iter().position(|l| {
        let t = l.trim_start_matches(['>', ' ']);
        t.starts_with(&format!("{pid} ")) && l.contains(" =>")
    })?;
    Some((lines[i].to_string(), lines.get(i + 1)?.to_string()))
}

fn last_word(l: &str) -> &str {
    l.split_whitespace().last().unwrap_or("")
}

/// The process screen (`--by process`, then `g` through the cycle): two iperf3 clients the test
/// started each have a row with their PID, user and command line; with `T` each row's
/// cumulative bytes equal that PID's bytes in `netmon traffic --by process` over the same
/// traffic, to the screen's precision, and so do the totals (rows and unattributed rows add up
/// to them). Enter on a row opens that process's connections only, Esc goes back; `g` names
/// each grouping; a resize keeps the columns; the help lists the keys.
#[test]
fn the_process_screen_names_each_pid_and_opens_its_connections() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pair = VethPair::new(false);
    pair.static_neighbours();
    let _s1 = netmon_tests::iperf3_server_on(&pair.ns_b, ADDR_B4, 5201);
    let _s2 = netmon_tests::iperf3_server_on(&pair.ns_b, ADDR_B4, 5202);
    let top = start_top(&pair, "--by process -n -N", 120, 40);
    top.wait_for("processes", 5 * SECOND);
    // The same traffic through `netmon traffic --by process`, its window around all of it.
    let mut traffic = netmon_tests::spawn_netmon(
        &pair.ns_a,
        &[
            "traffic",
            "-i",
            &pair.dev_a,
            "-s",
            "8",
            "--by",
            "process",
            "-n",
            "--json",
            "-L",
            "100",
        ],
    );
    let stderr = netmon_tests::wait_attached(&mut traffic);
    let client = |port: &str, bytes: &str| {
        Spawned(
            in_ns(&pair.ns_a, "iperf3")
                .args(["-c", ADDR_B4, "-p", port, "-n", bytes])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("iperf3 client"),
        )
    };
    let mut a = client("5201", "3M");
    let mut b = client("5202", "1M");
    let (pid_a, pid_b) = (u64::from(a.pid()), u64::from(b.pid()));
    assert!(a.0.wait().unwrap().success() && b.0.wait().unwrap().success());
    let result = netmon_tests::finish_json(traffic, stderr);
    std::thread::sleep(Duration::from_millis(2500));
    top.keys("T");
    std::thread::sleep(Duration::from_millis(600));
    let screen = top.capture();
    eprintln!("{screen}");
    let data = &result["data"];
    let rows_json = data["top_connections"].as_array().unwrap();
    for row in rows_json {
        let (tx, rx) = (u(&row["tx_bytes"]), u(&row["rx_bytes"]));
        let (sent, received) = match row["process"]["pid"].as_u64() {
            Some(pid) => process_row(&screen, pid)
                .unwrap_or_else(|| panic!("no row for pid {pid}:\n{screen}")),
            None => {
                let why: netmon::owner::Unattributed =
                    serde_json::from_value(row["unattributed_reason"].clone()).unwrap();
                let label = format!("(unattributed: {})", why.label());
                let lines: Vec<&str> = screen.lines().collect();
                let i = lines
                    .iter()
                    .position(|l| l.contains(&label))
                    .unwrap_or_else(|| panic!("no row {label}:\n{screen}"));
                (lines[i].to_string(), lines[i + 1].to_string())
            }
        };
        assert_eq!(last_word(&sent), iftop_size(tx as f64, false), "{sent}");
        assert_eq!(
            last_word(&received),
            iftop_size(rx as f64, false),
            "{received}"
        );
    }
    for pid in [pid_a, pid_b] {
        let (sent, _) = process_row(&screen, pid).unwrap();
        // Both finished before this capture: named by `comm`, marked as exited.
        assert!(
            sent.contains("root") && sent.contains("iperf3 (exited)"),
            "{sent}"
        );
    }
    let t = &data["total_stats"];
    assert_eq!(
        after(&screen, "TX:", "cum:"),
        iftop_size(u(&t["tx_bytes"]) as f64, false)
    );
    assert_eq!(
        after(&screen, "RX:", ""),
        iftop_size(u(&t["rx_bytes"]) as f64, false)
    );

    // Enter on the first iperf3's row: its connections only (both to port 5201); Esc: back.
    let lines: Vec<&str> = screen.lines().filter(|l| l.contains(" =>")).collect();
    let index = lines
        .iter()
        .position(|l| {
            l.trim_start_matches(['>', ' '])
                .starts_with(&format!("{pid_a} "))
        })
        .unwrap();
    for _ in 0..index {
        top.keys("j");
    }
    top.keys("Enter");
    top.wait_for(&format!("process {pid_a} iperf3"), 3 * SECOND);
    std::thread::sleep(Duration::from_millis(400));
    let opened = top.capture();
    let conns = rows(&opened);
    assert!(!conns.is_empty(), "{opened}");
    assert!(
        conns
            .iter()
            .filter(|l| l.contains(" => "))
            .all(|l| l.contains(":5201")),
        "only the first iperf3's connections:\n{opened}"
    );
    assert!(!opened.contains(":5202"), "{opened}");
    top.keys("Escape");
    top.wait_for("│ processes │", 3 * SECOND);

    // g: processes → containers → connections → host pairs → processes.
    for name in ["containers", "connections", "host pairs", "processes"] {
        top.keys("g");
        top.wait_for(&format!("│ {name} │"), 3 * SECOND);
    }

    // 80×24: the rows keep their three rates and the cumulative column.
    top.resize(80, 24);
    std::thread::sleep(Duration::from_millis(800));
    let small = top.capture();
    let (sent, _) = process_row(&small, pid_a).unwrap_or_else(|| panic!("{small}"));
    assert!(sent.chars().count() <= 80, "{small}");
    assert_eq!(
        sent.split(" =>").nth(1).unwrap().split_whitespace().count(),
        4,
        "{small}"
    );
    top.resize(120, 40);
    top.keys("h");
    let help = top.wait_for("any key returns", 2 * SECOND);
    assert!(
        help.contains("Enter") && help.contains("process, container"),
        "{help}"
    );
    top.keys("x");
    top.keys("q");
    let (_, status) = wait_exit(&top, 2 * SECOND);
    assert_eq!(status, "0");
}

/// A process that exits while shown keeps its row, marked exited, until its bytes leave the
/// 40 s window.
#[test]
fn an_exited_process_stays_marked_until_its_bytes_leave_the_window() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pair = VethPair::new(false);
    pair.static_neighbours();
    let top = start_top(&pair, "--by process -n -N", 120, 30);
    let mut sender = Spawned(
        in_ns(&pair.ns_a, "python3")
            .args([
                "-c",
                "import socket,time\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(20): s.sendto(b'x'*500, ('10.200.1.2', 9)); time.sleep(0.05)",
            ])
            .spawn()
            .expect("python3 sender"),
    );
    let pid = u64::from(sender.pid());
    assert!(sender.0.wait().unwrap().success());
    let gone_at = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let screen = top.capture();
    let (sent, _) = process_row(&screen, pid).unwrap_or_else(|| panic!("{screen}"));
    assert!(sent.contains("python3 (exited)"), "{sent}");
    // Gone once the 40 s window has no byte of it left (bounded to 50 s).
    loop {
        std::thread::sleep(SECOND);
        let s = top.capture();
        if process_row(&s, pid).is_none() {
            let after_s = gone_at.elapsed().as_secs_f64();
            eprintln!("the row left {after_s:.1} s after the process exited");
            assert!(
                after_s > 38.0,
                "the row left while its bytes were in the window"
            );
            break;
        }
        assert!(
            gone_at.elapsed() < Duration::from_secs(50),
            "the row stayed:\n{s}"
        );
    }
    top.keys("q");
    wait_exit(&top, 2 * SECOND);
}

/// A podman container sending through its veth: the container screen names it by the first 12
/// hex digits of `podman inspect`'s id. The client is in another namespace routed through the
/// one netmon watches from, so the veth's traffic is the container's.
#[test]
fn the_container_screen_names_a_podman_container() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    use netmon_tests::podman::{Image, iperf3_container, iperf3_image};
    let image = iperf3_image();
    let _image = Image(image.clone());
    let pair = VethPair::new(false);
    // Namespace A routes between B (the client) and the container.
    sh(in_ns(&pair.ns_a, "sysctl").args(["-q", "-w", "net.ipv4.ip_forward=1"]));
    sh(in_ns(&pair.ns_b, "ip").args(["route", "add", "10.205.0.0/16", "via", "10.200.1.1"]));
    let host_dev = netmon_tests::unique("vtc");
    let container = iperf3_container(&image, &pair.ns_a, &host_dev, 7);
    let t = Tmux::start(
        &format!(
            "ip netns exec {} {} top -i {host_dev} --by container -n -N; echo netmon-exited:$?; exec sleep 60",
            pair.ns_a,
            netmon_bin().display()
        ),
        120,
        30,
    );
    t.wait_for("containers", 20 * SECOND);
    sh(in_ns(&pair.ns_b, "iperf3").args([
        "-c",
        "10.205.7.2",
        "-R",
        "-n",
        "2M",
        "--connect-timeout",
        "5000",
    ]));
    std::thread::sleep(Duration::from_millis(2500));
    let screen = t.capture();
    eprintln!("{screen}");
    let short: String = container.id.chars().take(12).collect();
    assert!(
        screen
            .lines()
            .any(|l| l.contains("podman") && l.contains(&short) && l.contains(" =>")),
        "no row for container {short}:\n{screen}"
    );
    t.keys("q");
    wait_exit(&t, 2 * SECOND);
}
