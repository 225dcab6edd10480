//! netmon's TC classifier.
//!
//! Attached to clsact/TCX ingress and egress of an interface, it adds every packet to the per-CPU
//! interface totals and to one entry of a flow table. It only reads the packet (through
//! `bpf_skb_load_bytes`, which is bounds-checked and also works on non-linear GSO skbs) and
//! returns `TC_ACT_UNSPEC` on every path, so the packet continues to the next filter exactly as if
//! netmon were not there.
//!
//! Per packet, the common case costs one hash lookup (the flow, in the table of its family), one
//! inlined per-CPU array lookup (the totals), one header read and two atomic adds. There is no clock read: userspace judges a
//! flow idle from counters that did not move between its reads. The link layer is not looked up: each
//! interface gets the program pair of its kind (`*_raw` for devices without an Ethernet header),
//! chosen when userspace attaches.
#![no_std]
#![no_main]
// BPF has a locked add but no compare-and-swap loop, so core's AtomicU64::fetch_add is not
// available on this target; the intrinsic lowers to BPF_ATOMIC ADD directly.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod parse;

mod owners;

use aya_ebpf::{
    EbpfContext as _,
    bindings::BPF_NOEXIST,
    helpers::generated::bpf_get_socket_cookie,
    macros::{classifier, map},
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
    programs::TcContext,
};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use netmon_common::{
    DEFAULT_FLOW_CAPACITY, DirTotals, Direction, FLOW_RECEIVED_SEEN, FLOW_SENT_SEEN, FlowKey4,
    FlowKey6, FlowValue, SlotTotals, TOTALS_SLOTS, TOTALS_SPILL_CAPACITY, TotalsKey, totals_index,
};
use parse::Parsed;

/// "No verdict": TC and TCX hand the packet to the next program/filter, then to the stack.
/// TC_ACT_PIPE would also pass the packet, but it ends the cls_bpf filter chain.
const TC_ACT_UNSPEC: i32 = -1;

// Capacities are replaced at load time by userspace (`--table-capacity`).
#[map(name = "NETMON_FLOWS4")]
static FLOWS4: HashMap<FlowKey4, FlowValue> = HashMap::with_max_entries(DEFAULT_FLOW_CAPACITY, 0);

#[map(name = "NETMON_FLOWS6")]
static FLOWS6: HashMap<FlowKey6, FlowValue> = HashMap::with_max_entries(DEFAULT_FLOW_CAPACITY, 0);

#[map(name = "NETMON_TOTALS")]
static TOTALS: PerCpuArray<SlotTotals> = PerCpuArray::with_max_entries(TOTALS_SLOTS * 2, 0);

#[map(name = "NETMON_TOTALS_SPILL")]
static TOTALS_SPILL: PerCpuHashMap<TotalsKey, DirTotals> =
    PerCpuHashMap::with_max_entries(TOTALS_SPILL_CAPACITY, 0);

#[classifier]
pub fn netmon_ingress(ctx: TcContext) -> i32 {
    account::<false, true>(&ctx, Direction::Ingress);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn netmon_egress(ctx: TcContext) -> i32 {
    account::<false, true>(&ctx, Direction::Egress);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn netmon_ingress_raw(ctx: TcContext) -> i32 {
    account::<true, true>(&ctx, Direction::Ingress);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn netmon_egress_raw(ctx: TcContext) -> i32 {
    account::<true, true>(&ctx, Direction::Egress);
    TC_ACT_UNSPEC
}

/// The Ethernet pair without socket attribution: only the benchmark attaches it, to measure
/// what attribution costs per packet against it.
#[classifier]
pub fn netmon_ingress_plain(ctx: TcContext) -> i32 {
    account::<false, false>(&ctx, Direction::Ingress);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn netmon_egress_plain(ctx: TcContext) -> i32 {
    account::<false, false>(&ctx, Direction::Egress);
    TC_ACT_UNSPEC
}

/// Does nothing: the floor the benchmark measures the programs above against.
#[classifier]
pub fn netmon_floor(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

/// `RAW`: the interface's frames start at the IP header. `OWNERS`: note the flow's sockets.
#[inline(always)]
fn account<const RAW: bool, const OWNERS: bool>(ctx: &TcContext, direction: Direction) {
    // SAFETY: ctx.skb.skb is the program's context pointer; the verifier rewrites these loads.
    let (ifindex, frame_len, gso_segs, gso_size) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.ifindex, skb.len, skb.gso_segs, skb.gso_size)
    };
    let Some(totals) = totals_for(ifindex, direction) else {
        return;
    };
    // SAFETY: a per-CPU value is only written by this CPU, and a TC program does not nest with
    // itself on one CPU (ingress runs in softirq, egress with bottom halves off), so plain
    // read-modify-write is exact.
    let totals = unsafe { &mut *totals };
    totals.frames += 1;
    totals.frame_bytes += u64::from(frame_len);
    // Each arm looks its key up itself: moving a key out of the match would copy it.
    let (packets, bytes, added) =
        match parse::parse::<RAW>(ctx, direction, frame_len, gso_segs, gso_size) {
            Parsed::V4 {
                mut key,
                packets,
                bytes,
            } => {
                key.ifindex = ifindex;
                let added = add_to_flow::<_, OWNERS>(ctx, &FLOWS4, &key, direction, packets, bytes);
                (packets, bytes, added)
            }
            Parsed::V6 {
                mut key,
                packets,
                bytes,
            } => {
                key.ifindex = ifindex;
                let added = add_to_flow::<_, OWNERS>(ctx, &FLOWS6, &key, direction, packets, bytes);
                (packets, bytes, added)
            }
            Parsed::Other => {
                totals.other_frames += 1;
                totals.other_bytes += u64::from(frame_len);
                return;
            }
        };
    if let Err(reason) = added {
        totals.overflow_packets += packets;
        totals.overflow_bytes += bytes;
        match reason {
            Overflow::TableFull => totals.overflow_table_full += 1,
            Overflow::InsertFailed => totals.overflow_insert_failed += 1,
        }
    }
}

/// This CPU's totals of one direction of `ifindex`: its array slot when it holds it (the
/// lookup is inlined by the verifier, no hash), else its entry in the spill hash. Userspace
/// creates both when it attaches; creating a spill entry here is only the fallback for a packet
/// that races that.
#[inline(always)]
fn totals_for(ifindex: u32, direction: Direction) -> Option<*mut DirTotals> {
    if let Some(slot) = TOTALS.get_ptr_mut(totals_index(ifindex, direction)) {
        // SAFETY: `slot` points at this CPU's value of an array element, valid for the program's
        // run; only its owner field is read here.
        if unsafe { (*slot).owner } == ifindex {
            return Some(unsafe { &raw mut (*slot).totals });
        }
    }
    let key = TotalsKey {
        ifindex,
        direction: direction as u32,
    };
    if let Some(p) = TOTALS_SPILL.get_ptr_mut(key) {
        return Some(p);
    }
    let _ = TOTALS_SPILL.insert(key, DirTotals::default(), u64::from(BPF_NOEXIST));
    TOTALS_SPILL.get_ptr_mut(key)
}

enum Overflow {
    TableFull,
    InsertFailed,
}

const E2BIG: i32 = 7;

/// The cookie of the socket the packet carries (`skb->sk`), 0 without one.
#[inline(always)]
fn socket_cookie(ctx: &TcContext) -> u64 {
    // SAFETY: the helper takes the program's context (the skb) and only reads `skb->sk`.
    unsafe { bpf_get_socket_cookie(ctx.as_ptr()) }
}

/// The bit of [`FlowValue::attr`] that says a direction's socket was looked at.
#[inline(always)]
const fn seen(direction: Direction) -> u32 {
    match direction {
        Direction::Egress => FLOW_SENT_SEEN,
        Direction::Ingress => FLOW_RECEIVED_SEEN,
    }
}

/// A new flow's value, with the socket its first packet carries. A sent packet carries the
/// local socket that sent it; a received one carries a socket only when it came from another
/// network namespace of this host through a veth (a container's).
#[inline(always)]
fn new_flow<const OWNERS: bool>(ctx: &TcContext, direction: Direction) -> FlowValue {
    if !OWNERS {
        return FlowValue::default();
    }
    let cookie = socket_cookie(ctx);
    match direction {
        Direction::Egress => FlowValue {
            cookie,
            attr: FLOW_SENT_SEEN,
            ..FlowValue::default()
        },
        Direction::Ingress => FlowValue {
            peer_cookie: cookie,
            attr: FLOW_RECEIVED_SEEN,
            ..FlowValue::default()
        },
    }
}

#[inline(always)]
fn add_to_flow<K, const OWNERS: bool>(
    ctx: &TcContext,
    flows: &HashMap<K, FlowValue>,
    key: &K,
    direction: Direction,
    packets: u64,
    bytes: u64,
) -> Result<(), Overflow> {
    let value = match flows.get_ptr_mut(key) {
        Some(v) => v,
        None => {
            // NOEXIST: another CPU may have created the entry since the lookup; then we add to
            // theirs below instead of overwriting it.
            let fresh = new_flow::<OWNERS>(ctx, direction);
            if let Err(err) = flows.insert(key, &fresh, u64::from(BPF_NOEXIST)) {
                if err == -E2BIG {
                    return Err(Overflow::TableFull);
                }
            }
            flows.get_ptr_mut(key).ok_or(Overflow::InsertFailed)?
        }
    };
    // SAFETY: `value` points into the map's value memory for this key; flows are shared by all
    // CPUs, so counters are added atomically. The socket fields are written once, by whichever
    // CPU sends the flow's first packet; a racing second write stores the same cookie.
    unsafe {
        let (b, p) = match direction {
            Direction::Ingress => (&raw mut (*value).rx_bytes, &raw mut (*value).rx_packets),
            Direction::Egress => (&raw mut (*value).tx_bytes, &raw mut (*value).tx_packets),
        };
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(b, bytes);
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, packets);
        // One load and one branch per packet of a known flow; the helper runs once per
        // direction, on the first packet the flow was not created by.
        //
        // `attr |= bit` is a plain read-modify-write that two CPUs can interleave (one sets the
        // sent bit while the other sets the received bit), and then one bit is lost. That is
        // harmless, so it is not made atomic (an atomic OR needs BPF ISA v3 and costs a locked
        // instruction on every first packet): the lost direction's next packet finds its bit
        // clear, asks for its socket again and stores the same cookie (a flow's packets in one
        // direction come from one socket); the counters are separate atomics and never touched
        // by it.
        let bit = seen(direction);
        if OWNERS && (*value).attr & bit == 0 {
            let cookie = socket_cookie(ctx);
            match direction {
                Direction::Egress => (*value).cookie = cookie,
                Direction::Ingress => (*value).peer_cookie = cookie,
            }
            (*value).attr |= bit;
        }
    }
    Ok(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
