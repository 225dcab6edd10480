//! Types shared by netmon's kernel program (`netmon-ebpf`) and its userspace (`netmon`).
//!
//! Every type here crosses the user/kernel boundary as raw bytes through a BPF map, so each is
//! `#[repr(C)]`, has no implicit padding (padding would be uninitialised in the kernel and make
//! hash-map keys differ for equal flows), and has its size and alignment asserted at compile time.
#![no_std]

use core::mem::{align_of, size_of};

/// Name of the IPv4 flow map ([`FlowKey4`] → [`FlowSlot`]).
pub const FLOWS4_MAP: &str = "NETMON_FLOWS4";
/// Name of the IPv6 flow map ([`FlowKey6`] → [`FlowSlot`]).
pub const FLOWS6_MAP: &str = "NETMON_FLOWS6";
/// Name of the per-slot counters ([`SlotCounters`]): an array userspace maps into its memory
/// (`BPF_F_MMAPABLE`), so reading every flow's counters is a memory read, not a syscall per
/// entry or a walk of hash buckets.
pub const COUNTERS_MAP: &str = "NETMON_COUNTERS";
/// Name of the per-slot flow keys ([`SlotKey`]), mapped by userspace too: written when a slot
/// gets its flow, then its generation moves.
pub const KEYS_MAP: &str = "NETMON_KEYS";
/// Name of the per-slot sockets ([`SlotSockets`]), mapped by userspace.
pub const SOCKETS_MAP: &str = "NETMON_SOCKETS";
/// Name of the queue of slots userspace gave back (evicted flows' slots, after a quarantine).
pub const FREE_MAP: &str = "NETMON_FREE";
/// Name of the one-element array holding the next never-used slot (a bump allocator, `u64`).
pub const NEXT_MAP: &str = "NETMON_NEXT";
/// Name of the classifier's global holding the number of slots (set at load time).
pub const SLOTS_GLOBAL: &str = "SLOTS";
/// Name of the per-CPU array of interface totals ([`SlotTotals`]), indexed by
/// [`totals_index`].
pub const TOTALS_MAP: &str = "NETMON_TOTALS";
/// Name of the per-CPU hash of interface totals ([`TotalsKey`] → [`DirTotals`]) for interfaces
/// whose array slot another attached interface holds.
pub const TOTALS_SPILL_MAP: &str = "NETMON_TOTALS_SPILL";

/// Program for clsact/TCX ingress of an interface with an Ethernet header.
pub const INGRESS_PROG: &str = "netmon_ingress";
/// Program for clsact/TCX egress of an interface with an Ethernet header.
pub const EGRESS_PROG: &str = "netmon_egress";
/// Program for ingress of an interface whose frames start at the IP header (tun, wireguard).
pub const INGRESS_RAW_PROG: &str = "netmon_ingress_raw";
/// Program for egress of an interface whose frames start at the IP header.
pub const EGRESS_RAW_PROG: &str = "netmon_egress_raw";
/// A classifier that does nothing but return "continue": the floor the benchmark measures
/// netmon's programs against. netmon itself never attaches it.
pub const FLOOR_PROG: &str = "netmon_floor";

/// Default number of flows counted at once (IPv4 and IPv6 together: the slots, and the most
/// entries of each family's hash map); userspace may change it at load time.
pub const DEFAULT_FLOW_CAPACITY: u32 = 65_536;
/// Interfaces that get an array slot of their own: an attached interface uses slot
/// `ifindex % TOTALS_SLOTS` when no other attached interface holds it, the spill hash otherwise.
pub const TOTALS_SLOTS: u32 = 1_024;
/// Capacity of [`TOTALS_SPILL_MAP`]: two directions for this many interfaces.
pub const TOTALS_SPILL_CAPACITY: u32 = 8_192;

/// Traffic direction, as seen from the interface's host.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Received: the packet's destination is the local end.
    Ingress = 0,
    /// Sent: the packet's source is the local end.
    Egress = 1,
}

/// What sits in front of the IP header on an interface; it picks the program pair.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// Ethernet header, possibly with 802.1Q/802.1ad tags (also loopback).
    Ethernet = 0,
    /// The frame starts at the IP header (tun, wireguard, ip tunnels).
    RawIp = 1,
}

/// Index of one direction of one interface in [`TOTALS_MAP`].
#[inline(always)]
pub const fn totals_index(ifindex: u32, direction: Direction) -> u32 {
    (ifindex % TOTALS_SLOTS) * 2 + direction as u32
}

/// One IPv4 connection on one interface. Both directions of a connection share a key: ingress
/// packets use their destination as `local`, egress packets their source.
///
/// Addresses are words holding the wire's bytes in order (network byte order in memory:
/// `to_ne_bytes` gives the address bytes back). Words, not byte arrays: the BPF backend reads,
/// writes and copies a byte array one byte at a time.
///
/// IPv4 has its own table with this 20-byte key: against an IPv4-mapped 44-byte key in one
/// table for both families, it measured 85 against 105–114 ns per packet (BPF_PROG_TEST_RUN,
/// alternating builds), the difference being the hashing and comparing of the longer key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey4 {
    pub ifindex: u32,
    pub local_addr: u32,
    pub remote_addr: u32,
    /// Host byte order; 0 when the protocol has no ports or the packet is a non-first fragment.
    pub local_port: u16,
    pub remote_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...).
    pub proto: u8,
    /// Explicit padding; always zero so equal flows hash equally.
    pub _pad: [u8; 3],
}

/// One IPv6 connection on one interface; as [`FlowKey4`], with four words per address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey6 {
    pub ifindex: u32,
    pub local_addr: [u32; 4],
    pub remote_addr: [u32; 4],
    pub local_port: u16,
    pub remote_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, 58 ICMPv6, ...).
    pub proto: u8,
    pub _pad: [u8; 3],
}

/// What a flow's hash entry holds: the slot of its counters, key and sockets in the per-slot
/// arrays, and which directions' sockets were looked at. Eight bytes: a packet of a known flow
/// reads it, tests one bit, and adds to its slot's counters.
///
/// There is no timestamp: userspace judges a flow idle from counters that did not move between
/// two of its reads, so the classifier reads no clock.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSlot {
    pub slot: u32,
    /// Which directions' sockets were looked at: [`FLOW_SENT_SEEN`], [`FLOW_RECEIVED_SEEN`].
    pub attr: u32,
}

/// Counters of one flow, in its slot of [`COUNTERS_MAP`]. Bytes are L3 (IP header + payload) as
/// iftop counts them; a GSO super-packet counts as the segments it becomes on the wire, each
/// with its own headers. A slot's counters only grow: when userspace gives an evicted flow's
/// slot back, it remembers where they stood, and the slot's next flow counts from there.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// Whose slot it is: the flow's key, either family, with its interface, and the slot's
/// generation. The classifier writes the key when the slot gets its flow, then adds one to
/// `generation` atomically (a full barrier), so a reader that sees the generation move reads the
/// new key. 48 bytes: an array's elements are 8-byte aligned, so that is the stride anyway.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotKey {
    pub ifindex: u32,
    /// 4 or 6.
    pub family: u8,
    /// IP protocol number.
    pub proto: u8,
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: u16,
    /// IPv4 in the first word.
    pub local_addr: [u32; 4],
    pub remote_addr: [u32; 4],
    /// How many flows the slot has had. A slot userspace gave back has a flow again when this
    /// moved since.
    pub generation: u32,
}

/// The sockets of one flow, in its slot of [`SOCKETS_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotSockets {
    /// Cookie of the socket on this host that sent the flow's packets out (`skb->sk` on egress,
    /// as `bpf_get_socket_cookie` gives it); 0 when none was seen.
    pub cookie: u64,
    /// Cookie of the socket that sent the flow's first received packet, when that packet still
    /// carries it: one that came through a veth from another network namespace of this host (a
    /// container's). 0 otherwise.
    pub peer_cookie: u64,
    /// A copy of [`FlowSlot::attr`], written with the cookies, for userspace (which reads this
    /// array in place and not the hash).
    pub attr: u32,
    pub _pad: u32,
}

/// [`FlowSlot::attr`]: a sent packet's socket was looked at (it is in the slot's `cookie`, or
/// there was none). Until then, the next sent packet looks.
pub const FLOW_SENT_SEEN: u32 = 1;
/// [`FlowSlot::attr`]: a received packet's socket was looked at (`peer_cookie`).
pub const FLOW_RECEIVED_SEEN: u32 = 2;

/// Name of the map of socket owners ([`SocketOwner`] by socket cookie), written by the cgroup
/// socket programs when a socket is created and when it is released.
pub const OWNERS_MAP: &str = "NETMON_OWNERS";
/// Entries of [`OWNERS_MAP`] (an LRU map: the oldest go first).
pub const OWNERS_CAPACITY: u32 = 65_536;
/// `cgroup/sock_create` program: records who created an IPv4/IPv6 socket.
pub const SOCK_CREATE_PROG: &str = "netmon_sock_create";
/// `cgroup/sock_release` program: records that a socket closed, and who closed it.
pub const SOCK_RELEASE_PROG: &str = "netmon_sock_release";
/// `cgroup/post_bind4` and `cgroup/post_bind6` programs: record the address a socket bound to,
/// so that a receive-only server is found by address even after it closed.
pub const POST_BIND4_PROG: &str = "netmon_post_bind4";
pub const POST_BIND6_PROG: &str = "netmon_post_bind6";
/// The classifier pair without socket attribution, for the benchmark's comparison only.
pub const INGRESS_PLAIN_PROG: &str = "netmon_ingress_plain";
pub const EGRESS_PLAIN_PROG: &str = "netmon_egress_plain";

/// Who a socket belongs to: the process that created it (or, for a socket netmon first saw
/// closing, the one that closed it), and the address it was bound to, if it was.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketOwner {
    /// Thread-group id: the process id.
    pub tgid: u32,
    pub uid: u32,
    /// The cgroup v2 id of the process when it created the socket (the socket keeps it).
    pub cgroup_id: u64,
    /// The network namespace the socket lives in.
    pub netns_cookie: u64,
    /// The process's name when it acted (`comm`, NUL-padded).
    pub comm: [u8; 16],
    /// The local address of an explicit `bind(2)`, as the kernel keeps it (network order;
    /// IPv4 in the first word); all zero for a wildcard bind or none.
    pub bound_addr: [u32; 4],
    /// The local port of that bind, host order; 0 when the socket was never bound.
    pub bound_port: u16,
    /// IP protocol of the socket (6 TCP, 17 UDP, 1/58 ICMP): set with the bind.
    pub protocol: u8,
    /// `AF_INET` (2) or `AF_INET6` (10): set with the bind.
    pub family: u8,
    /// 1 once the socket was released.
    pub closed: u8,
    /// 1 when the record was made at release (the creator was not seen).
    pub seen_at_release: u8,
    pub _pad: [u8; 2],
}

/// Key of [`TOTALS_SPILL_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TotalsKey {
    pub ifindex: u32,
    /// [`Direction`] as `u32`.
    pub direction: u32,
}

/// Totals of one direction of one interface, per CPU. These are counted before and independently
/// of the flow tables, so they stay exact when one is full.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirTotals {
    /// Every frame the classifier saw (one per skb), as the kernel's interface counters count.
    pub frames: u64,
    /// `skb->len` of every frame, link-layer header included: equals the kernel's L2 counters.
    pub frame_bytes: u64,
    // No IP packet or byte count: userspace derives it from the flows plus the overflow below,
    // so that a window's totals are exactly its rows' sum (the tables and these totals are read
    // one after the other, not at one instant).
    /// Frames that are not IP, or whose IP header could not be read (truncated, garbage).
    pub other_frames: u64,
    /// `skb->len` of the `other_frames`.
    pub other_bytes: u64,
    /// IP packets whose flow could not get a table entry: counted here and in no flow.
    pub overflow_packets: u64,
    /// L3 bytes of `overflow_packets`.
    pub overflow_bytes: u64,
    /// Insert attempts refused because the flow table was full (E2BIG).
    pub overflow_table_full: u64,
    /// Insert attempts that failed for another reason (ENOMEM, or an entry that vanished).
    pub overflow_insert_failed: u64,
}

/// One entry of [`TOTALS_MAP`]: the totals of the interface that holds the slot. `owner` is the
/// holder's ifindex (0: free), written by userspace on every CPU when it attaches; the classifier
/// counts into the slot only when `owner` is its packet's ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotTotals {
    pub owner: u32,
    pub _pad: u32,
    pub totals: DirTotals,
}

const _: () = {
    assert!(size_of::<FlowKey4>() == 20);
    assert!(align_of::<FlowKey4>() == 4);
    assert!(size_of::<FlowKey6>() == 44);
    assert!(align_of::<FlowKey6>() == 4);
    assert!(size_of::<FlowSlot>() == 8);
    assert!(size_of::<SlotCounters>() == 32);
    assert!(align_of::<SlotCounters>() == 8);
    assert!(size_of::<SlotKey>() == 48);
    assert!(align_of::<SlotKey>() == 4);
    assert!(core::mem::offset_of!(SlotKey, generation) == 44);
    assert!(size_of::<SlotSockets>() == 24);
    assert!(align_of::<SlotSockets>() == 8);
    assert!(size_of::<SocketOwner>() == 64);
    assert!(align_of::<SocketOwner>() == 8);
    assert!(core::mem::offset_of!(SocketOwner, bound_port) == 56);
    assert!(core::mem::offset_of!(SocketOwner, _pad) == 62);
    assert!(size_of::<TotalsKey>() == 8);
    assert!(size_of::<DirTotals>() == 64);
    assert!(align_of::<DirTotals>() == 8);
    assert!(size_of::<SlotTotals>() == 72);
    assert!(align_of::<SlotTotals>() == 8);
    assert!(TOTALS_SLOTS.is_power_of_two());
};

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C), contain only integers and byte arrays, and have no padding
    // (asserted above), so every bit pattern is valid and no byte is uninitialised.
    unsafe impl aya::Pod for super::FlowKey4 {}
    unsafe impl aya::Pod for super::FlowKey6 {}
    unsafe impl aya::Pod for super::FlowSlot {}
    unsafe impl aya::Pod for super::SlotCounters {}
    unsafe impl aya::Pod for super::SlotKey {}
    unsafe impl aya::Pod for super::SlotSockets {}
    unsafe impl aya::Pod for super::SocketOwner {}
    unsafe impl aya::Pod for super::TotalsKey {}
    unsafe impl aya::Pod for super::DirTotals {}
    unsafe impl aya::Pod for super::SlotTotals {}
}
