//! netmon: what is crossing a network interface right now — interface totals and the top
//! connections, counted in the kernel by an eBPF TC classifier (no packet capture, no per-packet
//! copy).
//!
//! # Layout
//!
//! Pure core (no syscalls, unit-tested without privileges):
//! - [`flow`]: the kernel's raw flow keys as typed addresses, ports and protocols.
//! - [`snapshot`]: kernel counters at an instant, and the difference of two over a window.
//! - [`rank`]: sort key, grouping by host pair, top N.
//! - [`tick`]: one tick of an always-on sampler: what moved, which flows are idle, and what
//!   evicted entries counted late.
//! - [`window`]: iftop's rolling views (2 s, 10 s, 40 s, peak, cumulative) over ticks of an
//!   always-on sampler.
//! - [`units`]: MB/Mbps for JSON, iftop's notation for text.
//! - [`request`]: raw flags and arguments turned into validated requests.
//! - [`config`]: the config file (remote hosts, SSH policy), parsed and checked.
//! - [`report`]: the `{success, message, data}` result object of the MCP tool contract.
//! - [`text`]: the iftop-like text view.
//! - [`iftop`]: real iftop's text output parsed back into connections and totals.
//!
//! Edges:
//! - [`source`]: the [`source::TrafficSource`] seam, with the eBPF source (bpf syscalls, TC
//!   attachments) and a scripted one for tests.
//! - [`iface`]: the host's interfaces and default route, from /sys and /proc.
//! - [`ssh`]: logging in to a remote host (russh, known_hosts) and running one command there.
//! - [`mcp`]: the MCP server (the contract's two tools) over stdio and Streamable HTTP.
//! - [`agent`]: always attached, collecting every tick and evicting idle flows; /metrics,
//!   /health and /mcp (answered from its history) over HTTP, and the client a gateway uses to
//!   ask a remote agent.
//! - [`metrics`]: the agent's Prometheus series (the `prometheus` crate's text format).
//! - [`http`]: binding and serving an HTTP router until shutdown, for both of the above.
//!
//! Errors are [`error::Error`]; each message names the fix.

pub mod agent;
pub mod config;
pub mod error;
pub mod flow;
pub mod http;
pub mod iface;
pub mod iftop;
pub mod mcp;
pub mod metrics;
pub mod rank;
pub mod report;
pub mod request;
pub mod snapshot;
pub mod source;
pub mod ssh;
pub mod text;
pub mod tick;
pub mod units;
pub mod window;

pub use error::{Error, Result};
