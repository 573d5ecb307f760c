//! Human-readable output: a line per handshake and session (tcpdump-like
//! time of day first), with `-v` a line per HTTP message and WebSocket
//! frame, findings as blocks, and a summary at the end. Identical findings
//! are printed once and counted in the summary.
//!
//! Each piece of text is a `Display` type (lines.rs, finding.rs,
//! summary.rs); this file decides what is printed and groups findings.

mod finding;
mod lines;
mod summary;

use std::collections::BTreeMap;
use std::io::Write;

use super::{Options, Sink};
use crate::flow::key::{FlowKey, FxHashSet};
use crate::record::{Finding, HttpMessage, MessageDir, Record, Severity};
use crate::time::{Stamp, Ts};
pub use finding::FindingBlock;
pub use lines::{FrameText, HandshakeLine, HeadText, HexDump, HttpLine, JoinText, SessionLine};
pub use summary::{SummaryText, memory_line};

/// A count and its noun, singular for one: `N(1, "session")` is
/// "1 session", `N(2, "session")` "2 sessions". Nouns that do not take a
/// plain `s` go through [`Nn`].
pub struct N<'a>(pub u64, pub &'a str);

impl std::fmt::Display for N<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 1 { write!(f, "1 {}", self.1) } else { write!(f, "{} {}s", self.0, self.1) }
    }
}

/// A count with its singular and plural phrase: `Nn(3, "retransmission
/// with different bytes", "retransmissions with different bytes")`.
pub struct Nn<'a>(pub u64, pub &'a str, pub &'a str);

impl std::fmt::Display for Nn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, if self.0 == 1 { self.1 } else { self.2 })
    }
}

/// The text sink, on standard output (unless `--json`).
pub fn build(o: &Options) -> Option<Box<dyn Sink>> {
    (!o.json).then(|| Box::new(TextSink::new(o.stdout(), o.text).with_links(o.links.clone())) as Box<dyn Sink>)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// 0: handshakes and sessions; 1: + messages and frames; 2: + every header.
    pub verbose: u8,
    /// Only the summary.
    pub quiet: bool,
    pub line_buffered: bool,
    /// ANSI colours (stdout is a terminal).
    pub color: bool,
    /// How each line's time is shown (`-t` family, `--time-format`).
    pub time: crate::cli::TimeFormat,
    /// `-A` / `-X`: the heads of the handshakes' HTTP messages.
    pub heads: Option<Heads>,
}

/// `-A` (text) or `-X` (hex and text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heads {
    Ascii,
    Hex,
}

/// Connections whose upgrade request awaits its response, remembered for
/// `-A`/`-X` at most (then forgotten all at once: a response not shown).
const MAX_UPGRADING: usize = 4096;

/// Findings with the same kind, path and hop pair (server addresses) are
/// one group: printed in full once, counted after.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    kind: &'static str,
    path: Option<String>,
    /// The server endpoints of its flows, as printed.
    servers: Vec<String>,
    also: Vec<&'static str>,
}

impl GroupKey {
    fn of(f: &Finding) -> GroupKey {
        let mut servers: Vec<String> = Vec::new();
        for fl in &f.flows {
            let server = fl.dst.to_string();
            if !servers.contains(&server) {
                servers.push(server);
            }
        }
        GroupKey { kind: f.kind.name(), path: f.path.clone(), servers, also: f.also.iter().map(|k| k.name()).collect() }
    }
}

struct Group {
    severity: Severity,
    count: u64,
    first_ts: f64,
}

/// Finding groups remembered for the summary, at most: the keys hold
/// paths from the wire, and a capture with endless distinct paths must not
/// make the sink grow with it.
const MAX_GROUPS: usize = 4096;

pub struct TextSink<W: Write> {
    w: W,
    o: TextOptions,
    /// `-e`: each connection's first link-level header (decode/linkaddr.rs).
    links: Option<crate::decode::linkaddr::SharedLinks>,
    /// `-A`/`-X`: connections (and HTTP/2 streams) whose upgrade request
    /// awaits its response.
    upgrading: FxHashSet<(FlowKey, Option<u32>)>,
    /// The previous and the first line's time (`-ttt`, `-ttttt`).
    prev: Option<Ts>,
    first: Option<Ts>,
    groups: BTreeMap<GroupKey, Group>,
    /// Findings in groups beyond [`MAX_GROUPS`] (printed, not grouped).
    ungrouped: u64,
    /// Handshakes whose one hop in view is a proxy's forward (the newest
    /// 1024), so that their findings label that hop as the handshake
    /// line does.
    forwards: std::collections::VecDeque<u64>,
    /// What joins the newest handshakes to logs (their [`JoinText`]), for
    /// the findings about them or their sessions.
    joins: std::collections::VecDeque<Joined>,
}

/// A handshake's id, its front connection (not an HTTP/2 one, which many
/// handshakes share) and what joins it to logs.
struct Joined {
    id: u64,
    front: Option<FlowKey>,
    join: crate::record::Join,
}

/// Handshakes whose join text is remembered, at most.
const MAX_JOINS: usize = 1024;

impl<W: Write> TextSink<W> {
    pub fn new(w: W, o: TextOptions) -> TextSink<W> {
        TextSink {
            w,
            o,
            upgrading: FxHashSet::default(),
            prev: None,
            first: None,
            groups: BTreeMap::new(),
            ungrouped: 0,
            forwards: Default::default(),
            joins: Default::default(),
            links: None,
        }
    }

    /// `-e`: print each hop's link-level header under its handshake.
    pub fn with_links(mut self, links: Option<crate::decode::linkaddr::SharedLinks>) -> TextSink<W> {
        self.links = links;
        self
    }

    /// `-e`: `  link client A->B: 00:11:.. > 66:77:.., ethertype IPv4 (0x0800)`
    /// for each hop of a handshake (tcpdump -e's wording, of the packet
    /// that opened the connection).
    fn write_links(&mut self, h: &crate::record::Handshake) -> std::io::Result<()> {
        let Some(links) = &self.links else { return Ok(()) };
        let Ok(t) = links.lock() else { return Ok(()) };
        for (role, hop) in [("client", &h.client), ("upstream", &h.upstream)] {
            let Some(hop) = hop else { continue };
            match t.get(hop.flow) {
                Some((l, true)) => writeln!(self.w, "  link {role:<8} {}: {l}", hop.flow)?,
                Some((l, false)) => {
                    writeln!(self.w, "  link {role:<8} {}: {l} (its first packet, {})", hop.flow, hop.flow.reversed())?
                }
                None => writeln!(self.w, "  link {role:<8} {}: not kept", hop.flow)?,
            }
        }
        Ok(())
    }

    /// `-A`/`-X`: whether an HTTP message belongs to a WebSocket handshake
    /// (a request asking for an upgrade, or the response to one).
    fn is_handshake(&mut self, m: &HttpMessage) -> bool {
        let at = (m.flow, m.stream_id);
        if m.dir == MessageDir::Request {
            // A stripped forward has lost its Upgrade but keeps the key.
            let has = |name: &str| m.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
            let upgrade = ["upgrade", "sec-websocket-key", "sec-websocket-version", ":protocol"].into_iter().any(has);
            if upgrade {
                if self.upgrading.len() >= MAX_UPGRADING {
                    self.upgrading.clear();
                }
                self.upgrading.insert(at);
            } else {
                self.upgrading.remove(&at);
            }
            return upgrade;
        }
        // Interim responses (100 Continue) come before the answer.
        if m.status.is_some_and(|s| (100..200).contains(&s) && s != 101) {
            return self.upgrading.contains(&at);
        }
        self.upgrading.remove(&at)
    }

    /// After a record: flushed at once with `-l` (and live).
    fn end_line(&mut self) -> std::io::Result<()> {
        if self.o.line_buffered { self.w.flush() } else { Ok(()) }
    }

    /// Writes a line's time (and the space after it), as `-t` says.
    fn stamp(&mut self, ts: f64) -> std::io::Result<()> {
        let ts = Ts::from_secs_f64(ts);
        let s = Stamp { ts, format: self.o.time, prev: self.prev, first: self.first };
        self.prev = Some(ts);
        self.first.get_or_insert(ts);
        if s.shown() { write!(self.w, "{s} ") } else { Ok(()) }
    }

    /// The groups, worst first, then in the order they were first seen.
    fn groups_table(&mut self) -> std::io::Result<()> {
        if !self.groups.is_empty() {
            self.w.write_all(b"findings (identical ones grouped by kind, path and hops):\n")?;
            let mut gs: Vec<(&GroupKey, &Group)> = self.groups.iter().collect();
            gs.sort_by(|a, b| b.1.severity.cmp(&a.1.severity).then(a.1.first_ts.total_cmp(&b.1.first_ts)));
            for (k, g) in gs {
                let kind =
                    if k.also.is_empty() { k.kind.to_string() } else { format!("{}+{}", k.kind, k.also.join("+")) };
                writeln!(
                    self.w,
                    "  {:<8} {:<28} {:<16} {:<40} x{}",
                    g.severity.name(),
                    kind,
                    k.path.as_deref().unwrap_or("-"),
                    k.servers.join(" -> "),
                    g.count
                )?;
            }
        }
        if self.ungrouped > 0 {
            writeln!(self.w, "  and {} in further groups (not counted here)", N(self.ungrouped, "finding"))?;
        }
        Ok(())
    }

    /// The finding is about a handshake whose one hop is a forward.
    fn forward(&self, f: &Finding) -> bool {
        f.detail.get("handshake").and_then(|v| v.as_u64()).is_some_and(|id| self.forwards.contains(&id))
    }

    /// What joins a finding to logs: its handshake's, or its one session's
    /// (by the session's front connection).
    fn join_of(&self, f: &Finding) -> Option<&crate::record::Join> {
        let j = match f.detail.get("handshake").and_then(|v| v.as_u64()) {
            Some(id) => self.joins.iter().rev().find(|j| j.id == id),
            None if f.detail.get("session").is_some_and(|s| s.is_u64()) => {
                let front = f.flows.first()?;
                self.joins.iter().rev().find(|j| j.front.as_ref() == Some(front))
            }
            None => None,
        };
        j.map(|j| &j.join)
    }

    fn block<'a>(&'a self, f: &'a Finding) -> FindingBlock<'a> {
        FindingBlock { f, color: self.o.color, front_is_forward: self.forward(f), join: self.join_of(f) }
    }

    /// A finding: printed in full the first time its group is seen.
    fn finding(&mut self, f: &Finding) -> std::io::Result<()> {
        let key = GroupKey::of(f);
        let first = !self.groups.contains_key(&key);
        if first && self.groups.len() >= MAX_GROUPS {
            self.ungrouped += 1;
            self.stamp(f.ts)?;
            let block = self.block(f).to_string();
            return self.w.write_all(block.as_bytes());
        }
        let g = self.groups.entry(key).or_insert(Group { severity: f.severity, count: 0, first_ts: f.ts });
        g.count += 1;
        if first {
            self.stamp(f.ts)?;
            let block = self.block(f).to_string();
            self.w.write_all(block.as_bytes())?;
        }
        Ok(())
    }
}

impl<W: Write + Send> Sink for TextSink<W> {
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        // Every string from the wire is made terminal-safe here, once,
        // before any formatting (src/escape.rs).
        let r = crate::escape::record(r);
        match r.as_ref() {
            Record::Summary(s) => {
                if !self.o.quiet {
                    writeln!(self.w)?;
                }
                write!(self.w, "{}", SummaryText(s))?;
                self.groups_table()?;
            }
            _ if self.o.quiet => return Ok(()),
            Record::Handshake(h) => {
                if h.upstream.is_none() && h.join.front_forwarded {
                    self.forwards.push_back(h.id);
                    if self.forwards.len() > 1024 {
                        self.forwards.pop_front();
                    }
                }
                if !(JoinText { join: &h.join, remote_always: true }).is_empty() {
                    let front = h.client.as_ref().or(h.upstream.as_ref()).filter(|h| h.stream_id.is_none());
                    self.joins.push_back(Joined { id: h.id, front: front.map(|h| h.flow), join: h.join.clone() });
                    if self.joins.len() > MAX_JOINS {
                        self.joins.pop_front();
                    }
                }
                self.stamp(h.ts)?;
                writeln!(self.w, "{}", HandshakeLine(h))?;
                self.write_links(h)?
            }
            Record::Session(s) => {
                self.stamp(s.end)?;
                writeln!(self.w, "{}", SessionLine(s))?
            }
            Record::Http(m) if self.o.heads.is_some() => {
                if !self.is_handshake(m) {
                    if self.o.verbose == 0 {
                        return Ok(());
                    }
                    self.stamp(m.ts)?;
                    writeln!(self.w, "{}", HttpLine { m, all_headers: self.o.verbose > 1 })?;
                    return self.end_line();
                }
                self.stamp(m.ts)?;
                let (a, b) = (m.flow.src, m.flow.dst);
                let (from, to, what) =
                    if m.dir == MessageDir::Request { (a, b, "request") } else { (b, a, "response") };
                let head = HeadText(m).to_string();
                match m.stream_id {
                    Some(id) => writeln!(self.w, "{from}->{to}: HTTP/2 stream {id} {what} head, {} bytes", head.len())?,
                    None => writeln!(self.w, "{from}->{to}: HTTP {what} head, {} bytes", head.len())?,
                }
                match self.o.heads {
                    Some(Heads::Hex) => write!(self.w, "{}", HexDump(head.as_bytes()))?,
                    _ => write!(self.w, "{}", head.replace("\r\n", "\n"))?,
                }
            }
            Record::Http(m) if self.o.verbose > 0 => {
                self.stamp(m.ts)?;
                writeln!(self.w, "{}", HttpLine { m, all_headers: self.o.verbose > 1 })?
            }
            Record::Frame(f) if self.o.verbose > 0 => {
                self.stamp(f.ts)?;
                writeln!(self.w, "{}", FrameText(f))?
            }
            Record::Http(_) | Record::Frame(_) => return Ok(()),
            // One fault, one block: the lead finding names the others.
            Record::Finding(f) if !f.primary => return Ok(()),
            Record::Finding(f) => self.finding(f)?,
        }
        self.end_line()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}
