//! Sessions: open WebSocket sessions first, then recent closed ones. Only
//! the visible rows are built, so 10,000 open sessions cost the same per
//! frame as ten. Idle time turns amber at 75% and red at 90% of the idle
//! timeout boundary.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};

use crate::record::{Dirs, Role};
use crate::tui::app::{App, FRAMES_PER_CONNECTION, SessionLine, SortBy};
use crate::tui::ui::{
    fmt_bytes, fmt_count, fmt_secs, fmt_tod, idle_style, scroll_offset, severity_label, severity_style,
};

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
    let (words, src) = app.boundary_words();
    let title = format!(
        " Sessions: {open} open · {} closed · sort {}{} · {words} ({src}) ",
        app.closed_session_count(),
        app.sort.name(),
        if app.sort_reverse { " reversed" } else { "" },
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
    // Rows start under the header line.
    let rows_area = Rect { y: inner.y + 1, height: inner.height.saturating_sub(1), ..inner };
    app.list_hits.set(Some((rows_area, off, 1)));
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
            let ascending = matches!(app.sort, SortBy::Path | SortBy::Client) != app.sort_reverse;
            let arrow = if ascending { "▲" } else { "▼" };
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

/// One event of a session's life, for its timeline.
struct Event {
    ts: f64,
    what: String,
}

/// What happened to a session, in time order: the handshake on each hop
/// (from its handshake record), the upgrade, each hop's last frame and
/// its first FIN or RST, the close and the end.
fn timeline(app: &App, s: &SessionLine) -> Vec<Event> {
    let mut ev = Vec::new();
    let h = s.handshake.and_then(|id| app.handshakes.get(&id));
    if let Some(h) = h {
        for (role, hop) in [("client", &h.client), ("upstream", &h.upstream)] {
            let Some(hop) = hop else { continue };
            if let Some(t) = hop.request_ts {
                let m = hop.method.as_deref().unwrap_or("request");
                let what = if hop.encrypted { "encrypted request".to_string() } else { format!("{m} {}", h.path) };
                ev.push(Event { ts: t, what: format!("{what} on the {role} hop") });
            }
            if let (Some(t), Some(st)) = (hop.response_ts, hop.status) {
                ev.push(Event { ts: t, what: format!("{st} on the {role} hop") });
            }
        }
    }
    ev.push(Event { ts: s.start, what: "upgraded: frames from here".into() });
    // `-v`: the frames themselves (the newest of each hop).
    for (key, hop_role) in [(s.client_key, Role::Client), (s.upstream_key, Role::Upstream)] {
        let Some(flow) = key else { continue };
        let role = if hop_role == Role::Client { "client" } else { "upstream" };
        let stream =
            s.record.as_ref().and_then(|r| r.hops.iter().find(|h| h.role == hop_role)).and_then(|h| h.stream_id);
        let Some((frames, _)) = app.frames.get(&flow) else { continue };
        for fr in frames.iter().filter(|fr| stream.is_none() || fr.stream_id == stream) {
            let dir = if fr.dir == crate::proto::Dir::ToServer { "to server" } else { "to client" };
            let mut what =
                format!("{} {} {dir} on the {role} hop", crate::proto::ws::opcode::name(fr.opcode), fmt_bytes(fr.len));
            if let Some(c) = fr.close_code {
                what.push_str(&format!(", code {c}"));
            }
            if let Some(r) = fr.close_reason.as_deref().filter(|r| !r.is_empty()) {
                what.push_str(&format!(" \"{r}\""));
            }
            ev.push(Event { ts: fr.ts, what });
        }
    }
    if let Some(r) = &s.record {
        for hop in &r.hops {
            let label = format!("{} hop", hop.role);
            if let Some(t) = hop.last_data {
                ev.push(Event { ts: t, what: format!("last frame on the {label}") });
            }
            if let Some(t) = hop.closed_at {
                let how = hop.closed_with.map_or("closed".to_string(), |c| c.to_string().to_uppercase());
                let by = hop.closed_by.map_or(String::new(), |b| format!(" by its {b}"));
                let reset = hop.reset.map_or(String::new(), |r| format!(" ({r})"));
                ev.push(Event { ts: t, what: format!("{how}{by} on the {label}{reset}") });
            }
        }
        let end = if r.open { "capture ended, session still open" } else { "session ended" };
        ev.push(Event { ts: r.end, what: end.into() });
    } else {
        ev.push(Event { ts: s.last_activity, what: "last frame so far".into() });
    }
    ev.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    ev
}

/// A hop of the session, for its box: flow, its handshake, frames, closes.
fn hop_lines(app: &App, s: &SessionLine, role: Role) -> Vec<Line<'static>> {
    let dim = Style::new().fg(Color::DarkGray);
    let kv = |k: &str, v: String| Line::from(vec![Span::styled(format!("{k:<13}"), dim), Span::raw(v)]);
    let mut out = Vec::new();
    let h = s.handshake.and_then(|id| app.handshakes.get(&id));
    let hs_hop = h.and_then(|h| if role == Role::Client { h.client.as_ref() } else { h.upstream.as_ref() });
    let rec_hop = s.record.as_ref().and_then(|r| r.hops.iter().find(|x| x.role == role));
    let seen = if role == Role::Client { s.client_key } else { s.upstream_key };
    let flow = rec_hop.map(|x| x.flow).or(hs_hop.map(|x| x.flow)).or(seen);
    let Some(flow) = flow else {
        out.push(Line::styled("not in the capture", dim));
        return out;
    };
    out.push(Line::from(flow.to_string()));
    if let Some(hop) = hs_hop {
        let latency = h.and_then(|h| if role == Role::Client { h.latency_ms.client } else { h.latency_ms.upstream });
        let status = match (hop.status, hop.end) {
            _ if hop.encrypted => "encrypted, not read".to_string(),
            (Some(st), _) => st.to_string(),
            (None, Some(e)) => format!("no response ({e})"),
            (None, None) => "no response".into(),
        };
        let lat = latency.map_or(String::new(), |ms| format!(" in {ms:.1} ms"));
        out.push(kv("handshake", format!("{status}{lat}")));
        if let Some(t) = &hop.tls {
            let how = if t.decrypted { "decrypted" } else { "not decrypted" };
            out.push(kv("TLS", format!("{} {how}", t.version.unwrap_or("TLS"))));
        }
        if let Some(id) = hop.stream_id {
            out.push(kv("HTTP/2 stream", id.to_string()));
        }
    }
    match rec_hop {
        Some(x) => {
            out.push(kv("frames", format!("{} to server, {} to client", x.frames.to_server, x.frames.to_client)));
            out.push(kv("bytes", format!("{} / {}", fmt_bytes(x.bytes.to_server), fmt_bytes(x.bytes.to_client))));
            let code = |c: Option<u16>| {
                c.map_or("none".to_string(), |c| if c == 0 { "no code".into() } else { c.to_string() })
            };
            let (up, down) = (x.close_frames.to_server, x.close_frames.to_client);
            let closes = if up == down {
                format!("{} both ways", code(up))
            } else {
                format!("{} to server, {} to client", code(up), code(down))
            };
            out.push(kv("close frames", closes));
            if let (Some(w), Some(b)) = (x.closed_with, x.closed_by) {
                out.push(kv("TCP close", format!("{} by its {b}", w.to_string().to_uppercase())));
            }
        }
        None if role == Role::Client || s.upstream_flow.is_some() => {
            out.push(kv("frames", format!("{} to server, {} to client", s.frames.to_server, s.frames.to_client)));
        }
        None => {}
    }
    out.push(kv("community id", crate::flow::key::community_id(flow, crate::record::COMMUNITY_ID_SEED)));
    out
}

/// Enter on a session: both hops side by side, the handshake, the
/// timeline of frames and closes, the close, and the findings it belongs
/// to. `↑`/`↓` scroll the lower part.
pub fn render_detail(f: &mut Frame, app: &App, area: Rect) {
    let Some(s) = app.detail_session_line() else {
        let msg = "That session is no longer kept (only the last 1000 closed ones are). Esc goes back.";
        f.render_widget(Paragraph::new(msg), area);
        return;
    };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let dim = Style::new().fg(Color::DarkGray);
    let now = app.now();
    let state = match (&s.record, s.open) {
        (Some(r), _) if r.open => "open at the end of the capture".to_string(),
        (Some(_), _) => format!("closed after {}", fmt_secs(s.age(now))),
        (None, _) => format!("open for {}", fmt_secs(s.age(now))),
    };
    let h = s.handshake.and_then(|id| app.handshakes.get(&id));
    let mut head = vec![Line::from(vec![
        Span::styled(format!("Session #{} ", s.id), bold),
        Span::styled(s.path.clone(), Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)),
        Span::raw(format!("  {state}")),
    ])];
    if let Some(h) = h {
        let mut v = vec![Span::styled("handshake ", dim), Span::raw(format!("#{} {}", h.id, h.outcome.name()))];
        // What joins it to the proxy's log, as the text output says it
        // (request ids escaped there: the records' escaping leaves them).
        let join = crate::sink::text::JoinText { join: &h.join, remote_always: true };
        if !join.is_empty() {
            v.push(Span::raw(format!("  {join}")));
        }
        head.push(Line::from(v));
    }
    // The head wraps (request ids are long): as many rows as it takes,
    // at most 4.
    let w = usize::from(area.width.max(1));
    let head_h = head.iter().map(|l| l.width().max(1).div_ceil(w)).sum::<usize>().min(4) as u16;
    let hops_h = 10u16.min(area.height.saturating_sub(4));
    let [top, hops, rest] =
        Layout::vertical([Constraint::Length(head_h), Constraint::Length(hops_h), Constraint::Min(0)]).areas(area);
    f.render_widget(Paragraph::new(head).wrap(Wrap { trim: false }), top);
    let [left, right] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(hops);
    for (r, role, title) in [(left, Role::Client, " Client hop "), (right, Role::Upstream, " Upstream hop ")] {
        let p =
            Paragraph::new(hop_lines(app, s, role)).block(Block::bordered().title(title)).wrap(Wrap { trim: false });
        f.render_widget(p, r);
    }

    // Below: the timeline, the close, the findings.
    let mut lines = Vec::new();
    lines.push(Line::styled("Timeline", bold));
    let t0 = h.and_then(|h| h.client.as_ref().or(h.upstream.as_ref())).and_then(|x| x.request_ts).unwrap_or(s.start);
    for e in timeline(app, s) {
        lines.push(Line::from(vec![
            Span::styled(format!("  {} ", fmt_tod(e.ts)), dim),
            Span::styled(format!("{:>9} ", format!("+{}", fmt_secs(e.ts - t0))), dim),
            Span::raw(e.what),
        ]));
    }
    let kept: u64 = s.flows.iter().filter_map(|f| app.frames.get(f)).map(|(v, _)| v.len() as u64).sum();
    let seen: u64 = s.flows.iter().filter_map(|f| app.frames.get(f)).map(|(_, n)| *n).sum();
    if seen == 0 {
        lines.push(Line::styled("  (frames one by one: run the dashboard with -v)", dim));
    } else if kept < seen {
        lines.push(Line::styled(
            format!("  (the last {kept} of {seen} frames; {FRAMES_PER_CONNECTION} per hop are kept)"),
            dim,
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Close", bold));
    match &s.record {
        Some(r) => {
            lines.push(Line::raw(format!("  {}", crate::tui::rows::close_reason(r))));
            let c = &r.close;
            if let Some(idle) = c.idle_s.filter(|_| !r.open && c.how != crate::record::CloseHow::CloseFrame) {
                let (words, src) = app.boundary_words();
                lines.push(Line::raw(format!(
                    "  idle {idle:.1} s before it; the expected idle cut is the {words} ({src})"
                )));
            }
            if let Some(hb) = &r.heartbeat {
                lines.push(Line::raw(format!("  heartbeat: {} {} every {:.1} s", hb.from, hb.kind, hb.interval_s)));
            }
        }
        None => {
            let idle = s.idle(now).unwrap_or(0.0);
            let (words, src) = app.boundary_words();
            lines.push(Line::from(vec![
                Span::raw("  open, idle "),
                Span::styled(fmt_secs(idle), idle_style(idle, app.boundary_s)),
                Span::raw(format!(" of the {words} ({src})")),
            ]));
        }
    }
    lines.push(Line::raw(""));
    let findings = app.findings_of_session(s);
    lines.push(Line::styled(format!("Findings ({})", findings.len()), bold));
    if findings.is_empty() {
        lines.push(Line::styled("  none about this session or its handshake", dim));
    }
    for x in findings {
        lines.push(Line::from(vec![
            Span::raw("  "),
            Span::styled(severity_label(x.severity), severity_style(x.severity)),
            Span::styled(format!(" {}", x.kind), bold),
            Span::styled(format!("  {}", fmt_tod(x.ts)), dim),
        ]));
        lines.push(Line::raw(format!("    {}", x.message)));
    }
    let block = Block::new().borders(ratatui::widgets::Borders::TOP).title(" Timeline, close, findings ");
    let p = Paragraph::new(lines).block(block).wrap(Wrap { trim: false }).scroll((app.detail_scroll, 0));
    f.render_widget(p, rest);
}
