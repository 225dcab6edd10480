//! What `cargo xtask dist` makes (`cargo xtask test` runs it first): the tarball holds a static
//! netmon that runs, with its deploy files, completions and man pages; the .deb passes lintian,
//! installs /usr/bin/netmon with its three capabilities for the netmon group, counts real traffic
//! as an unprivileged member of that group, and removes cleanly.

use netmon_tests::{ADDR_B4, TempDir, VethPair, in_ns, sh, u};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dist")
}

/// The one file in target/dist whose name ends with `suffix`.
fn artifact(suffix: &str) -> PathBuf {
    let dir = dist_dir();
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask dist` first", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one *{suffix} in {}: {found:?}",
        dir.display()
    );
    found[0].clone()
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_tarball_holds_a_static_netmon_its_deploy_files_completions_and_man_pages() {
    let tarball = artifact(".tar.gz");
    let dir = TempDir::new("nmdist");
    sh(Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir.0));
    let name = tarball
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".tar.gz")
        .to_string();
    let root = dir.0.join(&name);
    for f in [
        "netmon",
        "README.md",
        "netmon.example.toml",
        "deploy/netmon-agent.service",
        "deploy/daemonset.yaml",
        "deploy/Containerfile",
        "deploy/grafana-dashboard.json",
        "completions/netmon.bash",
        "completions/_netmon",
        "completions/netmon.fish",
        "man/netmon.1",
        "man/netmon-traffic.1",
        "man/netmon-agent.1",
        "man/netmon-serve.1",
    ] {
        let p = root.join(f);
        assert!(
            p.metadata().is_ok_and(|m| m.len() > 0),
            "{f} missing or empty in {name}"
        );
    }
    let bin = root.join("netmon");
    let kind = text(&sh(Command::new("file").arg(&bin)));
    assert!(
        kind.contains("static-pie linked") || kind.contains("statically linked"),
        "{kind}"
    );
    assert!(
        kind.contains("stripped") && !kind.contains("not stripped"),
        "{kind}"
    );
    let version = text(&sh(Command::new(&bin).arg("--version")));
    assert!(
        name.contains(version.split_whitespace().nth(1).unwrap()),
        "{version} vs {name}"
    );
    // The completions load in bash and offer netmon's commands and iftop's flags.
    let bash = text(&sh(Command::new("bash").arg("-c").arg(format!(
        "source {}; complete -p netmon; COMP_WORDS=(netmon traffic -); COMP_CWORD=2; _netmon netmon - traffic; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        root.join("completions/netmon.bash").display()
    ))));
    assert!(bash.contains("-F _netmon netmon"), "{bash}");
    for flag in ["--filter", "--no-dns", "--net6"] {
        assert!(bash.contains(flag), "{flag} not offered: {bash}");
    }
    // The man page renders, with the flags' help.
    let rendered = text(&sh(Command::new("man")
        .arg("-l")
        .arg(root.join("man/netmon-traffic.1"))
        .env("MANWIDTH", "100")));
    // man overstrikes bold and underlined text (c BACKSPACE c): keep what is left on paper.
    let mut page = String::new();
    for c in rendered.chars() {
        if c == '\u{8}' {
            page.pop();
        } else {
            page.push(c);
        }
    }
    assert!(
        page.contains("netmon-traffic") && page.contains("--filter"),
        "{page}"
    );
}

/// Removes the package on drop, so a failed test leaves nothing installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-r", "netmon"]).status();
    }
}

#[test]
fn the_deb_passes_lintian_installs_with_three_capabilities_counts_as_a_group_member_and_removes() {
    let deb = artifact(".deb");
    // No errors (its warnings: no bug closed by an initial upload, and lintian taking a
    // static-pie executable for a library).
    let lint = Command::new("lintian")
        .args(["--fail-on", "error"])
        .arg(&deb)
        .output()
        .expect("lintian (apt-get install lintian)");
    eprintln!("lintian:\n{}", text(&lint));
    assert!(
        lint.status.success(),
        "lintian found errors:\n{}",
        text(&lint)
    );

    let already = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "netmon"])
        .output()
        .expect("dpkg-query");
    assert!(
        !text(&already).contains("install ok installed"),
        "a netmon package is already installed here; not touching it"
    );
    sh(Command::new("dpkg").arg("-i").arg(&deb));
    let _installed = Installed;

    let caps = text(&sh(Command::new("getcap").arg("/usr/bin/netmon")));
    for cap in ["cap_net_admin", "cap_perfmon", "cap_bpf"] {
        assert!(caps.contains(cap), "{caps}");
    }
    assert!(caps.trim_end().ends_with("=ep"), "{caps}");
    let mode = text(&sh(Command::new("stat").args([
        "-c",
        "%a %U %G",
        "/usr/bin/netmon",
    ])));
    assert_eq!(mode.trim(), "750 root netmon");
    let unit = std::fs::read_to_string("/lib/systemd/system/netmon-agent.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/netmon agent"), "{unit}");
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/netmon-agent.service").exists(),
        "the unit must not be enabled"
    );
    for f in [
        "/usr/share/bash-completion/completions/netmon",
        "/usr/share/zsh/vendor-completions/_netmon",
        "/usr/share/fish/vendor_completions.d/netmon.fish",
        "/usr/share/man/man1/netmon.1.gz",
        "/usr/share/man/man1/netmon-traffic.1.gz",
        "/usr/share/doc/netmon/examples/grafana-dashboard.json",
    ] {
        assert!(Path::new(f).exists(), "{f}");
    }

    // nobody in the netmon group (runuser, so nothing of root's stays): the file capabilities
    // are all it has.
    let mut list = Command::new("runuser");
    list.args(["-u", "nobody", "-G", "netmon", "--"]).args([
        "/usr/bin/netmon",
        "interfaces",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&sh(&mut list).stdout).unwrap();
    assert_eq!(v["success"], true, "{v}");

    let pair = VethPair::new(false);
    let mut traffic = in_ns(&pair.ns_a, "runuser");
    traffic
        .args(["-u", "nobody", "-G", "netmon", "--"])
        .args([
            "/usr/bin/netmon",
            "traffic",
            "-i",
            &pair.dev_a,
            "-s",
            "3",
            "-P",
            "-n",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = netmon_tests::Spawned(traffic.spawn().expect("netmon traffic"));
    let rest = netmon_tests::wait_attached(&mut child);
    sh(in_ns(&pair.ns_a, "ping").args(["-q", "-c", "3", "-i", "0.2", ADDR_B4]));
    let v = netmon_tests::finish_json(child, rest);
    let icmp = v["data"]["top_connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["protocol"] == "icmp")
        .unwrap_or_else(|| panic!("no ping row: {v:#}"))
        .clone();
    assert_eq!(
        (u(&icmp["tx_packets"]), u(&icmp["rx_packets"])),
        (3, 3),
        "{icmp}"
    );
    assert_eq!(
        (u(&icmp["tx_bytes"]), u(&icmp["rx_bytes"])),
        (252, 252),
        "3 × 84 B each way"
    );

    // Outside the group, the binary does not run at all.
    let denied = Command::new("runuser")
        .args(["-u", "nobody", "--", "/usr/bin/netmon", "interfaces"])
        .output()
        .expect("runuser");
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );

    sh(Command::new("dpkg").args(["-r", "netmon"]));
    assert!(!Path::new("/usr/bin/netmon").exists());
    assert!(!Path::new("/lib/systemd/system/netmon-agent.service").exists());
    assert!(!Path::new("/usr/share/man/man1/netmon.1.gz").exists());
}

/// The Debian mirror this machine's apt uses (deb822 or one-line sources), else Debian's own.
fn debian_mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            if e.path()
                .extension()
                .is_some_and(|x| x == "sources" || x == "list")
            {
                texts.extend(std::fs::read_to_string(e.path()));
            }
        }
    }
    texts.extend(std::fs::read_to_string("/etc/apt/sources.list"));
    for t in &texts {
        for line in t.lines() {
            let uri = line.strip_prefix("URIs:").or_else(|| {
                line.strip_prefix("deb ")
                    .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http")))
            });
            if let Some(u) = uri.map(str::trim)
                && u.starts_with("http")
                && !u.contains("security")
            {
                return u.split_whitespace().next().unwrap_or(u).to_string();
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

/// A podman container booted with systemd, and its image; both removed on drop.
struct Booted {
    name: String,
    image: String,
}

impl Booted {
    fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("podman")
            .args(["exec", &self.name])
            .args(args)
            .output()
            .expect("podman exec")
    }

    fn must(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in the container: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text(&out)
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// The .deb as a user installs it, under a real systemd: a Debian 12 tree (debootstrap,
/// minbase) booted in a podman container whose network namespace is a test namespace, the
/// package installed with dpkg, and `systemctl enable --now netmon-agent` with the unit exactly
/// as packaged. It must start (it failed with 203/EXEC: the binary is 0750 root:netmon and the
/// unit's dynamic user was not in the group), count what the kernel counts on the namespace's
/// veth, and, inside the unit's sandbox, attach its cgroup programs and name the process behind
/// a socket (over /mcp, with the token from /etc/netmon/agent.env).
#[test]
fn the_debs_agent_starts_counts_and_attributes_under_a_real_systemd() {
    const TOKEN: &str = "5b1f0c9e7d3a2b4c6e8f0a1b3c5d7e9f";
    let deb = artifact(".deb");
    let tree = TempDir::new("nmdeb");
    let root = tree.path("root");
    sh(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus,adduser,libcap2-bin",
            "bookworm",
        ])
        .arg(&root)
        .arg(debian_mirror()));
    let booted = Booted {
        name: netmon_tests::unique("nmsysd"),
        image: format!("localhost/{}", netmon_tests::unique("nmsysd")),
    };
    sh(Command::new("sh").arg("-c").arg(format!(
        "tar -C {} -c . | podman import - {}",
        root.display(),
        booted.image
    )));
    let pair = VethPair::new(false);
    pair.static_neighbours();
    sh(Command::new("podman").args([
        "--runtime",
        "runc",
        "run",
        "-d",
        "--privileged",
        "--systemd=always",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        "--network",
        &format!("ns:/run/netns/{}", pair.ns_a),
        "-v",
        &format!("{}:/dist:ro", dist_dir().display()),
        "--name",
        &booted.name,
        &booted.image,
        "/sbin/init",
    ]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = text(&booted.exec(&["systemctl", "is-system-running"]));
        if matches!(state.trim(), "running" | "degraded") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "systemd did not come up: {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let deb_name = deb.file_name().unwrap().to_string_lossy().into_owned();
    booted.must(&["dpkg", "-i", &format!("/dist/{deb_name}")]);
    booted.must(&[
        "sh",
        "-c",
        &format!(
            "mkdir -p /etc/netmon && umask 077 && echo NETMON_MCP_TOKEN={TOKEN} > /etc/netmon/agent.env"
        ),
    ]);
    pair.wait_quiet();
    let before = pair.counters_a();
    booted.must(&["systemctl", "enable", "--now", "netmon-agent"]);
    let health = |what: &str| {
        let (code, body) = netmon_tests::mcp::curl(&pair.ns_a, &["http://127.0.0.1:9465/health"]);
        assert_eq!(code, 200, "{what}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let active = text(&booted.exec(&["systemctl", "is-active", "netmon-agent"]));
        let (code, body) = netmon_tests::mcp::curl(&pair.ns_a, &["http://127.0.0.1:9465/health"]);
        // Up, and past its first collection.
        if active.trim() == "active" && code == 200 && body.contains("\"collections\"") {
            break;
        }
        if std::time::Instant::now() > deadline {
            let status = booted.exec(&["systemctl", "status", "--no-pager", "netmon-agent"]);
            panic!("the agent did not start:\n{}", text(&status));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let h = health("started");
    assert_eq!(h["interfaces"][0]["name"], pair.dev_a.as_str(), "{h}");
    assert_eq!(h["mcp"], true, "the token from agent.env: {h}");

    // What it counts is the kernel's count.
    sh(in_ns(&pair.ns_b, "ping").args([
        "-q",
        "-c",
        "5",
        "-i",
        "0.2",
        "-s",
        "1000",
        netmon_tests::ADDR_A4,
    ]));
    pair.wait_quiet();
    let kernel = pair.counters_a().since(&before);
    let seen = netmon_tests::agent::collections(&h);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while netmon_tests::agent::collections(&health("ticking")) < seen + 3 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, metrics) = netmon_tests::mcp::curl(&pair.ns_a, &["http://127.0.0.1:9465/metrics"]);
    assert_eq!(code, 200);
    let dev = pair.dev_a.as_str();
    let get = |name, d| {
        netmon_tests::agent::sample(&metrics, name, &[("interface", dev), ("direction", d)]) as u64
    };
    eprintln!(
        "kernel {kernel:?}; agent rx {} B tx {} B",
        get("netmon_tc_bytes_total", "ingress"),
        get("netmon_tc_bytes_total", "egress")
    );
    assert_eq!(get("netmon_tc_bytes_total", "ingress"), kernel.rx_bytes);
    assert_eq!(get("netmon_tc_bytes_total", "egress"), kernel.tx_bytes);
    assert_eq!(get("netmon_tc_packets_total", "ingress"), kernel.rx_packets);
    assert_eq!(get("netmon_tc_packets_total", "egress"), kernel.tx_packets);
    assert_eq!(kernel.rx_packets, 5);

    // Inside the sandbox the cgroup programs attached, and a socket's process is named: a bash
    // in the container sends five datagrams.
    let journal = text(&booted.exec(&["journalctl", "-u", "netmon-agent", "--no-pager"]));
    assert!(
        !journal.contains("will not be attributed"),
        "attribution is off under the unit's sandbox:\n{journal}"
    );
    let plan = serde_json::json!([{"op": "wait", "label": "ready"}, {"op": "call", "label": "who", "tool": "get_interface_traffic",
        "args": {"iface": pair.dev_a, "sample_seconds": 3, "group_by": "process"}}]);
    let mut client = netmon_tests::mcp::PyClient::http(
        &pair.ns_a,
        "http://127.0.0.1:9465/mcp",
        Some(TOKEN),
        netmon_tests::mcp::Handshake::Initialize,
        &plan,
    );
    client.until("waiting", std::time::Duration::from_secs(30));
    // A receiver on B, so no ICMP error refuses the connected socket's later datagrams.
    let receiver = netmon_tests::Spawned(
        in_ns(&pair.ns_b, "python3")
            .args([
                "-c",
                "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('10.200.1.2', 9999)); s.settimeout(20); print('ready', flush=True); [s.recv(100) for _ in range(5)]",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 receiver"),
    );
    netmon_tests::wait_udp(&pair.ns_b, "9999");
    // bash stays alive (bounded) after sending, so its host PID can be looked up: the kernel
    // names a socket's creator by its PID in the host's namespace, not the container's.
    booted.must(&[
        "sh",
        "-c",
        "bash -c 'echo $$ > /run/sender.pid; exec 3<>/dev/udp/10.200.1.2/9999; for i in 1 2 3 4 5; do echo hello >&3; done; exec sleep 30' >/dev/null 2>&1 &",
    ]);
    let mut inner = String::new();
    for _ in 0..50 {
        inner = text(&booted.exec(&["cat", "/run/sender.pid"]));
        if !inner.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let init = text(&sh(Command::new("podman").args([
        "inspect",
        "-f",
        "{{.State.Pid}}",
        &booted.name,
    ])));
    let pid = host_pid(init.trim(), inner.trim())
        .unwrap_or_else(|| panic!("no host PID for the container's {inner}"));
    drop(receiver);
    // The agent answers from its history, which ends at its last tick: two more ticks, and the
    // datagrams are in it.
    let seen = netmon_tests::agent::collections(&health("sent"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while netmon_tests::agent::collections(&health("ticking")) < seen + 2 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    client.go();
    let events = client.until("result", std::time::Duration::from_secs(30));
    let r = events.last().expect("result");
    assert_eq!(r["is_error"], false, "{r:#}");
    let rows = r["structured"]["data"]["top_connections"]
        .as_array()
        .unwrap();
    let bash = rows
        .iter()
        .find(|row| row["process"]["pid"] == pid)
        .unwrap_or_else(|| panic!("no row for bash (pid {pid}) in {rows:#?}"));
    assert_eq!(bash["process"]["comm"], "bash", "{bash}");
    assert_eq!(bash["container"]["runtime"], "podman", "{bash}");
    assert_eq!(u(&bash["tx_packets"]), 5, "{bash}");
    assert_eq!(u(&bash["tx_bytes"]), 5 * (20 + 8 + 6), "{bash}");
}

/// The host's PID of the process whose PID is `inner` in the PID namespace of the host process
/// `init` (a container's init): the one in that namespace whose `NSpid` ends with `inner`.
fn host_pid(init: &str, inner: &str) -> Option<u64> {
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok()?;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        if std::fs::read_link(e.path().join("ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let ids = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default();
        if ids.len() > 1 && ids.last() == Some(&inner) {
            return ids.first()?.parse().ok();
        }
    }
    None
}
