//! Raw requests (CLI flags, MCP arguments) turned into validated, typed requests. Pure.

use crate::error::{ArgNames, RequestError};
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

/// One validated request for traffic on one interface.
#[derive(Clone, Debug)]
pub struct TrafficRequest {
    /// `None`: the interface of the default route.
    pub iface: Option<IfaceName>,
    pub window: SampleWindow,
    pub top: usize,
    pub sort: SortKey,
    pub by: GroupBy,
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
            names,
        })
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
