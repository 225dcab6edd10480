//! The agent as a [`TrafficSource`] for its own `/mcp`: a watched interface is answered from the
//! history the agent keeps anyway, at once when it has watched for the whole window, otherwise
//! after only the rest of it. Interfaces the agent does not watch get an ordinary sample from
//! the agent's loaded classifier.

use super::{Agent, Recorded};
use crate::error::{AgentError, Result};
use crate::host;
use crate::interface::InterfaceInfo;
use crate::measurement::Measurement;
use crate::report::{SourceKind, View};
use crate::source::{BoxFuture, Progress, ProgressFn, TrafficSource};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Ticks the agent may miss before a waiting call gives up on it.
const STALL_TICKS: u32 = 5;

#[derive(Clone)]
pub struct AgentSource {
    agent: Arc<Agent>,
    host: String,
}

impl AgentSource {
    pub fn new(agent: Arc<Agent>) -> Self {
        Self {
            agent,
            host: "localhost".into(),
        }
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

impl TrafficSource for AgentSource {
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
        Box::pin(self.answer(iface, window, progress))
    }
}

impl AgentSource {
    async fn answer(
        &self,
        iface: &InterfaceInfo,
        window: Duration,
        progress: ProgressFn<'_>,
    ) -> Result<Measurement> {
        let window_ns = window.as_nanos() as u64;
        let tick = self.agent.tick();
        let start = Instant::now();
        // Whatever was already watched counts; the bound is the rest of the window plus a few
        // ticks the agent may be late by.
        let mut waited_from: Option<u64> = None;
        progress(Progress::Started { window });
        loop {
            // Merging up to 40 s of ticks is CPU work: off the runtime's threads.
            let (agent, ifindex) = (self.agent.clone(), iface.index);
            let recorded = tokio::task::spawn_blocking(move || agent.recorded(ifindex, window_ns))
                .await
                .map_err(|e| AgentError::Stalled {
                    iface: iface.name.clone(),
                    reason: format!("reading the history failed: {e}"),
                })?;
            match recorded {
                Recorded::NotWatched if waited_from.is_none() => {
                    let w = self
                        .agent
                        .source()
                        .sample_window(iface, window, progress)
                        .await?;
                    let m = w.measurement(&iface.name, window).with_note(format!(
                        "the agent does not watch {}, so it was attached for this call and sampled for {:.1} s",
                        iface.name,
                        window.as_secs_f64()
                    ));
                    return Ok(self.agent.source().attributed(m, w.sockets).await?);
                }
                Recorded::NotWatched => {
                    return Err(AgentError::Stalled {
                        iface: iface.name.clone(),
                        reason: "the interface stopped being watched (it vanished?)".into(),
                    }
                    .into());
                }
                Recorded::Watched {
                    watched_ns,
                    age_ns,
                    sample: Some(sample),
                } => {
                    let covered = secs(sample.window_ns);
                    let note = match waited_from {
                        None => format!(
                            "answered at once from the agent's history: the last {covered:.1} s of traffic on {} (of {:.1} s watched), ending {:.2} s ago; ticks are {:.1} s",
                            iface.name,
                            secs(watched_ns),
                            secs(age_ns),
                            tick.as_secs_f64()
                        ),
                        Some(had) => format!(
                            "from the agent's history: the agent had watched {} for {:.1} s when asked, so the call waited {:.1} s for the rest; the figures cover the last {covered:.1} s, ending {:.2} s ago",
                            iface.name,
                            secs(had),
                            start.elapsed().as_secs_f64(),
                            secs(age_ns)
                        ),
                    };
                    let m = Measurement::from_sample(&sample).with_note(note);
                    let sockets = self.agent.sockets(iface.index);
                    return Ok(self.agent.source().attributed(m, sockets).await?);
                }
                Recorded::Watched {
                    watched_ns,
                    sample: None,
                    ..
                } => {
                    let had = *waited_from.get_or_insert(watched_ns);
                    let rest = Duration::from_nanos(window_ns.saturating_sub(had));
                    if start.elapsed() > rest + tick * STALL_TICKS {
                        return Err(AgentError::Stalled {
                            iface: iface.name.clone(),
                            reason: format!(
                                "no collection for {STALL_TICKS} ticks; see the agent's log"
                            ),
                        }
                        .into());
                    }
                    progress(Progress::Elapsed {
                        elapsed: Duration::from_nanos(watched_ns).min(window),
                        window,
                    });
                    tokio::time::sleep(tick.min(Duration::from_millis(250))).await;
                }
            }
        }
    }
}
