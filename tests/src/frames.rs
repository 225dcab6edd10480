//! Frames for the differential test, generated with proptest: mostly well-formed Ethernet or
//! raw-IP frames (IPv4 with and without options, IPv6 with extension chains, fragments, TCP,
//! UDP, SCTP, ICMP, VXLAN and Geneve around an inner frame, VLAN and QinQ tags), and as many
//! broken ones (truncated anywhere, wrong lengths and versions, a third VLAN tag, extension
//! chains longer than eight, garbage), with GSO metadata on some. Addresses and ports come from
//! small pools, so frames of a run land on the same flows and their sums are compared too.

use crate::reference::Frame;
use netmon_common::{Direction, LinkKind};
use proptest::prelude::*;

fn addr4() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        Just([10, 0, 0, 1]),
        Just([10, 0, 0, 2]),
        Just([192, 168, 7, 9]),
        any::<[u8; 4]>(),
    ]
}

fn addr6() -> impl Strategy<Value = [u8; 16]> {
    prop_oneof![
        Just([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        Just([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
        any::<[u8; 16]>(),
    ]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(53u16),
        Just(443),
        Just(5201),
        Just(40000),
        Just(4789),
        Just(8472),
        Just(6081),
        any::<u16>()
    ]
}

fn proto() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => Just(6u8),
        4 => Just(17u8),
        1 => Just(1u8),
        1 => Just(58u8),
        1 => Just(132u8),
        1 => Just(33u8),
        1 => Just(136u8),
        1 => Just(47u8),
        1 => any::<u8>(),
    ]
}

/// An L4 header and payload for `proto`: ports, TCP's data offset, UDP's length.
fn l4(proto: u8) -> impl Strategy<Value = Vec<u8>> {
    (
        port(),
        port(),
        2u8..=15,
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(move |(s, d, doff, payload)| {
            let mut h = Vec::new();
            match proto {
                6 => {
                    h.extend(s.to_be_bytes());
                    h.extend(d.to_be_bytes());
                    h.extend([0u8; 8]);
                    h.push(doff << 4);
                    h.extend([0x18, 0, 0, 0, 0, 0, 0]);
                    // Options to fill the data offset (when it says more than 20).
                    h.resize(h.len() + usize::from(doff.saturating_sub(5)) * 4, 1);
                }
                17 | 136 => {
                    h.extend(s.to_be_bytes());
                    h.extend(d.to_be_bytes());
                    h.extend(((8 + payload.len()) as u16).to_be_bytes());
                    h.extend([0, 0]);
                }
                132 | 33 => {
                    h.extend(s.to_be_bytes());
                    h.extend(d.to_be_bytes());
                    h.extend([0u8; 8]);
                }
                _ => h.extend([8, 0, 0, 0, 0, 1, 0, 1]),
            }
            h.extend(payload);
            h
        })
}

/// An inner Ethernet frame for a tunnel: IPv4 or IPv6 with TCP or UDP.
fn inner() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), prop_oneof![Just(6u8), Just(17u8)])
        .prop_flat_map(|(v6, p)| (Just(v6), Just(p), l4(p), addr4(), addr4(), addr6(), addr6()))
        .prop_map(|(v6, p, l4, a, b, a6, b6)| {
            let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
            if v6 {
                f.extend([0x86, 0xDD]);
                f.extend(ipv6_header(p, l4.len(), a6, b6));
            } else {
                f.extend([0x08, 0x00]);
                f.extend(ipv4_header(p, 0, 20 + l4.len(), 0, a, b));
            }
            f.extend(l4);
            f
        })
}

fn ipv4_header(
    proto: u8,
    options: usize,
    total: usize,
    frag: u16,
    src: [u8; 4],
    dst: [u8; 4],
) -> Vec<u8> {
    let ihl = 20 + options;
    let mut h = vec![0x40 | (ihl / 4) as u8, 0];
    h.extend((total.min(65535) as u16).to_be_bytes());
    h.extend([0, 1]);
    h.extend(frag.to_be_bytes());
    h.extend([64, proto, 0, 0]);
    h.extend(src);
    h.extend(dst);
    h.extend(std::iter::repeat_n(1u8, options));
    h
}

fn ipv6_header(next: u8, payload: usize, src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((payload.min(65535) as u16).to_be_bytes());
    h.extend([next, 64]);
    h.extend(src);
    h.extend(dst);
    h
}

/// An L4 part: plain, or UDP into a VXLAN/Geneve tunnel around an inner frame.
fn l4_or_tunnel(proto: u8) -> BoxedStrategy<(u8, Vec<u8>)> {
    if proto != 17 {
        return l4(proto).prop_map(move |b| (proto, b)).boxed();
    }
    prop_oneof![
        3 => l4(17).prop_map(|b| (17u8, b)),
        1 => (prop_oneof![Just(4789u16), Just(8472), Just(6081)], inner(), 0u8..4).prop_map(
            |(dport, inner, opts)| {
                let mut t = Vec::new();
                if dport == 6081 {
                    t.extend([opts & 0x3f, 0, 0x65, 0x58, 0, 0, 42, 0]);
                    t.extend(std::iter::repeat_n(0u8, usize::from(opts) * 4));
                } else {
                    t.extend([0x08, 0, 0, 0, 0, 0, 42, 0]);
                }
                t.extend(inner);
                let mut u = 33333u16.to_be_bytes().to_vec();
                u.extend(dport.to_be_bytes());
                u.extend(((8 + t.len()) as u16).to_be_bytes());
                u.extend([0, 0]);
                u.extend(t);
                (17u8, u)
            }
        ),
    ]
    .boxed()
}

/// An IPv4 packet: options, fragments, a length that may lie, a version or IHL that may.
fn ipv4_packet() -> impl Strategy<Value = Vec<u8>> {
    (
        proto(),
        0usize..=10,
        addr4(),
        addr4(),
        0u8..10,
        any::<u16>(),
        any::<u16>(),
    )
        .prop_flat_map(|(p, opt_words, a, b, kind, frag_bits, bad_len)| {
            (
                l4_or_tunnel(p),
                Just((opt_words, a, b, kind, frag_bits, bad_len)),
            )
        })
        .prop_map(|((p, l4), (opt_words, a, b, kind, frag_bits, bad_len))| {
            let options = if kind < 6 { 0 } else { opt_words * 4 };
            let frag = match kind {
                7 => 0x2000,             // first fragment (MF)
                8 => frag_bits & 0x1fff, // a later fragment
                9 => frag_bits,          // anything
                _ => 0,
            };
            let total = 20 + options + l4.len();
            let mut h = ipv4_header(p, options, total, frag, a, b);
            match kind {
                1 => h[2..4].copy_from_slice(&bad_len.to_be_bytes()),
                2 => h[0] = 0x40 | (bad_len as u8 & 0x0f), // IHL of anything, < 5 too
                3 => h[0] = (bad_len as u8 & 0xf0) | 0x05, // any version
                _ => {}
            }
            h.extend(l4);
            h
        })
}

/// An IPv6 packet behind a chain of extension headers (more than eight sometimes).
fn ipv6_packet() -> impl Strategy<Value = Vec<u8>> {
    let ext = (
        prop_oneof![Just(0u8), Just(43), Just(60), Just(44), Just(51)],
        0u8..3,
        any::<u16>(),
    );
    (
        proto(),
        prop::collection::vec(ext, 0..11),
        addr6(),
        addr6(),
        any::<bool>(),
        any::<u16>(),
    )
        .prop_flat_map(|(p, exts, a, b, bad, bad_len)| {
            (l4_or_tunnel(p), Just((exts, a, b, bad, bad_len)))
        })
        .prop_map(|((p, l4), (exts, a, b, bad, bad_len))| {
            let mut chain = Vec::new();
            for (i, (kind, len, frag)) in exts.iter().enumerate() {
                let next = exts.get(i + 1).map_or(p, |e| e.0);
                match kind {
                    44 => chain.extend([next, 0, (frag >> 8) as u8, *frag as u8, 0, 0, 0, 7]),
                    51 => {
                        // (len + 2) * 4 bytes.
                        let n = (usize::from(*len) + 2) * 4;
                        let mut e = vec![next, *len];
                        e.resize(n, 0);
                        chain.extend(e);
                    }
                    _ => {
                        let n = (usize::from(*len) + 1) * 8;
                        let mut e = vec![next, *len];
                        e.resize(n, 0);
                        chain.extend(e);
                    }
                }
            }
            let first = exts.first().map_or(p, |e| e.0);
            let mut h = ipv6_header(first, chain.len() + l4.len(), a, b);
            if bad {
                h[4..6].copy_from_slice(&bad_len.to_be_bytes());
            }
            h.extend(chain);
            h.extend(l4);
            h
        })
}

/// Ethernet with 0–3 VLAN tags (three is one more than netmon follows), or raw IP.
fn framed(packet: Vec<u8>, ethertype: u16, link: LinkKind, tags: &[u16]) -> Vec<u8> {
    if link == LinkKind::RawIp {
        return packet;
    }
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for tpid in tags {
        f.extend(tpid.to_be_bytes());
        f.extend([0x00, 0x64]);
    }
    f.extend(ethertype.to_be_bytes());
    f.extend(packet);
    f
}

pub fn frame() -> impl Strategy<Value = Frame> {
    let packet = prop_oneof![
        5 => ipv4_packet().prop_map(|p| (p, 0x0800u16)),
        4 => ipv6_packet().prop_map(|p| (p, 0x86DDu16)),
        1 => (prop::collection::vec(any::<u8>(), 0..80), any::<u16>()),
    ];
    let tags = prop::collection::vec(prop_oneof![Just(0x8100u16), Just(0x88A8)], 0..=3);
    let link = prop_oneof![4 => Just(LinkKind::Ethernet), 1 => Just(LinkKind::RawIp)];
    let direction = prop_oneof![Just(Direction::Ingress), Just(Direction::Egress)];
    let gso = prop_oneof![
        6 => Just((0u16, 0u16)),
        1 => (0u16..70, 0u16..2000),
        1 => (any::<u16>(), any::<u16>()),
    ];
    // Cut the frame somewhere (or not): a truncated header or payload.
    let cut = prop_oneof![4 => Just(None), 1 => (0usize..200).prop_map(Some)];
    (packet, tags, link, direction, gso, cut).prop_map(
        |((packet, ethertype), tags, link, direction, (segs, size), cut)| {
            let mut bytes = framed(packet, ethertype, link, &tags);
            if let Some(at) = cut {
                bytes.truncate(at.max(1));
            }
            Frame {
                bytes,
                link,
                direction,
                gso_segs: segs,
                gso_size: size,
            }
        },
    )
}

/// L3 bytes of a [`numbered_udp`] frame (IPv4 header, UDP header, 4 bytes of payload).
pub const NUMBERED_UDP_L3: u64 = 32;

/// An Ethernet + IPv4 + UDP frame of a flow of its own for each `(set, i)`, `i` < 2^24:
/// 10.`set`.(i >> 16).1 port `i` → 10.0.0.1:53. The scale test and the snapshot benchmark fill
/// the flow table with these through the real classifier.
pub fn numbered_udp(set: u8, i: u32) -> [u8; 46] {
    let mut f = [0u8; 46];
    f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(NUMBERED_UDP_L3 as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, set, (i >> 16) as u8, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 1]);
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(i as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&53u16.to_be_bytes());
    udp[4..6].copy_from_slice(&12u16.to_be_bytes());
    f
}
