//! Sessions: open WebSocket sessions first, then recent closed ones. Only
//! the visible rows are built, so 10,000 open sessions cost the same per
//! frame as ten. Idle time turns amber at 75% and red at 90% of the idle
//! timeout boundary.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use crate::record::Dirs;
use crate::tui::app::{App, SessionLine, SortBy};
use crate::tui::ui::{fmt_bytes, fmt_count, fmt_secs, fmt_timeout, idle_style, scroll_offset};

/// Columns, by what the width allows.
#[derive(Clone, Copy, PartialEq)]
enum Col {
    Client,
    ClientFlow,
    Upstream,
    UpstreamFlow,
    Path,
    Age,
    Idle,
    Frames,
    Bytes,
    Close,
}

impl Col {
    fn title(self) -> &'static str {
        match self {
            Col::Client => "Client",
            Col::ClientFlow => "Client flow",
            Col::Upstream => "Upstream",
            Col::UpstreamFlow => "Upstream flow",
            Col::Path => "Path",
            Col::Age => "Age",
            Col::Idle => "Idle",
            Col::Frames => "Frames↑/↓",
            Col::Bytes => "Bytes ↑/↓",
            Col::Close => "Close",
        }
    }

    fn width(self, table_width: u16) -> Constraint {
        match self {
            Col::Client | Col::Upstream => Constraint::Length(21),
            Col::ClientFlow | Col::UpstreamFlow => Constraint::Length(43),
            Col::Path if table_width >= 110 => Constraint::Length(16),
            Col::Path => Constraint::Length(8),
            Col::Age | Col::Idle => Constraint::Length(5),
            Col::Frames => Constraint::Length(9),
            Col::Bytes => Constraint::Length(11),
            Col::Close => Constraint::Min(6),
        }
    }

    fn sort(self) -> Option<SortBy> {
        match self {
            Col::Client | Col::ClientFlow => Some(SortBy::Client),
            Col::Path => Some(SortBy::Path),
            Col::Age => Some(SortBy::Age),
            Col::Idle => Some(SortBy::Idle),
            Col::Frames => Some(SortBy::Frames),
            Col::Bytes => Some(SortBy::Bytes),
            _ => None,
        }
    }
}

fn columns(width: u16) -> &'static [Col] {
    use Col::*;
    if width >= 160 {
        &[ClientFlow, UpstreamFlow, Path, Age, Idle, Frames, Bytes, Close]
    } else if width >= 110 {
        &[Client, Upstream, Path, Age, Idle, Frames, Bytes, Close]
    } else {
        &[Client, Path, Age, Idle, Frames, Bytes, Close]
    }
}

fn pair(d: Dirs, f: fn(u64) -> String) -> String {
    format!("{}/{}", f(d.to_server), f(d.to_client))
}

fn cell(s: &SessionLine, c: Col, now: f64, boundary: f64) -> Cell<'static> {
    let flow = |f: &Option<String>| f.clone().unwrap_or_else(|| "-".into());
    match c {
        Col::Client => Cell::from(s.client.map_or("-".into(), |e| e.to_string())),
        Col::ClientFlow => Cell::from(flow(&s.client_flow)),
        Col::Upstream => Cell::from(s.upstream.map_or("-".into(), |e| e.to_string())),
        Col::UpstreamFlow => Cell::from(flow(&s.upstream_flow)),
        Col::Path => Cell::from(s.path.clone()),
        Col::Age => Cell::from(fmt_secs(s.age(now))),
        Col::Idle => match s.idle(now) {
            Some(i) => Cell::from(Span::styled(fmt_secs(i), idle_style(i, boundary))),
            None => Cell::from("-"),
        },
        Col::Frames => Cell::from(pair(s.frames, fmt_count)),
        Col::Bytes => Cell::from(pair(s.bytes, fmt_bytes)),
        Col::Close => match &s.close {
            None => Cell::from(Span::styled("open", Style::new().fg(Color::Green))),
            Some(r) => Cell::from(r.clone()),
        },
    }
}

pub fn render(f: &mut Frame, app: &App, area: Rect) {
    let [table_area, foot] = Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(area);
    let open = app.open_session_count();
    let shown = app.shown_sessions();
    let boundary_src = if app.snap.idle_boundary.is_some() { "" } else { " default" };
    let title = format!(
        " Sessions: {open} open · {} closed · sort {} · timeout {}{boundary_src} ",
        app.closed_session_count(),
        app.sort.name(),
        fmt_timeout(app.boundary_s),
    );
    let mut block = Block::bordered().title(title);
    if shown > 0 {
        block = block.title_bottom(Line::from(format!(" row {}/{shown} ", app.session_sel + 1)).right_aligned());
    }
    let inner = block.inner(table_area);
    f.render_widget(block, table_area);
    if shown == 0 {
        let msg = if app.filter.is_empty() {
            "No WebSocket sessions yet.".to_string()
        } else {
            format!("No sessions match the filter '{}'.", app.filter)
        };
        f.render_widget(Paragraph::new(msg), inner);
        return;
    }
    let cols = columns(inner.width);
    let height = inner.height.saturating_sub(1) as usize;
    app.page.set(height.max(1));
    let off = scroll_offset(app.session_offset.get(), app.session_sel, height, shown);
    app.session_offset.set(off);
    let now = app.now();
    let end = (off + height).min(shown);
    let rows: Vec<Row> = app
        .shown_range(off..end)
        .map(|s| {
            let r = Row::new(cols.iter().map(|c| cell(s, *c, now, app.boundary_s)));
            if s.open { r } else { r.style(Style::new().fg(Color::DarkGray)) }
        })
        .collect();
    let header = Row::new(cols.iter().map(|c| {
        let t = if c.sort() == Some(app.sort) {
            let arrow = if matches!(app.sort, SortBy::Path | SortBy::Client) { "▲" } else { "▼" };
            format!("{}{arrow}", c.title())
        } else {
            c.title().to_string()
        };
        Cell::from(t)
    }))
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let table = Table::new(rows, cols.iter().map(|c| c.width(inner.width)))
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(app.session_sel - off));
    f.render_stateful_widget(table, inner, &mut state);

    // The selected session in full: both flows and the close reason.
    if let Some(s) = app.selected_session() {
        let dim = Style::new().fg(Color::DarkGray);
        let lines = vec![
            Line::from(vec![
                Span::styled(format!(" #{} {} ", s.id, s.path), Style::new().add_modifier(Modifier::BOLD)),
                Span::styled(" client ", dim),
                Span::raw(s.client_flow.clone().unwrap_or_else(|| "-".into())),
            ]),
            Line::from(vec![
                Span::styled(" upstream ", dim),
                Span::raw(s.upstream_flow.clone().unwrap_or_else(|| "-".into())),
                Span::styled("  ", dim),
                match &s.close_detail {
                    Some(c) => Span::raw(c.clone()),
                    None => Span::styled("open", Style::new().fg(Color::Green)),
                },
            ]),
        ];
        f.render_widget(Paragraph::new(lines), foot);
    }
}
