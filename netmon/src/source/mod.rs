//! The seam between what is measured and where it is measured: a [`TrafficSource`] lists
//! interfaces and samples one over a window. [`ebpf::EbpfSource`] counts in this kernel;
//! [`scripted::ScriptedSource`] replays snapshots for tests. Everything above this seam (diff,
//! ranking, the result object, the text view) is the same whatever the source.

pub mod ebpf;
pub mod scripted;
pub mod ssh;

use crate::error::{Error, Result};
use crate::iface::{self, InterfaceInfo};
use crate::iftop;
use crate::report::{SourceKind, TrafficData, View};
use crate::request::TrafficRequest;
use crate::snapshot::Sample;
use std::future::Future;
use std::time::Duration;

/// Progress of one sample, for callers that report it (CLI, MCP progress notifications).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Progress {
    /// Attached and counting; the window starts now.
    Started { window: Duration },
    /// Part of the window has passed.
    Elapsed { elapsed: Duration, window: Duration },
}

/// What a source measured over a window.
#[derive(Clone, Debug)]
pub enum Measured {
    /// Per-flow counters (the eBPF and scripted sources).
    Flows(Sample),
    /// Per-flow counters from an always-on agent's history; `note` says which window they
    /// cover and whether the call waited for any of it.
    Recorded { sample: Sample, note: String },
    /// iftop's last table, over `window_ns`. `note` says what the caller should know about it,
    /// e.g. that iftop printed no table because no packet arrived after the window.
    Iftop {
        table: iftop::Table,
        window_ns: u64,
        note: Option<String>,
    },
}

/// Where a source reports [`Progress`]; `&|_| {}` when nobody listens.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

pub trait TrafficSource: Send + Sync {
    /// The host this source measures, as reported in `data.host`.
    fn host(&self) -> &str;

    fn kind(&self) -> SourceKind;

    fn interfaces(&self) -> impl Future<Output = Result<Vec<InterfaceInfo>>> + Send;

    /// Traffic on `iface` over `window`. `iface` has been checked against [`Self::interfaces`].
    /// Dropping the future stops the sample and releases what it holds.
    fn sample(
        &self,
        iface: &InterfaceInfo,
        window: Duration,
        progress: ProgressFn<'_>,
    ) -> impl Future<Output = Result<Measured>> + Send;
}

/// Resolves the requested interface on the source's host: the named one, or the default route's.
pub fn resolve_iface(
    req: &TrafficRequest,
    list: &[InterfaceInfo],
    host: &str,
    default: Option<String>,
) -> Result<InterfaceInfo> {
    let name = match &req.iface {
        Some(n) => n.as_str().to_string(),
        None => default.ok_or_else(|| Error::NoDefaultInterface {
            available: iface::names(list),
        })?,
    };
    list.iter()
        .find(|i| i.name == name)
        .cloned()
        .ok_or_else(|| Error::UnknownInterface {
            name,
            host: host.to_string(),
            available: iface::names(list),
        })
}

/// Validates the interface, samples it and builds the result data.
pub async fn collect<S: TrafficSource>(
    source: &S,
    req: &TrafficRequest,
    default_iface: Option<String>,
    progress: ProgressFn<'_>,
) -> Result<TrafficData> {
    let list = source.interfaces().await?;
    let iface = resolve_iface(req, &list, source.host(), default_iface)?;
    let measured = source
        .sample(&iface, req.window.duration(), progress)
        .await?;
    let view = View {
        sort: req.sort,
        by: req.by,
        top: req.top,
    };
    Ok(match measured {
        Measured::Flows(sample) => {
            TrafficData::from_sample(source.host(), source.kind(), &iface.name, &sample, view)
        }
        Measured::Recorded { sample, note } => {
            let mut d =
                TrafficData::from_sample(source.host(), source.kind(), &iface.name, &sample, view);
            d.notes.push(note);
            d
        }
        Measured::Iftop {
            table,
            window_ns,
            note,
        } => {
            let mut d = TrafficData::from_iftop(
                source.host(),
                &iface.name,
                &table,
                window_ns,
                view,
                &iface.addresses,
            );
            d.notes.extend(note);
            d
        }
    })
}
