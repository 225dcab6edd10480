//! The seam between what is measured and where it is measured. Every way netmon measures is a
//! [`TrafficSource`]: it lists a host's interfaces and samples one over a window, and gives back
//! one neutral [`Measurement`]. Everything above this seam (ranking, the result object, the text
//! view, MCP) is the same whatever the source.
//!
//! - [`ebpf`]: netmon's classifier in this kernel.
//! - [`ssh`]: a host without netmon, through the real `iftop -t` run over SSH.
//! - [`agent`]: a host with `netmon agent`, asked through its `/mcp`.
//! - [`scripted`]: replayed snapshots, for tests of everything above.
//! - [`route`]: which of them a request goes to, by the config file's reach policy.

pub mod agent;
pub mod ebpf;
pub mod route;
pub mod scripted;
pub mod ssh;

use crate::error::{RequestError, Result};
use crate::interface::{self, InterfaceInfo};
use crate::measurement::Measurement;
use crate::names::Namer;
use crate::rank::GroupBy;
use crate::report::{SourceKind, TrafficData, View};
use crate::request::TrafficRequest;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Progress of one sample, for callers that report it (CLI, MCP progress notifications).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Progress {
    /// Attached and counting; the window starts now.
    Started { window: Duration },
    /// Part of the window has passed.
    Elapsed { elapsed: Duration, window: Duration },
}

/// Where a source reports [`Progress`]; `&|_| {}` when nobody listens.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// A future a source returns; boxed, so sources can be chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait TrafficSource: Send + Sync {
    /// The host this source measures, as reported in `data.host`.
    fn host(&self) -> &str;

    fn kind(&self) -> SourceKind;

    fn interfaces(&self) -> BoxFuture<'_, Result<Vec<InterfaceInfo>>>;

    /// Traffic on `iface` over `window`. `iface` has been checked against [`Self::interfaces`].
    /// `view` is what the caller will keep of the rows: a source that ranks remotely asks for
    /// it, the others ignore it. Dropping the future stops the sample and releases what it
    /// holds.
    fn sample<'a>(
        &'a self,
        iface: &'a InterfaceInfo,
        window: Duration,
        view: &'a View,
        progress: ProgressFn<'a>,
    ) -> BoxFuture<'a, Result<Measurement>>;
}

/// Resolves the requested interface on the source's host: the named one, or the default route's.
pub fn resolve_iface(
    req: &TrafficRequest,
    list: &[InterfaceInfo],
    host: &str,
    default: Option<String>,
) -> Result<InterfaceInfo, RequestError> {
    let name = match &req.iface {
        Some(n) => n.as_str().to_string(),
        None => default.ok_or_else(|| RequestError::NoDefaultInterface {
            arg: req.names.iface,
            available: interface::names(list),
        })?,
    };
    list.iter()
        .find(|i| i.name == name)
        .cloned()
        .ok_or_else(|| RequestError::UnknownInterface {
            name,
            host: host.to_string(),
            available: interface::names(list),
            list: req.names.list,
        })
}

/// Validates the interface, samples it, builds the result data (narrowed to the request's
/// selection) and names its hosts and ports as the request asks, waiting at most
/// [`crate::names::BUDGET`] for names.
pub async fn collect(
    source: &dyn TrafficSource,
    req: &TrafficRequest,
    default_iface: Option<String>,
    progress: ProgressFn<'_>,
    namer: &Namer,
) -> Result<TrafficData> {
    if matches!(req.by, GroupBy::Process | GroupBy::Container)
        && source.kind() == SourceKind::SshIftop
    {
        return Err(RequestError::NoOwners {
            arg: req.names.by,
            host: source.host().to_string(),
        }
        .into());
    }
    let list = source.interfaces().await?;
    let iface = resolve_iface(req, &list, source.host(), default_iface)?;
    let view = View {
        sort: req.sort,
        by: req.by,
        top: req.top,
        selection: req.selection.clone(),
    };
    let m = source
        .sample(&iface, req.window.duration(), &view, progress)
        .await?;
    let owner = (iface.kind == crate::interface::InterfaceKind::Veth)
        .then(|| crate::report::sole_container(&m))
        .flatten();
    let mut data = TrafficData::new(source.host(), source.kind(), &iface.name, m, &view);
    data.interface_owner = owner;
    namer.label(&mut data, req.naming).await;
    Ok(data)
}
