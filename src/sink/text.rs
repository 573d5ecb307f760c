//! Human-readable output: a line per handshake and session (tcpdump-like
//! time of day first), with `-v` a line per HTTP message and WebSocket
//! frame, findings as blocks, and a summary at the end.

use std::io::Write;

use super::Sink;
use std::collections::BTreeMap;

use crate::record::{
    Dirs, Finding, FindingKind, Handshake, Hop, HttpMessage, MessageDir, Percentiles, Record, Role, Session, Severity,
    Summary,
};
use crate::time::Ts;

#[derive(Debug, Clone, Copy)]
pub struct TextOptions {
    /// 0: handshakes and sessions; 1: + messages and frames; 2: + every header.
    pub verbose: u8,
    /// Only the summary.
    pub quiet: bool,
    pub line_buffered: bool,
    /// ANSI colours (stdout is a terminal).
    pub color: bool,
}

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
    groups: BTreeMap<GroupKey, Group>,
    /// Findings in groups beyond [`MAX_GROUPS`] (printed, not grouped).
    ungrouped: u64,
}

impl<W: Write> TextSink<W> {
    pub fn new(w: W, o: TextOptions) -> TextSink<W> {
        TextSink { w, o, groups: BTreeMap::new(), ungrouped: 0 }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.o.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    fn finding_block(&self, f: &Finding) -> String {
        let sev = match f.severity {
            Severity::Error => self.paint("1;31", "ERROR"),
            Severity::Warning => self.paint("1;33", "WARNING"),
            Severity::Info => self.paint("1;34", "INFO"),
        };
        let mut s = format!("{} {sev} {}", tod(f.ts), self.paint("1", f.kind.name()));
        if let Some(p) = &f.path {
            s += &format!(" {p}");
        }
        let seen = f.detail.get("proxy_evidence").and_then(|e| e.as_array()).is_some_and(|e| !e.is_empty());
        match f.detail.get("proxy").and_then(|p| p.as_str()) {
            Some(p) => s += &format!(" via {p}"),
            None if seen => s += " via an unrecognised proxy",
            None if f.detail.get("proxy_evidence").is_some() => s += " (no proxy seen)",
            None => {}
        }
        s += &format!("\n  {}\n", f.message);
        let hops = &f.detail["hops"];
        for role in ["client", "upstream"] {
            let h = &hops[role];
            if let Some(flow) = h["flow"].as_str() {
                let line = h["request_line"].as_str().unwrap_or(if h["encrypted"] == true { "(TLS)" } else { "" });
                let st = h["status"].as_u64().map(|x| format!(" -> {x}")).unwrap_or_default();
                s += &format!("  {role:<9}{flow}  {line}{st}\n");
            }
        }
        if let Some(diff) = f.detail.get("diff").and_then(|d| d.as_array()).filter(|d| !d.is_empty()) {
            s += &format!("  {:<17}{:<28}{}\n", "header", "client", "upstream");
            for d in diff {
                let v = |x: &serde_json::Value| x.as_str().map(str::to_string).unwrap_or_else(|| "-".into());
                let change = d["change"].as_str().unwrap_or("");
                let up = v(&d["upstream"]);
                let up = match change {
                    "missing" | "mangled" => self.paint("31", &format!("{up:<24} ({change})")),
                    _ => format!("{up:<24} ({change})"),
                };
                s += &format!("  {:<17}{:<28}{}\n", d["header"].as_str().unwrap_or(""), v(&d["client"]), up);
            }
        }
        if !f.also.is_empty() {
            s += &format!("  same fault, also filed as: {}\n", names(&f.also).join(", "));
        }
        if let Some(fix) = &f.fix {
            s += "  fix:\n";
            for l in fix.lines() {
                s += &format!("    {}\n", self.paint("32", l));
            }
        }
        s
    }
}

fn names(kinds: &[FindingKind]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.name()).collect()
}

fn group_key(f: &Finding) -> GroupKey {
    let mut servers: Vec<String> = Vec::new();
    for fl in &f.flows {
        let server = fl.dst.to_string();
        if !servers.contains(&server) {
            servers.push(server);
        }
    }
    GroupKey { kind: f.kind.name(), path: f.path.clone(), servers, also: names(&f.also) }
}

fn tod(ts: f64) -> String {
    Ts::from_secs_f64(ts).time_of_day().to_string()
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} ms"))
}

fn status(h: &Hop) -> String {
    match (h.status, h.end) {
        (Some(s), _) => s.to_string(),
        (None, Some(e)) => format!("no response ({e})"),
        (None, None) => "no response yet".into(),
    }
}

/// A TLS hop: version, suite, SNI, ALPN, and whether it was decrypted.
fn tls_tag(h: &Hop) -> String {
    let Some(t) = &h.tls else {
        return format!(" [TLS{}]", h.sni.as_ref().map(|s| format!(" {s}")).unwrap_or_default());
    };
    let mut v = vec![t.version.unwrap_or("TLS").to_string()];
    v.extend(t.cipher.clone());
    if let Some(s) = t.sni.as_ref().or(h.sni.as_ref()) {
        v.push(format!("SNI {s}"));
    }
    if let Some(a) = &t.alpn {
        v.push(format!("ALPN {a}"));
    }
    let state = match (t.decrypted, t.reason) {
        (true, _) => "decrypted".to_string(),
        (false, Some(r)) => format!("not decrypted: {r}"),
        (false, None) => "not decrypted".to_string(),
    };
    format!(" [{}, {state}]", v.join(" "))
}

/// What stands out in a hop's upgrade request, if anything.
fn oddities(h: &Hop) -> String {
    if h.encrypted {
        return tls_tag(h);
    }
    let tls = if h.tls.is_some() { tls_tag(h) } else { String::new() };
    if let Some(id) = h.stream_id {
        // HTTP/2: the stream, and RFC 8441's `:protocol` (no Upgrade there).
        let p = match &h.protocol {
            Some(p) => format!(":protocol {p}"),
            None => "no :protocol".into(),
        };
        return format!("{tls} [stream {id}, {p}]");
    }
    let mut v = Vec::new();
    if h.version == Some(crate::proto::Version::Http10) {
        v.push("HTTP/1.0".to_string());
    }
    match &h.upgrade {
        None => v.push("no Upgrade".into()),
        Some(u) if !u.to_ascii_lowercase().contains("websocket") => v.push(format!("Upgrade: {u}")),
        _ => {}
    }
    match &h.connection {
        None => v.push("no Connection".into()),
        Some(c) if !c.to_ascii_lowercase().contains("upgrade") => v.push(format!("Connection: {c}")),
        _ => {}
    }
    if v.is_empty() { tls } else { format!("{tls} [{}]", v.join(", ")) }
}

fn handshake_line(h: &Handshake) -> String {
    let front = h.client.as_ref().or(h.upstream.as_ref());
    let method = front.and_then(|f| f.method.as_deref()).unwrap_or("GET");
    let mut s = format!("{} handshake #{} {} {} {}", tod(h.ts), h.id, method, h.path, h.outcome.name());
    if let Some(c) = &h.client {
        s += &format!(" | client {} {} {}{}", c.flow, status(c), ms(h.latency_ms.client), oddities(c));
        if c.encrypted {
            s = s.replace(&format!(" {} -", status(c)), "");
        }
    } else {
        s += " | client not seen";
    }
    match &h.upstream {
        Some(u) => s += &format!(" | upstream {} {} {}{}", u.flow, status(u), ms(h.latency_ms.upstream), oddities(u)),
        None => s += " | upstream not seen",
    }
    if h.hop_index > 0 {
        s += &format!(" (chain {} hop {})", h.chain, h.hop_index);
    }
    s
}

fn dirs(d: &Dirs) -> String {
    format!("{}>/{}<", d.to_server, d.to_client)
}

fn session_line(s: &Session) -> String {
    let tls = if s.hops.first().is_some_and(|h| h.encrypted) { " [TLS]" } else { "" };
    // An HTTP/2 client hop: the session is one stream of that connection.
    let stream = s.hops.iter().find(|h| h.role == Role::Client).and_then(|h| h.stream_id);
    let tls = match stream {
        Some(id) => format!("{tls} #{id}"),
        None => tls.to_string(),
    };
    let flows = match (&s.client_flow, &s.upstream_flow) {
        (Some(c), Some(u)) => format!("{c}{tls} | {u}"),
        (Some(c), None) => format!("{c}{tls}"),
        (None, Some(u)) => format!("(client not seen) | {u}"),
        (None, None) => "-".into(),
    };
    let close = if s.open {
        "still open at end of capture".to_string()
    } else {
        let mut c = format!("closed by {} ({})", s.close.by.map_or("?", |b| b.name()), s.close.how);
        if let Some(code) = s.close.code {
            c += &format!(" code {code}");
        }
        if let Some(r) = &s.close.reason {
            c += &format!(" \"{r}\"");
        }
        c += if s.close.clean { ", clean" } else { ", no close handshake" };
        if let Some(i) = s.close.idle_s
            && i >= 1.0
        {
            c += &format!(", after {i:.1} s idle");
        }
        c
    };
    let hb = s
        .heartbeat
        .as_ref()
        .map(|h| format!(", {} {} every {:.1} s", h.from, h.kind, h.interval_s))
        .unwrap_or_default();
    format!(
        "{} session #{} {} {} {:.1} s, frames {}{}, {}",
        tod(s.end),
        s.id,
        s.path,
        flows,
        s.duration_s,
        dirs(&s.frames),
        hb,
        close
    )
}

fn http_line(m: &HttpMessage, all_headers: bool) -> String {
    let (a, b) = (m.flow.src, m.flow.dst);
    let (from, to) = if m.dir == MessageDir::Request { (a, b) } else { (b, a) };
    let mut s = match (&m.method, m.status) {
        (Some(meth), _) => format!(
            "{} {} > {}: HTTP {} {} {}",
            tod(m.ts),
            from,
            to,
            meth,
            m.target.as_deref().unwrap_or(""),
            m.version
        ),
        (None, Some(st)) => {
            format!("{} {} > {}: HTTP {} {} {}", tod(m.ts), from, to, m.version, st, m.reason.as_deref().unwrap_or(""))
        }
        _ => String::new(),
    };
    const NOTABLE: &[&str] = &[
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-accept",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "origin",
        "x-forwarded-for",
        "x-forwarded-proto",
        "server",
        "via",
    ];
    for (n, v) in &m.headers {
        if all_headers {
            s += &format!("\n    {n}: {v}");
        } else if NOTABLE.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            s += &format!(" [{n}: {v}]");
        }
    }
    s
}

/// What the memory budget gave up, or None when it gave up nothing.
pub fn memory_line(m: &crate::record::Memory) -> Option<String> {
    let e = &m.evicted;
    if e.total()
        + m.dropped_connections
        + m.shed_connections
        + m.records_written_early
        + m.h2_connections_forgotten
        + m.closes_judged_early
        + m.socketio_sessions_forgotten
        == 0
    {
        return None;
    }
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    let mut s = format!(
        "memory budget {} (peak {}) was full: {} connections evicted ({} half-open, {} established, {} upgraded)",
        mib(m.budget_bytes),
        mib(m.peak_bytes),
        e.total(),
        e.half_open,
        e.established,
        e.upgraded
    );
    if m.dropped_connections > 0 {
        s += &format!(", {} new connections not followed", m.dropped_connections);
    }
    if m.shed_connections > 0 {
        s += &format!(", buffers given up on {} connections ({})", m.shed_connections, mib(m.shed_bytes));
    }
    if m.records_written_early > 0 {
        s += &format!(", {} records written out of time order", m.records_written_early);
    }
    if m.h2_connections_forgotten > 0 {
        s += &format!(", {} HTTP/2 connection views forgotten", m.h2_connections_forgotten);
    }
    if m.closes_judged_early > 0 {
        s += &format!(", {} abnormal closes judged early", m.closes_judged_early);
    }
    if m.socketio_sessions_forgotten > 0 {
        s += &format!(", {} Socket.IO sessions forgotten", m.socketio_sessions_forgotten);
    }
    Some(s)
}

fn summary_text(s: &Summary) -> String {
    let h = &s.handshakes;
    let mut out = format!(
        "{} packets ({} bytes, {} TCP), {} connections, {:.3} s of capture\n",
        s.packets, s.bytes, s.tcp_packets, s.flows, s.elapsed_s
    );
    out += &format!(
        "{} WebSocket handshakes: {} upgraded, {} rejected, {} failed, {} incomplete; {} sessions; {} HTTP requests\n",
        h.total, h.upgraded, h.rejected, h.failed, h.incomplete, s.sessions, s.http_requests
    );
    let kv = |m: &std::collections::BTreeMap<&str, u64>| {
        m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    };
    if !s.decode_errors.is_empty() {
        out += &format!("decode errors: {}\n", kv(&s.decode_errors));
    }
    if !s.skipped.is_empty() {
        out += &format!("not analysed: {}\n", kv(&s.skipped));
    }
    let r = &s.reassembly;
    if r.gaps > 0 || r.limit_hits > 0 || r.rexmit_inconsistent > 0 {
        out += &format!("reassembly: {} gaps ({} bytes), {} buffer limit hits", r.gaps, r.gap_bytes, r.limit_hits);
        if r.rexmit_inconsistent > 0 {
            out += &format!(", {} retransmissions with different bytes (first copy kept)", r.rexmit_inconsistent);
        }
        out += "\n";
    }
    if let Some(line) = memory_line(&s.memory) {
        out += &line;
        out += "\n";
    }
    if !s.http_anomalies.is_empty() {
        out += &format!("parse anomalies: {}\n", kv(&s.http_anomalies));
    }
    if !s.paths.is_empty() {
        out += "upgrade success by path:\n";
        for r in &s.paths {
            out += &format!("  {:<40} {:>6}/{:<6} {:>5.1}%\n", r.key, r.upgraded, r.attempts, r.rate * 100.0);
        }
    }
    if !s.upstreams.is_empty() {
        out += "upgrade success by upstream:\n";
        for r in &s.upstreams {
            out += &format!("  {:<40} {:>6}/{:<6} {:>5.1}%\n", r.key, r.upgraded, r.attempts, r.rate * 100.0);
        }
    }
    let l = &s.latency_ms;
    if l.client.is_some() || l.upstream.is_some() {
        out += &format!(
            "latency (ms)         {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}\n",
            "p50", "p90", "p99", "p99.9", "max", "n"
        );
        let row = |name: &str, p: &Option<Percentiles>| match p {
            Some(p) => format!(
                "  {name:<19}{:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}\n",
                p.p50, p.p90, p.p99, p.p999, p.max, p.n
            ),
            None => String::new(),
        };
        out += &row("client handshake", &l.client);
        out += &row("upstream handshake", &l.upstream);
        out += &row("proxy overhead", &l.overhead);
        out += &row("frame relay", &l.relay);
    }
    if let Some(t) = &s.tls {
        out += &tls_text(t, &kv);
    }
    if let Some(h) = &s.h2 {
        out += &h2_text(h, &kv);
    }
    if !s.findings.is_empty() {
        let by_kind: Vec<String> = s.findings.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out += &format!("findings by kind: {}\n", by_kind.join(", "));
    }
    if let Some(c) = &s.capture {
        out += &format!(
            "capture: {} received, {} dropped by kernel, {} dropped by interface, {} dropped before analysis\n",
            c.received.map_or("-".into(), |v| v.to_string()),
            c.dropped_kernel.map_or("-".into(), |v| v.to_string()),
            c.dropped_interface.map_or("-".into(), |v| v.to_string()),
            c.dropped_queue.map_or("-".into(), |v| v.to_string()),
        );
    }
    if s.truncated {
        out += "capture file is truncated: everything up to the cut was analysed\n";
    }
    if s.damaged {
        out += "capture file is damaged: everything before the damage was analysed, nothing after it\n";
    }
    out
}

/// The summary's HTTP/2 lines: connections, streams, WebSocket streams,
/// resets, and whatever the bounds dropped.
fn h2_text(h: &crate::record::H2Summary, kv: &dyn Fn(&BTreeMap<&str, u64>) -> String) -> String {
    let mut out = format!(
        "HTTP/2: {} connections ({} offering WebSockets, RFC 8441), {} streams, {} WebSocket streams ({} accepted)",
        h.connections, h.connect_protocol_offered, h.streams, h.websocket_streams, h.websocket_accepted
    );
    if !h.resets.is_empty() {
        out += &format!("; RST_STREAM: {}", kv(&h.resets));
    }
    if h.goaways > 0 {
        out += &format!("; {} GOAWAY", h.goaways);
    }
    out += "\n";
    let dropped = [
        (h.streams_dropped, "streams not followed (cap)"),
        (h.streams_over_limit, "streams over the server's limit"),
        (h.hpack_errors, "HPACK errors"),
        (h.header_blocks_lost, "header blocks not decoded"),
        (h.header_lists_dropped, "header lists over the cap"),
        (h.header_lists_over_limit, "header lists over the receiver's limit"),
        (h.oversized_frames, "oversized frames skipped"),
        (h.desyncs, "directions lost to gaps"),
        (h.flow_control_overruns, "flow-control overruns"),
    ];
    let v: Vec<String> = dropped.iter().filter(|(n, _)| *n > 0).map(|(n, w)| format!("{n} {w}")).collect();
    if !v.is_empty() {
        out += &format!("  {}\n", v.join(", "));
    }
    out
}

/// The summary's TLS lines: what was decrypted, what was not and why, and
/// what the key logs held (counts only: keys are never printed).
fn tls_text(t: &crate::record::TlsSummary, kv: &dyn Fn(&BTreeMap<&str, u64>) -> String) -> String {
    let mut out = format!("TLS: {} connections, {} decrypted", t.connections, t.decrypted);
    if t.decrypted > 0 {
        out += &format!(" ({} records, {} bytes of application data", t.records, t.bytes);
        if t.key_updates > 0 {
            out += &format!(", {} key updates", t.key_updates);
        }
        if t.late_keys > 0 {
            out += &format!(", {} read when their keys arrived late", t.late_keys);
        }
        out += ")";
    }
    out += "\n";
    if !t.not_decrypted.is_empty() {
        out += &format!(
            "  not decrypted: {}; those hops are inferred from the other side of the proxy\n",
            kv(&t.not_decrypted)
        );
    }
    if t.auth_failures > 0 {
        out += &format!("  {} records failed authentication (wrong keys or damaged records)\n", t.auth_failures);
    }
    if t.held_dropped > 0 {
        out += &format!("  {} bytes of records dropped waiting for keys that did not come\n", t.held_dropped);
    }
    if let Some(k) = &t.keylog {
        let mut src = Vec::new();
        if k.files > 0 {
            src.push(format!("{} key log file{}", k.files, if k.files == 1 { "" } else { "s" }));
        }
        if k.dsb > 0 {
            src.push(format!("{} pcapng secrets block{}", k.dsb, if k.dsb == 1 { "" } else { "s" }));
        }
        out += &format!(
            "  keys: {}: {} lines, {} secrets, {} not understood, {} unused labels",
            src.join(" and "),
            k.lines,
            k.secrets,
            k.malformed,
            k.ignored
        );
        if k.evicted > 0 {
            out += &format!(", {} connections forgotten (bound)", k.evicted);
        }
        if k.read_errors > 0 {
            out += &format!(", {} read errors", k.read_errors);
        }
        out += "\n";
    }
    out
}

impl<W: Write> Sink for TextSink<W> {
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        // Every string from the wire is made terminal-safe here, once,
        // before any formatting (src/escape.rs).
        let r = crate::escape::record(r);
        let line = match r.as_ref() {
            Record::Summary(s) => {
                if !self.o.quiet {
                    writeln!(self.w)?;
                }
                let mut t = summary_text(s);
                if !self.groups.is_empty() {
                    t += "findings (identical ones grouped by kind, path and hops):\n";
                    let mut gs: Vec<(&GroupKey, &Group)> = self.groups.iter().collect();
                    gs.sort_by(|a, b| b.1.severity.cmp(&a.1.severity).then(a.1.first_ts.total_cmp(&b.1.first_ts)));
                    for (k, g) in gs {
                        let kind = if k.also.is_empty() {
                            k.kind.to_string()
                        } else {
                            format!("{}+{}", k.kind, k.also.join("+"))
                        };
                        t += &format!(
                            "  {:<8} {:<28} {:<16} {:<40} x{}\n",
                            g.severity.name(),
                            kind,
                            k.path.as_deref().unwrap_or("-"),
                            k.servers.join(" => "),
                            g.count
                        );
                    }
                }
                if self.ungrouped > 0 {
                    t += &format!("  and {} findings in further groups (not counted here)\n", self.ungrouped);
                }
                t
            }
            _ if self.o.quiet => return Ok(()),
            Record::Handshake(h) => handshake_line(h) + "\n",
            Record::Session(s) => session_line(s) + "\n",
            Record::Http(m) if self.o.verbose > 0 => http_line(m, self.o.verbose > 1) + "\n",
            Record::Frame(f) if self.o.verbose > 0 => {
                let mut s = format!(
                    "{} {} > {}: WS {}{}{} len {}",
                    tod(f.ts),
                    f.flow.src,
                    f.flow.dst,
                    crate::proto::ws::opcode::name(f.opcode),
                    if f.fin { "" } else { " (more)" },
                    if f.rsv1 { " compressed" } else { "" },
                    f.len
                );
                if let Some(c) = f.close_code {
                    s += &format!(" code {c}");
                }
                if let Some(r) = &f.close_reason {
                    s += &format!(" \"{r}\"");
                }
                if f.dir == crate::proto::Dir::ToServer && !f.masked {
                    s += " unmasked";
                }
                s + "\n"
            }
            Record::Http(_) | Record::Frame(_) => return Ok(()),
            // One fault, one block: the lead finding names the others.
            Record::Finding(f) if !f.primary => return Ok(()),
            Record::Finding(f) => {
                let key = group_key(f);
                let first = !self.groups.contains_key(&key);
                if first && self.groups.len() >= MAX_GROUPS {
                    self.ungrouped += 1;
                    let block = self.finding_block(f);
                    self.w.write_all(block.as_bytes())?;
                    return Ok(());
                }
                let g = self.groups.entry(key).or_insert(Group { severity: f.severity, count: 0, first_ts: f.ts });
                g.count += 1;
                if !first {
                    return Ok(());
                }
                self.finding_block(f)
            }
        };
        self.w.write_all(line.as_bytes())?;
        if self.o.line_buffered {
            self.w.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}
