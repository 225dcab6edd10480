//! A request netmon cannot serve as asked: a wrong argument, an interface that is not there.

/// How the caller names what a message points at: flags on the command line, arguments and
/// tools in an MCP call. A message names the one the caller can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgNames {
    pub iface: &'static str,
    pub window: &'static str,
    pub top: &'static str,
    /// How to list a host's interfaces.
    pub list: &'static str,
    pub filter: &'static str,
    pub by: &'static str,
    /// The IPv4 and IPv6 networks of iftop's `-F` and `-G`.
    pub net4: &'static str,
    pub net6: &'static str,
}

impl ArgNames {
    pub const CLI: Self = Self {
        iface: "--iface",
        window: "--seconds",
        top: "--top",
        list: "`netmon interfaces`",
        filter: "--filter",
        by: "--by",
        net4: "--net",
        net6: "--net6",
    };
    pub const MCP: Self = Self {
        iface: "iface",
        window: "sample_seconds",
        top: "top",
        list: "list_network_interfaces",
        filter: "filter",
        by: "group_by",
        net4: "networks",
        net6: "networks",
    };
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{arg}: interface name {name:?} is not valid: {reason}")]
    InvalidInterfaceName {
        arg: &'static str,
        name: String,
        reason: &'static str,
    },

    #[error(
        "interface {name:?} does not exist on {host}; interfaces there: {available} ({list} shows them)"
    )]
    UnknownInterface {
        name: String,
        host: String,
        available: String,
        list: &'static str,
    },

    #[error(
        "no default route found to pick an interface from; choose one with {arg} ({available})"
    )]
    NoDefaultInterface {
        arg: &'static str,
        available: String,
    },

    #[error("{arg}: {got} is out of range: use {min}–{max} seconds")]
    BadWindow {
        arg: &'static str,
        got: String,
        min: u64,
        max: u64,
    },

    #[error("{arg}: {got} is out of range: use 1–{max}")]
    BadTop {
        arg: &'static str,
        got: usize,
        max: usize,
    },

    /// A flag or option outside what netmon accepts, and why.
    #[error("{arg} {got} is out of range: give {range}{why}")]
    OutOfRange {
        arg: &'static str,
        got: String,
        range: String,
        why: &'static str,
    },

    #[error(
        "{arg}: {source}; netmon filters by host, net, port and portrange (each with src/dst), tcp, udp, icmp, icmp6, sctp, ip, ip6 and proto N, joined with and/or/not and parentheses"
    )]
    BadFilter {
        arg: &'static str,
        #[source]
        source: FilterError,
    },

    #[error("{arg}: {got:?} is not {want}: {reason}")]
    BadNetwork {
        arg: &'static str,
        got: String,
        want: &'static str,
        reason: &'static str,
    },

    #[error(
        "{arg}: {host} is sampled with iftop over SSH, and iftop cannot say whose traffic it is; run `netmon agent` there and add its agent_url to the config, or group by connection or host"
    )]
    NoOwners { arg: &'static str, host: String },

    #[error("invalid arguments for {tool}: {detail}; {usage}")]
    BadArguments {
        tool: &'static str,
        detail: String,
        usage: &'static str,
    },
}

/// A filter that cannot be used: the word it stopped at, where, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at {word:?} (word {position} of the expression)")]
pub struct FilterError {
    /// 1-based position among the expression's words.
    pub position: usize,
    pub word: String,
    pub problem: String,
}
