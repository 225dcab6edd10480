//! The cost of a live screen: `netmon top` against iftop's ncurses screen, each in its own tmux
//! terminal on the same veth, idle and under a 10,000-flow UDP flood, runs interleaved. The
//! figure is the screen process's CPU (utime + stime from /proc/PID/stat) over the measured
//! seconds. netmon's classifier runs in the kernel, in the sender's softirq, so that part of its
//! cost is not in the process's figure; the datapath section measures it per packet.

use netmon_tests::tmux::Tmux;
use netmon_tests::{ADDR_B4, VethPair, in_ns};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Screen {
    #[serde(rename = "netmon top")]
    NetmonTop,
    #[serde(rename = "iftop")]
    Iftop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ScreenLoad {
    Idle,
    #[serde(rename = "10,000 UDP flows")]
    TenThousandFlows,
}

#[derive(Debug, Serialize)]
pub struct ScreenRun {
    pub screen: Screen,
    pub load: ScreenLoad,
    pub run: usize,
    /// Percent of one core.
    pub cpu_percent: f64,
    pub seconds: f64,
}

/// CLK_TCK ticks of user + system time of `pid`.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn one(
    pair: &VethPair,
    netmon: &Path,
    flood: &Path,
    screen: Screen,
    load: ScreenLoad,
    seconds: u32,
) -> Option<f64> {
    let command = match screen {
        Screen::NetmonTop => format!(
            "ip netns exec {} {} top -i {} -n -N -P",
            pair.ns_a,
            netmon.display(),
            pair.dev_a
        ),
        Screen::Iftop => format!(
            "ip netns exec {} iftop -i {} -n -N -P",
            pair.ns_a, pair.dev_a
        ),
    };
    let t = Tmux::start(&command, 120, 40);
    // The pane's process is the screen itself: `ip netns exec` execs it.
    let pid = t.pane("pane_pid");
    // Attached, first screens drawn.
    std::thread::sleep(Duration::from_secs(3));
    let start = Instant::now();
    let before = cpu_ticks(&pid)?;
    match load {
        ScreenLoad::Idle => std::thread::sleep(Duration::from_secs(u64::from(seconds))),
        ScreenLoad::TenThousandFlows => {
            netmon_tests::sh(in_ns(&pair.ns_a, flood.to_str()?).args([
                "--dst",
                ADDR_B4,
                "--flows",
                "10000",
                "--seconds",
                &seconds.to_string(),
            ]));
        }
    }
    let after = cpu_ticks(&pid)?;
    let elapsed = start.elapsed().as_secs_f64();
    t.keys("q");
    Some((after - before) as f64 / ticks_per_second() / elapsed * 100.0)
}

pub fn measure(netmon: &Path, flood: &Path, runs: usize) -> Vec<ScreenRun> {
    let mut out = Vec::new();
    let pair = VethPair::new(false);
    for load in [ScreenLoad::Idle, ScreenLoad::TenThousandFlows] {
        let seconds = match load {
            ScreenLoad::Idle => 20,
            ScreenLoad::TenThousandFlows => 10,
        };
        for run in 0..runs {
            // Interleaved, alternating which goes first.
            let order = if run % 2 == 0 {
                [Screen::NetmonTop, Screen::Iftop]
            } else {
                [Screen::Iftop, Screen::NetmonTop]
            };
            for screen in order {
                match one(&pair, netmon, flood, screen, load, seconds) {
                    Some(cpu) => {
                        eprintln!(
                            "netmon-bench: {screen:?} {load:?} run {run}: {cpu:.2}% of a core"
                        );
                        out.push(ScreenRun {
                            screen,
                            load,
                            run,
                            cpu_percent: cpu,
                            seconds: f64::from(seconds),
                        });
                    }
                    None => eprintln!("netmon-bench: {screen:?} {load:?} run {run}: no figure"),
                }
            }
        }
    }
    out
}

/// The median CPU of `screen` under `load`.
pub fn median(runs: &[ScreenRun], screen: Screen, load: ScreenLoad) -> Option<f64> {
    let mut v: Vec<f64> = runs
        .iter()
        .filter(|r| r.screen == screen && r.load == load)
        .map(|r| r.cpu_percent)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}
