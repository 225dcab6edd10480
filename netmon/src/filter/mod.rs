//! iftop's `-f`: a subset of the pcap filter language, parsed into a typed expression and matched
//! against flows; and iftop's `-F`/`-G`: traffic crossing one network's boundary. Pure.
//!
//! The subset: `host H`, `net N/len` (or `net N mask M`), `port P` and `portrange A-B`, each with
//! an optional `src` or `dst`; `tcp`, `udp`, `icmp`, `icmp6`, `sctp`, `ip`, `ip6` and `proto N`;
//! `and`/`&&`, `or`/`||`, `not`/`!` and parentheses. As in pcap, a bare value after `and`/`or`
//! takes the previous keyword (`port 80 or 443`), and a protocol before a primitive narrows it
//! (`udp dst port 53`). Anything else (`gateway`, `ether`, byte offsets, ...) is refused with a
//! message that points at the word ([`parse`]).
//!
//! The kernel counts every packet; a filter chooses among flows afterwards ([`select`]). A flow
//! is two halves (what the local end sent, what it received), and each half is matched as the
//! packets it stands for: `src host X` keeps the bytes X sent, in whichever direction that is.

mod parse;
pub mod select;

pub use crate::error::FilterError;
pub(crate) use parse::mask_len;
pub use parse::{MAX_WRITTEN_FILTER_BYTES, parse, parse_written};
pub use select::{FlowEnds, Halves, Selection};

use std::fmt;
use std::net::IpAddr;

/// Which end of a packet a primitive looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    /// `src or dst`: the default.
    Either,
    /// `src and dst`.
    Both,
}

/// A network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub len: u8,
}

impl Net {
    pub fn contains(&self, a: &IpAddr) -> bool {
        a.is_ipv4() == self.addr.is_ipv4() && mask(*a, self.len) == mask(self.addr, self.len)
    }

    /// Whether the address has no bits set beyond the prefix (`10.0.0.0/8`, not `10.0.0.1/8`).
    pub fn is_network(&self) -> bool {
        mask(self.addr, self.len) == self.addr
    }

    /// The same network with the bits beyond the prefix cleared.
    pub fn network(&self) -> Net {
        Net {
            addr: mask(self.addr, self.len),
            len: self.len,
        }
    }

    /// `10.0.0.0/8`, `fd00::/64`.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, len) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let len: u8 = len.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(Self { addr, len })
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// `a` with every bit beyond the first `len` cleared.
fn mask(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::from((u32::from(a) & m).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::from((u128::from(a) & m).to_be_bytes())
        }
    }
}

/// The protocols a filter can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// An IP protocol number: `tcp` is 6, `udp` 17, `icmp` 1, `icmp6` 58, `sctp` 132.
    Number(u8),
    /// `ip`: IPv4.
    Ip4,
    /// `ip6`: IPv6.
    Ip6,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prim {
    Host(Dir, IpAddr),
    Net(Dir, Net),
    Port(Dir, u16),
    PortRange(Dir, u16, u16),
    Proto(Proto),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    Prim(Prim),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// One packet direction of a flow, as a filter sees it.
#[derive(Clone, Copy, Debug)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub proto: Option<u8>,
}

/// Protocols whose ports pcap's `port` looks at.
fn pcap_ported(p: Option<u8>) -> bool {
    matches!(p, Some(6 | 17 | 132))
}

fn by_dir<T>(dir: Dir, src: T, dst: T, f: impl Fn(T) -> bool) -> bool {
    match dir {
        Dir::Src => f(src),
        Dir::Dst => f(dst),
        Dir::Either => f(src) || f(dst),
        Dir::Both => f(src) && f(dst),
    }
}

impl Filter {
    pub fn matches(&self, p: &Packet) -> bool {
        match self {
            Filter::Not(f) => !f.matches(p),
            Filter::And(a, b) => a.matches(p) && b.matches(p),
            Filter::Or(a, b) => a.matches(p) || b.matches(p),
            Filter::Prim(prim) => match prim {
                Prim::Host(d, h) => by_dir(*d, p.src, p.dst, |a| a == *h),
                Prim::Net(d, n) => by_dir(*d, p.src, p.dst, |a| n.contains(&a)),
                Prim::Port(d, port) => {
                    pcap_ported(p.proto) && by_dir(*d, p.sport, p.dport, |x| x == Some(*port))
                }
                Prim::PortRange(d, lo, hi) => {
                    pcap_ported(p.proto)
                        && by_dir(*d, p.sport, p.dport, |x| {
                            x.is_some_and(|x| (*lo..=*hi).contains(&x))
                        })
                }
                Prim::Proto(Proto::Number(n)) => p.proto == Some(*n),
                Prim::Proto(Proto::Ip4) => p.src.is_ipv4(),
                Prim::Proto(Proto::Ip6) => p.src.is_ipv6(),
            },
        }
    }

    /// The expression in pcap's syntax, for iftop's `-f` on a remote host and for showing how
    /// netmon read it: only words of the subset, addresses and numbers, so nothing else can ride
    /// along. Parentheses only where precedence needs them.
    pub fn to_pcap(&self) -> String {
        fn dir(d: Dir) -> &'static str {
            match d {
                Dir::Src => "src ",
                Dir::Dst => "dst ",
                Dir::Either => "",
                Dir::Both => "src and dst ",
            }
        }
        // `and` binds tighter than `or`, `not` tighter than both.
        let grouped = |f: &Filter, inside: fn(&Filter) -> bool| {
            if inside(f) {
                format!("({})", f.to_pcap())
            } else {
                f.to_pcap()
            }
        };
        match self {
            // What `ip proto 47` parses to, written back the same way.
            Filter::And(a, b)
                if matches!(**a, Filter::Prim(Prim::Proto(Proto::Ip4 | Proto::Ip6)))
                    && matches!(**b, Filter::Prim(Prim::Proto(Proto::Number(n))) if !named_protocol(n)) =>
            {
                let n = match **b {
                    Filter::Prim(Prim::Proto(Proto::Number(n))) => n,
                    _ => unreachable!("matched above"),
                };
                format!("{} proto {n}", a.to_pcap())
            }
            Filter::Not(f) => format!(
                "not {}",
                grouped(f, |f| matches!(f, Filter::And(..) | Filter::Or(..)))
            ),
            Filter::And(a, b) => format!(
                "{} and {}",
                grouped(a, |f| matches!(f, Filter::Or(..))),
                grouped(b, |f| matches!(f, Filter::Or(..) | Filter::And(..)))
            ),
            Filter::Or(a, b) => format!(
                "{} or {}",
                a.to_pcap(),
                grouped(b, |f| matches!(f, Filter::Or(..)))
            ),
            Filter::Prim(p) => match p {
                Prim::Host(d, h) => format!("{}host {h}", dir(*d)),
                Prim::Net(d, n) => format!("{}net {n}", dir(*d)),
                Prim::Port(d, port) => format!("{}port {port}", dir(*d)),
                Prim::PortRange(d, a, b) => format!("{}portrange {a}-{b}", dir(*d)),
                Prim::Proto(Proto::Ip4) => "ip".into(),
                Prim::Proto(Proto::Ip6) => "ip6".into(),
                Prim::Proto(Proto::Number(n)) => match protocol_name(*n) {
                    Some(name) => name.into(),
                    // pcap's `proto N` is IPv4's or IPv6's protocol N, as netmon's is; it reads
                    // back as the same tree (the fuzzer found `(ip proto N or ip6 proto N)`
                    // written back without its parentheses: not a fixed point).
                    None => format!("proto {n}"),
                },
            },
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_pcap())
    }
}

/// The protocols the filter language names: pcap's words for them.
fn protocol_name(n: u8) -> Option<&'static str> {
    Some(match n {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        58 => "icmp6",
        132 => "sctp",
        _ => return None,
    })
}

fn named_protocol(n: u8) -> bool {
    protocol_name(n).is_some()
}
