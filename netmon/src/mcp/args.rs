//! The tools' arguments as the client sends them, and their translation into typed requests.
//! Pure: every wrong argument becomes an [`Error`] whose message a model can act on.

use crate::error::{ArgNames, RequestError};
use crate::rank::{GroupBy, SortKey};
use crate::request::{Naming, Target, TrafficRequest};
use crate::secret::Secret;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The contract's sampling range for the MCP tools: shorter is inaccurate, longer keeps the
/// caller waiting.
pub const MCP_WINDOW_RANGE: (u64, u64) = (3, 30);
pub const DEFAULT_SAMPLE_SECONDS: f64 = 5.0;

/// `list_network_interfaces` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterfacesArgs {
    /// Host to list: "localhost" (the default), "127.0.0.1", "::1" or empty for this machine;
    /// anything else is a remote host, asked through its netmon agent or sampled over SSH with iftop: a name
    /// from netmon's config file (or any host, if the config allows unlisted hosts).
    #[serde(default = "default_host")]
    pub host: String,
    /// SSH port of a remote host.
    #[serde(default = "default_port")]
    pub port: u16,
    /// SSH user of a remote host.
    #[serde(default = "default_username")]
    pub username: String,
    /// SSH password of a remote host.
    #[serde(default)]
    #[schemars(with = "String")]
    pub password: Option<Secret>,
}

/// `get_interface_traffic` arguments. The four SSH fields repeat [`InterfacesArgs`]' because
/// serde cannot combine `flatten` with `deny_unknown_fields`, and unknown arguments must be
/// refused.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficArgs {
    /// Interface to sample, e.g. "eth0"; `list_network_interfaces` lists the host's
    /// interfaces.
    pub iface: String,
    /// Length of the sampling window in seconds, 3–30. The call takes this long.
    #[serde(default = "default_sample_seconds")]
    #[schemars(range(min = 3, max = 30))]
    pub sample_seconds: f64,
    /// Host to sample: "localhost" (the default), "127.0.0.1", "::1" or empty for this
    /// machine; anything else is a remote host, asked through its netmon agent or sampled over SSH with iftop: a name
    /// from netmon's config file (or any host, if the config allows unlisted hosts).
    #[serde(default = "default_host")]
    pub host: String,
    /// SSH port of a remote host.
    #[serde(default = "default_port")]
    pub port: u16,
    /// SSH user of a remote host.
    #[serde(default = "default_username")]
    pub username: String,
    /// SSH password of a remote host.
    #[serde(default)]
    #[schemars(with = "String")]
    pub password: Option<Secret>,
    /// How many connections to return, 1–1000.
    #[serde(default = "default_top")]
    #[schemars(range(min = 1, max = 1000))]
    pub top: usize,
    /// Order of the connections: "rx" (received bytes), "tx" or "total".
    #[serde(default)]
    pub sort: SortKey,
    /// "connection": one row per connection; "host": one row per host pair, ports and
    /// protocols merged; "process": one row per process (like nethogs); "container": one row
    /// per container or pod. Every row names its process and container when known.
    #[serde(default)]
    pub group_by: GroupBy,
    /// Only the traffic matching this pcap-style filter, as iftop's -f: host H, net N/len,
    /// port P, portrange A-B (each with optional src/dst), tcp, udp, icmp, icmp6, sctp, ip, ip6,
    /// proto N, joined with and/or/not and parentheses; e.g. "udp and dst port 53". total_stats
    /// then counts only what matched and interface_totals has the interface's totals.
    #[serde(default)]
    pub filter: Option<String>,
    /// Only traffic crossing these networks' boundary, as iftop's -F (IPv4) and -G (IPv6): at
    /// most one IPv4 and one IPv6 "N/len"; the end inside the network is then the local one.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Host names for the addresses (local_name/remote_name) from /etc/hosts and reverse DNS,
    /// waiting at most 0.5 s after the window; false sends no DNS queries (iftop's -n).
    #[serde(default = "default_true")]
    pub resolve_names: bool,
    /// Service names for the ports (local_service/remote_service) from /etc/services, as
    /// iftop shows them; false for bare ports (iftop's -N).
    #[serde(default = "default_true")]
    pub resolve_services: bool,
}

fn default_true() -> bool {
    true
}

fn default_host() -> String {
    "localhost".into()
}
fn default_port() -> u16 {
    Target::DEFAULT_PORT
}
fn default_username() -> String {
    Target::DEFAULT_USER.into()
}
fn default_sample_seconds() -> f64 {
    DEFAULT_SAMPLE_SECONDS
}
fn default_top() -> usize {
    TrafficRequest::DEFAULT_TOP
}

/// Decodes a tool's raw arguments; a missing, unknown or mistyped argument names itself and
/// the tool's usage.
fn decode<T: DeserializeOwned>(
    tool: &'static str,
    usage: &'static str,
    raw: Option<JsonObject>,
) -> Result<T, RequestError> {
    let value = serde_json::Value::Object(raw.unwrap_or_default());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        // serde quotes the offending value; a mistyped password must not be echoed.
        let detail = if path == "password" {
            "password: must be a string".to_string()
        } else if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        };
        RequestError::BadArguments {
            tool,
            detail,
            usage,
        }
    })
}

pub const INTERFACES_USAGE: &str = "arguments are all optional: host (string), port (integer), username (string), password (string)";
pub const TRAFFIC_USAGE: &str = "arguments: iface (string, required), sample_seconds (number 3–30, default 5), host, port, username, password, top (integer 1–1000, default 10), sort (\"rx\" | \"tx\" | \"total\" | \"source\" | \"destination\"), group_by (\"connection\" | \"host\" | \"process\" | \"container\"), filter (string, e.g. \"udp and dst port 53\"), networks (array of \"N/len\"), resolve_names (boolean, default true), resolve_services (boolean, default true)";

impl InterfacesArgs {
    pub fn parse(tool: &'static str, raw: Option<JsonObject>) -> Result<Target, RequestError> {
        let a: Self = decode(tool, INTERFACES_USAGE, raw)?;
        Ok(Target::new(&a.host, a.port, a.username, a.password))
    }
}

impl TrafficArgs {
    pub fn parse(
        tool: &'static str,
        raw: Option<JsonObject>,
    ) -> Result<(Target, TrafficRequest), RequestError> {
        let a: Self = decode(tool, TRAFFIC_USAGE, raw)?;
        let req = TrafficRequest::new(
            Some(&a.iface),
            a.sample_seconds,
            MCP_WINDOW_RANGE,
            a.top,
            a.sort,
            a.group_by,
            ArgNames::MCP,
        )?;
        let (mut net4, mut net6) = (None, None);
        for n in &a.networks {
            let slot = if n.contains(':') {
                &mut net6
            } else {
                &mut net4
            };
            if slot.replace(n.as_str()).is_some() {
                return Err(RequestError::BadArguments {
                    tool,
                    detail: format!(
                        "networks: {n:?} is a second network of its family; give at most one IPv4 and one IPv6 network, as iftop's -F and -G"
                    ),
                    usage: TRAFFIC_USAGE,
                });
            }
        }
        let req = req
            .with_selection(a.filter.as_deref(), net4, net6)?
            .with_naming(Naming {
                hosts: a.resolve_names,
                services: a.resolve_services,
            });
        Ok((Target::new(&a.host, a.port, a.username, a.password), req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Option<JsonObject> {
        match v {
            serde_json::Value::Object(m) => Some(m),
            _ => unreachable!("test arguments are objects"),
        }
    }

    fn traffic(v: serde_json::Value) -> Result<(Target, TrafficRequest), RequestError> {
        TrafficArgs::parse("get_interface_traffic", obj(v))
    }

    #[test]
    fn defaults_are_the_contracts() {
        let (t, r) = traffic(json!({"iface": "eth0"})).unwrap();
        assert!(matches!(t, Target::Local));
        assert_eq!(r.window.duration().as_secs(), 5);
        assert_eq!(r.top, 10);
        assert_eq!(r.sort, SortKey::Rx);
        assert_eq!(r.by, GroupBy::Connection);
        assert!(r.selection.is_all());
        assert_eq!(r.naming, Naming::ALL);
        assert_eq!(r.iface.unwrap().as_str(), "eth0");
        let (_, r) = traffic(json!({"iface": "eth0", "filter": "udp", "networks": ["fd00::/8", "10.0.0.0/8"], "resolve_names": false})).unwrap();
        assert_eq!(r.selection.filter.unwrap().to_pcap(), "udp");
        assert_eq!(r.selection.net6.unwrap().to_string(), "fd00::/8");
        assert_eq!(r.selection.net4.unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            r.naming,
            Naming {
                hosts: false,
                services: true
            }
        );
    }

    #[test]
    fn each_bad_argument_names_itself() {
        let cases = [
            (json!({}), "missing field `iface`"),
            (json!({"iface": "eth0;reboot"}), "iface: interface name"),
            (json!({"iface": "abcdefghijklmnop"}), "at most 15 bytes"),
            (json!({"iface": "eth0", "sample_seconds": 0}), "3–30"),
            (json!({"iface": "eth0", "sample_seconds": 2}), "3–30"),
            (
                json!({"iface": "eth0", "sample_seconds": 31}),
                "sample_seconds: 31 s is out of range: use 3–30",
            ),
            (json!({"iface": "eth0", "sample_seconds": -1}), "3–30"),
            (
                json!({"iface": "eth0", "sample_seconds": "five"}),
                "sample_seconds: invalid type: string \"five\"",
            ),
            (
                json!({"iface": "eth0", "bogus": 1}),
                "unknown field `bogus`",
            ),
            (
                json!({"iface": "eth0", "top": 0}),
                "top: 0 is out of range: use 1–1000",
            ),
            (
                json!({"iface": "eth0", "top": 5000}),
                "top: 5000 is out of range",
            ),
            (
                json!({"iface": "eth0", "sort": "size"}),
                "sort: unknown variant",
            ),
            (json!({"iface": 7}), "iface: invalid type: integer"),
            (
                json!({"iface": "eth0", "port": 70000}),
                "port: invalid value",
            ),
            (
                json!({"iface": "eth0", "filter": "tcp and ether host 1:2:3:4:5:6"}),
                "filter: netmon filters flows; link-layer (ether) filters are not supported at \"ether\" (word 3",
            ),
            (
                json!({"iface": "eth0", "networks": ["10.0.0.0/8", "192.168.0.0/16"]}),
                "at most one IPv4 and one IPv6",
            ),
            (
                json!({"iface": "eth0", "networks": ["10.0.0.0"]}),
                "networks: \"10.0.0.0\" is not an IPv4 network",
            ),
            (
                json!({"iface": "eth0", "resolve_names": "no"}),
                "resolve_names: invalid type",
            ),
        ];
        for (args, want) in cases {
            let msg = traffic(args.clone()).unwrap_err().to_string();
            assert!(msg.contains(want), "{args}: {msg}");
        }
        let msg = traffic(json!({"iface": "eth0", "x": 1}))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("iface (string, required)"), "{msg}");
    }

    #[test]
    fn passwords_never_print() {
        let (t, _) = traffic(json!({"iface": "eth0", "host": "h", "password": "hunter2"})).unwrap();
        // No CLI flag in a tool's messages.
        let msg = traffic(json!({"iface": "eth0", "top": 0}))
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("--"), "{msg}");
        assert!(!format!("{t:?}").contains("hunter2"));
        let e = InterfacesArgs::parse(
            "list_network_interfaces",
            obj(json!({"password": "hunter2", "x": 1})),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = traffic(json!({"iface": "eth0", "host": "h", "password": 987654})).unwrap_err();
        assert!(!e.to_string().contains("987654"), "{e}");
        assert!(e.to_string().contains("password: must be a string"), "{e}");
    }
}
