//! `netmon top`'s screen as text: the scale, two lines per row with their bars, the TX/RX/TOTAL
//! block and the status line, laid out for a terminal's size. Pure; [`super::draw`] only puts it
//! on the terminal.

use super::rows::{Ends, OwnerKey, RowKey};
use super::state::{LineMode, Prompt, Scale, SortBy, State};
use crate::names::Services;
use crate::owner::Owner;
use crate::text::printable;
use crate::units::iftop_size;
use crate::window::{Rate, Rolling};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

/// Width of one rate column.
const COL: usize = 8;

/// One line of the screen, with the cells its bar covers (from the left).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Line {
    pub text: String,
    pub bar: usize,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Screen {
    pub width: usize,
    /// The scale's labels, and its tick marks under them.
    pub ruler: [String; 2],
    pub lines: Vec<Line>,
    /// TX, RX and TOTAL.
    pub totals: [String; 3],
    pub status: String,
    /// A prompt being typed, or a message.
    pub bottom: Option<String>,
    /// The help text, shown instead of the rows.
    pub help: Option<Vec<String>>,
}

/// What the screen is drawn from, besides the state.
pub struct Data<'a> {
    pub iface: &'a str,
    pub rows: &'a [(RowKey, Rolling)],
    /// The owner behind each process or container row.
    pub owners: &'a HashMap<OwnerKey, Arc<Owner>>,
    /// Processes shown that have exited since (their rows stay while their bytes are in the
    /// windows).
    pub exited: &'a HashSet<u32>,
    pub totals: &'a Rolling,
    /// Bytes in the interface totals but in no flow since watching began (table full).
    pub unattributed: u64,
    /// Entries in the fuller flow table (IPv4 or IPv6) and each table's capacity.
    pub table: Option<(usize, u32)>,
    pub names: &'a HashMap<IpAddr, String>,
    pub services: Option<&'a Services>,
}

pub const HELP: &[&str] = &[
    "netmon top: iftop's screen, counted in the kernel",
    " h  this help                   P  pause / resume",
    " n  host names on/off           o  freeze the order",
    " N  service names on/off        1 2 3  sort by the 2s, 10s, 40s column",
    " s  hide/show the source        < >  sort by source / destination",
    " d  hide/show the destination   l  show only rows containing some text",
    " S  source port on/off          f  filter (pcap syntax, e.g. udp and port 53)",
    " D  destination port on/off     L  linear / log scale",
    " p  both ports on/off           t  two lines, sent, received, sum per row",
    " g  group: connection, host pair, process, container",
    " Enter  a process's or container's connections     Esc  back",
    " T  cumulative column           j k  scroll, or pick the row (arrows, PgUp, PgDn)",
    " b  bars on/off                 q  quit",
    " B  bars: 2s, 10s, 40s average",
    "any key returns",
];

/// A rate as the screen prints it: bits per second as iftop does, or bytes with `-B`.
fn rate(bytes_per_s: f64, state: &State) -> String {
    if state.rate_bytes {
        iftop_size(bytes_per_s, false)
    } else {
        iftop_size(bytes_per_s * 8.0, true)
    }
}

/// 1000-based, for the scale's round labels.
fn si(bits: f64) -> String {
    let units = ["b", "Kb", "Mb", "Gb", "Tb"];
    let mut v = bits;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", (v * 10.0).round() / 10.0, units[i])
}

/// The scale: its top (bits per second) and where a rate falls on it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ruler {
    pub top: f64,
    pub scale: Scale,
}

/// Decades a log scale spans.
const DECADES: i32 = 5;

impl Ruler {
    /// `-m` if given; otherwise the peak seen, rounded up to a power of ten (10 Kb at least),
    /// as iftop grows its scale.
    pub fn new(state: &State, peak_bits: f64) -> Self {
        let top = state.scale_max.unwrap_or_else(|| {
            let p = peak_bits.max(10_000.0);
            10f64.powf(p.log10().ceil())
        });
        Self {
            top,
            scale: state.scale,
        }
    }

    /// The part of `width` cells a rate (bits per second) fills.
    pub fn cells(&self, bits: f64, width: usize) -> usize {
        let f = match self.scale {
            Scale::Linear => bits / self.top,
            Scale::Log => {
                let bottom = self.top / 10f64.powi(DECADES);
                if bits <= bottom {
                    0.0
                } else {
                    (bits / bottom).log10() / f64::from(DECADES)
                }
            }
        };
        (f.clamp(0.0, 1.0) * width as f64).round() as usize
    }

    /// The labels and their marks.
    fn draw(&self, width: usize) -> [String; 2] {
        let marks: Vec<f64> = match self.scale {
            Scale::Log => (1..=DECADES)
                .map(|i| self.top / 10f64.powi(DECADES - i))
                .collect(),
            Scale::Linear => (1..=4).map(|i| self.top * f64::from(i) / 4.0).collect(),
        };
        let mut labels = vec![' '; width];
        let mut ticks: Vec<char> = vec!['─'; width];
        if let Some(t) = ticks.first_mut() {
            *t = '└';
        }
        for m in marks {
            let at = self.cells(m, width.saturating_sub(1));
            if let Some(t) = ticks.get_mut(at) {
                *t = '┴';
            }
            let label = si(m);
            let start = at
                .saturating_sub(label.len() / 2)
                .min(width.saturating_sub(label.len()));
            for (i, c) in label.chars().enumerate() {
                if let Some(l) = labels.get_mut(start + i) {
                    *l = c;
                }
            }
        }
        [labels.into_iter().collect(), ticks.into_iter().collect()]
    }
}

/// How an owner row reads: nethogs's PID, USER and PROGRAM for a process (the command line
/// while it runs, its name once it exited, and then marked so); the runtime, short id and pod
/// for a container; the reason for bytes that are nobody's.
pub fn owner_label(
    k: &OwnerKey,
    owners: &HashMap<OwnerKey, Arc<Owner>>,
    exited: &HashSet<u32>,
) -> String {
    match k {
        OwnerKey::Process { pid, comm } => {
            let p = owners.get(k).and_then(|o| o.process.as_ref());
            let user = p
                .map(|p| p.user.clone().unwrap_or_else(|| p.uid.to_string()))
                .unwrap_or_default();
            if exited.contains(pid) {
                return format!("{pid:>7} {user:<9} {comm} (exited)");
            }
            let program = p
                .and_then(|p| p.cmdline.clone())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| comm.clone());
            format!("{pid:>7} {user:<9} {program}")
        }
        OwnerKey::Container(None) => "host (no container)".into(),
        OwnerKey::Container(Some(id)) => {
            let c = owners.get(k).and_then(|o| o.container.as_ref());
            let runtime = c
                .and_then(|c| serde_json::to_value(c.runtime).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let short: String = id.chars().take(12).collect();
            let pod = match c.and_then(|c| c.pod.as_ref()) {
                Some(p) => match (&p.namespace, &p.name) {
                    (Some(ns), Some(name)) => format!("pod {ns}/{name}"),
                    _ => format!("pod {}", p.uid.chars().take(8).collect::<String>()),
                },
                None => String::new(),
            };
            format!("{runtime:<10} {short:<12} {pod}")
        }
        OwnerKey::Unattributed(r) => format!("(unattributed: {})", r.label()),
    }
}

/// An owner in a few words, for the status line.
fn owner_name(k: &OwnerKey) -> String {
    match k {
        OwnerKey::Process { pid, comm } => format!("process {pid} {comm}"),
        OwnerKey::Container(Some(id)) => {
            format!("container {}", id.chars().take(12).collect::<String>())
        }
        OwnerKey::Container(None) => "the host's processes".into(),
        OwnerKey::Unattributed(r) => format!("unattributed: {}", r.label()),
    }
}

/// How a row's ends read: name or address (as the state asks), with the port or its service.
pub fn label(
    k: &Ends,
    state: &State,
    names: &HashMap<IpAddr, String>,
    services: Option<&Services>,
) -> (String, String) {
    let end = |addr: Option<IpAddr>, port: Option<u16>| {
        let host = match addr {
            None => "*".to_string(),
            Some(a) => match names.get(&a).filter(|_| state.names) {
                Some(n) => n.clone(),
                None => a.to_string(),
            },
        };
        match port {
            None => host,
            Some(p) => {
                let named = k
                    .protocol
                    .filter(|_| state.services)
                    .and_then(|proto| services.and_then(|s| s.name(p, proto)));
                match named {
                    Some(n) => format!("{host}:{n}"),
                    None => format!("{host}:{p}"),
                }
            }
        }
    };
    (end(k.local, k.local_port), end(k.remote, k.remote_port))
}

/// `text` cut or padded to exactly `w` characters.
fn fit(text: &str, w: usize) -> String {
    let n = text.chars().count();
    if n > w {
        text.chars().take(w).collect()
    } else {
        format!("{text}{}", " ".repeat(w - n))
    }
}

/// The screen for `data` under `state`, `width` × `height` cells.
pub fn screen(data: &Data, state: &State, width: usize, height: usize) -> Screen {
    let width = width.max(40);
    let peak = data.totals.peak.rx.max(data.totals.peak.tx) * 8.0;
    let ruler = Ruler::new(state, peak);
    let columns = 3 + usize::from(state.cumulative);
    let hosts = width.saturating_sub(columns * COL + 4);
    let (lw, rw) = (hosts / 2, hosts - hosts / 2);
    let rates = |r: [f64; 3], cum: Option<u64>| {
        let mut s: String = r
            .iter()
            .map(|v| format!("{:>COL$}", rate(*v, state)))
            .collect();
        if state.cumulative {
            s += &format!(
                "{:>COL$}",
                cum.map(|c| iftop_size(c as f64, false)).unwrap_or_default()
            );
        }
        s
    };
    let pick = |r: &Rolling, f: fn(&Rate) -> f64| {
        [f(&r.averages[0]), f(&r.averages[1]), f(&r.averages[2])]
    };
    let bar = |bytes_per_s: f64| {
        if state.bars {
            ruler.cells(bytes_per_s * 8.0, width)
        } else {
            0
        }
    };
    let mut lines = Vec::new();
    let mut shown = 0;
    let cursor = state.cursor.min(data.rows.len().saturating_sub(1));
    for (k, r) in data.rows {
        // Names come from DNS answers and /etc files, owners' text from the processes
        // themselves: escaped, like everything drawn.
        let (left, right) = match k {
            RowKey::Ends(e) => label(e, state, data.names, data.services),
            RowKey::Owner(o) => (owner_label(o, data.owners, data.exited), String::new()),
        };
        let (left, right) = (
            printable(&left).into_owned(),
            printable(&right).into_owned(),
        );
        if let Some(f) = &state.display_filter
            && !left.contains(f.as_str())
            && !right.contains(f.as_str())
        {
            continue;
        }
        // An owner row uses both ends' room; the cursor's row starts with `>`.
        let (l, rt) = match k {
            RowKey::Ends(_) => (fit(&left, lw), fit(&right, rw)),
            RowKey::Owner(_) => {
                let marker = if state.showing_owners() && shown == cursor {
                    "> "
                } else {
                    "  "
                };
                (fit(&format!("{marker}{left}"), lw + rw + 1), String::new())
            }
        };
        let (sep_tx, sep_rx, sep_sum, blank) = match k {
            RowKey::Ends(_) => (" => ", " <= ", "<=> ", " ".repeat(lw)),
            RowKey::Owner(_) => (" =>", " <=", "<=>", " ".repeat(lw + rw + 1)),
        };
        let blank_right = match k {
            RowKey::Ends(_) => " ".repeat(rw),
            RowKey::Owner(_) => String::new(),
        };
        shown += 1;
        let c = &r.cumulative;
        let b = state.bar_span;
        match state.lines {
            LineMode::Two => {
                lines.push(Line {
                    text: format!(
                        "{l}{sep_tx}{rt}{}",
                        rates(pick(r, |x| x.tx), Some(c.tx_bytes))
                    ),
                    bar: bar(r.averages[b].tx),
                });
                lines.push(Line {
                    text: format!(
                        "{blank}{sep_rx}{blank_right}{}",
                        rates(pick(r, |x| x.rx), Some(c.rx_bytes))
                    ),
                    bar: bar(r.averages[b].rx),
                });
            }
            LineMode::Sent => lines.push(Line {
                text: format!(
                    "{l}{sep_tx}{rt}{}",
                    rates(pick(r, |x| x.tx), Some(c.tx_bytes))
                ),
                bar: bar(r.averages[b].tx),
            }),
            LineMode::Received => lines.push(Line {
                text: format!(
                    "{l}{sep_rx}{rt}{}",
                    rates(pick(r, |x| x.rx), Some(c.rx_bytes))
                ),
                bar: bar(r.averages[b].rx),
            }),
            LineMode::Sum => lines.push(Line {
                text: format!(
                    "{l}{sep_sum}{rt}{}",
                    rates(pick(r, Rate::total), Some(c.total_bytes()))
                ),
                bar: bar(r.averages[b].total()),
            }),
        }
    }
    // Rows fill what the scale (2 lines), the rule and the totals (4), the status and the
    // bottom line (2) leave.
    let room = height.saturating_sub(8);
    let per_row = if state.lines == LineMode::Two { 2 } else { 1 };
    let max_scroll = lines.len().saturating_sub(room) / per_row;
    // The process and container screens scroll to keep the cursor's row shown.
    let scroll = if state.showing_owners() {
        let rows_shown = (room / per_row).max(1);
        cursor.saturating_sub(rows_shown - 1)
    } else {
        state.scroll
    };
    let first = scroll.min(max_scroll) * per_row;
    let lines: Vec<Line> = lines.into_iter().skip(first).take(room).collect();

    let t = data.totals;
    let total_line = |name: &str, cum: u64, peak: f64, avg: [f64; 3], first: bool| {
        let (c, p, r) = if first {
            ("cum:", "peak:", "rates:")
        } else {
            ("", "", "")
        };
        let avg: String = avg
            .iter()
            .map(|v| format!("{:>COL$}", rate(*v, state)))
            .collect();
        format!(
            "{name:<7}{c:>5} {:>8}  {p:>5} {:>8}  {r:>6}{avg}",
            iftop_size(cum as f64, false),
            rate(peak, state)
        )
    };
    let totals = [
        total_line(
            "TX:",
            t.cumulative.tx_bytes,
            t.peak.tx,
            pick(t, |x| x.tx),
            true,
        ),
        total_line(
            "RX:",
            t.cumulative.rx_bytes,
            t.peak.rx,
            pick(t, |x| x.rx),
            false,
        ),
        total_line(
            "TOTAL:",
            t.cumulative.total_bytes(),
            t.peak_total,
            pick(t, Rate::total),
            false,
        ),
    ];

    // Most important first: a narrow terminal cuts the end.
    let mut status = vec![
        format!("netmon top {}", data.iface),
        if state.paused {
            "PAUSED".into()
        } else {
            "live".into()
        },
        match &state.drill {
            Some(o) => format!("{} › connections (Esc back)", owner_name(o)),
            None => state.grouping_name().to_string(),
        },
    ];
    if let Some(f) = &state.selection.filter {
        status.push(format!("filter {f}"));
    }
    for n in state.selection.net4.iter().chain(&state.selection.net6) {
        status.push(format!("net {n}"));
    }
    if let Some((entries, capacity)) = data.table
        && entries > 0
        && entries * 4 >= capacity as usize * 3
    {
        status.push(format!("flow table {entries}/{capacity}"));
    }
    if data.unattributed > 0 {
        status.push(format!(
            "{} in no flow (table full)",
            iftop_size(data.unattributed as f64, false)
        ));
    }
    status.push(format!(
        "sort {}{}",
        match state.sort {
            SortBy::Column(i) => ["2s", "10s", "40s"][i.min(2)],
            SortBy::Source => "source",
            SortBy::Destination => "destination",
        },
        if state.frozen { " (frozen)" } else { "" }
    ));
    if let Some(f) = &state.display_filter {
        status.push(format!("showing \"{f}\""));
    }
    status.push("h help".into());

    let bottom = match &state.prompt {
        Some(Prompt::Filter(t)) => Some(format!("filter: {t}_")),
        Some(Prompt::Display(t)) => Some(format!("show rows containing: {t}_")),
        None => state.message.clone(),
    };
    Screen {
        width,
        ruler: ruler.draw(width),
        lines,
        totals,
        status: fit(&printable(&status.join(" │ ")), width),
        bottom,
        help: state
            .help
            .then(|| HELP.iter().map(|s| s.to_string()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowCounters;

    fn rolling(rx: f64, tx: f64, cum_rx: u64, cum_tx: u64) -> Rolling {
        Rolling {
            averages: [Rate { rx, tx }; 3],
            peak: Rate { rx, tx },
            peak_total: rx + tx,
            cumulative: FlowCounters {
                rx_bytes: cum_rx,
                rx_packets: 0,
                tx_bytes: cum_tx,
                tx_packets: 0,
            },
        }
    }

    fn key(port: u16) -> RowKey {
        RowKey::Ends(Ends {
            local: Some("10.0.0.1".parse().unwrap()),
            local_port: Some(port),
            remote: Some("10.0.0.2".parse().unwrap()),
            remote_port: Some(443),
            protocol: Some(6),
        })
    }

    #[test]
    fn two_lines_per_row_with_rates_and_names() {
        let rows = vec![(key(40000), rolling(125_000.0, 12_500.0, 1_048_576, 10_240))];
        let totals = rolling(125_000.0, 12_500.0, 1_048_576, 10_240);
        let mut names = HashMap::new();
        names.insert("10.0.0.2".parse().unwrap(), "web.example".to_string());
        let services = Services::parse("https 443/tcp\n");
        let data = Data {
            iface: "eth0",
            rows: &rows,
            owners: &HashMap::new(),
            exited: &HashSet::new(),
            totals: &totals,
            unattributed: 0,
            table: Some((10, 1000)),
            names: &names,
            services: Some(&services),
        };
        let state = State {
            source_port: true,
            destination_port: true,
            ..State::default()
        };
        let s = screen(&data, &state, 100, 30);
        assert_eq!(s.lines.len(), 2);
        assert!(
            s.lines[0].text.starts_with("10.0.0.1:40000"),
            "{}",
            s.lines[0].text
        );
        assert!(
            s.lines[0].text.contains(" => web.example:https"),
            "{}",
            s.lines[0].text
        );
        assert!(
            s.lines[0]
                .text
                .trim_end()
                .ends_with("  97.7Kb  97.7Kb  97.7Kb"),
            "{}",
            s.lines[0].text
        );
        assert!(s.lines[1].text.contains(" <= "), "{}", s.lines[1].text);
        assert!(
            s.lines[1].text.trim_end().ends_with("977Kb"),
            "{}",
            s.lines[1].text
        );
        assert!(s.lines.iter().all(|l| l.text.chars().count() == 100));
        // 1 Mb/s on a 1 Mb scale fills the line; 100 Kb/s is four of five decades.
        assert_eq!(s.lines[1].bar, 100);
        assert_eq!(s.lines[0].bar, 80);
        assert!(
            s.totals[0].contains("cum:") && s.totals[0].contains("10.0KB"),
            "{}",
            s.totals[0]
        );
        assert!(s.totals[1].contains("1.00MB"), "{}", s.totals[1]);
        assert!(
            s.status.contains("netmon top eth0")
                && s.status.contains("connections")
                && s.status.contains("live")
        );
        // Numbers only when names are off; the scale's top is the peak rounded up: 1 Mb.
        let plain = State {
            names: false,
            services: false,
            ..state.clone()
        };
        let s = screen(&data, &plain, 100, 30);
        assert!(
            s.lines[0].text.contains(" => 10.0.0.2:443"),
            "{}",
            s.lines[0].text
        );
        assert!(s.ruler[0].trim_end().ends_with("1Mb"), "{:?}", s.ruler[0]);
        assert!(s.ruler[1].starts_with('└') && s.ruler[1].contains('┴'));
    }

    #[test]
    fn line_modes_cumulative_column_scroll_and_status() {
        let rows: Vec<_> = (0..30)
            .map(|i| (key(40000 + i), rolling(1000.0, 100.0, 5000, 500)))
            .collect();
        let totals = rolling(30_000.0, 3_000.0, 150_000, 15_000);
        let names = HashMap::new();
        let data = Data {
            iface: "eth0",
            rows: &rows,
            owners: &HashMap::new(),
            exited: &HashSet::new(),
            totals: &totals,
            unattributed: 4096,
            table: Some((900, 1000)),
            names: &names,
            services: None,
        };
        let mut state = State::default();
        let s = screen(&data, &state, 80, 24);
        assert_eq!(s.lines.len(), 16, "24 rows less 8 for the rest");
        state.lines = LineMode::Sum;
        state.cumulative = true;
        state.scroll = 100;
        let s = screen(&data, &state, 80, 24);
        assert_eq!(s.lines.len(), 16);
        let last = &s.lines[15].text;
        assert!(
            last.starts_with("10.0.0.1:40029 ") && last.contains("<=> 10.0.0.2:443"),
            "scrolled to the end: {last}"
        );
        assert!(
            s.lines[0].text.trim_end().ends_with("5.37KB"),
            "{}",
            s.lines[0].text
        );
        assert!(s.status.contains("4.00KB in no flow"), "{}", s.status);
        assert!(s.status.contains("flow table 900/1000"), "{}", s.status);
        state.paused = true;
        state.bars = false;
        let s = screen(&data, &state, 80, 24);
        assert!(s.status.contains("PAUSED"));
        assert!(s.lines.iter().all(|l| l.bar == 0));
    }

    #[test]
    fn the_scale_log_and_linear() {
        let state = State::default();
        let r = Ruler::new(&state, 3_000_000.0);
        assert_eq!(r.top, 10_000_000.0);
        assert_eq!(r.cells(10_000_000.0, 50), 50);
        assert_eq!(r.cells(1_000_000.0, 50), 40);
        assert_eq!(r.cells(100.0, 50), 0);
        let linear = Ruler::new(
            &State {
                scale: Scale::Linear,
                scale_max: Some(1_000_000.0),
                ..State::default()
            },
            0.0,
        );
        assert_eq!(linear.cells(250_000.0, 100), 25);
        let [labels, ticks] = linear.draw(60);
        assert!(
            labels.contains("250Kb") && labels.contains("1Mb"),
            "{labels}"
        );
        assert_eq!(ticks.matches('┴').count(), 4);
    }
}
