//! Real MCP clients for the tests: the Python `mcp` SDK (through `tests/mcp/client.py`) and the
//! MCP Inspector CLI, both installed by `cargo xtask setup` under [`clients_dir`], and netmon's
//! HTTP server started in a namespace.

use crate::{ADDR_A4, ADDR_A6, Spawned, VethPair, in_ns, iperf3_client, netmon_bin, sh};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where `cargo xtask setup` installs the client packages (`venv/`, `npm/`).
pub fn clients_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NETMON_TEST_CLIENTS") {
        return d.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/netmon-test-clients")
}

fn python() -> PathBuf {
    let p = clients_dir().join("venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run `cargo xtask setup` (it installs the Python mcp SDK)",
        p.display()
    );
    p
}

fn driver() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mcp/client.py")
}

/// A pipe drained into a shared string by a thread, so the child never blocks on it.
pub type Log = Arc<Mutex<String>>;

pub fn drain_pipe(mut r: impl Read + Send + 'static) -> Log {
    let log: Log = Arc::default();
    let out = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    log
}

pub fn read_log(log: &Log) -> String {
    log.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

#[derive(Clone, Copy, Debug)]
pub enum Handshake {
    /// `initialize` (protocol 2025-11-25 and earlier).
    Initialize,
    /// `server/discover` (protocol 2026-07-28).
    Discover,
}

impl Handshake {
    fn arg(self) -> &'static str {
        match self {
            Handshake::Initialize => "initialize",
            Handshake::Discover => "discover",
        }
    }
}

/// One run of the Python client: its events as they arrive.
pub struct PyClient {
    child: Spawned,
    events: Receiver<Value>,
    stdin: Option<ChildStdin>,
    /// The client's stderr; over stdio the server's stderr lands here too.
    pub log: Log,
}

impl PyClient {
    fn spawn(ns: &str, transport: &[String], handshake: Handshake, plan: &Value) -> Self {
        let mut cmd = in_ns(ns, python().to_str().expect("utf-8 path"));
        cmd.arg(driver())
            .args(transport)
            .args(["--handshake", handshake.arg(), "--plan", &plan.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = Spawned(cmd.spawn().expect("spawning the Python MCP client"));
        let stdout = child.0.stdout.take().expect("piped stdout");
        let log = drain_pipe(child.0.stderr.take().expect("piped stderr"));
        let stdin = child.0.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"event": "raw", "line": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            events: rx,
            stdin,
            log,
        }
    }

    /// The client spawns `netmon serve` itself, inside `ns`, and talks to it over stdio. The
    /// server's PID is written to `pidfile`.
    pub fn stdio(ns: &str, pidfile: &std::path::Path, handshake: Handshake, plan: &Value) -> Self {
        Self::stdio_under(ns, pidfile, "", handshake, plan)
    }

    /// As [`Self::stdio`], with `serve_args` after `netmon serve` (flags, no shell quoting).
    pub fn stdio_with(
        ns: &str,
        pidfile: &std::path::Path,
        serve_args: &[&str],
        plan: &Value,
    ) -> Self {
        let server = format!(
            "echo $$ > {}; exec {} serve {}",
            pidfile.display(),
            netmon_bin().display(),
            serve_args.join(" ")
        );
        let cmd = serde_json::json!(["sh", "-c", server]);
        Self::spawn(
            ns,
            &["--stdio".into(), cmd.to_string()],
            Handshake::Initialize,
            plan,
        )
    }

    /// As [`Self::stdio`], with netmon started through `wrapper` (e.g. a `setpriv` command line
    /// that drops privileges; it must exec its argument).
    pub fn stdio_under(
        ns: &str,
        pidfile: &std::path::Path,
        wrapper: &str,
        handshake: Handshake,
        plan: &Value,
    ) -> Self {
        let server = format!(
            "echo $$ > {}; exec {wrapper} {} serve",
            pidfile.display(),
            netmon_bin().display()
        );
        let cmd = serde_json::json!(["sh", "-c", server]);
        Self::spawn(ns, &["--stdio".into(), cmd.to_string()], handshake, plan)
    }

    /// The client connects to `url` from inside `ns`.
    pub fn http(
        ns: &str,
        url: &str,
        token: Option<&str>,
        handshake: Handshake,
        plan: &Value,
    ) -> Self {
        let mut t = vec!["--url".to_string(), url.to_string()];
        if let Some(token) = token {
            t.extend(["--token".to_string(), token.to_string()]);
        }
        Self::spawn(ns, &t, handshake, plan)
    }

    /// The next event, or a panic with the client's stderr if none comes within `timeout`.
    pub fn next(&self, timeout: Duration) -> Value {
        match self.events.recv_timeout(timeout) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!(
                "no MCP client event within {timeout:?}; client stderr:\n{}",
                read_log(&self.log)
            ),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the MCP client exited; stderr:\n{}", read_log(&self.log))
            }
        }
    }

    /// Events up to and including the first one of kind `event` (bounded by `timeout`).
    pub fn until(&self, event: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.next(left.max(Duration::from_millis(1)));
            let done = v["event"] == event;
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    /// Lets a `wait` step go on.
    pub fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("client stdin");
        stdin.write_all(b"go\n").expect("writing to the client");
        stdin.flush().expect("flushing the client's stdin");
    }

    /// Waits (bounded) for the client to exit and returns its exit status.
    pub fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.0.try_wait().expect("wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "MCP client still running after {timeout:?}; stderr:\n{}",
                read_log(&self.log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `netmon serve --http ...` running inside a namespace.
pub struct HttpServer {
    pub child: Spawned,
    /// `http://ADDR:PORT/mcp`, as the server printed it.
    pub url: String,
    pub log: Log,
}

impl HttpServer {
    /// Starts the server with `args` after `serve` and waits (bounded) until it listens.
    pub fn start(ns: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = in_ns(ns, netmon_bin().to_str().expect("utf-8 path"));
        cmd.arg("serve")
            .args(args)
            .env_remove(netmon::secret::TOKEN_ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = Spawned(cmd.spawn().expect("spawning netmon serve --http"));
        let log = drain_pipe(child.0.stderr.take().expect("piped stderr"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = read_log(&log);
            if let Some(url) = text
                .split_whitespace()
                .find(|w| w.starts_with("http://") && w.ends_with("/mcp"))
            {
                return Self {
                    url: url.to_string(),
                    child,
                    log,
                };
            }
            if let Some(status) = child.0.try_wait().expect("wait") {
                panic!("netmon serve exited with {status} before listening:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "netmon serve did not listen within 30 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` of the server.
    pub fn authority(&self) -> &str {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
    }
}

/// Runs the MCP Inspector CLI inside `ns` against `target` (a command line or a URL plus
/// `--transport http`) and returns its JSON output.
pub fn inspector(ns: &str, args: &[&str]) -> Value {
    let dir = clients_dir().join("npm");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/inspector")
            .exists(),
        "the MCP Inspector is missing under {}: run `cargo xtask setup`",
        dir.display()
    );
    let out = in_ns(ns, "timeout")
        .args([
            "90",
            "npx",
            "--no-install",
            "@modelcontextprotocol/inspector",
            "--cli",
        ])
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("running the MCP Inspector CLI");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "inspector {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("inspector printed no JSON ({e}):\n{stdout}"))
}

/// One HTTP request with curl from inside `ns`: (status, body).
pub fn curl(ns: &str, args: &[&str]) -> (u16, String) {
    let out = in_ns(ns, "curl")
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = code
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl {args:?}: no status in {text:?}"));
    (code, body.to_string())
}

pub fn iperf3(ns: &str, args: &[String]) -> Value {
    iperf3_client(ns, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The structured result of a `result` event, after checking that its text content is the same
/// JSON and that `isError` agrees with `success`.
pub fn structured(ev: &Value) -> &Value {
    assert_eq!(ev["event"], "result", "{ev:#}");
    let s = &ev["structured"];
    let text: Value = serde_json::from_str(ev["text"][0].as_str().expect("text content"))
        .expect("text content is JSON");
    assert_eq!(&text, s, "text and structured content differ");
    assert_eq!(
        ev["is_error"].as_bool(),
        s["success"].as_bool().map(|ok| !ok),
        "isError must be the opposite of success: {ev:#}"
    );
    s
}

pub fn last<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

/// The two tools, in order, with the contract's parameters, output schemas and annotations.
pub fn check_tools(tools: &Value) {
    let tools = tools.as_array().expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["list_network_interfaces", "get_interface_traffic"]);
    for t in tools {
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t:#}");
        assert_eq!(t["annotations"]["idempotentHint"], true, "{t:#}");
        assert_eq!(t["outputSchema"]["type"], "object", "{t:#}");
        let props = &t["inputSchema"]["properties"];
        assert_eq!(props["host"]["default"], "localhost");
        assert_eq!(props["port"]["default"], 22);
        assert_eq!(props["username"]["default"], "root");
        assert_eq!(props["password"]["type"], "string");
    }
    let traffic = &tools[1]["inputSchema"];
    assert_eq!(traffic["required"], json!(["iface"]));
    let secs = &traffic["properties"]["sample_seconds"];
    let num = |k: &str| {
        secs[k]
            .as_f64()
            .unwrap_or_else(|| panic!("sample_seconds.{k}: {secs}"))
    };
    assert_eq!(
        (num("default"), num("minimum"), num("maximum")),
        (5.0, 3.0, 30.0)
    );
    let out = &tools[1]["outputSchema"]["properties"];
    assert!(out["success"].is_object() && out["message"].is_object() && out["data"].is_object());
}

/// `list_network_interfaces` for namespace A: lo and its veth end, with details from /sys.
pub fn check_interfaces(s: &Value, pair: &VethPair) {
    assert_eq!(s["success"], true, "{s:#}");
    assert_eq!(s["message"], "found 2 interfaces");
    let d = &s["data"];
    assert_eq!(d["host"], "localhost");
    assert_eq!(d["interfaces"], json!(["lo", pair.dev_a]));
    let sys = |f: &str| {
        let out = sh(in_ns(&pair.ns_a, "cat").arg(format!("/sys/class/net/{}/{f}", pair.dev_a)));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let veth = &d["details"][1];
    assert_eq!(veth["name"], pair.dev_a.as_str());
    assert_eq!(veth["index"].to_string(), sys("ifindex"));
    assert_eq!(veth["mac"], sys("address").as_str());
    assert_eq!(veth["mtu"].to_string(), sys("mtu"));
    assert_eq!(veth["kind"], "veth");
    assert_eq!(veth["up"], true);
    let addrs = veth["addresses"].as_array().unwrap();
    assert!(
        addrs.contains(&json!(ADDR_A4)) && addrs.contains(&json!(ADDR_A6)),
        "{addrs:?}"
    );
    assert_eq!(d["details"][0]["kind"], "loopback");
}

/// One notification a second, from 0 to the window, increasing, each with the window as total.
pub fn check_progress(events: &[Value], label: &str, window: f64) {
    let p: Vec<f64> = events
        .iter()
        .filter(|e| e["event"] == "progress" && e["label"] == label)
        .map(|e| {
            assert_eq!(e["total"].as_f64(), Some(window), "{e}");
            e["progress"].as_f64().unwrap()
        })
        .collect();
    let want: Vec<f64> = (0..=window as u32).map(f64::from).collect();
    assert_eq!(p, want, "progress notifications");
}
