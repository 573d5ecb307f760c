//! A finding as a block of text: the headline (time, severity, kind, path,
//! proxy), the message, each hop's request line, the header diff between
//! hops, the other kinds the fault is filed under, and the fix.

use std::fmt::{self, Display, Formatter};

use crate::record::{Finding, Severity};

use anstyle::{AnsiColor, Style};
use unicode_width::UnicodeWidthStr;

/// Text in a style (anstyle), when colours are on.
struct Paint<'a> {
    on: bool,
    style: Style,
    s: &'a str,
}

impl Display for Paint<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.on { write!(f, "{}{}{:#}", self.style, self.s, self.style) } else { f.write_str(self.s) }
    }
}

const BOLD: Style = Style::new().bold();
const fn bold(c: AnsiColor) -> Style {
    Style::new().bold().fg_color(Some(anstyle::Color::Ansi(c)))
}
const fn plain(c: AnsiColor) -> Style {
    Style::new().fg_color(Some(anstyle::Color::Ansi(c)))
}

pub struct FindingBlock<'a> {
    pub f: &'a Finding,
    /// ANSI colours.
    pub color: bool,
    /// Its one hop in view is a proxy's forward (its handshake line says
    /// "client not seen"): that hop is labelled upstream here too.
    pub front_is_forward: bool,
    /// What joins it to the proxy's and the application's logs (its
    /// handshake's), when known.
    pub join: Option<&'a crate::record::Join>,
}

impl FindingBlock<'_> {
    fn paint<'s>(&self, style: Style, s: &'s str) -> Paint<'s> {
        Paint { on: self.color, style, s }
    }

    /// The header diff between hops, in three columns (name, client,
    /// upstream and the change) as wide as what they hold, at least as
    /// wide as they always were, and at most [`COLUMN_MAX`]: a cell wider
    /// than that is written whole and what follows it starts on the next
    /// line at its column, so a name never runs into its value. Widths are
    /// terminal columns (a CJK character takes two; the values are escaped
    /// before here, so no control character is in them).
    fn diff(&self, out: &mut Formatter<'_>, diff: &[serde_json::Value]) -> fmt::Result {
        let v = |x: &serde_json::Value| x.as_str().unwrap_or("-").to_string();
        let rows: Vec<[String; 4]> = diff
            .iter()
            .map(|d| [v(&d["header"]), v(&d["client"]), v(&d["upstream"]), d["change"].as_str().unwrap_or("").into()])
            .collect();
        let fit = |i: usize, min: usize| {
            let widest = rows.iter().map(|r| r[i].width()).filter(|&w| w <= COLUMN_MAX).max().unwrap_or(0);
            widest.max(min)
        };
        // The widths before columns followed their content: 15, 26, 24.
        let (name_w, client_w, up_w) = (fit(0, 15), fit(1, 26), fit(2, 24));
        let at_client = 2 + name_w + 2;
        let at_up = at_client + client_w + 2;
        out.write_str("  ")?;
        cell(out, 2, "header", at_client)?;
        cell(out, at_client, "client", at_up)?;
        writeln!(out, "upstream")?;
        for [name, client, up, change] in &rows {
            out.write_str("  ")?;
            cell(out, 2, name, at_client)?;
            cell(out, at_client, client, at_up)?;
            let mut up = up.clone();
            up.extend(std::iter::repeat_n(' ', (up_w + 1).saturating_sub(up.width()).max(1)));
            up.push_str(&format!("({change})"));
            let up = match change.as_str() {
                "missing" | "mangled" => self.paint(plain(AnsiColor::Red), &up).to_string(),
                _ => up,
            };
            writeln!(out, "{up}")?;
        }
        Ok(())
    }
}

/// The widest a header diff's column grows for its content; a wider cell
/// pushes what follows it to the next line.
const COLUMN_MAX: usize = 40;

/// Writes `s` from column `col` and pads to column `to`, two columns apart
/// at least: when `s` reaches past `to - 2`, the line is broken and the
/// next one indented to `to`.
fn cell(out: &mut Formatter<'_>, col: usize, s: &str, to: usize) -> fmt::Result {
    out.write_str(s)?;
    let end = col + s.width();
    if end + 2 <= to {
        write!(out, "{:1$}", "", to - end)?;
    } else {
        write!(out, "\n{:1$}", "", to)?;
    }
    Ok(())
}

impl Display for FindingBlock<'_> {
    fn fmt(&self, out: &mut Formatter<'_>) -> fmt::Result {
        let f = self.f;
        let sev = match f.severity {
            Severity::Error => self.paint(bold(AnsiColor::Red), "ERROR"),
            Severity::Warning => self.paint(bold(AnsiColor::Yellow), "WARNING"),
            Severity::Info => self.paint(bold(AnsiColor::Blue), "INFO"),
        };
        write!(out, "{sev} {}", self.paint(BOLD, f.kind.name()))?;
        if let Some(p) = &f.path {
            write!(out, " {p}")?;
        }
        let seen = f.detail.get("proxy_evidence").and_then(|e| e.as_array()).is_some_and(|e| !e.is_empty());
        match f.detail.get("proxy").and_then(|p| p.as_str()) {
            Some(p) => write!(out, " via {p}")?,
            None if seen => out.write_str(" via an unrecognised proxy")?,
            None if f.detail.get("proxy_evidence").is_some() => out.write_str(" (no proxy seen)")?,
            None => {}
        }
        write!(out, "\n  {}\n", f.message)?;
        let hops = &f.detail["hops"];
        let mut client_shown = false;
        for role in ["client", "upstream"] {
            let h = &hops[role];
            let front = role == "client";
            let role =
                if role == "client" && self.front_is_forward && hops["upstream"].is_null() { "upstream" } else { role };
            if let Some(flow) = h["flow"].as_str() {
                let line = h["request_line"].as_str().unwrap_or(if h["encrypted"] == true { "(TLS)" } else { "" });
                let st = h["status"].as_u64().map(|x| format!(", answered {x}")).unwrap_or_default();
                writeln!(out, "  {role:<9}{flow}  {line}{st}")?;
                client_shown |= front;
            }
        }
        // As on the handshake line: the client address read from the
        // capture is the front hop's source, when its line is above.
        if let Some(join) = self.join {
            let j = super::JoinText { join, remote_always: !client_shown };
            if !j.is_empty() {
                writeln!(out, "  logs as  {j}")?;
            }
        }
        if let Some(diff) = f.detail.get("diff").and_then(|d| d.as_array()).filter(|d| !d.is_empty()) {
            self.diff(out, diff)?;
        }
        if !f.also.is_empty() {
            let also: Vec<&str> = f.also.iter().map(|k| k.name()).collect();
            writeln!(out, "  same fault, also filed as: {}", also.join(", "))?;
        }
        if let Some(fix) = &f.fix {
            out.write_str("  fix:\n")?;
            for l in fix.lines() {
                writeln!(out, "    {}", self.paint(plain(AnsiColor::Green), l))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FindingKind;
    use serde_json::json;

    fn block(diff: serde_json::Value) -> String {
        let f = Finding {
            ty: "finding",
            kind: FindingKind::UpgradeStripped,
            severity: Severity::Error,
            ts: 0.0,
            flows: Vec::new(),
            path: Some("/ws".into()),
            message: "m".into(),
            fix: None,
            detail: json!({ "diff": diff }),
            fault: 1,
            primary: true,
            also: Vec::new(),
        };
        FindingBlock { f: &f, color: false, front_is_forward: false, join: None }.to_string()
    }

    /// The diff's lines: from the header line on.
    fn table(s: &str) -> Vec<&str> {
        s.lines().skip_while(|l| !l.starts_with("  header")).collect()
    }

    /// The terminal column where `needle` starts on `line`.
    fn col(line: &str, needle: &str) -> usize {
        line[..line.find(needle).unwrap_or_else(|| panic!("{needle:?} not in {line:?}"))].width()
    }

    fn row(h: &str, c: Option<&str>, u: Option<&str>, change: &str) -> serde_json::Value {
        json!({"header": h, "client": c, "upstream": u, "change": change})
    }

    #[test]
    fn short_names_keep_the_columns_they_always_had() {
        let s = block(json!([row("Upgrade", Some("websocket"), None, "missing")]));
        assert_eq!(
            table(&s),
            [
                "  header           client                      upstream",
                "  Upgrade          websocket                   -                        (missing)",
            ]
        );
    }

    /// Names of 16 characters and more (`X-Forwarded-Proto`,
    /// `Sec-WebSocket-Protocol`) used to run into their client value.
    #[test]
    fn long_names_widen_the_column_and_never_touch_their_value() {
        let s = block(json!([
            row("Host", Some("a:1"), Some("b"), "changed"),
            row("X-Forwarded-Proto", None, Some("https"), "added"),
            row("Sec-WebSocket-Protocol", Some("v1, REDACTED"), None, "missing"),
        ]));
        let t = table(&s);
        // Every value starts in one column, two past the longest name.
        let c = col(t[0], "client");
        assert_eq!(c, 2 + "Sec-WebSocket-Protocol".len() + 2);
        assert_eq!(col(t[1], "a:1"), c);
        assert_eq!(col(t[2], " -") + 1, c);
        assert_eq!(col(t[3], "v1, REDACTED"), c);
        let u = col(t[0], "upstream");
        assert_eq!((col(t[1], "b "), col(t[2], "https"), col(t[3], "- ")), (u, u, u));
        assert!(t[2].starts_with("  X-Forwarded-Proto  "), "{}", t[2]);
        assert!(t[3].starts_with("  Sec-WebSocket-Protocol  v1"), "{}", t[3]);
    }

    /// A name or value wider than a column may grow (a hostile header) is
    /// written whole; what follows it goes to the next line, at its column.
    #[test]
    fn a_cell_wider_than_any_column_breaks_the_line() {
        let name = "X-".to_string() + &"a".repeat(60);
        let value = "v".repeat(70);
        let s = block(json!([
            row("Host", Some("h"), Some("h2"), "changed"),
            row(&name, Some(&value), Some("u"), "changed"),
        ]));
        let t = table(&s);
        let (c, u) = (col(t[0], "client"), col(t[0], "upstream"));
        assert_eq!(c, 2 + 15 + 2, "the long name does not widen the column");
        assert_eq!(t[2], format!("  {name}"));
        assert_eq!(t[3], format!("{:c$}{value}", ""));
        assert_eq!(col(t[4], "u"), u);
        assert!(t[4].ends_with("(changed)"));
    }

    /// Widths are terminal columns: a wide (CJK) value takes two columns
    /// a character, an escaped control character its escape's.
    #[test]
    fn wide_and_escaped_characters_are_measured_in_columns() {
        let s = block(json!([
            row("X-Name", Some("名前名前名前名前名前名前名前名前"), Some("x"), "changed"),
            row("X-Esc", Some("a\\x1b[2Jb"), Some("y"), "changed"),
        ]));
        let t = table(&s);
        let u = col(t[0], "upstream");
        assert_eq!(u, 2 + 15 + 2 + 32 + 2, "16 wide characters take 32 columns");
        assert_eq!((col(t[1], "x "), col(t[2], "y ")), (u, u));
    }
}
