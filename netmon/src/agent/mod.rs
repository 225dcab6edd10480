//! `netmon agent`: always attached, collecting every tick. Each watched interface keeps its
//! [`History`] (iftop's rolling views) and feeds the Prometheus [`Metrics`]; [`http`] serves them.
//!
//! Interfaces are re-listed every tick, so ones that appear are attached and ones that vanish are
//! dropped (with their series) while the agent runs.

pub mod http;
pub mod local;
pub mod source;

use crate::error::{ArgNames, BpfError, Error, RequestError, Result};
use crate::filter::Halves;
use crate::flow::FlowId;
use crate::host;
use crate::interface::{InterfaceInfo, InterfaceKind};
use crate::metrics::{EvictReason, MAX_FLOW_SERIES, Metrics};
use crate::owner::{Container, FlowOwner, FlowSockets, Owned, Owner, Unattributed};
use crate::request::IfaceName;
use crate::snapshot::{Sample, SocketTable, TableFill};
use crate::source::ebpf::{Attachment, EbpfOptions, EbpfSource, monotonic_ns};
use crate::tick::{self, Tracked};
use crate::window::{History, Rate, Rolling};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// The tick: how often the kernel's counters are read.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);
/// How long a flow may stay quiet before its kernel entry is removed.
pub const DEFAULT_EVICT_IDLE: Duration = Duration::from_secs(60);
/// Table fill (in quarters) from which flows quiet for [`PRESSURE_TICKS`] ticks are removed.
const PRESSURE_QUARTERS: usize = 3;
const PRESSURE_TICKS: u32 = 2;

/// The agent's flags as given, before they are checked.
#[derive(Clone, Debug)]
pub struct AgentFlags {
    pub ifaces: Vec<String>,
    pub active_only: bool,
    pub tick_seconds: f64,
    pub table_capacity: u32,
    pub evict_idle_seconds: f64,
    pub flow_series: usize,
    pub process_series: usize,
}

#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Interfaces to watch; empty: every interface that is up, loopback excepted.
    pub ifaces: Vec<IfaceName>,
    /// Export only interfaces that carried traffic in the last 40 s (NetProbe's --active-only).
    pub active_only: bool,
    pub tick: Duration,
    pub ebpf: EbpfOptions,
    /// Quiet time after which a flow's kernel entry is removed (its bytes are kept).
    pub evict_idle: Duration,
    /// Export per-flow rate series for this many top flows per interface (0: none).
    pub flow_series: usize,
    /// Export per-process rate series for this many top processes per interface (0: none).
    pub process_series: usize,
}

impl AgentOptions {
    /// The flags, checked and typed. Each refusal names its flag and the range it takes.
    pub fn new(f: &AgentFlags) -> Result<Self, RequestError> {
        let out_of_range = |arg, got: f64, range: &str, why| RequestError::OutOfRange {
            arg,
            got: got.to_string(),
            range: range.to_string(),
            why,
        };
        if !(0.02..=60.0).contains(&f.tick_seconds) {
            return Err(out_of_range(
                "--tick",
                f.tick_seconds,
                "0.02 to 60 seconds",
                "",
            ));
        }
        if !(1.0..=3600.0).contains(&f.evict_idle_seconds) {
            return Err(out_of_range(
                "--evict-idle",
                f.evict_idle_seconds,
                "1 to 3600 seconds",
                "",
            ));
        }
        for (arg, n) in [
            ("--flow-series", f.flow_series),
            ("--process-series", f.process_series),
        ] {
            if n > MAX_FLOW_SERIES {
                return Err(out_of_range(
                    arg,
                    n as f64,
                    &format!("0 to {MAX_FLOW_SERIES}"),
                    ": more per interface would make Prometheus's series count unbounded",
                ));
            }
        }
        Ok(Self {
            ifaces: f
                .ifaces
                .iter()
                .map(|n| IfaceName::parse(n, ArgNames::CLI.iface))
                .collect::<Result<Vec<_>, _>>()?,
            active_only: f.active_only,
            tick: Duration::from_secs_f64(f.tick_seconds),
            ebpf: EbpfOptions::new(f.table_capacity)?,
            evict_idle: Duration::from_secs_f64(f.evict_idle_seconds),
            flow_series: f.flow_series,
            process_series: f.process_series,
        })
    }
}

/// The instant (the readings' clock) before which a flow whose counters have not moved since
/// leaves the kernel table, and why: after `idle` normally, after two ticks once a table is
/// three-quarters full, so a busy host keeps room for new flows instead of overflowing. Pure.
pub fn evict_before(
    now_ns: u64,
    idle: Duration,
    tick: Duration,
    entries: usize,
    capacity: u32,
) -> (u64, EvictReason) {
    if entries * 4 >= capacity as usize * PRESSURE_QUARTERS {
        let quiet = (tick * PRESSURE_TICKS).as_nanos() as u64;
        (now_ns.saturating_sub(quiet), EvictReason::Pressure)
    } else {
        let quiet = idle.as_nanos() as u64;
        (now_ns.saturating_sub(quiet), EvictReason::Idle)
    }
}

/// Longest a collector sleep goes without looking at the shutdown token.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Sleeps until `deadline` on this (blocking) thread; false when `stop` came first. Plain
/// thread sleeps: the runtime's timer, reached from outside its workers, woke the collector tens
/// of milliseconds late at a 50 ms tick.
fn sleep_until(deadline: Instant, stop: &CancellationToken) -> bool {
    loop {
        if stop.is_cancelled() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
}

/// The span the per-flow series rank by and report, in seconds (iftop's middle column).
pub const FLOW_SERIES_SPAN: u64 = 10;

/// The `k` flows with the highest average (both directions), highest first. Pure.
pub fn top_flows(averages: Vec<(FlowId, Rate)>, k: usize) -> Vec<(FlowId, Rate)> {
    let mut v: Vec<(FlowId, Rate)> = averages
        .into_iter()
        .filter(|(_, r)| r.total() > 0.0)
        .collect();
    v.sort_by(|a, b| b.1.total().total_cmp(&a.1.total()).then(a.0.cmp(&b.0)));
    v.truncate(k);
    v
}

/// Which of `all` the agent should watch. Pure.
pub fn select<'a>(all: &'a [InterfaceInfo], names: &[IfaceName]) -> Vec<&'a InterfaceInfo> {
    all.iter()
        .filter(|i| {
            if names.is_empty() {
                i.up && i.kind != InterfaceKind::Loopback
            } else {
                names.iter().any(|n| n.as_str() == i.name)
            }
        })
        .collect()
}

/// What the agent shows of one watched interface: read by /health, /metrics and /mcp.
struct Watched {
    info: InterfaceInfo,
    history: History,
    collections: u64,
    /// What the flow tables said of the sockets of the flows in `history`.
    sockets: SocketTable,
    /// Whose each flow in `history` is (or why it has no owner): for the per-process series
    /// and `netmon top`'s process and container screens.
    owners: HashMap<FlowId, FlowOwner>,
}

/// One tick's flows with their sockets, and their owners when attribution is on.
struct TickOwners {
    sockets: Vec<(FlowId, FlowSockets)>,
    owned: Option<Owned>,
}

/// What only the collector thread touches of one watched interface: the attachment and the
/// last reading to diff against.
struct Collecting {
    name: String,
    attachment: Attachment,
    tracked: Tracked,
}

/// The agent's state, shared by the collection loop and the HTTP handlers. The collector reads
/// the kernel without holding any of these locks, and holds `watched` only to add a tick.
pub struct Agent {
    source: EbpfSource,
    opts: AgentOptions,
    watched: RwLock<BTreeMap<u32, Watched>>,
    /// What `/health` shows of each watched interface, made at the end of each tick: `/health`
    /// reads this alone, so it never waits for a tick being added to a history.
    summaries: Mutex<BTreeMap<u32, WatchedHealth>>,
    pub metrics: Metrics,
    last_collection_unix: Mutex<Option<f64>>,
    /// Flow-table entries after the last round, for the eviction policy and /health.
    entries_v4: AtomicUsize,
    entries_v6: AtomicUsize,
    /// Slots of removed flows in quarantine: they count against the capacity like live flows.
    slots_waiting: AtomicUsize,
    evicted: AtomicU64,
}

/// What the agent has recorded of one interface, for answering a request from history.
pub enum Recorded {
    /// Not watched: the agent never attached to it (or it vanished).
    NotWatched,
    /// Watched for `watched_ns`; `sample` covers the newest ticks spanning at least the asked
    /// window (or all of them, when less was watched), and ended `age_ns` ago.
    Watched {
        watched_ns: u64,
        age_ns: u64,
        sample: Option<Box<Sample>>,
    },
}

/// `/health`: is the agent up, what is it attached to, and how full is the flow table.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Health {
    pub up: bool,
    pub interfaces: Vec<WatchedHealth>,
    /// Program ids of netmon's classifiers, as `bpftool prog show id N` knows them.
    pub ingress_program_id: Option<u32>,
    pub egress_program_id: Option<u32>,
    pub last_collection_unix: Option<f64>,
    /// Entries in the fuller of the two flow tables (IPv4, IPv6): the one pressure acts on.
    pub flow_table_entries: usize,
    pub flow_table_entries_ipv4: usize,
    pub flow_table_entries_ipv6: usize,
    /// Capacity of each flow table.
    pub flow_table_capacity: u32,
    /// Idle entries removed from the kernel table since start (their bytes were kept).
    pub flow_table_evictions: u64,
    /// Whether `/mcp` is served on this port.
    pub mcp: bool,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct WatchedHealth {
    pub name: String,
    pub ifindex: u32,
    pub collections: u64,
    pub watched_seconds: f64,
    pub flows_last_40s: usize,
    /// iftop's totals lines: IP bytes per second over the last 2, 10 and 40 s, the peak tick in
    /// the last 40 s, and IP bytes since watching began.
    pub rolling: RollingView,
}

/// One direction's rate, IP bytes per second.
#[derive(Clone, Copy, Debug, Serialize, JsonSchema)]
pub struct RateView {
    pub rx_bytes_per_second: f64,
    pub tx_bytes_per_second: f64,
}

impl From<Rate> for RateView {
    fn from(r: Rate) -> Self {
        Self {
            rx_bytes_per_second: r.rx,
            tx_bytes_per_second: r.tx,
        }
    }
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RollingView {
    pub last_2s: RateView,
    pub last_10s: RateView,
    pub last_40s: RateView,
    pub peak_40s: RateView,
    pub cumulative_rx_bytes: u64,
    pub cumulative_tx_bytes: u64,
}

impl From<&Rolling> for RollingView {
    fn from(r: &Rolling) -> Self {
        Self {
            last_2s: r.averages[0].into(),
            last_10s: r.averages[1].into(),
            last_40s: r.averages[2].into(),
            peak_40s: r.peak.into(),
            cumulative_rx_bytes: r.cumulative.rx_bytes,
            cumulative_tx_bytes: r.cumulative.tx_bytes,
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Agent {
    /// Loads the classifier; nothing is attached until the first collection.
    pub fn new(opts: AgentOptions) -> Result<Arc<Self>, BpfError> {
        let source = EbpfSource::load(opts.ebpf)?;
        Ok(Arc::new(Self {
            metrics: Metrics::new(opts.ebpf.flow_capacity),
            source,
            opts,
            watched: RwLock::new(BTreeMap::new()),
            summaries: Mutex::new(BTreeMap::new()),
            last_collection_unix: Mutex::new(None),
            entries_v4: AtomicUsize::new(0),
            entries_v6: AtomicUsize::new(0),
            slots_waiting: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
        }))
    }

    fn fill(&self) -> TableFill {
        TableFill {
            v4: self.entries_v4.load(Ordering::Relaxed),
            v6: self.entries_v6.load(Ordering::Relaxed),
        }
    }

    fn summaries(&self) -> MutexGuard<'_, BTreeMap<u32, WatchedHealth>> {
        self.summaries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Readers: `/mcp`'s history, `netmon top`, and the collector's ranking.
    fn watched(&self) -> RwLockReadGuard<'_, BTreeMap<u32, Watched>> {
        self.watched.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The collector adding a tick or an interface: held briefly.
    fn watched_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<u32, Watched>> {
        self.watched.write().unwrap_or_else(|p| p.into_inner())
    }

    /// One round: attach to new interfaces, drop vanished ones, read the kernel's tables once
    /// for every watched interface, and add each one's traffic since the last round to its
    /// history and to the metrics.
    fn collect(&self, collecting: &mut BTreeMap<u32, Collecting>) -> Result<(), Error> {
        let all = host::list()?;
        let wanted = select(&all, &self.opts.ifaces);
        // Same index and name, or it is another interface now.
        let gone: Vec<u32> = collecting
            .iter()
            .filter(|(idx, c)| !wanted.iter().any(|i| i.index == **idx && i.name == c.name))
            .map(|(idx, _)| *idx)
            .collect();
        for idx in gone {
            if let Some(c) = collecting.remove(&idx) {
                log::info!("{} (ifindex {idx}) is gone or no longer wanted", c.name);
                c.attachment.detach();
            }
            self.summaries().remove(&idx);
            if let Some(w) = self.watched_mut().remove(&idx) {
                self.metrics.forget(&w.info);
            }
        }
        for info in wanted {
            if collecting.contains_key(&info.index) {
                continue;
            }
            match self.source.attach(info) {
                Ok(attachment) => {
                    let first = self.source.snapshot(info.index);
                    collecting.insert(
                        info.index,
                        Collecting {
                            name: info.name.clone(),
                            attachment,
                            tracked: Tracked::start(first),
                        },
                    );
                    self.watched_mut().insert(
                        info.index,
                        Watched {
                            info: info.clone(),
                            history: History::default(),
                            collections: 0,
                            sockets: SocketTable::default(),
                            owners: HashMap::new(),
                        },
                    );
                }
                Err(e) => log::warn!("not watching {}: {e}", info.name),
            }
        }

        let ifindexes: Vec<u32> = collecting.keys().copied().collect();
        let mut reading = self.source.read(&ifindexes);
        let (idle_before, reason) = evict_before(
            monotonic_ns(),
            self.opts.evict_idle,
            self.opts.tick,
            // Pressure is on the slots: live flows and those waiting to be given back.
            self.fill().fullest() + self.slots_waiting.load(Ordering::Relaxed),
            self.opts.ebpf.flow_capacity,
        );
        let mut fill = reading.fill;
        for (&ifindex, c) in collecting.iter_mut() {
            let mut t = tick::tick(&c.tracked, reading.take(ifindex), idle_before);
            // Every tick, idle flows or not: it also gives back the slots whose quarantine
            // ended.
            self.source.evict(ifindex, &mut t);
            if t.evicted > 0 {
                self.metrics.evicted(reason, t.evicted);
                self.evicted.fetch_add(t.evicted as u64, Ordering::Relaxed);
            }
            // Evicted entries left the tables after the reading counted them.
            fill.v6 = fill.v6.saturating_sub(t.evicted_v6);
            fill.v4 = fill.v4.saturating_sub(t.evicted - t.evicted_v6);
            let (tracked, sample) = t.finish();
            c.tracked = tracked;
            // Owners are named outside the `watched` lock: /proc and netlink.
            let sockets: Vec<(FlowId, FlowSockets)> = sample
                .flows
                .iter()
                .map(|(id, _)| {
                    (
                        *id,
                        c.tracked
                            .snapshot
                            .sockets
                            .get(id)
                            .copied()
                            .unwrap_or_default(),
                    )
                })
                .collect();
            let owned = self.source.owners_of(&sockets).ok();
            self.record(
                ifindex,
                &all,
                c.tracked.snapshot.taken_ns,
                sample,
                TickOwners { sockets, owned },
            );
        }
        self.entries_v4.store(fill.v4, Ordering::Relaxed);
        self.entries_v6.store(fill.v6, Ordering::Relaxed);
        self.slots_waiting
            .store(self.source.slots_waiting(), Ordering::Relaxed);
        let unix = unix_now();
        self.metrics.collected(unix, fill);
        *self
            .last_collection_unix
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(unix);
        Ok(())
    }

    /// Adds one tick of `ifindex` to its history and to the metrics. The write lock is held
    /// only to add the tick (`/health` waits for nothing longer); ranking flows and grouping
    /// them by process happen under the read lock, beside readers.
    fn record(
        &self,
        ifindex: u32,
        all: &[InterfaceInfo],
        end_ns: u64,
        sample: Sample,
        owners: TickOwners,
    ) {
        // Bytes per container in this tick, and each flow's owner: from the owners, with no
        // lock held.
        let mut by_container: HashMap<String, (Container, u64, u64)> = HashMap::new();
        let mut flow_owners: Vec<(FlowId, FlowOwner)> = Vec::with_capacity(sample.flows.len());
        match &owners.owned {
            None => flow_owners.extend(
                sample
                    .flows
                    .iter()
                    .map(|(id, _)| (*id, FlowOwner::Unattributed(Unattributed::Off))),
            ),
            Some(owned) => {
                let shared: Vec<Arc<Owner>> = owned.owners.iter().cloned().map(Arc::new).collect();
                for (id, counters) in &sample.flows {
                    let r = owned.refs.get(id).copied().unwrap_or_default();
                    let Some(o) = r.owner.and_then(|i| shared.get(i as usize)) else {
                        let why = r.reason.unwrap_or(Unattributed::NoSocket);
                        flow_owners.push((*id, FlowOwner::Unattributed(why)));
                        continue;
                    };
                    flow_owners.push((*id, FlowOwner::Owned(o.clone())));
                    if let Some(c) = &o.container {
                        let e = by_container
                            .entry(c.id.clone())
                            .or_insert_with(|| (c.clone(), 0, 0));
                        e.1 += counters.rx_bytes;
                        e.2 += counters.tx_bytes;
                    }
                }
            }
        }
        let up = all.iter().find(|i| i.index == ifindex).map(|i| i.up);
        let (info, active) = {
            let mut watched = self.watched_mut();
            let Some(w) = watched.get_mut(&ifindex) else {
                return;
            };
            if let Some(up) = up {
                w.info.up = up;
            }
            w.owners.extend(flow_owners);
            for (id, s) in owners.sockets {
                if s != FlowSockets::default() {
                    w.sockets.insert(id, s);
                }
            }
            w.history.push(end_ns, sample);
            // Forget what history forgot, as it does, every tick: a slack that lets these maps
            // run ahead of the history makes their size (and a resize) follow the churn of
            // flows, not their number, and memory then climbs in steps under endless new flows.
            let h = &w.history;
            if w.sockets.len() > h.flow_count() {
                w.sockets.retain(|id, _| h.knows(id));
            }
            if w.owners.len() > h.flow_count() {
                w.owners.retain(|id, _| h.knows(id));
            }
            w.collections += 1;
            let rolling = w.history.interface();
            let health = WatchedHealth {
                name: w.info.name.clone(),
                ifindex: w.info.index,
                collections: w.collections,
                watched_seconds: w.history.watched_ns as f64 / 1e9,
                flows_last_40s: w.history.flow_count(),
                rolling: (&rolling).into(),
            };
            self.summaries().insert(ifindex, health);
            (w.info.clone(), rolling.averages[2].total() > 0.0)
        };
        if !active && self.opts.active_only {
            self.metrics.forget(&info);
            return;
        }
        let watched = self.watched();
        let Some(w) = watched.get(&ifindex) else {
            return;
        };
        let Some(latest) = w.history.latest() else {
            return;
        };
        self.metrics.record(&info, latest, active);
        self.metrics.record_rolling(&info, &w.history.interface());
        if self.opts.flow_series > 0 {
            let top = top_flows(w.history.averages(FLOW_SERIES_SPAN), self.opts.flow_series);
            self.metrics.set_flows(&info.name, &top);
        }
        let containers: Vec<(Container, u64, u64)> = by_container.into_values().collect();
        if let [(c, ..)] = &containers[..]
            && info.kind == InterfaceKind::Veth
        {
            self.metrics.set_interface_container(&info.name, c);
        }
        self.metrics.record_containers(&info.name, &containers);
        if self.opts.process_series > 0 {
            let owners = &w.owners;
            let rows = w.history.rolling_by(|id| match owners.get(id)? {
                FlowOwner::Owned(o) => {
                    let p = o.process.as_ref()?;
                    Some(((p.pid, p.comm.clone()), Halves::ALL))
                }
                FlowOwner::Unattributed(_) => None,
            });
            let mut top: Vec<(u32, String, Rate)> = rows
                .into_iter()
                .map(|((pid, comm), r)| (pid, comm, r.averages[1]))
                .filter(|(_, _, r)| r.total() > 0.0)
                .collect();
            top.sort_by(|a, b| b.2.total().total_cmp(&a.2.total()).then(a.0.cmp(&b.0)));
            top.truncate(self.opts.process_series);
            self.metrics.set_processes(&info.name, &top);
        }
    }

    /// Collects every tick until `shutdown`; then detaches everything.
    ///
    /// One thread does every collection. A blocking task per tick would land on whichever pool
    /// thread is free, and glibc gives threads their own malloc arenas, so each of them would
    /// keep a tick's working set (the snapshot, the top-K merge) for good: memory that rose in
    /// steps for minutes in the soak test. Shutdown is seen within [`STOP_CHECK`].
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let me = self.clone();
        let stop = shutdown.clone();
        let collector = tokio::task::spawn_blocking(move || {
            let mut collecting = BTreeMap::new();
            let mut next = Instant::now();
            while sleep_until(next, &stop) {
                if let Err(e) = me.collect(&mut collecting) {
                    log::warn!("collection failed: {e}");
                }
                // A late tick is not made up for: the next one is a whole tick later.
                let now = Instant::now();
                next += me.opts.tick;
                if next < now {
                    next = now + me.opts.tick;
                }
            }
            for (_, c) in collecting {
                c.attachment.detach();
            }
        });
        if let Err(e) = collector.await {
            log::warn!("the collector stopped: {e}");
        }
        self.watched_mut().clear();
        self.summaries().clear();
        log::info!("agent stopped; everything detached");
    }

    /// What the flow tables said of the sockets of `ifindex`'s recent flows, for naming their
    /// owners.
    pub fn sockets(&self, ifindex: u32) -> SocketTable {
        self.watched()
            .get(&ifindex)
            .map(|w| w.sockets.clone())
            .unwrap_or_default()
    }

    /// `f` on the history of watched interface `ifindex`; `None` before the first collection
    /// attached it. `netmon top` draws from this, so its numbers are the agent's.
    pub fn with_history<R>(&self, ifindex: u32, f: impl FnOnce(&History) -> R) -> Option<R> {
        self.watched().get(&ifindex).map(|w| f(&w.history))
    }

    /// `f` on the history of `ifindex` and whose each of its flows is.
    pub fn with_owned_history<R>(
        &self,
        ifindex: u32,
        f: impl FnOnce(&History, &HashMap<FlowId, FlowOwner>) -> R,
    ) -> Option<R> {
        self.watched()
            .get(&ifindex)
            .map(|w| f(&w.history, &w.owners))
    }

    /// Entries in the IPv4 and IPv6 flow tables at the last collection, and each table's
    /// capacity.
    pub fn table_fill(&self) -> (usize, usize, u32) {
        let f = self.fill();
        (f.v4, f.v6, self.opts.ebpf.flow_capacity)
    }

    pub fn health(&self) -> Health {
        let (ingress_program_id, egress_program_id) = self.source.program_ids();
        let fill = self.fill();
        let watched = self.summaries();
        Health {
            up: true,
            interfaces: watched.values().cloned().collect(),
            ingress_program_id,
            egress_program_id,
            last_collection_unix: *self
                .last_collection_unix
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            flow_table_entries: fill.fullest(),
            flow_table_entries_ipv4: fill.v4,
            flow_table_entries_ipv6: fill.v6,
            flow_table_capacity: self.opts.ebpf.flow_capacity,
            flow_table_evictions: self.evicted.load(Ordering::Relaxed),
            mcp: false,
        }
    }

    pub fn ebpf_options(&self) -> EbpfOptions {
        self.opts.ebpf
    }

    pub fn tick(&self) -> Duration {
        self.opts.tick
    }

    /// What the agent recorded of `ifindex` over (at least) the last `window_ns`.
    pub fn recorded(&self, ifindex: u32, window_ns: u64) -> Recorded {
        let watched = self.watched();
        let Some(w) = watched.get(&ifindex) else {
            return Recorded::NotWatched;
        };
        let now = crate::source::ebpf::monotonic_ns();
        // Ticks are read about, not exactly, a tick apart: five 1 s ticks may sum to 4.999 s,
        // which answers a 5 s request better than waiting another tick would.
        let want = window_ns.saturating_sub(self.opts.tick.as_nanos() as u64 / 10);
        Recorded::Watched {
            watched_ns: w.history.watched_ns,
            age_ns: w
                .history
                .newest_end_ns()
                .map_or(0, |end| now.saturating_sub(end)),
            sample: (w.history.watched_ns >= want)
                .then(|| w.history.last(want))
                .flatten()
                .map(Box::new),
        }
    }

    /// The loaded classifier, for sampling interfaces the agent does not watch.
    pub fn source(&self) -> &EbpfSource {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, index: u32, up: bool, kind: InterfaceKind) -> InterfaceInfo {
        InterfaceInfo {
            name: name.into(),
            index,
            up,
            operstate: if up { "up" } else { "down" }.into(),
            mac: None,
            mtu: 1500,
            kind,
            addresses: vec![],
        }
    }

    #[test]
    fn default_is_every_up_interface_but_loopback_and_names_pick_exactly() {
        let all = vec![
            info("lo", 1, true, InterfaceKind::Loopback),
            info("eth0", 2, true, InterfaceKind::Ethernet),
            info("eth1", 3, false, InterfaceKind::Ethernet),
            info("wg0", 4, true, InterfaceKind::Tunnel),
        ];
        let names = |v: Vec<&InterfaceInfo>| v.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(select(&all, &[])), ["eth0", "wg0"]);
        let pick = [
            IfaceName::parse("eth1", "-i").unwrap(),
            IfaceName::parse("lo", "-i").unwrap(),
        ];
        assert_eq!(names(select(&all, &pick)), ["lo", "eth1"]);
        let missing = [IfaceName::parse("eth9", "-i").unwrap()];
        assert!(select(&all, &missing).is_empty());
    }

    #[test]
    fn idle_flows_go_after_evict_idle_and_after_two_ticks_under_pressure() {
        let s = 1_000_000_000u64;
        let (idle, tick) = (Duration::from_secs(60), Duration::from_millis(500));
        let now = 1_000 * s;
        assert_eq!(
            evict_before(now, idle, tick, 100, 1024),
            (now - 60 * s, EvictReason::Idle)
        );
        // Three-quarters full: 768 of 1024.
        assert_eq!(
            evict_before(now, idle, tick, 767, 1024),
            (now - 60 * s, EvictReason::Idle)
        );
        assert_eq!(
            evict_before(now, idle, tick, 768, 1024),
            (now - s, EvictReason::Pressure)
        );
        // Early after boot the cutoff is 0: nothing is older than that.
        assert_eq!(evict_before(5 * s, idle, tick, 0, 1024).0, 0);
    }

    #[test]
    fn top_flows_rank_by_the_average_and_skip_quiet_ones() {
        let id = |port: u16| FlowId {
            local: "10.0.0.1".parse().unwrap(),
            remote: "10.0.0.2".parse().unwrap(),
            local_port: port,
            remote_port: 80,
            protocol: 6,
        };
        let flows = vec![
            (id(1), Rate { rx: 10.0, tx: 1.0 }),
            (id(2), Rate { rx: 50.0, tx: 1.0 }),
            (id(3), Rate { rx: 30.0, tx: 1.0 }),
            (id(4), Rate::default()),
        ];
        let top = top_flows(flows.clone(), 2);
        assert_eq!(
            top.iter().map(|(f, _)| f.local_port).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(top[0].1, Rate { rx: 50.0, tx: 1.0 });
        assert_eq!(top_flows(flows, 10).len(), 3, "a quiet flow is no series");
    }
}
