//! Frame parsing: link layer (Ethernet + VLAN tags, or none), IPv4/IPv6 (options, fragments,
//! extension headers) and the L4 ports, into the flow key of the packet's family. Every read goes
//! through `bpf_skb_load_bytes`, which is bounds-checked and also reads non-linear (GSO) skbs; a
//! read that fails means the frame is shorter than its headers claim, and the frame becomes
//! "other".
//!
//! The common packet (untagged, an IPv4 header without options, not a fragment) is read with one
//! load of a fixed block: the end of the link header, the IP header and the ports. An IPv6 packet
//! whose next header is the L4 header takes one more load of its own block. Everything else
//! (VLAN tags, options, fragments, extension headers, short frames) goes the general way, one
//! load per header. The TCP header length is read only for GSO packets, the only ones whose size
//! depends on it.
//!
//! The fixed blocks are structs of naturally aligned integers, and addresses travel as words, not
//! byte arrays: LLVM's BPF backend reads, writes and copies a byte array one byte at a time.

use aya_ebpf::programs::TcContext;
use netmon_common::{Direction, FlowKey4, FlowKey6};
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

const IPV4_HLEN: u32 = 20;
const IPV6_HLEN: u32 = 40;
const TCP_DOFF_OFFSET: u32 = 12;
const UDP_HLEN: u32 = 8;

/// An IPv4 header without options and the first four L4 bytes. Multi-byte fields are as on the
/// wire (network byte order).
#[repr(C)]
struct V4Block {
    vihl: u8,
    tos: u8,
    tot_len: u16,
    id: u16,
    frag: u16,
    ttl: u8,
    proto: u8,
    check: u16,
    src: u32,
    dst: u32,
    ports: [u16; 2],
}

/// An IPv6 header and the first four L4 bytes.
#[repr(C)]
struct V6Block {
    vcf: u32,
    payload_len: u16,
    next: u8,
    hop: u8,
    src: [u32; 4],
    dst: [u32; 4],
    ports: [u16; 2],
}

/// A block as read behind Ethernet: from offset 10, so the IP header starts 4-aligned after the
/// last two MAC bytes and the ethertype.
#[repr(C)]
struct EthBlock<B> {
    _mac_tail: u16,
    ethertype: u16,
    ip: B,
}

/// What the network layer told us.
struct L3 {
    /// Offset of the IP header in the frame.
    off: u32,
    /// Offset of the L4 header (after IPv4 options / IPv6 extension headers).
    l4_off: u32,
    proto: u8,
    /// Length the IP header claims for the whole packet; 0 when it does not say (IPv6 jumbo,
    /// BIG TCP). Not trusted for GSO super-packets.
    claimed_len: u32,
    /// Only the first fragment (or an unfragmented packet) carries the L4 header.
    has_l4: bool,
    /// The L4 ports as on the wire, when the fixed block already held them.
    ports: Option<[u16; 2]>,
}

/// A packet's addresses as the keys hold them: words with the wire's bytes in order.
#[derive(Clone, Copy)]
enum Addrs {
    V4 { src: u32, dst: u32 },
    V6 { src: [u32; 4], dst: [u32; 4] },
}

pub enum Parsed {
    /// An IPv4 packet: its flow key (ifindex still unset) and what it adds on the wire.
    V4 {
        key: FlowKey4,
        packets: u64,
        bytes: u64,
    },
    /// An IPv6 packet, as above.
    V6 {
        key: FlowKey6,
        packets: u64,
        bytes: u64,
    },
    /// Not IP, or too short or garbled to read the IP header.
    Other,
}

/// `RAW`: the frame starts at the IP header (no link layer).
#[inline(always)]
pub fn parse<const RAW: bool>(
    ctx: &TcContext,
    direction: Direction,
    frame_len: u32,
    gso_segs: u32,
    gso_size: u32,
) -> Parsed {
    let found = match fast::<RAW>(ctx) {
        Some(f) => Some(f),
        None => general::<RAW>(ctx),
    };
    let Some((l3, addrs)) = found else {
        return Parsed::Other;
    };
    if frame_len < l3.l4_off {
        return Parsed::Other;
    }

    let (mut src_port, mut dst_port) = (0, 0);
    let ported = l3.has_l4 && has_ports(l3.proto);
    if ported {
        let ports = match l3.ports {
            Some(p) => Some(p),
            None => ctx.load::<[u16; 2]>(l3.l4_off as usize).ok(),
        };
        if let Some([src, dst]) = ports {
            (src_port, dst_port) = (u16::from_be(src), u16::from_be(dst));
        }
    }
    let (local_port, remote_port) = match direction {
        Direction::Ingress => (dst_port, src_port),
        Direction::Egress => (src_port, dst_port),
    };

    let l3_len = frame_len - l3.off;
    let (packets, bytes) = if gso_size > 0 || gso_segs > 1 {
        let l4_hdr_len = if ported {
            l4_header_len(ctx, &l3, dst_port)
        } else {
            0
        };
        gso_wire_size(&l3, l3_len, l4_hdr_len, gso_segs, gso_size)
    } else {
        (1, u64::from(plain_len(&l3, l3_len)))
    };

    match addrs {
        Addrs::V4 { src, dst } => {
            let (local_addr, remote_addr) = match direction {
                Direction::Ingress => (dst, src),
                Direction::Egress => (src, dst),
            };
            Parsed::V4 {
                key: FlowKey4 {
                    ifindex: 0,
                    local_addr,
                    remote_addr,
                    local_port,
                    remote_port,
                    proto: l3.proto,
                    _pad: [0; 3],
                },
                packets,
                bytes,
            }
        }
        Addrs::V6 { src, dst } => {
            let (local_addr, remote_addr) = match direction {
                Direction::Ingress => (dst, src),
                Direction::Egress => (src, dst),
            };
            Parsed::V6 {
                key: FlowKey6 {
                    ifindex: 0,
                    local_addr,
                    remote_addr,
                    local_port,
                    remote_port,
                    proto: l3.proto,
                    _pad: [0; 3],
                },
                packets,
                bytes,
            }
        }
    }
}

/// The common packet from one fixed block (two for IPv6); `None` sends the frame the general
/// way, which reads it again from the start.
#[inline(always)]
fn fast<const RAW: bool>(ctx: &TcContext) -> Option<(L3, Addrs)> {
    // On a raw-IP device the version nibble says the family; behind Ethernet the ethertype must
    // say the same.
    let (off, v4) = if RAW {
        (0, ctx.load::<V4Block>(0).ok()?)
    } else {
        let b = ctx.load::<EthBlock<V4Block>>(10).ok()?;
        match u16::from_be(b.ethertype) {
            ETH_P_IP => (ETH_HLEN, b.ip),
            ETH_P_IPV6 => return fast_v6::<RAW>(ctx),
            _ => return None,
        }
    };
    if RAW && v4.vihl >> 4 == 6 {
        return fast_v6::<RAW>(ctx);
    }
    // IPv4 with a 20-byte header; neither a later fragment nor a first one (MF clear, offset 0):
    // fragments go the general way.
    if v4.vihl != 0x45 || u16::from_be(v4.frag) & 0x3fff != 0 {
        return None;
    }
    let l3 = L3 {
        off,
        l4_off: off + IPV4_HLEN,
        proto: v4.proto,
        claimed_len: u32::from(u16::from_be(v4.tot_len)),
        has_l4: true,
        ports: Some(v4.ports),
    };
    Some((
        l3,
        Addrs::V4 {
            src: v4.src,
            dst: v4.dst,
        },
    ))
}

/// An IPv6 packet whose next header is the L4 header, from its own block.
#[inline(always)]
fn fast_v6<const RAW: bool>(ctx: &TcContext) -> Option<(L3, Addrs)> {
    let (off, v6) = if RAW {
        (0, ctx.load::<V6Block>(0).ok()?)
    } else {
        (ETH_HLEN, ctx.load::<EthBlock<V6Block>>(10).ok()?.ip)
    };
    if u32::from_be(v6.vcf) >> 28 != 6 || is_ipv6_ext(v6.next) {
        return None;
    }
    let payload_len = u32::from(u16::from_be(v6.payload_len));
    let l3 = L3 {
        off,
        l4_off: off + IPV6_HLEN,
        proto: v6.next,
        claimed_len: if payload_len == 0 {
            0
        } else {
            IPV6_HLEN + payload_len
        },
        has_l4: true,
        ports: Some(v6.ports),
    };
    Some((
        l3,
        Addrs::V6 {
            src: v6.src,
            dst: v6.dst,
        },
    ))
}

#[inline(always)]
fn is_ipv6_ext(next: u8) -> bool {
    matches!(
        next,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_FRAGMENT | IPPROTO_AH | IPPROTO_DSTOPTS
    )
}

/// Header bytes after the IP header that every GSO segment repeats: the L4 header, and for a
/// UDP tunnel (`dst_port`, host order) everything up to the inner packet's payload.
#[inline(always)]
fn l4_header_len(ctx: &TcContext, l3: &L3, dst_port: u16) -> u32 {
    match l3.proto {
        IPPROTO_TCP => tcp_header_len(ctx, l3.l4_off),
        IPPROTO_UDP => udp_tunnel_header_len(ctx, l3.l4_off, dst_port).unwrap_or(UDP_HLEN),
        IPPROTO_UDPLITE => UDP_HLEN,
        _ => 0,
    }
}

#[inline(always)]
fn tcp_header_len(ctx: &TcContext, tcp_off: u32) -> u32 {
    match ctx.load::<u8>((tcp_off + TCP_DOFF_OFFSET) as usize) {
        Ok(b) => u32::from(b >> 4) * 4,
        Err(_) => 0,
    }
}

/// VXLAN's IANA port, Linux's older default, and Geneve's.
const VXLAN_PORT: u16 = 4789;
const VXLAN_LINUX_PORT: u16 = 8472;
const GENEVE_PORT: u16 = 6081;
const VXLAN_HLEN: u32 = 8;
const GENEVE_HLEN: u32 = 8;
/// Geneve's protocol type for an inner Ethernet frame (Transparent Ethernet Bridging).
const ETH_P_TEB: u16 = 0x6558;

/// For a GSO packet into a VXLAN or Geneve tunnel: the bytes from the outer UDP header to the
/// inner packet's payload, which every segment the kernel cuts it into repeats (outer UDP,
/// tunnel header, inner Ethernet, inner IP, inner TCP/UDP). Without them each segment after the
/// first was short by 74 bytes (VXLAN, IPv4, TCP with timestamps). `None`: not a tunnel netmon
/// reads, or headers it cannot read; the plain UDP header is used then.
#[inline(always)]
fn udp_tunnel_header_len(ctx: &TcContext, udp_off: u32, dst_port: u16) -> Option<u32> {
    let mut off = udp_off + UDP_HLEN;
    let ethertype = match dst_port {
        VXLAN_PORT | VXLAN_LINUX_PORT => {
            off += VXLAN_HLEN;
            ETH_P_TEB
        }
        GENEVE_PORT => {
            // Version and option length (in 4-byte words), flags, then the protocol type.
            let h = ctx.load::<[u8; 4]>(off as usize).ok()?;
            off += GENEVE_HLEN + u32::from(h[0] & 0x3f) * 4;
            u16::from_be_bytes([h[2], h[3]])
        }
        _ => return None,
    };
    let ethertype = if ethertype == ETH_P_TEB {
        let inner = u16::from_be(ctx.load::<u16>((off + 12) as usize).ok()?);
        off += ETH_HLEN;
        inner
    } else {
        ethertype
    };
    let (proto, ip_len) = match ethertype {
        ETH_P_IP => {
            let b = ctx.load::<[u8; 10]>(off as usize).ok()?;
            (b[9], u32::from(b[0] & 0x0f) * 4)
        }
        ETH_P_IPV6 => (ctx.load::<u8>((off + 6) as usize).ok()?, IPV6_HLEN),
        _ => return None,
    };
    off += ip_len;
    let l4 = match proto {
        IPPROTO_TCP => tcp_header_len(ctx, off),
        IPPROTO_UDP | IPPROTO_UDPLITE => UDP_HLEN,
        _ => 0,
    };
    Some(off + l4 - udp_off)
}

/// L3 bytes of a packet that is not GSO: the IP length when it fits, so Ethernet padding of short
/// frames is not counted as IP bytes (iftop counts the IP length too).
#[inline(always)]
fn plain_len(l3: &L3, l3_len: u32) -> u32 {
    let claimed = l3.claimed_len;
    if claimed >= l3.l4_off - l3.off && claimed <= l3_len && claimed > 0 {
        claimed
    } else {
        l3_len
    }
}

/// Packets and L3 bytes a GSO super-packet puts on the wire: `segs` packets, each carrying its own
/// copy of the IP and L4 headers. Its IP length field may be 0 (BIG TCP) or describe only the
/// super-packet, so the skb length is used instead.
#[inline(always)]
fn gso_wire_size(
    l3: &L3,
    l3_len: u32,
    l4_hdr_len: u32,
    gso_segs: u32,
    gso_size: u32,
) -> (u64, u64) {
    let hdr_len = (l3.l4_off - l3.off) + l4_hdr_len;
    let mut segs = gso_segs;
    if segs == 0 && gso_size > 0 && l3_len > hdr_len {
        segs = (l3_len - hdr_len).div_ceil(gso_size);
    }
    if segs > 1 {
        let extra = u64::from(segs - 1) * u64::from(hdr_len);
        return (u64::from(segs), u64::from(l3_len) + extra);
    }
    (1, u64::from(plain_len(l3, l3_len)))
}

#[inline(always)]
fn has_ports(proto: u8) -> bool {
    matches!(
        proto,
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_UDPLITE | IPPROTO_SCTP | IPPROTO_DCCP
    )
}

/// Every frame the fixed blocks do not cover, one header at a time.
#[inline(always)]
fn general<const RAW: bool>(ctx: &TcContext) -> Option<(L3, Addrs)> {
    let (off, ethertype) = link_layer::<RAW>(ctx)?;
    match ethertype {
        ETH_P_IP => ipv4(ctx, off),
        ETH_P_IPV6 => ipv6(ctx, off),
        _ => None,
    }
}

/// Offset of the network header and its ethertype.
#[inline(always)]
fn link_layer<const RAW: bool>(ctx: &TcContext) -> Option<(u32, u16)> {
    if RAW {
        let first = ctx.load::<u8>(0).ok()?;
        return match first >> 4 {
            4 => Some((0, ETH_P_IP)),
            6 => Some((0, ETH_P_IPV6)),
            _ => None,
        };
    }
    let mut ethertype = u16::from_be(ctx.load::<u16>(12).ok()?);
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        // A tag is TCI (2 bytes) then the next ethertype (2 bytes).
        ethertype = u16::from_be(ctx.load::<u16>((off + 2) as usize).ok()?);
        off += 4;
    }
    Some((off, ethertype))
}

/// Four wire bytes as the word the key stores (the same bytes in memory).
#[inline(always)]
fn word(b: [u8; 4]) -> u32 {
    u32::from_ne_bytes(b)
}

#[inline(always)]
fn ipv4(ctx: &TcContext, off: u32) -> Option<(L3, Addrs)> {
    let ip = ctx.load::<Ipv4Hdr>(off as usize).ok()?;
    if ip.vihl >> 4 != 4 {
        return None;
    }
    let ihl = u32::from(ip.vihl & 0x0f) * 4;
    if ihl < IPV4_HLEN {
        return None;
    }
    let frag = u16::from_be_bytes(ip.frags);
    let l3 = L3 {
        off,
        l4_off: off + ihl,
        proto: ip.proto,
        claimed_len: u32::from(u16::from_be_bytes(ip.tot_len)),
        has_l4: frag & 0x1fff == 0,
        ports: None,
    };
    Some((
        l3,
        Addrs::V4 {
            src: word(ip.src_addr),
            dst: word(ip.dst_addr),
        },
    ))
}

#[inline(always)]
fn ipv6(ctx: &TcContext, off: u32) -> Option<(L3, Addrs)> {
    let ip = ctx.load::<Ipv6Hdr>(off as usize).ok()?;
    if ip.vcf[0] >> 4 != 6 {
        return None;
    }
    let payload_len = u32::from(u16::from_be_bytes(ip.payload_len));
    let mut next = ip.next_hdr;
    let mut cur = off + IPV6_HLEN;
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
    let words = |a: [u8; 16]| {
        [
            word([a[0], a[1], a[2], a[3]]),
            word([a[4], a[5], a[6], a[7]]),
            word([a[8], a[9], a[10], a[11]]),
            word([a[12], a[13], a[14], a[15]]),
        ]
    };
    let l3 = L3 {
        off,
        l4_off: cur,
        proto: next,
        claimed_len: if payload_len == 0 {
            0
        } else {
            IPV6_HLEN + payload_len
        },
        has_l4,
        ports: None,
    };
    Some((
        l3,
        Addrs::V6 {
            src: words(ip.src_addr),
            dst: words(ip.dst_addr),
        },
    ))
}
