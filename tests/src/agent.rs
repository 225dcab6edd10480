//! A `netmon agent` run by a test: as it would run in a container (a non-root user with only
//! CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON), inside a test namespace, and read over HTTP.

use crate::mcp::{Log, curl, drain_pipe, read_log};
use crate::{Spawned, in_ns, netmon_bin, wait_stderr_line};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub const LEAST_PRIVILEGE: &[&str] = &[
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all,+bpf,+net_admin,+perfmon",
    "--ambient-caps=-all,+bpf,+net_admin,+perfmon",
    "--bounding-set=-all,+bpf,+net_admin,+perfmon",
];

pub struct RunningAgent {
    pub child: Spawned,
    /// host:port it serves on.
    pub addr: String,
    /// The stderr line that says what it serves.
    pub banner: String,
    pub log: Log,
}

/// `netmon agent` in `ns` as uid 65534 with the three capabilities; waits (bounded) for its
/// address. `--listen 127.0.0.1:0` and `--tick 0.5` unless `args` say otherwise.
pub fn start_agent(ns: &str, args: &[&str]) -> RunningAgent {
    start_agent_in(in_ns(ns, "setpriv"), args)
}

/// The same, entered with `nsenter --net` instead of `ip netns exec`: the mounts stay the
/// host's (`ip netns exec` mounts a fresh /sys without the cgroup tree), as for an agent in a
/// host-network container.
pub fn start_agent_nsenter(ns: &str, args: &[&str]) -> RunningAgent {
    let mut c = std::process::Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}")).arg("setpriv");
    start_agent_in(c, args)
}

fn start_agent_in(mut setpriv: std::process::Command, args: &[&str]) -> RunningAgent {
    let mut defaults = vec![];
    for (flag, value) in [("--listen", "127.0.0.1:0"), ("--tick", "0.5")] {
        if !args.contains(&flag) {
            defaults.extend([flag, value]);
        }
    }
    // Test agents keep off the host's /run/netmon/agent.sock, which a real agent or another
    // test may hold; the test of the socket names its own path.
    if !args.contains(&"--local-socket") {
        defaults.push("--no-local-socket");
    }
    let mut child = Spawned(
        setpriv
            .args(LEAST_PRIVILEGE)
            .arg(netmon_bin())
            .arg("agent")
            .args(defaults)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning netmon agent"),
    );
    let (line, rest) = wait_stderr_line(&mut child, "agent serving http");
    let addr = line
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    RunningAgent {
        child,
        addr,
        banner: line.clone(),
        log: drain_pipe(rest.into_inner()),
    }
}

pub fn health(ns: &str, a: &RunningAgent) -> Value {
    let (code, body) = curl(ns, &[&format!("http://{}/health", a.addr)]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body}"))
}

pub fn collections(h: &Value) -> u64 {
    h["interfaces"][0]["collections"].as_u64().unwrap_or(0)
}

/// Waits (bounded) until the agent has collected `more` more times than `since`.
pub fn wait_collections(ns: &str, a: &RunningAgent, since: u64, more: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = health(ns, a);
        if collections(&h) >= since + more {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "the agent stopped collecting: {h}\n{}",
            read_log(&a.log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the one sample of `name` whose labels include all of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect();
    assert_eq!(hits.len(), 1, "{name} {labels:?} in:\n{text}");
    hits[0]
}
