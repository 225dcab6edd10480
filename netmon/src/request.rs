//! Raw requests (CLI flags, later MCP arguments) turned into validated, typed requests.

use crate::error::{Error, Result};
use crate::rank::{GroupBy, SortKey};
use std::time::Duration;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFACE_LEN: usize = 15;

/// An interface name that is safe to pass anywhere: at most 15 bytes of `[A-Za-z0-9._@-]`, not
/// starting with `-`. It is checked against the host's interfaces separately.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IfaceName(String);

impl IfaceName {
    pub fn parse(name: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidInterfaceName {
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

    pub fn from_seconds(seconds: f64, (min, max): (u64, u64)) -> Result<Self> {
        if !seconds.is_finite() || seconds < min as f64 || seconds > max as f64 {
            return Err(Error::BadWindow {
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

/// One validated request for traffic on one interface.
#[derive(Clone, Debug)]
pub struct TrafficRequest {
    /// `None`: the interface of the default route.
    pub iface: Option<IfaceName>,
    pub window: SampleWindow,
    pub top: usize,
    pub sort: SortKey,
    pub by: GroupBy,
}

impl TrafficRequest {
    pub const DEFAULT_TOP: usize = 10;

    pub fn new(
        iface: Option<&str>,
        seconds: f64,
        range: (u64, u64),
        top: usize,
        sort: SortKey,
        by: GroupBy,
    ) -> Result<Self> {
        if top == 0 {
            return Err(Error::BadTop(top));
        }
        Ok(Self {
            iface: iface.map(IfaceName::parse).transpose()?,
            window: SampleWindow::from_seconds(seconds, range)?,
            top,
            sort,
            by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert!(IfaceName::parse("eth0").is_ok());
        assert!(IfaceName::parse("veth-a.100").is_ok());
        assert!(IfaceName::parse("123456789012345").is_ok());
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
            assert!(IfaceName::parse(bad).is_err(), "{bad:?} accepted");
        }
        let msg = IfaceName::parse("eth0;rm").unwrap_err().to_string();
        assert!(msg.contains("letters, digits"), "{msg}");
    }

    #[test]
    fn windows() {
        let r = (3, 30);
        assert!(SampleWindow::from_seconds(3.0, r).is_ok());
        assert!(SampleWindow::from_seconds(30.0, r).is_ok());
        for bad in [0.0, 2.0, 31.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                SampleWindow::from_seconds(bad, r).is_err(),
                "{bad} accepted"
            );
        }
        let msg = SampleWindow::from_seconds(31.0, r).unwrap_err().to_string();
        assert!(msg.contains("3–30 seconds"), "{msg}");
    }

    #[test]
    fn top_zero_is_refused() {
        let e = TrafficRequest::new(
            None,
            5.0,
            SampleWindow::CLI_RANGE,
            0,
            SortKey::Rx,
            GroupBy::Host,
        );
        assert!(matches!(e, Err(Error::BadTop(0))));
    }
}
