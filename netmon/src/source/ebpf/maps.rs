//! netmon's kernel maps, typed: the flow tables (IPv4 and IPv6 keys), the per-CPU totals array
//! with one slot per attached interface, and the spill hash for interfaces whose slot another
//! holds. Reads take `&self` and need no lock of netmon's; writes (claiming a slot,
//! giving an interface's entries back) take `&mut self`.

use super::batch;
use crate::error::BpfError;
use crate::flow::{FlowCounters, FlowId, RawKey};
use crate::owner::FlowSockets;
use crate::snapshot::{TableFill, sum_totals};
use aya::Ebpf;
use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};
use netmon_common::{
    DirTotals, Direction, FLOWS4_MAP, FLOWS6_MAP, FlowKey4, FlowKey6, FlowValue, OWNERS_MAP,
    SlotTotals, SocketOwner, TOTALS_MAP, TOTALS_SPILL_MAP, TotalsKey, totals_index,
};
use std::io;

pub struct Maps {
    flows4: HashMap<MapData, FlowKey4, FlowValue>,
    flows6: HashMap<MapData, FlowKey6, FlowValue>,
    totals: PerCpuArray<MapData, SlotTotals>,
    spill: PerCpuHashMap<MapData, TotalsKey, DirTotals>,
    nr_cpus: usize,
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
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, BpfError> {
        let nr_cpus = aya::util::nr_cpus().map_err(|(_, e)| BpfError::Failed {
            action: "count the possible CPUs (/sys/devices/system/cpu/possible)",
            source: Box::new(e),
        })?;
        Ok(Self {
            flows4: take(ebpf, FLOWS4_MAP)?,
            flows6: take(ebpf, FLOWS6_MAP)?,
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
        let mut stale4 = Vec::new();
        let mut stale6 = Vec::new();
        self.for_each_entry(
            |k, _| {
                if k.ifindex == ifindex {
                    stale4.push(*k);
                }
            },
            |k, _| {
                if k.ifindex == ifindex {
                    stale6.push(*k);
                }
            },
        );
        for k in stale4 {
            let _ = self.flows4.remove(&k);
        }
        for k in stale6 {
            let _ = self.flows6.remove(&k);
        }
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

    /// Passes every entry of both tables to `v4` and `v6` (an entry may come twice: only
    /// for collecting keys).
    fn for_each_entry(
        &self,
        mut v4: impl FnMut(&FlowKey4, &FlowValue),
        mut v6: impl FnMut(&FlowKey6, &FlowValue),
    ) {
        read_all(&self.flows4, &mut v4, || {});
        read_all(&self.flows6, &mut v6, || {});
    }

    /// Passes every flow of both tables to `f` with its interface and sockets, once each; says
    /// how full they were. If a table's batch read fails part-way, `forget` is told to drop
    /// the flows of that family it was given, and the table is read again whole, key by key.
    pub fn for_each_flow(
        &self,
        mut f: impl FnMut(u32, FlowId, FlowCounters, FlowSockets),
        mut forget: impl FnMut(Family),
    ) -> TableFill {
        let v4 = read_all(
            &self.flows4,
            |k, v| f(k.ifindex, FlowId::from_v4(k), v.into(), v.into()),
            || forget(Family::V4),
        );
        let v6 = read_all(
            &self.flows6,
            |k, v| f(k.ifindex, FlowId::from_v6(k), v.into(), v.into()),
            || forget(Family::V6),
        );
        TableFill { v4, v6 }
    }

    /// Removes `id`'s entry on `ifindex` and returns what it had counted at that instant, in one
    /// syscall (Linux 5.14+ for hash maps), so nothing counted before the removal is lost
    /// between a read and a delete. `Ok(None)`: no such entry.
    pub fn take_flow(&self, ifindex: u32, id: &FlowId) -> io::Result<Option<FlowCounters>> {
        let v = match id.key(ifindex) {
            RawKey::V4(k) => batch::lookup_and_delete(&self.flows4, &k)?,
            RawKey::V6(k) => batch::lookup_and_delete(&self.flows6, &k)?,
        };
        Ok(v.as_ref().map(FlowCounters::from))
    }
}

/// A flow table's address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The table a flow lives in.
    pub fn of(id: &FlowId) -> Self {
        if id.local.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// Passes every entry of one flow table to `f` once, with one batch read when the kernel has
/// it; returns how many there were. `restart` is called when `f` must forget what it was given
/// because the table is read again ([`whole`]).
fn read_all<K: aya::Pod>(
    map: &HashMap<MapData, K, FlowValue>,
    mut f: impl FnMut(&K, &FlowValue),
    restart: impl FnMut(),
) -> usize {
    // A batch read takes every bucket's lock, empty or not: ~6 ms for an empty 65,536-bucket
    // table here. Finding the first key does not, so an empty table (often the IPv6 one) is
    // skipped for the price of that.
    if map.keys().next().is_none() {
        return 0;
    }
    whole(
        |each| batch::for_each(map, |k, v| each((*k, *v))),
        |each| {
            map.iter()
                .filter_map(|r| r.ok())
                .for_each(|(k, v)| each((k, v)))
        },
        |(k, v)| f(&k, &v),
        restart,
    )
}

/// One whole read of a table, each entry given to `each` once: by `batch`, or, when that
/// fails, by `fallback` (key by key). A batch that fails after it gave entries (the table
/// changed under it, memory ran short) would have them given twice by the fallback, so
/// `restart` is told to forget them first. Returns how many entries the read that finished
/// gave.
fn whole<E>(
    batch: impl FnOnce(&mut dyn FnMut(E)) -> std::io::Result<()>,
    fallback: impl FnOnce(&mut dyn FnMut(E)),
    mut each: impl FnMut(E),
    mut restart: impl FnMut(),
) -> usize {
    let mut n = 0;
    let result = batch(&mut |e| {
        n += 1;
        each(e);
    });
    let Err(e) = result else {
        return n;
    };
    if n > 0 {
        log::warn!(
            "a batch read of a flow table failed after {n} entries ({e}); reading it again key by key"
        );
        restart();
    } else {
        // Kernels before 5.6 have no batch operations: two syscalls per entry instead.
        log::debug!("batch lookup unavailable ({e}); reading the flow table key by key");
    }
    let mut n = 0;
    fallback(&mut |e| {
        n += 1;
        each(e);
    });
    n
}

#[cfg(test)]
mod tests {
    use super::whole;
    use std::collections::HashMap;

    /// A batch read that fails part-way must not leave its entries counted twice: before, the
    /// key-by-key fallback gave them again on top.
    #[test]
    fn a_batch_that_fails_part_way_is_forgotten_then_read_again_once() {
        let table: Vec<(u32, u64)> = (0..10).map(|k| (k, u64::from(k) * 100)).collect();
        for fails_after in [0, 1, 4, 9] {
            let mut sums: HashMap<u32, u64> = HashMap::new();
            let mut restarts = 0;
            let sums_cell = std::cell::RefCell::new(&mut sums);
            let n = whole(
                |each| {
                    for e in table.iter().take(fails_after) {
                        each(*e);
                    }
                    Err(std::io::Error::from_raw_os_error(libc::ENOMEM))
                },
                |each| table.iter().for_each(|e| each(*e)),
                |(k, v)| *sums_cell.borrow_mut().entry(k).or_default() += v,
                || {
                    restarts += 1;
                    sums_cell.borrow_mut().clear();
                },
            );
            assert_eq!(n, 10);
            assert_eq!(restarts, usize::from(fails_after > 0));
            let total: u64 = sums.values().sum();
            assert_eq!(total, 4_500, "after failing at {fails_after}");
        }
        // A batch that works is read once, with no restart.
        let mut seen = 0;
        let n = whole(
            |each| {
                table.iter().for_each(|e| each(*e));
                Ok(())
            },
            |_| panic!("no fallback"),
            |_| seen += 1,
            || panic!("no restart"),
        );
        assert_eq!((n, seen), (10, 10));
    }
}
