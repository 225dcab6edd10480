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
