//! netmon's kernel maps, typed: the flow tables (IPv4 and IPv6 keys, each entry naming its
//! flow's slot), the per-slot arrays read in place ([`Mapped`]) and userspace's book of them
//! ([`Book`]), the per-CPU totals array with one slot per attached interface, and the spill hash
//! for interfaces whose slot another holds. Reads take `&self` and need no lock of netmon's but
//! the book's (a short one, per read); writes (claiming a totals slot, giving an interface's
//! entries back) take `&mut self`.

use super::batch;
use super::mapped::Mapped;
use super::slots::{Book, Freed, SlotView};
use crate::error::BpfError;
use crate::flow::{FlowCounters, FlowId, RawKey};
use crate::owner::FlowSockets;
use crate::snapshot::{SlotCount, TableFill, sum_totals};
use aya::Ebpf;
use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, Queue};
use netmon_common::{
    COUNTERS_MAP, DirTotals, Direction, FLOWS4_MAP, FLOWS6_MAP, FREE_MAP, FlowKey4, FlowKey6,
    FlowSlot, KEYS_MAP, NEXT_MAP, OWNERS_MAP, SOCKETS_MAP, SlotCounters, SlotKey, SlotSockets,
    SlotTotals, SocketOwner, TOTALS_MAP, TOTALS_SPILL_MAP, TotalsKey, totals_index,
};
use std::io;
use std::sync::{Mutex, MutexGuard};

pub struct Maps {
    flows4: HashMap<MapData, FlowKey4, FlowSlot>,
    flows6: HashMap<MapData, FlowKey6, FlowSlot>,
    slots: Slots,
    book: Mutex<Book>,
    free: Mutex<Queue<MapData, u32>>,
    totals: PerCpuArray<MapData, SlotTotals>,
    spill: PerCpuHashMap<MapData, TotalsKey, DirTotals>,
    nr_cpus: usize,
}

/// The classifier's per-slot arrays, mapped into this process.
struct Slots {
    counters: Mapped<SlotCounters>,
    keys: Mapped<SlotKey>,
    sockets: Mapped<SlotSockets>,
    next: Array<MapData, u64>,
}

impl SlotView for Slots {
    fn used(&self) -> u32 {
        // One syscall per read: the bump allocator is not worth a page of its own.
        let next = self.next.get(&0, 0).unwrap_or(0);
        u32::try_from(next)
            .unwrap_or(u32::MAX)
            .min(self.counters.len())
    }

    fn generation(&self, slot: u32) -> u32 {
        self.keys
            .u32_acquire_at(slot, std::mem::offset_of!(SlotKey, generation))
            .unwrap_or(0)
    }

    fn key(&self, slot: u32) -> SlotKey {
        self.keys.get(slot).unwrap_or_default()
    }

    fn counters(&self, slot: u32) -> FlowCounters {
        let at = |offset| self.counters.u64_at(slot, offset).unwrap_or(0);
        FlowCounters {
            rx_bytes: at(std::mem::offset_of!(SlotCounters, rx_bytes)),
            rx_packets: at(std::mem::offset_of!(SlotCounters, rx_packets)),
            tx_bytes: at(std::mem::offset_of!(SlotCounters, tx_bytes)),
            tx_packets: at(std::mem::offset_of!(SlotCounters, tx_packets)),
        }
    }
}

impl Slots {
    fn sockets(&self, slot: u32) -> FlowSockets {
        self.sockets
            .get(slot)
            .map(|s| FlowSockets::from(&s))
            .unwrap_or_default()
    }
}

fn take_data(ebpf: &mut Ebpf, name: &str) -> Result<MapData, BpfError> {
    match ebpf.take_map(name) {
        Some(aya::maps::Map::Array(d)) => Ok(d),
        Some(_) => Err(BpfError::Missing {
            what: format!("map {name} as an array"),
        }),
        None => Err(BpfError::Missing {
            what: format!("map {name}"),
        }),
    }
}

/// Socket owners by cookie, written by the cgroup socket programs (an LRU map). Userspace only
/// reads it, so it needs no lock of netmon's: attribution reads it (between /proc and netlink
/// work) without holding up an attach or a detach, which take the flow maps' write lock.
pub struct OwnerMap {
    owners: HashMap<MapData, u64, SocketOwner>,
}

impl OwnerMap {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, BpfError> {
        Ok(Self {
            owners: take(ebpf, OWNERS_MAP)?,
        })
    }

    /// The owner the cgroup programs recorded for one socket.
    pub fn owner(&self, cookie: u64) -> Option<SocketOwner> {
        self.owners.get(&cookie, 0).ok()
    }

    /// Every socket owner the cgroup programs recorded, by cookie.
    pub fn owners(&self) -> std::collections::HashMap<u64, SocketOwner> {
        let mut out = std::collections::HashMap::new();
        if self.owners.keys().next().is_none() {
            return out;
        }
        let mut each = |k: &u64, v: &SocketOwner| {
            out.insert(*k, *v);
        };
        if batch::for_each(&self.owners, &mut each).is_err() {
            self.owners
                .iter()
                .filter_map(|r| r.ok())
                .for_each(|(k, v)| each(&k, &v));
        }
        out
    }
}

fn take<T>(ebpf: &mut Ebpf, name: &str) -> Result<T, BpfError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| BpfError::Missing {
        what: format!("map {name}"),
    })?;
    T::try_from(map).map_err(|e| BpfError::from_aya("open a map", e))
}

impl Maps {
    /// Takes the maps out of the loaded object; `capacity` is the slots' number (the arrays'
    /// size, as the loader created them).
    pub fn take(ebpf: &mut Ebpf, capacity: u32) -> Result<Self, BpfError> {
        let nr_cpus = aya::util::nr_cpus().map_err(|(_, e)| BpfError::Failed {
            action: "count the possible CPUs (/sys/devices/system/cpu/possible)",
            source: Box::new(e),
        })?;
        let slots = Slots {
            counters: Mapped::new(
                take_data(ebpf, COUNTERS_MAP)?,
                capacity,
                "map the flow counters into memory",
            )?,
            keys: Mapped::new(
                take_data(ebpf, KEYS_MAP)?,
                capacity,
                "map the flow keys into memory",
            )?,
            sockets: Mapped::new(
                take_data(ebpf, SOCKETS_MAP)?,
                capacity,
                "map the flow sockets into memory",
            )?,
            next: take(ebpf, NEXT_MAP)?,
        };
        Ok(Self {
            flows4: take(ebpf, FLOWS4_MAP)?,
            flows6: take(ebpf, FLOWS6_MAP)?,
            slots,
            book: Mutex::new(Book::new(capacity)),
            free: Mutex::new(take(ebpf, FREE_MAP)?),
            totals: take(ebpf, TOTALS_MAP)?,
            spill: take(ebpf, TOTALS_SPILL_MAP)?,
            nr_cpus,
        })
    }

    fn per_cpu<V: aya::Pod + Clone>(&self, v: V) -> Result<PerCpuValues<V>, BpfError> {
        PerCpuValues::try_from(vec![v; self.nr_cpus]).map_err(|e| BpfError::Failed {
            action: "create interface totals",
            source: Box::new(e),
        })
    }

    /// Gives `ifindex` zeroed totals: its array slot when no other interface holds it, else
    /// entries in the spill hash. Counting starts with the first packet after this.
    pub fn claim(&mut self, ifindex: u32) -> Result<(), BpfError> {
        for direction in [Direction::Ingress, Direction::Egress] {
            let index = totals_index(ifindex, direction);
            let owner = self
                .totals
                .get(&index, 0)
                .map_err(|e| BpfError::from_aya("read interface totals", e))?
                .iter()
                .map(|s| s.owner)
                .next()
                .unwrap_or(0);
            if owner == ifindex {
                continue;
            }
            if owner == 0 {
                let mine = self.per_cpu(SlotTotals {
                    owner: ifindex,
                    ..Default::default()
                })?;
                self.totals
                    .set(index, mine, 0)
                    .map_err(|e| BpfError::from_aya("create interface totals", e))?;
                continue;
            }
            let key = TotalsKey {
                ifindex,
                direction: direction as u32,
            };
            if self.spill.get(&key, 0).is_err() {
                let zeros = self.per_cpu(DirTotals::default())?;
                self.spill
                    .insert(key, zeros, 0)
                    .map_err(|e| BpfError::from_aya("create interface totals", e))?;
            }
        }
        Ok(())
    }

    /// Frees `ifindex`'s slot or spill entries, and removes its flows from the tables, which all
    /// interfaces share.
    pub fn release(&mut self, ifindex: u32) {
        for direction in [Direction::Ingress, Direction::Egress] {
            let index = totals_index(ifindex, direction);
            let held = self
                .totals
                .get(&index, 0)
                .is_ok_and(|v| v.iter().any(|s| s.owner == ifindex));
            if held && let Ok(free) = self.per_cpu(SlotTotals::default()) {
                let _ = self.totals.set(index, free, 0);
            }
            let _ = self.spill.remove(&TotalsKey {
                ifindex,
                direction: direction as u32,
            });
        }
        // Its flows leave the tables; their slots go back after the quarantine, their late
        // bytes unreported (nobody watches the interface any more).
        let mut book = self.book();
        let mut stale = Vec::new();
        book.read(&self.slots, |k, c| {
            if k.ifindex == ifindex {
                stale.push((c.slot, FlowId::from_slot_key(k)));
            }
        });
        let now = super::monotonic_ns();
        for (slot, id) in stale {
            let _ = self.remove_entry(ifindex, &id);
            book.retire(&self.slots, slot, ifindex, id, now, false);
        }
        self.give_back(&mut book, now, ifindex);
    }

    /// Slots whose flows were removed and that wait out the quarantine: held, though no flow
    /// table counts them.
    pub fn slots_waiting(&self) -> usize {
        self.book().retired_count()
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes `id`'s hash entry on `ifindex`; returns the slot it named.
    fn remove_entry(&self, ifindex: u32, id: &FlowId) -> io::Result<Option<u32>> {
        let v = match id.key(ifindex) {
            RawKey::V4(k) => batch::lookup_and_delete(&self.flows4, &k)?,
            RawKey::V6(k) => batch::lookup_and_delete(&self.flows6, &k)?,
        };
        Ok(v.map(|e| e.slot))
    }

    /// Gives the slots whose quarantine ended back to the classifier's queue; returns those of
    /// `ifindex` with what they counted late.
    fn give_back(&self, book: &mut Book, now_ns: u64, ifindex: u32) -> Vec<Freed> {
        let freed = book.free_expired(&self.slots, now_ns, ifindex);
        let mut queue = self.free.lock().unwrap_or_else(|p| p.into_inner());
        freed
            .into_iter()
            .filter(|f| match queue.push(f.slot, 0) {
                Ok(()) => f.report,
                Err(e) => {
                    log::warn!("could not give flow slot {} back: {e}", f.slot);
                    book.lost(f.slot);
                    false
                }
            })
            .collect()
    }

    /// One direction of `ifindex`'s totals, summed over CPUs.
    pub fn totals(&self, ifindex: u32, direction: Direction) -> DirTotals {
        if let Ok(v) = self.totals.get(&totals_index(ifindex, direction), 0)
            && v.iter().next().is_some_and(|s| s.owner == ifindex)
        {
            return sum_totals(v.iter().map(|s| &s.totals));
        }
        self.spill
            .get(
                &TotalsKey {
                    ifindex,
                    direction: direction as u32,
                },
                0,
            )
            .map(|v| sum_totals(v.iter()))
            .unwrap_or_default()
    }

    /// Passes every flow to `f` with its key and counters, once each, in ascending slot order,
    /// read in place from the per-slot arrays; says how many flows each family had.
    pub fn for_each_flow(&self, f: impl FnMut(&SlotKey, SlotCount)) -> TableFill {
        self.book().read(&self.slots, f)
    }

    /// The sockets of the flow in `slot`.
    pub fn sockets(&self, slot: u32) -> FlowSockets {
        self.slots.sockets(slot)
    }

    /// Removes the idle flows `ids` of `ifindex` from the tables, calling `evicted` with what
    /// each had counted at its removal, and gives back the slots whose quarantine ended,
    /// calling `late` with what their flows counted after their removal. Stops at the first
    /// removal the kernel refuses (lookup-and-delete needs Linux 5.14 for hash maps), keeping
    /// the entries rather than risk losing what they count between a read and a delete.
    pub fn evict(
        &self,
        ifindex: u32,
        ids: Vec<FlowId>,
        mut evicted: impl FnMut(FlowId, &FlowCounters),
        mut late: impl FnMut(FlowId, &FlowCounters),
    ) {
        let now = super::monotonic_ns();
        let mut book = self.book();
        for f in self.give_back(&mut book, now, ifindex) {
            if f.late != FlowCounters::default() {
                late(f.id, &f.late);
            }
        }
        for id in ids {
            match self.remove_entry(ifindex, &id) {
                Ok(Some(slot)) => {
                    if let Some(at_removal) = book.retire(&self.slots, slot, ifindex, id, now, true)
                    {
                        evicted(id, &at_removal);
                    }
                }
                // Gone already (the interface was released).
                Ok(None) => {}
                Err(e) => {
                    log::debug!("not evicting idle flows: {e}");
                    break;
                }
            }
        }
    }
}
