//! Raw requests (CLI flags, MCP arguments) turned into validated, typed requests. Pure.

use crate::error::{ArgNames, RequestError};
use crate::filter::{self, Net, Selection};
use crate::rank::{GroupBy, SortKey};
use crate::secret::Secret;
use std::time::Duration;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFACE_LEN: usize = 15;

/// An interface name that is safe to pass anywhere: at most 15 bytes of `[A-Za-z0-9._@-]`, not
/// starting with `-`. It is checked against the host's interfaces separately.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IfaceName(String);

impl IfaceName {
    /// `arg` names where the name came from, for the message.
    pub fn parse(name: &str, arg: &'static str) -> Result<Self, RequestError> {
        let bad = |reason| RequestError::InvalidInterfaceName {
            arg,
            name: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("it is empty"));
        }
        if name.len() > MAX_IFACE_LEN {
            return Err(bad("Linux interface names are at most 15 bytes"));
        }
        if name.starts_with('-') {
            return Err(bad("it must not start with '-'"));
        }
        if name == "." || name == ".." {
            return Err(bad("'.' and '..' are not interface names"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
        {
            return Err(bad("use only letters, digits and . _ - @"));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IfaceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sampling window within the range the caller allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleWindow(Duration);

impl SampleWindow {
    /// The CLI's range; the MCP tools use the contract's 3–30 s.
    pub const CLI_RANGE: (u64, u64) = (1, 3600);

    pub fn from_seconds(
        seconds: f64,
        (min, max): (u64, u64),
        arg: &'static str,
    ) -> Result<Self, RequestError> {
        if !seconds.is_finite() || seconds < min as f64 || seconds > max as f64 {
            return Err(RequestError::BadWindow {
                arg,
                got: format!("{seconds} s"),
                min,
                max,
            });
        }
        Ok(Self(Duration::from_secs_f64(seconds)))
    }

    pub fn duration(&self) -> Duration {
        self.0
    }
}

/// Which machine a request is about.
#[derive(Debug)]
pub enum Target {
    /// This machine.
    Local,
    /// Another machine, reached through its netmon agent or over SSH.
    Remote(Remote),
}

/// A remote host as a caller named it, with the login it offered.
#[derive(Debug)]
pub struct Remote {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Option<Secret>,
}

impl Target {
    pub const DEFAULT_PORT: u16 = 22;
    pub const DEFAULT_USER: &str = "root";

    /// `host` empty, `localhost`, `127.0.0.1` or `::1` is this machine.
    pub fn new(host: &str, port: u16, username: String, password: Option<Secret>) -> Self {
        let local = matches!(
            host.trim().to_ascii_lowercase().as_str(),
            "" | "localhost" | "127.0.0.1" | "::1" | "[::1]"
        );
        if local {
            return Target::Local;
        }
        Target::Remote(Remote {
            host: host.trim().to_string(),
            port,
            username,
            password,
        })
    }
}

/// Which names a result carries beside the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Naming {
    /// Host names by reverse DNS (and /etc/hosts); iftop's `-n` turns them off.
    pub hosts: bool,
    /// Service names from /etc/services; iftop's `-N` turns them off.
    pub services: bool,
}

impl Naming {
    /// iftop's default: both on.
    pub const ALL: Self = Self {
        hosts: true,
        services: true,
    };
    pub const NONE: Self = Self {
        hosts: false,
        services: false,
    };
}

/// A network for `-F` (`want_v6` false) or `-G`: `N/len`, or `N/mask` for IPv4 as iftop also
/// takes.
pub fn network(text: &str, want_v6: bool, arg: &'static str) -> Result<Net, RequestError> {
    let want = if want_v6 {
        "an IPv6 network N/len (e.g. fd00::/64)"
    } else {
        "an IPv4 network N/len (e.g. 10.0.0.0/8)"
    };
    let bad = |reason| RequestError::BadNetwork {
        arg,
        got: text.to_string(),
        want,
        reason,
    };
    let t = text.trim();
    let net = Net::parse(t).or_else(|| {
        let (a, m) = t.split_once('/')?;
        let len = filter::mask_len(m)?;
        Some(Net {
            addr: a.parse().ok()?,
            len,
        })
    });
    // As iftop does, the bits beyond the prefix are ignored.
    let net = net
        .ok_or_else(|| bad("write an address, a slash and a prefix length"))?
        .network();
    if net.addr.is_ipv6() != want_v6 {
        return Err(bad(if want_v6 {
            "that is IPv4; IPv4 networks go to -F"
        } else {
            "that is IPv6; IPv6 networks go to -G"
        }));
    }
    Ok(net)
}

/// A bandwidth such as iftop's `-m` takes: a number of bits per second with an optional K, M or
/// G (powers of 1000), e.g. `100M`.
pub fn bandwidth(text: &str, arg: &'static str) -> Result<f64, RequestError> {
    let t = text.trim();
    let (digits, factor) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    match digits.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * factor),
        _ => Err(RequestError::OutOfRange {
            arg,
            got: text.to_string(),
            range: "a positive number of bits per second, with K, M or G (e.g. 100M)".into(),
            why: "",
        }),
    }
}

/// One validated request for traffic on one interface.
#[derive(Clone, Debug)]
pub struct TrafficRequest {
    /// `None`: the interface of the default route.
    pub iface: Option<IfaceName>,
    pub window: SampleWindow,
    pub top: usize,
    pub sort: SortKey,
    pub by: GroupBy,
    /// The part of the traffic asked about (iftop's `-f`, `-F`, `-G`); all of it by default.
    pub selection: Selection,
    pub naming: Naming,
    /// How the caller names its arguments, for messages about them.
    pub names: ArgNames,
}

impl TrafficRequest {
    pub const DEFAULT_TOP: usize = 10;
    /// Most rows one result may carry.
    pub const MAX_TOP: usize = 1000;

    pub fn new(
        iface: Option<&str>,
        seconds: f64,
        range: (u64, u64),
        top: usize,
        sort: SortKey,
        by: GroupBy,
        names: ArgNames,
    ) -> Result<Self, RequestError> {
        if top == 0 || top > Self::MAX_TOP {
            return Err(RequestError::BadTop {
                arg: names.top,
                got: top,
                max: Self::MAX_TOP,
            });
        }
        Ok(Self {
            iface: iface
                .map(|i| IfaceName::parse(i, names.iface))
                .transpose()?,
            window: SampleWindow::from_seconds(seconds, range, names.window)?,
            top,
            sort,
            by,
            selection: Selection::default(),
            naming: Naming::ALL,
            names,
        })
    }

    /// Narrows the request to a filter expression (empty: none) and networks.
    pub fn with_selection(
        mut self,
        filter: Option<&str>,
        net4: Option<&str>,
        net6: Option<&str>,
    ) -> Result<Self, RequestError> {
        let names = self.names;
        self.selection = Selection {
            filter: filter
                .map(filter::parse)
                .transpose()
                .map_err(|source| RequestError::BadFilter {
                    arg: names.filter,
                    source,
                })?
                .flatten(),
            net4: net4.map(|n| network(n, false, names.net4)).transpose()?,
            net6: net6.map(|n| network(n, true, names.net6)).transpose()?,
        };
        Ok(self)
    }

    pub fn with_naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert!(IfaceName::parse("eth0", "iface").is_ok());
        assert!(IfaceName::parse("veth-a.100", "iface").is_ok());
        assert!(IfaceName::parse("123456789012345", "iface").is_ok());
        for bad in [
            "",
            "1234567890123456",
            "-i",
            "eth0;reboot",
            "a b",
            "$(x)",
            "..",
            "é",
        ] {
            assert!(IfaceName::parse(bad, "iface").is_err(), "{bad:?} accepted");
        }
        let msg = IfaceName::parse("eth0;rm", "--iface")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("letters, digits"), "{msg}");
        assert!(msg.starts_with("--iface: "), "{msg}");
    }

    #[test]
    fn windows() {
        let r = (3, 30);
        assert!(SampleWindow::from_seconds(3.0, r, "sample_seconds").is_ok());
        assert!(SampleWindow::from_seconds(30.0, r, "sample_seconds").is_ok());
        for bad in [0.0, 2.0, 31.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                SampleWindow::from_seconds(bad, r, "sample_seconds").is_err(),
                "{bad} accepted"
            );
        }
        let msg = SampleWindow::from_seconds(31.0, r, "sample_seconds")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("3–30 seconds"), "{msg}");
        assert!(msg.starts_with("sample_seconds: "), "{msg}");
    }

    #[test]
    fn messages_name_the_callers_own_argument() {
        let req = |top, names| {
            TrafficRequest::new(
                None,
                5.0,
                SampleWindow::CLI_RANGE,
                top,
                SortKey::Rx,
                GroupBy::Host,
                names,
            )
        };
        let cli = req(0, ArgNames::CLI).unwrap_err().to_string();
        assert!(
            cli.starts_with("--top: 0 is out of range: use 1–1000"),
            "{cli}"
        );
        let mcp = req(5000, ArgNames::MCP).unwrap_err().to_string();
        assert!(mcp.starts_with("top: 5000 is out of range"), "{mcp}");
    }

    #[test]
    fn filters_and_networks_are_checked_and_named() {
        let req = || {
            TrafficRequest::new(
                None,
                5.0,
                SampleWindow::CLI_RANGE,
                10,
                SortKey::Rx,
                GroupBy::Host,
                ArgNames::CLI,
            )
            .unwrap()
        };
        let r = req()
            .with_selection(
                Some("udp and dst port 5201"),
                Some("10.0.0.0/255.0.0.0"),
                None,
            )
            .unwrap();
        assert_eq!(
            r.selection.filter.unwrap().to_pcap(),
            "udp and dst port 5201"
        );
        assert_eq!(r.selection.net4.unwrap().to_string(), "10.0.0.0/8");
        let e = req()
            .with_selection(Some("gateway x"), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--filter: "), "{e}");
        assert!(e.contains("\"gateway\""), "{e}");
        let e = req()
            .with_selection(None, Some("fd00::/8"), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--net: ") && e.contains("-G"), "{e}");
        let e = req()
            .with_selection(None, None, Some("fd00::"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prefix length"), "{e}");
        assert!(
            req()
                .with_selection(Some(" "), None, None)
                .unwrap()
                .selection
                .is_all()
        );
    }

    #[test]
    fn bandwidths() {
        assert_eq!(bandwidth("100M", "-m").unwrap(), 1e8);
        assert_eq!(bandwidth("2.5g", "-m").unwrap(), 2.5e9);
        assert_eq!(bandwidth("512", "-m").unwrap(), 512.0);
        for bad in ["", "M", "-1M", "0", "ten", "1T"] {
            let e = bandwidth(bad, "-m").unwrap_err().to_string();
            assert!(e.starts_with("-m ") && e.contains("100M"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn local_host_spellings() {
        for h in [
            "",
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "::1",
            " localhost ",
        ] {
            let t = Target::new(h, 22, "root".into(), None);
            assert!(matches!(t, Target::Local), "{h:?}");
        }
        let Target::Remote(r) = Target::new("10.0.0.9", 22, "root".into(), None) else {
            panic!("10.0.0.9 taken as local")
        };
        assert_eq!((r.port, r.username.as_str()), (22, "root"));
    }
}
