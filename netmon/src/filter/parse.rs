//! The filter language's parser: words in, a [`Filter`] or a [`FilterError`] naming the word out.

use super::{Dir, Filter, Net, Prim, Proto};
use crate::error::FilterError;
use std::net::IpAddr;

/// pcap words netmon knows and does not do, with why.
const REFUSED: &[(&str, &str)] = &[
    (
        "gateway",
        "netmon filters flows by address, port and protocol; `gateway` needs link-layer addresses",
    ),
    (
        "ether",
        "netmon filters flows; link-layer (ether) filters are not supported",
    ),
    (
        "broadcast",
        "`broadcast` is not supported; use `net` with the broadcast address",
    ),
    (
        "multicast",
        "`multicast` is not supported; use `net 224.0.0.0/4` or `net ff00::/8`",
    ),
    (
        "vlan",
        "`vlan` is not supported: flows do not keep VLAN tags",
    ),
    (
        "less",
        "packet-length filters (`less`) are not supported: flows count bytes, not lengths",
    ),
    (
        "greater",
        "packet-length filters (`greater`) are not supported: flows count bytes, not lengths",
    ),
    ("len", "packet-length filters are not supported"),
    (
        "arp",
        "`arp` frames are not flows; netmon counts them as other frames",
    ),
    ("rarp", "`rarp` frames are not flows"),
    (
        "inbound",
        "`inbound` is not supported; use `dst host` or `dst net`",
    ),
    (
        "outbound",
        "`outbound` is not supported; use `src host` or `src net`",
    ),
    ("mpls", "`mpls` is not supported"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    PortRange,
}

/// Longest expression read, in bytes. A filter a person writes is a line; the bound keeps a
/// client from making the server split and hold megabytes of words.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Longest text [`Filter::to_pcap`] writes for a filter [`parse`] accepted, and so the bound
/// [`parse_written`] reads netmon's own text with. Writing can be several times longer than
/// what was read (`!` is `not `, `port 1||2` is `port 1 or port 2`), so text netmon wrote
/// from an accepted filter can be longer than [`MAX_FILTER_BYTES`]; the fuzzer found one
/// (`fuzz_crash_62a6c22f`). The operator and depth bounds keep it within this (at most 257
/// primitives of at most ~60 bytes, and each `!` read once), which the `filter` fuzz target
/// checks on every input.
pub const MAX_WRITTEN_FILTER_BYTES: usize = 64 * 1024;
/// Deepest nesting of `(` and `not`/`!`. The parser, the matcher, the writer back to pcap and
/// the tree's drop all recurse once per level: without a bound, 50,000 `(` overflowed the stack
/// and aborted the process.
pub const MAX_FILTER_DEPTH: usize = 64;
/// Most `and`/`or` operators. A chain of them builds a tree as deep as it is long, which the
/// matcher and the drop then walk recursively.
pub const MAX_FILTER_OPERATORS: usize = 256;

struct Parser<'a> {
    words: Vec<&'a str>,
    at: usize,
    /// The keyword a bare value takes (`port 80 or 443`).
    last: Option<(Dir, Kind)>,
    /// `(` and `not` levels open around the current word.
    depth: usize,
    /// `and`/`or` operators read so far.
    operators: usize,
}

/// Splits on white space, and around parentheses and `!` glued to a word.
fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for chunk in text.split_whitespace() {
        let mut rest = chunk;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('(').or_else(|| rest.strip_prefix(')')) {
                out.push(&rest[..1]);
                rest = r;
                continue;
            }
            if rest.starts_with('!') && !rest.starts_with("!=") {
                out.push(&rest[..1]);
                rest = &rest[1..];
                continue;
            }
            let end = rest.find(['(', ')']).unwrap_or(rest.len());
            out.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

/// Parses a filter expression. An empty expression is no filter.
pub fn parse(text: &str) -> Result<Option<Filter>, FilterError> {
    parse_limited(text, MAX_FILTER_BYTES)
}

/// Parses text [`Filter::to_pcap`] wrote: the same language, with room for what writing adds
/// ([`MAX_WRITTEN_FILTER_BYTES`]).
pub fn parse_written(text: &str) -> Result<Option<Filter>, FilterError> {
    parse_limited(text, MAX_WRITTEN_FILTER_BYTES)
}

fn parse_limited(text: &str, max_bytes: usize) -> Result<Option<Filter>, FilterError> {
    if text.len() > max_bytes {
        return Err(FilterError {
            position: 1,
            word: "(the whole expression)".into(),
            problem: format!(
                "the expression is {} bytes long; netmon reads at most {max_bytes}: shorten it, e.g. with `net` instead of many `host`s",
                text.len()
            ),
        });
    }
    let mut p = Parser {
        words: words(text),
        at: 0,
        last: None,
        depth: 0,
        operators: 0,
    };
    if p.words.is_empty() {
        return Ok(None);
    }
    let f = p.or()?;
    if p.at < p.words.len() {
        return Err(p.error("expected `and`, `or` or the end"));
    }
    Ok(Some(f))
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.at).copied()
    }

    fn next(&mut self) -> Option<&'a str> {
        let w = self.peek();
        self.at += 1;
        w
    }

    fn error(&self, problem: impl Into<String>) -> FilterError {
        let i = self.at.min(self.words.len().saturating_sub(1));
        let word = if self.at >= self.words.len() {
            "(end)".to_string()
        } else {
            self.words[i].to_string()
        };
        FilterError {
            position: self.at.min(self.words.len()) + 1,
            word,
            problem: problem.into(),
        }
    }

    /// Counts one `and`/`or`, refusing the one past [`MAX_FILTER_OPERATORS`].
    fn operator(&mut self) -> Result<(), FilterError> {
        self.operators += 1;
        if self.operators > MAX_FILTER_OPERATORS {
            return Err(self.error(format!(
                "more than {MAX_FILTER_OPERATORS} `and`/`or` operators; netmon reads at most that many: use `net` or `portrange` to cover many hosts or ports"
            )));
        }
        self.next();
        Ok(())
    }

    /// Opens one level of `(` or `not`, refusing the one past [`MAX_FILTER_DEPTH`].
    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.error(format!(
                "parentheses and `not` nest more than {MAX_FILTER_DEPTH} deep; netmon reads at most that many levels: remove the extra ones"
            )));
        }
        self.next();
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.operator()?;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while matches!(self.peek(), Some("and" | "&&")) {
            self.operator()?;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if matches!(self.peek(), Some("not" | "!")) {
            self.enter()?;
            let f = Filter::Not(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(f);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter, FilterError> {
        let Some(w) = self.peek() else {
            return Err(self.error("expected a filter"));
        };
        if w == "(" {
            self.enter()?;
            let f = self.or()?;
            if self.peek() != Some(")") {
                return Err(self.error("expected `)`"));
            }
            self.next();
            self.depth -= 1;
            return Ok(f);
        }
        if let Some(proto) = protocol(w) {
            self.next();
            let p = Filter::Prim(Prim::Proto(proto));
            // `ip proto 47`, `ip6 proto 47`: how [`Filter::to_pcap`] writes other protocols.
            if matches!(proto, Proto::Ip4 | Proto::Ip6) && self.peek() == Some("proto") {
                let n = self.proto_number()?;
                return Ok(Filter::And(Box::new(p), Box::new(n)));
            }
            // `udp port 53`, `ip6 host fd00::1`: the protocol narrows what follows.
            if let Some(next) = self.peek()
                && (is_dir(next) || kind(next).is_some())
            {
                let rest = self.qualified()?;
                return Ok(Filter::And(Box::new(p), Box::new(rest)));
            }
            return Ok(p);
        }
        if w == "proto" {
            return self.proto_number();
        }
        self.qualified()
    }

    /// `proto N` or `proto tcp`, at the word `proto`.
    fn proto_number(&mut self) -> Result<Filter, FilterError> {
        self.next();
        let Some(n) = self.peek() else {
            return Err(self.error("`proto` needs a protocol number"));
        };
        let proto = protocol(n)
            .or_else(|| n.parse::<u8>().ok().map(Proto::Number))
            .ok_or_else(|| self.error("not a protocol number (0–255) or name"))?;
        self.next();
        Ok(Filter::Prim(Prim::Proto(proto)))
    }

    /// `[src|dst|src or dst|src and dst] (host|net|port|portrange) VALUE`, or a bare value that
    /// takes the previous keyword.
    fn qualified(&mut self) -> Result<Filter, FilterError> {
        let Some(w) = self.peek() else {
            return Err(self.error("expected a filter"));
        };
        if let Some((_, why)) = REFUSED.iter().find(|(r, _)| *r == w) {
            return Err(self.error(*why));
        }
        if w.starts_with('[') || w.contains('[') {
            return Err(
                self.error("byte-offset expressions are not supported: netmon filters flows")
            );
        }
        let mut dir = None;
        if is_dir(w) {
            self.next();
            dir = Some(if w == "src" { Dir::Src } else { Dir::Dst });
            // `src or dst host X`, `src and dst host X`.
            if matches!(self.peek(), Some("or" | "and"))
                && matches!(self.words.get(self.at + 1), Some(&"src" | &"dst"))
            {
                let both = self.next() == Some("and");
                self.next();
                dir = Some(if both { Dir::Both } else { Dir::Either });
            }
        }
        let (dir, kind) = match self.peek().and_then(kind) {
            Some(k) => {
                self.next();
                (dir.unwrap_or(Dir::Either), k)
            }
            None => match (dir, self.last) {
                (None, Some(last)) if self.peek().is_some_and(looks_like_value) => last,
                _ => {
                    return Err(self.error(
                        "expected host, net, port, portrange, a protocol (tcp, udp, icmp, icmp6, sctp, ip, ip6, proto N), not, or `(`",
                    ));
                }
            },
        };
        self.last = Some((dir, kind));
        let Some(v) = self.peek() else {
            return Err(self.error("expected a value"));
        };
        let prim = match kind {
            Kind::Host => Prim::Host(
                dir,
                v.parse().map_err(|_| {
                    self.error("not an IP address (netmon does not resolve names in filters)")
                })?,
            ),
            Kind::Net => {
                let net = if let Some(n) = Net::parse(v) {
                    n
                } else if self.words.get(self.at + 1) == Some(&"mask") {
                    let addr: IpAddr =
                        v.parse().map_err(|_| self.error("not a network address"))?;
                    self.next();
                    self.next();
                    let m = self.peek().unwrap_or_default();
                    let len =
                        mask_len(m).ok_or_else(|| self.error("not a contiguous IPv4 mask"))?;
                    if !addr.is_ipv4() {
                        return Err(self.error("`mask` is for IPv4; use N/len for IPv6"));
                    }
                    Net { addr, len }
                } else {
                    return Err(self.error("expected a network N/len, or N mask M"));
                };
                // libpcap refuses these too ("non-network bits set"); iftop would, over SSH.
                if !net.is_network() {
                    return Err(self.error(format!(
                        "host bits are set beyond /{}: write the network address",
                        net.len
                    )));
                }
                Prim::Net(dir, net)
            }
            Kind::Port => Prim::Port(
                dir,
                port(v).ok_or_else(|| self.error("not a port (0–65535)"))?,
            ),
            Kind::PortRange => {
                let (a, b) = v
                    .split_once('-')
                    .and_then(|(a, b)| Some((port(a)?, port(b)?)))
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| self.error("expected a port range A-B with A ≤ B"))?;
                Prim::PortRange(dir, a, b)
            }
        };
        self.next();
        Ok(Filter::Prim(prim))
    }
}

fn is_dir(w: &str) -> bool {
    matches!(w, "src" | "dst")
}

fn kind(w: &str) -> Option<Kind> {
    Some(match w {
        "host" => Kind::Host,
        "net" => Kind::Net,
        "port" => Kind::Port,
        "portrange" => Kind::PortRange,
        _ => return None,
    })
}

fn protocol(w: &str) -> Option<Proto> {
    Some(match w {
        "tcp" => Proto::Number(6),
        "udp" => Proto::Number(17),
        "icmp" => Proto::Number(1),
        "icmp6" => Proto::Number(58),
        "sctp" => Proto::Number(132),
        "ip" => Proto::Ip4,
        "ip6" => Proto::Ip6,
        _ => return None,
    })
}

fn looks_like_value(w: &str) -> bool {
    w.starts_with(|c: char| c.is_ascii_hexdigit()) || w.starts_with(':')
}

fn port(s: &str) -> Option<u16> {
    s.parse().ok()
}

/// `255.255.0.0` → 16; `None` for a mask that is not a run of ones.
pub(crate) fn mask_len(m: &str) -> Option<u8> {
    let v = u32::from(m.parse::<std::net::Ipv4Addr>().ok()?);
    let len = v.leading_ones();
    (v.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Packet;

    fn f(text: &str) -> Filter {
        parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .unwrap()
    }

    fn pkt(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> Packet {
        Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport: Some(sport),
            dport: Some(dport),
            proto: Some(proto),
        }
    }

    /// 50,000 `(` aborted the process on a stack overflow: now each bound refuses with its
    /// limit in the message, and what is within the bounds still parses.
    #[test]
    fn nesting_length_and_operators_are_bounded() {
        let nested = |n: usize| format!("{}tcp{}", "(".repeat(n), ")".repeat(n));
        let e = parse(&nested(50_000)).unwrap_err();
        assert!(
            e.problem.contains("more than 4096") || e.problem.contains("at most 4096"),
            "{e}"
        );
        let e = parse(&nested(1_000)).unwrap_err();
        assert!(
            e.problem
                .contains(&format!("nest more than {MAX_FILTER_DEPTH} deep")),
            "{e}"
        );
        assert_eq!(e.word, "(");
        assert!(parse(&nested(MAX_FILTER_DEPTH)).unwrap().is_some());
        assert!(parse(&nested(MAX_FILTER_DEPTH + 1)).is_err());
        let nots = |n: usize| format!("{}tcp", "not ".repeat(n));
        assert!(parse(&nots(MAX_FILTER_DEPTH)).unwrap().is_some());
        let e = parse(&nots(MAX_FILTER_DEPTH + 1)).unwrap_err();
        assert!(e.problem.contains("nest more than"), "{e}");
        let bangs = format!("{}udp", "!".repeat(2_000));
        assert!(
            parse(&bangs)
                .unwrap_err()
                .problem
                .contains("nest more than")
        );
        let chain = |n: usize| vec!["port 1"; n + 1].join(" or ");
        assert!(parse(&chain(MAX_FILTER_OPERATORS)).unwrap().is_some());
        let e = parse(&chain(MAX_FILTER_OPERATORS + 1)).unwrap_err();
        assert!(
            e.problem
                .contains(&format!("more than {MAX_FILTER_OPERATORS}")),
            "{e}"
        );
        assert_eq!(e.word, "or");
        // Depth counts open levels, not all of them: siblings do not add up.
        let siblings = vec![nested(MAX_FILTER_DEPTH); 3].join(" and ");
        assert!(siblings.len() <= MAX_FILTER_BYTES);
        assert!(parse(&siblings).unwrap().is_some());
    }

    /// Found by the `filter` fuzz target (crash-09c13fed…): `proto 61` was written back as
    /// `(ip proto 61 or ip6 proto 61)`, which wrote back without its parentheses: writing was
    /// not a fixed point, and the tree read back was not the one written.
    #[test]
    fn fuzz_crash_62a6c22f_a_long_written_form_reads_back() {
        // 3,400 bytes read; 12,300 written (each `!` is `not `): more than a client may send,
        // and what netmon wrote must still read back as the same filter.
        let text = format!("{}udp || ", "!".repeat(29)).repeat(100) + "tcp";
        assert!(text.len() <= MAX_FILTER_BYTES);
        let read = f(&text);
        let written = read.to_pcap();
        assert!(written.len() > MAX_FILTER_BYTES && written.len() <= MAX_WRITTEN_FILTER_BYTES);
        let back = parse_written(&written).unwrap().unwrap();
        assert_eq!(back, read);
        assert_eq!(back.to_pcap(), written);
    }

    #[test]
    fn fuzz_crash_09c13fed_proto_61_writes_back_to_itself() {
        let f = f("proto 61");
        assert_eq!(f.to_pcap(), "proto 61");
        assert_eq!(parse(&f.to_pcap()).unwrap().unwrap(), f);
    }

    #[test]
    fn the_man_page_examples() {
        let ssh = pkt("10.0.0.5", 40000, "1.2.3.4", 22, 6);
        let reply = pkt("1.2.3.4", 22, "10.0.0.5", 40000, 6);
        assert!(f("dst host 1.2.3.4").matches(&ssh));
        assert!(!f("dst host 1.2.3.4").matches(&reply));
        assert!(f("src port 22").matches(&reply));
        assert!(!f("src port 22").matches(&ssh));
        assert!(f("dst portrange 22-23").matches(&ssh));
        assert!(!f("dst portrange 23-80").matches(&ssh));
        let dns = pkt("10.1.2.3", 5353, "10.0.0.1", 53, 17);
        assert!(!f("net 10.0.0.0/8 and not port 53").matches(&dns));
        assert!(f("net 10.0.0.0/8 and not port 53").matches(&ssh));
        assert!(f("net 10.0.0.0 mask 255.0.0.0").matches(&ssh));
        assert!(f("udp and dst port 5201").matches(&pkt("a::1", 1, "a::2", 5201, 17)));
        assert!(!f("udp and dst port 5201").matches(&pkt("a::1", 1, "a::2", 5201, 6)));
    }

    #[test]
    fn operators_precedence_abbreviations_and_protocols() {
        let p = pkt("10.0.0.1", 1000, "10.0.0.2", 443, 6);
        assert!(
            f("port 80 or 443").matches(&p),
            "a bare value takes the keyword"
        );
        assert!(f("tcp && !udp || icmp").matches(&p));
        assert!(!f("not (tcp or udp)").matches(&p));
        assert!(f("!(udp)").matches(&p));
        assert!(f("tcp dst port 443").matches(&p));
        assert!(f("src or dst host 10.0.0.2").matches(&p));
        assert!(!f("src and dst host 10.0.0.2").matches(&p));
        assert!(f("ip").matches(&p) && !f("ip6").matches(&p));
        assert!(f("proto 6").matches(&p) && f("proto tcp").matches(&p));
        assert!(f("icmp6").matches(&pkt("fd00::1", 0, "fd00::2", 0, 58)));
        // pcap's `port` looks at TCP, UDP and SCTP only.
        let icmp = Packet {
            sport: None,
            dport: None,
            ..pkt("10.0.0.1", 0, "10.0.0.2", 0, 1)
        };
        assert!(!f("port 0").matches(&icmp));
        assert!(f("not port 0").matches(&icmp));
        // and binds tighter than or.
        assert_eq!(
            f("tcp or udp and port 53"),
            Filter::Or(
                Box::new(f("tcp")),
                Box::new(Filter::And(Box::new(f("udp")), Box::new(f("port 53"))))
            )
        );
        assert!(parse("  ").unwrap().is_none());
    }

    #[test]
    fn refusals_point_at_the_word() {
        for (text, word, position) in [
            ("gateway 10.0.0.1", "gateway", 1),
            ("tcp and ether host 0:1:2:3:4:5", "ether", 3),
            ("ip[0] & 0xf != 5", "ip[0]", 1),
            ("host foo.example", "foo.example", 2),
            ("port 70000", "70000", 2),
            ("portrange 30-20", "30-20", 2),
            ("net 10.0.0.0/33", "10.0.0.0/33", 2),
            ("src net 10.0.0.1/8", "10.0.0.1/8", 3),
            ("net fd00::1/64", "fd00::1/64", 2),
            ("tcp and (port 22", "(end)", 6),
            ("tcp port", "(end)", 3),
            ("host 10.0.0.1 10.0.0.2", "10.0.0.2", 3),
            ("less 100", "less", 1),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(
                (e.word.as_str(), e.position),
                (word, position),
                "{text}: {e}"
            );
            assert!(e.to_string().contains(word), "{e}");
        }
    }

    #[test]
    fn rendered_for_pcap_it_parses_back_the_same() {
        for text in [
            "dst host 1.2.3.4",
            "src port 22",
            "dst portrange 22-23",
            "net 10.0.0.0/8 and not port 53",
            "udp and dst port 5201",
            "ip6 and src net fd00::/8 or icmp",
            "src and dst host 10.0.0.1",
            "port 80 or 443",
        ] {
            let one = f(text);
            let pcap = one.to_pcap();
            assert_eq!(f(&pcap), one, "{text} → {pcap}");
        }
        assert_eq!(f("proto 47").to_pcap(), "proto 47");
        let gre4 = Packet {
            sport: None,
            dport: None,
            ..pkt("10.0.0.1", 0, "10.0.0.2", 0, 47)
        };
        let gre6 = Packet {
            src: "fd00::1".parse().unwrap(),
            ..gre4
        };
        let back = f(&f("proto 47").to_pcap());
        assert!(back.matches(&gre4) && back.matches(&gre6));
        assert!(!back.matches(&Packet {
            proto: Some(6),
            ..gre4
        }));
        assert!(f("ip proto 47").matches(&gre4) && !f("ip proto 47").matches(&gre6));
        assert_eq!(
            f("ip6 proto 47").to_pcap(),
            "ip6 proto 47",
            "written back as read"
        );
        assert_eq!(f(&back.to_pcap()), back, "and stable from then on");
    }

    #[test]
    fn networks() {
        let n = Net::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(&"10.255.0.1".parse().unwrap()));
        assert!(!n.contains(&"11.0.0.1".parse().unwrap()));
        assert!(!n.contains(&"::ffff:10.0.0.1".parse().unwrap()));
        let z = Net::parse("0.0.0.0/0").unwrap();
        assert!(z.contains(&"1.2.3.4".parse().unwrap()));
        let v6 = Net::parse("fd00::/8").unwrap();
        assert!(v6.contains(&"fd12::1".parse().unwrap()));
        assert_eq!(mask_len("255.255.240.0"), Some(20));
        assert_eq!(mask_len("255.0.255.0"), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::filter::Packet;
    use proptest::prelude::*;

    fn dir() -> impl Strategy<Value = Dir> {
        prop_oneof![
            Just(Dir::Src),
            Just(Dir::Dst),
            Just(Dir::Either),
            Just(Dir::Both)
        ]
    }

    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0u8..4).prop_map(|x| IpAddr::from([10, 0, 0, x])),
            (0u16..4).prop_map(|x| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, x])),
        ]
    }

    fn prim() -> impl Strategy<Value = Prim> {
        prop_oneof![
            (dir(), addr()).prop_map(|(d, a)| Prim::Host(d, a)),
            (dir(), addr(), 0u8..=32).prop_map(|(d, a, l)| Prim::Net(
                d,
                Net {
                    addr: a,
                    len: if a.is_ipv4() { l } else { l * 4 },
                }
                .network()
            )),
            (dir(), 0u16..6).prop_map(|(d, p)| Prim::Port(d, p)),
            (dir(), 0u16..6, 0u16..6).prop_map(|(d, a, b)| Prim::PortRange(d, a.min(b), a.max(b))),
            prop_oneof![
                Just(Proto::Ip4),
                Just(Proto::Ip6),
                Just(Proto::Number(6)),
                Just(Proto::Number(17)),
                Just(Proto::Number(1)),
                Just(Proto::Number(58)),
                Just(Proto::Number(47)),
            ]
            .prop_map(Prim::Proto),
        ]
    }

    fn filter() -> impl Strategy<Value = Filter> {
        prim()
            .prop_map(Filter::Prim)
            .prop_recursive(4, 24, 2, |inner| {
                prop_oneof![
                    inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                    (inner.clone(), inner).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                ]
            })
    }

    fn packet() -> impl Strategy<Value = Packet> {
        (
            addr(),
            addr(),
            0u16..6,
            0u16..6,
            prop_oneof![Just(6u8), Just(17), Just(1), Just(58), Just(47)],
        )
            .prop_map(|(src, dst, sp, dp, proto)| {
                let ported = matches!(proto, 6 | 17);
                Packet {
                    src,
                    dst,
                    sport: ported.then_some(sp),
                    dport: ported.then_some(dp),
                    proto: Some(proto),
                }
            })
    }

    proptest! {
        /// What netmon passes to iftop reads back as the same filter: the same tree, which
        /// writes the same text and decides every packet alike.
        #[test]
        fn pcap_text_reads_back_as_the_same_filter(f in filter(), packets in proptest::collection::vec(packet(), 16)) {
            let text = f.to_pcap();
            let back = parse_written(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?.unwrap();
            prop_assert_eq!(&back, &f, "{}", text);
            prop_assert_eq!(back.to_pcap(), text.clone());
            for p in &packets {
                prop_assert_eq!(back.matches(p), f.matches(p), "{} on {:?}", text, p);
            }
        }

        /// `not F` decides every packet the other way.
        #[test]
        fn not_is_the_complement(f in filter(), p in packet()) {
            let not = parse_written(&format!("not ({})", f.to_pcap())).unwrap().unwrap();
            prop_assert_eq!(not.matches(&p), !f.matches(&p));
        }

        /// Any text at all: a filter or an error naming a word of it, never a panic.
        #[test]
        fn any_text_parses_or_names_a_word(text in "[a-z0-9 ()!&|:./-]{0,40}") {
            if let Err(e) = parse(&text) {
                prop_assert!(e.word == "(end)" || text.contains(e.word.as_str()), "{e}");
            }
        }
    }
}
