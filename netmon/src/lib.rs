//! netmon: what is crossing a network interface right now — interface totals and the top
//! connections, counted in the kernel by an eBPF TC classifier (no packet capture, no per-packet
//! copy), and whose they are.
//!
//! # Layout
//!
//! Pure core (no syscalls, unit-tested without privileges):
//! - [`flow`]: the kernel's raw flow keys as typed addresses, ports and protocols.
//! - [`snapshot`]: kernel counters at an instant, and the difference of two over a window.
//! - [`tick`]: one tick of an always-on sampler: what moved, which flows are idle, and what
//!   evicted entries counted late.
//! - [`measurement`]: what any source measured, in one neutral shape (totals, rows, notes).
//! - [`filter`]: iftop's `-f` (a pcap-filter subset) and `-F`/`-G`, parsed and applied to
//!   flows.
//! - [`owner`]: whose a flow is (process, container, pod) or why it has no owner; cgroup paths
//!   read into containers; [`owner::diag`] and [`owner::resolve`] are its edges.
//! - [`rank`]: sort key, grouping by host pair, top N.
//! - [`window`]: iftop's rolling views (2 s, 10 s, 40 s, peak, cumulative) over ticks of an
//!   always-on sampler.
//! - [`units`]: MB/Mbps for JSON, iftop's notation for text.
//! - [`interface`]: a host's interfaces as netmon describes them; the default route's text.
//! - [`request`]: raw flags and arguments turned into validated requests.
//! - [`config`]: the config file (remote hosts, SSH policy), parsed and checked; its
//!   [`config::load`] reads files, the environment and `$HOME`.
//! - [`secret`]: passwords and tokens, never printed.
//! - [`report`]: the `{success, message, data}` result object of the MCP tool contract.
//! - [`text`]: the iftop-like text view.
//! - [`iftop`]: real iftop's text output parsed back into a measurement.
//! - [`error`]: errors by domain, each keeping its cause.
//!
//! Edges:
//! - [`source`]: the [`source::TrafficSource`] seam every source goes through (the eBPF
//!   classifier, SSH + iftop, a remote agent, a scripted one for tests) and the route a request
//!   takes to one of them.
//! - [`host`]: this namespace's interfaces (if_nameindex, ioctls, /sys when it is this
//!   namespace's, getifaddrs) and the default route (/proc).
//! - [`names`]: host names (/etc/hosts, reverse DNS) and service names (/etc/services) beside
//!   the numbers, within a bounded wait.
//! - [`netlink`]: one netlink request and its replies (sock_diag's sockets, tc's filters and
//!   qdiscs).
//! - [`ssh`]: logging in to a remote host (russh, known_hosts) and running one command there.
//! - [`mcp`]: the MCP server (the contract's two tools, a prompt, log messages) over stdio and
//!   Streamable HTTP.
//! - [`agent`]: always attached, collecting every tick and evicting idle flows; /metrics,
//!   /health and /mcp (answered from its history) over HTTP.
//! - [`metrics`]: the agent's Prometheus series (the `prometheus` crate's text format).
//! - [`top`]: `netmon top`, iftop's live screen over an agent watching one interface (its
//!   state, rows and view are pure; the terminal is the edge).
//! - [`http`]: binding and serving an HTTP router until shutdown, for both of the above.
//! - [`tls`]: HTTPS for both, and the client's TLS to `https://` agents (rustls, ring).
//!
//! Imports go one way: the core imports no edge, [`source`] imports no server, and the agent
//! builds on [`mcp`], never the reverse.

pub mod agent;
pub mod config;
pub mod error;
pub mod filter;
pub mod flow;
pub mod host;
pub mod http;
pub mod iftop;
pub mod interface;
pub mod mcp;
pub mod measurement;
pub mod metrics;

pub mod names;
pub mod netlink;
pub mod owner;
pub mod rank;
pub mod report;
pub mod request;
pub mod secret;
pub mod snapshot;
pub mod source;
pub mod ssh;
pub mod text;
pub mod tick;
pub mod tls;
pub mod top;
pub mod units;
pub mod window;

pub use error::{Error, Result};
