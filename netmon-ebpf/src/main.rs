//! netmon's TC classifier.
//!
//! Attached to clsact/TCX ingress and egress of an interface, it adds every packet to the per-CPU
//! interface totals and to one entry of the flow table. It only reads the packet (through
//! `bpf_skb_load_bytes`, which is bounds-checked and also works on non-linear GSO skbs) and
//! returns `TC_ACT_UNSPEC` on every path, so the packet continues to the next filter exactly as if
//! netmon were not there.
#![no_std]
#![no_main]
// BPF has a locked add but no compare-and-swap loop, so core's AtomicU64::fetch_add is not
// available on this target; the intrinsic lowers to BPF_ATOMIC ADD directly.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod parse;

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_ktime_get_coarse_ns,
    macros::{classifier, map},
    maps::{HashMap, PerCpuHashMap},
    programs::TcContext,
};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use netmon_common::{
    DEFAULT_FLOW_CAPACITY, DirTotals, Direction, FlowKey, FlowValue, LINKS_CAPACITY, LinkKind,
    TOTALS_CAPACITY, TotalsKey,
};
use parse::Parsed;

/// "No verdict": TC and TCX hand the packet to the next program/filter, then to the stack.
/// TC_ACT_PIPE would also pass the packet, but it ends the cls_bpf filter chain.
const TC_ACT_UNSPEC: i32 = -1;

// Capacity is replaced at load time by userspace (`--table-capacity`).
#[map(name = "NETMON_FLOWS")]
static FLOWS: HashMap<FlowKey, FlowValue> = HashMap::with_max_entries(DEFAULT_FLOW_CAPACITY, 0);

#[map(name = "NETMON_TOTALS")]
static TOTALS: PerCpuHashMap<TotalsKey, DirTotals> =
    PerCpuHashMap::with_max_entries(TOTALS_CAPACITY, 0);

#[map(name = "NETMON_LINKS")]
static LINKS: HashMap<u32, u32> = HashMap::with_max_entries(LINKS_CAPACITY, 0);

#[classifier]
pub fn netmon_ingress(ctx: TcContext) -> i32 {
    account(&ctx, Direction::Ingress);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn netmon_egress(ctx: TcContext) -> i32 {
    account(&ctx, Direction::Egress);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn account(ctx: &TcContext, direction: Direction) {
    // SAFETY: ctx.skb.skb is the program's context pointer; the verifier rewrites these loads.
    let (ifindex, frame_len, gso_segs, gso_size) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.ifindex, skb.len, skb.gso_segs, skb.gso_size)
    };
    let link = match unsafe { LINKS.get(ifindex) } {
        Some(&k) if k == LinkKind::RawIp as u32 => LinkKind::RawIp,
        _ => LinkKind::Ethernet,
    };
    let parsed = parse::parse(ctx, link, direction, frame_len, gso_segs, gso_size);

    let Some(totals) = totals_for(ifindex, direction) else {
        return;
    };
    // SAFETY: a per-CPU value is only written by this CPU, and BPF programs do not nest on one
    // CPU for the same hook, so plain read-modify-write is exact.
    let totals = unsafe { &mut *totals };
    totals.frames += 1;
    totals.frame_bytes += u64::from(frame_len);
    let Parsed::Ip {
        mut key,
        packets,
        bytes,
    } = parsed
    else {
        totals.other_frames += 1;
        totals.other_bytes += u64::from(frame_len);
        return;
    };
    totals.ip_packets += packets;
    totals.ip_bytes += bytes;

    key.ifindex = ifindex;
    match add_to_flow(&key, direction, packets, bytes) {
        Ok(()) => {}
        Err(reason) => {
            totals.overflow_packets += packets;
            totals.overflow_bytes += bytes;
            match reason {
                Overflow::TableFull => totals.overflow_table_full += 1,
                Overflow::InsertFailed => totals.overflow_insert_failed += 1,
            }
        }
    }
}

/// Userspace creates both entries of an interface when it attaches; creating one here is only
/// the fallback for a packet that races that.
#[inline(always)]
fn totals_for(ifindex: u32, direction: Direction) -> Option<*mut DirTotals> {
    let key = TotalsKey {
        ifindex,
        direction: direction as u32,
    };
    if let Some(p) = TOTALS.get_ptr_mut(key) {
        return Some(p);
    }
    let _ = TOTALS.insert(key, DirTotals::default(), u64::from(BPF_NOEXIST));
    TOTALS.get_ptr_mut(key)
}

enum Overflow {
    TableFull,
    InsertFailed,
}

const E2BIG: i32 = 7;

#[inline(always)]
fn add_to_flow(
    key: &FlowKey,
    direction: Direction,
    packets: u64,
    bytes: u64,
) -> Result<(), Overflow> {
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let value = match FLOWS.get_ptr_mut(key) {
        Some(v) => v,
        None => {
            let fresh = FlowValue {
                first_seen_ns: now,
                ..FlowValue::default()
            };
            // NOEXIST: another CPU may have created the entry since the lookup; then we add to
            // theirs below instead of overwriting it.
            if let Err(err) = FLOWS.insert(key, &fresh, u64::from(BPF_NOEXIST)) {
                if err == -E2BIG {
                    return Err(Overflow::TableFull);
                }
            }
            FLOWS.get_ptr_mut(key).ok_or(Overflow::InsertFailed)?
        }
    };
    // SAFETY: `value` points into the map's value memory for this key; flows are shared by all
    // CPUs, so counters are added atomically.
    unsafe {
        let (b, p) = match direction {
            Direction::Ingress => (&raw mut (*value).rx_bytes, &raw mut (*value).rx_packets),
            Direction::Egress => (&raw mut (*value).tx_bytes, &raw mut (*value).tx_packets),
        };
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(b, bytes);
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, packets);
        (*value).last_seen_ns = now;
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
