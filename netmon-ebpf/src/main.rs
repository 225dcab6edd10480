//! netmon's TC classifier.
//!
//! Attached to clsact/TCX ingress and egress of an interface, it adds every packet to the per-CPU
//! interface totals and to one entry of a flow table. It only reads the packet (through
//! `bpf_skb_load_bytes`, which is bounds-checked and also works on non-linear GSO skbs) and
//! returns `TC_ACT_UNSPEC` on every path, so the packet continues to the next filter exactly as if
//! netmon were not there.
//!
//! Per packet, the common case costs one hash lookup (the flow, in the table of its family, which
//! gives the flow's slot), one array lookup (the slot's counters), one inlined per-CPU array
//! lookup (the totals), one header read and two atomic adds. There is no clock read: userspace
//! judges a flow idle from counters that did not move between its reads.
//!
//! The counters, keys and sockets live in arrays indexed by slot that userspace maps into its
//! memory, so it reads every flow's counters in place instead of walking the hash. A slot is
//! taken when a flow is created (from the queue of slots userspace gave back, else the next
//! never-used one) and given back by userspace only, after it removed the flow's hash entry and
//! waited for packets in flight to finish. The link layer is not looked up: each
//! interface gets the program pair of its kind (`*_raw` for devices without an Ethernet header),
//! chosen when userspace attaches.
#![no_std]
#![no_main]
// BPF has a locked add but no compare-and-swap loop, so core's AtomicU64::fetch_add is not
// available on this target; the intrinsic lowers to BPF_ATOMIC ADD directly.
#![feature(core_intrinsics)]
// The one instruction LLVM will not emit from the intrinsic ([`fetch_add`]).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]

mod parse;

mod owners;

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_F_MMAPABLE, BPF_NOEXIST},
    helpers::generated::bpf_get_socket_cookie,
    macros::{classifier, map},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, Queue},
    programs::TcContext,
};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use netmon_common::{
    DEFAULT_FLOW_CAPACITY, DirTotals, Direction, FLOW_RECEIVED_SEEN, FLOW_SENT_SEEN, FlowKey4,
    FlowKey6, FlowSlot, SlotCounters, SlotKey, SlotSockets, SlotTotals, TOTALS_SLOTS,
    TOTALS_SPILL_CAPACITY, TotalsKey, totals_index,
};
use parse::Parsed;

/// "No verdict": TC and TCX hand the packet to the next program/filter, then to the stack.
/// TC_ACT_PIPE would also pass the packet, but it ends the cls_bpf filter chain.
const TC_ACT_UNSPEC: i32 = -1;

// Capacities are replaced at load time by userspace (`--table-capacity`): each hash map and
// the per-slot arrays have as many entries as flows are counted at once.
#[map(name = "NETMON_FLOWS4")]
static FLOWS4: HashMap<FlowKey4, FlowSlot> = HashMap::with_max_entries(DEFAULT_FLOW_CAPACITY, 0);

#[map(name = "NETMON_FLOWS6")]
static FLOWS6: HashMap<FlowKey6, FlowSlot> = HashMap::with_max_entries(DEFAULT_FLOW_CAPACITY, 0);

#[map(name = "NETMON_COUNTERS")]
static COUNTERS: Array<SlotCounters> =
    Array::with_max_entries(DEFAULT_FLOW_CAPACITY, BPF_F_MMAPABLE);

#[map(name = "NETMON_KEYS")]
static KEYS: Array<SlotKey> = Array::with_max_entries(DEFAULT_FLOW_CAPACITY, BPF_F_MMAPABLE);

#[map(name = "NETMON_SOCKETS")]
static SOCKETS: Array<SlotSockets> = Array::with_max_entries(DEFAULT_FLOW_CAPACITY, BPF_F_MMAPABLE);

#[map(name = "NETMON_FREE")]
static FREE: Queue<u32> = Queue::with_max_entries(DEFAULT_FLOW_CAPACITY, 0);

#[map(name = "NETMON_NEXT")]
static NEXT: Array<u64> = Array::with_max_entries(1, 0);

/// Slots in the per-slot arrays (their `max_entries`), set by userspace at load time.
#[unsafe(no_mangle)]
static SLOTS: u32 = DEFAULT_FLOW_CAPACITY;

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

/// The bit of [`FlowSlot::attr`] that says a direction's socket was looked at.
#[inline(always)]
const fn seen(direction: Direction) -> u32 {
    match direction {
        Direction::Egress => FLOW_SENT_SEEN,
        Direction::Ingress => FLOW_RECEIVED_SEEN,
    }
}

/// A flow key as its slot's record keeps it, either family.
trait Keyed {
    fn slot_key(&self) -> SlotKey;
}

impl Keyed for FlowKey4 {
    #[inline(always)]
    fn slot_key(&self) -> SlotKey {
        SlotKey {
            ifindex: self.ifindex,
            family: 4,
            proto: self.proto,
            local_port: self.local_port,
            remote_port: self.remote_port,
            _pad: 0,
            local_addr: [self.local_addr, 0, 0, 0],
            remote_addr: [self.remote_addr, 0, 0, 0],
            generation: 0,
        }
    }
}

impl Keyed for FlowKey6 {
    #[inline(always)]
    fn slot_key(&self) -> SlotKey {
        SlotKey {
            ifindex: self.ifindex,
            family: 6,
            proto: self.proto,
            local_port: self.local_port,
            remote_port: self.remote_port,
            _pad: 0,
            local_addr: self.local_addr,
            remote_addr: self.remote_addr,
            generation: 0,
        }
    }
}

/// `*p += v` atomically across CPUs, returning the value before (BPF_ATOMIC | BPF_FETCH,
/// Linux 5.12+).
///
/// Written as assembly because LLVM will not emit it from the intrinsic here: rustc marks every
/// function `target-cpu=generic`, and for CPUs before v3 LLVM lowers an atomic add whose result
/// is used to the locked add without BPF_FETCH, which leaves the addend in the register and
/// gives no diagnostic (llvm-project#106494, #217074). The 64-bit fetch form needs no CPU
/// feature from the assembler.
///
/// # Safety
/// `p` must be valid for reads and writes of a `u64`, 8-aligned, for the program's run.
#[inline(always)]
unsafe fn fetch_add(p: *mut u64, v: u64) -> u64 {
    let mut v = v;
    // SAFETY: the caller's promise about `p`; the instruction writes only `*p` and `v`.
    unsafe {
        core::arch::asm!(
            "{v} = atomic_fetch_add((u64 *)({p} + 0), {v})",
            v = inout(reg) v,
            p = in(reg) p,
            options(nostack),
        );
    }
    v
}

/// A slot for a new flow: one userspace gave back, else a never-used one; `None` when every
/// slot is taken.
#[inline(always)]
fn take_slot() -> Option<u32> {
    if let Ok(Some(s)) = FREE.pop() {
        return Some(s);
    }
    let next = NEXT.get_ptr_mut(0)?;
    // SAFETY: a volatile read of a load-time constant (userspace sets it in .rodata).
    let slots = unsafe { core::ptr::read_volatile(&raw const SLOTS) };
    // SAFETY: a pointer into the one-element array's value, valid for the program's run.
    let s = unsafe { fetch_add(next, 1) };
    // Past the end the counter just runs on: it is 64 bits, so it cannot wrap onto slots in use.
    if s < u64::from(slots) {
        return Some(s as u32);
    }
    None
}

/// Makes the entry of a flow this packet starts: a slot, the slot's key and sockets, the hash
/// entry, then the slot's generation (which tells userspace to read the key). A CPU that
/// created the same flow first wins; this one gives its slot back and adds to that flow.
#[inline(always)]
fn create<K: Keyed, const OWNERS: bool>(
    ctx: &TcContext,
    flows: &HashMap<K, FlowSlot>,
    key: &K,
    direction: Direction,
) -> Result<*mut FlowSlot, Overflow> {
    let slot = take_slot().ok_or(Overflow::TableFull)?;
    let Some(record) = KEYS.get_ptr_mut(slot) else {
        let _ = FREE.push(slot, 0);
        return Err(Overflow::InsertFailed);
    };
    // SAFETY: the slot's record; userspace reads its key only after the generation moves
    // (below), and keeps the generation it had.
    unsafe {
        let generation = (*record).generation;
        *record = SlotKey {
            generation,
            ..key.slot_key()
        };
    }
    let mut entry = FlowSlot { slot, attr: 0 };
    if let Some(socks) = SOCKETS.get_ptr_mut(slot) {
        // A slot given back keeps its last flow's sockets until this write, so both directions
        // are written, with or without attribution.
        let mut fresh = SlotSockets::default();
        if OWNERS {
            let cookie = socket_cookie(ctx);
            match direction {
                Direction::Egress => fresh.cookie = cookie,
                Direction::Ingress => fresh.peer_cookie = cookie,
            }
            fresh.attr = seen(direction);
            entry.attr = fresh.attr;
        }
        // SAFETY: the slot's record, as above.
        unsafe { *socks = fresh };
    }
    // NOEXIST: another CPU may have created the entry since the lookup; then we add to
    // theirs instead of overwriting it.
    if let Err(err) = flows.insert(key, &entry, u64::from(BPF_NOEXIST)) {
        let _ = FREE.push(slot, 0);
        if err == -E2BIG {
            return Err(Overflow::TableFull);
        }
        return flows.get_ptr_mut(key).ok_or(Overflow::InsertFailed);
    }
    // SAFETY: the slot's generation, in the record checked above; atomic (a locked add, a full
    // barrier on x86 and arm64), as userspace reads it at any time.
    unsafe {
        atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(&raw mut (*record).generation, 1)
    };
    flows.get_ptr_mut(key).ok_or(Overflow::InsertFailed)
}

#[inline(always)]
fn add_to_flow<K: Keyed, const OWNERS: bool>(
    ctx: &TcContext,
    flows: &HashMap<K, FlowSlot>,
    key: &K,
    direction: Direction,
    packets: u64,
    bytes: u64,
) -> Result<(), Overflow> {
    let entry = match flows.get_ptr_mut(key) {
        Some(v) => v,
        None => create::<K, OWNERS>(ctx, flows, key, direction)?,
    };
    // SAFETY: `entry` points into the map's value memory for this key, valid for the run.
    let (slot, attr) = unsafe { ((*entry).slot, (*entry).attr) };
    let Some(c) = COUNTERS.get_ptr_mut(slot) else {
        return Err(Overflow::InsertFailed);
    };
    // SAFETY: `c` points at the slot's counters in the array; slots are shared by all CPUs, so
    // the counters are added atomically.
    unsafe {
        let (b, p) = match direction {
            Direction::Ingress => (&raw mut (*c).rx_bytes, &raw mut (*c).rx_packets),
            Direction::Egress => (&raw mut (*c).tx_bytes, &raw mut (*c).tx_packets),
        };
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(b, bytes);
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, packets);
    }
    // One branch per packet of a known flow; the helper runs once per direction, on the first
    // packet the flow was not created by.
    //
    // `attr |= bit` is a plain read-modify-write that two CPUs can interleave (one sets the
    // sent bit while the other sets the received bit), and then one bit is lost. That is
    // harmless, so it is not made atomic: the lost direction's next packet finds its bit clear,
    // asks for its socket again and stores the same cookie (a flow's packets in one direction
    // come from one socket); the counters are separate atomics and never touched by it.
    let bit = seen(direction);
    if OWNERS
        && attr & bit == 0
        && let Some(socks) = SOCKETS.get_ptr_mut(slot)
    {
        let cookie = socket_cookie(ctx);
        // SAFETY: the slot's sockets and the entry, both valid for the run.
        unsafe {
            match direction {
                Direction::Egress => (*socks).cookie = cookie,
                Direction::Ingress => (*socks).peer_cookie = cookie,
            }
            (*socks).attr = attr | bit;
            (*entry).attr = attr | bit;
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
