//! The `?` overlay: every key.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

/// The keys, as shown in the overlay and in docs/tui.md.
pub const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("Tab, Shift-Tab", "next, previous view"),
    ("1 2 3 4", "Overview, Findings, Sessions, Latency"),
    ("↑ ↓, j k", "move (scroll in a detail)"),
    ("PgUp PgDn, g G", "page, first, last"),
    ("Enter", "open the finding's or the session's detail"),
    ("← →, h l", "older, newer occurrence (finding detail)"),
    ("Esc", "back: close detail, help, filter"),
    ("/", "filter by path, address or kind"),
    ("s", "next sort column of the sessions table"),
    ("r", "reverse the sort (sessions), the order (findings)"),
    ("e", "export the selected finding or session (JSON Lines)"),
    ("w", "write a pcap of its connections (from -r or -w)"),
    ("mouse", "click: tab, row; again: detail; wheel: move"),
    ("p", "pause (replay stops; the view holds)"),
    ("?", "this help"),
];

pub fn render(f: &mut Frame, area: Rect) {
    let w = 72.min(area.width);
    let h = (KEYS.len() as u16 + 4).min(area.height);
    let r = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| Line::from(vec![Span::styled(format!(" {k:<16}"), key), Span::raw(*what)]))
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " Idle: amber from 75%, red from 90% of the idle boundary.",
        Style::new().fg(Color::DarkGray),
    ));
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(Block::bordered().title(" Keys (Esc closes) ")), r);
}
