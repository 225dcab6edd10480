//! What netmon's classifier must count for one frame, written from the protocol specifications
//! (Ethernet and 802.1Q/802.1ad, RFC 791, RFC 8200 and the extension headers' RFCs, RFC 793's
//! data offset, RFC 7348 VXLAN, RFC 8926 Geneve) and from the counting rules README states, not
//! from the kernel program. The differential test runs generated frames through the real
//! classifier (BPF_PROG_TEST_RUN) and compares every table entry and total with this.
//!
//! netmon's own rules, as README states them:
//! - bytes are L3 (IP header and payload); a frame that is not IP, or whose IP header cannot be
//!   read whole, is "other" and counted as a frame only;
//! - at most two VLAN tags and eight IPv6 extension headers are followed;
//! - the IP length field is trusted when it fits the frame (so Ethernet padding is not IP);
//! - only a first fragment (or an unfragmented packet) carries ports;
//! - a GSO super-packet counts as its segments, each repeating the headers up to the payload
//!   (for a VXLAN or Geneve tunnel, up to the inner packet's payload).

use netmon::flow::{FlowCounters, FlowId};
use netmon_common::{Direction, LinkKind};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One frame as a test hands it to the classifier.
#[derive(Clone, Debug)]
pub struct Frame {
    pub bytes: Vec<u8>,
    pub link: LinkKind,
    pub direction: Direction,
    /// `skb_shinfo(skb)->gso_segs` and `gso_size` (0: not GSO).
    pub gso_segs: u16,
    pub gso_size: u16,
}

/// What one frame adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Not IP, or an IP header that cannot be read: one "other" frame of this many bytes.
    Other,
    /// An IP packet (or GSO super-packet) of this flow: packets and L3 bytes on the wire.
    Flow {
        id: FlowId,
        packets: u64,
        bytes: u64,
    },
}

/// Everything a run of frames adds, per direction and per flow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// (frames, frame bytes, other frames, other bytes) per direction: ingress, egress.
    pub totals: [(u64, u64, u64, u64); 2],
    pub flows: HashMap<FlowId, FlowCounters>,
}

impl Expected {
    pub fn add(&mut self, f: &Frame) {
        let t = &mut self.totals[f.direction as usize];
        let len = f.bytes.len() as u64;
        t.0 += 1;
        t.1 += len;
        match count(f) {
            Counted::Other => {
                t.2 += 1;
                t.3 += len;
            }
            Counted::Flow { id, packets, bytes } => {
                let c = self.flows.entry(id).or_default();
                match f.direction {
                    Direction::Ingress => {
                        c.rx_packets += packets;
                        c.rx_bytes += bytes;
                    }
                    Direction::Egress => {
                        c.tx_packets += packets;
                        c.tx_bytes += bytes;
                    }
                }
            }
        }
    }
}

const ETH_HLEN: usize = 14;
const VLAN_TPIDS: [u16; 2] = [0x8100, 0x88A8];
const MAX_VLAN_TAGS: usize = 2;
const MAX_IPV6_EXT: usize = 8;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Where the network header starts and what it is: 4, 6, or neither.
fn network(f: &Frame) -> Option<(usize, u8)> {
    let b = &f.bytes;
    if f.link == LinkKind::RawIp {
        return match b.first()? >> 4 {
            4 => Some((0, 4)),
            6 => Some((0, 6)),
            _ => None,
        };
    }
    let mut ethertype = be16(b, 12)?;
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !VLAN_TPIDS.contains(&ethertype) {
            break;
        }
        // 802.1Q: the tag control information, then the next ethertype.
        ethertype = be16(b, off + 2)?;
        off += 4;
    }
    match ethertype {
        0x0800 => Some((off, 4)),
        0x86DD => Some((off, 6)),
        _ => None,
    }
}

/// The IP layer: addresses, the L4 protocol and offset, the claimed length, whether the L4
/// header is there (not a later fragment).
struct Ip {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: usize,
    claimed: usize,
    has_l4: bool,
}

fn ipv4(b: &[u8], off: usize) -> Option<Ip> {
    let h = b.get(off..off + 20)?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    Some(Ip {
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        proto: h[9],
        l4: off + ihl,
        claimed: usize::from(u16::from_be_bytes([h[2], h[3]])),
        // RFC 791: the fragment offset (13 bits) is 0 only in the first fragment.
        has_l4: frag & 0x1fff == 0,
    })
}

fn ipv6(b: &[u8], off: usize) -> Option<Ip> {
    let h = b.get(off..off + 40)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&h[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let mut next = h[6];
    let mut at = off + 40;
    let mut has_l4 = true;
    for _ in 0..MAX_IPV6_EXT {
        let len = match next {
            // Hop-by-hop (RFC 8200 4.3), routing (4.4), destination options (4.6): length in
            // 8-octet units, not counting the first 8.
            0 | 43 | 60 => {
                let e = b.get(at..at + 2)?;
                next = e[0];
                (usize::from(e[1]) + 1) * 8
            }
            // Fragment (4.5): 8 octets; a non-zero offset is not the first fragment.
            44 => {
                let e = b.get(at..at + 4)?;
                next = e[0];
                if u16::from_be_bytes([e[2], e[3]]) & 0xfff8 != 0 {
                    has_l4 = false;
                }
                8
            }
            // AH (RFC 4302 2.2): length in 4-octet units, minus 2.
            51 => {
                let e = b.get(at..at + 2)?;
                next = e[0];
                (usize::from(e[1]) + 2) * 4
            }
            _ => break,
        };
        at += len;
    }
    Some(Ip {
        src: addr(8),
        dst: addr(24),
        proto: next,
        l4: at,
        claimed: if payload == 0 { 0 } else { 40 + payload },
        has_l4,
    })
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 136 | 132 | 33)
}

/// The TCP header length from its data offset (RFC 793), 0 when it cannot be read.
fn tcp_header(b: &[u8], at: usize) -> usize {
    b.get(at + 12).map_or(0, |d| usize::from(d >> 4) * 4)
}

/// For UDP into a VXLAN (RFC 7348; ports 4789 and Linux's 8472) or Geneve (RFC 8926, port
/// 6081) tunnel: the bytes from the outer UDP header to the inner packet's payload.
fn tunnel(b: &[u8], udp: usize, dst_port: u16) -> Option<usize> {
    let mut at = udp + 8;
    let ethertype = match dst_port {
        4789 | 8472 => {
            at += 8;
            0x6558
        }
        6081 => {
            let h = b.get(at..at + 4)?;
            at += 8 + usize::from(h[0] & 0x3f) * 4;
            u16::from_be_bytes([h[2], h[3]])
        }
        _ => return None,
    };
    let ethertype = if ethertype == 0x6558 {
        let inner = be16(b, at + 12)?;
        at += ETH_HLEN;
        inner
    } else {
        ethertype
    };
    let (proto, ip_len) = match ethertype {
        0x0800 => {
            let h = b.get(at..at + 10)?;
            (h[9], usize::from(h[0] & 0x0f) * 4)
        }
        0x86DD => (*b.get(at + 6)?, 40),
        _ => return None,
    };
    at += ip_len;
    let l4 = match proto {
        6 => tcp_header(b, at),
        17 | 136 => 8,
        _ => 0,
    };
    Some(at + l4 - udp)
}

/// What one frame adds, by the rules at the top of this module.
pub fn count(f: &Frame) -> Counted {
    let b = &f.bytes;
    let Some((off, version)) = network(f) else {
        return Counted::Other;
    };
    let ip = match version {
        4 => ipv4(b, off),
        _ => ipv6(b, off),
    };
    let Some(ip) = ip else {
        return Counted::Other;
    };
    if b.len() < ip.l4 {
        return Counted::Other;
    }
    let ported = ip.has_l4 && has_ports(ip.proto);
    let (sport, dport) = match (ported, be16(b, ip.l4), be16(b, ip.l4 + 2)) {
        (true, Some(s), Some(d)) => (s, d),
        _ => (0, 0),
    };
    let l3_len = b.len() - off;
    let ip_header = ip.l4 - off;
    let plain = if ip.claimed >= ip_header && ip.claimed <= l3_len && ip.claimed > 0 {
        ip.claimed
    } else {
        l3_len
    } as u64;
    let (packets, bytes) = if f.gso_size > 0 || f.gso_segs > 1 {
        let l4 = if !ported {
            0
        } else {
            match ip.proto {
                6 => tcp_header(b, ip.l4),
                17 => tunnel(b, ip.l4, dport).unwrap_or(8),
                136 => 8,
                _ => 0,
            }
        };
        let hdr = ip_header + l4;
        let mut segs = usize::from(f.gso_segs);
        if segs == 0 && f.gso_size > 0 && l3_len > hdr {
            segs = (l3_len - hdr).div_ceil(usize::from(f.gso_size));
        }
        if segs > 1 {
            (segs as u64, (l3_len + (segs - 1) * hdr) as u64)
        } else {
            (1, plain)
        }
    } else {
        (1, plain)
    };
    let (local, remote, local_port, remote_port) = match f.direction {
        Direction::Ingress => (ip.dst, ip.src, dport, sport),
        Direction::Egress => (ip.src, ip.dst, sport, dport),
    };
    Counted::Flow {
        id: FlowId {
            local,
            remote,
            local_port,
            remote_port,
            protocol: ip.proto,
        },
        packets,
        bytes,
    }
}
