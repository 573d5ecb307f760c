//! Drawing: the frame around the views (tabs, status line, help) and the
//! formatting helpers the views share. Everything here reads a `&App`.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::app::{App, FeedState, Mode, View};
use super::feed::SourceKind;
use super::views;
use crate::record::Severity;
use crate::time::Ts;

/// Amber: idle time past 75% of the boundary.
pub const AMBER: Color = Color::Yellow;
/// Smallest usable screen; below it a notice replaces the views.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 12;

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!("wstap: terminal too small ({}x{}); need {MIN_WIDTH}x{MIN_HEIGHT}", area.width, area.height);
        f.render_widget(Paragraph::new(msg).wrap(ratatui::widgets::Wrap { trim: true }), area);
        return;
    }
    let [top, body, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(1)]).areas(area);
    app.list_hits.set(None);
    draw_tabs(f, app, top);
    match app.view {
        View::Overview => views::overview::render(f, app, body),
        View::Findings if app.mode == Mode::Detail => views::findings::render_detail(f, app, body),
        View::Findings => views::findings::render(f, app, body),
        View::Sessions if app.mode == Mode::Detail => views::sessions::render_detail(f, app, body),
        View::Sessions => views::sessions::render(f, app, body),
        View::Latency => views::latency::render(f, app, body),
    }
    draw_status(f, app, bottom);
    if app.help {
        views::help::render(f, body);
    }
}

/// The first line: views with counts, then the source and its state.
fn draw_tabs(f: &mut Frame, app: &App, area: Rect) {
    let mut spans = Vec::new();
    if area.width >= 100 {
        spans.push(Span::styled(" wstap ", Style::new().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD)));
        spans.push(Span::raw(" "));
    }
    // Each tab: its hotkey, its name, and in parentheses what it counts
    // (findings shown, open sessions), so "2 Findings (5)" never reads
    // as "25".
    let mut tabs = Vec::new();
    for (i, v) in View::ALL.iter().enumerate() {
        let count = match v {
            View::Findings => format!(" ({})", app.groups.iter().map(|g| g.count).sum::<u64>()),
            View::Sessions => format!(" ({} open)", app.open_session_count()),
            _ => String::new(),
        };
        let base =
            if *v == app.view { Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD) } else { Style::new() };
        let start = spans.iter().map(|s: &Span| s.width()).sum::<usize>() as u16;
        let parts = [
            Span::styled(" ", base),
            Span::styled(format!("{}", i + 1), base.fg(Color::Cyan).add_modifier(Modifier::BOLD)),
            Span::styled(format!(" {}", v.title()), base),
            Span::styled(count, base.fg(Color::Gray)),
            Span::styled(" ", base),
        ];
        let w: usize = parts.iter().map(|s| s.width()).sum();
        tabs.push((area.x + start, w as u16, *v));
        spans.extend(parts);
    }
    app.tab_hits.replace(tabs);
    let left = Line::from(spans);
    let left_w = left.width() as u16;
    f.render_widget(Paragraph::new(left), area);

    let mut right = vec![match (&app.source.kind, &app.feed) {
        (_, FeedState::Failed(_)) => Span::styled("failed", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        (SourceKind::Live, FeedState::Running) => {
            Span::styled("live", Style::new().fg(Color::Green).add_modifier(Modifier::BOLD))
        }
        (SourceKind::Live, FeedState::Done { .. }) => Span::raw("stopped"),
        (SourceKind::Replay(s), FeedState::Running) => {
            Span::raw(format!("replay ×{} {}", fmt_speed(*s), replay_pos(app)))
        }
        (SourceKind::Replay(_), FeedState::Done { .. }) => Span::raw("replayed"),
        (SourceKind::File, FeedState::Running) => Span::raw("analysing…"),
        (SourceKind::File, FeedState::Done { truncated: Some(_) }) if app.snap.summary.damaged => {
            Span::styled("analysed up to damage", Style::new().fg(Color::Red))
        }
        (SourceKind::File, FeedState::Done { truncated: Some(_) }) => {
            Span::styled("analysed (truncated)", Style::new().fg(Color::Yellow))
        }
        (SourceKind::File, FeedState::Done { truncated: None }) => Span::raw("analysed"),
    }];
    if app.paused {
        right.push(Span::raw(" "));
        right.push(Span::styled(
            " PAUSED ",
            Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    right.push(Span::raw(" "));
    // The source's name too, when it fits.
    let label = format!("{} · ", app.source.label);
    if left_w as usize + label.chars().count() + Line::from(right.clone()).width() < area.width as usize {
        right.insert(0, Span::styled(label, Style::new().fg(Color::Gray)));
    }
    if area.width > left_w + 4 {
        let r = Rect { x: area.x + left_w + 1, width: area.width - left_w - 1, ..area };
        f.render_widget(Paragraph::new(Line::from(right)).alignment(Alignment::Right), r);
    }
}

/// Capture time elapsed in a replay.
fn replay_pos(app: &App) -> String {
    match (app.snap.summary.first_ts, app.snap.clock) {
        (Some(a), Some(b)) => fmt_secs((b - a).max(0.0)),
        _ => String::new(),
    }
}

/// The last line: the filter prompt, an error, or the key hints.
fn draw_status(f: &mut Frame, app: &App, area: Rect) {
    let key = |k: &'static str| Span::styled(k, Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD));
    let line = if app.mode == Mode::Filter {
        Line::from(vec![
            key("/"),
            Span::raw(app.filter.clone()),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
            Span::styled("  path, address or kind · Enter keep · Esc clear", Style::new().fg(Color::DarkGray)),
        ])
    } else if let FeedState::Failed(e) = &app.feed {
        Line::from(Span::styled(format!("error: {e}"), Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)))
    } else {
        let mut s = Vec::new();
        if !app.filter.is_empty() {
            s.push(Span::styled(
                format!("filter: {} ", app.filter),
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ));
            s.push(Span::raw("(Esc clears)  "));
        }
        let hints: &[(&str, &str)] = match (app.view, app.mode) {
            (View::Findings, Mode::Detail) => {
                &[("Esc", "back"), ("↑↓", "scroll"), ("←→", "occurrence"), ("e", "export")]
            }
            (View::Sessions, Mode::Detail) => &[("Esc", "back"), ("↑↓", "scroll"), ("e", "export")],
            (View::Findings, _) => &[("Enter", "detail"), ("r", "reverse"), ("/", "filter"), ("e", "export")],
            (View::Sessions, _) => {
                &[("Enter", "detail"), ("s", "sort"), ("r", "reverse"), ("/", "filter"), ("e", "export")]
            }
            (View::Latency, _) => &[("↑↓", "series")],
            (View::Overview, _) => &[("Tab", "views")],
        };
        for (k, what) in hints.iter().chain([("p", "pause"), ("?", "help"), ("q", "quit")].iter()) {
            s.push(key(k));
            s.push(Span::raw(format!(" {what}  ")));
        }
        if let Some(msg) = &app.message {
            s.push(Span::styled(msg.clone(), Style::new().fg(Color::Yellow)));
        }
        if app.dropped_while_paused > 0 {
            s.push(Span::styled(
                format!("{} dropped while paused", crate::sink::text::N(app.dropped_while_paused, "record")),
                Style::new().fg(Color::Yellow),
            ));
        }
        Line::from(s)
    };
    f.render_widget(Paragraph::new(line), area);
}

// ---- Shared formatting ----

pub fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Severity::Warning => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        Severity::Info => Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD),
    }
}

/// A five-character severity label.
pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Error => "ERROR",
        Severity::Warning => "WARN ",
        Severity::Info => "INFO ",
    }
}

/// The colour of an idle time against the timeout boundary: amber from
/// 75%, red from 90%.
pub fn idle_style(idle_s: f64, boundary_s: f64) -> Style {
    if boundary_s > 0.0 && idle_s >= 0.9 * boundary_s {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else if boundary_s > 0.0 && idle_s >= 0.75 * boundary_s {
        Style::new().fg(AMBER).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    }
}

/// 950, 12.3k, 4.5M.
pub fn fmt_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// 512B, 4.1K, 3.2M (binary units).
pub fn fmt_bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let v = n as f64;
    if v < K {
        format!("{n}B")
    } else if v < K * K {
        format!("{:.1}K", v / K)
    } else if v < K * K * K {
        format!("{:.1}M", v / (K * K))
    } else {
        format!("{:.1}G", v / (K * K * K))
    }
}

/// 450ms, 12.3s, 4m05s, 2h03m, 1d04h.
pub fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0);
    if s < 1.0 {
        format!("{}ms", (s * 1000.0).round() as u64)
    } else if s < 59.95 {
        format!("{s:.1}s")
    } else if s < 3599.5 {
        let t = s.round() as u64;
        format!("{}m{:02}s", t / 60, t % 60)
    } else if s < 86_370.0 {
        let m = (s / 60.0).round() as u64;
        format!("{}h{:02}m", m / 60, m % 60)
    } else {
        let h = (s / 3600.0).round() as u64;
        format!("{}d{:02}h", h / 24, h % 24)
    }
}

/// A timeout as configured: 60s, 75s, 3600s; fractions kept (2.5s).
pub fn fmt_timeout(s: f64) -> String {
    if s.fract() == 0.0 { format!("{s:.0}s") } else { format!("{s}s") }
}

/// A latency in microseconds: 412µs, 3.93ms, 120ms, 1.20s.
pub fn fmt_us(us: u64) -> String {
    let v = us as f64;
    if us < 1000 {
        format!("{us}µs")
    } else if v < 10_000.0 {
        format!("{:.2}ms", v / 1e3)
    } else if v < 100_000.0 {
        format!("{:.1}ms", v / 1e3)
    } else if v < 1e6 {
        format!("{:.0}ms", v / 1e3)
    } else {
        format!("{:.2}s", v / 1e6)
    }
}

/// Capture time of day to the millisecond, in local time (the TZ
/// environment's zone) through the text output's own time function, so a
/// time on the dashboard is the text line's time cut to milliseconds.
pub fn fmt_tod(ts: f64) -> String {
    let mut s = Ts::from_secs_f64(ts).time_of_day().to_string();
    s.truncate(12);
    s
}

pub fn fmt_speed(s: f64) -> String {
    if s.fract() == 0.0 { format!("{s:.0}") } else { format!("{s}") }
}

/// Cuts `s` to `w` columns with an ellipsis.
pub fn ellipsize(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

/// The scroll offset that keeps `sel` visible in `height` rows.
pub fn scroll_offset(prev: usize, sel: usize, height: usize, len: usize) -> usize {
    if height == 0 {
        return 0;
    }
    let mut off = prev;
    if sel < off {
        off = sel;
    } else if sel >= off + height {
        off = sel + 1 - height;
    }
    off.min(len.saturating_sub(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_secs(0.45), "450ms");
        assert_eq!(fmt_secs(59.94), "59.9s");
        assert_eq!(fmt_secs(59.96), "1m00s");
        assert_eq!(fmt_secs(119.6), "2m00s");
        assert_eq!(fmt_secs(3599.6), "1h00m");
        assert_eq!(fmt_secs(90_000.0), "1d01h");
        assert_eq!(fmt_secs(245.0), "4m05s");
        assert_eq!(fmt_secs(7380.0), "2h03m");
        assert_eq!(fmt_us(412), "412µs");
        assert_eq!(fmt_us(3925), "3.92ms");
        assert_eq!(fmt_us(1_200_000), "1.20s");
        assert_eq!(fmt_bytes(4200), "4.1K");
        assert_eq!(fmt_count(12_345), "12.3k");
        crate::time::pin_utc();
        assert_eq!(fmt_tod(1_700_000_000.123456), "22:13:20.123");
        assert_eq!(ellipsize("abcdef", 4), "abc…");
    }

    #[test]
    fn offset_follows_selection() {
        assert_eq!(scroll_offset(0, 5, 10, 100), 0);
        assert_eq!(scroll_offset(0, 12, 10, 100), 3);
        assert_eq!(scroll_offset(8, 4, 10, 100), 4);
        assert_eq!(scroll_offset(95, 99, 10, 100), 90);
        assert_eq!(scroll_offset(50, 3, 10, 5), 0);
    }

    #[test]
    fn idle_colours_follow_the_boundary() {
        assert_eq!(idle_style(44.0, 60.0).fg, None);
        assert_eq!(idle_style(45.0, 60.0).fg, Some(AMBER));
        assert_eq!(idle_style(54.0, 60.0).fg, Some(Color::Red));
    }
}
