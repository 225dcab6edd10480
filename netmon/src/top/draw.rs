//! Puts a [`Screen`] on the terminal with ratatui: the scale at the top, the rows with their
//! bars in reverse video as iftop draws them, the TX/RX/TOTAL block, the status line and the
//! prompt at the bottom. ratatui draws only the cells that changed, so the screen does not
//! flicker.

use super::view::Screen;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::Paragraph;

/// `text` with its first `bar` cells in reverse video.
fn barred(text: &str, bar: usize) -> Line<'static> {
    let n = text.chars().count();
    let padded = if bar > n {
        format!("{text}{}", " ".repeat(bar - n))
    } else {
        text.to_string()
    };
    let split = padded
        .char_indices()
        .nth(bar)
        .map_or(padded.len(), |(i, _)| i);
    let (on, off) = padded.split_at(split);
    Line::from(vec![
        Span::styled(
            on.to_string(),
            Style::new().add_modifier(Modifier::REVERSED),
        ),
        Span::raw(off.to_string()),
    ])
}

pub fn draw(f: &mut Frame, s: &Screen) {
    let [ruler, rows, rule, totals, status, bottom] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(
        Paragraph::new(Text::from(vec![
            Line::raw(s.ruler[0].clone()),
            Line::raw(s.ruler[1].clone()),
        ])),
        ruler,
    );
    let body: Vec<Line> = match &s.help {
        Some(help) => help.iter().map(|h| Line::raw(h.clone())).collect(),
        None => s.lines.iter().map(|l| barred(&l.text, l.bar)).collect(),
    };
    f.render_widget(Paragraph::new(Text::from(body)), rows);
    f.render_widget(Paragraph::new("─".repeat(usize::from(rule.width))), rule);
    f.render_widget(
        Paragraph::new(Text::from(
            s.totals
                .iter()
                .map(|t| Line::raw(t.clone()))
                .collect::<Vec<_>>(),
        )),
        totals,
    );
    f.render_widget(
        Paragraph::new(s.status.clone()).style(Style::new().add_modifier(Modifier::REVERSED)),
        status,
    );
    if let Some(b) = &s.bottom {
        f.render_widget(Paragraph::new(b.clone()), bottom);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::view::Line as ScreenLine;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen() -> Screen {
        Screen {
            width: 40,
            ruler: ["   1Kb      10Kb".into(), "└───┴───────┴".into()],
            lines: vec![
                ScreenLine {
                    text: "a => b   1Kb".into(),
                    bar: 4,
                },
                ScreenLine {
                    text: "  <=     2Kb".into(),
                    bar: 0,
                },
            ],
            totals: ["TX: 1".into(), "RX: 2".into(), "TOTAL: 3".into()],
            status: "netmon top eth0".into(),
            bottom: Some("filter: udp_".into()),
            help: None,
        }
    }

    fn rows_of(t: &Terminal<TestBackend>) -> Vec<String> {
        let b = t.backend().buffer();
        (0..b.area.height)
            .map(|y| {
                (0..b.area.width)
                    .map(|x| b[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect()
    }

    #[test]
    fn places_every_part_and_reverses_the_bar() {
        let mut t = Terminal::new(TestBackend::new(40, 12)).unwrap();
        t.draw(|f| draw(f, &screen())).unwrap();
        let rows = rows_of(&t);
        assert!(rows[0].starts_with("   1Kb      10Kb"));
        assert!(rows[1].starts_with("└───┴"));
        assert!(rows[2].starts_with("a => b   1Kb"));
        assert_eq!(rows[6], "─".repeat(40), "the rule above the totals");
        assert!(rows[7].starts_with("TX: 1") && rows[9].starts_with("TOTAL: 3"));
        assert!(rows[10].starts_with("netmon top eth0"));
        assert!(rows[11].starts_with("filter: udp_"));
        let b = t.backend().buffer();
        let reversed = |x: u16, y: u16| b[(x, y)].modifier.contains(Modifier::REVERSED);
        assert!(
            (0..4).all(|x| reversed(x, 2)) && !reversed(4, 2),
            "a 4-cell bar"
        );
        assert!(!reversed(0, 3));
        assert!(reversed(0, 10) && reversed(39, 10), "the status line");
    }

    #[test]
    fn help_replaces_the_rows_and_a_small_terminal_still_draws() {
        let mut s = screen();
        s.help = Some(vec!["h  this help".into()]);
        let mut t = Terminal::new(TestBackend::new(40, 12)).unwrap();
        t.draw(|f| draw(f, &s)).unwrap();
        assert!(rows_of(&t)[2].starts_with("h  this help"));
        let mut tiny = Terminal::new(TestBackend::new(10, 4)).unwrap();
        tiny.draw(|f| draw(f, &s)).unwrap();
        assert_eq!(barred("ab", 4).width(), 4, "a bar longer than its text");
    }
}
