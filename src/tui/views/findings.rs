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

use crate::record::Finding;
use crate::tui::app::{App, FindingGroup};
use crate::tui::ui::{ellipsize, fmt_tod, scroll_offset, severity_label, severity_style};

/// Lines per group in the list.
const ITEM_HEIGHT: usize = 2;

pub fn render(f: &mut Frame, app: &App, area: Rect) {
    let total: u64 = app.groups.iter().map(|g| g.count).sum();
    let order = if app.sort_reverse { "newest first" } else { "newest last" };
    let groups = if app.groups.len() == 1 { "group" } else { "groups" };
    let title = format!(" Findings: {total} in {} {groups} · {order} · Enter for detail ", app.groups.len());
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
    app.list_hits.set(Some((inner, off, ITEM_HEIGHT as u16)));
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
    if let Some(also) = g.latest().map(|f| &f.also).filter(|a| !a.is_empty()) {
        let also: Vec<&str> = also.iter().map(|k| k.name()).collect();
        head.push(Span::styled(format!(" (+{})", also.join(", ")), base));
    }
    if let Some(p) = &g.path {
        head.push(Span::styled(format!("  {p}"), base.fg(Color::Cyan)));
    }
    if !g.servers.is_empty() {
        head.push(Span::styled(format!("  {}", g.servers.join(" -> ")), base));
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
#[cfg(test)]
mod tests {
    #[test]
    fn wrapped_rows_counts_word_wrapping() {
        assert_eq!(super::wrapped_rows("abc def", 7), 1);
        assert_eq!(super::wrapped_rows("abc defg", 7), 2);
        assert_eq!(super::wrapped_rows("one\n    two three", 10), 3);
        assert_eq!(super::wrapped_rows("", 10), 1);
    }
}

#[derive(Debug, Default)]
struct HopView {
    flow: Option<String>,
    request_line: Option<String>,
    request: Vec<(String, String)>,
    response: Option<Vec<(String, String)>>,
    status: Option<i64>,
    /// How the hop ended without a response ("reset", ...).
    end: Option<String>,
    /// TLS: only the flow (and SNI) is known.
    encrypted: bool,
    sni: Option<String>,
    /// A TLS hop's handshake and whether it was decrypted, in words.
    tls: Option<String>,
}

/// One differing header between the hops.
#[derive(Debug)]
struct Diff {
    header: String,
    client: Option<String>,
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
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    Some(HopView {
        flow: s("flow"),
        request_line: s("request_line"),
        request: v.get("request").and_then(headers).unwrap_or_default(),
        response: v.get("response").and_then(headers),
        status: v.get("status").and_then(Value::as_i64),
        end: s("end"),
        encrypted: v.get("encrypted").and_then(Value::as_bool).unwrap_or(false),
        sni: s("sni"),
        tls: v.get("tls").filter(|t| t.is_object()).map(tls_words),
    })
}

/// "TLS 1.3 TLS_AES_128_GCM_SHA256, SNI x, decrypted" / "..., not decrypted: no-key".
fn tls_words(t: &Value) -> String {
    let s = |k: &str| t.get(k).and_then(Value::as_str);
    let mut w = s("version").unwrap_or("TLS").to_string();
    if let Some(c) = s("cipher") {
        w += &format!(" {c}");
    }
    if let Some(n) = s("sni") {
        w += &format!(", SNI {n}");
    }
    if t.get("decrypted").and_then(Value::as_bool) == Some(true) {
        w += ", decrypted";
    } else {
        w += &format!(", not decrypted: {}", s("reason").unwrap_or("no-key"));
    }
    w
}

fn diffs(detail: &Value) -> Vec<Diff> {
    let Some(a) = detail.get("diff").and_then(Value::as_array) else { return Vec::new() };
    a.iter()
        .filter_map(|d| {
            Some(Diff {
                header: d.get("header")?.as_str()?.to_string(),
                client: d.get("client").and_then(Value::as_str).map(String::from),
                change: d.get("change").and_then(Value::as_str).unwrap_or("changed").to_string(),
            })
        })
        .collect()
}

fn red() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}
fn amber() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}
fn green() -> Style {
    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
}
fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}
fn underlined() -> Style {
    Style::new().add_modifier(Modifier::UNDERLINED)
}

/// The two columns of the detail, row for row: a header sits on the same
/// row on both sides, so a stripped one shows as a hole in the upstream
/// column. Markers: `-` sent by the client but stripped, `~` changed on
/// the way, `+` added by the proxy, `✗` where the stripped header should be.
struct Columns {
    left: Vec<Line<'static>>,
    right: Vec<Line<'static>>,
    width: usize,
}

impl Columns {
    fn row(&mut self, l: (String, Style), r: (String, Style)) {
        self.left.push(Line::styled(ellipsize(&l.0, self.width), l.1));
        self.right.push(Line::styled(ellipsize(&r.0, self.width), r.1));
    }
}

fn hop_columns(c: Option<&HopView>, u: Option<&HopView>, diff: &[Diff], width: usize) -> Columns {
    let mut cols = Columns { left: Vec::new(), right: Vec::new(), width };
    let none = |what: &str| (format!("(no {what} hop in this capture)"), dim());
    let flow = |h: Option<&HopView>, what: &str| match h {
        Some(h) => (h.flow.clone().unwrap_or_else(|| "-".into()), dim()),
        None => none(what),
    };
    cols.row(flow(c, "client"), flow(u, "upstream"));
    for (h, side) in [(c, 0), (u, 1)] {
        if let Some(h) = h.filter(|h| h.encrypted || h.tls.is_some()) {
            let t = match &h.tls {
                Some(words) => words.clone(),
                None => format!("TLS: encrypted{}", h.sni.as_ref().map_or(String::new(), |s| format!(", SNI {s}"))),
            };
            if side == 0 {
                cols.row((t, dim()), (String::new(), dim()))
            } else {
                cols.row((String::new(), dim()), (t, dim()))
            }
        }
    }
    let find = |name: &str| diff.iter().find(|d| d.header.eq_ignore_ascii_case(name));

    // Request line, with the HTTP version marked when it changed.
    cols.row(("Request".into(), underlined()), ("Request".into(), underlined()));
    let version_changed = find("HTTP version").is_some();
    let line = |h: Option<&HopView>| h.and_then(|h| h.request_line.clone());
    if line(c).is_some() || line(u).is_some() {
        let st = if version_changed { amber() } else { Style::new() };
        let m = if version_changed { "~ " } else { "  " };
        let side = |h: Option<&HopView>| line(h).map_or((String::new(), dim()), |l| (format!("{m}{l}"), st));
        cols.row(side(c), side(u));
    }

    // Client headers in order, each beside the upstream's header of the
    // same name (the n-th of that name), then what only the upstream has.
    let creq = c.map_or(&[][..], |h| &h.request[..]);
    let ureq = u.map_or(&[][..], |h| &h.request[..]);
    let mut used = vec![false; ureq.len()];
    for (name, value) in creq {
        let d = find(name);
        let j = ureq.iter().enumerate().position(|(j, (n, _))| !used[j] && n.eq_ignore_ascii_case(name));
        if let Some(j) = j {
            used[j] = true;
        }
        let changed = d.is_some_and(|d| d.change != "added" && d.change != "missing");
        let (lm, ls) = match d.map(|d| d.change.as_str()) {
            Some("missing") => ("- ", red()),
            _ if changed => ("~ ", amber()),
            _ => ("  ", Style::new()),
        };
        let left = (format!("{lm}{name}: {value}"), ls);
        let right = match (j, u) {
            (_, None) => (String::new(), dim()),
            (Some(j), _) => {
                let (n, v) = &ureq[j];
                if changed { (format!("~ {n}: {v}"), amber()) } else { (format!("  {n}: {v}"), Style::new()) }
            }
            (None, _) if d.is_some() => (format!("✗ {name}: (stripped by the proxy)"), red()),
            (None, _) => (format!("  {name}: (not forwarded)"), dim()),
        };
        cols.row(left, right);
    }
    // Diffed headers the client did not send as such (e.g. stripped from a
    // joined value), then upstream-only headers.
    for d in diff.iter().filter(|d| d.change == "missing") {
        if !creq.iter().any(|(n, _)| n.eq_ignore_ascii_case(&d.header)) && d.header != "HTTP version" {
            let v = d.client.clone().unwrap_or_default();
            cols.row(
                (format!("- {}: {v}", d.header), red()),
                (format!("✗ {}: (stripped by the proxy)", d.header), red()),
            );
        }
    }
    for (_, (n, v)) in ureq.iter().enumerate().filter(|(j, _)| !used[*j]) {
        let st = if find(n).is_some() { green() } else { Style::new() };
        cols.row((String::new(), dim()), (format!("+ {n}: {v}"), st));
    }

    // Responses, aligned the same way (no markers: the diff is about the
    // request the proxy forwarded).
    cols.row((String::new(), dim()), (String::new(), dim()));
    let status = |h: Option<&HopView>| match h {
        None => (String::new(), dim()),
        Some(h) => match (h.status, &h.end) {
            (Some(s), _) => (format!("Response: {s}"), underlined()),
            (None, Some(e)) => (format!("Response: none ({e})"), underlined().fg(Color::Red)),
            (None, None) => ("Response: none".into(), underlined()),
        },
    };
    cols.row(status(c), status(u));
    let cres = c.and_then(|h| h.response.as_deref()).unwrap_or(&[]);
    let ures = u.and_then(|h| h.response.as_deref()).unwrap_or(&[]);
    for i in 0..cres.len().max(ures.len()) {
        let cell = |r: &[(String, String)]| {
            r.get(i).map_or((String::new(), dim()), |(n, v)| (format!("  {n}: {v}"), Style::new()))
        };
        cols.row(cell(cres), cell(ures));
    }
    cols
}

/// The detail object's other fields, as "key: value" lines; arrays of
/// objects (a session's hops) one element per line.
fn other_fields(detail: &Value) -> Vec<Line<'static>> {
    let Some(obj) = detail.as_object() else {
        return if detail.is_null() { Vec::new() } else { vec![Line::raw(detail.to_string())] };
    };
    let mut out = Vec::new();
    for (k, v) in obj.iter().filter(|(k, v)| !matches!(k.as_str(), "diff" | "client_saw") && !is_handshake_hops(k, v)) {
        match v {
            Value::Array(items) if items.iter().any(Value::is_object) => {
                out.push(Line::styled(format!("{k}:"), dim()));
                for it in items {
                    let text = match it.as_object() {
                        Some(o) => object_line(o),
                        None => scalar(it),
                    };
                    out.push(Line::raw(format!("  • {text}")));
                }
            }
            _ => out.push(Line::from(vec![Span::styled(format!("{k}: "), dim()), Span::raw(field(k, v))])),
        }
    }
    out
}

/// One element of a list of objects (a session's hop) on one line: "role
/// flow:" first, then the other fields that have a value.
fn object_line(o: &serde_json::Map<String, Value>) -> String {
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    let mut parts: Vec<String> = match (s("role"), s("flow")) {
        (Some(r), Some(f)) => vec![format!("{r} {f}:")],
        (None, Some(f)) => vec![format!("{f}:")],
        _ => Vec::new(),
    };
    for (k, v) in o {
        let shown = field(k, v);
        // The flow says what the connection fields (orig_h ... community_id) say.
        let conn_field = matches!(k.as_str(), "orig_h" | "orig_p" | "resp_h" | "resp_p" | "community_id");
        if matches!(k.as_str(), "role" | "flow") || conn_field || v.is_null() || shown == "null/null" {
            continue;
        }
        parts.push(format!("{k}={shown}"));
    }
    parts.join(" ")
}

/// A field's value: capture timestamps as time of day, the rest as
/// `scalar` does.
fn field(k: &str, v: &Value) -> String {
    let is_time = k == "ts" || k.ends_with("_at") || k.ends_with("_ts") || k.starts_with("last_");
    match v.as_f64() {
        Some(t) if is_time && t > 1e9 => fmt_tod(t),
        _ => scalar(v),
    }
}

/// A value on one line: strings bare, lists comma-joined, per-direction
/// counts as "up/down", other objects as compact JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) if !a.iter().any(|x| x.is_object() || x.is_array()) => {
            a.iter().map(scalar).collect::<Vec<_>>().join(", ")
        }
        Value::Object(o) if o.len() == 2 && o.contains_key("to_server") && o.contains_key("to_client") => {
            format!("{}/{}", scalar(&o["to_server"]), scalar(&o["to_client"]))
        }
        other => other.to_string(),
    }
}

/// `hops` in the handshake shape (`{"client": .., "upstream": ..}`) is
/// drawn as columns, not listed.
fn is_handshake_hops(k: &str, v: &Value) -> bool {
    k == "hops" && v.is_object() && (v.get("client").is_some() || v.get("upstream").is_some())
}

/// Rows a text needs when word-wrapped to `width` (greedy, as ratatui's
/// `Wrap` does; a word longer than the width is cut).
pub fn wrapped_rows(text: &str, width: u16) -> u16 {
    let w = width.max(1) as usize;
    let mut rows = 0usize;
    for line in text.lines() {
        let mut col = 0usize;
        rows += 1;
        let indent = line.len() - line.trim_start().len();
        col += indent;
        for word in line.split_whitespace() {
            let n = word.chars().count();
            let need = if col == 0 || col == indent { n } else { n + 1 };
            if col + need > w && col > 0 {
                rows += 1;
                col = n.min(w);
                rows += (n.saturating_sub(1)) / w;
            } else {
                col += need;
            }
        }
    }
    rows.max(1) as u16
}

pub fn render_detail(f: &mut Frame, app: &App, area: Rect) {
    let (Some(g), Some(fnd)) = (app.selected_group(), app.detail_finding()) else {
        f.render_widget(Paragraph::new("No finding selected (Esc goes back).").block(Block::bordered()), area);
        return;
    };
    let mut fix = fnd.fix.clone().unwrap_or_else(|| "No fix suggested for this finding.".into());
    if !fnd.also.is_empty() {
        let also: Vec<&str> = fnd.also.iter().map(|k| k.name()).collect();
        fix = format!("(same fault, also filed as {})\n{fix}", also.join(", "));
    }
    // Header and fix take what they need, within limits that leave the
    // hop columns at least a third of the screen.
    let head_h = 1 + wrapped_rows(&where_line(fnd), area.width).min(2) + wrapped_rows(&fnd.message, area.width).min(4);
    let fix_h = 1 + wrapped_rows(&fix, area.width).min((area.height / 3).max(2));
    let saw = fnd.detail.get("client_saw").and_then(Value::as_str).map(String::from);
    let [head, saw_area, mid, fix_area] = Layout::vertical([
        Constraint::Length(head_h),
        Constraint::Length(u16::from(saw.is_some())),
        Constraint::Min(5),
        Constraint::Length(fix_h),
    ])
    .areas(area);

    f.render_widget(header(g, fnd, app.detail_occurrence), head);
    if let Some(s) = saw {
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled("What the client saw: ", Style::new().add_modifier(Modifier::BOLD)),
                Span::styled(s, red()),
            ])),
            saw_area,
        );
    }

    let detail = &fnd.detail;
    let hops = detail.get("hops").filter(|h| is_handshake_hops("hops", h));
    let client = hops.and_then(|h| h.get("client")).and_then(hop_view);
    let upstream = hops.and_then(|h| h.get("upstream")).and_then(hop_view);
    let extra = other_fields(detail);
    let scroll = (app.detail_scroll, 0);
    if client.is_some() || upstream.is_some() {
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(mid);
        let width = l.width.saturating_sub(2) as usize;
        let mut cols = hop_columns(client.as_ref(), upstream.as_ref(), &diffs(detail), width);
        if !extra.is_empty() {
            cols.row((String::new(), dim()), (String::new(), dim()));
            cols.left.extend(extra);
        }
        let rows = cols.left.len().max(cols.right.len());
        let below = rows.saturating_sub(app.detail_scroll as usize + mid.height.saturating_sub(2) as usize);
        let more = |b: Block<'static>| {
            if below > 0 {
                b.title_bottom(Line::styled(format!(" ↓ {below} more "), dim()).right_aligned())
            } else {
                b
            }
        };
        f.render_widget(Paragraph::new(cols.left).scroll(scroll).block(Block::bordered().title(" Client hop ")), l);
        f.render_widget(
            Paragraph::new(cols.right).scroll(scroll).block(more(Block::bordered().title(" Upstream hop "))),
            r,
        );
    } else {
        let mut lines = extra;
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled("Flows", underlined()));
        lines.extend(fnd.flows.iter().map(|fl| Line::raw(format!("  {fl}"))));
        f.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: false }).scroll(scroll).block(Block::bordered().title(" Detail ")),
            mid,
        );
    }
    f.render_widget(
        Paragraph::new(fix)
            .wrap(Wrap { trim: false })
            .style(Style::new().fg(Color::Green))
            .block(Block::new().borders(Borders::TOP).title(" Fix ").border_style(Style::new().fg(Color::Green))),
        fix_area,
    );
}

/// The path and the flows (or how many, when they are many: the detail
/// lists them).
fn where_line(f: &Finding) -> String {
    let path = f.path.as_deref().unwrap_or("-");
    if f.flows.len() <= 2 {
        let flows: Vec<String> = f.flows.iter().map(|f| f.to_string()).collect();
        format!("{path}  {}", flows.join("  "))
    } else {
        format!("{path}  {} flows (listed below)", f.flows.len())
    }
}

fn header(g: &FindingGroup, f: &Finding, occurrence: usize) -> Paragraph<'static> {
    let n = g.recent.len();
    let which = if n > 1 {
        format!("  occurrence {} of the last {n} (←→)", n - occurrence.min(n - 1))
    } else {
        String::new()
    };
    let lines = vec![
        Line::from(vec![
            Span::styled(severity_label(f.severity).trim_end().to_string(), severity_style(f.severity)),
            Span::styled(format!(" {}", f.kind), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!("  ×{}  at {}", g.count, fmt_tod(f.ts))),
            Span::styled(which, dim()),
        ]),
        Line::from(vec![
            Span::styled(f.path.clone().unwrap_or_else(|| "-".into()), Style::new().fg(Color::Cyan)),
            Span::styled(where_line(f)[f.path.as_deref().unwrap_or("-").len()..].to_string(), dim()),
        ]),
        Line::raw(f.message.clone()),
    ];
    Paragraph::new(lines).wrap(Wrap { trim: false })
}
