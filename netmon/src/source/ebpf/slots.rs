//! Userspace's book of the classifier's slots: which hold a flow, where each slot's counters
//! stood when its flow began, and which wait to be given back. Pure: the kernel's arrays are
//! seen through [`SlotView`], which the tests fake with vectors.
//!
//! A slot's life:
//! - **free**: never used, or given back through the kernel's queue. It has a flow again when
//!   its generation moves past the one recorded when it was given back.
//! - **live**: its flow's hash entry exists. The flow has counted the slot's counters minus
//!   `base` (where they stood when it was given back: a slot's counters only grow).
//! - **retired**: userspace removed the hash entry. A packet that found the entry just before
//!   may still add to the counters, so the slot waits [`QUARANTINE_NS`]; what it counted after
//!   the removal is then reported as the flow's, late, and the slot goes back to the queue.
//!
//! So no byte is counted twice (a slot is someone's only while live or retired) or lost (late
//! bytes are reported when the slot is given back).

use crate::flow::{FlowCounters, FlowId};
use crate::snapshot::{SlotCount, TableFill};
use netmon_common::SlotKey;
use std::collections::HashMap;

/// How long a retired slot waits before it is given back. A packet that found the hash entry
/// before its removal adds to the slot within the same program run (microseconds, in softirq),
/// so half a second is thousands of times that. It bounds how fast slots can be recycled:
/// (capacity − live flows) / quarantine new flows a second (2 s held an agent's 1,024-slot
/// table below the 300 new flows a second of its soak test, and every new flow went
/// unattributed).
pub const QUARANTINE_NS: u64 = 500_000_000;

/// The kernel's per-slot arrays, read in place.
pub trait SlotView {
    /// Slots the classifier ever took (its bump allocator), at most the capacity.
    fn used(&self) -> u32;
    /// How many flows the slot has had.
    fn generation(&self, slot: u32) -> u32;
    fn key(&self, slot: u32) -> SlotKey;
    fn counters(&self, slot: u32) -> FlowCounters;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Free,
    Live,
    Retired,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    base: FlowCounters,
    /// The generation the slot had when it was given back (0: never used).
    freed_generation: u32,
    /// The generation of its flow, while live.
    generation: u32,
    state: State,
}

/// A slot whose flow's hash entry was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retired {
    pub ifindex: u32,
    pub id: FlowId,
    at_ns: u64,
    /// The slot's raw counters when the entry was removed.
    raw: FlowCounters,
    /// Whether late bytes are reported (no: the interface was released, nobody asks).
    report: bool,
}

/// A retired slot given back: what its flow counted after its removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freed {
    pub slot: u32,
    pub ifindex: u32,
    pub id: FlowId,
    pub late: FlowCounters,
    pub report: bool,
}

#[derive(Debug)]
pub struct Book {
    entries: Vec<Entry>,
    retired: HashMap<u32, Retired>,
}

/// `now - then`, field by field; a slot's counters only grow, so nothing saturates unless the
/// kernel's arrays were written by someone else.
fn since(now: &FlowCounters, then: &FlowCounters) -> FlowCounters {
    FlowCounters {
        rx_bytes: now.rx_bytes.saturating_sub(then.rx_bytes),
        rx_packets: now.rx_packets.saturating_sub(then.rx_packets),
        tx_bytes: now.tx_bytes.saturating_sub(then.tx_bytes),
        tx_packets: now.tx_packets.saturating_sub(then.tx_packets),
    }
}

impl Book {
    pub fn new(capacity: u32) -> Self {
        Self {
            entries: vec![Entry::default(); capacity as usize],
            retired: HashMap::new(),
        }
    }

    /// Passes every live slot to `f`, in ascending order, with its key and what its flow
    /// counted. Slots whose generation moved since they were given back become live here.
    pub fn read(
        &mut self,
        view: &impl SlotView,
        mut f: impl FnMut(&SlotKey, SlotCount),
    ) -> TableFill {
        let mut fill = TableFill::default();
        let used = (view.used() as usize).min(self.entries.len());
        for (slot, e) in (0u32..).zip(&mut self.entries[..used]) {
            match e.state {
                State::Retired => continue,
                State::Free => {
                    let generation = view.generation(slot);
                    if generation == e.freed_generation {
                        continue;
                    }
                    e.state = State::Live;
                    e.generation = generation;
                }
                State::Live => {}
            }
            let key = view.key(slot);
            if key.family == 6 {
                fill.v6 += 1;
            } else {
                fill.v4 += 1;
            }
            f(
                &key,
                SlotCount {
                    slot,
                    generation: e.generation,
                    counters: since(&view.counters(slot), &e.base),
                },
            );
        }
        fill
    }

    /// Whether `slot` holds a flow now (as of the last [`Self::read`]).
    pub fn is_live(&self, slot: u32) -> bool {
        self.entries
            .get(slot as usize)
            .is_some_and(|e| e.state == State::Live)
    }

    /// The hash entry of `slot`'s flow was removed at `now_ns`: returns what the flow had
    /// counted then. `None` if the slot was not live (read it first).
    pub fn retire(
        &mut self,
        view: &impl SlotView,
        slot: u32,
        ifindex: u32,
        id: FlowId,
        now_ns: u64,
        report: bool,
    ) -> Option<FlowCounters> {
        let e = self.entries.get_mut(slot as usize)?;
        // A slot whose generation moved since it was given back is live even if no read saw
        // it yet.
        let live = match e.state {
            State::Live => true,
            State::Free => view.generation(slot) != e.freed_generation,
            State::Retired => false,
        };
        if !live {
            return None;
        }
        let raw = view.counters(slot);
        e.state = State::Retired;
        self.retired.insert(
            slot,
            Retired {
                ifindex,
                id,
                at_ns: now_ns,
                raw,
                report,
            },
        );
        Some(since(&raw, &e.base))
    }

    /// Frees the retired slots whose quarantine ended by `now_ns`: those of `ifindex`, and those
    /// nobody reports (released interfaces). The caller gives each back to the kernel's queue,
    /// and reports `late` when asked to.
    pub fn free_expired(&mut self, view: &impl SlotView, now_ns: u64, ifindex: u32) -> Vec<Freed> {
        let due: Vec<u32> = self
            .retired
            .iter()
            .filter(|(_, r)| {
                now_ns.saturating_sub(r.at_ns) >= QUARANTINE_NS
                    && (!r.report || r.ifindex == ifindex)
            })
            .map(|(s, _)| *s)
            .collect();
        let mut freed = Vec::with_capacity(due.len());
        for slot in due {
            let Some(r) = self.retired.remove(&slot) else {
                continue;
            };
            let Some(e) = self.entries.get_mut(slot as usize) else {
                continue;
            };
            // The generation and counters as the slot goes back: the next flow in it counts
            // from these, and shows when the generation moves past this one.
            let raw = view.counters(slot);
            *e = Entry {
                base: raw,
                freed_generation: view.generation(slot),
                generation: 0,
                state: State::Free,
            };
            freed.push(Freed {
                slot,
                ifindex: r.ifindex,
                id: r.id,
                late: since(&raw, &r.raw),
                report: r.report,
            });
        }
        freed
    }

    /// A slot given back could not be queued for the kernel: it stays out of use (retired
    /// forever, not reported), rather than be read as free while the kernel cannot take it.
    pub fn lost(&mut self, slot: u32) {
        if let Some(e) = self.entries.get_mut(slot as usize) {
            e.state = State::Retired;
        }
    }

    /// Slots waiting to be given back.
    pub fn retired_count(&self) -> usize {
        self.retired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::net::IpAddr;

    /// The kernel's side, as vectors: what the classifier does to a slot is written here.
    #[derive(Default)]
    struct Fake {
        used: u32,
        generation: Vec<u32>,
        key: Vec<SlotKey>,
        counters: RefCell<Vec<FlowCounters>>,
        free: Vec<u32>,
    }

    impl Fake {
        fn new(capacity: usize) -> Self {
            Self {
                generation: vec![0; capacity],
                key: vec![SlotKey::default(); capacity],
                counters: RefCell::new(vec![FlowCounters::default(); capacity]),
                ..Default::default()
            }
        }

        /// What `create` in the classifier does: a queued slot, else a never-used one.
        fn create(&mut self, port: u16) -> u32 {
            let slot = if self.free.is_empty() {
                self.used += 1;
                self.used - 1
            } else {
                self.free.remove(0)
            };
            self.key[slot as usize] = SlotKey {
                ifindex: 7,
                family: 4,
                proto: 17,
                local_port: port,
                remote_port: 53,
                local_addr: [u32::from_ne_bytes([10, 0, 0, 1]), 0, 0, 0],
                remote_addr: [u32::from_ne_bytes([10, 0, 0, 2]), 0, 0, 0],
                ..Default::default()
            };
            self.generation[slot as usize] += 1;
            slot
        }

        fn add(&self, slot: u32, bytes: u64) {
            let c = &mut self.counters.borrow_mut()[slot as usize];
            c.rx_bytes += bytes;
            c.rx_packets += 1;
        }
    }

    impl SlotView for Fake {
        fn used(&self) -> u32 {
            self.used
        }
        fn generation(&self, slot: u32) -> u32 {
            self.generation[slot as usize]
        }
        fn key(&self, slot: u32) -> SlotKey {
            self.key[slot as usize]
        }
        fn counters(&self, slot: u32) -> FlowCounters {
            self.counters.borrow()[slot as usize]
        }
    }

    fn id(port: u16) -> FlowId {
        FlowId {
            local: IpAddr::from([10, 0, 0, 1]),
            remote: IpAddr::from([10, 0, 0, 2]),
            local_port: port,
            remote_port: 53,
            protocol: 17,
        }
    }

    fn read(book: &mut Book, fake: &Fake) -> Vec<(u32, u16, u64)> {
        let mut out = vec![];
        book.read(fake, |k, c| {
            out.push((c.slot, k.local_port, c.counters.rx_bytes))
        });
        out
    }

    #[test]
    fn a_reused_slot_counts_its_new_flow_from_where_the_old_one_stopped() {
        let mut fake = Fake::new(4);
        let mut book = Book::new(4);
        let a = fake.create(1000);
        fake.add(a, 500);
        assert_eq!(read(&mut book, &fake), vec![(0, 1000, 500)]);

        // Removed at t=1 s holding 500; a packet in flight adds 40 after the removal.
        let at_removal = book.retire(&fake, a, 7, id(1000), 1_000_000_000, true);
        assert_eq!(at_removal.map(|c| c.rx_bytes), Some(500));
        fake.add(a, 40);
        assert_eq!(
            read(&mut book, &fake),
            vec![],
            "a retired slot is nobody's row"
        );

        // Not yet due; then due: the 40 late bytes are the old flow's.
        let removed = 1_000_000_000;
        assert!(
            book.free_expired(&fake, removed + QUARANTINE_NS - 1, 7)
                .is_empty()
        );
        let freed = book.free_expired(&fake, removed + QUARANTINE_NS, 7);
        assert_eq!(freed.len(), 1);
        assert_eq!((freed[0].id, freed[0].late.rx_bytes), (id(1000), 40));
        fake.free.push(freed[0].slot);

        // Free and not taken: not read. Taken by a new flow: counted from 540, not from 0.
        assert_eq!(read(&mut book, &fake), vec![]);
        let b = fake.create(2000);
        assert_eq!(b, a);
        fake.add(b, 7);
        assert_eq!(read(&mut book, &fake), vec![(0, 2000, 7)]);
    }

    #[test]
    fn every_byte_is_counted_once_through_many_reuses() {
        let mut fake = Fake::new(3);
        let mut book = Book::new(3);
        let (mut reported, mut added) = (0u64, 0u64);
        // What the reader last saw of each live slot.
        let mut last: HashMap<u32, u64> = HashMap::new();
        let mut now = 0u64;
        for round in 0..60u16 {
            now += 1_000_000_000;
            if fake.used < 3 || !fake.free.is_empty() {
                fake.create(round);
            }
            // Traffic on every slot that holds a flow, retired ones included (packets that
            // found the entry before its removal).
            for slot in 0..fake.used {
                let e = book.entries[slot as usize];
                let taken = fake.generation[slot as usize] != e.freed_generation;
                if e.state != State::Free || taken {
                    fake.add(slot, u64::from(round) + 1);
                    added += u64::from(round) + 1;
                }
            }
            for (slot, _, bytes) in read(&mut book, &fake) {
                reported += bytes - last.insert(slot, bytes).unwrap_or(0);
            }
            if round % 3 == 0 {
                let slot = u32::from(round / 3) % fake.used;
                if let Some(c) = book.retire(&fake, slot, 7, id(round), now, true) {
                    reported += c.rx_bytes - last.remove(&slot).unwrap_or(0);
                }
            }
            for f in book.free_expired(&fake, now, 7) {
                reported += f.late.rx_bytes;
                fake.free.push(f.slot);
            }
        }
        for f in book.free_expired(&fake, u64::MAX, 7) {
            reported += f.late.rx_bytes;
        }
        assert!(added > 1000, "the test must move bytes: {added}");
        assert_eq!(reported, added, "every byte added is reported once");
    }

    #[test]
    fn released_interfaces_slots_are_freed_by_anyone_and_not_reported() {
        let mut fake = Fake::new(2);
        let mut book = Book::new(2);
        let a = fake.create(1);
        read(&mut book, &fake);
        book.retire(&fake, a, 9, id(1), 0, false);
        let freed = book.free_expired(&fake, QUARANTINE_NS, 7);
        assert_eq!(freed.len(), 1);
        assert!(!freed[0].report);
    }
}
