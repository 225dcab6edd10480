//! Frame parsing: link layer (Ethernet + VLAN tags, or none), IPv4/IPv6 (options, fragments,
//! extension headers) and the L4 ports. Every read goes through `bpf_skb_load_bytes`; a read that
//! fails means the frame is shorter than its headers claim, and the frame becomes "other".

use aya_ebpf::programs::TcContext;
use netmon_common::{Direction, FAMILY_V4, FAMILY_V6, FlowKey, LinkKind};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

const ETH_HLEN: u32 = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// QinQ: an outer 802.1ad tag and an inner 802.1Q tag.
const MAX_VLAN_TAGS: usize = 2;
/// Enough for hop-by-hop + routing + fragment + destination options + AH, with room to spare.
const MAX_IPV6_EXT_HEADERS: usize = 8;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_DCCP: u8 = 33;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_UDPLITE: u8 = 136;

const TCP_DOFF_OFFSET: u32 = 12;
const UDP_HLEN: u32 = 8;

pub enum Parsed {
    /// An IP packet: its flow key (ifindex still unset) and what it adds on the wire.
    Ip {
        key: FlowKey,
        packets: u64,
        bytes: u64,
    },
    /// Not IP, or too short/garbled to read the IP header.
    Other,
}

/// What the network layer told us, before the L4 header is read.
struct L3 {
    /// Offset of the IP header in the frame.
    off: u32,
    /// Offset of the L4 header (after IPv4 options / IPv6 extension headers).
    l4_off: u32,
    proto: u8,
    family: u8,
    src: [u8; 16],
    dst: [u8; 16],
    /// Length the IP header claims for the whole packet; 0 when it does not say (IPv6 jumbo,
    /// BIG TCP, GSO super-packets are not trusted).
    claimed_len: u32,
    /// Only the first fragment (or an unfragmented packet) carries the L4 header.
    has_l4: bool,
}

#[inline(always)]
pub fn parse(
    ctx: &TcContext,
    link: LinkKind,
    direction: Direction,
    frame_len: u32,
    gso_segs: u32,
    gso_size: u32,
) -> Parsed {
    let Some((off, ethertype)) = link_layer(ctx, link) else {
        return Parsed::Other;
    };
    let l3 = match ethertype {
        ETH_P_IP => ipv4(ctx, off),
        ETH_P_IPV6 => ipv6(ctx, off),
        _ => None,
    };
    let Some(l3) = l3 else {
        return Parsed::Other;
    };
    if frame_len < l3.l4_off {
        return Parsed::Other;
    }

    let (mut src_port, mut dst_port, mut l4_hdr_len) = (0u16, 0u16, 0u32);
    if l3.has_l4 && has_ports(l3.proto) {
        if let Ok(ports) = ctx.load::<[u8; 4]>(l3.l4_off as usize) {
            src_port = u16::from_be_bytes([ports[0], ports[1]]);
            dst_port = u16::from_be_bytes([ports[2], ports[3]]);
        }
        l4_hdr_len = match l3.proto {
            IPPROTO_TCP => match ctx.load::<u8>((l3.l4_off + TCP_DOFF_OFFSET) as usize) {
                Ok(b) => u32::from(b >> 4) * 4,
                Err(_) => 0,
            },
            IPPROTO_UDP | IPPROTO_UDPLITE => UDP_HLEN,
            _ => 0,
        };
    }

    let l3_len = frame_len - l3.off;
    let (packets, bytes) = wire_size(&l3, l3_len, l4_hdr_len, gso_segs, gso_size);

    let (local_addr, remote_addr, local_port, remote_port) = match direction {
        Direction::Ingress => (l3.dst, l3.src, dst_port, src_port),
        Direction::Egress => (l3.src, l3.dst, src_port, dst_port),
    };
    Parsed::Ip {
        key: FlowKey {
            ifindex: 0,
            local_addr,
            remote_addr,
            local_port,
            remote_port,
            proto: l3.proto,
            family: l3.family,
            _pad: [0; 2],
        },
        packets,
        bytes,
    }
}

/// Packets and L3 bytes this skb puts on the wire. A GSO super-packet becomes `segs` packets,
/// each carrying its own copy of the IP and L4 headers; its IP length field may be 0 (BIG TCP) or
/// describe only the super-packet, so the skb length is used instead.
#[inline(always)]
fn wire_size(l3: &L3, l3_len: u32, l4_hdr_len: u32, gso_segs: u32, gso_size: u32) -> (u64, u64) {
    let hdr_len = (l3.l4_off - l3.off) + l4_hdr_len;
    let mut segs = gso_segs;
    if segs == 0 && gso_size > 0 && l3_len > hdr_len {
        segs = (l3_len - hdr_len).div_ceil(gso_size);
    }
    if segs > 1 {
        let extra = u64::from(segs - 1) * u64::from(hdr_len);
        return (u64::from(segs), u64::from(l3_len) + extra);
    }
    // Not GSO: trust the IP length when it fits, so Ethernet padding of short frames is not
    // counted as IP bytes (iftop counts the IP length too).
    let bytes =
        if l3.claimed_len >= l3.l4_off - l3.off && l3.claimed_len <= l3_len && l3.claimed_len > 0 {
            l3.claimed_len
        } else {
            l3_len
        };
    (1, u64::from(bytes))
}

#[inline(always)]
fn has_ports(proto: u8) -> bool {
    matches!(
        proto,
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_UDPLITE | IPPROTO_SCTP | IPPROTO_DCCP
    )
}

/// Offset of the network header and its ethertype.
#[inline(always)]
fn link_layer(ctx: &TcContext, link: LinkKind) -> Option<(u32, u16)> {
    if let LinkKind::RawIp = link {
        let first = ctx.load::<u8>(0).ok()?;
        return match first >> 4 {
            4 => Some((0, ETH_P_IP)),
            6 => Some((0, ETH_P_IPV6)),
            _ => None,
        };
    }
    let mut ethertype = u16::from_be_bytes(ctx.load::<[u8; 2]>(12).ok()?);
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        // A tag is TCI (2 bytes) then the next ethertype (2 bytes).
        ethertype = u16::from_be_bytes(ctx.load::<[u8; 2]>((off + 2) as usize).ok()?);
        off += 4;
    }
    Some((off, ethertype))
}

#[inline(always)]
fn ipv4(ctx: &TcContext, off: u32) -> Option<L3> {
    let ip = ctx.load::<Ipv4Hdr>(off as usize).ok()?;
    if ip.vihl >> 4 != 4 {
        return None;
    }
    let ihl = u32::from(ip.vihl & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let frag = u16::from_be_bytes(ip.frags);
    let frag_offset = frag & 0x1fff;
    Some(L3 {
        off,
        l4_off: off + ihl,
        proto: ip.proto,
        family: FAMILY_V4,
        src: v4_mapped(ip.src_addr),
        dst: v4_mapped(ip.dst_addr),
        claimed_len: u32::from(u16::from_be_bytes(ip.tot_len)),
        has_l4: frag_offset == 0,
    })
}

#[inline(always)]
fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

#[inline(always)]
fn ipv6(ctx: &TcContext, off: u32) -> Option<L3> {
    let ip = ctx.load::<Ipv6Hdr>(off as usize).ok()?;
    if ip.vcf[0] >> 4 != 6 {
        return None;
    }
    let payload_len = u32::from(u16::from_be_bytes(ip.payload_len));
    let mut next = ip.next_hdr;
    let mut cur = off + 40;
    let mut has_l4 = true;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let h = ctx.load::<[u8; 2]>(cur as usize).ok()?;
                next = h[0];
                (u32::from(h[1]) + 1) * 8
            }
            IPPROTO_FRAGMENT => {
                let h = ctx.load::<[u8; 4]>(cur as usize).ok()?;
                next = h[0];
                if u16::from_be_bytes([h[2], h[3]]) & 0xfff8 != 0 {
                    has_l4 = false;
                }
                8
            }
            IPPROTO_AH => {
                let h = ctx.load::<[u8; 2]>(cur as usize).ok()?;
                next = h[0];
                (u32::from(h[1]) + 2) * 4
            }
            _ => break,
        };
        cur += len;
    }
    Some(L3 {
        off,
        l4_off: cur,
        proto: next,
        family: FAMILY_V6,
        src: ip.src_addr,
        dst: ip.dst_addr,
        claimed_len: if payload_len == 0 {
            0
        } else {
            40 + payload_len
        },
        has_l4,
    })
}
