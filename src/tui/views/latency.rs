//! Latency: percentiles of client-visible handshake time, upstream
//! handshake time, proxy overhead (client minus upstream, for paired
//! handshakes) and frame relay delay through the proxy; below, a histogram
//! of the selected series on a 1-2-5 log scale.

use hdrhistogram::Histogram;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use crate::tui::app::{App, Metric};
use crate::tui::ui::{fmt_count, fmt_us};

/// Percentiles shown, with their column titles.
pub const QUANTILES: [(f64, &str); 4] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

pub fn render(f: &mut Frame, app: &App, area: Rect) {
    let [table_area, chart_area] = Layout::vertical([Constraint::Length(7), Constraint::Min(4)]).areas(area);
    let header = Row::new(["Series", "count", "p50", "p90", "p99", "p99.9", "max"].map(Cell::from))
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let rows: Vec<Row> = Metric::ALL
        .iter()
        .map(|m| {
            let h = app.latency.get(*m).histogram();
            let mut cells = vec![Cell::from(m.title()), Cell::from(fmt_count(h.len()))];
            if h.is_empty() {
                cells.extend((0..5).map(|_| Cell::from("-")));
            } else {
                cells.extend(QUANTILES.iter().map(|(q, _)| Cell::from(fmt_us(h.value_at_quantile(*q)))));
                cells.push(Cell::from(fmt_us(h.max())));
            }
            Row::new(cells)
        })
        .collect();
    let widths = [
        Constraint::Length(18),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .block(Block::bordered().title(" Latency percentiles (↑↓ picks the histogram) "));
    let mut state = TableState::default().with_selected(Some(app.metric_sel));
    f.render_stateful_widget(table, table_area, &mut state);

    let m = app.metric();
    let block = Block::bordered().title(format!(" Histogram: {} ", m.title()));
    let inner = block.inner(chart_area);
    f.render_widget(block, chart_area);
    let h = app.latency.get(m).histogram();
    if h.is_empty() {
        f.render_widget(Paragraph::new(empty_reason(m)), inner);
        return;
    }
    f.render_widget(Paragraph::new(histogram_lines(h, inner.width as usize, inner.height as usize)), inner);
}

fn empty_reason(m: Metric) -> &'static str {
    match m {
        Metric::Client => "No client handshake completed yet.",
        Metric::Upstream => "No forwarded handshake completed yet.",
        Metric::Overhead => "No handshake seen on both hops yet.",
        Metric::Relay => "No frame seen crossing the proxy yet.",
    }
}

/// Bucket edges in µs on a 1-2-5 scale, from 1 µs to 1 hour.
fn edges(decades_only: bool) -> Vec<u64> {
    let mut v = Vec::new();
    let mut d: u64 = 1;
    while d <= 1_000_000_000 {
        if decades_only {
            v.push(d);
        } else {
            v.extend([d, 2 * d, 5 * d]);
        }
        d *= 10;
    }
    v.push(u64::MAX);
    v
}

/// A bucket edge (1-2-5 × 10^k µs): 500µs, 2ms, 50ms, 1s, 20s.
fn fmt_edge(us: u64) -> String {
    match us {
        0..1000 => format!("{us}µs"),
        1000..1_000_000 => format!("{}ms", us / 1000),
        _ => format!("{}s", us / 1_000_000),
    }
}

/// Counts per bucket `[edges[i], edges[i+1])`.
pub fn bucket_counts(h: &Histogram<u64>, edges: &[u64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() - 1];
    for v in h.iter_recorded() {
        let x = h.median_equivalent(v.value_iterated_to());
        let i = edges.partition_point(|e| *e <= x).saturating_sub(1).min(counts.len() - 1);
        counts[i] += v.count_at_value();
    }
    counts
}

/// One line per bucket from the first to the last non-empty one:
/// "  1ms–2ms │█████▌      12".
pub fn histogram_lines(h: &Histogram<u64>, width: usize, height: usize) -> Vec<Line<'static>> {
    let mut e = edges(false);
    let mut counts = bucket_counts(h, &e);
    let span = |c: &[u64]| {
        let first = c.iter().position(|n| *n > 0).unwrap_or(0);
        let last = c.iter().rposition(|n| *n > 0).unwrap_or(0);
        (first, last)
    };
    let (mut first, mut last) = span(&counts);
    if last - first + 1 > height {
        e = edges(true);
        counts = bucket_counts(h, &e);
        (first, last) = span(&counts);
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1);
    // "  2ms–5ms   │" then the bar, then " count pct%" (12 columns).
    let label_w = 16;
    let bar_w = width.saturating_sub(label_w + 1 + 12).max(1);
    let total: u64 = counts.iter().sum();
    (first..=last)
        .take(height.max(1))
        .map(|i| {
            let hi = if e[i + 1] == u64::MAX { "…".to_string() } else { fmt_edge(e[i + 1]) };
            let label = format!("{:>7}–{:<7}", fmt_edge(e[i]), hi);
            let eighths = (counts[i] as u128 * bar_w as u128 * 8 / max as u128) as usize;
            let mut bar = "█".repeat(eighths / 8);
            if !eighths.is_multiple_of(8) {
                bar.push([' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8]);
            }
            if counts[i] > 0 && bar.is_empty() {
                bar.push('▏');
            }
            let pct = counts[i] as f64 * 100.0 / total.max(1) as f64;
            Line::from(vec![
                Span::styled(format!("{label:<label_w$}│"), Style::new().fg(Color::DarkGray)),
                Span::styled(format!("{bar:<bar_w$}"), Style::new().fg(Color::Cyan)),
                Span::raw(format!(" {:>6} {:>3.0}%", fmt_count(counts[i]), pct)),
            ])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_1_2_5_scale() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in [1500, 1700, 3000, 3100, 3200, 12_000] {
            h.record(v).unwrap();
        }
        let e = edges(false);
        let c = bucket_counts(&h, &e);
        let at = |lo: u64| c[e.iter().position(|x| *x == lo).unwrap()];
        assert_eq!(at(1000), 2);
        assert_eq!(at(2000), 3);
        assert_eq!(at(10_000), 1);
        assert_eq!(c.iter().sum::<u64>(), 6);
        let lines = histogram_lines(&h, 60, 10);
        // 1ms..2ms, 2ms..5ms, 5ms..10ms (empty), 10ms..20ms.
        assert_eq!(lines.len(), 4);
        let text: String = lines[1].spans.iter().map(|s| s.content.as_ref()).collect();
        assert!(text.contains("2ms–5ms"), "{text}");
        assert!(text.contains("3  50%"), "{text}");
    }
}
