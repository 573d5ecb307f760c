//! Findings: groups (same kind, path and server endpoints) with counts,
//! newest last; Enter opens a group's detail: both hops' headers side by
//! side with the stripped or changed ones marked, what the client saw, and
//! the fix.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use serde_json::Value;

use crate::detect::Finding;
use crate::tui::app::{App, FindingGroup};
use crate::tui::ui::{ellipsize, fmt_tod, scroll_offset, severity_label, severity_style};

/// Lines per group in the list.
const ITEM_HEIGHT: usize = 2;

pub fn render(f: &mut Frame, app: &App, area: Rect) {
    let total: u64 = app.groups.iter().map(|g| g.count).sum();
    let title = format!(" Findings: {} in {} groups · newest last · Enter for detail ", total, app.groups.len());
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    if app.group_order.is_empty() {
        let msg = if app.groups.is_empty() {
            Line::styled("No findings so far.", Style::new().fg(Color::Green))
        } else {
            Line::styled(format!("No findings match the filter '{}'.", app.filter), Style::new().fg(Color::Yellow))
        };
        f.render_widget(Paragraph::new(msg), inner);
        return;
    }
    let visible = (inner.height as usize / ITEM_HEIGHT).max(1);
    app.page.set(visible);
    let len = app.group_order.len();
    let off = scroll_offset(app.finding_offset.get(), app.finding_sel, visible, len);
    app.finding_offset.set(off);
    let width = inner.width as usize;
    let mut lines = Vec::with_capacity(visible * ITEM_HEIGHT);
    for (i, gi) in app.group_order.iter().enumerate().skip(off).take(visible) {
        let g = &app.groups[*gi];
        let selected = i == app.finding_sel;
        lines.extend(group_lines(g, width, selected));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

/// A group in two lines: severity, kind, count, path, servers, time; then
/// the latest message.
fn group_lines(g: &FindingGroup, width: usize, selected: bool) -> [Line<'static>; 2] {
    let base = if selected { Style::new().add_modifier(Modifier::REVERSED) } else { Style::new() };
    let mut head = vec![
        Span::styled(if selected { "▶" } else { " " }, base),
        Span::styled(severity_label(g.severity), severity_style(g.severity).patch(base)),
        Span::styled(format!(" {}", g.kind), base.add_modifier(Modifier::BOLD)),
        Span::styled(format!(" ×{}", g.count), base),
    ];
    if let Some(p) = &g.path {
        head.push(Span::styled(format!("  {p}"), base.fg(Color::Cyan)));
    }
    if !g.servers.is_empty() {
        head.push(Span::styled(format!("  → {}", g.servers.join(", ")), base));
    }
    let used: usize = head.iter().map(|s| s.width()).sum();
    let when = format!("  {}", fmt_tod(g.last_ts));
    if used + when.len() < width {
        head.push(Span::styled(" ".repeat(width - used - when.len()), base));
        head.push(Span::styled(when, base.fg(Color::DarkGray)));
    }
    let msg = g.latest().map_or("", |f| f.message.as_str());
    let body = Line::from(vec![
        Span::raw("      "),
        Span::styled(ellipsize(msg, width.saturating_sub(6)), Style::new().fg(Color::Gray)),
    ]);
    [Line::from(head), body]
}

/// One hop as the finding detail describes it.
#[derive(Debug, Default)]
struct HopView {
    flow: Option<String>,
    request: Vec<(String, String)>,
    response: Option<Vec<(String, String)>>,
    status: Option<i64>,
}

/// One differing header between the hops.
#[derive(Debug)]
struct Diff {
    header: String,
    client: Option<String>,
    upstream: Option<String>,
    change: String,
}

fn headers(v: &Value) -> Option<Vec<(String, String)>> {
    let a = v.as_array()?;
    Some(
        a.iter()
            .filter_map(|h| {
                let pair = h.as_array()?;
                Some((
                    pair.first()?.as_str()?.to_string(),
                    pair.get(1).and_then(Value::as_str).unwrap_or("").to_string(),
                ))
            })
            .collect(),
    )
}

fn hop_view(v: &Value) -> Option<HopView> {
    if !v.is_object() {
        return None;
    }
    Some(HopView {
        flow: v.get("flow").and_then(Value::as_str).map(String::from),
        request: v.get("request").and_then(headers).unwrap_or_default(),
        response: v.get("response").and_then(headers),
        status: v.get("status").and_then(Value::as_i64),
    })
}

fn diffs(detail: &Value) -> Vec<Diff> {
    let Some(a) = detail.get("diff").and_then(Value::as_array) else { return Vec::new() };
    a.iter()
        .filter_map(|d| {
            Some(Diff {
                header: d.get("header")?.as_str()?.to_string(),
                client: d.get("client").and_then(Value::as_str).map(String::from),
                upstream: d.get("upstream").and_then(Value::as_str).map(String::from),
                change: d.get("change").and_then(Value::as_str).unwrap_or("changed").to_string(),
            })
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Client,
    Upstream,
}

/// The marker and style of a request header on one side, from the diff.
fn mark(d: Option<&Diff>, side: Side) -> (&'static str, Style) {
    let red = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
    let amber = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let green = Style::new().fg(Color::Green).add_modifier(Modifier::BOLD);
    match (d.map(|d| d.change.as_str()), side) {
        (None, _) => ("  ", Style::new()),
        (Some("missing"), Side::Client) => ("- ", red),
        (Some("added"), Side::Upstream) => ("+ ", green),
        (Some("added"), Side::Client) => ("  ", Style::new()),
        (Some(_), _) => ("~ ", amber),
    }
}

/// A hop's column: request headers (marked from the diff), the headers the
/// proxy dropped, then the response.
fn hop_lines(h: Option<&HopView>, diff: &[Diff], side: Side) -> Vec<Line<'static>> {
    let dim = Style::new().fg(Color::DarkGray);
    let Some(h) = h else {
        return vec![Line::styled("(no such hop in this capture)", dim)];
    };
    let find = |name: &str| diff.iter().find(|d| d.header.eq_ignore_ascii_case(name));
    let mut out = vec![Line::styled("Request headers", Style::new().add_modifier(Modifier::UNDERLINED))];
    for (name, value) in &h.request {
        let (m, style) = mark(find(name), side);
        out.push(Line::styled(format!("{m}{name}: {value}"), style));
    }
    if side == Side::Upstream {
        for d in diff.iter().filter(|d| d.change == "missing" || (d.upstream.is_none() && d.client.is_some())) {
            if !h.request.iter().any(|(n, _)| n.eq_ignore_ascii_case(&d.header)) {
                out.push(Line::styled(
                    format!("✗ {}: (stripped by the proxy)", d.header),
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ));
            }
        }
    }
    if side == Side::Client {
        for d in diff.iter().filter(|d| d.change == "added" && d.client.is_none()) {
            out.push(Line::styled(format!("  {}: (not sent by the client)", d.header), dim));
        }
    }
    out.push(Line::raw(""));
    let status = h.status.map_or("no response".to_string(), |s| s.to_string());
    out.push(Line::styled(format!("Response: {status}"), Style::new().add_modifier(Modifier::UNDERLINED)));
    match &h.response {
        Some(rs) => out.extend(rs.iter().map(|(n, v)| Line::raw(format!("  {n}: {v}")))),
        None => out.push(Line::styled("  (none)", dim)),
    }
    out
}

/// The detail object's other fields, as "key: value" lines.
fn other_fields(detail: &Value) -> Vec<Line<'static>> {
    let Some(obj) = detail.as_object() else {
        return if detail.is_null() { Vec::new() } else { vec![Line::raw(detail.to_string())] };
    };
    obj.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "hops" | "diff" | "client_saw"))
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Line::from(vec![Span::styled(format!("{k}: "), Style::new().fg(Color::DarkGray)), Span::raw(v)])
        })
        .collect()
}

/// Rows a text needs when wrapped to `width`.
fn wrapped_rows(text: &str, width: u16) -> u16 {
    let w = width.max(1) as usize;
    text.lines().map(|l| l.chars().count().max(1).div_ceil(w)).sum::<usize>().max(1) as u16
}

pub fn render_detail(f: &mut Frame, app: &App, area: Rect) {
    let (Some(g), Some(fnd)) = (app.selected_group(), app.detail_finding()) else {
        f.render_widget(Paragraph::new("No finding selected (Esc goes back).").block(Block::bordered()), area);
        return;
    };
    let inner_w = area.width.saturating_sub(2);
    let fix = fnd.fix.clone().unwrap_or_else(|| "No fix suggested for this finding.".into());
    let head_h = (2 + wrapped_rows(&fnd.message, inner_w)).min(6) + 2;
    let fix_h = wrapped_rows(&fix, inner_w).min(6) + 2;
    let saw = fnd.detail.get("client_saw").and_then(Value::as_str).map(String::from);
    let [head, saw_area, mid, fix_area] = Layout::vertical([
        Constraint::Length(head_h),
        Constraint::Length(u16::from(saw.is_some())),
        Constraint::Min(3),
        Constraint::Length(fix_h),
    ])
    .areas(area);

    f.render_widget(header(g, fnd, app.detail_occurrence), head);
    if let Some(s) = saw {
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(" What the client saw: ", Style::new().add_modifier(Modifier::BOLD)),
                Span::styled(s, Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
            ])),
            saw_area,
        );
    }

    let detail = &fnd.detail;
    let hops = detail.get("hops");
    let client = hops.and_then(|h| h.get("client")).and_then(hop_view);
    let upstream = hops.and_then(|h| h.get("upstream")).and_then(hop_view);
    let extra = other_fields(detail);
    let scroll = (app.detail_scroll, 0);
    if client.is_some() || upstream.is_some() {
        let d = diffs(detail);
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(mid);
        let title = |name: &str, h: &Option<HopView>| {
            format!(" {name}: {} ", h.as_ref().and_then(|h| h.flow.clone()).unwrap_or_else(|| "-".into()))
        };
        let mut left = hop_lines(client.as_ref(), &d, Side::Client);
        let right = hop_lines(upstream.as_ref(), &d, Side::Upstream);
        if !extra.is_empty() {
            left.push(Line::raw(""));
            left.extend(extra);
        }
        f.render_widget(
            Paragraph::new(left)
                .wrap(Wrap { trim: false })
                .scroll(scroll)
                .block(Block::bordered().title(title("Client hop", &client))),
            l,
        );
        f.render_widget(
            Paragraph::new(right)
                .wrap(Wrap { trim: false })
                .scroll(scroll)
                .block(Block::bordered().title(title("Upstream hop", &upstream))),
            r,
        );
    } else {
        let mut lines = vec![Line::styled("Flows", Style::new().add_modifier(Modifier::UNDERLINED))];
        lines.extend(fnd.flows.iter().map(|fl| Line::raw(format!("  {fl}"))));
        if !extra.is_empty() {
            lines.push(Line::raw(""));
            lines.extend(extra);
        }
        f.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: false }).scroll(scroll).block(Block::bordered().title(" Detail ")),
            mid,
        );
    }
    f.render_widget(
        Paragraph::new(fix)
            .wrap(Wrap { trim: false })
            .style(Style::new().fg(Color::Green))
            .block(Block::bordered().title(" Fix ").border_style(Style::new().fg(Color::Green))),
        fix_area,
    );
}

fn header(g: &FindingGroup, f: &Finding, occurrence: usize) -> Paragraph<'static> {
    let n = g.recent.len();
    let which = if n > 1 {
        format!("  occurrence {} of the last {n} (←→)", n - occurrence.min(n - 1))
    } else {
        String::new()
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled(severity_label(f.severity).trim_end().to_string(), severity_style(f.severity)),
            Span::styled(format!(" {}", f.kind), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!("  ×{}  at {}", g.count, fmt_tod(f.ts))),
            Span::styled(which, Style::new().fg(Color::DarkGray)),
        ]),
        Line::from(vec![
            Span::styled(f.path.clone().unwrap_or_else(|| "-".into()), Style::new().fg(Color::Cyan)),
            Span::raw("  "),
            Span::styled(f.flows.join("  "), Style::new().fg(Color::DarkGray)),
        ]),
    ];
    lines.push(Line::raw(f.message.clone()));
    Paragraph::new(lines).wrap(Wrap { trim: false }).block(Block::new().borders(Borders::ALL).title(" Finding "))
}
