//! One line per record, as `Display` types: a handshake, a session, with
//! `-v` an HTTP message and a WebSocket frame. The sink writes each line's
//! time first, as tcpdump does (`crate::time::Stamp`, the `-t` family).

use std::fmt::{self, Display, Formatter};

use crate::proto::{Dir, Version};
use crate::record::{Dirs, FrameLine, Handshake, Hop, HttpMessage, Join, MessageDir, RemoteFrom, Role, Session};

/// A latency, or "-".
struct Ms(Option<f64>);

impl Display for Ms {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:.1} ms"),
            None => f.write_str("-"),
        }
    }
}

/// What a hop got: its status, or how it ended without one.
struct Status<'a>(&'a Hop);

impl Display for Status<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match (self.0.status, self.0.end) {
            (Some(s), _) => write!(f, "{s}"),
            (None, Some(e)) => write!(f, "no response ({e})"),
            (None, None) => f.write_str("no response yet"),
        }
    }
}

/// A TLS hop: version, suite, SNI, ALPN, and whether it was decrypted.
struct TlsTag<'a>(&'a Hop);

impl Display for TlsTag<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let h = self.0;
        let Some(t) = &h.tls else {
            return match &h.sni {
                Some(s) => write!(f, " [TLS {s}]"),
                None => f.write_str(" [TLS]"),
            };
        };
        let mut v = vec![t.version.unwrap_or("TLS").to_string()];
        v.extend(t.cipher.clone());
        if let Some(s) = t.sni.as_ref().or(h.sni.as_ref()) {
            v.push(format!("SNI {s}"));
        }
        if let Some(a) = &t.alpn {
            v.push(format!("ALPN {a}"));
        }
        write!(f, " [{}, ", v.join(" "))?;
        match (t.decrypted, t.reason) {
            (true, _) => f.write_str("decrypted]"),
            (false, Some(r)) => write!(f, "not decrypted: {r}]"),
            (false, None) => f.write_str("not decrypted]"),
        }
    }
}

/// What stands out in a hop's upgrade request, if anything.
struct Oddities<'a>(&'a Hop);

impl Display for Oddities<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let h = self.0;
        if h.encrypted {
            return TlsTag(h).fmt(f);
        }
        if h.tls.is_some() {
            TlsTag(h).fmt(f)?;
        }
        if let Some(id) = h.stream_id {
            // HTTP/2: the stream, and RFC 8441's `:protocol` (no Upgrade there).
            return match &h.protocol {
                Some(p) => write!(f, " [stream {id}, :protocol {p}]"),
                None => write!(f, " [stream {id}, no :protocol]"),
            };
        }
        let mut v = Vec::new();
        if h.version == Some(Version::Http10) {
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
        if !v.is_empty() {
            write!(f, " [{}]", v.join(", "))?;
        }
        Ok(())
    }
}

/// What joins a record to the proxy's and the application's logs, as
/// the JSON's join fields (docs/json.md), compactly: `remote 10.0.0.5
/// from x-real-ip, for 203.0.113.7, x-request-id 4ad5..., traceparent
/// 00-...`. The client address as the proxy logs it (`$remote_addr`, with
/// `$remote_port` when known) and where it was read when not from the
/// client hop's connection; the original client a proxy before it named;
/// each request id, redacted as in the JSON and escaped here. With
/// `remote_always` false, an address read from the capture is left out: it
/// is the client flow's source, already on the line. Empty when there is
/// nothing to say ([`JoinText::is_empty`]).
pub struct JoinText<'a> {
    pub join: &'a Join,
    pub remote_always: bool,
}

impl JoinText<'_> {
    fn remote(&self) -> Option<(std::net::IpAddr, Option<u16>)> {
        let j = self.join;
        let from_capture = j.remote_from.is_none_or(|r| r == RemoteFrom::Capture);
        j.remote_addr.filter(|_| self.remote_always || !from_capture).map(|a| (a, j.remote_port))
    }

    pub fn is_empty(&self) -> bool {
        self.remote().is_none() && self.join.forwarded_for.is_none() && self.join.request_ids.is_empty()
    }
}

impl Display for JoinText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let j = self.join;
        let mut sep = "";
        if let Some((a, port)) = self.remote() {
            match port {
                Some(p) => write!(f, "remote {}", crate::flow::Endpoint::new(a, p))?,
                None => write!(f, "remote {a}")?,
            }
            if let Some(r) = j.remote_from.filter(|r| *r != RemoteFrom::Capture) {
                write!(f, " from {}", r.name())?;
            }
            sep = ", ";
        }
        if let Some(a) = j.forwarded_for {
            write!(f, "{sep}for {a}")?;
            sep = ", ";
        }
        for (name, v) in &j.request_ids.0 {
            write!(f, "{sep}{name} {}", crate::escape::text(v))?;
            sep = ", ";
        }
        Ok(())
    }
}

/// `12:00:01.234567 handshake #3 GET /ws upgraded | client ... | upstream ...`
pub struct HandshakeLine<'a>(pub &'a Handshake);

impl Display for HandshakeLine<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let h = self.0;
        let front = h.client.as_ref().or(h.upstream.as_ref());
        let method = front.and_then(|f| f.method.as_deref()).unwrap_or("GET");
        write!(f, "handshake #{} {} {} {}", h.id, method, h.path, h.outcome.name())?;
        match &h.client {
            // The one hop in view is a proxy's forward: what the capture
            // shows is an upstream leg, and the client is not in it.
            Some(c) if h.upstream.is_none() && h.join.front_forwarded => {
                write!(
                    f,
                    " | client not seen | upstream {} {} {}{}",
                    c.flow,
                    Status(c),
                    Ms(h.latency_ms.client),
                    Oddities(c)
                )?;
                return Tail(h).fmt(f);
            }
            // A TLS client hop: only its flow and handshake are known.
            Some(c) if c.encrypted && h.latency_ms.client.is_none() => {
                write!(f, " | client {}{}", c.flow, Oddities(c))?
            }
            Some(c) => write!(f, " | client {} {} {}{}", c.flow, Status(c), Ms(h.latency_ms.client), Oddities(c))?,
            None => f.write_str(" | client not seen")?,
        }
        match &h.upstream {
            Some(u) => write!(f, " | upstream {} {} {}{}", u.flow, Status(u), Ms(h.latency_ms.upstream), Oddities(u))?,
            None => f.write_str(" | upstream not seen")?,
        }
        Tail(h).fmt(f)
    }
}

/// The end of a handshake line: what joins it to logs, its place in a chain.
struct Tail<'a>(&'a Handshake);

impl Display for Tail<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let h = self.0;
        let join = JoinText { join: &h.join, remote_always: false };
        if !join.is_empty() {
            write!(f, " | {join}")?;
        }
        if h.hop_index > 0 {
            write!(f, " (chain {} hop {})", h.chain, h.hop_index)?;
        }
        Ok(())
    }
}

/// Frames each way: `12 frames to server, 30 to client`.
struct DirsText<'a>(&'a Dirs);

impl Display for DirsText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} to server, {} to client", super::N(self.0.to_server, "frame"), self.0.to_client)
    }
}

/// `12:01:00.5 session #3 /ws CLIENT | UPSTREAM 59.5 s, frames ..., closed by ...`
pub struct SessionLine<'a>(pub &'a Session);

impl Display for SessionLine<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let tls = if s.hops.first().is_some_and(|h| h.encrypted) { " [TLS]" } else { "" };
        // An HTTP/2 client hop: the session is one stream of that connection.
        let stream = s.hops.iter().find(|h| h.role == Role::Client).and_then(|h| h.stream_id);
        let tls = match stream {
            Some(id) => format!("{tls} #{id}"),
            None => tls.to_string(),
        };
        write!(f, "session #{} {} ", s.id, s.path)?;
        match (&s.client_flow, &s.upstream_flow) {
            (Some(c), Some(u)) => write!(f, "{c}{tls} | {u}")?,
            // The one hop in view is a proxy's forward (see HandshakeLine).
            (Some(c), None) if s.join.front_forwarded => write!(f, "(client not seen) | {c}{tls}")?,
            (Some(c), None) => write!(f, "{c}{tls}")?,
            // The client hop was seen (its address is the session's) but
            // was not upgraded: only the upstream hop carries frames.
            (None, Some(u)) if s.join.remote_from == Some(crate::record::RemoteFrom::Capture) => {
                write!(f, "(client hop not upgraded) | {u}")?
            }
            (None, Some(u)) => write!(f, "(client not seen) | {u}")?,
            (None, None) => f.write_str("-")?,
        }
        write!(f, " {:.1} s, {}", s.duration_s, DirsText(&s.frames))?;
        if let Some(h) = &s.heartbeat {
            write!(f, ", {} {} every {:.1} s", h.from, h.kind, h.interval_s)?;
        }
        let join = JoinText { join: &s.join, remote_always: false };
        let join = if join.is_empty() { String::new() } else { format!(" | {join}") };
        if s.open {
            return write!(f, ", still open at end of capture{join}");
        }
        let c = &s.close;
        write!(f, ", closed by {} ({})", c.by.map_or("?", |b| b.name()), c.how)?;
        if let Some(code) = c.code {
            write!(f, " code {code}")?;
        }
        if let Some(r) = &c.reason {
            write!(f, " \"{r}\"")?;
        }
        f.write_str(if c.clean { ", clean" } else { ", no close handshake" })?;
        if let Some(i) = c.idle_s
            && i >= 1.0
        {
            write!(f, ", after {i:.1} s idle")?;
        }
        f.write_str(&join)
    }
}

/// Headers shown on an HTTP message line without `-vv`.
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

/// `-v`: `12:00:01 A->B: HTTP GET /ws HTTP/1.1 [upgrade: websocket]`; with
/// `-vv` every header on a line of its own.
pub struct HttpLine<'a> {
    pub m: &'a HttpMessage,
    pub all_headers: bool,
}

impl Display for HttpLine<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let m = self.m;
        let (a, b) = (m.flow.src, m.flow.dst);
        let (from, to) = if m.dir == MessageDir::Request { (a, b) } else { (b, a) };
        match (&m.method, m.status) {
            (Some(meth), _) => {
                write!(f, "{}->{}: HTTP {} {} {}", from, to, meth, m.target.as_deref().unwrap_or(""), m.version)?
            }
            (None, Some(st)) => {
                write!(f, "{}->{}: HTTP {} {} {}", from, to, m.version, st, m.reason.as_deref().unwrap_or(""))?
            }
            _ => {}
        }
        for (n, v) in &m.headers {
            if self.all_headers {
                write!(f, "\n    {n}: {v}")?;
            } else if NOTABLE.iter().any(|x| x.eq_ignore_ascii_case(n)) {
                write!(f, " [{n}: {v}]")?;
            }
        }
        Ok(())
    }
}

/// `-v`: `12:00:02 A->B: WS text len 12`.
pub struct FrameText<'a>(pub &'a FrameLine);

impl Display for FrameText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let fr = self.0;
        write!(
            f,
            "{}->{}: WS {}{}{} len {}",
            fr.flow.src,
            fr.flow.dst,
            crate::proto::ws::opcode::name(fr.opcode),
            if fr.fin { "" } else { " (more)" },
            if fr.rsv1 { " compressed" } else { "" },
            fr.len
        )?;
        if let Some(c) = fr.close_code {
            write!(f, " code {c}")?;
        }
        if let Some(r) = &fr.close_reason {
            write!(f, " \"{r}\"")?;
        }
        if fr.dir == Dir::ToServer && !fr.masked {
            f.write_str(" unmasked")?;
        }
        Ok(())
    }
}

/// `-A`: an HTTP message's head as it crossed the wire (`\r\n` line ends),
/// indented under its line: the request or status line, every header, the
/// blank line. Values are the record's: redacted and escaped before here.
pub struct HeadText<'a>(pub &'a HttpMessage);

impl Display for HeadText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let m = self.0;
        match (&m.method, m.status) {
            (Some(meth), _) => write!(f, "{} {} {}\r\n", meth, m.target.as_deref().unwrap_or(""), m.version)?,
            (None, Some(st)) => match m.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => write!(f, "{} {st} {r}\r\n", m.version)?,
                // HTTP/2 has no reason phrase.
                None => write!(f, "{} {st}\r\n", m.version)?,
            },
            _ => {}
        }
        for (n, v) in &m.headers {
            write!(f, "{n}: {v}\r\n")?;
        }
        f.write_str("\r\n")
    }
}

/// `-X`: bytes as tcpdump -X shows them: offset, 16 bytes in hex as
/// groups of two, then the same as ASCII (`.` for the unprintable).
pub struct HexDump<'a>(pub &'a [u8]);

impl Display for HexDump<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, row) in self.0.chunks(16).enumerate() {
            write!(f, "\t0x{:04x}:  ", i * 16)?;
            for pair in 0..8 {
                match row.get(pair * 2..(pair * 2 + 2).min(row.len())) {
                    Some([a, b]) => write!(f, "{a:02x}{b:02x} ")?,
                    Some([a]) => write!(f, "{a:02x}   ")?,
                    _ => f.write_str("     ")?,
                }
            }
            f.write_str(" ")?;
            for &b in row {
                let c = if (0x20..0x7f).contains(&b) { b as char } else { '.' };
                write!(f, "{c}")?;
            }
            f.write_str("\n")?;
        }
        Ok(())
    }
}
