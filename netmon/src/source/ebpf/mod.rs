//! The eBPF source: netmon's classifier, loaded once and shared by every caller of this process,
//! attached to an interface while at least one caller samples it, and its maps read into
//! [`Snapshot`]s.
//!
//! - [`loader`]: the kernel object, its programs (verified on first use).
//! - [`maps`]: the flow tables and interface totals, typed; reads need no lock of netmon's.
//! - [`attach`]: which interfaces are attached, for how many callers.
//! - `mapped`: the per-slot arrays mapped into this process, read in place.
//! - `slots`: userspace's book of the slots (live, retired, given back), pure.
//! - `batch`: the map operations aya does not wrap (batch read, lookup-and-delete).
//!
//! Locks: attaching holds the attachment lock; writing the maps (claiming or freeing an
//! interface's totals) holds the maps' write lock briefly; every read holds only the read lock,
//! so readers never wait for each other, and nothing waits on a reader's syscalls but a writer.

mod attach;
mod batch;
pub mod loader;
mod mapped;
pub mod maps;
pub mod slots;
pub mod tc;

use super::{BoxFuture, Progress, ProgressFn, TrafficSource};
use crate::error::{BpfError, RequestError, Result};
use crate::flow::FlowId;
use crate::host;
use crate::interface::InterfaceInfo;
use crate::measurement::Measurement;
use crate::owner::resolve::{Records, Resolver};
use crate::owner::{FlowSockets, Owned, OwnerRef, Unattributed};
use crate::report::{SourceKind, View};
use crate::snapshot::{
    FlowTable, Sample, SlotCount, SlotCursor, Snapshot, SocketTable, TableFill, diff_totals,
};
use crate::tick::Tick;
use attach::Attachments;
use aya::programs::SchedClassifier;
use loader::Program;
use maps::{Maps, OwnerMap};
use netmon_common::{DEFAULT_FLOW_CAPACITY, DirTotals, Direction, LinkKind, SlotKey, SocketOwner};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Largest flow table netmon will ask for (each entry costs ~100 bytes of kernel memory).
pub const MAX_FLOW_CAPACITY: u32 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct EbpfOptions {
    /// Entries in each flow table (IPv4 and IPv6); flows beyond it are counted as unattributed.
    pub flow_capacity: u32,
}

impl EbpfOptions {
    /// Checks the options without touching the kernel, so a server can refuse them at start.
    pub fn new(flow_capacity: u32) -> Result<Self, RequestError> {
        if flow_capacity == 0 || flow_capacity > MAX_FLOW_CAPACITY {
            return Err(RequestError::OutOfRange {
                arg: "--table-capacity",
                got: flow_capacity.to_string(),
                range: format!("1–{MAX_FLOW_CAPACITY} entries"),
                why: "",
            });
        }
        Ok(Self { flow_capacity })
    }
}

impl Default for EbpfOptions {
    fn default() -> Self {
        Self {
            flow_capacity: DEFAULT_FLOW_CAPACITY,
        }
    }
}

struct Inner {
    attachments: Mutex<Attachments>,
    maps: RwLock<Maps>,
    /// Socket owners, read without a lock.
    records: OwnerMap,
    /// Ids of the Ethernet ingress and egress programs, for /health.
    ids: (Option<u32>, Option<u32>),
    /// Who owns the flows' sockets, or why netmon cannot tell.
    owners: Result<Mutex<Resolver>, String>,
}

/// netmon's classifier, loaded once and shared by every caller of this process. A source made
/// with [`Self::lazy`] loads it at the first attachment, so a process without privileges can
/// still list interfaces and say what it lacks when asked for traffic.
#[derive(Clone)]
pub struct EbpfSource {
    opts: EbpfOptions,
    loaded: Arc<Mutex<Option<Arc<Inner>>>>,
    host: String,
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC now, the clock snapshots are stamped with.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// One pass over the flow tables for several interfaces.
#[derive(Debug, Default)]
pub struct Reading {
    /// Entries the tables held (all interfaces').
    pub fill: TableFill,
    per_iface: HashMap<u32, Snapshot>,
}

impl Reading {
    /// `ifindex`'s snapshot from this pass (empty if it was not asked for).
    pub fn take(&mut self, ifindex: u32) -> Snapshot {
        self.per_iface.remove(&ifindex).unwrap_or_default()
    }
}

fn load_inner(opts: EbpfOptions) -> Result<Inner, BpfError> {
    let (mut programs, maps, records) = loader::load(opts.flow_capacity)?;
    // The socket-owner programs watch sockets from now on; the resolver lists the older ones.
    let owners = match crate::owner::resolve::cgroup_root() {
        None => Err(
            "no cgroup v2 mount was found and netmon could not mount one (that needs root), so the socket-owner programs have nothing to attach to"
                .to_string(),
        ),
        Some(root) => programs
            .attach_owners(&root)
            .map(|()| Mutex::new(Resolver::new()))
            .map_err(|e| crate::error::chain(&e)),
    };
    if let Err(why) = &owners {
        log::warn!("traffic will not be attributed to processes: {why}");
    }
    let eth = |direction| Program::Classifier {
        direction,
        link: LinkKind::Ethernet,
    };
    let ids = (
        programs.id(eth(Direction::Ingress)),
        programs.id(eth(Direction::Egress)),
    );
    Ok(Inner {
        attachments: Mutex::new(Attachments::new(programs)),
        maps: RwLock::new(maps),
        records,
        ids,
        owners,
    })
}

// A panic while holding a lock leaves plain map and program handles behind, still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn attachments(&self) -> MutexGuard<'_, Attachments> {
        lock(&self.attachments)
    }

    fn maps(&self) -> RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn maps_mut(&self) -> RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl EbpfSource {
    /// A source that loads the classifier when it first attaches.
    pub fn lazy(opts: EbpfOptions) -> Self {
        Self {
            opts,
            loaded: Arc::default(),
            host: "localhost".into(),
        }
    }

    /// Loads the classifier into the kernel now (nothing is attached yet).
    pub fn load(opts: EbpfOptions) -> Result<Self, BpfError> {
        let s = Self::lazy(opts);
        s.inner()?;
        Ok(s)
    }

    /// The loaded classifier, loading it if this is the first use.
    fn inner(&self) -> Result<Arc<Inner>, BpfError> {
        let mut loaded = lock(&self.loaded);
        if let Some(i) = loaded.as_ref() {
            return Ok(i.clone());
        }
        let i = Arc::new(load_inner(self.opts)?);
        *loaded = Some(i.clone());
        Ok(i)
    }

    pub fn options(&self) -> EbpfOptions {
        self.opts
    }

    /// Ids of the Ethernet ingress and egress programs (`bpftool prog show id N`), once loaded.
    pub fn program_ids(&self) -> (Option<u32>, Option<u32>) {
        lock(&self.loaded).as_ref().map_or((None, None), |i| i.ids)
    }

    /// One of the loaded programs, e.g. to run frames through it with BPF_PROG_TEST_RUN. The
    /// closure runs under the attachment lock.
    pub fn with_program<R>(
        &self,
        which: Program,
        f: impl FnOnce(&SchedClassifier) -> R,
    ) -> Result<R, BpfError> {
        let inner = self.inner()?;
        let mut a = inner.attachments();
        Ok(f(a.programs.get(which)?))
    }

    /// Creates `ifindex`'s totals. [`Self::attach`] does this itself; tests that run frames
    /// through the program without attaching call it directly.
    pub fn prepare(&self, ifindex: u32) -> Result<(), BpfError> {
        self.inner()?.maps_mut().claim(ifindex)
    }

    /// Gives `ifindex`'s totals and flows back, as the last detach does. For tests that run
    /// frames through the program without attaching, between runs; then [`Self::prepare`]
    /// again.
    pub fn release(&self, ifindex: u32) -> Result<(), BpfError> {
        self.inner()?.maps_mut().release(ifindex);
        Ok(())
    }

    /// Attaches to `iface` (or adds a user to an existing attachment). Detached when the last
    /// returned guard is dropped.
    pub fn attach(&self, iface: &InterfaceInfo) -> Result<Attachment, BpfError> {
        let inner = self.inner()?;
        let mut a = inner.attachments();
        if !a.contains(iface.index) {
            inner.maps_mut().claim(iface.index)?;
        }
        if let Err(e) = a.add(iface, attach::counting(iface.link_kind())) {
            if !a.contains(iface.index) {
                inner.maps_mut().release(iface.index);
            }
            return Err(e);
        }
        Ok(Attachment {
            inner: Some(inner.clone()),
            ifindex: iface.index,
        })
    }

    /// Detaches from every interface now, on this thread, whatever callers still hold: for a
    /// process about to exit (a signal, the end of a server). Attachments dropped later find
    /// nothing left to detach.
    pub fn detach_all(&self) {
        let Some(inner) = lock(&self.loaded).clone() else {
            return;
        };
        let mut a = inner.attachments();
        for ifindex in a.remove_all() {
            inner.maps_mut().release(ifindex);
        }
    }

    /// Attaches the do-nothing program ([`Program::Floor`]) to both hooks of `iface`: what the
    /// benchmark measures the counting programs against. Use a source of its own for it.
    pub fn attach_floor(&self, iface: &InterfaceInfo) -> Result<Attachment, BpfError> {
        let inner = self.inner()?;
        inner
            .attachments()
            .add(iface, [Program::Floor, Program::Floor])?;
        Ok(Attachment {
            inner: Some(inner.clone()),
            ifindex: iface.index,
        })
    }

    /// Attaches the classifier without socket attribution to both hooks of `iface`: what the
    /// benchmark measures attribution's cost against. Use a source of its own for it.
    pub fn attach_plain(&self, iface: &InterfaceInfo) -> Result<Attachment, BpfError> {
        let inner = self.inner()?;
        let mut a = inner.attachments();
        if !a.contains(iface.index) {
            inner.maps_mut().claim(iface.index)?;
        }
        a.add(
            iface,
            [
                Program::Plain(Direction::Ingress),
                Program::Plain(Direction::Egress),
            ],
        )?;
        Ok(Attachment {
            inner: Some(inner.clone()),
            ifindex: iface.index,
        })
    }

    /// The owners of `flows` (with what the flow tables said of their sockets): a table, and
    /// each flow's place in it or the reason it has none. `Err`: attribution is off, and why.
    /// Blocking: /proc and netlink.
    pub fn owners_of(&self, flows: &[(FlowId, FlowSockets)]) -> std::result::Result<Owned, String> {
        let Some(inner) = lock(&self.loaded).clone() else {
            return Err("the classifier is not loaded".into());
        };
        let resolver = inner.owners.as_ref().map_err(Clone::clone)?;
        if flows.is_empty() {
            return Ok(Owned::default());
        }
        let records = MapRecords {
            map: &inner.records,
            all: std::cell::OnceCell::new(),
        };
        let local = host::local_addresses();
        Ok(lock(resolver).attribute(flows, &records, &local))
    }

    /// [`Self::attribute`] on tokio's blocking threads.
    pub async fn attributed(
        &self,
        mut m: Measurement,
        sockets: SocketTable,
    ) -> Result<Measurement, BpfError> {
        let me = self.clone();
        blocking(move || {
            me.attribute(&mut m, &sockets);
            Ok(m)
        })
        .await
    }

    /// Names the owner of every row of `m` from `sockets` (what the flow tables said of each
    /// flow's sockets), or says in a note why it cannot. Blocking: /proc and netlink.
    pub fn attribute(&self, m: &mut Measurement, sockets: &SocketTable) {
        let flows: Vec<(FlowId, FlowSockets)> = m
            .rows
            .iter()
            .filter_map(|r| r.flow_id())
            .map(|id| (id, sockets.get(&id).copied().unwrap_or_default()))
            .collect();
        match self.owners_of(&flows) {
            Err(why) => {
                for r in &mut m.rows {
                    r.owner = OwnerRef::unattributed(Unattributed::Off);
                }
                m.notes.push(format!(
                    "traffic is not attributed to processes: {why}; it needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON and a cgroup v2 mount"
                ));
            }
            Ok(owned) => {
                for r in &mut m.rows {
                    if let Some(id) = r.flow_id() {
                        r.owner = owned.refs.get(&id).copied().unwrap_or_default();
                    }
                }
                m.owners = owned.owners;
                m.notes.extend(owned.note);
            }
        }
    }

    /// Reads the totals of `ifindexes` and passes each of their flows to `f`, in one pass over
    /// the per-slot arrays ([`Maps::for_each_flow`]). The instant is taken before anything is
    /// read.
    fn read_with(
        &self,
        ifindexes: &[u32],
        mut f: impl FnMut(&Maps, &SlotKey, SlotCount),
    ) -> (u64, Vec<(DirTotals, DirTotals)>, TableFill) {
        // Nothing was ever attached if the classifier is not loaded: nothing to read.
        let Some(inner) = lock(&self.loaded).clone() else {
            return (
                monotonic_ns(),
                vec![Default::default(); ifindexes.len()],
                TableFill::default(),
            );
        };
        let maps = inner.maps();
        let taken_ns = monotonic_ns();
        let totals = ifindexes
            .iter()
            .map(|&i| {
                (
                    maps.totals(i, Direction::Ingress),
                    maps.totals(i, Direction::Egress),
                )
            })
            .collect();
        let fill = maps.for_each_flow(|k, c| {
            if ifindexes.contains(&k.ifindex) {
                f(&maps, k, c);
            }
        });
        (taken_ns, totals, fill)
    }

    /// The counters of several interfaces, from one pass over the flow tables.
    pub fn read(&self, ifindexes: &[u32]) -> Reading {
        let mut tables: HashMap<u32, (FlowTable, SocketTable, Vec<SlotCount>)> =
            ifindexes.iter().map(|&i| (i, Default::default())).collect();
        let cell = std::cell::RefCell::new(&mut tables);
        let (taken_ns, totals, fill) = self.read_with(ifindexes, |maps, k, c| {
            if let Some((t, sockets, slots)) = cell.borrow_mut().get_mut(&k.ifindex) {
                let id = FlowId::from_slot_key(k);
                t.insert(id, c.counters);
                slots.push(c);
                let s = maps.sockets(c.slot);
                if s != FlowSockets::default() {
                    sockets.insert(id, s);
                }
            }
        });
        let per_iface = ifindexes
            .iter()
            .zip(totals)
            .map(|(&i, (rx, tx))| {
                let (flows, sockets, slots) = tables.remove(&i).unwrap_or_default();
                (
                    i,
                    Snapshot {
                        taken_ns,
                        rx,
                        tx,
                        flows,
                        sockets,
                        slots,
                    },
                )
            })
            .collect();
        Reading { fill, per_iface }
    }

    /// The current counters of one interface.
    pub fn snapshot(&self, ifindex: u32) -> Snapshot {
        self.read(&[ifindex]).take(ifindex)
    }

    /// What crossed `ifindex` since `before`: the same as [`crate::snapshot::diff`] of `before`
    /// and a fresh [`Self::snapshot`], but the flows are diffed as they come out of the kernel,
    /// with no table built for them. This is the end of every sample window, so it is what
    /// callers wait for.
    ///
    /// Also returns the sockets of the sample's flows.
    pub fn sample_since(&self, ifindex: u32, before: &Snapshot) -> (Sample, SocketTable) {
        let read = std::cell::RefCell::new((
            Vec::with_capacity(before.flows.len()),
            SocketTable::default(),
        ));
        // Walk the window's first reading beside the slots; a `before` without slots (none
        // were live then) has nothing to walk, and every flow is new.
        let mut cursor = SlotCursor::new(&before.slots);
        let (taken_ns, totals, _) = self.read_with(&[ifindex], |maps, k, now| {
            if let Some(d) = cursor.since(&now) {
                let id = FlowId::from_slot_key(k);
                let (flows, sockets) = &mut *read.borrow_mut();
                flows.push((id, d));
                let s = maps.sockets(now.slot);
                if s != FlowSockets::default() {
                    sockets.insert(id, s);
                }
            }
        });
        let (flows, sockets) = read.into_inner();
        let (rx, tx) = totals.into_iter().next().unwrap_or_default();
        let sample = Sample::new(
            taken_ns.saturating_sub(before.taken_ns),
            diff_totals(&rx, &before.rx),
            diff_totals(&tx, &before.tx),
            flows,
        );
        (sample, sockets)
    }

    /// Removes `tick`'s idle flows of `ifindex` from the kernel table, adding to the tick
    /// whatever each counted after the reading, and what flows removed earlier counted after
    /// their removal ([`Maps::evict`]). The caller must be the only one diffing `ifindex`:
    /// another reader's window would miss what a removed entry had counted since its own start.
    pub fn evict(&self, ifindex: u32, tick: &mut Tick) {
        // Also with no idle flow: the slots whose quarantine ended go back to the classifier
        // here, and a table without pressure would otherwise never give them back.
        let Some(inner) = lock(&self.loaded).clone() else {
            return;
        };
        let maps = inner.maps();
        let idle = std::mem::take(&mut tick.idle);
        let tick = std::cell::RefCell::new(tick);
        maps.evict(
            ifindex,
            idle,
            |id, at_removal| tick.borrow_mut().evicted(id, at_removal),
            |id, late| tick.borrow_mut().late(id, late),
        );
    }

    /// Slots held by removed flows until their quarantine ends (0 when nothing is loaded).
    pub fn slots_waiting(&self) -> usize {
        lock(&self.loaded)
            .clone()
            .map_or(0, |inner| inner.maps().slots_waiting())
    }

    /// Attach, count for `window`, detach: the traffic of that window. Other callers on the same
    /// interface share the attachment; each diffs its own window. The bpf syscalls run on
    /// tokio's blocking threads, not on the runtime's.
    ///
    /// An interface deleted during the window ends it: the sample holds what crossed it until
    /// then, and [`Window::vanished_after`] says when that was (to [`PRESENCE_CHECK`]).
    pub async fn sample_window(
        &self,
        iface: &InterfaceInfo,
        window: Duration,
        progress: ProgressFn<'_>,
    ) -> Result<Window, BpfError> {
        let (me, info) = (self.clone(), iface.clone());
        let (attachment, before) = blocking(move || {
            let a = me.attach(&info)?;
            let before = me.snapshot(info.index);
            Ok((a, before))
        })
        .await?;
        progress(Progress::Started { window });
        let start = tokio::time::Instant::now();
        let deadline = start + window;
        let mut next_second = start + Duration::from_secs(1);
        let mut vanished_after = None;
        loop {
            let wake = (tokio::time::Instant::now() + PRESENCE_CHECK)
                .min(next_second)
                .min(deadline);
            tokio::time::sleep_until(wake).await;
            if wake >= deadline {
                break;
            }
            if !host::present(iface) {
                vanished_after = Some(start.elapsed());
                break;
            }
            if wake >= next_second {
                progress(Progress::Elapsed {
                    elapsed: next_second - start,
                    window,
                });
                next_second += Duration::from_secs(1);
            }
        }
        let (me, ifindex) = (self.clone(), iface.index);
        let (sample, sockets) = blocking(move || {
            let taken = me.sample_since(ifindex, &before);
            attachment.detach();
            Ok(taken)
        })
        .await?;
        Ok(Window {
            sample,
            sockets,
            vanished_after,
        })
    }
}

/// How often a window checks that its interface still exists.
pub const PRESENCE_CHECK: Duration = Duration::from_millis(250);

/// What one window of [`EbpfSource::sample_window`] saw.
pub struct Window {
    pub sample: Sample,
    /// What the flow tables said of the sample's flows' sockets.
    pub sockets: SocketTable,
    /// The interface was deleted about this far into the window; the sample stops there.
    pub vanished_after: Option<Duration>,
}

impl Window {
    /// The neutral measurement, with a note when the interface vanished.
    pub fn measurement(&self, iface: &str, asked: Duration) -> Measurement {
        let m = Measurement::from_sample(&self.sample);
        match self.vanished_after {
            None => m,
            Some(t) => m.with_note(format!(
                "{iface} was deleted about {:.1} s into the {:.1} s window: the figures are what crossed it until then, and stop there",
                t.as_secs_f64(),
                asked.as_secs_f64()
            )),
        }
    }
}

/// The socket-owner map as [`Records`]: one lookup per socket the resolver has not seen, and
/// a whole read only when a closed receiver is searched for by address (once per result). A
/// busy host's map holds 65,536 records; reading them all every agent tick cost more than the
/// tick's own work.
struct MapRecords<'a> {
    map: &'a OwnerMap,
    all: std::cell::OnceCell<HashMap<u64, SocketOwner>>,
}

impl Records for MapRecords<'_> {
    fn get(&self, cookie: u64) -> Option<SocketOwner> {
        self.map.owner(cookie)
    }

    fn all(&self) -> &HashMap<u64, SocketOwner> {
        self.all.get_or_init(|| self.map.owners())
    }
}

/// Runs blocking bpf work on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BpfError> + Send + 'static,
) -> Result<T, BpfError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(BpfError::Failed {
            action: "run a map operation",
            source: Box::new(e),
        })
    })
}

/// Keeps an interface attached; detaches when the last one for it is dropped.
pub struct Attachment {
    inner: Option<Arc<Inner>>,
    ifindex: u32,
}

fn release(inner: &Inner, ifindex: u32) {
    let mut a = inner.attachments();
    if a.remove(ifindex) {
        // The tables are shared by all interfaces: give this one's entries back.
        inner.maps_mut().release(ifindex);
    }
}

impl Attachment {
    /// Gives the attachment back now, on this thread.
    pub fn detach(mut self) {
        if let Some(inner) = self.inner.take() {
            release(&inner, self.ifindex);
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let ifindex = self.ifindex;
        // Detaching is a few bpf syscalls; off the runtime's threads when there is one (a
        // cancelled sample drops its attachment there). Callers that must know it is done
        // call `detach`.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                h.spawn_blocking(move || release(&inner, ifindex));
            }
            _ => release(&inner, ifindex),
        }
    }
}

impl TrafficSource for EbpfSource {
    fn host(&self) -> &str {
        &self.host
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Ebpf
    }

    fn interfaces(&self) -> BoxFuture<'_, Result<Vec<InterfaceInfo>>> {
        Box::pin(host::list_blocking())
    }

    fn sample<'a>(
        &'a self,
        iface: &'a InterfaceInfo,
        window: Duration,
        _view: &'a View,
        progress: ProgressFn<'a>,
    ) -> BoxFuture<'a, Result<Measurement>> {
        Box::pin(async move {
            let w = self.sample_window(iface, window, progress).await?;
            let m = w.measurement(&iface.name, window);
            Ok(self.attributed(m, w.sockets).await?)
        })
    }
}
