//! Typed flows: the kernel's raw [`FlowKey`] turned into addresses, ports and a protocol.

use netmon_common::{FAMILY_V4, FlowKey, FlowValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// L4 protocol of a connection. Protocols without a name here are `other`, with their number in
/// `ip_protocol`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Sctp,
    Other,
}

impl Protocol {
    pub fn from_number(n: u8) -> Self {
        match n {
            6 => Self::Tcp,
            17 => Self::Udp,
            1 => Self::Icmp,
            58 => Self::Icmpv6,
            132 => Self::Sctp,
            _ => Self::Other,
        }
    }

    /// Whether the protocol has ports (so port 0 means "not known", e.g. a later fragment).
    pub fn has_ports(n: u8) -> bool {
        matches!(n, 6 | 17 | 33 | 132 | 136)
    }
}

/// One connection on the sampled interface, seen from the interface's host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId {
    pub local: IpAddr,
    pub remote: IpAddr,
    pub local_port: u16,
    pub remote_port: u16,
    /// IP protocol number.
    pub protocol: u8,
}

impl FlowId {
    pub fn from_key(key: &FlowKey) -> Self {
        let addr = |a: [u8; 16]| -> IpAddr {
            if key.family == FAMILY_V4 {
                IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
            } else {
                IpAddr::V6(Ipv6Addr::from(a))
            }
        };
        Self {
            local: addr(key.local_addr),
            remote: addr(key.remote_addr),
            local_port: key.local_port,
            remote_port: key.remote_port,
            protocol: key.proto,
        }
    }
}

/// Byte and packet counters of one flow (or their difference over a window).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

impl FlowCounters {
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    pub fn total_bytes(&self) -> u64 {
        self.rx_bytes + self.tx_bytes
    }

    pub fn add(&mut self, other: &Self) {
        self.rx_bytes += other.rx_bytes;
        self.rx_packets += other.rx_packets;
        self.tx_bytes += other.tx_bytes;
        self.tx_packets += other.tx_packets;
    }
}

impl From<&FlowValue> for FlowCounters {
    fn from(v: &FlowValue) -> Self {
        Self {
            rx_bytes: v.rx_bytes,
            rx_packets: v.rx_packets,
            tx_bytes: v.tx_bytes,
            tx_packets: v.tx_packets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(family: u8, local: [u8; 16], remote: [u8; 16]) -> FlowKey {
        FlowKey {
            ifindex: 3,
            local_addr: local,
            remote_addr: remote,
            local_port: 5201,
            remote_port: 40000,
            proto: 6,
            family,
            _pad: [0; 2],
        }
    }

    #[test]
    fn v4_keys_are_read_from_the_mapped_tail() {
        let mut l = [0u8; 16];
        l[10] = 0xff;
        l[11] = 0xff;
        l[12..].copy_from_slice(&[10, 200, 1, 2]);
        let mut r = l;
        r[15] = 1;
        let id = FlowId::from_key(&key(FAMILY_V4, l, r));
        assert_eq!(id.local, "10.200.1.2".parse::<IpAddr>().unwrap());
        assert_eq!(id.remote, "10.200.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (id.local_port, id.remote_port, id.protocol),
            (5201, 40000, 6)
        );
    }

    #[test]
    fn v6_keys_keep_all_sixteen_bytes() {
        let l: Ipv6Addr = "fd00:200::2".parse().unwrap();
        let r: Ipv6Addr = "fd00:200::1".parse().unwrap();
        let id = FlowId::from_key(&key(netmon_common::FAMILY_V6, l.octets(), r.octets()));
        assert_eq!(id.local, IpAddr::V6(l));
        assert_eq!(id.remote, IpAddr::V6(r));
    }

    #[test]
    fn protocol_names() {
        assert_eq!(Protocol::from_number(6), Protocol::Tcp);
        assert_eq!(Protocol::from_number(58), Protocol::Icmpv6);
        assert_eq!(Protocol::from_number(47), Protocol::Other);
        assert!(Protocol::has_ports(17) && !Protocol::has_ports(1));
    }
}
