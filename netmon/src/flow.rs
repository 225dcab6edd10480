//! Typed flows: the kernel's raw [`FlowKey4`]/[`FlowKey6`] turned into addresses, ports and a
//! protocol, and back.

use netmon_common::{FlowKey4, FlowKey6, SlotCounters, SlotKey, SlotSockets};
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
    pub fn from_v4(key: &FlowKey4) -> Self {
        let addr = |w: u32| IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes()));
        Self {
            local: addr(key.local_addr),
            remote: addr(key.remote_addr),
            local_port: key.local_port,
            remote_port: key.remote_port,
            protocol: key.proto,
        }
    }

    pub fn from_v6(key: &FlowKey6) -> Self {
        let addr = |w: [u32; 4]| IpAddr::V6(Ipv6Addr::from(bytes(w)));
        Self {
            local: addr(key.local_addr),
            remote: addr(key.remote_addr),
            local_port: key.local_port,
            remote_port: key.remote_port,
            protocol: key.proto,
        }
    }

    /// The flow a slot of the classifier's arrays holds.
    pub fn from_slot_key(key: &SlotKey) -> Self {
        if key.family == 6 {
            Self::from_v6(&FlowKey6 {
                ifindex: key.ifindex,
                local_addr: key.local_addr,
                remote_addr: key.remote_addr,
                local_port: key.local_port,
                remote_port: key.remote_port,
                proto: key.proto,
                _pad: [0; 3],
            })
        } else {
            Self::from_v4(&FlowKey4 {
                ifindex: key.ifindex,
                local_addr: key.local_addr[0],
                remote_addr: key.remote_addr[0],
                local_port: key.local_port,
                remote_port: key.remote_port,
                proto: key.proto,
                _pad: [0; 3],
            })
        }
    }

    /// The kernel's key for this flow on `ifindex`. Flows read from the kernel have both ends in
    /// one family; a mixed pair (never read from the kernel) is keyed as IPv6, IPv4-mapped.
    pub fn key(&self, ifindex: u32) -> RawKey {
        match (self.local, self.remote) {
            (IpAddr::V4(l), IpAddr::V4(r)) => RawKey::V4(FlowKey4 {
                ifindex,
                local_addr: u32::from_ne_bytes(l.octets()),
                remote_addr: u32::from_ne_bytes(r.octets()),
                local_port: self.local_port,
                remote_port: self.remote_port,
                proto: self.protocol,
                _pad: [0; 3],
            }),
            (l, r) => {
                let v6 = |a: IpAddr| {
                    words(match a {
                        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                        IpAddr::V6(a) => a.octets(),
                    })
                };
                RawKey::V6(FlowKey6 {
                    ifindex,
                    local_addr: v6(l),
                    remote_addr: v6(r),
                    local_port: self.local_port,
                    remote_port: self.remote_port,
                    proto: self.protocol,
                    _pad: [0; 3],
                })
            }
        }
    }
}

/// A kernel flow key: each family has its own table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RawKey {
    V4(FlowKey4),
    V6(FlowKey6),
}

/// An address's bytes from the key's words (which hold them in order in memory).
fn bytes(words: [u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (chunk, w) in b.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    b
}

/// The key's words of an address.
fn words(b: [u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    [w(0), w(4), w(8), w(12)]
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

impl From<&SlotSockets> for crate::owner::FlowSockets {
    fn from(v: &SlotSockets) -> Self {
        Self {
            cookie: v.cookie,
            peer_cookie: v.peer_cookie,
            pending: v.attr & netmon_common::FLOW_SENT_SEEN == 0,
        }
    }
}

impl From<&SlotCounters> for FlowCounters {
    fn from(v: &SlotCounters) -> Self {
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

    #[test]
    fn v4_keys_read_and_written_back() {
        let k = FlowKey4 {
            ifindex: 3,
            // As the classifier stores them: the wire's bytes in order.
            local_addr: u32::from_ne_bytes([10, 200, 1, 2]),
            remote_addr: u32::from_ne_bytes([10, 200, 1, 1]),
            local_port: 5201,
            remote_port: 40000,
            proto: 6,
            _pad: [0; 3],
        };
        let id = FlowId::from_v4(&k);
        assert_eq!(id.local, "10.200.1.2".parse::<IpAddr>().unwrap());
        assert_eq!(id.remote, "10.200.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (id.local_port, id.remote_port, id.protocol),
            (5201, 40000, 6)
        );
        assert_eq!(id.key(3), RawKey::V4(k));
    }

    #[test]
    fn v6_keys_keep_all_sixteen_bytes() {
        let l: Ipv6Addr = "fd00:200::2".parse().unwrap();
        let r: Ipv6Addr = "fd00:200::1".parse().unwrap();
        let k = FlowKey6 {
            ifindex: 9,
            local_addr: words(l.octets()),
            remote_addr: words(r.octets()),
            local_port: 1,
            remote_port: 2,
            proto: 17,
            _pad: [0; 3],
        };
        let id = FlowId::from_v6(&k);
        assert_eq!(id.local, IpAddr::V6(l));
        assert_eq!(id.remote, IpAddr::V6(r));
        assert_eq!(id.key(9), RawKey::V6(k));
        assert_eq!(bytes(words(l.octets())), l.octets());
    }

    #[test]
    fn protocol_names() {
        assert_eq!(Protocol::from_number(6), Protocol::Tcp);
        assert_eq!(Protocol::from_number(58), Protocol::Icmpv6);
        assert_eq!(Protocol::from_number(47), Protocol::Other);
        assert!(Protocol::has_ports(17) && !Protocol::has_ports(1));
    }
}
