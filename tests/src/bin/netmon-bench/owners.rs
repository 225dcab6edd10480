//! Per-process bytes, side by side with the tools a user would pick instead: nethogs
//! (`nethogs -t`, Debian) and bandwhich (`bandwhich --raw`), each watching the same veth in the
//! same namespace while two iperf3 clients the benchmark started send UDP. Truth per process is
//! iperf3's own count (payload + 28 B of headers per datagram). Also the CPU each tool used over
//! the run.

use netmon_tests::{ADDR_B4, Spawned, VethPair, in_ns, iperf3_server_on};
use serde::Serialize;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct ToolRun {
    pub tool: String,
    pub run: usize,
    /// Bytes the tool gave each iperf3 PID (sent + received), over the truth; `None`: the tool
    /// named no such process.
    pub ratios: Vec<Option<f64>>,
    /// CPU seconds (user + system) the tool used over the run.
    pub cpu_s: f64,
    pub note: String,
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn tick_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1.0 / if t > 0 { t as f64 } else { 100.0 }
}

/// What one tool printed, and the CPU it used; it is stopped (by its PID) after `seconds`.
fn watch(mut cmd: std::process::Command, seconds: u64, during: impl FnOnce()) -> (String, f64) {
    let mut child = Spawned(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting a peer tool"),
    );
    let pid = child.pid();
    let mut out = child.0.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    during();
    let left = Duration::from_secs(seconds).saturating_sub(start.elapsed());
    std::thread::sleep(left);
    let cpu = cpu_ticks(pid).unwrap_or(0) as f64 * tick_s();
    // SAFETY: our own child, not yet reaped.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(child);
    (reader.join().unwrap_or_default(), cpu)
}

/// nethogs -t: lines `program/PID/UID<TAB>sent KB/s<TAB>received KB/s`, one set per second;
/// bytes are the rates summed over the refreshes.
fn nethogs_bytes(out: &str, pid: u32) -> Option<f64> {
    let mut total = 0.0;
    let mut seen = false;
    for l in out.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() == 3 && f[0].split('/').nth(1) == Some(&pid.to_string()) {
            let (s, r): (f64, f64) = (f[1].parse().ok()?, f[2].parse().ok()?);
            total += (s + r) * 1024.0;
            seen = true;
        }
    }
    seen.then_some(total)
}

/// bandwhich --raw: `process: <time> "<name>" up/down Bps: U/D connections: N`, per second. It
/// names processes, not PIDs: all iperf3s share a name, so their bytes are summed.
fn bandwhich_bytes(out: &str, name: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut seen = false;
    for l in out.lines().filter(|l| l.starts_with("process:")) {
        if !l.contains(&format!("\"{name}\"")) {
            continue;
        }
        let rates = l.split("up/down Bps:").nth(1)?.split_whitespace().next()?;
        let (u, d) = rates.split_once('/')?;
        total += u.parse::<f64>().ok()? + d.parse::<f64>().ok()?;
        seen = true;
    }
    seen.then_some(total)
}

pub fn measure(netmon: &Path, bandwhich: Option<&Path>, runs: usize) -> Vec<ToolRun> {
    let seconds = 8;
    let mut out = Vec::new();
    for run in 0..runs {
        let pair = VethPair::new(false);
        let _a = iperf3_server_on(&pair.ns_b, ADDR_B4, 5201);
        let _b = iperf3_server_on(&pair.ns_b, ADDR_B4, 5202);
        // Two clients, started by the benchmark: their PIDs and their own counts are the truth.
        let send = |pair: &VethPair| -> Vec<(u32, f64)> {
            let clients: Vec<Spawned> = ["5201", "5202"]
                .iter()
                .map(|p| {
                    Spawned(
                        in_ns(&pair.ns_a, "iperf3")
                            .args([
                                "-J", "-c", ADDR_B4, "-p", p, "-u", "-l", "1400", "-b", "10M",
                                "-t", "4",
                            ])
                            .stdout(Stdio::piped())
                            .stderr(Stdio::null())
                            .spawn()
                            .expect("iperf3"),
                    )
                })
                .collect();
            clients
                .into_iter()
                .map(|mut c| {
                    let pid = c.pid();
                    let mut s = String::new();
                    let _ = c.0.stdout.take().unwrap().read_to_string(&mut s);
                    let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
                    let st = &v["end"]["streams"][0]["udp"];
                    let truth = st["bytes"].as_f64().unwrap_or(0.0)
                        + 28.0 * st["packets"].as_f64().unwrap_or(0.0);
                    (pid, truth)
                })
                .collect()
        };
        let mut truths = Vec::new();
        // netmon: one window around the clients.
        let mut cmd = in_ns(&pair.ns_a, netmon.to_str().unwrap());
        cmd.args([
            "traffic",
            "-i",
            &pair.dev_a,
            "-s",
            &seconds.to_string(),
            "--json",
            "-n",
            "--by",
            "process",
        ]);
        let (text, cpu) = watch(cmd, seconds + 2, || truths = send(&pair));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let rows = v["data"]["top_connections"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ratios = truths
            .iter()
            .map(|(pid, truth)| {
                rows.iter().find(|r| r["process"]["pid"] == *pid).map(|r| {
                    (r["tx_bytes"].as_f64().unwrap_or(0.0) + r["rx_bytes"].as_f64().unwrap_or(0.0))
                        / truth
                })
            })
            .collect();
        out.push(ToolRun {
            tool: "netmon".into(),
            run,
            ratios,
            cpu_s: cpu,
            note: "sent + received of the PID's row (its stream and control connection) over iperf3's datagrams with headers".into(),
        });

        let mut cmd = in_ns(&pair.ns_a, "nethogs");
        // -C: UDP too (nethogs counts TCP only without it).
        cmd.args(["-t", "-C", "-d", "1", &pair.dev_a]);
        let (text, cpu) = watch(cmd, seconds, || truths = send(&pair));
        out.push(ToolRun {
            tool: "nethogs 0.8.7".into(),
            run,
            ratios: truths
                .iter()
                .map(|(pid, truth)| nethogs_bytes(&text, *pid).map(|b| b / truth))
                .collect(),
            cpu_s: cpu,
            note: "`nethogs -t -C`: KB/s per refresh summed over 1 s refreshes".into(),
        });

        if let Some(bw) = bandwhich {
            let mut cmd = in_ns(&pair.ns_a, bw.to_str().unwrap());
            cmd.args(["-i", &pair.dev_a, "--raw", "-n"]);
            let (text, cpu) = watch(cmd, seconds, || truths = send(&pair));
            let both: f64 = truths.iter().map(|t| t.1).sum();
            let named = bandwhich_bytes(&text, "iperf3").map(|b| b / both);
            out.push(ToolRun {
                tool: "bandwhich".into(),
                run,
                ratios: vec![named; truths.len()],
                cpu_s: cpu,
                note: "names processes, not PIDs: both iperf3s together over both truths".into(),
            });
        }
    }
    out
}
