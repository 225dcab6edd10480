//! `netmon agent`: always attached, collecting every tick. Each watched interface keeps its
//! [`History`] (iftop's rolling views) and feeds the Prometheus [`Metrics`]; [`http`] serves them.
//!
//! Interfaces are re-listed every tick, so ones that appear are attached and ones that vanish are
//! dropped (with their series) while the agent runs.

pub mod http;

use crate::error::Result;
use crate::iface::{self, InterfaceInfo, InterfaceKind};
use crate::metrics::Metrics;
use crate::request::IfaceName;
use crate::snapshot::{Snapshot, diff};
use crate::source::ebpf::{Attachment, EbpfOptions, EbpfSource};
use crate::window::History;
use netmon_common::Direction;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// The tick: how often the kernel's counters are read.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Interfaces to watch; empty: every interface that is up, loopback excepted.
    pub ifaces: Vec<IfaceName>,
    /// Export only interfaces that carried traffic in the last 40 s (NetProbe's --active-only).
    pub active_only: bool,
    pub tick: Duration,
    pub ebpf: EbpfOptions,
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

struct Watched {
    info: InterfaceInfo,
    _attachment: Attachment,
    prev: Snapshot,
    history: History,
    collections: u64,
}

/// The agent's state, shared by the collection loop and the HTTP handlers.
pub struct Agent {
    source: EbpfSource,
    opts: AgentOptions,
    watched: Mutex<BTreeMap<u32, Watched>>,
    pub metrics: Metrics,
    last_collection_unix: Mutex<Option<f64>>,
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
    pub flow_table_entries: usize,
    pub flow_table_capacity: u32,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct WatchedHealth {
    pub name: String,
    pub ifindex: u32,
    pub collections: u64,
    pub watched_seconds: f64,
    pub flows_last_40s: usize,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Agent {
    /// Loads the classifier; nothing is attached until the first [`Self::collect`].
    pub fn new(opts: AgentOptions) -> Result<Arc<Self>> {
        let source = EbpfSource::load(opts.ebpf)?;
        Ok(Arc::new(Self {
            metrics: Metrics::new(opts.ebpf.flow_capacity),
            source,
            opts,
            watched: Mutex::new(BTreeMap::new()),
            last_collection_unix: Mutex::new(None),
        }))
    }

    fn watched(&self) -> MutexGuard<'_, BTreeMap<u32, Watched>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One round: attach to new interfaces, drop vanished ones, and add each watched one's
    /// traffic since the last round to its history and to the metrics.
    pub fn collect(&self) -> Result<()> {
        let all = iface::list()?;
        let wanted = select(&all, &self.opts.ifaces);
        let mut watched = self.watched();
        // Same index and name, or it is another interface now.
        let gone: Vec<u32> = watched
            .iter()
            .filter(|(idx, w)| {
                !wanted
                    .iter()
                    .any(|i| i.index == **idx && i.name == w.info.name)
            })
            .map(|(idx, _)| *idx)
            .collect();
        for idx in gone {
            if let Some(w) = watched.remove(&idx) {
                log::info!(
                    "{} (ifindex {idx}) is gone or no longer wanted",
                    w.info.name
                );
                self.metrics.forget(&w.info);
            }
        }
        for info in wanted {
            if watched.contains_key(&info.index) {
                continue;
            }
            match self.source.attach(info) {
                Ok(attachment) => {
                    let prev = self.source.snapshot(info.index);
                    watched.insert(
                        info.index,
                        Watched {
                            info: info.clone(),
                            _attachment: attachment,
                            prev,
                            history: History::default(),
                            collections: 0,
                        },
                    );
                }
                Err(e) => log::warn!("not watching {}: {e}", info.name),
            }
        }
        let mut entries = 0;
        for w in watched.values_mut() {
            let now = self.source.snapshot(w.info.index);
            let sample = diff(&w.prev, &now);
            entries += now.flows.len();
            w.history.push(now.taken_ns, sample);
            w.prev = now;
            w.collections += 1;
            let active = w.history.interface().averages[2].total() > 0.0;
            match w.history.latest() {
                Some(sample) if active || !self.opts.active_only => {
                    self.metrics.record(&w.info, sample, active)
                }
                _ => self.metrics.forget(&w.info),
            }
            if let Some(i) = all.iter().find(|i| i.index == w.info.index) {
                w.info.up = i.up;
            }
        }
        let unix = unix_now();
        self.metrics.collected(unix, entries);
        *self
            .last_collection_unix
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(unix);
        Ok(())
    }

    /// Collects every tick until `shutdown`; then drops every attachment.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.opts.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.collect()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::warn!("collection failed: {e}"),
                Err(e) => log::warn!("collection task failed: {e}"),
            }
        }
        self.watched().clear();
        log::info!("agent stopped; everything detached");
    }

    pub fn health(&self) -> Health {
        let watched = self.watched();
        let id = |d: Direction| {
            self.source
                .with_program(d, |p| p.info().ok().map(|i| i.id()))
                .ok()
                .flatten()
        };
        Health {
            up: true,
            interfaces: watched
                .values()
                .map(|w| WatchedHealth {
                    name: w.info.name.clone(),
                    ifindex: w.info.index,
                    collections: w.collections,
                    watched_seconds: w.history.watched_ns as f64 / 1e9,
                    flows_last_40s: w.history.flow_count(),
                })
                .collect(),
            ingress_program_id: id(Direction::Ingress),
            egress_program_id: id(Direction::Egress),
            last_collection_unix: *self
                .last_collection_unix
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            flow_table_entries: watched.values().map(|w| w.prev.flows.len()).sum(),
            flow_table_capacity: self.opts.ebpf.flow_capacity,
        }
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
            IfaceName::parse("eth1").unwrap(),
            IfaceName::parse("lo").unwrap(),
        ];
        assert_eq!(names(select(&all, &pick)), ["lo", "eth1"]);
        let missing = [IfaceName::parse("eth9").unwrap()];
        assert!(select(&all, &missing).is_empty());
    }
}
