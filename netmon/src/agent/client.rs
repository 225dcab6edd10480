//! The gateway's side of a remote agent: a configured host with `agent_url` is asked through
//! the agent's own `/mcp` (an MCP client over Streamable HTTP, with its bearer token), so the
//! answer has the same shape, and the same window notes, as a local one, with
//! `data.source = "agent"`.

use crate::error::{Error, Result};
use crate::mcp::http::Token;
use crate::mcp::tools;
use crate::report::{InterfacesData, Response, SourceKind, TrafficData};
use crate::request::TrafficRequest;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Bound on connecting and initialising; a sample adds its window to this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AgentClient {
    /// What `data.host` says: the configured name.
    pub label: String,
    pub url: String,
    pub token: Option<Token>,
}

impl AgentClient {
    fn unreachable(&self, detail: impl ToString) -> Error {
        let detail = detail.to_string();
        // rmcp reports a 401 as "Auth required" / "authorization required" inside its
        // transport error; a bare "auth" would also match e.g. an invalid URI authority.
        let lower = detail.to_ascii_lowercase();
        if lower.contains("auth required") || lower.contains("authorization required") {
            return Error::AgentRefused {
                host: self.label.clone(),
                url: self.url.clone(),
                detail,
            };
        }
        Error::AgentUnreachable {
            host: self.label.clone(),
            url: self.url.clone(),
            detail,
        }
    }

    async fn connect(&self) -> Result<RunningService<RoleClient, ()>> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url.as_str());
        if let Some(t) = &self.token {
            config = config.auth_header(t.expose());
        }
        let transport = StreamableHttpClientTransport::from_config(config);
        match tokio::time::timeout(CONNECT_TIMEOUT, ().serve(transport)).await {
            Ok(Ok(service)) => Ok(service),
            Ok(Err(e)) => Err(self.unreachable(e)),
            Err(_) => Err(self.unreachable(format!(
                "no MCP session within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Calls `tool` with `args` and decodes its `{success, message, data}`.
    async fn call<T: DeserializeOwned>(
        &self,
        tool: &'static str,
        args: JsonObject,
        timeout: Duration,
    ) -> Result<(String, T)> {
        let service = self.connect().await?;
        let params = CallToolRequestParams::new(tool).with_arguments(args);
        let outcome = tokio::time::timeout(timeout, service.call_tool(params)).await;
        // Ends the session on the agent; a failure here changes nothing for the caller.
        let _ = service.cancel().await;
        let result = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.unreachable(e)),
            Err(_) => {
                return Err(self.unreachable(format!(
                    "{tool} got no answer within {} s",
                    timeout.as_secs()
                )));
            }
        };
        let value = result
            .structured_content
            .ok_or_else(|| Error::AgentFailed {
                host: self.label.clone(),
                message: format!("{tool} returned no structured content (is it a netmon agent?)"),
            })?;
        let response: Response<T> =
            serde_json::from_value(value).map_err(|e| Error::AgentFailed {
                host: self.label.clone(),
                message: format!("{tool} returned a result netmon cannot read: {e}"),
            })?;
        match (response.success, response.data) {
            (true, Some(data)) => Ok((response.message, data)),
            _ => Err(Error::AgentFailed {
                host: self.label.clone(),
                message: response.message,
            }),
        }
    }

    pub async fn interfaces(&self) -> Result<InterfacesData> {
        let (_, mut data): (String, InterfacesData) = self
            .call(tools::LIST_INTERFACES, JsonObject::new(), CONNECT_TIMEOUT)
            .await?;
        data.host = self.label.clone();
        Ok(data)
    }

    /// The agent's answer for `req` (from its history when it watches the interface).
    pub async fn traffic(&self, req: &TrafficRequest) -> Result<TrafficData> {
        let mut args = JsonObject::new();
        let iface = req
            .iface
            .as_ref()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let window = req.window.duration();
        args.insert("iface".into(), iface.into());
        args.insert("sample_seconds".into(), window.as_secs_f64().into());
        args.insert("top".into(), req.top.into());
        args.insert(
            "sort".into(),
            serde_json::to_value(req.sort).unwrap_or_default(),
        );
        args.insert(
            "group_by".into(),
            serde_json::to_value(req.by).unwrap_or_default(),
        );
        let (_, mut data): (String, TrafficData) = self
            .call(tools::GET_TRAFFIC, args, window + CONNECT_TIMEOUT)
            .await?;
        data.host = self.label.clone();
        data.source = SourceKind::Agent;
        data.notes
            .push(format!("asked the netmon agent at {}", self.url));
        Ok(data)
    }
}
