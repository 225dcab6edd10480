//! Datapath overhead, accuracy and userspace CPU: the same traffic over a veth pair with nothing
//! attached, with `netmon traffic` attached, and with iftop capturing, interleaved run by run.

use crate::proc::{Exit, cpu_so_far, reap};
use netmon::report::{Response, TrafficData};
use netmon_tests::{
    ADDR_B4, Counters, Spawned, VethPair, in_ns, iperf3_client, iperf3_server, spawn_netmon,
    wait_attached,
};
use serde::Serialize;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Ethernet header bytes the kernel's interface counters include on every frame.
const ETH_HLEN: u64 = 14;
/// IPv4 (20) + TCP with timestamps (32): the headers of every iperf3 data segment.
const TCP_V4_HDRS: u64 = 52;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    Udp64OneFlow,
    Udp64TenThousandFlows,
    TcpOffloadsOn,
    TcpOffloadsOff,
}

impl Load {
    pub const ALL: [Load; 4] = [
        Load::Udp64OneFlow,
        Load::Udp64TenThousandFlows,
        Load::TcpOffloadsOn,
        Load::TcpOffloadsOff,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Load::Udp64OneFlow => "UDP flood, 64 B frames, 1 flow",
            Load::Udp64TenThousandFlows => "UDP flood, 64 B frames, 10,000 flows",
            Load::TcpOffloadsOn => "TCP bulk, offloads on (TSO/GSO/GRO)",
            Load::TcpOffloadsOff => "TCP bulk, offloads off",
        }
    }

    pub fn is_tcp(self) -> bool {
        matches!(self, Load::TcpOffloadsOn | Load::TcpOffloadsOff)
    }

    /// The rate's unit: packets/s for the floods, received bits/s for TCP.
    pub fn unit(self) -> &'static str {
        if self.is_tcp() { "bit/s" } else { "packets/s" }
    }

    fn flows(self) -> u32 {
        match self {
            Load::Udp64TenThousandFlows => 10_000,
            _ => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Nothing attached to the interface.
    Baseline,
    /// `netmon traffic` attached (TCX ingress + egress) for the whole run.
    Netmon,
    /// iftop capturing on the interface (libpcap, AF_PACKET) for the whole run.
    Iftop,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Baseline, Variant::Netmon, Variant::Iftop];
}

/// Against what a counted figure is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    /// The kernel's interface counters in IP terms: L2 bytes minus 14 per frame.
    KernelL3,
    /// iperf3's payload bytes plus its retransmitted segments at one MSS each, against netmon's
    /// data flow minus 52 header bytes per segment. With offloads on, the kernel counts GSO
    /// super-packets while netmon counts wire segments, so the kernel's counters are not the
    /// truth for netmon there. Retransmitted segments crossed the link too; iperf3 counts them
    /// only as a number, and a retransmission can be shorter than an MSS, so this truth is only
    /// as good as that estimate (the worst run so far read 0.9993).
    Iperf3PayloadAndRetransmits,
}

#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub load: Load,
    pub variant: Variant,
    pub run: usize,
    /// Packets/s through the veth (floods) or bits/s iperf3 received (TCP).
    pub rate: f64,
    pub kernel_frames: u64,
    pub kernel_bytes: u64,
    pub truth: Option<Truth>,
    pub truth_bytes: Option<u64>,
    pub counted_bytes: Option<u64>,
    /// counted / truth.
    pub accuracy: Option<f64>,
    /// netmon only: frames it counted (equal to `kernel_frames` when exact).
    pub counted_frames: Option<u64>,
    /// netmon only: its frame count equals the kernel's exactly.
    pub frames_exact: Option<bool>,
    /// TCP only: segments iperf3 retransmitted.
    pub retransmits: Option<u64>,
    /// netmon only: IP bytes that found no flow-table entry (must be 0).
    pub unattributed_bytes: Option<u64>,
    /// User + system CPU seconds of the netmon or iftop process, whole life (netmon's includes
    /// loading the program through the verifier).
    pub cpu_s: Option<f64>,
    /// The same from the start of its window (netmon: attached and first snapshot taken; iftop:
    /// "Listening on") to its exit, report included.
    pub cpu_window_s: Option<f64>,
}

/// What one burst of traffic achieved.
struct Burst {
    rate: f64,
    /// iperf3's payload bytes (TCP only).
    payload: Option<u64>,
    retransmits: Option<u64>,
    mss: Option<u64>,
}

pub struct Bench<'a> {
    pub flood: &'a Path,
    /// This benchmark's own binary, run in the test namespace to attach the empty classifier.
    pub me: &'a Path,
    /// Seconds of traffic per run.
    pub seconds: u32,
    pub runs: usize,
}

impl Bench<'_> {
    fn burst(&self, pair: &VethPair, load: Load) -> Burst {
        if load.is_tcp() {
            let secs = self.seconds.to_string();
            let r = iperf3_client(&pair.ns_a, &["-c", ADDR_B4, "-p", "5201", "-t", &secs]);
            return Burst {
                rate: r["end"]["sum_received"]["bits_per_second"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                payload: r["end"]["sum_sent"]["bytes"].as_u64(),
                retransmits: r["end"]["sum_sent"]["retransmits"].as_u64(),
                mss: r["start"]["tcp_mss_default"].as_u64(),
            };
        }
        let before = pair.counters_a();
        let out = netmon_tests::sh(
            in_ns(&pair.ns_a, self.flood.to_str().expect("utf-8 path")).args([
                "--dst",
                ADDR_B4,
                "--flows",
                &load.flows().to_string(),
                "--seconds",
                &self.seconds.to_string(),
            ]),
        );
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("netmon-flood JSON");
        let elapsed = report["elapsed_s"].as_f64().unwrap_or(f64::NAN);
        let sent = pair.counters_a().since(&before).tx_packets;
        Burst {
            rate: sent as f64 / elapsed,
            payload: None,
            retransmits: None,
            mss: None,
        }
    }

    fn baseline(&self, pair: &VethPair, load: Load, run: usize) -> Run {
        let before = pair.counters_a();
        let b = self.burst(pair, load);
        let k = pair.counters_a().since(&before);
        Run::new(load, Variant::Baseline, run, b.rate, &k)
    }

    /// `netmon traffic` on `dev_a` for the burst plus 3 s; returns the child once its window
    /// has started, and the CPU it had used by then.
    fn start_netmon(&self, pair: &VethPair) -> (Spawned, Box<dyn Read + Send>, f64) {
        let window = (self.seconds + 3).to_string();
        let mut child = spawn_netmon(
            &pair.ns_a,
            &[
                "traffic",
                "-i",
                &pair.dev_a,
                "-s",
                &window,
                "--json",
                // One row per connection, no names: the data flow alone, nothing after the
                // window.
                "-P",
                "-n",
                "--sort",
                "tx",
                "-L",
                "1",
            ],
        );
        let stderr = wait_attached(&mut child);
        let cpu = cpu_so_far(child.pid());
        (child, Box::new(stderr), cpu)
    }

    fn netmon(&self, pair: &VethPair, load: Load, run: usize) -> Run {
        let (child, stderr, cpu_at_start) = self.start_netmon(pair);
        let before = pair.counters_a();
        let b = self.burst(pair, load);
        let (out, exit) = finish(child, Some(stderr));
        let k = pair.counters_a().since(&before);
        let mut r = Run::new(load, Variant::Netmon, run, b.rate, &k);
        r.cpu_s = Some(exit.cpu_s());
        r.cpu_window_s = Some(exit.cpu_s() - cpu_at_start);
        r.retransmits = b.retransmits;
        let resp: Response<TrafficData> =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("netmon's JSON ({e}):\n{out}"));
        let data = resp
            .data
            .unwrap_or_else(|| panic!("netmon failed: {}", resp.message));
        let t = &data.total_stats;
        let (rx, tx) = (
            t.rx.clone().unwrap_or_default(),
            t.tx.clone().unwrap_or_default(),
        );
        // Wire packets: TCP hands the stack GSO super-packets even with offloads off, and the
        // device cuts them into segments after the classifier has seen them; the kernel's
        // counters count those segments, as netmon's packet counts do. With offloads on the
        // veth carries the super-packets whole and counts them as one each, so there is no
        // per-packet truth to compare with.
        let wire = t.rx_packets.unwrap_or(0)
            + t.tx_packets.unwrap_or(0)
            + rx.other_frames
            + tx.other_frames;
        r.counted_frames = Some(wire);
        r.frames_exact =
            (load != Load::TcpOffloadsOn).then_some(wire == k.rx_packets + k.tx_packets);
        r.unattributed_bytes = Some(rx.unattributed_bytes + tx.unattributed_bytes);
        if load == Load::TcpOffloadsOn {
            let data_flow = data.top_connections.first();
            r.truth = Some(Truth::Iperf3PayloadAndRetransmits);
            r.truth_bytes = b
                .payload
                .map(|p| p + b.retransmits.unwrap_or(0) * b.mss.unwrap_or(0));
            r.counted_bytes = data_flow.map(|c| {
                c.tx_bytes
                    .saturating_sub(TCP_V4_HDRS * c.tx_packets.unwrap_or_default())
            });
        } else {
            r.truth = Some(Truth::KernelL3);
            r.truth_bytes = Some(kernel_l3(&k));
            r.counted_bytes = Some(t.rx_bytes + t.tx_bytes);
        }
        r.accuracy = ratio(r.counted_bytes, r.truth_bytes);
        r
    }

    /// Nanoseconds the classifier spends per packet (kernel.bpf_stats_enabled's run_time_ns /
    /// run_cnt, both programs) in one extra netmon run, and the same for the do-nothing program
    /// attached the same way (the floor: the statistics' own two clock reads and the call). Not
    /// timed against the others: the statistics slow every program run.
    pub fn classifier_ns_per_packet(&self, pair: &VethPair, load: Load) -> PerPacket {
        let Some(_stats) = BpfStats::enable() else {
            return PerPacket::default();
        };
        let (child, stderr, _) = self.start_netmon(pair);
        let _ = self.burst(pair, load);
        let netmon = ns_per_run(&program_stats(&["netmon_ingress", "netmon_egress"]));
        let _ = finish(child, Some(stderr));

        let other = |plain: bool, names: &[&str]| {
            let mut c = in_ns(&pair.ns_a, self.me.to_str().expect("utf-8 path"));
            c.args(["--floor-iface", &pair.dev_a])
                .args(["--floor-seconds", &(self.seconds + 5).to_string()]);
            if plain {
                c.arg("--plain");
            }
            let mut child = Spawned(
                c.stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawning the floor attacher"),
            );
            netmon_tests::wait_stderr_line(&mut child, "floor attached");
            let _ = self.burst(pair, load);
            let ns = ns_per_run(&program_stats(names));
            drop(child);
            ns
        };
        let floor = other(false, &["netmon_floor"]);
        let plain = other(
            true,
            &[
                netmon_common::INGRESS_PLAIN_PROG,
                netmon_common::EGRESS_PLAIN_PROG,
            ],
        );
        PerPacket {
            netmon,
            floor,
            plain,
        }
    }

    fn iftop(&self, pair: &VethPair, load: Load, run: usize) -> Run {
        let window = (self.seconds + 2).to_string();
        let mut cmd = in_ns(&pair.ns_a, "stdbuf");
        cmd.args(["-oL", "iftop", "-t", "-s", &window, "-n", "-N", "-P", "-B"])
            .args(["-L", "500", "-i", &pair.dev_a])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = Spawned(cmd.spawn().expect("spawning iftop"));
        let mut stdout = child.0.stdout.take().expect("piped stdout");
        wait_for_line(&mut stdout, "Listening on");
        let cpu_at_start = cpu_so_far(child.pid());
        let before = pair.counters_a();
        let b = self.burst(pair, load);
        // iftop only prints on a tick, and only ticks when a packet arrives: keep a slow,
        // bounded ping going until it has printed.
        let ping = Spawned(
            in_ns(&pair.ns_a, "ping")
                .args(["-q", "-i", "0.2", "-c", "50", "-w", "12", ADDR_B4])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning ping"),
        );
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let exit = reap(child.pid(), Duration::from_secs(self.seconds as u64 + 30));
        // Reaped above: the handle must not signal a PID that may be reused.
        std::mem::forget(child);
        let k = pair.counters_a().since(&before);
        drop(ping);
        let out = reader.join().unwrap_or_default();
        let mut r = Run::new(load, Variant::Iftop, run, b.rate, &k);
        r.cpu_s = Some(exit.cpu_s());
        r.cpu_window_s = Some(exit.cpu_s() - cpu_at_start);
        r.retransmits = b.retransmits;
        r.truth = Some(Truth::KernelL3);
        r.truth_bytes = Some(kernel_l3(&k));
        r.counted_bytes = match netmon::iftop::parse(&out) {
            Ok(Some(table)) => Some(table.totals.cumulative[2].round() as u64),
            Ok(None) => {
                eprintln!("netmon-bench: iftop printed no table:\n{out}");
                None
            }
            Err(e) => {
                eprintln!("netmon-bench: iftop output unreadable ({e}):\n{out}");
                None
            }
        };
        r.accuracy = ratio(r.counted_bytes, r.truth_bytes);
        r
    }

    /// Every load, each run doing baseline, netmon and iftop back to back; then, per load, one
    /// run for the classifier's own cost per packet.
    pub fn run_all(&self) -> (Vec<Run>, Vec<(Load, PerPacket)>) {
        let mut runs = Vec::new();
        let mut per_packet = Vec::new();
        for load in Load::ALL {
            let pair = VethPair::new(load == Load::TcpOffloadsOn);
            let _server = load
                .is_tcp()
                .then(|| iperf3_server(&pair.ns_b, netmon_tests::ADDR_B4));
            // One unmeasured burst first: neighbour resolution, page cache, CPU frequency.
            let _ = self.burst(&pair, load);
            for run in 0..self.runs {
                for variant in Variant::ALL {
                    let r = match variant {
                        Variant::Baseline => self.baseline(&pair, load, run),
                        Variant::Netmon => self.netmon(&pair, load, run),
                        Variant::Iftop => self.iftop(&pair, load, run),
                    };
                    eprintln!(
                        "netmon-bench: {:?} {:?} run {}: {:.0} {}{}",
                        load,
                        variant,
                        run + 1,
                        r.rate,
                        load.unit(),
                        r.accuracy
                            .map(|a| format!(", accuracy {a:.5}"))
                            .unwrap_or_default()
                    );
                    runs.push(r);
                }
            }
            let ns = self.classifier_ns_per_packet(&pair, load);
            eprintln!(
                "netmon-bench: {load:?} classifier cost: {:?} ns/packet, floor {:?}",
                ns.netmon, ns.floor
            );
            per_packet.push((load, ns));
        }
        (runs, per_packet)
    }
}

impl Run {
    fn new(load: Load, variant: Variant, run: usize, rate: f64, k: &Counters) -> Self {
        Self {
            load,
            variant,
            run,
            rate,
            kernel_frames: k.rx_packets + k.tx_packets,
            kernel_bytes: k.rx_bytes + k.tx_bytes,
            truth: None,
            truth_bytes: None,
            counted_bytes: None,
            accuracy: None,
            counted_frames: None,
            frames_exact: None,
            retransmits: None,
            unattributed_bytes: None,
            cpu_s: None,
            cpu_window_s: None,
        }
    }
}

fn kernel_l3(k: &Counters) -> u64 {
    (k.rx_bytes + k.tx_bytes) - ETH_HLEN * (k.rx_packets + k.tx_packets)
}

fn ratio(counted: Option<u64>, truth: Option<u64>) -> Option<f64> {
    match (counted, truth) {
        (Some(c), Some(t)) if t > 0 => Some(c as f64 / t as f64),
        _ => None,
    }
}

/// Reads `r` until a line containing `needle` (bounded by the child's own window: iftop prints
/// it at start, or exits).
fn wait_for_line(r: &mut impl Read, needle: &str) {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while r.read(&mut byte).is_ok_and(|n| n == 1) {
        seen.push(byte[0]);
        if byte[0] == b'\n' {
            if String::from_utf8_lossy(&seen).contains(needle) {
                return;
            }
            seen.clear();
        }
    }
    panic!("iftop exited before printing {needle:?}");
}

/// Waits for a netmon child to exit (bounded), returning its stdout and its CPU.
fn finish(mut child: Spawned, stderr: Option<Box<dyn Read + Send>>) -> (String, Exit) {
    let mut stdout = child.0.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = stderr.map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            s
        })
    });
    let exit = reap(child.pid(), Duration::from_secs(60));
    // Reaped above: the handle must not signal a PID that may be reused.
    std::mem::forget(child);
    let out = reader.join().unwrap_or_default();
    let err = err_reader
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    assert!(exit.success(), "netmon failed:\n{out}\n{err}");
    (out, exit)
}

/// kernel.bpf_stats_enabled on for as long as this lives, then back to what it was.
struct BpfStats {
    before: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> Option<Self> {
        let before = std::fs::read_to_string(BPF_STATS).ok()?.trim().to_string();
        std::fs::write(BPF_STATS, "1").ok()?;
        Some(Self { before })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.before);
    }
}

/// The classifier's and the floor's nanoseconds per run, from bpf_stats.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PerPacket {
    pub netmon: Option<f64>,
    pub floor: Option<f64>,
    /// The same classifier without socket attribution, attached the same way.
    pub plain: Option<f64>,
}

fn ns_per_run(stats: &[(u64, u64)]) -> Option<f64> {
    let (ns, cnt) = stats
        .iter()
        .fold((0u64, 0u64), |(n, c), p| (n + p.0, c + p.1));
    (cnt > 0).then(|| ns as f64 / cnt as f64)
}

/// (run_time_ns, run_cnt) of the newest program of each name: the ones the process this
/// benchmark just started loaded.
fn program_stats(names: &[&str]) -> Vec<(u64, u64)> {
    let Ok(out) = std::process::Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
    else {
        return Vec::new();
    };
    let progs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    names
        .iter()
        .filter_map(|name| {
            progs
                .iter()
                .filter(|p| p["name"] == *name)
                .max_by_key(|p| p["id"].as_u64())
                .map(|p| {
                    (
                        p["run_time_ns"].as_u64().unwrap_or(0),
                        p["run_cnt"].as_u64().unwrap_or(0),
                    )
                })
        })
        .collect()
}
