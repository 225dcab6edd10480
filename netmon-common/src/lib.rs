//! Types shared by netmon's kernel program (`netmon-ebpf`) and its userspace (`netmon`).
//!
//! Every type here crosses the user/kernel boundary as raw bytes through a BPF map, so each is
//! `#[repr(C)]`, has no implicit padding (padding would be uninitialised in the kernel and make
//! hash-map keys differ for equal flows), and has its size and alignment asserted at compile time.
#![no_std]

use core::mem::{align_of, size_of};

/// Name of the per-flow hash map ([`FlowKey`] → [`FlowValue`]).
pub const FLOWS_MAP: &str = "NETMON_FLOWS";
/// Name of the per-CPU hash map of interface totals ([`TotalsKey`] → [`DirTotals`]).
pub const TOTALS_MAP: &str = "NETMON_TOTALS";
/// Name of the hash map of per-interface link layer ([`ifindex`] → [`LinkKind`] as `u32`).
pub const LINKS_MAP: &str = "NETMON_LINKS";
/// Program attached to clsact/TCX ingress.
pub const INGRESS_PROG: &str = "netmon_ingress";
/// Program attached to clsact/TCX egress.
pub const EGRESS_PROG: &str = "netmon_egress";

/// Default capacity of [`FLOWS_MAP`]; userspace may change it at load time.
pub const DEFAULT_FLOW_CAPACITY: u32 = 65_536;
/// Capacity of [`TOTALS_MAP`]: two directions for this many interfaces.
pub const TOTALS_CAPACITY: u32 = 8_192;
/// Capacity of [`LINKS_MAP`].
pub const LINKS_CAPACITY: u32 = 4_096;

/// Address family stored in [`FlowKey::family`].
pub const FAMILY_V4: u8 = 4;
/// Address family stored in [`FlowKey::family`].
pub const FAMILY_V6: u8 = 6;

/// Traffic direction, as seen from the interface's host.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Received: the packet's destination is the local end.
    Ingress = 0,
    /// Sent: the packet's source is the local end.
    Egress = 1,
}

/// What sits in front of the IP header on an interface.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// Ethernet header, possibly with 802.1Q/802.1ad tags (also loopback).
    Ethernet = 0,
    /// The frame starts at the IP header (tun, wireguard, ip tunnels).
    RawIp = 1,
}

/// One connection on one interface. Both directions of a connection share a key: ingress packets
/// use their destination as `local`, egress packets their source.
///
/// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`) so every address is 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub ifindex: u32,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// Host byte order; 0 when the protocol has no ports or the packet is a non-first fragment.
    pub local_port: u16,
    pub remote_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub proto: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Explicit padding; always zero so equal flows hash equally.
    pub _pad: [u8; 2],
}

/// Counters of one flow. Bytes are L3 (IP header + payload) as iftop counts them; a GSO
/// super-packet counts as the segments it becomes on the wire, each with its own headers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    /// `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC_COARSE, one-tick resolution) when the entry
    /// was created. The coarse clock is ~25 ns per packet cheaper than `bpf_ktime_get_ns` in a
    /// VM, where reading the TSC is slow (measured with bpf_stats, `cargo xtask bench`).
    pub first_seen_ns: u64,
    /// `bpf_ktime_get_coarse_ns` of the latest packet.
    pub last_seen_ns: u64,
}

/// Key of the per-CPU interface totals.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TotalsKey {
    pub ifindex: u32,
    /// [`Direction`] as `u32`.
    pub direction: u32,
}

/// Per-CPU totals of one direction of one interface. These are counted before and independently
/// of the flow table, so they stay exact when the table is full.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirTotals {
    /// Every frame the classifier saw (one per skb), as the kernel's interface counters count.
    pub frames: u64,
    /// `skb->len` of every frame, link-layer header included: equals the kernel's L2 counters.
    pub frame_bytes: u64,
    /// IP packets on the wire (a GSO super-packet counts its segments).
    pub ip_packets: u64,
    /// L3 bytes of those packets (per-segment headers included for GSO).
    pub ip_bytes: u64,
    /// Frames that are not IP, or whose IP header could not be read (truncated, garbage).
    pub other_frames: u64,
    /// `skb->len` of the `other_frames`.
    pub other_bytes: u64,
    /// IP packets whose flow could not get a table entry; they are in `ip_*` but in no flow.
    pub overflow_packets: u64,
    /// L3 bytes of `overflow_packets`.
    pub overflow_bytes: u64,
    /// Insert attempts refused because the flow table was full (E2BIG).
    pub overflow_table_full: u64,
    /// Insert attempts that failed for another reason (ENOMEM, or an entry that vanished).
    pub overflow_insert_failed: u64,
}

const _: () = {
    assert!(size_of::<FlowKey>() == 44);
    assert!(align_of::<FlowKey>() == 4);
    assert!(size_of::<FlowValue>() == 48);
    assert!(align_of::<FlowValue>() == 8);
    assert!(size_of::<TotalsKey>() == 8);
    assert!(size_of::<DirTotals>() == 80);
    assert!(align_of::<DirTotals>() == 8);
};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all four are repr(C), contain only integers and byte arrays, and have no padding
    // (asserted above), so every bit pattern is valid and no byte is uninitialised.
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowValue {}
    unsafe impl aya::Pod for super::TotalsKey {}
    unsafe impl aya::Pod for super::DirTotals {}
}
