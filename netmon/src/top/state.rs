//! What `netmon top` shows and how iftop's keys change it. Pure: keys in, state and an
//! [`Action`] out.

use crate::filter::{self, Selection};

/// A key, as the screen needs it (the terminal's events map onto these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Backspace,
    Up,
    Down,
    PageUp,
    PageDown,
    /// Ctrl-C: raw mode turns it into a key, not a signal.
    Interrupt,
}

/// iftop's `t`: two lines per row, or one line showing one direction or their sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineMode {
    Two,
    Sent,
    Received,
    Sum,
}

/// The order of the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    /// Sent + received over the 2 s, 10 s or 40 s column (index into [`crate::window::SPANS`]).
    Column(usize),
    /// The left end's name or address.
    Source,
    /// The right end's.
    Destination,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Log,
    Linear,
}

/// A line of text being typed at the bottom of the screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// `f`: a filter expression.
    Filter(String),
    /// `l`: a display filter on host names.
    Display(String),
}

/// What a key asks of the screen's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Draw again with the same data.
    Redraw,
    /// Rebuild the rows (grouping or filter changed), then draw.
    Regroup,
    /// Enter on a process or container screen: open the row under the cursor (the screen's
    /// owner knows the rows; it sets [`State::drill`]).
    Open,
    Quit,
}

/// What the rows are: flows (host pairs or connections, as the ports say), processes, or
/// containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Flows,
    Process,
    Container,
}

#[derive(Clone, Debug)]
pub struct State {
    pub show_source: bool,
    pub show_destination: bool,
    pub source_port: bool,
    pub destination_port: bool,
    pub names: bool,
    pub services: bool,
    pub lines: LineMode,
    /// `T`: a column with each row's cumulative bytes.
    pub cumulative: bool,
    pub bars: bool,
    /// Which average the bars show (index into the spans): iftop's default is 10 s.
    pub bar_span: usize,
    pub paused: bool,
    pub sort: SortBy,
    /// `o`: keep today's order; new rows go at the end.
    pub frozen: bool,
    /// `l`: only rows whose text contains this.
    pub display_filter: Option<String>,
    pub scale: Scale,
    /// `-m`: the scale's top, bits per second; `None`: the peak seen so far, rounded up.
    pub scale_max: Option<f64>,
    /// `-B`: rates in bytes per second.
    pub rate_bytes: bool,
    pub scroll: usize,
    pub help: bool,
    pub prompt: Option<Prompt>,
    /// `f`, `-f`, `-F`, `-G`.
    pub selection: Selection,
    /// A message for the status line (a refused filter, …), until the next key.
    pub message: Option<String>,
    pub group: Group,
    /// The process or container opened with Enter: its connections only, until Esc.
    pub drill: Option<super::rows::OwnerKey>,
    /// The highlighted row of a process or container screen, which Enter opens.
    pub cursor: usize,
}

impl Default for State {
    fn default() -> Self {
        Self {
            show_source: true,
            show_destination: true,
            source_port: false,
            destination_port: false,
            names: true,
            services: true,
            lines: LineMode::Two,
            cumulative: false,
            bars: true,
            bar_span: 1,
            paused: false,
            sort: SortBy::Column(0),
            frozen: false,
            display_filter: None,
            scale: Scale::Log,
            scale_max: None,
            rate_bytes: false,
            scroll: 0,
            help: false,
            prompt: None,
            selection: Selection::default(),
            message: None,
            group: Group::Flows,
            drill: None,
            cursor: 0,
        }
    }
}

impl State {
    /// Whether rows are connections (a port shown) or host pairs.
    pub fn by_connection(&self) -> bool {
        self.source_port || self.destination_port
    }

    /// Whether the rows are processes or containers (not an opened one's connections).
    pub fn showing_owners(&self) -> bool {
        self.group != Group::Flows && self.drill.is_none()
    }

    /// What the rows are, as the status line names them.
    pub fn grouping_name(&self) -> &'static str {
        match (self.drill.is_some(), self.group) {
            (true, _) => "connections",
            (false, Group::Process) => "processes",
            (false, Group::Container) => "containers",
            (false, Group::Flows) if self.by_connection() => "connections",
            (false, Group::Flows) => "host pairs",
        }
    }

    /// `g`: connection → host pair → process → container → connection.
    fn cycle_grouping(&mut self) {
        self.drill = None;
        self.cursor = 0;
        self.scroll = 0;
        match self.group {
            Group::Flows if self.by_connection() => {
                self.source_port = false;
                self.destination_port = false;
            }
            Group::Flows => self.group = Group::Process,
            Group::Process => self.group = Group::Container,
            Group::Container => {
                self.group = Group::Flows;
                self.source_port = true;
                self.destination_port = true;
            }
        }
    }

    /// Applies one key; `page` is how many rows a page scrolls.
    pub fn key(&mut self, k: Key, page: usize) -> Action {
        if let Some(p) = self.prompt.take() {
            return self.prompt_key(p, k);
        }
        self.message = None;
        if self.help && k != Key::Char('q') && k != Key::Interrupt {
            self.help = false;
            return Action::Redraw;
        }
        match k {
            Key::Char('q') | Key::Interrupt => return Action::Quit,
            Key::Char('h') | Key::Char('?') => self.help = true,
            Key::Char('n') => self.names = !self.names,
            Key::Char('N') => self.services = !self.services,
            // As in iftop, hiding an end merges the rows that differ only there.
            Key::Char('s') => {
                self.show_source = !self.show_source;
                return Action::Regroup;
            }
            Key::Char('d') => {
                self.show_destination = !self.show_destination;
                return Action::Regroup;
            }
            Key::Char('S') => {
                self.source_port = !self.source_port;
                return Action::Regroup;
            }
            Key::Char('D') => {
                self.destination_port = !self.destination_port;
                return Action::Regroup;
            }
            Key::Char('p') => {
                let on = !(self.source_port && self.destination_port);
                self.source_port = on;
                self.destination_port = on;
                return Action::Regroup;
            }
            Key::Char('g') => {
                self.cycle_grouping();
                return Action::Regroup;
            }
            Key::Char('t') => {
                self.lines = match self.lines {
                    LineMode::Two => LineMode::Sent,
                    LineMode::Sent => LineMode::Received,
                    LineMode::Received => LineMode::Sum,
                    LineMode::Sum => LineMode::Two,
                }
            }
            Key::Char('T') => self.cumulative = !self.cumulative,
            Key::Char('b') => self.bars = !self.bars,
            Key::Char('B') => self.bar_span = (self.bar_span + 1) % 3,
            Key::Char('P') => self.paused = !self.paused,
            Key::Char(c @ '1'..='3') => {
                self.sort = SortBy::Column(c as usize - '1' as usize);
                self.frozen = false;
            }
            Key::Char('<') => {
                self.sort = SortBy::Source;
                self.frozen = false;
            }
            Key::Char('>') => {
                self.sort = SortBy::Destination;
                self.frozen = false;
            }
            Key::Char('o') => self.frozen = !self.frozen,
            Key::Char('l') => {
                self.prompt = Some(Prompt::Display(
                    self.display_filter.clone().unwrap_or_default(),
                ))
            }
            Key::Char('f') => {
                self.prompt = Some(Prompt::Filter(
                    self.selection
                        .filter
                        .as_ref()
                        .map(|f| f.to_pcap())
                        .unwrap_or_default(),
                ))
            }
            Key::Char('L') => {
                self.scale = match self.scale {
                    Scale::Log => Scale::Linear,
                    Scale::Linear => Scale::Log,
                }
            }
            // On the process and container screens the keys move the cursor (the screen
            // scrolls to keep it shown); elsewhere they scroll.
            Key::Char('j') | Key::Down if self.showing_owners() => self.cursor += 1,
            Key::Char('k') | Key::Up if self.showing_owners() => {
                self.cursor = self.cursor.saturating_sub(1)
            }
            Key::PageDown if self.showing_owners() => self.cursor += page.max(1),
            Key::PageUp if self.showing_owners() => {
                self.cursor = self.cursor.saturating_sub(page.max(1))
            }
            Key::Char('j') | Key::Down => self.scroll += 1,
            Key::Char('k') | Key::Up => self.scroll = self.scroll.saturating_sub(1),
            Key::PageDown => self.scroll += page.max(1),
            Key::PageUp => self.scroll = self.scroll.saturating_sub(page.max(1)),
            Key::Enter if self.showing_owners() => return Action::Open,
            Key::Esc if self.drill.is_some() => {
                self.drill = None;
                self.scroll = 0;
                return Action::Regroup;
            }
            _ => {}
        }
        Action::Redraw
    }

    fn prompt_key(&mut self, p: Prompt, k: Key) -> Action {
        let (mut text, filter) = match p {
            Prompt::Filter(t) => (t, true),
            Prompt::Display(t) => (t, false),
        };
        match k {
            Key::Esc | Key::Interrupt => return Action::Redraw,
            Key::Enter if filter => {
                return match filter::parse(&text) {
                    Ok(f) => {
                        self.selection.filter = f;
                        self.scroll = 0;
                        Action::Regroup
                    }
                    Err(e) => {
                        self.message = Some(format!("filter not changed: {e}"));
                        Action::Redraw
                    }
                };
            }
            Key::Enter => {
                self.display_filter = (!text.trim().is_empty()).then(|| text.trim().to_string());
                self.scroll = 0;
                return Action::Redraw;
            }
            Key::Backspace => {
                text.pop();
            }
            Key::Char(c) => text.push(c),
            _ => {}
        }
        self.prompt = Some(if filter {
            Prompt::Filter(text)
        } else {
            Prompt::Display(text)
        });
        Action::Redraw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &mut State, text: &str) {
        for c in text.chars() {
            s.key(Key::Char(c), 10);
        }
    }

    #[test]
    fn iftops_keys() {
        let mut s = State::default();
        assert_eq!(s.key(Key::Char('T'), 10), Action::Redraw);
        assert!(s.cumulative);
        assert_eq!(s.key(Key::Char('p'), 10), Action::Regroup);
        assert!(s.source_port && s.destination_port && s.by_connection());
        s.key(Key::Char('S'), 10);
        assert!(!s.source_port && s.destination_port);
        s.key(Key::Char('g'), 10);
        assert!(
            !s.by_connection(),
            "g from a connection view goes to host pairs"
        );
        s.key(Key::Char('3'), 10);
        assert_eq!(s.sort, SortBy::Column(2));
        s.key(Key::Char('<'), 10);
        assert_eq!(s.sort, SortBy::Source);
        for want in [
            LineMode::Sent,
            LineMode::Received,
            LineMode::Sum,
            LineMode::Two,
        ] {
            s.key(Key::Char('t'), 10);
            assert_eq!(s.lines, want);
        }
        s.key(Key::Char('B'), 10);
        assert_eq!(s.bar_span, 2);
        s.key(Key::PageDown, 10);
        s.key(Key::Char('k'), 10);
        assert_eq!(s.scroll, 9);
        s.key(Key::Char('P'), 10);
        assert!(s.paused);
        assert_eq!(s.key(Key::Char('q'), 10), Action::Quit);
        assert_eq!(s.key(Key::Interrupt, 10), Action::Quit);
    }

    #[test]
    fn a_filter_typed_with_f_applies_or_is_refused_with_its_word() {
        let mut s = State::default();
        s.key(Key::Char('f'), 10);
        typed(&mut s, "udp and dst port 53");
        assert_eq!(s.key(Key::Enter, 10), Action::Regroup);
        assert_eq!(
            s.selection.filter.as_ref().unwrap().to_pcap(),
            "udp and dst port 53"
        );
        // `f` starts from the current filter; a bad one leaves it as it was.
        s.key(Key::Char('f'), 10);
        assert_eq!(s.prompt, Some(Prompt::Filter("udp and dst port 53".into())));
        typed(&mut s, " and ether");
        assert_eq!(s.key(Key::Enter, 10), Action::Redraw);
        assert!(
            s.message.as_ref().unwrap().contains("\"ether\""),
            "{:?}",
            s.message
        );
        assert_eq!(
            s.selection.filter.as_ref().unwrap().to_pcap(),
            "udp and dst port 53"
        );
        // Esc leaves the prompt; an empty filter clears it.
        s.key(Key::Char('f'), 10);
        s.key(Key::Esc, 10);
        assert!(s.prompt.is_none());
        s.key(Key::Char('f'), 10);
        for _ in 0..30 {
            s.key(Key::Backspace, 10);
        }
        s.key(Key::Enter, 10);
        assert!(s.selection.filter.is_none());
    }

    #[test]
    fn a_display_filter_and_help() {
        let mut s = State::default();
        s.key(Key::Char('l'), 10);
        typed(&mut s, "example");
        s.key(Key::Enter, 10);
        assert_eq!(s.display_filter.as_deref(), Some("example"));
        s.key(Key::Char('h'), 10);
        assert!(s.help);
        // Any key leaves the help, without acting.
        s.key(Key::Char('T'), 10);
        assert!(!s.help && !s.cumulative);
    }
}
