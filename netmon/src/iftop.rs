//! iftop's text output (`iftop -t`), parsed. Pure: text in, the last complete table out.
//!
//! What real iftop prints (1.0~pre4 on Debian 12; `shared/reference/iftop-text-output.md`):
//! - each connection is two lines, `=>` (sent by the left, local host) then `<=` (received), with
//!   the last 2 s, 10 s and 40 s rates and the cumulative bytes;
//! - rates are bytes with `-B`, bits otherwise; the cumulative column is always bytes; units are
//!   1024-based and step up at 1000 (`0.98KB`), three significant digits;
//! - `-P` adds ports: `10.0.0.1:5201`, and for IPv6 `[fd00::1]:5201`; hosts without ports (ICMP)
//!   are bare. The host column is 40 characters wide, so a long IPv6 address with a port is cut
//!   in the middle: `[fd00:209:aaaa:bbbb:cccc:dddd:eeee:40768` keeps the port and loses the
//!   address's tail and the bracket. Such an endpoint is marked `truncated`.
//! - without `-s` a table is printed every 2 s tick (a tick needs a packet); with `-s N` one
//!   table, then iftop exits. A killed iftop may leave half a table: only tables closed by the
//!   `====` line count.
//!
//! iftop 1.0 and 1.0~pre4 differ in the header and banner lines, which the parser does not need;
//! it reads connection lines by their arrows and totals by their labels.

use crate::flow::FlowCounters;
use crate::measurement::{self, Measurement, Row};
use crate::rank::Ranked;
use std::net::IpAddr;

/// A parse failure, naming the 1-based line and what was wrong with it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("iftop output line {line}: {reason}: {text:?}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
    pub text: String,
}

/// One side of a connection as iftop printed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// The host as printed, without the port (brackets removed when complete).
    pub host: String,
    /// The host as an address, when it is one and was not cut.
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    /// iftop cut the host to fit its column; `host` is a prefix of the real one.
    pub truncated: bool,
}

/// One direction of a connection: rates in bytes per second, cumulative in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Columns {
    pub last_2s: f64,
    pub last_10s: f64,
    pub last_40s: f64,
    pub cumulative: f64,
}

/// A connection: `sent` is the `=>` line (local to remote), `received` the `<=` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub local: Endpoint,
    pub remote: Endpoint,
    pub sent: Columns,
    pub received: Columns,
}

/// The totals under the table. Rates are bytes per second over 2 s, 10 s, 40 s.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub send_rate: [f64; 3],
    pub receive_rate: [f64; 3],
    pub total_rate: [f64; 3],
    /// Peak rates: sent, received, total.
    pub peak: [f64; 3],
    /// Cumulative bytes: sent, received, total.
    pub cumulative: [f64; 3],
}

/// One complete table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub pairs: Vec<Pair>,
    pub totals: Totals,
}

/// 1024-based multipliers: iftop's K, M, G, T.
fn scale(prefix: &str) -> Option<f64> {
    Some(match prefix {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
}

/// `3.66KB` → 3747.84 bytes, `26.6Mb` → bits / 8 in bytes. `None` for anything else.
pub fn parse_size(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.matches('.').count() > 1 {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    let (prefix, per) = if let Some(p) = unit.strip_suffix('B') {
        (p, 1.0)
    } else if let Some(p) = unit.strip_suffix('b') {
        (p, 1.0 / 8.0)
    } else {
        return None;
    };
    Some(v * scale(prefix)? * per)
}

/// Splits `host[:port]` as iftop prints it with `-P`.
pub fn parse_endpoint(s: &str) -> Endpoint {
    let numeric_port = |p: &str| {
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<u16>().ok()
        } else {
            None
        }
    };
    if let Some(rest) = s.strip_prefix('[') {
        // IPv6 with a port: `[addr]:port`, or cut to `[addr-prefix:port`.
        if let Some((addr, port)) = rest.rsplit_once("]:") {
            return Endpoint {
                host: addr.to_string(),
                addr: addr.parse().ok(),
                port: numeric_port(port),
                truncated: false,
            };
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if numeric_port(p).is_some() => (h, numeric_port(p)),
            _ => (rest, None),
        };
        return Endpoint {
            host: host.to_string(),
            addr: None,
            port,
            truncated: true,
        };
    }
    let colons = s.matches(':').count();
    if colons == 1 {
        // IPv4 (or a name) with a port.
        if let Some((h, p)) = s.split_once(':')
            && let Some(port) = numeric_port(p)
        {
            return Endpoint {
                host: h.to_string(),
                addr: h.parse().ok(),
                port: Some(port),
                truncated: false,
            };
        }
    }
    // A bare address: IPv4, IPv6 (no brackets when there is no port) or a name.
    Endpoint {
        host: s.to_string(),
        addr: s.parse().ok(),
        port: None,
        truncated: false,
    }
}

/// Exactly `N` iftop sizes separated by spaces; `what` names them in the error.
fn sizes<const N: usize>(
    values: &str,
    line: usize,
    text: &str,
    what: &'static str,
) -> Result<[f64; N], ParseError> {
    let err = |reason| ParseError {
        line,
        reason,
        text: text.to_string(),
    };
    let v: Vec<f64> = values
        .split_whitespace()
        .map(|t| parse_size(t).ok_or_else(|| err("a value is not an iftop size like 3.66KB")))
        .collect::<Result<_, _>>()?;
    v.try_into().map_err(|_| err(what))
}

/// The four value columns after an arrow.
fn columns(values: &str, line: usize, text: &str) -> Result<Columns, ParseError> {
    let [last_2s, last_10s, last_40s, cumulative] = sizes(
        values,
        line,
        text,
        "expected four values (2s, 10s, 40s, cumulative)",
    )?;
    Ok(Columns {
        last_2s,
        last_10s,
        last_40s,
        cumulative,
    })
}

const TOTALS: [&str; 5] = [
    "Total send rate:",
    "Total receive rate:",
    "Total send and receive rate:",
    "Peak rate (sent/received/total):",
    "Cumulative (sent/received/total):",
];

/// The last complete table in `text`, or `None` when iftop printed none (it never ticked).
pub fn parse(text: &str) -> Result<Option<Table>, ParseError> {
    let mut last = None;
    let mut table = Table::default();
    // The `=>` half of a pair waiting for its `<=` line.
    let mut pending: Option<(usize, Endpoint, Columns)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        let err = |reason| ParseError {
            line: n,
            reason,
            text: line.to_string(),
        };
        if let Some((left, values)) = line.split_once(" => ") {
            if pending.is_some() {
                return Err(err(
                    "a sent line (=>) follows a sent line without its <= line",
                ));
            }
            // `   1 host` : the rank, then the host.
            let mut words = left.split_whitespace();
            let (Some(rank), Some(host), None) = (words.next(), words.next(), words.next()) else {
                return Err(err("expected a rank and a host before =>"));
            };
            if rank.parse::<u32>().is_err() {
                return Err(err("expected a rank number before the host"));
            }
            pending = Some((n, parse_endpoint(host), columns(values, n, line)?));
        } else if let Some((left, values)) = line.split_once(" <= ") {
            let Some((_, local, sent)) = pending.take() else {
                return Err(err("a received line (<=) without its sent line (=>)"));
            };
            let mut words = left.split_whitespace();
            let (Some(host), None) = (words.next(), words.next()) else {
                return Err(err("expected one host before <="));
            };
            table.pairs.push(Pair {
                local,
                remote: parse_endpoint(host),
                sent,
                received: columns(values, n, line)?,
            });
        } else if let Some(k) = TOTALS.iter().position(|l| line.starts_with(l)) {
            let v = sizes(&line[TOTALS[k].len()..], n, line, "expected three totals")?;
            let t = &mut table.totals;
            match k {
                0 => t.send_rate = v,
                1 => t.receive_rate = v,
                2 => t.total_rate = v,
                3 => t.peak = v,
                _ => t.cumulative = v,
            }
        } else if line.starts_with("====") {
            if let Some((at, ..)) = pending {
                return Err(ParseError {
                    line: at,
                    reason: "a sent line (=>) without its <= line before the table's end",
                    text: text.lines().nth(at - 1).unwrap_or_default().to_string(),
                });
            }
            last = Some(std::mem::take(&mut table));
        } else if line.starts_with("Listening on") {
            // A new run's first table; anything half-printed before it is void.
            table = Table::default();
            pending = None;
        }
    }
    Ok(last)
}

/// What a table says, as a [`Measurement`] over `window_ns`. Bytes are iftop's cumulative column
/// (three significant digits); iftop counts no packets. A local host iftop cut to fit its column
/// is restored when exactly one of the interface's addresses (`own`) starts with what was
/// printed; any other cut host stays cut.
pub fn measurement(table: &Table, window_ns: u64, own: &[IpAddr]) -> Measurement {
    let endpoint = |e: &Endpoint, restore: bool| -> measurement::Endpoint {
        if let (Some(a), false) = (e.addr, e.truncated) {
            return measurement::Endpoint::Addr(a);
        }
        if !e.truncated {
            return measurement::Endpoint::parse(&e.host);
        }
        if restore {
            let m: Vec<&IpAddr> = own
                .iter()
                .filter(|a| a.to_string().starts_with(&e.host))
                .collect();
            if let [one] = &m[..] {
                return measurement::Endpoint::Addr(**one);
            }
        }
        measurement::Endpoint::Cut(e.host.clone())
    };
    let whole = |b: f64| b.max(0.0).round() as u64;
    let rows: Vec<Row> = table
        .pairs
        .iter()
        .map(|p| Ranked {
            local: endpoint(&p.local, true),
            remote: endpoint(&p.remote, false),
            local_port: p.local.port,
            remote_port: p.remote.port,
            protocol: None,
            counters: FlowCounters {
                rx_bytes: whole(p.received.cumulative),
                tx_bytes: whole(p.sent.cumulative),
                ..Default::default()
            },
            flows: 1,
            owner: crate::owner::OwnerRef::NONE,
        })
        .collect();
    Measurement {
        window_ns,
        totals: measurement::Totals {
            rx_bytes: whole(table.totals.cumulative[1]),
            tx_bytes: whole(table.totals.cumulative[0]),
            ..Default::default()
        },
        rows,
        packets: false,
        rows_seen: None,
        notes: Vec::new(),
        interface_totals: None,
        selection_applied: false,
        owners: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::iftop_size;
    use proptest::prelude::*;

    const KB: f64 = 1024.0;
    const MB: f64 = 1024.0 * 1024.0;

    // Real output, iftop 1.0~pre4, TCP 10 MiB over a veth, `-t -s 5 -L 10 -n -N -P -B`.
    const TCP_B: &str = "Listening on vinfb
   # Host name (port/service if enabled)            last 2s   last 10s   last 40s cumulative
--------------------------------------------------------------------------------------------
   1 10.200.1.2:5201                          =>     3.66KB     10.3KB     10.3KB     61.7KB
     10.200.1.1:39564                         <=     2.33MB     1.73MB     1.73MB     10.4MB
   2 10.200.1.2:5201                          =>       338B       175B       175B     1.03KB
     10.200.1.1:39548                         <=       292B       191B       191B     1.12KB
--------------------------------------------------------------------------------------------
Total send rate:                                     3.99KB     10.5KB     10.5KB
Total receive rate:                                  2.33MB     1.73MB     1.73MB
Total send and receive rate:                         2.34MB     1.74MB     1.74MB
--------------------------------------------------------------------------------------------
Peak rate (sent/received/total):                     23.4KB     2.46MB     2.48MB
Cumulative (sent/received/total):                    62.7KB     10.4MB     10.4MB
============================================================================================
";

    // The same without -B: rates in bits, cumulative in bytes.
    const TCP_BITS: &str = "Listening on vinfb
   # Host name (port/service if enabled)            last 2s   last 10s   last 40s cumulative
--------------------------------------------------------------------------------------------
   1 10.200.1.2:5201                          =>     13.0Kb     57.9Kb     57.9Kb     29.0KB
     10.200.1.1:42858                         <=     26.6Mb     20.7Mb     20.7Mb     10.4MB
--------------------------------------------------------------------------------------------
Total send rate:                                     15.7Kb     60.0Kb     60.0Kb
Total receive rate:                                  26.6Mb     20.7Mb     20.7Mb
Total send and receive rate:                         26.6Mb     20.8Mb     20.8Mb
--------------------------------------------------------------------------------------------
Peak rate (sent/received/total):                      104Kb     26.6Mb     26.6Mb
Cumulative (sent/received/total):                    30.0KB     10.4MB     10.4MB
============================================================================================
";

    // Real output captured here (iperf3 over IPv6 and pings over both families on a veth):
    // IPv6 with ports cut to the 40-character column, ICMPv6 and ICMP without ports, and a
    // neighbour solicitation to a multicast address.
    const V6_CUT: &str = "Listening on if0
   # Host name (port/service if enabled)            last 2s   last 10s   last 40s cumulative
--------------------------------------------------------------------------------------------
   1 [fd00:209:aaaa:bbbb:cccc:dddd:eeee:40768 =>         0B      513KB      513KB     2.00MB
     [fd00:209:aaaa:bbbb:cccc:dddd:eeee::5201 <=         0B       992B       992B     3.88KB
   2 [fd00:209:aaaa:bbbb:cccc:dddd:eeee:40752 =>         0B       346B       346B     1.35KB
     [fd00:209:aaaa:bbbb:cccc:dddd:eeee::5201 <=         0B       331B       331B     1.29KB
   3 fd00:209:aaaa:bbbb:cccc:dddd:eeee:1      =>       416B       260B       260B     1.02KB
     fd00:209:aaaa:bbbb:cccc:dddd:eeee:2      <=       416B       278B       278B     1.09KB
   4 10.200.9.1                               =>       336B       210B       210B       840B
     10.200.9.2                               <=       336B       210B       210B       840B
   5 fd00:209:aaaa:bbbb:cccc:dddd:eeee:1      =>         0B        18B        18B        72B
     ff02::1:ffee:2                           <=         0B         0B         0B         0B
--------------------------------------------------------------------------------------------
Total send rate:                                       752B      514KB      514KB
Total receive rate:                                    752B     1.77KB     1.77KB
Total send and receive rate:                         1.47KB      516KB      516KB
--------------------------------------------------------------------------------------------
Peak rate (sent/received/total):                     1.00MB     2.80KB     1.01MB
Cumulative (sent/received/total):                    2.01MB     7.07KB     2.01MB
============================================================================================
";

    #[test]
    fn sizes_are_1024_based_and_bits_are_eighths() {
        assert_eq!(parse_size("0B"), Some(0.0));
        assert_eq!(parse_size("338B"), Some(338.0));
        assert_eq!(parse_size("3.66KB"), Some(3.66 * KB));
        assert_eq!(parse_size("10.4MB"), Some(10.4 * MB));
        assert_eq!(parse_size("26.6Mb"), Some(26.6 * MB / 8.0));
        assert_eq!(parse_size("104Kb"), Some(104.0 * KB / 8.0));
        assert_eq!(parse_size("1.2GB"), Some(1.2 * 1024.0 * MB));
        for bad in [
            "", "KB", "1.2.3KB", ".5KB", "12", "12XB", "-1B", "1e3B", "12 B",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn endpoints() {
        let e = parse_endpoint("10.200.1.2:5201");
        assert_eq!(
            (e.addr, e.port, e.truncated),
            (Some("10.200.1.2".parse().unwrap()), Some(5201), false)
        );
        let e = parse_endpoint("[fd00::1]:22");
        assert_eq!(
            (e.addr, e.port),
            (Some("fd00::1".parse().unwrap()), Some(22))
        );
        let e = parse_endpoint("fd00:209:aaaa:bbbb:cccc:dddd:eeee:1");
        assert_eq!((e.port, e.truncated), (None, false));
        assert_eq!(
            e.addr,
            Some("fd00:209:aaaa:bbbb:cccc:dddd:eeee:1".parse().unwrap())
        );
        let e = parse_endpoint("[fd00:209:aaaa:bbbb:cccc:dddd:eeee:40768");
        assert_eq!(
            (e.host.as_str(), e.addr, e.port, e.truncated),
            ("fd00:209:aaaa:bbbb:cccc:dddd:eeee", None, Some(40768), true)
        );
        let e = parse_endpoint("[fd00:209:aaaa:bbbb:cccc:dddd:eeee::5201");
        assert_eq!((e.port, e.truncated), (Some(5201), true));
        let e = parse_endpoint("10.0.0.1");
        assert_eq!((e.port, e.addr.is_some()), (None, true));
    }

    #[test]
    fn real_tcp_table_in_bytes() {
        let t = parse(TCP_B).unwrap().expect("a table");
        assert_eq!(t.pairs.len(), 2);
        let p = &t.pairs[0];
        assert_eq!(p.local.addr, Some("10.200.1.2".parse().unwrap()));
        assert_eq!(p.local.port, Some(5201));
        assert_eq!(p.remote.port, Some(39564));
        assert_eq!(p.sent.last_2s, 3.66 * KB);
        assert_eq!(p.received.cumulative, 10.4 * MB);
        assert_eq!(t.pairs[1].received.last_10s, 191.0);
        assert_eq!(t.totals.cumulative, [62.7 * KB, 10.4 * MB, 10.4 * MB]);
        assert_eq!(t.totals.peak[1], 2.46 * MB);
        assert_eq!(t.totals.receive_rate, [2.33 * MB, 1.73 * MB, 1.73 * MB]);
    }

    #[test]
    fn real_tcp_table_in_bits() {
        let t = parse(TCP_BITS).unwrap().expect("a table");
        let p = &t.pairs[0];
        assert_eq!(p.received.last_2s, 26.6 * MB / 8.0);
        // The cumulative column stays in bytes.
        assert_eq!(p.received.cumulative, 10.4 * MB);
        assert_eq!(t.totals.peak[0], 104.0 * KB / 8.0);
    }

    #[test]
    fn real_ipv6_cut_hosts_and_portless_flows() {
        let t = parse(V6_CUT).unwrap().expect("a table");
        assert_eq!(t.pairs.len(), 5);
        assert!(t.pairs[0].local.truncated && t.pairs[0].remote.truncated);
        assert_eq!(t.pairs[0].local.port, Some(40768));
        assert_eq!(t.pairs[0].sent.cumulative, 2.0 * MB);
        assert_eq!(t.pairs[2].local.port, None);
        assert!(t.pairs[2].local.addr.is_some() && !t.pairs[2].local.truncated);
        assert_eq!(t.pairs[3].received.cumulative, 840.0);
        assert_eq!(
            t.pairs[4].remote.addr,
            Some("ff02::1:ffee:2".parse().unwrap())
        );
        assert_eq!(t.totals.cumulative[2], 2.01 * MB);
    }

    #[test]
    fn the_last_complete_table_wins_and_a_cut_one_is_ignored() {
        let cut = "Listening on x\n   1 10.0.0.1:1 =>  1B 1B 1B 1B\n";
        let two = format!("{TCP_BITS}{TCP_B}{cut}");
        let t = parse(&two).unwrap().expect("a table");
        assert_eq!(t.pairs.len(), 2, "the -B table, which came last");
        assert_eq!(t.pairs[0].sent.last_2s, 3.66 * KB);
        assert_eq!(parse("Listening on eth0\n").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn an_empty_table_has_zero_totals() {
        let idle = "Listening on if0
   # Host name (port/service if enabled)            last 2s   last 10s   last 40s cumulative
--------------------------------------------------------------------------------------------
--------------------------------------------------------------------------------------------
Total send rate:                                         0B         0B         0B
Total receive rate:                                      0B         0B         0B
Total send and receive rate:                             0B         0B         0B
--------------------------------------------------------------------------------------------
Peak rate (sent/received/total):                         0B         0B         0B
Cumulative (sent/received/total):                        0B         0B         0B
============================================================================================
";
        let t = parse(idle).unwrap().expect("a table");
        assert!(t.pairs.is_empty());
        assert_eq!(t.totals, Totals::default());
    }

    #[test]
    fn errors_name_the_line() {
        let bad_unit = TCP_B.replace("61.7KB", "61.7QB");
        let e = parse(&bad_unit).unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.to_string().contains("line 4"), "{e}");
        let orphan = "     10.0.0.1:1 <= 1B 1B 1B 1B\n";
        assert_eq!(parse(orphan).unwrap_err().line, 1);
        let unpaired = "   1 10.0.0.1:1 => 1B 1B 1B 1B\n====\n";
        let e = parse(unpaired).unwrap_err();
        assert_eq!(e.line, 1);
        let short = "   1 10.0.0.1:1 => 1B 1B 1B\n";
        assert!(parse(short).unwrap_err().reason.contains("four values"));
        let totals = "Cumulative (sent/received/total): 1B 2B\n";
        assert!(parse(totals).unwrap_err().reason.contains("three totals"));
    }

    fn render(pairs: &[(u16, [f64; 4], [f64; 4])]) -> String {
        let mut s = String::from("Listening on x\n");
        let cols = |v: &[f64; 4]| {
            v.iter()
                .map(|x| format!("{:>10}", iftop_size(*x, false)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (i, (port, sent, recv)) in pairs.iter().enumerate() {
            s.push_str(&format!(
                "{:>4} {:<40} => {}\n",
                i + 1,
                format!("10.0.0.1:{port}"),
                cols(sent)
            ));
            s.push_str(&format!("     {:<40} <= {}\n", "10.0.0.2:5201", cols(recv)));
        }
        s.push_str("====\n");
        s
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,400}") {
            let _ = parse(&s);
        }

        #[test]
        fn arbitrary_iftop_like_lines_never_panic(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("   1 10.0.0.1:1 => 1B 2KB 3MB 4GB".to_string()),
                    Just("     [fd00::1]:2 <= 1.5Kb 0B 9.99Mb 1.00TB".to_string()),
                    Just("====".to_string()),
                    Just("Listening on eth0".to_string()),
                    Just("Cumulative (sent/received/total): 1B 2B 3B".to_string()),
                    "[ -~]{0,60}",
                    "[0-9 .KMGTBb=<>:\\[\\]]{0,60}",
                ],
                0..30,
            )
        ) {
            let _ = parse(&lines.join("\n"));
        }

        /// What iftop prints, parsed back: each value within iftop's rounding (two decimals
        /// on values from 0.98 of a unit, so at most 0.52% off; whole bytes below 1000 B).
        #[test]
        fn rendered_tables_read_back_within_rounding(
            pairs in proptest::collection::vec(
                (1u16..65535, proptest::array::uniform4(0.0f64..1e12), proptest::array::uniform4(0.0f64..1e12)),
                0..12,
            )
        ) {
            let t = parse(&render(&pairs)).unwrap().expect("a table");
            prop_assert_eq!(t.pairs.len(), pairs.len());
            for (got, (port, sent, recv)) in t.pairs.iter().zip(&pairs) {
                prop_assert_eq!(got.local.port, Some(*port));
                let g = [got.sent.last_2s, got.sent.last_10s, got.sent.last_40s, got.sent.cumulative,
                         got.received.last_2s, got.received.last_10s, got.received.last_40s, got.received.cumulative];
                let w = [sent[0], sent[1], sent[2], sent[3], recv[0], recv[1], recv[2], recv[3]];
                for (g, w) in g.iter().zip(w) {
                    let tol = if w < 1000.0 { 0.5 } else { w * 0.0052 + 0.5 };
                    prop_assert!((g - w).abs() <= tol, "{} read back as {}", w, g);
                }
            }
        }
    }

    #[test]
    fn a_table_becomes_cumulative_bytes_over_the_window() {
        use crate::rank::{GroupBy, SortKey};
        use crate::report::{SourceKind, TrafficData, View};
        let text = "   1 [fd00:209:aaaa:bbbb:cccc:dddd:eeee:40768 =>    0B  513KB  513KB  2.00MB
     [fd00:209:aaaa:bbbb:cccc:dddd:eeee::5201 <=    0B   992B   992B  3.88KB
   2 10.200.9.1:22                            =>  336B   210B   210B   840B
     10.200.9.2:50000                         <=  336B   210B   210B   1.00MB
   3 10.200.9.1:23                            =>  336B   210B   210B   100B
     10.200.9.2:50001                         <=  336B   210B   210B   200B
Cumulative (sent/received/total):                    2.01MB     1.01MB     3.02MB
====
";
        let t = parse(text).unwrap().unwrap();
        let own: Vec<IpAddr> = vec![
            "10.200.9.1".parse().unwrap(),
            "fd00:209:aaaa:bbbb:cccc:dddd:eeee:1".parse().unwrap(),
        ];
        let view = View::all(SortKey::Rx, GroupBy::Connection, 10);
        let m = measurement(&t, 4_000_000_000, &own);
        let d = TrafficData::new("h", SourceKind::SshIftop, "if0", m.clone(), &view);
        assert_eq!(d.total_stats.tx_bytes, 2_107_638); // 2.01 × 1024²
        assert_eq!(d.total_stats.tx_bps, 4_215_276);
        assert_eq!(d.total_stats.tx_packets, None);
        let c = &d.top_connections;
        assert_eq!(c[0].remote_port, Some(50000), "by receive bytes");
        assert_eq!(c[0].rx_bytes, 1_048_576);
        assert_eq!(
            c[1].local_addr.as_deref(),
            Some("fd00:209:aaaa:bbbb:cccc:dddd:eeee:1"),
            "restored"
        );
        assert_eq!(
            c[1].remote_addr.as_deref(),
            Some("fd00:209:aaaa:bbbb:cccc:dddd:eeee:…"),
            "cut"
        );
        assert_eq!(c[1].tx_bytes, 2_097_152);
        let by_host = View::all(SortKey::Rx, GroupBy::Host, 1);
        let d = TrafficData::new("h", SourceKind::SshIftop, "if0", m, &by_host);
        assert_eq!(d.connections_seen, 2);
        assert_eq!(d.top_connections[0].flows, 2);
        assert_eq!(d.top_connections[0].rx_bytes, 1_048_576 + 200);
    }
}
