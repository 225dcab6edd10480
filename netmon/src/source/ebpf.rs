//! The eBPF source: loads netmon's classifier once, attaches it to an interface while at least
//! one caller samples that interface, and reads the kernel maps into [`Snapshot`]s.
//!
//! Attachments go through TCX links on kernels that have them (6.6+): they belong to this
//! process and vanish when it exits, even on `kill -9`, and they never touch qdiscs or other
//! programs' filters. Older kernels get a clsact filter of netmon's own; a clsact qdisc is added
//! only if missing and is never removed, since other tools' filters may hang off it.

use super::{Measured, Progress, ProgressFn, TrafficSource, batch};
use crate::error::{Error, Result};
use crate::flow::{FlowCounters, FlowId};
use crate::iface::{self, InterfaceInfo};
use crate::report::SourceKind;
use crate::snapshot::{FlowTable, Sample, Snapshot, diff, diff_totals, flow_delta, sum_totals};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, IterableMap, MapData, PerCpuHashMap, PerCpuValues},
    programs::{
        SchedClassifier, TcAttachType,
        tc::{self, SchedClassifierLinkId},
    },
    util::KernelVersion,
};
use netmon_common::{
    DEFAULT_FLOW_CAPACITY, DirTotals, Direction, EGRESS_PROG, FLOWS_MAP, FlowKey, FlowValue,
    INGRESS_PROG, LINKS_MAP, TOTALS_MAP, TotalsKey,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The kernel object built from `netmon-ebpf` by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netmon"));

/// Largest flow table netmon will ask for (each entry costs ~100 bytes of kernel memory).
pub const MAX_FLOW_CAPACITY: u32 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct EbpfOptions {
    /// Entries in the flow table; flows beyond it are counted as unattributed.
    pub flow_capacity: u32,
}

impl EbpfOptions {
    /// Checks the options without touching the kernel, so a server can refuse them at start.
    pub fn validate(&self) -> Result<()> {
        if self.flow_capacity == 0 || self.flow_capacity > MAX_FLOW_CAPACITY {
            return Err(Error::BadCapacity {
                got: self.flow_capacity,
                max: MAX_FLOW_CAPACITY,
            });
        }
        Ok(())
    }
}

impl Default for EbpfOptions {
    fn default() -> Self {
        Self {
            flow_capacity: DEFAULT_FLOW_CAPACITY,
        }
    }
}

struct Attached {
    users: usize,
    name: String,
    ingress: SchedClassifierLinkId,
    egress: SchedClassifierLinkId,
}

struct State {
    ebpf: Ebpf,
    flows: HashMap<MapData, FlowKey, FlowValue>,
    totals: PerCpuHashMap<MapData, TotalsKey, DirTotals>,
    links: HashMap<MapData, u32, u32>,
    attached: BTreeMap<u32, Attached>,
    nr_cpus: usize,
}

/// netmon's classifier, loaded once and shared by every caller of this process.
#[derive(Clone)]
pub struct EbpfSource {
    state: Arc<Mutex<State>>,
    host: String,
}

fn raise_memlock() {
    // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones use memcg and ignore it.
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        log::debug!("could not raise RLIMIT_MEMLOCK; fine on kernels 5.11+");
    }
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

fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| Error::Ebpf {
        action: "find a map",
        detail: format!("map {name} is missing from the object"),
    })?;
    T::try_from(map).map_err(|e| Error::from_ebpf("open a map", &e))
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    ebpf.program_mut(name)
        .ok_or_else(|| Error::Ebpf {
            action: "find a program",
            detail: format!("program {name} is missing from the object"),
        })?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| Error::from_ebpf("find a program", &e))
}

impl EbpfSource {
    /// Loads the classifier into the kernel (nothing is attached yet).
    pub fn load(opts: EbpfOptions) -> Result<Self> {
        opts.validate()?;
        raise_memlock();
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(FLOWS_MAP, opts.flow_capacity)
            .load(OBJECT)
            .map_err(|e| Error::from_ebpf("load the eBPF program", &e))?;
        for name in [INGRESS_PROG, EGRESS_PROG] {
            classifier(&mut ebpf, name)?
                .load()
                .map_err(|e| Error::from_ebpf("load the classifier (verifier)", &e))?;
        }
        let nr_cpus = aya::util::nr_cpus().map_err(|(what, e)| Error::Io {
            path: what.into(),
            source: e,
        })?;
        let state = State {
            flows: take_map(&mut ebpf, FLOWS_MAP)?,
            totals: take_map(&mut ebpf, TOTALS_MAP)?,
            links: take_map(&mut ebpf, LINKS_MAP)?,
            ebpf,
            attached: BTreeMap::new(),
            nr_cpus,
        };
        Ok(Self {
            state: Arc::new(Mutex::new(state)),
            host: "localhost".into(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain map handles behind, still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The loaded classifier for one direction, e.g. to run frames through it with
    /// BPF_PROG_TEST_RUN. The closure runs under the source's lock.
    pub fn with_program<R>(
        &self,
        direction: Direction,
        f: impl FnOnce(&SchedClassifier) -> R,
    ) -> Result<R> {
        let mut st = self.lock();
        let name = match direction {
            Direction::Ingress => INGRESS_PROG,
            Direction::Egress => EGRESS_PROG,
        };
        Ok(f(classifier(&mut st.ebpf, name)?))
    }

    /// Tells the classifier what precedes the IP header on `ifindex` and creates its totals.
    /// [`Self::attach`] does this itself; tests that run frames through the program without
    /// attaching call it directly.
    pub fn prepare(&self, ifindex: u32, link: netmon_common::LinkKind) -> Result<()> {
        let mut st = self.lock();
        prepare(&mut st, ifindex, link)
    }

    /// Attaches to `iface` (or adds a user to an existing attachment). Detached when the last
    /// returned guard is dropped.
    pub fn attach(&self, iface: &InterfaceInfo) -> Result<Attachment> {
        let mut st = self.lock();
        if let Some(a) = st.attached.get_mut(&iface.index) {
            a.users += 1;
        } else {
            prepare(&mut st, iface.index, iface.link_kind())?;
            let ingress = attach_one(
                &mut st.ebpf,
                INGRESS_PROG,
                &iface.name,
                TcAttachType::Ingress,
            )?;
            let egress =
                match attach_one(&mut st.ebpf, EGRESS_PROG, &iface.name, TcAttachType::Egress) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = classifier(&mut st.ebpf, INGRESS_PROG).map(|p| p.detach(ingress));
                        return Err(e);
                    }
                };
            log::info!(
                "attached to {} (ifindex {}) ingress and egress",
                iface.name,
                iface.index
            );
            st.attached.insert(
                iface.index,
                Attached {
                    users: 1,
                    name: iface.name.clone(),
                    ingress,
                    egress,
                },
            );
        }
        Ok(Attachment {
            source: self.clone(),
            ifindex: iface.index,
        })
    }

    fn release(&self, ifindex: u32) {
        let mut st = self.lock();
        let Some(a) = st.attached.get_mut(&ifindex) else {
            return;
        };
        a.users -= 1;
        if a.users > 0 {
            return;
        }
        let Some(a) = st.attached.remove(&ifindex) else {
            return;
        };
        for (prog, link) in [(INGRESS_PROG, a.ingress), (EGRESS_PROG, a.egress)] {
            if let Err(e) = classifier(&mut st.ebpf, prog)
                .and_then(|p| p.detach(link).map_err(|e| Error::from_ebpf("detach", &e)))
            {
                log::warn!("detaching {prog} from {}: {e}", a.name);
            }
        }
        // The table is shared by all interfaces: give this one's entries back.
        let mut stale = Vec::new();
        let mut mine = |k: &FlowKey, _: &FlowValue| {
            if k.ifindex == ifindex {
                stale.push(*k);
            }
        };
        if batch::for_each(st.flows.map(), &mut mine).is_err() {
            st.flows
                .keys()
                .filter_map(|k| k.ok())
                .for_each(|k| mine(&k, &FlowValue::default()));
        }
        for k in stale {
            let _ = st.flows.remove(&k);
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            let _ = st.totals.remove(&TotalsKey {
                ifindex,
                direction: direction as u32,
            });
        }
        let _ = st.links.remove(&ifindex);
        log::info!("detached from {} (ifindex {ifindex})", a.name);
    }

    /// Reads one interface's totals and passes each of its flows to `f`, under the lock.
    fn read(
        &self,
        ifindex: u32,
        f: impl FnMut(FlowId, FlowCounters),
    ) -> (u64, DirTotals, DirTotals) {
        self.read_raw(ifindex, f, |_, _| {})
    }

    /// [`Self::read`], also passing each of the interface's raw entries to `raw`.
    fn read_raw(
        &self,
        ifindex: u32,
        mut f: impl FnMut(FlowId, FlowCounters),
        mut raw: impl FnMut(&FlowKey, &FlowValue),
    ) -> (u64, DirTotals, DirTotals) {
        let st = self.lock();
        let taken_ns = monotonic_ns();
        let totals = |direction: Direction| {
            st.totals
                .get(
                    &TotalsKey {
                        ifindex,
                        direction: direction as u32,
                    },
                    0,
                )
                .map(|v| sum_totals(v.iter()))
                .unwrap_or_default()
        };
        let (rx, tx) = (totals(Direction::Ingress), totals(Direction::Egress));
        let mut add = |k: &FlowKey, v: &FlowValue| {
            if k.ifindex == ifindex {
                f(FlowId::from_key(k), FlowCounters::from(v));
                raw(k, v);
            }
        };
        if let Err(e) = batch::for_each(st.flows.map(), &mut add) {
            // Kernels before 5.6 have no batch operations: two syscalls per entry instead.
            log::debug!("batch lookup unavailable ({e}); reading the flow table key by key");
            st.flows
                .iter()
                .filter_map(|r| r.ok())
                .for_each(|(k, v)| add(&k, &v));
        }
        (taken_ns, rx, tx)
    }

    /// The current counters of one interface.
    pub fn snapshot(&self, ifindex: u32) -> Snapshot {
        let mut flows = FlowTable::default();
        let (taken_ns, rx, tx) = self.read(ifindex, |id, c| {
            flows.insert(id, c);
        });
        Snapshot {
            taken_ns,
            rx,
            tx,
            flows,
        }
    }

    /// What crossed `ifindex` since `before`: the same as [`diff`] of `before` and a fresh
    /// [`Self::snapshot`], but the flows are diffed as they come out of the kernel, with no table
    /// built for them. This is the end of every sample window, so it is what callers wait for.
    pub fn sample_since(&self, ifindex: u32, before: &Snapshot) -> Sample {
        let mut flows = Vec::with_capacity(before.flows.len());
        let (taken_ns, rx, tx) = self.read(ifindex, |id, now| {
            if let Some(d) = flow_delta(before.flows.get(&id), &now) {
                flows.push((id, d));
            }
        });
        Sample {
            window_ns: taken_ns.saturating_sub(before.taken_ns),
            rx: diff_totals(&rx, &before.rx),
            tx: diff_totals(&tx, &before.tx),
            flows,
        }
    }

    /// One tick of an always-on sampler: what crossed `ifindex` since `prev`, and the new
    /// snapshot to diff the next tick against. Entries whose last packet is older than
    /// `idle_before` (CLOCK_MONOTONIC_COARSE ns, the classifier's clock) are removed from the
    /// kernel table, and whatever they counted after the read is added to this tick, so the
    /// diffs stay exact: a removed flow that comes back is a new entry, counted from zero.
    ///
    /// The caller must be the only one diffing `ifindex`: another reader's window would miss
    /// what a removed entry had counted since its own start.
    pub fn tick(&self, ifindex: u32, prev: &Snapshot, idle_before: Option<u64>) -> Tick {
        let mut flows = FlowTable::default();
        let mut idle = Vec::new();
        let cutoff = idle_before.unwrap_or(0);
        let (taken_ns, rx, tx) = self.read_raw(
            ifindex,
            |id, c| {
                flows.insert(id, c);
            },
            |k, v| {
                if v.last_seen_ns < cutoff {
                    idle.push(*k);
                }
            },
        );
        let mut now = Snapshot {
            taken_ns,
            rx,
            tx,
            flows,
        };
        let mut sample = diff(prev, &now);
        let mut evicted = 0;
        let st = self.lock();
        for key in idle {
            let id = FlowId::from_key(&key);
            let last = match batch::lookup_and_delete::<FlowKey, FlowValue>(st.flows.map(), &key) {
                Ok(Some(v)) => FlowCounters::from(&v),
                // Gone already (the interface was released).
                Ok(None) => continue,
                Err(e) => {
                    // Before 5.14, hash maps cannot lookup-and-delete: keep the entry rather
                    // than risk losing what it counts between a read and a delete.
                    log::debug!("not evicting idle flows: {e}");
                    break;
                }
            };
            evicted += 1;
            let read = now.flows.remove(&id);
            if let Some(late) = flow_delta(read.as_ref(), &last) {
                match sample.flows.iter_mut().find(|(f, _)| *f == id) {
                    Some((_, c)) => c.add(&late),
                    None => sample.flows.push((id, late)),
                }
            }
        }
        Tick {
            now,
            sample,
            evicted,
        }
    }

    /// Attach, count for `window`, detach: the traffic of that window. Other callers on the same
    /// interface share the attachment; each diffs its own window.
    pub async fn sample_window(
        &self,
        iface: &InterfaceInfo,
        window: Duration,
        progress: ProgressFn<'_>,
    ) -> Result<Sample> {
        let _attachment = self.attach(iface)?;
        let before = self.snapshot(iface.index);
        progress(Progress::Started { window });
        let start = tokio::time::Instant::now();
        let deadline = start + window;
        let mut tick = start;
        loop {
            tick += Duration::from_secs(1);
            if tick >= deadline {
                tokio::time::sleep_until(deadline).await;
                break;
            }
            tokio::time::sleep_until(tick).await;
            progress(Progress::Elapsed {
                elapsed: tick - start,
                window,
            });
        }
        Ok(self.sample_since(iface.index, &before))
    }
}

fn prepare(st: &mut State, ifindex: u32, link: netmon_common::LinkKind) -> Result<()> {
    st.links
        .insert(ifindex, link as u32, 0)
        .map_err(|e| Error::from_ebpf("configure the link type", &e))?;
    for direction in [Direction::Ingress, Direction::Egress] {
        let key = TotalsKey {
            ifindex,
            direction: direction as u32,
        };
        if st.totals.get(&key, 0).is_err() {
            let zeros =
                PerCpuValues::try_from(vec![DirTotals::default(); st.nr_cpus]).map_err(|e| {
                    Error::Ebpf {
                        action: "create interface totals",
                        detail: e.to_string(),
                    }
                })?;
            st.totals
                .insert(key, zeros, 0)
                .map_err(|e| Error::from_ebpf("create interface totals", &e))?;
        }
    }
    Ok(())
}

fn attach_one(
    ebpf: &mut Ebpf,
    prog: &str,
    iface: &str,
    kind: TcAttachType,
) -> Result<SchedClassifierLinkId> {
    let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    if !tcx {
        // Netlink filters need a clsact qdisc. Add one only if missing (EEXIST is fine), and
        // never remove it: other tools' filters may hang off it.
        if let Err(e) = tc::qdisc_add_clsact(iface) {
            log::debug!("clsact on {iface}: {e} (already present is fine)");
        }
    }
    classifier(ebpf, prog)?
        .attach(iface, kind)
        .map_err(|e| Error::from_ebpf("attach the classifier", &e))
}

/// What [`EbpfSource::tick`] found.
pub struct Tick {
    /// The counters to diff the next tick against (evicted flows left out).
    pub now: Snapshot,
    pub sample: Sample,
    /// Idle entries removed from the kernel table.
    pub evicted: usize,
}

/// CLOCK_MONOTONIC_COARSE now: the classifier's `last_seen_ns` clock.
pub fn coarse_now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// Keeps an interface attached; detaches when the last one for it is dropped.
pub struct Attachment {
    source: EbpfSource,
    ifindex: u32,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.source.release(self.ifindex);
    }
}

impl TrafficSource for EbpfSource {
    fn host(&self) -> &str {
        &self.host
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Ebpf
    }

    async fn interfaces(&self) -> Result<Vec<InterfaceInfo>> {
        iface::list()
    }

    async fn sample(
        &self,
        iface: &InterfaceInfo,
        window: Duration,
        progress: ProgressFn<'_>,
    ) -> Result<Measured> {
        self.sample_window(iface, window, progress)
            .await
            .map(Measured::Flows)
    }
}
