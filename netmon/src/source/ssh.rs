//! The SSH source: a host without netmon, sampled by running the real `iftop -t` there over
//! SSH and parsing its table. Interfaces come from `ip -o -d link` and `ip -o addr` there.

use super::{BoxFuture, Progress, ProgressFn, TrafficSource};
use crate::error::{RequestError, Result, SshError};
use crate::filter::Selection;
use crate::iftop;
use crate::interface::{InterfaceInfo, InterfaceKind};
use crate::measurement::Measurement;
use crate::report::{SourceKind, View};
use crate::ssh::{Login, Session};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Extra seconds iftop gets after the window to print its table: it prints at its first tick at
/// or after the window's end, and a tick needs a packet. Past them the call fails: a table that
/// did not come is not zero traffic.
pub const IFTOP_GRACE: u64 = 5;
/// Bound on listing interfaces once logged in.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows iftop prints (`-L`); more than any top list asks for.
const IFTOP_LINES: u32 = 500;
const LIST_MARK: &str = "@@netmon-addresses@@";

pub struct SshSource {
    /// What `data.host` says: the configured name, or the host as the caller gave it.
    pub label: String,
    pub login: Login,
    /// Run iftop through `sudo -n`.
    pub sudo: bool,
    /// One login serves the interface listing and the sample of the same call; the connection
    /// closes when the source is dropped.
    session: OnceCell<Session>,
}

impl SshSource {
    pub fn new(label: String, login: Login, sudo: bool) -> Self {
        Self {
            label,
            login,
            sudo,
            session: OnceCell::new(),
        }
    }

    async fn session(&self) -> Result<&Session> {
        Ok(self
            .session
            .get_or_try_init(|| Session::open(&self.login))
            .await?)
    }
}

fn kind_of(link_type: &str, kind: Option<&str>) -> InterfaceKind {
    match (link_type, kind) {
        ("loopback", _) => InterfaceKind::Loopback,
        (_, Some("veth")) => InterfaceKind::Veth,
        (_, Some("bridge")) => InterfaceKind::Bridge,
        (_, Some("vlan")) => InterfaceKind::Vlan,
        (_, Some("bond")) => InterfaceKind::Bond,
        (_, Some("tun" | "wireguard" | "ipip" | "gre" | "sit" | "ip6tnl" | "vti")) => {
            InterfaceKind::Tunnel
        }
        ("none", _) => InterfaceKind::Tunnel,
        ("ether", _) => InterfaceKind::Ethernet,
        _ => InterfaceKind::Other,
    }
}

/// Interfaces from `ip -o -d link show`, then [`LIST_MARK`], then `ip -o addr show`.
pub fn parse_ip_output(text: &str) -> Vec<InterfaceInfo> {
    let (links, addrs) = text.split_once(LIST_MARK).unwrap_or((text, ""));
    let mut list: Vec<InterfaceInfo> = Vec::new();
    for line in links.lines() {
        let segs: Vec<&str> = line.split('\\').map(str::trim).collect();
        let head: Vec<&str> = segs[0].split_whitespace().collect();
        let (Some(index), Some(name)) = (
            head.first()
                .and_then(|i| i.trim_end_matches(':').parse::<u32>().ok()),
            head.get(1),
        ) else {
            continue;
        };
        let name = name.trim_end_matches(':');
        let name = name.split_once('@').map_or(name, |(n, _)| n).to_string();
        let flags = head.get(2).copied().unwrap_or("");
        let after = |key: &str| {
            head.iter()
                .position(|w| *w == key)
                .and_then(|i| head.get(i + 1))
                .copied()
        };
        let link: Vec<&str> = segs
            .get(1)
            .map_or(Vec::new(), |s| s.split_whitespace().collect());
        let link_type = link
            .first()
            .and_then(|l| l.strip_prefix("link/"))
            .unwrap_or("");
        let kind = segs.get(2).and_then(|s| s.split_whitespace().next());
        list.push(InterfaceInfo {
            index,
            up: flags
                .trim_matches(|c| c == '<' || c == '>')
                .split(',')
                .any(|f| f == "UP"),
            operstate: after("state").unwrap_or("unknown").to_ascii_lowercase(),
            mac: link
                .get(1)
                .filter(|m| m.contains(':'))
                .map(|m| m.to_string()),
            mtu: after("mtu").and_then(|m| m.parse().ok()).unwrap_or(0),
            kind: kind_of(link_type, kind),
            addresses: Vec::new(),
            name,
        });
    }
    for line in addrs.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(index), Some(addr)) = (
            w.first()
                .and_then(|i| i.trim_end_matches(':').parse::<u32>().ok()),
            w.iter()
                .position(|t| *t == "inet" || *t == "inet6")
                .and_then(|i| w.get(i + 1)),
        ) else {
            continue;
        };
        let ip = addr
            .split('/')
            .next()
            .and_then(|a| a.parse::<IpAddr>().ok());
        if let (Some(ip), Some(i)) = (ip, list.iter_mut().find(|i| i.index == index)) {
            i.addresses.push(ip);
        }
    }
    list.sort_by_key(|i| i.index);
    list
}

/// The remote command: find iftop (non-root users lack /usr/sbin in PATH), then run it under a
/// time limit, through `sudo -n` when asked: iftop itself, so that a sudo rule naming only iftop
/// matches ([`SUDO_RULE`]). It runs on a pseudo-terminal ([`Session::exec`]), which makes its
/// stdout line-buffered, so `Listening on` arrives when iftop starts, not when it exits. A
/// watcher stops it as soon as the SSH channel goes away (stdin ends), so a cancelled call
/// leaves nothing running there. The channel's stdin is kept on fd 3 because a background
/// job's stdin is /dev/null. The watcher ignores SIGHUP: when the channel closes, the terminal
/// hangs up the shell's process group, which it is in, while `timeout` has a group of its own.
///
/// A selection goes to iftop's own `-f`, `-F` and `-G`, written from the parsed filter (only
/// words of the subset, addresses and numbers) and quoted, so nothing else reaches the shell.
pub fn iftop_command(
    iface: &str,
    window_s: u64,
    sudo: bool,
    selection: &Selection,
) -> Result<String, RequestError> {
    let quoted = shlex::try_quote(iface).map_err(|_| RequestError::InvalidInterfaceName {
        arg: "iface",
        name: iface.to_string(),
        reason: "it cannot be quoted for a shell",
    })?;
    let sudo = if sudo { "sudo -n " } else { "" };
    let mut narrow = String::new();
    if let Some(f) = &selection.filter {
        // The rendering has no quote or NUL, so quoting cannot fail.
        let pcap = f.to_pcap();
        narrow += &format!(" -f {}", shlex::try_quote(&pcap).unwrap_or_default());
    }
    if let Some(n) = &selection.net4 {
        narrow += &format!(" -F {n}");
    }
    if let Some(n) = &selection.net6 {
        narrow += &format!(" -G {n}");
    }
    Ok(format!(
        "export LC_ALL=C; \
         IFTOP=$(command -v iftop 2>/dev/null); \
         [ -f \"$IFTOP\" ] && [ -x \"$IFTOP\" ] || IFTOP=/usr/sbin/iftop; \
         [ -f \"$IFTOP\" ] && [ -x \"$IFTOP\" ] || {{ echo 'netmon: iftop: not found' >&2; exit 127; }}; \
         exec 3<&0; \
         timeout -k 1 {limit} {sudo}\"$IFTOP\" -t -s {window_s} -n -N -P -B -L {IFTOP_LINES}{narrow} -i {quoted} </dev/null & p=$!; \
         ( trap '' HUP; exec >/dev/null 2>&1; cat <&3; kill $p ) & \
         wait $p",
        limit = window_s + IFTOP_GRACE,
    ))
}

/// The sudoers rule README documents for `sudo = true`, with the remote user's name for
/// `USER`: iftop in text mode as root, nothing else. The tests install exactly this line.
pub const SUDO_RULE: &str = "USER ALL=(root) NOPASSWD: /usr/sbin/iftop -t *";

impl SshSource {
    fn classify(&self, out: &crate::ssh::Output) -> Option<SshError> {
        // On a terminal, iftop's and sudo's messages arrive on stdout.
        let both = format!("{}\n{}", out.stderr, out.stdout);
        let err = both.trim();
        let host = self.label.clone();
        if out.status == Some(127) {
            return Some(SshError::IftopMissing { host });
        }
        let denied = ["permission", "Operation not permitted", "sudo:"];
        if denied.iter().any(|d| err.contains(d)) {
            let detail = err
                .lines()
                .rev()
                .find(|l| denied.iter().any(|d| l.contains(d)))
                .unwrap_or(err)
                .to_string();
            return Some(SshError::IftopDenied {
                host,
                user: self.login.user.clone(),
                said: detail,
            });
        }
        if err.contains("No such device") {
            return Some(SshError::Remote {
                host,
                problem: "iftop says the interface does not exist (it vanished?); list the interfaces again".into(),
                source: None,
            });
        }
        None
    }
}

impl TrafficSource for SshSource {
    fn host(&self) -> &str {
        &self.label
    }

    fn kind(&self) -> SourceKind {
        SourceKind::SshIftop
    }

    fn interfaces(&self) -> BoxFuture<'_, Result<Vec<InterfaceInfo>>> {
        Box::pin(self.list())
    }

    fn sample<'a>(
        &'a self,
        iface: &'a InterfaceInfo,
        window: Duration,
        view: &'a View,
        progress: ProgressFn<'a>,
    ) -> BoxFuture<'a, Result<Measurement>> {
        Box::pin(self.run_iftop(iface, window, &view.selection, progress))
    }
}

impl SshSource {
    async fn list(&self) -> Result<Vec<InterfaceInfo>> {
        let session = self.session().await?;
        let cmd =
            format!("export LC_ALL=C; ip -o -d link show && echo {LIST_MARK} && ip -o addr show");
        let out = session
            .exec(&cmd, Instant::now() + LIST_TIMEOUT, false, |_, _| {})
            .await?;
        if out.status != Some(0) {
            return Err(SshError::Remote {
                host: self.label.clone(),
                problem: format!(
                    "listing interfaces with `ip` failed ({}); iproute2 must be installed there",
                    out.stderr.trim()
                ),
                source: None,
            }
            .into());
        }
        Ok(parse_ip_output(&out.stdout))
    }

    async fn run_iftop(
        &self,
        iface: &InterfaceInfo,
        window: Duration,
        selection: &Selection,
        progress: ProgressFn<'_>,
    ) -> Result<Measurement> {
        // iftop's -s takes whole seconds.
        let secs = window.as_secs_f64().ceil().max(1.0) as u64;
        let cmd = iftop_command(&iface.name, secs, self.sudo, selection)?;
        let m = self.iftop(iface, &cmd, secs, progress).await?;
        if selection.is_all() {
            return Ok(m);
        }
        Ok(Measurement {
            selection_applied: true,
            ..m
        }
        .with_note(format!(
            "iftop applied {} itself, so it counted only the matching packets: the interface's unfiltered totals are not known on this path",
            selection.describe()
        )))
    }

    async fn iftop(
        &self,
        iface: &InterfaceInfo,
        cmd: &str,
        secs: u64,
        progress: ProgressFn<'_>,
    ) -> Result<Measurement> {
        let session = self.session().await?;
        let deadline = Instant::now() + Duration::from_secs(secs + IFTOP_GRACE + 2);
        let window_secs = Duration::from_secs(secs);
        // The window runs from iftop's "Listening on" to the table's closing line; progress
        // starts when iftop does, not when the SSH login does.
        let listening: Mutex<Option<Instant>> = Mutex::new(None);
        let mut closed: Option<Instant> = None;
        let mut seen = String::new();
        let out = {
            let run = session.exec(cmd, deadline, true, |chunk, at| {
                // Look at the new text and the few bytes before it (a marker may straddle
                // chunks), not at all the output again.
                let from = seen.len().saturating_sub(16);
                seen.push_str(chunk);
                let fresh = &seen.as_bytes()[from..];
                let has = |m: &str| fresh.windows(m.len()).any(|w| w == m.as_bytes());
                let mut l = listening.lock().unwrap_or_else(|p| p.into_inner());
                if l.is_none() && has("Listening on") {
                    *l = Some(at);
                    progress(Progress::Started {
                        window: window_secs,
                    });
                }
                if closed.is_none() && has("\n====") {
                    closed = Some(at);
                }
            });
            tokio::pin!(run);
            let mut ticks = 0u64;
            loop {
                let start = *listening.lock().unwrap_or_else(|p| p.into_inner());
                let next = start.map(|s| s + Duration::from_secs(ticks + 1));
                tokio::select! {
                    o = &mut run => break o,
                    _ = tokio::time::sleep_until(next.unwrap_or(deadline)), if next.is_some() && ticks < secs => {
                        ticks += 1;
                        let elapsed = Duration::from_secs(ticks).min(window_secs);
                        progress(Progress::Elapsed { elapsed, window: window_secs });
                    }
                    // Before iftop listens, look again soon.
                    _ = tokio::time::sleep(Duration::from_millis(100)), if next.is_none() => {}
                }
            }
        };
        let listening = listening.into_inner().unwrap_or_else(|p| p.into_inner());
        let out = out?;
        let table = iftop::parse(&out.stdout).map_err(|e| SshError::Remote {
            host: self.label.clone(),
            problem: "iftop printed something netmon cannot read".into(),
            source: Some(Box::new(e)),
        })?;
        let Some(table) = table else {
            if let Some(e) = self.classify(&out) {
                return Err(e.into());
            }
            if out.timed_out || out.status == Some(124) || out.status == Some(137) {
                // iftop prints only on a tick, and a tick needs a packet: none came after the
                // window, or the table was still on its way.
                return Err(SshError::NoTable {
                    host: self.label.clone(),
                    iface: iface.name.clone(),
                    window: secs,
                    waited: secs + IFTOP_GRACE,
                }
                .into());
            }
            return Err(SshError::Remote {
                host: self.label.clone(),
                problem: format!(
                    "iftop exited ({:?}) without a table: {}",
                    out.status,
                    out.stderr.trim()
                ),
                source: None,
            }
            .into());
        };
        let window_ns = match (listening, closed) {
            (Some(a), Some(b)) if b > a => (b - a).as_nanos() as u64,
            _ => window_secs.as_nanos() as u64,
        };
        Ok(iftop::measurement(&table, window_ns, &iface.addresses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real output (iproute2 6.1, Debian 12) from a namespace with a veth and a bridge.
    const IP: &str = r"1: lo: <LOOPBACK> mtu 65536 qdisc noop state DOWN mode DEFAULT group default qlen 1000\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0  allmulti 0 minmtu 0 maxmtu 0 addrgenmode eui64 numtxqueues 1 numrxqueues 1 gso_max_size 65536 gso_max_segs 65535 tso_max_size 524280 tso_max_segs 65535 gro_max_size 65536 
2: tv0@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN mode DEFAULT group default qlen 1000\    link/ether a6:95:e9:01:6f:64 brd ff:ff:ff:ff:ff:ff link-netns ipt2 promiscuity 0  allmulti 0 minmtu 68 maxmtu 65535 \    veth addrgenmode eui64 numtxqueues 2 numrxqueues 2 gso_max_size 65536 gso_max_segs 65535 tso_max_size 524280 tso_max_segs 65535 gro_max_size 65536 
3: br0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000\    link/ether 6e:f1:c4:20:b9:45 brd ff:ff:ff:ff:ff:ff promiscuity 0  allmulti 0 minmtu 68 maxmtu 65535 \    bridge forward_delay 1500 hello_time 200 max_age 2000
@@netmon-addresses@@
2: tv0    inet 10.200.7.1/24 scope global tv0\       valid_lft forever preferred_lft forever
2: tv0    inet6 fd00:7::1/64 scope global nodad \       valid_lft forever preferred_lft forever
";

    #[test]
    fn interfaces_from_ip() {
        let l = parse_ip_output(IP);
        let names: Vec<&str> = l.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "tv0", "br0"]);
        assert_eq!(l[0].kind, InterfaceKind::Loopback);
        assert!(!l[0].up);
        let v = &l[1];
        assert_eq!(
            (v.index, v.kind, v.up, v.mtu),
            (2, InterfaceKind::Veth, true, 1500)
        );
        assert_eq!(v.operstate, "down");
        assert_eq!(v.mac.as_deref(), Some("a6:95:e9:01:6f:64"));
        assert_eq!(
            v.addresses,
            [
                "10.200.7.1".parse::<IpAddr>().unwrap(),
                "fd00:7::1".parse().unwrap()
            ]
        );
        assert_eq!(l[2].kind, InterfaceKind::Bridge);
        assert!(parse_ip_output("garbage\n\\\n: :\n").is_empty());
    }

    #[test]
    fn the_interface_is_quoted_and_iftop_bounded() {
        let all = Selection::default();
        let c = iftop_command("eth0", 5, false, &all).unwrap();
        assert!(c.contains("timeout -k 1 10 \"$IFTOP\" -t -s 5"), "{c}");
        assert!(c.contains("-i eth0 </dev/null & p=$!"), "{c}");
        let c = iftop_command("a b", 5, true, &all).unwrap();
        // sudo runs iftop itself, with `-t` first: what the documented rule allows.
        assert!(
            c.contains("sudo -n \"$IFTOP\" -t -s 5 ") && c.contains("-i 'a b' </dev/null &"),
            "{c}"
        );
        assert!(!c.contains("stdbuf"), "{c}");
        assert!(SUDO_RULE.ends_with("/usr/sbin/iftop -t *"));
    }

    #[test]
    fn a_selection_becomes_iftops_own_flags_quoted() {
        let sel = Selection {
            filter: crate::filter::parse("udp and (dst port 5201 or src net 10.0.0.0/8)").unwrap(),
            net4: crate::filter::Net::parse("10.0.0.0/8"),
            net6: crate::filter::Net::parse("fd00::/8"),
        };
        let c = iftop_command("eth0", 5, false, &sel).unwrap();
        assert!(
            c.contains(
                "-L 500 -f 'udp and (dst port 5201 or src net 10.0.0.0/8)' -F 10.0.0.0/8 -G fd00::/8 -i eth0 "
            ),
            "{c}"
        );
    }
}
