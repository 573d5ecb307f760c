//! Overview: traffic, handshakes by outcome, the upgrade success rate over
//! time, open sessions, findings by kind, capture drops.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline, SparklineBar};

use crate::record::{FindingKind, Severity};
use crate::tui::app::App;
use crate::tui::feed::SourceKind;
use crate::tui::ui::{AMBER, fmt_bytes, fmt_count, fmt_secs, fmt_tod, severity_label, severity_style};

pub fn render(f: &mut Frame, app: &App, area: Rect) {
    // One more traffic line when HTTP/2 was seen.
    let top_h = if app.snap.summary.h2.is_some() { 9 } else { 8 };
    let [top, spark, bottom] =
        Layout::vertical([Constraint::Length(top_h), Constraint::Length(5), Constraint::Min(4)]).areas(area);
    let [traffic, hs] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let [sess, kinds] = Layout::horizontal([Constraint::Length(38), Constraint::Min(20)]).areas(bottom);
    f.render_widget(traffic_box(app), traffic);
    f.render_widget(handshakes_box(app), hs);
    render_sparkline(f, app, spark);
    f.render_widget(sessions_box(app), sess);
    f.render_widget(kinds_box(app, kinds.height.saturating_sub(2) as usize), kinds);
}

/// A count and its noun, singular for one: "1 gap", "3 gaps".
fn counted(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{} {noun}s", fmt_count(n)) }
}

fn label(s: &str) -> Span<'static> {
    Span::styled(format!("{s:<12}"), Style::new().fg(Color::DarkGray))
}

fn traffic_box(app: &App) -> Paragraph<'static> {
    let s = &app.snap.summary;
    let r = &s.reassembly;
    let drops = match (&app.snap.capture, &app.source.kind) {
        (Some(c), _) => {
            let n = |v: Option<u64>| v.map_or("-".to_string(), fmt_count);
            let dropped =
                c.dropped_kernel.unwrap_or(0) + c.dropped_interface.unwrap_or(0) + c.dropped_queue.unwrap_or(0);
            let style =
                if dropped > 0 { Style::new().fg(Color::Red).add_modifier(Modifier::BOLD) } else { Style::new() };
            Span::styled(
                format!("kernel {}  if {}  queue {}", n(c.dropped_kernel), n(c.dropped_interface), n(c.dropped_queue)),
                style,
            )
        }
        (None, SourceKind::Live) => Span::raw("-"),
        (None, _) if memory_losses(s) > 0 => Span::raw(""),
        (None, _) => Span::styled("none (file)", Style::new().fg(Color::DarkGray)),
    };
    // What the memory budget gave up (connections evicted or not followed,
    // buffers shed), next to the capture drops: both are blind spots.
    let m = &s.memory;
    let sep = if drops.content.is_empty() { "" } else { "  " };
    let losses = (memory_losses(s) > 0).then(|| {
        Span::styled(
            format!(
                "{sep}evicted {}  shed {}",
                fmt_count(m.evicted.total() + m.dropped_connections),
                fmt_count(m.shed_connections)
            ),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )
    });
    let time = match (s.first_ts, s.last_ts) {
        (Some(a), Some(b)) => format!("{} +{}", fmt_tod(a), fmt_secs(b - a)),
        _ => "-".into(),
    };
    let mut lines = vec![
        Line::from(vec![label("Packets"), Span::raw(format!("{} ({})", fmt_count(s.packets), fmt_bytes(s.bytes)))]),
        Line::from(vec![
            label("TCP packets"),
            Span::raw(format!("{:<9}", fmt_count(s.tcp_packets))),
            Span::styled("flows ", Style::new().fg(Color::DarkGray)),
            Span::raw(fmt_count(s.flows)),
        ]),
        Line::from(http_and_tls(s)),
        Line::from(vec![
            label("Reassembly"),
            Span::styled(
                format!("{}  {} retrans", counted(r.gaps, "gap"), fmt_count(r.retransmits)),
                if r.gaps > 0 { Style::new().fg(AMBER) } else { Style::new() },
            ),
        ]),
        Line::from([label("Drops"), drops].into_iter().chain(losses).collect::<Vec<_>>()),
        Line::from(vec![label("Time"), Span::raw(time)]),
    ];
    if let Some(h) = &s.h2 {
        lines.insert(3, h2_line(h));
    }
    Paragraph::new(lines).block(Block::bordered().title(" Traffic "))
}

/// Connections and buffers the memory budget gave up.
fn memory_losses(s: &crate::record::Summary) -> u64 {
    let m = &s.memory;
    m.evicted.total() + m.dropped_connections + m.shed_connections
}

/// HTTP requests, and when TLS was seen how many of its connections were
/// decrypted (amber when some were not: their hops are inferred).
fn http_and_tls(s: &crate::record::Summary) -> Vec<Span<'static>> {
    let mut v = vec![label("HTTP reqs"), Span::raw(format!("{:<9}", fmt_count(s.http_requests)))];
    if let Some(t) = &s.tls {
        v.push(Span::styled("TLS ", Style::new().fg(Color::DarkGray)));
        let missing: u64 = t.not_decrypted.values().sum();
        let style = if missing > 0 { Style::new().fg(AMBER) } else { Style::new() };
        let mut text = format!("{}/{} decrypted", fmt_count(t.decrypted), fmt_count(t.connections));
        if let Some((why, _)) = t.not_decrypted.iter().max_by_key(|(_, n)| **n) {
            text += &format!(" ({why})");
        }
        v.push(Span::styled(text, style));
    }
    v
}

/// HTTP/2 client hops: connections, streams, WebSocket streams (RFC 8441).
fn h2_line(h: &crate::record::H2Summary) -> Line<'static> {
    Line::from(vec![
        label("HTTP/2"),
        Span::raw(format!(
            "{}  {}  {} WebSocket",
            counted(h.connections, "conn"),
            counted(h.streams, "stream"),
            fmt_count(h.websocket_streams)
        )),
    ])
}

fn handshakes_box(app: &App) -> Paragraph<'static> {
    let h = &app.snap.summary.handshakes;
    let row = |name: &str, n: u64, bad: Option<Color>| {
        let style = match bad {
            Some(c) if n > 0 => Style::new().fg(c).add_modifier(Modifier::BOLD),
            _ => Style::new(),
        };
        Line::from(vec![label(name), Span::styled(fmt_count(n), style)])
    };
    let rate = if h.total > 0 {
        let pct = h.upgraded as f64 * 100.0 / h.total as f64;
        let c = if pct >= 99.0 {
            Color::Green
        } else if pct >= 90.0 {
            AMBER
        } else {
            Color::Red
        };
        Span::styled(format!("{pct:.1}%"), Style::new().fg(c).add_modifier(Modifier::BOLD))
    } else {
        Span::raw("-")
    };
    let lines = vec![
        Line::from(vec![label("Total"), Span::raw(fmt_count(h.total))]),
        row("Upgraded", h.upgraded, Some(Color::Green)),
        row("Rejected", h.rejected, Some(Color::Red)),
        row("Failed", h.failed, Some(Color::Red)),
        row("Incomplete", h.incomplete, Some(AMBER)),
        Line::from(vec![label("Success"), rate]),
    ];
    Paragraph::new(lines).block(Block::bordered().title(" Handshakes "))
}

fn render_sparkline(f: &mut Frame, app: &App, area: Rect) {
    let width = area.width.saturating_sub(2) as usize;
    let bucket = app.success_bucket(width);
    let series = app.success_series(bucket, width);
    let latest = series.iter().rev().flatten().next().copied();
    let per = fmt_secs(bucket as f64);
    let title = match latest {
        Some(v) => format!(" Upgrade success rate, % per {per} · latest {v}% "),
        None => format!(" Upgrade success rate, % per {per} · no handshakes yet "),
    };
    // Heights are pad + percent, so a bucket at 0% still shows a (red)
    // bar of one eighth of a row; buckets without handshakes stay empty.
    let rows = u64::from(area.height.saturating_sub(2).max(1));
    let pad = 100u64.div_ceil(8 * rows - 1) + 1;
    let bars: Vec<SparklineBar> = series
        .iter()
        .map(|v| {
            let color = match v {
                Some(p) if *p >= 99 => Color::Green,
                Some(p) if *p >= 90 => AMBER,
                _ => Color::Red,
            };
            SparklineBar::from(v.map(|p| p + pad)).style(Some(Style::new().fg(color)))
        })
        .collect();
    let spark = Sparkline::default()
        .data(bars)
        .max(100 + pad)
        .absent_value_symbol("·")
        .absent_value_style(Style::new().fg(Color::DarkGray))
        .block(Block::bordered().title(title));
    f.render_widget(spark, area);
}

fn sessions_box(app: &App) -> Paragraph<'static> {
    let s = &app.snap.summary;
    let (words, src) = app.boundary_words();
    let boundary = format!("{words} ({src})");
    let warn = |n: usize, c: Color| {
        if n > 0 { Style::new().fg(c).add_modifier(Modifier::BOLD) } else { Style::new() }
    };
    let lines = vec![
        Line::from(vec![label("Open"), Span::raw(fmt_count(app.open_session_count() as u64))]),
        Line::from(vec![label("Ended"), Span::raw(fmt_count(s.sessions))]),
        Line::from(vec![label("Idle ≥75%"), Span::styled(app.idle_amber.to_string(), warn(app.idle_amber, AMBER))]),
        Line::from(vec![label("Idle ≥90%"), Span::styled(app.idle_red.to_string(), warn(app.idle_red, Color::Red))]),
        Line::from(vec![label("Idle cut"), Span::raw(boundary)]),
    ];
    Paragraph::new(lines).block(Block::bordered().title(" WebSocket sessions "))
}

fn kinds_box(app: &App, rows: usize) -> Paragraph<'static> {
    let mut kinds: Vec<(FindingKind, u64, Severity)> = app
        .snap
        .summary
        .findings
        .iter()
        .map(|(k, n)| (*k, *n, app.kind_severity.get(k).copied().unwrap_or(Severity::Info)))
        .collect();
    // Kinds the view has seen but the summary does not count yet.
    for g in &app.groups {
        if !kinds.iter().any(|k| k.0 == g.kind) {
            let n = app.groups.iter().filter(|x| x.kind == g.kind).map(|x| x.count).sum();
            kinds.push((g.kind, n, app.kind_severity.get(&g.kind).copied().unwrap_or(g.severity)));
        }
    }
    kinds.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));
    let mut lines: Vec<Line> = if kinds.is_empty() {
        vec![Line::styled("No findings.", Style::new().fg(Color::Green))]
    } else {
        kinds
            .iter()
            .take(rows.max(1))
            .map(|(k, n, sev)| {
                Line::from(vec![
                    Span::styled(severity_label(*sev), severity_style(*sev)),
                    Span::raw(format!(" {:>6}  ", fmt_count(*n))),
                    Span::raw(k.to_string()),
                ])
            })
            .collect()
    };
    if kinds.len() > rows && rows > 0 {
        lines.truncate(rows - 1);
        lines.push(Line::styled(format!("… {} more kinds (2: Findings)", kinds.len() + 1 - rows), Style::new()));
    }
    Paragraph::new(lines).block(Block::bordered().title(" Findings by kind "))
}
