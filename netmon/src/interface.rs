//! A host's network interfaces as netmon describes them, and the default route read from the
//! kernel's route tables' text. Pure: reading them off this host is [`crate::host`]'s, off a
//! remote one [`crate::source::ssh`]'s.

use netmon_common::LinkKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What kind of device an interface is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceKind {
    Loopback,
    Ethernet,
    Veth,
    Bridge,
    Vlan,
    Bond,
    Wireless,
    /// No link-layer header: tun, wireguard, ip tunnels.
    Tunnel,
    Other,
}

/// One interface of a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InterfaceInfo {
    pub name: String,
    pub index: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Operational state as the kernel reports it (up, down, unknown, lowerlayerdown, ...).
    pub operstate: String,
    pub mac: Option<String>,
    pub mtu: u32,
    pub kind: InterfaceKind,
    pub addresses: Vec<IpAddr>,
}

impl InterfaceInfo {
    /// What precedes the IP header in frames the classifier sees on this interface.
    pub fn link_kind(&self) -> LinkKind {
        match self.kind {
            InterfaceKind::Tunnel => LinkKind::RawIp,
            _ => LinkKind::Ethernet,
        }
    }
}

/// The interface of the IPv4 default route with the lowest metric, from /proc/net/route text.
pub fn default_route_v4(route: &str) -> Option<String> {
    route
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let up = flags & 0x1 != 0;
            (up && *f.get(1)? == "00000000" && *f.get(7)? == "00000000")
                .then(|| Some((f.get(6)?.parse::<u64>().ok()?, f[0].to_string())))?
        })
        .min()
        .map(|(_, name)| name)
}

/// The interface of the IPv6 default route (::/0) with the lowest metric, skipping `lo`.
pub fn default_route_v6(route: &str) -> Option<String> {
    route
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // dest prefixlen src srcprefixlen nexthop metric refcnt use flags iface
            let iface = *f.get(9)?;
            (f.first()?.chars().all(|c| c == '0') && *f.get(1)? == "00" && iface != "lo")
                .then(|| Some((u64::from_str_radix(f.get(5)?, 16).ok()?, iface.to_string())))?
        })
        .min()
        .map(|(_, name)| name)
}

/// Comma-separated names, for error messages.
pub fn names(list: &[InterfaceInfo]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_default_route_lowest_metric_wins() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
";
        assert_eq!(default_route_v4(route).as_deref(), Some("eth0"));
        assert_eq!(default_route_v4("Iface\tDestination\n"), None);
    }

    #[test]
    fn v6_default_route_skips_lo() {
        let route = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     ens3
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     ens3
";
        assert_eq!(default_route_v6(route).as_deref(), Some("ens3"));
    }
}
