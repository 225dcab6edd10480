//! A host that runs `netmon agent`, asked through the agent's own `/mcp`: an MCP client over
//! Streamable HTTP with the agent's bearer token. The answer has the same shape, and the same
//! window notes, as a local one, with `data.source = "agent"`.

use super::{BoxFuture, Progress, ProgressFn, TrafficSource};
use crate::error::{AgentError, Result};
use crate::flow::FlowCounters;
use crate::interface::InterfaceInfo;
use crate::measurement::{Endpoint, Measurement, Row, Totals};
use crate::owner::{Owner, OwnerRef};
use crate::rank::Ranked;
use crate::report::{InterfacesData, Response, SourceKind, TotalStats, TrafficData, View, tool};
use crate::secret::Token;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{DynamicTransportError, StreamableHttpClientTransport};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Bound on connecting and initialising; a sample adds its window to this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AgentClient {
    /// What `data.host` says: the configured name.
    pub label: String,
    pub url: String,
    pub token: Option<Token>,
    /// The CA an `https://` agent's certificate is checked against (else the system's roots).
    pub ca_file: Option<std::path::PathBuf>,
}

type HttpError = StreamableHttpError<reqwest::Error>;

/// Whether the agent answered 401: rmcp's transport error, found by its type. rmcp wraps it in
/// a `DynamicTransportError` that an initialisation error holds without naming it as its
/// source, so the walk steps into those by type too.
fn refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(HttpError::AuthRequired(_)) = e.downcast_ref::<HttpError>() {
            return true;
        }
        let inner: Option<&DynamicTransportError> = match e.downcast_ref::<ClientInitializeError>()
        {
            Some(ClientInitializeError::TransportError { error, .. }) => Some(error),
            _ => e.downcast_ref::<DynamicTransportError>(),
        };
        cur = match inner {
            Some(d) => Some(d.error.as_ref() as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

impl AgentClient {
    fn unreachable<E: std::error::Error + Send + Sync + 'static>(&self, e: E) -> AgentError {
        if refused(&e) {
            return AgentError::Refused {
                host: self.label.clone(),
                url: self.url.clone(),
            };
        }
        AgentError::Unreachable {
            host: self.label.clone(),
            url: self.url.clone(),
            source: Box::new(e),
        }
    }

    async fn connect(&self) -> Result<RunningService<RoleClient, ()>, AgentError> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url.as_str());
        if let Some(t) = &self.token {
            config = config.auth_header(t.expose());
        }
        let client =
            crate::tls::client(self.ca_file.as_deref()).map_err(|e| AgentError::Unreachable {
                host: self.label.clone(),
                url: self.url.clone(),
                source: Box::new(e),
            })?;
        let transport = StreamableHttpClientTransport::with_client(client, config);
        match tokio::time::timeout(CONNECT_TIMEOUT, ().serve(transport)).await {
            Ok(Ok(service)) => Ok(service),
            Ok(Err(e)) => Err(self.unreachable(e)),
            Err(_) => Err(AgentError::TimedOut {
                host: self.label.clone(),
                what: "opening an MCP session",
                secs: CONNECT_TIMEOUT.as_secs(),
            }),
        }
    }

    /// Calls `tool` with `args` and decodes its `{success, message, data}`.
    async fn call<T: DeserializeOwned>(
        &self,
        tool: &'static str,
        args: JsonObject,
        timeout: Duration,
    ) -> Result<(String, T), AgentError> {
        let service = self.connect().await?;
        let params = CallToolRequestParams::new(tool).with_arguments(args);
        let outcome = tokio::time::timeout(timeout, service.call_tool(params)).await;
        // Ends the session on the agent; a failure here changes nothing for the caller.
        let _ = service.cancel().await;
        let result = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.unreachable(e)),
            Err(_) => {
                return Err(AgentError::TimedOut {
                    host: self.label.clone(),
                    what: tool,
                    secs: timeout.as_secs(),
                });
            }
        };
        let failed = |message: String| AgentError::Failed {
            host: self.label.clone(),
            message,
        };
        let value = result.structured_content.ok_or_else(|| {
            failed(format!(
                "{tool} returned no structured content (is it a netmon agent?)"
            ))
        })?;
        let response: Response<T> = serde_json::from_value(value)
            .map_err(|e| failed(format!("{tool} returned a result netmon cannot read: {e}")))?;
        match (response.success, response.data) {
            (true, Some(data)) => Ok((response.message, data)),
            _ => Err(failed(response.message)),
        }
    }

    async fn list(&self) -> Result<InterfacesData, AgentError> {
        let (_, data) = self
            .call(tool::LIST_INTERFACES, JsonObject::new(), CONNECT_TIMEOUT)
            .await?;
        Ok(data)
    }

    /// The agent's answer (from its history when it watches the interface), as a measurement.
    async fn traffic(
        &self,
        iface: &InterfaceInfo,
        window: Duration,
        view: &View,
        progress: ProgressFn<'_>,
    ) -> Result<Measurement, AgentError> {
        let mut args = JsonObject::new();
        args.insert("iface".into(), iface.name.clone().into());
        args.insert("sample_seconds".into(), window.as_secs_f64().into());
        args.insert("top".into(), view.top.into());
        args.insert(
            "sort".into(),
            serde_json::to_value(view.sort).unwrap_or_default(),
        );
        args.insert(
            "group_by".into(),
            serde_json::to_value(view.by).unwrap_or_default(),
        );
        // The agent narrows its own flows (it alone has the interface's totals); names are
        // added here, like every source's.
        let sel = &view.selection;
        if let Some(f) = &sel.filter {
            args.insert("filter".into(), f.to_pcap().into());
        }
        let nets: Vec<serde_json::Value> = sel
            .net4
            .iter()
            .chain(&sel.net6)
            .map(|n| n.to_string().into())
            .collect();
        if !nets.is_empty() {
            args.insert("networks".into(), nets.into());
        }
        args.insert("resolve_names".into(), false.into());
        args.insert("resolve_services".into(), false.into());
        progress(Progress::Started { window });
        let call = self.call::<TrafficData>(tool::GET_TRAFFIC, args, window + CONNECT_TIMEOUT);
        tokio::pin!(call);
        // The agent's own progress does not cross the gateway; a tick a second does.
        let start = tokio::time::Instant::now();
        let mut ticks =
            tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        let (_, data) = loop {
            tokio::select! {
                r = &mut call => break r?,
                t = ticks.tick() => {
                    let elapsed = (t - start).min(window);
                    progress(Progress::Elapsed { elapsed, window });
                }
            }
        };
        let mut m = measurement(&data);
        m.notes
            .push(format!("asked the netmon agent at {}", self.url));
        Ok(m)
    }
}

/// An agent's result back into the neutral shape. Its rows are the agent's top rows, ranked by
/// the same view, so ranking them again keeps them; `connections_seen` is the agent's.
fn measurement(d: &TrafficData) -> Measurement {
    let t = &d.total_stats;
    // The agent's owners, back into a table the rows point into.
    let mut owners: Vec<Owner> = Vec::new();
    let rows: Vec<Row> = d
        .top_connections
        .iter()
        .map(|c| {
            let owner = if c.process.is_some() || c.container.is_some() {
                let o = Owner {
                    process: c.process.clone(),
                    container: c.container.clone(),
                    cgroup: c.cgroup.clone(),
                };
                let i = owners.iter().position(|x| *x == o).unwrap_or_else(|| {
                    owners.push(o);
                    owners.len() - 1
                });
                OwnerRef::owned(i as u32)
            } else {
                OwnerRef {
                    owner: None,
                    reason: c.unattributed_reason,
                }
            };
            let end = |a: &Option<String>| Endpoint::parse(a.as_deref().unwrap_or(""));
            Ranked {
                local: end(&c.local_addr),
                remote: end(&c.remote_addr),
                local_port: c.local_port,
                remote_port: c.remote_port,
                protocol: c.ip_protocol,
                counters: FlowCounters {
                    rx_bytes: c.rx_bytes,
                    rx_packets: c.rx_packets.unwrap_or(0),
                    tx_bytes: c.tx_bytes,
                    tx_packets: c.tx_packets.unwrap_or(0),
                },
                flows: c.flows,
                owner,
            }
        })
        .collect();
    let totals = |t: &TotalStats| Totals {
        rx_bytes: t.rx_bytes,
        tx_bytes: t.tx_bytes,
        rx_packets: t.rx_packets,
        tx_packets: t.tx_packets,
        rx: t.rx.clone(),
        tx: t.tx.clone(),
    };
    Measurement {
        window_ns: t.window_ns,
        totals: totals(t),
        packets: t.rx_packets.is_some(),
        rows,
        rows_seen: Some(d.connections_seen),
        notes: d.notes.clone(),
        interface_totals: d.interface_totals.as_ref().map(totals),
        // The agent was asked for the selection and applied it.
        selection_applied: true,
        owners,
    }
}

impl TrafficSource for AgentClient {
    fn host(&self) -> &str {
        &self.label
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Agent
    }

    fn interfaces(&self) -> BoxFuture<'_, Result<Vec<InterfaceInfo>>> {
        Box::pin(async { Ok(self.list().await?.details) })
    }

    fn sample<'a>(
        &'a self,
        iface: &'a InterfaceInfo,
        window: Duration,
        view: &'a View,
        progress: ProgressFn<'a>,
    ) -> BoxFuture<'a, Result<Measurement>> {
        Box::pin(async move { Ok(self.traffic(iface, window, view, progress).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_401_is_recognised_by_its_type_through_rmcps_wrappers() {
        use rmcp::transport::streamable_http_client::AuthRequiredError;
        let wrap = |e: HttpError| ClientInitializeError::TransportError {
            error: DynamicTransportError::from_parts(
                "test",
                std::any::TypeId::of::<()>(),
                Box::new(e),
            ),
            context: "send initialize request".into(),
        };
        let auth = wrap(HttpError::AuthRequired(AuthRequiredError::new(
            "Bearer realm=\"netmon\"".into(),
        )));
        assert!(refused(&auth));
        // The same words elsewhere are not a 401.
        let other = wrap(HttpError::UnexpectedServerResponse("Auth required".into()));
        assert!(!refused(&other));
    }
    use crate::rank::{GroupBy, SortKey};
    use crate::snapshot::Sample;

    #[test]
    fn an_agents_answer_comes_back_the_same() {
        use crate::flow::FlowId;
        let id = |port| FlowId {
            local: "10.0.0.1".parse().unwrap(),
            remote: "fd00::2".parse().unwrap(),
            local_port: port,
            remote_port: 443,
            protocol: 6,
        };
        let c = |rx| FlowCounters {
            rx_bytes: rx,
            rx_packets: 1,
            tx_bytes: 7,
            tx_packets: 1,
        };
        let sample = Sample {
            window_ns: 3_000_000_000,
            flows: vec![(id(1), c(100)), (id(2), c(300)), (id(3), c(200))],
            ..Default::default()
        };
        let view = View::all(SortKey::Rx, GroupBy::Connection, 2);
        let there = TrafficData::new(
            "localhost",
            SourceKind::Ebpf,
            "eth0",
            Measurement::from_sample(&sample).with_note("from history"),
            &view,
        );
        let back = TrafficData::new(
            "node7",
            SourceKind::Agent,
            "eth0",
            measurement(&there),
            &view,
        );
        assert_eq!(back.top_connections, there.top_connections);
        assert_eq!(
            back.connections_seen, 3,
            "the agent's count, not the rows sent"
        );
        assert_eq!(back.total_stats.window_ns, 3_000_000_000);
        assert_eq!(back.notes, ["from history"]);
    }
}
