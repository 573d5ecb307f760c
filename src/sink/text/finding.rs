//! A finding as a block of text: the headline (time, severity, kind, path,
//! proxy), the message, each hop's request line, the header diff between
//! hops, the other kinds the fault is filed under, and the fix.

use std::fmt::{self, Display, Formatter};

use crate::record::{Finding, Severity};

use anstyle::{AnsiColor, Style};

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
}

impl FindingBlock<'_> {
    fn paint<'s>(&self, style: Style, s: &'s str) -> Paint<'s> {
        Paint { on: self.color, style, s }
    }
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
        for role in ["client", "upstream"] {
            let h = &hops[role];
            let role =
                if role == "client" && self.front_is_forward && hops["upstream"].is_null() { "upstream" } else { role };
            if let Some(flow) = h["flow"].as_str() {
                let line = h["request_line"].as_str().unwrap_or(if h["encrypted"] == true { "(TLS)" } else { "" });
                let st = h["status"].as_u64().map(|x| format!(", answered {x}")).unwrap_or_default();
                writeln!(out, "  {role:<9}{flow}  {line}{st}")?;
            }
        }
        if let Some(diff) = f.detail.get("diff").and_then(|d| d.as_array()).filter(|d| !d.is_empty()) {
            writeln!(out, "  {:<17}{:<28}upstream", "header", "client")?;
            for d in diff {
                let v = |x: &serde_json::Value| x.as_str().map(str::to_string).unwrap_or_else(|| "-".into());
                let change = d["change"].as_str().unwrap_or("");
                let up = format!("{:<24} ({change})", v(&d["upstream"]));
                let up = match change {
                    "missing" | "mangled" => self.paint(plain(AnsiColor::Red), &up).to_string(),
                    _ => up,
                };
                writeln!(out, "  {:<17}{:<28}{}", d["header"].as_str().unwrap_or(""), v(&d["client"]), up)?;
            }
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
